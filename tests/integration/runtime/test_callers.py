"""Real callers drive corral-runtime exactly as they drive runc: podman (through conmon) and
containerd (through containerd-shim-runc-v2), both from Debian's packages."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bundles import busybox_rootfs, oci_archive
from tests.conftest import TEST_PARENT
from tests.helpers import wait_until

from .conftest import CORRAL_RUNTIME

# Without CAP_SYS_RESOURCE here, podman's default rlimits cannot be applied.
ULIMITS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"]
PODMAN_ROOT = Path(f"/var/tmp/corral-test-podman-{os.getpid()}")
PODMAN_RUN = Path(f"/run/corral-test-podman-{os.getpid()}")


def podman(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    cmd = [
        "podman",
        "--root",
        str(PODMAN_ROOT / "storage"),
        "--runroot",
        str(PODMAN_RUN),
        "--runtime",
        CORRAL_RUNTIME,
        "--cgroup-manager",
        "cgroupfs",
        "--events-backend",
        "none",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def podman_env() -> Iterator[None]:
    if not shutil.which("podman"):
        pytest.skip("podman is not installed")
    yield
    podman("rm", "--all", "--force")
    podman("system", "reset", "--force")
    # podman leaves its --cgroup-parent (with conmon's group) behind: it is ours to remove.
    from corral.cgroups import open_manager

    manager = open_manager(parent=f"/{TEST_PARENT}")
    if manager.exists("podman"):
        manager.delete("podman")
    for d in (PODMAN_ROOT, PODMAN_RUN):
        subprocess.run(["umount", "-R", str(d)], capture_output=True)
        shutil.rmtree(d, ignore_errors=True)


def _podman_run(options: list[str], command: list[str]) -> subprocess.CompletedProcess[str]:
    return podman(
        "run",
        *ULIMITS,
        "--network",
        "none",
        f"--cgroup-parent=/{TEST_PARENT}/podman",
        *options,
        "--rootfs",
        str(busybox_rootfs()),
        *command,
    )


def test_podman_run_rm_output_and_exit_code(podman_env: None) -> None:
    result = _podman_run(["--rm"], ["sh", "-c", "echo hello from podman; echo $$; exit 3"])
    assert result.returncode == 3, result.stderr
    assert result.stdout.split() == ["hello", "from", "podman", "1"]


def test_podman_detached_exec_stop_rm(podman_env: None) -> None:
    started = _podman_run(
        ["-d", "--name", "corral-p1"],
        ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done"],
    )
    assert started.returncode == 0, started.stderr
    try:
        ps = podman("ps", "--format", "{{.Names}} {{.Status}}")
        assert "corral-p1 Up" in ps.stdout
        exec_ = podman("exec", "corral-p1", "sh", "-c", "echo exec-ok; hostname")
        assert exec_.returncode == 0, exec_.stderr
        assert exec_.stdout.split()[0] == "exec-ok"
        assert podman("exec", "corral-p1", "sh", "-c", "exit 7").returncode == 7
        stop = podman("stop", "-t", "10", "corral-p1")
        assert stop.returncode == 0, stop.stderr
        inspect = podman(
            "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", "corral-p1"
        )
        assert inspect.stdout.split() == ["exited", "0"]
    finally:
        rm = podman("rm", "-f", "corral-p1")
    assert rm.returncode == 0, rm.stderr


# -- containerd -------------------------------------------------------------------------------

CTRD_DIR = Path(f"/run/corral-test-containerd-{os.getpid()}")
CTRD_ROOT = Path(f"/var/tmp/corral-test-containerd-{os.getpid()}")
IMAGE = "docker.io/corral/busybox:test"


def ctr(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ctr", "--address", str(CTRD_DIR / "containerd.sock"), "--namespace", TEST_PARENT, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def containerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    if not shutil.which("containerd"):
        pytest.skip("containerd is not installed")
    CTRD_DIR.mkdir(parents=True, exist_ok=True)
    config = CTRD_DIR / "config.toml"
    config.write_text(
        "version = 2\n"
        f'root = "{CTRD_ROOT}"\n'
        f'state = "{CTRD_DIR / "state"}"\n'
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        f'[grpc]\n  address = "{CTRD_DIR / "containerd.sock"}"\n'
        f'[ttrpc]\n  address = "{CTRD_DIR / "containerd.sock.ttrpc"}"\n'
        f'[debug]\n  address = "{CTRD_DIR / "debug.sock"}"\n'
    )
    log = open(CTRD_DIR / "containerd.log", "w")  # noqa: SIM115 - lives as long as the daemon
    daemon = subprocess.Popen(["containerd", "--config", str(config)], stdout=log, stderr=log)
    try:
        assert wait_until(lambda: (CTRD_DIR / "containerd.sock").exists(), 30), (
            "containerd did not start"
        )
        archive = tmp_path_factory.mktemp("image") / "busybox.tar"
        oci_archive(busybox_rootfs(), archive, IMAGE)
        imported = ctr("image", "import", str(archive))
        assert imported.returncode == 0, imported.stderr
        yield
    finally:
        for cid in ctr("containers", "list", "-q").stdout.split():
            ctr("task", "kill", "-s", "SIGKILL", cid)
            time.sleep(0.2)
            ctr("task", "delete", "-f", cid)
            ctr("containers", "delete", cid)
        ctr("image", "remove", IMAGE)
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(20)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        log.close()
        for d in (CTRD_DIR, CTRD_ROOT):
            subprocess.run(["umount", "-R", str(d)], capture_output=True)
            shutil.rmtree(d, ignore_errors=True)


def test_ctr_run_with_corral_runtime(containerd: None) -> None:
    result = ctr(
        "run",
        "--rm",
        "--runc-binary",
        CORRAL_RUNTIME,
        IMAGE,
        "ctr-1",
        "sh",
        "-c",
        "echo hello from containerd; echo $$; exit 4",
    )
    assert result.returncode == 4, result.stderr
    assert result.stdout.split() == ["hello", "from", "containerd", "1"]


def test_ctr_detached_task_exec_kill(containerd: None) -> None:
    started = ctr("run", "-d", "--runc-binary", CORRAL_RUNTIME, IMAGE, "ctr-2", "sleep", "60")
    assert started.returncode == 0, started.stderr
    try:
        assert wait_until(lambda: "RUNNING" in ctr("task", "list").stdout)
        ex = ctr("task", "exec", "--exec-id", "e1", "ctr-2", "sh", "-c", "echo exec-ok; exit 6")
        assert ex.stdout.strip() == "exec-ok" and ex.returncode == 6, ex.stderr
        ps = ctr("task", "ps", "ctr-2")
        assert ps.returncode == 0 and len(ps.stdout.splitlines()) >= 2
        assert ctr("task", "pause", "ctr-2").returncode == 0
        assert "PAUSED" in ctr("task", "list").stdout
        assert ctr("task", "resume", "ctr-2").returncode == 0
        assert ctr("task", "kill", "-s", "SIGKILL", "ctr-2").returncode == 0
        assert wait_until(lambda: "STOPPED" in ctr("task", "list").stdout)
    finally:
        ctr("task", "delete", "-f", "ctr-2")
        ctr("containers", "delete", "ctr-2")
    assert "ctr-2" not in ctr("containers", "list", "-q").stdout
