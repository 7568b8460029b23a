// SPDX-License-Identifier: GPL-2.0-only
/*
 * What the stress harness costs a faulting host thread.
 *
 * The workload is the shape of will-it-scale's page_fault1: each thread
 * maps an anonymous region, writes one word per 4K page, so that every
 * write is a page fault, and unmaps it, over and over.  It runs
 * twice per round, alternating: bare stores, then the same stores through
 * rmpt_timed_write(), the access path of snp_thp_split_stress's host
 * threads (armed SIGBUS capture, latency into a histogram).  Each round
 * gives the ratio of the two throughputs measured back to back; the median
 * of those ratios, robust to the machine's drift between rounds, is the
 * harness's cost.  The target is >= 0.90.
 *
 * Then one signal round trip, fault to handler to siglongjmp() back, for a
 * bare SIGSEGV (PROT_NONE page) and a bare SIGBUS (memfd past its end),
 * both with a minimal handler, next to the harness's SIGBUS through
 * rmpt_try_write().
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <linux/compiler.h>
#include <linux/sizes.h>

#include "test_util.h"
#include "snp_fault.h"
#include "snp_metrics.h"

#define DEFAULT_MIB		128
#define DEFAULT_SECONDS		1
#define DEFAULT_ROUNDS		5
#define DEFAULT_TRIPS		20000
#define MAX_THREADS		64
#define MAX_ROUNDS		15
#define TARGET_RATIO		0.90

struct bench_params {
	u32 threads;
	u64 region;		/* bytes per mapping */
	u64 seconds;		/* per variant and round */
	u32 rounds;
	u64 trips;		/* signal round trips */
};

struct bench_thread {
	const struct bench_params *p;
	bool harness;
	pthread_t thread;
	u64 faults;
	struct rmpt_access_stats acc;	/* harness: SIGBUS on a store is unexpected */
};

static pthread_barrier_t start_line;
static bool stop;

/* One mapping's worth: every 4K page takes one write fault. */
static void touch_region_bare(u8 *c, u64 size, u64 *faults)
{
	u64 off;

	for (off = 0; off < size; off += SZ_4K) {
		WRITE_ONCE(*(u64 *)(c + off), off);
		(*faults)++;
	}
}

static void touch_region_harness(struct bench_thread *t, u8 *c, u64 size)
{
	struct rmpt_fault f;
	u64 off;

	for (off = 0; off < size; off += SZ_4K) {
		rmpt_timed_write(&t->acc, c + off, off, &f);
		t->faults++;
	}
}

static void *bench_thread_fn(void *arg)
{
	struct bench_thread *t = arg;
	u64 size = t->p->region;
	u8 *c;

	rmpt_sigbus_init();
	pthread_barrier_wait(&start_line);
	while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
		c = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		TEST_ASSERT(c != MAP_FAILED, "mmap(%lu): expected a mapping, got errno %d",
			    size, errno);
		if (t->harness)
			touch_region_harness(t, c, size);
		else
			touch_region_bare(c, size, &t->faults);
		munmap(c, size);
	}
	return NULL;
}

