"""``kserve.ModelServer`` with both servers bound to one chosen host.

KServe 0.21 binds its REST server to ``0.0.0.0`` (a uvicorn.Config it builds) and its
gRPC server to ``[::]``, and offers no setting for either. In a pod that is what the
cluster needs; on a developer's machine the embedded mode must listen on loopback only.
Rather than patching KServe's globals, this subclass reuses KServe's own pieces and
changes only where they listen:

- REST: KServe's ``RESTServer`` (its FastAPI app, v1 and v2 routes, error handlers) is
  served on a socket we bind ourselves, through uvicorn's documented
  ``Server.serve(sockets=...)``; binding first also tells us the port when 0 was asked.
- gRPC: KServe's ``InferenceServicer`` and interceptors on an ``aio`` server whose
  address we choose; ``add_insecure_port`` (``add_secure_port`` with TLS) returns the
  bound port. Beside it, as on every CodeJury gRPC server, ``grpc.health.v1`` (SERVING
  once it listens, NOT_SERVING from the start of a shutdown) and, with
  ``grpc.reflection``, server reflection; KServe's own server has neither, nor TLS.

``on_ready`` is called once both listen, with the ports actually bound.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection as server_reflection
from kserve import ModelServer, PredictorConfig  # type: ignore[import-untyped]
from kserve.constants.constants import FASTAPI_APP_IMPORT_STRING  # type: ignore[import-untyped]
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc  # type: ignore[import-untyped]
from kserve.protocol.grpc.interceptors import (  # type: ignore[import-untyped]
    ExceptionToStatusInterceptor,
    LoggingInterceptor,
)
from kserve.protocol.grpc.server import GRPCServer  # type: ignore[import-untyped]
from kserve.protocol.grpc.servicer import InferenceServicer  # type: ignore[import-untyped]
from kserve.protocol.rest.server import RESTServer  # type: ignore[import-untyped]

from codejury.core.grpc import EXCLUSIVE_PORT
from codejury.reranking.errors import ModelServerError

MAX_MESSAGE_BYTES = 64 << 20


@dataclass(frozen=True, slots=True)
class BoundPorts:
    host: str
    http_port: int
    grpc_port: int


def host_port(host: str, port: int) -> str:
    """``host:port``, with IPv6 hosts in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket listening on ``host:port`` (0: any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        raise ModelServerError(
            f"cannot listen on {host_port(host, port)} for KServe REST ({exc}): is the port in "
            "use? pick another with --http-port (0: any)"
        ) from exc


class _BoundRESTServer(RESTServer):  # type: ignore[misc]
    def __init__(self, *args: Any, listener: socket.socket, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        host, port = listener.getsockname()[:2]
        self.config.host, self.config.port = host, port  # what uvicorn logs
        self._listener = listener

    async def start(self) -> None:
        self.create_application()
        await self._server.serve(sockets=[self._listener])

    def request_exit(self) -> None:
        self._server.should_exit = True


INFERENCE_SERVICE = "inference.GRPCInferenceService"


class _BoundGRPCServer(GRPCServer):  # type: ignore[misc]
    def __init__(
        self,
        *args: Any,
        host: str,
        on_started: Callable[[int], None],
        credentials: grpc.ServerCredentials | None = None,
        reflection: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._host = host
        self._on_started = on_started
        self._credentials = credentials
        self._reflection = reflection
        self.health = health.aio.HealthServicer()

    def _add_health_and_reflection(self) -> None:
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        if self._reflection:
            served = (INFERENCE_SERVICE, health.SERVICE_NAME, server_reflection.SERVICE_NAME)
            server_reflection.enable_server_reflection(served, self._server)

    async def stop(self, sig: int | None = None) -> None:
        """NOT_SERVING first (probes and balancers stop sending), then KServe's drain."""
        await self.health.enter_graceful_shutdown()
        await super().stop(sig)

    async def start(self, max_workers: int) -> None:
        self._server = aio.server(
            futures.ThreadPoolExecutor(max_workers=max_workers),
            interceptors=(LoggingInterceptor(), ExceptionToStatusInterceptor()),
            options=[
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                EXCLUSIVE_PORT,  # a port in use fails here, not shared
            ],
        )
        grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
            InferenceServicer(self._data_plane, self._model_repository_extension), self._server
        )
        self._add_health_and_reflection()
        address = host_port(self._host, self._port)
        try:
            if self._credentials is None:
                bound = self._server.add_insecure_port(address)
            else:  # TLS only on this port (core.tls)
                bound = self._server.add_secure_port(address, self._credentials)
        except RuntimeError as exc:
            raise ModelServerError(
                f"cannot listen on {address} for KServe gRPC ({exc}): is the port in use? "
                "pick another with --grpc-port (0: any)"
            ) from exc
        await self._server.start()
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        self._on_started(bound)
        await self._server.wait_for_termination()


class BoundModelServer(ModelServer):  # type: ignore[misc]
    """A KServe model server whose REST and gRPC servers listen on ``host`` only."""

    def __init__(
        self,
        *,
        host: str,
        http_port: int,
        grpc_port: int,
        on_ready: Callable[[BoundPorts], None],
        max_threads: int = 4,
        grace_period_s: int = 10,
        grpc_credentials: grpc.ServerCredentials | None = None,
        reflection: bool = True,
    ) -> None:
        super().__init__(
            http_port=http_port,
            grpc_port=grpc_port,
            workers=1,
            max_threads=max_threads,
            enable_grpc=True,
            enable_docs_url=False,
            enable_latency_logging=False,
            grace_period=grace_period_s,
            # Explicit, so that nothing depends on KServe's parse of our argv.
            predictor_config=PredictorConfig(predictor_host=""),
        )
        self.host = host
        self._on_ready = on_ready
        self._grpc_credentials = grpc_credentials
        self._reflection = reflection
        self._bound_rest: _BoundRESTServer | None = None

    def start(self, models: list[Any]) -> None:
        """Serve ``models`` (already loaded) until SIGINT/SIGTERM."""
        self._register_and_check_atleast_one_model_is_ready(models)
        asyncio.run(self._serve_bound())

    async def _serve_bound(self) -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(self.default_exception_handler)
        workers = self.max_asyncio_workers or min(32, (os.cpu_count() or 1) + 4)
        loop.set_default_executor(futures.ThreadPoolExecutor(max_workers=workers))
        self.register_signal_handler()
        listener = listening_socket(self.host, self.http_port)
        http_port = listener.getsockname()[1]
        self._bound_rest = _BoundRESTServer(
            FASTAPI_APP_IMPORT_STRING,
            self.dataplane,
            self.model_repository_extension,
            http_port,
            workers=1,
            grace_period=self.grace_period,
            event_loop="asyncio",
            timeout_keep_alive=self.timeout_keep_alive,
            listener=listener,
        )
        self._rest_server = self._bound_rest
        self._grpc_server = _BoundGRPCServer(
            self.grpc_port,
            self.dataplane,
            self.model_repository_extension,
            kwargs={},
            grace_period=self.grace_period,
            host=self.host,
            on_started=lambda port: self._on_ready(BoundPorts(self.host, http_port, port)),
            credentials=self._grpc_credentials,
            reflection=self._reflection,
        )
        await asyncio.gather(self._bound_rest.start(), self._grpc_server.start(self.max_threads))

    def stop(self, sig: int) -> None:
        """Stop both servers (KServe's own ``stop`` leaves a single REST server running)."""
        if self._bound_rest is not None:
            self._bound_rest.request_exit()
        super().stop(sig)
