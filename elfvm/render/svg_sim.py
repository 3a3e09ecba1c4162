"""SVG pictures of `simulate-run` with drawsvg: the run over time, and the fault curve of --compare.

* `timeline_svg`: the frame table over time, a frames x time raster (one row per frame, one
  column per time bin, each cell the page the frame holds at the end of the bin, coloured by
  process, page numbers written where they fit, a dark edge where a frame gets a new page), then
  the page faults (stacked by kind) and the TLB hit ratio of each bin on the same time axis. When
  every bin is one reference the raster is the textbook table: the reference string on top and
  the faults marked under each column.
* `compare_svg`: faults against memory size, one line per policy, the distinct pages (the
  compulsory faults) as a floor, Belady's anomaly drawn in red where more frames gave more faults,
  and the numbers in a table under the chart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from elfvm.render.svg import _need_drawsvg

FONT = "DejaVu Sans Mono, monospace"
PROC_COLOURS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2", "#edc948",
                "#9c755f", "#ff9da7", "#bab0ac"]
KIND_COLOURS = {"first-touch": "#4e79a7", "swap-in": "#e15759", "zero-page": "#76b7b2",
                "file": "#59a14f", "cow": "#f28e2b", "stack-growth": "#b07aa1"}
POLICY_COLOURS = {"fifo": "#e15759", "lru": "#4e79a7", "clock": "#59a14f", "opt": "#b07aa1"}
FREE = "#f2f2f2"
GRID = "#dddddd"
BELADY = "#d62728"
CHAR_W = 0.62                  # width of a monospace character, in font sizes
ROW_CAP = 64                   # raster rows at most (more frames: several frames per row)


# ------------------------------------------------------------------ small helpers

def _mix(colour: str, white: float) -> str:
    """`colour` mixed with `white` (0..1) parts of white."""
    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    r, g, b = (round(c + (255 - c) * white) for c in (r, g, b))
    return f"#{r:02x}{g:02x}{b:02x}"


def _dark(colour: str, k: float = 0.35) -> str:
    """`colour` darkened by k (0..1): text in a process's colour stays readable on white."""
    r, g, b = (round(int(colour[i:i + 2], 16) * (1 - k)) for i in (1, 3, 5))
    return f"#{r:02x}{g:02x}{b:02x}"


def proc_colour(proc: int) -> str:
    return PROC_COLOURS[proc % len(PROC_COLOURS)]


def page_fill(proc: int, page: int) -> str:
    """The process's colour, a little lighter or darker by page, so neighbours differ."""
    if proc < 0:
        return FREE
    return _mix(proc_colour(proc), (0.30, 0.48, 0.62, 0.40)[(page * 2654435761 >> 7) % 4])


def fmt_count(n: float) -> str:
    """Axis numbers: 0, 750, 1.5k, 20k, 2M."""
    if n == 0:
        return "0"
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            v = n / div
            return f"{v:.0f}{unit}" if v == int(v) else f"{v:.3g}{unit}"
    return f"{n:.0f}" if n == int(n) else f"{n:.3g}"


