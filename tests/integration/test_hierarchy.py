"""The article's five steps on a v1 host, and rule 2 in the article's words."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from corral.cgroups import detect, open_manager, parse_params
from corral.cgroups.hierarchy import MountRegistry, mount_hierarchy, unmount_hierarchy
from corral.errors import CgroupInvalid, SubsystemBusy
from tests.conftest import TEST_PARENT, TEST_STATE


@pytest.fixture
def registry() -> MountRegistry:
    return MountRegistry(TEST_STATE)


def _free_subsystem() -> str:
    """A subsystem no mounted hierarchy uses (it may sit alone in a hierarchy that outlived
    an earlier unmount: mounting it alone again is allowed)."""
    layout = detect()
    for s in layout.subsystems:
        in_v2 = layout.unified is not None and s.name in layout.unified.subsystems
        alone = s.hierarchy_id == 0 or [
            x.name for x in layout.subsystems if x.hierarchy_id == s.hierarchy_id
        ] == [s.name]
        if (
            s.enabled
            and alone
            and not in_v2
            and layout.hierarchy_of(s.name) is None
            and s.name in ("net_cls", "net_prio", "perf_event")
        ):
            return s.name
    pytest.skip("no free v1 subsystem to mount on this host")


def test_five_steps_with_a_new_hierarchy(
    tmp_path: Path, registry: MountRegistry, v1_only: None
) -> None:
    subsystem = _free_subsystem()
    where = tmp_path / "hier"
    # Steps 1 and 2: a hierarchy with one subsystem attached, mounted.
    mount_hierarchy(where, [subsystem], registry=registry)
    try:
        layout = detect()
        h = layout.hierarchy_of(subsystem)
        assert h is not None and h.mountpoint == str(where) and h.subsystems == (subsystem,)
        # Rule 3: the new hierarchy's root group holds every task, this one included.
        assert str(os.getpid()) in (where / "cgroup.procs").read_text().split()
        m = open_manager(layout, TEST_PARENT)
        # Steps 3-5: a group, a parameter, a process.
        params = ["net-cls-classid=0x100001"] if subsystem == "net_cls" else []
        m.create("steps", parse_params(params, 1), controllers=[subsystem])
        try:
            group_dir = Path(m.directories("steps")[subsystem])
            assert group_dir.parent.parent == where  # <mount>/<parent>/steps
            if subsystem == "net_cls":
                assert (group_dir / "net_cls.classid").read_text().strip() == str(0x100001)
            pid = os.fork()
            if pid == 0:
                import time

                time.sleep(30)
                os._exit(0)
            try:
                m.add_process("steps", pid)
                line = next(
                    ln
                    for ln in Path(f"/proc/{pid}/cgroup").read_text().splitlines()
                    if subsystem in ln.split(":")[1].split(",")
                )
                assert line.endswith(f"{TEST_PARENT}/steps")
            finally:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
            m.delete("steps")
        finally:
            if m.exists("steps"):
                m.delete("steps", force=True)
            m.remove_parent()
    finally:
        unmount_hierarchy(where, registry)
    assert not where.exists()
    assert detect().hierarchy_of(subsystem) is None


def test_rule_two_is_explained(tmp_path: Path, registry: MountRegistry, v1_only: None) -> None:
    subsystem = _free_subsystem()
    taken = detect().v1[-1].subsystems[0]
    where = tmp_path / "nope"
    with pytest.raises(SubsystemBusy) as info:
        mount_hierarchy(where, [taken, subsystem], registry=registry)
    message = str(info.value)
    assert f"subsystem {taken!r} is already attached to hierarchy" in message
    assert "cannot be attached to a second hierarchy that has other subsystems (rule 2)" in message
    assert not where.exists()
    assert registry.entries() == []


def test_unknown_subsystem_and_foreign_unmount_are_refused(
    tmp_path: Path, registry: MountRegistry
) -> None:
    with pytest.raises(CgroupInvalid, match="unknown subsystem 'bogus'"):
        mount_hierarchy(tmp_path / "x", ["bogus"], registry=registry)
    assert not (tmp_path / "x").exists()
    host = Path(detect().hierarchies[0].mountpoint)
    with pytest.raises(CgroupInvalid, match="never unmounts the host's cgroup hierarchies"):
        unmount_hierarchy(host, registry)
    assert host.is_dir() and any(host.iterdir())
