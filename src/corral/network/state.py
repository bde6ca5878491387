"""Networks and live endpoints on disk.

    <data_root>/network/networks/<name>.json   a network's definition
    <data_root>/network/live.json              endpoints and published ports in use
    <data_root>/network/lock                   flock: one writer at a time for all of it

Every change happens under the lock and is written atomically (tmp + rename), so concurrent
`corral run`s never hand out one address twice and a kill -9 never leaves half a file. An
endpoint or port names the container's init (pid and start time): one whose process is gone
is stale, and whoever next holds the lock may reclaim it (`stale`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os

from corral import fastjson
from corral.errors import NetworkNotFound
from corral.kernel.identity import process_alive
from corral.network import settings
from corral.network.model import (
    Endpoint,
    Network,
    PortBinding,
    endpoint_from,
    network_from,
    port_from,
    to_json,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator


class Live:
    """The endpoints and port bindings in use: a snapshot read under the lock."""

    def __init__(self, endpoints: list[Endpoint], ports: list[PortBinding]) -> None:
        self.endpoints = endpoints
        self.ports = ports

    def of_container(self, cid: str) -> list[Endpoint]:
        return [e for e in self.endpoints if e.container == cid]

    def on_network(self, name: str) -> list[Endpoint]:
        return [e for e in self.endpoints if e.network == name]

    def stale(self) -> tuple[list[Endpoint], list[PortBinding]]:
        """What belongs to containers whose init is gone (crashed, killed, never cleaned)."""
        dead = [e for e in self.endpoints if not process_alive(e.pid, e.pid_start)]
        ports = [p for p in self.ports if not process_alive(p.pid, p.pid_start)]
        return dead, ports


class NetworkState:
    def __init__(self, data_root: str) -> None:
        self.root = settings.network_dir(data_root)
        self.networks_dir = os.path.join(self.root, "networks")
        self.live_path = os.path.join(self.root, "live.json")

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        os.makedirs(self.networks_dir, exist_ok=True)
        fd = os.open(os.path.join(self.root, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # ----- networks ---------------------------------------------------------------------

    def _path(self, name: str) -> str:
        return os.path.join(self.networks_dir, name + ".json")

    def networks(self) -> list[Network]:
        try:
            names = sorted(os.listdir(self.networks_dir))
        except FileNotFoundError:
            return []
        found = []
        for entry in names:
            if entry.endswith(".json"):
                with contextlib.suppress(NetworkNotFound):
                    found.append(self.load(entry[: -len(".json")]))
        return found

    def exists(self, name: str) -> bool:
        return os.path.exists(self._path(name))

    def load(self, name: str) -> Network:
        try:
            with open(self._path(name), "rb") as f:
                return network_from(fastjson.loads(f.read()))
        except (FileNotFoundError, NotADirectoryError):
            raise NetworkNotFound(f"network {name} not found") from None

    def save(self, network: Network) -> None:
        _write_json(self._path(network.name), to_json(network))

    def delete(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(name))

    # ----- endpoints and ports ----------------------------------------------------------

    def live(self) -> Live:
        try:
            with open(self.live_path, "rb") as f:
                data = fastjson.loads(f.read())
        except FileNotFoundError:
            return Live([], [])
        return Live(
            [endpoint_from(e) for e in data.get("endpoints", [])],
            [port_from(p) for p in data.get("ports", [])],
        )

    def save_live(self, live: Live) -> None:
        _write_json(
            self.live_path,
            {
                "endpoints": [to_json(e) for e in live.endpoints],
                "ports": [to_json(p) for p in live.ports],
            },
        )


def _write_json(path: str, data: object) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(fastjson.dumps(data))
    os.replace(tmp, path)
