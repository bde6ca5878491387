"""Snapshot copies (`corral lxc copy -s`): `lxc.rootfs.path = overlay:LOWER:UPPER`, mounted
at `<container>/rootfs` (work dir `<container>/work`) before the container starts and
unmounted when it stops (the engine unmounts it too when the container exits on its own:
the bundle names it in the io.corral.mounted-root annotation)."""

from __future__ import annotations

import os

from corral.errors import ConfigError
from corral.kernel.mount import MNT_DETACH, is_mounted, umount2
from corral.kernel.mount import mount as kernel_mount
from corral.lxc.config import LxcConfig

MOUNTED_ROOT = "io.corral.mounted-root"


def _parts(config: LxcConfig, container_dir: str) -> tuple[str, str, str, str] | None:
    if not config.rootfs.startswith("overlay:"):
        return None
    parts = config.rootfs.split(":")
    if len(parts) != 3 or not all(os.path.isabs(p) for p in parts[1:]):
        raise ConfigError(f"lxc.rootfs.path {config.rootfs!r}: expected overlay:/LOWER:/UPPER")
    lower, upper = parts[1], parts[2]
    return lower, upper, os.path.join(container_dir, "work"), os.path.join(container_dir, "rootfs")


def mount(config: LxcConfig, container_dir: str) -> None:
    parts = _parts(config, container_dir)
    if parts is None:
        return
    lower, upper, work, target = parts
    if is_mounted(target):
        return
    for d in (upper, work, target):
        os.makedirs(d, exist_ok=True)
    kernel_mount(
        "overlay", target, "overlay", 0, f"lowerdir={lower},upperdir={upper},workdir={work}"
    )


def unmount(config: LxcConfig, container_dir: str) -> None:
    parts = _parts(config, container_dir)
    if parts is not None:
        unmount_path(parts[3])


def unmount_path(target: str) -> None:
    while is_mounted(target):
        umount2(target, MNT_DETACH)
