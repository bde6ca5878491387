"""Driving an OCI runtime through its command line: corral-runtime by default, or any
runc-compatible binary (runc, crun) given with --runtime. The engine needs nothing a
runtime's CLI does not offer, so the same engine tests run against every runtime.

Each runtime binary keeps its state under its own root (/run/corral/engine/<name>), apart
from what a user runs with that runtime directly.
"""

from __future__ import annotations

import os
import sys

from corral import fastjson
from corral.errors import ContainerError, ContainerNotFound, CorralError

RUN_ROOT = "/run/corral"

TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess
    from typing import Any


class RuntimeFailed(ContainerError):
    """The OCI runtime refused or failed; carries docker's exit code for the cause."""

    def __init__(self, message: str, code: int = 125) -> None:
        super().__init__(message)
        self.code = code


def default_runtime() -> str:
    """corral-runtime next to the running interpreter (the venv's fast launcher)."""
    here = os.path.join(os.path.dirname(sys.executable), "corral-runtime")
    if os.access(here, os.X_OK):
        return here
    import shutil

    found = shutil.which("corral-runtime")
    if not found:
        raise ContainerError("corral-runtime is not installed (run scripts/setup.sh)")
    return found


def resolve(path: str) -> str:
    """--runtime NAME|PATH -> an executable path."""
    if not path:
        return default_runtime()
    import shutil

    found = path if "/" in path else shutil.which(path)
    if not found or not os.access(found, os.X_OK):
        raise ContainerError(f"runtime {path!r} not found or not executable")
    return os.path.abspath(found)


def exit_code_for(message: str) -> int:
    """docker's codes for a process that could not be started: 127 not found, 126 not
    executable, 125 anything else (the engine's or the runtime's own failure). Only a
    failure to exec the container's command counts, not any 'no such file' on the way."""
    lower = message.lower()
    if "exec" not in lower:
        return 125
    if "not found" in lower or "no such file" in lower:
        return 127
    if "permission denied" in lower or "exec format" in lower or "is a directory" in lower:
        return 126
    return 125


