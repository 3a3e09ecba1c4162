"""Reading a host process through /proc: maps, stat, limits, auxv and pagemap. One parser each,
used by the live oracle (elfvm.oracle), `translate --pid` (elfvm.mmu.live) and the live fault
counter (elfvm.emu.livefaults)."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from elfvm.units import PAGE_SIZE

AT_NULL = 0


@dataclass(frozen=True)
class PagemapEntry:
    """One 64-bit entry of /proc/PID/pagemap (Documentation/admin-guide/mm/pagemap.rst).

    ``pfn`` is the page frame number when present (0 without CAP_SYS_ADMIN); ``swap_type`` and
    ``swap_offset`` are set when swapped.  ``file_or_shared_anon`` is bit 61 ("page is file-page or
    shared-anon"); ``exclusive`` is bit 56 ("page exclusively mapped")."""

    raw: int

    @property
    def present(self) -> bool:
        return bool(self.raw >> 63 & 1)

    @property
    def swapped(self) -> bool:
        return bool(self.raw >> 62 & 1)

    @property
    def file_or_shared_anon(self) -> bool:
        return bool(self.raw >> 61 & 1)

    file = file_or_shared_anon

    @property
    def guard(self) -> bool:
        """Bit 58: guard region (MADV_GUARD_INSTALL), kernels >= 6.14."""
        return bool(self.raw >> 58 & 1)

    @property
    def uffd_wp(self) -> bool:
        return bool(self.raw >> 57 & 1)

    @property
    def exclusive(self) -> bool:
        return bool(self.raw >> 56 & 1)

    @property
    def soft_dirty(self) -> bool:
        return bool(self.raw >> 55 & 1)

    @property
    def pfn(self) -> int:
        return self.raw & ((1 << 55) - 1) if self.present else 0

    @property
    def swap_type(self) -> int | None:
        return self.raw & 0x1F if self.swapped else None

    @property
    def swap_offset(self) -> int | None:
        return (self.raw & ((1 << 55) - 1)) >> 5 if self.swapped else None

    def __repr__(self) -> str:
        flags = [n for n in ("present", "swapped", "file_or_shared_anon", "exclusive", "soft_dirty",
                             "uffd_wp", "guard") if getattr(self, n)]
        return f"PagemapEntry(raw={self.raw:#018x}, {'|'.join(flags) or 'none'}, pfn={self.pfn:#x})"


def read_pagemap(pid: int, start: int, end: int) -> list[PagemapEntry]:
    """One /proc/PID/pagemap entry per page from PS(start) up to PA(end)."""
    first = start // PAGE_SIZE
    last = (end + PAGE_SIZE - 1) // PAGE_SIZE
    fd = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = b""
        want = (last - first) * 8
        while len(data) < want:
            chunk = os.pread(fd, want - len(data), first * 8 + len(data))
            if not chunk:
                break
            data += chunk
    finally:
        os.close(fd)
    return [PagemapEntry(v) for (v,) in struct.iter_unpack("<Q", data[: len(data) // 8 * 8])]


@dataclass(frozen=True)
class MapsLine:
    """One line of /proc/PID/maps (fs/proc/task_mmu.c show_map_vma)."""

    start: int
    end: int
    perms: str              # rwxp / rwxs
    offset: int
    major: int
    minor: int
    inode: int
    name: str


def parse_maps(text: str) -> list[MapsLine]:
    out = []
    for line in text.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 5 or "-" not in parts[0]:
            continue
        a, b = (int(x, 16) for x in parts[0].split("-"))
        major, minor = (int(x, 16) for x in parts[3].split(":"))
        out.append(MapsLine(a, b, parts[1], int(parts[2], 16), major, minor, int(parts[4]),
                            parts[5].strip() if len(parts) > 5 else ""))
    return out


def read_maps(pid: int) -> str:
    with open(f"/proc/{pid}/maps") as f:
        return f.read()


STAT_MM_FIELDS = {  # name -> 1-based field number in /proc/PID/stat (proc(5))
    "start_code": 26, "end_code": 27, "start_stack": 28,
    "start_data": 45, "end_data": 46, "start_brk": 47,
    "arg_start": 48, "arg_end": 49, "env_start": 50, "env_end": 51,
}


def stat_fields(text: str) -> list[str]:
    """The fields of a /proc/PID/stat line from field 3 (state) on: the command name (field 2)
    may hold spaces and parentheses, so the split starts after its last ')'."""
    return text[text.rindex(")") + 2:].split()


def read_stat(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        return stat_fields(f.read())


def stat_field(fields: list[str], number: int) -> int:
    """Field `number` (1-based, as proc(5) numbers them: 10 minflt, 11 cminflt ...)."""
    return int(fields[number - 3])


def parse_stat_mm(text: str) -> dict[str, int]:
    fields = stat_fields(text)
    return {name: stat_field(fields, num) for name, num in STAT_MM_FIELDS.items()}


def read_stat_mm(pid: int) -> dict[str, int]:
    with open(f"/proc/{pid}/stat") as f:
        return parse_stat_mm(f.read())


def parse_auxv(raw: bytes, word: int) -> list[tuple[int, int]]:
    """(type, value) pairs of ``word`` bytes each, up to and including the first AT_NULL."""
    fmt = "<" + ("I" if word == 4 else "Q") * 2
    pairs = []
    for off in range(0, len(raw) - 2 * word + 1, 2 * word):
        t, v = struct.unpack_from(fmt, raw, off)
        pairs.append((t, v))
        if t == AT_NULL:
            break
    return pairs


def rlimit_stack(pid: int) -> int:
    """The soft RLIMIT_STACK of `pid` (/proc/PID/limits); 8 MiB when it cannot be read."""
    try:
        with open(f"/proc/{pid}/limits") as f:
            for line in f:
                if line.startswith("Max stack size"):
                    v = line.split()[3]
                    return (1 << 64) - 1 if v == "unlimited" else int(v)
    except OSError:
        pass
    return 8 << 20
