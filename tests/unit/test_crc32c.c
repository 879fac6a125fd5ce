/* CRC-32C against published vectors (RFC 3720 B.4, iSCSI) and a bitwise
 * reference, over every alignment and a range of lengths, for both the
 * portable and the dispatched path, including chained calls. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/crc32c.h"
#include "check.h"

static uint32_t ref_crc32c(const uint8_t *p, size_t len)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < len; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
    }
    return ~c;
}

int main(void)
{
    uint8_t buf[64];
    CHECK(vd_crc32c(0, "123456789", 9) == 0xE3069283u, "check value");
    CHECK(vd_crc32c_portable(0, "123456789", 9) == 0xE3069283u, "check value (portable)");
    CHECK(vd_crc32c(0, "", 0) == 0, "empty");
    memset(buf, 0, 32);
    CHECK(vd_crc32c(0, buf, 32) == 0x8A9136AAu, "32 zeros: %08x", vd_crc32c(0, buf, 32));
    memset(buf, 0xff, 32);
    CHECK(vd_crc32c(0, buf, 32) == 0x62A8AB43u, "32 ones");
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)i;
    CHECK(vd_crc32c(0, buf, 32) == 0x46DD794Eu, "incrementing");
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)(31 - i);
    CHECK(vd_crc32c(0, buf, 32) == 0x113FDB5Cu, "decrementing");

    enum { N = 4096 + 64 };
    uint8_t *big = malloc(N);
    if (!big)
        return 1;
    srand(42);
    for (size_t i = 0; i < N; i++)
        big[i] = (uint8_t)rand();
    for (size_t align = 0; align < 8; align++) {
        for (size_t len = 0; len + align <= N; len += (len < 80 ? 1 : 61)) {
            uint32_t want = ref_crc32c(big + align, len);
            CHECK(vd_crc32c(0, big + align, len) == want, "align %zu len %zu", align, len);
            CHECK(vd_crc32c_portable(0, big + align, len) == want, "portable align %zu len %zu",
                  align, len);
            size_t half = len / 3;
            uint32_t c = vd_crc32c(0, big + align, half);
            CHECK(vd_crc32c(c, big + align + half, len - half) == want, "chained %zu", len);
        }
    }
    free(big);
    if (failures)
        fprintf(stderr, "%d failures\n", failures);
    else
        printf("crc32c: all tests passed\n");
    return failures ? 1 : 0;
}
