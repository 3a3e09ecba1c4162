"""Real kernels of other versions as oracles: boot them under qemu (TCG, no KVM) and stop each
program at exec, as elfvm/oracle/live.py does on the host.

A boot: a tiny initramfs (newc cpio, written here) holds a static i386 init (qemu_init.c, built
with gcc -m32 -static), the programs at their host paths, the i386 ld.so at its host path (with
/lib/ld-linux.so.2 as a link to it), and /oracle/list.  The init prints, for each program, the
verdict, eip/esp, /proc/PID/stat, /proc/PID/maps and the stack from esp up; and once per boot
the kernel release, vm.mmap_min_addr, its own auxv (the CPU-given AT_HWCAP, AT_HWCAP2,
AT_MINSIGSTKSZ) and its [vdso] bytes (the real vDSO image of that kernel).  One boot runs every
program; a boot takes seconds.

Kernels come from Debian's packages (scripts/fetch-kernels.sh puts them in ~/.cache/elfvm/kernels,
or $ELFVM_CACHE/kernels): vmlinuz plus `package`, the .deb it came from.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import stat as statmod
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

INIT_SOURCE = Path(__file__).with_name("qemu_init.c")


def cache_dir() -> Path:
    return Path(os.environ.get("ELFVM_CACHE") or Path.home() / ".cache" / "elfvm")


@dataclass(frozen=True)
class KernelImage:
    name: str              # directory name: VERSION-FLAVOUR (6.1.176-686-pae, 6.12.95-amd64)
    vmlinuz: Path
    package: str

    @property
    def version(self) -> str:
        return self.name.split("-")[0]

    @property
    def is_i386(self) -> bool:
        return "686" in self.name

    @property
    def profile(self) -> str:
        return "linux-i386" if self.is_i386 else "linux-x86_64-compat"


def kernels() -> list[KernelImage]:
    """The kernels fetched into the cache, by name."""
    out = []
    root = cache_dir() / "kernels"
    for d in sorted(root.iterdir()) if root.is_dir() else []:
        if (d / "vmlinuz").is_file():
            pkg = (d / "package").read_text().strip() if (d / "package").is_file() else "?"
            out.append(KernelImage(d.name, d / "vmlinuz", pkg))
    return out


def vdso_dir() -> Path:
    """Where the booted kernels' [vdso] images are kept: VERSION-FLAVOUR.so."""
    return cache_dir() / "vdso"


def vdso_images() -> dict[str, bytes]:
    """The kept [vdso] images by kernel name (6.1.176-686, 7.3.4-amd64, ...)."""
    d = vdso_dir()
    return {f.stem: f.read_bytes() for f in sorted(d.glob("*.so"))} if d.is_dir() else {}


def vdso_symbols(image: bytes, prefix: str = "") -> dict[str, int]:
    """The named symbols of a vDSO image's .dynsym (those starting with `prefix`): offsets."""
    from elftools.elf.elffile import ELFFile

    elf = ELFFile(io.BytesIO(image))
    return {s.name: s["st_value"] for sec in elf.iter_sections() if sec.header.sh_type == "SHT_DYNSYM"
            for s in sec.iter_symbols() if s.name and s.name.startswith(prefix)
            and s["st_info"]["type"] == "STT_FUNC"}


def qemu_for(k: KernelImage) -> str | None:
    return shutil.which("qemu-system-i386" if k.is_i386 else "qemu-system-x86_64")


# --- the initramfs ------------------------------------------------------------------------------

def _cpio_entry(name: str, mode: int, data: bytes, ino: int) -> bytes:
    name_b = name.encode() + b"\0"
    hdr = "070701" + "".join(f"{v:08x}" for v in (
        ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name_b), 0))
    out = hdr.encode() + name_b
    out += b"\0" * (-len(out) % 4) + data
    return out + b"\0" * (-len(out) % 4)


