// SPDX-License-Identifier: GPL-2.0-only
/*
 * The schedule of snp_thp_split_stress (include/snp_stress.h): each actor
 * draws its operations from its own splitmix64 stream, seeded from (seed,
 * actor id), over the layout of the data region, so that its sequence of
 * operations is a pure function of the two.  The hash of an actor's first
 * operations is the proof: -S computes it here from the same generators,
 * and a run prints the hash each actor kept, for comparison.
 *
 * rmpt_rng_seed() runs in the guest too: general registers only.
 */
#include <stdio.h>

#include "snp_stress.h"

/* Room for each page's sequence number and discard counts, control included. */
void rmpt_layout_compute(struct rmpt_layout *l, u64 mem_mib, u32 nr_vcpus)
{
	u64 table = mem_mib * (1024 * 1024 / RMPT_SZ_4K) * RMPT_CTL_PAGE_BYTES;
	u64 stress_chunks;

	l->nr_chunks = mem_mib / 2;
	l->ctl_chunks = DIV_ROUND_UP(RMPT_CTL_TABLE_OFF + table, RMPT_SZ_2M);
	stress_chunks = l->nr_chunks > l->ctl_chunks ? l->nr_chunks - l->ctl_chunks : 0;
	l->first_page = l->ctl_chunks * RMPT_PAGES_PER_2M;
	l->nr_pages = stress_chunks * RMPT_PAGES_PER_2M;
	l->vcpu_pages = stress_chunks / nr_vcpus * RMPT_PAGES_PER_2M;
	l->nr_vcpus = nr_vcpus;
}

/* The vCPU whose slice holds page, or -1 for the leftovers. */
int rmpt_page_owner(const struct rmpt_layout *l, u64 page)
{
	u64 v = (page - l->first_page) / l->vcpu_pages;

	return v < l->nr_vcpus ? (int)v : -1;
}

/* Each actor's stream: the seed and the actor id mixed, never just added. */
RMPT_GUEST_CODE u64 rmpt_rng_seed(u64 seed, u64 actor)
{
	u64 a = seed, b = ~actor;

	return rmpt_rng_next(&a) ^ rmpt_rng_next(&b);
}

void rmpt_sched_note(struct rmpt_sched_hash *h, u64 limit, u64 a, u64 b, u64 c)
{
	if (h->ops >= limit)
		return;
	h->hash = rmpt_sched_mix(h->hash, a, b, c);
	h->ops++;
}

void rmpt_host_op_next(u64 *rng, const struct rmpt_layout *l, struct rmpt_host_op *op)
{
	u64 r = rmpt_rng_next(rng);

	op->page = l->first_page + rmpt_rng_next(rng) % l->nr_pages;
	op->offset = 0;
	if (r % RMPT_PROBE_ONE_IN) {
		op->kind = RMPT_HOP_STAMP;
		return;
	}
	op->kind = (r >> 32) & 1 ? RMPT_HOP_PROBE_WRITE : RMPT_HOP_PROBE_READ;
	op->offset = (r >> 40) % RMPT_WORDS_PER_PAGE * sizeof(u64);
}

void rmpt_split_op_next(u64 *rng, const struct rmpt_layout *l, struct rmpt_split_op *op)
{
	op->chunk = l->ctl_chunks + rmpt_rng_next(rng) % (l->nr_chunks - l->ctl_chunks);
	op->page = rmpt_rng_next(rng) % RMPT_PAGES_PER_2M;
	op->punch = !(rmpt_rng_next(rng) % RMPT_PUNCH_ONE_IN);
}

u64 rmpt_collapse_op_next(u64 *rng, const struct rmpt_layout *l)
{
	return l->ctl_chunks + rmpt_rng_next(rng) % (l->nr_chunks - l->ctl_chunks);
}

void rmpt_sched_print(const char *actor, u32 idx, u64 ops, u64 hash, bool diag)
{
	printf("%sschedule %s%u %lu 0x%016lx\n", diag ? "# " : "", actor, idx, ops, hash);
}

/* The next operation of an actor, fed to the hash the actor itself keeps. */
static void dry_step(const struct rmpt_stress *s, enum rmpt_actor_kind kind, u64 *rng,
		     struct rmpt_sched_hash *h, u64 n)
{
	u64 conv = s->conv == RMPT_CONV_NONE ? 0 : s->p.conv_per_mille;
	struct rmpt_split_op sp;
	struct rmpt_guest_op g;
	struct rmpt_host_op o;

	switch (kind) {
	case RMPT_ACTOR_VCPU:
		rmpt_guest_op_next(rng, s->l.vcpu_pages, conv, &g);
		rmpt_sched_note(h, n, g.kind, g.page, 0);
		break;
	case RMPT_ACTOR_HOST:
		rmpt_host_op_next(rng, &s->l, &o);
		rmpt_sched_note(h, n, o.kind, o.page, o.offset);
		break;
	case RMPT_ACTOR_SPLITTER:
		rmpt_split_op_next(rng, &s->l, &sp);
		rmpt_sched_note(h, n, sp.chunk, sp.page, sp.punch);
		break;
	case RMPT_ACTOR_COLLAPSER:
		rmpt_sched_note(h, n, rmpt_collapse_op_next(rng, &s->l), 0, 0);
		break;
	}
}

static void dry_actor(const struct rmpt_stress *s, enum rmpt_actor_kind kind,
		      const char *name, u32 idx)
{
	u64 n = min_t(u64, RMPT_SCHED_HASH_OPS, s->p.max_ops), rng, i;
	struct rmpt_sched_hash h = { RMPT_HASH_INIT, 0 };

	rng = rmpt_rng_seed(s->p.seed, RMPT_ACTOR_ID(kind, idx));
	for (i = 0; i < n; i++)
		dry_step(s, kind, &rng, &h, n);
	rmpt_sched_print(name, idx, h.ops, h.hash, false);
}

/* Every actor's schedule hash, from the generators the actors run. */
void rmpt_stress_dry_run(const struct rmpt_stress *s)
{
	u32 i;

	printf("schedule seed 0x%lx flavour %s\n", s->p.seed, rmpt_flavour_name(s->p.flavour));
	for (i = 0; i < s->p.nr_vcpus; i++)
		dry_actor(s, RMPT_ACTOR_VCPU, "vcpu", i);
	for (i = 0; i < s->p.nr_threads; i++)
		dry_actor(s, RMPT_ACTOR_HOST, "host", i);
	dry_actor(s, RMPT_ACTOR_SPLITTER, "splitter", 0);
	dry_actor(s, RMPT_ACTOR_COLLAPSER, "collapser", 0);
}
