#!/usr/bin/env bash
# With -o allow_other the views are never more open than their sources
# (docs/vdiskfs.1, PERMISSIONS): disk.raw, the partitions, info.json and the
# folder take the source's owner, group and read bits, less what a directory
# above the source keeps a class of users from, and write bits only where
# the view is writable. Another user (nobody, through setpriv) is refused a
# 0600 image in a 0700 directory, a 0644 image in a 0700 directory and a
# 0640 image of a group they are not in, and reads a 0644 image in an open
# directory, and the group's image once given the group.
. "$VD_TEST_LIB"
need_fuse; need setpriv sfdisk
[ "$(id -u)" -eq 0 ] || skip "needs root: makes root-owned sources and reads them as nobody"
id nobody >/dev/null 2>&1 || skip "no user 'nobody' on this machine"
NOBODY=$(id -u nobody)
as_nobody() { setpriv --reuid="$NOBODY" --regid="$NOBODY" --clear-groups "$@"; }
as_group() { # GID CMD...: nobody with one supplementary group
    local gid=$1; shift
    setpriv --reuid="$NOBODY" --regid="$NOBODY" --groups="$gid" "$@"
}
# refused WHAT PATH: nobody's read of PATH fails with EACCES.
refused() {
    local out
    if out=$(as_nobody cat "$2" 2>&1 >/dev/null); then fail "$1: nobody read $2"; fi
    echo "$out" | grep -q "Permission denied" || fail "$1: $2: expected EACCES, got: $out"
}

chmod 0755 "$T" # mktemp -d made it 0700: nobody must reach the mount point
mkimg() { # PATH: an MBR disk with one partition, distinct bytes
    truncate -s 8M "$1"
    printf 'label: dos\n,4M,83\n' | sfdisk -q "$1"
    printf '%s' "$1" | dd of="$1" bs=1 seek=2M conv=notrunc status=none
}
GID=4242 # a group nobody is not in
mkdir -m 0700 "$T/private" && mkimg "$T/private/secret.img" && chmod 0600 "$T/private/secret.img"
mkdir -m 0700 "$T/closed" && mkimg "$T/closed/hidden.img" && chmod 0644 "$T/closed/hidden.img"
mkdir -m 0755 "$T/pub" && mkimg "$T/pub/open.img" && chmod 0644 "$T/pub/open.img"
mkimg "$T/pub/team.img" && chown 0:$GID "$T/pub/team.img" && chmod 0640 "$T/pub/team.img"
mkimg "$T/pub/rw.img" && chmod 0664 "$T/pub/rw.img"
# What the host itself says, so the test checks its own premises.
if as_nobody cat "$T/private/secret.img" >/dev/null 2>&1 ||
    as_nobody cat "$T/closed/hidden.img" >/dev/null 2>&1 ||
    as_nobody cat "$T/pub/team.img" >/dev/null 2>&1; then
    fail "setup: nobody can read the private sources on the host"
fi
as_nobody cat "$T/pub/open.img" >/dev/null || fail "setup: nobody cannot read pub/open.img"

M=$T/mnt
vmount "$M" -o allow_other "$T/private/secret.img" "$T/closed/hidden.img" "$T/pub/open.img" \
    "$T/pub/team.img"
ls "$M/secret" | grep -qx disk-p1.raw || fail "no partition view for secret.img"

# stat of the views: uid gid mode.
assert_eq "$(stat -c '%u %g %a' "$M/secret/disk.raw")" "0 0 400" "secret.img disk.raw"
assert_eq "$(stat -c '%u %g %a' "$M/secret/disk-p1.raw")" "0 0 400" "secret.img partition"
assert_eq "$(stat -c '%u %g %a' "$M/secret/info.json")" "0 0 400" "secret.img info.json"
assert_eq "$(stat -c '%u %g %a' "$M/secret")" "0 0 500" "secret folder"
# 0644 in a 0700 directory: only the owner could reach it.
assert_eq "$(stat -c '%a' "$M/hidden/disk.raw")" "400" "hidden.img (0644 in a 0700 dir)"
assert_eq "$(stat -c '%a' "$M/open/disk.raw")" "444" "open.img"
assert_eq "$(stat -c '%a' "$M/open")" "555" "open folder"
assert_eq "$(stat -c '%u %g %a' "$M/team/disk.raw")" "0 $GID 440" "team.img"

for f in disk.raw disk-p1.raw info.json; do
    refused "0600 image in a 0700 dir" "$M/secret/$f"
    refused "0644 image in a 0700 dir" "$M/hidden/$f"
    refused "0640 image, other group" "$M/team/$f"
done
if as_nobody ls "$M/secret" >/dev/null 2>&1; then fail "nobody listed the secret folder"; fi
# The open image and the group's image read back byte for byte.
cmp "$T/pub/open.img" <(as_nobody cat "$M/open/disk.raw") || fail "nobody's read of open.img"
as_nobody cat "$M/open/info.json" | grep -q open.img || fail "nobody's read of open info.json"
cmp "$T/pub/team.img" <(as_group "$GID" cat "$M/team/disk.raw") || fail "group read of team.img"
vumount "$M"

# -o rw: writes land in the source, so the source's write bits apply.
vmount "$M" -o rw,allow_other "$T/pub/rw.img" "$T/private/secret.img"
assert_eq "$(stat -c '%a' "$M/rw/disk.raw")" "664" "rw.img under -o rw"
assert_eq "$(stat -c '%a' "$M/rw/info.json")" "444" "info.json under -o rw"
assert_eq "$(stat -c '%a' "$M/secret/disk.raw")" "600" "secret.img under -o rw"
if as_nobody dd if=/dev/zero of="$M/rw/disk.raw" bs=512 count=1 conv=notrunc status=none 2>/dev/null; then
    fail "nobody wrote rw.img (0664, not theirs)"
fi
refused "0600 image under -o rw" "$M/secret/disk.raw"
vumount "$M"

# -o overlay: writes go to the mounting user's overlay file.
vmount "$M" -o overlay="$T/ovl",allow_other "$T/pub/open.img" "$T/private/secret.img"
assert_eq "$(stat -c '%u %a' "$M/open/disk.raw")" "0 644" "open.img under overlay"
assert_eq "$(stat -c '%u %a' "$M/secret/disk.raw")" "0 600" "secret.img under overlay"
refused "0600 image under an overlay" "$M/secret/disk.raw"
if as_nobody dd if=/dev/zero of="$M/open/disk.raw" bs=512 count=1 conv=notrunc status=none 2>/dev/null; then
    fail "nobody wrote into root's overlay"
fi
vumount "$M"

# FUSE's own umask= still overrides, for whoever wants everything readable.
vmount "$M" -o allow_other,umask=0222 "$T/private/secret.img"
assert_eq "$(stat -c '%a' "$M/secret/disk.raw")" "555" "-o umask=0222"
cmp "$T/private/secret.img" <(as_nobody cat "$M/secret/disk.raw") || fail "read under umask=0222"
vumount "$M"
echo "PASS"
