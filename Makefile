# make demo: venv + install + the offline digits DAG. make test: the test suite (CPU, offline).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2
DEMO_CONFIG := workflow/configs/demo.yaml

.PHONY: demo test install lint lock clean-demo check-report gpu-wheels paper-smoke

# The venv holds exactly the versions of requirements.lock (runtime + dev), then robinterp itself.
$(BIN)/robinterp: pyproject.toml requirements.lock
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $@

install: $(BIN)/robinterp

# Re-resolve every dependency in a fresh venv and pin what pip chose: requirements.lock and the
# pip section of envs/robinterp.yaml (--use-conda). Commit both, then rerun make demo / make test.
lock:
	rm -rf .venv-lock
	$(PY) -m venv .venv-lock
	.venv-lock/bin/pip install -q --upgrade pip
	.venv-lock/bin/pip install -q torch torchvision
	.venv-lock/bin/pip install -q '.[dev]'
	.venv-lock/bin/python scripts/lock.py
	rm -rf .venv-lock

demo: install
	$(BIN)/snakemake --cores $(CORES) --configfile $(DEMO_CONFIG) --rerun-incomplete
	$(BIN)/snakemake --configfile $(DEMO_CONFIG) --report results/demo/report.html
	@echo "demo results: results/demo/ (tables under results/demo/digits/tables/, summary results/demo/summary.md)"
	@echo "report: results/demo/report.html"

# The paper's models and input sizes through the whole DAG on generated inputs (~10 min on 2 cores).
paper-smoke: install
	$(BIN)/python tests/paper_inputs.py results/paper_smoke/inputs
	$(BIN)/snakemake --cores $(CORES) --configfile workflow/configs/paper_smoke.yaml --rerun-incomplete

check-report:  # render the demo report in headless chromium; fails on a blank page or broken images
	$(BIN)/python scripts/check_report.py results/demo/report.html

test: install
	$(BIN)/python -m pytest -q -ra

lint: install  # ruff (lint rules and line length: pyproject.toml) and Snakemake's own lint
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakemake --lint --configfile $(DEMO_CONFIG)

clean-demo:
	rm -rf results/demo

# Wheels an offline GPU machine (Python 3.12, torch preinstalled) may lack for
# benchmarks/gpu_session.sh; copy .whl/ there with the repository (docs/benchmarks.md, "GPU checks").
# snakemake (step `workflow`) comes with its dependencies; connection_pool has no wheel on PyPI,
# so it is built here first (pure Python). pyautoattack's 45 MB of example models are dropped.
GPU_WHEELS := captum shap slicer torchattacks robustness cox dill tensorboardX pyautoattack safetensors
GPU_TARGET := --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64
gpu-wheels: install
	$(BIN)/pip download -q $(GPU_TARGET) --no-deps -d .whl $(GPU_WHEELS)
	$(BIN)/pip wheel -q --no-deps -w .whl $$(grep -i '^connection.pool==' requirements.lock)
	$(BIN)/pip download -q $(GPU_TARGET) --find-links .whl -d .whl $$(grep '^snakemake==' requirements.lock)
	$(BIN)/python scripts/slim_wheel.py .whl/pyautoattack-*.whl pyautoattack/examples/
	@ls .whl
