/*
 * VMDK driver tests: every VMDK sample in tests/data/samples gives the
 * sha256 that qemu-img 7.2 gives (INDEX.md) or the exact error we promise;
 * crafted corrupt images (from memory) give exact messages; the descriptor
 * parser is tested directly. `test_vmdk hash FILE` prints a digest (used by
 * tests/integration/t-vmdk*.sh until `vdisk hash` exists).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/byteorder.h"
#include "common/codec.h"
#include "core/driver.h"
#include "formats/vmdk.h"
#include "io/mem.h"
#include "vdisk/vdisk.h"

static int failures;
static char tmpdir[] = "/tmp/vdtest-vmdk.XXXXXX";

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

/* Open path and hash disk 0; returns 0 and the hex digest, or -errno and
 * the error message in out. */
static int hash_file(const char *path, char *out, size_t outlen)
{
    struct vd_error err = {0};
    struct vd_source *src = NULL;
    int r = vd_source_open(path, NULL, &src, &err);
    if (r == 0) {
        char hex[129];
        r = vd_image_hash(vd_source_disk(src, 0), "sha256", hex, NULL, NULL, &err);
        if (r == 0)
            snprintf(out, outlen, "%s", hex);
    }
    if (r < 0)
        snprintf(out, outlen, "%s", err.msg);
    vd_source_close(src);
    return r;
}

/* ---- descriptor parser ---- */

