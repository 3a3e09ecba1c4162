"""The kernel half of a native i386 address space, computed the way the kernel computes it.

Sources (Linux 6.x): arch/x86/include/asm/pgtable_32_areas.h (VMALLOC_OFFSET, VMALLOC_START/END,
PKMAP_BASE, LDT_BASE_ADDR, CPU_ENTRY_AREA_BASE, MAXMEM), asm/fixmap.h (enum fixed_addresses,
FIXADDR_TOP = __FIXADDR_TOP = 0xfffff000, FIXADDR_TOT_START), asm/cpu_entry_area.h,
arch/x86/mm/pgtable_32.c (__VMALLOC_RESERVE = 128 MiB), arch/x86/mm/init_32.c
(find_low_pfn_range: max_low_pfn = min(max_pfn, MAXMEM_PFN); high_memory = __va(max_low_pfn)),
arch/x86/mm/init.c split_mem_range() (the direct map: 4 KiB pages for the first PMD, large pages
after) and init_32.c kernel_physical_mapping_init().

From the top of the 4 GiB down::

    FIXADDR_TOP (0xfffff000) .. FIXADDR_TOT_START   fixmap (compile-time slots, kmap_local)
    .. CPU_ENTRY_AREA_BASE                           cpu_entry_area (per-CPU GDT, TSS, stacks)
    LDT_BASE_ADDR .. +PMD_SIZE                       LDT remap (PTI only)
    PKMAP_BASE .. +LAST_PKMAP pages                  pkmap: kmap() of highmem pages
    VMALLOC_END = PKMAP_BASE - 2 pages
    VMALLOC_START = high_memory + 8 MiB              vmalloc / ioremap / modules
    high_memory = PAGE_OFFSET + lowmem               end of the lowmem direct map
    PAGE_OFFSET                                      lowmem: physical = virtual - PAGE_OFFSET

The textbook "896 MiB" of lowmem is 1 GiB minus the 128 MiB vmalloc reserve; the real MAXMEM is
smaller because VMALLOC_END lies below the pkmap, LDT, cpu_entry_area and fixmap windows.

The kernel configuration is a model input (`KernelConfig`); the defaults are those of an i386
defconfig with HIGHMEM (NR_CPUS=8, local APIC and IO-APIC, PCI_MMCONFIG).
"""


from dataclasses import dataclass, field

from elfvm.mmu import entries as E
from elfvm.phys.frames import KernelImage
from elfvm.units import PAGE_SIZE

PAGE = PAGE_SIZE
MiB = 1 << 20
VMALLOC_OFFSET = 8 * MiB
VMALLOC_RESERVE = 128 * MiB        # __VMALLOC_RESERVE (vmalloc= on the command line changes it)
FIXADDR_TOP = 0xFFFFF000           # __FIXADDR_TOP, arch/x86/mm/pgtable_32.c
LOCAL_APIC_PHYS = 0xFEE00000       # APIC_DEFAULT_PHYS_BASE
IO_APIC_PHYS = 0xFEC00000          # the first IO-APIC as firmware reports it


@dataclass(frozen=True, repr=False)
class KernelConfig:
    """The .config values the layout depends on."""

    nr_cpus: int = 8                   # CONFIG_NR_CPUS (NR_CPUS_DEFAULT for X86_32)
    local_apic: bool = True            # CONFIG_X86_LOCAL_APIC
    io_apic: bool = True               # CONFIG_X86_IO_APIC; MAX_IO_APICS is 64 on X86_32
    max_io_apics: int = 64
    kmap_local: bool = True            # CONFIG_KMAP_LOCAL (selected by HIGHMEM)
    km_max_idx: int = 16               # KM_MAX_IDX (asm-generic/kmap_size.h, no DEBUG_KMAP_LOCAL)
    pci_mmconfig: bool = True
    paravirt_xxl: bool = False
    apei_ghes: bool = False
    intel_txt: bool = False
    ohci1394_dma_init: bool = False
    # sizeof(struct cpu_entry_area) in pages on X86_32: GDT page, entry stack page, TSS with the
    # I/O bitmap (5 pages), doublefault stack, Intel debug store + BTS/PEBS buffers (1 + 32).
    cea_pages_per_cpu: int = 41


