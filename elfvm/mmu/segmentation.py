"""Segmentation: logical address (selector:offset) -> linear address (Intel SDM vol. 3A ch. 3, 5).

A selector is index (bits 15:3), TI (bit 2: 0 = GDT, 1 = LDT) and RPL (bits 1:0). The descriptor
it selects gives base, limit, type, DPL and P; the processor checks the table limit, the
descriptor type against the use, privilege (max(CPL, RPL) <= DPL for data), presence and the
segment limit, then adds the base (SDM 3.4.2-3.4.5, 5.3, 5.5, 5.6).

The GDTs are Linux's (arch/x86/include/asm/segment.h, arch/x86/kernel/cpu/common.c gdt_page):

* native i386: TLS entries 6-8 (glibc's %gs = 6*8+3 = 0x33), kernel CS/DS 12/13 (0x60, 0x68),
  user CS/DS 14/15 (__USER_CS 0x73, __USER_DS 0x7b), TSS 16, LDT 17, PNPBIOS 18-22, APM 23-25,
  ESPFIX_SS 26, per-CPU 27 (%fs in the kernel), doublefault TSS 31.
* x86-64 (this machine, i386 programs run in compat mode): kernel CS32/CS/DS 1/2/3, __USER32_CS
  0x23, __USER_DS 0x2b, __USER_CS (64-bit) 0x33, TSS 8-9, LDT 10-11, TLS entries 12-14 (glibc's
  %gs = 12*8+3 = 0x63, as set_thread_area(entry_number=-1) picks the first free TLS slot),
  CPUNODE 15.

All user segments are flat (base 0, limit 4 GiB) except the TLS entries, whose base is the thread
pointer glibc installs with set_thread_area(). At the first instruction after execve the TLS
entries are empty (flush_thread clears them) and %fs = %gs = 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Descriptor flags words as GDT_ENTRY() takes them (asm/desc_defs.h DESC_*): type|S|DPL|P in
# bits 7:0 (the access byte) and AVL|L|D/B|G in bits 15:12.
DESC_CODE32 = 0xC09B        # present, ring 0, 32-bit, 4K granular, code, execute/read, accessed
DESC_DATA32 = 0xC093        # read/write data
DESC_CODE64 = 0xA09B        # L=1
DESC_DATA64 = 0xC093
DESC_USER = 0x0060          # DPL 3
DESC_TSS32 = 0x0089         # available 32-bit TSS (system)
DESC_LDT = 0x0082           # LDT (system)


def gdt_entry(flags: int, base: int, limit: int) -> int:
    """arch/x86/include/asm/segment.h GDT_ENTRY(flags, base, limit) as a 64-bit value."""
    return (((base & 0xFF000000) << (56 - 24)) | ((flags & 0x0000F0FF) << 40)
            | ((limit & 0x000F0000) << (48 - 16)) | ((base & 0x00FFFFFF) << 16) | (limit & 0x0000FFFF))


@dataclass(frozen=True)
class Descriptor:
    """A decoded segment descriptor (SDM 3.4.5, figure 3-8)."""

    raw: int
    name: str = ""

    @property
    def base(self) -> int:
        r = self.raw
        return ((r >> 16) & 0xFFFFFF) | (((r >> 56) & 0xFF) << 24)

    @property
    def limit_raw(self) -> int:
        r = self.raw
        return (r & 0xFFFF) | (((r >> 48) & 0xF) << 16)

    @property
    def granular(self) -> bool:
        return bool(self.raw >> 55 & 1)

    @property
    def limit(self) -> int:
        """The effective limit in bytes (G=1: in 4 KiB units, low 12 bits all ones)."""
        return (self.limit_raw << 12) | 0xFFF if self.granular else self.limit_raw

    @property
    def type(self) -> int:
        return (self.raw >> 40) & 0xF

    @property
    def s(self) -> bool:            # 1: code/data, 0: system
        return bool(self.raw >> 44 & 1)

    @property
    def dpl(self) -> int:
        return (self.raw >> 45) & 3

    @property
    def present(self) -> bool:
        return bool(self.raw >> 47 & 1)

    @property
    def long(self) -> bool:
        return bool(self.raw >> 53 & 1)

    @property
    def db(self) -> bool:
        return bool(self.raw >> 54 & 1)

    @property
    def is_code(self) -> bool:
        return self.s and bool(self.type & 8)

    @property
    def readable(self) -> bool:
        return self.s and (not self.is_code or bool(self.type & 2))

    @property
    def writable(self) -> bool:
        return self.s and not self.is_code and bool(self.type & 2)

    @property
    def conforming(self) -> bool:
        return self.is_code and bool(self.type & 4)

    @property
    def expand_down(self) -> bool:
        return self.s and not self.is_code and bool(self.type & 4)

    def text(self) -> str:
        if not self.raw:
            return "empty (all zero)"
        if not self.s:
            kinds = {0x2: "LDT", 0x9: "TSS (available)", 0xB: "TSS (busy)"}
            return f"system: {kinds.get(self.type, f'type {self.type:#x}')} base={self.base:#x} DPL={self.dpl}" \
                   f"{'' if self.present else ' not present'}"
        kind = ("code " + ("64-bit" if self.long else "32-bit" if self.db else "16-bit")
                + (" conforming" if self.conforming else "") + (" execute/read" if self.readable else " execute-only")) \
            if self.is_code else ("data " + ("read/write" if self.writable else "read-only")
                                  + (" expand-down" if self.expand_down else ""))
        return (f"{kind} base={self.base:#x} limit={self.limit:#x} DPL={self.dpl}"
                f"{'' if self.present else ' NOT PRESENT'}")


def descriptor_from_user_desc(base: int, limit: int, seg_32bit: bool, contents: int, read_exec_only: bool,
                              limit_in_pages: bool, seg_not_present: bool, useable: bool) -> int:
    """asm/desc.h fill_ldt(): the descriptor set_thread_area()/modify_ldt() install (DPL 3)."""
    if (not base and not limit and not seg_32bit and not contents and read_exec_only
            and not limit_in_pages and seg_not_present and not useable) or \
            (not base and not limit and not seg_32bit and not contents and not read_exec_only
             and not limit_in_pages and not seg_not_present and not useable):
        return 0                                    # LDT_empty / LDT_zero: clear the entry
    typ = ((0 if read_exec_only else 1) << 1) | (contents << 2) | 1
    access = typ | 0x10 | (3 << 5) | ((0 if seg_not_present else 1) << 7)
    flags = (1 << 12 if useable else 0) | (1 << 14 if seg_32bit else 0) | (1 << 15 if limit_in_pages else 0)
    return gdt_entry(access | flags, base, limit)


@dataclass(frozen=True)
class Selector:
    """A segment selector: index, table indicator (GDT/LDT) and requested privilege level."""

    value: int

    @property
    def index(self) -> int:
        return self.value >> 3

    @property
    def ti(self) -> int:
        return (self.value >> 2) & 1

    @property
    def rpl(self) -> int:
        return self.value & 3

    @property
    def is_null(self) -> bool:
        return self.index == 0 and self.ti == 0

    def text(self) -> str:
        return f"{self.value:#06x} = index {self.index}, TI={self.ti} ({'LDT' if self.ti else 'GDT'}), RPL={self.rpl}"


@dataclass
class DescriptorTable:
    """The GDT or an LDT: its descriptors by index."""

    name: str                               # "GDT" / "LDT"
    entries: dict[int, Descriptor] = field(default_factory=dict)
    nentries: int = 0                       # limit = nentries*8 - 1

    @property
    def limit(self) -> int:
        return self.nentries * 8 - 1

    def get(self, index: int) -> Descriptor:
        return self.entries.get(index, Descriptor(0))


def linux_gdt(profile_name: str, tls: dict[int, int] | None = None) -> DescriptorTable:
    """The per-CPU GDT Linux loads (arch/x86/kernel/cpu/common.c DEFINE_PER_CPU_PAGE_ALIGNED gdt_page),
    with the task's TLS entries (`tls`: GDT index -> raw descriptor)."""
    if profile_name == "linux-i386":
        e = {
            12: Descriptor(gdt_entry(DESC_CODE32, 0, 0xFFFFF), "__KERNEL_CS"),
            13: Descriptor(gdt_entry(DESC_DATA32, 0, 0xFFFFF), "__KERNEL_DS"),
            14: Descriptor(gdt_entry(DESC_CODE32 | DESC_USER, 0, 0xFFFFF), "__USER_CS"),
            15: Descriptor(gdt_entry(DESC_DATA32 | DESC_USER, 0, 0xFFFFF), "__USER_DS"),
            16: Descriptor(gdt_entry(DESC_TSS32, 0, 0x206B), "TSS"),
            26: Descriptor(gdt_entry(DESC_DATA32, 0, 0xFFFFF), "__ESPFIX_SS"),
            27: Descriptor(gdt_entry(DESC_DATA32, 0, 0xFFFFF), "__KERNEL_PERCPU"),
        }
        table = DescriptorTable("GDT", e, 32)
        tls_range = range(6, 9)
    else:
        e = {
            1: Descriptor(gdt_entry(DESC_CODE32, 0, 0xFFFFF), "__KERNEL32_CS"),
            2: Descriptor(gdt_entry(DESC_CODE64, 0, 0xFFFFF), "__KERNEL_CS"),
            3: Descriptor(gdt_entry(DESC_DATA64, 0, 0xFFFFF), "__KERNEL_DS"),
            4: Descriptor(gdt_entry(DESC_CODE32 | DESC_USER, 0, 0xFFFFF), "__USER32_CS"),
            5: Descriptor(gdt_entry(DESC_DATA64 | DESC_USER, 0, 0xFFFFF), "__USER_DS"),
            6: Descriptor(gdt_entry(DESC_CODE64 | DESC_USER, 0, 0xFFFFF), "__USER_CS"),
            8: Descriptor(gdt_entry(DESC_TSS32, 0, 0x4067), "TSS (low half of a 16-byte descriptor)"),
            15: Descriptor(gdt_entry(DESC_DATA32 | DESC_USER, 0, 0), "CPUNODE (lsl gives cpu/node)"),
        }
        table = DescriptorTable("GDT", e, 16)
        tls_range = range(12, 15)
    for i in tls_range:
        raw = (tls or {}).get(i, 0)
        table.entries[i] = Descriptor(raw, f"TLS #{i - tls_range.start + 1}")
    return table


