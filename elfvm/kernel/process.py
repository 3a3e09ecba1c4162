"""What an execve() produces: the data every renderer and every later layer (MMU, emulator) reads."""


from dataclasses import dataclass, field

from elfvm.elf.reader import PT_LOAD
from elfvm.mm.vma import PAGE_SIZE as PAGE, Mm, Vma

AT_NAMES = {
    0: "AT_NULL", 3: "AT_PHDR", 4: "AT_PHENT", 5: "AT_PHNUM", 6: "AT_PAGESZ", 7: "AT_BASE",
    8: "AT_FLAGS", 9: "AT_ENTRY", 11: "AT_UID", 12: "AT_EUID", 13: "AT_GID", 14: "AT_EGID",
    15: "AT_PLATFORM", 16: "AT_HWCAP", 17: "AT_CLKTCK", 23: "AT_SECURE", 25: "AT_RANDOM",
    26: "AT_HWCAP2", 27: "AT_RSEQ_FEATURE_SIZE", 28: "AT_RSEQ_ALIGN", 31: "AT_EXECFN",
    32: "AT_SYSINFO", 33: "AT_SYSINFO_EHDR", 51: "AT_MINSIGSTKSZ",
}
AT = {v: k for k, v in AT_NAMES.items()}


class ExecFailure(Exception):
    """execve() failed. `killed` tells which side of the point of no return it happened on."""

    def __init__(self, err: int, step: str, reason: str, killed: bool):
        super().__init__(reason)
        self.errno = err
        self.step = step
        self.reason = reason
        self.killed = killed


@dataclass(repr=False, eq=False)
class Verdict:
    """Whether execve succeeds, fails with an errno or kills the process, and why."""

    result: str              # "ok" | "errno" | "killed"
    errno: int | None = None
    step: str | None = None  # the kernel function whose check decided it
    reason: str | None = None

    @property
    def errno_name(self) -> str | None:
        import errno as _errno

        return _errno.errorcode.get(self.errno) if self.errno else None


@dataclass(repr=False, eq=False)
class AuxEntry:
    """One auxiliary vector entry (AT_ type, value)."""

    type: int
    value: int

    @property
    def name(self) -> str:
        return AT_NAMES.get(self.type, f"AT_{self.type}")


@dataclass(repr=False, eq=False)
class StackString:
    """A string execve copied to the new stack, at its address."""

    addr: int
    value: str


@dataclass(repr=False, eq=False)
class StackInfo:
    """The initial stack as create_elf_tables() leaves it (all addresses absolute)."""

    top: int = 0                 # STACK_TOP (end of the stack VMA)
    vma_start: int = 0
    esp: int = 0
    argv: list[StackString] = field(default_factory=list)
    envp: list[StackString] = field(default_factory=list)
    execfn: StackString | None = None
    platform: StackString | None = None
    random_addr: int = 0
    random_bytes: bytes = b""
    auxv_addr: int = 0
    image_base: int = 0          # the bytes [image_base, top) as the kernel wrote them
    image: bytes = b""

    def word(self, addr: int) -> int:
        off = addr - self.image_base
        return int.from_bytes(self.image[off:off + 4], "little")


@dataclass(repr=False, eq=False)
class InterpInfo:
    """The program interpreter (PT_INTERP) as execve loaded it."""

    path: str                    # PT_INTERP as written in the program
    resolved: str                # the file actually opened (symlinks resolved), as maps names it
    base: int                    # AT_BASE (load_addr)
    entry: int                   # base + interp e_entry: the first instruction


@dataclass(repr=False, eq=False)
class ExecResult:
    """The address space at the first user instruction, or as far as exec got before failing."""

    program: str
    profile: object
    verdict: Verdict
    mm: Mm
    entry: int = 0                       # AT_ENTRY: the program's own entry (e_entry + load_bias)
    eip: int = 0                         # the first instruction (the interpreter's entry if any)
    load_bias: int = 0
    interp: InterpInfo | None = None
    auxv: list[AuxEntry] = field(default_factory=list)
    stack: StackInfo = field(default_factory=StackInfo)
    read_implies_exec: bool = False
    executable_stack: str = "default"    # "default" (no PT_GNU_STACK) | "enable" | "disable"
    present_pages: set[int] = field(default_factory=set)   # pages the kernel itself wrote
    notes: list[str] = field(default_factory=list)
    files: dict = field(default_factory=dict)               # path -> ElfFile, for sections/symbols
    images: dict = field(default_factory=dict)              # "main"/"interp" -> LoadedImage

    @property
    def vmas(self) -> list[Vma]:
        return self.mm.vmas

    def exec_pages(self):
        """(page, vma, contents) of every page the kernel wrote during execve, in address
        order: the order `translate`'s prediction and the emulator give them frames in."""
        for page in sorted(self.present_pages):
            v = self.mm.vma_at(page)
            if v is not None:
                yield page, v, self.initial_contents(page, v)

    def initial_contents(self, page: int, v: Vma) -> bytes:
        """What a page the kernel wrote during execve holds at the first instruction: a file
        page (a private copy) whose tail padzero() cleared past a segment's p_filesz, or zeros;
        then the bytes create_elf_tables() wrote over it (the stack image)."""
        data = bytearray(PAGE)
        im = self.image_of(v) if v.file is not None else None
        if im is not None:
            data[:] = im.file.read_at(v.pgoff + (page - v.start), PAGE).ljust(PAGE, b"\0")
            for ph in im.phdrs:
                zero = (im.load_bias + ph.p_vaddr + ph.p_filesz) & 0xFFFFFFFF
                if ph.p_type == PT_LOAD and ph.p_memsz > ph.p_filesz and ph.p_filesz \
                        and page <= zero < page + PAGE:
                    data[zero - page:] = bytes(PAGE - (zero - page))
        st = self.stack
        lo, hi = max(page, st.image_base), min(page + PAGE, st.image_base + len(st.image))
        if lo < hi:
            data[lo - page:hi - page] = st.image[lo - st.image_base:hi - st.image_base]
        return bytes(data)

    def image_of(self, v: Vma):
        """The loaded ELF image (LoadedImage) a file VMA maps."""
        if v.origin and v.origin[0] in self.images:
            return self.images[v.origin[0]]
        return next((im for im in self.images.values() if im.display == v.file), None)
