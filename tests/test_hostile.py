"""Hostile values for every option of every command: each ends in a result or a clear one-line
error with a documented exit code, never "internal error" or a traceback (issue 10).

`hostile_cases()` runs the whole table in-process (click's CliRunner) and returns the counts;
a few cases run as real processes (non-UTF-8 argv and files, control bytes)."""

from __future__ import annotations

import os
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from elfvm.cli import cli
from tests.conftest import fixture_path

TINY = fixture_path("tiny")
VARS = fixture_path("vars")

VALUES = ["", "-1", "0", "99999999999999999999", "-99999999999999999999", "nan", "inf", "1e309",
          "0x", "0xffffffffffffffffffff", "1,,2", ",", "abc", "\x01\x1b[31mred", "\udcff\udcfe",
          "../../../../nonexistent", "/nonexistent/x", "x" * 5000, "1K", "-0x10", " 7 "]
# options that write where they point: hostile names only inside the test's directory
WRITES = {"svg_file", "emit_trace", "write_dir", "stdout_file"}


def _modes(tmp: str) -> dict:
    t = os.path.join(tmp, "t.plain")
    with open(t, "w") as f:
        f.write("R 0x1000\nW 0x2000\nR 0x1000\n")
    return {
        "layout": (["layout"], [TINY]),
        "translate-elf": (["translate", "--elf", VARS], ["counter"]),
        "translate-geometry": (["translate"], ["0x1234"]),
        "simulate-run-trace": (["simulate-run", "--trace", t], []),
        "simulate-run-program": (["simulate-run"], [TINY]),
        "simulate-run-refs": (["simulate-run", "--refs", "1 2 3 1"], []),
        "eat": (["eat", "--hit-ratio", "0.9"], []),
    }


def _command(head: list[str]) -> click.Command:
    return cli.get_command(None, head[0])


def _values(name: str, tmp: str) -> list[str]:
    if name in WRITES:
        return ["", os.path.join(tmp, "\x01\x1b"), os.path.join(tmp, "no", "such", "dir", "x"), tmp,
                os.path.join(tmp, "\udcff.out")]
    return VALUES


def run_mode(mode: str, tmp: str) -> tuple[int, int, list[str]]:
    """(cases, clear errors, failures) for every value-taking option of one mode."""
    head, tail = _modes(tmp)[mode]
    cases = clear = 0
    failures = []
    for p in _command(head).params:
        if not isinstance(p, click.Option) or p.is_flag or p.name in ("verify",):
            continue
        flag = max(p.opts, key=len)
        for v in _values(p.name, tmp):
            r = CliRunner().invoke(cli, [*head, flag, v, *tail], input="0x1000\n")
            cases += 1
            text = r.output
            bad = ("internal error" in text or "Traceback" in text or
                   (r.exception is not None and not isinstance(r.exception, SystemExit)))
            if bad:
                failures.append(f"{mode} {flag} {v[:30]!r}: {text.strip()[-200:]} {r.exception!r}")
            elif r.exit_code == 2:
                clear += 1
                if any(ch in text for ch in "\x01\x1b"):
                    failures.append(f"{mode} {flag} {v[:30]!r}: raw control bytes echoed")
    return cases, clear, failures


MODES = list(_modes("/tmp"))


@pytest.mark.parametrize("mode", MODES)
def test_hostile_option_values(mode, tmp_path):
    cases, clear, failures = run_mode(mode, str(tmp_path))
    assert cases > 0
    assert not failures, "\n".join(failures[:20])


def _elfvm(*args, stdin=b"") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "elfvm", *args], input=stdin, capture_output=True,
                          timeout=120)


@pytest.mark.parametrize("extra", [["--svg", "OUT"], ["--diagram"], ["--format", "json"], []])
def test_non_utf8_program_path(tmp_path, extra):
    prog = os.path.join(os.fsencode(tmp_path), b"ti\xffny")
    with open(TINY, "rb") as src, open(prog, "wb") as dst:
        dst.write(src.read())
    os.chmod(prog, 0o755)
    extra = [os.fsencode(tmp_path / "o.svg") if a == "OUT" else a for a in extra]
    r = subprocess.run([sys.executable, "-m", "elfvm", "layout", *extra, prog], capture_output=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert b"internal error" not in r.stderr and b"Traceback" not in r.stderr
    if extra and extra[0] == "--svg":
        text = (tmp_path / "o.svg").read_text(encoding="utf-8")    # valid UTF-8, the byte shown
        assert "ti\\xffny" in text


def test_non_utf8_addresses_file(tmp_path):
    f = tmp_path / "addrs"
    f.write_bytes(b"0x1000\n\xff\xfe\n")
    r = _elfvm("translate", "--addresses", str(f))
    assert r.returncode == 2 and b"not UTF-8" in r.stderr and len(r.stderr.splitlines()) == 1


def test_control_bytes_are_escaped():
    r = _elfvm("translate", "0x1\x1b[2J")
    assert r.returncode == 2 and b"\x1b" not in r.stderr and b"\\x1b" in r.stderr
    r = _elfvm("no-such\x07command")
    assert r.returncode == 2 and b"\x07" not in r.stderr


def test_absurd_numbers_are_usage_errors():
    for args in (["simulate-run", "--trace", "-", "--tlb-entries", "99999999999999999999"],
                 ["simulate-run", "--trace", "-", "--mem-ns", "nan"],
                 ["translate", "--pid", "99999999999999999999", "0x1"],
                 ["eat", "--hit-ratio", "2"]):
        r = _elfvm(*args)
        assert r.returncode == 2 and b"internal error" not in r.stderr and b"Traceback" not in r.stderr


if __name__ == "__main__":            # the counts for the issue note
    import tempfile

    total = clear = bad = 0
    for m in MODES:
        c, e, f = run_mode(m, tempfile.mkdtemp())
        total, clear, bad = total + c, clear + e, bad + len(f)
        print(f"{m}: {c} cases, {e} clear usage errors, {len(f)} internal errors")
    print(f"total: {total} cases, {clear} clear usage errors (exit 2), {bad} internal errors")


def test_pid_hint_zombie():
    """A zombie has no address space left: the hint says so, not 'needs root'."""
    import time

    child = subprocess.Popen(["true"])
    try:
        for _ in range(50):
            with open(f"/proc/{child.pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    break
            time.sleep(0.05)
        r = CliRunner().invoke(cli, ["translate", "--pid", str(child.pid), "0x1000"])
        assert r.exit_code == 2 and "zombie" in r.output and "needs root" not in r.output
    finally:
        child.wait()


def test_pid_hint_kernel_thread():
    from elfvm.mmu.live import PF_KTHREAD

    pid = next((p for p in ("2", "3") if os.path.exists(f"/proc/{p}/stat")
                and int(open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[6]) & PF_KTHREAD), None)
    if pid is None:
        pytest.skip("no kernel thread visible in this pid namespace")
    r = CliRunner().invoke(cli, ["translate", "--pid", pid, "0x1000"])
    assert r.exit_code == 2 and "kernel thread" in r.output
