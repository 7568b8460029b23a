// SPDX-License-Identifier: GPL-2.0-only
/*
 * Host side of an SEV-SNP guest (include/snp_launch.h).  On mainline the
 * framework's helpers do the work; on 6.12, which has none, the same steps
 * are issued through KVM_MEMORY_ENCRYPT_OP.
 */
#include <stdio.h>

#include "snp_util.h"

u64 rmpt_snp_policy(void)
{
#if RMPT_FW_HAS_SNP
	u64 policy = snp_default_policy();
#else
	/* is_smt_on() of mainline's kvm_util.h: the firmware wants SMT allowed then. */
	FILE *f = fopen("/sys/devices/system/cpu/smt/active", "r");
	u64 policy = SNP_POLICY_RSVD_MBO;

	if (f) {
		if (fgetc(f) == '1')
			policy |= SNP_POLICY_SMT;
		fclose(f);
	}
#endif
	return policy;
}

/*
 * kvm_arch_vm_post_create() takes the vCPU count on mainline but not on
 * 6.12.  Its declared type picks the helper whose parameter matches it;
 * the other helper is never called, so no call has to cast.
 */
static void post_create(void (*fn)(struct kvm_vm *vm), struct kvm_vm *vm, u32 nr_vcpus)
{
	fn(vm);
}

static void post_create_nr(void (*fn)(struct kvm_vm *vm, unsigned int nr), struct kvm_vm *vm,
			   u32 nr_vcpus)
{
	fn(vm, nr_vcpus);
}

#define arch_vm_post_create(vm, nr_vcpus)						\
	__builtin_choose_expr(__builtin_types_compatible_p(typeof(kvm_arch_vm_post_create), \
							   void (struct kvm_vm *)),	\
			      post_create, post_create_nr)(kvm_arch_vm_post_create,	\
							   vm, nr_vcpus)

/*
 * __vm_create() and vCPU creation for a protected VM type the framework
 * may not know (SNP on 6.12, DEFAULT for legacy v6).  Each step is the
 * framework's own, in its order; what differs is that /dev/sev and the
 * C-bit are known before slot 0 exists, as kvm_init_vm_address_properties()
 * sets them for the types it knows, so that slot 0 tracks protected pages
 * and guest PTEs carry the C-bit; slot 0 gets slot0_flags
 * (KVM_MEM_GUEST_MEMFD for SNP) and room for the GHCB area and the
 * page-table alias of lib/snp_guest*.c; and init (the SEV init command, if
 * the framework does not issue it) runs before any vCPU.
 */
struct kvm_vm *rmpt_protected_vm_create(u32 type, u32 slot0_flags,
					void (*init)(struct kvm_vm *vm),
					u32 nr_vcpus, u64 extra_pages,
					void *guest_code, struct kvm_vcpu *vcpus[])
{
	struct vm_shape shape = { .mode = VM_MODE_DEFAULT, .type = type };
	u64 pages = 512 + (u64)nr_vcpus * DEFAULT_STACK_PGS;
	struct userspace_mem_region *slot0;
	struct kvm_vm *vm;
	u32 i;

	vm = ____vm_create(shape);
	if (vm->arch.sev_fd == -1) {
		vm->arch.sev_fd = open_sev_dev_path_or_exit();
		vm->arch.c_bit = BIT_ULL(this_cpu_property(X86_PROPERTY_SEV_C_BIT));
		vm->gpa_tag_mask = vm->arch.c_bit;
	}
	pages += (pages + extra_pages) / PTES_PER_MIN_PAGE * 2 +
		 ucall_nr_pages_required(PAGE_SIZE) +
		 (u64)nr_vcpus * RMPT_GHCB_AREA_PAGES_PER_VCPU + 64;
	vm_mem_add(vm, VM_MEM_SRC_ANONYMOUS, 0, 0,
		   vm_adjust_num_guest_pages(VM_MODE_DEFAULT, pages), slot0_flags, -1, 0);
	for (i = 0; i < NR_MEM_REGIONS; i++)
		vm->memslots[i] = 0;
	kvm_vm_elf_load(vm, program_invocation_name);

	slot0 = memslot2region(vm, 0);
	ucall_init(vm, slot0->region.guest_phys_addr + slot0->region.memory_size);
	guest_rng = new_guest_random_state(guest_random_seed);
	sync_global_to_guest(vm, guest_rng);
	arch_vm_post_create(vm, nr_vcpus);
	if (init)
		init(vm);

	for (i = 0; i < nr_vcpus; i++)
		vcpus[i] = vm_vcpu_add(vm, i, guest_code);
	return vm;
}

