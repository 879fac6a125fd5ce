#!/bin/bash
# Who finishes an export (docs/export.md, "When the image is finished"):
# - a writer killed by a signal (cp from /dev/urandom and kill -9, dd and
#   SIGTERM, a writer killed while it only holds the file, a child that
#   inherited it killed after its parent closed) ends as "error: ... killed
#   by signal ...", with nothing at DEST, not even a temporary file;
# - a second O_TRUNC open (cp, open(2)) of a name being written gets
#   EBUSY, so does dd's truncate from a second descriptor, and the first
#   export completes intact (qemu-img reads it back);
# - closing one of several descriptors does not finish it: bash's dups
#   (printf >&3 twice), children writing through inherited copies, a parent
#   that closes before its child writes;
# - a write after the finish, through a descriptor the mount cannot see (a
#   bind mount of export/), fails with EIO, withdraws DEST/NAME and says so;
# - outputs take the creator's mode less its umask; names of 241..255
#   bytes work.
. "$VD_TEST_LIB"
need_fuse
need qemu-img python3

OUT=$T/out
mkdir -p "$OUT"
M=$T/mnt
# A small window, so that the output grows while a writer is still busy.
vmount "$M" -o export="$OUT",reorder_window=1M
X=$M/export
status() { python3 -c 'import os,sys; print(os.getxattr(sys.argv[1], "user.vdisk.status").decode())' "$1"; }
# wait_output NAME BYTES: until the export has produced BYTES of output.
wait_output() {
    local i st
    for i in $(seq 1 200); do
        st=$(status "$X/$1" 2>/dev/null || true)
        case $st in "writing "*) [ "${st#writing }" -ge "$2" ] && return 0 ;; esac
        sleep 0.05
    done
    fail "$1: no output after 10 s (status: $st)"
}
dest_empty() { [ -z "$(ls -A "$OUT")" ] || fail "$1: left in DEST: $(ls -A "$OUT")"; }
killed_msg() { # NAME PID COMM SIGNAL
    echo "error: export: $OUT/$1: not committed: process $2 ($3) was killed by $4 while it had export/$1 open for writing; write the image again"
}

SRC=$T/src.raw
head -c $((24 << 20)) /dev/urandom >"$SRC"
SRC2=$T/src2.raw
head -c $((24 << 20)) /dev/urandom >"$SRC2"

# 1. Killed writers. cp never ends by itself: its source is /dev/urandom.
cp /dev/urandom "$X/vm.vhd" &
cpid=$!
wait_output vm.vhd $((8 << 20))
kill -9 "$cpid"
wait "$cpid" 2>/dev/null || true
assert_eq "$(status "$X/vm.vhd")" "$(killed_msg vm.vhd "$cpid" cp "signal 9 (SIGKILL)")" "kill -9 of cp"
dest_empty "kill -9 of cp"

dd if=/dev/urandom of="$X/t.vhdx" bs=1M status=none &
dpid=$!
wait_output t.vhdx $((4 << 20))
kill -TERM "$dpid"
wait "$dpid" 2>/dev/null || true
assert_eq "$(status "$X/t.vhdx")" "$(killed_msg t.vhdx "$dpid" dd "signal 15 (SIGTERM)")" "SIGTERM of dd"
dest_empty "SIGTERM of dd"

# A writer killed between writes, and a child killed holding an inherited
# copy after its parent closed (nothing tells whether it meant to write).
python3 - "$X/idle.vmdk" "$SRC" "$T/idle.pid" <<'PY' &
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
os.write(fd, open(sys.argv[2], "rb").read(4 << 20))
open(sys.argv[3], "w").write(str(os.getpid()))
time.sleep(30)
PY
ppid=$!
for i in $(seq 1 100); do [ -s "$T/idle.pid" ] && break; sleep 0.05; done
kill -9 "$ppid"
wait "$ppid" 2>/dev/null || true
assert_eq "$(status "$X/idle.vmdk")" "$(killed_msg idle.vmdk "$ppid" python3 "signal 9 (SIGKILL)")" \
    "kill -9 of an idle writer"
python3 - "$X/inh.raw" "$T/inh.pid" <<'PY'
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
os.write(fd, b"A" * 4096)
pid = os.fork()
if pid == 0:
    time.sleep(30)
    os._exit(0)
open(sys.argv[2], "w").write(str(pid))
os.close(fd)  # the child still holds it: not finished
PY
cpid=$(cat "$T/inh.pid")
assert_eq "$(status "$X/inh.raw")" "writing 0" "parent closed, child holds inh.raw"
kill -9 "$cpid"
for i in $(seq 1 100); do kill -0 "$cpid" 2>/dev/null || break; sleep 0.05; done
assert_eq "$(status "$X/inh.raw")" "$(killed_msg inh.raw "$cpid" python3 "signal 9 (SIGKILL)")" \
    "kill -9 of a child holding an inherited descriptor"
dest_empty "killed writers"
echo "ok: killed writers commit nothing"

