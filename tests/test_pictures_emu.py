"""`simulate-run PROGRAM --svg`: the timeline of a program run (elfvm.emu on the trace engine's
PagingModel), sampled by the same recorder as trace mode and drawn by the same renderer.

SVGs must be well-formed XML with the expected labels (processes, fault kinds, frames, an honest
time axis); the report must not change with --svg, and a run without --svg must not sample.
"""

import json
import re
import xml.etree.ElementTree as ET

import pytest

from conftest import fixture_path
from simhelp import cli_run

pytest.importorskip("drawsvg")
pytest.importorskip("unicorn")
NS = "{http://www.w3.org/2000/svg}"
FAULT_COLUMNS = slice(7, None)          # elfvm.sim.paging_core.C_FAULT ...


def texts(path):
    root = ET.parse(path).getroot()
    assert root.tag == f"{NS}svg"
    return "\n".join(t.text or "" for t in root.iter(f"{NS}text"))


def run_prog(prog, *opts):
    """Options end at PROGRAM: they go first."""
    return cli_run(*opts, prog)


def report_json(prog, *opts):
    r = run_prog(prog, *opts, "--format", "json")
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def faults(d):
    return (d["page_faults"], d["faults_by_kind"], d["evictions"], d["swap_ins"],
            [(p["page_faults"], p["faults_by_kind"]) for p in d["processes"]])


@pytest.mark.parametrize("extra", [(), ("--exact-tlb",)])
def test_touch_svg_fork_and_cow(tmp_path, needs_interp, extra):
    out = tmp_path / "touch.svg"
    prog = fixture_path("touch")
    with_svg = report_json(prog, *extra, "--svg", str(out))
    assert faults(with_svg) == faults(report_json(prog, *extra))      # --svg changes nothing
    assert with_svg["faults_by_kind"]["cow"] > 0
    joined = texts(out)
    for label in ("simulate-run touch", "2 processes", "P0 touch, pid 100",
                  "P1 touch, pid 101 (forked by 100)", "free", "Frame table over time",
                  "each of 400 time bins", "frames ever used", "Page faults over the run: "
                  f"{with_svg['page_faults']} (", "first-touch", "zero-page", "file", "cow"):
        assert label in joined, label
    assert re.search(r"^(frames )?\d+-\d+$", joined, re.M)          # the first row of frames (PTE frames)
    if extra:
        assert "TLB hit ratio in each bin" in joined and "effective access time" in joined
        assert "references (every instruction fetch and data access)" in joined
        assert "faults per 1000 references" in joined
    else:
        assert "TLB hit ratio not measured in the default mode" in joined
        assert "use --exact-tlb" in joined and "TLB hit ratio in each bin" not in joined
        assert "page-granular events: CPU TLB fills" in joined


@pytest.mark.parametrize("extra", [(), ("--exact-tlb",)])
def test_hello_static_svg(tmp_path, extra):
    out = tmp_path / "hello.svg"
    prog = fixture_path("hello_static")
    r = run_prog(prog, *extra, "--svg", str(out))
    assert r.exit_code == 0, r.output
    assert "page faults" in r.stdout                       # the report is still printed
    joined = texts(out)
    for label in ("simulate-run hello_static", "1 process", "P0 hello_static, pid 100", "frames ",
                  "Frame table over time", "Page faults over the run:", "file", "cow",
                  "exit status 0"):
        assert label in joined, label
    assert re.search(r"^frames \d+-\d+$", joined, re.M)            # rows named by PTE frames
    assert "forked by" not in joined
    if extra:
        assert "(--exact-tlb: every access)" in joined and "TLB hit ratio in each bin" in joined
    else:
        assert "(default mode: page-granular)" in joined and "use --exact-tlb" in joined
        assert "one column per event" in joined             # ~100 events: one bin each
        assert "(event number)" in joined


def test_stack_growth_is_a_fault_kind_of_the_picture(tmp_path):
    out = tmp_path / "sg.svg"
    r = run_prog(fixture_path("stackgrow"), "--svg", str(out))
    assert r.exit_code == 0, r.output
    assert "stack-growth" in texts(out)


def test_timeline_totals_are_the_reports(needs_interp):
    """The last sampled edge holds the counters of the run's report, per process, and swap-ins
    relabelled as file faults never make a bin negative."""
    from elfvm.emu.run import RunOptions, run_program

    r = run_program(RunOptions(fixture_path("touch"), frames=64, policy="fifo", timeline_bins=50))
    tl = r.timeline
    assert tl is not None and tl.bins == 50 and tl.counters.shape[1] == 2
    assert tl.names == ("touch, pid 100", "touch, pid 101 (forked by 100)")
    for i, s in enumerate(r.process_stats):
        assert int(tl.counters[-1, i, FAULT_COLUMNS].sum()) == s.page_faults
    kinds = {k: int(v.sum()) for k, v in tl.faults_by_kind().items()}
    assert kinds == {k: v for k, v in r.faults_by_kind.items() if v}
    assert kinds["swap-in"] > 0 and r.evictions > 0
    assert (tl.counters[1:] >= tl.counters[:-1]).all()         # cumulative: never goes down
    assert tl.frames_used() <= 64 and (tl.frame_proc == 1).any()


def test_no_sampling_without_svg(monkeypatch):
    import elfvm.sim.timeline as T

    def boom(*a, **k):
        raise AssertionError("sampled without --svg")

    monkeypatch.setattr(T, "run_sampled", boom)
    monkeypatch.setattr(T, "Recorder", boom)
    from elfvm.emu.run import RunOptions, run_program

    r = run_program(RunOptions(fixture_path("hello_static")))
    assert r.timeline is None and r.exit_status == 0


def test_program_svg_unwritable(tmp_path):
    r = run_prog(fixture_path("hello_static"), "--svg", str(tmp_path / "no" / "x.svg"))
    assert r.exit_code == 2 and "--svg" in r.output
