"""Published ports: docker's -p syntax, and host ports that are really free.

-p 80                     container 80, a free host port chosen
-p 8080:80                host 8080 (all addresses) -> container 80
-p 127.0.0.1:8080:80/udp  only on that host address, UDP
-p 127.0.0.1::80          that address, a free host port chosen
-p 8000-8002:80-82        ranges of one length, pairwise
-p 9000-9100:80           the first free host port of the range
"""

from __future__ import annotations

import ipaddress
import random
import socket

from corral.errors import ConfigError, PortInUse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

PROTOCOLS = ("tcp", "udp")


def _port_range(text: str, what: str, spec: str) -> tuple[int, int]:
    first, _, last = text.partition("-")
    try:
        start = int(first)
        end = int(last) if last else start
    except ValueError:
        raise ConfigError(f"invalid port spec {spec!r}: bad {what} port {text!r}") from None
    if not (1 <= start <= 65535 and 1 <= end <= 65535) or end < start:
        raise ConfigError(f"invalid port spec {spec!r}: {what} port {text} is out of range")
    return start, end


def parse(spec: str) -> list[dict[str, Any]]:
    """One -p value -> requests {proto, host_ip, host_port, host_port_end, container_port};
    host_port 0 means any free port; host_port_end > host_port a range to pick one from."""
    body, _, proto = spec.partition("/")
    proto = proto.lower() or "tcp"
    if proto not in PROTOCOLS:
        raise ConfigError(f"invalid port spec {spec!r}: protocol must be tcp or udp")
    parts = body.split(":")
    if len(parts) > 3 or not parts[-1]:
        raise ConfigError(f"invalid port spec {spec!r}: expected [ip:][host:]container[/proto]")
    host_ip, host = "", ""
    if len(parts) == 3:
        host_ip, host = parts[0], parts[1]
    elif len(parts) == 2:
        host = parts[0]
    if host_ip:
        try:
            if not isinstance(ipaddress.ip_address(host_ip), ipaddress.IPv4Address):
                raise ValueError
        except ValueError:
            raise ConfigError(
                f"invalid port spec {spec!r}: {host_ip!r} is not an IPv4 address"
            ) from None
        if host_ip == "0.0.0.0":
            host_ip = ""
    c_start, c_end = _port_range(parts[-1], "container", spec)
    if not host:
        return [_request(proto, host_ip, 0, 0, p) for p in range(c_start, c_end + 1)]
    h_start, h_end = _port_range(host, "host", spec)
    if c_start == c_end:  # one container port: a host port, or one picked from a range
        return [_request(proto, host_ip, h_start, h_end, c_start)]
    if h_end - h_start != c_end - c_start:
        raise ConfigError(f"invalid port spec {spec!r}: host and container ranges differ in length")
    return [
        _request(proto, host_ip, h_start + i, h_start + i, c_start + i)
        for i in range(c_end - c_start + 1)
    ]


def _request(proto: str, host_ip: str, start: int, end: int, container: int) -> dict[str, Any]:
    return {
        "proto": proto,
        "host_ip": host_ip,
        "host_port": start,
        "host_port_end": end,
        "container_port": container,
    }


def parse_exposed(spec: str) -> tuple[int, str]:
    """An EXPOSE entry or --expose value: "80", "80/tcp", "53/udp"."""
    port, _, proto = spec.partition("/")
    proto = proto.lower() or "tcp"
    start, _ = _port_range(port, "exposed", spec)
    if proto not in PROTOCOLS:
        raise ConfigError(f"invalid exposed port {spec!r}: protocol must be tcp or udp")
    return start, proto


def _clashes(proto: str, ip: str, port: int, taken: Iterable[tuple[str, str, int]]) -> bool:
    for t_proto, t_ip, t_port in taken:
        if t_proto == proto and t_port == port and (not ip or not t_ip or ip == t_ip):
            return True
    return False


def host_port_free(proto: str, ip: str, port: int) -> bool:
    """Nothing on the host listens there: a DNAT'd port would hide it."""
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((ip or "0.0.0.0", port))
        except OSError:
            return False
    return True


def ephemeral_range() -> tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


def assign(
    requests: list[dict[str, Any]], taken: list[tuple[str, str, int]]
) -> list[tuple[str, str, int, int]]:
    """Host ports for the requests: (proto, host_ip, host_port, container_port) each.
    `taken`: (proto, host_ip, port) published already. A clash is an error naming the port."""
    chosen: list[tuple[str, str, int, int]] = []
    busy = list(taken)
    for req in requests:
        proto, ip = req["proto"], req["host_ip"]
        if req["host_port"] == 0:
            low, high = ephemeral_range()
            candidates: Iterable[int] = random.sample(
                range(low, high + 1), min(200, high - low + 1)
            )
        else:
            candidates = range(req["host_port"], req["host_port_end"] + 1)
        for port in candidates:
            if not _clashes(proto, ip, port, busy) and host_port_free(proto, ip, port):
                break
        else:
            where = f"{ip or '0.0.0.0'}:{req['host_port']}"
            if req["host_port_end"] > req["host_port"]:
                where += f"-{req['host_port_end']}"
            raise PortInUse(f"port {where}/{proto} is already published or in use on the host")
        busy.append((proto, ip, port))
        chosen.append((proto, ip, port, req["container_port"]))
    return chosen
