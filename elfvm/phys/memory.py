"""A sparse physical memory: RAM of `size` bytes, stored in 4 KiB chunks created on first write.

Reads of never-written RAM return zeros (what a freshly cleared frame holds). Addresses at or
above `size` are not RAM: touching them raises PhysicalAccessError (on a real machine they would
hit a PCI hole or nothing at all).
"""

from __future__ import annotations

import ctypes
import mmap

CHUNK_SHIFT = 12
CHUNK = 1 << CHUNK_SHIFT


class PhysicalAccessError(Exception):
    """An access to a physical address that is not RAM."""


class PhysicalMemory:
    """`size` bytes of RAM at physical addresses [0, size)."""

    __slots__ = ("size", "_chunks")

    def __init__(self, size: int):
        if size <= 0 or size % CHUNK:
            raise ValueError(f"RAM size must be a positive multiple of {CHUNK}: {size:#x}")
        self.size = size
        self._chunks: dict[int, bytearray] = {}

    def _check(self, addr: int, n: int) -> None:
        if addr < 0 or addr + n > self.size:
            raise PhysicalAccessError(f"physical address {addr:#x} (+{n}) is beyond RAM "
                                      f"({self.size:#x} bytes)")

    def read(self, addr: int, n: int) -> bytes:
        self._check(addr, n)
        out = bytearray()
        while n:
            c, off = addr >> CHUNK_SHIFT, addr & (CHUNK - 1)
            take = min(n, CHUNK - off)
            chunk = self._chunks.get(c)
            out += chunk[off:off + take] if chunk is not None else bytes(take)
            addr, n = addr + take, n - take
        return bytes(out)

    def write(self, addr: int, data: bytes) -> None:
        self._check(addr, len(data))
        pos = 0
        while pos < len(data):
            c, off = addr >> CHUNK_SHIFT, addr & (CHUNK - 1)
            take = min(len(data) - pos, CHUNK - off)
            chunk = self._chunks.get(c)
            if chunk is None:
                chunk = self._chunks[c] = bytearray(CHUNK)
            chunk[off:off + take] = data[pos:pos + take]
            addr, pos = addr + take, pos + take

    def read_uint(self, addr: int, size: int) -> int:
        """A little-endian entry of `size` bytes (4: i386 PDE/PTE; 8: PAE/x86-64 entries)."""
        if addr & (size - 1) == 0 and 0 <= addr and addr + size <= self.size:
            chunk = self._chunks.get(addr >> CHUNK_SHIFT)
            if chunk is None:
                return 0
            off = addr & (CHUNK - 1)
            return int.from_bytes(chunk[off:off + size], "little")
        return int.from_bytes(self.read(addr, size), "little")

    def write_uint(self, addr: int, size: int, value: int) -> None:
        self.write(addr, value.to_bytes(size, "little"))

    def word_reader(self, size: int):
        """A function of i giving the entry of `size` bytes at physical address i * size
        (read_uint of an aligned entry), for walks that read one entry per level."""
        read = self.read_uint
        return lambda i: read(i * size, size)

    def word_writer(self, size: int):
        """A function of (i, value) writing the entry of `size` bytes at physical address
        i * size (write_uint of an aligned entry): word_reader's counterpart."""
        write = self.write_uint
        return lambda i, value: write(i * size, size, value)

    def clear(self, addr: int, n: int) -> None:
        """Zero [addr, addr+n): dropping whole chunks keeps memory sparse."""
        self._check(addr, n)
        end = addr + n
        while addr < end:
            c, off = addr >> CHUNK_SHIFT, addr & (CHUNK - 1)
            take = min(end - addr, CHUNK - off)
            if take == CHUNK:
                self._chunks.pop(c, None)
            elif c in self._chunks:
                self._chunks[c][off:off + take] = bytes(take)
            addr += take

    @property
    def touched_bytes(self) -> int:
        return len(self._chunks) * CHUNK


class MappedMemory(PhysicalMemory):
    """RAM of `size` bytes in one anonymous host mapping, which an emulated CPU maps as its
    physical memory too (Unicorn's mem_map_ptr at `address`): the CPU's accesses and the page
    tables the MMU model writes and walks are the same bytes. The host commits a page only
    when it is first written, so an untouched frame costs nothing."""

    __slots__ = ("_map", "_view", "_u32", "_u64", "address")

    def __init__(self, size: int):
        if size <= 0 or size % CHUNK:
            raise ValueError(f"RAM size must be a positive multiple of {CHUNK}: {size:#x}")
        self.size = size
        self._chunks = {}
        # MAP_NORESERVE: a large --ram is address space, not a commitment (the overcommit
        # heuristic would refuse a mapping larger than the host's RAM + swap)
        flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_NORESERVE", 0x4000)   # Linux value; Python < 3.13 lacks the name
        try:
            self._map = mmap.mmap(-1, size, flags=flags)
        except OSError as e:
            raise MemoryError(f"the host cannot map {size >> 20} MiB for the model's RAM "
                              f"({e.strerror}): use a smaller --ram") from None
        self._view = memoryview(self._map)
        self._u32 = self._view.cast("I")
        self._u64 = self._view.cast("Q")
        self.address = ctypes.addressof(ctypes.c_char.from_buffer(self._map))

    def read(self, addr: int, n: int) -> bytes:
        self._check(addr, n)
        return bytes(self._view[addr:addr + n])

    def write(self, addr: int, data: bytes) -> None:
        self._check(addr, len(data))
        self._view[addr:addr + len(data)] = data

    def read_uint(self, addr: int, size: int) -> int:
        if size == 4 and not addr & 3:
            return self._u32[addr >> 2]
        if size == 8 and not addr & 7:
            return self._u64[addr >> 3]
        return int.from_bytes(self.read(addr, size), "little")

    def _words(self, size: int) -> memoryview | None:
        """The RAM as an array of `size`-byte words (4 or 8), else None."""
        return self._u32 if size == 4 else self._u64 if size == 8 else None

    def word_reader(self, size: int):
        """Indexing the RAM's words: the aligned read_uint."""
        words = self._words(size)
        return words.__getitem__ if words is not None else PhysicalMemory.word_reader(self, size)

    def word_writer(self, size: int):
        """Item assignment of the RAM's words: the aligned write_uint."""
        words = self._words(size)
        return words.__setitem__ if words is not None else PhysicalMemory.word_writer(self, size)

    def clear(self, addr: int, n: int) -> None:
        self._check(addr, n)
        self._view[addr:addr + n] = bytes(n)

    def buffer(self, addr: int, n: int) -> memoryview:
        """RAM [addr, addr+n) as a writable view: a file read straight into frames."""
        self._check(addr, n)
        return self._view[addr:addr + n]

    @property
    def touched_bytes(self) -> int:
        return self.size
