#!/usr/bin/env bash
# The docs match what a user sees (issue 14): every ```sh (or ```console)
# block of README.md and docs/*.md is run, as written, by this test, unless
# the line before it is `<!-- no-test: REASON -->` (a reason is required:
# AWS, S3, a real guest, a whole build...). Untagged blocks are listings,
# synopses and transcripts, and are not run; but each option a synopsis
# line (`vdisk CMD [--opt]...`) names must be in `vdisk CMD --help`.
#
# Each block runs with `bash -e -o pipefail` in a fresh folder holding the
# files the docs name (web01.ova, disk.vhdx, disk.vmdk...: one small MBR
# guest with an ext4 root holding /etc/fstab, made here, converted to each
# format by qemu-img where it can, so that the docs' own examples are what
# reads them). Absolute paths under /mnt, /srv and /out are moved under
# that folder, where mount points v, e, x and guest exist. `vdisk check`
# and `vdisk preflight` report findings with exit 2 and 3: those count as
# results, not failures, unless the command printed a usage error.
. "$VD_TEST_LIB"
need_fuse
need python3 qemu-img sfdisk mkfs.ext4
SRC_ROOT=$(cd "$(dirname "$VD_TEST_LIB")/../.." && pwd)
BIN_DIR=$T/bin
mkdir -p "$BIN_DIR"
ln -s "$VDISK" "$BIN_DIR/vdisk"
ln -s "$VDISKFS" "$BIN_DIR/vdiskfs"
# `vdisk serve` runs nbdkit from PATH: with a plugin built with ASan, that
# nbdkit needs the ASan runtime first (lib.sh, nbdkit_asan_preload).
asan=$(nbdkit_asan_preload)
if [ -n "$asan" ] && real_nbdkit=$(type -P nbdkit); then
    printf '#!/bin/sh\nLD_PRELOAD=%s ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" exec %s "$@"\n' \
        "$asan" "$real_nbdkit" > "$BIN_DIR/nbdkit"
    chmod +x "$BIN_DIR/nbdkit"
fi

# ---- the files the docs name ----
F=$T/fixtures
mkdir -p "$F/root/etc"
cat > "$F/root/etc/fstab" <<'EOF'
/dev/sda1  /      ext4  errors=remount-ro  0 1
/dev/sda2  /data  ext4  defaults           0 2
EOF
printf 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n' \
    > "$F/root/etc/os-release"
echo web01 > "$F/root/etc/hostname"
truncate -s 64M "$F/base.raw"
printf 'label: dos\n,40M,83\n,,83\n' | sfdisk -q "$F/base.raw"
truncate -s 40M "$F/p1.ext4"
mkfs.ext4 -q -F -L root -d "$F/root" "$F/p1.ext4"
dd if="$F/p1.ext4" of="$F/base.raw" bs=1M seek=1 conv=notrunc status=none
truncate -s 22M "$F/p2.ext4"
mkfs.ext4 -q -F -L data "$F/p2.ext4"
dd if="$F/p2.ext4" of="$F/base.raw" bs=1M seek=41 conv=notrunc status=none
rm "$F/p1.ext4" "$F/p2.ext4"
qemu-img convert -q -f raw -O vhdx "$F/base.raw" "$F/disk.vhdx"
qemu-img convert -q -f raw -O vpc -o force_size=on "$F/base.raw" "$F/disk.vhd"
qemu-img convert -q -f raw -O vmdk -o subformat=streamOptimized "$F/base.raw" "$F/disk.vmdk"
for n in web01 disk1 disk2; do cp --reflink=auto "$F/disk.vmdk" "$F/$n.vmdk"; done
qemu-img convert -q -f raw -O vpc -o subformat=fixed,force_size=on "$F/base.raw" "$F/web01.vhd"
"$VDISK" convert -q "$F/base.raw" "$F/web01.ova" # no other tool writes an OVA here
cp "$F/base.raw" "$F/disk.raw"
rm -rf "$F/root"

# ---- the blocks ----
python3 - "$SRC_ROOT" "$T/blocks" <<'PY'
import os, re, sys
root, out = sys.argv[1], sys.argv[2]
os.makedirs(out)
files = ["README.md"] + sorted("docs/" + f for f in os.listdir(root + "/docs") if f.endswith(".md"))
n = skipped = 0
bad = []
syn = open(f"{out}/synopsis", "w")
for f in files:
    lines = open(os.path.join(root, f)).read().split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"^```(\S*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        lang, start = m.group(1), i
        j = i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        body = lines[i + 1:j]
        i = j + 1
        if lang not in ("sh", "console", "bash"):
            # A synopsis (`vdisk CMD [--opt]...` in a listing): each option
            # it names must be one `vdisk CMD --help` names.
            for k, l in enumerate(body):
                m2 = re.match(r"^vdisk ([a-z]+) (.*)", l)
                if m2:
                    for opt in sorted(set(re.findall(r"(?<![\w-])--?[a-zA-Z][\w-]*", m2.group(2)))):
                        syn.write(f"{f}:{start + 2 + k} {m2.group(1)} {opt}\n")
            continue
        prev = lines[start - 1].strip() if start else ""
        k = start - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        prev = lines[k].strip() if k >= 0 else ""
        nt = re.match(r"^<!--\s*no-test:(.*?)-->$", prev)
        if nt:
            if not nt.group(1).strip():
                bad.append(f"{f}:{start + 1}: <!-- no-test: --> needs a reason")
            skipped += 1
            print(f"not run: {f}:{start + 1}: {nt.group(1).strip()}")
            continue
        if lang == "console":
            bad.append(f"{f}:{start + 1}: a console transcript cannot run: give it <!-- no-test: why --> or make it ```sh")
            continue
        n += 1
        with open(f"{out}/{n:03d}.sh", "w") as o:
            o.write("\n".join(body) + "\n")
        with open(f"{out}/{n:03d}.where", "w") as o:
            o.write(f"{f}:{start + 1}\n")
