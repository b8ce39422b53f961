# The commands the README gives. `make test` and `make demo` work on a fresh clone: they build .venv first.
PY := .venv/bin/python
PIP := .venv/bin/pip
export TORCHINDUCTOR_CACHE_DIR ?= $(CURDIR)/.cache/inductor

.PHONY: setup test test-fast bench clean-venv data demo demo-runs demo-report

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

# ---------------------------------------------------------------------------------------------------------------
# make demo: the paper's strong shift (English D0 -> German D1) at laptop scale, every run one command below.
# Each run writes out_dir/final.json when complete, so a finished run is skipped and an interrupted one resumes
# (auto_resume). Two runs go side by side (one thread each) where the order allows. SCALE=gpu: bigger, longer.
SCALE ?= cpu
DEMO := out-demo-$(SCALE)
ifeq ($(SCALE),gpu)
P_ITERS ?= 900
D_ITERS ?= 600
ETA_MAX ?= 1e-3
ETA_MIN ?= 1e-4
THREADS ?= 8
else
P_ITERS ?= 450
D_ITERS ?= 300
ETA_MAX ?= 3e-3
ETA_MIN ?= 3e-4
THREADS ?= 1
endif
UNION_ITERS := $(shell echo $$(( $(P_ITERS) + $(D_ITERS) )))
EXTRA ?=
TRAIN = OMP_NUM_THREADS=$(THREADS) $(PY) train.py config/demo_$(SCALE).py --seed=1337 --learning_rate=$(ETA_MAX) \
        --min_lr=$(ETA_MIN) --out_dir=$(@D) $(EXTRA)
FROM_EN = --init_from=$(DEMO)/en --max_iters=$(D_ITERS)
INF = --lr_schedule=infinite --schedule_args="{'total_iters': $(UNION_ITERS)}"
RUNS := en a_const b_rewarm c_replay5 d_replay25 e_union f_inf_en f_inf_de

demo: setup data
	@mkdir -p $(DEMO) && date +%s > $(DEMO)/.start
	$(MAKE) -j2 demo-runs
	$(MAKE) demo-report
	@echo "demo: $$(( $$(date +%s) - $$(cat $(DEMO)/.start) )) s for the runs and the report"

data: setup
	$(PY) -m prepare.demo

demo-runs: $(RUNS:%=$(DEMO)/%/final.json)

# D0: pre-train on English, warmup + cosine to η_min
$(DEMO)/en/final.json:
	$(TRAIN) --data="{'en': 1.0}" --max_iters=$(P_ITERS)
# a) constant η_min on German: no re-warm, no replay
$(DEMO)/a_const/final.json: $(DEMO)/en/final.json
	$(TRAIN) $(FROM_EN) --data="{'de': 1.0}" --lr_schedule=constant --learning_rate=$(ETA_MIN)
# b) re-warm + re-decay on German, no replay
$(DEMO)/b_rewarm/final.json: $(DEMO)/en/final.json
	$(TRAIN) $(FROM_EN) --data="{'de': 1.0}"
# c) and d) re-warm + re-decay with 5% and 25% replay of the English D0 read: compute-equivalent, b)'s steps
$(DEMO)/c_replay5/final.json: $(DEMO)/en/final.json
	$(TRAIN) $(FROM_EN) --data="{'de': 0.95}" --replay="{'en': 0.05}"
$(DEMO)/d_replay25/final.json: $(DEMO)/en/final.json
	$(TRAIN) $(FROM_EN) --data="{'de': 0.75}" --replay="{'en': 0.25}"
# e) the union baseline: from scratch on English + German with the tokens of both phases
$(DEMO)/e_union/final.json:
	$(TRAIN) --data="{'en': $(P_ITERS), 'de': $(D_ITERS)}" --max_iters=$(UNION_ITERS)
# f) one infinite schedule over both datasets: English, then German with no re-warm (the schedule and the optimizer
#    carry on), annealed to η_min at the end of German
$(DEMO)/f_inf_en/final.json:
	$(TRAIN) $(INF) --data="{'en': 1.0}" --max_iters=$(P_ITERS)
$(DEMO)/f_inf_de/final.json: $(DEMO)/f_inf_en/final.json
	$(TRAIN) $(INF) --data="{'de': 1.0}" --init_from=$(DEMO)/f_inf_en --continue_schedule=True \
		--reset_optimizer=False --max_iters=$(D_ITERS)

demo-report: demo-runs
	$(PY) -m eval.demo_report $(DEMO)
