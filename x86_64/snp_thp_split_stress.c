// SPDX-License-Identifier: GPL-2.0-only
/*
 * snp_thp_split_stress: the host memory contract under concurrency.
 *
 * Actors, each with its own PRNG seeded from (seed, actor id) so that its
 * sequence of operations is a pure function of the two (-S prints a hash of
 * it), and each bounded by the deadline and an iteration cap:
 *
 *  - vCPU workers: the guest stamps the pages of its slice of the data
 *    region and checks the stamps the host threads wrote there.  Where the
 *    flavour has private memory it converts 4K and 2M ranges to private and
 *    back (GHCB PSC on snp, KVM_HC_MAP_GPA_RANGE on sw_protected); while a
 *    range is private the host words it zeroed there must stay zero.
 *  - host threads: stamp and check shared pages in random order across the
 *    whole THP-backed region, and probe the host's mapping of private
 *    memory (the guest_memfd view), where every access must SIGBUS at
 *    exactly the address touched.
 *  - splitter: MADV_DONTNEED of one 4K inside a random 2M range of the data
 *    region, which splits its PMD mapping when it has one.  MADV_REMOVE
 *    needs a shared mapping and the region is private anonymous memory, so
 *    the remove variant is a PUNCH_HOLE of the guest_memfd view instead.
 *  - collapser: MADV_COLLAPSE of random 2M ranges, racing the rest.
 *
 * Memory: the data region starts with a control area (parameters, per-vCPU
 * statistics, from CTL_TABLE_OFF the guest's sequence tables and the
 * discard counts) that nobody discards; the rest, the stress area, is cut
 * into one slice of whole 2M ranges per vCPU, plus leftovers only the host
 * stamps.
 *
 * Stamps (include/snp_stamp.h): each 4K page has one word per writer, so
 * no two writers ever store to the same word: word 0 for the vCPU owning
 * the page, word HOST_WORD0 + t for host thread t.  Legal races, each of
 * which a checker accepts:
 *  - a discard (splitter, or the shared half of a conversion) zeroes the
 *    whole page at any time, so 0 is legal in a writer's own word only if
 *    the page's discard counts moved since its last stamp there
 *    (ctl_discards()), and in another writer's word always;
 *  - a word written by someone else holds any of that writer's stamps for
 *    this page, since its sequence moves concurrently;
 *  - collapse copies the page under the writers' feet: the kernel must not
 *    lose a store, so a writer's own word holds exactly the last stamp it
 *    wrote there (or 0): an older stamp is a lost write, a mismatch;
 *  - the guest's private copy of a page is another page: host stores land
 *    in the shared one only.
 * Anything else that is not 0 is a mismatch: a torn or foreign value, a
 * stamp for another page or by another writer.
 *
 * Test-only fault injection (SNP_RMP_STRESS_INJECT=name, see
 * tests/t_stress.sh) breaks one invariant once to prove its check fails.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <linux/sizes.h>
#include <linux/time64.h>
#include <numa.h>

#include "test_util.h"
#include "kvm_util.h"
#include "processor.h"
#include "ucall_common.h"
#include "snp_util.h"
#include "snp_metrics.h"
#include "snp_rng.h"
#include "snp_stamp.h"

#define TEST_NAME		"snp_thp_split_stress"
#define PAGES_PER_2M		(SZ_2M / SZ_4K)
#define WORDS_PER_PAGE		(SZ_4K / sizeof(u64))
#define GUEST_WORD		0
#define HOST_WORD0		8	/* a cache line away from the guest's word */
#define PREFAULT_WORD		(WORDS_PER_PAGE - 1)	/* nobody stamps it */
#define MAX_HOST_THREADS	64

#define DEFAULT_DURATION_S	30
#define QUICK_DURATION_S	5
#define MAX_DURATION_S		86400
#define DEFAULT_MEM_MIB		512
#define QUICK_MEM_MIB		256
#define MAX_MEM_MIB		65536
#define DEFAULT_CONV_PER_MILLE	20
#define DEFAULT_MAX_OPS		BIT_ULL(40)

#define SPLIT_GAP_US		500
#define COLLAPSE_GAP_US		200
#define GUEST_SYNC_EVERY	1024	/* guest ops between ucalls */
#define START_WAIT_S		30	/* for a vCPU to claim its slot */
#define MONITOR_TICK_US		100000
#define PROGRESS_EVERY_S	10
#define INJECT_PORT		0x5157		/* an I/O port no ucall uses */
#define PROBE_POISON		0x5349474255535f3fULL	/* "?_SUBGIS" */
#define NR_RESULTS		9
#define NR_METRICS		24

/* READ_ONCE()/WRITE_ONCE() are always_inline for the default target only. */
#define guest_load(ptr)		__atomic_load_n(ptr, __ATOMIC_RELAXED)
#define guest_load_acquire(ptr)	__atomic_load_n(ptr, __ATOMIC_ACQUIRE)
#define guest_store(ptr, val)	__atomic_store_n(ptr, val, __ATOMIC_RELAXED)

/* ---- the schedule -------------------------------------------------------- */

#define SCHED_HASH_OPS		1000
#define PROBE_ONE_IN		16	/* host ops that probe private memory */
#define PUNCH_ONE_IN		4	/* splitter ops that punch the view */
#define CONVERT_2M_ONE_IN	8	/* conversions of a whole 2M range */

enum actor_kind {
	ACTOR_VCPU = 1,
	ACTOR_HOST,
	ACTOR_SPLITTER,
	ACTOR_COLLAPSER,
};

#define ACTOR_ID(kind, idx)	(((u64)(kind) << 32) | (idx))

struct layout {
	u64 nr_chunks;		/* 2M ranges in the data region */
	u64 ctl_chunks;		/* of which the control area */
	u64 first_page;
	u64 nr_pages;		/* in the stress area */
	u64 vcpu_pages;
	u32 nr_vcpus;
};

/* Each actor's stream: the seed and the actor id mixed, never just added. */
static RMPT_GUEST_CODE u64 rng_seed(u64 seed, u64 actor)
{
	u64 a = seed, b = ~actor;

	return rmpt_rng_next(&a) ^ rmpt_rng_next(&b);
}

static RMPT_GUEST_CODE __always_inline u64 sched_mix(u64 hash, u64 a, u64 b, u64 c)
{
	return rmpt_fnv_mix(rmpt_fnv_mix(rmpt_fnv_mix(hash, a), b), c);
}

/* A hash over the first SCHED_HASH_OPS operations of an actor. */
struct sched_hash {
	u64 hash;
	u64 ops;
};

static void sched_note(struct sched_hash *h, u64 a, u64 b, u64 c)
{
	if (h->ops >= SCHED_HASH_OPS)
		return;
	h->hash = sched_mix(h->hash, a, b, c);
	h->ops++;
}

static void sched_print(const char *actor, u32 idx, u64 ops, u64 hash, bool diag)
{
	printf("%sschedule %s%u %lu 0x%016lx\n", diag ? "# " : "", actor, idx, ops, hash);
}

enum guest_op_kind {
	GOP_STAMP,
	GOP_CONVERT_4K,
	GOP_CONVERT_2M,
};

struct guest_op {
	u64 kind;
	u64 page;		/* in the vCPU's slice */
};

static RMPT_GUEST_CODE __always_inline void
guest_op_next(u64 *rng, u64 vcpu_pages, u64 conv_per_mille, struct guest_op *op)
{
	u64 r = rmpt_rng_next(rng);

	op->page = rmpt_rng_next(rng) % vcpu_pages;
	if (r % 1000 >= conv_per_mille)
		op->kind = GOP_STAMP;
	else if ((r >> 32) % CONVERT_2M_ONE_IN)
		op->kind = GOP_CONVERT_4K;
	else
		op->kind = GOP_CONVERT_2M;
}

enum host_op_kind {
	HOP_STAMP,
	HOP_PROBE_READ,
	HOP_PROBE_WRITE,
};

struct host_op {
	u64 kind;
	u64 page;		/* from the region's start */
	u64 offset;		/* of a probe, 8-byte aligned */
};

/* The host actors' next operations, noted in the hash each actor keeps. */
static void host_op_next(u64 *rng, const struct layout *l, struct host_op *op,
			 struct sched_hash *h)
{
	u64 r = rmpt_rng_next(rng);

	op->page = l->first_page + rmpt_rng_next(rng) % l->nr_pages;
	op->offset = 0;
	op->kind = HOP_STAMP;
	if (!(r % PROBE_ONE_IN)) {
		op->kind = (r >> 32) & 1 ? HOP_PROBE_WRITE : HOP_PROBE_READ;
		op->offset = (r >> 40) % WORDS_PER_PAGE * sizeof(u64);
	}
	sched_note(h, op->kind, op->page, op->offset);
}

struct split_op {
	u64 chunk;
	u64 page;		/* in the chunk */
	u64 punch;		/* punch the view instead of discarding */
};

static void split_op_next(u64 *rng, const struct layout *l, struct split_op *op,
			  struct sched_hash *h)
{
	op->chunk = l->ctl_chunks + rmpt_rng_next(rng) % (l->nr_chunks - l->ctl_chunks);
	op->page = rmpt_rng_next(rng) % PAGES_PER_2M;
	op->punch = !(rmpt_rng_next(rng) % PUNCH_ONE_IN);
	sched_note(h, op->chunk, op->page, op->punch);
}

static u64 collapse_op_next(u64 *rng, const struct layout *l, struct sched_hash *h)
{
	u64 chunk = l->ctl_chunks + rmpt_rng_next(rng) % (l->nr_chunks - l->ctl_chunks);

	sched_note(h, chunk, 0, 0);
	return chunk;
}

/* ---- shared with the guest: the control area ----------------------------- */

/* How the guest converts pages; 0 where the flavour cannot. */
enum conv_mode {
	CONV_NONE,
	CONV_SNP_PSC,
	CONV_HYPERCALL,
};

/* Test-only: break one invariant once, to show that its check fails. */
enum inject {
	INJECT_NONE,
	INJECT_UNEXPECTED_SIGBUS,
	INJECT_MISSED_SIGBUS,
	INJECT_HOST_MISMATCH,
	INJECT_LOST_WRITE,
	INJECT_GUEST_MISMATCH,
	INJECT_KVM_RUN_ERROR,
	INJECT_NO_SPLIT,
	INJECT_NO_COLLAPSE,
	INJECT_KMSG,
	NR_INJECTS,
};

static const char *const inject_names[NR_INJECTS] = {
	[INJECT_NONE] = "none",
	[INJECT_UNEXPECTED_SIGBUS] = "unexpected_sigbus",
	[INJECT_MISSED_SIGBUS] = "missed_sigbus",
	[INJECT_HOST_MISMATCH] = "host_mismatch",
	[INJECT_LOST_WRITE] = "lost_write",
	[INJECT_GUEST_MISMATCH] = "guest_mismatch",
	[INJECT_KVM_RUN_ERROR] = "kvm_run_error",
	[INJECT_NO_SPLIT] = "no_split",
	[INJECT_NO_COLLAPSE] = "no_collapse",
	[INJECT_KMSG] = "kmsg",
};

