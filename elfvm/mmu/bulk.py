"""Many addresses at once (`translate --addresses FILE`): stream the answers, each page walked once.

`translate_stream()` answers inputs one after another as they are read, holding nothing but a
per-page cache, so a million addresses take constant memory and the first answers are printed
while the rest are still being read.

`JsonLines` renders each answer as one compact JSON object with exactly `Translation.to_json()`'s
keys, and never derives twice what an earlier answer already gave:

* a page: everything that depends only on the page (the walk, the VMA, the region, the fault of
  a page that is not present, the frame) comes from the first `translate()` of that page and is
  serialized once; per address only the offset, the physical address, the section and the
  symbol are filled in (the last two from the page's labels when no section edge or symbol lies
  inside the page);
* a hole (no VMA, the walk stops at a not-present entry): the fault reason names the address
  itself ("0x1234 lies in the hole below ..."), so it is not page-wide, but the same for every
  address of the hole with the address in it. The answer's text around the address is kept per
  hole and level where the walk stops, once two translations on different pages agree on it;
  the walk comes from the address space's own memo of the not-present entry it stopped at.

Anything else (a symbol, a selector, a page whose answers differ address by address, a live
process (--pid) that can change under us) is translated address by address.
"""

from __future__ import annotations

import itertools
import json
import re
from bisect import bisect_right
from json.encoder import encode_basestring_ascii as _quote
from typing import Iterable, Iterator

from elfvm.mm import fault as F
from elfvm.mm.vma import PAGE_SIZE
from elfvm.mmu.mmu import AddressSpace, Translation, TranslateError, walk_json

_compact = json.JSONEncoder(separators=(",", ":")).encode
_BOUND = 1 << 16                  # cached pages/holes/walks, whatever the input


def translate_one(space, text: str, access: str, cpl: int) -> Translation:
    """One input (number, SELECTOR:OFFSET or symbol) through the MMU model."""
    from elfvm.mmu.inputs import parse_spec

    spec = parse_spec(text, getattr(space, "images", {}), space.seg.registers)
    if spec.linear is not None:
        return space.translate(spec.linear, access, cpl, text=spec.text)
    return space.translate_logical(spec.selector, spec.offset, access, cpl, register=spec.register,
                                   text=spec.text)


def translate_stream(space, texts: Iterable[str], access: str = "r",
                     cpl: int = 3) -> Iterator[Translation | TranslateError]:
    """Each input's Translation, or the TranslateError that rejected it, in input order."""
    for t in texts:
        try:
            yield translate_one(space, t, access, cpl)
        except TranslateError as e:
            e.input = t
            yield e


class _Page:
    """The page-wide part of the answers for one page, serialized once."""

    __slots__ = ("mid", "tail", "phys_base", "mask", "image", "starts", "stretches", "fixed", "record",
                 "pid", "same")

    def __init__(self, space: AddressSpace, t: Translation, lo: int, ids=None):
        j = t.to_json()
        self.record = self.pid = None
        if ids is not None:                 # compact: the page's record and the lines' middle
            pid = self.pid = next(ids)
            self.record = page_record(pid, j, _walk_text(t.walk))
            self.mid = f',"page":{pid},"page_offset":'
            self.tail = ',"section":'
        self.mask = t.page_size - 1
        self.phys_base = None if t.physical is None else t.physical - t.page_offset
        if ids is None:
            self.mid = ',"walk":' + _walk_text(t.walk) + ',"page_offset":'
            self.tail = (',"fault":' + _compact(j["fault"]) + ',"region":' + _compact(j["region"]) +
                         ',"vma":' + _compact(j["vma"]) + ',"section":')
        # the page's labels: per stretch between section edges and symbols, the section's
        # JSON, the symbol's name (quoted, left open) and its run-time address
        image = space.image_of(t.vma) if t.vma is not None else None
        stretches = [(lo, None, None, 0)]
        if image is not None:
            stretches = image.label_stretches(lo, lo + t.page_size) or []
        self.image = image if not stretches else None          # else: image by image
        self.starts = [st[0] for st in stretches]
        self.stretches = [(_compact(sec), "" if sym is None else _quote(sym)[:-1], at)
                          for _, sec, sym, at in stretches]
        self.fixed = None                   # the labels' JSON when the same for the whole page
        if self.image is None and len(self.stretches) == 1 and not self.stretches[0][1]:
            self.fixed = self.stretches[0][0] + ',"symbol":null'
        # a not-present page of a VMA that is no file's (anonymous, special) and has no labels:
        # its answer but for the walk, which other such pages of the VMA may share (a file's
        # answers name their file offset; JsonLines._vma_runs)
        self.same = None
        if image is None and t.vma is not None and t.vma.file is None and t.physical is None \
                and t.fault is not None and self.fixed is not None and t.walk and t.walk[-1].present is False:
            self.same = (t.vma.start, t.vma.end, len(t.walk),
                         _compact({"region": j["region"], "vma": j["vma"], "fault": j["fault"]}))

    def labels(self, lin: int) -> str:
        """`section` and `symbol`'s JSON values for `lin`."""
        if self.image is not None:
            a, b = self.image.section_at(lin), self.image.symbol_at(lin)
            return ("null" if a is None else _quote(a)) + ',"symbol":' + ("null" if b is None else _quote(b))
        st = self.stretches
        sec, sym, at = st[0] if len(st) == 1 else st[bisect_right(self.starts, lin) - 1]
        if not sym:
            return sec + ',"symbol":null'
        off = lin - at
        return f'{sec},"symbol":{sym}"' if off == 0 else f'{sec},"symbol":{sym}+{off:#x}"'


