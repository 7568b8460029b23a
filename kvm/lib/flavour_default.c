// SPDX-License-Identifier: GPL-2.0-only
/*
 * default: a KVM_X86_DEFAULT_VM.  The guest has no private memory; the
 * host's view of guest_memfd (6.18+) still SIGBUSes, which is what the
 * cases check on it.
 */
#include "snp_util.h"

static struct kvm_vm *default_vm_create(const struct rmpt_vm_params *p, u64 extra_pages,
					struct kvm_vcpu *vcpus[])
{
	return __vm_create_with_vcpus(VM_SHAPE_DEFAULT, p->nr_vcpus, extra_pages,
				      p->guest_code, vcpus);
}

const struct rmpt_flavour_ops rmpt_default_ops = {
	.name = "default",
	.vm_create = default_vm_create,
};
