"""The CPU's entries into the emulated kernel: TLB fills (UC_HOOK_TLB_FILL), int $0x80 and CPU
exceptions (UC_HOOK_INTR), and in exact mode every instruction and data access.

Two ways to see references:
  * default: page-granular, at Unicorn's TLB fills and the kernel's own copies to/from user
    memory. A fill is one reference to the model, so replacement recency is per fill and the
    model's TLB figures mean nothing (the report leaves them out);
  * exact (--exact-tlb, --emit-trace): UC_HOOK_CODE + UC_HOOK_MEM_READ|WRITE, every instruction
    fetch and data access is a reference (the `lackey` records), the model's TLB is exact.
"""

from __future__ import annotations

from functools import partial

from unicorn import UC_MEM_FETCH, UC_MEM_WRITE
from unicorn.x86_const import UC_X86_REG_CS as _CS
from unicorn.x86_const import UC_X86_REG_EIP as _EIP

from elfvm.emu.cpu import GDT_LINEAR, Cpu
from elfvm.emu.fault import do_user_addr_fault
from elfvm.emu.memory import PAGE
from elfvm.emu.pages import flush_cpu_tlb, follow_pte, reference
from elfvm.emu.sigstate import SIGBUS, SIGFPE, SIGILL, SIGSEGV, SIGTRAP
from elfvm.emu.syscalls import dispatch
from elfvm.emu.task import Death, Process
from elfvm.emu.x86insn import MAX_INSN, rmw_destination
from elfvm.mmu import entries as E


def _access_of(mem_type: int) -> str:
    return "w" if mem_type == UC_MEM_WRITE else "x" if mem_type == UC_MEM_FETCH else "r"


# Cpu.perms(write, exec) by (write << 1) | exec: one index per fill, not a call
_PERMS = tuple(Cpu.perms(bool(i & 2), bool(i & 1)) for i in range(4))


def tlb_fill(k, vaddr: int, mem_type: int, entry) -> bool:
    """The CPU's TLB misses `vaddr`: walk (or fault) and hand it the translation. The
    default mode makes this fill one reference of the model; to see the first write to a
    page (its dirty bit) a read fill gets a translation without write permission.
    Every fill of a program passes here (~50,000 for a large one): the common case, a user
    page, is tested first and its access named without a call."""
    kp = k.kernel_pages.get(vaddr)
    if (kp is not None or k.probe_page is not None) and \
            (done := _special_fill(k, vaddr, mem_type, entry, kp)) is not None:
        return done
    p = k.current
    access = "w" if mem_type == UC_MEM_WRITE else "x" if mem_type == UC_MEM_FETCH else "r"
    pt = p.pt
    # the hardware walk of the process's page tables (translate's walker, from CR3)
    frame, _level, _user, writable, nx = pt.walk_fast(vaddr)
    if frame < 0 or (access == "w" and not writable) or (access == "x" and nx):
        eip = k.cpu.eip
        if frame < 0 and access == "r" and rmw_destination(insn_bytes(k, p, eip)):
            access = "w"         # the CPU's #PF error code: a read-modify-write is a write
        d = do_user_addr_fault(k, p, vaddr, access, eip)
        if d is not None:
            k.pending_death = d
            return False
        frame, _level, _user, writable, nx = pt.walk_fast(vaddr)
    k.tlb_fills += 1
    vpn = vaddr >> 12
    if p.old_ptes and vpn in p.old_ptes:          # the walk sets the accessed bit
        p.old_ptes.discard(vpn)
        pt.write_pte(vaddr, pt.read_pte(vaddr) | E.A)
    if k.exact:
        _exact_fill(k, p, vpn, frame, writable)
        write = writable
    else:
        write = writable and access == "w"
        reference(k, p, vpn, access == "w", access == "x", frame)
    entry.paddr = frame
    entry.perms = _PERMS[(2 if write else 0) | (0 if nx else 1)]
    return True


