"""Deterministic fuzzing of the ELF header and program headers against the live kernel.

Real gcc -m32 programs (fixtures/bin, or the same sources built with gcc -m32 into a session tmp
dir when a fixture is missing) are mutated: e_type, e_machine, e_phentsize, e_phnum, e_phoff,
e_entry and e_ident at extremes, truncation, every Elf32_Phdr field (absurd values included),
segment shifts and duplicates, PT_INTERP path corruption and PT_GNU_STACK games.  For every
case:

* elfvm must give one of its documented outcomes: an ExecResult with a verdict, or
  UnsupportedProgram; any other exception is a failure;
* its verdict (result, and errno for "errno") must equal the live kernel's, and for "ok" the
  whole /proc/PID/maps, the auxv, esp, eip and the /proc/PID/stat mm fields must be equal
  (tests/livecmp.py).  ASLR is off on both sides, so every case is deterministic.

A second family, test_fuzz_crafted_case, builds random programs from scratch (tests/elfcraft.py)
with random argv/env, RLIMIT_STACK, ADDR_LIMIT_3GB and the legacy layout, compared the same way.

Each case is its own test (`-k "fuzz_case and 123"` replays one); everything is derived from
FUZZ_SEED and the case number only.  The 400 mutated + 200 crafted cases take ~20 s here;
ELFVM_FUZZ_SEED / ELFVM_FUZZ_CASES / ELFVM_FUZZ_CRAFTED explore further.
"""

from __future__ import annotations

import os
import random
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from livecmp import LIVE_OK, LIVE_REASON, live_differences
from elfvm.kernel.binfmt_elf import ExecRequest, UnsupportedProgram, execve
from elfvm.kernel.profile import make_profile
from elfvm.kernel.process import ExecResult

pytestmark = pytest.mark.oracle

FUZZ_SEED = int(os.environ.get("ELFVM_FUZZ_SEED", "20261126"))
N_CASES = int(os.environ.get("ELFVM_FUZZ_CASES", "400"))
ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
# name -> (source, gcc flags) for the fallback build (the same flags as fixtures/Makefile).
BASES = {
    "hello_pie": ("hello.c", ["-fPIE", "-pie"]),
    "hello_nopie": ("hello.c", ["-fno-pie", "-no-pie"]),
    "hello_static": ("hello.c", ["-fno-pie", "-no-pie", "-static"]),
    "hello_staticpie": ("hello.c", ["-fPIE", "-static-pie"]),
    "bigbss": ("bigbss.c", ["-fno-pie", "-no-pie"]),
    "tiny": ("tiny.S", ["-nostdlib", "-static", "-Wl,--build-id=none"]),
    "hello_execstack": ("hello.c", ["-fPIE", "-pie", "-Wl,-z,execstack"]),
}

LD_SO = "/lib/ld-linux.so.2"
KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
RLIM_INFINITY = (1 << 64) - 1
PT_LOAD, PT_INTERP, PT_NOTE, PT_GNU_STACK = 1, 3, 4, 0x6474E551
PHDR_FIELDS = ("p_type", "p_offset", "p_vaddr", "p_paddr", "p_filesz", "p_memsz", "p_flags", "p_align")
E_TYPE, E_MACHINE, E_ENTRY, E_PHOFF, E_PHENTSIZE, E_PHNUM = 16, 18, 24, 28, 42, 44
U32 = 0xFFFFFFFF


# --- the base programs ---------------------------------------------------------------------

@pytest.fixture(scope="session")
def bases(tmp_path_factory) -> dict[str, dict]:
    out = load_bases(tmp_path_factory.mktemp("fuzz-bases"))
    if not out:
        pytest.skip("no fuzz bases: fixtures/bin is empty and gcc -m32 is unavailable")
    return out


