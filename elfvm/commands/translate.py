"""`elfvm translate ADDR...`: walk addresses through segmentation and paging (thin CLI layer)."""

from __future__ import annotations

import itertools
import sys

import click

from elfvm.commands.kernel_options import kernel_note, kernel_options, make_kernel_profile
from elfvm.commands.options import escape, int_range, reject
from elfvm.errors import EXIT_USAGE, UsageError
from elfvm.mmu.inputs import read_address_chunks, read_address_lines


@click.command("translate")
@click.argument("addresses", nargs=-1)
@click.option("--elf", "elf", metavar="PROGRAM", help="Predict the address space of this i386 program.")
@click.option("--pid", type=int_range(1, (1 << 31) - 1), help="Walk a running i386 process (/proc/PID/maps and pagemap).")
@click.option("--mmu", type=click.Choice(["i386", "pae", "x86-64", "custom"]),
              help="Paging geometry (default: x86-64 for linux-x86_64-compat, i386 for linux-i386).")
@click.option("--bits", metavar="TOP,...,OFFSET", help="--mmu custom: index bits per level from the "
              "top level down, the page-offset bits last; the classic two-level i386 split is "
              "10,10,12 (PDE 10 bits, PTE 10 bits, 4 KiB pages).")
@click.option("--ram", default="256M", show_default=True, metavar="SIZE", help="Physical memory size.")
@click.option("--access", type=click.Choice(["r", "w", "x"]), default="r", show_default=True)
@click.option("--cpl", type=click.Choice(["3", "0"]), default="3", show_default=True,
              help="Privilege level: 3 user, 0 supervisor (kernel).")
@click.option("--profile", "profile_name", type=click.Choice(["linux-x86_64-compat", "linux-i386"]),
              default="linux-x86_64-compat", show_default=True)
@click.option("--split", default="3G", show_default=True, help="VMSPLIT for --profile linux-i386.")
@kernel_options(auxv=False)
@click.option("--sysroot", default="/", show_default=True, help="Where PT_INTERP is looked up.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "jsonl"]), default="table", show_default=True,
              help="jsonl: the compact bulk format, JSON lines: a record per page the first time "
                   "an address uses it, then one short line per address naming its page.")
@click.option("--addresses", "addr_file", metavar="FILE", help="Read addresses, one per line ('-': stdin).")
@click.option("--descriptor", "descriptors", multiple=True, metavar="gdt|ldt:I:base=..,limit=..,type=..,dpl=..",
              help="Put a segment descriptor of your own in the GDT or LDT for segmentation "
                   "exercises (repeatable): base, limit (20 bits), type (data-r, data-rw, "
                   "data-rw-down, code-x, code-xr, ...), dpl, g=1 (limit in 4 KiB units), p=0.")
@click.option("--svg", "svg_file", metavar="FILE", default=None,
              help="Also draw the walks (the first 8 addresses) to this SVG file.")
