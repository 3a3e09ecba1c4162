"""The CPU: Unicorn in i386 protected mode, with elfvm as its MMU.

Unicorn runs with its *virtual* TLB (UC_TLB_VIRTUAL): it has no page tables of its own and asks
elfvm (UC_HOOK_TLB_FILL) for every linear page that is not in its TLB. elfvm answers from the
process's page table, or resolves a page fault first (mm/memory.c's handlers, elfvm.emu.fault),
or refuses (SIGSEGV/SIGBUS: emulation stops). Unicorn's memory is physical RAM at physical 0, so
frames are shared between processes exactly as the kernel shares them (COW, page cache, shm).

Segmentation is real: a GDT with the Linux user segments (x86-64 kernel: __USER32_CS 0x23,
__USER_DS 0x2b, TLS entries 12-14; native i386: 0x73, 0x7b, TLS 6-8) sits in a kernel page; the
first entry to user mode is an `iret` from a small kernel stub (CPL 0 -> 3), as the kernel
returns to a new program; set_thread_area writes the TLS descriptor that glibc loads into %gs.

`int 0x80` arrives as UC_HOOK_INTR 0x80; other exceptions (#UD, #GP, #DE...) become signals.
Instructions are counted by a native (numba cfunc) UC_HOOK_CODE callback when numba is
installed; without it the count is unknown and --max-instructions uses Unicorn's own counter.
"""

from __future__ import annotations

import ctypes
import struct

from unicorn import (UC_ARCH_X86, UC_HOOK_BLOCK, UC_HOOK_CODE, UC_HOOK_INTR, UC_HOOK_MEM_READ, UC_HOOK_MEM_WRITE,
                     UC_HOOK_TLB_FILL, UC_MODE_32, Uc, UcError)
from unicorn import UC_PROT_EXEC, UC_PROT_READ, UC_PROT_WRITE, UC_TLB_VIRTUAL
from unicorn.unicorn_const import UC_CTL_IO_WRITE, UC_CTL_TLB_FLUSH
from unicorn.x86_const import (
    UC_X86_REG_DS, UC_X86_REG_EAX, UC_X86_REG_EBP, UC_X86_REG_EBX, UC_X86_REG_ECX, UC_X86_REG_EDI,
    UC_X86_REG_EDX, UC_X86_REG_EIP, UC_X86_REG_ES, UC_X86_REG_ESI, UC_X86_REG_ESP, UC_X86_REG_GDTR,
    UC_X86_REG_SS,
)

GDT_LINEAR = 0xFFFFE000          # above TASK_SIZE: kernel pages
STUB_LINEAR = 0xFFFFF000
KSTACK_TOP = 0xFFFFF800
UNTIL = 0xFFFFFFF0               # never reached: emulation stops from hooks
GDT_ENTRIES = 32

# iret stub: mov ax,0x2b; mov ds,ax; mov es,ax; xor eax,eax; mov fs,ax; mov gs,ax; iret
# (the data selector byte is patched per profile)
_STUB = bytes.fromhex("66b82b00" "8ed8" "8ec0" "31c0" "8ee0" "8ee8" "cf")
STUB_INSTRUCTIONS = 7            # executed once at CPL 0 before the first user instruction
KERNEL_DS = 0x18                 # GDT entry 3, DPL 0: the stub's stack segment


def segment_descriptor(base: int, limit: int, type_: int, *, dpl: int = 3, present: bool = True,
                       db: bool = True, granularity: bool = True, avl: bool = False) -> bytes:
    """An 8-byte code/data segment descriptor (Intel SDM vol. 3A, 3.4.5)."""
    lo = (limit & 0xFFFF) | ((base & 0xFFFF) << 16)
    hi = (((base >> 16) & 0xFF) | (type_ << 8) | (1 << 12) | (dpl << 13) | (int(present) << 15)
          | (limit & 0xF0000) | (int(avl) << 20) | (int(db) << 22) | (int(granularity) << 23)
          | (base & 0xFF000000))
    return struct.pack("<II", lo, hi)


