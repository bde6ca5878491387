"""Links, addresses and routes through pyroute2 (netlink; nothing parses `ip` output).

pyroute2 takes ~120 ms to import here (its package imports asyncio and every protocol it
knows), so this module is imported only by the steps that change links, and the engine runs
those in a helper that overlaps the container's creation (engine/netsetup.py). Work inside a
container's net namespace is done by joining it (setns) for the moment it takes: a netlink
socket belongs to the namespace of the thread that opened it.
"""

from __future__ import annotations

import contextlib
import os

from corral.errors import NetworkError
from corral.kernel.namespaces import CLONE_NEWNET, setns

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

ENODEV = 19
EEXIST = 17


def _iproute() -> Any:
    from pyroute2 import IPRoute

    return IPRoute()


def _code(err: BaseException) -> int:
    return int(getattr(err, "code", 0) or 0)


@contextlib.contextmanager
def in_netns(pid: int) -> Iterator[None]:
    """Run the body in the net namespace of process `pid`, then come back."""
    host = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns(target, CLONE_NEWNET, target=f"/proc/{pid}/ns/net")
        try:
            yield
        finally:
            setns(host, CLONE_NEWNET, target="the host's net namespace")
    finally:
        os.close(target)
        os.close(host)


def link_exists(name: str) -> bool:
    with _iproute() as ipr:
        return bool(ipr.link_lookup(ifname=name))


def link_names(prefix: str) -> list[str]:
    with _iproute() as ipr:
        names = [link.get("IFLA_IFNAME") or "" for link in ipr.get_links()]
    return [n for n in names if n.startswith(prefix)]


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
    """Delete a link (a veth takes its peer with it); a missing one is not an error."""
    with _iproute() as ipr:
        try:
            ipr.link("del", ifname=name)
        except Exception as err:
            if _code(err) != ENODEV:
                raise NetworkError(f"cannot delete link {name}: {err}") from err


def add_endpoint(
    pid: int,
    host_veth: str,
    bridge: str,
    ifname: str,
    address: str,
    prefixlen: int,
    gateway: str | None,
    mtu: int,
) -> str:
    """A veth pair: `host_veth` on the bridge, its peer `ifname` in the net namespace of
    `pid` with the address (and the default route when `gateway`). Returns the MAC."""
    with _iproute() as ipr:
        found = ipr.link_lookup(ifname=bridge)
        if not found:
            raise NetworkError(f"bridge {bridge} is missing")
        try:
            ipr.link(
                "add",
                ifname=host_veth,
                kind="veth",
                mtu=mtu,
                master=found[0],
                peer={"ifname": ifname, "net_ns_pid": pid, "mtu": mtu},
            )
        except Exception as err:
            raise NetworkError(f"cannot create veth {host_veth}: {err}") from err
        ipr.link("set", ifname=host_veth, state="up")
    with in_netns(pid), _iproute() as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
        index = ipr.link_lookup(ifname=ifname)[0]
        ipr.addr("add", index=index, address=address, prefixlen=prefixlen)
        ipr.link("set", index=index, state="up")
        if gateway:
            ipr.route("add", dst="0.0.0.0/0", gateway=gateway, oif=index)
        mac = ipr.get_links(index)[0].get("IFLA_ADDRESS") or ""
    return str(mac)


def remove_endpoint(pid: int, ifname: str) -> None:
    """Delete `ifname` in the net namespace of `pid` (its host-side peer goes with it)."""
    with in_netns(pid):
        delete_link(ifname)


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
