#!/usr/bin/env bash
# Issue 14: a vdiskfs in the background sends its messages to syslog when
# there is one (/dev/log), so `cp x export/x.qcow2`'s bare "Invalid
# argument" has its reason somewhere. This machine has no syslog daemon:
# the test runs in a private mount namespace with a /dev of its own, where
# a small listener is /dev/log, and checks the exact line it receives.
. "$VD_TEST_LIB"
need_fuse
need unshare python3
[ "$(id -u)" -eq 0 ] || skip "a private /dev needs root"

cd "$T"
truncate -s 4M disk.raw
mkdir -p m e hostdev

cat >listen.py <<'EOF'
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/dev/log")
open(sys.argv[2], "w").close()  # ready
with open(sys.argv[1], "ab", buffering=0) as out:
    while True:
        out.write(s.recv(65536) + b"\n")
EOF

cat >inner.sh <<'EOF'
set -euo pipefail
mount --bind /dev hostdev
mount -t tmpfs -o mode=0755 vdtest-dev /dev
for n in null zero full random urandom fuse; do
    touch "/dev/$n"
    mount --bind "hostdev/$n" "/dev/$n"
done
ln -s /proc/self/fd /dev/fd
python3 listen.py syslog.txt ready &
lpid=$!
for i in $(seq 1 100); do [ -e ready ] && break; sleep 0.05; done
[ -S /dev/log ] || { echo "no /dev/log listener" >&2; exit 1; }
"$VDISKFS" -o export=e disk.raw m
if cp disk.raw m/export/x.qcow2 2>cp.err; then echo "cp to export/x.qcow2 succeeded" >&2; exit 1; fi
umount m
sleep 0.2
kill "$lpid"
EOF

unshare -m --propagation private bash inner.sh || fail "the run in a private namespace failed"
assert_eq "$(cat cp.err)" "cp: cannot create regular file 'm/export/x.qcow2': Invalid argument" "cp's own message"
# <27>: facility daemon (3), severity err (3); then the time, vdiskfs[PID].
got=$(sed -E 's/^<27>[A-Z][a-z]{2} [ 0-9]{2} [0-9:]{8} vdiskfs\[[0-9]+\]: /<27>vdiskfs: /' syslog.txt)
assert_eq "$got" "<27>vdiskfs: export/x.qcow2: refused: unknown format 'qcow2'; the extension picks the format: .vmdk, .vhd, .vhdx, .ova, .raw or .img" "the syslog line"
echo PASS