def user_desc_to_descriptor(base: int, limit: int, flags: int) -> bytes:
    """arch/x86/kernel/tls.c fill_ldt(): struct user_desc -> descriptor (with the A bit set)."""
    seg_32bit = flags & 1
    contents = (flags >> 1) & 3
    read_exec_only = (flags >> 3) & 1
    limit_in_pages = (flags >> 4) & 1
    seg_not_present = (flags >> 5) & 1
    useable = (flags >> 6) & 1
    type_ = ((read_exec_only ^ 1) << 1) | (contents << 2) | 1
    return segment_descriptor(base, limit, type_, present=not seg_not_present, db=bool(seg_32bit),
                              granularity=bool(limit_in_pages), avl=bool(useable))


class Segments:
    """The Linux GDT layout of a profile."""

    def __init__(self, native_i386: bool):
        if native_i386:
            self.user_cs, self.user_ds, self.tls_min = 0x73, 0x7B, 6
        else:
            self.user_cs, self.user_ds, self.tls_min = 0x23, 0x2B, 12
        self.tls_entries = 3

    def gdt(self) -> bytearray:
        g = bytearray(GDT_ENTRIES * 8)
        flat = 0xFFFFF
        g[3 * 8:4 * 8] = segment_descriptor(0, flat, 0x3, dpl=0)                    # stub stack
        g[(self.user_cs >> 3) * 8:(self.user_cs >> 3) * 8 + 8] = segment_descriptor(0, flat, 0xB)
        g[(self.user_ds >> 3) * 8:(self.user_ds >> 3) * 8 + 8] = segment_descriptor(0, flat, 0x3)
        return g


class TlbEntry(ctypes.Structure):
    """unicorn.h's struct uc_tlb_entry: the translation a UC_HOOK_TLB_FILL callback gives."""
    _fields_ = [("paddr", ctypes.c_uint64), ("perms", ctypes.c_uint32)]


# uc_cb_tlbevent_t: (uc, vaddr, type, struct uc_tlb_entry *, user_data) -> bool
_TLB_FILL_CFUNC = ctypes.CFUNCTYPE(ctypes.c_bool, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int,
                                   ctypes.c_void_p, ctypes.c_void_p)


