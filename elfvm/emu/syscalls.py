"""The Linux i386 system calls the emulated kernel answers (int $0x80 and the vDSO's entry).

Arguments arrive in ebx, ecx, edx, esi, edi, ebp (arch/x86/entry/syscalls/syscall_32.tbl); the
result goes to eax, -errno on failure. Memory the kernel reads or writes in user space goes
through copy_from_user / copy_to_user (`Kernel.read_user` / `write_user`), which fault pages in
exactly as the kernel's own accesses do (they count as minor faults too). An unknown system call
returns -ENOSYS and is listed in the report.

The guest cannot reach the host: files are read through the read-only view of elfvm.emu.vfs,
signals only reach simulated processes, and time and randomness are deterministic by default.
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod
import struct

from elfvm.emu import signals as SIG
from elfvm.emu import vfs as V
from elfvm.emu.kernel import PAGE, EFault, Kernel, Process
from elfvm.mm.vma import PROT_EXEC, PROT_READ, PROT_WRITE, FileRef, MmError, Vma, page_align

MAP_SHARED, MAP_PRIVATE, MAP_FIXED, MAP_ANONYMOUS = 0x1, 0x2, 0x10, 0x20
MAP_GROWSDOWN, MAP_FIXED_NOREPLACE = 0x100, 0x100000
AT_FDCWD = -100
AT_EMPTY_PATH, AT_SYMLINK_NOFOLLOW = 0x1000, 0x100
F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_DUPFD_CLOEXEC = 0, 1, 2, 3, 4, 1030
O_CLOEXEC = 0o2000000
TCGETS, TIOCGWINSZ, FIONREAD = 0x5401, 0x5413, 0x541B
MADV_DONTNEED = 4
IPC_PRIVATE, IPC_CREAT, IPC_RMID, IPC_STAT = 0, 0o1000, 0, 2
SHMAT, SHMDT, SHMGET, SHMCTL = 21, 22, 23, 24
SHMLBA = PAGE


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


# ============================================================ helpers
def _fd(p: Process, fd: int) -> V.OpenFile:
    f = p.fds.get(s32(fd))
    if f is None:
        raise OSError(errno.EBADF, "")
    return f


def _alloc_fd(p: Process, f: V.OpenFile, lowest: int = 0, cloexec: bool = False) -> int:
    fd = lowest
    while fd in p.fds:
        fd += 1
    p.fds[fd] = f
    if cloexec:
        p.cloexec.add(fd)
    return fd


def _path_at(k: Kernel, p: Process, dirfd: int, path_ptr: int) -> str:
    path = k.read_cstr(p, path_ptr).decode("utf-8", "surrogateescape")
    dirfd = s32(dirfd)
    if path.startswith("/") or dirfd == AT_FDCWD or not path:
        return path
    f = _fd(p, dirfd)
    if f.inode is None:
        raise OSError(errno.ENOTDIR, "")
    return os.path.join(f.inode.path, path)


def _lookup(k: Kernel, p: Process, path: str, follow: bool = True) -> V.Inode:
    if path == "/proc/self/exe":
        return k.vfs.lookup(p.exe)
    try:
        return k.vfs.lookup(path, follow)
    except V.VfsError as e:
        raise OSError(e.errno, "") from None


def _stat_of(ino: V.Inode | None, f: V.OpenFile | None = None):
    """(dev, ino, mode, nlink, uid, gid, rdev, size, blksize, blocks, atime, mtime, ctime)."""
    if f is not None and (f.pipe is not None or f.sink is not None or (f.inode and f.inode.kind == "pipe")):
        return (0xC, 1000 + id(f) % 1000, stat_mod.S_IFIFO | 0o600, 1, 0, 0, 0, 0, 4096, 0, 0, 0, 0)
    st = ino.st
    size = ino.size
    if st is None:
        return (0x2C, 1, stat_mod.S_IFREG | 0o644, 1, 0, 0, 0, size, 4096, -(-size // 512), 0, 0, 0)
    return (st.st_dev, st.st_ino, st.st_mode, st.st_nlink, st.st_uid, st.st_gid, st.st_rdev, size,
            st.st_blksize, -(-size // 512) if ino.data is not None else st.st_blocks,
            int(st.st_atime), int(st.st_mtime), int(st.st_ctime))


def _stat64(t) -> bytes:
    dev, ino, mode, nlink, uid, gid, rdev, size, blksize, blocks, at, mt, ct = t
    return struct.pack("<Q4xIIIIIQ4xqIQIIIIIIQ", _new_encode_dev(dev), ino & 0xFFFFFFFF, mode, nlink,
                       uid, gid, _new_encode_dev(rdev), size, blksize, blocks, at, 0, mt, 0, ct, 0, ino)


def _new_encode_dev(dev: int) -> int:
    major, minor = os.major(dev), os.minor(dev)
    return (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12)


def _statx(t) -> bytes:
    dev, ino, mode, nlink, uid, gid, rdev, size, blksize, blocks, at, mt, ct = t
    b = bytearray(256)
    struct.pack_into("<IIQIIIHxxQQQQ", b, 0, 0x7FF, blksize, 0, nlink, uid, gid, mode, ino, size, blocks, 0)
    for off, ts in ((64, at), (80, ct), (96, ct), (112, mt)):
        struct.pack_into("<qI", b, off, ts, 0)
    struct.pack_into("<IIII", b, 128, os.major(rdev), os.minor(rdev), os.major(dev), os.minor(dev))
    return bytes(b)


# ============================================================ files
def sys_read(k, p, fd, buf, count):
    f = _fd(p, fd)
    if f.flags & V.O_ACCMODE == V.O_WRONLY:
        return -errno.EBADF
    if f.pipe is not None:
        if not f.pipe.buf:
            if f.pipe.writers > 0:
                raise Blocked()
            return 0
        data = bytes(f.pipe.buf[:count])
        del f.pipe.buf[:len(data)]
        k.write_user(p, buf, data)
        k.wake_all()
        return len(data)
    if f.sink is not None:                      # stdin
        data = k.stdin[f.pos:f.pos + count]
        k.write_user(p, buf, data)
        f.pos += len(data)
        return len(data)
    if f.inode.kind == "dir":
        return -errno.EISDIR
    data = f.inode.pread(f.pos, count)
    k.write_user(p, buf, data)
    f.pos += len(data)
    return len(data)


def _write_to(k, p, f: V.OpenFile, data: bytes) -> int:
    if f.flags & V.O_ACCMODE == 0 and f.sink is None and f.pipe is None:
        return -errno.EBADF
    if f.pipe is not None:
        if f.pipe.readers == 0:
            SIG.sigpipe(k, p)                   # delivered (or fatal) on the way out
            return -errno.EPIPE
        f.pipe.buf += data
        k.wake_all()
        return len(data)
    if f.sink is not None:
        f.sink += data
        if k.echo is not None:
            k.echo(f is p.fds.get(2) and f.sink is k.stderr, data)
        return len(data)
    ino = f.inode
    if ino.data is None:
        return -errno.EBADF
    pos = len(ino.data) if f.flags & V.O_APPEND else f.pos
    if pos > len(ino.data):
        ino.data += bytes(pos - len(ino.data))
    ino.data[pos:pos + len(data)] = data
    f.pos = pos + len(data)
    return len(data)


def sys_write(k, p, fd, buf, count):
    f = _fd(p, fd)
    return _write_to(k, p, f, k.read_user(p, buf, count))


def sys_writev(k, p, fd, iov, iovcnt):
    f = _fd(p, fd)
    data = bytearray()
    for i in range(iovcnt):
        base, ln = struct.unpack("<II", k.read_user(p, iov + 8 * i, 8))
        data += k.read_user(p, base, ln)
    return _write_to(k, p, f, bytes(data))


def sys_readv(k, p, fd, iov, iovcnt):
    total = 0
    for i in range(iovcnt):
        base, ln = struct.unpack("<II", k.read_user(p, iov + 8 * i, 8))
        n = sys_read(k, p, fd, base, ln)
        if n < 0:
            return n if total == 0 else total
        total += n
        if n < ln:
            break
    return total


def sys_open(k, p, path, flags, mode):
    return sys_openat(k, p, AT_FDCWD & 0xFFFFFFFF, path, flags, mode)


def sys_openat(k, p, dirfd, path_ptr, flags, mode):
    path = _path_at(k, p, dirfd, path_ptr)
    if path == "/proc/self/exe":
        path = p.exe
    try:
        f = k.vfs.open(path, flags, mode)
    except V.VfsError as e:
        return -e.errno
    if f.inode.kind == "dir":
        f.dir_entries = None
    return _alloc_fd(p, f, cloexec=bool(flags & O_CLOEXEC))


def sys_close(k, p, fd):
    return 0 if k.close_fd(p, s32(fd)) else -errno.EBADF


def sys_lseek(k, p, fd, off, whence):
    f = _fd(p, fd)
    if f.pipe is not None or f.sink is not None:
        return -errno.ESPIPE
    new = {0: 0, 1: f.pos, 2: f.inode.size}.get(whence)
    if new is None:
        return -errno.EINVAL
    new += s32(off)
    if new < 0:
        return -errno.EINVAL
    f.pos = new
    return new


def sys__llseek(k, p, fd, hi, lo, result, whence):
    f = _fd(p, fd)
    if f.pipe is not None or f.sink is not None:
        return -errno.ESPIPE
    off = (hi << 32) | lo
    if off & (1 << 63):
        off -= 1 << 64
    new = {0: 0, 1: f.pos, 2: f.inode.size}.get(whence)
    if new is None:
        return -errno.EINVAL
    new += off
    if new < 0:
        return -errno.EINVAL
    f.pos = new
    k.write_user(p, result, struct.pack("<q", new))
    return 0


def sys_stat64(k, p, path, buf):
    ino = _lookup(k, p, k.read_cstr(p, path).decode("utf-8", "surrogateescape"))
    k.write_user(p, buf, _stat64(_stat_of(ino)))
    return 0


def sys_lstat64(k, p, path, buf):
    ino = _lookup(k, p, k.read_cstr(p, path).decode("utf-8", "surrogateescape"), follow=False)
    k.write_user(p, buf, _stat64(_stat_of(ino)))
    return 0


def sys_fstat64(k, p, fd, buf):
    f = _fd(p, fd)
    k.write_user(p, buf, _stat64(_stat_of(f.inode, f)))
    return 0


def _stat_at(k, p, dirfd, path_ptr, flags):
    path = k.read_cstr(p, path_ptr).decode("utf-8", "surrogateescape")
    if not path and flags & AT_EMPTY_PATH:
        f = _fd(p, dirfd)
        return _stat_of(f.inode, f)
    if not path.startswith("/") and s32(dirfd) != AT_FDCWD:
        path = os.path.join(_fd(p, dirfd).inode.path, path)
    return _stat_of(_lookup(k, p, path, follow=not flags & AT_SYMLINK_NOFOLLOW))


def sys_fstatat64(k, p, dirfd, path, buf, flags):
    k.write_user(p, buf, _stat64(_stat_at(k, p, dirfd, path, flags)))
    return 0


def sys_statx(k, p, dirfd, path, flags, mask, buf):
    k.write_user(p, buf, _statx(_stat_at(k, p, dirfd, path, flags)))
    return 0


def sys_access(k, p, path, mode):
    return sys_faccessat(k, p, AT_FDCWD & 0xFFFFFFFF, path, mode)


def sys_faccessat(k, p, dirfd, path_ptr, mode, flags=0):
    path = _path_at(k, p, dirfd, path_ptr)
    ino = _lookup(k, p, path)
    if mode & 2 and ino.host is not None and ino.data is None and not k.vfs.write_dir:
        return 0                       # writable through the overlay
    if mode & 1 and ino.st is not None and not ino.st.st_mode & 0o111:
        return -errno.EACCES
    return 0


def sys_readlink(k, p, path, buf, size):
    return sys_readlinkat(k, p, AT_FDCWD & 0xFFFFFFFF, path, buf, size)


def sys_readlinkat(k, p, dirfd, path_ptr, buf, size):
    path = _path_at(k, p, dirfd, path_ptr)
    if path == "/proc/self/exe":
        target = p.exe
    else:
        try:
            target = k.vfs.readlink(path)
        except V.VfsError as e:
            return -e.errno
    data = os.fsencode(target)[:size]
    k.write_user(p, buf, data)
    return len(data)


def sys_getcwd(k, p, buf, size):
    data = os.fsencode(k.vfs.cwd) + b"\0"
    if len(data) > size:
        return -errno.ERANGE
    k.write_user(p, buf, data)
    return len(data)


def sys_chdir(k, p, path):
    path = k.read_cstr(p, path).decode("utf-8", "surrogateescape")
    ino = _lookup(k, p, path)
    if ino.kind != "dir":
        return -errno.ENOTDIR
    k.vfs.cwd = ino.path
    return 0


def sys_getdents64(k, p, fd, buf, count):
    f = _fd(p, fd)
    if f.inode is None or f.inode.kind != "dir":
        return -errno.ENOTDIR
    if f.dir_entries is None:
        f.dir_entries = k.vfs.listdir(f.inode.path)
    out = bytearray()
    while f.pos < len(f.dir_entries):
        name, d_type = f.dir_entries[f.pos]
        nb = os.fsencode(name) + b"\0"
        reclen = (19 + len(nb) + 7) & ~7
        if len(out) + reclen > count:
            break
        rec = struct.pack("<QqHB", 1000 + f.pos, f.pos + 1, reclen, d_type) + nb
        out += rec.ljust(reclen, b"\0")
        f.pos += 1
    if not out and f.pos < len(f.dir_entries):
        return -errno.EINVAL
    k.write_user(p, buf, bytes(out))
    return len(out)


def sys_fcntl64(k, p, fd, cmd, arg):
    f = _fd(p, fd)
    fd = s32(fd)
    if cmd in (F_DUPFD, F_DUPFD_CLOEXEC):
        f.refs += 1
        return _alloc_fd(p, f, arg, cloexec=cmd == F_DUPFD_CLOEXEC)
    if cmd == F_GETFD:
        return 1 if fd in p.cloexec else 0
    if cmd == F_SETFD:
        (p.cloexec.add if arg & 1 else p.cloexec.discard)(fd)
        return 0
    if cmd == F_GETFL:
        return f.flags & ~O_CLOEXEC
    if cmd == F_SETFL:
        f.flags = (f.flags & ~0o2000) | (arg & 0o2000)
        return 0
    return -errno.EINVAL


def sys_dup(k, p, fd):
    f = _fd(p, fd)
    f.refs += 1
    _count_pipe(f, +1)
    return _alloc_fd(p, f)


def sys_dup2(k, p, fd, fd2):
    f = _fd(p, fd)
    if s32(fd) == s32(fd2):
        return s32(fd2)
    k.close_fd(p, s32(fd2))
    f.refs += 1
    _count_pipe(f, +1)
    p.fds[s32(fd2)] = f
    return s32(fd2)


def sys_dup3(k, p, fd, fd2, flags):
    r = sys_dup2(k, p, fd, fd2)
    if r >= 0 and flags & O_CLOEXEC:
        p.cloexec.add(r)
    return r


def _count_pipe(f: V.OpenFile, d: int) -> None:
    if f.pipe is not None:
        if f.pipe_end == "r":
            f.pipe.readers += d
        else:
            f.pipe.writers += d


def sys_pipe(k, p, fds):
    return sys_pipe2(k, p, fds, 0)


def sys_pipe2(k, p, fds, flags):
    pipe = V.Pipe(readers=1, writers=1)
    r = V.OpenFile(None, 0, pipe=pipe, pipe_end="r")
    w = V.OpenFile(None, 1, pipe=pipe, pipe_end="w")
    rfd = _alloc_fd(p, r, cloexec=bool(flags & O_CLOEXEC))
    wfd = _alloc_fd(p, w, cloexec=bool(flags & O_CLOEXEC))
    k.write_user(p, fds, struct.pack("<ii", rfd, wfd))
    return 0


def sys_ioctl(k, p, fd, cmd, arg):
    f = _fd(p, fd)
    if cmd == FIONREAD and f.pipe is not None:
        k.write_u32(p, arg, len(f.pipe.buf))
        return 0
    return -errno.ENOTTY             # what a real non-tty (pipe/file) answers to terminal queries


def sys_unlink(k, p, path):
    try:
        k.vfs.unlink(k.read_cstr(p, path).decode("utf-8", "surrogateescape"))
    except V.VfsError as e:
        return -e.errno
    return 0


def sys_unlinkat(k, p, dirfd, path, flags):
    return sys_unlink(k, p, path)


def sys_umask(k, p, mask):
    return 0o022


# ============================================================ memory
def _vm_prot(k: Kernel, p: Process, prot: int) -> int:
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
        mm.munmap(newbrk, oldbrk)
        k.unmap_range(p, newbrk, oldbrk)
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
    addr, length, prot, flags, fd, off = struct.unpack("<6I", k.read_user(p, args_ptr, 24))
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
    vprot = _vm_prot(k, p, prot)
    src = source or ("" if not (anon and shared) else f"shared-anon:{next(k.shmem_ids)}")

    def make(s, e):
        return Vma(s, e, vprot, offset if ref else 0, ref, shared=shared,
                   kind="file" if ref else "anon", source=src, origin=("mmap", 0, "mmap"))

    fixed = bool(flags & MAP_FIXED)
    noreplace = bool(flags & MAP_FIXED_NOREPLACE)
    try:
        if fixed or noreplace:
            if addr & (PAGE - 1):
                return -errno.EINVAL
            mm_old = [v for v in mm.vmas if v.start < addr + page_align(length) and addr < v.end]
            if mm_old and noreplace:
                return -errno.EEXIST
            k.unmap_range(p, addr, addr + page_align(length))
        res = mm.do_mmap(addr, length, fixed=fixed, noreplace=noreplace, make=make)
    except MmError as e:
        return -e.errno
    return res


def sys_munmap(k, p, addr, length):
    if addr & (PAGE - 1) or length == 0:
        return -errno.EINVAL
    end = addr + page_align(length)
    p.mm.munmap(addr, end)
    k.unmap_range(p, addr, end)
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
        mm.insert(piece.__class__(**{**piece.__dict__, "prot": vprot}))
    changed = False
    for vpn in [x for x in list(p.ptes) if addr >> 12 <= x < end >> 12]:
        pte = p.ptes[vpn]
        fi = k.frames.info.get(pte.frame)
        excl = fi is not None and fi.anon and len(fi.rmap) == 1
        w = bool(vprot & PROT_WRITE) and (pte.write or excl)
        x = bool(vprot & PROT_EXEC)
        if (w, x) != (pte.write, pte.exec):
            from elfvm.emu.kernel import Pte

            k.set_pte(p, vpn, Pte(pte.frame, w, x))
            changed = True
    if changed:
        k.flush_cpu_tlb()
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
            mm.munmap(old + new_len, old + old_len)
            k.unmap_range(p, old + new_len, old + old_len)
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
    moved = v.clip(old, old + old_len)
    mm.insert(moved.__class__(**{**moved.__dict__, "start": dest, "end": dest + new_len}))
    from elfvm.emu.kernel import Pte

    for vpn in sorted(x for x in list(p.ptes) if old >> 12 <= x < (old + old_len) >> 12):
        pte = p.ptes[vpn]
        k.set_pte(p, (dest >> 12) + vpn - (old >> 12), Pte(pte.frame, pte.write, pte.exec))
        k.map_page(p, (dest >> 12) + vpn - (old >> 12))
    mm.munmap(old, old + old_len)
    k.unmap_range(p, old, old + old_len)
    k.flush_cpu_tlb()
    return dest


def sys_madvise(k, p, addr, length, advice):
    if advice == MADV_DONTNEED:
        k.unmap_range(p, addr, addr + page_align(length))
    return 0


# ============================================================ System V shared memory
def sys_ipc(k, p, call, first, second, third, ptr, fifth=0):
    if call == SHMGET:
        return sys_shmget(k, p, first, second, third)
    if call == SHMAT:
        r = sys_shmat(k, p, first, ptr, second)
        if r < 0 and r > -4096:
            return r
        k.write_u32(p, third, r)
        return 0
    if call == SHMDT:
        return sys_shmdt(k, p, ptr)
    if call == SHMCTL:
        return sys_shmctl(k, p, first, second, ptr)
    return -errno.ENOSYS


def sys_shmget(k, p, key, size, flags):
    key = s32(key)
    if key != IPC_PRIVATE:
        for sid, s in k.shm.items():
            if s["key"] == key and not s["removed"]:
                return sid
        if not flags & IPC_CREAT:
            return -errno.ENOENT
    sid = len(k.shm) + 1
    k.shm[sid] = {"key": key, "size": size, "nattch": 0, "removed": False}
    return sid


def sys_shmat(k, p, shmid, addr, flags):
    s = k.shm.get(shmid)
    if s is None or s["removed"]:
        return -errno.EINVAL
    SHM_RDONLY = 0o10000
    prot = PROT_READ | (0 if flags & SHM_RDONLY else PROT_WRITE)
    mflags = MAP_SHARED | (MAP_FIXED if addr else 0)
    r = do_mmap(k, p, addr, s["size"], prot, mflags | MAP_ANONYMOUS, -1, 0, source=f"shm:{shmid}")
    if 0 <= r < (1 << 32) - 4096:
        p.shm_attach[r] = shmid
        s["nattch"] += 1
    return r


def sys_shmdt(k, p, addr):
    sid = p.shm_attach.pop(addr, None)
    if sid is None:
        return -errno.EINVAL
    v = p.mm.vma_at(addr)
    end = v.end if v else addr + PAGE
    p.mm.munmap(addr, end)
    k.unmap_range(p, addr, end)
    k.shm[sid]["nattch"] -= 1
    return 0


def sys_shmctl(k, p, shmid, cmd, buf):
    s = k.shm.get(shmid)
    if s is None:
        return -errno.EINVAL
    if cmd & 0xFF == IPC_RMID:
        s["removed"] = True
        return 0
    if cmd & 0xFF == IPC_STAT:
        return 0
    return -errno.EINVAL


# ============================================================ processes
def sys_exit(k, p, code):
    k.do_exit(p, code & 0xFF)
    return None


def sys_fork(k, p):
    child = k.fork(p)
    return child.pid


def sys_clone(k, p, flags, newsp, ptid, tls, ctid):
    CLONE_VM, CLONE_VFORK, CLONE_THREAD = 0x100, 0x4000, 0x10000
    CLONE_PARENT_SETTID, CLONE_CHILD_SETTID, CLONE_CHILD_CLEARTID = 0x100000, 0x1000000, 0x200000
    if flags & CLONE_THREAD or (flags & CLONE_VM and not flags & CLONE_VFORK):
        return -errno.ENOSYS            # threads are not modelled
    child = k.fork(p)
    if flags & CLONE_PARENT_SETTID:
        k.write_u32(p, ptid, child.pid)
    if flags & CLONE_CHILD_SETTID:
        k.write_u32(child, ctid, child.pid)
    if flags & CLONE_CHILD_CLEARTID:
        child.tid_address = ctid
    if newsp:
        child.context = None
        saved = k.uc.context_save()
        from unicorn.x86_const import UC_X86_REG_ESP

        k.uc.reg_write(UC_X86_REG_ESP, newsp)
        child.context = k.uc.context_save()
        k.uc.context_restore(saved)
    return child.pid


def sys_vfork(k, p):
    return sys_fork(k, p)


def sys_wait4(k, p, pid, status_ptr, options, rusage):
    WNOHANG = 1
    pid = s32(pid)
    kids = [c for c in k.procs.values() if c.ppid == p.pid and c.state != "reaped"
            and (pid in (-1, 0) or c.pid == pid)]
    if not kids:
        return -errno.ECHILD
    done = [c for c in kids if c.state == "zombie"]
    if not done:
        if options & WNOHANG:
            return 0
        raise Blocked()
    c = min(done, key=lambda c: c.pid)
    c.state = "reaped"
    if status_ptr:
        st = (c.death.signal & 0x7F) if c.death else ((c.exit_code or 0) & 0xFF) << 8
        k.write_u32(p, status_ptr, st)
    if rusage:
        ru = bytearray(72)
        k.flush_refs()
        struct.pack_into("<I", ru, 40, k.model.page_faults(c.mi))   # ru_minflt: 2 timevals, 6 longs
        k.write_user(p, rusage, bytes(ru))
    return c.pid


def sys_waitpid(k, p, pid, status_ptr, options):
    return sys_wait4(k, p, pid, status_ptr, options, 0)


def sys_getpid(k, p):
    return p.pid


def sys_getppid(k, p):
    return p.ppid


def sys_ids(k, p, *a):
    return 0


def sys_set_tid_address(k, p, addr):
    p.tid_address = addr
    return p.pid


def sys_set_thread_area(k, p, u_info):
    """arch/x86/kernel/tls.c do_set_thread_area(): entry -1 takes the first free TLS slot."""
    from elfvm.emu.cpu import user_desc_to_descriptor

    entry, base, limit, flags = struct.unpack("<iIII", k.read_user(p, u_info, 16))
    s = k.segments
    if entry == -1:
        free = [i for i in range(s.tls_min, s.tls_min + s.tls_entries) if i not in p.tls]
        if not free:
            return -errno.ESRCH
        entry = free[0]
        k.write_u32(p, u_info, entry)
    if not s.tls_min <= entry < s.tls_min + s.tls_entries:
        return -errno.EINVAL
    p.tls[entry] = user_desc_to_descriptor(base, limit, flags)
    k.frames.write(k.gdt_frame + entry * 8, p.tls[entry])
    return 0


def sys_rseq(k, p, rseq, length, flags, sig):
    """Registration succeeds; the kernel then writes cpu_id_start/cpu_id (put_user)."""
    k.write_user(p, rseq, struct.pack("<II", 0, 0))
    return 0


def sys_zero(k, p, *a):
    return 0


def sys_futex(k, p, uaddr, op, val, *rest):
    FUTEX_WAIT = 0
    if op & 0x7F == FUTEX_WAIT and k.read_u32(p, uaddr) != val:
        return -errno.EAGAIN
    return 0


def sys_uname(k, p, buf):
    fields = ["Linux", "elfvm", os.uname().release, "#1 SMP elfvm", "x86_64", "(none)"]
    k.write_user(p, buf, b"".join(os.fsencode(f)[:64].ljust(65, b"\0") for f in fields))
    return 0


def _now(k) -> int:
    k.clock_ns += 1000
    return k.clock_ns


def sys_clock_gettime(k, p, clk, tp):
    ns = _now(k)
    k.write_user(p, tp, struct.pack("<ii", ns // 10**9, ns % 10**9))
    return 0


def sys_clock_gettime64(k, p, clk, tp):
    ns = _now(k)
    k.write_user(p, tp, struct.pack("<qq", ns // 10**9, ns % 10**9))
    return 0


def sys_gettimeofday(k, p, tv, tz):
    ns = _now(k)
    if tv:
        k.write_user(p, tv, struct.pack("<ii", ns // 10**9, (ns % 10**9) // 1000))
    return 0


def sys_time(k, p, tloc):
    t = _now(k) // 10**9
    if tloc:
        k.write_u32(p, tloc, t)
    return t


def sys_getrandom(k, p, buf, n, flags):
    data = bytes(k.rng.getrandbits(8) for _ in range(n))
    k.write_user(p, buf, data)
    return n


RLIMIT_STACK, RLIMIT_NOFILE = 3, 7


def _rlimit(p: Process, res: int) -> tuple[int, int]:
    inf = (1 << 64) - 1
    if res == RLIMIT_STACK:
        return p.rlimit_stack, inf
    if res == RLIMIT_NOFILE:
        return 1024, 1048576
    return inf, inf


def sys_ugetrlimit(k, p, res, rlim):
    cur, mx = _rlimit(p, res)
    k.write_user(p, rlim, struct.pack("<II", min(cur, 0xFFFFFFFF), min(mx, 0xFFFFFFFF)))
    return 0


def sys_prlimit64(k, p, pid, res, new, old):
    if s32(pid) not in (0, p.pid):
        return -errno.ESRCH
    if old:
        k.write_user(p, old, struct.pack("<QQ", *_rlimit(p, res)))
    if new and res == RLIMIT_STACK:
        p.rlimit_stack = struct.unpack("<Q", k.read_user(p, new, 8))[0]
    return 0


def sys_sysinfo(k, p, buf):
    k.write_user(p, buf, bytes(64))
    return 0


def sys_sched_yield(k, p):
    return 0


def sys_nanosleep(k, p, req, rem):
    return 0


def sys_getpgrp(k, p, *a):
    return p.pid


# ============================================================ the table
SYSCALLS = {
    1: ("exit", sys_exit, 1), 2: ("fork", sys_fork, 0), 3: ("read", sys_read, 3),
    4: ("write", sys_write, 3), 5: ("open", sys_open, 3), 6: ("close", sys_close, 1),
    7: ("waitpid", sys_waitpid, 3), 10: ("unlink", sys_unlink, 1), 12: ("chdir", sys_chdir, 1),
    13: ("time", sys_time, 1), 19: ("lseek", sys_lseek, 3), 20: ("getpid", sys_getpid, 0),
    24: ("getuid", sys_ids, 0), 33: ("access", sys_access, 2), 
    41: ("dup", sys_dup, 1), 42: ("pipe", sys_pipe, 1), 45: ("brk", sys_brk, 1),
    47: ("getgid", sys_ids, 0), 49: ("geteuid", sys_ids, 0), 50: ("getegid", sys_ids, 0),
    54: ("ioctl", sys_ioctl, 3), 60: ("umask", sys_umask, 1), 63: ("dup2", sys_dup2, 2),
    64: ("getppid", sys_getppid, 0), 65: ("getpgrp", sys_getpgrp, 0),
    78: ("gettimeofday", sys_gettimeofday, 2), 85: ("readlink", sys_readlink, 3),
    90: ("mmap", sys_mmap, 1), 91: ("munmap", sys_munmap, 2), 114: ("wait4", sys_wait4, 4),
    116: ("sysinfo", sys_sysinfo, 1), 117: ("ipc", sys_ipc, 6), 120: ("clone", sys_clone, 5),
    122: ("uname", sys_uname, 1), 125: ("mprotect", sys_mprotect, 3),
    132: ("getpgid", sys_getpgrp, 1), 140: ("_llseek", sys__llseek, 5),
    145: ("readv", sys_readv, 3), 146: ("writev", sys_writev, 3), 147: ("getsid", sys_getpgrp, 1),
    158: ("sched_yield", sys_sched_yield, 0), 162: ("nanosleep", sys_nanosleep, 2),
    163: ("mremap", sys_mremap, 5), 
    183: ("getcwd", sys_getcwd, 2),
    190: ("vfork", sys_vfork, 0),
    191: ("ugetrlimit", sys_ugetrlimit, 2), 192: ("mmap2", sys_mmap2, 6),
    195: ("stat64", sys_stat64, 2), 196: ("lstat64", sys_lstat64, 2), 197: ("fstat64", sys_fstat64, 2),
    199: ("getuid32", sys_ids, 0), 200: ("getgid32", sys_ids, 0), 201: ("geteuid32", sys_ids, 0),
    202: ("getegid32", sys_ids, 0), 219: ("madvise", sys_madvise, 3),
    220: ("getdents64", sys_getdents64, 3), 221: ("fcntl64", sys_fcntl64, 3),
    224: ("gettid", sys_getpid, 0), 240: ("futex", sys_futex, 6),
    243: ("set_thread_area", sys_set_thread_area, 1), 252: ("exit_group", sys_exit, 1),
    258: ("set_tid_address", sys_set_tid_address, 1), 265: ("clock_gettime", sys_clock_gettime, 2),
    295: ("openat", sys_openat, 4),
    300: ("fstatat64", sys_fstatat64, 4), 301: ("unlinkat", sys_unlinkat, 3),
    305: ("readlinkat", sys_readlinkat, 4), 307: ("faccessat", sys_faccessat, 3),
    311: ("set_robust_list", sys_zero, 2), 330: ("dup3", sys_dup3, 3), 331: ("pipe2", sys_pipe2, 2),
    340: ("prlimit64", sys_prlimit64, 4), 355: ("getrandom", sys_getrandom, 3),
    383: ("statx", sys_statx, 5), 386: ("rseq", sys_rseq, 4),
    395: ("shmget", sys_shmget, 3), 396: ("shmctl", sys_shmctl, 3), 397: ("shmat", sys_shmat, 3),
    398: ("shmdt", sys_shmdt, 1), 403: ("clock_gettime64", sys_clock_gettime64, 2),
    439: ("faccessat2", sys_faccessat, 4),
}
SYSCALLS.update(SIG.SYSCALLS)      # kill, tkill, tgkill, rt_sig*, sigreturn, sigaltstack, pause


def dispatch(k: Kernel, p: Process) -> None:
    """One `int $0x80`: look the number up, run the handler, put the result in eax."""
    nr, *args = k.cpu.syscall_args()
    entry = SYSCALLS.get(nr)
    if entry is None:
        k.unknown_syscalls[nr] += 1
        k.syscall_counts[f"syscall_{nr}"] += 1
        k.cpu.set_return(-errno.ENOSYS)
        return
    name, fn, nargs = entry
    k.syscall_counts[name] += 1
    p.sig_restart = False
    if name == "exit_group" or name == "exit":
        fn(k, p, *args[:nargs])
        return
    try:
        ret = fn(k, p, *args[:nargs])
    except Blocked as b:
        if SIG.deliverable(p) is not None:          # interrupted by a signal
            k.cpu.set_return(-errno.EINTR)
            SIG.do_signal(k, p, restart=None if b.nohand else nr)
            return
        k.syscall_counts[name] -= 1
        p.state = "blocked"
        p.sig_restart = True
        k.cpu.eip = k.cpu.eip - 2                   # re-execute `int $0x80` when woken
        k.uc.emu_stop()
        return
    except EFault:
        ret = -errno.EFAULT
    except OSError as e:
        ret = -(e.errno or errno.EINVAL)
    if ret is None:
        return
    if p.state in ("zombie", "reaped"):
        return
    k.cpu.set_return(ret)
    if p.sig_pending and p is k.current:
        SIG.do_signal(k, p)                         # on the way back to user mode
