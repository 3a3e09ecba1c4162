"""numpy, imported without OpenBLAS's thread pool.

elfvm never calls BLAS, but OpenBLAS starts a pool of threads (one per core) when numpy is
imported and they spin; on a small shared machine that costs a whole `simulate-run` about 60 ms.
OpenBLAS reads OPENBLAS_NUM_THREADS once, when it is loaded: it is set for that moment only
(never left in our environment, which is the guest's and the predicted process's by default),
and a value the user set is kept.
"""

from __future__ import annotations

import os

_KEY = "OPENBLAS_NUM_THREADS"
_set_here = _KEY not in os.environ
if _set_here:
    os.environ[_KEY] = "1"
try:
    import numpy as np  # noqa: E402
finally:
    if _set_here:
        del os.environ[_KEY]

__all__ = ["np"]
