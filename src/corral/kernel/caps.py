"""Capabilities: the name <-> number table, capget / capset, and cap set parsing."""

from __future__ import annotations

import ctypes

from corral.structs import record

from ._libc import check, libc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)
_NUMBERS = {name: number for number, name in enumerate(CAPABILITIES)}

_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def cap_number(name: str) -> int:
    """'CAP_NET_ADMIN', 'net_admin' or 'NET_ADMIN' -> 12. Unknown names are an error."""
    key = name.strip().upper()
    if not key.startswith("CAP_"):
        key = "CAP_" + key
    try:
        return _NUMBERS[key]
    except KeyError:
        raise ValueError(f"unknown capability {name!r}") from None


def cap_name(number: int) -> str:
    if 0 <= number < len(CAPABILITIES):
        return CAPABILITIES[number]
    raise ValueError(f"unknown capability number {number}")


def cap_mask(names: Iterable[str]) -> int:
    mask = 0
    for name in names:
        mask |= 1 << cap_number(name)
    return mask


def mask_names(mask: int) -> list[str]:
    return [name for number, name in enumerate(CAPABILITIES) if mask & (1 << number)]


def last_cap(proc: str = "/proc") -> int:
    """The highest capability number the running kernel knows."""
    try:
        with open(f"{proc}/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return len(CAPABILITIES) - 1


@record(frozen=True)
class CapState:
    """A thread's three capget/capset sets as bit masks."""

    effective: int
    permitted: int
    inheritable: int


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def capget(pid: int = 0) -> CapState:
    header = _Header(_LINUX_CAPABILITY_VERSION_3, pid)
    data = (_Data * 2)()
    check(libc.capget(ctypes.byref(header), data), "capget", f"pid {pid}" if pid else None)

    def join(field: str) -> int:
        return int(getattr(data[0], field)) | (int(getattr(data[1], field)) << 32)

    return CapState(join("effective"), join("permitted"), join("inheritable"))


def capset(state: CapState) -> None:
    """Set the calling thread's effective, permitted and inheritable sets."""
    header = _Header(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_Data * 2)()
    for i in range(2):
        shift = 32 * i
        data[i].effective = (state.effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (state.permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (state.inheritable >> shift) & 0xFFFFFFFF
    check(libc.capset(ctypes.byref(header), data), "capset")
