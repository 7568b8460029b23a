// SPDX-License-Identifier: GPL-2.0-only
/*
 * snp: KVM_X86_SNP_VM (include/snp_launch.h has the launch sequence).
 * Private memory in guest_memfd, as on sw_protected, and the guest's
 * registers protected: it talks to the host through the GHCB.
 */
#include "snp_util.h"

static bool snp_usable(const struct rmpt_caps *caps, char *why, size_t len)
{
	why[0] = '\0';
	if (!(caps->vm_types & BIT(KVM_X86_SNP_VM)))
		rmpt_why_add(why, len, "no KVM_X86_SNP_VM in KVM_CAP_VM_TYPES (0x%lx)",
			     caps->vm_types);
	if (!caps->dev_sev)
		rmpt_why_add(why, len, "no /dev/sev (PSP driver)");
	if (caps->kvm_amd_sev_snp == 0)
		rmpt_why_add(why, len, "kvm_amd sev_snp parameter is N");
	else if (caps->kvm_amd_sev_snp < 0 && caps->kvm_amd)
		/* The parameter lives in svm/sev.c, built only with KVM_AMD_SEV. */
		rmpt_why_add(why, len,
			     "kvm_amd has no sev_snp parameter (built without CONFIG_KVM_AMD_SEV)");
	else if (caps->kvm_amd_sev_snp < 0)
		rmpt_why_add(why, len, "kvm_amd is not loaded");
	if (!caps->cpuid_snp)
		rmpt_why_add(why, len, "CPUID 0x8000001F EAX bit 4 (SEV-SNP) is clear");
	return !why[0] && rmpt_private_mem_usable(caps, why, len);
}

/* Slot 0 on guest_memfd, KVM_SEV_INIT2 before the vCPUs. */
static struct kvm_vm *snp_vm_create(const struct rmpt_vm_params *p, u64 extra_pages,
				    struct kvm_vcpu *vcpus[])
{
	return rmpt_snp_vm_create(p->nr_vcpus, extra_pages, p->guest_code, vcpus);
}

/* Everything the guest needs is in place: launch freezes it. */
static void snp_launch(struct rmpt_vm *rv, const struct rmpt_vm_params *p)
{
	rmpt_snp_ucall_init(rv->vm, p->nr_vcpus);
	rmpt_snp_launch(rv->vm, rmpt_snp_policy());
}

const struct rmpt_flavour_ops rmpt_snp_ops = {
	.name = "snp",
	.usable = snp_usable,
	.vm_create = snp_vm_create,
	.launch = snp_launch,
	.private_mem = true,
	.protected_state = true,
};
