// SPDX-License-Identifier: GPL-2.0-only
/*
 * snp_thp_split_stress: the host memory contract under concurrency.
 *
 * Actors, each with its own PRNG seeded from (seed, actor id) so that its
 * sequence of operations is a pure function of the two (-S prints a hash of
 * it, lib/stress_schedule.c), and each bounded by the deadline and an
 * iteration cap:
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
 * statistics, the guest's sequence tables) that nobody discards; the rest,
 * the stress area, is cut into one slice of whole 2M ranges per vCPU, plus
 * leftovers only the host stamps.
 *
 * Stamps (include/snp_stamp.h): each 4K page has one word per writer, so
 * no two writers ever store to the same word: word 0 for the vCPU owning
 * the page, word HOST_WORD0 + t for host thread t.  Legal races, each of
 * which a checker accepts:
 *  - a discard (splitter, or the shared half of a conversion) zeroes the
 *    whole page at any time, so 0 is legal in a writer's own word only if
 *    the page's discard counts moved since its last stamp there (the
 *    control area keeps them, include/snp_stress.h), and in another
 *    writer's word always;
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
 * Setup, the watch over the run, its metrics and its report are in
 * lib/stress_*.c.  Test-only fault injection (SNP_RMP_STRESS_INJECT=name,
 * see tests/t_stress.sh) breaks one invariant once to prove its check fails.
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
#include <linux/kvm_para.h>
#include <numa.h>

#include "test_util.h"
#include "kvm_util.h"
#include "processor.h"
#include "ucall_common.h"
#include "snp_util.h"
#include "snp_metrics.h"
#include "snp_stress.h"

#define GUEST_WORD		0
#define HOST_WORD0		8	/* a cache line away from the guest's word */
#define MAX_HOST_THREADS	64

#define DEFAULT_DURATION_S	30
#define QUICK_DURATION_S	5
#define MAX_DURATION_S		86400
#define DEFAULT_MEM_MIB		512
#define QUICK_MEM_MIB		256
#define MAX_MEM_MIB		65536
#define DEFAULT_CONV_PER_MILLE	20
#define DEFAULT_MAX_OPS		BIT_ULL(40)

#define GUEST_SYNC_EVERY	1024	/* guest ops between ucalls */
#define START_WAIT_S		30	/* for a vCPU to claim its slot */
#define INJECT_PORT		0x5157		/* an I/O port no ucall uses */
#define PROBE_POISON		0x5349474255535f3fULL	/* "?_SUBGIS" */

/* READ_ONCE()/WRITE_ONCE() are always_inline for the default target only. */
#define guest_load(ptr)		__atomic_load_n(ptr, __ATOMIC_RELAXED)
#define guest_load_acquire(ptr)	__atomic_load_n(ptr, __ATOMIC_ACQUIRE)
#define guest_store(ptr, val)	__atomic_store_n(ptr, val, __ATOMIC_RELAXED)

/* ---- host: helpers ------------------------------------------------------- */

static bool stopping(struct rmpt_stress *s)
{
	return __atomic_load_n(&s->stop, __ATOMIC_RELAXED);
}

