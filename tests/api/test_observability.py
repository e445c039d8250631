"""Operating views: /health, /ready, Prometheus /metrics (every request counted, the fast
read path included), a request id on every response, JSON logs off a terminal."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import text

from rolodex.api.app import create_app
from rolodex.logs import JsonFormatter, configure_logging
from rolodex.store import Store
from tests.conftest import ApiAccount, App, settings_for_tests


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in the Prometheus text format (0 when absent)."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        if head.split("{")[0] != name:
            continue
        found = dict(
            part.split("=", 1) for part in head.partition("{")[2].rstrip("}").split(",") if part
        )
        if all(found.get(k) == f'"{v}"' for k, v in labels.items()):
            return float(value)
    return 0.0


def test_health_and_ready(app: App) -> None:
    health = app.client.get("/health")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    ready = app.client.get("/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready"


def test_ready_is_503_when_migrations_are_not_current(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    store = Store(url)
    store.migrate()
    client = TestClient(create_app(settings_for_tests(url), store))
    assert client.get("/ready").status_code == 200
    with store.write() as tx:  # as if this server's code were newer than its database
        tx.conn.execute(text("UPDATE alembic_version SET version_num = 'older'"))
    ready = client.get("/ready")
    assert ready.status_code == 503
    assert ready.json()["type"] == "api_error"
    assert "migrations" in ready.json()["message"]
    assert client.get("/health").status_code == 200
    store.close()


def test_metrics_count_every_route_the_fast_path_included(app: App, api: ApiAccount) -> None:
    before = app.client.get("/metrics").text
    cid = api.client.post("/contacts", json={"given_name": "M"}).json()["id"]
    for _ in range(3):
        assert api.client.get("/contacts").status_code == 200
    assert api.client.get(f"/contacts/{cid}").status_code == 200
    assert api.client.get("/contacts/nope").status_code == 404
    response = app.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = response.text
    name = "rolodex_http_requests_total"

    def delta(**labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert delta(method="GET", route="/contacts", status="200") == 3
    assert delta(method="GET", route="/contacts/{contact_id}", status="200") == 1
    assert delta(method="GET", route="/contacts/{contact_id}", status="404") == 1
    assert delta(method="POST", route="/contacts", status="200") == 1
    assert metric(after, "rolodex_http_request_duration_seconds_count", route="/contacts") >= 3
    assert "rolodex_outbox_depth" in after
    assert "rolodex_accounts" in after


def test_unmatched_paths_share_one_label(app: App) -> None:
    for n in range(3):
        app.client.get(f"/no/such/{n}")
    text = app.client.get("/metrics").text
    assert "/no/such" not in text
    found = metric(
        text, "rolodex_http_requests_total", method="GET", route="unmatched", status="404"
    )
    assert found >= 3


def test_every_response_has_a_request_id(app: App, api: ApiAccount) -> None:
    ids = set()
    for path in ["/contacts", "/contacts/x", "/account", "/health", "/nowhere"]:
        response = api.client.get(path)
        rid = response.headers["x-request-id"]
        assert 8 <= len(rid) <= 64
        ids.add(rid)
    assert len(ids) == 5
    # A well-formed id from a proxy is kept; anything else is replaced.
    kept = api.client.get("/contacts", headers={"X-Request-Id": "lb-1234-abcd"})
    assert kept.headers["x-request-id"] == "lb-1234-abcd"
    bad = api.client.get("/contacts", headers={"X-Request-Id": 'x"\x01' + "y" * 200})
    assert bad.headers["x-request-id"] != 'x"\x01' + "y" * 200


def test_logs_are_json_off_a_terminal_and_carry_the_request_id() -> None:
    stream, access_stream = io.StringIO(), io.StringIO()  # not terminals
    handler = configure_logging(stream=stream, access_stream=access_stream)
    access = logging.getLogger("rolodex.access")
    try:
        assert isinstance(handler.formatter, JsonFormatter)
        from rolodex.logs import REQUEST_ID

        token = REQUEST_ID.set("req-42")
        try:
            logging.getLogger("rolodex.test").warning("hello %s", "world")
            access.info("GET /x 200", extra={"status": 200})
        finally:
            REQUEST_ID.reset(token)
        line = json.loads(stream.getvalue().splitlines()[-1])
        assert line["message"] == "hello world"
        assert line["level"] == "warning"
        assert line["logger"] == "rolodex.test"
        assert line["request_id"] == "req-42"
        assert "time" in line
        # The access log goes to its own stream (stdout, as uvicorn's), not among the rest.
        entry = json.loads(access_stream.getvalue().splitlines()[-1])
        assert entry["status"] == 200 and entry["request_id"] == "req-42"
        assert "GET /x" not in stream.getvalue()
    finally:
        logging.getLogger().removeHandler(handler)
        for extra in list(access.handlers):
            access.removeHandler(extra)
        access.propagate = True
