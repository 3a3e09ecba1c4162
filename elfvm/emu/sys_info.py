"""System calls that describe the system: uname, sysinfo, getrandom."""

from __future__ import annotations

import os

from elfvm.emu.uaccess import write_user


def sys_uname(k, p, buf):
    fields = ["Linux", "elfvm", os.uname().release, "#1 SMP elfvm", "x86_64", "(none)"]
    write_user(k, p, buf, b"".join(os.fsencode(f)[:64].ljust(65, b"\0") for f in fields))
    return 0


def sys_getrandom(k, p, buf, n, flags):
    """get_random_bytes_user(): at most MAX_RW_COUNT, written page by page; an address that
    faults ends the copy (-EFAULT when nothing was written, else the bytes so far). Host
    memory stays at one page whatever the guest asks."""
    import errno

    from elfvm.emu.memory import PAGE
    from elfvm.emu.task import EFault

    GRND_NONBLOCK, GRND_RANDOM, GRND_INSECURE = 1, 2, 4
    if flags & ~(GRND_NONBLOCK | GRND_RANDOM | GRND_INSECURE) or \
            flags & (GRND_INSECURE | GRND_RANDOM) == GRND_INSECURE | GRND_RANDOM:
        return -errno.EINVAL
    n = min(n, 0x7FFFF000)
    done = 0
    while done < n:
        take = min(n - done, PAGE - ((buf + done) & (PAGE - 1)))
        try:
            write_user(k, p, buf + done, k.rng.randbytes(take))
        except EFault:
            return done if done else -errno.EFAULT
        done += take
        if k.stop_reason:                  # Ctrl-C: stop between pages
            break
    return done


def sys_sysinfo_model(k, p, buf):
    """struct sysinfo (i386) from the model: totalram is --ram, freeram what the processes
    have not made resident; the model's swap has no size limit, so totalswap is the most the
    swap is one 32-bit address space and freeswap that minus the slots in use; mem_unit as
    do_sysinfo() chooses it."""
    import struct

    from elfvm.emu.memory import PAGE
    from elfvm.emu.sched import runnable
    from elfvm.emu.task_mmu import ram_figures

    r = ram_figures(k)
    # do_sysinfo(): mem_unit 1 when RAM + swap fit 32 bits, else figures in pages
    unit = 1 if r.total + r.swap_total < 1 << 32 else PAGE
    uptime = max((k.clock_ns - k.boot_ns) // 10**9, 0)
    fields = [v // unit & 0xFFFFFFFF for v in (r.total, r.free, 0, 0, r.swap_total, r.swap_free)]
    data = struct.pack("<i3I6IH2x2II", uptime, 0, 0, 0, *fields, min(len(runnable(k)), 0xFFFF),
                       0, 0, unit)
    write_user(k, p, buf, data.ljust(64, b"\0"))
    return 0


def sys_sched_getaffinity(k, p, pid, size, mask):
    """The CPUs the guest may run on: the host's affinity mask (the emulated machine has as
    many CPUs as the native run would see; the scheduler interleaves them deterministically).
    Returns the bytes written, the kernel's cpumask size rounded to longs."""
    import errno

    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
    nbytes = max(4, (max(cpus) // 32 + 1) * 4)
    if size < nbytes or size & 3:
        return -errno.EINVAL
    bits = sum(1 << c for c in cpus)
    write_user(k, p, mask, bits.to_bytes(nbytes, "little"))
    return nbytes


def sys_socketcall(k, p, call, args):
    """A machine without networking: no address family is registered (EAFNOSUPPORT for
    socket/socketpair), every other call has no socket to act on (ENOTSOCK)."""
    import errno

    return -errno.EAFNOSUPPORT if call in (1, 8) else -errno.ENOTSOCK


def sys_socket(k, p, family, type_, proto):
    import errno

    return -errno.EAFNOSUPPORT


def sys_prctl(k, p, option, a2, a3, a4, a5):
    """The prctl options real programs use: the task name, dumpable, no_new_privs, pdeathsig."""
    import errno

    from elfvm.emu.uaccess import read_user, write_u32

    PR_SET_PDEATHSIG, PR_GET_PDEATHSIG, PR_GET_DUMPABLE, PR_SET_DUMPABLE = 1, 2, 3, 4
    PR_SET_NAME, PR_GET_NAME, PR_SET_NO_NEW_PRIVS, PR_GET_NO_NEW_PRIVS = 15, 16, 38, 39
    st = p.prctl
    if option == PR_SET_NAME:
        st["comm"] = read_user(k, p, a2, 16).split(b"\0")[0][:15]
        return 0
    if option == PR_GET_NAME:
        comm = st.get("comm", os.path.basename(p.exe).encode()[:15])
        write_user(k, p, a2, comm.ljust(16, b"\0"))
        return 0
    if option == PR_SET_DUMPABLE:
        if a2 not in (0, 1):
            return -errno.EINVAL
        st["dumpable"] = a2
        return 0
    if option == PR_GET_DUMPABLE:
        return st.get("dumpable", 1)
    if option == PR_SET_PDEATHSIG:
        if a2 > 64:
            return -errno.EINVAL
        st["pdeathsig"] = a2
        return 0
    if option == PR_GET_PDEATHSIG:
        write_u32(k, p, a2, st.get("pdeathsig", 0))
        return 0
    if option == PR_SET_NO_NEW_PRIVS:
        if a2 != 1 or a3 or a4 or a5:
            return -errno.EINVAL
        st["no_new_privs"] = 1
        return 0
    if option == PR_GET_NO_NEW_PRIVS:
        return st.get("no_new_privs", 0)
    return -errno.EINVAL
