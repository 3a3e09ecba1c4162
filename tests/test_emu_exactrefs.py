"""--exact-tlb's native hooks (elfvm/emu/exactrefs.c) against the Python hooks they replace:
the same references reach the model in the same order, so every figure of the run is the same
(TLB hits and misses, EAT, recency and so evictions, faults by kind, pages and frames, per
process), under memory pressure (evictions, deferred ones), fork/exec, threads, signals."""

import pytest

from conftest import fixture_path

pytest.importorskip("unicorn")

import elfvm.emu.exactrefs as X  # noqa: E402
from elfvm.emu import RunOptions, run_program  # noqa: E402

REAL_INSTALL = X.install

CASES = [
    ("lazy", ("24",), dict(fault_model="simple", frames=16, policy="lru")),
    ("lazy", ("24", "read"), dict(frames=16, policy="clock")),
    ("touch", (), dict(frames=24, policy="fifo")),
    ("forkexec", (), {}),
    ("threads", (), dict(frames=32)),
    ("mallocs", (), dict(frames=48, tlb_entries=16, tlb_ways=4)),
    ("stackgrow", (), dict(split_tlb=True)),
    ("segv", (), {}),
    ("shmem", (), dict(asid=True)),
    ("hello_pie", (), {}),
]


def figures(r) -> dict:
    def stats(s):
        return (s.references, s.pages_touched, s.faults_by_kind, s.evictions, s.dirty_evictions,
                s.swap_ins, s.tlb, s.effective_access_ns, s.pages, s.frames, s.context_switches)
    return {"exit": r.exit_status, "stdout": r.stdout, "stderr": r.stderr, "death": r.death,
            "instructions": r.instructions, "total": stats(r.stats),
            "procs": [stats(s) for s in r.process_stats], "events": r.events,
            "touched": r.pages_touched}


def run(name, args, opts, *, native: bool, monkeypatch):
    used = []

    def install(*a, **k):
        fast = REAL_INSTALL(*a, **k) if native else None
        used.append(fast)
        return fast
    monkeypatch.setattr(X, "install", install)
    r = run_program(RunOptions(fixture_path(name), tuple(args), exact=True, clock="fixed", **opts))
    return r, used


@pytest.mark.parametrize("name,args,opts", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_native_hooks_give_the_python_hooks_figures(name, args, opts, monkeypatch):
    py, _ = run(name, args, opts, native=False, monkeypatch=monkeypatch)
    nat, used = run(name, args, opts, native=True, monkeypatch=monkeypatch)
    if not used or used[0] is None:
        pytest.skip("no C compiler: the native hooks are not built")
    assert used[0].fast_references > nat.stats.references // 2     # most went natively
    assert figures(nat) == figures(py)


def test_emit_trace_uses_the_python_hooks_with_the_same_figures(tmp_path, monkeypatch):
    """--emit-trace writes every record from Python; its run's figures are the native run's."""
    opts = dict(fault_model="simple", frames=16, policy="lru")
    nat, _ = run("lazy", ("24",), opts, native=True, monkeypatch=monkeypatch)
    em, used = run("lazy", ("24",), dict(opts, emit_trace=str(tmp_path / "t.lackey")), native=True,
                   monkeypatch=monkeypatch)
    assert used == []                          # not even tried
    assert figures(em) == figures(nat)


def test_without_a_c_compiler_the_python_hooks_run(monkeypatch):
    """No compiler (the library cannot be built): install() gives None and the Python hooks
    take every reference, with the same figures."""
    opts = dict(frames=24, policy="fifo")
    nat, _ = run("touch", (), opts, native=True, monkeypatch=monkeypatch)
    monkeypatch.setattr(X, "build", lambda: None)
    py, used = run("touch", (), opts, native=True, monkeypatch=monkeypatch)
    assert used == [None]
    assert figures(py) == figures(nat)
