"""numba's ``njit`` with the on-disk cache, or the plain function when numba is missing.

Without numba (``pip install 'elfvm[sim]'`` brings it) the kernels run as ordinary Python over the
same numpy arrays: the same code and the same answers, only much slower.
"""

from __future__ import annotations

try:                                    # pragma: no cover - depends on the environment
    from numba import njit as _njit

    HAVE_NUMBA = True
except ImportError:                     # pragma: no cover
    HAVE_NUMBA = False
    _njit = None


def njit(fn):
    """Compile `fn` with numba (nogil, cached on disk) when numba is installed."""
    if _njit is None:                   # pragma: no cover
        return fn
    return _njit(cache=True, nogil=True)(fn)
