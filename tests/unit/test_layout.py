"""Host layout detection over fixture files shaped like /proc."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.cgroups import Mode, detect
from corral.cgroups.layout import key_of, parse_mountinfo, parse_proc_cgroups
from corral.cgroups.manager import host_dir

PROC_CGROUPS = """#subsys_name\thierarchy\tnum_cgroups\tenabled
cpuset\t3\t1\t1
cpu\t2\t5\t1
cpuacct\t2\t5\t1
memory\t4\t46\t1
pids\t0\t1\t1
"""

HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
33 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
34 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
77 23 0:32 / /mnt/again\\040here rw,relatime - cgroup cgroup rw,memory
"""


def _controllers(_p: Path) -> tuple[str, ...]:
    return ("pids",)


def test_parse_hybrid_comounted() -> None:
    subs = parse_proc_cgroups(PROC_CGROUPS)
    hs = parse_mountinfo(HYBRID, subs, _controllers)
    v1 = [h for h in hs if h.version == 1]
    assert [h.subsystems for h in v1] == [(), ("cpu", "cpuacct"), ("cpuset",), ("memory",)]
    cpu = v1[1]
    assert cpu.id == 2 and cpu.mountpoint == "/sys/fs/cgroup/cpu,cpuacct"
    assert key_of(cpu) == "cpu,cpuacct"
    assert key_of(v1[0]) == "name=systemd"
    # The second mount of the memory hierarchy is the same superblock: listed once.
    assert sum(1 for h in hs if "memory" in h.subsystems) == 1
    v2 = [h for h in hs if h.version == 2]
    assert v2[0].subsystems == ("pids",)


def test_host_dir_with_non_root_mount() -> None:
    subs = parse_proc_cgroups(PROC_CGROUPS)
    text = "50 1 0:40 /lxc/c1 /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
    (h,) = parse_mountinfo(text, subs, _controllers)
    assert h.root == "/lxc/c1"
    assert host_dir(h, "/lxc/c1/corral") == "/sys/fs/cgroup/memory/corral"


def _fake_proc(tmp_path: Path, mountinfo: str, self_cgroup: str, cgroups: str) -> str:
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "mountinfo").write_text(mountinfo)
    (proc / "self" / "cgroup").write_text(self_cgroup)
    (proc / "cgroups").write_text(cgroups)
    return str(proc)


def test_detect_modes(tmp_path: Path) -> None:
    # The statfs check looks at a directory that is not cgroup2 here, so the mounts decide.
    root = str(tmp_path)
    hybrid = _fake_proc(
        tmp_path / "h", HYBRID, "4:memory:/a\n2:cpu,cpuacct:/\n0::/\n", PROC_CGROUPS
    )
    layout = detect(hybrid, root)
    assert layout.mode == Mode.HYBRID
    assert layout.own_paths["memory"] == "/a"
    assert layout.hierarchy_of("cpuacct") is not None
    assert layout.hierarchy_of("pids") is None

    v2_only = "41 31 0:38 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
    layout = detect(_fake_proc(tmp_path / "v2", v2_only, "0::/user.slice\n", PROC_CGROUPS), root)
    assert layout.mode == Mode.V2
    assert layout.own_path(layout.hierarchies[0]) == "/user.slice"

    v1_only = "\n".join(HYBRID.splitlines()[:4]) + "\n"
    layout = detect(_fake_proc(tmp_path / "v1", v1_only, "", PROC_CGROUPS), root)
    assert layout.mode == Mode.V1


def test_detect_real_host() -> None:
    layout = detect()
    assert layout.mode in (Mode.V1, Mode.HYBRID, Mode.V2)
    if layout.mode != Mode.V2:
        # Rule 3: every v1 hierarchy shows up once in /proc/self/cgroup.
        for h in layout.v1:
            assert layout.own_path(h).startswith("/")


@pytest.mark.parametrize("line", ["", "#subsys_name\thierarchy\tnum_cgroups\tenabled"])
def test_proc_cgroups_ignores_headers(line: str) -> None:
    assert parse_proc_cgroups(line) == []
