# prompthone — every entry point a user or CI needs. `make demo` and `make test` work on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# llama-cpp-python compiles llama.cpp once per machine (~5 min on 2 cores); pip caches the wheel after.
# A portable CPU build: no llava, no -march=native.
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# The torch extra (white-box backend) is pinned to the CPU build this machine has on disk; a newer torch is gigabytes.
TORCH_VERSION ?= 2.13.0

DEMO_OPTIONS := -o num_prompts_per_subsample=3 -o eval_samples=16 -o mc_top_k=3 -o mc_samples_per_prompt=2

.PHONY: install demo test lint bench bench-greater bench-pas peers peers-quick clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==$(TORCH_VERSION)"
	$(PY) -m pip install --quiet -e ".[local,torch,pas,dev,bench,plot]"
	touch $@

install: $(VENV)/.installed

demo: install  ## optimize a prompt for examples/sentiment.jsonl on the embedded model; prints seed vs best
	$(VENV)/bin/prompthone optimize --task examples/sentiment.jsonl --method ape --budget 400 $(DEMO_OPTIONS)

lint: install
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m mypy

test: lint  ## the whole suite (unit, fault injection, end-to-end on the embedded model, real llama.cpp server)
	$(PY) -m pytest

bench: install  ## benchmarks, printed as ratios against baselines measured in the same run
	$(PY) -m benchmarks.run

bench-greater: install  ## GREATER vs seed, APO, APE on 3 tasks (torch, CPU; ~40 min) and its cost per step
	$(PY) -m benchmarks.greater

bench-pas: install  ## PAS: curated data, LoRA complement model and BPO rewriter, judged win rates (~1 h)
	$(PY) -m benchmarks.pas

peers: install  ## prompthone vs DSPy, TextGrad, promptolution on one server and budget (hours); updates RESULTS.md
	$(PY) -m benchmarks.peers

peers-quick: install  ## the same harness on 1 task, 1 seed, a tiny budget: checks every system runs and is counted
	$(PY) -m benchmarks.peers --quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache runs benchmarks/out benchmarks/.venvs
