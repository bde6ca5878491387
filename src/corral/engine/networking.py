"""The engine's side of networking: what a container's network mode means for its OCI
spec and its /etc files, and attaching it to its networks when it starts (the work itself
is corral.network's). Modes: bridge (the default network), a user network's name, none,
host, container:NAME."""

from __future__ import annotations

import os

from corral import fastjson
from corral.engine.model import ContainerSpec
from corral.errors import ConfigError, InvalidState

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

LOCALHOST = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"


def bridged(spec: ContainerSpec) -> bool:
    """True when the container gets its own interfaces on Corral's networks."""
    return spec.network not in ("none", "host") and not spec.network.startswith("container:")


def shared_with(spec: ContainerSpec) -> str | None:
    """container:NAME -> NAME."""
    if spec.network.startswith("container:"):
        return spec.network[len("container:") :]
    return None


def attachments_for(mode: str, aliases: list[str], ip: str) -> list[dict[str, Any]]:
    """The networks a container starts on, from --network, --network-alias and --ip."""
    from corral.network.settings import validate_name

    if mode in ("none", "host") or mode.startswith("container:"):
        if aliases or ip:
            raise ConfigError(f"--network-alias and --ip need a bridge network, not {mode!r}")
        if mode.startswith("container:") and not mode[len("container:") :]:
            raise ConfigError("--network container:NAME needs a container's name")
        return []
    validate_name(mode)
    if mode == "bridge" and (aliases or ip):
        raise ConfigError("--network-alias and --ip work on user-defined networks only")
    return [{"name": mode, "aliases": list(aliases), "ip": ip}]


def validate(data_root: str, spec: ContainerSpec) -> None:
    """What can only be checked against the machine, before anything is made: the
    networks exist, the container to share with exists, ports go with a bridge."""
    from corral.engine.store import ContainerStore
    from corral.network.state import NetworkState

    state = NetworkState(data_root)
    for attachment in spec.networks:
        if attachment["name"] != "bridge" and not state.exists(attachment["name"]):
            raise ConfigError(f"network {attachment['name']} not found")
    shared = shared_with(spec)
    if shared is not None:
        ContainerStore(data_root).resolve(shared)  # not found: a clear error
    if (spec.ports or spec.publish_all) and not bridged(spec):
        raise ConfigError(f"ports cannot be published with --network {spec.network}")


def parse_extra_host(text: str) -> tuple[str, str]:
    """--add-host NAME:IP (or NAME=IP)."""
    import ipaddress  # only when there is one to check: not on every start

    sep = "=" if "=" in text else ":"
    name, _, ip = text.partition(sep)
    try:
        ipaddress.ip_address(ip.strip("[]"))
    except ValueError:
        raise ConfigError(f"invalid --add-host {text!r}: expected NAME:IP") from None
    if not name:
        raise ConfigError(f"invalid --add-host {text!r}: no host name")
    return name, ip.strip("[]")


def write_etc_files(
    container_dir: str, spec: ContainerSpec, hostname: str, shared_dir: str | None = None
) -> dict[str, str]:
    """The per-container /etc/hostname, /etc/hosts and /etc/resolv.conf (bind mounted).
    For container:NAME, that container's hosts and resolv.conf are used."""
    files = {}
    path = os.path.join(container_dir, "hostname")
    with open(path, "w") as f:
        f.write(hostname + "\n")
    files["/etc/hostname"] = path
    if shared_dir is not None:
        files["/etc/hosts"] = os.path.join(shared_dir, "hosts")
        files["/etc/resolv.conf"] = os.path.join(shared_dir, "resolv.conf")
        return files
    path = os.path.join(container_dir, "hosts")
    if spec.network == "host":
        import shutil

        shutil.copyfile("/etc/hosts", path)
    else:
        extra = "".join(f"{ip}\t{name}\n" for name, ip in map(parse_extra_host, spec.extra_hosts))
        with open(path + ".base", "w") as f:  # the network layer adds the live lines to it
            f.write(LOCALHOST + extra)
        with open(path, "w") as f:
            f.write(LOCALHOST + extra + ("" if bridged(spec) else f"127.0.1.1\t{hostname}\n"))
    files["/etc/hosts"] = path
    path = os.path.join(container_dir, "resolv.conf")
    with open(path, "w") as f:
        f.write(resolv_conf(spec))
    files["/etc/resolv.conf"] = path
    return files


