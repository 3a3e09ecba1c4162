"""The host directory `--write-dir`: every name resolved *beneath* it, never through a symlink.

A guest path such as /etc/passwd names `<write_dir>/etc/passwd`. Whatever the directory already
holds (symlinks to elsewhere, hard links to host files, `..`), nothing outside it is ever opened,
created, written, truncated, renamed, unlinked, chmod'ed or touched. Names are resolved the way
openat2(2) with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS resolves them, as a walk component by
component from a directory fd (each step `O_PATH | O_DIRECTORY | O_NOFOLLOW`), so a symlink swapped
in while we walk cannot redirect us either: each component is looked up in the directory we hold.

Rules:
  * `..` or an empty component never leaves the directory: EXDEV (as RESOLVE_BENEATH);
  * a symlink where a directory is needed: ELOOP (as RESOLVE_NO_SYMLINKS);
  * a file's contents are written into a new inode and renamed over the final name, so a
    symlink or a hard link found there is replaced, never written through;
  * chmod, utime and truncate first make the file the directory's own (a copy replaces a name
    that shares its inode with another link), then act on the fd they opened.
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod
from dataclasses import dataclass

_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_TMP_PREFIX = ".elfvm-new-"


def components(path: str) -> list[str]:
    """The components of a guest path below the directory; `..` would climb out: EXDEV."""
    parts = [c for c in path.split("/") if c not in ("", ".")]
    if any(c == ".." for c in parts):
        raise OSError(errno.EXDEV, "'..' would leave --write-dir", path)
    if not parts:
        raise OSError(errno.EISDIR, "the directory itself", path)
    return parts


@dataclass
class WriteDir:
    """A host directory the guest may write into, and nothing outside it."""

    path: str

    # -- resolution ------------------------------------------------------------------------

    def _walk(self, parts: list[str], create: bool) -> int:
        """An O_PATH fd of the directory holding the last component (the caller closes it)."""
        fd = os.open(self.path, _DIR_FLAGS)
        for name in parts[:-1]:
            try:
                nfd = self._step(fd, name, create)
            finally:
                os.close(fd)
            fd = nfd
        return fd

    @staticmethod
    def _step(fd: int, name: str, create: bool) -> int:
        """An O_PATH fd of directory `name` inside `fd`, refusing symlinks; mkdir it when asked."""
        try:
            try:
                nfd = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(name, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass                     # made by somebody else meanwhile: look again
                nfd = os.open(name, _DIR_FLAGS, dir_fd=fd)
        except OSError as e:
            if e.errno in (errno.ENOTDIR, errno.ELOOP) and _is_symlink(fd, name):
                raise OSError(errno.ELOOP, "a symlink inside --write-dir is not followed", name) from None
            raise
        return nfd

    def _parent(self, path: str, create: bool = False) -> tuple[int, str]:
        parts = components(path)
        return self._walk(parts, create), parts[-1]

    # -- operations -------------------------------------------------------------------------

    def write_file(self, path: str, data: bytes, mode: int = 0o644) -> str:
        """Create or replace `path` with `data` (a new inode renamed over the name)."""
        pfd, name = self._parent(path, create=True)
        try:
            tmp = self._new_file(pfd, data, mode)
            try:
                os.rename(tmp, name, src_dir_fd=pfd, dst_dir_fd=pfd)
            except OSError:
                os.unlink(tmp, dir_fd=pfd)
                raise
        finally:
            os.close(pfd)
        return os.path.join(self.path, *components(path))

    @staticmethod
    def _new_file(pfd: int, data: bytes, mode: int) -> str:
        """A fresh file in `pfd` holding `data`; its temporary name."""
        for n in range(1000):
            tmp = f"{_TMP_PREFIX}{os.getpid()}-{n}"
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                             0o600, dir_fd=pfd)
            except FileExistsError:
                continue
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fchmod(fd, mode & 0o7777)
            except BaseException:
                os.close(fd)
                os.unlink(tmp, dir_fd=pfd)
                raise
            os.close(fd)
            return tmp
        raise OSError(errno.EEXIST, "no free temporary name", "")

    def read_file(self, path: str) -> bytes:
        pfd, name = self._parent(path)
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
        finally:
            os.close(pfd)
        with os.fdopen(fd, "rb") as f:
            return f.read()

    def mkdir(self, path: str, mode: int = 0o755) -> None:
        pfd, name = self._parent(path, create=True)
        try:
            os.mkdir(name, mode & 0o7777, dir_fd=pfd)     # mkdirat never follows the last name
        finally:
            os.close(pfd)

    def unlink(self, path: str) -> None:
        pfd, name = self._parent(path)
        try:
            os.unlink(name, dir_fd=pfd)                   # unlinkat removes the link itself
        finally:
            os.close(pfd)

    def rmdir(self, path: str) -> None:
        pfd, name = self._parent(path)
        try:
            os.rmdir(name, dir_fd=pfd)
        finally:
            os.close(pfd)

    def rename(self, old: str, new: str) -> None:
        self._two_names(old, new, os.rename)                 # renameat: no name followed

    def symlink(self, target: str, path: str) -> None:
        """Store a guest symlink (its target is guest text; elfvm never follows it here)."""
        pfd, name = self._parent(path, create=True)
        try:
            os.symlink(target, name, dir_fd=pfd)
        finally:
            os.close(pfd)

    def link(self, old: str, new: str) -> None:
        self._two_names(old, new, lambda a, b, **fds: os.link(a, b, **fds, follow_symlinks=False))

    def _two_names(self, old: str, new: str, op) -> None:
        ofd, oname = self._parent(old)
        try:
            nfd, nname = self._parent(new, create=True)
            try:
                op(oname, nname, src_dir_fd=ofd, dst_dir_fd=nfd)
            finally:
                os.close(nfd)
        finally:
            os.close(ofd)

    def chmod(self, path: str, mode: int) -> None:
        self._on_own_file(path, os.O_RDONLY, lambda fd: os.fchmod(fd, mode & 0o7777))

    def truncate(self, path: str, length: int) -> None:
        self._on_own_file(path, os.O_WRONLY, lambda fd: os.ftruncate(fd, length))

    def utime(self, path: str, ns: tuple[int, int] | None = None) -> None:
        self._on_own_file(path, os.O_RDONLY, lambda fd: os.utime(fd, ns=ns) if ns else os.utime(fd))

    def _on_own_file(self, path: str, access: int, act) -> None:
        """Run `act(fd)` on the regular file `path`, after making its inode the directory's own.
        O_NONBLOCK: a FIFO planted there must not hang us (it is refused below)."""
        flags = access | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        pfd, name = self._parent(path)
        try:
            fd = os.open(name, flags, dir_fd=pfd)
            try:
                st = os.fstat(fd)
                if not stat_mod.S_ISREG(st.st_mode):
                    raise OSError(errno.EINVAL, "not a regular file", path)
                if st.st_nlink > 1:                       # shared with another name: copy-up
                    os.close(fd)
                    fd = self._break_link(pfd, name, st, flags)
                act(fd)
            finally:
                os.close(fd)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise OSError(errno.ELOOP, "a symlink inside --write-dir is not followed", path) from None
            raise
        finally:
            os.close(pfd)

    def _break_link(self, pfd: int, name: str, st: os.stat_result, flags: int) -> int:
        """Replace `name` by a private copy of its contents; an fd (`flags`) of the copy."""
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=pfd)
        with os.fdopen(fd, "rb") as f:
            data = f.read()
        tmp = self._new_file(pfd, data, st.st_mode)
        try:
            fd = os.open(tmp, flags, dir_fd=pfd)
        except OSError:
            os.unlink(tmp, dir_fd=pfd)
            raise
        os.rename(tmp, name, src_dir_fd=pfd, dst_dir_fd=pfd)
        return fd


def _is_symlink(dir_fd: int, name: str) -> bool:
    try:
        return stat_mod.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False
