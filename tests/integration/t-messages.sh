#!/usr/bin/env bash
# Issue 14: every refusal of vdiskfs reaches the user with the file, what is
# wrong and what to do, in exact words:
#   - -o names that are not ours nor FUSE's: refused before FUSE, with the
#     nearest name; format= lists the formats;
#   - a second mount on a live vdiskfs mount point, and a mount point whose
#     daemon was killed (Transport endpoint is not connected);
#   - a source taken as raw only by fallback whose size is not whole sectors
#     warns, and info.json says how each format was chosen;
#   - a mount that cannot start (a missing source, export= to no directory)
#     says why on stderr and in -o log=FILE;
#   - export/ refusals go to stderr with -f and to -o log=FILE (a relative
#     name, resolved at mount) in the background; an OVA of several disks
#     to an S3 prefix is refused at create (it used to fail after the data
#     came), while one of one disk is written;
#   - user.vdisk.progress: bytes written, of how many once sized, the rate,
#     and the note of a VHD whose size was rounded up;
#   - vdisk fixup on a view whose ext4 journal needs recovery, and on a
#     folder that is not a view (an empty one; a mounted root filesystem).
. "$VD_TEST_LIB"
need_fuse
need qemu-img getfattr

# Wait for a mount made by a command run in the background.
wait_mounted() {
    local i
    for i in $(seq 1 100); do
        mountpoint -q "$1" && return 0
        sleep 0.05
    done
    fail "vdiskfs did not mount $1"
}

# expect_fail RC 'MESSAGE' CMD...: CMD exits RC and prints exactly MESSAGE on stderr.
expect_fail() {
    local want_rc=$1 want=$2 rc=0
    shift 2
    "$@" >"$T/out" 2>"$T/err" || rc=$?
    assert_eq "$rc" "$want_rc" "exit status of $*"
    assert_eq "$(cat "$T/err")" "$want" "message of $*"
}

cd "$T"
truncate -s 4M disk.raw
mkdir -p m e

# --- options: ours are parsed before FUSE, with the nearest name
expect_fail 2 "vdiskfs: unknown option -o overlya (did you mean overlay=?); see vdiskfs --help" \
    "$VDISKFS" -o overlya=x.ovl disk.raw m
expect_fail 2 "vdiskfs: unknown option -o alow_other (did you mean allow_other?); see vdiskfs --help" \
    "$VDISKFS" -o alow_other disk.raw m
expect_fail 2 "vdiskfs: unknown option -o frobnicate; see vdiskfs --help" \
    "$VDISKFS" -o ro,frobnicate disk.raw m
expect_fail 2 "vdiskfs: format=vmkd: unknown format (did you mean vmdk?); the formats are vmdk, vhd, vhdx, ova, raw" \
    "$VDISKFS" -o format=vmkd disk.raw m
mountpoint -q m && fail "a refused option still mounted"

# --- a text file is a raw disk only by fallback: warned, and info.json says so
printf 'hello\n' >notes.txt
"$VDISKFS" notes.txt m 2>"$T/err"
MOUNTS+=("$T/m")
assert_eq "$(cat "$T/err")" "vdiskfs: warning: notes.txt: no image format recognised, so it is shown as a raw disk, but its 6 bytes are not a whole number of 512-byte sectors: is it a disk image at all? (-o format=raw silences this)" "fallback warning"
grep -q '"format_chosen": "fallback"' m/notes/info.json || fail "info.json: $(head -5 m/notes/info.json)"

# --- a second mount on the same point is refused, and says how to unmount
expect_fail 1 "vdiskfs: mount point m: a vdiskfs is already mounted there; unmount it first with \`fusermount3 -u m\`" \
    "$VDISKFS" disk.raw m
assert_eq "$(grep -c " $T/m fuse.vdiskfs " /proc/mounts)" 1 "vdiskfs mounts on m"
vumount m
# forced and probed formats
qemu-img convert -f raw -O vpc disk.raw disk.vhd
vmount "$T/m" -o format=raw notes.txt
grep -q '"format_chosen": "forced"' m/notes/info.json || fail "info.json of format=raw"
vumount m
vmount "$T/m" disk.vhd
grep -q '"format_chosen": "probed"' m/disk/info.json || fail "info.json of a VHD"
vumount m

# --- a mount point whose daemon died
"$VDISKFS" disk.raw m
MOUNTS+=("$T/m")
pid=$(pgrep -f -- "vdiskfs disk.raw m\$")
[ -n "$pid" ] || fail "no vdiskfs daemon for m"
kill -9 "$pid"
for i in $(seq 1 100); do [ -d "/proc/$pid" ] || break; sleep 0.05; done
expect_fail 1 "vdiskfs: mount point m: Transport endpoint is not connected: the daemon that served it has died; run \`fusermount3 -u m\` first" \
    "$VDISKFS" disk.raw m
