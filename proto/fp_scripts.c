/* fp_scripts.c - Lua source of the scripts declared in fp_scripts.h, and the calls that
 * run them. */
#include "fp_scripts.h"

#include "fp_polite.h"

#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

/* LPOP with a count and one RPUSH per batch: per task the script makes no call of its
 * own unless the task's job limits its hosts (fp_polite.h). A task is judged in a pcall:
 * if a call fails (a damaged job or host key, a narrow ACL), it still goes to the
 * processing list with its batch, for the worker to fail with the error, and never
 * vanishes between the LPOP and the RPUSH. A task of a robots job (flag 8) passes its
 * host's budget even if its job has no caps, for the Crawl-delay (fp_polite.h). Recovered
 * tasks (flag 4) beyond the worker's slots go back to the tail; tasks whose host has no budget are
 * parked; tasks of a cancelled job (parked or retried before it was cancelled) are
 * dropped. ARGV[6], if not empty, is a task BLMOVE already moved into the processing
 * list: it is judged first, and parked (taken out of the list) if it must wait; if it is
 * a recovered task beyond the worker's slots it goes back to the tail too.
 * ARGV[7] of the ARGV[1] tasks are spare ones, beyond the worker's free slots (it keeps
 * them ready for the slots that free up next): those come only out of what the queue holds
 * beyond the other workers' concurrency (ARGV[8], the worker's own, for each other worker
 * registered). So the last tasks of a queue go to free slots, never to one worker's spare
 * while another worker's slots stand idle (an extra round of transfers at the end of a
 * job). The reply's last element counts the spare tasks not handed out. */
