/*
 * Unit tests for the Windows part of fixup (src/fixup/windows.c): the pure
 * helpers (control set names, the hive base block's clean/dirty check,
 * REG_MULTI_SZ address lists) on exact inputs and hostile ones, and the
 * case-insensitive, symlink-refusing lookup of Windows/System32/config/
 * SYSTEM on real temporary trees. The hive edits themselves are checked
 * against independent readers in tests/integration/t-fixup-windows.sh.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "vdisk/fixup.h"

static void test_controlset(void)
{
    char b[32];
    CHECK(vd_fixup_win_controlset(1, b, sizeof(b)) == 0 && !strcmp(b, "ControlSet001"), "1: %s", b);
    CHECK(vd_fixup_win_controlset(2, b, sizeof(b)) == 0 && !strcmp(b, "ControlSet002"), "2");
    CHECK(vd_fixup_win_controlset(999, b, sizeof(b)) == 0 && !strcmp(b, "ControlSet999"), "999");
    CHECK(vd_fixup_win_controlset(0, b, sizeof(b)) == -EINVAL, "0 is no control set");
    CHECK(vd_fixup_win_controlset(1000, b, sizeof(b)) == -EINVAL, "1000");
    CHECK(vd_fixup_win_controlset(0xffffffffUL, b, sizeof(b)) == -EINVAL, "0xffffffff");
    CHECK(vd_fixup_win_controlset(1, b, 13) == -EINVAL, "buffer too small");
}

static void test_hive_clean(void)
{
    unsigned char b[512] = "regf";
    b[4] = 7; /* primary sequence 7 */
    b[8] = 7; /* secondary sequence 7 */
    CHECK(vd_fixup_win_hive_clean(b, sizeof(b)) == 1, "equal sequences are clean");
    b[4] = 8;
    CHECK(vd_fixup_win_hive_clean(b, sizeof(b)) == 0, "differing sequences are dirty");
    b[4] = 7;
    b[11] = 1; /* high byte: 0x01000007 != 7 */
    CHECK(vd_fixup_win_hive_clean(b, sizeof(b)) == 0, "all four bytes compared");
    CHECK(vd_fixup_win_hive_clean(b, 511) == -EINVAL, "short base block");
    memcpy(b, "REGF", 4);
    CHECK(vd_fixup_win_hive_clean(b, sizeof(b)) == -EINVAL, "magic is case-sensitive");
    unsigned char z[512] = {0};
    CHECK(vd_fixup_win_hive_clean(z, sizeof(z)) == -EINVAL, "zeros");
}

/* UTF-16LE multi-string from ASCII pieces separated by '|' ("" = none). */
static size_t msz(const char *s, char *out, size_t cap, bool terminate)
{
    size_t o = 0;
    for (const char *p = s; *p && o + 2 <= cap; p++) {
        out[o++] = *p == '|' ? 0 : *p;
        out[o++] = 0;
    }
    if (*s && terminate && o + 2 <= cap) {
        out[o++] = 0;
        out[o++] = 0;
    }
    if (terminate && o + 2 <= cap) {
        out[o++] = 0;
        out[o++] = 0;
    }
    return o;
}

static void test_multisz(void)
{
    char in[256], out[64];
    size_t n = msz("192.168.10.20", in, sizeof(in), true);
    CHECK(vd_fixup_win_multisz_addrs(in, n, out, sizeof(out)) && !strcmp(out, "192.168.10.20"),
          "one address: %s", out);
    n = msz("10.0.0.5|10.0.0.6", in, sizeof(in), true);
    CHECK(vd_fixup_win_multisz_addrs(in, n, out, sizeof(out)) && !strcmp(out, "10.0.0.5, 10.0.0.6"),
          "two addresses: %s", out);
    n = msz("0.0.0.0", in, sizeof(in), true);
    CHECK(!vd_fixup_win_multisz_addrs(in, n, out, sizeof(out)) && !strcmp(out, "0.0.0.0"),
          "0.0.0.0 is no address: %s", out);
    n = msz("", in, sizeof(in), true);
    CHECK(!vd_fixup_win_multisz_addrs(in, n, out, sizeof(out)) && !strcmp(out, ""), "empty");
    CHECK(!vd_fixup_win_multisz_addrs(in, 0, out, sizeof(out)) && !strcmp(out, ""), "no bytes");
    /* not terminated, odd length: the last whole character counts */
    n = msz("10.1.2.3", in, sizeof(in), false);
    CHECK(vd_fixup_win_multisz_addrs(in, n + 1, out, sizeof(out)) && !strcmp(out, "10.1.2.3"),
          "unterminated: %s", out);
    /* non-ASCII becomes '?' */
    in[0] = 0x34;
    in[1] = 0x12;
    in[2] = in[3] = in[4] = in[5] = 0;
    CHECK(vd_fixup_win_multisz_addrs(in, 6, out, sizeof(out)) && !strcmp(out, "?"), "non-ASCII: %s",
          out);
    /* a small output buffer truncates and stays terminated */
    n = msz("192.168.100.200|192.168.100.201", in, sizeof(in), true);
    char tiny[8];
    memset(tiny, 'x', sizeof(tiny));
    CHECK(vd_fixup_win_multisz_addrs(in, n, tiny, sizeof(tiny)), "small buffer: has address");
    CHECK(memchr(tiny, '\0', sizeof(tiny)) != NULL, "small buffer: terminated");
    /* a string longer than 63 characters is cut, not overflowed */
    char longs[200];
    memset(longs, '1', 150);
    longs[150] = '\0';
    n = msz(longs, in, sizeof(in), true);
    CHECK(vd_fixup_win_multisz_addrs(in, n, out, sizeof(out)) && strlen(out) == 63,
          "long string: %zu", strlen(out));
    CHECK(vd_fixup_win_multisz_addrs(in, n, NULL, 0), "no output buffer");
}

