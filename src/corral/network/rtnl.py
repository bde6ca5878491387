"""The few rtnetlink requests on the container-start path, packed by hand.

Everything else in Corral speaks netlink through pyroute2 (netlink.py). Importing pyroute2
costs ~120 ms here, more than a whole `corral run` without a network, so the steps every
bridged container takes when it starts — a veth pair whose peer goes into its namespace,
the address, the default route, loopback up, and deleting a veth — are these five messages
written with struct (see rtnetlink(7)). Tests read the result back through pyroute2.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct

from corral.errors import NetworkError
from corral.kernel.namespaces import CLONE_NEWNET, setns

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

NLMSG_ERROR = 2
RTM_NEWLINK, RTM_DELLINK, RTM_NEWADDR, RTM_NEWROUTE = 16, 17, 20, 24
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER = 1, 3, 4, 10
IFLA_LINKINFO, IFLA_NET_NS_PID = 18, 19
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_GATEWAY, RTA_OIF = 5, 4
IFF_UP = 0x1
RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 3, 0, 1
NLA_F_NESTED = 0x8000


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def _nested(kind: int, *attrs: bytes) -> bytes:
    return _attr(kind | NLA_F_NESTED, b"".join(attrs))


def _name(text: str) -> bytes:
    return text.encode() + b"\0"


def _ifinfo(index: int = 0, up: bool = False) -> bytes:
    flags = IFF_UP if up else 0
    return struct.pack("=BxHiII", socket.AF_UNSPEC, 0, index, flags, flags)


class Rtnl:
    """One NETLINK_ROUTE socket, in the net namespace of the thread that opens it."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
        self.sock.bind((0, 0))
        self.seq = 0

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(self, *_: object) -> None:
        self.sock.close()

    def request(self, kind: int, flags: int, body: bytes, what: str) -> None:
        """Send one request and wait for its acknowledgement; an error names `what`."""
        self.seq += 1
        flags |= NLM_F_REQUEST | NLM_F_ACK
        header = struct.pack("=LHHLL", 16 + len(body), kind, flags, self.seq, 0)
        self.sock.send(header + body)
        while True:
            data = self.sock.recv(65536)
            offset = 0
            while offset + 16 <= len(data):
                length, msg_type, _, seq, _ = struct.unpack_from("=LHHLL", data, offset)
                if msg_type == NLMSG_ERROR and seq == self.seq:
                    (error,) = struct.unpack_from("=i", data, offset + 16)
                    if error:
                        raise NetworkError(f"{what}: {os.strerror(-error)}")
                    return
                offset += (length + 3) & ~3

    def add_veth(
        self, host: str, bridge_index: int, peer: str, peer_pid: int, mtu: int, mac: bytes
    ) -> None:
        """A veth pair: `host` on the bridge and up, `peer` (with `mac`) moved into the net
        namespace of `peer_pid`, down (a veth cannot come up before its pair is linked:
        the kernel answers ENOTCONN)."""
        peer_info = _ifinfo() + b"".join(
            (
                _attr(IFLA_IFNAME, _name(peer)),
                _attr(IFLA_MTU, struct.pack("=I", mtu)),
                _attr(IFLA_ADDRESS, mac),
                _attr(IFLA_NET_NS_PID, struct.pack("=I", peer_pid)),
            )
        )
        linkinfo = _nested(
            IFLA_LINKINFO,
            _attr(IFLA_INFO_KIND, b"veth"),
            _nested(IFLA_INFO_DATA, _attr(VETH_INFO_PEER, peer_info)),
        )
        body = _ifinfo(up=True) + b"".join(
            (
                _attr(IFLA_IFNAME, _name(host)),
                _attr(IFLA_MTU, struct.pack("=I", mtu)),
                _attr(IFLA_MASTER, struct.pack("=I", bridge_index)),
                linkinfo,
            )
        )
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body, f"create veth {host}")

    def set_up(self, index: int, what: str) -> None:
        self.request(RTM_NEWLINK, 0, _ifinfo(index, up=True), f"set {what} up")

    def add_address(self, index: int, address: str, prefixlen: int, what: str) -> None:
        packed = socket.inet_aton(address)
        body = struct.pack("=BBBBI", socket.AF_INET, prefixlen, 0, RT_SCOPE_UNIVERSE, index)
        body += _attr(IFA_LOCAL, packed) + _attr(IFA_ADDRESS, packed)
        self.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body, f"address {address} on {what}")

    def add_default_route(self, gateway: str, index: int) -> None:
        body = struct.pack(
            "=BBBBBBBBI", socket.AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT,
            RT_SCOPE_UNIVERSE, RTN_UNICAST, 0,
        )  # fmt: skip
        body += _attr(RTA_GATEWAY, socket.inet_aton(gateway))
        body += _attr(RTA_OIF, struct.pack("=I", index))
        self.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, body, f"default route via {gateway}")

    def delete_link(self, name: str) -> bool:
        """False if there was no such link."""
        try:
            self.request(RTM_DELLINK, 0, _ifinfo() + _attr(IFLA_IFNAME, _name(name)), name)
        except NetworkError as err:
            if os.strerror(19) in str(err):  # ENODEV
                return False
            raise NetworkError(f"cannot delete link {err}") from None
        return True


def mac_for(address: str) -> bytes:
    """docker's scheme: 02:42 and the IPv4 address, unique on the network with the IP."""
    return b"\x02\x42" + socket.inet_aton(address)


def format_mac(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


@contextlib.contextmanager
def in_netns(pid: int) -> Iterator[None]:
    """Run the body in the net namespace of process `pid`, then come back. (A netlink
    socket belongs to the namespace of the thread that opened it.)"""
    host = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        os.close(host)
        raise NetworkError(f"the container's net namespace (pid {pid}): {err.strerror}") from None
    try:
        setns(target, CLONE_NEWNET, target=f"/proc/{pid}/ns/net")
        try:
            yield
        finally:
            setns(host, CLONE_NEWNET, target="the host's net namespace")
    finally:
        os.close(target)
        os.close(host)


def add_endpoint(
    pid: int,
    host_veth: str,
    bridge: str,
    ifname: str,
    address: str,
    prefixlen: int,
    gateway: str | None,
    mtu: int,
    mac_text: str = "",
    up: bool = True,
) -> str:
    """A veth pair: `host_veth` on the bridge, its peer `ifname` in the net namespace of
    `pid` with the address (and the default route when `gateway`), its MAC `mac_text` or
    one made from the address. Returns the MAC."""
    try:
        bridge_index = socket.if_nametoindex(bridge)
    except OSError:
        raise NetworkError(f"bridge {bridge} is missing") from None
    mac = bytes.fromhex(mac_text.replace(":", "")) if mac_text else mac_for(address)
    with Rtnl() as rtnl:
        rtnl.add_veth(host_veth, bridge_index, ifname, pid, mtu, mac)
    with in_netns(pid), Rtnl() as rtnl:
        rtnl.set_up(socket.if_nametoindex("lo"), "lo")
        index = socket.if_nametoindex(ifname)
        rtnl.add_address(index, address, prefixlen, ifname)
        if up:
            rtnl.set_up(index, ifname)
        if gateway and up:
            rtnl.add_default_route(gateway, index)
    return format_mac(mac)


def delete_link(name: str) -> bool:
    """Delete a link in this net namespace (a veth takes its peer along). False: none."""
    with Rtnl() as rtnl:
        return rtnl.delete_link(name)
