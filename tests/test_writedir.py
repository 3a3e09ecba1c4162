"""--write-dir never leads outside itself (issue 10): symlinks, hard links, `..`, absolute
links, FIFOs and races planted in the directory, for every operation elfvm.emu.writedir offers,
and end to end with a guest that writes /etc/passwd and creates /tmp/PWNED_x."""

import errno
import os
import shutil
import threading

import pytest

from conftest import build_static_guest

from elfvm.emu.writedir import WriteDir, components

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture
def planted(tmp_path):
    """wd/ with the attacker's links, and outside/ holding what they point at."""
    out, wd = tmp_path / "outside", tmp_path / "wd"
    out.mkdir()
    wd.mkdir()
    (out / "a").write_text("precious\n")
    (out / "b").write_text("precious too\n")
    (wd / "etc").mkdir()
    os.symlink(out / "a", wd / "etc" / "passwd")            # absolute file link
    os.symlink(out, wd / "tmp")                              # absolute directory link
    os.symlink("../outside", wd / "rel")                     # relative link climbing out
    os.symlink("/", wd / "root")
    os.link(out / "b", wd / "hard")                          # hard link to an outside file
    return wd, out


def outside_unchanged(out):
    assert sorted(os.listdir(out)) == ["a", "b"]
    assert (out / "a").read_text() == "precious\n"
    assert (out / "b").read_text() == "precious too\n"
    assert (out / "a").stat().st_nlink == 1


def test_components_refuse_dotdot():
    assert components("/a/./b//c") == ["a", "b", "c"]
    with pytest.raises(OSError) as e:
        components("/a/../../x")
    assert e.value.errno == errno.EXDEV


def test_write_replaces_a_symlink_never_its_target(planted):
    wd, out = planted
    WriteDir(str(wd)).write_file("/etc/passwd", b"guest\n")
    assert not os.path.islink(wd / "etc" / "passwd")
    assert (wd / "etc" / "passwd").read_bytes() == b"guest\n"
    outside_unchanged(out)


@pytest.mark.parametrize("path", ["/tmp/PWNED_x", "/rel/PWNED_x", "/root/tmp/PWNED_x",
                                  "/tmp/sub/PWNED_x", "/../outside/PWNED_x", "/etc/passwd/x"])
def test_no_directory_link_is_followed(planted, path):
    wd, out = planted
    with pytest.raises(OSError) as e:
        WriteDir(str(wd)).write_file(path, b"pwned\n")
    assert e.value.errno in (errno.ELOOP, errno.EXDEV, errno.ENOTDIR)
    outside_unchanged(out)


def test_hard_link_is_replaced_not_written_through(planted):
    wd, out = planted
    w = WriteDir(str(wd))
    w.write_file("/hard", b"guest\n")
    assert (wd / "hard").read_bytes() == b"guest\n"
    outside_unchanged(out)
    os.unlink(wd / "hard")
    os.link(out / "b", wd / "hard")
    w.truncate("/hard", 0)
    w.chmod("/hard", 0o600)
    w.utime("/hard", (0, 0))
    assert (wd / "hard").stat().st_size == 0 and (wd / "hard").stat().st_nlink == 1
    assert (out / "b").stat().st_mtime != 0 and (out / "b").stat().st_mode & 0o777 == 0o644
    outside_unchanged(out)


@pytest.mark.parametrize("op", ["chmod", "truncate", "utime", "read"])
def test_metadata_ops_refuse_symlinks(planted, op):
    wd, out = planted
    w = WriteDir(str(wd))
    call = {"chmod": lambda p: w.chmod(p, 0o777), "truncate": lambda p: w.truncate(p, 0),
            "utime": lambda p: w.utime(p, (0, 0)), "read": w.read_file}[op]
    for path in ("/etc/passwd", "/tmp/a", "/rel/a", "/root/etc/hostname"):
        with pytest.raises(OSError):
            call(path)
    outside_unchanged(out)