# 2. One writer at a time. The first writer pauses half-way.
python3 - "$X/x.vhd" "$SRC" "$T/x.go" <<'PY' &
import os, sys, time
data = open(sys.argv[2], "rb").read()
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
os.write(fd, data[: len(data) // 2])
open(sys.argv[3] + ".half", "w").close()
for _ in range(600):  # at most 30 s, so a failed test does not hang
    if os.path.exists(sys.argv[3]):
        break
    time.sleep(0.05)
os.write(fd, data[len(data) // 2 :])
os.close(fd)
PY
wpid=$!
for i in $(seq 1 200); do [ -e "$T/x.go.half" ] && break; sleep 0.05; done
if out=$(cp "$SRC2" "$X/x.vhd" 2>&1); then fail "a second cp into x.vhd succeeded"; fi
case $out in *"Device or resource busy"*) ;; *) fail "second cp: $out" ;; esac
python3 - "$X/x.vhd" <<'PY' || fail "O_TRUNC open of a name being written"
import errno, os, sys
try:
    os.open(sys.argv[1], os.O_WRONLY | os.O_TRUNC)
    sys.exit("opened")
except OSError as e:
    assert e.errno == errno.EBUSY, e
PY
# dd without conv=notrunc opens without O_TRUNC, then truncates: refused.
if out=$(dd if="$SRC2" of="$X/x.vhd" bs=1M count=1 status=none 2>&1); then
    fail "dd over x.vhd succeeded"
fi
case $out in *"Device or resource busy"*) ;; *) fail "dd over x.vhd: $out" ;; esac
touch "$T/x.go"
wait "$wpid" || fail "the first writer of x.vhd failed"
assert_eq "$(qemu_raw_sha "$OUT/x.vhd" vpc)" "$(sha "$SRC")" "x.vhd after refused second writers"
assert_eq "$(status "$X/x.vhd")" "done $(stat -c %s "$OUT/x.vhd") $(sha "$OUT/x.vhd")" "x.vhd status"
echo "ok: a second writer gets EBUSY"

# 3. Several descriptors: the last close finishes.
exec 3>"$X/d.raw"
printf AAAA >&3 || fail "first printf into d.raw" # bash dups fd 3 onto fd 1, then closes the dup
printf BBBB >&3 || fail "second printf into d.raw"
exec 3>&-
assert_eq "$(cat "$OUT/d.raw")" AAAABBBB "bash dups"
assert_eq "$(status "$X/d.raw")" "done 8 $(sha "$OUT/d.raw")" "d.raw status"

exec 4>"$X/c.raw"
printf AAAA >&4
(printf BBBB >&4)           # a forked child
sh -c 'printf CCCC >&4'     # an exec'd child
sh -c 'printf DDDD' >&4 &   # one still running when the parent closes
exec 4>&-
wait
assert_eq "$(cat "$OUT/c.raw")" AAAABBBBCCCCDDDD "children writing through inherited copies"

python3 - "$X/p.raw" <<'PY' || fail "parent closing before its child writes"
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
os.write(fd, b"AAAA")
pid = os.fork()
if pid == 0:
    time.sleep(0.5)
    os.write(fd, b"BBBB")
    os._exit(0)
os.close(fd)
_, st = os.waitpid(pid, 0)
assert st == 0, st
PY
assert_eq "$(cat "$OUT/p.raw")" AAAABBBB "parent closed first"
echo "ok: the last descriptor finishes"

# 4. A descriptor the mount cannot see: opened through a bind mount of
# export/, whose path differs. bash's close of its fd-1 dup finishes p.raw
# after 4 bytes; the next write withdraws it.
mkdir -p "$T/alias"
if mount --bind "$X" "$T/alias" 2>/dev/null; then
    MOUNTS=("$T/alias" "${MOUNTS[@]}")
    exec 5>"$T/alias/late.raw"
    printf AAAA >&5
    assert_eq "$(cat "$OUT/late.raw")" AAAA "late.raw finished after the first printf"
    if printf BBBB >&5 2>/dev/null; then fail "a write after the finish succeeded"; fi
    exec 5>&- || true # EIO: the export failed
    [ ! -e "$OUT/late.raw" ] || fail "late.raw not withdrawn"
    case $(status "$X/late.raw") in
    "error: export: $OUT/late.raw: withdrawn: 4 bytes came at offset 4 after the last close the mount could see had finished it"*) ;;
    *) fail "late.raw status: $(status "$X/late.raw")" ;;
    esac
    umount "$T/alias"
    echo "ok: a write after the finish withdraws the output"
else
    echo "note: cannot bind-mount here; skipped the write-after-finish case"
fi

# 5. Mode: what the creator asked for, less its umask.
(umask 077 && printf x >"$X/u1.raw")
(umask 002 && printf x >"$X/u2.raw")
chmod 0640 "$SRC" && (umask 022 && cp "$SRC" "$X/u3.raw")
assert_eq "$(stat -c %a "$OUT/u1.raw") $(stat -c %a "$OUT/u2.raw") $(stat -c %a "$OUT/u3.raw")" \
    "600 664 640" "output modes under umask 077, 002, and cp of a 0640 file"

# 6. Names of 241..255 bytes (the temporary name used to add 14).
for len in 241 247 255; do
    name=$(printf 'n%.0s' $(seq 1 $((len - 4)))).vhd
    cp "$SRC" "$X/$name" || fail "cp to a $len-byte name"
    assert_eq "$(qemu_raw_sha "$OUT/$name" vpc)" "$(sha "$SRC")" "$len-byte name"
done
ls -A "$OUT" | grep -q '^\.' && fail "temporary files left in DEST: $(ls -A "$OUT" | grep '^\.')"
vumount "$M"
echo "export/ writers behave"