#if !RMPT_FW_HAS_SNP
/* KVM_SEV_INIT2 with defaults (GHCB v2); only before the first vCPU. */
static void snp_vm_init(struct kvm_vm *vm)
{
	struct kvm_sev_init init = {};

	vm_sev_ioctl(vm, KVM_SEV_INIT2, &init);
}

/*
 * Make [gpa, gpa + size) private and measure it.  KVM writes its progress
 * back into the struct (snp_launch_update(), arch/x86/kvm/svm/sev.c), so
 * repeat until len is 0.
 */
static void snp_update_range(struct kvm_vm *vm, u64 gpa, u64 size)
{
	struct kvm_sev_snp_launch_update upd = {
		.gfn_start = gpa >> vm->page_shift,
		.uaddr = (u64)addr_gpa2hva(vm, gpa),
		.len = size,
		.type = KVM_SEV_SNP_PAGE_TYPE_NORMAL,
	};
	u64 left;

	vm_mem_set_private(vm, gpa, size);
	while (upd.len) {
		left = upd.len;
		vm_sev_ioctl(vm, KVM_SEV_SNP_LAUNCH_UPDATE, &upd);
		TEST_ASSERT(upd.len < left,
			    "SNP_LAUNCH_UPDATE at gfn 0x%lx: expected len below 0x%lx, got 0x%lx",
			    (u64)upd.gfn_start, left, (u64)upd.len);
	}
}

/*
 * What mainline's vm_sev_launch() does for SNP: every page the framework
 * allocated as protected becomes guest-private and measured; registers and
 * the VMSA are measured and frozen at the finish.
 */
static void snp_vm_launch(struct kvm_vm *vm, u64 policy)
{
	struct kvm_sev_snp_launch_start start = { .policy = policy };
	struct kvm_sev_snp_launch_finish finish = {};
	struct userspace_mem_region *region;
	sparsebit_idx_t i, j;
	int bkt;

	/* Without it every guest PSC fails inside KVM (snp_begin_psc_msr(), svm/sev.c). */
	vm_enable_cap(vm, KVM_CAP_EXIT_HYPERCALL, BIT_ULL(KVM_HC_MAP_GPA_RANGE));
	vm_sev_ioctl(vm, KVM_SEV_SNP_LAUNCH_START, &start);
	hash_for_each(vm->regions.slot_hash, bkt, region, slot_node) {
		if (!region->protected_phy_pages || !sparsebit_any_set(region->protected_phy_pages))
			continue;
		sparsebit_for_each_set_range(region->protected_phy_pages, i, j)
			snp_update_range(vm, i * vm->page_size, (j - i + 1) * vm->page_size);
	}
	/* The guest page tables are encrypted now: no more host walks. */
	vm->arch.is_pt_protected = true;
	vm_sev_ioctl(vm, KVM_SEV_SNP_LAUNCH_FINISH, &finish);
}
#endif

/* Mainline's kvm_arch_vm_post_create() issues INIT2 for SNP by itself. */
struct kvm_vm *rmpt_snp_vm_create(u32 nr_vcpus, u64 extra_pages,
				  void *guest_code, struct kvm_vcpu *vcpus[])
{
	return rmpt_protected_vm_create(KVM_X86_SNP_VM, KVM_MEM_GUEST_MEMFD,
					RMPT_FW_HAS_SNP ? NULL : snp_vm_init,
					nr_vcpus, extra_pages, guest_code, vcpus);
}

void rmpt_snp_launch(struct kvm_vm *vm, u64 policy)
{
	rmpt_snp_alias_page_tables(vm);
#if RMPT_FW_HAS_SNP
	vm_sev_launch(vm, policy, NULL);
#else
	snp_vm_launch(vm, policy);
#endif
}