def load_bases(built: Path) -> dict[str, dict]:
    """name -> {"path", "data", "phoff", "phnum", "phdrs": [header dicts]} (read with pyelftools);
    a missing fixture is built into `built` with gcc -m32.  The i386 ld.so, when installed, is a
    base too (an ET_DYN without PT_INTERP, and the interpreter that mutated interpreters start
    from)."""
    out = {}
    paths = {}
    for name, (src, flags) in BASES.items():
        path = FIXTURES / "bin" / name
        if not path.exists():
            if shutil.which("gcc") is None:
                continue
            path = built / name
            r = subprocess.run(["gcc", "-m32", "-O1", *flags, str(FIXTURES / "src" / src), "-o", str(path)],
                               capture_output=True, text=True)
            if r.returncode != 0:
                continue
        paths[name] = path
    if os.path.exists(LD_SO):
        paths["ld.so"] = Path(os.path.realpath(LD_SO))
    for name, path in paths.items():
        data = path.read_bytes()
        with open(path, "rb") as f:
            elf = ELFFile(f)
            phdrs = [dict(seg.header) for seg in elf.iter_segments()]
            phoff, phnum = elf["e_phoff"], elf["e_phnum"]
        for ph in phdrs:                 # numeric p_type (pyelftools names the known ones)
            ph["p_type"] = _ptype(ph["p_type"])
        out[name] = {"path": str(path), "data": data, "phoff": phoff, "phnum": phnum, "phdrs": phdrs}
    return out


def _ptype(v) -> int:
    from elftools.elf.enums import ENUM_P_TYPE_BASE
    return v if isinstance(v, int) else ENUM_P_TYPE_BASE[v]


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


# --- mutations -----------------------------------------------------------------------------
# Each takes (rng, buf: bytearray, base info) and returns a short description.

def _u16(buf, off, v):
    if off + 2 <= len(buf):
        struct.pack_into("<H", buf, off, v & 0xFFFF)


def _u32(buf, off, v):
    if off + 4 <= len(buf):
        struct.pack_into("<I", buf, off, v & U32)


def _rd32(buf, off) -> int:
    return struct.unpack_from("<I", buf, off)[0] if off + 4 <= len(buf) else 0


def _ph_off(b, i) -> int:
    return b["phoff"] + 32 * i


def m_e_type(rng, buf, b):
    v = rng.choice([0, 1, 2, 3, 4, 0xFE00, 0xFF00, 0xFFFF, rng.getrandbits(16)])
    _u16(buf, E_TYPE, v)
    return f"e_type={v:#x}"


def m_e_machine(rng, buf, b):
    v = rng.choice([0, 3, 6, 62, 40, 0xFFFF, rng.getrandbits(16)])
    _u16(buf, E_MACHINE, v)
    return f"e_machine={v:#x}"


def m_e_phentsize(rng, buf, b):
    v = rng.choice([0, 1, 31, 33, 56, 64, 0xFFFF])
    _u16(buf, E_PHENTSIZE, v)
    return f"e_phentsize={v}"


def m_e_phnum(rng, buf, b):
    n = b["phnum"]
    v = rng.choice([0, 1, n - 1, n + 1, n + 7, 128, 129, 2048, 2049, 0xFFFF, rng.randrange(1, 3000)])
    _u16(buf, E_PHNUM, v)
    return f"e_phnum={v}"


def m_e_phoff(rng, buf, b):
    size = max(len(buf), 1)
    v = rng.choice([0, 1, 4, 53, 64, size - 32, size - 16, size, size + 1, 0x7FFFFFFF, U32,
                    b["phoff"] + 32, b["phoff"] - 4, rng.getrandbits(32), rng.randrange(size)])
    _u32(buf, E_PHOFF, v)
    return f"e_phoff={v & U32:#x}"


def m_e_entry(rng, buf, b):
    v = rng.choice([0, 1, 0xFFFFE000, 0xFFFFDFFF, 0xFFFFFFFF, 0xC0000000, 0x56555000, rng.getrandbits(32)])
    _u32(buf, E_ENTRY, v)
    return f"e_entry={v:#x}"


