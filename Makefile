# The two commands of the README. Both set up what they need first (scripts/setup.sh).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test setup lint typecheck layers unit integration

setup:
	@scripts/setup.sh

# Corral's main job. For now: show the host's cgroup hierarchies, then run a command in a
# fresh cgroup with a 64 MiB memory limit (the group is removed afterwards).
# Corral's main job: run a container. A busybox rootfs made from the host (no network),
# its own hostname and pid namespace, a 64 MiB memory limit; removed when it exits.
run: setup
	$(PY) scripts/demo_container.py

lint: setup
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

typecheck: setup
	$(VENV)/bin/mypy

layers: setup
	$(VENV)/bin/lint-imports

test: setup lint typecheck layers
	$(PY) -m pytest -q
