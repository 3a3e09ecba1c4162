#!/usr/bin/env bash
# scripts/setup.sh - make this machine ready to run and test elfvm.
#
# Called by `make run`, `make test` and `make bench`; safe to run again and
# quick when nothing changed.  Works on a fresh Debian machine that has only
# python3, gcc and make:
#
#   1. Python env: installs into $VIRTUAL_ENV if one is active, otherwise
#      creates .venv (python3 -m venv; as root, apt-get installs python3-venv
#      when venv/ensurepip is missing).  `pip install -e '.[test]'` runs only
#      when pyproject.toml changed since the last install (stamp file in the
#      env) or the install is missing/broken.
#   2. gcc -m32: checked by building a tiny program.  If that fails, as root
#      apt-get installs gcc-multilib (it also brings libc6-i386, i.e.
#      /lib/ld-linux.so.2, which the dynamic fixtures need to run); as
#      another user it says what to install and uses the committed binaries.
#   3. Fixtures: rebuilt only when fixtures/src or fixtures/Makefile differ
#      from what fixtures/bin was built from (fixtures/bin/.sources.sha256),
#      so the committed binaries are not rewritten needlessly.
#   4. The qemu oracle: as root, apt-get installs qemu-system-x86, and
#      scripts/fetch-kernels.sh puts Debian's kernels in ~/.cache/elfvm
#      (ELFVM_NO_QEMU=1 / ELFVM_NO_FETCH=1 skip either).
#
# Environment: PYTHON (interpreter used to create .venv, default python3),
# VIRTUAL_ENV (install there instead of .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

say()  { printf 'setup: %s\n' "$*"; }
die()  { printf 'setup: error: %s\n' "$*" >&2; exit 1; }
is_root() { [ "$(id -u)" = 0 ]; }

LOG=$(mktemp "${TMPDIR:-/tmp}/elfvm-setup.XXXXXX")
TMP=$(mktemp -d "${TMPDIR:-/tmp}/elfvm-setup.XXXXXX")
trap 'rm -rf "$LOG" "$TMP"' EXIT

# Run a command with its output in $LOG; show the tail only if it fails.
quiet() {
    if ! "$@" >"$LOG" 2>&1 </dev/null; then
        tail -n 30 "$LOG" >&2
        die "failed: $*"
    fi
}

APT_UPDATED=
apt_install() {
    if [ -z "$APT_UPDATED" ]; then
        say "apt-get update"
        quiet apt-get update
        APT_UPDATED=1
    fi
    say "apt-get install -y $*"
    quiet env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
}

# ---------------------------------------------------------------- 1. Python
PYTHON=${PYTHON:-python3}
if [ -n "${VIRTUAL_ENV:-}" ]; then
    ENV_DIR=$VIRTUAL_ENV
    [ -x "$ENV_DIR/bin/python" ] || die "VIRTUAL_ENV=$ENV_DIR has no bin/python"
else
    ENV_DIR=$ROOT/.venv
    if ! "$ENV_DIR/bin/python" -c '' >/dev/null 2>&1; then
        command -v "$PYTHON" >/dev/null \
            || die "$PYTHON not found; install it: sudo apt-get install python3 python3-venv"
        if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
            if is_root; then
                apt_install python3-venv
            else
                die "'$PYTHON -m venv' needs ensurepip; install it: sudo apt-get install python3-venv"
            fi
        fi
        say "creating .venv"
        rm -rf "$ENV_DIR"
        quiet "$PYTHON" -m venv "$ENV_DIR"
    fi
fi
PY=$ENV_DIR/bin/python

