"""Program mode's progress line (elfvm.render.progress): on a terminal only.

`simulate-run PROGRAM` runs under a pseudo-terminal (stdout and stderr both the pty's slave):
the line `running: N instructions, M page faults so far` appears while the guest runs and is
erased at the end; with a pipe, with --quiet or with --format json there is none.
"""

import os
import pty
import select
import subprocess
import sys

import pytest

from conftest import build_static_guest

pytest.importorskip("unicorn")

LOOP_C = r"""
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    volatile unsigned x = 0;
    long n = argc > 1 ? atol(argv[1]) : 1;
    for (long i = 0; i < n; i++) x = x * 1103515245u + 12345u;
    printf("done %u\n", x);
    return 0;
}
"""
LOOPS = "400000000"         # ~2.8 G instructions: seconds, well over the first redraw (0.25 s)


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    d = tmp_path_factory.mktemp("progress")
    (d / "loop.c").write_text(LOOP_C)
    return build_static_guest(d / "loop.c", d / "loop")


def elfvm_cmd(*args):
    return [sys.executable, "-m", "elfvm", "simulate-run", *args]


def on_pty(cmd) -> bytes:
    """Everything the command writes to its terminal (stdout and stderr are the same pty)."""
    master, slave = pty.openpty()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    out = bytearray()
    while True:
        r, _, _ = select.select([master], [], [], 120)
        if not r:
            p.kill()
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:                      # EIO: the slave side is closed
            break
        if not chunk:
            break
        out += chunk
    p.wait(timeout=120)
    os.close(master)
    assert p.returncode == 0, out[-2000:]
    return bytes(out)


def test_progress_on_a_terminal_then_erased(loop):
    out = on_pty(elfvm_cmd(loop, LOOPS))
    assert b"running: " in out and b" instructions, " in out and b" page faults so far" in out
    done = out.index(b"done ")
    if b"running: " in out[:done]:                # the line steps aside for the guest's output
        assert out[:done].endswith(b"\r\x1b[K")
    final = out.rindex(b"\r\x1b[K")                # erased at the end, before the report
    assert b"running: " not in out[final:] and b"exit status" in out[final:]


@pytest.mark.parametrize("flags", [("-q",), ("--format", "json")])
def test_no_progress_with_quiet_or_json(loop, flags):
    out = on_pty(elfvm_cmd(*flags, loop, LOOPS))
    assert b"running: " not in out and b"\x1b[K" not in out


def test_no_progress_when_not_a_terminal(loop):
    r = subprocess.run(elfvm_cmd(loop, LOOPS), capture_output=True, timeout=300)
    assert r.returncode == 0 and b"done " in r.stdout
    assert b"running: " not in r.stderr and b"\x1b[K" not in r.stderr + r.stdout


def test_progress_callback_reads_counts_only(loop, monkeypatch):
    """RunOptions.progress gets (instructions, page faults so far) while the guest runs, from
    the ticker's thread; the run's report is the same as without it."""
    from elfvm.emu import run as R
    from elfvm.emu.run import RunOptions, run_program

    monkeypatch.setattr(R, "PROGRESS_PERIOD", 0.005)

    seen = []
    opts = RunOptions(loop, ("200000000",), clock="fixed")   # ~1 s: several ticks
    with_cb = run_program(RunOptions(**{**opts.__dict__, "progress": lambda i, f: seen.append((i, f))}))
    plain = run_program(opts)
    assert seen and all(i is None or i > 0 for i, _ in seen) and all(f > 0 for _, f in seen)
    assert [i for i, _ in seen] == sorted(i for i, _ in seen)        # counts only grow
    assert (with_cb.stdout, with_cb.exit_status, with_cb.instructions, with_cb.page_faults) == \
        (plain.stdout, plain.exit_status, plain.instructions, plain.page_faults)
