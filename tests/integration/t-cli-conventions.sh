#!/usr/bin/env bash
# One CLI convention (issue 14): every usage error of every vdisk command
# (unknown option, missing or extra argument, bad value) exits 2 with
# exactly one line on stderr, `vdisk: CMD: WHAT; see 'vdisk CMD --help'`,
# and nothing on stdout (check and preflight exit 1, their documented
# "could not check", since 2 is their "corrupt"/"would fail"); a real
# failure keeps exit 1. `vdisk fixup` on a
# file says what it expects; an unknown command suggests the nearest one.
# `vdisk status MNT/export/NAME` prints the export's xattrs as getfattr
# reads them (getfattr is the oracle), in text and JSON. Progress:
# `--progress` off a terminal prints plain lines (no \r) ending at 100%,
# the default off a terminal and -q print none.
. "$VD_TEST_LIB"
need python3

cd "$T"
truncate -s 4M d.raw
printf 'hello' > text.txt

# usage CMD... -- EXPECTED-WHAT: exit 2, stdout empty, stderr the one line.
usage() {
    local args=() what rc=0
    while [ "$1" != -- ]; do args+=("$1"); shift; done
    what=$2
    "$VDISK" "${args[@]}" >out 2>err || rc=$?
    case ${args[0]} in
    check | preflight) assert_eq "$rc" 1 "exit code of: vdisk ${args[*]}" ;;
    *) assert_eq "$rc" 2 "exit code of: vdisk ${args[*]}" ;;
    esac
    assert_eq "$(cat err)" "vdisk: ${args[0]}: $what; see 'vdisk ${args[0]} --help'" \
        "message of: vdisk ${args[*]}"
    [ ! -s out ] || fail "vdisk ${args[*]} wrote to stdout: $(cat out)"
}

usage info --jsn d.raw -- "unknown option '--jsn' (did you mean '--json'?)"
usage info -x d.raw -- "unknown option '-x'"
usage info --json=yes d.raw -- "option '--json' takes no value"
usage info -- "missing SOURCE"
usage info d.raw d.raw -- "expected one SOURCE, got 2 arguments"
usage info -f -- "option '-f' needs a value"
usage hash --sha257 d.raw -- "unknown option '--sha257' (did you mean '--sha256'?)"
usage hash --disk 0 d.raw -- "--disk 0: expected a disk number from 1"
usage hash --disk x d.raw -- "--disk x: expected a disk number from 1"
usage hash --allow-path "$T/nodir" d.raw -- "--allow-path $T/nodir: No such file or directory"
usage hash -- "missing SOURCE"
usage check --fromat raw d.raw -- "unknown option '--fromat' (did you mean '--format'?)"
usage check -- "missing SOURCE"
usage check a b c -- "expected one SOURCE, got 3 arguments"
usage convert d.raw -- "expected SOURCE and DEST, got 1 argument"
usage convert -- "missing SOURCE and DEST"
usage convert --disk -- "option '--disk' needs a value"
usage convert -o vmdk_tpye=stream d.raw o.vmdk -- "unknown -o option 'vmdk_tpye' (did you mean 'vmdk_type'?)"
usage convert -o fsync=maybe d.raw o.vhd -- "export: fsync=maybe: expected on or off"
usage convert -o sector_size=1024 d.raw o.vhdx -- "export: sector_size=1024: expected 512 or 4096"
usage convert d.raw o.qcow2 -- "o.qcow2: cannot tell the format from the name; use -O FORMAT"
usage convert --disk all d.raw o.vhd -- "o.vhd: --disk all writes one OVA; use -O ova"
usage fixup --dryrun d.raw -- "unknown option '--dryrun' (did you mean '--dry-run'?)"
usage fixup d.raw -- "d.raw is not a view: give a mounted view directory such as MNT/web01 (vdiskfs -o rw SOURCE MNT), or --root DIR --disk SOURCE"
usage fixup --profile azure "$T" -- "unknown profile 'azure' (only 'aws')"
usage fixup --disk d.raw "$T" -- "--disk goes with --root; a VIEW names its own disks"
usage fixup -- "missing VIEW (or --root DIR --disk SOURCE)"
usage fixup a b -- "expected one VIEW, got 2 arguments"
usage inspect --jsn d.raw -- "unknown option '--jsn' (did you mean '--json'?)"
usage inspect -- "missing SOURCE... or VIEW"
usage preflight d.raw -- "--target aws or --target azure is required"
usage preflight --target gcp d.raw -- "--target gcp: expected aws or azure"
usage preflight --target aws --route import-vm d.raw -- "--route import-vm: expected import-image or import-snapshot"
usage preflight --target aws -- "missing SOURCE... or VIEW"
usage preflight --taget aws d.raw -- "unknown option '--taget' (did you mean '--target'?)"
usage serve --d d.raw -- "option '--d' is ambiguous; give more of its name"
usage serve --sockt x d.raw -- "unknown option '--sockt' (did you mean '--socket'?)"
usage serve -- "expected one SOURCE"
usage serve --socket s --tcp 1 d.raw -- "give --socket or --tcp, not both"
usage status --jsn x -- "unknown option '--jsn' (did you mean '--json'?)"
usage status -- "missing MNT/export/NAME"