static void test_desc(void)
{
    static const char ok[] = "# Disk DescriptorFile\r\n"
                             "version=1\n"
                             "CID=0a1B2c3d\n"
                             "parentCID=ffffffff\n"
                             "createType=\"twoGbMaxExtentSparse\"\n"
                             "parentFileNameHint=\"C:\\VMs\\base.vmdk\"\n"
                             "  RW 4192256 SPARSE \"disk s001.vmdk\"\n"
                             "RDONLY 100 ZERO\n"
                             "NOACCESS 8 FLAT \"f.bin\" 2048\n"
                             "RW 16 VMFSSPARSE \"d-delta.vmdk\"\n"
                             "junk line without equals\n"
                             "ddb.adapterType = \"lsilogic\"\n"
                             "ddb.virtualHWVersion=\"14\"\n"
                             "ddb.logicalSectorSize = \"4096\"\n\0garbage after NUL\n";
    struct vmdk_desc d;
    struct vd_error err = {0};
    int r = vd_vmdk_desc_parse(ok, sizeof(ok) - 1, "d.vmdk", &d, &err);
    CHECK(r == 0, "parse: %s", err.msg);
    if (r == 0) {
        CHECK(d.cid == 0x0a1b2c3d && d.parent_cid == 0xffffffff, "cids %x %x", d.cid, d.parent_cid);
        CHECK(!strcmp(d.create_type, "twoGbMaxExtentSparse"), "createType");
        CHECK(!strcmp(d.parent_hint, "C:\\VMs\\base.vmdk"), "hint %s", d.parent_hint);
        CHECK(!strcmp(d.adapter_type, "lsilogic") && !strcmp(d.hw_version, "14"), "ddb");
        CHECK(d.logical_sector == 4096, "logicalSectorSize %u", (unsigned)d.logical_sector);
        CHECK(d.nextents == 4, "nextents %zu", d.nextents);
        CHECK(d.extents[0].access == VMDK_RW && d.extents[0].sectors == 4192256 &&
                  d.extents[0].type == VMDK_EXT_SPARSE &&
                  !strcmp(d.extents[0].file, "disk s001.vmdk"),
              "extent 0");
        CHECK(d.extents[1].type == VMDK_EXT_ZERO && !d.extents[1].file &&
                  d.extents[1].access == VMDK_RDONLY,
              "extent 1");
        CHECK(d.extents[2].access == VMDK_NOACCESS && d.extents[2].offset == 2048, "extent 2");
        CHECK(d.extents[3].type == VMDK_EXT_VMFSSPARSE, "extent 3");
        vd_vmdk_desc_free(&d);
    }
    static const struct {
        const char *text, *msg;
    } bad[] = {
        {"RW x SPARSE \"a\"\n", "vmdk: d.vmdk: descriptor line 1: bad extent size 'x'"},
        {"RW 0 SPARSE \"a\"\n", "vmdk: d.vmdk: descriptor line 1: bad extent size '0'"},
        {"\nRW 8 SPARSY \"a\"\n", "vmdk: d.vmdk: descriptor line 2: unknown extent type 'SPARSY'"},
        {"RW 8 FLAT a.bin\n",
         "vmdk: d.vmdk: descriptor line 1: FLAT extent has no quoted file name"},
        {"RW 8 FLAT \"a.bin\n",
         "vmdk: d.vmdk: descriptor line 1: extent file name is empty or unterminated"},
        {"RW 8 FLAT \"\"\n",
         "vmdk: d.vmdk: descriptor line 1: extent file name is empty or unterminated"},
        {"RW 8 FLAT \"a\" -1\n", "vmdk: d.vmdk: descriptor line 1: bad extent offset"},
        {"RW 99999999999999999999 ZERO\n",
         "vmdk: d.vmdk: descriptor line 1: bad extent size '99999999999999999999'"},
        {"CID=xyz\n", "vmdk: d.vmdk: descriptor line 1: bad CID 'xyz'"},
        {"parentCID=123456789\n", "vmdk: d.vmdk: descriptor line 1: bad parentCID '123456789'"},
        {"version=abc\n", "vmdk: d.vmdk: descriptor line 1: bad version"},
        {"ddb.logicalSectorSize = \"1024\"\n",
         "vmdk: d.vmdk: descriptor line 1: ddb.logicalSectorSize '1024' is not 512 or 4096"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct vd_error e = {0};
        r = vd_vmdk_desc_parse(bad[i].text, strlen(bad[i].text), "d.vmdk", &d, &e);
        CHECK(r == -EINVAL && !strcmp(e.msg, bad[i].msg), "bad[%zu]: r=%d '%s', want '%s'", i, r,
              e.msg, bad[i].msg);
    }
}

/* ---- codec ---- */

static void test_codec(void)
{
    enum { N = 65536 };
    uint8_t *src = malloc(N), *z = malloc(vd_codec_zlib_bound(N)), *out = malloc(N);
    for (size_t i = 0; i < N; i++)
        src[i] = (uint8_t)(i * 2654435761u >> (i % 7));
    size_t zl = 0, ol = 0;
    CHECK(vd_codec_zlib_compress(src, N, z, vd_codec_zlib_bound(N), &zl, 6) == 0, "compress");
    CHECK(vd_codec_zlib_decompress(z, zl, out, N, &ol) == 0 && ol == N && !memcmp(src, out, N),
          "round trip");
    CHECK(vd_codec_zlib_decompress(z, zl, out, N / 2, &ol) == -E2BIG, "too small a buffer");
    CHECK(vd_codec_zlib_decompress(z, zl / 2, out, N, &ol) == -EINVAL, "truncated stream");
    z[0] ^= 0xff;
    CHECK(vd_codec_zlib_decompress(z, zl, out, N, &ol) == -EINVAL, "bad zlib header");
    CHECK(vd_codec_zlib_compress(src, N, z, 10, &zl, 6) == -ENOSPC, "small output");
    free(src);
    free(z);
    free(out);
}

/* ---- concurrent reads of a stream ---- */

struct reader {
    struct vd_image *img;
    const uint8_t *ref;
    unsigned seed;
    int bad;
};

static void *reader_main(void *arg)
{
    struct reader *rd = arg;
    uint64_t size = vd_image_size(rd->img);
    uint8_t *buf = malloc(300000);
    for (int i = 0; i < 300; i++) {
        rd->seed = rd->seed * 1103515245u + 12345u;
        uint64_t off = (uint64_t)rd->seed * 7919u % size;
        size_t len = 1 + (rd->seed >> 8) % 300000;
        if (off + len > size)
            len = (size_t)(size - off);
        if (i % 3 == 0) { /* sequential runs exercise the readahead */
            off = (uint64_t)(i / 3 % 40) * 131072 % size;
            len = (size_t)(size - off < 131072 ? size - off : 131072);
        }
        struct vd_error e = {0};
        if (vd_image_pread(rd->img, buf, len, off, &e) < 0 || memcmp(buf, rd->ref + off, len))
            rd->bad++;
    }
    free(buf);
    return NULL;
}

static int open_sample(const char *rel, char *path, size_t pathlen)
{
    const char *data = getenv("VD_TEST_DATA");
    if (!data)
        return -1;
    const char *base = strrchr(rel, '/') + 1;
    snprintf(path, pathlen, "%s/%.*s", tmpdir, (int)(strlen(base) - 3), base);
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "xz -dc '%s/samples/%s' > '%s'", data, rel, path);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_concurrent(void)
{
    char path[1024];
    if (open_sample("vmdk-rs/streamOptimized.vmdk.xz", path, sizeof(path)) < 0) {
        fprintf(stderr, "note: samples not available, concurrency test skipped\n");
        return;
    }
    char hex[129];
    CHECK(hash_file(path, hex, sizeof(hex)) == 0 &&
              !strcmp(hex, "a3bcf05f07a1c06a3380eeca8571f0efb2b85afafa1e21662b8cad436d1f7727"),
          "stream sample sha %s", hex);
    struct vd_error err = {0};
    struct vd_source *src = NULL;
    if (vd_source_open(path, NULL, &src, &err) < 0) {
        CHECK(0, "open: %s", err.msg);
        return;
    }
    struct vd_image *img = vd_source_disk(src, 0);
    uint64_t size = vd_image_size(img);
    uint8_t *ref = malloc(size);
    CHECK(vd_image_pread(img, ref, size, 0, &err) == 0, "serial read: %s", err.msg);
    vd_source_close(src);
    /* a fresh open, so the threads race on cold grain tables and cache */
    CHECK(vd_source_open(path, NULL, &src, &err) == 0, "reopen: %s", err.msg);
    struct reader rd[8];
    pthread_t th[8];
    for (int i = 0; i < 8; i++) {
        rd[i] =
            (struct reader){.img = vd_source_disk(src, 0), .ref = ref, .seed = (unsigned)i * 77u};
        pthread_create(&th[i], NULL, reader_main, &rd[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        CHECK(rd[i].bad == 0, "thread %d: %d mismatching reads", i, rd[i].bad);
    }
    /* fork while the readahead workers are busy (a FUSE daemon that opens
     * before daemonising): the child must still read everything. */
    for (int it = 0; it < 20; it++) {
        struct vd_image *fi = vd_source_disk(src, 0);
        uint8_t *b = malloc(size);
        uint64_t o = (uint64_t)(it * 7 % 100) * 65536;
        (void)vd_image_pread(fi, b, 65536, o, &err);
        (void)vd_image_pread(fi, b, 65536, o + 65536, &err); /* sequential: queues readahead */
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            alarm(20); /* a deadlocked child dies instead of hanging the test */
            int bad = vd_image_pread(fi, b, size, 0, &err) < 0 || memcmp(b, ref, size);
            _exit(bad);
        }
        int st = 0;
        waitpid(pid, &st, 0);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fork %d: read in the child failed (%d)", it,
              st);
        free(b);
        if (!WIFEXITED(st) || WEXITSTATUS(st))
            break;
    }
    /* info JSON carries the vmdk object */
    char *json = NULL;
    CHECK(vd_source_info_json(src, &json, &err) == 0 && json &&
              strstr(json, "\"create_type\": \"streamOptimized\"") &&
              strstr(json, "\"grain_size\": 65536"),
          "info json: %s", json ? json : err.msg);
    free(json);
    /* block status: ZERO ranges really read as zeros, and there are some */
    struct vd_image *im = vd_source_disk(src, 0);
    uint64_t zero_bytes = 0;
    for (uint64_t off = 0, n = 0; off < size; off += n) {
        int st = vd_image_block_status(im, off, size - off, &n, &err);
        CHECK(st == VD_STATUS_DATA || st == VD_STATUS_ZERO, "status %d at %llu", st,
              (unsigned long long)off);
        if (st < 0)
            break;
        if (st == VD_STATUS_ZERO) {
            zero_bytes += n;
            for (uint64_t i = off; i < off + n; i++)
                if (ref[i]) {
                    CHECK(0, "byte %llu is reported zero but is not", (unsigned long long)i);
                    break;
                }
        }
    }
    CHECK(zero_bytes >= 0x30000 && zero_bytes < size, "zero bytes %llu",
          (unsigned long long)zero_bytes);
    vd_source_close(src);
    free(ref);
}

/* ---- map answers and decode, on the samples ---- */

/* Walk the map of path's disk: answers are counted by kind; GRAIN keys name
 * one unit each. */
static void walk_map(const char *path, unsigned counts[4], struct vd_map *first_grain)
{
    struct vd_error err = {0};
    struct vd_source *src = NULL;
    memset(counts, 0, 4 * sizeof(*counts));
    if (vd_source_open(path, NULL, &src, &err) < 0) {
        CHECK(0, "open %s: %s", path, err.msg);
        return;
    }
    struct vd_image *img = vd_source_disk(src, 0);
    enum { MAXK = 4096 };
    static uint64_t keys[MAXK], units[MAXK];
    size_t nk = 0;
    first_grain->kind = VD_MAP_ZERO;
    for (uint64_t off = 0; off < img->size;) {
        struct vd_map m;
        if (vd_image_map_checked(img, off, img->size - off, &m, &err) < 0) {
            CHECK(0, "%s: map at %llu: %s", path, (unsigned long long)off, err.msg);
            break;
        }
        counts[m.kind]++;
        if (m.kind == VD_MAP_GRAIN) {
            if (first_grain->kind != VD_MAP_GRAIN)
                *first_grain = m;
            for (size_t i = 0; i < nk; i++)
                CHECK(keys[i] != m.key || units[i] == m.unit_off,
                      "%s: key %llx names units at %llu and %llu", path, (unsigned long long)m.key,
                      (unsigned long long)units[i], (unsigned long long)m.unit_off);
            if (nk < MAXK) {
                keys[nk] = m.key;
                units[nk++] = m.unit_off;
            }
        }
        off += m.len;
    }
    vd_source_close(src);
}

static void test_map_decode(void)
{
    char sparse[1024], stream[1024];
    if (open_sample("vmdk-rs/monolithicSparse.vmdk.xz", sparse, sizeof(sparse)) < 0 ||
        open_sample("vmdk-rs/streamOptimized.vmdk.xz", stream, sizeof(stream)) < 0) {
        fprintf(stderr, "note: samples not available, map test skipped\n");
        return;
    }
    unsigned c[4];
    struct vd_map g;
    /* qemu allocates grains one after another: a few DATA runs, not one
     * answer per grain */
    walk_map(sparse, c, &g);
    CHECK(c[VD_MAP_DATA] >= 1 && c[VD_MAP_DATA] <= 4 && c[VD_MAP_GRAIN] == 0,
          "monolithicSparse: %u DATA answers, %u GRAIN", c[VD_MAP_DATA], c[VD_MAP_GRAIN]);
    walk_map(stream, c, &g);
    CHECK(c[VD_MAP_DATA] == 0 && c[VD_MAP_GRAIN] > 8, "stream: %u DATA, %u GRAIN answers",
          c[VD_MAP_DATA], c[VD_MAP_GRAIN]);
    if (g.kind != VD_MAP_GRAIN)
        return;

    /* decode is pure: it asks for more bytes when the marker says so, and
     * checks the marker names its grain */
    struct vd_error err = {0};
    struct vd_source *src = NULL;
    if (vd_source_open(stream, NULL, &src, &err) < 0)
        return;
    struct vd_image *img = vd_source_disk(src, 0);
    struct vd_map m;
    CHECK(vd_image_map_checked(img, g.unit_off, g.unit_len, &m, &err) == 0 &&
              m.kind == VD_MAP_GRAIN,
          "remap: %s", err.msg);
    uint8_t *stored = malloc(m.clen), *out = malloc(m.unit_len), *ref = malloc(m.unit_len);
    size_t need = 0;
    CHECK(vd_io_pread_full(m.io, stored, m.clen, m.io_off, &err) == 0, "read: %s", err.msg);
    CHECK(img->ops->decode(img, &m, stored, 16, out, &need, &err) == -EAGAIN && need > 16 &&
              need <= m.clen,
          "short source: need %zu (clen %llu)", need, (unsigned long long)m.clen);
    CHECK(img->ops->decode(img, &m, stored, m.clen, out, &need, &err) == 0, "decode: %s", err.msg);
    CHECK(vd_image_pread(img, ref, m.unit_len, m.unit_off, &err) == 0 &&
              !memcmp(ref, out, m.unit_len),
          "decode differs from pread");
    uint64_t want = le64(stored);
    put_le64(stored, want + 128);
    char msg[256];
    snprintf(msg, sizeof(msg),
             "vmdk: streamOptimized.vmdk: grain %llu: grain marker at offset %llu is for sector "
             "%llu, expected %llu",
             (unsigned long long)(m.unit_off / m.unit_len), (unsigned long long)m.io_off,
             (unsigned long long)(want + 128), (unsigned long long)want);
    vd_err_clear(&err);
    CHECK(img->ops->decode(img, &m, stored, m.clen, out, &need, &err) == -EINVAL &&
              !strcmp(err.msg, msg),
          "bad marker: '%s', want '%s'", err.msg, msg);
    free(stored);
    free(out);
    free(ref);
    vd_source_close(src);
}

/* ---- willneed hints (issue 15) ---- */

/* An io over a buffer that records every pread and willneed, in order. */
struct rec_event {
    bool willneed;
    uint64_t off, len;
};

struct rec_io {
    struct vd_io io; /* first */
    const uint8_t *buf;
    pthread_mutex_t lock;
    struct rec_event ev[4096];
    size_t nev;
};

static void rec_note(struct rec_io *r, bool willneed, uint64_t off, uint64_t len)
{
    pthread_mutex_lock(&r->lock);
    if (r->nev < sizeof(r->ev) / sizeof(r->ev[0]))
        r->ev[r->nev++] = (struct rec_event){willneed, off, len};
    pthread_mutex_unlock(&r->lock);
}

static ssize_t rec_pread(struct vd_io *io, void *buf, size_t len, uint64_t off,
                         struct vd_error *err)
{
    struct rec_io *r = (struct rec_io *)io;
    (void)err;
    if (off >= io->size)
        return 0;
    if (len > io->size - off)
        len = (size_t)(io->size - off);
    rec_note(r, false, off, len);
    memcpy(buf, r->buf + off, len);
    return (ssize_t)len;
}

static void rec_willneed(struct vd_io *io, uint64_t off, uint64_t len)
{
    rec_note((struct rec_io *)io, true, off, len);
}

static void rec_close(struct vd_io *io)
{
    (void)io; /* owned by the test */
}

static const struct vd_io_ops rec_ops = {
    .name = "rec",
    .pread = rec_pread,
    .willneed = rec_willneed,
    .close = rec_close,
};

/* Was [off, off+len) hinted before event i? */
static bool rec_hinted_before(const struct rec_io *r, size_t i, uint64_t off, uint64_t len)
{
    for (size_t k = 0; k < i; k++)
        if (r->ev[k].willneed && r->ev[k].off <= off && off + len <= r->ev[k].off + r->ev[k].len)
            return true;
    return false;
}

static struct vd_image *rec_open(struct rec_io *r, uint8_t *data, size_t size)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->lock, NULL);
    r->buf = data;
    struct vd_error err = {0};
    struct vd_image *img = NULL;
    if (vd_io_init(&r->io, &rec_ops, "rec.vmdk", size) != 0 ||
        vd_image_open_io(&r->io, "rec.vmdk", NULL, 0, &img, &err) < 0) {
        CHECK(0, "open the recorded stream VMDK: %s", err.msg);
        return NULL;
    }
    return img;
}

