"""A guest's captured stdout is bounded in host memory (issue 10): past a few MiB it spools to
a temporary file; the report, JSON and --stdout FILE still get every byte."""

import os
import subprocess
import sys

import pytest

from conftest import build_static_guest

HERE = os.path.dirname(os.path.abspath(__file__))
pytest.importorskip("unicorn")


@pytest.fixture(scope="module")
def flood(tmp_path_factory):
    out = tmp_path_factory.mktemp("guest")
    return build_static_guest(os.path.join(HERE, "guest_progs", "flood.c"), out / "flood")


def test_guest_output_spools_beyond_memory():
    from elfvm.emu.vfs import GuestOutput

    g = GuestOutput()
    for i in range(3):
        g += bytes([i]) * (GuestOutput.SPOOL_BYTES // 2)
    assert len(g) == 3 * (GuestOutput.SPOOL_BYTES // 2)
    assert g._f._rolled                     # past SPOOL_BYTES the bytes live in a file
    data = bytes(g)
    assert data[:1] == b"\0" and data[-1:] == b"\2" and len(data) == len(g)
    g += b"tail"
    assert bytes(g).endswith(b"tail")


def _maxrss_mib(args, tmp_path):
    """Run `elfvm ARGS` as a child; (its stderr and status, its peak RSS in MiB from wait4)."""
    p = subprocess.Popen([sys.executable, "-m", "elfvm", *args], cwd=tmp_path,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    p.stderr.close()
    return subprocess.CompletedProcess(p.args, p.returncode, b"", err), ru.ru_maxrss // 1024


def test_printing_guest_does_not_grow_host_memory(flood, tmp_path):
    """256 MiB of guest stdout (written to --stdout FILE, table report): the host's peak RSS
    grows far less than the output (compare 8 MiB and 256 MiB of output)."""
    out = tmp_path / "out.bin"
    small, rss_small = _maxrss_mib(["simulate-run", "-q", "--stdout", str(out), flood, "8"], tmp_path)
    assert small.returncode == 0, small.stderr[-500:]
    big, rss_big = _maxrss_mib(["simulate-run", "-q", "--stdout", str(out), flood, "256"], tmp_path)
    assert big.returncode == 0, big.stderr[-500:]
    assert out.stat().st_size == 256 << 20
    with open(out, "rb") as f:
        assert f.read(4096) == b"y" * 4096
    assert rss_big - rss_small < 64, (rss_small, rss_big)


def test_json_still_has_every_byte(flood):
    import base64
    import json

    from click.testing import CliRunner

    from elfvm.cli import cli

    r = CliRunner().invoke(cli, ["simulate-run", "--format", "json", flood, "10"])
    assert r.exit_code == 0, r.output[-500:]
    guest = json.loads(r.output)["guest"]
    assert base64.b64decode(guest["stdout_base64"]) == b"y" * (10 << 20)