/* One writer per counter: a plain add, stored whole for the monitor. */
static void bump(u64 *counter)
{
	__atomic_store_n(counter, *counter + 1, __ATOMIC_RELAXED);
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

static u8 *view_page_hva(struct rmpt_stress *s, u64 page)
{
	return rmpt_view_hva(s->rv, RMPT_DATA_GPA + page * RMPT_SZ_4K);
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
 * some hosts (PVM here: about 10 us each), so the loop keeps what changes
 * per operation in locals: the helpers are always inlined, the run state is
 * read-only, counters reach the control area in batches.  Only a mismatch
 * is published at once, so that the host can stop early.
 */
#define GUEST_PUBLISH_EVERY	64
#define GUEST_PRIVATE_SEQ	1	/* a private range's stamps, reset after */

struct guest_run {
	struct rmpt_stress_ctl *ctl;
	struct rmpt_guest_stats *st;
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
	return (u64 *)(RMPT_DATA_GPA + page * RMPT_SZ_4K);
}

static RMPT_GUEST_CODE __always_inline void guest_publish(struct rmpt_guest_stats *st,
							  const struct guest_counts *c)
{
	guest_store(&st->stamps, c->ops - c->conv_ops);
	guest_store(&st->zero_words, c->zero_words);
	guest_store(&st->conversions, c->conversions);
	guest_store(&st->ops, c->ops);
}

static noinline RMPT_GUEST_CODE void guest_mismatch(struct rmpt_guest_stats *st, u64 page,
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
	    !rmpt_discarded_since(g->discards_then[slice_page], guest_load(&g->discards[page])))
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
							 enum rmpt_inject what)
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

	if (mode == RMPT_CONV_SNP_PSC)
		return rmpt_guest_convert(gpa, npages, to_private);
	return kvm_hypercall(KVM_HC_MAP_GPA_RANGE, gpa, npages,
			     rmpt_map_gpa_attrs(to_private, npages == RMPT_PAGES_PER_2M ?
						RMPT_MAP_GPA_2M : RMPT_MAP_GPA_4K), 0);
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
	u64 first = huge ? slice_page / RMPT_PAGES_PER_2M * RMPT_PAGES_PER_2M : slice_page;
	u64 n = huge ? RMPT_PAGES_PER_2M : 1, i;
	bool done = false;

	guest_count_discards(g, first, n, RMPT_DISCARD_BEGIN);
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
	guest_count_discards(g, first, n, RMPT_DISCARD_END);
	if (!done)
		guest_store(&g->st->conv_errors, g->st->conv_errors + 1);
	return done;
}

