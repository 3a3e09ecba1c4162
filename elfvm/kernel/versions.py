"""Kernel versions: every loader, mm and vDSO rule elfvm models that changed between the kernels
people run (5.15, 6.1, 6.5, 6.6, 6.8, 6.12, 6.18 ...), keyed by the release that changed it.

A rule is `Since(mainline, stable=...)`: it holds from a mainline release on, and in the stable
series it was backported to from the stable release given.  A version given without its last
number ("6.1") means the newest release of that series elfvm knows ("6.1" = 6.1.176, Debian 12's).
Each rule names the commit or release beside it; "measured" means a real kernel of that version
was booted under qemu (tests/test_oracle_qemu.py) or is this machine's, and showed it.

The vDSO images are not guessed: VDSO_IMAGES lists, per version and build (a native i386 kernel's
vdso32 or an x86-64 kernel's vdso32 for ia32 tasks), the image size, the vvar pages and the entry
offsets read from the image itself (its ELF symbols), and where the image came from.
"""


import os
import re
from dataclasses import dataclass, field

# The versions the rules below are written for: the oldest rule kept is v5.6's; 7.3 is the newest
# kernel measured, and a later 7.x gets 7.3's rules (with a note naming the vDSO used).
MODELLED_RANGE = ((5, 0), (8, 0))


@dataclass(frozen=True, order=True, repr=False)
class KernelVersion:
    """A Linux release: major.minor[.patch] (patch None: the newest elfvm knows)."""

    major: int
    minor: int
    patch: int | None = None        # None: the newest release of the series elfvm knows

    @classmethod
    def parse(cls, text: str) -> "KernelVersion":
        """"6.1", "6.1.176", a uname -r ("6.18.44-fc-v657", "6.12.95+deb12-amd64"); Debian's
        ABI names ("6.1.0-50-amd64") carry no real patch level, so theirs is left unknown."""
        m = re.match(r"^\s*(\d+)\.(\d+)(?:\.(\d+))?([-+~_.\w]*)\s*$", text or "")
        if not m:
            raise ValueError(f"{text!r} is not a kernel version (like 6.1 or 6.1.176)")
        major, minor = int(m.group(1)), int(m.group(2))
        patch = int(m.group(3)) if m.group(3) is not None else None
        if patch == 0 and re.match(r"^-\d+-", m.group(4) or ""):      # Debian ABI: 6.1.0-50-686
            patch = None
        if not MODELLED_RANGE[0] <= (major, minor) < MODELLED_RANGE[1]:
            raise ValueError(f"{text!r}: elfvm's version rules cover Linux "
                             f"{MODELLED_RANGE[0][0]}.{MODELLED_RANGE[0][1]} up to (not including) "
                             f"{MODELLED_RANGE[1][0]}.{MODELLED_RANGE[1][1]}")
        return cls(major, minor, patch)

    @property
    def series(self) -> tuple[int, int]:
        return (self.major, self.minor)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}" + (f".{self.patch}" if self.patch is not None else "")


@dataclass(repr=False, eq=False)
class Since:
    """A change that holds from `mainline` on, and in each stable series of `stable` from the
    release given there (series -> first stable patch level that has the backport)."""

    mainline: tuple[int, int]
    what: str
    stable: dict[tuple[int, int], int] = field(default_factory=dict)

    def holds(self, v: KernelVersion) -> bool:
        if v.series >= self.mainline:
            return True
        first = self.stable.get(v.series)
        return first is not None and (v.patch is None or v.patch >= first)


# --- the rules ----------------------------------------------------------------------------------
# fs/proc/task_mmu.c: "[heap]" names an anonymous VMA that *overlaps* [start_brk, brk)
# (vma_is_initial_heap(): vm_start < brk && vm_end > start_brk).  Before, show_map_vma() used
# vm_start <= brk && vm_end >= start_brk, so the bss VMA that ends at start_brk was "[heap]" too.
# Commit 11250fd12eb8 "mm: factor out VMA stack and heap checks" (v6.6).  Measured: 6.1.176 and
# 6.5.10 label the bss [heap], 6.12.95 and 6.18 do not.
HEAP_OVERLAP_ONLY = Since((6, 6), "[heap] only for a VMA overlapping [start_brk, brk) (11250fd12eb8)")

