/* A tiny test harness for the C kernels: built with AddressSanitizer and
 * UndefinedBehaviorSanitizer by `make ctest` (part of `make test`). */
#ifndef HM_CHECK_H
#define HM_CHECK_H
#include <stdio.h>
#include <stdlib.h>
#include <math.h>

static int hm_check_failures = 0;
static int hm_check_count = 0;

#define CHECK(cond) do { hm_check_count++; if (!(cond)) { hm_check_failures++; \
    fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); } } while (0)

/* |a - b| <= atol + rtol * |b| */
#define CHECK_CLOSE(a, b, atol, rtol) do { double _a = (a), _b = (b); hm_check_count++; \
    if (!(fabs(_a - _b) <= (atol) + (rtol) * fabs(_b))) { hm_check_failures++; \
    fprintf(stderr, "%s:%d: %s = %.9g, expected %s = %.9g\n", __FILE__, __LINE__, #a, _a, #b, _b); } } while (0)

/* Every test file ends its main() with `return CHECK_REPORT();` */
#define CHECK_REPORT() (printf("%s: %d checks, %d failed\n", __FILE__, hm_check_count, hm_check_failures), \
    hm_check_failures != 0)

#endif
