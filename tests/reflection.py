"""A real gRPC server-reflection client for tests: what grpcurl asks a server."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)


def listed_services(
    channel: grpc.Channel, *, metadata: Sequence[tuple[str, str]] = ()
) -> list[str]:
    """The services the server says it serves, sorted (grpc.RpcError when it refuses)."""
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    asked = reflection_pb2.ServerReflectionRequest(list_services="")
    (answer,) = stub.ServerReflectionInfo(iter([asked]), metadata=metadata, timeout=10)
    return sorted(service.name for service in answer.list_services_response.service)


def reflected_pool(channel: grpc.Channel) -> DescriptorPool:
    """A descriptor pool that knows nothing but what the server reflects, file by file
    as symbols are looked up (as grpcurl resolves a method before calling it)."""
    return DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
