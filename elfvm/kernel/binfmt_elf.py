"""fs/binfmt_elf.c: load_elf_binary() and its helpers, as Linux 6.18 runs them for an i386 task;
the rules that differ in other kernel versions come from profile.kernel (elfvm/kernel/versions.py).

Read this beside the kernel: each function has the kernel's name and does what the kernel's
does, in the same order. Checks that fail before begin_new_exec() (the point of no return) make
execve() return an errno; failures after it kill the process (ExecFailure.killed). The verdict
therefore falls out of where a step failed.

Arithmetic is done on Python ints and masked where the kernel's unsigned long (64 bits: this
is the compat loader inside an x86-64 kernel) or Elf32 fields would wrap.
"""


import errno
import os
from dataclasses import dataclass, field

from elfvm.elf.reader import (
    EM_386, EM_486, EM_X86_64, ET_DYN, ET_EXEC, PF_R, PF_W, PF_X, PT_GNU_STACK,
    PT_INTERP, PT_LOAD, ElfFile, Phdr, parse_ehdr, parse_phdrs,
)
from elfvm.kernel.exec import MAX_ARG_STRLEN, Bprm, copy_all_strings, do_open_execat, setup_arg_pages
from elfvm.kernel.mmap import (
    KernelRandom, arch_align_stack, arch_mmap_rnd, arch_pick_mmap_layout, arch_randomize_brk,
    randomize_stack_top,
)
from elfvm.kernel.process import (
    AT, AuxEntry, ExecFailure, ExecResult, InterpInfo, StackInfo, StackString, Verdict,
)
from elfvm.kernel.profile import Profile
from elfvm.mm.vma import (
    PAGE_SIZE, PROT_EXEC, PROT_READ, PROT_WRITE, U64, FileRef, Mm, MmError, Vma, page_align,
    page_offset, page_start,
)

PATH_MAX = 4096
ELF_MIN_ALIGN = PAGE_SIZE
MAX_PHDRS_SIZE = 65536          # 6.18 load_elf_phdrs(): only tables over 64 KiB are refused
ELF32_EHDR_SIZE = 52

EXSTACK_DEFAULT, EXSTACK_DISABLE_X, EXSTACK_ENABLE_X = "default", "disable", "enable"


class UnsupportedProgram(Exception):
    """A file execve would run but elfvm does not model (an x86-64 program, a #! script)."""


@dataclass(repr=False, eq=False)
class ExecRequest:
    """An execve() call: the file, argv, envp and the machine it runs on."""

    path: str
    argv: list[str] | None              # None: [path], as a shell would pass it
    envp: list[str] = field(default_factory=list)
    profile: Profile | None = None
    sysroot: str = "/"
    rlimit_stack: int = 8 << 20
    seed: int | None = None             # None: ASLR off (ADDR_NO_RANDOMIZE)
    cwd: str | None = None
    filename: str | None = None         # bprm->filename, the string execve was given (AT_EXECFN,
                                        # the top of the stack); None: path, the file opened


@dataclass(repr=False, eq=False)
class LoadedImage:
    """What the mapping loop learned about one ELF image."""

    file: ElfFile
    display: FileRef
    phdrs: list[Phdr]
    load_bias: int = 0


# --- small helpers named after the kernel's ---------------------------------------------

def BAD_ADDR(x: int, task_size: int) -> bool:
    return (x & U64) >= task_size


def make_prot(p_flags: int) -> int:
    """make_prot(): PF_R/PF_W/PF_X to PROT_*; every other p_flags bit is ignored."""
    return (PROT_READ if p_flags & PF_R else 0) | (PROT_WRITE if p_flags & PF_W else 0) | \
        (PROT_EXEC if p_flags & PF_X else 0)


def total_mapping_size(phdrs: list[Phdr]) -> int:
    """total_mapping_size(): from the lowest PT_LOAD page to the highest p_vaddr + p_memsz.

    For the compat loader elf_addr_t is 32 bits, so the sum and difference wrap at 2^32.
    """
    loads = [p for p in phdrs if p.p_type == PT_LOAD]
    if not loads:
        return 0
    lo = min(page_start(p.p_vaddr) & 0xFFFFFFFF for p in loads)
    hi = max((p.p_vaddr + p.p_memsz) & 0xFFFFFFFF for p in loads)
    return (hi - lo) & 0xFFFFFFFF


def maximum_alignment(phdrs: list[Phdr]) -> int:
    """maximum_alignment(): the largest power-of-two p_align of the PT_LOADs, page aligned."""
    align = 0
    for p in phdrs:
        if p.p_type == PT_LOAD and p.p_align and p.p_align & (p.p_align - 1) == 0:
            align = max(align, p.p_align)
    return page_align(align)


def read_implies_exec(executable_stack: str) -> bool:
    """arch/x86/include/asm/elf.h elf_read_implies_exec(): an ia32 program without
    PT_GNU_STACK gets READ_IMPLIES_EXEC."""
    return executable_stack == EXSTACK_DEFAULT


