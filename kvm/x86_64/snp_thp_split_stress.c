// SPDX-License-Identifier: GPL-2.0-only
/*
 * snp_thp_split_stress: the host memory contract under concurrency.
 *
 * Actors, each bounded by the deadline and an iteration cap, each with a
 * PRNG seeded from (seed, actor id), so that -S can print a hash of what
 * it does:
 *  - vCPUs stamp the pages of their slice of the data region and check the
 *    host's stamps there.  Where the flavour has private memory they also
 *    convert 4K and 2M ranges to private and back (GHCB PSC on snp,
 *    KVM_HC_MAP_GPA_RANGE on sw_protected); while a range is private, the
 *    host words they zeroed there must stay zero.
 *  - host threads stamp and check shared pages anywhere in the THP-backed
 *    region, and probe the guest_memfd view of private memory, where every
 *    access must SIGBUS at exactly its address.
 *  - the splitter drops one 4K of a 2M range: MADV_DONTNEED, which splits
 *    its PMD mapping, or, as MADV_REMOVE needs a shared mapping, a hole
 *    punched in the view.  The collapser runs MADV_COLLAPSE on 2M ranges.
 *
 * The data region starts with a control area nobody discards (parameters,
 * per-vCPU statistics, sequence tables and discard counts); the rest is a
 * slice of whole 2M ranges per vCPU, plus leftovers only the host stamps.
 *
 * Stamps (include/snp_stamp.h): each writer has a word of its own in each
 * page, the owning vCPU word 0, host thread t word HOST_WORD0 + t.  In
 * another writer's word a checker accepts 0 or any stamp of that writer
 * for the page; in its own word exactly its last stamp (collapse copies
 * the page under the writers' feet and must not lose a store), or 0 only
 * if the page was discarded since.  The guest's private copy of a page is
 * another page.  Anything else is a mismatch.
 *
 * SNP_RMP_STRESS_INJECT=name (test-only, tests/t_stress.sh) breaks one
 * invariant once, to show that its check fails.
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
#define GUEST_PUBLISH_EVERY	64	/* guest ops between statistics updates */
#define GUEST_PRIVATE_SEQ	1	/* a private range's stamps, reset after */
#define START_WAIT_S		30	/* for a vCPU to claim its slot */
#define MONITOR_TICK_US		100000
#define PROGRESS_EVERY_S	10
#define INJECT_PORT		0x5157		/* an I/O port no ucall uses */
#define PROBE_POISON		0x5349474255535f3fULL	/* "?_SUBGIS" */
#define NR_RESULTS		9
#define NR_METRICS		26
#define BARE_LOOPS		100

/* READ_ONCE()/WRITE_ONCE() are always_inline for the default target only. */
#define guest_load(ptr)		__atomic_load_n(ptr, __ATOMIC_RELAXED)
#define guest_load_acquire(ptr)	__atomic_load_n(ptr, __ATOMIC_ACQUIRE)
#define guest_store(ptr, val)	__atomic_store_n(ptr, val, __ATOMIC_RELAXED)

/* ---- the schedule -------------------------------------------------------- */

#define SCHED_HASH_OPS		1000
#define PROBE_ONE_IN		16	/* host ops that probe private memory */
#define PUNCH_ONE_IN		4	/* splitter ops that punch the view */
#define CONVERT_2M_ONE_IN	8	/* conversions of a whole 2M range */

enum actor_kind { ACTOR_VCPU = 1, ACTOR_HOST, ACTOR_SPLITTER, ACTOR_COLLAPSER };

static const char *const actor_names[] = {
	[ACTOR_VCPU] = "vcpu", [ACTOR_HOST] = "host",
	[ACTOR_SPLITTER] = "splitter", [ACTOR_COLLAPSER] = "collapser",
};

#define ACTOR_ID(kind, idx)	(((u64)(kind) << 32) | (idx))

struct layout {
	u64 nr_chunks;		/* 2M ranges in the data region */
	u64 ctl_chunks;		/* of which the control area */
	u64 first_page, nr_pages;	/* of the stress area */
	u64 vcpu_pages;
};

/* Each actor's stream: the seed and the actor id mixed, never just added. */
static RMPT_GUEST_CODE u64 rng_seed(u64 seed, u64 actor)
{
	u64 a = seed, b = ~actor;

	return rmpt_rng_next(&a) ^ rmpt_rng_next(&b);
}

/* A hash over the first SCHED_HASH_OPS operations of an actor. */
struct sched_hash {
	u64 hash, ops;
};

static RMPT_GUEST_CODE __always_inline void sched_note(struct sched_hash *h, u64 a, u64 b, u64 c)
{
	if (h->ops >= SCHED_HASH_OPS)
		return;
	h->hash = rmpt_fnv_mix(rmpt_fnv_mix(rmpt_fnv_mix(h->hash, a), b), c);
	h->ops++;
}

enum guest_op_kind { GOP_STAMP, GOP_CONVERT_4K, GOP_CONVERT_2M };
enum host_op_kind { HOP_STAMP, HOP_PROBE_READ, HOP_PROBE_WRITE };

struct guest_op {
	u64 kind, page;		/* page: in the vCPU's slice */
};

static RMPT_GUEST_CODE __always_inline void
guest_op_next(u64 *rng, u64 vcpu_pages, u64 conv_per_mille, struct guest_op *op)
{
	u64 r = rmpt_rng_next(rng);

	op->page = rmpt_rng_next(rng) % vcpu_pages;
	op->kind = r % 1000 >= conv_per_mille ? GOP_STAMP :
		   (r >> 32) % CONVERT_2M_ONE_IN ? GOP_CONVERT_4K : GOP_CONVERT_2M;
}

/* ---- shared with the guest: the control area ----------------------------- */

/* How the guest converts pages; 0 where the flavour cannot. */
enum conv_mode { CONV_NONE, CONV_SNP_PSC, CONV_HYPERCALL };

enum inject {
	INJECT_NONE, INJECT_UNEXPECTED_SIGBUS, INJECT_MISSED_SIGBUS, INJECT_HOST_MISMATCH,
	INJECT_LOST_WRITE, INJECT_GUEST_MISMATCH, INJECT_KVM_RUN_ERROR, INJECT_NO_SPLIT,
	INJECT_NO_COLLAPSE, INJECT_KMSG, NR_INJECTS
};

/* In the enum's order. */
static const char *const inject_names[NR_INJECTS] = {
	"none", "unexpected_sigbus", "missed_sigbus", "host_mismatch", "lost_write",
	"guest_mismatch", "kvm_run_error", "no_split", "no_collapse", "kmsg",
};

/* Written by one vCPU, read by the host at any time; two cache lines each. */
struct guest_stats {
	u64 ops, stamps, mismatches, conversions, conv_errors;
	u64 zero_words;		/* found discarded */
	/* The first mismatch; bad_want as rmpt_stamp_describe_want() takes it. */
	u64 bad_page, bad_word, bad_want, bad_got;
	struct sched_hash sched;
	u64 pad[4];
};

/* At the start of the data region; the host fills it before any vCPU runs. */
struct stress_ctl {
	u64 seed, nr_threads;
	u64 first_page;		/* of the stress area, from the region's start */
	u64 vcpu_pages;		/* per vCPU slice */
	u64 conv_per_mille, conv_mode, max_ops, inject;
	u64 claimed, stop;	/* claimed: vCPU slots taken so far */
	u64 region_pages;	/* of the whole data region, control included */
	struct guest_stats vcpu[RMPT_MAX_VCPUS];
};

/* Then, per page of the region, the guest's last seq and the discard counts. */
#define CTL_TABLE_OFF		(16 * 1024)
#define CTL_PAGE_BYTES		(sizeof(u32) + 2 * sizeof(u64))	/* seq, discards, guest's count */

kvm_static_assert(sizeof(struct guest_stats) == 128);
kvm_static_assert(sizeof(struct stress_ctl) <= CTL_TABLE_OFF);

/*
 * Discards of each page, one u64 per page after the sequence tables:
 * discards begun in the upper half, ended in the lower.  Whoever discards
 * (splitter, conversion) adds DISCARD_BEGIN before and DISCARD_END after;
 * a writer takes the count before it stores its stamp.  A zero where its
 * stamp should be is then legal only if a discard began since, or one was
 * under way when the count was taken.
 */
#define DISCARD_BEGIN		BIT_ULL(32)
#define DISCARD_END		1ULL

static RMPT_GUEST_CODE __always_inline u64 *ctl_discards(struct stress_ctl *ctl)
{
	return (u64 *)((u8 *)ctl + CTL_TABLE_OFF + ctl->region_pages * sizeof(u32));
}

/* A writer's own word: its last stamp (want), or 0 after a discard since then. */
static RMPT_GUEST_CODE __always_inline enum rmpt_verdict
own_verdict(u64 got, u8 writer, u64 page, u32 want, u64 then, const u64 *discards)
{
	enum rmpt_verdict v = rmpt_stamp_verify(got, writer, page, want);
	u64 now;

	if (v != RMPT_WORD_ZERO || !want)
		return v;
	now = __atomic_load_n(discards, __ATOMIC_ACQUIRE);
	return now >> 32 != then >> 32 || (u32)then != then >> 32 ? v : RMPT_WORD_BAD;
}

