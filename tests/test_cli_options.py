"""Every option of every command, against every way of calling the command: an option either
changes what the command does or is a usage error (exit 2) naming it. No option is accepted and
ignored. A new option fails `test_every_option_is_classified` until it is added here."""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner

from elfvm.cli import cli
from elfvm.commands.eat import eat
from elfvm.commands.layout import layout
from elfvm.commands.simulate_run import simulate_run
from elfvm.commands.translate import translate
from tests.conftest import fixture_path

TINY = fixture_path("tiny")
PIE = fixture_path("hello_pie")
VARS = fixture_path("vars")


def _trace(tmp: str) -> str:
    path = os.path.join(tmp, "t.plain")
    with open(path, "w") as f:
        f.write("".join(f"{'W' if i % 3 == 0 else 'R'} {0x1000 * (i % 7) + 4 * i:#x}\n" for i in range(200)))
    return path


# (command, mode) -> (the mode's base arguments, {option: args that change the output},
#                     {option: args that must be a usage error in this mode}, {option: why untested})
def modes(tmp: str) -> dict:
    svg = os.path.join(tmp, "o.svg")
    t = _trace(tmp)
    layout_any = {"profile": ["--profile", "linux-i386"], "sysroot": ["--sysroot", tmp],
                  "env_set": ["--env", "A=1"], "env_clear": ["--env-clear"], "argv0": ["--argv0", "x"],
                  "rlimit_stack": ["--rlimit-stack", "1G"], "legacy": ["--legacy"],
                  "addr_limit_3gb": ["--3gb"], "aslr": ["--aslr", "--seed", "7"],
                  "seed": ["--aslr", "--seed", "8"], "svg_file": ["--svg", svg]}
    table_only = {"show_stack": ["--stack"], "wide": ["--wide"], "explain": ["--explain", "main"],
                  "diagram": ["--diagram"]}
    lay_rej = {"split": ["--split", "2G"]}
    kernel = {"kernel_version": ["--kernel", "6.1"]}
    auxv_json = {"hwcap": ["--hwcap", "0x1"], "hwcap2": ["--hwcap2", "0x1"],
                 "minsigstksz": ["--minsigstksz", "4096"]}
    auxv_unseen = {k: "an auxv word: moves no mapping; seen with --format json and --stack "
                      "(layout-json here, tests/test_kernel_versions.py)" for k in auxv_json}
    big = "x" * 300_000                  # argv/envp this big moves the stack VMA in the maps
    big_stack = {"env_set": ["--env", f"A={big}"], "argv0": ["--argv0", big],
                 "env_clear": ["--env", f"A={big}", "--env-clear"]}
    verify = {"verify": "runs the program under ptrace: tests/test_oracle_layout.py",
              "program": "the mode itself", "args": "test_program_args_after_program"}
    out = {
        ("layout", "table"): ([PIE], {**layout_any, **table_only, **kernel,
                                      "split": ["--profile", "linux-i386", "--split", "2G"],
                                      "fmt": ["--format", "json"]}, lay_rej, {**verify, **auxv_unseen}),
        ("layout", "maps"): (["--format", "maps", PIE], {**layout_any, **big_stack, **kernel},
                             {**lay_rej, **table_only},
                             {**verify, **auxv_unseen, "fmt": "the mode itself"}),
        ("layout", "json"): (["--format", "json", PIE], {**layout_any, **big_stack, **kernel, **auxv_json},
                             {**lay_rej, **table_only}, {**verify, "fmt": "the mode itself"}),
        ("translate", "elf"): (["--elf", VARS, "counter"],
                               {"mmu": ["--mmu", "i386"], "ram": ["--ram", "33M"], "access": ["--access", "w"],
                                "cpl": ["--cpl", "0"], "profile_name": ["--profile", "linux-i386"],
                                "split": ["--profile", "linux-i386", "--split", "2G"],
                                "sysroot": ["--sysroot", tmp], "fmt": ["--format", "json"],
                                "addr_file": ["--addresses", "-"], "svg_file": ["--svg", svg],
                                "bits": ["--mmu", "custom", "--bits", "10,10,12"],
                                "descriptors": ["--descriptor", "gdt:4:base=0x1000,limit=0xfffff,"
                                                "type=data-rw,dpl=3,g=1", "0x23:counter"],
                                "kernel_version": ["--kernel", "6.1", "0xf7fc1000"]},
                               {"pid": ["--pid", "1"]},
                               {"elf": "the mode itself", "addresses": "the mode itself"}),
        ("translate", "geometry"): (["0x0804a123"],
                                    {"mmu": ["--mmu", "i386"], "bits": ["--mmu", "custom", "--bits", "10,10,12"],
                                     "fmt": ["--format", "json"], "svg_file": ["--svg", svg],
                                     "profile_name": ["--profile", "linux-i386"],
                                     "access": ["--access", "w"], "cpl": ["--cpl", "0"],
                                     "addr_file": ["--addresses", "-"],
                                     "ram": ["--profile", "linux-i386", "--ram", "1G"],
                                     "split": ["--profile", "linux-i386", "--split", "2G"],
                                     "descriptors": ["--descriptor", "ldt:1:base=0x10,limit=0xfff,"
                                                     "type=data-rw", "0x0f:0x10"]},
                                    {"sysroot": ["--sysroot", tmp], "split": ["--split", "2G"],
                                     "kernel_version": ["--kernel", "6.1"]},
                                    {"elf": "another mode", "pid": "a live process: test_mmu_oracle.py",
                                     "addresses": "the mode itself"}),
    }
    prog_only = {"fault_model": ["--fault-model", "simple"], "exact_tlb": ["--exact-tlb"],
                 "emit_trace": ["--emit-trace", os.path.join(tmp, "e.lackey")],
                 "sysroot": ["--sysroot", tmp], "stdin_file": ["--stdin", t],
                 "write_dir": ["--write-dir", tmp], "max_instructions": ["--max-instructions", "2"],
                 "env_set": ["--env", "A=1"], "env_clear": ["--env-clear"],
                 "rlimit_stack": ["--rlimit-stack", "1M"],
                 "stdout_file": ["--stdout", os.path.join(tmp, "out.bin")], "cwd": ["--cwd", "/tmp"],
                 "clock": ["--clock", "fixed"], "strict": ["--strict"],
                 "page_cache": ["--page-cache", "live"], **kernel, **auxv_json}
    # --page-cache live reads /proc/kpageflags and pagemap PFNs: root only (else a usage error,
    # tests/test_page_cache.py); the report's fault-around line names the source
    live_cache = () if os.geteuid() == 0 else ("page_cache",)
    real_only = ("stdin_file", "write_dir", "sysroot", "stdout_file", "cwd", "clock", "strict",
                 *auxv_json)
    trace_only = {"trace_format": ["--trace-format", "plain"], "page_size": ["--page-size", "8K"],
                  "bits": ["--mmu", "custom", "--bits", "10,10,12"], "quantum": ["--quantum", "5"],
                  "skip_bad_lines": ["--skip-bad-lines"]}
    both = {"frames": ["--frames", "2"], "ram": ["--ram", "8K"], "policy": ["--policy", "fifo"],
            "tlb_entries": ["--tlb-entries", "4"], "tlb_ways": ["--tlb-ways", "2"],
            "split_tlb": ["--split-tlb"], "mmu": ["--mmu", "i386"], "walk_levels": ["--walk-levels", "1"],
            "tlb_ns": ["--tlb-ns", "1"], "mem_ns": ["--mem-ns", "1"], "shows": ["--show", "frames"],
            "limit": ["--show", "frames", "--limit", "1"], "fmt": ["--format", "json"],
            "svg_file": ["--svg", svg]}
    out[("simulate-run", "trace")] = (
        ["--trace", t], {**both, **{k: v for k, v in trace_only.items() if k != "skip_bad_lines"},
                         "page_size": ["--page-size", "8K"],
                         "compare": ["--compare", "fifo,lru"],
                         "asid": ["--trace", t, "--asid"], "quantum": ["--trace", t, "--quantum", "5"],
                         "trace_format": ["--trace-format", "lackey", "--skip-bad-lines"]},
        {**prog_only, "refs": ["--refs", "1 2"], "program": [TINY]},
        {"traces": "the mode itself", "args": "program mode",
         "skip_bad_lines": "needs a bad trace: tests/test_sim_trace.py",
         "quiet": "progress bars only on a terminal: tests/test_sim_cli.py"})
    out[("simulate-run", "program")] = (
        [], {**{k: v + ["--exact-tlb"] if k in ("tlb_ns", "mem_ns", "walk_levels", "tlb_entries",
                                              "tlb_ways", "split_tlb") else v
                for k, v in both.items()},
             **{k: v for k, v in prog_only.items() if k not in real_only + live_cache},
             "asid": ["--asid", "--exact-tlb"], "frames": ["--frames", "8"],
             "env_set": ["--env", "A=" + "x" * 300_000], "rlimit_stack": ["--rlimit-stack", "unlimited"],
             "env_clear": ["--env", "A=" + "x" * 300_000, "--env-clear"]},
        {**trace_only, "compare": ["--compare", "fifo"], "refs": ["--refs", "1 2"],
         "traces": ["--trace", t]},
        {"program": "the mode itself", "args": "test_program_args_after_program",
         "stdin_file": "tiny reads nothing: tests/test_emu_run.py",
         "write_dir": "tiny writes nothing: tests/test_emu_run.py",
         "sysroot": "tiny is static: tests/test_emu_run.py",
         "stdout_file": "tiny prints nothing: tests/test_emu_syscalls.py",
         "cwd": "tiny asks no cwd: tests/test_emu_syscalls.py",
         "clock": "tiny reads no clock: tests/test_emu_syscalls.py",
         "strict": "tiny makes no unimplemented call: tests/test_emu_syscalls.py",
         "quiet": "tiny prints nothing live: tests/test_emu_lecture.py",
         **{k: "not root: a usage error, tests/test_page_cache.py" for k in live_cache},
         **{k: "tiny reads no auxv word: tests/test_kernel_versions.py" for k in auxv_json}})
    out[("simulate-run", "refs")] = (
        ["--refs", "1 2 3 4 1 2 5 1 2 3 4 5"],
        {"frames": ["--frames", "4"], "policy": ["--policy", "opt"], "compare": ["--compare", "fifo,opt"],
         "shows": ["--show", "steps"], "fmt": ["--format", "json"]},
        {**prog_only, **{k: v for k, v in both.items() if k not in ("frames", "policy", "shows", "fmt")},
         **trace_only, "quiet": ["--quiet"], "asid": ["--asid"], "traces": ["--trace", t],
         "program": [TINY]},
        {"refs": "the mode itself", "args": "program mode"})
    out[("eat", "calc")] = (
        ["--hit-ratio", "0.95"],
        {"tlb_ns": ["--tlb-ns", "1"], "mem_ns": ["--mem-ns", "1"], "walk_levels": ["--walk-levels", "3"],
         "fault_rate": ["--fault-rate", "0.001", "--fault-ns", "1000"],
         "fault_ns": ["--fault-rate", "0.001", "--fault-ns", "2000"], "fmt": ["--format", "json"]},
        {}, {"hit_ratio": "the mode itself"})
    return out


