"""Reading traces: the record -> page-reference contract, formats, compression, stdin, errors."""

import gzip
import lzma

import numpy as np
import pytest

from elfvm.sim.trace import TraceError, TraceReader, sniff_format
from simhelp import cli_json, cli_run, write


def refs(path, fmt="auto", page_size=4096, batch=1 << 16, max_addr=(1 << 32) - 1):
    r = TraceReader(str(path), fmt, page_size.bit_length() - 1, max_addr, batch=batch)
    out = [(int(v), int(f)) for vs, fs in r for v, f in zip(vs, fs)]
    return out, r


def test_every_page_a_record_touches_is_one_reference(tmp_path):
    trace = ("I  00000ffe,4\n"        # bytes 0xffe..0x1001: pages 0 and 1, instruction
             " L 00002000,0\n"        # size 0 counts as 1 byte
             " S 00003ffc,4\n"        # ends exactly at the page end: one page
             " M 00004fff,2\n"        # modify: ONE write reference per page, crossing into 5
             " L 00006000,8193\n")    # 3 pages
    out, _ = refs(write(tmp_path, "t.lackey", trace))
    assert out == [(0, 2), (1, 2), (2, 0), (3, 1), (4, 1), (5, 1), (6, 0), (7, 0), (8, 0)]


def test_a_record_longer_than_a_batch_is_split_across_batches(tmp_path):
    p = write(tmp_path, "t.lackey", " L 00000000,40960\n S 0000a000,1\n")
    out, _ = refs(p, batch=3)
    assert out == [(i, 0) for i in range(10)] + [(10, 1)]


def test_lackey_noise_is_ignored(tmp_path):
    trace = ("==123== Lackey, an example Valgrind tool\n==123== \n\n"
             "I  08048000,2\r\n"              # CRLF
             "\t S   0804a000,4   \n"
             "==123== Exit code:       0\n"
             " L 0804b000,4")                 # no final newline
    out, r = refs(write(tmp_path, "t.lackey", trace))
    assert out == [(0x8048, 2), (0x804a, 1), (0x804b, 0)]
    assert r.format == "lackey" and r.lines == 7 and r.records == 3


def test_plain_format(tmp_path):
    trace = "# a comment\nR 0x1000\nW 0x2000  # trailing comment\n12288\nw 4096\n\n r 0X3000\n"
    out, r = refs(write(tmp_path, "t.txt", trace))
    assert r.format == "plain"
    assert out == [(1, 0), (2, 1), (3, 0), (1, 1), (3, 0)]


def test_auto_detection():
    assert sniff_format(b"==1== hi\nI  0804,4\n") == "lackey"
    assert sniff_format(b" L 0804a000,4\n") == "lackey"
    assert sniff_format(b"# c\nR 0x10\n") == "plain"
    assert sniff_format(b"4096\n") == "plain"
    assert sniff_format(b"") == "plain"


@pytest.mark.parametrize("suffix,opener", [(".gz", gzip.open), (".xz", lzma.open), ("", None)])
def test_compressed_files_are_read_transparently(tmp_path, suffix, opener):
    lines = "".join(f" L {0x1000 * (i % 37):08x},4\n" for i in range(5000))
    plain = write(tmp_path, "t.lackey", lines)
    p = tmp_path / ("c.lackey" + suffix)
    if opener:
        with opener(p, "wt") as f:
            f.write(lines)
    else:
        p.write_text(lines)
    assert refs(p)[0] == refs(plain)[0]
    assert len(refs(p)[0]) == 5000


def test_concatenated_gzip_members(tmp_path):
    p = tmp_path / "t.gz"
    p.write_bytes(gzip.compress(b" L 00001000,4\n") + gzip.compress(b" S 00002000,4\n"))
    assert refs(p)[0] == [(1, 0), (2, 1)]


def test_truncated_compressed_file(tmp_path):
    p = tmp_path / "t.gz"
    p.write_bytes(gzip.compress(b" L 00001000,4\n" * 1000)[:-30])
    with pytest.raises(TraceError, match="ends early|corrupt"):
        refs(p)


def test_stdin_and_compressed_stdin():
    j = cli_json("--trace", "-", "--frames", "4", input=" L 00001000,4\n S 00002000,4\n")
    assert j["references"] == 2 and j["pages_touched"] == 2
    j = cli_json("--trace", "-", "--frames", "4",
                 input=gzip.compress(b" L 00001000,4\n S 00002000,4\n M 00001000,8\n"))
    assert j["references"] == 3 and j["pages_touched"] == 2


