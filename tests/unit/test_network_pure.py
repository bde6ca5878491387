"""The network layer's pure logic: -p syntax, address management, hosts files, nft rules."""

from __future__ import annotations

import pytest

from corral.errors import ConfigError, NetworkError, PortInUse
from corral.network import hosts, ipam, nft, ports
from corral.network.model import Endpoint, Network, PortBinding


def req(proto: str, ip: str, start: int, end: int, container: int) -> dict[str, object]:
    return {"proto": proto, "host_ip": ip, "host_port": start, "host_port_end": end, "container_port": container}  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("80", [req("tcp", "", 0, 0, 80)]),
        ("8080:80", [req("tcp", "", 8080, 8080, 80)]),
        ("127.0.0.1:8080:80/udp", [req("udp", "127.0.0.1", 8080, 8080, 80)]),
        ("127.0.0.1::80", [req("tcp", "127.0.0.1", 0, 0, 80)]),
        ("0.0.0.0:81:80", [req("tcp", "", 81, 81, 80)]),
        ("8000-8001:80-81", [req("tcp", "", 8000, 8000, 80), req("tcp", "", 8001, 8001, 81)]),
        ("9000-9100:80", [req("tcp", "", 9000, 9100, 80)]),
        ("80-81/UDP", [req("udp", "", 0, 0, 80), req("udp", "", 0, 0, 81)]),
    ],
)
def test_port_specs(spec: str, expected: list[dict[str, object]]) -> None:
    assert ports.parse(spec) == expected


@pytest.mark.parametrize(
    "spec",
    ["", "80:abc", "0:80", "70000", "8000-8002:80-81", "80/sctp", "1.2.3:80:80", "::1:80:80",
     "a:b:c:d", "90-80:80", ":80:"],
)  # fmt: skip
def test_bad_port_specs(spec: str) -> None:
    with pytest.raises(ConfigError, match="invalid port spec"):
        ports.parse(spec)


def test_assign_refuses_a_published_port_and_picks_free_ones() -> None:
    taken = [("tcp", "", 18080)]
    with pytest.raises(PortInUse, match=r"127\.0\.0\.1:18080/tcp is already published"):
        ports.assign([req("tcp", "127.0.0.1", 18080, 18080, 80)], taken)
    # the same port on UDP, or another address than one already bound, is free
    assert ports.assign([req("udp", "", 18080, 18080, 80)], taken) == [("udp", "", 18080, 80)]
    taken = [("tcp", "127.0.0.2", 18081)]
    assert ports.assign([req("tcp", "127.0.0.3", 18081, 18081, 80)], taken)[0][2] == 18081
    # a range gives the first port not taken
    taken = [("tcp", "", 18090), ("tcp", "", 18091)]
    assert ports.assign([req("tcp", "", 18090, 18095, 80)], taken)[0][2] == 18092
    # two requests of one -p never get the same random port
    chosen = ports.assign([req("tcp", "", 0, 0, 80), req("tcp", "", 0, 0, 81)], [])
    assert chosen[0][2] != chosen[1][2]


def test_ipam() -> None:
    assert ipam.allocate("10.9.0.0/29", "10.9.0.1", []) == "10.9.0.2"
    assert ipam.allocate("10.9.0.0/29", "10.9.0.1", ["10.9.0.2", "10.9.0.3"]) == "10.9.0.4"
    with pytest.raises(NetworkError, match="no free address left"):
        ipam.allocate("10.9.0.0/30", "10.9.0.1", ["10.9.0.2"])
    assert ipam.allocate("10.9.0.0/24", "10.9.0.1", [], wanted="10.9.0.77") == "10.9.0.77"
    with pytest.raises(NetworkError, match="already in use"):
        ipam.allocate("10.9.0.0/24", "10.9.0.1", ["10.9.0.77"], wanted="10.9.0.77")
    with pytest.raises(NetworkError, match="not a host address"):
        ipam.allocate("10.9.0.0/24", "10.9.0.1", [], wanted="10.9.1.5")
    assert ipam.pick_subnet("10.8.0.0/16", ["10.8.0.0/24", "10.8.1.128/25"]) == "10.8.2.0/24"
    assert ipam.overlapping(ipam.parse_subnet("10.8.0.0/16"), ["192.0.2.0/24", "10.8.3.4/32"]) == "10.8.3.4/32"  # fmt: skip
    assert ipam.gateway_for(ipam.parse_subnet("10.8.0.0/24")) == "10.8.0.1"
    with pytest.raises(NetworkError, match="not a host address"):
        ipam.gateway_for(ipam.parse_subnet("10.8.0.0/24"), "10.8.0.255")
    for bad in ("10.8.0.1/24", "fd00::/64", "nonsense", "10.8.0.0/31"):
        with pytest.raises(NetworkError):
            ipam.parse_subnet(bad)


def endpoint(name: str, ip: str, cid: str, aliases: list[str] | None = None) -> Endpoint:
    return Endpoint(network="n", container=cid, name=name, aliases=aliases or [], ip=ip,
                    host_veth="vc", ifname="eth0", pid=1, pid_start=0)  # fmt: skip


def test_hosts_file() -> None:
    own = [endpoint("me", "10.1.0.2", "a" * 64)]
    peers = [endpoint("db", "10.1.0.3", "b" * 64, ["postgres"]), endpoint("db", "10.1.0.3", "b" * 64)]  # fmt: skip
    text = hosts.compose("127.0.0.1\tlocalhost\n", "myhost", own, peers)
    assert text == (
        "127.0.0.1\tlocalhost\n10.1.0.2\tmyhost\n10.1.0.3\tdb postgres " + "b" * 12 + "\n"
    )


def test_nft_rules_are_tagged_with_their_owner(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORRAL_NFT_TABLE", "corral_unit")
    net = Network(name="n", id="f" * 64, bridge="crl-fff", subnet="10.1.0.0/24", gateway="10.1.0.1")  # fmt: skip
    lines = nft.network_lines(net)
    assert 'add element inet corral_unit bridges { "crl-fff" }' in lines
    assert any("masquerade" in line and "ip saddr 10.1.0.0/24" in line for line in lines)
    assert all(line.endswith(f'comment "net:{"f" * 64}"') for line in lines[1:])
    internal = Network(name="i", id="e" * 64, bridge="crl-eee", subnet="10.2.0.0/24", gateway="10.2.0.1", internal=True)  # fmt: skip
    assert not any("masquerade" in line for line in nft.network_lines(internal))
    binding = PortBinding(container="c" * 64, proto="udp", host_ip="127.0.0.1", host_port=5353,
                          container_ip="10.1.0.2", container_port=53, pid=1, pid_start=0)  # fmt: skip
    assert nft.port_lines([binding]) == [
        "add rule inet corral_unit ports ip daddr 127.0.0.1 udp dport 5353 "
        f'dnat ip to 10.1.0.2:53 comment "ctr:{"c" * 64}"'
    ]
