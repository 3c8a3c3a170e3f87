# The two commands of the README. Each creates .venv and installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
COE    := $(VENV)/bin/coe
DATA   ?= data/quickstart

.PHONY: setup demo test bench clean

setup: $(VENV)/.installed

# torch==2.13.0 (pinned in pyproject.toml) is the CPU build; pip finds it in the
# machine's local wheel directory, an unpinned torch would pull a CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

# Main job on the embedded default: a tiny Gemma 4 MoE built offline, profiled
# on Python's standard library sources, then inspected.
demo: setup
	$(COE) demo tiny-model --out $(DATA)/tiny-gemma4 --layers 4 --experts 16 --top-k 4
	$(COE) demo stdlib-corpus --out $(DATA)/coding.jsonl
	$(COE) profile --model $(DATA)/tiny-gemma4 --corpus $(DATA)/coding.jsonl --out $(DATA)/profile.safetensors --max-length 256
	$(COE) inspect $(DATA)/profile.safetensors
	$(COE) inspect $(DATA)/tiny-gemma4 --keep 8

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) benchmarks/profile_overhead.py

clean:
	rm -rf $(VENV) $(DATA)