class Loader:
    """One execve(): the state load_elf_binary() keeps in local variables, plus the new mm."""

    def __init__(self, req: ExecRequest, profile: Profile, mm: Mm | None = None):
        self.req = req
        self.profile = profile
        self.rnd = KernelRandom(req.seed) if req.seed is not None else None
        # unsigned long: 64 bits in an x86-64 kernel (compat), 32 on a native i386 kernel
        self.M = profile.ulong_mask
        rules = profile.kernel
        # v6.7 elf_load(): each PT_LOAD maps its own bss; before, set_brk() did (versions.py)
        self.per_segment_bss = rules is None or rules.elf_load_per_segment
        self.padzero_kills = rules is None or rules.padzero_fault_kills
        self.read_implies_exec = False
        self.executable_stack = EXSTACK_DEFAULT
        fresh = Mm(task_size=profile.task_size, mmap_min_addr=profile.host.mmap_min_addr,
                   stack_guard_gap=profile.stack_guard_gap,
                   may_map_low=profile.host.euid == 0,
                   proc_ptr_size=profile.kernel_ptr_size,
                   heap_overlap_only=profile.kernel is None or profile.kernel.heap_overlap_only)
        if mm is not None:            # a running task's mm object: emptied and set up anew
            mm.__dict__.update(fresh.__dict__)
            fresh = mm
        self.mm = fresh
        self.present: set[int] = set()
        self.notes: list[str] = [profile.kernel.note] if profile.kernel and profile.kernel.note else []
        self.files: dict[str, ElfFile] = {}
        self.zeroed: list[tuple[int, int, str, int]] = []     # padzero(): (start, end, file, offset)
        self.string_area: tuple[int, bytes] = (0, b"")         # the argument strings as copied
        self.strings_overlaid = False
        self.pending: ExecFailure | None = None     # an errno execve returns, found early

    # --- errors -----------------------------------------------------------------------
    @staticmethod
    def fail(err: int, step: str, reason: str) -> ExecFailure:
        return ExecFailure(err, step, reason, killed=False)

    @staticmethod
    def kill(err: int, step: str, reason: str) -> ExecFailure:
        return ExecFailure(err, step, reason, killed=True)

    # --- the mm operations the loader uses, with the process's protection rules --------
    def vm_prot(self, prot: int) -> int:
        """do_mmap(): with READ_IMPLIES_EXEC, PROT_READ implies PROT_EXEC."""
        if self.read_implies_exec and prot & PROT_READ:
            prot |= PROT_EXEC
        return prot

    def elf_map(self, image: LoadedImage, owner: str, addr: int, ph: Phdr, prot: int,
                fixed: bool, noreplace: bool, total_size: int) -> int:
        """elf_map(): map p_filesz (+ the page offset) of the file at PS(addr).

        With total_size (the first segment of an ET_DYN image) the whole image is reserved
        first and the excess unmapped, so later segments and holes fall inside it.
        """
        size = ph.p_filesz + page_offset(ph.p_vaddr)
        off = (ph.p_offset - page_offset(ph.p_vaddr)) & self.M
        addr = page_start(addr)
        size = page_align(size)
        if not size:
            return addr
        if off & (PAGE_SIZE - 1):
            raise MmError(errno.EINVAL, f"{ph.label}: p_offset {ph.p_offset:#x} and p_vaddr "
                                        f"{ph.p_vaddr:#x} differ modulo the page size")
        length = page_align(total_size) if total_size else size
        vm_prot = self.vm_prot(prot)

        def make(start: int, end: int) -> Vma:
            return Vma(start, end, vm_prot, off, image.display, kind="file",
                       origin=(owner, ph.index, "file"))

        if fixed or noreplace:
            hint = addr
        else:
            hint = addr if addr < self.mm.task_size else 0    # an impossible hint is ignored
            hint = 0 if hint + length > self.mm.task_size else hint
        map_addr = self.mm.do_mmap(hint, length, fixed=fixed, noreplace=noreplace, make=make)
        if total_size:
            self.mm.munmap(map_addr + size, map_addr + length)
        return map_addr

    def padzero(self, address: int, image: LoadedImage, owner: str) -> bool:
        """padzero(): clear the rest of the last file page after p_filesz. False on fault.

        clear_user() faults when the page is not writable or lies wholly beyond EOF (SIGBUS).
        """
        nbyte = page_offset(address)
        if not nbyte:
            return True
        page = page_start(address)
        v = self.mm.vma_at(page)
        if v is None or not v.prot & PROT_WRITE:
            return False
        if v.file is not None:
            file_off = v.pgoff + (page - v.start)
            f = self.files.get(v.file.path)
            if f is not None and file_off >= f.size:
                return False
            self.zeroed.append((address, page + PAGE_SIZE, v.file.path,
                                v.pgoff + (address - v.start)))
        self.present.add(page)
        return True

    def elf_load(self, image: LoadedImage, owner: str, addr: int, ph: Phdr, prot: int,
                 fixed: bool, noreplace: bool, total_size: int) -> int:
        """elf_load(): the file part of a PT_LOAD, then its bss (padzero + vm_brk_flags)."""
        if ph.p_filesz:
            map_addr = self.elf_map(image, owner, addr, ph, prot, fixed, noreplace, total_size)
            if ph.p_memsz > ph.p_filesz:
                zero_start = map_addr + page_offset(ph.p_vaddr) + ph.p_filesz
                zero_end = map_addr + page_offset(ph.p_vaddr) + ph.p_memsz
                # Zero the end of the last mapped page but ignore errors if not writable.
                if not self.padzero(zero_start, image, owner) and prot & PROT_WRITE and \
                        self.padzero_kills:
                    raise self.kill(errno.EFAULT, "padzero",
                                    f"{ph.label}: clearing the bss tail at {zero_start:#x} faulted "
                                    f"(the last file page lies beyond the end of the file)")
        else:
            map_addr = zero_start = page_start(addr)
            zero_end = zero_start + page_offset(ph.p_vaddr) + ph.p_memsz
        if ph.p_memsz > ph.p_filesz:
            zero_start, zero_end = page_align(zero_start), page_align(zero_end)
            # vm_brk_flags(): anonymous, always rw, plus x if PF_X (or READ_IMPLIES_EXEC).
            bss_prot = PROT_READ | PROT_WRITE
            if prot & PROT_EXEC or self.read_implies_exec:
                bss_prot |= PROT_EXEC

            def make(start: int, end: int) -> Vma:
                return Vma(start, end, bss_prot, kind="bss", origin=(owner, ph.index, "bss"))

            self.mm.vm_brk_flags(zero_start, zero_end - zero_start, make)
        return map_addr

    def bss_prot(self, prot: int) -> int:
        """vm_brk_flags(): anonymous, always rw, plus x if the segment is PF_X (or
        READ_IMPLIES_EXEC: VM_DATA_DEFAULT_FLAGS)."""
        return PROT_READ | PROT_WRITE | (PROT_EXEC if prot & PROT_EXEC or self.read_implies_exec else 0)

    def set_brk(self, start: int, end: int, prot: int, owner: str, index: int) -> None:
        """set_brk() (before v6.7): map [PA(start), PA(end)) anonymous with vm_brk_flags() and
        put start_brk = brk at its end."""
        start, end = page_align(start), page_align(end)
        if end > start:
            bss_prot = self.bss_prot(prot)

            def make(lo: int, hi: int) -> Vma:
                return Vma(lo, hi, bss_prot, kind="bss", origin=(owner, index, "bss"))

            try:
                self.mm.vm_brk_flags(start, end - start, make)
            except MmError as e:
                raise self.kill(e.errno, "set_brk", e.message) from None
        self.mm.start_brk = self.mm.brk = end

    def load_elf_interp_pre_6_7(self, interp: LoadedImage, no_base: int, total_size: int) -> int:
        """load_elf_interp() before v6.7: the segments are mapped with elf_map() alone; then
        padzero() at the highest file end (a fault kills, bss or not) and one vm_brk_flags()
        from there to the highest memory end."""
        M = self.M
        load_addr, segments = self.map_interp_segments(interp, no_base, total_size, self.elf_map)
        elf_bss = last_bss = bss_prot = 0
        for ph, k, prot in segments:
            elf_bss = max(elf_bss, (k + ph.p_filesz) & M)
            if (k + ph.p_memsz) & M > last_bss:
                last_bss, bss_prot = (k + ph.p_memsz) & M, prot
        if not self.padzero(elf_bss, interp, "interp"):
            raise self.kill(errno.EFAULT, "padzero", f"interpreter: clearing {elf_bss:#x} to the end "
                                                     f"of its page faulted")
        lo, hi = page_align(elf_bss), page_align(last_bss)
        if hi > lo:
            prot = self.bss_prot(bss_prot)
            try:
                self.mm.vm_brk_flags(lo, hi - lo, lambda a, b: Vma(a, b, prot, kind="bss",
                                                                   origin=("interp", 0, "bss")))
            except MmError as e:
                raise self.kill(e.errno, "load_elf_interp", f"interpreter bss: {e.message}") from None
        return load_addr

    # --- the steps of load_elf_binary -------------------------------------------------
    def open_file(self, path: str, step: str, display_path: str | None = None) -> tuple[ElfFile, FileRef]:
        st = do_open_execat(path, step=step)
        try:
            f = ElfFile(path)
        except OSError as e:
            raise self.fail(e.errno or errno.EIO, step, f"{path}: {e.strerror}") from None
        real = display_path or os.path.realpath(path)
        self.files[real] = f
        return f, FileRef(real, os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)

    def load_elf_phdrs(self, f: ElfFile) -> list[Phdr] | None:
        """load_elf_phdrs(): phentsize must be 32, the table 1..65536 bytes and fully readable."""
        h = f.ehdr
        size = h.e_phnum * 32
        if h.e_phentsize != 32 or size == 0 or size > MAX_PHDRS_SIZE:
            return None
        table = f.read_at(h.e_phoff, size)
        if len(table) != size:
            return None
        return parse_phdrs(table)

    def check_header(self, f: ElfFile) -> None:
        """The first consistency checks of load_elf_binary() (all ENOEXEC)."""
        h = f.ehdr
        step = "load_elf_binary"
        if not h.has_magic:
            if f.data[:2] == b"#!":
                raise UnsupportedProgram(f"{f.path}: a #! script, not an ELF program "
                                         f"(execve would run its interpreter)")
            raise self.fail(errno.ENOEXEC, step, "not an ELF file (bad magic), and no other "
                                                 "binary format claims it")
        if h.elf_class == 2 and h.e_machine == EM_X86_64:     # binfmt_elf's 64-bit loader takes it
            raise UnsupportedProgram(f"{f.path}: an x86-64 program (EM_X86_64, ELFCLASS64); elfvm "
                                     f"models i386 programs: build with gcc -m32")
        if h.e_type not in (ET_EXEC, ET_DYN):
            raise self.fail(errno.ENOEXEC, step, f"e_type {h.e_type} is neither ET_EXEC nor ET_DYN")
        if h.e_machine not in (EM_386, EM_486):
            raise self.fail(errno.ENOEXEC, step, f"e_machine {h.e_machine} is not EM_386/EM_486 "
                                                 f"(elf_check_arch)")

    def find_interp(self, f: ElfFile, phdrs: list[Phdr]) -> tuple[str, bytes] | None:
        """The PT_INTERP loop: only the first PT_INTERP counts; returns (path, header bytes)."""
        for ph in phdrs:
            if ph.p_type != PT_INTERP:
                continue
            if ph.p_filesz > PATH_MAX or ph.p_filesz < 2:
                raise self.fail(errno.ENOEXEC, "load_elf_binary",
                                f"{ph.label}: p_filesz {ph.p_filesz} is not in 2..PATH_MAX")
            raw = f.read_at(ph.p_offset, ph.p_filesz)
            if len(raw) != ph.p_filesz:
                raise self.fail(errno.EIO, "elf_read", f"{ph.label}: the interpreter path at "
                                                       f"offset {ph.p_offset:#x} is past the end of the file")
            if raw[-1] != 0:
                raise self.fail(errno.ENOEXEC, "load_elf_binary",
                                f"{ph.label}: the interpreter path is not NUL-terminated")
            return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape"), raw
        return None

    def resolve_interp(self, path: str) -> tuple[str, str]:
        """open_exec(): resolve PT_INTERP inside the sysroot; returns (host path, shown path)."""
        root = os.path.abspath(self.req.sysroot)
        cwd = self.req.cwd or os.getcwd()
        # open_exec() takes the name through getname_kernel(), which accepts "": the walk then
        # ends at the current directory, and do_open_execat() refuses it (EACCES, not ENOENT).
        base = path if path.startswith("/") else os.path.join(cwd, path) if path else cwd
        if root == "/":
            return base, os.path.realpath(base)
        shown = resolve_in_root(root, base)
        return os.path.join(root, shown.lstrip("/")), shown

    def load_elf_interp(self, interp: LoadedImage, no_base: int) -> int:
        """load_elf_interp(): map the interpreter; returns its load_addr (AT_BASE)."""
        h = interp.file.ehdr
        if h.e_type not in (ET_EXEC, ET_DYN):
            raise self.kill(errno.EINVAL, "load_elf_interp",
                            f"the interpreter's e_type {h.e_type} is neither ET_EXEC nor ET_DYN")
        total_size = total_mapping_size(interp.phdrs)
        if not total_size:
            raise self.kill(errno.EINVAL, "load_elf_interp", "the interpreter has no PT_LOAD "
                                                             "(total_mapping_size is 0)")
        if not self.per_segment_bss:
            return self.load_elf_interp_pre_6_7(interp, no_base, total_size)
        return self.map_interp_segments(interp, no_base, total_size, self.elf_load)[0]

    def map_interp_segments(self, interp: LoadedImage, no_base: int, total_size: int,
                            mapper) -> tuple[int, list]:
        """load_elf_interp()'s loop over PT_LOAD: each segment mapped by `mapper` (elf_load()
        from v6.7, elf_map() before), the first at a free place (ET_DYN) and the rest relative
        to it, each checked against TASK_SIZE. (load_addr, [(phdr, its address, prot)])."""
        h, tsz, M = interp.file.ehdr, self.mm.task_size, self.M
        load_addr, load_addr_set, segments = 0, False, []
        for ph in interp.phdrs:
            if ph.p_type != PT_LOAD:
                continue
            prot, vaddr = make_prot(ph.p_flags), ph.p_vaddr
            fixed = h.e_type == ET_EXEC or load_addr_set
            if not fixed and no_base and h.e_type == ET_DYN:
                load_addr = (-vaddr) & M
            try:
                map_addr = mapper(interp, "interp", (load_addr + vaddr) & M, ph, prot, fixed,
                                  False, total_size)
            except MmError as e:
                raise self.kill(e.errno, "load_elf_interp", f"interpreter {ph.label}: {e.message}")
            total_size = 0
            if BAD_ADDR(map_addr, tsz):
                raise self.kill(errno.EINVAL, "load_elf_interp",
                                f"interpreter {ph.label} mapped at a bad address {map_addr:#x}")
            if not load_addr_set and h.e_type == ET_DYN:
                load_addr, load_addr_set = (map_addr - page_start(vaddr)) & M, True
            k = (load_addr + vaddr) & M
            if BAD_ADDR(k, tsz) or ph.p_filesz > ph.p_memsz or ph.p_memsz > tsz or tsz - ph.p_memsz < k:
                raise self.kill(errno.ENOMEM, "load_elf_interp",
                                f"interpreter {ph.label}: p_filesz > p_memsz or the segment "
                                f"does not fit below TASK_SIZE")
            segments.append((ph, k, prot))
        return load_addr, segments

    def map_vdso(self) -> int | None:
        """arch/x86/entry/vdso/vma.c map_vdso(): [vvar] ([vvar_vclock] from v6.15), [vdso] in one
        block placed by get_unmapped_area (after the interpreter, so just below it)."""
        p = self.profile
        if not p.host.vdso32_enabled:
            return None
        try:
            addr = self.mm.get_unmapped_area(0, p.vdso_size)
        except MmError as e:
            raise self.kill(e.errno, "map_vdso", f"no room for the vDSO: {e.message}")
        cur = addr
        for part in p.vdso_parts:
            end = cur + part.pages * PAGE_SIZE
            self.mm.insert(Vma(cur, end, part.prot, special=part.name,
                               kind=part.name.strip("[]").split("_")[0], origin=("vdso", 0, part.name)))
            cur = end
        return cur - p.vdso_parts[-1].pages * PAGE_SIZE

    def write_stack(self, start: int, end: int) -> None:
        """copy_to_user() into the new stack: every page must be mapped writable."""
        page = page_start(start)
        while page < end:
            v = self.mm.vma_at(page)
            if v is None or not v.prot & PROT_WRITE:
                raise self.kill(errno.EFAULT, "create_elf_tables",
                                f"the stack page {page:#x} is not writable (a segment was mapped over it)")
            self.present.add(page)
            page += PAGE_SIZE

    def extend_stack(self, addr: int) -> None:
        """find_extend_vma_locked(): addr must lie in a VMA, or just below a VM_GROWSDOWN one
        that expand_downwards() may grow (mmap_min_addr, the guard gap below it, and
        acct_stack_growth's RLIMIT_STACK); otherwise create_elf_tables() fails with EFAULT."""
        addr = page_start(addr)
        v = self.mm.find_vma(addr)
        if v is not None and v.start <= addr:
            return
        if v is None or not v.growsdown:
            why = f"{addr:#x} is in no VMA and the VMA above it is not the stack"
        else:
            from elfvm.mm.fault import expand_stack     # only here: layout need not import it

            why = expand_stack(self.mm, v, addr, self.req.rlimit_stack)
        if why:
            raise self.kill(errno.EFAULT, "create_elf_tables", why)
        self.mm.replace(v, Vma(addr, v.end, v.prot, growsdown=True, kind="stack", origin=v.origin))

    # --- reading the new task's memory (what strnlen_user() sees) -----------------------
    def read_user(self, addr: int) -> int | None:
        """One byte of the new task's memory now, or None when reading it faults.

        Stack pages hold the strings copied before the segments were mapped; a file page
        holds the file's bytes (zeros past EOF in the last page, SIGBUS for a page wholly past
        it; padzero()'s zeros); anonymous memory is zero; PROT_NONE and holes fault.
        """
        v = self.mm.vma_at(addr)
        if v is None or not v.prot:
            return None
        if v.growsdown:
            base, data = self.string_area
            return data[addr - base] if base <= addr < base + len(data) else 0
        if v.file is None:
            return 0
        f = self.files.get(v.file.path)
        off = v.pgoff + (addr - v.start)
        if f is None:
            return 0
        if off >= f.size:
            return 0 if page_start(off) < f.size else None
        if any(s <= addr < e and path == v.file.path and zoff == off - (addr - s)
               for s, e, path, zoff in self.zeroed):
            return 0
        return f.data[off]

    def strnlen_user(self, addr: int, count: int = MAX_ARG_STRLEN) -> int:
        """lib/strnlen_user.c: length including the NUL; 0 on a fault; count + 1 if no NUL."""
        for i in range(count):
            b = self.read_user(addr + i)
            if b is None:
                return 0
            if b == 0:
                return i + 1
        return count + 1

    def read_cstring_user(self, addr: int) -> bytes:
        out = bytearray()
        while (b := self.read_user(addr + len(out))) and len(out) < MAX_ARG_STRLEN:
            out.append(b)
        return bytes(out)

    def walk_strings(self, bprm: Bprm) -> tuple[list[int], list[int], int, int]:
        """create_elf_tables(): the argv[] and envp[] pointers, arg_end and env_end come from
        walking the strings from arg_start with strnlen_user(), not from where they were
        copied.  They only differ when a segment was mapped over the strings (MAP_FIXED or a
        bss); a string that is then unreadable or has no NUL within MAX_ARG_STRLEN is EINVAL."""
        base = bprm.argv_addrs[0]
        end = bprm.exec + len(bprm.filename) + 1
        data = bytearray(end - base)
        for a, s in bprm.strings:
            if a >= base:
                data[a - base:a - base + len(s)] = s
        self.string_area = (base, bytes(data))
        pages = range(page_start(base), end, PAGE_SIZE)
        if all((v := self.mm.vma_at(pg)) is not None and v.growsdown for pg in pages):
            return (bprm.argv_addrs, bprm.envp_addrs,
                    bprm.envp_addrs[0] if bprm.envp_addrs else bprm.exec, bprm.exec)
        self.strings_overlaid = True
        self.notes.append("a segment was mapped over the argument strings: argv/envp point to "
                          "what create_elf_tables() found there")
        p = base
        out: list[list[int]] = [[], []]
        for which, n in ((0, bprm.argc), (1, bprm.envc)):
            for _ in range(n):
                out[which].append(p)
                length = self.strnlen_user(p)
                if not length or length > MAX_ARG_STRLEN:
                    raise self.kill(errno.EINVAL, "create_elf_tables",
                                    f"strnlen_user({p:#x}) failed: a segment mapped over the "
                                    f"argument strings left no readable, NUL-terminated string")
                p += length
            if which == 0:
                arg_end = p
        return out[0], out[1], arg_end, p


