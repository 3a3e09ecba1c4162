"""`simulate-run PROGRAM`: load a real i386 program with elfvm's loader and run it.

`run_program(RunOptions) -> RunReport` is the library entry point; elfvm.emu.report renders it.
The process is built by elfvm's execve (elfvm.kernel.binfmt_elf), exactly as `layout` predicts;
a program execve would refuse gets the layout verdict instead of a run (ProgramRejected).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field

from elfvm.errors import ElfvmError, UsageError

EXIT_MAX_INSTRUCTIONS = 5


class ProgramRejected(ElfvmError):
    """execve() would fail (exit 3, an errno) or kill the process (exit 4): no run."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class RunOptions:
    program: str
    args: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    sysroot: str = "/"
    ram: int = 256 << 20
    frames: int | None = None            # limit on resident user frames (--frames)
    policy: str = "fifo"
    fault_model: str = "linux"           # linux | simple
    mmu: str = "x86-64"
    stdin: bytes = b""
    write_dir: str | None = None
    max_instructions: int | None = None
    rlimit_stack: int = 8 << 20
    seed: int | None = None
    quiet: bool = True
    echo: object = None                  # callable(is_stderr, bytes) to show output live
    event_limit: int = 100000
    cwd: str | None = None
    folio_kib: int = 4                   # page-cache folio size assumed by fault-around


@dataclass
class ProcessReport:
    pid: int
    ppid: int
    exit_status: int | None
    signal: str | None
    death: dict | None
    page_faults: int
    faults_by_kind: dict
    resident_pages: int


@dataclass
class RunReport:
    program: str
    argv: list[str]
    exit_status: int | None
    stdout: bytes
    stderr: bytes
    instructions: int | None
    syscalls: list[dict]
    unknown_syscalls: list[dict]
    processes: list[ProcessReport]
    page_faults: int
    faults_by_kind: dict
    evictions: int
    dirty_evictions: int
    swap_ins: int
    tlb_fills: int
    pages_touched: int
    maps: list[dict]
    maps_text: str
    rss_by_vma: list[dict]
    events: list[dict]
    stop_reason: str | None
    death: dict | None
    fault_model: str
    frames_peak: int
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """The command's exit code: 5 at --max-instructions, else the guest's status."""
        if self.stop_reason == "max-instructions":
            return EXIT_MAX_INSTRUCTIONS
        return self.exit_status if self.exit_status is not None else 1


def _exec(opts: RunOptions):
    from elfvm.kernel.binfmt_elf import ExecRequest, UnsupportedProgram, execve

    if not os.path.exists(opts.program):
        raise UsageError(f"{opts.program}: no such file")
    if os.path.isdir(opts.program):
        raise UsageError(f"{opts.program}: is a directory")
    argv = [opts.program, *opts.args]
    req = ExecRequest(opts.program, argv, list(opts.env), sysroot=opts.sysroot,
                      rlimit_stack=opts.rlimit_stack, seed=opts.seed, cwd=opts.cwd)
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


