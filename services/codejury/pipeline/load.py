"""``codejury bench load``: Solve requests at a fixed rate through an embedded deployment
(loopback only, tiny models) while faults are injected on a schedule; the report's
arithmetic is ``pipeline.load_report`` (pure), this module is the edges:

    sender       one thread per request, started every 1/rate s (open loop: a slow answer
                 does not slow the sending), each a ``SolveClient.solve`` with its own id
    control      this thread, every 0.5 s: ``supervise()`` (what ``codejury up`` does every
                 second: restart a dead child, the front door refusing meanwhile), the
                 fault due, a progress line
    bus readers  ``TopicTail``s from the beginning of solve.completed, feedback and every
                 dead-letter topic (no consumer group), for the duplicate and DLQ counts

Faults: SIGKILL of each stage's process group (``ServiceProcess.kill``), of the Celery
worker's (its prefork pool with it), of the KServe model server (a child process of the
reranking service, in its own session: found by its parent pid), a burst of bad records
published straight to the three stage topics, and a burst of invalid Solve requests.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from codejury.bus.envelope import Event, wrap
from codejury.bus.producer import MAX_RECORD_BYTES, EventProducer
from codejury.bus.tail import TopicTail
from codejury.bus.topics import (
    CANDIDATES_EXECUTED,
    CANDIDATES_GENERATED,
    FEEDBACK,
    PIPELINE_TOPICS,
    SOLVE_COMPLETED,
    SOLVE_REQUESTED,
    dlq,
)
from codejury.core.logging import get_logger
from codejury.core.settings import Settings
from codejury.pipeline.client import SolveClient, SolveRpcError
from codejury.pipeline.embedded import EmbeddedPipeline
from codejury.pipeline.load_report import (
    OK,
    FaultKind,
    InjectedFault,
    LoadReport,
    RequestRecord,
    check_plan,
    dead_letter_counts,
    duplicates,
    fault_report,
    fault_schedule,
    outcomes,
    recovery_s,
    window_span_s,
)
from codejury.proto.v1 import domain_pb2, events_pb2

log = get_logger(__name__)

_STAGE_KILLS = {
    FaultKind.KILL_GENERATION: "generation",
    FaultKind.KILL_EXECUTION: "execution",
    FaultKind.KILL_RERANKING: "reranking",
}
#: the stage topics bad records go to (each has a consumer that must dead-letter them)
BAD_EVENT_TOPICS = (SOLVE_REQUESTED, CANDIDATES_GENERATED, CANDIDATES_EXECUTED)
#: a record just under the 1 MiB record limit: publishable, but a dead letter that wraps
#: it whole (its value, the error, the source) would not fit one
OVERSIZED_BYTES = MAX_RECORD_BYTES - 2048


@dataclass(frozen=True)
class LoadPlan:
    duration_s: float = 600.0
    rate: float = 0.5
    n: int = 2
    deadline_s: float = 120.0
    grace_s: float = 15.0
    faults: tuple[FaultKind, ...] = tuple(FaultKind)


@dataclass
class _Ledger:
    """What the sender threads record, under one lock."""

    started: float
    sent: dict[str, float] = field(default_factory=dict)
    ended: dict[str, tuple[float, str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def now(self) -> float:
        return time.monotonic() - self.started

    def records(self) -> list[RequestRecord]:
        with self.lock:
            return [
                RequestRecord(rid, sent, *(self.ended.get(rid) or (None, None)))
                for rid, sent in sorted(self.sent.items(), key=lambda item: item[1])
            ]

    def in_flight(self) -> int:
        with self.lock:
            return len(self.sent) - len(self.ended)


@dataclass
class _BusSeen:
    completions: list[tuple[str, str]] = field(default_factory=list)
    feedback: list[tuple[str, str, str]] = field(default_factory=list)
    letters: list[tuple[str, events_pb2.DeadLetter]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_event(self, event: Event) -> None:
        payload = event.payload
        with self.lock:
            if isinstance(payload, events_pb2.SolveCompleted):
                self.completions.append((payload.request_id, event.event_id))
            elif isinstance(payload, events_pb2.Feedback):
                self.feedback.append(
                    (payload.request_id, payload.candidate.candidate_id, event.event_id)
                )
            elif isinstance(payload, events_pb2.DeadLetter):
                self.letters.append((event.topic, payload))


def problem(i: int) -> domain_pb2.Problem:
    return domain_pb2.Problem(
        problem_id=f"load_{i}",
        language="python",
        prompt=f"def add_{i}(a, b):\n    ",
        tests=f"\nassert add_{i}(1, 2) == 3\n",
        assembly=domain_pb2.PROGRAM_ASSEMBLY_MULTIPL_E,
    )


#: invalid Solve requests: (what is wrong, problem, n); each must get INVALID_ARGUMENT
BAD_REQUESTS: tuple[tuple[str, domain_pb2.Problem, int], ...] = (
    ("n=0", problem(0), 0),
    ("n=100000", problem(0), 100_000),
    ("no prompt", domain_pb2.Problem(problem_id="bad", language="python"), 2),
    ("no language", domain_pb2.Problem(problem_id="bad", prompt="def f():\n    "), 2),
    (
        "unknown language",
        domain_pb2.Problem(problem_id="bad", language="cobol-85", prompt="x"),
        2,
    ),
    (
        "oversized tests",
        domain_pb2.Problem(
            problem_id="bad", language="python", prompt="def f():\n    ", tests="#" * (2 << 20)
        ),
        2,
    ),
)


def run_load_test(
    settings: Settings, plan: LoadPlan, *, progress: Callable[[str], None]
) -> LoadReport:
    check_plan(plan.duration_s, plan.rate, plan.faults)
    progress("starting the embedded pipeline (tiny models)")
    with EmbeddedPipeline(settings) as deployment:
        client = SolveClient(deployment.solve_address)
        try:
            progress("warming up (2 requests: the first pay the consumer groups' joins)")
            for i in range(2):
                client.solve(problem(10_000 + i), plan.n, deadline_s=plan.deadline_s)
            return _LoadRun(deployment, client, plan, progress).run()
        finally:
            client.close()


class _LoadRun:
    def __init__(
        self,
        deployment: EmbeddedPipeline,
        client: SolveClient,
        plan: LoadPlan,
        progress: Callable[[str], None],
    ) -> None:
        self.deployment = deployment
        self.client = client
        self.plan = plan
        self.progress = progress
        self.run_id = uuid.uuid4().hex[:8]
        self.ledger = _Ledger(started=time.monotonic())
        self.bus = _BusSeen()
        self.injected: list[InjectedFault] = []
        self.notes: list[str] = []
        self.probes: dict[str, str] = {}
        self.bad_keys: set[bytes] = set()
        self.orphans: list[int] = []  # processes a kill left behind, ended after the run

    def run(self) -> LoadReport:
        plan = self.plan
        schedule = fault_schedule(plan.duration_s, plan.faults)
        gap = plan.duration_s / (len(plan.faults) + 1)
        supervising = threading.Event()
        supervisor = threading.Thread(
            target=self._supervise_until, args=(supervising,), name="load-supervisor", daemon=True
        )
        with self._bus_readers():
            self.ledger = _Ledger(started=time.monotonic())
            supervisor.start()
            sender = threading.Thread(target=self._send_all, name="load-sender", daemon=True)
            sender.start()
            due = list(schedule)
            while self.ledger.now() < plan.duration_s:
                # one fault at a time: the next waits until everything killed runs again,
                # so each recovery is measured on its own
                if due and due[0].at_s <= self.ledger.now() and self._settled(gap):
                    self._inject(due.pop(0).kind)
                self._progress(due[0].kind if due else None)
                time.sleep(0.5)
            for late in due:
                self.notes.append(f"{late.kind}: not injected (the run ended first)")
            sender.join()
            # every call ends by its own RPC deadline (deadline_s + 30 s in SolveClient)
            end = plan.duration_s + plan.deadline_s + 30 + plan.grace_s
            while self.ledger.in_flight() and self.ledger.now() < end:
                self._progress(None, draining=True)
                time.sleep(0.5)
            run_end = self.ledger.now()
            self._let_bus_settle()
            supervising.set()
            supervisor.join()
        for pid in self.orphans:  # nothing of the run may outlive it
            if _alive(pid):
                os.killpg(pid, signal.SIGKILL)
                self.notes.append(f"killed orphaned process {pid} after the run")
        return self._report(run_end)

    def _settled(self, gap_s: float) -> bool:
        """Whether the next fault may go in: nothing is down, and the last fault has
        recovered (a request sent after it was answered OK) or had twice the gap to."""
        if self.deployment.outages:
            return False
        if not self.injected:
            return True
        last = self.injected[-1]
        if self.ledger.now() - last.at_s > 2 * gap_s:
            return True
        return recovery_s(last.at_s, self.ledger.records()) is not None

    def _supervise_until(self, done: threading.Event) -> None:
        """What ``codejury up`` does every second; a restart blocks only this thread."""
        while not done.wait(1.0):
            for line in self.deployment.supervise():
                self.notes.append(f"{self.ledger.now():.1f}s {line}")

    # -- sending ---------------------------------------------------------------------

    def _send_all(self) -> None:
        total = int(self.plan.duration_s * self.plan.rate)
        for i in range(total):
            wait = i / self.plan.rate - self.ledger.now()
            if wait > 0:
                time.sleep(wait)
            threading.Thread(target=self._send, args=(i,), daemon=True).start()

    def _send(self, i: int) -> None:
        request_id = f"load-{self.run_id}-{i:05d}"
        with self.ledger.lock:
            self.ledger.sent[request_id] = self.ledger.now()
        try:
            self.client.solve(
                problem(i), self.plan.n, deadline_s=self.plan.deadline_s, request_id=request_id
            )
            code = OK
        except SolveRpcError as exc:
            code = exc.code
        except Exception as exc:  # not a clear error: counted under its type, and logged
            code = f"UNEXPECTED:{type(exc).__name__}"
            log.exception("load.unexpected_error", request_id=request_id)
        with self.ledger.lock:
            self.ledger.ended[request_id] = (self.ledger.now(), code)

    # -- faults ----------------------------------------------------------------------

    def _inject(self, kind: FaultKind) -> None:
        at = self.ledger.now()
        detail = self._break(kind)
        self.injected.append(InjectedFault(kind, at, detail))
        self.notes.append(f"{at:.1f}s {kind}: {detail}")
        log.info("load.fault", kind=str(kind), detail=detail)

    def _break(self, kind: FaultKind) -> str:
        deployment = self.deployment
        if kind in _STAGE_KILLS:
            name = _STAGE_KILLS[kind]
            service = deployment.services[name]
            pid = service.pid
            children = model_servers_of(pid) if name == "reranking" else []
            service.kill()
            detail = f"SIGKILL to {name} (pid {pid})"
            # they should follow their parent (SIGTERM on its death, then a short shutdown)
            deadline = time.monotonic() + 15
            while any(_alive(c) for c in children) and time.monotonic() < deadline:
                time.sleep(0.2)
            alive = [c for c in children if _alive(c)]
            if alive:
                self.orphans.extend(alive)
                detail += (
                    f"; its KServe model server (pid {', '.join(map(str, alive))}) outlived it"
                )
            return detail
        if kind is FaultKind.KILL_WORKER:
            worker = deployment.worker
            if worker is None or worker.pid is None:
                return "no worker to kill"
            os.killpg(worker.pid, signal.SIGKILL)  # the worker and its prefork pool
            return f"SIGKILL to the Celery worker's process group (pid {worker.pid})"
        if kind is FaultKind.KILL_MODEL_SERVER:
            pids = model_servers_of(deployment.services["reranking"].pid)
            if not pids:
                return "no KServe model server process found under the reranking service"
            for pid in pids:
                os.killpg(pid, signal.SIGKILL)
            return f"SIGKILL to the KServe model server (pid {', '.join(map(str, pids))})"
        if kind is FaultKind.BAD_EVENTS:
            return self._publish_bad_events()
        return self._send_bad_requests()

    def _publish_bad_events(self) -> str:
        """Per stage topic: garbage bytes, an empty value, an envelope of the wrong payload
        type, and a record just under the 1 MiB limit. Each must land in ``<topic>.dlq``."""
        wrong_type = events_pb2.Feedback(request_id=f"load-{self.run_id}-wrong-type")
        bodies = {
            "garbage": b"\xff\x00 not an envelope \x13\x37" * 8,
            "empty": b"",
            "wrong-type": wrap(wrong_type, producer="bench-load").SerializeToString(),
            "oversized": os.urandom(OVERSIZED_BYTES),
        }
        producer = EventProducer(self.deployment.settings.bus, name="bench-load")
        try:
            for topic in BAD_EVENT_TOPICS:
                for what, body in bodies.items():
                    key = f"load-{self.run_id}-bad-{what}".encode()
                    self.bad_keys.add(key)
                    producer.send_raw(topic, body, key=key)
            producer.flush()
        finally:
            producer.close()
        return f"{len(bodies)} bad records ({', '.join(bodies)}) to each of " + ", ".join(
            BAD_EVENT_TOPICS
        )

    def _send_bad_requests(self) -> str:
        for what, bad, n in BAD_REQUESTS:
            try:
                self.client.solve(bad, n, deadline_s=10)
                self.probes[what] = OK
            except SolveRpcError as exc:
                self.probes[what] = exc.code
        refused = sum(code == "INVALID_ARGUMENT" for code in self.probes.values())
        return f"{len(BAD_REQUESTS)} invalid Solve requests, {refused} refused INVALID_ARGUMENT"

    # -- the bus ---------------------------------------------------------------------

    @contextmanager
    def _bus_readers(self) -> Iterator[None]:
        bus = self.deployment.settings.bus
        topics = (SOLVE_COMPLETED, FEEDBACK, *(dlq(t) for t in PIPELINE_TOPICS))
        with ExitStack() as stack:
            for topic in topics:
                tail = TopicTail(
                    bus, topic, self.bus.on_event, start="beginning", name=f"bench-load-{topic}"
                ).start()
                stack.callback(tail.stop)
            yield

    def _let_bus_settle(self, quiet_s: float = 3.0, limit_s: float = 30.0) -> None:
        """Wait until the readers saw nothing new for ``quiet_s`` (a duplicate would come
        right behind the original)."""
        deadline = time.monotonic() + limit_s
        last = -1
        while time.monotonic() < deadline:
            with self.bus.lock:
                seen = len(self.bus.completions) + len(self.bus.feedback) + len(self.bus.letters)
            if seen == last:
                return
            last = seen
            time.sleep(quiet_s)

    # -- the report ------------------------------------------------------------------

    def _progress(self, next_fault: FaultKind | None, *, draining: bool = False) -> None:
        ledger = self.ledger
        with ledger.lock:
            sent, ended = len(ledger.sent), list(ledger.ended.values())
        ok = sum(code == OK for _, code in ended)
        down = ", ".join(sorted(self.deployment.outages)) or "none"
        phase = "draining" if draining else f"next {next_fault or 'none'}"
        self.progress(
            f"{ledger.now():.0f}/{self.plan.duration_s:g}s  sent {sent}  answered {ok}  "
            f"failed {len(ended) - ok}  in flight {sent - len(ended)}  down: {down}  {phase}"
        )

    def _report(self, run_end: float) -> LoadReport:
        records = self.ledger.records()
        mine = {r.request_id for r in records}
        with self.bus.lock:
            completions = [(r, e) for r, e in self.bus.completions if r in mine]
            feedback = [(r, c, e) for r, c, e in self.bus.feedback if r in mine]
            letters = list(self.bus.letters)
        completed = {r for r, _ in completions}
        never = [
            r.request_id
            for r in records
            if r.code == "DEADLINE_EXCEEDED" and r.request_id not in completed
        ]
        notes = list(self.notes)
        if never:
            notes.append(
                f"{len(never)} request(s) answered DEADLINE_EXCEEDED never completed on the "
                f"bus by the end (a stage that gave up on them without answering, or that "
                f"dropped them past their deadline): {', '.join(never[:5])}"
            )
        bad = [(t, letter) for t, letter in letters if letter.key in self.bad_keys]
        expected_bad = len(self.bad_keys) and 4 * len(BAD_EVENT_TOPICS)
        if FaultKind.BAD_EVENTS in {f.kind for f in self.injected}:
            notes.append(
                f"bad records: {expected_bad} published, {len(bad)} dead letters of them "
                f"(by topic: {dead_letter_counts((t, 'x') for t, _ in bad)})"
            )
        examples: dict[str, str] = {}
        for topic, letter in letters:
            examples.setdefault(f"{topic} {letter.error_type}", letter.error.splitlines()[0])
        span = window_span_s(self.plan.duration_s, len(self.plan.faults))
        return LoadReport(
            duration_s=self.plan.duration_s,
            rate=self.plan.rate,
            outcomes=outcomes(records),
            duplicates=duplicates(completions, feedback),
            faults=[
                fault_report(f, records, span_s=span, run_end_s=run_end) for f in self.injected
            ],
            dead_letters=dead_letter_counts((t, letter.error_type) for t, letter in letters),
            dead_letter_examples=examples,
            probes=dict(self.probes),
            notes=notes,
        )


def model_servers_of(parent: int | None) -> list[int]:
    """The pids of ``codejury serve reranking-model`` processes whose parent is ``parent``
    (the reranking service starts them in their own session, so not in its group)."""
    if parent is None:
        return []
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"reranking-model" in cmdline:
            found.append(int(entry.name))
    return sorted(found)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
