"""Turning a simulate-run result into a table or JSON (both from the same dataclasses)."""

from __future__ import annotations

from elfvm.sim.engine import FrameRow, PageRow, SimResult, Stats
from elfvm.sim.stream import CompareResult
from elfvm.units import human_size


def tabulate(*args, **kwargs) -> str:
    """tabulate.tabulate, imported when a table is drawn (JSON output never pays for it)."""
    from tabulate import tabulate as _tabulate

    return _tabulate(*args, **kwargs)


# ------------------------------------------------------------------ JSON

def page_json(r: PageRow) -> dict:
    return {"process": r.process, "page": r.page, "frame": r.frame, "dirty": r.dirty,
            "referenced": r.referenced, "swapped": r.swapped}


def frame_json(r: FrameRow) -> dict:
    return {"frame": r.frame, "process": r.process, "page": r.page, "dirty": r.dirty,
            "referenced": r.referenced}


def stats_json(s: Stats) -> dict:
    """Exactly the keys of the issue's contract, in its order."""
    return {
        "references": s.references,
        "pages_touched": s.pages_touched,
        "page_faults": s.page_faults,
        "faults_by_kind": dict(s.faults_by_kind),
        "evictions": s.evictions,
        "dirty_evictions": s.dirty_evictions,
        "swap_ins": s.swap_ins,
        "tlb": {"hits": s.tlb.hits, "misses": s.tlb.misses, "hit_ratio": s.tlb.hit_ratio},
        "effective_access_ns": s.effective_access_ns,
        "pages": [page_json(r) for r in s.pages],
        "frames": [frame_json(r) for r in s.frames],
    }


def to_json(res: SimResult) -> dict:
    out = stats_json(res.total)
    out["processes"] = [stats_json(s) for s in res.processes]
    return out


def compare_json(c: CompareResult) -> dict:
    return {
        "references": c.references,
        "pages_touched": c.pages_touched,
        "frames": c.frames,
        "faults": {p: c.faults[p] for p in c.policies},
        "belady": [{"policy": p, "frames": a, "faults": fa, "more_frames": b, "more_faults": fb}
                   for p, a, fa, b, fb in c.belady],
    }


# ------------------------------------------------------------------ tables

def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def _ns(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f} ns"


def describe_config(res: SimResult, mmu_name: str) -> str:
    c = res.config
    ps = c.page_size
    psz = human_size(ps)
    tlb = c.tlb.describe()
    if c.tlb.entries:
        tlb += ", split I/D" if c.split_tlb else ", unified"
        if len(res.names) > 1:
            tlb += ", ASID-tagged" if c.asid else ", flushed on every switch"
    hit, miss = c.tlb_ns + c.mem_ns, (c.walk_levels + 1) * c.mem_ns
    return (f"policy {c.policy}, {c.frames} frames of {psz}; TLB: {tlb}; --mmu {mmu_name}: "
            f"{c.walk_levels}-level walk (hit {hit:g} ns, miss {miss:g} ns)")


def summary_table(res: SimResult) -> str:
    cols = [res.total] + (res.processes if len(res.processes) > 1 else [])
    heads = ["", "total"] + ([f"P{i} {n}" for i, n in enumerate(res.names)]
                             if len(res.processes) > 1 else [])
    kinds = list(res.total.faults_by_kind)
    rows = [["references"] + [s.references for s in cols],
            ["pages touched"] + [s.pages_touched for s in cols],
            ["page faults"] + [s.page_faults for s in cols]]
    rows += [[f"· {k}"] + [s.faults_by_kind.get(k, 0) for s in cols] for k in kinds]
    rows += [["evictions"] + [s.evictions for s in cols],
             ["· dirty (written to swap)"] + [s.dirty_evictions for s in cols],
             ["swap-ins"] + [s.swap_ins for s in cols],
             ["TLB hits"] + [s.tlb.hits for s in cols],
             ["TLB misses"] + [s.tlb.misses for s in cols],
             ["TLB hit ratio"] + [_pct(s.tlb.hit_ratio) for s in cols],
             ["effective access time"] + [_ns(s.effective_access_ns) for s in cols]]
    if len(res.processes) > 1:
        rows.append(["context switches", res.total.context_switches] + [""] * (len(cols) - 1))
    rows.append(["frames in use", f"{len(res.total.frames)} of {res.config.frames}"]
                + [len(s.frames) for s in cols[1:]])
    return tabulate(rows, headers=heads, colalign=("left",) + ("right",) * len(cols))


def _page(n: int, page_size: int) -> str:
    return f"{n:#x} ({n * page_size:#010x})"


def pages_table(res: SimResult, limit: int) -> str:
    ps = res.config.page_size
    rows = []
    for r in res.total.pages[:limit]:
        frame = r.frame if r.frame is not None else ("swap" if r.swapped else "-")
        rows.append([f"P{r.process}", _page(r.page, ps), frame, "D" if r.dirty else "",
                     "A" if r.referenced else ""])
    out = tabulate(rows, headers=["process", "page (address)", "frame", "dirty", "referenced"])
    return out + _more(len(res.total.pages), limit, "pages")