def m_ident(rng, buf, b):
    i = rng.randrange(4, 16)
    v = rng.getrandbits(8)
    buf[i] = v
    return f"e_ident[{i}]={v}"


def m_magic(rng, buf, b):
    i = rng.randrange(4)
    buf[i] ^= 1 << rng.randrange(8)
    return f"magic byte {i} flipped"


def m_truncate(rng, buf, b):
    end = b["phoff"] + 32 * b["phnum"]
    size = max(len(buf), 1)
    n = rng.choice([0, 1, 4, 16, 51, 52, 53, end - 1, end, end + 1, rng.randrange(size),
                    rng.randrange(size), size - rng.randrange(1, 0x3000)])
    n = max(0, min(n, len(buf)))
    del buf[n:]
    return f"truncated to {n:#x}"


def _field_value(rng, field, orig):
    if field == "p_type":
        return rng.choice([0, 1, 2, 3, 4, 6, 7, PT_GNU_STACK, 0x6474E550, 0x6474E552, 0x70000000,
                           rng.getrandbits(32)])
    if field == "p_flags":
        return rng.choice([rng.randrange(8), rng.randrange(8), rng.getrandbits(32), 0xF0000004])
    if field == "p_align":
        return rng.choice([0, 1, 3, 0x1000, 0x10000, 0x200000, 0x30000, 0x80000000, U32, rng.getrandbits(32)])
    return rng.choice([0, 1, 0xFFF, 0x1000, 0x1001, 0x7FFFFFFF, 0x80000000, U32, 0xFFFFF000, 0xFFFFE000,
                       0xFFFDD000, 0xC0000000, 0x56555000, orig + 0x1000, orig - 0x1000, orig + 1, orig - 1,
                       orig ^ (1 << rng.randrange(32)), orig * 2, orig + rng.randrange(1 << 26),
                       rng.getrandbits(32)]) & U32


def m_phdr_field(rng, buf, b):
    i = rng.randrange(b["phnum"])
    # Mostly PT_LOADs: they decide the map.
    loads = [k for k, ph in enumerate(b["phdrs"]) if ph["p_type"] == PT_LOAD]
    if loads and rng.random() < 0.7:
        i = rng.choice(loads)
    field = rng.choice(PHDR_FIELDS + ("p_vaddr", "p_filesz", "p_memsz", "p_offset"))
    off = _ph_off(b, i) + 4 * PHDR_FIELDS.index(field)
    v = _field_value(rng, field, _rd32(buf, off))
    _u32(buf, off, v)
    return f"phdr[{i}].{field}={v:#x}"


def m_load_shift(rng, buf, b):
    """Move a PT_LOAD by whole pages (vaddr and offset together, or vaddr only)."""
    loads = [k for k, ph in enumerate(b["phdrs"]) if ph["p_type"] == PT_LOAD]
    i = rng.choice(loads)
    o = _ph_off(b, i)
    delta = rng.choice([-1, 1, -3, 5, -0x48, 0x100, 0x8000, -0x8048, 0xF7FB0]) * 0x1000
    _u32(buf, o + 8, _rd32(buf, o + 8) + delta)
    if rng.random() < 0.5:
        _u32(buf, o + 4, _rd32(buf, o + 4) + delta)
    return f"phdr[{i}] shifted by {delta:#x}"


def m_bss(rng, buf, b):
    loads = [k for k, ph in enumerate(b["phdrs"]) if ph["p_type"] == PT_LOAD]
    i = rng.choice(loads)
    o = _ph_off(b, i)
    filesz = _rd32(buf, o + 16)
    kind = rng.randrange(4)
    if kind == 0:
        _u32(buf, o + 20, filesz + rng.choice([1, 0x800, 0x1000, 0x12345, 64 << 20, 0x80000000]))
    elif kind == 1:
        _u32(buf, o + 16, 0)
    elif kind == 2:
        _u32(buf, o + 20, filesz)
    else:
        _u32(buf, o + 20, max(filesz - 1, 0))
    return f"phdr[{i}] bss kind {kind}"