static RMPT_GUEST_CODE void guest_run_init(struct guest_run *g, struct rmpt_stress_ctl *ctl, u64 id)
{
	*g = (struct guest_run){
		.ctl = ctl,
		.st = &ctl->vcpu[id],
		.table = (u32 *)((u8 *)ctl + RMPT_CTL_TABLE_OFF) + id * ctl->vcpu_pages,
		.discards = rmpt_ctl_discards(ctl),
		.discards_then = rmpt_ctl_discards(ctl) + ctl->region_pages + id * ctl->vcpu_pages,
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
static RMPT_GUEST_CODE void guest_main(struct rmpt_stress_ctl *ctl, u64 id)
{
	u64 max = guest_load(&ctl->max_ops), pages = ctl->vcpu_pages;
	u64 conv = ctl->conv_per_mille, hash_ops = ctl->sched_ops;
	u64 rng = rmpt_rng_seed(ctl->seed, RMPT_ACTOR_ID(RMPT_ACTOR_VCPU, id));
	struct guest_counts c = { 0 };
	u64 hash = RMPT_HASH_INIT;
	struct guest_run g;
	struct rmpt_guest_op op;
	bool inject;
	u32 seq = 0;

	guest_run_init(&g, ctl, id);
	while (c.ops < max && !guest_load(&ctl->stop)) {
		rmpt_guest_op_next(&rng, pages, conv, &op);
		if (c.ops < hash_ops)
			hash = rmpt_sched_mix(hash, op.kind, op.page, 0);
		if (guest_inject(&g, c.ops, RMPT_INJECT_KVM_RUN_ERROR))
			asm volatile("outl %0, %w1" : : "a"(0), "Nd"(INJECT_PORT));
		if (op.kind == RMPT_GOP_STAMP || g.conv_broken) {
			seq = rmpt_seq_next(seq);
			inject = guest_inject(&g, c.ops, RMPT_INJECT_GUEST_MISMATCH);
			c.zero_words += guest_stamp(&g, op.page, seq, inject);
		} else {
			c.conv_ops++;
			if (guest_convert_range(&g, op.kind == RMPT_GOP_CONVERT_2M, op.page))
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
	struct rmpt_stress_ctl *ctl = (struct rmpt_stress_ctl *)RMPT_DATA_GPA;
	u64 id = __atomic_fetch_add(&ctl->claimed, 1, __ATOMIC_SEQ_CST);

	if (guest_load(&ctl->conv_mode) == RMPT_CONV_SNP_PSC)
		rmpt_snp_guest_ghcb_init(id);
	guest_main(ctl, id);
	GUEST_DONE();
}

/* ---- host: vCPU workers -------------------------------------------------- */

/* Private flavours need the library's conversion service; it asserts on errors. */
static int vcpu_run_once(struct rmpt_stress *s, struct kvm_vcpu *vcpu)
{
	if (rmpt_flavour_has_private_mem(s->rv->flavour)) {
		rmpt_vcpu_run(s->rv, vcpu);
		return 0;
	}
	return rmpt_snp_vcpu_try_run(vcpu);
}

/* vCPU i may start once vCPUs 0..i-1 took their slots (see guest_code()). */
static bool vcpu_wait_turn(struct rmpt_vcpu_worker *w)
{
	struct rmpt_stress *s = w->s;
	u64 give_up = rmpt_now_ns() + START_WAIT_S * RMPT_NS_PER_S;

	while (READ_ONCE(s->ctl->claimed) < w->idx) {
		if (stopping(s) || rmpt_now_ns() > give_up) {
			fail_note(&w->errors, w->why, sizeof(w->why),
				  "vCPU %u: expected vCPU %u to claim its slot first, got %lu claimed",
				  w->idx, w->idx - 1, READ_ONCE(s->ctl->claimed));
			return false;
		}
		rmpt_sleep_us(100);
	}
	return true;
}

/*
 * A triple fault of the guest.  Where the state is readable (not SNP),
 * say where it was, so that a kernel's lost page and an emulator's lost
 * fault can be told apart.  SVM's shutdown_interception() (svm/svm.c)
 * INITs the vCPU, so there paging is off and the state tells nothing.
 */
static void note_shutdown(struct rmpt_vcpu_worker *w, struct kvm_vcpu *vcpu)
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
static bool vcpu_step(struct rmpt_vcpu_worker *w)
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
		bump(&w->syncs);
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
	struct rmpt_vcpu_worker *w = arg;

	rmpt_numa_run_thread_on(w->node);
	pthread_barrier_wait(&w->s->start);
	if (vcpu_wait_turn(w))
		while (vcpu_step(w))
			;
	WRITE_ONCE(w->finished, true);
	return NULL;
}

/* ---- host: faulting threads ---------------------------------------------- */

static bool host_inject(struct rmpt_host_worker *w, enum rmpt_inject what)
{
	if (w->injected || w->id || w->s->p.inject != what)
		return false;
	w->injected = true;
	return true;
}

static void host_unexpected(struct rmpt_host_worker *w, const char *what, void *addr,
			    const struct rmpt_fault *f)
{
	fail_note(&w->unexpected, w->why, sizeof(w->why),
		  "host thread %u: %s %p: expected no fault, got signal %d code %d (%s) at %p",
		  w->id, what, addr, f->signo, f->code, rmpt_sigbus_code_name(f->code),
		  f->addr);
}

static void host_judge(struct rmpt_host_worker *w, u64 page, u64 word, u64 got, enum rmpt_verdict v,
		       u64 want)
{
	char expected[96];

	if (v == RMPT_WORD_ZERO)
		bump(&w->zero_words);
	if (v != RMPT_WORD_BAD)
		return;
	rmpt_stamp_describe_want(expected, sizeof(expected), want);
	fail_note(&w->mismatches, w->why, sizeof(w->why),
		  "host thread %u: page %lu word %lu: expected %s, got %#lx", w->id, page, word,
		  expected, got);
}

/* Our stamp, or 0 if the page was discarded since we wrote it. */
static void host_check_own(struct rmpt_host_worker *w, u64 page, u64 got)
{
	u64 idx = page - w->s->l.first_page;
	u32 want = w->table[idx];
	enum rmpt_verdict v = rmpt_stamp_verify(got, RMPT_WRITER_HOST(w->id), page, want);

	if (v == RMPT_WORD_ZERO && want &&
	    !rmpt_discarded_since(w->discards_then[idx],
				  __atomic_load_n(&rmpt_ctl_discards(w->s->ctl)[page],
						  __ATOMIC_ACQUIRE)))
		v = RMPT_WORD_BAD;
	host_judge(w, page, HOST_WORD0 + w->id, got, v,
		   want ? rmpt_stamp_make(RMPT_WRITER_HOST(w->id), want, page) : 0);
}

/* The owner's stamps, any seq; leftover pages have no guest writer at all. */
static void host_check_guest_word(struct rmpt_host_worker *w, u64 page, u64 *word)
{
	int owner = rmpt_page_owner(&w->s->l, page);
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
static void host_stamp(struct rmpt_host_worker *w, u64 page, u8 *base)
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
		__atomic_load_n(&rmpt_ctl_discards(w->s->ctl)[page], __ATOMIC_ACQUIRE);
	if (!rmpt_timed_write(&w->acc, word, stamp, &f)) {
		host_unexpected(w, "write", word, &f);
		return;
	}
	w->table[page - w->s->l.first_page] = w->seq;
	bump(&w->stamps);
	/* A zero no discard explains: what a kernel that loses a store leaves. */
	if (host_inject(w, RMPT_INJECT_LOST_WRITE)) {
		WRITE_ONCE(*word, 0);
		host_check_own(w, page, READ_ONCE(*word));
	}
	if (host_inject(w, RMPT_INJECT_HOST_MISMATCH)) {
		WRITE_ONCE(*word, stamp ^ BIT_ULL(8));
		host_check_own(w, page, READ_ONCE(*word));
	}
	host_check_guest_word(w, page, (u64 *)base + GUEST_WORD);
}

/* A private page: the access must raise SIGBUS BUS_ADRERR at exactly addr. */
static void host_probe(struct rmpt_host_worker *w, bool write, u8 *addr)
{
	struct rmpt_fault f;
	char why[256];
	u64 val;

	bump(&w->probes);
	if (write)
		rmpt_timed_write(&w->acc, addr, PROBE_POISON, &f);
	else
		rmpt_timed_read(&w->acc, addr, &val, &f);
	if (!rmpt_check_sigbus(&f, addr, BUS_ADRERR, why, sizeof(why))) {
		bump(&w->sigbus_ok);
		return;
	}
	fail_note(&w->missed, w->why, sizeof(w->why), "host thread %u: private %s at %p: %s", w->id,
		  write ? "write" : "read", addr, why);
}

static void host_do_op(struct rmpt_host_worker *w, const struct rmpt_host_op *op)
{
	struct rmpt_stress *s = w->s;

	if (op->kind == RMPT_HOP_STAMP) {
		if (s->rv->view && host_inject(w, RMPT_INJECT_UNEXPECTED_SIGBUS))
			host_stamp(w, op->page, view_page_hva(s, op->page));
		else
			host_stamp(w, op->page, rmpt_stress_page_hva(s, op->page));
		return;
	}
	if (!s->rv->view) {
		bump(&w->probes_skipped);
		return;
	}
	/* The injected probe reads, so that it changes no stamp when it lands. */
	if (host_inject(w, RMPT_INJECT_MISSED_SIGBUS))
		host_probe(w, false, rmpt_stress_page_hva(s, op->page) + op->offset);
	else
		host_probe(w, op->kind == RMPT_HOP_PROBE_WRITE,
			   view_page_hva(s, op->page) + op->offset);
}

static void *host_worker_fn(void *arg)
{
	struct rmpt_host_worker *w = arg;
	struct rmpt_stress *s = w->s;
	struct rmpt_host_op op;
	u64 faults, i;

	rmpt_numa_run_thread_on(w->node);
	rmpt_sigbus_init();
	pthread_barrier_wait(&s->start);
	faults = thread_page_faults();
	w->start_ns = rmpt_now_ns();
	for (i = 0; i < s->p.max_ops && !stopping(s); i++) {
		rmpt_host_op_next(&w->rng, &s->l, &op);
		rmpt_sched_note(&w->sched, RMPT_SCHED_HASH_OPS, op.kind, op.page, op.offset);
		host_do_op(w, &op);
		bump(&w->ops);
	}
	w->end_ns = rmpt_now_ns();
	w->page_faults = thread_page_faults() - faults;
	WRITE_ONCE(w->finished, true);
	return NULL;
}

/* ---- host: splitter and collapser ---------------------------------------- */

static void thp_error(struct rmpt_thp_worker *w, int err)
{
	if (!w->errors)
		w->first_errno = err;
	bump(&w->errors);
}

/* 1 or 0; -1 (and pmd_errno kept) where PAGEMAP_SCAN cannot tell. */
static int chunk_pmd_mapped(struct rmpt_thp_worker *w, u64 chunk)
{
	int ret = rmpt_pmd_mapped(rmpt_stress_chunk_hva(w->s, chunk));

	if (ret >= 0)
		return ret;
	w->pmd_errno = -ret;
	return -1;
}

/* A discard of the page, as the checkers count them (include/snp_stress.h). */
static void count_discard(struct rmpt_stress *s, const struct rmpt_split_op *op, u64 what)
{
	__atomic_fetch_add(&rmpt_ctl_discards(s->ctl)[op->chunk * RMPT_PAGES_PER_2M + op->page],
			   what, __ATOMIC_SEQ_CST);
}

/* The remove variant: guest_memfd is order-0, there is no THP to split. */
static void split_punch_view(struct rmpt_thp_worker *w, const struct rmpt_split_op *op)
{
	off_t off = (op->chunk * RMPT_PAGES_PER_2M + op->page) * RMPT_SZ_4K;
	int ret;

	count_discard(w->s, op, RMPT_DISCARD_BEGIN);
	ret = fallocate(w->s->rv->view_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off,
			RMPT_SZ_4K);
	count_discard(w->s, op, RMPT_DISCARD_END);
	if (ret)
		thp_error(w, errno);
	else
		bump(&w->punches);
}

static void split_discard(struct rmpt_thp_worker *w, const struct rmpt_split_op *op)
{
	struct rmpt_stress *s = w->s;
	u64 gpa = RMPT_DATA_GPA + (op->chunk * RMPT_PAGES_PER_2M + op->page) * RMPT_SZ_4K;
	int before, after, ret;

	before = chunk_pmd_mapped(w, op->chunk);
	count_discard(s, op, RMPT_DISCARD_BEGIN);
	ret = rmpt_discard_shared(s->rv, gpa, RMPT_SZ_4K, MADV_DONTNEED);
	count_discard(s, op, RMPT_DISCARD_END);
	if (ret) {
		thp_error(w, -ret);
		return;
	}
	after = chunk_pmd_mapped(w, op->chunk);
	if (before == 1)
		bump(&w->on_pmd);
	if (before == 1 && after == 0)
		bump(&w->observed);
}

static void *splitter_fn(void *arg)
{
	struct rmpt_thp_worker *w = arg;
	struct rmpt_stress *s = w->s;
	struct rmpt_split_op op;
	u64 i;

	rmpt_numa_run_thread_on(w->node);
	pthread_barrier_wait(&s->start);
	w->start_ns = rmpt_now_ns();
	for (i = 0; i < s->p.max_ops && !stopping(s); i++) {
		rmpt_split_op_next(&w->rng, &s->l, &op);
		rmpt_sched_note(&w->sched, RMPT_SCHED_HASH_OPS, op.chunk, op.page, op.punch);
		if (s->p.inject == RMPT_INJECT_NO_SPLIT)
			;	/* test-only: the op is scheduled, never done */
		else if (op.punch && s->rv->view)
			split_punch_view(w, &op);
		else
			split_discard(w, &op);
		bump(&w->ops);
		rmpt_sleep_us(RMPT_SPLIT_GAP_US);
	}
	w->end_ns = rmpt_now_ns();
	WRITE_ONCE(w->finished, true);
	return NULL;
}

static void collapse_chunk(struct rmpt_thp_worker *w, u64 chunk)
{
	int ret;

	if (chunk_pmd_mapped(w, chunk) == 1) {
		bump(&w->already_huge);
		return;
	}
	ret = rmpt_collapse(rmpt_stress_chunk_hva(w->s, chunk), RMPT_SZ_2M);
	if (ret == -EAGAIN) {
		bump(&w->eagain);
		return;
	}
	if (ret) {
		thp_error(w, -ret);
		return;
	}
	bump(&w->on_pmd);
	if (chunk_pmd_mapped(w, chunk) == 1)
		bump(&w->observed);
}

static void *collapser_fn(void *arg)
{
	struct rmpt_thp_worker *w = arg;
	struct rmpt_stress *s = w->s;
	u64 chunk, i;

	rmpt_numa_run_thread_on(w->node);
	pthread_barrier_wait(&s->start);
	w->start_ns = rmpt_now_ns();
	for (i = 0; i < s->p.max_ops && !stopping(s); i++) {
		chunk = rmpt_collapse_op_next(&w->rng, &s->l);
		rmpt_sched_note(&w->sched, RMPT_SCHED_HASH_OPS, chunk, 0, 0);
		if (s->p.inject != RMPT_INJECT_NO_COLLAPSE)	/* test-only */
			collapse_chunk(w, chunk);
		bump(&w->ops);
		rmpt_sleep_us(RMPT_COLLAPSE_GAP_US);
	}
	w->end_ns = rmpt_now_ns();
	WRITE_ONCE(w->finished, true);
	return NULL;
}

static const struct rmpt_stress_actors actors = {
	.vcpu = vcpu_worker_fn,
	.host = host_worker_fn,
	.splitter = splitter_fn,
	.collapser = collapser_fn,
};

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
		RMPT_STRESS_NAME, MAX_DURATION_S, DEFAULT_DURATION_S, QUICK_DURATION_S,
		QUICK_DURATION_S, QUICK_MEM_MIB, MAX_HOST_THREADS, RMPT_MAX_VCPUS,
		DEFAULT_MEM_MIB, QUICK_MEM_MIB, DEFAULT_CONV_PER_MILLE, RMPT_SCHED_HASH_OPS);
}

static __printf(1, 2) __noreturn void usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", RMPT_STRESS_NAME);
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

static enum rmpt_inject parse_inject(void)
{
	const char *name = getenv("SNP_RMP_STRESS_INJECT");
	int i;

	if (!name || !*name)
		return RMPT_INJECT_NONE;
	for (i = 0; i < RMPT_NR_INJECTS; i++)
		if (!strcmp(name, rmpt_inject_names[i]))
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

static void defaults(struct rmpt_stress_params *p)
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

static void parse_args(int argc, char **argv, struct rmpt_stress_params *p)
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
static void check_layout(const struct rmpt_stress_params *p, struct rmpt_layout *l)
{
	rmpt_layout_compute(l, p->mem_mib, p->nr_vcpus);
	if (!l->vcpu_pages)
		usage_error("-m %lu: expected >= %lu MiB (control area %lu, then 2 per vCPU)",
			    p->mem_mib, (l->ctl_chunks + p->nr_vcpus) * 2, l->ctl_chunks * 2);
}

/* ---- main ---------------------------------------------------------------- */

/* The report's results, counted in this file, where ksft_finished() looks. */
static void result(int code, const char *name, const char *why)
{
	if (why)
		ksft_test_result_code(code, name, "%s", why);
	else
		ksft_test_result(code == KSFT_PASS, "%s\n", name);
}

int main(int argc, char **argv)
{
	static struct rmpt_stress s;
	struct rmpt_stress_totals t;

	parse_args(argc, argv, &s.p);
	check_layout(&s.p, &s.l);
	rmpt_caps_probe(&s.caps);
	if (s.p.dry_run) {
		/* The schedule depends on the flavour only through conversions. */
		rmpt_stress_choose_flavour(&s, s.conv_why, sizeof(s.conv_why));
		rmpt_stress_pick_conversions(&s);
		rmpt_stress_dry_run(&s);
		return KSFT_PASS;
	}
	rmpt_stress_pick_flavour(&s);
	rmpt_stress_pick_conversions(&s);
	rmpt_stress_pick_thp(&s);

	ksft_print_header();
	ksft_set_plan(RMPT_STRESS_NR_RESULTS);
	s.kmsg_err = rmpt_kmsg_mark(RMPT_STRESS_NAME, s.kmsg_marker, sizeof(s.kmsg_marker));
	rmpt_stress_create_vm(&s, guest_code);
	rmpt_stress_print_setup(&s);
	rmpt_stress_start(&s, &actors);
	rmpt_stress_monitor(&s);
	rmpt_stress_join(&s);
	rmpt_stress_sum_up(&s, &t);
	rmpt_stress_report(&s, &t, result);
	rmpt_stress_free(&s);
	ksft_finished();
}
