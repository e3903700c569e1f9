"""gRPC plumbing shared by every CodeJury server: errors, health, reflection, start and stop.

One interceptor maps the error kinds of ``codejury.core.errors`` to status codes, so
servicers raise domain errors and never touch ``context.abort``. Unknown exceptions
become INTERNAL with a generic message (the details go to the log, not to the caller,
who may be sending untrusted code).

Every server also answers ``grpc.health.v1.Health`` (what Kubernetes' ``grpc:`` probes
and load balancers ask): SERVING from start, NOT_SERVING as soon as a stop begins, so
a readiness probe takes the pod out of its Service while in-flight calls drain. And,
unless ``grpc.reflection`` is off, server reflection (``grpc.reflection.v1alpha``, which
``grpcurl`` falls back to from v1) listing exactly the services it serves; a probe-only
server (the TLS probe port, ``health_server``) serves health alone.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Sequence
from concurrent import futures
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection as server_reflection

from codejury.core import metrics
from codejury.core.errors import (
    CodeJuryError,
    DeadlineExceededError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    PermanentError,
    ResourceExhaustedError,
    TemporaryError,
    UnauthenticatedError,
)
from codejury.core.logging import get_logger
from codejury.core.tracing import NO_TRACING, Span, Tracing, carrier_of

log = get_logger(__name__)


def status_for(exc: BaseException) -> grpc.StatusCode:
    """The status code for a domain error (the order matters: most specific first)."""
    if isinstance(exc, InvalidArgumentError):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(exc, NotFoundError):
        return grpc.StatusCode.NOT_FOUND
    if isinstance(exc, UnauthenticatedError):
        return grpc.StatusCode.UNAUTHENTICATED
    if isinstance(exc, FailedPreconditionError):
        return grpc.StatusCode.FAILED_PRECONDITION
    if isinstance(exc, ResourceExhaustedError):
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    if isinstance(exc, DeadlineExceededError):
        return grpc.StatusCode.DEADLINE_EXCEEDED
    if isinstance(exc, TemporaryError):
        return grpc.StatusCode.UNAVAILABLE
    if isinstance(exc, PermanentError):
        return grpc.StatusCode.FAILED_PRECONDITION
    return grpc.StatusCode.INTERNAL


#: What a server interceptor is given to reach the next one (and, last, the handler).
Continuation = Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None]


#: Codes that are the server's failure, not the caller's: the span's status is ERROR
#: (OpenTelemetry's gRPC conventions for server spans).
_SERVER_FAULTS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)
#: Probes and tooling: counted, never traced (a probe every few seconds is no request).
_UNTRACED = ("/grpc.health.v1.", "/grpc.reflection.")


class _Call:
    """One RPC's metrics and span: started when created, ended with its code at ``done``
    (or ``failed``, which maps the exception to the code and message to abort with)."""

    def __init__(self, method: str, kind: str, span: Span) -> None:
        self._method = method
        service, _, name = method.lstrip("/").rpartition("/")
        self._labels = (service, name, kind)
        self._started = time.monotonic()
        self._span = span
        metrics.GRPC_STARTED.labels(*self._labels).inc()

    def done(self, code: grpc.StatusCode) -> None:
        metrics.GRPC_HANDLED.labels(*self._labels, code.name).inc()
        metrics.GRPC_SECONDS.labels(*self._labels).observe(time.monotonic() - self._started)
        self._span.set({"rpc.grpc.status_code": code.value[0]})
        if code in _SERVER_FAULTS:
            self._span.fail(code.name)

    def failed(self, exc: Exception) -> tuple[grpc.StatusCode, str]:
        if isinstance(exc, CodeJuryError):
            log.info("grpc.rejected", method=self._method, error=str(exc))
            self.done(status_for(exc))
            return status_for(exc), str(exc)
        log.exception("grpc.internal_error", method=self._method)
        self.done(grpc.StatusCode.INTERNAL)
        self._span.set({"error.type": type(exc).__qualname__})
        return grpc.StatusCode.INTERNAL, "internal error; see the server log"


class ErrorMappingInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Turns exceptions raised by handlers into gRPC statuses, counts every RPC
    (``core.metrics``: started, handled by code, latency) and, with ``tracing`` on, makes
    a server span of it: the child of the caller's ``traceparent`` when it sent one."""

    def __init__(self, tracing: Tracing = NO_TRACING) -> None:
        self._tracing = tracing

    def intercept_service(
        self,
        continuation: Continuation,
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        tracing = NO_TRACING if method.startswith(_UNTRACED) else self._tracing
        service, _, name = method.lstrip("/").rpartition("/")

        def span() -> AbstractContextManager[Span]:
            if not tracing.enabled:
                return tracing.span(method)
            return tracing.span(
                method.lstrip("/"),
                kind="server",
                remote_parent=carrier_of(handler_call_details.invocation_metadata),
                attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": name},
            )

        # The abort is outside the span: it raises, and a caller's mistake (an invalid
        # argument) is not the server's error; done() set the span's status already.
        def wrap_unary(behaviour: Callable[[Any, grpc.ServicerContext], Any]) -> Callable[..., Any]:
            def call(request: Any, context: grpc.ServicerContext) -> Any:
                with span() as current:
                    rpc = _Call(method, "unary", current)
                    try:
                        response = behaviour(request, context)
                    except Exception as exc:
                        code, message = rpc.failed(exc)
                    else:
                        rpc.done(_code_of(context))
                        return response
                context.abort(code, message)

            return call

        def wrap_stream(
            behaviour: Callable[[Any, grpc.ServicerContext], Any], kind: str
        ) -> Callable[..., Any]:
            # ``request`` is the request, or for a bidirectional stream their iterator
            def call(request: Any, context: grpc.ServicerContext) -> Any:
                with span() as current:
                    rpc = _Call(method, kind, current)
                    try:
                        yield from behaviour(request, context)
                    except GeneratorExit:  # the caller left between two answers: grpc closed us
                        rpc.done(grpc.StatusCode.CANCELLED)
                        raise
                    except Exception as exc:
                        if not context.is_active():
                            # The caller left (a reflection client drops the stream after
                            # its answer): its request iterator raised. Nobody to answer,
                            # no fault.
                            rpc.done(grpc.StatusCode.CANCELLED)
                            return
                        code, message = rpc.failed(exc)
                    else:
                        rpc.done(_code_of(context))
                        return
                context.abort(code, message)

            return call

        if handler.unary_unary:
            return _replaced(handler, wrap_unary(handler.unary_unary))
        if handler.unary_stream:
            return _replaced(handler, wrap_stream(handler.unary_stream, "server_stream"))
        if handler.stream_stream:  # server reflection
            return _replaced(handler, wrap_stream(handler.stream_stream, "bidi_stream"))
        return handler


class BearerTokenInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Requires ``authorization: Bearer <token>`` with one of ``tokens`` on every RPC but
    health checks (probes carry no credential). Tokens are compared in constant time; a
    refused call never reaches its servicer. Put it after ``ErrorMappingInterceptor``,
    which turns the refusal into UNAUTHENTICATED and counts it."""

    _EXEMPT = "/grpc.health.v1.Health/"

    def __init__(self, tokens: Sequence[str], *, how: str) -> None:
        if not tokens or not all(tokens):
            raise ValueError("tokens: give at least one non-empty token")
        self._tokens = [t.encode() for t in tokens]
        self._how = how  # how a caller sends a token: the refusal says it

    def intercept_service(
        self,
        continuation: Continuation,
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(self._EXEMPT):
            return handler
        metadata = dict(handler_call_details.invocation_metadata or ())
        scheme, _, token = str(metadata.get("authorization", "")).partition(" ")
        # every token compared, so the time taken says nothing about which one was close
        matches = [hmac.compare_digest(token.encode(), known) for known in self._tokens]
        if scheme.lower() == "bearer" and any(matches):
            return handler
        problem = "no bearer token" if not token else "a bearer token that is not accepted"
        refusal = UnauthenticatedError(f"the request carries {problem}: {self._how}")

        def refuse(_request: Any, _context: grpc.ServicerContext) -> Any:
            raise refusal

        return _replaced(handler, refuse)


def _replaced(
    handler: grpc.RpcMethodHandler, behaviour: Callable[..., Any]
) -> grpc.RpcMethodHandler:
    """A handler like ``handler`` (its kind, its (de)serializers) that runs ``behaviour``:
    a server stream stays one, a bidirectional stream (server reflection) stays one;
    anything else answers once (CodeJury serves no client streams)."""
    if handler.unary_stream:
        make = grpc.unary_stream_rpc_method_handler
    elif handler.stream_stream:
        make = grpc.stream_stream_rpc_method_handler
    else:
        make = grpc.unary_unary_rpc_method_handler
    return make(
        behaviour,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def _code_of(context: grpc.ServicerContext) -> grpc.StatusCode:
    """The code a handler that returned normally set (``context.set_code``), else OK."""
    code = context.code() if hasattr(context, "code") else None
    return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.OK


def open_channel(
    address: str,
    credentials: grpc.ChannelCredentials | None,
    *,
    max_message_bytes: int | None = None,
) -> grpc.Channel:
    """A channel to ``address``: TLS with ``credentials`` (core.tls), else plain text;
    with ``max_message_bytes``, messages up to that size both ways."""
    options = (
        [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
        ]
        if max_message_bytes is not None
        else []
    )
    if credentials is None:
        return grpc.insecure_channel(address, options=options)
    return grpc.secure_channel(address, credentials, options=options)


@dataclass
class GrpcServer:
    """A gRPC server with its health service: start it, and stop it draining."""

    server: grpc.Server
    port: int
    health: health.HealthServicer
    probe: grpc.Server | None = None  # grpc.health.v1 alone in plain text (a TLS server's)
    probe_port: int | None = None

    def start(self, *, serving: bool = True) -> None:
        """Start answering; ``serving=False`` for a process that says when it is ready."""
        self.server.start()
        if self.probe is not None:
            self.probe.start()
        self.set_serving(serving)

    def set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse
        self.health.set("", status.SERVING if serving else status.NOT_SERVING)

    def stop(self, grace_s: float) -> None:
        """NOT_SERVING first (probes and balancers stop sending), then drain ``grace_s``."""
        self.health.enter_graceful_shutdown()
        self.server.stop(grace=grace_s).wait()
        if self.probe is not None:  # said NOT_SERVING through the drain; now gone too
            self.probe.stop(grace=None).wait()


#: Adds one service's servicer to a server and returns the service's full name
#: (``codejury.v1.Solve``): what reflection lists. Each service's ``register`` makes one.
Registration = Callable[[grpc.Server], str]


#: gRPC turns SO_REUSEPORT on by default: a second server on a port in use binds it too
#: and the kernel splits new connections between the two, so a second deployment on one
#: host (a demo beside ``codejury up``) silently served the first one's requests. Off, the
#: bind fails and says so.
EXCLUSIVE_PORT = ("grpc.so_reuseport", 0)


def make_server(
    registrations: Sequence[Registration],
    *,
    host: str,
    port: int,
    max_workers: int,
    max_message_bytes: int = 64 << 20,
    interceptors: Sequence[grpc.ServerInterceptor] = (),
    credentials: grpc.ServerCredentials | None = None,
    probe_port: int | None = None,
    reflection: bool = True,
    tracing: Tracing = NO_TRACING,
) -> GrpcServer:
    """A server (not started) with the error interceptor, ``grpc.health.v1`` and, with
    ``reflection`` (``grpc.reflection``), server reflection over what it serves.

    Health answers NOT_SERVING until ``start``: a probe that reaches the port early
    does not route traffic to a server whose services are not registered yet. With
    ``credentials`` and ``probe_port``, the same health service is also served alone in
    plain text there (kubelet's gRPC probes do not speak TLS; nothing else is exposed).
    Reflection goes through ``interceptors`` like any RPC: behind a bearer token, it
    needs one (it shows the API, not data; health alone is exempt, for probes).
    ``tracing``: a server span per RPC (``ErrorMappingInterceptor``)."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers),
        interceptors=[ErrorMappingInterceptor(tracing), *interceptors],
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            EXCLUSIVE_PORT,
        ],
    )
    served = [register(server) for register in registrations]
    # The interceptor re-wraps stream handlers, so a Watch holds a pool thread while it
    # lasts (the blocking form); probes and balancers use Check.
    checker = health.HealthServicer(experimental_non_blocking=False)
    checker.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    served.append(health.SERVICE_NAME)
    if reflection:  # the descriptors come from the default pool, where the stubs put them
        served.append(server_reflection.SERVICE_NAME)
        server_reflection.enable_server_reflection(served, server)
    # credentials: TLS only on this port (core.tls); else plain text
    bound = _bind(server, f"{host}:{port}", credentials, "")
    if credentials is None or probe_port is None:
        return GrpcServer(server, bound, checker)
    probe = grpc.server(futures.ThreadPoolExecutor(max_workers=2), options=[EXCLUSIVE_PORT])
    health_pb2_grpc.add_HealthServicer_to_server(checker, probe)
    _bind(probe, f"0.0.0.0:{probe_port}", None, " (tls.probe_port)")
    return GrpcServer(server, bound, checker, probe, probe_port)


def _bind(
    server: grpc.Server, address: str, credentials: grpc.ServerCredentials | None, what: str
) -> int:
    """The port ``server`` listens on at ``address``, or CodeJuryError saying what to do."""
    try:
        if credentials is None:
            bound = server.add_insecure_port(address)
        else:
            bound = server.add_secure_port(address, credentials)
    except RuntimeError:  # grpcio raises where older releases returned 0
        bound = 0
    if not bound:
        raise CodeJuryError(
            f"cannot listen on {address}{what}: is the port in use (another codejury "
            "deployment on this host)? stop it, or pick another port (0: any free one)"
        )
    return int(bound)


def health_server(host: str, port: int) -> GrpcServer:
    """Only ``grpc.health.v1``: the probe port of a process that serves no gRPC itself
    (the Celery sandbox worker, the traffic exporter). No reflection: like the TLS probe
    port, it is for probes, and has nothing else to show."""
    return make_server([], host=host, port=port, max_workers=2, reflection=False)
