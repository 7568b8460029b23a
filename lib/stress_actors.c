// SPDX-License-Identifier: GPL-2.0-only
/*
 * The threads of a run of snp_thp_split_stress (include/snp_stress.h):
 * each actor's record seeded from the schedule and placed on its NUMA
 * node, every thread started behind one barrier so that the clock starts
 * when they all do, then joined and freed.  The threads' code is the
 * program's: it hands its entry points in struct rmpt_stress_actors.
 */
#include <stdlib.h>
#include <string.h>

#include "snp_stress.h"

static int actor_node(const struct rmpt_stress_params *p, int i)
{
	return p->numa_node >= 0 ? p->numa_node : rmpt_numa_node(i);
}

static void init_thp_worker(struct rmpt_stress *s, struct rmpt_thp_worker *w, const char *name,
			    enum rmpt_actor_kind kind, int node)
{
	memset(w, 0, sizeof(*w));
	w->s = s;
	w->name = name;
	w->node = node;
	w->rng = rmpt_rng_seed(s->p.seed, RMPT_ACTOR_ID(kind, 0));
	w->sched.hash = RMPT_HASH_INIT;
}

static void init_host_worker(struct rmpt_stress *s, struct rmpt_host_worker *w, u32 id)
{
	w->s = s;
	w->id = id;
	w->node = actor_node(&s->p, id);
	w->rng = rmpt_rng_seed(s->p.seed, RMPT_ACTOR_ID(RMPT_ACTOR_HOST, id));
	w->sched.hash = RMPT_HASH_INIT;
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

void rmpt_stress_start(struct rmpt_stress *s, const struct rmpt_stress_actors *fn)
{
	u32 i;

	pthread_barrier_init(&s->start, NULL, s->p.nr_vcpus + s->p.nr_threads + 3);
	for (i = 0; i < s->p.nr_vcpus; i++) {
		s->vcpus[i] = (struct rmpt_vcpu_worker){ .s = s, .idx = i,
							 .node = actor_node(&s->p, i) };
		create_thread(&s->vcpus[i].thread, fn->vcpu, &s->vcpus[i]);
	}
	s->hosts = calloc(s->p.nr_threads, sizeof(*s->hosts));
	TEST_ASSERT(s->hosts, "calloc of host workers: expected memory, got none");
	for (i = 0; i < s->p.nr_threads; i++) {
		init_host_worker(s, &s->hosts[i], i);
		create_thread(&s->hosts[i].thread, fn->host, &s->hosts[i]);
	}
	init_thp_worker(s, &s->splitter, "splitter", RMPT_ACTOR_SPLITTER, actor_node(&s->p, 0));
	init_thp_worker(s, &s->collapser, "collapser", RMPT_ACTOR_COLLAPSER,
			actor_node(&s->p, 1));
	create_thread(&s->splitter.thread, fn->splitter, &s->splitter);
	create_thread(&s->collapser.thread, fn->collapser, &s->collapser);

	rmpt_thp_stats_read(&s->thp_before);
	s->start_ns = rmpt_now_ns();
	s->deadline_ns = s->start_ns + s->p.duration_s * RMPT_NS_PER_S;
	pthread_barrier_wait(&s->start);
}

void rmpt_stress_join(struct rmpt_stress *s)
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

void rmpt_stress_free(struct rmpt_stress *s)
{
	u32 i;

	for (i = 0; i < s->p.nr_threads; i++) {
		free(s->hosts[i].table);
		free(s->hosts[i].discards_then);
	}
	free(s->hosts);
	rmpt_vm_free(s->rv);
}