def newc_archive(files: dict[str, bytes | tuple[str, str]]) -> bytes:
    """A newc cpio: guest path -> file bytes (mode 0755), or ("link", target) for a symlink.
    Parent directories are created as needed."""
    entries: list[bytes] = []
    dirs: set[str] = set()
    ino = 1
    for path in sorted(files):
        parts = path.strip("/").split("/")
        for i in range(1, len(parts)):
            d = "/".join(parts[:i])
            if d not in dirs:
                dirs.add(d)
                entries.append(_cpio_entry(d, statmod.S_IFDIR | 0o755, b"", ino))
                ino += 1
        v = files[path]
        if isinstance(v, tuple):
            entries.append(_cpio_entry(path.strip("/"), statmod.S_IFLNK | 0o777, v[1].encode(), ino))
        else:
            entries.append(_cpio_entry(path.strip("/"), statmod.S_IFREG | 0o755, v, ino))
        ino += 1
    entries.append(_cpio_entry("TRAILER!!!", 0, b"", 0))
    return b"".join(entries)


def build_init(workdir: Path) -> Path:
    out = workdir / "init"
    subprocess.run(["gcc", "-m32", "-static", "-O1", "-D_FILE_OFFSET_BITS=64", "-o", str(out),
                    str(INIT_SOURCE)],
                   check=True, capture_output=True)
    return out


@dataclass(frozen=True)
class OracleRun:
    path: str                 # the program, at its host path (also its path in the guest)
    env: tuple[str, ...] = ()
    rlimit_stack: int | None = None     # None: the default (8 MiB)
    to_exit: bool = False     # run it to exit: its minor faults and its present vDSO pages
    libs: tuple[str, ...] = ()          # host files it needs to run (libc.so.6), at their paths


def _add_host_file(files: dict, path: str) -> None:
    """A host file at its real path, and `path` as a link to it when it differs, as on the host
    (/lib/ld-linux.so.2 -> /lib32/..., /lib32 -> usr/lib32)."""
    real = os.path.realpath(path)
    files[real] = Path(real).read_bytes()
    if real != path:
        files[path] = ("link", real)


def initramfs(workdir: Path, runs: list[OracleRun]) -> Path:
    files: dict[str, bytes | tuple[str, str]] = {"/init": build_init(workdir).read_bytes()}
    for r in runs:
        files[r.path] = Path(r.path).read_bytes()
        for lib in r.libs:
            _add_host_file(files, lib)
    if os.path.exists("/lib/ld-linux.so.2"):
        _add_host_file(files, "/lib/ld-linux.so.2")
    # ld.so maps the host's cache while it looks libraries up, in elfvm's run (the host's files)
    # as on the host: without it the guest's libc lands 10 pages higher (no cache mapping below
    # it) and its 16-page fault-around windows fall elsewhere (±1 fault per run).
    if os.path.exists("/etc/ld.so.cache"):
        _add_host_file(files, "/etc/ld.so.cache")
    files["/oracle/list"] = "".join(
        "\t".join(("exit" if r.to_exit else "stop", "-" if r.rlimit_stack is None else str(r.rlimit_stack),
                   r.path, *r.env)) + "\n"
        for r in runs).encode()
    out = workdir / "initramfs.cpio"
    out.write_bytes(newc_archive(files))
    return out


# --- booting and reading the console ----------------------------------------------------------

@dataclass
class ProgramReport:
    path: str
    verdict: str = ""         # ok | errno (execve returned) | killed (during exec)
    signal: int = 0           # the errno, or the signal that killed it
    eip: int = 0
    esp: int = 0
    stat: str = ""
    maps: str = ""
    stack_addr: int = 0
    stack: bytes = b""
    minflt: int | None = None     # a to_exit run: its minor faults from exec to exit
    present: dict[str, str] = field(default_factory=dict)   # [vvar]/[vvar_vclock]/[vdso]: "0110"
    mapped: dict[int, str] = field(default_factory=dict)    # a to_exit run: mapping start -> present pages

    @property
    def stat_mm(self) -> dict[str, int]:
        """The mm fields of /proc/PID/stat (26-28 and 45-51, proc(5))."""
        rest = self.stat[self.stat.rfind(")") + 2:].split()
        f = {i + 3: int(v) for i, v in enumerate(rest) if v.lstrip("-").isdigit()}
        names = {26: "start_code", 27: "end_code", 28: "start_stack", 45: "start_data",
                 46: "end_data", 47: "start_brk", 48: "arg_start", 49: "arg_end",
                 50: "env_start", 51: "env_end"}
        return {n: f[i] for i, n in names.items() if i in f}


