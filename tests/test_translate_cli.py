"""`elfvm translate`: output formats, exact JSON keys, bad input handling, exit codes."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARS = os.path.join(ROOT, "fixtures", "bin", "vars")
KEYS = {"input", "virtual", "linear", "walk", "page_offset", "physical", "fault", "region", "vma",
        "section", "symbol"}


def run(*args, stdin=None):
    p = subprocess.run([sys.executable, "-m", "elfvm", "translate", *args], capture_output=True, text=True,
                       input=stdin, cwd=ROOT)
    return p.returncode, p.stdout, p.stderr


def test_json_keys_and_values():
    rc, out, err = run("--elf", VARS, "--format", "json", "counter", "0x8049000", "0x23:0x804c010")
    assert rc == 0, err
    data = json.loads(out)
    assert [set(d) for d in data] == [KEYS] * 3
    c = data[0]
    assert c["section"] == ".data" and c["symbol"] == "counter" and c["region"] == "user"
    assert isinstance(c["physical"], int) and c["fault"] is None
    assert set(c["vma"]) == {"start", "end", "perms", "name"} and c["vma"]["perms"] == "rw-p"
    assert [set(w) for w in c["walk"]] == [{"level", "index", "entry", "present"}] * 4
    assert data[1]["physical"] is None and data[1]["fault"]["kind"] == "file-read"
    assert data[2]["linear"] == data[2]["virtual"] == 0x804C010 and data[2]["physical"] == c["physical"]


def test_bad_inputs_answer_the_good_ones():
    rc, out, err = run("--elf", VARS, "--format", "json", "main", "nosuchsym", "zz:1", "0x23:", "0x1ffffffff")
    assert rc == 2
    assert len(json.loads(out)) == 1
    lines = err.strip().splitlines()
    assert len(lines) == 4 and all(l.startswith("elfvm: translate: ") for l in lines)
    assert "nosuchsym" in lines[0] and "zz:1" in lines[1] and "Traceback" not in err


def test_addresses_file_and_stdin(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("0x8049000\n# comment\n\ncounter\n")
    rc, out, _ = run("--elf", VARS, "--format", "json", "--addresses", str(f))
    assert rc == 0 and [d["input"] for d in json.loads(out)] == ["0x8049000", "counter"]
    rc, out, _ = run("--elf", VARS, "--format", "json", "--addresses", "-", stdin="0x804c010\n")
    assert rc == 0 and json.loads(out)[0]["symbol"] == "counter"


def test_table_output_and_access_options():
    rc, out, _ = run("--elf", VARS, "--access", "w", "0x08048000")
    assert rc == 0 and "sigsegv-accerr" in out and "PTE" in out and "decoded" in out
    rc, out, _ = run("--elf", VARS, "--access", "x", "--cpl", "3", "0xffffe800")
    assert "kernel-unmapped" in out


def test_geometry_only_lecture_exercise():
    rc, out, _ = run("--mmu", "custom", "--bits", "12,10,10", "--format", "json", "0x12345678")
    d = json.loads(out)[0]
    assert rc == 0 and [w["index"] for w in d["walk"]] == [0x123, 0x115] and d["page_offset"] == 0x278
    assert d["fault"]["kind"] == "no-address-space"


def test_kernel_half_without_program():
    rc, out, _ = run("--profile", "linux-i386", "--split", "2G", "--ram", "1G")
    assert rc == 0 and "PAGE_OFFSET 0x80000000" in out and "pkmap" in out
    rc, out, _ = run("--profile", "linux-i386", "--cpl", "0", "--format", "json", "0xc0400000")
    d = json.loads(out)[0]
    assert d["region"] == "kernel-lowmem" and d["physical"] == 0x400000 and len(d["walk"]) == 1


@pytest.mark.parametrize("args, needle", [
    (["--pid", "999999999", "0x1000"], "no such process"),
    (["--pid", str(os.getpid()), "0x1000"], "not an i386"),
    (["--ram", "lots", "0x1000"], "--ram"),
    (["--mmu", "x86-64", "--profile", "linux-i386", "0x1000"], "4-level"),
    (["--mmu", "custom", "0x1000"], "--bits"),
    (["--elf", "/nonexistent", "0x1000"], "/nonexistent"),
])
def test_usage_errors_are_one_line(args, needle):
    rc, out, err = run(*args)
    assert rc == 2 and needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
