#!/usr/bin/env bash
# Bash completion (data/bash-completion/, issue 14): sourced into a fresh
# bash, with and without bash-completion's own library loaded, it registers
# `complete -F _vdisk vdisk` and `complete -F _vdiskfs vdiskfs`, and the
# COMPREPLY of typed lines is checked: `vdisk conv` -> convert, `vdiskfs -o
# overl` -> overlay=, option values, files. The lists are checked against
# the sources: every command main() of tools/vdisk.c dispatches, every long
# option of each command's struct option table, and every -o name that
# fusefs/vdiskfs.c, fusefs/export.c and src/export/export.c accept must be
# offered, so a new option without completion fails here. Last, CMake
# installs both files where bash-completion looks (prefix /usr) and under
# another prefix given at install time.
. "$VD_TEST_LIB"
need bash cmake
SRC_ROOT=$(cd "$(dirname "$VD_TEST_LIB")/../.." && pwd)
COMP_DIR=${VD_COMPLETION_DIR:-$SRC_ROOT/data/bash-completion}
[ -r "$COMP_DIR/vdisk" ] && [ -r "$COMP_DIR/vdiskfs" ] || fail "no completion files in $COMP_DIR"
BASH_COMPLETION_LIB=/usr/share/bash-completion/bash_completion

