#!/bin/bash
# Issue 9, VHDX: a crafted image gets an error naming the field, never other
# bytes, never a write over its own structure, and it can make us open only
# files beside it (or in a directory the user allowed), never a loop. Each
# image is made by tests/data/gen-vhdx.py setting one field.
. "$VD_TEST_LIB"
need qemu-img qemu-io python3 cmp
need_fuse
GEN="$VD_TEST_DATA/gen-vhdx.py"

# ---- BAT entries that wrap or point at metadata (2 MiB blocks) ----
qemu-img create -q -f vhdx -o block_size=2M "$T/ok.vhdx" 8M
qemu-io -f vhdx -c 'write -P 0x42 0 8M' "$T/ok.vhdx" >/dev/null
size=$(stat -c %s "$T/ok.vhdx")
python3 -c 'import sys; sys.stdout.buffer.write(b"\x42" * (2 << 20))' >"$T/block.42"

# The reference layout: log, BAT and metadata region 1 MiB each from 1 MiB.
declare -A OFF=([bat-wrap]=18446744073708503040 [bat-log]=1048576 [bat-bat]=2097152 [bat-meta]=3145728)
declare -A WHY=(
    [bat-wrap]="past end of file ($size bytes)"
    [bat-log]="over the log (1048576..2097152): the image is corrupt or crafted; refused"
    [bat-bat]="over the BAT region (2097152..3145728): the image is corrupt or crafted; refused"
    [bat-meta]="over the metadata region (3145728..4194304): the image is corrupt or crafted; refused")
declare -A CHECK=(
    [bat-wrap]="ERROR: vhdx: bat-wrap.vhdx: BAT entry 1 points to file offset 18446744073708503040, past end of file ($size bytes)"
    [bat-log]="ERROR: vhdx: bat-log.vhdx: log overlaps BAT entry 1 (payload block 1) at file offset 1048576"
    [bat-bat]="ERROR: vhdx: bat-bat.vhdx: BAT region overlaps BAT entry 1 (payload block 1) at file offset 2097152"
    [bat-meta]="ERROR: vhdx: bat-meta.vhdx: metadata region overlaps BAT entry 1 (payload block 1) at file offset 3145728")
M=$T/mnt
for k in bat-wrap bat-log bat-bat bat-meta; do
    img=$T/$k.vhdx
    python3 "$GEN" corrupt $k "$T/ok.vhdx" "$img"
    before=$(sha "$img")
    # vdisk hash: an error naming the entry, not the header's bytes.
    out=$("$VDISK" hash --sha256 "$img" 2>&1) && fail "$k: hash succeeded: $out"
    assert_eq "$out" "vdisk: vhdx: $k.vhdx: BAT entry 1 (payload block 1) points to file offset ${OFF[$k]}, ${WHY[$k]}" "$k: hash"
    # check: corrupt (exit 2), naming the entry.
    set +e; out=$("$VDISK" check "$img"); rc=$?; set -e
    assert_eq "$rc" 2 "$k: check exit code"
    assert_eq "$(head -1 <<<"$out")" "${CHECK[$k]}" "$k: check"
    # A read-only mount: block 0 reads, each half of block 1 fails with EIO
    # (the second half of the wrapping one used to read the file header).
    vmount "$M" "$img"
    cmp -n $((2 << 20)) "$M/$k/disk.raw" "$T/block.42" || fail "$k: block 0 through the mount"
    for mib in 2 3; do
        if dd if="$M/$k/disk.raw" of="$T/got" bs=1M skip=$mib count=1 status=none 2>"$T/dd.err"; then
            fail "$k: MiB $mib of the disk read through the mount: $(od -An -c -N8 "$T/got")"
        fi
        grep -q "Input/output error" "$T/dd.err" || fail "$k: mount read error: $(cat "$T/dd.err")"
    done
    vumount "$M"
    # -o rw: refused at open, the file untouched.
    mkdir -p "$T/m2"
    out=$("$VDISKFS" -o rw "$img" "$T/m2" 2>&1) && {
        fusermount3 -u "$T/m2"
        fail "$k: mounted rw"
    }
    assert_eq "$out" "vdiskfs: vhdx: $k.vhdx: the disk is damaged (see vdisk check); mount it read-only, keep the changes in an overlay (-o overlay=FILE), or write to a converted copy" "$k: rw refusal"
    assert_eq "$(sha "$img")" "$before" "$k: file changed"
done

