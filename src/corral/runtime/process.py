"""The container process's identity and limits, applied in the container right before exec:
rlimits, oom_score_adj, user and groups, capabilities, no_new_privileges, cwd, umask.

The order is runc's (finalizeNamespace): drop the bounding set while still privileged, keep
capabilities across setuid, switch user, chdir as that user, then set the final sets.
"""

from __future__ import annotations

import os
import stat

from corral.errors import ContainerError, KernelError
from corral.kernel import prctl
from corral.kernel.caps import CapState, capset, last_cap
from corral.kernel.process import PER_LINUX, PER_LINUX32, personality
from corral.kernel.rlimit import clamp_to_hard, getrlimit, setrlimit

from .config import Capabilities, Process

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ExecNotFound(ContainerError):
    exit_code = 127


class ExecNotPermitted(ContainerError):
    exit_code = 126


def env_value(env: tuple[str, ...] | list[str], name: str) -> str | None:
    prefix = name + "="
    for entry in reversed(env):
        if entry.startswith(prefix):
            return entry[len(prefix) :]
    return None


def find_executable(name: str, env: tuple[str, ...] | list[str]) -> str:
    """The program to exec, looked up in the container's PATH (as runc does before start,
    so that a missing program fails `create`, not silently after `start`)."""
    if "/" in name:
        candidates = [name]
    else:
        path = env_value(env, "PATH") or DEFAULT_PATH
        candidates = [os.path.join(d or ".", name) for d in path.split(":")]
    found_not_exec = None
    for candidate in candidates:
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            if os.access(candidate, os.X_OK):
                return candidate
            found_not_exec = candidate
    if found_not_exec:
        raise ExecNotPermitted(f"exec {found_not_exec}: permission denied")
    if "/" in name:
        raise ExecNotFound(f"exec {name}: no such file or directory")
    raise ExecNotFound(f"exec: {name!r}: executable file not found in $PATH")


def apply_rlimits(proc: Process, warn: Callable[[str], None]) -> None:
    for r in proc.rlimits:
        _, current_hard = getrlimit(r.resource)
        c = clamp_to_hard(r.soft, r.hard, current_hard)
        if c.lowered:
            warn(
                f"{r.name} {r.soft}:{r.hard} exceeds the hard limit {current_hard} this runtime "
                f"may set (no CAP_SYS_RESOURCE); using {c.soft}:{c.hard}"
            )
        setrlimit(r.resource, c.soft, c.hard)


def apply_oom_score_adj(value: int | None) -> None:
    if value is None:
        return
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(value))
    except OSError as err:
        hint = " (lowering it needs CAP_SYS_RESOURCE)" if value < 0 else ""
        raise ContainerError(f"oomScoreAdj {value}: {err.strerror}{hint}") from err


def apply_personality(domain: str | None) -> None:
    if domain is not None:
        personality(PER_LINUX32 if domain == "LINUX32" else PER_LINUX)


def check_lsm(proc: Process) -> None:
    if proc.apparmor_profile and not os.path.isdir("/sys/kernel/security/apparmor"):
        raise ContainerError(
            f"apparmorProfile {proc.apparmor_profile!r} was requested, but AppArmor is not "
            "enabled on this host"
        )
    if proc.selinux_label and not os.path.isdir("/sys/fs/selinux"):
        raise ContainerError(
            f"selinuxLabel {proc.selinux_label!r} was requested, but SELinux is not enabled "
            "on this host"
        )


def drop_bounding(caps: Capabilities) -> None:
    for cap in range(last_cap() + 1):
        if not caps.bounding & (1 << cap):
            try:
                prctl.bounding_set_drop(cap)
            except KernelError as err:
                if err.errno != 22:  # EINVAL: the kernel does not know this capability
                    raise


def switch_user(proc: Process) -> None:
    u = proc.user
    try:
        # setgroups is refused in a user namespace whose setgroups is "deny"; runc skips it.
        if _setgroups_allowed():
            os.setgroups(list(u.additional_gids))
        os.setresgid(u.gid, u.gid, u.gid)
        os.setresuid(u.uid, u.uid, u.uid)
    except OSError as err:
        raise ContainerError(f"cannot switch to uid {u.uid} gid {u.gid}: {err.strerror}") from err


def _setgroups_allowed() -> bool:
    try:
        with open("/proc/self/setgroups") as f:
            return f.read().strip() != "deny"
    except OSError:
        return True


def set_capabilities(caps: Capabilities) -> None:
    capset(CapState(caps.effective, caps.permitted, caps.inheritable))
    prctl.ambient_clear_all()
    for cap in range(last_cap() + 1):
        if caps.ambient & (1 << cap):
            try:
                prctl.ambient_raise(cap)
            except KernelError as err:
                # Ambient needs the cap in permitted and inheritable; runc ignores failures.
                if err.errno not in (1, 22):
                    raise


def finalize(proc: Process) -> None:
    """User, capabilities, cwd and umask. Call last before waiting for start."""
    check_lsm(proc)
    if proc.capabilities is not None:
        drop_bounding(proc.capabilities)
    prctl.set_keep_caps(True)
    switch_user(proc)
    try:
        os.chdir(proc.cwd)
    except OSError as err:
        raise ContainerError(f"cannot chdir to {proc.cwd}: {err.strerror}") from err
    if proc.capabilities is not None:
        set_capabilities(proc.capabilities)
    prctl.set_keep_caps(False)
    if proc.user.umask is not None:
        os.umask(proc.user.umask)
    else:
        os.umask(0o022)


def build_env(proc: Process) -> list[str]:
    env = list(proc.env)
    if env_value(env, "HOME") is None:
        env.append("HOME=" + _home_of(proc.user.uid))
    if env_value(env, "PATH") is None:
        env.append("PATH=" + DEFAULT_PATH)
    return env


def _home_of(uid: int) -> str:
    try:
        with open("/etc/passwd") as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if len(fields) >= 6 and fields[2] == str(uid):
                    return fields[5] or "/"
    except OSError:
        pass
    return "/"
