"""The web console in a real browser (Debian's chromium driven by Playwright) against the whole
stack started by the launcher: sign in, the live alerts inbox, working an alert, the customers
table with a hostile customer id, roles, training and promoting a model, the dashboard.

Screenshots of every page go to a temporary directory whose path is printed; look at them when
the layout changes. Skipped, loudly, only when /usr/bin/chromium is missing (``.ci/run``
installs it).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest

from churn_cli.launcher import SERVICES, Stack, StackConfig
from churn_cli.simulator import at_risk_story, loyal_story

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
PASSWORD = "correct horse battery staple"
HOSTILE_ID = "<img src=x onerror=alert(1)>"
#: The screenshots the README shows (viewport-sized; see the screenshots fixture).
README_SCREENSHOTS = {
    "02b-alert-details": "console-alerts.png",
    "08-dashboard": "console-dashboard.png",
}

if not CHROMIUM.exists():
    pytest.skip(
        f"BROWSER TESTS SKIPPED: {CHROMIUM} is missing; install Debian's chromium "
        "(`apt-get install chromium`, as .ci/run does) to run the console's browser tests",
        allow_module_level=True,
    )

from playwright.sync_api import (  # noqa: E402
    Browser,
    ConsoleMessage,
    Page,
    Response,
    expect,
)


@dataclass
class Account:
    email: str
    password: str
    headers: dict[str, str]


MYSQL_TEMPLATE = os.environ.get("CHURN_TEST_MYSQL_URL", "")
REDIS_URL = os.environ.get("CHURN_TEST_REDIS_URL", "")
MODES = ["embedded"] + (["mysql"] if MYSQL_TEMPLATE and REDIS_URL else [])


@pytest.fixture(scope="module", params=MODES)
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The launcher's stack: embedded (SQLite, its own broker), and on MariaDB + Redis + the
    module's broker when the test databases are configured (as tests/e2e does)."""
    data_dir = tmp_path_factory.mktemp(f"console-stack-{request.param}")
    if request.param == "embedded":
        config = StackConfig(data_dir=data_dir)
    else:
        from testkit import reset_mysql

        # In a thread: the browser's sync Playwright already runs an event loop in this one.
        with ThreadPoolExecutor(max_workers=1) as pool:
            for service in SERVICES:
                url = MYSQL_TEMPLATE.format(service=service)
                pool.submit(asyncio.run, reset_mysql(url)).result()
        config = StackConfig(
            data_dir=data_dir,
            kafka_bootstrap=request.getfixturevalue("kafka_bootstrap"),
            mysql_url_template=MYSQL_TEMPLATE,
            cache_url=REDIS_URL,
        )
    running = Stack(config)
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def api(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.gateway_url, timeout=30) as client:
        yield client


