"""`simulate-run --svg`: the sampled timeline of the engine and the pictures drawn from it.

SVGs must be well-formed XML with the expected labels; the timeline must be what the engine
really did at each sample point, with a bounded number of bins however long the trace.
"""

import random
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from simhelp import cli_run, plain_pages, run, write

pytest.importorskip("drawsvg")
NS = "{http://www.w3.org/2000/svg}"
BELADY = [1, 2, 3, 4, 1, 2, 5, 1, 2, 3, 4, 5]


def texts(path):
    root = ET.parse(path).getroot()
    assert root.tag == f"{NS}svg"
    return [t.text or "" for t in root.iter(f"{NS}text")]


# ------------------------------------------------------------------ the timeline

def test_no_timeline_unless_asked(tmp_path, monkeypatch):
    """Without --svg nothing of the sampling runs (the plain Machine, the plain kernel)."""
    import elfvm.sim.timeline as T

    def boom(*a, **k):
        raise AssertionError("sampled without --svg")

    monkeypatch.setattr(T, "run_sampled", boom)
    p = write(tmp_path, "t.txt", plain_pages(BELADY))
    res = run(p, "fifo", 3)
    assert res.timeline is None and res.total.page_faults == 9
    r = cli_run("--trace", p, "--page-size", "1", "--frames", "3")
    assert r.exit_code == 0


def test_textbook_timeline_is_the_frame_table(tmp_path):
    p = write(tmp_path, "t.txt", plain_pages(BELADY, writes={0}))
    tl = run(p, "fifo", 3, timeline_bins=400).timeline
    assert tl.bins == 12 and list(tl.edges) == list(range(13))      # one bin per reference
    assert tl.last_page.tolist() == BELADY and set(tl.last_proc.tolist()) == {0}
    assert tl.frame_page.T.tolist() == [[1, 1, 1, 4, 4, 4, 5, 5, 5, 5, 5, 5],
                                        [-1, 2, 2, 2, 1, 1, 1, 1, 1, 3, 3, 3],
                                        [-1, -1, 3, 3, 3, 2, 2, 2, 2, 2, 4, 4]]
    kinds = tl.faults_by_kind()
    assert kinds["first-touch"].tolist() == [1, 1, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0]
    assert kinds["swap-in"].tolist() == [0, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 0]
    assert tl.frames_used() == 3


@pytest.mark.parametrize("policy", ["fifo", "lru", "clock", "opt"])
def test_samples_are_the_state_at_each_edge(tmp_path, policy):
    """The frame table and counters at every sampled edge equal a run over just that prefix."""
    rng = random.Random(7)
    a = [rng.choice(range(12)) for _ in range(900)]
    b = [rng.choice(range(20, 30)) for _ in range(700)]
    pa = write(tmp_path, "a.txt", plain_pages(a, writes=set(range(0, 900, 3))))
    pb = write(tmp_path, "b.txt", plain_pages(b))
    kw = dict(frames=6, tlb=4, quantum=37)
    full = run([pa, pb], policy, timeline_bins=50, **kw)
    plain = run([pa, pb], policy, **kw)
    assert full.total == plain.total and full.events == plain.events   # sampling changes nothing
    tl = full.timeline
    assert tl.bins == 50 and tl.edges[0] == 0 and tl.edges[-1] == 1600
    assert tl.counters[-1].sum(axis=0)[0] == 1600
    if policy == "opt":
        return              # a prefix run of OPT would see different next uses
    for i in (0, 7, 23, 49):
        t = int(tl.edges[i + 1])
        # the interleaved prefix of t references, as its own pair of traces
        order, left = [], [list(a), list(b)]
        cur = used = 0
        while len(order) < t:
            if not left[cur]:
                cur ^= 1
                continue
            order.append((cur, left[cur].pop(0)))
            used += 1
            if used == 37 or not left[cur]:
                used, cur = 0, (cur ^ 1) if left[cur ^ 1] else cur
        na = sum(1 for q, _ in order if q == 0)
        qa = write(tmp_path, "qa.txt", plain_pages(a[:na], writes=set(range(0, 900, 3))))
        qb = write(tmp_path, "qb.txt", plain_pages(b[:t - na]))
        part = run([qa, qb], policy, **kw) if t - na else run([qa], policy, **kw)
        held = {(r.frame, r.process, r.page) for r in part.total.frames}
        sampled = {(int(tl.pfn[f]), int(tl.frame_proc[i, f]), int(tl.frame_page[i, f]))
                   for f in range(tl.frames_sampled) if tl.frame_proc[i, f] >= 0}
        assert sampled == held, (policy, i, t)
        assert int(tl.counters[i + 1].sum(axis=0)[7:].sum()) == part.total.page_faults


