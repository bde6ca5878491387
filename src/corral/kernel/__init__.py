"""The kernel layer: the only place in Corral that calls libc or raw syscalls.

Typed wrappers; every failure becomes a `corral.errors.KernelError` that names the
operation and the object (path, pid, namespace) it acted on.
"""

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
