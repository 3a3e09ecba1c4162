"""A live process as the address space: /proc/PID/maps for the VMAs, /proc/PID/pagemap for frames.

The kernel's page tables are not readable from user space, so the walk shows the indices the MMU
uses and the leaf entry as pagemap reports it (Documentation/admin-guide/mm/pagemap.rst): present
(bit 63) with the PFN (bits 54:0, zero unless the reader has CAP_SYS_ADMIN), swapped (bit 62),
file-page or shared-anon (bit 61), exclusively mapped (bit 56), soft-dirty (bit 55). The segment
registers and the GDT's TLS entries come from ptrace (PTRACE_GETREGS, PTRACE_GET_THREAD_AREA).
"""

from __future__ import annotations

import ctypes
import os
import struct

from elfvm.elf.reader import EM_386, EM_486, ET_DYN, PT_INTERP, PT_LOAD, ElfFile
from elfvm.host.procfs import PagemapEntry, parse_maps, read_maps, read_stat, rlimit_stack, stat_field
from elfvm.host.ptrace import getregs, ptrace
from elfvm.mm import fault as F
from elfvm.mm.vma import PROT_EXEC, PROT_READ, PROT_WRITE, FileRef, Mm, Vma
from elfvm.mmu.geometry import Geometry, GeometryError
from elfvm.mmu.mmu import TranslateError, Translation, WalkEntry
from elfvm.mmu.segmentation import (
    Segmentation,
    descriptor_from_user_desc,
    entry_registers,
    linux_gdt,
    tls_min,
)
from elfvm.mmu.symbols import Image
from elfvm.units import PAGE_SIZE

PAGE = PAGE_SIZE
PTRACE_GETREGS, PTRACE_DETACH, PTRACE_GET_THREAD_AREA = 12, 17, 25
PTRACE_SEIZE, PTRACE_INTERRUPT = 0x4206, 0x4207


def vmas_of_maps(text: str) -> list[Vma]:
    """The VMAs that /proc/PID/maps lines describe (elfvm.host.procfs.parse_maps)."""
    vmas = []
    for m in parse_maps(text):
        perms, name = m.perms, m.name
        prot = (PROT_READ if perms[0] == "r" else 0) | (PROT_WRITE if perms[1] == "w" else 0) | \
            (PROT_EXEC if perms[2] == "x" else 0)
        file = FileRef(name, m.major, m.minor, m.inode) if m.inode and name.startswith("/") else None
        special = name if name.startswith("[") and name not in ("[stack]", "[heap]") else None
        vmas.append(Vma(m.start, m.end, prot, m.offset if file else 0, file, special,
                        growsdown=name == "[stack]", shared=perms[3] == "s", kind="file" if file else "anon"))
    return vmas


class _UserDesc(ctypes.Structure):
    _fields_ = [("entry_number", ctypes.c_uint), ("base_addr", ctypes.c_uint), ("limit", ctypes.c_uint),
                ("flags", ctypes.c_uint)]


def _ptrace_state(pid: int, tls_first: int) -> tuple[dict[str, int], dict[int, int], str]:
    """Segment registers and the three TLS descriptors of `pid`, via ptrace; ({}, {}, why) if not."""
    attached = False
    try:
        try:
            regs, _ = getregs(pid)          # works when we already trace a stopped child
        except OSError:
            if ptrace(PTRACE_SEIZE, pid, None, None) != 0:
                e = ctypes.get_errno()
                return {}, {}, f"ptrace(PTRACE_SEIZE) failed: {os.strerror(e) if e else 'not permitted'}"
            attached = True
            ptrace(PTRACE_INTERRUPT, pid, None, None)
            os.waitpid(pid, 0x40000000)      # __WALL
            regs, _ = getregs(pid)
        seg = {k: regs[k] & 0xFFFF for k in ("cs", "ds", "es", "fs", "gs", "ss")}
        tls = {}
        for i in range(tls_first, tls_first + 3):
            d = _UserDesc()
            if ptrace(PTRACE_GET_THREAD_AREA, pid, ctypes.c_void_p(i), ctypes.byref(d)) == 0:
                fl = d.flags
                tls[i] = descriptor_from_user_desc(
                    d.base_addr, d.limit, bool(fl & 1), (fl >> 1) & 3, bool(fl >> 3 & 1), bool(fl >> 4 & 1),
                    bool(fl >> 5 & 1), bool(fl >> 6 & 1))
        return seg, tls, ""
    except OSError as e:
        return {}, {}, f"ptrace: {e}"
    finally:
        if attached:
            ptrace(PTRACE_DETACH, pid, None, None)


PF_KTHREAD = 0x00200000           # include/linux/sched.h: task->flags of a kernel thread


