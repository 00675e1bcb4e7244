# digitlab: `make run` sets up, fetches MNIST, trains the default model if none, reports and serves;
# `make test` runs ruff, import-linter (the layer contract) and pytest. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test lint format bench clean notebook notebook-strip docs docs-check

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,docs]'
	touch $@

# The default model's run directory; delete it (or pass RUN_DIR=...) to train another.
RUN_DIR ?= runs/default
# How the default model trains: the fast recipe's net for 2 epochs on 55,000 images (the 5,000 held out calibrate
# the page's confidences): 99.23% ± 0.11 test over 10 seeds (bench/fast_recipe.py). Another model, e.g. the classic cnn:
# make run TRAIN="--model cnn" RUN_DIR=runs/cnn (see `digitlab models` and the README's recipes).
TRAIN ?= --recipe fast --epochs 2 --no-full-train

run: $(BIN)/.installed
	$(BIN)/digitlab fetch
	@if [ -f $(RUN_DIR)/model.keras ]; then echo "default model: $(RUN_DIR) (already trained)"; \
	else $(BIN)/digitlab train $(TRAIN) --out $(RUN_DIR); fi
	@cat $(RUN_DIR)/summary.txt
	$(BIN)/digitlab evaluate $(RUN_DIR)
	@echo "Serving the draw-a-digit page on http://127.0.0.1:8000 (Ctrl-C to stop)"
	$(BIN)/digitlab serve --model $(RUN_DIR) --port 8000

test: $(BIN)/.installed lint docs-check
	$(BIN)/pytest -q

# The documentation site (mkdocs.yml, docs/): served on this machine only, rebuilt on every edit.
# NO_MKDOCS_2_WARNING silences Material's banner about MkDocs 2, which says nothing about this site.
docs: $(BIN)/.installed
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr 127.0.0.1:8001

# The strict build `make test` runs: a broken link, anchor, docstring reference or bench marker fails it.
docs-check: $(BIN)/.installed
	@tmp=$$(mktemp -d) && NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet -d "$$tmp"; \
	status=$$?; rm -rf "$$tmp"; exit $$status

lint: $(BIN)/.installed
	$(BIN)/ruff check src tests bench examples notebooks
	$(BIN)/ruff format --check src tests bench examples notebooks
	$(BIN)/lint-imports

format: $(BIN)/.installed
	$(BIN)/ruff format src tests bench examples notebooks
	$(BIN)/ruff check --fix src tests bench examples notebooks

# JupyterLab on notebooks/, this machine only (127.0.0.1), in the project's venv.
notebook: $(BIN)/.installed
	cd notebooks && ../$(BIN)/jupyter lab --ip=127.0.0.1 --no-browser $(if $(filter 0,$(shell id -u)),--allow-root)

# Strip outputs before committing a notebook (a test fails on committed outputs).
notebook-strip: $(BIN)/.installed
	$(BIN)/nbstripout notebooks/*.ipynb

bench: $(BIN)/.installed
	$(BIN)/python bench/load_speed.py
	$(BIN)/python bench/train_speed.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build dist src/*.egg-info
