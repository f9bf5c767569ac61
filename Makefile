# Set-up and entry points. `make demo` and `make test` work on a fresh clone with Python 3.11.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= all
# the venv's tools (papermill, python) must be found by Snakemake's shell commands
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install demo test lint dry-run benchmark

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-install only when the pins or the package metadata change.
$(VENV)/.installed: envs/requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r envs/requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

# The package's C++ operators, built into torch's extension cache once here rather than inside the
# first job that needs them (14-16 s on 2 cores); again when their sources change. Where they do not
# build it says why and goes on: the package then runs torch's code, with the same numbers.
$(VENV)/.native: $(VENV)/.installed $(wildcard src/memristor_mat/csrc/*.cpp)
	$(BIN)/memristor-mat build-native
	touch $@

# the venv and the C++ operators (what every other target builds first), for the paper configs'
# commands
install: $(VENV)/.native

demo: $(VENV)/.native
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/snakemake --report results/report.html

# The tests run on the machine's cores, at most 4 workers (pytest-xdist; more gain little: a few
# end-to-end tests of minutes set the pace), each worker's torch on its share of the cores
# (tests/conftest.py); `make test TEST_WORKERS=0` runs them in one process.
TEST_WORKERS ?= auto
test: $(VENV)/.native
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --maxprocesses 4 --durations=15

lint: $(VENV)/.installed
	$(BIN)/snakemake --lint

dry-run: $(VENV)/.installed
	$(BIN)/snakemake -n --cores $(CORES)

benchmark: $(VENV)/.native
	$(BIN)/python benchmarks/bench_mlp.py
	$(BIN)/python benchmarks/bench_snn.py
	$(BIN)/python benchmarks/bench_cnn.py
