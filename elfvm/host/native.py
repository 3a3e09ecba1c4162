"""Compiled C helpers of elfvm: built once with the system's C compiler into the user's cache
directory, named by a hash of the source, and loaded with ctypes (no numba or numpy import on a
command's path). Used by the emulator's hooks (elfvm/emu/icount.c, exactrefs.c) and the bulk
translation loop (elfvm/mmu/jsonlines.c). Without a C compiler or with a read-only cache,
`build` gives None and each caller keeps its Python path.
"""

from __future__ import annotations

import ctypes
import os
import sys
import zlib


def cache_root() -> str:
    """elfvm's cache directory: $ELFVM_CACHE_DIR, else $XDG_CACHE_HOME/elfvm (~/.cache/elfvm)."""
    d = os.environ.get("ELFVM_CACHE_DIR")
    if not d:
        d = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
                         "elfvm")
    return d


def library_path(src: str) -> str:
    """Where the C source `src` (of elfvm/PKG) is compiled to, PKG-native/HASH/NAME.so, named by
    a hash of it (CRC-32 and Adler-32, as the trace engine's library is named: hashlib's OpenSSL
    would cost every run milliseconds; this names a cache entry, it guards against no adversary)."""
    with open(src, "rb") as f:
        data = f.read() + f"{sys.platform} {os.uname().machine}".encode()
    h = f"{zlib.crc32(data):08x}{zlib.adler32(data):08x}"
    pkg = os.path.basename(os.path.dirname(os.path.abspath(src)))
    return os.path.join(cache_root(), f"{pkg}-native", h, os.path.basename(src)[:-2] + ".so")


def build(src: str) -> str | None:
    """Compile `src` unless it is compiled already: the library's path, or None (no C
    compiler, a read-only cache, the source missing from the install)."""
    try:
        path = library_path(src)
    except OSError:
        return None
    if os.path.exists(path):
        return path
    import subprocess          # only to compile: a run that finds the library never needs it
    import sysconfig

    cc = (sysconfig.get_config_var("CC") or "cc").split()
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)     # a read-only cache: no library
        r = subprocess.run([*cc, "-O2", "-shared", "-fPIC", "-o", tmp, src],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
        if r.returncode != 0:
            return None
        os.replace(tmp, path)                  # atomic: a concurrent run sees all or nothing
    except (OSError, subprocess.SubprocessError):
        return None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path if os.path.exists(path) else None


def load_library(path: str | None) -> ctypes.CDLL | None:
    """The compiled library at `path` (from build()), or None: no compiler, not loadable."""
    if path is None:
        return None
    try:
        return ctypes.CDLL(path)
    except OSError:
        return None