# fs/binfmt_elf.c create_elf_tables(): AT_RSEQ_FEATURE_SIZE and AT_RSEQ_ALIGN, commit
# 317c8194e6ae "rseq: Introduce feature size and alignment ELF auxiliary vector entries" (v6.3).
# Measured: absent on 6.1.176 (esp 16 bytes higher), present on 6.5.10.
RSEQ_AUXV = Since((6, 3), "AT_RSEQ_FEATURE_SIZE/AT_RSEQ_ALIGN in the auxv (317c8194e6ae)")

# arch/x86 ARCH_DLINFO: AT_MINSIGSTKSZ, the signal frame size the CPU's xstate needs: commit
# 1c33bb050722 "x86/elf: Support a new ELF aux vector AT_MINSIGSTKSZ" (v5.14).  Present on every
# kernel booted here (6.1 and later); older versions are not measured.
MINSIGSTKSZ_AUXV = Since((5, 14), "AT_MINSIGSTKSZ in the auxv (1c33bb050722)")

# The rseq ABI grew in v7.0: AT_RSEQ_FEATURE_SIZE 33 and AT_RSEQ_ALIGN 64 (28 and 32 from v6.3).
# Measured: 6.19.14 gives 28/32, 7.0.13, 7.1.13, 7.2.12 and 7.3.4 give 33/64 (Debian's
# trixie-backports kernels under qemu).  The commit is not pinned down here.
RSEQ_V7 = Since((7, 0), "AT_RSEQ_FEATURE_SIZE 33, AT_RSEQ_ALIGN 64")

# fs/binfmt_elf.c: a static PIE (ET_DYN without PT_INTERP) gets its brk at ELF_ET_DYN_BASE even
# with ASLR off: "binfmt_elf: Move brk for static PIE even if ASLR disabled" (Kees Cook, v6.10,
# Cc: stable).  Before, that move only happened under randomization, and with ASLR off brk stayed
# right after the image (in the mmap area).  Measured: 6.1.176 has the backport (0x400000 on
# linux-i386), 6.5.10 (an unmaintained series) does not (0xb8000000).  The first 6.1.y release
# with it is not pinned down here: 6.1.176 is the one measured.
STATIC_PIE_BRK_WITHOUT_ASLR = Since((6, 10), "static-PIE brk at ELF_ET_DYN_BASE without ASLR",
                                    stable={(6, 1): 176})

# fs/binfmt_elf.c: a static PIE whose PT_LOADs ask for more than page alignment is placed at an
# aligned spot: "binfmt_elf: Honor PT_LOAD alignment for static PIE" (Kees Cook, v6.10, with the
# brk move above).  Before, it went top-down like any other static PIE.  Measured: 6.1.176 and
# 6.12.95 align (backported to 6.1.y), 6.5.10 does not.
STATIC_PIE_ALIGNMENT = Since((6, 10), "static PIE placed at its PT_LOAD alignment",
                             stable={(6, 1): 176})

# fs/binfmt_elf.c elf_load(): each PT_LOAD maps its own bss right after its file part, and a
# padzero() fault only kills for a writable segment: 585a018627b4 "binfmt_elf: Support segments
# with 0 filesz and misaligned starts" (v6.7).  Before, one set_brk() mapped the bss from the
# highest file end to the highest memory end (one VMA), earlier bss were mapped when the next
# PT_LOAD came, and a fault of the final padzero() killed whatever the protection; the
# interpreter likewise (one padzero, one vm_brk_flags).  Measured: 6.5.10 has the old loop;
# 6.1.176 has elf_load() (a stable backport: the first 6.1.y with it is not pinned down here).
ELF_LOAD_PER_SEGMENT = Since((6, 7), "elf_load(): bss per PT_LOAD (585a018627b4)", stable={(6, 1): 176})