def nice_ticks(lo: float, hi: float, target: int = 6) -> list[float]:
    """Round tick values (1, 2, 5 x 10^k steps) covering lo..hi."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(target, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    out = []
    v = first
    while v <= hi + step * 1e-9:
        out.append(round(v, 10))
        v += step
    return out


def nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    mag = 10 ** math.floor(math.log10(v))
    return next(m * mag for m in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10) if m * mag >= v)


def fits(text: str, width: float, size: float) -> bool:
    return len(text) * size * CHAR_W + 3 <= width


def wrap(text: str, width: float, size: float) -> list[str]:
    """`text` in lines that fit `width`, broken after commas."""
    lines, cur = [], ""
    for piece in text.split(", "):
        cand = piece if not cur else f"{cur}, {piece}"
        if cur and not fits(cand + ",", width, size):
            lines.append(cur + ",")
            cur = piece
        else:
            cur = cand
    return lines + [cur]


# ------------------------------------------------------------------ the run over time

def _rows(tl, used: int):
    """Raster rows: [(label, first frame, frames in row)], at most ROW_CAP of them."""
    per = max(1, math.ceil(used / ROW_CAP))
    rows = []
    for a in range(0, used, per):
        n = min(per, used - a)
        lo, hi = int(tl.pfn[a]), int(tl.pfn[a + n - 1])
        rows.append((str(lo) if n == 1 else f"{lo}-{hi}", a, n))
    return per, rows


def _row_counts(tl, a: int, n: int) -> np.ndarray:
    """A row of n > 1 frames: how many of them each process holds, in every bin (bins x procs)."""
    block = tl.frame_proc[:, a:a + n]
    return np.stack([(block == p).sum(axis=1) for p in range(tl.counters.shape[1])], axis=1)


def _count_runs(counts: np.ndarray) -> list[tuple[int, int]]:
    """Run-length segments (first bin, end bin) of equal rows of `counts`."""
    if len(counts) == 0:
        return []
    change = np.nonzero((np.diff(counts, axis=0) != 0).any(axis=1))[0] + 1
    starts = np.concatenate(([0], change))
    ends = np.concatenate((change, [len(counts)]))
    return [(int(a), int(b)) for a, b in zip(starts, ends)]


def _runs(proc: np.ndarray, page: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Run-length segments (first bin, end bin, proc, page) of equal cells."""
    if len(proc) == 0:
        return []
    change = np.nonzero((np.diff(proc) != 0) | (np.diff(page) != 0))[0] + 1
    starts = np.concatenate(([0], change))
    ends = np.concatenate((change, [len(proc)]))
    return [(int(s), int(e), int(proc[s]), int(page[s])) for s, e in zip(starts, ends)]


@dataclass
class _Picture:
    """What the panels of the run's picture share: the drawing module, the elements drawn so
    far (the height is known only at the end), the timeline and its time axis."""

    dw: Any
    tl: Any
    parts: list
    xs: np.ndarray                  # x of every bin edge
    T: int                          # references on the time axis
    single: bool                    # one reference per bin: the textbook table
    decimal: bool                   # page numbers in decimal (--page-size 1), else hex
    width: int = 1100
    x0: int = 130
    x1: int = 1070

    def pagefmt(self, v: int) -> str:
        return str(v) if self.decimal else f"{v:x}"


def timeline_svg(tl, *, title: str, subtitle: str, summary: str, processes: list[str],
                 hit_ratio: float | None, eat_ns: float | None, tlb_entries: int,
                 unit: str = "reference", axis_label: str | None = None,
                 tlb_note: str | None = None) -> str:
    """The picture of one run from its `elfvm.sim.timeline.Timeline`.

    Time is counted in `unit`s (the model's references; "event" for a program's page-granular
    default mode), the time axis captioned `axis_label` (default: the unit, plural). With
    `tlb_note` the TLB panel is that note instead (the run did not measure the TLB)."""
    dw = _need_drawsvg()
    x0, x1 = 130, 1070
    T = max(tl.references, 1)
    xs = x0 + (x1 - x0) * tl.edges.astype(float) / T
    single = tl.bins > 0 and bool((np.diff(tl.edges) == 1).all())     # one reference per bin
    pic = _Picture(dw, tl, [], xs, T, single, tl.page_size == 1, x0=x0, x1=x1)
    used = tl.frames_used()
    per, rows = _rows(tl, used)
    rh = max(4.0, min(24.0, 560.0 / max(len(rows), 1)))          # raster row height
    if single:
        rh = max(rh, 16.0)
    y = _title_block(pic, title, subtitle, summary)
    y = _process_legend(pic, processes, y)

    # ---- panel 1: the frame table
    y += 28
    if tl.bins == 0:
        pic.parts.append(dw.Text("no references: nothing to draw", 13, 10, y, font_weight="bold"))
        return _finish(dw, pic.parts, pic.width, y + 16)
    y = _frame_table_head(pic, unit, per, used, y)
    if single:
        y = _reference_string(pic, processes, unit, rh, y)
    y = _frame_band(pic, rows, rh, y)
    faults = tl.faults_by_kind()
    if single:
        y = _fault_marks(pic, faults, y)
    y = _time_axis(dw, pic.parts, xs, x0, x1, y, T, single)

    # ---- panel 2: page faults per bin, stacked by kind
    y += 30
    ph = 90.0 if single else 130.0
    y = _faults_panel(dw, pic.parts, tl, faults, xs, x0, x1, y, ph, single, unit)
    label = axis_label or unit + "s"
    if tlb_entries == 0 or tlb_note:               # no TLB panel: this axis gets the caption
        y = _time_axis(dw, pic.parts, xs, x0, x1, y, T, single, label=label, unit=unit)
        y += 30
        _no_tlb_note(pic, tlb_note, eat_ns, y)
        return _finish(dw, pic.parts, pic.width, y + 16)
    y = _time_axis(dw, pic.parts, xs, x0, x1, y, T, single)

    # ---- panel 3: TLB hit ratio per bin
    y += 30
    y = _tlb_panel(dw, pic.parts, tl, xs, x0, x1, y, ph, hit_ratio, eat_ns)
    y = _time_axis(dw, pic.parts, xs, x0, x1, y, T, single, label=label, unit=unit)
    return _finish(dw, pic.parts, pic.width, y + 16)