def tls_min(profile_name: str) -> int:
    """GDT_ENTRY_TLS_MIN: 6 on native i386, 12 on x86-64."""
    return 6 if profile_name == "linux-i386" else 12


def entry_registers(profile_name: str) -> dict[str, int]:
    """Segment registers at the first instruction after execve (start_thread / compat_start_thread)."""
    if profile_name == "linux-i386":
        return {"cs": 0x73, "ss": 0x7B, "ds": 0x7B, "es": 0x7B, "fs": 0, "gs": 0}
    return {"cs": 0x23, "ss": 0x2B, "ds": 0x2B, "es": 0x2B, "fs": 0, "gs": 0}


SEGMENT_REGISTERS = ("cs", "ds", "es", "fs", "gs", "ss")


@dataclass(frozen=True)
class SegmentFault:
    """The exception segmentation raises (#GP, #NP, #SS) and why."""

    kind: str           # general-protection | segment-not-present | stack-fault
    vector: str         # "#GP(0)", "#NP(0x63)" ...
    reason: str


@dataclass(frozen=True)
class SegResult:
    """What the segmentation unit did with a logical address: the linear address or the fault."""

    selector: Selector
    register: str | None
    table: str
    descriptor: Descriptor | None
    linear: int | None
    fault: SegmentFault | None
    steps: tuple[str, ...]