# ... but the 6.1.y backport of elf_load() ignores padzero() faults (measured on 6.1.176: a
# writable segment whose bss tail page lies beyond EOF loads there, is killed on 6.12.95/6.18).
PADZERO_FAULT_KILLS = Since((6, 7), "elf_load(): a padzero() fault kills a writable segment")

# fs/binfmt_elf.c: with randomization, one page is left between the bss and brk unless brk was
# moved to ELF_ET_DYN_BASE: "binfmt_elf: Leave a gap between .bss and brk" (2a5eb9995528, v6.8).
BRK_GAP_WITH_ASLR = Since((6, 8), "a page between bss and a randomized brk (2a5eb9995528)")

# arch/x86/entry/vdso: the vvar area is 4 pages ([vvar]: vvar, pvclock, hvclock, timens) from
# v5.6 (af34ebeb866f "x86/vdso: Add time napespace page"), 3 before; v6.15 moved the clock pages
# to their own special mapping (the generic vDSO data store: "[vvar]" 4 pages, then
# "[vvar_vclock]" 2 pages).  Measured: 4 pages of [vvar] on 6.1.176, 6.5.10, 6.12.95;
# [vvar] 4 + [vvar_vclock] 2 on 6.18.
VVAR_TIMENS_PAGE = Since((5, 6), "a 4th vvar page for time namespaces (af34ebeb866f)")
VVAR_VCLOCK_MAPPING = Since((6, 15), "[vvar_vclock] split from [vvar] (generic vDSO data store)")

# mm/filemap.c filemap_map_pages(): fault-around maps a large page-cache folio it meets
# entirely (within the VMA and the page table), not only the fault_around_bytes window:
# "mm/filemap: map entire large folio faultaround" (v6.18).  Earlier kernels: the 16-page window.
FAULT_AROUND_WHOLE_FOLIO = Since((6, 18), "fault-around maps whole page-cache folios")

RULES = (HEAP_OVERLAP_ONLY, MINSIGSTKSZ_AUXV, RSEQ_AUXV, RSEQ_V7, STATIC_PIE_BRK_WITHOUT_ASLR, STATIC_PIE_ALIGNMENT,
         ELF_LOAD_PER_SEGMENT, PADZERO_FAULT_KILLS, BRK_GAP_WITH_ASLR, VVAR_TIMENS_PAGE,
         VVAR_VCLOCK_MAPPING, FAULT_AROUND_WHOLE_FOLIO)


# --- the vDSO images --------------------------------------------------------------------------

@dataclass(repr=False, eq=False)
class VdsoImage:
    """One kernel build's vDSO image: its size, vvar pages and entry offsets."""

    version: KernelVersion
    build: str                 # "i386": a native 32-bit kernel's; "x86_64": vdso32 of an x86-64 kernel
    size: int                  # bytes of [vdso]
    vvar_pages: int            # [vvar]
    vclock_pages: int          # [vvar_vclock] (0: no such mapping)
    vsyscall: int              # __kernel_vsyscall (= e_entry; AT_SYSINFO - AT_SYSINFO_EHDR)
    sigreturn: int             # __kernel_sigreturn
    rt_sigreturn: int          # __kernel_rt_sigreturn
    source: str
    # the image's exported __vdso_* functions (name, offset), from its .dynsym; glibc calls
    # them for time() and clock_gettime() (elfvm.emu.vdso exports those it models at these
    # offsets: all but 7.2's __vdso_futex_robust_list32_try_unlock, which has no system call)
    functions: tuple[tuple[str, int], ...] = ()
    # the PC thunk (__x86.get_pc_thunk.*: `mov (%esp),%reg; ret`, at the end of .text) each
    # function calls to find the vDSO data relative to its own address (name, thunk offset):
    # measured by scripts/vdso-touches.py (objdump -d of the dumped image, every call target
    # that is a thunk). The thunk's page is a page the function executes: on 6.1.176 it is the
    # image's second page, which the kernel shows present after time() alone.
    pc_thunks: tuple[tuple[str, int], ...] = ()


