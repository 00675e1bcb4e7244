# digitlab: `make run` sets up, fetches MNIST, trains the default model if none, reports and serves;
# `make test` runs ruff, pydoclint, import-linter (the layer contract) and every test (CI); `make test-fast` is the
# inner loop (no training beyond a tiny model, no browsers; about a minute). Each creates .venv on first use and
# installs the extras it uses (pyproject.toml): `run` the `serve` extra, the others `dev` (everything).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run report test test-fast lint format bench clean notebook notebook-strip docs docs-check widget

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# One stamp per extra, remade when pyproject.toml changes: `run` does not need the test tools, `test` does.
$(BIN)/.installed-%: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[$*]'
	touch $@

# dev also gets tf-keras (Keras 2), which writes the Keras 2 SavedModels and .h5 files the import tests read.
# --no-deps: it requires `tensorflow`, which would download a second 570 MB TensorFlow over tensorflow-cpu.
$(BIN)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps 'tf-keras>=2.21,<2.22'
	touch $@

# The default model's run directory; delete it (or pass RUN_DIR=...) to train another.
RUN_DIR ?= runs/default
# How the default model trains: the fast recipe's net for 2 epochs on 55,000 images (the 5,000 held out calibrate
# the page's confidences): 99.23% ± 0.11 test over 10 seeds (bench/fast_recipe.py). Another model, e.g. the classic cnn:
# make run TRAIN="--model cnn" RUN_DIR=runs/cnn (see `digitlab models` and the README's recipes).
TRAIN ?= --recipe fast --epochs 2 --no-full-train

run: $(BIN)/.installed-serve
	$(BIN)/digitlab fetch
	@if [ -f $(RUN_DIR)/model.keras ]; then echo "default model: $(RUN_DIR) (already trained)"; \
	else $(BIN)/digitlab train $(TRAIN) --out $(RUN_DIR); fi
	@cat $(RUN_DIR)/summary.txt
	@$(MAKE) --no-print-directory report RUN_DIR=$(RUN_DIR)
	@echo "Serving the draw-a-digit page on http://127.0.0.1:8000 (Ctrl-C to stop)"
	$(BIN)/digitlab serve --model $(RUN_DIR) --port 8000

# RUN_DIR's report and calibration (`digitlab evaluate`), made again only when the model or digitlab (its code,
# templates, pyproject.toml) is newer than the report, or the calibration the page uses is missing: a second
# `make run` serves in seconds instead of re-evaluating for most of a minute.
REPORT = $(RUN_DIR)/report/report.html
REPORT_INPUTS = $(RUN_DIR)/model.keras pyproject.toml $(shell find src/digitlab -name '*.py' -o -name '*.j2')
report: $(BIN)/.installed-serve
	@if [ -f $(REPORT) ] && [ -f $(RUN_DIR)/calibration.json ] && \
		[ -z "$$(find $(REPORT_INPUTS) -newer $(REPORT) 2>/dev/null | head -n 1)" ]; then \
		echo "report: $(REPORT) (current: newer than the model and digitlab's code)"; \
	else $(BIN)/digitlab evaluate $(RUN_DIR); fi

# The whole suite on TEST_WORKERS processes (pytest-xdist; a test file stays on one worker, and the trained models
# the tests share are trained once and copied, tests/conftest.py): most tests wait on a model, a browser or a
# subprocess at some point, so two workers keep two cores busy.
TEST_WORKERS ?= 2
test: $(BIN)/.installed-dev lint docs-check
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile

# The inner loop: every test that needs no trained `cnn` (tests/conftest.py marks the ones that do `slow`) and
# no browser; the tiny models it needs train in seconds, once for both workers, and are cached for the session.
test-fast: $(BIN)/.installed-dev
	$(BIN)/pytest -q -m "not slow and not browser" -n $(TEST_WORKERS) --dist loadfile

# The documentation site (mkdocs.yml, docs/): served on this machine only, rebuilt on every edit.
# NO_MKDOCS_2_WARNING silences Material's banner about MkDocs 2, which says nothing about this site.
docs: $(BIN)/.installed-dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr 127.0.0.1:8001

# The strict build `make test` runs: a broken link, anchor, docstring reference or bench marker fails it.
docs-check: $(BIN)/.installed-dev
	@tmp=$$(mktemp -d) && NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet -d "$$tmp"; \
	status=$$?; rm -rf "$$tmp"; exit $$status

lint: $(BIN)/.installed-dev
	$(BIN)/ruff check src tests bench examples notebooks docs/hooks
	$(BIN)/ruff format --check src tests bench examples notebooks docs/hooks
	$(BIN)/pydoclint src
	$(BIN)/lint-imports

format: $(BIN)/.installed-dev
	$(BIN)/ruff format src tests bench examples notebooks
	$(BIN)/ruff check --fix src tests bench examples notebooks

# JupyterLab on notebooks/, this machine only (127.0.0.1), in the project's venv.
notebook: $(BIN)/.installed-dev
	cd notebooks && ../$(BIN)/jupyter lab --ip=127.0.0.1 --no-browser $(if $(filter 0,$(shell id -u)),--allow-root)

# The notebook widget runs the draw page's own modules, bundled into the one ES module anywidget loads (committed,
# so installing digitlab needs no Node; a test rebuilds it and compares). Rebuild after changing web/static/*.js.
ESBUILD := esbuild@0.28.2
WIDGET_BUNDLE ?= src/digitlab/notebook/static/widget.bundle.js
widget:
	npx --yes $(ESBUILD) src/digitlab/notebook/static/widget.js --bundle --minify --format=esm --log-level=warning \
		--outfile=$(WIDGET_BUNDLE)

# Strip outputs before committing a notebook (a test fails on committed outputs).
notebook-strip: $(BIN)/.installed-dev
	$(BIN)/nbstripout notebooks/*.ipynb

# The quick benches; timing_bounds also measures a lone request's latency when the default model exists.
bench: $(BIN)/.installed-dev
	$(BIN)/python bench/load_speed.py
	$(BIN)/python bench/train_speed.py
	$(BIN)/python bench/timing_bounds.py $(wildcard $(RUN_DIR))

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build dist src/*.egg-info
