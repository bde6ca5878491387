"""A container on its networks: set up when it starts, torn down when it stops.

setup() records the endpoints and port bindings first (under the state lock), then acts:
veth pairs into the container's net namespace, DNAT rules, hosts files. Anything that fails
is undone before the error is raised. Records name the container's init, so the leftovers
of a container that died unobserved (its monitor killed with -9, the host's power cut) are
reclaimed by the next command that takes the lock: `reclaim_stale`.
"""

from __future__ import annotations

import os

from corral.errors import NetworkError
from corral.kernel.identity import process_alive
from corral.network import hosts, ipam, networks, rtnl, settings
from corral.network.model import Endpoint, Network, PortBinding
from corral.network.state import Live, NetworkState
from corral.structs import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


@record
class Attachment:
    """One network a container asks for: --network NAME [--network-alias A] [--ip IP]."""

    network: str
    aliases: list[str]
    ip: str = ""
    ifname: str = ""  # inside; default eth0, eth1, ... in order
    mac: str = ""  # default 02:42 + the address
    mtu: int = 0  # default the network's
    gateway: str = ""  # "" or "auto": the network's; anything else must be it
    up: bool = True  # LXC: lxc.net.N.flags = up


@record
class Owner:
    """The container being attached."""

    id: str
    name: str
    hostname: str
    pid: int  # its init: the net namespace to configure
    pid_start: int
    hosts_file: str = ""  # its /etc/hosts on the host ("" leaves hosts alone)


def host_veth(cid: str, index: int) -> str:
    return f"{settings.VETH_PREFIX}{cid[:11]}{index}"


def setup(
    data_root: str,
    owner: Owner,
    attachments: list[Attachment],
    port_requests: list[dict[str, Any]],
    *,
    fresh: bool = True,
) -> tuple[list[Endpoint], list[PortBinding]]:
    """Attach the container to its networks and publish its ports. All or nothing.
    `fresh`: the container starts (whatever it had before is gone); otherwise it is
    running and gains these networks (`corral network connect`)."""
    state = NetworkState(data_root)
    with state.lock():
        live = state.live()
        reclaim_stale(state, live)
        if fresh and (
            live.of_container(owner.id) or any(p.container == owner.id for p in live.ports)
        ):
            _undo(state, live, owner.id)  # left by a start that was killed: start from nothing
        have = live.of_container(owner.id)
        for attachment in attachments:
            if any(e.network == attachment.network for e in have):
                raise NetworkError(
                    f"container {owner.name} is already on network {attachment.network}"
                )
        nets = [networks.lookup(state, a.network) for a in attachments]
        for net in nets:
            networks.realize(net)
        used = {e.ip for e in live.endpoints}
        taken_ifnames = {e.ifname for e in have}
        made: list[Endpoint] = []
        index = 0
        for attachment, net in zip(attachments, nets, strict=True):
            _check_overrides(attachment, net)
            while f"eth{index}" in taken_ifnames:
                index += 1
            ip = ipam.allocate(net.subnet, net.gateway, used, attachment.ip)
            used.add(ip)
            endpoint = _endpoint(owner, attachment, net, ip, index)
            if endpoint.ifname in taken_ifnames:
                raise NetworkError(f"two interfaces named {endpoint.ifname} in one container")
            taken_ifnames.add(endpoint.ifname)
            made.append(endpoint)
            index += 1
        bindings = _bindings(owner, made, nets, port_requests, live)
        live.endpoints += made
        live.ports += bindings
        state.save_live(live)  # recorded before acting: a crash now is reclaimable
        try:
            _act(owner, made, nets, attachments, bindings, routed=fresh)
            state.save_live(live)  # with the MAC addresses
            _refresh_hosts(state, live, {e.network for e in made})
        except BaseException:
            if fresh:
                _undo(state, live, owner.id)
            else:
                _undo_endpoints(state, live, made)
            raise
    return made, bindings


