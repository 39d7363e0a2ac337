/* cancelset.c - the set of cancelled jobs (see cancelset.h). */
#include "cancelset.h"

#include <stdlib.h>
#include <string.h>

#include "fp_text.h"

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

void fp_cancelset_update(fp_cancelset *c, const redisReply *r)
{
    size_t i, n = 0;

    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        return;
    for (i = 0; i < r->elements && n < FP_CANCELSET_MAX; i++)
        if (r->element[i]->type == REDIS_REPLY_STRING &&
            fp_text_u64(r->element[i]->str, r->element[i]->len, &c->ids[n]) == 0)
            n++;
    qsort(c->ids, n, sizeof(c->ids[0]), cmp_u64);
    c->n = n;
}

int fp_cancelset_has(const fp_cancelset *c, uint64_t job)
{
    return c->n && bsearch(&job, c->ids, c->n, sizeof(job), cmp_u64) != NULL;
}

int fp_cancelset_has_task(const fp_cancelset *c, const char *raw, size_t len)
{
    const char *end;
    uint64_t job;

    if (c->n == 0 || len < 4 || memcmp(raw, "T1\t", 3) != 0 ||
        (end = memchr(raw + 3, '\t', len - 3)) == NULL ||
        fp_text_u64(raw + 3, (size_t)(end - raw - 3), &job) != 0)
        return 0;
    return fp_cancelset_has(c, job);
}
