"""Page-cache folios and fault-around (simulate-run --page-cache model|live).

The rule (elfvm.mm.fault.fault_around_folios) is pure and tested on its own; the live reader
(elfvm.host.pagecache) is tested against files whose folios the kernel has just made (one big
buffered write on ext4 makes one large folio; tmpfs without huge= makes small ones); the oracle
tests check that `live` counts faults at least as close to the kernel's as the model does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from elfvm.emu.folios import PageCacheFolios
from elfvm.errors import UsageError
from elfvm.host import pagecache
from elfvm.mm.fault import fault_around_folios, fault_around_range

sys.path.insert(0, os.path.dirname(__file__))
import realprog as rp  # noqa: E402

P = 0x1000
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def small(index):
    return index, 1


def folios(heads: dict):
    return pagecache.FolioLayout(1 << 20, 0, heads).folio_of


# --- the rule ----------------------------------------------------------------------------------

def test_small_folios_map_the_window():
    first, last = fault_around_range(0x08052000, 0x08049000, 0x08100000, 1024)
    assert fault_around_folios(first, last, 0x08049000, 0x08100000, 0, 1024, small, True) == \
        [(a, a + P) for a in range(first, last, P)]


def test_a_large_folio_inside_the_vma_is_mapped_whole_from_6_18():
    # VMA at file page 0; window [0x10, 0x20) pages; a 32-page folio at file index 0x10
    vma = (0x10000000, 0x10100000)
    ranges = fault_around_folios(0x10010000, 0x10020000, *vma, 0, 1024, folios({0x10: 32}), True)
    assert ranges == [(0x10010000, 0x10030000)]
    # before 6.18: only where it meets the window
    assert fault_around_folios(0x10010000, 0x10020000, *vma, 0, 1024, folios({0x10: 32}), False) == \
        [(0x10010000, 0x10020000)]


def test_a_folio_sticking_out_of_the_vma_or_page_table_is_mapped_in_the_window_only():
    # the VMA starts at file page 4: the folio [0, 16) begins before it
    vma = (0x10000000, 0x10100000)
    assert fault_around_folios(0x10000000, 0x10010000, *vma, 4 * P, 1024, folios({0: 16}), True) == \
        [(0x10000000, 0x1000C000), (0x1000C000, 0x1000D000), (0x1000D000, 0x1000E000),
         (0x1000E000, 0x1000F000), (0x1000F000, 0x10010000)]
    # a page table covers 4 MiB (1024 PTEs): a 64-page folio across 0x10400000 stays split
    vma = (0x10000000, 0x10800000)
    r = fault_around_folios(0x103F0000, 0x10400000, *vma, 0, 1024, folios({0x3E0: 64}), True)
    assert r == [(0x103F0000, 0x10400000)]


def test_folio_of_finds_the_head_of_an_aligned_folio():
    f = folios({8: 8, 16: 2})
    assert [f(i) for i in (7, 8, 15, 16, 17, 18)] == [(7, 1), (8, 8), (8, 8), (16, 2), (16, 2), (18, 1)]


def test_heads_follow_compound_tails_with_consecutive_pfns():
    H, T = 1 << pagecache.KPF_COMPOUND_HEAD, 1 << pagecache.KPF_COMPOUND_TAIL
    pfns = {0: 100, 1: 101, 2: 50, 3: 51, 4: 52, 5: 53, 6: 7}
    flags = {100: H, 101: T, 50: H, 51: T, 52: T, 53: T, 7: 0}
    assert pagecache._heads(pfns, flags) == {0: 2, 2: 4}


# --- the live reader ---------------------------------------------------------------------------

def _need_root():
    if os.geteuid() != 0:
        pytest.skip("PFNs in /proc/self/pagemap and /proc/kpageflags need root")


def test_live_reader_sees_the_large_folio_of_one_big_write(tmp_path):
    _need_root()
    path = tmp_path / "f"
    path.write_bytes(os.urandom(1 << 20))
    a = pagecache.folio_layout(str(path))
    assert a.npages == a.cached == 256
    if not a.heads:
        pytest.skip(f"{tmp_path}'s file system gives small folios only")
    head, n = a.folio_of(5)
    assert n > 1 and head % n == 0 and head <= 5 < head + n
    assert pagecache.folio_layout(str(path)) == a          # reading it changes nothing


def test_live_reader_on_tmpfs_sees_small_folios():
    _need_root()
    if not os.path.isdir("/dev/shm"):
        pytest.skip("no /dev/shm")
    path = os.path.join("/dev/shm", f"elfvm-folio-{os.getpid()}")
    try:
        with open(path, "wb") as f:
            f.write(os.urandom(64 * P))
        a = pagecache.folio_layout(path)
    finally:
        os.unlink(path)
    huge = open("/sys/kernel/mm/transparent_hugepage/shmem_enabled").read()
    if "[never]" not in huge and "[deny]" not in huge:
        pytest.skip(f"tmpfs may use huge pages here ({huge.strip()})")
    assert (a.npages, a.cached, a.heads) == (64, 64, {})


def test_live_without_root_is_a_one_line_usage_error():
    if os.geteuid() != 0:
        with pytest.raises(UsageError, match="--page-cache live: /proc/"):
            PageCacheFolios("live", True)
        return
    # as root: a child without CAP_SYS_ADMIN, which reads PFN 0 from /proc/self/pagemap
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed to drop CAP_SYS_ADMIN")
    r = subprocess.run(["setpriv", "--bounding-set", "-sys_admin", sys.executable, "-m", "elfvm",
                        "simulate-run", "--page-cache", "live",
                        os.path.join(ROOT, "fixtures", "bin", "tiny")],
                       capture_output=True, text=True, cwd="/")
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [
        "elfvm: --page-cache live: /proc/self/pagemap hides PFNs (reading the live page cache "
        "needs CAP_SYS_ADMIN: root)"], r.stderr


def test_the_report_names_the_folio_source():
    from click.testing import CliRunner

    from elfvm.cli import cli

    tiny = os.path.join(ROOT, "fixtures", "bin", "tiny")
    r = CliRunner().invoke(cli, ["simulate-run", tiny])
    assert "note: fault-around: 16 pages, whole large folios inside the VMA and page table " \
           "(Linux >= 6.18); folio sizes: model (every page its own 4 KiB folio)" in r.output
    r = CliRunner().invoke(cli, ["simulate-run", "--kernel", "6.12", tiny])
    assert "the 16-page window only (Linux < 6.18)" in r.output
    r = CliRunner().invoke(cli, ["simulate-run", "--fault-model", "simple", "--page-cache", "live", tiny])
    assert r.exit_code == 2 and "no fault-around" in r.output


def test_json_keeps_its_keys_and_notes_the_live_source_on_stderr():
    """Through click's runner (stdout and stderr apart): as a `python -m elfvm` child of a long
    pytest run on the loaded 2-core machine, this run's stdout came back empty 4 times in ~8
    whole-suite runs (status 42, the guest's; stderr empty), never in 500+ runs outside pytest;
    the cause was not found (see the session note)."""
    _need_root()
    from click.testing import CliRunner

    from elfvm.cli import cli

    tiny = os.path.join(ROOT, "fixtures", "bin", "tiny")
    model = CliRunner().invoke(cli, ["simulate-run", "--format", "json", tiny])
    live = CliRunner().invoke(cli, ["simulate-run", "--format", "json", "--page-cache", "live", tiny])
    for r in (model, live):     # the guest's exit status is tiny's 42
        assert r.exit_code == 42 and r.stdout.startswith("{"), (r.exit_code, r.stderr[-3000:])
    assert json.loads(live.stdout).keys() == json.loads(model.stdout).keys()
    assert model.stderr == ""
    assert live.stderr.startswith("elfvm: note: fault-around: 16 pages, whole large folios inside "
                                  "the VMA and page table (Linux >= 6.18); folio sizes: live "
                                  "(host page cache: 1 file(s) read"), live.stderr


# --- against the kernel --------------------------------------------------------------------------

def _closer(root: str, argv: list[str], stdin: bytes) -> None:
    n = rp.native(root, argv, stdin)
    model = rp.emulated(root, argv, stdin, extra=("--page-cache", "model"))
    live = rp.emulated(root, argv, stdin, extra=("--page-cache", "live"))
    print(f"\n{argv[0]}: kernel {n.minflt}, model {model.minflt}, live {live.minflt}")
    assert live.stdout == n.stdout and live.exit_status == n.exit_status
    assert abs(live.minflt - n.minflt) <= abs(model.minflt - n.minflt), (n.minflt, model.minflt,
                                                                          live.minflt)


@pytest.mark.oracle
def test_live_folios_are_at_least_as_close_as_the_model_dynamic_fixture(capsys):
    _need_root()
    pytest.importorskip("unicorn")
    prog = os.path.join(ROOT, "fixtures", "bin", "hello_pie")
    if not os.path.exists(prog):
        pytest.skip("run `make fixtures`")
    with capsys.disabled():
        _closer("/", [prog], b"")


@pytest.mark.oracle
def test_live_folios_are_at_least_as_close_as_the_model_real_program(capsys):
    _need_root()
    pytest.importorskip("unicorn")
    root, why = rp.sysroot()
    if root is None:
        pytest.skip(f"no Debian i386 sysroot: {why}")
    argv, stdin = next((a, s) for c, a, s in rp.CORPUS if c == "gawk")
    with capsys.disabled():
        _closer(root, argv, stdin)


@pytest.mark.parametrize("overlay", [False, True])
def test_read_into_fills_buffers_from_the_file_and_leaves_what_lies_past_its_end(tmp_path, overlay):
    """Fault-around's pages read in (Inode.read_into): each buffer gets the file's bytes at its
    offset, buffers that follow each other in the file in one preadv; past the end of the file
    a buffer keeps what it held (zeros in a frame never handed out), as pread() leaves it."""
    from elfvm.emu.vfs import Inode

    data = bytes(range(256)) * 56                      # 3.5 pages
    path = tmp_path / "f"
    path.write_bytes(data)
    ino = Inode("/f", str(path), os.stat(path))
    if overlay:
        ino.data = bytearray(data)
    a, b, c = bytearray(P), bytearray(P), bytearray(b"\xaa" * 2 * P)
    ino.read_into([(0, a), (P, memoryview(b)), (3 * P, c)])
    assert bytes(a) == data[:P] and bytes(b) == data[P:2 * P]
    assert bytes(c[:P // 2]) == data[3 * P:] and bytes(c[P // 2:]) == b"\xaa" * (P + P // 2)
    assert ino.pread(3 * P, 2 * P) == data[3 * P:]
