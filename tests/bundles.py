"""OCI bundles over a busybox rootfs (Debian's busybox-static), for runtime tests."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

from corral.oci import default_spec

BUSYBOX = shutil.which("busybox") or "/bin/busybox"
CACHE = Path("/var/tmp/corral-test-rootfs")


@cache
def busybox_rootfs() -> Path:
    """A minimal rootfs: busybox with its applets, /etc/passwd and group. Built once."""
    root = CACHE / "busybox"
    if (root / "bin" / "sh").exists():
        return root
    tmp = CACHE / f"busybox.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    for d in ("bin", "dev", "etc", "proc", "sys", "tmp", "root", "var", "run"):
        (tmp / d).mkdir(parents=True)
    shutil.copy2(BUSYBOX, tmp / "bin" / "busybox")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True)
    for name in applets.stdout.split():
        if name != "busybox":
            (tmp / "bin" / name).symlink_to("busybox")
    (tmp / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
    )
    (tmp / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    (tmp / "tmp").chmod(0o1777)
    CACHE.mkdir(parents=True, exist_ok=True)
    try:
        tmp.rename(root)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # another run built it first
    return root


def make_bundle(path: Path, args: list[str], **changes: Any) -> dict[str, Any]:
    """A bundle at `path` with its own copy of the rootfs; returns the spec (also written)."""
    path.mkdir(parents=True, exist_ok=True)
    rootfs = path / "rootfs"
    if not rootfs.exists():
        shutil.copytree(busybox_rootfs(), rootfs, symlinks=True)
    spec = copy.deepcopy(default_spec())
    spec["process"]["terminal"] = False
    spec["process"]["args"] = args
    spec["root"]["readonly"] = False
    for key, value in changes.items():
        spec[key] = value
    write_spec(path, spec)
    return spec


def write_spec(path: Path, spec: dict[str, Any]) -> None:
    (path / "config.json").write_text(json.dumps(spec, indent=1))
