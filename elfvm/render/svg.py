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
    width = 1000
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
                text = b.detail if len(b.detail) <= 52 else b.detail[:49] + "..."
                g.append(dw.Text(text, 10, label_x, t + min(h / 2 + 4, 16), fill="#333"))
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


def walk_svg(items: list[dict]) -> str:
    """One panel per address, as the lecture draws a walk: the linear address cut into its index
    fields and page offset, CR3 -> each level's table entry (index, value, bits) -> the frame.

    `items`: dicts with `title`, `linear`, `fields` [(name, bits, value)], `offset` (bits, value),
    `cr3`, `steps` [(level, index, entry, bits, present)], `result` (one line)."""
    dw = _need_drawsvg()
    panel_h = 250
    width = 1100
    d = dw.Drawing(width, 20 + panel_h * len(items), font_family="DejaVu Sans Mono, monospace")
    d.append(dw.Rectangle(0, 0, width, 20 + panel_h * len(items), fill="white"))
    for n, it in enumerate(items):
        y0 = 20 + n * panel_h
        d.append(dw.Text(it["title"], 15, 10, y0 + 16, font_weight="bold"))
        lin = it["linear"]
        if lin is not None:
            total_bits = sum(b for _, b, _ in it["fields"]) + it["offset"][0]
            d.append(dw.Text(f"linear {lin:#x} = {lin:0{total_bits}b}", 12, 10, y0 + 38))
        # the address cut into fields
        x = 10.0
        unit = min(900 / max(1, sum(b for _, b, _ in it["fields"]) + it["offset"][0]), 28)
        cells = list(it["fields"]) + [("offset", it["offset"][0], it["offset"][1])]
        for i, (name, bits, value) in enumerate(cells):
            w = bits * unit
            colour = FIELD_COLOURS[i % len(FIELD_COLOURS)] if name != "offset" else "#bab0ac"
            d.append(dw.Rectangle(x, y0 + 48, w, 34, fill=colour, stroke="black", fill_opacity=0.85))
            d.append(dw.Text(f"{name}", 11, x + w / 2, y0 + 62, text_anchor="middle", fill="white"))
            d.append(dw.Text(f"{value} ({bits}b)", 11, x + w / 2, y0 + 77, text_anchor="middle", fill="white"))
            x += w
        # CR3 -> tables -> frame
        bx, by = 10, y0 + 110
        box_w = 200
        d.append(dw.Rectangle(bx, by, 90, 44, fill="#eee", stroke="black"))
        d.append(dw.Text("CR3", 12, bx + 45, by + 18, text_anchor="middle"))
        d.append(dw.Text(f"{it['cr3']:#x}" if it["cr3"] is not None else "-", 10, bx + 45, by + 34,
                         text_anchor="middle"))
        bx += 90
        for i, (level, index, entry, bits, present) in enumerate(it["steps"]):
            bx += 20
            d.append(dw.Line(bx - 20, by + 22, bx, by + 22, stroke="black", stroke_width=1.5))
            colour = FIELD_COLOURS[i % len(FIELD_COLOURS)]
            fill = "#fdfdfd" if present else "#fbe3e3"
            d.append(dw.Rectangle(bx, by, box_w, 64, fill=fill, stroke=colour, stroke_width=2))
            d.append(dw.Text(f"{level}[{index}]", 12, bx + 6, by + 16, fill=colour, font_weight="bold"))
            d.append(dw.Text("-" if entry is None else f"{entry:#x}", 11, bx + 6, by + 32))
            short = bits if len(bits) <= 30 else bits[:27] + "..."
            d.append(dw.Text(short or ("present" if present else "not present"), 10, bx + 6, by + 48))
            d.append(dw.Text("present" if present else "NOT PRESENT", 10, bx + 6, by + 60,
                             fill="#2a7" if present else "crimson"))
            bx += box_w
        d.append(dw.Text(it["result"][:150], 12, 10, by + 100,
                         fill="crimson" if it["result"].startswith("fault") else "#2a7"))
    return d.as_svg()
