# The two commands of the README. Each creates .venv and installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
COE    := $(VENV)/bin/coe

.PHONY: setup demo test bench repro clean

setup: $(VENV)/.installed

# torch==2.13.0 (pinned in pyproject.toml) is the CPU build; pip finds it in the
# machine's local wheel directory, an unpinned torch would pull a CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

# Main job on the embedded default: build the demo corpora, train the small Gemma 4 MoE parent,
# profile, mask, cut and evaluate the coding specialist, and log it all to MLflow.
demo: setup
	$(PY) -m coe.run +domain=coding

# The tests also run llama.cpp: llama-cpp-python builds from source once (about 5 minutes).
test: setup $(VENV)/.llamacpp
	$(PY) -m pytest -q

$(VENV)/.llamacpp: $(VENV)/.installed
	$(PY) -m pip install --quiet -e ".[dev,llamacpp]"
	touch $@

# dvc.yaml's stages call `python`: run them with the virtualenv first on PATH.
repro: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m dvc repro

bench: setup
	$(PY) benchmarks/profile_overhead.py
	$(PY) benchmarks/gguf_surgery.py
	$(PY) benchmarks/sandbox_throughput.py
	$(PY) benchmarks/corpus_stability.py

clean:
	rm -rf $(VENV) data/cache data/dvc outputs