LACKEY_BAD = [
    ("X  00001000,4", "unknown record kind"),
    ("LOAD 00001000,4", "unknown record kind"),
    (" L 00zz1000,4", "bad address"),
    (" L ,4", "bad address"),
    (" L 00001000", "missing ',SIZE'"),
    (" L 00001000 4", "missing ',SIZE'"),
    (" L 00001000,", "bad size"),
    (" L 00001000,-4", "bad size"),
    (" L 00001000,4 x", "unexpected characters"),
    (" L 00001000,4x", "unexpected characters"),
    (" L 00001000,99999999999", "size too large"),
    (" L 100000000,4", "address beyond the linear address space"),
    (" L fffffffe,4", "address beyond the linear address space"),      # the bytes run past 4 GiB
    ("=", "unknown record kind"),
]
PLAIN_BAD = [
    ("Q 0x10", "bad address"),
    ("0xzz", "bad address"),
    ("R", "bad address"),
    ("R0x10", "bad address"),
    ("12abc", "bad address"),
    ("R 0x10 junk", "unexpected characters"),
    ("0x100000000", "address beyond the linear address space"),
]


@pytest.mark.parametrize("line,why", LACKEY_BAD)
def test_malformed_lackey_lines(tmp_path, line, why):
    p = write(tmp_path, "t.lackey", f"==1== hello\nI  08048000,4\n{line}\n L 00001000,4\n")
    r = cli_run("--trace", p, "--trace-format", "lackey", "--frames", "4", "--mmu", "i386")
    assert r.exit_code == 2
    assert r.stderr.count("\n") == 1
    assert r.stderr.startswith(f"elfvm: {p}:3: malformed lackey line: {why}")
    assert repr(line.strip()) in r.stderr or repr(line) in r.stderr


@pytest.mark.parametrize("line,why", PLAIN_BAD)
def test_malformed_plain_lines(tmp_path, line, why):
    p = write(tmp_path, "t.txt", f"# header\n\nR 0x1000\n{line}\n")
    r = cli_run("--trace", p, "--frames", "4", "--mmu", "i386")
    assert r.exit_code == 2
    assert r.stderr.startswith(f"elfvm: {p}:4: malformed plain line: {why}")


def test_a_64_bit_trace_needs_a_64_bit_mmu(tmp_path):
    p = write(tmp_path, "t.lackey", " L 1ffefff000,8\n")
    for mmu in ("i386", "pae"):
        r = cli_run("--trace", p, "--frames", "4", "--mmu", mmu)
        assert r.exit_code == 2 and "above 0xffffffff" in r.stderr
    j = cli_json("--trace", p, "--frames", "4")                   # default --mmu x86-64
    assert j["pages"][0]["page"] == 0x1ffefff
    r = cli_run("--trace", write(tmp_path, "u.lackey", " L 1000000000000,1\n"), "--frames", "4")
    assert r.exit_code == 2 and "above 0xffffffffffff" in r.stderr


def test_skip_bad_lines_counts_and_reports(tmp_path):
    p = write(tmp_path, "t.lackey", "I  08048000,4\nbogus\n L 0804a000,4\nX 1,1\n")
    r = cli_run("--trace", p, "--frames", "4", "--skip-bad-lines")
    assert r.exit_code == 0
    assert f"skipped 2 malformed lines (first: {p}:2: unknown record kind" in r.stdout
    j = cli_json("--trace", p, "--frames", "4", "--skip-bad-lines")
    assert j["references"] == 2
    r = cli_run("--trace", p, "--frames", "4", "--skip-bad-lines", "--format", "json")
    assert "skipped 2 malformed lines" in r.stderr


def test_line_numbers_count_across_chunks(tmp_path):
    good = " L 00001000,4\n" * 200_000                     # ~2.8 MB: several 1 MiB chunks
    p = write(tmp_path, "t.lackey", good + "oops\n")
    r = cli_run("--trace", p, "--frames", "4")
    assert r.exit_code == 2 and f"{p}:200001: malformed lackey line" in r.stderr


def test_missing_files_and_bad_options(tmp_path):
    p = write(tmp_path, "t.txt", "1\n")
    cases = [
        ([], "nothing to simulate"),
        (["--trace", str(tmp_path / "nope")], "no such file"),
        (["--trace", str(tmp_path)], "is a directory"),
        (["--trace", "-", "--trace", "-"], "stdin can be only one"),
        (["--trace", p, "--frames", "4", "--ram", "1M"], "either --frames or --ram"),
        (["--trace", p, "--frames", "0"], "at least one frame"),
        (["--trace", p, "--frames", "4,8"], "only goes with --compare"),
        (["--trace", p, "--ram", "lots"], "--ram 'lots'"),
        (["--trace", p, "--page-size", "3000"], "power of two"),
        (["--trace", p, "--tlb-ways", "3"], "must divide"),
        (["--trace", p, "--quantum", "0"], "not in the range 1<=x"),
        (["--trace", p, "--compare", "fifo,best", "--frames", "3"], "choose from"),
        (["--trace", p, "--mmu", "custom"], "needs --bits"),
        (["--trace", p, "prog"], "not several"),
    ]
    for args, msg in cases:
        r = cli_run(*args)
        assert r.exit_code == 2, (args, r.output)
        assert msg in r.stderr and r.stderr.count("\n") == 1, (args, r.stderr)


