/*
 * Encoders: one file per output format under src/export/, each exporting a
 * `const struct vd_encoder_ops vd_encoder_NAME`. The export core
 * (export.c) owns the reorder window and hands an encoder 64 KiB chunks in
 * strictly increasing order, never an all-zero chunk; the chunks it skips
 * read as zeros. Encoders write through an append-only struct vd_sink and
 * patch only their declared head (vd_sink_set_head) at the end.
 */
#ifndef VD_EXPORT_ENCODER_H
#define VD_EXPORT_ENCODER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "export/sink.h"
#include "vdisk/export.h"

/* The unit the core delivers: one streamOptimized grain (128 sectors). */
#define VD_EXPORT_CHUNK 65536u
/* Head of a streamOptimized VMDK (header + descriptor, patched at the end);
 * the OVA encoder reserves it inside its own head. */
#define VD_EXPORT_VMDK_HEAD_LEN 65536u

struct vd_encoder_ops;

struct vd_encoder {
    const struct vd_encoder_ops *ops;
    void *priv;                        /* priv_size bytes, zeroed; core frees */
    struct vd_sink *sink;              /* not owned */
    const struct vd_export_opts *opts; /* resolved: no NULL strings, level set */
    const char *base;                  /* output file name without directory */
    uint64_t size;                     /* virtual size when begin() runs */
    bool size_final;                   /* size will not change before finish */
};

struct vd_encoder_ops {
    const char *name;  /* "vmdk" */
    size_t priv_size;  /* private state the core allocates */
    uint64_t max_size; /* largest virtual size this format holds */
    bool patches_head; /* always patches its head at the end (so a
                        * streamed digest would be wasted work) */
    /* Write the head (declare it with vd_sink_set_head first when it is to be
     * patched). Called once, before the first chunk or at finish. */
    int (*begin)(struct vd_encoder *enc, struct vd_error *err);
    /* Encode the VD_EXPORT_CHUNK bytes at idx * VD_EXPORT_CHUNK. data is not
     * all zeros and is only valid during the call. */
    int (*chunk)(struct vd_encoder *enc, uint64_t idx, const uint8_t *data, struct vd_error *err);
    /* Every chunk delivered; size is the final virtual size in bytes (the
     * encoder pads it as the format needs). Write the rest and patch the
     * head. Does not commit the sink. */
    int (*finish)(struct vd_encoder *enc, uint64_t size, struct vd_error *err);
    /* Release what priv holds (threads, buffers); must accept an encoder
     * whose begin never ran or failed. Does not free priv itself. */
    void (*free)(struct vd_encoder *enc);
};

extern const struct vd_encoder_ops vd_encoder_vmdk;
extern const struct vd_encoder_ops vd_encoder_vmdk_sparse; /* vmdk_type=monolithicSparse */
extern const struct vd_encoder_ops vd_encoder_vhd;
extern const struct vd_encoder_ops vd_encoder_vhd_azure; /* target=azure: fixed, to 32 TiB */
extern const struct vd_encoder_ops vd_encoder_vhdx;
extern const struct vd_encoder_ops vd_encoder_ova;
extern const struct vd_encoder_ops vd_encoder_raw;

/* Create an encoder of ops over sink (the caller keeps owning sink). */
int vd_encoder_new(const struct vd_encoder_ops *ops, struct vd_sink *sink,
                   const struct vd_export_opts *opts, const char *base, struct vd_encoder **out,
                   struct vd_error *err);
void vd_encoder_free(struct vd_encoder *enc);

/* A pass-through sink that digests everything written through it (md is
 * "sha256" or "sha1") and shifts patches by base_off into next, so an
 * encoder can write one member of a container (OVA) or the whole output.
 * commit/abort are forwarded; free releases only the tap. */
int vd_sink_tap_open(struct vd_sink *next, uint64_t base_off, const char *md, struct vd_sink **out,
                     struct vd_error *err);
/* Stop digesting while streaming (the digest is not wanted, or a head patch
 * will make it stale anyway); vd_sink_tap_digest then reads back. */
void vd_sink_tap_off(struct vd_sink *tap);
/* True when the digest is known without reading anything back. */
bool vd_sink_tap_streamed(const struct vd_sink *tap);
/* Hex digest of the bytes written through the tap, patches included (read
 * back from next when a patch changed them). hex must hold 129 bytes.
 * -ENOTSUP when a patch happened and next cannot read back. */
int vd_sink_tap_digest(struct vd_sink *tap, char *hex, struct vd_error *err);

/* One ustar header block for a regular file (OVA members): octal fields,
 * GNU base-256 size from 8 GiB on. name must fit 100 bytes. */
void vd_export_tar_header(uint8_t *h, const char *name, uint64_t size, uint32_t mtime);

/* True when buf[0, len) is all zeros. */
bool vd_export_is_zero(const void *buf, size_t len);
/* Random bytes for UUIDs and CIDs (getrandom, never fails silently: falls
 * back to time and address entropy). */
void vd_export_random(void *buf, size_t len);

#endif