# ---- parent locator paths: the core's one policy ----
qemu-img create -q -f vhdx -o block_size=8M "$T/p.vhdx" 20M
qemu-io -f vhdx -c 'write -P 0x21 0 20M' -c 'write -z 9M 1M' "$T/p.vhdx" >/dev/null
qemu-img convert -f vhdx -O raw "$T/p.vhdx" "$T/p.raw"
mkdir -p "$T/elsewhere" "$T/a" "$T/b" "$T/c" "$T/d"
R=$(realpath "$T") # messages name directories with symlinks resolved
# The parent under another name than the locator's other keys give (their
# last component is p.vhdx), so only the key under test can find it.
cp "$T/p.vhdx" "$T/elsewhere/renamed.vhdx"
cp "$T/p.vhdx" "$T/a/renamed.vhdx"

# relative_path absolute, inside the child's directory: opened (it used to
# be ignored as not relative).
python3 "$GEN" diff "$T/p.vhdx" "$T/p.raw" "$T/a" "--relpath=$T/a/renamed.vhdx"
assert_eq "$("$VDISK" hash --sha256 "$T/a/child.avhdx" | cut -d' ' -f1)" "$(sha "$T/a/child.raw")" \
    "absolute relative_path inside the directory"

# relative_path absolute, outside: refused naming the option; allowed with it.
python3 "$GEN" diff "$T/p.vhdx" "$T/p.raw" "$T/b" "--relpath=$T/elsewhere/renamed.vhdx"
out=$("$VDISK" hash --sha256 "$T/b/child.avhdx" 2>&1) && fail "relative_path outside opened: $out"
assert_eq "$out" "vdisk: child.avhdx: parent '$T/elsewhere/renamed.vhdx' resolves outside $R/b, the directory of the image that names it; refused, as an image may only name files beside it (if you trust this image, allow the directory holding that file with -o allow_path=DIR for vdiskfs or --allow-path DIR for vdisk)" \
    "relative_path outside the directory"
assert_eq "$("$VDISK" hash --allow-path "$T/elsewhere" --sha256 "$T/b/child.avhdx" | cut -d' ' -f1)" \
    "$(sha "$T/b/child.raw")" "relative_path outside, allowed"

# absolute_win32_path in POSIX form outside the directory, no relative_path:
# refused, allowed with -o allow_path through a mount.
python3 "$GEN" diff "$T/p.vhdx" "$T/p.raw" "$T/c" --no-relative "--abspath=$T/elsewhere/renamed.vhdx"
out=$("$VDISK" hash --sha256 "$T/c/child.avhdx" 2>&1) && fail "absolute_win32_path outside opened: $out"
case $out in
    "vdisk: child.avhdx: parent '$T/elsewhere/renamed.vhdx' resolves outside $R/c,"*"--allow-path DIR for vdisk)") ;;
    *) fail "absolute_win32_path refusal: $out" ;;
esac
vmount "$M" -o allow_path="$T/elsewhere" "$T/c/child.avhdx"
assert_eq "$(sha "$M/child/disk.raw")" "$(sha "$T/c/child.raw")" "absolute_win32_path allowed, mounted"
vumount "$M"

# The usual relative name, but a symlink beside the child leading out.
python3 "$GEN" diff "$T/p.vhdx" "$T/p.raw" "$T/d" '--relpath=.\renamed.vhdx'
ln -s "$T/elsewhere/renamed.vhdx" "$T/d/renamed.vhdx"
out=$("$VDISK" hash --sha256 "$T/d/child.avhdx" 2>&1) && fail "symlinked parent opened: $out"
case $out in *"resolves outside $R/d,"*--allow-path*) ;; *) fail "symlink refusal: $out" ;; esac

# ---- parent loops ----
mkdir -p "$T/loop"
python3 "$GEN" diff "$T/p.vhdx" "$T/p.raw" "$T/loop" --name=a '--relpath=.\b.avhdx'
python3 "$GEN" diff "$T/p.vhdx" "$T/p.raw" "$T/loop" --name=b '--relpath=.\a.avhdx'
python3 "$GEN" diff "$T/p.vhdx" "$T/p.raw" "$T/loop" --name=self '--relpath=.\self.avhdx'
out=$("$VDISK" hash --sha256 "$T/loop/a.avhdx" 2>&1) && fail "a->b->a opened: $out"
assert_eq "$out" "vdisk: b.avhdx: parent 'a.avhdx' is a.avhdx, which is already open below it in this chain: a loop; refused" "a->b->a"
out=$("$VDISK" hash --sha256 "$T/loop/self.avhdx" 2>&1) && fail "self-parent opened: $out"
assert_eq "$out" "vdisk: self.avhdx: names itself (as 'self.avhdx') as its own parent: a loop" "self loop"
echo "PASS"
