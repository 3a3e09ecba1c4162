"""The lecture's exercises, generated from real programs and answered by elfvm itself.

Each generator takes a seeded random.Random and returns a Question whose answer comes from the
same code the commands use (Geometry.split, the EAT formulas, the replacement engine stepped by
elfvm.sim.steps, the ELF loader's ExecResult, the MMU's fault path), never from a second
implementation. The same seed gives the same exercises, as OSTEP's homework simulators do.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

TOPICS = ("split", "eat", "refs", "symbol", "fault", "brk")
PROGRAM_TOPICS = ("symbol", "fault", "brk")


class QuizError(ValueError):
    pass


@dataclass(frozen=True)
class Question:
    topic: str
    text: str
    answer: str
    why: str            # how elfvm got the answer, a command to check it


def q_split(rng: random.Random, programs) -> Question:
    from elfvm.mmu.geometry import custom_geometry, get_geometry

    choice = rng.choice(["i386", "10,10,12", "8,8,16", "4,4,8", "2,9,9,12", "6,10"])
    geom = get_geometry("i386") if choice == "i386" else custom_geometry(choice)
    addr = rng.randrange(0, 1 << geom.va_bits)
    idx, off = geom.split(addr)
    bits = "|".join(str(b) for b in geom.level_bits + (geom.offset_bits,))
    names = ", ".join(geom.level_names)
    mmu = "--mmu i386" if choice == "i386" else f"--mmu custom --bits {choice}"
    ans = " | ".join(f"{n} {i}" for n, i in zip(geom.level_names, idx)) + f" | offset {off:#x}"
    return Question("split", f"A {geom.levels}-level MMU splits a {geom.va_bits}-bit address {bits} "
                    f"(top level first, page offset last; {geom.page_size}-byte pages). Split "
                    f"{addr:#x}: the indices ({names}) and the page offset.", ans,
                    f"elfvm translate {mmu} {addr:#x}")


def q_eat(rng: random.Random, programs) -> Question:
    from elfvm.mmu.eat import eat_lines

    t, m = rng.choice([10, 20, 30]), rng.choice([60, 80, 100, 120])
    h, levels = rng.choice([0.8, 0.9, 0.95, 0.98, 0.99]), rng.choice([1, 2, 4])
    line = eat_lines(t, m, h, levels)[0]
    return Question("eat", f"TLB look-up {t} ns, memory access {m} ns, TLB hit ratio {h:g}, a "
                    f"{levels}-level page walk, the walk overlapped with the TLB look-up. "
                    f"Effective access time?", f"{line.ns:g} ns = {line.numbers}",
                    f"elfvm eat --hit-ratio {h:g} --tlb-ns {t} --mem-ns {m} --walk-levels {levels}")


def q_refs(rng: random.Random, programs) -> Question:
    from elfvm.sim.steps import step_refs

    pages = [rng.randrange(0, rng.choice([5, 6, 7])) for _ in range(rng.choice([10, 12, 14]))]
    policy, frames = rng.choice(["fifo", "lru", "opt"]), rng.choice([3, 4])
    run = step_refs(pages, policy, frames)
    refs = " ".join(map(str, pages))
    return Question("refs", f"Reference string {refs}, {frames} frames, initially empty, "
                    f"{policy.upper()} replacement. How many page faults, and which pages are in "
                    f"memory at the end?", f"{run.faults} faults; at the end "
                    f"{sorted(p for p in run.steps[-1].frames if p is not None)}",
                    f"elfvm simulate-run --refs \"{refs}\" --frames {frames} --policy {policy} "
                    f"--show steps")


def _exec(program: str):
    from elfvm.kernel.binfmt_elf import ExecRequest, execve
    from elfvm.kernel.profile import make_profile

    r = execve(ExecRequest(program, [program], [], make_profile()))
    if r.verdict.result != "ok":
        raise QuizError(f"{program}: execve would fail ({r.verdict.reason})")
    return r


def _symbols(result) -> list:
    img = result.images["main"]
    return sorted((s for s in img.file.symbols if s.kind in ("STT_OBJECT", "STT_FUNC") and s.value
                   and s.size and not s.name.startswith("_")), key=lambda s: s.name)


def q_symbol(rng: random.Random, programs) -> Question:
    prog = rng.choice(programs)
    r = _exec(prog)
    syms = _symbols(r)
    if not syms:
        raise QuizError(f"{prog}: no sized symbols to ask about")
    s = rng.choice(syms)
    bias = r.images["main"].load_bias
    addr = (s.value + bias) & 0xFFFFFFFF
    v = next(x for x in r.mm.vmas if x.start <= addr < x.end)
    sec = next((x.name for x in r.images["main"].file.sections
                if x.alloc and x.addr <= s.value < x.addr + x.size), "?")
    return Question("symbol", f"{prog}: at its first instruction, which mapping (start-end, "
                    f"permissions) holds `{s.name}`, and in which section is it?",
                    f"{v.start:#010x}-{v.end:#010x} {v.perms}, {sec} (address {addr:#x})",
                    f"elfvm layout --explain {s.name} {prog}")


def q_fault(rng: random.Random, programs) -> Question:
    from elfvm.kernel.profile import make_profile
    from elfvm.mmu import open_address_space, translate_one

    prog = rng.choice(programs)
    r = _exec(prog)
    syms = _symbols(r)
    s = rng.choice(syms)
    access = rng.choice(["r", "w", "x"])
    space = open_address_space(profile=make_profile(), elf=prog, argv=[prog], envp=[])
    t = translate_one(space, s.name, access, 3)
    verb = {"r": "reads", "w": "writes", "x": "jumps to"}[access]
    ans = (f"no fault: physical {t.physical:#x}" if t.fault is None else
           f"{t.fault.kind}: {t.fault.reason}")
    return Question("fault", f"{prog} {verb} `{s.name}` right after execve (nothing touched yet but "
                    f"what the kernel wrote). Which fault, if any, does the MMU raise and how does "
                    f"Linux handle it?", ans,
                    f"elfvm translate --elf {prog} --access {access} {s.name}")


def q_brk(rng: random.Random, programs) -> Question:
    prog = rng.choice(programs)
    r = _exec(prog)
    return Question("brk", f"{prog}: where does the heap start (start_brk) at the first "
                    f"instruction, and why there?", f"{r.mm.start_brk:#x}: the page after the end "
                    f"of the bss (the last PT_LOAD's p_vaddr + p_memsz, rounded up to a page); "
                    f"ASLR would add a random offset (arch_randomize_brk)",
                    f"elfvm layout --explain {r.mm.start_brk:#x} {prog}")


GENERATORS = {"split": q_split, "eat": q_eat, "refs": q_refs, "symbol": q_symbol, "fault": q_fault,
              "brk": q_brk}


def default_programs(root: str | None = None) -> list[str]:
    """The fixtures next to the source tree (fixtures/bin), if built."""
    base = root or os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "fixtures", "bin")
    names = ("vars", "hello_pie", "bigbss", "hello_static", "vars_pie", "mallocs")
    found = [os.path.join(base, n) for n in names if os.path.isfile(os.path.join(base, n))]
    rel = [os.path.relpath(p) for p in found]           # short names when run from the tree
    return [r if not r.startswith("..") else p for r, p in zip(rel, found)]


def make_quiz(seed: int, topics, count: int, programs) -> list[Question]:
    rng = random.Random(seed)
    if any(t in PROGRAM_TOPICS for t in topics) and not programs:
        raise QuizError("these topics need i386 programs: give --program PATH (or build the "
                        "fixtures: make fixtures)")
    out = []
    for i in range(count):
        topic = topics[i % len(topics)]
        out.append(GENERATORS[topic](rng, programs))
    return out