def resolv_conf(spec: ContainerSpec) -> str:
    """docker's rules: the host's file (host mode as is; otherwise without loopback name
    servers, which mean nothing inside), --dns/--dns-search/--dns-option replacing parts."""
    if spec.network == "none" and not spec.dns:
        return "# no network: no name servers\n"
    try:
        with open("/etc/resolv.conf") as f:
            host = f.read()
    except OSError:
        host = ""
    if spec.network == "host" and not (spec.dns or spec.dns_search or spec.dns_options):
        return host
    servers, search, options = [], [], []
    for line in host.splitlines():
        words = line.split()
        if not words or words[0].startswith(("#", ";")):
            continue
        if words[0] == "nameserver" and len(words) > 1:
            if not words[1].startswith("127.") and words[1] != "::1":
                servers.append(words[1])
        elif words[0] in ("search", "domain"):
            search = words[1:]
        elif words[0] == "options":
            options += words[1:]
    servers = spec.dns or servers
    search = spec.dns_search or search
    options = spec.dns_options or options
    lines = [f"nameserver {s}" for s in servers] or ["# no name servers usable from a container"]
    if search:
        lines.append("search " + " ".join(search))
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"


def namespace(spec: ContainerSpec) -> dict[str, str] | None:
    """The OCI linux.namespaces entry for the network (None: the host's)."""
    if spec.network == "host":
        return None
    if shared_with(spec) is not None:
        # The path is the other container's init, filled in at each start (join_shared).
        return {"type": "network", "path": "/proc/1/ns/net"}
    return {"type": "network"}


def port_requests(spec: ContainerSpec, image_config: dict[str, Any]) -> list[dict[str, Any]]:
    """-p requests, and with -P every exposed port (image EXPOSE and --expose) on a free
    host port."""
    from corral.network import ports

    requests = [dict(r) for r in spec.ports]
    if spec.publish_all:
        exposed = list((image_config.get("config") or {}).get("ExposedPorts") or {})
        published = {(r["container_port"], r["proto"]) for r in requests}
        for entry in dict.fromkeys([*exposed, *spec.expose]):
            port, proto = ports.parse_exposed(entry)
            if (port, proto) not in published:
                requests += ports.parse(f"{port}/{proto}")
    return requests


def join_shared(data_root: str, cid: str, spec: ContainerSpec) -> None:
    """container:NAME: point the bundle's network namespace at that container's init,
    which must be running."""
    from corral.engine import lifecycle
    from corral.engine.store import ContainerStore

    name = shared_with(spec)
    if name is None:
        return
    store = ContainerStore(data_root)
    other = store.resolve(name)
    state = lifecycle.current(store, other)
    if state.status not in ("running", "paused"):
        raise InvalidState(f"cannot join the network of container {name}: it is not running")
    path = os.path.join(store.bundle(cid), "config.json")
    with open(path, "rb") as f:
        config = fastjson.loads(f.read())
    for entry in config["linux"]["namespaces"]:
        if entry["type"] == "network":
            entry["path"] = f"/proc/{state.pid}/ns/net"
    with open(path + ".tmp", "w") as f:
        f.write(fastjson.dumps(config))
    os.replace(path + ".tmp", path)


def attach(data_root: str, cid: str, pid: int) -> None:
    """Give a created container (init `pid`, waiting to start) its endpoints and ports."""
    from corral.engine.store import ContainerStore
    from corral.network import endpoints

    store = ContainerStore(data_root)
    spec = store.load_spec(cid)
    if not bridged(spec) or not spec.networks:
        return
    owner = _owner(store, cid, spec.name, pid)
    attachments = [
        endpoints.Attachment(
            network=n["name"],
            aliases=n.get("aliases", []),
            ip=n.get("ip", ""),
            ifname=n.get("ifname", ""),
            mac=n.get("mac", ""),
            mtu=int(n.get("mtu", 0)),
            gateway=n.get("gateway", ""),
            up=bool(n.get("up", True)),
        )
        for n in spec.networks
    ]
    image_config = _image_config(data_root, spec)
    endpoints.setup(data_root, owner, attachments, port_requests(spec, image_config))


def _owner(store: Any, cid: str, name: str, pid: int) -> Any:
    """The container as the network layer knows it: id, name, the hostname its bundle
    gives it, its init, its hosts file."""
    from corral.kernel.process import process_start_time
    from corral.network import endpoints

    with open(os.path.join(store.bundle(cid), "config.json"), "rb") as f:
        hostname = fastjson.loads(f.read()).get("hostname") or cid[:12]
    return endpoints.Owner(
        id=cid,
        name=name,
        hostname=hostname,
        pid=pid,
        pid_start=process_start_time(pid),
        hosts_file=os.path.join(store.dir(cid), "hosts"),
    )


def _image_config(data_root: str, spec: ContainerSpec) -> dict[str, Any]:
    if not spec.publish_all:
        return {}
    from corral.engine.lifecycle import image_store

    try:
        image: Any = image_store(data_root).image(spec.image_id)
        config: dict[str, Any] = image.config
        return config
    except Exception:  # the image was removed: only --expose is left to publish
        return {}


def renamed(data_root: str, cid: str, name: str) -> None:
    """Peers on its networks resolve a renamed container by its new name."""
    from corral.network.state import NetworkState

    if NetworkState(data_root).live().of_container(cid):
        from corral.network import endpoints

        endpoints.rename(data_root, cid, name)


