"""Run a command inside a group (what cgexec does), with a clear error if it cannot start."""

from __future__ import annotations

import errno
import os
import signal

from corral.errors import CorralError, KernelError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import FrameType

    from .manager import Manager

EXIT_NOT_EXECUTABLE = 126
EXIT_NOT_FOUND = 127


class CommandFailed(CorralError):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def exit_code(status: int) -> int:
    """waitpid status -> shell convention: the exit code, or 128+N for death by signal N."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def exec_in_group(manager: Manager, group: str, argv: Sequence[str]) -> int:
    """Fork; the child joins `group` and execs argv. Returns the command's exit code.

    The child reports a failure to join or to exec through a close-on-exec pipe, so the
    caller sees the real reason (and no command ever runs outside the group).
    Signals SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to the caller are forwarded.
    """
    if not argv:
        raise CorralError("no command given")
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_fd)
        try:
            manager.add_process(group, os.getpid())
            os.execvp(argv[0], list(argv))
        except BaseException as err:  # report, never return into the caller's code
            code = (
                EXIT_NOT_FOUND
                if isinstance(err, FileNotFoundError)
                else (EXIT_NOT_EXECUTABLE if isinstance(err, PermissionError) else 1)
            )
            message = f"{code}:{_describe(err, argv[0])}"
            try:
                os.write(write_fd, message.encode())
            finally:
                os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        report = pipe.read().decode()

    def forward(sig: int, _frame: FrameType | None) -> None:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    forwarded = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
    previous = {s: signal.signal(s, forward) for s in forwarded}
    try:
        while True:
            try:
                _, status = os.waitpid(pid, 0)
                break
            except InterruptedError:
                continue
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if report:
        code_text, _, message = report.partition(":")
        raise CommandFailed(message, int(code_text))
    return exit_code(status)


def _describe(err: BaseException, command: str) -> str:
    if isinstance(err, FileNotFoundError):
        return f"{command}: command not found"
    if isinstance(err, PermissionError):
        return f"{command}: permission denied (not executable)"
    if isinstance(err, OSError) and err.errno is not None:
        return f"exec {command}: {os.strerror(err.errno)}"
    if isinstance(err, KernelError) and err.errno == errno.ESRCH:
        return str(err)
    return str(err) or type(err).__name__
