"""Bridge networking, end to end: containers on this run's bridges talk by name, are kept
apart across networks, publish TCP and UDP ports that answer on the host's 127.0.0.1, and
leave no link, lease or nft rule behind. All traffic stays on this machine."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import TEST_DATA
from tests.helpers import networking_supported
from tests.integration.engine.conftest import IMAGE, Corral, wait_for

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not networking_supported(), reason="needs bridges, veth and nftables"
)

HTTPD = "mkdir -p /www && echo hello-$HOSTNAME > /www/index.html && exec httpd -f -p 80 -h /www"


class Networks:
    """User networks made by one test; its containers and then its networks are removed
    afterwards (a network in use cannot go)."""

    def __init__(self, corral: Corral) -> None:
        self.corral = corral
        self.names: list[str] = []
        self.containers_before = corral.ids()

    def create(self, name: str, *flags: str) -> str:
        self.corral("network", "create", *flags, name)
        self.names.append(name)
        return name

    def cleanup(self) -> None:
        for cid in self.corral.ids() - self.containers_before:
            self.corral("rm", "-f", "-v", cid, check=False)
        for name in self.names:
            self.corral("network", "rm", "-f", name, check=False)


@pytest.fixture
def nets(corral: Corral) -> Iterator[Networks]:
    n = Networks(corral)
    yield n
    n.cleanup()


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(port: int, host: str = "127.0.0.1") -> str | None:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/", timeout=2) as r:
            return str(r.read().decode())
    except OSError:
        return None


def live() -> dict[str, Any]:
    path = TEST_DATA / "network" / "live.json"
    if not path.exists():
        return {"endpoints": [], "ports": []}
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def links() -> set[str]:
    return set(os.listdir("/sys/class/net"))


def rules_tagged(cid: str) -> list[str]:
    table = os.environ["CORRAL_NFT_TABLE"]
    out = subprocess.run(
        ["nft", "-j", "list", "table", "inet", table], capture_output=True, text=True
    )
    if out.returncode != 0:
        return []
    items = json.loads(out.stdout)["nftables"]
    return [
        i["rule"]["comment"]
        for i in items
        if "rule" in i and i["rule"].get("comment", "").startswith(f"ctr:{cid}")
    ]


def ip_of(corral: Corral, name: str, network: str) -> str:
    address: str = corral.inspect(name)["NetworkSettings"]["Networks"][network]["IPAddress"]
    return address


def nothing_left_of(cid: str) -> None:
    state = live()
    assert not [e for e in state["endpoints"] if e["container"] == cid]
    assert not [p for p in state["ports"] if p["container"] == cid]
    assert not [n for n in links() if n.startswith("vc" + cid[:11])]
    assert rules_tagged(cid) == []


# ----- talking -----------------------------------------------------------------------------


def test_two_containers_talk_by_name_and_another_network_cannot_reach(
    corral: Corral, nets: Networks
) -> None:
    nets.create("front")
    nets.create("back")
    corral.run("-d", "--name", "srv", "--network", "front", "--network-alias", "api", IMAGE, "sh", "-c", "exec nc -ll -p 7000 -e echo pong")  # fmt: skip
    for target in ("srv", "api"):
        out = corral.run("--rm", "--network", "front", IMAGE, "sh", "-c", f"echo hi | nc -w 3 {target} 7000")  # fmt: skip
        assert out.stdout.strip() == "pong"
    srv_ip = ip_of(corral, "srv", "front")
    cut_off = corral.run("--rm", "--network", "back", IMAGE, "sh", "-c", f"echo hi | nc -w 2 {srv_ip} 7000", check=False)  # fmt: skip
    assert cut_off.returncode != 0 and "pong" not in cut_off.stdout
    unknown = corral.run("--rm", "--network", "back", IMAGE, "nslookup", "srv", check=False)
    assert unknown.returncode != 0


def test_hosts_entries_follow_containers(corral: Corral, nets: Networks) -> None:
    nets.create("hostsnet")
    corral.run("-d", "--name", "h1", "--network", "hostsnet", IMAGE, "sleep", "300")
    corral.run("-d", "--name", "h2", "--network", "hostsnet", IMAGE, "sleep", "300")
    h2_ip = ip_of(corral, "h2", "hostsnet")
    assert f"{h2_ip}\th2" in corral("exec", "h1", "cat", "/etc/hosts").stdout
    corral("rename", "h2", "h2-renamed")
    assert f"{h2_ip}\th2-renamed" in corral("exec", "h1", "cat", "/etc/hosts").stdout
    corral("rm", "-f", "h2-renamed")
    assert "h2" not in corral("exec", "h1", "cat", "/etc/hosts").stdout


def test_published_tcp_port_answers_on_host_loopback(corral: Corral) -> None:
    port = free_port()
    cid = corral.run("-d", "-p", f"127.0.0.1:{port}:80", "--hostname", "web", IMAGE, "sh", "-c", HTTPD).stdout.strip()  # fmt: skip
    assert wait_for(lambda: http_get(port) is not None)
    assert http_get(port) == "hello-web\n"
    assert corral("port", cid).stdout.strip() == f"80/tcp -> 127.0.0.1:{port}"
    assert corral("port", cid, "80").stdout.strip() == f"80/tcp -> 127.0.0.1:{port}"
    settings = corral.inspect(cid)["NetworkSettings"]
    assert settings["Ports"] == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
    corral("rm", "-f", cid)
    assert http_get(port) is None
    nothing_left_of(cid)


def test_published_udp_port(corral: Corral) -> None:
    """A UDP echo server in the container (the host's python, chrooted into from a
    read-only bind of /, runs in the container's net namespace)."""
    port = free_port(socket.SOCK_DGRAM)
    server = (
        "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
        "s.bind(('0.0.0.0', 5353))\n"
        "while True:\n d, a = s.recvfrom(512); s.sendto(b'echo:' + d, a)"
    )
    corral.run("-d", "-p", f"127.0.0.1:{port}:5353/udp", "-v", "/:/host:ro", IMAGE, "chroot", "/host", "/usr/bin/python3", "-c", server)  # fmt: skip
    answers: list[bytes] = []

    def ask() -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.5)
            s.sendto(b"ping", ("127.0.0.1", port))
            try:
                answers.append(s.recv(512))
            except TimeoutError:
                return False
        return True

    assert wait_for(ask, timeout=15)
    assert answers[-1] == b"echo:ping"


