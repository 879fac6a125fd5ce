#!/usr/bin/env bash
# The Debian package (debian/, issue 14): `dpkg-buildpackage -us -uc -b` on
# a copy of this source tree builds vdiskfs_*.deb with Debian's build flags,
# lintian reports no error, the package holds exactly what `cmake --install`
# installs (plus /usr/share/doc), its programs hold no path of the build tree, `apt install ./vdiskfs_*.deb` installs it,
# and the installed /usr/bin/vdiskfs and /usr/bin/vdisk pass a smoke test:
# mount a streamOptimized VMDK and compare the disk and its partition with
# qemu-img's reading, `cp` into export/x.vmdk and check the result with
# qemu-img, vdisk info/hash, and the bash completion loaded on demand. The
# package is purged at the end (and on failure).
#
# Installs a system package, so it refuses to run over a vdiskfs package
# that was installed by someone else. Slow tier (VD_SLOW_TESTS=1): 1 min of
# CPU, 2-4 minutes on a shared 2-core machine, most of it the package build
# (which builds no tests).
. "$VD_TEST_LIB"
[ "${VD_SLOW_TESTS:-}" = 1 ] || skip "set VD_SLOW_TESTS=1 (builds and installs the Debian package, 2-4 min)"
need_fuse
need dpkg-buildpackage dh lintian apt-get qemu-img sfdisk mkfs.ext4 debugfs
[ "$(id -u)" -eq 0 ] || skip "installing a package needs root"
if dpkg-query -W -f='${Status}' vdiskfs 2>/dev/null | grep -q 'install ok installed'; then
    skip "a vdiskfs package is already installed; this test would replace and purge it"
fi
SRC_ROOT=$(cd "$(dirname "$VD_TEST_LIB")/../.." && pwd)
[ -f "$SRC_ROOT/debian/control" ] || fail "no debian/control in $SRC_ROOT"

INSTALLED=
purge() {
    [ -n "$INSTALLED" ] || return 0
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 purge -y -qq vdiskfs \
        > "$T/purge.log" 2>&1 || { cat "$T/purge.log" >&2; return 1; }
    INSTALLED=
}
trap 'purge; cleanup' EXIT

# The source as committed plus the working tree's changes (what a developer
# is about to commit), without build trees: the files git knows or would
# add (.gitignore excludes build*/ and obj-*/).
mkdir -p "$T/pkg/src"
if git -C "$SRC_ROOT" rev-parse --git-dir >/dev/null 2>&1; then
    (cd "$SRC_ROOT" && git ls-files -co --exclude-standard -z |
        while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
        tar --null -cf - -T -) | tar -xf - -C "$T/pkg/src"
else
    tar -C "$SRC_ROOT" --exclude='./build*' --exclude='./obj-*' -cf - . | tar -xf - -C "$T/pkg/src"
fi

echo "== dpkg-buildpackage"
start=$(date +%s)
(cd "$T/pkg/src" && DEB_BUILD_OPTIONS="nocheck parallel=$(nproc)" \
    dpkg-buildpackage -us -uc -b) > "$T/build.log" 2>&1 ||
    { tail -40 "$T/build.log" >&2; fail "dpkg-buildpackage failed (log above)"; }
echo "built in $(($(date +%s) - start)) s"
DEB=$(ls "$T"/pkg/vdiskfs_*.deb)
[ -f "$DEB" ] || fail "no vdiskfs_*.deb in $T/pkg: $(ls "$T/pkg")"

# Debian's flags reached the compiler (dh_auto_configure's CMAKE_C_FLAGS):
# every flag dpkg-buildflags gives this machine for hardening=+all (the set
# grows with dpkg's version; -ffile-prefix-map names the build path), and
# CMAKE_BUILD_TYPE=None (no -O3 from Release).
line=$(grep -m1 -- 'vdiskfs\.c\.o -c' "$T/build.log") || fail "no compile line for vdiskfs.c in the build log"
for flag in $(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get CPPFLAGS) \
    $(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get CFLAGS); do
    [[ $flag == -ffile-prefix-map=* ]] && continue
    [[ " $line " == *" $flag "* ]] || fail "vdiskfs.c compiled without $flag (Debian's build flags): $line"
done
[[ " $line " != *" -O3 "* ]] || fail "vdiskfs.c compiled with -O3: CMAKE_BUILD_TYPE is not None"
# No test was built or run.
! grep -q -- 'test_[a-z0-9_]*\.c\.o' "$T/build.log" || fail "the package build compiled the unit tests"
! grep -q 'ctest' "$T/build.log" || fail "the package build ran ctest"
# PIE and bind-now from hardening=+all.
readelf -h "$T/pkg/src/debian/vdiskfs/usr/bin/vdiskfs" | grep -q 'DYN' || fail "vdiskfs is not PIE"
readelf -d "$T/pkg/src/debian/vdiskfs/usr/bin/vdiskfs" | grep -q 'BIND_NOW' || fail "vdiskfs lacks BIND_NOW"

