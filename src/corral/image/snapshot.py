"""Container root filesystems from images: an overlayfs mount of the image's unpacked layers
(read-only lower dirs, newest first) plus a fresh upper dir per container, so making a
rootfs costs the same whatever the image's size. Where overlay cannot be mounted (no
overlay in the kernel, or a data root on a filesystem overlay refuses as upper), the
layers are applied one by one onto a plain directory instead: a copy, slower but equal.

    snapshots/<id>/image      the image id (a hold: rmi refuses while it exists)
    snapshots/<id>/manifest   the manifest digest (keeps its blobs from garbage collection)
    snapshots/<id>/upper, work, rootfs   (overlay)   or   rootfs (copy)
"""

from __future__ import annotations

import contextlib
import errno
import os

from corral.errors import ImageError, KernelError
from corral.image.store import Image, Store, hex_of, remove_tree
from corral.kernel import mount as kmount

_PAGE = 4096


def _snapshot_dir(store: Store, snap_id: str) -> str:
    if not snap_id or "/" in snap_id or snap_id in (".", ".."):
        raise ImageError(f"invalid snapshot id {snap_id!r}")
    return os.path.join(store.snapshots_dir, snap_id)


def rootfs_path(store: Store, snap_id: str) -> str:
    return os.path.join(_snapshot_dir(store, snap_id), "rootfs")


def prepare(store: Store, image: Image, snap_id: str, *, use_overlay: bool = True) -> str:
    """Create snapshot `snap_id` of `image` and mount it; returns the rootfs path.
    On failure nothing is left behind (no directory, no mount, no hold)."""
    path = _snapshot_dir(store, snap_id)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        raise ImageError(f"snapshot {snap_id} already exists") from None
    try:
        for diff in image.diff_ids:
            if not store.has_layer(diff):
                raise ImageError(
                    f"image {image.short_id}: layer {diff} is not unpacked (pull it again)"
                )
        _write(os.path.join(path, "image"), image.id)
        _write(os.path.join(path, "manifest"), image.manifest_digest)
        os.mkdir(os.path.join(path, "rootfs"), 0o755)
        if use_overlay and _overlay_available():
            os.mkdir(os.path.join(path, "upper"), 0o755)
            os.mkdir(os.path.join(path, "work"), 0o700)
            try:
                mount(store, snap_id)
                return os.path.join(path, "rootfs")
            except KernelError:
                remove_tree(os.path.join(path, "upper"))
                remove_tree(os.path.join(path, "work"))
        _copy_layers(store, image, os.path.join(path, "rootfs"))
        return os.path.join(path, "rootfs")
    except BaseException:
        with contextlib.suppress(Exception):
            unmount(store, snap_id)
        remove_tree(path)
        raise


def _lowerdirs(store: Store, diff_ids: list[str]) -> str:
    """Relative to the layers directory (mount runs there) to fit more layers in a page."""
    return ":".join(hex_of(d) for d in reversed(diff_ids))


def mount(store: Store, snap_id: str) -> None:
    """(Re)mount an overlay snapshot's rootfs, e.g. after a reboot cleared the mount."""
    path = _snapshot_dir(store, snap_id)
    with open(os.path.join(path, "manifest")) as f:
        manifest = store.read_json(f.read().strip())
    config = store.read_json(manifest["config"]["digest"])
    lower = _lowerdirs(store, config["rootfs"]["diff_ids"])
    if not lower:  # an image with no layers: overlay needs one lower dir
        empty = os.path.join(path, "empty")
        os.makedirs(empty, exist_ok=True)
        lower = os.path.relpath(empty, store.layers_dir)
    options = f"lowerdir={lower},upperdir={path}/upper,workdir={path}/work"
    if len(options) >= _PAGE:
        raise ImageError(f"snapshot {snap_id}: too many layers for one overlay mount")
    rootfs = os.path.join(path, "rootfs")
    cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.chdir(store.layers_dir)
        kmount.mount("overlay", rootfs, "overlay", 0, options)
    finally:
        os.fchdir(cwd)
        os.close(cwd)


def is_mounted(path: str) -> bool:
    return kmount.is_mounted(path)


def unmount(store: Store, snap_id: str) -> None:
    rootfs = rootfs_path(store, snap_id)
    while is_mounted(rootfs):
        try:
            kmount.umount2(rootfs, kmount.MNT_DETACH)
        except KernelError as err:
            # someone else unmounted it between our check and our call: that is success
            if err.errno not in (errno.EINVAL, errno.ENOENT) or is_mounted(rootfs):
                raise


def remove(store: Store, snap_id: str) -> None:
    """Unmount and delete a snapshot (its upper dir: the container's changes)."""
    path = _snapshot_dir(store, snap_id)
    if not os.path.exists(path):
        return
    unmount(store, snap_id)
    remove_tree(path)


def snapshots(store: Store) -> list[str]:
    try:
        return sorted(os.listdir(store.snapshots_dir))
    except FileNotFoundError:
        return []


def flatten(store: Store, image: Image, rootfs: str) -> None:
    """The image's layers applied in order onto one plain directory (whiteouts applied):
    a root filesystem that needs no overlay mount (`corral lxc create -t oci`)."""
    os.makedirs(rootfs, exist_ok=True)
    _copy_layers(store, image, rootfs)


def _copy_layers(store: Store, image: Image, rootfs: str) -> None:
    """The no-overlay path: apply each layer blob onto one directory (whiteouts applied)."""
    from corral.image.unpack import unpack_layer  # tarfile and threads: only on this path

    for layer in image.layers:
        with open(store.blob_path(layer["digest"]), "rb") as blob:
            unpack_layer(blob, rootfs, overlay=False)


def _overlay_available() -> bool:
    if os.environ.get("CORRAL_NO_OVERLAY") == "1":
        return False
    try:
        with open("/proc/filesystems") as f:
            return any(line.split()[-1] == "overlay" for line in f if line.strip())
    except OSError:
        return False


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text + "\n")
