#!/usr/bin/env python3
"""Survey: run the real-programs corpus (tests/realprog.py) natively and under simulate-run.

    .venv/bin/python scripts/survey_real_programs.py [ID ...]

Prints one line per command line: stdout/exit/faults same or different, the kernel's and
elfvm's fault counts, and the warnings simulate-run printed (unimplemented syscalls).
Needs root (chroot, ptrace) and the sysroot of scripts/sysroot-i386.sh.
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
import realprog as rp  # noqa: E402


def main(ids):
    root, why = rp.sysroot()
    if root is None:
        sys.exit(f"no sysroot: {why}")
    same = 0
    rows = [c for c in rp.CORPUS if not ids or c[0] in ids]
    for cid, argv, stdin in rows:
        r, av = rp.fixture_argv(argv)
        r = r or root
        t0 = time.time()
        try:
            n = rp.native(r, av, stdin)
            e = rp.emulated(r, av, stdin)
        except Exception as ex:  # noqa: BLE001 - a survey reports every failure and goes on
            print(f"{cid:14} ERROR {type(ex).__name__}: {ex}")
            continue
        ok_out, ok_exit = n.stdout == e.stdout, n.exit_status == e.exit_status
        ok_flt = rp.faults_close(e.minflt, n.minflt)
        same += ok_out and ok_exit and ok_flt
        warn = " ".join(w for w in e.warnings.splitlines() if w)[:300]
        print(f"{cid:14} out={'ok' if ok_out else 'DIFF'} exit={n.exit_status}/{e.exit_status} "
              f"faults={n.minflt}/{e.minflt}{'' if ok_flt else ' DIFF'} {time.time() - t0:.1f}s {warn}")
        if not ok_out and os.environ.get("SURVEY_VERBOSE"):
            print("   native:", n.stdout[:200], "\n   elfvm: ", e.stdout[:200])
    print(f"{same}/{len(rows)} reproduce (stdout, exit status, faults within 5%)")


if __name__ == "__main__":
    main(sys.argv[1:])
