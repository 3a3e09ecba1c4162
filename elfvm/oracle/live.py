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

import errno as _errno
import functools
import os
import struct
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

from elfvm.host.procfs import (
    AT_NULL,
    PagemapEntry,
    parse_auxv,
    parse_maps,
    read_maps,
    read_pagemap,
    read_stat_mm,
)
from elfvm.host.ptrace import (
    ADDR_COMPAT_LAYOUT,
    ADDR_LIMIT_3GB,
    ADDR_LIMIT_32BIT,
    ADDR_NO_RANDOMIZE,
    MMAP_PAGE_ZERO,
    PTRACE_SYSCALL,
    READ_IMPLIES_EXEC,
    SHORT_INODE,
    STAGE_PTRACE,
    STICKY_TIMEOUTS,
    TRACER_64,
    WHOLE_SECONDS,
    ChildSetupError,
    EnvLike,
    ExecFailed,
    ExecKilled,
    LiveOracleError,
    LiveTimeout,
    getregs,
    kill_reap,
    ptrace,
    signame,
    spawn,
)
from elfvm.units import PAGE_SIZE

__all__ = [
    "ADDR_NO_RANDOMIZE", "ADDR_LIMIT_3GB", "ADDR_COMPAT_LAYOUT", "READ_IMPLIES_EXEC",
    "MMAP_PAGE_ZERO", "ADDR_LIMIT_32BIT", "SHORT_INODE", "WHOLE_SECONDS", "STICKY_TIMEOUTS",
    "LiveVerdict", "LiveProcess", "PagemapEntry",
    "LiveOracleError", "ExecFailed", "ExecKilled", "ChildSetupError", "LiveTimeout",
    "can_run_i386", "run_to_entry", "live_verdict", "tiny_i386_elf",
]

# --- personality(2) flags (include/uapi/linux/personality.h) ---------------------------------------

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
            return f"killed by signal {self.signal} ({signame(self.signal)})"
        return self.result


# --- the stopped process --------------------------------------------------------------------------------

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
        return read_pagemap(self.pid, start, end)

    def kill(self) -> None:
        """SIGKILL and reap the child.  Idempotent."""
        if self._mem_fd is not None:
            os.close(self._mem_fd)
            self._mem_fd = None
        if self._alive:
            self._alive = False
            kill_reap(self.pid)

    def _check_alive(self) -> None:
        if not self._alive:
            raise LiveOracleError(f"process {self.pid} has been killed")

    # -- capture --------------------------------------------------------------------------------------
    @classmethod
    def _capture(cls, pid: int) -> "LiveProcess":
        regs, raw = getregs(pid)
        # 0x23 is __USER32_CS on x86-64; a native i386 kernel uses 0x73 for user code in 32-bit mode.
        is_32 = (raw.get("cs") == 0x23) if TRACER_64 else True
        if is_32:
            regs = {k: v & 0xFFFFFFFF for k, v in regs.items()}
        word = 4 if is_32 else 8
        maps = read_maps(pid)
        stat_mm = read_stat_mm(pid)
        with open(f"/proc/{pid}/auxv", "rb") as f:
            proc_auxv_raw = f.read()
        p = cls(pid=pid, maps=maps, auxv=[], regs=regs, stat_mm=stat_mm, is_32bit=is_32,
                word_size=word, proc_auxv_raw=proc_auxv_raw,
                proc_auxv=parse_auxv(proc_auxv_raw, word), raw_regs=raw)
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
        end = next((b for a, b in ((m.start, m.end) for m in parse_maps(self.maps)) if a <= esp < b), None)
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
    pid = spawn(path, argv, env, aslr=aslr, personality_extra=personality_extra,
                 rlimit_stack=rlimit_stack, cwd=cwd, timeout=timeout, pre_exec=_pre_exec)
    proc = None
    try:
        proc = LiveProcess._capture(pid)
        yield proc
    finally:
        if proc is not None:
            proc.kill()
        else:
            kill_reap(pid)


def live_verdict(path: str | bytes, argv: Sequence[str | bytes], env: EnvLike, *, aslr: bool = False,
                 personality_extra: int = 0, rlimit_stack: int | None = None,
                 cwd: str | bytes | None = None, timeout: float = 10) -> LiveVerdict:
    """Only the outcome of execve(): ok / errno / killed.  Nothing is read from the process, and no
    process is left behind.  ChildSetupError and LiveTimeout are raised (they are not verdicts)."""
    try:
        pid = spawn(path, argv, env, aslr=aslr, personality_extra=personality_extra,
                     rlimit_stack=rlimit_stack, cwd=cwd, timeout=timeout)
    except ExecFailed as e:
        return LiveVerdict("errno", errno=e.errno)
    except ExecKilled as e:
        return LiveVerdict("killed", signal=e.signal)
    kill_reap(pid)
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
        pid = spawn(path, argv, env, aslr=False, personality_extra=0, rlimit_stack=None, cwd=None,
                     timeout=timeout, pre_exec=None)
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 0)
        os.close(saved[0])
        os.close(saved[1])
        os.close(fin)
    deadline = time.monotonic() + timeout
    try:
        while True:
            ptrace(PTRACE_SYSCALL, pid, None, None)
            while True:
                wpid, status = os.waitpid(pid, os.WNOHANG)
                if wpid == pid:
                    break
                if time.monotonic() > deadline:
                    raise LiveTimeout(f"{path!r} did not exit in time; killed")
                time.sleep(0.0005)
            if not os.WIFSTOPPED(status):
                raise LiveOracleError(f"{path!r} ended before exit_group could be seen")
            regs, _ = getregs(pid)
            if regs.get("orig_eax") in (1, 252):          # __NR_exit, __NR_exit_group (i386)
                maps = read_maps(pid)
                out.seek(0)
                return maps, out.read().decode("utf-8", "replace")
    finally:
        kill_reap(pid)
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
                    if TRACER_64 and not p.is_32bit:
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
                if e.stage == STAGE_PTRACE:
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
