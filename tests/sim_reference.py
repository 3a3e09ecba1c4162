"""A deliberately simple simulator of the simulate-run rules, for checking the fast engine.

Plain Python, lists and dicts, no cleverness: read the lines with str.split, expand every record
into the pages its bytes touch, interleave the processes, then go reference by reference.
Written from the issue's rules, not from the engine's code.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def read_lackey(lines, page_size):
    """[(page, write, instr)] from lackey lines."""
    refs = []
    for line in lines:
        if not line.strip() or line.strip().startswith("=="):
            continue
        kind, rest = line.split()
        addr, size = rest.split(",")
        addr, size = int(addr, 16), max(int(size), 1)
        for page in range(addr // page_size, (addr + size - 1) // page_size + 1):
            refs.append((page, kind in ("S", "M"), kind == "I"))
    return refs


def read_plain(lines, page_size):
    refs = []
    for line in lines:
        line = line.split("#")[0].strip()
        if not line:
            continue
        parts = line.split()
        write = len(parts) == 2 and parts[0].upper() == "W"
        refs.append((int(parts[-1], 0) // page_size, write, False))
    return refs


def interleave(traces, quantum):
    """[(proc, page, write, instr)] round-robin, `quantum` references per turn."""
    pos = [0] * len(traces)
    active = [i for i in range(len(traces))]
    cur = 0
    out = []
    while active:
        p = active[cur]
        take = min(quantum, len(traces[p]) - pos[p])
        for page, w, ins in traces[p][pos[p]:pos[p] + take]:
            out.append((p, page, w, ins))
        pos[p] += take
        if pos[p] == len(traces[p]):
            active.remove(p)
            if cur >= len(active):
                cur = 0
        else:
            cur = (cur + 1) % len(active)
    return out


@dataclass
class Proc:
    refs: int = 0
    hits: int = 0
    misses: int = 0
    faults: dict = field(default_factory=lambda: {"first-touch": 0, "swap-in": 0})
    evictions: int = 0
    dirty_evictions: int = 0
    touched: int = 0


def simulate(traces, policy, nframes, tlb_entries=64, tlb_ways=None, split=False, asid=False,
             quantum=10000):
    """Returns (per-process Proc list, final page table {(proc, page): (frame, dirty, ref, swapped)},
    frame table [(frame, proc, page, dirty, ref)], events, context switches)."""
    seq = interleave(traces, quantum)
    procs = [Proc() for _ in traces]
    frame_page = [None] * nframes          # frame -> (proc, page)
    dirty = [False] * nframes
    ref = [False] * nframes
    loaded_at = [0] * nframes
    where = {}                              # (proc, page) -> frame
    ever_evicted = set()
    seen = set()
    order = []                              # fifo: load order; lru: use order (oldest first)
    hand = 0
    loads = 0
    ways = tlb_entries if tlb_ways is None else tlb_ways
    nsets = tlb_entries // ways if tlb_entries else 0
    tlbs = [[[None] * ways for _ in range(nsets)] for _ in range(2)]   # [which][set][way] = [key, stamp]
    events = []
    switches = 0
    last_proc = None

    def next_use(key, t):
        for j in range(t + 1, len(seq)):
            if (seq[j][0], seq[j][1]) == key:
                return j
        return float("inf")

    def drop_from_tlbs(key):
        for tlb in tlbs:
            for s in tlb:
                for w in range(len(s)):
                    if s[w] is not None and s[w][0] == key:
                        s[w] = None

    for t, (p, page, write, instr) in enumerate(seq):
        key = (p, page)
        if last_proc is not None and p != last_proc:
            switches += 1
            if not asid:
                for tlb in tlbs:
                    for s in tlb:
                        for w in range(len(s)):
                            s[w] = None
        last_proc = p
        procs[p].refs += 1
        which = 1 if (split and instr) else 0
        entry = None
        if nsets:
            tset = tlbs[which][page % nsets]
            entry = next((e for e in tset if e is not None and e[0] == key), None)
        if entry is not None:
            procs[p].hits += 1
            entry[1] = t
        else:
            procs[p].misses += 1
            if key not in where:
                kind = "swap-in" if key in ever_evicted else "first-touch"
                procs[p].faults[kind] += 1
                if key not in seen:
                    seen.add(key)
                    procs[p].touched += 1
                victim = None
                vdirty = False
                free = [f for f in range(nframes) if frame_page[f] is None]
                if free:
                    f = free[0]
                else:
                    if policy in ("fifo", "lru"):
                        f = order.pop(0)
                    elif policy == "clock":
                        while ref[hand]:
                            ref[hand] = False
                            hand = (hand + 1) % nframes
                        f = hand
                        hand = (hand + 1) % nframes
                    else:                       # opt
                        f = max(range(nframes),
                                key=lambda g: (next_use(frame_page[g], t), -loaded_at[g]))
                        if policy == "opt" and f in order:
                            order.remove(f)
                    victim = frame_page[f]
                    vdirty = dirty[f]
                    procs[victim[0]].evictions += 1
                    if vdirty:
                        procs[victim[0]].dirty_evictions += 1
                    del where[victim]
                    ever_evicted.add(victim)
                    drop_from_tlbs(victim)
                frame_page[f] = key
                where[key] = f
                dirty[f] = False
                ref[f] = True
                loaded_at[f] = loads
                loads += 1
                if policy in ("fifo", "lru"):
                    order.append(f)
                events.append((t, p, page, kind, f, victim, vdirty))
            if nsets:
                tset = tlbs[which][page % nsets]
                slot = next((w for w in range(ways) if tset[w] is None), None)
                if slot is None:
                    slot = min(range(ways), key=lambda w: tset[w][1])
                tset[slot] = [key, t]
        f = where[key]
        if write:
            dirty[f] = True
        ref[f] = True
        if policy == "lru":
            order.remove(f)
            order.append(f)
    table = {}
    for key in seen:
        f = where.get(key)
        table[key] = (f, dirty[f] if f is not None else False, ref[f] if f is not None else False,
                      f is None and key in ever_evicted)
    frames = [(f, *frame_page[f], dirty[f], ref[f]) for f in range(nframes) if frame_page[f]]
    return procs, table, frames, events, switches
