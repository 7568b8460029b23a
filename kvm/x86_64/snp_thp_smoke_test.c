// SPDX-License-Identifier: GPL-2.0-only
/*
 * The whole chain in one small test: a default VM whose memory sits in a
 * THP-backed memslot; the guest stamps every 4K page, the host verifies the
 * stamps through its own mapping and writes new ones, the guest verifies
 * those.  The region must be mapped by huge pages while the guest runs.
 */
#include <linux/sizes.h>

#include "test_util.h"
#include "kvm_util.h"
#include "processor.h"
#include "snp_util.h"

#define SMOKE_SIZE	(32UL * SZ_2M)
#define SMOKE_PAGES	(SMOKE_SIZE / SZ_4K)

#define GUEST_STAMP(i)	(0x6775657374000000UL | (i))	/* "guest" */
#define HOST_STAMP(i)	(0x686f737400000000UL | (i))	/* "host" */

static void guest_code(void)
{
	u64 i, got;

	for (i = 0; i < SMOKE_PAGES; i++)
		WRITE_ONCE(*(u64 *)(RMPT_DATA_GPA + i * SZ_4K), GUEST_STAMP(i));
	GUEST_SYNC(1);

	for (i = 0; i < SMOKE_PAGES; i++) {
		got = READ_ONCE(*(u64 *)(RMPT_DATA_GPA + i * SZ_4K));
		__GUEST_ASSERT(got == HOST_STAMP(i),
			       "page %lu: expected host stamp 0x%lx, got 0x%lx",
			       i, HOST_STAMP(i), got);
	}
	GUEST_DONE();
}

static void run_until(struct kvm_vcpu *vcpu, u64 ucall_cmd)
{
	struct ucall uc;

	vcpu_run(vcpu);
	TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_IO);
	switch (get_ucall(vcpu, &uc)) {
	case UCALL_ABORT:
		REPORT_GUEST_ASSERT(uc);
		break;
	case UCALL_SYNC:
	case UCALL_DONE:
		TEST_ASSERT(uc.cmd == ucall_cmd, "expected ucall %lu, got %lu",
			    ucall_cmd, uc.cmd);
		break;
	default:
		TEST_FAIL("unexpected ucall %lu", uc.cmd);
	}
}

int main(void)
{
	struct kvm_vcpu *vcpu;
	struct rmpt_caps caps;
	struct kvm_vm *vm;
	size_t huge_kb;
	char why[256];
	u64 *hva;
	u64 i;

	rmpt_caps_probe(&caps);
	if (!rmpt_flavour_usable(&caps, RMPT_DEFAULT, why, sizeof(why)) ||
	    !rmpt_thp_usable(&caps, why, sizeof(why)))
		ksft_exit_skip("%s\n", why);

	ksft_print_header();
	ksft_set_plan(3);

	vm = vm_create_with_one_vcpu(&vcpu, guest_code);
	vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS_THP, RMPT_DATA_GPA,
				    RMPT_DATA_SLOT, SMOKE_PAGES, 0);
	virt_map(vm, RMPT_DATA_GPA, RMPT_DATA_GPA, SMOKE_PAGES);
	hva = addr_gpa2hva(vm, RMPT_DATA_GPA);

	run_until(vcpu, UCALL_SYNC);
	for (i = 0; i < SMOKE_PAGES; i++) {
		u64 *page = hva + i * SZ_4K / sizeof(*hva);

		TEST_ASSERT(*page == GUEST_STAMP(i),
			    "page %lu: expected guest stamp 0x%lx, got 0x%lx",
			    i, GUEST_STAMP(i), *page);
		*page = HOST_STAMP(i);
	}
	ksft_test_result_pass("guest_stamps_seen_by_host\n");

	huge_kb = rmpt_smaps_anon_huge_kb("/proc/self/smaps", hva, SMOKE_SIZE);
	ksft_print_msg("THP %s, AnonHugePages %zu kB of %lu kB\n",
		       rmpt_thp_mode_name(caps.thp), huge_kb, SMOKE_SIZE >> 10);
	ksft_test_result(huge_kb > 0, "region_thp_backed\n");

	run_until(vcpu, UCALL_DONE);
	ksft_test_result_pass("host_stamps_seen_by_guest\n");

	kvm_vm_free(vm);
	ksft_finished();
}
