"""A swap device: page-sized slots in a temporary file, so swapped-out pages cost disk, not host
RAM (the file is deleted when it is closed or the process ends). The file is created by the
first page stored: most runs never swap, and creating it is ~0.3 ms of every start-up."""

from __future__ import annotations

import tempfile


class SwapDevice:
    """Slots of `page_size` bytes; `store` takes a free slot (lowest first), `load` reads one,
    `free` gives it back. `slots` is how many it may hold (None: as many as the disk)."""

    def __init__(self, page_size: int = 4096, slots: int | None = None):
        self.page_size = page_size
        self.slots = slots
        self._file = None
        self._free: list[int] = []
        self._next = 0
        self.used = 0

    def full(self) -> bool:
        return self.slots is not None and self.used >= self.slots

    def store(self, data: bytes) -> int:
        if self.full():
            raise OSError(f"swap is full ({self.slots} slots)")
        slot = self._free.pop() if self._free else self._next
        if slot == self._next:
            self._next += 1
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="elfvm-swap-")
        self._file.seek(slot * self.page_size)
        self._file.write(bytes(data).ljust(self.page_size, b"\0"))
        self.used += 1
        return slot

    def load(self, slot: int) -> bytes:
        self._file.seek(slot * self.page_size)
        return self._file.read(self.page_size)

    def free(self, slot: int) -> None:
        self._free.append(slot)
        self.used -= 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