def _title_block(pic: _Picture, title: str, subtitle: str, summary: str) -> float:
    """The title, the configuration and the run's summary wrapped to the width; returns y."""
    dw, parts = pic.dw, pic.parts
    y = 24.0
    parts.append(dw.Text(title, 15, 10, y, font_weight="bold"))
    y += 20
    parts.append(dw.Text(subtitle, 11, 10, y, fill="#333"))
    for i, line in enumerate(wrap(summary, pic.width - 20, 11)):
        y += 17 if i == 0 else 14
        parts.append(dw.Text(line, 11, 10, y, fill="#333"))
    return y


def _process_legend(pic: _Picture, processes: list[str], y: float) -> float:
    """The legend: one swatch per process (wrapped), free, and the edge of a new page."""
    dw, parts, width = pic.dw, pic.parts, pic.width
    y += 22
    lx = 10.0
    for i, name in enumerate(processes):
        label = f"P{i} {name}"
        if lx > 10 and lx + len(label) * 11 * CHAR_W + 40 > width - 10:     # wrap the legend
            lx, y = 10.0, y + 18
        parts.append(dw.Rectangle(lx, y - 10, 12, 12, fill=_mix(proc_colour(i), 0.3), stroke="#555",
                                  stroke_width=0.5))
        parts.append(dw.Text(label, 11, lx + 16, y))
        lx += 16 + len(label) * 11 * CHAR_W + 16
    if lx > width - 480:
        lx, y = 10.0, y + 18
    parts.append(dw.Rectangle(lx, y - 10, 12, 12, fill=FREE, stroke="#555", stroke_width=0.5))
    parts.append(dw.Text("free", 11, lx + 16, y))
    lx += 60
    parts.append(dw.Rectangle(lx, y - 10, 12, 12, fill="#ddd", stroke="none"))
    parts.append(dw.Line(lx, y - 10, lx, y + 2, stroke="black", stroke_width=2.5))
    parts.append(dw.Text("a new page in the frame (loaded after a fault)", 11, lx + 16, y))
    return y


def _frame_table_head(pic: _Picture, unit: str, per: int, used: int, y: float) -> float:
    """The frame table's heading, and a note when rows hold several frames or some frames
    were never used; returns the y where the table starts."""
    dw, parts, tl = pic.dw, pic.parts, pic.tl
    what = "page numbers" if pic.decimal else "page numbers in hex"
    if pic.single:
        head = f"Frame table over time: one column per {unit} ({what})"
    else:
        head = (f"Frame table over time: the page each frame holds at the end of each of {tl.bins} "
                f"time bins" + (f" ({what} where they fit)" if per == 1 else ""))
    parts.append(dw.Text(head, 13, 10, y, font_weight="bold"))
    y += 8
    notes = []
    if per > 1:
        notes.append(f"{per} frames per row, its height shared by the processes in proportion to "
                     f"the frames they hold")
    if tl.frames > used:
        notes.append(f"{used} of {tl.frames} frames ever used"
                     + (f" (only the first {tl.frames_sampled} are sampled)"
                        if used == tl.frames_sampled < tl.frames else ""))
    if notes:
        y += 6
        parts.append(dw.Text("; ".join(notes), 11, 10, y + 4, fill="#555"))
        y += 12
    return y + 6


