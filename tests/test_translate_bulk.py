"""`translate --addresses FILE --format json`: the streamed bulk answers are exactly the per-address
answers (`Translation.to_json()`), in constant memory, and endless or non-UTF-8 input is a clear
error naming the line."""

import json
import os
import random
import subprocess
import sys
import threading

from click.testing import CliRunner

from elfvm.cli import cli
from elfvm.kernel.profile import make_profile
from elfvm.mmu import open_address_space
from elfvm.mmu.bulk import JsonLines, translate_one

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARS = os.path.join(ROOT, "fixtures", "bin", "vars")


def _line(bulk, text):
    """`JsonLines.lines()` (its fast path for known pages, else `line()`) for one input."""
    def rejected(_text, e):
        raise e
    return bulk.lines([text], rejected)[0]


def _inputs(space, n=3000, seed=7):
    """Addresses of every kind: inside each VMA (present and not), next to them, holes, below the
    stack, kernel space, the last page, symbols, selectors, bad ones; many share a page."""
    rnd = random.Random(seed)
    out = ["counter", "main", "table+0x10", "0x23:0x804c010", "gs:0", "0", "0xffffffff", "0xffffe800",
           "4096", "nosuchsym", "0x1ffffffff", "-5", "0x"]
    for v in space.mm.vmas:
        out += [hex(v.start), hex(v.end - 1), hex(v.end), hex(v.start - 1), hex(v.start - 0x10000)]
    while len(out) < n:
        if rnd.random() < 0.8:
            v = rnd.choice(space.mm.vmas)
            a = rnd.randrange(max(0, v.start - 0x3000), min(1 << 32, v.end + 0x3000))
        else:
            a = rnd.randrange(0, 1 << 32)
        out.append(hex(a) if rnd.random() < 0.8 else str(a))
    return out


def test_bulk_lines_equal_the_per_address_answers():
    space = open_address_space(profile=make_profile(), elf=VARS)
    for access, cpl in (("r", 3), ("w", 3), ("x", 3), ("w", 0)):
        bulk = JsonLines(space, access, cpl)
        for text in _inputs(space):
            try:
                want = translate_one(space, text, access, cpl).to_json()
            except Exception as e:          # the same rejection, the same message
                try:
                    _line(bulk, text)
                except type(e) as e2:
                    assert str(e2) == str(e)
                    continue
                raise AssertionError(f"{text}: bulk accepted what translate rejects: {e}")
            assert json.loads(_line(bulk, text)) == want, text


def test_bulk_lines_equal_the_per_address_answers_in_every_geometry():
    """Holes and kernel regions (pkmap/fixmap slots name the page, vmalloc does not) under each
    paging mode and the native i386 kernel half: the cached text is never another address's."""
    from elfvm.kernel.profile import make_profile as mk

    rnd = random.Random(3)
    for prof, mmu in (("linux-x86_64-compat", "i386"), ("linux-x86_64-compat", "pae"),
                      ("linux-i386", "i386"), ("linux-i386", "pae")):
        space = open_address_space(profile=mk(prof), mmu=mmu, elf=VARS)
        texts = _inputs(space, 1500, seed=11)
        texts += [hex(rnd.randrange(0xc0000000, 1 << 32)) for _ in range(1500)]
        for access, cpl in (("r", 3), ("w", 0)):
            bulk = JsonLines(space, access, cpl)
            for text in texts:
                try:
                    want = translate_one(space, text, access, cpl).to_json()
                except Exception:
                    continue
                assert json.loads(_line(bulk, text)) == want, (prof, mmu, text)


def expand(lines):
    """The compact format joined back into Translation.to_json() objects, as docs/commands.md
    describes it: each address line takes its page record's walk, region, vma and fault (the
    reason from the line when the record's is null)."""
    pages, out = {}, []
    for text in lines:
        d = json.loads(text)
        if "walk" in d:
            assert d["page"] not in pages or pages[d["page"]] == d      # an id names one record
            pages[d["page"]] = d
            continue
        p = pages[d.pop("page")]
        fault = p["fault"]
        if fault is not None and fault["reason"] is None:
            fault = {**fault, "reason": d.pop("reason")}
        assert "reason" not in d
        out.append({"input": d["input"], "virtual": d["virtual"], "linear": d["linear"],
                    "walk": p["walk"], "page_offset": d["page_offset"], "physical": d["physical"],
                    "fault": fault, "region": p["region"], "vma": p["vma"], "section": d["section"],
                    "symbol": d["symbol"]})
    return out


def test_compact_lines_expand_to_the_per_address_answers():
    from elfvm.kernel.profile import make_profile as mk

    for prof, mmu in (("linux-x86_64-compat", None), ("linux-i386", "pae")):
        space = open_address_space(profile=mk(prof), mmu=mmu, elf=VARS)
        texts = _inputs(space, 2500, seed=5) + ["0xc0001000", "0xffbff000", "0xfff00000"]
        for access, cpl in (("r", 3), ("w", 0)):
            bulk, want, got = JsonLines(space, access, cpl, compact=True), [], []
            for text in texts:
                try:
                    want.append(translate_one(space, text, access, cpl).to_json())
                except Exception:
                    continue
                got += _line(bulk, text).split("\n")
            assert expand(got) == want, (prof, access, cpl)


