"""How the kernels of elfvm.sim run: compiled ahead of time, JIT, or plain Python.

The kernels are ordinary Python functions over arrays. `@njit` marks a helper, `@entry(sig)`
a function Python calls, with its numba signature. Their source is neutral: it runs compiled
(numba, over numpy arrays) and as plain Python (over numpy arrays or over memoryviews of the same
buffers): integer conversions are spelled `i64(x)`/`u64(x)`, which are numpy's types when numba
compiles the source and `int` otherwise, and no arithmetic relies on int64 wraparound.

The module's names (`paging_core.simulate`, ...) are the plain Python functions (numba's
dispatchers in jit mode); `compiled(f)` is the compiled form of entry point `f`, the first of:

1. the ahead-of-time library: every entry point of every `elfvm/sim/*.py` compiled by numba's
   AOT compiler (`numba.pycc`) into one extension module in the user's cache directory
   (``$ELFVM_CACHE_DIR``, else ``$XDG_CACHE_HOME/elfvm``, else ``~/.cache/elfvm``), named by a
   hash of the sources (and of the numpy it was built against), so an edit never runs stale code.
   Deciding this mode only looks for the file; the library (a numpy extension: loading it imports
   numpy) is loaded by the first `compiled()` call, so a run that stays in plain Python (a short
   `simulate-run PROGRAM`) never imports numpy or numba (numba alone costs ~0.2-0.3 s);
2. numba's JIT (``cache=True``) when the library is missing (the first run after an install or
   an edit); that run also starts building the library in the background (one build at a time),
   so the next runs load it;
3. without numba the plain Python functions themselves: the same answers, much slower.

``ELFVM_JIT=aot|jit|python`` forces one of them (``aot`` builds the library first if needed);
``python -m elfvm.sim.jit`` builds the library in the foreground (``make setup`` does).
The AOT functions do not check their arguments' dtypes (a wrong one is undefined behaviour), so
with ``ELFVM_JIT_CHECK=1`` (the test suite sets it) every call is checked against the signature.

A caller that makes few calls (the emulator's paging model: a call per TLB fill or fault) starts
with the plain functions over memoryviews and moves to the compiled ones after `plain_calls()`
calls (``ELFVM_JIT_AFTER=N`` sets N; 0: compiled from the start), on the same buffers.
"""

from __future__ import annotations

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
_names: dict[int, str] = {}            # id(what @entry returned) -> AOT name
_compiled: dict[str, object] = {}      # AOT name -> its compiled form (compiled())
_state: dict[str, object] = {}         # "mode"; "lib": the library once loaded (or None)
DEFAULT_PLAIN_CALLS = 4500             # see plain_calls()


def _files(d: str, prefix: str = "", suffix: str = "") -> list[str]:
    """The entries of directory `d` that glob's `prefix*suffix` finds (hidden names excluded;
    none when `d` is missing), without glob: its first use of a pattern compiles a regular
    expression, ~0.2 ms of every start-up that decides the mode."""
    try:
        names = os.listdir(d)
    except OSError:
        return []
    return [os.path.join(d, n) for n in names
            if n.startswith(prefix) and n.endswith(suffix) and not n.startswith(".")]


def source_hash() -> str:
    """The sources of every kernel (all of elfvm/sim) and the interpreter's ABI: CRC-32 and
    Adler-32 of them (zlib is loaded anyway; hashlib's OpenSSL costs milliseconds of every
    start-up, and this names a cache entry, it guards against no adversary)."""
    crc = adler = zlib.crc32(sys.implementation.cache_tag.encode())
    for path in [*sorted(_files(_SIM_DIR, suffix=".py")), *_numpy_version_file()]:
        with open(path, "rb") as f:
            data = os.path.basename(path).encode() + b"\0" + f.read()
        crc, adler = zlib.crc32(data, crc), zlib.adler32(data, adler)
    return f"{crc:08x}{adler:08x}"


def _numpy_version_file() -> list[str]:
    """numpy's version.py (found, not imported): a library built against another numpy may not
    load, so a numpy upgrade names a new library (built again) instead."""
    spec = importlib.util.find_spec("numpy")
    for d in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(d, "version.py")
        if os.path.exists(path):
            return [path]
    return []