def page_record(pid: int, j: dict, walk_json: str | None = None, reason_per_address: bool = False) -> str:
    """The compact format's record of a page: what every address of it shares. With
    `reason_per_address` the fault's reason is null here and on each address's line."""
    fault = j["fault"]
    if fault is not None and reason_per_address:
        fault = {"kind": fault["kind"], "reason": None}
    rest = _compact({"region": j["region"], "vma": j["vma"], "fault": fault})
    walk = _compact(j["walk"]) if walk_json is None else walk_json
    return f'{{"page":{pid},"walk":{walk},{rest[1:]}'


class _Hole:
    """The answers of one hole at one walk level: the JSON after the walk, split where the
    address is named (`parts`), and for the compact format the fault's reason split the same
    way, the record's JSON after the walk (`rest`) and the labels' JSON."""

    __slots__ = ("parts", "page", "checked", "reason", "rest", "labels")

    def __init__(self, parts: list[str], page: int, t: Translation):
        self.parts, self.page, self.checked = parts, page, False
        j = t.to_json()
        self.reason = _quote(j["fault"]["reason"]).split(f"{t.linear:#x}") if j["fault"] else None
        self.rest = page_record(0, j, "", reason_per_address=True).partition(',"walk":')[2]
        self.labels = f',"section":{_compact(j["section"])},"symbol":{_compact(j["symbol"])}'


class _HolePage:
    """A page of a hole, for the compact format: its record (printed once) and the labels."""

    __slots__ = ("pid", "record", "hole", "labels")

    def __init__(self, pid: int, walk_json: str, hole: _Hole):
        self.pid, self.hole = pid, hole
        self.record = f'{{"page":{pid},"walk":{walk_json}{hole.rest}'     # page_record()'s
        self.labels = hole.labels


_PER_ADDRESS = object()
_JSON = {None: "null", True: "true", False: "false"}


def _num(v: int | None) -> str:
    return "null" if v is None else str(v)


def _text(v: str | None) -> str:
    return "null" if v is None else _quote(v)


_HEX = r"0x[0-9a-f]+"          # (re's own cache compiles it once, when a template is first made)
_START_MASK = ~(PAGE_SIZE - 1) & ((1 << 64) - 1)      # a stack's new start: the address & this


def _template(text: str, values) -> str | None:
    """`text` with each hex number equal to one of `values` (value, op) replaced by its op;
    None when a number equals two of them (which is which cannot be told)."""
    out, at = [], 0
    for m in re.finditer(_HEX, text):
        ops = [op for v, op in values if v == int(m.group(), 16)]
        if len(ops) > 1:
            return None
        if ops:
            out += (text[at:m.start()], ops[0])
            at = m.end()
    return "".join(out) + text[at:]


