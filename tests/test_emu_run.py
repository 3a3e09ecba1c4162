"""Program mode of simulate-run (issue 5): real i386 programs on Unicorn with lazy faults."""

import json
import struct

import pytest

from conftest import fixture_path

pytest.importorskip("unicorn")

from elfvm.emu import ProgramRejected, RunOptions, run_program  # noqa: E402
from elfvm.mm.fault import Pte, fault_around_range, handle_mm_fault  # noqa: E402
from elfvm.mm.vma import PROT_READ, PROT_WRITE, FileRef, Mm, Vma  # noqa: E402

BASE = 0x08048000


def crafted_elf(tmp_path, code: bytes, data: bytes = b"", name: str = "prog") -> str:
    """An ET_EXEC with one R+X PT_LOAD (header + code + data) at 0x08048000, entry at the code.
    `code` may use DATA (the address of `data`) through the {data} placeholder of pack_code."""
    ident = b"\x7fELF" + bytes([1, 1, 1, 0]) + bytes(8)
    entry = BASE + 84
    size = 84 + len(code) + len(data)
    ehdr = ident + struct.pack("<HHIIIIIHHHHHH", 2, 3, 1, entry, 52, 0, 0, 52, 32, 1, 0, 0, 0)
    phdr = struct.pack("<IIIIIIII", 1, 0, BASE, BASE, size, size, 5, 0x1000)
    p = tmp_path / name
    p.write_bytes(ehdr + phdr + code + data)
    p.chmod(0o755)
    return str(p)


def mov(reg: str, imm: int) -> bytes:
    return bytes([{"eax": 0xB8, "ecx": 0xB9, "edx": 0xBA, "ebx": 0xBB}[reg]]) + struct.pack("<I", imm)


INT80 = b"\xcd\x80"


# ---------------------------------------------------------------- the fault rules, by hand
def test_fault_around_window_is_aligned_and_clipped():
    # 16-page aligned window around 0x08052000 inside a big VMA
    assert fault_around_range(0x08052000, 0x08049000, 0x08100000, 512) == (0x08050000, 0x08060000)
    # clipped to the VMA start and end
    assert fault_around_range(0x0804A000, 0x08049000, 0x0804C000, 512) == (0x08049000, 0x0804C000)
    # clipped to the page table (512 PTEs = 2 MiB on x86-64): window never crosses 0x08200000
    assert fault_around_range(0x081FF000, 0x08000000, 0x08400000, 512) == (0x081F0000, 0x08200000)


@pytest.mark.parametrize("kw,handler,kind", [
    (dict(anonymous=True, access="r"), "do_anonymous_page", "zero-page"),
    (dict(anonymous=True, access="w"), "do_anonymous_page", "first-touch"),
    (dict(anonymous=False, access="r"), "do_read_fault", "file"),
    (dict(anonymous=False, access="w"), "do_cow_fault", "cow"),
    (dict(anonymous=False, access="w", present=True), "wp_page_copy", "cow"),
    (dict(anonymous=True, access="w", present=True, exclusive=True), "wp_page_reuse", "cow"),
    (dict(anonymous=True, access="w", swapped=True), "do_swap_page", "swap-in"),
])
def test_handler_choice(kw, handler, kind):
    """The handler (and the paging model's kind) of each case, from the one decision."""
    f = FileRef("/x") if not kw.pop("anonymous") else None
    access = kw.pop("access")
    mm = Mm(0xFFFFE000, vmas=[Vma(0x8048000, 0x8050000, PROT_READ | PROT_WRITE, 0, f)])
    d = handle_mm_fault(mm, 0x8049000, access, pte=Pte(**kw))
    assert (d.handler, d.counted) == (handler, kind) and not d.fatal


# ---------------------------------------------------------------- runs
def test_hello_static_runs_to_exit():
    r = run_program(RunOptions(fixture_path("hello_static")))
    assert r.stdout == b"hello, world\n"
    assert r.exit_status == 0
    names = {s["name"] for s in r.syscalls}
    assert {"write", "brk", "set_thread_area", "exit_group"} <= names
    assert r.instructions is None or r.instructions > 1000
    assert "[heap]" in r.maps_text            # brk grew the heap


