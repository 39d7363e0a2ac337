/* cancelset.h - the ids of cancelled jobs as the worker last read them (fp:cancelled, with
 * every heartbeat): a small sorted array, owned by the link (link.c). */
#ifndef FP_CANCELSET_H
#define FP_CANCELSET_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#define FP_CANCELSET_MAX 1024 /* the newest ids are read (ZRANGE -1024 -1) */

typedef struct fp_cancelset {
    uint64_t ids[FP_CANCELSET_MAX];
    size_t n;
} fp_cancelset;

/* Replaces the set with the ids of a ZRANGE reply (anything else leaves it as it was). */
void fp_cancelset_update(fp_cancelset *c, const redisReply *r);
int fp_cancelset_has(const fp_cancelset *c, uint64_t job);
/* Is the task record ("T1\t<job>\t...") one of a cancelled job? */
int fp_cancelset_has_task(const fp_cancelset *c, const char *raw, size_t len);

#endif
