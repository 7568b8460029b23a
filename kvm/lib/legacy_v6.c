// SPDX-License-Identifier: GPL-2.0-only
/*
 * legacy_v6: an SNP guest on a kernel that carries the 2022 v6 host series
 * (include/snp_legacy_v6.h), only after an explicit opt-in.  The pages
 * measured at launch are private in the VMM's mapping, in place, and the
 * host reads their ciphertext.
 *
 * Order (the v6 uAPI): DEFAULT VM, KVM_SEV_SNP_INIT before any vCPU,
 * vCPUs, LAUNCH_START, then per region REG_REGION and LAUNCH_UPDATE of
 * its protected ranges, LAUNCH_FINISH.
 */
#include "snp_util.h"
#include "snp_legacy_v6.h"

/* KVM_SEV_SNP_INIT(flags 0) on a DEFAULT VM; opens /dev/sev if needed. */
static void rmpt_v6_snp_init(struct kvm_vm *vm)
{
	struct rmpt_v6_snp_init init = {};

	TEST_ASSERT(vm->type == KVM_X86_DEFAULT_VM,
		    "v6 SNP_INIT: expected VM type %d, got %lu",
		    KVM_X86_DEFAULT_VM, (unsigned long)vm->type);
	if (vm->arch.sev_fd == -1)
		vm->arch.sev_fd = open_sev_dev_path_or_exit();
	vm_sev_ioctl(vm, RMPT_V6_SEV_SNP_INIT, &init);
}

/* One LAUNCH_UPDATE; v6 handles the whole range and writes nothing back. */
static void rmpt_v6_launch_update(struct kvm_vm *vm, u64 gpa, u64 size)
{
	struct rmpt_v6_snp_launch_update upd = {
		.start_gfn = gpa >> vm->page_shift,
		.uaddr = (u64)addr_gpa2hva(vm, gpa),
		.len = size,
		.page_type = RMPT_V6_PAGE_TYPE_NORMAL,
	};

	TEST_ASSERT(size <= UINT32_MAX,
		    "v6 LAUNCH_UPDATE: expected a length that fits u32, got 0x%lx", size);
	vm_sev_ioctl(vm, RMPT_V6_SEV_SNP_LAUNCH_UPDATE, &upd);
}

static bool legacy_v6_usable(const struct rmpt_caps *caps, char *why, size_t len)
{
	/* Its command numbers collide with upstream's: never guess. */
	if (!caps->legacy_v6_requested)
		return rmpt_why_not(why, len,
				    "legacy_v6 not requested (SNP_RMP_LEGACY_V6=1 on a kernel with the 2022 v6 SNP host series)");
	if (!caps->dev_sev)
		return rmpt_why_not(why, len, "no /dev/sev (PSP driver)");
	if (!caps->cpuid_snp)
		return rmpt_why_not(why, len, "CPUID 0x8000001F EAX bit 4 (SEV-SNP) is clear");
	return true;
}

/* Slot 0 stays ordinary anonymous memory: v6 had no guest_memfd. */
static struct kvm_vm *legacy_v6_vm_create(const struct rmpt_vm_params *p, u64 extra_pages,
					  struct kvm_vcpu *vcpus[])
{
	return rmpt_protected_vm_create(KVM_X86_DEFAULT_VM, 0, rmpt_v6_snp_init, p->nr_vcpus,
					extra_pages, p->guest_code, vcpus);
}

/*
 * v6 pins and tracks guest RAM through the SEV region registration, and
 * handled PSC in the kernel: no KVM_CAP_EXIT_HYPERCALL to enable.  The
 * launch_private_size bytes at RMPT_DATA_GPA are measured too, which makes
 * them private (RMP-assigned) while they stay in the VMM's mapping.
 */
static void legacy_v6_launch(struct rmpt_vm *rv, const struct rmpt_vm_params *p)
{
	struct rmpt_v6_snp_launch_start start = { .policy = rmpt_snp_policy() };
	struct rmpt_v6_snp_launch_finish finish = {};
	struct userspace_mem_region *region;
	struct kvm_vm *vm = rv->vm;
	sparsebit_idx_t i, j;
	int bkt;

	sev_register_encrypted_memory(vm, memslot2region(vm, RMPT_DATA_SLOT));
	rmpt_snp_ucall_init(vm, p->nr_vcpus);
	rmpt_snp_alias_page_tables(vm);
	vm_sev_ioctl(vm, RMPT_V6_SEV_SNP_LAUNCH_START, &start);
	hash_for_each(vm->regions.slot_hash, bkt, region, slot_node) {
		if (!region->protected_phy_pages || !sparsebit_any_set(region->protected_phy_pages))
			continue;
		sev_register_encrypted_memory(vm, region);
		sparsebit_for_each_set_range(region->protected_phy_pages, i, j)
			rmpt_v6_launch_update(vm, i * vm->page_size, (j - i + 1) * vm->page_size);
	}
	vm->arch.is_pt_protected = true;
	if (p->launch_private_size)
		rmpt_v6_launch_update(vm, RMPT_DATA_GPA, p->launch_private_size);
	vm_sev_ioctl(vm, RMPT_V6_SEV_SNP_LAUNCH_FINISH, &finish);
}

const struct rmpt_flavour_ops rmpt_legacy_v6_ops = {
	.name = "legacy_v6",
	.usable = legacy_v6_usable,
	.vm_create = legacy_v6_vm_create,
	.launch = legacy_v6_launch,
	.protected_state = true,
	.host_reads_private = true,
	.launch_private = true,
};