# The Debian images: scripts/vdso-images.py boots each kernel under qemu (elfvm.oracle.qemu), saves
# the [vdso] its init dumps and prints these entries; tests/test_oracle_qemu.py checks them per boot.
_DEB = ("Debian package {}, its [vdso] dumped under qemu by the oracle's init (elfvm/oracle/qemu_init.c); "
        "the functions from its .dynsym")
VDSO_IMAGES = (
    VdsoImage(KernelVersion(6, 1, 176), "i386", 0x2000, 4, 0, 0x550, 0x564, 0x570,
              _DEB.format("linux-image-6.1.0-50-686 and -686-pae 6.1.176-1 (identical images)"),
              functions=(("__vdso_gettimeofday", 0x7C0), ("__vdso_time", 0xB10),
                         ("__vdso_clock_gettime", 0xB50), ("__vdso_clock_gettime64", 0xFC0),
                         ("__vdso_clock_getres", 0x1470)),
              pc_thunks=(("__vdso_gettimeofday", 0x14FE), ("__vdso_time", 0x14F6),
                         ("__vdso_clock_gettime", 0x14F6), ("__vdso_clock_gettime64", 0x14F6),
                         ("__vdso_clock_getres", 0x14F6))),
    VdsoImage(KernelVersion(6, 5, 10), "i386", 0x2000, 4, 0, 0x580, 0x594, 0x5A0,
              _DEB.format("linux-image-6.5.0-0.deb12.4-686-pae 6.5.10-1~bpo12+1"),
              functions=(("__vdso_gettimeofday", 0x7EC), ("__vdso_time", 0xBA8),
                         ("__vdso_clock_gettime", 0xBE4), ("__vdso_clock_gettime64", 0x108C),
                         ("__vdso_clock_getres", 0x1574), ("__vdso_getcpu", 0x1600)),
              pc_thunks=(("__vdso_gettimeofday", 0x15F6), ("__vdso_time", 0x15F6),
                         ("__vdso_clock_gettime", 0x15F6), ("__vdso_clock_gettime64", 0x15F6),
                         ("__vdso_clock_getres", 0x15F6))),
    VdsoImage(KernelVersion(6, 1, 176), "x86_64", 0x2000, 4, 0, 0x550, 0x570, 0x580,
              _DEB.format("linux-image-6.1.0-50-amd64 6.1.176-1"),
              functions=(("__vdso_gettimeofday", 0x780), ("__vdso_time", 0xAC0),
                         ("__vdso_clock_gettime", 0xB00), ("__vdso_clock_gettime64", 0xF70),
                         ("__vdso_clock_getres", 0x1400)),
              pc_thunks=(("__vdso_gettimeofday", 0x1486), ("__vdso_time", 0x147E),
                         ("__vdso_clock_gettime", 0x147E), ("__vdso_clock_gettime64", 0x147E),
                         ("__vdso_clock_getres", 0x147E))),
    VdsoImage(KernelVersion(6, 12, 95), "x86_64", 0x2000, 4, 0, 0x580, 0x5A0, 0x5B0,
              _DEB.format("linux-image-6.12.95+deb12-amd64-unsigned 6.12.95-1~bpo12+1"),
              functions=(("__vdso_gettimeofday", 0x790), ("__vdso_time", 0xCD0),
                         ("__vdso_clock_gettime", 0xD20), ("__vdso_clock_gettime64", 0x12E0),
                         ("__vdso_clock_getres", 0x18D0), ("__vdso_getcpu", 0x1960)),
              pc_thunks=(("__vdso_gettimeofday", 0x1952), ("__vdso_time", 0x1952),
                         ("__vdso_clock_gettime", 0x1952), ("__vdso_clock_gettime64", 0x1952),
                         ("__vdso_clock_getres", 0x1952))),
    VdsoImage(KernelVersion(6, 16, 12), "x86_64", 0x2000, 4, 2, 0x580, 0x5A0, 0x5B0,
              _DEB.format("linux-image-6.16.12+deb13-amd64 6.16.12-1~bpo13+1"),
              functions=(("__vdso_gettimeofday", 0x770), ("__vdso_time", 0xCA0),
                         ("__vdso_clock_gettime", 0xCF0), ("__vdso_clock_gettime64", 0x12E0),
                         ("__vdso_clock_getres", 0x1910), ("__vdso_getcpu", 0x19A0)),
              pc_thunks=(("__vdso_gettimeofday", 0x1992), ("__vdso_time", 0x1992),
                         ("__vdso_clock_gettime", 0x199A), ("__vdso_clock_gettime64", 0x1992),
                         ("__vdso_clock_getres", 0x1992))),
    VdsoImage(KernelVersion(6, 18, 15), "x86_64", 0x2000, 4, 2, 0x580, 0x5A0, 0x5B0,
              _DEB.format("linux-image-6.18.15+deb13-amd64 6.18.15-1~bpo13+1"),
              functions=(("__vdso_gettimeofday", 0x770), ("__vdso_time", 0xCA0),
                         ("__vdso_clock_gettime", 0xCF0), ("__vdso_clock_gettime64", 0x12D0),
                         ("__vdso_clock_getres", 0x1900), ("__vdso_getcpu", 0x19A0)),
              pc_thunks=(("__vdso_gettimeofday", 0x1990), ("__vdso_time", 0x1990),
                         ("__vdso_clock_gettime", 0x1990), ("__vdso_clock_gettime64", 0x1990),
                         ("__vdso_clock_getres", 0x1990))),
    VdsoImage(KernelVersion(6, 19, 14), "x86_64", 0x2000, 4, 2, 0x580, 0x5A0, 0x5B0,
              _DEB.format("linux-binary-6.19.14+deb13-amd64 6.19.14-1~bpo13+1"),
              functions=(("__vdso_gettimeofday", 0x770), ("__vdso_time", 0xCA0),
                         ("__vdso_clock_gettime", 0xCF0), ("__vdso_clock_gettime64", 0x12D0),
                         ("__vdso_clock_getres", 0x1900), ("__vdso_getcpu", 0x19A0)),
              pc_thunks=(("__vdso_gettimeofday", 0x1990), ("__vdso_time", 0x1990),
                         ("__vdso_clock_gettime", 0x1990), ("__vdso_clock_gettime64", 0x1990),
                         ("__vdso_clock_getres", 0x1990))),
    VdsoImage(KernelVersion(7, 0, 13), "x86_64", 0x3000, 4, 2, 0x1CA0, 0x1CD0, 0x1CE0,
              _DEB.format("linux-binary-7.0.13+deb13-amd64 7.0.13-1~bpo13+1"),
              functions=(("__vdso_gettimeofday", 0x9D0), ("__vdso_time", 0xF00),
                         ("__vdso_clock_gettime", 0xF40), ("__vdso_clock_gettime64", 0x1510),
                         ("__vdso_clock_getres", 0x1B30), ("__vdso_clock_getres_time64", 0x1BC0),
                         ("__vdso_getcpu", 0x1C60)),
              pc_thunks=(("__vdso_gettimeofday", 0x1C57), ("__vdso_time", 0x1C57),
                         ("__vdso_clock_gettime", 0x1C57), ("__vdso_clock_gettime64", 0x1C57),
                         ("__vdso_clock_getres", 0x1C57), ("__vdso_clock_getres_time64", 0x1C57))),
    VdsoImage(KernelVersion(7, 1, 13), "x86_64", 0x3000, 4, 2, 0x1CE0, 0x1D10, 0x1D20,
              _DEB.format("linux-binary-7.1.13+deb13-amd64 7.1.13-1~bpo13+1"),
              functions=(("__vdso_gettimeofday", 0x9D0), ("__vdso_time", 0xF00),
                         ("__vdso_clock_gettime", 0xF40), ("__vdso_clock_gettime64", 0x1530),
                         ("__vdso_clock_getres", 0x1B70), ("__vdso_clock_getres_time64", 0x1C00),
                         ("__vdso_getcpu", 0x1CA0)),
              pc_thunks=(("__vdso_gettimeofday", 0x1C97), ("__vdso_time", 0x1C97),
                         ("__vdso_clock_gettime", 0x1C97), ("__vdso_clock_gettime64", 0x1C97),
                         ("__vdso_clock_getres", 0x1C97), ("__vdso_clock_getres_time64", 0x1C97))),
    VdsoImage(KernelVersion(7, 2, 12), "x86_64", 0x3000, 4, 2, 0x1D50, 0x1D80, 0x1D90,
              _DEB.format("linux-binary-7.2.12+deb13-amd64 7.2.12-1~bpo13+1"),
              functions=(("__vdso_gettimeofday", 0xA40), ("__vdso_time", 0xF70),
                         ("__vdso_clock_gettime", 0xFB0), ("__vdso_clock_gettime64", 0x15A0),
                         ("__vdso_clock_getres", 0x1BE0), ("__vdso_clock_getres_time64", 0x1C70),
                         ("__vdso_getcpu", 0x1D10), ("__vdso_futex_robust_list32_try_unlock", 0x1DA0)),
              pc_thunks=(("__vdso_gettimeofday", 0x1D07), ("__vdso_time", 0x1D07),
                         ("__vdso_clock_gettime", 0x1D07), ("__vdso_clock_gettime64", 0x1D07),
                         ("__vdso_clock_getres", 0x1D07), ("__vdso_clock_getres_time64", 0x1D07))),
    VdsoImage(KernelVersion(7, 3, 4), "x86_64", 0x3000, 4, 2, 0x1D50, 0x1D80, 0x1D90,
              _DEB.format("linux-binary-7.3.4+deb13-amd64 7.3.4-1~bpo13+1"),
              functions=(("__vdso_gettimeofday", 0xA40), ("__vdso_time", 0xF70),
                         ("__vdso_clock_gettime", 0xFB0), ("__vdso_clock_getres", 0x15A0),
                         ("__vdso_clock_gettime64", 0x1630), ("__vdso_clock_getres_time64", 0x1C70),
                         ("__vdso_getcpu", 0x1D10), ("__vdso_futex_robust_list32_try_unlock", 0x1DA0)),
              pc_thunks=(("__vdso_gettimeofday", 0x1D07), ("__vdso_time", 0x1D07),
                         ("__vdso_clock_gettime", 0x1D07), ("__vdso_clock_getres", 0x1D07),
                         ("__vdso_clock_gettime64", 0x1D07), ("__vdso_clock_getres_time64", 0x1D07))),
    # A build of its own (Firecracker guest kernel): the same version built by Debian
    # (6.18.15 above) has its entry points elsewhere, so the image is per build, not per version.
    VdsoImage(KernelVersion(6, 18, 44), "x86_64", 0x2000, 4, 2, 0x5E0, 0x600, 0x610,
              "this machine's kernel (6.18.44-fc-v657): [vdso] of an i386 process read through "
              "/proc/PID/mem (elfvm/oracle/live.py); its .dynsym read with readelf",
              functions=(("__vdso_gettimeofday", 0x700), ("__vdso_time", 0xC20),
                         ("__vdso_clock_gettime", 0xC70), ("__vdso_clock_gettime64", 0x1220),
                         ("__vdso_clock_getres", 0x1830), ("__vdso_getcpu", 0x18D0)),
              pc_thunks=(("__vdso_gettimeofday", 0x18C6), ("__vdso_time", 0x18C6),
                         ("__vdso_clock_gettime", 0x18C6), ("__vdso_clock_gettime64", 0x18C6),
                         ("__vdso_clock_getres", 0x18C6))),
)


