// SPDX-License-Identifier: GPL-2.0-only
/*
 * What each kernel operation of the contract costs, timed around the one
 * syscall, fault or KVM_RUN that does it, for regression gating:
 *
 *   thp_fault         first write to an empty 2M range: a THP fault-in
 *                     after a discard (clear_huge_page() of 2M included)
 *   pmd_split         a 4K MADV_DONTNEED inside a PMD-mapped THP
 *   collapse          MADV_COLLAPSE of that 2M again
 *   sigbus            a host write to private memory (guest_memfd mmap,
 *                     6.18+): the fault, the SIGBUS, back to the writer
 *   punch_hole        fallocate(OP_PUNCH_HOLE) of one allocated guest_memfd 4K
 *   set_attributes    KVM_SET_MEMORY_ATTRIBUTES of 4K, to private or back
 *   guest_conversion  one conversion to private as the guest sees it, from
 *                     its hypercall (or SNP page state change) to its
 *                     return, in the guest's TSC
 *   kvm_run_exit      one KVM_RUN from entry to the guest's next conversion
 *                     exit: entry, a few guest instructions, the exit
 *
 * Each operation is a KTAP result whose post-condition is checked (the
 * split left no PMD, the collapse made one, the SIGBUS came at the
 * address with BUS_ADRERR), or a SKIP naming what is missing.  Its
 * metrics: <op>_rel_p50, the gated figure, is the median over that of a
 * fixed userspace loop timed beside each sample; p50, p90, p99 and min in
 * ns (CLOCK_MONOTONIC), the count and the p50 of thread CPU time
 * (CLOCK_THREAD_CPUTIME_ID) are for information.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <linux/falloc.h>

#include "test_util.h"
#include "kvm_util.h"
#include "processor.h"
#include "ucall_common.h"
#include "snp_metrics.h"
#include "snp_util.h"

#define TEST_NAME		"snp_op_perf_test"
#define DEFAULT_ITERS		200
#define QUICK_ITERS		50
#define MAX_ITERS		1000000
#define CALIBRATION_LOOPS	10000
#define COLLAPSE_TRIES		100
/* The guest's samples fill the first page of the data region. */
#define MAX_GUEST_ITERS		(SZ_4K / sizeof(u64))

enum op {
	OP_THP_FAULT,
	OP_PMD_SPLIT,
	OP_COLLAPSE,
	OP_SIGBUS,
	OP_PUNCH_HOLE,
	OP_SET_ATTRIBUTES,
	OP_GUEST_CONVERSION,
	OP_KVM_RUN_EXIT,
	NR_OPS,
};

static const char *const op_names[NR_OPS] = {
	[OP_THP_FAULT] = "thp_fault",
	[OP_PMD_SPLIT] = "pmd_split",
	[OP_COLLAPSE] = "collapse",
	[OP_SIGBUS] = "sigbus",
	[OP_PUNCH_HOLE] = "punch_hole",
	[OP_SET_ATTRIBUTES] = "set_attributes",
	[OP_GUEST_CONVERSION] = "guest_conversion",
	[OP_KVM_RUN_EXIT] = "kvm_run_exit",
};

struct op_result {
	int code;		/* KSFT_PASS, KSFT_FAIL or KSFT_SKIP */
	char why[256];
	struct rmpt_hist wall;
	struct rmpt_hist cpu;	/* empty where the guest's own clock times it */
	/* For exact medians: wall clock, and the calibration loop beside each sample. */
	u64 *samples, *calib;
	size_t nr_samples, nr_calib;
};

static struct op_result ops[NR_OPS];
static struct rmpt_caps caps;
static u64 iters = DEFAULT_ITERS;

static __printf(3, 4) void op_end(enum op op, int code, const char *fmt, ...)
{
	va_list ap;

	/* The first failure or skip stands. */
	if (ops[op].code != KSFT_PASS)
		return;
	ops[op].code = code;
	va_start(ap, fmt);
	vsnprintf(ops[op].why, sizeof(ops[op].why), fmt, ap);
	va_end(ap);
}

