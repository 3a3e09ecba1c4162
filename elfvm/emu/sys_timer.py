"""System calls on timers: itimers, alarm() and POSIX timers, on the run's virtual clock
(elfvm.emu.sys_time's clock: a timer's deadline is a clock_ns value).

An armed timer lives in KernelState.timers until it is deleted; the clock fires the ones due
(`fire_timers`) at each system call and when every task sleeps (sys_time.advance_clock). The
system calls come through the dispatch table's later() handlers: a run that never arms a timer
never imports this module.
"""


import errno
import struct
from dataclasses import dataclass

from elfvm.emu.exit import send_signal
from elfvm.emu.sigstate import SIGALRM, SigInfo
from elfvm.emu.task import s32
from elfvm.emu.uaccess import read_user, write_u32, write_user
from elfvm.emu.uapi import CLOCK_REALTIME, NSEC, REALTIME_CLOCKS, TIMER_ABSTIME

ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF = 0, 1, 2
SI_TIMER, SI_KERNEL = -2, 0x80
SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD_ID = 0, 1, 4


@dataclass(repr=False, eq=False)
class Timer:
    """An armed timer: an itimer (`which` 0-2) or a POSIX timer (`tid`); times in the
    clock_ns domain."""

    pid: int
    sig: int
    deadline: int | None
    interval: int = 0
    which: int | None = None
    tid: int | None = None
    notify: int = SIGEV_SIGNAL
    value: int = 0                       # sigev_value (si_value of SI_TIMER)
    clock: int = CLOCK_REALTIME
    overrun: int = 0


def fire_timers(k) -> None:
    """Every armed timer whose deadline has passed sends its signal (an itimer: SI_KERNEL;
    a POSIX timer: SI_TIMER with its id and value); periodic ones are re-armed, the missed
    periods counted as overruns."""
    for t in list(k.timers):
        if t.deadline is None or t.deadline > k.clock_ns:
            continue
        q = k.procs.get(t.pid)
        if q is None or q.state in ("zombie", "reaped"):
            k.timers.remove(t)
            continue
        if t.notify != SIGEV_NONE:
            timer = (t.tid, t.overrun, t.value) if t.tid is not None else None
            send_signal(k, q, t.sig, SigInfo(t.sig, SI_KERNEL if t.tid is None else SI_TIMER,
                                             timer=timer))
        if t.interval:
            missed = (k.clock_ns - t.deadline) // t.interval
            t.overrun = missed
            t.deadline += (missed + 1) * t.interval
        else:
            t.deadline = None


def _itimer(k, p, which: int) -> Timer | None:
    return next((t for t in k.timers if t.pid == p.group and t.which == which), None)


def _itimer_value(k, t: Timer | None) -> tuple[int, int]:
    if t is None or t.deadline is None:
        return 0, t.interval if t is not None else 0
    return max(t.deadline - k.clock_ns, 1000), t.interval


def _set_itimer(k, p, which: int, value: int, interval: int) -> tuple[int, int]:
    """do_setitimer(): arm (value > 0) or disarm the process's timer; returns the old one."""
    old = _itimer(k, p, which)
    before = _itimer_value(k, old)
    if old is not None:
        k.timers.remove(old)
    if value:
        sig = {ITIMER_REAL: SIGALRM, ITIMER_VIRTUAL: 26, ITIMER_PROF: 27}[which]
        k.timers.append(Timer(p.group, sig, k.clock_ns + value, interval, which=which))
    return before


