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
