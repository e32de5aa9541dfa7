# facevox: `make demo` runs the main job, `make test` runs the tests; both set up .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt

.PHONY: setup demo test bench lint clean

setup: $(VENV)/.ready

$(VENV)/.ready: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(PIP) -e ".[test,explain,m4a,faiss,speaker-baseline,face-baseline,export,attacks]"
	# gan-face-generate ships the DCGAN face generator's weights.tar, the only part of it facevox
	# reads. It cannot be an extra: it declares torchvision (forbidden here) and wandb. Hence --no-deps.
	$(PIP) --no-deps gan-face-generate
	# torchattacks (image FGSM/PGD, facevox.attacks.gradient) declares torchvision and pins requests~=2.25.1;
	# it imports and runs without either. Hence --no-deps.
	$(PIP) --no-deps torchattacks
	$(PY) scripts/check_env.py
	touch $@

demo: setup
	$(VENV)/bin/facevox demo

test: setup
	$(PY) scripts/check_env.py
	$(PY) -m pytest -q

bench: setup
	$(PY) benchmarks/bench_metrics.py

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks scripts

clean:
	rm -rf $(VENV) runs .pytest_cache
