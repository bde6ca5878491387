"""Resource limits: names as the OCI spec spells them, setrlimit / prlimit, clamping."""

from __future__ import annotations

import resource

from corral.errors import KernelError
from corral.structs import record

from ._libc import oserror

# Linux's numbering (the same on every architecture); Python's resource module lacks some.
RLIMITS: dict[str, int] = {
    "RLIMIT_CPU": 0,
    "RLIMIT_FSIZE": 1,
    "RLIMIT_DATA": 2,
    "RLIMIT_STACK": 3,
    "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5,
    "RLIMIT_NPROC": 6,
    "RLIMIT_NOFILE": 7,
    "RLIMIT_MEMLOCK": 8,
    "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10,
    "RLIMIT_SIGPENDING": 11,
    "RLIMIT_MSGQUEUE": 12,
    "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14,
    "RLIMIT_RTTIME": 15,
}
INFINITY = resource.RLIM_INFINITY


def rlimit_number(name: str) -> int:
    """'RLIMIT_NOFILE' or 'nofile' -> the resource number. Unknown names are an error."""
    key = name.strip().upper()
    if not key.startswith("RLIMIT_"):
        key = "RLIMIT_" + key
    try:
        return RLIMITS[key]
    except KeyError:
        raise ValueError(f"unknown rlimit {name!r}") from None


@record(frozen=True)
class Clamped:
    """What clamp_to_hard decided: the limits to apply and whether they were lowered."""

    soft: int
    hard: int
    lowered: bool


def _le(a: int, b: int) -> bool:
    """a <= b where INFINITY (-1 in Python's resource module) is the largest value."""
    if b == INFINITY:
        return True
    if a == INFINITY:
        return False
    return a <= b


def clamp_to_hard(soft: int, hard: int, current_hard: int) -> Clamped:
    """Without CAP_SYS_RESOURCE a hard limit cannot be raised: lower the request to fit."""
    lowered = False
    if not _le(hard, current_hard):
        hard, lowered = current_hard, True
    if not _le(soft, hard):
        soft, lowered = hard, True
    return Clamped(soft, hard, lowered)


def getrlimit(resource_number: int) -> tuple[int, int]:
    return resource.getrlimit(resource_number)


def setrlimit(resource_number: int, soft: int, hard: int) -> None:
    try:
        resource.setrlimit(resource_number, (soft, hard))
    except (OSError, ValueError) as err:
        errno = err.errno if isinstance(err, OSError) and err.errno else 1
        raise KernelError("setrlimit", errno, _name(resource_number), f"{soft}:{hard}") from err


def prlimit(
    pid: int, resource_number: int, limits: tuple[int, int] | None = None
) -> tuple[int, int]:
    """Get (and with `limits`, set) another process's limit; returns the previous value."""
    try:
        if limits is None:
            return resource.prlimit(pid, resource_number)
        return resource.prlimit(pid, resource_number, limits)
    except OSError as err:
        raise oserror("prlimit", err, f"pid {pid} {_name(resource_number)}") from err
    except ValueError as err:
        raise KernelError("prlimit", 1, f"pid {pid} {_name(resource_number)}", str(err)) from err


def _name(number: int) -> str:
    for name, value in RLIMITS.items():
        if value == number:
            return name
    return str(number)
