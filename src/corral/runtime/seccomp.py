"""linux.seccomp from config.json -> a libseccomp filter. Loaded only when a container asks
for one, so the start path of a container without seccomp never touches libseccomp."""

from __future__ import annotations

import errno

from corral.errors import ConfigError
from corral.kernel import seccomp as sc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": sc.SCMP_FLTATR_CTL_TSYNC,
    "SECCOMP_FILTER_FLAG_LOG": sc.SCMP_FLTATR_CTL_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": sc.SCMP_FLTATR_CTL_SSB,
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": sc.SCMP_FLTATR_CTL_WAITKILL,
}
ACTIONS = (
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
)


def action(name: str, ret: int | None, where: str) -> int:
    if name in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return sc.SCMP_ACT_KILL_THREAD
    if name == "SCMP_ACT_KILL_PROCESS":
        return sc.SCMP_ACT_KILL_PROCESS
    if name == "SCMP_ACT_TRAP":
        return sc.SCMP_ACT_TRAP
    if name == "SCMP_ACT_ERRNO":
        return sc.act_errno(errno.EPERM if ret is None else ret)
    if name == "SCMP_ACT_TRACE":
        return sc.act_trace(errno.EPERM if ret is None else ret)
    if name == "SCMP_ACT_ALLOW":
        return sc.SCMP_ACT_ALLOW
    if name == "SCMP_ACT_LOG":
        return sc.SCMP_ACT_LOG
    if name == "SCMP_ACT_NOTIFY":
        return sc.SCMP_ACT_NOTIFY
    raise ConfigError(f"config.json: {where}: unknown seccomp action {name!r}")


def validate(spec: dict[str, Any]) -> None:
    """Check names without loading libseccomp (done at create, before anything exists)."""
    action(str(spec.get("defaultAction", "")), None, "linux.seccomp.defaultAction")
    for flag in spec.get("flags") or []:
        if flag not in _FLAGS:
            raise ConfigError(f"config.json: linux.seccomp.flags: unknown flag {flag!r}")
    for i, rule in enumerate(spec.get("syscalls") or []):
        action(str(rule.get("action", "")), None, f"linux.seccomp.syscalls[{i}].action")
        for j, arg in enumerate(rule.get("args") or []):
            if arg.get("op") not in sc.COMPARE_OPS:
                where = f"linux.seccomp.syscalls[{i}].args[{j}].op"
                raise ConfigError(f"config.json: {where}: unknown operator {arg.get('op')!r}")


def build(spec: dict[str, Any]) -> sc.Filter:
    default = action(
        str(spec.get("defaultAction")), spec.get("defaultErrnoRet"), "linux.seccomp.defaultAction"
    )
    f = sc.Filter(default)
    # Corral sets no_new_privs itself when the spec asks; libseccomp must not force it.
    f.set_attr(sc.SCMP_FLTATR_CTL_NNP, 0)
    for arch in spec.get("architectures") or []:
        f.add_arch(str(arch).removeprefix("SCMP_ARCH_").lower())
    for flag in spec.get("flags") or []:
        f.set_attr(_FLAGS[flag], 1)
    for i, rule in enumerate(spec.get("syscalls") or []):
        act = action(str(rule.get("action")), rule.get("errnoRet"), f"linux.seccomp.syscalls[{i}]")
        if act == default:
            continue  # libseccomp refuses rules that repeat the default; they change nothing
        args = [
            sc.ArgCmp(
                int(a.get("index", 0)),
                sc.COMPARE_OPS[a["op"]],
                int(a.get("value", 0)),
                int(a.get("valueTwo", 0)),
            )
            for a in rule.get("args") or []
        ]
        for name in rule.get("names") or []:
            nr = f.syscall_number(name)
            if nr is None:
                continue  # unknown on this architecture or libseccomp: skipped, as runc does
            # Rules on the same argument index are ANDed by libseccomp; runc adds one rule per
            # argument when the same index appears twice (meaning OR). Do the same.
            indices = [a.index for a in args]
            if len(indices) != len(set(indices)):
                for a in args:
                    f.add_rule(act, nr, [a], name)
            else:
                f.add_rule(act, nr, args, name)
    return f


def send_listener_fd(spec: dict[str, Any], fd: int, state: dict[str, Any]) -> None:
    """SCMP_ACT_NOTIFY: hand the notify fd to the listener named in the spec."""
    import json
    import socket

    path = spec.get("listenerPath")
    if not path:
        raise ConfigError("config.json: linux.seccomp: SCMP_ACT_NOTIFY needs listenerPath")
    payload = {
        "ociVersion": state.get("ociVersion"),
        "fds": ["seccompFd"],
        "pid": state.get("pid"),
        "metadata": spec.get("listenerMetadata", ""),
        "state": state,
    }
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(path)
        socket.send_fds(s, [json.dumps(payload).encode()], [fd])
