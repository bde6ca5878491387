"""Process-level calls: pidfds, mknod, host and domain names, process identity."""

from __future__ import annotations

import ctypes
import os
import stat

from corral.errors import KernelError

from ._libc import check, fspath, libc, oserror

PIDFD_NONBLOCK = os.O_NONBLOCK


def pidfd_open(pid: int, flags: int = 0) -> int:
    """A file descriptor that refers to `pid` for its whole life, immune to pid reuse."""
    try:
        return os.pidfd_open(pid, flags)
    except OSError as err:
        raise oserror("pidfd_open", err, f"pid {pid}") from err


def pidfd_send_signal(pidfd: int, sig: int) -> None:
    import signal  # imports enum: only when a signal is sent this way

    try:
        signal.pidfd_send_signal(pidfd, sig)
    except OSError as err:
        raise oserror("pidfd_send_signal", err, f"pidfd {pidfd}") from err


def mknod(
    path: str | os.PathLike[str], kind: str, mode: int, major: int = 0, minor: int = 0
) -> None:
    """Make a device node or fifo. kind is 'c' (char), 'b' (block), 'p' (fifo) or 'f' (file)."""
    kinds = {
        "c": stat.S_IFCHR,
        "u": stat.S_IFCHR,
        "b": stat.S_IFBLK,
        "p": stat.S_IFIFO,
        "f": stat.S_IFREG,
    }
    if kind not in kinds:
        raise ValueError(f"unknown device kind {kind!r} (want c, b, p or f)")
    try:
        os.mknod(fspath(path), kinds[kind] | (mode & 0o7777), os.makedev(major, minor))
    except OSError as err:
        raise oserror("mknod", err, os.fspath(path)) from err


def sethostname(name: str) -> None:
    raw = name.encode()
    check(libc.sethostname(raw, ctypes.c_size_t(len(raw))), "sethostname", name)


def setdomainname(name: str) -> None:
    raw = name.encode()
    check(libc.setdomainname(raw, ctypes.c_size_t(len(raw))), "setdomainname", name)


def getdomainname() -> str:
    return _read("/proc/sys/kernel/domainname")


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError as err:
        raise oserror("read", err, path) from err


def process_start_time(pid: int, proc: str = "/proc") -> int:
    """Field 22 of /proc/PID/stat (clock ticks since boot): with the pid it names one process
    for good, so a recycled pid is not mistaken for the one Corral started."""
    path = f"{proc}/{pid}/stat"
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise oserror("read", err, path) from err
    # comm (field 2) may contain spaces and parentheses: split after the last ')'.
    rest = data[data.rindex(b")") + 2 :].split()
    return int(rest[19])


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def require_pid(pid: int, proc: str = "/proc") -> None:
    """Raise a KernelError naming the pid if no such process exists."""
    if pid <= 0 or not os.path.exists(f"{proc}/{pid}"):
        raise KernelError("find process", 3, f"pid {pid}")


PER_LINUX = 0x0000
PER_LINUX32 = 0x0008


def personality(persona: int) -> None:
    ret = int(libc.personality(ctypes.c_ulong(persona)))
    check(ret, "personality", hex(persona))


KEYCTL_JOIN_SESSION_KEYRING = 1
KEYCTL_SETPERM = 5
KEYCTL_DESCRIBE = 6
KEY_USR_SEARCH = 0x00080000


def join_session_keyring(name: str | None = None) -> int:
    """A new session keyring for the caller (anonymous when `name` is None), so that a
    container does not share the runtime's keys; made searchable by its user, as runc
    does. Returns its serial number."""
    from ._libc import syscall

    what = name or "session keyring"
    raw = ctypes.c_char_p(name.encode()) if name else ctypes.c_char_p(None)
    serial = syscall("keyctl", ctypes.c_int(KEYCTL_JOIN_SESSION_KEYRING), raw, target=what)
    buf = ctypes.create_string_buffer(256)
    syscall(
        "keyctl",
        ctypes.c_int(KEYCTL_DESCRIBE),
        ctypes.c_long(serial),
        buf,
        ctypes.c_long(256),
        target=what,
    )
    perm = int(buf.value.split(b";")[3], 16)  # "type;uid;gid;perm;description"
    syscall(
        "keyctl",
        ctypes.c_int(KEYCTL_SETPERM),
        ctypes.c_long(serial),
        ctypes.c_uint(perm | KEY_USR_SEARCH),
        target=what,
    )
    return serial
