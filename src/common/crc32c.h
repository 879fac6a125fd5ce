/*
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as used by VHDX
 * headers, region tables, metadata and log entries ([MS-VHDX] 2.2.2.1).
 *
 * vd_crc32c(0, buf, len) is the standard CRC-32C of buf (init ~0, final xor
 * ~0 handled inside), and calls chain: vd_crc32c(vd_crc32c(0, a, n), b, m)
 * equals the CRC of a followed by b. Known value: "123456789" -> 0xE3069283.
 * Thread-safe; uses SSE4.2 crc32 instructions when the CPU has them.
 */
#ifndef VD_COMMON_CRC32C_H
#define VD_COMMON_CRC32C_H

#include <stddef.h>
#include <stdint.h>

uint32_t vd_crc32c(uint32_t crc, const void *buf, size_t len);
/* The table-driven path only (for tests comparing it with the SSE4.2 one). */
uint32_t vd_crc32c_portable(uint32_t crc, const void *buf, size_t len);

#endif