static u64 cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return timespec_to_ns(ts);
}

struct clock_start {
	u64 cpu;
	u64 wall;
};

/* Wall clock inside CPU time, so that the gated figure holds only the op. */
static struct clock_start clock_start(void)
{
	struct clock_start t = { .cpu = cpu_ns() };

	t.wall = rmpt_now_ns();
	return t;
}

/*
 * A fixed amount of plain CPU work in user space, timed right after each
 * sample: how fast this machine runs at that moment.  An operation's
 * p50 over it cancels what slows the whole machine (other tenants, an
 * emulating hypervisor) and keeps what slows the kernel alone.
 */
static u64 calibration_sink;

static void calibrate(enum op op)
{
	u64 x = 1, i, t0 = rmpt_now_ns();

	for (i = 0; i < CALIBRATION_LOOPS; i++)
		x = x * 6364136223846793005ULL + i;
	WRITE_ONCE(calibration_sink, x);
	if (ops[op].nr_calib < 2 * iters)
		ops[op].calib[ops[op].nr_calib++] = rmpt_now_ns() - t0;
}

static void record_wall(enum op op, u64 ns)
{
	struct op_result *r = &ops[op];

	rmpt_hist_record(&r->wall, ns);
	if (r->nr_samples < 2 * iters)
		r->samples[r->nr_samples++] = ns;
}

static void clock_stop(enum op op, struct clock_start t)
{
	record_wall(op, rmpt_now_ns() - t.wall);
	rmpt_hist_record(&ops[op].cpu, cpu_ns() - t.cpu);
	calibrate(op);
}

