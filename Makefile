# make demo: venv + install + the offline digits DAG. make test: the test suite (CPU, offline).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2
DEMO_CONFIG := workflow/configs/demo.yaml

.PHONY: demo test install lint clean-demo check-report gpu-wheels paper-smoke

$(BIN)/robinterp: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch torchvision
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/robinterp

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

lint: install
	$(BIN)/snakemake --lint --configfile $(DEMO_CONFIG)

clean-demo:
	rm -rf results/demo

# Wheels an offline GPU machine (Python 3.12, torch preinstalled) may lack for
# benchmarks/gpu_session.sh; copy .whl/ there with the repository (docs/benchmarks.md, "GPU checks").
GPU_WHEELS := captum shap slicer torchattacks robustness cox dill tensorboardX
gpu-wheels: install
	$(BIN)/pip download -q --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \
		--no-deps -d .whl $(GPU_WHEELS)
	@ls .whl
