"""The process execve() produced (elfvm.kernel.binfmt_elf) put on the emulated machine: its mm,
the pages the loader wrote (stack, bss tails) and the registers at the first instruction.
"""

from __future__ import annotations

import os

from elfvm.emu.fork import new_pid
from elfvm.emu.memory import PAGE
from elfvm.emu.pages import alloc_frame, file_inode, map_page, new_page_tables, set_pte
from elfvm.emu.state import result_rlimit
from elfvm.emu.task import Process, Pte
from elfvm.emu.vfs import Inode
from elfvm.mm.vma import PROT_EXEC, PROT_WRITE, page_start


def spawn(k, result, stdio: dict) -> Process:
    """The process execve() produced: its mm, the pages the kernel wrote, registers."""
    pid = new_pid(k)
    p = Process(pid, 1, result.mm, new_page_tables(k, pid), rlimit_stack=result_rlimit(result))
    p.exe = os.path.abspath(result.program)
    k.procs[pid] = p
    k.by_mi = {0: p}
    for img in result.images.values():
        k.file_inodes[img.display] = Inode(img.display.path, img.file.path, os.stat(img.file.path))
    p.fds = dict(stdio)
    install_exec_pages(k, p, result)
    k.current = p
    k.frames.write(k.gdt_frame, bytes(k.segments.gdt()))
    begin = k.cpu.enter_user(k.gdt_frame, k.stub_frame, result.eip, result.stack.esp)
    p.context = None
    p.start_at = begin
    return p


def install_exec_pages(k, p: Process, result) -> None:
    """The pages present at the first instruction: stack pages with the bytes
    create_elf_tables wrote, and padzero'd bss-tail pages (a COW copy of the file page)."""
    st = result.stack
    tails = {}
    for img in result.images.values():
        for ph in img.phdrs:
            if ph.p_type == 1 and ph.p_memsz > ph.p_filesz and ph.p_filesz:
                zs = (img.load_bias + ph.p_vaddr + ph.p_filesz) & 0xFFFFFFFF
                tails[page_start(zs)] = zs
    for pa in sorted(result.present_pages):
        vma = p.mm.vma_at(pa)
        if vma is None:
            continue
        fi = alloc_frame(k, "exec", anon=True)
        if vma.growsdown or pa >= st.image_base - PAGE and vma.file is None:
            lo, hi = max(pa, st.image_base), min(pa + PAGE, st.image_base + len(st.image))
            data = bytearray(PAGE)
            if lo < hi:
                data[lo - pa:hi - pa] = st.image[lo - st.image_base:hi - st.image_base]
            k.frames.write(fi.addr, bytes(data))
        elif vma.file is not None:
            ino = file_inode(k, vma.file)
            index = (vma.pgoff + (pa - vma.start)) >> 12
            data = bytearray(ino.pread(index * PAGE, PAGE).ljust(PAGE, b"\0"))
            zs = tails.get(pa)
            if zs is not None:
                data[zs - pa:] = bytes(PAGE - (zs - pa))
            k.frames.write(fi.addr, bytes(data))
        else:
            k.frames.fill(fi.addr, b"")
        set_pte(k, p, pa >> 12, Pte(fi.addr, bool(vma.prot & PROT_WRITE), bool(vma.prot & PROT_EXEC)))
        # resident before the first instruction: execve's own faults, not the run's
        map_page(k, p, pa >> 12, dirty=True)
        k.pages_at_exec += 1
        if k.trace is not None:
            k.trace.record(p.pid, "S", pa, PAGE)
