"""`translate --addresses FILE --format jsonl|json`: the compiled per-address loop
(elfvm/mmu/jsonlines.c, elfvm.mmu.bulk_native) writes byte for byte what the Python loop
(elfvm.mmu.bulk.JsonLines) writes, errors and exit status included: one behaviour, whatever the
input (numbers in every form, bad lines, holes, the kernel half, symbols, sections, selectors)
and whatever the geometry."""

import os
import random

import pytest
from click.testing import CliRunner

from elfvm.cli import cli
from elfvm.kernel.profile import make_profile
from elfvm.mmu import bulk_native, open_address_space

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARS = os.path.join(ROOT, "fixtures", "bin", "vars")
HELLO_PIE = os.path.join(ROOT, "fixtures", "bin", "hello_pie")

pytestmark = pytest.mark.skipif(bulk_native._library() is None, reason="no C compiler: only the Python loop exists")


def _lines(n, seed):
    """Address lines of every kind and form; many share a page, a hole or a walk."""
    rnd = random.Random(seed)
    odd = ["", "   ", "# a comment", "  # indented comment", "0", "00", "000", "01", "0x", "0X1F",
           "0x_8048000", "1_000", "+4096", "-5", "0o1000", "0b1", " 0x8048123 ", "\t0x8048124\r",
           "\x1c0x8048125\x1f", "0x0000000008048126", "0x00000000000000008048127", "18446744073709551616",
           "0x1ffffffff", "0xffffffff", "0xfffff000", "0xffffe800", "main", "counter", "table+0x10",
           "main+1", "nosuchsym", "0x23:0x804c010", "gs:0", "ds:counter", "zz top", "0xg", "12ab",
           "99999999999999999999", "0x10000000000000000"]
    out = list(odd)
    vmas = open_address_space(profile=make_profile(), elf=VARS).mm.vmas
    while len(out) < n:
        r = rnd.random()
        if r < 0.6:
            v = rnd.choice(vmas)
            a = rnd.randrange(max(0, v.start - 0x3000), min(1 << 32, v.end + 0x3000))
        elif r < 0.97:
            a = rnd.randrange(0, 1 << 32)
        else:
            out.append(rnd.choice(odd))
            continue
        form = rnd.random()
        out.append(hex(a) if form < 0.6 else str(a) if form < 0.8 else f"{a:#X}" if form < 0.9 else f"  {a:#x}  ")
    return out


def _run(monkeypatch, args, native: bool):
    with monkeypatch.context() as m:
        if not native:
            m.setattr(bulk_native, "native_lines", lambda render, sep: None)
        r = CliRunner().invoke(cli, args)
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    return r.exit_code, r.stdout_bytes, r.stderr_bytes


def _same(monkeypatch, args, compiled: bool = True):
    calls = []
    python_line = bulk_native.NativeLines._python_line
    with monkeypatch.context() as m:
        m.setattr(bulk_native.NativeLines, "_python_line", lambda self, *a: calls.append(1) or python_line(self, *a))
        native = _run(monkeypatch, args, True)
    python = _run(monkeypatch, args, False)
    lines = sum(1 for t in open(args[args.index("--addresses") + 1], "rb").read().split(b"\n")
                if t.strip() and not t.strip().startswith(b"#"))
    if compiled:
        assert 0 < len(calls) < 0.8 * lines         # the compiled loop answered lines
    assert native[0] == python[0]
    assert native[2] == python[2]
    assert native[1] == python[1]
    return native


@pytest.mark.parametrize("fmt", ["jsonl", "json"])
@pytest.mark.parametrize("options", [
    [], ["--access", "w"], ["--access", "x", "--cpl", "0"], ["--mmu", "i386"], ["--mmu", "pae"],
    ["--profile", "linux-i386"], ["--profile", "linux-i386", "--mmu", "pae", "--ram", "1G"],
    ["--mmu", "custom", "--bits", "8,8,16"], ["--mmu", "custom", "--bits", "4,4,8"]])
def test_native_loop_writes_what_the_python_loop_writes(tmp_path, monkeypatch, fmt, options):
    path = tmp_path / "addresses"
    path.write_text("\n".join(_lines(4000, seed=len(options) * 7 + len(fmt))) + "\n")
    code, out, err = _same(monkeypatch, ["translate", "--elf", VARS, *options, "--addresses", str(path),
                                         "--format", fmt], compiled="4,4,8" not in options)
    assert code == 2 and out and b"nosuchsym" in err      # bad lines: errors, the rest answered
    if "4,4,8" not in options:          # (a 16-bit space: every address above it, answered by Python)
        assert out.count(b'"symbol":"main') and out.count(b'".bss"')


def test_native_loop_across_blocks_and_a_small_output_buffer(tmp_path, monkeypatch):
    """Lines cut by the 64 KiB reads, a last line without its newline, and a small output
    buffer (the loop stops when it is full, and a line longer than it goes to Python)."""
    path = tmp_path / "addresses"
    path.write_text("\n".join(_lines(30000, seed=3)))
    for size in (4096, 300):                    # 300: a JSON object (or a record) is longer
        monkeypatch.setattr(bulk_native, "_OUT", size)
        for fmt in ("jsonl", "json"):
            _same(monkeypatch, ["translate", "--elf", HELLO_PIE, "--addresses", str(path), "--format", fmt],
                  compiled=size > 300)