def m_dup_load(rng, buf, b):
    loads = [k for k, ph in enumerate(b["phdrs"]) if ph["p_type"] == PT_LOAD]
    src = rng.choice(loads)
    dst = rng.randrange(b["phnum"])
    so, do = _ph_off(b, src), _ph_off(b, dst)
    buf[do:do + 32] = buf[so:so + 32]
    return f"phdr[{dst}] = copy of phdr[{src}]"


def m_swap(rng, buf, b):
    i, j = rng.randrange(b["phnum"]), rng.randrange(b["phnum"])
    oi, oj = _ph_off(b, i), _ph_off(b, j)
    a, c = bytes(buf[oi:oi + 32]), bytes(buf[oj:oj + 32])
    buf[oi:oi + 32], buf[oj:oj + 32] = c, a
    return f"swapped phdr[{i}] and phdr[{j}]"


def m_gnu_stack(rng, buf, b):
    i = rng.randrange(b["phnum"])
    non_load = [k for k, ph in enumerate(b["phdrs"]) if ph["p_type"] not in (PT_LOAD, PT_INTERP)]
    if non_load:
        i = rng.choice(non_load)
    o = _ph_off(b, i)
    kind = rng.randrange(3)
    if kind == 0:              # one more (or a moved) PT_GNU_STACK, random flags
        _u32(buf, o, PT_GNU_STACK)
        _u32(buf, o + 24, rng.choice([0, 1, 6, 7, rng.getrandbits(32)]))
        return f"phdr[{i}] = PT_GNU_STACK"
    gs = [k for k, ph in enumerate(b["phdrs"]) if ph["p_type"] == PT_GNU_STACK]
    if not gs:
        _u32(buf, o, PT_GNU_STACK)
        return f"phdr[{i}] = PT_GNU_STACK (added)"
    g = _ph_off(b, gs[0])
    if kind == 1:
        _u32(buf, g, 0)        # PT_NULL: no PT_GNU_STACK -> READ_IMPLIES_EXEC
        return "PT_GNU_STACK removed"
    _u32(buf, g + 24, _rd32(buf, g + 24) ^ 1)
    return "PT_GNU_STACK PF_X flipped"


def _interp_candidates(bases) -> list[bytes]:
    return [b"/lib/ld-linux.so.2", b"/lib32/ld-linux.so.2", b"/bin/sh", b"/", b"/etc/passwd",
            b"/dev/null", b"/nonexistent/ld.so", b"", b"lib/ld-linux.so.2", b"/lib/ld-linux.so.2/"] + \
        [os.fsencode(v["path"]) for v in bases.values()]


def m_interp(rng, buf, b, bases):
    ints = [k for k, ph in enumerate(b["phdrs"]) if ph["p_type"] == PT_INTERP]
    if ints:
        i = ints[0]
    else:                      # make one out of another header
        i = rng.randrange(b["phnum"])
        _u32(buf, _ph_off(b, i), PT_INTERP)
    o = _ph_off(b, i)
    p_off, p_filesz = _rd32(buf, o + 4), _rd32(buf, o + 16)
    kind = rng.randrange(6) if ints else 5
    if kind == 0 and p_filesz and p_off + p_filesz <= len(buf):
        k = p_off + rng.randrange(p_filesz)
        buf[k] = rng.choice([0, ord("/"), ord("x"), rng.getrandbits(8)])
        return f"interp byte {k - p_off} corrupted"
    if kind == 1 and p_filesz and p_off + p_filesz <= len(buf):
        buf[p_off + p_filesz - 1] = ord("x")
        return "interp NUL removed"
    if kind == 2:
        v = rng.choice([0, 1, 2, p_filesz - 1, p_filesz + 1, 4096, 4097, U32])
        _u32(buf, o + 16, v)
        return f"interp p_filesz={v & U32:#x}"
    if kind == 3:
        v = rng.choice([len(buf), len(buf) + 100, U32, 0, p_off + 1])
        _u32(buf, o + 4, v)
        return f"interp p_offset={v & U32:#x}"
    path = rng.choice(_interp_candidates(bases)) + b"\0"
    off = len(buf)
    buf += path
    _u32(buf, o + 4, off)
    _u32(buf, o + 16, len(path))
    return f"interp -> {path[:-1].decode(errors='replace')}"


