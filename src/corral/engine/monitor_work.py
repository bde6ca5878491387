"""The monitor's heavy steps, run in a short-lived child it forks for each (monitor.py,
Monitor._helper): mounting, creating and starting through the runtime library, checking
for an OOM kill, deleting, removing. The child imports what they need and exits, so the
monitor that stays with the container for its whole life keeps only what it uses itself
(selectors, sockets, the log writer). A container's init forked by such a child is
re-parented to the monitor, a child subreaper, which reaps it.
"""

from __future__ import annotations

import os


def create(
    data_root: str,
    cid: str,
    runtime: str,
    stdio: tuple[int, int, int],
    pid_file: str,
    log: str,
    console: str | None,
) -> int:
    from corral.engine import lifecycle
    from corral.engine.runtimes import runtime_for
    from corral.engine.store import ContainerStore

    lifecycle.mount_rootfs(data_root, cid)
    bundle = ContainerStore(data_root).bundle(cid)
    return runtime_for(runtime).create(
        cid, bundle, stdio=stdio, pid_file=pid_file, log=log, console_socket=console
    )


def create_and_start(
    data_root: str,
    cid: str,
    runtime: str,
    stdio: tuple[int, int, int],
    pid_file: str,
    log: str,
    console: str | None,
) -> int:
    """One child for all the steps (each child pays for its imports): create, attach to
    the networks (between create and start: the init's net namespace exists, the user's
    process does not run yet), start. A terminal's master is queued on the console socket
    meanwhile; the monitor takes it afterwards."""
    from corral.engine import networking
    from corral.engine.store import ContainerStore

    spec = ContainerStore(data_root).load_spec(cid)
    networking.join_shared(data_root, cid, spec)
    pid = create(data_root, cid, runtime, stdio, pid_file, log, console)
    try:
        if spec.cgroup_params:
            apply_cgroup_params(cid, spec.cgroup_params)
        if networking.bridged(spec) and spec.networks:
            networking.attach(data_root, cid, pid)
        start(runtime, cid)
    except BaseException as err:
        err.pid = pid  # type: ignore[attr-defined]  # the monitor kills what was created
        networking.detach(data_root, cid)
        raise
    return pid


def apply_cgroup_params(cid: str, params: list[str]) -> None:
    """Write cgroup settings given as files of either version ("memory.limit_in_bytes=64M")
    into the container's group, as the host's version names them."""
    from corral.cgroups import Mode, open_manager
    from corral.cgroups.params import parse_params

    manager = open_manager(parent=os.environ.get("CORRAL_CGROUP_PARENT") or "corral")
    manager.apply(cid, parse_params(params, 2 if manager.mode == Mode.V2 else 1))


def start(runtime: str, cid: str) -> None:
    from corral.engine.runtimes import runtime_for

    runtime_for(runtime).start(cid)


def delete(runtime: str, cid: str) -> None:
    from corral.engine.runtimes import runtime_for

    runtime_for(runtime).delete(cid, force=True)


def oom_killed_then_delete(runtime: str, cid: str, data_root: str) -> bool:
    """Whether the OOM killer struck in the container's cgroup (read before the runtime
    deletes the group), then delete the runtime's container and its network endpoints."""
    oom = False
    try:
        from corral.cgroups.manager import open_manager

        parent = os.environ.get("CORRAL_CGROUP_PARENT") or "corral"
        oom = bool(open_manager(parent=parent).stats(cid).oom_kills)
    except Exception:  # no group left: nothing to report
        oom = False
    delete(runtime, cid)
    from corral.engine import networking

    networking.detach(data_root, cid)
    return oom


def oom_killed_then_remove(runtime: str, cid: str, data_root: str) -> bool:
    """--rm: the exit checks and the removal in one child."""
    oom = oom_killed_then_delete(runtime, cid, data_root)
    teardown(data_root, cid, True)
    return oom


def teardown(data_root: str, cid: str, remove: bool) -> None:
    from corral.engine import lifecycle

    if remove:
        lifecycle.remove_everything(data_root, cid, remove_volumes=True, from_monitor=True)
    else:
        lifecycle.unmount_rootfs(data_root, cid)


def health(data_root: str, cid: str, argv: list[str], timeout: float) -> list[object]:
    from corral.engine import lifecycle

    code, output = lifecycle.exec_capture(data_root, cid, argv, timeout)
    return [code, output]