def resolve_in_root(root: str, path: str, depth: int = 0) -> str:
    """Resolve `path` as a process chrooted at `root` would (absolute links stay inside root)."""
    if depth > 40:
        raise ExecFailure(errno.ELOOP, "open_exec", f"{path}: too many levels of symbolic links", False)
    parts = [p for p in path.split("/") if p and p != "."]
    cur = "/"
    for i, part in enumerate(parts):
        if part == "..":
            cur = os.path.dirname(cur.rstrip("/")) or "/"
            continue
        nxt = os.path.join(cur, part)
        host = os.path.join(root, nxt.lstrip("/"))
        if os.path.islink(host):
            target = os.readlink(host)
            target = target if target.startswith("/") else os.path.join(cur, target)
            rest = "/".join(parts[i + 1:])
            return resolve_in_root(root, os.path.join(target, rest) if rest else target, depth + 1)
        cur = nxt
    return cur


def load_elf_binary(req: ExecRequest, profile: Profile, mm: Mm | None = None) -> ExecResult:
    """execve(req.path, req.argv, req.envp) in a fresh mm: the whole of fs/binfmt_elf.c's
    load_elf_binary(), preceded by fs/exec.c's opening and string copying. With `mm`, the new
    image is built in that Mm object (emptied first), as an execve inside a running task needs:
    `layout` and every exec of an emulated run go through this one loader."""
    ld = Loader(req, profile, mm)
    result = ExecResult(program=req.path, profile=profile, verdict=Verdict("ok"), mm=ld.mm)
    failure: ExecFailure | None = None
    try:
        _load(ld, result)
    except ExecFailure as e:
        failure = e
    except MmError as e:          # an mm failure not attributed to a step: after the point of no return
        failure = ExecFailure(e.errno, "load_elf_binary", e.message, killed=True)
    if ld.pending is not None:
        # The interpreter could not be opened: load_elf_binary() returns that errno right there,
        # before begin_new_exec(), so nothing elfvm modelled after it (shown in the map for
        # information) can change the verdict, not even a failure that would kill.
        failure = ld.pending
    if failure is not None:
        e = failure
        result.verdict = Verdict("killed" if e.killed else "errno", e.errno, e.step, e.reason)
        if not e.killed and e is not ld.pending:   # execve returned before mapping anything
            ld.mm.vmas = []
    result.read_implies_exec = ld.read_implies_exec
    result.executable_stack = ld.executable_stack
    result.present_pages = ld.present
    result.notes = ld.notes
    result.files = ld.files
    return result


