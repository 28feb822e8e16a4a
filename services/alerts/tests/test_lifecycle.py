"""Working alerts through the API on a real database: acknowledge, assign, snooze, resolve,
reopen, bulk actions, filters, the audit trail, the events and the outcome labels."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from churn_alerts.exceptions import UserDirectoryUnavailableError
from churn_alerts.lifecycle import next_status
from churn_alerts.main import create_app
from churn_alerts.models import outbox
from churn_alerts.rules import TenantScore
from churn_alerts.service import AlertService
from churn_shared.contracts import ChurnAlertUpdatedV1, ChurnScoreComputedV1
from churn_shared.db import unit_of_work


class FakeUsers:
    """The auth service's users API: ``members`` are active users of every tenant."""

    def __init__(self, members: set[str], *, down: bool = False) -> None:
        self.members = members
        self.down = down
        self.asked: list[tuple[str, str]] = []

    async def is_active_member(self, user_id: str, authorization: str) -> bool:
        self.asked.append((user_id, authorization))
        if self.down:
            raise UserDirectoryUnavailableError()
        return user_id in self.members


COLLEAGUE = "user-colleague"


@pytest.fixture
def users() -> FakeUsers:
    return FakeUsers({COLLEAGUE})


@pytest.fixture
def app(make_settings, token_signer, users):
    return create_app(
        make_settings(run_workers=False),
        token_verifier=token_signer.verifier(),
        user_directory=users,
    )


@pytest.fixture
async def client(app, in_process):
    async with in_process(app) as client:
        yield client


def _headers(token_signer: Any, tenant_id: str, role: str, subject: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_signer.issue(tenant_id, role, subject=subject)}"}


@pytest.fixture
def owner(token_signer):
    tenant_id = f"t-{uuid.uuid4().hex[:12]}"
    return {
        "id": tenant_id,
        "user": "user-owner",
        "headers": _headers(token_signer, tenant_id, "owner", "user-owner"),
    }


async def _raise(app, tenant_id: str, customers: list[str], risk: str = "high") -> list[str]:
    async with unit_of_work(app.state.session_factory) as session:
        await AlertService(session).raise_alerts(
            [
                TenantScore(
                    tenant_id,
                    ChurnScoreComputedV1(
                        customer_id=c,
                        churn_probability=0.9,
                        risk_level=risk,
                        model_version="m1",
                        scored_at=datetime.now(UTC),
                    ),
                )
                for c in customers
            ]
        )
    async with app.state.session_factory() as session:
        rows = await session.exec(
            sa.text("SELECT id, customer_id FROM alerts WHERE tenant_id = :t").bindparams(
                t=tenant_id
            )
        )
        by_customer = {c: i for i, c in rows.all()}
    return [by_customer[c] for c in customers]


async def _updates(app, tenant_id: str) -> list[dict[str, Any]]:
    """The ``ChurnAlertUpdatedV1`` payloads in the outbox for ``tenant_id``, in order."""
    async with app.state.session_factory() as session:
        rows = (
            await session.exec(
                sa.select(outbox.c.payload)
                .where(outbox.c.topic == ChurnAlertUpdatedV1.topic)
                .order_by(outbox.c.id)
            )
        ).all()
    envelopes = [orjson.loads(p) for (p,) in rows]
    return [
        e["payload"]
        for e in envelopes
        if e["event_type"] == ChurnAlertUpdatedV1.event_type and e["tenant_id"] == tenant_id
    ]


class TestStateMachine:
    @pytest.mark.parametrize(
        ("command", "current", "expected"),
        [
            ("acknowledge", "open", "acknowledged"),
            ("acknowledge", "snoozed", "acknowledged"),
            ("acknowledge", "acknowledged", None),
            ("acknowledge", "resolved", None),
            ("snooze", "acknowledged", "snoozed"),
            ("snooze", "resolved", None),
            ("resolve", "open", "resolved"),
            ("resolve", "resolved", None),
            ("reopen", "resolved", "open"),
            ("reopen", "open", None),
            ("assign", "acknowledged", "acknowledged"),
            ("assign", "resolved", None),
            ("wake", "snoozed", "open"),
            ("wake", "open", None),
        ],
    )
    def test_transitions(self, command, current, expected):
        assert next_status(command, current) == expected


