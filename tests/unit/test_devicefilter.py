"""The cgroup v2 device program, run through a small interpreter of the eBPF subset it
uses and compared with the rules' meaning (the same order semantics as v1's files)."""

from __future__ import annotations

import itertools
import struct

import pytest

from corral.cgroups.devicefilter import device_program, evaluate
from corral.cgroups.resources import DeviceRule, parse_device_rule

TYPES = {"b": 1, "c": 2}
ACCESS = {"m": 1, "r": 2, "w": 4}


def run_program(code: bytes, kind: str, major: int, minor: int, access: str) -> int:
    ctx = struct.pack("<III", (sum(ACCESS[a] for a in access) << 16) | TYPES[kind], major, minor)
    regs = [0] * 11
    pc = 0
    steps = 0
    while True:
        steps += 1
        assert steps < 10_000, "the program loops"
        op, regbyte, off, imm = struct.unpack_from("<BBhi", code, pc * 8)
        dst, src = regbyte & 0xF, regbyte >> 4
        pc += 1
        if op == 0x61:  # ldxw dst, [src + off] (src is the context pointer, r1)
            assert src == 1
            regs[dst] = struct.unpack_from("<I", ctx, off)[0]
        elif op == 0x54:
            regs[dst] &= imm & 0xFFFFFFFF
        elif op == 0x74:
            regs[dst] = (regs[dst] & 0xFFFFFFFF) >> imm
        elif op == 0xB4:
            regs[dst] = imm & 0xFFFFFFFF
        elif op == 0xBC:
            regs[dst] = regs[src] & 0xFFFFFFFF
        elif op == 0x55:
            if regs[dst] != imm:
                pc += off
        elif op == 0x5D:
            if regs[dst] != regs[src]:
                pc += off
        elif op == 0x95:
            return regs[0]
        else:
            raise AssertionError(f"unexpected opcode {op:#x}")


RULESETS = {
    "runc default": [
        DeviceRule(False, "a"),
        parse_device_rule("c *:* m", True),
        parse_device_rule("b *:* m", True),
        parse_device_rule("c 1:3 rwm", True),
        parse_device_rule("c 1:5 rwm", True),
        parse_device_rule("c 136:* rwm", True),
    ],
    "privileged": [DeviceRule(True, "a")],
    "deny one": [DeviceRule(True, "a"), parse_device_rule("c 1:3 rwm", False)],
    "read only": [DeviceRule(False, "a"), parse_device_rule("b 8:0 r", True)],
    "later wins": [parse_device_rule("c 1:3 rw", True), parse_device_rule("c 1:3 w", False)],
    "empty": [],
}


def unreachable(code: bytes) -> set[int]:
    """Instructions no path reaches (the kernel's verifier refuses a program with any)."""
    n = len(code) // 8
    seen: set[int] = set()
    todo = [0]
    while todo:
        pc = todo.pop()
        if pc in seen or pc >= n:
            continue
        seen.add(pc)
        op, _reg, off, _imm = struct.unpack_from("<BBhi", code, pc * 8)
        if op == 0x95:
            continue
        todo.append(pc + 1)
        if op in (0x55, 0x5D):
            todo.append(pc + 1 + off)
    return set(range(n)) - seen


@pytest.mark.parametrize("name", list(RULESETS))
def test_program_matches_the_rules(name: str) -> None:
    rules = RULESETS[name]
    code = device_program(rules)
    assert len(code) % 8 == 0
    assert unreachable(code) == set()
    for kind, major, minor, access in itertools.product(
        "bc", (1, 8, 136), (0, 3, 5), ("r", "w", "m", "rw", "rwm")
    ):
        want = evaluate(rules, kind, major, minor, access)
        got = run_program(code, kind, major, minor, access)
        assert got == int(want), (name, kind, major, minor, access)


def test_examples() -> None:
    rules = RULESETS["runc default"]
    assert evaluate(rules, "c", 1, 3, "rw")  # /dev/null
    assert not evaluate(rules, "b", 8, 0, "r")  # a disk
    assert evaluate(rules, "b", 8, 0, "m")  # mknod of anything is allowed, as runc does
    assert not evaluate(RULESETS["read only"], "b", 8, 0, "rw")
    assert evaluate(RULESETS["later wins"], "c", 1, 3, "r")
    assert not evaluate(RULESETS["later wins"], "c", 1, 3, "w")