def _special_fill(k, vaddr: int, mem_type: int, entry, kp) -> bool | None:
    """A fill of signals.fault_address's probe page or of a kernel page (GDT, the stub);
    None: neither, a user page."""
    if k.probe_page is not None and vaddr >> 12 == k.probe_page[0]:
        entry.paddr, entry.perms = k.probe_page[1], 7   # signals.fault_address's probe
        return True
    if kp is None:
        return None
    uc = k.uc
    if uc.reg_read(_CS) & 3 == 3 and mem_type != UC_MEM_FETCH and \
            (vaddr != GDT_LINEAR or mem_type == UC_MEM_WRITE):
        # a user data access above TASK_SIZE (a push with %esp = 0...): no VMA,
        # SEGV_MAPERR; the CPU's own descriptor loads read the GDT page from user mode,
        # and Unicorn itself looks up the stub page (its stop address lies there)
        k.pending_death = Death(SIGSEGV, vaddr, _access_of(mem_type), "user access to a "
                                "kernel address (no VMA)", uc.reg_read(_EIP), code=1,
                                trapno=14, err=4 | (2 if mem_type == UC_MEM_WRITE else 0))
        return False
    entry.paddr, entry.perms = kp
    return True


def _exact_fill(k, p: Process, vpn: int, frame: int, writable: bool) -> None:
    other = k.phys_to_vpn.get(frame)
    if other is not None and other != vpn:       # one frame, two pages (zero page...):
        flush_cpu_tlb(k)                         # the hooks' physical addresses must
    k.phys_to_vpn[frame] = vpn                   # name one page
    k.cpu_tlb[vpn] = writable
    if k.fast is not None:                       # the native hooks: the same map; the
        k.fast.phys(frame, vpn)                  # page's next reference is Python's
        k.fast.refill(p.mi, p.mm.task_size, vpn)


def insn_bytes(k, p: Process, eip: int) -> bytes:
    """The bytes of the instruction at `eip` (up to 15) from the pages the CPU fetched it
    from; shorter when it runs into a page that is not present (Unicorn translated it from
    pages present then: a page evicted since gives fewer bytes, never a fault)."""
    out = b""
    addr, end = eip, eip + MAX_INSN
    while addr < end:
        frame = p.pt.walk_fast(addr)[0]
        if frame < 0:
            break
        n = min(end, (addr | (PAGE - 1)) + 1) - addr
        out += k.frames.read(frame + (addr & (PAGE - 1)), n)
        addr += n
    return out


def hook_code(k, uc, addr: int, size: int, _data) -> None:
    """Every instruction (lackey's `I addr,size`): a fetch reference of each page."""
    p = k.current
    if addr >= p.mm.task_size or k.probe_page is not None:   # iret stub; a signal probe
        return
    exact_ref(k, p, "I", addr, size)


def hook_mem(k, uc, mem_type: int, paddr: int, size: int, _value, _data) -> None:
    """Every data access. Unicorn reports the physical address (its TLB is virtual, filled
    by elfvm), so the page comes back from the frame -> page map of the current fills."""
    vpn = k.phys_to_vpn.get(paddr & ~(PAGE - 1))
    if vpn is None or k.probe_page is not None:                                  # GDT, kernel stack: not the program's
        return
    if k.fast is not None:
        k.fast.phys(paddr, vpn)
    k.in_mem_hook = True
    try:
        exact_ref(k, k.current, "S" if mem_type == UC_MEM_WRITE else "L",
                        (vpn << 12) | (paddr & (PAGE - 1)), size)
    finally:
        k.in_mem_hook = False


def exact_ref(k, p: Process, rec: str, addr: int, size: int) -> None:
    if k.trace is not None:
        k.trace.record(p.pid, rec, addr, size)
    write, instr = rec == "S", rec == "I"
    last = (addr + max(size, 1) - 1) >> 12
    for vpn in range(addr >> 12, last + 1):
        hit = k.cpu_tlb.get(vpn)                     # in the CPU's TLB: no walk needed
        if hit is None or (write and not hit):
            pte = follow_pte(p, vpn)
            if pte is None or (write and not pte.write):
                # the second page of a split access (Unicorn fills it after this hook), or
                # code that kept running from a page just evicted: fault it in now, as the CPU would
                a = max(addr, vpn << 12)
                d = do_user_addr_fault(k, p, a, "w" if write else "x" if instr else "r", k.cpu.eip)
                if d is not None:
                    k.pending_death = d
                    k.uc.emu_stop()
                    return
        reference(k, p, vpn, write, instr)
        if k.fast is not None:
            allow_fast(k, p, vpn)


