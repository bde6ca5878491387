"""mount(2), umount2, pivot_root, statfs and the new mount API (open_tree, move_mount,
mount_setattr) that idmapped mounts need."""

from __future__ import annotations

import ctypes
import os

from corral.structs import record

from ._libc import check, fspath, libc, syscall

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOSYMFOLLOW = 0x100
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25

MNT_FORCE = 1
MNT_DETACH = 2
MNT_EXPIRE = 4
UMOUNT_NOFOLLOW = 8

PROPAGATION_FLAGS = MS_SHARED | MS_PRIVATE | MS_SLAVE | MS_UNBINDABLE

# The new mount API.
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_IDMAP = 0x100000
MOUNT_ATTR_NOSYMFOLLOW = 0x200000

# Filesystem magic numbers (statfs f_type) that Corral needs to recognise.
TMPFS_MAGIC = 0x01021994
CGROUP_SUPER_MAGIC = 0x27E0EB
CGROUP2_SUPER_MAGIC = 0x63677270
OVERLAYFS_SUPER_MAGIC = 0x794C7630

# mount(8)-style option words -> (flags to set, flags to clear). The same table runc uses
# for OCI mount options; propagation words are kept apart because they need their own call.
_FLAG_OPTIONS: dict[str, tuple[int, int]] = {
    "defaults": (0, 0),
    "rw": (0, MS_RDONLY),
    "ro": (MS_RDONLY, 0),
    "suid": (0, MS_NOSUID),
    "nosuid": (MS_NOSUID, 0),
    "dev": (0, MS_NODEV),
    "nodev": (MS_NODEV, 0),
    "exec": (0, MS_NOEXEC),
    "noexec": (MS_NOEXEC, 0),
    "sync": (MS_SYNCHRONOUS, 0),
    "async": (0, MS_SYNCHRONOUS),
    "dirsync": (MS_DIRSYNC, 0),
    "remount": (MS_REMOUNT, 0),
    "mand": (MS_MANDLOCK, 0),
    "nomand": (0, MS_MANDLOCK),
    "atime": (0, MS_NOATIME),
    "noatime": (MS_NOATIME, 0),
    "diratime": (0, MS_NODIRATIME),
    "nodiratime": (MS_NODIRATIME, 0),
    "bind": (MS_BIND, 0),
    "rbind": (MS_BIND | MS_REC, 0),
    "relatime": (MS_RELATIME, 0),
    "norelatime": (0, MS_RELATIME),
    "strictatime": (MS_STRICTATIME, 0),
    "nostrictatime": (0, MS_STRICTATIME),
    "lazytime": (MS_LAZYTIME, 0),
    "nolazytime": (0, MS_LAZYTIME),
    "symfollow": (0, MS_NOSYMFOLLOW),
    "nosymfollow": (MS_NOSYMFOLLOW, 0),
    "silent": (MS_SILENT, 0),
    "loud": (0, MS_SILENT),
}
_PROPAGATION_OPTIONS: dict[str, int] = {
    "private": MS_PRIVATE,
    "rprivate": MS_PRIVATE | MS_REC,
    "shared": MS_SHARED,
    "rshared": MS_SHARED | MS_REC,
    "slave": MS_SLAVE,
    "rslave": MS_SLAVE | MS_REC,
    "unbindable": MS_UNBINDABLE,
    "runbindable": MS_UNBINDABLE | MS_REC,
}


@record(frozen=True)
class MountOptions:
    """mount(8) option words split into what mount(2) needs."""

    flags: int = 0
    propagation: int = 0
    data: str = ""  # filesystem-specific options, comma separated (e.g. "size=64k,mode=755")


def parse_mount_options(options: list[str] | tuple[str, ...]) -> MountOptions:
    """Split option words into flags, propagation flags and fs data. Unknown words are data."""
    flags = 0
    propagation = 0
    data: list[str] = []
    for word in options:
        if word in _FLAG_OPTIONS:
            set_, clear = _FLAG_OPTIONS[word]
            flags = (flags | set_) & ~clear
        elif word in _PROPAGATION_OPTIONS:
            propagation |= _PROPAGATION_OPTIONS[word]
        else:
            data.append(word)
    return MountOptions(flags, propagation, ",".join(data))