MUTATIONS = [
    (m_e_type, 3), (m_e_machine, 3), (m_e_phentsize, 2), (m_e_phnum, 4), (m_e_phoff, 4),
    (m_e_entry, 3), (m_ident, 2), (m_magic, 1), (m_truncate, 5), (m_phdr_field, 30),
    (m_load_shift, 8), (m_bss, 8), (m_dup_load, 4), (m_swap, 4), (m_gnu_stack, 5), ("interp", 8),
]


@dataclass
class FuzzCase:
    base: str
    data: bytes
    what: list[str]
    interp: bytes | None = None       # a mutated interpreter, written next to the program
    three_gb: bool = False            # personality ADDR_LIMIT_3GB
    legacy: bool = False              # personality ADDR_COMPAT_LAYOUT
    rlimit_stack: int | None = None   # None: the default 8 MiB

    def describe(self) -> str:
        extra = [k for k in ("three_gb", "legacy") if getattr(self, k)]
        if self.rlimit_stack is not None:
            extra.append(f"rlimit_stack={self.rlimit_stack:#x}")
        return f"{self.base}: {'; '.join(self.what)}" + (f" [{', '.join(extra)}]" if extra else "")


def mutate(rng, b: dict, bases: dict, n: int, interp_path: str | None) -> tuple[bytes, list[str]]:
    buf = bytearray(b["data"])
    funcs, weights = zip(*MUTATIONS)
    chosen = rng.choices(funcs, weights, k=n)
    # Truncation last, so that the other mutations see the whole file.
    chosen.sort(key=lambda m: m is m_truncate)
    done = []
    for m in chosen:
        if m == "interp":
            done.append(m_interp(rng, buf, b, bases))
        else:
            done.append(m(rng, buf, b))
    if interp_path is not None:
        done.append(set_interp(buf, b, os.fsencode(interp_path)))
    return bytes(buf), done


def set_interp(buf: bytearray, b: dict, path: bytes) -> str:
    """Point the (first) PT_INTERP at `path`: the string is appended to the file."""
    ints = [k for k, ph in enumerate(b["phdrs"]) if ph["p_type"] == PT_INTERP]
    if not ints:
        return "no PT_INTERP to redirect"
    o = _ph_off(b, ints[0])
    _u32(buf, o + 4, len(buf))
    _u32(buf, o + 16, len(path) + 1)
    buf += path + b"\0"
    return "interp -> mutated ld.so"


def make_case(i: int, bases: dict, interp_path: str | None = None) -> FuzzCase:
    """Case i; it depends on FUZZ_SEED and i only (`interp_path` is where a mutated
    interpreter, if the case has one, will be written)."""
    rng = random.Random(f"{FUZZ_SEED}:{i}")
    name = rng.choice(sorted(bases))
    b = bases[name]
    has_interp = any(ph["p_type"] == PT_INTERP for ph in b["phdrs"])
    mutated_interp = has_interp and "ld.so" in bases and interp_path is not None and rng.random() < 0.15
    n = rng.choice([0, 1, 1, 1, 2, 2, 3, 5]) if mutated_interp else rng.choice([1, 1, 1, 2, 2, 3, 5])
    data, what = mutate(rng, b, bases, n, interp_path if mutated_interp else None)
    case = FuzzCase(name, data, what)
    if mutated_interp:
        case.interp, iwhat = mutate(rng, bases["ld.so"], bases, rng.choice([1, 1, 2, 3]), None)
        case.what.append("ld.so: " + "; ".join(iwhat))
    r = rng.random()
    case.three_gb, case.legacy = r < 0.06 or 0.10 <= r < 0.12, 0.06 <= r < 0.12
    if rng.random() < 0.12:
        case.rlimit_stack = rng.choice([100 * KiB, 64 * MiB, 200 * MiB, 3 * GiB, RLIM_INFINITY])
    return case