def test_compact_format_cli(tmp_path):
    f = tmp_path / "a.txt"
    holes = "".join(f"{a:#x}\n" for a in range(0x10000, 0x100000, 0x8100))   # one PDE, 30 pages
    f.write_text("0x8049000\nnosuchsym\ncounter\n" + "0x804c010\n" * 40 + holes)
    r = CliRunner().invoke(cli, ["translate", "--elf", VARS, "--format", "jsonl", "--addresses", str(f)])
    assert r.exit_code == 2 and "nosuchsym" in r.stderr
    lines = r.stdout.splitlines()
    full = CliRunner().invoke(cli, ["translate", "--elf", VARS, "--format", "json", "--addresses", str(f)])
    assert expand(lines) == json.loads(full.stdout)
    assert len(r.stdout) < len(full.stdout) / 2
    # 0x8049000, counter, 0x804c010's page; the hole's first two pages (answered in full until
    # they agree), then one record for the rest of it (one not-present PDE)
    assert sum('"walk"' in x for x in lines) == 6


def test_stream_is_one_json_list_with_errors_on_stderr(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("0x8049000\nnosuchsym\n# c\n\ncounter\n" + "0x804c010\n" * 300)
    r = CliRunner().invoke(cli, ["translate", "--elf", VARS, "--format", "json", "--addresses", str(f)])
    assert r.exit_code == 2
    data = json.loads(r.stdout)
    assert [d["input"] for d in data[:2]] == ["0x8049000", "counter"] and len(data) == 302
    assert data[1]["symbol"] == "counter" and data[2] == {**data[1], "input": "0x804c010"}
    assert "nosuchsym" in r.stderr


def _run(*args, **kw):
    return subprocess.run([sys.executable, "-m", "elfvm", "translate", *args], capture_output=True,
                          timeout=120, **kw)


def test_endless_line_is_a_clear_error():
    r = _run("--elf", VARS, "--format", "json", "--addresses", "/dev/zero")
    assert r.returncode == 2
    assert r.stderr.decode().strip().splitlines() == [
        "elfvm: --addresses /dev/zero:1: a line longer than 65536 bytes without a newline"]
    assert json.loads(r.stdout) == []


def test_non_utf8_file_is_a_clear_error(tmp_path):
    f = tmp_path / "a.txt"
    f.write_bytes(b"0x8049000\n\xff\xfe0x10\n")
    for fmt in ("json", "table"):
        r = _run("--elf", VARS, "--format", fmt, "--addresses", str(f))
        assert r.returncode == 2
        err = r.stderr.decode()
        assert err.startswith(f"elfvm: --addresses {f}:2: not UTF-8 text") and "Traceback" not in err


def test_many_addresses_stream_in_constant_memory():
    """The answers come out while the input is still being written (a pipe), and the process
    stays small: nothing is kept per address."""
    p = subprocess.Popen([sys.executable, "-m", "elfvm", "translate", "--elf", VARS, "--format", "json",
                          "--addresses", "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    chunk = b"".join(b"%#x\n" % (0x8048000 + 37 * i) for i in range(10_000))
    fed = threading.Event()

    def feed():                                # while the main thread reads the answers
        p.stdin.write(chunk)
        p.stdin.flush()
        fed.wait(60)
        for _ in range(19):
            p.stdin.write(chunk)
        p.stdin.close()

    writer = threading.Thread(target=feed)
    writer.start()
    first = p.stdout.read(64)                  # printed before the input ends
    assert first.startswith(b"[\n{")
    fed.set()
    n, peak = first.count(b"\n"), 0
    for b in iter(lambda: p.stdout.read(1 << 20), b""):
        n += b.count(b"\n")
        peak = max(peak, _hwm_kib(p.pid))
    writer.join()
    assert p.wait() == 0
    assert n == 200_002                        # "[", 200,000 objects, "]", each on its line
    assert 0 < peak < 150 * 1024               # KiB: constant (holding them all: ~2 KB each)


def _hwm_kib(pid: int) -> int:
    """The process's peak RSS since its exec (VmHWM; getrusage of a child would count the
    forked copy of this big test process too)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return 0


def test_streamed_formats_draw_the_first_walks(tmp_path):
    """--svg is not ignored when the answers stream (--addresses with json or jsonl)."""
    f = tmp_path / "a.txt"
    f.write_text("0x8049000\nnosuchsym\n" + "0x804c010\n" * 20)
    for fmt in ("json", "jsonl"):
        svg = tmp_path / f"{fmt}.svg"
        r = CliRunner().invoke(cli, ["translate", "--elf", VARS, "--format", fmt, "--addresses", str(f),
                                     "--svg", str(svg)])
        assert r.exit_code == 2 and svg.read_text().lstrip().startswith(("<?xml", "<svg"))
