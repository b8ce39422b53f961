# The commands the README gives. `make test` and `make demo` work on a fresh clone: they build .venv first.
PY := .venv/bin/python
PIP := .venv/bin/pip
export TORCHINDUCTOR_CACHE_DIR ?= $(CURDIR)/.cache/inductor

.PHONY: setup test test-fast bench clean-venv data demo demo-runs demo-report tune sweep sweep-runs sweep-report

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
# make demo: the paper's two tables at laptop scale, in the paper's regime: D0 trained to TPP tokens per
# non-embedding parameter (30, the ratio of the paper's 10B runs), then the strong shift (English docs -> German
# man pages, the paper's Pile -> German) and the weak one (-> the Python docs, the paper's Pile -> SlimPajama), every
# run one command below, for each of SEEDS. Each run writes out_dir/final.json when complete, so a finished run is
# skipped and an interrupted one resumes (auto_resume). Two runs go side by side (one thread each).
#   make demo SHIFT=strong|weak|both              one table or both (the default: both)
#   make demo D0=mine D1=theirs DATA_DIR=/path    any two datasets prepared with one tokenizer (python -m prepare.text)
#   make demo WIDTH=32 TPP=100                    another model of the shape rule, another D0 budget
#   make demo SCALE=gpu                           bigger, longer (config/demo_gpu.py), not in the paper's regime
SCALE ?= cpu
DEMO ?= out-demo-$(SCALE)
D0 ?= en_docs_demo1k
D1 ?= de_man_demo1k
D1_WEAK ?= en2_demo1k
SHIFT ?= both
SEEDS ?= 1 2 3
# a), f) and the re-warm's η arms run on the first seed only (README, the demo)
SEED1 = $(firstword $(SEEDS))
DATA_DIR ?=
# the shape rule of the demo and the sweep: n_layer = n_head = WIDTH / 32 (heads of 32 dims), the rest is
# config/demo_cpu.py's (Pythia's shape: rotary on 25%, parallel residual, untied, no bias). Its non-embedding
# parameters: 12 L C^2 in the blocks, plus the norms' weights (2 L + 1) C
WIDTH ?= 64
LAYERS = $(shell echo $$(( $(WIDTH) / 32 )))
N_NE = $(shell echo $$(( 12 * $(LAYERS) * $(WIDTH) * $(WIDTH) + (2 * $(LAYERS) + 1) * $(WIDTH) )))
# η_max per width: the best final D0 loss of a D0-only run over a grid of powers of two (make tune; README, the
# sweep), each at TPP 30 or, for a width the sweep stops short of 30, at its largest ratio
# (README, the demo: the tune table, AMD EPYC)
ETA_32 = 3.2e-2
ETA_64 = 1.6e-2
ETA_96 = 1.6e-2
ETA_128 = 8e-3
ifeq ($(SCALE),gpu)
P_ITERS ?= 900
D_ITERS ?= 600
ETA_MAX ?= 1e-3
THREADS ?= 8
MODEL =
else
# D0 steps: TPP tokens per non-embedding parameter, at batch 32 x block 128 = 4,096 tokens a step; D1 steps 2/3 of
# them (the paper's 200B : 300B)
TPP ?= 30
P_ITERS ?= $(shell echo $$(( ($(TPP) * $(N_NE) + 2048) / 4096 )))
D_ITERS ?= $(shell echo $$(( 2 * $(P_ITERS) / 3 )))
ETA_MAX ?= $(ETA_$(WIDTH))
THREADS ?= 1
MODEL = --n_layer=$(LAYERS) --n_head=$(LAYERS) --n_embd=$(WIDTH)
endif
# η_min = η_max / 10, as in the paper; the re-warm's η arms run the continual phase at ½x and 2x D0's η_max
eta = $(shell awk 'BEGIN { print $(ETA_MAX) * $(1) }')
ETA_MIN ?= $(call eta,0.1)
UNION_ITERS = $(shell echo $$(( $(P_ITERS) + $(D_ITERS) )))
# evaluate (and checkpoint) 9 times in D0 and as often per step after it, whatever the budget
EVAL_EVERY ?= $(shell echo $$(( $(P_ITERS) >= 9 ? $(P_ITERS) / 9 : 1 )))
EXTRA ?=
# $* is the seed: every run's folder is $(DEMO)/s<seed>/<run>. glibc's malloc is told to keep the big per-step
# buffers instead of unmapping and mapping them again every step (docs/machine-notes.md: up to ~1.4x on CPU)
TRAIN = MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 OMP_NUM_THREADS=$(THREADS) \
        $(PY) train.py config/demo_$(SCALE).py $(MODEL) --seed=$* --learning_rate=$(ETA_MAX) --min_lr=$(ETA_MIN) \
        --out_dir=$(@D) --val_data="['$(D0)', '$(D1)'$(if $(filter-out strong,$(SHIFT)),$(comma) '$(D1_WEAK)')]" \
        $(if $(DATA_DIR),--data_dir=$(DATA_DIR)) --eval_interval=$(EVAL_EVERY) $(EXTRA)