def _login(api: httpx.Client, email: str, password: str) -> Account:
    response = api.post("/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    return Account(email, password, {"Authorization": f"Bearer {token}"})


@pytest.fixture(scope="module")
def owner(api: httpx.Client) -> Account:
    email = f"owner-{uuid.uuid4().hex[:8]}@console.example"
    registered = api.post(
        "/v1/auth/register",
        json={"tenant_name": "Console Shop", "email": email, "password": PASSWORD},
    )
    assert registered.status_code == 201, registered.text
    return _login(api, email, PASSWORD)


@pytest.fixture(scope="module")
def viewer(api: httpx.Client, owner: Account) -> Account:
    email = f"viewer-{uuid.uuid4().hex[:8]}@console.example"
    created = api.post(
        "/v1/users",
        headers=owner.headers,
        json={"email": email, "password": PASSWORD, "role": "viewer"},
    )
    assert created.status_code == 201, created.text
    return _login(api, email, PASSWORD)


@pytest.fixture(scope="module")
def screenshots(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Callable[[Page, str], None]:
    directory = tmp_path_factory.mktemp("console-screenshots")
    # CHURN_CONSOLE_SCREENSHOTS=docs/screenshots writes the README's screenshots there too.
    keep_to = os.environ.get("CHURN_CONSOLE_SCREENSHOTS")
    keep = Path(keep_to) if keep_to else None
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"console screenshots: {directory}")

    def take(page: Page, name: str) -> None:
        if keep is not None and name in README_SCREENSHOTS:
            page.screenshot(path=keep / README_SCREENSHOTS[name])
        page.screenshot(path=directory / f"{name}.png", full_page=True)

    return take


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield launched
        launched.close()


@dataclass
class Console:
    page: Page
    problems: list[str]
    dialogs: list[str]


@pytest.fixture
def console(browser: Browser, stack: Stack) -> Iterator[Callable[..., Console]]:
    """Opens a fresh browser context on the console; fails the test on any script error, CSP
    violation or dialog."""
    contexts = []

    def open_console(width: int = 1280, height: int = 900, fake_clock: bool = False) -> Console:
        context = browser.new_context(
            viewport={"width": width, "height": height}, base_url=stack.gateway_url
        )
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        opened = Console(page, [], [])

        def on_console(message: ConsoleMessage) -> None:
            # A failed request is logged as "Failed to load resource"; on_response names it.
            if message.type == "error" and not message.text.startswith("Failed to load"):
                opened.problems.append(message.text)

        def on_response(response: Response) -> None:
            path = urlsplit(response.url).path
            # The score history endpoint is optional: the customer page says when it is absent.
            optional = response.status == 404 and path.endswith("/scores")
            if response.status >= 400 and not optional:
                opened.problems.append(f"{response.status} {response.request.method} {path}")

        def on_dialog(dialog: Any) -> None:
            opened.dialogs.append(dialog.message)
            dialog.dismiss()

        page.on("console", on_console)
        page.on("response", on_response)
        page.on("pageerror", lambda error: opened.problems.append(str(error)))
        page.on("dialog", on_dialog)
        if fake_clock:
            page.clock.install()
        page.goto("/console/")
        return opened

    yield open_console
    for context in contexts:
        context.close()


def _sign_in(page: Page, account: Account) -> None:
    page.get_by_label("E-mail").fill(account.email)
    page.get_by_label("Password").fill(account.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Alerts", exact=True)).to_be_visible()
    expect(page.locator("#live-status")).to_have_text("Live: connected")


def _post_events(api: httpx.Client, account: Account, events: list[dict[str, Any]]) -> None:
    posted = api.post("/v1/events", headers=account.headers, json={"events": events})
    assert posted.status_code == 202, posted.text


def _wait(check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.3)
    raise AssertionError(f"not true within {timeout} s: {check}")


def test_a_live_alert_arrives_and_is_worked_to_resolved(
    console: Callable[..., Console],
    api: httpx.Client,
    owner: Account,
    screenshots: Callable[[Page, str], None],
) -> None:
    opened = console()
    page = opened.page
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    screenshots(page, "01-login")
    _sign_in(page, owner)
    page.evaluate("window.__sameDocument = true")

    customer = f"risky-{uuid.uuid4().hex[:6]}"
    _post_events(api, owner, at_risk_story(customer))
    row = page.locator("#alerts-table tbody tr", has_text=customer)
    expect(row).to_be_visible(timeout=60_000)
    assert page.evaluate("window.__sameDocument") is True, "the alert came without a reload"
    expect(row).to_contain_text("High")
    screenshots(page, "02-alerts-live")

    row.get_by_role("button", name=re.compile("Details")).click()
    detail = page.locator("section.detail")
    expect(detail.get_by_role("heading", name=f"Alert for {customer}")).to_be_visible()
    page.evaluate("window.scrollTo(0, 0)")
    screenshots(page, "02b-alert-details")
    detail.get_by_role("button", name="Acknowledge").click()
    expect(page.locator("#alert-status")).to_have_text("Acknowledged")
    detail.get_by_label("Outcome").select_option("false_alarm")
    detail.get_by_label("Note").fill("called; offered a discount")
    # Someone else works the alert meanwhile: the live update redraws it, and what is being
    # typed stays (it once vanished, and the alert was resolved without its note).
    [open_alert] = api.get(
        "/v1/alerts", headers=owner.headers, params={"customer_id": customer}
    ).json()["items"]
    assigned = api.post(
        f"/v1/alerts/{open_alert['id']}/assign", headers=owner.headers, json={"user_id": "me"}
    )
    assert assigned.status_code == 200, assigned.text
    expect(detail.get_by_role("button", name="Assign to me")).to_have_count(0)
    expect(detail.get_by_label("Note")).to_have_value("called; offered a discount")
    expect(detail.get_by_label("Outcome")).to_have_value("false_alarm")
    detail.get_by_role("button", name="Resolve").click()
    expect(page.locator("#alert-status")).to_have_text("Resolved")
    expect(detail.locator(".history")).to_contain_text("resolved by")
    expect(detail.locator("dl.facts")).to_contain_text("False alarm")
    screenshots(page, "03-alert-resolved")

    alerts = api.get("/v1/alerts", headers=owner.headers, params={"customer_id": customer}).json()
    [alert] = alerts["items"]
    assert alert["status"] == "resolved"
    assert alert["outcome"] == "false_alarm"
    assert alert["resolution_note"] == "called; offered a discount"
    assert opened.problems == []


def test_the_session_refreshes_itself_and_hands_the_feed_the_new_token(
    console: Callable[..., Console], owner: Account
) -> None:
    """The browser's clock jumps to a minute before the access token expires: the console
    refreshes it (a real call to auth) and the open socket accepts it with ``reauth``."""
    opened = console(fake_clock=True)
    page = opened.page
    sockets: list[Any] = []
    frames: list[str] = []

    def on_websocket(socket: Any) -> None:
        sockets.append(socket)
        socket.on("framesent", lambda payload: frames.append(f"sent {payload}"))
        socket.on("framereceived", lambda payload: frames.append(f"received {payload}"))

    page.on("websocket", on_websocket)
    _sign_in(page, owner)
    with page.expect_request("**/v1/auth/refresh") as refreshed:
        page.clock.run_for(15 * 60 * 1000 - 59_000)
    assert refreshed.value.method == "POST"

    def reauth_acknowledged() -> bool:
        page.wait_for_timeout(100)
        sent = [f for f in frames if f.startswith("sent 42") and '"reauth"' in f]
        acks = [f for f in frames if f.startswith("received 43")]
        return bool(sent) and any('"ok":true' in ack.replace(" ", "") for ack in acks)

    _wait(reauth_acknowledged, timeout=15)
    expect(page.locator("#live-status")).to_have_text("Live: connected")
    assert len(sockets) == 1, "the socket was kept, not reopened"
    page.get_by_role("link", name="Customers").click()
    expect(page.get_by_role("heading", name="Customers")).to_be_visible()
    assert opened.problems == []


def test_customers_table_shows_a_hostile_id_as_text(
    console: Callable[..., Console],
    api: httpx.Client,
    owner: Account,
    screenshots: Callable[[Page, str], None],
) -> None:
    _post_events(api, owner, loyal_story(HOSTILE_ID))
    path = f"/v1/customers/{quote(HOSTILE_ID, safe='')}"
    _wait(lambda: api.get(path, headers=owner.headers).json().get("scored_at"))
    opened = console()
    page = opened.page
    _sign_in(page, owner)
    page.goto("/console/#/customers")
    table = page.locator("#customers-table")
    cell = table.locator("tbody th", has_text=HOSTILE_ID)
    expect(cell).to_have_text(HOSTILE_ID)
    assert table.locator("img").count() == 0
    screenshots(page, "04-customers")

    cell.get_by_role("link").click()
    expect(page.locator("h1 .customer-id")).to_have_text(HOSTILE_ID)
    expect(page.get_by_role("heading", name="Features")).to_be_visible()
    if api.get(f"{path}/scores", headers=owner.headers).status_code == 200:
        chart = page.get_by_role("img", name=f"Churn probability of {HOSTILE_ID} over time")
        expect(chart).to_be_visible()
    else:  # the score history endpoint is not in this API version
        expect(page.get_by_text("Score history is not available")).to_be_visible()
    expect(page.get_by_role("heading", name="Recommended actions")).to_be_visible()
    assert page.locator("main img").count() == 0
    screenshots(page, "05-customer")
    assert opened.dialogs == []
    assert opened.problems == []


def test_customers_search_filter_tag_and_export(
    console: Callable[..., Console], api: httpx.Client, owner: Account
) -> None:
    prefix = f"exp-{uuid.uuid4().hex[:6]}"
    _post_events(api, owner, at_risk_story(f"{prefix}-a") + loyal_story(f"{prefix}-b"))
    for suffix in ("a", "b"):
        path = f"/v1/customers/{prefix}-{suffix}"
        _wait(lambda path=path: api.get(path, headers=owner.headers).json().get("scored_at"))
    opened = console()
    page = opened.page
    _sign_in(page, owner)
    page.get_by_role("link", name="Customers").click()
    page.get_by_label("Search").fill(prefix)
    page.get_by_role("button", name="Apply").click()
    rows = page.locator("#customers-table tbody th")
    expect(rows).to_have_text([f"{prefix}-a", f"{prefix}-b"])
    page.get_by_label(f"Select {prefix}-a").check()
    page.get_by_label("Tag name").fill(f"{prefix}-win-back")
    page.get_by_role("button", name="Tag selected", exact=True).click()
    expect(page.locator("#toast")).to_contain_text("tag: 1 of 1 customers changed")
    detail = api.get(f"/v1/customers/{prefix}-a", headers=owner.headers).json()
    assert detail["tags"] == [f"{prefix}-win-back"]
    page.get_by_label("Search").fill("")
    page.get_by_label("Tag", exact=True).fill(f"{prefix}-win-back")
    page.get_by_role("button", name="Apply").click()
    expect(rows).to_have_text([f"{prefix}-a"])
    page.get_by_label("Tag", exact=True).fill("")
    page.get_by_label("Search").fill(prefix)
    page.get_by_label("Risk").select_option("high")
    expect(rows).to_have_text([f"{prefix}-a"])

    with page.expect_download() as downloaded:
        page.get_by_role("button", name="Export CSV").click()
    exported = Path(downloaded.value.path()).read_text(encoding="utf-8-sig").splitlines()
    assert downloaded.value.suggested_filename.endswith(".csv")
    assert exported[0].startswith("customer_id,churn_probability,risk_level")
    assert [line.split(",")[0] for line in exported[1:]] == [f"{prefix}-a"]
    assert opened.problems == []


def test_the_console_fits_a_narrow_phone(
    console: Callable[..., Console], owner: Account, screenshots: Callable[[Page, str], None]
) -> None:
    opened = console(width=360, height=740)
    page = opened.page
    _sign_in(page, owner)
    routes = (
        ("#/alerts", "06-alerts-360px"),
        ("#/customers", "07-customers-360px"),
        ("#/cohorts", "07b-cohorts-360px"),
        ("#/dashboard", "07c-dashboard-360px"),
        ("#/imports", "07d-imports-360px"),
    )
    for route, name in routes:
        page.goto(f"/console/{route}")
        expect(page.locator("main h1")).to_be_visible()
        page.wait_for_load_state("networkidle")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{route} is {overflow} px wider than the screen"
        screenshots(page, name)
    assert opened.problems == []


@pytest.fixture(scope="module")
def raised_alert(api: httpx.Client, owner: Account) -> str:
    """The customer id of an open alert, raised through the API."""
    customer = f"raised-{uuid.uuid4().hex[:6]}"
    _post_events(api, owner, at_risk_story(customer))
    params = {"customer_id": customer}
    _wait(lambda: api.get("/v1/alerts", headers=owner.headers, params=params).json()["items"])
    return customer


def test_a_viewer_sees_no_actions_and_signing_out_revokes_the_session(
    console: Callable[..., Console], api: httpx.Client, viewer: Account, raised_alert: str
) -> None:
    opened = console()
    page = opened.page
    # By keyboard alone: the e-mail field has the focus, Tab moves on, Enter submits.
    expect(page.get_by_label("E-mail")).to_be_focused()
    page.keyboard.type(viewer.email)
    page.keyboard.press("Tab")
    page.keyboard.type(viewer.password)
    page.keyboard.press("Enter")
    expect(page.locator("#live-status")).to_have_text("Live: connected")
    page.get_by_label("Status").select_option("")
    page.locator("#alerts-table tbody tr", has_text=raised_alert).get_by_role(
        "button", name=re.compile("Details")
    ).click()
    detail = page.locator("section.detail")
    expect(detail).to_contain_text("Your role can read alerts but not work them.")
    for action in ("Acknowledge", "Resolve", "Snooze", "Assign to me", "Reopen"):
        assert detail.get_by_role("button", name=action).count() == 0, action

    page.get_by_role("link", name="Models").click()
    expect(page.locator("#models-table tbody tr").first).to_be_visible()
    assert page.get_by_role("button", name=re.compile("^Make ")).count() == 0
    assert page.get_by_role("heading", name="Train a model").count() == 0

    refresh_token = page.evaluate("sessionStorage.getItem('churn.console.refresh')")
    assert refresh_token
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0
    refused = api.post("/v1/auth/refresh", json={"refresh_token": refresh_token})
    assert refused.status_code == 401
    assert opened.problems == []


def test_the_dashboard_shows_the_api_summary_and_trend(
    console: Callable[..., Console],
    api: httpx.Client,
    owner: Account,
    screenshots: Callable[[Page, str], None],
) -> None:
    opened = console()
    page = opened.page
    _sign_in(page, owner)
    page.get_by_role("link", name="Dashboard").click()

    def shows_the_api_numbers() -> bool:
        """Scores land asynchronously: compare one API reading with one page reading."""
        summary = api.get("/v1/dashboard/summary", headers=owner.headers).json()
        page.reload()
        expect(page.locator("#count-high")).to_be_visible()
        shown = [
            page.locator(f"#{id_}").inner_text()
            for id_ in (
                "count-high",
                "count-medium",
                "count-low",
                "count-unscored",
                "moved-up",
                "revenue-at-risk",
                "alerts-open",
                "alerts-resolved",
            )
        ]
        levels, alerts = summary["risk_levels"], summary["alerts"]
        return shown == [
            f"{levels['high']:,}",
            f"{levels['medium']:,}",
            f"{levels['low']:,}",
            f"{levels['unscored']:,}",
            f"{summary['moved_up_last_7_days']:,}",
            f"{math.floor(summary['revenue_at_risk'] + 0.5):,}",
            f"{alerts['open']:,}",
            f"{alerts['resolved']:,}",
        ]

    _wait(shows_the_api_numbers, timeout=30)
    expect(page.get_by_role("img", name=re.compile("churn probability band"))).to_be_visible()
    chart = page.get_by_role("img", name=re.compile("risk level at the end of each of the last 90"))
    expect(chart).to_be_visible()
    expect(chart.locator("polyline")).to_have_count(3)
    trend = api.get("/v1/dashboard/trend", headers=owner.headers, params={"days": 90}).json()
    assert len(trend["items"]) == 90
    page.get_by_text("The trend as a table").click()
    rows = page.locator("#trend-table tbody tr")
    expect(rows).to_have_count(90)
    oldest = trend["items"][0]
    expect(rows.last.locator("th")).to_have_text(oldest["date"])
    expect(rows.last.locator("td").first).to_have_text(f"{oldest['risk_levels']['high']:,}")
    page.get_by_text("The trend as a table").click()
    screenshots(page, "08-dashboard")
    assert opened.problems == []


def _given(filter_: dict[str, Any]) -> dict[str, Any]:
    """The conditions a stored filter sets (the API lists the unset ones as null or empty)."""
    return {key: value for key, value in filter_.items() if value not in (None, {}, [])}


def _post_stories(api: httpx.Client, account: Account, risky: list[str], loyal: list[str]) -> None:
    """At-risk and loyal histories for these customers; returns once every one is scored."""
    events = [e for c in risky for e in at_risk_story(c)]
    events += [e for c in loyal for e in loyal_story(c)]
    _post_events(api, account, events)
    for customer in risky + loyal:
        path = f"/v1/customers/{quote(customer, safe='')}"
        _wait(lambda path=path: api.get(path, headers=account.headers).json().get("scored_at"))


def test_bulk_actions_on_every_customer_the_filters_match(
    console: Callable[..., Console],
    api: httpx.Client,
    owner: Account,
    screenshots: Callable[[Page, str], None],
) -> None:
    """Tag then delete what a filter matches (not ticked rows): a dry run counts first, the
    page says how many, and nothing changes before the confirmation."""
    prefix = f"bulk-{uuid.uuid4().hex[:6]}"
    risky = [f"{prefix}-r{i}" for i in range(3)]
    loyal = [f"{prefix}-l{i}" for i in range(2)]
    _post_stories(api, owner, risky, loyal)
    opened = console()
    page = opened.page
    _sign_in(page, owner)
    page.get_by_role("link", name="Customers").click()
    page.get_by_label("Search").fill(prefix)
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#customers-table tbody th")).to_have_count(5)

    tag = f"{prefix}-campaign"
    page.get_by_label("Tag name").fill(tag)
    page.get_by_role("button", name="Tag all matching", exact=True).click()
    confirm = page.locator("#bulk-confirm")
    expect(confirm).to_contain_text(f"5 customers match (search “{prefix}”)")
    screenshots(page, "12-bulk-confirm")
    tagged = api.get("/v1/customers", headers=owner.headers, params={"tag": tag}).json()
    assert tagged["items"] == [], "the dry run changed nothing"
    confirm.get_by_role("button", name="Tag 5 customers").click()
    expect(page.locator("#toast")).to_contain_text("tag: 5 of 5 customers changed")
    expect(confirm).to_be_hidden()
    tagged = api.get("/v1/customers", headers=owner.headers, params={"tag": tag}).json()
    assert sorted(c["customer_id"] for c in tagged["items"]) == sorted(risky + loyal)

    # Cancel leaves everything as it was; confirming deletes exactly the high-risk matches.
    page.get_by_label("Risk").select_option("high")
    expect(page.locator("#customers-table tbody th")).to_have_count(3)
    page.get_by_role("button", name="Delete all matching").click()
    expect(confirm).to_contain_text(f"3 customers match (search “{prefix}”, high risk)")
    confirm.get_by_role("button", name="Cancel").click()
    expect(confirm).to_be_hidden()
    assert api.get(f"/v1/customers/{risky[0]}", headers=owner.headers).status_code == 200
    page.get_by_role("button", name="Delete all matching").click()
    confirm.get_by_role("button", name="Delete 3 customers").click()
    expect(page.locator("#toast")).to_contain_text("delete: 3 of 3 customers changed")
    expect(page.locator("#customers-table tbody")).to_contain_text("No customers match.")
    left = api.get("/v1/customers", headers=owner.headers, params={"q": prefix}).json()["items"]
    assert sorted(c["customer_id"] for c in left) == sorted(loyal)
    assert opened.dialogs == []
    assert opened.problems == []


def test_cohorts_are_saved_listed_with_stats_edited_and_deleted(
    console: Callable[..., Console],
    api: httpx.Client,
    owner: Account,
    screenshots: Callable[[Page, str], None],
) -> None:
    prefix = f"coh-{uuid.uuid4().hex[:6]}"
    risky = [f"{prefix}-r{i}" for i in range(2)]
    loyal = [f"{prefix}-l{i}" for i in range(3)]
    _post_stories(api, owner, risky, loyal)
    opened = console()
    page = opened.page
    _sign_in(page, owner)

    # Saved from the Customers page's filters.
    page.get_by_role("link", name="Customers").click()
    page.get_by_label("Search").fill(prefix)
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#customers-table tbody th")).to_have_count(5)
    page.get_by_label("Cohort name").fill(f"{prefix} everyone")
    page.get_by_role("button", name="Save filters as cohort").click()
    expect(page.locator("#toast")).to_contain_text(f"Cohort {prefix} everyone saved")

    # Made on the Cohorts page.
    page.get_by_role("link", name="Cohorts").click()
    form = page.locator("form[aria-labelledby=cohort-form-title]")
    form.get_by_label("Name", exact=True).fill(f"{prefix} at risk")
    form.get_by_label("High").check()
    form.get_by_label("Id, e-mail or name starts with").fill(prefix)
    form.get_by_role("button", name="Save cohort").click()
    expect(page.locator("#toast")).to_contain_text(f"Cohort {prefix} at risk created")

    cohorts = {c["name"]: c for c in api.get("/v1/cohorts", headers=owner.headers).json()["items"]}
    at_risk = cohorts[f"{prefix} at risk"]
    assert _given(at_risk["filter"]) == {"risk_level": ["high"], "q": prefix}
    assert _given(cohorts[f"{prefix} everyone"]["filter"]) == {"q": prefix}
    stats = api.get(f"/v1/cohorts/{at_risk['id']}/stats", headers=owner.headers).json()
    assert stats["size"] == 2
    row = page.locator("#cohorts-table tbody tr", has_text=f"{prefix} at risk")
    expect(row.locator("td.size")).to_have_text("2")
    expect(row.locator("td.mix")).to_have_text("2 high")
    trend = stats["trend"]
    assert len(trend) == 30
    high_then, high_now = trend[0]["risk_levels"]["high"], trend[-1]["risk_levels"]["high"]
    assert high_now == 2
    change = f"+{high_now - high_then}" if high_now > high_then else "±0"
    expect(row.locator("td.trend")).to_have_text(f"{high_then} → {high_now} ({change})")
    expect(row).to_contain_text(f"risk high; id, e-mail or name starts with “{prefix}”")
    everyone = page.locator("#cohorts-table tbody tr", has_text=f"{prefix} everyone")
    expect(everyone.locator("td.size")).to_have_text("5")

    # The retention heat map shows the API's matrix, by month and by week (the stories' first
    # orders are a year old or more: a newcomer makes a cohort among the latest 26 weeks).
    newcomer = f"new-{uuid.uuid4().hex[:6]}"
    now = datetime.now(UTC)
    _post_events(
        api,
        owner,
        [
            {
                "event_id": uuid.uuid4().hex,
                "customer_id": newcomer,
                "type": "order_placed",
                "occurred_at": (now - timedelta(days=days)).isoformat(),
                "properties": {"amount": 25.0},
            }
            for days in (20, 6)
        ],
    )
    weekly = {"period": "week", "limit": 26}
    _wait(
        lambda: api.get("/v1/cohorts/retention", headers=owner.headers, params=weekly).json()[
            "cohorts"
        ]
    )
    page.reload()
    for period, limit in (("month", 24), ("week", 26)):
        if period == "week":
            page.get_by_label("Period").select_option("week")
        curves = api.get(
            "/v1/cohorts/retention",
            headers=owner.headers,
            params={"period": period, "limit": limit},
        ).json()
        assert curves["cohorts"], "the stories' orders make cohorts"
        heat = page.locator("#retention-table tbody tr")
        expect(heat).to_have_count(len(curves["cohorts"]))
        first = curves["cohorts"][0]
        expect(heat.first.locator("th")).to_have_text(first["cohort"])
        expect(heat.first.locator("td.heat")).to_have_text(
            [f"{math.floor(share * 100 + 0.5)} %" for share in first["retention"]]
        )
        if period == "month":
            page.locator("#retention").scroll_into_view_if_needed()
            screenshots(page, "13b-retention")
    page.get_by_label("Period").select_option("month")
    page.evaluate("window.scrollTo(0, 0)")
    screenshots(page, "13-cohorts")

    # Its customers, on the Customers page filtered by the cohort.
    row.get_by_role("link", name=re.compile("Customers")).click()
    expect(page.get_by_label("Cohort", exact=True)).to_have_value(at_risk["id"])
    members = page.locator("#customers-table tbody th")
    expect(members).to_have_count(2)
    assert sorted(members.all_inner_texts()) == sorted(risky)
    page.get_by_role("link", name="Cohorts").click()

    # Edit: low risk instead; then delete.
    row.get_by_role("button", name=f"Edit {prefix} at risk").click()
    expect(form.get_by_label("Name", exact=True)).to_have_value(f"{prefix} at risk")
    form.get_by_label("Name", exact=True).fill(f"{prefix} safe")
    form.get_by_label("High").uncheck()
    form.get_by_label("Low").check()
    form.get_by_role("button", name="Save cohort").click()
    safe = page.locator("#cohorts-table tbody tr", has_text=f"{prefix} safe")
    expect(safe.locator("td.size")).to_have_text("3")
    edited = api.get(f"/v1/cohorts/{at_risk['id']}", headers=owner.headers).json()
    assert (edited["name"], edited["filter"]["risk_level"]) == (f"{prefix} safe", ["low"])
    safe.get_by_role("button", name=f"Delete {prefix} safe").click()
    expect(safe).to_have_count(0)
    assert api.get(f"/v1/cohorts/{at_risk['id']}", headers=owner.headers).status_code == 404
    assert api.get(f"/v1/customers/{loyal[0]}", headers=owner.headers).status_code == 200
    assert opened.problems == []


def test_a_viewer_reads_cohorts_but_cannot_change_them(
    console: Callable[..., Console], api: httpx.Client, owner: Account, viewer: Account
) -> None:
    name = f"viewer-sees-{uuid.uuid4().hex[:6]}"
    body = {"name": name, "filter": {"risk_level": ["high"]}}
    created = api.post("/v1/cohorts", headers=owner.headers, json=body)
    assert created.status_code == 201, created.text
    opened = console()
    page = opened.page
    _sign_in(page, viewer)
    page.get_by_role("link", name="Cohorts").click()
    expect(page.locator("#cohorts-table tbody tr", has_text=name)).to_contain_text("risk high")
    assert page.get_by_role("button", name=re.compile("^(Edit|Delete) ")).count() == 0
    assert page.locator("form[aria-labelledby=cohort-form-title]").count() == 0
    page.get_by_role("link", name="Customers", exact=True).click()
    assert page.get_by_role("button", name=re.compile("all matching")).count() == 0
    assert opened.problems == []


def _xlsx(rows: list[list[Any]]) -> bytes:
    from io import BytesIO

    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    out = BytesIO()
    book.save(out)
    return out.getvalue()


def test_import_an_xlsx_with_a_column_mapping_and_read_its_error_report(
    console: Callable[..., Console],
    api: httpx.Client,
    owner: Account,
    screenshots: Callable[[Page, str], None],
) -> None:
    prefix = f"xl-{uuid.uuid4().hex[:6]}"
    rows: list[list[Any]] = [["Client", "Mail", "Full name", "Left", "plan", "internal"]]
    rows += [
        [f"{prefix}-{i}", f"c{i}@example.com", f"Client {i}", ("Yes", "No")[i % 2], "gold", "x"]
        for i in range(12)
    ]
    rows.insert(5, [None, "nobody@example.com", "No id", "No", "gold", "x"])  # sheet row 6
    opened = console()
    page = opened.page
    _sign_in(page, owner)
    page.get_by_role("link", name="Imports").click()
    page.get_by_label("File").set_input_files(
        files=[
            {
                "name": "clients.xlsx",
                "mimeType": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                "buffer": _xlsx(rows),
            }
        ]
    )
    page.get_by_label("Column with the customer id").fill("Client")
    page.get_by_label("Column with the e-mail").fill("Mail")
    page.get_by_label("Column with the name").fill("Full name")
    page.get_by_label("Label column").fill("Left")
    page.get_by_label("Other columns to keep").fill("plan")
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#import-status")).to_contain_text("succeeded", timeout=60_000)
    expect(page.locator("#import-progress")).to_have_attribute("value", "100")
    expect(page.locator("#import-status")).to_contain_text("12 imported, 1 rejected")
    errors = page.locator("#import-errors tbody tr")
    expect(errors).to_have_count(1)
    expect(errors.first.locator("td").first).to_have_text("6")
    expect(errors.first.locator("td").nth(1)).to_have_text("Client")
    screenshots(page, "09b-imports-xlsx")

    with page.expect_download() as downloaded:
        page.get_by_role("button", name="Download the error report (CSV)").click()
    report = Path(downloaded.value.path()).read_text(encoding="utf-8-sig").splitlines()
    assert report[0] == "line,column,value,reason"
    assert report[1].startswith("6,Client,")
    assert len(report) == 2

    imported = api.get(f"/v1/customers/{prefix}-3", headers=owner.headers).json()
    assert imported["attributes"] == {
        "email": "c3@example.com",
        "name": "Client 3",
        "Left": "No",
        "plan": "gold",
    }
    assert opened.problems == []


def test_import_a_file_then_train_a_model_watch_it_and_promote_it(
    console: Callable[..., Console],
    api: httpx.Client,
    owner: Account,
    screenshots: Callable[[Page, str], None],
) -> None:
    rows = ["customer_id,tenure,plan,Churn"] + [
        f"imp-{i},{i % 60},{('monthly', 'yearly')[i % 2]},"
        f"{'Yes' if (i % 2 == 0 and i % 5 < 3) or i % 7 == 0 else 'No'}"
        for i in range(160)
    ]
    rows.insert(11, ",12,monthly,No")  # line 12: no customer id
    labelled = ("\n".join(rows) + "\n").encode()

    opened = console()
    page = opened.page
    _sign_in(page, owner)
    page.get_by_role("link", name="Imports").click()
    page.get_by_label("File").set_input_files(
        files=[{"name": "labelled.csv", "mimeType": "text/csv", "buffer": labelled}]
    )
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#import-status")).to_contain_text("succeeded", timeout=60_000)
    expect(page.locator("#import-progress")).to_have_attribute("value", "100")
    expect(page.locator("#import-status")).to_contain_text("160 imported, 1 rejected")
    rejected = page.locator("#import-errors tbody tr td")
    expect(rejected).to_have_text(["12", "customer_id", "—", "blank id"])
    screenshots(page, "09-imports")

    page.get_by_role("link", name="Models").click()
    page.get_by_label("Training data").select_option("customers")
    page.get_by_label("Label column").fill("Churn")
    page.get_by_role("button", name="Start training").click()
    expect(page.locator("#training-stage")).to_contain_text("succeeded", timeout=120_000)
    expect(page.locator("#training-progress")).to_have_attribute("value", "100")
    version = re.search(r"version (\S+)", page.locator("#training-stage").inner_text())
    assert version is not None
    new_version = version.group(1)
    row = page.locator("#models-table tbody tr", has_text=new_version)
    row.get_by_role("button", name=f"Make {new_version} the champion").click()
    expect(page.locator("#current-model")).to_have_text(f"Serving {new_version}.")
    expect(row.locator("td.aliases")).to_contain_text("champion")
    expect(row.get_by_role("button", name=f"Make {new_version} the champion")).to_have_count(0)
    screenshots(page, "10-models")
    current = api.get("/v1/models/current", headers=owner.headers).json()
    assert current["version"] == new_version

    # Its calibration: the reliability diagram and the table behind it, from the registry.
    metrics = api.get(f"/v1/models/{new_version}", headers=owner.headers).json()["metrics"]
    row.get_by_role("button", name="Model card").click()
    chart = page.get_by_role("img", name=f"Calibration of {new_version}: observed churn rate")
    expect(chart).to_be_visible()
    filled = [b for b in metrics["calibration_table"] if b["count"] > 0]
    expect(chart.locator("circle.calibration-point")).to_have_count(len(filled))
    expect(page.locator("#calibration-ece")).to_contain_text(f"{metrics['ece']:.3f}")
    page.get_by_text("Calibration table").click()
    counts = page.locator("#calibration-table tbody td:nth-child(4)")
    expect(counts).to_have_text([f"{b['count']:,}" for b in metrics["calibration_table"]])
    expect(page.locator("pre.model-card")).to_contain_text("Calibration")
    page.locator("section.calibration").scroll_into_view_if_needed()
    screenshots(page, "10b-model-calibration")
    assert opened.problems == []


@pytest.fixture
def webhook_receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A real HTTP endpoint on 127.0.0.1 recording the JSON posted to it."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/console", received
    server.shutdown()
    server.server_close()


def test_settings_rules_channels_users_and_api_keys(
    console: Callable[..., Console],
    api: httpx.Client,
    owner: Account,
    webhook_receiver: tuple[str, list[dict[str, Any]]],
    screenshots: Callable[[Page, str], None],
) -> None:
    hook_url, received = webhook_receiver
    opened = console()
    page = opened.page
    _sign_in(page, owner)
    page.get_by_role("link", name="Settings").click()

    page.get_by_label("High risk at (probability)").fill("0.8")
    page.get_by_label("Cooldown per customer (minutes)").fill("90")
    page.get_by_role("button", name="Save rules").click()
    expect(page.locator("#toast")).to_contain_text("Alert rules saved")
    rules = api.get("/v1/alert-rules", headers=owner.headers).json()
    assert (rules["high_risk_threshold"], rules["cooldown_minutes"]) == (0.8, 90)

    page.get_by_label("Name", exact=True).first.fill("console hook")
    page.get_by_label("URL").fill(hook_url)
    page.get_by_role("button", name="Add channel").click()
    expect(page.locator(".secret-value").first).to_contain_text("whsec_")
    page.get_by_role("button", name="Send a test to console hook").click()
    expect(page.locator("#channels-table .test-result")).to_contain_text("Delivered")
    assert len(received) == 1

    analyst_email = f"analyst-{uuid.uuid4().hex[:6]}@console.example"
    users = page.locator("section[aria-labelledby=users-title]")
    users.get_by_label("E-mail").fill(analyst_email)
    users.get_by_label("Initial password").fill(PASSWORD)
    users.get_by_label("Role", exact=True).select_option("analyst")
    users.get_by_role("button", name="Add user").click()
    expect(page.locator("#users-table")).to_contain_text(analyst_email)
    page.get_by_label(f"Role of {analyst_email}").select_option("viewer")
    expect(page.locator("#toast")).to_contain_text(f"{analyst_email} is now viewer")
    listed = api.get("/v1/users", headers=owner.headers).json()["items"]
    assert [u["role"] for u in listed if u["email"] == analyst_email] == ["viewer"]

    keys = page.locator("section[aria-labelledby=keys-title]")
    keys.get_by_label("Name").fill("console key")
    keys.get_by_role("button", name="Create key").click()
    key = keys.locator(".secret-value").inner_text()
    assert key.startswith("ck_")
    with_key = api.get("/v1/customers", headers={"X-API-Key": key})
    assert with_key.status_code == 200, with_key.text
    screenshots(page, "11-settings")
    keys.get_by_role("button", name="Revoke console key").click()
    expect(page.locator("#toast")).to_contain_text("Key console key revoked")
    expect(page.locator("#keys-table")).to_have_count(0)
    # (The gateway may accept a revoked key for up to a minute: its exchange is cached.)
    assert api.get("/v1/api-keys", headers=owner.headers).json()["items"] == []
    assert opened.problems == []


def test_swagger_ui_renders_offline_from_the_gateways_own_assets(
    browser: Browser,
    stack: Stack,
    screenshots: Callable[[Page, str], None],
) -> None:
    """``/docs`` draws the merged document with every request off the gateway's host refused
    (as on a machine without internet): its scripts and styles are served locally."""
    gateway = urlsplit(stack.gateway_url).netloc
    refused: list[str] = []
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:

        def only_the_gateway(route: Any) -> None:
            if urlsplit(route.request.url).netloc == gateway:
                route.continue_()
            else:
                refused.append(route.request.url)
                route.abort()

        context.route("**/*", only_the_gateway)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{stack.gateway_url}/docs")
        expect(page.locator(".swagger-ui .info .title")).to_contain_text("Churn", timeout=30_000)
        expect(page.locator(".swagger-ui .opblock").first).to_be_visible()
        assert page.locator(".swagger-ui .opblock").count() > 50
        screenshots(page, "00-docs-offline")
        assert refused == [], f"/docs asked for assets elsewhere: {refused}"
        assert errors == []
    finally:
        context.close()