def _distance(a: KernelVersion, b: KernelVersion) -> tuple[int, int]:
    key = lambda v: (v.major * 1000 + v.minor, v.patch if v.patch is not None else 10 ** 6)  # noqa: E731
    return (abs(key(a)[0] - key(b)[0]), abs(key(a)[1] - key(b)[1]))


def nearest_vdso(v: KernelVersion, build: str) -> VdsoImage:
    """The measured image of this build closest to v (the same series first)."""
    images = [i for i in VDSO_IMAGES if i.build == build]
    return min(images, key=lambda i: _distance(i.version, v))


# --- one version's rules, as the loader uses them -----------------------------------------------

@dataclass(repr=False, eq=False)
class KernelRules:
    """The rules of one kernel version, as the loader and the mm use them."""

    version: KernelVersion
    vdso: VdsoImage
    heap_overlap_only: bool
    minsigstksz_auxv: bool
    rseq_auxv: bool
    rseq_feature_size: int
    rseq_align: int
    static_pie_brk_without_aslr: bool
    static_pie_alignment: bool
    elf_load_per_segment: bool
    padzero_fault_kills: bool
    brk_gap_with_aslr: bool
    vvar_pages: int
    vclock_pages: int
    fault_around_whole_folio: bool
    note: str | None = None      # when the exact version is not modelled: which one is nearest

    @property
    def modelled(self) -> bool:
        return self.note is None


