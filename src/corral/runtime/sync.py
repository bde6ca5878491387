"""Small typed messages between the runtime and the container's processes.

A SOCK_SEQPACKET socketpair keeps message boundaries; each message is one JSON object with
a "type". EOF means the other side is gone: the container side then gives up, so a
runtime killed mid-create never leaves a process waiting forever.
"""

from __future__ import annotations

import json
import socket
from typing import Any

from corral.errors import ContainerError

MAX_MESSAGE = 65536


class SyncError(ContainerError):
    pass


class Channel:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    @classmethod
    def pair(cls) -> tuple[Channel, Channel]:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        return cls(a), cls(b)

    def send(self, kind: str, **fields: Any) -> None:
        fields["type"] = kind
        self.sock.send(json.dumps(fields).encode())

    def recv(self) -> dict[str, Any]:
        data = self.sock.recv(MAX_MESSAGE)
        if not data:
            raise SyncError("the other side of the runtime's sync socket went away")
        msg = json.loads(data)
        if not isinstance(msg, dict) or "type" not in msg:
            raise SyncError(f"malformed sync message {data[:80]!r}")
        return msg

    def expect(self, kind: str) -> dict[str, Any]:
        msg = self.recv()
        if msg["type"] == "error":
            raise SyncError(str(msg.get("message", "error")))
        if msg["type"] != kind:
            raise SyncError(f"expected {kind!r} from the runtime, got {msg['type']!r}")
        return msg

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()
