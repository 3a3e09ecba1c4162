"""`elfvm simulate-run --trace FILE...`: demand paging, TLB, frames and swap over memory traces."""

from __future__ import annotations

import sys

import click

from elfvm.commands.kernel_options import kernel_options, make_kernel_profile
from elfvm.commands.options import (PROGRAM_CONTEXT, FiniteFloat, build_env, drop_separator, given,
                                   int_range, reject)
from elfvm.errors import UsageError
from elfvm.units import RLIM_INFINITY, parse_size

EPILOG = """\b
Examples:
  valgrind --tool=lackey --trace-mem=yes --log-file=t.lackey fixtures/bin/hello_static
  elfvm simulate-run --trace t.lackey --frames 16 --policy clock --show events
  elfvm simulate-run --trace t.lackey --ram 64K --tlb-entries 16 --tlb-ways 4 --format json
  elfvm simulate-run --trace a.lackey --trace b.lackey.gz --frames 32 --quantum 1000 --asid
  elfvm simulate-run --trace t.lackey --compare fifo,lru,clock,opt --frames 8,16,32,64
  elfvm simulate-run --trace t.lackey --frames 16 --svg run.svg
  elfvm simulate-run --svg touch.svg fixtures/bin/touch
  elfvm simulate-run --refs "7 0 1 2 0 3 0 4 2 3 0 3 2" --frames 3 --compare fifo,lru,opt --show steps
  elfvm simulate-run --refs 1,2,3,4,1,2,5,1,2,3,4,5 --compare fifo --frames 3,4
"""

# Options that belong to one way of calling simulate-run only (the others reject them).
PROGRAM_ONLY = ("fault_model", "exact_tlb", "emit_trace", "sysroot", "stdin_file", "write_dir",
                "max_instructions", "env_set", "env_clear", "rlimit_stack", "stdout_file", "cwd",
                "clock", "strict", "page_cache", "kernel_version", "hwcap", "hwcap2", "minsigstksz")
TRACE_ONLY = ("trace_format", "page_size", "bits", "quantum", "skip_bad_lines")
REFS_OK = ("refs", "frames", "policy", "compare", "shows", "fmt")

POLICY_NAMES = ("fifo", "lru", "clock", "opt")


# ---------------------------------------------------------------- program mode (issue 5)
def program_options(f):
    """The options only program mode has; they arrive as **prog and go to elfvm.commands.simulate_program."""
    opts = [
        click.option("--fault-model", type=click.Choice(["linux", "simple"]), default="linux",
                     show_default=True, help="PROGRAM: linux (fault-around, zero page, COW: the "
                     "kernel's count) or simple (the textbook: one fault per first touch)."),
        click.option("--page-cache", type=click.Choice(["model", "live"]), default="model",
                     show_default=True, help="PROGRAM: where the page-cache folio sizes that "
                     "fault-around maps whole (Linux >= 6.18) come from: model (every page its own "
                     "folio: deterministic) or live (the host page cache's folios of each file the "
                     "guest maps, via /proc/kpageflags: root only)."),
        click.option("--exact-tlb", is_flag=True, help="PROGRAM: a reference per instruction and "
                     "data access (slower): exact TLB hit ratio, EAT and replacement recency."),
        click.option("--emit-trace", metavar="FILE", default=None, help="PROGRAM: write the run's "
                     "references in lackey format (implies --exact-tlb); children go to FILE.PID."),
        click.option("--sysroot", default="/", show_default=True, help="PROGRAM: where PT_INTERP "
                     "and the guest's files are looked up (read-only)."),
        click.option("--stdin", "stdin_file", metavar="FILE", default=None,
                     help="PROGRAM: the guest's standard input, a regular file as with "
                     "`prog < FILE` (default: empty)."),
        click.option("--stdout", "stdout_file", metavar="FILE", default=None,
                     help="PROGRAM: also write the guest's standard output, byte for byte, to FILE."),
        click.option("--cwd", metavar="DIR", default=None, help="PROGRAM: the guest's working "
                     "directory (default: the current one when it exists under --sysroot, else /)."),
        click.option("--clock", default="host", show_default=True, metavar="host|fixed|SECONDS",
                     help="PROGRAM: where the guest's clock starts (it then advances with the "
                     "run: sleeps and timers cost no host time); fixed or SECONDS since the "
                     "epoch make runs reproducible."),
        click.option("--strict", is_flag=True, help="PROGRAM: a system call elfvm does not "
                     "implement fails the run (exit 6) instead of a warning."),
        click.option("--write-dir", metavar="DIR", default=None, help="PROGRAM: where the "
                     "guest's file writes go (default: an in-memory overlay, thrown away)."),
        click.option("--max-instructions", type=int_range(1, 1 << 62), default=None, metavar="N",
                     help="PROGRAM: stop after N instructions (exit 5)."),
        click.option("--env", "env_set", multiple=True, metavar="K=V",
                     help="PROGRAM: set an environment variable (repeatable), as in layout."),
        click.option("--env-clear", is_flag=True, help="PROGRAM: start from an empty environment."),
        click.option("--rlimit-stack", default="8M", show_default=True, metavar="SIZE|unlimited",
                     help="PROGRAM: RLIMIT_STACK, the limit of stack growth."),
    ]
    for o in reversed(opts):
        f = o(f)
    return kernel_options(f)       # --kernel, --hwcap, --hwcap2, --minsigstksz (program mode)