class TestLifecycle:
    async def test_open_acknowledged_resolved_reopened(self, app, client, owner):
        [alert_id] = await _raise(app, owner["id"], ["c1"])
        h = owner["headers"]
        acked = await client.post(f"/v1/alerts/{alert_id}/acknowledge", headers=h)
        again = await client.post(f"/v1/alerts/{alert_id}/acknowledge", headers=h)
        resolved = await client.post(
            f"/v1/alerts/{alert_id}/resolve",
            headers=h,
            json={"outcome": "retained", "note": "called them, 20% discount"},
        )
        reopened = await client.post(f"/v1/alerts/{alert_id}/reopen", headers=h)
        history = await client.get(f"/v1/alerts/{alert_id}/history", headers=h)
        assert acked.status_code == 200, acked.text
        assert acked.json()["status"] == "acknowledged"
        assert again.status_code == 409
        assert again.headers["content-type"].startswith("application/problem+json")
        assert again.json()["alert_status"] == "acknowledged"
        assert resolved.json()["status"] == "resolved"
        assert resolved.json()["outcome"] == "retained"
        assert resolved.json()["resolved_at"] is not None
        assert reopened.json()["status"] == "open"
        assert reopened.json()["outcome"] is None
        steps = [
            (e["action"], e["actor"], e["from_status"], e["to_status"])
            for e in history.json()["items"]
        ]
        assert steps == [
            ("raised", "system", None, "open"),
            ("acknowledged", "user-owner", "open", "acknowledged"),
            ("resolved", "user-owner", "acknowledged", "resolved"),
            ("reopened", "user-owner", "resolved", "open"),
        ]
        assert history.json()["items"][2]["details"] == {
            "outcome": "retained",
            "note": "called them, 20% discount",
        }

    async def test_every_change_is_an_event_with_the_outcome(self, app, client, owner):
        [alert_id] = await _raise(app, owner["id"], ["c1"])
        await client.post(f"/v1/alerts/{alert_id}/acknowledge", headers=owner["headers"])
        await client.post(
            f"/v1/alerts/{alert_id}/resolve",
            headers=owner["headers"],
            json={"outcome": "churned"},
        )
        events = await _updates(app, owner["id"])
        assert [(e["action"], e["status"]) for e in events] == [
            ("acknowledged", "acknowledged"),
            ("resolved", "resolved"),
        ]
        assert events[1]["outcome"] == "churned"
        assert events[1]["customer_id"] == "c1"
        assert events[1]["actor"] == "user-owner"
        ChurnAlertUpdatedV1.model_validate(events[1])

    async def test_a_refused_change_leaves_no_trace(self, app, client, owner):
        [alert_id] = await _raise(app, owner["id"], ["c1"])
        refused = await client.post(f"/v1/alerts/{alert_id}/reopen", headers=owner["headers"])
        history = await client.get(f"/v1/alerts/{alert_id}/history", headers=owner["headers"])
        assert refused.status_code == 409
        assert [e["action"] for e in history.json()["items"]] == ["raised"]
        assert await _updates(app, owner["id"]) == []

    async def test_snooze_then_the_clock_reopens_it(self, app, client, owner):
        [alert_id] = await _raise(app, owner["id"], ["c1"])
        until = datetime.now(UTC) + timedelta(hours=2)
        past = await client.post(
            f"/v1/alerts/{alert_id}/snooze",
            headers=owner["headers"],
            json={"until": (datetime.now(UTC) - timedelta(minutes=1)).isoformat()},
        )
        naive = await client.post(
            f"/v1/alerts/{alert_id}/snooze",
            headers=owner["headers"],
            json={"until": "2030-01-01T00:00:00"},
        )
        epoch = await client.post(  # a number is not a timestamp (lax parsing made it 1970)
            f"/v1/alerts/{alert_id}/snooze",
            headers=owner["headers"],
            json={"until": int(until.timestamp())},
        )
        snoozed = await client.post(
            f"/v1/alerts/{alert_id}/snooze",
            headers=owner["headers"],
            json={"until": until.isoformat()},
        )
        async with unit_of_work(app.state.session_factory) as session:
            early = await AlertService(session).wake_snoozed(until - timedelta(minutes=1))
        async with unit_of_work(app.state.session_factory) as session:
            woken = await AlertService(session).wake_snoozed(until + timedelta(seconds=1))
        after = await client.get(f"/v1/alerts/{alert_id}", headers=owner["headers"])
        assert past.status_code == 422
        assert naive.status_code == 422
        assert epoch.status_code == 422
        assert snoozed.json()["status"] == "snoozed"
        assert (early, woken) == (0, 1)
        assert after.json()["status"] == "open"
        assert after.json()["snoozed_until"] is None
        assert [e["action"] for e in await _updates(app, owner["id"])] == ["snoozed", "woken"]