static void test_drivers(void)
{
    bool ahci = false, nvme = false, ide = false;
    size_t n = 0;
    for (; vd_fixup_win_boot_drivers[n]; n++) {
        ahci |= !strcmp(vd_fixup_win_boot_drivers[n], "storahci");
        nvme |= !strcmp(vd_fixup_win_boot_drivers[n], "stornvme");
        ide |= !strcmp(vd_fixup_win_boot_drivers[n], "atapi");
    }
    CHECK(n > 0 && n < 32 && ahci && nvme && ide, "driver list (%zu)", n);
}

static void mk(const char *path)
{
    FILE *f = fopen(path, "w");
    if (f) {
        fputs("not a hive", f);
        fclose(f);
    }
}

static void test_locate(void)
{
    char base[] = "/tmp/vd_fixwin.XXXXXX", p[512];
    if (!mkdtemp(base)) {
        CHECK(0, "mkdtemp");
        return;
    }
    CHECK(!vd_fixup_is_windows_root(base), "empty folder");
    snprintf(p, sizeof(p), "%s/WINDOWS", base);
    mkdir(p, 0755);
    snprintf(p, sizeof(p), "%s/WINDOWS/system32", base);
    mkdir(p, 0755);
    snprintf(p, sizeof(p), "%s/WINDOWS/system32/Config", base);
    mkdir(p, 0755);
    CHECK(!vd_fixup_is_windows_root(base), "no SYSTEM file");
    snprintf(p, sizeof(p), "%s/WINDOWS/system32/Config/system", base);
    mkdir(p, 0755);
    CHECK(!vd_fixup_is_windows_root(base), "SYSTEM is a folder");
    rmdir(p);
    mk(p);
    CHECK(vd_fixup_is_windows_root(base), "case-insensitive path");

    /* not a hive: exact message, nothing written */
    struct vd_error err = {0};
    struct vd_fixup_opts o = {.profile = "aws"};
    int r = vd_fixup_windows_root(base, &o, NULL, NULL, &err);
    char want[700];
    snprintf(want, sizeof(want),
             "fixup: %s/WINDOWS/system32/Config/system: not a registry hive (no regf header)",
             base);
    CHECK(r == -EINVAL, "not a hive: %d", r);
    CHECK_MSG(err, want);

    /* a symlinked SYSTEM is not followed */
    char q[512];
    snprintf(q, sizeof(q), "%s/target", base);
    mk(q);
    unlink(p);
    CHECK(symlink(q, p) == 0, "symlink");
    CHECK(!vd_fixup_is_windows_root(base), "symlinked SYSTEM refused");
    struct vd_error e2 = {0};
    r = vd_fixup_windows_root(base, &o, NULL, NULL, &e2);
    snprintf(want, sizeof(want),
             "fixup: %s: not a Windows root (no Windows/System32/config/SYSTEM): No such file or "
             "directory",
             base);
    CHECK(r == -ENOENT, "symlink: %d", r);
    CHECK_MSG(e2, want);
    unlink(p);
    unlink(q);

    struct vd_error e3 = {0};
    struct vd_fixup_opts bad = {.profile = "azure"};
    CHECK(vd_fixup_windows_root(base, &bad, NULL, NULL, &e3) == -ENOTSUP, "unknown profile");
    CHECK_MSG(e3, "fixup: profile 'azure' is not known (only 'aws')");

    snprintf(p, sizeof(p), "%s/WINDOWS/system32/Config", base);
    rmdir(p);
    snprintf(p, sizeof(p), "%s/WINDOWS/system32", base);
    rmdir(p);
    snprintf(p, sizeof(p), "%s/WINDOWS", base);
    rmdir(p);
    rmdir(base);
}

int main(void)
{
    test_controlset();
    test_hive_clean();
    test_multisz();
    test_drivers();
    test_locate();
    return failures != 0;
}