def frames_table(res: SimResult, limit: int) -> str:
    ps = res.config.page_size
    rows = [[r.frame, f"P{r.process}", _page(r.page, ps), "D" if r.dirty else "",
             "A" if r.referenced else ""] for r in res.total.frames[:limit]]
    out = tabulate(rows, headers=["frame", "process", "page (address)", "dirty", "referenced"])
    return out + _more(len(res.total.frames), limit, "frames")


def events_table(res: SimResult, limit: int) -> str:
    ps = res.config.page_size
    rows = []
    for e in res.events[:limit]:
        evicted = "" if e.victim_page is None else f"P{e.victim_process} {_page(e.victim_page, ps)}"
        rows.append([e.ref + 1, f"P{e.process}", _page(e.page, ps), e.kind, e.frame, evicted,
                     "written to swap" if e.written_back else ""])
    out = tabulate(rows, headers=["ref#", "process", "page (address)", "fault", "frame",
                                  "evicted", "write-back"])
    total = res.total.page_faults
    return out + _more(total, limit, "page faults")


def _more(n: int, limit: int, what: str) -> str:
    return f"\n... {n - limit} more {what} (--limit)\n" if n > limit else "\n"


def compare_table(c: CompareResult) -> str:
    rows = [[p] + c.faults[p] for p in c.policies]
    out = tabulate(rows, headers=["faults"] + [f"{n} frames" for n in c.frames])
    out += f"\n{c.references} references, {c.pages_touched} distinct pages\n"
    if c.belady:
        for p, a, fa, b, fb in c.belady:
            out += (f"Belady's anomaly: {p} takes {fb} faults with {b} frames but only {fa} "
                    f"with {a}\n")
    else:
        out += "no Belady's anomaly: more frames never gave more faults\n"
    return out


def bad_lines_note(res_bad) -> str | None:
    if not res_bad:
        return None
    n = sum(b.count for b in res_bad)
    first = res_bad[0]
    return (f"skipped {n} malformed line{'s' if n != 1 else ''} (first: {first.trace}:"
            f"{first.first_line}: {first.first_reason}: {first.first_text!r})")


def to_table(res: SimResult, mmu_name: str, shows: tuple[str, ...], limit: int) -> str:
    import textwrap

    head = "\n".join(textwrap.wrap(describe_config(res, mmu_name), 79, subsequent_indent="  "))
    out = head + "\n\n" + summary_table(res) + "\n"
    note = bad_lines_note(res.bad_lines)
    if note:
        out += note + "\n"
    for show in shows:
        out += "\n"
        if show == "pages":
            out += pages_table(res, limit)
        elif show == "frames":
            out += frames_table(res, limit)
        else:
            out += events_table(res, limit)
    return out


# --- reference strings (--refs) -----------------------------------------------------------

def _belady_lines(anomalies) -> str:
    if not anomalies:
        return ""
    return "".join(f"Belady's anomaly: {p} takes {fb} faults with {b} frames but only {fa} with {a}\n"
                   for p, a, fa, b, fb in anomalies)


def steps_table(run) -> str:
    """The OSTEP `-c` view of one policy and frame count: each reference, hit or miss, the
    frames' contents after it and the page evicted."""
    rows = []
    for i, s in enumerate(run.steps, 1):
        rows.append([i, s.page, "hit" if s.hit else "MISS",
                     *("" if p is None else p for p in s.frames),
                     "" if s.victim is None else s.victim])
    head = ["#", "page", "result", *(f"f{i}" for i in range(run.nframes)), "victim"]
    hits = len(run.steps) - run.faults
    return (f"{run.policy}, {run.nframes} frames\n" + tabulate(rows, headers=head) +
            f"\n{run.faults} faults, {hits} hits (hit ratio {hits / len(run.steps):.1%})\n")


def refs_table(pages, runs, anomalies, steps: bool) -> str:
    out = ""
    if steps:
        out += "\n".join(steps_table(r) for r in runs) + "\n"
    policies = list(dict.fromkeys(r.policy for r in runs))
    frames = list(dict.fromkeys(r.nframes for r in runs))
    faults = {(r.policy, r.nframes): r.faults for r in runs}
    out += tabulate([[p] + [faults[p, n] for n in frames] for p in policies],
                    headers=["faults"] + [f"{n} frames" for n in frames])
    out += f"\n{len(pages)} references, {len(set(pages))} distinct pages\n"
    out += _belady_lines(anomalies) or (
        "no Belady's anomaly: more frames never gave more faults\n" if len(frames) > 1 else "")
    return out


def refs_json(pages, runs, anomalies, steps: bool) -> str:
    import json

    data = {"references": pages,
            "runs": [{"policy": r.policy, "frames": r.nframes, "faults": r.faults,
                      **({"steps": [{"page": s.page, "hit": s.hit, "frames": list(s.frames),
                                     "victim": s.victim} for s in r.steps]} if steps else {})}
                     for r in runs],
            "belady": [{"policy": p, "frames": a, "faults": fa, "more_frames": b, "more_faults": fb}
                       for p, a, fa, b, fb in anomalies]}
    return json.dumps(data, indent=1)
