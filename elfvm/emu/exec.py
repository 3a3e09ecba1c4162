"""The process execve() produced (elfvm.kernel.binfmt_elf) put on the emulated machine: its mm,
the pages the loader wrote (stack, bss tails) and the registers at the first instruction.
"""

from __future__ import annotations

import os

from elfvm.emu.fault import account_fault, model_fault
from elfvm.emu.fork import dup_fds, new_pid
from elfvm.emu.memory import PAGE
from elfvm.emu.pages import (alloc_frame, free_pgtables, map_page, new_page_tables, set_pte,
                             unmap_range)
from elfvm.emu.state import result_rlimit
from elfvm.emu.task import Process, Pte
from elfvm.emu.vfs import Inode
from elfvm.mm.vma import PROT_EXEC, PROT_WRITE


def spawn(k, result, stdio: dict) -> Process:
    """The first process: the image execve() produced, its pages, registers."""
    pid = new_pid(k)
    p = Process(pid, 1, result.mm, None, rlimit_stack=result_rlimit(result))
    k.procs[pid] = p
    k.by_mi = {0: p}
    p.fds = dict(stdio)
    exec_mmap(k, p, result)
    p.images.append(p.exe)
    k.current = p
    k.frames.write(k.gdt_frame, bytes(k.segments.gdt()))
    begin = k.cpu.enter_user(k.gdt_frame, k.stub_frame, result.eip, result.stack.esp)
    p.context = None
    p.start_at = begin
    return p


def exec_mmap(k, p: Process, result) -> None:
    """begin_new_exec() -> exec_mmap(): the task drops its old address space (every PTE and
    swap entry, its page tables, its shm attachments) and takes the new image's: the mm the
    loader built (elfvm.kernel.binfmt_elf.execve(req, mm=p.mm) builds it in the task's own Mm
    object, as `layout` builds it) and the pages the loader wrote. The registers are the
    caller's (Cpu.enter_user)."""
    if p.pt is not None:
        unmap_range(k, p, 0, p.mm.task_size)        # walks the page tables: no VMAs needed
        free_pgtables(k, p)
    for shmid in p.shm_attach.values():
        k.shm[shmid]["nattch"] -= 1
    p.shm_attach = {}
    take_new_mm(k, p, result, os.path.abspath(result.program))


def take_new_mm(k, p: Process, result, exe: str, counted: bool = False) -> None:
    """The second half of exec_mmap(), once the old mm is gone (or left to the vfork parent):
    new page tables, the loader's Mm, and the pages the loader wrote (`counted`: as the
    faults of this task, see install_exec_pages)."""
    p.pt = new_page_tables(k, p.pid)
    p.old_ptes = set()                              # the old mm's (a vfork parent keeps its own)
    p.mm = result.mm
    p.rlimit_stack = result_rlimit(result)
    p.exe = exe
    for img in result.images.values():
        k.file_inodes[img.display] = Inode(img.display.path, img.file.path, os.stat(img.file.path))
    install_exec_pages(k, p, result, counted)


def install_exec_pages(k, p: Process, result, counted: bool = False) -> None:
    """The pages present at the first instruction (stack pages with the bytes
    create_elf_tables wrote, padzero'd bss-tail pages: a COW copy of the file page), in the
    order and with the contents `translate`'s prediction gives them (ExecResult.exec_pages).

    Each is a fault the kernel took during execve (copy_strings' get_user_pages and
    create_elf_tables' copy_to_user on the stack: do_anonymous_page; padzero's clear_user:
    do_cow_fault), counted in the task's min_flt. The first exec's come before the run
    (`pages_at_exec`, the oracle's count starts at the exec stop); an execve inside the run
    (`counted`) adds them to the run's faults, as they are in the parent's cminflt."""
    for pa, vma, data in result.exec_pages():
        fi = alloc_frame(k, "exec", anon=True)
        k.frames.write(fi.addr, data)
        set_pte(k, p, pa >> 12, Pte(fi.addr, bool(vma.prot & PROT_WRITE), bool(vma.prot & PROT_EXEC)))
        map_page(k, p, pa >> 12, dirty=True, frame=fi.addr)
        if counted:
            kind, handler = ("first-touch", "do_anonymous_page") if vma.file is None \
                else ("cow", "do_cow_fault")
            account_fault(k, p, pa, "w", kind, handler, k.cpu.eip, kernel=True)
            model_fault(k, p, pa >> 12, kind, new_pte=False)
        else:
            k.pages_at_exec += 1
        if k.trace is not None:
            k.trace.record(p.pid, "S", pa, PAGE)


