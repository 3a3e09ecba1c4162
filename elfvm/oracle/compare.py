"""`layout --verify`: the prediction against the live kernel, difference by difference."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from elfvm.kernel.process import AT, ExecResult
from elfvm.mm.maps import maps_text


@dataclass
class VerifyReport:
    identical: bool
    text: str


def verify_against_live(req, result: ExecResult, *, addr_limit_3gb: bool = False,
                        legacy: bool = False) -> VerifyReport:
    """Run req's program under ptrace with ASLR off, stopped at its first instruction, and
    compare /proc/PID/maps, the auxv, eip/esp, the mm fields and the stack bytes."""
    from elfvm.errors import UsageError
    from elfvm.oracle import live

    ok, why = live.can_run_i386()
    if not ok:
        raise UsageError(f"--verify cannot run here: {why}")
    extra = (live.ADDR_LIMIT_3GB if addr_limit_3gb else 0) | (live.ADDR_COMPAT_LAYOUT if legacy else 0)
    rlim = None if req.rlimit_stack == (1 << 64) - 1 else req.rlimit_stack
    if req.rlimit_stack == (1 << 64) - 1:
        import resource
        rlim = resource.RLIM_INFINITY
    out: list[str] = []
    try:
        with live.run_to_entry(req.path, list(req.argv), list(req.envp), personality_extra=extra,
                               rlimit_stack=rlim) as lp:
            predicted = maps_text(result.mm)
            if predicted != lp.maps:
                out.append("maps differ (--- live kernel, +++ elfvm):")
                out += difflib.unified_diff(lp.maps.splitlines(True), predicted.splitlines(True),
                                            "live /proc/PID/maps", "elfvm", n=1)
            want = [(a.type, a.value) for a in result.auxv]
            got = [tuple(x) for x in lp.auxv]
            if want != got:
                out.append("auxv differs:")
                for i in range(max(len(want), len(got))):
                    w = want[i] if i < len(want) else None
                    g = got[i] if i < len(got) else None
                    if w != g:
                        out.append(f"  [{i}] live {_aux(g)}  elfvm {_aux(w)}")
            for reg, mine in (("eip", result.eip), ("esp", result.stack.esp)):
                if lp.regs[reg] != mine:
                    out.append(f"{reg}: live {lp.regs[reg]:#x}, elfvm {mine:#x}")
            mm = result.mm
            for field in ("start_code", "end_code", "start_data", "end_data", "start_brk",
                          "start_stack", "arg_start", "arg_end", "env_start", "env_end"):
                if field in lp.stat_mm and lp.stat_mm[field] != getattr(mm, field):
                    out.append(f"mm->{field}: live {lp.stat_mm[field]:#x}, elfvm {getattr(mm, field):#x}")
            st = result.stack
            real = lp.read_mem(st.image_base, len(st.image))
            rnd = range(st.random_addr, st.random_addr + 16)
            bad = [st.image_base + i for i in range(len(real))
                   if real[i] != st.image[i] and st.image_base + i not in rnd]
            if bad:
                out.append(f"stack bytes differ at {len(bad)} addresses, first {bad[0]:#x}")
    except live.ExecFailed as e:
        out.append(f"the live execve failed with errno {e.errno} but elfvm predicted it loads")
    except live.ExecKilled as e:
        out.append(f"the live process was killed by signal {e.signal} during exec, "
                   f"but elfvm predicted it loads")
    if out:
        return VerifyReport(False, "verify: DIFFERENT\n" + "".join(
            line if line.endswith("\n") else line + "\n" for line in out))
    n = len(result.mm.vmas)
    return VerifyReport(True, f"verify: identical to the live kernel (maps {len(maps_text(result.mm).splitlines())} "
                              f"lines, auxv {len(result.auxv)} entries, eip, esp, mm fields, "
                              f"stack bytes except AT_RANDOM's 16) [{n} VMAs]\n")


def _aux(pair) -> str:
    if pair is None:
        return "(none)"
    name = {v: k for k, v in AT.items()}.get(pair[0], str(pair[0]))
    return f"{name}={pair[1]:#x}"