class Runtime:
    def __init__(self, path: str = "") -> None:
        self.path = resolve(path)
        name = os.path.basename(self.path)
        run_root = os.environ.get("CORRAL_ROOT", RUN_ROOT)
        self.root = os.path.join(run_root, "engine", name)

    def _argv(self, *args: str, log: str | None = None) -> list[str]:
        argv = [self.path, "--root", self.root]
        if log:
            argv += ["--log", log, "--log-format", "json"]
        return [*argv, *args]

    def _run(self, *args: str, check: bool = True, **kw: Any) -> subprocess.CompletedProcess[str]:
        import subprocess

        result = subprocess.run(
            self._argv(*args), capture_output=True, text=True, timeout=kw.pop("timeout", 60), **kw
        )
        if check and result.returncode != 0:
            raise RuntimeFailed(f"{os.path.basename(self.path)} {args[0]}: {_message(result)}")
        return result

    def create(
        self,
        cid: str,
        bundle: str,
        *,
        stdio: tuple[int, int, int],
        pid_file: str,
        log: str,
        console_socket: str | None = None,
    ) -> int:
        """Create the container; its init gets `stdio` (or a terminal over the console
        socket). Returns the init's pid."""
        args = ["create", "--bundle", bundle, "--pid-file", pid_file]
        if console_socket:
            args += ["--console-socket", console_socket]
        import subprocess

        stdin, stdout, stderr = stdio
        with open(log, "a"):
            pass
        result = subprocess.run(
            self._argv(*args, cid, log=log),
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            message = _log_errors(log) or f"exit status {result.returncode}"
            raise RuntimeFailed(message, exit_code_for(message))
        with open(pid_file) as f:
            return int(f.read().strip())

    def start(self, cid: str) -> None:
        self._run("start", cid)

    def kill(self, cid: str, sig: int | str, all_processes: bool = False) -> None:
        args = ["kill"] + (["--all"] if all_processes else []) + [cid, str(int(_signum(sig)))]
        self._run(*args)

    def delete(self, cid: str, force: bool = False) -> None:
        result = self._run("delete", *(["--force"] if force else []), cid, check=False)
        if result.returncode != 0 and "not exist" not in _message(result):
            raise RuntimeFailed(f"delete {cid[:12]}: {_message(result)}")

    def state(self, cid: str) -> dict[str, Any] | None:
        result = self._run("state", cid, check=False)
        if result.returncode != 0:
            return None
        data: dict[str, Any] = fastjson.loads(result.stdout)
        return data

    def pause(self, cid: str) -> None:
        self._run("pause", cid)

    def resume(self, cid: str) -> None:
        self._run("resume", cid)

    def update(self, cid: str, resources: dict[str, Any]) -> None:
        self._run("update", "--resources", "-", cid, input=fastjson.dumps(resources))

    def ps(self, cid: str) -> list[int]:
        result = self._run("ps", "--format", "json", cid)
        return [int(p) for p in fastjson.loads(result.stdout or "[]")]

    def exec_argv(
        self,
        cid: str,
        process_file: str,
        *,
        tty: bool = False,
        detach: bool = False,
        pid_file: str | None = None,
    ) -> list[str]:
        """The argv of `exec --process FILE`: the caller runs it with its own stdio."""
        args = ["exec", "--process", process_file]
        if tty:
            args.append("--tty")
        if detach:
            args.append("--detach")
        if pid_file:
            args += ["--pid-file", pid_file]
        return self._argv(*args, cid)


class LibraryRuntime:
    """Corral's own runtime called in this process (the monitor, the CLI): the same code
    as corral-runtime, the same state directory, minus a process start-up per step."""

    def __init__(self) -> None:
        from corral.runtime.container import Runtime as Library

        run_root = os.environ.get("CORRAL_ROOT", RUN_ROOT)
        self.path = "corral-runtime"
        self.root = os.path.join(run_root, "engine", "corral-runtime")
        self.log: str | None = None
        self.lib = Library(self.root, warn=self._warn)

    def _warn(self, message: str) -> None:
        if self.log:
            with open(self.log, "a") as f:
                f.write(fastjson.dumps({"level": "warning", "msg": message}) + "\n")

    def create(
        self,
        cid: str,
        bundle: str,
        *,
        stdio: tuple[int, int, int],
        pid_file: str,
        log: str,
        console_socket: str | None = None,
    ) -> int:
        """The init is forked from this process and inherits fds 0-2: put the container's
        stdio there for the duration of the call."""
        self.log = log
        saved = [os.dup(fd) for fd in (0, 1, 2)]
        try:
            for target, fd in enumerate(stdio):
                os.dup2(fd, target)
            state = self.lib.create(cid, bundle, pid_file=pid_file, console_socket=console_socket)
        except CorralError as err:
            raise RuntimeFailed(str(err), exit_code_for(str(err))) from None
        finally:
            for target, fd in enumerate(saved):
                os.dup2(fd, target)
                os.close(fd)
        return state.pid

    def start(self, cid: str) -> None:
        self._call(self.lib.start, cid)

    def kill(self, cid: str, sig: int | str, all_processes: bool = False) -> None:
        self._call(self.lib.kill, cid, _signum(sig), all_processes)

    def delete(self, cid: str, force: bool = False) -> None:
        try:
            self.lib.delete(cid, force=force)
        except ContainerNotFound:
            return
        except CorralError as err:
            raise RuntimeFailed(f"delete {cid[:12]}: {err}") from None

    def state(self, cid: str) -> dict[str, Any] | None:
        try:
            return self.lib.state(cid)
        except CorralError:
            return None

    def pause(self, cid: str) -> None:
        self._call(self.lib.pause, cid)

    def resume(self, cid: str) -> None:
        self._call(self.lib.resume, cid)

    def update(self, cid: str, resources: dict[str, Any]) -> None:
        from corral.runtime.config import resources_from_json

        self._call(self.lib.update, cid, resources_from_json(resources))

    def ps(self, cid: str) -> list[int]:
        return list(self._call(self.lib.pids, cid))

    def exec_argv(self, cid: str, process_file: str, **kw: Any) -> list[str]:
        """exec keeps a process of its own (it holds the caller's terminal): the binary."""
        return Runtime(default_runtime()).exec_argv(cid, process_file, **kw)

    def exec_here(self, cid: str, process_file: str, *, tty: bool = False) -> int:
        """Run the process in the container from this process (no corral-runtime
        start-up) and return its exit code; this process relays a terminal if `tty`."""
        from corral.cgroups import warmup

        warmup.start()  # the kernel's grace period for the cgroup move, while we prepare
        from corral.runtime.execspec import build_exec_process

        options = {"process": process_file, "tty": tty}
        process = self._call(build_exec_process, self.lib, cid, options, [])
        return int(self._call(self.lib.exec, cid, process))

    @staticmethod
    def _call(fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except CorralError as err:
            raise RuntimeFailed(str(err)) from None


def runtime_for(path: str) -> Runtime | LibraryRuntime:
    """--runtime PATH: that binary; none: Corral's own runtime in this process."""
    return LibraryRuntime() if not path else Runtime(path)


def _signum(sig: int | str) -> int:
    if isinstance(sig, int):
        return sig
    text = sig.upper().removeprefix("SIG")
    if text.isdigit():
        return int(text)
    import signal  # here: the module's enums cost ~1 ms to import

    try:
        return int(signal.Signals[f"SIG{text}"])
    except KeyError:
        raise ContainerError(f"invalid signal {sig!r}") from None


def parse_signal(sig: str) -> int:
    return _signum(sig)


def _message(result: subprocess.CompletedProcess[str]) -> str:
    text = (result.stderr or result.stdout or "").strip()
    lines = []
    for line in text.splitlines():
        try:
            doc = fastjson.loads(line)
            lines.append(str(doc.get("msg", line)))
        except (ValueError, AttributeError):
            lines.append(line)
    return "; ".join(lines) or f"exit status {result.returncode}"


def _log_errors(path: str) -> str:
    """The error lines of a runtime's JSON log (runc, crun and corral-runtime write them)."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return ""
    errors = []
    for line in lines:
        try:
            doc = fastjson.loads(line)
        except ValueError:
            if line.strip():
                errors.append(line.strip())
            continue
        if isinstance(doc, dict) and doc.get("level") in ("error", "fatal"):
            errors.append(str(doc.get("msg", "")))
    return "; ".join(errors)