# Unknown commands: the nearest one, or none when nothing is close.
rc=0; "$VDISK" infp d.raw 2>err || rc=$?
assert_eq "$rc" 2 "exit code of an unknown command"
assert_eq "$(cat err)" "vdisk: unknown command 'infp' (did you mean 'info'?); see 'vdisk --help'" "unknown command"
rc=0; "$VDISK" xyzzy 2>err || rc=$?
assert_eq "$rc" 2 "exit code of an unknown command"
assert_eq "$(cat err)" "vdisk: unknown command 'xyzzy'; see 'vdisk --help'" "unknown command, nothing near"
rc=0; "$VDISK" >/dev/null 2>&1 || rc=$?
assert_eq "$rc" 2 "exit code of vdisk without a command"

# Every command's --help exits 0 on stdout.
for cmd in info hash check convert fixup inspect preflight serve status; do
    "$VDISK" "$cmd" --help >out 2>err || fail "vdisk $cmd --help failed"
    grep -q "^usage: vdisk $cmd" out || fail "vdisk $cmd --help: no usage line"
    [ ! -s err ] || fail "vdisk $cmd --help wrote to stderr"
done

# Real failures keep exit 1, with the file named.
rc=0; "$VDISK" info "$T/none.vmdk" 2>err || rc=$?
assert_eq "$rc" 1 "exit code for a missing source"
rc=0; "$VDISK" status text.txt 2>err || rc=$?
assert_eq "$rc" 1 "exit code of status on a plain file"
assert_eq "$(cat err)" "vdisk: status: text.txt: no export status here; give a file in a vdiskfs mount's export/ folder (MNT/export/NAME)" "status on a plain file"

# Progress off a terminal (stderr is a file here).
head -c $((8 << 20)) /dev/urandom > r.raw
VDISK_PROGRESS_INTERVAL=0 "$VDISK" convert --progress r.raw p.vhd 2>prog || fail "convert --progress"
[ "$(wc -l < prog)" -ge 2 ] || fail "--progress printed fewer than 2 lines: $(cat prog)"
! grep -q $'\r' prog || fail "--progress off a terminal printed \\r"
grep -Ev '^converting: [0-9]+\.[0-9]% [0-9]+ of 8 MiB, [0-9.]+ MiB/s, ETA [0-9]+:[0-9][0-9]$' prog |
    grep -Evx 'converting: 100\.0% 8 of 8 MiB, [0-9.]+ MiB/s, done in [0-9]+:[0-9][0-9]' &&
    fail "unexpected --progress line(s) above"
grep -Eqx 'converting: 100\.0% 8 of 8 MiB, [0-9.]+ MiB/s, done in [0-9]+:[0-9][0-9]' <(tail -n1 prog) ||
    fail "last --progress line: $(tail -n1 prog)"
# the default interval: a fast job prints its first and last line only
"$VDISK" convert --progress r.raw p2.vhd 2>prog || fail "convert --progress"
assert_eq "$(wc -l < prog)" 2 "lines of a sub-second --progress"
"$VDISK" hash --progress r.raw 2>prog >/dev/null || fail "hash --progress"
grep -Eqx 'hashing: 100\.0% 8 of 8 MiB, [0-9.]+ MiB/s, done in [0-9]+:[0-9][0-9]' <(tail -n1 prog) ||
    fail "last hash --progress line: $(tail -n1 prog)"
