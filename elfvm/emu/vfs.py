"""The guest's view of the file system: the host tree read-only, writes in an in-memory overlay.

The host is protected: no host file is ever opened for writing. A guest write goes to an
overlay copy of the file (thrown away at the end), unless `write_dir` names a host directory
where such files may be created (the overlay is then saved there by `save_overlay`, every name
resolved beneath that directory without following a symlink: elfvm.emu.writedir).
Paths are resolved inside `root` (the --sysroot), as a chrooted process would see them.
"""


import errno
import os
import shutil
import stat as stat_mod
import tempfile
from dataclasses import dataclass, field



class VfsError(Exception):
    def __init__(self, err: int):
        super().__init__(os.strerror(err))
        self.errno = err


@dataclass(repr=False, eq=False)
class Inode:
    """What an open file description points at: a host file, an overlay file or a pipe."""

    path: str                       # the guest path
    host: str | None                # the host path (None: overlay-only or pipe)
    st: os.stat_result | None
    data: bytearray | None = None   # overlay contents (copied on first write)
    kind: str = "file"              # file | dir | symlink | pipe | tty-out
    link: str | None = None         # an overlay symlink's target
    attrs: dict = field(default_factory=dict)   # set in the overlay: mode, uid, gid, atime, mtime (ns)

    @property
    def size(self) -> int:
        if self.data is not None:
            return len(self.data)
        return self.st.st_size if self.st is not None else 0

    def key(self) -> tuple:
        """The page-cache key: (dev, ino) of the host file, or the overlay path."""
        if self.data is None and self.st is not None:
            return ("host", self.st.st_dev, self.st.st_ino)
        return ("overlay", self.path)

    def pread(self, off: int, n: int) -> bytes:
        if self.data is not None:
            return bytes(self.data[off:off + n])
        if self.host is None or n <= 0:
            return b""
        fd = os.open(self.host, os.O_RDONLY)
        try:
            return os.pread(fd, n, off)
        finally:
            os.close(fd)

    def read_into(self, chunks: list[tuple[int, memoryview | bytearray]]) -> None:
        """pread() into buffers: each (offset, buffer), in offset order, gets the file's bytes
        there; what lies past the end of the file is left as it is. Buffers whose offsets
        follow each other are filled by one preadv, all with one open."""
        if self.data is not None:
            for off, buf in chunks:
                part = self.data[off:off + len(buf)]
                buf[:len(part)] = part
            return
        if self.host is None or not chunks:
            return
        fd = os.open(self.host, os.O_RDONLY)
        try:
            i = 0
            while i < len(chunks):
                j, end = i + 1, chunks[i][0] + len(chunks[i][1])
                while j < len(chunks) and chunks[j][0] == end:
                    end += len(chunks[j][1])
                    j += 1
                os.preadv(fd, [buf for _, buf in chunks[i:j]], chunks[i][0])
                i = j
        finally:
            os.close(fd)


class GuestOutput:
    """A guest's captured stdout or stderr: in memory up to SPOOL_BYTES, then in a temporary
    file, so a guest that prints forever costs disk, never the host's memory (issue 10)."""

    SPOOL_BYTES = 8 << 20

    def __init__(self):
        self._f = tempfile.SpooledTemporaryFile(max_size=self.SPOOL_BYTES)
        self._n = 0

    def __iadd__(self, data: bytes) -> "GuestOutput":
        self._f.write(data)
        self._n += len(data)
        return self

    def __len__(self) -> int:
        return self._n

    def __bytes__(self) -> bytes:
        self._f.seek(0)
        data = self._f.read()
        self._f.seek(0, os.SEEK_END)
        return data

    def copy_to(self, out) -> None:
        """Write every byte to the binary file `out`, a chunk at a time."""
        self._f.seek(0)
        shutil.copyfileobj(self._f, out, 1 << 20)
        self._f.seek(0, os.SEEK_END)


