"""Terminals: a pty made inside the container, its master handed to the caller over the
--console-socket with SCM_RIGHTS (what containerd, podman and conmon expect from runc)."""

from __future__ import annotations

import fcntl
import os
import socket
import struct
import termios


def open_pty(size: tuple[int, int] | None) -> tuple[int, int, str]:
    """(master, slave, slave path). Opened inside the container, so /dev/ptmx is its own."""
    master, slave = os.openpty()
    if size:
        set_size(slave, size)
    return master, slave, os.ttyname(slave)


def set_size(fd: int, size: tuple[int, int]) -> None:
    rows, cols = size
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def get_size(fd: int) -> tuple[int, int] | None:
    try:
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    except OSError:
        return None
    return rows, cols


def send_master(sock: socket.socket, master: int, name: str) -> None:
    socket.send_fds(sock, [name.encode()], [master])


def receive_master(sock: socket.socket) -> int:
    _msg, fds, _flags, _addr = socket.recv_fds(sock, 4096, 1)
    if not fds:
        raise OSError("no terminal fd received")
    return fds[0]


def become_terminal_session(slave: int) -> None:
    """New session, the pty as controlling terminal, and stdio on it."""
    os.setsid()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)


def proxy_pair() -> tuple[socket.socket, socket.socket]:
    """For a terminal in the foreground: (our end, the end init sends the master over)."""
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)


def take_master(ours: socket.socket) -> int:
    """Receive the pty master on our end of a proxy_pair, and close that end."""
    try:
        return receive_master(ours)
    finally:
        ours.close()