comma = ,
FROM_D0 = --init_from=$(DEMO)/s$*/d0 --max_iters=$(D_ITERS)
INF = --lr_schedule=infinite --schedule_args="{'total_iters': $(UNION_ITERS)}"
# in the order -j2 should start them, longest first so that the two lanes end together: the D0 runs (the continual
# runs wait for them), the unions (the longest), then the continual runs
STRONG_UNIONS = $(foreach s,$(SEEDS),$(DEMO)/s$(s)/e_union/final.json)
STRONG_RUNS = $(foreach s,$(SEEDS),$(foreach r,b_rewarm c_replay5 d_replay25,$(DEMO)/s$(s)/$(r)/final.json)) \
              $(foreach r,a_const f_inf_d1 b_rewarm_eta0.5x b_rewarm_eta2x d_replay25_eta0.5x d_replay25_eta2x,\
                $(DEMO)/s$(SEED1)/$(r)/final.json)
WEAK_UNIONS = $(foreach s,$(SEEDS),$(DEMO)/s$(s)/weak_e_union/final.json)
WEAK_RUNS = $(foreach s,$(SEEDS),$(foreach r,weak_b_rewarm weak_c_replay1 weak_d_replay5,$(DEMO)/s$(s)/$(r)/final.json))
D0_RUNS = $(foreach s,$(SEEDS),$(DEMO)/s$(s)/d0/final.json) \
          $(if $(filter-out weak,$(SHIFT)),$(DEMO)/s$(SEED1)/f_inf_d0/final.json)
RUN_TARGETS = $(D0_RUNS) $(if $(filter-out weak,$(SHIFT)),$(STRONG_UNIONS)) \
              $(if $(filter-out strong,$(SHIFT)),$(WEAK_UNIONS)) \
              $(if $(filter-out weak,$(SHIFT)),$(STRONG_RUNS)) $(if $(filter-out strong,$(SHIFT)),$(WEAK_RUNS))

demo: setup data
	@case "$(SHIFT)" in strong|weak|both) ;; *) echo "SHIFT=$(SHIFT): use strong, weak or both"; exit 2 ;; esac
	@mkdir -p $(DEMO) && date +%s > $(DEMO)/.start
	$(MAKE) -j2 demo-runs
	$(MAKE) demo-report
	@echo "demo: $$(( $$(date +%s) - $$(cat $(DEMO)/.start) )) s for the runs and the report"

# the corpora the demo and the sweep read, with the demo1k tokenizer (prepare/demo.py)
data: setup
	$(PY) -m prepare.demo --tokenizer demo1k --corpora en_docs de_man en2

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
# b) and d) with the continual phase's η_max (and η_min) at ½x and 2x D0's: the paper's no-replay LR sweep
$(DEMO)/s%/b_rewarm_eta0.5x/final.json: $(DEMO)/s%/d0/final.json
	$(TRAIN) $(FROM_D0) --data="{'$(D1)': 1.0}" --learning_rate=$(call eta,0.5) --min_lr=$(call eta,0.05)
$(DEMO)/s%/b_rewarm_eta2x/final.json: $(DEMO)/s%/d0/final.json
	$(TRAIN) $(FROM_D0) --data="{'$(D1)': 1.0}" --learning_rate=$(call eta,2) --min_lr=$(call eta,0.2)
$(DEMO)/s%/d_replay25_eta0.5x/final.json: $(DEMO)/s%/d0/final.json
	$(TRAIN) $(FROM_D0) --data="{'$(D1)': 0.75}" --replay="{'$(D0)': 0.25}" --learning_rate=$(call eta,0.5) \
		--min_lr=$(call eta,0.05)
$(DEMO)/s%/d_replay25_eta2x/final.json: $(DEMO)/s%/d0/final.json
	$(TRAIN) $(FROM_D0) --data="{'$(D1)': 0.75}" --replay="{'$(D0)': 0.25}" --learning_rate=$(call eta,2) \
		--min_lr=$(call eta,0.2)
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
# the weak shift from the same D0 runs: re-warm + re-decay with 0%, 1% and 5% replay (the paper's choice for a
# weak shift), and its own union
$(DEMO)/s%/weak_b_rewarm/final.json: $(DEMO)/s%/d0/final.json
	$(TRAIN) $(FROM_D0) --data="{'$(D1_WEAK)': 1.0}"
