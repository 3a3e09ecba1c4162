"""The live kernel as an oracle: run a program and stop it at its first user instruction.

This module has no third-party dependencies (ctypes, os, resource and the standard library only).

How it works (the method of the kernel-loader facts, section 0):

1. ``fork()``.  The child calls ``ptrace(PTRACE_TRACEME)``, sets its personality (by default
   ``ADDR_NO_RANDOMIZE``: ASLR off), optionally ``setrlimit(RLIMIT_STACK)`` and ``chdir()``, and
   calls ``execve(path, argv, envp)`` through ctypes, with exactly the argv and envp given (an empty
   argv is passed as ``{NULL}``, which ``os.execve`` would refuse; env order is preserved).
2. If ``execve()`` returns, the child writes ``(stage, errno)`` into a ``O_CLOEXEC`` pipe and
   ``_exit``\\ s.  The parent turns that into :class:`ExecFailed` (or :class:`ChildSetupError` when a
   step before ``execve()`` failed).
3. If the exec passes the point of no return, the pipe is closed by the kernel (close-on-exec).  Then
   either the new image is complete and, because the task is traced, the kernel queues a ``SIGTRAP``
   that stops the task before its first user instruction (``WIFSTOPPED``, ``WSTOPSIG == SIGTRAP``),
   or loading fails after the point of no return and the kernel kills the task with a fatal signal
   (``WIFSIGNALED``, normally ``SIGSEGV``; there is no ptrace stop): :class:`ExecKilled`.
4. At the stop the parent reads ``/proc/PID/maps``, the registers (``PTRACE_GETREGS``), the mm fields of
   ``/proc/PID/stat``, ``/proc/PID/auxv`` and the initial stack (argc, argv, envp, auxv) through
   ``/proc/PID/mem``.
5. The child is always killed (``SIGKILL``) and reaped, also on exceptions and on timeouts.  Waiting
   is bounded by ``timeout``; no call can hang on the child.

Threads: ptrace requests are only accepted from the thread that forked the tracee, so use a
:class:`LiveProcess` (regs are captured up front, but :meth:`LiveProcess.kill` must reap) in the thread
that created it.  The parent must not ignore SIGCHLD (children would be auto-reaped).

Observations on the x86-64 6.18 kernel (see ``tests/test_live_oracle.py``):

* ``/proc/PID/auxv`` of an i386 (compat) task holds 32-bit ``(type, value)`` pairs (``mm->saved_auxv``
  is filled by the compat ``create_elf_tables``), but ``auxv_read()`` scans for the terminator in
  64-bit units, so the file may carry extra zero words after ``AT_NULL`` (24 pairs + 2 zero pairs =
  208 bytes for a normal program).  It is parsed with the word size of the task and cut at the first
  ``AT_NULL``.  The auxv read from the stack (:attr:`LiveProcess.auxv`) is the authoritative one.
* A failure after the point of no return kills the task with ``SIGSEGV`` (``force_fatal_sig``); the
  tracer sees no signal-delivery stop, only the death.
* A live verdict costs about 2 ms (fork of the Python process + exec + kill + reap).
* Reading memory through ``/proc/PID/mem`` faults the pages in (FOLL_FORCE), so it changes what
  ``/proc/PID/pagemap`` reports afterwards: take :meth:`LiveProcess.pagemap` readings first.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import functools
import os
import resource
import select
import signal
import struct
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, Mapping, Sequence, Union

__all__ = [
    "ADDR_NO_RANDOMIZE", "ADDR_LIMIT_3GB", "ADDR_COMPAT_LAYOUT", "READ_IMPLIES_EXEC",
    "MMAP_PAGE_ZERO", "ADDR_LIMIT_32BIT", "SHORT_INODE", "WHOLE_SECONDS", "STICKY_TIMEOUTS",
    "LiveVerdict", "LiveProcess", "PagemapEntry",
    "LiveOracleError", "ExecFailed", "ExecKilled", "ChildSetupError", "LiveTimeout",
    "can_run_i386", "run_to_entry", "live_verdict", "tiny_i386_elf",
]

# --- personality(2) flags (include/uapi/linux/personality.h) ---------------------------------------
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

AT_NULL = 0
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

# Stages of the child, reported with the errno through the pipe.
_STAGE_PTRACE, _STAGE_PERSONALITY, _STAGE_RLIMIT, _STAGE_CHDIR, _STAGE_EXECVE, _STAGE_PYTHON = range(6)
_STAGE_NAMES = ["ptrace(PTRACE_TRACEME)", "personality()", "setrlimit(RLIMIT_STACK)", "chdir()",
                "execve()", "child setup (Python exception)"]
_REPORT = struct.Struct("=ii")

EnvLike = Union[Mapping[str, str], Sequence[Union[str, bytes]]]


# --- results and errors -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class LiveVerdict:
    """What execve() did: ``"ok"`` (reached the first instruction), ``"errno"`` (execve returned -1
    with :attr:`errno`) or ``"killed"`` (passed the point of no return and died with :attr:`signal`)."""

    result: str
    errno: int | None = None
    signal: int | None = None

    def __str__(self) -> str:
        if self.result == "errno":
            return f"errno {self.errno} ({_errno.errorcode.get(self.errno or 0, '?')})"
        if self.result == "killed":
            return f"killed by signal {self.signal} ({_signame(self.signal)})"
        return self.result


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
        super().__init__(f"killed during exec by signal {sig} ({_signame(sig)})")


class ChildSetupError(LiveOracleError):
    """A step before execve() failed in the child (ptrace, personality, setrlimit, chdir), or the child
    ended in an unexpected way.  Not a verdict about the program."""

    def __init__(self, message: str, stage: int | None = None, err: int | None = None):
        self.stage = stage
        self.errno = err
        super().__init__(message)


class LiveTimeout(LiveOracleError):
    """The child did not reach the exec stop (or die) within the timeout; it has been killed."""


def _signame(sig: int | None) -> str:
    try:
        return signal.Signals(sig).name  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return "?"


@dataclass(frozen=True)
class PagemapEntry:
    """One 64-bit entry of /proc/PID/pagemap (Documentation/admin-guide/mm/pagemap.rst).

    ``pfn`` is the page frame number when present (0 without CAP_SYS_ADMIN); ``swap_type`` and
    ``swap_offset`` are set when swapped.  ``file_or_shared_anon`` is bit 61 ("page is file-page or
    shared-anon"); ``exclusive`` is bit 56 ("page exclusively mapped")."""

    raw: int

    @property
    def present(self) -> bool:
        return bool(self.raw >> 63 & 1)

    @property
    def swapped(self) -> bool:
        return bool(self.raw >> 62 & 1)

    @property
    def file_or_shared_anon(self) -> bool:
        return bool(self.raw >> 61 & 1)

    file = file_or_shared_anon

    @property
    def guard(self) -> bool:
        """Bit 58: guard region (MADV_GUARD_INSTALL), kernels >= 6.14."""
        return bool(self.raw >> 58 & 1)

    @property
    def uffd_wp(self) -> bool:
        return bool(self.raw >> 57 & 1)

    @property
    def exclusive(self) -> bool:
        return bool(self.raw >> 56 & 1)

    @property
    def soft_dirty(self) -> bool:
        return bool(self.raw >> 55 & 1)

    @property
    def pfn(self) -> int:
        return self.raw & ((1 << 55) - 1) if self.present else 0

    @property
    def swap_type(self) -> int | None:
        return self.raw & 0x1F if self.swapped else None

    @property
    def swap_offset(self) -> int | None:
        return (self.raw & ((1 << 55) - 1)) >> 5 if self.swapped else None

    def __repr__(self) -> str:
        flags = [n for n in ("present", "swapped", "file_or_shared_anon", "exclusive", "soft_dirty",
                             "uffd_wp", "guard") if getattr(self, n)]
        return f"PagemapEntry(raw={self.raw:#018x}, {'|'.join(flags) or 'none'}, pfn={self.pfn:#x})"


# --- libc -----------------------------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_ptrace = _libc.ptrace
_ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
_ptrace.restype = ctypes.c_long
_personality = _libc.personality
_personality.argtypes = [ctypes.c_ulong]
_personality.restype = ctypes.c_int
_execve = _libc.execve
_execve.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_char_p)]
_execve.restype = ctypes.c_int

