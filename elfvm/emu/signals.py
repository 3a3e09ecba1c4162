"""Signal delivery, the Linux i386 way (kernel/signal.c, arch/x86/kernel/signal.c, signal_32.c).

A signal is *sent* (`send_signal`: kill/tkill/tgkill, SIGCHLD from do_notify_parent, SIGPIPE
from pipe_write) into the target's pending set, unless it would be ignored and is not blocked
(sig_ignored(): dropped at once). A sleeping target with a deliverable signal is woken.

It is *delivered* on the way back to user mode (`do_signal`, exit_to_user_mode_loop ->
arch_do_signal_or_restart): after every system call, before a process that was switched away
resumes, and right after a fault (`force_sig_fault`: SIGSEGV/SIGBUS/SIGFPE/SIGILL/SIGTRAP from
the CPU; a blocked or ignored fault signal reverts to SIG_DFL, as force_sig_info_to_task does).
get_signal() takes the synchronous signals first, then the lowest number; SIG_IGN and the
default-ignored signals (SIGCHLD, SIGCONT, SIGURG, SIGWINCH) are dropped, other defaults are
fatal (the process dies with `Death`, exit status 128 + signal). A handler gets a frame:

  * SA_SIGINFO: ia32_setup_rt_frame - struct rt_sigframe_ia32 {pretcode, sig, pinfo, puc,
    compat_siginfo_t info, struct ucontext_ia32 uc, retcode[8]}; eax = sig, edx = &info,
    ecx = &uc (-mregparm=3);
  * otherwise: ia32_setup_frame - struct sigframe_ia32 {pretcode, sig, struct sigcontext_32 sc,
    struct _fpstate_32 fpstate_unused, extramask[1], retcode[8]} (this is what the kernel does
    for i386 frames: the rt frame only with SA_SIGINFO); eax = sig, edx = ecx = 0.

pretcode is sa_restorer with SA_RESTORER, else the vDSO's __kernel_sigreturn /
__kernel_rt_sigreturn (glibc >= 2.35 on i386 sets no SA_RESTORER), else the frame's own retcode. The frame lies below the FPU area that
get_sigframe() -> fpu__alloc_mathframe() reserves (on the sigaltstack with SA_ONSTACK), and
`sp = ((sp + 4) & -16) - 4` (align_sigframe). The blocked mask becomes blocked | sa_mask | sig
(not sig with SA_NODEFER); SA_RESETHAND resets the action to SIG_DFL. A system call interrupted
while sleeping returns -EINTR, or is restarted (eip -= 2) with SA_RESTART (-ERESTARTSYS).
rt_sigreturn (173) / sigreturn (119) restore the registers (eflags through FIX_EFLAGS) and the
blocked mask from the frame.

FPU state (documented simplification): the math frame is the FXSR layout of a CPU without XSAVE
(struct fregs_state, 112 bytes, then a 512-byte fxsave image; uc_flags = 0): control/status/tag
words, the x87 registers, MXCSR and xmm0-7 as Unicorn reports them. The handler starts with the
default control word and MXCSR (fpu__clear_user_states); sigreturn restores the control and
status words, MXCSR and xmm0-7 (the x87 register stack is left as the handler left it, which a
balanced handler leaves unchanged). Standard and real-time signals are not queued: one pending
instance per number.
"""

from __future__ import annotations

import errno
import struct

import unicorn.x86_const as X
from unicorn import UC_HOOK_MEM_READ, UC_HOOK_MEM_WRITE, UcError
from unicorn.x86_const import (
    UC_X86_REG_CS,
    UC_X86_REG_DS,
    UC_X86_REG_EAX,
    UC_X86_REG_EBP,
    UC_X86_REG_EBX,
    UC_X86_REG_ECX,
    UC_X86_REG_EDI,
    UC_X86_REG_EDX,
    UC_X86_REG_EFLAGS,
    UC_X86_REG_EIP,
    UC_X86_REG_ES,
    UC_X86_REG_ESI,
    UC_X86_REG_ESP,
    UC_X86_REG_FPCW,
    UC_X86_REG_FPSW,
    UC_X86_REG_FPTAG,
    UC_X86_REG_FS,
    UC_X86_REG_GS,
    UC_X86_REG_MXCSR,
    UC_X86_REG_SS,
)

