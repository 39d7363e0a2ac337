/* fp_polite.h - cluster-wide per-host limits: the Lua code the queue scripts share.
 *
 * Every worker on every machine takes tasks through the take script, so the per-host
 * budget is checked there, in Redis, atomically: a task whose host has no budget left is
 * parked in that host's list (fp:park:<host>) instead of reaching a worker, so it holds
 * no worker slot and never blocks the tasks of other hosts. Two budgets, both per job
 * (fields host_conns and host_rate of fp:job:<id>; the master writes its defaults there):
 *  - transfers in flight: one lease per taken task in the zset fp:lease:<host> (member
 *    "<worker>\t<job>\t<idx>", score its expiry). A lease lives exactly as long as its task
 *    sits in a processing list: every script that takes a task out of one (finish, retry,
 *    bury, release, and the reaper's requeue) gives the lease back, and the expiry is the
 *    backstop should all of those fail. Giving one back moves one parked task of that host
 *    to the head of the queue at once.
 *  - requests per second: a token bucket in fp:host:<host> (fields tok, ts), holding at
 *    most a quarter of a second's tokens (at least one), so a second sees at most the rate
 *    plus that small burst.
 * Backpressure lives in the same hash: pause (ms until which no request may start, from
 * Retry-After or repeated failures), slow and slow_ms (a 429/503 halves the rate; the
 * factor doubles back every FP_POLITE_RECOVER_MS), fails (consecutive failures).
 * fp:parked (zset host -> ms) lists the hosts with parked tasks and when to look at them
 * again; the master's promote step moves those that are due back to the queue.
 *
 * robots.txt's Crawl-delay (jobs with --robots only, task flag FP_TASK_ROBOTS): the worker
 * that learns a host's rules writes fp:crawl:<host> = the delay in ms (0: none) until
 * they expire (FP_LUA_CRAWL); for such tasks the host's rate is at most 1000 / delay per
 * second (the job's host_rate, if lower, still applies), why = crawl when it binds. Before
 * the rules are known, one task per origin is let through (fp:crawl:probe:<origin> for
 * at most FP_CRAWL_PROBE_MS: its worker fetches or reads the rules) and the host's other
 * robots tasks are parked (why = robots) until the key is there; the first request then
 * spends the host's token. Tasks of other jobs never read these keys.
 *
 * The keys are computed inside the scripts from the task's URL, which a Redis Cluster
 * would refuse; fetchpool runs on one Redis (or a primary with replicas). The host is the
 * URL's host name, lower-cased, without userinfo and port; for a task whose flags carry a
 * label count (bits 4-7, a job with host_group=domain) it is the host's last that many
 * labels, its registered domain, which the master found with libpsl (master/hostgroup.h):
 * Lua has no public suffix list, and the count in the record costs no Redis call. Every
 * script derives a task's key from its record with fp_parse, so all derive the same. */
#ifndef FP_POLITE_H
#define FP_POLITE_H

#include "fp_keys.h"
#include "fp_record.h"

#define FP_POLITE_RECOVER_MS 10000   /* a halved rate doubles back in this time */
#define FP_POLITE_SLOW_MIN   0.0625  /* a rate is never cut below 1/16 of its setting */
#define FP_POLITE_HOST_TTL   3600000 /* an idle host's state is forgotten after an hour */

#define FP_POLITE_GIVE_UP   10     /* connection failures in a row: host_unavailable */
#define FP_CRAWL_PROBE_MS   10000  /* one robots task per host finds its rules out in this */
#define FP_CRAWL_WAIT_MS    250    /* the others look again this often meanwhile */
#define FP_POLITE_PAUSE_MAX 600000 /* a Retry-After pauses a host for at most 10 min */

/* Flag bits 4-7 of a task (fp_record.h) as the Lua reads them: (flags / 16) % 16. */
#define FP_POLITE_GROUP_UNIT 16
_Static_assert(FP_POLITE_GROUP_UNIT == 1u << FP_TASK_GROUP_SHIFT &&
                   FP_POLITE_GROUP_UNIT == FP_TASK_GROUP_MAX + 1,
               "the Lua's flag arithmetic");

