"""The process `exec` runs: from --process FILE (an OCI process object), or the container's
own process with the command line's overrides (args, env, cwd, user, caps), as runc does."""

from __future__ import annotations

import json

from corral.errors import ConfigError
from corral.kernel.caps import cap_mask
from corral.structs import replace

from .config import Capabilities, Process, User, _process, _Reader

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

if TYPE_CHECKING:
    from .container import Runtime


def build_exec_process(
    rt: Runtime, container_id: str, opts: dict[str, Any], args: list[str]
) -> Process:
    if opts.get("process"):
        try:
            with open(opts["process"]) as f:
                data = json.load(f)
        except (OSError, ValueError) as err:
            raise ConfigError(f"cannot read process file {opts['process']!r}: {err}") from err
        proc = _process(_Reader(data, "process"))
        if opts.get("tty"):
            proc = replace(proc, terminal=True)
        return proc
    if not args:
        raise ConfigError("exec: no command given (args or --process)")
    state = rt.store.load(container_id)
    base = rt.config(state).process
    if base is None:
        base = Process(args=tuple(args))
    env = list(base.env)
    for entry in opts.get("env", []):
        if "=" not in entry:
            raise ConfigError(f"exec --env {entry!r}: expected NAME=VALUE")
        name = entry.split("=", 1)[0]
        env = [e for e in env if not e.startswith(name + "=")] + [entry]
    user = base.user
    if opts.get("user"):
        uid_s, _, gid_s = opts["user"].partition(":")
        try:
            user = User(uid=int(uid_s), gid=int(gid_s) if gid_s else 0, umask=base.user.umask)
        except ValueError:
            raise ConfigError(f"exec --user {opts['user']!r}: expected UID[:GID] numbers") from None
    if opts.get("additional-gids"):
        try:
            gids = tuple(int(g) for g in opts["additional-gids"])
        except ValueError:
            raise ConfigError("exec --additional-gids: expected numbers") from None
        user = replace(user, additional_gids=gids)
    caps = base.capabilities
    if opts.get("cap"):
        try:
            extra = cap_mask(opts["cap"])
        except ValueError as err:
            raise ConfigError(f"exec --cap: {err}") from None
        c = caps or Capabilities()
        caps = Capabilities(
            c.bounding | extra,
            c.effective | extra,
            c.permitted | extra,
            c.inheritable | extra,
            c.ambient | extra,
        )
    return replace(
        base,
        args=tuple(args),
        env=tuple(env),
        cwd=opts.get("cwd") or base.cwd,
        user=user,
        terminal=bool(opts.get("tty")),
        console_size=None,
        capabilities=caps,
        no_new_privileges=bool(opts.get("no-new-privs")) or base.no_new_privileges,
        apparmor_profile=opts.get("apparmor") or base.apparmor_profile,
        oom_score_adj=None,
    )