def _reference_string(pic: _Picture, processes: list[str], unit: str, rh: float, y: float) -> float:
    """One reference per column: the reference string over the columns, where labels fit."""
    dw, tl, xs = pic.dw, pic.tl, pic.xs
    refs = []
    for i in range(tl.bins):
        p, v = int(tl.last_proc[i]), int(tl.last_page[i])
        label = pic.pagefmt(v) if len(processes) == 1 else f"{p}:{pic.pagefmt(v)}"
        if fits(label, xs[i + 1] - xs[i], 11):
            refs.append(dw.Text(label, 11, (xs[i] + xs[i + 1]) / 2, y + rh * 0.5 + 4,
                                text_anchor="middle", font_weight="bold",
                                fill=_dark(proc_colour(p)) if p >= 0 else "black"))
    if refs:                                       # too narrow for any: no empty row
        pic.parts.append(dw.Text(unit, 11, pic.x0 - 8, y + rh * 0.5 + 4, text_anchor="end"))
        pic.parts.extend(refs)
        y += rh + 4
    return y


def _frame_band(pic: _Picture, rows: list[tuple[str, int, int]], rh: float, top: float) -> float:
    """The frames x time raster: one row per frame (or per group of frames), its frame and
    grid lines; returns its bottom."""
    dw, parts, x0, x1 = pic.dw, pic.parts, pic.x0, pic.x1
    pw = x1 - x0
    label_every = max(1, math.ceil(11 / rh))
    if rows:
        parts.append(dw.Rectangle(x0, top, pw, len(rows) * rh, fill=FREE, stroke="none"))
    for r, (label, a, n) in enumerate(rows):
        if rh >= 10:
            label = ("frame " if n == 1 else "frames ") + label
        ry = top + r * rh
        if n > 1:
            _shared_row(pic, a, n, ry, rh)
        else:
            _frame_row(pic, a, ry, rh)
        if r % label_every == 0:
            parts.append(dw.Text(label, min(11.0, max(rh - 2, 8.0)), x0 - 8, ry + rh / 2 + 4,
                                 text_anchor="end"))
    bottom = top + len(rows) * rh
    if rows:
        parts.append(dw.Rectangle(x0, top, pw, bottom - top, fill="none", stroke="#888",
                                  stroke_width=0.8))
        if rh >= 6:
            for r in range(1, len(rows)):
                parts.append(dw.Line(x0, top + r * rh, x1, top + r * rh, stroke="white",
                                     stroke_width=0.6))
    return bottom


def _shared_row(pic: _Picture, a: int, n: int, ry: float, rh: float) -> None:
    """A row of n > 1 frames: the row's height shared by the processes, in proportion to the
    frames each holds in every bin."""
    dw, xs = pic.dw, pic.xs
    counts = _row_counts(pic.tl, a, n)
    for s, e in _count_runs(counts):
        off = 0.0
        for p, c in enumerate(counts[s].tolist()):
            if c:
                pic.parts.append(dw.Rectangle(xs[s], ry + off, xs[e] - xs[s], rh * c / n,
                                              fill=_mix(proc_colour(p), 0.35), stroke="none"))
                off += rh * c / n


def _frame_row(pic: _Picture, a: int, ry: float, rh: float) -> None:
    """A row of one frame: the page it holds over time, a dark edge where a new page comes in,
    the page number where it fits."""
    dw, parts, xs, tl = pic.dw, pic.parts, pic.xs, pic.tl
    lsize = min(11.0, rh - 1.5)
    for s, e, p, v in _runs(tl.frame_proc[:, a], tl.frame_page[:, a]):
        if p < 0:
            continue
        xa, xb = xs[s], xs[e]
        parts.append(dw.Rectangle(xa, ry, xb - xa, rh, fill=page_fill(p, v), stroke="none"))
        if s > 0:                                  # a new page in the frame
            parts.append(dw.Line(xa, ry, xa, ry + rh, stroke="#222",
                                 stroke_width=1.5 if xb - xa >= 6 else 0.7))
        text = pic.pagefmt(v)
        if rh >= 8.5 and fits(text, xb - xa, lsize):
            parts.append(dw.Text(text, lsize, (xa + xb) / 2, ry + rh / 2 + lsize * 0.36,
                                 text_anchor="middle", fill="#111"))


def _fault_marks(pic: _Picture, faults: dict[str, np.ndarray], y: float) -> float:
    """One reference per column: an F under each column that faulted, in its kind's colour."""
    dw, parts, xs = pic.dw, pic.parts, pic.xs
    y += 4
    parts.append(dw.Text("fault", 11, pic.x0 - 8, y + 12, text_anchor="end"))
    total = sum(faults.values()) if faults else np.zeros(pic.tl.bins, dtype=np.int64)
    kind_of = {}
    for k, v in faults.items():
        for i in np.nonzero(v)[0].tolist():
            kind_of[i] = k
    for i in np.nonzero(total)[0].tolist():
        cx = (xs[i] + xs[i + 1]) / 2
        k = kind_of.get(i, "")
        parts.append(dw.Text("F", 12, cx, y + 12, text_anchor="middle", font_weight="bold",
                             fill=KIND_COLOURS.get(k, "crimson")))
    return y + 16


