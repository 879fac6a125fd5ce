/*
 * Declared metadata ranges of an image (src/core/image.c):
 * vd_image_declare_meta merges, vd_image_forget_meta trims, drops and
 * splits, and vd_image_meta_overlap answers from what is left.
 */
#include <errno.h>
#include <stdlib.h>

#include "check.h"
#include "core/driver.h"
#include "io/mem.h"

static uint8_t file[1 << 16];

static bool covered(struct vd_image *img, uint64_t off, uint64_t len)
{
    return vd_image_meta_overlap(img, img->io, off, len) != NULL;
}

static void test_forget(void)
{
    struct vd_io *io;
    struct vd_error err = {0};
    struct vd_image *img = NULL;
    struct vd_open_opts o = {.format = "raw"};
    CHECK(vd_io_mem_open(file, sizeof(file), "m.raw", &io, &err) == 0, "mem open");
    CHECK(vd_image_open_io(io, "m.raw", &o, 0, &img, &err) == 0, "open: %s", err.msg);
    if (!img)
        return;
    CHECK(vd_image_declare_meta(img, img->io, 0, 512, "a", &err) == 0, "declare a");
    CHECK(vd_image_declare_meta(img, img->io, 512, 1024, "b", &err) == 0, "declare b");
    CHECK(vd_image_declare_meta(img, img->io, 4096, 512, "c", &err) == 0, "declare c");
    /* touching ranges merge only under one name (so messages name the
     * right table); a and b stay apart */
    CHECK(img->nmeta == 3, "adjacent ranges of two names: %zu", img->nmeta);
    CHECK(vd_image_declare_meta(img, img->io, 4608, 512, "c", &err) == 0, "declare c again");
    CHECK(img->nmeta == 3, "touching ranges of one name merge: %zu", img->nmeta);
    CHECK(vd_image_forget_meta(img, img->io, 4608, 512, &err) == 0, "forget c's tail");

    /* the tail of a range */
    CHECK(vd_image_forget_meta(img, img->io, 1024, 512, &err) == 0, "forget tail");
    CHECK(covered(img, 1023, 1) && !covered(img, 1024, 512), "tail forgotten");
    /* a whole range */
    CHECK(vd_image_forget_meta(img, img->io, 4096, 512, &err) == 0, "forget c");
    CHECK(img->nmeta == 2 && !covered(img, 4096, 512), "c dropped");
    /* the middle: a split */
    CHECK(vd_image_forget_meta(img, img->io, 100, 200, &err) == 0, "forget middle");
    CHECK(img->nmeta == 3, "split: %zu ranges", img->nmeta);
    CHECK(covered(img, 99, 1) && !covered(img, 100, 200) && covered(img, 300, 1), "split ranges");
    CHECK(!strcmp(img->meta[1].what, "a"), "the split keeps its name: %s", img->meta[1].what);
    /* the head, and a range spanning two declared ones */
    CHECK(vd_image_forget_meta(img, img->io, 0, 50, &err) == 0, "forget head");
    CHECK(!covered(img, 0, 50) && covered(img, 50, 1), "head forgotten");
    CHECK(vd_image_forget_meta(img, img->io, 60, 400, &err) == 0, "forget across");
    CHECK(covered(img, 50, 10) && !covered(img, 60, 400) && covered(img, 460, 1) &&
              !covered(img, 1024, 1),
          "across");
    /* nothing declared there; empty; wrapping */
    CHECK(vd_image_forget_meta(img, img->io, 9000, 10, &err) == 0, "forget nothing");
    CHECK(vd_image_forget_meta(img, img->io, 9000, 0, &err) == 0, "forget empty");
    CHECK(vd_image_forget_meta(img, img->io, UINT64_MAX, 2, &err) == -EINVAL, "wrap");
    vd_image_close(img);
}

int main(void)
{
    test_forget();
    if (failures)
        fprintf(stderr, "%d failures\n", failures);
    else
        printf("ok\n");
    return failures ? 1 : 0;
}