#define FP_STR_(x) #x
#define FP_STR(x)  FP_STR_(x)

/* The Lua source below is kept as written (clang-format would fold the macros). */
/* clang-format off */

/* Helpers of every script that settles or moves a task: parsing, giving a lease back. */
#define FP_LUA_TASK \
    "-- now in ms, by Redis's clock\n" \
    "local function fp_now()\n" \
    "  local t = redis.call('TIME')\n" \
    "  return t[1] * 1000 + math.floor(t[2] / 1000)\n" \
    "end\n" \
    "-- the last n labels of host h (one trailing dot dropped): its registered domain\n" \
    "local function fp_group(h, n)\n" \
    "  if string.byte(h, -1) == 46 then h = string.sub(h, 1, -2) end\n" \
    "  local _, dots = string.gsub(h, '%.', '')\n" \
    "  local i = 0\n" \
    "  for _ = 1, dots - n + 1 do i = string.find(h, '.', i + 1, true) end\n" \
    "  return string.sub(h, i + 1)\n" \
    "end\n" \
    "-- job, idx and host key of a task record; nil if it does not parse. The key is the\n" \
    "-- host name, or its registered domain if the task's flags say so (bits 4-7)\n" \
    "local function fp_parse(t)\n" \
    "  local job, idx, at, url = string.match(t, '^T1\\t(%d+)\\t(%d+)\\t[^\\t]*\\t[^\\t]*\\t'\n" \
    "                                         .. '[^\\t]*\\t()[^\\t]*\\t([^\\t]*)$')\n" \
    "  if not job then return nil end\n" \
    "  local a = string.match(url, '^[%a][%w+.-]*://([^/?#]*)')\n" \
    "  if not a then return nil end\n" \
    "  a = string.match(a, '^.*@(.*)$') or a\n" \
    "  local h = string.match(a, '^(%[[^%]]*%])') or string.match(a, '^([^:]*)')\n" \
    "  if not h or h == '' then return nil end\n" \
    "  h = string.lower(h)\n" \
    "  local name = h\n" \
    "  -- flags of one digit, the common case, hold no label count: one byte looked at\n" \
    "  if string.byte(t, at + 1) ~= 9 then\n" \
    "    local n = math.floor((tonumber(string.match(t, '^%d+', at)) or 0) / " FP_STR(FP_POLITE_GROUP_UNIT) ") % " FP_STR(FP_POLITE_GROUP_UNIT) "\n" \
    "    if n > 0 then h = fp_group(h, n) end\n" \
    "  end\n" \
    "  return job, idx, h, name\n" \
    "end\n" \
    "-- gives back the lease of a task leaving worker's processing list and lets one parked\n" \
    "-- task of its host into the queue; fp_unlease takes what fp_parse made of the task\n" \
    "local function fp_unlease(worker, job, idx, h)\n" \
    "  if redis.call('ZREM', 'fp:lease:' .. h, worker .. '\\t' .. job .. '\\t' .. idx) == 1 then\n" \
    "    local pk = 'fp:park:' .. h\n" \
    "    if redis.call('LMOVE', pk, '" FP_KEY_TASKS "', 'LEFT', 'LEFT')\n" \
    "       and redis.call('LLEN', pk) == 0 then\n" \
    "      redis.call('ZREM', '" FP_KEY_PARKED "', h)\n" \
    "    end\n" \
    "  end\n" \
    "end\n" \
    "local function fp_release(worker, t)\n" \
    "  local job, idx, h = fp_parse(t)\n" \
    "  if h then fp_unlease(worker, job, idx, h) end\n" \
    "end\n" \
    "-- What a host's answer says about it: any answer clears its run of failures; 429\n" \
    "-- and 503 halve its budget (once a second at most); a Retry-After (s, -1 none)\n" \
    "-- pauses it; a connection failure adds to the run, pauses it once the run is 3\n" \
    "-- long, and gives it up for the job once the run is FP_POLITE_GIVE_UP long.\n" \
    "local FP_GIVE_UP = " FP_STR(FP_POLITE_GIVE_UP) "\n" \
    "local FP_CONN_FAIL = {timeout = true, connect_refused = true, connect_failed = true,\n" \
    "                      connection_reset = true, dns = true}\n" \
    "local FP_NOT_HOST = {host_unavailable = true, worker_lost = true, internal_error = true,\n" \
    "                     disk_full = true, io_error = true, invalid_input = true,\n" \
    "                     blocked_address = true, bad_scheme = true}\n" \
    "local function fp_event(job, h, status, ra, now)\n" \
    "  if FP_NOT_HOST[status] then return end\n" \
    "  local k, pause = 'fp:host:' .. h, 0\n" \
    "  if ra >= 0 then pause = now + math.min(ra * 1000, " FP_STR(FP_POLITE_PAUSE_MAX) ") end\n" \
    "  if FP_CONN_FAIL[status] then\n" \
    "    local n = redis.call('HINCRBY', k, 'fails', 1)\n" \
    "    if n >= 3 then pause = math.max(pause, now + math.min(10000, 250 * (n - 2))) end\n" \
    "    if n >= FP_GIVE_UP then\n" \
    "      redis.call('SADD', 'fp:job:' .. job .. ':down', h)\n" \
    "    end\n" \
    "  else\n" \
    "    redis.call('HDEL', k, 'fails')\n" \
    "    if status == 'http_429' or status == 'http_503' then\n" \
    "      local v = redis.call('HMGET', k, 'slow', 'slow_ms')\n" \
    "      local f, at = tonumber(v[1]) or 1, tonumber(v[2]) or 0\n" \
    "      if now - at >= 1000 then\n" \
    "        if f < 1 then f = math.min(1, f * 2 ^ ((now - at) / " FP_STR(FP_POLITE_RECOVER_MS) ")) end\n" \
    "        redis.call('HSET', k, 'slow', math.max(" FP_STR(FP_POLITE_SLOW_MIN) ", f / 2), 'slow_ms', now)\n" \
    "      end\n" \
    "    end\n" \
    "  end\n" \
    "  if pause > (tonumber(redis.call('HGET', k, 'pause')) or 0) then\n" \
    "    redis.call('HSET', k, 'pause', pause)\n" \
    "  end\n" \
    "  if redis.call('EXISTS', k) == 1 then redis.call('PEXPIRE', k, " FP_STR(FP_POLITE_HOST_TTL) ") end\n" \
    "end\n" \
    "local function fp_worker_of(proc)\n" \
    "  return string.sub(proc, " FP_STR(FP_KEY_PROC_PREFIX_LEN) " + 1)\n" \
    "end\n"