from elfvm.emu.exit import do_exit, send_signal
from elfvm.emu.pages import flush_cpu_tlb
from elfvm.emu.sigstate import (
    DEFAULT_IGNORED,
    EFLAGS_DF,
    EFLAGS_RF,
    EFLAGS_TF,
    FAULT_SIGNALS,
    FIX_EFLAGS,
    MINSIGSTKSZ,
    NR_RT_SIGRETURN,
    NR_SIGRETURN,
    NSIG,
    SA_NODEFER,
    SA_ONSTACK,
    SA_RESETHAND,
    SA_RESTART,
    SA_RESTORER,
    SA_SIGINFO,
    SI_KERNEL,
    SI_TKILL,
    SI_USER,
    SIG_BLOCK,
    SIG_DFL,
    SIG_IGN,
    SIG_SETMASK,
    SIG_UNBLOCK,
    SIGINFO_SIZE,
    SIGKILL,
    SIGPIPE,
    SIGSEGV,
    SIGSTOP,
    SS_AUTODISARM,
    SS_DISABLE,
    SS_ONSTACK,
    STOP_SIGNALS,
    UNBLOCKABLE,
    SigAction,
    SigInfo,
    action,
    bit,
    deliverable,
    ignored,
    state,
)
from elfvm.emu.task import Blocked, Death, EFault
from elfvm.emu.uaccess import read_user, write_user

# frame geometry (arch/x86/include/asm/sigframe.h, uapi/asm/sigcontext.h)
SIGCONTEXT_SIZE = 88              # struct sigcontext_32: 22 words
FPSTATE_32_SIZE = 624             # struct _fpstate_32
FREGS_SIZE = 112                  # struct fregs_state (the legacy i387 header)
FXSAVE_SIZE = 512                 # struct fxregs_state (no XSAVE: the whole math frame)
UCONTEXT_SIZE = 4 + 4 + 12 + SIGCONTEXT_SIZE + 8
RT_FRAME_SIZE = 16 + SIGINFO_SIZE + UCONTEXT_SIZE + 8
FRAME_SIZE = 8 + SIGCONTEXT_SIZE + FPSTATE_32_SIZE + 4 + 8
RT_OFF_INFO, RT_OFF_UC = 16, 16 + SIGINFO_SIZE
UC_OFF_STACK, UC_OFF_MCONTEXT, UC_OFF_SIGMASK = 8, 20, 20 + SIGCONTEXT_SIZE
RT_OFF_RETCODE = RT_OFF_UC + UCONTEXT_SIZE
SF_OFF_SC, SF_OFF_EXTRAMASK = 8, 8 + SIGCONTEXT_SIZE + FPSTATE_32_SIZE
SF_OFF_RETCODE = SF_OFF_EXTRAMASK + 4
# movl $173,%eax; int $0x80; pad  /  popl %eax; movl $119,%eax; int $0x80
RT_RETCODE = b"\xb8" + struct.pack("<I", NR_RT_SIGRETURN) + b"\xcd\x80\x00"
RETCODE = b"\x58\xb8" + struct.pack("<I", NR_SIGRETURN) + b"\xcd\x80"

