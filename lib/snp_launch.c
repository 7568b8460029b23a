// SPDX-License-Identifier: GPL-2.0-only
/*
 * Host side of an SEV-SNP guest: is SNP usable here, which policy, how to
 * create the VM, and the launch sequence (Documentation/virt/kvm/x86/
 * amd-memory-encryption.rst, KVM_SEV_SNP_LAUNCH_*).  On mainline
 * the framework's snp_vm_*() helpers are wrapped; on 6.12, which has none,
 * the same steps are issued through KVM_MEMORY_ENCRYPT_OP.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "snp_ghcb.h"
#include "snp_util.h"

#define RMPT_SMT_ACTIVE_PATH	"/sys/devices/system/cpu/smt/active"

/* "1" when SMT siblings are online; the firmware wants the SMT bit then. */
static bool rmpt_smt_active(void)
{
	char c = '0';
	FILE *f;

	f = fopen(RMPT_SMT_ACTIVE_PATH, "r");
	if (!f)
		return false;
	if (fread(&c, 1, 1, f) != 1)
		c = '0';
	fclose(f);
	return c == '1';
}

u64 rmpt_snp_policy(bool debug)
{
	return rmpt_snp_policy_word(rmpt_smt_active(), debug);
}

/*
 * True if an SNP VM can be created here.  Otherwise @why lists every
 * missing piece (lib/caps.c probes them).  Nothing here exits the test.
 */
bool rmpt_snp_supported(char *why, size_t len)
{
	struct rmpt_caps caps;

	rmpt_caps_probe(&caps);
	return rmpt_flavour_usable(&caps, RMPT_SNP, why, len);
}

/*
 * kvm_arch_vm_post_create() takes the vCPU count on mainline but not on
 * 6.12.  Its declared type picks the helper whose parameter matches it;
 * the other helper is never called, so no call has to cast.
 */
typedef void rmpt_post_create_vm_fn(struct kvm_vm *vm);
typedef void rmpt_post_create_vm_nr_fn(struct kvm_vm *vm, unsigned int nr_vcpus);

#define RMPT_POST_CREATE_TAKES_NR \
	(!__builtin_types_compatible_p(typeof(kvm_arch_vm_post_create), rmpt_post_create_vm_fn))

static void rmpt_post_create_vm(rmpt_post_create_vm_fn *fn, struct kvm_vm *vm, u32 nr_vcpus)
{
	fn(vm);
}

static void rmpt_post_create_vm_nr(rmpt_post_create_vm_nr_fn *fn, struct kvm_vm *vm,
				   u32 nr_vcpus)
{
	fn(vm, nr_vcpus);
}

static void rmpt_arch_vm_post_create(struct kvm_vm *vm, u32 nr_vcpus)
{
	__builtin_choose_expr(RMPT_POST_CREATE_TAKES_NR, rmpt_post_create_vm_nr,
			      rmpt_post_create_vm)(kvm_arch_vm_post_create, vm, nr_vcpus);
}

/*
 * What kvm_init_vm_address_properties() does for the VM types the
 * framework knows as protected, for those it does not (SNP on 6.12,
 * DEFAULT for legacy v6): /dev/sev for KVM_MEMORY_ENCRYPT_OP and the
 * C-bit, so slot 0 tracks protected pages and guest PTEs carry the C-bit.
 */
static void rmpt_vm_set_protected(struct kvm_vm *vm)
{
	if (vm->arch.sev_fd != -1)
		return;
	vm->arch.sev_fd = open_sev_dev_path_or_exit();
	vm->arch.c_bit = BIT_ULL(this_cpu_property(X86_PROPERTY_SEV_C_BIT));
	vm->gpa_tag_mask = vm->arch.c_bit;
}

/*
 * Slot 0 pages, sized the way the framework's __vm_create() sizes it, plus
 * room for the GHCB area and the page-table alias of lib/snp_guest*.c.
 */
static u64 rmpt_slot0_pages(u32 nr_vcpus, u64 extra_pages)
{
	u64 n = 512 + (u64)nr_vcpus * DEFAULT_STACK_PGS;

	n += (n + extra_pages) / PTES_PER_MIN_PAGE * 2;
	n += ucall_nr_pages_required(PAGE_SIZE);
	n += (u64)nr_vcpus * RMPT_GHCB_AREA_PAGES_PER_VCPU + 64;
	return vm_adjust_num_guest_pages(VM_MODE_DEFAULT, n);
}

/*
 * __vm_create() and vCPU creation for a protected VM type the framework
 * may not know.  Each step is the framework's own, in its order; what
 * differs is that the C-bit is known before slot 0 exists, slot 0 gets
 * @slot0_flags (KVM_MEM_GUEST_MEMFD for SNP), and @init (the SEV init
 * command, if the framework does not issue it) runs before any vCPU.
 */
struct kvm_vm *rmpt_protected_vm_create(u32 type, u32 slot0_flags,
					void (*init)(struct kvm_vm *vm),
					u32 nr_vcpus, u64 extra_pages,
					void *guest_code, struct kvm_vcpu *vcpus[])
{
	struct vm_shape shape = { .mode = VM_MODE_DEFAULT, .type = type };
	struct userspace_mem_region *slot0;
	struct kvm_vm *vm;
	u32 i;

	vm = ____vm_create(shape);
	rmpt_vm_set_protected(vm);
	vm_mem_add(vm, VM_MEM_SRC_ANONYMOUS, 0, 0, rmpt_slot0_pages(nr_vcpus, extra_pages),
		   slot0_flags, -1, 0);
	for (i = 0; i < NR_MEM_REGIONS; i++)
		vm->memslots[i] = 0;
	kvm_vm_elf_load(vm, program_invocation_name);

	slot0 = memslot2region(vm, 0);
	ucall_init(vm, slot0->region.guest_phys_addr + slot0->region.memory_size);
	guest_rng = new_guest_random_state(guest_random_seed);
	sync_global_to_guest(vm, guest_rng);
	rmpt_arch_vm_post_create(vm, nr_vcpus);
	if (init)
		init(vm);

	for (i = 0; i < nr_vcpus; i++)
		vcpus[i] = vm_vcpu_add(vm, i, guest_code);
	return vm;
}