def translate(addresses, elf, pid, mmu, bits, ram, access, cpl, profile_name, split, sysroot, fmt, addr_file,
              descriptors, svg_file, kernel_version=None, hwcap=None, hwcap2=None, minsigstksz=None):
    """Translate logical/linear addresses to physical ones, as the MMU walks them.

    \b
    ADDR is a number (0x8049000), SELECTOR:OFFSET (0x23:0x8049000, gs:0x14) or, with --elf,
    a symbol (main, counter, table+0x10). Each answer shows the address split on one line
    (PDE 32 | PTE 74 | offset 0x123), the walk, and [SECTION SYMBOL+OFF]: the section and the
    nearest symbol below the address; '?' for the section means none holds it (a page's tail
    past the last section, e.g. [? __FRAME_END__+0xf]).
    \b
    Examples:
      elfvm translate --elf fixtures/bin/vars counter main 0xffffdf00
      elfvm translate --elf fixtures/bin/vars --access w --format json 0x08049000
      elfvm translate --mmu i386 0x0804a123
      elfvm translate --mmu custom --bits 10,10,12 0x12345678
      elfvm translate --mmu custom --bits 4,4,8 0x1234  (256 B pages)
      elfvm translate --profile linux-i386 --split 3G --ram 1G 0xc0100000 0xff000000
      elfvm translate --mmu i386 --descriptor ldt:1:base=0x10000,limit=0xfff,type=data-rw,dpl=3 0x0f:0x800 0x0f:0x1800
    """
    from elfvm.mmu import TranslateError, open_address_space
    from elfvm.units import parse_size

    ctx = click.get_current_context()
    if profile_name != "linux-i386":
        reject(ctx, ["split"], "only with --profile linux-i386 (a native 32-bit kernel's VMSPLIT)")
    if not elf:
        reject(ctx, ["sysroot"], "only with --elf PROGRAM (where its PT_INTERP is looked up)")
        reject(ctx, ["kernel_version"], "only with --elf PROGRAM (the address space a kernel "
                                        "version builds; --pid walks the live one)")
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
    if descriptors:
        _install_descriptors(space, descriptors, pid, addresses, addr_file)
    if not addresses and not addr_file:
        kernel = getattr(space, "kernel", None)
        if kernel is None:
            raise UsageError("no address given (ADDR... or --addresses FILE)")
        click.echo(_regions_text(kernel))
        return 0
    if fmt == "jsonl" or (fmt == "json" and addr_file):
        bad = _stream_json(space, addresses, addr_file, access, int(cpl), fmt == "jsonl", svg_file)
    else:
        texts = itertools.chain(addresses, read_address_lines(addr_file) if addr_file else ())
        note = X86_64_NOTE if mmu is None and profile.name == "linux-x86_64-compat" else ""
        bad = _answer_all(space, texts, access, int(cpl), fmt, svg_file, note)
    if bad:
        click.get_current_context().exit(EXIT_USAGE)
    return 0


X86_64_NOTE = ("note: --mmu x86-64 by default: an i386 task on this 64-bit kernel is walked\n"
               "  by the 4-level x86-64 MMU; --mmu i386 (or --profile linux-i386) gives the\n"
               "  lecture's two-level 10|10|12 walk\n")


def _install_descriptors(space, descriptors, pid, addresses, addr_file) -> None:
    """--descriptor: the user's own GDT/LDT entries for segmentation exercises."""
    from elfvm.mmu.descriptors import DescriptorError, install, parse_descriptor

    if pid is not None:
        raise UsageError("--descriptor: a live process's GDT/LDT is the kernel's; not with --pid")
    if not addr_file and not any(":" in t for t in addresses):
        raise UsageError("--descriptor: only SELECTOR:OFFSET addresses go through segmentation "
                         "(e.g. 0x0f:0x800 for LDT entry 1, RPL 3)")
    try:
        install(space.seg, [parse_descriptor(d) for d in descriptors])
    except DescriptorError as e:
        raise UsageError(f"--descriptor: {e}") from None


def _bad_input(text: str, message: str) -> None:
    click.echo(escape(f"elfvm: translate: {message}" if text in message else
                      f"elfvm: translate: {text}: {message}"), err=True)


def _answer_all(space, texts, access: str, cpl: int, fmt: str, svg_file, note: str = "") -> int:
    """ADDR arguments (and --addresses in table form): every answer, then the pictures; the
    table streams, one answer after another, written in blocks. Returns how many inputs were
    rejected."""
    from elfvm.mmu.bulk import translate_stream
    from elfvm.mmu.render import TranslationText, render_json

    good, bad, out = [], 0, []
    keep_all = fmt == "json"
    text = TranslationText(space.geom)
    if fmt == "table" and note:
        out.append(note + "\n")
    for r in translate_stream(space, texts, access, cpl):
        if isinstance(r, Exception):
            _write(out)                         # the answers before it come first
            _bad_input(r.input, str(r))
            bad += 1
            continue
        if keep_all or len(good) < 8:
            good.append(r)
        if fmt == "table":
            out.append(("\n" if good[0] is not r else "") + text(r) + "\n")
            if len(out) >= 256:
                _write(out)
    _write(out)
    if svg_file and good:
        from elfvm.render.pictures import write_walk_svg

        write_walk_svg(space, good[:8], svg_file)
    if fmt == "json":
        click.echo(render_json(good))
    return bad