# options whose test value is refused for what it is, which shows they are applied
VALUE_ERRORS = {(("translate", "elf"), "ram"), (("translate", "elf"), "sysroot")}
COMMANDS = {"layout": layout, "translate": translate, "simulate-run": simulate_run, "eat": eat}
KEYS = [("layout", "table"), ("layout", "maps"), ("layout", "json"), ("translate", "elf"),
        ("translate", "geometry"), ("simulate-run", "trace"), ("simulate-run", "program"),
        ("simulate-run", "refs"), ("eat", "calc")]


def _invoke(cmd: str, mode: str, base: list[str], extra: list[str], tmp: str):
    if cmd == "simulate-run" and mode == "program":
        args = [*extra, TINY]
    elif cmd == "layout" or (cmd == "simulate-run" and "program" in extra):
        args = [*extra, *base]
    else:
        args = [*base, *extra]
    r = CliRunner().invoke(cli, [cmd, *args], input="0x1000\n")
    files = ""
    for name in ("o.svg", "e.lackey"):
        p = os.path.join(tmp, name)
        if os.path.exists(p):
            files += name + open(p, errors="replace").read()[:4000]
            os.unlink(p)
    return r, r.output + files


@pytest.mark.parametrize("key", KEYS, ids=["-".join(k) for k in KEYS])
def test_every_option_is_classified(key, tmp_path):
    base, applies, rejects, skipped = modes(str(tmp_path))[key]
    names = {p.name for p in COMMANDS[key[0]].params}
    assert names == set(applies) | set(rejects) | set(skipped), \
        f"{key}: unclassified {names - set(applies) - set(rejects) - set(skipped)}"


