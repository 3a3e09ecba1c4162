"""The program mode of `elfvm simulate-run PROGRAM [ARGS...]`, called by elfvm.commands.simulate_run.

`simulate_program(...)` turns the command's options into RunOptions, runs the program, prints the
report (table or JSON) and returns the exit code: the guest's exit status (128 + signal when it
died of one), 5 when --max-instructions stopped it, 6 with --strict when the guest made a
system call elfvm does not implement, 130 on Ctrl-C; 2 for bad input and 3/4 when
execve would refuse the program (the layout verdict), raised as ElfvmError.
"""

from __future__ import annotations

import os
import sys

import click

from elfvm.errors import UsageError

SVG_BINS = 400                   # time bins of --svg, as in trace mode
EXIT_STRICT = 6                  # --strict: the guest made a system call elfvm lacks


def simulate_program(program: str, args=(), *, frames: str | None = None, ram: str | None = None,
                     policy: str = "fifo", mmu: str = "x86-64", shows=(), limit: int = 50,
                     fmt: str = "table", quiet: bool = False, fault_model: str = "linux",
                     sysroot: str = "/", stdin: str | None = None, write_dir: str | None = None,
                     max_instructions: int | None = None, env=(), seed: int | None = None,
                     emit_trace: str | None = None, exact: bool = False,
                     rlimit_stack: int = 8 << 20, tlb: dict | None = None,
                     svg: str | None = None, stdout_file: str | None = None,
                     cwd: str | None = None, strict: bool = False, clock: str = "host", profile=None,
                     page_cache: str = "model") -> int:
    """`tlb`: the trace options that shape the model's TLB and walk (tlb_entries, tlb_ways,
    split_tlb, asid, walk_levels, tlb_ns, mem_ns). `svg`: also draw the run there (the frame
    table over time, faults by kind and the TLB hit ratio per time bin). `profile`: the kernel
    profile (--kernel and the CPU's auxv values); default: this machine's."""
    from elfvm.render.program import render_json, render_text
    from elfvm.emu.run import RunOptions, run_program
    from elfvm.units import parse_size

    if frames is not None and ram is not None:
        raise UsageError("give either --frames or --ram, not both")
    try:
        ram_bytes = parse_size(ram) if ram else 256 << 20
    except ValueError as e:
        raise UsageError(f"--ram {ram!r}: {e}") from None
    if not 1 << 12 <= ram_bytes <= 1 << 38:
        raise UsageError(f"--ram {ram}: from 4K to 256G (the frames this simulator keeps: 2^26)")
    nframes = None
    if frames:
        try:
            nframes = int(str(frames), 0)
        except ValueError:
            raise UsageError(f"--frames {frames!r}: one number in program mode") from None
    if max_instructions is not None and max_instructions < 1:
        raise UsageError(f"--max-instructions {max_instructions}: must be at least 1")
    if limit < 1:
        raise UsageError(f"--limit {limit}: must be at least 1")
    if stdin is not None:
        try:
            with open(stdin, "rb"):
                pass
        except OSError as e:
            raise UsageError(f"--stdin {stdin!r}: {e.strerror}") from None
        if os.path.isdir(stdin):
            raise UsageError(f"--stdin {stdin}: is a directory")
    if write_dir is not None and not os.path.isdir(write_dir):
        raise UsageError(f"--write-dir {write_dir}: not a directory")
    from elfvm.emu.run import clock_start

    clock_start(clock)                            # a bad --clock is a usage error, up front
    if not os.path.isdir(sysroot):
        raise UsageError(f"--sysroot {sysroot}: not a directory")
    live = not quiet and fmt != "json"
    from elfvm.render.progress import StatusLine, on_terminal, program_text

    line = StatusLine() if on_terminal(quiet, fmt, stdout_too=True) else None

    def echo(is_err: bool, chunk: bytes) -> None:
        stream = sys.stderr if is_err else sys.stdout
        if line is None:
            stream.buffer.write(chunk)
            stream.flush()
            return
        with line.writing():                  # the progress line steps aside
            stream.buffer.write(chunk)
            stream.flush()

    def progress(instructions: int | None, faults: int) -> None:
        line.show(program_text(instructions, faults))

    opts = RunOptions(program, tuple(args), tuple(env), sysroot=sysroot, ram=ram_bytes, frames=nframes,
                      policy=policy, fault_model=fault_model, mmu=mmu, stdin_path=stdin,
                      write_dir=write_dir, cwd=cwd, clock=clock, page_cache=page_cache,
                      max_instructions=max_instructions, rlimit_stack=rlimit_stack, seed=seed,
                      echo=echo if live else None, exact=exact, emit_trace=emit_trace,
                      timeline_bins=SVG_BINS if svg is not None else 0, profile=profile,
                      progress=progress if line is not None else None, **(tlb or {}))
    try:
        report = run_program(opts)
    finally:
        if line is not None:
            line.clear()
    if svg is not None:
        from elfvm.render.pictures import write_program_svg

        write_program_svg(report, svg, mmu)
    if stdout_file is not None:
        try:
            with open(stdout_file, "wb") as f:
                report.guest_stdout.copy_to(f)
        except OSError as e:
            raise UsageError(f"--stdout {stdout_file}: {e.strerror}") from None

    from elfvm.commands.options import printable

    if fmt == "json":
        click.echo(printable(render_json(report)))
        for w in report.warnings:            # the table prints them; JSON's keys are fixed
            click.echo(f"elfvm: warning: {printable(w)}", err=True)
        if report.fault_around and page_cache != "model" and not quiet:
            # the folio source asked for, and what it read (the default model: see --help)
            click.echo(f"elfvm: note: {printable(report.fault_around)}", err=True)
    else:
        click.echo(printable(render_text(report, tuple(shows), limit)), nl=False)
    if report.stop_reason == "max-instructions":
        click.echo(f"elfvm: {program}: stopped after --max-instructions {max_instructions}", err=True)
    for u in report.unknown_syscalls:             # never silent, whatever --quiet says
        click.echo(f"elfvm: warning: {program}: system call {u['name']} ({u['number']}) is not "
                   f"implemented: returned -ENOSYS ({u['count']} calls)", err=True)
    if report.stop_reason == "interrupted":
        click.echo(f"elfvm: {program}: interrupted", err=True)
        return 130
    if strict and report.unknown_syscalls:
        click.echo(f"elfvm: {program}: --strict: unimplemented system calls", err=True)
        return EXIT_STRICT
    return report.exit_code