def _fixmap(cfg: KernelConfig, ptrs_per_pte: int) -> tuple[dict[str, int], int, int]:
    """enum fixed_addresses (asm/fixmap.h) for X86_32: slot indices, the end of the permanent
    slots and __end_of_fixed_addresses."""
    idx: dict[str, int] = {}
    n = 0

    def add(name: str, count: int = 1) -> None:
        nonlocal n
        idx[name] = n
        n += count

    add("FIX_HOLE")
    add("FIX_DBGP_BASE")
    add("FIX_EARLYCON_MEM_BASE")
    if cfg.ohci1394_dma_init:
        add("FIX_OHCI1394_BASE")
    if cfg.local_apic:
        add("FIX_APIC_BASE")
    if cfg.io_apic:
        add("FIX_IO_APIC_BASE_0", cfg.max_io_apics)
    if cfg.kmap_local:
        add("FIX_KMAP_BEGIN", cfg.km_max_idx * cfg.nr_cpus)
        if cfg.pci_mmconfig:
            add("FIX_PCIE_MCFG")
    if cfg.paravirt_xxl:
        add("FIX_PARAVIRT_BOOTMAP")
    if cfg.apei_ghes:
        add("FIX_APEI_GHES_IRQ")
        add("FIX_APEI_GHES_NMI")
    end_perm = n
    total_btmaps = 64 * 8                                   # NR_FIX_BTMAPS * FIX_BTMAPS_SLOTS
    if (end_perm ^ (end_perm + total_btmaps - 1)) & -ptrs_per_pte:
        btmap_end = end_perm + total_btmaps - (end_perm & (total_btmaps - 1))
    else:
        btmap_end = end_perm
    idx["FIX_BTMAP_END"] = btmap_end
    idx["FIX_BTMAP_BEGIN"] = btmap_end + total_btmaps - 1
    n = btmap_end + total_btmaps
    if cfg.intel_txt:
        add("FIX_TBOOT_BASE")
    return idx, end_perm, n


@dataclass(frozen=True, repr=False)
class Region:
    """A region of the kernel half of the address space."""

    name: str           # JSON region: kernel-lowmem | vmalloc | pkmap | fixmap | kernel-unmapped
    start: int
    end: int
    what: str