const char fp_script_take[] = FP_LUA_POLITE
    "local function push(key, list)\n"
    "  for i = 1, #list, 1000 do\n"
    "    redis.call('RPUSH', key, unpack(list, i, math.min(i + 999, #list)))\n"
    "  end\n"
    "end\n"
    "redis.call('SADD', KEYS[3], ARGV[2])\n"
    "redis.call('SET', KEYS[4], 'starting', 'PX', ARGV[4], 'NX')\n"
    "local worker, ttl, lim, now = ARGV[2], tonumber(ARGV[5]), {}, nil\n"
    "local function flags(t)\n"
    "  return tonumber(string.match(t, '^T1\\t[^\\t]*\\t[^\\t]*\\t[^\\t]*\\t'\n"
    "    .. '[^\\t]*\\t[^\\t]*\\t([^\\t]*)\\t') or '0') or 0\n"
    "end\n"
    "-- 'run' (its lease taken), 'park' (parked), 'drop' (cancelled job), 'doom' (its host\n"
    "-- was given up for the job: the worker fails it as host_unavailable), 'broken' (a call\n"
    "-- judging it failed: the worker fails it with the first such error, err)\n"
    "local function judge(t, f)\n"
    "  local job = string.match(t, '^T1\\t(%d+)\\t')\n"
    "  if not job then return 'run' end\n"
    "  local L = lim[job]\n"
    "  if L == nil then\n"
    "    local v = redis.call('HMGET', 'fp:job:' .. job, 'host_conns', 'host_rate', 'cancelled')\n"
    "    L = {c = tonumber(v[1]) or 0, r = tonumber(v[2]) or 0, gone = v[3] ~= false, down = {}}\n"
    "    lim[job] = L\n"
    "  end\n"
    "  if L.gone then return 'drop' end\n"
    "  local rb = bit.band(f, 8) ~= 0 -- FP_TASK_ROBOTS\n"
    "  if L.c <= 0 and L.r <= 0 and not rb then return 'run' end\n"
    "  local _, idx, h, name = fp_parse(t)\n"
    "  if not h then return 'run' end\n"
    "  now = now or fp_now()\n"
    "  local s = fp_host(h, now)\n"
    "  if s.fails >= FP_GIVE_UP then\n"
    "    if L.down[h] == nil then\n"
    "      L.down[h] = redis.call('SISMEMBER', 'fp:job:' .. job .. ':down', h) == 1\n"
    "    end\n"
    "    if L.down[h] then return 'doom' end\n"
    "  end\n"
    "  local rate, slow, probe = L.r, 'rate', nil\n"
    "  if rb then\n"
    "    local cd = fp_crawl(name)\n"
    "    if not cd then\n"
    "      probe = fp_crawl_probe(t)\n"
    "      if not probe then\n"
    "        fp_park(s, t, now + FP_CRAWL_WAIT, job, L.c, L.r, 'robots')\n"
    "        return 'park'\n"
    "      end\n"
    "    elseif cd > 0 and (rate <= 0 or 1000 / cd < rate) then\n"
    "      rate, slow = 1000 / cd, 'crawl'\n"
    "    end\n"
    "    if not probe and L.c <= 0 and rate <= 0 then return 'run' end\n"
    "  end\n"
    "  local due = fp_admit(s, L.c, rate, now)\n"
    "  if due == 0 then\n"
    "    if probe then\n"
    "      -- the request that finds the rules out empties the bucket the task spends from\n"
    "      -- (the group's under --host-group domain): a delay learnt next waits in full\n"
    "      fp_crawl_probing(probe)\n"
    "      s.tok, s.ts, s.dirty = 0, now, true\n"
    "    end\n"
    "    if L.c > 0 then\n"
    "      redis.call('ZADD', s.lk, now + ttl, worker .. '\\t' .. job .. '\\t' .. idx)\n"
    "      redis.call('PEXPIRE', s.lk, ttl)\n"
    "    end\n"
    "    return 'run'\n"
    "  end\n"
    "  local why = slow\n"
    "  if s.pause > now then why = 'pause'\n"
    "  elseif L.c > 0 and s.leases >= fp_conns(s, L.c, now) then why = 'conns' end\n"
    "  fp_park(s, t, due, job, L.c, rate, why)\n"
    "  return 'park'\n"
    "end\n"
    "local out, skip, doom, broken, err = {}, {}, {}, {}, ''\n"
    "local function verdict(t, f)\n"
    "  local ok, v = pcall(judge, t, f)\n"
    "  if ok then return v end\n"
    "  if err == '' then err = type(v) == 'table' and v.err or tostring(v) end\n"
    "  return 'broken'\n"
    "end\n"
    "local want, rslots = tonumber(ARGV[1]), tonumber(ARGV[3])\n"
    "local spare, held = tonumber(ARGV[7]) or 0, 0\n"
    "if spare > 0 then\n"
    "  local others = redis.call('SCARD', KEYS[3]) - 1\n"
    "  local room = redis.call('LLEN', KEYS[1]) - (want - spare)\n"
    "               - others * (tonumber(ARGV[8]) or 0)\n"
    "  held = spare - math.max(0, math.min(spare, room))\n"
    "  want = want - held\n"
    "end\n"
    "-- the flags are read once per task: recovered (4) here, robots (8) in judge\n"
    "local f6 = ARGV[6] ~= '' and flags(ARGV[6]) or 0\n"
    "if ARGV[6] ~= '' and rslots <= 0 and bit.band(f6, 4) ~= 0 then\n"
    "  redis.call('LREM', KEYS[2], 1, ARGV[6])\n"
    "  skip[1] = ARGV[6]\n"
    "elseif ARGV[6] ~= '' then\n"
    "  local v = verdict(ARGV[6], f6)\n"
    "  if v == 'run' then\n"
    "    out[1] = ARGV[6]\n"
    "    if bit.band(f6, 4) ~= 0 then rslots = rslots - 1 end\n"
    "  elseif v == 'doom' then doom[1] = ARGV[6]\n"
    "  elseif v == 'broken' then broken[1] = ARGV[6]\n"
    "  else redis.call('LREM', KEYS[2], 1, ARGV[6]) end\n"
    "end\n"
    "local tries = want + 64\n"
    "while #out < want and tries > 0 do\n"
    "  local n = math.min(want - #out, tries)\n"
    "  local ts = redis.call('LPOP', KEYS[1], n)\n"
    "  if not ts then break end\n"
    "  tries = tries - #ts\n"
    "  local took = {}\n"
    "  for _, t in ipairs(ts) do\n"
    "    local f = flags(t)\n"
    "    local r = bit.band(f, 4) ~= 0\n"
    "    if r and rslots <= 0 then\n"
    "      skip[#skip + 1] = t\n"
    "    else\n"
    "      local v = verdict(t, f)\n"
    "      if v == 'run' then\n"
    "        if r then rslots = rslots - 1 end\n"
    "        took[#took + 1] = t\n"
    "        out[#out + 1] = t\n"
    "      elseif v == 'doom' then\n"
    "        took[#took + 1] = t\n"
    "        doom[#doom + 1] = t\n"
    "      elseif v == 'broken' then\n"
    "        took[#took + 1] = t\n"
    "        broken[#broken + 1] = t\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  push(KEYS[2], took)\n"
    "  if #ts < n then break end\n"
    "end\n"
    "push(KEYS[1], skip)\n"
    "if now then fp_save(now) end\n"
    "return {out, #skip, doom, broken, err, held}\n";

