"""What the container sees and may do, checked from inside it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import skip_without_cpuset, wait_until

from .conftest import Bundle, RuntimeCLI


def run(rt: RuntimeCLI, b: Bundle, check: bool = True) -> subprocess.CompletedProcess[str]:
    b.write()
    return rt("run", "--bundle", str(b.path), b.id, check=check)


def test_namespaces_differ_from_the_host(rt: RuntimeCLI, bundle: Any) -> None:
    kinds = ["pid", "net", "mnt", "uts", "ipc", "cgroup"]
    b = bundle(["sh", "-c", " ; ".join(f"readlink /proc/self/ns/{k}" for k in kinds)])
    inside = run(rt, b).stdout.split()
    host = [os.readlink(f"/proc/self/ns/{k}") for k in kinds]
    assert len(inside) == len(kinds)
    for k, a, h in zip(kinds, inside, host, strict=True):
        assert a != h, f"{k} namespace is the host's"


def test_pid_1_and_proc_shows_only_the_container(rt: RuntimeCLI, bundle: Any) -> None:
    b = bundle(["sh", "-c", "echo $$; ls /proc | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' '"])
    first, pids = run(rt, b).stdout.split("\n", 1)
    assert first == "1"
    visible = [int(p) for p in pids.split()]
    assert 1 in visible and len(visible) <= 6, (visible, pids)


def test_hostname_domainname_and_mounts(rt: RuntimeCLI, bundle: Any) -> None:
    b = bundle(["sh", "-c", "hostname; cat /proc/sys/kernel/domainname; cat /proc/mounts"])
    b.spec["hostname"] = "inside"
    b.spec["domainname"] = "example.test"
    out = run(rt, b).stdout.splitlines()
    assert out[0] == "inside"
    # runc 1.1 ignores domainname (added in runc 1.2).
    assert out[1] == "example.test" if rt.is_corral else out[1] in ("example.test", "(none)")
    mounts = out[2:]
    targets = {line.split()[1] for line in mounts}
    assert {"/", "/proc", "/dev", "/dev/pts", "/dev/shm", "/sys"} <= targets
    assert not any(t.startswith(("/work", "/tmp/pytest", "/root")) for t in targets), targets
    assert socket.gethostname() != "inside"


def test_masked_and_readonly_paths(rt: RuntimeCLI, bundle: Any) -> None:
    b = bundle(
        [
            "sh",
            "-c",
            "cat /proc/kcore | head -c 10 | wc -c; ls /sys/firmware | wc -l; "
            "echo 1 > /proc/sys/kernel/panic 2>/dev/null && echo wrote || echo refused; "
            "echo 1 > /proc/sysrq-trigger 2>/dev/null && echo wrote || echo refused",
        ]
    )
    assert run(rt, b).stdout.split() == ["0", "0", "refused", "refused"]


def test_readonly_root(rt: RuntimeCLI, bundle: Any) -> None:
    b = bundle(
        [
            "sh",
            "-c",
            "touch /x 2>/dev/null && echo wrote || echo refused; touch /dev/shm/ok && echo tmpfs-ok",
        ]
    )
    b.spec["root"]["readonly"] = True
    assert run(rt, b).stdout.split() == ["refused", "tmpfs-ok"]


def _caps(status: str, field: str) -> int:
    line = next(line for line in status.splitlines() if line.startswith(field + ":"))
    return int(line.split()[1], 16)


def test_capabilities_as_set(rt: RuntimeCLI, bundle: Any) -> None:
    b = bundle(["cat", "/proc/self/status"])
    caps = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    b.spec["process"]["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted")}
    b.spec["process"]["capabilities"]["ambient"] = []
    b.spec["process"]["capabilities"]["inheritable"] = []
    status = run(rt, b).stdout
    want = (1 << 0) | (1 << 5) | (1 << 10)
    assert _caps(status, "CapEff") == want
    assert _caps(status, "CapPrm") == want
    assert _caps(status, "CapBnd") == want
    assert _caps(status, "CapAmb") == 0
    assert "NoNewPrivs:\t1" in status


def test_capability_denied_from_inside(rt: RuntimeCLI, bundle: Any) -> None:
    b = bundle(
        [
            "sh",
            "-c",
            "mknod /tmp/n c 1 3 2>/dev/null && echo made || echo denied; hostname x 2>/dev/null && echo renamed || echo denied",
        ]
    )
    assert run(rt, b).stdout.split() == ["denied", "denied"]


def test_user_and_groups(rt: RuntimeCLI, bundle: Any) -> None:
    b = bundle(["sh", "-c", "id -u; id -g; id -G; umask"])
    b.spec["process"]["user"] = {
        "uid": 1000,
        "gid": 1001,
        "additionalGids": [1002, 1003],
        "umask": 0o027,
    }
    out = run(rt, b).stdout.split("\n")
    assert out[0] == "1000" and out[1] == "1001"
    assert set(out[2].split()) >= {"1001", "1002", "1003"}
    assert out[3] == "0027"


def test_env_and_cwd(rt: RuntimeCLI, bundle: Any) -> None:
    b = bundle(["sh", "-c", "echo $FOO; pwd; echo $HOME"])
    b.spec["process"]["env"].append("FOO=bar baz")
    b.spec["process"]["cwd"] = "/tmp"
    assert run(rt, b).stdout.splitlines() == ["bar baz", "/tmp", "/root"]


def test_rlimits(rt: RuntimeCLI, bundle: Any) -> None:
    b = bundle(["sh", "-c", "ulimit -n; ulimit -Hn; ulimit -c"])
    b.spec["process"]["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
    ]
    assert run(rt, b).stdout.split() == ["123", "456", "0"]


def test_rlimit_above_the_hard_limit_is_clamped_with_a_warning(rt: RuntimeCLI, bundle: Any) -> None:
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no finite hard limit to exceed")
    b = bundle(["sh", "-c", "ulimit -Hn"])
    b.spec["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": hard * 4, "hard": hard * 4}]
    result = run(rt, b, check=False)
    if not rt.is_corral:
        # Documented difference: runc fails the container when the host lacks CAP_SYS_RESOURCE.
        assert result.returncode != 0
        return
    assert result.returncode == 0 and result.stdout.split() == [str(hard)]
    assert "RLIMIT_NOFILE" in result.stderr and "hard limit" in result.stderr


def test_seccomp_denies_and_kills(rt: RuntimeCLI, bundle: Any) -> None:
    b = bundle(["sh", "-c", "mkdir /tmp/a 2>&1 || true; chmod 600 /etc/passwd && echo chmod-ok"])
    b.spec["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
            {"names": ["chmod", "fchmodat"], "action": "SCMP_ACT_ALLOW"},
        ],
    }
    out = run(rt, b).stdout
    assert "Operation not permitted" in out and "chmod-ok" in out
    b2 = bundle(["sh", "-c", "echo before; exec sync"])  # pid 1 itself makes the call
    b2.spec["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["sync"], "action": "SCMP_ACT_KILL_PROCESS"}],
    }
    result = run(rt, b2, check=False)
    assert result.stdout.split() == ["before"]
    assert result.returncode == 128 + 31  # SIGSYS


def test_seccomp_argument_filter(rt: RuntimeCLI, bundle: Any) -> None:
    # personality(0xffffffff) queries; deny only personality(8) (PER_LINUX32).
    b = bundle(["sh", "-c", "setarch linux32 true 2>&1 && echo allowed || echo denied"])
    b.spec["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {
                "names": ["personality"],
                "action": "SCMP_ACT_ERRNO",
                "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}],
            }
        ],
    }
    out = run(rt, b).stdout
    if "applet not found" in out or "not found" in out:
        pytest.skip("busybox has no setarch")
    assert "denied" in out


def test_memory_limit_oom_kills(rt: RuntimeCLI, bundle: Any) -> None:
    b = bundle(["sh", "-c", "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived"])
    b.spec["linux"]["resources"] = {"memory": {"limit": 32 << 20, "swap": 32 << 20}}
    result = run(rt, b, check=False)
    assert "survived" not in result.stdout
    assert result.returncode in (137, 1, 2)  # sh's child or sh itself is killed


def test_pids_limit(rt: RuntimeCLI, bundle: Any) -> None:
    script = (
        "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max; "
        # A child shell forks until the kernel refuses (and then dies of it); its sleeps stay.
        "sh -c 'while :; do sleep 5 & done' 2>/dev/null; "
        "set -- /proc/[0-9]*; echo $#"  # builtins only: no fork is left to spare
    )
    b = bundle(["sh", "-c", script])
    b.spec["linux"]["resources"] = {"pids": {"limit": 8}}
    result = run(rt, b, check=False)
    out = result.stdout.split()
    assert out[0] == "8", result.stderr
    assert int(out[1]) == 7  # 8 tasks at the limit; the child shell has exited since


def test_cgroup_limits_visible_inside(rt: RuntimeCLI, bundle: Any) -> None:
    b = bundle(
        [
            "sh",
            "-c",
            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.shares 2>/dev/null || cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/cpu.weight",
        ]
    )
    b.spec["linux"]["resources"] = {"memory": {"limit": 64 << 20}, "cpu": {"shares": 512}}
    out = run(rt, b).stdout.split()
    assert out[0] == str(64 << 20)


def _traversable(path: Path) -> None:
    """The mapped root (host uid 100000) must reach the bundle: open up the test's own dirs."""
    for p in [path, *path.parents]:
        if str(p).startswith("/tmp/pytest-of-"):
            p.chmod(p.stat().st_mode | 0o011)


