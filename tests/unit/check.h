/*
 * The unit tests' one assertion macro. CHECK records a failure with its
 * file and line and goes on, so one run reports every broken case; main()
 * returns failures != 0.
 */
#ifndef VD_TEST_CHECK_H
#define VD_TEST_CHECK_H

#include <stdio.h>
#include <string.h>

static int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

/* Exact error text: corrupt-input tests pin the message users see. */
#define CHECK_MSG(err, want)                                                                       \
    CHECK(!strcmp((err).msg, want), "message\n  got:  %s\n  want: %s", (err).msg, want)

#endif