def test_tiny_fault_count_by_hand():
    """tiny: the .data page is present at exec (padzero cleared its bss tail), so the only fault
    is the first instruction fetch of the text page (a file read fault)."""
    for model in ("linux", "simple"):
        r = run_program(RunOptions(fixture_path("tiny"), fault_model=model))
        assert r.exit_status == 42
        assert r.page_faults == 1
        assert r.faults_by_kind["file"] == 1


def test_zero_page_then_cow_by_hand(tmp_path):
    """Read then write one untouched page of a big anonymous mapping: linux counts the zero-page
    read fault and the write fault (2); the textbook counts one first touch."""
    code = (mov("eax", 192) + mov("ebx", 0) + mov("ecx", 1 << 20) + mov("edx", 3) +
            bytes([0xBE]) + struct.pack("<I", 0x22) + bytes([0xBF]) + struct.pack("<I", 0xFFFFFFFF) +
            bytes([0xBD]) + struct.pack("<I", 0) + INT80 +          # mmap2(0, 1M, RW, PRIVATE|ANON)
            b"\x8b\x18" +                                               # mov ebx, [eax]
            b"\x89\x18" +                                               # mov [eax], ebx
            mov("eax", 1) + mov("ebx", 7) + INT80)
    prog = crafted_elf(tmp_path, code)
    linux = run_program(RunOptions(prog))
    simple = run_program(RunOptions(prog, fault_model="simple"))
    assert linux.exit_status == simple.exit_status == 7
    # text page + zero-page read + cow on write
    assert (linux.faults_by_kind["file"], linux.faults_by_kind["zero-page"], linux.faults_by_kind["cow"]) == (1, 1, 1)
    assert linux.page_faults == 3
    assert simple.page_faults == 2


def test_hello_pie_dynamic_with_ld_so(needs_interp):
    r = run_program(RunOptions(fixture_path("hello_pie")))
    assert r.stdout == b"hello, world\n" and r.exit_status == 0
    names = {s["name"] for s in r.syscalls}
    assert {"openat", "mmap2", "mprotect"} <= names
    assert "libc.so.6" in r.maps_text


def test_touch_fork_cow(needs_interp):
    r = run_program(RunOptions(fixture_path("touch")))
    assert r.exit_status == 0
    assert r.stdout.startswith(b"touch: 256 pages written, sum 1920, parent sees 1")
    assert len(r.processes) == 2
    child, child_stats = r.processes[1], r.process_stats[1]
    assert child["exit_status"] == 0 and child_stats.faults_by_kind["cow"] >= 1
    assert r.faults_by_kind["first-touch"] >= 256          # one write fault per malloc'd page


def test_execve_in_a_run_counts_its_own_faults():
    """An execve inside the run takes the faults the kernel takes in execve (the stack pages
    copy_strings and create_elf_tables write, padzero's bss tail), counted for that task (the
    parent's cminflt): one write fault per page the loader says execve wrote. The first
    exec's are before the run (pages present at exec), not counted."""
    from elfvm.kernel.binfmt_elf import ExecRequest, execve

    path = fixture_path("forkexec")
    r = run_program(RunOptions(path))
    assert r.exit_status == 0
    child = r.processes[1]["pid"]
    fd = r.stdout.split(b"ARGV[2]=")[1].split()[0].decode()
    pages = [pa for pa, _v, _d in execve(ExecRequest(path, [path, "child", fd])).exec_pages()]
    at_exec = [(e["address"], e["handler"]) for e in r.events
               if e["pid"] == child and e["kernel"] and e["address"] in pages]
    assert [a for a, _ in at_exec] == pages and len(pages) >= 2
    assert {h for _, h in at_exec} <= {"do_anonymous_page", "do_cow_fault"}
    first = [pa for pa, _v, _d in execve(ExecRequest(path, [path])).exec_pages()]
    assert r.pages_at_exec == len(first)


