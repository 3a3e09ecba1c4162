"""Why a mapping is where it is, in plain words: the rule and the numbers that put it there.

Each sentence names the kernel rule it restates (TASK_SIZE/STACK_TOP, mmap_base() in
arch/x86/mm/mmap.c, ELF_ET_DYN_BASE in load_elf_binary(), brk after the bss) and uses the
numbers of this ExecResult, so `elfvm layout --explain ADDR` answers the lecture's "why here?".
"""

from __future__ import annotations

import re

from elfvm.kernel.exec import STACK_EXPAND
from elfvm.kernel.process import ExecResult

MiB = 1 << 20


class ExplainError(ValueError):
    pass


def resolve(result: ExecResult, text: str) -> int:
    """A number (0x5655a000, 1234) or a symbol of the program or its interpreter (main, x+0x10)."""
    t = text.strip()
    try:
        v = int(t, 0)
    except ValueError:
        m = re.fullmatch(r"([A-Za-z_.$][\w.$@]*)(?:([+-])(0x[0-9a-fA-F]+|\d+))?", t)
        if not m:
            raise ExplainError("not a number or a symbol name") from None
        for key in ("main", "interp"):
            img = result.images.get(key)
            if img is None:
                continue
            for s in img.file.symbols:
                if s.name == m.group(1) and s.value and s.kind != "STT_TLS":
                    off = int(m.group(3), 0) * (-1 if m.group(2) == "-" else 1) if m.group(2) else 0
                    return (s.value + img.load_bias + off) & 0xFFFFFFFF
        raise ExplainError(f"no symbol {m.group(1)!r} in the program or its interpreter") from None
    if not 0 <= v <= 0xFFFFFFFF:
        raise ExplainError("an i386 address is 32 bits")
    return v


def _task_size_why(result: ExecResult) -> str:
    p = result.profile
    if p.name == "linux-i386":
        return (f"TASK_SIZE = PAGE_OFFSET {p.task_size:#x} (--split {p.split}): the kernel half "
                f"starts there")
    if p.addr_limit_3gb:
        return f"TASK_SIZE {p.task_size:#x}: personality ADDR_LIMIT_3GB (--3gb)"
    return (f"TASK_SIZE {p.task_size:#x}: a 32-bit task on a 64-bit kernel gets all 4 GiB but the "
            f"last page (IA32_PAGE_OFFSET); the kernel lives above 2^47, not in this space")


def _why_stack(result: ExecResult, rlimit_stack: int) -> list[str]:
    st = result.stack
    return [f"[stack] ends at STACK_TOP = {_task_size_why(result)}.",
            f"create_elf_tables() wrote the strings, auxv, envp, argv and argc below it (esp "
            f"{st.esp:#x}); setup_arg_pages() extends the VMA by {STACK_EXPAND // 1024} KiB "
            f"(stack_expand) to {st.vma_start:#x}; it grows down on faults up to RLIMIT_STACK "
            f"({'unlimited' if rlimit_stack >= 1 << 62 else f'{rlimit_stack // 1024} KiB'})."]


def _why_mmap(result: ExecResult, rlimit_stack: int, name: str) -> list[str]:
    p = result.profile
    gap = rlimit_stack + p.stack_guard_gap
    lines = [f"{name} was placed by get_unmapped_area(): top-down below mmap_base {result.mm.mmap_base:#x}."
             if not p.legacy else
             f"{name} was placed bottom-up from TASK_UNMAPPED_BASE {p.task_unmapped_base:#x} "
             f"(legacy layout)."]
    if not p.legacy:
        lines.append(f"mmap_base = TASK_SIZE - gap (arch/x86/mm/mmap.c mmap_base()): gap = "
                     f"RLIMIT_STACK + stack random range + guard gap {p.stack_guard_gap // MiB} MiB "
                     f"= {gap / MiB:.0f} MiB without ASLR, clamped to [128 MiB, TASK_SIZE/6*5]: "
                     f"{(p.task_size - result.mm.mmap_base) / MiB:.0f} MiB here; "
                     f"{_task_size_why(result)}.")
    lines.append("Mappings made later (the interpreter, then the vDSO, shared libraries, big "
                 "mallocs) each go just below the previous one.")
    return lines