_GPRS = ("edi", "esi", "ebp", "esp", "ebx", "edx", "ecx", "eax")
_REG = {"eax": UC_X86_REG_EAX, "ebx": UC_X86_REG_EBX, "ecx": UC_X86_REG_ECX, "edx": UC_X86_REG_EDX,
        "esi": UC_X86_REG_ESI, "edi": UC_X86_REG_EDI, "ebp": UC_X86_REG_EBP, "esp": UC_X86_REG_ESP,
        "eip": UC_X86_REG_EIP, "eflags": UC_X86_REG_EFLAGS, "cs": UC_X86_REG_CS, "ss": UC_X86_REG_SS,
        "ds": UC_X86_REG_DS, "es": UC_X86_REG_ES, "fs": UC_X86_REG_FS, "gs": UC_X86_REG_GS}
_XMM = [getattr(X, f"UC_X86_REG_XMM{i}") for i in range(8)]
_FP = [getattr(X, f"UC_X86_REG_FP{i}") for i in range(8)]








# ================================================================ per-process state








# ================================================================ sending






# ================================================================ registers
def _rd(k, name: str) -> int:
    return k.uc.reg_read(_REG[name])


def _wr(k, name: str, v: int) -> None:
    k.uc.reg_write(_REG[name], v & 0xFFFFFFFF)


def _sigcontext(k, fpstate: int, mask: int, trapno: int = 0, err: int = 0, cr2: int = 0) -> bytes:
    """unsafe_put_sigcontext32()."""
    r = {n: _rd(k, n) for n in _REG}
    return struct.pack("<4I8I10I", r["gs"], r["fs"], r["es"], r["ds"],
                       *(r[n] for n in _GPRS), trapno, err, r["eip"], r["cs"], r["eflags"], r["esp"],
                       r["ss"], fpstate, mask & 0xFFFFFFFF, cr2)


def _fpu_image(k) -> tuple[bytes, bytes]:
    """(struct fregs_state, struct fxregs_state) from what Unicorn reports."""
    uc = k.uc
    cw, sw, tag = uc.reg_read(UC_X86_REG_FPCW), uc.reg_read(UC_X86_REG_FPSW), uc.reg_read(UC_X86_REG_FPTAG)
    mxcsr = uc.reg_read(UC_X86_REG_MXCSR)
    st = []
    for r in _FP:
        try:
            mant, exp = uc.reg_read(r)
        except Exception:          # pragma: no cover - an older Unicorn
            mant, exp = 0, 0
        st.append(struct.pack("<QH", mant & (2**64 - 1), exp & 0xFFFF))
    fregs = struct.pack("<7I", 0xFFFF0000 | cw, 0xFFFF0000 | sw, 0xFFFF0000 | tag, 0, 0, 0, 0) \
        + b"".join(st) + struct.pack("<HH", sw, 0)           # status, magic = X86_FXSR_MAGIC
    abridged = 0
    for i in range(8):                                        # full tag -> fxsave's abridged tag
        if (tag >> (2 * i)) & 3 != 3:
            abridged |= 1 << i
    fx = bytearray(FXSAVE_SIZE)
    struct.pack_into("<HHHH4III", fx, 0, cw, sw, abridged, 0, 0, 0, 0, 0, mxcsr, 0xFFFF)
    for i, s in enumerate(st):
        fx[32 + 16 * i:32 + 16 * i + 10] = s
    for i, r in enumerate(_XMM):
        fx[160 + 16 * i:176 + 16 * i] = (uc.reg_read(r) & (2**128 - 1)).to_bytes(16, "little")
    return fregs, bytes(fx)


def _restore_fpu(k, p, fpstate: int) -> None:
    """fpu__restore_sig() (ia32, FXSR): the fxsave image after the fregs_state header."""
    if not fpstate:
        return
    fx = read_user(k, p, fpstate + FREGS_SIZE, FXSAVE_SIZE)
    cw, sw = struct.unpack_from("<HH", fx, 0)
    mxcsr = struct.unpack_from("<I", fx, 24)[0]
    uc = k.uc
    uc.reg_write(UC_X86_REG_FPCW, cw)
    uc.reg_write(UC_X86_REG_FPSW, sw)
    uc.reg_write(UC_X86_REG_MXCSR, mxcsr & 0xFFFF)
    for i, r in enumerate(_XMM):
        uc.reg_write(r, int.from_bytes(fx[160 + 16 * i:176 + 16 * i], "little"))


