"""Every SVG elfvm draws, rendered for real (resvg) with the system's fonts: nothing is painted
outside the canvas (text would be clipped by a viewer), and no text is cut short ('...')."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from elfvm.cli import cli
from tests.conftest import fixture_path

resvg = pytest.importorskip("resvg_py", reason="the SVG renderer: pip install resvg-py")
from tests.svgcheck import fonts_render, ink_outside  # noqa: E402

pytestmark = pytest.mark.skipif(not fonts_render(), reason="no font: text would not be drawn")


def _svg(tmp_path, *args) -> str:
    out = tmp_path / "o.svg"
    argv = list(args)
    i = argv.index("OUT")
    argv[i] = str(out)
    r = CliRunner().invoke(cli, argv)
    assert r.exit_code in (0, 42), r.output
    return out.read_text(encoding="utf-8")


def _trace(tmp_path) -> str:
    t = tmp_path / "t.plain"
    t.write_text("".join(f"{'W' if i % 5 == 0 else 'R'} {0x1000 * (i * 7 % 40):#x}\n" for i in range(3000)))
    return str(t)


PICTURES = {
    "layout-pie": lambda tp: ("layout", "--svg", "OUT", fixture_path("hello_pie")),
    "layout-bigbss": lambda tp: ("layout", "--svg", "OUT", fixture_path("bigbss")),
    "layout-i386-2G": lambda tp: ("layout", "--profile", "linux-i386", "--split", "2G", "--svg", "OUT",
                                  fixture_path("hello_pie")),
    "translate-walks": lambda tp: ("translate", "--elf", fixture_path("vars"), "--svg", "OUT", "counter",
                                   "main", "0xffffdf00", "gs:0x14", "0x23:counter", "0xffffff00"),
    "translate-geometry": lambda tp: ("translate", "--mmu", "custom", "--bits", "4,4,4,4,4,4,8",
                                      "--svg", "OUT", "0x12345678"),
    "translate-i386": lambda tp: ("translate", "--profile", "linux-i386", "--svg", "OUT",
                                  "0xc0100000", "0xff000000"),
    "simulate-trace": lambda tp: ("simulate-run", "--trace", _trace(tp), "--frames", "8", "--svg", "OUT"),
    "simulate-compare": lambda tp: ("simulate-run", "--trace", _trace(tp), "--compare", "fifo,lru,opt",
                                    "--frames", "4,8,16", "--svg", "OUT"),
    "simulate-program": lambda tp: ("simulate-run", "--svg", "OUT", fixture_path("tiny")),
}


@pytest.mark.parametrize("name", list(PICTURES))
def test_svg_renders_inside_its_canvas(name, tmp_path):
    svg = _svg(tmp_path, *PICTURES[name](tmp_path))
    assert ink_outside(svg) == 0
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", svg)
    assert texts and not any(t.endswith("...") for t in texts), "text cut short"


def test_the_check_sees_clipped_text():
    svg = ('<svg xmlns="http://www.w3.org/2000/svg" width="100" height="40" viewBox="0 0 100 40">'
           '<rect width="100" height="40" fill="white"/><text x="60" y="25" font-size="14" '
           'font-family="DejaVu Sans Mono">far too long a label</text></svg>')
    assert ink_outside(svg) > 0


def test_walk_svg_hex_offset_and_stop():
    svg = _svg(pytest.importorskip("pathlib").Path(__import__("tempfile").mkdtemp()),
               "translate", "--elf", fixture_path("vars"), "--svg", "OUT", "main", "0x23:counter")
    assert "0x15e (12b)" in svg                       # the page offset in hex
    assert svg.count("NOT PRESENT") == 1               # only where the walk stops
    assert "segmentation: selector 0x0023" in svg      # the segmentation step is drawn
