"""`corral cp`: files between a container's filesystem and the host, running or not.

A path in the container is resolved as the container sees it: symlinks are followed
*within* its root (runtime.rootfs.secure_join), and a path under one of its volumes or
bind mounts lands in that mount's source. Into the container, files go through the
image layer's safe unpacker (nothing is written through a symlink the container planted);
out of it, symlinks are copied as symlinks, never followed.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tarfile
from collections.abc import Iterator

from corral.engine import lifecycle
from corral.engine.store import ContainerStore
from corral.engine.volumes import Volumes
from corral.errors import ContainerError


@contextlib.contextmanager
def _rootfs(data_root: str, cid: str) -> Iterator[str]:
    """The container's root on the host, mounted for the duration if it was not."""
    from corral.image import snapshot

    images = lifecycle.image_store(data_root)
    rootfs = snapshot.rootfs_path(images, cid)
    was_mounted = snapshot.is_mounted(rootfs) or not os.path.isdir(
        os.path.join(images.snapshots_dir, cid, "upper")
    )
    if not was_mounted:
        lifecycle.mount_rootfs(data_root, cid)
    try:
        yield rootfs
    finally:
        if not was_mounted:
            lifecycle.unmount_rootfs(data_root, cid)


def _host_path(data_root: str, cid: str, rootfs: str, path: str, follow: bool = True) -> str:
    """Where the container's `path` is on the host (mounts first, the rootfs otherwise).
    follow=False leaves a symlink in the last component as it is (cp copies links)."""
    if not path.startswith("/"):
        path = "/" + path
    clean = os.path.normpath(path)
    if not follow and clean != "/":
        parent = _host_path(data_root, cid, rootfs, os.path.dirname(clean))
        return os.path.join(parent, os.path.basename(clean))
    from corral.runtime.rootfs import secure_join

    spec = ContainerStore(data_root).load_spec(cid)
    for m in sorted(spec.mounts, key=lambda m: len(m["target"]), reverse=True):
        target = m["target"]
        if m["type"] == "tmpfs" or not (clean == target or clean.startswith(target + "/")):
            continue
        source = Volumes(data_root).path(m["source"]) if m["type"] == "volume" else m["source"]
        return secure_join(source, clean[len(target) :])
    return secure_join(rootfs, clean)


def copy_out(data_root: str, cid: str, src: str, dest: str) -> None:
    with _rootfs(data_root, cid) as rootfs:
        host_src = _host_path(data_root, cid, rootfs, src, follow=src.endswith("/."))
        if not os.path.lexists(host_src):
            raise ContainerError(f"could not find {src} in container {cid[:12]}")
        if os.path.isdir(dest) and not src.endswith("/."):
            dest = os.path.join(dest, os.path.basename(os.path.normpath(src)) or "root")
        if os.path.isdir(host_src) and not os.path.islink(host_src):
            shutil.copytree(host_src, dest, symlinks=True, dirs_exist_ok=True)
        elif os.path.islink(host_src):
            if os.path.lexists(dest):
                os.unlink(dest)
            os.symlink(os.readlink(host_src), dest)
        else:
            shutil.copy2(host_src, dest)


def copy_in(data_root: str, cid: str, src: str, dest: str) -> None:
    from corral.image.unpack import unpack_tar

    if not os.path.lexists(src):
        raise ContainerError(f"no such file or directory on the host: {src}")
    with _rootfs(data_root, cid) as rootfs:
        host_dest = _host_path(data_root, cid, rootfs, dest)
        if os.path.isdir(host_dest):
            target_dir, name = host_dest, os.path.basename(os.path.normpath(src))
        else:
            target_dir, name = os.path.dirname(host_dest), os.path.basename(host_dest)
            if not os.path.isdir(target_dir):
                raise ContainerError(
                    f"{os.path.dirname(dest) or '/'} is not a directory in container {cid[:12]}"
                )
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            tar.add(src, arcname=name)
        buf.seek(0)
        unpack_tar(buf, target_dir, overlay=False)