def test_publish_all_exposed_ports(corral: Corral) -> None:
    cid = corral.run("-d", "-P", "--expose", "80", "--hostname", "pall", IMAGE, "sh", "-c", HTTPD).stdout.strip()  # fmt: skip
    line = corral("port", cid).stdout.strip()
    assert line.startswith("80/tcp -> 0.0.0.0:")
    port = int(line.rsplit(":", 1)[1])
    assert wait_for(lambda: http_get(port) is not None)
    assert http_get(port) == "hello-pall\n"


# ----- modes and settings ------------------------------------------------------------------


def test_container_cannot_change_its_network_or_see_the_hosts(corral: Corral) -> None:
    """Without CAP_NET_ADMIN (not in the default set) the interface is read-only, and the
    host's links are out of sight."""
    script = "ls /sys/class/net; ip link set eth0 down; ip addr add 10.9.9.9/32 dev eth0; ip route del default; ip -4 addr show eth0 | grep -c inet"  # fmt: skip
    out = corral.run("--rm", IMAGE, "sh", "-c", script, check=False)
    assert out.stdout.split() == ["eth0", "lo", "1"]
    assert out.stderr.count("Operation not permitted") == 3
    allowed = corral.run("--rm", "--cap-add", "NET_ADMIN", IMAGE, "ip", "link", "set", "eth0", "down")  # fmt: skip
    assert allowed.returncode == 0


def test_network_none_has_only_loopback(corral: Corral) -> None:
    out = corral.run("--rm", "--network", "none", IMAGE, "ls", "/sys/class/net").stdout.split()
    assert out == ["lo"]


def test_bridge_container_has_address_route_and_loopback(corral: Corral) -> None:
    out = corral.run("--rm", IMAGE, "sh", "-c", "ip -4 addr; ip route").stdout
    subnet = os.environ["CORRAL_DEFAULT_SUBNET"]
    gateway = subnet.rsplit(".", 2)[0] + ".0.1"
    assert "inet 127.0.0.1/8" in out
    assert f"default via {gateway} dev eth0" in out
    assert "eth0" in out and subnet.split("/")[0].rsplit(".", 1)[0] in out


def test_container_mode_shares_the_interface(corral: Corral, nets: Networks) -> None:
    nets.create("sharenet")
    corral.run("-d", "--name", "owner", "--network", "sharenet", IMAGE, "sleep", "300")
    mac = corral("exec", "owner", "cat", "/sys/class/net/eth0/address").stdout.strip()
    joined = corral.run("--rm", "--network", "container:owner", IMAGE, "sh", "-c", "cat /sys/class/net/eth0/address; readlink /proc/self/ns/net").stdout.split()  # fmt: skip
    owner_ns = corral("exec", "owner", "readlink", "/proc/self/ns/net").stdout.strip()
    assert joined == [mac, owner_ns]
    stopped = corral.run("--rm", "--network", "container:nobody-such", IMAGE, "true", check=False)
    assert stopped.returncode == 125 and "nobody-such" in stopped.stderr