def on_sig_stack(p, sp: int) -> bool:
    ss_sp, _flags, ss_size = p.sig_altstack
    return ss_size != 0 and sp > ss_sp and sp - ss_sp <= ss_size


def sas_ss_flags(p, sp: int) -> int:
    ss_sp, flags, ss_size = p.sig_altstack
    if not ss_size or flags & SS_DISABLE:
        return SS_DISABLE
    return SS_ONSTACK if on_sig_stack(p, sp) else 0


# ================================================================ delivery
def get_sigframe(p, act: SigAction, sp: int, frame_size: int) -> tuple[int, int]:
    """get_sigframe() for an ia32 frame: (frame address, fpstate address)."""
    onstack = on_sig_stack(p, sp)
    if act.flags & SA_ONSTACK and sas_ss_flags(p, sp) == 0:
        sp = p.sig_altstack[0] + p.sig_altstack[2]
    sp = (sp - FXSAVE_SIZE) & ~63                 # fpu__alloc_mathframe: buf_fx, 64-aligned
    sp -= FREGS_SIZE                              # the i387 header in front (ia32 + fxsr)
    fpstate = sp
    sp -= frame_size
    sp = ((sp + 4) & -16) - 4                     # align_sigframe()
    if onstack and not on_sig_stack(p, sp):       # would overflow the alternate stack
        return 0xFFFFFFFF, fpstate
    return sp & 0xFFFFFFFF, fpstate


def _vdso_base(k, p) -> int:
    for v in p.mm.vmas:
        if v.special == "[vdso]":
            return v.start
    return 0


def setup_frame(k, p, sig: int, act: SigAction, info: SigInfo, mask: int,
                trap: tuple[int, int, int] = (0, 0, 0)) -> bool:
    """ia32_setup_rt_frame() / ia32_setup_frame(); False when the frame cannot be written."""
    sp = _rd(k, "esp")
    rt = bool(act.flags & SA_SIGINFO)
    frame, fpstate = get_sigframe(p, act, sp, RT_FRAME_SIZE if rt else FRAME_SIZE)
    if frame == 0xFFFFFFFF:
        return False
    fregs, fx = _fpu_image(k)
    sc = _sigcontext(k, fpstate, mask, *trap)
    vdso = _vdso_base(k, p)
    if rt:
        restorer = act.restorer if act.flags & SA_RESTORER else \
            vdso + k.profile.vdso_rt_sigreturn_offset if vdso else frame + RT_OFF_RETCODE
        b = bytearray(RT_FRAME_SIZE)
        struct.pack_into("<IiII", b, 0, restorer, sig, frame + RT_OFF_INFO, frame + RT_OFF_UC)
        b[RT_OFF_INFO:RT_OFF_INFO + SIGINFO_SIZE] = info.pack()
        uc = RT_OFF_UC
        ss_sp, _f, ss_size = p.sig_altstack
        struct.pack_into("<IIIiI", b, uc, 0, 0, ss_sp, sas_ss_flags(p, sp), ss_size)
        b[uc + UC_OFF_MCONTEXT:uc + UC_OFF_MCONTEXT + SIGCONTEXT_SIZE] = sc
        struct.pack_into("<Q", b, uc + UC_OFF_SIGMASK, mask)
        b[RT_OFF_RETCODE:RT_OFF_RETCODE + 8] = RT_RETCODE
    else:
        restorer = act.restorer if act.flags & SA_RESTORER else \
            vdso + k.profile.vdso_sigreturn_offset if vdso else frame + SF_OFF_RETCODE
        b = bytearray(FRAME_SIZE)
        struct.pack_into("<Ii", b, 0, restorer, sig)
        b[SF_OFF_SC:SF_OFF_SC + SIGCONTEXT_SIZE] = sc
        struct.pack_into("<I", b, SF_OFF_EXTRAMASK, mask >> 32)
        b[SF_OFF_RETCODE:SF_OFF_RETCODE + 8] = RETCODE
    try:
        write_user(k, p, fpstate, fregs + fx)
        write_user(k, p, frame, bytes(b))
    except EFault:
        return False
    _wr(k, "esp", frame)
    _wr(k, "eip", act.handler)
    _wr(k, "eax", sig)
    _wr(k, "edx", frame + RT_OFF_INFO if rt else 0)
    _wr(k, "ecx", frame + RT_OFF_UC if rt else 0)
    _wr(k, "eflags", _rd(k, "eflags") & ~(EFLAGS_DF | EFLAGS_RF | EFLAGS_TF))
    k.uc.reg_write(UC_X86_REG_FPCW, 0x37F)           # fpu__clear_user_states()
    k.uc.reg_write(UC_X86_REG_MXCSR, 0x1F80)
    return True


