#!/bin/bash
# What a crafted VMDK must never get (issue 9): host files it names outside
# its directory, one sparse file used as two extents, unbounded table
# memory, parent loops, and data mapped onto its own tables. Each image is
# made valid, then one field is set (tests/integration/vmdk_craft.py).
# Exact messages; through `vdisk hash/convert/info/check`, and real mounts
# (read-only and -o rw).
. "$VD_TEST_LIB"
need qemu-img python3
need_fuse
TV="${VD_BUILD_DIR:?}/tests/test_vmdk"
[ -x "$TV" ] || skip "test_vmdk helper not built"
CRAFT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/vmdk_craft.py"
craft() { python3 "$CRAFT" "$@"; }
cd "$T"
mkdir -p "$T/m"

# expect_fail WANT CMD...: CMD fails and its stderr is exactly WANT.
expect_fail() {
    local want=$1 out; shift
    if out=$("$@" 2>&1 >/dev/null); then fail "$*: succeeded, expected '$want'"; fi
    assert_eq "$out" "$want" "$*"
}
desc() { # desc OUT TYPE EXTENT-LINES...: a descriptor file
    local out=$1 type=$2; shift 2
    { printf '# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType="%s"\n' "$type"
      printf '%s\n' "$@"; } > "$out"
}
policy() { # policy IMG WHAT NAME DIR: the core's refusal of a name outside DIR
    echo "$1: $2 '$3' resolves outside $4, the directory of the image that names it; refused, as an image may only name files beside it (if you trust this image, allow the directory holding that file with -o allow_path=DIR for vdiskfs or --allow-path DIR for vdisk)"
}

# ---- 1. host files named by extents (CVE-2022-47951's class) ----
s_hostfiles() {
    mkdir -p victim img/b/c
    head -c 8192 /dev/urandom > victim/secret
    vsha=$(sha victim/secret)
    desc img/abs.vmdk monolithicFlat "RW 16 FLAT \"$T/victim/secret\" 0"
    desc img/shadow.vmdk monolithicFlat 'RW 1 FLAT "/etc/shadow" 0'
    desc img/b/c/rel.vmdk monolithicFlat 'RW 16 FLAT "../../../victim/secret" 0'
    ln -s ../victim/secret img/d-flat.vmdk
    desc img/link.vmdk monolithicFlat 'RW 16 FLAT "d-flat.vmdk" 0'
    for c in "abs:extent 1:$T/victim/secret:$T/img" "shadow:extent 1:/etc/shadow:$T/img" \
        "b/c/rel:extent 1:../../../victim/secret:$T/img/b/c" "link:extent 1:d-flat.vmdk:$T/img"; do
        IFS=: read -r f what name dir <<< "$c"
        img=img/$f.vmdk base=$(basename "$f").vmdk
        msg="vmdk: $(policy "$base" "$what" "$name" "$dir")"
        expect_fail "vdisk: $msg" "$VDISK" hash "$img"
        expect_fail "vdisk: $msg" "$VDISK" convert -O raw "$img" out.raw
        [ ! -e out.raw ] || fail "$img: vdisk convert left an output"
        for o in ro rw; do
            if "$VDISKFS" -o $o "$img" "$T/m" 2>err.out; then
                MOUNTS+=("$T/m"); fail "$img: mounted -o $o"
            fi
            assert_eq "$(cat err.out)" "vdiskfs: $msg" "$img: vdiskfs -o $o"
        done
        assert_eq "$(sha victim/secret)" "$vsha" "victim file after $img"
    done
    # The user may say so: --allow-path / -o allow_path; then the bytes are the
    # file's, and -o rw writes reach it.
    want=$(sha victim/secret)
    for f in abs b/c/rel link; do
        assert_eq "$("$VDISK" hash --allow-path "$T/victim" img/$f.vmdk | cut -d' ' -f1)" "$want" \
            "img/$f.vmdk with --allow-path"
    done
    vmount "$T/m" -o allow_path="$T/victim" img/abs.vmdk
    assert_eq "$(sha "$T/m/abs/disk.raw")" "$want" "mounted with allow_path"
    vumount "$T/m"
    cp victim/secret victim/expect
    printf 'written through' | dd of=victim/expect bs=1 seek=100 conv=notrunc status=none
    vmount "$T/m" -o rw,allow_path="$T/victim" img/abs.vmdk
    printf 'written through' | dd of="$T/m/abs/disk.raw" bs=1 seek=100 conv=notrunc,fsync status=none
    vumount "$T/m"
    assert_eq "$(sha victim/secret)" "$(sha victim/expect)" "allowed write reached the file"
}

