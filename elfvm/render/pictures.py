"""Entry points for pictures of an ExecResult: SVG file and terminal diagram."""

from __future__ import annotations

from elfvm.kernel.process import ExecResult
from elfvm.render.bands import layout_bands, markers


def _title(result: ExecResult) -> str:
    p = result.profile
    split = f" --split {p.split}" if p.split else ""
    return f"{result.program}  ({p.name}{split}, TASK_SIZE {p.task_size:#x})"


def kernel_regions(result: ExecResult) -> list[tuple[int, int, str, str]] | None:
    """The kernel half of a native i386 profile, from the MMU model when it is there."""
    if result.profile.name != "linux-i386":
        return None
    try:
        from elfvm.mmu.kernel_half import regions_for_pictures
    except ImportError:
        return [(result.profile.page_offset, 1 << 32, "kernel (PAGE_OFFSET and up)", "")]
    return regions_for_pictures(result.profile)


def write_layout_svg(result: ExecResult, path: str) -> None:
    from elfvm.render.svg import layout_svg

    svg = layout_svg(_title(result), layout_bands(result, kernel_regions(result)), markers(result))
    _save_svg(svg, path)


def layout_diagram_text(result: ExecResult, *, color: bool | None = None) -> str:
    from elfvm.render.diagram import layout_diagram

    return layout_diagram(_title(result), layout_bands(result, kernel_regions(result)), markers(result),
                          color=color)


def write_walk_svg(space, translations, path: str) -> None:
    """`translate --svg`: the walk of each translation, drawn as the lecture draws it."""
    from elfvm.render.svg import walk_svg

    geom = space.geom
    cr3 = space.pt.cr3 if getattr(space, "pt", None) is not None else None
    items = []
    for t in translations:
        lin = t.linear
        fields = []
        if lin is not None:
            for name, b, shift in zip(geom.level_names, geom.level_bits, geom.shifts):
                fields.append((name, b, (lin >> shift) & ((1 << b) - 1)))
        off_bits = geom.offset_bits
        offset = (off_bits, (lin & ((1 << off_bits) - 1)) if lin is not None else 0)
        steps = [(w.level, w.index, w.entry, w.bits, w.present) for w in t.walk]
        if t.physical is not None:
            result = f"physical {t.physical:#x}"
        elif t.fault is not None:
            result = f"fault {t.fault.kind}: {t.fault.reason}"
        else:
            result = "no translation"
        seg = list(t.segmentation.steps) if t.segmentation is not None else []
        items.append({"title": f"{t.input}  ({t.access}, CPL {t.cpl}, --mmu {geom.name})", "linear": lin,
                      "fields": fields, "offset": offset, "cr3": cr3, "steps": steps, "result": result,
                      "segmentation": seg})
    _save_svg(walk_svg(items), path)


# --- simulate-run ---------------------------------------------------------------------------

def _save_svg(svg: str, path: str) -> None:
    """Write the picture as UTF-8; a file name that was not UTF-8 (bytes kept as surrogate
    escapes by os.fsdecode) is drawn with its bad bytes as \\xNN."""
    import re

    svg = re.sub("[\udc80-\udcff]", lambda m: f"\\x{ord(m.group()) - 0xDC00:02x}", svg)
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(svg)
    except OSError as e:
        from elfvm.errors import UsageError

        raise UsageError(f"--svg {path}: {e.strerror}") from None


def _paging_summary(t, pages_touched: int) -> str:
    """Pages touched, faults by kind, evictions of a run's total `Stats`."""
    kinds = ", ".join(f"{n} {k}" for k, n in t.faults_by_kind.items() if n)
    return (f"{pages_touched} pages touched, {t.page_faults} page faults"
            + (f" ({kinds})" if kinds else "")
            + f", {t.evictions} evictions ({t.dirty_evictions} dirty)")


