"""`elfvm layout` through click's runner: formats, the JSON contract, options and exit codes."""

import json
import shutil

import pytest
from click.testing import CliRunner

from conftest import fixture_path
from elfvm.cli import cli

JSON_KEYS = {"program", "profile", "entry", "load_bias", "interp", "mm", "vmas", "auxv", "stack",
             "verdict"}
MM_KEYS = {"start_code", "end_code", "start_data", "end_data", "start_brk", "brk", "start_stack",
           "mmap_base"}


def run(*args):
    return CliRunner().invoke(cli, ["layout", *args], catch_exceptions=False)


def as_json(*args):
    r = run("--format", "json", *args)
    return r, json.loads(r.stdout)


def test_json_contract_for_a_pie(needs_interp):
    r, j = as_json("--env-clear", fixture_path("hello_pie"))
    assert r.exit_code == 0
    assert set(j) == JSON_KEYS
    assert set(j["mm"]) == MM_KEYS
    assert j["profile"] == "linux-x86_64-compat"
    assert j["load_bias"] == 0x56555000
    assert j["interp"] == {"path": "/usr/lib32/ld-linux.so.2", "base": 0xF7FC9000,
                           "entry": j["entry"]}
    assert j["mm"]["mmap_base"] == 0xF7FFE000
    assert j["mm"]["start_brk"] == j["mm"]["brk"]
    for v in j["vmas"]:
        assert set(v) == {"start", "end", "perms", "pgoff", "name", "kind", "source"}
        assert isinstance(v["start"], int) and v["start"] < v["end"]
    names = [v["name"] for v in j["vmas"]]
    assert names[-1] == "[stack]" and "[vdso]" in names and "[vvar]" in names
    assert j["vmas"][0]["start"] == 0x56555000 and j["vmas"][0]["perms"] == "r--p"
    assert [a["name"] for a in j["auxv"]][-1] == "AT_NULL" and len(j["auxv"]) == 24
    assert set(j["stack"]) == {"top", "vma_start", "esp", "argv", "envp"}
    assert j["stack"]["top"] == 0xFFFFE000 and j["stack"]["esp"] % 16 == 0
    assert j["stack"]["envp"] == []
    assert j["verdict"] == {"result": "ok", "errno": None, "reason": None}


def test_maps_format_is_proc_maps_lines(needs_interp):
    r = run("--format", "maps", "--env-clear", fixture_path("hello_static"))
    assert r.exit_code == 0
    lines = r.output.splitlines()
    assert lines[0].startswith("08048000-08049000 r--p 00000000 ")
    assert lines[-1] == "fffdd000-ffffe000 rw-p 00000000 00:00 0" + " " * 34 + "[stack]"
    for line in lines:
        if line.endswith("0 ") is False and len(line) > 73:
            assert line[72] == " " and line[73] != " "     # the name starts at column 73


def test_table_shows_bss_split_and_sections():
    r = run("--env-clear", fixture_path("bigbss"))
    assert r.exit_code == 0, r.output
    assert "padzero" in r.output and "bss, anonymous zero-fill" in r.output and ".bss" in r.output
    assert "[stack]" in r.output and "[vdso]" in r.output


def test_read_implies_exec_for_tiny():
    r, j = as_json("--env-clear", fixture_path("tiny"))
    perms = {v["name"] or v["kind"]: v["perms"] for v in j["vmas"]}
    assert perms["[stack]"] == "rwxp"
    assert j["vmas"][0]["perms"] == "r-xp"           # R and RX segments merged
    assert "READ_IMPLIES_EXEC" in run("--env-clear", fixture_path("tiny")).output


def test_args_and_env_change_the_stack():
    p = fixture_path("hello_static")
    _, base = as_json("--env-clear", p)
    _, more = as_json("--env-clear", "--env", "A=1", "--env", "B=two", p, "--", "x", "-y")
    assert [a["value"] for a in more["stack"]["argv"]] == [p, "x", "-y"]
    assert [e["value"] for e in more["stack"]["envp"]] == ["A=1", "B=two"]
    assert more["stack"]["esp"] < base["stack"]["esp"]
    # --env replaces a variable in place, as putenv does
    _, again = as_json("--env-clear", "--env", "A=1", "--env", "B=2", "--env", "A=3", p)
    assert [e["value"] for e in again["stack"]["envp"]] == ["A=3", "B=2"]