def detach(data_root: str, cid: str) -> None:
    """Everything the container had on its networks, gone (a no-op when it had nothing).
    Checked first without the lock or the network modules: most exits have nothing."""
    from corral.network.state import NetworkState

    live = NetworkState(data_root).live()
    if not live.of_container(cid) and not any(p.container == cid for p in live.ports):
        return  # only this container's own start could add any, and it is not running
    from corral.network import endpoints

    endpoints.teardown(data_root, cid)


def network_settings(data_root: str, cid: str, spec: ContainerSpec) -> dict[str, Any]:
    """docker inspect's NetworkSettings: the live endpoints and published ports."""
    from corral.network.endpoints import endpoints_of
    from corral.network.state import NetworkState

    live_endpoints, bindings = endpoints_of(data_root, cid)
    state = NetworkState(data_root)
    networks: dict[str, Any] = {}
    for attachment in spec.networks:
        networks[attachment["name"]] = {"Aliases": attachment.get("aliases") or None}
    if not bridged(spec):
        networks[spec.network] = {}
    for e in live_endpoints:
        try:
            net = state.load(e.network)
            gateway, prefix, net_id = net.gateway, int(net.subnet.split("/")[1]), net.id
        except Exception:
            gateway, prefix, net_id = "", 0, ""
        networks[e.network] = {
            "NetworkID": net_id,
            "Aliases": e.aliases or None,
            "IPAddress": e.ip,
            "IPPrefixLen": prefix,
            "Gateway": gateway if e.ifname == "eth0" else "",
            "MacAddress": e.mac,
        }
    ports: dict[str, Any] = {}
    for b in bindings:
        ports.setdefault(f"{b.container_port}/{b.proto}", []).append(
            {"HostIp": b.host_ip or "0.0.0.0", "HostPort": str(b.host_port)}
        )
    primary: dict[str, Any] = next(
        (networks[e.network] for e in live_endpoints if e.ifname == "eth0"), {}
    )
    return {
        "Networks": networks,
        "Ports": ports,
        "IPAddress": primary.get("IPAddress", ""),
        "Gateway": primary.get("Gateway", ""),
        "MacAddress": primary.get("MacAddress", ""),
    }


def published(data_root: str, cid: str) -> list[str]:
    """`corral port` lines: "80/tcp -> 0.0.0.0:8080"."""
    from corral.network.endpoints import endpoints_of

    _, bindings = endpoints_of(data_root, cid)
    return [
        f"{b.container_port}/{b.proto} -> {b.host_ip or '0.0.0.0'}:{b.host_port}"
        for b in sorted(bindings, key=lambda b: (b.container_port, b.proto))
    ]


# ----- corral network connect / disconnect / rm ---------------------------------------------


def network_users(data_root: str, name: str) -> list[str]:
    """Names of the containers configured with network `name` (running or not)."""
    from corral.engine.store import ContainerStore

    return [
        spec.name or cid[:12]
        for cid, spec in ContainerStore(data_root).specs()
        if any(n["name"] == name for n in spec.networks)
    ]


def connect(data_root: str, cid: str, network: str, aliases: list[str], ip: str) -> None:
    """Add a network to a container: kept in its spec, and live now if it runs."""
    from corral.engine import lifecycle
    from corral.engine.store import ContainerStore
    from corral.network import endpoints
    from corral.network.state import NetworkState

    store = ContainerStore(data_root)
    with store.lock(cid):
        spec = store.load_spec(cid)
        if not bridged(spec):
            raise ConfigError(f"container {spec.name} uses --network {spec.network}: no networks")
        if any(n["name"] == network for n in spec.networks):
            raise ConfigError(f"container {spec.name} is already on network {network}")
        if network == "bridge" and (aliases or ip):
            raise ConfigError("--alias and --ip work on user-defined networks only")
        if network != "bridge" and not NetworkState(data_root).exists(network):
            raise ConfigError(f"network {network} not found")
        state = lifecycle.current(store, cid)
        if state.status in ("running", "paused"):
            owner = _owner(store, cid, spec.name, state.pid)
            attachment = endpoints.Attachment(network=network, aliases=aliases, ip=ip)
            endpoints.setup(data_root, owner, [attachment], [], fresh=False)
        spec.networks.append({"name": network, "aliases": list(aliases), "ip": ip})
        store.save_spec(cid, spec)


def disconnect(data_root: str, cid: str, network: str) -> None:
    from corral.engine.store import ContainerStore
    from corral.network import endpoints

    store = ContainerStore(data_root)
    with store.lock(cid):
        spec = store.load_spec(cid)
        if not any(n["name"] == network for n in spec.networks):
            raise ConfigError(f"container {spec.name} is not connected to network {network}")
        endpoints.disconnect(data_root, cid, network)
        spec.networks = [n for n in spec.networks if n["name"] != network]
        store.save_spec(cid, spec)