def _no_tlb_note(pic: _Picture, tlb_note: str | None, eat_ns: float | None, y: float) -> None:
    """Instead of the TLB panel: why there is none (the run's note, or no TLB at all)."""
    dw = pic.dw
    if tlb_note:
        pic.parts.append(dw.Text(tlb_note, 13, 10, y, font_weight="bold"))
    else:
        eat = "" if eat_ns is None else f", effective access time {eat_ns:.2f} ns"
        pic.parts.append(dw.Text(f"No TLB: every reference walks the page table{eat}", 13, 10, y,
                                 font_weight="bold"))


def _finish(dw, parts, width, height) -> str:
    d = dw.Drawing(width, height, font_family=FONT)
    d.append(dw.Rectangle(0, 0, width, height, fill="white"))
    for p in parts:
        d.append(p)
    return d.as_svg()


def _time_axis(dw, parts, xs, x0, x1, y, T, single, label=None, unit="reference") -> float:
    parts.append(dw.Line(x0, y, x1, y, stroke="#444", stroke_width=1))
    if single:
        n = len(xs) - 1
        step = max(1, math.ceil(n / 40))
        for i in range(0, n, step):
            cx = (xs[i] + xs[i + 1]) / 2
            parts.append(dw.Line(cx, y, cx, y + 4, stroke="#444"))
            parts.append(dw.Text(str(i + 1), 10, cx, y + 15, text_anchor="middle", fill="#333"))
    else:
        for v in nice_ticks(0, T, 10):
            tx = x0 + (x1 - x0) * v / T
            parts.append(dw.Line(tx, y, tx, y + 4, stroke="#444"))
            parts.append(dw.Text(fmt_count(v), 10, tx, y + 15, text_anchor="middle", fill="#333"))
    if label:
        parts.append(dw.Text(label + (f" ({unit} number)" if single else ""), 11, (x0 + x1) / 2,
                             y + 30, text_anchor="middle", fill="#333"))
        return y + 34
    return y + 18


def _step_path(dw, xs, lo_vals, hi_vals, y_of, **kw):
    """A filled band between two step curves (one value per bin)."""
    path = dw.Path(**kw)
    n = len(hi_vals)
    path.M(xs[0], y_of(lo_vals[0]))
    for i in range(n):
        path.L(xs[i], y_of(hi_vals[i]))
        path.L(xs[i + 1], y_of(hi_vals[i]))
    for i in range(n - 1, -1, -1):
        path.L(xs[i + 1], y_of(lo_vals[i]))
        path.L(xs[i], y_of(lo_vals[i]))
    path.Z()
    return path


def _faults_panel(dw, parts, tl, faults, xs, x0, x1, y, ph, single, per="reference") -> float:
    widths = np.diff(tl.edges).astype(float)
    if single:
        scale, unit = 1.0, "faults"
    elif widths.mean() < 100:
        scale, unit = 1.0, f"faults per {per}"
    else:
        scale, unit = 1000.0, f"faults per 1000 {per}s"
    total = int(sum(int(v.sum()) for v in faults.values()))
    by = ", ".join(f"{int(v.sum())} {k}" for k, v in faults.items())
    head = (f"Page faults over the run: {total}" + (f" ({by})" if by else "")
            + (f", {unit} in each bin" if not single else ""))
    parts.append(dw.Text(head, 13, 10, y, font_weight="bold"))
    legend_w = sum(len(k) * 11 * CHAR_W + 24 for k in faults)
    if 10 + len(head) * 13 * CHAR_W + 16 > x1 - legend_w:     # no room beside it: a line below
        y += 18
    lx = x1
    for k in reversed(list(faults)):
        lx -= len(k) * 11 * CHAR_W + 24
        parts.append(dw.Rectangle(lx, y - 10, 12, 12, fill=KIND_COLOURS.get(k, "#888")))
        parts.append(dw.Text(k, 11, lx + 16, y))
    top = y + 12
    bottom = top + ph
    rates = {k: (v * scale / np.maximum(widths, 1)) for k, v in faults.items()}
    stack = np.zeros(len(widths))
    peak = float(sum(rates.values()).max()) if rates and len(widths) else 0.0
    ymax = nice_max(peak) if peak > 0 else 1.0

    def y_of(v):
        return bottom - ph * min(v, ymax) / ymax

    _y_grid(dw, parts, x0, x1, ymax, y_of, lambda v: fmt_count(v), integers=single)
    for k, r in rates.items():
        nxt = stack + r
        if len(widths):
            parts.append(_step_path(dw, xs, stack, nxt, y_of, fill=KIND_COLOURS.get(k, "#888"),
                                    fill_opacity=0.85, stroke="none"))
        stack = nxt
    parts.append(dw.Rectangle(x0, top, x1 - x0, ph, fill="none", stroke="#888", stroke_width=0.8))
    return bottom


