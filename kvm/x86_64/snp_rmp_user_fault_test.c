// SPDX-License-Identifier: GPL-2.0-only
/*
 * The host-write contract of SEV-SNP memory, case by case and flavour by
 * flavour, one KTAP result each (README.md, "Cases and what they need"):
 *
 *  - a host write to a private page never lands: SIGBUS at the exact
 *    address with BUS_ADRERR (or EFAULT through a syscall), and the
 *    guest's private data is unchanged;
 *  - a host write to a shared page lands and the guest sees it, even when
 *    the 2M THP around it must be split because one 4K of it went away.
 *
 * Each case runs in a child process with a VM of its own, so a failed
 * assertion or a stray signal fails that case alone.  The guest is a
 * small command loop driven through a control page in shared memory.
 * -X CASE inverts one case's expectation, so that the project's tests can
 * show each case's checks fail.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "test_util.h"
#include "kvm_util.h"
#include "processor.h"
#include "ucall_common.h"
#include "snp_rng.h"
#include "snp_util.h"

#define DATA_SIZE	(8 * SZ_2M)
#define DATA_PAGES	(DATA_SIZE / SZ_4K)
/* The last page: ranges 0-6 stay free for the cases. */
#define CTRL_GPA	(RMPT_DATA_GPA + DATA_SIZE - SZ_4K)
#define NR_RANGES	7
/* Private since launch on a launch_private flavour; never picked otherwise. */
#define LAUNCH_PRIVATE	(8 * SZ_4K)

/* Each page has a word the guest writes and one the host writes. */
#define GUEST_WORD	0
#define HOST_WORD	1
#define GUEST_PATTERN	0x6775657374000000UL	/* "guest" */
#define HOST_PATTERN	0x686f737400000000UL	/* "host" */
#define LAUNCH_SECRET	0x6c61756e63680000UL	/* "launch" */
#define SIGBUS_THREADS	8

enum guest_cmd {
	CMD_STAMP = 1,		/* GUEST_WORD of page i = arg + i */
	CMD_VERIFY_GUEST,	/* GUEST_WORD of page i == arg + i */
	CMD_VERIFY_HOST,	/* HOST_WORD of page i == arg + i */
	CMD_CONVERT,		/* to private if arg, else to shared */
	CMD_SPIN,		/* read the pages until ctrl->stop */
	CMD_SECRET,		/* launch_secret == arg */
	CMD_DONE,
};

struct guest_ctrl {
	u64 cmd;
	u64 gpa;
	u64 npages;
	u64 arg;
	u64 stop;
	u64 spins;
};

static bool guest_protected_state;	/* SNP: conversions and ucalls via the GHCB */
static u64 launch_secret = LAUNCH_SECRET;	/* measured at launch on snp */

static u64 *guest_page(const struct guest_ctrl *ctrl, u64 i)
{
	return (u64 *)(ctrl->gpa + i * SZ_4K);
}

static void guest_code(void)
{
	struct guest_ctrl *ctrl = (struct guest_ctrl *)CTRL_GPA;
	u64 i, got, want;
	int word;

	if (guest_protected_state)
		rmpt_snp_guest_ghcb_init(0);
	for (;;) {
		switch (READ_ONCE(ctrl->cmd)) {
		case CMD_STAMP:
			for (i = 0; i < ctrl->npages; i++)
				WRITE_ONCE(guest_page(ctrl, i)[GUEST_WORD], ctrl->arg + i);
			break;
		case CMD_VERIFY_GUEST:
		case CMD_VERIFY_HOST:
			word = ctrl->cmd == CMD_VERIFY_HOST ? HOST_WORD : GUEST_WORD;
			for (i = 0; i < ctrl->npages; i++) {
				got = READ_ONCE(guest_page(ctrl, i)[word]);
				want = ctrl->arg + i;
				__GUEST_ASSERT(got == want,
					       "GPA 0x%lx word %d: expected 0x%lx, got 0x%lx",
					       ctrl->gpa + i * SZ_4K, word, want, got);
			}
			break;
		case CMD_CONVERT:
			GUEST_ASSERT_EQ(rmpt_guest_map_gpa(guest_protected_state, ctrl->gpa,
							   ctrl->npages, ctrl->arg), 0);
			break;
		case CMD_SPIN:
			while (!READ_ONCE(ctrl->stop)) {
				for (i = 0; i < ctrl->npages; i++)
					READ_ONCE(guest_page(ctrl, i)[GUEST_WORD]);
				WRITE_ONCE(ctrl->spins, ctrl->spins + 1);
			}
			break;
		case CMD_SECRET:
			__GUEST_ASSERT(READ_ONCE(launch_secret) == ctrl->arg,
				       "launch secret: expected 0x%lx, got 0x%lx",
				       ctrl->arg, READ_ONCE(launch_secret));
			break;
		case CMD_DONE:
			GUEST_DONE();
			break;
		default:
			GUEST_FAIL("unknown command %lu", ctrl->cmd);
		}
		GUEST_SYNC(ctrl->cmd);
	}
}