@dataclass
class BootReport:
    kernel: KernelImage
    release: str = ""
    machine: str = ""
    mmap_min_addr: int = 4096
    auxv: list[tuple[int, int]] = field(default_factory=list)
    vdso_addr: int = 0
    vdso: bytes = b""
    selfmaps: str = ""
    programs: list[ProgramReport] = field(default_factory=list)     # in the order of the runs
    console: str = ""

    def aux(self, a_type: int) -> int | None:
        return next((v for t, v in self.auxv if t == a_type), None)


def boot(k: KernelImage, runs: list[OracleRun], *, timeout: float = 300) -> BootReport:
    """Boot kernel k once with every run in its initramfs; parse what the init printed."""
    qemu = qemu_for(k)
    if qemu is None:
        raise RuntimeError("qemu-system-x86 is not installed")
    with tempfile.TemporaryDirectory(prefix="elfvm-qemu-") as tmp:
        rd = initramfs(Path(tmp), runs)
        # An Intel CPU model: on AMD family 15h (qemu64's default) the kernel may align mmaps
        # (va_align), which this machine's CPU does not do.
        cpu = "pentium3" if k.is_i386 else "Nehalem"
        # Enough RAM that the overcommit heuristic (__vm_enough_memory: one mapping may not
        # exceed RAM + swap) does not refuse the crafted multi-GiB images this machine maps;
        # TCG only allocates what the guest touches.
        memory = "3G" if k.is_i386 else "6G"
        cmd = [qemu, "-nographic", "-no-reboot", "-m", memory, "-accel", "tcg", "-cpu", cpu,
               "-kernel", str(k.vmlinuz), "-initrd", str(rd),
               "-append", "console=ttyS0 panic=-1 quiet loglevel=0 rdinit=/init"]
        p = subprocess.run(cmd, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    text = p.stdout.decode("latin-1").replace("\r", "")
    rep = parse_console(k, text)
    if "@@done" not in text or len(rep.programs) != len(runs):
        raise RuntimeError(f"{k.name}: the oracle init did not finish; console tail:\n{text[-2000:]}")
    return rep


def save_vdso(rep: BootReport) -> Path:
    """Keep the [vdso] the booted kernel mapped (vdso_dir()/NAME.so), for the table's unit test."""
    out = vdso_dir() / f"{rep.kernel.name}.so"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(rep.vdso)
    return out


def parse_console(k: KernelImage, text: str) -> BootReport:
    rep = BootReport(k, console=text)
    cur: ProgramReport | None = None
    lines = iter(text.split("\n"))

    def block() -> str:
        out = []
        for ln in lines:
            if ln == "@@end":
                break
            out.append(ln + "\n")
        return "".join(out)

    for ln in lines:
        if "@@" not in ln:
            continue
        tag, _, arg = ln[ln.index("@@") + 2:].partition(" ")
        if tag == "release":
            rep.release, _, rep.machine = arg.partition(" ")
        elif tag == "mmap_min_addr":
            rep.mmap_min_addr = int(block().strip() or 4096)
        elif tag in ("auxv", "vdso", "stack"):
            addr = int(arg, 16)
            data = bytes.fromhex(re.sub(r"\s", "", block()))
            if tag == "auxv":
                word = 4                        # the init is an i386 program: 32-bit auxv words
                vals = [int.from_bytes(data[i:i + word], "little") for i in range(0, len(data), word)]
                rep.auxv = [(vals[i], vals[i + 1]) for i in range(0, len(vals) - 1, 2)
                            if not (vals[i] == 0 and i)][:64]
            elif tag == "vdso":
                rep.vdso_addr, rep.vdso = addr, data
            elif cur is not None:
                cur.stack_addr, cur.stack = addr, data
        elif tag == "selfmaps":
            rep.selfmaps = block()
        elif tag == "cpuinfo":
            block()
        elif tag == "program":
            cur = ProgramReport(arg.partition(" ")[2])
            rep.programs.append(cur)
        elif tag == "verdict" and cur is not None:
            cur.verdict, _, sig = arg.partition(" ")
            cur.signal = int(sig or 0)
        elif tag == "regs" and cur is not None:
            regs = dict(kv.split("=") for kv in arg.split())
            cur.eip, cur.esp = int(regs["eip"], 16), int(regs["esp"], 16)
        elif tag == "stat" and cur is not None:
            cur.stat = block()
        elif tag == "maps" and cur is not None:
            cur.maps = block()
        elif tag == "minflt" and cur is not None:
            cur.minflt = int(arg)
        elif tag == "present" and cur is not None:
            name, _, bits = arg.partition(" ")
            cur.present[name] = bits.strip()
        elif tag == "mapped" and cur is not None:
            start, _, bits = arg.partition(" ")
            cur.mapped[int(start, 16)] = bits.strip()
    return rep


# --- comparing with elfvm's prediction ----------------------------------------------------------

def _guest_maps_text(maps: str, mm) -> str:
    """elfvm's maps text for `mm`, with each file's dev and inode taken from the guest's maps
    (the guest's files live on its initramfs, the prediction reads them on the host); the
    padding of the name column then depends on the same inode widths as the kernel's."""
    from dataclasses import replace as dc_replace

    from elfvm.mm.maps import proc_maps

    ids = {}
    for line in maps.splitlines():
        f = line.split(None, 5)
        if len(f) == 6:
            ids[f[5]] = (f[3], int(f[4]))
    out = []
    for ln in proc_maps(mm):
        if ln.name in ids and ln.inode:
            ln = dc_replace(ln, dev=ids[ln.name][0], inode=ids[ln.name][1])
        out.append(ln.text() + "\n")
    return "".join(out)


def differences(prog: ProgramReport, result) -> list[str]:
    """What differs between the booted kernel's `prog` and elfvm's ExecResult `result`
    (maps but dev/inode, the auxv on the stack, eip, esp, the mm fields, the stack bytes
    but AT_RANDOM's 16): an empty list means identical."""
    import difflib

    if prog.verdict != "ok" or result.verdict.result != "ok":
        v = result.verdict
        if prog.verdict != v.result or (v.result == "errno" and prog.signal != v.errno):
            what = f"errno {prog.signal}" if prog.verdict == "errno" else \
                f"killed by signal {prog.signal}" if prog.verdict == "killed" else "loads"
            return [f"verdict: kernel {what}, elfvm {v.result} {v.errno} ({v.step}: {v.reason})"]
        return []
    diffs = []
    want, got = _guest_maps_text(prog.maps, result.mm), prog.maps
    if want != got:
        diffs.append("maps (--- kernel, +++ elfvm):\n" + "".join(
            difflib.unified_diff(got.splitlines(True), want.splitlines(True), n=0))
            .split("\n", 2)[-1])
    for reg, mine in (("eip", result.eip), ("esp", result.stack.esp)):
        theirs = getattr(prog, reg)
        if theirs != mine:
            diffs.append(f"{reg}: kernel {theirs:#x}, elfvm {mine:#x}")
    mm = result.mm
    for name, theirs in prog.stat_mm.items():
        if theirs != getattr(mm, name):
            diffs.append(f"mm->{name}: kernel {theirs:#x}, elfvm {getattr(mm, name):#x}")
    st = result.stack
    if prog.esp == st.esp and prog.stack_addr == st.image_base:
        real = prog.stack
        words = [int.from_bytes(real[i:i + 4], "little") for i in range(0, len(real) - 3, 4)]
        aux_at = (st.auxv_addr - st.image_base) // 4
        theirs_aux = []
        for i in range(aux_at, len(words) - 1, 2):
            theirs_aux.append((words[i], words[i + 1]))
            if words[i] == 0:
                break
        mine_aux = [(a.type, a.value) for a in result.auxv]
        if theirs_aux != mine_aux:
            diffs.append(f"auxv: kernel {[(t, hex(v)) for t, v in theirs_aux]}\n"
                         f"      elfvm  {[(t, hex(v)) for t, v in mine_aux]}")
        rnd = range(st.random_addr - st.image_base, st.random_addr - st.image_base + 16)
        n = min(len(real), len(st.image))
        bad = [i for i in range(n) if real[i] != st.image[i] and i not in rnd]
        if bad or len(real) != len(st.image):
            diffs.append(f"stack bytes: {len(bad)} differ (first at {st.image_base + bad[0]:#x})"
                         if bad else f"stack: kernel {len(real)} bytes from esp, elfvm {len(st.image)}")
    return diffs
