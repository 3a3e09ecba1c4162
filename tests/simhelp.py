"""Helpers for the simulate-run tests: write traces, run the engine, read answers back."""

from __future__ import annotations

import json

from click.testing import CliRunner

from elfvm.cli import cli
from elfvm.mmu.tlb import tlb_geometry
from elfvm.sim.engine import SimConfig
from elfvm.sim.stream import run_traces


def write(tmp_path, name: str, text: str) -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def plain_pages(pages, writes=()) -> str:
    """A plain trace with page size 1: each number is a page; pages listed in `writes` are W."""
    return "".join(f"{'W' if i in writes else 'R'} {p}\n" for i, p in enumerate(pages))


def run(paths, policy="lru", frames=3, *, page_size=1, tlb=64, ways=None, split=False, asid=False,
        levels=2, quantum=10000, events=0, fmt="auto", **kw):
    cfg = SimConfig(policy, frames, page_size, tlb_geometry(tlb, ways), split, asid, levels,
                    kw.pop("tlb_ns", 20.0), kw.pop("mem_ns", 100.0), events)
    return run_traces(paths if isinstance(paths, list) else [paths], cfg, fmt=fmt,
                      quantum=quantum, **kw)


def cli_run(*args, input=None):
    return CliRunner().invoke(cli, ["simulate-run", *args], input=input, catch_exceptions=False)


def cli_json(*args, input=None):
    r = cli_run("--format", "json", *args, input=input)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)
