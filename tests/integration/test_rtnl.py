"""Corral's hand-packed rtnetlink requests (corral.network.rtnl), read back through
pyroute2: what they make must be what pyroute2 sees."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator

import pytest

from corral.errors import NetworkError
from corral.network import netlink, rtnl
from tests.helpers import networking_supported

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not networking_supported(), reason="needs bridges and veth"
)

BRIDGE = f"crltb{os.getpid() % 100000}"
VETH = f"crltv{os.getpid() % 100000}"


@pytest.fixture
def namespace_holder() -> Iterator[int]:
    """A process in a net namespace of its own, and a bridge on the host."""
    netlink.ensure_bridge(BRIDGE, "10.250.9.1", 24, 1500)
    proc = subprocess.Popen(["unshare", "-n", "sleep", "60"])
    deadline = time.monotonic() + 5
    while os.readlink(f"/proc/{proc.pid}/ns/net") == os.readlink("/proc/self/ns/net"):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()
        rtnl.delete_link(VETH)
        netlink.delete_link(BRIDGE)


def test_endpoint_as_pyroute2_sees_it(namespace_holder: int) -> None:
    from pyroute2 import IPRoute

    mac = rtnl.add_endpoint(namespace_holder, VETH, BRIDGE, "eth0", "10.250.9.7", 24, "10.250.9.1", 1400)  # fmt: skip
    assert mac == "02:42:0a:fa:09:07"
    with IPRoute() as ipr:
        host = ipr.get_links(ifname=VETH)[0]
        assert host.get("IFLA_MASTER") == ipr.link_lookup(ifname=BRIDGE)[0]
        assert host.get("IFLA_MTU") == 1400 and host["flags"] & 1  # IFF_UP
    with rtnl.in_netns(namespace_holder), IPRoute() as ipr:
        eth0 = ipr.get_links(ifname="eth0")[0]
        assert eth0.get("IFLA_ADDRESS") == mac and eth0.get("IFLA_MTU") == 1400
        assert eth0["flags"] & 1
        assert ipr.get_links(ifname="lo")[0]["flags"] & 1
        addrs = [(a.get("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(family=2)]
        assert ("10.250.9.7", 24) in addrs
        default = [r for r in ipr.get_routes(family=2) if r["dst_len"] == 0]
        assert [r.get("RTA_GATEWAY") for r in default] == ["10.250.9.1"]
    assert os.readlink("/proc/self/ns/net") != os.readlink(f"/proc/{namespace_holder}/ns/net")
    assert rtnl.delete_link(VETH) is True
    assert rtnl.delete_link(VETH) is False
    with rtnl.in_netns(namespace_holder), IPRoute() as ipr:
        assert not ipr.link_lookup(ifname="eth0")  # the peer went with it


def test_errors_name_the_problem(namespace_holder: int) -> None:
    with pytest.raises(NetworkError, match="bridge no-such-br is missing"):
        rtnl.add_endpoint(namespace_holder, VETH, "no-such-br", "eth0", "10.250.9.8", 24, None, 1500)  # fmt: skip
    rtnl.add_endpoint(namespace_holder, VETH, BRIDGE, "eth0", "10.250.9.8", 24, None, 1500)
    with pytest.raises(NetworkError, match=f"create veth {VETH}: File exists"):
        rtnl.add_endpoint(namespace_holder, VETH, BRIDGE, "eth1", "10.250.9.9", 24, None, 1500)  # fmt: skip
    with pytest.raises(NetworkError, match="No such process"):
        rtnl.add_endpoint(2**22 + 7, VETH + "x", BRIDGE, "eth0", "10.250.9.9", 24, None, 1500)
