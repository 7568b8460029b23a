// SPDX-License-Identifier: GPL-2.0-only
/*
 * lib/metrics.c without KVM: the log-bucket histogram on inputs whose
 * percentiles are known, the timed accesses on real faults (a memfd mapped
 * past its end), and the JSON writer, whose output python3's json module
 * must accept and read back to the values written.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "test_util.h"
#include "snp_metrics.h"
#include "snp_rng.h"

#define PAGE		4096UL
/* The histogram's promise: a bucket is at most 1/HALF of its low end wide. */
#define REL_ERR(v)	((v) / RMPT_HIST_HALF + 1)

/* Quoted, backslashed, and with control characters: every escape path. */
#define TRICKY		"q\"b\\n\nt\tc\x01 \xc3\xa9"
#define PY_TRICKY	"'q\"b\\\\n\\nt\\tc\\x01 \\xe9'"

#define TMPDIR_TEMPLATE	"/tmp/rmpt_metrics_test.XXXXXX"

static char tmpdir[sizeof(TMPDIR_TEMPLATE)];

static bool check_bucket(u64 val)
{
	unsigned int idx = rmpt_hist_index(val);
	u64 lo = rmpt_hist_bucket_low(idx), hi = rmpt_hist_bucket_high(idx);

	if (idx < RMPT_HIST_BUCKETS && lo <= val && val <= hi && hi - lo < REL_ERR(lo))
		return true;
	ksft_print_msg("value %lu: expected a bucket of width <= %lu, got %u [%lu, %lu]\n",
		       val, REL_ERR(lo), idx, lo, hi);
	return false;
}

/* Every value lands in a bucket that holds it, and buckets only grow. */
static void test_buckets(void)
{
	u64 seed = 0, v, prev_idx = 0;
	bool ok = true;
	int i, b;

	for (v = 0; v < 5000 && ok; v++) {
		ok = check_bucket(v);
		if (rmpt_hist_index(v) < prev_idx) {
			ksft_print_msg("index(%lu) = %u: expected >= %lu\n", v,
				       rmpt_hist_index(v), prev_idx);
			ok = false;
		}
		prev_idx = rmpt_hist_index(v);
	}
	for (b = 1; b < 64 && ok; b++)
		ok = check_bucket((1ULL << b) - 1) && check_bucket(1ULL << b) &&
		     check_bucket((1ULL << b) + 1);
	for (i = 0; i < 100000 && ok; i++)
		ok = check_bucket(rmpt_rng_next(&seed) >> (i % 64));
	ok = ok && check_bucket(UINT64_MAX) &&
	     rmpt_hist_index(UINT64_MAX) == RMPT_HIST_BUCKETS - 1 &&
	     rmpt_hist_bucket_high(RMPT_HIST_BUCKETS - 1) == UINT64_MAX;
	ksft_test_result(ok, "hist_buckets_hold_their_values\n");
}

static bool expect_u64(const char *what, u64 got, u64 lo, u64 hi)
{
	if (got >= lo && got <= hi)
		return true;
	ksft_print_msg("%s: expected %lu..%lu, got %lu\n", what, lo, hi, got);
	return false;
}

/* Below 2^SUB_BITS the histogram is exact. */
static void test_small_exact(void)
{
	struct rmpt_hist h;
	bool ok = true;
	u64 v;

	rmpt_hist_init(&h);
	for (v = 1; v <= 60; v++)
		rmpt_hist_record(&h, v);
	ok &= expect_u64("p50 of 1..60", rmpt_hist_percentile(&h, 50), 30, 30);
	ok &= expect_u64("p10 of 1..60", rmpt_hist_percentile(&h, 10), 6, 6);
	ok &= expect_u64("p100 of 1..60", rmpt_hist_percentile(&h, 100), 60, 60);
	ok &= expect_u64("p0 of 1..60", rmpt_hist_percentile(&h, 0), 1, 1);
	ok &= expect_u64("count", h.count, 60, 60);
	ksft_test_result(ok, "hist_small_values_exact\n");
}

/* 1..100000 once each: p50 = 50000, p99 = 99000, within the bucket width. */
static void test_uniform(void)
{
	struct rmpt_hist h;
	bool ok = true;
	u64 v;

	rmpt_hist_init(&h);
	for (v = 100000; v >= 1; v--)
		rmpt_hist_record(&h, v);
	ok &= expect_u64("p50", rmpt_hist_percentile(&h, 50), 50000, 50000 + REL_ERR(50000));
	ok &= expect_u64("p99", rmpt_hist_percentile(&h, 99), 99000, 99000 + REL_ERR(99000));
	ok &= expect_u64("p99.9", rmpt_hist_percentile(&h, 99.9), 99900, 100000);
	ok &= expect_u64("p100", rmpt_hist_percentile(&h, 100), 100000, 100000);
	ok &= expect_u64("min", h.min, 1, 1);
	ok &= expect_u64("max", h.max, 100000, 100000);
	ksft_test_result(ok, "hist_uniform_percentiles\n");
}

