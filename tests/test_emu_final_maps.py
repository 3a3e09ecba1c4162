"""The emulated run's final memory map equals the live kernel's at exit_group.

The real program runs under PTRACE_SYSCALL (ASLR off, the same argv and environment) and its
/proc/PID/maps is read when it enters exit_group: the heap grown by brk, the libraries ld.so
mapped, the anonymous mmaps of malloc, the stack — elfvm's emulated syscalls must have put each
of them where the kernel did.
"""

import pytest

from conftest import fixture_path

pytest.importorskip("unicorn")

CASES = [
    ("hello_static", []),
    ("tiny", []),
    ("mallocs", []),
    ("lazy", ["64"]),
    ("hello_pie", []),
    ("vars", []),
    ("bigbss", []),
]


@pytest.mark.oracle
@pytest.mark.parametrize("name, args", CASES)
def test_final_maps_equal_the_kernel(live, needs_interp, name, args):
    from elfvm.emu.run import RunOptions, run_program

    path = fixture_path(name)
    env = ["LANG=C"]
    real_maps, real_out = live.maps_at_exit(path, [path, *args], env)
    report = run_program(RunOptions(program=path, args=tuple(args), env=tuple(env)))
    assert report.stdout.decode() == real_out
    assert report.maps_text == real_maps