def run_program_mode(program, args, trace_opts: dict, prog: dict) -> int:
    """Check the options that only trace mode has, then run PROGRAM (elfvm.commands.simulate_program)."""
    from elfvm.commands.simulate_program import simulate_program

    if trace_opts["traces"]:
        raise UsageError("give either a PROGRAM or --trace FILE, not both")
    for name, flag in (("compare", "--compare"), ("page_size", "--page-size"), ("bits", "--bits")):
        if trace_opts[name] is not None:
            raise UsageError(f"{flag} is for --trace mode (program mode uses 4 KiB pages)")
    try:
        rlim = parse_size(prog["rlimit_stack"], allow_unlimited=True)
    except ValueError as e:
        raise UsageError(f"--rlimit-stack {prog['rlimit_stack']!r}: {e}") from None
    if rlim > RLIM_INFINITY:
        raise UsageError(f"--rlimit-stack {prog['rlimit_stack']}: more than RLIM_INFINITY (2^64-1)")
    t = trace_opts
    profile = make_kernel_profile("linux-x86_64-compat", kernel_version=prog["kernel_version"],
                                  hwcap=prog["hwcap"], hwcap2=prog["hwcap2"],
                                  minsigstksz=prog["minsigstksz"])
    return simulate_program(
        program, args, frames=t["frames"], ram=t["ram"], policy=t["policy"], mmu=t["mmu"],
        shows=t["shows"], limit=t["limit"], fmt=t["fmt"], quiet=t["quiet"],
        fault_model=prog["fault_model"], sysroot=prog["sysroot"], stdin=prog["stdin_file"],
        write_dir=prog["write_dir"], max_instructions=prog["max_instructions"],
        env=build_env(prog["env_clear"], prog["env_set"]), emit_trace=prog["emit_trace"],
        exact=prog["exact_tlb"], rlimit_stack=rlim, svg=t["svg"], stdout_file=prog["stdout_file"],
        cwd=prog["cwd"], strict=prog["strict"], clock=prog["clock"], profile=profile,
        page_cache=prog["page_cache"],
        tlb={k: t[k] for k in ("tlb_entries", "tlb_ways", "split_tlb", "asid", "walk_levels",
                               "tlb_ns", "mem_ns")})
# ---------------------------------------------------------------- end of program mode


def _int_list(text: str, what: str) -> list[int]:
    try:
        vals = [int(x, 0) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"{what} {text!r}: expected a number or a comma-separated list") from None
    if not vals:
        raise UsageError(f"{what} {text!r}: expected a number")
    return vals