/* One outlier among 99 equal values: p50 and p99 stay put, the max is exact. */
static void test_outlier(void)
{
	struct rmpt_hist h, empty;
	bool ok = true;
	int i;

	rmpt_hist_init(&h);
	rmpt_hist_init(&empty);
	for (i = 0; i < 99; i++)
		rmpt_hist_record(&h, 1000);
	rmpt_hist_record(&h, 123456789);
	ok &= expect_u64("p50", rmpt_hist_percentile(&h, 50), 1000, 1000 + REL_ERR(1000));
	ok &= expect_u64("p99", rmpt_hist_percentile(&h, 99), 1000, 1000 + REL_ERR(1000));
	ok &= expect_u64("p99.5", rmpt_hist_percentile(&h, 99.5), 123456789, 123456789);
	ok &= expect_u64("empty p50", rmpt_hist_percentile(&empty, 50), 0, 0);
	ksft_test_result(ok, "hist_outlier_and_empty\n");
}

/* Merging two halves gives the histogram of the whole. */
static void test_merge(void)
{
	struct rmpt_hist a, b, all;
	u64 seed = 12345, v;
	int i;

	rmpt_hist_init(&a);
	rmpt_hist_init(&b);
	rmpt_hist_init(&all);
	for (i = 0; i < 20000; i++) {
		v = rmpt_rng_next(&seed) % 10000000;
		rmpt_hist_record(i % 3 ? &a : &b, v);
		rmpt_hist_record(&all, v);
	}
	rmpt_hist_merge(&a, &b);
	ksft_test_result(!memcmp(&a, &all, sizeof(a)), "hist_merge\n");
}

static void test_rate(void)
{
	bool ok = rmpt_rate(1000, 500000000) == 2000 && rmpt_rate(5, 0) == 0;

	ksft_test_result(ok, "rate\n");
}

/* A completed write is timed; a faulting one lands in the SIGBUS histogram. */
static void test_timed_access(void)
{
	struct rmpt_access_stats st;
	struct rmpt_fault f;
	bool done_ok, fault_ok;
	char why[256];
	u8 *map;
	int fd;

	fd = memfd_create("rmpt_metrics_test", MFD_CLOEXEC);
	TEST_ASSERT(fd >= 0 && !ftruncate(fd, PAGE), "memfd: expected a 1-page file");
	map = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	TEST_ASSERT(map != MAP_FAILED, "mmap memfd: got errno %d", errno);
	rmpt_sigbus_init();
	rmpt_access_stats_init(&st);

	done_ok = rmpt_timed_write(&st, map, 42, &f) && *(u64 *)map == 42 &&
		  st.latency.count == 1 && !st.sigbus.count;
	fault_ok = !rmpt_timed_write(&st, map + PAGE, 42, &f) &&
		   !rmpt_check_sigbus(&f, map + PAGE, BUS_ADRERR, why, sizeof(why)) &&
		   st.sigbus.count == 1 && st.latency.count == 1 && st.accesses == 2 &&
		   st.sigbus.max < 1000000000UL;
	ksft_test_result(done_ok, "timed_write_completed\n");
	ksft_test_result(fault_ok, "timed_write_sigbus\n");
	munmap(map, 2 * PAGE);
	close(fd);
}

static void write_sample(struct rmpt_json *j)
{
	static const struct rmpt_metric m[] = {
		{ "faults_per_s", 1234.5, "faults/s", RMPT_BETTER_HIGHER },
		{ "latency_p99_ns", 880, "ns", RMPT_BETTER_LOWER },
	};

	rmpt_json_object_begin(j, NULL);
	rmpt_json_string(j, "text", TRICKY);
	rmpt_json_u64(j, "big", UINT64_MAX);
	rmpt_json_i64(j, "neg", -42);
	rmpt_json_double(j, "half", 0.5);
	rmpt_json_double(j, "nan", NAN);
	rmpt_json_double(j, "inf", INFINITY);
	rmpt_json_bool(j, "yes", true);
	rmpt_json_array_begin(j, "list");
	rmpt_json_u64(j, NULL, 1);
	rmpt_json_object_begin(j, NULL);
	rmpt_json_object_end(j);
	rmpt_json_array_begin(j, NULL);
	rmpt_json_array_end(j);
	rmpt_json_array_end(j);
	rmpt_metrics_json(j, "metrics", m, ARRAY_SIZE(m));
	rmpt_json_object_end(j);
}

/* The checks run by python3 on the document: each value read back. */
static const char py_check[] =
	"import json, sys\n"
	"d = json.load(open(sys.argv[1]))\n"
	"assert d['text'] == " PY_TRICKY ", repr(d['text'])\n"
	"assert d['big'] == 2**64 - 1 and d['neg'] == -42 and d['half'] == 0.5\n"
	"assert d['nan'] is None and d['inf'] is None and d['yes'] is True\n"
	"assert d['list'] == [1, {}, []]\n"
	"m = d['metrics']['faults_per_s']\n"
	"assert m == {'value': 1234.5, 'unit': 'faults/s', 'better': 'higher'}, m\n"
	"assert d['metrics']['latency_p99_ns']['better'] == 'lower'\n";

