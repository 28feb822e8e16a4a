"""Training jobs, the registry (aliases, promotion, rollback, hot reload), evaluation, shadow
scoring and recommendations, against a real database and broker; the customers service is
faked with ``httpx.MockTransport``."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest
import sqlalchemy as sa

from churn_prediction.main import create_app
from churn_prediction.models import outbox, scores_table
from churn_prediction.registry.hot_reload import reload_tenant_models
from churn_prediction.registry.service import ModelRegistryService
from churn_prediction.training.evaluation import recency_baseline_auc
from churn_prediction.training.procedure import train, train_labelled
from churn_prediction.training.sets import TrainingSet
from churn_prediction.training.simulation import simulate_customers
from churn_shared.contracts import (
    FEATURE_NAMES,
    CustomerFeaturesUpdatedV1,
    EventTrainingSet,
    Topics,
)
from churn_shared.db import unit_of_work
from churn_shared.kafka import Envelope, EventPublisher
from testkit import wait_for

FAST = {"default_model_customers": 800, "default_model_trees": 40}


def auth(token_signer: Any, tenant_id: str, role: str = "viewer") -> dict[str, str]:
    return {"Authorization": f"Bearer {token_signer.issue(tenant_id, role=role)}"}


@pytest.fixture
def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


def events_set(cutoff: str, n: int = 500) -> dict[str, Any]:
    seed = sum(map(ord, cutoff))
    history = simulate_customers(n, seed=seed)
    features = np.where(np.isnan(history.features), None, history.features).tolist()
    labels = history.labels.astype(int).tolist()
    return EventTrainingSet(
        feature_names=list(FEATURE_NAMES),
        customer_ids=[f"c-{i}" for i in range(n)],
        features=features,
        labels=labels,
        cutoff=cutoff,
        cutoffs=[cutoff],
        row_cutoffs=[cutoff] * n,
        horizon_days=90,
        days_since_last_order=[
            None if np.isnan(v) else float(v)
            for v in history.features[:, FEATURE_NAMES.index("days_since_last_order")]
        ],
        positive_rate=sum(labels) / n,
        n_customers=n,
        n_rows=n,
    ).model_dump(mode="json")


def customers_set(n: int = 400) -> dict[str, Any]:
    rng = np.random.default_rng(7)
    tenure = rng.integers(0, 72, n)
    contract = rng.choice(["Month-to-month", "One year", "Two year"], n)
    charges = rng.uniform(20, 120, n).round(2)
    risk = 1.5 - tenure / 24 + (contract == "Month-to-month") * 1.5 + charges / 100
    churn = rng.uniform(size=n) < 1 / (1 + np.exp(-(risk - 1.5)))
    rows = [
        [f"c-{i}", int(tenure[i]), str(contract[i]), float(charges[i]), "Yes" if churn[i] else "No"]
        for i in range(n)
    ]
    return {
        "columns": ["customer_id", "tenure", "Contract", "MonthlyCharges", "Churn"],
        "rows": rows,
        "id_column": "customer_id",
    }


class FakeCustomers:
    """The customers service's training-set exports."""

    def __init__(self, *, status: int = 200) -> None:
        self.status = status
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.status != 200:
            return httpx.Response(self.status, json={"title": "Not Found"})
        if request.url.path == "/v1/training-sets/events":
            return httpx.Response(200, json=events_set(request.url.params["cutoff"]))
        if request.url.path == "/v1/training-sets/customers":
            return httpx.Response(200, json=customers_set())
        return httpx.Response(404, json={"title": "Not Found"})


def make_app(
    make_settings: Callable[..., Any], token_signer: Any, fake: Any, **overrides: Any
) -> Any:
    return create_app(
        make_settings(**{**FAST, **overrides}),
        token_verifier=token_signer.verifier(),
        customers_transport=httpx.MockTransport(fake),
    )


async def finished_job(client: httpx.AsyncClient, job_id: str, headers: dict[str, str]) -> Any:
    async def done() -> Any:
        body = (await client.get(f"/v1/models/jobs/{job_id}", headers=headers)).json()
        return body if body["status"] in ("succeeded", "failed") else None

    return await wait_for(done, timeout=120)


