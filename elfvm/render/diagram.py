"""A terminal diagram of the address space (rich), 80 columns, high addresses on top.

Colours follow the SVG's classes and switch off by themselves when stdout is not a terminal or
NO_COLOR is set (rich's Console honours both).
"""

from __future__ import annotations

from elfvm.render.bands import Band, human_size

STYLES = {
    "text": "bold blue", "rodata": "cyan", "data": "dark_orange", "bss": "yellow",
    "interp": "green", "heap": "red", "stack": "magenta", "vdso": "bright_black",
    "vvar": "bright_black", "anon": "magenta", "gap": "dim", "kernel": "white on grey23",
}
WIDTH = 80


def _addr(a: int) -> str:
    return f"{a:#010x}" if a < 1 << 32 else "   (4 GiB)"


def _row(b: Band, marks: list[tuple[int, str]]) -> str:
    if b.cls == "gap":
        return f"{'':12}~~~~ unmapped {b.detail} ~~~~"
    here = [n for a, n in marks if b.start <= a < b.end or (a == b.end and n == "brk")]
    mark = f" <- {', '.join(here)}" if here else ""
    text = f"{b.title} {b.perms} {human_size(b.size)}{mark}"
    return text


def layout_diagram(title: str, bands: list[Band], marks: list[tuple[int, str]], *, color: bool | None = None) -> str:
    """Render to a string (so tests can check the width); `color` None means auto-detect."""
    try:
        from rich.console import Console
        from rich.text import Text
    except ImportError:
        from elfvm.errors import UsageError

        raise UsageError("--diagram needs rich: pip install 'elfvm[pictures]'") from None
    import io
    import os
    import sys

    if color is None:
        color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    buf = io.StringIO()
    console = Console(file=buf, width=WIDTH, force_terminal=color, no_color=not color,
                      color_system="standard" if color else None, highlight=False, soft_wrap=False)
    inner = WIDTH - 14                    # "0x12345678 " + box borders
    import textwrap

    for ln in textwrap.wrap(title, WIDTH - 1, subsequent_indent="  ", break_on_hyphens=False):
        console.print(Text(ln, style="bold"))
    console.print(" " * 11 + "+" + "-" * inner + "+")
    for b in bands:
        # long labels and section lists wrap inside the box: nothing is cut
        labels = textwrap.wrap(_row(b, marks), inner - 2, subsequent_indent="  ", break_on_hyphens=False)
        for i, label in enumerate(labels or [""]):
            line = Text(f"{_addr(b.end) if i == 0 else '':10} |")
            line.append(f" {label}".ljust(inner), style=STYLES.get(b.cls, ""))
            line.append("|")
            console.print(line)
        if b.detail and b.cls not in ("gap",):
            for d in textwrap.wrap(b.detail, inner - 4, subsequent_indent="  ", break_on_hyphens=False):
                console.print(Text(" " * 11 + "|" + f"   {d}".ljust(inner) + "|", style="dim"))
        console.print(" " * 11 + "+" + "-" * inner + "+")
    if bands:
        console.print(_addr(bands[-1].start))
    return buf.getvalue()
