# make demo: venv + install + the offline digits DAG. make test: the test suite (CPU, offline).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2
DEMO_CONFIG := workflow/configs/demo.yaml

.PHONY: demo test install lint clean-demo

$(BIN)/robinterp: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch torchvision
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/robinterp

demo: install
	$(BIN)/snakemake --cores $(CORES) --configfile $(DEMO_CONFIG) --rerun-incomplete
	@echo "demo results: results/demo/ (tables under results/demo/digits/tables/)"

test: install
	$(BIN)/python -m pytest -q -ra

lint: install
	$(BIN)/snakemake --lint --configfile $(DEMO_CONFIG)

clean-demo:
	rm -rf results/demo
