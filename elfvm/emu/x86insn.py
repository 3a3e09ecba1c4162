"""Which i386 instructions read and write the same memory operand (read-modify-write).

The CPU's #PF error code says how the faulting instruction uses the page, not which micro-step
touched it first: `add %edi,(%eax)` on a page that is not present faults once with W=1 (Intel
SDM vol. 3A, 4.7: "W/R ... the access causing the fault was a write"; a read-modify-write
access is a write), and the kernel maps the page writable at once. Unicorn performs such an
instruction as a load then a store, so its TLB fill arrives as a read first; the emulator's
CPU asks `rmw_destination` to give that fill the access the real CPU reports.

Only instructions whose one ModRM memory operand is both source and destination are listed
(Intel SDM vol. 2, opcode map, table A-2/A-3). Not listed, because the CPU itself reads one
location and writes another, or only writes: movs/stos/cmps/scas (string instructions), push
and pop with a memory operand, mov/setcc/fst* stores; nor the read-only forms cmp, test, bt.
A `lock` prefix changes nothing here: the locked forms are these same opcodes.
"""

from __future__ import annotations

# legacy prefixes (Intel SDM vol. 2, 2.1.1): lock, rep/repne, segment overrides,
# operand size, address size (the ModRM's mod field means the same under 0x67)
PREFIXES = frozenset((0xF0, 0xF2, 0xF3, 0x2E, 0x36, 0x3E, 0x26, 0x64, 0x65, 0x66, 0x67))
MAX_INSN = 15

# one-byte opcodes, Eb/Ev destination for every ModRM.reg: add/or/adc/sbb/and/sub/xor Eb,Gb
# and Ev,Gv (not cmp 0x38/0x39), xchg Eb/Ev, the shift/rotate groups 2 (/0-/7)
_ALL_REGS = 0xFF
ONE_BYTE = {
    **{op: _ALL_REGS for base in (0x00, 0x08, 0x10, 0x18, 0x20, 0x28, 0x30) for op in (base, base + 1)},
    0x86: _ALL_REGS, 0x87: _ALL_REGS,                               # xchg Eb,Gb / Ev,Gv
    **{op: _ALL_REGS for op in (0xC0, 0xC1, 0xD0, 0xD1, 0xD2, 0xD3)},  # rol ror rcl rcr shl shr sal sar
    # group 1 (80, 81, 82: 80's alias in 32-bit code, 83): /0-/6, /7 is cmp
    **{op: 0x7F for op in (0x80, 0x81, 0x82, 0x83)},
    0xF6: 0b1100, 0xF7: 0b1100,                                      # group 3: /2 not, /3 neg
    0xFE: 0b11, 0xFF: 0b11,                                          # group 4/5: /0 inc, /1 dec
}
# two-byte opcodes (0x0F xx)
TWO_BYTE = {
    0xAB: _ALL_REGS, 0xB3: _ALL_REGS, 0xBB: _ALL_REGS,              # bts btr btc Ev,Gv (not bt 0xA3)
    0xBA: 0b11100000,                                                # group 8: /5 bts /6 btr /7 btc (/4 bt)
    0xA4: _ALL_REGS, 0xA5: _ALL_REGS, 0xAC: _ALL_REGS, 0xAD: _ALL_REGS,  # shld shrd
    0xB0: _ALL_REGS, 0xB1: _ALL_REGS,                                # cmpxchg (always writes)
    0xC0: _ALL_REGS, 0xC1: _ALL_REGS,                                # xadd
    0xC7: 0b10,                                                      # group 9: /1 cmpxchg8b
}


def rmw_destination(code: bytes) -> bool:
    """True when the instruction at the start of `code` (its bytes from EIP on) reads and
    writes its ModRM memory operand; False for anything else, or when `code` is too short
    to tell."""
    code = code[:MAX_INSN]                    # longer is #UD, never a memory access
    i = 0
    while i < len(code) and code[i] in PREFIXES:
        i += 1
    if i >= len(code):
        return False
    table = ONE_BYTE
    if code[i] == 0x0F:
        table, i = TWO_BYTE, i + 1
        if i >= len(code):
            return False
    regs = table.get(code[i])
    if regs is None or i + 1 >= len(code):
        return False
    modrm = code[i + 1]
    if modrm >> 6 == 3:                       # a register operand: no memory access
        return False
    return bool(regs >> ((modrm >> 3) & 7) & 1)
