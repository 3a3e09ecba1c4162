"""Renderers for a program run (RunReport): the summary table, the final map, events, JSON.

JSON has exactly the trace-mode keys (`references`, `pages_touched`, `page_faults`,
`faults_by_kind`, `evictions`, `dirty_evictions`, `swap_ins`, `tlb`, `effective_access_ns`,
`pages`, `frames`, `processes`), made by the trace renderer from the same engine statistics,
plus `guest` and `maps` (issue 5). The default mode sees page-granular events (TLB fills), not
every access: there `references`, `tlb` {hits, misses, hit_ratio} and `effective_access_ns` are
null, and the table says why; `--exact-tlb` (or `--emit-trace`) fills them in.
"""

from __future__ import annotations

import os

from elfvm.emu.run import RunReport

GUEST_KEYS = ("stdout", "stdout_base64", "stderr", "stderr_base64", "exit_status", "instructions",
              "syscalls", "unknown_syscalls", "processes")
MAPS_KEYS = ("start", "end", "perms", "pgoff", "name", "kind", "source")
NO_TLB = "n/a (page-granular mode): use --exact-tlb"


def _stats_json(s, exact: bool) -> dict:
    from elfvm.render.simulate import stats_json

    d = stats_json(s)
    if not exact:
        d["references"] = None
        d["tlb"] = {"hits": None, "misses": None, "hit_ratio": None}
        d["effective_access_ns"] = None
    return d


def report_dict(r: RunReport) -> dict:
    import base64          # JSON only: the table does not pay for it

    d = _stats_json(r.stats, r.exact)
    d["pages_touched"] = r.pages_touched
    d["processes"] = [_stats_json(s, r.exact) for s in r.process_stats]
    out, err = r.stdout, r.stderr                                   # read once each
    d["guest"] = {
        "stdout": out.decode("utf-8", "replace"),
        "stdout_base64": base64.b64encode(out).decode(),            # the exact bytes
        "stderr": err.decode("utf-8", "replace"),
        "stderr_base64": base64.b64encode(err).decode(),
        "exit_status": r.exit_status,
        "instructions": r.instructions,
        "syscalls": list(r.syscalls),
        "unknown_syscalls": list(r.unknown_syscalls),
        "processes": [{"pid": q["pid"], "ppid": q["ppid"], "exit_status": q["exit_status"],
                       "images": q.get("images", [])} for q in r.processes],
    }
    d["maps"] = [{k: m[k] for k in MAPS_KEYS} for m in r.maps]
    return d


def render_json(r: RunReport) -> str:
    import json

    return json.dumps(report_dict(r), indent=2)


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def headline(r: RunReport) -> list[str]:
    out = []
    if r.stop_reason == "max-instructions":
        out.append(f"stopped: --max-instructions reached after {r.instructions} instructions")
    elif r.stop_reason == "interrupted":
        out.append("stopped: interrupted (partial report)")
    if r.death:
        d = r.death
        where = f" at {d['address']:#x}" if d.get("address") is not None else ""
        acc = {"r": "read", "w": "write", "x": "instruction fetch"}.get(d.get("access") or "", "")
        sym = f" in {d['symbol']}" if d.get("symbol") else ""
        eip = f" (eip {d['eip']:#x}{sym})" if d.get("eip") is not None else ""
        out.append(f"{r.program}: {d['signal']}{where} {acc}{eip}: {d['reason']}".replace("  ", " "))
    return out


def summary_rows(r: RunReport) -> list[tuple]:
    s, c = r.stats, r.config
    mode = "exact: every access" if r.exact else "default: page-granular"
    rows = [("exit status", r.exit_status),
            ("instructions", r.instructions if r.instructions is not None else "n/a"),
            ("references", s.references if r.exact else f"n/a ({mode})"),
            ("pages touched", r.pages_touched),
            ("page faults", f"{s.page_faults} ({r.fault_model} model)")]
    rows += [(f"· {k}", v) for k, v in s.faults_by_kind.items() if v]
    rows += [("pages present at exec", f"{r.pages_at_exec} (execve's faults, not counted)"),
             ("evictions", s.evictions), ("· dirty (written to swap)", s.dirty_evictions),
             ("swap-ins", s.swap_ins)]
    if r.exact:
        rows += [("TLB hits", s.tlb.hits), ("TLB misses", s.tlb.misses),
                 ("TLB hit ratio", _pct(s.tlb.hit_ratio)),
                 ("effective access time", "-" if s.effective_access_ns is None
                  else f"{s.effective_access_ns:.2f} ns")]
    else:
        rows += [("TLB hit ratio, EAT", NO_TLB)]
    rows += [("CPU TLB fills (Unicorn's TLB)", r.tlb_fills),
             ("frames in use", f"{len(s.frames)} of {c.frames}")]
    if len(r.processes) > 1:
        for p, ps in zip(r.processes, r.process_stats):
            rows.append((f"pid {p['pid']}", f"{ps.page_faults} faults "
                         f"({', '.join(f'{k} {v}' for k, v in ps.faults_by_kind.items() if v)}), "
                         f"exit {p['exit_status']}"))
    return rows


