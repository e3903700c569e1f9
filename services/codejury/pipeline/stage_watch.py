"""The Solve front door's watch over the stages' health, where nothing else tells it a
stage is down (a cluster: the stages are other pods).

``codejury up`` sees its children exit and tells the front door itself. In a cluster all
the front door can see of a stage is ``grpc.health.v1``: a stage whose consumer loop dies
turns NOT_SERVING, drains and exits, and nothing answers while Kubernetes restarts it
(or while the pod's model still loads). Every ``pipeline.stage_check_interval_s`` the
watch asks each stage of ``pipeline.stage_health`` for ``Health/Check`` from one thread
(the checks of one round run at once, each with the interval as its timeout), and
reports each verdict: down (the front door then refuses Solve at once, UNAVAILABLE naming
the stage and what was seen) or up.

The verdict is ``down_reason`` (pure, over ``StageHealth``): a stage is down once every
check for ``pipeline.stage_down_after_s``, and at least ``MIN_FAILURES`` of them, has
failed; up again at its first SERVING answer. One missed check (a slow answer on a busy
node) is not an outage.

A failed check drops its channel and the next one connects afresh: behind a Service the
new connection may reach another, ready, replica instead of the sick one a kept
connection is pinned to, and a stage that comes back is seen at the next check rather
than after gRPC's reconnect backoff (which grows to two minutes).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from codejury.core import metrics
from codejury.core.grpc import open_channel
from codejury.core.logging import get_logger
from codejury.core.settings import Settings
from codejury.core.tls import channel_credentials

log = get_logger(__name__)

#: Failed checks in a row (beside the time they span) before a stage counts as down.
MIN_FAILURES = 2


class Seen(StrEnum):
    """What one health check of a stage found (the values label the metrics)."""

    SERVING = "serving"
    NOT_SERVING = "not_serving"  # it answered, and not SERVING (a dead loop, a drain)
    UNREACHABLE = "unreachable"  # no answer: refused, timed out, no health service


@dataclass(frozen=True)
class Check:
    """One health check: when (``time.monotonic()``), what it found, in words."""

    at: float
    seen: Seen
    detail: str


@dataclass(frozen=True)
class StageHealth:
    """The checks of a stage since it last answered SERVING (or since the watch began)."""

    failing_since: float | None = None  # the first failed check of the current run
    failures: int = 0
    last: Check | None = None

    def after(self, check: Check) -> StageHealth:
        """The health once ``check`` is added: SERVING starts afresh."""
        if check.seen is Seen.SERVING:
            return StageHealth(last=check)
        since = check.at if self.failing_since is None else self.failing_since
        return StageHealth(since, self.failures + 1, check)


def down_reason(health: StageHealth, *, down_after_s: float) -> str | None:
    """Why the stage counts as down, or None while it counts as up.

    Up while nothing failed, while fewer than ``MIN_FAILURES`` checks in a row failed
    (however long apart: one lost check is not an outage), or while the failures span
    less than ``down_after_s`` (a short blip, or checks close together). Down otherwise,
    saying what the last check found and for how long every check has failed."""
    last, since = health.last, health.failing_since
    if last is None or since is None or health.failures < MIN_FAILURES:
        return None
    lasted = last.at - since
    if lasted < down_after_s:
        return None
    return f"{last.detail}, every health check for {lasted:.1f}s"


def _unreachable(exc: grpc.RpcError, timeout_s: float) -> str:
    code = exc.code()
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"unreachable (no answer within {timeout_s:g}s)"
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return "unreachable (it serves no grpc.health.v1: is the address a CodeJury stage's?)"
    lines = (exc.details() or "").strip().splitlines()
    return f"unreachable ({code.name}: {lines[0][:160]})" if lines else f"unreachable ({code.name})"


class StageHealthWatch:
    """Checks the health of ``targets`` (stage -> host:port) every ``interval_s`` from a
    daemon thread, and calls ``on_down(stage, why)`` or ``on_up(stage)`` after every
    check with the verdict (every time, so the caller's view stays current; the log says
    only the changes). ``credentials``: TLS for the channels, None for plain text."""

    def __init__(
        self,
        targets: Mapping[str, str],
        *,
        on_down: Callable[[str, str], None],
        on_up: Callable[[str], None],
        interval_s: float,
        down_after_s: float,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        if not targets:
            raise ValueError("targets: give at least one stage=host:port to watch")
        self.targets = dict(targets)
        self._on_down = on_down
        self._on_up = on_up
        self.interval_s = interval_s
        self.down_after_s = down_after_s
        self._credentials = credentials
        self._health = {stage: StageHealth() for stage in self.targets}
        self._down: set[str] = set()
        self._channels: dict[str, grpc.Channel] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stage-health-watch", daemon=True)

    def start(self) -> StageHealthWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop checking (a round in flight ends within its timeout) and close the channels."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.interval_s + 5.0)
        for stage in list(self._channels):
            self._drop(stage)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.check_round()
            except Exception:
                # A watch that died would freeze its last verdict (a stage refused for
                # ever, or never): log it and keep checking.
                log.exception("stage_watch.round_failed")
            self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))

    def check_round(self) -> None:
        """Check every stage once (at the same time), then report each verdict."""
        request = health_pb2.HealthCheckRequest(service="")
        calls = {
            stage: self._stub(stage).Check.future(request, timeout=self.interval_s)
            for stage in self.targets
        }
        for stage, call in calls.items():
            check = self._check_of(call)
            if check.seen is not Seen.SERVING:
                self._drop(stage)  # the next check connects afresh (see the module's doc)
            metrics.STAGE_CHECKS.labels(stage, check.seen.value).inc()
            self._health[stage] = health = self._health[stage].after(check)
            self._report(stage, down_reason(health, down_after_s=self.down_after_s))

    def _check_of(self, call: grpc.Future) -> Check:
        try:
            answer = call.result()
        except grpc.RpcError as exc:
            return Check(time.monotonic(), Seen.UNREACHABLE, _unreachable(exc, self.interval_s))
        if answer.status == health_pb2.HealthCheckResponse.SERVING:
            return Check(time.monotonic(), Seen.SERVING, "SERVING")
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
        return Check(time.monotonic(), Seen.NOT_SERVING, status)

    def _report(self, stage: str, why: str | None) -> None:
        address = self.targets[stage]
        if why is None:
            if stage in self._down:
                self._down.discard(stage)
                log.info("stage.up", stage=stage, address=address)
            self._on_up(stage)
            return
        if stage not in self._down:
            self._down.add(stage)
            log.warning("stage.down", stage=stage, address=address, why=why)
        self._on_down(stage, f"{address} {why}")

    def _stub(self, stage: str) -> health_pb2_grpc.HealthStub:
        channel = self._channels.get(stage)
        if channel is None:
            address = self.targets[stage]
            channel = open_channel(address, self._credentials)
            self._channels[stage] = channel
        return health_pb2_grpc.HealthStub(channel)

    def _drop(self, stage: str) -> None:
        channel = self._channels.pop(stage, None)
        if channel is not None:
            channel.close()


def stage_watch(
    settings: Settings, *, on_down: Callable[[str, str], None], on_up: Callable[[str], None]
) -> StageHealthWatch | None:
    """The watch ``pipeline.stage_health`` asks for (not started), or None without one.
    Its channels use this process's TLS client settings, unless the addresses are the
    stages' plain-text probe ports (``pipeline.stage_health_plaintext``)."""
    pipeline = settings.pipeline
    targets = pipeline.stage_health_targets
    if not targets:
        return None
    credentials = None if pipeline.stage_health_plaintext else channel_credentials(settings.tls)
    return StageHealthWatch(
        targets,
        on_down=on_down,
        on_up=on_up,
        interval_s=pipeline.stage_check_interval_s,
        down_after_s=pipeline.stage_down_after_s,
        credentials=credentials,
    )
