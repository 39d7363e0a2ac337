/* outbox.h - commands kept until Redis acknowledges them.
 *
 * General plumbing under link.c. A command (fp_cmd) is built from fp_call pieces, whose
 * strings it copies, and pushed to the outbox, which sends it on one fp_rconn while that
 * connection is up. Its reply settles it: a NULL reply (the connection was lost) puts it
 * back at the head, to be sent again after the reconnect; an error Redis gives while it
 * cannot take writes yet (LOADING, BUSY, OOM, READONLY, ...) puts it back at the tail and
 * drops the connection, so it is resent after a backoff; any other reply frees it. An
 * error Redis would give again (WRONGTYPE, NOPERM, a script's own) goes to the owner's
 * refused callback, or is logged if there is none. An EVALSHA Redis has no script for
 * (NOSCRIPT) goes again at once as EVAL (fp_cmd_set_script). Every command must therefore
 * be safe to apply twice, as fetchpool's scripts are. A command remembers which of its
 * arguments are task records, so the owner can ask whether a task is being settled
 * (fp_outbox_settling). */
#ifndef FP_OUTBOX_H
#define FP_OUTBOX_H

#include <stddef.h>

#include "fp_scripts.h"
#include "rconn.h"

typedef struct fp_cmd fp_cmd;

/* A command Redis refused for good, with its error: the owner reads it (fp_cmd_arg,
 * fp_cmd_tag), queues what should happen instead, then frees it (fp_cmd_free). Until then
 * its tasks still count as being settled. */
typedef void (*fp_outbox_refused_cb)(void *arg, fp_cmd *cmd, const char *err);

typedef struct fp_outbox {
    fp_rconn *conn;
    void (*replied)(void *arg); /* after every reply */
    fp_outbox_refused_cb refused;
    void *arg;
    fp_cmd *live;        /* every command built for sending, queued or sent */
    fp_cmd *head, *tail; /* queued, not sent */
    int sent;            /* sent, not answered */
} fp_outbox;

void fp_outbox_init(fp_outbox *o, fp_rconn *conn, void (*replied)(void *arg), void *arg);
void fp_outbox_on_refused(fp_outbox *o, fp_outbox_refused_cb refused);
/* A command to send (tracked until acknowledged), or with tracked = 0 a piece to move into
 * one later (fp_cmd_move). Out of memory is fp_oom: a result that cannot be kept would be
 * lost, while a dead worker's tasks are handed out again. */
fp_cmd *fp_cmd_new(fp_outbox *o, int tracked);
/* Copies arguments from .. to-1 of a call (its task record marked as one). */
void fp_cmd_add(fp_cmd *cmd, const fp_call *c, int from, int to);
/* Copies one argument (task: it is a task record the command settles). */
void fp_cmd_add_arg(fp_cmd *cmd, const char *s, size_t len, int task);
int fp_cmd_argc(const fp_cmd *cmd);
const char *fp_cmd_arg(const fp_cmd *cmd, int i, size_t *len);
int fp_cmd_is_task(const fp_cmd *cmd, int i);
/* A number of the owner's choosing, kept with the command (0 unless set). */
void fp_cmd_set_tag(fp_cmd *cmd, int tag);
int fp_cmd_tag(const fp_cmd *cmd);
/* The command is an EVALSHA of this script (static): if Redis answers NOSCRIPT, it is sent
 * again at once as EVAL with the source. */
void fp_cmd_set_script(fp_cmd *cmd, const char *script);
/* Frees a command the outbox no longer holds (one handed to the refused callback). */
void fp_cmd_free(fp_cmd *cmd);
/* Moves every argument of src to the end of dst and frees src. */
void fp_cmd_move(fp_cmd *dst, fp_cmd *src);
/* Queues a tracked command behind the others and sends what the connection allows. */
void fp_outbox_push(fp_outbox *o, fp_cmd *cmd);
void fp_outbox_flush(fp_outbox *o);
/* Is this task record an argument of a command not yet acknowledged? */
int fp_outbox_settling(const fp_outbox *o, const char *raw, size_t len);
/* Commands queued or sent and not yet acknowledged. */
int fp_outbox_pending(const fp_outbox *o);
/* Frees every command still queued (at shutdown). */
void fp_outbox_free(fp_outbox *o);

#endif
