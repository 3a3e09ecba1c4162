"""A read-modify-write instruction faults once, as a write (the #PF error code has W set).

Unicorn performs `add %edi,(%eax)` as a load then a store; the emulator's CPU gives that load's
TLB fill the access the real CPU reports (elfvm.emu.x86insn.rmw_destination), so the page is
mapped writable by one fault instead of a read fault and a write fault.

Unit tests: the decoder, one instruction class at a time. Oracle: tests/guest_progs/rmw.c runs
one instruction of each class on a page that is not present, then writes the page; the kernel's
fault count of each case must be the emulator's, exactly.
"""

import os
import subprocess

import pytest

from conftest import build_static_guest
from elfvm.emu.x86insn import rmw_destination

HERE = os.path.dirname(os.path.abspath(__file__))

# (bytes, what): ModRM 0x00 is (%eax), 0x02 (%edx), 0x42 disp8(%edx); mod 3 is a register
RMW = [
    ("01 38", "add %edi,(%eax)  (ld.so's relocation loop)"),
    ("00 02", "add %al,(%edx)"),
    ("09 02", "or %eax,(%edx)"),
    ("10 02", "adc %al,(%edx)"),
    ("19 02", "sbb %eax,(%edx)"),
    ("21 02", "and %eax,(%edx)"),
    ("29 02", "sub %eax,(%edx)"),
    ("30 02", "xor %al,(%edx)"),
    ("80 0a 01", "orb $1,(%edx)  (group 1 /1)"),
    ("81 22 78 56 34 12", "andl $imm32,(%edx)  (group 1 /4)"),
    ("82 32 01", "xorb $1,(%edx)  (0x82: 0x80's alias)"),
    ("83 32 01", "xorl $1,(%edx)  (group 1 /6)"),
    ("f0 83 02 01", "lock addl $1,(%edx)"),
    ("ff 02", "incl (%edx)"),
    ("66 ff 0a", "decw (%edx)  (operand-size prefix)"),
    ("fe 02", "incb (%edx)"),
    ("fe 0a", "decb (%edx)"),
    ("f7 12", "notl (%edx)"),
    ("f6 1a", "negb (%edx)"),
    ("c1 22 03", "shll $3,(%edx)"),
    ("d1 0a", "rorl (%edx)"),
    ("d3 3a", "sarl %cl,(%edx)"),
    ("d0 32", "salb (%edx)  (group 2 /6)"),
    ("c0 12 01", "rclb $1,(%edx)"),
    ("87 02", "xchg %eax,(%edx)"),
    ("86 02", "xchg %al,(%edx)"),
    ("0f b1 0a", "cmpxchg %ecx,(%edx)"),
    ("f0 0f b0 0a", "lock cmpxchg %cl,(%edx)"),
    ("0f c1 02", "xadd %eax,(%edx)"),
    ("0f c0 02", "xadd %al,(%edx)"),
    ("0f ab 02", "bts %eax,(%edx)"),
    ("0f b3 02", "btr %eax,(%edx)"),
    ("0f bb 02", "btc %eax,(%edx)"),
    ("0f ba 2a 05", "btsl $5,(%edx)  (group 8 /5)"),
    ("0f ba 32 05", "btrl $5,(%edx)  (group 8 /6)"),
    ("0f ba 3a 05", "btcl $5,(%edx)  (group 8 /7)"),
    ("0f a4 02 04", "shld $4,%eax,(%edx)"),
    ("0f a5 02", "shld %cl,%eax,(%edx)"),
    ("0f ac 02 04", "shrd $4,%eax,(%edx)"),
    ("0f ad 02", "shrd %cl,%eax,(%edx)"),
    ("0f c7 0e", "cmpxchg8b (%esi)  (group 9 /1)"),
    ("3e 01 42 04", "add %eax,%ds:4(%edx)  (segment prefix)"),
    ("65 83 05 10 00 00 00 01", "addl $1,%gs:0x10"),
    ("67 01 07", "add %eax,(%bx)  (address-size prefix: 16-bit ModRM)"),
    ("01 04 24", "add %eax,(%esp)  (SIB)"),
]
NOT_RMW = [
    ("01 c0", "add %eax,%eax  (register destination)"),
    ("03 02", "add (%edx),%eax  (memory source)"),
    ("39 02", "cmp %eax,(%edx)"),
    ("38 02", "cmp %al,(%edx)"),
    ("83 3a 01", "cmpl $1,(%edx)  (group 1 /7)"),
    ("85 02", "test %eax,(%edx)"),
    ("f7 02 01 00 00 00", "testl $1,(%edx)  (group 3 /0)"),
    ("f7 22", "mull (%edx)  (group 3 /4)"),
    ("0f a3 02", "bt %eax,(%edx)"),
    ("0f ba 22 01", "btl $1,(%edx)  (group 8 /4)"),
    ("8b 02", "mov (%edx),%eax"),
    ("89 02", "mov %eax,(%edx)  (a store: the CPU reports a write anyway)"),
    ("0f 92 02", "setc (%edx)"),
    ("ff 32", "push (%edx)  (reads (%edx), writes the stack)"),
    ("8f 02", "pop (%edx)"),
    ("ff 12", "call *(%edx)"),
    ("a5", "movsl  (reads (%esi), writes (%edi))"),
    ("f3 a5", "rep movsl"),
    ("ab", "stosl"),
    ("a7", "cmpsl"),
    ("0f c7 f0", "rdrand %eax  (group 9 /6, register)"),
    ("0f c7 c8", "group 9 /1 with a register operand (#UD)"),
    ("d9 1a", "fstps (%edx)"),
    ("dd 02", "fldl (%edx)"),
    ("f3 0f b8 02", "popcnt (%edx),%eax"),
    ("c5 f9 6f 02", "vmovdqa (%edx),%xmm0  (VEX)"),
    ("", "no bytes"),
    ("f0 f0", "prefixes only"),
    ("0f", "0x0f only"),
    ("01", "opcode without its ModRM"),
]


