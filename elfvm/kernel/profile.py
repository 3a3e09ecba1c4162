"""Kernel profiles: the constants that decide where things land.

`linux-x86_64-compat` is an i386 program on an x86-64 kernel with IA32 emulation (this machine);
`linux-i386` is a native 32-bit kernel with a VMSPLIT_* choice. The values mirror
arch/x86/include/asm/{page_32_types.h,page_64_types.h,elf.h,processor.h} and arch/x86/mm/mmap.c;
where the running kernel can be asked (sysctls, the CPU's HWCAP in /proc/self/auxv), the
compat profile asks it, so that predictions match this machine.
"""


import os
import struct
from dataclasses import dataclass, field, replace

from elfvm.kernel.versions import (
    DEFAULT_I386_KERNEL, KernelRules, KernelVersion, kernel_rules, running_kernel,
)
from elfvm.mm.vma import PAGE_SIZE, PROT_EXEC, PROT_READ, page_align

MiB = 1 << 20

# CONFIG_PAGE_OFFSET for each VMSPLIT choice (arch/x86/Kconfig).
SPLITS = {
    "3G": 0xC0000000,
    "3G_OPT": 0xB0000000,
    "2G": 0x80000000,
    "2G_OPT": 0x78000000,
    "1G": 0x40000000,
}
PROFILES = ("linux-x86_64-compat", "linux-i386")

IA32_PAGE_OFFSET = 0xFFFFE000        # TASK_SIZE of an ia32 task on x86-64 (page_64_types.h)
IA32_PAGE_OFFSET_3GB = 0xC0000000    # ... with personality ADDR_LIMIT_3GB


@dataclass(repr=False, eq=False)
class VdsoPart:
    """One mapping of the vDSO area ([vvar], [vvar_vclock], [vdso]): pages, protection."""

    name: str
    pages: int
    prot: int


@dataclass(repr=False, eq=False)
class HostFacts:
    """What the running kernel and CPU decide: sysctls and the auxv values that come from CPUID."""

    hwcap: int = 0x178BFBFF          # CPUID.1:EDX
    hwcap2: int = 0x2                # bit 1: FSGSBASE
    minsigstksz: int = 0xD30         # get_sigframe_size(): depends on the CPU's xstate size
    mmap_min_addr: int = PAGE_SIZE
    vdso32_enabled: bool = True      # abi.vsyscall32
    legacy_va_layout: bool = False   # vm.legacy_va_layout
    mmap_rnd_compat_bits: int = 8
    uid: int = 0
    euid: int = 0
    gid: int = 0
    egid: int = 0


def _read_int(path: str, default: int) -> int:
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return default


