/*
 * Test helper: build tar archives in memory, header by header, so unit
 * tests of tar.c/ova.c can craft exactly the blocks they need (ustar, v7,
 * GNU base-256 sizes, pax records, GNU long names, bad checksums).
 * Header fields follow POSIX ustar; checksums are computed as GNU tar does.
 */
#ifndef TEST_TAR_BUILD_H
#define TEST_TAR_BUILD_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { TB_V7, TB_USTAR, TB_GNU };

struct tb {
    uint8_t *buf;
    size_t len, cap;
};

static void tb_reserve(struct tb *t, size_t more)
{
    if (t->len + more <= t->cap)
        return;
    size_t nc = t->cap ? t->cap : 4096;
    while (nc < t->len + more)
        nc *= 2;
    t->buf = realloc(t->buf, nc);
    if (!t->buf)
        abort();
    memset(t->buf + t->cap, 0, nc - t->cap);
    t->cap = nc;
}

static void tb_octal(uint8_t *f, size_t n, uint64_t v)
{
    /* n-1 octal digits then NUL, as GNU tar writes them */
    for (size_t i = n - 1; i-- > 0;) {
        f[i] = (uint8_t)('0' + (v & 7));
        v >>= 3;
    }
    f[n - 1] = 0;
}

static void tb_checksum(uint8_t *blk)
{
    unsigned sum = 0;
    memset(blk + 148, ' ', 8);
    for (int i = 0; i < 512; i++)
        sum += blk[i];
    tb_octal(blk + 148, 7, sum); /* 6 digits + NUL, then the space stays */
}

/* Fill one header block. Sizes of 8 GiB and more use GNU base-256. */
static void tb_fill(uint8_t *blk, const char *name, uint64_t size, char type, int kind)
{
    memset(blk, 0, 512);
    size_t nl = strlen(name);
    memcpy(blk, name, nl > 100 ? 100 : nl);
    tb_octal(blk + 100, 8, 0644);
    tb_octal(blk + 108, 8, 0);
    tb_octal(blk + 116, 8, 0);
    if (size >= (1ull << 33)) {
        blk[124] = 0x80;
        for (int i = 0; i < 8; i++)
            blk[124 + 11 - i] = (uint8_t)(size >> (8 * i));
    } else {
        tb_octal(blk + 124, 12, size);
    }
    tb_octal(blk + 136, 12, 1700000000);
    blk[156] = (uint8_t)type;
    if (kind == TB_USTAR)
        memcpy(blk + 257,
               "ustar\0"
               "00",
               8);
    else if (kind == TB_GNU)
        memcpy(blk + 257, "ustar  \0", 8);
    tb_checksum(blk);
}

static void tb_header(struct tb *t, const char *name, uint64_t size, char type, int kind)
{
    tb_reserve(t, 512);
    tb_fill(t->buf + t->len, name, size, type, kind);
    t->len += 512;
}

/* Append data padded to a block boundary. */
static void tb_data(struct tb *t, const void *d, size_t n)
{
    size_t padded = (n + 511) / 512 * 512;
    tb_reserve(t, padded);
    if (n)
        memcpy(t->buf + t->len, d, n);
    memset(t->buf + t->len + n, 0, padded - n);
    t->len += padded;
}

static void tb_file(struct tb *t, const char *name, const void *d, size_t n, int kind)
{
    tb_header(t, name, n, '0', kind);
    tb_data(t, d, n);
}

static void tb_file_str(struct tb *t, const char *name, const char *s)
{
    tb_file(t, name, s, strlen(s), TB_USTAR);
}

/* A pax header ('x' or 'g') holding the given key=value records. */
static void tb_pax(struct tb *t, char type, const char *const *kv, size_t n)
{
    char data[8192];
    size_t dl = 0;
    for (size_t i = 0; i < n; i++) {
        size_t body = strlen(kv[i]) + 2; /* ' ' and '\n' */
        size_t len = body + 1;
        while (len != body + (size_t)snprintf(NULL, 0, "%zu", len))
            len = body + (size_t)snprintf(NULL, 0, "%zu", len);
        dl += (size_t)snprintf(data + dl, sizeof(data) - dl, "%zu %s\n", len, kv[i]);
    }
    tb_header(t, "PaxHeaders/x", dl, type, TB_USTAR);
    tb_data(t, data, dl);
}

static void tb_end(struct tb *t)
{
    tb_reserve(t, 1024);
    memset(t->buf + t->len, 0, 1024);
    t->len += 1024;
}

#endif
