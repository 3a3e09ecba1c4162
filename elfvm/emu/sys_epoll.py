"""epoll (fs/eventpoll.c): an epoll instance is an open file holding an interest list of
(file, fd) items and a ready list; epoll_wait reports the ready ones.

An item joins the ready list's tail when it is ready at EPOLL_CTL_ADD or MOD, and when its
file's wait queue wakes with an event it wants (ep_poll_callback: a pipe wakes on every read,
write and close). ep_send_events takes items from the front, drops the ones no longer ready,
puts level-triggered ones back at the tail, leaves edge-triggered ones off until the next
wake-up and disables EPOLLONESHOT ones until MOD; what it did not reach stays at the front.
Readiness is each file's poll mask (elfvm.emu.sys_fs.file_poll). An item goes away with the
last reference to its file (eventpoll_release), not with its fd.
"""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass, field

from elfvm.emu import signals as SIG
from elfvm.emu import sys_fs as FS
from elfvm.emu import vfs as V
from elfvm.emu.task import Blocked, s32
from elfvm.emu.uaccess import read_user, write_user

EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP = 0x1, 0x4, 0x8, 0x10
EPOLLEXCLUSIVE, EPOLLWAKEUP, EPOLLONESHOT, EPOLLET = 1 << 28, 1 << 29, 1 << 30, 1 << 31
EP_PRIVATE_BITS = EPOLLWAKEUP | EPOLLONESHOT | EPOLLET | EPOLLEXCLUSIVE
EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD = 1, 2, 3
EPOLL_CLOEXEC = 0o2000000
EVENT_SIZE = 12                               # struct epoll_event is packed on x86: u32, u64
EP_MAX_EVENTS = 0x7FFFFFFF // EVENT_SIZE


@dataclass(eq=False, repr=False)
class EpItem:
    """struct epitem: one (file, fd) on an epoll instance's interest list."""

    file: V.OpenFile
    events: int
    data: int


@dataclass(repr=False)
class EventPoll:
    """struct eventpoll: the interest list (fd -> EpItem) and the ready list."""

    items: dict = field(default_factory=dict)  # fd -> EpItem
    rdllist: list = field(default_factory=list)

    def alive(self, it: EpItem) -> bool:
        return it.file.refs > 0 and any(x is it for x in self.items.values())

    def release(self) -> None:
        """eventpoll_release: items whose file has no reference left go."""
        for fd in [fd for fd, it in self.items.items() if it.file.refs <= 0]:
            self.remove(fd)

    def remove(self, fd: int) -> None:
        it = self.items.pop(fd)
        self.rdllist = [x for x in self.rdllist if x is not it]
        if it.file.pipe is not None:
            it.file.pipe.watchers[:] = [w for w in it.file.pipe.watchers
                                        if getattr(w, "__self__", None) is not self]
            for other in self.items.values():          # the others on the same pipe stay
                if other.file.pipe is it.file.pipe:
                    it.file.pipe.watchers.append(self.callback)
                    break

    def queue(self, it: EpItem) -> None:
        if not any(x is it for x in self.rdllist):
            self.rdllist.append(it)

    def callback(self, pipe: V.Pipe, key: int) -> None:
        """ep_poll_callback for every item of this instance on the pipe that woke."""
        for it in list(self.items.values()):
            if it.file.pipe is not pipe or not it.events & ~EP_PRIVATE_BITS:
                continue
            if key and not key & it.events:
                continue
            self.queue(it)

    def send_events(self, poll, maxevents: int) -> list[tuple[EpItem, int]]:
        """ep_send_events(): up to maxevents (item, revents) from the ready list's front."""
        self.release()
        scan, self.rdllist, out = self.rdllist, [], []
        i = 0
        while i < len(scan) and len(out) < maxevents:
            it = scan[i]
            i += 1
            revents = poll(it.file) & it.events
            if not self.alive(it) or not revents:
                continue
            out.append((it, revents))
            if it.events & EPOLLONESHOT:
                it.events &= EP_PRIVATE_BITS
            elif not it.events & EPOLLET:
                self.rdllist.append(it)            # level-triggered: back at the tail
        self.rdllist = scan[i:] + self.rdllist
        return out

    def has_ready(self, poll) -> bool:
        """ep_eventpoll_poll: EPOLLIN when an item on the ready list is ready."""
        return any(self.alive(it) and poll(it.file) & it.events for it in self.rdllist)


def _pollable(f: V.OpenFile) -> bool:
    """Files with a poll method: pipes, the captured stdio (pipes natively), epoll itself;
    not regular files, directories or the memory devices (epoll_ctl: EPERM)."""
    return f.pipe is not None or f.sink is not None or f.epoll is not None


def _create(p) -> int:
    return FS.alloc_fd(p, V.OpenFile(None, V.O_RDWR, epoll=EventPoll()))


def sys_epoll_create(k, p, size):
    return -errno.EINVAL if s32(size) <= 0 else _create(p)