@dataclass(repr=False, eq=False)
class Pipe:
    """A pipe's buffer and its open ends (pipe_inode_info)."""

    buf: bytearray = field(default_factory=bytearray)
    readers: int = 0
    writers: int = 0
    ino: int = 0                    # its pipefs inode number (fstat, /proc/PID/fd's pipe:[N])
    watchers: list = field(default_factory=list)   # epoll items' ep_poll_callback(key)

    def wake(self, key: int) -> None:
        """wake_up_interruptible_poll() of its wait queues: writes wake with EPOLLIN, reads
        with EPOLLOUT, a close with every event (key 0); epoll items watching it hear it."""
        for callback in list(self.watchers):
            callback(self, key)

    def attach(self, end: str, d: int) -> None:
        """A descriptor on `end` ("r", "w" or "rw": fifo_open with O_RDWR is both a reader and
        a writer) opened (+1) or released (-1)."""
        if "r" in end:
            self.readers += d
        if "w" in end:
            self.writers += d


def fifo_ino(f: "OpenFile") -> int:
    """The inode number of a pipe end or of captured stdin/stdout/stderr (a pipe natively)."""
    return f.pipe.ino if f.pipe is not None else 1000 + id(f.sink) % 1000


@dataclass(repr=False, eq=False)
class OpenFile:
    """struct file: an open file description, shared by dup() and fork()."""

    inode: Inode | None
    flags: int
    pos: int = 0
    pipe: Pipe | None = None
    pipe_end: str = ""              # "r" | "w" | "rw" (a /proc/PID/fd/N link opened O_RDWR)
    sink: object = None             # captured stdout/stderr (GuestOutput); stdin's bytearray
    dir_entries: list | None = None
    refs: int = 1
    epoll: object = None            # an epoll instance (elfvm.emu.sys_epoll.EventPoll)


# drivers/char/mem.c: the memory devices a guest may use (1,3 null; 1,5 zero; 1,7 full;
# 1,8 random; 1,9 urandom), answered by the emulated kernel, never opened on the host
MEM_DEVICES = {(1, 3): "null", (1, 5): "zero", (1, 7): "full", (1, 8): "random", (1, 9): "urandom"}
O_ACCMODE, O_WRONLY, O_RDWR = 3, 1, 2
PIPE_INO_BASE = 10000
O_CREAT, O_EXCL, O_TRUNC, O_APPEND, O_DIRECTORY = 0o100, 0o200, 0o1000, 0o2000, 0o200000


