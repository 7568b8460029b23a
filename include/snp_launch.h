/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Host side of an SEV-SNP guest: detection, policy, VM creation and the
 * launch sequence (lib/snp_launch.c), for the 6.12 framework (no SNP
 * support) and the mainline one (lib/x86/sev.c has snp_vm_*()).
 *
 * The snp flavour, in this order (amd-memory-encryption.rst, KVM_SEV_SNP_*):
 *   1. rmpt_snp_supported(), else SKIP with its reason.
 *   2. vm = rmpt_snp_vm_create(nr_vcpus, extra_pages, guest_code, vcpus):
 *      KVM_CREATE_VM(KVM_X86_SNP_VM), slot 0 on guest_memfd with the C-bit
 *      known to the framework, KVM_SEV_INIT2 before any vCPU, then vCPUs.
 *   3. Add test memslots (KVM_MEM_GUEST_MEMFD; THP-backed userspace_addr
 *      for the shared side), map them, set registers and vCPU arguments,
 *      and write guest globals: all of it is frozen at launch.
 *   4. rmpt_snp_ucall_init(vm, nr_vcpus) if the guest uses ucalls; every
 *      guest vCPU then calls rmpt_snp_guest_ghcb_init(its vCPU id) first.
 *   5. rmpt_snp_launch(vm, policy): aliases the page tables for the
 *      guest's C-bit walks, enables KVM_CAP_EXIT_HYPERCALL with
 *      BIT(KVM_HC_MAP_GPA_RANGE), SNP_LAUNCH_START, PRIVATE attributes and
 *      SNP_LAUNCH_UPDATE over every protected range, SNP_LAUNCH_FINISH.
 *   6. Run with rmpt_vcpu_run() (or rmpt_snp_vcpu_try_run()) and read
 *      ucalls with rmpt_get_ucall(), never vcpu_run()/get_ucall().
 */
#ifndef SELFTEST_KVM_SNP_LAUNCH_H
#define SELFTEST_KVM_SNP_LAUNCH_H

#include <stdbool.h>
#include <stddef.h>

#include "kvm_util.h"
#include "processor.h"
#include "sev.h"

/*
 * The mainline framework gained SNP in one series (6.16): SNP_POLICY_* in
 * include/x86/sev.h, snp_vm_init(), snp_vm_launch_*(), a guest_memfd slot 0
 * and KVM_SEV_INIT2 in kvm_arch_vm_post_create() for KVM_X86_SNP_VM.
 */
#ifdef SNP_POLICY_RSVD_MBO
#define RMPT_FW_HAS_SNP			1
#else
#define RMPT_FW_HAS_SNP			0
#endif

/* Fallbacks, for trees whose headers predate these values. */
#ifndef KVM_X86_SNP_VM
#define KVM_X86_SNP_VM			4	/* uapi asm/kvm.h, 6.11 */
#endif
#ifndef KVM_SEV_SNP_PAGE_TYPE_NORMAL
#define KVM_SEV_SNP_PAGE_TYPE_NORMAL	0x1	/* uapi asm/kvm.h, 6.11 */
#endif
#ifndef KVM_X86_SNP_POLICY_BITS
#define KVM_X86_SNP_POLICY_BITS		1	/* uapi asm/kvm.h, 6.19 */
#endif
#ifndef SNP_POLICY_SMT
#define SNP_POLICY_SMT			BIT_ULL(16)	/* mainline include/x86/sev.h */
#endif
#ifndef SNP_POLICY_RSVD_MBO
#define SNP_POLICY_RSVD_MBO		BIT_ULL(17)	/* mainline include/x86/sev.h */
#endif
#ifndef SNP_POLICY_DBG
#define SNP_POLICY_DBG			BIT_ULL(19)	/* mainline include/x86/sev.h */
#endif

/* SNP policy: bit 17 must be one, 16 allows SMT, 19 allows debugging. */
static inline u64 rmpt_snp_policy_word(bool smt, bool debug)
{
	return SNP_POLICY_RSVD_MBO | (smt ? SNP_POLICY_SMT : 0) |
	       (debug ? SNP_POLICY_DBG : 0);
}

u64 rmpt_snp_policy(bool debug);
bool rmpt_snp_supported(char *why, size_t len);

struct kvm_vm *rmpt_protected_vm_create(u32 type, u32 slot0_flags,
					void (*init)(struct kvm_vm *vm),
					u32 nr_vcpus, u64 extra_pages,
					void *guest_code, struct kvm_vcpu *vcpus[]);
struct kvm_vm *rmpt_snp_vm_create(u32 nr_vcpus, u64 extra_pages,
				  void *guest_code, struct kvm_vcpu *vcpus[]);
void rmpt_snp_vm_init(struct kvm_vm *vm);
void rmpt_snp_launch_start(struct kvm_vm *vm, u64 policy);
void rmpt_snp_launch_update(struct kvm_vm *vm);
void rmpt_snp_launch_finish(struct kvm_vm *vm);
void rmpt_snp_launch(struct kvm_vm *vm, u64 policy);

#include "snp_legacy_v6.h"

#endif /* SELFTEST_KVM_SNP_LAUNCH_H */