def allow_fast(k, p: Process, vpn: int) -> None:
    """After a reference Python handled: the page's next references can go straight to the
    batch (elfvm.emu.exactrefs) while the CPU's TLB holds it, no fault kind waits for it and
    no eviction of it is deferred; anything that changes that forgets the fast pages."""
    writable = k.cpu_tlb.get(vpn)
    if writable is None or k.probe_page is not None or p is not k.current or \
            (p.mi, vpn) in k.deferred or (p.pid, vpn) in k.pending or k.pending_death is not None:
        return
    k.fast.allow(p.mi, p.mm.task_size, vpn, writable)


def interrupt(k, uc, intno: int, _data) -> None:
    p = k.current
    if intno == 0x80:
        dispatch(k, p)
        return
    sig = {0: SIGFPE, 6: SIGILL, 3: SIGTRAP, 1: SIGTRAP, 13: SIGSEGV, 12: SIGBUS, 17: SIGBUS}.get(intno, SIGSEGV)
    why = {0: "divide error (#DE)", 6: "invalid opcode (#UD)", 13: "general protection (#GP)",
           3: "breakpoint (int3)"}.get(intno, f"CPU exception {intno}")
    eip = uc.reg_read(_EIP)
    # si_code / si_addr as the trap handlers send them (traps.c): FPE_INTDIV and ILL_ILLOPN
    # at the faulting instruction, BUS_ADRALN for #AC, SI_KERNEL otherwise
    code, addr = {0: (1, eip), 6: (2, eip), 17: (1, 0)}.get(intno, (0x80, None))
    k.pending_death = Death(sig, addr, None, why, eip, code=code, trapno=intno)
    uc.emu_stop()


def io_insn(k, uc, *args) -> int:
    """in/out at CPL 3 with IOPL 0 and no I/O bitmap (the guest cannot get one: iopl and
    ioperm are not implemented): #GP, which the kernel sends as SIGSEGV with SI_KERNEL."""
    k.pending_death = Death(SIGSEGV, None, None, "general protection (#GP): in/out without "
                            "I/O privilege", uc.reg_read(_EIP), code=0x80, trapno=13)
    uc.emu_stop()
    return 0


def sysenter_insn(k, uc, _data) -> None:
    """sysenter from a 32-bit task under an x86-64 kernel: #UD on AMD (SYSENTER is invalid
    in compatibility mode), SIGILL ILL_ILLOPN at the instruction, as this machine's kernel
    does; on Intel the kernel would enter entry_SYSENTER_compat (a system call)."""
    k.pending_death = Death(SIGILL, uc.reg_read(_EIP), None, "invalid opcode (#UD): sysenter in "
                            "compatibility mode", uc.reg_read(_EIP), code=2, trapno=6)
    uc.emu_stop()


def install_hooks(k) -> None:
    """The CPU's ways into this kernel: TLB misses, interrupts (int $0x80, exceptions), the
    privileged instructions Unicorn would otherwise run (in/out, sysenter) and, in exact mode,
    every instruction and data access."""
    k.cpu.install(partial(tlb_fill, k), partial(interrupt, k))
    k.cpu.install_traps(partial(io_insn, k), partial(sysenter_insn, k))
    if k.exact:
        code, mem = partial(hook_code, k), partial(hook_mem, k)
        if k.trace is None:                          # --emit-trace: Python writes every record
            from elfvm.emu.exactrefs import install

            k.fast = install(k.uc, k.batch, code, mem)
        if k.fast is None:
            k.cpu.install_exact(code, mem)
