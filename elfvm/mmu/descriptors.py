"""User-given segment descriptors for the lecture's GDT/LDT exercises.

`parse_descriptor("ldt:1:base=0x10000,limit=0xfff,type=data-rw,dpl=3")` builds the 8-byte
descriptor with GDT_ENTRY()'s layout (elfvm.mmu.segmentation.gdt_entry), so the segmentation
unit checks it exactly as it checks Linux's own: table limit, type, privilege
(max(CPL, RPL) <= DPL), P, then the segment limit (offset <= limit, in 4 KiB units with g=1),
with #GP/#SS/#NP explained when a check fails.
"""

from __future__ import annotations

from dataclasses import dataclass

from elfvm.mmu.segmentation import Descriptor, DescriptorTable, Segmentation, gdt_entry

# type nibble (SDM 3.4.5.1, table 3-1), with S=1; the accessed bit set as the CPU would
TYPES = {"data-r": 0x1, "data-rw": 0x3, "data-r-down": 0x5, "data-rw-down": 0x7,
         "code-x": 0x9, "code-xr": 0xB, "code-x-conforming": 0xD, "code-xr-conforming": 0xF}
KEYS = ("base", "limit", "type", "dpl", "g", "p", "db")


class DescriptorError(ValueError):
    pass


@dataclass(frozen=True)
class UserDescriptor:
    table: str          # "GDT" | "LDT"
    index: int
    descriptor: Descriptor


def _num(key: str, text: str, hi: int) -> int:
    try:
        v = int(text, 0)
    except ValueError:
        raise DescriptorError(f"{key}={text[:20]!r}: not a number") from None
    if not 0 <= v <= hi:
        raise DescriptorError(f"{key}={text[:20]}: out of range 0..{hi:#x}")
    return v


def parse_descriptor(spec: str) -> UserDescriptor:
    """TABLE:INDEX:base=B,limit=L,type=T,dpl=D[,g=0|1][,p=0|1][,db=0|1]."""
    parts = spec.split(":", 2)
    if len(parts) != 3 or parts[0].lower() not in ("gdt", "ldt"):
        raise DescriptorError("expected gdt|ldt:INDEX:base=...,limit=...,type=...,dpl=...")
    table = parts[0].upper()
    index = _num("INDEX", parts[1], 8191)
    if table == "GDT" and index == 0:
        raise DescriptorError("GDT entry 0 is the null descriptor")
    fields = {}
    for item in filter(None, (x.strip() for x in parts[2].split(","))):
        key, _, val = item.partition("=")
        if key not in KEYS or not val:
            raise DescriptorError(f"{item[:30]!r}: expected one of {', '.join(k + '=' for k in KEYS)}")
        fields[key] = val
    missing = [k for k in ("base", "limit", "type") if k not in fields]
    if missing:
        raise DescriptorError(f"missing {', '.join(missing)}")
    if fields["type"] not in TYPES:
        raise DescriptorError(f"type={fields['type'][:20]}: one of {', '.join(TYPES)}")
    base = _num("base", fields["base"], 0xFFFFFFFF)
    limit = _num("limit", fields["limit"], 0xFFFFF)
    dpl = _num("dpl", fields.get("dpl", "3"), 3)
    g, p, db = (_num(k, fields.get(k, d), 1) for k, d in (("g", "0"), ("p", "1"), ("db", "1")))
    access = TYPES[fields["type"]] | 0x10 | (dpl << 5) | (p << 7)
    flags = (db << 14) | (g << 15)
    return UserDescriptor(table, index, Descriptor(gdt_entry(access | flags, base, limit),
                                                   f"user {table}[{index}]"))


def install(seg: Segmentation, descs: list[UserDescriptor]) -> None:
    """Put the descriptors in the task's GDT/LDT, growing each table's limit to hold them (an
    LDT is created as modify_ldt() would)."""
    for u in descs:
        if u.table == "LDT" and seg.ldt is None:
            seg.ldt = DescriptorTable("LDT", {}, 0)
        t = seg.gdt if u.table == "GDT" else seg.ldt
        t.entries[u.index] = u.descriptor
        t.nentries = max(t.nentries, u.index + 1)
