/*
 * Fuzz the fixup rewriters (include/vdisk/fixup.h): every input goes
 * through fstab, /etc/default/grub, grub.cfg, interfaces, ifcfg, netplan,
 * systemd-networkd, NetworkManager keyfile, BLS entry, grubenv and GRUB
 * legacy rewriters; each result goes through the diff against
 * the input and must be a fixed point of a second pass (the rewriters are idempotent). The device
 * path parser gets the input too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vdisk/fixup.h"

static const struct vd_fixup_dev fuzz_devs[] = {
    {.disk = 1, .part = 1, .uuid = "0f3c5a2e-8d1b-4c55-9a7e-2b6d4f1e9a01", .type = "ext4"},
    {.disk = 1, .part = 2, .uuid = "7d2e4b19-31c6-4f08-b0a3-5e8c1d2f6b02", .type = "swap"},
    {.disk = 2, .part = 0, .uuid = "c1a9e3d7-5b2f-4e61-8d04-9f7a3b6c2e05", .type = "xfs"},
};
static const struct vd_fixup_devmap fuzz_map = {
    .n = 3, .devs = (struct vd_fixup_dev *)fuzz_devs, .ndisks = 2};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fuzz_rewrite(int k, const char *in, size_t len, struct vd_fixup_buf *out,
                        struct vd_fixup_buf *why, struct vd_error *err)
{
    switch (k) {
    case 0:
        return vd_fixup_fstab(in, len, &fuzz_map, out, why, err);
    case 1:
        return vd_fixup_grub_default(in, len, &fuzz_map, out, why, err);
    case 2:
        return vd_fixup_grub_cfg(in, len, &fuzz_map, out, why, err);
    case 3:
        return vd_fixup_interfaces(in, len, NULL, out, why, err);
    case 4:
        return vd_fixup_ifcfg(in, len, NULL, out, why, err);
    case 5:
        return vd_fixup_netplan(in, len, NULL, out, why, err);
    case 6:
        return vd_fixup_networkd(in, len, NULL, out, why, err);
    case 7:
        return vd_fixup_nmconnection(in, len, out, why, err);
    case 8:
        return vd_fixup_bls_entry(in, len, &fuzz_map, out, why, err);
    case 9:
        return vd_fixup_grubenv(in, len, &fuzz_map, out, why, err);
    default:
        return vd_fixup_grub_legacy(in, len, &fuzz_map, out, why, err);
    }
}

static void fuzz_one(int k, const char *in, size_t len)
{
    struct vd_fixup_buf out = {0}, why = {0}, out2 = {0}, why2 = {0}, diff = {0};
    struct vd_error err = {0};
    int rc = fuzz_rewrite(k, in, len, &out, &why, &err);
    if (rc >= 0) {
        if (!out.data || strlen(out.data) != out.len)
            abort();
        (void)vd_fixup_diff(in, len, out.data, out.len, &diff, &err);
        if (rc == 0 && (out.len != len || memcmp(out.data, in, len)))
            abort(); /* "unchanged" must mean byte for byte */
        if (rc == 1 && fuzz_rewrite(k, out.data, out.len, &out2, &why2, &err) != 0)
            abort(); /* a second pass finds nothing left to do */
    }
    vd_fixup_buf_free(&out);
    vd_fixup_buf_free(&why);
    vd_fixup_buf_free(&out2);
    vd_fixup_buf_free(&why2);
    vd_fixup_buf_free(&diff);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    for (int k = 0; k < 11; k++)
        fuzz_one(k, in, size);
    unsigned d, p;
    (void)vd_fixup_parse_devpath(in, size, &d, &p);
    return 0;
}
