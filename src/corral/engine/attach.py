"""The client side of the monitor's attach socket: relays the container's output to our
stdout and stderr, our stdin to the container, terminal size changes, and returns the
exit code. With a terminal: raw mode, and ctrl-p ctrl-q detaches (the container runs on)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import signal
import socket
import struct
import termios
import tty as ttymod
from collections.abc import Callable, Iterator

from corral.engine.monitor import (
    EXIT,
    HEADER,
    RESIZE,
    STARTED,
    STDERR,
    STDIN,
    STDIN_CLOSED,
    STDOUT,
    frame,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DETACH_KEYS = b"\x10\x11"  # ctrl-p ctrl-q
DETACHED = -1


def connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    return sock


def terminal_size(fd: int = 1) -> tuple[int, int] | None:
    try:
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    except OSError:
        return None
    return (rows, cols) if rows and cols else None


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    ttymod.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def relay(
    sock: socket.socket,
    *,
    stdin: bool,
    tty: bool,
    on_started: Callable[[], None] | None = None,
    send_hello: bool = True,
    detach_keys: bytes = DETACH_KEYS,
) -> int:
    """Until the container exits (its code) or the user detaches (DETACHED) by typing
    `detach_keys` on a terminal (docker's ctrl-p ctrl-q; LXC's console: ctrl-a q)."""
    if send_hello:
        sock.sendall(json.dumps({"stdin": stdin}).encode() + b"\n")
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    old_winch = None
    if tty and os.isatty(1):
        size = terminal_size(1)
        if size:
            sock.sendall(frame(RESIZE, f"{size[0]} {size[1]}".encode()))
        old_winch = signal.signal(signal.SIGWINCH, lambda *_: os.write(wake_w, b"w"))
    buf = b""
    pending_escape = b""
    watch_stdin = stdin
    try:
        with raw_terminal(0) if (tty and stdin) else contextlib.nullcontext():
            while True:
                fds: list[Any] = [sock, wake_r] + ([0] if watch_stdin else [])
                ready, _, _ = select.select(fds, [], [])
                if wake_r in ready:
                    os.read(wake_r, 64)
                    size = terminal_size(1)
                    if size:
                        sock.sendall(frame(RESIZE, f"{size[0]} {size[1]}".encode()))
                if 0 in ready:
                    data = os.read(0, 65536)
                    if not data:
                        sock.sendall(frame(STDIN_CLOSED, b""))
                        watch_stdin = False
                    else:
                        if tty:
                            data = pending_escape + data
                            pending_escape = b""
                            if detach_keys in data:
                                before = data.split(detach_keys, 1)[0]
                                if before:
                                    sock.sendall(frame(STDIN, before))
                                return DETACHED
                            if data.endswith(detach_keys[:1]):
                                data, pending_escape = data[:-1], detach_keys[:1]
                        if data:
                            sock.sendall(frame(STDIN, data))
                if sock in ready:
                    chunk = sock.recv(65536)
                    if not chunk:
                        return 255  # the monitor went away without an exit code
                    buf += chunk
                    while len(buf) >= HEADER.size:
                        stream, length = HEADER.unpack_from(buf)
                        if len(buf) < HEADER.size + length:
                            break
                        payload = buf[HEADER.size : HEADER.size + length]
                        buf = buf[HEADER.size + length :]
                        if stream == STDOUT:
                            _write_all(1, payload)
                        elif stream == STDERR:
                            _write_all(2, payload)
                        elif stream == STARTED and on_started:
                            on_started()
                        elif stream == EXIT:
                            return int(payload or b"0")
    finally:
        if old_winch is not None:
            signal.signal(signal.SIGWINCH, old_winch)
        os.close(wake_r)
        os.close(wake_w)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            select.select([], [fd], [])
        except BrokenPipeError:
            return