/* Checks first, writes after: a key of the wrong type, a command the ACL user may not run
 * on a key, or an argument that is not a number refuses every task of its job before
 * anything is written, so a task's result and its job's counters change together or not
 * at all (Redis does not undo a script's writes when it fails halfway). Writes that pass
 * the checks cannot fail, and the first write's OOM comes before any write.
 * The first result wins, with one exception: a worker_lost result (written by the reaper
 * at the last attempt of a task whose worker's heartbeat expired) is replaced by the
 * result of the worker that ran the task, if it comes while the job is open (no
 * finished_us): that worker was frozen (SIGSTOP, a VM paused), not dead, and its result
 * names a file it stored. Counters move from fail:worker_lost to the real outcome (a
 * fail: field that reaches 0 is deleted); done does not change. After the job is complete
 * its results and summary are final. */
const char fp_script_seal[] =
    "if redis.call('HGET', KEYS[1], 'sealed') == '1' then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'sealed', 1)\n"
    "local total = tonumber(redis.call('HGET', KEYS[1], 'total') or '0')\n"
    "local done = tonumber(redis.call('HGET', KEYS[1], 'done') or '0')\n"
    "if done >= total then\n"
    "  local t = redis.call('TIME')\n"
    "  redis.call('HSET', KEYS[1], 'finished_us', t[1] * 1000000 + t[2])\n"
    "  redis.call('RPUSH', KEYS[2], ARGV[1])\n"
    "end\n"
    "return 1\n";

/* A retry sent again (a lost reply) finds its task gone: the host was told already. The
 * host's keys are only advice: one that fails (damaged) must not lose the task. */
const char fp_script_retry[] = FP_LUA_TASK
    "local removed = redis.call('LREM', KEYS[1], 1, ARGV[1]) == 1\n"
    "if removed then pcall(fp_release, fp_worker_of(KEYS[1]), ARGV[1]) end\n"
    "local v = redis.call('HMGET', KEYS[3], 'cancelled', 'host_conns', 'host_rate')\n"
    "if v[1] then return 0 end\n"
    "if removed and ((tonumber(v[2]) or 0) > 0 or (tonumber(v[3]) or 0) > 0) then\n"
    "  local job, _, h = fp_parse(ARGV[1])\n"
    "  if h then pcall(fp_event, job, h, ARGV[4], tonumber(ARGV[5]) or -1, fp_now()) end\n"
    "end\n"
    "if not removed then return 0 end\n"
    "local due = fp_now() + tonumber(ARGV[3])\n"
    "redis.call('ZADD', KEYS[2], due, ARGV[2])\n"
    "return 1\n";

/* Parked hosts that are due get as many tasks back at the head of the queue as their
 * budget lets start now (the take script judges them again). Each host is judged in a
 * pcall: one whose keys are damaged must not stall every parked host. Its tasks go back
 * to the queue unjudged, where the take script fails them with Redis's error; a park
 * list that is not a list holds no task, and its host leaves fp:parked. */
