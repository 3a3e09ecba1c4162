"""copy_from_user / copy_to_user: the kernel's accesses to user memory during a system call.

They fault pages in exactly as the CPU's accesses do (counted as kernel faults), are one
reference of the paging model each, and raise EFault where the kernel's exception table would
return -EFAULT.
"""

from __future__ import annotations

from elfvm.emu.fault import do_user_addr_fault
from elfvm.emu.memory import PAGE
from elfvm.emu.pages import follow_pte, reference
from elfvm.emu.task import EFault, Process


def user_page(k, p: Process, addr: int, write: bool, size: int = 1) -> int:
    """copy_to_user / copy_from_user on one page: faults like the CPU's (counted with
    `kernel`), one reference (a lackey record when tracing)."""
    vpn = addr >> 12
    pte = follow_pte(p, vpn)
    if pte is None or (write and not pte.write):
        d = do_user_addr_fault(k, p, addr, "w" if write else "r", k.cpu.eip, kernel=True)
        if d is not None:
            raise EFault(d.reason)
        pte = follow_pte(p, vpn)
    if k.trace is not None:
        k.trace.record(p.pid, "S" if write else "L", addr, size)
    reference(k, p, vpn, write, False, pte.frame)
    return pte.frame


def user_span(k, p: Process, addr: int, n: int, write: bool) -> int:
    """How many bytes from addr a copy of n bytes can reach before the first address
    without a VMA that allows the access (0: -EFAULT at once). (access_ok() itself never
    fails for a compat task: its limit is the 64-bit TASK_SIZE_MAX.) Checked before the host
    reads anything, so a hostile length costs no host memory."""
    from elfvm.mm.vma import PROT_READ, PROT_WRITE

    if n <= 0:
        return 0
    a, end = addr, addr + n
    need = PROT_WRITE if write else PROT_READ
    while a < end:
        vma = p.mm.vma_at(a)
        if vma is None or not vma.prot & need:
            break
        a = vma.end
    return min(a, end) - addr


def read_user(k, p: Process, addr: int, n: int) -> bytes:
    out = bytearray()
    while n > 0:
        take = min(n, PAGE - (addr & (PAGE - 1)))
        fr = user_page(k, p, addr, False, take)
        out += k.frames.read(fr + (addr & (PAGE - 1)), take)
        addr += take
        n -= take
    return bytes(out)


def write_user(k, p: Process, addr: int, data: bytes) -> None:
    pos = 0
    while pos < len(data):
        take = min(len(data) - pos, PAGE - (addr & (PAGE - 1)))
        fr = user_page(k, p, addr, True, take)
        k.frames.write(fr + (addr & (PAGE - 1)), data[pos:pos + take])
        addr += take
        pos += take


def read_cstr(k, p: Process, addr: int, limit: int = 4096) -> bytes:
    out = bytearray()
    while len(out) < limit:
        take = PAGE - (addr & (PAGE - 1))
        chunk = read_user(k, p, addr, take)
        i = chunk.find(b"\0")
        if i >= 0:
            out += chunk[:i]
            return bytes(out)
        out += chunk
        addr += take
    raise EFault("string too long")


def read_u32(k, p: Process, addr: int) -> int:
    return int.from_bytes(read_user(k, p, addr, 4), "little")


def write_u32(k, p: Process, addr: int, v: int) -> None:
    write_user(k, p, addr, (v & 0xFFFFFFFF).to_bytes(4, "little"))
