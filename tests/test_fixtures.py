"""The committed fixtures in fixtures/bin have the properties they claim.

These read the ELF files only (pyelftools), so they run anywhere, even where
gcc -m32 or i386 execution is unavailable.  If one fails after a toolchain
change, see fixtures/Makefile and README.md "Fixtures".
"""

import hashlib
from pathlib import Path

import pytest
from elftools.elf.constants import P_FLAGS
from elftools.elf.elffile import ELFFile

BIN = Path(__file__).resolve().parent.parent / "fixtures" / "bin"

FIXTURES = [
    "hello_pie", "hello_nopie", "hello_static", "hello_staticpie",
    "hello_execstack", "hello_align2m", "bigbss", "tiny", "vars",
    "vars_pie", "touch",
    "lazy", "stackgrow", "mallocs", "shmem", "segv", "sortlines",
]
LECTURE = ["lazy", "stackgrow", "mallocs", "shmem", "segv", "sortlines"]


def segments(elf, p_type):
    return [s for s in elf.iter_segments() if s["p_type"] == p_type]


@pytest.fixture(scope="module")
def elf():
    """elf(name) -> ELFFile of fixtures/bin/<name> (files closed at the end)."""
    opened = []

    def load(name):
        f = open(BIN / name, "rb")
        opened.append(f)
        return ELFFile(f)

    yield load
    for f in opened:
        f.close()


@pytest.mark.parametrize("name", FIXTURES)
def test_is_i386_executable(elf, name):
    path = BIN / name
    assert path.is_file(), f"missing fixture {path}; run `make fixtures`"
    e = elf(name)
    assert e.elfclass == 32
    assert e.little_endian
    assert e["e_machine"] == "EM_386"
    assert e["e_type"] in ("ET_EXEC", "ET_DYN")
    assert segments(e, "PT_LOAD"), "no PT_LOAD segment"
    assert path.stat().st_mode & 0o111, "fixture is not executable"


@pytest.mark.parametrize("name", ["hello_pie", "hello_execstack",
                                  "hello_align2m", "vars_pie"])
def test_pie_is_dyn_with_interp(elf, name):
    e = elf(name)
    assert e["e_type"] == "ET_DYN"
    assert len(segments(e, "PT_INTERP")) == 1


@pytest.mark.parametrize("name", ["hello_nopie", "bigbss", "vars", "touch"])
def test_nopie_is_exec_with_interp(elf, name):
    e = elf(name)
    assert e["e_type"] == "ET_EXEC"
    assert len(segments(e, "PT_INTERP")) == 1


@pytest.mark.parametrize("name", ["hello_static", "tiny", *LECTURE])
def test_static_is_exec_without_interp(elf, name):
    e = elf(name)
    assert e["e_type"] == "ET_EXEC"
    assert not segments(e, "PT_INTERP")


def test_staticpie_is_dyn_without_interp(elf):
    e = elf("hello_staticpie")
    assert e["e_type"] == "ET_DYN"
    assert not segments(e, "PT_INTERP")


def test_tiny_has_no_gnu_stack_and_a_data_segment(elf):
    e = elf("tiny")
    assert not segments(e, "PT_GNU_STACK")
    assert e.get_section_by_name(".data") is not None
    assert e.get_section_by_name(".bss") is not None
    writable = [s for s in segments(e, "PT_LOAD") if s["p_flags"] & P_FLAGS.PF_W]
    assert len(writable) == 1
    assert writable[0]["p_memsz"] > writable[0]["p_filesz"]  # has a bss tail
    assert e["e_entry"] == e.get_section_by_name(".symtab") \
        .get_symbol_by_name("_start")[0]["st_value"]


def test_execstack_has_executable_gnu_stack(elf):
    (stack,) = segments(elf("hello_execstack"), "PT_GNU_STACK")
    assert stack["p_flags"] & P_FLAGS.PF_X


