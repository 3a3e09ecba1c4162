"""`elfvm translate ADDR...`: walk addresses through segmentation and paging (thin CLI layer)."""

from __future__ import annotations

import sys

import click

from elfvm.commands.kernel_options import kernel_note, kernel_options, make_kernel_profile
from elfvm.errors import EXIT_USAGE, UsageError


def _read_addresses(path: str) -> list[str]:
    try:
        if path == "-":
            data = sys.stdin.read()
        else:
            with open(path) as f:
                data = f.read()
    except OSError as e:
        raise UsageError(f"--addresses {path}: {e.strerror}") from None
    return [ln.strip() for ln in data.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


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
@kernel_options
@click.option("--sysroot", default="/", show_default=True, help="Where PT_INTERP is looked up.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--addresses", "addr_file", metavar="FILE", help="Read addresses, one per line ('-': stdin).")
@click.option("--svg", "svg_file", metavar="FILE", default=None,
              help="Also draw the walks (the first 8 addresses) to this SVG file.")
def translate(addresses, elf, pid, mmu, bits, ram, access, cpl, profile_name, split, sysroot, fmt, addr_file,
              svg_file, kernel_version=None, hwcap=None, hwcap2=None, minsigstksz=None):
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
    from elfvm.mmu import InputFailure, TranslateError, open_address_space, translate_all
    from elfvm.mmu.render import render_json, render_table
    from elfvm.units import parse_size

    texts = list(addresses)
    if addr_file:
        texts += _read_addresses(addr_file)
    if elf and pid is not None:
        raise UsageError("give either --elf or --pid, not both")
    try:
        ram_bytes = parse_size(ram)
    except ValueError as e:
        raise UsageError(f"--ram: {e}") from None
    try:
        profile = make_kernel_profile(profile_name, split, kernel_version=kernel_version, hwcap=hwcap,
                                      hwcap2=hwcap2, minsigstksz=minsigstksz)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if kernel_version and pid is not None:
        raise UsageError("--kernel predicts an address space (--elf); --pid walks the live one")
    if kernel_note(profile) and elf:
        click.echo(f"elfvm: note: {kernel_note(profile)}", err=True)
    try:
        space = open_address_space(profile=profile, mmu=mmu, bits=bits, ram=ram_bytes, elf=elf, pid=pid,
                                   sysroot=sysroot)
    except TranslateError as e:
        raise UsageError(str(e)) from None
    if not texts:
        kernel = getattr(space, "kernel", None)
        if kernel is None:
            raise UsageError("no address given (ADDR... or --addresses FILE)")
        click.echo(_regions_text(kernel))
        return 0
    results = translate_all(space, texts, access, int(cpl))
    good = [r for r in results if not isinstance(r, InputFailure)]
    bad = [r for r in results if isinstance(r, InputFailure)]
    if svg_file and good:
        from elfvm.render.pictures import write_walk_svg

        write_walk_svg(space, good[:8], svg_file)
    if fmt == "json":
        click.echo(render_json(good))
    elif good:
        click.echo(render_table(good))
    for b in bad:
        click.echo(f"elfvm: translate: {b.message}" if b.input in b.message else
                   f"elfvm: translate: {b.input}: {b.message}", err=True)
    if bad:
        click.get_current_context().exit(EXIT_USAGE)
    return 0


def _regions_text(k) -> str:
    from tabulate import tabulate

    rows = [(name, f"{s:#010x}", f"{e - 1:#010x}", f"{(e - s) / (1 << 20):.2f} MiB", what)
            for name, s, e, what in k.rows()]
    head = (f"kernel half: PAGE_OFFSET {k.page_offset:#x}, {'PAE' if k.pae else 'non-PAE'}, RAM "
            f"{k.ram >> 20} MiB, lowmem {k.lowmem_bytes >> 20} MiB (MAXMEM {k.maxmem:#x}), "
            f"highmem {k.highmem_pages * 4096 >> 20} MiB, high_memory {k.high_memory:#x}")
    return head + "\n" + tabulate(rows, headers=["region", "start", "last", "size", "what"])
