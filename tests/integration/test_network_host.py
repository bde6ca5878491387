"""Host-wide settings and realization, each test in a net namespace of its own (forked
child), so ip_forward, bridges and nft tables of the machine are never touched."""

from __future__ import annotations

import os
import subprocess
import tempfile

import pytest

from corral.kernel.namespaces import CLONE_NEWNET, unshare
from tests.helpers import in_child, networking_supported

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not networking_supported(), reason="needs bridges and nftables"
)


def _fresh_netns(tmp: str) -> None:
    unshare(CLONE_NEWNET)
    os.environ["CORRAL_ROOT"] = os.path.join(tmp, "run")
    os.environ["CORRAL_NFT_TABLE"] = "corral_nstest"
    os.environ["CORRAL_BRIDGE"] = "crlns0"


def _forwarding() -> str:
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        return f.read().strip()


def test_ip_forward_is_on_only_while_a_network_needs_it() -> None:
    def scenario() -> list[str]:
        from corral.network import networks

        with tempfile.TemporaryDirectory() as tmp:
            _fresh_netns(tmp)
            with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
                f.write("0")  # a new namespace copies the host's setting: start from off
            seen = [_forwarding()]
            networks.create(tmp, "internal-only", subnet="10.44.1.0/24", internal=True)
            seen.append(_forwarding())  # an internal network routes nothing out
            networks.create(tmp, "routed", subnet="10.44.2.0/24")
            seen.append(_forwarding())
            networks.remove(tmp, "routed")
            seen.append(_forwarding())
            networks.remove(tmp, "internal-only")
            tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True)
            seen.append(tables.stdout.strip() or "no tables")
            return seen

    assert in_child(scenario) == ["0", "0", "1", "0", "no tables"]


def test_forwarding_left_alone_when_already_on() -> None:
    def scenario() -> list[str]:
        from corral.network import networks

        with tempfile.TemporaryDirectory() as tmp:
            _fresh_netns(tmp)
            with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
                f.write("1")
            networks.create(tmp, "routed", subnet="10.44.2.0/24")
            networks.remove(tmp, "routed")
            return [_forwarding()]

    assert in_child(scenario) == ["1"]


def test_realized_again_after_a_reboot_without_duplicate_rules() -> None:
    """A reboot loses the bridge, the table and the run directory, not the definition."""

    def scenario() -> list[object]:
        import shutil

        from corral.network import netlink, networks, nft
        from corral.network.state import NetworkState

        with tempfile.TemporaryDirectory() as tmp:
            _fresh_netns(tmp)
            net = networks.create(tmp, "survivor", subnet="10.44.3.0/24")
            before = sorted(r for r in nft.tags_in_use())
            netlink.delete_link(net.bridge)  # what a reboot does
            nft.drop_table()
            shutil.rmtree(os.environ["CORRAL_ROOT"])
            state = NetworkState(tmp)
            with state.lock():
                networks.realize(state.load("survivor"))
                networks.realize(state.load("survivor"))  # twice: nothing doubles
            after = sorted(r for r in nft.tags_in_use())
            rules = len([i for i in nft.listing() if "rule" in i])
            networks.remove(tmp, "survivor")
            return [before == after, netlink.link_exists(net.bridge) is False, rules]

    assert in_child(scenario) == [True, True, 2 + 3]  # 2 base jumps + 3 network rules
