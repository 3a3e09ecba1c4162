"""The MMU model: segmentation, paging walks, page faults and the kernel half (a library layer
between the CLI and elfvm.phys).

Entry points: `open_address_space()` builds the address space to walk (a prediction from an ELF
program, a live process, or geometry only), and `translate_all()` answers a list of inputs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from elfvm.mmu.geometry import GEOMETRIES, Geometry, GeometryError, get_geometry

if TYPE_CHECKING:
    from elfvm.mmu.inputs import Spec
    from elfvm.mmu.mmu import AddressSpace, InputFailure, Translation, TranslateError


def __getattr__(name: str):
    """The MMU model itself is imported on first use: `simulate-run --trace` needs only the
    geometry and the TLB's shape from this package, not the walks (start-up time)."""
    if name in ("AddressSpace", "Translation", "TranslateError", "InputFailure"):
        from elfvm.mmu import mmu

        return getattr(mmu, name)
    raise AttributeError(f"module 'elfvm.mmu' has no attribute {name!r}")

__all__ = ["AddressSpace", "Translation", "TranslateError", "Geometry", "GeometryError", "get_geometry",
           "GEOMETRIES", "open_address_space", "translate_all", "default_mmu", "InputFailure"]


def default_mmu(profile) -> str:
    """x86-64 for an i386 task on an x86-64 kernel (what this machine's MMU walks), i386 (no PAE)
    for a native 32-bit kernel."""
    return "i386" if profile.name == "linux-i386" else "x86-64"


def open_address_space(*, profile, mmu: str | None = None, bits: str | None = None, ram: int = 256 << 20,
                       elf: str | None = None, pid: int | None = None, sysroot: str = "/",
                       argv: list[str] | None = None, envp: list[str] | None = None,
                       rlimit_stack: int = 8 << 20):
    """The address space to translate in: predicted for `elf`, live for `pid`, else geometry only
    (plus the kernel half on a native i386 profile)."""
    from elfvm.mmu.mmu import AddressSpace, TranslateError

    try:
        geom = get_geometry(mmu or default_mmu(profile), bits)
    except GeometryError as e:
        raise TranslateError(str(e)) from None
    if pid is not None:
        from elfvm.mmu.live import LiveAddressSpace

        return LiveAddressSpace(pid, geom, profile)
    result = None
    if elf is not None:
        from elfvm.kernel.binfmt_elf import ExecRequest, UnsupportedProgram, execve

        try:
            result = execve(ExecRequest(elf, argv, envp or [], profile=profile, sysroot=sysroot,
                                        rlimit_stack=rlimit_stack))
        except UnsupportedProgram as e:
            raise TranslateError(str(e)) from None
        if result.verdict.result != "ok":
            raise TranslateError(f"{elf}: execve would fail ({result.verdict.result}: {result.verdict.reason}); "
                                 f"there is no address space to translate in")
    from elfvm.phys import OutOfMemory

    try:
        return AddressSpace(geom, profile, ram, result, rlimit_stack=rlimit_stack)
    except OutOfMemory as e:
        raise TranslateError(f"--ram {ram >> 20}M: {e}") from None


def translate_one(space, text: str, access: str = "r", cpl: int = 3) -> Translation:
    from elfvm.mmu.bulk import translate_one as one

    return one(space, text, access, cpl)


def translate_all(space, texts, access: str = "r", cpl: int = 3) -> list[Translation | InputFailure]:
    """Answer every input; a bad one becomes an InputFailure and the others are still answered."""
    from elfvm.mmu.mmu import InputFailure, TranslateError

    out: list[Translation | InputFailure] = []
    for t in texts:
        try:
            out.append(translate_one(space, t, access, cpl))
        except TranslateError as e:
            out.append(InputFailure(t, str(e)))
    return out