/* The budget: host state, leases, tokens (the take and promote scripts). */
#define FP_LUA_BUDGET \
    "local FP_HOSTS = {}\n" \
    "local function fp_host(h, now)\n" \
    "  local s = FP_HOSTS[h]\n" \
    "  if s then return s end\n" \
    "  local k = 'fp:host:' .. h\n" \
    "  local v = redis.call('HMGET', k, 'tok', 'ts', 'slow', 'slow_ms', 'pause', 'fails')\n" \
    "  s = {name = h, k = k, lk = 'fp:lease:' .. h, pk = 'fp:park:' .. h,\n" \
    "       tok = tonumber(v[1]), ts = tonumber(v[2]) or now, slow = tonumber(v[3]) or 1,\n" \
    "       slow_ms = tonumber(v[4]) or 0, pause = tonumber(v[5]) or 0,\n" \
    "       fails = tonumber(v[6]) or 0}\n" \
    "  FP_HOSTS[h] = s\n" \
    "  return s\n" \
    "end\n" \
    "-- the budget's factor: cut by backpressure, recovering with time\n" \
    "local function fp_factor(s, now)\n" \
    "  local f = s.slow\n" \
    "  if f < 1 then f = math.min(1, f * 2 ^ ((now - s.slow_ms) / " FP_STR(FP_POLITE_RECOVER_MS) ")) end\n" \
    "  return f\n" \
    "end\n" \
    "local function fp_rate(s, rate, now)\n" \
    "  if rate <= 0 then return 0 end\n" \
    "  return rate * fp_factor(s, now)\n" \
    "end\n" \
    "local function fp_conns(s, conns, now)\n" \
    "  if conns <= 0 then return 0 end\n" \
    "  return math.max(1, math.floor(conns * fp_factor(s, now)))\n" \
    "end\n" \
    "local function fp_leases(s, now)\n" \
    "  if s.leases == nil then\n" \
    "    redis.call('ZREMRANGEBYSCORE', s.lk, '-inf', now)\n" \
    "    s.leases = redis.call('ZCARD', s.lk)\n" \
    "  end\n" \
    "  return s.leases\n" \
    "end\n" \
    "local function fp_tokens(s, r, now)\n" \
    "  local cap = math.max(1, r / 4)\n" \
    "  local tok = s.tok or cap\n" \
    "  return math.min(cap, tok + math.max(0, now - s.ts) * r / 1000)\n" \
    "end\n" \
    "-- how many tasks may start now, and when the next one may (ms; 0: no limit)\n" \
    "local function fp_room(s, conns, rate, now)\n" \
    "  if s.pause > now then return 0, s.pause end\n" \
    "  conns = fp_conns(s, conns, now)\n" \
    "  local n, due = 1000000, 0\n" \
    "  if conns > 0 then\n" \
    "    n = conns - fp_leases(s, now)\n" \
    "    if n <= 0 then\n" \
    "      local first = redis.call('ZRANGE', s.lk, 0, 0, 'WITHSCORES')\n" \
    "      return 0, tonumber(first[2]) or now + 1000\n" \
    "    end\n" \
    "  end\n" \
    "  local r = fp_rate(s, rate, now)\n" \
    "  if r > 0 then\n" \
    "    local tok = fp_tokens(s, r, now)\n" \
    "    local m = math.floor(tok)\n" \
    "    if m < n then n = m end\n" \
    "    due = now + math.ceil((n + 1 - tok) * 1000 / r)\n" \
    "  end\n" \
    "  return n, due\n" \
    "end\n" \
    "-- starts one task if the budget allows: 0, or the time to try again (ms)\n" \
    "local function fp_admit(s, conns, rate, now)\n" \
    "  local n, due = fp_room(s, conns, rate, now)\n" \
    "  if n <= 0 then return due end\n" \
    "  local r = fp_rate(s, rate, now)\n" \
    "  if r > 0 then\n" \
    "    s.tok = fp_tokens(s, r, now) - 1\n" \
    "    s.ts = now\n" \
    "    s.dirty = true\n" \
    "  end\n" \
    "  if conns > 0 then s.leases = s.leases + 1 end\n" \
    "  return 0\n" \
    "end\n" \
    "local function fp_park(s, t, due, job, conns, rate, why)\n" \
    "  redis.call('RPUSH', s.pk, t)\n" \
    "  redis.call('ZADD', '" FP_KEY_PARKED "', 'LT', due, s.name)\n" \
    "  redis.call('HINCRBY', 'fp:job:' .. job .. ':throttle', s.name, 1)\n" \
    "  s.conns, s.rate, s.why, s.dirty = conns, rate, why, true\n" \
    "end\n" \
    "local function fp_save(now)\n" \
    "  for _, s in pairs(FP_HOSTS) do\n" \
    "    if s.dirty then\n" \
    "      local f = {'ts', s.ts}\n" \
    "      if s.tok then f[#f + 1] = 'tok'; f[#f + 1] = s.tok end\n" \
    "      if s.conns then\n" \
    "        for _, x in ipairs({'conns', s.conns, 'rate', s.rate, 'why', s.why, 'parked_ms', now}) do\n" \
    "          f[#f + 1] = x\n" \
    "        end\n" \
    "      end\n" \
    "      redis.call('HSET', s.k, unpack(f))\n" \
    "      redis.call('PEXPIRE', s.k, " FP_STR(FP_POLITE_HOST_TTL) ")\n" \
    "    end\n" \
    "  end\n" \
    "end\n" \
    "-- robots.txt's Crawl-delay of the host for robots tasks: ms (0 none), false if no\n" \
    "-- worker has learnt the host's rules yet (or the key is damaged: advice only)\n" \
    "local FP_CRAWL_WAIT, FP_CRAWL_PROBE = " FP_STR(FP_CRAWL_WAIT_MS) ", " FP_STR(FP_CRAWL_PROBE_MS) "\n" \
    "local FP_CRAWLS = {}\n" \
    "local function fp_crawl(name)\n" \
    "  local c = FP_CRAWLS[name]\n" \
    "  if c == nil then\n" \
    "    c = tonumber(redis.pcall('GET', '" FP_KEY_CRAWL_PREFIX "' .. name)) or false\n" \
    "    FP_CRAWLS[name] = c\n" \
    "  end\n" \
    "  return c\n" \
    "end\n" \
    "-- a task of an origin whose rules no task is finding out yet: the key that says one\n" \
    "-- does (the origin as the task's URL spells it, lower-case); nil if one does\n" \
    "local FP_PROBING = {}\n" \
    "local function fp_crawl_probe(t)\n" \
    "  local o = string.match(t, '\\t([%a][%w+.-]*://[^/?#\\t]*)[^\\t]*$')\n" \
    "  if not o then return nil end\n" \
    "  o = string.lower((string.gsub(o, '://.*@', '://')))\n" \
    "  local k = '" FP_KEY_CRAWL_PREFIX "probe:' .. o\n" \
    "  if FP_PROBING[k] == nil then FP_PROBING[k] = redis.call('EXISTS', k) == 1 end\n" \
    "  if FP_PROBING[k] then return nil end\n" \
    "  return k\n" \
    "end\n" \
    "local function fp_crawl_probing(k)\n" \
    "  redis.call('SET', k, 1, 'PX', FP_CRAWL_PROBE)\n" \
    "  FP_PROBING[k] = true\n" \
    "end\n"