fusermount3 -u m
vmount "$T/m" disk.raw
vumount m

# --- export/ refusals: stderr in the foreground ...
"$VDISKFS" -f -o export=e disk.raw m 2>"$T/fg.err" &
fgpid=$!
MOUNTS+=("$T/m")
wait_mounted m
if cp disk.raw m/export/x.qcow2 2>"$T/cp.err"; then fail "cp to export/x.qcow2 succeeded"; fi
assert_eq "$(cat "$T/cp.err")" "cp: cannot create regular file 'm/export/x.qcow2': Invalid argument" "cp's own message"
fusermount3 -u m
wait "$fgpid" || true
qcow_msg="vdiskfs: export/x.qcow2: refused: unknown format 'qcow2'; the extension picks the format: .vmdk, .vhd, .vhdx, .ova, .raw or .img"
assert_eq "$(grep -F x.qcow2 "$T/fg.err")" "$qcow_msg" "message on stderr with -f"

# ... and the log= file in the background (a relative name, resolved at mount)
vmount "$T/m" -o export=e,log=vd.log disk.raw
if cp disk.raw m/export/x.qcow2 2>/dev/null; then fail "cp to export/x.qcow2 succeeded"; fi
# The status: bytes written of the size given by truncate, then the rate;
# a VHD whose size is not whole MiB says it was rounded up.
exec 3>m/export/z.raw
truncate -s 4M m/export/z.raw
printf abc >&3
case $(getfattr --only-values -n user.vdisk.progress m/export/z.raw) in
    "written 3 of 4194304 bytes (0%), "*" MB/s, output "*" bytes") ;;
    *) fail "progress while writing: $(getfattr --only-values -n user.vdisk.progress m/export/z.raw)" ;;
esac
# A second writer that would truncate it away is refused, with the reason.
if cp disk.raw m/export/z.raw 2>"$T/cp.err"; then fail "cp over an export being written succeeded"; fi
assert_eq "$(cat "$T/cp.err")" "cp: cannot create regular file 'm/export/z.raw': Device or resource busy" "cp's message for a busy export"
exec 3>&-
truncate -s 3000000 m/export/y.vhd
dd if=disk.raw of=m/export/y.vhd bs=1M count=2 conv=notrunc status=none
case $(getfattr --only-values -n user.vdisk.progress m/export/y.vhd) in
    "written 2097152 bytes in "*" s, "*" MB/s, output "*" bytes; note: virtual size 3000000 rounded up to 3145728") ;;
    *) fail "progress when done: $(getfattr --only-values -n user.vdisk.progress m/export/y.vhd)" ;;
esac
assert_eq "$(qemu-img info -f vpc --output=json e/y.vhd | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')" \
    3145728 "the rounded size qemu-img sees"
vumount m
assert_eq "$(sed 's/^[^ ]* vdiskfs\[[0-9]*\]: /vdiskfs: /' vd.log)" "$qcow_msg
vdiskfs: export/z.raw: refused: it is being written by another descriptor; wait for it to be closed, or write under another name" "messages in log=vd.log"

# A mount that cannot start says why on stderr and in log= too (a daemon's
# stderr is often gone by the time someone reads why the mount is missing).
if "$VDISKFS" -o log=start.log missing.vmdk m 2>"$T/start.err"; then
    fusermount3 -u m 2>/dev/null || true
    fail "a mount of a missing source succeeded"
fi
start_msg=$(cat "$T/start.err")
case $start_msg in
    "vdiskfs: "*missing.vmdk*) ;;
    *) fail "stderr of a mount of a missing source: $start_msg" ;;
esac
assert_eq "$(sed 's/^[^ ]* vdiskfs\[[0-9]*\]: /vdiskfs: /' start.log)" "$start_msg" "the start error in log=start.log"
if "$VDISKFS" -o log=start2.log,export=nodir disk.raw m 2>/dev/null; then
    fusermount3 -u m 2>/dev/null || true
    fail "a mount with export= to a missing directory succeeded"
fi
assert_eq "$(sed 's/^[^ ]* vdiskfs\[[0-9]*\]: /vdiskfs: /' start2.log)" \
    "vdiskfs: export=nodir: No such file or directory" "an export= error in log=start2.log"