def pmap_rows(r: RunReport) -> list[dict]:
    """pmap -X of the first process at the end of the run, in KiB per mapping: Size, Rss (resident
    pages), Swapped (pages whose contents are in swap), Shared (resident pages of MAP_SHARED
    mappings and shm segments) and Private (the other resident pages). The model keeps one frame
    per process page, so a page fork left copy-on-write counts as private here."""
    from bisect import bisect_left

    first = r.process_stats[0] if r.process_stats else r.stats
    swapped = sorted({p.page for p in first.pages if p.swapped})
    perms = {(m["start"], m["end"]): m["perms"] for m in r.maps}
    rows = []
    for x in r.rss_by_vma:
        perm = perms.get((x["start"], x["end"]), "")
        sw = bisect_left(swapped, x["end"] >> 12) - bisect_left(swapped, x["start"] >> 12)
        if x["name"].startswith("/") and "w" not in perm:
            sw = 0               # clean file pages are dropped and read again, never swapped
        shared = perm[3:] == "s"
        rows.append({"start": x["start"], "perms": perms.get((x["start"], x["end"]), ""),
                     "size": x["pages"] * 4, "rss": x["resident"] * 4, "swapped": sw * 4,
                     "shared": x["resident"] * 4 if shared else 0,
                     "private": 0 if shared else x["resident"] * 4,
                     "mapping": os.path.basename(x["name"]) if x["name"].startswith("/") else x["name"]})
    return rows


def pmap_table(r: RunReport) -> str:
    from tabulate import tabulate

    rows = pmap_rows(r)
    keys = ("size", "rss", "swapped", "shared", "private")
    total = ["", "", *(sum(x[k] for x in rows) for k in keys), "total KiB"]
    body = [[f"{x['start']:08x}", x["perms"], *(x[k] for k in keys), x["mapping"]] for x in rows]
    return ("pmap -X of the first process (simulated, KiB; Shared: MAP_SHARED and shm pages):\n" +
            tabulate(body + [total], headers=["Address", "Perm", "Size", "Rss", "Swapped", "Shared",
                                              "Private", "Mapping"], tablefmt="simple"))


def render_text(r: RunReport, show: tuple[str, ...] = (), limit: int = 50) -> str:
    from tabulate import tabulate

    c = r.config
    out = headline(r)
    import textwrap

    out += textwrap.wrap(f"policy {c.policy}, {c.frames} frames of 4 KiB; TLB: {c.tlb.describe()}; "
                         f"{c.walk_levels}-level walk", 79, subsequent_indent="  ")
    rows = [["" if c is None else c for c in row] for row in summary_rows(r)]   # tabulate 0.9
    out.append(tabulate(rows, tablefmt="plain", maxcolwidths=[None, 48]))        # wraps no None
    if r.unknown_syscalls:
        out.append("unknown system calls (returned -ENOSYS): " +
                   ", ".join(f"{u['name']} ({u['number']}) x{u['count']}"
                             for u in r.unknown_syscalls))
    import textwrap

    out += textwrap.wrap("note: pages touched counts the pages the program itself referenced; frames "
                         "in use counts every page resident at the end, in every process: also pages "
                         "mapped without a reference (fault-around neighbours, execve's stack and "
                         "image pages, pages a fork copied), minus pages evicted or unmapped", 79,
                         subsequent_indent="  ")
    out.append("")
    first = r.processes[0] if r.processes else None
    whose = (f" of pid {first['pid']} ({os.path.basename(r.program)}, the first process; "
             f"{len(r.processes) - 1} other process(es) ran)" if first and len(r.processes) > 1 else "")
    out.append(f"final memory map{whose}:")
    out.append(r.maps_text.rstrip())
    out.append("")
    out.append(pmap_table(r))
    if "events" in show:
        out.append("")
        ev = r.events[:limit]
        out.append(tabulate([(e["seq"], e["pid"], f"{e['address']:#010x}", e["access"], e["kind"],
                              e["handler"], f"{e['eip']:#010x}", r.symbol_at(e["eip"]) or "", e["mapped"],
                              "kernel" if e["kernel"] else "") for e in ev],
                            headers=["#", "pid", "address", "access", "kind", "handler", "eip",
                                     "symbol", "mapped", "by"]))
        if len(r.events) > limit:
            out.append(f"... {len(r.events) - limit} more (--limit)")
    if "pages" in show or "frames" in show:
        from elfvm.render import simulate as trace_render
        from elfvm.sim.engine import PROGRAM_FAULT_KINDS, SimResult

        res = SimResult(c, [str(p["pid"]) for p in r.processes], r.stats, r.process_stats, [], [],
                        PROGRAM_FAULT_KINDS)
        for what in ("pages", "frames"):
            if what in show:
                out.append("")
                table = trace_render.pages_table if what == "pages" else trace_render.frames_table
                out.append(table(res, limit).rstrip())
    for path in r.trace_files:
        out.append(f"trace: {path}")
    for n in (*r.notes, *([r.fault_around] if r.fault_around else [])):
        out.append(f"note: {n}")
    out += [f"warning: {w}" for w in r.warnings]
    return "\n".join(out) + "\n"
