// SPDX-License-Identifier: GPL-2.0-only
/*
 * The metrics document of a run of snp_thp_split_stress (schema
 * snp-rmp-metrics/1, include/snp_stress.h): the named numbers a gate
 * compares, then the machine, the parameters, the invariants (each must be
 * 0 for the run to pass, whatever reads the document), one entry per actor
 * and one per NUMA node.  Built on lib/metrics.c's JSON writer; it reads
 * this test's actors, so it sits here and not in lib/metrics.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "snp_stress.h"

size_t rmpt_stress_metrics(struct rmpt_stress *s, const struct rmpt_stress_totals *t,
			   struct rmpt_metric *m)
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
	TEST_ASSERT(n <= RMPT_STRESS_NR_METRICS, "metrics: expected at most %d, got %zu",
		    RMPT_STRESS_NR_METRICS, n);
	return n;
}

static void json_env(struct rmpt_json *j, struct rmpt_stress *s)
{
	char buf[512];

	rmpt_json_object_begin(j, "env");
	rmpt_env_kernel(buf, sizeof(buf));
	rmpt_json_string(j, "kernel", buf);
	rmpt_json_string(j, "flavour", rmpt_flavour_name(s->p.flavour));
	rmpt_json_string(j, "thp", rmpt_thp_mode_name(s->caps.thp));
	rmpt_env_cpu_model(buf, sizeof(buf));
	rmpt_json_string(j, "cpu", buf);
	rmpt_json_u64(j, "nodes", rmpt_numa_nodes());
	rmpt_json_u64(j, "host_cpus", sysconf(_SC_NPROCESSORS_ONLN));
	rmpt_json_bool(j, "private_view", s->rv->view);
	rmpt_json_object_end(j);
}

static void json_params(struct rmpt_json *j, struct rmpt_stress *s)
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
	rmpt_json_u64(j, "probe_one_in", RMPT_PROBE_ONE_IN);
	rmpt_json_u64(j, "punch_one_in", RMPT_PUNCH_ONE_IN);
	rmpt_json_u64(j, "split_gap_us", RMPT_SPLIT_GAP_US);
	rmpt_json_u64(j, "collapse_gap_us", RMPT_COLLAPSE_GAP_US);
	rmpt_json_string(j, "inject", rmpt_inject_names[s->p.inject]);
	rmpt_json_object_end(j);
}

/* Every entry must be 0 for the run to pass, whatever reads the document. */
static void json_invariants(struct rmpt_json *j, struct rmpt_stress *s,
			    const struct rmpt_stress_totals *t)
{
	rmpt_json_object_begin(j, "invariants");
	rmpt_json_u64(j, "unexpected_sigbus", t->unexpected);
	rmpt_json_u64(j, "missed_sigbus", t->missed);
	rmpt_json_u64(j, "stamp_mismatches", t->host_mismatches + t->guest_mismatches);
	rmpt_json_u64(j, "stamp_mismatches_host", t->host_mismatches);
	rmpt_json_u64(j, "stamp_mismatches_guest", t->guest_mismatches);
	rmpt_json_u64(j, "kvm_run_errors", t->run_errors + t->conv_errors);
	rmpt_json_u64(j, "no_splits", rmpt_stress_thp_checks_apply(s) &&
		      (!t->splits || t->splits == RMPT_STAT_ABSENT || !s->splitter.observed));
	rmpt_json_u64(j, "no_collapses", rmpt_stress_thp_checks_apply(s) &&
		      (!t->collapses || t->collapses == RMPT_STAT_ABSENT ||
		       !s->collapser.observed));
	rmpt_json_u64(j, "kernel_log_bad_lines", t->kmsg_bad > 0 ? t->kmsg_bad : 0);
	rmpt_json_object_end(j);
}

static void json_host_thread(struct rmpt_json *j, const struct rmpt_host_worker *w)
{
	u64 ns = w->end_ns - w->start_ns;

	rmpt_json_object_begin(j, NULL);
	rmpt_json_string(j, "actor", "host");
	rmpt_json_u64(j, "id", w->id);
	rmpt_json_i64(j, "node", w->node);
	rmpt_json_u64(j, "ops", w->ops);
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

static void json_vcpu(struct rmpt_json *j, struct rmpt_stress *s, u32 i, u64 ns)
{
	const struct rmpt_guest_stats *st = &s->ctl->vcpu[i];

	rmpt_json_object_begin(j, NULL);
	rmpt_json_string(j, "actor", "vcpu");
	rmpt_json_u64(j, "id", i);
	rmpt_json_i64(j, "node", s->vcpus[i].node);
	rmpt_json_u64(j, "ops", st->ops);
	rmpt_json_u64(j, "stamps", st->stamps);
	rmpt_json_double(j, "stamps_per_s", rmpt_rate(st->stamps, ns));
	rmpt_json_u64(j, "conversions", st->conversions);
	rmpt_json_u64(j, "zero_words", st->zero_words);
	rmpt_json_u64(j, "mismatches", st->mismatches);
	rmpt_json_u64(j, "ucalls", s->vcpus[i].syncs);
	rmpt_json_u64(j, "errors", s->vcpus[i].errors + st->conv_errors);
	rmpt_json_object_end(j);
}

static void json_thp_worker(struct rmpt_json *j, const struct rmpt_thp_worker *w)
{
	rmpt_json_object_begin(j, NULL);
	rmpt_json_string(j, "actor", w->name);
	rmpt_json_u64(j, "id", 0);
	rmpt_json_i64(j, "node", w->node);
	rmpt_json_u64(j, "ops", w->ops);
	rmpt_json_double(j, "ops_per_s", rmpt_rate(w->ops, w->end_ns - w->start_ns));
	rmpt_json_u64(j, "on_pmd", w->on_pmd);
	rmpt_json_u64(j, "observed", w->observed);
	rmpt_json_u64(j, "punches", w->punches);
	rmpt_json_u64(j, "already_huge", w->already_huge);
	rmpt_json_u64(j, "eagain", w->eagain);
	rmpt_json_u64(j, "errors", w->errors);
	rmpt_json_object_end(j);
}

static void json_per_thread(struct rmpt_json *j, struct rmpt_stress *s,
			    const struct rmpt_stress_totals *t)
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
static void json_node(struct rmpt_json *j, struct rmpt_stress *s, int node, u64 ns)
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
		chunks += (s->p.numa_node >= 0 ? s->p.numa_node : rmpt_numa_node(c)) == node;

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

static void json_per_node(struct rmpt_json *j, struct rmpt_stress *s,
			  const struct rmpt_stress_totals *t)
{
	int i, nodes = s->p.numa_node >= 0 ? 1 : rmpt_numa_nodes();

	rmpt_json_array_begin(j, "per_node");
	for (i = 0; i < nodes; i++)
		json_node(j, s, s->p.numa_node >= 0 ? s->p.numa_node : rmpt_numa_node(i),
			  t->elapsed_ns);
	rmpt_json_array_end(j);
}

/* The document, in memory first: a file is only ever written whole. */
int rmpt_stress_write_metrics(struct rmpt_stress *s, const struct rmpt_stress_totals *t,
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
	rmpt_json_string(&j, "test", RMPT_STRESS_NAME);
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