class TestAssignment:
    async def test_taking_an_alert_needs_no_directory(self, app, client, owner, users):
        [alert_id] = await _raise(app, owner["id"], ["c1"])
        taken = await client.post(
            f"/v1/alerts/{alert_id}/assign", headers=owner["headers"], json={"user_id": "me"}
        )
        mine = await client.get("/v1/alerts", headers=owner["headers"], params={"assignee": "me"})
        assert taken.json()["assignee_id"] == "user-owner"
        assert [a["id"] for a in mine.json()["items"]] == [alert_id]
        assert users.asked == []

    async def test_assigning_a_colleague_asks_auth_with_the_callers_token(
        self, app, client, owner, users
    ):
        [alert_id] = await _raise(app, owner["id"], ["c1"])
        assigned = await client.post(
            f"/v1/alerts/{alert_id}/assign",
            headers=owner["headers"],
            json={"user_id": COLLEAGUE},
        )
        stranger = await client.post(
            f"/v1/alerts/{alert_id}/assign",
            headers=owner["headers"],
            json={"user_id": "user-of-another-tenant"},
        )
        malformed = await client.post(
            f"/v1/alerts/{alert_id}/assign",
            headers=owner["headers"],
            json={"user_id": "../../etc"},
        )
        theirs = await client.get(
            "/v1/alerts", headers=owner["headers"], params={"assignee": COLLEAGUE}
        )
        nobodys = await client.get(
            "/v1/alerts", headers=owner["headers"], params={"assignee": "none"}
        )
        assert assigned.status_code == 200, assigned.text
        assert assigned.json()["assignee_id"] == COLLEAGUE
        assert users.asked[0] == (COLLEAGUE, owner["headers"]["Authorization"])
        assert stranger.status_code == 422
        assert stranger.json()["type"].endswith("/unknown-assignee")
        assert malformed.status_code == 422
        assert [a["id"] for a in theirs.json()["items"]] == [alert_id]
        assert nobodys.json()["items"] == []

    async def test_auth_down_fails_closed(self, app, client, owner, users):
        [alert_id] = await _raise(app, owner["id"], ["c1"])
        users.down = True
        response = await client.post(
            f"/v1/alerts/{alert_id}/assign",
            headers=owner["headers"],
            json={"user_id": COLLEAGUE},
        )
        alert = await client.get(f"/v1/alerts/{alert_id}", headers=owner["headers"])
        assert response.status_code == 503
        assert alert.json()["assignee_id"] is None

    async def test_viewers_and_api_keys_cannot_work_alerts(self, app, client, owner, token_signer):
        [alert_id] = await _raise(app, owner["id"], ["c1"])
        viewer = _headers(token_signer, owner["id"], "viewer", "user-viewer")
        key = _headers(token_signer, owner["id"], "analyst", "apikey:k1")
        analyst = _headers(token_signer, owner["id"], "analyst", "user-analyst")
        by_viewer = await client.post(f"/v1/alerts/{alert_id}/acknowledge", headers=viewer)
        by_key = await client.post(f"/v1/alerts/{alert_id}/acknowledge", headers=key)
        by_analyst = await client.post(f"/v1/alerts/{alert_id}/acknowledge", headers=analyst)
        read = await client.get(f"/v1/alerts/{alert_id}/history", headers=viewer)
        assert (by_viewer.status_code, by_key.status_code) == (403, 403)
        assert by_analyst.status_code == 200
        assert read.status_code == 200


