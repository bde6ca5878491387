"""Shared fixtures. Integration tests need root and the real kernel; every test's cgroups go
under a parent named for this test run, and a leak check runs after the whole session."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import children_of, networking_supported, processes_mentioning

# One cgroup parent per test run, also for the `corral` commands the tests start.
TEST_PARENT = f"corral-test-{os.getpid()}"
os.environ["CORRAL_CGROUP_PARENT"] = TEST_PARENT
TEST_STATE = Path(f"/run/corral-test-{os.getpid()}")
os.environ["CORRAL_ROOT"] = str(TEST_STATE)
# Images and containers of this run: never the machine's /var/lib/corral.
TEST_DATA = Path(f"/var/tmp/corral-test-data-{os.getpid()}")
os.environ["CORRAL_DATA_ROOT"] = str(TEST_DATA)


def _free_octet() -> int:
    """X for this run's 10.X.0.0/16 range: from the pid, moved on past any X the host
    already routes (another test run's bridge, say)."""
    try:
        from corral.network import netlink

        taken = netlink.host_prefixes()
    except Exception:  # no netlink here: the pid alone
        taken = []
    for step in range(100):
        octet = 100 + (os.getpid() + step) % 100
        if not any(prefix.startswith(f"10.{octet}.") for prefix in taken):
            return octet
    return 100 + os.getpid() % 100


# Networks of this run: their own bridge, nft table and subnets, clear of other runs'.
_NET = _free_octet()
os.environ["CORRAL_BRIDGE"] = f"crlt{os.getpid()}"[:15]
os.environ["CORRAL_NFT_TABLE"] = f"corral_test_{os.getpid()}"
os.environ["CORRAL_DEFAULT_SUBNET"] = f"10.{_NET}.0.0/24"
os.environ["CORRAL_SUBNET_POOL"] = f"10.{_NET}.64.0/18"

IS_ROOT = os.geteuid() == 0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason="needs root and the real kernel")
    for item in items:
        if "integration" in item.nodeid.split("/") and not IS_ROOT:
            item.add_marker(skip)


def _mounts() -> set[str]:
    return set(Path("/proc/self/mountinfo").read_text().splitlines())


def _mount_points() -> set[str]:
    return {line.split()[4] for line in _mounts()}


def _named_netns() -> set[str]:
    try:
        return set(os.listdir("/run/netns"))
    except FileNotFoundError:
        return set()


def _network_leaks(before_links: set[str]) -> list[str]:
    """Links, nft rules and leases the run left. The default network's bridge is taken
    down the way a user would (`network prune` does this) before looking."""
    from corral.errors import CorralError
    from corral.network import netlink, networks, nft
    from corral.network.state import NetworkState

    problems = []
    try:
        networks.release_default(str(TEST_DATA))
    except CorralError as err:
        problems.append(f"the default network could not be taken down: {err}")
    state = NetworkState(str(TEST_DATA))
    live = state.live()
    if live.endpoints or live.ports:
        problems.append(f"leases left: {live.endpoints} {live.ports}")
    user_networks = [n.name for n in state.networks() if n.name != "bridge"]
    if user_networks:
        problems.append(f"networks left: {user_networks}")
    for n in state.networks():
        if n.name != "bridge":
            networks.unrealize(n, state)
    new_links = set(os.listdir("/sys/class/net")) - before_links
    if new_links:
        problems.append(f"links left: {sorted(new_links)}")
        for name in new_links:
            netlink.delete_link(name)
    if nft.listing():
        problems.append(f"nft table {nft.table()} left")
        nft.drop_table()
    return problems


def corral_cmd() -> list[str]:
    return [sys.executable, "-m", "corral.cli.main"]


@pytest.fixture(scope="session", autouse=True)
def leak_check() -> Iterator[None]:
    """After the suite: no test cgroup, mount, or child process is left behind."""
    before_mounts = _mount_points()
    before_links = set(os.listdir("/sys/class/net"))
    before_netns = _named_netns()
    yield
    problems: list[str] = []
    if IS_ROOT and networking_supported():
        problems += _network_leaks(before_links)
    if _named_netns() - before_netns:
        problems.append(f"named net namespaces left: {sorted(_named_netns() - before_netns)}")
    if IS_ROOT:
        from corral.cgroups import open_manager

        manager = open_manager(parent=TEST_PARENT)
        leftovers = manager.children()
        if leftovers:
            problems.append(f"cgroups left under {TEST_PARENT}: {leftovers}")
            for group in leftovers:  # clean up anyway, then fail
                try:
                    manager.delete(group, force=True)
                except Exception as err:
                    problems.append(f"could not remove {group}: {err}")
        manager.remove_parent()
        # runc also makes the parent in the named (systemd) and unified hierarchies: remove
        # those when empty, and report any that still hold groups.
        from corral.cgroups import detect

        for h in detect().hierarchies:
            for top in sorted(Path(h.mountpoint).rglob(TEST_PARENT)):
                for d in [*sorted((p for p in top.rglob("*") if p.is_dir()), reverse=True), top]:
                    try:
                        d.rmdir()
                    except OSError:
                        problems.append(f"cgroup directory left: {d}")
    new_mounts = _mount_points() - before_mounts
    if new_mounts:
        problems.append(f"mounts left: {sorted(new_mounts)}")
    kids = children_of(os.getpid())
    if kids:
        problems.append(f"child processes left: {kids}")
    monitors = processes_mentioning(str(TEST_DATA))
    if monitors:
        problems.append(f"engine processes left (monitors): {monitors}")
    if TEST_STATE.exists():
        import shutil

        shutil.rmtree(TEST_STATE, ignore_errors=True)
    if TEST_DATA.exists():
        import shutil

        shutil.rmtree(TEST_DATA, ignore_errors=True)
    assert not problems, "leak check failed:\n  " + "\n  ".join(problems)