struct test_ctx {
	const struct rmpt_caps *caps;
	struct rmpt_vm *rv;
	struct guest_ctrl *ctrl;
	bool inverted;		/* -X named this case: its expectation is off by one */
	u64 rng;
};

static const char *inverted_case;
static bool verbose;
static char *skip_reason;	/* shared with the case's child process */

/* A random 4K page of range r (0..NR_RANGES-1), never a launch-private one. */
static u64 random_page(struct test_ctx *ctx, int r)
{
	u64 first = r ? 0 : LAUNCH_PRIVATE / SZ_4K;

	return RMPT_DATA_GPA + r * SZ_2M +
	       (first + rmpt_rng_next(&ctx->rng) % (SZ_2M / SZ_4K - first)) * SZ_4K;
}

static void __noreturn case_skip(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(skip_reason, SZ_4K, fmt, ap);
	va_end(ap);
	exit(KSFT_SKIP);
}

static void guest_do(struct test_ctx *ctx, u64 cmd, u64 gpa, u64 npages, u64 arg)
{
	struct kvm_vcpu *vcpu = ctx->rv->vcpus[0];
	struct ucall uc;
	u32 exit_reason;
	u8 set, code;

	WRITE_ONCE(ctx->ctrl->gpa, gpa);
	WRITE_ONCE(ctx->ctrl->npages, npages);
	WRITE_ONCE(ctx->ctrl->arg, arg);
	WRITE_ONCE(ctx->ctrl->cmd, cmd);
	exit_reason = rmpt_vcpu_run(ctx->rv, vcpu);
	if (ctx->rv->ops->protected_state && rmpt_snp_term_exit(vcpu, &set, &code))
		TEST_FAIL("SNP guest asked to terminate: reason set %u code %u", set, code);
	TEST_ASSERT(exit_reason == KVM_EXIT_IO, "command %lu: expected KVM_EXIT_IO, got exit %u",
		    cmd, exit_reason);
	switch (rmpt_get_ucall(ctx->rv, vcpu, &uc)) {
	case UCALL_ABORT:
		REPORT_GUEST_ASSERT(uc);
		break;
	case UCALL_SYNC:
		TEST_ASSERT(uc.args[1] == cmd, "expected sync of command %lu, got %lu",
			    cmd, uc.args[1]);
		break;
	case UCALL_DONE:
		TEST_ASSERT(cmd == CMD_DONE, "guest done during command %lu", cmd);
		break;
	default:
		TEST_FAIL("command %lu: unexpected ucall %lu", cmd, uc.cmd);
	}
}

static void setup_guest(struct rmpt_vm *rv)
{
	u64 i;

	guest_protected_state = rv->ops->protected_state;
	sync_global_to_guest(rv->vm, guest_protected_state);
	/* The plaintext that launch measures into the launch-private pages. */
	for (i = 0; rv->ops->launch_private && i < LAUNCH_PRIVATE / sizeof(u64); i++)
		((u64 *)rv->data_hva)[i] = GUEST_PATTERN + i;
}

