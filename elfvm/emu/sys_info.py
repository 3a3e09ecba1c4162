"""System calls that describe the system: uname, sysinfo, getrandom."""

from __future__ import annotations

import os

from elfvm.emu.uaccess import write_user


def sys_uname(k, p, buf):
    fields = ["Linux", "elfvm", os.uname().release, "#1 SMP elfvm", "x86_64", "(none)"]
    write_user(k, p, buf, b"".join(os.fsencode(f)[:64].ljust(65, b"\0") for f in fields))
    return 0


def sys_getrandom(k, p, buf, n, flags):
    data = bytes(k.rng.getrandbits(8) for _ in range(n))
    write_user(k, p, buf, data)
    return n


def sys_sysinfo(k, p, buf):
    write_user(k, p, buf, bytes(64))
    return 0