echo "== lintian"
lintian --fail-on error "$T"/pkg/vdiskfs_*.changes > "$T/lintian.log" 2>&1 ||
    { cat "$T/lintian.log" >&2; fail "lintian reports errors (above)"; }
grep -v 'running with root privileges' "$T/lintian.log" || true

echo "== contents"
dpkg-deb -c "$DEB" | awk '{print $6}' | sed 's|^\./|/|; s|/$||' | grep -v '^/usr/share/doc' | sort > "$T/deb.list"
# What `cmake --install` of the same build installs under DESTDIR, man pages
# compressed as dh_compress does: the package must hold all of it, so a
# new install rule (the nbdkit plugin) is packaged without a debian/ change.
obj=$(ls -d "$T"/pkg/src/obj-*/)
DESTDIR=$T/destdir cmake --install "$obj" > "$T/install.log" 2>&1 ||
    { cat "$T/install.log" >&2; fail "cmake --install of the package's build tree failed"; }
(cd "$T/destdir" && find . -mindepth 1 | sed 's|^\.||; s|\(/man/.*\.[0-9]\)$|\1.gz|') |
    grep -v '^/usr/share/doc' | sort > "$T/install.list"
missing=$(comm -13 "$T/deb.list" "$T/install.list")
[ -z "$missing" ] || fail "cmake --install installs files the package lacks: $missing"
for f in /usr/bin/vdiskfs /usr/bin/vdisk /usr/share/man/man1/vdisk.1.gz /usr/share/man/man1/vdiskfs.1.gz \
    /usr/share/bash-completion/completions/vdisk /usr/share/bash-completion/completions/vdiskfs \
    /usr/share/vdisk/aws-vmimport.txt; do
    grep -qx "$f" "$T/deb.list" || fail "$f is not in the package"
done
# Reproducible: no path of the build tree in the programs (debian/rules
# turns VDISK_BUILD_TREE_DATA off; dh strips the debug info).
mkdir -p "$T/debx" && dpkg-deb -x "$DEB" "$T/debx"
for f in usr/bin/vdisk usr/bin/vdiskfs; do
    [[ $(strings "$T/debx/$f") != *"$T/pkg/src"* ]] || fail "/$f holds the build path $T/pkg/src"
done
dpkg-deb -f "$DEB" Depends | grep -q 'libfuse3' || fail "Depends lacks libfuse3 (shlibs): $(dpkg-deb -f "$DEB" Depends)"
dpkg-deb -f "$DEB" Depends | grep -qw 'fuse3' || fail "Depends lacks fuse3 (fusermount3)"

echo "== apt install"
INSTALLED=1
(cd "$T/pkg" && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
    "./$(basename "$DEB")") > "$T/apt.log" 2>&1 || { cat "$T/apt.log" >&2; fail "apt install ./$(basename "$DEB")"; }
dpkg-query -W -f='${Status}' vdiskfs | grep -q 'install ok installed' || fail "vdiskfs is not installed after apt"
/usr/bin/vdisk --version | grep -q '^vdisk ' || fail "/usr/bin/vdisk --version: $(/usr/bin/vdisk --version 2>&1)"
man -w vdiskfs | grep -q '^/usr/share/man/man1/vdiskfs.1.gz$' || fail "man -w vdiskfs: $(man -w vdiskfs 2>&1)"

echo "== smoke test of the installed programs"
VDISKFS=/usr/bin/vdiskfs
VDISK=/usr/bin/vdisk
cd "$T"
# 16 MiB, an MBR partition from 1 MiB with ext4 holding a file, random
# bytes after it: the disk as a streamOptimized VMDK.
truncate -s 16M src.raw
printf 'label: dos\n1MiB,10MiB,83\n' | sfdisk -q src.raw
truncate -s 10M p1.img
mkfs.ext4 -q -F p1.img
echo "hello from the package test" > motd
debugfs -w -R "write motd motd" p1.img > /dev/null 2>&1
dd if=p1.img of=src.raw bs=1M seek=1 conv=notrunc status=none
head -c 3M /dev/urandom | dd of=src.raw bs=1M seek=12 conv=notrunc status=none
qemu-img convert -f raw -O vmdk -o subformat=streamOptimized src.raw web.vmdk
WANT=$(sha src.raw)
assert_eq "$(qemu_raw_sha web.vmdk vmdk)" "$WANT" "qemu-img reading of the test VMDK"