/* Where the host reaches private memory, or SKIP naming what is missing. */
static char *view_or_skip(struct test_ctx *ctx, u64 gpa)
{
	if (!ctx->rv->view)
		case_skip("%s", ctx->rv->view_why);
	return rmpt_view_hva(ctx->rv, gpa);
}

/*
 * Page i of a case's private pages in range r: in place since launch on a
 * launch_private flavour, else a random page the case makes private.
 */
static u64 private_page(struct test_ctx *ctx, int r, int i)
{
	if (ctx->rv->ops->launch_private)
		return RMPT_DATA_GPA + i * SZ_4K;
	return random_page(ctx, r);
}

/*
 * The guest's own private data, where the flavour converts at run time:
 * converted and stamped before the host's attempts, checked after.
 */
static void guest_private_stamp(struct test_ctx *ctx, u64 gpa)
{
	if (!ctx->rv->ops->private_mem)
		return;
	guest_do(ctx, CMD_CONVERT, gpa, 1, true);
	guest_do(ctx, CMD_STAMP, gpa, 1, GUEST_PATTERN);
}

static void guest_private_unchanged(struct test_ctx *ctx, u64 gpa)
{
	if (!ctx->rv->ops->private_mem) {
		ksft_print_msg("%s VMs give the guest no private memory: %s\n", ctx->rv->ops->name,
			       "checked that no host access completed");
		return;
	}
	guest_do(ctx, CMD_VERIFY_GUEST, gpa, 1, GUEST_PATTERN);
}

static void host_stamp(struct test_ctx *ctx, u64 gpa, u64 npages, u64 pattern)
{
	u64 i;

	for (i = 0; i < npages; i++)
		rmpt_expect_no_sigbus_write((u64 *)rmpt_data_hva(ctx->rv, gpa + i * SZ_4K) +
					    HOST_WORD, pattern + i);
}

static void shared_write_visible(struct test_ctx *ctx)
{
	u64 gpa = random_page(ctx, rmpt_rng_next(&ctx->rng) % NR_RANGES) & ~(8 * SZ_4K - 1);

	if (gpa < RMPT_DATA_GPA + LAUNCH_PRIVATE)
		gpa += LAUNCH_PRIVATE;
	host_stamp(ctx, gpa, 8, HOST_PATTERN);
	guest_do(ctx, CMD_VERIFY_HOST, gpa, 8, HOST_PATTERN + ctx->inverted);
}

static void private_write_sigbus(struct test_ctx *ctx)
{
	u64 gpa = private_page(ctx, 1, 0), boundary = RMPT_DATA_GPA + 2 * SZ_2M;
	char *targets[4] = {};
	size_t i;

	targets[0] = view_or_skip(ctx, gpa);			/* 4K page start */
	targets[1] = targets[0] + 0x128;			/* inside the page */
	if (!ctx->rv->ops->launch_private) {		/* pages the case picks */
		targets[2] = view_or_skip(ctx, boundary) - 8;	/* last word below 2M */
		targets[3] = view_or_skip(ctx, boundary);	/* first word of a 2M range */
	}

	guest_private_stamp(ctx, gpa);
	for (i = 0; i < ARRAY_SIZE(targets) && targets[i]; i++) {
		if (verbose)
			ksft_print_msg("host write and read at %p\n", targets[i]);
		rmpt_expect_sigbus(targets[i], true, ctx->inverted);
		if (!ctx->rv->ops->host_reads_private)
			rmpt_expect_sigbus(targets[i], false, ctx->inverted);
	}
	guest_private_unchanged(ctx, gpa);
}

static void private_sigbus_threads(struct test_ctx *ctx)
{
	char *addrs[SIGBUS_THREADS];
	int i, mismatches;
	u64 gpa;

	for (i = 0; i < SIGBUS_THREADS; i++) {
		gpa = private_page(ctx, i % NR_RANGES, i);
		addrs[i] = view_or_skip(ctx, gpa) + 8 * (rmpt_rng_next(&ctx->rng) % 512);
	}
	mismatches = rmpt_sigbus_storm(addrs, SIGBUS_THREADS, 500, ctx->inverted,
				       !ctx->rv->ops->host_reads_private);
	TEST_ASSERT(!mismatches,
		    "%d threads x 500 accesses: expected all to SIGBUS at their address, %d did not",
		    SIGBUS_THREADS, mismatches);
}

