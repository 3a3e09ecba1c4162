"""System calls on time: a deterministic clock that advances 1 us per call."""

from __future__ import annotations

import struct

from elfvm.emu.uaccess import write_u32, write_user


def _now(k) -> int:
    k.clock_ns += 1000
    return k.clock_ns


def sys_clock_gettime(k, p, clk, tp):
    ns = _now(k)
    write_user(k, p, tp, struct.pack("<ii", ns // 10**9, ns % 10**9))
    return 0


def sys_clock_gettime64(k, p, clk, tp):
    ns = _now(k)
    write_user(k, p, tp, struct.pack("<qq", ns // 10**9, ns % 10**9))
    return 0


def sys_gettimeofday(k, p, tv, tz):
    ns = _now(k)
    if tv:
        write_user(k, p, tv, struct.pack("<ii", ns // 10**9, (ns % 10**9) // 1000))
    return 0


def sys_time(k, p, tloc):
    t = _now(k) // 10**9
    if tloc:
        write_u32(k, p, tloc, t)
    return t


def sys_nanosleep(k, p, req, rem):
    return 0
