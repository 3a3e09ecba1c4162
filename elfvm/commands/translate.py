"""`elfvm translate ADDR...`: walk addresses through segmentation and paging (thin CLI layer)."""

from __future__ import annotations

import itertools
import sys

import click

from elfvm.errors import EXIT_USAGE, UsageError
from elfvm.mmu.inputs import read_address_lines


@click.command("translate")
@click.argument("addresses", nargs=-1)
@click.option("--elf", "elf", metavar="PROGRAM", help="Predict the address space of this i386 program.")
@click.option("--pid", type=int, help="Walk a running i386 process (/proc/PID/maps and pagemap).")
@click.option("--mmu", type=click.Choice(["i386", "pae", "x86-64", "custom"]),
              help="Paging geometry (default: x86-64 for linux-x86_64-compat, i386 for linux-i386).")
@click.option("--bits", metavar="B1,B2,...,OFF", help="Index bits per level and page-offset bits for --mmu custom.")
@click.option("--ram", default="256M", show_default=True, metavar="SIZE", help="Physical memory size.")
@click.option("--access", type=click.Choice(["r", "w", "x"]), default="r", show_default=True)
@click.option("--cpl", type=click.Choice(["3", "0"]), default="3", show_default=True,
              help="Privilege level: 3 user, 0 supervisor (kernel).")
@click.option("--profile", "profile_name", type=click.Choice(["linux-x86_64-compat", "linux-i386"]),
              default="linux-x86_64-compat", show_default=True)
@click.option("--split", default="3G", show_default=True, help="VMSPLIT for --profile linux-i386.")
@click.option("--sysroot", default="/", show_default=True, help="Where PT_INTERP is looked up.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--addresses", "addr_file", metavar="FILE", help="Read addresses, one per line ('-': stdin).")
@click.option("--svg", "svg_file", metavar="FILE", default=None,
              help="Also draw the walks (the first 8 addresses) to this SVG file.")
def translate(addresses, elf, pid, mmu, bits, ram, access, cpl, profile_name, split, sysroot, fmt, addr_file,
              svg_file):
    """Translate logical/linear addresses to physical ones, as the MMU walks them.

    \b
    ADDR is a number (0x8049000), SELECTOR:OFFSET (0x23:0x8049000, gs:0x14) or, with --elf,
    a symbol (main, counter, table+0x10).
    \b
    Examples:
      elfvm translate --elf fixtures/bin/vars counter main 0xffffdf00
      elfvm translate --elf fixtures/bin/vars --access w --format json 0x08049000
      elfvm translate --mmu custom --bits 12,10,10 0x12345678
      elfvm translate --profile linux-i386 --split 3G --ram 1G 0xc0100000 0xff000000
    """
    from elfvm.kernel.profile import make_profile
    from elfvm.mmu import TranslateError, open_address_space
    from elfvm.units import parse_size

    if elf and pid is not None:
        raise UsageError("give either --elf or --pid, not both")
    try:
        ram_bytes = parse_size(ram)
    except ValueError as e:
        raise UsageError(f"--ram: {e}") from None
    try:
        profile = make_profile(profile_name, split)
    except ValueError as e:
        raise UsageError(str(e)) from None
    try:
        space = open_address_space(profile=profile, mmu=mmu, bits=bits, ram=ram_bytes, elf=elf, pid=pid,
                                   sysroot=sysroot)
    except TranslateError as e:
        raise UsageError(str(e)) from None
    if not addresses and not addr_file:
        kernel = getattr(space, "kernel", None)
        if kernel is None:
            raise UsageError("no address given (ADDR... or --addresses FILE)")
        click.echo(_regions_text(kernel))
        return 0
    texts = itertools.chain(addresses, read_address_lines(addr_file) if addr_file else ())
    if fmt == "json" and addr_file:
        bad = _stream_json(space, texts, access, int(cpl))
    else:
        bad = _answer_all(space, list(texts), access, int(cpl), fmt, svg_file)
    if bad:
        click.get_current_context().exit(EXIT_USAGE)
    return 0


def _bad_input(text: str, message: str) -> None:
    click.echo(f"elfvm: translate: {message}" if text in message else
               f"elfvm: translate: {text}: {message}", err=True)


def _answer_all(space, texts: list[str], access: str, cpl: int, fmt: str, svg_file) -> int:
    """ADDR arguments (and --addresses in table form): every answer, then the pictures; the
    table streams, one answer after another. Returns how many inputs were rejected."""
    from elfvm.mmu.bulk import translate_stream
    from elfvm.mmu.render import render_json, translation_text

    good, bad, first = [], 0, True
    keep_all = fmt == "json"
    for r in translate_stream(space, texts, access, cpl):
        if isinstance(r, Exception):
            _bad_input(r.input, str(r))
            bad += 1
            continue
        if keep_all or len(good) < 8:
            good.append(r)
        if fmt == "table":
            click.echo(("" if first else "\n") + translation_text(r))
            first = False
    if svg_file and good:
        from elfvm.render.pictures import write_walk_svg

        write_walk_svg(space, good[:8], svg_file)
    if fmt == "json":
        click.echo(render_json(good))
    return bad


def _stream_json(space, texts, access: str, cpl: int) -> int:
    """--addresses FILE --format json: one JSON list, one compact object per line, printed as
    the addresses are read (constant memory). Returns how many inputs were rejected."""
    from elfvm.mmu import TranslateError
    from elfvm.mmu.bulk import JsonLines

    out = sys.stdout
    render = JsonLines(space, access, cpl)
    bad, n, buf = 0, 0, []
    try:
        for text in texts:
            try:
                line = render.line(text)
            except TranslateError as e:
                _bad_input(text, str(e))
                bad += 1
                continue
            buf.append(("[\n" if n == 0 else ",\n") + line)
            n += 1
            if len(buf) >= 512:
                out.write("".join(buf))
                buf.clear()
    finally:
        buf.append("[]\n" if n == 0 else "\n]\n")
        out.write("".join(buf))
        out.flush()
    return bad


def _regions_text(k) -> str:
    from tabulate import tabulate

    rows = [(name, f"{s:#010x}", f"{e - 1:#010x}", f"{(e - s) / (1 << 20):.2f} MiB", what)
            for name, s, e, what in k.rows()]
    head = (f"kernel half: PAGE_OFFSET {k.page_offset:#x}, {'PAE' if k.pae else 'non-PAE'}, RAM "
            f"{k.ram >> 20} MiB, lowmem {k.lowmem_bytes >> 20} MiB (MAXMEM {k.maxmem:#x}), "
            f"highmem {k.highmem_pages * 4096 >> 20} MiB, high_memory {k.high_memory:#x}")
    return head + "\n" + tabulate(rows, headers=["region", "start", "last", "size", "what"])
