/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * snp-rmp selftests: measurements for regression gating (lib/metrics.c).
 *
 *  - rmpt_hist: a latency histogram with HDR-style log buckets.  Values
 *    below 2^RMPT_HIST_SUB_BITS are counted exactly; above, every power of
 *    two is cut into RMPT_HIST_HALF equal sub-buckets, so a percentile is
 *    off by at most 1/RMPT_HIST_HALF of its value (3.2%).  Recording is
 *    O(1) with no allocation; one histogram per thread, merged at the end.
 *  - rmpt_timed_write/_read: one access through rmpt_try_*() with its
 *    latency recorded, the host-thread path of snp_thp_split_stress and of
 *    bench/, so that the benchmark measures the code the test runs.
 *  - rmpt_json: a small streaming JSON writer that refuses misuse (a key
 *    inside an array, none inside an object, unbalanced ends) and writes
 *    non-finite numbers as null, so its output always parses.
 *  - rmpt_metric: one named number with its unit and the direction that is
 *    better, printed both as a KTAP diagnostic and as JSON.
 */
#ifndef SELFTEST_KVM_SNP_METRICS_H
#define SELFTEST_KVM_SNP_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <linux/types.h>

#include "snp_fault.h"

#define RMPT_HIST_SUB_BITS	6
#define RMPT_HIST_HALF		(1U << (RMPT_HIST_SUB_BITS - 1))
/* Exact buckets 0..2^SUB_BITS-1, then HALF per power of two up to 2^64. */
#define RMPT_HIST_BUCKETS	((64 - RMPT_HIST_SUB_BITS + 2) * RMPT_HIST_HALF)

struct rmpt_hist {
	u64 count, min, max;
	u64 bucket[RMPT_HIST_BUCKETS];
};

void rmpt_hist_init(struct rmpt_hist *h);
unsigned int rmpt_hist_index(u64 val);
u64 rmpt_hist_bucket_low(unsigned int idx);
u64 rmpt_hist_bucket_high(unsigned int idx);
void rmpt_hist_record(struct rmpt_hist *h, u64 val);
void rmpt_hist_merge(struct rmpt_hist *dst, const struct rmpt_hist *src);
u64 rmpt_hist_percentile(const struct rmpt_hist *h, double pct);

double rmpt_rate(u64 events, u64 elapsed_ns);

/* One writer per counter: a plain add, stored whole for a thread that watches. */
static inline void rmpt_bump(u64 *counter)
{
	__atomic_store_n(counter, *counter + 1, __ATOMIC_RELAXED);
}

/* Latency of completed accesses, and of SIGBUS delivery for faulted ones. */
struct rmpt_access_stats {
	u64 accesses;
	struct rmpt_hist latency, sigbus;
};

void rmpt_access_stats_init(struct rmpt_access_stats *st);
bool rmpt_timed_write(struct rmpt_access_stats *st, void *addr, u64 val, struct rmpt_fault *f);
bool rmpt_timed_read(struct rmpt_access_stats *st, void *addr, u64 *val, struct rmpt_fault *f);

/* JSON writer */
#define RMPT_JSON_MAX_DEPTH	16

struct rmpt_json {
	FILE *f;
	int depth;
	bool in_array[RMPT_JSON_MAX_DEPTH];
	bool has_items[RMPT_JSON_MAX_DEPTH];
	bool done;		/* the top-level value began */
	int err;		/* first error, -EINVAL misuse or -EIO */
};

void rmpt_json_init(struct rmpt_json *j, FILE *f);
void rmpt_json_open(struct rmpt_json *j, const char *key, bool array);
void rmpt_json_close(struct rmpt_json *j, bool array);
#define rmpt_json_object_begin(j, key)	rmpt_json_open(j, key, false)
#define rmpt_json_object_end(j)		rmpt_json_close(j, false)
#define rmpt_json_array_begin(j, key)	rmpt_json_open(j, key, true)
#define rmpt_json_array_end(j)		rmpt_json_close(j, true)
void rmpt_json_string(struct rmpt_json *j, const char *key, const char *val);
void rmpt_json_u64(struct rmpt_json *j, const char *key, u64 val);
void rmpt_json_i64(struct rmpt_json *j, const char *key, long long val);
void rmpt_json_double(struct rmpt_json *j, const char *key, double val);
void rmpt_json_bool(struct rmpt_json *j, const char *key, bool val);
int rmpt_json_finish(struct rmpt_json *j);

/* Named numbers for the gate: which way is better decides a regression. */
enum rmpt_better {
	RMPT_BETTER_NONE,
	RMPT_BETTER_HIGHER,
	RMPT_BETTER_LOWER,
};

struct rmpt_metric {
	const char *name;
	double value;
	const char *unit;
	enum rmpt_better better;
};

void rmpt_metrics_json(struct rmpt_json *j, const char *key,
		       const struct rmpt_metric *m, size_t n);
void rmpt_metrics_print(const struct rmpt_metric *m, size_t n);

int rmpt_write_file_atomic(const char *path, const char *buf, size_t len);

#endif /* SELFTEST_KVM_SNP_METRICS_H */
