PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
VENV_PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install train test test-fast bench doctor wheelhouse sync clean row

install: $(STAMP)

# Re-installs only when pyproject.toml is newer than the last install.
$(STAMP): pyproject.toml
	test -x $(VENV_PY) || $(PYTHON) -m venv $(VENV)
	$(VENV_PY) -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

# The A-RNN on the bundled digits with its searched training setting (docs/reproducing.md, "The default run").
train: install
	$(VENV_PY) train.py experiment=tuned/digits/arnn $(ARGS)

test: install
	$(VENV_PY) -m pytest $(ARGS)

# The unit tier: no test that fits a model (tests marked e2e) or needs CUDA (gpu), on every core: under 2 minutes.
test-fast: install
	$(VENV_PY) -m pytest -m unit -n auto $(ARGS)

bench: install
	$(VENV_PY) -m arnn.bench $(ARGS)

# Checks and times this machine's A-RNN path (GPU, or tiny sizes on a CPU): python -m arnn.doctor --help
doctor: install
	$(VENV_PY) -m arnn.doctor $(ARGS)

# Wheels of everything but torch, torchvision and triton for an offline node with its own torch, e.g.
# make wheelhouse PY=3.12; then on the node: scripts/offline_node.sh wheelhouse
# (docs/speed.md, "A GPU node without network")
PY ?= 3.11
wheelhouse: install
	$(VENV_PY) scripts/wheelhouse.py --python-version $(PY) --dest wheelhouse $(ARGS)

# A full-scale table row in the background, continued where it stopped when run again (after a kill, or on a new
# machine with results/ checked out), ending with the rows report (results/report/) refreshed:
#   make row ROW=paper/pmnist/arnn DATA=<folder holding MNIST/raw> THREADS=1
ROW ?= paper/pmnist/arnn
# results/paper_pmnist_arnn for ROW=paper/pmnist/arnn: the row's path with / as _
RUN = $(subst /,_,$(ROW))
DATA ?= data
THREADS ?= 1
row: install
	OMP_NUM_THREADS=$(THREADS) MKL_NUM_THREADS=$(THREADS) nohup scripts/row.sh $(VENV_PY) results/$(RUN) \
		experiment=$(ROW) data.data_dir=$(DATA) $(ARGS) >> results/$(RUN).out 2>&1 &
	@echo "started $(ROW) in the background: log results/$(RUN)/*.log, epochs results/$(RUN)/csv/metrics.csv;"
	@echo "when it ends, results/report/ shows its row"

# Uploads the offline W&B runs under outputs/ (after `wandb login`); runs synced before are skipped.
sync: install
	find outputs -type d -name wandb -prune -exec $(VENV)/bin/wandb sync $(ARGS) {} +

clean:
	rm -rf outputs .pytest_cache build src/*.egg-info
	find . -name __pycache__ -not -path "./$(VENV)/*" -prune -exec rm -rf {} +