/* Written by one vCPU, read by the host at any time; two cache lines each. */
struct guest_stats {
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
struct stress_ctl {
	u64 seed;
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
	struct guest_stats vcpu[RMPT_MAX_VCPUS];
};

/* Then, per page of the region, the guest's last seq and the discard counts. */
#define CTL_TABLE_OFF		(16 * 1024)
#define CTL_PAGE_BYTES		(sizeof(u32) + 2 * sizeof(u64))	/* seq, discards, guest's count */

kvm_static_assert(sizeof(struct guest_stats) == 128);
kvm_static_assert(sizeof(struct stress_ctl) <= CTL_TABLE_OFF);

/*
 * Discards of each page, so that a checker accepts a zero only where the
 * page was really discarded: one u64 per page of the region, after the
 * sequence tables, counting discards begun (upper half) and ended (lower
 * half).  Whoever discards (splitter, a conversion) adds DISCARD_BEGIN
 * before and DISCARD_END after; a writer takes the count before it stores
 * its stamp.  Then a zero where its stamp should be is legal only if a
 * discard began since, or one was under way when the count was taken.
 */
#define DISCARD_BEGIN		BIT_ULL(32)
#define DISCARD_END		1ULL

static RMPT_GUEST_CODE __always_inline u64 *ctl_discards(struct stress_ctl *ctl)
{
	return (u64 *)((u8 *)ctl + CTL_TABLE_OFF + ctl->region_pages * sizeof(u32));
}

static RMPT_GUEST_CODE __always_inline bool discarded_since(u64 then, u64 now)
{
	return now >> 32 != then >> 32 || (u32)then != then >> 32;
}

/* ---- the host's state ---------------------------------------------------- */

struct params {
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
	enum inject inject;
};

struct vcpu_worker {
	struct stress *s;
	u32 idx;
	int node;
	pthread_t thread;
	u64 syncs;
	u64 errors;
	bool finished;
	char why[1100];		/* the first error; a guest assertion is long */
};

struct host_worker {
	struct stress *s;
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
	struct sched_hash sched;
	struct rmpt_access_stats acc;
	char why[512];
};

struct thp_worker {
	struct stress *s;
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
	struct sched_hash sched;
	u64 start_ns;
	u64 end_ns;
};

struct stress {
	struct params p;
	struct layout l;
	struct rmpt_caps caps;
	struct rmpt_vm *rv;
	struct stress_ctl *ctl;
	enum conv_mode conv;
	char conv_why[600];
	bool thp_on;		/* the split and collapse checks apply */
	char thp_why[256];
	pthread_barrier_t start;
	u64 start_ns;
	u64 deadline_ns;
	u64 end_ns;
	u64 stop;
	int huge_at_start;
	struct vcpu_worker vcpus[RMPT_MAX_VCPUS];
	struct host_worker *hosts;
	struct thp_worker splitter;
	struct thp_worker collapser;
	struct rmpt_thp_stats thp_before;
	struct rmpt_thp_stats thp_after;
	char kmsg_marker[160];
	int kmsg_err;
};

/* Everything the end of the run reports, summed over the actors. */
struct totals {
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

/* Room for each page's sequence number and discard counts, control included. */
static void layout_compute(struct layout *l, u64 mem_mib, u32 nr_vcpus)
{
	u64 table = mem_mib * (SZ_1M / SZ_4K) * CTL_PAGE_BYTES;
	u64 stress_chunks;

	l->nr_chunks = mem_mib / 2;
	l->ctl_chunks = DIV_ROUND_UP(CTL_TABLE_OFF + table, SZ_2M);
	stress_chunks = l->nr_chunks > l->ctl_chunks ? l->nr_chunks - l->ctl_chunks : 0;
	l->first_page = l->ctl_chunks * PAGES_PER_2M;
	l->nr_pages = stress_chunks * PAGES_PER_2M;
	l->vcpu_pages = stress_chunks / nr_vcpus * PAGES_PER_2M;
	l->nr_vcpus = nr_vcpus;
}

/* The vCPU whose slice holds page, or -1 for the leftovers. */
static int page_owner(const struct layout *l, u64 page)
{
	u64 v = (page - l->first_page) / l->vcpu_pages;

	return v < l->nr_vcpus ? (int)v : -1;
}

static u8 *page_hva(struct stress *s, u64 page)
{
	return rmpt_data_hva(s->rv, RMPT_DATA_GPA + page * SZ_4K);
}

static u8 *chunk_hva(struct stress *s, u64 chunk)
{
	return page_hva(s, chunk * PAGES_PER_2M);
}

static u8 *view_page_hva(struct stress *s, u64 page)
{
	return rmpt_view_hva(s->rv, RMPT_DATA_GPA + page * SZ_4K);
}

/* ---- host: helpers ------------------------------------------------------- */

static bool stopping(struct stress *s)
{
	return __atomic_load_n(&s->stop, __ATOMIC_RELAXED);
}

/* A failure: its story first (only the first is kept), then the count. */
static __printf(4, 5) void fail_note(u64 *counter, char *why, size_t len,
				      const char *fmt, ...)
{
	va_list ap;

	if (!why[0]) {
		va_start(ap, fmt);
		vsnprintf(why, len, fmt, ap);
		va_end(ap);
	}
	__atomic_add_fetch(counter, 1, __ATOMIC_RELEASE);
}

static u64 thread_page_faults(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_THREAD, &ru))
		return 0;
	return ru.ru_minflt + ru.ru_majflt;
}

/* ---- guest --------------------------------------------------------------- */

/*
 * Every guest store costs a trip through KVM's instruction emulator on
 * some hosts (a paravirtualized KVM: about 10 us each), so the loop keeps what changes
 * per operation in locals: the helpers are always inlined, the run state is
 * read-only, counters reach the control area in batches.  Only a mismatch
 * is published at once, so that the host can stop early.
 */
#define GUEST_PUBLISH_EVERY	64
#define GUEST_PRIVATE_SEQ	1	/* a private range's stamps, reset after */

struct guest_run {
	struct stress_ctl *ctl;
	struct guest_stats *st;
	u32 *table;		/* last seq this vCPU wrote, per slice page */
	u64 *discards;		/* per page of the region */
	u64 *discards_then;	/* per slice page: the count before our last stamp */
	u64 base;		/* first page of the slice */
	u64 id;
	u64 nr_threads;
	u8 writer;
	bool conv_broken;	/* a range stayed private: stop converting */
};

/* What changes per operation, in registers; published in batches. */
struct guest_counts {
	u64 ops;
	u64 conv_ops;
	u64 conversions;
	u64 zero_words;
};

static RMPT_GUEST_CODE __always_inline u64 *guest_page(u64 page)
{
	return (u64 *)(RMPT_DATA_GPA + page * SZ_4K);
}

static RMPT_GUEST_CODE __always_inline void guest_publish(struct guest_stats *st,
							  const struct guest_counts *c)
{
	guest_store(&st->stamps, c->ops - c->conv_ops);
	guest_store(&st->zero_words, c->zero_words);
	guest_store(&st->conversions, c->conversions);
	guest_store(&st->ops, c->ops);
}

static noinline RMPT_GUEST_CODE void guest_mismatch(struct guest_stats *st, u64 page,
						    u64 word, u64 got, u64 want)
{
	if (!st->mismatches) {
		guest_store(&st->bad_page, page);
		guest_store(&st->bad_word, word);
		guest_store(&st->bad_want, want);
		guest_store(&st->bad_got, got);
	}
	guest_store(&st->mismatches, st->mismatches + 1);
}

/* 1 for a discarded word, else 0; a mismatch goes to the control area. */
static RMPT_GUEST_CODE __always_inline u64 guest_judge(const struct guest_run *g, u64 page,
						       u64 word, u64 got, enum rmpt_verdict v,
						       u64 want)
{
	if (v == RMPT_WORD_BAD)
		guest_mismatch(g->st, page, word, got, want);
	return v == RMPT_WORD_ZERO;
}

/* Our stamp, or 0 if the page was discarded since we wrote it. */
static RMPT_GUEST_CODE __always_inline u64 guest_check_own(const struct guest_run *g,
							   u64 slice_page)
{
	u64 page = g->base + slice_page;
	u32 want = g->table[slice_page];
	u64 got = guest_load_acquire(&guest_page(page)[GUEST_WORD]);
	enum rmpt_verdict v = rmpt_stamp_verify(got, g->writer, page, want);

	if (v == RMPT_WORD_ZERO && want &&
	    !discarded_since(g->discards_then[slice_page], guest_load(&g->discards[page])))
		v = RMPT_WORD_BAD;
	return guest_judge(g, page, GUEST_WORD, got, v,
			   want ? rmpt_stamp_make(g->writer, want, page) : 0);
}

/* Before a stamp is stored: the discards it may be lost to come after. */
static RMPT_GUEST_CODE __always_inline void guest_note_discards(const struct guest_run *g,
								u64 slice_page)
{
	guest_store(&g->discards_then[slice_page],
		    guest_load_acquire(&g->discards[g->base + slice_page]));
}

static RMPT_GUEST_CODE __always_inline u64 guest_check_host_words(const struct guest_run *g,
								  u64 page)
{
	u64 *w = guest_page(page);
	u64 t, got, zero = 0;

	for (t = 0; t < g->nr_threads; t++) {
		got = guest_load(&w[HOST_WORD0 + t]);
		zero += guest_judge(g, page, HOST_WORD0 + t, got,
				    rmpt_stamp_verify(got, RMPT_WRITER_HOST(t), page, RMPT_SEQ_ANY),
				    rmpt_stamp_make(RMPT_WRITER_HOST(t), 0, page));
	}
	return zero;
}

/* Test-only injections happen at the first operation of vCPU 0. */
static RMPT_GUEST_CODE __always_inline bool guest_inject(const struct guest_run *g, u64 op_idx,
							 enum inject what)
{
	return !op_idx && !g->id && guest_load(&g->ctl->inject) == what;
}

/* Check the page's words, then stamp it with seq; returns the zero words seen. */
static RMPT_GUEST_CODE __always_inline u64 guest_stamp(const struct guest_run *g,
						       u64 slice_page, u32 seq, bool inject)
{
	u64 page = g->base + slice_page;
	u64 *w = guest_page(page);
	u64 stamp, zero;

	zero = guest_check_own(g, slice_page) + guest_check_host_words(g, page);
	stamp = rmpt_stamp_make(g->writer, seq, page);
	guest_note_discards(g, slice_page);
	guest_store(&w[GUEST_WORD], stamp);
	g->table[slice_page] = seq;
	if (inject) {
		guest_store(&w[GUEST_WORD], stamp ^ BIT_ULL(8));
		zero += guest_check_own(g, slice_page);
	}
	return zero;
}

/* 0 or an error: rmpt_guest_convert()'s stage, or the hypercall's. */
static RMPT_GUEST_CODE u64 guest_convert(u64 mode, u64 page, u64 npages, bool to_private)
{
	u64 gpa = (u64)guest_page(page);	/* identity-mapped */

	if (mode == CONV_SNP_PSC)
		return rmpt_guest_convert(gpa, npages, to_private);
	return __kvm_hypercall_map_gpa_range(gpa, npages * SZ_4K,
					     rmpt_map_gpa_attrs(to_private, npages == PAGES_PER_2M ?
								RMPT_MAP_GPA_2M : RMPT_MAP_GPA_4K));
}

/*
 * A freshly private page holds nothing defined (SNP: the host's zeroes
 * read through the guest's key), so write it before reading: our stamp,
 * and zero in every host word, which no host store can reach any more.
 */
