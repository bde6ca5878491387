"""A tiny initramfs for the QEMU tier: busybox, the modules a 9p root needs, and an init
that mounts the host's / (exported read-only over virtio-9p) and switches to it.

    python tests/vm/make_initramfs.py KERNEL_VERSION OUTPUT
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import stat
import sys
from pathlib import Path

WANTED = ("virtio_pci", "9pnet_virtio", "9p")

INIT = """#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /newroot
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs devtmpfs /dev
for m in {modules}; do /bin/busybox insmod /modules/$m || echo "insmod $m failed"; done
/bin/busybox mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000 rootfs /newroot \\
    || {{ echo "cannot mount the 9p root"; /bin/busybox poweroff -f; }}
/bin/busybox umount /dev /proc
exec /bin/busybox switch_root /newroot "$corral_init"
"""


def module_order(version: str) -> list[str]:
    base = Path(f"/lib/modules/{version}")
    deps: dict[str, list[str]] = {}
    for line in (base / "modules.dep").read_text().splitlines():
        path, _, rest = line.partition(":")
        deps[path] = rest.split()
    by_name = {Path(p).name.split(".")[0].replace("-", "_"): p for p in deps}
    order: list[str] = []

    def visit(path: str) -> None:
        for dep in reversed(deps.get(path, [])):
            visit(dep)
        if path not in order:
            order.append(path)

    for name in WANTED:
        if name in by_name:
            visit(by_name[name])
    return [str(base / p) for p in order]


def cpio(entries: list[tuple[str, int, bytes]]) -> bytes:
    """newc format: (name, mode, data) entries."""
    out = io.BytesIO()
    for ino, (name, mode, data) in enumerate([*entries, ("TRAILER!!!", 0, b"")], start=1):
        encoded = name.encode() + b"\0"
        header = "070701" + "".join(
            f"{v:08x}" for v in (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0)
        )
        out.write(header.encode() + encoded)
        out.write(b"\0" * ((4 - (110 + len(encoded)) % 4) % 4))
        out.write(data)
        out.write(b"\0" * ((4 - len(data) % 4) % 4))
    return out.getvalue()


def main() -> int:
    version, output = sys.argv[1], sys.argv[2]
    modules = module_order(version)
    entries: list[tuple[str, int, bytes]] = [
        ("bin", stat.S_IFDIR | 0o755, b""),
        ("modules", stat.S_IFDIR | 0o755, b""),
        (
            "bin/busybox",
            stat.S_IFREG | 0o755,
            Path(shutil.which("busybox") or "/bin/busybox").read_bytes(),
        ),
    ]
    names = []
    for path in modules:
        name = os.path.basename(path)
        names.append(name)
        entries.append((f"modules/{name}", stat.S_IFREG | 0o644, Path(path).read_bytes()))
    entries.append(("init", stat.S_IFREG | 0o755, INIT.format(modules=" ".join(names)).encode()))
    Path(output).write_bytes(gzip.compress(cpio(entries), compresslevel=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