# ---------------------------------------------------------------- execve() inside a run
BINPRM_BUF_SIZE = 256          # fs/binfmt_script.c reads the #! line from this buffer
MAX_SCRIPT_DEPTH = 5           # fs/exec.c search_binary_handler(): deeper is -ELOOP
MAX_ARG_STRLEN = 32 * PAGE     # one argument or environment string
MAX_ARG_STRINGS = 0x7FFFFFFF


class ExecError(Exception):
    """execve() fails before the point of no return: the caller gets -errno."""

    def __init__(self, err: int):
        super().__init__(os.strerror(err))
        self.errno = err


def open_exec(k, path: str) -> tuple[str, bytes]:
    """do_open_execat(): the host file of a guest path, resolved inside the sysroot; a regular
    file with an execute bit (else EACCES). Returns it and its first BINPRM_BUF_SIZE bytes."""
    import errno
    import stat

    from elfvm.emu.vfs import VfsError

    try:
        ino = k.vfs.lookup(path)
    except VfsError as e:
        raise ExecError(e.errno) from None
    if ino.host is None or ino.st is None or not stat.S_ISREG(ino.st.st_mode) \
            or not ino.st.st_mode & 0o111:
        raise ExecError(errno.EACCES)
    return ino.host, ino.pread(0, BINPRM_BUF_SIZE)


def load_script(head: bytes, path: str, argv: list[str]) -> tuple[str, list[str]] | None:
    """fs/binfmt_script.c load_script(): `#!interp [one-arg]` -> interp [one-arg] path args...
    None: not a script."""
    import errno

    if head[:2] != b"#!":
        return None
    line = head[2:].split(b"\n", 1)[0] if b"\n" in head else None
    if line is None:                   # the whole buffer without a newline: truncated, ENOEXEC
        raise ExecError(errno.ENOEXEC)
    line = line.replace(b"\t", b" ").strip(b" ")
    if not line:
        raise ExecError(errno.ENOEXEC)
    interp, _, arg = line.partition(b" ")
    arg = arg.strip(b" ")
    dec = lambda b: b.decode("utf-8", "surrogateescape")  # noqa: E731
    new = [dec(interp)] + ([dec(arg)] if arg else []) + [path] + argv[1:]
    return dec(interp), new


def resolve_program(k, path: str, argv: list[str]) -> tuple[str, str, list[str]]:
    """search_binary_handler(): scripts name their interpreter, up to MAX_SCRIPT_DEPTH deep.
    Returns the ELF's host path, its guest path and the final argv."""
    import errno

    for _ in range(MAX_SCRIPT_DEPTH + 1):
        host, head = open_exec(k, path)
        script = load_script(head, path, argv)
        if script is None:
            return host, path, argv
        path, argv = script
    raise ExecError(errno.ELOOP)


def flush_old_exec(k, p: Process) -> None:
    """begin_new_exec(): the old mm goes, close-on-exec files are closed, handled signals
    go back to SIG_DFL (ignored ones stay ignored), the TLS slots and the alternate signal
    stack are cleared, clear_child_tid is forgotten."""
    from elfvm.emu.exit import close_fd, exit_mm, mm_release
    from elfvm.emu.fork import shares_mm
    from elfvm.emu.sigstate import SIG_IGN, action

    mm_release(k, p)                     # on the old mm; the vfork parent runs again
    if shares_mm(k, p):                 # a vfork child (or a thread): the mm and its page
        p.mi = k.model.add_process()     # tables stay with the others; a new model process
        k.by_mi[p.mi] = p
        p.tgid = 0
    else:
        exit_mm(k, p)
    p.shm_attach = {}
    if any(q.fds is p.fds for q in k.procs.values() if q is not p):
        p.fds, p.cloexec = dup_fds(p.fds), set(p.cloexec)    # unshare_files()
    for fd in sorted(p.cloexec):
        close_fd(k, p, fd)
    p.sigactions = {s: a for s, a in p.sigactions.items() if action(p, s).handler == SIG_IGN}
    p.sig_altstack = (0, 2, 0)
    p.tls = {}
    p.tid_address = 0