@dataclass(repr=False, eq=False)
class Vfs:
    """The guest's file system: the read-only --sysroot, the overlay of its writes, its cwd."""

    root: str = "/"
    cwd: str = "/"
    write_dir: str | None = None
    overlay: dict = field(default_factory=dict)      # guest path -> Inode with data
    whiteouts: set = field(default_factory=set)      # host names the guest removed or renamed
    writes_refused: list = field(default_factory=list)
    save_refused: list = field(default_factory=list)   # (guest path, why) not saved to write_dir
    pipes_made: int = 0                              # pipefs: the next pipe's inode number

    def new_pipe(self) -> Pipe:
        """pipe(): a new pipe with both ends open, its inode numbered in creation order."""
        self.pipes_made += 1
        return Pipe(readers=1, writers=1, ino=PIPE_INO_BASE + self.pipes_made)

    def host_path(self, path: str) -> str:
        """The host path of a guest path (absolute or relative to cwd), kept inside root."""
        full = os.path.normpath(os.path.join(self.cwd, path))
        if self.root in ("/", ""):
            return full
        return os.path.join(self.root, full.lstrip("/"))

    def resolved_host_path(self, gp: str, follow: bool = True) -> str:
        """The host path of guest path gp with every symbolic link on the way resolved inside
        root, as a chrooted process sees it (an absolute link target is under the sysroot,
        never the host's own file); the last component stays a link unless `follow`."""
        if self.root in ("/", ""):
            return self.host_path(gp)
        from elfvm.kernel.binfmt_elf import resolve_in_root
        from elfvm.kernel.process import ExecFailure

        try:
            if follow or gp == "/":
                resolved = resolve_in_root(self.root, gp)
            else:
                resolved = os.path.join(resolve_in_root(self.root, os.path.dirname(gp)),
                                        os.path.basename(gp))
        except ExecFailure as e:
            raise VfsError(e.errno) from None
        return os.path.join(self.root, resolved.lstrip("/"))

    def d_path(self, ino: "Inode") -> str:
        """The name /proc/PID/maps shows for a mapped file: the path with symlinks resolved
        (fs/d_path.c), as seen from the guest's root."""
        if ino.host is None:
            return ino.path
        if self.root in ("/", ""):
            return os.path.realpath(ino.host)
        from elfvm.kernel.binfmt_elf import resolve_in_root

        try:
            return resolve_in_root(self.root, ino.path)
        except Exception:
            return ino.path

    def host_d_path(self, host: str) -> str:
        """d_path() of a host file as the guest sees it (/proc/PID/exe): absolute, symlinks
        resolved, relative to the root; a file outside the root (PROGRAM given by its host
        path) keeps its host path."""
        real = os.path.realpath(host)
        if self.root in ("/", ""):
            return real
        root = os.path.realpath(self.root)
        return "/" + os.path.relpath(real, root) if real.startswith(root + "/") else real

    def guest_path(self, path: str) -> str:
        gp = os.path.normpath(os.path.join(self.cwd, path))
        return "/" + gp.lstrip("/") if gp.startswith("//") else gp     # Linux: // is /

    def lookup(self, path: str, follow: bool = True, depth: int = 0) -> Inode:
        gp = self.guest_path(path)
        if self.whited_out(gp):
            raise VfsError(errno.ENOENT)
        if gp in self.overlay:
            ino = self.overlay[gp]
            if ino.kind == "symlink" and follow:
                if depth >= 40:
                    raise VfsError(errno.ELOOP)
                return self.lookup(os.path.join(os.path.dirname(gp), ino.link), True, depth + 1)
            return ino
        hp = self.resolved_host_path(gp, follow)
        try:
            st = os.stat(hp) if follow else os.lstat(hp)
        except OSError as e:
            raise VfsError(e.errno or errno.ENOENT) from None
        kind = "dir" if stat_mod.S_ISDIR(st.st_mode) else "file"
        if stat_mod.S_ISCHR(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) in MEM_DEVICES:
            kind = MEM_DEVICES[os.major(st.st_rdev), os.minor(st.st_rdev)]
        elif not stat_mod.S_ISREG(st.st_mode) and kind != "dir" and follow:
            kind = "special"                 # another device, FIFO or socket of the host
        return Inode(gp, hp, st, kind=kind)

    def open(self, path: str, flags: int, mode: int = 0o644) -> OpenFile:
        gp = self.guest_path(path)
        try:
            ino = self.lookup(path)
            if flags & O_CREAT and flags & O_EXCL:
                raise VfsError(errno.EEXIST)
        except VfsError as e:
            if e.errno != errno.ENOENT or not flags & O_CREAT:
                raise
            self.parent_dir(gp)
            ino = Inode(gp, None, None, bytearray(), attrs={"mode": 0o100000 | mode & 0o7777})
            self.overlay[gp] = ino
            self.whiteouts.discard(gp)
        if ino.kind == "dir" and flags & O_ACCMODE != 0:
            raise VfsError(errno.EISDIR)
        if flags & O_DIRECTORY and ino.kind != "dir":
            raise VfsError(errno.ENOTDIR)
        if ino.kind in MEM_DEVICES.values():       # /dev/null, zero, full, random: no copy-up
            return OpenFile(ino, flags)
        if ino.kind == "special":                  # the host's devices and FIFOs stay out of reach
            raise VfsError(errno.EACCES)
        if flags & O_ACCMODE in (O_WRONLY, O_RDWR) and ino.data is None:
            # copy-up: the host file stays untouched
            ino = self.copy_up(ino)
        if flags & O_TRUNC and ino.data is not None and flags & O_ACCMODE:
            del ino.data[:]
        return OpenFile(ino, flags)

    def copy_up(self, ino: Inode) -> Inode:
        """The overlay copy of a host file or directory (its contents, not its host path:
        nothing the guest does reaches the host file)."""
        if ino.path in self.overlay:
            return self.overlay[ino.path]
        if ino.kind == "dir":
            new = Inode(ino.path, ino.host, ino.st, None, "dir", attrs=dict(ino.attrs))
        else:
            data = bytearray(ino.pread(0, ino.size)) if ino.host else bytearray()
            new = Inode(ino.path, None, ino.st, data, ino.kind, attrs=dict(ino.attrs))
        self.overlay[ino.path] = new
        return new

    # --- the overlay's name operations: the host tree is never changed -----------------------
    def whited_out(self, gp: str) -> bool:
        """gp or one of its directories was removed (or renamed away) by the guest."""
        if not self.whiteouts:
            return False
        while True:
            if gp in self.whiteouts and gp not in self.overlay:
                return True
            parent = os.path.dirname(gp)
            if parent == gp:                 # "/", "//" (normpath keeps two leading slashes), ""
                return False
            gp = parent

    def parent_dir(self, gp: str) -> Inode:
        """The directory a new name goes in: ENOENT / ENOTDIR as the kernel's lookup."""
        parent = self.lookup(os.path.dirname(gp) or "/")
        if parent.kind != "dir":
            raise VfsError(errno.ENOTDIR)
        return parent

    def exists(self, path: str) -> bool:
        try:
            self.lookup(path, follow=False)
        except VfsError:
            return False
        return True

    def _remove(self, gp: str) -> None:
        """Drop a name: its overlay entry (and what lies below it), and a whiteout over the
        host's."""
        for name in [n for n in self.overlay if n == gp or n.startswith(gp + "/")]:
            del self.overlay[name]
        if os.path.lexists(self.host_path(gp)):
            self.whiteouts.add(gp)

    def unlink(self, path: str) -> None:
        gp = self.guest_path(path)
        ino = self.lookup(path, follow=False)
        if ino.kind == "dir":
            raise VfsError(errno.EISDIR)
        if ino.attrs.get("nlink", 1) > 1:
            ino.attrs["nlink"] -= 1
        self._remove(gp)

    def mkdir(self, path: str, mode: int) -> None:
        gp = self.guest_path(path)
        if self.exists(path):
            raise VfsError(errno.EEXIST)
        self.parent_dir(gp)
        self.overlay[gp] = Inode(gp, None, None, None, "dir", attrs={"mode": 0o040000 | mode & 0o7777})
        self.whiteouts.discard(gp)

    def rmdir(self, path: str) -> None:
        gp = self.guest_path(path)
        ino = self.lookup(path, follow=False)
        if ino.kind != "dir":
            raise VfsError(errno.ENOTDIR)
        if gp == "/" or len(self.listdir(path)) > 2:
            raise VfsError(errno.ENOTEMPTY if gp != "/" else errno.EBUSY)
        self._remove(gp)

    def symlink(self, target: str, path: str) -> None:
        gp = self.guest_path(path)
        if self.exists(path):
            raise VfsError(errno.EEXIST)
        self.parent_dir(gp)
        self.overlay[gp] = Inode(gp, None, None, None, "symlink", link=target,
                                 attrs={"mode": 0o120777})
        self.whiteouts.discard(gp)

    def link(self, old: str, new: str) -> None:
        """A hard link: one overlay inode under two names."""
        src = self.lookup(old, follow=False)
        if src.kind == "dir":
            raise VfsError(errno.EPERM)
        gp = self.guest_path(new)
        if self.exists(new):
            raise VfsError(errno.EEXIST)
        self.parent_dir(gp)
        ino = self.copy_up(src) if src.kind == "file" else src
        ino.attrs["nlink"] = ino.attrs.get("nlink", 1) + 1
        self.overlay[gp] = ino
        self.whiteouts.discard(gp)

    def rename(self, old: str, new: str) -> None:
        """rename(): files and symlinks move into the overlay; an overlay directory moves with
        what is in it; a host directory cannot be moved in the overlay (EXDEV: mv copies it)."""
        go, gn = self.guest_path(old), self.guest_path(new)
        src = self.lookup(old, follow=False)
        if go == gn:
            return
        if gn.startswith(go + "/"):
            raise VfsError(errno.EINVAL)
        self.parent_dir(gn)
        if self.exists(new):
            dst = self.lookup(new, follow=False)
            if dst.kind == "dir" and src.kind != "dir":
                raise VfsError(errno.EISDIR)
            if src.kind == "dir" and dst.kind != "dir":
                raise VfsError(errno.ENOTDIR)
            if dst.kind == "dir" and len(self.listdir(new)) > 2:
                raise VfsError(errno.ENOTEMPTY)
        if src.kind == "dir" and (src.host is not None or go not in self.overlay):
            raise VfsError(errno.EXDEV)
        moved = {n: i for n, i in self.overlay.items() if n == go or n.startswith(go + "/")}
        if src.kind == "file" and go not in self.overlay:
            moved[go] = self.copy_up(src)
        self._remove(gn)
        self._remove(go)
        for name, ino in moved.items():
            dest = gn + name[len(go):]
            ino.path = dest
            self.overlay[dest] = ino
            self.whiteouts.discard(dest)

    def set_attrs(self, path: str | None, ino: Inode | None = None, follow: bool = True, **attrs) -> None:
        """chmod / chown / utimes: recorded on the overlay copy of the file."""
        if ino is None:
            ino = self.lookup(path, follow=follow)
        if ino.kind in ("file", "dir") and ino.path not in self.overlay:
            ino = self.copy_up(ino)
        ino.attrs.update(attrs)

    def listdir(self, path: str) -> list[tuple[str, int]]:
        """(name, d_type) entries of a directory, host entries plus overlay files in it. The
        host entries come in the host file system's own order (what getdents gives a native
        run of the same program: tar, find and du print in that order)."""
        ino = self.lookup(path)
        if ino.kind != "dir":
            raise VfsError(errno.ENOTDIR)
        out = [(".", 4), ("..", 4)]
        try:
            if ino.host is None:                     # a directory that only the overlay has
                raise FileNotFoundError
            with os.scandir(ino.host) as it:
                for e in it:
                    d_type = 4 if e.is_dir(follow_symlinks=False) else 10 if e.is_symlink() else 8
                    out.append((e.name, d_type))
        except OSError:
            pass
        out = [(n, t) for n, t in out if n in (".", "..")
               or not self.whited_out(os.path.join(ino.path, n))]
        names = {n for n, _ in out}
        for gp in sorted(self.overlay):
            if os.path.dirname(gp) == ino.path and os.path.basename(gp) not in names and gp != "/":
                kind = self.overlay[gp].kind
                out.append((os.path.basename(gp), {"dir": 4, "symlink": 10}.get(kind, 8)))
        return out

    def readlink(self, path: str) -> str:
        gp = self.guest_path(path)
        if self.whited_out(gp):
            raise VfsError(errno.ENOENT)
        if gp in self.overlay:
            ino = self.overlay[gp]
            if ino.kind != "symlink":
                raise VfsError(errno.EINVAL)
            return ino.link
        try:
            return os.readlink(self.resolved_host_path(gp, follow=False))
        except OSError as e:
            raise VfsError(e.errno or errno.EINVAL) from None

    def save_overlay(self) -> list[str]:
        """Write the overlay files under write_dir, resolved beneath it (elfvm.emu.writedir:
        no symlink, hard link or `..` found there leads outside); returns the host paths saved.
        A file that cannot be saved safely is listed in `save_refused` with the reason."""
        if not self.write_dir:
            return []
        from elfvm.emu.writedir import WriteDir     # only a run with --write-dir saves

        wd = WriteDir(self.write_dir)
        saved = []
        for gp, ino in sorted(self.overlay.items()):    # parents sort before their entries
            if gp.startswith("/proc/") or gp == "/":
                continue
            mode = ino.attrs.get("mode", ino.st.st_mode if ino.st is not None else 0o644)
            try:
                if ino.kind == "dir":
                    if ino.host is None:
                        wd.mkdir(gp, mode)
                    continue
                if ino.kind == "symlink":
                    wd.symlink(ino.link, gp)
                    continue
                if ino.data is None:
                    continue
                saved.append(wd.write_file(gp, ino.data, mode & 0o7777))
                if "mtime" in ino.attrs:
                    wd.utime(gp, (ino.attrs.get("atime", ino.attrs["mtime"]), ino.attrs["mtime"]))
            except OSError as e:
                if not (ino.kind == "dir" and e.errno == errno.EEXIST):
                    self.save_refused.append((gp, e.strerror or str(e)))
        return saved