static void shared_alias_isolated(struct test_ctx *ctx)
{
	u64 gpa = random_page(ctx, 2), *alias;

	guest_private_stamp(ctx, gpa);
	/* The shared alias is a different page: the write lands there, not in the guest's. */
	alias = rmpt_data_hva(ctx->rv, gpa);
	rmpt_expect_no_sigbus_write(alias + GUEST_WORD, ~GUEST_PATTERN);
	rmpt_expect_no_sigbus_write(alias + HOST_WORD, ~GUEST_PATTERN);
	guest_do(ctx, CMD_VERIFY_GUEST, gpa, 1, GUEST_PATTERN + ctx->inverted);
}

struct spinner {
	struct test_ctx *ctx;
	u64 gpa;
	pthread_t tid;
};

static void *spin_vcpu(void *arg)
{
	struct spinner *s = arg;

	guest_do(s->ctx, CMD_SPIN, s->gpa, SZ_2M / SZ_4K, 0);
	return NULL;
}

/* Keep the guest reading the range while the host takes one 4K of it away. */
static void discard_under_running_guest(struct test_ctx *ctx, u64 range, u64 victim)
{
	struct spinner s = { .ctx = ctx, .gpa = range };
	int i;

	WRITE_ONCE(ctx->ctrl->stop, 0);
	WRITE_ONCE(ctx->ctrl->spins, 0);
	pthread_create(&s.tid, NULL, spin_vcpu, &s);
	for (i = 0; i < 10000 && !READ_ONCE(ctx->ctrl->spins); i++)
		usleep(1000);
	TEST_ASSERT(READ_ONCE(ctx->ctrl->spins), "the guest did not start reading the range");
	TEST_ASSERT(!rmpt_discard_shared(ctx->rv, victim, SZ_4K, MADV_DONTNEED),
		    "MADV_DONTNEED of GPA 0x%lx: %s", victim, strerror(errno));
	WRITE_ONCE(ctx->ctrl->stop, 1);
	pthread_join(s.tid, NULL);
}

static void mixed_2m_split(struct test_ctx *ctx)
{
	bool in_place = ctx->rv->ops->launch_private;
	u64 range = in_place ? RMPT_DATA_GPA :
		    RMPT_DATA_GPA + (1 + rmpt_rng_next(&ctx->rng) % (NR_RANGES - 1)) * SZ_2M;
	u64 first = in_place ? 0 : (random_page(ctx, 3) - RMPT_DATA_GPA) % SZ_2M / SZ_4K;
	u64 last = in_place ? LAUNCH_PRIVATE / SZ_4K : first + 1;
	u64 npages = SZ_2M / SZ_4K, after = last * SZ_4K, split;
	char *hva = rmpt_data_hva(ctx->rv, range);
	struct rmpt_thp_stats before, stats;
	char why[256];
	int mapped;

	if (!rmpt_thp_usable(ctx->caps, why, sizeof(why)))
		case_skip("%s", why);
	/* Fault the 2M in: the guest stamps it, or the host where the guest cannot. */
	if (in_place)
		memset(hva + after, 0, SZ_2M - after);
	else
		guest_do(ctx, CMD_STAMP, range, npages, GUEST_PATTERN);
	mapped = rmpt_pmd_mapped(hva);
	if (mapped != 1)
		case_skip("the 2M range was not PMD-mapped once touched (%d): no huge page",
			  mapped);

	/*
	 * Pages [first, last) go private: the guest converts one (its shared
	 * 4K is discarded), or they are private since launch, in place.  A
	 * flavour without private memory gets the same split from a 4K
	 * MADV_DONTNEED under the running guest.
	 */
	rmpt_thp_stats_read(&before);
	if (ctx->rv->ops->private_mem)
		guest_do(ctx, CMD_CONVERT, range + first * SZ_4K, last - first, true);
	else if (!in_place)
		discard_under_running_guest(ctx, range, range + first * SZ_4K);
	host_stamp(ctx, range, first, HOST_PATTERN);
	host_stamp(ctx, range + after, npages - last, HOST_PATTERN + last);
	rmpt_thp_stats_read(&stats);

	mapped = rmpt_pmd_mapped(hva);
	split = rmpt_thp_stat_delta(&before, &stats, RMPT_THP_SPLIT_PMD);
	TEST_ASSERT(split != RMPT_STAT_ABSENT,
		    "thp_split_pmd: expected a /proc/vmstat counter, got none (CONFIG_VM_EVENT_COUNTERS=n)");
	ksft_print_msg("%s: 4K at GPA 0x%lx taken, thp_split_pmd +%lu, PMD-mapped %d\n",
		       ctx->rv->ops->name, range + first * SZ_4K, split, mapped);
	TEST_ASSERT(mapped == ctx->inverted,
		    "2M range at GPA 0x%lx: expected PMD-mapped %d after the split, got %d",
		    range, ctx->inverted, mapped);
	TEST_ASSERT(split > 0, "thp_split_pmd: expected a positive delta, got %lu", split);
	if (in_place)
		return;
	/* The 511 other pages: the guest sees the host's writes and its own data. */
	guest_do(ctx, CMD_VERIFY_HOST, range, first, HOST_PATTERN);
	guest_do(ctx, CMD_VERIFY_HOST, range + after, npages - last, HOST_PATTERN + last);
	guest_do(ctx, CMD_VERIFY_GUEST, range, first, GUEST_PATTERN);
	guest_do(ctx, CMD_VERIFY_GUEST, range + after, npages - last, GUEST_PATTERN + last);
}