def test_sampling_is_bounded(tmp_path):
    """A trace 10x longer gives the same number of bins and the same sample arrays."""
    from elfvm.sim.timeline import Recorder

    sizes = {}
    for n in (20_000, 200_000):
        pages = np.random.default_rng(n).integers(0, 300, n)
        p = tmp_path / f"t{n}.txt"
        p.write_text("\n".join(map(str, pages.tolist())) + "\n")
        res = run(str(p), "lru", 32, timeline_bins=400)
        tl = res.timeline
        assert tl.bins == 400 and tl.references == n
        widths = np.diff(tl.edges)
        assert widths.max() <= 2 * widths[:-1].min()                 # nearly even bins
        assert tl.counters.shape == (401, 1, tl.counters.shape[2])
        assert tl.frame_proc.shape == (400, 32)
        assert int(tl.counters[-1, 0, 0]) == n == res.total.references
        sizes[n] = tl.frame_proc.nbytes + tl.counters.nbytes
    assert sizes[20_000] == sizes[200_000]
    from elfvm.sim.engine import Machine, PageIndex, SimConfig

    rec = Recorder(Machine(SimConfig("lru", 1 << 20, 1), PageIndex(), 1), 400)
    assert rec.frames.shape == (801, 1024)          # 1M frames: only the first 1024 are sampled


# ------------------------------------------------------------------ the pictures

def test_run_svg_textbook(tmp_path):
    p = write(tmp_path, "belady.txt", plain_pages(BELADY, writes={0}))
    out = tmp_path / "run.svg"
    r = cli_run("--trace", p, "--page-size", "1", "--frames", "3", "--policy", "fifo",
                "--svg", str(out))
    assert r.exit_code == 0, r.output
    assert "page faults" in r.stdout                      # the table is still printed
    t = texts(out)
    joined = "\n".join(t)
    for label in ("fifo with 3 frames", "frame 0", "frame 1", "frame 2", "reference",
                  "P0 belady.txt", "free", "Frame table over time", "one column per reference",
                  "Page faults over the run: 9 (5 first-touch, 4 swap-in)", "first-touch",
                  "swap-in", "TLB hit ratio", "effective access time"):
        assert label in joined, label
    assert t.count("F") == 9                              # a fault mark under each faulting column
    for page in "12345":
        assert page in t


def test_run_svg_several_processes_and_many_frames(tmp_path):
    a = write(tmp_path, "a.txt", plain_pages(list(range(120)) * 3))
    b = write(tmp_path, "b.txt", plain_pages(list(range(500, 560)) * 4, writes={5}))
    out = tmp_path / "run.svg"
    r = cli_run("--trace", a, "--trace", b, "--page-size", "1", "--frames", "150", "--quantum", "50",
                "--policy", "clock", "--svg", str(out), "--format", "json")
    assert r.exit_code == 0, r.output
    joined = "\n".join(texts(out))
    for label in ("2 processes", "P0 a.txt", "P1 b.txt", "context switches", "frames per row",
                  "frames 0-", "clock"):
        assert label in joined, label


def test_run_svg_long_trace_stays_small(tmp_path):
    pages = np.random.default_rng(3).integers(0, 40, 100_000)
    p = tmp_path / "long.txt"
    p.write_text("\n".join(f"0x{x * 4096 + 17:x}" for x in pages.tolist()) + "\n")
    out = tmp_path / "run.svg"
    r = cli_run("--trace", str(p), "--frames", "16", "--svg", str(out))
    assert r.exit_code == 0, r.output
    root = ET.parse(out).getroot()
    assert len(list(root.iter())) < 30_000
    joined = "\n".join(texts(out))
    assert "each of 400 time bins" in joined and "page numbers in hex" in joined
    assert "faults per 1000 references" in joined


def test_compare_svg_shows_beladys_anomaly(tmp_path):
    p = write(tmp_path, "t.txt", plain_pages(BELADY))
    out = tmp_path / "cmp.svg"
    r = cli_run("--trace", p, "--page-size", "1", "--compare", "fifo,lru,clock,opt",
                "--frames", "3,4", "--svg", str(out))
    assert r.exit_code == 0, r.output
    t = texts(out)
    joined = "\n".join(t)
    for label in ("fifo", "lru", "clock", "opt", "3 frames", "4 frames", "frames (memory size)",
                  "page faults", "5 distinct pages", "Belady's anomaly", "fifo: 3 -> 4 frames,",
                  "9 -> 10 faults"):
        assert label in joined, label
    assert "no Belady" not in joined


def test_compare_svg_without_anomaly(tmp_path):
    p = write(tmp_path, "t.txt", plain_pages(BELADY))
    out = tmp_path / "cmp.svg"
    r = cli_run("--trace", p, "--page-size", "1", "--compare", "lru,opt", "--frames", "1,2,3,4,5",
                "--svg", str(out))
    assert r.exit_code == 0, r.output
    joined = "\n".join(texts(out))
    assert "no Belady's anomaly" in joined and "lru" in joined and "opt" in joined
    assert "1 frame" in joined and "fifo" not in joined


def test_svg_errors(tmp_path):
    p = write(tmp_path, "t.txt", plain_pages(BELADY))
    r = cli_run("--trace", p, "--page-size", "1", "--frames", "3", "--svg",
                str(tmp_path / "no" / "x.svg"))
    assert r.exit_code == 2 and "--svg" in r.output
