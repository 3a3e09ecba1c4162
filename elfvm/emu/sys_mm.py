"""System calls on the address space: brk, mmap, munmap, mprotect, mremap, madvise (mm/)."""

from __future__ import annotations

import errno
import os
import struct

from elfvm.emu import vfs as V
from elfvm.emu.memory import PAGE
from elfvm.emu.pages import flush_cpu_tlb, map_page, present_ptes, set_pte, unmap_range
from elfvm.emu.state import KernelState
from elfvm.emu.task import Process, Pte, s32
from elfvm.emu.uaccess import read_user
from elfvm.emu.uapi import (
    MADV_DONTNEED,
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_NORESERVE,
    MAP_SHARED,
)
from elfvm.mm.vma import (
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
    FileRef,
    MmError,
    Vma,
    page_align,
)


def update_hiwater(k, p: Process) -> None:
    """update_hiwater_rss/_vm before the address space shrinks (elfvm.emu.task_mmu, the peaks
    /proc reports), imported at the first call: a run that never shrinks does not load it."""
    from elfvm.emu import task_mmu

    task_mmu.update_hiwater(k, p)


def _vm_prot(k: KernelState, p: Process, prot: int) -> int:
    if p.mm is not None and getattr(k, "read_implies_exec", False) and prot & PROT_READ:
        prot |= PROT_EXEC
    return prot & 7


def sys_brk(k, p, brk):
    """mm/mmap.c SYSCALL_DEFINE1(brk): shrink or grow the heap VMA starting at start_brk."""
    mm = p.mm
    if brk < mm.start_brk:
        return mm.brk
    newbrk, oldbrk = page_align(brk), page_align(mm.brk)
    if oldbrk == newbrk:
        mm.brk = brk
        return mm.brk
    if brk <= mm.brk:
        update_hiwater(k, p)
        mm.munmap(newbrk, oldbrk)
        unmap_range(k, p, newbrk, oldbrk)
        mm.brk = brk
        return mm.brk
    nxt = mm.find_vma(oldbrk)
    if nxt is not None and newbrk + PAGE > mm.vm_start_gap(nxt):
        return mm.brk
    prot = _vm_prot(k, p, PROT_READ | PROT_WRITE)
    # do_brk_flags() only expands a previous VMA that is itself the heap (at or above
    # start_brk): the heap never merges with the bss below it.
    prev = next((v for v in mm.vmas if v.end == oldbrk), None)
    merge = "prev" if prev is not None and prev.start >= mm.start_brk else "none"
    if oldbrk + (newbrk - oldbrk) > mm.task_size:
        return mm.brk
    mm.insert(Vma(oldbrk, newbrk, prot, kind="heap", origin=("heap", 0, "brk")), merge=merge)
    mm.brk = brk
    return mm.brk


def sys_mmap2(k, p, addr, length, prot, flags, fd, pgoff):
    return do_mmap(k, p, addr, length, prot, flags, s32(fd), pgoff * PAGE)


def sys_mmap(k, p, args_ptr):
    addr, length, prot, flags, fd, off = struct.unpack("<6I", read_user(k, p, args_ptr, 24))
    if off & (PAGE - 1):
        return -errno.EINVAL
    return do_mmap(k, p, addr, length, prot, flags, s32(fd), off)


def do_mmap(k, p, addr, length, prot, flags, fd, offset, source=None):
    mm = p.mm
    if length == 0:
        return -errno.EINVAL
    shared = flags & 0xF == MAP_SHARED or flags & 0xF == 3
    anon = bool(flags & MAP_ANONYMOUS)
    ref = None
    if not anon:
        f = p.fds.get(fd)
        if f is None or f.inode is None:
            return -errno.EBADF
        ino = f.inode
        if ino.kind == "dir":
            return -errno.ENODEV
        st = ino.st
        ref = FileRef(k.vfs.d_path(ino), os.major(st.st_dev) if st else 0, os.minor(st.st_dev) if st else 0,
                      st.st_ino if st else 0)
        k.file_inodes.setdefault(ref, ino)
        if shared and prot & PROT_WRITE and f.flags & V.O_ACCMODE == 0:
            return -errno.EACCES
    maywrite = anon or not shared or f.flags & V.O_ACCMODE != 0
    vprot = _vm_prot(k, p, prot)
    src = source or ("" if not (anon and shared) else f"shared-anon:{next(k.shmem_ids)}")

    def make(s, e):
        return Vma(s, e, vprot, offset if ref else 0, ref, shared=shared,
                   kind="file" if ref else "anon", source=src, origin=("mmap", 0, "mmap"),
                   noreserve=bool(flags & MAP_NORESERVE), maywrite=maywrite)

    fixed = bool(flags & MAP_FIXED)
    noreplace = bool(flags & MAP_FIXED_NOREPLACE)
    try:
        if fixed or noreplace:
            if addr & (PAGE - 1):
                return -errno.EINVAL
            mm_old = [v for v in mm.vmas if v.start < addr + page_align(length) and addr < v.end]
            if mm_old and noreplace:
                return -errno.EEXIST
            if mm_old:
                update_hiwater(k, p)
            unmap_range(k, p, addr, addr + page_align(length))
        res = mm.do_mmap(addr, length, fixed=fixed, noreplace=noreplace, make=make)
    except MmError as e:
        return -e.errno
    return res


