"""The guest's /proc directories, modelled from the emulated kernel (elfvm.emu.procfs):
getdents64 on /proc/self/, its task/ and fd/ (links to what each descriptor is), /proc itself
(the guest's thread groups, never the host's), against the live kernel's /proc.

/proc/PID/ lists the entries elfvm models, in the kernel's order (tgid_base_stuff), with the
kernel's d_type and permissions: the live listing filtered to those names must equal it.
"""

import os
import pathlib
import re
import subprocess

import pytest

from conftest import build_static_guest

pytest.importorskip("unicorn")

from elfvm.emu import RunOptions, run_program  # noqa: E402

SRC = pathlib.Path(__file__).resolve().parent / "guest_progs"
MODELLED = [".", "..", "task", "fd", "environ", "auxv", "status", "limits", "comm", "cmdline",
            "stat", "statm", "maps", "cwd", "root", "exe", "smaps", "smaps_rollup", "pagemap"]


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
    assert names == [".", "..", "cpuinfo", "meminfo", "self", "thread-self", "100"]


def test_busybox_and_coreutils_ls_of_proc(tmp_path):
    """`ls` of /proc/self/, /proc and /proc/self/fd from the Debian sysroot (skipped without)."""
    import realprog as rp

    root, why = rp.sysroot()
    if root is None:
        pytest.skip(f"no Debian i386 sysroot: {why}")
    e = rp.emulated(root, ["/bin/busybox", "ls", "/proc/self/"])
    assert e.stdout.decode().split() == sorted(MODELLED[2:]), e.warnings
    e = rp.emulated(root, ["/bin/sh", "-c", "/bin/sleep 1 & /bin/ls /proc; wait"])
    assert e.stdout.decode().split() == ["100", "101", "102", "meminfo", "self", "thread-self"], \
        e.warnings
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


# ---------------------------------------------------------------- the memory files
@pytest.fixture(scope="module")
def procmm(tmp_path_factory):
    exe = build_static_guest(SRC / "procmm.c", tmp_path_factory.mktemp("procmm") / "procmm")
    with open(exe, "rb") as f:          # written back: its page-cache pages are clean, as
        os.fsync(f.fileno())            # the model's (a file just written is dirty natively)
    return exe


def _native_fixed(exe: str, *args: str) -> bytes:
    """The native run at elfvm's default addresses (no ASLR) and with its empty environment."""
    import shutil

    setarch = shutil.which("setarch")
    if setarch is None:
        pytest.skip("no setarch: cannot run natively without ASLR")
    try:
        r = subprocess.run([setarch, "i386", "-R", exe, *args], input=b"", capture_output=True,
                           timeout=30, env={})
    except OSError as e:                      # pragma: no cover - no i386 execution
        pytest.skip(f"cannot run i386 programs here: {e}")
    if r.returncode != 0:
        pytest.skip(f"setarch -R fails here: {r.stderr[:200]!r}")
    return r.stdout


def test_smaps_pagemap_auxv_lecture_as_the_kernel(procmm):
    """Lazy allocation (64 kB mapped, 4 kB resident), the zero page (mapped, not in Rss, one
    PFN for two pages), shared anonymous memory (shmem: not Anonymous), copy-on-write after
    fork (Shared_Dirty and Pss halved in both processes; the child's write gives it a private
    frame; the child's PTEs are old until it touches them: Referenced), pagemap's present,
    file and exclusive bits, and /proc/self/auxv against the auxv on the stack (the file runs
    on to an even pair of zero words): the same bytes as the live kernel."""
    want = _native_fixed(procmm)
    rep = run_program(RunOptions(procmm, max_instructions=200_000_000))
    assert rep.exit_status == 0 and not rep.unknown_syscalls, rep.warnings
    assert rep.stdout.decode() == want.decode()
    assert "Shared_Dirty:         12 kB\nPrivate_Clean:         0 kB\nPrivate_Dirty:         4 kB\n" \
        "Referenced:            4 kB" in want.decode()
    assert "file 208 bytes, same words as the stack 1, zeros after 1" in want.decode()


def _blocks(text: str) -> dict[str, str]:
    out, name = {}, None
    for line in text.splitlines(keepends=True):
        if line.startswith("== "):
            name = line[3:].strip()
            out[name] = ""
        elif name:
            out[name] += line
    return out


def _smaps_vmas(text: str) -> list[list[str]]:
    vmas = []
    for line in text.splitlines():
        if re.match(r"^[0-9a-f]{8}-", line):
            vmas.append([line])
        else:
            vmas[-1].append(line)
    return vmas


