/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * SEV-SNP guest/host protocol: GHCB MSR protocol words, KVM_HC_MAP_GPA_RANGE
 * attributes, PVALIDATE results, IOIO exit information, and the guest side
 * built on them (lib/snp_guest.c, lib/snp_guest_ucall.c).
 *
 * The encoders are pure and callable from host and guest code.  Values are
 * those of the GHCB specification as the kernel defines them in
 * arch/x86/include/asm/sev-common.h (MSR protocol), arch/x86/include/asm/svm.h
 * (IOIO exit information) and arch/x86/include/asm/sev.h (PVALIDATE).
 */
#ifndef SELFTEST_KVM_SNP_GHCB_H
#define SELFTEST_KVM_SNP_GHCB_H

#include <stdbool.h>

#include "kvm_util.h"
#include "processor.h"
#include "sev.h"
#include "ucall_common.h"

/*
 * The mainline framework gained SNP in one series (6.16): SNP_POLICY_* and
 * vmgexit() in include/x86/sev.h, snp_vm_init(), snp_vm_launch_*(), a
 * guest_memfd slot 0 and KVM_SEV_INIT2 in kvm_arch_vm_post_create() for
 * KVM_X86_SNP_VM.
 */
#ifdef SNP_POLICY_RSVD_MBO
#define RMPT_FW_HAS_SNP			1
#else
#define RMPT_FW_HAS_SNP			0

/* As mainline's: no memory clobber, so a GHCB is read after a barrier(). */
static inline void vmgexit(void)
{
	asm volatile("rep; vmmcall");
}
#endif

/* MSR protocol: GHCBInfo in bits 11:0, data in 63:12. */
#define RMPT_GHCB_INFO_MASK		GENMASK_ULL(11, 0)
#define RMPT_GHCB_CPUID_REQ		0x004
#define RMPT_GHCB_CPUID_RESP		0x005
#define RMPT_GHCB_REG_GPA_REQ		0x012
#define RMPT_GHCB_REG_GPA_RESP		0x013
#define RMPT_GHCB_PSC_REQ		0x014
#define RMPT_GHCB_PSC_RESP		0x015
#define RMPT_CPUID_EBX			1	/* CPUID request: register 31:30 */

enum rmpt_psc_op {
	RMPT_PSC_PRIVATE = 1,
	RMPT_PSC_SHARED = 2,
};

static inline u64 rmpt_ghcb_code(u64 msr)
{
	return msr & RMPT_GHCB_INFO_MASK;
}

/* PSC request: GFN in 51:12 (40 bits), operation in 55:52. */
static inline u64 rmpt_ghcb_psc_req(u64 gfn, enum rmpt_psc_op op)
{
	return ((u64)(op & 0xf) << 52) | ((gfn & GENMASK_ULL(39, 0)) << 12) |
	       RMPT_GHCB_PSC_REQ;
}

/* PSC response: error in 63:32, 0 on success (KVM fails with BIT(63)). */
static inline u32 rmpt_ghcb_psc_resp_error(u64 msr)
{
	return msr >> 32;
}

/* REG_GPA request and response both carry the GFN in 63:12. */
static inline u64 rmpt_ghcb_reg_gpa_req(u64 gfn)
{
	return ((gfn & GENMASK_ULL(51, 0)) << 12) | RMPT_GHCB_REG_GPA_REQ;
}

static inline u64 rmpt_ghcb_reg_gpa_resp_gfn(u64 msr)
{
	return msr >> 12;
}

/* Termination request: reason set in 15:12, reason code in 23:16. */
static inline u64 rmpt_ghcb_term_req(u8 set, u8 code)
{
	return ((u64)(set & 0xf) << 12) | ((u64)code << 16) | GHCB_MSR_TERM_REQ;
}

static inline bool rmpt_ghcb_term_decode(u64 msr, u8 *set, u8 *code)
{
	*set = (msr >> 12) & 0xf;
	*code = (msr >> 16) & 0xff;
	return rmpt_ghcb_code(msr) == GHCB_MSR_TERM_REQ;
}

/* CPUID request: function in 63:32, register in 31:30; value in 63:32. */
static inline u64 rmpt_ghcb_cpuid_req(u32 fn, u8 reg)
{
	return ((u64)fn << 32) | ((u64)(reg & 3) << 30) | RMPT_GHCB_CPUID_REQ;
}

static inline u32 rmpt_ghcb_cpuid_resp_value(u64 msr)
{
	return msr >> 32;
}

/*
 * KVM_HC_MAP_GPA_RANGE, the exit KVM turns every SNP page-state change
 * into (Documentation/virt/kvm/x86/hypercalls.rst): a2 bits 3:0 page size,
 * bit 4 encrypted, bits 63:5 must be zero.
 */