def sys_munmap(k, p, addr, length):
    if addr & (PAGE - 1) or length == 0:
        return -errno.EINVAL
    end = addr + page_align(length)
    update_hiwater(k, p)
    p.mm.munmap(addr, end)
    unmap_range(k, p, addr, end)
    return 0


def sys_mprotect(k, p, addr, length, prot):
    """mprotect_fixup(): split the VMAs, new rights; present PTEs lose write (or exec) now, and
    keep it only for exclusive anonymous pages when write is added."""
    if addr & (PAGE - 1):
        return -errno.EINVAL
    end = addr + page_align(length)
    mm = p.mm
    cur, covered = addr, []
    for v in mm.vmas:
        if v.end <= addr or v.start >= end:
            continue
        if v.start > cur:
            return -errno.ENOMEM
        covered.append(v)
        cur = v.end
    if cur < end:
        return -errno.ENOMEM
    vprot = _vm_prot(k, p, prot)
    for v in covered:
        s, e = max(v.start, addr), min(v.end, end)
        piece = v.clip(s, e)
        # VM_ACCOUNT: charged when a private mapping is or becomes writable, kept after
        account = piece.account or bool((piece.prot | vprot) & PROT_WRITE) and not piece.shared
        mm.insert(piece.__class__(**{**piece.__dict__, "prot": vprot, "account": account}))
    changed = False
    for vpn, pte in list(present_ptes(p, addr, end)):
        fi = k.frames.info.get(pte.frame)
        excl = fi is not None and fi.anon and len(fi.rmap) == 1
        w = bool(vprot & PROT_WRITE) and (pte.write or excl)
        x = bool(vprot & PROT_EXEC)
        if (w, x) != (pte.write, pte.exec):
            set_pte(k, p, vpn, Pte(pte.frame, w, x))
            changed = True
    if changed:
        flush_cpu_tlb(k)
    return 0


def sys_mremap(k, p, old, old_len, new_len, flags, new_addr):
    MREMAP_MAYMOVE = 1
    old_len, new_len = page_align(old_len), page_align(new_len)
    mm = p.mm
    v = mm.vma_at(old)
    if v is None or old & (PAGE - 1):
        return -errno.EFAULT
    if new_len <= old_len:
        if new_len < old_len:
            update_hiwater(k, p)
            mm.munmap(old + new_len, old + old_len)
            unmap_range(k, p, old + new_len, old + old_len)
        return old
    nxt = mm.find_vma(old + old_len)
    if v.end == old + old_len and (nxt is None or nxt.start >= old + new_len):
        mm.replace(v, v.__class__(**{**v.__dict__, "end": old + new_len}))
        return old
    if not flags & MREMAP_MAYMOVE:
        return -errno.ENOMEM
    try:
        dest = mm.get_unmapped_area(0, new_len)
    except MmError as e:
        return -e.errno
    update_hiwater(k, p)
    moved = v.clip(old, old + old_len)
    mm.insert(moved.__class__(**{**moved.__dict__, "start": dest, "end": dest + new_len}))
    for vpn, pte in list(present_ptes(p, old, old + old_len)):
        set_pte(k, p, (dest >> 12) + vpn - (old >> 12), Pte(pte.frame, pte.write, pte.exec))
        map_page(k, p, (dest >> 12) + vpn - (old >> 12), frame=pte.frame)
    mm.munmap(old, old + old_len)
    unmap_range(k, p, old, old + old_len)
    flush_cpu_tlb(k)
    return dest


def sys_madvise(k, p, addr, length, advice):
    if advice == MADV_DONTNEED:
        update_hiwater(k, p)
        unmap_range(k, p, addr, addr + page_align(length))
    return 0


def sys_mincore(k, p, addr, length, vec):
    """mincore(): one byte per page, bit 0 set when the page is resident. From the model:
    a file page is in core when it is in the page cache (mapped here or not), an anonymous
    page when this process has it present (not swapped out). EINVAL for an unaligned addr,
    ENOMEM when part of the range is not mapped; vec is written a page of bytes at a time."""
    from elfvm.emu.uaccess import write_user

    if addr & (PAGE - 1):
        return -errno.EINVAL
    end = addr + ((length + PAGE - 1) & ~(PAGE - 1))
    if end > p.mm.task_size or end < addr:
        return -errno.ENOMEM
    a = addr
    while a < end:                                # the whole range must be mapped
        vma = p.mm.vma_at(a)
        if vma is None:
            return -errno.ENOMEM
        a = vma.end
    out = bytearray()
    for a in range(addr, end, PAGE):
        out.append(1 if _in_core(k, p, a) else 0)
        if len(out) == PAGE:
            write_user(k, p, vec + (a - addr) // PAGE - PAGE + 1, bytes(out))
            out.clear()
    if out:
        write_user(k, p, vec + (end - addr) // PAGE - len(out), bytes(out))
    return 0


def _in_core(k, p: Process, a: int) -> bool:
    vpn = a >> 12
    from elfvm.emu.pages import follow_pte

    if follow_pte(p, vpn) is not None:
        return True
    vma = p.mm.vma_at(a)
    if vma is not None and vma.file is not None:
        from elfvm.emu.pages import file_inode

        ino = file_inode(k, vma.file)
        return (ino.key(), (vma.pgoff + a - vma.start) >> 12) in k.page_cache
    return False
