#!/usr/bin/env bash
# A disk cut shorter than its partition table (a truncated copy): the
# overhanging partition is shown clipped, one that starts past the end is
# not shown, info.json says both, and check reports them (exit 2).
. "$VD_TEST_LIB"
need sfdisk python3

img=$T/pe.raw
truncate -s 30M "$img"
printf 'label: dos\n,20M,83\n,,83\n' | sfdisk -q "$img"
truncate -s 10M "$img"

python3 - <<PY
import json, subprocess
j = json.loads(subprocess.check_output(["$VDISK", "info", "--json", "$img"]))
pt = j["disks"][0]["partition_table"]
assert [p["view"] for p in pt["partitions"]] == ["disk-p1.raw"], pt
p1 = pt["partitions"][0]
assert p1["size"] == 10 * 2**20 - 2**20 and p1["table_size"] == 20 * 2**20, p1
assert pt["beyond_end"] == 1, pt
PY

rc=0
out=$("$VDISK" check "$img") || rc=$?
assert_eq "$rc" 2 "check exit code"
want="ERROR: pe.raw: partition 1 runs past the end of the disk: the table gives 20971520 bytes, 9437184 are present
ERROR: pe.raw: 1 partition(s) of the table start past the end of the disk (10485760 bytes)"
assert_eq "$out" "$want" "check output"

# An intact disk has no such lines.
truncate -s 30M "$img"
out=$("$VDISK" check "$img") || fail "intact disk: $out"
echo PASS