def _cases(kind: str):
    import tempfile

    tmp = tempfile.mkdtemp()
    for key in KEYS:
        base, applies, rejects, _ = modes(tmp)[key]
        table = applies if kind == "applies" else rejects
        for name in table:
            yield pytest.param(key, name, id=f"{'-'.join(key)}-{name}")


@pytest.mark.parametrize("key, name", list(_cases("rejects")))
def test_inapplicable_option_is_a_usage_error(key, name, tmp_path):
    base, _, rejects, _ = modes(str(tmp_path))[key]
    r, _ = _invoke(*key, base, rejects[name], str(tmp_path))
    assert r.exit_code == 2, (key, name, r.output)
    assert "internal error" not in r.output and "Traceback" not in r.output


@pytest.mark.parametrize("key, name", list(_cases("applies")))
def test_applicable_option_changes_the_result(key, name, tmp_path):
    base, applies, _, _ = modes(str(tmp_path))[key]
    before, out0 = _invoke(*key, base, [], str(tmp_path))
    after, out1 = _invoke(*key, base, applies[name], str(tmp_path))
    if (key, name) not in VALUE_ERRORS:
        assert after.exit_code != 2, (key, name, after.output)
    assert "internal error" not in after.output
    assert out1 != out0, f"{key} {name}: accepted but changed nothing"


def test_program_args_after_program():
    """Options end at PROGRAM: what follows is argv, dashes included; `--` is still accepted."""
    import json

    r = CliRunner().invoke(cli, ["layout", "--format", "json", "--env-clear", TINY, "-v", "--x"])
    assert r.exit_code == 0, r.output
    assert [a["value"] for a in json.loads(r.output)["stack"]["argv"]] == [TINY, "-v", "--x"]
    r2 = CliRunner().invoke(cli, ["layout", "--format", "json", "--env-clear", TINY, "--", "-v", "--x"])
    assert json.loads(r2.output)["stack"]["argv"] == json.loads(r.output)["stack"]["argv"]
    r3 = CliRunner().invoke(cli, ["simulate-run", "--format", "json", TINY, "--frames", "1"])
    assert json.loads(r3.output)["guest"]["exit_status"] == 42      # --frames went to the guest