def test_stack_words_option():
    r = run("--env-clear", "--stack", fixture_path("tiny"), "--", "hello")
    assert r.exit_code == 0
    assert "argc" in r.output and "argv[1]" in r.output and "AT_RANDOM (value)" in r.output


def test_profile_i386_split_2g():
    _, j = as_json("--env-clear", "--profile", "linux-i386", "--split", "2G", fixture_path("hello_pie"))
    assert j["profile"] == "linux-i386"
    assert j["stack"]["top"] == 0x80000000
    assert j["load_bias"] == 0x00400000
    assert j["vmas"][-1]["end"] == 0x80000000


def test_native_i386_stack_has_four_zero_bytes_at_top():
    _, j = as_json("--env-clear", "--profile", "linux-i386", fixture_path("tiny"))
    p = fixture_path("tiny")
    # filename string sits at STACK_TOP - 4 - len(filename) - 1
    assert j["stack"]["argv"][0]["addr"] < 0xC0000000 - 4 - len(p) - 1


def test_aslr_seed_is_deterministic_and_differs_from_default():
    p = fixture_path("hello_pie")
    _, a = as_json("--env-clear", "--aslr", "--seed", "7", p)
    _, b = as_json("--env-clear", "--aslr", "--seed", "7", p)
    _, c = as_json("--env-clear", "--aslr", "--seed", "8", p)
    _, off = as_json("--env-clear", p)
    assert a == b
    assert a["vmas"] != c["vmas"] or a["stack"] != c["stack"]
    assert a["load_bias"] != off["load_bias"] or a["stack"]["esp"] != off["stack"]["esp"]
    # the kernel's entropy: PIE base within 256 pages of 0x56555000, stack within 8 MiB + 8 KiB
    assert 0x56555000 <= a["load_bias"] < 0x56555000 + (256 << 12)
    assert 0xFFFFE000 - (0x7FF << 12) - 8192 <= a["stack"]["top"] <= 0xFFFFE000


@pytest.mark.parametrize("args, code, text", [
    (["/nonexistent/prog"], 2, "no such file"),
    (["/"], 2, "directory"),
    (["--aslr", "/bin/true"], 2, "--seed"),
    (["--rlimit-stack", "lots", "/bin/true"], 2, "rlimit-stack"),
    (["/bin/true"], 2, "x86-64 program"),
])
def test_usage_errors(args, code, text):
    r = CliRunner().invoke(cli, ["layout", *args])
    assert r.exit_code == code
    assert text in r.output
    assert "Traceback" not in r.output


def test_errno_verdicts(tmp_path):
    bad = tmp_path / "notelf"
    bad.write_bytes(b"hello world, not an ELF\n" * 4)
    bad.chmod(0o755)
    r = run(str(bad))
    assert r.exit_code == 3 and "ENOEXEC" in r.output and len(r.output.strip().splitlines()) == 1
    noexec = tmp_path / "noexec"
    shutil.copy(fixture_path("tiny"), noexec)
    noexec.chmod(0o644)
    r = run(str(noexec))
    assert r.exit_code == 3 and "EACCES" in r.output
    r, j = as_json(str(bad))
    assert r.exit_code == 3 and j["verdict"]["result"] == "errno" and j["verdict"]["errno"] == "ENOEXEC"