/* The worker's half of Crawl-delay (worker/rcache.c): host h's rules say ms (0: none)
 * until at (unix s). The key lives as long as the longest-lived origin of the host (the
 * value is the last one learnt); if a task was let through to find the rules out, its
 * request spends the host's token, so the next one waits a whole delay. */
#define FP_LUA_CRAWL \
    "local function fp_crawl_learnt(h, ms, at)\n" \
    "  local k = '" FP_KEY_CRAWL_PREFIX "' .. h\n" \
    "  local t = redis.call('TIME')\n" \
    "  if at <= tonumber(t[1]) then return end\n" \
    "  local old = redis.pcall('GET', k)\n" \
    "  if type(old) == 'table' then redis.call('DEL', k); old = false end -- damaged: rewritten\n" \
    "  if old and redis.call('EXPIRETIME', k) > at then\n" \
    "    redis.call('SET', k, ms, 'KEEPTTL')\n" \
    "  else\n" \
    "    redis.call('SET', k, ms, 'EXAT', at)\n" \
    "  end\n" \
    "  if ms > 0 and old ~= tostring(ms) then\n" \
    "    redis.call('HSET', 'fp:host:' .. h, 'tok', 0, 'ts', t[1] * 1000 + math.floor(t[2] / 1000))\n" \
    "    redis.call('PEXPIRE', 'fp:host:' .. h, " FP_STR(FP_POLITE_HOST_TTL) ")\n" \
    "  end\n" \
    "end\n"

#define FP_LUA_POLITE FP_LUA_TASK FP_LUA_BUDGET

/* clang-format on */

#endif
