"""The prctl(2) calls a container runtime needs."""

from __future__ import annotations

import ctypes

from ._libc import check, libc

PR_SET_PDEATHSIG = 1
PR_GET_PDEATHSIG = 2
PR_SET_DUMPABLE = 4
PR_GET_KEEPCAPS = 7
PR_SET_KEEPCAPS = 8
PR_SET_NAME = 15
PR_GET_NAME = 16
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_IS_SET = 1
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_LOWER = 3
PR_CAP_AMBIENT_CLEAR_ALL = 4

_NAMES = {
    PR_SET_PDEATHSIG: "prctl(PR_SET_PDEATHSIG)",
    PR_SET_KEEPCAPS: "prctl(PR_SET_KEEPCAPS)",
    PR_SET_NAME: "prctl(PR_SET_NAME)",
    PR_CAPBSET_DROP: "prctl(PR_CAPBSET_DROP)",
    PR_SET_CHILD_SUBREAPER: "prctl(PR_SET_CHILD_SUBREAPER)",
    PR_SET_NO_NEW_PRIVS: "prctl(PR_SET_NO_NEW_PRIVS)",
    PR_CAP_AMBIENT: "prctl(PR_CAP_AMBIENT)",
}


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    ret = libc.prctl(
        ctypes.c_int(option),
        ctypes.c_ulong(arg2),
        ctypes.c_ulong(arg3),
        ctypes.c_ulong(arg4),
        ctypes.c_ulong(arg5),
    )
    return check(int(ret), _NAMES.get(option, f"prctl({option})"))


def _int_out(option: int) -> int:
    value = ctypes.c_int(0)
    check(int(libc.prctl(ctypes.c_int(option), ctypes.byref(value), 0, 0, 0)), f"prctl({option})")
    return value.value


def bounding_set_read(cap: int) -> bool:
    return prctl(PR_CAPBSET_READ, cap) == 1


def bounding_set_drop(cap: int) -> None:
    prctl(PR_CAPBSET_DROP, cap)


def ambient_raise(cap: int) -> None:
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)


def ambient_lower(cap: int) -> None:
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_LOWER, cap)


def ambient_is_set(cap: int) -> bool:
    return prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap) == 1


def ambient_clear_all() -> None:
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)


def set_keep_caps(on: bool) -> None:
    prctl(PR_SET_KEEPCAPS, int(on))


def get_keep_caps() -> bool:
    return prctl(PR_GET_KEEPCAPS) == 1


def set_no_new_privs() -> None:
    """Irreversible: execve can no longer grant privileges (setuid bits, file caps)."""
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def get_no_new_privs() -> bool:
    return prctl(PR_GET_NO_NEW_PRIVS) == 1


def set_pdeathsig(sig: int) -> None:
    prctl(PR_SET_PDEATHSIG, sig)


def get_pdeathsig() -> int:
    return _int_out(PR_GET_PDEATHSIG)


def set_child_subreaper(on: bool = True) -> None:
    prctl(PR_SET_CHILD_SUBREAPER, int(on))


def get_child_subreaper() -> bool:
    return _int_out(PR_GET_CHILD_SUBREAPER) == 1


def set_dumpable(on: bool) -> None:
    prctl(PR_SET_DUMPABLE, int(on))


def set_name(name: str) -> None:
    """Set the calling thread's name (comm); the kernel keeps 15 bytes."""
    buf = ctypes.create_string_buffer(name.encode()[:15])
    check(int(libc.prctl(ctypes.c_int(PR_SET_NAME), buf, 0, 0, 0)), "prctl(PR_SET_NAME)", name)


def get_name() -> str:
    buf = ctypes.create_string_buffer(16)
    check(int(libc.prctl(ctypes.c_int(PR_GET_NAME), buf, 0, 0, 0)), "prctl(PR_GET_NAME)")
    return buf.value.decode(errors="replace")
