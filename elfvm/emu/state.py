"""The emulated kernel's state: one `KernelState` per run, and the task list in it.

Plain state, no behaviour: the kernel's code lives in the modules above it, each taking this
object as its first argument `k` (bottom to top: task, sigstate, state, pages, fault, uaccess,
exit, fork, exec, signals, sys_fs/sys_mm/sys_process/sys_ipc/sys_time/sys_timer/sys_info, syscalls,
entry, sched). The CPU hooks are installed by elfvm.emu.entry.install_hooks.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter

from elfvm.emu.cpu import GDT_LINEAR, STUB_LINEAR, Cpu, Segments
from elfvm.emu.memory import PAGE, Frames
from elfvm.emu.task import FIRST_PID, Death, FaultEvent, Process
from elfvm.emu.vfs import GuestOutput, Inode, Vfs
from elfvm.mm.vma import FileRef
from elfvm.mmu.geometry import get_geometry
from elfvm.mmu.machine import machine_frames
from elfvm.phys import KernelImage, MappedMemory, SwapDevice


class KernelState:
    """Everything of one run (no global state): the CPU (elfvm.emu.cpu), the frames
    (elfvm.emu.memory), the page cache, swap, the file system view (elfvm.emu.vfs) and the
    processes."""

    def __init__(self, *, profile, ram: int, headroom: int = 0, model, fault_model: str,
                 geometry, vfs: Vfs, max_instructions: int | None, seed: int | None,
                 stdin: bytes = b"", echo=None, event_limit: int = 100000, folios,
                 exact: bool = False, trace=None, clock_ns: int | None = None,
                 threads_max: int = 1 << 22):
        self.profile = profile
        self.fault_model = fault_model
        self.folios = folios                             # elfvm.emu.folios.PageCacheFolios
        self.model = model                               # elfvm.sim.engine.PagingModel
        self.model_ram = ram                             # --ram: the paging model's frames
        self.vfs = vfs
        self.max_instructions = max_instructions
        self.seed = seed
        self.rng = random.Random(seed if seed is not None else 0)
        self.threads_max = threads_max                   # kernel.threads-max: fork's -EAGAIN
        self._init_machine(geometry, ram, headroom)
        self._init_kernel_pages()
        self._init_exact_mode(exact, trace)
        self._init_mm()
        self._init_tasks()
        self._init_io(stdin, echo, event_limit, clock_ns)

    def _init_machine(self, geometry, ram: int, headroom: int) -> None:
        """The CPU, its segments and paging geometry, and the one physical memory."""
        self.geom = get_geometry(geometry) if isinstance(geometry, str) else geometry
        self.ptrs_per_pte = 1 << self.geom.level_bits[-1]
        self.segments = Segments(native_i386=self.profile.name == "linux-i386")
        self.cpu = Cpu(self.segments)
        self.uc = self.cpu.uc
        self.mem = MappedMemory(ram + headroom)          # the one physical memory
        # the allocator `translate` predicts with: the same exec image, the same frames
        self.frames = Frames(self.uc, self.mem,
                             machine_frames(self.geom, self.profile, ram, headroom=headroom))

    def _init_kernel_pages(self) -> None:
        """Kernel pages live in the kernel image, not in frames the allocator hands out: the
        iret stub + its stack at the end of the text; CPU 0's GDT where translate's kernel half
        maps it (cpu_entry_area: the IDT page, then CPU 0's GDT, at the start of the data);
        the zero page (empty_zero_page) at the end of the bss."""
        image = KernelImage()
        self.stub_frame = self.frames.kernel_page("iret stub (entry text)", image.etext - PAGE).addr
        self.gdt_frame = self.frames.kernel_page("GDT (gdt_page)", image.erodata + PAGE).addr
        self.zero_page = self.frames.kernel_page("empty_zero_page", image.end - PAGE).addr
        self.kernel_pages = {GDT_LINEAR: (self.gdt_frame, 3), STUB_LINEAR: (self.stub_frame, 7)}
        self.special_frames: dict[str, list[int]] = {}

    def _init_exact_mode(self, exact: bool, trace) -> None:
        """--exact-tlb's bookkeeping: the reference batch and the CPU TLB as the model sees it."""
        self.exact = exact
        self.trace = trace                               # TraceWriter (--emit-trace) or None
        self.batch = RefBatch() if exact else None
        self.fast = None                                 # exact mode's native hooks (emu.exactrefs)
        self.phys_to_vpn: dict[int, int] = {}            # exact mode: frame -> vpn in the CPU TLB
        self.cpu_tlb: dict[int, bool] = {}               # exact mode: vpn in the CPU TLB -> writable
        self.in_mem_hook = False
        self.probe_page: tuple[int, int] | None = None   # (vpn, scratch frame) while probing

    def _init_mm(self) -> None:
        """Faults, the page cache, swap and shared memory: what the memory manager keeps."""
        self.pending: dict[tuple[int, int], str] = {}    # (pid, vpn) -> kind of its fault
        self.touched: set[tuple[int, int]] = set()
        self.deferred: set[tuple[int, int]] = set()      # evictions waiting for the CPU to stop
        self.pages_at_exec = 0
        self.tlb_fills = 0
        self.page_cache: dict[tuple, int] = {}          # (file key, index) -> frame
        self.file_inodes: dict[FileRef, Inode] = {}
        self.swap = SwapDevice(PAGE)                     # swapped pages: a temporary file
        self.swap_refs: Counter = Counter()              # swap_map: PTEs naming each slot
        self.swap_cache: dict[int, int] = {}             # slot -> frame still resident
        self.shm: dict[int, dict] = {}
        self.shmem_ids = itertools.count(1)              # MAP_SHARED|MAP_ANONYMOUS objects

    def _init_tasks(self) -> None:
        self.procs: dict[int, Process] = {}
        self.current: Process | None = None
        self.next_pid = FIRST_PID
        self.pending_death: Death | None = None
        self.stop_reason: str | None = None
        self.final_stats = None
        self.final_timeline = None                       # with --svg: the timeline at the end

    def _init_io(self, stdin: bytes, echo, event_limit: int, clock_ns: int | None) -> None:
        """What the run reports and the guest sees of the world: output, events, the clock."""
        self.events: list[FaultEvent] = []
        self.event_limit = event_limit
        self.event_seq = 0
        self.syscall_counts: Counter = Counter()
        self.unknown_syscalls: Counter = Counter()
        self.stdout = GuestOutput()
        self.stderr = GuestOutput()
        self.echo = echo
        self.stdin = bytes(stdin)
        self.clock_ns = clock_ns if clock_ns is not None else 1_700_000_000 * 10**9
        self.timers: list = []                           # elfvm.emu.sys_timer.Timer
        self.boot_ns = self.clock_ns - 1000 * 10**9     # sysinfo's uptime


class RefBatch:
    """Exact mode's buffer of references to resident pages, fed to the model in one call.
    The count lives in an array, not an attribute: the native hooks (elfvm.emu.exactrefs)
    append to the same arrays. numpy arrays: the model's compiled kernels take them (only
    --exact-tlb makes a batch, so only it imports numpy here)."""

    SIZE = 1 << 16

    def __init__(self):
        import numpy as np

        self.procs = np.zeros(self.SIZE, dtype=np.int32)
        self.vpns = np.zeros(self.SIZE, dtype=np.int64)
        self.flags = np.zeros(self.SIZE, dtype=np.uint8)
        self.count = np.zeros(1, dtype=np.int64)

    @property
    def n(self) -> int:
        return int(self.count[0])

    def add(self, proc: int, vpn: int, write: bool, instr: bool) -> bool:
        """Buffer one reference; True when the buffer is full."""
        n = int(self.count[0])
        self.procs[n] = proc
        self.vpns[n] = vpn
        self.flags[n] = (1 if write else 0) | (2 if instr else 0)
        self.count[0] = n + 1
        return n + 1 == self.SIZE

    def take(self):
        """The buffered references (views: used before the next add) and an empty buffer."""
        n = int(self.count[0])
        self.count[0] = 0
        return self.procs[:n], self.vpns[:n], self.flags[:n]


def result_rlimit(result) -> int:
    return getattr(result, "rlimit_stack", None) or 8 << 20
