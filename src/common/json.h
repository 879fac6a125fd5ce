/*
 * A minimal JSON writer over a growable buffer, for info.json and
 * `vdisk info --json`. Keys and values are emitted in call order, so the
 * output is stable. Commas are inserted automatically.
 *
 *   struct vd_json j; vd_json_init(&j);
 *   vd_json_obj_begin(&j, NULL);
 *   vd_json_str(&j, "format", "vmdk");
 *   vd_json_u64(&j, "virtual_size", 1 << 20);
 *   vd_json_obj_end(&j);
 *   char *s = vd_json_finish(&j);   // caller frees; NULL on ENOMEM
 */
#ifndef VD_COMMON_JSON_H
#define VD_COMMON_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vd_json {
    char *buf;
    size_t len, cap;
    int depth;
    bool need_comma[32];
    bool oom;
};

void vd_json_init(struct vd_json *j);
/* key is NULL inside arrays and at top level. */
void vd_json_obj_begin(struct vd_json *j, const char *key);
void vd_json_obj_end(struct vd_json *j);
void vd_json_arr_begin(struct vd_json *j, const char *key);
void vd_json_arr_end(struct vd_json *j);
void vd_json_str(struct vd_json *j, const char *key, const char *val); /* NULL -> null */
void vd_json_strn(struct vd_json *j, const char *key, const char *val, size_t n);
void vd_json_u64(struct vd_json *j, const char *key, uint64_t val);
void vd_json_i64(struct vd_json *j, const char *key, int64_t val);
void vd_json_dbl(struct vd_json *j, const char *key, double val);
void vd_json_bool(struct vd_json *j, const char *key, bool val);
void vd_json_null(struct vd_json *j, const char *key);
/* Returns the NUL-terminated text (with a trailing newline) and resets j;
 * NULL if memory ran out. */
char *vd_json_finish(struct vd_json *j);
void vd_json_free(struct vd_json *j);

#endif