static void private_syscall_efault(struct test_ctx *ctx)
{
	u64 gpa = random_page(ctx, 4);
	char *dst = view_or_skip(ctx, gpa & ~(SZ_4K - 1));

	guest_private_stamp(ctx, gpa);
	rmpt_expect_kernel_writes(dst, SZ_4K, ctx->inverted ? 0 : -EFAULT);
	guest_private_unchanged(ctx, gpa);
}

/*
 * A guest_memfd without GUEST_MEMFD_FLAG_MMAP, the kind bound as private
 * RAM, cannot be mapped on any kernel; before 6.18 (no MMAP in
 * KVM_CAP_GUEST_MEMFD_FLAGS) no guest_memfd can, nor can one ask for MMAP.
 */
static void private_unmappable(struct test_ctx *ctx)
{
	bool kernel_maps_gmem = ctx->caps->gmem_flags & GUEST_MEMFD_FLAG_MMAP;
	int fd, err;
	void *map;

	fd = vm_create_guest_memfd(ctx->rv->vm, SZ_2M, 0);
	map = mmap(NULL, SZ_2M, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	err = map == MAP_FAILED ? errno : 0;
	if (map != MAP_FAILED)
		munmap(map, SZ_2M);
	close(fd);
	TEST_ASSERT((err == ENODEV) != ctx->inverted,
		    "mmap of a guest_memfd without MMAP: expected %s, got %s",
		    ctx->inverted ? "a mapping" : "ENODEV", err ? strerror(err) : "a mapping");
	if (kernel_maps_gmem) {
		ksft_print_msg("%s: its SIGBUS is checked by the private_* cases\n",
			       "this kernel maps guest_memfd with GUEST_MEMFD_FLAG_MMAP (6.18+)");
		return;
	}
	fd = __vm_create_guest_memfd(ctx->rv->vm, SZ_2M, GUEST_MEMFD_FLAG_MMAP);
	err = fd < 0 ? errno : 0;
	if (fd >= 0)
		close(fd);
	TEST_ASSERT(err == EINVAL,
		    "guest_memfd with MMAP on a kernel without it: expected EINVAL, got %s",
		    err ? strerror(err) : "a guest_memfd");
}

static void convert_back_shared(struct test_ctx *ctx)
{
	u64 gpa = random_page(ctx, 5);

	guest_private_stamp(ctx, gpa);
	guest_do(ctx, CMD_CONVERT, gpa, 1, false);
	host_stamp(ctx, gpa, 1, HOST_PATTERN);
	guest_do(ctx, CMD_VERIFY_HOST, gpa, 1, HOST_PATTERN + ctx->inverted);
}

/* The host's copy of a measured page is not what the guest runs with. */
static void launch_update_private(struct test_ctx *ctx)
{
	struct kvm_vm *vm = ctx->rv->vm;
	u64 *alias = addr_gpa2hva(vm, addr_gva2gpa(vm, (u64)&launch_secret));

	rmpt_expect_no_sigbus_write(alias, ~LAUNCH_SECRET);
	guest_do(ctx, CMD_SECRET, 0, 0, LAUNCH_SECRET + ctx->inverted);
}

/* legacy_v6: host reads of private pages do not fault and see ciphertext. */
static void legacy_read_ciphertext(struct test_ctx *ctx)
{
	u64 *page = rmpt_data_hva(ctx->rv, RMPT_DATA_GPA), got;
	int same = 0, i;

	for (i = 0; i < 64; i++) {
		got = rmpt_expect_no_sigbus_read(page + i);
		same += got == GUEST_PATTERN + i;
	}
	TEST_ASSERT((same == 64) == ctx->inverted,
		    "host read of a private page: expected ciphertext, got %d of 64 plaintext words",
		    same);
}

/* Which flavours a case runs on, by what the flavour does. */
enum case_needs {
	ANY_FLAVOUR,
	CONVERSIONS,		/* the guest converts at run time */
	GUEST_MEMFD,		/* private memory in guest_memfd, not in place */
	MEASURED_GMEM,		/* snp: a measured launch into guest_memfd */
	HOST_READS_PRIVATE,	/* a host read of private memory completes */
};

struct test_case {
	const char *name;
	enum case_needs needs;
	void (*run)(struct test_ctx *ctx);
};

static const struct test_case cases[] = {
	{ "shared_write_visible", ANY_FLAVOUR, shared_write_visible },
	{ "private_write_sigbus", ANY_FLAVOUR, private_write_sigbus },
	{ "private_sigbus_threads", ANY_FLAVOUR, private_sigbus_threads },
	{ "shared_alias_isolated", CONVERSIONS, shared_alias_isolated },
	{ "mixed_2m_split", ANY_FLAVOUR, mixed_2m_split },
	{ "private_syscall_efault", GUEST_MEMFD, private_syscall_efault },
	{ "private_unmappable", GUEST_MEMFD, private_unmappable },
	{ "convert_back_shared", CONVERSIONS, convert_back_shared },
	{ "launch_update_private", MEASURED_GMEM, launch_update_private },
	{ "legacy_read_ciphertext", HOST_READS_PRIVATE, legacy_read_ciphertext },
};

static bool case_runs_on(const struct test_case *tc, enum rmpt_flavour f)
{
	const struct rmpt_flavour_ops *ops = rmpt_flavour(f);

	switch (tc->needs) {
	case CONVERSIONS:
		return ops->private_mem;
	case GUEST_MEMFD:
		return !ops->launch_private;
	case MEASURED_GMEM:
		return ops->private_mem && ops->protected_state;
	case HOST_READS_PRIVATE:
		return ops->host_reads_private;
	default:
		return true;
	}
}

#define KERNEL_LOG_CASE	"kernel_log_clean"
/* For -X kernel_log_clean: a line the scan must flag, saying what it is. */
#define NEGATIVE_CHECK_LINE "snp-rmp-selftests: negative check of the kernel log scan: RMP"

static u64 case_seed(u32 seed, const char *name, enum rmpt_flavour f)
{
	u64 h = RMPT_FNV_OFFSET ^ seed ^ ((u64)f << 32);

	while (*name)
		h = rmpt_fnv_mix(h, (u8)*name++);
	return h;
}

/* One case on one flavour, in a child: its failures and signals are its own. */
static void run_case(const struct test_case *tc, const struct rmpt_caps *caps,
		     enum rmpt_flavour f, u32 seed)
{
	struct rmpt_vm_params params = {
		.flavour = f,
		.nr_vcpus = 1,
		.guest_code = guest_code,
		.data_size = DATA_SIZE,
		.backing = VM_MEM_SRC_ANONYMOUS_THP,
		.numa_node = -1,
		.launch_private_size = LAUNCH_PRIVATE,
		.setup = setup_guest,
	};
	struct test_ctx ctx = {
		.caps = caps,
		.inverted = inverted_case && !strcmp(inverted_case, tc->name),
		.rng = case_seed(seed, tc->name, f),
	};
	char name[128];
	int status;
	pid_t pid;

	skip_reason[0] = '\0';
	fflush(stdout);
	pid = fork();
	TEST_ASSERT(pid >= 0, "fork: %s", strerror(errno));
	if (!pid) {
		ctx.rv = rmpt_vm_create(caps, &params);
		ctx.ctrl = rmpt_data_hva(ctx.rv, CTRL_GPA);
		tc->run(&ctx);
		guest_do(&ctx, CMD_DONE, 0, 0, 0);
		rmpt_vm_free(ctx.rv);
		exit(KSFT_PASS);
	}
	TEST_ASSERT(waitpid(pid, &status, 0) == pid, "waitpid: %s", strerror(errno));
	snprintf(name, sizeof(name), "%s.%s", tc->name, rmpt_flavour_name(f));
	if (WIFEXITED(status) && WEXITSTATUS(status) == KSFT_SKIP) {
		rmpt_test_result_skip(name, "%s", skip_reason);
		return;
	}
	if (WIFSIGNALED(status))
		ksft_print_msg("%s: killed by signal %d (%s)\n", name, WTERMSIG(status),
			       strsignal(WTERMSIG(status)));
	ksft_test_result(WIFEXITED(status) && WEXITSTATUS(status) == KSFT_PASS, "%s\n", name);
}

static void kernel_log_result(enum rmpt_flavour f, const char *marker, int mark_err)
{
	char name[64], bad[512];
	int n;

	snprintf(name, sizeof(name), KERNEL_LOG_CASE ".%s", rmpt_flavour_name(f));
	if (mark_err) {
		rmpt_test_result_skip(name, "kernel log not writable: /dev/kmsg: %s",
				      strerror(-mark_err));
		return;
	}
	if (inverted_case && !strcmp(inverted_case, KERNEL_LOG_CASE))
		TEST_ASSERT(!rmpt_kmsg_write(NEGATIVE_CHECK_LINE), "write /dev/kmsg: %s",
			    strerror(errno));
	n = rmpt_kmsg_scan(marker, bad, sizeof(bad));
	if (n < 0) {
		rmpt_test_result_skip(name, "kernel log not readable: %s%s", strerror(-n),
				      n == -ENOENT ? " (start marker not found)" : "");
		return;
	}
	if (n)
		ksft_print_msg("%d suspicious kernel log line(s), the first: %s\n", n, bad);
	ksft_test_result(!n, "%s\n", name);
}

static void run_flavour(const struct rmpt_caps *caps, enum rmpt_flavour f, u32 seed)
{
	char why[256], marker[128], name[128];
	int mark_err;
	size_t i;

	if (!rmpt_flavour_usable(caps, f, why, sizeof(why))) {
		for (i = 0; i < ARRAY_SIZE(cases); i++) {
			if (!case_runs_on(&cases[i], f))
				continue;
			snprintf(name, sizeof(name), "%s.%s", cases[i].name, rmpt_flavour_name(f));
			rmpt_test_result_skip(name, "%s", why);
		}
		snprintf(name, sizeof(name), KERNEL_LOG_CASE ".%s", rmpt_flavour_name(f));
		rmpt_test_result_skip(name, "%s", why);
		return;
	}
	mark_err = rmpt_kmsg_mark(rmpt_flavour_name(f), marker, sizeof(marker));
	for (i = 0; i < ARRAY_SIZE(cases); i++)
		if (case_runs_on(&cases[i], f))
			run_case(&cases[i], caps, f, seed);
	kernel_log_result(f, marker, mark_err);
}

static int nr_results(unsigned long flavours)
{
	int f, n = 0;
	size_t i;

	for (f = 0; f < RMPT_NR_FLAVOURS; f++) {
		if (!(flavours & BIT(f)))
			continue;
		n++;	/* kernel_log_clean */
		for (i = 0; i < ARRAY_SIZE(cases); i++)
			n += case_runs_on(&cases[i], f);
	}
	return n;
}

static bool known_case(const char *name)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(cases); i++)
		if (!strcmp(name, cases[i].name))
			return true;
	return !strcmp(name, KERNEL_LOG_CASE);
}

