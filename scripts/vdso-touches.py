#!/usr/bin/env python3
"""Measure which code each __vdso_* function of the dumped vDSO images calls: the PC thunks
(__x86.get_pc_thunk.*: `mov (%esp),%reg; ret`) it calls to find the vDSO data relative to its own
address, which sit at the end of .text (on the image's last page), and the other helpers it calls
directly (__kernel_vsyscall, the system-call fallback; the out-of-line clock reads)
(objdump -d of ~/.cache/elfvm/vdso/NAME.so, the images
scripts/vdso-images.py saves). Prints, per image, each function's PC thunks and other call targets, and the
`pc_thunks=` entry elfvm/kernel/versions.py VdsoImage records. Give image paths to measure
others (the live machine's: `vdsotime x > live.so`, tests/guest_progs/vdsotime.c).

objdump is used for measurement only (binutils); elfvm itself does not need it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from elftools.elf.elffile import ELFFile

CALL = re.compile(r"^\s*([0-9a-f]+):\s+call\s+([0-9a-f]+)")
INSN = re.compile(r"^\s*([0-9a-f]+):\s+(\S+)")


def functions(path: Path) -> list[tuple[str, int, int]]:
    with path.open("rb") as f:
        syms = ELFFile(f).get_section_by_name(".dynsym")
        out = sorted((s["st_value"], s["st_size"], s.name) for s in syms.iter_symbols()
                     if s.name.startswith("__vdso_") and s["st_info"]["type"] == "STT_FUNC")
    return [(n, v, sz) for v, sz, n in out]


def disasm(path: Path, start: int, stop: int) -> list[str]:
    out = subprocess.run(["objdump", "-d", "-M", "i386", "--no-show-raw-insn", f"--start-address={start}",
                          f"--stop-address={stop}", str(path)], capture_output=True, text=True, check=True)
    return [ln for ln in out.stdout.splitlines() if INSN.match(ln)]


def is_thunk(path: Path, target: int) -> bool:
    """mov (%esp),%reg; ret: a PC thunk."""
    lines = disasm(path, target, target + 4)
    return bool(lines) and re.search(r"mov\s+\(%esp\),%e[a-z]{2}\b", lines[0]) is not None


def measure(path: Path) -> list[tuple[str, int, tuple[int, ...], tuple[int, ...]]]:
    rows = []
    for name, off, size in functions(path):
        lines = disasm(path, off, off + size)
        calls = [(int(m.group(1), 16), int(m.group(2), 16)) for m in map(CALL.match, lines) if m]
        thunks = tuple(dict.fromkeys(t for _, t in calls if is_thunk(path, t)))
        rest = tuple(sorted({t for _, t in calls} - set(thunks)))
        rows.append((name, off, thunks, rest))
    return rows


def main() -> None:
    root = Path.home() / ".cache/elfvm/vdso"
    for path in sorted(Path(p) for p in sys.argv[1:]) or sorted(root.glob("*.so")):
        print(path.stem)
        rows = measure(path)
        for name, off, thunks, rest in rows:
            print(f"  {name:40} {off:#06x} PC thunks {[hex(t) for t in thunks]!s:12} "
                  f"other calls {[hex(t) for t in rest]}")
        entry = ", ".join(f'("{n}", {th[0]:#X})' for n, _, th, _ in rows if len(th) == 1)
        print(f"  pc_thunks=({entry})".replace("0X", "0x"))


if __name__ == "__main__":
    main()
