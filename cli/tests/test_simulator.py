from datetime import UTC, datetime

from churn_cli.simulator import CustomerSimulator, at_risk_story, loyal_story
from churn_shared.contracts import CustomerEventReceivedV1


def test_history_is_valid_ordered_and_in_the_past():
    sim = CustomerSimulator(40, seed=1)
    history = sim.history()
    parsed = [CustomerEventReceivedV1.model_validate(e) for e in history]
    times = [e.occurred_at for e in parsed]
    assert times == sorted(times)
    assert max(times) <= datetime.now(UTC)
    assert len({e.event_id for e in parsed}) == len(parsed)


def test_drifting_customers_stop_ordering_and_fail_payments():
    sim = CustomerSimulator(200, seed=2)
    history = sim.history()
    drifting = {c.customer_id: c for c in sim.customers if c.persona == "drifting"}
    loyal = {c.customer_id for c in sim.customers if c.persona == "loyal"}
    assert drifting
    assert loyal
    for e in history:
        c = drifting.get(e["customer_id"])
        if c is not None and e["type"] == "order_placed":
            assert e["occurred_at"] < c.drift_started_at.isoformat()
    failures = [e for e in history if e["type"] == "payment_failed"]
    share_drifting = sum(e["customer_id"] in drifting for e in failures) / len(failures)
    assert share_drifting > 0.9


def test_live_events_are_now_and_valid():
    sim = CustomerSimulator(30, seed=3)
    events = [CustomerEventReceivedV1.model_validate(e) for e in sim.live_events(50)]
    assert len(events) == 50
    assert all(abs((datetime.now(UTC) - e.occurred_at).total_seconds()) < 60 for e in events)


def test_stories_are_valid_events():
    for story in (at_risk_story("a"), loyal_story("b")):
        assert all(CustomerEventReceivedV1.model_validate(e) for e in story)


def test_a_newly_drifting_customer_fails_a_payment_next():
    sim = CustomerSimulator(10, seed=4)
    history = sim.add_drifting_customer()
    newcomer = history[0]["customer_id"]
    assert all(e["customer_id"] == newcomer for e in history)
    assert not [
        e
        for e in history
        if e["type"] == "order_placed"
        and e["occurred_at"] > sim.customers[-1].drift_started_at.isoformat()
    ]
    live = sim.live_events(5)
    assert live[0]["customer_id"] == newcomer
    assert live[0]["type"] == "payment_failed"