const char fp_script_promote[] = FP_LUA_POLITE
    "local now = fp_now()\n"
    "local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, ARGV[1])\n"
    "for i = #due, 1, -1 do redis.call('LPUSH', KEYS[2], due[i]) end\n"
    "if #due > 0 then redis.call('ZREM', KEYS[1], unpack(due)) end\n"
    "local moved = #due\n"
    "local function back(pk, n)\n"
    "  local ts = redis.call('LPOP', pk, n)\n"
    "  if not ts then return 0 end\n"
    "  for i = #ts, 1, -1 do redis.call('LPUSH', KEYS[2], ts[i]) end\n"
    "  return #ts\n"
    "end\n"
    "local function promote(h)\n"
    "  local s = fp_host(h, now)\n"
    "  local len = redis.call('LLEN', s.pk)\n"
    "  local v = redis.call('HMGET', s.k, 'conns', 'rate')\n"
    "  local n, nxt = fp_room(s, tonumber(v[1]) or 0, tonumber(v[2]) or 0, now)\n"
    "  n = math.min(n, len, 256)\n"
    "  if n > 0 then moved = moved + back(s.pk, n) end\n"
    "  if n >= len then redis.call('ZREM', KEYS[3], h)\n"
    "  else redis.call('ZADD', KEYS[3], math.max(nxt, now + 20), h) end\n"
    "end\n"
    "local hosts = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 100)\n"
    "for _, h in ipairs(hosts) do\n"
    "  if not pcall(promote, h) then\n"
    "    local pk = 'fp:park:' .. h\n"
    "    local ok, n = pcall(back, pk, 256)\n"
    "    if ok then moved = moved + n end\n"
    "    local left = redis.pcall('LLEN', pk)\n"
    "    if type(left) == 'number' and left > 0 then\n"
    "      redis.call('ZADD', KEYS[3], now + 1000, h)\n"
    "    else redis.call('ZREM', KEYS[3], h) end\n"
    "  end\n"
    "end\n"
    "return moved\n";

const char fp_script_release[] =
    FP_LUA_TASK "local worker, n = fp_worker_of(KEYS[1]), 0\n"
                "while true do\n"
                "  local t = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')\n"
                "  if not t then break end\n"
                "  fp_release(worker, t)\n"
                "  n = n + 1\n"
                "end\n"
                "return n\n";

const char fp_script_bury[] = FP_LUA_TASK "redis.call('LREM', KEYS[1], 1, ARGV[1])\n"
                                          "fp_release(fp_worker_of(KEYS[1]), ARGV[1])\n"
                                          "redis.call('RPUSH', KEYS[2], ARGV[1])\n"
                                          "redis.call('LTRIM', KEYS[2], -10000, -1)\n"
                                          "return 1\n";

/* Every call may fail (pcall): this is the way out for a task whose result Redis refused.
 * The result slot (or, if the result hash is unusable, leaving the processing list) says
 * whether this is the first time, so a repeated call counts nothing. */
const char fp_script_requeue[] =
    FP_LUA_TASK "if redis.call('EXISTS', KEYS[3]) == 1 then return -1 end\n"
                "if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end\n"
                "fp_release(fp_worker_of(KEYS[1]), ARGV[1])\n"
                "redis.call('LPUSH', KEYS[2], ARGV[2])\n"
                "return 1\n";

const char fp_script_give_back[] =
    FP_LUA_TASK "if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end\n"
                "fp_release(fp_worker_of(KEYS[1]), ARGV[1])\n"
                "redis.call('LPUSH', KEYS[2], ARGV[1])\n"
                "return 1\n";

const char fp_script_forget[] =
    "if redis.call('LLEN', KEYS[1]) > 0 or redis.call('EXISTS', KEYS[2]) == 1 then return 0 end\n"
    "redis.call('SREM', KEYS[3], ARGV[1])\n"
    "return 1\n";

const char fp_script_now[] = "return redis.call('TIME')\n";

/* Calls ----------------------------------------------------------------------------- */

static void add(fp_call *c, const char *s, size_t len)
{
    c->argv[c->argc] = s;
    c->len[c->argc] = len;
    c->argc++;
}

static void add_str(fp_call *c, const char *s)
{
    add(c, s, strlen(s));
}

/* Room in c->buf for one key or number: the builders never ask for more than it holds. */
static char *room(fp_call *c)
{
    char *p = c->buf + c->used;
    c->used += FP_KEY_MAX;
    return p;
}

static void add_u64(fp_call *c, uint64_t v)
{
    char *p = room(c);
    add(c, p, (size_t)snprintf(p, FP_KEY_MAX, "%" PRIu64, v));
}

static void add_job_key(fp_call *c, uint64_t job, fp_job_key which)
{
    add_str(c, fp_key_job(room(c), job, which));
}

static void reset(fp_call *c)
{
    c->argc = 0;
    c->used = 0;
    c->task_at = -1;
    c->script = NULL;
}

static void add_task(fp_call *c, const char *task, size_t len)
{
    c->task_at = c->argc;
    add(c, task, len);
}

static void start(fp_call *c, const char *script, int numkeys)
{
    reset(c);
    add_str(c, "EVAL");
    add_str(c, script);
    add_u64(c, (uint64_t)numkeys);
    c->script = script;
}

