"""System call edge cases in program mode, against the live kernel: bad pointers give EFAULT
(never a host error), hostile lengths are capped and copied page by page (no host memory
grows with them), and the small calls real programs make answer as the kernel does.

Each program in tests/guest_progs is built with `gcc -m32 -static`, run natively and under
the emulator; the outputs must be the same line for line.
"""

import pathlib
import resource
import subprocess

import pytest

from conftest import build_static_guest

pytest.importorskip("unicorn")

from elfvm.emu import RunOptions, run_program  # noqa: E402

SRC = pathlib.Path(__file__).resolve().parent / "guest_progs"


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    out = tmp_path_factory.mktemp("guestprogs")
    return lambda name: build_static_guest(SRC / f"{name}.c", out / name, "-lm")


def native(exe: str, *args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([exe, *args], capture_output=True, timeout=30)
    except OSError as e:                      # pragma: no cover - no i386 execution
        pytest.skip(f"cannot run i386 programs here: {e}")


def test_bad_pointers_and_hostile_lengths_as_the_kernel(build):
    exe = build("badptrs")
    want = native(exe).stdout.decode().splitlines()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rep = run_program(RunOptions(exe, max_instructions=50_000_000))
    grew_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    got = rep.stdout.decode().splitlines()
    assert rep.stop_reason is None and rep.exit_status == 0
    assert len(got) == len(want)
    for w, g in zip(want, got):
        assert g == w
    assert "getrandom bad                -1 Bad address" in got
    assert grew_kib < 200_000                 # 0xdeadbeef-byte requests cost no host memory
    assert not rep.unknown_syscalls


def test_unimplemented_call_is_named_and_strict_fails(build, tmp_path):
    """An unknown system call returns -ENOSYS, the run names it (JSON too) and --strict
    turns it into exit 6."""
    import json
    import sys

    src = tmp_path / "nosys.c"
    src.write_text('#include <stdio.h>\n#include <unistd.h>\n#include <sys/syscall.h>\n'
                   'int main(void){long r = syscall(SYS_kexec_load, 0, 0, 0, 0);'
                   'printf("%ld\\n", r); return 0;}\n')
    exe = tmp_path / "nosys"
    r = subprocess.run(["gcc", "-m32", "-static", str(src), "-o", str(exe)], capture_output=True)
    if r.returncode:
        pytest.skip("gcc -m32 -static fails here")
    cmd = [sys.executable, "-m", "elfvm", "simulate-run", "--format", "json"]
    p = subprocess.run([*cmd, str(exe)], capture_output=True, timeout=120)
    assert p.returncode == 0
    assert b"system call kexec_load (283) is not implemented: returned -ENOSYS" in p.stderr
    d = json.loads(p.stdout)
    assert d["guest"]["stdout"] == "-1\n"
    assert d["guest"]["unknown_syscalls"] == [{"name": "kexec_load", "number": 283, "count": 1}]
    p = subprocess.run([*cmd, "--strict", str(exe)], capture_output=True, timeout=120)
    assert p.returncode == 6 and b"--strict" in p.stderr


def test_binary_stdout_exact_in_json_and_stdout_file(build, tmp_path):
    import base64
    import json
    import sys

    src = tmp_path / "bin.c"
    src.write_text('#include <unistd.h>\nint main(void){unsigned char b[256];'
                   'for (int i = 0; i < 256; i++) b[i] = i; write(1, b, 256); return 0;}\n')
    exe = tmp_path / "bin"
    if subprocess.run(["gcc", "-m32", "-static", str(src), "-o", str(exe)]).returncode:
        pytest.skip("gcc -m32 -static fails here")
    out = tmp_path / "out.bin"
    p = subprocess.run([sys.executable, "-m", "elfvm", "simulate-run", "--format", "json",
                        "--stdout", str(out), str(exe)], capture_output=True, timeout=120)
    assert p.returncode == 0
    assert base64.b64decode(json.loads(p.stdout)["guest"]["stdout_base64"]) == bytes(range(256))
    assert out.read_bytes() == bytes(range(256))


def test_stdin_file_is_a_regular_file(tmp_path):
    """--stdin FILE: fstat(0) gives S_IFREG and the size, and lseek works, as `prog < FILE`."""
    import sys

    src = tmp_path / "st.c"
    src.write_text('#include <stdio.h>\n#include <sys/stat.h>\n#include <unistd.h>\n'
                   'int main(void){struct stat st; fstat(0, &st);'
                   'printf("%d %ld %ld\\n", S_ISREG(st.st_mode), (long)st.st_size,'
                   '(long)lseek(0, 3, SEEK_SET)); return 0;}\n')
    exe = tmp_path / "st"
    if subprocess.run(["gcc", "-m32", "-static", str(src), "-o", str(exe)]).returncode:
        pytest.skip("gcc -m32 -static fails here")
    data = tmp_path / "in.txt"
    data.write_bytes(b"hello world\n")
    with open(data, "rb") as f:
        want = subprocess.run([str(exe)], stdin=f, capture_output=True).stdout
    rep = run_program(RunOptions(str(exe), stdin_path=str(data)))
    assert rep.stdout == want == b"1 12 3\n"
    assert sys is not None


def test_fpu_starts_as_the_kernel_leaves_it(build):
    """x87 control word 0x37f (extended precision): sums and printf's digits as native."""
    exe = build("fpu")
    want = native(exe).stdout
    rep = run_program(RunOptions(exe, max_instructions=50_000_000))
    assert rep.stdout == want
    assert b"cw 0x37f" in rep.stdout


def test_file_system_name_operations_in_the_overlay(build, tmp_path):
    """mkdir, rename, symlink, link, chmod, utimensat, truncate, unlink, rmdir answer as a
    writable file system does (the live kernel's answers), and the host directory stays as it
    was: everything happens in the overlay."""
    exe = build("fsops")
    native_dir, guest_dir = tmp_path / "native", tmp_path / "guest"
    native_dir.mkdir()
    guest_dir.mkdir()
    (guest_dir / "keep").write_text("host file\n")
    (native_dir / "keep").write_text("host file\n")
    want = native(exe, str(native_dir)).stdout
    rep = run_program(RunOptions(exe, (str(guest_dir),), max_instructions=50_000_000))
    assert rep.stdout == want
    assert b"mkdir a again          -1 File exists" in rep.stdout
    assert sorted(p.name for p in guest_dir.iterdir()) == ["keep"]
    assert (guest_dir / "keep").read_text() == "host file\n"
    assert not rep.unknown_syscalls


def test_overlay_directories_and_links_saved_beneath_write_dir(build, tmp_path):
    """With --write-dir, what the guest created is saved there (a directory, a file, a symlink
    kept as a link), never through a link outside."""
    import sys

    src = tmp_path / "mk.c"
    src.write_text('#include <fcntl.h>\n#include <sys/stat.h>\n#include <unistd.h>\n'
                   'int main(void){mkdir("/out", 0755); mkdir("/out/d", 0755);'
                   'int fd = open("/out/d/f", O_CREAT|O_WRONLY, 0644); write(fd, "data\\n", 5);'
                   'close(fd); symlink("d/f", "/out/l"); return 0;}\n')
    exe = tmp_path / "mk"
    if subprocess.run(["gcc", "-m32", "-static", str(src), "-o", str(exe)]).returncode:
        pytest.skip("gcc -m32 -static fails here")
    wd = tmp_path / "wd"
    wd.mkdir()
    p = subprocess.run([sys.executable, "-m", "elfvm", "simulate-run", "-q", "--write-dir", str(wd),
                        str(exe)], capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert (wd / "out" / "d" / "f").read_text() == "data\n"
    assert (wd / "out" / "l").is_symlink() and str((wd / "out" / "l").readlink()) == "d/f"
    assert not pathlib.Path("/out").exists()


def test_overlay_names_with_double_slashes_and_whiteouts():
    """`//x` is `/x` (normpath keeps two leading slashes; Linux does not), and a removed
    host name stays removed for every spelling of it."""
    from elfvm.emu.vfs import Vfs, VfsError

    v = Vfs(root="/", cwd="/")
    assert v.guest_path("//etc//passwd") == "/etc/passwd"
    v.whiteouts.add("/etc/passwd")
    with pytest.raises(VfsError):
        v.lookup("//etc/passwd")
    assert not v.whited_out("//")


def test_cwd_and_clock_options(tmp_path):
    """--cwd DIR is the guest's working directory; --clock fixed / SECONDS start the guest's
    clock there (reproducible runs), and it moves only with the run."""
    import sys

    src = tmp_path / "cw.c"
    src.write_text('#include <stdio.h>\n#include <time.h>\n#include <unistd.h>\n'
                   'int main(void){char b[256]; struct timespec a, z = {0, 5000000};'
                   'clock_gettime(CLOCK_REALTIME, &a); nanosleep(&z, 0);'
                   'printf("%s %ld\\n", getcwd(b, sizeof b), (long)a.tv_sec); return 0;}\n')
    exe = tmp_path / "cw"
    if subprocess.run(["gcc", "-m32", "-static", str(src), "-o", str(exe)]).returncode:
        pytest.skip("gcc -m32 -static fails here")
    rep = run_program(RunOptions(str(exe), cwd="/tmp", clock="86400"))
    assert rep.stdout == b"/tmp 86400\n"
    rep = run_program(RunOptions(str(exe), cwd="/", clock="fixed"))
    assert rep.stdout == b"/ 1700000000\n"
    p = subprocess.run([sys.executable, "-m", "elfvm", "simulate-run", "--clock", "yesterday",
                        str(exe)], capture_output=True, timeout=60)
    assert p.returncode == 2 and b"--clock" in p.stderr


def test_ppoll_pselect6_apply_their_signal_mask_for_the_call(build):
    """ppoll and pselect6 run with the caller's mask swapped for theirs, atomically: a pending
    signal the call's mask lets in ends it with EINTR, the handler runs with the old mask
    (+ its own) and the old mask is back after; a ready descriptor wins and the signal stays
    pending; a timer signal that arrives while the call sleeps wakes it. As the live kernel.
    (The kernel delivers with the call's mask as current->blocked and the old one in the
    frame's uc_mask.)"""
    exe = build("sigmaskwait")
    want = native(exe).stdout
    rep = run_program(RunOptions(exe, max_instructions=50_000_000))
    assert rep.stop_reason is None and rep.exit_status == 0
    assert rep.stdout.decode().splitlines() == want.decode().splitlines()
    # the handler runs with the call's mask (+ its own): USR2 is open in it; the old mask after
    assert (b"ppoll empty mask             r=-1 Interrupted system call hits=1 in-handler-usr2=0 "
            b"blocked:usr1=1 usr2=1 alrm=1 pending:usr1=0") in rep.stdout
    assert b"ppoll ready fd               r=1 ok hits=1" in rep.stdout
    assert not rep.unknown_syscalls


@pytest.fixture(scope="module")
def build_threaded(tmp_path_factory):
    out = tmp_path_factory.mktemp("guestprogs_pthread")
    return lambda name: build_static_guest(SRC / f"{name}.c", out / name, "-pthread")


def test_robust_mutex_owner_exit_gives_eownerdead(build_threaded):
    """A thread (or a process, for a process-shared mutex) that exits holding a robust mutex:
    the kernel's walk of its robust list marks it owner-dead and wakes a sleeping waiter, so
    pthread_mutex_lock returns EOWNERDEAD. As the live kernel."""
    exe = build_threaded("robust")
    want = native(exe).stdout
    rep = run_program(RunOptions(exe, max_instructions=200_000_000))
    assert rep.stop_reason is None and rep.exit_status == 0
    assert rep.stdout == want
    assert b"lock after owner died: EOWNERDEAD" in rep.stdout
    assert b"sleeping waiter lock: EOWNERDEAD" in rep.stdout
    assert b"shared lock after child died: EOWNERDEAD" in rep.stdout
    assert not rep.unknown_syscalls


def test_exit_robust_list_walk_as_the_kernel(build_threaded):
    """exit_robust_list on hand-made lists: only the dying tid's words get FUTEX_OWNER_DIED
    (FUTEX_WAITERS kept), list_op_pending last, the walk bounded at ROBUST_LIST_LIMIT (2048),
    ended quietly by a bad next pointer or a misaligned futex word."""
    exe = build_threaded("robustlist")
    want = native(exe).stdout
    rep = run_program(RunOptions(exe, max_instructions=200_000_000))
    assert rep.stop_reason is None and rep.exit_status == 0
    assert rep.stdout == want
    assert b"scenario 1: owner-died 2048;" in rep.stdout
    assert b"scenario 0: owner-died 3; words D0 other WD0 D0" in rep.stdout


def test_epoll_on_pipes_as_the_kernel(build):
    """epoll_create/_create1, epoll_ctl's errors in the kernel's order, level- and
    edge-triggered items, EPOLLONESHOT and MOD, the ready list's order (maxevents 1 takes
    turns), an item that goes with its file's last reference, EPOLLERR/EPOLLHUP, and
    epoll_pwait's signal mask: line for line as the live kernel."""
    exe = build("epoll")
    want = native(exe).stdout
    rep = run_program(RunOptions(exe, max_instructions=50_000_000))
    assert rep.stop_reason is None and rep.exit_status == 0
    assert rep.stdout.decode().splitlines() == want.decode().splitlines()
    assert b"maxevents 1 again          1: tag3=0x1" in rep.stdout
    assert not rep.unknown_syscalls