# --- the test ------------------------------------------------------------------------------

def predict_any(path: str, case: FuzzCase | None = None) -> ExecResult | UnsupportedProgram:
    """elfvm's execve; only its documented outcomes may come out."""
    profile = None
    kw = {}
    if case is not None:
        if case.three_gb or case.legacy:
            profile = make_profile(addr_limit_3gb=case.three_gb, legacy=case.legacy)
        if case.rlimit_stack is not None:
            kw["rlimit_stack"] = case.rlimit_stack
    try:
        return execve(ExecRequest(path, [path], [], profile=profile, **kw))
    except UnsupportedProgram as e:
        return e


def run_case(i: int, bases: dict, workdir: Path) -> tuple[FuzzCase, ExecResult | UnsupportedProgram, list[str]]:
    """Write case i, predict it and compare with the live kernel: (case, prediction, diffs)."""
    path = str(workdir / f"case{i:04d}")
    case = make_case(i, bases, path + ".interp")
    if case.interp is not None:
        with open(path + ".interp", "wb") as f:
            f.write(case.interp)
        os.chmod(path + ".interp", 0o755)
    with open(path, "wb") as f:
        f.write(case.data)
    os.chmod(path, 0o755)
    res = predict_any(path, case)     # any exception but UnsupportedProgram fails the test here
    if isinstance(res, UnsupportedProgram) or not LIVE_OK:
        return case, res, []
    profile = res.profile if (case.three_gb or case.legacy) else None
    return case, res, live_differences(res, path, [path], [], profile=profile,
                                       rlimit_stack=case.rlimit_stack)


@pytest.mark.parametrize("i", range(N_CASES))
def test_fuzz_case(i, bases, workdir):
    case, res, diffs = run_case(i, bases, workdir)
    if isinstance(res, UnsupportedProgram):
        return
    assert res.verdict.result in ("ok", "errno", "killed")
    if not LIVE_OK:
        pytest.skip(f"live comparison: {LIVE_REASON}")
    assert not diffs, f"case {i} ({case.describe()}):\n" + "\n".join(diffs)


# --- crafted programs ----------------------------------------------------------------------
# Random programs built from scratch (tests/elfcraft.py) reach what mutating gcc output rarely
# does: segments near the stack, the mmap base and page 0, bss over the argument strings, big
# argv/env, small or huge RLIMIT_STACK, ADDR_LIMIT_3GB and the legacy layout.

N_CRAFTED = int(os.environ.get("ELFVM_FUZZ_CRAFTED", "200"))


def _crafted_vaddr(rng) -> int:
    k = rng.random()
    off = rng.randrange(0x1000) if rng.random() < 0.3 else 0
    if k < 0.4:
        return 0x08048000 + rng.randrange(-8, 40) * 0x1000 + off
    if k < 0.5:
        return rng.randrange(0, 0x30) * 0x1000
    if k < 0.6:
        return 0xFFF00000 + rng.randrange(0, 0xFE) * 0x1000      # the stack and its guard gap
    if k < 0.7:
        return 0xF7F00000 + rng.randrange(0, 0x100) * 0x1000     # just below mmap_base
    if k < 0.8:
        return rng.randrange(0, 1 << 20) * 0x1000
    return rng.randrange(0, 0x40) * 0x1000 + off


