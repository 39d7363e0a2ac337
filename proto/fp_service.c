/* fp_service.c - Lua source and calls of the service scripts declared in fp_service.h. */
#include "fp_service.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "fp_keys.h"
#include "fp_polite.h"

/* The queue is rebuilt rather than LREM'd task by task: one pass over it, whatever the
 * number of tasks the job has there. */
const char fp_script_cancel[] =
    "local pre = ARGV[2]\n"
    "local function mine(t) return string.sub(t, 1, #pre) == pre end\n"
    "local q, keep, nq = redis.call('LRANGE', KEYS[2], 0, -1), {}, 0\n"
    "for _, t in ipairs(q) do\n"
    "  if mine(t) then nq = nq + 1 else keep[#keep + 1] = t end\n"
    "end\n"
    "if nq > 0 then\n"
    "  redis.call('DEL', KEYS[2])\n"
    "  for i = 1, #keep, 1000 do\n"
    "    redis.call('RPUSH', KEYS[2], unpack(keep, i, math.min(i + 999, #keep)))\n"
    "  end\n"
    "end\n"
    "local drop = {}\n"
    "for _, t in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do\n"
    "  if mine(t) then drop[#drop + 1] = t end\n"
    "end\n"
    "for i = 1, #drop, 1000 do\n"
    "  redis.call('ZREM', KEYS[3], unpack(drop, i, math.min(i + 999, #drop)))\n"
    "end\n"
    "local np = 0\n"
    "for _, h in ipairs(redis.call('ZRANGE', '" FP_KEY_PARKED "', 0, -1)) do\n"
    "  local pk, kept, n = 'fp:park:' .. h, {}, 0\n"
    "  for _, t in ipairs(redis.call('LRANGE', pk, 0, -1)) do\n"
    "    if mine(t) then n = n + 1 else kept[#kept + 1] = t end\n"
    "  end\n"
    "  if n > 0 then\n"
    "    np = np + n\n"
    "    redis.call('DEL', pk)\n"
    "    for i = 1, #kept, 1000 do\n"
    "      redis.call('RPUSH', pk, unpack(kept, i, math.min(i + 999, #kept)))\n"
    "    end\n"
    "    if #kept == 0 then redis.call('ZREM', '" FP_KEY_PARKED "', h) end\n"
    "  end\n"
    "end\n"
    "local t = redis.call('TIME')\n"
    "local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"
    "redis.call('ZADD', KEYS[4], now, ARGV[1])\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - tonumber(ARGV[3]))\n"
    "redis.call('DEL', KEYS[5])\n"
    "return {nq, #drop, np}\n";

const char fp_script_fold[] =
    "if redis.call('HSETNX', KEYS[1], 'folded', 1) == 0 then return 0 end\n"
    "local h = redis.call('HGETALL', KEYS[1])\n"
    "for i = 1, #h, 2 do\n"
    "  local f, v = h[i], tonumber(h[i + 1])\n"
    "  if v and (f == 'ok' or f == 'failed' or f == 'bytes' or f == 'sum_us' or\n"
    "            string.sub(f, 1, 5) == 'fail:') then\n"
    "    redis.call('HINCRBY', KEYS[3], f, v)\n"
    "  end\n"
    "end\n"
    "local l = redis.call('HGETALL', KEYS[2])\n"
    "for i = 1, #l, 2 do\n"
    "  local v = tonumber(l[i + 1])\n"
    "  if v and tonumber(l[i]) then redis.call('HINCRBY', KEYS[4], l[i], v) end\n"
    "end\n"
    "redis.call('HINCRBY', KEYS[3], ARGV[1] == '1' and 'jobs_cancelled' or 'jobs_done', 1)\n"
    "return 1\n";

/* Job and heartbeat keys are derived from the ids here (as fp_keys.c names them): fetchpool
 * uses one Redis, not a cluster. */
