"""The trace parser's compiled core: bytes of lackey or plain lines -> page references.

The public contract (issue 4), the same in every mode: every page that a record's bytes touch is
one reference, in ascending page order; a size of 0 counts as 1 byte; ``S`` and ``M`` are writes
and ``M`` is ONE reference (valgrind's "modify", a load and a store to the same bytes); ``I`` and
``L`` are reads, ``I`` an instruction fetch.

``parse_lines`` works on a buffer of whole lines and is resumable: it stops when its output arrays
are full (a record that touches more pages than fit is finished on the next call), when it needs
more input, or at a malformed line (unless told to skip those). It never allocates.

Formats
    lackey  ``I  addr,size`` / `` L addr,size`` / `` S addr,size`` / `` M addr,size``, addresses in
            hex without 0x, sizes in decimal; ``==pid==`` lines (valgrind's own messages) ignored.
    plain   ``R ADDR``, ``W ADDR`` or ``ADDR`` (a read); ADDR is ``0x``-hex or decimal; ``#``
            starts a comment.
Blank lines are ignored in both.
"""

from __future__ import annotations

import numpy as np

from elfvm.sim.jit import entry, njit

WRITE = 1            # reference flags
INSTR = 2

FMT_LACKEY = 0
FMT_PLAIN = 1

# parser state slots (an int64 array carried from call to call)
ST_LINE = 0          # lines finished so far
ST_PEND = 1          # 1: a record's remaining pages ST_PNEXT..ST_PLAST are still to be emitted
ST_PNEXT = 2
ST_PLAST = 3
ST_PFLAGS = 4
ST_BAD = 5           # malformed lines skipped (--skip-bad-lines)
ST_BAD_LINE = 6      # line number of the first malformed line
ST_BAD_WHY = 7       # its reason code
ST_BAD_START = 8     # its offsets in the buffer (valid for the call that found it)
ST_BAD_END = 9
ST_RECORDS = 10      # records read
NST = 11

NEED_INPUT = 0       # parse_lines return codes
OUT_FULL = 1
BAD_LINE = 2

WHY = {
    1: "unknown record kind (expected I, L, S or M)",
    2: "bad address",
    3: "bad size",
    4: "unexpected characters after the record",
    5: "address beyond the linear address space",
    6: "missing ',SIZE'",
    7: "size too large",
    8: "bad address (expected R ADDR, W ADDR or ADDR; 0x for hex)",
}

MAX_SIZE = (1 << 32) - 1


@njit
def _number(buf, s, e, limit, base):
    """Digits of `base` (10 or 16) at buf[s:e]: (value, end, ndigits, over), over=1 when
    value > limit (the digits are still consumed so the caller can report the line)."""
    v = 0
    nd = 0
    over = 0
    while s < e:
        c = int(buf[s])
        if 48 <= c <= 57:
            d = c - 48
        elif base == 16 and 97 <= c <= 102:
            d = c - 87
        elif base == 16 and 65 <= c <= 70:
            d = c - 55
        else:
            break
        if over == 0:
            v = v * base + d
            if v > limit:
                over = 1
        nd += 1
        s += 1
    return v, s, nd, over


@njit
def _is_space(c):
    return c == 32 or c == 9


