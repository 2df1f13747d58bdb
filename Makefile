# The two commands a newcomer needs (see README.md):
#   make demo   set everything up and run the main job
#   make test   run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_SPACE := search_spaces/mlp_mnist5k.yaml

.PHONY: setup demo test bench

# A virtual environment with snas installed editable, pinned by constraints.txt.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

# A real search: 24 trials (dense baseline first) with ASHA on the shipped MNIST subset.
demo: setup
	$(BIN)/snas search $(DEMO_SPACE) --num-samples 24

# The dashboard's browser test needs Debian's chromium (skipped without it): install it
# quietly when missing and we are root with apt-get; never fatal. The PostgreSQL tests need
# a server: .ci/with_postgres.sh starts a throwaway one on loopback (installing Debian's
# postgresql the same way when missing), exports SNAS_TEST_POSTGRES_URL, runs pytest and
# stops it; without one they skip.
test: setup
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1; } || true
	sh .ci/with_postgres.sh $(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python benchmarks/kernels.py
	$(BIN)/python benchmarks/data.py
	$(BIN)/python benchmarks/search.py