class TestBulkAndFilters:
    async def test_bulk_reports_each_alert(self, app, client, owner, users):
        ids = await _raise(app, owner["id"], ["c1", "c2", "c3"])
        h = owner["headers"]
        await client.post(f"/v1/alerts/{ids[2]}/resolve", headers=h, json={"outcome": "churned"})
        acked = await client.post(
            "/v1/alerts/bulk/acknowledge",
            headers=h,
            json={"alert_ids": [*ids, "no-such-alert"]},
        )
        assigned = await client.post(
            "/v1/alerts/bulk/assign",
            headers=h,
            json={"alert_ids": ids[:2], "user_id": COLLEAGUE},
        )
        resolved = await client.post(
            "/v1/alerts/bulk/resolve",
            headers=h,
            json={"alert_ids": ids[:2], "outcome": "false_alarm"},
        )
        open_now = await client.get("/v1/alerts", headers=h, params={"status": "open"})
        done = await client.get("/v1/alerts", headers=h, params={"status": "resolved"})
        assert acked.status_code == 200
        assert [(i["id"], i["result"]) for i in acked.json()["items"]] == [
            (ids[0], "ok"),
            (ids[1], "ok"),
            (ids[2], "conflict"),
            ("no-such-alert", "not_found"),
        ]
        assert [i["result"] for i in assigned.json()["items"]] == ["ok", "ok"]
        assert [i["status"] for i in resolved.json()["items"]] == ["resolved", "resolved"]
        assert open_now.json()["items"] == []
        assert len(done.json()["items"]) == 3

    async def test_filters_by_risk_and_created_range(self, app, client, owner):
        await _raise(app, owner["id"], ["c-high"], risk="high")
        await _raise(app, owner["id"], ["c-medium"], risk="medium")
        h = owner["headers"]
        soon = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
        medium = await client.get("/v1/alerts", headers=h, params={"risk_level": "medium"})
        future = await client.get("/v1/alerts", headers=h, params={"created_from": soon})
        past = await client.get("/v1/alerts", headers=h, params={"created_to": soon})
        bad = await client.get("/v1/alerts", headers=h, params={"status": "closed"})
        # A number is not a time (pydantic would read it as seconds since 1970).
        epoch = [
            await client.get(path, headers=h, params={name: "0.5"})
            for path, name in (("/v1/alerts", "created_to"), ("/v1/alerts/outcomes", "resolved_to"))
        ]
        assert [a["customer_id"] for a in medium.json()["items"]] == ["c-medium"]
        assert future.json()["items"] == []
        assert len(past.json()["items"]) == 2
        assert bad.status_code == 422
        assert [r.status_code for r in epoch] == [422, 422]

    async def test_outcomes_export_as_json_and_csv(self, app, client, owner):
        ids = await _raise(app, owner["id"], ["c1", "c2"])
        h = owner["headers"]
        await client.post(f"/v1/alerts/{ids[0]}/resolve", headers=h, json={"outcome": "retained"})
        as_json = await client.get("/v1/alerts/outcomes", headers=h)
        as_csv = await client.get("/v1/alerts/outcomes", headers=h, params={"format": "csv"})
        assert [(o["customer_id"], o["outcome"]) for o in as_json.json()["items"]] == [
            ("c1", "retained")
        ]
        assert as_csv.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(as_csv.text)))
        assert [(r["customer_id"], r["outcome"]) for r in rows] == [("c1", "retained")]


class TestTenancy:
    async def test_another_tenants_alert_cannot_be_worked_or_read(
        self, app, client, owner, token_signer, users
    ):
        [alert_id] = await _raise(app, owner["id"], ["c1"])
        other = _headers(token_signer, f"t-{uuid.uuid4().hex[:12]}", "owner", "user-other")
        responses = [
            await client.post(f"/v1/alerts/{alert_id}/acknowledge", headers=other),
            await client.post(
                f"/v1/alerts/{alert_id}/assign", headers=other, json={"user_id": COLLEAGUE}
            ),
            await client.post(
                f"/v1/alerts/{alert_id}/resolve", headers=other, json={"outcome": "churned"}
            ),
            await client.get(f"/v1/alerts/{alert_id}/history", headers=other),
            await client.get(f"/v1/alerts/{alert_id}/deliveries", headers=other),
        ]
        bulk = await client.post(
            "/v1/alerts/bulk/acknowledge", headers=other, json={"alert_ids": [alert_id]}
        )
        outcomes = await client.get("/v1/alerts/outcomes", headers=other)
        mine = await client.get(f"/v1/alerts/{alert_id}", headers=owner["headers"])
        assert [r.status_code for r in responses] == [404] * 5
        assert bulk.json()["items"][0]["result"] == "not_found"
        assert outcomes.json()["items"] == []
        assert mine.json()["status"] == "open"
        assert users.asked == []


class TestDeliveryHistory:
    async def test_each_attempt_is_listed_with_its_answer(
        self, app, client, owner, flaky_webhook_receiver
    ):
        from churn_alerts.worker import WebhookDeliveryWorker

        created = await client.post(
            "/v1/alert-channels",
            headers=owner["headers"],
            json={"kind": "webhook", "url": flaky_webhook_receiver.url, "name": "hook"},
        )
        [alert_id] = await _raise(app, owner["id"], ["c1"])
        worker = WebhookDeliveryWorker(app.state.session_factory, app.state.settings)
        try:
            for _ in range(3):
                await worker.deliver_once()
                async with unit_of_work(app.state.session_factory) as session:
                    await session.exec(
                        sa.text("UPDATE deliveries SET next_attempt_at = created_at")
                    )
        finally:
            await worker.stop()
        response = await client.get(f"/v1/alerts/{alert_id}/deliveries", headers=owner["headers"])
        [delivery] = response.json()["items"]
        assert delivery["channel_id"] == created.json()["id"]
        assert delivery["channel_name"] == "hook"
        assert delivery["status"] == "delivered"
        assert [(a["attempt"], a["outcome"], a["status_code"]) for a in delivery["attempts"]] == [
            (1, "failed", 500),
            (2, "failed", 500),
            (3, "delivered", 204),
        ]
        assert delivery["attempts"][0]["error"] == "HTTP 500"
