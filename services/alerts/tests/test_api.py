"""The HTTP API against a real database: tenancy, rules, channels, URL policy, pagination."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from churn_alerts.main import create_app
from churn_alerts.rules import TenantScore
from churn_alerts.service import AlertService
from churn_shared.contracts import ChurnScoreComputedV1
from churn_shared.db import unit_of_work


def _score(customer: str, p: float = 0.9) -> ChurnScoreComputedV1:
    return ChurnScoreComputedV1(
        customer_id=customer,
        churn_probability=p,
        risk_level="high",
        model_version="m1",
        scored_at=datetime.now(UTC),
    )


async def _raise(app, tenant_id: str, customers: list[str], now: datetime | None = None) -> None:
    async with unit_of_work(app.state.session_factory) as session:
        await AlertService(session).raise_alerts(
            [TenantScore(tenant_id, _score(c)) for c in customers], now
        )


@pytest.fixture
def app(make_settings, token_signer):
    return create_app(make_settings(run_workers=False), token_verifier=token_signer.verifier())


@pytest.fixture
def other_tenant(token_signer):
    tenant_id = f"t-{uuid.uuid4().hex[:12]}"
    return {
        "id": tenant_id,
        "headers": {"Authorization": f"Bearer {token_signer.issue(tenant_id)}"},
    }


class TestReadiness:
    async def test_ready_when_database_and_producer_are_up(self, app, in_process):
        async with in_process(app) as client:
            ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"database": "ok", "broker": "ok"}


class TestAlerts:
    async def test_requires_a_token(self, app, in_process):
        async with in_process(app) as client:
            response = await client.get("/v1/alerts")
        assert response.status_code == 401
        assert response.headers["content-type"].startswith("application/problem+json")

    async def test_other_tenants_alert_is_not_found(self, app, in_process, tenant, other_tenant):
        async with in_process(app) as client:
            await _raise(app, tenant["id"], ["c1"])
            mine = (await client.get("/v1/alerts", headers=tenant["headers"])).json()["items"]
            assert [a["customer_id"] for a in mine] == ["c1"]
            alert_id = mine[0]["id"]
            own = await client.get(f"/v1/alerts/{alert_id}", headers=tenant["headers"])
            foreign = await client.get(f"/v1/alerts/{alert_id}", headers=other_tenant["headers"])
            listed = await client.get("/v1/alerts", headers=other_tenant["headers"])
        assert own.status_code == 200
        assert own.json()["kind"] == "high_risk"
        assert foreign.status_code == 404
        assert foreign.headers["content-type"].startswith("application/problem+json")
        assert listed.json() == {"items": [], "next_cursor": None}

    async def test_pages_newest_first_with_filters(self, app, in_process, tenant):
        base = datetime.now(UTC) - timedelta(hours=1)
        async with in_process(app) as client:
            for i in range(5):
                await _raise(app, tenant["id"], [f"c{i}"], now=base + timedelta(minutes=i))
            seen: list[str] = []
            cursor = None
            while True:
                params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
                page = (
                    await client.get("/v1/alerts", headers=tenant["headers"], params=params)
                ).json()
                seen += [a["customer_id"] for a in page["items"]]
                cursor = page["next_cursor"]
                if not cursor:
                    break
            only_c3 = await client.get(
                "/v1/alerts", headers=tenant["headers"], params={"customer_id": "c3"}
            )
            increases = await client.get(
                "/v1/alerts", headers=tenant["headers"], params={"kind": "risk_increase"}
            )
            bad_cursor = await client.get(
                "/v1/alerts", headers=tenant["headers"], params={"cursor": "nonsense"}
            )
        assert seen == ["c4", "c3", "c2", "c1", "c0"]
        assert [a["customer_id"] for a in only_c3.json()["items"]] == ["c3"]
        assert increases.json()["items"] == []
        assert bad_cursor.status_code == 400


class TestRules:
    async def test_defaults_until_stored(self, app, in_process, tenant):
        async with in_process(app) as client:
            response = await client.get("/v1/alert-rules", headers=tenant["headers"])
        assert response.status_code == 200
        assert response.json() == {
            "high_risk_threshold": 0.7,
            "risk_increase_threshold": 0.2,
            "cooldown_minutes": 1440,
            "high_exit_threshold": None,
            "timezone": "UTC",
            "quiet_hours": None,
            "updated_at": None,
        }

    async def test_put_stores_the_rules(self, app, in_process, tenant, other_tenant):
        rules = {"high_risk_threshold": 0.8, "risk_increase_threshold": 0.1, "cooldown_minutes": 60}
        async with in_process(app) as client:
            put = await client.put("/v1/alert-rules", headers=tenant["headers"], json=rules)
            again = await client.put(
                "/v1/alert-rules", headers=tenant["headers"], json={**rules, "cooldown_minutes": 5}
            )
            got = await client.get("/v1/alert-rules", headers=tenant["headers"])
            others = await client.get("/v1/alert-rules", headers=other_tenant["headers"])
        assert put.status_code == 200
        assert {k: put.json()[k] for k in rules} == rules
        assert again.json()["cooldown_minutes"] == 5
        assert got.json()["cooldown_minutes"] == 5
        assert got.json()["updated_at"] is not None
        assert others.json()["high_risk_threshold"] == 0.7

    async def test_put_stores_the_exit_threshold(self, app, in_process, tenant):
        rules = {
            "high_risk_threshold": 0.8,
            "risk_increase_threshold": 0.1,
            "cooldown_minutes": 60,
            "high_exit_threshold": 0.6,
        }
        async with in_process(app) as client:
            await client.put("/v1/alert-rules", headers=tenant["headers"], json=rules)
            got = await client.get("/v1/alert-rules", headers=tenant["headers"])
        assert got.json()["high_exit_threshold"] == 0.6

    async def test_put_stores_quiet_hours_in_a_time_zone(self, app, in_process, tenant):
        rules = {
            "high_risk_threshold": 0.8,
            "risk_increase_threshold": 0.1,
            "cooldown_minutes": 60,
            "timezone": "Europe/Berlin",
            "quiet_hours": {"start": "22:00", "end": "07:00"},
        }
        async with in_process(app) as client:
            put = await client.put("/v1/alert-rules", headers=tenant["headers"], json=rules)
            got = await client.get("/v1/alert-rules", headers=tenant["headers"])
        assert put.status_code == 200, put.text
        assert got.json()["timezone"] == "Europe/Berlin"
        assert got.json()["quiet_hours"] == {"start": "22:00:00", "end": "07:00:00"}

    @pytest.mark.parametrize(
        "extra",
        [
            {"timezone": "Mars/Olympus"},
            {"timezone": "../../etc/passwd"},
            {"quiet_hours": {"start": "22:00", "end": "22:00"}},
            {"quiet_hours": {"start": "22:00:30", "end": "07:00"}},
            {"quiet_hours": {"start": "22:00+02:00", "end": "07:00"}},
            {"quiet_hours": {"start": "22:00"}},
            {"quiet_hours": {"start": 79200, "end": "07:00"}},
        ],
    )
    async def test_put_refuses_bad_quiet_hours(self, app, in_process, tenant, extra):
        rules = {"high_risk_threshold": 0.8, "risk_increase_threshold": 0.1, "cooldown_minutes": 6}
        async with in_process(app) as client:
            put = await client.put(
                "/v1/alert-rules", headers=tenant["headers"], json={**rules, **extra}
            )
        assert put.status_code == 422

    @pytest.mark.parametrize(
        "body",
        [
            {"high_risk_threshold": 0, "risk_increase_threshold": 0.2, "cooldown_minutes": 10},
            {"high_risk_threshold": 1.5, "risk_increase_threshold": 0.2, "cooldown_minutes": 10},
            {"high_risk_threshold": 0.7, "risk_increase_threshold": -0.1, "cooldown_minutes": 10},
            {"high_risk_threshold": 0.7, "risk_increase_threshold": 0.2, "cooldown_minutes": -1},
            {
                "high_risk_threshold": 0.7,
                "risk_increase_threshold": 0.2,
                "cooldown_minutes": 525601,
            },
            {"high_risk_threshold": 0.7, "risk_increase_threshold": 0.2},
            # Strict types: no booleans or strings for numbers, no float for an integer.
            {"high_risk_threshold": 0.7, "risk_increase_threshold": 0.2, "cooldown_minutes": False},
            {"high_risk_threshold": 0.7, "risk_increase_threshold": 0.2, "cooldown_minutes": "10"},
            {"high_risk_threshold": 0.7, "risk_increase_threshold": 0.2, "cooldown_minutes": 10.0},
            {"high_risk_threshold": True, "risk_increase_threshold": 0.2, "cooldown_minutes": 10},
            {"high_risk_threshold": "0.7", "risk_increase_threshold": 0.2, "cooldown_minutes": 10},
            {
                "high_risk_threshold": 0.7,
                "risk_increase_threshold": 0.2,
                "cooldown_minutes": 10,
                "high_exit_threshold": 0.7,
            },
        ],
    )
    async def test_put_validates(self, app, in_process, tenant, body):
        async with in_process(app) as client:
            response = await client.put("/v1/alert-rules", headers=tenant["headers"], json=body)
        assert response.status_code == 422
        assert response.headers["content-type"].startswith("application/problem+json")

    async def test_put_needs_admin(self, app, in_process, tenant, token_signer):
        analyst = {"Authorization": f"Bearer {token_signer.issue(tenant['id'], role='analyst')}"}
        body = {"high_risk_threshold": 0.8, "risk_increase_threshold": 0.1, "cooldown_minutes": 60}
        async with in_process(app) as client:
            put = await client.put("/v1/alert-rules", headers=analyst, json=body)
            get = await client.get("/v1/alert-rules", headers=analyst)
        assert put.status_code == 403
        assert get.status_code == 200


class TestChannels:
    async def test_create_list_delete(self, app, in_process, tenant, other_tenant):
        async with in_process(app) as client:
            created = await client.post(
                "/v1/alert-channels",
                headers=tenant["headers"],
                json={"kind": "webhook", "url": "https://hooks.example.com/churn", "name": "crm"},
            )
            listed = await client.get("/v1/alert-channels", headers=tenant["headers"])
            foreign_listed = await client.get("/v1/alert-channels", headers=other_tenant["headers"])
            channel_id = created.json()["id"]
            foreign_delete = await client.delete(
                f"/v1/alert-channels/{channel_id}", headers=other_tenant["headers"]
            )
            deleted = await client.delete(
                f"/v1/alert-channels/{channel_id}", headers=tenant["headers"]
            )
            deleted_again = await client.delete(
                f"/v1/alert-channels/{channel_id}", headers=tenant["headers"]
            )
            after = await client.get("/v1/alert-channels", headers=tenant["headers"])
        assert created.status_code == 201
        body = created.json()
        assert body["kind"] == "webhook"
        assert body["name"] == "crm"
        assert len(body["secret"]) >= 32
        assert listed.json()["items"] == [
            {
                **{k: body[k] for k in ("id", "kind", "name", "url", "created_at")},
                "recipients": None,
                "delivery_mode": "immediate",
                "digest_hour": 8,
                "next_digest_at": None,
                "disabled_at": None,
                "disabled_reason": None,
            }
        ]
        assert "secret" not in listed.json()["items"][0]
        assert foreign_listed.json()["items"] == []
        assert foreign_delete.status_code == 404
        assert deleted.status_code == 204
        assert deleted_again.status_code == 404
        assert after.json()["items"] == []

    async def test_a_daily_digest_channel_is_scheduled_in_the_tenants_time_zone(
        self, app, in_process, tenant
    ):
        rules = {
            "high_risk_threshold": 0.7,
            "risk_increase_threshold": 0.2,
            "cooldown_minutes": 60,
            "timezone": "Asia/Tokyo",
        }
        channel = {
            "kind": "webhook",
            "url": "https://hooks.example.com/churn",
            "delivery_mode": "daily",
            "digest_hour": 9,
        }
        async with in_process(app) as client:
            await client.put("/v1/alert-rules", headers=tenant["headers"], json=rules)
            created = await client.post(
                "/v1/alert-channels", headers=tenant["headers"], json=channel
            )
            bad_hour = await client.post(
                "/v1/alert-channels", headers=tenant["headers"], json={**channel, "digest_hour": 24}
            )
            bool_hour = await client.post(
                "/v1/alert-channels",
                headers=tenant["headers"],
                json={**channel, "digest_hour": True},
            )
            bad_mode = await client.post(
                "/v1/alert-channels",
                headers=tenant["headers"],
                json={**channel, "delivery_mode": "weekly"},
            )
        assert created.status_code == 201, created.text
        body = created.json()
        assert (body["delivery_mode"], body["digest_hour"]) == ("daily", 9)
        next_at = datetime.fromisoformat(body["next_digest_at"])
        assert next_at.astimezone(ZoneInfo("Asia/Tokyo")).hour == 9
        assert timedelta(0) < next_at - datetime.now(UTC) <= timedelta(days=1)
        assert bad_hour.status_code == 422
        assert bool_hour.status_code == 422
        assert bad_mode.status_code == 422

    async def test_loopback_url_refused_outside_dev_mode(
        self, make_settings, token_signer, in_process, tenant
    ):
        app = create_app(
            make_settings(run_workers=False, dev_mode=False),
            token_verifier=token_signer.verifier(),
        )
        async with in_process(app) as client:
            response = await client.post(
                "/v1/alert-channels",
                headers=tenant["headers"],
                json={"kind": "webhook", "url": "http://127.0.0.1:9000/hook"},
            )
            private = await client.post(
                "/v1/alert-channels",
                headers=tenant["headers"],
                json={"kind": "webhook", "url": "http://10.0.0.5/hook"},
            )
        assert response.status_code == 422
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "loopback" in response.json()["detail"]
        assert private.status_code == 422
        assert "private" in private.json()["detail"]

    async def test_disguised_and_special_purpose_urls_refused_outside_dev_mode(
        self, make_settings, token_signer, in_process, tenant
    ):
        urls = [
            "http://127\u30020\u30020\u30021:9000/hook",
            "http://127\uff0e0\uff0e0\uff0e1:9000/hook",
            "http://127\uff610\uff610\uff611:9000/hook",
            "http://100.100.100.200/latest/meta-data",
            "http://100.64.0.1/hook",
            "http://[::ffff:100.100.100.200]/hook",
            "http://[2002:7f00:1::]/hook",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://intranet/hook",
            "http://0x5d.0xb8.0xd8.0x22/hook",
        ]
        app = create_app(
            make_settings(run_workers=False, dev_mode=False),
            token_verifier=token_signer.verifier(),
        )
        async with in_process(app) as client:
            responses = [
                await client.post(
                    "/v1/alert-channels",
                    headers=tenant["headers"],
                    json={"kind": "webhook", "url": url},
                )
                for url in urls
            ]
            listed = await client.get("/v1/alert-channels", headers=tenant["headers"])
        for url, response in zip(urls, responses, strict=True):
            assert response.status_code == 422, (url, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
            assert "development mode" in response.json()["detail"], url
        assert listed.json()["items"] == []

    async def test_loopback_url_accepted_in_dev_mode(self, app, in_process, tenant):
        async with in_process(app) as client:
            response = await client.post(
                "/v1/alert-channels",
                headers=tenant["headers"],
                json={"kind": "webhook", "url": "http://127.0.0.1:9000/hook"},
            )
        assert response.status_code == 201
        assert response.json()["name"] == "127.0.0.1"

    async def test_slack_and_discord_need_their_official_urls_outside_dev_mode(
        self, make_settings, token_signer, in_process, tenant
    ):
        app = create_app(
            make_settings(run_workers=False, dev_mode=False),
            token_verifier=token_signer.verifier(),
        )
        slack_url = "https://hooks.slack.com/services/T0001/B0001/abcdefghijkl"
        async with in_process(app) as client:
            wrong = await client.post(
                "/v1/alert-channels",
                headers=tenant["headers"],
                json={"kind": "slack", "url": "https://example.com/services/T0/B0/x"},
            )
            slack = await client.post(
                "/v1/alert-channels",
                headers=tenant["headers"],
                json={"kind": "slack", "url": slack_url},
            )
            discord = await client.post(
                "/v1/alert-channels",
                headers=tenant["headers"],
                json={"kind": "discord", "url": "https://discord.com/api/webhooks/1/tokentoken"},
            )
            listed = await client.get("/v1/alert-channels", headers=tenant["headers"])
        assert wrong.status_code == 422
        assert wrong.headers["content-type"].startswith("application/problem+json")
        assert "hooks.slack.com" in wrong.json()["detail"]
        assert slack.status_code == 201, slack.text
        assert discord.status_code == 201, discord.text
        urls = {c["kind"]: c["url"] for c in listed.json()["items"]}
        assert urls == {
            "slack": "https://hooks.slack.com/services/T0001/B0001/…ijkl",
            "discord": "https://discord.com/api/webhooks/1/…oken",
        }
        assert slack_url not in listed.text

    @pytest.mark.parametrize(
        "body",
        [
            {"kind": "webhook", "url": "ftp://example.com/hook"},
            {"kind": "carrier-pigeon", "url": "https://example.com/hook"},
            {"kind": "webhook"},
        ],
    )
    async def test_bad_channels_are_refused(self, app, in_process, tenant, body):
        async with in_process(app) as client:
            response = await client.post("/v1/alert-channels", headers=tenant["headers"], json=body)
        assert response.status_code == 422

    async def test_writes_need_admin(self, app, in_process, tenant, token_signer):
        viewer = {"Authorization": f"Bearer {token_signer.issue(tenant['id'], role='viewer')}"}
        async with in_process(app) as client:
            post = await client.post(
                "/v1/alert-channels",
                headers=viewer,
                json={"kind": "webhook", "url": "https://hooks.example.com/x"},
            )
            get = await client.get("/v1/alert-channels", headers=viewer)
        assert post.status_code == 403
        assert get.status_code == 200
