"""Networks: create, remove, and realize (the bridge device and the table's rules exist
in the kernel). The definition lives on disk; realization is marked under the run
directory (tmpfs), so after a reboot the next use makes the bridge and rules again."""

from __future__ import annotations

import contextlib
import os

from corral.errors import ConfigError, NetworkError, NetworkInUse, NetworkNotFound
from corral.network import ipam, settings
from corral.network.model import Network
from corral.network.settings import PREDEFINED, validate_name
from corral.network.state import NetworkState

FORWARD = "/proc/sys/net/ipv4/ip_forward"


def _now() -> str:
    import time

    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1e9):09d}Z"


def _taken_prefixes(state: NetworkState, host: bool = True) -> dict[str, str]:
    """CIDR -> who has it: Corral's networks, and the host's addresses and routes."""
    taken = {n.subnet: f"network {n.name}" for n in state.networks()}
    if host:
        from corral.network import netlink

        ours = {n.bridge for n in state.networks()}
        for cidr in netlink.host_prefixes(exclude_links=ours):
            taken.setdefault(cidr, "an address or route of this host")
    return taken


def create(
    data_root: str,
    name: str,
    *,
    subnet: str = "",
    gateway: str = "",
    internal: bool = False,
    mtu: int = settings.DEFAULT_MTU,
    labels: dict[str, str] | None = None,
    options: dict[str, str] | None = None,
) -> Network:
    validate_name(name)
    if name in PREDEFINED:
        raise ConfigError(f"network name {name} is reserved")
    if not 68 <= mtu <= 65535:
        raise ConfigError(f"invalid MTU {mtu} (68..65535)")
    if gateway and not subnet:
        raise ConfigError("--gateway needs --subnet")
    state = NetworkState(data_root)
    with state.lock():
        if state.exists(name):
            raise NetworkError(f"network with name {name} already exists")
        taken = _taken_prefixes(state)
        if subnet:
            net = ipam.parse_subnet(subnet)
            clash = ipam.overlapping(net, taken)
            if clash:
                raise NetworkError(f"subnet {subnet} overlaps {clash} ({taken[clash]})")
        else:
            subnet = ipam.pick_subnet(settings.subnet_pool(), list(taken))
            net = ipam.parse_subnet(subnet)
        network_id = os.urandom(32).hex()
        network = Network(
            name=name,
            id=network_id,
            bridge=settings.BRIDGE_PREFIX + network_id[:11],
            subnet=subnet,
            gateway=ipam.gateway_for(net, gateway),
            internal=internal,
            mtu=mtu,
            labels=labels or {},
            options=options or {},
            created=_now(),
            name_resolution=True,
        )
        state.save(network)
        try:
            realize(network)
        except BaseException:
            unrealize(network, state)
            state.delete(name)
            raise
    return network


def default_network(state: NetworkState) -> Network:
    """The network called "bridge", defined on first use (caller holds the lock)."""
    with contextlib.suppress(NetworkNotFound):
        return state.load(settings.DEFAULT_NETWORK)
    subnet = settings.default_subnet()
    net = ipam.parse_subnet(subnet)
    taken = _taken_prefixes(state)
    clash = ipam.overlapping(net, taken)
    if clash:
        raise NetworkError(
            f"the default network's subnet {subnet} overlaps {clash} ({taken[clash]}); "
            "choose another with CORRAL_DEFAULT_SUBNET"
        )
    network = Network(
        name=settings.DEFAULT_NETWORK,
        id=os.urandom(32).hex(),
        bridge=settings.default_bridge(),
        subnet=subnet,
        gateway=ipam.gateway_for(net),
        created=_now(),
        name_resolution=False,  # docker: names resolve on user networks only
    )
    state.save(network)
    return network


def lookup(state: NetworkState, name: str) -> Network:
    if name == settings.DEFAULT_NETWORK:
        return default_network(state)
    return state.load(name)


# ----- realization -----------------------------------------------------------------------


def _marker(network: Network) -> str:
    return os.path.join(settings.run_dir(), network.id)


def realize(network: Network) -> None:
    """Make the bridge and the table's rules exist (caller holds the state lock)."""
    if os.path.exists(_marker(network)) and os.path.exists(f"/sys/class/net/{network.bridge}"):
        return  # the common case, checked without loading pyroute2
    from corral.network import netlink, nft

    nft.ensure_table()
    nft.delete_tagged({f"net:{network.id}"}, (network.bridge,))  # a half-made earlier try
    prefixlen = ipam.parse_subnet(network.subnet).prefixlen
    netlink.ensure_bridge(network.bridge, network.gateway, prefixlen, network.mtu)
    # The host reaches published ports through 127.0.0.1: route it out of this bridge.
    _write(f"/proc/sys/net/ipv4/conf/{network.bridge}/route_localnet", "1")
    if not network.internal:
        _need_forwarding()
    nft.apply(nft.network_lines(network))
    os.makedirs(settings.run_dir(), exist_ok=True)
    with open(_marker(network), "w") as f:
        f.write(network.name + "\n")


def unrealize(network: Network, state: NetworkState) -> None:
    """Remove the bridge and the network's rules; the last network out also takes the
    table and gives back ip_forward if Corral turned it on."""
    from corral.network import netlink, nft

    nft.delete_tagged({f"net:{network.id}"}, (network.bridge,))
    netlink.delete_link(network.bridge)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(_marker(network))
    realized = [n for n in state.networks() if n.id != network.id and os.path.exists(_marker(n))]
    if not realized:
        nft.drop_table()
    if not any(not n.internal for n in realized):
        _release_forwarding()


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _forwarding_marker() -> str:
    return os.path.join(settings.run_dir(), "ip_forward.set-by-corral")


def _need_forwarding() -> None:
    """Routing out of a bridge needs ip_forward; Corral turns it on only if it is off, and
    remembers that it did (see _release_forwarding)."""
    with open(FORWARD) as f:
        if f.read().strip() == "1":
            return
    os.makedirs(settings.run_dir(), exist_ok=True)
    with open(_forwarding_marker(), "w") as f:
        f.write("1\n")
    _write(FORWARD, "1")


def _release_forwarding() -> None:
    if os.path.exists(_forwarding_marker()):
        _write(FORWARD, "0")
        os.unlink(_forwarding_marker())


# ----- removal -----------------------------------------------------------------------------


def remove(data_root: str, name: str, users: list[str] | None = None) -> None:
    """Remove a network no running container uses. `users`: containers (names) that are
    configured with it although not running: also a refusal, named."""
    if name in PREDEFINED:
        raise NetworkError(f"{name} is a pre-defined network and cannot be removed")
    state = NetworkState(data_root)
    with state.lock():
        network = state.load(name)
        live = state.live()
        holders = [e.name or e.container[:12] for e in live.on_network(name)]
        holders += [u for u in users or [] if u not in holders]
        if holders:
            raise NetworkInUse(
                f"network {name} is in use by container(s): {', '.join(sorted(holders))}"
            )
        unrealize(network, state)
        state.delete(name)


def release_default(data_root: str) -> bool:
    """Take the default network's bridge and rules down when no container is on it (they
    come back on the next use). True if it was taken down."""
    state = NetworkState(data_root)
    with state.lock():
        if not state.exists(settings.DEFAULT_NETWORK):
            return False
        network = state.load(settings.DEFAULT_NETWORK)
        if state.live().on_network(network.name):
            return False
        unrealize(network, state)
        return True


def realized(network: Network) -> bool:
    return os.path.exists(_marker(network))
