"""Run one command line natively (in a chroot of the sysroot) and under `elfvm simulate-run`.

The real-programs oracle (tests/test_real_programs.py, scripts/survey_real_programs.py) compares
the two runs: stdout bytes, exit status and minor faults.

Native: stdin is a regular file and stdout/stderr are pipes, as in simulate-run (programs
like cat pick copy_file_range or read/write from what fstat says). The program runs chrooted
into the sysroot (so /lib/ld-linux.so.2, /bin/sh and every
library are the sysroot's, exactly the files `simulate-run --sysroot` reads; /proc is mounted in
a mount namespace of its own, as simulate-run builds one), ASLR off, traced
only to stop at the exec SIGTRAP: the fault count is ru_minflt from that stop to
PTRACE_EVENT_EXIT plus the faults of the children it waited for (cminflt), as in
tests/test_emu_oracle.py.  Needs root (chroot, ptrace).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYSROOT_SCRIPT = os.path.join(ROOT, "scripts", "sysroot-i386.sh")
ENV = ("PATH=/usr/bin:/bin", "LC_ALL=C", "HOME=/")
PTRACE_CONT, PTRACE_SETOPTIONS = 7, 0x4200
PTRACE_O_TRACEEXIT, PTRACE_EVENT_EXIT = 0x40, 6


@dataclass
class Outcome:
    stdout: bytes
    exit_status: int          # 128+N when killed by signal N
    minflt: int | None
    stderr: bytes = b""
    warnings: str = ""


def sysroot() -> tuple[str | None, str]:
    """(path, "") of the Debian i386 sysroot, or (None, why it is unavailable)."""
    try:
        r = subprocess.run(["bash", SYSROOT_SCRIPT], capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"sysroot script failed: {e}"
    if r.returncode != 0:
        return None, (r.stderr.strip().splitlines() or ["unknown error"])[-1]
    return r.stdout.strip(), ""


def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    return text[text.rindex(")") + 2:].split()


def native(root: str, argv: list[str], stdin: bytes = b"", env=ENV, cwd: str = "/",
           timeout: float = 60) -> Outcome:
    """Run argv[0] (a path inside root) chrooted into root; stdout, status, faults since exec."""
    from elfvm.host.ptrace import kill_reap as _kill_reap, ptrace as _ptrace, spawn as _spawn

    inp = tempfile.TemporaryFile()           # stdin: a regular file, as --stdin FILE is
    inp.write(stdin)
    inp.seek(0)
    out_r, out_w = os.pipe2(os.O_CLOEXEC)    # stdout/stderr: pipes, as simulate-run's are
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    chunks = {out_r: [], err_r: []}
    readers = [threading.Thread(target=_drain, args=(fd, chunks[fd]), daemon=True)
               for fd in (out_r, err_r)]
    for t in readers:
        t.start()

    proc = os.path.join(root, "proc")
    if root != "/":
        os.makedirs(proc, exist_ok=True)

    def enter():
        os.dup2(inp.fileno(), 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        if root != "/":
            mount_proc(proc)
        os.chroot(root)
        os.chdir(cwd)

    try:
        pid = _spawn(argv[0], argv, list(env), aslr=False, personality_extra=0, rlimit_stack=None,
                     cwd=None, timeout=timeout, pre_exec=enter)
    finally:
        os.close(out_w)
        os.close(err_w)
    deadline = time.monotonic() + timeout
    try:
        start = int(_stat_fields(pid)[7])
        _ptrace(PTRACE_SETOPTIONS, pid, None, ctypes.c_void_p(PTRACE_O_TRACEEXIT))
        _ptrace(PTRACE_CONT, pid, None, None)
        end = None
        while True:
            wpid, status = os.waitpid(pid, os.WNOHANG)
            if wpid == 0:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{argv} did not finish in {timeout}s natively")
                time.sleep(0.002)
                continue
            if os.WIFSTOPPED(status):
                sig = os.WSTOPSIG(status)
                if status >> 16 == PTRACE_EVENT_EXIT:
                    f = _stat_fields(pid)
                    end = int(f[7]) - start + int(f[8])
                    sig = 0
                _ptrace(PTRACE_CONT, pid, None, ctypes.c_void_p(0 if sig == signal.SIGTRAP else sig))
                continue
            break
    except BaseException:
        _kill_reap(pid)
        raise
    code = os.waitstatus_to_exitcode(status)
    for t in readers:
        t.join(timeout)
    for fd in (out_r, err_r):
        os.close(fd)
    return Outcome(b"".join(chunks[out_r]), 128 - code if code < 0 else code, end,
                   b"".join(chunks[err_r]))


CLONE_NEWNS, MS_REC, MS_PRIVATE = 0x00020000, 0x4000, 1 << 18


def mount_proc(path: str) -> None:
    """/proc inside the chroot, in a mount namespace of the child's own (gone when the run
    ends; other runs of the shared sysroot never see it): programs that read /proc/self/maps
    (libsigsegv in gawk) read it natively too, as they do under simulate-run."""
    libc = ctypes.CDLL(None, use_errno=True)
    # best effort: where mount namespaces are not allowed the chroot has no /proc (as before:
    # only programs that read /proc see a difference, a few faults)
    if libc.unshare(CLONE_NEWNS) == 0 and \
            libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) == 0:
        libc.mount(b"proc", path.encode(), b"proc", 0, None)


def _drain(fd: int, into: list) -> None:
    while True:
        data = os.read(fd, 65536)
        if not data:
            return
        into.append(data)


def emulated(root: str, argv: list[str], stdin: bytes = b"", env=ENV, extra=(),
             timeout: float = 600) -> Outcome:
    """The same command line under `elfvm simulate-run --sysroot root --format json`."""
    with tempfile.NamedTemporaryFile() as inp:
        inp.write(stdin)
        inp.flush()
        cmd = [sys.executable, "-m", "elfvm", "simulate-run", "--sysroot", root, "--format", "json",
               "--quiet", "--stdin", inp.name, "--env-clear"]
        for kv in env:
            cmd += ["--env", kv]
        cmd += [*extra, argv[0], *argv[1:]]          # PROGRAM is looked up inside --sysroot
        r = subprocess.run(cmd, capture_output=True, timeout=timeout, cwd="/")
    try:
        doc = json.loads(r.stdout)
    except ValueError:
        return Outcome(b"", -r.returncode if r.returncode else -1, None, r.stderr,
                       r.stderr.decode(errors="replace")[-2000:])
    guest = doc["guest"]
    out = guest["stdout"].encode("utf-8", "surrogateescape") if isinstance(guest["stdout"], str) \
        else b""
    if "stdout_base64" in guest:
        import base64
        out = base64.b64decode(guest["stdout_base64"])
    status = guest["exit_status"]
    return Outcome(out, status if status is not None else -1, doc.get("page_faults"),
                   guest.get("stderr", "").encode(errors="replace"),
                   r.stderr.decode(errors="replace"))


def faults_close(emu: int | None, live: int | None, tolerance: float = 0.05) -> bool:
    if emu is None or live is None:
        return False
    return abs(emu - live) <= max(2, tolerance * live)


# The corpus: (id, argv, stdin).  argv[0] is a path inside the sysroot, or "@name" for a
# fixtures/bin program (run with the host as its root).
TEXT = b"".join(b"line %05d %s\n" % ((i * 7919) % 10007, b"qwertyuiopasdfghjklzxcvbnm"[i % 20:i % 20 + 6])
                for i in range(1, 2001))
C = "/usr/share/doc/coreutils/copyright"
PY_STDLIB = """import json, re, hashlib, os
d = {"k%d" % i: [i, i * i, str(i)] for i in range(50)}
s = json.dumps(d, sort_keys=True)
print(len(s), len(json.loads(s)), sum(map(int, re.findall(r"k(\\d+)", s))))
print(hashlib.sha256(s.encode()).hexdigest(), hashlib.md5(b"abc").hexdigest())
xs = [(i * 7919) % 10007 for i in range(20000)]
xs.sort()
print(xs[:5], xs[-3:], sorted(["b", "a", "c"], reverse=True))
print(sorted(os.listdir("/usr/lib/python3.11/json")))
"""
PY_SUBPROCESS = """import subprocess, os
r = subprocess.run(["/bin/echo", "hi"], capture_output=True)
print(r.returncode, r.stdout)
p = subprocess.Popen(["/usr/bin/wc", "-c"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
out, _ = p.communicate(b"x" * 1000)
print(p.returncode, out.split())
pid = os.fork()
if pid == 0:
    os._exit(7)
print(os.waitpid(pid, 0)[1] >> 8)
"""
PY_THREADS = """import threading, queue
q = queue.Queue()
def work(n): q.put(sum(i * i for i in range(n)))
ts = [threading.Thread(target=work, args=(1000 * (i + 1),)) for i in range(4)]
[t.start() for t in ts]; [t.join() for t in ts]
print(sorted(q.get() for _ in ts))
"""
CORPUS = [
    # fixtures: one per mechanism
    ("fx-threads", ["@threads"], b""),
    ("fx-forkexec", ["@forkexec"], b""),
    ("fx-vforkexec", ["@vforkexec"], b""),
    ("fx-timers", ["@timers"], b""),
    ("fx-mapfile", ["@mapfile"], b""),
    ("fx-sysmisc", ["@sysmisc"], b""),
    ("fx-sortlines", ["@sortlines", "/proc/self/cmdline"], b""),
    # busybox (static)
    ("bb-echo", ["/bin/busybox", "echo", "hello", "world"], b""),
    ("bb-sort", ["/bin/busybox", "sort"], TEXT),
    ("bb-wc", ["/bin/busybox", "wc", C], b""),
    ("bb-md5sum", ["/bin/busybox", "md5sum", C], b""),
    ("bb-sh-pipe", ["/bin/busybox", "sh", "-c", "echo a b c | /bin/busybox tr a-z A-Z"], b""),
    ("bb-sh-loop", ["/bin/busybox", "sh", "-c", "i=0; while [ $i -lt 50 ]; do i=$((i+1)); done; echo $i"], b""),
    ("bb-awk", ["/bin/busybox", "awk", "{s+=$2} END {print s, NR}"], TEXT),
    ("bb-sed", ["/bin/busybox", "sed", "-n", "s/line 0*\\([0-9]*\\) .*/\\1/p"], TEXT[:2000]),
    ("bb-ls", ["/bin/busybox", "ls", "/usr/share/doc"], b""),
    ("bb-gzip", ["/bin/busybox", "gzip", "-c"], TEXT),
    # coreutils (dynamic)
    ("cat", ["/bin/cat", C], b""),
    ("cat-stdin", ["/bin/cat"], TEXT),
    ("ls", ["/bin/ls", "-l", "/usr/share/doc/coreutils"], b""),
    ("sort", ["/usr/bin/sort"], TEXT),
    ("sort-n", ["/usr/bin/sort", "-n", "-k2"], TEXT),
    ("wc", ["/usr/bin/wc", C], b""),
    ("md5sum", ["/usr/bin/md5sum", C], b""),
    ("sha256sum", ["/usr/bin/sha256sum"], TEXT),
    ("head", ["/usr/bin/head", "-n", "5", C], b""),
    ("tail", ["/usr/bin/tail", "-n", "5"], TEXT),
    ("tr", ["/usr/bin/tr", "a-z", "A-Z"], TEXT[:3000]),
    ("cut", ["/usr/bin/cut", "-d", " ", "-f", "2"], TEXT[:3000]),
    ("uniq", ["/usr/bin/uniq", "-c"], b"a\na\nb\nc\nc\nc\n"),
    ("seq", ["/usr/bin/seq", "1", "1000"], b""),
    ("factor", ["/usr/bin/factor", "1234567890", "9999999967"], b""),
    ("expr", ["/usr/bin/expr", "6", "*", "7"], b""),
    ("od", ["/usr/bin/od", "-An", "-tx1", "-N", "64", "/bin/true"], b""),
    ("base64", ["/usr/bin/base64"], TEXT[:1000]),
    ("stat", ["/usr/bin/stat", "-c", "%s %F", C], b""),
    ("du", ["/usr/bin/du", "-s", "--apparent-size", "/usr/share/doc/coreutils"], b""),
    ("date-d", ["/bin/date", "-u", "-d", "@1000000000", "+%F %T"], b""),
    ("true", ["/bin/true"], b""),
    ("false", ["/bin/false"], b""),
    ("printf", ["/usr/bin/printf", "%s-%d\\n", "a", "1", "b", "2"], b""),
    ("tac", ["/usr/bin/tac"], TEXT[:3000]),
    ("nl", ["/usr/bin/nl"], TEXT[:2000]),
    ("env", ["/usr/bin/env"], b""),
    # shells
    ("dash-c", ["/bin/dash", "-c", "x=1; for i in 1 2 3; do x=$((x*i+1)); done; echo $x"], b""),
    ("dash-pipe", ["/bin/dash", "-c", "/bin/cat | /usr/bin/sort | /usr/bin/head -n 3"], TEXT),
    ("dash-exec", ["/bin/dash", "-c", "/bin/echo one; /bin/echo two"], b""),
    ("bash-c", ["/bin/bash", "-c", "a=(3 1 2); echo ${#a[@]} ${a[1]}; echo $((2**10))"], b""),
    ("bash-pipe", ["/bin/bash", "-c", "seq 1 100 | grep 7 | wc -l"], b""),
    ("bash-subst", ["/bin/bash", "-c", "echo $(echo inner) $(( $(seq 1 10 | wc -l) * 2 ))"], b""),
    ("sh-script", ["/bin/sh"], b"i=0\nwhile [ $i -lt 20 ]; do i=$((i+1)); done\necho done $i\n"),
    # text tools
    ("grep", ["/bin/grep", "-c", "qwer"], TEXT),
    ("grep-E", ["/bin/grep", "-E", "-o", "[0-9]{5} [a-z]{3}"], TEXT[:2000]),
    ("sed", ["/bin/sed", "-e", "s/line/LINE/", "-e", "5q"], TEXT),
    ("gawk", ["/usr/bin/gawk", "{c[$3]++} END {n=asorti(c,k); for(i=1;i<=n;i++) print k[i], c[k[i]]}"], TEXT),
    ("gawk-math", ["/usr/bin/gawk", "BEGIN {for(i=1;i<=10;i++) s+=sqrt(i); printf \"%.6f\\n\", s}"], b""),
    ("bc", ["/usr/bin/bc", "-q"], b"scale=30\n4*a(1)\n2^100\n"),
    ("perl", ["/usr/bin/perl", "-e", "my %h; $h{$_ % 7}++ for 1..1000; print join(',', map {\"$_=$h{$_}\"} sort keys %h), \"\\n\""], b""),
    ("perl-stdin", ["/usr/bin/perl", "-ne", "print if /qwer/"], TEXT[:4000]),
    # archives and friends
    ("xz", ["/usr/bin/xz", "-c", "-1"], TEXT),
    ("xz-roundtrip", ["/bin/sh", "-c", "/usr/bin/xz -c | /usr/bin/xz -dc | /usr/bin/md5sum"], TEXT),
    ("tar-t", ["/bin/sh", "-c", "cd /usr/share/doc && /bin/tar -cf - coreutils | /bin/tar -tvf - --numeric-owner"], b""),
    ("file", ["/usr/bin/file", "/bin/true", C], b""),
    ("make", ["/usr/bin/make", "-f", "-", "all"], b"all: a b\n\t@echo all done\na:\n\t@echo making a\nb:\n\t@echo making b\n"),
    # more programs and the file system calls they make (everything under /tmp, cleaned up)
    ("find", ["/bin/sh", "-c", "/usr/bin/find /usr/share/doc/coreutils -type f | /usr/bin/sort"], b""),
    ("xargs", ["/bin/sh", "-c", "/usr/bin/seq 1 20 | /usr/bin/xargs -n 5 /bin/echo"], b""),
    ("yes-head", ["/bin/sh", "-c", "/usr/bin/yes | /usr/bin/head -n 3"], b""),
    ("sleep", ["/bin/sh", "-c", "/bin/sleep 0.05 && echo slept"], b""),
    ("id", ["/usr/bin/id"], b""),
    ("nproc", ["/usr/bin/nproc"], b""),
    ("perl-sort", ["/usr/bin/perl", "-e", "print sort <STDIN>"], TEXT[:3000]),
    ("bb-find", ["/bin/busybox", "find", "/usr/share/doc/coreutils"], b""),
    ("sed-i", ["/bin/sh", "-c", "cp " + C + " /tmp/sedi && sed -i s/the/THE/g /tmp/sedi && "
               "md5sum /tmp/sedi; rm -f /tmp/sedi"], b""),
    ("mkdir-mv", ["/bin/sh", "-c", "mkdir -p /tmp/mm/b && echo hi > /tmp/mm/b/f && "
                  "mv /tmp/mm/b/f /tmp/mm/g && ls -R /tmp/mm && cat /tmp/mm/g; rm -r /tmp/mm; ls /tmp"], b""),
    ("ln-s", ["/bin/sh", "-c", "ln -s " + C + " /tmp/lnk && readlink /tmp/lnk && head -n 1 /tmp/lnk; "
              "rm -f /tmp/lnk"], b""),
    ("chmod-touch", ["/bin/sh", "-c", "echo x > /tmp/ct; chmod 600 /tmp/ct; touch -d @1000000000 /tmp/ct; "
                     "stat -c '%a %Y %s' /tmp/ct; rm -f /tmp/ct"], b""),
    ("tar-x", ["/bin/sh", "-c", "cd /tmp && tar -cf - -C /usr/share/doc coreutils | tar -xf - && "
               "ls -l coreutils | wc -l && md5sum coreutils/copyright; rm -rf /tmp/coreutils"], b""),
    ("split", ["/bin/sh", "-c", "cd /tmp && seq 1 100 | split -l 30 - part && cat part* | wc -l; "
               "rm -f part*"], b""),
    ("sort-o", ["/bin/sh", "-c", "sort -o /tmp/so && wc -l < /tmp/so; rm -f /tmp/so"], TEXT),
    # python3.11 (the stdlib byte-compiled, as Debian installs it): each 2-6 s under emulation
    ("py-sum", ["/usr/bin/python3.11", "-c", "print(sum(range(10**5)))"], b""),
    ("py-stdlib", ["/usr/bin/python3.11", "-c", PY_STDLIB], b""),
    ("py-stdin-sort", ["/usr/bin/python3.11", "-c", "import sys; lines = sys.stdin.readlines(); "
                       "lines.sort(key=lambda l: l.split()[2]); sys.stdout.writelines(lines[:20])"],
     TEXT),
    ("py-subprocess", ["/usr/bin/python3.11", "-c", PY_SUBPROCESS], b""),
    ("py-threads", ["/usr/bin/python3.11", "-c", PY_THREADS], b""),
]


def fixture_argv(argv: list[str]) -> tuple[str, list[str]]:
    """The root and argv of a corpus entry ("@name": fixtures/bin/name, root /)."""
    if argv[0].startswith("@"):
        return "/", [os.path.join(ROOT, "fixtures", "bin", argv[0][1:]), *argv[1:]]
    return None, argv
