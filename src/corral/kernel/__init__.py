"""The kernel layer: the only place in Corral that calls libc or raw syscalls.

Typed wrappers; every failure becomes a `corral.errors.KernelError` that names the
operation and the object (path, pid, namespace) it acted on. Submodules load on first
use: the container start path imports only the ones it calls.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False
if TYPE_CHECKING:
    from . import caps, mount, namespaces, prctl, process, rlimit
    from .caps import CapState, cap_mask, cap_name, cap_number, capget, capset, mask_names
    from .mount import (
        MountOptions,
        mount_setattr,
        move_mount,
        open_tree,
        parse_mount_options,
        pivot_root,
        statfs_type,
        umount2,
    )
    from .mount import mount as mount_fs
    from .namespaces import (
        NAMESPACE_FLAGS,
        namespace_flag,
        namespace_id,
        parse_namespace_flags,
        setns,
        setns_path,
        unshare,
    )
    from .process import (
        mknod,
        pidfd_open,
        pidfd_send_signal,
        process_exists,
        process_start_time,
        require_pid,
        setdomainname,
        sethostname,
    )
    from .rlimit import clamp_to_hard, getrlimit, prlimit, rlimit_number, setrlimit

_WHERE = {
    "CapState": "caps",
    "cap_mask": "caps",
    "cap_name": "caps",
    "cap_number": "caps",
    "capget": "caps",
    "capset": "caps",
    "mask_names": "caps",
    "MountOptions": "mount",
    "mount_setattr": "mount",
    "move_mount": "mount",
    "open_tree": "mount",
    "parse_mount_options": "mount",
    "pivot_root": "mount",
    "statfs_type": "mount",
    "umount2": "mount",
    "NAMESPACE_FLAGS": "namespaces",
    "namespace_flag": "namespaces",
    "namespace_id": "namespaces",
    "parse_namespace_flags": "namespaces",
    "setns": "namespaces",
    "setns_path": "namespaces",
    "unshare": "namespaces",
    "mknod": "process",
    "pidfd_open": "process",
    "pidfd_send_signal": "process",
    "process_exists": "process",
    "process_start_time": "process",
    "require_pid": "process",
    "setdomainname": "process",
    "sethostname": "process",
    "clamp_to_hard": "rlimit",
    "getrlimit": "rlimit",
    "prlimit": "rlimit",
    "rlimit_number": "rlimit",
    "setrlimit": "rlimit",
}
__all__ = [
    "NAMESPACE_FLAGS",
    "CapState",
    "MountOptions",
    "cap_mask",
    "cap_name",
    "cap_number",
    "capget",
    "caps",
    "capset",
    "clamp_to_hard",
    "getrlimit",
    "mask_names",
    "mknod",
    "mount",
    "mount_fs",
    "mount_setattr",
    "move_mount",
    "namespace_flag",
    "namespace_id",
    "namespaces",
    "open_tree",
    "parse_mount_options",
    "parse_namespace_flags",
    "pidfd_open",
    "pidfd_send_signal",
    "pivot_root",
    "prctl",
    "prlimit",
    "process",
    "process_exists",
    "process_start_time",
    "require_pid",
    "rlimit",
    "rlimit_number",
    "setdomainname",
    "sethostname",
    "setns",
    "setns_path",
    "setrlimit",
    "statfs_type",
    "umount2",
    "unshare",
]
_SUBMODULES = {"caps", "mount", "namespaces", "prctl", "process", "rlimit", "seccomp"}


def __getattr__(name: str) -> object:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name == "mount_fs":
        return importlib.import_module(f"{__name__}.mount").mount
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