def run_program(opts: RunOptions) -> RunReport:
    """Exec the program (elfvm's loader) and run it under Unicorn until every process exits."""
    from elfvm.emu.kernel import Kernel
    from elfvm.emu.vfs import O_WRONLY, OpenFile, Vfs

    if opts.fault_model not in ("linux", "simple"):
        raise UsageError(f"--fault-model {opts.fault_model!r}: choose linux or simple")
    if opts.policy not in ("fifo", "lru", "clock"):
        raise UsageError(f"--policy {opts.policy!r} in program mode: choose fifo, lru or clock "
                         f"(opt needs the whole future: record with --emit-trace and replay)")
    if opts.frames is not None and opts.frames < 8:
        raise UsageError(f"--frames {opts.frames}: a real program needs at least 8 frames")
    result, argv = _exec(opts)
    vfs = Vfs(root=os.path.abspath(opts.sysroot), cwd=opts.cwd or os.getcwd(), write_dir=opts.write_dir)
    try:
        k = Kernel(profile=result.profile, ram=opts.ram, frame_limit=opts.frames, policy=opts.policy,
                   fault_model=opts.fault_model, geometry=opts.mmu, vfs=vfs,
                   max_instructions=opts.max_instructions, seed=opts.seed, stdin=opts.stdin,
                   echo=opts.echo, event_limit=opts.event_limit,
                   folio_pages=max(opts.folio_kib // 4, 1))
    except ImportError as e:          # pragma: no cover
        raise UsageError(f"simulate-run PROGRAM needs unicorn: pip install 'elfvm[emu]' ({e})") from None
    k.read_implies_exec = result.read_implies_exec
    stdin = OpenFile(None, 0, sink=bytearray())
    out = OpenFile(None, O_WRONLY, sink=k.stdout)
    err = OpenFile(None, O_WRONLY, sink=k.stderr)
    p = k.spawn(result, {0: stdin, 1: out, 2: err})
    p.rlimit_stack = opts.rlimit_stack
    try:
        k.run()
    except KeyboardInterrupt:
        k.stop_reason = "interrupted"
    vfs.save_overlay()
    return build_report(k, p, argv, opts, result)


def build_report(k, first, argv, opts: RunOptions, result) -> RunReport:
    from elfvm.mm.maps import proc_maps, maps_text

    total = Counter()
    procs = []
    for q in sorted(k.procs.values(), key=lambda q: q.pid):
        total.update(q.faults)
        procs.append(ProcessReport(
            q.pid, q.ppid, q.exit_status, q.death.name if q.death else None,
            _death_dict(k, q.death), q.minflt, _kinds(q.faults), len(getattr(q, "final_resident", None) or q.ptes)))
    mm = first.mm
    lines = proc_maps(mm)
    maps = []
    rss = []
    for ln in lines:
        present = getattr(first, "final_resident", None) or first.ptes
        resident = sum(1 for v in range(ln.start >> 12, ln.end >> 12) if v in present)
        maps.append({"start": ln.start, "end": ln.end, "perms": ln.perms, "offset": ln.pgoff,
                     "dev": ln.dev, "inode": ln.inode, "name": ln.name, "kind": ln.kind,
                     "size": ln.end - ln.start})
        rss.append({"start": ln.start, "end": ln.end, "name": ln.name or f"[{ln.kind}]",
                    "pages": (ln.end - ln.start) >> 12, "resident": resident})
    syms = _Symbolizer(result)
    events = [{"seq": e.seq, "pid": e.pid, "address": e.addr, "access": e.access, "kind": e.kind,
               "handler": e.handler, "eip": e.eip, "symbol": syms.at(e.eip), "mapped": e.mapped,
               "kernel": e.kernel} for e in k.events]
    touched = len({(e.pid, e.addr >> 12) for e in k.events})
    notes = list(getattr(result, "notes", []))
    if k.cpu.instructions is None:
        notes.append("instructions are not counted without numba (pip install numba)")
    return RunReport(
        program=opts.program, argv=argv, exit_status=first.exit_status,
        stdout=bytes(k.stdout), stderr=bytes(k.stderr), instructions=k.cpu.instructions,
        syscalls=[{"name": n, "count": c} for n, c in sorted(k.syscall_counts.items()) if c],
        unknown_syscalls=[{"number": n, "count": c} for n, c in sorted(k.unknown_syscalls.items())],
        processes=procs, page_faults=sum(total.values()), faults_by_kind=_kinds(total),
        evictions=k.evictions, dirty_evictions=k.dirty_evictions, swap_ins=k.swap_ins,
        tlb_fills=k.tlb_fills, pages_touched=touched, maps=maps, maps_text=maps_text(mm),
        rss_by_vma=rss, events=events, stop_reason=k.stop_reason,
        death=_death_dict(k, first.death, syms), fault_model=opts.fault_model,
        frames_peak=k.frames.peak, notes=notes)


def _kinds(c: Counter) -> dict:
    from elfvm.emu.fault import FAULT_KINDS

    return {kind: int(c.get(kind, 0)) for kind in FAULT_KINDS}


def _death_dict(k, d, syms=None) -> dict | None:
    if d is None:
        return None
    return {"signal": d.name, "address": d.addr, "access": d.access, "reason": d.reason, "eip": d.eip,
            "symbol": syms.at(d.eip) if syms is not None and d.eip is not None else None}


class _Symbolizer:
    """eip -> `symbol+off` through the images' symbol tables (elfvm.mmu.symbols)."""

    def __init__(self, result):
        self.images = []
        try:
            from elfvm.mmu.symbols import Image
        except ImportError:           # pragma: no cover
            return
        for img in result.images.values():
            try:
                self.images.append((img, Image(img.display.path, img.file, img.load_bias)))
            except Exception:          # pragma: no cover - a stripped or odd file
                continue
        self.vmas = result.mm

    def at(self, addr: int | None) -> str | None:
        if addr is None:
            return None
        for img, im in self.images:
            lo = img.load_bias + min((ph.p_vaddr for ph in img.phdrs if ph.p_type == 1), default=0)
            hi = img.load_bias + max((ph.p_vaddr + ph.p_memsz for ph in img.phdrs if ph.p_type == 1), default=0)
            if lo <= addr < hi:
                try:
                    return im.symbol_at(addr)
                except Exception:      # pragma: no cover
                    return None
        return None
