"""What an execve() produces: the data every renderer and every later layer (MMU, emulator) reads."""

from __future__ import annotations

from dataclasses import dataclass, field

from elfvm.mm.vma import Mm, Vma

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


@dataclass(frozen=True)
class Verdict:
    result: str              # "ok" | "errno" | "killed"
    errno: int | None = None
    step: str | None = None  # the kernel function whose check decided it
    reason: str | None = None

    @property
    def errno_name(self) -> str | None:
        import errno as _errno

        return _errno.errorcode.get(self.errno) if self.errno else None


@dataclass(frozen=True)
class AuxEntry:
    type: int
    value: int

    @property
    def name(self) -> str:
        return AT_NAMES.get(self.type, f"AT_{self.type}")


@dataclass(frozen=True)
class StackString:
    addr: int
    value: str


@dataclass
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


@dataclass(frozen=True)
class InterpInfo:
    path: str                    # PT_INTERP as written in the program
    resolved: str                # the file actually opened (symlinks resolved), as maps names it
    base: int                    # AT_BASE (load_addr)
    entry: int                   # base + interp e_entry: the first instruction


@dataclass
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