def propagation_flag(name: str) -> int:
    try:
        return _PROPAGATION_OPTIONS[name]
    except KeyError:
        raise ValueError(f"unknown mount propagation {name!r}") from None


def mount(
    source: str | None,
    target: str | os.PathLike[str],
    fstype: str | None,
    flags: int = 0,
    data: str | None = None,
) -> None:
    src = fspath(source) if source is not None else None
    typ = fstype.encode() if fstype is not None else None
    dat = data.encode() if data else None
    check(
        libc.mount(src, fspath(target), typ, ctypes.c_ulong(flags), dat),
        f"mount {fstype or ('bind' if flags & MS_BIND else 'flags ' + hex(flags))}",
        os.fspath(target),
    )


def is_mounted(path: str | os.PathLike[str]) -> bool:
    """Something is mounted at `path` (as this process's mount namespace sees it)."""
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == target for line in f)


def umount2(target: str | os.PathLike[str], flags: int = 0) -> None:
    check(libc.umount2(fspath(target), ctypes.c_int(flags)), "umount", os.fspath(target))


def pivot_root(new_root: str | os.PathLike[str], put_old: str | os.PathLike[str]) -> None:
    syscall(
        "pivot_root",
        ctypes.c_char_p(fspath(new_root)),
        ctypes.c_char_p(fspath(put_old)),
        target=os.fspath(new_root),
    )


class _Statfs(ctypes.Structure):
    _fields_ = [
        ("f_type", ctypes.c_long),
        ("f_bsize", ctypes.c_long),
        ("f_blocks", ctypes.c_ulong),
        ("f_bfree", ctypes.c_ulong),
        ("f_bavail", ctypes.c_ulong),
        ("f_files", ctypes.c_ulong),
        ("f_ffree", ctypes.c_ulong),
        ("f_fsid", ctypes.c_int * 2),
        ("f_namelen", ctypes.c_long),
        ("f_frsize", ctypes.c_long),
        ("f_flags", ctypes.c_long),
        ("f_spare", ctypes.c_long * 4),
    ]


def statfs_type(path: str | os.PathLike[str]) -> int:
    """The filesystem magic number (f_type) of the filesystem holding `path`."""
    buf = _Statfs()
    check(libc.statfs(fspath(path), ctypes.byref(buf)), "statfs", os.fspath(path))
    return int(buf.f_type) & 0xFFFFFFFF


class MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def open_tree(path: str | os.PathLike[str], flags: int, dirfd: int = AT_FDCWD) -> int:
    """Open (and with OPEN_TREE_CLONE, detach a copy of) the mount at `path`; returns an fd."""
    return syscall(
        "open_tree",
        ctypes.c_int(dirfd),
        ctypes.c_char_p(fspath(path)),
        ctypes.c_uint(flags),
        target=os.fspath(path),
    )


def move_mount(
    from_fd: int,
    to_path: str | os.PathLike[str],
    *,
    from_path: str = "",
    to_dirfd: int = AT_FDCWD,
    flags: int = MOVE_MOUNT_F_EMPTY_PATH,
) -> None:
    syscall(
        "move_mount",
        ctypes.c_int(from_fd),
        ctypes.c_char_p(from_path.encode()),
        ctypes.c_int(to_dirfd),
        ctypes.c_char_p(fspath(to_path)),
        ctypes.c_uint(flags),
        target=os.fspath(to_path),
    )


def mount_setattr(
    fd: int,
    *,
    attr_set: int = 0,
    attr_clr: int = 0,
    propagation: int = 0,
    userns_fd: int = 0,
    path: str = "",
    flags: int = AT_EMPTY_PATH,
) -> None:
    """Change a mount's attributes; with MOUNT_ATTR_IDMAP and userns_fd, make it idmapped."""
    attr = MountAttr(attr_set, attr_clr, propagation, userns_fd)
    syscall(
        "mount_setattr",
        ctypes.c_int(fd),
        ctypes.c_char_p(path.encode()),
        ctypes.c_uint(flags),
        ctypes.byref(attr),
        ctypes.c_size_t(ctypes.sizeof(attr)),
        target=path or f"fd {fd}",
    )