static void __noreturn print_usage(const char *prog, int status)
{
	fprintf(status ? stderr : stdout,
		"usage: %s [-f flavour] [-s seed] [-v] [-X case] [-h]\n"
		"  -f flavour  run one flavour: snp, sw_protected, default or legacy_v6\n"
		"              (legacy_v6 also needs SNP_RMP_LEGACY_V6=1)\n"
		"  -s seed     seed for the pages and offsets the cases pick (default 1)\n"
		"  -v          say which addresses are tried\n"
		"  -X case     invert one case's expectation: it must then fail\n"
		"              (the project's tests use this to show each check can fail)\n"
		"  -h          print this text\n", prog);
	exit(status);
}

int main(int argc, char *argv[])
{
	unsigned long flavours = GENMASK(RMPT_NR_FLAVOURS - 1, 0);
	struct rmpt_caps caps;
	enum rmpt_flavour f;
	char skip_why[256];
	char *end;
	u32 seed = 1;
	int opt;

	while ((opt = getopt(argc, argv, "f:s:vX:h")) != -1) {
		switch (opt) {
		case 'f':
			if (rmpt_flavour_parse(optarg, &f)) {
				fprintf(stderr, "unknown flavour '%s'\n", optarg);
				print_usage(argv[0], KSFT_FAIL);
			}
			flavours = BIT(f);
			break;
		case 's':
			errno = 0;
			seed = strtoul(optarg, &end, 0);
			if (errno || *end || !*optarg) {
				fprintf(stderr, "bad seed '%s'\n", optarg);
				print_usage(argv[0], KSFT_FAIL);
			}
			break;
		case 'v':
			verbose = true;
			break;
		case 'X':
			if (!known_case(optarg)) {
				fprintf(stderr, "unknown case '%s'\n", optarg);
				print_usage(argv[0], KSFT_FAIL);
			}
			inverted_case = optarg;
			break;
		case 'h':
			print_usage(argv[0], KSFT_PASS);
		default:
			print_usage(argv[0], KSFT_FAIL);
		}
	}
	if (optind < argc) {
		fprintf(stderr, "unexpected argument '%s'\n", argv[optind]);
		print_usage(argv[0], KSFT_FAIL);
	}

	rmpt_caps_probe(&caps);
	if (!rmpt_flavour_usable(&caps, RMPT_DEFAULT, skip_why, sizeof(skip_why)))
		ksft_exit_skip("%s\n", skip_why);
	skip_reason = mmap(NULL, SZ_4K, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	TEST_ASSERT(skip_reason != MAP_FAILED, "mmap: %s", strerror(errno));

	ksft_print_header();
	ksft_set_plan(nr_results(flavours));
	rmpt_caps_print(&caps);
	ksft_print_msg("seed %u%s%s\n", seed, inverted_case ? ", inverted case " : "",
		       inverted_case ? inverted_case : "");
	for (f = 0; f < RMPT_NR_FLAVOURS; f++)
		if (flavours & BIT(f))
			run_flavour(&caps, f, seed);
	munmap(skip_reason, SZ_4K);
	/* kselftest counts an all-SKIP run as a pass; it is a skip. */
	if (!ksft_get_pass_cnt() && !ksft_get_fail_cnt()) {
		ksft_print_msg("no case could run on the flavours asked for\n");
		ksft_print_cnts();
		exit(KSFT_SKIP);
	}
	ksft_finished();
}