@pytest.mark.parametrize("hexbytes,what", RMW, ids=[w.split("  ")[0] for _, w in RMW])
def test_rmw_destination(hexbytes, what):
    assert rmw_destination(bytes.fromhex(hexbytes)), what


@pytest.mark.parametrize("hexbytes,what", NOT_RMW, ids=[w.split("  ")[0] or "empty" for _, w in NOT_RMW])
def test_not_rmw_destination(hexbytes, what):
    assert not rmw_destination(bytes.fromhex(hexbytes)), what


def test_fifteen_prefixes_are_not_an_instruction():
    assert not rmw_destination(bytes([0x66] * 15) + bytes.fromhex("01 02"))
    assert rmw_destination(bytes([0x66] * 13) + bytes.fromhex("01 02"))


@pytest.fixture(scope="module")
def rmw_prog(tmp_path_factory):
    return build_static_guest(os.path.join(HERE, "guest_progs", "rmw.c"),
                              tmp_path_factory.mktemp("rmw") / "rmw")


def _cases(stdout) -> list[tuple[str, int]]:
    """(case, its page's address) from the output of a run of every case."""
    text = stdout.decode() if isinstance(stdout, bytes) else stdout
    return [(line.split()[0], int(line.split()[1], 16)) for line in text.splitlines()]


@pytest.mark.oracle
def test_each_instruction_faults_as_the_kernel_counts(live, rmw_prog, capsys):
    """One run per instruction class, natively and emulated: the same fault count (a
    read-modify-write is one write fault; a read then the write are two, on both)."""
    from elfvm.emu import RunOptions, run_program
    from elfvm.emu.livefaults import live_minflt

    rows, wrong = [], []
    names = [n for n, _ in _cases(subprocess.run([rmw_prog], capture_output=True, check=True).stdout)]
    for name in [*names, "none"]:
        kernel = live_minflt(rmw_prog, [rmw_prog, name]).minflt
        emu = run_program(RunOptions(rmw_prog, (name,)))
        assert emu.exit_status == 0, name
        rows.append(f"{name} {kernel}/{emu.page_faults}")
        if emu.page_faults != kernel:
            wrong.append((name, kernel, emu.page_faults))
    with capsys.disabled():
        print("\nrmw cases, kernel/elfvm faults: " + ", ".join(rows))
    assert not wrong


@pytest.mark.parametrize("exact", [False, True], ids=["page-granular", "exact-tlb"])
def test_rmw_page_takes_one_write_fault(rmw_prog, exact):
    """In one run of every case: each read-modify-write page has one fault, a write; each read
    case's page a read fault and then the write's."""
    from elfvm.emu import RunOptions, run_program

    r = run_program(RunOptions(rmw_prog, exact=exact))
    assert r.exit_status == 0
    by_page = {}
    for e in r.events:
        by_page.setdefault(e["address"] >> 12, []).append(e["access"])
    reads = {"cmp_reg", "test_reg", "bt_imm", "mov_load", "push_mem", "movs_same_page"}
    writes = {"mov_store", "setc_mem"}
    for name, addr in _cases(r.stdout):
        want = ["r", "w"] if name in reads else ["w"]
        assert by_page.get(addr >> 12) == want, (name, by_page.get(addr >> 12), name in writes)
