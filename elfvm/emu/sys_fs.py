"""System calls on files, directories and descriptors (fs/)."""

from __future__ import annotations

import errno
import os
import stat as stat_mod
import struct
import zlib

from elfvm.emu import procfs
from elfvm.emu import vfs as V
from elfvm.emu.exit import close_fd, wake_all
from elfvm.emu.fork import dup_fds
from elfvm.emu.sigstate import deliverable
from elfvm.emu.state import KernelState
from elfvm.emu.task import Blocked, EFault, Process, s32
from elfvm.emu.uaccess import read_cstr, read_user, user_span, write_u32, write_user
from elfvm.emu.uapi import (
    AT_EMPTY_PATH,
    AT_FDCWD,
    AT_SYMLINK_NOFOLLOW,
    F_DUPFD,
    F_DUPFD_CLOEXEC,
    F_GETFD,
    F_GETFL,
    F_SETFD,
    F_SETFL,
    FIONREAD,
    O_CLOEXEC,
)

MAX_RW_COUNT = 0x7FFFF000          # INT_MAX & PAGE_MASK: read/write never move more at once
PIPE_CAPACITY = 16 * 4096          # a pipe's buffer (pipe_max_size default: 16 pages)
PIPE_BUF = 4096                    # writes up to this size are atomic
O_NONBLOCK = 0o4000


def fdget(p: Process, fd: int) -> V.OpenFile:
    """The open file behind `fd` (the kernel's fdget), EBADF when there is none."""
    f = p.fds.get(s32(fd))
    if f is None:
        raise OSError(errno.EBADF, "")
    return f


def alloc_fd(p: Process, f: V.OpenFile, lowest: int = 0, cloexec: bool = False) -> int:
    fd = lowest
    while fd in p.fds:
        fd += 1
    p.fds[fd] = f
    if cloexec:
        p.cloexec.add(fd)
    return fd


def _path_at(k: KernelState, p: Process, dirfd: int, path_ptr: int) -> str:
    path = read_cstr(k, p, path_ptr).decode("utf-8", "surrogateescape")
    dirfd = s32(dirfd)
    if path.startswith("/") or dirfd == AT_FDCWD or not path:
        return path
    f = fdget(p, dirfd)
    if f.inode is None:
        raise OSError(errno.ENOTDIR, "")
    return os.path.join(f.inode.path, path)


def _proc_inode(k: KernelState, p: Process, path: str, follow: bool = True) -> V.Inode | None:
    """A guest task's /proc entry (elfvm.emu.procfs): a directory, a file built from the
    emulated kernel, or a link (followed unless `follow` is False); None for other paths."""
    # a trailing /, . or .. follows the last link (only a final "self" or "fd/3" is a link)
    follow = follow or path.endswith("/") or os.path.basename(path) in (".", "..")
    path = norm = k.vfs.guest_path(path)
    try:
        if norm == "/proc":
            return procfs.proc_dir_inode(norm)
        if norm == "/proc/meminfo":
            return procfs.meminfo_inode(k)
        if norm in ("/proc/self", "/proc/thread-self") and not follow:
            return V.Inode(norm, None, None, kind="symlink", link=procfs.proc_link(k, p, norm),
                           attrs={"mode": stat_mod.S_IFLNK | 0o777})
        found = procfs.proc_task(k, p, path)
        if found is None:
            return None
        t, entry = found.task, found.entry
        if entry in ("exe", "cwd", "root") and not found.sub or entry == "fd" and found.sub:
            return _proc_link_inode(k, p, t, norm, entry, found.sub, follow)
        if not found.sub and (entry in ("", "fd") or entry == "task" and not found.in_task_dir):
            return procfs.proc_dir_inode(found.path, 0o500 if entry == "fd" else 0o555)
        if entry in procfs.FILES:
            return procfs.proc_file(k, p, path)
    except V.VfsError as e:
        raise OSError(e.errno, "") from None
    raise OSError(errno.ENOENT, "")        # entries elfvm does not model


def _proc_link_inode(k, p, t: Process, norm: str, entry: str, fd: str, follow: bool) -> V.Inode:
    """/proc/PID/{exe,cwd,root,fd/N}: the link itself (lstat: lrwxrwxrwx, an fd's l-wx------ as
    its open mode) or, followed, what it points at (a pipe is a FIFO)."""
    target = procfs.proc_link(k, p, norm)
    if not follow:
        perm = 0o777
        if entry == "fd":
            perm = {0: 0o500, 1: 0o300}.get(t.fds[int(fd)].flags & V.O_ACCMODE, 0o700)
        return V.Inode(norm, None, None, kind="symlink", link=target,
                       attrs={"mode": stat_mod.S_IFLNK | perm})
    if entry == "exe":
        return V.Inode(target, t.exe, os.stat(t.exe))
    if entry == "fd":
        f = t.fds[int(fd)]
        if f.inode is None or f.pipe is not None or f.sink is not None:
            return V.Inode(target, None, None, kind="pipe", attrs={"mode": stat_mod.S_IFIFO | 0o600})
        return f.inode
    return k.vfs.lookup(target)


def _lookup(k: KernelState, p: Process, path: str, follow: bool = True) -> V.Inode:
    ino = _proc_inode(k, p, path, follow)
    if ino is not None:
        return ino
    try:
        return k.vfs.lookup(path, follow)
    except V.VfsError as e:
        raise OSError(e.errno, "") from None


