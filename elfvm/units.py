"""Sizes on the command line: 4096, 0x1000, 100K, 8M, 1G, unlimited."""

from __future__ import annotations

RLIM_INFINITY = (1 << 64) - 1
PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT          # the one page size: i386 pages, and the host's (x86)
_SUFFIX = {"": 1, "B": 1, "K": 1 << 10, "KB": 1 << 10, "KIB": 1 << 10, "M": 1 << 20, "MB": 1 << 20,
           "MIB": 1 << 20, "G": 1 << 30, "GB": 1 << 30, "GIB": 1 << 30, "T": 1 << 40}


def parse_size(text: str, *, allow_unlimited: bool = False) -> int:
    """Parse a byte size; binary suffixes (K = 1024). Raises ValueError with a readable reason."""
    t = text.strip().upper()
    if allow_unlimited and t in ("UNLIMITED", "INFINITY", "INF"):
        return RLIM_INFINITY
    if t.startswith("0X"):
        return int(t, 16)
    num = t.rstrip("KMGTIB")
    suffix = t[len(num):]
    if suffix not in _SUFFIX or not num:
        raise ValueError("expected a size such as 4096, 0x1000, 100K, 8M or 1G"
                         + (" or 'unlimited'" if allow_unlimited else ""))
    try:
        value = float(num) if "." in num else int(num)
    except ValueError:
        raise ValueError("expected a size such as 4096, 0x1000, 100K, 8M or 1G") from None
    if value < 0:
        raise ValueError("a size cannot be negative")
    return int(value * _SUFFIX[suffix])


def human_size(n: int) -> str:
    """4096 -> '4 KiB', 0x4000000 -> '64 MiB', 1.5 GiB -> '1.5 GiB'."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            v = n / (1 << shift)
            return f"{v:.1f} {unit}".replace(".0 ", " ")
    return f"{n} B"