def handle_signal(k, p, sig: int, info: SigInfo, restart: int | None = None,
                  trap: tuple[int, int, int] = (0, 0, 0)) -> bool:
    """handle_signal() + signal_delivered(): syscall restart fix-up, the frame, the new mask.
    False when the frame could not be written (the process then dies of SIGSEGV)."""
    act = action(p, sig)
    if restart is not None:                           # -ERESTARTSYS from a sleeping call
        if act.flags & SA_RESTART:
            _wr(k, "eax", restart)
            _wr(k, "eip", _rd(k, "eip") - 2)
        else:
            _wr(k, "eax", -errno.EINTR)
    mask = p.sig_saved_mask if p.sig_saved_mask is not None else p.sig_blocked
    if act.flags & SA_RESETHAND:
        p.sigactions[sig] = SigAction()
    if not setup_frame(k, p, sig, act, info, mask, trap):
        reason = f"could not write the frame of signal {sig}'s handler"
        do_exit(k, p, death=Death(SIGSEGV, None, None, reason, _rd(k, "eip"), code=SI_KERNEL))
        return False
    p.sig_saved_mask = None
    blocked = p.sig_blocked | act.mask
    if not act.flags & SA_NODEFER:
        blocked |= bit(sig)
    p.sig_blocked = blocked & ~UNBLOCKABLE
    return True


def do_signal(k, p, restart: int | None = None) -> None:
    """arch_do_signal_or_restart(), looped like exit_to_user_mode_loop: every deliverable
    signal gets its frame (the last one set up runs first), a fatal default kills."""
    state(p)
    while p.state not in ("zombie", "reaped"):
        sig = deliverable(p)
        if sig is None:
            break
        info = p.sig_pending.pop(sig)
        act = action(p, sig)
        if act.handler == SIG_IGN or (act.handler == SIG_DFL and (sig in DEFAULT_IGNORED or sig in STOP_SIGNALS)):
            continue
        if act.handler == SIG_DFL:
            who = f" from pid {info.pid}" if info.pid else ""
            reason = info_reason(sig, info) or f"killed by signal {sig}{who}"
            do_exit(k, p, death=Death(sig, info.addr, None, reason, _rd(k, "eip"), code=info.code))
            return
        if not handle_signal(k, p, sig, info, restart):
            return
        restart = None
    if p.sig_saved_mask is not None and p.state not in ("zombie", "reaped"):
        p.sig_blocked, p.sig_saved_mask = p.sig_saved_mask, None     # restore_saved_sigmask()


def info_reason(sig: int, info: SigInfo) -> str:
    if sig == SIGPIPE and info.code == SI_KERNEL:
        return "write to a pipe with no reader (SIGPIPE)"
    return ""


