"""Render an SVG for real (resvg) and find ink outside the canvas: text or shapes that a viewer
would clip. The SVG is re-framed with a margin on every side; any painted pixel in the margin
left the original canvas."""

from __future__ import annotations

import re
import zlib

import numpy as np

MARGIN = 200


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def decode_png_rgba(data: bytes) -> np.ndarray:
    """The RGBA8 pixels of a non-interlaced PNG (what resvg writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        n = int.from_bytes(data[pos:pos + 4], "big")
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype = int.from_bytes(body[:4], "big"), int.from_bytes(body[4:8], "big"), body[8], body[9]
            assert depth == 8 and ctype == 6 and body[12] == 0, "RGBA8, not interlaced"
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = 4 * w
    out = np.zeros((h, stride), dtype=np.int32)
    prev = np.zeros(stride, dtype=np.int32)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = np.frombuffer(raw, dtype=np.uint8, count=stride, offset=y * (stride + 1) + 1).astype(np.int32)
        if f == 0:
            cur = line
        elif f == 2:
            cur = (line + prev) & 0xFF
        else:
            cur = line.copy()
            for x in range(stride):
                a = cur[x - 4] if x >= 4 else 0
                b = prev[x]
                c = prev[x - 4] if x >= 4 else 0
                pred = a if f == 1 else ((a + b) >> 1 if f == 3 else _paeth(a, b, c))
                cur[x] = (line[x] + pred) & 0xFF
        out[y] = cur
        prev = cur
    return out.reshape(h, w, 4)


def canvas_size(svg: str) -> tuple[float, float]:
    m = re.search(r'<svg[^>]*\bviewBox="([-\d.]+)[ ,]+([-\d.]+)[ ,]+([\d.]+)[ ,]+([\d.]+)"', svg)
    if m:
        return float(m.group(3)), float(m.group(4))
    w = re.search(r'<svg[^>]*\bwidth="([\d.]+)', svg)
    h = re.search(r'<svg[^>]*\bheight="([\d.]+)', svg)
    return float(w.group(1)), float(h.group(1))


def reframed(svg: str) -> tuple[str, float, float]:
    """The same drawing in a canvas MARGIN larger on every side, unclipped."""
    w, h = canvas_size(svg)
    head = re.search(r"<svg\b[^>]*>", svg).group(0)
    new = re.sub(r'\s(width|height|viewBox)="[^"]*"', "", head)
    new = new[:-1] + (f' width="{w + 2 * MARGIN:g}" height="{h + 2 * MARGIN:g}" '
                      f'viewBox="{-MARGIN} {-MARGIN} {w + 2 * MARGIN:g} {h + 2 * MARGIN:g}" '
                      f'overflow="visible">')
    return svg.replace(head, new, 1), w, h


FONT_DIRS = ["/usr/share/fonts"]


def render(svg: str) -> np.ndarray:
    """RGBA pixels of the SVG as resvg draws it, with the system's DejaVu fonts."""
    import resvg_py

    return decode_png_rgba(bytes(resvg_py.svg_to_bytes(
        svg_string=svg, font_dirs=FONT_DIRS, font_family="DejaVu Sans",
        sans_serif_family="DejaVu Sans", monospace_family="DejaVu Sans Mono")))


def fonts_render() -> bool:
    """True when text really gets drawn here (a font was found)."""
    s = ('<svg xmlns="http://www.w3.org/2000/svg" width="60" height="30"><text x="2" y="20" '
         'font-family="DejaVu Sans Mono, monospace" font-size="14">text</text></svg>')
    return bool((render(s)[:, :, 3] > 0).sum())


def ink_outside(svg: str) -> int:
    """Painted pixels outside the original canvas (0: nothing leaves it)."""
    big, w, h = reframed(svg)
    px = render(big)
    alpha = px[:, :, 3] > 0
    inside = np.zeros_like(alpha)
    inside[MARGIN:MARGIN + int(np.ceil(h)), MARGIN:MARGIN + int(np.ceil(w))] = True
    return int((alpha & ~inside).sum())
