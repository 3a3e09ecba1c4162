"""The page cache's folio sizes, as fault-around sees them (elfvm.mm.fault.fault_around_folios).

Two sources (`simulate-run --page-cache`):
  model  every page-cache page is its own (order-0) folio: deterministic, and what the kernel has
         for a file system without large folios; fault-around then maps the 16-page window alone.
  live   the folios the host's page cache holds for each host file the guest maps, read once per
         file from the running kernel (elfvm.host.pagecache: mincore, /proc/self/pagemap PFNs,
         /proc/kpageflags compound head/tail); root only. A file the guest wrote (the overlay)
         or one that cannot be read uses the model.
Whether fault-around maps a large folio whole is the kernel version's rule
(versions.FAULT_AROUND_WHOLE_FOLIO, v6.18).
"""

from __future__ import annotations

from elfvm.emu.vfs import Inode
from elfvm.errors import UsageError

SOURCES = ("model", "live")


def _small(index: int) -> tuple[int, int]:
    return index, 1


class PageCacheFolios:
    """Folio lookup per inode: `folio_of(ino)` -> callable(index) -> (first index, pages)."""

    def __init__(self, source: str, whole: bool):
        if source not in SOURCES:
            raise UsageError(f"--page-cache {source!r}: choose model or live")
        if source == "live":
            from elfvm.host import pagecache        # only live reads the host's page cache

            try:
                pagecache.check_readable()
            except pagecache.PageCacheUnreadable as e:
                raise UsageError(f"--page-cache live: {e}") from None
        self.source = source
        self.whole = whole
        self.layouts: dict[tuple, object] = {}   # host.pagecache.FolioLayout or None
        self.unreadable: dict[str, str] = {}            # host path -> why the model was used

    def folio_of(self, ino: Inode):
        if self.source == "model" or ino.host is None or ino.data is not None:
            return _small
        key = ino.key()
        if key not in self.layouts:
            from elfvm.host import pagecache

            try:
                self.layouts[key] = pagecache.folio_layout(ino.host)
            except OSError as e:
                self.layouts[key] = None
                self.unreadable[ino.host] = str(e)
        layout = self.layouts[key]
        return layout.folio_of if layout is not None else _small

    def describe(self) -> str:
        """One line for the report: the folio source and the kernel's fault-around rule."""
        rule = ("whole large folios inside the VMA and page table (Linux >= 6.18)" if self.whole
                else "the 16-page window only (Linux < 6.18)")
        if self.source == "model":
            src = "model (every page its own 4 KiB folio)"
        else:
            read = [v for v in self.layouts.values() if v is not None]
            large = sum(len(v.heads) for v in read)
            src = (f"live (host page cache: {len(read)} file(s) read, {large} large folio(s)"
                   + (f"; {len(self.unreadable)} unreadable, modelled" if self.unreadable else "")
                   + ")")
        return f"fault-around: 16 pages, {rule}; folio sizes: {src}"