static RMPT_GUEST_CODE void guest_fill_private(const struct guest_run *g, u64 slice_page)
{
	u64 page = g->base + slice_page;
	u64 *w = guest_page(page);
	u64 t;

	guest_note_discards(g, slice_page);
	guest_store(&w[GUEST_WORD], rmpt_stamp_make(g->writer, GUEST_PRIVATE_SEQ, page));
	g->table[slice_page] = GUEST_PRIVATE_SEQ;
	for (t = 0; t < g->nr_threads; t++)
		guest_store(&w[HOST_WORD0 + t], 0);
}

static RMPT_GUEST_CODE void guest_check_private(const struct guest_run *g, u64 slice_page)
{
	u64 page = g->base + slice_page;
	u64 *w = guest_page(page);
	u64 t, got;

	guest_check_own(g, slice_page);
	for (t = 0; t < g->nr_threads; t++) {
		got = guest_load(&w[HOST_WORD0 + t]);
		guest_judge(g, page, HOST_WORD0 + t, got, got ? RMPT_WORD_BAD : RMPT_WORD_ZERO, 0);
	}
}

/* A conversion discards the range: count it as the splitter does its own. */
static RMPT_GUEST_CODE void guest_count_discards(const struct guest_run *g, u64 first, u64 n,
						 u64 what)
{
	u64 i;

	for (i = 0; i < n; i++)
		__atomic_fetch_add(&g->discards[g->base + first + i], what, __ATOMIC_SEQ_CST);
}

/*
 * Private and back in one operation, so that the host threads, which do
 * not know which pages are private, never have to: a discard is all the
 * conversion shows them.  Back in shared memory the guest's word reads 0
 * (the conversion to private discarded the shared page).  True if both
 * conversions were done.
 */
static noinline RMPT_GUEST_CODE bool guest_convert_range(struct guest_run *g, bool huge,
							 u64 slice_page)
{
	u64 mode = guest_load(&g->ctl->conv_mode);
	u64 first = huge ? slice_page / PAGES_PER_2M * PAGES_PER_2M : slice_page;
	u64 n = huge ? PAGES_PER_2M : 1, i;
	bool done = false;

	guest_count_discards(g, first, n, DISCARD_BEGIN);
	if (guest_convert(mode, g->base + first, n, true))
		goto out;
	for (i = 0; i < n; i++)
		guest_fill_private(g, first + i);
	for (i = 0; i < n; i++)
		guest_check_private(g, first + i);
	if (guest_convert(mode, g->base + first, n, false)) {
		g->conv_broken = true;
		goto out;
	}
	for (i = 0; i < n; i++)
		g->table[first + i] = 0;
	done = true;
out:
	guest_count_discards(g, first, n, DISCARD_END);
	if (!done)
		guest_store(&g->st->conv_errors, g->st->conv_errors + 1);
	return done;
}

static RMPT_GUEST_CODE void guest_run_init(struct guest_run *g, struct stress_ctl *ctl, u64 id)
{
	*g = (struct guest_run){
		.ctl = ctl,
		.st = &ctl->vcpu[id],
		.table = (u32 *)((u8 *)ctl + CTL_TABLE_OFF) + id * ctl->vcpu_pages,
		.discards = ctl_discards(ctl),
		.discards_then = ctl_discards(ctl) + ctl->region_pages + id * ctl->vcpu_pages,
		.base = ctl->first_page + id * ctl->vcpu_pages,
		.id = id,
		.nr_threads = ctl->nr_threads,
		.writer = RMPT_WRITER_GUEST(id),
	};
}

/*
 * The hash covers the first sched_ops operations, as -S computes it: the
 * proof that the guest ran the schedule the seed gives.
 */
static RMPT_GUEST_CODE void guest_main(struct stress_ctl *ctl, u64 id)
{
	u64 max = guest_load(&ctl->max_ops), pages = ctl->vcpu_pages;
	u64 conv = ctl->conv_per_mille, hash_ops = ctl->sched_ops;
	u64 rng = rng_seed(ctl->seed, ACTOR_ID(ACTOR_VCPU, id));
	struct guest_counts c = { 0 };
	u64 hash = RMPT_FNV_OFFSET;
	struct guest_run g;
	struct guest_op op;
	bool inject;
	u32 seq = 0;

	guest_run_init(&g, ctl, id);
	while (c.ops < max && !guest_load(&ctl->stop)) {
		guest_op_next(&rng, pages, conv, &op);
		if (c.ops < hash_ops)
			hash = sched_mix(hash, op.kind, op.page, 0);
		if (guest_inject(&g, c.ops, INJECT_KVM_RUN_ERROR))
			asm volatile("outl %0, %w1" : : "a"(0), "Nd"(INJECT_PORT));
		if (op.kind == GOP_STAMP || g.conv_broken) {
			seq = rmpt_seq_next(seq);
			inject = guest_inject(&g, c.ops, INJECT_GUEST_MISMATCH);
			c.zero_words += guest_stamp(&g, op.page, seq, inject);
		} else {
			c.conv_ops++;
			if (guest_convert_range(&g, op.kind == GOP_CONVERT_2M, op.page))
				c.conversions += 2;
		}
		c.ops++;
		if (!(c.ops % GUEST_PUBLISH_EVERY))
			guest_publish(g.st, &c);
		if (!(c.ops % GUEST_SYNC_EVERY))
			GUEST_SYNC(c.ops);
	}
	guest_publish(g.st, &c);
	guest_store(&g.st->sched_hash, hash);
	guest_store(&g.st->sched_ops, c.ops < hash_ops ? c.ops : hash_ops);
}

/*
 * Registers are frozen at an SNP launch, so no vCPU argument can say who
 * is who: each vCPU takes the next slot of the control area, and the host
 * starts vCPU i only after i slots were taken, so slot == vCPU id.
 */
static RMPT_GUEST_CODE void guest_code(void)
{
	struct stress_ctl *ctl = (struct stress_ctl *)RMPT_DATA_GPA;
	u64 id = __atomic_fetch_add(&ctl->claimed, 1, __ATOMIC_SEQ_CST);

	if (guest_load(&ctl->conv_mode) == CONV_SNP_PSC)
		rmpt_snp_guest_ghcb_init(id);
	guest_main(ctl, id);
	GUEST_DONE();
}

/* ---- host: vCPU workers -------------------------------------------------- */

/* Private flavours need the library's conversion service; it asserts on errors. */
static int vcpu_run_once(struct stress *s, struct kvm_vcpu *vcpu)
{
	if (rmpt_flavour_has_private_mem(s->rv->flavour)) {
		rmpt_vcpu_run(s->rv, vcpu);
		return 0;
	}
	return rmpt_snp_vcpu_try_run(vcpu);
}

/* vCPU i may start once vCPUs 0..i-1 took their slots (see guest_code()). */
static bool vcpu_wait_turn(struct vcpu_worker *w)
{
	struct stress *s = w->s;
	u64 give_up = rmpt_now_ns() + START_WAIT_S * NSEC_PER_SEC;

	while (READ_ONCE(s->ctl->claimed) < w->idx) {
		if (stopping(s) || rmpt_now_ns() > give_up) {
			fail_note(&w->errors, w->why, sizeof(w->why),
				  "vCPU %u: expected vCPU %u to claim its slot first, got %lu claimed",
				  w->idx, w->idx - 1, READ_ONCE(s->ctl->claimed));
			return false;
		}
		usleep(100);
	}
	return true;
}

/*
 * A triple fault of the guest.  Where the state is readable (not SNP),
 * say where it was, so that a kernel's lost page and an emulator's lost
 * fault can be told apart.  SVM's shutdown_interception() (svm/svm.c)
 * INITs the vCPU, so there paging is off and the state tells nothing.
 */
static void note_shutdown(struct vcpu_worker *w, struct kvm_vcpu *vcpu)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs;

	if (__vcpu_ioctl(vcpu, KVM_GET_REGS, &regs) ||
	    __vcpu_ioctl(vcpu, KVM_GET_SREGS, &sregs) || !(sregs.cr0 & X86_CR0_PG)) {
		fail_note(&w->errors, w->why, sizeof(w->why),
			  "vCPU %u: expected a ucall, got SHUTDOWN (triple fault; vCPU state not kept)",
			  w->idx);
		return;
	}
	fail_note(&w->errors, w->why, sizeof(w->why),
		  "vCPU %u: expected a ucall, got SHUTDOWN (triple fault) at RIP 0x%llx RSP 0x%llx, CR2 0x%llx CR3 0x%llx",
		  w->idx, regs.rip, regs.rsp, sregs.cr2, sregs.cr3);
}

/* One KVM_RUN; false once the guest is done or something went wrong. */
static bool vcpu_step(struct vcpu_worker *w)
{
	struct kvm_vcpu *vcpu = w->s->rv->vcpus[w->idx];
	struct kvm_run *run = vcpu->run;
	struct ucall uc;
	int err;

	err = vcpu_run_once(w->s, vcpu);
	if (err) {
		fail_note(&w->errors, w->why, sizeof(w->why),
			  "vCPU %u: KVM_RUN: expected 0, got errno %d (%s)", w->idx, err,
			  strerror(err));
		return false;
	}
	switch (rmpt_get_ucall(w->s->rv, vcpu, &uc)) {
	case UCALL_SYNC:
		rmpt_bump(&w->syncs);
		return true;
	case UCALL_DONE:
		return false;
	case UCALL_ABORT:
		fail_note(&w->errors, w->why, sizeof(w->why), "vCPU %u: guest assertion: %.900s",
			  w->idx, uc.buffer);
		return false;
	default:
		if (run->exit_reason == KVM_EXIT_SHUTDOWN) {
			note_shutdown(w, vcpu);
			return false;
		}
		fail_note(&w->errors, w->why, sizeof(w->why),
			  "vCPU %u: expected a ucall, got exit reason %u (%s), port 0x%x",
			  w->idx, run->exit_reason, exit_reason_str(run->exit_reason),
			  run->exit_reason == KVM_EXIT_IO ? run->io.port : 0);
		return false;
	}
}

static void *vcpu_worker_fn(void *arg)
{
	struct vcpu_worker *w = arg;

	rmpt_numa_run_thread_on(w->node);
	pthread_barrier_wait(&w->s->start);
	if (vcpu_wait_turn(w))
		while (vcpu_step(w))
			;
	WRITE_ONCE(w->finished, true);
	return NULL;
}

/* ---- host: faulting threads ---------------------------------------------- */

static bool host_inject(struct host_worker *w, enum inject what)
{
	if (w->injected || w->id || w->s->p.inject != what)
		return false;
	w->injected = true;
	return true;
}

static void host_unexpected(struct host_worker *w, const char *what, void *addr,
			    const struct rmpt_fault *f)
{
	fail_note(&w->unexpected, w->why, sizeof(w->why),
		  "host thread %u: %s %p: expected no fault, got signal %d code %d (%s) at %p",
		  w->id, what, addr, f->signo, f->code, rmpt_sigbus_code_name(f->code),
		  f->addr);
}

static void host_judge(struct host_worker *w, u64 page, u64 word, u64 got, enum rmpt_verdict v,
		       u64 want)
{
	char expected[96];

	if (v == RMPT_WORD_ZERO)
		rmpt_bump(&w->zero_words);
	if (v != RMPT_WORD_BAD)
		return;
	rmpt_stamp_describe_want(expected, sizeof(expected), want);
	fail_note(&w->mismatches, w->why, sizeof(w->why),
		  "host thread %u: page %lu word %lu: expected %s, got %#lx", w->id, page, word,
		  expected, got);
}

