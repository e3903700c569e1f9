"""A Solve client: what ``codejury solve``, ``codejury eval`` and the demo call."""

from __future__ import annotations

import grpc

from codejury.core.errors import TemporaryError
from codejury.core.grpc import open_channel
from codejury.core.settings import Settings
from codejury.core.tls import channel_credentials
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
    """Calls Solve at ``address``. The first call waits at most ``connect_timeout_s`` for
    the server to be reachable, then fails with one line naming the address (instead of
    waiting out the request's deadline for a server that is not there)."""

    def __init__(
        self,
        address: str,
        *,
        connect_timeout_s: float = 5.0,
        token: str | None = None,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        self.address = address
        self.connect_timeout_s = connect_timeout_s
        self._connected = False
        self._metadata = [("authorization", f"Bearer {token}")] if token else []
        self._tls = credentials is not None
        self._channel = open_channel(address, credentials, max_message_bytes=_MAX_MESSAGE_BYTES)
        self._stub = services_pb2_grpc.SolveStub(self._channel)  # type: ignore[no-untyped-call]

    def solve(
        self,
        problem: domain_pb2.Problem,
        n: int,
        *,
        sampling: domain_pb2.SamplingParams | None = None,
        deadline_s: float = 0.0,
        request_id: str = "",
        selection: domain_pb2.Selection = domain_pb2.SELECTION_UNSPECIFIED,
    ) -> services_pb2.SolveResponse:
        """One Solve. ``selection`` left UNSPECIFIED lets the server pick: execution first
        when ``problem.tests`` is set, the reward model alone otherwise."""
        request = services_pb2.SolveRequest(
            request_id=request_id,
            problem=problem,
            n=n,
            sampling=sampling or domain_pb2.SamplingParams(),
            deadline_s=deadline_s,
            selection=selection,
        )
        self._connect()
        # The RPC's own deadline leaves the server time to answer DEADLINE_EXCEEDED itself.
        timeout = deadline_s + 30.0 if deadline_s else None
        try:
            response: services_pb2.SolveResponse = self._stub.Solve(
                request, timeout=timeout, wait_for_ready=True, metadata=self._metadata
            )
        except grpc.RpcError as exc:
            code = exc.code()
            message = f"Solve at {self.address}: {code.name}: {exc.details()}"
            # RESOURCE_EXHAUSTED is the server's "too many in flight" (retry later), and
            # also gRPC's own refusal of a message over its limit, which no retry fixes.
            too_big = "larger than max" in (exc.details() or "")
            if code == grpc.StatusCode.UNAVAILABLE or (
                code == grpc.StatusCode.RESOURCE_EXHAUSTED and not too_big
            ):
                raise SolveUnavailableError(message, code=code.name) from exc
            raise SolveRpcError(message, code=code.name) from exc
        return response

    def _connect(self) -> None:
        if self._connected:
            return
        try:
            grpc.channel_ready_future(self._channel).result(timeout=self.connect_timeout_s)
        except grpc.FutureTimeoutError as exc:
            hint = (
                "; or the server does not speak TLS, or does not trust this client's "
                "certificate: check tls.* on both sides"
                if self._tls
                else "; or the server speaks TLS only: set CODEJURY_TLS__CA_FILE"
            )
            raise SolveUnavailableError(
                f"no Solve server at {self.address} (nothing answered in "
                f"{self.connect_timeout_s:g}s): start one with `codejury up`, or pass the "
                f"address it printed with --target{hint}",
                code="UNAVAILABLE",
            ) from exc
        self._connected = True

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> SolveClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def client_for(address: str, settings: Settings) -> SolveClient:
    """A client with this process's token and TLS settings."""
    return SolveClient(
        address, token=token_of(settings), credentials=channel_credentials(settings.tls)
    )


def token_of(settings: Settings) -> str | None:
    """The bearer token this process sends (``pipeline.token``), if any."""
    token = settings.pipeline.token
    return None if token is None else token.get_secret_value()