/* ---- the host's state ---------------------------------------------------- */

struct params {
	enum rmpt_flavour flavour;
	bool flavour_given, quick, dry_run;
	u64 seed, duration_s, nr_threads, nr_vcpus, mem_mib, conv_per_mille, max_ops;
	int numa_node;		/* -1: spread */
	const char *out_path;
	enum inject inject;
};

/* One thread of the run; the fields of the other kinds stay 0. */
struct actor {
	struct stress *s;
	enum actor_kind kind;
	u32 idx;
	int node;
	pthread_t thread;
	struct sched_hash sched;
	u64 rng, ops, start_ns, end_ns, page_faults;
	u64 cpu_ns;		/* CLOCK_THREAD_CPUTIME_ID spent in the run */
	u64 errors;		/* failed runs (vCPU) or operations (splitter, collapser) */
	bool finished;
	char why[1100];		/* the first failure; a guest assertion is long */
	u64 syncs;		/* vCPU: ucalls */
	/* host thread */
	u32 seq;
	u32 *table;		/* last seq written, per stress page */
	u64 *discards_then;	/* the page's discard count before that write */
	u64 stamps, probes, probes_skipped, sigbus_ok, zero_words, unexpected, missed, mismatches;
	bool injected;
	struct rmpt_access_stats acc;
	/* splitter and collapser */
	u64 on_pmd;		/* discards in a PMD-mapped range; collapses done */
	u64 observed;		/* PMD mapping gone (split) or there (collapse) after */
	u64 punches, eagain;
	u64 already_huge;	/* collapser: nothing to do */
	int pmd_errno;		/* PAGEMAP_SCAN refused: nothing observed */
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
	double bare_splits_per_cpu_s, bare_collapses_per_cpu_s;	/* one thread, no VM */
	char thp_why[256];
	pthread_barrier_t start;
	u64 start_ns, deadline_ns, end_ns, stop;
	int huge_at_start;
	u32 nr_actors;
	struct actor *actors;	/* the vCPUs, then the host threads, ... */
	struct actor *hosts, *splitter, *collapser;
	struct rmpt_thp_stats thp_before, thp_after;
	char kmsg_marker[160];
	int kmsg_err;
};

/* Sums over the actors, and what the end of the run adds. */
struct totals {
	u64 running, vcpus, hosts;
	u64 unexpected, missed, host_mismatches, guest_mismatches, run_errors, conv_errors;
	u64 host_ops, host_accesses, sigbus, page_faults, probes_skipped;
	u64 guest_stamps, conversions;
	u64 splits, collapses;	/* /proc/vmstat thp_split_pmd, thp_collapse_alloc */
	int kmsg_bad;		/* -errno: not readable */
	char kmsg_first[256];
	struct rmpt_hist fault_lat, sigbus_lat;
};

static u8 *page_hva(struct stress *s, u64 page)
{
	return rmpt_data_hva(s->rv, RMPT_DATA_GPA + page * SZ_4K);
}

static u8 *view_page_hva(struct stress *s, u64 page)
{
	return rmpt_view_hva(s->rv, RMPT_DATA_GPA + page * SZ_4K);
}

/* A failure: its story first (only the first is kept), then the count; false. */
static __printf(3, 4) bool fail_note(struct actor *a, u64 *counter, const char *fmt, ...)
{
	va_list ap;

	if (!a->why[0]) {
		va_start(ap, fmt);
		vsnprintf(a->why, sizeof(a->why), fmt, ap);
		va_end(ap);
	}
	__atomic_add_fetch(counter, 1, __ATOMIC_RELEASE);
	return false;
}

/* ---- guest --------------------------------------------------------------- */

/*
 * Every guest store costs a trip through KVM's instruction emulator on some
 * hosts (a paravirtualized KVM: about 10 us each), so the loop keeps what
 * changes per operation in locals, the helpers are inlined, the run state is
 * read-only and counters reach the control area in batches.  Only a
 * mismatch is published at once, so that the host can stop early.
 */
struct guest_run {
	struct stress_ctl *ctl;
	struct guest_stats *st;
	u32 *table;		/* last seq this vCPU wrote, per slice page */
	u64 *discards;		/* per page of the region */
	u64 *discards_then;	/* per slice page: the count before our last stamp */
	u64 base;		/* first page of the slice */
	u64 nr_threads;
	u8 writer;
	bool conv_broken;	/* a range stayed private: stop converting */
};

