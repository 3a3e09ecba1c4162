"""`elfvm simulate-run` through click's runner: the JSON contract, tables, several processes."""

import json
import re
import signal
import subprocess
import sys
import time

from simhelp import cli_json, cli_run, plain_pages, write

KEYS = ["references", "pages_touched", "page_faults", "faults_by_kind", "evictions",
        "dirty_evictions", "swap_ins", "tlb", "effective_access_ns", "pages", "frames"]
BELADY = [1, 2, 3, 4, 1, 2, 5, 1, 2, 3, 4, 5]


def test_json_has_exactly_the_contract_keys(tmp_path):
    p = write(tmp_path, "t.txt", plain_pages(BELADY, writes={0}))
    j = cli_json("--trace", p, "--page-size", "1", "--frames", "3", "--policy", "fifo")
    assert list(j) == KEYS + ["processes"]
    assert set(j["tlb"]) == {"hits", "misses", "hit_ratio"}
    assert j["faults_by_kind"] == {"first-touch": 5, "swap-in": 4}
    assert (j["references"], j["pages_touched"], j["page_faults"]) == (12, 5, 9)
    assert (j["evictions"], j["dirty_evictions"], j["swap_ins"]) == (6, 1, 4)
    assert [set(r) for r in j["pages"]] == [{"process", "page", "frame", "dirty", "referenced",
                                             "swapped"}] * 5
    assert [set(r) for r in j["frames"]] == [{"frame", "process", "page", "dirty", "referenced"}] * 3
    assert [(r["frame"], r["page"]) for r in j["frames"]] == [(0, 5), (1, 3), (2, 4)]
    assert len(j["processes"]) == 1 and list(j["processes"][0]) == KEYS
    assert j["processes"][0]["page_faults"] == 9


def test_several_processes_round_robin(tmp_path):
    # P0 touches 1,2,3 and P1 touches 1,2; quantum 2: P0 1 2 | P1 1 2 | P0 3; LRU, 2 frames
    a = write(tmp_path, "a.txt", plain_pages([1, 2, 3]))
    b = write(tmp_path, "b.txt", plain_pages([1, 2]))
    j = cli_json("--trace", a, "--trace", b, "--page-size", "1", "--frames", "2", "--quantum", "2")
    assert list(j) == KEYS + ["processes"]
    p0, p1 = j["processes"]
    assert list(p0) == KEYS
    assert (p0["references"], p1["references"], j["references"]) == (3, 2, 5)
    assert (p0["page_faults"], p1["page_faults"], j["page_faults"]) == (3, 2, 5)
    # evictions count against the process whose page lost its frame
    assert (p0["evictions"], p1["evictions"], j["evictions"]) == (2, 1, 3)
    assert [(f["frame"], f["process"], f["page"]) for f in j["frames"]] == [(0, 0, 3), (1, 1, 2)]
    assert p0["frames"] == [j["frames"][0]] and p1["frames"] == [j["frames"][1]]
    assert [(r["process"], r["page"], r["frame"]) for r in p1["pages"]] == [(1, 1, None), (1, 2, 1)]

    r = cli_run("--trace", a, "--trace", b, "--page-size", "1", "--frames", "2", "--quantum", "2",
                "--show", "events")
    lines = [ln.split() for ln in r.stdout.splitlines() if ln.strip()[:1].isdigit()]
    assert [(ln[0], ln[1], ln[2]) for ln in lines] == [("1", "P0", "0x1"), ("2", "P0", "0x2"),
                                                       ("3", "P1", "0x1"), ("4", "P1", "0x2"),
                                                       ("5", "P0", "0x3")]
    assert "context switches" in r.stdout and f"P1 {b}" in r.stdout


def test_table_and_show(tmp_path):
    p = write(tmp_path, "t.txt", plain_pages(BELADY, writes={0}))
    r = cli_run("--trace", p, "--page-size", "1", "--frames", "3", "--policy", "fifo", "--mmu", "i386",
                "--show", "pages", "--show", "frames", "--show", "events", "--limit", "4")
    assert r.exit_code == 0
    out = r.stdout
    assert out.startswith("policy fifo, 3 frames of 1 B; TLB: 64 entries, fully associative")
    assert "2-level walk (hit 120 ns, miss 300 ns)" in out
    for label in ("references", "page faults", "first-touch", "swap-in", "evictions",
                  "written to swap", "TLB hit ratio", "effective access time", "frames in use"):
        assert label in out
    assert "... 1 more pages (--limit)" in out
    assert "... 5 more page faults (--limit)" in out
    assert "written to swap" in out.split("ref#")[1] or "written to swap" in out


