"""Namespace flags for all eight kinds, unshare and setns."""

from __future__ import annotations

import ctypes
import os

from corral.errors import KernelError

from ._libc import check, fspath, libc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# OCI / runc names -> clone flag. The /proc/PID/ns file is NS_PROC_NAMES[name].
NAMESPACE_FLAGS: dict[str, int] = {
    "mount": CLONE_NEWNS,
    "uts": CLONE_NEWUTS,
    "ipc": CLONE_NEWIPC,
    "pid": CLONE_NEWPID,
    "network": CLONE_NEWNET,
    "user": CLONE_NEWUSER,
    "cgroup": CLONE_NEWCGROUP,
    "time": CLONE_NEWTIME,
}
NS_PROC_NAMES: dict[str, str] = {
    "mount": "mnt",
    "uts": "uts",
    "ipc": "ipc",
    "pid": "pid",
    "network": "net",
    "user": "user",
    "cgroup": "cgroup",
    "time": "time",
}
_ALIASES = {"mnt": "mount", "net": "network"}


def namespace_flag(name: str) -> int:
    """The clone flag for a namespace name (OCI names, plus the /proc names mnt and net)."""
    key = _ALIASES.get(name, name)
    try:
        return NAMESPACE_FLAGS[key]
    except KeyError:
        known = ", ".join(NAMESPACE_FLAGS)
        raise ValueError(f"unknown namespace type {name!r} (known: {known})") from None


def parse_namespace_flags(names: Iterable[str]) -> int:
    flags = 0
    for name in names:
        flags |= namespace_flag(name)
    return flags


def flag_names(flags: int) -> list[str]:
    return [name for name, flag in NAMESPACE_FLAGS.items() if flags & flag]


def unshare(flags: int) -> None:
    check(libc.unshare(ctypes.c_int(flags)), "unshare", ",".join(flag_names(flags)) or hex(flags))


def setns(fd: int, nstype: int = 0, *, target: str | None = None) -> None:
    """Join the namespace open at `fd`; nstype 0 accepts any kind."""
    check(libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns", target or f"fd {fd}")


def setns_path(path: str | os.PathLike[str], nstype: int = 0) -> None:
    """Join the namespace at a path such as /proc/PID/ns/net or a bind-mounted nsfs file."""
    try:
        fd = os.open(fspath(path), os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise KernelError("open namespace", err.errno or 0, os.fspath(path)) from err
    try:
        setns(fd, nstype, target=os.fspath(path))
    finally:
        os.close(fd)


def namespace_id(pid: int | str, name: str, proc: str = "/proc") -> str:
    """The identity of a process's namespace, e.g. 'net:[4026531840]'."""
    path = f"{proc}/{pid}/ns/{NS_PROC_NAMES[_ALIASES.get(name, name)]}"
    try:
        return os.readlink(path)
    except OSError as err:
        raise KernelError("readlink", err.errno or 0, path) from err