def test_segfault_on_read_only_page(tmp_path):
    code = mov("eax", 1) + b"\xa3" + struct.pack("<I", BASE) + INT80   # mov [BASE], eax: text is r-x
    r = run_program(RunOptions(crafted_elf(tmp_path, code)))
    assert r.exit_status == 139
    assert r.death["signal"] == "SIGSEGV"
    assert r.death["address"] == BASE and r.death["access"] == "w"
    assert "r-x" in r.death["reason"]


def test_guest_cannot_write_host_file(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"original\n")
    path = str(victim).encode() + b"\0"
    msg = b"overwritten\n"
    code_len = 50
    data_addr = BASE + 84 + code_len
    code = (mov("eax", 5) + mov("ebx", data_addr) + mov("ecx", 0o1101) + mov("edx", 0o644) + INT80 +
            b"\x89\xc3" + mov("eax", 4) + mov("ecx", data_addr + len(path)) + mov("edx", len(msg)) + INT80 +
            mov("eax", 1) + b"\x31\xdb" + INT80)
    assert len(code) == code_len
    r = run_program(RunOptions(crafted_elf(tmp_path, code, path + msg)))
    assert r.exit_status == 0
    assert {"open", "write"} <= {s["name"] for s in r.syscalls}
    assert victim.read_bytes() == b"original\n"


def test_bad_program_gets_the_layout_verdict(tmp_path):
    bad = tmp_path / "notelf"
    bad.write_bytes(b"\x7fELX" + bytes(200))
    bad.chmod(0o755)
    with pytest.raises(ProgramRejected) as e:
        run_program(RunOptions(str(bad)))
    assert e.value.exit_code == 3 and "ENOEXEC" in e.value.message


def test_max_instructions_stops_with_exit_5():
    r = run_program(RunOptions(fixture_path("hello_static"), max_instructions=2000))
    assert r.stop_reason == "max-instructions"
    assert r.exit_code == 5


def test_json_keys_exactly_trace_mode_plus_guest_and_maps():
    from elfvm.render.program import render_json
    from elfvm.kernel.binfmt_elf import ExecRequest, execve
    from elfvm.render.layout import to_json as layout_json

    d = json.loads(render_json(run_program(RunOptions(fixture_path("hello_static")))))
    trace_keys = ["references", "pages_touched", "page_faults", "faults_by_kind", "evictions",
                  "dirty_evictions", "swap_ins", "tlb", "effective_access_ns", "pages", "frames"]
    assert list(d) == trace_keys + ["processes", "guest", "maps"]
    assert list(d["processes"][0]) == trace_keys
    assert set(d["guest"]) == {"stdout", "stdout_base64", "stderr", "stderr_base64", "exit_status",
                               "instructions", "syscalls", "unknown_syscalls", "processes"}
    assert d["guest"]["stdout"] == "hello, world\n"
    layout = layout_json(execve(ExecRequest(fixture_path("hello_static"), ["x"], [])))
    assert list(d["maps"][0]) == list(layout["vmas"][0])
    # the default mode sees TLB fills, not references: no invented TLB figures
    assert d["references"] is None and d["effective_access_ns"] is None
    assert d["tlb"] == {"hits": None, "misses": None, "hit_ratio": None}


def test_small_memory_evicts_and_swaps_in(needs_interp):
    r = run_program(RunOptions(fixture_path("touch"), frames=64, policy="fifo"))
    assert r.exit_status == 0
    assert r.evictions > 0 and r.dirty_evictions > 0 and r.swap_ins > 0
    assert r.stdout.startswith(b"touch: 256 pages written, sum 1920")


# ---------------------------------------------------------------- the model's kernels (issue 14)

_MODULES_AFTER = (
    "import sys\nfrom elfvm.cli import cli\nrc = 'raised'\n"
    "try:\n    rc = cli.main(args=sys.argv[1:], prog_name='elfvm', standalone_mode=False)\n"
    "except SystemExit as e:\n    rc = e.code\n"
    "print('MODULES', rc, sorted(m for m in sys.modules\n"
    "                             if m.split('.')[0] in ('numpy', 'numba', '_elfvm_sim_aot')), file=sys.stderr)\n")


