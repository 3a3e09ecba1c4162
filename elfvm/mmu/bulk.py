"""Many addresses at once (`translate --addresses FILE`): stream the answers, each page walked once.

`translate_stream()` answers inputs one after another as they are read, holding nothing but a
per-page cache, so a million addresses take constant memory and the first answers are printed
while the rest are still being read.

`JsonLines` renders each answer as one compact JSON object with exactly `Translation.to_json()`'s
keys. Everything that depends only on the page (the walk, the VMA, the region, the fault of a
page that is not present, the frame) comes from the first `translate()` of that page and is
serialized once; per address only the offset, the physical address, the section and the symbol
are filled in. A fault whose reason names the address itself (a hole, above TASK_SIZE ...) is not
page-wide, so such pages are translated address by address. A live process (--pid) can change
under us: it is always translated address by address.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii as _quote
from typing import Iterable, Iterator

from elfvm.mmu.mmu import AddressSpace, Translation, TranslateError

_compact = json.JSONEncoder(separators=(",", ":")).encode


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

    __slots__ = ("mid", "tail", "phys_base", "mask", "image")

    def __init__(self, space: AddressSpace, t: Translation):
        j = t.to_json()
        self.mask = t.page_size - 1
        self.phys_base = None if t.physical is None else t.physical - t.page_offset
        self.mid = ',"walk":' + _compact(j["walk"]) + ',"page_offset":'
        self.tail = (',"fault":' + _compact(j["fault"]) + ',"region":' + _compact(j["region"]) +
                     ',"vma":' + _compact(j["vma"]) + ',"section":')
        self.image = space.image_of(t.vma) if t.vma is not None else None


class JsonLines:
    """Compact JSON text, one object per input, with `Translation.to_json()`'s keys."""

    def __init__(self, space, access: str = "r", cpl: int = 3):
        self.space, self.access, self.cpl = space, access, cpl
        self.fast = type(space) is AddressSpace
        self.shift = space.geom.offset_bits
        self.pages: dict[int, _Page | None] = {}

    def line(self, text: str) -> str:
        """The JSON of one input; raises TranslateError for a bad one."""
        lin = None
        if self.fast and ":" not in text:
            try:
                lin = int(text, 0)
            except ValueError:
                pass
        if lin is None or lin < 0:                 # a symbol, a selector, or an error to report
            return self._full(text)
        key = lin >> self.shift
        page = self.pages.get(key, False)
        if page is False:
            t = self.space.translate(lin, self.access, self.cpl, text=text)
            page = None
            if t.fault is None or f"{lin:#x}" not in t.fault.reason:
                page = _Page(self.space, t)
            if len(self.pages) >= 1 << 16:           # bounded, whatever the input
                self.pages.clear()
            self.pages[key] = page
            if page is None:
                return _compact(t.to_json())
        elif page is None:
            return self._full(text)
        off = lin & page.mask
        s = str(lin)
        sec = sym = "null"
        im = page.image
        if im is not None:
            a, b = im.section_at(lin), im.symbol_at(lin)
            sec = "null" if a is None else _quote(a)
            sym = "null" if b is None else _quote(b)
        phys = "null" if page.phys_base is None else str(page.phys_base + off)
        return (f'{{"input":{_quote(text)},"virtual":{s},"linear":{s}{page.mid}{off},"physical":'
                f'{phys}{page.tail}{sec},"symbol":{sym}}}')

    def _full(self, text: str) -> str:
        return _compact(translate_one(self.space, text, self.access, self.cpl).to_json())