$(DEMO)/s%/weak_c_replay1/final.json: $(DEMO)/s%/d0/final.json
	$(TRAIN) $(FROM_D0) --data="{'$(D1_WEAK)': 0.99}" --replay="{'$(D0)': 0.01}"
$(DEMO)/s%/weak_d_replay5/final.json: $(DEMO)/s%/d0/final.json
	$(TRAIN) $(FROM_D0) --data="{'$(D1_WEAK)': 0.95}" --replay="{'$(D0)': 0.05}"
$(DEMO)/s%/weak_e_union/final.json:
	$(TRAIN) --data="{'$(D0)': $(P_ITERS), '$(D1_WEAK)': $(D_ITERS)}" --max_iters=$(UNION_ITERS)

demo-report: demo-runs
	$(PY) -m eval.demo_report $(DEMO) --d0 $(D0) --d1 $(D1) --d1_weak $(D1_WEAK) --shift $(SHIFT)

# ---------------------------------------------------------------------------------------------------------------
# make tune: η_max for a width, on D0 alone (the paper tunes on pre-training only): D0 runs of seed 1 at every η
# of TUNE_ETAS, TUNE_TPP tokens per non-embedding parameter, then the table of their final D0 losses
TUNE_DIR ?= out-tune
TUNE_TPP ?= 30
TUNE_ETAS ?= 2e-3 4e-3 8e-3 1.6e-2 3.2e-2
TUNE_AT = $(TUNE_DIR)/w$(shell printf %03d $(WIDTH))_r$(shell printf %04d $(TUNE_TPP))
tune: setup data
	$(MAKE) -j2 $(foreach e,$(TUNE_ETAS),tune-$(e))
	$(PY) -m eval.sweep --tune $(TUNE_DIR) --d0 $(D0)
tune-%:
	$(MAKE) $(TUNE_AT)/eta$*/s1/d0/final.json DEMO=$(TUNE_AT)/eta$* ETA_MAX=$* TPP=$(TUNE_TPP) SHIFT=strong

# ---------------------------------------------------------------------------------------------------------------
# make sweep: where does continual pre-training match re-training? The finding-3 runs (D0, d and the union of the
# strong shift; SWEEP_RUNS adds b_rewarm if you have the time) for every model width and D0 tokens per
# non-embedding parameter of SWEEP_GRID (width:ratios), SWEEP_SEEDS seeds each, the demo's recipe otherwise (η_max
# per width as above). Every cell is a demo folder of its own under SWEEP_DIR, resumable as the demo is. Then
# eval/sweep.py plots the gap (d minus the union) against D0 tokens per parameter, one line per width.
SWEEP_DIR ?= out-sweep
SWEEP_GRID ?= 32:30,100,300,1000 64:3,10,30,100 96:1,3,10,30 128:1,3,10
SWEEP_SEEDS ?= 1 2
SWEEP_RUNS ?= d0 e_union d_replay25
sweep: setup data
	@mkdir -p $(SWEEP_DIR) && date +%s > $(SWEEP_DIR)/.start
	$(MAKE) sweep-report
	@echo "sweep: $$(( $$(date +%s) - $$(cat $(SWEEP_DIR)/.start) )) s for the runs and the report"

cell_width = $(word 1,$(subst :, ,$(1)))
cell_ratios = $(subst $(comma), ,$(word 2,$(subst :, ,$(1))))
sweep-report:
	$(foreach g,$(SWEEP_GRID),$(foreach r,$(call cell_ratios,$(g)),$(MAKE) -j2 sweep-runs SHIFT=strong \
		DEMO=$(SWEEP_DIR)/w$(shell printf %03d $(call cell_width,$(g)))_r$(shell printf %04d $(r)) \
		WIDTH=$(call cell_width,$(g)) TPP=$(r) SEEDS="$(SWEEP_SEEDS)" SWEEP_RUNS="$(SWEEP_RUNS)" &&)) true
	$(PY) -m eval.sweep $(SWEEP_DIR) --d0 $(D0) --d1 $(D1)

sweep-runs: $(foreach s,$(SEEDS),$(foreach r,$(SWEEP_RUNS),$(DEMO)/s$(s)/$(r)/final.json))