def test_ram_gives_frames(tmp_path):
    p = write(tmp_path, "t.txt", "".join(f"{i * 4096}\n" for i in range(10)))
    j = cli_json("--trace", p, "--ram", "16K")
    assert j["evictions"] == 6 and len(j["frames"]) == 4


def test_streaming_memory_does_not_grow_with_the_trace(tmp_path):
    """A 10x longer trace (same pages) must not need 10x the memory: constant, in fact."""
    import tracemalloc

    from elfvm.mmu.tlb import tlb_geometry
    from elfvm.sim.engine import SimConfig
    from elfvm.sim.stream import run_traces

    rng = np.random.default_rng(7)

    def make(name, n):
        pages = rng.integers(0, 300, n)
        kinds = rng.choice(np.array(["I ", " L", " S", " M"]), n)
        p = tmp_path / name
        p.write_text("".join(f"{k} {pg * 4096 + 100:08x},4\n" for k, pg in zip(kinds, pages)))
        return str(p)

    small, big = make("s.lackey", 60_000), make("b.lackey", 600_000)
    cfg = SimConfig("lru", 64, 4096, tlb_geometry(64))
    run_traces([small], cfg)                                     # compile/load the kernels first

    def peak(path):
        tracemalloc.start()
        res = run_traces([path], cfg)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top, res.total.references

    (p_small, n_small), (p_big, n_big) = peak(small), peak(big)
    assert n_big == 10 * n_small
    assert p_big < 1.5 * p_small, (p_small, p_big)


def test_fast_and_careful_lackey_paths_agree(tmp_path):
    """Thousands of lines of every spelling the careful path accepts (tabs, upper-case hex,
    addresses of more or fewer than 8 digits, CRLF, ==pid== lines, blank lines, records spanning pages and batches) mixed with the common
    form the fast loop takes: the references equal the reference reader's, whatever the batch."""
    import random

    import sim_reference as ref

    rnd = random.Random(5)
    lines = []
    for _ in range(4000):
        k = rnd.choice("ILSM")
        a, size = rnd.randrange(1 << 32), rnd.choice([0, 1, 4, 8, 4095, 4096, 9000])
        a = min(a, (1 << 32) - max(size, 1))
        form = rnd.random()
        h = f"{a:08x}" if form > 0.1 else f"{a:08X}"
        if 0.15 < form < 0.2:                  # not 8 digits: the fast loop's digit loop
            h = f"{a:x}" if form < 0.17 else f"{a:010x}" if form < 0.19 else f"{a:011X}"
        pre = "I  " if k == "I" else f" {k} "
        if form < 0.05:
            pre = pre.replace(" ", "\t", 1) if k != "I" else "I\t"
        end = "\r\n" if 0.1 < form < 0.15 else "\n"
        lines.append(f"{pre}{h},{size}{end}")
        if form > 0.97:
            lines.append("==42== note\n" if form > 0.985 else "\n")
    text = "".join(lines)
    p = write(tmp_path, "t.lackey", text)
    want = [(page, (2 if i else (1 if w else 0))) for page, w, i in
            ref.read_lackey(text.replace("\r", "").splitlines(), 4096)]
    for batch in (1, 7, 1 << 16):
        out, _ = refs(p, batch=batch)
        assert out == want


@pytest.mark.parametrize("addr", ["0804g000", "0804-000", "08 04000", "0804800,", "080480000000000000"])
def test_a_bad_eight_digit_address_is_the_careful_paths_error(tmp_path, addr):
    """The fast loop reads 8-digit addresses without a loop: a bad digit among them still
    leaves the line to the careful path, which names it (the line sits among good ones)."""
    good = "".join(f"I  0804{i:04x},4\n" for i in range(300))
    p = write(tmp_path, "t.lackey", f"{good} L {addr},4\n{good}")
    r = cli_run("--trace", p, "--trace-format", "lackey", "--frames", "4", "--mmu", "i386")
    assert r.exit_code == 2 and r.stderr.startswith(f"elfvm: {p}:301: malformed lackey line: ")