def _load(ld: Loader, result: ExecResult) -> None:
    """load_elf_binary() as a list of the kernel's steps, in the kernel's order: that order is
    also the order in which the ASLR random numbers are drawn, so it must not change."""
    # fs/exec.c alloc_bprm -> do_open_execat: the program itself.
    main_file, main_ref = ld.open_file(ld.req.path, "do_open_execat")
    stack_top, bprm = copy_strings_to_stack(ld)
    main = read_elf_headers(ld, result, main_file, main_ref)
    found = ld.find_interp(main_file, main.phdrs)
    has_interp = found is not None      # PT_INTERP present, even if it cannot be opened
    interp = open_interpreter(ld, result, found[0]) if found is not None else None
    ld.executable_stack = elf_gnu_stack(main.phdrs)
    if interp is not None:
        check_interp_header(ld, result, interp)

    # ---- begin_new_exec(): the point of no return -------------------------------------
    setup_new_exec(ld)
    setup_stack_vma(ld, bprm, stack_top)
    ext = elf_load_segments(ld, main, has_interp)
    set_brk_before_interp(ld, main, ext)
    e_entry, phdr_addr, elf_brk = add_load_bias(ld, result, main, ext)
    interp_load_addr = elf_entry_point(ld, result, interp, ext.load_bias, e_entry)
    vdso = ld.map_vdso()
    create_elf_tables(ld, bprm, result, main_file, interp_load_addr, e_entry, phdr_addr, vdso)
    randomize_brk(ld, main_file.ehdr.e_type, has_interp, elf_brk)


