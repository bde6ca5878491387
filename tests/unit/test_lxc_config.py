"""LXC's config format as Corral reads it: the keys it applies, and errors with lines."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from corral.errors import ConfigError
from corral.lxc import config


def test_keys_users_know() -> None:
    text = """
# a comment
lxc.uts.name = web
lxc.rootfs.path = dir:/var/lib/lxc/web/rootfs
lxc.cgroup.memory.limit_in_bytes = 64M
lxc.cgroup2.cpuset.cpus = 0-1
lxc.net.0.type = veth
lxc.net.0.link = corral0
lxc.net.0.flags = up
lxc.net.0.ipv4.address = 10.66.0.5/16
lxc.mount.entry = /srv srv none bind,create=dir 0 0
lxc.init.cmd = /sbin/init --verbose
lxc.environment = A=1
lxc.idmap = u 0 100000 65536
lxc.idmap = g 0 100000 65536
lxc.start.auto = 1
lxc.start.order = 5
lxc.group = web, db
lxc.signal.halt = SIGUSR1
lxc.signal.stop = 9
lxc.cap.drop = sys_admin
"""
    c = config.parse(text, "config")
    assert c.uts_name == "web" and c.rootfs == "dir:/var/lib/lxc/web/rootfs"
    assert c.cgroup == [("memory.limit_in_bytes", "64M"), ("cpuset.cpus", "0-1")]
    assert c.nets == {0: {"type": "veth", "link": "corral0", "flags": "up", "ipv4.address": "10.66.0.5/16"}}  # fmt: skip
    assert c.mounts == ["/srv srv none bind,create=dir 0 0"]
    assert c.init_cmd == ["/sbin/init", "--verbose"] and c.environment == ["A=1"]
    assert c.idmaps == [("u", 0, 100000, 65536), ("g", 0, 100000, 65536)]
    assert (c.start_auto, c.start_order, c.groups) == (True, 5, ["web", "db"])
    assert (c.signal_halt, c.signal_stop) == (signal.SIGUSR1, 9)
    assert c.cap_drop == ["sys_admin"]


def test_empty_value_clears_a_list_and_lxc_net_clears_networks() -> None:
    c = config.parse("lxc.cap.drop = a b\nlxc.cap.drop =\nlxc.net.0.type = veth\nlxc.net =\n", "c")
    assert c.cap_drop == [] and c.nets == {}


def test_include(tmp_path: Path) -> None:
    (tmp_path / "common.conf").write_text("lxc.start.auto = 1\n")
    c = config.parse(f"lxc.include = {tmp_path / 'common.conf'}\nlxc.uts.name = x\n", "c")
    assert c.start_auto and c.uts_name == "x"
    (tmp_path / "common.conf").write_text("lxc.bogus = 1\n")
    with pytest.raises(ConfigError, match=r"common\.conf:1: unknown key 'lxc.bogus'"):
        config.parse(f"lxc.include = {tmp_path / 'common.conf'}\n", "c")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lxc.utsname = old\n", "c:1: unknown key 'lxc.utsname'"),
        ("\n\nnot a pair\n", "c:3: expected 'key = value'"),
        ("foo = bar\n", "c:1: unknown key 'foo'"),
        ("lxc.start.auto = yes\n", "c:1: expected 0 or 1"),
        ("lxc.signal.halt = SIGNOPE\n", "c:1: unknown signal"),
        ("lxc.net.0.type = macvlan\n", "c:1: network type 'macvlan'"),
        ("lxc.net.x.type = veth\n", "c:1: malformed network key"),
        ("lxc.net.0.ipv4.address = 10.0.0.1\n", "c:1: invalid IPv4 address"),
        ("lxc.net.0.bogus = 1\n", "c:1: lxc.net.0.bogus is not a network key"),
        ("lxc.idmap = u 0 100000\n", "c:1: lxc.idmap is"),
        ("lxc.mount.entry = /a\n", "c:1: lxc.mount.entry needs"),
        ("lxc.mount.auto = proc:weird\n", "c:1: lxc.mount.auto value 'proc:weird'"),
        ("lxc.arch = armhf\n", "c:1: lxc.arch 'armhf'"),
        (
            "lxc.apparmor.profile = generated\n",
            "c:1: lxc.apparmor.profile is an LXC key Corral does not apply",
        ),
        ("lxc.uts.name = bad_name!\n", "c:1: invalid host name"),
        ("lxc.net.0.hwaddr = 02:zz:00:00:00:01\n", "c:1: invalid MAC address"),
        ("lxc.net.0.ipv4.gateway = somewhere\n", "c:1: invalid gateway"),
        ("lxc.net.0.name = a-name-far-too-long\n", "c:1: invalid interface name"),
    ],
)
def test_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        config.parse(text, "c")
    assert message in str(err.value)