def test_user_namespace_maps(rt: RuntimeCLI, bundle: Any) -> None:
    b = bundle(["sh", "-c", "id -u; cat /proc/self/uid_map; cat /proc/self/gid_map; sleep 1"])
    b.spec["linux"]["namespaces"].append({"type": "user"})
    b.spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b.spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    os.chown(b.rootfs, 100000, 100000)
    _traversable(b.path)
    out = run(rt, b).stdout.split("\n")
    assert out[0] == "0"
    assert out[1].split() == ["0", "100000", "65536"]
    assert out[2].split() == ["0", "100000", "65536"]


def test_user_namespace_root_is_not_host_root(rt: RuntimeCLI, bundle: Any, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("host only")
    secret.chmod(0o600)
    b = bundle(["sh", "-c", "cat /host/secret 2>&1 || echo refused"])
    b.spec["linux"]["namespaces"].append({"type": "user"})
    b.spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b.spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b.spec["mounts"].append(
        {"destination": "/host", "type": "bind", "source": str(tmp_path), "options": ["rbind"]}
    )
    os.chown(b.rootfs, 100000, 100000)
    _traversable(b.path)
    out = run(rt, b).stdout
    assert "host only" not in out and ("refused" in out or "denied" in out)


def test_bind_mount_options(rt: RuntimeCLI, bundle: Any, tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    (share / "f").write_text("shared\n")
    b = bundle(
        [
            "sh",
            "-c",
            "cat /data/f; touch /data/g 2>/dev/null && echo wrote || echo refused; touch /rw/h && echo rw-ok",
        ]
    )
    b.spec["mounts"] += [
        {
            "destination": "/data",
            "type": "bind",
            "source": str(share),
            "options": ["rbind", "ro", "nosuid", "nodev"],
        },
        {"destination": "/rw", "type": "bind", "source": str(share), "options": ["bind"]},
    ]
    assert run(rt, b).stdout.split() == ["shared", "refused", "rw-ok"]
    assert (share / "h").exists() and not (share / "g").exists()


def test_mount_destination_through_a_symlink_stays_inside(
    rt: RuntimeCLI, bundle: Any, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    b = bundle(["sh", "-c", "ls /evil"])
    (b.rootfs / "evil").symlink_to(str(outside))  # an image that points a path at the host
    b.spec["mounts"].append({"destination": "/evil/mnt", "type": "tmpfs", "source": "tmpfs"})
    run(rt, b, check=False)
    assert not (outside / "mnt").exists()  # the host path was never used


def test_devices_and_default_dev(rt: RuntimeCLI, bundle: Any) -> None:
    b = bundle(
        [
            "sh",
            "-c",
            "ls -l /dev/null /dev/zero /dev/urandom /dev/tty /dev/mynull | cut -c1; "
            "readlink /dev/fd; readlink /dev/ptmx; echo hi > /dev/mynull && echo wrote",
        ]
    )
    b.spec["linux"]["devices"] = [
        {"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666}
    ]
    result = run(rt, b)
    out = result.stdout.split()
    assert out[:5] == ["c"] * 5, result.stderr
    assert out[5:8] == ["/proc/self/fd", "pts/ptmx", "wrote"]


def test_device_cgroup_denies(rt: RuntimeCLI, bundle: Any) -> None:
    b = bundle(
        [
            "sh",
            "-c",
            "mknod /tmp/sda b 8 0 && (head -c1 /tmp/sda >/dev/null 2>&1 && echo read || echo blocked)",
        ]
    )
    b.spec["process"]["capabilities"]["bounding"].append("CAP_MKNOD")
    b.spec["process"]["capabilities"]["effective"].append("CAP_MKNOD")
    b.spec["process"]["capabilities"]["permitted"].append("CAP_MKNOD")
    out = run(rt, b).stdout.split()
    assert out == ["blocked"]


def test_sysctl(rt: RuntimeCLI, bundle: Any) -> None:
    b = bundle(["cat", "/proc/sys/net/ipv4/ip_forward"])
    b.spec["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    assert run(rt, b).stdout.strip() == "1"


def test_time_namespace_offsets(rt: RuntimeCLI, bundle: Any) -> None:
    if not os.path.exists("/proc/self/ns/time"):
        pytest.skip("this kernel has no time namespace (User-Mode Linux)")
    if not rt.is_corral:
        pytest.skip("runc 1.1 does not support the time namespace (added in runc 1.2)")
    b = bundle(["cat", "/proc/uptime"])
    b.spec["linux"]["namespaces"].append({"type": "time"})
    b.spec["linux"]["timeOffsets"] = {"boottime": {"secs": 86400 * 365, "nanosecs": 0}}
    inside = float(run(rt, b).stdout.split()[0])
    host = float(Path("/proc/uptime").read_text().split()[0])
    assert inside - host > 86400 * 364


def test_personality_linux32(rt: RuntimeCLI, bundle: Any) -> None:
    b = bundle(["uname", "-m"])
    b.spec["linux"]["personality"] = {"domain": "LINUX32"}
    result = run(rt, b, check=False)
    if not rt.is_corral and result.stdout.strip() == "x86_64":
        pytest.skip("runc 1.1 ignores linux.personality (added in runc 1.2)")
    if "User Mode Linux" in Path("/proc/cpuinfo").read_text():
        pytest.skip("User-Mode Linux has no 32-bit personality")
    assert result.stdout.strip() in ("i686", "armv8l", "armv7l")


def test_no_new_privileges_off(rt: RuntimeCLI, bundle: Any) -> None:
    b = bundle(["grep", "NoNewPrivs", "/proc/self/status"])
    b.spec["process"]["noNewPrivileges"] = False
    assert run(rt, b).stdout.split() == ["NoNewPrivs:", "0"]


def test_oom_score_adj(rt: RuntimeCLI, bundle: Any) -> None:
    b = bundle(["cat", "/proc/self/oom_score_adj"])
    b.spec["process"]["oomScoreAdj"] = 500
    assert run(rt, b).stdout.strip() == "500"


def test_apparmor_requested_without_apparmor_is_an_error(rt: RuntimeCLI, bundle: Any) -> None:
    if os.path.isdir("/sys/kernel/security/apparmor"):
        pytest.skip("AppArmor is enabled here")
    b = bundle(["true"])
    b.spec["process"]["apparmorProfile"] = "docker-default"
    result = run(rt, b, check=False)
    assert result.returncode != 0 and "pparmor" in result.stderr


def _hook(log: Path, name: str) -> dict[str, Any]:
    script = f'read state; echo "{name} $0 $1 $HOOKENV $state" >> {log}'
    return {
        "path": "/bin/sh",
        "args": ["sh", "-c", script, name, "arg1"],
        "env": ["HOOKENV=set"],
        "timeout": 10,
    }


def test_hooks_run_in_order_with_state(rt: RuntimeCLI, bundle: Any, tmp_path: Path) -> None:
    log = tmp_path / "hooks.log"
    b = bundle(["sh", "-c", "echo main >> /hooklog/hooks.log"])
    b.spec["mounts"].append(
        {"destination": "/hooklog", "type": "bind", "source": str(tmp_path), "options": ["rbind"]}
    )
    kinds = [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ]
    # startContainer runs after pivot_root, so it sees the container's paths; the others the host's.
    b.spec["hooks"] = {
        k: [_hook(Path("/hooklog/hooks.log") if k == "startContainer" else log, k)] for k in kinds
    }
    run(rt, b)
    lines = log.read_text().splitlines()
    order = [line.split()[0] for line in lines]
    assert order.index("prestart") < order.index("createContainer")
    assert order.index("createRuntime") < order.index("createContainer")
    assert order.index("createContainer") < order.index("startContainer")
    assert order.index("startContainer") < order.index("main")
    assert order.index("main") < order.index("poststop")
    assert "poststart" in order
    for line in lines:
        if line == "main":
            continue
        name, argv0, arg1, env, state_json = line.split(" ", 4)
        assert (argv0, arg1, env) == (name, "arg1", "set")
        state = json.loads(state_json)
        assert state["id"] == b.id and state["bundle"] == str(b.path)
        assert state.get("pid", 0) > 0 or name == "poststop"  # runc omits a zero pid


def test_failing_prestart_hook_fails_create(rt: RuntimeCLI, bundle: Any) -> None:
    b = bundle(["true"])
    b.spec["hooks"] = {"createRuntime": [{"path": "/bin/false"}]}
    result = run(rt, b, check=False)
    assert result.returncode != 0
    assert b.id not in rt("list", "-q").stdout.split()


def test_exec_env_cwd_user_and_exit_code(rt: RuntimeCLI, bundle: Any) -> None:
    b = bundle(["sleep", "60"])
    rt("run", "-d", "--bundle", str(b.path), b.id)
    out = rt(
        "exec",
        "--env",
        "X=1",
        "--cwd",
        "/tmp",
        "--user",
        "1000:1000",
        b.id,
        "sh",
        "-c",
        "echo $X; pwd; id -u; echo $$",
    ).stdout.split()
    assert out[:3] == ["1", "/tmp", "1000"]
    assert int(out[3]) > 1  # in the container's pid namespace, not pid 1
    assert rt("exec", b.id, "sh", "-c", "exit 5", check=False).returncode == 5
    missing = rt("exec", b.id, "/no/such", check=False)
    assert missing.returncode != 0


def test_exec_process_file_and_detach(rt: RuntimeCLI, bundle: Any, tmp_path: Path) -> None:
    b = bundle(["sleep", "60"])
    rt("run", "-d", "--bundle", str(b.path), b.id)
    process = {
        "args": ["sh", "-c", "echo from-file > /tmp/pf"],
        "cwd": "/",
        "env": ["PATH=/bin"],
        "user": {"uid": 0, "gid": 0},
    }
    pf = tmp_path / "process.json"
    pf.write_text(json.dumps(process))
    pid_file = tmp_path / "exec.pid"
    rt("exec", "--process", str(pf), "--detach", "--pid-file", str(pid_file), b.id)
    assert int(pid_file.read_text()) > 0
    out = b.rootfs / "tmp" / "pf"
    assert wait_until(lambda: out.exists() and out.read_text() == "from-file\n")


def _console_server(path: Path) -> tuple[socket.socket, list[int], threading.Thread]:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    fds: list[int] = []

    def accept() -> None:
        conn, _ = server.accept()
        with conn:
            _msg, got, _f, _a = socket.recv_fds(conn, 1024, 1)
            fds.extend(got)

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    return server, fds, t


def _read_all(fd: int) -> str:
    data = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    os.close(fd)
    return data.decode(errors="replace")


def test_terminal_over_console_socket(rt: RuntimeCLI, bundle: Any, tmp_path: Path) -> None:
    sock_path = tmp_path / "console.sock"
    server, fds, t = _console_server(sock_path)
    b = bundle(["sh", "-c", "tty; test -t 0 && echo stdin-is-tty; stty size"])
    b.spec["process"]["terminal"] = True
    b.spec["process"]["consoleSize"] = {"height": 33, "width": 111}
    b.write()
    try:
        rt("create", "--bundle", str(b.path), "--console-socket", str(sock_path), b.id)
        t.join(10)
        assert fds, "no terminal master received"
        rt("start", b.id)
        out = _read_all(fds[0])
    finally:
        server.close()
    assert "/dev/pts/" in out or "/dev/console" in out
    assert "stdin-is-tty" in out and "33 111" in out


def test_exec_with_terminal(rt: RuntimeCLI, bundle: Any, tmp_path: Path) -> None:
    b = bundle(["sleep", "60"])
    rt("run", "-d", "--bundle", str(b.path), b.id)
    sock_path = tmp_path / "exec.sock"
    server, fds, t = _console_server(sock_path)
    try:
        rt(
            "exec",
            "--tty",
            "--detach",
            "--console-socket",
            str(sock_path),
            b.id,
            "sh",
            "-c",
            "test -t 1 && echo tty-ok",
        )
        t.join(10)
        assert fds
        out = _read_all(fds[0])
    finally:
        server.close()
    assert "tty-ok" in out


def test_update_changes_live_limits(rt: RuntimeCLI, bundle: Any) -> None:
    from corral.cgroups import Mode, detect

    b = bundle(["sleep", "60"])
    b.spec["linux"]["resources"] = {"memory": {"limit": 64 << 20}, "pids": {"limit": 50}}
    b.write()
    rt("run", "-d", "--bundle", str(b.path), b.id)
    rt("update", "--memory", str(48 << 20), "--pids-limit", "20", b.id)
    v1 = detect().mode != Mode.V2
    mem_file = "/sys/fs/cgroup/memory/memory.limit_in_bytes" if v1 else "/sys/fs/cgroup/memory.max"
    pids_file = "/sys/fs/cgroup/pids/pids.max" if v1 else "/sys/fs/cgroup/pids.max"
    out = rt("exec", b.id, "cat", mem_file, pids_file).stdout.split()
    assert out == [str(48 << 20), "20"]
    resources = json.dumps({"memory": {"limit": 40 << 20}, "cpu": {"shares": 256}})
    rt("update", "--resources", "-", b.id, input=resources.encode())
    assert rt("exec", b.id, "cat", mem_file).stdout.strip() == str(40 << 20)


def test_events_stats(rt: RuntimeCLI, bundle: Any) -> None:
    b = bundle(["sleep", "60"])
    b.spec["linux"]["resources"] = {"pids": {"limit": 30}}
    b.write()
    rt("run", "-d", "--bundle", str(b.path), b.id)
    event = json.loads(rt("events", "--stats", b.id).stdout)
    assert event["type"] == "stats" and event["id"] == b.id
    assert event["data"]["pids"]["current"] == 1
    assert event["data"]["pids"]["limit"] == 30
    assert event["data"]["memory"]["usage"]["usage"] > 0


def test_cpuset_binds_the_container(rt: RuntimeCLI, bundle: Any) -> None:
    skip_without_cpuset()
    cpu = max(os.sched_getaffinity(0))
    b = bundle(["grep", "Cpus_allowed_list", "/proc/self/status"])
    b.spec["linux"]["resources"] = {"cpu": {"cpus": str(cpu), "mems": "0"}}
    assert run(rt, b).stdout.split() == ["Cpus_allowed_list:", str(cpu)]


def test_run_with_terminal_in_the_foreground(rt: RuntimeCLI, bundle: Any) -> None:
    """No --console-socket: the runtime itself relays between its terminal and the container's."""
    import pty
    import select

    b = bundle(["sh", "-c", "test -t 0 && echo in-a-tty; exit 3"])
    b.spec["process"]["terminal"] = True
    b.write()
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [rt.binary, "--root", str(rt.root), "run", "--bundle", str(b.path), b.id],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    os.close(slave)
    out = b""
    try:
        while proc.poll() is None or select.select([master], [], [], 0.2)[0]:
            if select.select([master], [], [], 0.2)[0]:
                try:
                    out += os.read(master, 4096)
                except OSError:
                    break
        assert proc.wait(30) == 3
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert b"in-a-tty" in out
