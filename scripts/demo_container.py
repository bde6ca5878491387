"""`make run`: a real container on a busybox rootfs built from the host (no network).

It shows its own hostname, that it is pid 1 in its own pid namespace, and the memory
limit its cgroup sets, read from inside; then it is removed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

from corral.runtime.bundle import build_busybox_rootfs, write_bundle

ROOTFS = "/var/tmp/corral-demo/busybox"
SCRIPT = (
    'echo "hostname: $(hostname)"; echo "my pid: $$"; '
    'echo "processes I can see: $(ls /proc | grep -cE "^[0-9]+$")"; '
    "limit=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null "
    "|| cat /sys/fs/cgroup/memory.max); "
    'echo "memory limit: $((limit / 1048576)) MiB"'
)


def main() -> int:
    build_busybox_rootfs(ROOTFS)
    with tempfile.TemporaryDirectory(prefix="corral-demo-") as bundle:
        spec = write_bundle(bundle, ROOTFS, ["sh", "-c", SCRIPT], hostname="corral-demo")
        spec["root"]["readonly"] = True
        spec["linux"]["resources"]["memory"] = {"limit": 64 << 20}
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(spec, f, indent=1)
        runtime = os.path.join(os.path.dirname(sys.executable), "corral-runtime")
        cmd = [runtime, "run", "--bundle", bundle, f"corral-demo-{os.getpid()}"]
        print("$", " ".join(cmd), flush=True)
        return subprocess.run(cmd).returncode


if __name__ == "__main__":
    sys.exit(main())
