"""The interpreter settings of an elfvm process, applied first (elfvm.__main__.main) before
click, unicorn, pyelftools and elfvm's own modules are imported. No elfvm import here: the
entry point imports this module alone, then the command line."""

from __future__ import annotations

import gc
import os


def quiet_blas() -> None:
    """One BLAS thread. numpy (the trace engine's arrays) loads OpenBLAS, whose worker threads
    busy-wait at start-up: ~50 ms of CPU per `import numpy` on this 2-core machine (perf stat),
    taken from the emulator's own core when the machine is busy; elfvm never multiplies a
    matrix. putenv, not os.environ: a guest's environment is built from os.environ and must not
    see the variable. A value the user set is kept."""
    if "OPENBLAS_NUM_THREADS" not in os.environ:
        os.putenv("OPENBLAS_NUM_THREADS", "1")


def fewer_collections() -> None:
    """A young-generation collection every 100,000 new container objects instead of every 700.
    Start-up (numpy, unicorn, click, pyelftools and elfvm's modules) allocates ~10^5 objects
    that all live to the end: at the default threshold CPython ran ~80 collections over them
    in a busybox `echo hi` run (8-13 ms of ~190 ms, measured with gc.callbacks), freeing
    nothing. Garbage cycles are still collected, a bounded number of objects later. Set before
    click's import: importing click (inspect, typing, uuid...) alone ran 19 young collections
    over objects that all live on (~1.8 ms of a busybox `echo hi`, gc.callbacks)."""
    gc.set_threshold(100_000, *gc.get_threshold()[1:])
