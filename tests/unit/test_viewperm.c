/* The permissions of the views (fusefs/viewperm.c): the reach mask of the
 * directories above a source, the kernel's access rule, and the owner and
 * mode each kind of mount gives, including the mounting user who is not
 * root (t-mount-perms can only mount as root here: /dev/fuse is root's). */
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
/* vdiskfs' own file, not part of libvdisk: compiled into this test. */
#include "../../fusefs/viewperm.c"

static struct stat node(uid_t uid, gid_t gid, mode_t mode)
{
    struct stat st;
    memset(&st, 0, sizeof(st));
    st.st_uid = uid;
    st.st_gid = gid;
    st.st_mode = mode;
    return st;
}

#define CHECK_ATTR(a, u, g, m)                                                                     \
    CHECK((a).uid == (u) && (a).gid == (g) && (a).mode == (m), "%s: got %u %u %o, want %u %u %o",  \
          #a, (unsigned)(a).uid, (unsigned)(a).gid, (unsigned)(a).mode, (unsigned)(u),             \
          (unsigned)(g), (unsigned)(m))

static void test_reach(void)
{
    struct stat f = node(0, 0, S_IFREG | 0644);
    struct stat root = node(0, 0, S_IFDIR | 0755);
    CHECK(viewperm_reach_mask(&f, &root, 1) == 0777, "open directories keep every class");
    struct stat d[2] = {node(0, 0, S_IFDIR | 0700), root};
    CHECK(viewperm_reach_mask(&f, d, 2) == 0700, "0700 dir: owner only");
    /* root:42 0750 above a root:root file: others of the file may or may not
     * be in group 42; the file's group (root) members may be too. */
    d[0] = node(0, 42, S_IFDIR | 0750);
    CHECK(viewperm_reach_mask(&f, d, 2) == 0700, "0750 dir of another group: %o",
          (unsigned)viewperm_reach_mask(&f, d, 2));
    /* The same directory above a file of group 42: the group keeps its bits. */
    f = node(0, 42, S_IFREG | 0640);
    CHECK(viewperm_reach_mask(&f, d, 2) == 0770, "0750 dir of the file's group");
    /* root's 0701 above alice's file: whoever is in group root is refused
     * and may be any of the file's classes, so no class is sure to pass. */
    f = node(1000, 1000, S_IFREG | 0644);
    d[0] = node(0, 0, S_IFDIR | 0701);
    CHECK(viewperm_reach_mask(&f, d, 2) == 0, "0701 dir: %o",
          (unsigned)viewperm_reach_mask(&f, d, 2));
    d[0] = node(0, 0, S_IFDIR | 0711);
    CHECK(viewperm_reach_mask(&f, d, 2) == 0777, "0711 dir: everyone passes");
    /* The owner's own 0700 home: the owner passes, nobody else. */
    d[0] = node(1000, 1000, S_IFDIR | 0700);
    CHECK(viewperm_reach_mask(&f, d, 2) == 0700, "owner's 0700 home");
}

static void test_may(void)
{
    gid_t sup[] = {42};
    struct viewperm_cred root = {0, 0, NULL, 0}, alice = {1000, 1000, NULL, 0},
                         bob = {1001, 1001, sup, 1};
    struct viewperm_attr a = {1000, 42, 0044};
    CHECK(viewperm_may(&a, &root, R_OK | W_OK), "root passes");
    CHECK(!viewperm_may(&a, &alice, R_OK), "the owner gets the owner bits, not other's");
    CHECK(viewperm_may(&a, &bob, R_OK), "a supplementary group counts");
    CHECK(!viewperm_may(&a, &bob, W_OK), "no write bit");
    a.mode = 0640;
    CHECK(viewperm_may(&a, &alice, R_OK | W_OK), "owner rw");
}

