"""The bpf(2) calls Corral needs: load a cgroup device program and attach it to a cgroup
(cgroup v2 has no devices.allow/deny files; an eBPF program decides instead)."""

from __future__ import annotations

import ctypes
import os

from corral.errors import KernelError

from ._libc import syscall

BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6


class _ProgLoad(ctypes.Structure):
    _fields_ = [
        ("prog_type", ctypes.c_uint32),
        ("insn_cnt", ctypes.c_uint32),
        ("insns", ctypes.c_uint64),
        ("license", ctypes.c_uint64),
        ("log_level", ctypes.c_uint32),
        ("log_size", ctypes.c_uint32),
        ("log_buf", ctypes.c_uint64),
        ("kern_version", ctypes.c_uint32),
        ("prog_flags", ctypes.c_uint32),
        ("prog_name", ctypes.c_char * 16),
        ("prog_ifindex", ctypes.c_uint32),
        ("expected_attach_type", ctypes.c_uint32),
    ]


class _ProgAttach(ctypes.Structure):
    _fields_ = [
        ("target_fd", ctypes.c_uint32),
        ("attach_bpf_fd", ctypes.c_uint32),
        ("attach_type", ctypes.c_uint32),
        ("attach_flags", ctypes.c_uint32),
        ("replace_bpf_fd", ctypes.c_uint32),
    ]


def load_device_program(code: bytes, name: str = "corral_dev") -> int:
    """Load a BPF_PROG_TYPE_CGROUP_DEVICE program; returns its fd. The verifier's log is
    part of the error if the kernel refuses it.

    Loaded without a log first: with one, a verifier whose log outgrows the buffer fails
    the load with ENOSPC even for a valid program (seen with a few device rules). Only a
    refused program is loaded again, with a large log, to say why."""
    try:
        return _prog_load(code, name, None)
    except KernelError as err:
        log = ctypes.create_string_buffer(1 << 20)
        try:
            _prog_load(code, name, log)
        except KernelError:
            pass
        detail = log.value.decode(errors="replace").strip()
        raise KernelError("bpf(BPF_PROG_LOAD)", err.errno, "device program", detail[-300:]) from err


def _prog_load(code: bytes, name: str, log: ctypes.Array[ctypes.c_char] | None) -> int:
    insns = ctypes.create_string_buffer(code, len(code))
    license_ = ctypes.create_string_buffer(b"Apache")
    attr = _ProgLoad(
        prog_type=BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt=len(code) // 8,
        insns=ctypes.addressof(insns),
        license=ctypes.addressof(license_),
        log_level=1 if log is not None else 0,
        log_size=len(log) if log is not None else 0,
        log_buf=ctypes.addressof(log) if log is not None else 0,
        prog_name=name.encode()[:15],
        expected_attach_type=BPF_CGROUP_DEVICE,
    )
    return syscall(
        "bpf",
        ctypes.c_int(BPF_PROG_LOAD),
        ctypes.byref(attr),
        ctypes.c_uint(ctypes.sizeof(attr)),
        target="device program",
    )


def attach_device_program(cgroup_dir: str, prog_fd: int) -> None:
    """Attach to the cgroup (replacing a program attached before without flags)."""
    fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        attr = _ProgAttach(target_fd=fd, attach_bpf_fd=prog_fd, attach_type=BPF_CGROUP_DEVICE)
        syscall(
            "bpf",
            ctypes.c_int(BPF_PROG_ATTACH),
            ctypes.byref(attr),
            ctypes.c_uint(ctypes.sizeof(attr)),
            target=cgroup_dir,
        )
    finally:
        os.close(fd)