# A driver run by a fresh bash: comp [LIB] LINE prints COMPREPLY, one per
# line, for LINE typed with the cursor at its end. COMP_WORDS is split as
# readline does: at blanks, and COMP_WORDBREAKS characters (= and :) are
# words of their own.
cat > "$T/driver.sh" <<'DRIVER'
lib=$1 dir=$2 line=$3
[ -n "$lib" ] && . "$lib"
# bash-completion loads each file on demand, by command name: vdiskfs's
# must work without vdisk's having been loaded (ONLY_VDISKFS=1).
[ -n "${ONLY_VDISKFS:-}" ] || . "$dir/vdisk"
. "$dir/vdiskfs"
if [ "$line" = "complete -p" ]; then complete -p vdisk vdiskfs; exit; fi
breaks=${COMP_WORDBREAKS// /}
breaks=${breaks//$'\t'/}
breaks=${breaks//$'\n'/}
COMP_WORDS=() w='' kind=''
for ((i = 0; i < ${#line}; i++)); do
    c=${line:i:1}
    if [[ $c == [[:space:]] ]]; then
        [ -n "$w" ] && COMP_WORDS+=("$w")
        w='' kind=''
    elif [[ $breaks == *"$c"* ]]; then
        [ -n "$w" ] && [ "$kind" != b ] && { COMP_WORDS+=("$w"); w=''; }
        w+=$c kind=b
    else
        [ -n "$w" ] && [ "$kind" = b ] && { COMP_WORDS+=("$w"); w=''; }
        w+=$c kind=w
    fi
done
if [ "$kind" = b ]; then COMP_WORDS+=("$w" ''); else COMP_WORDS+=("$w"); fi
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
COMP_LINE=$line COMP_POINT=${#line}
COMPREPLY=()
fn=$(complete -p "${COMP_WORDS[0]}" | sed -n 's/.*-F \([^ ]*\) .*/\1/p')
"$fn" "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
printf '%s\n' "${COMPREPLY[@]}"
DRIVER

for lib in "" "$BASH_COMPLETION_LIB"; do
    if [ -n "$lib" ] && [ ! -r "$lib" ]; then
        echo "bash-completion is not installed: checked without its library only"
        continue
    fi
    comp() { (cd "$T" && bash --norc --noprofile "$T/driver.sh" "$lib" "$COMP_DIR" "$1"); }
    # expect LINE WANT...: COMPREPLY is exactly WANT (sorted).
    expect() {
        local line=$1 got want
        shift
        got=$(comp "$line" | sort | tr '\n' ' ')
        want=$(printf '%s\n' "$@" | sort | tr '\n' ' ')
        assert_eq "$got" "$want" "completion of '$line'${lib:+ (with bash-completion)}"
    }
    # offers LINE WORD...: COMPREPLY contains each WORD.
    offers() {
        local line=$1 got w
        shift
        got=$(comp "$line")
        for w in "$@"; do
            grep -qxF -- "$w" <<<"$got" ||
                fail "completion of '$line'${lib:+ (with bash-completion)} lacks '$w': got $(tr '\n' ' ' <<<"$got")"
        done
    }

    assert_eq "$(comp "complete -p")" "complete -F _vdisk vdisk
complete -F _vdiskfs vdiskfs" "complete -p vdisk vdiskfs"
    expect "vdisk conv" convert
    got=$(ONLY_VDISKFS=1 comp "vdiskfs -o ro,vmdk_type=str")
    assert_eq "$got" streamOptimized "vdiskfs completion loaded alone"
    expect "vdisk pre" preflight
    expect "vdiskfs -o overl" overlay=
    expect "vdiskfs -o ro,overl" ro,overlay=
    expect "vdiskfs -oro,for" -oro,format=
    expect "vdiskfs -o format=vh" vhd vhdx
    expect "vdiskfs -o ro,vmdk_type=mono" monolithicSparse
    expect "vdisk convert -O vh" vhd vhdx
    expect "vdisk hash --format=vh" vhd vhdx
    # Bash completes the word after the last "=": the reply starts there.
    expect "vdisk convert -o vhd_type=fixed,ova_" fixed,ova_manifest=
    expect "vdisk preflight --route import-s" import-snapshot
    expect "vdisk info --js" --json
    expect "vdisk check --" --format --allow-path --help
    expect "vdiskfs --h" --help
    # Sources and overlay files are paths.
    mkdir -p "$T/imgs/sub"
    : > "$T/imgs/web01.vmdk"
    : > "$T/imgs/web01.ovl"
    expect "vdisk info imgs/web" imgs/web01.ovl imgs/web01.vmdk
    expect "vdiskfs imgs/web01.v" imgs/web01.vmdk
    expect "vdiskfs -o overlay=imgs/web01.o" imgs/web01.ovl
    expect "vdisk fixup --root imgs/s" imgs/sub
    # A blank in a file name stays inside one candidate.
    : > "$T/imgs/my disk.ovl"
    expect "vdisk hash --overlay imgs/my" "imgs/my disk.ovl"
    expect "vdiskfs -o ro,overlay=imgs/my" "imgs/my disk.ovl"

    # Every command main() dispatches (strcmp(cmd, "NAME")).
    cmds=$(sed -n '/^int main/,/^}/ s/.*!strcmp(cmd, "\([a-z][a-z-]*\)").*/\1/p' "$SRC_ROOT/tools/vdisk.c" |
        grep -vx help)
    [ -n "$cmds" ] || fail "found no command in tools/vdisk.c's main()"
    offers "vdisk " $cmds
    # Every long option of each command's table (the cmd_NAME function).
    for cmd in $cmds; do
        opts=$(awk -v f="cmd_$cmd" '
            $0 ~ "^static int " f "\\(" { on = 1 }
            on && /^}/ { exit }
            on { while (match($0, /\{"[a-z][a-z0-9-]*", *(no|required|optional)_argument/)) {
                     s = substr($0, RSTART + 2); sub(/".*/, "", s); print "--" s
                     $0 = substr($0, RSTART + RLENGTH) } }' "$SRC_ROOT/tools/vdisk.c")
        [ -n "$opts" ] || fail "found no option table for cmd_$cmd in tools/vdisk.c"
        offers "vdisk $cmd --" $opts
    done
    # Every -o name of vdiskfs (handle_opt), of export/ (export_opt) and of
    # the encoders (vd_export_opt), which vdisk convert -o takes too.
    # names FILE FUNCTION VAR: the strings FUNCTION compares VAR with.
    names() {
        sed -n "/^$2(/,/^}/p" "$SRC_ROOT/$1" | grep -o "strcmp($3, \"[a-z_]*\")" |
            sed 's/.*"\(.*\)".*/\1/' | sort -u
    }
    keys=$(names fusefs/vdiskfs.c 'static int handle_opt' item)
    enc=$(names src/export/export.c 'int vd_export_opt' key)
    xk=$(names fusefs/export.c 'int export_opt' key)
    [ -n "$keys" ] && [ -n "$enc" ] && [ -n "$xk" ] || fail "found no -o names in the sources"
    got=$(comp "vdiskfs -o ")
    for k in $keys $xk $enc; do
        grep -qE -- "^$k=?\$" <<<"$got" || fail "vdiskfs -o completion lacks '$k': got $(tr '\n' ' ' <<<"$got")"
    done
    got=$(comp "vdisk convert -o ")
    for k in $enc; do
        grep -qx -- "$k=" <<<"$got" || fail "vdisk convert -o completion lacks '$k=': got $(tr '\n' ' ' <<<"$got")"
    done
    echo "ok: completion${lib:+ with bash-completion}"
done

# CMake installs both where bash-completion looks for them.
if [ -n "${VD_BUILD_DIR:-}" ] && [ -f "$VD_BUILD_DIR/cmake_install.cmake" ]; then
    pfx=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$VD_BUILD_DIR/CMakeCache.txt")
    DESTDIR=$T/dest cmake --install "$VD_BUILD_DIR" > "$T/install.log" 2>&1 ||
        { cat "$T/install.log" >&2; fail "cmake --install"; }
    for f in vdisk vdiskfs; do
        cmp -s "$COMP_DIR/$f" "$T/dest$pfx/share/bash-completion/completions/$f" ||
            fail "cmake --install: no $pfx/share/bash-completion/completions/$f"
    done
    # A prefix given at install time moves the completion along.
    cmake --install "$VD_BUILD_DIR" --prefix "$T/p" > "$T/install.log" 2>&1 ||
        { cat "$T/install.log" >&2; fail "cmake --install --prefix"; }
    [ -f "$T/p/share/bash-completion/completions/vdiskfs" ] ||
        fail "cmake --install --prefix $T/p: completion not under the prefix: $(grep -i complet "$T/install.log")"
    echo "ok: cmake --install"
else
    echo "no VD_BUILD_DIR: install rules not checked"
fi
echo ok
