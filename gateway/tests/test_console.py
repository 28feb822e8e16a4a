"""The web console's files: where they are served, their security and caching headers."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from churn_gateway.console import CONTENT_SECURITY_POLICY, STATIC_DIRECTORY


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text = ""
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script_text += data.strip()


async def test_console_redirects_to_its_directory(gateway, upstreams):
    async with gateway(upstreams) as client:
        response = await client.get("/console")
    assert response.status_code == 308
    assert response.headers["location"] == "/console/"


async def test_index_is_served_uncached_with_a_strict_policy(gateway, upstreams):
    async with gateway(upstreams) as client:
        response = await client.get("/console/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    policy = response.headers["content-security-policy"]
    assert policy == CONTENT_SECURITY_POLICY
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in policy


async def test_index_has_no_inline_script_style_or_handlers(gateway, upstreams):
    async with gateway(upstreams) as client:
        document = (await client.get("/console/")).text
    parser = _Tags()
    parser.feed(document)
    scripts = [attrs for tag, attrs in parser.tags if tag == "script"]
    assert scripts == [{"type": "module", "src": "app.js"}]
    assert parser.script_text == ""
    for tag, attrs in parser.tags:
        assert tag != "style"
        assert "style" not in attrs, tag
        assert not [name for name in attrs if name.startswith("on")], tag


@pytest.mark.parametrize(
    ("path", "media_type"),
    [
        ("/console/app.js", "text/javascript"),
        ("/console/pages/alerts.js", "text/javascript"),
        ("/console/console.css", "text/css"),
    ],
)
async def test_assets_are_revalidated_and_carry_the_policy(gateway, upstreams, path, media_type):
    async with gateway(upstreams) as client:
        response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media_type)
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "path", ["/console/nope.js", "/console/../main.py", "/console/%2e%2e/main.py"]
)
async def test_missing_or_outside_files_are_a_404_problem(gateway, upstreams, path):
    async with gateway(upstreams) as client:
        response = await client.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_writes_to_the_console_are_refused(gateway, upstreams):
    async with gateway(upstreams) as client:
        response = await client.post("/console/", content=b"x")
    assert response.status_code == 405


def test_scripts_never_parse_html_or_evaluate_strings():
    """Data reaches the page only through textContent and DOM calls (dom.js)."""
    forbidden = re.compile(
        r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|"
        r"setAttribute\(\s*['\"](style|on)"
    )
    scripts = sorted(STATIC_DIRECTORY.rglob("*.js"))
    assert len(scripts) >= 5
    offenders = [
        f"{path.name}:{number}"
        for path in scripts
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if forbidden.search(line)
    ]
    assert offenders == []
