"""TF Serving's REST API as TF Serving speaks it (issue 23): a client written against real TF Serving serving
`digitlab export --format savedmodel` works unchanged against `digitlab serve`, and the other way round.

Real TF Serving cannot run here: `tf_serving_reference.TFServingReference` stands in for it (the exported
SavedModel itself, behind the REST mapping of TF Serving's documentation), and both must answer every request
alike: same keys, same nesting, values within 1e-4.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from tf_serving_reference import TFServingReference  # beside this file (pytest puts its folder on sys.path)

from digitlab.serving.app import ServeConfig, create_app

FIELD = Path(__file__).parents[1] / "field_cases"
PREDICT = ["/v1/models/digits:predict", "/v1/models/digits/versions/1:predict"]


@pytest.fixture(scope="module")
def served(trained_run, tmp_path_factory):
    """(digitlab serve's client, the TF Serving stand-in) for the same model."""
    from digitlab.models import export
    from digitlab.models.saved import load_model

    loaded = load_model(trained_run)
    out = tmp_path_factory.mktemp("tf-serving")
    export.convert(loaded.model, "savedmodel", out, loaded.temperature)
    reference = TFServingReference(str(export.exported_path(out, "savedmodel")))
    app = create_app(ServeConfig(model=str(trained_run), feedback_dir=str(out / "feedback"), runtime="keras"))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, reference


def _same(ours, theirs, where=""):
    """Same JSON structure; numbers within 1e-4."""
    assert type(ours) is type(theirs), (where, type(ours), type(theirs))
    if isinstance(theirs, dict):
        assert ours.keys() == theirs.keys(), where
        for key in theirs:
            _same(ours[key], theirs[key], f"{where}.{key}")
    elif isinstance(theirs, list):
        assert len(ours) == len(theirs), where
        np.testing.assert_allclose(np.asarray(ours, float), np.asarray(theirs, float), atol=1e-4, err_msg=where)
    else:
        assert ours == theirs, where


def _requests(mnist):
    """What a TF Serving client sends for the exported model: (N, 28, 28, 1) floats in [0, 1]."""
    x = [(mnist.x_test[i] / 255.0)[..., None].round(4).tolist() for i in range(3)]
    return {
        "rows, unnamed": {"instances": x},
        "rows, named": {"instances": [{"image": v} for v in x]},
        "columns, named": {"inputs": {"image": x}},
        "columns, unnamed": {"inputs": x},
        "rows, serving_default named": {"signature_name": "serving_default", "instances": x[:1]},
        "rows, logits": {"signature_name": "logits", "instances": x},
        "columns, logits": {"signature_name": "logits", "inputs": {"image": x[:2]}},
    }


def test_every_request_form_is_answered_as_tf_serving_answers_it(served, mnist):
    client, reference = served
    for form, body in _requests(mnist).items():
        status, expected = reference.predict(body)
        assert status == 200, (form, expected)
        for route in PREDICT:
            r = client.post(route, json=body)
            assert r.status_code == 200, (form, route, r.text)
            _same(r.json(), expected, f"{form} {route}")
    # the common case keeps today's shape: a list of 10 probabilities per row
    answer = client.post(PREDICT[0], json={"instances": _requests(mnist)["rows, unnamed"]["instances"]}).json()
    assert np.asarray(answer["predictions"]).shape == (3, 10)
    assert np.argmax(answer["predictions"], 1).tolist() == mnist.y_test[:3].tolist()


def test_a_batch_as_tf_serving_users_send_it_is_answered(served, mnist):
    """300 digits as Python's json writes them, padded past the 5 MiB limit of the page's routes (answered 413 before:
    TF Serving takes such batches). The body limit of TF Serving's routes is `serve --max-predict-body-bytes`."""
    from digitlab.serving.config import MAX_BODY_BYTES

    client, reference = served
    x = (mnist.x_test[:300] / 255.0)[..., None].tolist()
    body = json.dumps({"instances": x}) + " " * MAX_BODY_BYTES  # trailing whitespace: still valid JSON
    r = client.post(PREDICT[0], content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text[:200]
    status, expected = reference.predict({"instances": x})
    assert status == 200
    _same(r.json(), expected)
    assert client.post("/api/predict", content=body, headers={"Content-Type": "application/json"}).status_code == 413


def test_status_and_metadata_match_the_exported_savedmodel(served):
    client, reference = served
    for prefix in ("/v1/models/digits", "/v1/models/digits/versions/1"):
        assert client.get(f"{prefix}/metadata").json() == reference.metadata()
        status = client.get(prefix).json()["model_version_status"]
        assert status == [{"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]
    signatures = reference.metadata()["metadata"]["signature_def"]["signature_def"]
    assert signatures["serving_default"]["outputs"].keys() == {"probabilities"}
    assert signatures["logits"]["outputs"].keys() == {"logits"}


@pytest.mark.parametrize(
    "route, body, status, message",
    [
        (
            PREDICT[0],
            {"signature_name": "nope", "instances": [[[0.0] * 28] * 28]},
            400,
            "known signatures: serving_default, logits",
        ),
        (PREDICT[0], {"instances": [{"images": [[0.0] * 28] * 28}]}, 400, "its one input is 'image'"),
        (PREDICT[0], {"inputs": {"pixels": [[[0.0] * 28] * 28]}}, 400, "its one input is 'image'"),
        (PREDICT[0], {"instances": [[[0.0] * 28] * 28], "inputs": []}, 400, "not both"),
        (PREDICT[0], {"signature_name": "logits"}, 400, "not neither"),
        (PREDICT[0], {"inputs": {"image": []}}, 400, "non-empty batch"),
        ("/v1/models/digits/versions/2:predict", {"instances": []}, 404, "Specific(digits, 2)"),
        ("/v1/models/mnist:predict", {"instances": []}, 404, "Latest(mnist)"),
    ],
)
def test_bad_tf_serving_requests_name_what_is_known(served, route, body, status, message):
    client, _ = served
    r = client.post(route, json=body)
    assert r.status_code == status and message in r.json()["error"], r.text
    if body.get("signature_name") == "nope":
        assert served[1].predict(body)[0] == 400  # TF Serving refuses it too


def test_field_case_named_signature_and_input(served):
    """TF Serving's MNIST example names signature `predict_images` and input `images`: a 400 naming the known
    signatures and input (was a 400 naming only 'instances'); named as the metadata says, it is a 7."""
    client, _ = served
    case = json.loads((FIELD / "req_inputs_named_signature.json").read_text())
    r = client.post(PREDICT[0], json=case)
    assert r.status_code == 400 and "known signatures: serving_default, logits" in r.json()["error"]
    case["signature_name"] = "serving_default"
    r = client.post(PREDICT[0], json=case)
    assert r.status_code == 400 and "images" in r.json()["error"] and "'image'" in r.json()["error"]
    case["inputs"] = {"image": case["inputs"]["images"]}  # the b64 extension: one image
    r = client.post(PREDICT[1], json=case)
    assert r.status_code == 200, r.text
    assert np.argmax(r.json()["outputs"][0]) == 7


def test_b64_images_are_an_extension_in_both_forms(served, mnist):
    client, _ = served
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(255 - mnist.x_test[0]).resize((112, 112)).save(buf, format="PNG")  # dark ink on white
    image = {"b64": base64.b64encode(buf.getvalue()).decode()}
    for body, key in (
        ({"instances": [image, {"image": image}]}, "predictions"),
        ({"inputs": {"image": [image]}}, "outputs"),
        ({"inputs": [image]}, "outputs"),
    ):
        r = client.post(PREDICT[0], json=body)
        assert r.status_code == 200, r.text
        assert np.argmax(r.json()[key], 1).tolist() == [int(mnist.y_test[0])] * len(r.json()[key])