def test_killed_verdict_shows_partial_map(tmp_path):
    """p_filesz > p_memsz: mapped, then killed (exit 4); JSON carries the partial map."""
    from elftools.elf.elffile import ELFFile

    src = fixture_path("tiny")
    data = bytearray(open(src, "rb").read())
    with open(src, "rb") as f:
        ef = ELFFile(f)
        phoff = ef["e_phoff"]
        idx = [i for i, s in enumerate(ef.iter_segments()) if s["p_type"] == "PT_LOAD"][-1]
        filesz = ef.get_segment(idx)["p_filesz"]
    off = phoff + idx * 32
    data[off + 20:off + 24] = (filesz - 1 if filesz else 0).to_bytes(4, "little")   # p_memsz
    if filesz == 0:
        data[off + 16:off + 20] = (1).to_bytes(4, "little")
    bad = tmp_path / "killed"
    bad.write_bytes(bytes(data))
    bad.chmod(0o755)
    r, j = as_json(str(bad))
    assert r.exit_code == 4
    assert j["verdict"]["result"] == "killed" and "p_filesz > p_memsz" in j["verdict"]["reason"]
    assert j["vmas"]                       # the segments mapped before the check are shown


def test_missing_interpreter_still_shows_the_map(tmp_path):
    r, j = as_json("--env-clear", "--sysroot", str(tmp_path), fixture_path("hello_pie"))
    assert r.exit_code == 3
    assert j["verdict"]["result"] == "errno" and j["verdict"]["errno"] == "ENOENT"
    assert j["interp"] is None
    assert j["vmas"][0]["start"] == 0x56555000
    r = run("--env-clear", "--sysroot", str(tmp_path), fixture_path("hello_pie"))
    assert r.exit_code == 3 and "cannot be opened" in r.output


def test_sysroot_resolves_symlinks_inside_the_root(tmp_path, needs_interp):
    (tmp_path / "usr" / "lib32").mkdir(parents=True)
    shutil.copy("/usr/lib32/ld-linux.so.2", tmp_path / "usr" / "lib32" / "ld-linux.so.2")
    (tmp_path / "lib").symlink_to("usr/lib32")
    r, j = as_json("--env-clear", "--sysroot", str(tmp_path), fixture_path("hello_pie"))
    assert r.exit_code == 0
    assert j["interp"]["path"] == "/usr/lib32/ld-linux.so.2"
    assert j["interp"]["base"] == 0xF7FC9000


@pytest.mark.oracle
def test_verify_identical(live, needs_interp):
    r = run("--verify", "--env-clear", fixture_path("hello_pie"), "--", "a", "b")
    assert r.exit_code == 0, r.output
    assert "identical" in r.output


@pytest.mark.oracle
def test_verify_reports_a_difference(live, monkeypatch):
    """A wrong prediction must be caught: break the profile's vDSO offset and expect exit 1."""
    import dataclasses

    from elfvm.kernel import profile as prof

    real = prof.make_profile

    def wrong(*a, **k):
        return dataclasses.replace(real(*a, **k), vdso_vsyscall_offset=0x123)

    monkeypatch.setattr(prof, "make_profile", wrong)
    r = run("--verify", "--env-clear", fixture_path("tiny"))
    assert r.exit_code == 1
    assert "AT_SYSINFO" in r.output


def test_help_has_examples():
    r = CliRunner().invoke(cli, ["layout", "--help"])
    assert r.exit_code == 0 and "Examples" in r.output


def test_huge_sparse_file_is_quick(tmp_path):
    """A 3 GiB (sparse) program is mapped, not read (the ELF reader mmaps it)."""
    big = tmp_path / "big"
    with open(fixture_path("tiny"), "rb") as f:
        head = f.read()
    with open(big, "wb") as f:
        f.write(head)
        f.truncate(3 << 30)
    big.chmod(0o755)
    r = run("--format", "maps", "--env-clear", str(big))
    assert r.exit_code == 0, r.output
    tiny = run("--format", "maps", "--env-clear", fixture_path("tiny"))
    assert r.output.count("\n") == tiny.output.count("\n")


def test_the_blas_thread_setting_stays_out_of_the_programs_environment():
    """elfvm's entry point limits OpenBLAS to one thread (elfvm.startup.quiet_blas) with putenv: the
    environment execve passes is still exactly elfvm's own."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-m", "elfvm", "layout", "--format", "json",
                          fixture_path("hello_static")], env=env, capture_output=True, check=True).stdout
    envp = [e["value"] for e in json.loads(out)["stack"]["envp"]]
    assert envp == [f"{k}={v}" for k, v in env.items()]