def write_simulate_svg(result, path: str, mmu_name: str) -> None:
    """`simulate-run --trace ... --svg`: the frame table over time, the page faults and the TLB
    hit ratio over the run, from the timeline the engine sampled (`stream.run_traces(timeline_bins=)`)."""
    import os

    from elfvm.render.simulate import describe_config
    from elfvm.render.svg_sim import timeline_svg

    tl = result.timeline
    if tl is None:
        raise ValueError("the run has no timeline: run_traces(..., timeline_bins=N)")
    t = result.total
    summary = f"{t.references} references, " + _paging_summary(t, t.pages_touched)
    if len(result.names) > 1:
        summary += f", {t.context_switches} context switches"
    names = [os.path.basename(n) if n != "-" else "stdin" for n in result.names]
    title = f"simulate-run: {result.config.policy} with {result.config.frames} frames, " + \
        (names[0] if len(names) == 1 else f"{len(names)} processes")
    svg = timeline_svg(tl, title=title, subtitle=describe_config(result, mmu_name), summary=summary,
                       processes=names, hit_ratio=t.tlb.hit_ratio, eat_ns=t.effective_access_ns,
                       tlb_entries=result.config.tlb.entries)
    _save_svg(svg, path)


def write_compare_svg(result, path: str) -> None:
    """`simulate-run --compare ... --svg`: faults against memory size, one line per policy."""
    from elfvm.render.svg_sim import compare_svg

    svg = compare_svg(policies=result.policies, frames=result.frames, faults=result.faults,
                      belady=result.belady, references=result.references,
                      pages_touched=result.pages_touched,
                      title="simulate-run --compare: the fault curve of each policy")
    _save_svg(svg, path)


def write_program_svg(report, path: str, mmu_name: str) -> None:
    """`simulate-run PROGRAM --svg`: the same picture of a program run (elfvm.emu), from the
    timeline its paging model sampled (`RunOptions(timeline_bins=)`). Time is the model's
    references: every access with --exact-tlb; in the default mode the page-granular events the
    model sees (CPU TLB fills and the kernel's copies to and from user memory), where the TLB
    is not measured."""
    import os

    from elfvm.render.simulate import describe_config
    from elfvm.render.svg_sim import timeline_svg
    from elfvm.sim.engine import PROGRAM_FAULT_KINDS, SimResult

    tl = report.timeline
    if tl is None:
        raise ValueError("the run has no timeline: RunOptions(timeline_bins=N)")
    t, c = report.stats, report.config
    res = SimResult(c, list(tl.names), t, report.process_stats, [], [], PROGRAM_FAULT_KINDS)
    n = len(tl.names)
    prog = os.path.basename(report.program)
    title = (f"simulate-run {prog}: {c.policy} with {c.frames} frames, "
             + ("1 process" if n == 1 else f"{n} processes")
             + (" (--exact-tlb: every access)" if report.exact else " (default mode: page-granular)"))
    if report.exact:
        summary = f"{t.references} references, "
        unit, axis, note = "reference", "references (every instruction fetch and data access)", None
    else:
        summary = f"{t.references} events ({report.tlb_fills} CPU TLB fills), "
        unit = "event"
        axis = ("page-granular events: CPU TLB fills and the kernel's copies to/from user pages "
                "(each one reference of the model)")
        note = ("TLB hit ratio not measured in the default mode: the model sees page-granular "
                "events, not every access; use --exact-tlb")
    summary += _paging_summary(t, report.pages_touched)
    if report.exit_status is not None:
        summary += f", exit status {report.exit_status}"
    svg = timeline_svg(tl, title=title, subtitle=describe_config(res, mmu_name), summary=summary,
                       processes=list(tl.names), hit_ratio=t.tlb.hit_ratio if report.exact else None,
                       eat_ns=t.effective_access_ns if report.exact else None,
                       tlb_entries=c.tlb.entries, unit=unit, axis_label=axis, tlb_note=note)
    _save_svg(svg, path)
