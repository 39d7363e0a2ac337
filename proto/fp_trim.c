/* fp_trim.c - Lua source and call of the trim script (fp_scripts.h), with which the master
 * that writes a job's results deletes a batch it has spooled from fp:job:<id>:out and adds
 * the batch's successes to the job's latency histogram. */
#include <string.h>

#include "fp_keys.h"
#include "fp_scripts.h"

/* Checked in the script, not before it: a master that stalled between its LRANGE and its
 * trim (a pause, a slow fsync) past the lease may find that another master took the job
 * over, read the same records and trimmed them; trimming again would delete records
 * nobody has read. */
const char fp_script_trim[] =
    "if redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end\n"
    "local n = tonumber(ARGV[2])\n"
    "if redis.call('LINDEX', KEYS[1], n - 1) ~= ARGV[3] then return -2 end\n"
    "redis.call('LTRIM', KEYS[1], n, -1)\n"
    "local t = redis.call('TYPE', KEYS[3]).ok\n"
    "if ARGV[5] ~= '' and (t == 'hash' or t == 'none') then\n"
    "  for b, v in string.gmatch(ARGV[5], '(%d+) (%d+)') do\n"
    "    redis.call('HINCRBY', KEYS[3], b, v)\n"
    "  end\n"
    "end\n"
    "redis.call('PEXPIRE', KEYS[2], ARGV[4])\n"
    "return n\n";

void fp_call_trim(fp_call *c, uint64_t job, const char *writer, uint64_t n, const char *last,
                  size_t last_len, long lease_ms, const char *hist, size_t hist_len)
{
    fp_call_begin(c, fp_script_trim, 3);
    fp_call_arg_job_key(c, job, FP_JOB_OUT);
    fp_call_arg_job_key(c, job, FP_JOB_WRITER);
    fp_call_arg_job_key(c, job, FP_JOB_LAT);
    fp_call_arg(c, writer, strlen(writer));
    fp_call_arg_u64(c, n);
    fp_call_arg(c, last, last_len);
    fp_call_arg_u64(c, lease_ms > 0 ? (uint64_t)lease_ms : 1);
    fp_call_arg(c, hist, hist_len);
}
