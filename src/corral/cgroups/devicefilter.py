"""Device rules -> a cgroup v2 device program (eBPF), the equivalent of v1's devices.allow
and devices.deny. Pure: it returns the program's bytes; kernel.bpf loads and attaches it.

Semantics as on v1 (and as runc's devicefilter): rules apply in order, so a later rule
overrides an earlier one. The program checks them from the last to the first and returns
the first match's verdict; a device no rule matches is denied.

Context (struct bpf_cgroup_dev_ctx): access_type (u32: access << 16 | type), major, minor.
"""

from __future__ import annotations

import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .resources import DeviceRule

_DEV_BLOCK, _DEV_CHAR = 1, 2
_ACC_MKNOD, _ACC_READ, _ACC_WRITE = 1, 2, 4
_TYPES = {"b": _DEV_BLOCK, "c": _DEV_CHAR}
_ACCESS = {"m": _ACC_MKNOD, "r": _ACC_READ, "w": _ACC_WRITE}

# Opcodes (linux/bpf_common.h, linux/bpf.h)
_LDX_MEM_W = 0x61
_ALU32_AND_K = 0x54
_ALU32_RSH_K = 0x74
_ALU32_MOV_K = 0xB4
_ALU32_MOV_X = 0xBC
_JNE_K = 0x55
_JNE_X = 0x5D
_EXIT = 0x95


def _insn(op: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", op, (src << 4) | dst, off, imm)


def _rule_block(rule: DeviceRule) -> list[bytes]:
    """Instructions that end the program with the rule's verdict if the device matches.
    Each test jumps past the rest of the block when it fails (offsets fixed up below)."""
    body: list[bytes] = []
    if rule.type != "a":
        body.append(_insn(_JNE_K, dst=2, imm=_TYPES[rule.type]))
    access = sum(_ACCESS[c] for c in rule.access)
    if rule.type != "a" and access != 7:
        # Allowed only if every requested access bit is among the rule's: (req & rule) == req.
        body.append(_insn(_ALU32_MOV_X, dst=1, src=3))
        body.append(_insn(_ALU32_AND_K, dst=1, imm=access))
        body.append(_insn(_JNE_X, dst=1, src=3))
    if rule.type != "a" and rule.major is not None:
        body.append(_insn(_JNE_K, dst=4, imm=rule.major))
    if rule.type != "a" and rule.minor is not None:
        body.append(_insn(_JNE_K, dst=5, imm=rule.minor))
    body.append(_insn(_ALU32_MOV_K, dst=0, imm=1 if rule.allow else 0))
    body.append(_insn(_EXIT))
    # Fix the jumps: each conditional jump skips to the end of this block.
    out = []
    for i, ins in enumerate(body):
        op = ins[0]
        if op in (_JNE_K, _JNE_X):
            skip = len(body) - i - 1
            ins = ins[:2] + struct.pack("<h", skip) + ins[4:]
        out.append(ins)
    return out


def device_program(rules: list[DeviceRule] | tuple[DeviceRule, ...]) -> bytes:
    prog = [
        _insn(_LDX_MEM_W, dst=2, src=1, off=0),  # r2 = access_type
        _insn(_ALU32_AND_K, dst=2, imm=0xFFFF),  # r2 = type
        _insn(_LDX_MEM_W, dst=3, src=1, off=0),
        _insn(_ALU32_RSH_K, dst=3, imm=16),  # r3 = access
        _insn(_LDX_MEM_W, dst=4, src=1, off=4),  # r4 = major
        _insn(_LDX_MEM_W, dst=5, src=1, off=8),  # r5 = minor
    ]
    for rule in reversed(rules):
        prog += _rule_block(rule)
        if rule.type == "a":
            # It matches every device: whatever comes after it could never run, and the
            # verifier refuses unreachable instructions.
            return b"".join(prog)
    prog += [_insn(_ALU32_MOV_K, dst=0, imm=0), _insn(_EXIT)]  # no rule matched: deny
    return b"".join(prog)


def evaluate(
    rules: list[DeviceRule] | tuple[DeviceRule, ...], kind: str, major: int, minor: int, access: str
) -> bool:
    """What the program decides, computed in Python (for tests and explanations)."""
    for rule in reversed(rules):
        if rule.type != "a":
            if rule.type != kind:
                continue
            if not set(access) <= set(rule.access):
                continue
            if rule.major is not None and rule.major != major:
                continue
            if rule.minor is not None and rule.minor != minor:
                continue
        return rule.allow
    return False
