"""The compiled core of demand paging: page index, TLB, frames and the replacement policies.

Everything here works on arrays owned by `elfvm.sim.engine` (no Python objects per page or per
reference, no allocation), one reference after another, exactly as the rules say. The source is
neutral (`elfvm.sim.jit`): compiled over numpy arrays, or plain Python over memoryviews of the
same buffers, with the same results, so a run can move from one to the other between calls.


for each reference (page ``p`` of process ``proc``, read/write, instruction/data):
  1. a reference from another process than the last one is a context switch: without ASIDs the
     TLB is flushed (a CR3 load without PCID flushes every non-global entry), with ASIDs the
     tagged entries stay;
  2. TLB look-up (the instruction TLB for ``I`` records when the TLB is split, else the data or
     unified TLB): a hit refreshes the entry's LRU stamp within its set;
  3. on a miss the page table is walked; a page that is not present is a page fault
     (``first-touch`` the first time, ``swap-in`` after an eviction; the program-aware mode of
     the emulator passes its own kind for first touches): a free frame is taken (the one freed
     last, else the lowest never used) or
     the policy picks a victim, whose dirty contents are written to swap, whose PTE is cleared
     and whose TLB entries are invalidated (INVLPG); then the TLB is filled (an invalid way of
     the set first, else the set's least recently used entry);
  4. the access sets the frame's referenced (A) bit, and the dirty (D) bit on a write; LRU moves
     the frame to the most-recent end, OPT records the page's next use.

Policies (victim when no frame is free):
  fifo   the frame loaded earliest;
  lru    the frame referenced least recently (recency updated on every reference);
  clock  second chance: the hand sweeps frames in frame order, clearing referenced bits, and
         takes the first frame whose bit is clear; a loaded page starts with its bit set and the
         hand then points past it;
  opt    Belady's MIN: the resident page whose next use is farthest (never again = infinitely
         far); ties go to the page that became resident earliest. Next uses come from a first
         pass (`next_uses`, chunk by chunk from the end); a segment tree over frames keeps the choice O(log frames).
"""

from __future__ import annotations

from elfvm.sim.jit import entry, i64, njit, u64

FIFO, LRU, CLOCK, OPT = 0, 1, 2, 3
POLICIES = {"fifo": FIFO, "lru": LRU, "clock": CLOCK, "opt": OPT}

# fault kinds (counters C_FAULT + kind); trace mode only produces the first two
FAULT_KINDS = ("first-touch", "swap-in", "zero-page", "file", "cow", "stack-growth")
K_FIRST_TOUCH, K_SWAP_IN = 0, 1
NKINDS = len(FAULT_KINDS)

# pages[p, *]
P_FRAME, P_SWAPPED, P_SLOT = 0, 1, 2          # P_SLOT + 0: data/unified TLB, + 1: instruction TLB
NPF = 4
# frames[f, *]
F_PAGE, F_DIRTY, F_REF, F_LOAD, F_PREV, F_NEXT, F_KEY = range(7)
NFF = 7
# tlb[which, entry, *]: an invalid entry is page -1, stamp -1 (below every stamp: time counts
# references from 0), so the stamps alone order a set's ways for replacement (_tlb_fill)
T_PAGE, T_STAMP = 0, 1
# counters[proc, *]
C_REFS, C_HITS, C_MISSES, C_EVICT, C_DIRTY, C_TOUCHED, C_SWITCH_IN = range(7)
C_FAULT = 7
NC = C_FAULT + NKINDS
# scalars
S_T, S_CUR, S_SWITCHES, S_LOADSEQ, S_HEAD, S_TAIL, S_HAND, S_NFREE, S_NEVENTS = range(9)
S_LAST_HIT, S_LAST_KIND, S_LAST_FRAME, S_LAST_VICTIM, S_LAST_VDIRTY = range(9, 14)
S_FRESH, S_NRET = 14, 15      # the lowest frame never used; frames freed, stacked in free[]
NS = 16
# params
R_POLICY, R_NFRAMES, R_TLB_ENTRIES, R_TLB_WAYS, R_TLB_SETS, R_SPLIT, R_ASID, R_EVCAP, R_TREE, \
    R_FIRST_KIND = range(10)
