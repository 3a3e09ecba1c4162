"""The trace engine of `simulate-run`: demand paging, frames, swap, TLB and replacement policies.

* `trace`  -- reading lackey/plain traces (files, stdin, .gz/.xz) into batches of references;
* `parse`  -- the compiled line parser (the record -> page-reference contract);
* `paging_core` -- the compiled reference loop: page index, TLB, frames, fifo/lru/clock/opt;
* `engine` -- the state around it, streaming several traces round-robin, `--compare`, and
  `PagingModel` for references one at a time from a running program;
* `timeline` -- for `--svg`: the frame table and counters sampled in a bounded number of time bins.

numpy and numba come with the `sim` extra; the kernels run as plain Python without numba.
"""

import os as _os
import sys as _sys


def _import_numpy_without_blas_threads() -> None:
    """Import numpy with OpenBLAS limited to one thread: elfvm never multiplies matrices, and
    the pool of threads OpenBLAS starts at import (one per core, spinning a while) costs about
    as much CPU as the import itself on a small machine. The variable is read only when the
    library loads, so it is restored at once: the guests of program mode inherit the user's
    environment unchanged."""
    if "numpy" in _sys.modules:
        return
    old = _os.environ.get("OPENBLAS_NUM_THREADS")
    _os.environ["OPENBLAS_NUM_THREADS"] = "1"
    try:
        import numpy  # noqa: F401
    finally:
        if old is None:
            del _os.environ["OPENBLAS_NUM_THREADS"]
        else:
            _os.environ["OPENBLAS_NUM_THREADS"] = old


_import_numpy_without_blas_threads()
