"""The vDSO image the emulated kernel maps at [vdso]: a small ELF shared object.

It has what glibc's setup_vdso() reads (an ELF header, a PT_LOAD and a PT_DYNAMIC) and
`__kernel_vsyscall` at the profile's AT_SYSINFO offset: `int $0x80; ret`, which enters elfvm's
syscall layer exactly like the real vDSO's entry (the real one uses sysenter/syscall when the CPU
has them; both end in the same system-call table). `__kernel_sigreturn` and
`__kernel_rt_sigreturn` follow it (the kernel uses them by offset as the return address of a
signal frame whose handler has no SA_RESTORER).

Where the kernel build's vDSO symbols are measured (VdsoImage.functions), the image exports
them too (DT_HASH, DT_SYMTAB, DT_STRTAB: what glibc's dl_vdso_vsym looks up), each at its offset
in the real image, so glibc calls into the vDSO for time() and clock_gettime() as on the real
machine, touching the same pages: the function's code page, the page of the PC thunk it calls
(VdsoImage.pc_thunks, measured by scripts/vdso-touches.py: on 6.x and 7.x images the thunk sits at
the end of .text), and the vDSO data page ([vvar]'s first page) that the real function reads.
Each function then does what the real vDSO does when
the clocksource has no vDSO clock mode (VDSO_CLOCKMODE_NONE): the system call, through
__kernel_vsyscall as the real fallback calls it. Without measured
symbols nothing is exported and glibc makes the system calls itself.
"""

from __future__ import annotations

import struct

PT_LOAD, PT_DYNAMIC = 1, 2
DT_NULL, DT_HASH, DT_STRTAB, DT_SYMTAB, DT_STRSZ, DT_SYMENT = 0, 4, 5, 6, 10, 11
STB_GLOBAL_FUNC = 0x12
DYNAMIC_OFFSET = 0x100
HASH_OFFSET = 0x140
SIGRETURN_DELTA = 0x20            # __kernel_sigreturn, after __kernel_vsyscall
RT_SIGRETURN_DELTA = 0x30         # __kernel_rt_sigreturn

# The vDSO functions: their i386 system call (the vDSO's own fallback) and whether the real
# function reads the vDSO data page (getcpu reads the CPU number with LSL/RDPID instead).
VDSO_SYSCALLS = {
    "__vdso_clock_gettime": (265, True), "__vdso_clock_gettime64": (403, True),
    "__vdso_gettimeofday": (78, True), "__vdso_time": (13, True),
    "__vdso_clock_getres": (266, True), "__vdso_clock_getres_time64": (406, True),
    "__vdso_getcpu": (318, False),
}


def vdso_function(offset: int, nr: int, vvar_distance: int | None, thunk: int | None = None,
                  vsyscall: int | None = None) -> bytes:
    """cdecl f(a, b, c): read the vDSO data page (when `vvar_distance`, the bytes from [vvar]'s
    start to the vDSO's) at an address relative to the function's own, found through the build's
    PC thunk at offset `thunk` (as the real function does; without one, `call 1f; pop`), then
    make system call `nr` with the arguments through __kernel_vsyscall at offset `vsyscall` (the
    real fallback's path; `int $0x80` itself without one); the result (or -errno) in %eax, as
    the real vDSO's fallback returns it."""
    code = b""
    if vvar_distance is not None:
        if thunk is not None:
            code += b"\xe8" + struct.pack("<i", thunk - (offset + 5))          # call thunk: %ecx = 1f
        else:
            code += b"\xe8\x00\x00\x00\x00\x59"                            # call 1f; 1: pop %ecx
        disp = -(vvar_distance + offset + 5) & 0xFFFFFFFF
        code += b"\x8b\x81" + struct.pack("<I", disp)                       # mov disp(%ecx),%eax
    code += (b"\x53" b"\x8b\x5c\x24\x08" b"\x8b\x4c\x24\x0c" b"\x8b\x54\x24\x10"   # push %ebx; args
             + b"\xb8" + struct.pack("<I", nr))
    if vsyscall is not None:
        at = offset + len(code) + 5
        code += b"\xe8" + struct.pack("<i", vsyscall - at)                    # call __kernel_vsyscall
    else:
        code += b"\xcd\x80"                                                  # int $0x80
    return code + b"\x5b\xc3"                                                # pop %ebx; ret


PC_THUNK = b"\x8b\x0c\x24\xc3"       # __x86.get_pc_thunk.cx: mov (%esp),%ecx; ret


