"""Address management, pure logic: subnets for new networks, addresses for endpoints.
The caller holds the network state's lock, so what it reads as taken stays taken."""

from __future__ import annotations

import ipaddress

from corral.errors import NetworkError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable


def parse_subnet(text: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as err:
        raise NetworkError(f"invalid subnet {text!r}: {err}") from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise NetworkError(f"subnet {text}: only IPv4 subnets are supported")
    if net.prefixlen > 30:
        raise NetworkError(f"subnet {text} is too small (at most /30)")
    return net


def gateway_for(subnet: ipaddress.IPv4Network, gateway: str = "") -> str:
    """The given gateway (checked), or the subnet's first host address."""
    if not gateway:
        return str(subnet.network_address + 1)
    return _host_address(gateway, subnet, "gateway")


def _host_address(text: str, subnet: ipaddress.IPv4Network, what: str) -> str:
    """`text` if it is an address of `subnet` a host can have (not its network or
    broadcast address); an error naming `what` otherwise."""
    try:
        address = ipaddress.IPv4Address(text)
    except ValueError:
        raise NetworkError(f"invalid {what} {text!r}") from None
    if address not in subnet or address in (subnet.network_address, subnet.broadcast_address):
        raise NetworkError(f"{what} {text} is not a host address of {subnet}")
    return text


def overlapping(subnet: ipaddress.IPv4Network, others: Iterable[str]) -> str | None:
    """The first of `others` (CIDRs) that overlaps `subnet`, if any."""
    for other in others:
        try:
            if subnet.overlaps(ipaddress.ip_network(other, strict=False)):
                return other
        except (ValueError, TypeError):
            continue
    return None


def pick_subnet(pool: str, taken: list[str], prefixlen: int = 24) -> str:
    """The first /24 of `pool` that overlaps none of `taken`."""
    for candidate in parse_subnet(pool).subnets(new_prefix=prefixlen):
        if overlapping(candidate, taken) is None:
            return str(candidate)
    raise NetworkError(f"no free subnet left in the pool {pool}; give one with --subnet")


def allocate(subnet: str, gateway: str, used: Iterable[str], wanted: str = "") -> str:
    """A free host address of `subnet` (not the gateway), or `wanted` if it is free."""
    net = parse_subnet(subnet)
    taken = {*used, gateway}
    if wanted:
        _host_address(wanted, net, "address")
        if wanted in taken:
            raise NetworkError(f"address {wanted} is already in use on {subnet}")
        return wanted
    for address in net.hosts():
        text = str(address)
        if text not in taken:
            return text
    raise NetworkError(f"no free address left in {subnet}")