def test_namespace_ops_stay_inside(planted):
    wd, out = planted
    w = WriteDir(str(wd))
    w.mkdir("/d")
    w.write_file("/d/f", b"x")
    w.rename("/d/f", "/d/g")
    w.link("/d/g", "/d/h")
    w.symlink("/etc/shadow", "/d/s")                       # stored, never followed by us
    assert os.readlink(wd / "d" / "s") == "/etc/shadow"
    w.rename("/etc/passwd", "/d/moved")                    # moves the link itself
    assert os.path.islink(wd / "d" / "moved")
    w.unlink("/d/moved")
    w.unlink("/hard")                                      # removes our name only
    for bad in (lambda: w.mkdir("/tmp/d"), lambda: w.rename("/d/g", "/tmp/g"),
                lambda: w.link("/d/g", "/rel/g"), lambda: w.symlink("x", "/tmp/s"),
                lambda: w.unlink("/tmp/a"), lambda: w.rmdir("/rel/x"),
                lambda: w.rename("/tmp/a", "/d/stolen"), lambda: w.link("/tmp/a", "/d/l")):
        with pytest.raises(OSError):
            bad()
    outside_unchanged(out)
    assert (out / "b").stat().st_nlink == 1


def test_fifo_does_not_hang(planted):
    wd, out = planted
    os.mkfifo(wd / "fifo")
    w = WriteDir(str(wd))
    with pytest.raises(OSError):
        w.truncate("/fifo", 0)
    w.write_file("/fifo", b"data")                         # replaced by a regular file
    assert (wd / "fifo").read_bytes() == b"data"


def test_race_swapping_a_directory_for_a_symlink(tmp_path):
    """A thread flips wd/tmp between a directory and a symlink to outside/ while files are
    saved: whichever it is at each step, nothing is ever created outside."""
    out, wd = tmp_path / "outside", tmp_path / "wd"
    out.mkdir()
    wd.mkdir()
    stop = threading.Event()

    def flip():
        while not stop.is_set():
            try:
                os.symlink(out, wd / "tmp.new")
                os.rename(wd / "tmp.new", wd / "tmp")      # atomically a symlink
                shutil.rmtree(wd / "tmp.dir", ignore_errors=True)
                os.mkdir(wd / "tmp.dir")
                os.rename(wd / "tmp.dir", wd / "tmp")      # fails while tmp is a symlink? no:
            except OSError:                                # rename(dir, symlink) replaces it
                pass

    t = threading.Thread(target=flip)
    t.start()
    w = WriteDir(str(wd))
    try:
        for i in range(2000):
            try:
                w.write_file(f"/tmp/f{i}", b"x")
            except OSError:
                pass
    finally:
        stop.set()
        t.join()
    assert os.listdir(out) == []


# ------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def writefiles(tmp_path_factory):
    out = tmp_path_factory.mktemp("guest")
    return build_static_guest(os.path.join(HERE, "guest_progs", "writefiles.c"), out / "writefiles")


def test_guest_cannot_escape_a_planted_write_dir(planted, writefiles):
    pytest.importorskip("unicorn")
    from elfvm.emu import RunOptions, run_program

    wd, out = planted
    before = open("/etc/passwd", "rb").read()
    r = run_program(RunOptions(writefiles, (), write_dir=str(wd)))
    assert open("/etc/passwd", "rb").read() == before
    assert r.exit_status == 0, r.stdout
    assert b"/etc/passwd: written" in r.stdout and b"/tmp/PWNED_x: written" in r.stdout
    outside_unchanged(out)
    assert (wd / "etc" / "passwd").read_bytes().startswith(b"root::0:0:pwned")
    refused = [n for n in r.warnings if "not saved" in n]
    assert any("/tmp/PWNED_x" in n for n in refused) and any("/tmp/PWNED_y" in n for n in refused)


def test_guest_writes_land_in_a_clean_write_dir(tmp_path, writefiles):
    pytest.importorskip("unicorn")
    from elfvm.emu import RunOptions, run_program

    before = open("/etc/passwd", "rb").read()
    r = run_program(RunOptions(writefiles, (), write_dir=str(tmp_path)))
    assert r.exit_status == 0
    assert (tmp_path / "tmp" / "PWNED_x").read_bytes() == b"pwned\n"
    assert (tmp_path / "tmp" / "PWNED_y").read_bytes() == b"pwned\n"
    assert (tmp_path / "etc" / "passwd").read_bytes() == b"root::0:0:pwned:/:/bin/sh\n"
    assert open("/etc/passwd", "rb").read() == before
    assert not [n for n in r.warnings if "not saved" in n]