@pytest.mark.parametrize("name", ["hello_pie", "hello_nopie", "vars"])
def test_ordinary_programs_have_non_executable_gnu_stack(elf, name):
    (stack,) = segments(elf(name), "PT_GNU_STACK")
    assert not stack["p_flags"] & P_FLAGS.PF_X


def test_align2m_segments_are_2mib_aligned(elf):
    loads = segments(elf("hello_align2m"), "PT_LOAD")
    assert {s["p_align"] for s in loads} == {0x200000}
    # the ordinary build uses 4 KiB pages
    assert {s["p_align"] for s in segments(elf("hello_pie"), "PT_LOAD")} == {0x1000}


def test_bigbss_has_large_bss_with_partial_page_tail(elf):
    e = elf("bigbss")
    bss = e.get_section_by_name(".bss")
    assert bss["sh_type"] == "SHT_NOBITS"
    assert bss["sh_size"] > 32 << 20
    (data,) = [s for s in segments(e, "PT_LOAD") if s["p_flags"] & P_FLAGS.PF_W]
    assert data["p_memsz"] - data["p_filesz"] > 32 << 20
    # file-backed part ends mid-page: the kernel must zero the tail of that page
    assert (data["p_vaddr"] + data["p_filesz"]) % 0x1000 != 0


@pytest.mark.parametrize("name", ["vars", "vars_pie"])
def test_vars_symbols(elf, name):
    e = elf(name)
    symtab = e.get_section_by_name(".symtab")
    assert symtab is not None, "vars must not be stripped"

    def sym(n):
        found = symtab.get_symbol_by_name(n)
        assert found, f"symbol {n} missing from {name}"
        return found[0]

    def section_of(s):
        return e.get_section(s["st_shndx"]).name

    assert sym("counter")["st_info"]["type"] == "STT_OBJECT"
    assert section_of(sym("counter")) == ".data"
    assert sym("table")["st_size"] == 4096 * 4
    assert section_of(sym("table")) == ".bss"
    assert sym("tls_var")["st_info"]["type"] == "STT_TLS"
    assert section_of(sym("tls_var")) == ".tdata"
    assert section_of(sym("greeting")) == ".rodata"
    assert sym("square")["st_info"]["type"] == "STT_FUNC"
    assert sym("main")["st_info"]["type"] == "STT_FUNC"
    assert len(segments(e, "PT_TLS")) == 1


@pytest.mark.parametrize("name", ["vars", "vars_pie"])
def test_vars_counter_initial_value_in_file(elf, name):
    """counter = 42 is stored in the file at its section offset."""
    e = elf(name)
    counter = e.get_section_by_name(".symtab").get_symbol_by_name("counter")[0]
    data = e.get_section_by_name(".data")
    off = counter["st_value"] - data["sh_addr"]
    assert int.from_bytes(data.data()[off:off + 4], "little") == 42


def test_lazy_has_64_mib_bss(elf):
    bss = elf("lazy").get_section_by_name(".bss")
    assert bss["sh_type"] == "SHT_NOBITS" and bss["sh_size"] >= 64 << 20


def test_segv_message_is_in_a_read_only_segment(elf):
    e = elf("segv")
    msg = e.get_section_by_name(".symtab").get_symbol_by_name("message")[0]["st_value"]
    (seg,) = [s for s in segments(e, "PT_LOAD")
              if s["p_vaddr"] <= msg < s["p_vaddr"] + s["p_memsz"]]
    assert not seg["p_flags"] & P_FLAGS.PF_W


def test_binaries_built_from_current_sources():
    """fixtures/bin/.sources.sha256 matches fixtures/src + fixtures/Makefile.

    Fails when a source was edited without `make fixtures` (and committing
    the rebuilt binaries).  Same hash as `make -C fixtures hash`.
    """
    root = BIN.parent
    h = hashlib.sha256((root / "Makefile").read_bytes())
    for src in sorted((root / "src").iterdir(), key=lambda p: p.name.encode()):
        h.update(src.read_bytes())
    recorded = (BIN / ".sources.sha256").read_text().strip()
    assert recorded == h.hexdigest(), "fixtures/src changed: run `make fixtures`"
