"""`elfvm layout PROGRAM [ARGS...]`: the initial memory map, as the kernel builds it."""

from __future__ import annotations

import os
import sys

import click

from elfvm.commands.kernel_options import kernel_note, kernel_options, make_kernel_profile
from elfvm.errors import EXIT_ERRNO, EXIT_KILLED, EXIT_VERIFY, UsageError
from elfvm.commands.options import PROGRAM_CONTEXT, build_env, drop_separator, int_range, reject
from elfvm.kernel.versions import running_kernel
from elfvm.units import RLIM_INFINITY, parse_size

EPILOG = """\b
Examples:
  elfvm layout fixtures/bin/hello_pie
  elfvm layout --format maps --env-clear fixtures/bin/hello_static
  elfvm layout --stack --env-clear fixtures/bin/tiny one two
  elfvm layout --explain 0x5655a000 fixtures/bin/hello_pie
  elfvm layout --profile linux-i386 --split 2G fixtures/bin/hello_pie
  elfvm layout --verify fixtures/bin/bigbss
"""


@click.command(epilog=EPILOG, context_settings=PROGRAM_CONTEXT)
@click.argument("program", type=click.Path(dir_okay=True, path_type=str))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option("--profile", type=click.Choice(["linux-x86_64-compat", "linux-i386"]),
              default="linux-x86_64-compat", show_default=True,
              help="An i386 program on this x86-64 kernel, or on a native 32-bit kernel.")
@click.option("--split", type=click.Choice(["3G", "3G_OPT", "2G", "2G_OPT", "1G"]), default="3G",
              show_default=True, help="linux-i386 only: the VMSPLIT (PAGE_OFFSET = TASK_SIZE).")
@click.option("--sysroot", default="/", show_default=True, type=click.Path(file_okay=False),
              help="Where PT_INTERP is looked up.")
@click.option("--env", "env_set", multiple=True, metavar="K=V", help="Set an environment variable (repeatable).")
@click.option("--env-clear", is_flag=True, help="Start from an empty environment.")
@click.option("--argv0", default=None, help="argv[0] (default: PROGRAM as given).")
@click.option("--rlimit-stack", default="8M", show_default=True, metavar="SIZE|unlimited",
              help="RLIMIT_STACK (ulimit -s), e.g. 8M, 100K, unlimited.")
@click.option("--legacy", is_flag=True, help="ADDR_COMPAT_LAYOUT (setarch -L): bottom-up mmap.")
@click.option("--3gb", "addr_limit_3gb", is_flag=True, help="ADDR_LIMIT_3GB (setarch -3).")
@click.option("--aslr", is_flag=True, help="Randomize like randomize_va_space=2 (without --seed: "
              "a seed is picked and printed, so the run can be repeated).")
@click.option("--seed", type=int_range(0, (1 << 64) - 1), default=None,
              help="Seed for --aslr: the same seed, the same layout.")
@click.option("--format", "fmt", type=click.Choice(["table", "maps", "json"]), default="table",
              show_default=True)