def _endpoint(owner: Owner, attachment: Attachment, net: Network, ip: str, index: int) -> Endpoint:
    return Endpoint(
        network=net.name,
        container=owner.id,
        name=owner.name,
        aliases=list(attachment.aliases),
        ip=ip,
        host_veth=host_veth(owner.id, index),
        ifname=attachment.ifname or f"eth{index}",
        pid=owner.pid,
        pid_start=owner.pid_start,
        hostname=owner.hostname,
        hosts_file=owner.hosts_file,
    )


def _check_overrides(attachment: Attachment, net: Network) -> None:
    import re

    if attachment.ifname and not re.match(r"^[A-Za-z0-9_.-]{1,15}$", attachment.ifname):
        raise NetworkError(f"invalid interface name {attachment.ifname!r}")
    if attachment.mac:
        if not re.match(r"^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$", attachment.mac):
            raise NetworkError(f"invalid MAC address {attachment.mac!r}")
        if int(attachment.mac[:2], 16) & 1:
            raise NetworkError(f"MAC address {attachment.mac} is a multicast address")
    if attachment.mtu and not 68 <= attachment.mtu <= 65535:
        raise NetworkError(f"invalid MTU {attachment.mtu}")
    if attachment.gateway not in ("", "auto", net.gateway):
        raise NetworkError(
            f"gateway {attachment.gateway}: the gateway of network {net.name} is {net.gateway}"
        )


def _bindings(
    owner: Owner,
    made: list[Endpoint],
    nets: list[Network],
    requests: list[dict[str, Any]],
    live: Live,
) -> list[PortBinding]:
    if not requests:
        return []
    from corral.network import ports  # random and socket: only for containers with ports

    if not made:
        raise NetworkError("published ports need a bridge network")
    if nets[0].internal:
        raise NetworkError(f"cannot publish ports on the internal network {nets[0].name}")
    taken = [(p.proto, p.host_ip, p.host_port) for p in live.ports]
    return [
        PortBinding(
            container=owner.id,
            proto=proto,
            host_ip=host_ip,
            host_port=host_port,
            container_ip=made[0].ip,
            container_port=container_port,
            pid=owner.pid,
            pid_start=owner.pid_start,
        )
        for proto, host_ip, host_port, container_port in ports.assign(requests, taken)
    ]


def _act(
    owner: Owner,
    made: list[Endpoint],
    nets: list[Network],
    attachments: list[Attachment],
    bindings: list[PortBinding],
    *,
    routed: bool,
) -> None:
    from corral.network import nft

    for endpoint, net, attachment in zip(made, nets, attachments, strict=True):
        # A starting container's first network routes out (not an --internal one);
        # networks connected later add no route.
        first = routed and endpoint is made[0]
        gateway = net.gateway if first and not net.internal else None
        endpoint.mac = rtnl.add_endpoint(
            owner.pid,
            endpoint.host_veth,
            net.bridge,
            endpoint.ifname,
            endpoint.ip,
            ipam.parse_subnet(net.subnet).prefixlen,
            gateway,
            attachment.mtu or net.mtu,
            attachment.mac.lower(),
            attachment.up,
        )
    nft.apply(nft.port_lines(bindings))


def teardown(data_root: str, cid: str) -> None:
    """Everything of the container's on every network: veths, ports, records, and its line
    in its peers' hosts files. Nothing there is not an error."""
    state = NetworkState(data_root)
    with state.lock():
        live = state.live()
        if not live.of_container(cid) and not any(p.container == cid for p in live.ports):
            return  # the common case for --network none/host: no netlink, no nft
        _undo(state, live, cid)


def _undo(state: NetworkState, live: Live, cid: str) -> None:
    from corral.network import nft

    mine = live.of_container(cid)
    for endpoint in mine:
        if process_alive(endpoint.pid, endpoint.pid_start):
            rtnl.delete_link(endpoint.host_veth)  # its namespace lives on: delete now
        else:
            _remove_veth(endpoint.host_veth)
    if any(p.container == cid for p in live.ports):
        nft.delete_tagged({f"ctr:{cid}"})
    _forget(live, cid)
    state.save_live(live)
    _refresh_hosts(state, live, {e.network for e in mine})