@dataclass
class Segmentation:
    """The segmentation unit of one task: GDT, LDT (None: LDTR null) and segment registers."""

    gdt: DescriptorTable
    ldt: DescriptorTable | None = None
    registers: dict[str, int] = field(default_factory=dict)
    registers_source: str = "at the first instruction after execve"

    def translate(self, selector: int, offset: int, access: str, cpl: int,
                  register: str | None = None) -> SegResult:
        """SDM 5.5/5.6 checks for loading `selector` into `register` (ss, cs or a data segment
        register) and then accessing `offset` through it; returns the linear address or a fault."""
        sel = Selector(selector & 0xFFFF)
        steps = [f"selector {sel.text()}"]
        is_ss = register == "ss"
        is_cs = register == "cs" or (register is None and access == "x")

        def fail(v: Violation, desc: Descriptor | None = None) -> SegResult:
            kind, vec = v.fault
            signal = "SIGSEGV" if kind == "general-protection" else "SIGBUS"
            return SegResult(sel, register, "LDT" if sel.ti else "GDT", desc, None,
                             SegmentFault(kind, f"{vec}({v.code:#x})",
                                          f"{vec}({v.code:#x}): {v.why}; Linux sends {signal} "
                                          f"(arch/x86/kernel/traps.c)"), tuple(steps))

        v = check_null_selector(sel, register, is_cs, is_ss)
        if v is not None:
            return fail(v)
        table = self.ldt if sel.ti else self.gdt
        if table is None:
            return fail(Violation(GP, sel.value & 0xFFFC,
                                  "TI=1 selects the LDT, but LDTR is null (the task never called modify_ldt)"))
        steps.append(f"{table.name} limit {table.limit:#x}: entry {sel.index} at offset {sel.index * 8:#x}")
        if sel.index * 8 + 7 > table.limit:
            return fail(Violation(GP, sel.value & 0xFFFC,
                                  f"index {sel.index} is beyond the {table.name} limit {table.limit:#x}"))
        desc = table.get(sel.index)
        steps.append(f"descriptor {desc.raw:#018x}: {desc.text()}" + (f" [{desc.name}]" if desc.name else ""))
        v = (check_segment_type(sel, desc, is_cs, is_ss) or check_privilege(sel, desc, cpl, is_cs, is_ss)
             or check_present(sel, desc, is_ss))
        if v is not None:
            return fail(v, desc)
        steps.append(f"checks passed: type, privilege (CPL {cpl}, RPL {sel.rpl}, DPL {desc.dpl}), P=1")
        v = check_access_type(desc, access) or check_limit(desc, offset, is_ss)
        if v is not None:
            return fail(v, desc)
        linear = (desc.base + offset) & 0xFFFFFFFF
        steps.append(f"linear = base {desc.base:#x} + offset {offset:#x} = {linear:#x}")
        return SegResult(sel, register, table.name, desc, linear, None, tuple(steps))


