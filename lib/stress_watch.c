// SPDX-License-Identifier: GPL-2.0-only
/*
 * Watching a run of snp_thp_split_stress (include/snp_stress.h) from the
 * main thread: until the deadline, until every actor is done, or until the
 * first broken invariant, whichever comes first, with a progress line now
 * and then; then every actor, guest included, is told to stop.
 */
#include "snp_stress.h"

#define MONITOR_TICK_US		100000
#define PROGRESS_EVERY_S	10

static void stop_all(struct rmpt_stress *s)
{
	__atomic_store_n(&s->stop, 1, __ATOMIC_RELAXED);
	WRITE_ONCE(s->ctl->stop, 1);
}

static u64 read_count(const u64 *counter)
{
	return __atomic_load_n(counter, __ATOMIC_ACQUIRE);
}

static bool all_finished(struct rmpt_stress *s)
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
static u64 failures_so_far(struct rmpt_stress *s)
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

static void print_progress(struct rmpt_stress *s, u64 now)
{
	u64 host = 0, guest = 0;
	u32 i;

	for (i = 0; i < s->p.nr_threads; i++)
		host += READ_ONCE(s->hosts[i].ops);
	for (i = 0; i < s->p.nr_vcpus; i++)
		guest += READ_ONCE(s->ctl->vcpu[i].stamps);
	ksft_print_msg("t=%lus: host ops %lu, guest stamps %lu, splits %lu, collapses %lu\n",
		       (now - s->start_ns) / RMPT_NS_PER_S, host, guest,
		       READ_ONCE(s->splitter.observed), READ_ONCE(s->collapser.observed));
}

/* Until the deadline, all actors done, or the first broken invariant. */
void rmpt_stress_monitor(struct rmpt_stress *s)
{
	u64 next = s->start_ns + PROGRESS_EVERY_S * RMPT_NS_PER_S, now;

	for (;;) {
		rmpt_sleep_us(MONITOR_TICK_US);
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
			next += PROGRESS_EVERY_S * RMPT_NS_PER_S;
		}
	}
	stop_all(s);
}
