"""Signal numbers, actions and the pending/blocked state of a task (kernel/signal.c's data).

Sending (exit.send_signal) and delivery (elfvm.emu.signals) build on this.
"""


import struct
from dataclasses import dataclass

NSIG = 64
SIGHUP, SIGINT, SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE = 1, 2, 3, 4, 5, 6, 7, 8
SIGKILL, SIGUSR1, SIGSEGV, SIGUSR2, SIGPIPE, SIGALRM, SIGTERM = 9, 10, 11, 12, 13, 14, 15
SIGCHLD, SIGCONT, SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU, SIGURG, SIGWINCH, SIGSYS = \
    17, 18, 19, 20, 21, 22, 23, 28, 31
SIG_DFL, SIG_IGN = 0, 1
SA_NOCLDSTOP, SA_NOCLDWAIT, SA_SIGINFO = 0x1, 0x2, 0x4
SA_RESTORER, SA_ONSTACK, SA_RESTART = 0x04000000, 0x08000000, 0x10000000
SA_NODEFER, SA_RESETHAND = 0x40000000, 0x80000000
SIG_BLOCK, SIG_UNBLOCK, SIG_SETMASK = 0, 1, 2
SS_ONSTACK, SS_DISABLE, SS_AUTODISARM = 1, 2, 1 << 31
MINSIGSTKSZ = 2048
# si_code values
SI_USER, SI_KERNEL, SI_TKILL = 0, 0x80, -6
SEGV_MAPERR, SEGV_ACCERR = 1, 2
BUS_ADRALN, BUS_ADRERR = 1, 2
FPE_INTDIV, ILL_ILLOPN = 1, 2
CLD_EXITED, CLD_KILLED, CLD_DUMPED = 1, 2, 3

NR_SIGRETURN, NR_RT_SIGRETURN = 119, 173
FAULT_SIGNALS = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP}
SYNCHRONOUS = {SIGSEGV, SIGBUS, SIGILL, SIGTRAP, SIGFPE, SIGSYS}
DEFAULT_IGNORED = {SIGCHLD, SIGCONT, SIGURG, SIGWINCH}
STOP_SIGNALS = {SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU}   # stopping is not modelled: ignored
COREDUMP = {SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGSEGV, SIGSYS}
UNBLOCKABLE = (1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1))
FIX_EFLAGS = 0x40000 | 0x800 | 0x400 | 0x100 | 0x80 | 0x40 | 0x10 | 0x4 | 0x1 | 0x10000
EFLAGS_DF, EFLAGS_TF, EFLAGS_RF = 0x400, 0x100, 0x10000
SIGINFO_SIZE = 128                # compat_siginfo_t
SIGNAL_NAMES = {1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT",
                7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 12: "SIGUSR2", 14: "SIGALRM",
                11: "SIGSEGV", 13: "SIGPIPE", 15: "SIGTERM"}


def bit(sig: int) -> int:
    return 1 << (sig - 1)


@dataclass(repr=False, eq=False)
class SigAction:
    """struct k_sigaction (the i386 rt_sigaction layout: handler, flags, restorer, mask)."""

    handler: int = SIG_DFL
    flags: int = 0
    restorer: int = 0
    mask: int = 0

    def pack(self) -> bytes:
        return struct.pack("<IIIQ", self.handler, self.flags & 0xFFFFFFFF, self.restorer, self.mask)


@dataclass(repr=False, eq=False)
class SigInfo:
    """compat_siginfo_t, as far as elfvm fills it. One per signal sent, read when delivered:
    not frozen (cheaper to create at start-up)."""

    signo: int
    code: int = SI_USER
    pid: int = 0
    uid: int = 0
    addr: int | None = None
    status: int | None = None
    timer: tuple | None = None        # SI_TIMER: (timer id, overrun, sigev_value)

    def pack(self) -> bytes:
        b = bytearray(SIGINFO_SIZE)
        struct.pack_into("<iii", b, 0, self.signo, 0, self.code)
        if self.timer is not None:                        # _timer
            struct.pack_into("<iiI", b, 12, *self.timer)
        elif self.addr is not None:                       # _sigfault
            struct.pack_into("<I", b, 12, self.addr & 0xFFFFFFFF)
        else:                                             # _kill / _sigchld
            struct.pack_into("<iI", b, 12, self.pid, self.uid)
            if self.status is not None:
                struct.pack_into("<iii", b, 20, self.status, 0, 0)
        return bytes(b)


def state(p):
    """The signal fields of a Process (kept on it; created on first use)."""
    if not hasattr(p, "sig_blocked"):
        p.sig_blocked = 0
        p.sig_pending = {}                 # sig -> SigInfo
        p.sig_saved_mask = None            # sigsuspend's saved mask (restore_saved_sigmask)
        p.sig_altstack = (0, SS_DISABLE, 0)
    return p


def action(p, sig: int) -> SigAction:
    a = p.sigactions.get(sig)
    if isinstance(a, SigAction):
        return a
    return SigAction(a or SIG_DFL)


def ignored(p, sig: int) -> bool:
    """sig_handler_ignored(): SIG_IGN, or SIG_DFL of a default-ignored signal."""
    h = action(p, sig).handler
    return h == SIG_IGN or (h == SIG_DFL and (sig in DEFAULT_IGNORED or sig in STOP_SIGNALS))


def fork_signals(parent, child) -> None:
    """copy_process(): actions, blocked mask and sigaltstack are inherited; pending is not."""
    state(parent)
    state(child)
    child.sig_blocked = parent.sig_blocked
    child.sig_altstack = parent.sig_altstack


def deliverable(p) -> int | None:
    """next_signal(): the synchronous signals first, then the lowest number, not blocked."""
    state(p)
    cands = [s for s in p.sig_pending if not p.sig_blocked & bit(s)]
    for s in [s for s in cands if ignored(p, s)]:     # get_signal() would discard these
        del p.sig_pending[s]
        cands.remove(s)
    if not cands:
        return None
    sync = [s for s in cands if s in SYNCHRONOUS]
    return min(sync or cands)
