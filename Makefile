# The commands the README gives. `make test` and `make demo` work on a fresh clone: they build .venv first.
PY := .venv/bin/python
PIP := .venv/bin/pip
export TORCHINDUCTOR_CACHE_DIR ?= $(CURDIR)/.cache/inductor

.PHONY: setup test test-fast bench clean-venv data demo demo-runs demo-report sweep sweep-runs sweep-report

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
# make demo: the paper's strong shift (English D0 -> German D1) at laptop scale, every run one command below, for
# each of SEEDS. Each run writes out_dir/final.json when complete, so a finished run is skipped and an interrupted
# one resumes (auto_resume). Two runs go side by side (one thread each) where the order allows.
#   make demo D0=mine D1=theirs DATA_DIR=/path    any two datasets prepared with one tokenizer (python -m prepare.text)
#   make demo SCALE=gpu                           bigger, longer (config/demo_gpu.py)
SCALE ?= cpu
DEMO ?= out-demo-$(SCALE)
D0 ?= en_docs
D1 ?= de_man
SEEDS ?= 1 2 3
# findings 4 and 5 (the runs a and f) are judged on the first seed only (README, the demo)
SEED1 = $(firstword $(SEEDS))
DATA_DIR ?=
ifeq ($(SCALE),gpu)
P_ITERS ?= 900
D_ITERS ?= 600
ETA_MAX ?= 1e-3
ETA_MIN ?= 1e-4
THREADS ?= 8
else
# D0 steps: the largest of the sweep's scales (450, 900, 1800, ...) whose whole demo, 3 seeds, fits in 20 minutes
# from a fresh clone on the 2-core build machine (README, the demo: 900 took 21 min 45 s); D1 steps 2/3 of them,
# the paper's 200B : 300B
P_ITERS ?= 450
D_ITERS ?= 300
# η_max: the best D0 loss of a D0-only sweep over 1e-3, 2e-3, 4e-3, 8e-3 (900 steps on en_docs; README, the demo)
ETA_MAX ?= 4e-3
ETA_MIN ?= 4e-4
THREADS ?= 1
endif
UNION_ITERS = $(shell echo $$(( $(P_ITERS) + $(D_ITERS) )))
EXTRA ?=
# $* is the seed: every run's folder is $(DEMO)/s<seed>/<run>. glibc's malloc is told to keep the big per-step
# buffers instead of unmapping and mapping them again every step (docs/machine-notes.md: up to ~1.4x on CPU)
TRAIN = MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 OMP_NUM_THREADS=$(THREADS) \
        $(PY) train.py config/demo_$(SCALE).py --seed=$* --learning_rate=$(ETA_MAX) --min_lr=$(ETA_MIN) \
        --out_dir=$(@D) --val_data="['$(D0)', '$(D1)']" $(if $(DATA_DIR),--data_dir=$(DATA_DIR)) \
        $(if $(EVAL_EVERY),--eval_interval=$(EVAL_EVERY)) $(EXTRA)
FROM_D0 = --init_from=$(DEMO)/s$*/d0 --max_iters=$(D_ITERS)
INF = --lr_schedule=infinite --schedule_args="{'total_iters': $(UNION_ITERS)}"
# in the order -j2 should start them, longest first so that the two lanes end together: the D0 runs (the continual
# runs wait for them), the unions (the longest), then the continual runs
RUN_TARGETS = $(foreach s,$(SEEDS),$(DEMO)/s$(s)/d0/final.json) $(DEMO)/s$(SEED1)/f_inf_d0/final.json \
              $(foreach s,$(SEEDS),$(DEMO)/s$(s)/e_union/final.json) \
              $(foreach s,$(SEEDS),$(foreach r,b_rewarm c_replay5 d_replay25,$(DEMO)/s$(s)/$(r)/final.json)) \
              $(DEMO)/s$(SEED1)/a_const/final.json $(DEMO)/s$(SEED1)/f_inf_d1/final.json

demo: setup data
	@mkdir -p $(DEMO) && date +%s > $(DEMO)/.start
	$(MAKE) -j2 demo-runs
	$(MAKE) demo-report
	@echo "demo: $$(( $$(date +%s) - $$(cat $(DEMO)/.start) )) s for the runs and the report"

data: setup
	$(PY) -m prepare.demo

demo-runs: $(RUN_TARGETS)

# D0: pre-train on D0, warmup + cosine to η_min
$(DEMO)/s%/d0/final.json:
	$(TRAIN) --data="{'$(D0)': 1.0}" --max_iters=$(P_ITERS)
