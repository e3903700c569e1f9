"""A Solve client: what ``codejury solve``, ``codejury eval`` and the demo call."""

from __future__ import annotations

import grpc

from codejury.core.errors import TemporaryError
from codejury.pipeline.errors import PipelineError
from codejury.proto.v1 import domain_pb2, services_pb2, services_pb2_grpc

_MAX_MESSAGE_BYTES = 64 << 20


class SolveRpcError(PipelineError):
    """The Solve RPC failed; ``code`` is the gRPC status code's name."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


class SolveUnavailableError(SolveRpcError, TemporaryError):
    """No Solve server answered (or it is overloaded): retry later."""


class SolveClient:
    def __init__(self, address: str) -> None:
        self.address = address
        self._channel = grpc.insecure_channel(
            address,
            options=[
                ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
            ],
        )
        self._stub = services_pb2_grpc.SolveStub(self._channel)  # type: ignore[no-untyped-call]

    def solve(
        self,
        problem: domain_pb2.Problem,
        n: int,
        *,
        sampling: domain_pb2.SamplingParams | None = None,
        deadline_s: float = 0.0,
        request_id: str = "",
    ) -> services_pb2.SolveResponse:
        request = services_pb2.SolveRequest(
            request_id=request_id,
            problem=problem,
            n=n,
            sampling=sampling or domain_pb2.SamplingParams(),
            deadline_s=deadline_s,
        )
        # The RPC's own deadline leaves the server time to answer DEADLINE_EXCEEDED itself.
        timeout = deadline_s + 30.0 if deadline_s else None
        try:
            response: services_pb2.SolveResponse = self._stub.Solve(
                request, timeout=timeout, wait_for_ready=True
            )
        except grpc.RpcError as exc:
            code = exc.code()
            message = f"Solve at {self.address}: {code.name}: {exc.details()}"
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED):
                raise SolveUnavailableError(message, code=code.name) from exc
            raise SolveRpcError(message, code=code.name) from exc
        return response

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> SolveClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
