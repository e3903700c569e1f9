"""gRPC plumbing shared by every CodeJury server: error mapping and server start-up.

One interceptor maps the error kinds of ``codejury.core.errors`` to status codes, so
servicers raise domain errors and never touch ``context.abort``. Unknown exceptions
become INTERNAL with a generic message (the details go to the log, not to the caller,
who may be sending untrusted code).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent import futures
from typing import Any

import grpc

from codejury.core.errors import (
    CodeJuryError,
    DeadlineExceededError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    PermanentError,
    ResourceExhaustedError,
    TemporaryError,
)
from codejury.core.logging import get_logger

log = get_logger(__name__)


def status_for(exc: BaseException) -> grpc.StatusCode:
    """The status code for a domain error (the order matters: most specific first)."""
    if isinstance(exc, InvalidArgumentError):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(exc, NotFoundError):
        return grpc.StatusCode.NOT_FOUND
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


class ErrorMappingInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Turns exceptions raised by unary handlers into gRPC statuses."""

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method

        def wrap_unary(behaviour: Callable[[Any, grpc.ServicerContext], Any]) -> Callable[..., Any]:
            def call(request: Any, context: grpc.ServicerContext) -> Any:
                try:
                    return behaviour(request, context)
                except CodeJuryError as exc:
                    log.info("grpc.rejected", method=method, error=str(exc))
                    context.abort(status_for(exc), str(exc))
                except Exception:
                    log.exception("grpc.internal_error", method=method)
                    context.abort(grpc.StatusCode.INTERNAL, "internal error; see the server log")

            return call

        def wrap_stream(
            behaviour: Callable[[Any, grpc.ServicerContext], Any],
        ) -> Callable[..., Any]:
            def call(request: Any, context: grpc.ServicerContext) -> Any:
                try:
                    yield from behaviour(request, context)
                except CodeJuryError as exc:
                    log.info("grpc.rejected", method=method, error=str(exc))
                    context.abort(status_for(exc), str(exc))
                except Exception:
                    log.exception("grpc.internal_error", method=method)
                    context.abort(grpc.StatusCode.INTERNAL, "internal error; see the server log")

            return call

        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                wrap_unary(handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                wrap_stream(handler.unary_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler


def make_server(
    registrations: Sequence[Callable[[grpc.Server], None]],
    *,
    host: str,
    port: int,
    max_workers: int,
    max_message_bytes: int = 64 << 20,
) -> tuple[grpc.Server, int]:
    """A started-ready (not started) server with the error interceptor; returns the port."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers),
        interceptors=[ErrorMappingInterceptor()],
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
        ],
    )
    for register in registrations:
        register(server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise CodeJuryError(f"cannot listen on {host}:{port}: is the port in use?")
    return server, bound