def make_crafted_case(i: int, crafted_ld: str) -> tuple[bytes, list[str], list[str], object, int, str]:
    """Crafted case i: (file bytes, argv tail, env, profile or None, rlimit_stack, description)."""
    from elfcraft import ET_DYN as DYN, ET_EXEC as EXEC, build_elf, gnu_stack, interp, load
    rng = random.Random(f"{FUZZ_SEED}:crafted:{i}")
    e_type = rng.choice([EXEC, DYN])
    r = rng.random()
    interp_path = crafted_ld if r < 0.25 else LD_SO if r < 0.4 and os.path.exists(LD_SO) else None
    phs = [interp()] if interp_path else []
    for _ in range(rng.choice([1, 1, 2, 2, 3, 4, 5])):
        v = _crafted_vaddr(rng)
        fs = rng.choice([0, 0x10, 0x200, 0x1000, 0x1800, 0x3000, rng.randrange(0x5000)])
        ms = fs + rng.choice([0, 0, 0x10, 0x1000, 0x5000, rng.randrange(0x100000), 0x10000000])
        off = rng.randrange(0, 8) * 0x1000 + (v & 0xFFF)
        if rng.random() < 0.03:
            off += rng.randrange(1, 0x1000)
        phs.append(load(v, fs, ms, rng.randrange(8), offset=off,
                        align=rng.choice([0x1000, 0x1000, 0x10000, 0x200000, 0, 3])))
    for _ in range(rng.choice([0, 1, 1, 1, 2])):
        phs.append(gnu_stack(rng.choice([6, 7, 0, 1])))
    size = rng.randrange(0x100, 0x9000) if rng.random() < 0.1 else None
    data = build_elf(phs, e_type=e_type, interp_path=interp_path, size=size,
                     entry=rng.choice([None, None, 0x08048000, rng.getrandbits(32)]))
    argv = ["a" * rng.randrange(0, 3000) for _ in range(rng.choice([0, 0, 1, 5, 50]))]
    env = [f"E{j}=" + "x" * rng.randrange(0, 20000) for j in range(rng.choice([0, 0, 1, 3, 10]))]
    r = rng.random()
    profile = make_profile(addr_limit_3gb=True) if r < 0.1 else make_profile(legacy=True) if r < 0.17 else None
    rlimit = rng.choice([8 * MiB] * 8 + [100 * KiB, 200 * MiB, 3 * GiB, RLIM_INFINITY])
    what = (f"{'ET_DYN' if e_type == DYN else 'ET_EXEC'} interp={interp_path} "
            f"{[(hex(p.vaddr), hex(p.offset or 0), hex(p.filesz), hex(p.memsz or 0), p.flags) for p in phs if p.type == 1]} "
            f"argv+{len(argv)} env {len(env)} rlimit={rlimit:#x} profile={profile and profile.name}"
            f"{' 3gb' if profile and profile.addr_limit_3gb else ''}{' legacy' if profile and profile.legacy else ''}")
    return data, argv, env, profile, rlimit, what


@pytest.fixture(scope="session")
def crafted_ld(workdir) -> str:
    from elfcraft import simple_interp, write_exe
    return write_exe(workdir / "crafted-ld.so", simple_interp(bss=0x1000))


@pytest.mark.parametrize("i", range(N_CRAFTED))
def test_fuzz_crafted_case(i, workdir, crafted_ld):
    data, argv_tail, env, profile, rlimit, what = make_crafted_case(i, crafted_ld)
    path = str(workdir / f"crafted{i:04d}")
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o755)
    argv = [path] + argv_tail
    try:
        res = execve(ExecRequest(path, argv, env, profile=profile, rlimit_stack=rlimit))
    except UnsupportedProgram:
        return
    assert res.verdict.result in ("ok", "errno", "killed")
    if not LIVE_OK:
        pytest.skip(f"live comparison: {LIVE_REASON}")
    diffs = live_differences(res, path, argv, env, profile=profile,
                             rlimit_stack=None if rlimit == 8 * MiB else rlimit)
    assert not diffs, f"crafted case {i} ({what}):\n" + "\n".join(diffs)