def _y_grid(dw, parts, x0, x1, ymax, y_of, fmt, lo=0.0, integers=False):
    ticks = nice_ticks(lo, ymax, 4)
    if integers:
        ticks = [v for v in ticks if v == int(v)]
    for v in ticks:
        yy = y_of(v)
        parts.append(dw.Line(x0, yy, x1, yy, stroke=GRID, stroke_width=0.8))
        parts.append(dw.Text(fmt(v), 10, x0 - 6, yy + 3.5, text_anchor="end", fill="#333"))


HIT_FLOORS = (99.99, 99.95, 99.9, 99.8, 99.5, 99.0, 98.0, 95.0, 90.0, 80.0, 50.0, 0.0)


def _tlb_panel(dw, parts, tl, xs, x0, x1, y, ph, hit_ratio, eat_ns) -> float:
    ratio = tl.tlb_hit_ratio() * 100.0
    overall = "-" if hit_ratio is None else f"{100 * hit_ratio:.2f}%"
    eat = "" if eat_ns is None else f", effective access time {eat_ns:.2f} ns"
    head = f"TLB hit ratio in each bin (dashed: {overall} overall){eat}"
    parts.append(dw.Text(head, 13, 10, y, font_weight="bold"))
    top = y + 12
    bottom = top + ph
    finite = ratio[np.isfinite(ratio)]
    lowest = float(finite.min()) if len(finite) else 0.0
    lo = next(f for f in HIT_FLOORS if f <= lowest - 0.1 * (100 - lowest) or f == 0.0)

    def y_of(v):
        return bottom - ph * (max(v, lo) - lo) / (100.0 - lo)

    _y_grid(dw, parts, x0, x1, 100.0, y_of, lambda v: f"{v:g}%", lo)
    if len(finite):
        path = dw.Path(stroke="#4e79a7", stroke_width=1.6, fill="none")
        pen = False
        for i, v in enumerate(ratio.tolist()):
            if not math.isfinite(v):
                pen = False
                continue
            if not pen:
                path.M(xs[i], y_of(v))
                pen = True
            else:
                path.L(xs[i], y_of(v))
            path.L(xs[i + 1], y_of(v))
        parts.append(path)
    if hit_ratio is not None:
        yy = y_of(100 * hit_ratio)
        parts.append(dw.Line(x0, yy, x1, yy, stroke="#f28e2b", stroke_width=1.2,
                             stroke_dasharray="6,4"))
    parts.append(dw.Rectangle(x0, top, x1 - x0, ph, fill="none", stroke="#888", stroke_width=0.8))
    return bottom


# ------------------------------------------------------------------ --compare

