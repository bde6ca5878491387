"""`corral volume create|ls|inspect|rm|prune`, and `corral system prune|info` and `version`."""

from __future__ import annotations

import argparse
import os

from .render import emit_json, for_each, table


def _root(args: argparse.Namespace) -> str:
    from corral.cli.container import data_root

    return data_root(args)


def volume_users(root: str, name: str) -> list[str]:
    from corral.engine.store import ContainerStore

    return [
        cid
        for cid, spec in ContainerStore(root).specs()
        if any(m["type"] == "volume" and m.get("source") == name for m in spec.mounts)
    ]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser("volume", help="manage named volumes")
    verbs = group.add_subparsers(dest="verb", metavar="VERB", required=True)
    p = verbs.add_parser("create", help="create a volume")
    p.add_argument("name", nargs="?", default="")
    p.add_argument("-l", "--label", action="append", default=[])
    p.set_defaults(func=cmd_create)
    p = verbs.add_parser("ls", help="list volumes")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_ls)
    p = verbs.add_parser("inspect", help="show volumes as JSON")
    p.add_argument("names", nargs="+")
    p.set_defaults(func=cmd_inspect)
    p = verbs.add_parser("rm", help="remove volumes no container uses")
    p.add_argument("names", nargs="+")
    p.add_argument("-f", "--force", action="store_true", help="no error for a missing volume")
    p.set_defaults(func=cmd_rm)
    p = verbs.add_parser("prune", help="remove every volume no container uses")
    p.add_argument("-f", "--force", action="store_true")
    p.set_defaults(func=cmd_prune)

    system = sub.add_parser("system", help="prune, info")
    verbs = system.add_subparsers(dest="verb", metavar="VERB", required=True)
    p = verbs.add_parser(
        "prune", help="remove stopped containers, unused networks, dangling images (-a: unused)"
    )
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("--volumes", action="store_true")
    p.add_argument("-f", "--force", action="store_true")
    p.set_defaults(func=cmd_system_prune)
    p = verbs.add_parser("info", help="what Corral sees of this host")
    p.set_defaults(func=cmd_info)
    p = sub.add_parser("info", help="what Corral sees of this host")
    p.set_defaults(func=cmd_info)
    p = sub.add_parser("version", help="Corral's version and its runtime's")
    p.set_defaults(func=cmd_version)


def cmd_create(args: argparse.Namespace) -> int:
    from corral.engine.volumes import Volumes

    labels = dict(item.partition("=")[::2] for item in args.label)
    print(Volumes(_root(args)).create(args.name, labels))
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    from corral.engine.volumes import Volumes

    names = Volumes(_root(args)).names()
    if args.quiet:
        print("\n".join(names)) if names else None
        return 0
    print(table(["DRIVER", "VOLUME NAME"], [["local", n] for n in names]))
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from corral.engine.volumes import Volumes

    volumes = Volumes(_root(args))
    emit_json([volumes.inspect(n) for n in args.names])
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    from corral.engine.volumes import Volumes

    root = _root(args)
    volumes = Volumes(root)

    def remove(name: str) -> list[str]:
        volumes.remove(name, volume_users(root, name), force=args.force)
        return [name]

    return for_each(args.names, remove)


def cmd_prune(args: argparse.Namespace) -> int:
    from corral.engine.volumes import Volumes

    root = _root(args)
    volumes = Volumes(root)
    removed = []
    for name in volumes.names():
        if not volume_users(root, name):
            volumes.remove(name, [])
            removed.append(name)
    if removed:
        print("Deleted Volumes:\n" + "\n".join(removed))
    return 0


def cmd_system_prune(args: argparse.Namespace) -> int:
    from corral.engine import lifecycle
    from corral.engine.model import Status
    from corral.engine.store import ContainerStore

    root = _root(args)
    store = ContainerStore(root)
    removed = []
    for cid in store.ids():
        if lifecycle.current(store, cid).status in (Status.EXITED, Status.CREATED, Status.DEAD):
            lifecycle.remove_everything(root, cid)
            removed.append(cid)
    if removed:
        print("Deleted Containers:\n" + "\n".join(removed) + "\n")
    if args.volumes:
        cmd_prune(args)
    from corral.cli.network import cmd_prune as prune_networks

    prune_networks(args)  # as docker: unused user networks go too
    from corral.image.store import Store

    deleted, reclaimed = Store(os.path.join(root, "image")).prune(all_unused=args.all)
    if deleted:
        print("Deleted Images:\n" + "\n".join(f"deleted: {d}" for d in deleted) + "\n")
    from corral.cli.image import human

    print(f"Total reclaimed space: {human(reclaimed)}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from corral.cgroups import detect
    from corral.engine import lifecycle
    from corral.engine.runtimes import default_runtime
    from corral.engine.store import ContainerStore

    root = _root(args)
    store = ContainerStore(root)
    states = [lifecycle.current(store, cid).status for cid in store.ids()]
    from corral.image.store import Store

    layout = detect()
    emit_json(
        {
            "Containers": len(states),
            "ContainersRunning": states.count("running"),
            "ContainersPaused": states.count("paused"),
            "ContainersStopped": states.count("exited") + states.count("created"),
            "Images": len(Store(os.path.join(root, "image")).images()),
            "Driver": "overlay",
            "LoggingDriver": "json-file",
            "CgroupVersion": "2" if layout.mode == "v2" else "1",
            "CgroupMode": layout.mode,
            "DefaultRuntime": default_runtime(),
            "KernelVersion": os.uname().release,
            "OperatingSystem": _os_name(),
            "DataRoot": root,
            "NCPU": os.cpu_count(),
        }
    )
    return 0


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def cmd_version(args: argparse.Namespace) -> int:
    import subprocess

    from corral import __version__
    from corral.engine.runtimes import default_runtime

    runtime = subprocess.run([default_runtime(), "--version"], capture_output=True, text=True)
    print(f"Corral version {__version__}")
    print(runtime.stdout.strip())
    return 0