def trained_events_model(seed: int = 1) -> Any:
    history = simulate_customers(600, seed=seed)
    ts = TrainingSet(
        X=pd.DataFrame(history.features, columns=list(FEATURE_NAMES)),
        y=history.labels.astype(np.int64),
        feature_names=list(FEATURE_NAMES),
        categorical=[],
        label_source="synthetic",
    )
    return train(ts, candidates=("logistic_regression",))


async def register(app: Any, tenant: str, trained: Any, source: dict[str, Any]) -> str:
    async with unit_of_work(app.state.session_factory) as session:
        version: str = await ModelRegistryService(session).register(tenant, trained, source=source)
    return version


EVENTS_SOURCE = {"source": "events", "cutoffs": ["2024-01-01"], "horizon_days": 90}


async def test_events_training_job_runs_to_a_registered_challenger(
    make_settings: Callable[..., Any], in_process: Any, token_signer: Any, tenant: str
) -> None:
    fake = FakeCustomers()
    app = make_app(make_settings, token_signer, fake)
    analyst = auth(token_signer, tenant, "analyst")
    async with in_process(app) as client:
        accepted = await client.post(
            "/v1/models/train",
            headers=analyst,
            json={"source": "events", "cutoffs": ["2024-01-01", "2024-04-01"], "horizon_days": 90},
        )
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["job_id"]
        job = await finished_job(client, job_id, analyst)
        assert job["status"] == "succeeded", job
        assert job["progress"] == 100
        assert job["error"] is None
        version = job["model_version"]
        assert version

        # The job asked for both cutoffs as the caller.
        assert [r.url.params["cutoff"] for r in fake.requests] == ["2024-01-01", "2024-04-01"]
        assert all(r.headers["authorization"] == analyst["Authorization"] for r in fake.requests)

        # Progress went queued → running → … → succeeded, never backwards (outbox events).
        async with app.state.engine.connect() as conn:
            payloads = (
                await conn.execute(
                    sa.select(outbox.c.payload)
                    .where(outbox.c.topic == "model.training.v1")
                    .order_by(outbox.c.id)
                )
            ).scalars()
            events = [orjson.loads(p)["payload"] for p in payloads]
        mine = [e for e in events if e["job_id"] == job_id]
        assert mine[0]["status"] == "running"
        assert mine[-1]["status"] == "succeeded"
        assert mine[-1]["progress"] == 100
        progress = [e["progress"] for e in mine]
        assert progress == sorted(progress)
        stages = [e["stage"] for e in mine]
        assert stages[0] == "fetching training set"
        assert "registering" in stages
        assert any(0 < p < 100 for p in progress)

        listed = (await client.get("/v1/models", headers=analyst)).json()["items"]
        item = next(i for i in listed if i["version"] == version)
        assert item["aliases"] == ["challenger"]
        assert item["kind"] == "pipeline"
        assert item["tenant_id"] == tenant
        metrics = item["metrics"]
        for key in (
            "roc_auc",
            "pr_auc",
            "brier",
            "calibration_table",
            "at_threshold",
            "n_rows",
            "positive_rate",
            "feature_importance",
        ):
            assert key in metrics, key
        assert metrics["n_rows"] == 1000
        assert metrics["cv"].startswith("time-ordered")
        assert item["training_source"]["horizon_days"] == 90
        # The challenger does not serve yet.
        current = (await client.get("/v1/models/current", headers=analyst)).json()
        assert current["version"] == "default-1"

        detail = (await client.get(f"/v1/models/{version}", headers=analyst)).json()
        assert detail["online"] is True
        assert detail["feature_schema"]["features"][0]["name"] == FEATURE_NAMES[0]
        assert detail["model_card"].startswith(f"# Churn model {version}")
        card = await client.get(f"/v1/models/{version}/card", headers=analyst)
        assert card.status_code == 200
        assert card.headers["content-type"].startswith("text/markdown")
        assert "## Calibration" in card.text

        # Another tenant sees neither the job nor the version.
        other = auth(token_signer, "someone-else", "analyst")
        assert (await client.get(f"/v1/models/jobs/{job_id}", headers=other)).status_code == 404
        assert (await client.get(f"/v1/models/{version}", headers=other)).status_code == 404


