"""The Generation gRPC service: Generate (all candidates at once) and GenerateStream."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import grpc

from codejury.core.grpc import Registration
from codejury.generation.generator import Generator
from codejury.proto.v1 import domain_pb2, services_pb2, services_pb2_grpc


def new_request_key() -> str:
    """The prefix of a gRPC request's candidate ids."""
    return uuid.uuid4().hex[:12]


class GenerationServicer(services_pb2_grpc.GenerationServicer):
    """Validation and errors are the generator's: InvalidRequestError becomes
    INVALID_ARGUMENT through ``codejury.core.grpc``'s interceptor."""

    def __init__(self, generator: Generator) -> None:
        self._generator = generator

    def Generate(
        self, request: services_pb2.GenerateRequest, context: grpc.ServicerContext
    ) -> services_pb2.GenerateResponse:
        candidates = self._generator.generate(
            request.problems, request.n, request.sampling, request_key=new_request_key()
        )
        return services_pb2.GenerateResponse(candidates=candidates)

    def GenerateStream(
        self, request: services_pb2.GenerateRequest, context: grpc.ServicerContext
    ) -> Iterator[domain_pb2.Candidate]:
        cancel = threading.Event()
        context.add_callback(cancel.set)  # the client went away: stop sampling
        yield from self._generator.stream(
            request.problems,
            request.n,
            request.sampling,
            request_key=new_request_key(),
            cancel=cancel,
        )


def register(servicer: GenerationServicer) -> Registration:
    """A registration callback for ``codejury.core.grpc.make_server``."""

    def add(server: grpc.Server) -> str:
        services_pb2_grpc.add_GenerationServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
        return str(services_pb2.DESCRIPTOR.services_by_name["Generation"].full_name)

    return add
