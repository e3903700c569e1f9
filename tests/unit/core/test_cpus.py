"""How many CPUs a process may use, and the threads each model runtime gets from it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from codejury.core import cpus
from codejury.core.cpus import quota_cpus, quota_files, runtime_threads, share, usable_cpus
from codejury.core.settings import load_settings
from codejury.pipeline.embedded import MODEL_PROCESSES, SERVICES, EmbeddedPipeline, cpu_shares


@pytest.mark.parametrize(
    ("quota", "period", "cpus"),
    [
        ("max", "100000", None),  # cgroup v2: no limit
        ("-1", "100000\n", None),  # cgroup v1: no limit
        ("200000", "100000", 2),
        ("150000\n", "100000\n", 2),  # 1.5 CPUs keep two threads busy half the time
        ("50000", "100000", 1),  # under one CPU is still one thread
        ("garbage", "100000", None),
        ("100000", "0", None),
    ],
)
def test_a_cgroup_quota_allows_its_cpus_rounded_up(
    quota: str, period: str, cpus: int | None
) -> None:
    assert quota_cpus(quota, period) == cpus


def test_the_quota_is_looked_for_in_the_process_cgroup_first_then_the_root() -> None:
    root = Path("/sys/fs/cgroup")
    v2 = quota_files("0::/system.slice/codejury.service\n")
    assert v2 == [(root / "system.slice/codejury.service/cpu.max", None), (root / "cpu.max", None)]
    v1 = quota_files("5:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n")
    assert v1 == [
        (root / "cpu/docker/abc/cpu.cfs_quota_us", root / "cpu/docker/abc/cpu.cfs_period_us"),
        (root / "cpu/cpu.cfs_quota_us", root / "cpu/cpu.cfs_period_us"),
    ]
    assert quota_files("0::/\n") == [(root / "cpu.max", None)]  # a container's namespace


def test_a_quota_under_the_cores_caps_the_threads_and_a_setting_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    affinity = len(os.sched_getaffinity(0))
    monkeypatch.setattr(cpus, "_cgroup_quota", lambda: None)
    assert usable_cpus() == affinity
    monkeypatch.setattr(cpus, "_cgroup_quota", lambda: 1)
    assert usable_cpus() == 1
    if (os.cpu_count() or 1) > 1:  # a container limited to 1 CPU on a bigger host
        assert runtime_threads(None) == 1
    assert runtime_threads(3) == 3
    monkeypatch.setattr(cpus, "_cgroup_quota", lambda: 10_000)  # a quota above the mask
    assert usable_cpus() == affinity


def test_the_embedded_deployment_shares_the_cpus_between_its_two_models() -> None:
    settings = load_settings({})
    two = cpu_shares(settings, 2)
    assert two.generation.torch_threads == two.generation.llamacpp_threads == 1
    assert two.reranking.torch_threads == 1
    sixteen = cpu_shares(settings, 16)
    assert sixteen.generation.torch_threads == 16 // MODEL_PROCESSES
    assert sixteen.reranking.torch_threads == 16 // MODEL_PROCESSES
    assert share(1, MODEL_PROCESSES) == 1  # never zero threads
    assert settings.generation.torch_threads is None  # the caller's own settings stay

    given = load_settings({"generation": {"torch_threads": 3}, "reranking": {"torch_threads": 5}})
    shared = cpu_shares(given, 2)
    assert (shared.generation.torch_threads, shared.generation.llamacpp_threads) == (3, 1)
    assert shared.reranking.torch_threads == 5


def test_the_service_processes_get_their_share_and_the_deployments_caller_keeps_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cpus, "_cgroup_quota", lambda: 2)  # as on a 2-core machine
    deployment = EmbeddedPipeline(load_settings({}))
    for name in SERVICES:
        env = deployment.service_env(name)
        assert env["CODEJURY_GENERATION__TORCH_THREADS"] == "1"
        assert env["CODEJURY_GENERATION__LLAMACPP_THREADS"] == "1"
        assert env["CODEJURY_RERANKING__TORCH_THREADS"] == "1"  # its model servers inherit it
    assert deployment.settings.generation.torch_threads is None
    assert deployment.settings.reranking.torch_threads is None
