"""A relay stage run as its own process by the crash and shutdown tests.

argv: bootstrap group in_topic out_topic state_dir handler_delay_s
Every handled event id is appended to state_dir/handled.log before the handler returns,
so the test can see how far the process got before it was killed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from codejury.bus.consumer import EventConsumer
from codejury.bus.envelope import Event, Outgoing
from codejury.bus.processed import SqliteProcessedIds
from codejury.core.logging import configure_logging
from codejury.core.settings import load_settings
from codejury.proto.v1 import events_pb2


def main() -> None:
    bootstrap, group, in_topic, out_topic, state_dir, delay = sys.argv[1:7]
    settings = load_settings({"bus": {"bootstrap_servers": bootstrap}})
    configure_logging(settings)
    state = Path(state_dir)
    handled_log = (state / "handled.log").open("a", buffering=1)

    def handle(event: Event) -> list[Outgoing]:
        time.sleep(float(delay))
        request = event.payload
        assert isinstance(request, events_pb2.SolveRequested)
        handled_log.write(f"{event.event_id} {request.request_id}\n")
        return [Outgoing(out_topic, events_pb2.CandidatesGenerated(request_id=request.request_id))]

    consumer = EventConsumer(
        settings.bus,
        group_id=group,
        topics=[in_topic],
        handler=handle,
        name="relay",
        processed=SqliteProcessedIds(state / "processed.sqlite", 100_000),
    )
    consumer.install_signal_handlers()
    (state / "ready").touch()
    stats = consumer.run()
    (state / "stats").write_text(f"{stats.handled} {stats.duplicates} {stats.commits}\n")


if __name__ == "__main__":
    main()
