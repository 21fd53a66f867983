# Every target creates .venv on a clean machine first (see BUILD.md).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test test-all demo profile clean

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,beam]"
	touch $(STAMP)

install: $(STAMP)

# Default suite: everything not marked slow (keep it under ~10 minutes on 2 cores).
test: $(STAMP)
	$(PY) -m pytest -m "not slow" tests

test-all: $(STAMP)
	$(PY) -m pytest tests

# The main job: TNet vs. two baselines on the built-in megapixel digits
# (about 10 minutes on 2 cores); outputs in runs/synthetic/.
demo: $(STAMP)
	$(PY) -m tnet_tf.experiments.synthetic --run_dir=runs/synthetic

profile: $(STAMP)
	$(PY) -m tnet_tf.cli.profile

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
