"""`translate --svg`: the walk drawn as the lecture draws it (well-formed, the expected labels)."""

import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner

from conftest import fixture_path
from elfvm.cli import cli

pytest.importorskip("drawsvg")
NS = "{http://www.w3.org/2000/svg}"


def texts(path):
    return [t.text or "" for t in ET.parse(path).getroot().iter(f"{NS}text")]


def test_walk_svg_x86_64(tmp_path):
    out = tmp_path / "walk.svg"
    r = CliRunner().invoke(cli, ["translate", "--elf", fixture_path("vars"), "counter", "main",
                                 "--svg", str(out)])
    assert r.exit_code == 0, r.output
    t = "\n".join(texts(out))
    for label in ("CR3", "PML4E[0]", "PDPTE[0]", "PDE[64]", "offset", "physical 0x", "NOT PRESENT",
                  "fault file-read"):
        assert label in t, label


def test_walk_svg_lecture_geometry(tmp_path):
    out = tmp_path / "walk.svg"
    r = CliRunner().invoke(cli, ["translate", "--mmu", "custom", "--bits", "12,10,10", "0x12345678",
                                 "--svg", str(out)])
    assert r.exit_code == 0, r.output
    t = "\n".join(texts(out))
    assert "291 (12b)" in t and "277 (10b)" in t and "offset" in t   # 0x123, 0x115 as the lecture splits