NR = 10
# events[e, *]: one row per page fault
E_T, E_PROC, E_PAGE, E_KIND, E_FRAME, E_VICTIM, E_VDIRTY = range(7)
NE = 7

NEVER = 1 << 62                                # "never used again" for OPT


# ------------------------------------------------------------------ page index: (proc, vpn) -> id

@njit
def _slot_of(proc, vpn, mask):
    """The key's first slot. No step may overflow int64 (plain Python's ints would not wrap
    where numba's do, and both must pick the same slot: a run that moves from plain Python to
    the compiled kernels keeps its table): the key folded to 31 bits times a 32-bit odd
    multiplier (Fibonacci hashing, 2^32 / golden ratio) stays below 2^63."""
    x = vpn ^ (proc << 44)
    x = (x ^ (x >> 31)) & 0x7FFFFFFF
    h = x * 0x9E3779B1
    h ^= h >> 29
    return h & mask


@entry("i8(i4[::1], i8[::1], i4[::1], i8, i8[::1], i8[::1], i8[::1], i8[::1], i8[::1], i8[::1])")
def resolve(procs, vpns, ids, start, keys_proc, keys_vpn, vals, page_proc, page_vpn, count):
    """Map each (procs[i], vpns[i]) to a dense page id, new pages numbered in order of first use.

    Stops early (returns the index reached) when the table is half full: the caller grows it
    and calls again from there. count[0] is the number of pages.
    """
    mask = keys_proc.shape[0] - 1
    limit = (mask + 1) >> 1
    n = vpns.shape[0]
    # the last two distinct pages (a trace alternates between its code page and a data page)
    p1 = -1
    v1 = -1
    id1 = -1
    p2 = -1
    v2 = -1
    id2 = -1
    for i in range(start, n):
        u = u64(i)                         # unsigned: no negative-index wraparound
        proc = i64(procs[u])
        vpn = vpns[u]
        if vpn == v1 and proc == p1:
            ids[u] = id1
            continue
        if vpn == v2 and proc == p2:
            ids[u] = id2
            p2, v2, id2, p1, v1, id1 = p1, v1, id1, p2, v2, id2
            continue
        h = _slot_of(proc, vpn, mask)
        kp = keys_proc[h]
        while kp >= 0 and not (kp == proc and keys_vpn[h] == vpn):
            h = (h + 1) & mask
            kp = keys_proc[h]
        if kp < 0:
            if count[0] >= limit:
                return i
            pid = count[0]
            count[0] = pid + 1
            keys_proc[h] = proc
            keys_vpn[h] = vpn
            vals[h] = pid
            page_proc[pid] = proc
            page_vpn[pid] = vpn
        else:
            pid = vals[h]
        ids[u] = pid
        p2, v2, id2 = p1, v1, id1
        p1, v1, id1 = proc, vpn, pid
    return n


@entry("void(i8[:], i8[:], i8[:], i8[:], i8[:], i8[:])")
def rehash(keys_proc, keys_vpn, vals, new_proc, new_vpn, new_vals):
    mask = new_proc.shape[0] - 1
    for h in range(keys_proc.shape[0]):
        if keys_proc[h] >= 0:
            g = _slot_of(keys_proc[h], keys_vpn[h], mask)
            while new_proc[g] >= 0:
                g = (g + 1) & mask
            new_proc[g] = keys_proc[h]
            new_vpn[g] = keys_vpn[h]
            new_vals[g] = vals[h]


@entry("void(i4[:], i8, i8[:], i8[:])")
def next_uses(ids, base, seen, out):
    """OPT's backward pass over one chunk, the chunks taken from the last to the first: out[i] =
    the index of the next reference to page ids[i] (NEVER if none), where ids[0] is reference
    number `base`; seen[p] carries the earliest index of page p found so far (NEVER at first)."""
    for i in range(ids.shape[0] - 1, -1, -1):
        p = ids[i]
        out[i] = seen[p]
        seen[p] = base + i