static void measure_thp(void)
{
	struct clock_start t;
	char why[256], *map, *p;
	u64 i, unsplit = 0;
	int ret, op, tries;

	if (!rmpt_thp_usable(&caps, why, sizeof(why))) {
		for (op = OP_THP_FAULT; op <= OP_COLLAPSE; op++)
			op_end(op, KSFT_SKIP, "%s", why);
		return;
	}
	map = mmap(NULL, 2 * SZ_2M, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	TEST_ASSERT(map != MAP_FAILED, "mmap of 4M: %s", strerror(errno));
	p = align_ptr_up(map, SZ_2M);
	madvise(p, SZ_2M, MADV_HUGEPAGE);

	for (i = 0; i < iters; i++) {
		TEST_ASSERT(!madvise(p, SZ_2M, MADV_DONTNEED), "MADV_DONTNEED of 2M: %s",
			    strerror(errno));
		t = clock_start();
		WRITE_ONCE(*(u64 *)p, i);
		clock_stop(OP_THP_FAULT, t);
		if (rmpt_pmd_mapped(p) != 1) {
			op_end(OP_THP_FAULT, KSFT_SKIP, "a write to an empty 2M mapped no THP");
			break;
		}
		t = clock_start();
		ret = madvise(p + SZ_4K * (1 + i % 511), SZ_4K, MADV_DONTNEED);
		clock_stop(OP_PMD_SPLIT, t);
		TEST_ASSERT(!ret, "MADV_DONTNEED of 4K: %s", strerror(errno));
		unsplit += rmpt_pmd_mapped(p) != 0;
		/* EAGAIN: a passing shortage (no free 2M, a lock); time the try that worked. */
		for (tries = 1;; tries++) {
			t = clock_start();
			ret = rmpt_collapse(p, SZ_2M);
			if (ret != -EAGAIN || tries == COLLAPSE_TRIES)
				break;
			usleep(1000);
		}
		clock_stop(OP_COLLAPSE, t);
		if (ret) {
			/* Not supported here, or no 2M page to be had: a SKIP, not a kernel bug. */
			op_end(OP_COLLAPSE,
			       ret == -EINVAL || ret == -EAGAIN ? KSFT_SKIP : KSFT_FAIL,
			       "MADV_COLLAPSE: %s, %d tries", strerror(errno), tries);
			break;
		}
		if (rmpt_pmd_mapped(p) != 1)
			op_end(OP_COLLAPSE, KSFT_FAIL,
			       "MADV_COLLAPSE succeeded: expected a PMD mapping, got none");
	}
	/* khugepaged may collapse the 511 pages back before the check looks. */
	if (unsplit > i / 100 + 1)
		op_end(OP_PMD_SPLIT, KSFT_FAIL,
		       "4K MADV_DONTNEED: expected the THP split, got still PMD-mapped %lu times of %lu",
		       unsplit, i);
	munmap(map, 2 * SZ_2M);
}

static void measure_sigbus(struct kvm_vm *vm)
{
	struct clock_start t;
	struct rmpt_fault f;
	char why[256], *map;
	bool done;
	int fd;
	u64 i;

	if (!rmpt_gmem_mmap_usable(&caps, why, sizeof(why))) {
		op_end(OP_SIGBUS, KSFT_SKIP, "%s", why);
		return;
	}
	/* MMAP without INIT_SHARED: every page is private to the host. */
	fd = vm_create_guest_memfd(vm, SZ_2M, GUEST_MEMFD_FLAG_MMAP);
	map = mmap(NULL, SZ_2M, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	TEST_ASSERT(map != MAP_FAILED, "mmap of a guest_memfd: %s", strerror(errno));
	rmpt_sigbus_init();
	for (i = 0; i < iters; i++) {
		char *addr = map + (i % 512) * SZ_4K + 8 * (i % 7);

		t = clock_start();
		done = rmpt_try_write(addr, i, &f);
		clock_stop(OP_SIGBUS, t);
		if (done || rmpt_check_sigbus(&f, addr, BUS_ADRERR, why, sizeof(why))) {
			op_end(OP_SIGBUS, KSFT_FAIL, "host write at %p: %s", addr,
			       f.faulted ? why : "completed, expected SIGBUS");
			break;
		}
	}
	munmap(map, SZ_2M);
	close(fd);
}

static void measure_punch_hole(struct kvm_vm *vm)
{
	int fd = __vm_create_guest_memfd(vm, SZ_2M, 0), ret;
	struct clock_start t;
	u64 i, off;

	if (fd < 0) {
		op_end(OP_PUNCH_HOLE, KSFT_SKIP, "KVM_CREATE_GUEST_MEMFD on a default VM: %s",
		       strerror(errno));
		return;
	}
	for (i = 0; i < iters; i++) {
		off = (i % 512) * SZ_4K;
		TEST_ASSERT(!fallocate(fd, FALLOC_FL_KEEP_SIZE, off, SZ_4K),
			    "fallocate of 4K of a guest_memfd: %s", strerror(errno));
		t = clock_start();
		ret = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, SZ_4K);
		clock_stop(OP_PUNCH_HOLE, t);
		if (ret) {
			op_end(OP_PUNCH_HOLE, KSFT_FAIL, "PUNCH_HOLE of 4K: %s", strerror(errno));
			break;
		}
	}
	close(fd);
}

static void measure_set_attributes(void)
{
	struct kvm_memory_attributes attr = { .size = SZ_4K };
	struct clock_start t;
	struct kvm_vm *vm;
	char why[256];
	int ret;
	u64 i;

	if (!rmpt_flavour_usable(&caps, RMPT_SW_PROTECTED, why, sizeof(why))) {
		op_end(OP_SET_ATTRIBUTES, KSFT_SKIP, "%s", why);
		return;
	}
	vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	/* Sample 2i makes a 4K private, sample 2i + 1 makes it shared again. */
	for (i = 0; i < 2 * iters; i++) {
		attr.address = RMPT_DATA_GPA + (i / 2 % 512) * SZ_4K;
		attr.attributes = i % 2 ? 0 : KVM_MEMORY_ATTRIBUTE_PRIVATE;
		t = clock_start();
		ret = ioctl(vm->fd, KVM_SET_MEMORY_ATTRIBUTES, &attr);
		clock_stop(OP_SET_ATTRIBUTES, t);
		if (ret) {
			op_end(OP_SET_ATTRIBUTES, KSFT_FAIL, "KVM_SET_MEMORY_ATTRIBUTES of 4K: %s",
			       strerror(errno));
			break;
		}
	}
	kvm_vm_free(vm);
}

static bool guest_protected_state;
static u64 guest_iters;

/* Page 0 of the data region takes the samples, page 1 is converted. */
static void guest_code(void)
{
	u64 *cycles = (u64 *)RMPT_DATA_GPA, gpa = RMPT_DATA_GPA + SZ_4K, i, t0;

	if (guest_protected_state)
		rmpt_snp_guest_ghcb_init(0);
	for (i = 0; i < guest_iters; i++) {
		t0 = rdtsc();
		GUEST_ASSERT_EQ(rmpt_guest_map_gpa(guest_protected_state, gpa, 1, true), 0);
		WRITE_ONCE(cycles[i], rdtsc() - t0);
		GUEST_ASSERT_EQ(rmpt_guest_map_gpa(guest_protected_state, gpa, 1, false), 0);
	}
	GUEST_DONE();
}

static void setup_guest(struct rmpt_vm *rv)
{
	guest_protected_state = rv->ops->protected_state;
	guest_iters = min(iters, MAX_GUEST_ITERS);
	sync_global_to_guest(rv->vm, guest_protected_state);
	sync_global_to_guest(rv->vm, guest_iters);
}

/* Run the guest to its end, timing each KVM_RUN that ends in a conversion. */
static void run_conversions(struct rmpt_vm *rv)
{
	struct kvm_vcpu *vcpu = rv->vcpus[0];
	struct kvm_run *run = vcpu->run;
	struct clock_start t;
	struct ucall uc;
	u64 wall, ucall;
	int err;

	for (;;) {
		t = clock_start();
		err = rmpt_snp_vcpu_try_run(vcpu);
		wall = rmpt_now_ns();
		TEST_ASSERT(!err, "KVM_RUN: %s", strerror(err));
		if (run->exit_reason != KVM_EXIT_HYPERCALL ||
		    run->hypercall.nr != KVM_HC_MAP_GPA_RANGE)
			break;
		record_wall(OP_KVM_RUN_EXIT, wall - t.wall);
		rmpt_hist_record(&ops[OP_KVM_RUN_EXIT].cpu, cpu_ns() - t.cpu);
		calibrate(OP_KVM_RUN_EXIT);
		rmpt_map_gpa_range_exit(rv, run);
	}
	ucall = rmpt_get_ucall(rv, vcpu, &uc);
	if (ucall == UCALL_ABORT)
		REPORT_GUEST_ASSERT(uc);
	TEST_ASSERT(ucall == UCALL_DONE, "expected the guest done, got exit %u, ucall %lu",
		    run->exit_reason, uc.cmd);
}

static void measure_conversions(void)
{
	struct rmpt_vm_params params = {
		.flavour = RMPT_SNP,
		.nr_vcpus = 1,
		.guest_code = guest_code,
		.data_size = SZ_2M,
		.backing = VM_MEM_SRC_ANONYMOUS,
		.numa_node = -1,
		.setup = setup_guest,
	};
	char why[600], snp[256], swp[256];
	u64 *cycles, khz, i;
	struct rmpt_vm *rv;

	if (!rmpt_flavour_usable(&caps, RMPT_SNP, snp, sizeof(snp))) {
		params.flavour = RMPT_SW_PROTECTED;
		if (!rmpt_flavour_usable(&caps, RMPT_SW_PROTECTED, swp, sizeof(swp))) {
			snprintf(why, sizeof(why), "snp: %s; sw_protected: %s", snp, swp);
			op_end(OP_GUEST_CONVERSION, KSFT_SKIP, "%s", why);
			op_end(OP_KVM_RUN_EXIT, KSFT_SKIP, "%s", why);
			return;
		}
	}
	rv = rmpt_vm_create(&caps, &params);
	run_conversions(rv);
	/* The rate of the guest's TSC, which KVM may scale from the host's. */
	khz = ioctl(rv->vcpus[0]->fd, KVM_GET_TSC_KHZ, NULL);
	TEST_ASSERT((long)khz > 0, "KVM_GET_TSC_KHZ: expected a rate, got %ld", (long)khz);
	cycles = rmpt_data_hva(rv, RMPT_DATA_GPA);
	for (i = 0; i < guest_iters; i++)
		record_wall(OP_GUEST_CONVERSION, cycles[i] * 1000000 / khz);
	ksft_print_msg("conversions on a %s VM, guest TSC %lu kHz\n", rv->ops->name, khz);
	rmpt_vm_free(rv);
}

#define METRICS_PER_OP	7

static int cmp_u64(const void *a, const void *b)
{
	u64 x = *(const u64 *)a, y = *(const u64 *)b;

	return x < y ? -1 : x > y;
}

/* Exact, unlike the histogram's 3 % buckets, which a 10 % change crosses few of. */
static u64 median(u64 *v, size_t n)
{
	qsort(v, n, sizeof(u64), cmp_u64);
	return v[n / 2];
}

/* Gated: the p50 over the calibration loop's; the rest, in ns, informs. */
static size_t op_metrics(enum op op, struct rmpt_metric *m, char names[][64])
{
	struct op_result *r = &ops[op];
	/* The guest's own clock times its conversions; the KVM_RUNs around them calibrate. */
	struct op_result *c = r->nr_calib ? r : &ops[OP_KVM_RUN_EXIT];
	u64 p50 = median(r->samples, r->nr_samples);
	const struct rmpt_metric all[METRICS_PER_OP] = {
		{ "rel_p50", (double)p50 / median(c->calib, c->nr_calib), "calibrations",
		  RMPT_BETTER_LOWER },
		{ "p50_ns", p50, "ns" },
		{ "p90_ns", rmpt_hist_percentile(&r->wall, 90), "ns" },
		{ "p99_ns", rmpt_hist_percentile(&r->wall, 99), "ns" },
		{ "min_ns", r->wall.min, "ns" },
		{ "count", r->wall.count, "ops" },
		{ "cpu_p50_ns", rmpt_hist_percentile(&r->cpu, 50), "ns" },
	};
	size_t i, n = r->cpu.count ? METRICS_PER_OP : METRICS_PER_OP - 1;

	for (i = 0; i < n; i++) {
		snprintf(names[i], 64, "%s_%s", op_names[op], all[i].name);
		m[i] = all[i];
		m[i].name = names[i];
	}
	return n;
}

static int write_metrics(const char *path, const struct rmpt_metric *m, size_t n)
{
	struct rmpt_json j;
	struct utsname u;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	int err;

	TEST_ASSERT(f, "open_memstream: %s", strerror(errno));
	rmpt_json_init(&j, f);
	rmpt_json_object_begin(&j, NULL);
	rmpt_json_string(&j, "schema", "snp-rmp-metrics/1");
	rmpt_json_string(&j, "test", TEST_NAME);
	rmpt_json_object_begin(&j, "env");
	rmpt_json_string(&j, "kernel", uname(&u) ? "unknown" : u.release);
	rmpt_json_object_end(&j);
	rmpt_json_object_begin(&j, "params");
	rmpt_json_u64(&j, "iterations", iters);
	rmpt_json_object_end(&j);
	rmpt_metrics_json(&j, "metrics", m, n);
	rmpt_json_object_end(&j);
	err = rmpt_json_finish(&j);
	fclose(f);
	if (!err)
		err = rmpt_write_file_atomic(path, buf, len);
	free(buf);
	return err;
}

static void report(void)
{
	struct rmpt_metric m[NR_OPS * METRICS_PER_OP];
	char names[NR_OPS * METRICS_PER_OP][64];
	const char *path = getenv("SNP_RMP_METRICS");
	size_t n = 0;
	int op, err;

	for (op = 0; op < NR_OPS; op++) {
		if (ops[op].code == KSFT_PASS && !ops[op].wall.count)
			op_end(op, KSFT_FAIL, "no sample");
		if (ops[op].code == KSFT_SKIP) {
			rmpt_test_result_skip(op_names[op], "%s", ops[op].why);
			continue;
		}
		n += op_metrics(op, m + n, names + n);
		if (ops[op].code != KSFT_PASS)
			ksft_print_msg("%s: %s\n", op_names[op], ops[op].why);
		ksft_test_result(ops[op].code == KSFT_PASS, "%s\n", op_names[op]);
	}
	rmpt_metrics_print(m, n);
	if (!path) {
		rmpt_test_result_skip("metrics_written", "no SNP_RMP_METRICS");
		return;
	}
	err = write_metrics(path, m, n);
	ksft_print_msg("metrics: %s: %s\n", path, err ? strerror(-err) : "written");
	ksft_test_result(!err, "metrics_written\n");
}

/*
 * One CPU for the whole run, the lowest one allowed: CPUs of one machine
 * differ (on a 2-vCPU cloud guest, 30 % in a THP fault), and a run that
 * moves between them measures the move.
 */
static int pin_to_one_cpu(void)
{
	cpu_set_t set;
	int cpu;

	TEST_ASSERT(!sched_getaffinity(0, sizeof(set), &set), "sched_getaffinity: %s",
		    strerror(errno));
	for (cpu = 0; !CPU_ISSET(cpu, &set); cpu++)
		;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	TEST_ASSERT(!sched_setaffinity(0, sizeof(set), &set), "sched_setaffinity to CPU %d: %s",
		    cpu, strerror(errno));
	return cpu;
}

static void __noreturn print_usage(const char *prog, int status)
{
	fprintf(status ? stderr : stdout,
		"Usage: %s [-i iterations] [-h]\n"
		"  -i N  samples per operation (default %d, %d with SNP_RMP_QUICK=1;\n"
		"        at most %lu for the guest's)\n", prog, DEFAULT_ITERS, QUICK_ITERS,
		MAX_GUEST_ITERS);
	exit(status);
}

int main(int argc, char *argv[])
{
	struct kvm_vm *vm;
	char why[256], *end;
	int opt, op;

	if (getenv("SNP_RMP_QUICK") && !strcmp(getenv("SNP_RMP_QUICK"), "1"))
		iters = QUICK_ITERS;
	while ((opt = getopt(argc, argv, "i:h")) != -1) {
		switch (opt) {
		case 'i':
			iters = strtoul(optarg, &end, 10);
			if (*end || !*optarg || !iters || iters > MAX_ITERS) {
				fprintf(stderr, "-i: expected 1 to %d samples, got '%s'\n",
					MAX_ITERS, optarg);
				print_usage(argv[0], KSFT_FAIL);
			}
			break;
		case 'h':
			print_usage(argv[0], KSFT_PASS);
		default:
			print_usage(argv[0], KSFT_FAIL);
		}
	}
	if (optind < argc)
		print_usage(argv[0], KSFT_FAIL);

	rmpt_caps_probe(&caps);
	if (!rmpt_flavour_usable(&caps, RMPT_DEFAULT, why, sizeof(why)))
		ksft_exit_skip("%s\n", why);
	for (op = 0; op < NR_OPS; op++) {
		rmpt_hist_init(&ops[op].wall);
		rmpt_hist_init(&ops[op].cpu);
		ops[op].samples = calloc(2 * iters, sizeof(u64));
		ops[op].calib = calloc(2 * iters, sizeof(u64));
		TEST_ASSERT(ops[op].samples && ops[op].calib, "calloc of 2 x %lu samples",
			    2 * iters);
	}
	ksft_print_header();
	ksft_set_plan(NR_OPS + 1);
	ksft_print_msg("%lu samples per operation, on CPU %d\n", iters, pin_to_one_cpu());

	measure_thp();
	vm = vm_create_barebones();
	measure_sigbus(vm);
	measure_punch_hole(vm);
	kvm_vm_free(vm);
	measure_set_attributes();
	measure_conversions();
	report();
	ksft_finished();
}