static void test_views(void)
{
    struct viewperm_cred root = {0, 0, NULL, 0}, alice = {1000, 1000, NULL, 0};
    struct viewperm v;

    /* The case: 0600 root image, read-only mount by root. */
    struct stat f = node(0, 0, S_IFREG | 0600);
    viewperm_from_stat(&f, 0777, VIEWPERM_RO, &root, &v);
    CHECK_ATTR(v.data, 0, 0, 0400);
    CHECK_ATTR(v.disk, 0, 0, 0400);
    CHECK_ATTR(v.dir, 0, 0, 0500);
    /* setuid, sticky and x bits never reach a view. */
    f = node(7, 8, S_IFREG | 04755);
    viewperm_from_stat(&f, 0777, VIEWPERM_RO, &root, &v);
    CHECK_ATTR(v.disk, 7, 8, 0444);
    CHECK_ATTR(v.dir, 7, 8, 0555);
    /* -o rw keeps the source's write bits on the disks only. */
    f = node(7, 8, S_IFREG | 0664);
    viewperm_from_stat(&f, 0777, VIEWPERM_RW, &root, &v);
    CHECK_ATTR(v.disk, 7, 8, 0664);
    CHECK_ATTR(v.data, 7, 8, 0444);
    /* ... less what the directories take away. */
    viewperm_from_stat(&f, 0700, VIEWPERM_RW, &root, &v);
    CHECK_ATTR(v.disk, 7, 8, 0600);
    /* Overlay: the mounting user's, others read what they could. */
    viewperm_from_stat(&f, 0777, VIEWPERM_OVERLAY, &root, &v);
    CHECK_ATTR(v.disk, 0, 8, 0644);
    CHECK_ATTR(v.data, 0, 8, 0444);
    f = node(7, 8, S_IFREG | 0444); /* evidence: read-only, still writable via the overlay */
    viewperm_from_stat(&f, 0777, VIEWPERM_OVERLAY, &alice, &v);
    CHECK_ATTR(v.disk, 1000, 8, 0644);
    f = node(7, 8, S_IFREG | 0600);
    viewperm_from_stat(&f, 0777, VIEWPERM_OVERLAY, &root, &v);
    CHECK_ATTR(v.disk, 0, 8, 0600);
    CHECK_ATTR(v.dir, 0, 8, 0500);

    /* alice mounts her own image: hers, as it was. */
    f = node(1000, 1000, S_IFREG | 0640);
    viewperm_from_stat(&f, 0777, VIEWPERM_RO, &alice, &v);
    CHECK_ATTR(v.disk, 1000, 1000, 0440);
    /* alice read root's 0644 image through a directory whose group she is
     * in (root:42 0750; her groups are not known to the rule): the reach
     * mask leaves owner bits only, so the views become hers, and nobody
     * else's bits grow. */
    f = node(0, 0, S_IFREG | 0644);
    viewperm_from_stat(&f, 0700, VIEWPERM_RO, &alice, &v);
    CHECK_ATTR(v.disk, 1000, 0, 0400);
    CHECK_ATTR(v.data, 1000, 0, 0400);
    CHECK_ATTR(v.dir, 1000, 0, 0500);
    viewperm_from_stat(&f, 0700, VIEWPERM_RW, &alice, &v);
    CHECK_ATTR(v.disk, 1000, 0, 0600);
    CHECK_ATTR(v.data, 1000, 0, 0400);

    /* No stat to copy: the mounting user's only. */
    viewperm_private(VIEWPERM_RO, &alice, &v);
    CHECK_ATTR(v.disk, 1000, 1000, 0400);
    CHECK_ATTR(v.dir, 1000, 1000, 0500);
    viewperm_private(VIEWPERM_OVERLAY, &alice, &v);
    CHECK_ATTR(v.disk, 1000, 1000, 0600);
    CHECK_ATTR(v.data, 1000, 1000, 0400);
}

/* On the real filesystem: a 0644 file in a 0700 directory of ours. */
static void test_for_source(void)
{
    char dir[] = "/tmp/vdviewpermXXXXXX", path[64];
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return;
    }
    snprintf(path, sizeof(path), "%s/x.img", dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL, "create %s", path);
    if (f)
        fclose(f);
    chmod(path, 0644);
    struct viewperm v;
    viewperm_for_source(path, VIEWPERM_RO, &v);
    CHECK_ATTR(v.disk, getuid(), getgid(), 0400);
    chmod(dir, 0755);
    viewperm_for_source(path, VIEWPERM_RO, &v);
    /* /tmp is 1777 root, every directory above passes (unless TMPDIR games). */
    CHECK_ATTR(v.disk, getuid(), getgid(), 0444);
    unlink(path);
    rmdir(dir);
    viewperm_for_source(path, VIEWPERM_RO, &v); /* gone: private */
    CHECK_ATTR(v.disk, getuid(), getgid(), 0400);
    viewperm_for_source("s3://bucket/x.vmdk", VIEWPERM_OVERLAY, &v);
    CHECK_ATTR(v.disk, getuid(), getgid(), 0600);
    CHECK_ATTR(v.data, getuid(), getgid(), 0400);
}

int main(void)
{
    test_reach();
    test_may();
    test_views();
    test_for_source();
    if (failures)
        fprintf(stderr, "%d failure(s)\n", failures);
    return failures != 0;
}