# Parents named by absolute or ../ paths, and the basename fallback not
# finding them beside the child either.
s_parents() {
    mkdir -p pdir cdir
    qemu-img create -q -f vmdk pdir/base.vmdk 4M
    qemu-io -c 'write -P 0x5a 0 3M' pdir/base.vmdk >/dev/null
    qemu-img create -q -f vmdk -b ../pdir/base.vmdk -F vmdk cdir/rel.vmdk
    qemu-io -c 'write -P 0x33 1M 64k' cdir/rel.vmdk >/dev/null
    cp cdir/rel.vmdk cdir/abs.vmdk
    craft hint cdir/abs.vmdk "$T/pdir/base.vmdk"
    ref=$(qemu_raw_sha cdir/rel.vmdk)
    expect_fail "vdisk: vmdk: $(policy rel.vmdk parent ../pdir/base.vmdk "$T/cdir")" "$VDISK" hash cdir/rel.vmdk
    expect_fail "vdisk: vmdk: $(policy abs.vmdk parent "$T/pdir/base.vmdk" "$T/cdir")" "$VDISK" hash cdir/abs.vmdk
    for f in rel abs; do
        assert_eq "$("$VDISK" hash --allow-path "$T/pdir" cdir/$f.vmdk | cut -d' ' -f1)" "$ref" \
            "parent $f with --allow-path"
    done
}

# ---- 4. one sparse file named as two extents ----
s_twice() {
    mkdir two && cd two
    qemu-img create -q -f vmdk s.vmdk 4M
    desc two.vmdk twoGbMaxExtentSparse 'RW 8192 SPARSE "s.vmdk"' 'RW 8192 SPARSE "./s.vmdk"'
    desc mix.vmdk twoGbMaxExtentSparse 'RW 8192 SPARSE "s.vmdk"' 'RW 8192 FLAT "s.vmdk" 0'
    msg="vmdk: two.vmdk: extent 2 names $T/two/./s.vmdk, which this image already uses; refused (a file may back one part of one image only)"
    expect_fail "vdisk: $msg" "$VDISK" hash two.vmdk
    expect_fail "$msg" "$TV" pwrite two.vmdk 0 s.vmdk
    expect_fail "vdisk: vmdk: mix.vmdk: extent 2 names $T/two/s.vmdk, which this image already uses; refused (a file may back one part of one image only)" "$VDISK" hash mix.vmdk
    s0=$(sha s.vmdk)
    if "$VDISKFS" -o rw two.vmdk "$T/m" 2>err.out; then MOUNTS+=("$T/m"); fail "two.vmdk mounted -o rw"; fi
    assert_eq "$(cat err.out)" "vdiskfs: $msg" "vdiskfs -o rw two.vmdk"
    assert_eq "$(sha s.vmdk)" "$s0" "s.vmdk untouched"
    # FLAT extents may still share a file (raw windows at two offsets).
    head -c 1M /dev/urandom > f.bin
    desc flat2.vmdk monolithicFlat 'RW 1024 FLAT "f.bin" 1024' 'RW 1024 FLAT "f.bin" 0'
    { tail -c 512K f.bin; head -c 512K f.bin; } > flat2.expect
    assert_eq "$("$VDISK" hash flat2.vmdk | cut -d' ' -f1)" "$(sha flat2.expect)" "two FLAT windows of one file"
    cd "$T"
}