# --- the checks, in the order the processor makes them (SDM vol. 3A ch. 5) ------------------

GP = ("general-protection", "#GP")


@dataclass(frozen=True)
class Violation:
    """A failed protection check: the exception (kind, vector), its error code and why."""

    fault: tuple[str, str]
    code: int
    why: str


def check_null_selector(sel: Selector, register: str | None, is_cs: bool, is_ss: bool) -> Violation | None:
    """SDM 3.4.2 null segment selectors: CS and SS cannot hold one (#GP(0)); a data segment
    register can, but an access through it faults."""
    if not sel.is_null:
        return None
    if is_cs or is_ss:
        return Violation(GP, 0, f"the null selector cannot be loaded into {register or 'cs'}")
    reg = f"%{register}" if register else "the segment register"
    return Violation(GP, 0, f"{reg} holds the null selector {sel.value:#x}: a memory access through it "
                            f"faults" + (" (the kernel clears %fs/%gs at execve; glibc loads the TLS selector "
                                         "later)" if register in ("fs", "gs") else ""))


def check_segment_type(sel: Selector, desc: Descriptor, is_cs: bool, is_ss: bool) -> Violation | None:
    """SDM 5.4.1 type checking when a selector is loaded: a code/data descriptor (S=1); CS a
    code segment, SS a writable data segment, a data register anything but execute-only code."""
    code = sel.value & 0xFFFC
    if not desc.s:
        return Violation(GP, code, "the descriptor is a system descriptor (or empty), not a code/data segment")
    if is_cs and not desc.is_code:
        return Violation(GP, code, "CS needs a code segment; this is data")
    if is_ss and not desc.writable:
        return Violation(GP, code, "SS needs a writable data segment")
    if not is_cs and not is_ss and desc.is_code and not desc.readable:
        return Violation(GP, code, "an execute-only code segment cannot be loaded into a data segment register")
    return None