async def test_a_failing_training_set_fails_the_job(
    make_settings: Callable[..., Any], in_process: Any, token_signer: Any, tenant: str
) -> None:
    app = make_app(make_settings, token_signer, FakeCustomers(status=404))
    analyst = auth(token_signer, tenant, "analyst")
    async with in_process(app) as client:
        accepted = await client.post(
            "/v1/models/train", headers=analyst, json={"source": "customers", "label": "Churn"}
        )
        job = await finished_job(client, accepted.json()["job_id"], analyst)
        assert job["status"] == "failed"
        assert "404" in job["error"]
        assert job["model_version"] is None


#: What the customers service answers for a cutoff whose horizon ends after the latest event.
REFUSAL = {
    "type": "https://churn.dev/problems/validation",
    "title": "Unprocessable Content",
    "status": 422,
    "detail": "The horizon of cutoff 2026-11-01 ends 2027-01-30, after the latest event.",
    "instance": "/v1/training-sets/events",
    "request_id": "r-1",
    "latest_event_at": "2026-11-20T00:00:00+00:00",
}


def refusing(request: httpx.Request) -> httpx.Response:
    return httpx.Response(422, json=REFUSAL, headers={"content-type": "application/problem+json"})


async def test_a_cutoff_the_customers_service_refuses_is_the_callers_422(
    make_settings: Callable[..., Any], in_process: Any, token_signer: Any, tenant: str
) -> None:
    app = make_app(make_settings, token_signer, refusing)
    analyst = auth(token_signer, tenant, "analyst")
    async with in_process(app) as client:
        evaluated = await client.post(
            "/v1/models/default-1/evaluate",
            headers=analyst,
            json={"cutoff": "2026-11-01", "horizon_days": 90},
        )
        accepted = await client.post(
            "/v1/models/train",
            headers=analyst,
            json={"source": "events", "cutoff": "2026-11-01", "horizon_days": 90},
        )
        job = await finished_job(client, accepted.json()["job_id"], analyst)
    assert evaluated.status_code == 422, evaluated.text
    problem = evaluated.json()
    assert problem["type"].endswith("/cutoff-not-usable")
    # The upstream's own words and its extra member, not its status line, path or raw body.
    assert problem["detail"] == REFUSAL["detail"]
    assert problem["latest_event_at"] == REFUSAL["latest_event_at"]
    assert problem.get("instance") != REFUSAL["instance"]
    assert job["status"] == "failed"
    assert job["error"] == REFUSAL["detail"]


async def test_an_unreachable_customers_service_is_a_503_without_internals(
    make_settings: Callable[..., Any], in_process: Any, token_signer: Any, tenant: str
) -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused to 10.0.0.7:8001", request=request)

    app = make_app(make_settings, token_signer, broken)
    analyst = auth(token_signer, tenant, "analyst")
    async with in_process(app) as client:
        evaluated = await client.post(
            "/v1/models/default-1/evaluate", headers=analyst, json={"cutoff": "2026-11-01"}
        )
    assert evaluated.status_code == 503
    assert "10.0.0.7" not in evaluated.text
    assert "/v1/training-sets" not in evaluated.text


async def test_roles_and_bad_requests(
    make_settings: Callable[..., Any], in_process: Any, token_signer: Any, tenant: str
) -> None:
    app = make_app(make_settings, token_signer, FakeCustomers())
    viewer = auth(token_signer, tenant, "viewer")
    analyst = auth(token_signer, tenant, "analyst")
    async with in_process(app) as client:
        body = {"source": "events", "cutoff": "2024-01-01", "horizon_days": 90}
        assert (await client.post("/v1/models/train", headers=viewer, json=body)).status_code == 403
        bad = {"source": "events", "cutoff": "2024-01-01", "horizon_days": 45}
        assert (await client.post("/v1/models/train", headers=analyst, json=bad)).status_code == 422
        no_label = {"source": "customers"}
        response = await client.post("/v1/models/train", headers=analyst, json=no_label)
        assert response.status_code == 422
        promote = {"alias": "champion"}
        for headers in (viewer, analyst):
            response = await client.post(
                "/v1/models/default-1/promote", headers=headers, json=promote
            )
            assert response.status_code == 403
            assert (await client.post("/v1/models/rollback", headers=headers)).status_code == 403
        admin = auth(token_signer, tenant, "admin")
        assert (await client.post("/v1/models/rollback", headers=admin)).status_code == 409
        missing = await client.post("/v1/models/nope/promote", headers=admin, json=promote)
        assert missing.status_code == 404
        rules = {"rules": []}
        response = await client.put("/v1/recommendation-rules", headers=analyst, json=rules)
        assert response.status_code == 403