const char fp_script_snapshot[] =
    "local out = {{redis.call('LLEN', KEYS[1]), redis.call('ZCARD', KEYS[2]),\n"
    "              redis.call('LLEN', KEYS[3]), redis.call('LLEN', KEYS[4])},\n"
    "             redis.call('HGETALL', KEYS[7]), redis.call('HGETALL', KEYS[8]), {}, {}}\n"
    "for _, id in ipairs(redis.call('LRANGE', KEYS[5], 0, tonumber(ARGV[1]) - 1)) do\n"
    "  local meta = 'fp:job:' .. id\n"
    "  out[4][#out[4] + 1] = {id, redis.call('HGETALL', meta),\n"
    "                         redis.call('HGETALL', meta .. ':lat')}\n"
    "end\n"
    "local n = 0\n"
    "for _, id in ipairs(redis.call('SMEMBERS', KEYS[6])) do\n"
    "  n = n + 1\n"
    "  if n > tonumber(ARGV[2]) then break end\n"
    "  out[5][n] = {id, redis.call('GET', 'fp:worker:' .. id)}\n"
    "end\n"
    "return out\n";

const char fp_script_drop[] =
    FP_LUA_TASK "local n = redis.call('LREM', KEYS[1], 1, ARGV[1])\n"
                "if n == 1 then fp_release(fp_worker_of(KEYS[1]), ARGV[1]) end\n"
                "return n\n";

void fp_call_cancel(fp_call *c, uint64_t job)
{
    char *p;

    fp_call_begin(c, fp_script_cancel, 5);
    fp_call_arg_job_key(c, job, FP_JOB_META);
    fp_call_arg(c, FP_KEY_TASKS, strlen(FP_KEY_TASKS));
    fp_call_arg(c, FP_KEY_RETRY, strlen(FP_KEY_RETRY));
    fp_call_arg(c, FP_KEY_CANCELLED, strlen(FP_KEY_CANCELLED));
    fp_call_arg_job_key(c, job, FP_JOB_IN);
    fp_call_arg_u64(c, job);
    p = fp_call_room(c);
    fp_call_arg(c, p, (size_t)snprintf(p, FP_KEY_MAX, "T1\t%" PRIu64 "\t", job));
    fp_call_arg_u64(c, FP_CANCELLED_KEEP_MS);
}

void fp_call_fold(fp_call *c, uint64_t job, int cancelled)
{
    fp_call_begin(c, fp_script_fold, 4);
    fp_call_arg_job_key(c, job, FP_JOB_META);
    fp_call_arg_job_key(c, job, FP_JOB_LAT);
    fp_call_arg(c, FP_KEY_STATS, strlen(FP_KEY_STATS));
    fp_call_arg(c, FP_KEY_STATS_LAT, strlen(FP_KEY_STATS_LAT));
    fp_call_arg(c, cancelled ? "1" : "0", 1);
}

void fp_call_snapshot(fp_call *c, int max_jobs, int max_workers)
{
    static const char *const keys[] = {FP_KEY_TASKS,    FP_KEY_RETRY,       FP_KEY_DEAD,
                                       FP_KEY_JOBS_NEW, FP_KEY_JOBS_ACTIVE, FP_KEY_WORKERS,
                                       FP_KEY_STATS,    FP_KEY_STATS_LAT};
    size_t i;

    fp_call_begin(c, fp_script_snapshot, 8);
    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        fp_call_arg(c, keys[i], strlen(keys[i]));
    fp_call_arg_u64(c, (uint64_t)(max_jobs > 0 ? max_jobs : 1));
    fp_call_arg_u64(c, (uint64_t)(max_workers > 0 ? max_workers : 1));
}

void fp_call_drop(fp_call *c, const char *worker, const char *task, size_t task_len)
{
    char *p;

    fp_call_begin(c, fp_script_drop, 1);
    p = fp_call_room(c);
    fp_key_proc(p, worker);
    fp_call_arg(c, p, strlen(p));
    fp_call_arg_task(c, task, task_len);
}
