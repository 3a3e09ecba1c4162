"""The guest's view of the file system: the host tree read-only, writes in an in-memory overlay.

The host is protected: no host file is ever opened for writing. A guest write goes to an
overlay copy of the file (thrown away at the end), unless `write_dir` names a host directory
where such files may be created (the overlay is then saved there by `save_overlay`, every name
resolved beneath that directory without following a symlink: elfvm.emu.writedir).
Paths are resolved inside `root` (the --sysroot), as a chrooted process would see them.
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod
from dataclasses import dataclass, field

from elfvm.emu.writedir import WriteDir


class VfsError(Exception):
    def __init__(self, err: int):
        super().__init__(os.strerror(err))
        self.errno = err


@dataclass
class Inode:
    """What an open file description points at: a host file, an overlay file or a pipe."""

    path: str                       # the guest path
    host: str | None                # the host path (None: overlay-only or pipe)
    st: os.stat_result | None
    data: bytearray | None = None   # overlay contents (copied on first write)
    kind: str = "file"              # file | dir | pipe | tty-out

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


@dataclass
class Pipe:
    buf: bytearray = field(default_factory=bytearray)
    readers: int = 0
    writers: int = 0


@dataclass
class OpenFile:
    """struct file: an open file description, shared by dup() and fork()."""

    inode: Inode | None
    flags: int
    pos: int = 0
    pipe: Pipe | None = None
    pipe_end: str = ""              # "r" | "w"
    sink: bytearray | None = None   # captured stdout/stderr
    dir_entries: list | None = None
    refs: int = 1


O_ACCMODE, O_WRONLY, O_RDWR = 3, 1, 2
O_CREAT, O_EXCL, O_TRUNC, O_APPEND, O_DIRECTORY = 0o100, 0o200, 0o1000, 0o2000, 0o200000


@dataclass
class Vfs:
    root: str = "/"
    cwd: str = "/"
    write_dir: str | None = None
    overlay: dict = field(default_factory=dict)      # guest path -> Inode with data
    writes_refused: list = field(default_factory=list)
    save_refused: list = field(default_factory=list)   # (guest path, why) not saved to write_dir

    def host_path(self, path: str) -> str:
        """The host path of a guest path (absolute or relative to cwd), kept inside root."""
        full = os.path.normpath(os.path.join(self.cwd, path))
        if self.root in ("/", ""):
            return full
        return os.path.join(self.root, full.lstrip("/"))

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

    def guest_path(self, path: str) -> str:
        return os.path.normpath(os.path.join(self.cwd, path))

    def lookup(self, path: str, follow: bool = True) -> Inode:
        gp = self.guest_path(path)
        if gp in self.overlay:
            return self.overlay[gp]
        if gp == "/proc/self/exe" and "/proc/self/exe" in self.overlay:
            return self.overlay[gp]
        hp = self.host_path(path)
        try:
            st = os.stat(hp) if follow else os.lstat(hp)
        except OSError as e:
            raise VfsError(e.errno or errno.ENOENT) from None
        kind = "dir" if stat_mod.S_ISDIR(st.st_mode) else "file"
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
            parent = self.host_path(os.path.dirname(gp) or "/")
            if os.path.dirname(gp) not in self.overlay and not os.path.isdir(parent):
                raise
            ino = Inode(gp, None, None, bytearray())
            self.overlay[gp] = ino
        if ino.kind == "dir" and flags & O_ACCMODE != 0:
            raise VfsError(errno.EISDIR)
        if flags & O_DIRECTORY and ino.kind != "dir":
            raise VfsError(errno.ENOTDIR)
        if flags & O_ACCMODE in (O_WRONLY, O_RDWR) and ino.data is None:
            # copy-up: the host file stays untouched
            ino = self.copy_up(ino)
        if flags & O_TRUNC and ino.data is not None and flags & O_ACCMODE:
            del ino.data[:]
        return OpenFile(ino, flags)

    def copy_up(self, ino: Inode) -> Inode:
        data = bytearray(ino.pread(0, ino.size)) if ino.host else bytearray()
        new = Inode(ino.path, None, ino.st, data, ino.kind)
        self.overlay[ino.path] = new
        return new

    def unlink(self, path: str) -> None:
        gp = self.guest_path(path)
        if gp in self.overlay:
            del self.overlay[gp]
            return
        self.lookup(path)
        self.writes_refused.append(gp)
        raise VfsError(errno.EROFS)

    def listdir(self, path: str) -> list[tuple[str, int]]:
        """(name, d_type) entries of a directory, host entries plus overlay files in it. The
        host entries come in the host file system's own order (what getdents gives a native
        run of the same program: tar, find and du print in that order)."""
        ino = self.lookup(path)
        if ino.kind != "dir":
            raise VfsError(errno.ENOTDIR)
        out = [(".", 4), ("..", 4)]
        try:
            with os.scandir(ino.host) as it:
                for e in it:
                    d_type = 4 if e.is_dir(follow_symlinks=False) else 10 if e.is_symlink() else 8
                    out.append((e.name, d_type))
        except OSError:
            pass
        names = {n for n, _ in out}
        for gp in sorted(self.overlay):
            if os.path.dirname(gp) == ino.path and os.path.basename(gp) not in names:
                out.append((os.path.basename(gp), 8))
        return out

    def readlink(self, path: str) -> str:
        gp = self.guest_path(path)
        try:
            return os.readlink(self.host_path(gp))
        except OSError as e:
            raise VfsError(e.errno or errno.EINVAL) from None

    def save_overlay(self) -> list[str]:
        """Write the overlay files under write_dir, resolved beneath it (elfvm.emu.writedir:
        no symlink, hard link or `..` found there leads outside); returns the host paths saved.
        A file that cannot be saved safely is listed in `save_refused` with the reason."""
        if not self.write_dir:
            return []
        wd = WriteDir(self.write_dir)
        saved = []
        for gp, ino in sorted(self.overlay.items()):
            if ino.data is None or gp.startswith("/proc/"):
                continue
            mode = ino.st.st_mode & 0o7777 if ino.st is not None else 0o644
            try:
                saved.append(wd.write_file(gp, ino.data, mode))
            except OSError as e:
                self.save_refused.append((gp, e.strerror or str(e)))
        return saved
