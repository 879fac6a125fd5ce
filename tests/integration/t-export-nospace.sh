#!/bin/bash
# ENOSPC and EDQUOT from the output reach the writer as such, not EIO:
# `cp` reports "No space left on device" / "Disk quota exceeded" for its
# writes and its close, the status names it, and nothing stays in DEST.
# ENOSPC from a real full tmpfs; EDQUOT (this kernel has no quota support)
# from a preloaded shim whose pwrite(2) on regular files fails past 4 MiB
# with the errno asked for, as a full quota would.
. "$VD_TEST_LIB"
need_fuse
need cc python3

SRC=$T/src.raw
head -c $((100 << 20)) /dev/urandom >"$SRC"
status() { python3 -c 'import os,sys; print(os.getxattr(sys.argv[1], "user.vdisk.status").decode())' "$1"; }
# expect_error MNT DEST NAME MESSAGE: cp into MNT/export/NAME fails on its
# writes and its close with MESSAGE, the status says it, DEST stays empty.
expect_error() {
    local out
    if out=$(cp "$SRC" "$1/export/$3" 2>&1); then fail "cp into $3 succeeded"; fi
    case $out in *"error writing"*"$4"*"failed to close"*"$4"*) ;; *) fail "cp into $3: $out" ;; esac
    case $(status "$1/export/$3") in "error: "*"$4") ;; *) fail "status of $3: $(status "$1/export/$3")" ;; esac
    [ -z "$(ls -A "$2")" ] || fail "left in DEST after $3: $(ls -A "$2")"
    echo "ok: $3: $4"
}

mkdir -p "$T/full"
if mount -t tmpfs -o size=2m tmpfs "$T/full" 2>/dev/null; then
    MOUNTS+=("$T/full")
    vmount "$T/m1" -o export="$T/full",reorder_window=1M
    for f in a.raw b.vhd c.vmdk; do expect_error "$T/m1" "$T/full" $f "No space left on device"; done
    vumount "$T/m1"
else
    echo "note: cannot mount a tmpfs here; ENOSPC case skipped"
fi

cat >"$T/shim.c" <<'EOF'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
/* pwrite(2) of a regular file past SHIM_LIMIT bytes fails with SHIM_ERRNO. */
ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
    static ssize_t (*real)(int, const void *, size_t, off_t);
    struct stat st;
    if (!real)
        real = (ssize_t(*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite64");
    const char *lim = getenv("SHIM_LIMIT");
    if (lim && off + (off_t)n > atoll(lim) && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        errno = atoi(getenv("SHIM_ERRNO"));
        return -1;
    }
    return real(fd, buf, n, off);
}
ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) { return pwrite64(fd, buf, n, off); }
EOF
cc -shared -fPIC -o "$T/shim.so" "$T/shim.c" -ldl || fail "cannot build the pwrite shim"
mkdir -p "$T/q"
# An ASan build wants its runtime first; the shim only wraps pwrite.
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
    LD_PRELOAD=$T/shim.so SHIM_LIMIT=$((4 << 20)) SHIM_ERRNO=122 \
    vmount "$T/m2" -o export="$T/q",reorder_window=1M
for f in a.raw b.vhd c.vhdx d.vmdk e.ova; do expect_error "$T/m2" "$T/q" $f "Disk quota exceeded"; done
vumount "$T/m2"
echo "ENOSPC and EDQUOT reach the writer"