struct guest_counts {
	u64 ops, conv_ops, conversions, zero_words;
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

static RMPT_GUEST_CODE __always_inline u64 guest_check_own(const struct guest_run *g,
							   u64 slice_page)
{
	u64 page = g->base + slice_page;
	u32 want = g->table[slice_page];
	u64 got = guest_load_acquire(&guest_page(page)[GUEST_WORD]);

	return guest_judge(g, page, GUEST_WORD, got,
			   own_verdict(got, g->writer, page, want, g->discards_then[slice_page],
				       &g->discards[page]),
			   want ? rmpt_stamp_make(g->writer, want, page) : 0);
}

/* Any stamp of their writer, or 0; only 0 while the page is private. */
static RMPT_GUEST_CODE __always_inline u64 guest_check_host_words(const struct guest_run *g,
								  u64 page, bool private)
{
	u64 *w = guest_page(page);
	u64 t, got, zero = 0;
	enum rmpt_verdict v;

	for (t = 0; t < g->nr_threads; t++) {
		got = guest_load(&w[HOST_WORD0 + t]);
		v = private ? (got ? RMPT_WORD_BAD : RMPT_WORD_ZERO) :
		    rmpt_stamp_verify(got, RMPT_WRITER_HOST(t), page, RMPT_SEQ_ANY);
		zero += guest_judge(g, page, HOST_WORD0 + t, got, v,
				    private ? 0 : rmpt_stamp_make(RMPT_WRITER_HOST(t), 0, page));
	}
	return zero;
}

/* Store our stamp with seq, after the discard count it may be lost to; returns it. */
static RMPT_GUEST_CODE __always_inline u64 guest_put(const struct guest_run *g, u64 slice_page,
						     u32 seq)
{
	u64 page = g->base + slice_page, stamp = rmpt_stamp_make(g->writer, seq, page);

	guest_store(&g->discards_then[slice_page], guest_load_acquire(&g->discards[page]));
	guest_store(&guest_page(page)[GUEST_WORD], stamp);
	g->table[slice_page] = seq;
	return stamp;
}

/* Check the page's words, then stamp it with seq; returns the zero words seen. */
static RMPT_GUEST_CODE __always_inline u64 guest_stamp(const struct guest_run *g,
						       u64 slice_page, u32 seq, bool inject)
{
	u64 page = g->base + slice_page, stamp, zero;

	zero = guest_check_own(g, slice_page) + guest_check_host_words(g, page, false);
	stamp = guest_put(g, slice_page, seq);
	if (inject) {
		guest_store(&guest_page(page)[GUEST_WORD], stamp ^ BIT_ULL(8));
		zero += guest_check_own(g, slice_page);
	}
	return zero;
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
 * Private and back in one operation, so that the host threads, which do not
 * know which pages are private, never have to: a discard is all they see.
 * A freshly private page holds nothing defined (SNP: the host's zeroes read
 * through the guest's key), so it is written before it is read: our stamp,
 * and zero in every host word, which no host store can reach any more.
 * Back in shared memory our word reads 0 (the conversion to private
 * discarded the shared page).  True if both conversions were done.
 */
static noinline RMPT_GUEST_CODE bool guest_convert_range(struct guest_run *g, bool huge,
							 u64 slice_page)
{
	bool psc = guest_load(&g->ctl->conv_mode) == CONV_SNP_PSC, done = false;
	u64 first = huge ? slice_page / PAGES_PER_2M * PAGES_PER_2M : slice_page;
	u64 n = huge ? PAGES_PER_2M : 1, i, t;
	u64 gpa = (u64)guest_page(g->base + first);	/* identity-mapped */

	guest_count_discards(g, first, n, DISCARD_BEGIN);
	if (rmpt_guest_map_gpa(psc, gpa, n, true))
		goto out;
	for (i = first; i < first + n; i++) {
		guest_put(g, i, GUEST_PRIVATE_SEQ);
		for (t = 0; t < g->nr_threads; t++)
			guest_store(&guest_page(g->base + i)[HOST_WORD0 + t], 0);
	}
	for (i = first; i < first + n; i++) {
		guest_check_own(g, i);
		guest_check_host_words(g, g->base + i, true);
	}
	if (rmpt_guest_map_gpa(psc, gpa, n, false)) {
		g->conv_broken = true;
		goto out;
	}
	for (i = first; i < first + n; i++)
		g->table[i] = 0;
	done = true;
out:
	guest_count_discards(g, first, n, DISCARD_END);
	if (!done)
		guest_store(&g->st->conv_errors, g->st->conv_errors + 1);
	return done;
}

/*
 * The hash covers the first operations, as -S computes it.  Test-only
 * injections happen at the first operation of vCPU 0.
 */
static RMPT_GUEST_CODE void guest_main(struct stress_ctl *ctl, u64 id)
{
	u64 max = guest_load(&ctl->max_ops), pages = ctl->vcpu_pages, conv = ctl->conv_per_mille;
	u64 rng = rng_seed(ctl->seed, ACTOR_ID(ACTOR_VCPU, id));
	u64 inject = id ? INJECT_NONE : guest_load(&ctl->inject);
	struct sched_hash sched = { RMPT_FNV_OFFSET };
	struct guest_run g = {
		.ctl = ctl,
		.st = &ctl->vcpu[id],
		.table = (u32 *)((u8 *)ctl + CTL_TABLE_OFF) + id * pages,
		.discards = ctl_discards(ctl),
		.discards_then = ctl_discards(ctl) + ctl->region_pages + id * pages,
		.base = ctl->first_page + id * pages,
		.nr_threads = ctl->nr_threads,
		.writer = RMPT_WRITER_GUEST(id),
	};
	struct guest_counts c = { 0 };
	struct guest_op op;
	u32 seq = 0;

	while (c.ops < max && !guest_load(&ctl->stop)) {
		guest_op_next(&rng, pages, conv, &op);
		sched_note(&sched, op.kind, op.page, 0);
		if (!c.ops && inject == INJECT_KVM_RUN_ERROR)
			asm volatile("outl %0, %w1" : : "a"(0), "Nd"(INJECT_PORT));
		if (op.kind == GOP_STAMP || g.conv_broken) {
			seq = rmpt_seq_next(seq);
			c.zero_words += guest_stamp(&g, op.page, seq,
						    !c.ops && inject == INJECT_GUEST_MISMATCH);
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
	guest_store(&g.st->sched.hash, sched.hash);
	guest_store(&g.st->sched.ops, sched.ops);
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

/* ---- host: vCPUs --------------------------------------------------------- */

/* vCPU i may start once vCPUs 0..i-1 took their slots (see guest_code()). */
static bool vcpu_wait_turn(struct actor *w)
{
	struct stress *s = w->s;
	u64 give_up = rmpt_now_ns() + START_WAIT_S * NSEC_PER_SEC;

	while (READ_ONCE(s->ctl->claimed) < w->idx) {
		if (READ_ONCE(s->stop) || rmpt_now_ns() > give_up)
			return fail_note(w, &w->errors,
					 "vCPU %u: expected vCPU %u to claim its slot first, got %lu claimed",
					 w->idx, w->idx - 1, READ_ONCE(s->ctl->claimed));
		usleep(100);
	}
	return true;
}

/*
 * One KVM_RUN; false once the guest is done or something went wrong.
 * Private flavours need the library's conversion service, which asserts on
 * errors.
 */
static bool vcpu_step(struct actor *w)
{
	struct kvm_vcpu *vcpu = w->s->rv->vcpus[w->idx];
	struct kvm_run *run = vcpu->run;
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	struct ucall uc;
	int err = 0;

	if (rmpt_flavour_has_private_mem(w->s->rv->flavour))
		rmpt_vcpu_run(w->s->rv, vcpu);
	else
		err = rmpt_snp_vcpu_try_run(vcpu);
	if (err)
		return fail_note(w, &w->errors, "vCPU %u: KVM_RUN: expected 0, got errno %d (%s)",
				 w->idx, err, strerror(err));
	switch (rmpt_get_ucall(w->s->rv, vcpu, &uc)) {
	case UCALL_SYNC:
		rmpt_bump(&w->syncs);
		return true;
	case UCALL_DONE:
		return false;
	case UCALL_ABORT:
		return fail_note(w, &w->errors, "vCPU %u: guest assertion: %.900s", w->idx,
				 uc.buffer);
	}
	if (run->exit_reason != KVM_EXIT_SHUTDOWN)
		return fail_note(w, &w->errors,
				 "vCPU %u: expected a ucall, got exit reason %u (%s), port 0x%x",
				 w->idx, run->exit_reason, exit_reason_str(run->exit_reason),
				 run->exit_reason == KVM_EXIT_IO ? run->io.port : 0);
	/*
	 * A triple fault: where the state is readable (not SNP), say where, so
	 * that a kernel's lost page and an emulator's lost fault can be told
	 * apart.  shutdown_interception() (arch/x86/kvm/svm/svm.c) INITs the
	 * vCPU, so there paging is off and the state tells nothing.
	 */
	if (__vcpu_ioctl(vcpu, KVM_GET_REGS, &regs) ||
	    __vcpu_ioctl(vcpu, KVM_GET_SREGS, &sregs) || !(sregs.cr0 & X86_CR0_PG))
		return fail_note(w, &w->errors,
				 "vCPU %u: expected a ucall, got SHUTDOWN (triple fault; vCPU state not kept)",
				 w->idx);
	return fail_note(w, &w->errors,
			 "vCPU %u: expected a ucall, got SHUTDOWN (triple fault) at RIP 0x%llx RSP 0x%llx, CR2 0x%llx CR3 0x%llx",
			 w->idx, regs.rip, regs.rsp, sregs.cr2, sregs.cr3);
}

/* ---- host: faulting threads ---------------------------------------------- */

static bool host_inject(struct actor *w, enum inject what)
{
	if (w->injected || w->idx || w->s->p.inject != what)
		return false;
	w->injected = true;
	return true;
}

static void host_unexpected(struct actor *w, const char *what, void *addr,
			    const struct rmpt_fault *f)
{
	fail_note(w, &w->unexpected,
		  "host thread %u: %s %p: expected no fault, got signal %d code %d (%s) at %p",
		  w->idx, what, addr, f->signo, f->code, rmpt_sigbus_code_name(f->code), f->addr);
}

static void host_judge(struct actor *w, u64 page, u64 word, u64 got, enum rmpt_verdict v, u64 want)
{
	char expected[96];

	if (v == RMPT_WORD_ZERO)
		rmpt_bump(&w->zero_words);
	if (v != RMPT_WORD_BAD)
		return;
	rmpt_stamp_describe_want(expected, sizeof(expected), want);
	fail_note(w, &w->mismatches, "host thread %u: page %lu word %lu: expected %s, got %#lx",
		  w->idx, page, word, expected, got);
}

static void host_check_own(struct actor *w, u64 page, u64 got)
{
	u64 idx = page - w->s->l.first_page;
	u32 want = w->table[idx];
	u8 writer = RMPT_WRITER_HOST(w->idx);

	host_judge(w, page, HOST_WORD0 + w->idx, got,
		   own_verdict(got, writer, page, want, w->discards_then[idx],
			       &ctl_discards(w->s->ctl)[page]),
		   want ? rmpt_stamp_make(writer, want, page) : 0);
}

/*
 * Check our word, stamp it (the timed access: it takes the fault when the
 * page was discarded), then check the guest's word: the owner's stamps, any
 * seq; leftover pages have no guest writer at all.  base is the page's
 * shared mapping; only the unexpected_sigbus injection passes another.
 */
static void host_stamp(struct actor *w, u64 page, u8 *base)
{
	u64 *word = (u64 *)base + HOST_WORD0 + w->idx, idx = page - w->s->l.first_page;
	u64 owner = idx / w->s->l.vcpu_pages, old, got, stamp;
	struct rmpt_fault f;

	if (!rmpt_try_read(word, &old, &f)) {
		host_unexpected(w, "read", word, &f);
		return;
	}
	host_check_own(w, page, old);
	w->seq = rmpt_seq_next(w->seq);
	stamp = rmpt_stamp_make(RMPT_WRITER_HOST(w->idx), w->seq, page);
	w->discards_then[idx] = __atomic_load_n(&ctl_discards(w->s->ctl)[page], __ATOMIC_ACQUIRE);
	if (!rmpt_timed_write(&w->acc, word, stamp, &f)) {
		host_unexpected(w, "write", word, &f);
		return;
	}
	w->table[idx] = w->seq;
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
	word = (u64 *)base + GUEST_WORD;
	if (!rmpt_try_read(word, &got, &f))
		host_unexpected(w, "read", word, &f);
	else if (owner >= w->s->p.nr_vcpus)
		host_judge(w, page, GUEST_WORD, got, got ? RMPT_WORD_BAD : RMPT_WORD_ZERO, 0);
	else
		host_judge(w, page, GUEST_WORD, got,
			   rmpt_stamp_verify(got, RMPT_WRITER_GUEST(owner), page, RMPT_SEQ_ANY),
			   rmpt_stamp_make(RMPT_WRITER_GUEST(owner), 0, page));
}

/* A private page: the access must raise SIGBUS BUS_ADRERR at exactly addr. */
static void host_probe(struct actor *w, bool write, u8 *addr)
{
	struct rmpt_fault f;
	char why[256];
	u64 val;

	rmpt_bump(&w->probes);
	if (write)
		rmpt_timed_write(&w->acc, addr, PROBE_POISON, &f);
	else
		rmpt_timed_read(&w->acc, addr, &val, &f);
	if (!rmpt_check_sigbus(&f, addr, BUS_ADRERR, why, sizeof(why)))
		rmpt_bump(&w->sigbus_ok);
	else
		fail_note(w, &w->missed, "host thread %u: private %s at %p: %s", w->idx,
			  write ? "write" : "read", addr, why);
}

/* The next operation of the host thread; with -S only its schedule. */
static void host_step(struct actor *w)
{
	struct stress *s = w->s;
	u64 r = rmpt_rng_next(&w->rng), kind = HOP_STAMP, offset = 0;
	u64 page = s->l.first_page + rmpt_rng_next(&w->rng) % s->l.nr_pages;

	if (!(r % PROBE_ONE_IN)) {
		kind = (r >> 32) & 1 ? HOP_PROBE_WRITE : HOP_PROBE_READ;
		offset = (r >> 40) % WORDS_PER_PAGE * sizeof(u64);
	}
	sched_note(&w->sched, kind, page, offset);
	if (s->p.dry_run)
		return;
	if (kind == HOP_STAMP)
		host_stamp(w, page, s->rv->view && host_inject(w, INJECT_UNEXPECTED_SIGBUS) ?
			   view_page_hva(s, page) : page_hva(s, page));
	else if (!s->rv->view)
		rmpt_bump(&w->probes_skipped);
	/* The injected probe reads, so that it changes no stamp when it lands. */
	else if (host_inject(w, INJECT_MISSED_SIGBUS))
		host_probe(w, false, page_hva(s, page) + offset);
	else
		host_probe(w, kind == HOP_PROBE_WRITE, view_page_hva(s, page) + offset);
}

/* ---- host: splitter and collapser ---------------------------------------- */

/* 1 or 0; -1 (and pmd_errno kept) where PAGEMAP_SCAN cannot tell. */
static int chunk_pmd_mapped(struct actor *w, u64 chunk)
{
	int ret = rmpt_pmd_mapped(page_hva(w->s, chunk * PAGES_PER_2M));

	if (ret < 0)
		w->pmd_errno = -ret;
	return max(ret, -1);
}

static u64 next_chunk(struct actor *w)
{
	const struct layout *l = &w->s->l;

	return l->ctl_chunks + rmpt_rng_next(&w->rng) % (l->nr_chunks - l->ctl_chunks);
}

/*
 * Discard one 4K, counted as the checkers expect (ctl_discards()); the
 * remove variant punches the view, which is order-0: no THP to split.
 * Test-only no_split schedules the operation, never does it.
 */
static void split_step(struct actor *w)
{
	struct stress *s = w->s;
	u64 chunk = next_chunk(w), page = rmpt_rng_next(&w->rng) % PAGES_PER_2M, *count;
	bool punch = !(rmpt_rng_next(&w->rng) % PUNCH_ONE_IN);
	int before = -1, after, ret;

	sched_note(&w->sched, chunk, page, punch);
	if (s->p.dry_run || s->p.inject == INJECT_NO_SPLIT)
		return;
	page += chunk * PAGES_PER_2M;
	count = &ctl_discards(s->ctl)[page];
	punch = punch && s->rv->view;
	if (!punch)
		before = chunk_pmd_mapped(w, chunk);
	__atomic_fetch_add(count, DISCARD_BEGIN, __ATOMIC_SEQ_CST);
	if (punch)
		ret = fallocate(s->rv->view_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				page * SZ_4K, SZ_4K) ? -errno : 0;
	else
		ret = rmpt_discard_shared(s->rv, RMPT_DATA_GPA + page * SZ_4K, SZ_4K,
					  MADV_DONTNEED);
	__atomic_fetch_add(count, DISCARD_END, __ATOMIC_SEQ_CST);
	if (ret) {
		fail_note(w, &w->errors, "splitter: %s of page %lu: errno %d (%s)",
			  punch ? "PUNCH_HOLE" : "MADV_DONTNEED", page, -ret, strerror(-ret));
	} else if (punch) {
		rmpt_bump(&w->punches);
	} else {
		after = chunk_pmd_mapped(w, chunk);
		if (before == 1)
			rmpt_bump(&w->on_pmd);
		if (before == 1 && after == 0)
			rmpt_bump(&w->observed);
	}
}

/* Test-only no_collapse schedules the operation, never does it. */
static void collapse_step(struct actor *w)
{
	u64 chunk = next_chunk(w);
	int ret;

	sched_note(&w->sched, chunk, 0, 0);
	if (w->s->p.dry_run || w->s->p.inject == INJECT_NO_COLLAPSE)
		return;
	if (chunk_pmd_mapped(w, chunk) == 1) {
		rmpt_bump(&w->already_huge);
		return;
	}
	ret = rmpt_collapse(page_hva(w->s, chunk * PAGES_PER_2M), SZ_2M);
	if (ret == -EAGAIN) {
		rmpt_bump(&w->eagain);
	} else if (ret) {
		fail_note(w, &w->errors, "collapser: MADV_COLLAPSE of 2M range %lu: errno %d (%s)",
			  chunk, -ret, strerror(-ret));
	} else {
		rmpt_bump(&w->on_pmd);
		if (chunk_pmd_mapped(w, chunk) == 1)
			rmpt_bump(&w->observed);
	}
}

/*
 * The next operation of an actor on the host; with -S only its schedule,
 * and then the vCPU's too, which the guest otherwise computes itself.
 */
static void actor_step(struct actor *a)
{
	struct stress *s = a->s;
	struct guest_op op;

	if (a->kind == ACTOR_VCPU) {
		guest_op_next(&a->rng, s->l.vcpu_pages,
			      s->conv == CONV_NONE ? 0 : s->p.conv_per_mille, &op);
		sched_note(&a->sched, op.kind, op.page, 0);
	} else if (a->kind == ACTOR_HOST) {
		host_step(a);
	} else if (a->kind == ACTOR_SPLITTER) {
		split_step(a);
	} else {
		collapse_step(a);
	}
}

/* ---- the actors ---------------------------------------------------------- */

static u64 thread_page_faults(void)
{
	struct rusage ru;

	getrusage(RUSAGE_THREAD, &ru);
	return ru.ru_minflt + ru.ru_majflt;
}

static u64 thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return timespec_to_ns(ts);
}

static void *actor_fn(void *arg)
{
	struct actor *a = arg;
	struct stress *s = a->s;
	u64 faults, cpu, i;

	rmpt_numa_run_thread_on(a->node);
	pthread_barrier_wait(&s->start);
	faults = thread_page_faults();
	cpu = thread_cpu_ns();
	a->start_ns = rmpt_now_ns();
	if (a->kind == ACTOR_VCPU && vcpu_wait_turn(a))
		while (vcpu_step(a))
			;
	for (i = 0; a->kind != ACTOR_VCPU && i < s->p.max_ops && !READ_ONCE(s->stop); i++) {
		actor_step(a);
		rmpt_bump(&a->ops);
		if (a->kind != ACTOR_HOST)
			usleep(a->kind == ACTOR_SPLITTER ? SPLIT_GAP_US : COLLAPSE_GAP_US);
	}
	a->end_ns = rmpt_now_ns();
	a->cpu_ns = thread_cpu_ns() - cpu;
	a->page_faults = thread_page_faults() - faults;
	WRITE_ONCE(a->finished, true);
	return NULL;
}

/* The node of actor or 2M range i: -n's, else spread over the allowed ones. */
static int planned_node(const struct params *p, u64 i)
{
	return p->numa_node >= 0 ? p->numa_node : rmpt_numa_node(i);
}

static void init_actor(struct stress *s, struct actor *a, enum actor_kind kind, u32 idx,
		       u32 node_idx)
{
	a->s = s;
	a->kind = kind;
	a->idx = idx;
	a->node = planned_node(&s->p, node_idx);
	a->rng = rng_seed(s->p.seed, ACTOR_ID(kind, idx));
	a->sched.hash = RMPT_FNV_OFFSET;
	rmpt_access_stats_init(&a->acc);
	if (kind != ACTOR_HOST || s->p.dry_run)
		return;
	a->table = calloc(s->l.nr_pages, sizeof(*a->table));
	a->discards_then = calloc(s->l.nr_pages, sizeof(*a->discards_then));
	TEST_ASSERT(a->table && a->discards_then,
		    "calloc of %lu sequence numbers and counts: expected memory, got none",
		    s->l.nr_pages);
}

static void init_actors(struct stress *s)
{
	u32 i;

	s->nr_actors = s->p.nr_vcpus + s->p.nr_threads + 2;
	s->actors = calloc(s->nr_actors, sizeof(*s->actors));
	TEST_ASSERT(s->actors, "calloc of %u actors: expected memory, got none", s->nr_actors);
	s->hosts = s->actors + s->p.nr_vcpus;
	s->splitter = s->hosts + s->p.nr_threads;
	s->collapser = s->splitter + 1;
	for (i = 0; i < s->p.nr_vcpus; i++)
		init_actor(s, &s->actors[i], ACTOR_VCPU, i, i);
	for (i = 0; i < s->p.nr_threads; i++)
		init_actor(s, &s->hosts[i], ACTOR_HOST, i, i);
	init_actor(s, s->splitter, ACTOR_SPLITTER, 0, 0);
	init_actor(s, s->collapser, ACTOR_COLLAPSER, 0, 1);
}

/* ---- the watch over the run ---------------------------------------------- */

/* The actors' counts, on node only (-1: all), read while they may still run. */
static void sum_actors(struct stress *s, int node, struct totals *t)
{
	struct guest_stats *st;
	struct actor *a;
	u32 i;

	memset(t, 0, sizeof(*t));
	for (i = 0; i < s->nr_actors; i++) {
		a = &s->actors[i];
		st = &s->ctl->vcpu[a->idx];
		if (node >= 0 && a->node != node)
			continue;
		t->running += !READ_ONCE(a->finished);
		if (a->kind == ACTOR_VCPU) {
			t->vcpus++;
			t->run_errors += READ_ONCE(a->errors);
			t->guest_mismatches += READ_ONCE(st->mismatches);
			t->conv_errors += READ_ONCE(st->conv_errors);
			t->guest_stamps += READ_ONCE(st->stamps);
			t->conversions += READ_ONCE(st->conversions);
		} else if (a->kind == ACTOR_HOST) {
			t->hosts++;
			t->unexpected += READ_ONCE(a->unexpected);
			t->missed += READ_ONCE(a->missed);
			t->host_mismatches += READ_ONCE(a->mismatches);
			t->host_ops += READ_ONCE(a->ops);
			t->host_accesses += READ_ONCE(a->acc.accesses);
			t->sigbus += READ_ONCE(a->sigbus_ok);
			t->page_faults += READ_ONCE(a->page_faults);
			t->probes_skipped += READ_ONCE(a->probes_skipped);
		}
	}
}

static void print_progress(struct stress *s, const struct totals *t, u64 now)
{
	ksft_print_msg("t=%lus: host ops %lu, guest stamps %lu, splits %lu, collapses %lu\n",
		       (now - s->start_ns) / NSEC_PER_SEC, t->host_ops, t->guest_stamps,
		       READ_ONCE(s->splitter->observed), READ_ONCE(s->collapser->observed));
}

/* Until the deadline, all actors done, or the first broken invariant; then stop all. */
static void monitor(struct stress *s)
{
	u64 next = s->start_ns + PROGRESS_EVERY_S * NSEC_PER_SEC, now;
	struct totals t;

	for (;;) {
		usleep(MONITOR_TICK_US);
		now = rmpt_now_ns();
		sum_actors(s, -1, &t);
		if (now >= s->deadline_ns || !t.running)
			break;
		if (t.unexpected + t.missed + t.host_mismatches + t.guest_mismatches +
		    t.run_errors + t.conv_errors) {
			ksft_print_msg("t=%.1fs: an invariant broke during the run: stopping\n",
				       (now - s->start_ns) / 1e9);
			break;
		}
		if (now >= next) {
			print_progress(s, &t, now);
			next += PROGRESS_EVERY_S * NSEC_PER_SEC;
		}
	}
	WRITE_ONCE(s->stop, 1);
	WRITE_ONCE(s->ctl->stop, 1);
}

/* Every actor behind one barrier, so that the clock starts when they all do. */
static void run_actors(struct stress *s)
{
	struct actor *a;
	int err;
	u32 i;

	rmpt_sigbus_init();
	pthread_barrier_init(&s->start, NULL, s->nr_actors + 1);
	for (i = 0; i < s->nr_actors; i++) {
		err = pthread_create(&s->actors[i].thread, NULL, actor_fn, &s->actors[i]);
		TEST_ASSERT(!err, "pthread_create: expected 0, got %d (%s)", err, strerror(err));
	}
	rmpt_thp_stats_read(&s->thp_before);
	s->start_ns = rmpt_now_ns();
	s->deadline_ns = s->start_ns + s->p.duration_s * NSEC_PER_SEC;
	pthread_barrier_wait(&s->start);
	monitor(s);
	for (i = 0; i < s->nr_actors; i++) {
		a = &s->actors[i];
		pthread_join(a->thread, NULL);
		if (a->kind != ACTOR_VCPU)
			continue;
		a->ops = s->ctl->vcpu[a->idx].ops;
		a->sched = s->ctl->vcpu[a->idx].sched;
	}
	s->end_ns = rmpt_now_ns();
	rmpt_thp_stats_read(&s->thp_after);
	pthread_barrier_destroy(&s->start);
}

/* ---- setup --------------------------------------------------------------- */

/*
 * The -f flavour, else the strongest usable, and the conversions it allows;
 * a SKIP naming what is missing where it is not usable.  -S runs anyway:
 * its schedule depends on the flavour only through conversions.
 */
static void pick_flavour(struct stress *s)
{
	static const enum rmpt_flavour order[] = { RMPT_SNP, RMPT_SW_PROTECTED, RMPT_DEFAULT };
	const struct rmpt_flavour_ops *ops;
	char why[512], snp[256], swp[256];
	bool usable = false;
	size_t i;

	/* Private pages fixed at launch: nothing for the guests to convert. */
	if (!s->p.dry_run && rmpt_flavour(s->p.flavour)->launch_private)
		ksft_exit_skip("flavour %s: not covered here (in-kernel conversions)\n",
			       rmpt_flavour_name(s->p.flavour));
	for (i = 0; !usable && i < (s->p.flavour_given ? 1 : ARRAY_SIZE(order)); i++) {
		if (!s->p.flavour_given)
			s->p.flavour = order[i];
		usable = rmpt_flavour_usable(&s->caps, s->p.flavour, why, sizeof(why));
	}
	if (!s->p.dry_run && !usable)
		ksft_exit_skip("flavour %s: %s\n",
			       s->p.flavour_given ? rmpt_flavour_name(s->p.flavour) : "any", why);

	ops = rmpt_flavour(s->p.flavour);
	s->conv = !ops->private_mem ? CONV_NONE :
		  ops->protected_state ? CONV_SNP_PSC : CONV_HYPERCALL;
	if (s->conv != CONV_NONE)
		return;
	if (rmpt_flavour_usable(&s->caps, RMPT_SNP, snp, sizeof(snp)))
		snprintf(snp, sizeof(snp), "usable, not chosen");
	if (rmpt_flavour_usable(&s->caps, RMPT_SW_PROTECTED, swp, sizeof(swp)))
		snprintf(swp, sizeof(swp), "usable, not chosen");
	snprintf(s->conv_why, sizeof(s->conv_why),
		 "flavour %s has no private memory attributes to convert (snp: %s; sw_protected: %s)",
		 rmpt_flavour_name(s->p.flavour), snp, swp);
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
	u64 c;

	s->rv = rmpt_vm_create(&s->caps, &vp);
	/* With -n, rmpt_vm_create() bound the whole region. */
	for (c = 0; c < s->l.nr_chunks && s->p.numa_node < 0; c++)
		rmpt_numa_place_range(page_hva(s, c * PAGES_PER_2M), SZ_2M, rmpt_numa_node(c));

	s->ctl = (struct stress_ctl *)s->rv->data_hva;
	*s->ctl = (struct stress_ctl){
		.seed = s->p.seed,
		.nr_threads = s->p.nr_threads,
		.first_page = s->l.first_page,
		.vcpu_pages = s->l.vcpu_pages,
		.conv_mode = s->conv,
		.conv_per_mille = s->conv == CONV_NONE ? 0 : s->p.conv_per_mille,
		.max_ops = s->p.max_ops,
		.inject = s->p.inject,
		.region_pages = s->l.nr_chunks * PAGES_PER_2M,
	};
	for (c = s->l.ctl_chunks; c < s->l.nr_chunks; c++) {
		WRITE_ONCE(((u64 *)page_hva(s, c * PAGES_PER_2M))[PREFAULT_WORD], 0);
		s->huge_at_start += rmpt_pmd_mapped(page_hva(s, c * PAGES_PER_2M)) == 1;
	}
}

static void print_setup(struct stress *s)
{
	const struct params *p = &s->p;
	const struct layout *l = &s->l;

	ksft_print_msg("flavour %s, seed 0x%lx (rerun with -s 0x%lx)\n",
		       rmpt_flavour_name(p->flavour), p->seed, p->seed);
	ksft_print_msg("%lu s%s, %lu vCPUs, %lu host threads, %lu MiB, NUMA %s of %d node(s)\n",
		       p->duration_s, p->quick ? " (quick)" : "", p->nr_vcpus, p->nr_threads,
		       p->mem_mib, p->numa_node < 0 ? "spread" : "bound", rmpt_numa_nodes());
	ksft_print_msg("layout: control %lu MiB, %lu MiB per vCPU, %lu MiB host-only\n",
		       l->ctl_chunks * 2, l->vcpu_pages * SZ_4K >> 20,
		       (l->nr_pages - l->vcpu_pages * p->nr_vcpus) * SZ_4K >> 20);
	ksft_print_msg("%d of %lu 2M ranges PMD-mapped at start\n", s->huge_at_start,
		       l->nr_chunks - l->ctl_chunks);
	ksft_print_msg("splitter: MADV_DONTNEED of 4K in the data region; 1 in %d ops %s\n",
		       PUNCH_ONE_IN, s->rv->view ?
		       "PUNCH_HOLE the guest_memfd view instead of MADV_REMOVE" :
		       "also MADV_DONTNEED (no guest_memfd view)");
	if (p->inject)
		ksft_print_msg("TEST-ONLY fault injection: %s\n", inject_names[p->inject]);
}

/* ---- the metrics document (schema snp-rmp-metrics/1) --------------------- */

static size_t list_metrics(struct stress *s, const struct totals *t, struct rmpt_metric *m)
{
	const struct actor *sp = s->splitter, *co = s->collapser;
	u64 ns = s->end_ns - s->start_ns;
	size_t n = 0;

#define METRIC(_name, _value, _unit, _better) \
	(m[n++] = (struct rmpt_metric){ _name, _value, _unit, RMPT_BETTER_##_better })
	/*
	 * Gated only what times a kernel operation alone: the SIGBUS round
	 * trip.  Rates of the run mix the harness's own loop with the
	 * kernel's work and inform; snp_op_perf_test gates each operation.
	 */
	METRIC("sigbus_latency_p50_ns", rmpt_hist_percentile(&t->sigbus_lat, 50), "ns", LOWER);
	METRIC("sigbus_latency_p99_ns", rmpt_hist_percentile(&t->sigbus_lat, 99), "ns", NONE);
	METRIC("sigbus_latency_max_ns", t->sigbus_lat.max, "ns", NONE);
	METRIC("host_access_latency_p50_ns", rmpt_hist_percentile(&t->fault_lat, 50), "ns", NONE);
	METRIC("host_access_latency_p99_ns", rmpt_hist_percentile(&t->fault_lat, 99), "ns", NONE);
	METRIC("host_accesses_per_s", rmpt_rate(t->host_accesses, ns), "accesses/s", NONE);
	METRIC("host_page_faults_per_s", rmpt_rate(t->page_faults, ns), "faults/s", NONE);
	METRIC("host_ops_per_s", rmpt_rate(t->host_ops, ns), "ops/s", NONE);
	METRIC("guest_stamps_per_s", rmpt_rate(t->guest_stamps, ns), "stamps/s", NONE);
	METRIC("conversions_per_s", rmpt_rate(t->conversions, ns), "conversions/s", NONE);
	/* A counter /proc/vmstat lacks (VM_EVENT_COUNTERS=n) is left out, not a number. */
	if (t->splits != RMPT_STAT_ABSENT)
		METRIC("splits", t->splits, "splits", NONE);
	if (t->collapses != RMPT_STAT_ABSENT)
		METRIC("collapses", t->collapses, "collapses", NONE);
	METRIC("splits_observed", sp->observed, "splits", NONE);
	METRIC("collapses_observed", co->observed, "collapses", NONE);
	/* Per CPU-second of the splitter and collapser, next to a bare loop's. */
	METRIC("splits_per_cpu_s", rmpt_rate(sp->on_pmd, sp->cpu_ns), "splits/cpu-s", NONE);
	METRIC("collapses_per_cpu_s", rmpt_rate(co->on_pmd, co->cpu_ns), "collapses/cpu-s", NONE);
	if (s->bare_splits_per_cpu_s) {
		METRIC("bare_splits_per_cpu_s", s->bare_splits_per_cpu_s, "splits/cpu-s", NONE);
		METRIC("bare_collapses_per_cpu_s", s->bare_collapses_per_cpu_s,
		       "collapses/cpu-s", NONE);
	}
	METRIC("sigbus_total", t->sigbus, "signals", NONE);
	METRIC("host_accesses", t->host_accesses, "accesses", NONE);
	METRIC("guest_stamps", t->guest_stamps, "stamps", NONE);
	METRIC("conversions", t->conversions, "conversions", NONE);
	METRIC("elapsed_s", ns / 1e9, "s", NONE);
#undef METRIC
	TEST_ASSERT(n <= NR_METRICS, "expected at most %d metrics, got %zu", NR_METRICS, n);
	return n;
}

/* The machine and the run's parameters. */
static void json_setup(struct rmpt_json *j, struct stress *s)
{
	char buf[512] = "unknown", cpu[256] = "unknown", line[256];
	FILE *f = fopen("/proc/cpuinfo", "r");
	struct utsname u;

	rmpt_json_object_begin(j, "env");
	if (!uname(&u))
		snprintf(buf, sizeof(buf), "%s %s", u.release, u.version);
	rmpt_json_string(j, "kernel", buf);
	rmpt_json_string(j, "flavour", rmpt_flavour_name(s->p.flavour));
	rmpt_json_string(j, "thp", rmpt_thp_mode_name(s->caps.thp));
	while (f && fgets(line, sizeof(line), f) &&
	       sscanf(line, "model name : %255[^\n]", cpu) != 1)
		;
	if (f)
		fclose(f);
	rmpt_json_string(j, "cpu", cpu);
	rmpt_json_u64(j, "nodes", rmpt_numa_nodes());
	rmpt_json_u64(j, "host_cpus", sysconf(_SC_NPROCESSORS_ONLN));
	rmpt_json_bool(j, "private_view", s->rv->view);
	rmpt_json_object_end(j);

	rmpt_json_object_begin(j, "params");
	rmpt_json_u64(j, "seed", s->p.seed);
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

static void json_actor(struct rmpt_json *j, struct stress *s, const struct actor *a)
{
	const struct guest_stats *st = &s->ctl->vcpu[a->idx];

	rmpt_json_object_begin(j, NULL);
	rmpt_json_string(j, "actor", actor_names[a->kind]);
	rmpt_json_u64(j, "id", a->idx);
	rmpt_json_i64(j, "node", a->node);
	rmpt_json_u64(j, "ops", a->ops);
	if (a->kind == ACTOR_VCPU) {
		rmpt_json_u64(j, "stamps", st->stamps);
		rmpt_json_u64(j, "conversions", st->conversions);
		rmpt_json_u64(j, "zero_words", st->zero_words);
		rmpt_json_u64(j, "mismatches", st->mismatches);
		rmpt_json_u64(j, "ucalls", a->syncs);
		rmpt_json_u64(j, "errors", a->errors + st->conv_errors);
		rmpt_json_object_end(j);
		return;
	}
	rmpt_json_double(j, "ops_per_s", rmpt_rate(a->ops, a->end_ns - a->start_ns));
	if (a->kind == ACTOR_HOST) {
		rmpt_json_u64(j, "accesses", a->acc.accesses);
		rmpt_json_u64(j, "page_faults", a->page_faults);
		rmpt_json_u64(j, "stamps", a->stamps);
		rmpt_json_u64(j, "probes", a->probes);
		rmpt_json_u64(j, "sigbus", a->sigbus_ok);
		rmpt_json_u64(j, "zero_words", a->zero_words);
		rmpt_json_u64(j, "fault_latency_p50_ns", rmpt_hist_percentile(&a->acc.latency, 50));
		rmpt_json_u64(j, "fault_latency_p99_ns", rmpt_hist_percentile(&a->acc.latency, 99));
		rmpt_json_u64(j, "fault_latency_max_ns", a->acc.latency.max);
		rmpt_json_u64(j, "sigbus_latency_p50_ns", rmpt_hist_percentile(&a->acc.sigbus, 50));
		rmpt_json_u64(j, "sigbus_latency_p99_ns", rmpt_hist_percentile(&a->acc.sigbus, 99));
		rmpt_json_u64(j, "unexpected_sigbus", a->unexpected);
		rmpt_json_u64(j, "missed_sigbus", a->missed);
		rmpt_json_u64(j, "mismatches", a->mismatches);
	} else {
		rmpt_json_u64(j, "on_pmd", a->on_pmd);
		rmpt_json_u64(j, "observed", a->observed);
		rmpt_json_u64(j, "punches", a->punches);
		rmpt_json_u64(j, "already_huge", a->already_huge);
		rmpt_json_u64(j, "eagain", a->eagain);
		rmpt_json_u64(j, "errors", a->errors);
	}
	rmpt_json_object_end(j);
}

/* What ran on node and what was placed there. */
static void json_node(struct rmpt_json *j, struct stress *s, int node)
{
	u64 ns = s->end_ns - s->start_ns, chunks = 0, c;
	struct totals t;

	sum_actors(s, node, &t);
	for (c = 0; c < s->l.nr_chunks; c++)
		chunks += planned_node(&s->p, c) == node;
	rmpt_json_object_begin(j, NULL);
	rmpt_json_i64(j, "node", node);
	rmpt_json_u64(j, "mem_mib", chunks * 2);
	rmpt_json_u64(j, "host_threads", t.hosts);
	rmpt_json_u64(j, "vcpus", t.vcpus);
	rmpt_json_double(j, "host_faults_per_s", rmpt_rate(t.host_accesses, ns));
	rmpt_json_double(j, "host_page_faults_per_s", rmpt_rate(t.page_faults, ns));
	rmpt_json_double(j, "guest_stamps_per_s", rmpt_rate(t.guest_stamps, ns));
	rmpt_json_object_end(j);
}

/* The document, in memory first: a file is only ever written whole. */
static int write_metrics(struct stress *s, const struct totals *t,
			 const struct rmpt_metric *m, size_t n)
{
	int i, err, nodes = s->p.numa_node >= 0 ? 1 : rmpt_numa_nodes();
	struct rmpt_json j;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	TEST_ASSERT(f, "open_memstream: expected a stream, got errno %d", errno);
	rmpt_json_init(&j, f);
	rmpt_json_object_begin(&j, NULL);
	rmpt_json_string(&j, "schema", "snp-rmp-metrics/1");
	rmpt_json_string(&j, "test", TEST_NAME);
	json_setup(&j, s);
	rmpt_metrics_json(&j, "metrics", m, n);
	/* Every entry must be 0 for the run to pass, whatever reads the document. */
	rmpt_json_object_begin(&j, "invariants");
	rmpt_json_u64(&j, "unexpected_sigbus", t->unexpected);
	rmpt_json_u64(&j, "missed_sigbus", t->missed);
	rmpt_json_u64(&j, "stamp_mismatches", t->host_mismatches + t->guest_mismatches);
	rmpt_json_u64(&j, "stamp_mismatches_host", t->host_mismatches);
	rmpt_json_u64(&j, "stamp_mismatches_guest", t->guest_mismatches);
	rmpt_json_u64(&j, "kvm_run_errors", t->run_errors + t->conv_errors);
	rmpt_json_u64(&j, "no_splits", s->thp_on &&
		      (!t->splits || t->splits == RMPT_STAT_ABSENT || !s->splitter->observed));
	rmpt_json_u64(&j, "no_collapses", s->thp_on &&
		      (!t->collapses || t->collapses == RMPT_STAT_ABSENT ||
		       !s->collapser->observed));
	rmpt_json_u64(&j, "kernel_log_bad_lines", t->kmsg_bad > 0 ? t->kmsg_bad : 0);
	rmpt_json_object_end(&j);
	rmpt_json_array_begin(&j, "per_thread");
	for (i = 0; i < s->nr_actors; i++)
		json_actor(&j, s, &s->actors[i]);
	rmpt_json_array_end(&j);
	rmpt_json_array_begin(&j, "per_node");
	for (i = 0; i < nodes; i++)
		json_node(&j, s, planned_node(&s->p, i));
	rmpt_json_array_end(&j);
	rmpt_json_object_end(&j);
	err = rmpt_json_finish(&j);
	fclose(f);
	if (!err)
		err = rmpt_write_file_atomic(s->p.out_path, buf, len);
	free(buf);
	return err;
}

/* ---- the end of the run -------------------------------------------------- */

/* A KTAP result: "ok" if ok, but a SKIP for the reason skip if there is one. */
static void result(const char *name, const char *skip, bool ok)
{
	if (skip)
		ksft_test_result_code(KSFT_SKIP, name, "%s", skip);
	else
		ksft_test_result(ok, "%s\n", name);
}

static void sum_up(struct stress *s, struct totals *t)
{
	u32 i;

	sum_actors(s, -1, t);
	rmpt_hist_init(&t->fault_lat);
	rmpt_hist_init(&t->sigbus_lat);
	for (i = 0; i < s->p.nr_threads; i++) {
		rmpt_hist_merge(&t->fault_lat, &s->hosts[i].acc.latency);
		rmpt_hist_merge(&t->sigbus_lat, &s->hosts[i].acc.sigbus);
	}
	t->splits = rmpt_thp_stat_delta(&s->thp_before, &s->thp_after, RMPT_THP_SPLIT_PMD);
	t->collapses = rmpt_thp_stat_delta(&s->thp_before, &s->thp_after, RMPT_THP_COLLAPSE_ALLOC);
	t->kmsg_bad = s->kmsg_err ? s->kmsg_err :
		      rmpt_kmsg_scan(s->kmsg_marker, t->kmsg_first, sizeof(t->kmsg_first));
	if (s->p.inject == INJECT_KMSG && t->kmsg_bad >= 0 && !t->kmsg_bad++)	/* test-only */
		snprintf(t->kmsg_first, sizeof(t->kmsg_first),
			 "injected by SNP_RMP_STRESS_INJECT=kmsg");
}

static void sched_print(const struct actor *a, bool diag)
{
	printf("%sschedule %s%u %lu 0x%016lx\n", diag ? "# " : "", actor_names[a->kind], a->idx,
	       a->sched.ops, a->sched.hash);
}

/* The counts, each actor's first failure and the hash of its first operations. */
static void report_counts(struct stress *s, const struct totals *t)
{
	const struct actor *sp = s->splitter, *co = s->collapser;
	const struct guest_stats *st;
	char expected[96];
	u32 i;

	ksft_print_msg("host: %lu ops, %lu page faults, %lu SIGBUS caught, %lu probes skipped\n",
		       t->host_ops, t->page_faults, t->sigbus, t->probes_skipped);
	ksft_print_msg("guest: %lu stamps, %lu conversions\n", t->guest_stamps, t->conversions);
	ksft_print_msg("splitter: %lu ops, %lu on a PMD mapping, %lu splits seen, %lu punches\n",
		       sp->ops, sp->on_pmd, sp->observed, sp->punches);
	ksft_print_msg("collapser: %lu ops, %lu collapsed (%lu seen), %lu huge, %lu EAGAIN\n",
		       co->ops, co->on_pmd, co->observed, co->already_huge, co->eagain);
	if (sp->errors || co->errors)
		ksft_print_msg("errors: splitter %lu, collapser %lu\n", sp->errors, co->errors);
	if (sp->pmd_errno || co->pmd_errno)
		ksft_print_msg("PAGEMAP_SCAN refused (errno %d): PMD mappings not observed\n",
			       sp->pmd_errno ? sp->pmd_errno : co->pmd_errno);
	for (i = 0; i < s->nr_actors; i++)
		if (s->actors[i].why[0])
			ksft_print_msg("%s\n", s->actors[i].why);
	for (i = 0; i < s->p.nr_vcpus; i++) {
		st = &s->ctl->vcpu[i];
		rmpt_stamp_describe_want(expected, sizeof(expected), st->bad_want);
		if (st->mismatches)
			ksft_print_msg("vCPU %u: page %lu word %lu: expected %s, got %#lx\n", i,
				       st->bad_page, st->bad_word, expected, st->bad_got);
		if (st->conv_errors)
			ksft_print_msg("vCPU %u: %lu conversions failed\n", i, st->conv_errors);
	}
	for (i = 0; i < s->nr_actors; i++)
		sched_print(&s->actors[i], true);
}

/* vmstat counts the whole machine; what this run saw itself must agree. */
static void report_thp(struct stress *s, const char *name, u64 vmstat, const struct actor *w)
{
	if (s->thp_on && vmstat == RMPT_STAT_ABSENT) {
		ksft_test_result_code(KSFT_FAIL, name, "/proc/vmstat lacks the counter");
		return;
	}
	if (s->thp_on)
		ksft_print_msg("%s: /proc/vmstat delta %lu, observed by the %s %lu\n", name, vmstat,
			       actor_names[w->kind], w->observed);
	result(name, s->thp_on ? NULL : s->thp_why, vmstat > 0 && (w->observed || w->pmd_errno));
}

/* "no_<what it counts>": count must be 0. */
static void report_invariant(const char *name, const char *skip, u64 count, const char *what)
{
	if (!skip)
		ksft_print_msg("%s: %lu (%s)\n", name + strlen("no_"), count, what);
	result(name, skip, !count);
}

static void report_conversions(struct stress *s, const struct totals *t)
{
	if (s->conv == CONV_NONE || !s->p.conv_per_mille) {
		result("conversions_exercised", s->conv == CONV_NONE ? s->conv_why : "-c 0", false);
		return;
	}
	ksft_print_msg("conversions: %lu by the guests, %lu to private and %lu to shared served\n",
		       t->conversions, s->rv->conv.to_private, s->rv->conv.to_shared);
	result("conversions_exercised", NULL, t->conversions > 0);
}

static void report(struct stress *s, const struct totals *t)
{
	struct rmpt_metric m[NR_METRICS];
	size_t n = list_metrics(s, t, m);
	char why[128];
	int err = 0;

	report_counts(s, t);
	rmpt_metrics_print(m, n);
	if (s->p.out_path)
		err = write_metrics(s, t, m, n);

	report_invariant("no_unexpected_sigbus", NULL, t->unexpected,
			 "shared accesses that faulted");
	report_invariant("no_missed_sigbus", s->rv->view ? NULL : s->rv->view_why, t->missed,
			 "private accesses without SIGBUS BUS_ADRERR at the address");
	report_invariant("no_stamp_mismatch", NULL, t->host_mismatches + t->guest_mismatches,
			 "host and guest checks");
	report_invariant("no_kvm_run_error", NULL, t->run_errors + t->conv_errors,
			 "KVM_RUN failures, unexpected exits, guest aborts, failed conversions");
	report_thp(s, "thp_splits_seen", t->splits, s->splitter);
	report_thp(s, "thp_collapses_seen", t->collapses, s->collapser);
	report_conversions(s, t);
	if (t->kmsg_bad < 0)
		snprintf(why, sizeof(why), "kernel log not usable: %s", strerror(-t->kmsg_bad));
	else if (t->kmsg_bad)
		ksft_print_msg("kernel log: %d bad line(s), first: %s\n", t->kmsg_bad,
			       t->kmsg_first);
	result("kernel_log_clean", t->kmsg_bad < 0 ? why : NULL, !t->kmsg_bad);
	if (s->p.out_path)
		ksft_print_msg("metrics: %s: %s\n", s->p.out_path,
			       err ? strerror(-err) : "written");
	result("metrics_written", s->p.out_path ? NULL : "no -o and no SNP_RMP_METRICS", !err);
}

/* ---- -S: the schedule alone ---------------------------------------------- */

/* Every actor's schedule hash, from the generators the actors run. */
static void dry_run(struct stress *s)
{
	u64 n = min_t(u64, SCHED_HASH_OPS, s->p.max_ops), i;
	u32 k;

	printf("schedule seed 0x%lx flavour %s\n", s->p.seed, rmpt_flavour_name(s->p.flavour));
	for (k = 0; k < s->nr_actors; k++) {
		for (i = 0; i < n; i++)
			actor_step(&s->actors[k]);
		sched_print(&s->actors[k], false);
	}
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
	int node = strcmp(arg, "spread") ? parse_num('n', arg, 0, 1023) : -1;

	if (node >= 0 && (numa_available() < 0 ? node != 0 :
			  !numa_bitmask_isbitset(numa_all_nodes_ptr, node)))
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

static void parse_args(int argc, char **argv, struct params *p)
{
	const char *quick = getenv("SNP_RMP_QUICK"), *metrics = getenv("SNP_RMP_METRICS"), *slash;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	const struct {
		char opt;
		u64 *val;
		u64 min, max;
	} nums[] = {
		{ 's', &p->seed, 0, UINT64_MAX },
		{ 'd', &p->duration_s, 1, MAX_DURATION_S },
		{ 't', &p->nr_threads, 1, MAX_HOST_THREADS },
		{ 'v', &p->nr_vcpus, 1, RMPT_MAX_VCPUS },
		{ 'm', &p->mem_mib, 2, MAX_MEM_MIB },
		{ 'c', &p->conv_per_mille, 0, 1000 },
		{ 'i', &p->max_ops, 1, UINT64_MAX },
	};
	char dir[4096];
	size_t i;
	int opt;

	*p = (struct params){
		.flavour = RMPT_DEFAULT,
		.seed = rmpt_now_ns() ^ ((u64)getpid() << 32),
		.quick = quick && !strcmp(quick, "1"),
		.nr_vcpus = clamp(cpus, 1L, (long)RMPT_MAX_VCPUS),
		.nr_threads = clamp(cpus, 1L, (long)MAX_HOST_THREADS),
		.conv_per_mille = DEFAULT_CONV_PER_MILLE,
		.numa_node = -1,
		.out_path = metrics && *metrics ? metrics : NULL,
		.max_ops = DEFAULT_MAX_OPS,
	};
	while ((opt = getopt(argc, argv, "f:s:d:qt:v:m:c:n:i:o:Sh")) != -1) {
		for (i = 0; i < ARRAY_SIZE(nums) && nums[i].opt != opt; i++)
			;
		if (i < ARRAY_SIZE(nums)) {
			*nums[i].val = parse_num(opt, optarg, nums[i].min, nums[i].max);
			continue;
		}
		switch (opt) {
		case 'f':
			if (rmpt_flavour_parse(optarg, &p->flavour))
				usage_error("-f: expected snp, sw_protected or default, got '%s'",
					    optarg);
			p->flavour_given = true;
			break;
		case 'q':
			p->quick = true;
			break;
		case 'n':
			p->numa_node = parse_numa(optarg);
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
	if (p->mem_mib % 2)
		usage_error("-m: expected an even number of MiB, got %lu", p->mem_mib);
	/* The metrics go next to the path: its folder must take a new file. */
	slash = p->out_path ? strrchr(p->out_path, '/') : NULL;
	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - p->out_path) + 1 : 1,
		 slash ? p->out_path : ".");
	if (p->out_path && access(dir, W_OK | X_OK))
		usage_error("-o %s: expected a writable folder %s, got %s", p->out_path, dir,
			    strerror(errno));
	if (!p->duration_s)
		p->duration_s = p->quick ? QUICK_DURATION_S : DEFAULT_DURATION_S;
	if (!p->mem_mib)
		p->mem_mib = p->quick ? QUICK_MEM_MIB : DEFAULT_MEM_MIB;
	p->inject = parse_inject();
}

/* The control area holds each page's sequence number and discard counts. */
static void check_layout(const struct params *p, struct layout *l)
{
	u64 table = p->mem_mib * (SZ_1M / SZ_4K) * CTL_PAGE_BYTES, stress_chunks;

	l->nr_chunks = p->mem_mib / 2;
	l->ctl_chunks = DIV_ROUND_UP(CTL_TABLE_OFF + table, SZ_2M);
	stress_chunks = l->nr_chunks > l->ctl_chunks ? l->nr_chunks - l->ctl_chunks : 0;
	l->first_page = l->ctl_chunks * PAGES_PER_2M;
	l->nr_pages = stress_chunks * PAGES_PER_2M;
	l->vcpu_pages = stress_chunks / p->nr_vcpus * PAGES_PER_2M;
	if (!l->vcpu_pages)
		usage_error("-m %lu: expected >= %lu MiB (control area %lu, then 2 per vCPU)",
			    p->mem_mib, (l->ctl_chunks + p->nr_vcpus) * 2, l->ctl_chunks * 2);
}

/*
 * The same two operations on one thread with nothing else running: a 4K
 * MADV_DONTNEED in a PMD-mapped THP, then MADV_COLLAPSE of its 2M.  Per
 * CPU-second, the most this machine does.
 */
static void bare_split_collapse(struct stress *s)
{
	u64 split_ns = 0, collapse_ns = 0, splits = 0, collapses = 0, t0, i;
	char *map = mmap(NULL, 2 * SZ_2M, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *p = align_ptr_up(map, SZ_2M);

	TEST_ASSERT(map != MAP_FAILED, "mmap of 4M: %s", strerror(errno));
	madvise(p, SZ_2M, MADV_HUGEPAGE);
	memset(p, 1, SZ_2M);
	for (i = 0; i < BARE_LOOPS; i++) {
		t0 = thread_cpu_ns();
		madvise(p + SZ_4K * (1 + i % 511), SZ_4K, MADV_DONTNEED);
		split_ns += thread_cpu_ns() - t0;
		splits += rmpt_pmd_mapped(p) == 0;
		t0 = thread_cpu_ns();
		collapses += !rmpt_collapse(p, SZ_2M);
		collapse_ns += thread_cpu_ns() - t0;
	}
	munmap(map, 2 * SZ_2M);
	s->bare_splits_per_cpu_s = rmpt_rate(splits, split_ns);
	s->bare_collapses_per_cpu_s = rmpt_rate(collapses, collapse_ns);
}

int main(int argc, char **argv)
{
	static struct stress s;
	struct totals t;
	u32 i;

	parse_args(argc, argv, &s.p);
	check_layout(&s.p, &s.l);
	rmpt_caps_probe(&s.caps);
	pick_flavour(&s);
	init_actors(&s);
	if (s.p.dry_run) {
		dry_run(&s);
		return KSFT_PASS;
	}
	s.thp_on = rmpt_thp_usable(&s.caps, s.thp_why, sizeof(s.thp_why));

	ksft_print_header();
	ksft_set_plan(NR_RESULTS);
	s.kmsg_err = rmpt_kmsg_mark(TEST_NAME, s.kmsg_marker, sizeof(s.kmsg_marker));
	create_vm(&s);
	print_setup(&s);
	run_actors(&s);
	sum_up(&s, &t);
	if (s.thp_on)
		bare_split_collapse(&s);
	report(&s, &t);
	for (i = 0; i < s.p.nr_threads; i++) {
		free(s.hosts[i].table);
		free(s.hosts[i].discards_then);
	}
	free(s.actors);
	rmpt_vm_free(s.rv);
	ksft_finished();
}