def library_dir() -> str:
    return os.path.join(cache_root(), "sim-aot", source_hash())


def _find_library() -> str | None:
    for path in _files(library_dir(), MODULE + "."):
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
    """'aot', 'jit' or 'python': how the compiled entry points of this process run (deciding
    'aot' looks for the library's file; it is loaded by the first compiled() call)."""
    if "mode" not in _state:
        want = os.environ.get("ELFVM_JIT", "")
        if os.environ.get(BUILD_ENV):
            m = "jit"
        elif want == "python" or not _numba_available():
            m = "python"
        elif want == "jit":
            m = "jit"
        else:
            have = _find_library()
            if have is None and want == "aot":
                have = build()
            if have is None:
                _build_in_background()
            m = "aot" if have is not None else "jit"
        _state["mode"] = m
    return _state["mode"]


def plain_calls() -> int:
    """How many calls a caller that makes few of them (the emulator's paging model: a call per
    TLB fill) makes to the plain Python kernels over memoryviews before it moves to the compiled
    ones over numpy views of the same buffers (-1: never). Measured here: moving costs ~33 ms
    (numpy and the library loaded) and a plain access 6-8 us more than a compiled one (9-11 vs
    3 us: a python3.11 run, a loop of TLB fills), so the move pays after ~4000-5500 calls;
    moving then (a rent-or-buy choice) costs at most twice the best choice made knowing the
    run's length: busybox `echo` makes ~120 calls and a 72M-instruction qsort ~460 (plain
    throughout), python3.11 `-c` ~48000 (moves). In jit mode
    the kernel modules' names are numba dispatchers, which take no memoryviews: compiled from
    the start (0); without numba the compiled ones are the same plain functions: never (-1).
    ``ELFVM_JIT_AFTER=N`` sets N."""
    m = mode()
    if m == "jit":
        return 0
    want = os.environ.get("ELFVM_JIT_AFTER", "")
    n = int(want) if want.lstrip("-").isdigit() else DEFAULT_PLAIN_CALLS
    return -1 if m == "python" and n != 0 else n


def __getattr__(name: str):
    """`i64`, `u64`: the integer conversions of the kernels' source (numpy's types when numba
    compiles it: numba then knows the width and skips negative-index wraparound; `int` when
    it runs as plain Python)."""
    if name not in ("i64", "u64"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if mode() == "jit":
        import numpy as np

        value = np.int64 if name == "i64" else np.uint64
    else:
        value = int
    globals()[name] = value
    return value


def _numba_njit(fn):
    from numba import njit as _nj

    return _nj(cache=True, nogil=True)(fn)


def njit(fn):
    """A helper of the kernels: compiled by numba (with the entry points that call it)."""
    return _numba_njit(fn) if mode() == "jit" else fn


def entry(signature: str):
    """An entry point Python calls, with its numba signature (for the AOT compiler). The name
    stays the plain function (numba's dispatcher in jit mode); `compiled()` gives the compiled
    one."""
    def deco(fn):
        name = f"{fn.__module__.rsplit('.', 1)[-1]}__{fn.__name__}"
        _entries[name] = (fn, signature)
        out = _numba_njit(fn) if mode() == "jit" else fn
        _names[id(out)] = name
        return out
    return deco


def compiled(kernel):
    """The compiled form of entry point `kernel` (as its module names it), over numpy arrays:
    the AOT library's function (the library is loaded by the first call), numba's dispatcher,
    or without numba the plain function itself. A library that does not load (a broken cache)
    leaves the plain functions: the same answers, slower."""
    name = _names[id(kernel)]
    f = _compiled.get(name)
    if f is None:
        f = kernel
        if mode() == "aot":
            if "lib" not in _state:
                _state["lib"] = _load_library()
            lib = _state["lib"]
            if hasattr(lib, name):
                fn, signature = _entries[name]
                f = getattr(lib, name)
                f = _checked(f, fn, signature) if os.environ.get("ELFVM_JIT_CHECK") else f
        _compiled[name] = f
    return f


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
    return [f"elfvm.sim.{os.path.basename(p)[:-3]}" for p in sorted(_files(_SIM_DIR, suffix=".py"))
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
