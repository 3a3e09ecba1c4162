"""ptrace and process control on the host: the libc bindings, a traced child stopped at its exec,
its registers, and killing it. Used by the live oracle (elfvm.oracle), `translate --pid`
(elfvm.mmu.live) and the live fault counter (elfvm.emu.livefaults)."""

from __future__ import annotations

import ctypes
import errno as _errno
import os
import resource
import select
import signal
import struct
import time
from typing import Callable, Mapping, NoReturn, Sequence, Union

ADDR_NO_RANDOMIZE = 0x0040000
MMAP_PAGE_ZERO = 0x0100000
ADDR_COMPAT_LAYOUT = 0x0200000
READ_IMPLIES_EXEC = 0x0400000
ADDR_LIMIT_32BIT = 0x0800000
SHORT_INODE = 0x1000000
WHOLE_SECONDS = 0x2000000
STICKY_TIMEOUTS = 0x4000000
ADDR_LIMIT_3GB = 0x8000000

# --- ptrace requests ----------------------------------------------------------------------------------
PTRACE_TRACEME = 0
PTRACE_CONT = 7
PTRACE_SYSCALL = 24
PTRACE_GETREGS = 12
PTRACE_SETOPTIONS = 0x4200
PTRACE_O_TRACEEXIT = 0x40
PTRACE_EVENT_EXIT = 6

# Stages of the child, reported with the errno through the pipe.
STAGE_PTRACE, STAGE_PERSONALITY, STAGE_RLIMIT, STAGE_CHDIR, STAGE_EXECVE, STAGE_PYTHON = range(6)
STAGE_NAMES = ["ptrace(PTRACE_TRACEME)", "personality()", "setrlimit(RLIMIT_STACK)", "chdir()",
                "execve()", "child setup (Python exception)"]
_REPORT = struct.Struct("=ii")

EnvLike = Union[Mapping[str, str], Sequence[Union[str, bytes]]]


class LiveOracleError(Exception):
    """Base class of everything this module raises about the child."""


class ExecFailed(LiveOracleError):
    """execve() returned -1 in the child; :attr:`errno` is its errno."""

    def __init__(self, err: int):
        self.errno = err
        super().__init__(f"execve failed: {_errno.errorcode.get(err, err)} ({os.strerror(err)})")


class ExecKilled(LiveOracleError):
    """The child died during exec (after the point of no return) without reaching user space."""

    def __init__(self, sig: int):
        self.signal = sig
        super().__init__(f"killed during exec by signal {sig} ({signame(sig)})")


class ChildSetupError(LiveOracleError):
    """A step before execve() failed in the child (ptrace, personality, setrlimit, chdir), or the child
    ended in an unexpected way.  Not a verdict about the program."""

    def __init__(self, message: str, stage: int | None = None, err: int | None = None):
        self.stage = stage
        self.errno = err
        super().__init__(message)


class LiveTimeout(LiveOracleError):
    """The child did not reach the exec stop (or die) within the timeout; it has been killed."""


def signame(sig: int | None) -> str:
    try:
        return signal.Signals(sig).name  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return "?"


# --- libc -----------------------------------------------------------------------------------------------

libc = ctypes.CDLL(None, use_errno=True)
ptrace = libc.ptrace
ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
ptrace.restype = ctypes.c_long
personality = libc.personality
personality.argtypes = [ctypes.c_ulong]
personality.restype = ctypes.c_int
execve = libc.execve
execve.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_char_p)]
execve.restype = ctypes.c_int

TRACER_64 = ctypes.sizeof(ctypes.c_void_p) == 8


class _UserRegs64(ctypes.Structure):
    """struct user_regs_struct of x86-64 (arch/x86/include/asm/user_64.h)."""

    _fields_ = [(n, ctypes.c_ulong) for n in (
        "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx", "rdx",
        "rsi", "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base", "gs_base",
        "ds", "es", "fs", "gs")]


class _UserRegs32(ctypes.Structure):
    """struct user_regs_struct of i386 (a 32-bit Python as tracer; untested here)."""

    _fields_ = [(n, ctypes.c_ulong) for n in (
        "ebx", "ecx", "edx", "esi", "edi", "ebp", "eax", "ds", "es", "fs", "gs", "orig_eax",
        "eip", "cs", "eflags", "esp", "ss")]