vmount "$T/m" web.vmdk
assert_eq "$(sha "$T/m/web/disk.raw")" "$WANT" "installed vdiskfs: web/disk.raw against qemu-img"
assert_eq "$(sha "$T/m/web/disk-p1.raw")" "$(sha p1.img)" "installed vdiskfs: web/disk-p1.raw"
debugfs -R "cat motd" "$T/m/web/disk-p1.raw" 2>/dev/null | grep -qx "hello from the package test" ||
    fail "the ext4 file inside web/disk-p1.raw"
vumount "$T/m"

mkdir out
vmount "$T/x" -o export="$T/out" src.raw
cp "$T/x/src/disk.raw" "$T/x/export/x.vmdk" || fail "cp into the installed vdiskfs's export/x.vmdk"
vumount "$T/x"
qemu-img check -f vmdk out/x.vmdk > qcheck.log 2>&1 || { cat qcheck.log >&2; fail "qemu-img check out/x.vmdk"; }
assert_eq "$(qemu_raw_sha out/x.vmdk vmdk)" "$WANT" "export/x.vmdk read back by qemu-img"
qemu-img info out/x.vmdk | grep -q 'create type: streamOptimized' || fail "x.vmdk is not streamOptimized"

"$VDISK" info --json web.vmdk > info.json || fail "installed vdisk info"
grep -q '"format": *"vmdk"' info.json || fail "vdisk info --json: $(head -c 300 info.json)"
assert_eq "$("$VDISK" hash --sha256 out/x.vmdk | cut -d' ' -f1)" "$WANT" "installed vdisk hash of x.vmdk"
"$VDISK" convert -q -O vhdx web.vmdk w.vhdx || fail "installed vdisk convert"
assert_eq "$(qemu_raw_sha w.vhdx vhdx)" "$WANT" "vdisk convert to VHDX read by qemu-img"

# README's overlay flow on a single-disk OVA (whose disk is web01/disk.raw,
# not disk1.raw): edit the guest through the mount, then read the edits back
# with vdisk convert --overlay.
"$VDISK" convert -q -O ova web.vmdk web01.ova || fail "installed vdisk convert -O ova"
ova_sha=$(sha web01.ova)
vmount "$T/e" -o overlay="$T/web01.ovl" web01.ova
[ -f "$T/e/web01/disk-p1.raw" ] || fail "single-disk OVA: no web01/disk-p1.raw: $(ls "$T/e/web01")"
echo "edited through the overlay" > motd2
debugfs -w -R "write motd2 motd2" "$T/e/web01/disk-p1.raw" > /dev/null 2>&1 || fail "debugfs -w on web01/disk-p1.raw"
vumount "$T/e"
assert_eq "$(sha web01.ova)" "$ova_sha" "web01.ova written through the overlay"
"$VDISK" convert -q --overlay web01.ovl -O raw web01.ova edited.raw || fail "vdisk convert --overlay"
debugfs -R "cat motd2" "edited.raw?offset=1048576" 2>/dev/null | grep -qx "edited through the overlay" ||
    fail "the overlay's edit is not in vdisk convert --overlay's output"

# The nbdkit plugin, found by nbdkit by its short name (docs/nbd.md).
if command -v nbdkit >/dev/null && command -v nbdcopy >/dev/null; then
    plugdir=$(pkg-config --variable=plugindir nbdkit)
    grep -qx "$plugdir/nbdkit-vdisk-plugin.so" "$T/deb.list" || fail "the nbdkit plugin is not in the package"
    got=$(command nbdkit -r -U - vdisk "$PWD/web01.ova" --run 'nbdcopy "$uri" - | sha256sum' | cut -d' ' -f1)
    assert_eq "$got" "$WANT" "installed plugin: nbdkit vdisk web01.ova"
fi

# bash-completion's loader finds the packaged completion by command name.
if [ -r /usr/share/bash-completion/bash_completion ]; then
    got=$(bash -c '. /usr/share/bash-completion/bash_completion; _completion_loader vdisk; complete -p vdisk')
    assert_eq "$got" "complete -F _vdisk vdisk" "installed completion for vdisk"
fi

echo "== purge"
purge || fail "apt-get purge vdiskfs"
[ ! -e /usr/bin/vdiskfs ] && [ ! -e /usr/bin/vdisk ] || fail "purge left /usr/bin/vdiskfs or vdisk"
[ ! -e /usr/share/vdisk ] || fail "purge left /usr/share/vdisk"
echo "ok"
