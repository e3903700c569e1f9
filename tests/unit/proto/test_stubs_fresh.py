"""The committed stubs must match what protoc generates from protos/ now."""

from __future__ import annotations

import pytest
from codejury.proto.generate import STUB_DIR, default_proto_root, stale_files

pytest.importorskip("grpc_tools", reason="grpcio-tools (dev extra) generates the stubs")


def test_committed_stubs_are_up_to_date() -> None:
    stale = stale_files(default_proto_root(), STUB_DIR)
    assert stale == [], f"stale stubs {stale}: run `codejury protos` and commit the result"


def test_a_changed_proto_makes_the_stubs_stale(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    root = tmp_path / "protos"
    shutil.copytree(default_proto_root(), root)
    domain = root / "codejury" / "v1" / "domain.proto"
    domain.write_text(domain.read_text() + "\nmessage Extra { string x = 1; }\n")
    assert "domain_pb2.py" in stale_files(root, STUB_DIR)


def test_status_enum_covers_every_sandbox_outcome() -> None:
    from codejury.proto.v1 import domain_pb2

    names = set(domain_pb2.ExecutionStatus.keys())
    assert {
        "PASSED",
        "FAILED",
        "COMPILE_ERROR",
        "RUNTIME_ERROR",
        "TIMEOUT",
        "MEMORY_LIMIT",
        "OUTPUT_LIMIT",
        "SANDBOX_ERROR",
    } <= names
