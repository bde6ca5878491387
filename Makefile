# The two commands of the README. Both set up what they need first (scripts/setup.sh).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test test-v2 setup lint typecheck layers

setup:
	@scripts/setup.sh

# Corral's main job: `corral run` on the built-in image (the host's busybox, no network),
# with its own hostname and pid namespace and a 64 MiB memory limit; removed when it exits.
run: setup
	$(PY) scripts/demo_container.py

lint: setup
	$(VENV)/bin/ruff check src tests bench scripts
	$(VENV)/bin/ruff format --check src tests bench scripts

typecheck: setup
	$(VENV)/bin/mypy

layers: setup
	$(VENV)/bin/lint-imports

# The cgroup v2 tier: the cgroups, runtime and engine tests again, on a cgroup v2-only kernel
# (User-Mode Linux booted with this machine's / as its read-only root; tests/vm/). On a CPU
# Debian's UML cannot run on (AVX-512/AMX XSAVE state) their v2 core runs under QEMU instead.
V2_TESTS := tests/unit tests/integration/test_kernel.py tests/integration/test_cgroups.py \
	tests/integration/test_cli_cgroup.py tests/integration/runtime/test_lifecycle.py \
	tests/integration/runtime/test_inside.py tests/integration/engine/test_run.py \
	tests/integration/engine/test_limits.py tests/integration/engine/test_lifecycle.py \
	tests/integration/engine/test_tty.py

# Under QEMU (software emulation, ~4x slower than UML) the engine's own suites, whose logic
# does not depend on the cgroup version, are left out: the v2 specifics are here.
V2_CORE_TESTS := tests/unit tests/integration/test_kernel.py tests/integration/test_cgroups.py \
	tests/integration/test_cli_cgroup.py tests/integration/runtime/test_lifecycle.py \
	tests/integration/runtime/test_inside.py tests/integration/engine/test_limits.py

# What User-Mode Linux lacks (cpuset, the time namespace, several CPUs) runs under QEMU.
V2_QEMU_TESTS := tests/integration/test_kernel.py tests/integration/test_cgroups.py \
	tests/integration/runtime/test_inside.py -k "cpuset or time_namespace or unshare_each_namespace"

GUEST := CORRAL_TEST_RUNTIME=$(abspath $(VENV))/bin/corral-runtime $(PY) tests/vm/run_in_guest.py
GUEST_PYTEST := $(abspath $(PY)) -m pytest -q -p no:cacheprovider

test-v2: setup
	@if $(PY) tests/vm/run_in_guest.py --uml-boots; then \
	    $(GUEST) --vm uml --timeout 1800 -- $(GUEST_PYTEST) $(V2_TESTS) && \
	    $(GUEST) --vm qemu --timeout 1800 -- $(GUEST_PYTEST) $(V2_QEMU_TESTS); \
	else \
	    echo "test-v2: UML cannot run on this CPU (XSAVE state larger than Debian's UML handles): the cgroup v2 core runs under QEMU"; \
	    $(GUEST) --vm qemu --timeout 3600 -- $(GUEST_PYTEST) $(V2_CORE_TESTS); \
	fi

test: setup lint typecheck layers
	$(PY) -m pytest -q
	$(MAKE) --no-print-directory test-v2