def why_unreadable(pid: int, err: OSError) -> str:
    """What is really wrong when /proc/PID/exe cannot be read: a zombie (its mm is gone), a
    kernel thread (it never had an mm), or permission (ptrace access mode check)."""
    try:
        fields = read_stat(pid)
        state, flags = fields[0], stat_field(fields, 9)      # fields 3 (state) and 9 (flags)
    except (OSError, ValueError, IndexError):
        return "the process is gone or unreadable"
    if state in ("Z", "X"):
        return "a zombie: it has exited and its address space is gone (only its exit status remains)"
    if flags & PF_KTHREAD:
        return "a kernel thread: it has no user address space (no mm) to translate in"
    if os.geteuid() != 0:
        return "permission denied: reading another user's process needs that user or root"
    return ("permission denied even as root: ptrace access is refused (another user namespace, "
            "or Yama/LSM policy)")


class LiveAddressSpace:
    """The same translate() interface as AddressSpace, over a running i386 process."""

    def __init__(self, pid: int, geom: Geometry, profile):
        self.pid, self.geom, self.profile = pid, geom, profile
        if not os.path.isdir(f"/proc/{pid}"):
            raise TranslateError(f"--pid {pid}: no such process")
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
            elf = ElfFile(f"/proc/{pid}/exe")
        except OSError as e:
            raise TranslateError(f"--pid {pid}: cannot read /proc/{pid}/exe ({e.strerror}): "
                                 f"{why_unreadable(pid, e)}") from None
        h = elf.ehdr
        if not h.has_magic or h.elf_class != 1 or h.e_machine not in (EM_386, EM_486):
            raise TranslateError(f"--pid {pid}: {exe} is not an i386 (ELFCLASS32, EM_386) program")
        try:
            self.maps_text = read_maps(pid)
        except OSError as e:
            raise TranslateError(f"--pid {pid}: cannot read /proc/{pid}/maps ({e.strerror})") from None
        self.vmas = vmas_of_maps(self.maps_text)
        self.task_size = profile.task_size
        self.notes: list[str] = []
        self.is_root = os.geteuid() == 0
        if not self.is_root:
            self.notes.append("not root: /proc/PID/pagemap shows PFN 0 without CAP_SYS_ADMIN, so physical "
                              "addresses are unknown; present/swapped/exclusive/soft-dirty bits are shown")
        sizes = {}
        for v in self.vmas:
            if v.file is not None and v.file.path not in sizes:
                try:
                    sizes[v.file.path] = os.stat(v.file.path).st_size
                except OSError:
                    pass
        # the mm as /proc/PID/maps shows it, with the host's mmap_min_addr as it is
        self.fault_mm = Mm(self.task_size, mmap_min_addr=profile.host.mmap_min_addr, lsm_mmap_min_addr=0,
                           stack_guard_gap=profile.stack_guard_gap, vmas=list(self.vmas))
        self.rlimit_stack = rlimit_stack(pid)
        self.file_sizes = sizes
        self.images = {}
        self._add_image("main", exe, elf)
        for ph in elf.phdrs():
            if ph.p_type == PT_INTERP:
                ipath = elf.read_at(ph.p_offset, ph.p_filesz).split(b"\0")[0].decode()
                real = os.path.realpath(ipath)
                try:
                    self._add_image("interp", real, ElfFile(real))
                except OSError:
                    pass
        seg, tls, why = _ptrace_state(pid, tls_min(profile.name))
        regs = seg or entry_registers(profile.name)
        if why:
            self.notes.append(f"segment registers unknown ({why}); assuming the values at execve")
        self.seg = Segmentation(linux_gdt(profile.name, tls), None, regs,
                                "read with ptrace" if seg else "assumed (values at execve)")
        try:
            self._pagemap = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise TranslateError(f"--pid {pid}: cannot open /proc/{pid}/pagemap ({e.strerror}): "
                                 f"it needs ptrace access to the process (same user or root)") from None
        self._tlb: dict = {}

    def _add_image(self, key: str, path: str, elf: ElfFile) -> None:
        loads = [p for p in elf.phdrs() if p.p_type == PT_LOAD]
        if not loads:
            return
        real = os.path.realpath(path) if not path.startswith("/proc/") else path
        first = next((v for v in self.vmas if v.file is not None and v.file.path == real and v.pgoff == 0), None)
        if first is None:
            return
        bias = first.start - (loads[0].p_vaddr & ~(PAGE - 1)) if elf.ehdr.e_type == ET_DYN else 0
        self.images[key] = Image(real, elf, bias)

    def classify(self, linear: int, access: str, cpl: int, present: bool, nx: bool, hw: str) -> F.Fault:
        """The kernel's fault decision (elfvm.mm.fault, the emulator's too) for this address space."""
        return F.handle_mm_fault(self.fault_mm, linear, access, pte=F.Pte(present=present), cpl=cpl, nx=nx,
                                 rlimit_stack=self.rlimit_stack, hw=hw,
                                 file_size=lambda v: self.file_sizes.get(v.file.path))

    def close(self) -> None:
        if self._pagemap is not None:
            os.close(self._pagemap)
            self._pagemap = None

    def pagemap(self, addr: int) -> PagemapEntry:
        raw = os.pread(self._pagemap, 8, (addr // PAGE) * 8)
        return PagemapEntry(struct.unpack("<Q", raw)[0] if len(raw) == 8 else 0)

    def vma_at(self, addr: int) -> Vma | None:
        for v in self.vmas:
            if v.start <= addr < v.end:
                return v
        return None

    def translate(self, linear: int, access: str = "r", cpl: int = 3, *, text: str | None = None,
                  virtual: int | None = None, seg=None) -> Translation:
        g = self.geom
        try:
            g.check_linear(linear)
        except GeometryError as e:
            raise TranslateError(str(e)) from None
        if linear > 0xFFFFFFFF:
            raise TranslateError(f"{linear:#x} does not fit the 32-bit linear address space of an i386 task")
        vma = self.vma_at(linear) if linear < self.task_size else None
        region = "user" if vma else ("kernel-unmapped" if linear >= self.task_size else "unmapped")
        idx, _ = g.split(linear)
        notes = list(self.notes)
        pm = self.pagemap(linear) if linear < self.task_size else PagemapEntry(0)
        flags = [n for n in ("present", "swapped", "file_or_shared_anon", "exclusive", "soft_dirty")
                 if getattr(pm, n)]
        leaf_bits = f"pagemap {pm.raw:#018x}: {' '.join(flags) or 'none'}"
        if pm.present:
            leaf_bits += f" pfn={pm.pfn:#x}"
        elif pm.swapped:
            leaf_bits += f" swap type {pm.swap_type} offset {pm.swap_offset:#x}"
        walk = [WalkEntry(n, i, None, True if pm.present else None,
                          "not readable from user space") for n, i in zip(g.level_names[:-1], idx[:-1])]
        leaf_entry = (pm.pfn << 12 | 1) if pm.present else None
        walk.append(WalkEntry(g.level_names[-1], idx[-1], leaf_entry, pm.present, leaf_bits))
        physical = fault = None
        if pm.present and vma is not None:
            allowed = {"r": vma.prot & PROT_READ, "w": vma.prot & PROT_WRITE, "x": vma.prot & PROT_EXEC}[access]
            if not allowed:
                fault = self.classify(linear, access, cpl, True, True,
                                      hw="the page is present but the VMA forbids this access")
            elif pm.pfn:
                physical = pm.pfn * PAGE + (linear & (PAGE - 1))
            else:
                fault = F.Fault("pfn-hidden", "the page is present, but /proc/PID/pagemap shows PFN 0 to a reader "
                                              "without CAP_SYS_ADMIN: run as root to see the frame")
        elif pm.swapped and vma is not None:
            fault = F.Fault("swap-in", f"the page is swapped out (swap type {pm.swap_type}, offset "
                                       f"{pm.swap_offset:#x}): do_swap_page() reads it back into a new frame")
        else:
            fault = self.classify(linear, access, cpl, False, True, hw="no PTE (pagemap: not present)")
        section = symbol = None
        if vma is not None:
            im = next((im for im in self.images.values() if vma.file is not None and im.path == vma.file.path), None)
            if im is None and vma.file is None and self.images.get("main"):
                prev = [v for v in self.vmas if v.end == vma.start and v.file is not None]
                if prev and prev[0].file.path == self.images["main"].path:
                    im = self.images["main"]
            if im is not None:
                section, symbol = im.section_at(linear), im.symbol_at(linear)
        name = None
        if vma is not None:
            name = vma.file.path if vma.file else vma.special or ("[stack]" if vma.growsdown else "")
            for line in self.maps_text.splitlines():
                if line.startswith(f"{vma.start:08x}-"):
                    parts = line.split(None, 5)
                    name = parts[5].strip() if len(parts) > 5 else ""
        return Translation(text if text is not None else f"{linear:#x}", linear if virtual is None else virtual,
                           linear, walk, linear & (PAGE - 1), physical, fault, region, vma, section, symbol,
                           access, cpl, PAGE, seg, notes, name)

    def translate_logical(self, selector: int, offset: int, access: str = "r", cpl: int = 3, *,
                          register: str | None = None, text: str | None = None) -> Translation:
        seg = self.seg.translate(selector, offset, access, cpl, register)
        label = text if text is not None else f"{selector:#x}:{offset:#x}"
        if seg.fault is not None:
            return Translation(label, offset, None, [], None, None, F.Fault(seg.fault.kind, seg.fault.reason, True),
                               "unmapped", None, None, None, access, cpl, PAGE, seg, [])
        return self.translate(seg.linear, access, cpl, text=label, virtual=offset, seg=seg)

    def physical_many(self, lines, access: str = "r", cpl: int = 3) -> list[int | None]:
        out = []
        for s in lines:
            a = int(s, 0) if isinstance(s, str) else s
            out.append(self.translate(a, access, cpl).physical)
        return out
