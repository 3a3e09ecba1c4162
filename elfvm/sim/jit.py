"""How the compiled kernels of elfvm.sim are loaded: compiled ahead of time, JIT, or plain Python.

The kernels are ordinary Python functions over numpy arrays. `@njit` marks a helper, `@entry(sig)`
a function Python calls, with its numba signature. At import, the entry points come from the
first of:

1. the ahead-of-time library: every entry point of every `elfvm/sim/*.py` compiled by numba's
   AOT compiler (`numba.pycc`) into one extension module in the user's cache directory
   (``$ELFVM_CACHE_DIR``, else ``$XDG_CACHE_HOME/elfvm``, else ``~/.cache/elfvm``), named by a
   hash of the sources, so an edit never runs stale code. Loading it costs a few milliseconds and
   does not import numba at all (numba alone costs ~0.2-0.3 s of every command's start-up);
2. numba's JIT (``cache=True``) when the library is missing (the first run after an install or
   an edit); that run also starts building the library in the background (one build at a time),
   so the next runs load it;
3. without numba (``pip install .`` with no extras) the same functions run as plain Python over
   the same arrays: the same answers, much slower.

``ELFVM_JIT=aot|jit|python`` forces one of them (``aot`` builds the library first if needed);
``python -m elfvm.sim.jit`` builds the library in the foreground (``make setup`` does).
The AOT functions do not check their arguments' dtypes (a wrong one is undefined behaviour), so
with ``ELFVM_JIT_CHECK=1`` (the test suite sets it) every call is checked against the signature.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import sys
import time
import zlib

from elfvm.host.native import cache_root        # one cache directory for compiled code

MODULE = "_elfvm_sim_aot"
_SIM_DIR = os.path.dirname(os.path.abspath(__file__))
BUILD_ENV = "_ELFVM_JIT_BUILDING"      # set in the build process: compile with numba, load nothing

_entries: dict[str, tuple] = {}        # AOT name -> (function, signature)
_state: dict[str, object] = {}         # "lib": the loaded library (or None), "mode"


def source_hash() -> str:
    """The sources of every kernel (all of elfvm/sim) and the interpreter's ABI: CRC-32 and
    Adler-32 of them (zlib is loaded anyway; hashlib's OpenSSL costs milliseconds of every
    start-up, and this names a cache entry, it guards against no adversary)."""
    crc = adler = zlib.crc32(sys.implementation.cache_tag.encode())
    for path in sorted(glob.glob(os.path.join(_SIM_DIR, "*.py"))):
        with open(path, "rb") as f:
            data = os.path.basename(path).encode() + b"\0" + f.read()
        crc, adler = zlib.crc32(data, crc), zlib.adler32(data, adler)
    return f"{crc:08x}{adler:08x}"


def library_dir() -> str:
    return os.path.join(cache_root(), "sim-aot", source_hash())


def _find_library() -> str | None:
    for path in glob.glob(os.path.join(library_dir(), MODULE + ".*")):
        if path.endswith((".so", ".pyd")):
            return path
    return None


def _load_library():
    path = _find_library()
    if path is None:
        return None
    try:
        spec = importlib.util.spec_from_file_location(MODULE, path)
        lib = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(lib)
        return lib
    except (ImportError, OSError):          # e.g. built against another numpy ABI: rebuild
        return None


def _numba_available() -> bool:
    return importlib.util.find_spec("numba") is not None


def mode() -> str:
    """'aot', 'jit' or 'python': how the entry points of this process run."""
    if "mode" not in _state:
        want = os.environ.get("ELFVM_JIT", "")
        lib = None
        if os.environ.get(BUILD_ENV):
            m = "jit"
        elif want == "python" or not _numba_available():
            m = "python"
        elif want == "jit":
            m = "jit"
        else:
            lib = _load_library()
            if lib is None and want == "aot":
                build()
                lib = _load_library()
            if lib is None:
                _build_in_background()
            m = "aot" if lib is not None else "jit"
        _state["lib"], _state["mode"] = lib, m
    return _state["mode"]


def _numba_njit(fn):
    from numba import njit as _nj

    return _nj(cache=True, nogil=True)(fn)


def njit(fn):
    """A helper of the kernels: compiled by numba (with the entry points that call it)."""
    return _numba_njit(fn) if mode() == "jit" else fn


def entry(signature: str):
    """An entry point Python calls, with its numba signature (for the AOT compiler)."""
    def deco(fn):
        name = f"{fn.__module__.rsplit('.', 1)[-1]}__{fn.__name__}"
        _entries[name] = (fn, signature)
        m = mode()
        if m == "aot" and hasattr(_state["lib"], name):
            f = getattr(_state["lib"], name)
            return _checked(f, fn, signature) if os.environ.get("ELFVM_JIT_CHECK") else f
        return fn if m == "python" else _numba_njit(fn)
    return deco


_DTYPES = {"i8": "int64", "i4": "int32", "u1": "uint8"}


def _array_args(signature: str) -> list[tuple[str, int, bool] | None]:
    """(dtype, ndim, C-contiguous required) of each array argument of a signature like
    'i8(i4[::1], u1[:, :], i8)' (None for a scalar), without importing numba."""
    end = signature.rindex(")")
    start, depth = end, 0
    while True:                          # the "(" that matches the last ")" (the return type
        depth += {")": 1, "(": -1}.get(signature[start], 0)     # may have its own)
        if depth == 0:
            break
        start -= 1
    args = signature[start + 1:end]
    out, depth, cur = [], 0, ""
    for ch in args + ",":
        if ch == "," and depth == 0:
            t = cur.strip()
            out.append((_DTYPES[t[:t.index("[")]], t.count(",") + 1, "::1" in t) if "[" in t else None)
            cur = ""
            continue
        depth += ch == "["
        depth -= ch == "]"
        cur += ch
    return out


def _checked(aot, fn, signature: str):
    """A wrapper that checks every array argument's dtype, rank and (for a '::1' layout)
    C-contiguity against the signature."""
    want = _array_args(signature)

    def call(*a):
        for i, (x, w) in enumerate(zip(a, want)):
            if w is not None and (str(getattr(x, "dtype", None)) != w[0] or x.ndim != w[1]
                                  or (w[2] and not x.flags.c_contiguous)):
                raise TypeError(f"{fn.__name__}: argument {i} is {getattr(x, 'dtype', type(x))} "
                                f"{getattr(x, 'ndim', '')}-d, the signature says {w}")
        return aot(*a)
    call.__name__ = fn.__name__
    return call


# ------------------------------------------------------------------ building the library

def _kernel_modules() -> list[str]:
    return [f"elfvm.sim.{os.path.basename(p)[:-3]}" for p in sorted(glob.glob(os.path.join(_SIM_DIR, "*.py")))
            if not os.path.basename(p).startswith("__")]


def _compile(out_dir: str) -> None:
    """In a process with BUILD_ENV set: import the kernel modules (numba dispatchers) and compile
    every entry point into `out_dir`."""
    import importlib

    from numba.pycc import CC

    for m in _kernel_modules():
        src = open(os.path.join(_SIM_DIR, m.rsplit(".", 1)[1] + ".py"), encoding="utf-8").read()
        if "@entry(" in src:
            importlib.import_module(m)
    cc = CC(MODULE)
    cc.output_dir = out_dir
    cc.verbose = False
    for name, (fn, sig) in sorted(_entries.items()):
        cc.export(name, sig)(fn)
    cc.compile()


def build(timeout: float = 600) -> str | None:
    """Build the library (in a child process) unless it exists; its path, or None on failure."""
    import subprocess

    have = _find_library()
    if have is not None:
        return have
    d = library_dir()
    os.makedirs(d, exist_ok=True)
    tmp = f"{d}.tmp{os.getpid()}"
    os.makedirs(tmp, exist_ok=True)
    env = dict(os.environ, **{BUILD_ENV: "1"})
    env.pop("ELFVM_JIT", None)
    try:
        r = subprocess.run([sys.executable, "-c", f"from elfvm.sim import jit; jit._compile({tmp!r})"],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout)
        if r.returncode != 0:
            return None
        for name in os.listdir(tmp):
            if name.startswith(MODULE):
                os.replace(os.path.join(tmp, name), os.path.join(d, name))
    except (OSError, subprocess.SubprocessError):
        return None
    finally:
        for name in os.listdir(tmp) if os.path.isdir(tmp) else ():
            try:
                os.unlink(os.path.join(tmp, name))
            except OSError:
                pass
        try:
            os.rmdir(tmp)
        except OSError:
            pass
    return _find_library()


def _build_in_background() -> None:
    """Start one detached build of the library (a lock file keeps it to one at a time)."""
    import subprocess

    if os.environ.get("ELFVM_JIT_BUILD") == "0":
        return
    d = os.path.join(cache_root(), "sim-aot")
    lock = os.path.join(d, "building.lock")
    try:
        os.makedirs(d, exist_ok=True)
        if os.path.exists(lock) and time.time() - os.path.getmtime(lock) < 900:
            return
        with open(lock, "w") as f:
            f.write(str(os.getpid()))
        code = ("import os; from elfvm.sim import jit\n"
                f"try: jit.build()\nfinally: os.unlink({lock!r})")
        subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True, env={k: v for k, v in os.environ.items()
                                                      if k != "ELFVM_JIT"})
    except OSError:
        pass


if __name__ == "__main__":
    path = build()
    print(path or "elfvm: could not build the compiled trace engine (numba and a C compiler needed)")
    sys.exit(0 if path else 1)
