"""The container's filesystem, built inside its new mount namespace: the spec's mounts in
order, /dev, pivot_root, masked and read-only paths.

Every destination comes from outside (config.json), so it is resolved inside the rootfs one
component at a time with symlinks followed *within* the root (what runc's securejoin does):
a mount can never land on a host path through a symlink planted in the image.
"""

from __future__ import annotations

import errno
import os
import stat

from corral.errors import ContainerError, KernelError
from corral.kernel.mount import (
    AT_FDCWD,
    AT_RECURSIVE,
    MNT_DETACH,
    MS_BIND,
    MS_MOVE,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    MS_SLAVE,
    mount,
    mount_setattr,
    pivot_root,
    umount2,
)
from corral.kernel.process import mknod

from .config import ContainerConfig, Device, Mount

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

_MAX_SYMLINKS = 255

# Flags a remount of a bind mount can change (MS_REC and propagation are not among them).
_REMOUNT_MASK = ~(MS_REC | MS_BIND | MS_REMOUNT)


def secure_join(root: str, unsafe: str) -> str:
    """root + unsafe, with every symlink resolved as if root were '/'. Never leaves root."""
    parts = [p for p in unsafe.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            resolved.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > _MAX_SYMLINKS:
                raise ContainerError(f"too many symlinks resolving {unsafe!r} in the rootfs")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


def _mkdir_in_root(root: str, path: str) -> None:
    """mkdir -p for a path already resolved by secure_join (so no component is a symlink)."""
    rel = os.path.relpath(path, root)
    current = root
    for part in rel.split("/"):
        if part in ("", "."):
            continue
        current = os.path.join(current, part)
        try:
            os.mkdir(current, 0o755)
        except FileExistsError:
            if os.path.islink(current):
                raise ContainerError(f"`{current}` became a symlink while creating it") from None


def _make_target(root: str, dest: str, is_file: bool) -> None:
    if os.path.lexists(dest):
        return
    _mkdir_in_root(root, os.path.dirname(dest))
    if is_file:
        fd = os.open(dest, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        os.close(fd)
    else:
        _mkdir_in_root(root, dest)


class RootfsBuilder:
    """Runs in the container's mount namespace, before pivot_root."""

    def __init__(
        self,
        config: ContainerConfig,
        cgroup_dirs: dict[str, str],
        userns: bool,
        warn: Callable[[str], None],
    ) -> None:
        self.config = config
        self.root = config.root
        self.cgroup_dirs = (
            cgroup_dirs  # controller label -> host directory of the container's group
        )
        self.userns = userns
        self.warn = warn

    def prepare(self) -> None:
        # Nothing the container mounts may propagate back to the host.
        mount(None, "/", None, self.config.rootfs_propagation or (MS_SLAVE | MS_REC))
        mount(self.root, self.root, None, MS_BIND | MS_REC)
        for m in self.config.mounts:
            self._mount(m)
        dev_is_tmpfs = any(m.destination == "/dev" and not m.is_bind for m in self.config.mounts)
        if dev_is_tmpfs:
            self._default_devices()
        for d in self.config.devices:
            self._device(d)

    def _mount(self, m: Mount) -> None:
        dest = secure_join(self.root, m.destination)
        if m.is_bind:
            source = (
                m.source if os.path.isabs(m.source) else os.path.join(self.config.bundle, m.source)
            )
            if not os.path.exists(source):
                raise ContainerError(
                    f"bind mount source `{source}` for {m.destination} does not exist"
                )
            _make_target(self.root, dest, not os.path.isdir(source))
            mount(source, dest, None, MS_BIND | (m.flags & MS_REC))
            remount = m.flags & _REMOUNT_MASK
            if remount:
                mount(None, dest, None, MS_BIND | MS_REMOUNT | remount | self._locked_flags(dest))
        elif m.type == "cgroup":
            self._cgroup_mount(dest, m)
        else:
            _make_target(self.root, dest, False)
            try:
                mount(m.source or m.type, dest, m.type, m.flags, m.data or None)
            except KernelError as err:
                if m.type == "sysfs" and err.errno in (errno.EPERM, errno.EACCES):
                    # No own network namespace (or a user namespace): the kernel refuses a new
                    # sysfs; runc falls back to the host's, bound read-only. So do we.
                    mount("/sys", dest, None, MS_BIND | MS_REC)
                    mount(
                        None,
                        dest,
                        None,
                        MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                    )
                elif m.type == "mqueue" and err.errno in (errno.EPERM, errno.EACCES):
                    mount("/dev/mqueue", dest, None, MS_BIND | MS_REC)
                else:
                    raise
        if m.propagation:
            mount(None, dest, None, m.propagation)
        if m.setattr_set or m.setattr_clear:
            mount_setattr(
                AT_FDCWD,
                path=dest,
                flags=AT_RECURSIVE,
                attr_set=m.setattr_set,
                attr_clr=m.setattr_clear,
            )

    def _locked_flags(self, path: str) -> int:
        """In a user namespace, flags the host set on a mount cannot be cleared: keep them."""
        if not self.userns:
            return 0
        st = os.statvfs(path)
        out = 0
        for vfs, ms in (
            (os.ST_NOSUID, MS_NOSUID),
            (os.ST_NODEV, MS_NODEV),
            (os.ST_NOEXEC, MS_NOEXEC),
            (os.ST_RDONLY, MS_RDONLY),
        ):
            if st.f_flag & vfs:
                out |= ms
        return out

    def _cgroup_mount(self, dest: str, m: Mount) -> None:
        """/sys/fs/cgroup inside: the container's own groups, as runc shows them."""
        _make_target(self.root, dest, False)
        flags = m.flags & (MS_NOSUID | MS_NODEV | MS_NOEXEC)
        if "unified" in self.cgroup_dirs and len(self.cgroup_dirs) == 1:
            mount(self.cgroup_dirs["unified"], dest, None, MS_BIND)
            mount(None, dest, None, MS_BIND | MS_REMOUNT | (m.flags & _REMOUNT_MASK))
            return
        mount("tmpfs", dest, "tmpfs", flags, "mode=755")
        for label, host_dir in sorted(self.cgroup_dirs.items()):
            sub = os.path.join(dest, label)
            os.mkdir(sub, 0o755)
            mount(host_dir, sub, None, MS_BIND)
            mount(None, sub, None, MS_BIND | MS_REMOUNT | (m.flags & _REMOUNT_MASK))
            if "," in label:  # co-mounted: cpu,cpuacct also answers to cpu and cpuacct
                for name in label.split(","):
                    link = os.path.join(dest, name)
                    if not os.path.lexists(link):
                        os.symlink(label, link)
        if m.flags & MS_RDONLY:
            mount(None, dest, None, MS_REMOUNT | MS_RDONLY | flags)

    _DEFAULT_DEVICES = (
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    )

    def _default_devices(self) -> None:
        for path, major, minor in self._DEFAULT_DEVICES:
            self._device(Device(path, "c", major, minor, 0o666, 0, 0))
        dev = secure_join(self.root, "/dev")
        for name, target in (
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
            ("ptmx", "pts/ptmx"),
        ):
            link = os.path.join(dev, name)
            if not os.path.lexists(link):
                os.symlink(target, link)
        if os.path.exists("/proc/kcore") and not os.path.lexists(os.path.join(dev, "core")):
            os.symlink("/proc/kcore", os.path.join(dev, "core"))

    def _device(self, d: Device) -> None:
        dest = secure_join(self.root, d.path)
        _mkdir_in_root(self.root, os.path.dirname(dest))
        if os.path.lexists(dest):
            if os.path.isdir(dest) and not os.path.islink(dest):
                raise ContainerError(f"device path {d.path} is a directory in the rootfs")
            os.unlink(dest)
        if self.userns:
            # mknod is not allowed in a user namespace: bind the host's node instead.
            host = f"/dev/{os.path.basename(d.path)}"
            fd = os.open(dest, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            os.close(fd)
            mount(host, dest, None, MS_BIND)
            return
        old = os.umask(0)
        try:
            mknod(dest, "c" if d.type == "u" else d.type, d.file_mode & 0o7777, d.major, d.minor)
        finally:
            os.umask(old)
        os.chown(dest, d.uid, d.gid, follow_symlinks=False)

    def bind_console(self, pty_path: str) -> None:
        """/dev/console is the container's terminal, as runc and LXC make it. Called after
        the switch of root, so paths are the container's own."""
        dest = "/dev/console"
        if not os.path.lexists(dest):
            fd = os.open(dest, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            os.close(fd)
        mount(pty_path, dest, None, MS_BIND)

    def switch_root(self, no_pivot: bool) -> None:
        os.chdir(self.root)
        if no_pivot:
            mount(self.root, "/", None, MS_MOVE)
            os.chroot(".")
        else:
            # pivot_root(".", ".") stacks the old root under the new one; unmounting "."
            # then drops the old root without needing a directory for it (runc's trick).
            pivot_root(".", ".")
            mount(None, ".", None, MS_SLAVE | MS_REC)
            umount2(".", MNT_DETACH)
        os.chdir("/")

    def finish(self) -> None:
        """After the switch: sysctls, read-only and masked paths, a read-only root."""
        # Sysctls first: /proc/sys is usually among the read-only paths.
        for key, value in self.config.sysctl.items():
            target = "/proc/sys/" + key.replace(".", "/")
            try:
                with open(target, "w") as f:
                    f.write(value)
            except OSError as err:
                raise ContainerError(f"sysctl {key}={value}: {err.strerror}") from err
        for path in self.config.readonly_paths:
            self._readonly(path)
        for path in self.config.masked_paths:
            self._mask(path)
        if self.config.root_readonly:
            mount(None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY | self._locked_flags("/"))

    def _mask(self, path: str) -> None:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            mount("tmpfs", path, "tmpfs", MS_RDONLY, "size=0")
        else:
            mount("/dev/null", path, None, MS_BIND)

    def _readonly(self, path: str) -> None:
        if not os.path.exists(path):
            return
        mount(path, path, None, MS_BIND | MS_REC)
        mount(
            None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC | self._locked_flags(path)
        )
