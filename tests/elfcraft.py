"""A tiny ELF32 (i386, little-endian) builder for crafted test programs.

Test code only: it packs bytes by hand with struct; elfvm reads them back through pyelftools.
A crafted program is an ELF header, a program-header table and some payload bytes.  Nothing in
it needs to run: the tests stop at (or before) the first user instruction.

    data = build_elf([interp(), load(0x08048000, 0x100, flags=R | X)], interp_path="/x/ld")

Offsets: a PT_LOAD whose `offset` is None gets `PO(vaddr)` (file page 0, like a first segment
that covers the headers); PT_INTERP with offset None gets its path placed after the phdr table.
The file is just long enough for every file range unless `size` says otherwise (shorter:
truncated; longer: zero padded).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, replace

PT_NULL, PT_LOAD, PT_DYNAMIC, PT_INTERP, PT_NOTE, PT_SHLIB, PT_PHDR, PT_TLS = range(8)
PT_GNU_STACK = 0x6474E551
PF_X, PF_W, PF_R = 1, 2, 4
R, W, X = PF_R, PF_W, PF_X
ET_NONE, ET_REL, ET_EXEC, ET_DYN, ET_CORE = range(5)
EM_386, EM_486, EM_X86_64 = 3, 6, 62

EHDR_SIZE = 52
PHDR_SIZE = 32
PAGE = 0x1000


@dataclass(frozen=True)
class Ph:
    """One Elf32_Phdr.  memsz None means = filesz; offset None means "place it for me"."""

    type: int = PT_LOAD
    offset: int | None = None
    vaddr: int = 0
    filesz: int = 0
    memsz: int | None = None
    flags: int = R
    align: int = PAGE
    paddr: int | None = None

    def pack(self) -> bytes:
        memsz = self.filesz if self.memsz is None else self.memsz
        paddr = self.vaddr if self.paddr is None else self.paddr
        return struct.pack("<8I", self.type & 0xFFFFFFFF, (self.offset or 0) & 0xFFFFFFFF,
                           self.vaddr & 0xFFFFFFFF, paddr & 0xFFFFFFFF, self.filesz & 0xFFFFFFFF,
                           memsz & 0xFFFFFFFF, self.flags & 0xFFFFFFFF, self.align & 0xFFFFFFFF)


def load(vaddr: int, filesz: int, memsz: int | None = None, flags: int = R, offset: int | None = None,
         align: int = PAGE) -> Ph:
    return Ph(PT_LOAD, offset, vaddr, filesz, memsz, flags, align)


def gnu_stack(flags: int = R | W) -> Ph:
    return Ph(PT_GNU_STACK, 0, 0, 0, 0, flags, 16)


def interp(offset: int | None = None, filesz: int | None = None) -> Ph:
    """PT_INTERP; filesz None: len(interp_path) + 1."""
    return Ph(PT_INTERP, offset, 0, -1 if filesz is None else filesz, None, R, 1)


def build_elf(phdrs: list[Ph], *, e_type: int = ET_EXEC, e_machine: int = EM_386,
              entry: int | None = None, e_phoff: int = EHDR_SIZE, e_phentsize: int = PHDR_SIZE,
              e_phnum: int | None = None, interp_path: str | bytes | None = None,
              size: int | None = None, ident: bytes | None = None, e_version: int = 1,
              e_ehsize: int = EHDR_SIZE, e_flags: int = 0, payload: dict[int, bytes] | None = None) -> bytes:
    """The bytes of an ELF32 file.

    `entry` defaults to the first PT_LOAD's vaddr (+0 for ET_DYN: its raw p_vaddr).  `e_phnum`
    defaults to len(phdrs).  `interp_path` fills every PT_INTERP whose filesz/offset were left to
    the builder (a str gets a NUL appended; bytes are written as given).  `payload` writes extra
    bytes at file offsets.
    """
    table_end = e_phoff + PHDR_SIZE * len(phdrs)
    ipath = None
    if interp_path is not None:
        ipath = interp_path if isinstance(interp_path, bytes) else interp_path.encode() + b"\0"
    fixed: list[Ph] = []
    blobs: dict[int, bytes] = dict(payload or {})
    for ph in phdrs:
        if ph.type == PT_INTERP and ipath is not None:
            off = table_end if ph.offset is None else ph.offset
            fs = len(ipath) if ph.filesz == -1 else ph.filesz
            ph = replace(ph, offset=off, filesz=fs, memsz=fs if ph.memsz is None else ph.memsz)
            blobs[off] = ipath
        elif ph.offset is None:
            ph = replace(ph, offset=ph.vaddr % PAGE if ph.type == PT_LOAD else 0)
        fixed.append(ph)
    if entry is None:
        loads = [p for p in fixed if p.type == PT_LOAD]
        entry = loads[0].vaddr if loads else 0x08048000
    ident = ident if ident is not None else b"\x7fELF" + bytes([1, 1, 1, 0]) + bytes(8)
    ehdr = ident[:16].ljust(16, b"\0") + struct.pack(
        "<HHIIIIIHHHHHH", e_type & 0xFFFF, e_machine & 0xFFFF, e_version & 0xFFFFFFFF,
        entry & 0xFFFFFFFF, e_phoff & 0xFFFFFFFF, 0, e_flags & 0xFFFFFFFF, e_ehsize & 0xFFFF,
        e_phentsize & 0xFFFF, (len(fixed) if e_phnum is None else e_phnum) & 0xFFFF, 0, 0, 0)
    table = b"".join(p.pack() for p in fixed)

    need = max([EHDR_SIZE, e_phoff + len(table)]
               + [p.offset + p.filesz for p in fixed if p.type == PT_LOAD and p.filesz < (1 << 28)]
               + [o + len(b) for o, b in blobs.items()])
    buf = bytearray(need)
    buf[0:EHDR_SIZE] = ehdr
    buf[e_phoff:e_phoff + len(table)] = table
    for off, b in blobs.items():
        buf[off:off + len(b)] = b
    if size is not None:
        buf = buf[:size] if size <= len(buf) else buf + bytes(size - len(buf))
    return bytes(buf)


def write_exe(path, data: bytes, mode: int = 0o755) -> str:
    """Write `data` to `path` with `mode`; returns the path as a str."""
    path = os.fspath(path)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    return path


def simple_interp(vaddr: int = 0, e_type: int = ET_DYN, align: int = PAGE, bss: int = 0,
                  rw: bool = True) -> bytes:
    """An ld.so-like interpreter: an R+X text page at `vaddr` and (optionally) an RW data page
    after it with `bss` extra bytes.  Its PT_GNU_STACK is irrelevant (the kernel ignores it)."""
    phs = [load(vaddr, 0x1000, flags=R | X, offset=0, align=align)]
    if rw:
        phs.append(load(vaddr + 0x1000, 0x100, 0x100 + bss, flags=R | W, offset=0x1000, align=align))
    return build_elf(phs, e_type=e_type, entry=vaddr + 0x80)