@njit
def _record(buf, s, e, fmt, max_addr):
    """Parse one stripped, non-empty line: (why, addr, size, flags, skip)."""
    c = int(buf[s])
    if fmt == 0:                                   # lackey
        if c == 61:                                # '=': "==pid== ..." valgrind's messages
            if s + 1 < e and buf[s + 1] == 61:
                return 0, 0, 0, 0, 1
            return 1, 0, 0, 0, 0
        if c == 73:                                # I
            fl = 2
        elif c == 76:                              # L
            fl = 0
        elif c == 83 or c == 77:                   # S, M
            fl = 1
        else:
            return 1, 0, 0, 0, 0
        s += 1
        if s >= e or not _is_space(buf[s]):
            return 1, 0, 0, 0, 0
        while s < e and _is_space(buf[s]):
            s += 1
        addr, s, nd, over = _number(buf, s, e, max_addr, 16)
        if nd == 0:
            return 2, 0, 0, 0, 0
        if s >= e:
            return 6, 0, 0, 0, 0
        if buf[s] != 44:                           # ','
            if _is_space(buf[s]):
                return 6, 0, 0, 0, 0
            return 2, 0, 0, 0, 0
        s += 1
        size, s, nd, big = _number(buf, s, e, 4294967295, 10)
        if nd == 0:
            return 3, 0, 0, 0, 0
        if s != e:
            return 4, 0, 0, 0, 0
        if big == 1:
            return 7, 0, 0, 0, 0
        if over == 1:
            return 5, 0, 0, 0, 0
        return 0, addr, size, fl, 0
    # plain
    if c == 35:                                    # '#': a comment line
        return 0, 0, 0, 0, 1
    fl = 0
    if (c == 82 or c == 114 or c == 87 or c == 119) and s + 1 < e and _is_space(buf[s + 1]):
        if c == 87 or c == 119:
            fl = 1
        s += 1
        while s < e and _is_space(buf[s]):
            s += 1
    if s + 1 < e and buf[s] == 48 and (buf[s + 1] == 120 or buf[s + 1] == 88):
        addr, s, nd, over = _number(buf, s + 2, e, max_addr, 16)
    else:
        addr, s, nd, over = _number(buf, s, e, max_addr, 10)
    if nd == 0:
        return 8, 0, 0, 0, 0
    t = s
    while t < e and _is_space(buf[t]):
        t += 1
    if t < e and buf[t] != 35:
        if t == s:
            return 8, 0, 0, 0, 0
        return 4, 0, 0, 0, 0
    if over == 1:
        return 5, 0, 0, 0, 0
    return 0, addr, 1, fl, 0


_HEXV = np.full(256, -1, dtype=np.int8)          # a hex digit's value (either case), else -1
_HEXV[48:58] = np.arange(10)
_HEXV[97:103] = np.arange(10, 16)
_HEXV[65:71] = np.arange(10, 16)
FAST_LINE = 64                                   # the fast path's longest line


@njit
def _lackey_run(buf, i, n, max_addr, shift, out_vpn, out_flags, k, st):
    """Consecutive well-formed lackey lines as valgrind writes them (``I  hex,dec`` and
    `` L|S|M hex,dec``: the address always at the fourth byte) in one tight loop, most of a
    trace: returns (position, references written) at the first line it leaves to the careful
    path (any other spacing, anything unusual, an error to explain, a record whose pages do
    not fit the output, the last 2 * FAST_LINE bytes of the buffer). The same rules as
    `_record`. The record kind is read at fixed offsets (no loop over spaces); an address of
    8 digits (valgrind's %08lx) is read without a loop and a hex digit's value comes from a
    table (no branch on digit or letter, which the data would make unpredictable); the digit
    loops stop by their count (no read goes more than FAST_LINE bytes ahead); indexes are cast
    to unsigned where they index (numba then leaves out its negative-index wraparound)."""
    cap = out_vpn.shape[0]
    lines = 0
    while i + 2 * FAST_LINE < n:
        c0 = int(buf[np.uint64(i)])
        c1 = int(buf[np.uint64(i + 1)])
        if int(buf[np.uint64(i + 2)]) != 32:
            break
        if c0 == 73 and c1 == 32:                  # "I  "
            fl = 2
        elif c0 == 32 and c1 == 76:                # " L "
            fl = 0
        elif c0 == 32 and (c1 == 83 or c1 == 77):  # " S ", " M "
            fl = 1
        else:
            break
        h = i + 3
        j = h
        v = 0
        bad = 0
        if int(buf[np.uint64(h + 8)]) == 44:      # 8 digits (%08lx): no loop, no branch per digit
            d0 = int(_HEXV[np.uint64(buf[np.uint64(h)])])
            d1 = int(_HEXV[np.uint64(buf[np.uint64(h + 1)])])
            d2 = int(_HEXV[np.uint64(buf[np.uint64(h + 2)])])
            d3 = int(_HEXV[np.uint64(buf[np.uint64(h + 3)])])
            d4 = int(_HEXV[np.uint64(buf[np.uint64(h + 4)])])
            d5 = int(_HEXV[np.uint64(buf[np.uint64(h + 5)])])
            d6 = int(_HEXV[np.uint64(buf[np.uint64(h + 6)])])
            d7 = int(_HEXV[np.uint64(buf[np.uint64(h + 7)])])
            if (d0 | d1 | d2 | d3 | d4 | d5 | d6 | d7) < 0:
                break
            v = (((((((d0 << 4 | d1) << 4 | d2) << 4 | d3) << 4 | d4) << 4 | d5) << 4 | d6) << 4) | d7
            j = h + 8
            c = 44
        else:
            c = int(buf[np.uint64(j)])
        while c != 44:                             # ','
            d = int(_HEXV[np.uint64(c)])
            if d < 0:
                bad = 1
                break
            v = v * 16 + d
            j += 1
            if j - h > 15:
                bad = 1
                break
            c = int(buf[np.uint64(j)])
        if bad == 1 or j == h:
            break
        j += 1
        size = 0
        h = j
        c = int(buf[np.uint64(j)])
        while 48 <= c <= 57 and j - h < 10:
            size = size * 10 + (c - 48)
            j += 1
            c = int(buf[np.uint64(j)])
        nd = j - h
        if nd == 0 or nd > 9:
            break
        if c == 13:
            j += 1
            c = int(buf[np.uint64(j)])
        if c != 10:
            break
        if size == 0:
            size = 1
        if v + size - 1 > max_addr:
            break
        a = v >> shift
        b = (v + size - 1) >> shift
        if k + (b - a) >= cap:
            break
        while a <= b:
            out_vpn[np.uint64(k)] = a
            out_flags[np.uint64(k)] = fl
            k += 1
            a += 1
        i = j + 1
        lines += 1
    st[0] += lines
    st[10] += lines
    return i, k