for b in bad:
    print("FAIL: " + b, file=sys.stderr)
print(f"{n} blocks to run, {skipped} marked no-test")
sys.exit(1 if bad else 0)
PY

# Synopses against --help.
while read -r where cmd opt; do
    "$VDISK" "$cmd" --help > "$T/help" 2>&1 || fail "$where: vdisk $cmd --help failed"
    grep -qE -- "(^|[^a-zA-Z0-9-])$opt([^a-zA-Z0-9-]|\$)" "$T/help" ||
        fail "$where: the synopsis of vdisk $cmd names $opt, which 'vdisk $cmd --help' does not"
done < "$T/blocks/synopsis"
echo "$(wc -l < "$T/blocks/synopsis") synopsis options checked against --help"

# vdisk(1) is complete: each command `vdisk --help` lists is in its
# SYNOPSIS, and each long option of each command's --help is in the page.
if command -v man >/dev/null; then
    MANWIDTH=1000 man -l "$SRC_ROOT/docs/vdisk.1" 2>/dev/null > "$T/vdisk.man" || fail "man -l docs/vdisk.1 failed"
    sed -n '/^SYNOPSIS/,/^DESCRIPTION/p' "$T/vdisk.man" > "$T/synopsis.man"
    for cmd in $("$VDISK" --help | sed -n 's/^  \([a-z][a-z-]*\) .*/\1/p'); do
        grep -q "^ *vdisk $cmd " "$T/synopsis.man" || fail "vdisk(1) SYNOPSIS lacks vdisk $cmd"
        for opt in $("$VDISK" "$cmd" --help | grep -o -- '--[a-z][a-z0-9-]*' | sort -u); do
            grep -q -- "$opt" "$T/vdisk.man" || fail "vdisk(1) does not mention $cmd's $opt"
        done
    done
    echo "vdisk(1) names every command and option"
else
    echo "man is not installed: vdisk(1) not checked"
fi

# kill_block DIR: what a block left running (`vdisk serve ... &`): the
# processes whose environment holds its VD_DOCS_BLOCK=DIR marker.
kill_block() {
    local e p
    for e in /proc/[0-9]*/environ; do
        p=${e#/proc/}
        p=${p%/environ}
        [ "$p" != $$ ] && tr '\0' '\n' 2>/dev/null < "$e" | grep -qxF "VD_DOCS_BLOCK=$1" &&
            kill "$p" 2>/dev/null || true
    done
}

# unmount_under DIR: every mount below DIR, deepest (latest) first.
unmount_under() {
    local m
    for m in $(awk -v d="$1/" 'index($2, d) == 1 { print $2 }' /proc/mounts | tac); do
        umount "$m" 2>/dev/null || fusermount3 -u "$m" 2>/dev/null || umount -l "$m" || true
    done
}

# The wrapper: check/preflight findings (exit 2, 3) are results; a usage
# error is not.
cat > "$BIN_DIR/vdisk-wrap" <<EOF
#!/usr/bin/env bash
err=\$(mktemp)
rc=0
"$VDISK" "\$@" 2> >(tee "\$err" >&2) || rc=\$?
wait
if grep -q "; see 'vdisk .*--help'\$" "\$err"; then rm -f "\$err"; echo "t-docs: usage error" >&2; exit 2; fi
rm -f "\$err"
case "\$1:\$rc" in check:[23] | preflight:[23]) exit 0 ;; esac
exit \$rc
EOF
chmod +x "$BIN_DIR/vdisk-wrap"
rm "$BIN_DIR/vdisk"
mv "$BIN_DIR/vdisk-wrap" "$BIN_DIR/vdisk"

failed=0
for b in "$T"/blocks/*.sh; do
    n=$(basename "$b" .sh)
    where=$(cat "$T/blocks/$n.where")
    # The blocks of one file run in order in one folder: a later block may
    # use what an earlier one made (docs are read in order).
    R=$T/run/$(echo "${where%%:*}" | tr / _)
    if [ ! -d "$R" ]; then
        mkdir -p "$R/mnt/v" "$R/mnt/e" "$R/mnt/x" "$R/mnt/guest" "$R/srv/out" "$R/out"
        cp --reflink=auto "$F"/* "$R/"
    fi
    # /mnt, /srv and /out at the start of a word: under $R (sed -E).
    sed -E "s#(^|[ =:'\"])/(mnt|srv|out)([/ ,]|\$)#\\1$R/\\2\\3#g" "$b" > "$R/$n.sh"
    rc=0
    (cd "$R" && VD_DOCS_BLOCK=$R PATH="$BIN_DIR:$PATH" timeout 300 bash -e -o pipefail "$n.sh") \
        > "$R/log" 2>&1 || rc=$?
    kill_block "$R"
    unmount_under "$R"
    if [ "$rc" -ne 0 ]; then
        echo "FAIL: $where (exit $rc):" >&2
        sed 's/^/    /' "$R/$n.sh" >&2
        echo "  output:" >&2
        tail -n 30 "$R/log" | sed 's/^/    /' >&2
        failed=$((failed + 1))
    else
        echo "ran: $where"
        sed -n '1,40{s/^/    | /;p}' "$R/log" | cut -c1-160
    fi
done
[ "$failed" -eq 0 ] || fail "$failed doc block(s) failed"
echo PASS
