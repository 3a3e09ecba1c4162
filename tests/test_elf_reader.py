"""elfvm.elf.reader: the section headers it reads itself (pyelftools' Elf32_Shdr, without ELFFile)
are the sections pyelftools' ELFFile lists, and a damaged table gives what is inside the file."""

import struct
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from elfvm.elf.reader import ElfFile
from elfvm.elf.sections import Section

BIN = Path(__file__).resolve().parent.parent / "fixtures" / "bin"
PROGRAMS = sorted(p.name for p in BIN.iterdir() if p.is_file() and p.read_bytes()[:4] == b"\x7fELF")


def elffile_sections(path) -> list[Section]:
    with open(path, "rb") as f:
        return [Section(s.name, s["sh_addr"], s["sh_size"], bool(s["sh_flags"] & 2),
                        s["sh_type"] == "SHT_NOBITS") for s in ELFFile(f).iter_sections()]


@pytest.mark.parametrize("name", PROGRAMS)
def test_sections_are_pyelftools_sections(name):
    assert ElfFile(str(BIN / name)).sections == elffile_sections(BIN / name)


def patched(tmp_path, name: str, edit) -> str:
    data = bytearray((BIN / name).read_bytes())
    edit(data)
    out = tmp_path / name
    out.write_bytes(bytes(data))
    return str(out)


def test_extended_section_count_and_string_table_index(tmp_path):
    """e_shnum 0: the count is section 0's sh_size; e_shstrndx SHN_XINDEX: section 0's sh_link."""
    def edit(d):
        shoff, = struct.unpack_from("<I", d, 32)
        shnum, shstrndx = struct.unpack_from("<HH", d, 48)
        struct.pack_into("<HH", d, 48, 0, 0xFFFF)
        struct.pack_into("<I", d, shoff + 20, shnum)          # sh_size
        struct.pack_into("<I", d, shoff + 24, shstrndx)       # sh_link
    path = patched(tmp_path, "hello_static", edit)
    got = ElfFile(path).sections
    assert got == elffile_sections(path)
    assert [s.name for s in got] == [s.name for s in elffile_sections(BIN / "hello_static")]


def test_a_table_past_the_end_of_the_file_ends_the_list(tmp_path):
    whole = ElfFile(str(BIN / "hello_static")).sections
    shoff, = struct.unpack_from("<I", (BIN / "hello_static").read_bytes(), 32)
    path = tmp_path / "cut"
    path.write_bytes((BIN / "hello_static").read_bytes()[:shoff + 3 * 40 + 7])
    got = ElfFile(str(path)).sections
    assert [s.addr for s in got] == [s.addr for s in whole[:3]]
    no_table = patched(tmp_path, "hello_pie", lambda d: struct.pack_into("<I", d, 32, 0))
    assert ElfFile(no_table).sections == []