@click.option("--stack", "show_stack", is_flag=True, help="Also show the initial stack word by word.")
@click.option("--svg", "svg_file", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Also draw the address space to this SVG file.")
@click.option("--diagram", is_flag=True, help="Draw the address space in the terminal instead of the table.")
@click.option("--wide", is_flag=True, help="Table: every column on one row (dev, inode, kind, bytes, "
              "source) instead of fitting the terminal with the details under each mapping.")
@click.option("--explain", "explain", metavar="ADDR", default=None,
              help="Say in plain words why the mapping holding ADDR (a number or a symbol) is "
                   "where it is, and which section holds ADDR.")
@kernel_options
@click.option("--verify", is_flag=True,
              help="Run PROGRAM under ptrace to its first instruction (ASLR off) and diff the real "
                   "/proc/PID/maps, auxv and registers with the prediction.")
def layout(program, args, profile, split, sysroot, env_set, env_clear, argv0, rlimit_stack, legacy,
           addr_limit_3gb, aslr, seed, fmt, show_stack, svg_file, diagram, wide, explain,
           kernel_version, hwcap, hwcap2, minsigstksz, verify):
    """Predict the memory map of PROGRAM at its first instruction, exactly as this machine's
    kernel builds it at execve(), without running it. Options end at PROGRAM: everything after
    it (ARGS, dashes included) is the program's argv, as with strace or env."""
    from elfvm.kernel.binfmt_elf import ExecRequest, UnsupportedProgram, execve

    check_program(program)
    args = drop_separator(args)
    check_option_combinations(click.get_current_context(), profile, fmt, diagram, explain, verify, aslr)
    seed = aslr_seed(aslr, seed)
    if not os.path.isdir(sysroot):
        raise UsageError(f"--sysroot {sysroot}: not a directory")
    rlim = parse_rlimit_stack(rlimit_stack)
    prof = make_kernel_profile(profile, split, addr_limit_3gb=addr_limit_3gb, legacy=legacy,
                               kernel_version=kernel_version, hwcap=hwcap, hwcap2=hwcap2,
                               minsigstksz=minsigstksz)
    check_verify_kernel(prof, verify, kernel_version)
    if kernel_note(prof) and fmt != "table":
        click.echo(f"elfvm: note: {kernel_note(prof)}", err=True)
    argv = [argv0 if argv0 is not None else program, *args]
    req = ExecRequest(program, argv, build_env(env_clear, env_set), prof, sysroot=sysroot,
                      rlimit_stack=rlim, seed=seed if aslr else None)
    try:
        result = execve(req)
    except UnsupportedProgram as e:
        raise UsageError(str(e)) from None

    v = result.verdict
    if fmt == "maps" and v.result == "ok" and not (verify or svg_file or diagram):
        from elfvm.mm.maps import maps_text      # the fast path: no table machinery

        click.echo(maps_text(result.mm), nl=False)
        return
    show_layout(result, fmt, svg_file, diagram, explain, rlim, show_stack, wide)
    if v.result != "ok":
        from elfvm.render.layout import verdict_line

        click.echo(f"elfvm: {verdict_line(result)}", err=True)
        sys.exit(EXIT_ERRNO if v.result == "errno" else EXIT_KILLED)
    if verify:
        verify_layout(req, result, fmt, addr_limit_3gb=addr_limit_3gb, legacy=legacy)


def check_program(program: str) -> None:
    """PROGRAM must exist and not be a directory (execve's ENOENT/EACCES, said plainly)."""
    if not os.path.lexists(program):
        raise UsageError(f"{program}: no such file")
    if os.path.isdir(program):
        raise UsageError(f"{program}: is a directory, not a program")


def check_option_combinations(ctx: click.Context, profile: str, fmt: str, diagram: bool,
                              explain: str | None, verify: bool, aslr: bool) -> None:
    """Options that do not go together are a usage error rather than silently ignored."""
    if profile != "linux-i386":
        reject(ctx, ["split"], "only with --profile linux-i386 (a native 32-bit kernel's VMSPLIT)")
    if fmt != "table":
        reject(ctx, ["show_stack", "diagram", "wide", "explain"],
               f"draws a table for people; it does not go with --format {fmt}")
    if diagram:
        reject(ctx, ["show_stack", "wide", "explain"], "goes with the table, not with --diagram")
    if explain is not None:
        reject(ctx, ["show_stack", "wide"], "goes with the table, not with --explain")
    if verify and profile != "linux-x86_64-compat":
        raise UsageError("--verify compares with this machine's kernel: use the default "
                         "--profile linux-x86_64-compat")
    if verify and aslr:
        raise UsageError("--verify runs with ASLR off; drop --aslr")


def aslr_seed(aslr: bool, seed: int | None) -> int | None:
    """--aslr without --seed picks a seed and prints it, so that the run can be repeated."""
    if aslr and seed is None:
        seed = int.from_bytes(os.urandom(4), "little")
        click.echo(f"elfvm: --aslr --seed {seed} (pass it again for the same layout)", err=True)
    if seed is not None and not aslr:
        raise UsageError("--seed only makes sense with --aslr")
    return seed


def parse_rlimit_stack(rlimit_stack: str) -> int:
    """--rlimit-stack as setrlimit(RLIMIT_STACK) takes it: a size, or unlimited (RLIM_INFINITY)."""
    try:
        rlim = parse_size(rlimit_stack, allow_unlimited=True)
    except ValueError as e:
        raise UsageError(f"--rlimit-stack {rlimit_stack!r}: {e}") from None
    if rlim > RLIM_INFINITY:
        raise UsageError(f"--rlimit-stack {rlimit_stack}: more than RLIM_INFINITY (2^64-1)")
    return rlim


def check_verify_kernel(prof, verify: bool, kernel_version: str | None) -> None:
    """--verify runs on this machine's kernel, so a --kernel of another series or patch
    level cannot be compared."""
    want, live = prof.kernel.version, running_kernel()
    if verify and kernel_version and (want.series != live.series or
                                      want.patch not in (None, live.patch)):
        raise UsageError(f"--verify compares with this machine's kernel ({running_kernel()}), "
                         f"not --kernel {kernel_version}")


def show_layout(result, fmt: str, svg_file: str | None, diagram: bool, explain: str | None,
                rlim: int, show_stack: bool, wide: bool) -> None:
    """Print the prediction in the chosen form (and write --svg); with an errno verdict and no
    new address space there is nothing to show but the verdict."""
    from elfvm.render import layout as render

    v = result.verdict
    if svg_file and result.mm.vmas:
        from elfvm.render import pictures

        pictures.write_layout_svg(result, svg_file)
    if fmt == "json":
        import json

        click.echo(json.dumps(render.to_json(result), indent=2))
    elif v.result == "errno" and not result.mm.vmas:
        pass                        # execve returned: there is no new address space to show
    elif fmt == "maps":
        if v.result == "ok":
            click.echo(render.render_maps(result), nl=False)
    elif diagram:
        from elfvm.render import pictures

        click.echo(pictures.layout_diagram_text(result), nl=False)
    elif explain is not None:
        echo_explain(result, explain, rlim)
    else:
        import shutil

        click.echo(render.to_table(result, show_stack=show_stack, wide=wide,
                                   width=shutil.get_terminal_size((80, 24)).columns), nl=False)


def echo_explain(result, explain: str, rlim: int) -> None:
    """--explain ADDR: the reasons, wrapped to the terminal."""
    from elfvm.kernel.explain import ExplainError, explain_address

    try:
        import shutil
        import textwrap

        width = shutil.get_terminal_size((80, 24)).columns - 1
        for line in explain_address(result, explain, rlim):
            click.echo("\n".join(textwrap.wrap(line, width, subsequent_indent="  ",
                                                break_on_hyphens=False)))
    except ExplainError as e:
        raise UsageError(f"--explain {explain}: {e}") from None


def verify_layout(req, result, fmt: str, addr_limit_3gb: bool, legacy: bool) -> None:
    """--verify: run PROGRAM under ptrace to its first instruction and diff with the prediction;
    a difference is exit EXIT_VERIFY."""
    from elfvm.oracle.compare import verify_against_live

    if req.profile.name != "linux-x86_64-compat":
        raise UsageError("--verify compares with this machine's kernel: use the default "
                         "--profile linux-x86_64-compat")
    report = verify_against_live(req, result, addr_limit_3gb=addr_limit_3gb, legacy=legacy)
    click.echo(report.text, nl=False, err=fmt != "table")
    if not report.identical:
        sys.exit(EXIT_VERIFY)
