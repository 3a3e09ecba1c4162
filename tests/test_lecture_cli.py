"""The lecture's questions as one-liners (issue 13): split, EAT, reference strings, where/why,
quiz; each answer checked against the textbook value or elfvm's own model."""

from __future__ import annotations

import json

from click.testing import CliRunner

from elfvm.cli import cli
from elfvm.sim.steps import parse_refs, step_refs
from tests.conftest import fixture_path


def run(*args):
    r = CliRunner().invoke(cli, list(args))
    return r.exit_code, r.output


def test_split_one_line_any_geometry():
    rc, out = run("translate", "--mmu", "i386", "0x0804a123")
    assert "0x0804a123 = PDE 32 | PTE 74 | offset 0x123  (10|10|12 bits)" in out
    rc, out = run("translate", "--mmu", "custom", "--bits", "4,4,8", "0x1234")
    assert "= PDE 1 | PTE 2 | offset 0x34  (4|4|8 bits)" in out


def test_default_mmu_says_why_and_how_to_get_two_levels():
    rc, out = run("translate", "--elf", fixture_path("vars"), "counter")
    assert "--mmu i386" in out and "4-level" in out


def test_small_page_size_label():
    from elfvm.mmu.render import translation_text
    from elfvm.units import human_size

    assert human_size(256) == "256 B" and human_size(4096) == "4 KiB"
    assert "KiB" not in translation_text.__doc__ if translation_text.__doc__ else True


def test_eat_lecture_value_and_both_models():
    rc, out = run("eat", "--hit-ratio", "0.95")
    assert rc == 0
    assert "overlapped" in out and "= 124 ns" in out          # the lecture: 120*.95 + 200*.05
    assert "sequential" in out and "= 125 ns" in out          # .95*120 + .05*220
    rc, out = run("eat", "--hit-ratio", "0.9", "--fault-rate", "0.5")
    assert rc == 2


def test_refs_textbook_belady():
    pages = parse_refs("1,2,3,4,1,2,5,1,2,3,4,5")
    assert step_refs(pages, "fifo", 3).faults == 9 and step_refs(pages, "fifo", 4).faults == 10
    rc, out = run("simulate-run", "--refs", "1 2 3 4 1 2 5 1 2 3 4 5", "--compare", "fifo",
                  "--frames", "3,4")
    assert rc == 0 and "Belady's anomaly: fifo takes 10 faults with 4 frames but only 9 with 3" in out


def test_refs_steps_view():
    rc, out = run("simulate-run", "--refs", "7 0 1 2 0 3 0 4 2 3 0 3 2", "--frames", "3",
                  "--compare", "fifo,lru,opt", "--show", "steps")
    assert rc == 0
    for pol, faults in (("fifo", 10), ("lru", 9), ("opt", 7)):      # Silberschatz's figures
        assert f"{pol}, 3 frames" in out and f"{faults} faults" in out
    rc, out = run("simulate-run", "--refs", "7 0 1 2", "--show", "steps", "--format", "json")
    steps = json.loads(out)["runs"][0]["steps"]
    assert steps[3] == {"page": 2, "hit": False, "frames": [2, 0, 1], "victim": 7}


def test_refs_errors():
    assert run("simulate-run", "--refs", "1 x 2")[0] == 2
    assert run("simulate-run", "--refs", "")[0] == 2
    assert run("simulate-run", "--refs", "1 2", "--show", "pages")[0] == 2


def test_layout_fits_80_columns_and_places_sections():
    rc, out = run("layout", fixture_path("hello_pie"))
    assert rc == 0
    assert max(len(x) for x in out.splitlines()) <= 80
    assert ".bss 0x" in out and "envp[0]" not in out
    rc, out = run("layout", "--wide", fixture_path("hello_pie"))
    assert "dev inode" in out


def test_stack_word_by_word_covers_the_strings():
    rc, out = run("layout", "--stack", "--env-clear", fixture_path("tiny"), "one")
    assert rc == 0
    words = [x for x in out.splitlines() if x.startswith("0xffff") and "argv[1]" in x]
    assert words and "AT_RANDOM bytes" in out and "end marker" in out


def test_explain_says_why():
    rc, out = run("layout", "--explain", "0xf7fc8000", fixture_path("hello_pie"))
    assert "mmap_base" in out and "RLIMIT_STACK" in out
    rc, out = run("layout", "--explain", "main", fixture_path("hello_pie"))
    assert ".text" in out and "ELF_ET_DYN_BASE" in out
    rc, out = run("layout", "--explain", "nosuchsym", fixture_path("hello_pie"))
    assert rc == 2


def test_aslr_without_seed_prints_one():
    r = CliRunner().invoke(cli, ["layout", "--aslr", "--format", "maps",
                                                 fixture_path("hello_pie")])
    assert r.exit_code == 0 and "--seed" in r.stderr
    seed = r.stderr.split("--seed ")[1].split()[0]
    again = CliRunner().invoke(cli, ["layout", "--aslr", "--seed", seed, "--format",
                                                     "maps", fixture_path("hello_pie")])
    assert again.stdout == r.stdout


def test_quiz_reproducible_and_answers_checked():
    a = run("quiz", "--seed", "5", "-c")[1]
    b = run("quiz", "--seed", "5", "-c")[1]
    assert a == b and "answer:" in a and a.count("check: elfvm") == 6
    q = run("quiz", "--seed", "5")[1]
    assert "answer:" not in q


def test_quiz_answers_agree_with_the_commands():
    from elfvm.quiz import default_programs, make_quiz

    for q in make_quiz(11, ["refs", "eat", "split"], 6, default_programs()):
        args = [a.strip('"') for a in q.why.split()][1:]
        if q.topic == "refs":
            args = args[:2] + [" ".join(args[2:args.index("--frames")])] + args[args.index("--frames"):]
        rc, out = run(*args)
        assert rc == 0
        key = q.answer.split(";")[0].split(" = ")[0]
        assert key.replace(" ns", "") in out.replace(" ns", ""), (q, out)


def test_user_descriptors_limit_check_and_gp():
    d = "ldt:1:base=0x10000,limit=0xfff,type=data-rw,dpl=3"
    rc, out = run("translate", "--mmu", "i386", "--descriptor", d, "--access", "w", "0x0f:0x800",
                  "0x0f:0x1800")
    assert "linear = base 0x10000 + offset 0x800 = 0x10800" in out
    assert "#GP(0x0): offset 0x1800 is outside the segment" in out.replace("\n       ", " ")
    rc, out = run("translate", "--mmu", "i386", "--descriptor",
                  "gdt:20:base=0,limit=0xfffff,type=data-rw,dpl=0,g=1", "0xa3:0x10")
    assert "privilege: max(CPL 3, RPL 3) > DPL 0" in out
    rc, out = run("translate", "--descriptor", "gdt:0:base=0,limit=1,type=data-r", "0x8:0")
    assert rc == 2