def fault_address(k, p, d: Death) -> int:
    """The exact faulting address (cr2). Unicorn's TLB-fill hook only names the page, so the
    faulting instruction is run once more with that page backed by a scratch frame: the offset
    of its access there is the address's low bits. Registers and the instruction count are put
    back afterwards and the scratch mapping is flushed; other memory is left as it was unless the
    instruction also writes a valid page before the faulting access (rare)."""
    page = d.addr & ~0xFFF
    eip = _rd(k, "eip")
    if d.access == "x":
        return eip if eip & ~0xFFF == page else page
    scratch = getattr(k, "probe_frame", None)
    if scratch is None:
        scratch = k.probe_frame = k.frames.new("signal probe", anon=False, pinned=True).addr
    seen = []

    def hook(uc, mem_type, paddr, size, value, data):
        if paddr & ~0xFFF == scratch and not seen:
            seen.append(paddr & 0xFFF)

    ctx = k.uc.context_save()
    count = k.cpu.save_count()            # the probe's instruction is not the guest's
    h = k.uc.hook_add(UC_HOOK_MEM_READ | UC_HOOK_MEM_WRITE, hook)
    k.probe_page = (page >> 12, scratch)
    flush_cpu_tlb(k)
    try:
        k.uc.emu_start(eip, 0xFFFFFFF0, 0, 1)
    except UcError:
        pass
    finally:
        k.probe_page = None
        k.pending_death = None
        k.uc.hook_del(h)
        k.uc.context_restore(ctx)
        flush_cpu_tlb(k)
        k.cpu.restore_count(count)
    return page | seen[0] if seen else d.addr


def force_sig_fault(k, p, d: Death) -> bool:
    """A fault's signal (force_sig_fault): True when a handler frame was set up and the process
    goes on; False when the default action kills it with `d` (also when the signal is blocked
    or ignored: force_sig_info_to_task resets it to SIG_DFL)."""
    sig = d.signal
    if sig not in FAULT_SIGNALS or p.state in ("zombie", "reaped"):
        return False
    state(p)
    act = action(p, sig)
    if act.handler in (SIG_DFL, SIG_IGN) or p.sig_blocked & bit(sig):
        if act.handler != SIG_DFL:
            p.sigactions[sig] = SigAction()
        p.sig_blocked &= ~bit(sig)
        return False
    addr = d.addr if d.addr is not None else 0
    if d.trapno == 14 and d.addr is not None:
        addr = fault_address(k, p, d)
    info = SigInfo(sig, d.code, addr=addr)
    handle_signal(k, p, sig, info, trap=(d.trapno, d.err, addr))
    if p.state in ("zombie", "reaped"):
        return True
    do_signal(k, p)                                   # anything else pending rides along
    return True


# ================================================================ system calls
def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def sys_rt_sigaction(k, p, sig, act, oact, sigsetsize):
    state(p)
    if sigsetsize != 8:
        return -errno.EINVAL
    if not 1 <= sig <= NSIG or (act and sig in (SIGKILL, SIGSTOP)):
        return -errno.EINVAL
    old = action(p, sig)
    if act:
        h, flags, restorer, mask = struct.unpack("<IIIQ", read_user(k, p, act, 20))
        new = SigAction(h, flags, restorer, mask & ~UNBLOCKABLE)
    if oact:
        write_user(k, p, oact, old.pack())
    if act:
        p.sigactions[sig] = new
        if ignored(p, sig):                           # do_sigaction(): discard the pending one
            p.sig_pending.pop(sig, None)
    return 0


def sys_rt_sigprocmask(k, p, how, nset, oset, sigsetsize):
    state(p)
    if sigsetsize != 8:
        return -errno.EINVAL
    old = p.sig_blocked
    if nset:
        new = struct.unpack("<Q", read_user(k, p, nset, 8))[0]
        if how == SIG_BLOCK:
            blocked = old | new
        elif how == SIG_UNBLOCK:
            blocked = old & ~new
        elif how == SIG_SETMASK:
            blocked = new
        else:
            return -errno.EINVAL
        p.sig_blocked = blocked & ~UNBLOCKABLE
    if oset:
        write_user(k, p, oset, struct.pack("<Q", old))
    return 0


