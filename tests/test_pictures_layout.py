"""Pictures of the layout: well-formed SVG with the expected labels; an 80-column diagram."""

import re
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner

from conftest import fixture_path
from elfvm.cli import cli
from elfvm.kernel.binfmt_elf import ExecRequest, execve
from elfvm.kernel.profile import make_profile
from elfvm.render.pictures import layout_diagram_text

pytest.importorskip("drawsvg")
pytest.importorskip("rich")

SVG_NS = "{http://www.w3.org/2000/svg}"


def svg_texts(path):
    root = ET.parse(path).getroot()
    return root, [t.text or "" for t in root.iter(f"{SVG_NS}text")]


@pytest.mark.parametrize("name, expect", [
    ("hello_pie", ["[stack]", "[vdso]", "ld-linux.so.2", "hello_pie", "esp", "brk", ".text", "unmapped"]),
    ("bigbss", ["bigbss", "anonymous", ".bss", "64 MiB"]),
    ("tiny", ["tiny  r-xp", "[stack]  rwxp"]),
])
def test_layout_svg_is_wellformed_with_labels(tmp_path, name, expect):
    out = tmp_path / f"{name}.svg"
    r = CliRunner().invoke(cli, ["layout", "--env-clear", "--svg", str(out), "--format", "json",
                                 fixture_path(name)])
    assert r.exit_code == 0, r.output
    root, texts = svg_texts(out)
    assert root.tag == f"{SVG_NS}svg"
    joined = "\n".join(texts)
    for e in expect:
        assert e in joined, (e, joined[:2000])


def test_i386_profile_svg_shows_the_kernel_half(tmp_path):
    out = tmp_path / "k.svg"
    r = CliRunner().invoke(cli, ["layout", "--env-clear", "--profile", "linux-i386", "--svg", str(out),
                                 fixture_path("hello_static")])
    assert r.exit_code == 0, r.output
    _, texts = svg_texts(out)
    assert any("kernel" in t.lower() or "lowmem" in t.lower() for t in texts)
    assert any("0xc0000000" in t for t in texts)


@pytest.mark.parametrize("name", ["hello_pie", "hello_staticpie", "bigbss", "tiny", "vars"])
def test_diagram_fits_80_columns(name):
    res = execve(ExecRequest(fixture_path(name), None, [], make_profile()))
    text = layout_diagram_text(res, color=False)
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    assert "[stack]" in text and "\x1b[" not in text
    assert any("unmapped" in line for line in lines)


def test_diagram_colour_only_when_asked():
    res = execve(ExecRequest(fixture_path("hello_pie"), None, [], make_profile()))
    coloured = layout_diagram_text(res, color=True)
    assert "\x1b[" in coloured
    plain = re.sub(r"\x1b\[[0-9;]*m", "", coloured)
    assert plain == layout_diagram_text(res, color=False)


def test_diagram_cli_without_terminal_has_no_escape_codes():
    r = CliRunner().invoke(cli, ["layout", "--diagram", "--env-clear", fixture_path("hello_pie")])
    assert r.exit_code == 0 and "\x1b[" not in r.output and "[vdso]" in r.output