# --- OVAs to an S3 prefix through the mount. One disk works (its digest is
# taken from the upload); an OVA of several disks (export_vm=) cannot be
# written to S3, and is refused at create instead of after the data came.
. "$(dirname "$VD_TEST_LIB")/../s3/lib-s3.sh"
s3_start
head -c 1M /dev/urandom | dd of=disk.raw conv=notrunc status=none
qemu-img convert -O vmdk -o subformat=streamOptimized disk.raw ova-d1.vmdk
head -c 2M /dev/urandom >disk2.raw
qemu-img convert -O vmdk -o subformat=streamOptimized disk2.raw ova-d2.vmdk
cat >two.ovf <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References>
    <File ovf:href="ova-d1.vmdk" ovf:id="file1" ovf:size="$(stat -c %s ova-d1.vmdk)"/>
    <File ovf:href="ova-d2.vmdk" ovf:id="file2" ovf:size="$(stat -c %s ova-d2.vmdk)"/>
  </References>
  <DiskSection><Info>disks</Info>
    <Disk ovf:capacity="$(stat -c %s disk.raw)" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
    <Disk ovf:capacity="$(stat -c %s disk2.raw)" ovf:diskId="vmdisk2" ovf:fileRef="file2" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <VirtualSystem ovf:id="two"><Info>vm</Info><Name>two</Name></VirtualSystem>
</Envelope>
EOF
tar --format=ustar -cf two.ova two.ovf ova-d1.vmdk ova-d2.vmdk
S3OPTS="endpoint=http://127.0.0.1:$S3P_PORT,path_style"
vmount "$T/m" -o "export=s3://vdtest/fx/,$S3OPTS" disk.raw
cp m/disk/disk.raw m/export/one.ova
vumount m
s3_get fx/one.ova one.ova
mkdir one && tar -xf one.ova -C one
assert_eq "$(qemu_raw_sha "$(ls one/*.vmdk)" vmdk)" "$(sha disk.raw)" "one-disk OVA to S3 through export/"
vmount "$T/m" -o "export=s3://vdtest/fx/,$S3OPTS,export_vm=two.ova,log=s3.log" two.ova
if cp m/two/disk1.raw m/export/web01.ova 2>"$T/cp.err"; then fail "cp of a two-disk OVA to S3 through export/ succeeded"; fi
assert_eq "$(cat "$T/cp.err")" "cp: cannot create regular file 'm/export/web01.ova': Operation not supported" "cp's message for the OVA"
vumount m
assert_eq "$(sed 's/^[^ ]* vdiskfs\[[0-9]*\]: /vdiskfs: /' s3.log)" \
    "vdiskfs: export/web01.ova: refused: an OVA of 2 disks (export_vm=two.ova) cannot be written to S3 (each disk's size is patched into the archive in place); write it to a local file (export=DIR, or \`vdisk convert SOURCE.ova FILE.ova\`) and upload that" \
    "two-disk OVA to S3 message"
assert_eq "$(s3_uploads)" "" "multipart uploads left behind"
assert_eq "$(s3_head fx/web01.ova)" 404 "object of the refused OVA"

# --- the journal-in-use message of vdisk fixup (src/fixup/ext2.c)
need sfdisk mkfs.ext4 debugfs
truncate -s 40M vm.raw
echo 'start=2048, type=83' | sfdisk -q vm.raw
mkfs.ext4 -q -F -E offset=1048576 vm.raw 32M
printf 'UUID=0 / ext4 defaults 0 1\n' >fstab
printf 'mkdir /etc\nwrite fstab /etc/fstab\n' >cmds
debugfs -w -f cmds "vm.raw?offset=1048576" >/dev/null 2>&1
debugfs -w -R "feature needs_recovery" "vm.raw?offset=1048576" >/dev/null 2>&1 || fail "debugfs could not set needs_recovery"
vmount "$T/busy" -o rw "$T/vm.raw"
expect_fail 1 "vdisk: fixup: $T/busy/vm/disk-p1.raw: its journal holds changes not yet written: the filesystem is mounted elsewhere (a running guest, or a host mount of this view), or the guest was not shut down cleanly. Shut the guest down or unmount it; if it is in use nowhere, run e2fsck on the view file first" \
    "$VDISK" fixup "$T/busy/vm"
vumount "$T/busy"

# --- vdisk fixup on a folder that is not a view says which form fits it
mkdir -p "$T/notview" "$T/rootfs/etc"
cp fstab "$T/rootfs/etc/fstab"
expect_fail 1 "vdisk: fixup: $T/notview: not a vdiskfs view (no disk.raw or disk1.raw in it)
vdisk: give a view (MNT/name of a vdiskfs -o rw SOURCE MNT mount), or a guest's root filesystem with --root DIR --disk SOURCE" \
    "$VDISK" fixup "$T/notview"
expect_fail 1 "vdisk: fixup: $T/rootfs: not a vdiskfs view (no disk.raw or disk1.raw in it)
vdisk: $T/rootfs holds etc/fstab: for a guest's root filesystem mounted there, run vdisk fixup --root $T/rootfs --disk SOURCE (the guest's disk images, first is sda)" \
    "$VDISK" fixup "$T/rootfs"
echo PASS
