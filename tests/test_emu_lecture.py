"""The lecture on a real run: the simulate-run PROGRAM fixtures (lazy allocation, stack growth,
brk vs mmap malloc, shared memory, a segfault), hand-computed fault counts, the trace engine as
the one model (replaying --emit-trace gives the run's faults), the options and Ctrl-C."""

import json
import os
import signal
import struct
import subprocess
import sys
import time

import pytest

from conftest import fixture_path

pytest.importorskip("unicorn")

from elfvm.emu import RunOptions, run_program  # noqa: E402


def faults(name, *args, model="simple"):
    return run_program(RunOptions(fixture_path(name), tuple(args), fault_model=model)).page_faults


# ---------------------------------------------------------------- hand-computed fault counts
@pytest.mark.parametrize("model", ["simple", "linux"])
def test_lazy_bss_one_fault_per_page_written(model):
    """32 more pages written in 64 MiB of bss = 32 more faults (do_anonymous_page each)."""
    assert faults("lazy", "48", model=model) - faults("lazy", "16", model=model) == 32


def test_lazy_read_maps_the_zero_page():
    r = run_program(RunOptions(fixture_path("lazy"), ("16", "read")))
    w = run_program(RunOptions(fixture_path("lazy"), ("16",)))
    assert r.stdout == b"lazy: 16 of 16384 bss pages read, sum 0\n"
    # one zero-page fault per page read (plus glibc's own one); the written run has none extra
    assert r.faults_by_kind["zero-page"] - w.faults_by_kind["zero-page"] == 16
    bss = next(x for x in r.rss_by_vma if x["pages"] >= 16384)
    assert bss["resident"] < 16 + 8           # reading maps the zero page, not memory


@pytest.mark.parametrize("model", ["simple", "linux"])
def test_stack_growth_one_fault_per_page(model):
    """512 KiB more stack written page by page = 128 more faults."""
    assert faults("stackgrow", "1024", model=model) - faults("stackgrow", "512", model=model) == 128


def test_stack_growth_faults_and_rlimit():
    r = run_program(RunOptions(fixture_path("stackgrow"), ("1024",)))
    assert r.exit_status == 0 and r.faults_by_kind["stack-growth"] > 200
    stack = next(m for m in r.maps if m["name"] == "[stack]")
    assert stack["end"] - stack["start"] >= 1 << 20
    small = run_program(RunOptions(fixture_path("stackgrow"), ("1024",), rlimit_stack=256 << 10))
    assert small.exit_status == 139
    assert "RLIMIT_STACK" in small.death["reason"]


def test_malloc_below_threshold_grows_heap_above_gets_own_mapping():
    r = run_program(RunOptions(fixture_path("mallocs")))
    assert r.stdout == (b"4 x malloc(64 KiB): in [heap] (brk), the break moved up\n"
                        b"malloc(1 MiB): own mapping (mmap), the break moved not at all\n")
    heap = next(m for m in r.maps if m["name"] == "[heap]")
    assert heap["end"] - heap["start"] >= 256 << 10 and heap["source"].startswith("brk")
    big = [m for m in r.maps if m["kind"] == "anon" and m["end"] - m["start"] == (1 << 20) + 4096]
    assert len(big) == 1 and big[0]["source"].startswith("mmap2: anonymous")
    rss = next(x for x in r.rss_by_vma if x["start"] == big[0]["start"])
    assert rss["resident"] == 256                  # every page written


def test_shared_memory_between_parent_and_child():
    r = run_program(RunOptions(fixture_path("shmem")))
    assert r.exit_status == 0 and len(r.processes) == 2
    assert r.stdout == (b"MAP_SHARED|MAP_ANONYMOUS: written by the child\n"
                        b"shmget/shmat:             written by the child\n"
                        b"MAP_PRIVATE|MAP_ANONYMOUS: the parent's own\n")
    assert r.process_stats[1].faults_by_kind["cow"] >= 1          # the private page


def test_segfault_on_read_only_page_names_address_and_reason():
    r = run_program(RunOptions(fixture_path("segv")))
    assert r.exit_status == 139 and r.stdout == b"segv: writing to .rodata\n"
    d = r.death
    assert d["signal"] == "SIGSEGV" and d["access"] == "w" and "r--" in d["reason"]
    assert d["symbol"] and d["symbol"].startswith("main")


