"""SVG pictures with drawsvg: the address space of `layout`.

The axis is broken: each mapping gets a height that grows with the logarithm of its size, and
each hole is a fixed-height band drawn with zigzag edges and its size written in it, so a 4 KiB
page and a 3 GiB hole are both legible. Addresses are written at every band edge.
"""

from __future__ import annotations

import math

from elfvm.render.bands import PALETTE, Band, human_size


def _need_drawsvg():
    try:
        import drawsvg
    except ImportError:
        from elfvm.errors import UsageError

        raise UsageError("--svg needs drawsvg: pip install 'elfvm[pictures]'") from None
    return drawsvg


def band_height(b: Band) -> float:
    if b.cls == "gap":
        return 34.0
    if b.cls == "kernel":
        return 40.0
    pages = max(b.size / 4096, 1)
    return min(22.0 + 7.0 * math.log2(pages), 96.0)


def _y_of(addr: int, bands: list[Band], ys: list[tuple[float, float]]) -> float | None:
    for b, (top, bottom) in zip(bands, ys):
        if b.start <= addr <= b.end and b.size:
            frac = (b.end - addr) / b.size
            return top + frac * (bottom - top)
    return None


def layout_svg(title: str, bands: list[Band], marks: list[tuple[int, str]]) -> str:
    dw = _need_drawsvg()
    x0, x1, label_x = 150, 470, 650
    top = 50.0
    ys = []
    y = top
    for b in bands:
        h = band_height(b)
        ys.append((y, y + h))
        y += h
    height = y + 60
    # wide enough for every label on one line: nothing is cut or clipped
    longest = max([len(b.detail or "") for b in bands] + [0])
    width = max(1000, label_x + 0.62 * 10 * longest + 20, 20 + 0.62 * 16 * len(title) + 20)
    d = dw.Drawing(width, height, font_family="DejaVu Sans Mono, monospace")
    d.append(dw.Rectangle(0, 0, width, height, fill="white"))
    d.append(dw.Text(title, 16, 10, 26, font_weight="bold"))
    for b, (t, bt) in zip(bands, ys):
        h = bt - t
        g = dw.Group()
        g.append(dw.Title(f"{b.start:#010x}-{b.end:#010x} {b.perms} {b.title} {human_size(b.size)}"))
        if b.cls == "gap":
            zig = dw.Path(stroke="#888", fill="#f4f4f4", stroke_width=1)
            zig.M(x0, t)
            steps = 16
            for i in range(1, steps + 1):
                zig.L(x0 + (x1 - x0) * i / steps, t + (4 if i % 2 else 0))
            zig.L(x1, bt)
            for i in range(steps - 1, -1, -1):
                zig.L(x0 + (x1 - x0) * i / steps, bt - (4 if i % 2 else 0))
            zig.Z()
            g.append(zig)
            g.append(dw.Text(f"unmapped: {b.detail}", 11, (x0 + x1) / 2, t + h / 2 + 4,
                             text_anchor="middle", fill="#666"))
        else:
            g.append(dw.Rectangle(x0, t, x1 - x0, h, fill=PALETTE.get(b.cls, "#ccc"), stroke="black",
                                  stroke_width=1))
            label = f"{b.title}  {b.perms}  {human_size(b.size)}".strip()
            g.append(dw.Text(label, 12, x0 + 8, t + min(h / 2 + 4, 18), fill="black"))
            if b.detail:
                g.append(dw.Text(b.detail, 10, label_x, t + min(h / 2 + 4, 16), fill="#333"))
        d.append(g)
        d.append(dw.Text(f"{b.end:#010x}" if b.end < 1 << 32 else "4 GiB", 11, x0 - 8, t + 4,
                         text_anchor="end"))
    if bands:
        d.append(dw.Text(f"{bands[-1].start:#010x}", 11, x0 - 8, ys[-1][1] + 4, text_anchor="end"))
    for addr, name in marks:
        yy = _y_of(addr, bands, ys)
        if yy is None:
            continue
        d.append(dw.Line(x1 + 2, yy, x1 + 40, yy, stroke="crimson", stroke_width=2))
        d.append(dw.Text(f"\u2190 {name} {addr:#010x}", 11, x1 + 44, yy + 4, fill="crimson"))
    # legend
    lx, ly = 10, height - 30
    for i, (cls, colour) in enumerate(p for p in PALETTE.items() if p[0] != "gap"):
        d.append(dw.Rectangle(lx + i * 86, ly, 12, 12, fill=colour, stroke="black", stroke_width=0.5))
        d.append(dw.Text(cls, 10, lx + i * 86 + 16, ly + 10))
    return d.as_svg()


# --- the page walk of `translate` ----------------------------------------------------------

FIELD_COLOURS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2"]


CHAR_W = 0.62          # DejaVu Sans Mono's advance, in em: text width = 0.62 * size * chars
BOX_W = 220


def _wrap_px(text: str, size: float, width: float) -> list[str]:
    """`text` in lines no wider than `width` px at font `size` (monospace: nothing is cut)."""
    import textwrap

    cols = max(8, int(width / (CHAR_W * size)))
    return textwrap.wrap(text, cols, break_on_hyphens=False, break_long_words=True) or [""]


