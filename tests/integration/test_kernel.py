"""The kernel layer on the real kernel, as root. Everything that changes process state runs
in a forked child (tests.helpers.in_child) so the test process itself is never altered."""

from __future__ import annotations

import errno
import os
import resource
import signal
import socket
import stat
import time
from pathlib import Path

import pytest

from corral import kernel
from corral.errors import KernelError
from corral.kernel import caps, mount, namespaces, prctl
from tests.helpers import in_child, wait_until


def test_unshare_uts_and_sethostname_leave_the_host_alone() -> None:
    host = socket.gethostname()

    def child() -> tuple[str, str, str]:
        kernel.unshare(namespaces.CLONE_NEWUTS)
        kernel.sethostname("corral-test")
        kernel.setdomainname("corral.example")
        return (
            socket.gethostname(),
            kernel.process.getdomainname(),
            os.readlink("/proc/self/ns/uts"),
        )

    name, domain, ns = in_child(child)
    assert (name, domain) == ("corral-test", "corral.example")
    assert ns != os.readlink("/proc/self/ns/uts")
    assert socket.gethostname() == host


@pytest.mark.parametrize("kind", ["mount", "uts", "ipc", "network", "cgroup", "time", "user"])
def test_unshare_each_namespace(kind: str) -> None:
    proc_name = namespaces.NS_PROC_NAMES[kind]
    if not os.path.exists(f"/proc/self/ns/{proc_name}"):
        pytest.skip(f"this kernel has no {kind} namespace (User-Mode Linux has no time namespace)")

    def child() -> str:
        kernel.unshare(kernel.namespace_flag(kind))
        return os.readlink(f"/proc/self/ns/{proc_name}")

    # time namespaces apply to children: the caller's own entry is 'time_for_children'.
    if kind == "time":

        def child() -> str:
            kernel.unshare(namespaces.CLONE_NEWTIME)
            return os.readlink("/proc/self/ns/time_for_children")

    assert in_child(child) != os.readlink(f"/proc/self/ns/{proc_name}")


def test_unshare_pid_puts_the_next_child_at_pid_1() -> None:
    def child() -> int:
        kernel.unshare(namespaces.CLONE_NEWPID)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.write(w, str(os.getpid()).encode())
            os._exit(0)
        os.waitpid(pid, 0)
        return int(os.read(r, 16))

    assert in_child(child) == 1


def test_setns_by_path_and_by_fd() -> None:
    # A holder process in a new net namespace; two other children join it.
    r, w = os.pipe()
    holder = os.fork()
    if holder == 0:
        kernel.unshare(namespaces.CLONE_NEWNET)
        os.write(w, b"x")
        signal.pause()
        os._exit(0)
    try:
        os.read(r, 1)
        target = os.readlink(f"/proc/{holder}/ns/net")

        def by_path() -> str:
            kernel.setns_path(f"/proc/{holder}/ns/net", namespaces.CLONE_NEWNET)
            return os.readlink("/proc/self/ns/net")

        def by_fd() -> str:
            fd = os.open(f"/proc/{holder}/ns/net", os.O_RDONLY)
            kernel.setns(fd, 0)
            return os.readlink("/proc/self/ns/net")

        assert in_child(by_path) == target
        assert in_child(by_fd) == target
        assert kernel.namespace_id(holder, "net") == target
    finally:
        os.kill(holder, signal.SIGKILL)
        os.waitpid(holder, 0)
        os.close(r)
        os.close(w)


def test_setns_errors_name_the_path() -> None:
    with pytest.raises(KernelError, match="/proc/999999999/ns/net") as info:
        kernel.setns_path("/proc/999999999/ns/net")
    assert info.value.errno == errno.ENOENT
    with pytest.raises(KernelError, match="setns") as info:
        kernel.setns(os.open("/", os.O_RDONLY), namespaces.CLONE_NEWNET)
    assert info.value.errno == errno.EINVAL