# ------------------------------------------------------------------ the TLB

@njit
def _tlb_invalidate(tlb, pages, p):
    """INVLPG: drop page p from every TLB."""
    for which in range(2):
        e = pages[p, P_SLOT + which]
        if e >= 0:
            tlb[which, e, T_PAGE] = -1
            tlb[which, e, T_STAMP] = -1
            pages[p, P_SLOT + which] = -1


@njit
def tlb_flush(tlb, pages):
    """A CR3 load without PCID: every entry goes."""
    for which in range(2):
        for e in range(tlb.shape[1]):
            p = tlb[which, e, T_PAGE]
            if p >= 0:
                pages[p, P_SLOT + which] = -1
                tlb[which, e, T_PAGE] = -1
                tlb[which, e, T_STAMP] = -1


@njit
def _tlb_fill(tlb, pages, which, p, vpn, t, sets, ways):
    """Page p into its set: the set's first invalid way, else its least recently used (the
    first of the lowest stamp). An invalid way's stamp is -1, the lowest: the first way of the
    lowest stamp is the answer either way, found with one array read a way (plain Python pays
    for every read), stopping at the first invalid one."""
    s = vpn % sets
    base = s * ways
    best = base
    best_t = tlb[which, base, T_STAMP]        # kept in a local
    if best_t >= 0:
        for e in range(base + 1, base + ways):
            st = tlb[which, e, T_STAMP]
            if st < best_t:
                best = e
                best_t = st
                if st < 0:
                    break
    old = tlb[which, best, T_PAGE]
    if old >= 0:
        pages[old, P_SLOT + which] = -1
    tlb[which, best, T_PAGE] = p
    tlb[which, best, T_STAMP] = t
    pages[p, P_SLOT + which] = best


# ------------------------------------------------------------------ replacement policies

@njit
def _list_append(frames, sc, f):
    tail = sc[S_TAIL]
    frames[f, F_PREV] = tail
    frames[f, F_NEXT] = -1
    if tail >= 0:
        frames[tail, F_NEXT] = f
    else:
        sc[S_HEAD] = f
    sc[S_TAIL] = f


@njit
def _list_remove(frames, sc, f):
    prv = frames[f, F_PREV]
    nxt = frames[f, F_NEXT]
    if prv >= 0:
        frames[prv, F_NEXT] = nxt
    else:
        sc[S_HEAD] = nxt
    if nxt >= 0:
        frames[nxt, F_PREV] = prv
    else:
        sc[S_TAIL] = prv
    frames[f, F_PREV] = -1
    frames[f, F_NEXT] = -1


@njit
def _opt_better(frames, a, b):
    """Is frame a a better OPT victim than frame b (next use farther; tie: loaded earlier)?"""
    if b < 0:
        return True
    if a < 0:
        return False
    ka = frames[a, F_KEY]
    kb = frames[b, F_KEY]
    if ka != kb:
        return ka > kb
    return frames[a, F_LOAD] < frames[b, F_LOAD]


@njit
def _tree_update(tree, frames, size, f):
    i = (size + f) >> 1
    while i >= 1:
        a = tree[2 * i]
        b = tree[2 * i + 1]
        tree[i] = a if _opt_better(frames, a, b) else b
        i >>= 1


@njit
def _victim(frames, sc, prm, tree):
    policy = prm[R_POLICY]
    if policy == 3:
        return tree[1]
    if policy == 2:
        n = prm[R_NFRAMES]
        h = sc[S_HAND]
        while frames[h, F_REF] != 0:
            frames[h, F_REF] = 0
            h += 1
            if h == n:
                h = 0
        nh = h + 1
        sc[S_HAND] = 0 if nh == n else nh
        return h
    return sc[S_HEAD]


# ------------------------------------------------------------------ the reference loop

