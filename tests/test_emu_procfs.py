"""The guest's /proc directories, modelled from the emulated kernel (elfvm.emu.procfs):
getdents64 on /proc/self/, its task/ and fd/ (links to what each descriptor is), /proc itself
(the guest's thread groups, never the host's), against the live kernel's /proc.

/proc/PID/ lists the entries elfvm models, in the kernel's order (tgid_base_stuff), with the
kernel's d_type and permissions: the live listing filtered to those names must equal it.
"""

import pathlib
import subprocess

import pytest

from conftest import build_static_guest

pytest.importorskip("unicorn")

from elfvm.emu import RunOptions, run_program  # noqa: E402

SRC = pathlib.Path(__file__).resolve().parent / "guest_progs"
MODELLED = [".", "..", "task", "fd", "environ", "status", "comm", "cmdline", "stat", "statm",
            "maps", "cwd", "root", "exe"]


@pytest.fixture(scope="module")
def procdirs(tmp_path_factory):
    return build_static_guest(SRC / "procdirs.c", tmp_path_factory.mktemp("procfs") / "procdirs")


def _native(exe: str, *args: str) -> bytes:
    try:                                      # stdin, stdout, stderr: pipes, as elfvm's are
        return subprocess.run([exe, *args], input=b"", capture_output=True, timeout=30).stdout
    except OSError as e:                      # pragma: no cover - no i386 execution
        pytest.skip(f"cannot run i386 programs here: {e}")


def test_fd_task_and_proc_root_listings_as_the_kernel(procdirs):
    """/proc/self/fd lists each open descriptor as a link (lr-x------ / l-wx------ as it was
    opened) to its file, pipe:[N] or the directory being read; task/ lists the thread;
    /proc lists self, thread-self, this process and its child, not a reaped one."""
    want = _native(procdirs)
    rep = run_program(RunOptions(procdirs, max_instructions=50_000_000))
    assert rep.exit_status == 0 and not rep.unknown_syscalls
    assert rep.stdout == want
    assert b"7 10 l 500 -> /proc/PID/fd (d)" in rep.stdout
    assert b"/proc lists me 1, my child 1, self 1, thread-self 1" in rep.stdout


def test_proc_self_lists_the_modelled_entries_in_the_kernels_order(procdirs):
    want = _native(procdirs, "self").decode().splitlines()
    rep = run_program(RunOptions(procdirs, ("self",), max_instructions=50_000_000))
    got = rep.stdout.decode().splitlines()
    assert [line.split()[0] for line in got] == MODELLED
    assert got == [line for line in want if line.split()[0] in MODELLED]


def test_proc_root_never_shows_host_processes(procdirs):
    """With the host's / as the root, /proc still lists only the guest's thread groups."""
    import os

    from elfvm.emu.procfs import proc_listdir

    class K:                                  # the parts of KernelState proc_listdir reads
        procs = {}

        class vfs:
            @staticmethod
            def guest_path(path):
                return os.path.normpath(path)

            @staticmethod
            def listdir(path):
                return [(".", 4), ("..", 4), ("cpuinfo", 8), ("1", 4), (str(os.getpid()), 4),
                        ("self", 10)]

    from elfvm.emu.task import Process

    p = Process(100, 1, None, None)
    K.procs = {100: p}
    names = [n for n, _ in proc_listdir(K, p, "/proc")]
    assert names == [".", "..", "cpuinfo", "self", "thread-self", "100"]


def test_busybox_and_coreutils_ls_of_proc(tmp_path):
    """`ls` of /proc/self/, /proc and /proc/self/fd from the Debian sysroot (skipped without)."""
    import realprog as rp

    root, why = rp.sysroot()
    if root is None:
        pytest.skip(f"no Debian i386 sysroot: {why}")
    e = rp.emulated(root, ["/bin/busybox", "ls", "/proc/self/"])
    assert e.stdout.decode().split() == sorted(MODELLED[2:]), e.warnings
    e = rp.emulated(root, ["/bin/sh", "-c", "/bin/sleep 1 & /bin/ls /proc; wait"])
    assert e.stdout.decode().split() == ["100", "101", "102", "self", "thread-self"], e.warnings
    e = rp.emulated(root, ["/bin/sh", "-c", "exec 5</bin/true; /bin/ls -l /proc/self/fd/"])
    lines = e.stdout.decode().splitlines()
    assert lines and lines[0].startswith("total"), e.warnings
    rows = [(line.split()[0], " ".join(line.split()[-3:])) for line in lines[1:]]
    assert [r[1] for r in rows[3:]] == ["3 -> /proc/101/fd", "5 -> /bin/true"], lines
    assert [r[0] for r in rows] == ["lr-x------", "l-wx------", "l-wx------", "lr-x------",
                                    "lr-x------"]
    assert all(r[1].split(" -> ")[1].startswith("pipe:[") for r in rows[1:3])   # 0: --stdin


def test_proc_files_stat_as_generated_files():
    """stat of a /proc/PID file: a regular file of size 0 and no blocks, as procfs reports
    (its contents are generated when read), while reading it gives the text."""
    import realprog as rp

    root, why = rp.sysroot()
    if root is None:
        pytest.skip(f"no Debian i386 sysroot: {why}")
    cmd = ["/usr/bin/stat", "-c", "%s %b %F %a", "/proc/self/maps", "/proc/self/stat",
           "/proc/self/cmdline"]
    want = "0 0 regular empty file 444\n" * 3
    e = rp.emulated(root, cmd)
    assert e.stdout.decode() == want, e.warnings
    assert rp.native(root, cmd).stdout.decode() == want
    e = rp.emulated(root, ["/bin/cat", "/proc/self/cmdline"])
    assert e.stdout == b"/bin/cat\0/proc/self/cmdline\0"


def test_pipe_fd_link_reopened_as_the_kernels_fifo_open(tmp_path):
    """/proc/self/fd/N of a pipe opened O_RDWR is one descriptor on both ends (fifo_open: a
    reader and a writer, so no EOF and no SIGPIPE while it is open), O_WRONLY a writer, O_RDONLY
    a reader; the ends refuse the other direction with EBADF; pipe2's O_NONBLOCK is set on both
    ends. Same stdout as the native run."""
    exe = build_static_guest(SRC / "pipe_rdwr.c", tmp_path / "pipe_rdwr")
    want = _native(exe)
    rep = run_program(RunOptions(exe, max_instructions=50_000_000))
    assert rep.exit_status == 0 and not rep.unknown_syscalls
    assert rep.stdout == want
    assert b"no other writer: rdwr to itself: write 1 (0) read 1 (0) 'z'" in want