#define SHA_CACHE 32 /* more than the scripts there are */

const char *fp_script_sha(const char *script)
{
    static struct {
        const char *script;
        char hex[41];
    } cache[SHA_CACHE];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0, i;
    size_t k;

    for (k = 0; k < SHA_CACHE && cache[k].script; k++)
        if (cache[k].script == script)
            return cache[k].hex[0] ? cache[k].hex : NULL;
    if (k == SHA_CACHE)
        return NULL;
    cache[k].script = script;
    if (EVP_Digest(script, strlen(script), md, &n, EVP_sha1(), NULL) != 1 || n != 20)
        return NULL; /* remembered as none: EVAL it is */
    for (i = 0; i < n; i++)
        snprintf(cache[k].hex + 2 * i, 3, "%02x", md[i]);
    return cache[k].hex;
}

void fp_call_by_sha(fp_call *c)
{
    const char *sha = c->script ? fp_script_sha(c->script) : NULL;

    if (sha == NULL || c->argc < 2)
        return;
    c->argv[0] = "EVALSHA";
    c->len[0] = 7;
    c->argv[1] = sha;
    c->len[1] = 40;
}

void fp_call_by_source(fp_call *c)
{
    if (c->script == NULL || c->argc < 2)
        return;
    c->argv[0] = "EVAL";
    c->len[0] = 4;
    c->argv[1] = c->script;
    c->len[1] = strlen(c->script);
}

int fp_call_is_by_sha(const fp_call *c)
{
    return c->argc >= 2 && c->len[0] == 7 && memcmp(c->argv[0], "EVALSHA", 7) == 0;
}

void fp_call_finish_head(fp_call *c, const char *worker, int n)
{
    start(c, fp_script_finish, 2 + FP_FINISH_KEYS * n);
    add_str(c, fp_key_proc(room(c), worker));
    add_str(c, FP_KEY_DONE);
}

void fp_call_finish_part(fp_call *c, const fp_finish *f)
{
    reset(c);
    add_job_key(c, f->job, FP_JOB_META);
    add_job_key(c, f->job, FP_JOB_OUT);
    if (f->task)
        add_task(c, f->task, f->task_len);
    else
        add(c, "", 0);
    add_u64(c, f->idx);
    add(c, f->result, f->result_len);
    add_str(c, f->ok ? "1" : "0");
    add_str(c, f->status);
    add_u64(c, f->bytes);
    add_u64(c, f->total_us);
    add_u64(c, f->job);
}

void fp_call_finish(fp_call *c, const char *worker, const fp_finish *f)
{
    fp_call part;
    int i;

    fp_call_finish_head(c, worker, 1);
    fp_call_finish_part(&part, f);
    /* Numbers and keys of the part live in its buffer: copy them into c's. */
    for (i = 0; i < part.argc; i++) {
        if (i == part.task_at)
            c->task_at = c->argc;
        if (part.argv[i] >= part.buf && part.argv[i] < part.buf + sizeof(part.buf)) {
            char *p = room(c);
            memcpy(p, part.argv[i], part.len[i] + 1);
            add(c, p, part.len[i]);
        } else {
            add(c, part.argv[i], part.len[i]);
        }
    }
}

void fp_call_take(fp_call *c, const char *worker, int n, int spare, int concurrency,
                  int recovered_slots, long lease_ms, const char *check, size_t check_len)
{
    start(c, fp_script_take, 4);
    add_str(c, FP_KEY_TASKS);
    add_str(c, fp_key_proc(room(c), worker));
    add_str(c, FP_KEY_WORKERS);
    add_str(c, fp_key_heartbeat(room(c), worker));
    add_u64(c, (uint64_t)(n > 0 ? n : 0));
    add_str(c, worker);
    add_u64(c, (uint64_t)(recovered_slots > 0 ? recovered_slots : 0));
    add_u64(c, FP_HEARTBEAT_TTL_MS);
    add_u64(c, (uint64_t)(lease_ms > 0 ? lease_ms : 1));
    if (check)
        add(c, check, check_len);
    else
        add(c, "", 0);
    add_u64(c, (uint64_t)(spare > 0 ? spare : 0));
    add_u64(c, (uint64_t)(concurrency > 0 ? concurrency : 0));
}

