"""`corral lxc`: LXC's tools over the engine, driven as an LXC user drives them, with
system containers from the busybox template (and the others)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import TEST_DATA
from tests.helpers import networking_supported, skip_without_cpuset
from tests.integration.engine.conftest import IMAGE, Corral, wait_for
from tests.integration.engine.test_tty import Terminal

LXCPATH = TEST_DATA / "lxc"


class Lxc:
    def __init__(self, corral: Corral) -> None:
        self.corral = corral
        self.made: list[str] = []

    def __call__(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:  # fmt: skip
        return self.corral("lxc", *args, check=check, timeout=timeout)

    def create(self, name: str, *args: str, template: str = "busybox") -> str:
        self.made.append(name)
        self("create", "-n", name, "-t", template, *args)
        return name

    def state(self, name: str) -> str:
        return self("info", "-s", "-n", name).stdout.split()[-1]

    def info(self, name: str) -> dict[str, str]:
        rows = [line.split(":", 1) for line in self("info", "-n", name).stdout.splitlines()]
        return {k.strip(): v.strip() for k, v in rows}

    def attach(self, name: str, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:  # fmt: skip
        return self("attach", "-n", name, "--", *command, check=check)

    def cleanup(self) -> None:
        for name in reversed(self.made):
            if (LXCPATH / name).exists():
                self("destroy", "-f", "-s", "-n", name, check=False)


@pytest.fixture
def lxc(corral: Corral) -> Iterator[Lxc]:
    tool = Lxc(corral)
    yield tool
    tool.cleanup()


def write_config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "extra.conf"
    path.write_text(text)
    return str(path)


NO_NET = "lxc.net.0.type = empty\n"


def test_whole_lifecycle(lxc: Lxc, corral: Corral) -> None:
    lxc.create("life")
    assert lxc("ls").stdout.split() == ["life"]
    assert lxc.state("life") == "STOPPED"
    lxc("start", "-n", "life")
    assert lxc("wait", "-n", "life", "-s", "RUNNING", "-t", "10").returncode == 0
    info = lxc.info("life")
    assert info["State"] == "RUNNING" and int(info["PID"]) > 1
    assert Path(f"/proc/{info['PID']}/cmdline").read_bytes().split(b"\0")[0] == b"init"
    fancy = lxc("ls", "--fancy").stdout.splitlines()
    assert fancy[0].split()[:3] == ["NAME", "STATE", "AUTOSTART"]
    assert fancy[1].split()[:2] == ["life", "RUNNING"]
    assert lxc("ls", "--stopped").stdout.strip() == ""
    assert lxc("ls", "-F", "name,pid").stdout.splitlines()[1].split() == ["life", info["PID"]]
    started = time.monotonic()
    lxc("stop", "-n", "life", "-t", "30")
    assert time.monotonic() - started < 10  # busybox init halts on SIGUSR1 in about a second
    assert lxc.state("life") == "STOPPED"
    lxc("start", "-n", "life")
    lxc("stop", "-k", "-n", "life")
    assert lxc.state("life") == "STOPPED"
    again = lxc("stop", "-n", "life", check=False)
    assert again.returncode == 1 and "not running" in again.stderr
    refused = corral("rm", "life", check=False)
    assert refused.returncode == 1 and "corral lxc destroy" in refused.stderr
    cid = json.loads(corral("inspect", "life").stdout)[0]["Id"]
    assert lxc("destroy", "-n", "life").stdout.strip() == "Destroyed container life"
    assert not (LXCPATH / "life").exists()
    assert corral("inspect", cid, check=False).returncode != 0
    assert lxc("ls").stdout.strip() == ""


def test_attach_lands_in_every_namespace_and_the_cgroup(lxc: Lxc) -> None:
    lxc.create("ns")
    lxc("start", "-n", "ns")
    pid = lxc.info("ns")["PID"]
    kinds = ("pid", "net", "uts", "ipc", "mnt", "cgroup")
    script = "; ".join(f"readlink /proc/self/ns/{k}" for k in kinds) + "; cat /proc/self/cgroup; echo --; cat /proc/1/cgroup"  # fmt: skip
    out = lxc.attach("ns", "sh", "-c", script).stdout.split("--\n")
    ns_lines = out[0].splitlines()[: len(kinds)]
    assert ns_lines == [os.readlink(f"/proc/{pid}/ns/{k}") for k in kinds]
    own_cgroup, init_cgroup = out[0].splitlines()[len(kinds) :], out[1].splitlines()
    assert own_cgroup == init_cgroup
    host_view = Path(f"/proc/{pid}/cgroup").read_text()
    cid = lxc.corral.inspect("ns")["Id"]
    assert cid in host_view
    assert lxc.attach("ns", "hostname").stdout.strip() == "ns"
    assert lxc.attach("ns", "sh", "-c", "exit 5", check=False).returncode == 5


def test_attach_environment(lxc: Lxc) -> None:
    lxc.create("envs")
    lxc("start", "-n", "envs")
    os.environ["CORRAL_LXC_TEST_VAR"] = "from-the-caller"
    try:
        kept = lxc("attach", "-n", "envs", "-v", "EXTRA=1", "--", "env").stdout.splitlines()
        cleared = lxc("attach", "-n", "envs", "--clear-env", "-v", "EXTRA=1", "--", "env").stdout.splitlines()  # fmt: skip
    finally:
        del os.environ["CORRAL_LXC_TEST_VAR"]
    assert "CORRAL_LXC_TEST_VAR=from-the-caller" in kept and "EXTRA=1" in kept
    assert "CORRAL_LXC_TEST_VAR=from-the-caller" not in cleared
    assert "EXTRA=1" in cleared and "container=lxc" in cleared


def test_cgroup_memory_limit_is_live_and_felt(lxc: Lxc) -> None:
    lxc.create("mem")
    lxc("start", "-n", "mem")
    lxc("cgroup", "-n", "mem", "memory.limit_in_bytes", "32M")  # v1 name, either host
    values = lxc("cgroup", "-n", "mem", "memory.max").stdout.split()  # v2 name, read back
    assert values[-1] == str(32 * 1024 * 1024)
    hog = lxc.attach("mem", "sh", "-c", "head -c 100m /dev/zero | tail > /dev/null", check=False)
    assert hog.returncode != 0  # tail, holding 100 MiB, was OOM-killed at 32 MiB
    bad = lxc("cgroup", "-n", "mem", "memory.limit_in_bytes", "lots", check=False)
    assert bad.returncode == 1 and "lots" in bad.stderr


def test_cpuset_binding_from_config_and_live(lxc: Lxc, tmp_path: Path) -> None:
    skip_without_cpuset()
    lxc.create("pin", "-f", write_config(tmp_path, NO_NET + "lxc.cgroup.cpuset.cpus = 0\n"))
    lxc("start", "-n", "pin")
    grep = ("grep", "Cpus_allowed_list", "/proc/self/status")
    assert lxc.attach("pin", *grep).stdout.split()[-1] == "0"
    if os.cpu_count() and os.cpu_count() > 1:  # type: ignore[operator]
        lxc("cgroup", "-n", "pin", "cpuset.cpus", "1")
        assert lxc.attach("pin", *grep).stdout.split()[-1] == "1"


def test_freeze_stops_progress(lxc: Lxc) -> None:
    lxc.create("ice")
    lxc("start", "-n", "ice")
    lxc.attach("ice", "sh", "-c", "(i=0; while true; do i=$((i+1)); echo $i > /tmp/count; done) > /dev/null 2>&1 &")  # fmt: skip
    counter = LXCPATH / "ice" / "rootfs" / "tmp" / "count"

    def count() -> int:
        text = counter.read_text().strip() if counter.exists() else ""
        return int(text) if text.isdigit() else -1

    assert wait_for(lambda: count() > 10)
    lxc("freeze", "-n", "ice")
    assert lxc.state("ice") == "FROZEN"
    time.sleep(0.2)
    frozen_at = count()
    time.sleep(0.5)
    assert count() == frozen_at
    lxc("unfreeze", "-n", "ice")
    assert wait_for(lambda: count() > frozen_at)
    assert lxc.state("ice") == "RUNNING"


def test_execute_runs_under_a_minimal_init(lxc: Lxc) -> None:
    lxc.create("app")
    out = lxc("execute", "-n", "app", "--", "sh", "-c", "echo $$ $PPID; cat /proc/1/cmdline | tr '\\0' ' '; exit 7", check=False)  # fmt: skip
    assert out.returncode == 7
    lines = out.stdout.splitlines()
    assert lines[0] == "2 1"  # the command is pid 1's child
    assert lines[1].startswith("/sbin/corral-init -- sh")
    assert lxc.state("app") == "STOPPED"


def test_start_and_execute_right_after_stop_k(lxc: Lxc, corral: Corral) -> None:
    """stop -k returns when init is gone, while its monitor still records the exit and
    cleans up; a start or execute at once after it (a script, with no interpreter start-up
    in between: the library in one process) waits for that instead of failing."""
    lxc.create("quick")
    script = (
        "import sys\n"
        "from corral.lxc.manager import Lxc\n"
        "m = Lxc(sys.argv[1])\n"
        "for _ in range(3):\n"
        "    m.start('quick')\n"
        "    m.stop('quick', kill=True)\n"
        "    assert m.execute('quick', ['true']) == 0\n"
        "    assert m.state('quick') == 'STOPPED'\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, corral.data_root],
        check=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert lxc.state("quick") == "STOPPED"


def test_config_errors_name_the_line_and_create_nothing(lxc: Lxc, tmp_path: Path) -> None:
    for text, message in (
        (
            "lxc.uts.name = ok\n\nlxc.no.such.key = 1\n",
            "extra.conf:3: unknown key 'lxc.no.such.key'",
        ),
        ("lxc.start.auto = maybe\n", "extra.conf:1: expected 0 or 1"),
        ("# comment\nthis is not a key\n", "extra.conf:2: expected 'key = value'"),
        ("lxc.net.0.ipv4.address = 10.1.2.3\n", "extra.conf:1: invalid IPv4 address"),
        (
            "lxc.hook.pre-start = /bin/true\n",
            "extra.conf:1: lxc.hook.pre-start is an LXC key Corral does not apply",
        ),
    ):
        result = lxc("create", "-n", "broken", "-t", "busybox", "-f", write_config(tmp_path, text), check=False)  # fmt: skip
        assert result.returncode == 1 and message in result.stderr, (text, result.stderr)
        assert not (LXCPATH / "broken").exists()
        assert lxc.corral("inspect", "broken", check=False).returncode != 0
    unknown = lxc("create", "-n", "broken", "-t", "nosuch", check=False)
    assert unknown.returncode == 1 and "unknown template" in unknown.stderr


@pytest.mark.skipif(not networking_supported(), reason="needs bridges")
def test_network_link_to_a_corral_network(lxc: Lxc, corral: Corral, tmp_path: Path) -> None:
    corral("network", "create", "--subnet", "10.251.77.0/24", "lxcnet")
    try:
        config = (
            "lxc.net.0.type = veth\nlxc.net.0.link = lxcnet\nlxc.net.0.flags = up\n"
            "lxc.net.0.ipv4.address = 10.251.77.50/24\nlxc.net.0.ipv4.gateway = auto\n"
            "lxc.net.0.name = lan0\nlxc.net.0.mtu = 1400\nlxc.net.0.hwaddr = 02:16:3e:xx:xx:01\n"
        )
        lxc.create("netted", "-f", write_config(tmp_path, config))
        written = (LXCPATH / "netted" / "config").read_text()
        mac = next(line.split("=")[1].strip() for line in written.splitlines() if "hwaddr" in line)
        assert mac.startswith("02:16:3e:") and mac.endswith(":01") and "x" not in mac
        lxc("start", "-n", "netted")
        assert "10.251.77.50" in lxc.info("netted")["IP"]
        inside = lxc.attach("netted", "sh", "-c", "cat /sys/class/net/lan0/mtu /sys/class/net/lan0/address; ip route").stdout  # fmt: skip
        assert inside.splitlines()[:2] == ["1400", mac]
        assert "default via 10.251.77.1 dev lan0" in inside
        lxc.attach("netted", "sh", "-c", "nc -ll -p 7000 -e echo from-lxc > /dev/null 2>&1 &")
        out = corral.run("--rm", "--network", "lxcnet", IMAGE, "sh", "-c", "sleep 0.3; echo | nc -w 3 10.251.77.50 7000")  # fmt: skip
        assert out.stdout.strip() == "from-lxc"
        lxc("stop", "-k", "-n", "netted")
        lxc("destroy", "-n", "netted")
    finally:
        corral("network", "rm", "lxcnet", check=False)


def test_copy_snapshot_is_an_overlay_of_the_original(lxc: Lxc) -> None:
    lxc.create("orig")
    lxc.made.append("snap")
    lxc("copy", "-n", "orig", "-N", "snap", "-s")
    lxc("start", "-n", "snap")
    lxc.attach("snap", "sh", "-c", "echo changed > /etc/motd; rm /bin/vi")
    assert not (LXCPATH / "orig" / "rootfs" / "etc" / "motd").exists()
    assert (LXCPATH / "orig" / "rootfs" / "bin" / "vi").is_symlink()
    assert (LXCPATH / "snap" / "delta0" / "etc" / "motd").read_text() == "changed\n"
    lxc("stop", "-k", "-n", "snap")
    refused = lxc("destroy", "-n", "orig", check=False)
    assert refused.returncode == 1 and "snap" in refused.stderr
    out = lxc("destroy", "-s", "-n", "orig").stdout
    assert "Destroyed container snap" in out and "Destroyed container orig" in out
    assert not (LXCPATH / "snap").exists()


def test_full_copy(lxc: Lxc) -> None:
    lxc.create("src")
    lxc.made.append("dst")
    lxc("copy", "-n", "src", "-N", "dst")
    lxc("start", "-n", "dst")
    assert lxc.attach("dst", "hostname").stdout.strip() == "dst"


def test_autostart_in_order(lxc: Lxc, tmp_path: Path) -> None:
    for name, order in (("auto-low", 1), ("auto-high", 9)):
        conf = NO_NET + f"lxc.start.auto = 1\nlxc.start.order = {order}\nlxc.group = web\n"
        lxc.create(name, "-f", write_config(tmp_path, conf))
    lxc.create("manual", "-f", write_config(tmp_path, NO_NET))
    assert lxc("autostart", "-L").stdout.split() == ["auto-high", "auto-low"]
    assert lxc("autostart", "-g", "db", "-L").stdout.split() == []
    assert lxc("autostart").stdout.split() == ["auto-high", "auto-low"]
    assert [lxc.state(n) for n in ("auto-high", "auto-low", "manual")] == ["RUNNING", "RUNNING", "STOPPED"]  # fmt: skip


def test_console_and_its_escape(lxc: Lxc) -> None:
    lxc.create("tty")
    lxc("start", "-n", "tty")
    term = Terminal(lxc.corral.argv("lxc", "console", "-n", "tty"))
    term.expect(b"type <Ctrl+a q> to leave")
    time.sleep(0.3)
    term.send(b"echo $((6*7))\r")
    term.expect(b"42")
    term.expect(b"# ")
    term.send(b"\x01q")  # ctrl-a q
    assert term.exit_code() == 0
    assert lxc.state("tty") == "RUNNING"


def test_host_template_shares_usr_read_only(lxc: Lxc) -> None:
    lxc.create("hosty", template="host")
    lxc("start", "-n", "hosty")
    out = lxc.attach("hosty", "/usr/bin/sh", "-c", "ls /usr/bin/python3 && touch /usr/x; echo rc=$?", check=False)  # fmt: skip
    assert "/usr/bin/python3" in out.stdout and "rc=1" in out.stdout
    assert "Read-only" in out.stderr


def test_oci_template_from_the_image_store(lxc: Lxc) -> None:
    lxc.create("fromimage", "--", "--image", IMAGE, template="oci")
    config = (LXCPATH / "fromimage" / "config").read_text()
    assert "lxc.init.cmd = sh" in config
    assert (LXCPATH / "fromimage" / "rootfs" / "bin" / "busybox").exists()
    lxc("start", "-n", "fromimage")
    assert lxc.attach("fromimage", "cat", "/proc/1/cmdline").stdout.startswith("sh")


def test_unprivileged_container_through_idmap(lxc: Lxc, tmp_path: Path) -> None:
    conf = NO_NET + "lxc.idmap = u 0 200000 65536\nlxc.idmap = g 0 200000 65536\n"
    lxc.create("unpriv", "-f", write_config(tmp_path, conf))
    assert (LXCPATH / "unpriv" / "rootfs" / "bin" / "busybox").stat().st_uid == 200000
    lxc("start", "-n", "unpriv")
    pid = lxc.info("unpriv")["PID"]
    assert os.stat(f"/proc/{pid}").st_uid == 200000  # root inside, 200000 outside
    inside = lxc.attach("unpriv", "sh", "-c", "id -u; cat /proc/self/uid_map").stdout.split()
    assert inside == ["0", "0", "200000", "65536"]


@pytest.mark.skipif(not shutil.which("lxc-info"), reason="LXC is not installed")
def test_lxc_itself_accepts_the_same_config(tmp_path: Path) -> None:
    """The keys above, in one file LXC 5 reads too (lxc-info parses a container's config)."""
    from corral.lxc import config as lxcconfig

    text = (
        "lxc.uts.name = both\nlxc.rootfs.path = dir:/var/empty\n"
        "lxc.cgroup.memory.limit_in_bytes = 64M\nlxc.cgroup2.memory.max = 64M\n"
        "lxc.cgroup.cpuset.cpus = 0\nlxc.net.0.type = veth\nlxc.net.0.link = corral0\n"
        "lxc.net.0.flags = up\nlxc.net.0.ipv4.address = 10.66.0.9/16\n"
        "lxc.mount.entry = /usr usr none bind,ro 0 0\nlxc.init.cmd = /sbin/init\n"
        "lxc.environment = A=1\nlxc.idmap = u 0 100000 65536\nlxc.idmap = g 0 100000 65536\n"
        "lxc.start.auto = 1\nlxc.signal.halt = SIGUSR1\nlxc.signal.stop = SIGKILL\n"
    )
    (tmp_path / "both").mkdir()
    (tmp_path / "both" / "config").write_text(text)
    ours = lxcconfig.parse(text, "config")
    assert ours.uts_name == "both" and ours.start_auto and len(ours.idmaps) == 2
    theirs = subprocess.run(["lxc-info", "-P", str(tmp_path), "-n", "both", "-c", "lxc.uts.name"], capture_output=True, text=True)  # fmt: skip
    assert theirs.returncode == 0 and "both" in theirs.stdout, theirs.stderr
    (tmp_path / "both" / "config").write_text(text + "lxc.no.such.key = 1\n")
    theirs = subprocess.run(["lxc-info", "-P", str(tmp_path), "-n", "both", "-c", "lxc.uts.name"], capture_output=True, text=True)  # fmt: skip
    assert theirs.returncode != 0
    with pytest.raises(Exception, match="unknown key"):
        lxcconfig.parse(text + "lxc.no.such.key = 1\n", "config")


@pytest.mark.skipif(not shutil.which("debootstrap"), reason="needs debootstrap")
def test_debian_template_creates_boots_and_halts(lxc: Lxc, tmp_path: Path) -> None:
    """From the cache scripts/setup.sh fills (debootstrap from the host's mirror, ~30 s
    here): the mirror given to the test is unreachable, so no test downloads anything."""
    no_mirror = ("--", "--mirror", "http://127.0.0.1:9/debian")
    lxc.create("deb", "-f", write_config(tmp_path, NO_NET), *no_mirror, template="debian")
    rootfs = LXCPATH / "deb" / "rootfs"
    assert (rootfs / "etc" / "debian_version").exists()
    started = time.monotonic()
    lxc.made.append("deb2")
    lxc("create", "-n", "deb2", "-t", "debian", "-f", write_config(tmp_path, NO_NET), *no_mirror)
    assert time.monotonic() - started < 20  # from the cache, not the mirror
    lxc("start", "-n", "deb")
    assert wait_for(lambda: lxc.attach("deb", "cat", "/proc/1/cmdline").stdout.startswith("init [2]"), timeout=30)  # fmt: skip
    started = time.monotonic()
    lxc("stop", "-n", "deb", "-t", "30")  # SIGPWR -> powerwait -> shutdown -h now
    assert time.monotonic() - started < 15
    assert lxc.state("deb") == "STOPPED"


def test_kill_9_of_create_and_start_then_the_next_command_cleans(lxc: Lxc, corral: Corral) -> None:
    """create killed at staggered moments: the same name can be created again (the half
    made one is removed); start killed likewise: destroy -f leaves nothing (the session's
    leak check then finds no cgroup, mount or process)."""
    for i, delay in enumerate((0.02, 0.05, 0.06, 0.07, 0.08, 0.1, 0.12)):
        name = f"killc{i}"
        lxc.made.append(name)
        proc = subprocess.Popen(corral.argv("lxc", "create", "-n", name, "-t", "busybox"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(delay)
        proc.kill()
        proc.wait()
        if name in lxc("ls", "-1").stdout.split():
            lxc("destroy", "-n", name)  # it finished before the kill: an ordinary destroy
        lxc("create", "-n", name, "-t", "busybox", "-f", write_config(Path(str(TEST_DATA)), NO_NET))  # fmt: skip
        proc = subprocess.Popen(corral.argv("lxc", "start", "-n", name), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(delay)
        proc.kill()
        proc.wait()
        lxc("destroy", "-f", "-n", name)
        assert not (LXCPATH / name).exists()
        assert corral("inspect", name, check=False).returncode != 0