_TRACER_64 = ctypes.sizeof(ctypes.c_void_p) == 8


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


def _getregs(pid: int) -> tuple[dict[str, int], dict[str, int]]:
    """PTRACE_GETREGS.  Returns (regs with 32-bit names, raw struct fields)."""
    regs = _UserRegs64() if _TRACER_64 else _UserRegs32()
    if _ptrace(PTRACE_GETREGS, pid, None, ctypes.byref(regs)) == -1:
        e = ctypes.get_errno()
        raise OSError(e, f"PTRACE_GETREGS({pid}): {os.strerror(e)}")
    raw = {name: getattr(regs, name) for name, _ in regs._fields_}
    if _TRACER_64:
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


def _spawn(path: str | bytes, argv: Sequence[str | bytes], env: EnvLike, *, aslr: bool,
           personality_extra: int, rlimit_stack: int | None, cwd: str | bytes | None,
           timeout: float, _pre_exec: Callable[[], None] | None = None) -> int:
    """Fork a traced child that execs ``path`` and wait until it stops at the exec SIGTRAP.

    Returns the pid of the stopped child (the caller must kill and reap it: :func:`_kill_reap`).
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
    rlim = None
    if rlimit_stack is not None:
        _soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
        if hard != resource.RLIM_INFINITY and (rlimit_stack == resource.RLIM_INFINITY or rlimit_stack > hard):
            hard = rlimit_stack  # only works as root (CAP_SYS_RESOURCE); otherwise reported as EPERM
        rlim = (rlimit_stack, hard)
    deadline = time.monotonic() + timeout

    rfd, wfd = os.pipe2(os.O_CLOEXEC)
    try:
        pid = os.fork()
    except BaseException:
        os.close(rfd)
        os.close(wfd)
        raise
    if pid == 0:  # ---- child: never returns ----
        stage = _STAGE_PYTHON
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
            stage = _STAGE_PTRACE
            if _ptrace(PTRACE_TRACEME, 0, None, None) == -1:
                raise OSError(ctypes.get_errno(), "")
            stage = _STAGE_PERSONALITY
            if _personality(persona) == -1:
                raise OSError(ctypes.get_errno(), "")
            if rlim is not None:
                stage = _STAGE_RLIMIT
                resource.setrlimit(resource.RLIMIT_STACK, rlim)
            if c_cwd is not None:
                stage = _STAGE_CHDIR
                os.chdir(c_cwd)
            if _pre_exec is not None:
                stage = _STAGE_PYTHON
                _pre_exec()
            stage = _STAGE_EXECVE
            _execve(c_path, c_argv, c_envp)
            err = ctypes.get_errno()
        except OSError as e:
            err = e.errno or _errno.EINVAL
        except BaseException:
            err = _errno.EINVAL
            stage = _STAGE_PYTHON
        try:
            os.write(wfd, _REPORT.pack(stage, err))
        finally:
            os._exit(127)

    # ---- parent ----
    os.close(wfd)
    try:
        status = _wait_for_exec(pid, rfd, deadline)
        report = _read_all(rfd)
    except BaseException:
        os.close(rfd)
        _kill_reap(pid)
        raise
    os.close(rfd)

    if os.WIFSTOPPED(status):  # the exec SIGTRAP (anything else was filtered by _wait_for_exec)
        return pid
    if os.WIFSIGNALED(status):
        raise ExecKilled(os.WTERMSIG(status))
    # exited
    if len(report) >= _REPORT.size:
        stage, err = _REPORT.unpack(report[:_REPORT.size])
        if stage == _STAGE_EXECVE:
            raise ExecFailed(err)
        raise ChildSetupError(f"{_STAGE_NAMES[stage]} failed in the child: "
                              f"{_errno.errorcode.get(err, err)} ({os.strerror(err)})", stage, err)
    raise ChildSetupError(f"child exited with status {os.waitstatus_to_exitcode(status)} "
                          f"without reaching the exec stop")


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
                _ptrace(PTRACE_CONT, pid, None, ctypes.c_void_p(inject))
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


def _kill_reap(pid: int) -> None:
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


# --- the stopped process --------------------------------------------------------------------------------

STAT_MM_FIELDS = {  # name -> 1-based field number in /proc/PID/stat (proc(5))
    "start_code": 26, "end_code": 27, "start_stack": 28,
    "start_data": 45, "end_data": 46, "start_brk": 47,
    "arg_start": 48, "arg_end": 49, "env_start": 50, "env_end": 51,
}


def _parse_stat_mm(text: str) -> dict[str, int]:
    rest = text[text.rindex(")") + 2:].split()  # rest[0] is field 3 (state)
    return {name: int(rest[num - 3]) for name, num in STAT_MM_FIELDS.items()}


def _parse_auxv(raw: bytes, word: int) -> list[tuple[int, int]]:
    """(type, value) pairs of ``word`` bytes each, up to and including the first AT_NULL."""
    fmt = "<" + ("I" if word == 4 else "Q") * 2
    pairs = []
    for off in range(0, len(raw) - 2 * word + 1, 2 * word):
        t, v = struct.unpack_from(fmt, raw, off)
        pairs.append((t, v))
        if t == AT_NULL:
            break
    return pairs


def _parse_maps_ranges(maps: str) -> list[tuple[int, int]]:
    out = []
    for line in maps.splitlines():
        rng = line.split(None, 1)[0] if line else ""
        if "-" in rng:
            a, b = rng.split("-")
            out.append((int(a, 16), int(b, 16)))
    return out


@dataclass(eq=False)
class LiveProcess:
    """A child stopped at its first user instruction after execve().

    Everything except :meth:`read_mem`, :meth:`pagemap` and :meth:`stack_words` was captured when the
    stop was seen.  Valid until :meth:`kill` (called automatically when :func:`run_to_entry` exits).
    """

    pid: int
    maps: str                                   # raw /proc/PID/maps at the first instruction
    auxv: list[tuple[int, int]]                 # from the stack (authoritative), incl. final AT_NULL
    regs: dict[str, int]                        # eip, esp, eflags, cs, ss, ds, es, fs, gs, eax..edi, orig_eax, fs_base, gs_base
    stat_mm: dict[str, int]                     # see STAT_MM_FIELDS
    is_32bit: bool = True                       # cs is the compat code segment (i386 task)
    word_size: int = 4
    argc: int = 0
    argv: list[tuple[int, str]] = field(default_factory=list)   # (address, string) read back from the stack
    envp: list[tuple[int, str]] = field(default_factory=list)
    proc_auxv: list[tuple[int, int]] = field(default_factory=list)  # /proc/PID/auxv, parsed, cut at AT_NULL
    proc_auxv_raw: bytes = b""                  # /proc/PID/auxv as read (may have zero padding)
    raw_regs: dict[str, int] = field(default_factory=dict, repr=False)  # the ptrace struct fields as-is
    _mem_fd: int | None = field(default=None, repr=False)
    _alive: bool = field(default=True, repr=False)

    # -- accessors ------------------------------------------------------------------------------------
    @property
    def eip(self) -> int:
        return self.regs["eip"]

    @property
    def esp(self) -> int:
        return self.regs["esp"]

    @property
    def alive(self) -> bool:
        return self._alive

    def auxv_dict(self) -> dict[int, int]:
        return {t: v for t, v in self.auxv}

    def read_mem(self, addr: int, size: int) -> bytes:
        """``size`` bytes at ``addr`` via /proc/PID/mem.  Raises OSError (EIO) for unmapped memory.

        Note: this faults the pages in (like a debugger's PEEK), changing later pagemap readings."""
        self._check_alive()
        if self._mem_fd is None:
            self._mem_fd = os.open(f"/proc/{self.pid}/mem", os.O_RDONLY | os.O_CLOEXEC)
        out = bytearray()
        while len(out) < size:
            chunk = os.pread(self._mem_fd, size - len(out), addr + len(out))
            if not chunk:
                raise OSError(_errno.EIO, f"short read at {addr + len(out):#x} in pid {self.pid}")
            out += chunk
        return bytes(out)

    def read_cstring(self, addr: int, limit: int = 1 << 20) -> bytes:
        """NUL-terminated bytes at ``addr`` (without the NUL), read page-wise."""
        out = bytearray()
        while len(out) < limit:
            a = addr + len(out)
            n = min(PAGE_SIZE - a % PAGE_SIZE, limit - len(out))
            chunk = self.read_mem(a, n)
            i = chunk.find(b"\0")
            if i >= 0:
                return bytes(out + chunk[:i])
            out += chunk
        raise ValueError(f"no NUL within {limit} bytes at {addr:#x}")

    def stack_words(self, start: int, end: int) -> list[int]:
        """The words (of the task's word size, little endian) in [start, end)."""
        w = self.word_size
        data = self.read_mem(start, end - start)
        fmt = "<" + ("I" if w == 4 else "Q") * (len(data) // w)
        return list(struct.unpack(fmt, data[: len(data) // w * w]))

    def pagemap(self, addr: int) -> PagemapEntry:
        """The /proc/PID/pagemap entry of the page holding ``addr`` (does not fault anything in)."""
        return self.pagemap_range(addr, addr + 1)[0]

    def pagemap_range(self, start: int, end: int) -> list[PagemapEntry]:
        """One entry per page from PS(start) up to PA(end)."""
        self._check_alive()
        first = start // PAGE_SIZE
        last = (end + PAGE_SIZE - 1) // PAGE_SIZE
        fd = os.open(f"/proc/{self.pid}/pagemap", os.O_RDONLY | os.O_CLOEXEC)
        try:
            data = b""
            want = (last - first) * 8
            while len(data) < want:
                chunk = os.pread(fd, want - len(data), first * 8 + len(data))
                if not chunk:
                    break
                data += chunk
        finally:
            os.close(fd)
        return [PagemapEntry(v) for (v,) in struct.iter_unpack("<Q", data[: len(data) // 8 * 8])]

    def kill(self) -> None:
        """SIGKILL and reap the child.  Idempotent."""
        if self._mem_fd is not None:
            os.close(self._mem_fd)
            self._mem_fd = None
        if self._alive:
            self._alive = False
            _kill_reap(self.pid)

    def _check_alive(self) -> None:
        if not self._alive:
            raise LiveOracleError(f"process {self.pid} has been killed")

    # -- capture --------------------------------------------------------------------------------------
    @classmethod
    def _capture(cls, pid: int) -> "LiveProcess":
        regs, raw = _getregs(pid)
        # 0x23 is __USER32_CS on x86-64; a native i386 kernel uses 0x73 for user code in 32-bit mode.
        is_32 = (raw.get("cs") == 0x23) if _TRACER_64 else True
        if is_32:
            regs = {k: v & 0xFFFFFFFF for k, v in regs.items()}
        word = 4 if is_32 else 8
        with open(f"/proc/{pid}/maps") as f:
            maps = f.read()
        with open(f"/proc/{pid}/stat") as f:
            stat_mm = _parse_stat_mm(f.read())
        with open(f"/proc/{pid}/auxv", "rb") as f:
            proc_auxv_raw = f.read()
        p = cls(pid=pid, maps=maps, auxv=[], regs=regs, stat_mm=stat_mm, is_32bit=is_32,
                word_size=word, proc_auxv_raw=proc_auxv_raw,
                proc_auxv=_parse_auxv(proc_auxv_raw, word), raw_regs=raw)
        try:
            p._walk_stack()
        except BaseException:
            p.kill()
            raise
        return p

    def _walk_stack(self) -> None:
        """argc, argv[], envp[], auxv from the initial stack at esp (the ABI's process entry state)."""
        w = self.word_size
        esp = self.esp
        end = next((b for a, b in _parse_maps_ranges(self.maps) if a <= esp < b), None)
        if end is None:
            raise LiveOracleError(f"esp {esp:#x} is not inside any mapping")
        data = self.read_mem(esp, end - esp)
        fmt = "<I" if w == 4 else "<Q"

        def word(i: int) -> int:
            if (i + 1) * w <= len(data):
                return struct.unpack_from(fmt, data, i * w)[0]
            # The tables may run past the VMA holding esp (a segment mapped right above it).
            try:
                raw = self.read_mem(esp + i * w, w)
            except OSError as e:
                raise LiveOracleError(f"initial stack unreadable at {esp + i * w:#x}: {e}") from None
            if len(raw) != w:
                raise LiveOracleError(f"initial stack unreadable at {esp + i * w:#x}")
            return struct.unpack(fmt, raw)[0]

        def string(addr: int) -> str:
            off = addr - esp
            if 0 <= off < len(data):
                nul = data.find(b"\0", off)
                if nul >= 0:
                    return os.fsdecode(data[off:nul])
            return os.fsdecode(self.read_cstring(addr))

        i = 0
        self.argc = word(i)
        i += 1
        self.argv = []
        for _ in range(self.argc):
            a = word(i)
            i += 1
            self.argv.append((a, string(a)))
        if word(i) != 0:
            raise LiveOracleError("argv is not NULL-terminated at argc")
        i += 1
        self.envp = []
        while (a := word(i)) != 0:
            self.envp.append((a, string(a)))
            i += 1
        i += 1
        self.auxv = []
        while True:
            t, v = word(i), word(i + 1)
            i += 2
            self.auxv.append((t, v))
            if t == AT_NULL:
                break


# --- public entry points ----------------------------------------------------------------------------------

@contextmanager
def run_to_entry(path: str | bytes, argv: Sequence[str | bytes], env: EnvLike, *, aslr: bool = False,
                 personality_extra: int = 0, rlimit_stack: int | None = None,
                 cwd: str | bytes | None = None, timeout: float = 10,
                 _pre_exec: Callable[[], None] | None = None) -> Iterator[LiveProcess]:
    """Exec ``path`` with exactly ``argv``/``env`` and yield it stopped at its first user instruction.

    ``env`` is a mapping (``k=v`` in insertion order) or a list of raw ``"k=v"`` strings (any content,
    order kept).  Unless ``aslr``, the personality is ``ADDR_NO_RANDOMIZE | personality_extra``; with
    ``aslr`` it is ``personality_extra`` (the parent's personality is never inherited).  ``path`` is
    resolved after ``chdir(cwd)``, as the kernel would.  ``rlimit_stack`` sets the soft RLIMIT_STACK
    (and the hard one, if it must be raised).

    Raises :class:`ExecFailed` (execve returned an errno), :class:`ExecKilled` (died during exec),
    :class:`ChildSetupError`, :class:`LiveTimeout`.  The child is killed and reaped on exit.
    ``_pre_exec`` is a test hook run in the child just before execve().
    """
    pid = _spawn(path, argv, env, aslr=aslr, personality_extra=personality_extra,
                 rlimit_stack=rlimit_stack, cwd=cwd, timeout=timeout, _pre_exec=_pre_exec)
    proc = None
    try:
        proc = LiveProcess._capture(pid)
        yield proc
    finally:
        if proc is not None:
            proc.kill()
        else:
            _kill_reap(pid)


def live_verdict(path: str | bytes, argv: Sequence[str | bytes], env: EnvLike, *, aslr: bool = False,
                 personality_extra: int = 0, rlimit_stack: int | None = None,
                 cwd: str | bytes | None = None, timeout: float = 10) -> LiveVerdict:
    """Only the outcome of execve(): ok / errno / killed.  Nothing is read from the process, and no
    process is left behind.  ChildSetupError and LiveTimeout are raised (they are not verdicts)."""
    try:
        pid = _spawn(path, argv, env, aslr=aslr, personality_extra=personality_extra,
                     rlimit_stack=rlimit_stack, cwd=cwd, timeout=timeout)
    except ExecFailed as e:
        return LiveVerdict("errno", errno=e.errno)
    except ExecKilled as e:
        return LiveVerdict("killed", signal=e.signal)
    _kill_reap(pid)
    return LiveVerdict("ok")


def maps_at_exit(path: str | bytes, argv: Sequence[str | bytes], env: EnvLike, *,
                 stdin_path: str | None = None, timeout: float = 20) -> tuple[str, str]:
    """Run the program (ASLR off) under PTRACE_SYSCALL and return (/proc/PID/maps, stdout) at the
    entry of its exit/exit_group system call: the final memory map, to compare with an emulated
    run's. Only single-process programs: a fork would escape the tracer's view."""
    import tempfile

    out = tempfile.TemporaryFile()
    saved = os.dup(1), os.dup(0)
    fin = os.open(stdin_path or os.devnull, os.O_RDONLY)
    try:
        os.dup2(out.fileno(), 1)
        os.dup2(fin, 0)
        pid = _spawn(path, argv, env, aslr=False, personality_extra=0, rlimit_stack=None, cwd=None,
                     timeout=timeout, _pre_exec=None)
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 0)
        os.close(saved[0])
        os.close(saved[1])
        os.close(fin)
    deadline = time.monotonic() + timeout
    try:
        while True:
            _ptrace(PTRACE_SYSCALL, pid, None, None)
            while True:
                wpid, status = os.waitpid(pid, os.WNOHANG)
                if wpid == pid:
                    break
                if time.monotonic() > deadline:
                    raise LiveTimeout(f"{path!r} did not exit in time; killed")
                time.sleep(0.0005)
            if not os.WIFSTOPPED(status):
                raise LiveOracleError(f"{path!r} ended before exit_group could be seen")
            regs, _ = _getregs(pid)
            if regs.get("orig_eax") in (1, 252):          # __NR_exit, __NR_exit_group (i386)
                with open(f"/proc/{pid}/maps") as f:
                    maps = f.read()
                out.seek(0)
                return maps, out.read().decode("utf-8", "replace")
    finally:
        _kill_reap(pid)
        out.close()


# --- capability probe -----------------------------------------------------------------------------------

TINY_BASE = 0x08048000


def tiny_i386_elf(exit_code: int = 0) -> bytes:
    """A minimal ET_EXEC i386 ELF: header, one PT_LOAD (R+X, the whole file at 0x08048000) and
    ``mov eax,1; mov ebx,exit_code; int 0x80``.  Its entry is ``TINY_BASE + 84``."""
    code = b"\xb8\x01\x00\x00\x00" + b"\xbb" + struct.pack("<I", exit_code & 0xFFFFFFFF) + b"\xcd\x80"
    ehsize, phentsize = 52, 32
    entry = TINY_BASE + ehsize + phentsize
    size = ehsize + phentsize + len(code)
    ident = b"\x7fELF" + bytes([1, 1, 1, 0]) + bytes(8)          # ELFCLASS32, LSB, EV_CURRENT, SYSV
    ehdr = ident + struct.pack("<HHIIIIIHHHHHH", 2, 3, 1, entry, ehsize, 0, 0,
                               ehsize, phentsize, 1, 0, 0, 0)
    phdr = struct.pack("<IIIIIIII", 1, 0, TINY_BASE, TINY_BASE, size, size, 5, 0x1000)
    return ehdr + phdr + code


@functools.lru_cache(maxsize=None)
def can_run_i386() -> tuple[bool, str]:
    """(True, "") when i386 programs can be exec'd and stopped at entry here, else (False, reason).

    Checks: Linux on x86, /proc present, and an actual run of :func:`tiny_i386_elf` under ptrace that
    must stop at its entry point in 32-bit mode.  Cached for the life of the process."""
    if not sys.platform.startswith("linux"):
        return False, f"not Linux (sys.platform={sys.platform})"
    machine = os.uname().machine
    if machine not in ("x86_64", "i386", "i486", "i586", "i686"):
        return False, f"not an x86 host (machine={machine})"
    if not os.path.exists("/proc/self/maps"):
        return False, "/proc is not mounted"
    image = tiny_i386_elf(0)
    entry = TINY_BASE + 84
    dirs = [tempfile.gettempdir(), "/dev/shm", os.getcwd()]
    last = "no writable, exec-capable directory for the probe"
    for d in dirs:
        try:
            fd, probe = tempfile.mkstemp(prefix="elfvm-probe-", dir=d)
        except OSError:
            continue
        try:
            os.write(fd, image)
            os.close(fd)
            os.chmod(probe, 0o700)
            try:
                with run_to_entry(probe, [probe], {}, timeout=10) as p:
                    if p.eip != entry:
                        return False, f"i386 probe stopped at {p.eip:#x}, expected {entry:#x}"
                    if _TRACER_64 and not p.is_32bit:
                        return False, f"i386 probe is not running in 32-bit mode (cs={p.raw_regs.get('cs'):#x})"
                    return True, ""
            except ExecFailed as e:
                if e.errno == _errno.EACCES:  # noexec mount: try the next directory
                    last = f"cannot exec the probe in {d} (EACCES; noexec?)"
                    continue
                if e.errno == _errno.ENOEXEC:
                    return False, ("the kernel refuses i386 ELF programs (ENOEXEC): no IA32 emulation "
                                   "(CONFIG_IA32_EMULATION off or ia32_emulation=0)")
                return False, f"i386 probe: {e}"
            except ChildSetupError as e:
                if e.stage == _STAGE_PTRACE:
                    return False, f"ptrace is not permitted: {e}"
                return False, f"i386 probe: {e}"
            except LiveOracleError as e:
                return False, f"i386 probe: {e}"
        finally:
            try:
                os.unlink(probe)
            except OSError:
                pass
    return False, last