def dynamic_tables(symbols: list[tuple[str, int]]) -> tuple[bytes, bytes]:
    """(.dynamic, .hash + .dynsym + .dynstr at HASH_OFFSET) exporting `symbols` (name, offset):
    one hash bucket whose chain holds every symbol."""
    n = len(symbols) + 1
    hash_ = struct.pack("<II", 1, n) + struct.pack("<I", n - 1) + struct.pack(f"<{n}I", 0, *range(n - 1))
    strtab = b"\0"
    syms = bytes(16)
    for name, off in symbols:
        syms += struct.pack("<IIIBBH", len(strtab), off, 16, STB_GLOBAL_FUNC, 0, 1)
        strtab += name.encode() + b"\0"
    symtab_at = HASH_OFFSET + len(hash_)
    strtab_at = symtab_at + len(syms)
    dyn = b"".join(struct.pack("<II", tag, val) for tag, val in (
        (DT_HASH, HASH_OFFSET), (DT_STRTAB, strtab_at), (DT_SYMTAB, symtab_at),
        (DT_STRSZ, len(strtab)), (DT_SYMENT, 16), (DT_NULL, 0)))
    return dyn, hash_ + syms + strtab


def vdso_image(size: int, vsyscall_offset: int, sigreturn_offset: int | None = None,
               rt_sigreturn_offset: int | None = None, functions: tuple = (),
               vvar_distance: int = 0, pc_thunks: tuple = ()) -> bytes:
    """`size` bytes (2 pages on 6.18) with the ELF header at 0 and __kernel_vsyscall; the
    sigreturn trampolines at the kernel version's offsets (default: 6.18's, 0x20 and 0x30 after
    __kernel_vsyscall); `functions` ((name, offset) of the build's measured vDSO symbols),
    `vvar_distance` the bytes from [vvar]'s start to the vDSO's, `pc_thunks` ((name, offset) of
    the PC thunk each function calls: the thunk is placed there)."""
    sig = sigreturn_offset if sigreturn_offset is not None else vsyscall_offset + SIGRETURN_DELTA
    rt = rt_sigreturn_offset if rt_sigreturn_offset is not None else vsyscall_offset + RT_SIGRETURN_DELTA
    exported = [(n, o) for n, o in functions if n in VDSO_SYSCALLS]
    dyn, tables = dynamic_tables(exported) if exported else (bytes(8), b"")
    ehsize, phentsize, phnum = 52, 32, 2
    ident = b"\x7fELF" + bytes([1, 1, 1, 0]) + bytes(8)
    ehdr = ident + struct.pack("<HHIIIIIHHHHHH", 3, 3, 1, vsyscall_offset, ehsize, 0, 0, ehsize,
                               phentsize, phnum, 40, 0, 0)
    load = struct.pack("<IIIIIIII", PT_LOAD, 0, 0, 0, size, size, 5, 0x1000)
    dynamic = struct.pack("<IIIIIIII", PT_DYNAMIC, DYNAMIC_OFFSET, DYNAMIC_OFFSET, DYNAMIC_OFFSET,
                          len(dyn), len(dyn), 4, 4)
    img = bytearray(size)
    img[:ehsize] = ehdr
    img[ehsize:ehsize + 2 * phentsize] = load + dynamic
    img[DYNAMIC_OFFSET:DYNAMIC_OFFSET + len(dyn)] = dyn
    img[HASH_OFFSET:HASH_OFFSET + len(tables)] = tables
    img[vsyscall_offset:vsyscall_offset + 3] = b"\xcd\x80\xc3"      # int $0x80; ret
    # the signal return trampolines (arch/x86/entry/vdso/vdso32/sigreturn.S), the restorers the
    # kernel puts in a frame when the handler has no SA_RESTORER (glibc >= 2.35 on i386)
    img[sig:sig + 8] = b"\x58\xb8\x77\x00\x00\x00\xcd\x80"    # popl %eax; movl $119,%eax; int $0x80
    img[rt:rt + 7] = b"\xb8\xad\x00\x00\x00\xcd\x80"            # movl $173,%eax; int $0x80
    thunks = dict(pc_thunks)
    used = [(vsyscall_offset, vsyscall_offset + 3)]
    for t in set(thunks.values()):
        _place(img, t, PC_THUNK, used)
    for name, off in exported:
        nr, reads_vvar = VDSO_SYSCALLS[name]
        _place(img, off, vdso_function(off, nr, vvar_distance if reads_vvar else None,
                                       thunks.get(name), vsyscall_offset), used)
    return bytes(img)


def _place(img: bytearray, at: int, code: bytes, used: list[tuple[int, int]]) -> None:
    """Put `code` at offset `at`; measured offsets that would overlap elfvm's shorter code are a
    table error, reported rather than silently overwritten."""
    end = at + len(code)
    if end > len(img) or any(at < e and s < end for s, e in used):
        raise ValueError(f"vDSO code at {at:#x}..{end:#x} overlaps other code or the image's end")
    used.append((at, end))
    img[at:end] = code