# --- the steps of load_elf_binary(), in order ----------------------------------------------

def copy_strings_to_stack(ld: Loader) -> tuple[int, Bprm]:
    """fs/exec.c bprm_mm_init() and copy_strings(): argv and envp copied below the stack top
    that setup_arg_pages() will use (randomize_stack_top(STACK_TOP), then aligned), so the
    strings sit where the task will see them. Returns (stack_top, bprm)."""
    req, profile = ld.req, ld.profile
    stack_top = page_align(arch_align_stack(randomize_stack_top(profile, ld.rnd), ld.rnd))
    argv = [os.fsencode(a) for a in (req.argv if req.argv is not None else [req.path])]
    bprm = Bprm(os.fsencode(req.filename if req.filename is not None else req.path), argv, [os.fsencode(e) for e in req.envp], req.rlimit_stack,
                p=stack_top - profile.kernel_ptr_size)
    copy_all_strings(bprm, profile.kernel_ptr_size)
    return stack_top, bprm


def read_elf_headers(ld: Loader, result: ExecResult, main_file: ElfFile, main_ref: FileRef) -> LoadedImage:
    """load_elf_binary(): the ELF header checks, then load_elf_phdrs()."""
    ld.check_header(main_file)
    phdrs = ld.load_elf_phdrs(main_file)
    if phdrs is None:
        h = main_file.ehdr
        raise ld.fail(errno.ENOEXEC, "load_elf_phdrs",
                      f"program headers unusable: e_phentsize {h.e_phentsize}, e_phnum {h.e_phnum}, "
                      f"e_phoff {h.e_phoff:#x} (file is {main_file.size} bytes)")
    main = LoadedImage(main_file, main_ref, phdrs)
    result.images["main"] = main
    return main


def open_interpreter(ld: Loader, result: ExecResult, ipath: str) -> LoadedImage | None:
    """load_elf_binary()'s PT_INTERP: open_exec(elf_interpreter), then elf_read() of its ELF
    header. An interpreter that cannot be opened is kept as ld.pending (execve returns that
    errno) and None is returned, so that the rest of the map can still be shown."""
    try:
        host_path, shown = ld.resolve_interp(ipath)
        ifile, iref = ld.open_file(host_path, "open_exec", display_path=shown)
    except ExecFailure as e:
        e.reason = f"interpreter {ipath}: {e.reason}"
        # execve stops here; elfvm goes on to show the rest of the map as it would be.
        ld.pending = e
        ld.notes.append(f"the interpreter {ipath} cannot be opened (sysroot {ld.req.sysroot}): "
                        f"{e.reason}; the map below shows the program without it")
        return None
    if ifile.size < ELF32_EHDR_SIZE:
        raise ld.fail(errno.EIO, "elf_read", f"interpreter {ipath} is only {ifile.size} "
                                             f"bytes, shorter than an ELF header")
    interp = LoadedImage(ifile, iref, [])
    result.images["interp"] = interp
    result.interp = InterpInfo(ipath, shown, 0, 0)
    return interp


def elf_gnu_stack(phdrs: list[Phdr]) -> str:
    """load_elf_binary()'s PT_GNU_STACK scan: executable_stack; the last PT_GNU_STACK decides."""
    executable_stack = EXSTACK_DEFAULT
    for ph in phdrs:
        if ph.p_type == PT_GNU_STACK:
            executable_stack = EXSTACK_ENABLE_X if ph.p_flags & PF_X else EXSTACK_DISABLE_X
    return executable_stack


def check_interp_header(ld: Loader, result: ExecResult, interp: LoadedImage) -> None:
    """load_elf_binary(): "Some simple consistency checks for the interpreter" (its magic and
    elf_check_arch()), then load_elf_phdrs() of the interpreter, all before the point of no
    return: each failure is an errno (ELIBBAD)."""
    ih = parse_ehdr(interp.file.data[:256])
    if not ih.has_magic:
        raise ld.fail(errno.ELIBBAD, "load_elf_binary", f"interpreter {result.interp.path}: "
                                                        f"not an ELF file")
    if ih.e_machine not in (EM_386, EM_486):
        raise ld.fail(errno.ELIBBAD, "load_elf_binary", f"interpreter {result.interp.path}: "
                                                        f"e_machine {ih.e_machine} is not i386")
    iphdrs = ld.load_elf_phdrs(interp.file)
    if iphdrs is None:
        raise ld.fail(errno.ELIBBAD, "load_elf_phdrs", f"interpreter {result.interp.path}: "
                                                       f"program headers unusable")
    interp.phdrs = iphdrs