def _write(out: list[str]) -> None:
    if out:
        sys.stdout.write("".join(out))
        sys.stdout.flush()
        out.clear()


def _stream_json(space, addresses, addr_file, access: str, cpl: int, compact: bool, svg_file) -> int:
    """--addresses FILE --format json: one JSON list, one compact object per line; --format
    jsonl: JSON lines (elfvm.mmu.bulk.JsonLines). Printed block by block as the addresses are
    read (constant memory), the ASCII blocks by the compiled loop (elfvm.mmu.bulk_native) when
    there is a C compiler and no --svg; --svg draws the first 8 afterwards. Returns how many
    inputs were rejected."""
    from elfvm.mmu.bulk import JsonLines
    from elfvm.mmu.bulk_native import native_lines

    render = JsonLines(space, access, cpl, compact=compact)
    sep = "\n" if compact else ",\n"
    native = native_lines(render, sep) if addr_file and not svg_file else None
    chunks = itertools.chain([list(addresses)], read_address_chunks(addr_file, ascii_bytes=native is not None)
                             if addr_file else ())
    write, flush = _binary_stdout()
    bad, started = 0, False
    first: list[str] = []                  # the inputs --svg draws

    def rejected(text, e) -> None:
        nonlocal bad
        _bad_input(text, str(e))
        bad += 1

    try:
        for texts in chunks:
            if texts.__class__ is bytes:        # an ASCII block, its lines read by the compiled loop
                started = native.write(texts, rejected, write, started)
            else:
                if svg_file and len(first) < 8:
                    first += texts[:8 - len(first)]
                lines = render.lines(texts, rejected)
                if lines:
                    write((("" if compact else ",\n" if started else "[\n") + sep.join(lines) +
                           ("\n" if compact else "")).encode())
                    started = True
            flush()
    finally:
        if not compact:
            write(b"\n]\n" if started else b"[]\n")
        flush()
    if svg_file:
        _draw_first(space, first, access, cpl, svg_file)
    return bad


def _binary_stdout():
    """(write, flush) of standard output's bytes (the JSON is ASCII): its binary buffer, after
    what was written as text, or encoded text where it has none. Unbuffered (python -u,
    PYTHONUNBUFFERED) the buffer is the raw file, which may take part of a write."""
    out = sys.stdout
    out.flush()
    raw = getattr(out, "buffer", None)
    if raw is None:
        return (lambda b: out.write(bytes(b).decode())), out.flush

    def write_all(b) -> None:
        view = memoryview(b)
        while view:
            n = raw.write(view)
            if n is None:                   # a non-blocking stdout, full: wait until it drains
                import select

                select.select([], [raw], [])
                continue
            view = view[n:]

    return write_all, raw.flush


def _draw_first(space, texts: list[str], access: str, cpl: int, svg_file: str) -> None:
    from elfvm.mmu import TranslateError
    from elfvm.mmu.bulk import translate_one
    from elfvm.render.pictures import write_walk_svg

    good = []
    for t in texts:
        try:
            good.append(translate_one(space, t, access, cpl))
        except TranslateError:
            continue
    if good:
        write_walk_svg(space, good, svg_file)


def _regions_text(k) -> str:
    from tabulate import tabulate

    rows = [(name, f"{s:#010x}", f"{e - 1:#010x}", f"{(e - s) / (1 << 20):.2f} MiB", what)
            for name, s, e, what in k.rows()]
    head = (f"kernel half: PAGE_OFFSET {k.page_offset:#x}, {'PAE' if k.pae else 'non-PAE'}, RAM "
            f"{k.ram >> 20} MiB, lowmem {k.lowmem_bytes >> 20} MiB (MAXMEM {k.maxmem:#x}), "
            f"highmem {k.highmem_pages * 4096 >> 20} MiB, high_memory {k.high_memory:#x}")
    return head + "\n" + tabulate(rows, headers=["region", "start", "last", "size", "what"])
