"""Small typed messages between the runtime and the container's processes.

Two pipes (one each way), one JSON object per line, each with a "type". EOF means the
other side is gone: the container side then gives up, so a runtime killed mid-create
never leaves a process waiting forever. Pipes rather than a socketpair: `socket` costs
~7 ms to import on the start path.
"""

from __future__ import annotations

import os

from corral import fastjson
from corral.errors import ContainerError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class SyncError(ContainerError):
    pass


class Channel:
    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.read_fd = read_fd
        self.write_fd = write_fd
        self._buffer = b""

    @classmethod
    def pair(cls) -> tuple[Channel, Channel]:
        a_read, b_write = os.pipe2(os.O_CLOEXEC)
        b_read, a_write = os.pipe2(os.O_CLOEXEC)
        return cls(a_read, a_write), cls(b_read, b_write)

    def send(self, kind: str, **fields: Any) -> None:
        fields["type"] = kind
        data = fastjson.dumps(fields).encode() + b"\n"
        while data:
            data = data[os.write(self.write_fd, data) :]

    def recv(self) -> dict[str, Any]:
        while b"\n" not in self._buffer:
            chunk = os.read(self.read_fd, 65536)
            if not chunk:
                raise SyncError("the other side of the runtime's sync pipe went away")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        msg = fastjson.loads(line)
        if not isinstance(msg, dict) or "type" not in msg:
            raise SyncError(f"malformed sync message {line[:80]!r}")
        return msg

    def expect(self, kind: str) -> dict[str, Any]:
        msg = self.recv()
        if msg["type"] == "error":
            raise SyncError(str(msg.get("message", "error")))
        if msg["type"] != kind:
            raise SyncError(f"expected {kind!r} from the runtime, got {msg['type']!r}")
        return msg

    def fds(self) -> list[int]:
        return [self.read_fd, self.write_fd]

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        self.read_fd = self.write_fd = -1
