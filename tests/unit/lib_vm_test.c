// SPDX-License-Identifier: GPL-2.0-only
/*
 * The library on a real VM: a default-flavour VM with a THP-backed data
 * region and a guest_memfd host view is created, run and torn down; the
 * PMD-mapping probes follow a 4K discard under it; the view SIGBUSes at
 * the exact address in 8 threads at once; nothing stays mapped after.
 * SKIPs name what is missing where /dev/kvm, THP or guest_memfd mmap are.
 */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <linux/sizes.h>

#include "test_util.h"
#include "kvm_util.h"
#include "processor.h"
#include "snp_util.h"

#define LIB_DATA_SIZE	(8 * SZ_2M)
#define LIB_PAGES	(LIB_DATA_SIZE / SZ_4K)
#define LIB_THREADS	8
#define GUEST_STAMP(i)	(0x6c69627465737400UL + (i))	/* "libtest" */

static void guest_code(void)
{
	u64 i;

	for (i = 0; i < LIB_PAGES; i++)
		WRITE_ONCE(*(u64 *)(RMPT_DATA_GPA + i * SZ_4K), GUEST_STAMP(i));
	GUEST_DONE();
}

/* Lines of /proc/self/maps naming a guest_memfd ("[kvm-gmem]"). */
static int gmem_mappings(void)
{
	char line[512];
	int n = 0;
	FILE *f;

	f = fopen("/proc/self/maps", "r");
	TEST_ASSERT(f, "open /proc/self/maps");
	while (fgets(line, sizeof(line), f))
		n += !!strstr(line, "kvm-gmem");
	fclose(f);
	return n;
}

static void run_stamping_guest(struct rmpt_vm *rv)
{
	struct ucall uc;
	u32 exit;
	u64 i, got;
	bool ok = true;

	exit = rmpt_vcpu_run(rv, rv->vcpus[0]);
	TEST_ASSERT(exit == KVM_EXIT_IO, "expected KVM_EXIT_IO, got exit %u", exit);
	if (rmpt_get_ucall(rv, rv->vcpus[0], &uc) == UCALL_ABORT)
		REPORT_GUEST_ASSERT(uc);
	TEST_ASSERT(uc.cmd == UCALL_DONE, "expected UCALL_DONE, got %lu", uc.cmd);
	for (i = 0; i < LIB_PAGES && ok; i++) {
		got = *(u64 *)rmpt_data_hva(rv, RMPT_DATA_GPA + i * SZ_4K);
		if (got != GUEST_STAMP(i)) {
			ksft_print_msg("page %lu: expected 0x%lx, got 0x%lx\n", i,
				       GUEST_STAMP(i), got);
			ok = false;
		}
	}
	ksft_test_result(ok, "guest_stamps_reach_host\n");
}

static bool says(const char *what, long got, long want)
{
	if (got != want)
		ksft_print_msg("%s: expected %ld, got %ld\n", what, want, got);
	return got == want;
}

/* The second 2M range of the data region loses one 4K under the running VM. */
static void test_split(struct rmpt_vm *rv, const struct rmpt_caps *caps)
{
	char *range = rmpt_data_hva(rv, RMPT_DATA_GPA + SZ_2M);
	struct rmpt_thp_stats before, after;
	char why[256];
	bool ok = true;

	if (!rmpt_thp_usable(caps, why, sizeof(why))) {
		ksft_test_result_skip("split_probes: %s\n", why);
		return;
	}
	ok &= says("PMD-mapped before the discard", rmpt_pmd_mapped(range), 1);
	rmpt_thp_stats_read(&before);
	ok &= says("discard", rmpt_discard_shared(rv, RMPT_DATA_GPA + SZ_2M + 5 * SZ_4K,
						  SZ_4K, MADV_DONTNEED), 0);
	rmpt_thp_stats_read(&after);
	ok &= says("PMD-mapped after the discard", rmpt_pmd_mapped(range), 0);
	ok &= says("thp_split_pmd delta > 0",
		   rmpt_thp_stat_delta(&before, &after, RMPT_THP_SPLIT_PMD) > 0, 1);
	ok &= says("neighbour page kept its stamp",
		   *(u64 *)(range + 6 * SZ_4K) == GUEST_STAMP(LIB_PAGES / 8 + 6), 1);
	ksft_test_result(ok, "split_probes\n");
}

static void test_view_sigbus_threads(struct rmpt_vm *rv)
{
	char *addrs[LIB_THREADS];
	int i;

	if (!rv->view) {
		ksft_test_result_skip("view_sigbus_8_threads: %s\n", rv->view_why);
		return;
	}
	/* Unaligned, one per 2M range: si_addr must be this very byte. */
	for (i = 0; i < LIB_THREADS; i++)
		addrs[i] = rmpt_view_hva(rv, RMPT_DATA_GPA + i * SZ_2M + 0x18 + 8 * i);
	ksft_test_result(!rmpt_sigbus_storm(addrs, LIB_THREADS, 200, 0, true),
			 "view_sigbus_8_threads\n");
}

static void test_private_flavours_named(const struct rmpt_caps *caps)
{
	static const enum rmpt_flavour flavours[] = { RMPT_SNP, RMPT_SW_PROTECTED,
						      RMPT_LEGACY_V6 };
	char why[256];
	bool ok = true;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(flavours); i++) {
		why[0] = '\0';
		if (rmpt_flavour_usable(caps, flavours[i], why, sizeof(why)))
			continue;
		ksft_print_msg("%s: %s\n", rmpt_flavour_name(flavours[i]), why);
		ok &= why[0] != '\0';
	}
	ksft_test_result(ok, "unusable_flavours_say_why\n");
}

int main(void)
{
	struct rmpt_vm_params params = {
		.flavour = RMPT_DEFAULT,
		.nr_vcpus = 1,
		.guest_code = guest_code,
		.data_size = LIB_DATA_SIZE,
		.backing = VM_MEM_SRC_ANONYMOUS_THP,
		.numa_node = rmpt_numa_node(0),
	};
	struct rmpt_caps caps;
	struct rmpt_vm *rv;
	char why[256];

	rmpt_caps_probe(&caps);
	if (!rmpt_flavour_usable(&caps, RMPT_DEFAULT, why, sizeof(why)))
		ksft_exit_skip("%s\n", why);
	ksft_print_header();
	ksft_set_plan(5);
	rmpt_caps_print(&caps);

	rv = rmpt_vm_create(&caps, &params);
	run_stamping_guest(rv);
	test_split(rv, &caps);
	test_view_sigbus_threads(rv);
	test_private_flavours_named(&caps);
	rmpt_vm_free(rv);
	ksft_test_result(says("guest_memfd mappings left", gmem_mappings(), 0),
			 "teardown_unmaps_view\n");
	ksft_finished();
}
