# make demo: set up, then run every stage on real Fashion-MNIST with the quick preset.
# make test: set up, then run the test suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
WORKDIR ?= runs/fashion-quick

.PHONY: setup data fonts demo test test-slow mutants bench clean set-org

setup: $(VENV)/.installed data

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

data:
	@./setup/apt-install.sh dataset-fashion-mnist

demo: setup
	$(PY) -m dmr.main --config=configs/fashion.py:quick --workdir=$(WORKDIR)

# One pytest worker per core (at most 4): most tests are bound by one compiling thread.
test: setup
	$(PY) -m pytest -q -n auto --maxprocesses=4 tests

test-slow: setup
	$(PY) -m pytest -q -n auto --maxprocesses=4 -m slow tests

# Semantic mutations of the science paths, each run against the tests that must catch it.
mutants: setup
	$(PY) tests/mutants/run.py

# PyTorch for the side-by-side benchmarks: the CPU build (a plain `torch` pulls a CUDA build).
# torchattacks must be installed with --no-deps: it requires torchvision, for which pip would
# replace the CPU torch by a CUDA build; its other requirements (scipy, requests) come after.
bench: setup
	$(PY) -m pip install -q 'torch==2.13.0' || $(PY) -m pip install -q torch --index-url https://download.pytorch.org/whl/cpu
	$(PY) -m pip install -q --no-deps 'torchattacks>=3.5'
	$(PY) -m pip install -q scipy requests
	$(PY) benchmarks/train_throughput.py
	$(PY) benchmarks/attacks.py
	$(PY) benchmarks/attack_strength.py

clean:
	rm -rf $(VENV) runs *.egg-info

# The Debian font packages FONTS is built from (about 1000 usable fonts; 350 MB installed).
fonts:
	@./setup/apt-install.sh $$(cat setup/debian-fonts.txt)

# The GitHub account hosting dmr, written as <org> in README.md and the notebooks (their Colab
# badges and REPO_URL): make set-org ORG=<account> fills it in everywhere.
set-org:
	@test -n "$(ORG)" || { echo "usage: make set-org ORG=<GitHub account hosting dmr>"; exit 1; }
	$(PYTHON) -c 'import pathlib, sys; [p.write_text(p.read_text().replace("/<org>/dmr", "/" + sys.argv[1] + "/dmr")) for p in map(pathlib.Path, sys.argv[2:])]' '$(ORG)' README.md colab/*.ipynb
