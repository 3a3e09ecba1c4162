"""The emulated kernel: processes, their page tables, page faults, fork, exit and scheduling.

One `Kernel` owns everything of a run (no global state): the CPU (elfvm.emu.cpu), the frames
(elfvm.emu.memory), the page cache, swap, the file system view (elfvm.emu.vfs) and the
processes. Page faults are resolved the kernel's way (elfvm.emu.fault) and mirrored into real
page-table entries of the MMU model (elfvm.mmu.paging.PageTables), one set per process.

Residency, replacement and statistics are the trace engine's (`elfvm.sim.engine.PagingModel`,
one implementation for traces and programs): every reference goes to the model with the fault
kind this kernel decided; when `--frames` is full the model names the victim and this kernel
evicts it (anonymous pages to swap, PTE cleared, CPU TLB flushed). Invariant: a process page is
resident in the model exactly when it has a present PTE here.

Two ways to see references:
  * default: page-granular, at Unicorn's TLB fills (UC_HOOK_TLB_FILL) and the kernel's own
    copies to/from user memory. A fill is one reference to the model, so replacement recency is
    per fill and the model's TLB figures mean nothing (the report leaves them out);
  * exact (--exact-tlb, --emit-trace): UC_HOOK_CODE + UC_HOOK_MEM_READ|WRITE, every instruction
    fetch and data access is a reference (the `lackey` records), the model's TLB is exact.
"""

from __future__ import annotations

import errno
import itertools
import os
from collections import Counter
from dataclasses import dataclass, field, replace

import numpy as np
from unicorn import UC_MEM_FETCH, UC_MEM_WRITE, UcError

from elfvm.emu import fault as F
from elfvm.emu.cpu import GDT_LINEAR, STUB_LINEAR, UNTIL, Cpu, Segments
from elfvm.emu.memory import PAGE, FrameInfo, Frames, OutOfFrames
from elfvm.emu.vdso import vdso_image
from elfvm.emu.vfs import Inode, OpenFile, Vfs
from elfvm.mm.vma import PROT_EXEC, PROT_READ, PROT_WRITE, FileRef, Mm, Vma, page_align, page_start

