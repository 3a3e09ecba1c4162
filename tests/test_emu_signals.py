"""Signal delivery in program mode (elfvm.emu.signals): handlers, frames, masks, sigreturn.

Each program in tests/signal_progs is built with `gcc -m32 -static` into a tmp dir and run twice,
natively (it is a real i386 program) and under simulate-run; stdout and the exit status (a shell's
128 + signal for a signal death) must be the same.
"""

import pathlib
import subprocess

import pytest

from conftest import build_static_guest

pytest.importorskip("unicorn")

from elfvm.emu import RunOptions, run_program  # noqa: E402
from elfvm.emu import signals as S  # noqa: E402

SRC = pathlib.Path(__file__).resolve().parent / "signal_progs"


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    out = tmp_path_factory.mktemp("sigprogs")
    return lambda name: build_static_guest(SRC / f"{name}.c", out / name)


def native(exe: str) -> tuple[bytes, int]:
    try:
        r = subprocess.run([exe], capture_output=True, timeout=30)
    except OSError as e:                      # pragma: no cover - no i386 execution
        pytest.skip(f"cannot run i386 programs here: {e}")
    return r.stdout, (128 - r.returncode if r.returncode < 0 else r.returncode)


def emulated(exe: str):
    return run_program(RunOptions(exe, max_instructions=100_000_000))


def same_as_native(build, name: str):
    exe = build(name)
    out, status = native(exe)
    rep = emulated(exe)
    assert rep.stop_reason is None
    assert rep.stdout.decode() == out.decode()
    assert rep.exit_status == status
    return rep, out


def test_sigusr1_handler_via_raise(build):
    rep, out = same_as_native(build, "usr1")
    assert b"handler: signal 10\nafter raise: r=0 got=10 acc=180 blocked-inside=3\n" in out
    assert b"after raise: code=-6 (SI_TKILL=-6) pid_ok=1" in out
    assert rep.exit_status == 128 + 10                 # the last raise with SIG_DFL kills
    names = {s["name"] for s in rep.syscalls}
    assert "sigreturn" in names and "rt_sigreturn" in names   # both frame kinds were used


def test_sigsegv_handler_siglongjmp_from_read_only_page(build):
    rep, out = same_as_native(build, "segv")
    assert b"caught SIGSEGV writing 1: si_addr = p + 101, SEGV_ACCERR" in out
    assert b"caught reading unmapped: si_addr = p + 5000, SEGV_MAPERR" in out
    assert b"caught SIGFPE FPE_INTDIV" in out
    assert rep.death["signal"] == "SIGSEGV"            # the final fault with SIG_DFL


def test_blocked_signal_delivered_on_unblock_and_resethand(build):
    rep, out = same_as_native(build, "blocked")
    assert b"blocked: count=0 pending usr1=1 usr2=1\nafter unblock: count=2" in out
    assert b"after one-shot: handler is SIG_DFL" in out
    assert b"sigsuspend returned -1, count=3" in out
    assert rep.exit_status == 128 + 12


def test_sigchld_after_fork_and_sigpipe(build):
    rep, out = same_as_native(build, "chld")
    assert b"SIGCHLD: from child 1, code CLD_EXITED, status 7" in out
    assert b"handler saw code CLD_KILLED status 15 count 2" in out
    assert b"SIGPIPE handler\nhandled: write -1 errno EPIPE" in out
    assert rep.exit_status == 128 + 13


def test_sigaltstack_sa_onstack(build):
    same_as_native(build, "alt")


def test_frame_layout_matches_the_kernel_structs():
    # struct rt_sigframe_ia32 / sigframe_ia32 / ucontext_ia32 / sigcontext_32 (i386 ABI)
    assert S.SIGCONTEXT_SIZE == 88 and S.UCONTEXT_SIZE == 116
    assert S.RT_FRAME_SIZE == 268 and S.FRAME_SIZE == 732
    assert S.SF_OFF_EXTRAMASK == 720 and S.RT_OFF_UC == 144
    assert len(S.RT_RETCODE) == 8 and len(S.RETCODE) == 8


def test_frame_alignment_follows_align_sigframe():
    class P:
        sig_altstack = (0, S.SS_DISABLE, 0)

    for sp in range(0xBFFF0000, 0xBFFF0040, 4):
        for size in (S.RT_FRAME_SIZE, S.FRAME_SIZE):
            frame, fpstate = S.get_sigframe(P(), S.SigAction(0x1234), sp, size)
            assert (frame + 4) % 16 == 0                 # ((sp + 4) & -16) - 4
            assert frame + size <= fpstate and (fpstate + S.FREGS_SIZE) % 64 == 0


@pytest.mark.parametrize("case,sig,code", [
    ("0", 11, 128),       # inb: #GP, SIGSEGV SI_KERNEL
    ("1", 11, 128),       # outb
    ("2", 4, 2),          # sysenter: #UD in compatibility mode (AMD), SIGILL ILL_ILLOPN
    ("3", 11, 1),         # push with %esp = 0: SIGSEGV SEGV_MAPERR at 0xfffffffc
])
def test_privileged_and_kernel_address_instructions(build, case, sig, code):
    """The instructions the kernel refuses a user task get the live kernel's signal, si_code
    and si_addr (the handler prints them, then dies of the signal: exit 139 / 132)."""
    exe = build("cpu_traps")
    try:
        r = subprocess.run([exe, case], capture_output=True, timeout=30)
    except OSError as e:                      # pragma: no cover - no i386 execution
        pytest.skip(f"cannot run i386 programs here: {e}")
    status = 128 - r.returncode if r.returncode < 0 else r.returncode
    if case == "2" and status != 128 + sig:
        pytest.skip("this CPU enters the kernel on sysenter in compatibility mode (Intel)")
    rep = run_program(RunOptions(exe, (case,), max_instructions=100_000_000))
    assert rep.stdout == r.stdout
    assert f"signal {sig} si_code {code} ".encode() in rep.stdout
    assert rep.exit_status == status == 128 + sig
