"""A container's /etc/hosts on a network: what the engine wrote at create (`<file>.base`:
localhost and --add-host lines), the container's own address, and one line per peer on the
networks that resolve names. Peers' files are rewritten as containers come and go: in place
(same inode), because each is bind mounted into its container."""

from __future__ import annotations

import contextlib

TYPE_CHECKING = False
if TYPE_CHECKING:
    from corral.network.model import Endpoint


def compose(base: str, hostname: str, own: list[Endpoint], peers: list[Endpoint]) -> str:
    lines = [base.rstrip("\n")]
    if own:
        lines.append(f"{own[0].ip}\t{hostname}")
    seen = set()
    for peer in peers:
        if peer.ip in seen:
            continue
        seen.add(peer.ip)
        names = [n for n in (peer.name, *peer.aliases, peer.container[:12]) if n]
        lines.append(f"{peer.ip}\t{' '.join(dict.fromkeys(names))}")
    return "\n".join(lines) + "\n"


def rewrite(endpoint: Endpoint, hostname: str, own: list[Endpoint], peers: list[Endpoint]) -> None:
    """Rewrite one container's hosts file; a container removed meanwhile is skipped."""
    if not endpoint.hosts_file:
        return
    with contextlib.suppress(FileNotFoundError):
        with open(endpoint.hosts_file + ".base") as f:
            base = f.read()
        text = compose(base, hostname, own, peers)
        with open(endpoint.hosts_file, "r+") as f:  # in place: the bind mount keeps the inode
            f.write(text)
            f.truncate()