def kernel_rules(version: KernelVersion, build: str) -> KernelRules:
    """The rules of `version` for a native i386 kernel (build "i386") or an x86-64 one."""
    img = nearest_vdso(version, build)
    note = None
    same = img.version.series == version.series and (version.patch is None or
                                                     version.patch == img.version.patch)
    if not same:
        note = (f"kernel {version} ({'native i386' if build == 'i386' else 'x86-64'}): no vDSO image "
                f"measured for it; using {img.version}'s (entry offsets may differ); the loader and mm "
                f"rules are {version}'s")
    vvar = 4 if VVAR_TIMENS_PAGE.holds(version) else 3
    return KernelRules(
        version=version, vdso=img,
        heap_overlap_only=HEAP_OVERLAP_ONLY.holds(version),
        minsigstksz_auxv=MINSIGSTKSZ_AUXV.holds(version),
        rseq_auxv=RSEQ_AUXV.holds(version),
        rseq_feature_size=33 if RSEQ_V7.holds(version) else 28,
        rseq_align=64 if RSEQ_V7.holds(version) else 32,
        static_pie_brk_without_aslr=STATIC_PIE_BRK_WITHOUT_ASLR.holds(version),
        static_pie_alignment=STATIC_PIE_ALIGNMENT.holds(version),
        elf_load_per_segment=ELF_LOAD_PER_SEGMENT.holds(version),
        padzero_fault_kills=PADZERO_FAULT_KILLS.holds(version),
        brk_gap_with_aslr=BRK_GAP_WITH_ASLR.holds(version),
        vvar_pages=vvar, vclock_pages=2 if VVAR_VCLOCK_MAPPING.holds(version) else 0,
        fault_around_whole_folio=FAULT_AROUND_WHOLE_FOLIO.holds(version),
        note=note)


# The default kernel for --profile linux-i386: Debian 12's (bookworm), the last Debian release
# with 32-bit x86 kernels, so what a native i386 install runs.
DEFAULT_I386_KERNEL = KernelVersion(6, 1, 176)


def running_kernel() -> KernelVersion:
    """This machine's kernel (uname -r)."""
    return KernelVersion.parse(os.uname().release)


def vdso_table() -> list[dict]:
    """VDSO_IMAGES as rows (for docs and `elfvm layout --kernel list`-style output)."""
    return [{"version": str(i.version), "build": i.build, "size": i.size, "vvar pages": i.vvar_pages,
             "vvar_vclock pages": i.vclock_pages, "__kernel_vsyscall": f"{i.vsyscall:#x}",
             "__kernel_sigreturn": f"{i.sigreturn:#x}", "__kernel_rt_sigreturn": f"{i.rt_sigreturn:#x}",
             "source": i.source} for i in VDSO_IMAGES]