# ---- 5. table memory: extents whose header asks for 2^24 GD entries ----
# Valid: 4 TiB, 64 KiB grains, empty GD of 131072 entries (room for 2^24).
# Crafted: grainSize (byte 20) = 1 sector, so the GD has 2^24 entries.
s_memory() {
    mkdir mem && cd mem
    for i in 1 2 3 4 5 6 7 8; do
        craft sparse x$i.vmdk $((1 << 33)) --room $((1 << 24))
        craft poke x$i.vmdk 20 8 1
    done
    lines=() small=()
    for i in 1 2 3 4 5 6 7 8; do lines+=("RW $((1 << 33)) SPARSE \"x$i.vmdk\""); small+=("RW 2048 SPARSE \"x$i.vmdk\""); done
    desc big.vmdk twoGbMaxExtentSparse "${lines[@]}"
    desc small.vmdk twoGbMaxExtentSparse "${small[@]}"
    rss() { /usr/bin/time -f %M -o rss.out "$@" >/dev/null 2>err.out; local rc=$?; cat rss.out | tail -1; return $rc; }
    if [ -x /usr/bin/time ]; then
        # The GD is read as far as the descriptor's extent reaches: 4 entries.
        kb=$(rss "$VDISK" info small.vmdk) || fail "info small.vmdk: $(cat err.out)"
        [ "$kb" -lt 65536 ] || fail "info of 8 small extents peaked at $kb KiB"
        # Over the cap: refused before any GD is read.
        kb=$(rss "$VDISK" info big.vmdk) && fail "info big.vmdk succeeded"
        [ "$kb" -lt 65536 ] || fail "refusing big.vmdk peaked at $kb KiB"
    fi
    expect_fail "vdisk: vmdk: big.vmdk: extent 1 (x1.vmdk): grain directory of 16777216 entries (grains of 512 bytes, 512 per grain table) brings the image's table memory to 192 MiB, over the cap of 128 MiB; refused (real VMDKs need a few MiB; see docs/vmdk.md)" "$VDISK" info big.vmdk
    cd "$T"
}

# ---- 6. parent loops, by identity, said once ----
s_loops() {
    mkdir loop && cd loop
    qemu-img create -q -f vmdk base.vmdk 4M
    qemu-img create -q -f vmdk -b base.vmdk -F vmdk d.vmdk
    cp d.vmdk a.vmdk; cp d.vmdk b.vmdk
    craft hint d.vmdk ./d.vmdk
    craft hint a.vmdk b.vmdk
    craft hint b.vmdk a.vmdk
    expect_fail "vdisk: vmdk: d.vmdk: names itself (as './d.vmdk') as its own parent: a loop" "$VDISK" hash d.vmdk
    expect_fail "vdisk: vmdk: b.vmdk: parent 'a.vmdk' is a.vmdk, which is already open below it in this chain: a loop; refused" "$VDISK" hash a.vmdk
    if "$VDISKFS" a.vmdk "$T/m" 2>err.out; then MOUNTS+=("$T/m"); fail "a.vmdk mounted"; fi
    assert_eq "$(cat err.out)" "vdiskfs: vmdk: b.vmdk: parent 'a.vmdk' is a.vmdk, which is already open below it in this chain: a loop; refused" "vdiskfs a.vmdk"
    cd "$T"
}

