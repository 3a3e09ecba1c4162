"""Hostile guests and physical memory (issues 10 and 11): the modelled RAM bounds the host.

* a fork bomb gets what Linux gives: fork fails with EAGAIN at threads-max (set from --ram, as
  set_max_threads does) or ENOMEM when RAM cannot hold a child; the run ends with its report;
* a guest touching far more memory than --frames swaps, and the swapped pages live in a
  temporary file: the host's memory does not grow with what the guest touches.
The fork bomb is never run natively (it would be one on the host).
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

from conftest import build_static_guest

pytest.importorskip("unicorn")

from elfvm.emu import RunOptions, run_program  # noqa: E402
from elfvm.emu.fork import threads_max  # noqa: E402
from elfvm.kernel.profile import make_profile  # noqa: E402

SRC = pathlib.Path(__file__).resolve().parent / "hostile_progs"


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    out = tmp_path_factory.mktemp("hostile")
    return lambda name: build_static_guest(SRC / f"{name}.c", out / name)


def test_threads_max_follows_ram():
    """set_max_threads(): RAM / (8 * THREAD_SIZE)."""
    assert threads_max(16 << 20, make_profile()) == 128
    assert threads_max(256 << 20, make_profile()) == 2048


def test_fork_bomb_gets_eagain_and_the_run_ends(build):
    r = run_program(RunOptions(build("forkbomb"), ram=16 << 20, max_instructions=50_000_000))
    assert r.stdout == b"fork failed: EAGAIN\n"
    assert r.exit_status == 0 and r.stop_reason is None
    assert len(r.processes) == threads_max(16 << 20, make_profile())


def rss_kib(*argv: str) -> tuple[int, str]:
    """The peak RSS of one `elfvm simulate-run` process (wait4's ru_maxrss) and its stdout."""
    p = subprocess.Popen([sys.executable, "-m", "elfvm", "simulate-run", *argv],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    assert p.returncode == 0, out
    return ru.ru_maxrss, out.decode().splitlines()[0]        # the guest's stdout comes first


def test_swapped_pages_go_to_a_file_not_host_memory(build):
    """64 frames; 8 MiB then 64 MiB touched: the second run swaps 56 MiB more. Page contents in
    host RAM would cost 56 MiB more; what grows is only the per-page bookkeeping (fault events,
    the model's page index), well under half of that."""
    exe = build("memhog")
    small, out_small = rss_kib("--frames", "64", exe, "8")
    big, out_big = rss_kib("--frames", "64", exe, "64")
    assert out_small == "2048 of 2048 pages intact"
    assert out_big == "16384 of 16384 pages intact"
    assert big - small < 32 * 1024, (small, big)          # KiB: the page tables, events, counters


def test_swap_is_counted(build):
    r = run_program(RunOptions(build("memhog"), args=("8",), frames=64))
    assert r.stdout == b"2048 of 2048 pages intact\n"
    assert r.evictions > 2000 and r.swap_ins > 1900