_REG_MAP_64 = {  # 32-bit name -> field of the 64-bit struct
    "eax": "rax", "ebx": "rbx", "ecx": "rcx", "edx": "rdx", "esi": "rsi", "edi": "rdi",
    "ebp": "rbp", "esp": "rsp", "eip": "rip", "eflags": "eflags", "orig_eax": "orig_rax",
    "cs": "cs", "ss": "ss", "ds": "ds", "es": "es", "fs": "fs", "gs": "gs",
    "fs_base": "fs_base", "gs_base": "gs_base",
}


def getregs(pid: int) -> tuple[dict[str, int], dict[str, int]]:
    """PTRACE_GETREGS.  Returns (regs with 32-bit names, raw struct fields)."""
    regs = _UserRegs64() if TRACER_64 else _UserRegs32()
    if ptrace(PTRACE_GETREGS, pid, None, ctypes.byref(regs)) == -1:
        e = ctypes.get_errno()
        raise OSError(e, f"PTRACE_GETREGS({pid}): {os.strerror(e)}")
    raw = {name: getattr(regs, name) for name, _ in regs._fields_}
    if TRACER_64:
        named = {k: raw[v] for k, v in _REG_MAP_64.items()}
    else:
        named = dict(raw)
    return named, raw


# --- child side -----------------------------------------------------------------------------------------

def _cstr(s: str | bytes) -> bytes:
    b = os.fsencode(s)
    if b"\0" in b:
        raise ValueError(f"argument contains a NUL byte: {s!r}")
    return b


def _env_list(env: EnvLike) -> list[bytes]:
    if isinstance(env, Mapping):
        return [_cstr(k) + b"=" + _cstr(v) for k, v in env.items()]
    return [_cstr(e) for e in env]


def _char_pp(items: list[bytes]):
    arr = (ctypes.c_char_p * (len(items) + 1))(*items, None)
    return arr


def _stack_rlimit(rlimit_stack: int | None) -> tuple[int, int] | None:
    """RLIMIT_STACK for the child: the soft limit asked for, the hard one raised to it if needed
    (only works as root, CAP_SYS_RESOURCE; otherwise the child reports EPERM)."""
    if rlimit_stack is None:
        return None
    _soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
    if hard != resource.RLIM_INFINITY and (rlimit_stack == resource.RLIM_INFINITY or rlimit_stack > hard):
        hard = rlimit_stack
    return (rlimit_stack, hard)


def _child_exec(rfd, wfd, c_path, c_argv, c_envp, persona, rlim, c_cwd, pre_exec) -> NoReturn:
    """The forked child: PTRACE_TRACEME, personality, rlimit, cwd, then execve; on failure the
    stage and errno go to the parent through `wfd`, and the child exits (never returns)."""
    stage = STAGE_PYTHON
    try:
        os.close(rfd)
        # What subprocess does with restore_signals: the exec'd image should not inherit
        # Python's SIG_IGN for SIGPIPE/SIGXFSZ, nor a blocked signal mask.
        try:
            for s in (signal.SIGPIPE, signal.SIGXFSZ):
                signal.signal(s, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, [])
        except Exception:  # best effort (e.g. not the main thread)
            pass
        stage = STAGE_PTRACE
        if ptrace(PTRACE_TRACEME, 0, None, None) == -1:
            raise OSError(ctypes.get_errno(), "")
        stage = STAGE_PERSONALITY
        if personality(persona) == -1:
            raise OSError(ctypes.get_errno(), "")
        if rlim is not None:
            stage = STAGE_RLIMIT
            resource.setrlimit(resource.RLIMIT_STACK, rlim)
        if c_cwd is not None:
            stage = STAGE_CHDIR
            os.chdir(c_cwd)
        if pre_exec is not None:
            stage = STAGE_PYTHON
            pre_exec()
        stage = STAGE_EXECVE
        execve(c_path, c_argv, c_envp)
        err = ctypes.get_errno()
    except OSError as e:
        err = e.errno or _errno.EINVAL
    except BaseException:
        err = _errno.EINVAL
        stage = STAGE_PYTHON
    try:
        os.write(wfd, _REPORT.pack(stage, err))
    finally:
        os._exit(127)


def _exec_outcome(pid: int, status: int, report: bytes) -> int:
    """The pid stopped at the exec SIGTRAP, or the exception that says why it is not."""
    if os.WIFSTOPPED(status):  # the exec SIGTRAP (anything else was filtered by _wait_for_exec)
        return pid
    if os.WIFSIGNALED(status):
        raise ExecKilled(os.WTERMSIG(status))
    # exited
    if len(report) >= _REPORT.size:
        stage, err = _REPORT.unpack(report[:_REPORT.size])
        if stage == STAGE_EXECVE:
            raise ExecFailed(err)
        raise ChildSetupError(f"{STAGE_NAMES[stage]} failed in the child: "
                              f"{_errno.errorcode.get(err, err)} ({os.strerror(err)})", stage, err)
    raise ChildSetupError(f"child exited with status {os.waitstatus_to_exitcode(status)} "
                          f"without reaching the exec stop")


