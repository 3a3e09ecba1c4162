"""Option plumbing shared by the commands: which options the user really gave, rejecting those
that do not apply to the chosen mode (no option is ever accepted and ignored), and click types
that check a number's range at parse time (so absurd values are usage errors, not crashes)."""

from __future__ import annotations

import math
import os

import click
from click.core import ParameterSource

from elfvm.errors import UsageError


def given(ctx: click.Context, *names: str) -> list[str]:
    """The flags (as the user spells them, e.g. '--fault-model') of the parameters among `names`
    that were given on the command line rather than left at their default."""
    flags = []
    for p in ctx.command.params:
        if p.name in names and ctx.get_parameter_source(p.name) not in (None, ParameterSource.DEFAULT):
            flags.append(max(p.opts, key=len) if p.opts else p.name)
    return flags


def reject(ctx: click.Context, names, why: str) -> None:
    """A usage error (exit 2) naming the first given option of `names` and why it does not apply."""
    bad = given(ctx, *names)
    if bad:
        raise UsageError(f"{bad[0]}: {why}")


def int_range(lo: int, hi: int | None = None) -> click.IntRange:
    """An integer option checked at parse time (click prints 'x is not in the range ...')."""
    return click.IntRange(lo, hi)


class FiniteFloat(click.ParamType):
    """A float in [lo, hi]: no nan, no inf (those would poison every derived number)."""

    name = "float"

    def __init__(self, lo: float = 0.0, hi: float = 1e12):
        self.lo, self.hi = lo, hi

    def convert(self, value, param, ctx):
        if isinstance(value, float):
            f = value
        else:
            try:
                f = float(value)
            except (TypeError, ValueError):
                self.fail(f"{escape(str(value))!s} is not a number", param, ctx)
        if not math.isfinite(f) or not self.lo <= f <= self.hi:
            self.fail(f"{escape(str(value))} is not in the range {self.lo:g}..{self.hi:g}", param, ctx)
        return f


def escape(text: str) -> str:
    """Text safe to echo on a terminal: control bytes and undecodable bytes (surrogate escapes
    from a non-UTF-8 argv or file) shown as \\xNN, never sent raw."""
    out = []
    for ch in text:
        o = ord(ch)
        if 0xDC80 <= o <= 0xDCFF:                  # os.fsdecode()'s surrogateescape of byte o-0xDC00
            out.append(f"\\x{o - 0xDC00:02x}")
        elif o < 0x20 or o == 0x7F or 0x80 <= o < 0xA0:
            out.append(f"\\x{o:02x}")
        else:
            out.append(ch)
    return "".join(out)


def drop_separator(args: tuple[str, ...]) -> tuple[str, ...]:
    """PROGRAM -- ARGS (the older spelling) means PROGRAM ARGS: one `--` right after PROGRAM is
    dropped; write it twice to pass a literal `--` as the first argument."""
    return args[1:] if args and args[0] == "--" else args


PROGRAM_CONTEXT = {"help_option_names": ["-h", "--help"], "allow_interspersed_args": False}


def printable(text: str) -> str:
    """Output text with the bytes of non-UTF-8 names (surrogate escapes) shown as \\xNN, so a
    report that names such a file can always be written to a UTF-8 stream. Text that encodes
    (almost every report) holds none and is returned as it is: the pattern's compilation
    (~0.13 ms of every command) is paid only for text with a surrogate in it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        import re

        return re.sub("[\udc80-\udcff]", lambda m: f"\\x{ord(m.group()) - 0xDC00:02x}", text)
    return text


def build_env(env_clear: bool, settings: tuple[str, ...]) -> list[str]:
    """The environment execve would receive: ours (in environ order) unless --env-clear, then
    each --env K=V replacing K in place or appended, like env(1)/putenv."""
    env = [] if env_clear else [f"{k}={v}" for k, v in os.environ.items()]
    for item in settings:
        if "=" not in item:
            raise UsageError(f"--env {item!r}: expected NAME=VALUE")
        key = item.split("=", 1)[0]
        for i, e in enumerate(env):
            if e.split("=", 1)[0] == key:
                env[i] = item
                break
        else:
            env.append(item)
    return env
