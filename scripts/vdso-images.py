#!/usr/bin/env python3
"""Measure the vDSO of every kernel in the cache (scripts/fetch-kernels.sh): boot it under qemu
with the oracle's init (elfvm/oracle/qemu_init.c dumps the [vdso] it maps), keep the image in
~/.cache/elfvm/vdso/NAME.so (tests/test_kernel_versions.py checks elfvm's table against the kept
images) and print what elfvm/kernel/versions.py VDSO_IMAGES records: size, [vvar] and
[vvar_vclock] pages, __kernel_vsyscall, the sigreturn trampolines and the __vdso_* functions of
the image's .dynsym, with whether the table agrees.

    .venv/bin/python scripts/vdso-images.py [NAME...]      (e.g. 6.1.176-686 7.3.4-amd64)
"""

from __future__ import annotations

import sys

import click

from elfvm.kernel.versions import KernelVersion, kernel_rules
from elfvm.oracle import qemu


def measured(rep: qemu.BootReport) -> dict:
    syms = qemu.vdso_symbols(rep.vdso)
    pages = {}
    for line in rep.selfmaps.splitlines():
        name = line.split()[-1]
        if name in ("[vvar]", "[vvar_vclock]"):
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            pages[name] = (hi - lo) // 4096
    return {"size": len(rep.vdso), "vvar_pages": pages.get("[vvar]", 0),
            "vclock_pages": pages.get("[vvar_vclock]", 0), "vsyscall": syms["__kernel_vsyscall"],
            "sigreturn": syms["__kernel_sigreturn"], "rt_sigreturn": syms["__kernel_rt_sigreturn"],
            "functions": tuple(sorted(((n, o) for n, o in syms.items() if n.startswith("__vdso_")),
                                      key=lambda f: f[1]))}


def in_table(k: qemu.KernelImage) -> dict:
    img = kernel_rules(KernelVersion.parse(k.version), "i386" if k.is_i386 else "x86_64").vdso
    return {f: getattr(img, f) for f in ("size", "vvar_pages", "vclock_pages", "vsyscall", "sigreturn",
                                         "rt_sigreturn", "functions")}


@click.command()
@click.argument("names", nargs=-1)
def main(names: tuple[str, ...]) -> None:
    """Boot each cached kernel (or those NAMES) and print its measured vDSO."""
    images = [k for k in qemu.kernels() if not names or k.name in names]
    if not images:
        raise click.ClickException(f"no kernels in {qemu.cache_dir() / 'kernels'} (scripts/fetch-kernels.sh)")
    differ = 0
    for k in images:
        rep = qemu.boot(k, [])
        path = qemu.save_vdso(rep)
        got = measured(rep)
        same = got == in_table(k)
        differ += not same
        funcs = ", ".join(f'("{n}", {o:#x})' for n, o in got["functions"])
        click.echo(f"{k.name} ({rep.release}, {path}): size {got['size']:#x}, [vvar] {got['vvar_pages']}, "
                   f"[vvar_vclock] {got['vclock_pages']}, vsyscall {got['vsyscall']:#x}, sigreturn "
                   f"{got['sigreturn']:#x}, rt_sigreturn {got['rt_sigreturn']:#x}\n  functions=({funcs})\n"
                   f"  table: {'agrees' if same else 'DIFFERS'}")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
