"""The emulated kernel: processes, their page tables, page faults, fork, exit and scheduling.

One `Kernel` owns everything of a run (no global state): the CPU (elfvm.emu.cpu), the frames
(elfvm.emu.memory), the page cache, swap, the file system view (elfvm.emu.vfs) and the
processes. Page faults are resolved the kernel's way (elfvm.emu.fault) and mirrored into real
page-table entries of the MMU model (elfvm.mmu.paging.PageTables), one set per process.
"""

from __future__ import annotations

import errno
import os
from collections import Counter
from dataclasses import dataclass, field, replace

from unicorn import UC_MEM_FETCH, UC_MEM_WRITE, UcError

from elfvm.emu import fault as F
from elfvm.emu.cpu import GDT_LINEAR, STUB_LINEAR, UNTIL, Cpu, Segments
from elfvm.emu.memory import PAGE, FrameInfo, Frames, OutOfFrames
from elfvm.emu.vdso import vdso_image
from elfvm.emu.vfs import Inode, OpenFile, Vfs
from elfvm.mm.vma import PROT_EXEC, PROT_READ, PROT_WRITE, FileRef, Mm, Vma, page_align, page_start

SIGKILL, SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGABRT, SIGCHLD = 9, 11, 7, 4, 8, 5, 6, 17
SIGNAL_NAMES = {4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT", 7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL",
                11: "SIGSEGV", 13: "SIGPIPE", 15: "SIGTERM"}
FIRST_PID = 100


@dataclass
class Pte:
    """A present page-table entry (software view; the MMU model holds the real bits)."""

    frame: int
    write: bool
    exec: bool


@dataclass(frozen=True)
class FaultEvent:
    seq: int
    pid: int
    addr: int
    access: str             # r | w | x
    kind: str               # first-touch | zero-page | file | cow | stack-growth | swap-in
    handler: str            # the kernel function that resolved it
    eip: int
    mapped: int = 1         # pages mapped by this fault (fault-around maps several)
    kernel: bool = False    # raised by the kernel copying to/from user memory in a syscall


@dataclass(frozen=True)
class Death:
    """Why a process died of a signal."""

    signal: int
    addr: int | None = None
    access: str | None = None
    reason: str = ""
    eip: int | None = None

    @property
    def name(self) -> str:
        return SIGNAL_NAMES.get(self.signal, f"signal {self.signal}")


class EFault(Exception):
    """copy_to/from_user hit an address that cannot be faulted in: the syscall returns -EFAULT."""


@dataclass
class Process:
    pid: int
    ppid: int
    mm: Mm
    pt: object                       # elfvm.mmu.paging.PageTables
    ptes: dict = field(default_factory=dict)          # vpn -> Pte
    swapped: dict = field(default_factory=dict)       # vpn -> swap slot
    fds: dict = field(default_factory=dict)           # fd -> OpenFile
    cloexec: set = field(default_factory=set)
    context: object = None
    state: str = "runnable"          # runnable | blocked | zombie | reaped
    exit_code: int | None = None
    death: Death | None = None
    tls: dict = field(default_factory=dict)           # GDT index -> descriptor bytes
    tid_address: int = 0
    faults: Counter = field(default_factory=Counter)
    minflt: int = 0
    set_eax: int | None = None       # return value to put in eax when next scheduled (fork child)
    sigactions: dict = field(default_factory=dict)
    shm_attach: dict = field(default_factory=dict)    # addr -> shmid
    rlimit_stack: int = 8 << 20
    exe: str = ""

    @property
    def exit_status(self) -> int | None:
        """As a shell shows it: the exit code, or 128 + the signal."""
        if self.death is not None:
            return 128 + self.death.signal
        return self.exit_code


def _access_of(mem_type: int) -> str:
    return "w" if mem_type == UC_MEM_WRITE else "x" if mem_type == UC_MEM_FETCH else "r"


