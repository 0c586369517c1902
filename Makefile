# One-command set-up: each target creates .venv if missing and installs what it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
OUT ?= demo-out

.PHONY: demo test lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# The CPU wheel of torch is pinned here (an unpinned torch resolves to a multi-GB CUDA build);
# the package itself only asks for torch>=2.1.
$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[all]' torch==2.13.0
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/neuralcollapse demo --out $(OUT)

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks experiments

bench: $(STAMP)
	$(PY) benchmarks/bench_metrics.py
	$(PY) benchmarks/bench_ufm.py
	$(PY) benchmarks/bench_train.py
	$(PY) benchmarks/bench_ntk.py
	$(PY) benchmarks/bench_probe.py
	$(PY) benchmarks/bench_ood.py
	$(PY) benchmarks/bench_robustness.py

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
