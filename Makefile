# Two commands on a fresh Debian machine: `make demo` and `make test`.
# Both create .venv, install tunstack with its test extra, and (as root) the Debian
# tools the demo and the real-peer tests drive.  Re-runs are fast: stamps skip work.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
DEBIAN_TOOLS := ip:iproute2 tcpdump:tcpdump tshark:tshark iperf3:iperf3 nc:netcat-openbsd socat:socat curl:curl ping:iputils-ping /usr/sbin/atmsigd:atm-tools \
                gcc:gcc /usr/include/stdio.h:libc6-dev hping3:hping3 /usr/sbin/radvd:radvd busybox:busybox \
                rootlesskit:rootlesskit newuidmap:uidmap setpriv:util-linux slirp4netns:slirp4netns pasta:passt
OUT    ?= demo-out

# `make check`: ruff and mypy (configured in pyproject.toml) over every package; `make test`
# runs it first, and the layering test (tests/unit/test_layers.py) is part of the suite.
.PHONY: check demo test unit integration realpeer adversarial soak fuzz deps tools venv clean bench
demo: deps
	$(VENV)/bin/tunstack demo --out $(OUT)

test: deps check
	$(PY) -m pytest -q tests

check: deps
	$(VENV)/bin/ruff check ndd drivers protocols stack tools tests
	$(VENV)/bin/mypy

unit: deps
	$(PY) -m pytest -q tests/unit
integration: deps
	$(PY) -m pytest -q tests/integration
realpeer: deps
	$(PY) -m pytest -q tests/realpeer
adversarial: deps
	$(PY) -m pytest -q tests/adversarial

# Longer campaigns, not part of `make test`: the adversarial suite scaled up
# (TUNSTACK_SOAK=1, tests/adversarial/conftest.py) and coverage-guided fuzzing of every
# input entry point (tests/fuzz; FUZZ_ARGS, e.g. "--seconds 600 tcp_established").
soak: deps
	TUNSTACK_SOAK=1 $(PY) -m pytest -q tests/adversarial
fuzz: deps
	$(PY) -m tests.fuzz $(FUZZ_ARGS)

# Figures, not assertions (README "Benchmark").  BENCH_ARGS=--quick for a ~1 min run.
# slirp4netns is the optional C peer: installed here when root, else its column says why.
bench: deps
	@command -v slirp4netns >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slirp4netns >/dev/null; } || true
	$(PY) -m tools.bench.main $(BENCH_ARGS)

deps: venv tools

venv: $(VENV)/.stamp-install
# Debian ships venv's ensurepip in python3-venv: as root, install it when missing.  A
# .venv without pip (left by a venv that failed for that reason) is made again.
$(VENV)/.stamp-install: pyproject.toml
	@$(PY) -m pip --version >/dev/null 2>&1 || $(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || \
	  [ "$$(id -u)" != 0 ] || { echo "installing: python3-venv"; apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null; }
	$(PY) -m pip --version >/dev/null 2>&1 || $(PYTHON) -m venv --clear $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

# Install missing Debian tools when root; otherwise say what is missing and go on
# (the real-peer tests then skip, or fail under TUNSTACK_REQUIRE_TUN=1).
tools:
	@missing=""; for pair in $(DEBIAN_TOOLS); do \
	  cmd=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$cmd >/dev/null 2>&1 || [ -e $$cmd ] || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "not root; missing Debian tools:$$missing"; fi; \
	fi

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .hypothesis *.egg-info
