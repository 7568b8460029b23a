// SPDX-License-Identifier: GPL-2.0-only
/* Measurements for regression gating (include/snp_metrics.h). */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <linux/kernel.h>

#include "test_util.h"
#include "snp_metrics.h"

void rmpt_hist_init(struct rmpt_hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

/*
 * Below 2^SUB_BITS the value is its own bucket.  Above, with e the index
 * of the value's top bit, drop the e - (SUB_BITS - 1) low bits: what is
 * left lies in [HALF, 2 * HALF), and each shift gets HALF buckets of its
 * own.  The two ranges meet without a gap: 2^SUB_BITS lands on index
 * 2 * HALF, right after the exact ones.
 */
unsigned int rmpt_hist_index(u64 val)
{
	unsigned int shift;

	if (val < 2 * RMPT_HIST_HALF)
		return val;
	shift = 63 - __builtin_clzll(val) - (RMPT_HIST_SUB_BITS - 1);
	return shift * RMPT_HIST_HALF + (val >> shift);
}

/* The inverse of rmpt_hist_index(): the smallest value of bucket idx. */
u64 rmpt_hist_bucket_low(unsigned int idx)
{
	unsigned int shift;

	if (idx < 2 * RMPT_HIST_HALF)
		return idx;
	shift = idx / RMPT_HIST_HALF - 1;
	return (u64)(idx - shift * RMPT_HIST_HALF) << shift;
}

/* The largest value of bucket idx. */
u64 rmpt_hist_bucket_high(unsigned int idx)
{
	return idx + 1 < RMPT_HIST_BUCKETS ? rmpt_hist_bucket_low(idx + 1) - 1 : UINT64_MAX;
}

void rmpt_hist_record(struct rmpt_hist *h, u64 val)
{
	h->bucket[rmpt_hist_index(val)]++;
	h->count++;
	h->min = min(h->min, val);
	h->max = max(h->max, val);
}

void rmpt_hist_merge(struct rmpt_hist *dst, const struct rmpt_hist *src)
{
	unsigned int i;

	if (!src->count)
		return;
	for (i = 0; i < RMPT_HIST_BUCKETS; i++)
		dst->bucket[i] += src->bucket[i];
	dst->count += src->count;
	dst->min = min(dst->min, src->min);
	dst->max = max(dst->max, src->max);
}

/*
 * The value at percentile pct (0-100], as HDR histograms report it: the
 * highest value of the bucket holding the rank ceil(pct% of count), never
 * above the largest value recorded nor below the smallest.  0 for an empty
 * histogram.
 */
u64 rmpt_hist_percentile(const struct rmpt_hist *h, double pct)
{
	double want = pct / 100.0 * (double)h->count;
	u64 rank = (u64)want, seen = 0;
	unsigned int i;

	if (!h->count)
		return 0;
	if ((double)rank < want)
		rank++;
	rank = clamp(rank, (u64)1, h->count);
	for (i = 0; i < RMPT_HIST_BUCKETS; i++) {
		seen += h->bucket[i];
		if (seen >= rank)
			break;
	}
	/* min <= max, as count > 0 */
	return clamp(rmpt_hist_bucket_high(min(i, RMPT_HIST_BUCKETS - 1)), h->min, h->max);
}

/* Events per second; 0 when no time passed. */
double rmpt_rate(u64 events, u64 elapsed_ns)
{
	return elapsed_ns ? (double)events * 1e9 / (double)elapsed_ns : 0;
}

void rmpt_access_stats_init(struct rmpt_access_stats *st)
{
	st->accesses = 0;
	rmpt_hist_init(&st->latency);
	rmpt_hist_init(&st->sigbus);
}

/* rmpt_try_*() stamped the start: one more clock read closes the interval. */
static bool access_account(struct rmpt_access_stats *st, bool completed,
			   const struct rmpt_fault *f)
{
	rmpt_bump(&st->accesses);
	if (completed)
		rmpt_hist_record(&st->latency, rmpt_now_ns() - f->start_ns);
	else
		rmpt_hist_record(&st->sigbus, f->handler_ns - f->start_ns);
	return completed;
}

bool rmpt_timed_write(struct rmpt_access_stats *st, void *addr, u64 val, struct rmpt_fault *f)
{
	return access_account(st, rmpt_try_write(addr, val, f), f);
}

bool rmpt_timed_read(struct rmpt_access_stats *st, void *addr, u64 *val, struct rmpt_fault *f)
{
	return access_account(st, rmpt_try_read(addr, val, f), f);
}

void rmpt_json_init(struct rmpt_json *j, FILE *f)
{
	memset(j, 0, sizeof(*j));
	j->f = f;
}

static bool json_fail(struct rmpt_json *j, int err)
{
	if (!j->err)
		j->err = err;
	return false;
}

static void json_indent(struct rmpt_json *j)
{
	fprintf(j->f, "\n%*s", 2 * j->depth, "");
}

/* Control characters, quote and backslash escaped; other bytes as they are. */
static void json_put_string(struct rmpt_json *j, const char *s)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");

	fputc('"', j->f);
	for (; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(j->f, "\\%c", *p);
		else if (*p == '\n' || *p == '\t')
			fprintf(j->f, "\\%c", *p == '\n' ? 'n' : 't');
		else if (*p < 0x20)
			fprintf(j->f, "\\u%04x", *p);
		else
			fputc(*p, j->f);
	}
	fputc('"', j->f);
}