# a file VMA's resident pages depend on the host page cache's folio sizes (fault-around maps
# whole large folios natively; the model's folios are 4 KiB unless --page-cache live)
RESIDENCY = {"Rss", "Pss", "Pss_Dirty", "Private_Clean", "Private_Dirty", "Referenced"}


def test_smaps_rollup_status_statm_limits_formats_as_the_kernel(procmm):
    """The whole /proc/self/smaps: the same VMAs, lines, fields, widths and VmFlags as the live
    kernel, the same numbers for every anonymous VMA (heap, bss, stack, vDSO) and, for file
    VMAs, every number but the resident ones; smaps_rollup's fields; status's lines are the kernel's, in its order,
    with the same sizes; statm's size, text and data; limits' table."""
    native = _blocks(_native_fixed(procmm, "smaps").decode())
    rep = run_program(RunOptions(procmm, ("smaps",), max_instructions=200_000_000))
    assert rep.exit_status == 0 and not rep.unknown_syscalls, rep.warnings
    got = _blocks(rep.stdout.decode())
    want_vmas, got_vmas = (_smaps_vmas(x["/proc/self/smaps"]) for x in (native, got))
    assert [v[0] for v in got_vmas] == [v[0] for v in want_vmas]
    for w, g in zip(want_vmas, got_vmas):
        assert [x.split(":")[0] for x in g] == [x.split(":")[0] for x in w]
        if w[0].split()[-1].startswith("/"):        # file pages: how many fault-around maps
            g, w = ([x for x in v if x.split(":")[0] not in RESIDENCY] for v in (g, w))
        assert g == w
    names = [x.split(":")[0] for x in native["/proc/self/smaps_rollup"].splitlines()]
    assert [x.split(":")[0] for x in got["/proc/self/smaps_rollup"].splitlines()] == names
    want_status = dict(x.split(":", 1) for x in native["/proc/self/status"].splitlines())
    got_status = [x.split(":", 1) for x in got["/proc/self/status"].splitlines()]
    order = list(want_status)
    assert [order.index(n) for n, _ in got_status] == sorted(order.index(n) for n, _ in got_status)
    for name in ("Name", "State", "VmPeak", "VmSize", "VmLck", "VmData", "VmStk", "VmExe",
                 "VmLib", "RssAnon", "RssShmem", "VmSwap", "HugetlbPages", "Threads",
                 "SigPnd", "SigCgt", "Uid", "Gid", "CoreDumping",       # (SigIgn, SigBlk:
                 # inherited from whatever runs the native test)
                 "THP_enabled", "untag_mask", "Cpus_allowed_list"):
        assert dict(got_status)[name] == want_status[name], name
    w, g = (x["/proc/self/statm"].split() for x in (native, got))
    assert (g[0], g[3], g[4], g[5], g[6]) == (w[0], w[3], w[4], w[5], w[6])
    wl, gl = (x["/proc/self/limits"].splitlines() for x in (native, got))
    assert gl[0] == wl[0] and [x[:25] + x[68:] for x in gl] == [x[:25] + x[68:] for x in wl]
    for row in ("Max stack size", "Max core file size", "Max file size", "Max address space"):
        assert [x for x in gl if x.startswith(row)] == [x for x in wl if x.startswith(row)]


def test_swap_in_smaps_status_and_pagemap(procmm):
    """With fewer frames than pages, the model's swapped pages show as Swap (SwapPss: one PTE
    names each slot), VmSwap, and pagemap's swap bit; Rss + Swap covers every touched page."""
    rep = run_program(RunOptions(procmm, ("swap", "300"), frames=200,
                                 max_instructions=200_000_000))
    assert rep.exit_status == 0, rep.warnings
    out = rep.stdout.decode()
    kb = {m[0]: int(m[1]) for m in re.findall(r"^(\w+):\s+(\d+) kB$", out, re.M)}
    assert kb["Swap"] > 0 and kb["SwapPss"] == kb["Swap"]
    assert kb["Rss"] + kb["Swap"] == 1200
    assert kb["VmSwap"] >= kb["Swap"]
    assert "pagemap first page: present 0 swap 1 file 0 exclusive 0" in out


def test_proc_pid_listing_includes_the_memory_files():
    from elfvm.emu.procfs import FILES, TGID_ENTRIES

    names = [n for n, _ in TGID_ENTRIES]
    assert names.index("auxv") < names.index("status") < names.index("limits") < \
        names.index("maps") < names.index("smaps") < names.index("smaps_rollup") < \
        names.index("pagemap")
    assert set(FILES) <= set(names)


