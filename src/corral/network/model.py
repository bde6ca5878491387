"""What Corral records about networks, the endpoints containers have on them, and the
ports they publish."""

from __future__ import annotations

from corral.structs import asdict, field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


@record
class Network:
    name: str
    id: str
    bridge: str  # the Linux bridge device
    subnet: str  # "10.66.0.0/16"
    gateway: str  # "10.66.0.1", the bridge's address
    internal: bool = False  # no route out: no NAT, forwarding off the bridge dropped
    mtu: int = 1500
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    created: str = ""
    name_resolution: bool = True  # /etc/hosts entries for peers (docker: not on "bridge")


@record
class Endpoint:
    """A container's interface on a network, alive while the container's init is."""

    network: str  # network name
    container: str  # container id
    name: str  # container name, resolvable by peers
    aliases: list[str]
    ip: str
    host_veth: str
    ifname: str  # inside: eth0, eth1, ...
    pid: int  # the container's init: its net namespace holds the other end
    pid_start: int
    hostname: str = ""
    hosts_file: str = ""  # the container's /etc/hosts on the host, kept current
    mac: str = ""


@record
class PortBinding:
    container: str
    proto: str  # tcp | udp
    host_ip: str  # "" all addresses
    host_port: int
    container_ip: str
    container_port: int
    pid: int
    pid_start: int


def network_from(data: dict[str, Any]) -> Network:
    return Network(**{k: v for k, v in data.items() if k in Network.__record_fields__})  # type: ignore[attr-defined]


def endpoint_from(data: dict[str, Any]) -> Endpoint:
    return Endpoint(**data)


def port_from(data: dict[str, Any]) -> PortBinding:
    return PortBinding(**data)


def to_json(obj: object) -> dict[str, Any]:
    return asdict(obj)