@entry("i8(i8, i8, i8, i8[:, :], i8[:], i8[:, :], i8[:, :, :], i8[:], i8[:], i8[:, :], i8[:], i8[:], i8[:, :])")
def _page_fault(p, proc, t, pages, page_proc, frames, tlb, tree, free, counters, sc, prm, events):
    swapped = pages[p, P_SWAPPED]
    kind = 1 if swapped == 1 else prm[R_FIRST_KIND]
    if swapped == 0:
        counters[proc, C_TOUCHED] += 1
    counters[proc, C_FAULT + kind] += 1
    policy = prm[R_POLICY]
    victim = -1
    vdirty = 0
    if sc[S_NFREE] > 0:
        sc[S_NFREE] -= 1
        nret = sc[S_NRET]
        if nret > 0:                    # the frame freed last
            sc[S_NRET] = nret - 1
            f = free[nret - 1]
        else:                           # frames never used come lowest first; counting them
            f = sc[S_FRESH]             # (instead of stacking all of them at the start) keeps
            sc[S_FRESH] = f + 1         # a model of 1M frames cheap to set up and to read
    else:
        f = _victim(frames, sc, prm, tree)
        victim = frames[f, F_PAGE]
        vproc = page_proc[victim]
        vdirty = frames[f, F_DIRTY]
        counters[vproc, C_EVICT] += 1
        if vdirty != 0:
            counters[vproc, C_DIRTY] += 1
        pages[victim, P_FRAME] = -1
        pages[victim, P_SWAPPED] = 1
        _tlb_invalidate(tlb, pages, victim)
        if policy == 0 or policy == 1:
            _list_remove(frames, sc, f)
    frames[f, F_PAGE] = p
    frames[f, F_DIRTY] = 0
    frames[f, F_REF] = 1
    frames[f, F_LOAD] = sc[S_LOADSEQ]
    sc[S_LOADSEQ] += 1
    pages[p, P_FRAME] = f
    if policy == 0 or policy == 1:
        _list_append(frames, sc, f)
    ne = sc[S_NEVENTS]
    if ne < prm[R_EVCAP]:
        events[ne, E_T] = t
        events[ne, E_PROC] = proc
        events[ne, E_PAGE] = p
        events[ne, E_KIND] = kind
        events[ne, E_FRAME] = f
        events[ne, E_VICTIM] = victim
        events[ne, E_VDIRTY] = vdirty
        sc[S_NEVENTS] = ne + 1
    sc[S_LAST_KIND] = kind
    sc[S_LAST_VICTIM] = victim
    sc[S_LAST_VDIRTY] = vdirty
    return f