def test_native_loop_with_arguments_and_non_ascii_blocks(tmp_path, monkeypatch):
    """ADDR arguments first (the Python loop), a block with UTF-8 (the Python loop: int() takes
    other digits too), then a line that is not UTF-8 (the error names it)."""
    path = tmp_path / "addresses"
    lines = _lines(12000, seed=5)           # the first 64 KiB block: ASCII
    path.write_bytes(("\n".join(lines) + "\n\uff11\uff12\n0x8048000\n").encode() + b"0x8048001\n\xff\xfe\n0x8048002\n")
    for fmt in ("jsonl", "json"):
        code, out, err = _same(monkeypatch, ["translate", "--elf", VARS, "--addresses", str(path), "--format",
                                             fmt, "0x8048010", "main"])
        assert code == 2 and b"not UTF-8" in err and b'"input":"\\uff11\\uff12"' in out


def test_without_a_compiler_the_python_loop_answers(tmp_path, monkeypatch):
    path = tmp_path / "addresses"
    path.write_text("\n".join(_lines(500, seed=9)) + "\n")
    args = ["translate", "--elf", VARS, "--addresses", str(path), "--format", "jsonl"]
    want = _run(monkeypatch, args, True)
    monkeypatch.setattr(bulk_native, "build", lambda src: None)
    assert _run(monkeypatch, args, True) == want


@pytest.mark.parametrize("options", [[], ["--mmu", "i386"], ["--mmu", "pae"], ["--profile", "linux-i386"],
                                     ["--profile", "linux-i386", "--mmu", "pae", "--ram", "1G"]])
def test_a_holes_pages_numbered_by_either_loop(tmp_path, monkeypatch, options):
    """Addresses in the holes, many under each not-present entry's table: the compiled loop
    numbers a hole's pages itself (a table of not-present entries at once, each entry's record
    before its first line); an input it does not read (underscores, a non-ASCII block) on such
    a page takes the same page number from it, in either format."""
    rnd = random.Random(len(options))
    vmas = open_address_space(profile=make_profile(), elf=VARS).mm.vmas
    gaps = [(a.end, b.start) for a, b in zip(vmas, vmas[1:]) if b.start > a.end] + [(0, vmas[0].start)]
    lines = []
    for _ in range(9000):                   # the first 64 KiB block: ASCII, the next not
        lo, hi = rnd.choice(gaps) if rnd.random() < 0.7 else (0, 1 << 32)
        a = rnd.randrange(lo, hi)
        form = rnd.random()
        lines.append(f"{a:#_x}" if form < 0.05 else f"{a:_d}" if form < 0.1 else hex(a))
    tail = [f"{int(t.replace('_', ''), 0):#_x}" for t in lines[3000:3100]]     # pages already numbered
    path = tmp_path / "addresses"
    path.write_bytes(("\n".join(lines) + "\n").encode() + ("\n".join(["\uff11"] + tail) + "\n").encode())
    for fmt in ("jsonl", "json"):
        code, out, _ = _same(monkeypatch, ["translate", "--elf", VARS, *options, "--addresses", str(path),
                                           "--format", fmt])
        assert code == 0 and out.count(b'"present":false')


@pytest.mark.parametrize("options", [[], ["--access", "w", "--cpl", "0"], ["--mmu", "i386"], ["--mmu", "pae"],
                                     ["--profile", "linux-i386"]])
def test_below_the_stack_each_address_its_own_page(tmp_path, monkeypatch, options):
    """Below a stack that cannot grow the answer names the address (its new start and size
    too): the compiled loop writes a record per address from the zone's template (expand_stack
    refuses every address of a zone for the same reason), byte for byte as the Python loop,
    in the guard gap, past RLIMIT_STACK and where the stack may grow; and in the stack and the
    VMAs without an ELF image (each page's record from the VMA's answer, once two pages agree)."""
    rnd = random.Random(len(options))
    profile = make_profile(*options[1:2]) if "--profile" in options else make_profile()
    vmas = open_address_space(profile=profile, elf=VARS).mm.vmas
    stack = next(v for v in vmas if v.growsdown)
    prev = vmas[vmas.index(stack) - 1]
    lines = []
    for _ in range(9000):                   # the first 64 KiB block: ASCII, the next not
        r = rnd.random()
        lo, hi = ((prev.end, prev.end + (2 << 20)) if r < 0.1 else (stack.end - (9 << 20), stack.start)
                  if r < 0.3 else (stack.start, stack.end) if r < 0.4 else
                  next((v.start, v.end) for v in rnd.sample(vmas, len(vmas)) if v.file is None)
                  if r < 0.5 else (prev.end, stack.start))
        a = rnd.randrange(lo, hi) if rnd.random() < 0.95 else rnd.randrange(lo, hi) & ~0xfff
        lines.append(f"{a:#_x}" if rnd.random() < 0.05 else hex(a))
    tail = [f"{int(t.replace('_', ''), 0):_d}" for t in lines[3000:3100]]
    path = tmp_path / "addresses"
    path.write_bytes(("\n".join(lines) + "\n").encode() + ("\n".join(["\uff11"] + tail) + "\n").encode())
    for fmt in ("jsonl", "json"):
        code, out, _ = _same(monkeypatch, ["translate", "--elf", VARS, *options, "--addresses", str(path),
                                           "--format", fmt])
        assert code == 0 and out.count(b"RLIMIT_STACK") > 1000 and out.count(b"stack_guard_gap")