class Kernel:
    def __init__(self, *, profile, ram: int, frame_limit: int | None, policy: str, fault_model: str,
                 geometry, vfs: Vfs, max_instructions: int | None, seed: int | None,
                 stdin: bytes = b"", echo=None, event_limit: int = 100000, folio_pages: int = 1):
        from elfvm.mmu.geometry import get_geometry
        from elfvm.phys import PhysicalMemory

        self.profile = profile
        self.fault_model = fault_model
        self.folio_pages = folio_pages
        self.geom = get_geometry(geometry) if isinstance(geometry, str) else geometry
        self.ptrs_per_pte = 1 << self.geom.level_bits[-1]
        self.segments = Segments(native_i386=profile.name == "linux-i386")
        self.cpu = Cpu(self.segments)
        self.uc = self.cpu.uc
        self.frames = Frames(self.uc, ram, frame_limit, policy)
        self.ptmem = PhysicalMemory(ram)
        self.vfs = vfs
        self.max_instructions = max_instructions
        self.seed = seed
        self.procs: dict[int, Process] = {}
        self.current: Process | None = None
        self.next_pid = FIRST_PID
        self.page_cache: dict[tuple, int] = {}          # (file key, index) -> frame
        self.file_inodes: dict[FileRef, Inode] = {}
        self.swap: dict[int, bytes] = {}
        self.swap_refs: Counter = Counter()
        self.swap_cache: dict[int, int] = {}             # slot -> frame still resident
        self.next_slot = 0
        self.events: list[FaultEvent] = []
        self.event_limit = event_limit
        self.event_seq = 0
        self.evictions = 0
        self.dirty_evictions = 0
        self.swap_ins = 0
        self.tlb_fills = 0
        self.syscall_counts: Counter = Counter()
        self.unknown_syscalls: Counter = Counter()
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.echo = echo
        self.stdin = bytes(stdin)
        self.stop_reason: str | None = None
        self.shm: dict[int, dict] = {}
        self.clock_ns = 1_700_000_000 * 10**9
        import random

        self.rng = random.Random(seed if seed is not None else 0)
        # kernel pages: GDT, the iret stub + its stack; the zero page; the vDSO image
        self.gdt_frame = self.frames.new("GDT", anon=False, pinned=True).addr
        self.stub_frame = self.frames.new("iret stub", anon=False, pinned=True).addr
        self.kernel_pages = {
            GDT_LINEAR: (self.gdt_frame, 3),
            STUB_LINEAR: (self.stub_frame, 7),
        }
        self.zero_page = self.frames.new("zero page", anon=False, pinned=True).addr
        self.special_frames: dict[str, list[int]] = {}
        self.cpu.install(self._tlb_fill, self._interrupt, max_instructions)
        self.pending_death: Death | None = None
        from collections import deque

        self.recent = deque(maxlen=6)          # frames of the last TLB fills: not evicted

    # ================================================================ events & accounting
    def _account(self, p: Process, addr: int, access: str, plan_kind: str, handler: str, eip: int,
                 mapped: int = 1, kernel: bool = False) -> None:
        p.faults[plan_kind] += 1
        p.minflt += 1
        self.event_seq += 1
        if len(self.events) < self.event_limit:
            self.events.append(FaultEvent(self.event_seq, p.pid, addr, access, plan_kind, handler, eip,
                                          mapped, kernel))

    # ================================================================ page-table mirror
    def set_pte(self, p: Process, vpn: int, pte: Pte) -> None:
        from elfvm.mmu import entries as E

        p.ptes[vpn] = pte
        fi = self.frames.info.get(pte.frame)
        if fi is not None:
            fi.rmap.add((p.pid, vpn))
        flags = E.P | E.US | E.A
        if pte.write:
            flags |= E.RW | E.D
        if not pte.exec and self.geom.nx:
            flags |= E.NX
        p.pt.map(vpn << 12, pte.frame, flags)

    def clear_pte(self, p: Process, vpn: int) -> Pte | None:
        pte = p.ptes.pop(vpn, None)
        if pte is None:
            return None
        fi = self.frames.info.get(pte.frame)
        if fi is not None:
            fi.rmap.discard((p.pid, vpn))
            if not fi.rmap and fi.cache_key is None and not fi.pinned:
                self.frames.release(fi)
        g = self.geom
        table = p.pt.table_for(vpn << 12, g.levels - 1, True)
        p.pt.write_entry(p.pt.entry_addr(table, g.levels - 1, vpn << 12), 0)
        return pte

    # ================================================================ frames
    def alloc_frame(self, what: str, *, anon: bool, cache_key=None) -> FrameInfo:
        while self.frames.full:
            if not self.evict_one():
                break
        try:
            return self.frames.new(what, anon=anon, cache_key=cache_key)
        except OutOfFrames:
            if not self.evict_one():
                raise
            return self.frames.new(what, anon=anon, cache_key=cache_key)

    def evict_one(self) -> bool:
        """The replacement policy's victim leaves memory: dirty anonymous pages go to swap,
        page-cache pages are dropped; every PTE mapping it is cleared (try_to_unmap)."""
        fi = self.frames.victim(frozenset(self.recent))
        if fi is None:
            return False
        slot = None
        if fi.anon:
            slot = self.next_slot
            self.next_slot += 1
            self.swap[slot] = self.frames.read(fi.addr, PAGE)
            self.dirty_evictions += 1
        for pid, vpn in sorted(fi.rmap):
            p = self.procs[pid]
            p.ptes.pop(vpn, None)
            g = self.geom
            table = p.pt.table_for(vpn << 12, g.levels - 1, True)
            p.pt.write_entry(p.pt.entry_addr(table, g.levels - 1, vpn << 12), 0)
            if slot is not None:
                p.swapped[vpn] = slot
                self.swap_refs[slot] += 1
        fi.rmap.clear()
        if fi.cache_key is not None:
            self.page_cache.pop(fi.cache_key, None)
            fi.cache_key = None
        for s, fr in list(self.swap_cache.items()):
            if fr == fi.addr:
                del self.swap_cache[s]
        self.frames.release(fi)
        self.evictions += 1
        self.cpu.flush_tlb()
        return True

    def file_inode(self, ref: FileRef) -> Inode:
        ino = self.file_inodes.get(ref)
        if ino is None:
            ino = self.vfs.lookup(ref.path)
            self.file_inodes[ref] = ino
        return ino

    def page_cache_frame(self, ino: Inode, index: int) -> int:
        key = (ino.key(), index)
        fr = self.page_cache.get(key)
        if fr is None:
            fi = self.alloc_frame(f"page cache {ino.path}#{index}", anon=False, cache_key=key)
            self.frames.fill(fi.addr, ino.pread(index * PAGE, PAGE))
            fr = self.page_cache[key] = fi.addr
        return fr

    def shmem_frame(self, key: tuple) -> int:
        fr = self.page_cache.get(key)
        if fr is None:
            fi = self.frames.new(f"shmem {key}", anon=False, pinned=True, cache_key=key)
            self.frames.fill(fi.addr, b"")
            fr = self.page_cache[key] = fi.addr
        return fr

    def special_frame(self, vma: Vma, addr: int) -> int:
        name = vma.special
        frames = self.special_frames.get(name)
        if frames is None:
            npages = vma.size // PAGE
            frames = []
            image = b""
            if name == "[vdso]":
                image = vdso_image(vma.size, self.profile.vdso_vsyscall_offset)
            for i in range(npages):
                fi = self.frames.new(f"{name} page {i}", anon=False, pinned=True)
                self.frames.fill(fi.addr, image[i * PAGE:(i + 1) * PAGE])
                frames.append(fi.addr)
            self.special_frames[name] = frames
        return frames[(addr - vma.start) // PAGE]

    # ================================================================ page faults
    def expand_stack(self, p: Process, addr: int) -> tuple[Vma | None, str]:
        """expand_downwards(): grow the VM_GROWSDOWN VMA above addr, within RLIMIT_STACK and
        the stack guard gap; otherwise the reason for SIGSEGV."""
        mm = p.mm
        nxt = mm.find_vma(addr)
        if nxt is None or not nxt.growsdown:
            return None, "no mapping at this address"
        new_start = page_start(addr)
        below = [v for v in mm.vmas if v.end <= nxt.start and v is not nxt]
        prev = below[-1] if below else None
        if nxt.end - new_start > p.rlimit_stack:
            return None, (f"stack growth to {new_start:#x} would make the stack "
                          f"{(nxt.end - new_start) >> 10} KiB, over RLIMIT_STACK "
                          f"({p.rlimit_stack >> 10} KiB)")
        if not F.stack_guard_ok(new_start, prev.end if prev else None,
                                bool(prev and prev.prot), mm.stack_guard_gap):
            return None, (f"stack growth to {new_start:#x} would come within the stack guard gap "
                          f"of {prev.start:#x}-{prev.end:#x}")
        new = replace(nxt, start=new_start)
        mm.replace(nxt, new)
        return new, ""

    def fault(self, p: Process, addr: int, access: str, eip: int, kernel: bool = False) -> Death | None:
        """handle_mm_fault() for `p` at `addr`; None when resolved, else the fatal signal."""
        vpn = addr >> 12
        pa = vpn << 12
        if addr >= p.mm.task_size:
            return Death(SIGSEGV, addr, access, "address above TASK_SIZE (kernel space)", eip)
        vma = p.mm.vma_at(addr)
        grew = False
        if vma is None:
            vma, why = self.expand_stack(p, addr)
            if vma is None:
                return Death(SIGSEGV, addr, access, why, eip)
            grew = True
        if access == "w" and not vma.prot & PROT_WRITE:
            return Death(SIGSEGV, addr, access, f"write to a {vma.perms} mapping "
                                                f"{vma.start:#x}-{vma.end:#x}", eip)
        if access == "x" and not vma.prot & PROT_EXEC:
            return Death(SIGSEGV, addr, access, f"instruction fetch from a non-executable {vma.perms} "
                                                f"mapping {vma.start:#x}-{vma.end:#x}", eip)
        if not vma.prot & (PROT_READ | PROT_WRITE | PROT_EXEC):
            return Death(SIGSEGV, addr, access, f"access to a PROT_NONE mapping "
                                                f"{vma.start:#x}-{vma.end:#x}", eip)
        pte = p.ptes.get(vpn)
        if pte is not None and (access != "w" or pte.write):
            return None                                    # spurious (stale TLB)
        exec_ = bool(vma.prot & PROT_EXEC)
        vma_w = bool(vma.prot & PROT_WRITE)
        if vma.special:
            fr = self.special_frame(vma, pa)
            self.set_pte(p, vpn, Pte(fr, False, exec_))
            self._account(p, addr, access, "first-touch", "special_mapping_fault", eip, 1, kernel)
            return None
        anonymous = vma.file is None
        shm_key = getattr(vma, "source", "")
        shared = vma.shared
        fi = self.frames.info.get(pte.frame) if pte else None
        exclusive = bool(fi and fi.anon and len(fi.rmap) == 1 and fi.cache_key is None)
        plan = F.handle_mm_fault(anonymous=anonymous and not shared, shared=shared, vma_writable=vma_w,
                                 access=access, pte_present=pte is not None,
                                 pte_write=bool(pte and pte.write), pte_exclusive_anon=exclusive,
                                 swapped=vpn in p.swapped, model=self.fault_model)
        kind = "stack-growth" if grew else plan.kind
        mapped = 1
        if plan.handler == "do_swap_page":
            slot = p.swapped.pop(vpn)
            fr = self.swap_cache.get(slot)
            if fr is None:
                nfi = self.alloc_frame("swap-in", anon=True)
                self.frames.fill(nfi.addr, self.swap[slot])
                fr = self.swap_cache[slot] = nfi.addr
            self.swap_refs[slot] -= 1
            if self.swap_refs[slot] <= 0:
                self.swap.pop(slot, None)
                self.swap_cache.pop(slot, None)
            self.swap_ins += 1
            excl = len(self.frames.info[fr].rmap) == 0 and self.swap_refs[slot] <= 0
            if access == "w" and not excl:
                # do_swap_page() -> do_wp_page() in the same fault: a private copy
                cfi = self.alloc_frame("cow copy", anon=True)
                self.frames.copy(cfi.addr, fr)
                fr, excl = cfi.addr, True
            self.set_pte(p, vpn, Pte(fr, vma_w and excl, exec_))
            kind = "swap-in"
        elif pte is not None:                               # do_wp_page
            if plan.copy:
                old = pte.frame
                nfi = self.alloc_frame("cow copy", anon=True)
                if old == self.zero_page:
                    self.frames.fill(nfi.addr, b"")
                else:
                    self.frames.copy(nfi.addr, old)
                self.clear_pte(p, vpn)
                self.set_pte(p, vpn, Pte(nfi.addr, True, exec_))
            else:
                self.set_pte(p, vpn, Pte(pte.frame, True, exec_))
            if kernel:
                self.cpu.flush_tlb()
        elif shared and (anonymous or shm_key.startswith("shm:")):
            fr = self.shmem_frame(self.shmem_key(vma, pa))
            self.set_pte(p, vpn, Pte(fr, plan.write or (self.fault_model == "simple" and vma_w), exec_))
        elif anonymous:
            if plan.copy:
                nfi = self.alloc_frame("anon", anon=True)
                self.frames.fill(nfi.addr, b"")
                self.set_pte(p, vpn, Pte(nfi.addr, vma_w, exec_))
            else:
                self.set_pte(p, vpn, Pte(self.zero_page, False, exec_))
        else:
            ino = self.file_inode(vma.file)
            index = (vma.pgoff + (pa - vma.start)) >> 12
            npages = -(-ino.size // PAGE)
            if index >= npages:
                return Death(SIGBUS, addr, access, f"page {pa:#x} lies beyond the end of "
                                                   f"{vma.file.path} ({ino.size} bytes)", eip)
            if plan.copy:                                   # do_cow_fault
                src = self.page_cache_frame(ino, index)
                nfi = self.alloc_frame("cow copy", anon=True)
                self.frames.copy(nfi.addr, src)
                self.set_pte(p, vpn, Pte(nfi.addr, True, exec_))
            else:
                fr = self.page_cache_frame(ino, index)
                self.set_pte(p, vpn, Pte(fr, plan.write, exec_))
                if plan.around:
                    mapped += self.do_fault_around(p, vma, ino, pa, npages, exec_)
        self._account(p, addr, access, kind, plan.handler, eip, mapped, kernel)
        return None

    def do_fault_around(self, p: Process, vma: Vma, ino: Inode, pa: int, npages: int, exec_: bool) -> int:
        """filemap_map_pages() over the do_fault_around() window: map the neighbouring page-cache
        pages that have no PTE yet (read-only), never past EOF."""
        first, last = F.fault_around_range(pa, vma.start, vma.end, self.ptrs_per_pte)
        first, last = F.whole_folios(first, last, vma.start, vma.end, vma.pgoff, self.ptrs_per_pte,
                                     self.folio_pages)
        n = 0
        for a in range(first, last, PAGE):
            v = a >> 12
            if a == pa or v in p.ptes or v in p.swapped:
                continue
            index = (vma.pgoff + (a - vma.start)) >> 12
            if index >= npages:
                continue
            fr = self.page_cache_frame(ino, index)
            self.set_pte(p, v, Pte(fr, False, exec_))
            n += 1
        return n

    def shmem_key(self, vma: Vma, pa: int) -> tuple:
        if vma.source.startswith("shm:"):
            return (vma.source, (vma.pgoff + pa - vma.start) >> 12)
        return (f"shmem:{vma.source or vma.vm_id}", (pa - vma.start) >> 12)

    # ================================================================ user memory access
    def _user_page(self, p: Process, addr: int, write: bool) -> int:
        vpn = addr >> 12
        pte = p.ptes.get(vpn)
        if pte is None or (write and not pte.write):
            d = self.fault(p, addr, "w" if write else "r", self.cpu.eip, kernel=True)
            if d is not None:
                raise EFault(d.reason)
            pte = p.ptes[vpn]
        return pte.frame

    def read_user(self, p: Process, addr: int, n: int) -> bytes:
        out = bytearray()
        while n > 0:
            take = min(n, PAGE - (addr & (PAGE - 1)))
            fr = self._user_page(p, addr, False)
            out += self.frames.read(fr + (addr & (PAGE - 1)), take)
            addr += take
            n -= take
        return bytes(out)

    def write_user(self, p: Process, addr: int, data: bytes) -> None:
        pos = 0
        while pos < len(data):
            take = min(len(data) - pos, PAGE - (addr & (PAGE - 1)))
            fr = self._user_page(p, addr, True)
            self.frames.write(fr + (addr & (PAGE - 1)), data[pos:pos + take])
            addr += take
            pos += take

    def read_cstr(self, p: Process, addr: int, limit: int = 4096) -> bytes:
        out = bytearray()
        while len(out) < limit:
            take = PAGE - (addr & (PAGE - 1))
            chunk = self.read_user(p, addr, take)
            i = chunk.find(b"\0")
            if i >= 0:
                out += chunk[:i]
                return bytes(out)
            out += chunk
            addr += take
        raise EFault("string too long")

    def read_u32(self, p: Process, addr: int) -> int:
        return int.from_bytes(self.read_user(p, addr, 4), "little")

    def write_u32(self, p: Process, addr: int, v: int) -> None:
        self.write_user(p, addr, (v & 0xFFFFFFFF).to_bytes(4, "little"))

    # ================================================================ processes
    def new_pid(self) -> int:
        pid = self.next_pid
        self.next_pid += 1
        return pid

    def new_page_tables(self, pid: int):
        from elfvm.mmu.paging import PageTables

        return PageTables(self.geom, self.ptmem, self.frames.alloc_phys, nxe=True, what=f"pgd of {pid}")

    def spawn(self, result, stdio: dict) -> Process:
        """The process execve() produced: its mm, the pages the kernel wrote, registers."""
        pid = self.new_pid()
        p = Process(pid, 1, result.mm, self.new_page_tables(pid), rlimit_stack=result_rlimit(result))
        p.exe = os.path.abspath(result.program)
        self.procs[pid] = p
        for img in result.images.values():
            self.file_inodes[img.display] = Inode(img.display.path, img.file.path, os.stat(img.file.path))
        p.fds = dict(stdio)
        self._install_exec_pages(p, result)
        self.current = p
        self.frames.write(self.gdt_frame, bytes(self.segments.gdt()))
        begin = self.cpu.enter_user(self.gdt_frame, self.stub_frame, result.eip, result.stack.esp)
        p.context = None
        p.start_at = begin
        return p

    def _install_exec_pages(self, p: Process, result) -> None:
        """The pages present at the first instruction: stack pages with the bytes
        create_elf_tables wrote, and padzero'd bss-tail pages (a COW copy of the file page)."""
        st = result.stack
        tails = {}
        for img in result.images.values():
            for ph in img.phdrs:
                if ph.p_type == 1 and ph.p_memsz > ph.p_filesz and ph.p_filesz:
                    zs = (img.load_bias + ph.p_vaddr + ph.p_filesz) & 0xFFFFFFFF
                    tails[page_start(zs)] = zs
        for pa in sorted(result.present_pages):
            vma = p.mm.vma_at(pa)
            if vma is None:
                continue
            fi = self.alloc_frame("exec", anon=True)
            if vma.growsdown or pa >= st.image_base - PAGE and vma.file is None:
                lo, hi = max(pa, st.image_base), min(pa + PAGE, st.image_base + len(st.image))
                data = bytearray(PAGE)
                if lo < hi:
                    data[lo - pa:hi - pa] = st.image[lo - st.image_base:hi - st.image_base]
                self.frames.write(fi.addr, bytes(data))
            elif vma.file is not None:
                ino = self.file_inode(vma.file)
                index = (vma.pgoff + (pa - vma.start)) >> 12
                data = bytearray(ino.pread(index * PAGE, PAGE).ljust(PAGE, b"\0"))
                zs = tails.get(pa)
                if zs is not None:
                    data[zs - pa:] = bytes(PAGE - (zs - pa))
                self.frames.write(fi.addr, bytes(data))
            else:
                self.frames.fill(fi.addr, b"")
            self.set_pte(p, pa >> 12, Pte(fi.addr, bool(vma.prot & PROT_WRITE), bool(vma.prot & PROT_EXEC)))

    def fork(self, parent: Process) -> Process:
        """copy_process() -> dup_mmap(): the child gets copies of the VMAs; PTEs are copied only
        for VMAs that have anonymous pages (vma_needs_copy: file pages fault in again); private
        writable pages become read-only in both (copy-on-write)."""
        pid = self.new_pid()
        mm = replace(parent.mm, vmas=list(parent.mm.vmas))
        child = Process(pid, parent.pid, mm, self.new_page_tables(pid), rlimit_stack=parent.rlimit_stack)
        child.exe = parent.exe
        child.tls = dict(parent.tls)
        child.sigactions = dict(parent.sigactions)
        child.shm_attach = dict(parent.shm_attach)
        for s in child.shm_attach.values():
            self.shm[s]["nattch"] += 1
        child.fds = dict(parent.fds)
        for f in child.fds.values():
            f.refs += 1
            if f.pipe is not None:
                if f.pipe_end == "r":
                    f.pipe.readers += 1
                else:
                    f.pipe.writers += 1
        child.cloexec = set(parent.cloexec)
        self.procs[pid] = child
        changed = False
        for vma in parent.mm.vmas:
            lo, hi = vma.start >> 12, vma.end >> 12
            vpns = [v for v in range(lo, hi) if v in parent.ptes] if hi - lo < 4 * len(parent.ptes) + 64 \
                else [v for v in sorted(parent.ptes) if lo <= v < hi]
            has_anon = any(self.frames.info.get(parent.ptes[v].frame) is not None
                           and self.frames.info[parent.ptes[v].frame].anon for v in vpns) \
                or any(lo <= v < hi for v in parent.swapped)
            if vma.shared or vma.special or not has_anon:
                continue
            for v in vpns:
                pte = parent.ptes[v]
                cow = pte.write and not vma.shared
                if cow:
                    self.set_pte(parent, v, Pte(pte.frame, False, pte.exec))
                    changed = True
                self.set_pte(child, v, Pte(pte.frame, False if cow else pte.write, pte.exec))
            for v, slot in parent.swapped.items():
                if lo <= v < hi:
                    child.swapped[v] = slot
                    self.swap_refs[slot] += 1
        if changed:
            self.cpu.flush_tlb()
        child.context = self.uc.context_save()
        child.set_eax = 0
        return child

    def exit_mm(self, p: Process) -> None:
        """exit_mmap(): every PTE goes, frames whose last mapping it was are freed."""
        for vpn in sorted(p.ptes):
            self.clear_pte(p, vpn)
        for slot in p.swapped.values():
            self.swap_refs[slot] -= 1
            if self.swap_refs[slot] <= 0:
                self.swap.pop(slot, None)
        p.swapped.clear()
        for addr, shmid in p.shm_attach.items():
            self.shm[shmid]["nattch"] -= 1

    def unmap_range(self, p: Process, start: int, end: int) -> None:
        """zap_page_range(): drop the PTEs of [start, end)."""
        changed = False
        if (end - start) // PAGE < 4 * len(p.ptes) + 64:
            vpns = [v for v in range(start >> 12, end >> 12) if v in p.ptes]
        else:
            vpns = [v for v in sorted(p.ptes) if start >> 12 <= v < end >> 12]
        for v in vpns:
            self.clear_pte(p, v)
            changed = True
        for v in [v for v in p.swapped if start >> 12 <= v < end >> 12]:
            slot = p.swapped.pop(v)
            self.swap_refs[slot] -= 1
        if changed and p is self.current:
            self.cpu.flush_tlb()

    def do_exit(self, p: Process, code: int | None = None, death: Death | None = None) -> None:
        if p.state in ("zombie", "reaped"):
            return
        p.exit_code = code
        p.death = death
        for fd in list(p.fds):
            self.close_fd(p, fd)
        if p.tid_address:
            try:
                self.write_u32(p, p.tid_address, 0)
            except EFault:
                pass
        p.final_resident = set(p.ptes)           # the resident set as the process ended
        self.exit_mm(p)
        p.state = "zombie"
        for c in self.procs.values():
            if c.ppid == p.pid:
                c.ppid = 1
        parent = self.procs.get(p.ppid)
        if parent is not None and parent.state == "blocked":
            parent.state = "runnable"
        if p is self.current:
            self.uc.emu_stop()

    def close_fd(self, p: Process, fd: int) -> bool:
        f = p.fds.pop(fd, None)
        p.cloexec.discard(fd)
        if f is None:
            return False
        f.refs -= 1
        if f.pipe is not None:
            if f.pipe_end == "r":
                f.pipe.readers -= 1
            else:
                f.pipe.writers -= 1
            self.wake_all()
        return True

    def wake_all(self) -> None:
        for q in self.procs.values():
            if q.state == "blocked":
                q.state = "runnable"

    # ================================================================ CPU hooks
    def _tlb_fill(self, uc, vaddr: int, mem_type: int, entry, _data) -> bool:
        k = self.kernel_pages.get(vaddr)
        if k is not None:
            entry.paddr, entry.perms = k
            return True
        p = self.current
        access = _access_of(mem_type)
        vpn = vaddr >> 12
        pte = p.ptes.get(vpn)
        if pte is None or (access == "w" and not pte.write) or (access == "x" and not pte.exec):
            eip = uc.reg_read(_EIP)
            d = self.fault(p, vaddr, access, eip)
            if d is not None:
                self.pending_death = d
                return False
            pte = p.ptes[vpn]
        self.tlb_fills += 1
        self.frames.touch(pte.frame)
        self.recent.append(pte.frame)
        entry.paddr = pte.frame
        entry.perms = Cpu.perms(pte.write, pte.exec)
        return True

    def _interrupt(self, uc, intno: int, _data) -> None:
        p = self.current
        if intno == 0x80:
            from elfvm.emu.syscalls import dispatch

            dispatch(self, p)
            return
        sig = {0: SIGFPE, 6: SIGILL, 3: SIGTRAP, 1: SIGTRAP, 13: SIGSEGV, 12: SIGBUS, 17: SIGBUS}.get(intno, SIGSEGV)
        why = {0: "divide error (#DE)", 6: "invalid opcode (#UD)", 13: "general protection (#GP)",
               3: "breakpoint (int3)"}.get(intno, f"CPU exception {intno}")
        self.pending_death = Death(sig, None, None, why, uc.reg_read(_EIP))
        uc.emu_stop()

    # ================================================================ scheduling
    def switch_to(self, p: Process) -> None:
        if self.current is not p or p.context is not None:
            if p.context is not None:
                self.uc.context_restore(p.context)
            if p.set_eax is not None:
                self.cpu.set_return(p.set_eax)
                p.set_eax = None
            self.cpu.flush_tlb()
            self.load_tls(p)
        self.current = p

    def load_tls(self, p: Process) -> None:
        """switch_to() -> load_TLS(): the TLS descriptors of the next task into the GDT."""
        s = self.segments
        for i in range(s.tls_min, s.tls_min + s.tls_entries):
            self.frames.write(self.gdt_frame + i * 8, p.tls.get(i, bytes(8)))

    def runnable(self) -> list[Process]:
        return [q for q in self.procs.values() if q.state == "runnable"]

    def run(self) -> None:
        """Run every process until all have exited (round-robin at blocking points)."""
        first = self.current
        begin = getattr(first, "start_at", None)
        order_hint = first.pid
        while True:
            cands = self.runnable()
            if not cands:
                blocked = [q for q in self.procs.values() if q.state == "blocked"]
                for q in blocked:              # nothing can wake them: a deadlock
                    self.do_exit(q, death=Death(SIGKILL, reason="deadlock: every process is blocked"))
                break
            nxt = min(cands, key=lambda q: (q.pid <= order_hint, q.pid)) if begin is None else first
            self.switch_to(nxt)
            start = begin if begin is not None else self.cpu.eip
            begin = None
            self.pending_death = None
            budget = 0
            if self.max_instructions:
                done = self.cpu.instructions or 0
                budget = max(self.max_instructions - done, 1)
            try:
                self.uc.emu_start(start, UNTIL, 0, budget)
            except UcError as e:
                d = self.pending_death or Death(SIGSEGV, None, None, f"emulation stopped: {e}", self.cpu.eip)
                self.pending_death = None
                self.do_exit(nxt, death=d)
            except KeyboardInterrupt:
                self.stop_reason = "interrupted"
                nxt.context = self.uc.context_save()
                return
            if self.pending_death is not None:
                d, self.pending_death = self.pending_death, None
                self.do_exit(nxt, death=d)
            if nxt.state not in ("zombie", "reaped"):
                nxt.context = self.uc.context_save()
            order_hint = nxt.pid
            if self.max_instructions and self.cpu.count is not None and \
                    self.cpu.instructions >= self.max_instructions:
                self.stop_reason = "max-instructions"
                return
            if self.stop_reason:
                return


def result_rlimit(result) -> int:
    return getattr(result, "rlimit_stack", None) or 8 << 20


from unicorn.x86_const import UC_X86_REG_EIP as _EIP  # noqa: E402

__all__ = ["Kernel", "Process", "Pte", "FaultEvent", "Death", "EFault", "errno", "PROT_READ",
           "page_align", "OpenFile"]
