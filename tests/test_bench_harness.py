"""benchmarks/harness: the benchmarks time this checkout's elfvm, never another installation's."""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

from harness import check_interpreter  # noqa: E402


def test_the_suites_python_runs_this_checkout():
    check_interpreter()                   # the test run's interpreter imports ROOT/elfvm


def test_a_python_that_imports_another_elfvm_is_refused_in_one_line(tmp_path, monkeypatch):
    other = tmp_path / "site" / "elfvm"
    other.mkdir(parents=True)
    (other / "__init__.py").write_text("")
    python = tmp_path / "python"          # an interpreter whose elfvm is another tree's
    python.write_text(f"#!/bin/sh\nPYTHONPATH={tmp_path / 'site'} exec {sys.executable} \"$@\"\n")
    python.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(python))
    with pytest.raises(SystemExit) as e:
        check_interpreter()
    msg = str(e.value)
    assert "\n" not in msg and str(other / "__init__.py") in msg and "make bench" in msg, msg
