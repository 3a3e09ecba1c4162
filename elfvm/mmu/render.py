"""Turning Translations into text: a short walk table per address, or JSON (same data)."""

from __future__ import annotations

import json

from tabulate import tabulate

ACCESS = {"r": "read", "w": "write", "x": "execute"}


def _hex(v) -> str:
    return "-" if v is None else f"{v:#x}"


def translation_text(t, geom_desc: str = "") -> str:
    lines = []
    head = f"{t.input}  ({ACCESS[t.access]}, CPL {t.cpl})"
    lines.append(head)
    if t.segmentation is not None:
        for s in t.segmentation.steps:
            lines.append(f"  segmentation: {s}")
    if t.linear is not None:
        where = t.region
        if t.vma is not None:
            where += f"  vma {t.vma.start:#010x}-{t.vma.end:#010x} {t.vma.perms} {t.vma_name or ''}".rstrip()
        if t.section or t.symbol:
            where += f"  [{t.section or '?'}{' ' + t.symbol if t.symbol else ''}]"
        lines.append(f"  linear {t.linear:#x}  {where}")
    if t.walk:
        rows = [(w.level, f"{w.index} ({w.index:#x})", _hex(w.entry), w.bits or "-",
                 "-" if w.present is None else ("yes" if w.present else "no")) for w in t.walk]
        table = tabulate(rows, headers=["level", "index", "entry", "decoded", "present"], tablefmt="simple")
        lines += ["  " + r for r in table.splitlines()]
    if t.physical is not None:
        lines.append(f"  -> physical {t.physical:#x}  (page offset {t.page_offset:#x}, "
                     f"{t.page_size // 1024} KiB page)" if t.page_size < 1 << 20 else
                     f"  -> physical {t.physical:#x}  (page offset {t.page_offset:#x}, "
                     f"{t.page_size >> 20} MiB page)")
    if t.fault is not None:
        lines.append(f"  -> fault {t.fault.kind}: {t.fault.reason}")
    for n in t.notes:
        lines.append(f"  note: {n}")
    return "\n".join(lines)


def render_table(results) -> str:
    return "\n\n".join(translation_text(t) for t in results)


def render_json(results) -> str:
    """A JSON list. Short lists are indented for people; long ones (bulk --addresses runs) put
    one compact object per line, which is still one JSON document and lets the C encoder work."""
    objs = [t.to_json() for t in results]
    if len(objs) <= 100:
        return json.dumps(objs, indent=2)
    return "[\n" + ",\n".join(json.dumps(o) for o in objs) + "\n]"