def _heavy_modules(*args: str, after: str | None = None) -> tuple[str, str]:
    """(return code, the numpy/numba/AOT-library modules imported) of one CLI run in its own
    process (the AOT library built first if needed: the default mode of an installed elfvm)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("ELFVM_JIT_AFTER",)}
    env["ELFVM_JIT"] = "aot"
    if after is not None:
        env["ELFVM_JIT_AFTER"] = after
    r = subprocess.run([sys.executable, "-c", _MODULES_AFTER, *args], capture_output=True,
                       text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    _, rc, mods = [ln for ln in r.stderr.splitlines() if ln.startswith("MODULES ")][-1].split(" ", 2)
    return rc, mods


def test_a_program_run_imports_no_numpy():
    """A default `simulate-run PROGRAM` runs the paging model's kernels as plain Python: numpy
    (~50 ms of start-up), numba and the compiled library are never imported. --exact-tlb (its
    batches are numpy arrays for the compiled kernels) load them, and so does a run that makes
    more than ELFVM_JIT_AFTER accesses: its model moves to the compiled kernels."""
    prog = fixture_path("touch")
    assert _heavy_modules("simulate-run", "-q", prog) == ("0", "[]")
    rc, mods = _heavy_modules("simulate-run", "-q", prog, after="20")
    assert rc == "0" and "'numpy'" in mods and "'_elfvm_sim_aot'" in mods
    rc, mods = _heavy_modules("simulate-run", "-q", "--exact-tlb", prog)
    assert rc == "0" and "'numpy'" in mods and "'_elfvm_sim_aot'" in mods


# What a plain run imports (issue 14: elfvm's own start-up). Each of these modules holds what
# only some runs need, imported at its first use: translate's walk records, section headers and
# symbols, signal delivery, timers, the system-call names of unknown calls, the lackey writer.
LATER_MODULES = ("elfvm.mmu.walk", "elfvm.elf.sections", "elfvm.emu.signals", "elfvm.emu.sys_timer",
                 "elfvm.emu.syscall_names", "elfvm.emu.tracefile")


def test_a_plain_program_run_leaves_the_rare_paths_unimported():
    """A `simulate-run PROGRAM` that sends no signal, arms no timer, makes no unknown system
    call and writes no trace imports none of LATER_MODULES; a run that does imports what it
    uses (the timers fixture: timers and SIGALRM delivery)."""
    import subprocess
    import sys

    code = ("import sys\nfrom elfvm.cli import cli\n"
            "try:\n    cli.main(args=sys.argv[1:], prog_name='elfvm', standalone_mode=False)\n"
            "except SystemExit:\n    pass\n"
            f"print('LATER', sorted(m for m in {LATER_MODULES!r} if m in sys.modules), file=sys.stderr)\n")

    def later(prog: str) -> list[str]:
        r = subprocess.run([sys.executable, "-c", code, "simulate-run", "-q", fixture_path(prog)],
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        return [ln for ln in r.stderr.splitlines() if ln.startswith("LATER ")][-1].split(" ", 1)[1]

    assert later("hello_static") == "[]"
    assert later("timers") == "['elfvm.emu.signals', 'elfvm.emu.sys_timer']"


@pytest.mark.parametrize("name,extra", [("touch", ["--frames", "8", "--policy", "clock"]),
                                        ("forkexec", ["--frames", "16", "--mmu", "pae"])])
def test_moving_to_compiled_kernels_mid_run_changes_no_figure(monkeypatch, name, extra):
    """The whole JSON report is the same whether the model's kernels run as plain Python
    throughout, compiled from the start, or move after a few accesses (ELFVM_JIT_AFTER)."""
    from click.testing import CliRunner

    from elfvm.cli import cli

    prog = fixture_path(name)
    outs = {}
    for after in ("100000000", "0", "3", "40"):
        monkeypatch.setenv("ELFVM_JIT_AFTER", after)
        r = CliRunner().invoke(cli, ["simulate-run", "--format", "json", "--env-clear",
                                     "--clock", "fixed", *extra, prog], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        outs[after] = r.stdout
    assert len(set(outs.values())) == 1
    assert json.loads(outs["0"])["page_faults"] > 0
