"""The Execution gRPC service: validates, then hands batches to a backend."""

from __future__ import annotations

import grpc

from codejury.core.grpc import Registration
from codejury.core.settings import Settings
from codejury.execution.backends import ExecutionBackend
from codejury.execution.factory import ceiling_limits, default_limits
from codejury.execution.languages import LANGUAGES
from codejury.execution.requests import check_candidates, check_language, limits_from_proto
from codejury.proto.v1 import domain_pb2, services_pb2, services_pb2_grpc


class ExecutionServicer(services_pb2_grpc.ExecutionServicer):
    def __init__(self, settings: Settings, backend: ExecutionBackend) -> None:
        self._settings = settings
        self._backend = backend
        self._defaults = default_limits(settings)
        self._ceilings = ceiling_limits(settings)

    def Execute(
        self, request: services_pb2.ExecuteRequest, context: grpc.ServicerContext
    ) -> domain_pb2.ExecutionResult:
        check_language(request.problem)
        check_candidates(
            request.problem,
            [request.candidate],
            max_batch=1,
            max_program_bytes=self._settings.execution.max_program_kb << 10,
            field="candidate",
        )
        limits = limits_from_proto(request.limits, self._defaults, self._ceilings)
        (result,) = self._backend.execute_batch(request.problem, [request.candidate], limits)
        return result

    def ExecuteBatch(
        self, request: services_pb2.ExecuteBatchRequest, context: grpc.ServicerContext
    ) -> services_pb2.ExecuteBatchResponse:
        check_language(request.problem)
        check_candidates(
            request.problem,
            request.candidates,
            max_batch=self._settings.execution.max_batch,
            max_program_bytes=self._settings.execution.max_program_kb << 10,
        )
        limits = limits_from_proto(request.limits, self._defaults, self._ceilings)
        results = self._backend.execute_batch(request.problem, request.candidates, limits)
        return services_pb2.ExecuteBatchResponse(results=results)

    def ListLanguages(
        self, request: services_pb2.ListLanguagesRequest, context: grpc.ServicerContext
    ) -> services_pb2.ListLanguagesResponse:
        return services_pb2.ListLanguagesResponse(languages=list_languages())


def list_languages() -> list[services_pb2.LanguageInfo]:
    infos = []
    for language in LANGUAGES.values():
        ok, why = language.available()
        infos.append(
            services_pb2.LanguageInfo(
                name=language.name,
                aliases=language.aliases,
                available=ok,
                reason="" if ok else why,
                stop_sequences=language.stop_sequences,
                compiled=bool(language.compile),
            )
        )
    return infos


def register(servicer: ExecutionServicer) -> Registration:
    """A registration callback for ``codejury.core.grpc.make_server``."""

    def add(server: grpc.Server) -> str:
        services_pb2_grpc.add_ExecutionServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
        return str(services_pb2.DESCRIPTOR.services_by_name["Execution"].full_name)

    return add
