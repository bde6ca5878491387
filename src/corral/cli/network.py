"""`corral network create|ls|inspect|rm|connect|disconnect|prune`, as docker's."""

from __future__ import annotations

import argparse
import sys

from corral.errors import ConfigError

from .render import emit_json, for_each, table

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

MTU_OPTIONS = ("mtu", "com.docker.network.driver.mtu")


def _root(args: argparse.Namespace) -> str:
    from corral.cli.container import data_root

    return data_root(args)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser("network", help="manage bridge networks")
    verbs = group.add_subparsers(dest="verb", metavar="VERB", required=True)
    p = verbs.add_parser("create", help="create a bridge network")
    p.add_argument("name")
    p.add_argument("-d", "--driver", default="bridge", help="bridge (the only driver)")
    p.add_argument("--subnet", default="", help="IPv4 CIDR (default: a free /24 of the pool)")
    p.add_argument("--gateway", default="", help="the bridge's address (default: first host)")
    p.add_argument("--internal", action="store_true", help="no route out of the network")
    p.add_argument("--ipv6", action="store_true", help="not supported (IPv4 only)")
    p.add_argument("-o", "--opt", action="append", default=[], help="mtu=N")
    p.add_argument("-l", "--label", action="append", default=[])
    p.set_defaults(func=cmd_create)
    p = verbs.add_parser("ls", help="list networks")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_ls)
    p = verbs.add_parser("inspect", help="show networks as JSON")
    p.add_argument("names", nargs="+")
    p.set_defaults(func=cmd_inspect)
    p = verbs.add_parser("rm", help="remove networks no container uses")
    p.add_argument("names", nargs="+")
    p.add_argument("-f", "--force", action="store_true", help="no error for a missing network")
    p.set_defaults(func=cmd_rm)
    p = verbs.add_parser("connect", help="attach a container to a network")
    p.add_argument("--alias", action="append", default=[])
    p.add_argument("--ip", default="")
    p.add_argument("network")
    p.add_argument("container")
    p.set_defaults(func=cmd_connect)
    p = verbs.add_parser("disconnect", help="detach a container from a network")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("network")
    p.add_argument("container")
    p.set_defaults(func=cmd_disconnect)
    p = verbs.add_parser("prune", help="remove networks no container uses")
    p.add_argument("-f", "--force", action="store_true")
    p.set_defaults(func=cmd_prune)


def cmd_create(args: argparse.Namespace) -> int:
    from corral.network import networks

    if args.driver != "bridge":
        raise ConfigError(f"network driver {args.driver!r} is not supported (bridge only)")
    if args.ipv6:
        raise ConfigError("IPv6 networks are not supported yet")
    options = dict(item.partition("=")[::2] for item in args.opt)
    mtu = 1500
    for key in MTU_OPTIONS:
        if key in options:
            try:
                mtu = int(options[key])
            except ValueError:
                raise ConfigError(f"invalid MTU {options[key]!r}") from None
    unknown = set(options) - set(MTU_OPTIONS)
    if unknown:
        raise ConfigError(f"unknown network option(s): {', '.join(sorted(unknown))}")
    network = networks.create(
        _root(args),
        args.name,
        subnet=args.subnet,
        gateway=args.gateway,
        internal=args.internal,
        mtu=mtu,
        labels=dict(item.partition("=")[::2] for item in args.label),
        options=options,
    )
    print(network.id)
    return 0


def _all(root: str) -> list[Any]:
    from corral.network import networks
    from corral.network.state import NetworkState

    state = NetworkState(root)
    found = state.networks()
    if not any(n.name == "bridge" for n in found):
        with state.lock():
            found.insert(0, networks.default_network(state))
    return found


def cmd_ls(args: argparse.Namespace) -> int:
    nets = _all(_root(args))
    if args.quiet:
        for n in nets:
            print(n.id[:12])
        return 0
    rows = [(n.id[:12], n.name, "bridge", n.subnet, "internal" if n.internal else "") for n in nets]
    rows += [("-", "host", "host", "", ""), ("-", "none", "null", "", "")]
    print(table(("NETWORK ID", "NAME", "DRIVER", "SUBNET", ""), rows))
    return 0


def _find(root: str, ref: str) -> Any:
    from corral.errors import NetworkNotFound

    for n in _all(root):
        if ref in (n.name, n.id) or (len(ref) >= 3 and n.id.startswith(ref)):
            return n
    raise NetworkNotFound(f"network {ref} not found")


def inspect_network(root: str, ref: str) -> dict[str, Any]:
    from corral.network import networks
    from corral.network.state import NetworkState

    n = _find(root, ref)
    live = NetworkState(root).live()
    prefix = n.subnet.split("/")[1]
    return {
        "Name": n.name,
        "Id": n.id,
        "Created": n.created,
        "Driver": "bridge",
        "IPAM": {"Driver": "default", "Config": [{"Subnet": n.subnet, "Gateway": n.gateway}]},
        "Internal": n.internal,
        "Options": {"com.docker.network.bridge.name": n.bridge, "mtu": str(n.mtu), **n.options},
        "Labels": n.labels,
        "Containers": {
            e.container: {
                "Name": e.name,
                "IPv4Address": f"{e.ip}/{prefix}",
                "MacAddress": e.mac,
                "EndpointInterface": e.host_veth,
            }
            for e in live.on_network(n.name)
        },
        "Corral": {"Realized": networks.realized(n)},
    }


def cmd_inspect(args: argparse.Namespace) -> int:
    from corral.errors import CorralError

    root = _root(args)
    found, failed = [], 0
    for ref in args.names:
        try:
            found.append(inspect_network(root, ref))
        except CorralError as err:
            print(f"corral: error: {err}", file=sys.stderr)
            failed = 1
    emit_json(found)
    return failed


def _remove(root: str, ref: str, force: bool) -> Iterator[str]:
    from corral.engine.networking import network_users
    from corral.errors import NetworkNotFound
    from corral.network import networks

    try:
        n = _find(root, ref)
    except NetworkNotFound:
        if force:
            return
        raise
    networks.remove(root, n.name, network_users(root, n.name))
    yield ref


def cmd_rm(args: argparse.Namespace) -> int:
    root = _root(args)
    return for_each(args.names, lambda ref: _remove(root, ref, args.force))


def cmd_connect(args: argparse.Namespace) -> int:
    from corral.engine import networking
    from corral.engine.store import ContainerStore

    root = _root(args)
    n = _find(root, args.network)
    cid = ContainerStore(root).resolve(args.container)
    networking.connect(root, cid, n.name, args.alias, args.ip)
    return 0


def cmd_disconnect(args: argparse.Namespace) -> int:
    from corral.engine import networking
    from corral.engine.store import ContainerStore

    root = _root(args)
    n = _find(root, args.network)
    cid = ContainerStore(root).resolve(args.container)
    networking.disconnect(root, cid, n.name)
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    """Remove user networks no container uses (and take the default bridge down while no
    container is on it: it comes back on the next use)."""
    from corral.engine.networking import network_users
    from corral.errors import NetworkInUse
    from corral.network import networks
    from corral.network.state import NetworkState

    root = _root(args)
    removed = []
    for n in NetworkState(root).networks():
        if n.name == "bridge" or network_users(root, n.name):
            continue
        try:
            networks.remove(root, n.name)
            removed.append(n.name)
        except NetworkInUse:
            continue
    networks.release_default(root)
    if removed:
        print("Deleted Networks:")
        for name in removed:
            print(name)
    return 0
