"""`corral run` and friends as a docker user types them: output, exit codes, names,
detached containers, logs, stop, exec, inspect — each checked from inside the container."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from tests.integration.engine.conftest import IMAGE, Corral, wait_for


def test_run_rm_prints_and_leaves_nothing(corral: Corral) -> None:
    before = corral.ids()
    result = corral.run("--rm", IMAGE, "echo", "hello", "world")
    assert result.stdout == "hello world\n"
    assert corral.ids() == before


def test_exit_codes_are_dockers(corral: Corral) -> None:
    assert corral.run("--rm", IMAGE, "sh", "-c", "exit 3", check=False).returncode == 3
    missing = corral.run("--rm", IMAGE, "no-such-command", check=False)
    assert missing.returncode == 127 and "no-such-command" in missing.stderr
    not_exec = corral.run("--rm", IMAGE, "/etc/passwd", check=False)
    assert not_exec.returncode == 126 and "permission denied" in not_exec.stderr
    corral.run("-d", "--name", "t-killed", IMAGE, "sleep", "100")
    corral("kill", "t-killed")
    assert corral("wait", "t-killed").stdout.strip() == "137"  # pid 1 cannot SIGKILL itself
    bad = corral.run("--rm", "--memory", "lots", IMAGE, "true", check=False)
    assert bad.returncode == 125 and "--memory" in bad.stderr
    assert corral("run", "--rm", "-q", "127.0.0.1:1/nothing", "true", check=False).returncode == 125


def test_bad_input_leaves_nothing_half_made(corral: Corral) -> None:
    before = corral.ids()
    for flags in (
        ["--restart", "sometimes"],
        ["-v", "/tmp:relative"],
        ["--ulimit", "nofile"],
        ["--network", "no-such-network"],
        ["-p", "99999:80"],
        ["--security-opt", "apparmor=x"],
        ["--runtime", "/no/such"],
        ["-u", "nobody-here"],
    ):
        result = corral.run(*flags, IMAGE, "true", check=False)
        assert result.returncode == 125, (flags, result.stderr)
        assert result.stderr.startswith("corral: error:"), flags
    assert corral.ids() == before


def test_detached_ps_logs_stop_rm(corral: Corral) -> None:
    cid = corral.run(
        "-d",
        "--name",
        "t-web",
        IMAGE,
        "sh",
        "-c",
        "trap 'echo bye; exit 0' TERM; echo out; echo err >&2; while true; do sleep 0.1; done",
    ).stdout.strip()
    assert len(cid) == 64
    ps = corral("ps").stdout
    assert "t-web" in ps and cid[:12] in ps and "Up " in ps
    assert wait_for(lambda: "out" in corral("logs", "t-web").stdout)
    logs = corral("logs", "t-web")
    assert logs.stdout == "out\n" and logs.stderr == "err\n"  # streams kept apart
    assert corral("stop", "t-web").stdout.strip() == "t-web"
    doc = corral.inspect("t-web")
    # The trap ran (exit 0, "bye"): not the SIGKILL after the grace period (137).
    assert doc["State"]["Status"] == "exited" and doc["State"]["ExitCode"] == 0
    assert "bye" in corral("logs", "t-web").stdout
    assert "t-web" not in corral("ps").stdout and "t-web" in corral("ps", "-a").stdout
    corral("rm", "t-web")
    assert "t-web" not in corral("ps", "-a").stdout


def test_stop_kills_after_the_timeout(corral: Corral) -> None:
    corral.run("-d", "--name", "t-stubborn", IMAGE, "sh", "-c", "trap '' TERM; sleep 100")
    started = time.monotonic()
    corral("stop", "-t", "1", "t-stubborn")
    assert 0.9 < time.monotonic() - started < 10
    assert corral.inspect("t-stubborn")["State"]["ExitCode"] == 137


def test_names_ids_and_conflicts(corral: Corral) -> None:
    cid = corral("create", "-q", "--name", "t-named", IMAGE, "true").stdout.strip()
    again = corral("create", "-q", "--name", "t-named", IMAGE, "true", check=False)
    assert again.returncode == 125 and "already in use" in again.stderr
    assert corral.inspect(cid[:8])["Name"] == "/t-named"  # a short prefix works
    corral("rename", "t-named", "t-renamed")
    assert corral.inspect(cid)["Name"] == "/t-renamed"
    generated = corral("create", "-q", IMAGE, "true").stdout.strip()
    name = corral.inspect(generated)["Name"].lstrip("/")
    assert "_" in name and corral.inspect(name)["Id"] == generated
    corral("start", "-a", "t-renamed")
    assert corral.inspect(cid)["State"]["Status"] == "exited"


def test_process_settings_reach_the_container(corral: Corral, tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("FROM_FILE=yes\n# a comment\n")
    out = corral.run(
        "--rm",
        "-e",
        "GREETING=hi",
        "--env-file",
        str(env_file),
        "-w",
        "/tmp",
        "-u",
        "1000:1000",
        "-h",
        "box",
        IMAGE,
        "sh",
        "-c",
        "echo $GREETING $FROM_FILE; pwd; id -u; id -g; hostname; cat /etc/hostname",
    ).stdout.split()
    assert out == ["hi", "yes", "/tmp", "1000", "1000", "box", "box"]
    named_user = corral.run("--rm", "-u", "nobody", IMAGE, "id", "-un").stdout.strip()
    assert named_user == "nobody"
    entry = corral.run("--rm", "--entrypoint", "echo", IMAGE, "from", "entrypoint").stdout
    assert entry == "from entrypoint\n"


def test_stdin_with_i(corral: Corral) -> None:
    result = corral.run("--rm", "-i", IMAGE, "sh", "-c", "tr a-z A-Z", input="piped in\n")
    assert result.stdout == "PIPED IN\n"
    no_i = corral.run("--rm", IMAGE, "cat", input="ignored\n")
    assert no_i.stdout == ""


def test_exec(corral: Corral) -> None:
    corral.run("-d", "--name", "t-exec", "-e", "BASE=1", IMAGE, "sleep", "100")
    out = corral(
        "exec",
        "-e",
        "EXTRA=2",
        "-w",
        "/etc",
        "-u",
        "nobody",
        "t-exec",
        "sh",
        "-c",
        "echo $BASE $EXTRA; pwd; id -un",
    ).stdout.split()
    assert out == ["1", "2", "/etc", "nobody"]
    assert corral("exec", "t-exec", "sh", "-c", "exit 5", check=False).returncode == 5
    assert corral("exec", "t-exec", "nope", check=False).returncode == 127
    piped = corral("exec", "-i", "t-exec", "cat", input="through exec\n")
    assert piped.stdout == "through exec\n"
    corral("exec", "-d", "t-exec", "sh", "-c", "touch /tmp/detached-ran")
    assert wait_for(
        lambda: (
            corral("exec", "t-exec", "test", "-e", "/tmp/detached-ran", check=False).returncode == 0
        )
    )
    top = corral("top", "t-exec").stdout
    assert "sleep 100" in top
    corral("kill", "t-exec")
    corral("wait", "t-exec")
    stopped = corral("exec", "t-exec", "true", check=False)
    assert stopped.returncode == 125 and "not running" in stopped.stderr


def test_inspect_fields_scripts_read(corral: Corral) -> None:
    corral.run(
        "-d",
        "--name",
        "t-insp",
        "-m",
        "64m",
        "--cpus",
        "0.5",
        "-l",
        "team=core",
        "--restart",
        "on-failure:2",
        IMAGE,
        "sleep",
        "100",
    )
    doc = corral.inspect("t-insp")
    assert doc["State"]["Running"] and doc["State"]["Pid"] > 0
    assert doc["Config"]["Labels"] == {"team": "core"}
    assert doc["HostConfig"]["Memory"] == 64 << 20 and doc["HostConfig"]["NanoCpus"] == 500_000_000
    assert doc["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert doc["Config"]["Cmd"] == ["sleep", "100"] and doc["Path"] == "sleep"
    assert corral("inspect", "-f", "{{.State.Status}}", "t-insp").stdout.strip() == "running"
    assert os.path.exists(doc["LogPath"])
    image = json.loads(corral("inspect", IMAGE).stdout)[0]
    assert image["Id"] == doc["Image"]


def test_wait_returns_the_exit_code(corral: Corral) -> None:
    corral.run("-d", "--name", "t-wait", IMAGE, "sh", "-c", "sleep 0.3; exit 7")
    assert corral("wait", "t-wait").stdout.strip() == "7"


def test_ps_filters_and_formats(corral: Corral) -> None:
    corral.run("-d", "--name", "t-ps-a", "-l", "tier=front", IMAGE, "sleep", "100")
    corral.run("--name", "t-ps-b", IMAGE, "sh", "-c", "exit 2", check=False)
    names = corral("ps", "-a", "--format", "{{.Names}}").stdout.split()
    assert {"t-ps-a", "t-ps-b"} <= set(names)
    assert corral(
        "ps", "-a", "--filter", "label=tier=front", "--format", "{{.Names}}"
    ).stdout.split() == ["t-ps-a"]
    assert corral("ps", "-a", "-f", "exited=2", "--format", "{{.Names}}").stdout.split() == [
        "t-ps-b"
    ]
    assert corral(
        "ps", "-a", "-f", "status=running", "-f", "name=t-ps", "--format", "{{.Names}}"
    ).stdout.split() == ["t-ps-a"]
    rows = [json.loads(line) for line in corral("ps", "-a", "--format", "json").stdout.splitlines()]
    assert any(r["Names"] == "t-ps-b" and r["State"] == "exited" for r in rows)


def test_signals_to_a_foreground_run_are_forwarded(corral: Corral) -> None:
    proc = subprocess.Popen(
        corral.argv(
            "run",
            "--rm",
            IMAGE,
            "sh",
            "-c",
            "trap 'echo got-term; exit 4' TERM; echo ready; while true; do sleep 0.1; done",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert "got-term" in out and proc.returncode == 4


def test_pause_unpause(corral: Corral) -> None:
    corral.run(
        "-d",
        "--name",
        "t-pause",
        IMAGE,
        "sh",
        "-c",
        "i=0; while true; do i=$((i+1)); echo $i > /tmp/n; done",
    )
    corral("pause", "t-pause")
    assert corral.inspect("t-pause")["State"]["Status"] == "paused"
    frozen = corral("ps", "--format", "{{.Status}}", "-f", "name=t-pause").stdout
    assert "Paused" in frozen
    corral("unpause", "t-pause")

    def count() -> str:  # the file is rewritten in place: skip a read that caught it empty
        value = ""
        while not value:
            value = corral("exec", "t-pause", "cat", "/tmp/n").stdout.strip()
        return value

    first = count()
    assert wait_for(lambda: count() != first)
