"""Copying between our stdio and a container's terminal master (run / exec with a tty and
no --console-socket, as runc does in the foreground)."""

from __future__ import annotations

import errno
import os
import select
import termios
import tty

from .console import get_size, set_size


def proxy_terminal(master: int, pid: int) -> None:
    """Until the container side of the terminal closes: stdin -> master -> stdout."""
    stdin_tty = os.isatty(0)
    saved = termios.tcgetattr(0) if stdin_tty else None
    if stdin_tty:
        size = get_size(0)
        if size:
            set_size(master, size)
        tty.setraw(0)
    stdin_open = True
    try:
        while True:
            fds = [master] + ([0] if stdin_open else [])
            try:
                ready, _, _ = select.select(fds, [], [])
            except InterruptedError:
                continue
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError as err:
                    if err.errno == errno.EIO:  # every slave fd is closed: the process is done
                        return
                    raise
                if not data:
                    return
                _write_all(1, data)
            if 0 in ready:
                data = os.read(0, 65536)
                if not data:
                    stdin_open = False
                    _write_all(master, b"\x04")  # EOF for the program reading the terminal
                else:
                    _write_all(master, data)
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        os.close(master)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        n = os.write(fd, data)
        data = data[n:]
