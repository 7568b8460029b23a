// SPDX-License-Identifier: GPL-2.0-only
/*
 * sw_protected: KVM_X86_SW_PROTECTED_VM, private memory in guest_memfd
 * with no hardware protection.  The guest converts with
 * KVM_HC_MAP_GPA_RANGE, as an SNP guest's page state change arrives at
 * userspace (arch/x86/kvm/svm/sev.c, snp_begin_psc()), so both take
 * the same path through lib/convert.c.
 */
#include "snp_util.h"

static bool sw_protected_usable(const struct rmpt_caps *caps, char *why, size_t len)
{
	if (!(caps->vm_types & BIT(KVM_X86_SW_PROTECTED_VM)))
		return rmpt_why_not(why, len,
				    "no KVM_X86_SW_PROTECTED_VM in KVM_CAP_VM_TYPES (0x%lx)",
				    caps->vm_types);
	return rmpt_private_mem_usable(caps, why, len);
}

static struct kvm_vm *sw_protected_vm_create(const struct rmpt_vm_params *p,
					     u64 extra_pages, struct kvm_vcpu *vcpus[])
{
	struct vm_shape shape = { .mode = VM_MODE_DEFAULT, .type = KVM_X86_SW_PROTECTED_VM };

	return __vm_create_with_vcpus(shape, p->nr_vcpus, extra_pages, p->guest_code, vcpus);
}

static void sw_protected_launch(struct rmpt_vm *rv, const struct rmpt_vm_params *p)
{
	vm_enable_cap(rv->vm, KVM_CAP_EXIT_HYPERCALL, BIT_ULL(KVM_HC_MAP_GPA_RANGE));
}

const struct rmpt_flavour_ops rmpt_sw_protected_ops = {
	.name = "sw_protected",
	.usable = sw_protected_usable,
	.vm_create = sw_protected_vm_create,
	.launch = sw_protected_launch,
	.private_mem = true,
};
