"""A stand-in for `tensorflow_model_server`'s REST API, for the tests: the real SavedModel, loaded with
`tf.saved_model.load`, behind the request → tensor → response mapping of TF Serving's REST documentation
(https://www.tensorflow.org/tfx/serving/api_rest). Real TF Serving cannot run here; this is what it would do.

- Row format (`instances`): one named input → each item is that input's value; several → each item is an object
  of name → value. Answers `{"predictions": ...}`: a list of values when the signature has one output, a list of
  objects (output name → value) when it has several.
- Columnar format (`inputs`): the one input's batch, or an object of name → batch. Answers `{"outputs": ...}`: the
  one output's batch, or an object of output name → batch.
- Metadata: `{"model_spec": ..., "metadata": {"signature_def": {"signature_def": <the SignatureDefMap>}}}`, the
  protos printed with their field names and every field present.
- Errors: `{"error": message}` with a 4xx; an unknown signature_name is a 400.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class TFServingReference:
    def __init__(self, export_dir: str, name: str = "digits", version: str = "1"):
        import tensorflow as tf
        from google.protobuf import json_format
        from tensorflow.python.tools import saved_model_utils

        self._tf, self.name, self.version = tf, name, version
        self.signatures = tf.saved_model.load(export_dir).signatures
        graph = saved_model_utils.get_meta_graph_def(export_dir, "serve")
        self.signature_def = {
            key: json_format.MessageToDict(value, True, True) for key, value in graph.signature_def.items()
        }

    def metadata(self) -> dict[str, Any]:
        spec = {"name": self.name, "signature_name": "", "version": self.version}
        return {"model_spec": spec, "metadata": {"signature_def": {"signature_def": self.signature_def}}}

    def predict(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        name = body.get("signature_name", "serving_default")
        if name not in self.signatures:
            return 400, {"error": f'Serving signature name: "{name}" not found in signature def'}
        fn = self.signatures[name]
        inputs = list(fn.structured_input_signature[1])
        if "instances" in body:
            rows = body["instances"]
            named = {k: [row[k] for row in rows] for k in inputs} if isinstance(rows[0], dict) else {inputs[0]: rows}
        else:
            named = body["inputs"] if isinstance(body["inputs"], dict) else {inputs[0]: body["inputs"]}
        if set(named) != set(inputs):
            return 400, {"error": f"input names {sorted(named)} do not match {inputs}"}
        out = {
            k: v.numpy()
            for k, v in fn(**{k: self._tf.constant(np.asarray(v, np.float32)) for k, v in named.items()}).items()
        }
        if "instances" in body:
            if len(out) == 1:
                return 200, {"predictions": next(iter(out.values())).tolist()}
            count = len(next(iter(out.values())))
            return 200, {"predictions": [{k: v[i].tolist() for k, v in out.items()} for i in range(count)]}
        return 200, {
            "outputs": next(iter(out.values())).tolist() if len(out) == 1 else {k: v.tolist() for k, v in out.items()}
        }
