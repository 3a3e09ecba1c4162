"""`elfvm eat`: the lecture's effective-access-time formulas, without a trace."""

from __future__ import annotations

import click

from elfvm.commands.options import FiniteFloat, int_range

EPILOG = """\b
Examples:
  elfvm eat --hit-ratio 0.95                      (the lecture: 124 ns)
  elfvm eat --hit-ratio 0.98 --walk-levels 2 --tlb-ns 10 --mem-ns 80
  elfvm eat --hit-ratio 0.99 --fault-rate 1e-6 --fault-ns 8e6
"""


@click.command("eat", epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--hit-ratio", "-a", type=FiniteFloat(0, 1), required=True,
              help="TLB hit ratio h (0..1), e.g. 0.95.")
@click.option("--tlb-ns", type=FiniteFloat(0, 1e12), default=20.0, show_default=True,
              help="TLB look-up time t.")
@click.option("--mem-ns", type=FiniteFloat(0, 1e12), default=100.0, show_default=True,
              help="Memory access time m.")
@click.option("--walk-levels", type=int_range(0, 8), default=1, show_default=True,
              help="Memory accesses of a page walk L (1: the lecture's one-level table; i386 2, "
                   "PAE 3, x86-64 4).")
@click.option("--fault-rate", type=FiniteFloat(0, 1), default=None,
              help="Page-fault rate p per access (demand paging).")
@click.option("--fault-ns", type=FiniteFloat(0, 1e15), default=None,
              help="Page-fault service time s in ns (with --fault-rate).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def eat(hit_ratio, tlb_ns, mem_ns, walk_levels, fault_rate, fault_ns, fmt):
    """Effective access time of a memory reference with a TLB (and optionally page faults), in
    both textbook models, each with its formula beside the number."""
    from elfvm.errors import UsageError
    from elfvm.mmu.eat import eat_lines

    if (fault_rate is None) != (fault_ns is None):
        raise UsageError("--fault-rate and --fault-ns go together (p and the service time s)")
    lines = eat_lines(tlb_ns, mem_ns, hit_ratio, walk_levels, fault_rate, fault_ns)
    if fmt == "json":
        import json

        click.echo(json.dumps([{"model": x.model, "formula": x.formula, "numbers": x.numbers,
                                "ns": x.ns} for x in lines], indent=1))
        return
    from tabulate import tabulate

    click.echo(f"t = {tlb_ns:g} ns (TLB), m = {mem_ns:g} ns (memory), h = {hit_ratio:g}, "
               f"L = {walk_levels} walk level(s)" +
               (f", p = {fault_rate:g}, s = {fault_ns:g} ns" if fault_rate is not None else ""))
    click.echo(f"TLB hit: t+m = {tlb_ns + mem_ns:g} ns; miss: (L+1)m = {(walk_levels + 1) * mem_ns:g} ns "
               f"overlapped, t+(L+1)m = {tlb_ns + (walk_levels + 1) * mem_ns:g} ns sequential")
    click.echo(tabulate([[x.model, x.formula, f"= {x.numbers}", f"= {x.ns:g} ns"] for x in lines],
                        headers=["model", "formula", "numbers", "EAT"], tablefmt="simple"))