def compare_svg(*, policies: list[str], frames: list[int], faults: dict[str, list[int]],
                belady: list[tuple[str, int, int, int, int]], references: int, pages_touched: int,
                title: str) -> str:
    """Faults against memory size: one line per policy; Belady's anomaly in red."""
    dw = _need_drawsvg()
    order = sorted(range(len(frames)), key=lambda i: frames[i])
    fs = [frames[i] for i in order]
    peak = max([max(v) for v in faults.values()] + [pages_touched, 1])
    chart = _FaultChart(dw, [], fs, nice_max(peak * 1.05))
    parts = chart.parts
    parts.append(dw.Text(title, 15, 10, 24, font_weight="bold"))
    parts.append(dw.Text(f"{references} references, {pages_touched} distinct pages; page faults "
                         f"for each policy and memory size", 11, 10, 44, fill="#333"))
    verdict = ("Belady's anomaly: more frames gave more faults (in red)" if belady else
               "no Belady's anomaly: more frames never gave more faults")
    parts.append(dw.Text(verdict, 12, 10, 64, font_weight="bold", fill=BELADY if belady else "#2a7"))
    _compare_axes(chart)
    # the floor: every distinct page faults at least once
    yy = chart.y_of(pages_touched)
    parts.append(dw.Line(chart.x0, yy, chart.x1, yy, stroke="#888", stroke_width=1, stroke_dasharray="4,4"))
    parts.append(dw.Text(f"{pages_touched} distinct pages (compulsory faults)", 10, chart.x0 + 6,
                         yy + 13, fill="#666"))
    # Belady's anomaly under the lines: a wide red band from the fewer-frames point up
    for pol, a, fa, b, fb in belady:
        parts.append(dw.Line(chart.x_of(a), chart.y_of(fa), chart.x_of(b), chart.y_of(fb), stroke=BELADY,
                             stroke_width=9, stroke_opacity=0.25, stroke_linecap="round"))
    _policy_lines(chart, policies, [[faults[pol][i] for i in order] for pol in policies])
    for pol, a, fa, b, fb in belady:                # ... and a red ring on top of them
        parts.append(dw.Circle(chart.x_of(b), chart.y_of(fb), 9, fill="none", stroke=BELADY, stroke_width=2))
    _compare_legend(chart, policies, belady)
    height = _fault_table(chart, policies, [[faults[pol][i] for i in order] for pol in policies],
                          {(pol, b) for pol, a, fa, b, fb in belady})
    return _finish(dw, parts, 1000, height)


@dataclass
class _FaultChart:
    """The --compare chart: the drawing module, the elements drawn so far, the memory sizes
    (ascending) on x (log scale over a wide range) and the faults on y up to ymax."""

    dw: Any
    parts: list
    fs: list[int]
    ymax: float
    x0: int = 100
    x1: int = 760
    y0: int = 96
    y1: int = 436

    @property
    def logx(self) -> bool:
        return max(self.fs) / max(min(self.fs), 1) >= 8

    def x_of(self, n: int) -> float:
        lo_f, hi_f, x0, x1 = min(self.fs), max(self.fs), self.x0, self.x1
        if hi_f == lo_f:
            return (x0 + x1) / 2
        if self.logx:
            return x0 + 20 + (x1 - x0 - 40) * math.log(n / lo_f) / math.log(hi_f / lo_f)
        return x0 + 20 + (x1 - x0 - 40) * (n - lo_f) / (hi_f - lo_f)

    def y_of(self, v: float) -> float:
        return self.y1 - (self.y1 - self.y0) * v / self.ymax


def _compare_axes(c: _FaultChart) -> None:
    """The y grid (whole numbers of faults), the plot's frame, a tick per memory size (labels
    where they do not overlap) and the axis captions."""
    dw, parts, x0, x1, y0, y1 = c.dw, c.parts, c.x0, c.x1, c.y0, c.y1
    for v in [t for t in nice_ticks(0, c.ymax, 6) if t == int(t)]:
        yy = c.y_of(v)
        parts.append(dw.Line(x0, yy, x1, yy, stroke=GRID, stroke_width=0.8))
        parts.append(dw.Text(fmt_count(v), 10, x0 - 6, yy + 3.5, text_anchor="end", fill="#333"))
    parts.append(dw.Rectangle(x0, y0, x1 - x0, y1 - y0, fill="none", stroke="#888"))
    last_x = -1e9
    for n in c.fs:
        xx = c.x_of(n)
        parts.append(dw.Line(xx, y1, xx, y1 + 4, stroke="#444"))
        if xx - last_x >= len(str(n)) * 10 * CHAR_W + 4:
            parts.append(dw.Text(str(n), 10, xx, y1 + 16, text_anchor="middle", fill="#333"))
            last_x = xx
    parts.append(dw.Text("frames (memory size)" + (", log scale" if c.logx else ""), 11,
                         (x0 + x1) / 2, y1 + 34, text_anchor="middle"))
    parts.append(dw.Text("page faults", 11, 16, (y0 + y1) / 2, text_anchor="middle",
                         transform=f"rotate(-90 16 {(y0 + y1) / 2})"))


