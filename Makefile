# The commands the README gives. `make test` and `make demo` work on a fresh clone: they build .venv first.
PY := .venv/bin/python
PIP := .venv/bin/pip
export TORCHINDUCTOR_CACHE_DIR ?= $(CURDIR)/.cache/inductor

.PHONY: setup test test-fast bench clean-venv

setup: .venv/.installed

# torch first, pinned, so that nothing later can pull a multi-GB CUDA build on a CPU machine (on a GPU machine the
# same pin gives the CUDA build). triton only if torch did not bring its own: a CUDA torch pins the one it needs.
.venv/.installed: requirements.txt
	python3 -m venv .venv
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PY) -c "import triton" 2>/dev/null || $(PIP) install -q triton==3.9.0
	$(PIP) install -q -r requirements.txt
	touch $@

test: setup
	$(PY) -m pytest -q --durations=10

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

bench: setup
	$(PY) bench/bench_train.py
	$(PY) bench/bench_kernels.py
	$(PY) bench/bench_prepare.py

clean-venv:
	rm -rf .venv
