/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * snp-rmp selftests: what snp_thp_split_stress shares with the library
 * files that plan, set up, watch and report its runs (lib/stress_*.c).
 * The program keeps its guest code and the host actors that drive it.
 *
 *  - the schedule (lib/stress_schedule.c): each actor's operations are a
 *    pure function of (seed, actor id), drawn by code the guest runs too;
 *  - the layout of the data region and its control area, which the guest
 *    reads;
 *  - the run's state: parameters, one record per actor, totals;
 *  - setup (lib/stress_setup.c), the actors' threads (lib/stress_actors.c),
 *    the watch over a running test (lib/stress_watch.c), the metrics
 *    document (lib/stress_metrics.c) and the end-of-run report
 *    (lib/stress_report.c).
 */
#ifndef SELFTEST_KVM_SNP_STRESS_H
#define SELFTEST_KVM_SNP_STRESS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "snp_metrics.h"
#include "snp_stamp.h"
#include "snp_util.h"

#define RMPT_STRESS_NAME	"snp_thp_split_stress"
#define RMPT_PAGES_PER_2M	(RMPT_SZ_2M / RMPT_SZ_4K)
#define RMPT_WORDS_PER_PAGE	(RMPT_SZ_4K / sizeof(u64))
#define RMPT_NS_PER_S		1000000000UL
#define RMPT_SPLIT_GAP_US	500
#define RMPT_COLLAPSE_GAP_US	200

/* ---- the schedule (lib/stress_schedule.c) -------------------------------- */

#define RMPT_SCHED_HASH_OPS	1000
#define RMPT_PROBE_ONE_IN	16	/* host ops that probe private memory */
#define RMPT_PUNCH_ONE_IN	4	/* splitter ops that punch the view */
#define RMPT_CONVERT_2M_ONE_IN	8	/* conversions of a whole 2M range */
#define RMPT_HASH_INIT		0xcbf29ce484222325ULL
#define RMPT_HASH_PRIME		0x100000001b3ULL

enum rmpt_actor_kind {
	RMPT_ACTOR_VCPU = 1,
	RMPT_ACTOR_HOST,
	RMPT_ACTOR_SPLITTER,
	RMPT_ACTOR_COLLAPSER,
};

#define RMPT_ACTOR_ID(kind, idx)	(((u64)(kind) << 32) | (idx))

/*
 * The data region: a control area (parameters, per-vCPU statistics, from
 * RMPT_CTL_TABLE_OFF the guest's sequence tables) that nobody discards,
 * then the stress area, one slice of whole 2M ranges per vCPU, plus
 * leftovers only the host stamps.
 */
#define RMPT_CTL_TABLE_OFF	(16 * 1024)

struct rmpt_layout {
	u64 nr_chunks;		/* 2M ranges in the data region */
	u64 ctl_chunks;		/* of which the control area */
	u64 first_page;
	u64 nr_pages;		/* in the stress area */
	u64 vcpu_pages;
	u32 nr_vcpus;
};

void rmpt_layout_compute(struct rmpt_layout *l, u64 mem_mib, u32 nr_vcpus);
int rmpt_page_owner(const struct rmpt_layout *l, u64 page);

