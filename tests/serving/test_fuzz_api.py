"""API fuzzing: schemathesis generates requests from the served OpenAPI schema (every route), plus hand-written
abuse (a lying Content-Length, an oversized body, deep JSON, many multipart parts). Invariant: a JSON 4xx
with a message or a 2xx; never a 5xx, never a stack trace or a file-system path; the server still answers a
good request afterwards. Bounded for `make test`; `DIGITLAB_FUZZ=long` runs 20× more."""

from __future__ import annotations

import os

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digitlab.serving.app import ServeConfig, create_app

LONG = os.environ.get("DIGITLAB_FUZZ") == "long"


@pytest.fixture(scope="module")
def app(trained_run, tmp_path_factory):
    return create_app(ServeConfig(model=str(trained_run), feedback_dir=str(tmp_path_factory.mktemp("fuzz-feedback"))))


@pytest.fixture(scope="module")
def operations(app):
    with TestClient(app) as c:  # the explainer's first use loads TensorFlow and builds its map: not fuzzed here
        assert c.get("/api/explain/map").status_code == 200
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    return {f"{op.method.upper()} {op.path}": op for op in (result.ok() for result in schema.get_all_operations())}


def _check(response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:300])
    text = response.text
    assert "Traceback" not in text and "/tmp/" not in text and "/root/" not in text and "site-packages" not in text
    if response.status_code >= 400:
        kind = response.headers.get("content-type", "")
        assert (kind[0] if isinstance(kind, list) else kind).startswith("application/json")
        assert response.json().get("error"), text[:200]


ROUTES = [
    "POST /api/predict",
    "POST /api/read",
    "POST /api/explain",
    "POST /v1/models/{model}:predict",
    "POST /v1/models/{model}/versions/{version}:predict",
    "POST /api/feedback",
    "GET /v1/models/{model}",
    "GET /v1/models/{model}/versions/{version}",
    "GET /v1/models/{model}/metadata",
    "GET /v1/models/{model}/versions/{version}/metadata",
    "GET /api/model",
    "GET /healthz",
    "GET /readyz",
    "GET /api/explain/map",
]


def test_the_schema_documents_every_route(operations):
    assert sorted(operations) == sorted(ROUTES)


@pytest.mark.parametrize("route", ROUTES)
def test_every_route_from_the_schema(operations, route):
    """Requests generated from the route's documented body (schemathesis + hypothesis), valid and not."""
    operation = operations[route]

    @settings(
        max_examples=(400 if LONG else 10 if "explain" in route else 25) if operation.method.upper() == "POST" else 5,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=not LONG,
    )
    @given(st.data())
    def run(data):
        _check(data.draw(operation.as_strategy()).call(timeout=60))

    run()


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


_DIGIT: list = []


def _good(client) -> None:
    """The server still answers a real digit (the first MNIST test digit, a 7) after the abuse."""
    if not _DIGIT:
        from digitlab.data.mnist import load_mnist

        _DIGIT.append((load_mnist().x_test[0] / 255.0).round(4).tolist())
    r = client.post("/api/predict", json={"pixels": _DIGIT[0]})
    assert r.status_code == 200 and r.json()["label"] == 7 and r.json()["verdict"] == "digit"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"content": b"x" * 10, "headers": {"Content-Length": "3"}},  # a Content-Length that lies (shorter)
        {"content": b"{}", "headers": {"Content-Length": "99999999999999999999"}},
        {"content": b"{}", "headers": {"Content-Length": "-1"}},
        {"content": b"[" * 200_000, "headers": {"Content-Type": "application/json"}},
        {"content": b'{"image": "' + b"A" * 6_000_000 + b'"}', "headers": {"Content-Type": "application/json"}},
        {
            "content": b'{"pixels": ' + b"[" * 30 + b"0" + b"]" * 30 + b"}",
            "headers": {"Content-Type": "application/json"},
        },
        {"content": b"\xff\xfe" * 1000, "headers": {"Content-Type": "application/json"}},
    ],
    ids=["short-length", "huge-length", "negative-length", "deep-json", "over-limit", "nested-pixels", "not-utf8"],
)
def test_hand_written_abuse(client, kwargs):
    for route in ("/api/predict", "/api/read", "/api/explain", "/v1/models/digits:predict", "/api/feedback"):
        _check(client.post(route, **kwargs))
    _good(client)


def test_chunked_body_over_the_limit(client):
    def chunks():
        for _ in range(200):
            yield b"A" * 65536  # 13 MB in chunks, no Content-Length

    r = client.post("/api/predict", content=chunks())
    assert r.status_code == 413
    _good(client)


def test_multipart_with_many_parts(client):
    boundary = "b0und4ry"
    parts = "".join(f'--{boundary}\r\nContent-Disposition: form-data; name="f{i}"\r\n\r\nx\r\n' for i in range(5000))
    body = (parts + f"--{boundary}--\r\n").encode()
    r = client.post("/api/predict", content=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    _check(r)
    assert r.status_code in (400, 413)
    _good(client)


def test_a_slow_body_gets_408_while_other_clients_are_served(trained_run, tmp_path, loopback_server):
    """A client that sends headers and then trickles (or stops sending) its body is cut off after the body
    deadline with a JSON 408; a good request on another connection is answered meanwhile (real server,
    loopback)."""
    import json
    import select
    import socket
    import time
    import urllib.request

    app = create_app(ServeConfig(model=str(trained_run), feedback_dir=str(tmp_path), body_timeout=1.5))
    with loopback_server(app) as port, socket.create_connection(("127.0.0.1", port), timeout=20) as slow:
        head = b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        head += b"Content-Length: 5000\r\n\r\n"
        slow.sendall(head + b'{"pixels": [')
        start = time.monotonic()
        from digitlab.data.mnist import load_mnist

        pixels = (load_mnist().x_test[0] / 255.0).round(4).tolist()  # a real 7: the good client's request
        good = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/predict",
            data=json.dumps({"pixels": pixels}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(good, timeout=20) as r:
            assert r.status == 200 and json.loads(r.read())["label"] is not None
        answer, first = b"", None
        while time.monotonic() - start < 6:  # keep trickling: bytes arriving must not extend the deadline
            readable, _, _ = select.select([slow], [], [], 0.3)
            if readable:
                chunk = slow.recv(4096)
                if not chunk:
                    break  # the server closed the connection after answering
                first = first or time.monotonic() - start
                answer += chunk
            elif first is None:
                slow.sendall(b"0, ")
    status, _, body = answer.partition(b"\r\n\r\n")
    assert b" 408 " in status.splitlines()[0], answer[:200]
    assert b"connection: close" in status.lower()
    assert "did not arrive within 1.5 s" in json.loads(body)["error"]
    assert 1.4 < first < 3.0
