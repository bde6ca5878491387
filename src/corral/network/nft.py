"""Corral's nftables table (`inet corral`, or $CORRAL_NFT_TABLE): NAT out of networks,
published ports, isolation between networks. Nothing outside this table is touched.

    table inet corral {
        set bridges         Corral's bridges
        chain prerouting    nat, dstnat:   fib daddr type local -> jump ports
        chain output        nat, -100:     the same for the host's own connections
        chain ports         dnat rules, one per published port   comment "ctr:<id>"
        chain postrouting   nat, srcnat:   masquerade out of each network  comment "net:<id>"
        chain forward       filter:        network isolation, --internal     comment "net:<id>"
    }

Rules go in through `nft -f -` (text, from validated values only); they come out by
handle, found in `nft -j list table` by their comment. Each call is one transaction.
"""

from __future__ import annotations

import subprocess

from corral import fastjson
from corral.errors import NetworkError
from corral.network import settings

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from corral.network.model import Network, PortBinding


def _nft(args: list[str], script: str | None = None) -> str:
    try:
        result = subprocess.run(
            ["nft", *args], input=script, capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        raise NetworkError("nft is not installed (Debian: apt-get install nftables)") from None
    if result.returncode != 0:
        raise NetworkError(f"nft {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def apply(lines: list[str]) -> None:
    if lines:
        _nft(["-f", "-"], "\n".join(lines) + "\n")


def table() -> str:
    return f"inet {settings.nft_table()}"


def listing() -> list[dict[str, Any]]:
    """The table's objects (nft's JSON), or [] when there is no table."""
    try:
        out = _nft(["-j", "list", "table", *table().split()])
    except NetworkError as err:
        if "No such file or directory" in str(err):
            return []
        raise
    items: list[dict[str, Any]] = fastjson.loads(out).get("nftables", [])
    return items


def base_lines() -> list[str]:
    """The table, its chains and the jumps to `ports`: made once, when the table is new."""
    t = table()
    return [
        f"add table {t}",
        f"add set {t} bridges {{ type ifname; }}",
        f"add chain {t} ports",
        f"add chain {t} prerouting {{ {_base('nat', 'prerouting', 'dstnat')} }}",
        f"add chain {t} output {{ {_base('nat', 'output', '-100')} }}",
        f"add chain {t} postrouting {{ {_base('nat', 'postrouting', 'srcnat')} }}",
        f"add chain {t} forward {{ {_base('filter', 'forward', 'filter')} }}",
        f"add rule {t} prerouting fib daddr type local jump ports",
        f"add rule {t} output fib daddr type local jump ports",
    ]


def _base(kind: str, hook: str, priority: str) -> str:
    return f"type {kind} hook {hook} priority {priority}; policy accept;"


def ensure_table() -> None:
    if not listing():
        apply(base_lines())


def network_lines(net: Network) -> list[str]:
    t, br, tag = table(), net.bridge, f'comment "net:{net.id}"'
    lines = [f'add element {t} bridges {{ "{br}" }}']
    # Traffic between two of Corral's networks is dropped (isolation, as docker does).
    lines.append(
        f'add rule {t} forward iifname "{br}" oifname @bridges oifname != "{br}" drop {tag}'
    )
    if net.internal:
        lines.append(f'add rule {t} forward iifname "{br}" oifname != "{br}" drop {tag}')
        lines.append(f'add rule {t} forward oifname "{br}" iifname != "{br}" drop {tag}')
    else:
        sub = net.subnet
        lines.append(f"add rule {t} postrouting ip saddr {sub} ip daddr != {sub} masquerade {tag}")
        # Published ports reached through 127.0.0.1: the source must not stay loopback.
        lines.append(
            f'add rule {t} postrouting oifname "{br}" ip saddr 127.0.0.0/8 masquerade {tag}'
        )
    return lines


def port_lines(bindings: list[PortBinding]) -> list[str]:
    t = table()
    lines = []
    for b in bindings:
        match = f"ip daddr {b.host_ip} " if b.host_ip else ""
        lines.append(
            f"add rule {t} ports {match}{b.proto} dport {b.host_port} "
            f'dnat ip to {b.container_ip}:{b.container_port} comment "ctr:{b.container}"'
        )
    return lines


def delete_tagged(tags: set[str], bridges: tuple[str, ...] = ()) -> None:
    """Remove every rule whose comment is in `tags`, and `bridges` from the set."""
    items = listing()
    if not items:
        return
    t = table()
    lines = []
    for item in items:
        rule = item.get("rule")
        if rule and rule.get("comment") in tags:
            lines.append(f"delete rule {t} {rule['chain']} handle {rule['handle']}")
    present = set()
    for item in items:
        s = item.get("set")
        if s and s.get("name") == "bridges":
            present = {e for e in s.get("elem", []) if isinstance(e, str)}
    lines += [f'delete element {t} bridges {{ "{b}" }}' for b in bridges if b in present]
    apply(lines)


def tags_in_use() -> set[str]:
    return {
        item["rule"].get("comment", "")
        for item in listing()
        if "rule" in item and item["rule"].get("comment")
    }


def drop_table() -> None:
    if listing():
        _nft(["delete", "table", *table().split()])