async def test_promotion_hot_reloads_every_replica_and_rollback_restores(
    make_settings: Callable[..., Any], in_process: Any, token_signer: Any, tenant: str
) -> None:
    first = make_app(
        make_settings,
        token_signer,
        FakeCustomers(),
        run_workers=True,
        scorer_group_id=f"scorer-{tenant}",
    )
    second = make_app(
        make_settings,
        token_signer,
        FakeCustomers(),
        run_workers=True,
        scorer_group_id=f"scorer-{tenant}",
    )
    admin = auth(token_signer, tenant, "admin")
    async with in_process(first) as one:
        version = await register(first, tenant, trained_events_model(), EVENTS_SOURCE)
        async with in_process(second) as two:
            for app in (first, second):
                await asyncio.wait_for(app.state.workers.model_consumer.assigned.wait(), 30)

            async def served(client: httpx.AsyncClient) -> str:
                body = (await client.get("/v1/models/current", headers=admin)).json()
                return str(body["version"])

            assert await served(two) == "default-1"
            promoted = await one.post(
                f"/v1/models/{version}/promote", headers=admin, json={"alias": "champion"}
            )
            assert promoted.status_code == 200, promoted.text
            assert promoted.json() == {
                "alias": "champion",
                "version": version,
                "previous_version": None,
            }
            assert await served(one) == version  # this replica: at once
            await wait_for(lambda: second.state.serving_models.by_tenant.get(tenant), 30)
            assert await served(two) == version  # the other: via ModelPromotedV1
            listed = (await two.get("/v1/models", headers=admin)).json()["items"]
            assert next(i for i in listed if i["version"] == version)["aliases"] == ["champion"]

            # A second version becomes champion, then rollback goes back one step at a time.
            newer = await register(first, tenant, trained_events_model(seed=2), EVENTS_SOURCE)
            response = await one.post(
                f"/v1/models/{newer}/promote", headers=admin, json={"alias": "champion"}
            )
            assert response.json()["previous_version"] == version
            await wait_for(
                lambda: second.state.serving_models.for_tenant(tenant).version == newer, 30
            )

            back = await one.post("/v1/models/rollback", headers=admin)
            assert back.status_code == 200, back.text
            assert back.json() == {
                "alias": "champion",
                "version": version,
                "previous_version": newer,
            }
            await wait_for(
                lambda: second.state.serving_models.for_tenant(tenant).version == version, 30
            )
            back = await one.post("/v1/models/rollback", headers=admin)
            assert back.json()["version"] is None
            await wait_for(lambda: tenant not in second.state.serving_models.by_tenant, 30)
            assert await served(two) == "default-1"
            assert await served(one) == "default-1"


