"""Kernel-half boundaries per split, paging mode and RAM size (pgtable_32_areas.h, fixmap.h,
init_32.c), and walks through swapper_pg_dir's direct map, pkmap and fixmap."""

import pytest

from elfvm.kernel.profile import SPLITS, make_profile
from elfvm.mmu import TranslateError, open_address_space
from elfvm.mmu.kernel_half import KernelLayout, KernelConfig

MiB = 1 << 20


@pytest.mark.parametrize("pae, pkmap, vend, last_pkmap", [
    (False, 0xFF000000, 0xFEFFE000, 1024),
    (True, 0xFF600000, 0xFF5FE000, 512),
])
def test_top_windows(pae, pkmap, vend, last_pkmap):
    k = KernelLayout(0xC0000000, pae, 256 * MiB)
    assert k.pkmap_base == pkmap and k.vmalloc_end == vend and k.last_pkmap == last_pkmap
    assert k.pkmap_end == pkmap + last_pkmap * 4096
    assert k.ldt_base == k.pkmap_base + k.pmd_size                       # PKMAP_BASE = (LDT_BASE - 4K) & PMD_MASK
    assert k.vmalloc_end == k.pkmap_base - 2 * 4096
    assert k.fixaddr_top == 0xFFFFF000 and k.fixaddr_tot_start < k.fixaddr_start < k.fixaddr_top


def test_fixmap_enum_sizes():
    k = KernelLayout(0xC0000000, False, 256 * MiB)
    # FIX_HOLE, DBGP, EARLYCON, APIC, 64 IO-APICs, 16*8 kmap slots, PCIE_MCFG -> 197 permanent
    assert k.fixaddr_start == 0xFFFFF000 - 197 * 4096
    assert k.fix_idx["FIX_APIC_BASE"] == 3 and k.fix_to_virt(3) == 0xFFFFC000
    assert (0xFFFFF000 - k.fixaddr_tot_start) // 4096 == 197 + 512   # + early_ioremap btmaps
    kp = KernelLayout(0xC0000000, True, 256 * MiB)                   # PAE: btmaps rounded to 512
    assert (0xFFFFF000 - kp.fixaddr_tot_start) // 4096 == 512 + 512
    more = KernelLayout(0xC0000000, False, 256 * MiB, KernelConfig(nr_cpus=32))
    assert more.fixaddr_start == 0xFFFFF000 - (69 + 16 * 32) * 4096


@pytest.mark.parametrize("split", list(SPLITS))
@pytest.mark.parametrize("ram", [128 * MiB, 512 * MiB, 1024 * MiB, 3072 * MiB])
@pytest.mark.parametrize("pae", [False, True])
def test_lowmem_and_vmalloc(split, ram, pae):
    po = SPLITS[split]
    k = KernelLayout(po, pae, ram)
    maxmem = k.vmalloc_end - po - 128 * MiB                              # MAXMEM
    assert k.maxmem == maxmem
    assert k.lowmem_bytes == min(ram, maxmem // 4096 * 4096)             # max_low_pfn
    assert k.high_memory == po + k.lowmem_bytes
    assert k.vmalloc_start == k.high_memory + 8 * MiB                    # VMALLOC_OFFSET
    assert k.highmem_pages * 4096 == ram - k.lowmem_bytes
    names = [r.name for r in k.regions]
    assert names[0] == "kernel-lowmem" and names[-1] == "fixmap"
    for a, b in zip(k.regions, k.regions[1:]):
        assert a.end == b.start                                          # contiguous to 4 GiB


def test_3g_split_values():
    k = KernelLayout(0xC0000000, False, 1024 * MiB)
    assert k.maxmem == 0x36FFE000                                        # ~880 MiB, not the textbook 896
    assert k.high_memory == 0xF6FFE000 and k.vmalloc_start == 0xF77FE000
    assert KernelLayout(0xC0000000, False, 256 * MiB).high_memory == 0xD0000000


def space(ram="1G", mmu=None, split="3G", cpl=0):
    return open_address_space(profile=make_profile("linux-i386", split), mmu=mmu, ram=int(ram[:-1]) << 30
                              if ram.endswith("G") else int(ram[:-1]) << 20)


def test_direct_map_walks():
    s = space()
    t = s.translate(0xC0400123, "r", 0)                                  # whole PMD: 4 MiB PSE page
    assert t.region == "kernel-lowmem" and t.physical == 0x400123 and t.page_size == 4 << 20
    assert [w.level for w in t.walk] == ["PDE"] and t.walk[0].entry & 0x80
    t = s.translate(0xC0000123, "r", 0)                                  # first PMD: 4 KiB pages
    assert t.physical == 0x123 and len(t.walk) == 2
    t = s.translate(0xC1000010, "x", 0)                                  # kernel text: executable
    assert t.physical == 0x1000010 and t.fault is None
    t = s.translate(0xC1000010, "w", 0)                                  # ... and read-only
    assert t.fault.kind == "kernel-oops" and "WP" in t.fault.reason
    t = s.translate(0xC0400000, "r", 3)                                  # user access to the kernel
    assert t.fault.kind == "sigsegv-maperr" and "supervisor" in t.fault.reason


def test_pae_direct_map_and_nx():
    s = space(mmu="pae")
    t = s.translate(0xC0212345, "r", 0)
    assert t.page_size == 2 << 20 and t.physical == 0x212345
    assert [w.level for w in t.walk] == ["PDPTE", "PDE"]
    t = s.translate(0xC0212345, "x", 0)
    assert t.fault.kind == "kernel-oops" and "NX" in t.fault.reason


def test_vmalloc_pkmap_fixmap():
    s = space()
    k = s.kernel
    t = s.translate(k.vmalloc_start + 0x1000, "r", 0)
    assert t.region == "vmalloc" and t.fault.kind == "kernel-oops"
    t = s.translate(k.pkmap_base + 0x5000, "r", 0)
    assert t.region == "pkmap" and "pkmap slot 5" in t.fault.reason and t.walk[0].present
    t = s.translate(k.fix_to_virt(k.fix_idx["FIX_APIC_BASE"]) + 0x20, "r", 0)
    assert t.region == "fixmap" and t.physical == 0xFEE00020
    assert t.walk[-1].entry & 0x10                                       # PCD: uncached MMIO
    t = s.translate(k.high_memory + 0x1000, "r", 0)
    assert t.region == "kernel-unmapped"


def test_highmem_frames_and_errors():
    s = space(ram="2G")
    assert s.kernel.highmem_pages > 0
    with pytest.raises(TranslateError, match="4-level"):
        open_address_space(profile=make_profile("linux-i386"), mmu="x86-64")
    with pytest.raises(TranslateError, match="at most 4 GiB"):
        open_address_space(profile=make_profile("linux-i386"), mmu="i386", ram=8 << 30)