/* Mainline's kvm_arch_vm_post_create() issues INIT2 for SNP by itself. */
struct kvm_vm *rmpt_snp_vm_create(u32 nr_vcpus, u64 extra_pages,
				  void *guest_code, struct kvm_vcpu *vcpus[])
{
	return rmpt_protected_vm_create(KVM_X86_SNP_VM, KVM_MEM_GUEST_MEMFD,
					RMPT_FW_HAS_SNP ? NULL : rmpt_snp_vm_init,
					nr_vcpus, extra_pages, guest_code, vcpus);
}

/* KVM_SEV_INIT2 with defaults (GHCB v2); only before the first vCPU. */
void rmpt_snp_vm_init(struct kvm_vm *vm)
{
#if RMPT_FW_HAS_SNP
	snp_vm_init(vm);
#else
	struct kvm_sev_init init = {};

	TEST_ASSERT(vm->type == KVM_X86_SNP_VM,
		    "KVM_SEV_INIT2 for SNP: expected VM type %d, got %lu",
		    KVM_X86_SNP_VM, (unsigned long)vm->type);
	vm_sev_ioctl(vm, KVM_SEV_INIT2, &init);
#endif
}

void rmpt_snp_launch_start(struct kvm_vm *vm, u64 policy)
{
#if RMPT_FW_HAS_SNP
	snp_vm_launch_start(vm, policy);
#else
	struct kvm_sev_snp_launch_start start = { .policy = policy };

	vm_sev_ioctl(vm, KVM_SEV_SNP_LAUNCH_START, &start);
#endif
}

#if !RMPT_FW_HAS_SNP
/*
 * Make [gpa, gpa + size) private and measure it.  KVM writes its progress
 * back into the struct (snp_launch_update(), arch/x86/kvm/svm/sev.c), so
 * repeat until len is 0.
 */
static void rmpt_snp_update_range(struct kvm_vm *vm, u64 gpa, u64 size)
{
	struct kvm_sev_snp_launch_update upd = {
		.gfn_start = gpa >> vm->page_shift,
		.uaddr = (u64)addr_gpa2hva(vm, gpa),
		.len = size,
		.type = KVM_SEV_SNP_PAGE_TYPE_NORMAL,
	};
	u64 left;

	TEST_ASSERT(!(upd.uaddr % vm->page_size),
		    "SNP_LAUNCH_UPDATE: expected a page-aligned uaddr, got 0x%lx",
		    (u64)upd.uaddr);
	vm_mem_set_private(vm, gpa, size);
	while (upd.len) {
		left = upd.len;
		vm_sev_ioctl(vm, KVM_SEV_SNP_LAUNCH_UPDATE, &upd);
		TEST_ASSERT(upd.len < left,
			    "SNP_LAUNCH_UPDATE at gfn 0x%lx: expected len below 0x%lx, got 0x%lx",
			    (u64)upd.gfn_start, left, (u64)upd.len);
	}
}

static void rmpt_snp_update_region(struct kvm_vm *vm, struct userspace_mem_region *region)
{
	sparsebit_idx_t i, j;

	if (!region->protected_phy_pages || !sparsebit_any_set(region->protected_phy_pages))
		return;
	sparsebit_for_each_set_range(region->protected_phy_pages, i, j)
		rmpt_snp_update_range(vm, i * vm->page_size, (j - i + 1) * vm->page_size);
}
#endif

/* Every page the framework allocated as protected becomes guest-private. */
void rmpt_snp_launch_update(struct kvm_vm *vm)
{
#if RMPT_FW_HAS_SNP
	snp_vm_launch_update(vm);
#else
	struct userspace_mem_region *region;
	int bkt;

	hash_for_each(vm->regions.slot_hash, bkt, region, slot_node)
		rmpt_snp_update_region(vm, region);
	/* The guest page tables are encrypted now: no more host walks. */
	vm->arch.is_pt_protected = true;
#endif
}

/* Registers and the VMSA are measured and frozen here (snp_launch_finish()). */
void rmpt_snp_launch_finish(struct kvm_vm *vm)
{
#if RMPT_FW_HAS_SNP
	snp_vm_launch_finish(vm);
#else
	struct kvm_sev_snp_launch_finish finish = {};

	vm_sev_ioctl(vm, KVM_SEV_SNP_LAUNCH_FINISH, &finish);
#endif
}

void rmpt_snp_launch(struct kvm_vm *vm, u64 policy)
{
	rmpt_snp_alias_page_tables(vm);
	/* Without it every guest PSC fails inside KVM (snp_begin_psc_msr(), svm/sev.c). */
	vm_enable_cap(vm, KVM_CAP_EXIT_HYPERCALL, BIT_ULL(KVM_HC_MAP_GPA_RANGE));
	rmpt_snp_launch_start(vm, policy);
	rmpt_snp_launch_update(vm);
	rmpt_snp_launch_finish(vm);
}