def sys_rt_sigpending(k, p, uset, sigsetsize):
    state(p)
    if sigsetsize > 8:
        return -errno.EINVAL
    pend = 0
    for s in p.sig_pending:
        pend |= bit(s)
    write_user(k, p, uset, struct.pack("<Q", pend & p.sig_blocked)[:sigsetsize])
    return 0


def sys_rt_sigsuspend(k, p, uset, sigsetsize):
    """Sleep with a temporary mask until a signal is delivered; -EINTR (ERESTARTNOHAND)."""
    state(p)
    if sigsetsize != 8:
        return -errno.EINVAL
    new = struct.unpack("<Q", read_user(k, p, uset, 8))[0] & ~UNBLOCKABLE
    if p.sig_saved_mask is None:
        p.sig_saved_mask = p.sig_blocked
    p.sig_blocked = new
    if deliverable(p) is None:
        raise Blocked(nohand=True)
    return -errno.EINTR


def set_user_sigmask(k, p, umask: int, sigsetsize: int) -> int:
    """set_user_sigmask() (ppoll, pselect6, epoll_pwait): the call's own blocked mask for its
    duration; the old one is kept as saved_sigmask. A call re-executed after a wake-up keeps
    the mask saved by its first entry. 0, or -EINVAL / EFault."""
    if not umask:
        return 0
    if sigsetsize != 8:
        return -errno.EINVAL
    new = struct.unpack("<Q", read_user(k, p, umask, 8))[0] & ~UNBLOCKABLE
    state(p)
    if p.sig_saved_mask is None:
        p.sig_saved_mask = p.sig_blocked
    p.sig_blocked = new
    return 0


def restore_saved_sigmask(p) -> None:
    """restore_saved_sigmask_unless(false): the call returns its result, not -EINTR, so the
    old mask is back before user mode (a signal it let in stays pending, blocked again)."""
    if p.sig_saved_mask is not None:
        p.sig_blocked, p.sig_saved_mask = p.sig_saved_mask, None


def sys_pause(k, p):
    state(p)
    if deliverable(p) is None:
        raise Blocked(nohand=True)
    return -errno.EINTR


def sys_sigaltstack(k, p, ss, oss):
    state(p)
    sp = _rd(k, "esp")
    if oss:
        ss_sp, _f, ss_size = p.sig_altstack
        write_user(k, p, oss, struct.pack("<IiI", ss_sp, sas_ss_flags(p, sp), ss_size))
    if ss:
        ss_sp, flags, size = struct.unpack("<IiI", read_user(k, p, ss, 12))
        if on_sig_stack(p, sp):
            return -errno.EPERM
        mode = flags & ~SS_AUTODISARM
        if mode not in (SS_DISABLE, SS_ONSTACK, 0):
            return -errno.EINVAL
        if mode == SS_DISABLE:
            p.sig_altstack = (0, SS_DISABLE, 0)
        else:
            if size < MINSIGSTKSZ:
                return -errno.ENOMEM
            p.sig_altstack = (ss_sp, 0, size)
    return 0


def _restore_sigcontext(k, p, sc_addr: int) -> int:
    """ia32_restore_sigcontext(); returns the restored eax."""
    sc = struct.unpack("<4I8I10I", read_user(k, p, sc_addr, SIGCONTEXT_SIZE))
    gs, fs, es, ds = sc[:4]
    regs = dict(zip(_GPRS, sc[4:12]))
    _trapno, _err, ip, _cs, flags, _sp_at, _ss, fpstate, _oldmask, _cr2 = sc[12:]
    for n in ("edi", "esi", "ebp", "esp", "ebx", "edx", "ecx", "eax"):
        _wr(k, n, regs[n])
    _wr(k, "eip", ip)
    _wr(k, "eflags", (_rd(k, "eflags") & ~FIX_EFLAGS) | (flags & FIX_EFLAGS))
    for name, v in (("gs", gs), ("fs", fs), ("es", es), ("ds", ds)):
        if (v & 0xFFFF) != _rd(k, name):
            _wr(k, name, v & 0xFFFF)
    _restore_fpu(k, p, fpstate)
    return regs["eax"]