/* splitmix64 (Steele, Lea, Flood 2014): one step of the generator. */
static RMPT_GUEST_CODE __always_inline u64 rmpt_rng_next(u64 *state)
{
	u64 z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

RMPT_GUEST_CODE u64 rmpt_rng_seed(u64 seed, u64 actor);

static RMPT_GUEST_CODE __always_inline u64 rmpt_hash_mix(u64 hash, u64 val)
{
	return (hash ^ val) * RMPT_HASH_PRIME;
}

/* A hash over the first limit operations of an actor. */
struct rmpt_sched_hash {
	u64 hash;
	u64 ops;
};

static RMPT_GUEST_CODE __always_inline u64 rmpt_sched_mix(u64 hash, u64 a, u64 b, u64 c)
{
	return rmpt_hash_mix(rmpt_hash_mix(rmpt_hash_mix(hash, a), b), c);
}

void rmpt_sched_note(struct rmpt_sched_hash *h, u64 limit, u64 a, u64 b, u64 c);

enum rmpt_guest_op_kind {
	RMPT_GOP_STAMP,
	RMPT_GOP_CONVERT_4K,
	RMPT_GOP_CONVERT_2M,
};

struct rmpt_guest_op {
	u64 kind;
	u64 page;		/* in the vCPU's slice */
};

static RMPT_GUEST_CODE __always_inline void
rmpt_guest_op_next(u64 *rng, u64 vcpu_pages, u64 conv_per_mille, struct rmpt_guest_op *op)
{
	u64 r = rmpt_rng_next(rng);

	op->page = rmpt_rng_next(rng) % vcpu_pages;
	if (r % 1000 >= conv_per_mille)
		op->kind = RMPT_GOP_STAMP;
	else if ((r >> 32) % RMPT_CONVERT_2M_ONE_IN)
		op->kind = RMPT_GOP_CONVERT_4K;
	else
		op->kind = RMPT_GOP_CONVERT_2M;
}

enum rmpt_host_op_kind {
	RMPT_HOP_STAMP,
	RMPT_HOP_PROBE_READ,
	RMPT_HOP_PROBE_WRITE,
};

struct rmpt_host_op {
	u64 kind;
	u64 page;		/* from the region's start */
	u64 offset;		/* of a probe, 8-byte aligned */
};

struct rmpt_split_op {
	u64 chunk;
	u64 page;		/* in the chunk */
	u64 punch;		/* punch the view instead of discarding */
};

void rmpt_host_op_next(u64 *rng, const struct rmpt_layout *l, struct rmpt_host_op *op);
void rmpt_split_op_next(u64 *rng, const struct rmpt_layout *l, struct rmpt_split_op *op);
u64 rmpt_collapse_op_next(u64 *rng, const struct rmpt_layout *l);
void rmpt_sched_print(const char *actor, u32 idx, u64 ops, u64 hash, bool diag);

/* ---- shared with the guest: the control area ----------------------------- */

#define RMPT_CTL_MAGIC		0x6c74637373657274ULL	/* "trsssctl" */

/* How the guest converts pages; 0 where the flavour cannot. */
enum rmpt_conv_mode {
	RMPT_CONV_NONE,
	RMPT_CONV_SNP_PSC,
	RMPT_CONV_HYPERCALL,
};

/* Test-only: break one invariant once, to show that its check fails. */
enum rmpt_inject {
	RMPT_INJECT_NONE,
	RMPT_INJECT_UNEXPECTED_SIGBUS,
	RMPT_INJECT_MISSED_SIGBUS,
	RMPT_INJECT_HOST_MISMATCH,
	RMPT_INJECT_LOST_WRITE,
	RMPT_INJECT_GUEST_MISMATCH,
	RMPT_INJECT_KVM_RUN_ERROR,
	RMPT_INJECT_NO_SPLIT,
	RMPT_INJECT_NO_COLLAPSE,
	RMPT_INJECT_KMSG,
	RMPT_NR_INJECTS,
};

extern const char *const rmpt_inject_names[RMPT_NR_INJECTS];

/* Written by one vCPU, read by the host at any time. */
struct rmpt_guest_stats {
	u64 ops;
	u64 stamps;
	u64 zero_words;		/* found discarded */
	u64 mismatches;
	u64 conversions;
	u64 conv_errors;
	u64 bad_page;		/* the first mismatch */
	u64 bad_word;
	u64 bad_want;		/* see rmpt_stamp_describe_want() */
	u64 bad_got;
	u64 sched_hash;
	u64 sched_ops;
	u64 pad[4];
};

/* At the start of the data region; the host fills it before any vCPU runs. */
struct rmpt_stress_ctl {
	u64 magic;
	u64 seed;
	u64 nr_vcpus;
	u64 nr_threads;
	u64 first_page;		/* of the stress area, from the region's start */
	u64 vcpu_pages;		/* per vCPU slice */
	u64 conv_per_mille;
	u64 conv_mode;
	u64 max_ops;
	u64 sched_ops;
	u64 inject;
	u64 claimed;		/* vCPU slots taken so far */
	u64 stop;
	u64 region_pages;	/* of the whole data region, control included */
	u64 pad[2];
	struct rmpt_guest_stats vcpu[RMPT_MAX_VCPUS];
};

kvm_static_assert(sizeof(struct rmpt_guest_stats) == 128);
kvm_static_assert(sizeof(struct rmpt_stress_ctl) <= RMPT_CTL_TABLE_OFF);

/*
 * Discards of each page, so that a checker accepts a zero only where the
 * page was really discarded: one u64 per page of the region, after the
 * sequence tables, counting discards begun (upper half) and ended (lower
 * half).  Whoever discards (splitter, a conversion) adds
 * RMPT_DISCARD_BEGIN before and RMPT_DISCARD_END after; a writer takes
 * the count before it stores its stamp.  Then a zero where its stamp
 * should be is legal only if a discard began since, or one was under way
 * when the count was taken.
 */
#define RMPT_DISCARD_BEGIN	BIT_ULL(32)
#define RMPT_DISCARD_END	1ULL
#define RMPT_CTL_PAGE_BYTES	(sizeof(u32) + 2 * sizeof(u64))	/* seq, discards, guest's count */

static RMPT_GUEST_CODE __always_inline u64 *rmpt_ctl_discards(struct rmpt_stress_ctl *ctl)
{
	return (u64 *)((u8 *)ctl + RMPT_CTL_TABLE_OFF + ctl->region_pages * sizeof(u32));
}

static RMPT_GUEST_CODE __always_inline bool rmpt_discarded_since(u64 then, u64 now)
{
	return now >> 32 != then >> 32 || (u32)then != then >> 32;
}

/* ---- the host's state ---------------------------------------------------- */

struct rmpt_stress_params {
	enum rmpt_flavour flavour;
	bool flavour_given;
	u64 seed;
	u64 duration_s;
	bool quick;
	u32 nr_threads;
	u32 nr_vcpus;
	u64 mem_mib;
	u32 conv_per_mille;
	int numa_node;		/* -1: spread */
	const char *out_path;
	u64 max_ops;
	bool dry_run;
	enum rmpt_inject inject;
};

struct rmpt_vcpu_worker {
	struct rmpt_stress *s;
	u32 idx;
	int node;
	pthread_t thread;
	u64 syncs;
	u64 errors;
	bool finished;
	char why[1100];		/* the first error; a guest assertion is long */
};

struct rmpt_host_worker {
	struct rmpt_stress *s;
	u32 id;
	int node;
	pthread_t thread;
	u64 rng;
	u32 seq;
	u32 *table;		/* last seq written, per stress page */
	u64 *discards_then;	/* the page's discard count before that write */
	u64 ops;
	u64 stamps;
	u64 probes;
	u64 probes_skipped;	/* no view of private memory */
	u64 sigbus_ok;
	u64 missed;
	u64 unexpected;
	u64 mismatches;
	u64 zero_words;
	u64 page_faults;
	u64 start_ns;
	u64 end_ns;
	bool injected;
	bool finished;
	struct rmpt_sched_hash sched;
	struct rmpt_access_stats acc;
	char why[512];
};

struct rmpt_thp_worker {
	struct rmpt_stress *s;
	const char *name;
	int node;
	pthread_t thread;
	u64 rng;
	u64 ops;
	u64 on_pmd;		/* discards in a PMD-mapped range; collapses done */
	u64 observed;		/* PMD mapping gone (split) or there (collapse) after */
	u64 punches;
	u64 already_huge;	/* collapser: nothing to do */
	u64 eagain;
	u64 errors;
	int first_errno;
	int pmd_errno;		/* PAGEMAP_SCAN refused: nothing observed */
	bool finished;
	struct rmpt_sched_hash sched;
	u64 start_ns;
	u64 end_ns;
};

struct rmpt_stress {
	struct rmpt_stress_params p;
	struct rmpt_layout l;
	struct rmpt_caps caps;
	struct rmpt_vm *rv;
	struct rmpt_stress_ctl *ctl;
	enum rmpt_conv_mode conv;
	char conv_why[600];
	bool thp_on;
	char thp_why[256];
	pthread_barrier_t start;
	u64 start_ns;
	u64 deadline_ns;
	u64 end_ns;
	u64 stop;
	int huge_at_start;
	struct rmpt_vcpu_worker vcpus[RMPT_MAX_VCPUS];
	struct rmpt_host_worker *hosts;
	struct rmpt_thp_worker splitter;
	struct rmpt_thp_worker collapser;
	struct rmpt_thp_stats thp_before;
	struct rmpt_thp_stats thp_after;
	char kmsg_marker[160];
	int kmsg_err;
};

/* Everything the end of the run reports, summed over the actors. */
struct rmpt_stress_totals {
	u64 unexpected;
	u64 missed;
	u64 host_mismatches;
	u64 guest_mismatches;
	u64 run_errors;
	u64 conv_errors;
	u64 host_ops;
	u64 host_accesses;
	u64 sigbus;
	u64 page_faults;
	u64 probes_skipped;
	u64 guest_stamps;
	u64 conversions;
	u64 splits;		/* /proc/vmstat thp_split_pmd */
	u64 collapses;		/* /proc/vmstat thp_collapse_alloc */
	int kmsg_bad;		/* -errno: not readable */
	char kmsg_first[256];
	u64 elapsed_ns;
	struct rmpt_hist fault_lat;
	struct rmpt_hist sigbus_lat;
};

static inline u8 *rmpt_stress_page_hva(struct rmpt_stress *s, u64 page)
{
	return rmpt_data_hva(s->rv, RMPT_DATA_GPA + page * RMPT_SZ_4K);
}

static inline u8 *rmpt_stress_chunk_hva(struct rmpt_stress *s, u64 chunk)
{
	return rmpt_stress_page_hva(s, chunk * RMPT_PAGES_PER_2M);
}

static inline bool rmpt_stress_thp_checks_apply(const struct rmpt_stress *s)
{
	return s->thp_on;
}

static inline void rmpt_sleep_us(u64 us)
{
	struct timespec ts = { us / 1000000, us % 1000000 * 1000 };

	nanosleep(&ts, NULL);
}

/* ---- -S: the schedule alone (lib/stress_schedule.c) ---------------------- */

void rmpt_stress_dry_run(const struct rmpt_stress *s);

/* ---- setup (lib/stress_setup.c) ------------------------------------------ */

bool rmpt_stress_choose_flavour(struct rmpt_stress *s, char *why, size_t len);
void rmpt_stress_pick_flavour(struct rmpt_stress *s);
void rmpt_stress_pick_conversions(struct rmpt_stress *s);
void rmpt_stress_pick_thp(struct rmpt_stress *s);
void rmpt_stress_create_vm(struct rmpt_stress *s, void *guest_code);
void rmpt_stress_print_setup(struct rmpt_stress *s);

/* ---- the actors' threads (lib/stress_actors.c) -------------------------- */

/* The program's thread functions, each passed its actor's record. */
struct rmpt_stress_actors {
	void *(*vcpu)(void *w);
	void *(*host)(void *w);
	void *(*splitter)(void *w);
	void *(*collapser)(void *w);
};

void rmpt_stress_start(struct rmpt_stress *s, const struct rmpt_stress_actors *fn);
void rmpt_stress_join(struct rmpt_stress *s);
void rmpt_stress_free(struct rmpt_stress *s);

/* ---- watching the run (lib/stress_watch.c) ------------------------------- */

void rmpt_stress_monitor(struct rmpt_stress *s);

/* ---- the metrics document (lib/stress_metrics.c) ------------------------- */

#define RMPT_STRESS_NR_METRICS	24

size_t rmpt_stress_metrics(struct rmpt_stress *s, const struct rmpt_stress_totals *t,
			   struct rmpt_metric *m);
int rmpt_stress_write_metrics(struct rmpt_stress *s, const struct rmpt_stress_totals *t,
			      const struct rmpt_metric *m, size_t n);

/* ---- the end of the run (lib/stress_report.c) ---------------------------- */

#define RMPT_STRESS_NR_RESULTS	9

/*
 * One KTAP result, emitted by the program, whose kselftest counters
 * ksft_finished() reads: code KSFT_PASS, KSFT_FAIL or KSFT_SKIP; why NULL
 * for a plain "ok"/"not ok" line, else the text after its '#'.
 */
typedef void rmpt_result_fn(int code, const char *name, const char *why);

void rmpt_stress_sum_up(struct rmpt_stress *s, struct rmpt_stress_totals *t);
void rmpt_stress_report(struct rmpt_stress *s, const struct rmpt_stress_totals *t,
			rmpt_result_fn *result);

#endif /* SELFTEST_KVM_SNP_STRESS_H */