/*
 * Start a value: members of an object need a key, array elements and the
 * top-level value must not have one, and there is one top-level value
 * (done once it began).  False (and the error kept) on misuse.
 */
static bool json_value_begin(struct rmpt_json *j, const char *key)
{
	bool want_key = j->depth && !j->in_array[j->depth - 1];

	if (j->err)
		return false;
	if ((j->done && !j->depth) || want_key != !!key)
		return json_fail(j, -EINVAL);
	if (!j->depth) {
		j->done = true;
		return true;
	}
	if (j->has_items[j->depth - 1])
		fputc(',', j->f);
	j->has_items[j->depth - 1] = true;
	json_indent(j);
	if (key) {
		json_put_string(j, key);
		fputs(": ", j->f);
	}
	return true;
}

void rmpt_json_open(struct rmpt_json *j, const char *key, bool array)
{
	if (!json_value_begin(j, key))
		return;
	if (j->depth == RMPT_JSON_MAX_DEPTH) {
		json_fail(j, -EINVAL);
		return;
	}
	fputc(array ? '[' : '{', j->f);
	j->in_array[j->depth] = array;
	j->has_items[j->depth] = false;
	j->depth++;
}

void rmpt_json_close(struct rmpt_json *j, bool array)
{
	if (j->err)
		return;
	if (!j->depth || j->in_array[j->depth - 1] != array) {
		json_fail(j, -EINVAL);
		return;
	}
	j->depth--;
	if (j->has_items[j->depth])
		json_indent(j);
	fputc(array ? ']' : '}', j->f);
}

void rmpt_json_string(struct rmpt_json *j, const char *key, const char *val)
{
	if (json_value_begin(j, key))
		json_put_string(j, val);
}

/* A number, true, false or null, as printf() writes it. */
static __printf(3, 4) void json_raw(struct rmpt_json *j, const char *key, const char *fmt, ...)
{
	va_list ap;

	if (!json_value_begin(j, key))
		return;
	va_start(ap, fmt);
	vfprintf(j->f, fmt, ap);
	va_end(ap);
}

void rmpt_json_u64(struct rmpt_json *j, const char *key, u64 val)
{
	json_raw(j, key, "%llu", (unsigned long long)val);
}

void rmpt_json_i64(struct rmpt_json *j, const char *key, long long val)
{
	json_raw(j, key, "%lld", val);
}

/* JSON has no NaN or infinity: those become null. */
void rmpt_json_double(struct rmpt_json *j, const char *key, double val)
{
	if (isfinite(val))
		json_raw(j, key, "%.10g", val);
	else
		json_raw(j, key, "null");
}

void rmpt_json_bool(struct rmpt_json *j, const char *key, bool val)
{
	json_raw(j, key, "%s", val ? "true" : "false");
}

/* 0, or the first error: -EINVAL for misuse or an unfinished document, -EIO. */
int rmpt_json_finish(struct rmpt_json *j)
{
	if (!j->err && (j->depth || !j->done))
		json_fail(j, -EINVAL);
	fputc('\n', j->f);
	if (fflush(j->f) || ferror(j->f))
		json_fail(j, -EIO);
	return j->err;
}

static const char *better_name(enum rmpt_better better)
{
	static const char *const names[] = {
		[RMPT_BETTER_NONE] = "none", [RMPT_BETTER_HIGHER] = "higher",
		[RMPT_BETTER_LOWER] = "lower",
	};

	return better < ARRAY_SIZE(names) ? names[better] : names[RMPT_BETTER_NONE];
}

/* "key": {"<name>": {"value": v, "unit": "u", "better": "b"}, ...} */
void rmpt_metrics_json(struct rmpt_json *j, const char *key,
		       const struct rmpt_metric *m, size_t n)
{
	size_t i;

	rmpt_json_object_begin(j, key);
	for (i = 0; i < n; i++) {
		rmpt_json_object_begin(j, m[i].name);
		rmpt_json_double(j, "value", m[i].value);
		rmpt_json_string(j, "unit", m[i].unit);
		rmpt_json_string(j, "better", better_name(m[i].better));
		rmpt_json_object_end(j);
	}
	rmpt_json_object_end(j);
}

void rmpt_metrics_print(const struct rmpt_metric *m, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		ksft_print_msg("metric %s %.10g %s (better: %s)\n", m[i].name,
			       m[i].value, m[i].unit, better_name(m[i].better));
}

/*
 * Write buf to path through a temporary file in the same folder and a
 * rename, so that a reader never sees half a document.  0 or -errno.
 */
int rmpt_write_file_atomic(const char *path, const char *buf, size_t len)
{
	char tmp[4096];
	ssize_t n;
	size_t done = 0;
	int fd, err = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, getpid()) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	while (!err && done < len) {
		n = write(fd, buf + done, len - done);
		if (n < 0)
			err = -errno;
		else
			done += n;
	}
	if (close(fd) && !err)
		err = -errno;
	if (!err && rename(tmp, path))
		err = -errno;
	if (err)
		unlink(tmp);
	return err;
}