@njit
def _emit_pages(v, last, fl, out_vpn, out_flags, k, st):
    """One reference per page of [v, last] into the output arrays; when they fill up, the rest
    of the record is left pending in st[1..4] (st[1] = 1) for the next batch."""
    cap = out_vpn.shape[0]
    while v <= last and k < cap:
        out_vpn[k] = v
        out_flags[k] = fl
        k += 1
        v += 1
    if v <= last:
        st[1] = 1
        st[2] = v
        st[3] = last
        st[4] = fl
    return k


@entry("UniTuple(i8, 3)(u1[::1], i8, i8, i8, i8, i8, i8, i8, i8[::1], u1[::1], i8[::1])")
def parse_lines(buf, n, pos, final, fmt, shift, max_addr, skip_bad, out_vpn, out_flags, st):
    """Parse the lines of buf[pos:n] into (page, flags) references.

    Returns (position reached, references written, NEED_INPUT | OUT_FULL | BAD_LINE). A line
    without its newline is parsed only when `final` (the end of the input).
    """
    cap = out_vpn.shape[0]
    k = 0
    if st[1] == 1:                                 # finish a record from the last call
        st[1] = 0
        k = _emit_pages(st[2], st[3], st[4], out_vpn, out_flags, k, st)
        if st[1] == 1:
            return pos, k, 1
    i = pos
    while i < n:
        if k >= cap:
            return i, k, 1
        if fmt == 0:
            i0 = i
            i, k = _lackey_run(buf, i, n, max_addr, shift, out_vpn, out_flags, k, st)
            if k >= cap:
                return i, k, 1
            if i != i0:
                continue
        j = i
        while j < n and buf[j] != 10:
            j += 1
        if j >= n and final == 0:
            break
        e = j
        while e > i and (buf[e - 1] == 13 or _is_space(buf[e - 1])):
            e -= 1
        s = i
        while s < e and _is_space(buf[s]):
            s += 1
        if s == e:
            st[0] += 1
            i = j + 1
            continue
        why, addr, size, fl, skip = _record(buf, s, e, fmt, max_addr)
        if why == 0 and skip == 0:
            if size == 0:
                size = 1
            end = addr + size - 1
            if end > max_addr:
                why = 5
        if why != 0:
            if skip_bad == 0 or st[5] == 0:
                st[6] = st[0] + 1
                st[7] = why
                st[8] = i
                st[9] = j
            if skip_bad == 0:
                return i, k, 2
            st[5] += 1
            st[0] += 1
            i = j + 1
            continue
        st[0] += 1
        i = j + 1
        if skip == 1:
            continue
        st[10] += 1
        k = _emit_pages(addr >> shift, end >> shift, fl, out_vpn, out_flags, k, st)
        if st[1] == 1:
            return i, k, 1
    return i, k, 0