def setup_new_exec(ld: Loader) -> None:
    """After begin_new_exec(): SET_PERSONALITY2(), where elf_read_implies_exec() sets
    READ_IMPLIES_EXEC, then setup_new_exec() -> arch_pick_mmap_layout()."""
    ld.read_implies_exec = read_implies_exec(ld.executable_stack)
    layout = arch_pick_mmap_layout(ld.profile, ld.req.rlimit_stack, ld.rnd)
    mm = ld.mm
    mm.mmap_base, mm.mmap_legacy_base, mm.legacy = layout.mmap_base, layout.mmap_legacy_base, layout.legacy


def setup_stack_vma(ld: Loader, bprm: Bprm, stack_top: int) -> None:
    """setup_arg_pages(): the stack VMA. VM_STACK_FLAGS carry VM_EXEC under READ_IMPLIES_EXEC
    (unless PT_GNU_STACK says otherwise) and with an executable PT_GNU_STACK."""
    stack_start, stack_end = setup_arg_pages(bprm, stack_top, ld.req.rlimit_stack)
    stack_prot = PROT_READ | PROT_WRITE
    if ld.executable_stack == EXSTACK_ENABLE_X or (ld.read_implies_exec and
                                                    ld.executable_stack != EXSTACK_DISABLE_X):
        stack_prot |= PROT_EXEC
    ld.mm.insert(Vma(stack_start, stack_end, stack_prot, growsdown=True, kind="stack",
                     origin=("stack", 0, "stack")))
    ld.mm.arg_start = bprm.argv_addrs[0] if bprm.argv_addrs else bprm.p


@dataclass(repr=False, eq=False)
class ElfExtent:
    """The locals load_elf_binary()'s PT_LOAD loop keeps, before load_bias is added to them."""

    start_code: int
    end_code: int = 0
    start_data: int = 0
    end_data: int = 0
    elf_bss: int = 0
    elf_brk: int = 0
    bss_prot: int = 0           # before v6.7: the protection and segment of the bss
    bss_index: int = 0          # that set_brk() maps
    phdr_addr: int = 0
    load_bias: int = 0


def elf_load_segments(ld: Loader, main: LoadedImage, has_interp: bool) -> ElfExtent:
    """load_elf_binary()'s PT_LOAD loop: the first segment decides the load_bias (ET_EXEC:
    MAP_FIXED_NOREPLACE at p_vaddr; ET_DYN: et_dyn_load_bias()), the others follow MAP_FIXED;
    each goes through elf_load() (v6.7: with its own bss) or, before v6.7, elf_map()."""
    M, e_type = ld.M, main.file.ehdr.e_type
    ext = ElfExtent(start_code=M)
    first_pt_load = True
    map_segment = ld.elf_load if ld.per_segment_bss else ld.elf_map
    for ph in main.phdrs:
        if ph.p_type != PT_LOAD:
            continue
        if not ld.per_segment_bss and ext.elf_brk > ext.elf_bss:
            # Before v6.7: a previous PT_LOAD had p_memsz > p_filesz; map its bss now and
            # clear the rest of its last file page (clear_user() errors are ignored here).
            ld.set_brk((ext.elf_bss + ext.load_bias) & M, (ext.elf_brk + ext.load_bias) & M,
                       ext.bss_prot, "main", ext.bss_index)
            ld.padzero((ext.elf_bss + ext.load_bias) & M, main, "main")
        prot = make_prot(ph.p_flags)
        fixed, noreplace, total_size = not first_pt_load, False, 0
        if first_pt_load and e_type == ET_EXEC:
            noreplace = True
        elif first_pt_load:
            ext.load_bias, noreplace, total_size = et_dyn_load_bias(ld, main, ph, prot, has_interp)
        addr = (ext.load_bias + ph.p_vaddr) & M
        try:
            error = map_segment(main, "main", addr, ph, prot, fixed, noreplace, total_size)
        except MmError as e:
            step = "elf_map" if e.errno != errno.EEXIST else "elf_map (MAP_FIXED_NOREPLACE)"
            raise ld.kill(e.errno, step, f"{ph.label} at {page_start(addr):#x}: {e.message}")
        if BAD_ADDR(error, ld.profile.task_size):
            raise ld.kill(errno.EINVAL, "elf_load", f"{ph.label} mapped at a bad address {error:#x}")
        if first_pt_load:
            first_pt_load = False
            if e_type == ET_DYN:
                ext.load_bias = (ext.load_bias + error - page_start(addr)) & M
        account_segment(ld, main.file, ph, prot, ext)
    return ext


def et_dyn_load_bias(ld: Loader, main: LoadedImage, ph: Phdr, prot: int,
                     has_interp: bool) -> tuple[int, bool, int]:
    """load_elf_binary(), the first PT_LOAD of an ET_DYN image: where total_mapping_size()
    bytes go. A PIE (PT_INTERP) goes at ELF_ET_DYN_BASE plus arch_mmap_rnd(), aligned to
    maximum_alignment(); a static PIE with a large alignment where a top-down search finds
    room, then aligned; otherwise at 0 (the mmap base decides). Returns
    (load_bias, MAP_FIXED_NOREPLACE, total_size), load_bias already less p_vaddr."""
    profile, M = ld.profile, ld.M
    total_size = total_mapping_size(main.phdrs)
    if not total_size:
        raise ld.kill(errno.EINVAL, "load_elf_binary", "ET_DYN image of total size 0")
    alignment = maximum_alignment(main.phdrs)
    static_pie_align = profile.kernel is None or profile.kernel.static_pie_alignment
    noreplace = True
    if has_interp:
        load_bias = profile.elf_et_dyn_base
        if ld.rnd is not None:
            load_bias += arch_mmap_rnd(ld.rnd, profile.host.mmap_rnd_compat_bits)
        if alignment:
            load_bias &= ~(alignment - 1) & M
    elif alignment > ELF_MIN_ALIGN and static_pie_align:
        # No interpreter, large alignment: find a spot top-down, then align it
        # (v6.10 and backports: versions.STATIC_PIE_ALIGNMENT).
        try:
            load_bias = ld.elf_load(main, "main", 0, ph, prot, False, False, total_size)
        except MmError as e:
            raise ld.kill(e.errno, "elf_load", f"{ph.label}: {e.message}")
        ld.mm.munmap(load_bias, load_bias + page_align(total_size))
        load_bias &= ~(alignment - 1) & M
    else:
        load_bias, noreplace = 0, False
    return page_start((load_bias - ph.p_vaddr) & M), noreplace, total_size


