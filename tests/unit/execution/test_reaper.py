"""The sandbox reaper: disposals run in order off the caller's thread, drain waits for
them, a failing one does not strand the rest, and a backlog turns into back-pressure."""

from __future__ import annotations

import threading

from codejury.execution.reaper import Reaper


def test_disposals_run_in_order_on_another_thread_and_drain_waits_for_them() -> None:
    reaper = Reaper()
    done: list[tuple[int, str]] = []
    release = threading.Event()

    def dispose(i: int) -> None:
        release.wait(5)
        done.append((i, threading.current_thread().name))

    for i in range(5):
        reaper.submit(lambda i=i: dispose(i))
    assert done == []  # the caller did not wait
    assert not reaper.drain(timeout_s=0.05)  # still blocked
    release.set()
    assert reaper.drain(timeout_s=5)
    assert [i for i, _ in done] == list(range(5))
    assert {name for _, name in done} == {"sandbox-reaper"}


def test_a_failing_disposal_does_not_strand_the_others() -> None:
    reaper = Reaper()
    done: list[int] = []

    def boom() -> None:
        raise OSError("EBUSY")

    reaper.submit(boom)
    reaper.submit(lambda: done.append(1))
    assert reaper.drain(timeout_s=5)
    assert done == [1]


def test_a_backlog_makes_the_caller_dispose_itself() -> None:
    reaper = Reaper(max_pending=2)
    release = threading.Event()
    where: list[str] = []
    for _ in range(2):
        reaper.submit(lambda: (release.wait(5), where.append(threading.current_thread().name)))
    reaper.submit(lambda: where.append(threading.current_thread().name))
    assert where == [threading.current_thread().name]  # ran here, at once
    release.set()
    assert reaper.drain(timeout_s=5)
    assert where[1:] == ["sandbox-reaper", "sandbox-reaper"]


def test_an_idle_reaper_thread_ends_and_a_new_one_starts_on_demand() -> None:
    reaper = Reaper(idle_s=0.05)
    reaper.submit(lambda: None)
    assert reaper.drain(timeout_s=5)
    first = reaper._thread
    assert first is not None
    first.join(timeout=5)  # idles out
    assert not first.is_alive()
    ran = threading.Event()
    reaper.submit(ran.set)
    assert ran.wait(5)
    assert reaper._thread is not first
