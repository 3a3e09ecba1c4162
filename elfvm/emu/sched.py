"""The scheduler: switch between processes (registers, TLS, CPU TLB) and run them all to the end."""

from __future__ import annotations

from unicorn import UcError

from elfvm.emu.cpu import UNTIL
from elfvm.emu.exit import do_exit
from elfvm.emu.memory import OutOfFrames
from elfvm.emu.pages import apply_deferred, flush_cpu_tlb
from elfvm.emu.sigstate import SIGKILL, SIGSEGV
from elfvm.emu.sys_time import advance_clock
from elfvm.emu.task import Death, Process

QUANTUM = 200_000                 # instructions per turn when several tasks can run


def switch_to(k, p: Process) -> None:
    if k.current is not p or p.context is not None:
        if p.context is not None:
            k.uc.context_restore(p.context)
        if p.set_eax is not None:
            k.cpu.set_return(p.set_eax)
            p.set_eax = None
        flush_cpu_tlb(k)
        load_tls(k, p)
    k.current = p


def load_tls(k, p: Process) -> None:
    """switch_to() -> load_TLS(): the TLS descriptors of the next task into the GDT."""
    s = k.segments
    for i in range(s.tls_min, s.tls_min + s.tls_entries):
        k.frames.write(k.gdt_frame + i * 8, p.tls.get(i, bytes(8)))


def runnable(k) -> list[Process]:
    return [q for q in k.procs.values() if q.state == "runnable"]


def time_slice(k, cands: list[Process]) -> tuple[bool, int]:
    """(sliced, the instruction budget of this turn; 0: no limit). Round-robin by a quantum
    of instructions when tasks share memory (threads may spin on it) or a timer is armed (the
    clock follows the instructions); processes that only meet in system calls switch when
    they block. --max-instructions caps every turn."""
    budget = 0
    if k.max_instructions:
        budget = max(k.max_instructions - (k.cpu.instructions or 0), 1)
    sliced = bool(k.timers) or len({id(q.pt) for q in cands}) < len(cands)
    if sliced:
        budget = min(budget or QUANTUM, QUANTUM)
    return sliced, budget


def tick(k, before: int) -> None:
    """After a sliced turn: the clock moves 1 ns per instruction run (a 1 GHz CPU) and the
    timers due fire."""
    k.clock_ns += max((k.cpu.instructions or before + QUANTUM) - before, 0)
    if k.timers:
        from elfvm.emu.sys_timer import fire_timers     # imported by the first timer armed

        fire_timers(k)


def run(k) -> None:
    """Run every task until all have exited: round-robin at blocking points, and by quanta
    of instructions when tasks share memory or a timer is armed."""
    first = k.current
    begin = getattr(first, "start_at", None)
    order_hint = first.pid
    resume = None
    while True:
        cands = runnable(k)
        if not cands and advance_clock(k):     # everyone sleeps: time jumps to the next deadline
            continue
        if not cands:
            blocked = [q for q in k.procs.values() if q.state == "blocked"]
            for q in blocked:              # nothing can wake them: a deadlock
                do_exit(k, q, death=Death(SIGKILL, reason="deadlock: every process is blocked"))
            break
        nxt = min(cands, key=lambda q: (q.pid <= order_hint, q.pid)) if begin is None else first
        if resume is not None and resume in cands:
            nxt = resume
        resume = None
        prev = k.current
        if prev is not None and prev is not nxt and prev.state == "runnable":
            prev.nivcsw += 1                    # preempted at the end of its quantum
        switch_to(k, nxt)
        if begin is None and nxt.sig_pending and not nxt.sig_restart:
            from elfvm.emu.signals import do_signal     # imported by the first signal sent

            do_signal(k, nxt)                   # sent while it was switched away
            if nxt.state in ("zombie", "reaped"):
                continue
        start = begin if begin is not None else k.cpu.eip
        begin = None
        try:
            resume = nxt if run_slice(k, nxt, start, cands) else None
        except KeyboardInterrupt:
            k.cpu.settle(faulted=False)
            k.stop_reason = "interrupted"
            nxt.context = k.uc.context_save()
            return
        if nxt.state not in ("zombie", "reaped"):
            nxt.context = k.uc.context_save()
        if k.deferred:                  # stopped to evict outside a memory hook
            apply_deferred(k)
            resume = nxt
        if resume is nxt and nxt.state != "runnable":
            resume = None
        order_hint = nxt.pid
        if k.max_instructions and k.cpu.counted and \
                k.cpu.instructions >= k.max_instructions:
            k.stop_reason = "max-instructions"
            return
        if k.stop_reason:
            return


def run_slice(k, p: Process, start: int, cands: list[Process]) -> bool:
    """Run `p` from `start` until the CPU stops (a block, an exit, an eviction, the budget); a
    fault or CPU exception becomes its signal (the OOM killer's SIGKILL when RAM is full). True
    when a signal handler is to run at once."""
    k.pending_death = None
    sliced, budget = time_slice(k, cands)
    before = k.cpu.instructions or 0
    try:
        k.uc.emu_start(start, UNTIL, 0, budget)
        k.cpu.settle(faulted=k.pending_death is not None)
    except UcError as e:
        k.cpu.settle(faulted=True)
        if k.pending_death is None:
            k.pending_death = Death(SIGSEGV, None, None, f"emulation stopped: {e}", k.cpu.eip)
    except OutOfFrames as e:           # physical memory itself is full: the OOM killer
        k.cpu.settle(faulted=True)
        k.pending_death = None
        do_exit(k, p, death=Death(SIGKILL, reason=f"out of memory: {e}", eip=k.cpu.eip))
    handler = False
    if k.pending_death is not None:
        from elfvm.emu.signals import force_sig_fault   # imported by the first fault signal

        d, k.pending_death = k.pending_death, None
        handler = force_sig_fault(k, p, d)     # True: the handler runs now
        if not handler:
            do_exit(k, p, death=d)
    if sliced:
        tick(k, before)
    return handler