# a) constant η_min on D1: no re-warm, no replay
$(DEMO)/s%/a_const/final.json: $(DEMO)/s%/d0/final.json
	$(TRAIN) $(FROM_D0) --data="{'$(D1)': 1.0}" --lr_schedule=constant --learning_rate=$(ETA_MIN)
# b) re-warm + re-decay on D1, no replay
$(DEMO)/s%/b_rewarm/final.json: $(DEMO)/s%/d0/final.json
	$(TRAIN) $(FROM_D0) --data="{'$(D1)': 1.0}"
# c) and d) re-warm + re-decay with 5% and 25% replay of the D0 windows pre-training read: b)'s steps
$(DEMO)/s%/c_replay5/final.json: $(DEMO)/s%/d0/final.json
	$(TRAIN) $(FROM_D0) --data="{'$(D1)': 0.95}" --replay="{'$(D0)': 0.05}"
$(DEMO)/s%/d_replay25/final.json: $(DEMO)/s%/d0/final.json
	$(TRAIN) $(FROM_D0) --data="{'$(D1)': 0.75}" --replay="{'$(D0)': 0.25}"
# e) the union baseline: from scratch on D0 + D1 with the tokens of both phases
$(DEMO)/s%/e_union/final.json:
	$(TRAIN) --data="{'$(D0)': $(P_ITERS), '$(D1)': $(D_ITERS)}" --max_iters=$(UNION_ITERS)
# f) one infinite schedule over both datasets: D0, then D1 with no re-warm (the schedule and the optimizer carry
#    on), annealed to η_min at the end of D1
$(DEMO)/s%/f_inf_d0/final.json:
	$(TRAIN) $(INF) --data="{'$(D0)': 1.0}" --max_iters=$(P_ITERS)
$(DEMO)/s%/f_inf_d1/final.json: $(DEMO)/s%/f_inf_d0/final.json
	$(TRAIN) $(INF) --data="{'$(D1)': 1.0}" --init_from=$(DEMO)/s$*/f_inf_d0 --continue_schedule=True \
		--reset_optimizer=False --max_iters=$(D_ITERS)

demo-report: demo-runs
	$(PY) -m eval.demo_report $(DEMO) --d0 $(D0) --d1 $(D1)

# ---------------------------------------------------------------------------------------------------------------
# make sweep: at what scale does continual pre-training match re-training? The finding-3 runs (D0, d and the
# union; SWEEP_RUNS adds b_rewarm if you have the time) at SWEEP_STEPS D0 steps (D1 steps 2/3 of them, the paper's
# ratio), the demo's model and learning rates, SWEEP_SEEDS seeds each; every scale is a demo folder of its own under
# SWEEP_DIR, resumable as the demo is. Every scale evaluates (and checkpoints) as often per phase as the demo, 9
# times in D0, so longer runs do not spend more of their time on it; the final losses do not depend on it. Then
# eval/sweep.py plots the gap (d minus the union) against D0 tokens per parameter and against compute.
SWEEP_DIR ?= out-sweep
SWEEP_STEPS ?= 450 900 1800 3600
SWEEP_SEEDS ?= 1 2
SWEEP_RUNS ?= d0 e_union d_replay25
sweep: setup data
	@mkdir -p $(SWEEP_DIR) && date +%s > $(SWEEP_DIR)/.start
	$(MAKE) sweep-report
	@echo "sweep: $$(( $$(date +%s) - $$(cat $(SWEEP_DIR)/.start) )) s for the runs and the report"

sweep-report:
	$(foreach p,$(SWEEP_STEPS),$(MAKE) -j2 sweep-runs DEMO=$(SWEEP_DIR)/p$(shell printf %05d $(p)) P_ITERS=$(p) \
		D_ITERS=$(shell echo $$(( 2 * $(p) / 3 ))) EVAL_EVERY=$(shell echo $$(( $(p) >= 9 ? $(p) / 9 : 1 ))) \
		SEEDS="$(SWEEP_SEEDS)" SWEEP_RUNS="$(SWEEP_RUNS)" &&) true
	$(PY) -m eval.sweep $(SWEEP_DIR) --d0 $(D0) --d1 $(D1)

sweep-runs: $(foreach s,$(SEEDS),$(foreach r,$(SWEEP_RUNS),$(DEMO)/s$(s)/$(r)/final.json))
