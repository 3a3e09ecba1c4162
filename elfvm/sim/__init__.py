"""The trace engine of `simulate-run`: demand paging, frames, swap, TLB and replacement policies.

* `trace`  -- reading lackey/plain traces (files, stdin, .gz/.xz) into batches of references;
* `parse`  -- the compiled line parser (the record -> page-reference contract);
* `paging_core` -- the compiled reference loop: page index, TLB, frames, fifo/lru/clock/opt;
* `engine` -- the state around it, streaming several traces round-robin, `--compare`, and
  `PagingModel` for references one at a time from a running program;
* `timeline` -- for `--svg`: the frame table and counters sampled in a bounded number of time bins.

The kernels run compiled (numba, ahead of time: `jit`) over numpy arrays, or as plain Python
over memoryviews of the same buffers: a running program's model starts so (no numpy imported)
and moves to the compiled kernels once its run gets long; without numba they run as plain
Python throughout.
"""
