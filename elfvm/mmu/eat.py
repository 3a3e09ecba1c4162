"""Effective access time, the lecture's calculator: both textbook models, formula beside number.

- overlapped (the lecture's "wait for normal memory translation (parallel)", and what
  `simulate-run` reports): the page walk starts while the TLB is searched, so a miss costs
  the walk and the access, (L + 1) * m:   EAT = h (t + m) + (1 - h) (L + 1) m
- sequential (TLB first, then the walk; Silberschatz's form):
                                          EAT = h (t + m) + (1 - h) (t + (L + 1) m)
With a page-fault rate p and a fault service time s (demand paging):
                                          EAT' = (1 - p) EAT + p s
t: TLB look-up, m: memory access, h: TLB hit ratio, L: page-walk levels (memory accesses).
"""

from __future__ import annotations

from dataclasses import dataclass

from elfvm.mmu.tlb import effective_access_ns


@dataclass(frozen=True)
class EatLine:
    model: str
    formula: str          # the symbolic formula
    numbers: str          # the same with this question's numbers
    ns: float


def _g(x: float) -> str:
    return f"{x:g}"


def eat_lines(tlb_ns: float, mem_ns: float, hit_ratio: float, levels: int,
              fault_rate: float | None = None, service_ns: float | None = None) -> list[EatLine]:
    t, m, h, L = tlb_ns, mem_ns, hit_ratio, levels
    hit, walk = t + m, (L + 1) * m
    over = effective_access_ns(h, t, m, L)
    seq = round(h * hit + (1 - h) * (t + walk), 6)
    out = [EatLine("overlapped (lecture)", "h(t+m) + (1-h)(L+1)m",
                   f"{_g(h)}*{_g(hit)} + {_g(round(1 - h, 9))}*{_g(walk)}", over),
           EatLine("sequential", "h(t+m) + (1-h)(t+(L+1)m)",
                   f"{_g(h)}*{_g(hit)} + {_g(round(1 - h, 9))}*{_g(t + walk)}", seq)]
    if fault_rate is not None:
        p, s = fault_rate, service_ns or 0.0
        for line in list(out):
            out.append(EatLine(f"{line.model} + page faults", "(1-p) EAT + p s",
                               f"{_g(round(1 - p, 12))}*{_g(line.ns)} + {_g(p)}*{_g(s)}",
                               round((1 - p) * line.ns + p * s, 6)))
    return out