class Cpu:
    """One Unicorn instance shared by all simulated processes (contexts are switched)."""

    def __init__(self, segments: Segments, cpu_model: int | None = None):
        self.uc = Uc(UC_ARCH_X86, UC_MODE_32)
        if cpu_model is not None:
            self.uc.ctl_set_cpu_model(cpu_model)
        self.uc.ctl_set_tlb_mode(UC_TLB_VIRTUAL)
        self.seg = segments
        self.blocks = None          # elfvm.emu.counter.BlockCounter: instructions by blocks
        self.count = None           # the fallback's numpy int64[1]: instructions
        self._count_hook = None
        self._fill_hook = None
        self.reg32 = self._register_reader()

    def _register_reader(self):
        """uc_reg_read of a general register straight through ctypes: Unicorn's reg_read picks
        the register's class and makes a buffer per call (~2 us; a system call reads 7, a
        page fault %eip). The same zeroed 64-bit buffer its wrapper reads into."""
        from unicorn.unicorn_py3 import unicorn as U

        fn, uch = U.uclib.uc_reg_read, self.uc._uch
        buf = ctypes.c_uint64()
        ref = ctypes.byref(buf)

        def read(reg: int) -> int:
            buf.value = 0
            err = fn(uch, reg, ref)
            if err:
                raise UcError(err, reg)
            return buf.value

        return read

    def install(self, tlb_fill, interrupt) -> None:
        """`tlb_fill(vaddr, mem_type, entry)` answers the CPU's TLB misses (a TlbEntry to fill
        in; True: filled), `interrupt(uc, intno, data)` its interrupts."""
        self._install_fill(tlb_fill)
        self.uc.hook_add(UC_HOOK_INTR, interrupt)
        self._install_counter()

    def _install_fill(self, fill) -> None:
        """UC_HOOK_TLB_FILL straight through ctypes: Unicorn's Python wrapper adds two calls
        and a struct object per fill (a large program makes ~50,000 fills). Its exception
        guard is kept as it is (unicorn's uccallback): an exception in the hook stops the CPU
        and emu_start raises it."""
        uc = self.uc
        views: dict[int, TlbEntry] = {}      # the caller's entry: one stack slot or a few

        def hook(_uch, vaddr, mem_type, entry, _data):
            try:
                e = views.get(entry)
                if e is None:
                    if len(views) > 64:      # never seen: bounded anyway
                        views.clear()
                    e = views[entry] = TlbEntry.from_address(entry)
                return fill(vaddr, mem_type, e)
            except BaseException as exc:
                if uc._hook_exception is None:
                    uc._hook_exception = exc
                uc.emu_stop()
                return False

        self._fill_hook = _TLB_FILL_CFUNC(hook)       # kept alive as long as the CPU
        self._add_native_hook(UC_HOOK_TLB_FILL, ctypes.cast(self._fill_hook, ctypes.c_void_p).value, 0)

    def _add_native_hook(self, kind: int, address: int, data: int):
        """uc_hook_add of a C (or ctypes) callback for every address: its handle."""
        from unicorn.unicorn_py3 import unicorn as U

        h = U.uc_hook_h()
        err = U.uclib.uc_hook_add(self.uc._uch, ctypes.byref(h), kind, ctypes.c_void_p(address),
                                  ctypes.c_void_p(data), ctypes.c_uint64(1), ctypes.c_uint64(0))
        if err:
            raise UcError(err)
        return h

    def _install_counter(self) -> None:
        """The native instruction counter (elfvm.emu.counter): per block, compiled C; else a
        numba cfunc per instruction; else none."""
        from elfvm.emu.counter import block_counter, numba_instruction_hook

        self.blocks = block_counter(self.uc)
        if self.blocks is not None:
            address, data, kind = self.blocks.callback, self.blocks.data, UC_HOOK_BLOCK
        else:
            cb = numba_instruction_hook()
            if cb is None:           # pragma: no cover
                return
            import numpy as np

            self.count = np.zeros(1, dtype=np.int64)
            address, data, kind = cb.address, self.count.ctypes.data, UC_HOOK_CODE
        self._count_hook = self._add_native_hook(kind, address, data)

    @property
    def uncounted_blocks(self) -> int:
        return self.blocks.head.errors if self.blocks is not None else 0

    @property
    def counted(self) -> bool:
        return self.blocks is not None or self.count is not None

    def save_count(self) -> tuple:
        if self.blocks is not None:
            h = self.blocks.head
            return (h.total, h.last_pc, h.last_size, h.last_icount)
        return (int(self.count[0]),) if self.count is not None else ()

    def restore_count(self, saved: tuple) -> None:
        if self.blocks is not None:
            h = self.blocks.head
            h.total, h.last_pc, h.last_size, h.last_icount = saved
        elif saved:
            self.count[0] = saved[0]

    def settle(self, faulted: bool) -> None:
        """After emu_start: take back what the block counter counted but did not run (the CPU
        left a block early: at a faulting instruction, or before the next one on a stop)."""
        if self.blocks is not None:
            self.blocks.settle(self.uc, self.eip, started=faulted)

    def install_traps(self, io, sysenter) -> None:
        """Callbacks for in/out and sysenter (Unicorn runs them without the CPL checks)."""
        from unicorn import UC_HOOK_INSN
        from unicorn.x86_const import UC_X86_INS_IN, UC_X86_INS_OUT, UC_X86_INS_SYSENTER

        self.uc.hook_add(UC_HOOK_INSN, io, None, 1, 0, UC_X86_INS_IN)
        self.uc.hook_add(UC_HOOK_INSN, io, None, 1, 0, UC_X86_INS_OUT)
        self.uc.hook_add(UC_HOOK_INSN, sysenter, None, 1, 0, UC_X86_INS_SYSENTER)

    def install_exact(self, code, mem) -> None:
        """Exact mode: a Python callback on every instruction and every data access."""
        self.uc.hook_add(UC_HOOK_CODE, code)
        self.uc.hook_add(UC_HOOK_MEM_READ | UC_HOOK_MEM_WRITE, mem)

    def _total(self) -> int | None:
        if self.blocks is not None:
            return self.blocks.total
        return int(self.count[0]) if self.count is not None else None

    @property
    def instructions(self) -> int | None:
        """Guest instructions so far (the kernel stub's first iret excluded), None uncounted."""
        t = self._total()
        return max(t - STUB_INSTRUCTIONS, 0) if t is not None else None

    def flush_tlb(self) -> None:
        self.uc.ctl(UC_CTL_TLB_FLUSH, UC_CTL_IO_WRITE)
        if self.blocks is not None:       # the code at a linear address may change now
            self.blocks.clear()

    def regs(self) -> dict[str, int]:
        r = self.reg32
        return {"eax": r(UC_X86_REG_EAX), "ebx": r(UC_X86_REG_EBX), "ecx": r(UC_X86_REG_ECX),
                "edx": r(UC_X86_REG_EDX), "esi": r(UC_X86_REG_ESI), "edi": r(UC_X86_REG_EDI),
                "ebp": r(UC_X86_REG_EBP), "esp": r(UC_X86_REG_ESP), "eip": r(UC_X86_REG_EIP)}

    def syscall_args(self) -> tuple[int, ...]:
        r = self.reg32
        return (r(UC_X86_REG_EAX), r(UC_X86_REG_EBX), r(UC_X86_REG_ECX), r(UC_X86_REG_EDX),
                r(UC_X86_REG_ESI), r(UC_X86_REG_EDI), r(UC_X86_REG_EBP))

    def set_return(self, value: int) -> None:
        self.uc.reg_write(UC_X86_REG_EAX, value & 0xFFFFFFFF)

    @property
    def eip(self) -> int:
        return self.reg32(UC_X86_REG_EIP)

    @eip.setter
    def eip(self, v: int) -> None:
        self.uc.reg_write(UC_X86_REG_EIP, v)

    def enter_user(self, gdt_frame: int, stub_frame: int, eip: int, esp: int) -> int:
        """Prepare the first return to user mode: GDT, the iret frame on the kernel stack.
        Returns the linear address to start emulating at (the stub)."""
        uc = self.uc
        ds = self.seg.user_ds
        stub = bytearray(_STUB)
        stub[2] = ds
        uc.mem_write(stub_frame, bytes(stub))
        frame = struct.pack("<IIIII", eip, self.seg.user_cs, 0x202, esp, ds)
        uc.mem_write(stub_frame + (KSTACK_TOP - STUB_LINEAR) - len(frame), frame)
        uc.reg_write(UC_X86_REG_GDTR, (0, GDT_LINEAR, GDT_ENTRIES * 8 - 1, 0))
        uc.reg_write(UC_X86_REG_SS, KERNEL_DS)
        for reg in (UC_X86_REG_EAX, UC_X86_REG_EBX, UC_X86_REG_ECX, UC_X86_REG_EDX, UC_X86_REG_ESI,
                    UC_X86_REG_EDI, UC_X86_REG_EBP):
            uc.reg_write(reg, 0)
        uc.reg_write(UC_X86_REG_ESP, KSTACK_TOP - len(frame))
        self.init_fpu()
        return STUB_LINEAR

    def init_fpu(self) -> None:
        """The FPU state a new program starts with (fpstate_init: what fninit leaves): x87
        control word 0x37f (exceptions masked, 64-bit precision, round to nearest), empty
        tags, MXCSR 0x1f80. Unicorn's reset state (control word 0) would compute in single
        precision."""
        from unicorn.x86_const import UC_X86_REG_FPCW, UC_X86_REG_FPSW, UC_X86_REG_FPTAG, UC_X86_REG_MXCSR

        self.uc.reg_write(UC_X86_REG_FPCW, 0x37F)
        self.uc.reg_write(UC_X86_REG_FPSW, 0)
        self.uc.reg_write(UC_X86_REG_FPTAG, 0xFFFF)
        self.uc.reg_write(UC_X86_REG_MXCSR, 0x1F80)

    @staticmethod
    def perms(write: bool, exec_: bool) -> int:
        return UC_PROT_READ | (UC_PROT_WRITE if write else 0) | (UC_PROT_EXEC if exec_ else 0)


__all__ = ["Cpu", "Segments", "segment_descriptor", "user_desc_to_descriptor", "GDT_LINEAR",
           "STUB_LINEAR", "UNTIL", "UC_X86_REG_DS", "UC_X86_REG_ES"]
