#!/usr/bin/env bash
# scripts/fetch-kernels.sh - get the Debian kernels the qemu oracle boots (tests/test_oracle_qemu.py).
#
# Debian's linux-image packages carry no vDSO image (only the -dbg packages do); the oracle
# dumps the vDSO of each booted kernel from its own [vdso] mapping instead.
#
# Uses apt itself (apt-get download) with a private configuration under the cache, so the
# machine's own sources and package state are not touched: Debian 12 (bookworm) and
# bookworm-backports, for amd64 and i386 (the last Debian with i386 kernels), and Debian 13's
# trixie-backports for newer amd64 kernels.  Each package is unpacked (dpkg -x) and only what the
# oracle needs is kept: the kernel image (vmlinuz), its config and its release name.
#
#   scripts/fetch-kernels.sh            fetch every kernel in KERNELS below (already fetched: skipped)
#   ELFVM_CACHE=/some/dir scripts/...   cache elsewhere (default ~/.cache/elfvm)
#
# Exit status 0 when every kernel is there; 1 when some could not be had (the list says which).
set -uo pipefail
CACHE=${ELFVM_CACHE:-$HOME/.cache/elfvm}
APTDIR=$CACHE/apt
KDIR=$CACHE/kernels

# name  package:arch  (the name is the directory under $KDIR the oracle looks for;
# Debian 7.x kernels ship the image in linux-binary-*, linux-image-* is a meta package there)
KERNELS="
6.1.176-686        linux-image-6.1.0-50-686:i386
6.1.176-686-pae    linux-image-6.1.0-50-686-pae:i386
6.5.10-686-pae     linux-image-6.5.0-0.deb12.4-686-pae:i386
6.1.176-amd64      linux-image-6.1.0-50-amd64:amd64
6.12.95-amd64      linux-image-6.12.95+deb12-amd64-unsigned:amd64
6.16.12-amd64      linux-image-6.16.12+deb13-amd64:amd64
6.18.15-amd64      linux-image-6.18.15+deb13-amd64:amd64
6.19.14-amd64      linux-binary-6.19.14+deb13-amd64:amd64
7.0.13-amd64       linux-binary-7.0.13+deb13-amd64:amd64
7.1.13-amd64       linux-binary-7.1.13+deb13-amd64:amd64
7.2.12-amd64       linux-binary-7.2.12+deb13-amd64:amd64
7.3.4-amd64        linux-binary-7.3.4+deb13-amd64:amd64
"

mkdir -p "$APTDIR"/{lists/partial,cache/archives/partial,etc/preferences.d} "$KDIR"
cat >"$APTDIR/etc/sources.list" <<EOF
deb [arch=amd64,i386 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main
deb [arch=amd64,i386 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-backports main
deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie-backports main
EOF
APT=(-o "Dir::Etc::SourceList=$APTDIR/etc/sources.list" -o Dir::Etc::SourceParts=/dev/null
     -o "Dir::State::Lists=$APTDIR/lists" -o "Dir::Cache=$APTDIR/cache"
     -o "Dir::Etc::Preferences=$APTDIR/etc/pref" -o "Dir::Etc::PreferencesParts=$APTDIR/etc/preferences.d"
     -o APT::Architectures::=amd64 -o APT::Architectures::=i386 -o Debug::NoLocking=1)

need_update=1
missing=0
while read -r name pkg; do
    [ -n "$name" ] || continue
    if [ -f "$KDIR/$name/vmlinuz" ]; then continue; fi
    if [ $need_update = 1 ]; then
        apt-get "${APT[@]}" -q update >"$APTDIR/update.log" 2>&1 || true
        need_update=0
    fi
    tmp=$(mktemp -d "$CACHE/fetch.XXXXXX")
    if ! (cd "$tmp" && apt-get "${APT[@]}" -q download "$pkg" >"$tmp/log" 2>&1); then
        echo "fetch-kernels: $name: cannot download $pkg: $(tail -n1 "$tmp/log")" >&2
        rm -rf "$tmp"; missing=1; continue
    fi
    deb=$(ls "$tmp"/*.deb)
    mkdir -p "$tmp/x" "$KDIR/$name"
    dpkg -x "$deb" "$tmp/x"
    # /boot/vmlinuz-VERSION, or (Debian's 7.x linux-binary-* packages) usr/lib/modules/VERSION/vmlinuz
    img=$(find "$tmp/x" -name 'vmlinuz*' -type f | head -n1)
    if [ -z "$img" ]; then
        echo "fetch-kernels: $name: $pkg holds no vmlinuz" >&2
        rm -rf "$tmp" "$KDIR/$name"; missing=1; continue
    fi
    cp "$img" "$KDIR/$name/vmlinuz"
    cp "$tmp"/x/boot/config-* "$KDIR/$name/config" 2>/dev/null || true
    basename "$deb" >"$KDIR/$name/package"
    ls "$tmp"/x/lib/modules/ "$tmp"/x/usr/lib/modules/ 2>/dev/null | grep -v : | grep . >"$KDIR/$name/release"
    rm -rf "$tmp"
    echo "fetch-kernels: $name from $(cat "$KDIR/$name/package")"
done <<<"$KERNELS"
exit $missing