def _bad_frame(k, p, what: str):
    do_exit(k, p, death=Death(SIGSEGV, None, None, f"{what}: bad signal frame", _rd(k, "eip"),
                             code=SI_KERNEL))
    return None


def sys_rt_sigreturn(k, p):
    state(p)
    frame = (_rd(k, "esp") - 4) & 0xFFFFFFFF
    try:
        mask = struct.unpack("<Q", read_user(k, p, frame + RT_OFF_UC + UC_OFF_SIGMASK, 8))[0]
        p.sig_blocked = mask & ~UNBLOCKABLE
        eax = _restore_sigcontext(k, p, frame + RT_OFF_UC + UC_OFF_MCONTEXT)
        ss_sp, ss_flags, ss_size = struct.unpack("<IiI", read_user(k, p, frame + RT_OFF_UC + UC_OFF_STACK, 12))
    except EFault:
        return _bad_frame(k, p, "rt_sigreturn")
    if not on_sig_stack(p, _rd(k, "esp")):            # compat_restore_altstack (errors ignored)
        if ss_flags & SS_DISABLE:
            p.sig_altstack = (0, SS_DISABLE, 0)
        elif ss_size >= MINSIGSTKSZ:
            p.sig_altstack = (ss_sp, 0, ss_size)
    return _s32(eax)


def sys_sigreturn(k, p):
    state(p)
    frame = (_rd(k, "esp") - 8) & 0xFFFFFFFF
    try:
        lo = struct.unpack("<I", read_user(k, p, frame + SF_OFF_SC + 80, 4))[0]
        hi = struct.unpack("<I", read_user(k, p, frame + SF_OFF_EXTRAMASK, 4))[0]
        p.sig_blocked = ((hi << 32) | lo) & ~UNBLOCKABLE
        eax = _restore_sigcontext(k, p, frame + SF_OFF_SC)
    except EFault:
        return _bad_frame(k, p, "sigreturn")
    return _s32(eax)


def _kill_targets(k, p, pid: int):
    live = [q for q in k.procs.values() if q.state in ("runnable", "blocked")]
    if pid > 0:
        return [q for q in live if q.pid == pid]
    if pid == -1:                                     # everyone but init and the caller
        return [q for q in live if q is not p]
    return live                                       # 0 / -pgrp: one process group here


def sys_kill(k, p, pid, sig, code=SI_USER):
    pid = _s32(pid)
    if not 0 <= sig <= NSIG:
        return -errno.EINVAL
    targets = _kill_targets(k, p, pid)
    if not targets:
        return -errno.ESRCH          # host processes are out of reach
    if sig == 0:
        return 0
    for q in targets:
        send_signal(k, q, sig, SigInfo(sig, code, p.pid, 0))
    return 0


def sys_tkill(k, p, tid, sig):
    if _s32(tid) <= 0:
        return -errno.EINVAL
    return sys_kill(k, p, tid, sig, SI_TKILL)


def sys_tgkill(k, p, tgid, tid, sig):
    if _s32(tid) <= 0 or _s32(tgid) <= 0:
        return -errno.EINVAL
    if _s32(tgid) != _s32(tid):
        return -errno.ESRCH
    return sys_kill(k, p, tid, sig, SI_TKILL)


def sigpipe(k, p) -> None:
    """pipe_write() with no reader: send_sig(SIGPIPE, current, 0); the write returns -EPIPE."""
    send_signal(k, p, SIGPIPE, SigInfo(SIGPIPE, SI_KERNEL))