async def test_a_promotion_whose_local_reload_fails_is_still_answered_as_stored(
    make_settings: Callable[..., Any],
    in_process: Any,
    token_signer: Any,
    tenant: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The alias moved and committed; this replica's own reload failing (its broadcast
    ModelPromotedV1 reloads it later) must not turn the answer into an error a client would
    retry (a rollback retried would roll back twice)."""
    app = make_app(make_settings, token_signer, FakeCustomers())
    admin = auth(token_signer, tenant, "admin")

    async def broken(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("artifact store unavailable")

    async with in_process(app) as client:
        version = await register(app, tenant, trained_events_model(), EVENTS_SOURCE)
        monkeypatch.setattr(ModelRegistryService, "reload_tenant", broken)
        promoted = await client.post(
            f"/v1/models/{version}/promote", headers=admin, json={"alias": "champion"}
        )
        assert promoted.status_code == 200, promoted.text
        assert promoted.json()["version"] == version
        listed = (await client.get("/v1/models", headers=admin)).json()["items"]
        assert next(i for i in listed if i["version"] == version)["aliases"] == ["champion"]


async def test_a_reload_that_read_the_aliases_before_a_rollback_cannot_undo_it(
    make_settings: Callable[..., Any],
    in_process: Any,
    token_signer: Any,
    tenant: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The race CI once hit: this replica's broadcast consumer reads the champion, and while it
    is still parsing that model an admin rolls back. The consumer's reload must not swap the
    old champion in after the rollback's own reload: reloads of a tenant run one at a time,
    each reading the aliases under the tenant's lock."""
    app = make_app(make_settings, token_signer, FakeCustomers())
    admin = auth(token_signer, tenant, "admin")
    parsing = asyncio.Event()
    release = asyncio.Event()
    load = ModelRegistryService._load

    async def slow_load(self: ModelRegistryService, rows: Any, num_threads: int) -> Any:
        task = asyncio.current_task()
        if task is not None and task.get_name() == "stale-reload":
            parsing.set()
            await release.wait()
        return await load(self, rows, num_threads)

    monkeypatch.setattr(ModelRegistryService, "_load", slow_load)
    async with in_process(app) as client:

        async def served() -> str:
            body = (await client.get("/v1/models/current", headers=admin)).json()
            return str(body["version"])

        version = await register(app, tenant, trained_events_model(), EVENTS_SOURCE)
        promoted = await client.post(
            f"/v1/models/{version}/promote", headers=admin, json={"alias": "champion"}
        )
        assert promoted.status_code == 200, promoted.text
        assert await served() == version
        # A reload (as on ModelPromotedV1) that has read "champion = version" and is parsing it.
        stale = asyncio.create_task(
            reload_tenant_models(app.state.session_factory, app.state.serving_models, tenant, 1),
            name="stale-reload",
        )
        await asyncio.wait_for(parsing.wait(), 10)
        rollback = asyncio.create_task(client.post("/v1/models/rollback", headers=admin))
        await asyncio.sleep(0.2)  # the rollback commits, then waits for the reload in flight
        release.set()
        back = await rollback
        await stale
        assert back.status_code == 200, back.text
        assert back.json()["version"] is None
        assert tenant not in app.state.serving_models.by_tenant
        assert await served() == "default-1"


async def test_schema_check_refuses_a_model_serving_cannot_feed(
    make_settings: Callable[..., Any], in_process: Any, token_signer: Any, tenant: str
) -> None:
    app = make_app(make_settings, token_signer, FakeCustomers())
    admin = auth(token_signer, tenant, "admin")
    async with in_process(app) as client:
        data = customers_set()
        frame = pd.DataFrame(data["rows"], columns=data["columns"])
        trained = await asyncio.to_thread(train_labelled, frame, "Churn", id_column="customer_id")
        # Claimed to be an events model (online stream) but reads customer attributes.
        wrong = await register(app, tenant, trained, EVENTS_SOURCE)
        response = await client.post(
            f"/v1/models/{wrong}/promote", headers=admin, json={"alias": "champion"}
        )
        assert response.status_code == 422, response.text
        problem = response.json()
        assert problem["type"].endswith("model-schema-mismatch")
        assert "online features" in problem["detail"]
        assert (await client.get("/v1/models/current", headers=admin)).json()["version"] == (
            "default-1"
        )


async def test_an_attribute_model_serves_http_with_its_own_schema_not_the_stream(
    make_settings: Callable[..., Any], in_process: Any, token_signer: Any, tenant: str
) -> None:
    app = make_app(make_settings, token_signer, FakeCustomers())
    admin = auth(token_signer, tenant, "admin")
    async with in_process(app) as client:
        accepted = await client.post(
            "/v1/models/train", headers=admin, json={"source": "customers", "label": "Churn"}
        )
        job = await finished_job(client, accepted.json()["job_id"], admin)
        assert job["status"] == "succeeded", job
        version = job["model_version"]
        detail = (await client.get(f"/v1/models/{version}", headers=admin)).json()
        assert detail["online"] is False
        assert detail["features"] == ["tenure", "Contract", "MonthlyCharges"]
        assert detail["training_source"]["label"] == "Churn"
        promoted = await client.post(
            f"/v1/models/{version}/promote", headers=admin, json={"alias": "champion"}
        )
        assert promoted.status_code == 200, promoted.text
        one = await client.post(
            "/v1/predictions",
            headers=admin,
            json={"features": {"tenure": 2, "Contract": "Month-to-month", "MonthlyCharges": 99.5}},
        )
        assert one.status_code == 200, one.text
        body = one.json()
        assert body["model_version"] == version
        assert {d["feature"] for d in body["drivers"]} <= set(detail["features"])
        assert any(d["value"] == "Month-to-month" for d in body["drivers"])
        unseen = await client.post(
            "/v1/predictions",
            headers=admin,
            json={"features": {"tenure": 30, "Contract": "Lifetime", "MonthlyCharges": None}},
        )
        assert unseen.status_code == 200, unseen.text
        unknown = await client.post(
            "/v1/predictions", headers=admin, json={"features": {"total_orders": 3}}
        )
        assert unknown.status_code == 422
        batch = await client.post(
            "/v1/predictions/batch?drivers=true",
            headers=admin,
            json={"rows": [{"tenure": 1, "Contract": "Month-to-month"}, {"tenure": 60}]},
        )
        assert batch.status_code == 200, batch.text
        predictions = batch.json()["predictions"]
        assert len(predictions) == 2
        assert len(predictions[0]["drivers"]) == 3
        # The online stream keeps the global default for this tenant.
        assert app.state.serving_models.online_for_tenant(tenant).version == "default-1"


