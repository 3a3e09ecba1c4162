"""Real traces: valgrind's lackey on the 32-bit fixtures, through the engine and the reference."""

import shutil
import subprocess

import pytest

import sim_reference as ref
from conftest import fixture_path
from simhelp import cli_json, run


@pytest.fixture(scope="module")
def lackey_trace(tmp_path_factory):
    """A lackey trace of fixtures/bin/hello_static, or a skip saying why there is none."""
    if not shutil.which("valgrind"):
        pytest.skip("valgrind is not installed (apt-get install valgrind)")
    prog = fixture_path("hello_static")
    out = tmp_path_factory.mktemp("lackey") / "hello_static.lackey"
    r = subprocess.run(["valgrind", "--tool=lackey", "--trace-mem=yes", f"--log-file={out}", prog],
                       capture_output=True, timeout=120)
    text = out.read_text(errors="replace") if out.exists() else ""
    if r.returncode != 0 or "\nI  " not in text:
        why = (r.stderr.decode(errors="replace").strip().splitlines() or ["no trace"])[-1]
        pytest.skip(f"valgrind cannot trace a 32-bit program here (needs its x86-linux tools, "
                    f"e.g. Debian's valgrind with libc6-i386): {why}")
    return str(out)


def test_real_trace_matches_the_reference(lackey_trace):
    with open(lackey_trace) as f:
        want_refs = ref.read_lackey(f.read().splitlines(), 4096)
    for policy, frames in (("fifo", 8), ("lru", 8), ("clock", 8), ("lru", 24)):
        res = run(lackey_trace, policy, frames, page_size=4096, tlb=16, ways=4, split=True)
        procs, table, frame_tab, _, _ = ref.simulate([want_refs], policy, frames, 16, 4, True)
        p = procs[0]
        t = res.total
        assert t.references == p.refs == len(want_refs)
        assert t.faults_by_kind == p.faults, policy
        assert (t.evictions, t.dirty_evictions) == (p.evictions, p.dirty_evictions)
        assert (t.tlb.hits, t.tlb.misses) == (p.hits, p.misses)
        assert {(r.process, r.page): (r.frame, r.dirty, r.referenced, r.swapped)
                for r in t.pages} == table


def test_real_trace_makes_sense(lackey_trace):
    j = cli_json("--trace", lackey_trace, "--frames", "1024")
    pages = {r["page"] for r in j["pages"]}
    assert 0x8049 in pages                              # the static binary's .text (0x08049000)
    assert any(p >= 0xF0000 for p in pages)             # the stack near the top of 4 GiB
    assert j["page_faults"] == j["pages_touched"] == len(pages)   # all fits: first touches only
    assert j["evictions"] == 0 and j["tlb"]["hit_ratio"] > 0.99
    small = cli_json("--trace", lackey_trace, "--frames", "4", "--policy", "opt")
    assert small["evictions"] > 0 and small["swap_ins"] > 0
    assert small["references"] == j["references"]


def test_compressed_real_trace(lackey_trace, tmp_path):
    import gzip

    gz = tmp_path / "t.lackey.gz"
    with open(lackey_trace, "rb") as f:
        gz.write_bytes(gzip.compress(f.read()))
    assert (cli_json("--trace", str(gz), "--frames", "16")
            == cli_json("--trace", lackey_trace, "--frames", "16"))