STAMP=$ENV_DIR/.elfvm-setup
WANT="$ROOT $(cat pyproject.toml | sha256sum | cut -d' ' -f1)"
installed_ok() {
    [ "$(cat "$STAMP" 2>/dev/null)" = "$WANT" ] || return 1
    [ -x "$ENV_DIR/bin/elfvm" ] || return 1
    # -I: do not pick elfvm up from the current directory
    (cd / && "$PY" -I -c '
import importlib.util as u, sys
root = sys.argv[1]
spec = u.find_spec("elfvm")
ok = spec is not None and (spec.origin or "").startswith(root + "/")
ok = ok and all(u.find_spec(m) for m in ("pytest", "hypothesis", "elftools"))
sys.exit(0 if ok else 1)' "$ROOT") >/dev/null 2>&1
}
if ! installed_ok; then
    say "pip install -e '.[test]' into ${ENV_DIR/#$ROOT\//}"
    rm -f "$STAMP"
    # editable_mode=compat: a plain .pth path entry, not an import-hook finder (start-up time)
    quiet "$PY" -m pip install --disable-pip-version-check -q --config-settings editable_mode=compat -e '.[test]'
    echo "$WANT" >"$STAMP"
fi
# Bytecode for the checkout (an editable install does not compile it, and with
# PYTHONDONTWRITEBYTECODE set every start would recompile elfvm).
"$PY" -m compileall -q elfvm >/dev/null 2>&1 || true

# ---------------------------------------------------------------- 2. gcc -m32
printf 'int main(void) { return 0; }\n' >"$TMP/t.c"
m32_ok() {
    command -v gcc >/dev/null 2>&1 \
        && gcc -m32 "$TMP/t.c" -o "$TMP/t" >/dev/null 2>&1 \
        && [ -e /lib/ld-linux.so.2 ]
}
HAVE_M32=1
if ! m32_ok; then
    if is_root; then
        say "gcc -m32 cannot build 32-bit programs; installing gcc-multilib"
        apt_install gcc-multilib
        m32_ok || { HAVE_M32=; say "warning: gcc -m32 still fails after installing gcc-multilib"; }
    else
        HAVE_M32=
        say "gcc -m32 cannot build 32-bit programs on this machine."
        say "  to fix it, install:  sudo apt-get install gcc-multilib"
        say "  (it also provides /lib/ld-linux.so.2, needed to run the dynamic fixtures)"
        say "  meanwhile the committed fixtures in fixtures/bin/ are used."
    fi
fi
if [ -n "$HAVE_M32" ] && ! "$TMP/t" >/dev/null 2>&1; then
    say "note: this kernel cannot run i386 programs (no IA32 emulation); the fixtures cannot be run here"
fi

# ---------------------------------------------------------------- 3. fixtures
if [ -n "$HAVE_M32" ]; then
    if ! make -s --no-print-directory -C fixtures check >/dev/null 2>&1; then
        say "fixtures/src changed: rebuilding fixtures/bin"
        quiet make --no-print-directory fixtures
    fi
elif ! make -s --no-print-directory -C fixtures check >/dev/null 2>&1; then
    say "warning: fixtures/bin is missing binaries or older than fixtures/src, and cannot be rebuilt here"
fi
# ---------------------------------------------------------------- 4. compiled code: the trace engine and the emulator's counter
# (elfvm.sim.jit: a few seconds once per edit of elfvm/sim; every later command loads it in ms)
"$PY" -m elfvm.sim.jit >/dev/null 2>&1 || say "note: the trace engine could not be compiled ahead (it will JIT)"
"$PY" -c "from elfvm.emu.counter import build; raise SystemExit(build() is None)" >/dev/null 2>&1 \
    || say "note: the emulator's instruction counter could not be compiled (no C compiler): it falls back to numba"
"$PY" -c "from elfvm.emu.exactrefs import build; raise SystemExit(build() is None)" \
    >/dev/null 2>&1 || say "note: --exact-tlb's native hooks could not be compiled (no C compiler): Python hooks, slower"
# ---------------------------------------------------------------- 5. the qemu oracle
# tests/test_oracle_qemu.py boots other kernel versions under qemu (TCG, no KVM needed):
# qemu-system-x86 from Debian, and the kernels scripts/fetch-kernels.sh keeps in ~/.cache/elfvm.
# Neither is needed to use elfvm; without them those tests are skipped with the reason.
HAVE_QEMU=
if command -v qemu-system-x86_64 >/dev/null 2>&1 && command -v qemu-system-i386 >/dev/null 2>&1; then
    HAVE_QEMU=1
elif is_root && [ "${ELFVM_NO_QEMU:-}" != 1 ]; then
    if (apt_install qemu-system-x86) 2>/dev/null; then HAVE_QEMU=1
    else say "warning: could not install qemu-system-x86; the qemu oracle tests will be skipped"; fi
fi
if [ -n "$HAVE_QEMU" ] && [ "${ELFVM_NO_FETCH:-}" != 1 ]; then
    bash scripts/fetch-kernels.sh >/dev/null 2>&1 \
        || say "warning: some kernels could not be fetched (scripts/fetch-kernels.sh); their tests are skipped"
fi
say "ok (python env: ${ENV_DIR/#$ROOT\//}; gcc -m32: $([ -n "$HAVE_M32" ] && echo yes || echo no); qemu: $([ -n "$HAVE_QEMU" ] && echo yes || echo no))"