# ---- data mapped onto the image's own tables ----
# Valid: an empty sparse extent (no RGD) with grains written at 0 and 32 MiB,
# so grain tables 0 and 1 lie after the GD. Crafted: GT 0 entry 1 (grain 1,
# unallocated) points at grain table 1.
s_meta() {
    mkdir meta && cd meta
    craft sparse g.vmdk 131072
    head -c 65536 /dev/urandom > chunk
    "$TV" pwrite g.vmdk 0 chunk
    "$TV" pwrite g.vmdk $((32 << 20)) chunk
    "$VDISK" check g.vmdk >/dev/null || fail "valid base: $("$VDISK" check g.vmdk 2>&1)"
    gt1=$(craft gde g.vmdk 1)
    cp g.vmdk bad.vmdk
    craft gte bad.vmdk 0 1 "$gt1"
    expect_fail "vdisk: bad.vmdk: extent 1 grain table 0 entry 1 places the data at virtual offset 65536 at offset $((gt1 * 512)) of bad.vmdk, inside its grain table ($((gt1 * 512))..$((gt1 * 512 + 2048))): the image is corrupt or crafted; refused" \
        "$VDISK" hash bad.vmdk
    rc=0; "$VDISK" check bad.vmdk > check.out 2>&1 || rc=$?
    assert_eq "$rc" 2 "check exit status"
    assert_eq "$(cat check.out)" "ERROR: vmdk: bad.vmdk: grain table 0 entry 1 (grain 1) points to sector $gt1, inside grain table 1" "check output"
    b0=$(sha bad.vmdk)
    expect_fail "bad.vmdk: refusing to open for writing: \`vdisk check\` finds 1 problem (first: vmdk: bad.vmdk: grain table 0 entry 1 (grain 1) points to sector $gt1, inside grain table 1); open it read-only, or write through an overlay (-o overlay=FILE)" \
        "$TV" pwrite bad.vmdk 65536 chunk
    if "$VDISKFS" -o rw bad.vmdk "$T/m" 2>/dev/null; then
        MOUNTS+=("$T/m")
        dd if=chunk of="$T/m/bad/disk.raw" bs=64k seek=1 conv=notrunc,fsync status=none 2>/dev/null || true
        vumount "$T/m"
    fi
    assert_eq "$(sha bad.vmdk)" "$b0" "bad.vmdk after a refused rw open"
    # Valid: a qemu-made monolithicSparse (embedded descriptor at sectors 1-20).
    # Crafted: GD entry 1 = 2, grain table 1 inside the descriptor, where a
    # write would put its GT entries. check names the overlap; writes are
    # refused and the file stays as it was.
    qemu-img create -q -f vmdk q.vmdk 64M
    craft gde q.vmdk 1 2
    rc=0; "$VDISK" check q.vmdk > check.out 2>&1 || rc=$?
    assert_eq "$rc" 2 "check exit status (GT inside the descriptor)"
    first="vmdk: q.vmdk: embedded descriptor 0 (sectors 1..21) overlaps grain table 1 (sectors 2..6)"
    assert_eq "$(head -1 check.out)" "ERROR: $first" "check output (GT inside the descriptor)"
    q0=$(sha q.vmdk)
    expect_fail "q.vmdk: refusing to open for writing: \`vdisk check\` finds 1 problem (first: $first); open it read-only, or write through an overlay (-o overlay=FILE)" \
        "$TV" pwrite q.vmdk $((32 << 20)) chunk
    assert_eq "$(sha q.vmdk)" "$q0" "q.vmdk after a refused write"
    # Valid: the same. Crafted: redundant GD entry 0 = 0 while the GD has a
    # table there. Reads ignore the RGD; writes, which could not keep it in
    # step (and would make it look valid and wrong), are refused.
    qemu-img create -q -f vmdk r.vmdk 64M
    rgd=$(craft peek r.vmdk 48 8)
    craft poke r.vmdk $((rgd * 512)) 4 0
    first="vmdk: r.vmdk: redundant grain directory entry 0 is 0, the grain directory entry is not 0"
    rc=0; "$VDISK" check r.vmdk > check.out 2>&1 || rc=$?
    assert_eq "$rc" 2 "check exit status (stale RGD entry)"
    assert_eq "$(cat check.out)" "ERROR: $first" "check output (stale RGD entry)"
    expect_fail "r.vmdk: refusing to open for writing: \`vdisk check\` finds 1 problem (first: $first); open it read-only, or write through an overlay (-o overlay=FILE)" \
        "$TV" pwrite r.vmdk 0 chunk
    cd "$T"
}

# VD_TRUST_ONLY=NAME runs one section (to see each fail on an older build).
for s in hostfiles parents twice memory loops meta; do
    if [ -z "${VD_TRUST_ONLY:-}" ] || [ "$VD_TRUST_ONLY" = "$s" ]; then
        cd "$T"
        "s_$s"
    fi
done
echo ok
