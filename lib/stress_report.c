// SPDX-License-Identifier: GPL-2.0-only
/*
 * The end of a run of snp_thp_split_stress (include/snp_stress.h): the
 * actors' counts summed, the first failure of each actor in words, the
 * schedule hash each actor kept, the metrics, then the nine results.
 *
 * kselftest.h keeps its counters per source file and ksft_finished() in
 * the program reads the program's, so the results are emitted through the
 * program's rmpt_result_fn; everything else is printed from here.
 */
#include <stdio.h>
#include <string.h>

#include "snp_stress.h"

static void sum_hosts(struct rmpt_stress *s, struct rmpt_stress_totals *t)
{
	struct rmpt_host_worker *w;
	u32 i;

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
}

static void sum_vcpus(struct rmpt_stress *s, struct rmpt_stress_totals *t)
{
	const struct rmpt_guest_stats *st;
	u32 i;

	for (i = 0; i < s->p.nr_vcpus; i++) {
		st = &s->ctl->vcpu[i];
		t->run_errors += s->vcpus[i].errors;
		t->guest_mismatches += st->mismatches;
		t->conv_errors += st->conv_errors;
		t->guest_stamps += st->stamps;
		t->conversions += st->conversions;
	}
}

static void scan_kmsg(struct rmpt_stress *s, struct rmpt_stress_totals *t)
{
	t->kmsg_bad = s->kmsg_err ? s->kmsg_err :
		      rmpt_kmsg_scan(s->kmsg_marker, t->kmsg_first, sizeof(t->kmsg_first));
	if (s->p.inject == RMPT_INJECT_KMSG && t->kmsg_bad >= 0) {	/* test-only */
		if (!t->kmsg_bad++)
			snprintf(t->kmsg_first, sizeof(t->kmsg_first),
				 "injected by SNP_RMP_STRESS_INJECT=kmsg");
	}
}

void rmpt_stress_sum_up(struct rmpt_stress *s, struct rmpt_stress_totals *t)
{
	memset(t, 0, sizeof(*t));
	rmpt_hist_init(&t->fault_lat);
	rmpt_hist_init(&t->sigbus_lat);
	sum_hosts(s, t);
	sum_vcpus(s, t);
	t->splits = rmpt_thp_stat_delta(&s->thp_before, &s->thp_after, RMPT_THP_SPLIT_PMD);
	t->collapses = rmpt_thp_stat_delta(&s->thp_before, &s->thp_after,
					   RMPT_THP_COLLAPSE_ALLOC);
	t->elapsed_ns = s->end_ns - s->start_ns;
	scan_kmsg(s, t);
}

static void print_first_failures(struct rmpt_stress *s)
{
	const struct rmpt_guest_stats *st;
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
static void print_run_schedule(struct rmpt_stress *s)
{
	u32 i;

	for (i = 0; i < s->p.nr_vcpus; i++)
		rmpt_sched_print("vcpu", i, s->ctl->vcpu[i].sched_ops, s->ctl->vcpu[i].sched_hash,
				 true);
	for (i = 0; i < s->p.nr_threads; i++)
		rmpt_sched_print("host", i, s->hosts[i].sched.ops, s->hosts[i].sched.hash, true);
	rmpt_sched_print("splitter", 0, s->splitter.sched.ops, s->splitter.sched.hash, true);
	rmpt_sched_print("collapser", 0, s->collapser.sched.ops, s->collapser.sched.hash, true);
}

static void report_counts(struct rmpt_stress *s, const struct rmpt_stress_totals *t)
{
	const struct rmpt_thp_worker *sp = &s->splitter, *co = &s->collapser;

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
static void report_thp(struct rmpt_stress *s, const char *name, u64 vmstat,
		       const struct rmpt_thp_worker *w, rmpt_result_fn *result)
{
	bool observed = w->observed || w->pmd_errno;

	if (!rmpt_stress_thp_checks_apply(s)) {
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

static void report_conversions(struct rmpt_stress *s, const struct rmpt_stress_totals *t,
			       rmpt_result_fn *result)
{
	if (s->conv == RMPT_CONV_NONE) {
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

static void report_kmsg(const struct rmpt_stress_totals *t, rmpt_result_fn *result)
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

static void report_invariant(const char *name, u64 count, const char *what,
			     rmpt_result_fn *result)
{
	char subtest[64];

	ksft_print_msg("%s: %lu (%s)\n", name, count, what);
	snprintf(subtest, sizeof(subtest), "no_%s", name);
	result(!count ? KSFT_PASS : KSFT_FAIL, subtest, NULL);
}

void rmpt_stress_report(struct rmpt_stress *s, const struct rmpt_stress_totals *t,
			rmpt_result_fn *result)
{
	struct rmpt_metric m[RMPT_STRESS_NR_METRICS];
	size_t n = rmpt_stress_metrics(s, t, m);
	int err = 0;

	report_counts(s, t);
	print_first_failures(s);
	print_run_schedule(s);
	rmpt_metrics_print(m, n);
	if (s->p.out_path)
		err = rmpt_stress_write_metrics(s, t, m, n);

	report_invariant("unexpected_sigbus", t->unexpected, "shared accesses that faulted",
			 result);
	if (s->rv->view)
		report_invariant("missed_sigbus", t->missed,
				 "private accesses without SIGBUS BUS_ADRERR at the address",
				 result);
	else
		result(KSFT_SKIP, "no_missed_sigbus", s->rv->view_why);
	report_invariant("stamp_mismatch", t->host_mismatches + t->guest_mismatches,
			 "host and guest checks", result);
	report_invariant("kvm_run_error", t->run_errors + t->conv_errors,
			 "KVM_RUN failures, unexpected exits, guest aborts, failed conversions",
			 result);
	report_thp(s, "thp_splits_seen", t->splits, &s->splitter, result);
	report_thp(s, "thp_collapses_seen", t->collapses, &s->collapser, result);
	report_conversions(s, t, result);
	report_kmsg(t, result);
	if (!s->p.out_path) {
		result(KSFT_SKIP, "metrics_written", "no -o and no SNP_RMP_METRICS");
		return;
	}
	ksft_print_msg("metrics: %s: %s\n", s->p.out_path, err ? strerror(-err) : "written");
	result(!err ? KSFT_PASS : KSFT_FAIL, "metrics_written", NULL);
}