/* Our stamp, or 0 if the page was discarded since we wrote it. */
static void host_check_own(struct host_worker *w, u64 page, u64 got)
{
	u64 idx = page - w->s->l.first_page;
	u32 want = w->table[idx];
	enum rmpt_verdict v = rmpt_stamp_verify(got, RMPT_WRITER_HOST(w->id), page, want);

	if (v == RMPT_WORD_ZERO && want &&
	    !discarded_since(w->discards_then[idx],
				  __atomic_load_n(&ctl_discards(w->s->ctl)[page],
						  __ATOMIC_ACQUIRE)))
		v = RMPT_WORD_BAD;
	host_judge(w, page, HOST_WORD0 + w->id, got, v,
		   want ? rmpt_stamp_make(RMPT_WRITER_HOST(w->id), want, page) : 0);
}

/* The owner's stamps, any seq; leftover pages have no guest writer at all. */
static void host_check_guest_word(struct host_worker *w, u64 page, u64 *word)
{
	int owner = page_owner(&w->s->l, page);
	struct rmpt_fault f;
	u64 got;

	if (!rmpt_try_read(word, &got, &f)) {
		host_unexpected(w, "read", word, &f);
		return;
	}
	if (owner < 0)
		host_judge(w, page, GUEST_WORD, got, got ? RMPT_WORD_BAD : RMPT_WORD_ZERO, 0);
	else
		host_judge(w, page, GUEST_WORD, got,
			   rmpt_stamp_verify(got, RMPT_WRITER_GUEST(owner), page, RMPT_SEQ_ANY),
			   rmpt_stamp_make(RMPT_WRITER_GUEST(owner), 0, page));
}

/*
 * Check our word, stamp it (the timed access: it takes the fault when the
 * page was discarded), then check the guest's word.  base is the page's
 * shared mapping; only the unexpected_sigbus injection passes another.
 */
static void host_stamp(struct host_worker *w, u64 page, u8 *base)
{
	u64 *word = (u64 *)base + HOST_WORD0 + w->id;
	struct rmpt_fault f;
	u64 old, stamp;

	if (!rmpt_try_read(word, &old, &f)) {
		host_unexpected(w, "read", word, &f);
		return;
	}
	host_check_own(w, page, old);
	w->seq = rmpt_seq_next(w->seq);
	stamp = rmpt_stamp_make(RMPT_WRITER_HOST(w->id), w->seq, page);
	w->discards_then[page - w->s->l.first_page] =
		__atomic_load_n(&ctl_discards(w->s->ctl)[page], __ATOMIC_ACQUIRE);
	if (!rmpt_timed_write(&w->acc, word, stamp, &f)) {
		host_unexpected(w, "write", word, &f);
		return;
	}
	w->table[page - w->s->l.first_page] = w->seq;
	rmpt_bump(&w->stamps);
	/* A zero no discard explains: what a kernel that loses a store leaves. */
	if (host_inject(w, INJECT_LOST_WRITE)) {
		WRITE_ONCE(*word, 0);
		host_check_own(w, page, READ_ONCE(*word));
	}
	if (host_inject(w, INJECT_HOST_MISMATCH)) {
		WRITE_ONCE(*word, stamp ^ BIT_ULL(8));
		host_check_own(w, page, READ_ONCE(*word));
	}
	host_check_guest_word(w, page, (u64 *)base + GUEST_WORD);
}

/* A private page: the access must raise SIGBUS BUS_ADRERR at exactly addr. */
static void host_probe(struct host_worker *w, bool write, u8 *addr)
{
	struct rmpt_fault f;
	char why[256];
	u64 val;

	rmpt_bump(&w->probes);
	if (write)
		rmpt_timed_write(&w->acc, addr, PROBE_POISON, &f);
	else
		rmpt_timed_read(&w->acc, addr, &val, &f);
	if (!rmpt_check_sigbus(&f, addr, BUS_ADRERR, why, sizeof(why))) {
		rmpt_bump(&w->sigbus_ok);
		return;
	}
	fail_note(&w->missed, w->why, sizeof(w->why), "host thread %u: private %s at %p: %s", w->id,
		  write ? "write" : "read", addr, why);
}

static void host_do_op(struct host_worker *w, const struct host_op *op)
{
	struct stress *s = w->s;

	if (op->kind == HOP_STAMP) {
		if (s->rv->view && host_inject(w, INJECT_UNEXPECTED_SIGBUS))
			host_stamp(w, op->page, view_page_hva(s, op->page));
		else
			host_stamp(w, op->page, page_hva(s, op->page));
		return;
	}
	if (!s->rv->view) {
		rmpt_bump(&w->probes_skipped);
		return;
	}
	/* The injected probe reads, so that it changes no stamp when it lands. */
	if (host_inject(w, INJECT_MISSED_SIGBUS))
		host_probe(w, false, page_hva(s, op->page) + op->offset);
	else
		host_probe(w, op->kind == HOP_PROBE_WRITE,
			   view_page_hva(s, op->page) + op->offset);
}

static void *host_worker_fn(void *arg)
{
	struct host_worker *w = arg;
	struct stress *s = w->s;
	struct host_op op;
	u64 faults, i;

	rmpt_numa_run_thread_on(w->node);
	rmpt_sigbus_init();
	pthread_barrier_wait(&s->start);
	faults = thread_page_faults();
	w->start_ns = rmpt_now_ns();
	for (i = 0; i < s->p.max_ops && !stopping(s); i++) {
		host_op_next(&w->rng, &s->l, &op, &w->sched);
		host_do_op(w, &op);
		rmpt_bump(&w->ops);
	}
	w->end_ns = rmpt_now_ns();
	w->page_faults = thread_page_faults() - faults;
	WRITE_ONCE(w->finished, true);
	return NULL;
}

/* ---- host: splitter and collapser ---------------------------------------- */

static void thp_error(struct thp_worker *w, int err)
{
	if (!w->errors)
		w->first_errno = err;
	rmpt_bump(&w->errors);
}

/* 1 or 0; -1 (and pmd_errno kept) where PAGEMAP_SCAN cannot tell. */
static int chunk_pmd_mapped(struct thp_worker *w, u64 chunk)
{
	int ret = rmpt_pmd_mapped(chunk_hva(w->s, chunk));

	if (ret >= 0)
		return ret;
	w->pmd_errno = -ret;
	return -1;
}

/* A discard of the page, as the checkers count them (ctl_discards()). */
static void count_discard(struct stress *s, const struct split_op *op, u64 what)
{
	__atomic_fetch_add(&ctl_discards(s->ctl)[op->chunk * PAGES_PER_2M + op->page],
			   what, __ATOMIC_SEQ_CST);
}

/* The remove variant: guest_memfd is order-0, there is no THP to split. */
static void split_punch_view(struct thp_worker *w, const struct split_op *op)
{
	off_t off = (op->chunk * PAGES_PER_2M + op->page) * SZ_4K;
	int ret;

	count_discard(w->s, op, DISCARD_BEGIN);
	ret = fallocate(w->s->rv->view_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off,
			SZ_4K);
	count_discard(w->s, op, DISCARD_END);
	if (ret)
		thp_error(w, errno);
	else
		rmpt_bump(&w->punches);
}

static void split_discard(struct thp_worker *w, const struct split_op *op)
{
	struct stress *s = w->s;
	u64 gpa = RMPT_DATA_GPA + (op->chunk * PAGES_PER_2M + op->page) * SZ_4K;
	int before, after, ret;

	before = chunk_pmd_mapped(w, op->chunk);
	count_discard(s, op, DISCARD_BEGIN);
	ret = rmpt_discard_shared(s->rv, gpa, SZ_4K, MADV_DONTNEED);
	count_discard(s, op, DISCARD_END);
	if (ret) {
		thp_error(w, -ret);
		return;
	}
	after = chunk_pmd_mapped(w, op->chunk);
	if (before == 1)
		rmpt_bump(&w->on_pmd);
	if (before == 1 && after == 0)
		rmpt_bump(&w->observed);
}

/* One op of the splitter; test-only no_split schedules it, never does it. */
static void split_step(struct thp_worker *w)
{
	struct stress *s = w->s;
	struct split_op op;

	split_op_next(&w->rng, &s->l, &op, &w->sched);
	if (s->p.inject == INJECT_NO_SPLIT)
		return;
	if (op.punch && s->rv->view)
		split_punch_view(w, &op);
	else
		split_discard(w, &op);
}

static void collapse_chunk(struct thp_worker *w, u64 chunk)
{
	int ret;

	if (chunk_pmd_mapped(w, chunk) == 1) {
		rmpt_bump(&w->already_huge);
		return;
	}
	ret = rmpt_collapse(chunk_hva(w->s, chunk), SZ_2M);
	if (ret == -EAGAIN) {
		rmpt_bump(&w->eagain);
		return;
	}
	if (ret) {
		thp_error(w, -ret);
		return;
	}
	rmpt_bump(&w->on_pmd);
	if (chunk_pmd_mapped(w, chunk) == 1)
		rmpt_bump(&w->observed);
}

/* One op of the collapser; test-only no_collapse schedules it, never does it. */
static void collapse_step(struct thp_worker *w)
{
	u64 chunk = collapse_op_next(&w->rng, &w->s->l, &w->sched);

	if (w->s->p.inject != INJECT_NO_COLLAPSE)
		collapse_chunk(w, chunk);
}

static void *thp_worker_fn(void *arg)
{
	struct thp_worker *w = arg;
	struct stress *s = w->s;
	bool split = w == &s->splitter;
	u64 i;

	rmpt_numa_run_thread_on(w->node);
	pthread_barrier_wait(&s->start);
	w->start_ns = rmpt_now_ns();
	for (i = 0; i < s->p.max_ops && !stopping(s); i++) {
		if (split)
			split_step(w);
		else
			collapse_step(w);
		rmpt_bump(&w->ops);
		usleep(split ? SPLIT_GAP_US : COLLAPSE_GAP_US);
	}
	w->end_ns = rmpt_now_ns();
	WRITE_ONCE(w->finished, true);
	return NULL;
}

/* ---- setup --------------------------------------------------------------- */

static const enum rmpt_flavour flavour_order[] = { RMPT_SNP, RMPT_SW_PROTECTED, RMPT_DEFAULT };

/* The -f flavour if usable, else the strongest usable; false and why if none. */
static bool choose_flavour(struct stress *s, char *why, size_t len)
{
	size_t i;

	if (s->p.flavour_given)
		return rmpt_flavour_usable(&s->caps, s->p.flavour, why, len);
	for (i = 0; i < ARRAY_SIZE(flavour_order); i++) {
		if (rmpt_flavour_usable(&s->caps, flavour_order[i], why, len)) {
			s->p.flavour = flavour_order[i];
			return true;
		}
	}
	return false;
}

/* SKIP up front, naming what is missing. */
static void pick_flavour(struct stress *s)
{
	char why[512];

	if (s->p.flavour == RMPT_LEGACY_V6)
		ksft_exit_skip("flavour legacy_v6: not covered here (in-kernel conversions)\n");
	if (!choose_flavour(s, why, sizeof(why)))
		ksft_exit_skip("flavour %s: %s\n",
			       s->p.flavour_given ? rmpt_flavour_name(s->p.flavour) : "any", why);
}