void fp_call_seal(fp_call *c, uint64_t job)
{
    start(c, fp_script_seal, 2);
    add_job_key(c, job, FP_JOB_META);
    add_str(c, FP_KEY_DONE);
    add_u64(c, job);
}

void fp_call_retry(fp_call *c, const char *worker, uint64_t job, const char *task, size_t task_len,
                   const char *next, size_t next_len, long delay_ms, const char *status,
                   long retry_after_s)
{
    char *p;

    start(c, fp_script_retry, 3);
    add_str(c, fp_key_proc(room(c), worker));
    add_str(c, FP_KEY_RETRY);
    add_job_key(c, job, FP_JOB_META);
    add_task(c, task, task_len);
    add(c, next, next_len);
    add_u64(c, (uint64_t)(delay_ms > 0 ? delay_ms : 0));
    add_str(c, status ? status : "");
    p = room(c);
    add(c, p, (size_t)snprintf(p, FP_KEY_MAX, "%ld", retry_after_s >= 0 ? retry_after_s : -1L));
}

void fp_call_promote(fp_call *c, int max)
{
    start(c, fp_script_promote, 3);
    add_str(c, FP_KEY_RETRY);
    add_str(c, FP_KEY_TASKS);
    add_str(c, FP_KEY_PARKED);
    add_u64(c, (uint64_t)(max > 0 ? max : 0));
}

void fp_call_release(fp_call *c, const char *worker)
{
    start(c, fp_script_release, 2);
    add_str(c, fp_key_proc(room(c), worker));
    add_str(c, FP_KEY_TASKS);
}

void fp_call_bury(fp_call *c, const char *worker, const char *rec, size_t len)
{
    start(c, fp_script_bury, 2);
    add_str(c, fp_key_proc(room(c), worker));
    add_str(c, FP_KEY_DEAD);
    add_task(c, rec, len);
}

void fp_call_abandon(fp_call *c, const char *worker, const char *task, size_t task_len,
                     uint64_t job, uint64_t idx, const char *result, size_t result_len,
                     const char *status)
{
    start(c, fp_script_abandon, 5);
    add_str(c, fp_key_proc(room(c), worker));
    add_str(c, FP_KEY_DEAD);
    add_job_key(c, job, FP_JOB_META);
    add_job_key(c, job, FP_JOB_OUT);
    add_str(c, FP_KEY_DONE);
    add_task(c, task, task_len);
    add_u64(c, idx);
    add(c, result, result_len);
    add_u64(c, job);
    add_str(c, status);
}

void fp_call_requeue(fp_call *c, const char *worker, const char *task, size_t task_len,
                     const char *next, size_t next_len)
{
    start(c, fp_script_requeue, 3);
    add_str(c, fp_key_proc(room(c), worker));
    add_str(c, FP_KEY_TASKS);
    add_str(c, fp_key_heartbeat(room(c), worker));
    add_task(c, task, task_len);
    add(c, next, next_len);
}

void fp_call_give_back(fp_call *c, const char *worker, const char *task, size_t task_len)
{
    start(c, fp_script_give_back, 2);
    add_str(c, fp_key_proc(room(c), worker));
    add_str(c, FP_KEY_TASKS);
    add_task(c, task, task_len);
}

void fp_call_now(fp_call *c)
{
    start(c, fp_script_now, 0);
}

void fp_call_forget(fp_call *c, const char *worker)
{
    start(c, fp_script_forget, 3);
    add_str(c, fp_key_proc(room(c), worker));
    add_str(c, fp_key_heartbeat(room(c), worker));
    add_str(c, FP_KEY_WORKERS);
    add_str(c, worker);
}

/* For the builders of other files (fp_service.c). */
void fp_call_begin(fp_call *c, const char *script, int numkeys)
{
    start(c, script, numkeys);
}

void fp_call_arg(fp_call *c, const char *s, size_t len)
{
    add(c, s, len);
}

void fp_call_arg_u64(fp_call *c, uint64_t v)
{
    add_u64(c, v);
}

void fp_call_arg_job_key(fp_call *c, uint64_t job, fp_job_key which)
{
    add_job_key(c, job, which);
}

void fp_call_arg_task(fp_call *c, const char *task, size_t len)
{
    add_task(c, task, len);
}

char *fp_call_room(fp_call *c)
{
    return room(c);
}