SIGKILL, SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGABRT, SIGCHLD = 9, 11, 7, 4, 8, 5, 6, 17
SIGNAL_NAMES = {1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT",
                7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 12: "SIGUSR2", 14: "SIGALRM",
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
    code: int = 0           # si_code (SEGV_MAPERR, SEGV_ACCERR, BUS_ADRERR, FPE_INTDIV...)
    trapno: int = 0         # the CPU exception (14: page fault), for the sigcontext
    err: int = 0            # its error code (page fault: P | W | U | I)

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
    mi: int = 0                      # the process's number in the paging model
    set_eax: int | None = None       # return value to put in eax when next scheduled (fork child)
    sigactions: dict = field(default_factory=dict)
    shm_attach: dict = field(default_factory=dict)    # addr -> shmid
    rlimit_stack: int = 8 << 20
    exe: str = ""
    forked_by: int | None = None     # the parent's pid for a forked process (ppid may change)
    sig_blocked: int = 0             # the blocked mask (bit sig-1); elfvm.emu.signals
    sig_pending: dict = field(default_factory=dict)   # sig -> SigInfo
    sig_saved_mask: int | None = None                 # sigsuspend's mask to restore
    sig_altstack: tuple = (0, 2, 0)                   # sigaltstack: sp, flags, size (SS_DISABLE)
    sig_restart: bool = False        # asleep in a system call that re-executes when woken

    @property
    def exit_status(self) -> int | None:
        """As a shell shows it: the exit code, or 128 + the signal."""
        if self.death is not None:
            return 128 + self.death.signal
        return self.exit_code


def _access_of(mem_type: int) -> str:
    return "w" if mem_type == UC_MEM_WRITE else "x" if mem_type == UC_MEM_FETCH else "r"


class Kernel:
    def __init__(self, *, profile, ram: int, model, fault_model: str,
                 geometry, vfs: Vfs, max_instructions: int | None, seed: int | None,
                 stdin: bytes = b"", echo=None, event_limit: int = 100000, folio_pages: int = 1,
                 exact: bool = False, trace=None):
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
        self.frames = Frames(self.uc, ram)
        self.model = model                               # elfvm.sim.engine.PagingModel
        self.exact = exact
        self.trace = trace                               # TraceWriter (--emit-trace) or None
        self.batch = _Batch() if exact else None
        self.pending: dict[tuple[int, int], str] = {}    # (pid, vpn) -> kind of its fault
        self.touched: set[tuple[int, int]] = set()
        self.phys_to_vpn: dict[int, int] = {}            # exact mode: frame -> vpn in the CPU TLB
        self.pages_at_exec = 0
        self.in_mem_hook = False
        self.deferred: set[tuple[int, int]] = set()      # evictions waiting for the CPU to stop
        self.final_stats = None
        self.final_timeline = None                       # with --svg: the timeline at the end
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
        self.tlb_fills = 0
        self.syscall_counts: Counter = Counter()
        self.unknown_syscalls: Counter = Counter()
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.echo = echo
        self.stdin = bytes(stdin)
        self.stop_reason: str | None = None
        self.shm: dict[int, dict] = {}
        self.shmem_ids = itertools.count(1)              # MAP_SHARED|MAP_ANONYMOUS objects
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
        if exact:
            self.cpu.install_exact(self._hook_code, self._hook_mem)
        self.pending_death: Death | None = None
        self.probe_page: tuple[int, int] | None = None   # (vpn, scratch frame) while probing

    # ================================================================ events & accounting
    def _account(self, p: Process, addr: int, access: str, plan_kind: str, handler: str, eip: int,
                 mapped: int = 1, kernel: bool = False) -> None:
        self.event_seq += 1
        if len(self.events) < self.event_limit:
            self.events.append(FaultEvent(self.event_seq, p.pid, addr, access, plan_kind, handler, eip,
                                          mapped, kernel))

    def _model_fault(self, p: Process, vpn: int, kind: str, new_pte: bool) -> None:
        """Tell the model about a fault: one that made a PTE present is counted with the
        reference that follows it (the model takes a frame then); one on a present PTE (COW,
        write after the zero page) needs no frame and is counted now."""
        if new_pte:
            self.pending[(p.pid, vpn)] = kind
        else:
            self.flush_refs()
            self.model.count_fault(p.mi, kind)

    # ================================================================ the paging model
    def reference(self, p: Process, vpn: int, write: bool, instr: bool) -> None:
        """One reference of `p` to page `vpn` (present here): to the paging model, whose
        eviction, if the reference faulted, this kernel then carries out."""
        self.touched.add((p.pid, vpn))
        kind = self.pending.pop((p.pid, vpn), None)
        if self.deferred and (p.mi, vpn) in self.deferred:
            self.flush_refs()                            # back in the model before it left here
            self.model.access(p.mi, vpn, write=write, instr=instr)
            self.deferred.discard((p.mi, vpn))
            return
        if kind is None and self.batch is not None:
            if self.batch.add(p.mi, vpn, write, instr):
                self.flush_refs()
            return
        self.flush_refs()
        a = self.model.access(p.mi, vpn, write=write, instr=instr, fault_kind=kind or "first-touch",
                              refault_kind=kind)
        if a.fault is None and kind is not None:          # pragma: no cover - invariant broken
            self.model.count_fault(p.mi, kind)
        if a.evicted is not None:
            self.evict(*a.evicted)

    def flush_refs(self) -> None:
        """Exact mode: the buffered references (to resident pages: none faults) into the model."""
        if self.batch is not None and self.batch.n:
            self.model.access_many(*self.batch.take())

    def map_page(self, p: Process, vpn: int, dirty: bool = False) -> None:
        """A PTE made present without a reference (fault-around, fork, execve, mremap)."""
        self.flush_refs()
        a = self.model.map(p.mi, vpn, dirty)
        if a is not None and a.evicted is not None:
            self.evict(*a.evicted)

    def evict(self, mi: int, vpn: int) -> None:
        """The model's victim leaves memory (shrink_folio_list -> try_to_unmap): an anonymous
        page's contents go to a swap slot, the PTE is cleared, the CPU's TLB flushed. Page-cache
        and shared pages stay cached; only this mapping goes.

        Inside a memory hook Unicorn is in the middle of an access through its TLB and must
        not see it flushed: the eviction waits until the CPU stops after this instruction
        (`apply_deferred`); a reference to the page before then brings it back in the model,
        and the eviction is called off."""
        if self.in_mem_hook:
            self.deferred.add((mi, vpn))
            self.uc.emu_stop()
            return
        self._evict(mi, vpn)

    def apply_deferred(self) -> None:
        self.flush_refs()
        for mi, vpn in sorted(self.deferred):
            if not self.model.resident(mi, vpn):
                self._evict(mi, vpn)
        self.deferred.clear()

    def _evict(self, mi: int, vpn: int) -> None:
        p = self.by_mi[mi]
        pte = p.ptes.get(vpn)
        if pte is None:                                   # pragma: no cover - invariant broken
            return
        fi = self.frames.info.get(pte.frame)
        if fi is not None and fi.anon and not fi.pinned:
            slot = self.next_slot
            self.next_slot += 1
            self.swap[slot] = self.frames.read(fi.addr, PAGE)
            p.swapped[vpn] = slot
            self.swap_refs[slot] += 1
        self.clear_pte(p, vpn)
        self.flush_cpu_tlb()

    def flush_cpu_tlb(self) -> None:
        self.cpu.flush_tlb()
        self.phys_to_vpn.clear()

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
                self._release(fi)
        g = self.geom
        table = p.pt.table_for(vpn << 12, g.levels - 1, True)
        p.pt.write_entry(p.pt.entry_addr(table, g.levels - 1, vpn << 12), 0)
        return pte

    # ================================================================ frames
    def alloc_frame(self, what: str, *, anon: bool, cache_key=None) -> FrameInfo:
        """A physical frame of --ram (how many process pages may be resident is the model's
        business, not this allocator's)."""
        return self.frames.new(what, anon=anon, cache_key=cache_key)

    def _release(self, fi: FrameInfo) -> None:
        for s, fr in list(self.swap_cache.items()):
            if fr == fi.addr:
                del self.swap_cache[s]
        self.frames.release(fi)

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
                pr = self.profile
                image = vdso_image(vma.size, pr.vdso_vsyscall_offset, pr.vdso_sigreturn_offset,
                                   pr.vdso_rt_sigreturn_offset)
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
            return self._segv(Death(SIGSEGV, addr, access, "address above TASK_SIZE (kernel space)", eip,
                                    code=1), pte_present=False)
        vma = p.mm.vma_at(addr)
        grew = False
        if vma is None:
            vma, why = self.expand_stack(p, addr)
            if vma is None:
                return self._segv(Death(SIGSEGV, addr, access, why, eip, code=1), False)
            grew = True
        if access == "w" and not vma.prot & PROT_WRITE:
            return self._segv(Death(SIGSEGV, addr, access, f"write to a {vma.perms} mapping "
                                                f"{vma.start:#x}-{vma.end:#x}", eip, code=2),
                              vpn in p.ptes)
        if access == "x" and not vma.prot & PROT_EXEC:
            return self._segv(Death(SIGSEGV, addr, access, f"instruction fetch from a non-executable "
                                    f"{vma.perms} mapping {vma.start:#x}-{vma.end:#x}", eip, code=2),
                              vpn in p.ptes)
        if not vma.prot & (PROT_READ | PROT_WRITE | PROT_EXEC):
            return self._segv(Death(SIGSEGV, addr, access, f"access to a PROT_NONE mapping "
                                                f"{vma.start:#x}-{vma.end:#x}", eip, code=2),
                              vpn in p.ptes)
        pte = p.ptes.get(vpn)
        if pte is not None and (access != "w" or pte.write):
            return None                                    # spurious (stale TLB)
        exec_ = bool(vma.prot & PROT_EXEC)
        vma_w = bool(vma.prot & PROT_WRITE)
        if vma.special:
            fr = self.special_frame(vma, pa)
            self.set_pte(p, vpn, Pte(fr, False, exec_))
            self._account(p, addr, access, "first-touch", "special_mapping_fault", eip, 1, kernel)
            self._model_fault(p, vpn, "first-touch", True)
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
                self.flush_cpu_tlb()
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
                return self._segv(Death(SIGBUS, addr, access, f"page {pa:#x} lies beyond the end of "
                                                   f"{vma.file.path} ({ino.size} bytes)", eip, code=2),
                                  False)
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
        self._model_fault(p, vpn, kind, pte is None)
        return None

    @staticmethod
    def _segv(d: Death, pte_present: bool) -> Death:
        """The page fault's trap number and error code (X86_PF_PROT | WRITE | USER | INSTR)."""
        err = (1 if pte_present else 0) | (2 if d.access == "w" else 0) | 4 | (16 if d.access == "x" else 0)
        return replace(d, trapno=14, err=err)

    def do_fault_around(self, p: Process, vma: Vma, ino: Inode, pa: int, npages: int, exec_: bool) -> int:
        """filemap_map_pages() over the do_fault_around() window: map the neighbouring page-cache
        pages that have no PTE yet (read-only), never past EOF. They become resident in the
        model too, while it has a free frame besides the one the faulting page needs (elfvm
        does not evict for fault-around)."""
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
            if self.model.free_frames <= 1:
                break
            fr = self.page_cache_frame(ino, index)
            self.set_pte(p, v, Pte(fr, False, exec_))
            self.map_page(p, v)
            n += 1
        return n

    def shmem_key(self, vma: Vma, pa: int) -> tuple:
        if vma.source.startswith("shm:"):
            return (vma.source, (vma.pgoff + pa - vma.start) >> 12)
        return (f"shmem:{vma.source or vma.vm_id}", (pa - vma.start) >> 12)

    # ================================================================ user memory access
    def _user_page(self, p: Process, addr: int, write: bool, size: int = 1) -> int:
        """copy_to_user / copy_from_user on one page: faults like the CPU's (counted with
        `kernel`), one reference (a lackey record when tracing)."""
        vpn = addr >> 12
        pte = p.ptes.get(vpn)
        if pte is None or (write and not pte.write):
            d = self.fault(p, addr, "w" if write else "r", self.cpu.eip, kernel=True)
            if d is not None:
                raise EFault(d.reason)
            pte = p.ptes[vpn]
        if self.trace is not None:
            self.trace.record(p.pid, "S" if write else "L", addr, size)
        self.reference(p, vpn, write, False)
        return pte.frame

    def read_user(self, p: Process, addr: int, n: int) -> bytes:
        out = bytearray()
        while n > 0:
            take = min(n, PAGE - (addr & (PAGE - 1)))
            fr = self._user_page(p, addr, False, take)
            out += self.frames.read(fr + (addr & (PAGE - 1)), take)
            addr += take
            n -= take
        return bytes(out)

    def write_user(self, p: Process, addr: int, data: bytes) -> None:
        pos = 0
        while pos < len(data):
            take = min(len(data) - pos, PAGE - (addr & (PAGE - 1)))
            fr = self._user_page(p, addr, True, take)
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
        self.by_mi = {0: p}
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
            # resident before the first instruction: execve's own faults, not the run's
            self.map_page(p, pa >> 12, dirty=True)
            self.pages_at_exec += 1
            if self.trace is not None:
                self.trace.record(p.pid, "S", pa, PAGE)

    def fork(self, parent: Process) -> Process:
        """copy_process() -> dup_mmap(): the child gets copies of the VMAs; PTEs are copied only
        for VMAs that have anonymous pages (vma_needs_copy: file pages fault in again); private
        writable pages become read-only in both (copy-on-write)."""
        pid = self.new_pid()
        mm = replace(parent.mm, vmas=list(parent.mm.vmas))
        child = Process(pid, parent.pid, mm, self.new_page_tables(pid), rlimit_stack=parent.rlimit_stack)
        child.mi = self.model.add_process()
        self.by_mi[child.mi] = child
        child.exe = parent.exe
        child.forked_by = parent.pid
        child.tls = dict(parent.tls)
        child.sigactions = dict(parent.sigactions)
        child.sig_blocked = parent.sig_blocked
        child.sig_altstack = parent.sig_altstack
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
                pte = parent.ptes.get(v)
                if pte is None:                 # evicted while the child's pages were mapped
                    continue
                cow = pte.write and not vma.shared
                if cow:
                    self.set_pte(parent, v, Pte(pte.frame, False, pte.exec))
                    changed = True
                self.set_pte(child, v, Pte(pte.frame, False if cow else pte.write, pte.exec))
                self.map_page(child, v)
            for v, slot in parent.swapped.items():
                if lo <= v < hi and v not in child.ptes:
                    child.swapped[v] = slot
                    self.swap_refs[slot] += 1
        if changed:
            self.flush_cpu_tlb()
        child.context = self.uc.context_save()
        child.set_eax = 0
        return child

    def exit_mm(self, p: Process) -> None:
        """exit_mmap(): every PTE goes, frames whose last mapping it was are freed."""
        self.flush_refs()
        for vpn in sorted(p.ptes):
            self.clear_pte(p, vpn)
            self.model.unmap(p.mi, vpn)
        for vpn, slot in p.swapped.items():
            self.model.unmap(p.mi, vpn)
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
        self.flush_refs()
        for v in vpns:
            self.clear_pte(p, v)
            self.model.unmap(p.mi, v)
            changed = True
        for v in [v for v in p.swapped if start >> 12 <= v < end >> 12]:
            slot = p.swapped.pop(v)
            self.swap_refs[slot] -= 1
            self.model.unmap(p.mi, v)
        if changed and p is self.current:
            self.flush_cpu_tlb()

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
        if all(q.state in ("zombie", "reaped") for q in self.procs.values() if q is not p):
            self.flush_refs()                    # the last one: the model as the run ended
            self.final_stats = self.model.stats()
            self.final_timeline = self.model.timeline()
        self.exit_mm(p)
        p.state = "zombie"
        for c in self.procs.values():
            if c.ppid == p.pid:
                c.ppid = 1
        from elfvm.emu.signals import notify_parent

        notify_parent(self, p)
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
        """The CPU's TLB misses `vaddr`: walk (or fault) and hand it the translation. The
        default mode makes this fill one reference of the model; to see the first write to a
        page (its dirty bit) a read fill gets a translation without write permission."""
        k = self.kernel_pages.get(vaddr)
        if k is not None:
            entry.paddr, entry.perms = k
            return True
        p = self.current
        if self.probe_page is not None and vaddr >> 12 == self.probe_page[0]:
            entry.paddr, entry.perms = self.probe_page[1], 7   # signals.fault_address's probe
            return True
        access = _access_of(mem_type)
        vpn = vaddr >> 12
        pte = p.ptes.get(vpn)
        if pte is None or (access == "w" and not pte.write) or (access == "x" and not pte.exec):
            d = self.fault(p, vaddr, access, uc.reg_read(_EIP))
            if d is not None:
                self.pending_death = d
                return False
            pte = p.ptes[vpn]
        self.tlb_fills += 1
        if self.exact:
            other = self.phys_to_vpn.get(pte.frame)
            if other is not None and other != vpn:       # one frame, two pages (zero page...):
                self.flush_cpu_tlb()                     # the hooks' physical addresses must
            self.phys_to_vpn[pte.frame] = vpn            # name one page
            write = pte.write
        else:
            write = pte.write and access == "w"
            self.reference(p, vpn, access == "w", access == "x")
        entry.paddr = pte.frame
        entry.perms = Cpu.perms(write, pte.exec)
        return True

    # ---------------------------------------------------------------- exact mode hooks
    def _hook_code(self, uc, addr: int, size: int, _data) -> None:
        """Every instruction (lackey's `I addr,size`): a fetch reference of each page."""
        p = self.current
        if addr >= p.mm.task_size or self.probe_page is not None:   # iret stub; a signal probe
            return
        self._exact_ref(p, "I", addr, size)

    def _hook_mem(self, uc, mem_type: int, paddr: int, size: int, _value, _data) -> None:
        """Every data access. Unicorn reports the physical address (its TLB is virtual, filled
        by elfvm), so the page comes back from the frame -> page map of the current fills."""
        vpn = self.phys_to_vpn.get(paddr & ~(PAGE - 1))
        if vpn is None or self.probe_page is not None:                                  # GDT, kernel stack: not the program's
            return
        self.in_mem_hook = True
        try:
            self._exact_ref(self.current, "S" if mem_type == UC_MEM_WRITE else "L",
                            (vpn << 12) | (paddr & (PAGE - 1)), size)
        finally:
            self.in_mem_hook = False

    def _exact_ref(self, p: Process, rec: str, addr: int, size: int) -> None:
        if self.trace is not None:
            self.trace.record(p.pid, rec, addr, size)
        write, instr = rec == "S", rec == "I"
        last = (addr + max(size, 1) - 1) >> 12
        for vpn in range(addr >> 12, last + 1):
            pte = p.ptes.get(vpn)
            if pte is None or (write and not pte.write):
                # the second page of a split access (Unicorn fills it after this hook), or code
                # that kept running from a page just evicted: fault it in now, as the CPU would
                a = max(addr, vpn << 12)
                d = self.fault(p, a, "w" if write else "x" if instr else "r", self.cpu.eip)
                if d is not None:
                    self.pending_death = d
                    self.uc.emu_stop()
                    return
            self.reference(p, vpn, write, instr)

    def _interrupt(self, uc, intno: int, _data) -> None:
        p = self.current
        if intno == 0x80:
            from elfvm.emu.syscalls import dispatch

            dispatch(self, p)
            return
        sig = {0: SIGFPE, 6: SIGILL, 3: SIGTRAP, 1: SIGTRAP, 13: SIGSEGV, 12: SIGBUS, 17: SIGBUS}.get(intno, SIGSEGV)
        why = {0: "divide error (#DE)", 6: "invalid opcode (#UD)", 13: "general protection (#GP)",
               3: "breakpoint (int3)"}.get(intno, f"CPU exception {intno}")
        eip = uc.reg_read(_EIP)
        # si_code / si_addr as the trap handlers send them (traps.c): FPE_INTDIV and ILL_ILLOPN
        # at the faulting instruction, BUS_ADRALN for #AC, SI_KERNEL otherwise
        code, addr = {0: (1, eip), 6: (2, eip), 17: (1, 0)}.get(intno, (0x80, None))
        self.pending_death = Death(sig, addr, None, why, eip, code=code, trapno=intno)
        uc.emu_stop()

    # ================================================================ scheduling
    def switch_to(self, p: Process) -> None:
        if self.current is not p or p.context is not None:
            if p.context is not None:
                self.uc.context_restore(p.context)
            if p.set_eax is not None:
                self.cpu.set_return(p.set_eax)
                p.set_eax = None
            self.flush_cpu_tlb()
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
        resume = None
        while True:
            cands = self.runnable()
            if not cands:
                blocked = [q for q in self.procs.values() if q.state == "blocked"]
                for q in blocked:              # nothing can wake them: a deadlock
                    self.do_exit(q, death=Death(SIGKILL, reason="deadlock: every process is blocked"))
                break
            nxt = min(cands, key=lambda q: (q.pid <= order_hint, q.pid)) if begin is None else first
            if resume is not None and resume in cands:
                nxt = resume
            resume = None
            self.switch_to(nxt)
            if begin is None and nxt.sig_pending and not nxt.sig_restart:
                signals.do_signal(self, nxt)           # sent while it was switched away
                if nxt.state in ("zombie", "reaped"):
                    continue
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
                if signals.force_sig_fault(self, nxt, d):
                    resume = nxt                       # the handler runs now
                else:
                    self.do_exit(nxt, death=d)
            except OutOfFrames as e:           # physical memory itself is full: the OOM killer
                self.pending_death = None
                self.do_exit(nxt, death=Death(SIGKILL, reason=f"out of memory: {e}", eip=self.cpu.eip))
            except KeyboardInterrupt:
                self.stop_reason = "interrupted"
                nxt.context = self.uc.context_save()
                return
            if self.pending_death is not None:
                d, self.pending_death = self.pending_death, None
                if signals.force_sig_fault(self, nxt, d):
                    resume = nxt
                else:
                    self.do_exit(nxt, death=d)
            if nxt.state not in ("zombie", "reaped"):
                nxt.context = self.uc.context_save()
            if self.deferred:                  # stopped to evict outside a memory hook
                self.apply_deferred()
                resume = nxt
            if resume is nxt and nxt.state != "runnable":
                resume = None
            order_hint = nxt.pid
            if self.max_instructions and self.cpu.count is not None and \
                    self.cpu.instructions >= self.max_instructions:
                self.stop_reason = "max-instructions"
                return
            if self.stop_reason:
                return


class _Batch:
    """Exact mode's buffer of references to resident pages, fed to the model in one call."""

    SIZE = 1 << 14

    def __init__(self):
        self.procs = np.zeros(self.SIZE, dtype=np.int32)
        self.vpns = np.zeros(self.SIZE, dtype=np.int64)
        self.flags = np.zeros(self.SIZE, dtype=np.uint8)
        self.n = 0

    def add(self, proc: int, vpn: int, write: bool, instr: bool) -> bool:
        """Buffer one reference; True when the buffer is full."""
        n = self.n
        self.procs[n] = proc
        self.vpns[n] = vpn
        self.flags[n] = (1 if write else 0) | (2 if instr else 0)
        self.n = n + 1
        return self.n == self.SIZE

    def take(self):
        n, self.n = self.n, 0
        return self.procs[:n].copy(), self.vpns[:n].copy(), self.flags[:n].copy()


def result_rlimit(result) -> int:
    return getattr(result, "rlimit_stack", None) or 8 << 20


from unicorn.x86_const import UC_X86_REG_EIP as _EIP  # noqa: E402

from elfvm.emu import signals  # noqa: E402  (it needs Death and EFault from here)

__all__ = ["Kernel", "Process", "Pte", "FaultEvent", "Death", "EFault", "errno", "PROT_READ",
           "page_align", "OpenFile"]