def sys_epoll_create1(k, p, flags):
    if flags & ~EPOLL_CLOEXEC:
        return -errno.EINVAL
    fd = _create(p)
    if flags & EPOLL_CLOEXEC:
        p.cloexec.add(fd)
    return fd


def sys_epoll_ctl(k, p, epfd, op, fd, event):
    """EPOLL_CTL_ADD / MOD / DEL of (file, fd) in the interest list, with do_epoll_ctl's
    checks in its order."""
    ev = (0, 0)
    if op != EPOLL_CTL_DEL:
        ev = struct.unpack("<IQ", read_user(k, p, event, EVENT_SIZE))
    ep_file, f = FS.fdget(p, epfd), FS.fdget(p, fd)
    if not _pollable(f):
        return -errno.EPERM
    if ep_file.epoll is None or ep_file is f:
        return -errno.EINVAL
    events = ev[0]
    if events & EPOLLEXCLUSIVE and (op == EPOLL_CTL_MOD or op == EPOLL_CTL_ADD and (
            f.epoll is not None or events & ~(EPOLLEXCLUSIVE | EPOLLET | EPOLLIN | EPOLLOUT
                                              | EPOLLERR | EPOLLHUP | EPOLLWAKEUP))):
        return -errno.EINVAL
    ep = ep_file.epoll
    ep.release()
    it = ep.items.get(s32(fd))
    if it is not None and it.file is not f:
        it = None
    if op == EPOLL_CTL_ADD:
        if it is not None:
            return -errno.EEXIST
        it = ep.items[s32(fd)] = EpItem(f, events | EPOLLERR | EPOLLHUP, ev[1])
        if f.pipe is not None and ep.callback not in f.pipe.watchers:
            f.pipe.watchers.append(ep.callback)
    elif it is None:
        return -errno.ENOENT
    elif op == EPOLL_CTL_DEL:
        ep.remove(s32(fd))
        return 0
    elif op == EPOLL_CTL_MOD and not it.events & EPOLLEXCLUSIVE:
        it.events, it.data = events | EPOLLERR | EPOLLHUP, ev[1]
    else:
        return -errno.EINVAL
    if FS.file_poll(f) & it.events & ~EP_PRIVATE_BITS:     # ep_insert / ep_modify
        ep.queue(it)
    return 0


def do_epoll_wait(k, p, epfd, events, maxevents, deadline: int | None) -> int:
    """ep_poll() + ep_send_events(): up to maxevents ready items, in ready-list order."""
    if s32(maxevents) <= 0 or maxevents > EP_MAX_EVENTS:
        return -errno.EINVAL
    if events + maxevents * EVENT_SIZE > p.mm.task_size:     # access_ok()
        return -errno.EFAULT
    f = FS.fdget(p, epfd)
    if f.epoll is None:
        return -errno.EINVAL
    if not f.epoll.has_ready(FS.file_poll):
        f.epoll.send_events(FS.file_poll, 0)         # drops the items no longer ready
        FS.poll_wait(k, p, 0, deadline)              # sleeps, or the timeout has passed
        return 0
    FS.poll_wait(k, p, 1, deadline)
    ready = f.epoll.send_events(FS.file_poll, maxevents)
    write_user(k, p, events, b"".join(struct.pack("<IQ", m, it.data) for it, m in ready))
    return len(ready)


def _deadline_ms(k, p, timeout_ms: int) -> int | None:
    from elfvm.emu.sys_time import SLEEPING, now_ns

    t = s32(timeout_ms)
    if t < 0:
        return None
    return p.wake_at if p.futex_key == SLEEPING else now_ns(k) + t * 10**6


def sys_epoll_wait(k, p, epfd, events, maxevents, timeout):
    return do_epoll_wait(k, p, epfd, events, maxevents, _deadline_ms(k, p, timeout))


def _with_sigmask(k, p, sigmask, sigsetsize, call) -> int:
    """epoll_pwait's mask for the call's duration (restored unless a signal interrupts)."""
    err = SIG.set_user_sigmask(k, p, sigmask, sigsetsize)
    if err:
        return err
    try:
        ret = call()
    except Blocked:
        raise
    except BaseException:
        SIG.restore_saved_sigmask(p)
        raise
    SIG.restore_saved_sigmask(p)
    return ret


def sys_epoll_pwait(k, p, epfd, events, maxevents, timeout, sigmask, sigsetsize):
    return _with_sigmask(k, p, sigmask, sigsetsize, lambda: do_epoll_wait(
        k, p, epfd, events, maxevents, _deadline_ms(k, p, timeout)))


def sys_epoll_pwait2(k, p, epfd, events, maxevents, tsp, sigmask, sigsetsize):
    deadline = FS.poll_deadline(k, p, tsp, "<qq")
    return _with_sigmask(k, p, sigmask, sigsetsize, lambda: do_epoll_wait(
        k, p, epfd, events, maxevents, deadline))