def frame_counts(frames: str | None, ram: str | None, page_size: int, many: bool) -> list[int]:
    """--frames N[,N...] or --ram SIZE[,SIZE...] (frames = RAM / page size); default --ram 256M."""
    if frames is not None and ram is not None:
        raise UsageError("give either --frames or --ram, not both")
    if frames is not None:
        counts = _int_list(frames, "--frames")
        what = "--frames"
    else:
        counts = []
        for item in (ram or "256M").split(","):
            try:
                size = parse_size(item)
            except ValueError as e:
                raise UsageError(f"--ram {item!r}: {e}") from None
            counts.append(size // page_size)
            if size // page_size < 1:
                raise UsageError(f"--ram {item}: smaller than one {page_size}-byte page")
        what = "--ram"
    if len(counts) > 1 and not many:
        raise UsageError(f"{what}: a list of sizes only goes with --compare")
    for n in counts:
        if n < 1:
            raise UsageError(f"{what}: need at least one frame")
        if n > 1 << 26:
            raise UsageError(f"{what}: {n} frames is more than this simulator keeps (2^26)")
    return counts


@click.command(epilog=EPILOG, context_settings=PROGRAM_CONTEXT)
@click.argument("program", required=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option("--trace", "traces", multiple=True, metavar="FILE",
              help="A memory trace (repeatable: one process each); '-' is stdin; .gz/.xz are read "
                   "transparently.")
@click.option("--trace-format", type=click.Choice(["auto", "lackey", "plain"]), default="auto",
              show_default=True, help="lackey: valgrind --tool=lackey --trace-mem=yes; plain: "
                                      "'R|W ADDR' or 'ADDR' per line.")
@click.option("--frames", default=None, metavar="N[,N...]", help="Physical memory in frames.")
@click.option("--ram", default=None, metavar="SIZE[,SIZE...]",
              help="Physical memory in bytes (frames = RAM / page size). Default 256M.")
@click.option("--page-size", default=None, metavar="SIZE",
              help="Page size (default: the --mmu's, 4 KiB); 1 makes ADDR a page number.")
@click.option("--policy", type=click.Choice(POLICY_NAMES), default="lru", show_default=True,
              help="Page replacement policy.")
@click.option("--refs", default=None, metavar="'7 0 1 2 ...'",
              help="A textbook reference string (page numbers, spaces or commas) instead of a trace.")
@click.option("--tlb-entries", type=int_range(0, 1 << 16), default=64, show_default=True,
              help="TLB entries (0: no TLB).")
@click.option("--tlb-ways", type=int_range(1, 1 << 16), default=None,
              help="Ways per set (default: fully associative).")
@click.option("--split-tlb", is_flag=True, help="Separate instruction and data TLBs (I vs L/S/M records).")
@click.option("--asid", is_flag=True, help="ASID/PCID-tagged TLB entries survive context switches "
                                           "(without: flushed at every switch).")
@click.option("--mmu", type=click.Choice(["i386", "pae", "x86-64", "custom"]), default="x86-64",
              show_default=True, help="Paging geometry: walk levels and linear address width "
                                      "(x86-64: what this machine's MMU walks for an i386 task).")
@click.option("--bits", default=None, help="--mmu custom: the address split, e.g. 12,10,10.")
@click.option("--walk-levels", type=int_range(0, 8), default=None, help="Memory accesses of a page walk "
                                                            "(default: the --mmu's levels).")
@click.option("--tlb-ns", type=FiniteFloat(0, 1e12), default=20.0, show_default=True,
              help="TLB look-up time.")
@click.option("--mem-ns", type=FiniteFloat(0, 1e12), default=100.0, show_default=True,
              help="Memory access time.")
@click.option("--quantum", type=int_range(1, 1 << 40), default=10000, show_default=True,
              help="Several traces: references per turn, round-robin.")
@click.option("--show", "shows", type=click.Choice(["pages", "frames", "events", "steps"]),
              multiple=True, help="Also print the final page tables, the frame table, the "
              "page-fault log; steps (--refs): every reference with hit/miss, frames and victim.")
@click.option("--limit", type=int_range(1, 1 << 31), default=50, show_default=True,
              help="Rows of each --show table.")
@click.option("--compare", default=None, metavar="POLICY[,POLICY...]",
              help="Faults of each policy for each --frames/--ram size, from one pass.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@click.option("--skip-bad-lines", is_flag=True, help="Count and report malformed lines instead "
                                                     "of stopping at the first.")
@click.option("--quiet", "-q", is_flag=True,
              help="No progress bar, no notes on stderr, and a PROGRAM's own output is not echoed "
                   "(--stdout FILE and --format json keep it).")
@program_options
@click.option("--svg", "svg_file", metavar="FILE", default=None,
              help="Also draw the run as SVG (the frame table over time, faults and TLB hit "
                   "ratio per time bin; with --compare the fault curve of each policy).")
def simulate_run(program, args, traces, trace_format, frames, ram, page_size, policy, refs, tlb_entries,
                 tlb_ways, split_tlb, asid, mmu, bits, walk_levels, tlb_ns, mem_ns, quantum, shows,
                 limit, compare, fmt, skip_bad_lines, quiet, svg_file=None, **prog):
    """Simulate demand paging: page faults by kind, evictions and dirty write-backs, swap-ins,
    TLB hits and misses, and the effective access time. Three ways to call it: PROGRAM [ARGS]
    runs an i386 program on an emulated CPU (options end at PROGRAM); --trace FILE replays a
    memory trace; --refs '7 0 1 2' steps a textbook reference string.

    Every page a record's bytes touch is one reference, in ascending page order (a size of 0
    counts as 1 byte); S and M are writes (M is one reference), I and L reads."""
    from elfvm.mmu.geometry import GeometryError, get_geometry
    from elfvm.mmu.tlb import TlbError, tlb_geometry

    ctx = click.get_current_context()
    _check_mode(ctx, program, traces, refs, compare, shows, tlb_entries)
    if refs is not None:
        return _refs_mode(refs, frames, policy, compare, shows, fmt)
    if program is not None:                     # program mode (issue 5): elfvm.emu
        args = drop_separator(args)
        sys.exit(run_program_mode(program, args, dict(
            traces=traces, compare=compare, page_size=page_size, bits=bits, frames=frames, ram=ram,
            policy=policy, mmu=mmu, shows=shows, limit=limit, fmt=fmt, quiet=quiet,
            tlb_entries=tlb_entries, tlb_ways=tlb_ways, split_tlb=split_tlb, asid=asid,
            walk_levels=walk_levels, tlb_ns=tlb_ns, mem_ns=mem_ns, svg=svg_file), prog))
    if sum(1 for t in traces if t == "-") > 1:
        raise UsageError("--trace -: stdin can be only one of the traces")
    try:
        geom = get_geometry(mmu, bits)
        tlb = tlb_geometry(tlb_entries, tlb_ways)
    except (GeometryError, TlbError) as e:
        raise UsageError(str(e)) from None
    if page_size is None:
        psize = geom.page_size
    else:
        try:
            psize = parse_size(page_size)
        except ValueError as e:
            raise UsageError(f"--page-size {page_size!r}: {e}") from None
        if psize < 1 or psize & (psize - 1):
            raise UsageError(f"--page-size {page_size}: must be a power of two")
    levels = geom.levels if walk_levels is None else walk_levels
    if levels < 0:
        raise UsageError(f"--walk-levels {walk_levels}: cannot be negative")
    if tlb_ns < 0 or mem_ns < 0:
        raise UsageError("--tlb-ns and --mem-ns cannot be negative")
    if quantum < 1:
        raise UsageError(f"--quantum {quantum}: must be at least 1")
    if limit < 1:
        raise UsageError(f"--limit {limit}: must be at least 1")
    policies = None
    if compare is not None:
        policies = [p.strip() for p in compare.split(",") if p.strip()]
        bad = [p for p in policies if p not in POLICY_NAMES]
        if bad or not policies:
            raise UsageError(f"--compare {compare!r}: choose from {', '.join(POLICY_NAMES)}")
        if shows:
            raise UsageError("--show does not go with --compare")
    counts = frame_counts(frames, ram, psize, policies is not None)
    max_addr = min(geom.max_linear, (1 << 62) - 1)

    from elfvm.sim.engine import SimConfig
    from elfvm.sim.stream import compare as run_compare, run_traces

    cfg = SimConfig(policy, counts[0], psize, tlb, split_tlb, asid, levels, tlb_ns, mem_ns,
                    limit if "events" in shows else 0)
    with _progress(quiet, fmt) as progress:
        if policies is not None:
            result = run_compare(traces, policies, counts, cfg, fmt=trace_format, quantum=quantum,
                                 max_addr=max_addr, skip_bad=skip_bad_lines, progress=progress)
        else:
            result = run_traces(traces, cfg, fmt=trace_format, quantum=quantum, max_addr=max_addr,
                                skip_bad=skip_bad_lines, progress=progress,
                                timeline_bins=400 if svg_file is not None else 0)  # --svg: 400 bins
    if svg_file is not None:
        from elfvm.render import pictures

        if policies is not None:
            pictures.write_compare_svg(result, svg_file)
        else:
            pictures.write_simulate_svg(result, svg_file, geom.name)
    from elfvm.render import simulate as render

    note = render.bad_lines_note(result.bad_lines)
    if fmt == "json":
        import json

        data = render.compare_json(result) if policies is not None else render.to_json(result)
        click.echo(json.dumps(data, indent=1))
        if note and not quiet:
            click.echo(f"elfvm: {note}", err=True)
    elif policies is not None:
        click.echo(render.compare_table(result), nl=False)
        if note:
            click.echo(note)
    else:
        click.echo(render.to_table(result, geom.name, tuple(dict.fromkeys(shows)), limit), nl=False)
    if result.interrupted:                  # Ctrl-C: the report above covers what was read
        refs = result.references if policies is not None else result.total.references
        click.echo(f"elfvm: interrupted: the report covers the first {refs} references", err=True)
        sys.exit(130)


def _check_mode(ctx, program, traces, refs, compare, shows, tlb_entries) -> None:
    """Every option given must apply to the chosen way of calling simulate-run (exit 2 if not)."""
    if program is None and not traces and refs is None:
        raise UsageError("nothing to simulate: give PROGRAM [ARGS] (run it on the emulated CPU), "
                         "--trace FILE (a memory trace; '-' for stdin) or --refs '7 0 1 2 ...'")
    if sum(x for x in (program is not None, bool(traces), refs is not None)) > 1:
        raise UsageError("give one of PROGRAM, --trace FILE or --refs, not several")
    if refs is not None:
        extra = [p.name for p in ctx.command.params if p.name not in REFS_OK]
        reject(ctx, extra, "does not apply to --refs (a reference string of page numbers: "
                           "only --frames, --policy/--compare, --show steps, --format)")
        if set(shows) - {"steps"}:
            raise UsageError("--show: with --refs only 'steps'")
        return
    if "steps" in shows:
        raise UsageError("--show steps: only with --refs (a reference string)")
    if program is not None:
        reject(ctx, TRACE_ONLY, "only with --trace (program mode uses the MMU's 4 KiB pages and "
                                "reads its own references)")
        reject(ctx, ["compare"], "only with --trace or --refs (compare policies over one stream)")
    else:
        reject(ctx, PROGRAM_ONLY, "only when running a PROGRAM, not with --trace")
        if len(traces) == 1:
            reject(ctx, ["quantum", "asid"], "only with several --trace files (one process has no "
                                             "context switches)")
    if compare is not None:
        reject(ctx, ["policy"], "--compare lists the policies; drop --policy")
    if not shows:
        reject(ctx, ["limit"], "sets the rows of the --show tables; give --show too")
    if tlb_entries == 0:
        reject(ctx, ["tlb_ways", "split_tlb", "asid", "tlb_ns"], "there is no TLB (--tlb-entries 0)")


def _refs_mode(refs, frames, policy, compare, shows, fmt) -> None:
    """--refs: step the reference string under each policy and frame count (elfvm.sim.steps)."""
    from elfvm.render.simulate import refs_json, refs_table
    from elfvm.sim.steps import RefsError, belady, parse_refs, step_refs

    try:
        pages = parse_refs(refs)
    except RefsError as e:
        raise UsageError(f"--refs: {e}") from None
    counts = _int_list(frames, "--frames") if frames is not None else [3]
    if len(counts) > 1 and compare is None:
        raise UsageError("--frames: a list of sizes only goes with --compare")
    if any(not 1 <= n <= 1024 for n in counts):
        raise UsageError("--frames: with --refs, 1 to 1024 frames")
    policies = [policy]
    if compare is not None:
        policies = [p.strip() for p in compare.split(",") if p.strip()]
        if not policies or any(p not in POLICY_NAMES for p in policies):
            raise UsageError(f"--compare {compare!r}: choose from {', '.join(POLICY_NAMES)}")
    runs = [step_refs(pages, pol, n) for pol in policies for n in counts]
    if fmt == "json":
        click.echo(refs_json(pages, runs, belady(runs), "steps" in shows))
    else:
        click.echo(refs_table(pages, runs, belady(runs), "steps" in shows), nl=False)


class _progress:
    """Trace mode's progress line (elfvm.render.progress, as program mode's): bytes read, on a
    terminal only, never with --quiet or --format json, and only for traces worth waiting for."""

    MIN_BYTES = 8 << 20

    def __init__(self, quiet: bool, fmt: str = "table"):
        from elfvm.render.progress import on_terminal

        self.enabled = on_terminal(quiet, fmt)
        self.line = None

    def __enter__(self):
        return self.update if self.enabled else None

    def update(self, done: int, total: int | None) -> None:
        from elfvm.render.progress import StatusLine, trace_text

        if self.line is None:
            if total is not None and total < self.MIN_BYTES:
                return
            self.line = StatusLine()
        self.line.show(trace_text(done, total))

    def __exit__(self, *exc):
        if self.line is not None:
            self.line.clear()
        return False
