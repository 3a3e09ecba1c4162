"""Selectors, Linux's GDTs, and every segmentation fault kind (SDM 3.4, 5.5, 5.6)."""

from elfvm.mmu.segmentation import (
    Descriptor, DescriptorTable, Segmentation, Selector, descriptor_from_user_desc, entry_registers,
    gdt_entry, linux_gdt,
)

# What get_thread_area() reported for glibc's TLS entry on this machine (tools: /tmp gs test):
# base = the TCB, limit 0xfffff pages, seg_32bit, limit_in_pages, useable.
TLS = descriptor_from_user_desc(0xF7FC0540, 0xFFFFF, True, 0, False, True, False, True)


def seg(profile="linux-x86_64-compat", tls=None, ldt=None):
    return Segmentation(linux_gdt(profile, tls), ldt, entry_registers(profile))


def test_selector_fields():
    s = Selector(0x63)
    assert (s.index, s.ti, s.rpl) == (12, 0, 3)
    s = Selector(0x0F)
    assert (s.index, s.ti, s.rpl) == (1, 1, 3)


def test_linux_gdt_selectors():
    g = linux_gdt("linux-x86_64-compat")
    assert g.get(0x23 >> 3).name == "__USER32_CS" and g.get(0x2B >> 3).name == "__USER_DS"
    assert g.get(0x33 >> 3).name == "__USER_CS" and g.get(12).name == "TLS #1"
    n = linux_gdt("linux-i386")
    assert n.get(0x73 >> 3).name == "__USER_CS" and n.get(0x7B >> 3).name == "__USER_DS"
    assert n.get(0x33 >> 3).name == "TLS #1" and n.get(0x60 >> 3).name == "__KERNEL_CS"
    assert entry_registers("linux-x86_64-compat") == {"cs": 0x23, "ss": 0x2B, "ds": 0x2B, "es": 0x2B,
                                                       "fs": 0, "gs": 0}


def test_gdt_entry_macro_and_flat_user_code():
    raw = gdt_entry(0xC0FB, 0, 0xFFFFF)
    assert raw == 0x00CFFB000000FFFF
    d = Descriptor(raw)
    assert d.base == 0 and d.limit == 0xFFFFFFFF and d.dpl == 3 and d.is_code and d.readable


def test_flat_translation_and_tls_base():
    s = seg()
    r = s.translate(0x23, 0x8049000, "x", 3, "cs")
    assert r.fault is None and r.linear == 0x8049000
    r = s.translate(0x2B, 0xFFFFDF00, "w", 3, "ds")
    assert r.fault is None and r.linear == 0xFFFFDF00
    s = seg(tls={12: TLS})
    r = s.translate(0x63, 0x14, "r", 3, "gs")
    assert r.fault is None and r.linear == 0xF7FC0554 and r.descriptor.base == 0xF7FC0540
    r = s.translate(0x63, (-4) & 0xFFFFFFFF, "r", 3, "gs")      # a __thread int below the TCB
    assert r.linear == 0xF7FC053C


def test_fault_null_selector():
    r = seg().translate(0, 0x14, "r", 3, "gs")
    assert r.fault.kind == "general-protection" and r.fault.vector == "#GP(0x0)"
    assert "null selector" in r.fault.reason and "SIGSEGV" in r.fault.reason
    assert seg().translate(0, 0, "x", 3, "cs").fault.kind == "general-protection"


def test_fault_ldt_without_ldtr_and_beyond_limit():
    r = seg().translate(0x0F, 0, "r", 3, "ds")
    assert r.fault.kind == "general-protection" and "LDTR is null" in r.fault.reason
    r = seg().translate(0x83, 0, "r", 3, "ds")                   # index 16 > GDT limit 0x7f
    assert r.fault.kind == "general-protection" and "beyond the GDT limit" in r.fault.reason


def test_fault_empty_tls_entry_at_exec():
    r = seg().translate(0x63, 0x14, "r", 3, "gs")
    assert r.fault.kind == "general-protection" and r.fault.vector == "#GP(0x60)"


def test_fault_privilege():
    r = seg().translate(0x1B, 0, "r", 3, "ds")                   # __KERNEL_DS with RPL 3 from CPL 3
    assert r.fault.kind == "general-protection" and "privilege" in r.fault.reason
    r = seg().translate(0x10, 0, "x", 3, "cs")                   # __KERNEL_CS from user mode
    assert r.fault.kind == "general-protection"
    assert seg().translate(0x18, 0x1000, "r", 0, "ds").fault is None


def test_fault_not_present_and_limits_via_ldt():
    ldt = DescriptorTable("LDT", {
        0: Descriptor(gdt_entry(0x0073, 0x1000, 0xFFF)),           # not present (P=0)
        1: Descriptor(gdt_entry(0x40F3, 0x10000, 0xFFF)),          # byte-granular, 4 KiB limit
        2: Descriptor(gdt_entry(0x40F1, 0x10000, 0xFFF)),          # read-only data
    }, 3)
    s = seg(ldt=ldt)
    r = s.translate(0x07, 0, "r", 3, "ds")
    assert r.fault.kind == "segment-not-present" and r.fault.vector == "#NP(0x4)" and "SIGBUS" in r.fault.reason
    r = s.translate(0x07, 0, "r", 3, "ss")
    assert r.fault.kind == "stack-fault"
    r = s.translate(0x0F, 0xFFF, "r", 3, "ds")
    assert r.fault is None and r.linear == 0x10FFF
    r = s.translate(0x0F, 0x1000, "r", 3, "ds")
    assert r.fault.kind == "general-protection" and "limit" in r.fault.reason
    r = s.translate(0x0F, 0x1000, "w", 3, "ss")
    assert r.fault.kind == "stack-fault" and r.fault.vector == "#SS(0x0)"
    r = s.translate(0x17, 0x10, "w", 3, "ds")
    assert r.fault.kind == "general-protection" and "read-only" in r.fault.reason


def test_user_desc_empty_clears():
    assert descriptor_from_user_desc(0, 0, False, 0, True, False, True, False) == 0
    d = Descriptor(TLS)
    assert d.base == 0xF7FC0540 and d.limit == 0xFFFFFFFF and d.dpl == 3 and d.writable and d.present