def account_segment(ld: Loader, main_file: ElfFile, ph: Phdr, prot: int, ext: ElfExtent) -> None:
    """load_elf_binary(), the end of each PT_LOAD pass: where the program headers are mapped
    (AT_PHDR), start_code/end_code (PF_X segments), start_data/end_data, elf_bss and elf_brk;
    a segment with p_filesz > p_memsz or one that does not fit below TASK_SIZE kills."""
    tsz = ld.profile.task_size
    h = main_file.ehdr
    if ph.p_offset <= h.e_phoff < ph.p_offset + ph.p_filesz:
        ext.phdr_addr = h.e_phoff - ph.p_offset + ph.p_vaddr
    k = ph.p_vaddr
    if ph.p_flags & PF_X and k < ext.start_code:
        ext.start_code = k
    if ext.start_data < k:
        ext.start_data = k
    if BAD_ADDR(k, tsz) or ph.p_filesz > ph.p_memsz or ph.p_memsz > tsz or tsz - ph.p_memsz < k:
        why = "p_filesz > p_memsz" if ph.p_filesz > ph.p_memsz else "the segment does not fit below TASK_SIZE"
        raise ld.kill(errno.EINVAL, "load_elf_binary", f"{ph.label}: {why}")
    k = ph.p_vaddr + ph.p_filesz
    ext.elf_bss = max(ext.elf_bss, k)
    if ph.p_flags & PF_X and ext.end_code < k:
        ext.end_code = k
    if ext.end_data < k:
        ext.end_data = k
    k = (ph.p_vaddr + ph.p_memsz) & 0xFFFFFFFF
    if k > ext.elf_brk:
        ext.elf_brk, ext.bss_prot, ext.bss_index = k, prot, ph.index


def set_brk_before_interp(ld: Loader, main: LoadedImage, ext: ElfExtent) -> None:
    """Before v6.7, set_brk() maps the bss of the highest segment "before mapping in the
    interpreter", then padzero() clears the rest of the last file page: a fault kills,
    whatever the segment's protection. From v6.7 elf_load() did this per segment."""
    if ld.per_segment_bss:
        return
    M = ld.M
    bss, brk = (ext.elf_bss + ext.load_bias) & M, (ext.elf_brk + ext.load_bias) & M
    ld.set_brk(bss, brk, ext.bss_prot, "main", ext.bss_index)
    if bss != brk and not ld.padzero(bss, main, "main"):
        raise ld.kill(errno.EFAULT, "padzero", f"clearing the bss tail at {bss:#x} faulted")


def add_load_bias(ld: Loader, result: ExecResult, main: LoadedImage, ext: ElfExtent) -> tuple[int, int, int]:
    """load_elf_binary(): e_entry, phdr_addr, elf_brk and mm's start_code..end_data, each plus
    load_bias. Returns (e_entry, phdr_addr, elf_brk)."""
    M, mm, load_bias = ld.M, ld.mm, ext.load_bias
    main.load_bias = load_bias
    result.load_bias = load_bias & 0xFFFFFFFF if load_bias < (1 << 32) else load_bias
    e_entry = (main.file.ehdr.e_entry + load_bias) & M
    mm.start_code = (ext.start_code + load_bias) & M
    mm.end_code = (ext.end_code + load_bias) & M
    mm.start_data = (ext.start_data + load_bias) & M
    mm.end_data = (ext.end_data + load_bias) & M
    result.entry = e_entry
    return e_entry, (ext.phdr_addr + load_bias) & M, (ext.elf_brk + load_bias) & M


def elf_entry_point(ld: Loader, result: ExecResult, interp: LoadedImage | None, load_bias: int,
                    e_entry: int) -> int:
    """load_elf_binary(): load_elf_interp() when there is an interpreter, and elf_entry, the
    address the task starts at (the interpreter's entry, else the program's); an elf_entry
    not below TASK_SIZE kills. Returns interp_load_addr (0 without an interpreter)."""
    tsz = ld.profile.task_size
    if interp is None:
        if BAD_ADDR(e_entry, tsz):
            raise ld.kill(errno.EINVAL, "load_elf_binary", f"e_entry {e_entry:#x} is not below TASK_SIZE")
        result.eip = e_entry
        return 0
    interp_load_addr = ld.load_elf_interp(interp, load_bias)
    elf_entry = (interp_load_addr + interp.file.ehdr.e_entry) & ld.M
    interp.load_bias = interp_load_addr
    if BAD_ADDR(elf_entry, tsz):
        raise ld.kill(errno.EINVAL, "load_elf_binary",
                      f"the interpreter's entry {elf_entry:#x} is not below TASK_SIZE")
    result.interp = InterpInfo(result.interp.path, result.interp.resolved, interp_load_addr, elf_entry)
    result.eip = elf_entry
    return interp_load_addr


def randomize_brk(ld: Loader, e_type: int, has_interp: bool, elf_brk: int) -> None:
    """load_elf_binary(), the end: mm->start_brk = mm->brk = ELF_PAGEALIGN(elf_brk), then
    arch_randomize_brk() under ASLR. A static PIE / directly run ld.so gets its brk at
    ELF_ET_DYN_BASE; without ASLR only from v6.10 (and its stable backports:
    versions.STATIC_PIE_BRK_WITHOUT_ASLR), before that brk stays right after the image."""
    rules, mm = ld.profile.kernel, ld.mm
    brk_moved = False
    if e_type == ET_DYN and not has_interp and (
            ld.rnd is not None or rules is None or rules.static_pie_brk_without_aslr):
        elf_brk = ld.profile.elf_et_dyn_base
        brk_moved = True
    mm.start_brk = mm.brk = page_align(elf_brk)
    if ld.rnd is not None:
        if not brk_moved and (rules is None or rules.brk_gap_with_aslr):
            mm.start_brk = mm.brk = mm.brk + PAGE_SIZE      # v6.8: a gap between bss and brk
        mm.start_brk = mm.brk = arch_randomize_brk(mm.brk, ld.rnd)


