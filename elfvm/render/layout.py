"""Rendering an ExecResult: /proc/PID/maps lines, a table for people, JSON for scripts.

All three are produced from the same data (the mm's VMAs merged as /proc shows them); nothing
here re-derives a loader rule.
"""

from __future__ import annotations

import errno as _errno
import os

from elfvm.kernel.process import ExecResult
from elfvm.kernel.provenance import (  # noqa: F401  (part of this module's interface)
    line_source, vma_contents, vma_sections, vma_source,
)
from elfvm.mm.maps import maps_text, proc_maps


def render_maps(result: ExecResult) -> str:
    return maps_text(result.mm)


# --- JSON --------------------------------------------------------------------------------

def to_json(result: ExecResult) -> dict:
    """The public JSON contract of `elfvm layout --format json` (see README)."""
    mm = result.mm
    v = result.verdict
    return {
        "program": result.program,
        "profile": result.profile.name,
        "entry": result.eip,
        "load_bias": result.load_bias,
        "interp": (None if result.interp is None else
                   {"path": result.interp.resolved, "base": result.interp.base,
                    "entry": result.interp.entry}),
        "mm": {"start_code": mm.start_code, "end_code": mm.end_code, "start_data": mm.start_data,
               "end_data": mm.end_data, "start_brk": mm.start_brk, "brk": mm.brk,
               "start_stack": mm.start_stack, "mmap_base": mm.mmap_base},
        "vmas": [{"start": ln.start, "end": ln.end, "perms": ln.perms, "pgoff": ln.pgoff,
                  "name": ln.name, "kind": ln.kind, "source": line_source(result, ln)}
                 for ln in proc_maps(mm)],
        "auxv": [{"type": a.type, "name": a.name, "value": a.value} for a in result.auxv],
        "stack": {"top": result.stack.top, "vma_start": result.stack.vma_start,
                  "esp": result.stack.esp,
                  "argv": [{"addr": s.addr, "value": s.value} for s in result.stack.argv],
                  "envp": [{"addr": s.addr, "value": s.value} for s in result.stack.envp]},
        "verdict": {"result": v.result, "errno": v.errno_name, "reason": v.reason},
    }


# --- the human table ---------------------------------------------------------------------

def _hx(x: int) -> str:
    return f"{x:#010x}"


def verdict_hint(result: ExecResult) -> str:
    """How a user would fix the commonest failures."""
    v = result.verdict
    if v.errno == _errno.ENOENT and v.step == "open_exec":
        return ("; hint: install the i386 loader (apt-get install libc6-i386, which gcc-multilib "
                "brings) or point --sysroot at a root that has it")
    if v.errno == _errno.EACCES and "execute permission" in (v.reason or ""):
        return f"; hint: chmod +x {result.program}"
    if v.errno == _errno.E2BIG:
        return "; hint: fewer or shorter arguments/environment, or a larger --rlimit-stack"
    return ""


def verdict_line(result: ExecResult) -> str:
    v = result.verdict
    if v.result == "ok":
        return "execve: ok"
    name = _errno.errorcode.get(v.errno or 0, str(v.errno))
    if v.result == "errno":
        return f"execve fails: {name} ({os.strerror(v.errno)}) in {v.step}: {v.reason}{verdict_hint(result)}"
    return f"execve killed (SIGSEGV) after the point of no return, in {v.step} ({name}): {v.reason}"


def _bytes_col(result: ExecResult, ln) -> str:
    c = {"file": 0, "padzero": 0, "anon": 0, "rounding": 0}
    for p in ln.parts:
        for k, val in vma_contents(result, p).items():
            c[k] += val
    out = ["special mapping"] if ln.parts[0].special else []
    if c["file"] or c["rounding"]:
        out.append(f"file {c['file'] + c['rounding']:#x}")
    if c["padzero"]:
        out.append(f"padzero {c['padzero']:#x}")
    if c["anon"]:
        out.append(f"anon {c['anon']:#x}")
    return ", ".join(out)


def section_places(result: ExecResult, v) -> list[str]:
    """Where each allocated section inside the mapping `v` sits: '.bss 0x56559010+0xc'."""
    if not v.origin or v.origin[0] not in ("main", "interp"):
        return []
    img = result.images.get(v.origin[0])
    if img is None:
        return []
    bias = img.load_bias
    out = []
    for s in img.file.sections:
        a = (s.addr + bias) & 0xFFFFFFFF
        if s.alloc and s.size and s.name and a < v.end and v.start < a + s.size:
            out.append(f"{s.name} {a:#x}+{s.size:#x}")
    return out


