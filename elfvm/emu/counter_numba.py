"""The fallback instruction counter (elfvm.emu.counter without a C compiler): a numba cfunc
used as a UC_HOOK_CODE callback.

A Python callback per instruction would cost microseconds; this one is machine code. It counts
into an int64 array; --max-instructions uses Unicorn's own instruction budget (emu_start count).
Importing this module needs numba; elfvm.emu.cpu falls back to no count without it.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types

@numba.cfunc(types.void(types.voidptr, types.uint64, types.uint32, types.voidptr), cache=True)
def count_cb(uch, addr, size, data):  # pragma: no cover - runs as native code
    a = numba.carray(data, 1, dtype=np.int64)
    a[0] += 1
