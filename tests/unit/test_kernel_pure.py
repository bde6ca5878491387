"""The kernel layer's pure parts: tables, flag parsing, error mapping."""

from __future__ import annotations

import errno

import pytest

from corral.errors import KernelError
from corral.kernel import caps, mount, namespaces, rlimit


def test_capability_tables_round_trip() -> None:
    assert caps.cap_number("CAP_CHOWN") == 0
    assert caps.cap_number("net_admin") == 12
    assert caps.cap_number("SYS_ADMIN") == 21
    assert caps.cap_number("CAP_CHECKPOINT_RESTORE") == 40
    for number, name in enumerate(caps.CAPABILITIES):
        assert caps.cap_number(name) == number
        assert caps.cap_name(number) == name
    assert caps.mask_names(caps.cap_mask(["CAP_KILL", "CAP_CHOWN"])) == ["CAP_CHOWN", "CAP_KILL"]


def test_unknown_capability_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown capability 'CAP_FLY'"):
        caps.cap_number("CAP_FLY")
    with pytest.raises(ValueError):
        caps.cap_name(99)


def test_namespace_flags() -> None:
    assert len(namespaces.NAMESPACE_FLAGS) == 8
    flags = namespaces.parse_namespace_flags(["pid", "net", "mnt", "time"])
    assert flags == (
        namespaces.CLONE_NEWPID
        | namespaces.CLONE_NEWNET
        | namespaces.CLONE_NEWNS
        | namespaces.CLONE_NEWTIME
    )
    assert set(namespaces.flag_names(flags)) == {"pid", "network", "mount", "time"}
    with pytest.raises(ValueError, match="unknown namespace type 'bogus'"):
        namespaces.namespace_flag("bogus")


def test_mount_option_parsing() -> None:
    opts = mount.parse_mount_options(["nosuid", "noexec", "ro", "rprivate", "size=64k", "mode=755"])
    assert opts.flags == mount.MS_NOSUID | mount.MS_NOEXEC | mount.MS_RDONLY
    assert opts.propagation == mount.MS_PRIVATE | mount.MS_REC
    assert opts.data == "size=64k,mode=755"
    # Later words win, as mount(8) does.
    assert mount.parse_mount_options(["ro", "rw"]).flags == 0
    assert mount.parse_mount_options(["rbind"]).flags == mount.MS_BIND | mount.MS_REC
    with pytest.raises(ValueError):
        mount.propagation_flag("sideways")


def test_kernel_error_names_operation_path_and_errno() -> None:
    err = KernelError("mount tmpfs", errno.ENOENT, "/no/such/dir")
    assert str(err) == "mount tmpfs `/no/such/dir`: No such file or directory [ENOENT]"
    assert err.errno == errno.ENOENT
    assert (
        str(KernelError("setns", errno.EINVAL, "fd 3")) == "setns `fd 3`: Invalid argument [EINVAL]"
    )


def test_rlimit_names_and_clamping() -> None:
    assert rlimit.rlimit_number("RLIMIT_NOFILE") == 7
    assert rlimit.rlimit_number("nproc") == 6
    with pytest.raises(ValueError):
        rlimit.rlimit_number("RLIMIT_FUN")
    inf = rlimit.INFINITY
    assert rlimit.clamp_to_hard(100, 200, 150) == rlimit.Clamped(100, 150, True)
    assert rlimit.clamp_to_hard(300, 400, 150) == rlimit.Clamped(150, 150, True)
    assert rlimit.clamp_to_hard(10, 20, inf) == rlimit.Clamped(10, 20, False)
    assert rlimit.clamp_to_hard(inf, inf, 1024) == rlimit.Clamped(1024, 1024, True)
