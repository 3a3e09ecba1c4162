"""Predict with elfvm, and compare the prediction with the live kernel (test support).

`predict()` runs elfvm's execve(); `compare_live()` runs the same request on the live kernel and
asserts that both agree:

* verdict: result, and the errno for "errno" verdicts;
* for "ok": /proc/PID/maps equals maps_text() exactly, the auxv read from the stack equals the
  predicted auxv (AT_RANDOM's *address* included; the 16 random bytes are not compared), esp and
  eip, and the mm fields of /proc/PID/stat (start_code ... env_end, start_brk).

Live comparisons need i386 execution under ptrace: `LIVE_OK, LIVE_REASON = can_run_i386()`.
"""

from __future__ import annotations

import errno as _errno
import os

from elfvm.kernel.binfmt_elf import ExecRequest, ExecResult, execve
from elfvm.mm.maps import maps_text
from elfvm.oracle.live import (
    ADDR_COMPAT_LAYOUT, ADDR_LIMIT_3GB, ExecFailed, ExecKilled, can_run_i386, live_verdict,
    run_to_entry,
)

LIVE_OK, LIVE_REASON = can_run_i386()
AT_RANDOM = 25
RLIM_INFINITY_ELFVM = (1 << 64) - 1          # elfvm's rlimit value for "unlimited"
STAT_FIELDS = ("start_code", "end_code", "start_stack", "start_data", "end_data", "start_brk",
               "arg_start", "arg_end", "env_start", "env_end")


def predict(path, argv=None, env=(), *, profile=None, rlimit_stack: int = 8 << 20) -> ExecResult:
    path = os.fspath(path)
    return execve(ExecRequest(path, list(argv) if argv is not None else [path], list(env),
                              profile=profile, rlimit_stack=rlimit_stack))


def personality_for(profile) -> int:
    """The personality bits a profile stands for (setarch -3 / -L)."""
    if profile is None:
        return 0
    return (ADDR_LIMIT_3GB if profile.addr_limit_3gb else 0) | (ADDR_COMPAT_LAYOUT if profile.legacy else 0)


def _errname(e) -> str:
    return _errno.errorcode.get(e or 0, str(e))


def live_differences(res: ExecResult, path, argv=None, env=(), *, profile=None,
                     rlimit_stack: int | None = None, cwd=None, full: bool = True) -> list[str]:
    """What differs between elfvm's `res` and the live kernel (empty list: they agree)."""
    path = os.fspath(path)
    argv = list(argv) if argv is not None else [path]
    live_rlimit = None
    if rlimit_stack is not None:
        live_rlimit = -1 if rlimit_stack == RLIM_INFINITY_ELFVM else rlimit_stack
    kw = dict(personality_extra=personality_for(profile), rlimit_stack=live_rlimit, cwd=cwd)
    v = res.verdict
    if v.result != "ok" or not full:
        lv = live_verdict(path, argv, list(env), **kw)
        if lv.result != v.result:
            return [f"verdict: elfvm {v.result} {_errname(v.errno)} ({v.step}: {v.reason}), live {lv}"]
        if v.result == "errno" and lv.errno != v.errno:
            return [f"errno: elfvm {_errname(v.errno)} ({v.step}: {v.reason}), live {_errname(lv.errno)}"]
        return []
    try:
        with run_to_entry(path, argv, list(env), **kw) as p:
            diffs = []
            predicted = maps_text(res.mm)
            if p.maps != predicted:
                diffs.append(f"maps:\n--- live\n{p.maps}--- elfvm\n{predicted}")
            aux = [(a.type, a.value) for a in res.auxv]
            if p.auxv != aux:
                diffs.append(f"auxv: live {[(t, hex(x)) for t, x in p.auxv]}\n"
                             f"      elfvm {[(t, hex(x)) for t, x in aux]}")
            if p.esp != res.stack.esp:
                diffs.append(f"esp: live {p.esp:#x}, elfvm {res.stack.esp:#x}")
            if p.eip != res.eip:
                diffs.append(f"eip: live {p.eip:#x}, elfvm {res.eip:#x}")
            for k in STAT_FIELDS:
                if p.stat_mm[k] != getattr(res.mm, k):
                    diffs.append(f"{k}: live {p.stat_mm[k]:#x}, elfvm {getattr(res.mm, k):#x}")
            return diffs
    except ExecFailed as e:
        return [f"verdict: elfvm ok, live errno {_errname(e.errno)}"]
    except ExecKilled as e:
        return [f"verdict: elfvm ok, live killed by signal {e.signal}"]


def compare_live(res: ExecResult, path, argv=None, env=(), **kw) -> None:
    """Assert that the live kernel agrees with `res` (call only when LIVE_OK)."""
    diffs = live_differences(res, path, argv, env, **kw)
    assert not diffs, f"{os.fspath(path)}: elfvm and the live kernel differ:\n" + "\n".join(diffs)
