"""The tasks of the emulated kernel (the bottom of elfvm.emu): a process's state, why it died,
the fault events it raised, and the exceptions a system call raises to sleep or to fail with
-EFAULT. Nothing here runs kernel code.
"""


from dataclasses import dataclass, field

from elfvm.emu.sigstate import SIGNAL_NAMES
from elfvm.mm.vma import Mm

FIRST_PID = 100


@dataclass(repr=False, eq=False)
class Pte:
    """A present last-level entry as read from the page tables (elfvm.emu.pages.follow_pte):
    a decoded value, never stored."""

    frame: int
    write: bool
    exec: bool


@dataclass(repr=False, eq=False)
class FaultEvent:
    """One page fault as the kernel resolved it (the report's event log)."""

    seq: int
    pid: int
    addr: int
    access: str             # r | w | x
    kind: str               # first-touch | zero-page | file | cow | stack-growth | swap-in
    handler: str            # the kernel function that resolved it
    eip: int
    mapped: int = 1         # pages mapped by this fault (fault-around maps several)
    kernel: bool = False    # raised by the kernel copying to/from user memory in a syscall


@dataclass(repr=False, eq=False)
class Death:
    """Why a process died of a signal."""

    signal: int
    addr: int | None = None
    access: str | None = None
    reason: str = ""
    eip: int | None = None
    code: int = 0           # si_code (SEGV_MAPERR, SEGV_ACCERR, BUS_ADRERR, FPE_INTDIV...)
    trapno: int = 0         # the CPU exception (14: page fault), for the sigcontext
    err: int = 0            # its error code (page fault: P | W | U | I)

    @property
    def name(self) -> str:
        return SIGNAL_NAMES.get(self.signal, f"signal {self.signal}")


class EFault(Exception):
    """copy_to/from_user hit an address that cannot be faulted in: the syscall returns -EFAULT."""


@dataclass(repr=False, eq=False)
class Process:
    """A simulated task (task_struct): its mm and page tables, files, signals, CPU context."""

    pid: int
    ppid: int
    mm: Mm
    pt: object                       # elfvm.mmu.paging.PageTables
    fds: dict = field(default_factory=dict)           # fd -> OpenFile
    cloexec: set = field(default_factory=set)
    context: object = None
    state: str = "runnable"          # runnable | blocked | zombie | reaped
    exit_code: int | None = None
    death: Death | None = None
    tls: dict = field(default_factory=dict)           # GDT index -> descriptor bytes
    tid_address: int = 0
    robust_list: int = 0             # set_robust_list()'s head (struct robust_list_head *)
    mi: int = 0                      # the process's number in the paging model
    set_eax: int | None = None       # return value to put in eax when next scheduled (fork child)
    sigactions: dict = field(default_factory=dict)
    shm_attach: dict = field(default_factory=dict)    # addr -> shmid
    rlimit_stack: int = 8 << 20
    exe: str = ""
    forked_by: int | None = None     # the parent's pid for a forked process (ppid may change)
    sig_blocked: int = 0             # the blocked mask (bit sig-1); elfvm.emu.signals
    sig_pending: dict = field(default_factory=dict)   # sig -> SigInfo
    sig_saved_mask: int | None = None                 # sigsuspend's mask to restore
    sig_altstack: tuple = (0, 2, 0)                   # sigaltstack: sp, flags, size (SS_DISABLE)
    sig_restart: bool = False        # asleep in a system call that re-executes when woken
    images: list = field(default_factory=list)        # guest paths of each image it exec'd
    prctl: dict = field(default_factory=dict)         # prctl state: comm, dumpable...
    argv: list = field(default_factory=list)          # of the current image (/proc/PID/cmdline)
    envp: list = field(default_factory=list)
    tgid: int = 0                    # thread group: 0 for a leader (tgid = pid), else the leader
    vfork_parent: int | None = None  # CLONE_VFORK: the parent sleeps until this execs or exits
    futex_key: tuple | None = None   # asleep in FUTEX_WAIT on this key
    futex_woken: bool = False        # FUTEX_WAKE chose it: the restarted wait returns 0
    wake_at: int | None = None       # a timed sleep ends at this virtual-clock time (ns)
    timed_out: bool = False          # ... and the clock got there first
    old_ptes: set = field(default_factory=set)       # vpns whose PTE fork made old (A clear)
    nvcsw: int = 0                   # times it slept (voluntary_ctxt_switches)
    nivcsw: int = 0                  # times a quantum ended with it still runnable (nonvoluntary)

    @property
    def group(self) -> int:
        """getpid(): the thread group's id."""
        return self.tgid or self.pid

    @property
    def exit_status(self) -> int | None:
        """As a shell shows it: the exit code, or 128 + the signal."""
        if self.death is not None:
            return 128 + self.death.signal
        return self.exit_code


def s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


class Blocked(Exception):
    """The call must wait: the process sleeps and re-executes `int $0x80` when woken.
    A deliverable signal interrupts it: -ERESTARTSYS (restarted with SA_RESTART, else -EINTR),
    or with `nohand` (pause, sigsuspend) -ERESTARTNOHAND (-EINTR once a handler runs)."""

    def __init__(self, nohand: bool = False):
        super().__init__()
        self.nohand = nohand
