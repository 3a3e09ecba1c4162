"""The vDSO image the emulated kernel maps at [vdso]: a minimal ELF shared object.

It has what glibc's setup_vdso() reads (an ELF header, a PT_LOAD and a PT_DYNAMIC with only
DT_NULL, so no symbol is found and glibc uses real system calls for time functions) and
`__kernel_vsyscall` at the profile's AT_SYSINFO offset: `int $0x80; ret`, which enters elfvm's
syscall layer exactly like the real vDSO's entry (the real one uses sysenter/syscall when the CPU
has them; both end in the same system-call table). `__kernel_sigreturn` and
`__kernel_rt_sigreturn` follow it (not exported: the kernel uses them by offset as the return
address of a signal frame whose handler has no SA_RESTORER).
"""

from __future__ import annotations

import struct

PT_LOAD, PT_DYNAMIC = 1, 2
DYNAMIC_OFFSET = 0x100
SIGRETURN_DELTA = 0x20            # __kernel_sigreturn, after __kernel_vsyscall
RT_SIGRETURN_DELTA = 0x30         # __kernel_rt_sigreturn


def vdso_image(size: int, vsyscall_offset: int, sigreturn_offset: int | None = None,
               rt_sigreturn_offset: int | None = None) -> bytes:
    """`size` bytes (2 pages on 6.18) with the ELF header at 0 and __kernel_vsyscall; the
    sigreturn trampolines at the kernel version's offsets (default: 6.18's, 0x20 and 0x30 after
    __kernel_vsyscall)."""
    sig = sigreturn_offset if sigreturn_offset is not None else vsyscall_offset + SIGRETURN_DELTA
    rt = rt_sigreturn_offset if rt_sigreturn_offset is not None else vsyscall_offset + RT_SIGRETURN_DELTA
    ehsize, phentsize, phnum = 52, 32, 2
    ident = b"\x7fELF" + bytes([1, 1, 1, 0]) + bytes(8)
    ehdr = ident + struct.pack("<HHIIIIIHHHHHH", 3, 3, 1, vsyscall_offset, ehsize, 0, 0, ehsize,
                               phentsize, phnum, 40, 0, 0)
    load = struct.pack("<IIIIIIII", PT_LOAD, 0, 0, 0, size, size, 5, 0x1000)
    dyn = struct.pack("<IIIIIIII", PT_DYNAMIC, DYNAMIC_OFFSET, DYNAMIC_OFFSET, DYNAMIC_OFFSET, 8, 8, 4, 4)
    img = bytearray(size)
    img[:ehsize] = ehdr
    img[ehsize:ehsize + 2 * phentsize] = load + dyn
    img[DYNAMIC_OFFSET:DYNAMIC_OFFSET + 8] = bytes(8)              # DT_NULL
    img[vsyscall_offset:vsyscall_offset + 3] = b"\xcd\x80\xc3"      # int $0x80; ret
    # the signal return trampolines (arch/x86/entry/vdso/vdso32/sigreturn.S), the restorers the
    # kernel puts in a frame when the handler has no SA_RESTORER (glibc >= 2.35 on i386)
    img[sig:sig + 8] = b"\x58\xb8\x77\x00\x00\x00\xcd\x80"    # popl %eax; movl $119,%eax; int $0x80
    img[rt:rt + 7] = b"\xb8\xad\x00\x00\x00\xcd\x80"            # movl $173,%eax; int $0x80
    return bytes(img)
