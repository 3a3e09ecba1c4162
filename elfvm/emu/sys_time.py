"""System calls on time: clocks and sleeps on the run's virtual clock (its timers: elfvm.emu.sys_timer).

The clock starts at the host's real time (or a fixed instant with `--clock`) and then moves
only with the run: 1 us per system call, 1 ns per instruction while a timer is armed (a 1 GHz
CPU), and straight to the next deadline when every task sleeps. So sleeps cost no host time,
a run with `--clock fixed` is reproducible, and SIGALRM arrives after the same work each run.
CLOCK_MONOTONIC and friends count from boot (1000 s before the run started).
"""


import errno
import struct

from elfvm.emu.task import Blocked, s32
from elfvm.emu.uaccess import read_user, write_u32, write_user
from elfvm.emu.uapi import NSEC, REALTIME_CLOCKS, TIMER_ABSTIME

SLEEPING = ("sleep",)                    # Process.futex_key of a task in a timed sleep


def now_ns(k) -> int:
    k.clock_ns += 1000
    return k.clock_ns


def clock_of(k, clk: int) -> int:
    """The clock clk now, in ns (realtime clocks: since the epoch; the others: since boot)."""
    ns = now_ns(k)
    return ns if s32(clk) in REALTIME_CLOCKS else ns - k.boot_ns


def _ts(k, p, addr: int, time64: bool) -> int:
    sec, nsec = struct.unpack("<qq" if time64 else "<ii", read_user(k, p, addr, 16 if time64 else 8))
    if sec < 0 or not 0 <= nsec < NSEC:
        raise OSError(errno.EINVAL, "")
    return sec * NSEC + nsec


def _put_ts(k, p, addr: int, ns: int, time64: bool) -> None:
    write_user(k, p, addr, struct.pack("<qq" if time64 else "<ii", ns // NSEC, ns % NSEC))


def sys_clock_gettime(k, p, clk, tp):
    _put_ts(k, p, tp, clock_of(k, clk), False)
    return 0


def sys_clock_gettime64(k, p, clk, tp):
    _put_ts(k, p, tp, clock_of(k, clk), True)
    return 0


def sys_clock_getres(k, p, clk, tp):
    if tp:
        _put_ts(k, p, tp, 1, False)
    return 0


def sys_clock_getres_time64(k, p, clk, tp):
    if tp:
        _put_ts(k, p, tp, 1, True)
    return 0


def sys_gettimeofday(k, p, tv, tz):
    ns = now_ns(k)
    if tv:
        write_user(k, p, tv, struct.pack("<ii", ns // NSEC, (ns % NSEC) // 1000))
    if tz:
        write_user(k, p, tz, bytes(8))
    return 0


def sys_time(k, p, tloc):
    t = now_ns(k) // NSEC
    if tloc:
        write_u32(k, p, tloc, t)
    return t


# ---------------------------------------------------------------- sleeping
def sleep_until(k, p, deadline: int, rem: int = 0, time64: bool = False) -> int:
    """A timed sleep (hrtimer_nanosleep): the task blocks until the clock reaches deadline;
    the call is re-executed when woken, and returns 0 once the deadline has passed. A signal
    interrupts it (-EINTR from the dispatcher); rem then gets what was left."""
    if p.futex_key != SLEEPING:
        p.futex_key, p.wake_at, p.timed_out = SLEEPING, deadline, False
    if k.clock_ns >= p.wake_at:
        p.futex_key, p.wake_at, p.timed_out = None, None, False
        return 0
    if rem:
        _put_ts(k, p, rem, p.wake_at - k.clock_ns, time64)
    raise Blocked()


def sys_nanosleep(k, p, req, rem):
    if p.futex_key == SLEEPING:
        return sleep_until(k, p, p.wake_at, rem)
    return sleep_until(k, p, now_ns(k) + _ts(k, p, req, False), rem)


def _clock_nanosleep(k, p, clk, flags, req, rem, time64: bool):
    if s32(clk) not in (*REALTIME_CLOCKS, 1, 4, 7):        # MONOTONIC, MONOTONIC_RAW, BOOTTIME
        return -errno.EINVAL
    if p.futex_key == SLEEPING:
        return sleep_until(k, p, p.wake_at, 0 if flags & TIMER_ABSTIME else rem, time64)
    t = _ts(k, p, req, time64)
    if flags & TIMER_ABSTIME:
        deadline = t if s32(clk) in REALTIME_CLOCKS else t + k.boot_ns
    else:
        deadline = now_ns(k) + t
    return sleep_until(k, p, deadline, 0 if flags & TIMER_ABSTIME else rem, time64)


def sys_clock_nanosleep(k, p, clk, flags, req, rem):
    return _clock_nanosleep(k, p, clk, flags, req, rem, False)


def sys_clock_nanosleep_time64(k, p, clk, flags, req, rem):
    return _clock_nanosleep(k, p, clk, flags, req, rem, True)


# ---------------------------------------------------------------- the clock's next stop
def next_deadline(k) -> int | None:
    """The earliest time anything waits for: a timer, or a task's timed sleep."""
    times = [t.deadline for t in k.timers if t.deadline is not None]
    times += [q.wake_at for q in k.procs.values() if q.state == "blocked" and q.wake_at is not None]
    return min(times) if times else None


def advance_clock(k) -> bool:
    """Every task sleeps: move the clock to the next deadline, fire the timers due and wake
    the sleepers whose time has come. False when nothing waits for a time (a deadlock)."""
    t = next_deadline(k)
    if t is None:
        return False
    k.clock_ns = max(k.clock_ns, t)
    if k.timers:
        from elfvm.emu.sys_timer import fire_timers     # imported by the first timer armed

        fire_timers(k)
    for q in k.procs.values():
        if q.state == "blocked" and q.wake_at is not None and q.wake_at <= k.clock_ns:
            q.timed_out, q.state = True, "runnable"
    return True