def _remove_veth(name: str) -> None:
    """Delete a host-side veth. When the container's net namespace died with its init, the
    kernel removes the pair itself a moment later: wait briefly for that instead of
    loading pyroute2 (~120 ms) to do it."""
    import time

    path = f"/sys/class/net/{name}"
    deadline = time.monotonic() + 0.05
    while os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.002)
    if os.path.exists(path):
        rtnl.delete_link(name)


def _undo_endpoints(state: NetworkState, live: Live, endpoints: list[Endpoint]) -> None:
    for endpoint in endpoints:
        _remove_veth(endpoint.host_veth)
    live.endpoints = [e for e in live.endpoints if e not in endpoints]
    state.save_live(live)
    _refresh_hosts(state, live, {e.network for e in endpoints})


def _forget(live: Live, cid: str) -> None:
    live.endpoints = [e for e in live.endpoints if e.container != cid]
    live.ports = [p for p in live.ports if p.container != cid]


def reclaim_stale(state: NetworkState, live: Live) -> list[str]:
    """Undo what belongs to containers whose init is gone. Returns their ids."""
    dead_endpoints, dead_ports = live.stale()
    owners = {e.container for e in dead_endpoints} | {p.container for p in dead_ports}
    for cid in sorted(owners):
        _undo(state, live, cid)
    return sorted(owners)


def disconnect(data_root: str, cid: str, network: str) -> None:
    """Take a running container off one network (its other endpoints stay)."""
    from corral.network import nft

    state = NetworkState(data_root)
    with state.lock():
        live = state.live()
        gone = [e for e in live.of_container(cid) if e.network == network]
        for endpoint in gone:
            rtnl.delete_link(endpoint.host_veth)
        ips = {e.ip for e in gone}
        if any(p.container == cid and p.container_ip in ips for p in live.ports):
            # Port rules are per container: drop them all and put back the others.
            keep = [p for p in live.ports if p.container == cid and p.container_ip not in ips]
            nft.delete_tagged({f"ctr:{cid}"})
            nft.apply(nft.port_lines(keep))
        live.endpoints = [e for e in live.endpoints if e not in gone]
        live.ports = [p for p in live.ports if not (p.container == cid and p.container_ip in ips)]
        state.save_live(live)
        _refresh_hosts(state, live, {network, *(e.network for e in live.of_container(cid))})


def rename(data_root: str, cid: str, name: str) -> None:
    """The container is called `name` now: its peers resolve the new name."""
    state = NetworkState(data_root)
    with state.lock():
        live = state.live()
        mine = live.of_container(cid)
        if not mine:
            return
        for endpoint in mine:
            endpoint.name = name
        state.save_live(live)
        _refresh_hosts(state, live, {e.network for e in mine})


def _refresh_hosts(state: NetworkState, live: Live, touched: set[str]) -> None:
    """Rewrite the hosts file of every container on the `touched` networks."""
    if not touched:
        return
    resolving = {}
    for endpoint in live.endpoints:
        if endpoint.network not in resolving:
            try:
                resolving[endpoint.network] = state.load(endpoint.network).name_resolution
            except NetworkError:
                resolving[endpoint.network] = False
    containers = {e.container for e in live.endpoints if e.network in touched}
    for cid in containers:
        own = live.of_container(cid)
        if not own or not process_alive(own[0].pid, own[0].pid_start):
            continue
        nets = {e.network for e in own if resolving.get(e.network)}
        peers = [e for e in live.endpoints if e.network in nets and e.container != cid]
        hosts.rewrite(own[0], own[0].hostname, own, peers)


def endpoints_of(data_root: str, cid: str) -> tuple[list[Endpoint], list[PortBinding]]:
    """What the container has now (read without the lock: a consistent snapshot anyway)."""
    live = NetworkState(data_root).live()
    return live.of_container(cid), [p for p in live.ports if p.container == cid]