def _panel_layout(it: dict, width: float) -> dict:
    """The lines each part of a panel needs, so the picture grows instead of cutting text."""
    seg = [ln for s in it.get("segmentation", ()) for ln in _wrap_px(f"segmentation: {s}", 11, width - 20)]
    bits = [_wrap_px(b or "", 10, BOX_W - 12)[:3] for _, _, _, b, _ in it["steps"]]
    box_h = 52 + 12 * max([len(b) for b in bits] + [1])
    result = _wrap_px(it["result"], 12, width - 20)
    return {"seg": seg, "bits": bits, "box_h": box_h, "result": result,
            "height": 100 + 14 * len(seg) + box_h + 16 * len(result) + 24}


def _walk_fields(d, dw, it: dict, y: float, width: float) -> None:
    """The linear address cut into its index fields (decimal) and page offset (hex)."""
    x = 10.0
    cells = list(it["fields"]) + [("offset", it["offset"][0], it["offset"][1])]
    unit = min((width - 200) / max(1, sum(b for _, b, _ in cells)), 28)
    for i, (name, bits, value) in enumerate(cells):
        w = bits * unit
        colour = FIELD_COLOURS[i % len(FIELD_COLOURS)] if name != "offset" else "#bab0ac"
        label = f"{value:#x} ({bits}b)" if name == "offset" else f"{value} ({bits}b)"
        size = min(11.0, w / (CHAR_W * max(len(label), len(name)) + 1))
        d.append(dw.Rectangle(x, y, w, 34, fill=colour, stroke="black", fill_opacity=0.85))
        d.append(dw.Text(name, size, x + w / 2, y + 14, text_anchor="middle", fill="white"))
        d.append(dw.Text(label, size, x + w / 2, y + 29, text_anchor="middle", fill="white"))
        x += w


def _walk_boxes(d, dw, it: dict, lay: dict, by: float) -> None:
    """CR3, then one box per level the walk read; a level it never read (no page tables) grey."""
    bx = 10
    d.append(dw.Rectangle(bx, by, 90, 44, fill="#eee", stroke="black"))
    d.append(dw.Text("CR3", 12, bx + 45, by + 18, text_anchor="middle"))
    d.append(dw.Text(f"{it['cr3']:#x}" if it["cr3"] is not None else "-", 10, bx + 45, by + 34,
                     text_anchor="middle"))
    bx += 90
    h = lay["box_h"]
    for i, ((level, index, entry, _bits, present), lines) in enumerate(zip(it["steps"], lay["bits"])):
        bx += 20
        d.append(dw.Line(bx - 20, by + 22, bx, by + 22, stroke="black", stroke_width=1.5))
        colour = FIELD_COLOURS[i % len(FIELD_COLOURS)]
        fill = {True: "#fdfdfd", False: "#fbe3e3", None: "#f2f2f2"}[present]
        d.append(dw.Rectangle(bx, by, BOX_W, h, fill=fill, stroke=colour, stroke_width=2))
        d.append(dw.Text(f"{level}[{index}]", 12, bx + 6, by + 16, fill=colour, font_weight="bold"))
        d.append(dw.Text("-" if entry is None else f"{entry:#x}", 11, bx + 6, by + 32))
        for k, ln in enumerate(lines):
            d.append(dw.Text(ln, 10, bx + 6, by + 46 + 12 * k))
        state = {True: ("present", "#2a7"), False: ("NOT PRESENT: the walk stops", "crimson"),
                 None: ("no table (geometry only)", "#888")}[present]
        d.append(dw.Text(state[0], 10, bx + 6, by + h - 6, fill=state[1]))
        bx += BOX_W


def walk_svg(items: list[dict]) -> str:
    """One panel per address, as the lecture draws a walk: segmentation (for a logical
    address), the linear address cut into its index fields and page offset, CR3 -> each
    level's table entry (index, value, bits) -> the frame or the fault.

    `items`: dicts with `title`, `linear`, `fields` [(name, bits, value)], `offset` (bits, value),
    `cr3`, `steps` [(level, index, entry, bits, present: True/False/None)], `segmentation`
    [lines], `result`. Long text wraps; panels grow to fit it, so nothing is cut."""
    dw = _need_drawsvg()
    levels = max([len(it["steps"]) for it in items] + [1])
    width = max(1100, 120 + levels * (BOX_W + 20) + 20)
    lays = [_panel_layout(it, width) for it in items]
    total = 20 + sum(lay["height"] for lay in lays)
    d = dw.Drawing(width, total, font_family="DejaVu Sans Mono, monospace")
    d.append(dw.Rectangle(0, 0, width, total, fill="white"))
    y0 = 20
    for it, lay in zip(items, lays):
        d.append(dw.Text(it["title"], 15, 10, y0 + 16, font_weight="bold"))
        y = y0 + 24
        for ln in lay["seg"]:
            y += 14
            d.append(dw.Text(ln, 11, 10, y, fill="#555"))
        lin = it["linear"]
        if lin is not None:
            total_bits = sum(b for _, b, _ in it["fields"]) + it["offset"][0]
            d.append(dw.Text(f"linear {lin:#x} = {lin:0{total_bits}b}", 12, 10, y + 14))
            _walk_fields(d, dw, it, y + 24, width)
        if lin is None and not it["steps"]:          # segmentation faulted: no walk to draw
            ry = y + 30
        else:
            by = y + 72
            _walk_boxes(d, dw, it, lay, by)
            ry = by + lay["box_h"] + 22
        colour = "crimson" if it["result"].startswith("fault") else "#2a7"
        for k, ln in enumerate(lay["result"]):
            d.append(dw.Text(ln, 12, 10, ry + 16 * k, fill=colour))
        y0 += lay["height"]
    return d.as_svg()