def create_elf_tables(ld: Loader, bprm: Bprm, result: ExecResult, main_file: ElfFile,
                      interp_load_addr: int, e_entry: int, phdr_addr: int, vdso: int | None) -> None:
    """fs/binfmt_elf.c create_elf_tables(): platform string, AT_RANDOM bytes, the auxv, then
    argc/argv/envp from a 16-byte aligned esp upwards."""
    mm = ld.mm
    tables = copy_platform_and_random(ld, arch_align_stack(bprm.p, ld.rnd))
    aux = new_aux_ents(ld, bprm, main_file, interp_load_addr, e_entry, phdr_addr, vdso, tables)
    ei_index = 2 * len(aux)
    sp = tables.u_rand_bytes - 4 * ei_index
    items = (bprm.argc + 1) + (bprm.envc + 1) + 1
    esp = (sp - 4 * items) & ~0xF

    # The strings were written (get_arg_page) before the ELF segments were mapped; only what
    # create_elf_tables() writes now must be writable: the platform string and the random
    # bytes (copy_to_user), then, once find_extend_vma_locked() has grown the stack down to
    # esp, argc, the argv/envp pointers and the auxv (put_user / copy_to_user).
    ld.write_stack(tables.u_platform, tables.u_platform + len(tables.platform))
    ld.write_stack(tables.u_rand_bytes, tables.u_rand_bytes + 16)
    ld.extend_stack(esp)
    ld.write_stack(esp, esp + 4 * (items + ei_index))
    argv_addrs, envp_addrs, arg_end, env_end = ld.walk_strings(bprm)

    words = [bprm.argc] + argv_addrs + [0] + envp_addrs + [0]
    for t, v in aux:
        words += [t, v & 0xFFFFFFFF]
    image, argv_values, envp_values = stack_image(ld, bprm, esp, words, tables, argv_addrs, envp_addrs)

    mm.start_stack = esp
    mm.arg_start = bprm.argv_addrs[0]
    mm.arg_end = mm.env_start = arg_end
    mm.env_end = env_end
    result.auxv = [AuxEntry(t, v & 0xFFFFFFFF) for t, v in aux]
    mm.saved_auxv = tuple((t, v & 0xFFFFFFFF) for t, v in aux)
    stacks = [v for v in mm.vmas if v.growsdown]
    stack_vma = next((v for v in stacks if v.start <= esp < v.end), stacks[-1])

    def strings(addrs: list[int], values: list[bytes]) -> list[StackString]:
        return [StackString(a, s.decode("utf-8", "surrogateescape")) for a, s in zip(addrs, values)]

    result.stack = StackInfo(
        top=stack_vma.end, vma_start=stack_vma.start, esp=esp,
        argv=strings(argv_addrs, argv_values), envp=strings(envp_addrs, envp_values),
        execfn=StackString(bprm.exec, bprm.filename.decode("utf-8", "surrogateescape")),
        platform=StackString(tables.u_platform, ld.profile.platform), random_addr=tables.u_rand_bytes,
        random_bytes=tables.rand_bytes,
        auxv_addr=esp + 4 * (1 + len(bprm.argv_addrs) + 1 + len(bprm.envp_addrs) + 1),
        image_base=esp, image=bytes(image))


@dataclass(repr=False, eq=False)
class ElfTableStrings:
    """What create_elf_tables() copies to the stack before the auxv: the ELF_PLATFORM string
    (AT_PLATFORM) and the 16 AT_RANDOM bytes, with their user addresses."""

    u_platform: int
    platform: bytes
    u_rand_bytes: int
    rand_bytes: bytes


def copy_platform_and_random(ld: Loader, p: int) -> ElfTableStrings:
    """create_elf_tables(): k_platform copied below p (the aligned end of the strings), then
    get_random_bytes(k_rand_bytes) below it. Without ASLR elfvm's bytes are 0..15, so that a
    run is deterministic."""
    platform = ld.profile.platform.encode() + b"\0"
    u_platform = p - len(platform)
    rand_bytes = ld.rnd.bytes(16) if ld.rnd is not None else bytes(range(16))
    return ElfTableStrings(u_platform, platform, u_platform - 16, rand_bytes)


def new_aux_ents(ld: Loader, bprm: Bprm, main_file: ElfFile, interp_load_addr: int, e_entry: int,
                 phdr_addr: int, vdso: int | None, tables: ElfTableStrings) -> list[tuple[int, int]]:
    """create_elf_tables(): the NEW_AUX_ENT() list, ARCH_DLINFO_IA32 first, AT_NULL last, as
    (a_type, a_val) pairs; which entries exist depends on the kernel version."""
    profile = ld.profile
    host = profile.host
    aux: list[tuple[int, int]] = []
    if vdso is not None:                                   # ARCH_DLINFO_IA32
        aux.append((AT["AT_SYSINFO"], vdso + profile.vdso_vsyscall_offset))
        aux.append((AT["AT_SYSINFO_EHDR"], vdso))
    if profile.kernel is None or profile.kernel.minsigstksz_auxv:     # v5.14
        aux.append((AT["AT_MINSIGSTKSZ"], host.minsigstksz))
    aux += [
        (AT["AT_HWCAP"], host.hwcap),
        (AT["AT_PAGESZ"], PAGE_SIZE),
        (AT["AT_CLKTCK"], profile.clktck),
        (AT["AT_PHDR"], phdr_addr & 0xFFFFFFFF),
        (AT["AT_PHENT"], 32),
        (AT["AT_PHNUM"], main_file.ehdr.e_phnum),
        (AT["AT_BASE"], interp_load_addr & 0xFFFFFFFF),
        (AT["AT_FLAGS"], 0),
        (AT["AT_ENTRY"], e_entry & 0xFFFFFFFF),
        (AT["AT_UID"], host.uid), (AT["AT_EUID"], host.euid),
        (AT["AT_GID"], host.gid), (AT["AT_EGID"], host.egid),
        (AT["AT_SECURE"], 0),
        (AT["AT_RANDOM"], tables.u_rand_bytes),
        (AT["AT_HWCAP2"], host.hwcap2),
        (AT["AT_EXECFN"], bprm.exec),
        (AT["AT_PLATFORM"], tables.u_platform),
    ]
    if profile.rseq_auxv:                                  # v6.3 (versions.RSEQ_AUXV)
        aux += [(AT["AT_RSEQ_FEATURE_SIZE"], profile.rseq_feature_size),
                (AT["AT_RSEQ_ALIGN"], profile.rseq_align)]
    aux.append((AT["AT_NULL"], 0))
    return aux


def stack_image(ld: Loader, bprm: Bprm, esp: int, words: list[int], tables: ElfTableStrings,
                argv_addrs: list[int], envp_addrs: list[int]) -> tuple[bytearray, list[bytes], list[bytes]]:
    """The bytes from esp to the top of the strings as the task sees them after
    create_elf_tables(): argc, the argv/envp pointers and the auxv (`words`), the random
    bytes, the platform string and the strings. Returns (image, argv values, envp values)."""
    top = bprm.exec + len(bprm.filename) + 1 + ld.profile.kernel_ptr_size
    image = bytearray(top - esp)

    def put(addr: int, data: bytes) -> None:
        image[addr - esp:addr - esp + len(data)] = data

    put(esp, b"".join(w.to_bytes(4, "little") for w in words))
    put(tables.u_rand_bytes, tables.rand_bytes)
    put(tables.u_platform, tables.platform)
    argv_values, envp_values = bprm.argv, bprm.envp
    if argv_addrs == bprm.argv_addrs and envp_addrs == bprm.envp_addrs and not ld.strings_overlaid:
        for addr, s in bprm.strings:
            put(addr, s)
    else:       # segments were mapped over the strings: show what the task now sees there
        area = bprm.argv_addrs[0]
        put(area, bytes(ld.read_user(a) or 0 for a in range(area, top)))
        argv_values = [ld.read_cstring_user(a) for a in argv_addrs]
        envp_values = [ld.read_cstring_user(a) for a in envp_addrs]
    return image, argv_values, envp_values


def execve(req: ExecRequest, mm: Mm | None = None) -> ExecResult:
    """The library's entry point: predict what execve() does with this request (building the
    image in `mm` when given: see load_elf_binary)."""
    from elfvm.kernel.profile import make_profile

    return load_elf_binary(req, req.profile or make_profile(), mm)
