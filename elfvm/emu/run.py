"""`simulate-run PROGRAM`: load a real i386 program with elfvm's loader and run it.

`run_program(RunOptions) -> RunReport` is the library entry point; elfvm.render.program renders it.
The process is built by elfvm's execve (elfvm.kernel.binfmt_elf), exactly as `layout` predicts;
a program execve would refuse gets the layout verdict instead of a run (ProgramRejected).
"""


import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from elfvm.errors import ElfvmError, UsageError

EXIT_MAX_INSTRUCTIONS = 5
# Physical memory behind the model's --ram: the model limits resident process pages; the page
# cache, page tables and kernel pages live beside them, as they do beside a process's RSS.
PHYS_HEADROOM = 64 << 20


class ProgramRejected(ElfvmError):
    """execve() would fail (exit 3, an errno) or kill the process (exit 4): no run."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(repr=False, eq=False)
class RunOptions:
    """What `simulate-run PROGRAM` was asked to run, and how (the command's options). Built once
    per run and only read: not frozen (a frozen class of 33 fields costs ~0.35 ms more to create
    at every start-up)."""

    program: str
    args: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    sysroot: str = "/"
    ram: int = 256 << 20
    frames: int | None = None            # resident process pages (--frames); default RAM / 4 KiB
    policy: str = "fifo"
    fault_model: str = "linux"           # linux | simple
    mmu: str = "x86-64"
    stdin: bytes = b""
    stdin_path: str | None = None        # --stdin FILE: a regular file on fd 0 (as `prog < FILE`)
    clock: str = "host"                  # host | fixed | SECONDS since the epoch: the clock's start
    write_dir: str | None = None
    max_instructions: int | None = None
    rlimit_stack: int = 8 << 20
    seed: int | None = None
    quiet: bool = True
    echo: object = None                  # callable(is_stderr, bytes) to show output live
    event_limit: int = 100000
    cwd: str | None = None
    page_cache: str = "model"            # folio sizes for fault-around: model | live (elfvm.emu.folios)
    exact: bool = False                  # a reference per access (--exact-tlb; --emit-trace)
    emit_trace: str | None = None        # lackey trace of the run's references
    tlb_entries: int = 64
    tlb_ways: int | None = None
    split_tlb: bool = False
    asid: bool = False
    walk_levels: int | None = None       # default: the --mmu's levels
    tlb_ns: float = 20.0
    mem_ns: float = 100.0
    timeline_bins: int = 0               # > 0: sample the run's timeline (--svg)
    progress: object = None              # callable(instructions, page faults) a few times a second
    profile: object = None               # kernel profile (--kernel ...); None: this machine's


@dataclass(repr=False, eq=False)
class RunReport:
    """What a run did: the guest's output and status, the model's statistics, the final maps."""

    program: str
    argv: list[str]
    exit_status: int | None
    guest_stdout: object                 # elfvm.emu.vfs.GuestOutput: read only when asked
    guest_stderr: object
    instructions: int | None
    syscalls: list[dict]
    unknown_syscalls: list[dict]
    stats: object                        # elfvm.sim.engine.Stats of the whole run (the model's)
    process_stats: list                  # one Stats per process, in pid order
    processes: list[dict]                # {pid, ppid, exit_status, death}
    exact: bool
    config: object                       # the model's SimConfig
    tlb_fills: int                       # fills of Unicorn's TLB (the CPU's own)
    pages_touched: int
    pages_at_exec: int
    maps: list[dict]
    maps_text: str
    rss_by_vma: list[dict]
    events: list[dict]
    stop_reason: str | None
    death: dict | None
    fault_model: str
    trace_files: list[str]
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)   # shown whatever the format (stderr with JSON)
    fault_around: str = ""               # the fault-around rule and folio source used
    timeline: object = None              # elfvm.sim.timeline.Timeline with timeline_bins (--svg)
    symbols: object = None               # eip -> `symbol+off`, tables read when first asked

    def symbol_at(self, eip: int | None) -> str | None:
        return self.symbols.at(eip) if self.symbols is not None else None

    @property
    def stdout(self) -> bytes:
        return bytes(self.guest_stdout)

    @property
    def stderr(self) -> bytes:
        return bytes(self.guest_stderr)

    @property
    def page_faults(self) -> int:
        return self.stats.page_faults

    @property
    def faults_by_kind(self) -> dict:
        return self.stats.faults_by_kind

    @property
    def evictions(self) -> int:
        return self.stats.evictions

    @property
    def dirty_evictions(self) -> int:
        return self.stats.dirty_evictions

    @property
    def swap_ins(self) -> int:
        return self.stats.swap_ins

    @property
    def exit_code(self) -> int:
        """The command's exit code: 5 at --max-instructions, else the guest's status."""
        if self.stop_reason == "max-instructions":
            return EXIT_MAX_INSTRUCTIONS
        return self.exit_status if self.exit_status is not None else 1


def page_cache_folios(profile, source: str):
    """Fault-around maps whole page-cache folios only from v6.18 (versions.FAULT_AROUND_WHOLE_FOLIO);
    the folio sizes come from the model or the live page cache (--page-cache)."""
    from elfvm.emu.folios import PageCacheFolios

    rules = getattr(profile, "kernel", None)
    return PageCacheFolios(source, whole=rules is None or rules.fault_around_whole_folio)


def _exec(opts: RunOptions):
    from elfvm.kernel.binfmt_elf import ExecRequest, UnsupportedProgram, execve

    path = program_in_sysroot(opts.program, opts.sysroot)
    if not os.path.exists(path):
        raise UsageError(f"{opts.program}: no such file")
    if os.path.isdir(path):
        raise UsageError(f"{opts.program}: is a directory")
    argv = [opts.program, *opts.args]
    req = ExecRequest(path, argv, list(opts.env), profile=opts.profile, sysroot=opts.sysroot,
                      rlimit_stack=opts.rlimit_stack, seed=opts.seed,
                      cwd=guest_cwd(opts.cwd, opts.sysroot),
                      filename=guest_program_name(opts.program, path, opts.sysroot))
    try:
        result = execve(req)
    except UnsupportedProgram as e:
        raise UsageError(str(e)) from None
    v = result.verdict
    if v.result != "ok":
        code = 4 if v.result == "killed" else 3
        what = "killed during execve" if v.result == "killed" else f"execve fails with {v.errno_name}"
        raise ProgramRejected(f"{opts.program}: {what} ({v.step}: {v.reason})", code)
    return result, argv


def program_in_sysroot(program: str, sysroot: str) -> str:
    """The host file of PROGRAM: an absolute path is looked up inside --sysroot first (as
    the guest would name it), then on the host (a program given by its host path)."""
    root = os.path.abspath(sysroot)
    if program.startswith("/") and root != "/":
        inside = os.path.join(root, program.lstrip("/"))
        if not os.path.abspath(program).startswith(root + "/") and os.path.exists(inside):
            return inside
    return program


def guest_program_name(program: str, host: str, sysroot: str) -> str:
    """The name the guest's execve gets (AT_EXECFN): PROGRAM as typed, as `chroot SYSROOT
    PROGRAM` would pass it; a host path inside --sysroot becomes the guest's path."""
    root = os.path.abspath(sysroot)
    if root != "/" and host == program and os.path.abspath(program).startswith(root + "/"):
        return "/" + os.path.relpath(os.path.abspath(program), root)
    return program


def guest_cwd(cwd: str | None, sysroot: str) -> str:
    """--cwd, else the host's working directory seen from inside --sysroot when it lies
    there (all of it when the sysroot is /), else /."""
    if cwd is not None:
        return os.path.normpath(os.path.join("/", cwd))
    here, root = os.getcwd(), os.path.abspath(sysroot)
    if root == "/":
        return here
    if here == root or here.startswith(root + "/"):
        return "/" + os.path.relpath(here, root).lstrip("./") if here != root else "/"
    return "/"


FIXED_CLOCK = 1_700_000_000              # --clock fixed: 2023-11-14 22:13:20 UTC


def clock_start(clock: str) -> int:
    """The guest clock's start in ns since the epoch: the host's real time, or a fixed
    instant for reproducible runs (`fixed`, or a number of seconds)."""
    import time

    if clock == "host":
        return time.time_ns()
    if clock == "fixed":
        return FIXED_CLOCK * 10**9
    try:
        secs = float(clock)
    except ValueError:
        raise UsageError(f"--clock {clock!r}: host, fixed or seconds since the epoch") from None
    if not 0 <= secs < 2**31:
        raise UsageError(f"--clock {clock}: between 0 and 2^31 seconds (i386 time_t)")
    return int(secs * 10**9)


def stdin_file(opts: RunOptions):
    """fd 0: --stdin FILE as a regular file (fstat: S_IFREG and its size; lseek works), else
    the bytes of RunOptions.stdin."""
    from elfvm.emu.vfs import Inode, OpenFile

    if opts.stdin_path is None:
        return OpenFile(None, 0, sink=bytearray())
    return OpenFile(Inode(opts.stdin_path, os.path.abspath(opts.stdin_path),
                          os.stat(opts.stdin_path)), 0)


def paging_model(opts: RunOptions):
    """The trace engine's model for this run: --frames (or --ram / 4 KiB) frames, the policy,
    the TLB and the walk of the --mmu."""
    from elfvm.mmu.geometry import GeometryError, get_geometry
    from elfvm.mmu.machine import ram_limit
    from elfvm.mmu.tlb import TlbError, tlb_geometry
    from elfvm.sim.engine import PagingModel, SimConfig
    from elfvm.units import human_size

    try:
        geom = get_geometry(opts.mmu)
        tlb = tlb_geometry(opts.tlb_entries, opts.tlb_ways)
    except (GeometryError, TlbError) as e:
        raise UsageError(str(e)) from None
    if opts.ram > ram_limit(geom):                 # translate's limit: the PTEs hold no more
        raise UsageError(f"--ram {human_size(opts.ram)}: --mmu {geom.name} addresses at most "
                         f"{ram_limit(geom) >> 30} GiB")
    frames = opts.frames if opts.frames is not None else opts.ram // 4096
    levels = geom.levels if opts.walk_levels is None else opts.walk_levels
    cfg = SimConfig(opts.policy, frames, 4096, tlb, opts.split_tlb, opts.asid, levels, opts.tlb_ns,
                    opts.mem_ns, 0)
    # --exact-tlb (and --emit-trace) feed the model numpy batches: compiled kernels from the start
    return PagingModel(cfg, timeline_bins=opts.timeline_bins,
                       compiled=bool(opts.exact or opts.emit_trace))


def _kernel_state(opts: RunOptions, result, model, vfs, trace):
    from elfvm.emu.fork import threads_max
    from elfvm.emu.state import KernelState

    return KernelState(profile=result.profile, ram=opts.ram, headroom=PHYS_HEADROOM, model=model,
                    fault_model=opts.fault_model, geometry=opts.mmu, vfs=vfs,
                    max_instructions=opts.max_instructions, seed=opts.seed, stdin=opts.stdin,
                    echo=opts.echo, event_limit=opts.event_limit,
                    folios=page_cache_folios(result.profile, opts.page_cache),
                    exact=opts.exact or trace is not None,
                    trace=trace, clock_ns=clock_start(opts.clock),
                    threads_max=threads_max(opts.ram, result.profile))


def run_program(opts: RunOptions) -> RunReport:
    """Exec the program (elfvm's loader) and run it under Unicorn until every process exits."""
    from elfvm.emu.pages import flush_refs
    from elfvm.emu.sched import run

    k, p, result, argv = boot(opts)
    try:
        with StopOnSigint(k), ProgressTicker(k, opts.progress):
            run(k)
    except KeyboardInterrupt:
        k.stop_reason = "interrupted"
    finally:
        flush_refs(k)
        if k.trace is not None:
            k.trace.close()
    k.vfs.save_overlay()
    report = build_report(k, p, argv, opts, result)
    k.swap.close()
    return report


def boot(opts: RunOptions):
    """The machine at the program's first instruction: (kernel state, first process, the
    loader's result, argv)."""
    try:                              # the `emu` extra: unicorn
        from elfvm.emu.entry import install_hooks
        from elfvm.emu.exec import spawn
        import elfvm.emu.state  # noqa: F401  (unicorn)
    except ImportError as e:          # pragma: no cover
        raise UsageError(f"simulate-run PROGRAM needs unicorn: pip install 'elfvm[emu]' ({e})") from None
    from elfvm.emu.task import FIRST_PID
    from elfvm.emu.vfs import O_WRONLY, OpenFile, Vfs

    check_options(opts)
    result, argv = _exec(opts)
    model = paging_model(opts)
    vfs = Vfs(root=os.path.abspath(opts.sysroot), cwd=guest_cwd(opts.cwd, opts.sysroot),
              write_dir=opts.write_dir)
    trace = None
    if opts.emit_trace:
        from elfvm.emu.tracefile import TraceWriter

        trace = TraceWriter(opts.emit_trace, FIRST_PID)
        trace._file(FIRST_PID)
    try:
        k = _kernel_state(opts, result, model, vfs, trace)
    except MemoryError as e:            # the host cannot map the model's RAM
        raise UsageError(f"--ram {opts.ram >> 20} MiB: {e}") from None
    install_hooks(k)
    k.read_implies_exec = result.read_implies_exec
    out = OpenFile(None, O_WRONLY, sink=k.stdout)
    err = OpenFile(None, O_WRONLY, sink=k.stderr)
    p = spawn(k, result, {0: stdin_file(opts), 1: out, 2: err})
    p.argv, p.envp = list(argv), list(opts.env)
    if program_in_sysroot(opts.program, opts.sysroot) != opts.program:
        p.images[0] = opts.program                 # the guest's name for it, inside --sysroot
    p.rlimit_stack = opts.rlimit_stack
    return k, p, result, argv


def check_options(opts: RunOptions) -> None:
    if opts.fault_model not in ("linux", "simple"):
        raise UsageError(f"--fault-model {opts.fault_model!r}: choose linux or simple")
    if opts.page_cache != "model" and opts.fault_model == "simple":
        raise UsageError("--page-cache: --fault-model simple has no fault-around (no folios to read)")
    if opts.policy not in ("fifo", "lru", "clock"):
        raise UsageError(f"--policy {opts.policy!r} in program mode: choose fifo, lru or clock "
                         f"(opt needs the whole future: record with --emit-trace and replay)")
    if opts.frames is not None and opts.frames < 8:
        raise UsageError(f"--frames {opts.frames}: a real program needs at least 8 frames")
    if opts.frames is not None and opts.frames > opts.ram // 4096:
        raise UsageError(f"--frames {opts.frames}: more than --ram holds ({opts.ram // 4096} frames)")


PROGRESS_PERIOD = 0.25                   # seconds between RunOptions.progress calls


class ProgressTicker:
    """Calls RunOptions.progress(instructions, page faults so far) every PROGRESS_PERIOD from a
    thread of its own: the CPU may run for seconds inside one emu_start (Unicorn releases the
    GIL while it runs native code), so the scheduler's loop cannot be where it is polled. It
    only reads counters; the guest's run is the same with or without it."""

    def __init__(self, kernel, callback):
        import threading

        self.k, self.callback = kernel, callback
        self.done = threading.Event()
        self.thread = None

    def __enter__(self):
        import threading

        if self.callback is not None:
            self.thread = threading.Thread(target=self._tick, daemon=True)
            self.thread.start()
        return self

    def _tick(self) -> None:
        k = self.k
        while not self.done.wait(PROGRESS_PERIOD):
            faults = sum(k.model.page_faults(mi) for mi in list(k.by_mi))
            if not (k.cpu.instructions or faults):     # nothing has run yet: nothing to say
                continue
            try:
                self.callback(k.cpu.instructions, faults)
            except OSError:                # the terminal went away: no more progress
                return

    def __exit__(self, *exc):
        self.done.set()
        if self.thread is not None:
            self.thread.join()
        return False


class StopOnSigint:
    """Ctrl-C stops the guest cleanly (the partial report follows): SIGINT's C-level handler
    writes to a wake-up pipe (signal.set_wakeup_fd) even while Unicorn runs native code, and a
    watcher thread asks Unicorn to stop (uc_emu_stop is safe from another thread)."""

    def __init__(self, kernel):
        self.k = kernel
        self.active = False

    def __enter__(self):
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread():
            return self
        self.r, self.w = os.pipe()
        os.set_blocking(self.w, False)
        self.old_fd = signal.set_wakeup_fd(self.w, warn_on_full_buffer=False)
        self.old = signal.signal(signal.SIGINT, self._handler)
        self.active = True
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()
        return self

    def _handler(self, signum, frame) -> None:
        self._stop()

    def _stop(self) -> None:
        self.k.stop_reason = "interrupted"
        self.k.uc.emu_stop()

    def _watch(self) -> None:
        import signal

        while True:
            try:
                data = os.read(self.r, 16)
            except OSError:
                return
            if not data:
                return
            if signal.SIGINT in data:
                self._stop()

    def __exit__(self, *exc):
        import signal

        if self.active:
            signal.signal(signal.SIGINT, self.old)
            signal.set_wakeup_fd(self.old_fd)
            os.close(self.w)                # the watcher reads end-of-file and returns: only
            self.thread.join(timeout=1.0)   # then its fd goes, so it never reads a file that
            os.close(self.r)                # reuses the number (a short run ends before it ran)
        return False


def unknown_syscalls(k) -> list[dict]:
    """The system calls the guest made that elfvm lacks, by name (the names' table is imported
    only when there are some)."""
    if not k.unknown_syscalls:
        return []
    from elfvm.emu.syscall_names import syscall_name

    return [{"name": syscall_name(n), "number": n, "count": c} for n, c in sorted(k.unknown_syscalls.items())]


def build_report(k, first, argv, opts: RunOptions, result) -> RunReport:
    from bisect import bisect_left
    from functools import partial

    from elfvm.emu.pages import resident_vpns
    from elfvm.mm.maps import maps_text, proc_maps

    total, per_model = k.final_stats or k.model.stats()
    timeline = k.final_timeline or k.model.timeline()
    if timeline is not None:                       # processes by model number: P0, P1, ...
        from dataclasses import replace

        by_mi = sorted(k.by_mi.items())
        timeline = replace(timeline, names=tuple(process_label(q) for _, q in by_mi))
    procs = sorted(k.procs.values(), key=lambda q: q.pid)
    mm = first.mm
    present = sorted(getattr(first, "final_resident", None) or resident_vpns(first))
    maps, rss = [], []
    for ln in proc_maps(mm):                       # resident pages per line: by bisection, not
        resident = bisect_left(present, ln.end >> 12) - bisect_left(present, ln.start >> 12)
        maps.append(_Deferred({"source": partial(map_source, result, ln)}, start=ln.start, end=ln.end,
                              perms=ln.perms, pgoff=ln.pgoff, name=ln.name, kind=ln.kind))
        rss.append({"start": ln.start, "end": ln.end, "name": ln.name or f"[{ln.kind}]",
                    "pages": (ln.end - ln.start) >> 12, "resident": resident})
    syms = _Symbolizer(result)
    events = [{"seq": e.seq, "pid": e.pid, "address": e.addr, "access": e.access, "kind": e.kind,
               "handler": e.handler, "eip": e.eip, "mapped": e.mapped, "kernel": e.kernel}
              for e in k.events]
    notes = list(getattr(result, "notes", []))
    warnings = [f"--write-dir: {gp} not saved: {why}" for gp, why in k.vfs.save_refused]
    fault_around = k.folios.describe() if opts.fault_model == "linux" else ""
    if k.cpu.instructions is None:
        notes.append("instructions are not counted: no C compiler for elfvm/emu/icount.c and no numba")
    elif k.cpu.uncounted_blocks:
        notes.append(f"instructions: {k.cpu.uncounted_blocks} translated blocks could not be "
                     f"described by Unicorn: the count is approximate")
    return RunReport(
        program=opts.program, argv=argv, exit_status=first.exit_status,
        guest_stdout=k.stdout, guest_stderr=k.stderr, instructions=k.cpu.instructions,
        syscalls=[{"name": n, "count": c} for n, c in sorted(k.syscall_counts.items()) if c],
        unknown_syscalls=unknown_syscalls(k),
        stats=total, process_stats=[per_model[q.mi] for q in procs],
        processes=[{"pid": q.pid, "ppid": q.ppid, "exit_status": q.exit_status,
                    "death": _death_dict(k, q.death, syms), "images": list(q.images)}
                   for q in procs],
        exact=k.exact, config=k.model.machine.cfg, tlb_fills=k.tlb_fills,
        pages_touched=len(k.touched), pages_at_exec=k.pages_at_exec, maps=maps,
        maps_text=maps_text(mm), rss_by_vma=rss, events=events, stop_reason=k.stop_reason,
        death=_death_dict(k, first.death, syms), fault_model=opts.fault_model,
        trace_files=list(k.trace.paths) if k.trace is not None else [], notes=notes,
        warnings=warnings, fault_around=fault_around,
        timeline=timeline, symbols=syms)


def process_label(q) -> str:
    """`touch, pid 101 (forked by 100)`: a process as the pictures name it."""
    name = os.path.basename(q.exe) if q.exe else "?"
    forked = f" (forked by {q.forked_by})" if q.forked_by is not None else ""
    return f"{name}, pid {q.pid}{forked}"


def map_source(result, line) -> str:
    """layout's `source` for what execve mapped; for what the run mapped, the call that did."""
    from elfvm.kernel.provenance import vma_source

    out = []
    for v in line.parts:
        owner = v.origin[0] if v.origin else ""
        if owner == "heap":
            out.append("brk: the heap (malloc below M_MMAP_THRESHOLD grows it)")
        elif owner == "mmap" and v.source.startswith("shm:"):
            out.append(f"shmat: System V shared memory segment {v.source[4:]}")
        elif owner == "mmap" and v.shared and v.file is None:
            out.append("mmap2: MAP_SHARED|MAP_ANONYMOUS (shared with forked children)")
        elif owner == "mmap" and v.file is not None:
            out.append(f"mmap2: {'shared' if v.shared else 'private'} mapping of {v.file.path}")
        elif owner == "mmap":
            out.append("mmap2: anonymous (malloc at or above M_MMAP_THRESHOLD, or a direct mmap)")
        else:
            src = vma_source(result, v)
            if src:
                out.append(src)
    return "; ".join(dict.fromkeys(out))


def _death_dict(k, d, syms=None) -> dict | None:
    if d is None:
        return None
    return {"signal": d.name, "address": d.addr, "access": d.access, "reason": d.reason, "eip": d.eip,
            "symbol": syms.at(d.eip) if syms is not None and d.eip is not None else None}


class _Deferred(Mapping):
    """A row of the report whose costly fields are computed when first read: the symbol tables
    and section headers are parsed only when a table or the JSON shows them (`later`: key ->
    function of no arguments). A read-only Mapping, so get(), items(), dict() and == see the
    deferred keys too (a dict subclass's __missing__ would hide them from all but [])."""

    __slots__ = ("_fields", "_later")

    def __init__(self, later: dict, **fields):
        self._fields, self._later = fields, later

    def __getitem__(self, key):
        if key not in self._fields and key in self._later:
            self._fields[key] = self._later.pop(key)()
        return self._fields[key]

    def __iter__(self):                  # a snapshot: reading a key moves it between the two
        return iter([*self._fields, *self._later])

    def __len__(self) -> int:
        return len(self._fields) + len(self._later)


class _Symbolizer:
    """eip -> `symbol+off` through the images' symbol tables (elfvm.mmu.symbols). An image's
    table is read the first time an address falls inside it: a report that names no eip (no
    death, no `--show events`) parses no symbol table."""

    def __init__(self, result):
        self.images = list(result.images.values())
        self.tables: dict[int, object] = {}

    def at(self, addr: int | None) -> str | None:
        if addr is None:
            return None
        for img in self.images:
            lo = img.load_bias + min((ph.p_vaddr for ph in img.phdrs if ph.p_type == 1), default=0)
            hi = img.load_bias + max((ph.p_vaddr + ph.p_memsz for ph in img.phdrs if ph.p_type == 1), default=0)
            if lo <= addr < hi:
                try:
                    return self.table(img).symbol_at(addr)
                except Exception:      # pragma: no cover - a stripped or odd file
                    return None
        return None

    def table(self, img):
        if id(img) not in self.tables:
            from elfvm.mmu.symbols import Image

            self.tables[id(img)] = Image(img.display.path, img.file, img.load_bias)
        return self.tables[id(img)]