/* All threads, one variant, p->seconds: faults per second over all of them. */
static double run_variant(const struct bench_params *p, bool harness, u64 *unexpected)
{
	static struct bench_thread t[MAX_THREADS];
	u64 start, total = 0;
	u32 i;

	pthread_barrier_init(&start_line, NULL, p->threads + 1);
	__atomic_store_n(&stop, false, __ATOMIC_RELAXED);
	for (i = 0; i < p->threads; i++) {
		t[i] = (struct bench_thread){ .p = p, .harness = harness };
		rmpt_access_stats_init(&t[i].acc);
		TEST_ASSERT(!pthread_create(&t[i].thread, NULL, bench_thread_fn, &t[i]),
			    "pthread_create: expected 0");
	}
	pthread_barrier_wait(&start_line);
	start = rmpt_now_ns();
	usleep(p->seconds * 1000000);
	__atomic_store_n(&stop, true, __ATOMIC_RELAXED);
	for (i = 0; i < p->threads; i++) {
		pthread_join(t[i].thread, NULL);
		total += t[i].faults;
		*unexpected += t[i].acc.sigbus.count;
	}
	pthread_barrier_destroy(&start_line);
	return rmpt_rate(total, rmpt_now_ns() - start);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, u32 n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Alternate the variants, so that drift of the machine hits both alike. */
static void bench_faults(const struct bench_params *p)
{
	double bare[MAX_ROUNDS], harness[MAX_ROUNDS], ratio[MAX_ROUNDS], mr;
	u64 unexpected = 0;
	u32 r;

	for (r = 0; r < p->rounds; r++) {
		bare[r] = run_variant(p, false, &unexpected);
		harness[r] = run_variant(p, true, &unexpected);
		ratio[r] = harness[r] / bare[r];
		printf("# round %u: bare %.0f faults/s, harness %.0f faults/s (%.3f)\n", r + 1,
		       bare[r], harness[r], ratio[r]);
	}
	mr = median(ratio, p->rounds);
	printf("bare_faults_per_s %.0f\n", median(bare, p->rounds));
	printf("harness_faults_per_s %.0f\n", median(harness, p->rounds));
	printf("harness_over_bare %.3f (median of rounds; target >= %.2f: %s)\n", mr,
	       TARGET_RATIO, mr >= TARGET_RATIO ? "met" : "missed");
	if (unexpected)
		printf("# %lu harness stores raised SIGBUS: the numbers are not comparable\n",
		       unexpected);
}

/* ---- signal round trips ---------------------------------------------------- */

static sigjmp_buf bare_env;

static void bare_handler(int sig)
{
	siglongjmp(bare_env, 1);
}

/*
 * Fault at addr, catch, jump back: the minimal handler any VMM would
 * write, saving the signal mask like the harness does.  ns per round trip.
 */
static double bare_round_trip(int signo, u8 *addr, u64 trips)
{
	struct sigaction sa = { .sa_handler = bare_handler }, old;
	u64 i, start;

	sigemptyset(&sa.sa_mask);
	TEST_ASSERT(!sigaction(signo, &sa, &old), "sigaction(%d): got errno %d", signo, errno);
	start = rmpt_now_ns();
	for (i = 0; i < trips; i++) {
		if (!sigsetjmp(bare_env, 1))
			WRITE_ONCE(*(u64 *)addr, i);
	}
	start = rmpt_now_ns() - start;
	TEST_ASSERT(!sigaction(signo, &old, NULL), "sigaction(%d) restore: got errno %d",
		    signo, errno);
	return (double)start / trips;
}

static double harness_round_trip(u8 *addr, u64 trips, struct rmpt_hist *h)
{
	struct rmpt_fault f;
	u64 i, start;

	rmpt_sigbus_init();
	start = rmpt_now_ns();
	for (i = 0; i < trips; i++) {
		TEST_ASSERT(!rmpt_try_write(addr, i, &f), "write %p: expected SIGBUS, got none",
			    addr);
		rmpt_hist_record(h, f.handler_ns - f.start_ns);
	}
	return (double)(rmpt_now_ns() - start) / trips;
}

static void bench_signals(const struct bench_params *p)
{
	struct rmpt_hist delivery;
	u8 *none, *past_eof;
	int fd;

	none = mmap(NULL, SZ_4K, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	fd = memfd_create("page_fault_bench", MFD_CLOEXEC);
	TEST_ASSERT(none != MAP_FAILED && fd >= 0 && !ftruncate(fd, SZ_4K),
		    "setup: expected a PROT_NONE page and a one-page memfd");
	past_eof = mmap(NULL, 2 * SZ_4K, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	TEST_ASSERT(past_eof != MAP_FAILED, "mmap memfd: got errno %d", errno);
	past_eof += SZ_4K;
	rmpt_hist_init(&delivery);

	/* The bare ones first: the harness's handler, once in, stays. */
	printf("sigsegv_round_trip_bare_ns %.0f\n",
	       bare_round_trip(SIGSEGV, none, p->trips));
	printf("sigbus_round_trip_bare_ns %.0f\n",
	       bare_round_trip(SIGBUS, past_eof, p->trips));
	printf("sigbus_round_trip_harness_ns %.0f\n",
	       harness_round_trip(past_eof, p->trips, &delivery));
	printf("# harness SIGBUS delivery (access to handler): p50 %lu ns, p99 %lu ns\n",
	       rmpt_hist_percentile(&delivery, 50), rmpt_hist_percentile(&delivery, 99));
	munmap(past_eof - SZ_4K, 2 * SZ_4K);
	munmap(none, SZ_4K);
	close(fd);
}

/* ---- options ------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: page_fault_bench [-h] [-t THREADS] [-m MIB] [-s SECONDS] [-r ROUNDS] [-n TRIPS]\n"
		"  -t THREADS  faulting threads, 1-%d (default: one per CPU)\n"
		"  -m MIB      size of each mapping (default %d)\n"
		"  -s SECONDS  per variant and round (default %d)\n"
		"  -r ROUNDS   rounds of bare then harness, 1-%d (default %d)\n"
		"  -n TRIPS    signal round trips to time (default %d)\n",
		MAX_THREADS, DEFAULT_MIB, DEFAULT_SECONDS, MAX_ROUNDS, DEFAULT_ROUNDS,
		DEFAULT_TRIPS);
}

/* A number in 1..max; atoi_positive() asserts that arg is a positive one. */
static u32 parse_num(const char *name, const char *arg, u32 max)
{
	u32 val = atoi_positive(name, arg);

	TEST_ASSERT(val <= max, "%s must be at most %u, got %u", name, max, val);
	return val;
}

static void parse_args(int argc, char **argv, struct bench_params *p)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int opt;

	*p = (struct bench_params){
		.threads = cpus < 1 ? 1 : cpus > MAX_THREADS ? MAX_THREADS : cpus,
		.region = DEFAULT_MIB << 20,
		.seconds = DEFAULT_SECONDS,
		.rounds = DEFAULT_ROUNDS,
		.trips = DEFAULT_TRIPS,
	};
	while ((opt = getopt(argc, argv, "t:m:s:r:n:h")) != -1) {
		switch (opt) {
		case 't':
			p->threads = parse_num("-t", optarg, MAX_THREADS);
			break;
		case 'm':
			p->region = (u64)parse_num("-m", optarg, 4096) << 20;
			break;
		case 's':
			p->seconds = parse_num("-s", optarg, 600);
			break;
		case 'r':
			p->rounds = parse_num("-r", optarg, MAX_ROUNDS);
			break;
		case 'n':
			p->trips = parse_num("-n", optarg, 100000000);
			break;
		case 'h':
			usage(stdout);
			exit(KSFT_PASS);
		default:
			usage(stderr);
			exit(KSFT_FAIL);
		}
	}
}

int main(int argc, char **argv)
{
	struct bench_params p;

	parse_args(argc, argv, &p);
	printf("# page_fault_bench: %u threads, %lu MiB mappings, %u rounds of %lu s per variant\n",
	       p.threads, p.region >> 20, p.rounds, p.seconds);
	bench_faults(&p);
	bench_signals(&p);
	return KSFT_PASS;
}