def test_mount_tmpfs_readonly_remount_and_umount(tmp_path: Path) -> None:
    def child() -> tuple[bool, int, bool]:
        kernel.unshare(namespaces.CLONE_NEWNS)
        kernel.mount_fs(None, "/", None, mount.MS_REC | mount.MS_PRIVATE)
        kernel.mount_fs("tmpfs", tmp_path, "tmpfs", mount.MS_NOSUID, "size=1m,mode=700")
        (tmp_path / "f").write_text("x")
        mode = stat.S_IMODE(tmp_path.stat().st_mode)
        kernel.mount_fs(None, tmp_path, None, mount.MS_REMOUNT | mount.MS_RDONLY | mount.MS_NOSUID)
        try:
            (tmp_path / "g").write_text("y")
            refused = False
        except OSError as err:
            refused = err.errno == errno.EROFS
        fs_type = kernel.statfs_type(tmp_path)
        kernel.umount2(tmp_path, mount.MNT_DETACH)
        return refused, mode, fs_type == mount.TMPFS_MAGIC and not (tmp_path / "f").exists()

    refused, mode, ok = in_child(child)
    assert refused and mode == 0o700 and ok
    assert not (tmp_path / "f").exists()  # the host never saw it


def test_mount_error_names_target() -> None:
    with pytest.raises(KernelError, match=r"mount tmpfs `/nonexistent/corral`: No such file"):
        kernel.mount_fs("tmpfs", "/nonexistent/corral", "tmpfs")


def test_pivot_root(tmp_path: Path) -> None:
    def child() -> tuple[list[str], str]:
        kernel.unshare(namespaces.CLONE_NEWNS)
        kernel.mount_fs(None, "/", None, mount.MS_REC | mount.MS_PRIVATE)
        new_root = tmp_path / "root"
        new_root.mkdir()
        kernel.mount_fs("tmpfs", new_root, "tmpfs")
        (new_root / "old").mkdir()
        (new_root / "marker").write_text("inside")
        os.chdir(new_root)
        kernel.pivot_root(".", "old")
        os.chdir("/")
        kernel.umount2("/old", mount.MNT_DETACH)
        os.rmdir("/old")
        return sorted(os.listdir("/")), Path("/marker").read_text()

    listing, marker = in_child(child)
    assert listing == ["marker"] and marker == "inside"


def test_pivot_root_error() -> None:
    with pytest.raises(KernelError, match="pivot_root"):
        kernel.pivot_root("/nonexistent-a", "/nonexistent-b")


def test_new_mount_api_clone_move_and_setattr(tmp_path: Path) -> None:
    src = tmp_path / "src"
    dst = tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    (src / "file").write_text("hello")

    def child() -> tuple[str, bool]:
        kernel.unshare(namespaces.CLONE_NEWNS)
        kernel.mount_fs(None, "/", None, mount.MS_REC | mount.MS_PRIVATE)
        fd = kernel.open_tree(src, mount.OPEN_TREE_CLONE | mount.OPEN_TREE_CLOEXEC)
        kernel.mount_setattr(fd, attr_set=mount.MOUNT_ATTR_RDONLY)
        kernel.move_mount(fd, dst)
        os.close(fd)
        text = (dst / "file").read_text()
        try:
            (dst / "new").write_text("x")
            readonly = False
        except OSError as err:
            readonly = err.errno == errno.EROFS
        return text, readonly

    assert in_child(child) == ("hello", True)
    assert not (dst / "file").exists()


def test_capget_capset_and_bounding_set() -> None:
    def child() -> tuple[bool, bool, bool, bool]:
        state = kernel.capget()
        had_chown = bool(state.effective & (1 << caps.cap_number("CAP_CHOWN")))
        mask = ~(1 << caps.cap_number("CAP_CHOWN"))
        kernel.capset(caps.CapState(state.effective & mask, state.permitted & mask, 0))
        after = kernel.capget()
        status = Path("/proc/self/status").read_text()
        cap_eff = int(
            next(line for line in status.splitlines() if line.startswith("CapEff")).split()[1], 16
        )
        prctl.bounding_set_drop(caps.cap_number("CAP_MKNOD"))
        return (
            had_chown,
            not after.effective & (1 << 0),
            cap_eff == after.effective,
            not prctl.bounding_set_read(caps.cap_number("CAP_MKNOD")),
        )

    assert in_child(child) == (True, True, True, True)
    assert prctl.bounding_set_read(caps.cap_number("CAP_MKNOD"))  # the test process kept it