def _wide_rows(result: ExecResult) -> tuple[list, list[str]]:
    rows = []
    for ln in proc_maps(result.mm):
        rows.append([_hx(ln.start), _hx(ln.end), ln.perms, f"{ln.pgoff:08x}",
                     f"{ln.dev} {ln.inode}" if ln.inode else "", ln.name, ln.kind,
                     _bytes_col(result, ln), "\n".join(vma_source(result, p) for p in ln.parts)])
    return rows, ["start", "end", "perms", "offset", "dev inode", "name", "kind", "bytes", "source"]


def _source_without_sections(result: ExecResult, v) -> str:
    """vma_source() without its trailing section names (the sections line lists them placed)."""
    src = vma_source(result, v)
    tail = " " + " ".join(vma_sections(result, v))
    return src[:-len(tail)] if tail.strip() and src.endswith(tail) else src


def maps_table(result: ExecResult, width: int, wide: bool) -> str:
    """The mappings: with `wide` every column on one row (as before); otherwise the essential
    columns (start, end, perms, offset, name) in `width` columns, and under each mapping its
    kind, bytes, source and sections wrapped to the same width."""
    import textwrap

    from tabulate import tabulate

    if wide:
        rows, head = _wide_rows(result)
        return tabulate(rows, headers=head, tablefmt="simple", maxcolwidths=[None] * 8 + [72],
                        disable_numparse=True)
    name_w = max(12, width - 45)
    lines = [f"{'start':<10}  {'end':<10}  {'perms':<5}  {'offset':<8}  name",
             f"{'-' * 10}  {'-' * 10}  {'-' * 5}  {'-' * 8}  {'-' * min(name_w, 30)}"]
    indent = " " * 4
    for ln in proc_maps(result.mm):
        name = ln.name if len(ln.name) <= name_w else os.path.basename(ln.name)
        lines.append(f"{_hx(ln.start)}  {_hx(ln.end)}  {ln.perms:<5}  {ln.pgoff:08x}  {name}")
        what = "; ".join(s for s in (_source_without_sections(result, p) for p in ln.parts) if s)
        detail = f"{ln.kind}, {_bytes_col(result, ln)}" + (f": {what}" if what else "")
        lines += textwrap.wrap(detail, width - 1, initial_indent=indent, subsequent_indent=indent + "  ",
                               break_on_hyphens=False)
        places = [x for p in ln.parts for x in section_places(result, p)]
        if places:
            lines += textwrap.wrap("sections: " + ", ".join(places), width - 1, initial_indent=indent,
                                   subsequent_indent=indent + "  ", break_on_hyphens=False)
    return "\n".join(lines)


def to_table(result: ExecResult, *, show_stack: bool = False, wide: bool = False,
             width: int = 80) -> str:
    from tabulate import tabulate

    out: list[str] = []
    img = result.images.get("main")
    mm = result.mm
    prof = result.profile
    if img is not None:
        h = img.file.ehdr
        kind = {2: "ET_EXEC", 3: "ET_DYN"}.get(h.e_type, str(h.e_type))
        interp = "PT_INTERP" if any(p.p_type == 3 for p in img.phdrs) else "no PT_INTERP"
        split = f" --split {prof.split}" if prof.split else ""
        head = (f"{result.program}: i386 {kind}, {interp}, profile {prof.name}{split} "
                f"(TASK_SIZE {prof.task_size:#x})")
        if wide:
            out.append(head)
        else:
            import textwrap

            out += textwrap.wrap(head, width - 1, subsequent_indent="  ", break_on_hyphens=False)
    out.append(verdict_line(result))
    if result.verdict.result == "errno" and not mm.vmas:
        return "\n".join(out) + "\n"
    out.append(maps_table(result, width, wide))
    notes = []
    if result.read_implies_exec:
        notes.append("READ_IMPLIES_EXEC: no PT_GNU_STACK, so every readable mapping (the interpreter's "
                     "too, bss and the stack) is also executable")
    elif result.executable_stack == "enable":
        notes.append("PT_GNU_STACK has PF_X: the stack is executable")
    notes += result.notes
    if result.interp:
        i = result.interp
        notes.append(f"interpreter {i.path} -> {i.resolved}: AT_BASE {i.base:#x}, entry {i.entry:#x}")
    out.append("")
    out.append(tabulate([
        ["entry (eip)", _hx(result.eip)], ["AT_ENTRY", _hx(result.entry)],
        ["load_bias", _hx(result.load_bias)],
        ["start_code / end_code", f"{_hx(mm.start_code)} / {_hx(mm.end_code)}"],
        ["start_data / end_data", f"{_hx(mm.start_data)} / {_hx(mm.end_data)}"],
        ["start_brk = brk", _hx(mm.start_brk)], ["mmap_base", _hx(mm.mmap_base)],
        ["stack VMA", f"{_hx(result.stack.vma_start)}-{_hx(result.stack.top)}"],
        ["esp = start_stack", _hx(result.stack.esp)],
    ], tablefmt="plain", disable_numparse=True))
    if notes:
        import textwrap

        out.append("")
        for n in notes:
            out += textwrap.wrap(f"note: {n}", width - 1, subsequent_indent="  ") if not wide else [f"note: {n}"]
    if result.auxv:
        out.append("")
        if show_stack:
            out.append(stack_table(result, show_words=True, width=None if wide else width))
        else:
            out.append(f"argc {len(result.stack.argv)}, {len(result.stack.envp)} environment strings, "
                       f"{len(result.auxv)} auxv entries: --stack shows them word by word")
    return "\n".join(out) + "\n"