def host_facts() -> HostFacts:
    """Read this machine's values; fall back to the documented defaults elsewhere."""
    d = HostFacts()
    hwcap, hwcap2, minsig = d.hwcap, d.hwcap2, d.minsigstksz
    try:
        with open("/proc/self/auxv", "rb") as f:
            raw = f.read()
        # The same CPUID-derived values are handed to 64-bit and 32-bit tasks (ELF_HWCAP,
        # ELF_HWCAP2 and get_sigframe_size() are shared by ARCH_DLINFO and ARCH_DLINFO_IA32).
        for a_type, a_val in struct.iter_unpack("<QQ", raw[: len(raw) // 16 * 16]):
            if a_type == 16:
                hwcap = a_val
            elif a_type == 26:
                hwcap2 = a_val
            elif a_type == 51:
                minsig = a_val
    except OSError:
        pass
    return HostFacts(
        hwcap=hwcap & 0xFFFFFFFF, hwcap2=hwcap2 & 0xFFFFFFFF, minsigstksz=minsig,
        mmap_min_addr=_read_int("/proc/sys/vm/mmap_min_addr", d.mmap_min_addr),
        vdso32_enabled=bool(_read_int("/proc/sys/abi/vsyscall32", 1)),
        legacy_va_layout=bool(_read_int("/proc/sys/vm/legacy_va_layout", 0)),
        mmap_rnd_compat_bits=_read_int("/proc/sys/vm/mmap_rnd_compat_bits", 8),
        uid=os.getuid(), euid=os.geteuid(), gid=os.getgid(), egid=os.getegid(),
    )


@dataclass(repr=False, eq=False)
class Profile:
    """The kernel constants the ELF loader and the mm use for one i386 task."""

    name: str
    split: str | None
    task_size: int                   # TASK_SIZE == STACK_TOP for a 32-bit task
    page_offset: int | None          # start of the kernel half (native i386 only)
    kernel_ptr_size: int             # sizeof(void *) in the kernel: the zero slot at the stack top
    elf_et_dyn_base: int             # where a PIE (and a static PIE's brk) goes
    task_unmapped_base: int          # the legacy (bottom-up) mmap base
    stack_guard_gap: int = 256 * PAGE_SIZE
    stack_rnd_mask: int = 0x7FF
    platform: str = "i686"           # COMPAT_ELF_PLATFORM / utsname()->machine
    clktck: int = 100
    rseq_feature_size: int = 28
    rseq_align: int = 32
    vdso_parts: tuple[VdsoPart, ...] = (
        VdsoPart("[vvar]", 4, PROT_READ),
        VdsoPart("[vvar_vclock]", 2, PROT_READ),
        VdsoPart("[vdso]", 2, PROT_READ | PROT_EXEC),
    )
    vdso_vsyscall_offset: int = 0x5E0    # __kernel_vsyscall in this build's vdso32 image
    vdso_sigreturn_offset: int = 0x600   # __kernel_sigreturn
    vdso_rt_sigreturn_offset: int = 0x610  # __kernel_rt_sigreturn
    vdso_functions: tuple[tuple[str, int], ...] = ()   # the build's __vdso_* (name, offset), if measured
    vdso_pc_thunks: tuple[tuple[str, int], ...] = ()   # the PC thunk each calls (name, thunk offset)
    rseq_auxv: bool = True               # AT_RSEQ_FEATURE_SIZE/AT_RSEQ_ALIGN (v6.3+)
    kernel: KernelRules | None = None    # the version's rules (elfvm/kernel/versions.py)
    addr_limit_3gb: bool = False
    legacy: bool = False
    host: HostFacts = field(default_factory=HostFacts)

    @property
    def stack_top(self) -> int:
        return self.task_size

    @property
    def ulong_mask(self) -> int:
        """Where the kernel's unsigned long arithmetic wraps (the loader's sums and bounds)."""
        return (1 << (8 * self.kernel_ptr_size)) - 1

    @property
    def vdso_size(self) -> int:
        return sum(p.pages for p in self.vdso_parts) * PAGE_SIZE


def vdso_parts(rules: KernelRules) -> tuple[VdsoPart, ...]:
    """[vvar] (and, from v6.15, [vvar_vclock]) then [vdso], as map_vdso() maps them."""
    parts = [VdsoPart("[vvar]", rules.vvar_pages, PROT_READ)]
    if rules.vclock_pages:
        parts.append(VdsoPart("[vvar_vclock]", rules.vclock_pages, PROT_READ))
    parts.append(VdsoPart("[vdso]", rules.vdso.size // PAGE_SIZE, PROT_READ | PROT_EXEC))
    return tuple(parts)


def resolve_kernel(kernel: str | KernelVersion | None, name: str) -> KernelVersion:
    """--kernel VERSION, or the default: this machine's kernel for linux-x86_64-compat,
    Debian 12's 6.1.176 (the last Debian with 32-bit kernels) for linux-i386."""
    if isinstance(kernel, KernelVersion):
        return kernel
    if kernel is not None:
        return KernelVersion.parse(kernel)
    return running_kernel() if name == "linux-x86_64-compat" else DEFAULT_I386_KERNEL


def make_profile(name: str = "linux-x86_64-compat", split: str = "3G", *, addr_limit_3gb: bool = False,
                 legacy: bool = False, host: HostFacts | None = None,
                 kernel: str | KernelVersion | None = None) -> Profile:
    """Build a profile; `addr_limit_3gb` is personality ADDR_LIMIT_3GB (setarch -3),
    `legacy` is ADDR_COMPAT_LAYOUT (setarch -L), `kernel` the kernel version (see
    resolve_kernel for the default)."""
    host = host or host_facts()
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")
    rules = kernel_rules(resolve_kernel(kernel, name), "i386" if name == "linux-i386" else "x86_64")
    per_version = dict(vdso_parts=vdso_parts(rules), vdso_vsyscall_offset=rules.vdso.vsyscall,
                       vdso_sigreturn_offset=rules.vdso.sigreturn,
                       vdso_rt_sigreturn_offset=rules.vdso.rt_sigreturn,
                       vdso_functions=rules.vdso.functions, vdso_pc_thunks=rules.vdso.pc_thunks,
                       rseq_auxv=rules.rseq_auxv, rseq_feature_size=rules.rseq_feature_size,
                       rseq_align=rules.rseq_align, kernel=rules)
    if name == "linux-x86_64-compat":
        task_size = IA32_PAGE_OFFSET_3GB if addr_limit_3gb else IA32_PAGE_OFFSET
        unmapped = page_align(task_size // 3)           # TASK_UNMAPPED_BASE = PAGE_ALIGN(TASK_SIZE/3)
        # COMPAT_ELF_ET_DYN_BASE = TASK_UNMAPPED_BASE + 16 MiB (asm/elf.h), used for ia32 tasks.
        return Profile(name, None, task_size, None, 8, unmapped + 16 * MiB, unmapped,
                       addr_limit_3gb=addr_limit_3gb, legacy=legacy or host.legacy_va_layout,
                       host=host, **per_version)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    page_offset = SPLITS[split]
    # Native: TASK_SIZE = PAGE_OFFSET, ELF_ET_DYN_BASE = 0x00400000 for ia32 (asm/elf.h),
    # sizeof(void *) = 4; ADDR_LIMIT_3GB means nothing there.
    return Profile(name, split, page_offset, page_offset, 4, 0x00400000,
                   page_align(page_offset // 3), legacy=legacy or host.legacy_va_layout,
                   host=replace(host, vdso32_enabled=True), **per_version)
