"""Lifecycle hooks: each runs with the container's state JSON on stdin, exactly the env and
args the spec gives, and its timeout. A failing hook fails the operation, except poststart
and poststop, whose failures are warnings (runtime-spec, "Lifecycle")."""

from __future__ import annotations

import os
import time

from corral import fastjson
from corral.errors import HookFailed

from .config import Hook

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def run_hook(kind: str, hook: Hook, state: dict[str, Any]) -> None:
    """fork + execve without the subprocess module (cheaper to import on the start path)."""
    data = fastjson.dumps(state).encode()
    read_fd, write_fd = os.pipe()
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        try:
            os.close(write_fd)
            os.close(err_r)
            os.dup2(read_fd, 0)
            os.close(read_fd)
            os.execve(hook.path, list(hook.args), _env(hook.env))
        except OSError as err:
            os.write(err_w, (err.strerror or "exec failed").encode())
        os._exit(127)
    os.close(read_fd)
    os.close(err_w)
    try:
        os.write(write_fd, data)
    except BrokenPipeError:
        pass
    finally:
        os.close(write_fd)
    exec_error = os.read(err_r, 512).decode()
    os.close(err_r)
    status = _wait(pid, hook.timeout)
    if exec_error:
        raise HookFailed(f"{kind} hook {hook.path}: {exec_error}")
    if status is None:
        raise HookFailed(f"{kind} hook {hook.path} timed out after {hook.timeout}s")
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
        raise HookFailed(f"{kind} hook {hook.path} {how}")


def _env(env: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for entry in env:
        key, _, value = entry.partition("=")
        out[key] = value
    return out


def _wait(pid: int, timeout: int | None) -> int | None:
    if timeout is None:
        return os.waitpid(pid, 0)[1]
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() > deadline:
            os.kill(pid, 9)  # SIGKILL
            os.waitpid(pid, 0)
            return None
        time.sleep(0.005)


def run_hooks(kind: str, hooks: tuple[Hook, ...], state: dict[str, Any]) -> None:
    for hook in hooks:
        run_hook(kind, hook, state)
