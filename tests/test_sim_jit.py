"""How the trace engine's kernels run (elfvm.sim.jit): compiled ahead of time, numba's JIT, or
plain Python; deciding which loads nothing heavy, and every way gives the same figures."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import fixture_path
from elfvm.sim import jit
from elfvm.sim import paging_core as K


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if not k.startswith("ELFVM_JIT")}
    e.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=e,
                          timeout=600)


def test_deciding_the_mode_and_a_plain_model_load_no_numpy():
    """mode() only looks for the library's file; a model that runs its kernels as plain Python
    (a program's, at first) imports neither numpy nor numba nor the library."""
    r = _python("import sys\nfrom elfvm.sim import jit\nfrom elfvm.sim.engine import PagingModel, SimConfig\n"
                "m = PagingModel(SimConfig('fifo', 4, 4096))\n"
                "faults = [m.access(0, v, write=True).fault for v in range(9)]\n"
                "assert not m.compiled, 'moved'\n"
                "print(jit.mode(), faults.count('first-touch'), m.stats()[0].evictions,\n"
                "      sorted(n for n in sys.modules if n.split('.')[0] in ('numpy', 'numba', '_elfvm_sim_aot')))",
                ELFVM_JIT="aot")
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["aot", "9", "5", "[]"]


def test_plain_calls(monkeypatch):
    """ELFVM_JIT_AFTER sets the accesses before the move; jit mode starts compiled (its names are
    numba dispatchers), python mode never moves (its compiled kernels are the plain ones)."""
    for mode, after, want in [("aot", None, jit.DEFAULT_PLAIN_CALLS), ("aot", "12", 12),
                              ("aot", "0", 0), ("aot", "x", jit.DEFAULT_PLAIN_CALLS),
                              ("jit", "12", 0), ("python", None, -1), ("python", "0", 0)]:
        monkeypatch.setitem(jit._state, "mode", mode)
        if after is None:
            monkeypatch.delenv("ELFVM_JIT_AFTER", raising=False)
        else:
            monkeypatch.setenv("ELFVM_JIT_AFTER", after)
        assert jit.plain_calls() == want, (mode, after)


@pytest.mark.skipif(jit.mode() != "aot" or not os.environ.get("ELFVM_JIT_CHECK"),
                    reason="the dtype check wraps the ahead-of-time library's functions")
def test_compiled_calls_are_checked_against_the_signature():
    import numpy as np

    next_uses = jit.compiled(K.next_uses)
    seen = np.full(4, K.NEVER, dtype=np.int64)
    out = np.zeros(3, dtype=np.int64)
    next_uses(np.array([0, 1, 0], dtype=np.int32), 0, seen, out)
    assert out.tolist() == [2, K.NEVER, K.NEVER]
    with pytest.raises(TypeError, match="next_uses: argument 2"):
        next_uses(np.array([0, 1, 0], dtype=np.int32), 0, seen.astype(np.int32), out)


def test_every_mode_gives_the_same_figures(tmp_path):
    """ELFVM_JIT=python (no numba: plain Python throughout, over numpy arrays for a trace) and
    the default give the same JSON for a trace under OPT and CLOCK, and for a program."""
    trace = tmp_path / "t.txt"
    trace.write_text("".join(f"{'W' if i % 3 == 0 else 'R'} {(i * 7919) % 61}\n" for i in range(3000)))
    prog = fixture_path("forkexec")
    cmds = [["--trace", str(trace), "--page-size", "1", "--frames", "8", "--policy", "opt"],
            ["--trace", str(trace), "--page-size", "1", "--frames", "8", "--policy", "clock",
             "--tlb-entries", "8", "--tlb-ways", "2"],
            ["--env-clear", "--clock", "fixed", "--frames", "8", prog]]
    for cmd in cmds:
        code = ("import sys\nfrom elfvm.cli import cli\n"
                f"cli.main(args=['simulate-run', '--format', 'json', '-q', *{cmd!r}], prog_name='elfvm')")
        outs = {m: _python(code, ELFVM_JIT=m) for m in ("aot", "python")}
        for m, r in outs.items():
            assert r.returncode == 0, (m, r.stderr[-2000:])
        assert outs["aot"].stdout == outs["python"].stdout and '"page_faults"' in outs["aot"].stdout
