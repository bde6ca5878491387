"""`make run`: `corral run` on the built-in image (made from the host's busybox: nothing
downloaded).

The container shows its own hostname, that it is pid 1 in its own pid namespace, and the
memory limit its cgroup sets, read from inside; --rm removes it when it exits."""

from __future__ import annotations

import os
import sys

SCRIPT = (
    'echo "hostname: $(hostname)"; echo "my pid: $$"; '
    'echo "processes I can see: $(ls /proc | grep -cE "^[0-9]+$")"; '
    "limit=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null "
    "|| cat /sys/fs/cgroup/memory.max); "
    'echo "memory limit: $((limit / 1048576)) MiB"'
)


def main() -> int:
    corral = os.path.join(os.path.dirname(sys.executable), "corral")
    argv = [corral, "run", "--rm", "--hostname", "corral-demo", "--memory", "64m"]
    argv += ["corral/busybox", "sh", "-c", SCRIPT]
    print("$ corral run --rm --hostname corral-demo --memory 64m corral/busybox sh -c ...")
    os.execv(corral, argv)


if __name__ == "__main__":
    sys.exit(main())
