"""The REST API: every route and every error path, on a real trained model."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from digitlab.data.synthetic import render
from digitlab.serving.app import ServeConfig, create_app

FIELD = Path(__file__).parents[1] / "field_cases"


@pytest.fixture(scope="module")
def client(trained_run, tmp_path_factory):
    feedback = tmp_path_factory.mktemp("feedback")
    app = create_app(ServeConfig(model=str(trained_run), feedback_dir=str(feedback), max_body_bytes=2_000_000))
    with TestClient(app, raise_server_exceptions=False) as c:
        c.feedback_dir = feedback
        yield c


@pytest.fixture(scope="module")
def digit_png(mnist):
    image = render(mnist.x_test[0], "black-on-white", np.random.default_rng(0))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue(), int(mnist.y_test[0])


def _data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _check_prediction(body, label):
    assert body["label"] == label and body["blank"] is False
    assert len(body["probabilities"]) == 10 and abs(sum(body["probabilities"]) - 1) < 1e-4
    assert body["top_k"][0]["label"] == label and len(body["top_k"]) == 3
    assert body["processed"].startswith("data:image/png;base64,")
    seen = Image.open(io.BytesIO(base64.b64decode(body["processed"].split(",", 1)[1])))
    assert seen.size == (28, 28)
    assert body["timing_ms"] >= 0


def test_predict_json_data_url(client, digit_png):
    png, label = digit_png
    r = client.post("/api/predict", json={"image": _data_url(png)})
    assert r.status_code == 200, r.text
    _check_prediction(r.json(), label)


def test_predict_multipart_and_raw_body(client, digit_png):
    png, label = digit_png
    r = client.post("/api/predict", files={"file": ("digit.png", png, "image/png")})
    assert r.status_code == 200, r.text
    _check_prediction(r.json(), label)
    r = client.post("/api/predict", content=png, headers={"Content-Type": "image/png"})
    assert r.status_code == 200, r.text
    _check_prediction(r.json(), label)


def test_predict_pixels(client, mnist):
    r = client.post("/api/predict", json={"pixels": mnist.x_test[1].tolist()})
    assert r.status_code == 200, r.text
    _check_prediction(r.json(), int(mnist.y_test[1]))
    r = client.post("/api/predict", json={"pixels": (mnist.x_test[1] / 255.0).tolist()})
    assert r.json()["label"] == int(mnist.y_test[1])


def test_blank_canvas_is_no_digit(client):
    buf = io.BytesIO()
    Image.new("RGB", (280, 280), "white").save(buf, format="PNG")
    body = client.post("/api/predict", json={"image": _data_url(buf.getvalue())}).json()
    assert body["blank"] is True and body["label"] is None and body["probabilities"] is None
    assert client.post("/api/predict", json={"pixels": np.zeros((28, 28)).tolist()}).json()["blank"] is True


def test_field_case_pixels_divided_by_255_twice_are_blank(client, mnist):
    """Every value ≤ 1/255 on the [0, 1] scale: no ink survives (was "1 at 0.12"); the ranges stay [0, 1], [0, 255]."""
    payload = json.loads((FIELD / "api_pixels_scaled_twice.json").read_text())
    body = client.post("/api/predict", json=payload).json()
    assert body["blank"] is True and body["label"] is None and body["reason"] == "blank: no ink"
    faint = (mnist.x_test[1] / 255.0 * 0.02).tolist()  # faint, but ink: max 0.02 > 1/255
    assert client.post("/api/predict", json={"pixels": faint}).json()["blank"] is False
    assert client.post("/api/predict", json={"pixels": mnist.x_test[1].tolist()}).json()["blank"] is False


def test_tf_serving_routes(client, mnist, digit_png):
    png, label = digit_png
    instances = [mnist.x_test[i].tolist() for i in range(3)] + [{"b64": base64.b64encode(png).decode()}]
    r = client.post("/v1/models/digits:predict", json={"instances": instances})
    assert r.status_code == 200, r.text
    predictions = np.array(r.json()["predictions"])
    assert predictions.shape == (4, 10)
    assert predictions.argmax(1).tolist() == [*mnist.y_test[:3].tolist(), label]
    status = client.get("/v1/models/digits").json()
    assert status["model_version_status"][0]["state"] == "AVAILABLE"


def test_model_health_and_docs(client):
    info = client.get("/api/model").json()
    assert info["name"] == "cnn" and info["metrics"]["test_accuracy"] > 0.95
    assert "/" not in json.dumps(info["name"]) and "tmp" not in json.dumps(info)  # no file-system paths
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["status"] == "ready"
    assert "/api/predict" in client.get("/openapi.json").json()["paths"]
    page = client.get("/")
    assert page.status_code == 200 and "<canvas" in page.text
    assert client.get("/web/page.js").status_code == 200  # the page code shared with the web export
    assert "http" not in page.text.split("<body>")[0].replace("http-equiv", "")  # no CDN assets


def test_the_openapi_document_comes_from_the_models(client):
    """Request and response bodies are documented by the Pydantic models the routes validate with."""
    doc = client.get("/openapi.json").json()
    assert {"DigitAnswer", "ReadingAnswer", "ModelInfo", "FeedbackStored", "ErrorAnswer"} <= set(
        doc["components"]["schemas"]
    )
    feedback = doc["paths"]["/api/feedback"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert feedback["required"] == ["image", "label"]
    assert (feedback["properties"]["label"]["minimum"], feedback["properties"]["label"]["maximum"]) == (0, 9)
    predict = doc["paths"]["/api/predict"]["post"]
    assert {"application/json", "multipart/form-data", "image/png"} <= set(predict["requestBody"]["content"])
    pixels = predict["requestBody"]["content"]["application/json"]["schema"]["properties"]["pixels"]
    assert "$ref" not in json.dumps(predict["requestBody"])  # nested models written inline
    assert pixels["anyOf"][0]["minItems"] == pixels["anyOf"][0]["maxItems"] == 28
    assert predict["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/DigitAnswer")


def test_feedback_is_stored(client, digit_png):
    png, _ = digit_png
    r = client.post("/api/feedback", json={"image": _data_url(png), "label": 3, "predicted": 7})
    assert r.status_code == 200, r.text
    lines = (client.feedback_dir / "index.jsonl").read_text().splitlines()
    record = json.loads(lines[-1])
    assert record["label"] == 3 and record["predicted"] == 7 and record["id"] == r.json()["id"]
    assert (client.feedback_dir / record["file"]).is_file()
    assert not list(client.feedback_dir.glob("*.part"))


BAD_REQUESTS = [
    ("/api/predict", {"content": b""}, 400, "empty request body"),
    ("/api/predict", {"content": b"not an image"}, 400, "not a recognised image"),
    ("/api/predict", {"content": b"{", "headers": {"Content-Type": "application/json"}}, 400, "not valid JSON"),
    ("/api/predict", {"json": [1, 2]}, 400, "must be an object"),
    ("/api/predict", {"json": {"img": "x"}}, 400, "must be an object with 'image'"),
    ("/api/predict", {"json": {"image": 5}}, 400, "'image' must be a string"),
    ("/api/predict", {"json": {"image": "data:image/png;base64,!!!"}}, 400, "base64"),
    ("/api/predict", {"json": {"image": "bm90IGFuIGltYWdl"}}, 400, "not a recognised image"),
    ("/api/predict", {"json": {"pixels": [[0] * 28] * 27}}, 400, "shape 28×28"),
    ("/api/predict", {"json": {"pixels": "abc"}}, 400, "28×28"),
    ("/api/predict", {"json": {"pixels": [["a"] * 28] * 28}}, 400, "array of numbers"),
    ("/api/predict", {"json": {"pixels": [[1e9] * 28] * 28}}, 400, "values must be in"),
    ("/api/predict", {"json": {"pixels": [[-1] * 28] * 28}}, 400, "values must be in"),
    (
        "/api/predict",
        {
            "content": b'{"pixels": [' + b",".join([b"[" + b",".join([b"NaN"] * 28) + b"]"] * 28) + b"]}",
            "headers": {"Content-Type": "application/json"},
        },
        400,
        "NaN",
    ),
    ("/api/predict", {"content": b"x" * 2_000_001}, 413, "over the limit"),
    ("/api/predict", {"files": {"nope": ("", b"", "text/plain")}, "data": {"a": "b"}}, 400, "file"),
    ("/v1/models/digits:predict", {"json": {"instances": []}}, 400, "non-empty list"),
    ("/v1/models/digits:predict", {"json": {"instances": [[[0] * 28] * 28] * 1025}}, 413, "at most 1024"),
    ("/v1/models/digits:predict", {"json": {"instances": [{"b64": 1}]}}, 400, "instances[0]"),
    ("/v1/models/digits:predict", {"json": {"instances": [[1, 2]]}}, 400, "instances[0] must have shape"),
    ("/v1/models/digits:predict", {"json": "hello"}, 400, "JSON object"),
    ("/api/feedback", {"json": {"image": "data:image/png;base64,AAAA", "label": 12}}, 400, "'label' must be"),
    ("/api/feedback", {"json": {"image": "data:image/png;base64,AAAA", "label": True}}, 400, "'label' must be"),
    ("/api/feedback", {"json": {"label": 3}}, 400, "'image' must be"),
    ("/api/feedback", {"json": {"image": "data:image/png;base64,AAAA", "label": 3}}, 400, "image"),
    ("/api/nothing", {"json": {}}, 404, "Not Found"),
]


@pytest.mark.parametrize("route, kwargs, status, message", BAD_REQUESTS)
def test_bad_requests_get_clear_4xx(client, route, kwargs, status, message):
    r = client.post(route, **kwargs)
    assert r.status_code == status, r.text
    assert message in r.json()["error"], r.json()
    assert "/tmp" not in r.text and "Traceback" not in r.text


def test_bomb_image_is_refused(client):
    buf = io.BytesIO()
    Image.new("1", (6000, 6000)).save(buf, format="PNG")  # 36 MP, tiny on the wire
    r = client.post("/api/predict", content=buf.getvalue())
    assert r.status_code == 413 and "over the limit" in r.json()["error"]


def test_decoder_bombs_past_pillows_limit_are_413(client, header_bombs):
    """Found by a hostile client (issue 17): headers past Pillow's own bomb limit raised DecompressionBombError
    out of Image.open, answered with a 500."""
    for data in header_bombs.values():
        for kwargs in ({"content": data}, {"json": {"image": _data_url(data)}}):
            r = client.post("/api/predict", **kwargs)
            assert r.status_code == 413 and "over the limit" in r.json()["error"], r.text
        r = client.post("/api/read", content=data)  # read_number raises ImageTooLarge itself: the same 413
        assert r.status_code == 413 and "over the limit" in r.json()["error"], r.text
        instances = [{"b64": base64.b64encode(data).decode()}]
        assert client.post("/v1/models/digits:predict", json={"instances": instances}).status_code == 413
        assert client.post("/api/feedback", json={"image": _data_url(data), "label": 3}).status_code == 413


# Found by a hostile client (issue 17): `[` × 100,000 overflowed the JSON parser's recursion, answered with a 500.
DEEP = b"[" * 100_000


@pytest.mark.parametrize(
    "route, body",
    [
        ("/api/predict", DEEP),
        ("/api/predict", b'{"image": ' + DEEP),
        ("/api/predict", b'{"pixels": ' + DEEP),
        ("/v1/models/digits:predict", b'{"instances": ' + DEEP),
        ("/api/feedback", b'{"label": 3, "image": ' + DEEP),
    ],
)
def test_deeply_nested_json_is_400(client, route, body):
    r = client.post(route, content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "nested too deeply" in r.json()["error"], r.text


def test_burst_of_malformed_requests_then_a_good_one(client, digit_png):
    png, label = digit_png
    for route, kwargs, status, _ in BAD_REQUESTS * 3:
        assert client.post(route, **kwargs).status_code == status
    r = client.post("/api/predict", json={"image": _data_url(png)})
    assert r.status_code == 200
    _check_prediction(r.json(), label)


def test_concurrent_requests_are_batched(client, mnist):
    """16 clients at once share model calls: while the model runs its first call, the others queue and go in
    one batch. The first call is held until every request has been submitted, so the batch sizes do not depend
    on the machine's speed (without batching there would be 64 calls of one image)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    batcher = client.app.state.served.batcher
    forward, submit = batcher._forward, batcher.submit
    submitted, all_in, sizes = [], threading.Event(), []

    def counting_submit(pixels):
        submitted.append(len(pixels))
        if len(submitted) >= 16:
            all_in.set()
        return submit(pixels)

    def held_forward(pixels):
        if not sizes:
            all_in.wait(timeout=30)
        sizes.append(len(pixels))
        return forward(pixels)

    def one(i):
        return client.post("/api/predict", json={"pixels": mnist.x_test[i].tolist()}).json()["label"]

    batcher._forward, batcher.submit = held_forward, counting_submit
    try:
        with ThreadPoolExecutor(16) as pool:
            labels = list(pool.map(one, range(64)))
    finally:
        batcher._forward, batcher.submit = forward, submit
    assert sum(sizes) == sum(submitted) and len(submitted) >= 64
    assert max(sizes) >= 8 and len(sizes) <= 48, sizes  # the 15 queued behind the held call went together
    assert np.mean(np.array(labels) == mnist.y_test[:64]) > 0.9


