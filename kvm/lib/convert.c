// SPDX-License-Identifier: GPL-2.0-only
/*
 * The userspace half of private<->shared conversions, one function for snp
 * and sw_protected: set or clear KVM_MEMORY_ATTRIBUTE_PRIVATE, then discard
 * the side no longer used (punch the guest_memfd hole, or drop the shared
 * 4K, which is what splits its THP).  The guest asks through
 * KVM_HC_MAP_GPA_RANGE (SNP PSC arrives as the same exit) or implicitly,
 * by touching a GPA whose attribute disagrees (KVM_EXIT_MEMORY_FAULT).
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <linux/kvm_para.h>

#include "snp_rng.h"
#include "snp_util.h"

/*
 * Guest: ask for [gpa, gpa + npages * 4K) private or shared, through the
 * GHCB's page state change where the guest's state is protected (SNP),
 * else KVM_HC_MAP_GPA_RANGE; both reach rmpt_vcpu_run() as the same exit.
 * 0 or an error: rmpt_guest_convert()'s stage, or the hypercall's.
 */
RMPT_GUEST_CODE u64 rmpt_guest_map_gpa(bool protected_state, u64 gpa, u64 npages,
				       bool to_private)
{
	enum rmpt_map_gpa_size size = npages == SZ_2M / SZ_4K ? RMPT_MAP_GPA_2M : RMPT_MAP_GPA_4K;

	if (protected_state)
		return rmpt_guest_convert(gpa, npages, to_private);
	return __kvm_hypercall_map_gpa_range(gpa, npages * SZ_4K,
					     rmpt_map_gpa_attrs(to_private, size));
}

/* Drop the shared side of [gpa, gpa + size): MADV_DONTNEED or MADV_REMOVE. */
int rmpt_discard_shared(struct rmpt_vm *rv, u64 gpa, u64 size, int advice)
{
	return madvise(rmpt_data_hva(rv, gpa), size, advice) ? -errno : 0;
}

static int rmpt_convert(struct rmpt_vm *rv, u64 gpa, u64 size, bool to_private)
{
	int ret;

	TEST_ASSERT(rv->ops->private_mem, "%s VMs have no memory attributes to convert",
		    rv->ops->name);
	vm_set_memory_attributes(rv->vm, gpa, size,
				 to_private ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0);
	if (to_private) {
		ret = rmpt_discard_shared(rv, gpa, size, MADV_DONTNEED);
		if (ret)
			return ret;
		__atomic_add_fetch(&rv->conv.to_private, 1, __ATOMIC_RELAXED);
	} else {
		vm_guest_mem_punch_hole(rv->vm, gpa, size);
		__atomic_add_fetch(&rv->conv.to_shared, 1, __ATOMIC_RELAXED);
	}
	return 0;
}

/*
 * A MAP_GPA_RANGE request as KVM forwards it, checked before it is
 * carried out: page-aligned GPA, a non-zero 4K-page count, attributes
 * with no reserved bit, and a range inside the data region.
 */
bool rmpt_map_gpa_request_valid(const struct rmpt_vm *rv, u64 gpa, u64 npages, u64 attrs,
				bool *to_private)
{
	enum rmpt_map_gpa_size size;

	if (!rmpt_map_gpa_attrs_decode(attrs, to_private, &size) ||
	    gpa % SZ_4K || !npages || npages > rv->data_size / SZ_4K)
		return false;
	return gpa >= rv->data_gpa && gpa + npages * SZ_4K <= rv->data_gpa + rv->data_size;
}

/*
 * KVM_EXIT_HYPERCALL(KVM_HC_MAP_GPA_RANGE): args[0] GPA, args[1] 4K pages,
 * args[2] attributes.  A malformed request is answered with an error in
 * hypercall.ret, which KVM passes on to the guest, instead of being done.
 */
void rmpt_map_gpa_range_exit(struct rmpt_vm *rv, struct kvm_run *run)
{
	u64 gpa = run->hypercall.args[0], npages = run->hypercall.args[1];
	bool to_private;

	if (!rmpt_map_gpa_request_valid(rv, gpa, npages, run->hypercall.args[2], &to_private) ||
	    rmpt_convert(rv, gpa, npages * SZ_4K, to_private))
		run->hypercall.ret = -KVM_EINVAL;
	else
		run->hypercall.ret = 0;
}

/*
 * Run the vCPU, carrying out conversion requests, until any other exit;
 * returns that exit's reason.  Not vcpu_run(): KVM_RUN fails with EFAULT
 * for KVM_EXIT_MEMORY_FAULT, and the framework's run peeks at ucalls with
 * KVM_GET_REGS, which an SNP vCPU's protected state refuses.
 */
u32 rmpt_vcpu_run(struct rmpt_vm *rv, struct kvm_vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	int err;

	for (;;) {
		err = rmpt_snp_vcpu_try_run(vcpu);
		if (err) {
			TEST_ASSERT(err == EFAULT && run->exit_reason == KVM_EXIT_MEMORY_FAULT,
				    "KVM_RUN: expected success or EFAULT with KVM_EXIT_MEMORY_FAULT, got %s, exit reason %u",
				    strerror(err), run->exit_reason);
			TEST_ASSERT(!rmpt_convert(rv, run->memory_fault.gpa, run->memory_fault.size,
						  run->memory_fault.flags &
						  KVM_MEMORY_EXIT_FLAG_PRIVATE),
				    "implicit conversion of GPA 0x%llx (+0x%llx) failed",
				    run->memory_fault.gpa, run->memory_fault.size);
			continue;
		}
		if (run->exit_reason == KVM_EXIT_HYPERCALL &&
		    run->hypercall.nr == KVM_HC_MAP_GPA_RANGE) {
			rmpt_map_gpa_range_exit(rv, run);
			continue;
		}
		return run->exit_reason;
	}
}