def test_compare_finds_beladys_anomaly(tmp_path):
    p = write(tmp_path, "t.txt", plain_pages(BELADY))
    r = cli_run("--trace", p, "--page-size", "1", "--compare", "fifo,lru,clock,opt",
                "--frames", "3,4")
    assert r.exit_code == 0
    assert "Belady's anomaly: fifo takes 10 faults with 4 frames but only 9 with 3" in r.stdout
    assert "lru takes" not in r.stdout and "opt takes" not in r.stdout
    j = cli_json("--trace", p, "--page-size", "1", "--compare", "fifo,lru,opt", "--frames", "3,4,5")
    assert j["faults"] == {"fifo": [9, 10, 5], "lru": [10, 8, 5], "opt": [7, 6, 5]}
    assert j["frames"] == [3, 4, 5] and j["references"] == 12 and j["pages_touched"] == 5
    assert j["belady"] == [{"policy": "fifo", "frames": 3, "faults": 9, "more_frames": 4,
                            "more_faults": 10}]
    r = cli_run("--trace", p, "--page-size", "1", "--compare", "lru", "--frames", "3,4")
    assert "no Belady's anomaly" in r.stdout


def test_compare_accepts_ram_lists(tmp_path):
    p = write(tmp_path, "t.txt", "".join(f"{x * 4096}\n" for x in BELADY))
    j = cli_json("--trace", p, "--compare", "fifo", "--ram", "12K,16K")
    assert j["faults"] == {"fifo": [9, 10]}


def test_no_references(tmp_path):
    p = write(tmp_path, "t.txt", "# nothing\n")
    j = cli_json("--trace", p, "--frames", "2")
    assert j["references"] == 0 and j["tlb"]["hit_ratio"] is None
    assert j["effective_access_ns"] is None
    assert cli_run("--trace", p, "--frames", "2").exit_code == 0


def test_quiet_and_no_progress_when_not_a_terminal(tmp_path):
    p = write(tmp_path, "t.txt", "1\n")
    r = cli_run("--trace", p, "--frames", "2")
    assert r.stderr == ""
    r = cli_run("--trace", p, "--frames", "2", "--quiet", "--format", "json")
    assert r.stderr == "" and json.loads(r.stdout)["references"] == 1


def test_listed_in_the_group_help():
    from click.testing import CliRunner

    from elfvm.cli import cli

    r = CliRunner().invoke(cli, ["--help"])
    assert "simulate-run" in r.stdout
    r = CliRunner().invoke(cli, ["simulate-run", "--help"])
    assert r.exit_code == 0 and "--compare" in r.stdout


def test_progress_bar_only_on_a_terminal(monkeypatch):
    import io

    from elfvm.commands.simulate_run import _progress

    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr("sys.stderr", Tty())
    with _progress(quiet=True) as update:
        assert update is None
    with _progress(quiet=False) as update:
        update(1 << 20, 2 << 20)                  # a short trace: no bar
    with _progress(quiet=False) as update:
        update(10 << 20, 100 << 20)
        update(20 << 20, None)
    monkeypatch.setattr("sys.stderr", io.StringIO())
    with _progress(quiet=False) as update:
        assert update is None


def test_endless_line_is_an_error_not_a_heap():
    """/dev/zero is one endless line without a newline: one clear error naming the line, exit 2,
    long before memory grows (the line is capped at elfvm.sim.trace.MAX_LINE)."""
    r = subprocess.run([sys.executable, "-m", "elfvm", "simulate-run", "--trace", "/dev/zero", "-q"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "elfvm: /dev/zero:1: a line longer than 1 MiB without a newline: not a plain trace"]


def test_long_line_after_good_ones_names_its_number(tmp_path):
    p = tmp_path / "t.lackey"
    p.write_bytes(b"I  0804a000,4\n S bfff0000,4\n" + b"1" * (3 << 20))
    r = cli_run("--trace", str(p), "-q")
    assert r.exit_code == 2
    assert ":3: a line longer than 1 MiB" in r.stderr


def test_ctrl_c_stops_within_a_second_with_the_partial_report():
    """SIGINT while the trace is still arriving: the report of what was read, exit 130."""
    p = subprocess.Popen([sys.executable, "-m", "elfvm", "simulate-run", "--trace", "-", "--frames", "4"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdin.write(b"".join(b"I  %08x,4\n" % (0x8048000 + 4096 * (i % 9)) for i in range(200_000)))
    p.stdin.flush()
    time.sleep(3)                         # started, and waiting for more input
    t = time.monotonic()
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    assert time.monotonic() - t < 2.0      # the goal is a second; slack for a loaded machine
    assert p.returncode == 130
    assert re.search(rb"references\s+200000\b", out), out
    assert b"interrupted: the report covers the first 200000 references" in err