def _stat_of(ino: V.Inode | None, f: V.OpenFile | None = None):
    """(dev, ino, mode, nlink, uid, gid, rdev, size, blksize, blocks, atime, mtime, ctime)."""
    if f is not None and f.epoll is not None:       # anon_inode:[eventpoll]
        return (0xE, 1, 0o600, 1, 0, 0, 0, 0, 4096, 0, 0, 0, 0)
    if f is not None and (f.pipe is not None or f.sink is not None or (f.inode and f.inode.kind == "pipe")):
        return (0xC, V.fifo_ino(f), stat_mod.S_IFIFO | 0o600, 1, 0, 0, 0, 0, 4096, 0, 0, 0, 0)
    st = ino.st
    a = ino.attrs
    size = a.get("st_size", len(ino.link) if ino.kind == "symlink" else ino.size)
    if st is None:                       # overlay-only: a small made-up device, inode by path
        kind = {"dir": stat_mod.S_IFDIR, "symlink": stat_mod.S_IFLNK}.get(ino.kind, stat_mod.S_IFREG)
        mode = a.get("mode", kind | 0o644)
        ino_nr = 0x10000 + zlib.crc32(ino.path.encode("utf-8", "surrogateescape")) % 0xFFFF
        st = os.stat_result((mode, ino_nr, 0x2C, 1, 0, 0, size, 0, 0, 0))   # the same every run
    mode = a.get("mode", st.st_mode)
    at, mt = a.get("atime"), a.get("mtime")
    return (st.st_dev, st.st_ino, mode, a.get("nlink", st.st_nlink), a.get("uid", st.st_uid),
            a.get("gid", st.st_gid),
            st.st_rdev if ino.st is not None else 0, size,
            st.st_blksize if ino.st is not None else 4096,
            -(-size // 512) if ino.data is not None or ino.st is None else st.st_blocks,
            int(st.st_atime) if at is None else at // 10**9,
            int(st.st_mtime) if mt is None else mt // 10**9,
            int(st.st_ctime) if mt is None else mt // 10**9)


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


def sys_read(k, p, fd, buf, count):
    f = fdget(p, fd)
    if f.flags & V.O_ACCMODE == V.O_WRONLY:
        return -errno.EBADF
    if f.epoll is not None:                     # an anon inode without read
        return -errno.EINVAL
    if f.pipe is not None:
        if not f.pipe.buf:
            if f.pipe.writers > 0:
                if f.flags & O_NONBLOCK:
                    return -errno.EAGAIN
                raise Blocked()
            return 0
        data = bytes(f.pipe.buf[:count])
        del f.pipe.buf[:len(data)]
        write_user(k, p, buf, data)
        f.pipe.wake(POLLOUT | 0x100)          # | EPOLLWRNORM
        wake_all(k)
        return len(data)
    if f.sink is not None:                      # stdin
        data = k.stdin[f.pos:f.pos + count]
        write_user(k, p, buf, data)
        f.pos += len(data)
        return len(data)
    if f.inode.kind == "dir":
        return -errno.EISDIR
    if f.inode.kind in V.MEM_DEVICES.values():
        return _read_mem_device(k, p, f.inode.kind, buf, count)
    count = min(count, MAX_RW_COUNT, max(f.inode.size - f.pos, 0))
    reach = user_span(k, p, buf, count, True)
    if count and not reach:
        return -errno.EFAULT
    data = f.inode.pread(f.pos, reach)
    write_user(k, p, buf, data)
    f.pos += len(data)
    return len(data)


def _read_mem_device(k, p, kind: str, buf: int, count: int) -> int:
    """read_null (EOF), read_zero / read_iter_zero (zeros), the random devices (the run's
    seeded generator): page by page, no more than the guest's mappings take."""
    if kind == "null":
        return 0
    reach = user_span(k, p, buf, min(count, MAX_RW_COUNT), True)
    if count and not reach:
        return -errno.EFAULT
    done = 0
    while done < reach:
        take = min(reach - done, 4096 - ((buf + done) & 4095))
        data = bytes(take) if kind in ("zero", "full") else k.rng.randbytes(take)
        write_user(k, p, buf + done, data)
        done += take
        if k.stop_reason:
            break
    return done


def _write_to(k, p, f: V.OpenFile, data: bytes) -> int:
    if f.epoll is not None:
        return -errno.EINVAL
    if f.pipe is not None and "w" not in f.pipe_end:
        return -errno.EBADF                     # a pipe's read end is not FMODE_WRITE
    if f.flags & V.O_ACCMODE == 0 and f.sink is None and f.pipe is None:
        return -errno.EBADF
    if f.pipe is not None:
        if f.pipe.readers == 0:
            from elfvm.emu.signals import sigpipe

            sigpipe(k, p)                       # delivered (or fatal) on the way out
            return -errno.EPIPE
        # pipe_write(): 16 pages of buffer; a writer waits for room (all of it for a write
        # of at most PIPE_BUF, which is atomic), a bigger write may return short
        room = PIPE_CAPACITY - len(f.pipe.buf)
        if room <= 0 or len(data) <= PIPE_BUF and room < len(data):
            if f.flags & O_NONBLOCK:
                return -errno.EAGAIN
            raise Blocked()
        f.pipe.buf += data[:room]
        f.pipe.wake(POLLIN | 0x40)            # | EPOLLRDNORM
        wake_all(k)
        return min(len(data), room)
    if f.sink is not None:
        f.sink += data
        if k.echo is not None:
            k.echo(f is p.fds.get(2) and f.sink is k.stderr, data)
        return len(data)
    ino = f.inode
    if ino.kind in V.MEM_DEVICES.values():          # write_null / write_full
        return -errno.ENOSPC if ino.kind == "full" else len(data)
    if ino.data is None:
        return -errno.EBADF
    pos = len(ino.data) if f.flags & V.O_APPEND else f.pos
    if pos > len(ino.data):
        ino.data += bytes(pos - len(ino.data))
    ino.data[pos:pos + len(data)] = data
    ino.attrs["mtime"] = k.clock_ns                # file_update_time()
    f.pos = pos + len(data)
    return len(data)


def sys_write(k, p, fd, buf, count):
    f = fdget(p, fd)
    if f.inode is not None and f.inode.kind == "null" and f.flags & V.O_ACCMODE:
        return min(count, MAX_RW_COUNT)      # write_null() never looks at the buffer
    if f.pipe is not None:                   # no more than the pipe can take is copied
        count = min(count, PIPE_CAPACITY)
    return _write_to(k, p, f, read_user(k, p, buf, min(count, MAX_RW_COUNT)))


def sys_writev(k, p, fd, iov, iovcnt):
    f = fdget(p, fd)
    data = bytearray()
    for i in range(iovcnt):
        base, ln = struct.unpack("<II", read_user(k, p, iov + 8 * i, 8))
        data += read_user(k, p, base, ln)
    return _write_to(k, p, f, bytes(data))


def sys_readv(k, p, fd, iov, iovcnt):
    total = 0
    for i in range(iovcnt):
        base, ln = struct.unpack("<II", read_user(k, p, iov + 8 * i, 8))
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
    try:
        f = _proc_open(k, p, path, flags)
    except OSError as e:
        return -e.errno
    if f is not None:
        return alloc_fd(p, f, cloexec=bool(flags & O_CLOEXEC))
    try:
        f = k.vfs.open(path, flags, mode)
    except V.VfsError as e:
        return -e.errno
    if f.inode.kind == "dir":
        f.dir_entries = None
    return alloc_fd(p, f, cloexec=bool(flags & O_CLOEXEC))


def _proc_open(k, p, path: str, flags: int) -> V.OpenFile | None:
    """open() of a /proc path (None: not one): its files and directories read-only; a
    /proc/PID/fd/N link opens that file anew (a pipe: the same pipe, its end as the mode
    says; captured output: the same capture), as proc_fd_link's followed path does."""
    ino = _proc_inode(k, p, path)
    if ino is None:
        return None
    acc = flags & V.O_ACCMODE
    found = procfs.proc_task(k, p, path)
    if found is not None and found.entry == "fd" and found.sub:
        f = found.task.fds[int(found.sub)]
        if f.pipe is not None:
            # fifo_open(): O_RDONLY a reader, O_WRONLY a writer, O_RDWR both (never blocks)
            end = {V.O_WRONLY: "w", V.O_RDWR: "rw"}.get(acc, "r")
            g = V.OpenFile(None, flags, pipe=f.pipe, pipe_end=end)
            _count_pipe(g, +1)
            return g
        if f.sink is not None:
            return V.OpenFile(None, flags, sink=f.sink)
        if f.inode is not None and (f.inode.host is not None or f.inode.path in k.vfs.overlay):
            try:
                return k.vfs.open(f.inode.path, flags, 0)
            except V.VfsError as e:
                raise OSError(e.errno, "") from None
    if flags & V.O_DIRECTORY and ino.kind != "dir":
        raise OSError(errno.ENOTDIR, "")
    if ino.kind == "dir" and acc:
        raise OSError(errno.EISDIR, "")
    if acc:
        raise OSError(errno.EACCES, "")    # r--r--r--: the model's files are read-only
    return V.OpenFile(ino, flags)


def sys_close(k, p, fd):
    return 0 if close_fd(k, p, s32(fd)) else -errno.EBADF


CLOSE_RANGE_UNSHARE, CLOSE_RANGE_CLOEXEC = 2, 4


def sys_close_range(k, p, fd, max_fd, flags):
    """close_range() (fs/file.c __close_range): close, or with CLOSE_RANGE_CLOEXEC mark
    close-on-exec, every open descriptor in [fd, max_fd]; CLOSE_RANGE_UNSHARE first gives the
    caller a table of its own when threads share it."""
    if flags & ~(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC) or fd > max_fd:
        return -errno.EINVAL
    if flags & CLOSE_RANGE_UNSHARE and any(q.fds is p.fds for q in k.procs.values() if q is not p):
        p.fds, p.cloexec = dup_fds(p.fds), set(p.cloexec)             # unshare_fd()
    for n in [n for n in sorted(p.fds) if fd <= n <= max_fd]:
        if flags & CLOSE_RANGE_CLOEXEC:
            p.cloexec.add(n)
        else:
            close_fd(k, p, n)
    return 0


def sys_lseek(k, p, fd, off, whence):
    f = fdget(p, fd)
    if f.pipe is not None or f.sink is not None or f.epoll is not None:
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
    f = fdget(p, fd)
    if f.pipe is not None or f.sink is not None or f.epoll is not None:
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
    write_user(k, p, result, struct.pack("<q", new))
    return 0


def sys_stat64(k, p, path, buf):
    ino = _lookup(k, p, read_cstr(k, p, path).decode("utf-8", "surrogateescape"))
    write_user(k, p, buf, _stat64(_stat_of(ino)))
    return 0


def sys_lstat64(k, p, path, buf):
    ino = _lookup(k, p, read_cstr(k, p, path).decode("utf-8", "surrogateescape"), follow=False)
    write_user(k, p, buf, _stat64(_stat_of(ino)))
    return 0


def sys_fstat64(k, p, fd, buf):
    f = fdget(p, fd)
    write_user(k, p, buf, _stat64(_stat_of(f.inode, f)))
    return 0


def _stat_at(k, p, dirfd, path_ptr, flags):
    path = read_cstr(k, p, path_ptr).decode("utf-8", "surrogateescape")
    if not path and flags & AT_EMPTY_PATH:
        f = fdget(p, dirfd)
        return _stat_of(f.inode, f)
    if not path.startswith("/") and s32(dirfd) != AT_FDCWD:
        path = os.path.join(fdget(p, dirfd).inode.path, path)
    return _stat_of(_lookup(k, p, path, follow=not flags & AT_SYMLINK_NOFOLLOW))


def sys_fstatat64(k, p, dirfd, path, buf, flags):
    write_user(k, p, buf, _stat64(_stat_at(k, p, dirfd, path, flags)))
    return 0


def sys_statx(k, p, dirfd, path, flags, mask, buf):
    write_user(k, p, buf, _statx(_stat_at(k, p, dirfd, path, flags)))
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
    try:
        target = procfs.proc_link(k, p, path)
        if target is None:
            target = k.vfs.readlink(path)
    except V.VfsError as e:
        return -e.errno
    data = os.fsencode(target)[:size]
    write_user(k, p, buf, data)
    return len(data)


def sys_getcwd(k, p, buf, size):
    data = os.fsencode(k.vfs.cwd) + b"\0"
    if len(data) > size:
        return -errno.ERANGE
    write_user(k, p, buf, data)
    return len(data)


def sys_chdir(k, p, path):
    path = read_cstr(k, p, path).decode("utf-8", "surrogateescape")
    ino = _lookup(k, p, path)
    if ino.kind != "dir":
        return -errno.ENOTDIR
    k.vfs.cwd = ino.path
    return 0


def sys_getdents64(k, p, fd, buf, count):
    f = fdget(p, fd)
    if f.inode is None or f.inode.kind != "dir":
        return -errno.ENOTDIR
    if f.dir_entries is None:
        try:
            f.dir_entries = procfs.proc_listdir(k, p, f.inode.path) or k.vfs.listdir(f.inode.path)
        except V.VfsError as e:
            return -e.errno
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
    write_user(k, p, buf, bytes(out))
    return len(out)


def sys_fcntl64(k, p, fd, cmd, arg):
    f = fdget(p, fd)
    fd = s32(fd)
    if cmd in (F_DUPFD, F_DUPFD_CLOEXEC):
        f.refs += 1
        return alloc_fd(p, f, arg, cloexec=cmd == F_DUPFD_CLOEXEC)
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
    f = fdget(p, fd)
    f.refs += 1
    _count_pipe(f, +1)
    return alloc_fd(p, f)


def sys_dup2(k, p, fd, fd2):
    f = fdget(p, fd)
    if s32(fd) == s32(fd2):
        return s32(fd2)
    close_fd(k, p, s32(fd2))
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
        f.pipe.attach(f.pipe_end, d)


def sys_pipe(k, p, fds):
    return sys_pipe2(k, p, fds, 0)


def sys_pipe2(k, p, fds, flags):
    pipe = k.vfs.new_pipe()
    nb = flags & O_NONBLOCK                     # the one status flag pipe2 sets on both ends
    r = V.OpenFile(None, nb, pipe=pipe, pipe_end="r")
    w = V.OpenFile(None, V.O_WRONLY | nb, pipe=pipe, pipe_end="w")
    rfd = alloc_fd(p, r, cloexec=bool(flags & O_CLOEXEC))
    wfd = alloc_fd(p, w, cloexec=bool(flags & O_CLOEXEC))
    write_user(k, p, fds, struct.pack("<ii", rfd, wfd))
    return 0


def sys_ioctl(k, p, fd, cmd, arg):
    f = fdget(p, fd)
    if cmd == FIONREAD and f.pipe is not None:
        write_u32(k, p, arg, len(f.pipe.buf))
        return 0
    return -errno.ENOTTY             # what a real non-tty (pipe/file) answers to terminal queries


def sys_unlink(k, p, path):
    try:
        k.vfs.unlink(read_cstr(k, p, path).decode("utf-8", "surrogateescape"))
    except V.VfsError as e:
        return -e.errno
    return 0


def sys_unlinkat(k, p, dirfd, path_ptr, flags):
    AT_REMOVEDIR = 0x200
    if flags & ~AT_REMOVEDIR:
        return -errno.EINVAL
    path = _path_at(k, p, dirfd, path_ptr)
    try:
        (k.vfs.rmdir if flags & AT_REMOVEDIR else k.vfs.unlink)(path)
    except V.VfsError as e:
        return -e.errno
    return 0


def sys_umask(k, p, mask):
    old = getattr(p, "umask", 0o022)
    p.umask = mask & 0o777
    return old


# ---------------------------------------------------------------- names, in the overlay
def _vfs_call(fn, *args) -> int:
    try:
        fn(*args)
    except V.VfsError as e:
        return -e.errno
    return 0


def sys_mkdirat(k, p, dirfd, path_ptr, mode):
    return _vfs_call(k.vfs.mkdir, _path_at(k, p, dirfd, path_ptr), mode & ~getattr(p, "umask", 0o022))


def sys_mkdir(k, p, path_ptr, mode):
    return sys_mkdirat(k, p, AT_FDCWD & 0xFFFFFFFF, path_ptr, mode)


def sys_rmdir(k, p, path_ptr):
    return _vfs_call(k.vfs.rmdir, _path_at(k, p, AT_FDCWD & 0xFFFFFFFF, path_ptr))


def sys_renameat2(k, p, olddir, old_ptr, newdir, new_ptr, flags=0):
    RENAME_NOREPLACE = 1
    if flags & ~RENAME_NOREPLACE:
        return -errno.EINVAL
    old, new = _path_at(k, p, olddir, old_ptr), _path_at(k, p, newdir, new_ptr)
    if flags & RENAME_NOREPLACE and k.vfs.exists(new):
        return -errno.EEXIST
    return _vfs_call(k.vfs.rename, old, new)


def sys_renameat(k, p, olddir, old_ptr, newdir, new_ptr):
    return sys_renameat2(k, p, olddir, old_ptr, newdir, new_ptr)


def sys_rename(k, p, old_ptr, new_ptr):
    cwd = AT_FDCWD & 0xFFFFFFFF
    return sys_renameat2(k, p, cwd, old_ptr, cwd, new_ptr)


def sys_symlinkat(k, p, target_ptr, dirfd, path_ptr):
    target = read_cstr(k, p, target_ptr).decode("utf-8", "surrogateescape")
    if not target:
        return -errno.ENOENT
    return _vfs_call(k.vfs.symlink, target, _path_at(k, p, dirfd, path_ptr))


def sys_symlink(k, p, target_ptr, path_ptr):
    return sys_symlinkat(k, p, target_ptr, AT_FDCWD & 0xFFFFFFFF, path_ptr)


def sys_linkat(k, p, olddir, old_ptr, newdir, new_ptr, flags):
    return _vfs_call(k.vfs.link, _path_at(k, p, olddir, old_ptr), _path_at(k, p, newdir, new_ptr))


def sys_link(k, p, old_ptr, new_ptr):
    cwd = AT_FDCWD & 0xFFFFFFFF
    return sys_linkat(k, p, cwd, old_ptr, cwd, new_ptr, 0)


def _set_attrs(k, p, dirfd, path_ptr, flags, **attrs) -> int:
    """chmod/chown/utimes on a path (or the fd itself with AT_EMPTY_PATH / a NULL path)."""
    ino = None
    path = read_cstr(k, p, path_ptr).decode("utf-8", "surrogateescape") if path_ptr else ""
    if not path:
        f = fdget(p, dirfd)
        if f.inode is None or f.pipe is not None:
            return -errno.EINVAL if f.pipe is None else 0
        ino = f.inode
    else:
        path = _path_at(k, p, dirfd, path_ptr)
    try:
        k.vfs.set_attrs(path or None, ino, follow=not flags & AT_SYMLINK_NOFOLLOW, **attrs)
    except V.VfsError as e:
        return -e.errno
    if ino is not None and ino.path in k.vfs.overlay and k.vfs.overlay[ino.path] is not ino:
        f = fdget(p, dirfd)                     # the descriptor now names the overlay copy
        f.inode = k.vfs.overlay[ino.path]
    return 0


def _mode_of(k, p, dirfd, path_ptr, flags) -> int:
    if not path_ptr or flags & AT_EMPTY_PATH and not read_cstr(k, p, path_ptr):
        return _stat_of(fdget(p, dirfd).inode)[2]
    return _stat_of(_lookup(k, p, _path_at(k, p, dirfd, path_ptr),
                            follow=not flags & AT_SYMLINK_NOFOLLOW))[2]


def sys_fchmodat(k, p, dirfd, path_ptr, mode, flags=0):
    kind = _mode_of(k, p, dirfd, path_ptr, 0) & ~0o7777
    return _set_attrs(k, p, dirfd, path_ptr, 0, mode=kind | mode & 0o7777)


def sys_chmod(k, p, path_ptr, mode):
    return sys_fchmodat(k, p, AT_FDCWD & 0xFFFFFFFF, path_ptr, mode)


def sys_fchmod(k, p, fd, mode):
    return sys_fchmodat(k, p, fd, 0, mode)


def sys_fchownat(k, p, dirfd, path_ptr, uid, gid, flags):
    attrs = {}
    if uid != 0xFFFFFFFF:
        attrs["uid"] = uid
    if gid != 0xFFFFFFFF:
        attrs["gid"] = gid
    return _set_attrs(k, p, dirfd, path_ptr, flags, **attrs)


def sys_chown32(k, p, path_ptr, uid, gid):
    return sys_fchownat(k, p, AT_FDCWD & 0xFFFFFFFF, path_ptr, uid, gid, 0)


def sys_lchown32(k, p, path_ptr, uid, gid):
    return sys_fchownat(k, p, AT_FDCWD & 0xFFFFFFFF, path_ptr, uid, gid, AT_SYMLINK_NOFOLLOW)


def sys_fchown32(k, p, fd, uid, gid):
    return sys_fchownat(k, p, fd, 0, uid, gid, 0)


def _utimens(k, p, dirfd, path_ptr, times, flags, time64: bool) -> int:
    """utimensat(): NULL times or UTIME_NOW -> the clock, UTIME_OMIT keeps the old time."""
    from elfvm.emu.sys_time import now_ns

    UTIME_NOW, UTIME_OMIT = (1 << 30) - 1, (1 << 30) - 2
    now = now_ns(k)
    vals = [(0, UTIME_NOW), (0, UTIME_NOW)]
    if times:
        fmt, size = ("<qqqq", 32) if time64 else ("<iiii", 16)
        a = struct.unpack(fmt, read_user(k, p, times, size))
        vals = [(a[0], a[1]), (a[2], a[3])]
    attrs = {}
    for name, (sec, nsec) in zip(("atime", "mtime"), vals):
        if nsec == UTIME_OMIT:
            continue
        if nsec != UTIME_NOW and not 0 <= nsec < 10**9:
            return -errno.EINVAL
        attrs[name] = now if nsec == UTIME_NOW else sec * 10**9 + nsec
    return _set_attrs(k, p, dirfd, path_ptr, flags, **attrs)


def sys_utimensat(k, p, dirfd, path_ptr, times, flags):
    return _utimens(k, p, dirfd, path_ptr, times, flags, False)


def sys_utimensat_time64(k, p, dirfd, path_ptr, times, flags):
    return _utimens(k, p, dirfd, path_ptr, times, flags, True)


def _truncate_inode(k, ino: V.Inode, length: int) -> V.Inode:
    if ino.kind == "dir":
        raise OSError(errno.EISDIR, "")
    if length < 0:
        raise OSError(errno.EINVAL, "")
    if ino.data is None:
        ino = k.vfs.copy_up(ino)
    if length < len(ino.data):
        del ino.data[length:]
    else:
        ino.data += bytes(length - len(ino.data))
    ino.attrs["mtime"] = k.clock_ns
    return ino


def sys_ftruncate64(k, p, fd, lo, hi):
    f = fdget(p, fd)
    if f.inode is None or f.pipe is not None or not f.flags & V.O_ACCMODE:
        return -errno.EINVAL if f.pipe is not None else -errno.EBADF
    f.inode = _truncate_inode(k, f.inode, lo | hi << 32)
    return 0


def sys_ftruncate(k, p, fd, length):
    return sys_ftruncate64(k, p, fd, length, 0)


def sys_truncate64(k, p, path_ptr, lo, hi):
    ino = _lookup(k, p, read_cstr(k, p, path_ptr).decode("utf-8", "surrogateescape"))
    _truncate_inode(k, ino, lo | hi << 32)
    return 0


def sys_truncate(k, p, path_ptr, length):
    return sys_truncate64(k, p, path_ptr, length, 0)


# ---------------------------------------------------------------- positional I/O, fs info


def sys_pread64(k, p, fd, buf, count, off_lo, off_hi):
    f = fdget(p, fd)
    if f.pipe is not None or f.sink is not None or f.epoll is not None:
        return -errno.ESPIPE
    if f.flags & V.O_ACCMODE == V.O_WRONLY:
        return -errno.EBADF
    if f.inode.kind == "dir":
        return -errno.EISDIR
    off = off_lo | off_hi << 32
    if off >> 63:
        return -errno.EINVAL
    count = min(count, MAX_RW_COUNT, max(f.inode.size - off, 0))
    reach = user_span(k, p, buf, count, True)
    if count and not reach:
        return -errno.EFAULT
    data = f.inode.pread(off, reach)
    write_user(k, p, buf, data)
    return len(data)


def sys_pwrite64(k, p, fd, buf, count, off_lo, off_hi):
    f = fdget(p, fd)
    if f.pipe is not None or f.sink is not None or f.epoll is not None:
        return -errno.ESPIPE
    off = off_lo | off_hi << 32
    if off >> 63:
        return -errno.EINVAL
    data = read_user(k, p, buf, min(count, MAX_RW_COUNT))
    saved = f.pos, f.flags
    f.pos, f.flags = off, f.flags & ~V.O_APPEND
    try:
        return _write_to(k, p, f, data)
    finally:
        f.pos, f.flags = saved[0], saved[1]


def sys_fchdir(k, p, fd):
    f = fdget(p, fd)
    if f.inode is None or f.inode.kind != "dir":
        return -errno.ENOTDIR
    k.vfs.cwd = f.inode.path
    return 0


def _statfs64(host: str) -> bytes:
    """struct statfs64 (i386): the host file system's figures, as a chroot would see them."""
    s = os.statvfs(host)
    return struct.pack("<IIQQQQQ2iII5I", 0xEF53, s.f_bsize, s.f_blocks, s.f_bfree, s.f_bavail,
                       s.f_files, s.f_ffree, 0, 0, s.f_namemax, s.f_frsize, s.f_flag & 0xFFFF,
                       0, 0, 0, 0)


def sys_statfs64(k, p, path_ptr, size, buf):
    if size != 84:
        return -errno.EINVAL
    ino = _lookup(k, p, read_cstr(k, p, path_ptr).decode("utf-8", "surrogateescape"))
    write_user(k, p, buf, _statfs64(ino.host or k.vfs.root))
    return 0


def sys_fstatfs64(k, p, fd, size, buf):
    if size != 84:
        return -errno.EINVAL
    f = fdget(p, fd)
    host = f.inode.host if f.inode is not None and f.inode.host else k.vfs.root
    write_user(k, p, buf, _statfs64(host))
    return 0


def sys_xattr_path(k, p, path_ptr, *rest):
    """getxattr/lgetxattr/listxattr/llistxattr/setxattr...: a file system without xattrs
    (the file must exist: ENOENT first, then EOPNOTSUPP)."""
    _lookup(k, p, read_cstr(k, p, path_ptr).decode("utf-8", "surrogateescape"), follow=False)
    return -errno.EOPNOTSUPP


def sys_xattr_fd(k, p, fd, *rest):
    fdget(p, fd)
    return -errno.EOPNOTSUPP


def sys_fadvise64_64(k, p, fd, off_lo, off_hi, len_lo, len_hi, advice):
    f = fdget(p, fd)
    if f.pipe is not None:
        return -errno.ESPIPE
    return 0 if 0 <= advice <= 5 else -errno.EINVAL       # advice only: nothing to do


def sys_fadvise64(k, p, fd, off_lo, off_hi, length, advice):
    return sys_fadvise64_64(k, p, fd, off_lo, off_hi, length, 0, advice)


def _copy_range(k, p, fin: V.OpenFile, fout: V.OpenFile, off_in: int | None, length: int) -> int:
    """Copy up to length bytes from a file to a file or pipe, in pieces of MAX_COPY bytes
    (host memory stays bounded): the in-kernel copy of copy_file_range and sendfile."""
    if fin.inode is None or fin.pipe is not None or fin.sink is not None or fin.inode.kind == "dir":
        return -errno.EINVAL
    if fin.inode.host is None and fin.inode.path.startswith("/proc/"):
        return -errno.EINVAL                 # a generated /proc file has no ->splice_read
    if fin.flags & V.O_ACCMODE == V.O_WRONLY or not fout.flags & V.O_ACCMODE and fout.sink is None:
        return -errno.EBADF
    pos = fin.pos if off_in is None else off_in
    done = 0
    while done < length:
        chunk = fin.inode.pread(pos + done, min(length - done, MAX_COPY))
        if not chunk:
            break
        try:
            n = _write_to(k, p, fout, chunk)
        except Blocked:                      # a full pipe: what was copied so far, else sleep
            if done:
                break
            raise
        if n < 0:
            return n if done == 0 else done
        done += n
        if n < len(chunk):
            break
    if off_in is None:
        fin.pos += done
    return done


MAX_COPY = 1 << 20


def sys_copy_file_range(k, p, fd_in, off_in_ptr, fd_out, off_out_ptr, length, flags):
    if flags:
        return -errno.EINVAL
    fin, fout = fdget(p, fd_in), fdget(p, fd_out)
    if fout.pipe is not None or fout.sink is not None:
        return -errno.EINVAL                 # copy_file_range wants two regular files
    off_in = struct.unpack("<q", read_user(k, p, off_in_ptr, 8))[0] if off_in_ptr else None
    saved = None
    if off_out_ptr:
        saved = fout.pos
        fout.pos = struct.unpack("<q", read_user(k, p, off_out_ptr, 8))[0]
    n = _copy_range(k, p, fin, fout, off_in, min(length, MAX_RW_COUNT))
    if off_in_ptr and n > 0:
        write_user(k, p, off_in_ptr, struct.pack("<q", off_in + n))
    if saved is not None:
        if n > 0:
            write_user(k, p, off_out_ptr, struct.pack("<q", fout.pos))
        fout.pos = saved
    return n


def sys_sendfile(k, p, out_fd, in_fd, off_ptr, count):
    """sendfile() with a 32-bit offset (compat_sys_sendfile)."""
    fin, fout = fdget(p, in_fd), fdget(p, out_fd)
    off = struct.unpack("<i", read_user(k, p, off_ptr, 4))[0] if off_ptr else None
    if off is not None and off < 0:
        return -errno.EINVAL
    n = _copy_range(k, p, fin, fout, off, min(count, MAX_RW_COUNT))
    if off_ptr and n > 0:
        write_user(k, p, off_ptr, struct.pack("<i", off + n))
    return n


def sys_sendfile64(k, p, out_fd, in_fd, off_ptr, count):
    fin, fout = fdget(p, in_fd), fdget(p, out_fd)
    off = struct.unpack("<q", read_user(k, p, off_ptr, 8))[0] if off_ptr else None
    n = _copy_range(k, p, fin, fout, off, min(count, MAX_RW_COUNT))
    if off_ptr and n > 0:
        write_user(k, p, off_ptr, struct.pack("<q", off + n))
    return n


# ---------------------------------------------------------------- poll
POLLIN, POLLPRI, POLLOUT, POLLERR, POLLHUP, POLLNVAL = 1, 2, 4, 8, 0x10, 0x20


def file_poll(f: V.OpenFile) -> int:
    """What an open file is ready for (its f_op->poll): files and devices always, a pipe's
    read end with data or no writer left (POLLHUP), its write end with room, an epoll
    instance with an event ready."""
    if f.pipe is not None:                      # pipe_poll(): FMODE_READ and FMODE_WRITE parts
        mask = 0
        if "r" in f.pipe_end:
            mask |= (POLLIN if f.pipe.buf else 0) | (POLLHUP if not f.pipe.writers else 0)
        if "w" in f.pipe_end:
            room = PIPE_CAPACITY - len(f.pipe.buf) >= PIPE_BUF
            mask |= (POLLOUT if room else 0) | (POLLERR if not f.pipe.readers else 0)
        return mask
    if f.epoll is not None:
        return POLLIN if f.epoll.has_ready(file_poll) else 0
    return POLLIN | POLLOUT if f.sink is None else POLLOUT


def _poll_mask(p, fd: int, events: int) -> int:
    if fd < 0:
        return 0
    f = p.fds.get(fd)
    return POLLNVAL if f is None else file_poll(f)


def poll_wait(k, p, ready: int, deadline: int | None) -> None:
    """The end of one pass of do_poll()/do_select(): returns when the call gives its results
    now (something is ready, or the timeout has passed). Otherwise the task sleeps (the call
    is re-executed when woken) or a deliverable signal ends it: -ERESTARTNOHAND, -EINTR once a
    handler runs (poll is never restarted after one, whatever SA_RESTART says)."""
    from elfvm.emu.sys_time import sleep_until

    if not ready and deliverable(p) is not None:
        raise Blocked(nohand=True)
    if ready or deadline is not None and k.clock_ns >= deadline:
        p.futex_key, p.wake_at, p.timed_out = None, None, False
        return
    try:
        if deadline is not None:
            sleep_until(k, p, deadline)      # raises: the deadline is still ahead
    except Blocked:
        pass
    raise Blocked(nohand=True)


def do_poll(k, p, fds_ptr: int, nfds: int, deadline: int | None) -> int:
    """poll(): the revents of each pollfd; sleeps (re-executed when woken) until one is ready
    or the virtual clock passes the deadline (None: no timeout)."""
    if nfds > 1024 * 1024:                   # RLIMIT_NOFILE's hard limit
        return -errno.EINVAL
    raw = read_user(k, p, fds_ptr, 8 * nfds)
    out, ready = bytearray(raw), 0
    for i in range(nfds):
        fd, events, _ = struct.unpack_from("<ihh", raw, 8 * i)
        rev = _poll_mask(p, fd, events) & (events | POLLERR | POLLHUP | POLLNVAL)
        struct.pack_into("<h", out, 8 * i + 6, rev)
        ready += bool(rev)
    poll_wait(k, p, ready, deadline)
    write_user(k, p, fds_ptr, bytes(out))
    return ready


def sys_poll(k, p, fds_ptr, nfds, timeout_ms):
    from elfvm.emu.sys_time import SLEEPING, now_ns

    t = s32(timeout_ms)
    deadline = None if t < 0 else (p.wake_at if p.futex_key == SLEEPING else now_ns(k) + t * 10**6)
    return do_poll(k, p, fds_ptr, nfds, deadline)


def poll_deadline(k, p, tsp: int, fmt: str) -> int | None:
    """poll_select_set_timeout(): the absolute deadline of a relative timespec (None: no
    timeout); a call re-executed after a wake-up keeps its first deadline."""
    from elfvm.emu.sys_time import SLEEPING, now_ns

    if not tsp:
        return None
    if p.futex_key == SLEEPING:
        return p.wake_at
    sec, nsec = struct.unpack(fmt, read_user(k, p, tsp, struct.calcsize(fmt)))
    if sec < 0 or not 0 <= nsec < 10**9:
        raise OSError(errno.EINVAL, "")
    return now_ns(k) + sec * 10**9 + nsec


def _time_left(k, p, tsp: int, fmt: str, deadline: int | None) -> None:
    """poll_select_finish(): the time left goes back to *tsp (a fault there is ignored)."""
    if deadline is None:
        return
    left = max(0, deadline - k.clock_ns)
    try:
        write_user(k, p, tsp, struct.pack(fmt, left // 10**9, left % 10**9))
    except EFault:
        pass


def masked_wait(k, p, umask: int, sigsetsize: int, tsp: int, fmt: str, call) -> int:
    """ppoll/pselect6: the timeout, the call's signal mask for its duration (set_user_sigmask),
    the wait, the time left written back, and the old mask restored unless a signal
    interrupted the call (the handler's frame then carries the old mask; sigreturn restores
    it)."""
    from elfvm.emu.signals import restore_saved_sigmask, set_user_sigmask

    deadline = poll_deadline(k, p, tsp, fmt)
    err = set_user_sigmask(k, p, umask, sigsetsize)
    if err:
        return err
    try:
        ret = call(deadline)
    except Blocked:
        if deliverable(p) is not None:      # interrupted now: -ERESTARTNOHAND
            _time_left(k, p, tsp, fmt, deadline)
        raise
    except BaseException:
        restore_saved_sigmask(p)
        raise
    restore_saved_sigmask(p)
    _time_left(k, p, tsp, fmt, deadline)
    return ret


def _ppoll(k, p, fds_ptr, nfds, tsp, sigmask, sigsetsize, time64: bool):
    return masked_wait(k, p, sigmask, sigsetsize, tsp, "<qq" if time64 else "<ii",
                       lambda deadline: do_poll(k, p, fds_ptr, nfds, deadline))


def sys_ppoll(k, p, fds_ptr, nfds, tsp, sigmask, sigsetsize):
    return _ppoll(k, p, fds_ptr, nfds, tsp, sigmask, sigsetsize, False)


def sys_ppoll_time64(k, p, fds_ptr, nfds, tsp, sigmask, sigsetsize):
    return _ppoll(k, p, fds_ptr, nfds, tsp, sigmask, sigsetsize, True)


# ---------------------------------------------------------------- select
POLLIN_SET = POLLIN | POLLHUP | POLLERR | 0x40 | 0x80       # | EPOLLRDNORM | EPOLLRDBAND
POLLOUT_SET = POLLOUT | POLLERR | 0x100 | 0x200             # | EPOLLWRNORM | EPOLLWRBAND
POLLEX_SET = POLLPRI
NR_OPEN_DEFAULT = 64                     # the first fd table's size (BITS_PER_LONG, 64-bit)


def _max_fds(p) -> int:
    """fdt->max_fds: 64 slots, grown as expand_fdtable() does (powers of two of 128)."""
    top = max(p.fds, default=0)
    if top < NR_OPEN_DEFAULT:
        return NR_OPEN_DEFAULT
    n = 1
    while n < top // 128 + 1:
        n *= 2
    return 128 * n


def do_select(k, p, n: int, sets: tuple[int, int, int], deadline: int | None) -> int:
    """compat_core_sys_select() + do_select(): fd_set bitmaps of 32-bit words; a descriptor in
    a set that is not open is EBADF; the sets come back holding only the ready ones."""
    if s32(n) < 0:
        return -errno.EINVAL
    n = min(n, _max_fds(p))
    nbytes = (n + 31) // 32 * 4
    want = [int.from_bytes(read_user(k, p, ptr, nbytes), "little") if ptr else 0 for ptr in sets]
    res, ready = [0, 0, 0], 0
    for fd in range(n):
        b = 1 << fd
        if not (want[0] | want[1] | want[2]) & b:
            continue
        if fd not in p.fds:
            return -errno.EBADF
        mask = _poll_mask(p, fd, POLLIN | POLLOUT | POLLPRI)
        for i, bits in enumerate((POLLIN_SET, POLLOUT_SET, POLLEX_SET)):
            if want[i] & b and mask & bits:
                res[i] |= b
                ready += 1
    poll_wait(k, p, ready, deadline)
    for ptr, bits in zip(sets, res):
        if ptr:
            write_user(k, p, ptr, bits.to_bytes(nbytes, "little"))
    return ready


def _pselect6(k, p, n, inp, outp, exp, tsp, sig, time64: bool):
    """pselect6(): the sixth argument points at {sigset pointer, sigset size}."""
    umask, size = struct.unpack("<II", read_user(k, p, sig, 8)) if sig else (0, 0)
    return masked_wait(k, p, umask, size, tsp, "<qq" if time64 else "<ii",
                       lambda deadline: do_select(k, p, n, (inp, outp, exp), deadline))


def sys_pselect6(k, p, n, inp, outp, exp, tsp, sig):
    return _pselect6(k, p, n, inp, outp, exp, tsp, sig, False)


def sys_pselect6_time64(k, p, n, inp, outp, exp, tsp, sig):
    return _pselect6(k, p, n, inp, outp, exp, tsp, sig, True)