def check_privilege(sel: Selector, desc: Descriptor, cpl: int, is_cs: bool, is_ss: bool) -> Violation | None:
    """SDM 5.8.1 (CS: conforming DPL <= CPL, nonconforming DPL == CPL and RPL <= CPL), 5.7
    (SS: RPL == DPL == CPL), 5.6 (data: max(CPL, RPL) <= DPL unless conforming code)."""
    code = sel.value & 0xFFFC
    if is_cs:
        if desc.conforming and desc.dpl > cpl:
            return Violation(GP, code, f"conforming code DPL {desc.dpl} > CPL {cpl}")
        if not desc.conforming and (desc.dpl != cpl or sel.rpl > cpl):
            return Violation(GP, code, f"nonconforming code needs DPL == CPL and RPL <= CPL (DPL {desc.dpl}, "
                                       f"RPL {sel.rpl}, CPL {cpl})")
    elif is_ss:
        if sel.rpl != cpl or desc.dpl != cpl:
            return Violation(GP, code, f"SS needs RPL == DPL == CPL (RPL {sel.rpl}, DPL {desc.dpl}, CPL {cpl})")
    elif not desc.conforming and max(cpl, sel.rpl) > desc.dpl:
        return Violation(GP, code, f"privilege: max(CPL {cpl}, RPL {sel.rpl}) > DPL {desc.dpl}")
    return None


def check_present(sel: Selector, desc: Descriptor, is_ss: bool) -> Violation | None:
    """SDM 3.4.5 the P flag, checked after type and privilege: #NP, or #SS for SS."""
    if desc.present:
        return None
    return Violation(("stack-fault", "#SS") if is_ss else ("segment-not-present", "#NP"),
                     sel.value & 0xFFFC, "the descriptor's P bit is clear")


def check_access_type(desc: Descriptor, access: str) -> Violation | None:
    """SDM 5.4 type checking on an access: no write through a read-only or code segment, no
    read through execute-only code, instruction fetch only through code."""
    if access == "w" and not desc.writable:
        return Violation(GP, 0, "write through a read-only or code segment")
    if access == "r" and not desc.readable:
        return Violation(GP, 0, "read through an execute-only segment")
    if access == "x" and not desc.is_code:
        return Violation(GP, 0, "instruction fetch needs CS to be a code segment")
    return None


def check_limit(desc: Descriptor, offset: int, is_ss: bool) -> Violation | None:
    """SDM 5.3 limit checking: offset <= limit, or for expand-down data limit < offset <= the
    upper bound (4 GiB - 1 with D/B or G set, else 64 KiB - 1). #SS for SS, else #GP."""
    top = 0xFFFFFFFF if (desc.db or desc.granular) else 0xFFFF
    if desc.expand_down:
        ok = desc.limit < offset <= top
    else:
        ok = 0 <= offset <= desc.limit
    if ok:
        return None
    return Violation(("stack-fault", "#SS") if is_ss else GP, 0,
                     f"offset {offset:#x} is outside the segment limit {desc.limit:#x}")