def _why_image(result: ExecResult, key: str) -> list[str]:
    img = result.images[key]
    et = img.file.ehdr.e_type
    if key == "interp":
        return [f"The interpreter {img.display.path} is ET_DYN: load_elf_interp() maps it with "
                f"mmap anywhere, so it lands top-down below mmap_base {result.mm.mmap_base:#x} "
                f"(AT_BASE {img.load_bias:#x})."]
    if et == 2:
        return ["The program is ET_EXEC (not position independent): each PT_LOAD goes at its "
                "p_vaddr exactly (MAP_FIXED), load_bias 0."]
    has_interp = result.interp is not None
    if has_interp:
        return [f"The program is a PIE (ET_DYN with PT_INTERP): load_elf_binary() puts it at "
                f"ELF_ET_DYN_BASE {result.profile.elf_et_dyn_base:#x} (TASK_SIZE/3 + 16 MiB on "
                f"a 64-bit kernel, 0x400000 on a native one), load_bias {img.load_bias:#x}."]
    return [f"The program is ET_DYN without PT_INTERP (a static PIE or ld.so run directly): "
            f"mapped like an mmap, load_bias {img.load_bias:#x}."]


def _where_in_image(result: ExecResult, addr: int) -> list[str]:
    for key in ("main", "interp"):
        img = result.images.get(key)
        if img is None:
            continue
        a = (addr - img.load_bias) & 0xFFFFFFFF
        for s in img.file.sections:
            if s.alloc and s.size and s.addr <= a < s.addr + s.size:
                what = ("zero-filled: not in the file (SHT_NOBITS)" if s.name in (".bss", ".tbss")
                        else "from the file")
                return [f"{addr:#x} is in {s.name} of {img.display.path} "
                        f"({s.addr + img.load_bias:#x}+{s.size:#x}, offset {a - s.addr:#x}; {what})."]
    return []


def _vma_name(v) -> str:
    if v.special:
        return v.special
    if v.file is not None:
        return v.file.path
    return "[stack]" if v.growsdown else "(anonymous)"


def explain_address(result: ExecResult, text: str, rlimit_stack: int) -> list[str]:
    """Lines saying which mapping holds the address and why that mapping is where it is."""
    addr = resolve(result, text)
    mm = result.mm
    v = next((x for x in mm.vmas if x.start <= addr < x.end), None)
    if addr >= result.profile.task_size:
        return [f"{addr:#x} is above {_task_size_why(result)}: no user mapping can be there; "
                f"a user access faults (SIGSEGV)."]
    if v is None:
        below = max((x.end for x in mm.vmas if x.end <= addr), default=0)
        above = min((x.start for x in mm.vmas if x.start > addr), default=result.profile.task_size)
        out = [f"{addr:#x} is in no mapping (the hole {below:#x}-{above:#x}): an access is SIGSEGV "
               f"(SEGV_MAPERR)."]
        if mm.start_brk <= addr < above and below <= mm.start_brk:
            out.append(f"The heap would grow here: brk starts at start_brk {mm.start_brk:#x}, the page "
                       f"after the bss, and malloc() moves it up with brk().")
        return out
    out = [f"{addr:#x} is in {v.start:#x}-{v.end:#x} {v.perms}"
           f" {_vma_name(v)}."]
    owner = v.origin[0] if v.origin else None
    if owner == "stack":
        out += _why_stack(result, rlimit_stack)
    elif owner == "vdso":
        out += _why_mmap(result, rlimit_stack, f"The vDSO ({_vma_name(v)})")
    elif owner in ("main", "interp"):
        out += _where_in_image(result, addr)
        out += _why_image(result, owner)
        if v.origin[2] == "bss":
            out.append(f"This anonymous part holds the rest of the bss past the file's last page "
                       f"(vm_brk_flags); brk starts right after it at {mm.start_brk:#x}.")
        elif owner == "main" and v.end >= mm.end_data > v.start:
            out.append(f"brk starts at the page after the bss: start_brk {mm.start_brk:#x}.")
    return out
