"""Index splits per geometry against hand-computed walks, including the lecture's exercises."""

import pytest

from elfvm.mmu.geometry import GeometryError, custom_geometry, get_geometry, parse_bits

A = 0x12345678


def test_i386_10_10_12():
    g = get_geometry("i386")
    # 0x12345678 = 0001001000 1101000101 011001111000
    assert g.split(A) == ((0x48, 0x345), 0x678)
    assert (g.va_bits, g.page_size, g.entry_size, g.level_names) == (32, 4096, 4, ("PDE", "PTE"))
    assert g.large_page_size(0) == 4 << 20


def test_pae_2_9_9_12():
    g = get_geometry("pae")
    assert g.split(A) == ((0, 0x91, 0x145), 0x678)
    assert g.split(0xC0000000)[0] == (3, 0, 0)
    assert g.large_page_size(1) == 2 << 20 and g.nx


def test_x86_64_9_9_9_9_12():
    g = get_geometry("x86-64")
    assert g.split(A) == ((0, 0, 0x91, 0x145), 0x678)
    assert g.split(0xFFFFDF00) == ((0, 3, 511, 509), 0xF00)
    assert g.large_page_size(1) == 1 << 30 and g.large_page_size(2) == 2 << 20
    g.check_linear(0xFFFF800000000000)
    with pytest.raises(GeometryError, match="canonical"):
        g.check_linear(0x0000800000000000)


def test_lecture_single_level_22_10():
    """'32-bit logical address, 22-bit page p, 10-bit offset i'."""
    g = custom_geometry("22,10")
    assert g.split(A) == ((0x48D15,), 0x278)
    assert g.page_size == 1024 and g.entries_per_table(0) == 1 << 22


def test_lecture_two_level_12_10_10():
    """'12-bit page dir d, 10-bit page p, 10-bit offset i': dir[d]->page[p].frame + i."""
    g = custom_geometry("12,10,10")
    assert g.split(A) == ((0x123, 0x115), 0x278)
    assert g.level_names == ("PDE", "PTE") and g.va_bits == 32


def test_bits_parsing_and_errors():
    assert parse_bits("12,10,10") == ((12, 10), 10)
    for bad in ("10", "a,b", "0,12", "40,40"):
        with pytest.raises(GeometryError):
            parse_bits(bad)
    with pytest.raises(GeometryError):
        get_geometry("custom")
    with pytest.raises(GeometryError):
        get_geometry("i386", "10,10,12")
    with pytest.raises(GeometryError, match="does not fit"):
        get_geometry("i386").check_linear(1 << 32)
