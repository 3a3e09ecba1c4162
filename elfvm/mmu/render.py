"""Turning Translations into text: a short walk table per address, or JSON (same data)."""

from __future__ import annotations

import json

from tabulate import tabulate

from elfvm.units import human_size

ACCESS = {"r": "read", "w": "write", "x": "execute"}


def _hex(v) -> str:
    return "-" if v is None else f"{v:#x}"


def address_split(linear: int, geom) -> str:
    """The lecture's one-liner: '0x0804a123 = PDE 32 | PTE 74 | offset 0x123' for any geometry
    (indices in decimal as the tables number them, the offset in hex)."""
    idx, off = geom.split(linear)
    parts = [f"{n} {i}" for n, i in zip(geom.level_names, idx)] + [f"offset {off:#x}"]
    bits = "|".join(str(b) for b in geom.level_bits + (geom.offset_bits,))
    return f"{linear:#010x} = {' | '.join(parts)}  ({bits} bits)"


def translation_text(t, geom_desc: str = "", geom=None) -> str:
    return TranslationText(geom)(t)


class TranslationText:
    """The text of many Translations: the walk table and the wrapped explanations are made once
    per distinct walk and text (the addresses of one page share them), bounded."""

    def __init__(self, geom=None):
        self.geom = geom
        self.tables: dict[int, tuple] = {}
        self.wrapped: dict[str, list[str]] = {}

    def __call__(self, t) -> str:
        lines = [f"{t.input}  ({ACCESS[t.access]}, CPL {t.cpl})"]
        if t.segmentation is not None:
            for s in t.segmentation.steps:
                lines.append(f"  segmentation: {s}")
        if t.linear is not None:
            lines.append(f"  linear {t.linear:#x}  {t.region}")
            where = ""
            if t.vma is not None:
                where = f"vma {t.vma.start:#010x}-{t.vma.end:#010x} {t.vma.perms} {t.vma_name or ''}".rstrip()
            if t.section or t.symbol:      # '?': the address is in no section (e.g. past .eh_frame)
                where += f"  [{t.section or '?'}{' ' + t.symbol if t.symbol else ''}]"
            if where:
                lines.append(f"  {where.strip()}")
            if self.geom is not None and t.linear <= self.geom.max_linear:
                lines.append(f"  split  {address_split(t.linear, self.geom)}")
        if t.walk:
            lines += self._table(t.walk)
        if t.physical is not None:
            lines.append(f"  -> physical {t.physical:#x}  (page offset {t.page_offset:#x}, "
                         f"{human_size(t.page_size)} page)")
        if t.fault is not None:
            lines += self._wrap(f"  -> fault {t.fault.kind}: {t.fault.reason}")
        for n in t.notes:
            lines += self._wrap(f"  note: {n}")
        return "\n".join(lines)

    def _table(self, walk) -> list[str]:
        """The walk's table; the addresses of a page share one walk list (the address space's
        memo), so it is made once per list (kept alive with its text, so its id stays its own)."""
        got = self.tables.get(id(walk))
        if got is None or got[0] is not walk:
            rows = [(w.level, f"{w.index} ({w.index:#x})", _hex(w.entry), w.bits or "-",
                     "-" if w.present is None else ("yes" if w.present else "no")) for w in walk]
            table = tabulate(rows, headers=["level", "index", "entry", "decoded", "present"], tablefmt="simple")
            if len(self.tables) >= 4096:
                self.tables.clear()
            got = self.tables[id(walk)] = (walk, ["  " + r for r in table.splitlines()])
        return got[1]

    def _wrap(self, text: str) -> list[str]:
        got = self.wrapped.get(text)
        if got is None:
            got = _wrap(text)
            if len(self.wrapped) >= 4096:
                self.wrapped.clear()
            self.wrapped[text] = got
        return got


def _wrap(text: str, width: int = 79) -> list[str]:
    """A long explanation wrapped to an 80-column terminal, continuation lines indented."""
    import textwrap

    return textwrap.wrap(text, width, subsequent_indent="       ", break_on_hyphens=False) or [text]


def render_table(results, geom=None) -> str:
    text = TranslationText(geom)
    return "\n\n".join(text(t) for t in results)


def render_json(results) -> str:
    """A JSON list. Short lists are indented for people; long ones (bulk --addresses runs) put
    one compact object per line, which is still one JSON document and lets the C encoder work."""
    objs = [t.to_json() for t in results]
    if len(objs) <= 100:
        return json.dumps(objs, indent=2)
    return "[\n" + ",\n".join(json.dumps(o) for o in objs) + "\n]"