static int run_python(const char *code, const char *path)
{
	pid_t pid = fork();
	int status;

	TEST_ASSERT(pid >= 0, "fork: got errno %d", errno);
	if (!pid) {
		execlp("python3", "python3", "-c", code, path, (char *)NULL);
		_exit(127);
	}
	TEST_ASSERT(waitpid(pid, &status, 0) == pid, "waitpid: got errno %d", errno);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static void test_json_valid(void)
{
	char path[64], *buf = NULL;
	struct rmpt_json j;
	size_t len = 0;
	FILE *f;
	int err, rc;

	f = open_memstream(&buf, &len);
	TEST_ASSERT(f, "open_memstream: got errno %d", errno);
	rmpt_json_init(&j, f);
	write_sample(&j);
	err = rmpt_json_finish(&j);
	fclose(f);
	snprintf(path, sizeof(path), "%s/sample.json", tmpdir);
	ksft_test_result(!err && !rmpt_write_file_atomic(path, buf, len), "json_written\n");

	rc = run_python("import json, sys; json.load(open(sys.argv[1]))", path);
	if (rc == 127) {
		ksft_test_result_code(KSFT_SKIP, "json_valid_for_python", "no python3");
		ksft_test_result_code(KSFT_SKIP, "json_values_read_back", "no python3");
	} else {
		ksft_test_result(!rc, "json_valid_for_python\n");
		ksft_test_result(!run_python(py_check, path), "json_values_read_back\n");
	}
	if (rc)
		ksft_print_msg("document:\n%s", buf);
	free(buf);
}

/* Misuse is refused, so a broken writer never yields a broken document. */
static int misuse(int how)
{
	struct rmpt_json j;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	int err;

	rmpt_json_init(&j, f);
	rmpt_json_object_begin(&j, NULL);
	switch (how) {
	case 0:
		rmpt_json_u64(&j, NULL, 1);		/* member without a key */
		break;
	case 1:
		rmpt_json_array_begin(&j, "a");
		rmpt_json_u64(&j, "k", 1);		/* element with a key */
		rmpt_json_array_end(&j);
		break;
	case 2:
		rmpt_json_array_end(&j);		/* wrong closer */
		break;
	case 3:
		break;					/* never closed */
	}
	if (how != 3)
		rmpt_json_object_end(&j);
	if (how == 2)
		rmpt_json_object_end(&j);
	err = rmpt_json_finish(&j);
	fclose(f);
	free(buf);
	return err;
}

static void test_json_misuse(void)
{
	struct rmpt_json j;
	bool ok = true;
	char *buf = NULL;
	size_t len = 0;
	FILE *f;
	int how;

	for (how = 0; how < 4; how++) {
		if (misuse(how) != -EINVAL) {
			ksft_print_msg("misuse %d: expected -EINVAL, got %d\n", how, misuse(how));
			ok = false;
		}
	}
	f = open_memstream(&buf, &len);
	rmpt_json_init(&j, f);
	rmpt_json_u64(&j, NULL, 1);
	rmpt_json_u64(&j, NULL, 2);			/* a second top-level value */
	ok &= rmpt_json_finish(&j) == -EINVAL;
	fclose(f);
	free(buf);
	ksft_test_result(ok, "json_misuse_refused\n");
}

static void test_write_atomic(void)
{
	char path[96], got[16] = "";
	bool ok;
	FILE *f;

	snprintf(path, sizeof(path), "%s/atomic.txt", tmpdir);
	ok = !rmpt_write_file_atomic(path, "hello", 5);
	f = fopen(path, "r");
	ok = ok && f && fread(got, 1, sizeof(got) - 1, f) == 5 && !strcmp(got, "hello");
	if (f)
		fclose(f);
	snprintf(path, sizeof(path), "%s/no/such/dir.txt", tmpdir);
	ok = ok && rmpt_write_file_atomic(path, "x", 1) == -ENOENT;
	ksft_test_result(ok, "write_file_atomic\n");
}

static void cleanup_tmpdir(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", tmpdir);
	if (system(cmd))
		ksft_print_msg("could not remove %s\n", tmpdir);
}

int main(void)
{
	ksft_print_header();
	ksft_set_plan(13);
	snprintf(tmpdir, sizeof(tmpdir), "%s", TMPDIR_TEMPLATE);
	TEST_ASSERT(mkdtemp(tmpdir), "mkdtemp: got errno %d", errno);

	test_buckets();
	test_small_exact();
	test_uniform();
	test_outlier();
	test_merge();
	test_rate();
	test_timed_access();
	test_json_valid();
	test_json_misuse();
	test_write_atomic();

	cleanup_tmpdir();
	ksft_finished();
}
