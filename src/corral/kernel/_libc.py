"""The libc handle, raw syscall numbers, and the errno -> KernelError translation.

Every call into libc in Corral goes through this module's `libc` and `check`.
"""

from __future__ import annotations

import ctypes
import os

from corral.errors import KernelError

# By soname: ctypes.util.find_library would run ldconfig, a subprocess on every start.
libc = ctypes.CDLL("libc.so.6", use_errno=True)
_syscall = libc.syscall
_syscall.restype = ctypes.c_long

# Syscalls that glibc 2.36 does not wrap (or wraps only recently). The newer ones share one
# number on every architecture since Linux 5.x ("the generic table").
_ARCH_NUMBERS: dict[str, dict[str, int]] = {
    "x86_64": {"pivot_root": 155, "keyctl": 250, "bpf": 321},
    "aarch64": {"pivot_root": 41, "keyctl": 219, "bpf": 280},
}
_GENERIC = {
    "pidfd_send_signal": 424,
    "open_tree": 428,
    "move_mount": 429,
    "pidfd_open": 434,
    "mount_setattr": 442,
}
_MACHINE = os.uname().machine
SYSCALLS: dict[str, int] = {**_GENERIC, **_ARCH_NUMBERS.get(_MACHINE, {})}


def raise_errno(op: str, target: str | None = None, err: int | None = None) -> None:
    """Raise KernelError for the current errno (or `err`)."""
    raise KernelError(op, err if err is not None else ctypes.get_errno(), target)


def check(ret: int, op: str, target: str | None = None) -> int:
    """Turn a libc-style return value (-1 and errno) into a KernelError."""
    if ret == -1:
        raise_errno(op, target)
    return ret


def syscall(name: str, *args: object, target: str | None = None) -> int:
    """Call a raw syscall by name; arguments must already be ctypes values."""
    try:
        number = SYSCALLS[name]
    except KeyError:
        raise KernelError(name, 38, target, f"no syscall number for {_MACHINE}") from None
    return check(_syscall(ctypes.c_long(number), *args), name, target)


def oserror(op: str, err: OSError, target: str | None = None) -> KernelError:
    """Translate an OSError raised by the stdlib into a KernelError naming the operation."""
    return KernelError(op, err.errno or 0, target if target is not None else err.filename)


def fspath(path: str | os.PathLike[str]) -> bytes:
    return os.fsencode(os.fspath(path))