/* Which conversions the guest can do, and if none, why, naming each flavour's lack. */
static void pick_conversions(struct stress *s)
{
	char snp[256], swp[256];

	switch (s->p.flavour) {
	case RMPT_SNP:
		s->conv = CONV_SNP_PSC;
		return;
	case RMPT_SW_PROTECTED:
		s->conv = CONV_HYPERCALL;
		return;
	default:
		s->conv = CONV_NONE;
	}
	if (rmpt_flavour_usable(&s->caps, RMPT_SNP, snp, sizeof(snp)))
		snprintf(snp, sizeof(snp), "usable, not chosen");
	if (rmpt_flavour_usable(&s->caps, RMPT_SW_PROTECTED, swp, sizeof(swp)))
		snprintf(swp, sizeof(swp), "usable, not chosen");
	snprintf(s->conv_why, sizeof(s->conv_why),
		 "flavour %s has no private memory attributes to convert (snp: %s; sw_protected: %s)",
		 rmpt_flavour_name(s->p.flavour), snp, swp);
}

/* The node of actor or 2M range i: -n's, else spread over the allowed ones. */
static int planned_node(const struct params *p, u64 i)
{
	return p->numa_node >= 0 ? p->numa_node : rmpt_numa_node(i);
}

/*
 * The VM, its data region placed on the planned nodes before the first
 * touch, the control area, then one touch of every 2M range so that the
 * splitter finds PMD mappings at once.
 */
static void create_vm(struct stress *s)
{
	struct rmpt_vm_params vp = {
		.flavour = s->p.flavour,
		.nr_vcpus = s->p.nr_vcpus,
		.guest_code = guest_code,
		.data_size = s->p.mem_mib << 20,
		.backing = s->thp_on ? VM_MEM_SRC_ANONYMOUS_THP : VM_MEM_SRC_ANONYMOUS,
		.numa_node = s->p.numa_node,
	};
	struct stress_ctl *ctl;
	u64 c;

	s->rv = rmpt_vm_create(&s->caps, &vp);
	/* With -n, rmpt_vm_create() bound the whole region. */
	for (c = 0; c < s->l.nr_chunks && s->p.numa_node < 0; c++)
		rmpt_numa_place_range(chunk_hva(s, c), SZ_2M, rmpt_numa_node(c));

	s->ctl = (struct stress_ctl *)s->rv->data_hva;
	ctl = s->ctl;
	memset(ctl, 0, sizeof(*ctl));
	ctl->seed = s->p.seed;
	ctl->nr_threads = s->p.nr_threads;
	ctl->first_page = s->l.first_page;
	ctl->vcpu_pages = s->l.vcpu_pages;
	ctl->conv_mode = s->conv;
	ctl->conv_per_mille = s->conv == CONV_NONE ? 0 : s->p.conv_per_mille;
	ctl->max_ops = s->p.max_ops;
	ctl->sched_ops = SCHED_HASH_OPS;
	ctl->inject = s->p.inject;
	ctl->region_pages = s->l.nr_chunks * PAGES_PER_2M;

	for (c = s->l.ctl_chunks; c < s->l.nr_chunks; c++) {
		WRITE_ONCE(((u64 *)chunk_hva(s, c))[PREFAULT_WORD], 0);
		s->huge_at_start += rmpt_pmd_mapped(chunk_hva(s, c)) == 1;
	}
}

static void print_setup(struct stress *s)
{
	const struct params *p = &s->p;
	const struct layout *l = &s->l;

	ksft_print_msg("flavour %s, seed 0x%lx (rerun with -s 0x%lx)\n",
		       rmpt_flavour_name(p->flavour), p->seed, p->seed);
	ksft_print_msg("%lu s%s, %u vCPUs, %u host threads, %lu MiB, NUMA %s of %d node(s)\n",
		       p->duration_s, p->quick ? " (quick)" : "", p->nr_vcpus, p->nr_threads,
		       p->mem_mib, p->numa_node < 0 ? "spread" : "bound", rmpt_numa_nodes());
	ksft_print_msg("layout: control %lu MiB, %lu MiB per vCPU, %lu MiB host-only\n",
		       l->ctl_chunks * 2, l->vcpu_pages * SZ_4K >> 20,
		       (l->nr_pages - l->vcpu_pages * p->nr_vcpus) * SZ_4K >> 20);
	ksft_print_msg("%d of %lu 2M ranges PMD-mapped at start\n", s->huge_at_start,
		       l->nr_chunks - l->ctl_chunks);
	/* MADV_REMOVE needs a shared mapping: the data region is private anonymous. */
	ksft_print_msg("splitter: MADV_DONTNEED of 4K in the data region; 1 in %d ops %s\n",
		       PUNCH_ONE_IN, s->rv->view ?
		       "PUNCH_HOLE the guest_memfd view instead of MADV_REMOVE" :
		       "also MADV_DONTNEED (no guest_memfd view)");
	if (!s->rv->view)
		ksft_print_msg("private probes skipped: %s\n", s->rv->view_why);
	if (s->conv == CONV_NONE)
		ksft_print_msg("conversion actors: SKIP: %s\n", s->conv_why);
	if (!s->thp_on)
		ksft_print_msg("THP: %s; split and collapse checks skipped\n", s->thp_why);
	if (p->inject)
		ksft_print_msg("TEST-ONLY fault injection: %s\n", inject_names[p->inject]);
}

/* ---- the actors' threads ------------------------------------------------- */

static void init_thp_worker(struct stress *s, struct thp_worker *w, const char *name,
			    enum actor_kind kind, int node)
{
	*w = (struct thp_worker){ .s = s, .name = name, .node = node,
				  .rng = rng_seed(s->p.seed, ACTOR_ID(kind, 0)),
				  .sched.hash = RMPT_FNV_OFFSET };
}

static void init_host_worker(struct stress *s, struct host_worker *w, u32 id)
{
	w->s = s;
	w->id = id;
	w->node = planned_node(&s->p, id);
	w->rng = rng_seed(s->p.seed, ACTOR_ID(ACTOR_HOST, id));
	w->sched.hash = RMPT_FNV_OFFSET;
	w->table = calloc(s->l.nr_pages, sizeof(*w->table));
	w->discards_then = calloc(s->l.nr_pages, sizeof(*w->discards_then));
	TEST_ASSERT(w->table && w->discards_then,
		    "calloc of %lu sequence numbers and counts: expected memory, got none",
		    s->l.nr_pages);
	rmpt_access_stats_init(&w->acc);
}

static void create_thread(pthread_t *t, void *(*fn)(void *), void *arg)
{
	int err = pthread_create(t, NULL, fn, arg);

	TEST_ASSERT(!err, "pthread_create: expected 0, got %d (%s)", err, strerror(err));
}

/* Every actor behind one barrier, so that the clock starts when they all do. */
static void start_actors(struct stress *s)
{
	u32 i;

	pthread_barrier_init(&s->start, NULL, s->p.nr_vcpus + s->p.nr_threads + 3);
	for (i = 0; i < s->p.nr_vcpus; i++) {
		s->vcpus[i] = (struct vcpu_worker){ .s = s, .idx = i,
						    .node = planned_node(&s->p, i) };
		create_thread(&s->vcpus[i].thread, vcpu_worker_fn, &s->vcpus[i]);
	}
	s->hosts = calloc(s->p.nr_threads, sizeof(*s->hosts));
	TEST_ASSERT(s->hosts, "calloc of host workers: expected memory, got none");
	for (i = 0; i < s->p.nr_threads; i++) {
		init_host_worker(s, &s->hosts[i], i);
		create_thread(&s->hosts[i].thread, host_worker_fn, &s->hosts[i]);
	}
	init_thp_worker(s, &s->splitter, "splitter", ACTOR_SPLITTER, planned_node(&s->p, 0));
	init_thp_worker(s, &s->collapser, "collapser", ACTOR_COLLAPSER, planned_node(&s->p, 1));
	create_thread(&s->splitter.thread, thp_worker_fn, &s->splitter);
	create_thread(&s->collapser.thread, thp_worker_fn, &s->collapser);

	rmpt_thp_stats_read(&s->thp_before);
	s->start_ns = rmpt_now_ns();
	s->deadline_ns = s->start_ns + s->p.duration_s * NSEC_PER_SEC;
	pthread_barrier_wait(&s->start);
}

static void join_actors(struct stress *s)
{
	u32 i;

	for (i = 0; i < s->p.nr_vcpus; i++)
		pthread_join(s->vcpus[i].thread, NULL);
	for (i = 0; i < s->p.nr_threads; i++)
		pthread_join(s->hosts[i].thread, NULL);
	pthread_join(s->splitter.thread, NULL);
	pthread_join(s->collapser.thread, NULL);
	s->end_ns = rmpt_now_ns();
	rmpt_thp_stats_read(&s->thp_after);
	pthread_barrier_destroy(&s->start);
}

static void free_stress(struct stress *s)
{
	u32 i;

	for (i = 0; i < s->p.nr_threads; i++) {
		free(s->hosts[i].table);
		free(s->hosts[i].discards_then);
	}
	free(s->hosts);
	rmpt_vm_free(s->rv);
}

/* ---- the watch over the run ---------------------------------------------- */

static u64 read_count(const u64 *counter)
{
	return __atomic_load_n(counter, __ATOMIC_ACQUIRE);
}

static bool all_finished(struct stress *s)
{
	u32 i;

	for (i = 0; i < s->p.nr_vcpus; i++)
		if (!READ_ONCE(s->vcpus[i].finished))
			return false;
	for (i = 0; i < s->p.nr_threads; i++)
		if (!READ_ONCE(s->hosts[i].finished))
			return false;
	return READ_ONCE(s->splitter.finished) && READ_ONCE(s->collapser.finished);
}

/* Every count that must stay zero, summed as the run goes. */
static u64 failures_so_far(struct stress *s)
{
	u64 n = 0;
	u32 i;

	for (i = 0; i < s->p.nr_vcpus; i++)
		n += read_count(&s->vcpus[i].errors) + READ_ONCE(s->ctl->vcpu[i].mismatches) +
		     READ_ONCE(s->ctl->vcpu[i].conv_errors);
	for (i = 0; i < s->p.nr_threads; i++)
		n += read_count(&s->hosts[i].unexpected) + read_count(&s->hosts[i].missed) +
		     read_count(&s->hosts[i].mismatches);
	return n;
}

static void print_progress(struct stress *s, u64 now)
{
	u64 host = 0, guest = 0;
	u32 i;

	for (i = 0; i < s->p.nr_threads; i++)
		host += READ_ONCE(s->hosts[i].ops);
	for (i = 0; i < s->p.nr_vcpus; i++)
		guest += READ_ONCE(s->ctl->vcpu[i].stamps);
	ksft_print_msg("t=%lus: host ops %lu, guest stamps %lu, splits %lu, collapses %lu\n",
		       (now - s->start_ns) / NSEC_PER_SEC, host, guest,
		       READ_ONCE(s->splitter.observed), READ_ONCE(s->collapser.observed));
}

/* Until the deadline, all actors done, or the first broken invariant; then stop all. */
static void monitor(struct stress *s)
{
	u64 next = s->start_ns + PROGRESS_EVERY_S * NSEC_PER_SEC, now;

	for (;;) {
		usleep(MONITOR_TICK_US);
		now = rmpt_now_ns();
		if (now >= s->deadline_ns || all_finished(s))
			break;
		if (failures_so_far(s)) {
			ksft_print_msg("t=%.1fs: an invariant broke during the run: stopping\n",
				       (now - s->start_ns) / 1e9);
			break;
		}
		if (now >= next) {
			print_progress(s, now);
			next += PROGRESS_EVERY_S * NSEC_PER_SEC;
		}
	}
	__atomic_store_n(&s->stop, 1, __ATOMIC_RELAXED);
	WRITE_ONCE(s->ctl->stop, 1);
}