def sys_setitimer(k, p, which, new, old):
    if which not in (ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF):
        return -errno.EINVAL
    if new:
        isec, iusec, vsec, vusec = struct.unpack("<iiii", read_user(k, p, new, 16))
        if not (0 <= iusec < 10**6 and 0 <= vusec < 10**6) or isec < 0 or vsec < 0:
            return -errno.EINVAL
        val, ival = _set_itimer(k, p, which, vsec * NSEC + vusec * 1000, isec * NSEC + iusec * 1000)
    else:
        val, ival = _itimer_value(k, _itimer(k, p, which))
    if old:
        write_user(k, p, old, struct.pack("<iiii", ival // NSEC, ival % NSEC // 1000,
                                           val // NSEC, val % NSEC // 1000))
    return 0


def sys_getitimer(k, p, which, cur):
    if which not in (ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF):
        return -errno.EINVAL
    val, ival = _itimer_value(k, _itimer(k, p, which))
    write_user(k, p, cur, struct.pack("<iiii", ival // NSEC, ival % NSEC // 1000,
                                       val // NSEC, val % NSEC // 1000))
    return 0


def sys_alarm(k, p, seconds):
    """alarm(): ITIMER_REAL without interval; returns the seconds left of the old one,
    rounded to the nearest second and at least 1 when one was armed (alarm_setitimer)."""
    val, _ = _set_itimer(k, p, ITIMER_REAL, seconds * NSEC, 0)
    if not val:
        return 0
    secs, rest = divmod(val, NSEC)
    return max(secs + (1 if rest >= NSEC // 2 else 0), 1)


def sys_timer_create(k, p, clk, sevp, timerid):
    if s32(clk) not in (*REALTIME_CLOCKS, 1, 4, 7, 2, 3):
        return -errno.EINVAL
    sig, notify, value = SIGALRM, SIGEV_SIGNAL, 0
    if sevp:
        value, sig, notify = struct.unpack("<Iii", read_user(k, p, sevp, 12))
        if notify not in (SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD_ID) or \
                notify != SIGEV_NONE and not 1 <= sig <= 64:
            return -errno.EINVAL
    used = {t.tid for t in k.timers if t.pid == p.group and t.tid is not None}
    tid = next(i for i in range(len(used) + 1) if i not in used)
    k.timers.append(Timer(p.group, sig, None, tid=tid, notify=notify, value=value, clock=s32(clk)))
    write_u32(k, p, timerid, tid)
    return 0


def _posix_timer(k, p, tid: int) -> Timer:
    t = next((t for t in k.timers if t.pid == p.group and t.tid == s32(tid)), None)
    if t is None:
        raise OSError(errno.EINVAL, "")
    return t


def _timer_spec(k, t: Timer) -> tuple[int, int]:
    return (max(t.deadline - k.clock_ns, 1) if t.deadline is not None else 0), t.interval


def _timer_settime(k, p, tid, flags, new, old, time64: bool):
    t = _posix_timer(k, p, tid)
    fmt, size = ("<qqqq", 32) if time64 else ("<iiii", 16)
    isec, insec, vsec, vnsec = struct.unpack(fmt, read_user(k, p, new, size))
    if min(isec, vsec) < 0 or not (0 <= insec < NSEC and 0 <= vnsec < NSEC):
        return -errno.EINVAL
    if old:
        val, ival = _timer_spec(k, t)
        write_user(k, p, old, struct.pack(fmt, ival // NSEC, ival % NSEC, val // NSEC, val % NSEC))
    value, t.interval = vsec * NSEC + vnsec, isec * NSEC + insec
    if not value:
        t.deadline = None
    elif flags & TIMER_ABSTIME:               # monotonic clocks count from boot
        t.deadline = value if t.clock in REALTIME_CLOCKS else value + k.boot_ns
    else:
        t.deadline = k.clock_ns + value
    return 0


def sys_timer_settime(k, p, tid, flags, new, old):
    return _timer_settime(k, p, tid, flags, new, old, False)


def sys_timer_settime64(k, p, tid, flags, new, old):
    return _timer_settime(k, p, tid, flags, new, old, True)


def sys_timer_gettime(k, p, tid, cur):
    val, ival = _timer_spec(k, _posix_timer(k, p, tid))
    write_user(k, p, cur, struct.pack("<iiii", ival // NSEC, ival % NSEC, val // NSEC, val % NSEC))
    return 0


def sys_timer_gettime64(k, p, tid, cur):
    val, ival = _timer_spec(k, _posix_timer(k, p, tid))
    write_user(k, p, cur, struct.pack("<qqqq", ival // NSEC, ival % NSEC, val // NSEC, val % NSEC))
    return 0


def sys_timer_getoverrun(k, p, tid):
    return _posix_timer(k, p, tid).overrun


def sys_timer_delete(k, p, tid):
    k.timers.remove(_posix_timer(k, p, tid))
    return 0