def test_ambient_keepcaps_nnp_pdeathsig_subreaper_name() -> None:
    def child() -> dict[str, object]:
        net_raw = caps.cap_number("CAP_NET_RAW")
        state = kernel.capget()
        kernel.capset(
            caps.CapState(state.effective, state.permitted, state.inheritable | (1 << net_raw))
        )
        prctl.ambient_raise(net_raw)
        ambient = prctl.ambient_is_set(net_raw)
        prctl.ambient_clear_all()
        prctl.set_keep_caps(True)
        keep = prctl.get_keep_caps()
        prctl.set_no_new_privs()
        prctl.set_pdeathsig(signal.SIGKILL)
        prctl.set_child_subreaper(True)
        prctl.set_name("corral-init-xyz")
        return {
            "ambient": ambient,
            "cleared": not prctl.ambient_is_set(net_raw),
            "keep": keep,
            "nnp": prctl.get_no_new_privs(),
            "nnp_status": "NoNewPrivs:\t1" in Path("/proc/self/status").read_text(),
            "pdeathsig": prctl.get_pdeathsig(),
            "subreaper": prctl.get_child_subreaper(),
            "name": prctl.get_name(),
            "comm": Path("/proc/self/comm").read_text().strip(),
        }

    got = in_child(child)
    assert got == {
        "ambient": True,
        "cleared": True,
        "keep": True,
        "nnp": True,
        "nnp_status": True,
        "pdeathsig": signal.SIGKILL,
        "subreaper": True,
        "name": "corral-init-xyz",
        "comm": "corral-init-xyz",
    }
    assert not prctl.get_no_new_privs()


def test_ambient_raise_without_inheritable_fails_with_eperm() -> None:
    def child() -> int:
        try:
            prctl.ambient_raise(caps.cap_number("CAP_SYS_TIME"))
        except KernelError as err:
            return err.errno
        return 0

    assert in_child(child) == errno.EPERM


def test_setrlimit_and_prlimit() -> None:
    def child() -> tuple[tuple[int, int], tuple[int, int]]:
        kernel.setrlimit(resource.RLIMIT_NOFILE, 100, 200)
        mine = resource.getrlimit(resource.RLIMIT_NOFILE)
        return mine, kernel.prlimit(os.getpid(), resource.RLIMIT_NOFILE)

    mine, via_prlimit = in_child(child)
    assert mine == via_prlimit == (100, 200)


def test_raising_a_hard_limit_is_refused_clearly() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        pytest.skip("hard limit is already infinite")

    def child() -> str:
        try:
            # Without CAP_SYS_RESOURCE (as on this machine) this fails; with it, it succeeds.
            kernel.setrlimit(resource.RLIMIT_NOFILE, soft, hard + 1)
            return "raised"
        except KernelError as err:
            return str(err)

    result = in_child(child)
    assert result == "raised" or "setrlimit `RLIMIT_NOFILE`" in result


def test_pidfd_open_and_send_signal() -> None:
    pid = os.fork()
    if pid == 0:
        signal.pause()
        os._exit(0)
    fd = kernel.pidfd_open(pid)
    try:
        kernel.pidfd_send_signal(fd, signal.SIGTERM)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM
        # The pidfd still names the dead process, never a newcomer with the same pid.
        with pytest.raises(KernelError, match="pidfd_send_signal") as info:
            kernel.pidfd_send_signal(fd, signal.SIGTERM)
        assert info.value.errno == errno.ESRCH
    finally:
        os.close(fd)
    with pytest.raises(KernelError, match="pid 999999999"):
        kernel.pidfd_open(999_999_999)


def test_mknod_char_device_and_fifo(tmp_path: Path) -> None:
    kernel.mknod(tmp_path / "null", "c", 0o666, 1, 3)
    st = os.stat(tmp_path / "null")
    assert stat.S_ISCHR(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == (1, 3)
    with open(tmp_path / "null", "w") as f:
        f.write("discarded")
    kernel.mknod(tmp_path / "fifo", "p", 0o600)
    assert stat.S_ISFIFO(os.stat(tmp_path / "fifo").st_mode)
    with pytest.raises(KernelError, match=r"mknod `.*fifo`: File exists"):
        kernel.mknod(tmp_path / "fifo", "p", 0o600)


def test_process_start_time_defeats_pid_reuse() -> None:
    me = kernel.process_start_time(os.getpid())
    assert me == kernel.process_start_time(os.getpid())
    pid = os.fork()
    if pid == 0:
        time.sleep(0.05)
        os._exit(0)
    child_start = kernel.process_start_time(pid)
    os.waitpid(pid, 0)
    assert child_start >= me
    assert wait_until(lambda: not kernel.process_exists(pid), 2)