@entry("void(i4[::1], u1[::1], i8[::1], i8[:, ::1], i8[::1], i8[::1], i8[:, ::1], i8[:, :, ::1], i8[::1], i8[::1], i8[:, ::1], i8[::1], i8[::1], i8[:, ::1])")
def simulate(ids, flags, nexts, pages, page_proc, page_vpn, frames, tlb, tree, free, counters,
             sc, prm, events):
    """Run references ids[i] (page ids) with flags[i] (WRITE=1, INSTR=2) through the model.

    nexts[i] is the index of the next reference to the same page (OPT only; empty otherwise).
    The references, hits and misses of the current process and the last reference's
    S_LAST_* slots are kept in locals and stored when the process changes and at the end (no
    other code reads them meanwhile); a reference to the page (and TLB) of the one before, with
    no fault between, is a TLB hit with nothing else to move (LRU: the frame is already the
    most recent).
    """
    n = ids.shape[0]
    if n == 0:
        return
    policy = prm[R_POLICY]
    entries = prm[R_TLB_ENTRIES]
    ways = prm[R_TLB_WAYS]
    sets = prm[R_TLB_SETS]
    split = prm[R_SPLIT]
    asid = prm[R_ASID]
    tsize = prm[R_TREE]
    cur = sc[S_CUR]
    t = sc[S_T]
    refs = 0
    hits = 0
    misses = 0
    last_p = -1
    last_which = -1
    last_e = 0
    f = 0
    hit = 0
    kind = -1
    same_ok = entries > 0 and policy != 3
    for i in range(n):
        p = i64(ids[i])
        fl = flags[i]
        which = 1 if (split != 0 and (fl & 2) != 0) else 0
        if p == last_p and which == last_which and same_ok:
            refs += 1
            hits += 1
            tlb[which, last_e, T_STAMP] = t
            if (fl & 1) != 0:
                frames[f, F_DIRTY] = 1
            hit = 1
            kind = -1
            t += 1
            continue
        proc = page_proc[p]
        if proc != cur:
            if cur >= 0:
                counters[cur, C_REFS] += refs
                counters[cur, C_HITS] += hits
                counters[cur, C_MISSES] += misses
                sc[S_SWITCHES] += 1
                counters[proc, C_SWITCH_IN] += 1
                if asid == 0:
                    tlb_flush(tlb, pages)
            refs = 0
            hits = 0
            misses = 0
            cur = proc
            sc[S_CUR] = proc
        refs += 1
        kind = -1
        e = pages[p, P_SLOT + which]
        if e >= 0:
            hits += 1
            tlb[which, e, T_STAMP] = t
            f = pages[p, P_FRAME]
            hit = 1
        else:
            misses += 1
            hit = 0
            f = pages[p, P_FRAME]
            if f < 0:
                f = _page_fault(p, proc, t, pages, page_proc, frames, tlb, tree, free, counters,
                                sc, prm, events)
                kind = sc[S_LAST_KIND]
            if entries > 0:
                _tlb_fill(tlb, pages, which, p, page_vpn[p], t, sets, ways)
            e = pages[p, P_SLOT + which]
        if (fl & 1) != 0:
            frames[f, F_DIRTY] = 1
        frames[f, F_REF] = 1
        if policy == 1:
            tail = sc[S_TAIL]
            if tail != f:
                # _list_remove + _list_append written out: a call passing arrays costs more
                # (numba's reference counting) than this move to the most-recent end
                prv = frames[f, F_PREV]
                nxt = frames[f, F_NEXT]
                if prv >= 0:
                    frames[prv, F_NEXT] = nxt
                else:
                    sc[S_HEAD] = nxt
                frames[nxt, F_PREV] = prv           # f is not the tail: nxt >= 0
                frames[f, F_PREV] = tail
                frames[f, F_NEXT] = -1
                frames[tail, F_NEXT] = f
                sc[S_TAIL] = f
        elif policy == 3:
            frames[f, F_KEY] = nexts[i]
            _tree_update(tree, frames, tsize, f)
        last_p = p
        last_which = which
        last_e = e
        t += 1
    if cur >= 0:
        counters[cur, C_REFS] += refs
        counters[cur, C_HITS] += hits
        counters[cur, C_MISSES] += misses
    sc[S_T] = t
    sc[S_LAST_HIT] = hit
    sc[S_LAST_KIND] = kind
    sc[S_LAST_FRAME] = f


@entry("i8(i8, i8[:, :], i8[:, :], i8[:, :, :], i8[:], i8[:], i8[:], i8[:])")
def unmap_page(p, pages, frames, tlb, tree, free, sc, prm):
    """munmap / exit: the page's frame goes back to the free list, its TLB entries go too.

    Returns the frame freed, or -1 when the page was not resident.
    """
    f = pages[p, P_FRAME]
    _tlb_invalidate(tlb, pages, p)
    pages[p, P_SWAPPED] = 0
    if f < 0:
        return -1
    pages[p, P_FRAME] = -1
    policy = prm[R_POLICY]
    if policy == 0 or policy == 1:
        _list_remove(frames, sc, f)
    frames[f, F_PAGE] = -1
    frames[f, F_DIRTY] = 0
    frames[f, F_REF] = 0
    frames[f, F_KEY] = -1
    if policy == 3:
        _tree_update(tree, frames, prm[R_TREE], f)
    free[sc[S_NRET]] = f
    sc[S_NRET] += 1
    sc[S_NFREE] += 1
    return f
