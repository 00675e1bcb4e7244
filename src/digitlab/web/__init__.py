"""The draw page's client code, shared by every host: ES modules and CSS under `static/`, no build step.

`digitlab serve` serves `static/` at `/web/` beside its own page (which asks the server); `digitlab export --format
web` copies it with `site/index.html` into a static folder that runs preprocessing, the refusal score and the model in
the browser (ONNX Runtime Web). Nothing here imports the rest of digitlab: it is package data with its paths.
"""

from pathlib import Path

STATIC = Path(__file__).parent / "static"  # the shared modules: drawing, rendering, preprocessing, backends
SITE = Path(__file__).parent / "site"  # what only the static export adds: its index.html and hosting README
