"""Where each VMA of an exec came from: which ELF image, segment and sections, and what kind of
bytes it holds (file data, the bss tail padzero cleared, anonymous zero-fill).

This is knowledge about an ExecResult, used by the renderers and by the emulator's reports alike.
"""

from __future__ import annotations

import os

from elfvm.kernel.process import ExecResult
from elfvm.mm.maps import MapsLine
from elfvm.mm.vma import PAGE_SIZE, Vma, page_start

def _image(result: ExecResult, owner: str):
    return result.images.get(owner)


def _overlap(a0: int, a1: int, b0: int, b1: int) -> int:
    return max(0, min(a1, b1) - max(a0, b0))


def vma_contents(result: ExecResult, v: Vma) -> dict:
    """Bytes of the VMA that come from the segment's file data, that padzero cleared (the bss
    tail of the last file page), that are anonymous zero-fill, and that are other file bytes
    only visible through page rounding."""
    out = {"file": 0, "padzero": 0, "anon": 0, "rounding": 0}
    if v.special:
        return out
    if not v.origin or v.origin[0] not in ("main", "interp"):
        out["anon"] = v.size if v.file is None else 0
        return out
    owner, idx, part = v.origin
    img = _image(result, owner)
    if img is None or idx >= len(img.phdrs):
        return out
    ph = img.phdrs[idx]
    if part == "bss":
        out["anon"] = v.size
        return out
    base = (img.load_bias + ph.p_vaddr) & 0xFFFFFFFF
    seg_file_end = base + ph.p_filesz
    out["file"] = _overlap(v.start, v.end, base, seg_file_end)
    if ph.p_memsz > ph.p_filesz and page_start(seg_file_end) in result.present_pages:
        tail_end = min(base + ph.p_memsz, page_start(seg_file_end) + PAGE_SIZE)
        out["padzero"] = _overlap(v.start, v.end, seg_file_end, tail_end)
    out["rounding"] = v.size - out["file"] - out["padzero"]
    return out


def vma_sections(result: ExecResult, v: Vma) -> list[str]:
    if not v.origin or v.origin[0] not in ("main", "interp"):
        return []
    img = _image(result, v.origin[0])
    if img is None:
        return []
    bias = img.load_bias
    return img.file.sections_in((v.start - bias) & 0xFFFFFFFF, (v.end - bias) & 0xFFFFFFFF)


def vma_source(result: ExecResult, v: Vma) -> str:
    """One line: which ELF image and segment, which sections, and what kind of bytes."""
    if not v.origin:
        return ""
    owner, idx, part = v.origin
    if owner == "stack":
        return "stack: argv/envp strings, auxv, argc (setup_arg_pages + create_elf_tables)"
    if owner == "vdso":
        return {"[vvar]": "vDSO data pages (vdso_install_vvar_mapping)",
                "[vvar_vclock]": "vDSO pvclock/hvclock pages",
                "[vdso]": "vDSO image (__kernel_vsyscall)"}.get(part, "vDSO")
    img = _image(result, owner)
    who = os.path.basename(img.display.path) if img else owner
    label = img.phdrs[idx].label if img and idx < len(img.phdrs) else f"LOAD[{idx}]"
    secs = vma_sections(result, v)
    sec = f" {' '.join(secs)}" if secs else ""
    if part == "bss":
        return f"{who} {label}: bss, anonymous zero-fill (vm_brk_flags){sec}"
    c = vma_contents(result, v)
    extra = f", bss tail {c['padzero']:#x} B cleared by padzero" if c["padzero"] else ""
    return f"{who} {label}: file {c['file']:#x} B{extra}{sec}"


def line_source(result: ExecResult, line: MapsLine) -> str:
    return "; ".join(s for s in (vma_source(result, p) for p in line.parts) if s)
