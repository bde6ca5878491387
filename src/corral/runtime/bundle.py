"""OCI bundles from what is on the host: a busybox rootfs (Debian's busybox-static) that
needs no network and no image. Used by `make run`, the tests and the benchmarks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

from corral.errors import ContainerError
from corral.oci.defaults import default_spec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_DIRS = ("bin", "dev", "etc", "proc", "sys", "tmp", "root", "var", "run")


def find_busybox() -> str:
    path = shutil.which("busybox") or "/bin/busybox"
    if not os.path.exists(path):
        raise ContainerError("busybox is not installed (Debian: apt-get install busybox-static)")
    return path


def build_busybox_rootfs(dest: str, busybox: str | None = None) -> str:
    """A rootfs at `dest` (built next to it, then renamed into place): busybox, a symlink
    per applet, /etc/passwd and /etc/group. Returns `dest`; an existing one is kept."""
    if os.path.exists(os.path.join(dest, "bin", "sh")):
        return dest
    busybox = busybox or find_busybox()
    tmp = f"{dest}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    for d in _DIRS:
        os.makedirs(os.path.join(tmp, d))
    os.chmod(os.path.join(tmp, "tmp"), 0o1777)
    shutil.copy2(busybox, os.path.join(tmp, "bin", "busybox"))
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True)
    for name in applets.stdout.split():
        if name != "busybox":
            os.symlink("busybox", os.path.join(tmp, "bin", name))
    with open(os.path.join(tmp, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    with open(os.path.join(tmp, "etc", "group"), "w") as f:
        f.write("root:x:0:\nnogroup:x:65534:\n")
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    try:
        os.rename(tmp, dest)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # another process built it first
    return dest


def write_bundle(path: str, rootfs: str, args: list[str], **changes: Any) -> dict[str, Any]:
    """config.json at `path` for `rootfs` running `args` (no terminal, writable root);
    `changes` replace top-level spec keys. Returns the spec."""
    spec = default_spec()
    spec["process"]["terminal"] = False
    spec["process"]["args"] = args
    spec["root"] = {"path": os.path.abspath(rootfs), "readonly": False}
    spec.update(changes)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(spec, f, indent=1)
    return spec