def spawn(path: str | bytes, argv: Sequence[str | bytes], env: EnvLike, *, aslr: bool,
           personality_extra: int, rlimit_stack: int | None, cwd: str | bytes | None,
           timeout: float, pre_exec: Callable[[], None] | None = None) -> int:
    """Fork a traced child that execs ``path`` and wait until it stops at the exec SIGTRAP.

    Returns the pid of the stopped child (the caller must kill and reap it: :func:`kill_reap`).
    Raises ExecFailed / ExecKilled / ChildSetupError / LiveTimeout; in those cases no child is left.
    """
    # Everything the child needs is prepared here, before fork().
    c_path = _cstr(path)
    c_argv_items = [_cstr(a) for a in argv]
    c_env_items = _env_list(env)
    c_argv = _char_pp(c_argv_items)
    c_envp = _char_pp(c_env_items)
    persona = (personality_extra | (0 if aslr else ADDR_NO_RANDOMIZE)) & 0xFFFFFFFF
    c_cwd = os.fsencode(cwd) if cwd is not None else None
    rlim = _stack_rlimit(rlimit_stack)
    deadline = time.monotonic() + timeout

    rfd, wfd = os.pipe2(os.O_CLOEXEC)
    try:
        pid = os.fork()
    except BaseException:
        os.close(rfd)
        os.close(wfd)
        raise
    if pid == 0:  # ---- child: never returns ----
        _child_exec(rfd, wfd, c_path, c_argv, c_envp, persona, rlim, c_cwd, pre_exec)

    # ---- parent ----
    os.close(wfd)
    try:
        status = _wait_for_exec(pid, rfd, deadline)
        report = _read_all(rfd)
    except BaseException:
        os.close(rfd)
        kill_reap(pid)
        raise
    os.close(rfd)

    return _exec_outcome(pid, status, report)


def _read_all(fd: int) -> bytes:
    """Non-blocking read of whatever the (now dead or exec'd) child left in the pipe."""
    data = b""
    while True:
        r, _, _ = select.select([fd], [], [], 0)
        if not r:
            return data
        chunk = os.read(fd, 64)
        if not chunk:
            return data
        data += chunk


def _wait_for_exec(pid: int, rfd: int, deadline: float) -> int:
    """Wait (bounded by ``deadline``) until the child stops with SIGTRAP, exits or is killed.

    Phase 1 sleeps in select() on the pipe, which becomes readable when execve() fails (errno
    written) or when the exec passes the point of no return (close-on-exec: EOF).  waitpid(WNOHANG)
    is polled between slices anyway, in case another fork() holds a copy of the pipe's write end.
    Phase 2 polls waitpid with a short, growing sleep: the rest of the exec takes ~1 ms.
    Stops for other signals (not expected) are resumed, passing the signal on.
    """
    pipe_open = True
    nap = 0.00005
    while True:
        wpid, status = os.waitpid(pid, os.WNOHANG)
        if wpid == pid:
            if os.WIFSTOPPED(status):
                sig = os.WSTOPSIG(status)
                if sig == signal.SIGTRAP:
                    return status
                inject = 0 if sig in (signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU) else sig
                ptrace(PTRACE_CONT, pid, None, ctypes.c_void_p(inject))
                continue
            if os.WIFEXITED(status) or os.WIFSIGNALED(status):
                return status
            continue  # WIFCONTINUED
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LiveTimeout(f"child {pid} did not reach the exec stop in time; killed")
        if pipe_open:
            r, _, _ = select.select([rfd], [], [], min(remaining, 0.05))
            if r:
                # Peek without consuming: an errno report stays in the pipe for the caller.
                # EOF (exec'd) or data (failed): either way the state change is imminent.
                pipe_open = False
            continue
        time.sleep(min(nap, remaining))
        nap = min(nap * 2, 0.002)


def kill_reap(pid: int) -> None:
    """SIGKILL the child and reap it (works for a ptrace-stopped child too)."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    while True:
        try:
            wpid, status = os.waitpid(pid, 0)
        except ChildProcessError:
            return
        except InterruptedError:  # pragma: no cover (PEP 475 retries already)
            continue
        if wpid == pid and (os.WIFEXITED(status) or os.WIFSIGNALED(status)):
            return