def test_sendfile_from_proc_files_as_the_kernel(procmm):
    """A generated /proc file has no ->splice_read: sendfile() from it is EINVAL (to a pipe or
    a file), so busybox cat falls back to read(); the 32-bit sendfile exists as sendfile64."""
    want = _native(procmm, "sendfile")
    rep = run_program(RunOptions(procmm, ("sendfile",), max_instructions=50_000_000))
    assert rep.exit_status == 0 and not rep.unknown_syscalls
    assert rep.stdout == want
    assert b"sendfile maps: to a pipe -1 (22), to a file -1 (22)" in want


def test_meminfo_and_free_from_the_model():
    """/proc/meminfo is the model's (--ram, its free frames, the page cache, swap), in the
    kernel's format, never the host's: busybox free works and agrees with sysinfo's --ram."""
    import realprog as rp

    root, why = rp.sysroot()
    if root is None:
        pytest.skip(f"no Debian i386 sysroot: {why}")
    e = rp.emulated(root, ["/bin/cat", "/proc/meminfo"], extra=("--ram", "64M"))
    lines = e.stdout.decode().splitlines()
    assert lines[0] == "MemTotal:          65536 kB", e.warnings
    assert [x.split(":")[0] for x in lines] == [
        "MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached", "SwapCached", "SwapTotal",
        "SwapFree", "AnonPages", "Mapped", "Shmem", "PageTables"]
    native = rp.native(root, ["/bin/cat", "/proc/meminfo"]).stdout.decode().splitlines()
    order = [x.split(":")[0] for x in native]
    assert [order.index(x.split(":")[0]) for x in lines] == sorted(order.index(x.split(":")[0])
                                                                   for x in lines)
    assert all(len(x) == len(n) for x, n in zip(lines, native) if x[:8] == n[:8])
    e = rp.emulated(root, ["/bin/busybox", "free"], extra=("--ram", "64M"))
    assert e.exit_status == 0 and e.stdout.split(b"\n")[1].split()[1] == b"65536", e.stdout


def test_execfn_and_proc_self_exe_are_the_guests_names(tmp_path):
    """Inside --sysroot, AT_EXECFN is the string execve was given (PROGRAM as typed, or a
    relative `./prog` from a shell) and /proc/self/exe the file's absolute guest path: never
    the host's path of the sysroot. Checked against `chroot ROOT` natively (root only)."""
    import os
    import shutil

    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    build_static_guest(SRC / "execfn.c", root / "bin" / "execfn")
    rep = run_program(RunOptions(str(root / "bin" / "execfn"), sysroot=str(root)))
    assert rep.stdout == b"execfn=/bin/execfn argv0=" + str(root).encode() + \
        b"/bin/execfn exe=/bin/execfn\n"
    rep = run_program(RunOptions("/bin/execfn", sysroot=str(root)))
    assert rep.stdout == b"execfn=/bin/execfn argv0=/bin/execfn exe=/bin/execfn\n"
    shell = shutil.which("busybox") or next(
        (p for p in (os.path.expanduser("~/.cache/elfvm/sysroot-i386/bin/busybox"),)
         if os.path.exists(p)), None)
    if shell is None or os.geteuid() != 0:
        pytest.skip("the relative exec and the native comparison need busybox and root")
    shutil.copy(shell, root / "bin" / "busybox")
    os.symlink("busybox", root / "bin" / "sh")
    script = "cd /bin && ./execfn; /bin/execfn"
    rep = run_program(RunOptions("/bin/sh", ("-c", script), sysroot=str(root)))
    want = subprocess.run(["chroot", str(root), "/bin/sh", "-c", script], capture_output=True,
                          timeout=30)
    if want.returncode != 0 or b"exe=?" in want.stdout:   # a chroot without /proc
        mounted = subprocess.run(["unshare", "-m", "sh", "-c",
                                  f"mkdir -p {root}/proc && mount -t proc proc {root}/proc && "
                                  f"chroot {root} /bin/sh -c '{script}'"], capture_output=True,
                                 timeout=30)
        want = mounted if mounted.returncode == 0 else want
    assert rep.stdout == b"execfn=./execfn argv0=./execfn exe=/bin/execfn\n" \
        b"execfn=/bin/execfn argv0=/bin/execfn exe=/bin/execfn\n", rep.stderr
    if b"exe=?" not in want.stdout:
        assert rep.stdout == want.stdout