/* ---- the metrics document (schema snp-rmp-metrics/1) --------------------- */

static size_t list_metrics(struct stress *s, const struct totals *t, struct rmpt_metric *m)
{
	u64 ns = t->elapsed_ns;
	size_t n = 0;

#define METRIC(_name, _value, _unit, _better) \
	(m[n++] = (struct rmpt_metric){ _name, _value, _unit, RMPT_BETTER_##_better })
	METRIC("host_faults_per_s", rmpt_rate(t->host_accesses, ns), "accesses/s", HIGHER);
	METRIC("host_page_faults_per_s", rmpt_rate(t->page_faults, ns), "faults/s", NONE);
	METRIC("host_ops_per_s", rmpt_rate(t->host_ops, ns), "ops/s", HIGHER);
	METRIC("guest_stamps_per_s", rmpt_rate(t->guest_stamps, ns), "stamps/s", HIGHER);
	METRIC("conversions_per_s", rmpt_rate(t->conversions, ns), "conversions/s", HIGHER);
	/* A counter /proc/vmstat lacks (VM_EVENT_COUNTERS=n) is left out, not a number. */
	if (t->splits != RMPT_STAT_ABSENT) {
		METRIC("splits", t->splits, "splits", NONE);
		METRIC("splits_per_s", rmpt_rate(t->splits, ns), "splits/s", HIGHER);
	}
	if (t->collapses != RMPT_STAT_ABSENT) {
		METRIC("collapses", t->collapses, "collapses", NONE);
		METRIC("collapses_per_s", rmpt_rate(t->collapses, ns), "collapses/s", HIGHER);
	}
	METRIC("splits_observed", s->splitter.observed, "splits", NONE);
	METRIC("collapses_observed", s->collapser.observed, "collapses", NONE);
	METRIC("sigbus_latency_p50_ns", rmpt_hist_percentile(&t->sigbus_lat, 50), "ns", LOWER);
	METRIC("sigbus_latency_p99_ns", rmpt_hist_percentile(&t->sigbus_lat, 99), "ns", LOWER);
	METRIC("sigbus_latency_max_ns", t->sigbus_lat.max, "ns", LOWER);
	METRIC("fault_latency_p50_ns", rmpt_hist_percentile(&t->fault_lat, 50), "ns", LOWER);
	METRIC("fault_latency_p99_ns", rmpt_hist_percentile(&t->fault_lat, 99), "ns", LOWER);
	METRIC("fault_latency_max_ns", t->fault_lat.max, "ns", LOWER);
	METRIC("sigbus_total", t->sigbus, "signals", NONE);
	METRIC("host_accesses", t->host_accesses, "accesses", NONE);
	METRIC("guest_stamps", t->guest_stamps, "stamps", NONE);
	METRIC("conversions", t->conversions, "conversions", NONE);
	METRIC("elapsed_s", ns / 1e9, "s", NONE);
#undef METRIC
	TEST_ASSERT(n <= NR_METRICS, "expected at most %d metrics, got %zu", NR_METRICS, n);
	return n;
}

/* /proc/cpuinfo's first "model name", or "unknown"; buf holds 256 bytes. */
static void cpu_model(char *buf)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[256];

	snprintf(buf, 256, "unknown");
	while (f && fgets(line, sizeof(line), f) &&
	       sscanf(line, "model name : %255[^\n]", buf) != 1)
		;
	if (f)
		fclose(f);
}

static void json_env(struct rmpt_json *j, struct stress *s)
{
	struct utsname u;
	char buf[512];

	rmpt_json_object_begin(j, "env");
	if (uname(&u))
		snprintf(buf, sizeof(buf), "unknown");
	else
		snprintf(buf, sizeof(buf), "%s %s", u.release, u.version);
	rmpt_json_string(j, "kernel", buf);
	rmpt_json_string(j, "flavour", rmpt_flavour_name(s->p.flavour));
	rmpt_json_string(j, "thp", rmpt_thp_mode_name(s->caps.thp));
	cpu_model(buf);
	rmpt_json_string(j, "cpu", buf);
	rmpt_json_u64(j, "nodes", rmpt_numa_nodes());
	rmpt_json_u64(j, "host_cpus", sysconf(_SC_NPROCESSORS_ONLN));
	rmpt_json_bool(j, "private_view", s->rv->view);
	rmpt_json_object_end(j);
}

static void json_params(struct rmpt_json *j, struct stress *s)
{
	char buf[32];

	rmpt_json_object_begin(j, "params");
	rmpt_json_u64(j, "seed", s->p.seed);
	snprintf(buf, sizeof(buf), "0x%lx", s->p.seed);
	rmpt_json_string(j, "seed_hex", buf);
	rmpt_json_u64(j, "duration_s", s->p.duration_s);
	rmpt_json_u64(j, "vcpus", s->p.nr_vcpus);
	rmpt_json_u64(j, "threads", s->p.nr_threads);
	rmpt_json_u64(j, "mem_mib", s->p.mem_mib);
	rmpt_json_u64(j, "conversions_per_mille", s->p.conv_per_mille);
	rmpt_json_u64(j, "conversions_effective_per_mille", s->ctl->conv_per_mille);
	if (s->p.numa_node < 0)
		rmpt_json_string(j, "numa", "spread");
	else
		rmpt_json_i64(j, "numa", s->p.numa_node);
	rmpt_json_bool(j, "quick", s->p.quick);
	rmpt_json_u64(j, "max_ops", s->p.max_ops);
	rmpt_json_u64(j, "probe_one_in", PROBE_ONE_IN);
	rmpt_json_u64(j, "punch_one_in", PUNCH_ONE_IN);
	rmpt_json_u64(j, "split_gap_us", SPLIT_GAP_US);
	rmpt_json_u64(j, "collapse_gap_us", COLLAPSE_GAP_US);
	rmpt_json_string(j, "inject", inject_names[s->p.inject]);
	rmpt_json_object_end(j);
}

/* Every entry must be 0 for the run to pass, whatever reads the document. */
static void json_invariants(struct rmpt_json *j, struct stress *s,
			    const struct totals *t)
{
	rmpt_json_object_begin(j, "invariants");
	rmpt_json_u64(j, "unexpected_sigbus", t->unexpected);
	rmpt_json_u64(j, "missed_sigbus", t->missed);
	rmpt_json_u64(j, "stamp_mismatches", t->host_mismatches + t->guest_mismatches);
	rmpt_json_u64(j, "stamp_mismatches_host", t->host_mismatches);
	rmpt_json_u64(j, "stamp_mismatches_guest", t->guest_mismatches);
	rmpt_json_u64(j, "kvm_run_errors", t->run_errors + t->conv_errors);
	rmpt_json_u64(j, "no_splits", s->thp_on &&
		      (!t->splits || t->splits == RMPT_STAT_ABSENT || !s->splitter.observed));
	rmpt_json_u64(j, "no_collapses", s->thp_on &&
		      (!t->collapses || t->collapses == RMPT_STAT_ABSENT ||
		       !s->collapser.observed));
	rmpt_json_u64(j, "kernel_log_bad_lines", t->kmsg_bad > 0 ? t->kmsg_bad : 0);
	rmpt_json_object_end(j);
}

/* An entry of per_thread opens with what every actor has. */
static void json_actor(struct rmpt_json *j, const char *actor, u32 id, int node, u64 ops)
{
	rmpt_json_object_begin(j, NULL);
	rmpt_json_string(j, "actor", actor);
	rmpt_json_u64(j, "id", id);
	rmpt_json_i64(j, "node", node);
	rmpt_json_u64(j, "ops", ops);
}

static void json_host_thread(struct rmpt_json *j, const struct host_worker *w)
{
	u64 ns = w->end_ns - w->start_ns;

	json_actor(j, "host", w->id, w->node, w->ops);
	rmpt_json_double(j, "ops_per_s", rmpt_rate(w->ops, ns));
	rmpt_json_u64(j, "accesses", w->acc.accesses);
	rmpt_json_double(j, "faults_per_s", rmpt_rate(w->acc.accesses, ns));
	rmpt_json_u64(j, "page_faults", w->page_faults);
	rmpt_json_double(j, "page_faults_per_s", rmpt_rate(w->page_faults, ns));
	rmpt_json_u64(j, "stamps", w->stamps);
	rmpt_json_u64(j, "probes", w->probes);
	rmpt_json_u64(j, "sigbus", w->sigbus_ok);
	rmpt_json_u64(j, "zero_words", w->zero_words);
	rmpt_json_u64(j, "fault_latency_p50_ns", rmpt_hist_percentile(&w->acc.latency, 50));
	rmpt_json_u64(j, "fault_latency_p99_ns", rmpt_hist_percentile(&w->acc.latency, 99));
	rmpt_json_u64(j, "fault_latency_max_ns", w->acc.latency.max);
	rmpt_json_u64(j, "sigbus_latency_p50_ns", rmpt_hist_percentile(&w->acc.sigbus, 50));
	rmpt_json_u64(j, "sigbus_latency_p99_ns", rmpt_hist_percentile(&w->acc.sigbus, 99));
	rmpt_json_u64(j, "unexpected_sigbus", w->unexpected);
	rmpt_json_u64(j, "missed_sigbus", w->missed);
	rmpt_json_u64(j, "mismatches", w->mismatches);
	rmpt_json_object_end(j);
}

static void json_vcpu(struct rmpt_json *j, struct stress *s, u32 i, u64 ns)
{
	const struct guest_stats *st = &s->ctl->vcpu[i];

	json_actor(j, "vcpu", i, s->vcpus[i].node, st->ops);
	rmpt_json_u64(j, "stamps", st->stamps);
	rmpt_json_double(j, "stamps_per_s", rmpt_rate(st->stamps, ns));
	rmpt_json_u64(j, "conversions", st->conversions);
	rmpt_json_u64(j, "zero_words", st->zero_words);
	rmpt_json_u64(j, "mismatches", st->mismatches);
	rmpt_json_u64(j, "ucalls", s->vcpus[i].syncs);
	rmpt_json_u64(j, "errors", s->vcpus[i].errors + st->conv_errors);
	rmpt_json_object_end(j);
}

static void json_thp_worker(struct rmpt_json *j, const struct thp_worker *w)
{
	json_actor(j, w->name, 0, w->node, w->ops);
	rmpt_json_double(j, "ops_per_s", rmpt_rate(w->ops, w->end_ns - w->start_ns));
	rmpt_json_u64(j, "on_pmd", w->on_pmd);
	rmpt_json_u64(j, "observed", w->observed);
	rmpt_json_u64(j, "punches", w->punches);
	rmpt_json_u64(j, "already_huge", w->already_huge);
	rmpt_json_u64(j, "eagain", w->eagain);
	rmpt_json_u64(j, "errors", w->errors);
	rmpt_json_object_end(j);
}

static void json_per_thread(struct rmpt_json *j, struct stress *s,
			    const struct totals *t)
{
	u32 i;

	rmpt_json_array_begin(j, "per_thread");
	for (i = 0; i < s->p.nr_threads; i++)
		json_host_thread(j, &s->hosts[i]);
	for (i = 0; i < s->p.nr_vcpus; i++)
		json_vcpu(j, s, i, t->elapsed_ns);
	json_thp_worker(j, &s->splitter);
	json_thp_worker(j, &s->collapser);
	rmpt_json_array_end(j);
}

/* What ran on node and what was placed there. */
static void json_node(struct rmpt_json *j, struct stress *s, int node, u64 ns)
{
	u64 threads = 0, vcpus = 0, accesses = 0, faults = 0, stamps = 0, chunks = 0, c;
	u32 i;

	for (i = 0; i < s->p.nr_threads; i++) {
		if (s->hosts[i].node != node)
			continue;
		threads++;
		accesses += s->hosts[i].acc.accesses;
		faults += s->hosts[i].page_faults;
	}
	for (i = 0; i < s->p.nr_vcpus; i++) {
		if (s->vcpus[i].node != node)
			continue;
		vcpus++;
		stamps += s->ctl->vcpu[i].stamps;
	}
	for (c = 0; c < s->l.nr_chunks; c++)
		chunks += planned_node(&s->p, c) == node;

	rmpt_json_object_begin(j, NULL);
	rmpt_json_i64(j, "node", node);
	rmpt_json_u64(j, "mem_mib", chunks * 2);
	rmpt_json_u64(j, "host_threads", threads);
	rmpt_json_u64(j, "vcpus", vcpus);
	rmpt_json_double(j, "host_faults_per_s", rmpt_rate(accesses, ns));
	rmpt_json_double(j, "host_page_faults_per_s", rmpt_rate(faults, ns));
	rmpt_json_double(j, "guest_stamps_per_s", rmpt_rate(stamps, ns));
	rmpt_json_object_end(j);
}

static void json_per_node(struct rmpt_json *j, struct stress *s,
			  const struct totals *t)
{
	int i, nodes = s->p.numa_node >= 0 ? 1 : rmpt_numa_nodes();

	rmpt_json_array_begin(j, "per_node");
	for (i = 0; i < nodes; i++)
		json_node(j, s, planned_node(&s->p, i), t->elapsed_ns);
	rmpt_json_array_end(j);
}

/* The document, in memory first: a file is only ever written whole. */
static int write_metrics(struct stress *s, const struct totals *t,
			 const struct rmpt_metric *m, size_t n)
{
	struct rmpt_json j;
	char *buf = NULL;
	size_t len = 0;
	FILE *f;
	int err;

	f = open_memstream(&buf, &len);
	TEST_ASSERT(f, "open_memstream: expected a stream, got errno %d", errno);
	rmpt_json_init(&j, f);
	rmpt_json_object_begin(&j, NULL);
	rmpt_json_string(&j, "schema", "snp-rmp-metrics/1");
	rmpt_json_string(&j, "test", TEST_NAME);
	json_env(&j, s);
	json_params(&j, s);
	rmpt_metrics_json(&j, "metrics", m, n);
	json_invariants(&j, s, t);
	json_per_thread(&j, s, t);
	json_per_node(&j, s, t);
	rmpt_json_object_end(&j);
	err = rmpt_json_finish(&j);
	fclose(f);
	if (!err)
		err = rmpt_write_file_atomic(s->p.out_path, buf, len);
	free(buf);
	return err;
}

/* ---- the end of the run -------------------------------------------------- */

/* A KTAP result: why is NULL for a plain "ok"/"not ok" line, else the text after its '#'. */
static void result(int code, const char *name, const char *why)
{
	if (why)
		ksft_test_result_code(code, name, "%s", why);
	else
		ksft_test_result(code == KSFT_PASS, "%s\n", name);
}

static void sum_up(struct stress *s, struct totals *t)
{
	const struct guest_stats *st;
	struct host_worker *w;
	u32 i;

	memset(t, 0, sizeof(*t));
	rmpt_hist_init(&t->fault_lat);
	rmpt_hist_init(&t->sigbus_lat);
	for (i = 0; i < s->p.nr_threads; i++) {
		w = &s->hosts[i];
		t->unexpected += w->unexpected;
		t->missed += w->missed;
		t->host_mismatches += w->mismatches;
		t->host_ops += w->ops;
		t->host_accesses += w->acc.accesses;
		t->sigbus += w->sigbus_ok;
		t->page_faults += w->page_faults;
		t->probes_skipped += w->probes_skipped;
		rmpt_hist_merge(&t->fault_lat, &w->acc.latency);
		rmpt_hist_merge(&t->sigbus_lat, &w->acc.sigbus);
	}
	for (i = 0; i < s->p.nr_vcpus; i++) {
		st = &s->ctl->vcpu[i];
		t->run_errors += s->vcpus[i].errors;
		t->guest_mismatches += st->mismatches;
		t->conv_errors += st->conv_errors;
		t->guest_stamps += st->stamps;
		t->conversions += st->conversions;
	}
	t->splits = rmpt_thp_stat_delta(&s->thp_before, &s->thp_after, RMPT_THP_SPLIT_PMD);
	t->collapses = rmpt_thp_stat_delta(&s->thp_before, &s->thp_after,
					   RMPT_THP_COLLAPSE_ALLOC);
	t->elapsed_ns = s->end_ns - s->start_ns;
	t->kmsg_bad = s->kmsg_err ? s->kmsg_err :
		      rmpt_kmsg_scan(s->kmsg_marker, t->kmsg_first, sizeof(t->kmsg_first));
	if (s->p.inject == INJECT_KMSG && t->kmsg_bad >= 0 && !t->kmsg_bad++)	/* test-only */
		snprintf(t->kmsg_first, sizeof(t->kmsg_first),
			 "injected by SNP_RMP_STRESS_INJECT=kmsg");
}

static void print_first_failures(struct stress *s)
{
	const struct guest_stats *st;
	char expected[96];
	u32 i;

	for (i = 0; i < s->p.nr_threads; i++)
		if (s->hosts[i].why[0])
			ksft_print_msg("%s\n", s->hosts[i].why);
	for (i = 0; i < s->p.nr_vcpus; i++) {
		if (s->vcpus[i].why[0])
			ksft_print_msg("%s\n", s->vcpus[i].why);
		st = &s->ctl->vcpu[i];
		rmpt_stamp_describe_want(expected, sizeof(expected), st->bad_want);
		if (st->mismatches)
			ksft_print_msg("vCPU %u: page %lu word %lu: expected %s, got %#lx\n", i,
				       st->bad_page, st->bad_word, expected, st->bad_got);
		if (st->conv_errors)
			ksft_print_msg("vCPU %u: %lu conversions failed\n", i, st->conv_errors);
	}
}

/* The hash of each actor's first operations, as -S prints it for comparison. */
static void print_run_schedule(struct stress *s)
{
	u32 i;

	for (i = 0; i < s->p.nr_vcpus; i++)
		sched_print("vcpu", i, s->ctl->vcpu[i].sched_ops, s->ctl->vcpu[i].sched_hash, true);
	for (i = 0; i < s->p.nr_threads; i++)
		sched_print("host", i, s->hosts[i].sched.ops, s->hosts[i].sched.hash, true);
	sched_print("splitter", 0, s->splitter.sched.ops, s->splitter.sched.hash, true);
	sched_print("collapser", 0, s->collapser.sched.ops, s->collapser.sched.hash, true);
}

static void report_counts(struct stress *s, const struct totals *t)
{
	const struct thp_worker *sp = &s->splitter, *co = &s->collapser;

	ksft_print_msg("host: %lu ops, %lu page faults, %lu SIGBUS caught, %lu probes skipped\n",
		       t->host_ops, t->page_faults, t->sigbus, t->probes_skipped);
	ksft_print_msg("guest: %lu stamps, %lu conversions\n", t->guest_stamps, t->conversions);
	ksft_print_msg("splitter: %lu ops, %lu on a PMD mapping, %lu splits seen, %lu punches\n",
		       sp->ops, sp->on_pmd, sp->observed, sp->punches);
	ksft_print_msg("collapser: %lu ops, %lu collapsed (%lu seen), %lu huge, %lu EAGAIN\n",
		       co->ops, co->on_pmd, co->observed, co->already_huge, co->eagain);
	if (sp->errors || co->errors)
		ksft_print_msg("errors: splitter %lu (first errno %d), collapser %lu (%d)\n",
			       sp->errors, sp->first_errno, co->errors, co->first_errno);
	if (sp->pmd_errno || co->pmd_errno)
		ksft_print_msg("PAGEMAP_SCAN refused (errno %d): PMD mappings not observed\n",
			       sp->pmd_errno ? sp->pmd_errno : co->pmd_errno);
}

/* vmstat counts the whole machine; what this run saw itself must agree. */
static void report_thp(struct stress *s, const char *name, u64 vmstat,
		       const struct thp_worker *w)
{
	bool observed = w->observed || w->pmd_errno;

	if (!s->thp_on) {
		result(KSFT_SKIP, name, s->thp_why);
		return;
	}
	if (vmstat == RMPT_STAT_ABSENT) {
		result(KSFT_FAIL, name, "/proc/vmstat lacks the counter");
		return;
	}
	ksft_print_msg("%s: /proc/vmstat delta %lu, observed by the %s %lu\n", name, vmstat,
		       w->name, w->observed);
	result(vmstat > 0 && observed ? KSFT_PASS : KSFT_FAIL, name, NULL);
}

static void report_conversions(struct stress *s, const struct totals *t)
{
	if (s->conv == CONV_NONE) {
		result(KSFT_SKIP, "conversions_exercised", s->conv_why);
		return;
	}
	if (!s->p.conv_per_mille) {
		result(KSFT_SKIP, "conversions_exercised", "-c 0");
		return;
	}
	ksft_print_msg("conversions: %lu by the guests, %lu to private and %lu to shared served\n",
		       t->conversions, s->rv->conv.to_private, s->rv->conv.to_shared);
	result(t->conversions > 0 ? KSFT_PASS : KSFT_FAIL, "conversions_exercised", NULL);
}

static void report_kmsg(const struct totals *t)
{
	char why[128];

	if (t->kmsg_bad < 0) {
		snprintf(why, sizeof(why), "kernel log not usable: %s", strerror(-t->kmsg_bad));
		result(KSFT_SKIP, "kernel_log_clean", why);
		return;
	}
	if (t->kmsg_bad)
		ksft_print_msg("kernel log: %d bad line(s), first: %s\n", t->kmsg_bad,
			       t->kmsg_first);
	result(!t->kmsg_bad ? KSFT_PASS : KSFT_FAIL, "kernel_log_clean", NULL);
}

static void report_invariant(const char *name, u64 count, const char *what)
{
	char subtest[64];

	ksft_print_msg("%s: %lu (%s)\n", name, count, what);
	snprintf(subtest, sizeof(subtest), "no_%s", name);
	result(!count ? KSFT_PASS : KSFT_FAIL, subtest, NULL);
}

static void report(struct stress *s, const struct totals *t)
{
	struct rmpt_metric m[NR_METRICS];
	size_t n = list_metrics(s, t, m);
	int err = 0;

	report_counts(s, t);
	print_first_failures(s);
	print_run_schedule(s);
	rmpt_metrics_print(m, n);
	if (s->p.out_path)
		err = write_metrics(s, t, m, n);

	report_invariant("unexpected_sigbus", t->unexpected, "shared accesses that faulted");
	if (s->rv->view)
		report_invariant("missed_sigbus", t->missed,
				 "private accesses without SIGBUS BUS_ADRERR at the address");
	else
		result(KSFT_SKIP, "no_missed_sigbus", s->rv->view_why);
	report_invariant("stamp_mismatch", t->host_mismatches + t->guest_mismatches,
			 "host and guest checks");
	report_invariant("kvm_run_error", t->run_errors + t->conv_errors,
			 "KVM_RUN failures, unexpected exits, guest aborts, failed conversions");
	report_thp(s, "thp_splits_seen", t->splits, &s->splitter);
	report_thp(s, "thp_collapses_seen", t->collapses, &s->collapser);
	report_conversions(s, t);
	report_kmsg(t);
	if (!s->p.out_path) {
		result(KSFT_SKIP, "metrics_written", "no -o and no SNP_RMP_METRICS");
		return;
	}
	ksft_print_msg("metrics: %s: %s\n", s->p.out_path, err ? strerror(-err) : "written");
	result(!err ? KSFT_PASS : KSFT_FAIL, "metrics_written", NULL);
}

/* ---- -S: the schedule alone ---------------------------------------------- */

/* The next operation of an actor, fed to the hash the actor itself keeps. */
static void dry_step(const struct stress *s, enum actor_kind kind, u64 *rng,
		     struct sched_hash *h)
{
	u64 conv = s->conv == CONV_NONE ? 0 : s->p.conv_per_mille;
	struct split_op sp;
	struct guest_op g;
	struct host_op o;

	switch (kind) {
	case ACTOR_VCPU:
		guest_op_next(rng, s->l.vcpu_pages, conv, &g);
		sched_note(h, g.kind, g.page, 0);
		break;
	case ACTOR_HOST:
		host_op_next(rng, &s->l, &o, h);
		break;
	case ACTOR_SPLITTER:
		split_op_next(rng, &s->l, &sp, h);
		break;
	case ACTOR_COLLAPSER:
		collapse_op_next(rng, &s->l, h);
		break;
	}
}

static void dry_actor(const struct stress *s, enum actor_kind kind,
		      const char *name, u32 idx)
{
	u64 n = min_t(u64, SCHED_HASH_OPS, s->p.max_ops), rng, i;
	struct sched_hash h = { RMPT_FNV_OFFSET, 0 };

	rng = rng_seed(s->p.seed, ACTOR_ID(kind, idx));
	for (i = 0; i < n; i++)
		dry_step(s, kind, &rng, &h);
	sched_print(name, idx, h.ops, h.hash, false);
}

/* Every actor's schedule hash, from the generators the actors run. */
static void dry_run(const struct stress *s)
{
	u32 i;

	printf("schedule seed 0x%lx flavour %s\n", s->p.seed, rmpt_flavour_name(s->p.flavour));
	for (i = 0; i < s->p.nr_vcpus; i++)
		dry_actor(s, ACTOR_VCPU, "vcpu", i);
	for (i = 0; i < s->p.nr_threads; i++)
		dry_actor(s, ACTOR_HOST, "host", i);
	dry_actor(s, ACTOR_SPLITTER, "splitter", 0);
	dry_actor(s, ACTOR_COLLAPSER, "collapser", 0);
}

/* ---- options ------------------------------------------------------------- */

static void print_usage(FILE *f)
{
	fprintf(f,
		"Usage: %s [-h] [-q] [-S] [-f FLAVOUR] [-s SEED] [-d SECONDS] [-t THREADS]\n"
		"          [-v VCPUS] [-m MIB] [-c PER_MILLE] [-n POLICY] [-i OPS] [-o FILE]\n"
		"Concurrent host faults, guest stamps, conversions, THP splits and collapses.\n"
		"\n"
		"  -f FLAVOUR  snp, sw_protected or default (default: the strongest usable)\n"
		"  -s SEED     seed of every actor's schedule (default: from the clock)\n"
		"  -d SECONDS  run time, 1-%d (default %d, quick %d)\n"
		"  -q          quick mode, also with SNP_RMP_QUICK=1: %d s, %d MiB\n"
		"  -t THREADS  host faulting threads, 1-%d (default: one per CPU)\n"
		"  -v VCPUS    vCPU workers, 1-%d (default: one per CPU)\n"
		"  -m MIB      guest data memory, an even number of MiB (default %d, quick %d)\n"
		"  -c N        guest conversions per 1000 guest ops, 0-1000 (default %d)\n"
		"  -n POLICY   NUMA: spread (default) or a node number\n"
		"  -i OPS      iteration cap per actor (default 2^40)\n"
		"  -o FILE     metrics JSON (default: $SNP_RMP_METRICS, if set)\n"
		"  -S          print a hash of each actor's first %d operations and exit\n"
		"  -h          this help\n"
		"Exit status: 0 pass, 1 fail or bad usage, 4 skip.\n",
		TEST_NAME, MAX_DURATION_S, DEFAULT_DURATION_S, QUICK_DURATION_S,
		QUICK_DURATION_S, QUICK_MEM_MIB, MAX_HOST_THREADS, RMPT_MAX_VCPUS,
		DEFAULT_MEM_MIB, QUICK_MEM_MIB, DEFAULT_CONV_PER_MILLE, SCHED_HASH_OPS);
}

static __printf(1, 2) __noreturn void usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", TEST_NAME);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	print_usage(stderr);
	exit(KSFT_FAIL);
}