"$VDISK" convert r.raw p3.vhd 2>prog || fail "convert"
[ ! -s prog ] || fail "convert off a terminal printed progress without --progress: $(cat prog)"
"$VDISK" convert --progress -q r.raw p5.vhd 2>prog || fail "convert -q"
[ ! -s prog ] || fail "convert -q printed: $(cat prog)"

# On a terminal (script(1) gives one): the bar, redrawn with \r, with the
# rate and the ETA, and a last line with the total time.
if command -v script >/dev/null; then
    script -qec "$VDISK convert r.raw p6.vhd" /dev/null > tty.out || fail "convert on a terminal"
    grep -q $'\r' tty.out || fail "no \\r on a terminal: $(cat -A tty.out)"
    tr '\r' '\n' < tty.out | grep -Eq '^converting \[#+\] 100\.0%  8 MiB  [0-9]+ MiB/s  in [0-9]+:[0-9]{2} ' ||
        fail "terminal progress: $(tr '\r' '\n' < tty.out)"
    tr '\r' '\n' < tty.out | grep -Eq 'MiB/s  ETA [0-9]+:[0-9]{2} ' || fail "no ETA on a terminal: $(tr '\r' '\n' < tty.out)"
    script -qec "$VDISK convert -q r.raw p7.vhd" /dev/null > tty.out || fail "convert -q on a terminal"
    [ ! -s tty.out ] || fail "convert -q on a terminal printed: $(cat -A tty.out)"
else
    echo "script(1) is not installed: terminal progress not checked"
fi

# vdisk status against getfattr, on a live mount's export.
need_fuse
mkdir -p "$T/exp"
vmount "$T/mnt" -o "export=$T/exp"
cp r.raw "$T/mnt/export/s.raw"
"$VDISK" status "$T/mnt/export/s.raw" > st || fail "vdisk status failed"
assert_eq "$(grep ^status: st)" "status: done $((8 << 20)) $(sha r.raw)" "status of a raw export"
if command -v getfattr >/dev/null; then
    want=$(getfattr -d -m '^user\.vdisk\.' --absolute-names "$T/mnt/export/s.raw" |
        sed -n 's/^user\.vdisk\.\([^=]*\)="\(.*\)"$/\1: \2/p')
    assert_eq "$(sort st)" "$(sort <<<"$want")" "vdisk status against getfattr"
else
    echo "getfattr is not installed: status checked against its own format only"
fi
"$VDISK" status --json "$T/mnt/export/s.raw" > st.json || fail "vdisk status --json failed"
python3 - st st.json <<'PY'
import json, sys
text = dict(l.rstrip("\n").split(": ", 1) for l in open(sys.argv[1]))
assert json.load(open(sys.argv[2])) == text, (text, open(sys.argv[2]).read())
PY
# The export/ folder: each export's lines, prefixed by its name, by name.
head -c $((1 << 20)) /dev/urandom > a.raw
cp a.raw "$T/mnt/export/a.raw"
"$VDISK" status "$T/mnt/export" > dir.st || fail "vdisk status of export/ failed"
grep -qx "a.raw: status: done $((1 << 20)) $(sha a.raw)" dir.st || fail "a.raw in export/: $(cat dir.st)"
"$VDISK" status "$T/mnt/export/a.raw" > a.st || fail "vdisk status a.raw"
assert_eq "$(cat dir.st)" "$(sed 's/^/a.raw: /' a.st; sed 's/^/s.raw: /' st)" "status of the export/ folder"
"$VDISK" status --json "$T/mnt/export" > dir.json || fail "vdisk status --json of export/ failed"
python3 - dir.st dir.json <<'PY'
import json, sys
want = {}
for l in open(sys.argv[1]):
    name, key, val = l.rstrip("\n").split(": ", 2)
    want.setdefault(name, {})[key] = val
assert json.load(open(sys.argv[2])) == want, (want, open(sys.argv[2]).read())
PY
rc=0; "$VDISK" status "$T/mnt/export/none.vhd" 2>err || rc=$?
assert_eq "$rc" 1 "status of a missing export"
assert_eq "$(cat err)" "vdisk: status: $T/mnt/export/none.vhd: No such file or directory" "missing export"
vumount "$T/mnt"
echo PASS
