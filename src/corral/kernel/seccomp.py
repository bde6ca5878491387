"""seccomp filters compiled by libseccomp (loaded with ctypes, only when a filter is asked for).

libseccomp is the library every runtime uses for this (runc, crun, youki): it knows each
architecture's syscall numbers and writes a correct BPF program, so Corral does not.
"""

from __future__ import annotations

import ctypes
import os

from corral.errors import KernelError
from corral.structs import record

SCMP_ACT_KILL_PROCESS = 0x80000000
SCMP_ACT_KILL_THREAD = 0x00000000
SCMP_ACT_TRAP = 0x00030000
SCMP_ACT_NOTIFY = 0x7FC00000
SCMP_ACT_LOG = 0x7FFC0000
SCMP_ACT_ALLOW = 0x7FFF0000


def act_errno(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


def act_trace(code: int) -> int:
    return 0x7FF00000 | (code & 0xFFFF)


# libseccomp filter attributes
SCMP_FLTATR_CTL_NNP = 3
SCMP_FLTATR_CTL_TSYNC = 4
SCMP_FLTATR_CTL_LOG = 6
SCMP_FLTATR_CTL_SSB = 7
SCMP_FLTATR_CTL_WAITKILL = 12

COMPARE_OPS = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}


class _ArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


@record(frozen=True)
class ArgCmp:
    index: int
    op: int
    value: int
    value_two: int = 0


_lib: ctypes.CDLL | None = None


def library() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        name = "libseccomp.so.2"
        try:
            lib = ctypes.CDLL(name, use_errno=True)
        except OSError as err:
            raise KernelError(
                "load libseccomp", 2, name, "install Debian's libseccomp2 for seccomp filters"
            ) from err
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_init.argtypes = [ctypes.c_uint32]
        lib.seccomp_release.argtypes = [ctypes.c_void_p]
        lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
        lib.seccomp_arch_native.restype = ctypes.c_uint32
        lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_rule_add_array.argtypes = [
            ctypes.c_void_p,
            ctypes.c_uint32,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.POINTER(_ArgCmp),
        ]
        lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
        lib.seccomp_load.argtypes = [ctypes.c_void_p]
        lib.seccomp_notify_fd.argtypes = [ctypes.c_void_p]
        _lib = lib
    return _lib


def version() -> str:
    lib = library()

    class _Ver(ctypes.Structure):
        _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]

    lib.seccomp_version.restype = ctypes.POINTER(_Ver)
    v = lib.seccomp_version().contents
    return f"{v.major}.{v.minor}.{v.micro}"


class Filter:
    """A filter under construction. load() installs it in the calling thread."""

    def __init__(self, default_action: int) -> None:
        self.lib = library()
        self.ctx = self.lib.seccomp_init(ctypes.c_uint32(default_action))
        if not self.ctx:
            raise KernelError("seccomp_init", 22, None, f"default action {default_action:#x}")
        self.default_action = default_action

    def _check(self, ret: int, op: str, target: str | None = None) -> None:
        if ret < 0:
            raise KernelError(op, -ret, target)

    def add_arch(self, name: str) -> None:
        """name: libseccomp's (x86_64, x86, x32, aarch64, arm, ...)."""
        token = self.lib.seccomp_arch_resolve_name(name.encode())
        if token == 0:
            raise KernelError("seccomp arch", 22, name, "unknown architecture")
        ret = self.lib.seccomp_arch_add(self.ctx, token)
        if ret != -17:  # EEXIST: the native arch is always present
            self._check(ret, "seccomp_arch_add", name)

    def syscall_number(self, name: str) -> int | None:
        nr = self.lib.seccomp_syscall_resolve_name(name.encode())
        return None if nr == -1 else int(nr)  # __NR_SCMP_ERROR

    def add_rule(self, action: int, syscall: int, args: list[ArgCmp], name: str = "") -> None:
        arr = (_ArgCmp * max(len(args), 1))()
        for i, a in enumerate(args):
            arr[i] = _ArgCmp(a.index, a.op, a.value, a.value_two)
        ret = self.lib.seccomp_rule_add_array(self.ctx, action, syscall, len(args), arr)
        self._check(ret, "seccomp_rule_add", name or str(syscall))

    def set_attr(self, attr: int, value: int) -> None:
        self._check(self.lib.seccomp_attr_set(self.ctx, attr, value), "seccomp_attr_set", str(attr))

    def load(self) -> None:
        self._check(self.lib.seccomp_load(self.ctx), "seccomp_load")

    def notify_fd(self) -> int:
        fd = int(self.lib.seccomp_notify_fd(self.ctx))
        if fd < 0:
            raise KernelError("seccomp_notify_fd", -fd)
        return os.dup(fd)

    def release(self) -> None:
        if self.ctx:
            self.lib.seccomp_release(self.ctx)
            self.ctx = None
