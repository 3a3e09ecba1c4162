"""The instruction counter (elfvm.emu.counter): per translated block, compiled C, settled when the
CPU leaves a block early; the same counts as a callback on every instruction (the numba
fallback) wherever no system call is restarted (there the per-instruction hook counted the
rewound `int $0x80` twice)."""

import pytest

pytest.importorskip("unicorn")

from elfvm.emu import counter  # noqa: E402
from elfvm.emu.run import RunOptions, run_program  # noqa: E402
from tests.conftest import fixture_path  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def compiled():
    if counter.build() is None:
        pytest.skip("no C compiler: the block counter cannot be built here")


def both(monkeypatch, opts: RunOptions):
    blocks = run_program(opts)
    with monkeypatch.context() as m:
        m.setattr(counter, "block_counter", lambda uc: None)       # the per-instruction fallback
        per_insn = run_program(opts)
    return blocks, per_insn


@pytest.mark.parametrize("name,args", [("hello_static", ()), ("segv", ()), ("vars", ()),
                                       ("lazy", ()), ("stackgrow", ()), ("mallocs", ())])
def test_block_count_equals_per_instruction_count(monkeypatch, name, args):
    b, i = both(monkeypatch, RunOptions(fixture_path(name), args, clock="fixed"))
    assert b.instructions == i.instructions and b.instructions > 1000
    assert (b.stdout, b.exit_status, b.page_faults, b.faults_by_kind) == \
        (i.stdout, i.exit_status, i.page_faults, i.faults_by_kind)


@pytest.mark.parametrize("limit", [500, 2000, 12345])
def test_max_instructions_stops_at_the_same_count(monkeypatch, limit):
    b, i = both(monkeypatch, RunOptions(fixture_path("hello_static"), max_instructions=limit))
    assert b.stop_reason == i.stop_reason == "max-instructions"
    assert b.instructions == i.instructions


def test_library_is_built_once():
    assert counter.build() == counter.build() == counter.library_path()