/* A whole unsigned number in [min, max], decimal or 0x-hex. */
static u64 parse_num(char opt, const char *arg, u64 min, u64 max)
{
	unsigned long long val;
	char *end;

	errno = 0;
	val = strtoull(arg, &end, 0);
	if (!*arg || *end || errno || strchr(arg, '-') || val < min || val > max)
		usage_error("-%c: expected a number in %lu..%lu, got '%s'", opt, min, max, arg);
	return val;
}

static int parse_numa(const char *arg)
{
	int node;

	if (!strcmp(arg, "spread"))
		return -1;
	node = parse_num('n', arg, 0, 1023);
	if (numa_available() < 0 ? node != 0 : !numa_bitmask_isbitset(numa_all_nodes_ptr, node))
		usage_error("-n: expected spread or a node of this machine, got node %d", node);
	return node;
}

static enum inject parse_inject(void)
{
	const char *name = getenv("SNP_RMP_STRESS_INJECT");
	int i;

	if (!name || !*name)
		return INJECT_NONE;
	for (i = 0; i < NR_INJECTS; i++)
		if (!strcmp(name, inject_names[i]))
			return i;
	usage_error("SNP_RMP_STRESS_INJECT: unknown '%s'", name);
}

/* The metrics go next to path: its folder must take a new file. */
static void check_out_path(const char *path)
{
	char dir[4096];
	const char *slash;

	if (!path)
		return;
	slash = strrchr(path, '/');
	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path) + 1 : 1,
		 slash ? path : ".");
	if (access(dir, W_OK | X_OK))
		usage_error("-o %s: expected a writable folder %s, got %s", path, dir,
			    strerror(errno));
}