def _policy_lines(c: _FaultChart, policies: list[str], counts: list[list[int]]) -> None:
    """One line per policy (counts[k]: its faults for each size in c.fs), a dot with a tooltip
    per size; earlier lines wider, so that equal curves stay visible."""
    dw = c.dw
    npol = len(policies)
    for k, pol in enumerate(policies):
        colour = POLICY_COLOURS.get(pol, "#333")
        lw = 2 + 1.4 * (npol - 1 - k)
        ys = counts[k]
        pts = [(c.x_of(n), c.y_of(v)) for n, v in zip(c.fs, ys)]
        if len(pts) > 1:
            line = dw.Path(stroke=colour, stroke_width=lw, fill="none", stroke_linejoin="round")
            line.M(*pts[0])
            for p in pts[1:]:
                line.L(*p)
            c.parts.append(line)
        for (px, py), n, v in zip(pts, c.fs, ys):
            dot = dw.Circle(px, py, 2.5 + lw / 2, fill=colour, stroke="white", stroke_width=1)
            dot.append_title(f"{pol}: {v} faults with {n} frames")
            c.parts.append(dot)


def _compare_legend(c: _FaultChart, policies: list[str],
                    belady: list[tuple[str, int, int, int, int]]) -> None:
    """Right of the plot: the policies' colours, then Belady's anomalies (the first 8)."""
    dw, parts, x1 = c.dw, c.parts, c.x1
    ly = c.y0 + 6
    for pol in policies:
        colour = POLICY_COLOURS.get(pol, "#333")
        parts.append(dw.Line(x1 + 20, ly, x1 + 44, ly, stroke=colour, stroke_width=2))
        parts.append(dw.Circle(x1 + 32, ly, 4, fill=colour))
        parts.append(dw.Text(pol, 12, x1 + 52, ly + 4))
        ly += 20
    if not belady:
        return
    parts.append(dw.Line(x1 + 20, ly, x1 + 44, ly, stroke=BELADY, stroke_width=9,
                         stroke_opacity=0.25, stroke_linecap="round"))
    parts.append(dw.Text("Belady's anomaly", 12, x1 + 52, ly + 4, fill=BELADY))
    ly += 24
    for pol, a, fa, b, fb in belady[:8]:
        parts.append(dw.Text(f"{pol}: {a} -> {b} frames,", 10, x1 + 20, ly, fill=BELADY))
        parts.append(dw.Text(f"  {fa} -> {fb} faults", 10, x1 + 20, ly + 13, fill=BELADY))
        ly += 30
    if len(belady) > 8:
        parts.append(dw.Text(f"... and {len(belady) - 8} more", 10, x1 + 20, ly, fill=BELADY))


def _fault_table(c: _FaultChart, policies: list[str], counts: list[list[int]],
                 anomalous: set[tuple[str, int]]) -> float:
    """The numbers under the chart: a row per policy, a column per size (12 at most), the
    anomalous ones in red; returns the picture's height."""
    dw, parts, x0 = c.dw, c.parts, c.x0
    ty = c.y1 + 64
    cols = min(len(c.fs), 12)
    cw = (c.x1 + 200 - x0) / (cols + 1)
    parts.append(dw.Text("faults", 11, x0 - 6, ty, text_anchor="end", font_weight="bold"))
    for j, n in enumerate(c.fs[:cols]):
        parts.append(dw.Text(f"{n} frame{'s' if n != 1 else ''}", 11, x0 + cw * (j + 0.5), ty,
                             text_anchor="middle", font_weight="bold"))
    for k, pol in enumerate(policies):
        ry = ty + 18 * (k + 1)
        parts.append(dw.Text(pol, 11, x0 - 6, ry, text_anchor="end", fill=POLICY_COLOURS.get(pol, "#333")))
        for j, n in enumerate(c.fs[:cols]):
            bad = (pol, n) in anomalous
            parts.append(dw.Text(str(counts[k][j]), 11, x0 + cw * (j + 0.5), ry,
                                 text_anchor="middle", fill=BELADY if bad else "black",
                                 font_weight="bold" if bad else "normal"))
    if len(c.fs) > cols:
        parts.append(dw.Text(f"... {len(c.fs) - cols} more sizes in the table output", 10, x0,
                             ty + 18 * (len(policies) + 1), fill="#666"))
    return ty + 18 * (len(policies) + 1) + 24
