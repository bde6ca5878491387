"""`corral`'s parser: only the verb on the command line gets built (every command pays
for what it builds), and help still lists them all."""

from __future__ import annotations

import argparse

import pytest

from corral.cli.main import build_parser


def _lxc_verbs(parser: argparse.ArgumentParser) -> list[str]:
    top = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    lxc = top.choices["lxc"]
    verbs = next(a for a in lxc._actions if isinstance(a, argparse._SubParsersAction))
    return list(verbs.choices)


@pytest.mark.parametrize(
    ("argv", "built"),
    [
        (["lxc", "stop", "-k", "-n", "c1"], ["stop"]),
        (["lxc", "-P", "/srv/lxc", "attach", "-n", "c1"], ["attach"]),
        (["--data-root", "lxc", "lxc", "destroy", "c1"], ["destroy"]),
        (["lxc", "unfreeze", "-n", "c1"], ["freeze", "unfreeze"]),
    ],
)
def test_only_the_named_verb_is_built(argv: list[str], built: list[str]) -> None:
    parser = build_parser(argv)
    assert _lxc_verbs(parser) == built
    assert parser.parse_args(argv).verb == built[-1]


@pytest.mark.parametrize("argv", [["lxc"], ["lxc", "--help"], ["lxc", "bogus"]])
def test_help_and_errors_see_every_verb(argv: list[str]) -> None:
    verbs = _lxc_verbs(build_parser(argv))
    assert {"create", "start", "stop", "attach", "execute", "destroy", "cgroup"} <= set(verbs)
    assert len(verbs) == 15


def test_parsed_options_are_the_verbs_own() -> None:
    argv = ["lxc", "-P", "/srv/lxc", "stop", "-t", "5", "-n", "c1"]
    args = build_parser(argv).parse_args(argv)
    assert (args.verb, args.lxcpath, args.timeout, args.kill, args.name_opt) == (
        "stop", "/srv/lxc", 5, False, "c1",
    )  # fmt: skip
