"""A process's workers start in one order and stop in the reverse, the relay last."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from churn_shared.db import create_engine
from churn_shared.kafka import EventPublisher, outbox_table, processed_events_table
from churn_shared.settings import ServiceSettings
from churn_shared.workers import ServiceWorkers

#: Nothing is published in these tests; the workers only hold on to the publisher.
NOT_STARTED: EventPublisher = object()  # type: ignore[assignment]


class Recorder:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    def start(self) -> None:
        self.log.append(f"start {self.name}")

    async def stop(self) -> None:
        self.log.append(f"stop {self.name}")


class RecordingConsumer(Recorder):
    async def start(self) -> None:  # type: ignore[override]
        self.log.append(f"start {self.name}")


def _workers(tmp_path, **settings) -> ServiceWorkers:
    metadata = sa.MetaData()
    return ServiceWorkers(
        ServiceSettings(kafka_bootstrap_servers="127.0.0.1:1", **settings),
        engine=create_engine(f"sqlite+aiosqlite:///{tmp_path / 'w.db'}"),
        publisher=NOT_STARTED,
        outbox=outbox_table(metadata),
        processed_events=processed_events_table(metadata),
    )


async def test_start_runs_relay_pruner_loops_then_consumers_and_stop_reverses_it(tmp_path):
    log: list[str] = []
    workers = _workers(tmp_path)
    workers.relay = Recorder("relay", log)  # type: ignore[assignment]
    workers.pruner = Recorder("pruner", log)  # type: ignore[assignment]
    workers.add_loop(Recorder("refresher", log))
    workers.add_loop(Recorder("delivery", log))
    workers.consumers.append(RecordingConsumer("consumer", log))  # type: ignore[arg-type]

    await workers.start()
    await workers.stop()

    assert log == [
        "start relay",
        "start pruner",
        "start refresher",
        "start delivery",
        "start consumer",
        "stop consumer",
        "stop delivery",
        "stop refresher",
        "stop pruner",
        "stop relay",
    ]


async def test_consumers_and_pruner_take_the_process_settings(tmp_path):
    workers = _workers(
        tmp_path,
        kafka_fetch_max_wait_ms=25,
        kafka_max_poll_records=64,
        kafka_background_fetch_max_wait_ms=400,
        kafka_session_timeout_ms=4000,
        kafka_heartbeat_interval_ms=700,
        processed_events_retention_hours=2,
    )

    async def handler(deliveries) -> None:
        return None

    consumer = workers.add_consumer(
        name="c", topics=["t.v1"], group_id="g", handler=handler, auto_offset_reset="latest"
    )

    assert workers.consumers[0] is consumer
    assert consumer._name == "c"
    assert consumer._max_records == 64
    assert consumer._options["max_poll_records"] == 64
    assert consumer._options["fetch_max_wait_ms"] == 25
    assert (
        consumer._options["session_timeout_ms"],
        consumer._options["heartbeat_interval_ms"],
    ) == (
        4000,
        700,
    )
    # A consumer off the path to an alert asks the broker less often.
    background = workers.add_consumer(
        name="b", topics=["t.v1"], group_id="g2", handler=handler, background=True
    )
    assert background._options["fetch_max_wait_ms"] == 400
    assert background._options["max_poll_records"] == 64
    assert workers.pruner._retention == timedelta(hours=2)