def _strings(result: ExecResult) -> list[tuple[int, str, str]]:
    """(address, label, value) of every string create_elf_tables() copied to the stack."""
    st = result.stack
    rows = [(s.addr, f"argv[{i}]", s.value) for i, s in enumerate(st.argv)]
    rows += [(s.addr, f"envp[{i}]", s.value) for i, s in enumerate(st.envp)]
    if st.execfn:
        rows.append((st.execfn.addr, "AT_EXECFN", st.execfn.value))
    if st.platform:
        rows.append((st.platform.addr, "AT_PLATFORM", st.platform.value))
    return rows


def stack_table(result: ExecResult, *, show_words: bool, width: int | None = None) -> str:
    """argv/envp/auxv with their addresses; with show_words every word from esp to the top of
    the stack, the string area included (each word says whose bytes it holds)."""
    from tabulate import tabulate

    st = result.stack
    cols = [None, None, None if width is None else max(20, width - 28)]
    rows = [[_hx(a), label, repr(v)] for a, label, v in _strings(result)]
    rows.append([_hx(st.random_addr), "AT_RANDOM",
                 "16 bytes from get_random_bytes()" if st.random_bytes == bytes(range(16))
                 else st.random_bytes.hex()])
    out = [tabulate(rows, headers=["address", "string", "value"], tablefmt="simple",
                    maxcolwidths=cols), ""]
    aux_rows = []
    addr = st.auxv_addr
    for a in result.auxv:
        aux_rows.append([_hx(addr), a.name, a.type, _hx(a.value)])
        addr += 8
    out.append(tabulate(aux_rows, headers=["address", "auxv", "type", "value"], tablefmt="simple"))
    if show_words:
        out.append("")
        rows = []
        labels = _word_labels(result)
        for a in range(st.esp, st.top, 4):
            w = st.word(a)
            rows.append([_hx(a), _hx(w), labels.get(a) or _string_label(result, a)])
        out.append(tabulate(rows, headers=["address", "word", "meaning"], tablefmt="simple"))
    return "\n".join(out)


def _string_label(result: ExecResult, a: int) -> str:
    """What the 4 bytes at `a` in the string area belong to, with the characters shown."""
    st = result.stack
    raw = st.image[a - st.image_base:a - st.image_base + 4]
    chars = "".join(chr(b) if 0x20 <= b < 0x7F else ("\\0" if b == 0 else ".") for b in raw)
    owners = []
    for addr, label, v in _strings(result):
        n = len(v.encode("utf-8", "surrogateescape")) + 1
        if addr < a + 4 and a < addr + n:
            owners.append(label)
    if st.random_addr < a + 4 and a < st.random_addr + 16:
        owners.append("AT_RANDOM bytes")
    if not owners:
        what = "padding (alignment)" if a < st.top - 8 else "end marker (zero slot at STACK_TOP)"
        return f"{what} '{chars}'"
    return f"{', '.join(dict.fromkeys(owners))} '{chars}'"


def _word_labels(result: ExecResult) -> dict[int, str]:
    st = result.stack
    labels = {st.esp: "argc"}
    a = st.esp + 4
    for i, _ in enumerate(st.argv):
        labels[a] = f"argv[{i}]"
        a += 4
    labels[a] = "argv NULL"
    a += 4
    for i, _ in enumerate(st.envp):
        labels[a] = f"envp[{i}]"
        a += 4
    labels[a] = "envp NULL"
    a += 4
    for aux in result.auxv:
        labels[a] = f"{aux.name} (type)"
        labels[a + 4] = f"{aux.name} (value)"
        a += 8
    return labels