enum rmpt_map_gpa_size {
	RMPT_MAP_GPA_4K = KVM_MAP_GPA_RANGE_PAGE_SZ_4K,
	RMPT_MAP_GPA_2M = KVM_MAP_GPA_RANGE_PAGE_SZ_2M,
	RMPT_MAP_GPA_1G = KVM_MAP_GPA_RANGE_PAGE_SZ_1G,
};

static inline u64 rmpt_map_gpa_attrs(bool encrypted, enum rmpt_map_gpa_size size)
{
	return (encrypted ? KVM_MAP_GPA_RANGE_ENCRYPTED : 0) | size;
}

/* False for reserved bits set or a page size the ABI does not define. */
static inline bool rmpt_map_gpa_attrs_decode(u64 attrs, bool *encrypted,
					     enum rmpt_map_gpa_size *size)
{
	u64 sz = attrs & GENMASK_ULL(3, 0);

	if ((attrs & GENMASK_ULL(63, 5)) || sz > RMPT_MAP_GPA_1G)
		return false;
	*encrypted = attrs & KVM_MAP_GPA_RANGE_ENCRYPTED;
	*size = sz;
	return true;
}

/*
 * PVALIDATE: EAX is the return code; CF=1 means the RMP entry already was
 * in the requested state.  Linux reports that as the software code 255.
 */
#define RMPT_PVALIDATE_OK		0
#define RMPT_PVALIDATE_NOUPDATE		255

static inline int rmpt_pvalidate_result(u32 eax, bool cf)
{
	return cf ? RMPT_PVALIDATE_NOUPDATE : (int)eax;
}

/*
 * IOIO exit information (APM vol. 2 "IOIO intercept"): bit 0 IN, bits 6:4
 * operand size in bytes, bits 9:7 address size (bit 9: 64-bit), 31:16 port.
 */
static inline u64 rmpt_ioio_exit_info(u16 port, bool in, unsigned int bytes)
{
	return ((u64)port << 16) | (bytes << SVM_IOIO_SIZE_SHIFT) |
	       (4 << SVM_IOIO_ASIZE_SHIFT) | (in ? SVM_IOIO_TYPE_MASK : 0);
}

/* Per vCPU a GHCB and a mailbox page, above all the framework allocates (from the bottom). */
#define RMPT_GHCB_AREA_GVA		0x7d0000000000ULL
#define RMPT_GHCB_AREA_PAGES_PER_VCPU	2

/* This suite's termination reason set; sets 0 (GHCB spec) and 1 (Linux) are sev-common.h's. */
#define RMPT_TERM_SET			3

enum rmpt_term_code {
	RMPT_TERM_GHCB_REGISTER = 1,	/* REG_GPA refused */
	RMPT_TERM_NO_GHCB,		/* #VC before rmpt_snp_guest_ghcb_init() */
	RMPT_TERM_VC_UNHANDLED,		/* #VC for an exit other than IOIO */
	RMPT_TERM_VC_DECODE,		/* #VC IOIO on an unknown instruction */
	RMPT_TERM_VC_IOIO,		/* hypervisor failed the IOIO exit */
	RMPT_TERM_TEST,			/* free for tests */
};

/* What rmpt_guest_convert() returns: the stage that failed, or 0. */
enum rmpt_convert_err {
	RMPT_CONVERT_OK,
	RMPT_CONVERT_WALK,		/* no 4K PTE for the page */
	RMPT_CONVERT_PVALIDATE,
	RMPT_CONVERT_PSC,
};

/* Guest side: runs only inside an SNP guest (lib/snp_guest.c). */
u64 rmpt_guest_msr_protocol(u64 request);
int rmpt_guest_convert(u64 gva, u64 npages, bool to_private);
void __noreturn rmpt_guest_terminate(u8 set, u8 code);

/* Host, before launch: map the guest's page tables where it can walk them. */
void rmpt_snp_alias_page_tables(struct kvm_vm *vm);

/* ucall for SNP guests (lib/snp_guest_ucall.c), in include/snp_launch.h's order. */
void rmpt_snp_guest_ghcb_init(u32 vcpu_id);
void rmpt_snp_vc_entry(void);			/* the #VC gate's stub */
void rmpt_snp_vc_handler(struct ex_regs *regs);	/* called by the stub */
void rmpt_snp_ucall_init(struct kvm_vm *vm, u32 nr_vcpus);
u64 rmpt_snp_get_ucall(struct kvm_vcpu *vcpu, struct ucall *uc);
int rmpt_snp_vcpu_try_run(struct kvm_vcpu *vcpu);
bool rmpt_snp_term_exit(struct kvm_vcpu *vcpu, u8 *set, u8 *code);

#endif /* SELFTEST_KVM_SNP_GHCB_H */