static void defaults(struct params *p)
{
	const char *quick = getenv("SNP_RMP_QUICK");
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	memset(p, 0, sizeof(*p));
	p->flavour = RMPT_DEFAULT;
	p->seed = rmpt_now_ns() ^ ((u64)getpid() << 32);
	p->quick = quick && !strcmp(quick, "1");
	p->nr_vcpus = cpus < 1 ? 1 : min_t(long, cpus, RMPT_MAX_VCPUS);
	p->nr_threads = cpus < 1 ? 1 : min_t(long, cpus, MAX_HOST_THREADS);
	p->conv_per_mille = DEFAULT_CONV_PER_MILLE;
	p->numa_node = -1;
	p->out_path = getenv("SNP_RMP_METRICS");
	if (p->out_path && !*p->out_path)
		p->out_path = NULL;
	p->max_ops = DEFAULT_MAX_OPS;
}

static void parse_args(int argc, char **argv, struct params *p)
{
	u64 duration = 0, mem = 0;
	int opt;

	defaults(p);
	while ((opt = getopt(argc, argv, "f:s:d:qt:v:m:c:n:i:o:Sh")) != -1) {
		switch (opt) {
		case 'f':
			if (rmpt_flavour_parse(optarg, &p->flavour))
				usage_error("-f: expected snp, sw_protected or default, got '%s'",
					    optarg);
			p->flavour_given = true;
			break;
		case 's':
			p->seed = parse_num('s', optarg, 0, UINT64_MAX);
			break;
		case 'd':
			duration = parse_num('d', optarg, 1, MAX_DURATION_S);
			break;
		case 'q':
			p->quick = true;
			break;
		case 't':
			p->nr_threads = parse_num('t', optarg, 1, MAX_HOST_THREADS);
			break;
		case 'v':
			p->nr_vcpus = parse_num('v', optarg, 1, RMPT_MAX_VCPUS);
			break;
		case 'm':
			mem = parse_num('m', optarg, 2, MAX_MEM_MIB);
			if (mem % 2)
				usage_error("-m: expected an even number of MiB, got %lu", mem);
			break;
		case 'c':
			p->conv_per_mille = parse_num('c', optarg, 0, 1000);
			break;
		case 'n':
			p->numa_node = parse_numa(optarg);
			break;
		case 'i':
			p->max_ops = parse_num('i', optarg, 1, UINT64_MAX);
			break;
		case 'o':
			if (!*optarg)
				usage_error("-o: expected a file name, got ''");
			p->out_path = optarg;
			break;
		case 'S':
			p->dry_run = true;
			break;
		case 'h':
			print_usage(stdout);
			exit(KSFT_PASS);
		default:
			usage_error("unknown option or missing argument");
		}
	}
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);
	check_out_path(p->out_path);
	p->duration_s = duration ? duration : p->quick ? QUICK_DURATION_S : DEFAULT_DURATION_S;
	p->mem_mib = mem ? mem : p->quick ? QUICK_MEM_MIB : DEFAULT_MEM_MIB;
	p->inject = parse_inject();
}

/* Enough memory for the control area and a 2M range per vCPU? */
static void check_layout(const struct params *p, struct layout *l)
{
	layout_compute(l, p->mem_mib, p->nr_vcpus);
	if (!l->vcpu_pages)
		usage_error("-m %lu: expected >= %lu MiB (control area %lu, then 2 per vCPU)",
			    p->mem_mib, (l->ctl_chunks + p->nr_vcpus) * 2, l->ctl_chunks * 2);
}

/* ---- main ---------------------------------------------------------------- */

int main(int argc, char **argv)
{
	static struct stress s;
	struct totals t;

	parse_args(argc, argv, &s.p);
	check_layout(&s.p, &s.l);
	rmpt_caps_probe(&s.caps);
	if (s.p.dry_run) {
		/* The schedule depends on the flavour only through conversions. */
		choose_flavour(&s, s.conv_why, sizeof(s.conv_why));
		pick_conversions(&s);
		dry_run(&s);
		return KSFT_PASS;
	}
	pick_flavour(&s);
	pick_conversions(&s);
	s.thp_on = rmpt_thp_usable(&s.caps, s.thp_why, sizeof(s.thp_why));

	ksft_print_header();
	ksft_set_plan(NR_RESULTS);
	s.kmsg_err = rmpt_kmsg_mark(TEST_NAME, s.kmsg_marker, sizeof(s.kmsg_marker));
	create_vm(&s);
	print_setup(&s);
	start_actors(&s);
	monitor(&s);
	join_actors(&s);
	sum_up(&s, &t);
	report(&s, &t);
	free_stress(&s);
	ksft_finished();
}
