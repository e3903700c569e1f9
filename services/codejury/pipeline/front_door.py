"""The Solve gRPC service: publish a request, answer when its completion event arrives.

Back-pressure is a counter, not a queue: beyond ``max_in_flight`` waiting requests the
RPC fails at once with RESOURCE_EXHAUSTED, so a burst cannot pile up work (and memory)
that no client is still waiting for. Every wait ends at the request's deadline; a late
completion finds no waiter and is dropped, so nothing stays behind.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import grpc
import structlog

from codejury.bus.producer import EventProducer
from codejury.bus.tail import TopicTail
from codejury.bus.topics import SOLVE_COMPLETED, SOLVE_REQUESTED
from codejury.core import metrics
from codejury.core.errors import ConfigurationError
from codejury.core.grpc import BearerTokenInterceptor, Registration, make_server
from codejury.core.logging import get_logger
from codejury.core.settings import Settings
from codejury.core.tls import server_credentials
from codejury.core.tracing import NO_TRACING, TRACEPARENT, Tracing, open_tracing
from codejury.pipeline.completions import PendingCompletions
from codejury.pipeline.errors import (
    InvalidSolveRequestError,
    SolveDeadlineError,
    SolveFailedError,
    SolveInternalError,
    StageDownError,
    StageUnavailableError,
    TooManyRequestsError,
)
from codejury.pipeline.requests import SolveLimits, check_solve_request, deadline_of, response_of
from codejury.pipeline.stage_watch import StageHealthWatch, stage_watch
from codejury.proto.v1 import events_pb2, services_pb2, services_pb2_grpc
from codejury.reranking.ranking import resolve_selection

log = get_logger(__name__)


class DownSource(StrEnum):
    """Who says a stage is down. Each clears only what it said itself: the watch seeing a
    stage SERVING again does not end an outage ``codejury up`` is still restarting."""

    SUPERVISOR = "supervisor"  # codejury up saw the stage's process exit
    HEALTH = "health"  # the stage health watch (pipeline.stage_health)


class SolveServicer(services_pb2_grpc.SolveServicer):
    def __init__(
        self,
        limits: SolveLimits,
        producer: EventProducer,
        pending: PendingCompletions,
        *,
        max_in_flight: int,
        tracing: Tracing = NO_TRACING,
    ) -> None:
        self._limits = limits
        self._tracing = tracing
        self._producer = producer
        self._publish_lock = threading.Lock()  # the producer's pending list is not thread-safe
        self._pending = pending
        self._max_in_flight = max_in_flight
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._down: dict[tuple[str, DownSource], str] = {}  # (stage, who says) -> why
        self._down_lock = threading.Lock()

    def stage_down(self, stage: str, why: str, *, source: DownSource) -> None:
        """Refuse new requests at once while ``stage`` has no live consumer."""
        with self._down_lock:
            self._down[(stage, source)] = why
            metrics.STAGE_UP.labels(stage).set(0)

    def stage_up(self, stage: str, *, source: DownSource) -> None:
        """``source`` sees ``stage`` up again: it takes requests unless another source
        still says it is down."""
        with self._down_lock:
            self._down.pop((stage, source), None)
            still = any(down == stage for down, _ in self._down)
            metrics.STAGE_UP.labels(stage).set(0 if still else 1)

    def stages_down(self) -> dict[str, str]:
        """Each stage that is down now -> why (every source's reason)."""
        with self._down_lock:
            down = sorted(self._down.items())
        reasons: dict[str, list[str]] = {}
        for (stage, _source), why in down:
            reasons.setdefault(stage, []).append(why)
        return {stage: "; ".join(whys) for stage, whys in reasons.items()}

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def Solve(
        self, request: services_pb2.SolveRequest, context: grpc.ServicerContext
    ) -> services_pb2.SolveResponse:
        check_solve_request(request, self._limits)
        down = self.stages_down()
        if down:
            # In-flight requests keep waiting: the restarted stage resumes from its last
            # committed offset and answers them. A new one would only wait out its deadline.
            reasons = "; ".join(f"{stage}: {why}" for stage, why in down.items())
            raise StageDownError(
                f"a stage of this deployment is down ({reasons}): retry in a few seconds",
                delay_s=2.0,
            )
        if not self._slots.acquire(blocking=False):
            raise TooManyRequestsError(
                f"{self._max_in_flight} solve requests are already in flight "
                "(pipeline.max_in_flight); retry with backoff"
            )
        # traced, the server span's trace (the caller's traceparent's, or a new one); else
        # the caller's traceparent's id or a new one: the same id either way
        trace_id = self._tracing.current_trace_id() or trace_id_of(context.invocation_metadata())
        # the caller can find its request in every stage's log by this id
        context.set_trailing_metadata(((TRACE_HEADER, trace_id),))
        try:
            with structlog.contextvars.bound_contextvars(trace_id=trace_id):
                return self._solve(
                    request,
                    deadline_of(request, self._limits, context.time_remaining()),
                    trace_id,
                    context,
                )
        finally:
            self._slots.release()

    def _solve(
        self,
        request: services_pb2.SolveRequest,
        deadline_s: float,
        trace_id: str,
        context: grpc.ServicerContext,
    ) -> services_pb2.SolveResponse:
        request_id = request.request_id or uuid.uuid4().hex
        self._tracing.annotate(
            {
                "codejury.request_id": request_id,
                "codejury.problem_id": request.problem.problem_id,
                "codejury.language": request.problem.language,
                "codejury.n": request.n,
                "codejury.deadline_s": round(deadline_s, 3),
            }
        )
        try:
            waiter = self._pending.register(request_id)
        except KeyError:
            raise InvalidSolveRequestError(
                f"request_id: {request_id!r} is already in flight; use a new id per request"
            ) from None
        # called when the RPC ends however it ends; False: it has ended already
        if not context.add_callback(waiter.cancel):
            waiter.cancel()
        try:
            requested = events_pb2.SolveRequested(
                request_id=request_id,
                problem=request.problem,
                n=request.n,
                sampling=request.sampling,
                selection=resolve_selection(request.selection, request.problem),
            )
            with self._publish_lock:
                self._producer.publish_now(
                    SOLVE_REQUESTED,
                    requested,
                    key=request_id,
                    trace_id=trace_id,
                    # the stages drop it once nobody waits for its answer
                    deadline=datetime.now(UTC) + timedelta(seconds=deadline_s),
                )
            completed = waiter.wait(deadline_s)
        finally:
            self._pending.discard(request_id)
        if completed is None and waiter.cancelled:
            # nobody to answer: the stages still finish it (its envelope deadline drops it
            # once passed), and its completion will find no waiter
            log.info("solve.cancelled", request_id=request_id)
            raise SolveDeadlineError(f"request {request_id} was cancelled by the caller")
        if completed is None:
            log.info("solve.deadline", request_id=request_id, deadline_s=deadline_s)
            raise SolveDeadlineError(
                f"request {request_id} got no completion within {deadline_s:g}s; raise "
                "deadline_s, lower n, or check that every service of the pipeline is running"
            )
        self._tracing.annotate(
            {
                "codejury.reranker_version": completed.reranker_version,
                "codejury.error_kind": completed.error_kind,
            }
        )
        if completed.error:
            message = f"request {request_id} failed: {completed.error}"
            if completed.error_kind == "unavailable":
                raise StageUnavailableError(message, delay_s=2.0)
            if completed.error_kind == "internal":
                raise SolveInternalError(message)
            raise SolveFailedError(message)
        return response_of(completed)


def register(servicer: SolveServicer) -> Registration:
    """A registration callback for ``codejury.core.grpc.make_server``."""

    def add(server: grpc.Server) -> str:
        services_pb2_grpc.add_SolveServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
        return str(services_pb2.DESCRIPTOR.services_by_name["Solve"].full_name)

    return add


#: The most a Solve request or reply may weigh on the wire (gRPC refuses more with
#: RESOURCE_EXHAUSTED before the servicer runs).
FRONT_DOOR_MAX_MESSAGE_BYTES = 4 << 20

#: The response's trailing metadata key that carries the request's trace id.
TRACE_HEADER = "x-codejury-trace-id"
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


def trace_id_of(metadata: Sequence[tuple[str, str | bytes]] | None) -> str:
    """The trace id of a W3C ``traceparent`` the caller sent (its tracing system's), else
    a new one of the same form (32 hex digits)."""
    for key, value in metadata or ():
        if key == TRACEPARENT and isinstance(value, str):
            found = _TRACEPARENT.match(value.strip().lower())
            if found and found.group(1) != "0" * 32:
                return found.group(1)
    return uuid.uuid4().hex


_HOW = "send `authorization: Bearer <token>` (codejury solve: CODEJURY_PIPELINE__TOKEN)"


def accepted_tokens(settings: Settings) -> list[str]:
    """The bearer tokens the front door accepts: ``pipeline.auth_tokens`` (comma-separated)
    and the lines of ``pipeline.auth_tokens_file``. None: no authentication."""
    pipeline = settings.pipeline
    tokens = []
    if pipeline.auth_tokens is not None:
        tokens += pipeline.auth_tokens.get_secret_value().split(",")
    if pipeline.auth_tokens_file is not None:
        try:
            tokens += pipeline.auth_tokens_file.read_text().splitlines()
        except OSError as exc:
            raise ConfigurationError(
                f"pipeline.auth_tokens_file={pipeline.auth_tokens_file}: cannot be read "
                f"({exc.strerror}): mount the Secret there or unset it"
            ) from exc
    return [t.strip() for t in tokens if t.strip()]


class SolveFrontDoor:
    """The Solve server with its producer and completion tail, started and stopped as one.

    Traced (``settings.tracing``, or ``tracing`` given), every Solve is a server span and
    the root of its trace: the request's record carries its ``traceparent`` to the
    stages. A ``Tracing`` the door builds itself is closed (flushed) with it."""

    def __init__(
        self, settings: Settings, *, port: int | None = None, tracing: Tracing | None = None
    ) -> None:
        pipeline = settings.pipeline
        # What the settings can refuse, before a Kafka client is opened that would be left
        limits = SolveLimits.from_settings(settings)
        tokens = accepted_tokens(settings)
        credentials = server_credentials(settings.tls)
        self._own_tracing = tracing is None
        self.tracing = (
            open_tracing(settings.tracing, "solve", tls=settings.tls)
            if tracing is None
            else tracing
        )
        self.pending = PendingCompletions()
        self._producer = EventProducer(settings.bus, name="solve-front-door", tracing=self.tracing)
        try:
            # The tail is positioned before the server accepts a request: no completion of
            # a request we publish can come before it.
            self._tail = TopicTail(
                settings.bus,
                SOLVE_COMPLETED,
                self.pending.on_event,
                start=pipeline.completions_from,
                name="solve-completions",
            )
        except BaseException:
            self._producer.close()
            self._close_tracing()
            raise
        self.servicer = SolveServicer(
            limits,
            self._producer,
            self.pending,
            max_in_flight=pipeline.max_in_flight,
            tracing=self.tracing,
        )
        servicer = self.servicer
        # Where nothing else tells the servicer a stage is down (a cluster): health checks.
        self.watch: StageHealthWatch | None = stage_watch(
            settings,
            on_down=lambda stage, why: servicer.stage_down(stage, why, source=DownSource.HEALTH),
            on_up=lambda stage: servicer.stage_up(stage, source=DownSource.HEALTH),
        )
        self.authenticated = bool(tokens)
        try:
            self.grpc = make_server(
                [register(self.servicer)],
                host=pipeline.grpc_host,
                port=pipeline.grpc_port if port is None else port,
                # More threads than slots: the request beyond the limit must reach the
                # servicer to be refused, rather than wait in gRPC's queue.
                max_workers=pipeline.max_in_flight + 4,
                credentials=credentials,
                probe_port=settings.tls.probe_port,
                reflection=settings.grpc.reflection,
                interceptors=[BearerTokenInterceptor(tokens, how=_HOW)] if tokens else [],
                # A request must fit one Kafka record (pipeline/requests.py), and so does the
                # reply it is built from: a few MiB bound what an unauthenticated caller can
                # make the server read into memory (the stages' servers keep 64 MiB batches).
                max_message_bytes=FRONT_DOOR_MAX_MESSAGE_BYTES,
                tracing=self.tracing,
            )
        except BaseException:  # a port in use: close the Kafka clients opened above
            self._tail.stop()
            self._producer.close()
            self._close_tracing()
            raise
        self.host = pipeline.grpc_host
        self.port = self.grpc.port
        if not tokens:
            # Zero-config on loopback is the embedded deployment's promise (said, quietly);
            # anywhere else an open door runs strangers' code: a warning where the
            # operator looks.
            loopback = self.host in ("127.0.0.1", "localhost", "::1")
            (log.info if loopback else log.warning)(
                "solve.unauthenticated",
                host=self.host,
                port=self.port,
                fix="set CODEJURY_PIPELINE__AUTH_TOKENS or _AUTH_TOKENS_FILE before "
                "listening beyond loopback",
            )

    def start(self) -> SolveFrontDoor:
        self._tail.start()
        self.grpc.start()
        if self.watch is not None:
            self.watch.start()
        return self

    def stop(self, grace_s: float = 10.0) -> None:
        """Stop taking requests, let waiting ones finish within ``grace_s``, then close."""
        if self.watch is not None:
            self.watch.stop()
        self.grpc.stop(grace_s)
        self._tail.stop()
        try:
            self._producer.close()
        finally:
            self._close_tracing()

    def _close_tracing(self) -> None:
        if self._own_tracing:
            self.tracing.close()

    def __enter__(self) -> SolveFrontDoor:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
