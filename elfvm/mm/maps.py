"""/proc/PID/maps as the kernel prints it (fs/proc/task_mmu.c show_map_vma)."""


from dataclasses import dataclass

from elfvm.mm.vma import Mm, Vma, prot_string


@dataclass(repr=False, eq=False)
class MapsLine:
    """One line of /proc/PID/maps: adjacent mergeable VMAs shown as one, with their parts."""

    start: int
    end: int
    perms: str
    pgoff: int
    dev: str
    inode: int
    name: str
    parts: tuple[Vma, ...]
    ptr_size: int = 8


    @property
    def kind(self) -> str:
        kinds = []
        for p in self.parts:
            if p.kind not in kinds:
                kinds.append(p.kind)
        return "+".join(kinds)

    def text(self) -> str:
        """show_vma_header_prefix: "%08lx-%08lx %c%c%c%c %08llx %02x:%02x %lu ", then the name
        padded to column 73 (seq_pad(m, ' ') pads to 25 + sizeof(void *) * 6 - 1 = 72; 48 on
        a native i386 kernel, so the name starts at column 49 there)."""
        head = f"{self.start:08x}-{self.end:08x} {self.perms} {self.pgoff:08x} {self.dev} {self.inode} "
        if not self.name:
            return head
        return head.ljust(25 + self.ptr_size * 6 - 1) + " " + self.name


def _same_vma(prev: Vma, v: Vma) -> bool:
    if prev.end != v.start:
        return False
    if prev.vm_id and v.vm_id:          # placed by Mm: one line per kernel vm_area_struct
        return prev.vm_id == v.vm_id
    return v.can_merge_after(prev)


def merge_vmas(vmas: list[Vma]) -> list[list[Vma]]:
    """Group adjacent VMAs the way the kernel joined them (vma_merge_new_range at mmap,
    do_brk_flags expanding the previous VMA); VMAs not placed by an Mm are grouped whenever
    they could merge."""
    groups: list[list[Vma]] = []
    for v in vmas:
        if groups and _same_vma(groups[-1][-1], v):
            groups[-1].append(v)
        else:
            groups.append([v])
    return groups


def vma_name(first: Vma, start: int, end: int, mm: Mm) -> str:
    """get_vma_name(): file path, special-mapping name, or [heap]/[stack] for anonymous VMAs."""
    if first.file is not None:
        return first.file.path
    if first.special:
        return first.special
    if mm.heap_overlap_only:
        if start < mm.brk and end > mm.start_brk:      # vma_is_initial_heap (v6.6+)
            return "[heap]"
    elif start <= mm.brk and end >= mm.start_brk:      # show_map_vma() before v6.6
        return "[heap]"
    if start <= mm.start_stack <= end:                 # vma_is_initial_stack
        return "[stack]"
    return ""


def proc_maps(mm: Mm) -> list[MapsLine]:
    lines = []
    for group in merge_vmas(mm.vmas):
        first, last = group[0], group[-1]
        start, end = first.start, last.end
        f = first.file
        dev = f"{f.dev_major:02x}:{f.dev_minor:02x}" if f else "00:00"
        lines.append(MapsLine(start, end, prot_string(first.prot, first.shared),
                              first.pgoff if f else 0, dev, f.inode if f else 0,
                              vma_name(first, start, end, mm), tuple(group), mm.proc_ptr_size))
    return lines


def maps_text(mm: Mm) -> str:
    return "".join(line.text() + "\n" for line in proc_maps(mm))
