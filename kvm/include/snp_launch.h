/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Host side of an SEV-SNP guest: policy, VM creation and the launch
 * sequence (lib/snp_launch.c), for the 6.12 framework (no SNP support) and
 * the mainline one (lib/x86/sev.c has snp_vm_*()).
 *
 * The snp flavour, in this order (Documentation/virt/kvm/x86/amd-memory-encryption.rst):
 *   1. vm = rmpt_snp_vm_create(nr_vcpus, extra_pages, guest_code, vcpus):
 *      KVM_CREATE_VM(KVM_X86_SNP_VM), slot 0 on guest_memfd with the C-bit
 *      known to the framework, KVM_SEV_INIT2 before any vCPU, then vCPUs.
 *   2. Add test memslots (KVM_MEM_GUEST_MEMFD; THP-backed userspace_addr
 *      for the shared side), map them, set registers and vCPU arguments,
 *      and write guest globals: all of it is frozen at launch.
 *   3. rmpt_snp_ucall_init(vm, nr_vcpus) if the guest uses ucalls; every
 *      guest vCPU then calls rmpt_snp_guest_ghcb_init(its vCPU id) first.
 *   4. rmpt_snp_launch(vm, policy): aliases the page tables for the
 *      guest's C-bit walks, enables KVM_CAP_EXIT_HYPERCALL with
 *      BIT(KVM_HC_MAP_GPA_RANGE), SNP_LAUNCH_START, PRIVATE attributes and
 *      SNP_LAUNCH_UPDATE over every protected range, SNP_LAUNCH_FINISH.
 *   5. Run with rmpt_vcpu_run() (or rmpt_snp_vcpu_try_run()) and read
 *      ucalls with rmpt_get_ucall(), never vcpu_run()/get_ucall().
 */
#ifndef SELFTEST_KVM_SNP_LAUNCH_H
#define SELFTEST_KVM_SNP_LAUNCH_H

#include "snp_ghcb.h"

#if !RMPT_FW_HAS_SNP
#define SNP_POLICY_SMT			BIT_ULL(16)	/* mainline include/x86/sev.h */
#define SNP_POLICY_RSVD_MBO		BIT_ULL(17)
#endif

u64 rmpt_snp_policy(void);
struct kvm_vm *rmpt_protected_vm_create(u32 type, u32 slot0_flags,
					void (*init)(struct kvm_vm *vm),
					u32 nr_vcpus, u64 extra_pages,
					void *guest_code, struct kvm_vcpu *vcpus[]);
struct kvm_vm *rmpt_snp_vm_create(u32 nr_vcpus, u64 extra_pages,
				  void *guest_code, struct kvm_vcpu *vcpus[]);
void rmpt_snp_launch(struct kvm_vm *vm, u64 policy);

#endif /* SELFTEST_KVM_SNP_LAUNCH_H */