def test_large_image_is_preprocessed_off_the_event_loop(client, mnist):
    """Images over INLINE_PIXELS go to the preprocessing thread; the answer must be the same kind."""
    from digitlab.serving.state import INLINE_PIXELS

    image = render(mnist.x_test[1], "black-on-white", np.random.default_rng(1)).resize((900, 900))
    assert INLINE_PIXELS < 900 * 900
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    r = client.post("/api/predict", content=buf.getvalue())
    assert r.status_code == 200
    _check_prediction(r.json(), int(mnist.y_test[1]))


def test_model_thread_waits_for_requests_still_being_preprocessed(good_cnn, mnist):
    """With a request announced as pending, a lone submission waits and shares one model call with it."""
    import time

    from digitlab.inference.predictor import Predictor
    from digitlab.serving.batching import BatchPredictor

    predictor = BatchPredictor(Predictor.load(good_cnn), max_wait=2.0)
    calls = []
    forward = predictor._forward
    predictor._forward = lambda x: calls.append(len(x)) or forward(x)
    predictor.pending = 1
    first = predictor.submit(mnist.x_test[:1].astype(np.float32) / 255)
    time.sleep(0.2)
    predictor.pending = 0
    second = predictor.submit(mnist.x_test[1:3].astype(np.float32) / 255)
    logits = np.concatenate([first.result(timeout=10)[0], second.result(timeout=10)[0]])
    assert calls == [3]
    np.testing.assert_array_equal(logits.argmax(1), mnist.y_test[:3])
    predictor.pending = 0  # and with nothing pending, a request goes alone (how soon: bench/timing_bounds.py)
    predictor.submit(mnist.x_test[3:4].astype(np.float32) / 255).result(timeout=10)
    assert calls[-1] == 1


def test_every_runtime_serves_the_same_answer(trained_run, digit_png, tmp_path):
    png, label = digit_png
    answers = {}
    for runtime in ("keras", "onnx", "litert"):
        app = create_app(ServeConfig(model=str(trained_run), feedback_dir=str(tmp_path), runtime=runtime))
        with TestClient(app, raise_server_exceptions=False) as c:
            assert c.get("/api/model").json()["runtime"] == runtime
            assert c.get("/readyz").json()["runtime"] == runtime
            answers[runtime] = c.post("/api/predict", json={"image": _data_url(png)}).json()
            batch = c.post("/v1/models/digits:predict", json={"instances": [{"b64": base64.b64encode(png).decode()}]})
            assert np.argmax(batch.json()["predictions"][0]) == label
    for runtime, body in answers.items():
        _check_prediction(body, label)
        assert np.abs(np.array(body["probabilities"]) - answers["keras"]["probabilities"]).max() <= 1e-4, runtime
