"""System V shared memory: ipc(), shmget, shmat, shmdt, shmctl (ipc/shm.c)."""

from __future__ import annotations

import errno

from elfvm.emu.memory import PAGE
from elfvm.emu.pages import unmap_range
from elfvm.emu.sys_mm import do_mmap
from elfvm.emu.task import s32
from elfvm.emu.task_mmu import update_hiwater
from elfvm.emu.uaccess import write_u32
from elfvm.emu.uapi import (
    IPC_CREAT,
    IPC_PRIVATE,
    IPC_RMID,
    IPC_STAT,
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_SHARED,
    SHMAT,
    SHMCTL,
    SHMDT,
    SHMGET,
)
from elfvm.mm.vma import PROT_READ, PROT_WRITE


def sys_ipc(k, p, call, first, second, third, ptr, fifth=0):
    if call == SHMGET:
        return sys_shmget(k, p, first, second, third)
    if call == SHMAT:
        r = sys_shmat(k, p, first, ptr, second)
        if r < 0 and r > -4096:
            return r
        write_u32(k, p, third, r)
        return 0
    if call == SHMDT:
        return sys_shmdt(k, p, ptr)
    if call == SHMCTL:
        return sys_shmctl(k, p, first, second, ptr)
    return -errno.ENOSYS


def sys_shmget(k, p, key, size, flags):
    key = s32(key)
    if key != IPC_PRIVATE:
        for sid, s in k.shm.items():
            if s["key"] == key and not s["removed"]:
                return sid
        if not flags & IPC_CREAT:
            return -errno.ENOENT
    sid = len(k.shm) + 1
    k.shm[sid] = {"key": key, "size": size, "nattch": 0, "removed": False}
    return sid


def sys_shmat(k, p, shmid, addr, flags):
    s = k.shm.get(shmid)
    if s is None or s["removed"]:
        return -errno.EINVAL
    SHM_RDONLY = 0o10000
    prot = PROT_READ | (0 if flags & SHM_RDONLY else PROT_WRITE)
    mflags = MAP_SHARED | (MAP_FIXED if addr else 0)
    r = do_mmap(k, p, addr, s["size"], prot, mflags | MAP_ANONYMOUS, -1, 0, source=f"shm:{shmid}")
    if 0 <= r < (1 << 32) - 4096:
        p.shm_attach[r] = shmid
        s["nattch"] += 1
    return r


def sys_shmdt(k, p, addr):
    sid = p.shm_attach.pop(addr, None)
    if sid is None:
        return -errno.EINVAL
    v = p.mm.vma_at(addr)
    end = v.end if v else addr + PAGE
    update_hiwater(k, p)
    p.mm.munmap(addr, end)
    unmap_range(k, p, addr, end)
    k.shm[sid]["nattch"] -= 1
    return 0


def sys_shmctl(k, p, shmid, cmd, buf):
    s = k.shm.get(shmid)
    if s is None:
        return -errno.EINVAL
    if cmd & 0xFF == IPC_RMID:
        s["removed"] = True
        return 0
    if cmd & 0xFF == IPC_STAT:
        return 0
    return -errno.EINVAL
