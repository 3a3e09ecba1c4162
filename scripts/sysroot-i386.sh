#!/usr/bin/env bash
# scripts/sysroot-i386.sh - a Debian i386 sysroot of real programs for the
# real-programs oracle tests (tests/test_real_programs.py).
#
#   scripts/sysroot-i386.sh [DIR]     (default: ~/.cache/elfvm/sysroot-i386)
#
# Downloads the packages with `apt-get download` (needs the i386 architecture
# in dpkg and a reachable package index) into DIR/../debs and unpacks each
# with `dpkg -x` into DIR.  Nothing is installed on the host.  A second run
# reuses the downloaded .deb files and only unpacks what is missing.
# Prints the sysroot path on success; exit 2 (with the reason on stderr) when
# the packages cannot be fetched, so callers can skip.
set -euo pipefail

ROOT=${1:-${ELFVM_SYSROOT:-$HOME/.cache/elfvm/sysroot-i386}}
DEBS=$(dirname "$ROOT")/debs
PKGS=(
  libc6 libgcc-s1 libcrypt1 libacl1 libattr1 libgmp10 libselinux1
  libpcre2-8-0 libtinfo6 libreadline8 libmpfr6 libsigsegv2 liblzma5
  libmagic1 libmagic-mgc libbz2-1.0 zlib1g
  busybox-static coreutils dash bash grep sed gawk bc make tar xz-utils
  file perl-base findutils
  libssl3 libexpat1 libffi8 python3.11-minimal libpython3.11-minimal libpython3.11-stdlib
)

fail() { echo "sysroot-i386: $*" >&2; exit 2; }

command -v apt-get >/dev/null || fail "apt-get not found (not a Debian host)"
dpkg --print-foreign-architectures | grep -qx i386 \
  || fail "dpkg has no i386 architecture (dpkg --add-architecture i386 && apt-get update)"

# complete when every package is unpacked already: .complete lists what was unpacked (a
# superset when other checkouts with longer lists share the cache). Unpacking again rewrites
# the files in place, under programs that other test runs are executing from the same sysroot.
have=" $(cat "$ROOT/.complete" 2>/dev/null) "
need=()
for p in "${PKGS[@]}"; do
  [[ "$have" == *" $p "* ]] || need+=("$p")
done
if [ -f "$ROOT/.complete" ] && [ ${#need[@]} -eq 0 ]; then
  echo "$ROOT"; exit 0
fi

mkdir -p "$DEBS" "$ROOT"
cd "$DEBS"
missing=()
for p in "${PKGS[@]}"; do
  ls "${p}"_*_i386.deb "${p}"_*_all.deb >/dev/null 2>&1 || missing+=("$p:i386")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get download -q "${missing[@]}" >/dev/null 2>"$DEBS/.apt-error" \
    || fail "apt-get download failed: $(tail -1 "$DEBS/.apt-error")"
fi
for p in "${need[@]}"; do
  for deb in "${p}"_*_i386.deb "${p}"_*_all.deb; do
    [ -f "$deb" ] && dpkg -x "$deb" "$ROOT"
  done
done
mkdir -p "$ROOT/tmp" && chmod 1777 "$ROOT/tmp"   # sort, tac, make need a /tmp
# the memory devices every system has (perl opens /dev/null); the native chroot needs the
# nodes, elfvm answers them itself (elfvm.emu.vfs MEM_DEVICES); creating them needs root
mkdir -p "$ROOT/dev"
if [ "$(id -u)" = 0 ]; then
  for d in null:3 zero:5 full:7 random:8 urandom:9; do
    [ -c "$ROOT/dev/${d%%:*}" ] || mknod -m 666 "$ROOT/dev/${d%%:*}" c 1 "${d##*:}"
  done
fi
# byte-compile the standard library as Debian's py3compile does at install time: without the
# .pyc files the first run of python3.11 compiles and writes them (a different run each time)
if [ -x "$ROOT/usr/bin/python3.11" ] && [ "$(id -u)" = 0 ]; then
  # (exit 1 when a file does not compile, e.g. lib2to3's Python 2 test data: those stay .py)
  chroot "$ROOT" /usr/bin/python3.11 -m compileall -q /usr/lib/python3.11 >/dev/null || true
fi
echo $(printf '%s\n' $have "${PKGS[@]}" | awk '!seen[$0]++') > "$ROOT/.complete"
echo "$ROOT"
