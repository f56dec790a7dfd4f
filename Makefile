# dmllab: every target does its own set-up, idempotently, into .venv/.
#   make demo   the main job: runs the notebook series, writes executed notebooks + report.html
#   make test   style and type checks (make check), then the whole test suite: every lesson
#               once under nbval (`pytest --nbval-lax`), unit tests, doctests, the lessons' claims
#   make check  ruff format --check, ruff check (lint + import order, notebooks too), mypy
#   make lab    JupyterLab on the notebooks, on 127.0.0.1 only
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.dmllab-installed
# Where pip finds a CPU build of torch when none is installed (empty = pip's own index).
TORCH_INDEX ?=
OUT ?= outputs

.PHONY: setup demo demo-quick check test lab benchmarks clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints/cpu.txt constraints/tools.txt scripts/install_torch.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@# torch + torchvision as one matched pair (constraints/cpu.txt); a working pair is kept
	TORCH_INDEX=$(TORCH_INDEX) $(PY) scripts/install_torch.py
	@# `fast` (faiss-cpu) too, so the tests cover both kNN backends
	$(PY) -m pip install --quiet -c constraints/tools.txt -e ".[lab,test,fast]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	@# Compile UMAP once into numba's on-disk cache, so a lesson's first UMAP map takes seconds, not ~20 s
	$(PY) -c "from dmllab.viz.projection import warm_up; warm_up()"
	@touch $@

demo: setup
	$(PY) -m dmllab demo --out $(OUT)

demo-quick: setup
	$(PY) -m dmllab demo --out $(OUT) --quick

# Style is checked by tools (configured in pyproject.toml); `ruff format <files>` and
# `ruff check --fix <files>` repair most findings. A failure here fails `make test`, so CI.
STYLED := dmllab tests benchmarks notebooks scripts conftest.py
check: setup
	@# all three run, so one pass shows every finding; any failure fails the target
	@status=0; \
	echo "ruff format --check"; $(PY) -m ruff format --check $(STYLED) || status=1; \
	echo "ruff check"; $(PY) -m ruff check $(STYLED) || status=1; \
	echo "mypy"; $(PY) -m mypy || status=1; \
	exit $$status

# --nbval-lax: nbval runs every cell of every lesson (testpaths puts notebooks/ first) and fails on
# an error; the lessons are stored without outputs, so strict --nbval would compare nothing.
test: setup check
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(PY) -m pytest --nbval-lax

# jupyter_lab_config.json makes JupyterLab save notebooks without widget views
# (dmllab.saved_notebooks.pre_save_hook), so a saved lesson reopens with its figures instead of
# "model not found". As root (containers, cloud images) it adds --allow-root, which JupyterLab
# otherwise demands before it starts.
lab: setup
	$(VENV)/bin/jupyter lab --config=jupyter_lab_config.json --ServerApp.ip=127.0.0.1 \
		--notebook-dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root)

# The README's speed table comes from exactly these commands (`--quick` runs are shorter and noisier).
benchmarks: setup
	$(PY) benchmarks/bench_losses.py
	$(PY) benchmarks/bench_eval.py
	$(PY) benchmarks/bench_bregman.py
	$(PY) benchmarks/bench_projection.py
	$(PY) benchmarks/bench_step.py
	$(PY) benchmarks/bench_input.py --embed 10000

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache $(OUT)