def test_fuzz_pathological_inputs(workdir, bases):
    """Inputs no mutation is likely to hit exactly: each gives a verdict, never an exception."""
    base = bases.get("hello_pie") or next(iter(bases.values()))
    data = base["data"]
    hdr = bytearray(data[:52])
    cases = {
        "empty": b"",
        "one_byte": b"\x7f",
        "magic_only": b"\x7fELF",
        "header_only": bytes(hdr),
        "phnum_ffff": bytes(hdr[:44]) + struct.pack("<H", 0xFFFF) + data[46:],
        "phoff_beyond_eof": bytes(hdr[:28]) + struct.pack("<I", len(data) + 0x1000) + data[32:],
        "phoff_max": bytes(hdr[:28]) + struct.pack("<I", U32) + data[32:],
        "all_ff": b"\x7fELF" + b"\xff" * 4092,
        "all_zero_phdrs": data[:52] + bytes(32 * base["phnum"]) + data[52 + 32 * base["phnum"]:],
    }
    huge = bytearray(data)
    for k, ph in enumerate(base["phdrs"]):
        if ph["p_type"] == PT_LOAD:
            _u32(huge, _ph_off(base, k) + 20, U32)            # p_memsz 4 GiB - 1
    cases["huge_memsz"] = bytes(huge)
    for key, blob in cases.items():
        path = str(workdir / f"patho_{key}")
        with open(path, "wb") as f:
            f.write(blob)
        os.chmod(path, 0o755)
        res = predict_any(path)
        if isinstance(res, UnsupportedProgram):
            continue
        assert res.verdict.result in ("ok", "errno", "killed"), key
        if LIVE_OK:
            diffs = live_differences(res, path, [path], [])
            assert not diffs, f"{key}:\n" + "\n".join(diffs)


# --- RLIMIT_STACK swept from 0 upward ---------------------------------------------------------
# Every page boundary (and one byte either side) up to 48 KiB, the odd small values, the 128 KiB
# ARG_MAX floor of bprm_stack_limits(), and a few random values; each with string sizes that end
# inside the first stack page, just across it, and several pages down.
RLIMIT_SWEEP = sorted({0, 1, 2, 512, 1024, 2048, 4000, 128 * KiB - 1, 128 * KiB, 128 * KiB + 1,
                       *(4 * KiB * k + d for k in range(1, 13) for d in (-1, 0, 1))}
                      | {random.Random(s).randrange(0, 512 * KiB) for s in range(8)})
SWEEP_ENV_SIZES = (0, 3000, 3900, 4050, 5000, 9000, 30000)


@pytest.mark.parametrize("rlimit", RLIMIT_SWEEP)
def test_fuzz_rlimit_stack_sweep(rlimit, bases):
    """get_arg_page() only checks RLIMIT_STACK when the strings grow the temporary stack past its
    first page, so RLIMIT_STACK 0, 1 or 1K still execs a small command line (the program dies at
    its first push below that page); verdict, maps, auxv and registers match the kernel."""
    names = [n for n in ("hello_static", "hello_pie", "hello_nopie") if n in bases]
    assert names, "no static/PIE/non-PIE base to sweep"
    seen = set()
    for name in names:
        path = bases[name]["path"]
        for size in SWEEP_ENV_SIZES:
            env = [f"A={'x' * size}"] if size else []
            res = execve(ExecRequest(path, [path], env, rlimit_stack=rlimit))
            seen.add(res.verdict.result)
            if not LIVE_OK:
                continue
            diffs = live_differences(res, path, [path], env, rlimit_stack=rlimit)
            assert not diffs, f"{name} RLIMIT_STACK={rlimit:#x} env {size} bytes:\n" + "\n".join(diffs)
    if not LIVE_OK:
        pytest.skip(f"live comparison: {LIVE_REASON} (predicted verdicts: {sorted(seen)})")