/* A stream VMDK from qemu-img (an independent writer): 4 grain tables of
 * 32 MiB each, the first MiB random (16 grains that compress to about
 * themselves), a random grain in each later table's range. Reading it
 * front to back, each grain table after the first is hinted before it is
 * read (on S3 it lies past the readahead, after its grains), and a read of
 * many grains hints their span first. Random reads hint no table. */
static void test_willneed(void)
{
    char raw[512], vmdk[512], cmd[4096];
    snprintf(raw, sizeof(raw), "%s/wn.raw", tmpdir);
    snprintf(vmdk, sizeof(vmdk), "%s/wn.vmdk", tmpdir);
    snprintf(cmd, sizeof(cmd),
             "command -v qemu-img >/dev/null && truncate -s 128M '%s' && "
             "head -c 1M /dev/urandom | dd of='%s' conv=notrunc status=none && "
             "for m in 32 64 96; do head -c 64K /dev/urandom | "
             "dd of='%s' bs=1M seek=$m conv=notrunc status=none; done && "
             "qemu-img convert -f raw -O vmdk -o subformat=streamOptimized '%s' '%s'",
             raw, raw, raw, raw, vmdk);
    if (system(cmd) != 0) {
        fprintf(stderr, "note: qemu-img not available, willneed test skipped\n");
        return;
    }
    FILE *f = fopen(vmdk, "rb");
    static uint8_t data[8 << 20];
    size_t size = f ? fread(data, 1, sizeof(data), f) : 0;
    if (f)
        fclose(f);
    CHECK(size > (1u << 20) && size < sizeof(data), "stream VMDK of %zu bytes", size);
    static struct rec_io r;
    struct vd_image *img = rec_open(&r, data, size);
    if (!img)
        return;
    uint64_t vsize = vd_image_size(img);
    uint8_t *buf = malloc(1u << 20);
    struct vd_error err = {0};
    for (uint64_t off = 0; off < vsize; off += 1u << 20)
        CHECK(vd_image_pread(img, buf, 1u << 20, off, &err) == 0, "read at %llu: %s",
              (unsigned long long)off, err.msg);
    vd_image_close(img);
    unsigned tables = 0, unhinted = 0, grains = 0, grains_hinted = 0;
    for (size_t i = 0; i < r.nev; i++) {
        const struct rec_event *e = &r.ev[i];
        if (e->willneed)
            continue;
        if (e->len == 2048) { /* a grain table: 512 entries */
            tables++;
            unhinted += !rec_hinted_before(&r, i, e->off, e->len);
        } else if (e->off >= 65536 && e->off < (1u << 20) && e->len > 2048) {
            grains++; /* the first MiB's grains: one hinted span per read */
            grains_hinted += rec_hinted_before(&r, i, e->off, e->len);
        }
    }
    CHECK(tables == 4 && unhinted == 1,
          "sequential read: %u grain tables read, %u of them not hinted first (want 4, 1)", tables,
          unhinted);
    CHECK(grains >= 15 && grains_hinted == grains,
          "sequential read: %u grains of the first MiB read, %u hinted first", grains,
          grains_hinted);

    /* Random reads: a 4 KiB read in table 3's range, then table 1's. */
    img = rec_open(&r, data, size);
    if (!img) {
        free(buf);
        return;
    }
    CHECK(vd_image_pread(img, buf, 4096, 96u << 20, &err) == 0 &&
              vd_image_pread(img, buf, 4096, 32u << 20, &err) == 0,
          "random reads: %s", err.msg);
    vd_image_close(img);
    size_t hints = 0;
    for (size_t i = 0; i < r.nev; i++)
        hints += r.ev[i].willneed;
    CHECK(hints == 0, "random 4 KiB reads gave %zu willneed hints, want none", hints);
    free(buf);
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "hash")) {
        char out[VD_ERROR_MAX];
        int r = hash_file(argv[2], out, sizeof(out));
        if (r < 0) {
            fprintf(stderr, "%s\n", out);
            return 1;
        }
        printf("%s  %s\n", out, argv[2]);
        return 0;
    }
    if (argc == 5 && !strcmp(argv[1], "pwrite")) {
        /* pwrite IMG OFFSET SRCFILE: write SRCFILE's bytes into IMG at OFFSET */
        FILE *f = fopen(argv[4], "rb");
        if (!f) {
            perror(argv[4]);
            return 1;
        }
        static uint8_t data[64 << 20];
        size_t n = fread(data, 1, sizeof(data), f);
        fclose(f);
        struct vd_open_opts o = {.writable = true};
        struct vd_error err = {0};
        struct vd_source *src = NULL;
        int r = vd_source_open(argv[2], &o, &src, &err);
        if (r == 0)
            r = vd_image_pwrite(vd_source_disk(src, 0), data, n, strtoull(argv[3], NULL, 0), &err);
        if (r == 0)
            r = vd_image_flush(vd_source_disk(src, 0), &err);
        vd_source_close(src);
        if (r < 0) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        return 0;
    }
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_desc();
    test_codec();
    test_concurrent();
    test_map_decode();
    test_willneed();
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "note: could not remove %s\n", tmpdir);
    printf("%s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
