"""Generated protobuf and gRPC stubs for the wire contracts in ``protos/codejury/v1``.

Do not edit the files under ``v1/`` by hand: ``codejury protos`` regenerates them and
``tests/unit/proto/test_stubs_fresh.py`` fails when they are stale.
"""
