"""Where mmap allocations go: arch/x86/mm/mmap.c (mmap_base, arch_pick_mmap_layout) and the
kernel's randomness for ASLR (arch_mmap_rnd, randomize_stack_top, arch_align_stack,
arch_randomize_brk), drawn from a seeded generator so that the same seed gives the same layout.
"""


from dataclasses import dataclass

from elfvm.kernel.profile import MiB, Profile
from elfvm.mm.vma import PAGE_MASK, PAGE_SHIFT, PAGE_SIZE, page_align

RLIM_INFINITY = (1 << 64) - 1
SIZE_128M = 128 * MiB


class KernelRandom:
    """get_random_long() and friends; None means ASLR is off (PF_RANDOMIZE clear)."""

    def __init__(self, seed: int):
        import random        # only --aslr needs it: keep `layout` start-up light

        self._rng = random.Random(seed)

    def long(self) -> int:
        return self._rng.getrandbits(64)

    def below(self, n: int) -> int:
        return self._rng.randrange(n) if n > 0 else 0

    def bytes(self, n: int) -> bytes:
        return self._rng.getrandbits(8 * n).to_bytes(n, "little")


def arch_mmap_rnd(rnd: KernelRandom | None, bits: int) -> int:
    """arch_rnd(mmap32_rnd_bits): a page-granular random offset, 0 without PF_RANDOMIZE."""
    if rnd is None:
        return 0
    return (rnd.long() & ((1 << bits) - 1)) << PAGE_SHIFT


def stack_maxrandom_size(profile: Profile, randomized: bool) -> int:
    return (profile.stack_rnd_mask << PAGE_SHIFT) if randomized else 0


def mmap_base(profile: Profile, rlimit_stack: int, rnd_offset: int, randomized: bool) -> int:
    """arch/x86/mm/mmap.c mmap_base(): leave room for the stack below TASK_SIZE.

    The gap is RLIMIT_STACK plus the stack's random range and guard gap, clamped to
    [128 MiB, TASK_SIZE/6*5]; RLIM_INFINITY overflows when padded, so no pad is added.
    """
    task_size = profile.task_size
    gap = rlimit_stack
    pad = stack_maxrandom_size(profile, randomized) + profile.stack_guard_gap
    if gap + pad > gap and gap + pad <= RLIM_INFINITY:
        gap += pad
    gap_min, gap_max = SIZE_128M, (task_size // 6) * 5
    gap = min(max(gap, gap_min), gap_max)
    return page_align(task_size - gap - rnd_offset)


@dataclass(repr=False, eq=False)
class MmapLayout:
    """arch_pick_mmap_layout(): the top-down base, the legacy base and which one is used."""

    mmap_base: int
    mmap_legacy_base: int
    legacy: bool


def arch_pick_mmap_layout(profile: Profile, rlimit_stack: int, rnd: KernelRandom | None) -> MmapLayout:
    bits = profile.host.mmap_rnd_compat_bits if profile.name == "linux-x86_64-compat" else 8
    factor = arch_mmap_rnd(rnd, bits)
    top_down = mmap_base(profile, rlimit_stack, factor, rnd is not None)
    legacy_base = profile.task_unmapped_base + factor
    # x86 has its own mmap_is_legacy(): only ADDR_COMPAT_LAYOUT or vm.legacy_va_layout select
    # bottom-up; an unlimited RLIMIT_STACK does not (it only clamps the gap to 5/6 of TASK_SIZE).
    return MmapLayout(top_down, legacy_base, profile.legacy)


def randomize_stack_top(profile: Profile, rnd: KernelRandom | None) -> int:
    """fs/binfmt_elf.c randomize_stack_top(STACK_TOP)."""
    top = page_align(profile.stack_top)
    if rnd is None:
        return top
    return top - ((rnd.long() & profile.stack_rnd_mask) << PAGE_SHIFT)


def arch_align_stack(sp: int, rnd: KernelRandom | None) -> int:
    """arch/x86/kernel/process.c arch_align_stack(): up to 8 KiB random, then 16-byte aligned."""
    if rnd is not None:
        sp -= rnd.below(8192)
    return sp & ~0xF


def randomize_page(start: int, range_: int, rnd: KernelRandom) -> int:
    """mm/util.c randomize_page()."""
    if start & ~PAGE_MASK:
        range_ -= page_align(start) - start
        start = page_align(start)
    if start > (1 << 64) - 1 - range_:
        range_ = (1 << 64) - 1 - start
    range_ >>= PAGE_SHIFT
    if range_ == 0:
        return start
    return start + ((rnd.long() % range_) << PAGE_SHIFT)


def arch_randomize_brk(brk: int, rnd: KernelRandom) -> int:
    """arch/x86/kernel/process.c: 32 MiB of brk randomization for ia32 tasks."""
    return randomize_page(brk, 32 * MiB, rnd)


__all__ = ["KernelRandom", "MmapLayout", "arch_pick_mmap_layout", "mmap_base", "randomize_stack_top",
           "arch_align_stack", "arch_randomize_brk", "arch_mmap_rnd", "RLIM_INFINITY", "PAGE_SIZE"]
