"""--kernel VERSION and the CPU-given auxv values (--hwcap, --hwcap2, --minsigstksz): the options
layout, translate and simulate-run share to predict for another kernel or another machine."""

from __future__ import annotations

from dataclasses import replace

import click

from elfvm.errors import UsageError

KERNEL_HELP = ("Kernel version to model, e.g. 5.15, 6.1, 6.1.176, 6.5.10, 6.8, 6.12, 6.18 "
               "(default: this machine's kernel for linux-x86_64-compat, Debian 12's 6.1.176 for "
               "linux-i386).")


def _u32(ctx, param, value):
    if value is None:
        return None
    try:
        n = int(value, 0)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a number (decimal or 0x hex)") from None
    if not 0 <= n <= 0xFFFFFFFF:
        raise click.BadParameter(f"{value} does not fit the 32-bit auxv word")
    return n


def kernel_options(f=None, *, auxv: bool = True):
    """Add --kernel and (with `auxv`) --hwcap, --hwcap2 and --minsigstksz. translate takes only
    --kernel: the CPU's auxv words move no mapping, so they would change nothing it prints."""
    if f is None:
        return lambda g: kernel_options(g, auxv=auxv)
    opts = [
        click.option("--kernel", "kernel_version", metavar="VERSION", default=None, help=KERNEL_HELP),
        click.option("--hwcap", callback=_u32, default=None, metavar="N",
                     help="AT_HWCAP (CPUID.1:EDX; default: this machine's CPU)."),
        click.option("--hwcap2", callback=_u32, default=None, metavar="N",
                     help="AT_HWCAP2 (default: this machine's CPU)."),
        click.option("--minsigstksz", callback=_u32, default=None, metavar="N",
                     help="AT_MINSIGSTKSZ (from the CPU's xstate size; default: this machine's)."),
    ]
    for o in reversed(opts if auxv else opts[:1]):
        f = o(f)
    return f


def make_kernel_profile(name: str, split: str = "3G", *, kernel_version: str | None = None,
                        hwcap: int | None = None, hwcap2: int | None = None,
                        minsigstksz: int | None = None, **kw):
    """make_profile() with the version and the CPU values the user gave; a clear usage error
    for a version elfvm cannot parse."""
    from elfvm.kernel.profile import host_facts, make_profile

    host = host_facts()
    cpu = {k: v for k, v in (("hwcap", hwcap), ("hwcap2", hwcap2), ("minsigstksz", minsigstksz))
           if v is not None}
    try:
        return make_profile(name, split, host=replace(host, **cpu), kernel=kernel_version, **kw)
    except ValueError as e:
        msg = str(e)
        raise UsageError(f"--kernel: {msg}" if "kernel version" in msg or "cover Linux" in msg
                         else msg) from None


def kernel_note(profile) -> str | None:
    """The one-line note when the version is not modelled exactly (nearest vDSO image)."""
    rules = getattr(profile, "kernel", None)
    return rules.note if rules is not None else None
