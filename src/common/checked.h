/*
 * Overflow-checked arithmetic for header-derived sizes. Each returns true on
 * overflow (like __builtin_*_overflow), leaving *r undefined.
 */
#ifndef VD_COMMON_CHECKED_H
#define VD_COMMON_CHECKED_H

#include <stdbool.h>
#include <stdint.h>

static inline bool ck_add(uint64_t a, uint64_t b, uint64_t *r)
{
    return __builtin_add_overflow(a, b, r);
}
static inline bool ck_mul(uint64_t a, uint64_t b, uint64_t *r)
{
    return __builtin_mul_overflow(a, b, r);
}
/* a*b+c */
static inline bool ck_muladd(uint64_t a, uint64_t b, uint64_t c, uint64_t *r)
{
    return ck_mul(a, b, r) || ck_add(*r, c, r);
}
static inline uint64_t div_round_up(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}
static inline bool is_pow2(uint64_t v)
{
    return v && !(v & (v - 1));
}
#define VD_MIN(a, b)     ((a) < (b) ? (a) : (b))
#define VD_MAX(a, b)     ((a) > (b) ? (a) : (b))
#define VD_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
