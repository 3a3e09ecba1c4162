"""PDE/PTE bit layouts (Intel SDM vol. 3A tables 4-4..4-19)."""

import pytest

from elfvm.mmu import entries as E


def test_flag_bit_positions():
    assert (E.P, E.RW, E.US, E.PWT, E.PCD, E.A, E.D, E.PS, E.G) == (1, 2, 4, 8, 16, 32, 64, 128, 256)
    assert E.NX == 1 << 63


def test_i386_pte_encode_decode():
    v = E.make_entry("i386", 0x1234000, E.P | E.RW | E.US | E.A | E.D)
    assert v == 0x1234067
    d = E.decode("i386", "PTE", v, leaf=True, page_shift=12, page_size=4096)
    assert d.flags == ("P", "RW", "US", "A", "D") and d.address == 0x1234000
    assert d.text() == "P RW US A D frame=0x1234000"


def test_i386_pse_pde_and_pse36():
    v = E.make_entry("i386", 0x00400000, E.P | E.RW | E.A | E.D | E.G, large=True)
    assert v == 0x004001E3
    d = E.decode("i386", "PDE", v, leaf=True, page_shift=22, page_size=4096)
    assert d.large and d.address == 0x400000 and "PS" in d.flags and "G" in d.flags
    hi = E.make_entry("i386", 0x1_00400000, E.P, large=True)       # PSE-36: bits 39:32 in 20:13
    assert hi == 0x00400000 | (1 << 13) | E.P | E.PS
    assert E.entry_address("i386", hi, True, 22, 4096) == 0x1_00400000


def test_table_entries_ignore_d_and_g():
    d = E.decode("i386", "PDE", 0x2001067, leaf=False, page_shift=22, page_size=4096)
    assert d.flags == ("P", "RW", "US", "A") and d.text() == "P RW US A table=0x2001000"


def test_pae_and_x86_64_nx_and_frame():
    v = E.make_entry("pae", 0x12_3456_7000, E.P | E.US | E.A | E.NX)
    assert v == 0x8000001234567025
    d = E.decode("pae", "PTE", v, leaf=True, page_shift=12, page_size=4096)
    assert d.flags[-1] == "NX" and d.address == 0x1234567000
    big = E.make_entry("x86-64", 0x40000000, E.P | E.RW, large=True)
    assert E.decode("x86-64", "PDPTE", big, leaf=True, page_shift=30, page_size=4096).address == 0x40000000


def test_pae_pdpte_has_only_p_pwt_pcd():
    d = E.decode("pae", "PDPTE", 0x2003019, leaf=False, page_shift=30, page_size=4096)
    assert d.flags == ("P", "PWT", "PCD")
    assert E.is_reserved_violation("pae", "PDPTE", 0x2003003, True) is not None   # R/W is reserved
    assert E.is_reserved_violation("pae", "PDPTE", 0x2003001, True) is None
    assert E.is_reserved_violation("x86-64", "PTE", E.NX | 1, False) is not None  # NX with EFER.NXE=0


def test_no_nx_in_32bit_paging():
    with pytest.raises(ValueError):
        E.make_entry("i386", 0x1000, E.P | E.NX)
