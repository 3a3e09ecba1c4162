"""Renderers for a program run (RunReport): the summary table, the final map, events, JSON.

JSON has the trace-mode keys (`references`, `pages_touched`, `page_faults`, `faults_by_kind`,
`evictions`, `dirty_evictions`, `swap_ins`, `tlb`, `effective_access_ns`, `pages`, `frames`,
`processes`) plus `guest` and `maps` (issue 5). Program mode sees page-granular events (faults and
TLB fills), not every access, so `references`, `tlb.hits`, `tlb.hit_ratio` and
`effective_access_ns` are null here; `tlb.misses` counts the fills of the CPU's TLB.
"""

from __future__ import annotations

import json

from elfvm.emu.run import RunReport

MAPS_KEYS = ("start", "end", "perms", "offset", "dev", "inode", "name", "kind", "size")


def report_dict(r: RunReport) -> dict:
    return {
        "references": None,
        "pages_touched": r.pages_touched,
        "page_faults": r.page_faults,
        "faults_by_kind": dict(r.faults_by_kind),
        "evictions": r.evictions,
        "dirty_evictions": r.dirty_evictions,
        "swap_ins": r.swap_ins,
        "tlb": {"hits": None, "misses": r.tlb_fills, "hit_ratio": None},
        "effective_access_ns": None,
        "pages": [],
        "frames": [],
        "processes": [{"pid": p.pid, "ppid": p.ppid, "exit_status": p.exit_status,
                       "page_faults": p.page_faults, "faults_by_kind": dict(p.faults_by_kind),
                       "resident_pages": p.resident_pages, "death": p.death}
                      for p in r.processes],
        "guest": {
            "stdout": r.stdout.decode("utf-8", "replace"),
            "stderr": r.stderr.decode("utf-8", "replace"),
            "exit_status": r.exit_status,
            "instructions": r.instructions,
            "syscalls": list(r.syscalls),
        },
        "maps": [{k: m[k] for k in MAPS_KEYS} for m in r.maps],
    }


def render_json(r: RunReport) -> str:
    return json.dumps(report_dict(r), indent=2)


def render_text(r: RunReport, show: tuple[str, ...] = (), limit: int = 50) -> str:
    from tabulate import tabulate

    out = []
    status = r.exit_status
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
    rows = [("exit status", status), ("instructions", r.instructions if r.instructions is not None else "n/a"),
            ("page faults", f"{r.page_faults} ({r.fault_model} model)")]
    rows += [(f"- {k}", v) for k, v in r.faults_by_kind.items() if v]
    rows += [("pages touched", r.pages_touched), ("evictions", r.evictions),
             ("dirty evictions", r.dirty_evictions), ("swap-ins", r.swap_ins),
             ("TLB fills (misses)", r.tlb_fills), ("frames in use (peak)", r.frames_peak)]
    if len(r.processes) > 1:
        for p in r.processes:
            rows.append((f"pid {p.pid}", f"{p.page_faults} faults, exit {p.exit_status}"))
    out.append(tabulate(rows, tablefmt="plain"))
    if r.unknown_syscalls:
        out.append("unknown system calls (returned -ENOSYS): " +
                   ", ".join(f"{u['number']} x{u['count']}" for u in r.unknown_syscalls))
    out.append("")
    out.append("final memory map:")
    out.append(r.maps_text.rstrip())
    out.append("")
    out.append(tabulate([(f"{x['start']:08x}-{x['end']:08x}", x["name"], x["pages"], x["resident"])
                         for x in r.rss_by_vma], headers=["vma", "name", "pages", "resident"]))
    if "events" in show:
        out.append("")
        ev = r.events[:limit]
        out.append(tabulate([(e["seq"], e["pid"], f"{e['address']:#010x}", e["access"], e["kind"],
                              e["handler"], f"{e['eip']:#010x}", e["symbol"] or "", e["mapped"],
                              "kernel" if e["kernel"] else "") for e in ev],
                            headers=["#", "pid", "address", "access", "kind", "handler", "eip", "symbol",
                                     "mapped", "by"]))
        if len(r.events) > limit:
            out.append(f"... {len(r.events) - limit} more (--limit)")
    for n in r.notes:
        out.append(f"note: {n}")
    return "\n".join(out) + "\n"
