"""Oracle tests: every fixture's predicted layout equals the live kernel's, byte for byte.

Each fixture is run under ptrace (ASLR off) and stopped at its first instruction; /proc/PID/maps,
the auxv on its stack, eip/esp, the mm fields of /proc/PID/stat and the stack bytes (except the
16 AT_RANDOM bytes, which are random on every exec) must equal elfvm's prediction.
"""

import pytest

from conftest import FIXTURE_NAMES, fixture_path
from elfvm.kernel.binfmt_elf import ExecRequest, execve
from elfvm.kernel.profile import make_profile
from elfvm.mm.maps import maps_text

MANY_ARGS = [f"arg{i}-" + "x" * (i % 37) for i in range(300)]
BIG_ENV = [f"VAR{i}=" + "v" * (i * 7 % 301) for i in range(400)] + ["HOME=/root", "LANG=C.UTF-8"]

RUNS = {
    "no-args": (lambda p: [p], []),
    "many-args-big-env": (lambda p: [p, *MANY_ARGS], BIG_ENV),
    "empty-argv": (lambda p: [], ["ONLY=1"]),
}


def compare(live, path, argv, env, *, profile=None, personality_extra=0, rlimit_stack=None):
    rlim = 8 << 20 if rlimit_stack is None else rlimit_stack & ((1 << 64) - 1)
    req = ExecRequest(path, argv, env, profile or make_profile(), rlimit_stack=rlim)
    result = execve(req)
    assert result.verdict.result == "ok", result.verdict
    with live.run_to_entry(path, argv, env, personality_extra=personality_extra,
                           rlimit_stack=rlimit_stack) as lp:
        assert maps_text(result.mm) == lp.maps
        assert [(a.type, a.value) for a in result.auxv] == [tuple(x) for x in lp.auxv]
        assert lp.regs["eip"] == result.eip
        assert lp.regs["esp"] == result.stack.esp
        for field in ("start_code", "end_code", "start_data", "end_data", "start_brk",
                      "start_stack", "arg_start", "arg_end", "env_start", "env_end"):
            assert lp.stat_mm[field] == getattr(result.mm, field), field
        st = result.stack
        real = bytearray(lp.read_mem(st.image_base, len(st.image)))
        mine = bytearray(st.image)
        r = st.random_addr - st.image_base
        real[r:r + 16] = mine[r:r + 16] = bytes(16)
        assert bytes(real) == bytes(mine)
    return result


@pytest.mark.oracle
@pytest.mark.parametrize("run", sorted(RUNS))
@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_fixture_matches_live_kernel(live, needs_interp, name, run):
    path = fixture_path(name)
    argv_of, env = RUNS[run]
    compare(live, path, argv_of(path), env)


@pytest.mark.oracle
@pytest.mark.parametrize("name", ["hello_pie", "hello_static", "hello_staticpie", "bigbss", "tiny"])
@pytest.mark.parametrize("variant", ["3gb", "legacy", "rlimit-100k", "rlimit-1g", "rlimit-unlimited"])
def test_personality_and_rlimit_variants(live, needs_interp, name, variant):
    import resource

    path = fixture_path(name)
    kwargs = {}
    if variant == "3gb":
        kwargs = dict(profile=make_profile(addr_limit_3gb=True), personality_extra=live.ADDR_LIMIT_3GB)
    elif variant == "legacy":
        kwargs = dict(profile=make_profile(legacy=True), personality_extra=live.ADDR_COMPAT_LAYOUT)
    elif variant == "rlimit-100k":
        kwargs = dict(rlimit_stack=100 << 10)
    elif variant == "rlimit-1g":
        kwargs = dict(rlimit_stack=1 << 30)
    else:
        kwargs = dict(rlimit_stack=resource.RLIM_INFINITY)
    if kwargs.get("rlimit_stack") == resource.RLIM_INFINITY:
        # elfvm spells RLIM_INFINITY as the kernel does: ~0UL.
        result = compare(live, path, [path], ["A=1"], rlimit_stack=resource.RLIM_INFINITY)
        assert result.mm.mmap_base == 0x2AAAB000
    else:
        compare(live, path, [path], ["A=1"], **kwargs)