def do_execve(k, p: Process, path: str, argv: list[str], envp: list[str]) -> None:
    """execve(path, argv, envp) in a running guest: the same loader as `layout`
    (elfvm.kernel.binfmt_elf) builds the new image; it replaces the old one in this process.
    Raises ExecError before the point of no return."""
    import errno

    from elfvm.emu.exit import do_exit
    from elfvm.emu.sigstate import SIGSEGV
    from elfvm.emu.task import Death
    from elfvm.kernel.binfmt_elf import ExecRequest, UnsupportedProgram, execve

    host, gpath, argv = resolve_program(k, path, argv)
    req = ExecRequest(host, argv, envp, profile=k.profile, sysroot=k.vfs.root,
                      rlimit_stack=p.rlimit_stack, seed=k.seed, cwd=k.vfs.cwd, filename=path)
    try:
        result = execve(req)
    except UnsupportedProgram:
        raise ExecError(errno.ENOEXEC) from None
    v = result.verdict
    if v.result == "killed":           # past the point of no return: the task dies
        do_exit(k, p, death=Death(SIGSEGV, reason=f"execve {gpath}: {v.step}: {v.reason}"))
        return
    if v.result != "ok":
        raise ExecError(getattr(errno, v.errno_name or "ENOEXEC", errno.ENOEXEC))
    flush_old_exec(k, p)
    take_new_mm(k, p, result, host, counted=True)
    p.images.append(gpath)
    p.argv, p.envp = list(argv), list(envp)
    k.read_implies_exec = result.read_implies_exec
    start_thread(k, p, result)


def start_thread(k, p: Process, result) -> None:
    """start_thread(): the registers of the new image (the task is already in user mode with
    the user CS/SS: only the general registers, data segments, eflags and eip change), a
    flushed TLB, empty TLS slots in the GDT; the CPU stops so the scheduler resumes there."""
    from unicorn.x86_const import (UC_X86_REG_DS, UC_X86_REG_EAX, UC_X86_REG_EBP, UC_X86_REG_EBX,
                                   UC_X86_REG_ECX, UC_X86_REG_EDI, UC_X86_REG_EDX, UC_X86_REG_EFLAGS,
                                   UC_X86_REG_ES, UC_X86_REG_ESI, UC_X86_REG_ESP, UC_X86_REG_FS,
                                   UC_X86_REG_GS)

    from elfvm.emu.pages import flush_cpu_tlb

    s = k.segments
    for i in range(s.tls_min, s.tls_min + s.tls_entries):
        k.frames.write(k.gdt_frame + i * 8, bytes(8))
    flush_cpu_tlb(k)
    uc = k.uc
    for reg in (UC_X86_REG_EAX, UC_X86_REG_EBX, UC_X86_REG_ECX, UC_X86_REG_EDX, UC_X86_REG_ESI,
                UC_X86_REG_EDI, UC_X86_REG_EBP):
        uc.reg_write(reg, 0)
    uc.reg_write(UC_X86_REG_DS, s.user_ds)
    uc.reg_write(UC_X86_REG_ES, s.user_ds)
    uc.reg_write(UC_X86_REG_FS, 0)
    uc.reg_write(UC_X86_REG_GS, 0)
    uc.reg_write(UC_X86_REG_EFLAGS, 0x202)
    uc.reg_write(UC_X86_REG_ESP, result.stack.esp)
    k.cpu.init_fpu()
    k.cpu.eip = result.eip
    uc.emu_stop()
