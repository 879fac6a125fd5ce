#!/bin/bash
# Durability and the after-close digest of exports:
# - fsync=on (vdisk convert) and an fsync(2) on an export file (the mount)
#   fdatasync the output before it is renamed into place; without them
#   nothing is synced (strace of the process that writes);
# - a bad fsync= value is refused by name;
# - the status digest of a head-patching format is computed after close,
#   and unmounting while it runs cancels it instead of waiting for it.
. "$VD_TEST_LIB"
need_fuse
need strace qemu-img

SRC=$T/src.raw
head -c $((6 << 20)) /dev/urandom > "$SRC"
OUT=$T/out
mkdir -p "$OUT"

# sync_order TRACE NAME: "sync-then-rename", "rename-only" or "none", from an
# strace of fdatasync and rename calls (the rename names NAME).
sync_order() {
    awk -v name="$2" '
        /fdatasync\(/ && $0 !~ /= -1/ { synced = 1 }
        /rename/ && index($0, name "\"") { print (synced ? "sync-then-rename" : "rename-only"); found = 1; exit }
        END { if (!found) print "none" }' "$1"
}

# LeakSanitizer cannot run under ptrace: the ASan build's strace'd runs
# skip only the leak check (the suite's other runs do it).
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"

# vdisk convert, default and fsync=on.
strace -f -qq -e trace=fdatasync,rename,renameat,renameat2 -o "$T/c1.trace" \
    "$VDISK" convert -q "$SRC" "$OUT/c1.vhd" || fail "convert"
assert_eq "$(sync_order "$T/c1.trace" c1.vhd)" "rename-only" "convert syncs by default"
strace -f -qq -e trace=fdatasync,rename,renameat,renameat2 -o "$T/c2.trace" \
    "$VDISK" convert -q -o fsync=on "$SRC" "$OUT/c2.vhd" || fail "convert -o fsync=on"
assert_eq "$(sync_order "$T/c2.trace" c2.vhd)" "sync-then-rename" "convert -o fsync=on"
assert_eq "$(qemu_raw_sha "$OUT/c2.vhd" vpc)" "$(sha "$SRC")" "c2.vhd content"
out=$("$VDISK" convert -q -o fsync=maybe "$SRC" "$OUT/c3.vhd" 2>&1) && fail "fsync=maybe accepted"
echo "$out" | grep -q "fsync=maybe: expected on or off" || fail "fsync= message: $out"
[ ! -e "$OUT/c3.vhd" ] || fail "c3.vhd written despite the bad option"

# The mount: cp (no sync), then dd conv=fsync (fsync before close).
M=$T/mnt
mkdir -p "$M"
"$VDISKFS" -f -o export="$OUT" "$SRC" "$M" 2>"$T/daemon.log" &
pid=$!
MOUNTS+=("$M")
for i in $(seq 1 100); do mountpoint -q "$M" && break; sleep 0.05; done
mountpoint -q "$M" || fail "vdiskfs did not mount"
strace -f -qq -p "$pid" -e trace=fdatasync,rename,renameat,renameat2 -o "$T/m.trace" &
tracer=$!
sleep 0.5 # attached to every thread
cp "$SRC" "$M/export/p.vhd" || fail "cp"
dd if="$SRC" of="$M/export/s.vhd" bs=1M conv=fsync status=none || fail "dd conv=fsync"
sleep 0.2
kill "$tracer"
wait "$tracer" 2>/dev/null || true
# Each export's own order: p.vhd never synced, s.vhd synced before rename.
assert_eq "$(sync_order <(sed '/p\.vhd/q' "$T/m.trace") p.vhd)" "rename-only" "cp synced p.vhd"
assert_eq "$(sync_order <(sed '0,/p\.vhd/d' "$T/m.trace") s.vhd)" "sync-then-rename" \
    "fsync(2) on export/s.vhd"
status() { python3 -c 'import os,sys; print(os.getxattr(sys.argv[1], "user.vdisk.status").decode())' "$1"; }
assert_eq "$(status "$M/export/s.vhd")" "done $(stat -c %s "$OUT/s.vhd") $(sha "$OUT/s.vhd")" \
    "status of s.vhd"
assert_eq "$(qemu_raw_sha "$OUT/s.vhd" vpc)" "$(sha "$SRC")" "s.vhd content"

# A 64 GiB fixed VHD (sparse): its digest, computed after close, would take
# many seconds; the unmount right after cp must cancel it, not wait.
BIG=$T/big.raw
truncate -s 64G "$BIG"
printf 'edge' | dd of="$BIG" bs=1 seek=$((64 << 30 - 4)) conv=notrunc status=none
fusermount3 -u "$M"
wait "$pid" || fail "vdiskfs exited with an error: $(cat "$T/daemon.log")"
"$VDISKFS" -f -o export="$OUT",vhd_type=fixed "$SRC" "$M" 2>"$T/daemon.log" &
pid=$!
for i in $(seq 1 100); do mountpoint -q "$M" && break; sleep 0.05; done
cp --sparse=always "$BIG" "$M/export/big.vhd" || fail "cp big.vhd"
[ -f "$OUT/big.vhd" ] || fail "big.vhd not committed"
# While the digest runs, other attributes and listings answer at once
# (ls -l asks for ACLs): only the status waits for the digest.
timeout 10 ls -l "$M/export/" >/dev/null || fail "ls -l export/ blocked by the digest"
timeout 10 python3 - "$M/export/big.vhd" <<'PY' || fail "another xattr blocked by the digest"
import errno, os, sys
try:
    os.getxattr(sys.argv[1], "user.other")
    sys.exit(1)
except OSError as e:
    sys.exit(0 if e.errno == errno.ENODATA else 1)
PY
fusermount3 -u "$M"
# Functional bound, not a speed check: hashing 64 GiB takes far longer.
for i in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && fail "vdiskfs still running 20 s after unmount (digest not cancelled)"
wait "$pid" || fail "vdiskfs exited with an error: $(cat "$T/daemon.log")"
assert_eq "$(stat -c %s "$OUT/big.vhd")" $(((64 << 30) + 512)) "big.vhd size"
echo "fsync is opt-in and honoured; the digest is cancelled at unmount"