def test_internal_network_has_no_route_out(corral: Corral, nets: Networks) -> None:
    nets.create("island", "--internal")
    corral.run("-d", "--name", "i1", "--network", "island", IMAGE, "sh", "-c", "exec nc -ll -p 7000 -e echo pong")  # fmt: skip
    out = corral.run("--rm", "--network", "island", IMAGE, "sh", "-c", "ip route; echo hi | nc -w 3 i1 7000").stdout  # fmt: skip
    assert "default" not in out
    assert "pong" in out
    refused = corral.run("-d", "--network", "island", "-p", "80", IMAGE, "true", check=False)
    assert refused.returncode == 125 and "internal" in refused.stderr


def test_mtu_subnet_gateway_and_static_ip(corral: Corral, nets: Networks) -> None:
    base = os.environ["CORRAL_SUBNET_POOL"].split(".")
    subnet = f"10.{base[1]}.250.0/24"
    nets.create("custom", "--subnet", subnet, "--gateway", f"10.{base[1]}.250.254", "-o", "mtu=1400")  # fmt: skip
    out = corral.run("--rm", "--network", "custom", "--ip", f"10.{base[1]}.250.9", IMAGE, "sh", "-c", "cat /sys/class/net/eth0/mtu; ip -4 addr show eth0; ip route").stdout  # fmt: skip
    assert out.splitlines()[0] == "1400"
    assert f"inet 10.{base[1]}.250.9/24" in out
    assert f"default via 10.{base[1]}.250.254" in out
    doc = json.loads(corral("network", "inspect", "custom").stdout)[0]
    assert doc["IPAM"]["Config"] == [{"Subnet": subnet, "Gateway": f"10.{base[1]}.250.254"}]


def test_connect_and_disconnect_a_running_container(corral: Corral, nets: Networks) -> None:
    nets.create("one")
    nets.create("two")
    corral.run("-d", "--name", "mover", "--network", "one", IMAGE, "sh", "-c", "exec nc -ll -p 7000 -e echo pong")  # fmt: skip
    corral("network", "connect", "two", "mover")
    assert "eth1" in corral("exec", "mover", "ls", "/sys/class/net").stdout.split()
    out = corral.run("--rm", "--network", "two", IMAGE, "sh", "-c", "echo hi | nc -w 3 mover 7000")  # fmt: skip
    assert out.stdout.strip() == "pong"
    corral("network", "disconnect", "two", "mover")
    assert "eth1" not in corral("exec", "mover", "ls", "/sys/class/net").stdout.split()
    gone = corral.run("--rm", "--network", "two", IMAGE, "sh", "-c", "echo hi | nc -w 2 mover 7000", check=False)  # fmt: skip
    assert gone.returncode != 0


def test_dns_and_add_host(corral: Corral) -> None:
    out = corral.run("--rm", "--dns", "192.0.2.53", "--dns-search", "example.test", "--add-host", "db.test:192.0.2.7", IMAGE, "sh", "-c", "cat /etc/resolv.conf /etc/hosts").stdout  # fmt: skip
    assert "nameserver 192.0.2.53" in out
    assert "search example.test" in out
    assert "192.0.2.7\tdb.test" in out


def test_restart_gets_the_network_again(corral: Corral) -> None:
    cid = corral.run("-d", "--restart", "on-failure:1", IMAGE, "sh", "-c", "ip -4 addr show eth0 | grep -c inet; exit 3").stdout.strip()  # fmt: skip
    assert wait_for(lambda: corral.inspect(cid)["State"]["Status"] == "exited", timeout=20)
    assert corral("logs", cid).stdout.split() == ["1", "1"]
    nothing_left_of(cid)


# ----- scale and cleanliness ---------------------------------------------------------------


def run_concurrently(corral: Corral, count: int, *flags: str) -> list[str]:
    """`count` x `corral run -d FLAGS IMAGE sleep 300` at once; their ids."""
    argv = corral.argv("run", "-d", "-q", *flags, IMAGE, "sleep", "300")
    procs = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(count)
    ]
    ids = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        ids.append(out.strip())
    return ids


def test_fifty_concurrent_runs_get_distinct_addresses(corral: Corral, nets: Networks) -> None:
    nets.create("crowd")
    ids = run_concurrently(corral, 50, "--network", "crowd")
    doc = json.loads(corral("network", "inspect", "crowd").stdout)[0]
    addresses = [c["IPv4Address"] for c in doc["Containers"].values()]
    assert len(addresses) == 50 and len(set(addresses)) == 50
    corral("rm", "-f", *ids)
    for cid in ids:
        nothing_left_of(cid)


def test_hundred_run_rm_cycles_leave_nothing(corral: Corral) -> None:
    links_before = links()
    for _ in range(10):
        ids = run_concurrently(corral, 10, "-p", "80")
        corral("rm", "-f", *ids)
        for cid in ids:
            nothing_left_of(cid)
    assert links() - links_before == set()
    assert live() == {"endpoints": [], "ports": []}


