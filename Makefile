PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install train test bench sync clean

install: $(STAMP)

# Re-installs only when pyproject.toml is newer than the last install.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

train: install
	$(PY) train.py $(ARGS)

test: install
	$(PY) -m pytest $(ARGS)

bench: install
	$(PY) -m arnn.bench $(ARGS)

# Uploads the offline W&B runs under outputs/ (after `wandb login`); runs synced before are skipped.
sync: install
	find outputs -type d -name wandb -prune -exec $(VENV)/bin/wandb sync $(ARGS) {} +

clean:
	rm -rf outputs .pytest_cache build src/*.egg-info
	find . -name __pycache__ -not -path "./$(VENV)/*" -prune -exec rm -rf {} +
