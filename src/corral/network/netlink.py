"""Bridges, links and the host's addresses through pyroute2 (netlink; nothing parses `ip`
output): what networks need when they are made, removed or checked.

pyroute2 takes ~120 ms to import here (its package imports asyncio and every protocol it
knows), so the per-container steps of a start do not use it: they are rtnl.py's.
"""

from __future__ import annotations

from corral.errors import NetworkError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ENODEV = 19
EEXIST = 17


def _iproute() -> Any:
    from pyroute2 import IPRoute

    return IPRoute()


def _code(err: BaseException) -> int:
    return int(getattr(err, "code", 0) or 0)


def link_exists(name: str) -> bool:
    with _iproute() as ipr:
        return bool(ipr.link_lookup(ifname=name))


def ensure_bridge(name: str, gateway: str, prefixlen: int, mtu: int) -> None:
    """The bridge `name` exists, is up and carries the gateway address."""
    with _iproute() as ipr:
        if not ipr.link_lookup(ifname=name):
            try:
                ipr.link("add", ifname=name, kind="bridge", mtu=mtu)
            except Exception as err:
                if _code(err) != EEXIST:  # made by a concurrent command: fine
                    raise NetworkError(f"cannot create bridge {name}: {err}") from err
        index = ipr.link_lookup(ifname=name)[0]
        have = {a.get("IFA_ADDRESS") for a in ipr.get_addr(index=index, family=2)}
        if gateway not in have:
            try:
                ipr.addr("add", index=index, address=gateway, prefixlen=prefixlen)
            except Exception as err:
                if _code(err) != EEXIST:
                    raise NetworkError(f"cannot address bridge {name}: {err}") from err
        ipr.link("set", index=index, state="up")


def delete_link(name: str) -> None:
    """Delete a link (a bridge); a missing one is not an error."""
    with _iproute() as ipr:
        try:
            ipr.link("del", ifname=name)
        except Exception as err:
            if _code(err) != ENODEV:
                raise NetworkError(f"cannot delete link {name}: {err}") from err


def host_prefixes(exclude_links: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """The host's IPv4 addresses and routes as CIDRs (a new network must not overlap
    them), leaving out those on the links named in `exclude_links`."""
    found = []
    with _iproute() as ipr:
        skip = {
            link["index"] for link in ipr.get_links() if link.get("IFLA_IFNAME") in exclude_links
        }
        for addr in ipr.get_addr(family=2):
            if addr["index"] not in skip:
                found.append(f"{addr.get('IFA_ADDRESS')}/{addr['prefixlen']}")
        for route in ipr.get_routes(family=2, table=254):
            dst = route.get("RTA_DST")
            if dst and route["dst_len"] > 0 and route.get("RTA_OIF") not in skip:
                found.append(f"{dst}/{route['dst_len']}")
    return found
