"""The local runtime: ``reconcile`` driven on one machine (``codejury run``).

Each tick it observes (the training child process of the current attempt, the canary
traffic per version from the bus, the hard negatives since the last iteration, the
time), calls ``reconcile``, applies the actions in order and saves the status:

| action | applied here as |
|---|---|
| StartTrainingJob | ``codejury train iteration`` as a child process (``jobs``) |
| SetCanary(v, w) | registry canary = v; the reranking service restarted with weight w% |
| Promote(v) | registry stable = v, no canary; reranking restarted |
| Rollback(v) | registry canary cleared; reranking restarted |
| RecordMetrics, EmitEvent | a line in ``events.jsonl`` and the log |

The embedded reranking service reads the registry's channels and ``canary_weight`` when it
starts, hence the restarts. Everything it applies is idempotent, and the status is written
(atomically) after the actions, so a runtime stopped at any point and started again
applies at most the same actions again and goes on from the saved status. On start it
re-applies the saved canary (a restarted embedded deployment serves what the status says).

Probe traffic: ``canary.probe_rate`` requests per second (two at a time at most) of
held-out MBXP problems with tests, sent through Solve, so both arms get labelled
requests when users send none; their round trips are the latency the guard reads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from codejury.control.actions import (
    Action,
    EmitEvent,
    Promote,
    RecordMetrics,
    Rollback,
    SetCanary,
    StartTrainingJob,
)
from codejury.control.observations import Observations
from codejury.control.reconcile import reconcile
from codejury.control.spec import SelfTrainingRunSpec
from codejury.control.status import Phase, RunStatus
from codejury.core.files import write_text_atomic
from codejury.core.logging import get_logger
from codejury.evaluation.datasets import BenchmarkProblem
from codejury.reranking.registry import ModelRegistry
from codejury.runtime.jobs import LocalTrainingJobs
from codejury.runtime.meter import TrafficMeter

log = get_logger(__name__)


class Deployment(Protocol):
    """What serves the traffic: the embedded pipeline here."""

    @property
    def solve_address(self) -> str: ...

    def set_canary_weight(self, weight: float) -> None: ...


@dataclass(frozen=True)
class RunFiles:
    """``<run_dir>/runs/<name>/``: status.json, events.jsonl, logs/."""

    root: Path

    @property
    def status(self) -> Path:
        return self.root / "status.json"

    @property
    def events(self) -> Path:
        return self.root / "events.jsonl"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def load_status(self) -> RunStatus:
        if not self.status.is_file():
            return RunStatus()
        return RunStatus.from_dict(json.loads(self.status.read_text()))

    def save_status(self, status: RunStatus) -> None:
        write_text_atomic(self.status, json.dumps(status.to_dict(), indent=2, sort_keys=True))

    def event(self, kind: str, **fields: Any) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        record = {"at": datetime.now(UTC).isoformat(), "kind": kind, **fields}
        with self.events.open("a") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")


class LocalRuntime:
    def __init__(
        self,
        spec: SelfTrainingRunSpec,
        files: RunFiles,
        *,
        jobs: LocalTrainingJobs,
        registry: ModelRegistry,
        meter: TrafficMeter,
        deployment: Deployment,
        probes: Sequence[BenchmarkProblem] = (),
        probe_n: int = 4,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.spec = spec
        self.files = files
        self.jobs = jobs
        self.registry = registry
        self.meter = meter
        self.deployment = deployment
        self.clock = clock
        self.status = files.load_status()
        self._probes = probes
        self._probe_n = probe_n
        self._stop = threading.Event()

    # -- the loop ----------------------------------------------------------------------

    def run(
        self,
        *,
        tick_s: float = 2.0,
        timeout_s: float | None = None,
        on_tick: Callable[[RunStatus], None] | None = None,
    ) -> RunStatus:
        """Tick until the run is Completed or Failed, ``stop`` is called, or ``timeout_s``."""
        self._restore()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._probing():
            while not self._stop.is_set():
                self.tick()
                if on_tick:
                    on_tick(self.status)
                if self.status.phase.terminal:
                    break
                if deadline is not None and time.monotonic() > deadline:
                    break
                self._stop.wait(tick_s)
        return self.status

    def stop(self) -> None:
        self._stop.set()

    def tick(self) -> RunStatus:
        status = self.status
        now = self.clock()
        job = None
        if status.phase is Phase.TRAINING:
            job = self.jobs.observe(status.iteration, status.training_attempt)
        traffic = None
        if status.phase is Phase.CANARY and status.step_started_at is not None:
            traffic = self.meter.traffic(
                status.step_started_at, self._stable(), status.canary_version
            )
        observations = Observations(
            now=now,
            job=job,
            traffic=traffic,
            new_hard_negatives=self.meter.hard_negatives_since(status.iteration_finished_at),
        )
        result = reconcile(self.spec, status, observations)
        for action in result.actions:
            self.apply(action)
        if result.status != status:
            self.files.save_status(result.status)
        self.status = result.status
        return result.status

    # -- actions -----------------------------------------------------------------------

    def apply(self, action: Action) -> None:
        fields = dataclasses.asdict(action)
        log.info("run.action", action=type(action).__name__, **fields)
        self.files.event(type(action).__name__, **fields)
        if isinstance(action, StartTrainingJob):
            self.jobs.start(action)
        elif isinstance(action, SetCanary):
            self.registry.mark_canary(action.version)
            self.deployment.set_canary_weight(action.weight / 100)
        elif isinstance(action, Promote):
            self.registry.mark_stable(action.version)
            self.deployment.set_canary_weight(0.0)
        elif isinstance(action, Rollback):
            if self.registry.channels().canary == action.version:
                self.registry.mark_canary(None)
            self.deployment.set_canary_weight(0.0)
        elif isinstance(action, RecordMetrics | EmitEvent):
            pass  # the event line above is the record

    def _restore(self) -> None:
        """Serve what the saved status says (a restart mid-canary keeps its split)."""
        s = self.status
        if s.phase is Phase.CANARY and s.canary_version:
            self.apply(SetCanary(s.canary_version, s.canary_weight))

    def _stable(self) -> str | None:
        return self.status.stable_version or self.registry.channels().stable

    # -- probes ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _probing(self) -> Iterator[None]:
        rate = self.spec.canary.probe_rate
        if rate <= 0 or not self._probes:
            yield
            return
        stop = threading.Event()
        threads = [
            threading.Thread(target=self._probe_loop, args=(stop, 2.0 / rate, k), daemon=True)
            for k in range(2)
        ]
        for thread in threads:
            thread.start()
        try:
            yield
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=60)

    def _probe_loop(self, stop: threading.Event, interval_s: float, lane: int) -> None:
        from codejury.pipeline.client import SolveClient

        problems = itertools.cycle(self._probes[lane::2] or self._probes)
        with SolveClient(self.deployment.solve_address) as client:
            while not stop.is_set():
                started = time.monotonic()
                problem = next(problems)
                try:
                    response = client.solve(problem.problem, self._probe_n, deadline_s=300)
                except Exception as exc:  # a probe that fails is counted by the meter
                    log.warning(
                        "run.probe_failed", problem=problem.problem.problem_id, error=str(exc)
                    )
                else:
                    elapsed_ms = (time.monotonic() - started) * 1000
                    self.meter.record_latency(response.reranker_version, elapsed_ms)
                stop.wait(max(0.0, interval_s - (time.monotonic() - started)))