def test_kill_9_mid_setup_is_cleaned_by_the_next_command(corral: Corral) -> None:
    """The CLI and the monitor killed at staggered moments of a `run -p`; `rm -f` then
    leaves nothing, and the port can be published again."""
    from corral.kernel.identity import process_alive

    port = free_port()
    for i, delay in enumerate((0.03, 0.08, 0.12, 0.16, 0.2, 0.3)):
        name = f"killed{i}"
        publish = f"127.0.0.1:{port}:80"
        argv = corral.argv("run", "-d", "-q", "--name", name, "-p", publish, IMAGE, "sleep", "300")
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(delay)
        proc.kill()
        proc.wait()
        state_file = None
        for d in (TEST_DATA / "containers").glob("*/spec.json"):
            if json.loads(d.read_text()).get("name") == name:
                state_file = d.parent / "state.json"
        if state_file is not None and state_file.exists():
            monitor = json.loads(state_file.read_text()).get("monitor_pid", 0)
            if monitor and process_alive(monitor, 0):
                os.kill(monitor, 9)
        cid = state_file.parent.name if state_file is not None else ""
        corral("rm", "-f", name, check=False)
        if cid:
            nothing_left_of(cid)
    again = corral.run("-d", "-p", f"127.0.0.1:{port}:80", IMAGE, "sleep", "300")
    corral("rm", "-f", again.stdout.strip())


# ----- bad input ---------------------------------------------------------------------------


def test_overlapping_subnet_is_refused(corral: Corral, nets: Networks) -> None:
    before = links()
    result = corral("network", "create", "--subnet", os.environ["CORRAL_DEFAULT_SUBNET"], "clash", check=False)  # fmt: skip
    assert result.returncode == 1 and "overlaps" in result.stderr
    assert "clash" not in corral("network", "ls").stdout
    assert links() - before == set()
    bad = corral("network", "create", "--subnet", "10.1.2.3/33", "worse", check=False)
    assert bad.returncode == 1 and "invalid subnet" in bad.stderr


def test_port_already_published_or_in_use(corral: Corral) -> None:
    port = free_port()
    corral.run("-d", "--name", "first", "-p", f"{port}:80", IMAGE, "sleep", "300")
    second = corral.run("-d", "--name", "second", "-p", f"{port}:80", IMAGE, "sleep", "300", check=False)  # fmt: skip
    assert second.returncode == 125 and f"{port}/tcp is already published" in second.stderr
    cid = corral("inspect", "-f", "{{.Id}}", "second").stdout.strip()
    nothing_left_of(cid)
    with socket.socket() as listener:  # a host process listening: not shadowed either
        listener.bind(("0.0.0.0", 0))
        listener.listen()
        busy = listener.getsockname()[1]
        third = corral.run("-d", "-p", f"{busy}:80", IMAGE, "true", check=False)
        assert third.returncode == 125 and "in use" in third.stderr


def test_invalid_port_specs_create_nothing(corral: Corral) -> None:
    before = corral.ids()
    for spec in ("80:abc", "8000-8002:80-81", "0:80", "8080:80/sctp", "1.2.3:80:80", "70000"):
        result = corral.run("-p", spec, IMAGE, "true", check=False)
        assert result.returncode == 125 and "invalid port spec" in result.stderr, (spec, result.stderr)  # fmt: skip
    assert corral.ids() == before


def test_network_in_use_cannot_be_removed(corral: Corral, nets: Networks) -> None:
    nets.create("busy")
    corral.run("-d", "--name", "user1", "--network", "busy", IMAGE, "sleep", "300")
    result = corral("network", "rm", "busy", check=False)
    assert result.returncode == 1 and "in use" in result.stderr and "user1" in result.stderr
    assert "busy" in corral("network", "ls").stdout
    corral("stop", "-t", "0", "user1")  # stopped but configured with it: still refused
    assert corral("network", "rm", "busy", check=False).returncode == 1
    predefined = corral("network", "rm", "bridge", check=False)
    assert predefined.returncode == 1 and "pre-defined" in predefined.stderr


def test_network_cli_round_trip(corral: Corral) -> None:
    created = corral("network", "create", "--label", "team=a", "roundtrip").stdout.strip()
    doc = json.loads(corral("network", "inspect", "roundtrip").stdout)[0]
    assert doc["Id"] == created and doc["Labels"] == {"team": "a"}
    bridge = doc["Options"]["com.docker.network.bridge.name"]
    assert bridge in links()
    assert created[:12] in corral("network", "ls", "-q").stdout.split()
    duplicate = corral("network", "create", "roundtrip", check=False)
    assert duplicate.returncode == 1 and "already exists" in duplicate.stderr
    corral("network", "prune", "-f")
    assert "roundtrip" not in corral("network", "ls").stdout
    assert bridge not in links()