@dataclass(repr=False)
class KernelLayout:
    """The boundaries of the kernel half for one PAGE_OFFSET, paging mode and RAM size."""

    page_offset: int
    pae: bool
    ram: int
    cfg: KernelConfig = field(default_factory=KernelConfig)
    image: KernelImage = field(default_factory=KernelImage)

    def __post_init__(self):
        self.pmd_size = (2 if self.pae else 4) * MiB
        pmd_mask = ~(self.pmd_size - 1) & 0xFFFFFFFF
        ptrs_per_pte = 512 if self.pae else 1024
        self.last_pkmap = 512 if self.pae else 1024
        self.fix_idx, end_perm, end_all = _fixmap(self.cfg, ptrs_per_pte)
        self.fixaddr_top = FIXADDR_TOP
        self.fixaddr_start = FIXADDR_TOP - end_perm * PAGE
        self.fixaddr_tot_start = FIXADDR_TOP - end_all * PAGE
        cea_pages = self.cfg.nr_cpus * self.cfg.cea_pages_per_cpu
        self.cpu_entry_area_base = (self.fixaddr_tot_start - PAGE * (cea_pages + 1)) & pmd_mask
        self.cpu_entry_area_end = self.cpu_entry_area_base + PAGE * (cea_pages + 1)
        self.ldt_base = (self.cpu_entry_area_base - PAGE) & pmd_mask
        self.ldt_end = self.ldt_base + self.pmd_size
        self.pkmap_base = (self.ldt_base - PAGE) & pmd_mask
        self.pkmap_end = self.pkmap_base + self.last_pkmap * PAGE
        self.vmalloc_end = self.pkmap_base - 2 * PAGE                # CONFIG_HIGHMEM
        self.maxmem = self.vmalloc_end - self.page_offset - VMALLOC_RESERVE
        max_pfn = self.ram // PAGE
        maxmem_pfn = self.maxmem // PAGE
        self.max_low_pfn = min(max_pfn, maxmem_pfn)                  # find_low_pfn_range()
        self.highmem_pages = max_pfn - self.max_low_pfn
        self.lowmem_bytes = self.max_low_pfn * PAGE
        self.high_memory = self.page_offset + self.lowmem_bytes
        self.vmalloc_start = self.high_memory + VMALLOC_OFFSET
        self.regions = [
            Region("kernel-lowmem", self.page_offset, self.high_memory,
                   "lowmem direct map: physical = virtual - PAGE_OFFSET (__pa/__va)"),
            Region("kernel-unmapped", self.high_memory, self.vmalloc_start,
                   "VMALLOC_OFFSET: the 8 MiB guard hole after the direct map"),
            Region("vmalloc", self.vmalloc_start, self.vmalloc_end,
                   "vmalloc/ioremap/modules: page by page, not physically contiguous"),
            Region("kernel-unmapped", self.vmalloc_end, self.pkmap_base,
                   "2-page guard between VMALLOC_END and PKMAP_BASE"),
            Region("pkmap", self.pkmap_base, self.pkmap_end,
                   f"pkmap: {self.last_pkmap} kmap() slots for highmem pages"),
            Region("kernel-unmapped", self.pkmap_end, self.ldt_base, "unused"),
            Region("kernel-unmapped", self.ldt_base, self.ldt_end,
                   "LDT remap (LDT_BASE_ADDR): only populated with page-table isolation"),
            Region("kernel-unmapped", self.ldt_end, self.cpu_entry_area_base, "unused"),
            Region("fixmap", self.cpu_entry_area_base, self.cpu_entry_area_end,
                   "cpu_entry_area (part of the fixmap until 4.15): read-only IDT, per-CPU GDT, TSS, entry stack"),
            Region("kernel-unmapped", self.cpu_entry_area_end, self.fixaddr_tot_start, "unused"),
            Region("fixmap", self.fixaddr_tot_start, 1 << 32,
                   "fixmap: compile-time virtual slots (APIC, IO-APIC, kmap_local, early_ioremap)"),
        ]
        self.regions = [r for r in self.regions if r.end > r.start]

    def region(self, addr: int) -> Region | None:
        for r in self.regions:
            if r.start <= addr < r.end:
                return r
        return None

    def fix_to_virt(self, idx: int) -> int:
        return self.fixaddr_top - idx * PAGE

    def fixmap_slot(self, addr: int) -> str | None:
        """The enum fixed_addresses name of a fixmap address."""
        if not self.fixaddr_tot_start <= addr < 1 << 32:
            return None
        i = (self.fixaddr_top - (addr & ~(PAGE - 1))) // PAGE
        best = None
        for name, start in sorted(self.fix_idx.items(), key=lambda kv: kv[1]):
            if start <= i:
                best = (name, i - start)
        if best is None:
            return None
        name, off = best
        return name if off == 0 else f"{name}+{off}"

    def is_highmem_frame(self, phys: int) -> bool:
        return phys >= self.lowmem_bytes

    def rows(self) -> list[tuple[str, int, int, str]]:
        return [(r.name, r.start, r.end, r.what) for r in self.regions]

    # --- swapper_pg_dir: the kernel's own mappings, shared by every process -------------
    def populate(self, pt) -> None:
        """Write the kernel half into page tables `pt` (PageTables of geometry i386 or pae).

        kernel_physical_mapping_init() with split_mem_range(): the first PMD of lowmem with 4 KiB
        pages (MTRR trouble), whole PMDs with PSE large pages, the tail with 4 KiB pages. The PMDs
        holding the kernel image are split to 4 KiB pages by mark_rodata_ro(): text read-only and
        executable, rodata read-only, data and the rest NX. Then the pkmap page table
        (permanent_kmaps_init) and the fixmap's page tables with the local APIC and IO-APIC slots.
        """
        nx = E.NX if pt.nxe else 0
        g = pt.geom
        pmd_level = g.levels - 2                      # the PDE level (large pages)
        lowmem = self.lowmem_bytes
        img = self.image
        split = {pmd for pmd in range(img.start // self.pmd_size * self.pmd_size, img.end, self.pmd_size)}

        def prot4k(phys: int) -> int:
            if img.start <= phys < img.etext:
                return E.PAGE_KERNEL_RO | 0               # PAGE_KERNEL_ROX
            if img.etext <= phys < img.erodata:
                return E.PAGE_KERNEL_RO | nx
            return E.PAGE_KERNEL | nx

        phys = 0
        while phys < lowmem:
            virt = self.page_offset + phys
            pmd_start = phys - phys % self.pmd_size
            whole = pmd_start + self.pmd_size <= lowmem
            if phys == pmd_start and whole and pmd_start != 0 and pmd_start not in split:
                pt.map(virt, phys, E.PAGE_KERNEL | nx, level=pmd_level, user=False)
                phys += self.pmd_size
                continue
            pt.map(virt, phys, prot4k(phys), user=False, what="kernel page table")
            phys += PAGE
        # pkmap: one page table, no entries until kmap() (mm/highmem.c map_new_virtual).
        pt.table_for(self.pkmap_base, g.levels - 1, user=False, what="pkmap page table")
        # fixmap: page tables for the whole range, a few slots set at boot.
        addr = self.fixaddr_tot_start & ~(self.pmd_size - 1)
        while addr < (1 << 32):
            pt.table_for(addr, g.levels - 1, user=False, what="fixmap page table")
            addr += self.pmd_size
        uc = E.PAGE_KERNEL | E.PCD | nx                    # FIXMAP_PAGE_NOCACHE (UC-)
        if "FIX_APIC_BASE" in self.fix_idx:
            pt.map(self.fix_to_virt(self.fix_idx["FIX_APIC_BASE"]), LOCAL_APIC_PHYS, uc, user=False)
        if "FIX_IO_APIC_BASE_0" in self.fix_idx:
            pt.map(self.fix_to_virt(self.fix_idx["FIX_IO_APIC_BASE_0"]), IO_APIC_PHYS, uc, user=False)
        # cpu_entry_area: the read-only IDT page (idt_table in kernel data) and, per CPU, the
        # GDT page (read-only alias), then the rest (entry stack, TSS, stacks, debug store).
        data0 = img.erodata
        pt.map(self.cpu_entry_area_base, data0, E.PAGE_KERNEL_RO | nx, user=False,
               what="cpu_entry_area page table")
        per_cpu = self.cfg.cea_pages_per_cpu
        for cpu in range(self.cfg.nr_cpus):
            for i in range(per_cpu):
                virt = self.cpu_entry_area_base + PAGE * (1 + cpu * per_cpu + i)
                phys = data0 + PAGE * (1 + cpu * per_cpu + i)
                if phys >= img.end:
                    phys = data0 + PAGE * (1 + i)
                pt.map(virt, phys, (E.PAGE_KERNEL_RO if i == 0 else E.PAGE_KERNEL) | nx, user=False,
                       what="cpu_entry_area page table")