def _walk_text(walk: list) -> str:
    """_compact(walk_json(walk)), written directly."""
    return "[" + ",".join(f'{{"level":{_quote(w.level)},"index":{w.index},"entry":'
                          f'{"null" if w.entry is None else w.entry},"present":{_JSON[w.present]}}}'
                          for w in walk) + "]"


class JsonLines:
    """Compact JSON text, one object per input, with `Translation.to_json()`'s keys; or with
    `compact`, the bulk format: a record per page (`page_record`) the first time a page is
    used, then one short line per address naming its page (docs/commands.md)."""

    def __init__(self, space, access: str = "r", cpl: int = 3, compact: bool = False):
        self.space, self.access, self.cpl = space, access, cpl
        self.fast = type(space) is AddressSpace
        self.shift = space.geom.offset_bits
        self.limit = min(space.geom.max_linear, (1 << 32) - 1)   # beyond: translate() decides
        self.ids = itertools.count() if compact else None
        self.pages: dict[int, object] = {}
        self.holes: dict[tuple, _Hole | None] = {}
        self.walks: dict[int, tuple] = {}
        self.hole_pages: dict[tuple, tuple] = {}
        self.vma_ends: list[int] | None = None
        self.native = None      # the compiled loop (bulk_native), whose pages are answered by it
        self.stacks: dict[tuple, list | None] = {}
        self.vma_pages: dict[tuple, list] = {}

    def lines(self, texts: Iterable[str], rejected) -> list[str]:
        """The JSON of each input; a rejected one goes to `rejected(text, error)` instead. The
        common case, a number on a page already described, is done here in line; everything
        else is `line()`'s."""
        out = []
        append, line, get = out.append, self.line, self.pages.get
        shift, limit = self.shift, (self.limit if self.fast else -1)
        for text in texts:
            try:
                lin = int(text, 0)         # (a selector, a symbol: ValueError, line() decides)
            except ValueError:
                lin = -1
            page = get(lin >> shift) if 0 <= lin <= limit else None
            if page.__class__ is _Page and page.record is None:
                off = lin & page.mask
                s = str(lin)
                q = f'"{text}"' if text.isascii() else _quote(text)   # a number: nothing to escape
                phys = "null" if page.phys_base is None else page.phys_base + off
                labels = page.fixed or page.labels(lin)
                append(f'{{"input":{q},"virtual":{s},"linear":{s}{page.mid}{off},"physical":{phys}'
                       f'{page.tail}{labels}}}')
                continue
            try:
                append(line(text))
            except TranslateError as e:
                rejected(text, e)
        return out

    def line(self, text: str, ask_native: bool = True) -> str:
        """The JSON of one input (compact: preceded by its page's record, the first time); raises
        TranslateError for a bad one. `ask_native`: False when the compiled loop is known not to
        answer it."""
        lin = None
        if self.fast and ":" not in text:
            try:
                lin = int(text, 0)
            except ValueError:
                pass
        if lin is None or not 0 <= lin <= self.limit:   # a symbol, a selector, or an error to report
            return self._full(text)
        page = self.pages.get(lin >> self.shift)
        if page is None:
            if ask_native and self.native is not None:   # a page whose number the loop gave
                got = self.native.one(lin, text)
                if got is not None:
                    return got
            page = self._first(lin, text)
            if page.__class__ is Translation:
                return self._render(page)
        if page.__class__ is _Page:
            off = lin & page.mask
            s = str(lin)
            phys = "null" if page.phys_base is None else str(page.phys_base + off)
            out = (f'{{"input":{_quote(text)},"virtual":{s},"linear":{s}{page.mid}{off},"physical":'
                   f'{phys}{page.tail}{page.labels(lin)}}}')
            if page.record is not None:
                out, page.record = page.record + "\n" + out, None
            return out
        if page is _PER_ADDRESS:          # (translate_one() of a number, without parsing it again)
            return self._render(self.space.translate(lin, self.access, self.cpl, text=text.strip()))
        return self._hole_line(lin, text, page)

    def _hole_line(self, lin: int, text: str, page) -> str:
        s, h = str(lin), f"{lin:#x}"
        head = f'{{"input":{_quote(text)},"virtual":{s},"linear":{s}'
        off = lin & ((1 << self.shift) - 1)
        if page.__class__ is tuple:
            walk_json, hole = page
            return f'{head},"walk":{walk_json},"page_offset":{off},"physical":null{h.join(hole.parts)}'
        out = (f'{head},"page":{page.pid},"page_offset":{off},"physical":null{page.labels},'
               f'"reason":{h.join(page.hole.reason)}}}')
        if page.record is not None:
            out, page.record = page.record + "\n" + out, None
        return out

    def _render(self, t: Translation) -> str:
        """A translation's own answer (nothing shared): its JSON (_compact(t.to_json()), the
        numbers, names and walk written directly), or its record and line."""
        j = t.to_json()
        head = f'{{"input":{_text(j["input"])},"virtual":{_num(j["virtual"])},"linear":{_num(j["linear"])}'
        mid = f',"page_offset":{_num(j["page_offset"])},"physical":{_num(j["physical"])}'
        labels = f',"section":{_text(j["section"])},"symbol":{_text(j["symbol"])}}}'
        if self.ids is None:
            rest = _compact({"fault": j["fault"], "region": j["region"], "vma": j["vma"]})
            return f'{head},"walk":{_walk_text(t.walk)}{mid},{rest[1:-1]}{labels}'
        pid = next(self.ids)
        return f'{page_record(pid, j, _walk_text(t.walk))}\n{head},"page":{pid}{mid}{labels}'

    def _first(self, lin: int, text: str):
        """A page seen for the first time: its cache entry, or the Translation to print."""
        if len(self.pages) >= _BOUND:
            self.pages.clear()
        key = lin >> self.shift
        hole_key, walk = self._hole_key(lin)
        if hole_key is not None:
            hole = self.holes.get(hole_key)
            if hole is not None and hole.checked:
                entry = self.pages[key] = self._hole_page(walk, hole)
                return entry
            t = self.space.translate(lin, self.access, self.cpl, text=text)
            self._learn_hole(hole_key, hole, t, key)
            return t
        t = self.space.translate(lin, self.access, self.cpl, text=text)
        if t.fault is not None and f"{lin:#x}" in t.fault.reason:
            self.pages[key] = _PER_ADDRESS            # not page-wide (nor a hole we know)
            if self.native is not None:
                self._learn_stack(lin, t)
            return t
        page = self.pages[key] = _Page(self.space, t, lin - (lin & (t.page_size - 1)), self.ids)
        if page.same is not None and self.native is not None:
            got = self.vma_pages.get(page.same[:3])
            if got is None:
                self.vma_pages[page.same[:3]] = [page.same, key, False]
            elif not got[2] and got[1] != key:
                got[2] = got[0] == page.same
                if not got[2]:
                    got[0] = None                 # the VMA's pages differ: one by one
        return page

    def _hole_key(self, lin: int) -> tuple[tuple | None, list]:
        """(What a hole's answers depend on besides the address: the walk's length (the level
        whose entry is not present), the region and the VMA above (find_vma), or None when
        `lin` is in no hole; the walk). Below a stack VMA the answer is stack growth, page by
        page (expand_stack): no hole either."""
        sp = self.space
        w, walk = sp.walk_of(lin)
        if w is None or w.present or w.rsvd or sp.mm is None:
            return None, walk
        if lin < sp.task_size:
            above = sp.mm.find_vma(lin)
            if above is not None and (above.start <= lin or above.growsdown):
                return None, walk
            return (len(walk), sp.region_of(lin)[0], above.start if above is not None else None), walk
        return (len(walk), sp.region_of(lin)[0], "task_size"), walk

    def _learn_hole(self, hole_key: tuple, hole: _Hole | None, t: Translation, page: int) -> None:
        """Keep the text of `t`'s answer around its address; trust it once a translation on
        another page gives the same text."""
        if hole_key in self.holes and hole is None:
            return                                    # known to differ page by page
        j = t.to_json()
        if t.physical is not None or t.vma is not None or t.page_offset != t.linear & ((1 << self.shift) - 1):
            self.holes[hole_key] = None
            return
        tail = _compact({k: j[k] for k in ("fault", "region", "vma", "section", "symbol")})
        parts = ("," + tail[1:]).split(f"{t.linear:#x}")
        if hole is None:
            if len(self.holes) >= _BOUND:
                self.holes.clear()
            self.holes[hole_key] = _Hole(parts, page, t)
        elif hole.page != page:
            if parts == hole.parts:
                hole.checked = True
            else:
                self.holes[hole_key] = None

    def _hole_page(self, walk: list, hole: _Hole):
        """The cache entry of a page of a known hole: (walk JSON, hole); compact: the record
        shared by every page below the same not-present entry of the same hole."""
        walk_json = self._walk_json(walk)
        if self.ids is None:
            return walk_json, hole
        key = (id(walk), id(hole))
        got = self.hole_pages.get(key)
        if got is None or got[0] is not walk or got[1] is not hole:
            if len(self.hole_pages) >= _BOUND:
                self.hole_pages.clear()
            got = self.hole_pages[key] = (walk, hole, _HolePage(next(self.ids), walk_json, hole))
        return got[2]

    def _walk_json(self, walk: list) -> str:
        """The walk's JSON, once per walk record (the address space shares one record among the
        addresses below a not-present entry); the record is kept alive with its text."""
        got = self.walks.get(id(walk))
        if got is None:
            if len(self.walks) >= _BOUND:
                self.walks.clear()
            got = self.walks[id(walk)] = (walk, _walk_text(walk))
        return got[1]

    def _full(self, text: str) -> str:
        return self._render(translate_one(self.space, text, self.access, self.cpl))

    # --- what the native loop (elfvm.mmu.bulk_native) is given ------------------------------
    def shared_answer(self, lin: int, runs: bool = True) -> tuple | None:
        """The answer cached for `lin` as the native loop fills it in for every address that
        shares it: (page?, spans, mask, frame base or -1, template, stretches, run), the spans
        [lo, hi) being the addresses line() answers from the same cache entry (a page; in a
        hole, every page below the same not-present entry with the same hole key, or with
        `runs`, every such entry of its table: _hole_runs, whose `run` it is, else None), the
        template the line after its "linear" value with \1 the page offset (`lin & mask`), \2
        the physical address, \3 the address in hex, \4 the labels: the stretch (start, text,
        symbol?, symbol's address) holding the address, and in a run \5 the page's number, \6
        its entry's index (`run` ends with the record's template then; below a stack, \7 and
        \10 its new start and size, `run` with the start's mask and the stack's end). None:
        line() answers each address itself (nothing cached, a record not printed yet, labels
        looked up address by address)."""
        page = self.pages.get(lin >> self.shift)
        lo = lin >> self.shift << self.shift
        if page.__class__ is _Page:
            if page.record is not None or page.image is not None:
                return None
            if page.same is not None and runs:
                got = self._vma_runs(lin, page)
                if got is not None:
                    return got
            st = [(start, sec + ',"symbol":' + (sym or "null"), bool(sym), at)
                  for start, (sec, sym, at) in zip(page.starts, page.stretches)]
            if any(sym and at > start for start, _, sym, at in st):
                return None
            tmpl = page.mid + '\1,"physical":\2' + page.tail + "\4}"
            phys = -1 if page.phys_base is None else page.phys_base
            return True, [(lo, lo + (1 << self.shift))], page.mask, phys, tmpl, st, None
        if page.__class__ is _HolePage:
            if page.record is not None:
                return None
            hole, pid = page.hole, page.pid
        elif page.__class__ is tuple:
            hole, pid = page[1], None
        elif page is _PER_ADDRESS:
            return self._stack_answer(lin) if runs else None
        else:
            return None
        runs = self._hole_runs(lin, pid) if runs else None
        if runs is not None:
            spans, run, walk_json = runs
        else:
            span = self._hole_span(lin)
            if span is None:
                return None
            spans, run, walk_json = [span], None, self._walk_json(self.space.walk_of(lin)[1])
        if pid is None:
            tmpl = f',"walk":{walk_json},"page_offset":\1,"physical":null' + "\3".join(hole.parts)
        else:
            tmpl = (f',"page":{pid if run is None else chr(5)},"page_offset":\1,"physical":null'
                    f'{hole.labels},"reason":' + "\3".join(hole.reason) + "}")
            if run is not None:
                run += (f'{{"page":\5,"walk":{walk_json}{hole.rest}',)      # _HolePage's record
        return False, spans, (1 << self.shift) - 1, -1, tmpl, [], run

    def _hole_runs(self, lin: int, pid: int | None, zone: tuple[int, int] | None = None) -> tuple | None:
        """The whole of `lin`'s hole (or of its `zone` below the stack) under the same table as
        its walk's not-present entry, for the compiled loop: every entry of that table, in the
        hole, that is the same not-present entry (an address below it walks the same steps but
        that entry's index, and gets the same answer: the same hole key) is a page of its own (a
        record, a page number). Returns (the address ranges of those entries, (index shift,
        index mask, first entry's address, page numbers given so far per entry (-1: none)), the
        walk's JSON with \6 for the index), or None: one walk record at a time (_hole_span)."""
        sp = self.space
        if self.shift > 12:     # pages larger than the VMAs' 4 KiB: a page partly in a VMA is
            return None         # answered as its first address found it, which is Python's to know
        walk = sp.walk_of(lin)[1]
        k, g = len(walk) - 1, sp.geom
        step = walk[k]
        if step.table is None or step.entry is None or step.present or sp.pt is None:
            return None
        shifts, sh = g.shifts, g.shifts[k]
        plo, phi = (lin >> shifts[k - 1] << shifts[k - 1], ((lin >> shifts[k - 1]) + 1) << shifts[k - 1]) \
            if k else (0, g.max_linear + 1)
        span = self._hole_span(lin, plo, phi) if zone is None else (max(plo, zone[0]), min(phi, zone[1]))
        if span is None or span[0] >= span[1]:
            return None
        lo, hi = span
        kmask, first = (1 << g.level_bits[k]) - 1, lo >> sh
        n = ((hi - 1) >> sh) - first + 1
        if n > 4096:
            return None
        es = g.entry_size              # the table's entries at once (as free_pgtables reads them)
        raw = memoryview(sp.pt.mem.read(step.table + (first & kmask) * es, n * es))
        raw = raw.cast("Q" if es == 8 else "I")
        spans, start = [], None
        for i, v in enumerate(itertools.chain(raw, (None,))):
            if v == step.entry and start is None:
                start = i
            elif v != step.entry and start is not None:
                spans.append((max(lo, (first + start) << sh), min(hi, (first + i) << sh)))
                start = None
        pids = [-1] * n
        if pid is not None:
            pids[(lin >> sh) - first] = pid
        head = _walk_text(walk[:k])[:-1]
        walk_json = (f'{head}{"," if k else ""}{{"level":{_quote(step.level)},"index":\6,"entry":'
                     f'{step.entry},"present":false}}]')
        return spans, (sh, kmask, first << sh, pids), walk_json

    def _vma_runs(self, lin: int, page: _Page) -> tuple | None:
        """shared_answer() for a page of a VMA without labels whose entry is not present, once
        two such pages of the VMA gave the same answer but for the walk: every page of the VMA
        under the same table whose entry is the same not-present one, each a page of its own
        (_hole_runs)."""
        got = self.vma_pages.get(page.same[:3])
        if got is None or not got[2] or got[0] != page.same:
            return None
        runs = self._hole_runs(lin, page.pid, page.same[:2])
        if runs is None:
            return None
        spans, run, walk_json = runs
        if self.ids is None:
            tmpl = f',"walk":{walk_json},"page_offset":\1,"physical":null{page.tail}{page.fixed}}}'
            return False, spans, page.mask, -1, tmpl, [], run
        tmpl = f',"page":\5,"page_offset":\1,"physical":null,"section":{page.fixed}}}'
        rec = f'{{"page":\5,"walk":{walk_json},{page.same[3][1:]}'                  # page_record()'s
        return False, spans, page.mask, -1, tmpl, [], (*run, rec)

    # --- below a stack that cannot grow: every address a page of its own ---------------------
    def _stack_key(self, lin: int) -> tuple | None:
        """(the walk's length, the zone [lo, hi) whose addresses expand_stack() refuses for the
        same reason, the stack VMA's end) of an address below a stack VMA; None elsewhere."""
        sp = self.space
        if sp.mm is None or lin >= sp.task_size:
            return None
        vma = sp.mm.find_vma(lin)
        if vma is None or not vma.growsdown or vma.start <= lin:
            return None
        return (len(sp.walk_of(lin)[1]), *F.stack_growth_zone(sp.mm, vma, lin, sp.rlimit_stack), vma.end)

    def _learn_stack(self, lin: int, t: Translation) -> None:
        """The answer of an address below the stack (its fault's reason names it) as a template
        of what changes address by address (the address, the stack's new start and size: the
        hex numbers of the text equal to them); trusted once two pages of the same zone give
        the same template."""
        key = self._stack_key(lin)
        if key is None or key in self.stacks and self.stacks[key] is None:
            return
        j = t.to_json()
        if any(j[k] is not None for k in ("vma", "physical", "section", "symbol")):
            self.stacks[key] = None
            return
        start = lin & ~(PAGE_SIZE - 1)
        values = ((lin, "\3"), (start, "\7"), (key[3] - start, "\10"))
        parts = [_template(_compact({k: j[k] for k in order}), values)
                 for order in (("region", "vma", "fault"), ("fault", "region", "vma"))]
        if None in parts:
            return                                # (an address equal to its page: the next one)
        got = self.stacks.get(key)
        if got is None:
            self.stacks[key] = [parts, lin >> self.shift, False]
        elif not got[2] and got[1] != lin >> self.shift:
            if got[0] == parts:
                got[2] = True
            else:
                self.stacks[key] = None

    def _stack_answer(self, lin: int) -> tuple | None:
        """shared_answer() below a stack, once its zone's template is trusted: the zone's runs,
        each address a page of its own (compact: a record per address)."""
        key = self._stack_key(lin)
        got = self.stacks.get(key) if key is not None else None
        if got is None or not got[2]:
            return None
        runs = self._hole_runs(lin, None, key[1:3])
        if runs is None:
            return None
        spans, run, walk_json = runs
        (record, fields), labels = got[0], ',"section":null,"symbol":null}'
        if self.ids is None:
            tmpl = f',"walk":{walk_json},"page_offset":\1,"physical":null,{fields[1:-1]}{labels}'
            return False, spans, (1 << self.shift) - 1, -1, tmpl, [], (*run[:3], [], "", _START_MASK, key[3])
        tmpl = ',"page":\5,"page_offset":\1,"physical":null' + labels
        rec = f'{{"page":\5,"walk":{walk_json},{record[1:]}'                # page_record()'s
        return False, spans, (1 << self.shift) - 1, -1, tmpl, [], (*run[:3], [], rec, _START_MASK, key[3])

    def _hole_span(self, lin: int, lo: int | None = None, hi: int | None = None) -> tuple[int, int] | None:
        """The addresses around `lin`, in a hole, whose _first() gives the same cache entry: the
        same walk record (below the same not-present entry: walk_of's span) and the same hole key
        (the same VMA above, no VMA in between, the same region); or those of [lo, hi) with the
        same hole key. None in a native kernel half, whose regions change page by page."""
        sp = self.space
        if lo is None:
            sh = sp.geom.shifts[len(sp.walk_of(lin)[1]) - 1]
            lo, hi = lin >> sh << sh, ((lin >> sh) + 1) << sh
        hi = min(hi, self.limit + 1)
        if lin >= sp.task_size:
            return None if sp.kernel is not None else (max(lo, sp.task_size), hi)
        top = sp.task_size if sp.kernel is None else min(sp.task_size, sp.kernel.page_offset)
        if self.vma_ends is None:                 # the VMAs do not change while we translate
            self.vma_ends = [v.end for v in sp.mm.vmas]
        i = bisect_right(self.vma_ends, lin)      # mm.vmas[i] is find_vma(lin)
        below = self.vma_ends[i - 1] if i else 0
        above = sp.mm.vmas[i].start if i < len(self.vma_ends) else top
        return max(lo, below), min(hi, top, above)