async def test_evaluate_on_a_point_in_time_set_with_the_recency_baseline(
    make_settings: Callable[..., Any], in_process: Any, token_signer: Any, tenant: str
) -> None:
    fake = FakeCustomers()
    app = make_app(make_settings, token_signer, fake)
    analyst = auth(token_signer, tenant, "analyst")
    async with in_process(app) as client:
        version = await register(app, tenant, trained_events_model(), EVENTS_SOURCE)
        response = await client.post(
            f"/v1/models/{version}/evaluate",
            headers=analyst,
            json={"cutoff": "2024-07-01", "horizon_days": 90},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        expected = events_set("2024-07-01")
        assert body["n_customers"] == len(expected["labels"])
        assert body["positive_rate"] == pytest.approx(np.mean(expected["labels"]))
        assert body["baselines"]["recency"] == pytest.approx(
            recency_baseline_auc(expected["days_since_last_order"], expected["labels"])
        )
        assert 0.5 < body["roc_auc"] <= 1
        assert 0 < body["pr_auc"] <= 1
        assert 0 <= body["brier"] < 1
        assert fake.requests[-1].url.params["horizon_days"] == "90"
        # BG/NBD beside recency, fitted on the same customers, with the lift and its interval.
        comparison = body["comparison"]
        assert comparison["recency"]["roc_auc"] == pytest.approx(body["baselines"]["recency"])
        assert comparison["bgnbd"]["roc_auc"] == pytest.approx(body["baselines"]["bgnbd"])
        assert comparison["model"]["roc_auc"] == pytest.approx(body["roc_auc"])
        assert 0.5 < comparison["bgnbd"]["roc_auc"] < 1
        assert comparison["bgnbd"]["params"][0]["r"] > 0
        assert comparison["pareto_nbd"]["roc_auc"] == pytest.approx(body["baselines"]["pareto_nbd"])
        assert comparison["pareto_nbd"]["params"][0]["beta"] > 0
        for name in ("recency", "bgnbd", "pareto_nbd"):
            lift = comparison["lift"][name]
            assert lift["roc_auc_diff"] == pytest.approx(
                body["roc_auc"] - comparison[name]["roc_auc"]
            )
            assert lift["ci_low"] < lift["roc_auc_diff"] < lift["ci_high"]
            assert 0 < comparison[name]["brier"] < 0.3
        assert comparison["horizon_days"] == 90
        assert 0 <= body["ece"] < 0.2
        # The default booster can be evaluated too.
        default = await client.post(
            "/v1/models/default-1/evaluate",
            headers=analyst,
            json={"cutoff": "2024-07-01", "horizon_days": 90},
        )
        assert default.status_code == 200, default.text
        viewer = auth(token_signer, tenant, "viewer")
        forbidden = await client.post(
            f"/v1/models/{version}/evaluate", headers=viewer, json={"cutoff": "2024-07-01"}
        )
        assert forbidden.status_code == 403


async def test_shadow_challenger_is_scored_next_to_the_champion(
    make_settings: Callable[..., Any],
    in_process: Any,
    token_signer: Any,
    kafka_bootstrap: str,
    tenant: str,
) -> None:
    app = make_app(
        make_settings,
        token_signer,
        FakeCustomers(),
        run_workers=True,
        scorer_group_id=f"scorer-{tenant}",
    )
    viewer = auth(token_signer, tenant, "viewer")
    publisher = EventPublisher(kafka_bootstrap, client_id="test-shadow")
    await publisher.start()
    try:
        async with in_process(app) as client:
            version = await register(app, tenant, trained_events_model(), EVENTS_SOURCE)
            async with unit_of_work(app.state.session_factory) as session:
                await ModelRegistryService(session).reload_tenant(
                    app.state.serving_models, tenant, 1
                )
            history = simulate_customers(40, seed=9)
            envelopes = []
            for i, row in enumerate(history.features):
                features = {
                    n: (None if np.isnan(v) else float(v))
                    for n, v in zip(FEATURE_NAMES, row, strict=True)
                }
                payload = CustomerFeaturesUpdatedV1(
                    customer_id=f"c-{i}", features=features, as_of=datetime.now(UTC)
                )
                envelopes.append(
                    Envelope.wrap(
                        tenant_id=tenant,
                        producer="test",
                        payload=payload,
                        key=f"c-{i}",
                    )
                )
            await publisher.publish(Topics.CUSTOMER_FEATURES, envelopes)

            async def report() -> Any:
                body = (await client.get("/v1/models/shadow", headers=viewer)).json()
                return body if body["n"] >= 40 else None

            body = await wait_for(report, timeout=30)
            assert body["champion"] == "default-1"
            assert body["challenger"] == version
            assert body["n"] == 40
            assert 0 <= body["agreement"] <= 1
            assert 0 <= body["mean_abs_diff"] < 1
            # Stored (and published) scores are the champion's only.
            async with app.state.engine.connect() as conn:
                versions = (
                    (
                        await conn.execute(
                            sa.select(scores_table.c.model_version).where(
                                scores_table.c.tenant_id == tenant
                            )
                        )
                    )
                    .scalars()
                    .all()
                )
            assert set(versions) == {"default-1"}
    finally:
        await publisher.stop()


async def test_recommendations_follow_the_tenant_rules(
    make_settings: Callable[..., Any], in_process: Any, token_signer: Any, tenant: str
) -> None:
    app = make_app(make_settings, token_signer, FakeCustomers())
    analyst = auth(token_signer, tenant, "analyst")
    admin = auth(token_signer, tenant, "admin")
    leaving = {
        "days_since_last_order": 240.0,
        "payment_failures_last_90d": 5.0,
        "email_open_rate": 0.0,
        "logins_last_30d": 0.0,
        "support_tickets_last_90d": 4.0,
        "orders_last_90d": 0.0,
    }
    async with in_process(app) as client:
        defaults = (await client.get("/v1/recommendation-rules", headers=analyst)).json()
        actions = {r["action"] for r in defaults["rules"]}
        assert {
            "payment_method_reminder",
            "win_back_offer",
            "service_recovery_call",
            "re_engagement_campaign",
            "onboarding_nudge",
        } <= actions
        response = await client.post("/v1/predictions", headers=analyst, json={"features": leaving})
        assert response.status_code == 200, response.text
        body = response.json()
        by_feature = {r["feature"]: r for r in defaults["rules"]}
        expected = [
            by_feature[d["feature"]]["action"]
            for d in body["drivers"]
            if d["feature"] in by_feature and d["direction"] == "increases_risk"
        ]
        assert expected, body
        assert [r["action"] for r in body["recommendations"]] == list(dict.fromkeys(expected))

        top = body["drivers"][0]["feature"]
        custom = {
            "rules": [
                {
                    "feature": top,
                    "direction": "increases_risk",
                    "action": "call_now",
                    "message": "Call today.",
                }
            ]
        }
        put = await client.put("/v1/recommendation-rules", headers=admin, json=custom)
        assert put.status_code == 200, put.text
        again = (
            await client.post("/v1/predictions", headers=analyst, json={"features": leaving})
        ).json()
        assert again["recommendations"] == [
            {
                "action": "call_now",
                "message": "Call today.",
                "feature": top,
                "contribution": again["drivers"][0]["contribution"],
            }
        ]
        batch = await client.post(
            "/v1/predictions/batch?drivers=true", headers=analyst, json={"rows": [leaving]}
        )
        assert batch.json()["predictions"][0]["recommendations"][0]["action"] == "call_now"
        assert (await client.get("/v1/recommendation-rules", headers=analyst)).json() == custom