# ---------------------------------------------------------------- one model: replay == run
@pytest.mark.parametrize("policy", ["fifo", "lru", "clock"])
def test_emitted_trace_replays_to_the_same_faults(tmp_path, policy):
    """simple model, 16 frames: the trace engine over the run's own references takes the run's
    faults plus the pages execve left present (first touches in the replay)."""
    from elfvm.mmu.tlb import tlb_geometry
    from elfvm.sim.engine import SimConfig
    from elfvm.sim.stream import run_traces

    trace = tmp_path / "run.lackey"
    r = run_program(RunOptions(fixture_path("lazy"), ("24",), fault_model="simple", frames=16,
                               policy=policy, emit_trace=str(trace)))
    assert r.exact and r.exit_status == 0 and r.evictions > 0
    rep = run_traces([str(trace)], SimConfig(policy, 16, 4096, tlb_geometry(64), walk_levels=4)).total
    assert rep.page_faults == r.page_faults + r.pages_at_exec
    assert rep.references == r.stats.references + r.pages_at_exec
    assert (rep.evictions, rep.dirty_evictions) == (r.evictions, r.dirty_evictions)


def test_exact_and_default_modes_agree_on_faults_without_pressure():
    d = run_program(RunOptions(fixture_path("hello_static")))
    e = run_program(RunOptions(fixture_path("hello_static"), exact=True))
    assert e.faults_by_kind == d.faults_by_kind and e.stdout == d.stdout
    assert e.stats.references > 10000 and 0.9 < e.stats.tlb.hit_ratio < 1
    assert e.stats.effective_access_ns is not None


# ---------------------------------------------------------------- the command
def elfvm(*args, input=None, cwd=None):
    """Options end at PROGRAM: a leading PROGRAM moves behind the options given after it."""
    if args and os.path.isfile(args[0]):
        args = (*args[1:], args[0])
    return subprocess.run([sys.executable, "-m", "elfvm", "simulate-run", *args], input=input,
                          capture_output=True, cwd=cwd, timeout=120)


def test_cli_program_options(tmp_path):
    data = tmp_path / "in.txt"
    data.write_bytes(b"pear\napple\nfig\n")
    p = elfvm(fixture_path("sortlines"), "--stdin", str(data), "--env-clear", "--env", "A=1",
              "--format", "json", "--fault-model", "simple")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["guest"]["stdout"] == "apple\nfig\npear\n" and d["guest"]["exit_status"] == 0
    assert {"read", "write"} <= {s["name"] for s in d["guest"]["syscalls"]}
    p = elfvm(fixture_path("hello_static"), "--max-instructions", "500", "-q")
    assert p.returncode == 5 and b"--max-instructions 500" in p.stderr
    p = elfvm(fixture_path("segv"), "-q", "--show", "events", "--limit", "3")
    assert p.returncode == 139 and b"SIGSEGV at 0x" in p.stdout and b"eip" in p.stdout
    for bad in (["--compare", "fifo,lru"], ["--policy", "opt"], ["--frames", "4"],
                ["--stdin", str(tmp_path / "missing")]):
        p = elfvm(fixture_path("hello_static"), *bad)
        assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, (bad, p.stderr)


def test_cli_exact_tlb_and_emit_trace(tmp_path):
    p = elfvm(fixture_path("tiny"), "--emit-trace", str(tmp_path / "t.lackey"), "-q")
    assert p.returncode == 42
    assert b"TLB hit ratio" in p.stdout and b"effective access time" in p.stdout
    lines = (tmp_path / "t.lackey").read_text().splitlines()
    assert lines[0].startswith("==") and any(ln.startswith("I  08049000,") for ln in lines)
    p = elfvm("--trace", str(tmp_path / "t.lackey"), "--frames", "8", "--format", "json")
    assert p.returncode == 0 and json.loads(p.stdout)["page_faults"] >= 2


def _looping_elf(tmp_path) -> str:
    base = 0x08048000
    ident = b"\x7fELF" + bytes([1, 1, 1, 0]) + bytes(8)
    code = b"\x40\xeb\xfd"                                  # inc eax; jmp back
    size = 84 + len(code)
    ehdr = ident + struct.pack("<HHIIIIIHHHHHH", 2, 3, 1, base + 84, 52, 0, 0, 52, 32, 1, 0, 0, 0)
    phdr = struct.pack("<IIIIIIII", 1, 0, base, base, size, size, 5, 0x1000)
    p = tmp_path / "loop"
    p.write_bytes(ehdr + phdr + code)
    p.chmod(0o755)
    return str(p)


def test_ctrl_c_stops_with_a_partial_report(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "elfvm", "simulate-run", _looping_elf(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert b"interrupted (partial report)" in out and b"final memory map" in out
    assert b"Traceback" not in err


def test_write_dir_receives_guest_writes(tmp_path):
    """Writes go to --write-dir when given (the host file itself stays untouched)."""
    p = elfvm(fixture_path("hello_static"), "--write-dir", str(tmp_path), "-q")
    assert p.returncode == 0
    p = elfvm(fixture_path("hello_static"), "--write-dir", str(tmp_path / "nope"))
    assert p.returncode == 2
