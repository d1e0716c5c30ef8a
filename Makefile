# Everything a fresh clone needs: `make test` and `make demo` create the environment themselves.
# `make demo` installs only what the demo runs on (the package and the embedded local ECS);
# `make test` adds the development toolchain. pip shows its progress: nothing is silent.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUM := $(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
RUNTIME := $(VENV)/.runtime-$(SUM)
STAMP := $(VENV)/.installed-$(SUM)
PIP := $(BIN)/python -m pip --disable-pip-version-check

.PHONY: test demo lint typecheck unit faults bench sysdeps clean generate peers

# The demo's environment: the package and the local extra (moto), no dev tools.
$(RUNTIME): pyproject.toml constraints.txt
	@test -x $(BIN)/python || { echo "creating $(VENV)"; $(PY) -m venv $(VENV); }
	@echo "installing ecs-sandbox and the embedded local ECS into $(VENV)"
	$(PIP) install --progress-bar on -c constraints.txt -e '.[local]'
	rm -f $(VENV)/.runtime-*
	touch $@

# Tests, lint, type checks, benchmarks: everything above plus the development toolchain.
$(STAMP): $(RUNTIME)
	@echo "installing the development toolchain into $(VENV)"
	$(PIP) install --progress-bar on -c constraints.txt -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

# tmux runs the agent's terminal; bubblewrap isolates each local task's root.
sysdeps:
	@sh scripts/install-sysdeps.sh

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) sysdeps
	$(BIN)/pytest -q

test: lint typecheck unit

# The fault-injection suite writes reliability-report.json; the bar: nothing leaked, run
# twice, unexplained or logged as a secret, and at least 30 cases per driver.
faults: $(STAMP) sysdeps
	rm -f reliability-report.json
	$(BIN)/pytest -q -m faults tests/faults
	$(BIN)/python tests/faults/_faults_report.py reliability-report.json

demo: $(RUNTIME) sysdeps
	$(BIN)/ecs-sandbox demo --local

bench: $(STAMP) sysdeps
	$(BIN)/python -m benchmarks

# Generated code: the in-container programs embedded in the core, and the sync public API
# generated from the async one. Tests fail while either is stale.
generate: $(STAMP)
	$(BIN)/python scripts/gen_incontainer.py
	$(BIN)/python scripts/gen_sync.py

# Peers (not part of `make test`: it needs Python 3.12 and PyPI): the Harbor environment's
# contract checked on the embedded local ECS, then a Harbor trial with its oracle agent
# through ecs_sandbox_drivers.harbor_env; fails unless every check passes and the reward is 1. Its own venv, .venv-peers, made with Python >= 3.12 (PEERS_PY=... to choose).
PEERS_VENV := .venv-peers
PEERS_STAMP := $(PEERS_VENV)/.installed-$(SUM)

$(PEERS_STAMP): pyproject.toml
	@test -x $(PEERS_VENV)/bin/python || { py=$$(sh tests/peers/find-python.sh) && \
		echo "creating $(PEERS_VENV) with $$py" && $$py -m venv $(PEERS_VENV); }
	$(PEERS_VENV)/bin/python -m pip --disable-pip-version-check install --progress-bar on \
		-e '.[local,harbor]'
	rm -f $(PEERS_VENV)/.installed-*
	touch $@

peers: $(PEERS_STAMP) sysdeps
	$(PEERS_VENV)/bin/python tests/peers/check_harbor_env.py
	$(PEERS_VENV)/bin/python tests/peers/run_harbor.py

clean:
	rm -rf $(VENV) $(PEERS_VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
