"""`-it` through a real pty: the container gets a terminal of the caller's size, follows
resizes, Ctrl-C reaches the container's foreground process, and ctrl-p ctrl-q detaches
while the container runs on."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import termios
import time

from tests.integration.engine.conftest import IMAGE, Corral, wait_for


class Terminal:
    def __init__(self, argv: list[str], rows: int = 30, cols: int = 100) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execv(argv[0], argv)
        self.resize(rows, cols)
        self.out = b""

    def resize(self, rows: int, cols: int) -> None:
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        os.kill(self.pid, signal.SIGWINCH)

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    def expect(self, needle: bytes, timeout: float = 30) -> bytes:
        deadline = time.monotonic() + timeout
        while needle not in self.out:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{needle!r} not seen in {self.out[-500:]!r}")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"{needle!r} not seen before EOF: {self.out[-500:]!r}")
                self.out += chunk
        return self.out

    def exit_code(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
            with_data = select.select([self.fd], [], [], 0.05)[0]
            if with_data:
                try:
                    self.out += os.read(self.fd, 4096)
                except OSError:
                    pass
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        raise AssertionError("the CLI did not exit")


def test_interactive_terminal(corral: Corral) -> None:
    term = Terminal(corral.argv("run", "-it", "--rm", IMAGE, "sh"), rows=33, cols=101)
    term.expect(b"# ")
    term.send(b"stty size; tty; echo $((6*7))\r")
    term.expect(b"42")
    assert b"33 101" in term.out and b"/dev/pts/0" in term.out
    term.resize(40, 120)
    time.sleep(0.3)
    term.send(b"stty size\r")
    term.expect(b"40 120")
    term.send(b"sleep 30\r")
    time.sleep(0.5)
    term.send(b"\x03")  # Ctrl-C: the terminal driver in the container interrupts sleep
    term.send(b"echo interrupted\r")
    term.expect(b"interrupted\r\n")
    term.send(b"exit 3\r")
    assert term.exit_code() == 3


def test_detach_keys_leave_it_running(corral: Corral) -> None:
    term = Terminal(corral.argv("run", "-it", "--name", "t-detach", IMAGE, "sh"))
    term.expect(b"# ")
    term.send(b"\x10\x11")  # ctrl-p ctrl-q
    assert term.exit_code() == 0
    assert corral.inspect("t-detach")["State"]["Running"]
    again = Terminal(corral.argv("attach", "t-detach"))
    time.sleep(2)  # attached before typing
    again.send(b"echo back-again\r")
    again.expect(b"back-again\r\n")
    again.send(b"exit 9\r")
    assert again.exit_code() == 9
    assert wait_for(lambda: corral.inspect("t-detach")["State"]["ExitCode"] == 9)
