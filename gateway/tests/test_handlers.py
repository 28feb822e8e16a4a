"""Which envelopes become live-feed messages, and for which room."""

from __future__ import annotations

from datetime import UTC, datetime

from churn_gateway.events.handlers import live_message
from churn_gateway.realtime import tenant_room
from churn_shared.contracts import ChurnAlertRaisedV1, ChurnScoreComputedV1, Topics
from churn_shared.kafka import Envelope


def _score(backfill: bool) -> ChurnScoreComputedV1:
    return ChurnScoreComputedV1(
        customer_id="c1",
        churn_probability=0.8,
        risk_level="high",
        model_version="m1",
        scored_at=datetime.now(UTC),
        backfill=backfill,
    )


def test_alert_becomes_churn_alert_for_its_tenant():
    alert = ChurnAlertRaisedV1(
        alert_id="a1",
        customer_id="c1",
        kind="risk_increase",
        churn_probability=0.6,
        previous_probability=0.3,
        risk_level="medium",
        model_version="m1",
        created_at=datetime.now(UTC),
    )
    env = Envelope.wrap(tenant_id="t1", producer="alerts", payload=alert)
    message = live_message(Topics.CHURN_ALERTS, env)
    assert message is not None
    assert (message.event, message.tenant_id) == ("churn_alert", "t1")
    assert message.payload == {"id": "a1", "status": "open", **alert.model_dump(mode="json")}
    assert tenant_room(message.tenant_id) == "tenant:t1"


def test_churn_alert_has_the_rest_alerts_id_and_status_and_keeps_alert_id():
    alert = ChurnAlertRaisedV1(
        alert_id="a7",
        customer_id="c1",
        kind="high_risk",
        churn_probability=0.9,
        risk_level="high",
        model_version="m1",
        created_at=datetime.now(UTC),
    )
    message = live_message(
        Topics.CHURN_ALERTS, Envelope.wrap(tenant_id="t1", producer="alerts", payload=alert)
    )

    assert message is not None
    assert (message.payload["id"], message.payload["status"]) == ("a7", "open")
    assert message.payload["alert_id"] == "a7"  # deprecated, kept for existing clients


def test_score_becomes_score_update_but_backfill_is_skipped():
    live = Envelope.wrap(tenant_id="t1", producer="p", payload=_score(False))
    backfill = Envelope.wrap(tenant_id="t1", producer="p", payload=_score(True))
    message = live_message(Topics.CHURN_SCORES, live)
    assert message is not None
    assert message.event == "score_update"
    assert live_message(Topics.CHURN_SCORES, backfill) is None


def test_unknown_types_and_invalid_payloads_are_left_out():
    unknown = Envelope(event_type="SomethingElseV1", tenant_id="t1", producer="p", payload={})
    invalid = Envelope(
        event_type="ChurnAlertRaisedV1", tenant_id="t1", producer="p", payload={"alert_id": 1}
    )
    assert live_message(Topics.CHURN_ALERTS, unknown) is None
    assert live_message(Topics.CHURN_ALERTS, invalid) is None


def test_prediction_job_progress_reaches_its_tenant_room():
    from churn_shared.contracts import JobTopics, PredictionJobProgressV1

    progress = PredictionJobProgressV1(
        job_id="j2",
        status="running",
        progress=30,
        rows_total=1000,
        rows_scored=290,
        rows_failed=10,
        updated_at=datetime.now(UTC),
    )
    env = Envelope.wrap(tenant_id="t8", producer="prediction", payload=progress)
    message = live_message(JobTopics.PREDICTION_JOBS, env)
    assert message is not None
    assert (message.event, message.tenant_id) == ("prediction_job_progress", "t8")
    assert (message.payload["rows_scored"], message.payload["rows_failed"]) == (290, 10)


def test_import_progress_reaches_its_tenant_room():
    from churn_shared.contracts import CustomerImportProgressV1, JobTopics

    progress = CustomerImportProgressV1(
        import_id="i1",
        status="running",
        progress=40,
        total_rows=5000,
        processed_rows=2000,
        rows_imported=1990,
        rows_rejected=10,
        updated_at=datetime.now(UTC),
    )
    env = Envelope.wrap(tenant_id="t9", producer="customers", payload=progress)
    message = live_message(JobTopics.CUSTOMER_IMPORTS, env)
    assert message is not None
    assert (message.event, message.tenant_id) == ("import_progress", "t9")
    assert (message.payload["processed_rows"], message.payload["total_rows"]) == (2000, 5000)


def test_training_progress_reaches_its_tenant_room():
    from churn_shared.contracts import ModelTopics, TrainingProgressV1

    progress = TrainingProgressV1(
        job_id="j1",
        status="running",
        progress=40,
        stage="cross-validating",
        updated_at=datetime.now(UTC),
    )
    env = Envelope.wrap(tenant_id="t9", producer="prediction", payload=progress)
    message = live_message(ModelTopics.TRAINING_PROGRESS, env)
    assert message is not None
    assert (message.event, message.tenant_id) == ("training_progress", "t9")
    assert message.payload["progress"] == 40
