/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * SEV-SNP guest/host protocol: GHCB MSR protocol words, the GHCB page,
 * KVM_HC_MAP_GPA_RANGE attributes, PVALIDATE results, and the guest side
 * helpers built on them (lib/snp_guest*.c).
 *
 * The encoders are pure and callable from host and guest code.  Values are
 * those of the GHCB specification as the kernel defines them in
 * arch/x86/include/asm/sev-common.h (MSR protocol), arch/x86/include/asm/svm.h
 * (GHCB layout, IOIO exit information), arch/x86/include/uapi/asm/kvm_para.h
 * (MAP_GPA_RANGE) and arch/x86/include/asm/sev.h (PVALIDATE).
 */
#ifndef SELFTEST_KVM_SNP_GHCB_H
#define SELFTEST_KVM_SNP_GHCB_H

#include <stdbool.h>
#include <stddef.h>

#include "kvm_util.h"
#include "processor.h"
#include "ucall_common.h"

/* MSRs (msr-index.h: MSR_AMD64_SEV_ES_GHCB, MSR_AMD64_SEV). */
#define RMPT_MSR_GHCB			0xc0010130
#define RMPT_MSR_SEV_STATUS		0xc0010131
#define RMPT_SEV_STATUS_SEV		BIT_ULL(0)
#define RMPT_SEV_STATUS_SEV_ES		BIT_ULL(1)
#define RMPT_SEV_STATUS_SNP		BIT_ULL(2)
#define RMPT_SEV_STATUS_SNP_ALL		(RMPT_SEV_STATUS_SEV | RMPT_SEV_STATUS_SEV_ES | \
					 RMPT_SEV_STATUS_SNP)

/* MSR protocol: GHCBInfo in bits 11:0, data in 63:12. */
#define RMPT_GHCB_INFO_MASK		GENMASK_ULL(11, 0)
#define RMPT_GHCB_SEV_INFO_RESP		0x001
#define RMPT_GHCB_SEV_INFO_REQ		0x002
#define RMPT_GHCB_CPUID_REQ		0x004
#define RMPT_GHCB_CPUID_RESP		0x005
#define RMPT_GHCB_REG_GPA_REQ		0x012
#define RMPT_GHCB_REG_GPA_RESP		0x013
#define RMPT_GHCB_PSC_REQ		0x014
#define RMPT_GHCB_PSC_RESP		0x015
#define RMPT_GHCB_TERM_REQ		0x100

enum rmpt_psc_op {
	RMPT_PSC_PRIVATE = 1,
	RMPT_PSC_SHARED = 2,
};

enum rmpt_cpuid_reg {
	RMPT_CPUID_EAX,
	RMPT_CPUID_EBX,
	RMPT_CPUID_ECX,
	RMPT_CPUID_EDX,
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
	return ((u64)(set & 0xf) << 12) | ((u64)code << 16) | RMPT_GHCB_TERM_REQ;
}

static inline bool rmpt_ghcb_term_decode(u64 msr, u8 *set, u8 *code)
{
	*set = (msr >> 12) & 0xf;
	*code = (msr >> 16) & 0xff;
	return rmpt_ghcb_code(msr) == RMPT_GHCB_TERM_REQ;
}

/* CPUID request: function in 63:32, register in 31:30; value in 63:32. */
static inline u64 rmpt_ghcb_cpuid_req(u32 fn, enum rmpt_cpuid_reg reg)
{
	return ((u64)fn << 32) | ((u64)(reg & 3) << 30) | RMPT_GHCB_CPUID_REQ;
}

static inline u32 rmpt_ghcb_cpuid_resp_value(u64 msr)
{
	return msr >> 32;
}

/* SEV_INFO response: max version 63:48, min version 47:32, C-bit 31:24. */
static inline u16 rmpt_ghcb_sev_info_max(u64 msr)
{
	return msr >> 48;
}

static inline u16 rmpt_ghcb_sev_info_min(u64 msr)
{
	return (msr >> 32) & 0xffff;
}

static inline u8 rmpt_ghcb_sev_info_cbit(u64 msr)
{
	return (msr >> 24) & 0xff;
}

/* SNP guest: SEV_STATUS must report SEV, SEV-ES and SNP together. */
static inline bool rmpt_sev_status_is_snp(u64 sev_status)
{
	return (sev_status & RMPT_SEV_STATUS_SNP_ALL) == RMPT_SEV_STATUS_SNP_ALL;
}

/*
 * KVM_HC_MAP_GPA_RANGE, the exit KVM turns every SNP page-state change
 * into (Documentation/virt/kvm/x86/hypercalls.rst): a2 bits 3:0 page size,
 * bit 4 encrypted, bits 63:5 must be zero.
 */
#define RMPT_HC_MAP_GPA_RANGE		12
#define RMPT_MAP_GPA_PAGE_SZ_MASK	GENMASK_ULL(3, 0)
#define RMPT_MAP_GPA_ENCRYPTED		BIT_ULL(4)
#define RMPT_MAP_GPA_RSVD_MASK		GENMASK_ULL(63, 5)

enum rmpt_map_gpa_size {
	RMPT_MAP_GPA_4K = 0,
	RMPT_MAP_GPA_2M = 1,
	RMPT_MAP_GPA_1G = 2,
};

static inline u64 rmpt_map_gpa_attrs(bool encrypted, enum rmpt_map_gpa_size size)
{
	return (encrypted ? RMPT_MAP_GPA_ENCRYPTED : 0) | size;
}

/* False for reserved bits set or a page size the ABI does not define. */
static inline bool rmpt_map_gpa_attrs_decode(u64 attrs, bool *encrypted,
					     enum rmpt_map_gpa_size *size)
{
	u64 sz = attrs & RMPT_MAP_GPA_PAGE_SZ_MASK;

	if ((attrs & RMPT_MAP_GPA_RSVD_MASK) || sz > RMPT_MAP_GPA_1G)
		return false;
	*encrypted = attrs & RMPT_MAP_GPA_ENCRYPTED;
	*size = sz;
	return true;
}

/*
 * PVALIDATE: EAX is the return code; CF=1 means the RMP entry already was
 * in the requested state.  Linux reports that as the software code 255.
 */
#define RMPT_PVALIDATE_OK		0
#define RMPT_PVALIDATE_SIZEMISMATCH	6
#define RMPT_PVALIDATE_NOUPDATE		255

static inline int rmpt_pvalidate_result(u32 eax, bool cf)
{
	return cf ? RMPT_PVALIDATE_NOUPDATE : (int)eax;
}

/*
 * IOIO exit information (APM vol. 2 "IOIO intercept"; the same bits as
 * SVM_IOIO_* in arch/x86/include/asm/svm.h and IOIO_* in
 * arch/x86/coco/sev/shared.c): bit 0 IN, bits 6:4 operand size,
 * bits 9:7 address size, bits 31:16 port.
 */
#define RMPT_SVM_EXIT_IOIO		0x7b
#define RMPT_IOIO_TYPE_IN		BIT_ULL(0)
#define RMPT_IOIO_DATA_8		BIT_ULL(4)
#define RMPT_IOIO_DATA_16		BIT_ULL(5)
#define RMPT_IOIO_DATA_32		BIT_ULL(6)
#define RMPT_IOIO_ADDR_64		BIT_ULL(9)
#define RMPT_IOIO_PORT_SHIFT		16

static inline u64 rmpt_ioio_exit_info(u16 port, bool in, unsigned int bytes)
{
	u64 size = bytes == 1 ? RMPT_IOIO_DATA_8 :
		   bytes == 2 ? RMPT_IOIO_DATA_16 : RMPT_IOIO_DATA_32;

	return ((u64)port << RMPT_IOIO_PORT_SHIFT) | size | RMPT_IOIO_ADDR_64 |
	       (in ? RMPT_IOIO_TYPE_IN : 0);
}

/*
 * The 4K GHCB page (GHCB spec, struct ghcb in arch/x86/include/asm/svm.h),
 * with only the fields this suite uses named.  A field is an input to the
 * hypervisor only if its valid_bitmap bit (offset / 8) is set.
 */
struct rmpt_ghcb {
	u8 rsvd_000[0x1f8];
	u64 rax;			/* 0x1f8 */
	u8 rsvd_200[0x390 - 0x200];
	u64 sw_exit_code;		/* 0x390 */
	u64 sw_exit_info_1;		/* 0x398 */
	u64 sw_exit_info_2;		/* 0x3a0 */
	u64 sw_scratch;			/* 0x3a8 */
	u8 rsvd_3b0[0x3f0 - 0x3b0];
	u8 valid_bitmap[16];		/* 0x3f0 */
	u8 rsvd_400[0xffa - 0x400];
	u16 protocol_version;		/* 0xffa */
	u32 ghcb_usage;			/* 0xffc */
} __packed;

kvm_static_assert(sizeof(struct rmpt_ghcb) == 0x1000);
kvm_static_assert(offsetof(struct rmpt_ghcb, rax) == 0x1f8);
kvm_static_assert(offsetof(struct rmpt_ghcb, sw_exit_code) == 0x390);
kvm_static_assert(offsetof(struct rmpt_ghcb, valid_bitmap) == 0x3f0);
kvm_static_assert(offsetof(struct rmpt_ghcb, protocol_version) == 0xffa);

#define RMPT_GHCB_PROTOCOL_VERSION	2	/* SNP needs GHCB v2 */
#define RMPT_GHCB_DEFAULT_USAGE		0	/* the only usage KVM accepts */

static inline unsigned int rmpt_ghcb_valid_idx(size_t offset)
{
	return offset / sizeof(u64);
}

static inline void rmpt_ghcb_mark_valid(struct rmpt_ghcb *ghcb, size_t offset)
{
	unsigned int idx = rmpt_ghcb_valid_idx(offset);

	ghcb->valid_bitmap[idx / 8] |= 1 << (idx % 8);
}

static inline bool rmpt_ghcb_is_valid(const struct rmpt_ghcb *ghcb, size_t offset)
{
	unsigned int idx = rmpt_ghcb_valid_idx(offset);

	return ghcb->valid_bitmap[idx / 8] & (1 << (idx % 8));
}

/* x86-64 page-table entries, as the guest walks them. */
#define RMPT_PTE_PRESENT		BIT_ULL(0)
#define RMPT_PTE_HUGE			BIT_ULL(7)
#define RMPT_PTE_ADDR_MASK		GENMASK_ULL(51, 12)
#define RMPT_CR4_LA57			BIT_ULL(12)

static inline unsigned int rmpt_pt_index(u64 gva, int level)
{
	return (gva >> (12 + 9 * (level - 1))) & 511;
}

/* The C-bit may sit inside the address field (bit 51 on most parts). */
static inline u64 rmpt_pte_addr(u64 entry, u64 c_bit_mask)
{
	return entry & RMPT_PTE_ADDR_MASK & ~c_bit_mask;
}

/*
 * Guest virtual windows owned by this library; the framework allocates
 * from the bottom of the address space and never reaches them.
 *   RMPT_PT_ALIAS_GVA + gpa: every guest page-table page (lib/snp_guest_pt.c)
 *   RMPT_GHCB_AREA_GVA: per vCPU a GHCB page and a mailbox page
 */
#define RMPT_PT_ALIAS_GVA		0x7e0000000000ULL
#define RMPT_PT_ALIAS_MAX_GPA		BIT_ULL(40)
#define RMPT_GHCB_AREA_GVA		0x7d0000000000ULL
#define RMPT_GHCB_AREA_PAGES_PER_VCPU	2

/*
 * Termination reasons of this suite.  Reason sets 0 (GHCB spec, general)
 * and 1 (Linux) are defined in sev-common.h; this suite uses its own set.
 */
#define RMPT_TERM_SET			3

enum rmpt_term_code {
	RMPT_TERM_GHCB_REGISTER = 1,	/* REG_GPA refused */
	RMPT_TERM_NO_GHCB,		/* #VC before rmpt_snp_guest_ghcb_init() */
	RMPT_TERM_VC_UNHANDLED,		/* #VC for an exit other than IOIO */
	RMPT_TERM_VC_DECODE,		/* #VC IOIO on an unknown instruction */
	RMPT_TERM_VC_IOIO,		/* hypervisor failed the IOIO exit */
	RMPT_TERM_TEST,			/* free for tests */
};

/* Failure stages of rmpt_guest_convert(); 0 is success. */
enum rmpt_convert_err {
	RMPT_CONVERT_OK,
	RMPT_CONVERT_WALK,		/* no 4K PTE for the page */
	RMPT_CONVERT_PVALIDATE,
	RMPT_CONVERT_PSC,
};

/* What a PSC helper returns when the response code itself is wrong. */
#define RMPT_PSC_BAD_RESPONSE		BIT_ULL(32)

/* What the guest's address translation returns for an unmapped page. */
#define RMPT_INVALID_GPA		(~0ULL)

/* Guest side: runs only inside an SNP guest (lib/snp_guest.c). */
void rmpt_vmgexit(void);
u64 rmpt_guest_msr_protocol(u64 request);
u64 rmpt_guest_c_bit_mask(void);
u64 rmpt_guest_psc_4k(u64 gpa, enum rmpt_psc_op op);
int rmpt_pvalidate(u64 gva, bool size_2m, bool validate);
int rmpt_guest_convert(u64 gva, u64 npages, bool to_private);
void __noreturn rmpt_guest_terminate(u8 set, u8 code);

/* Guest page tables through the alias window (lib/snp_guest_pt.c). */
void rmpt_snp_alias_page_tables(struct kvm_vm *vm);	/* host, before launch */
u64 *rmpt_guest_pte(u64 gva);
u64 rmpt_guest_gva2gpa(u64 gva);
int rmpt_guest_set_c_bit(u64 gva, bool private);

/*
 * ucall for SNP guests (lib/snp_guest_ucall.c).  The framework's ucall
 * does "in" on port 0x1000 and the host reads RDI with KVM_GET_REGS; in
 * an SNP guest the "in" raises #VC and the registers are protected.  A
 * #VC handler forwards the "in" through the vCPU's GHCB and first stores
 * RDI (the ucall's host address) in a shared mailbox the host reads.
 * The port is UCALL_PIO_PORT of the framework's lib/x86_64/ucall.c
 * (lib/x86/ucall.c on mainline), which keeps it private.
 */
#define RMPT_UCALL_PIO_PORT		0x1000
#define RMPT_SNP_MAILBOX_MAGIC		0x786f626c69616d72ULL	/* "rmailbox" */

struct rmpt_snp_mailbox {
	u64 magic;
	u64 vcpu_id;
	u64 ucall_hva;		/* RDI of the last ucall */
	u64 ucall_seq;
	u64 vc_exit_code;	/* last #VC the handler could not serve */
	u64 vc_rip;
};

#define RMPT_VC_VECTOR			29	/* #VC */

void rmpt_snp_vc_entry(void);				/* IDT stub for #VC */
void rmpt_snp_vc_handler(struct ex_regs *regs);	/* called by the stub */
void rmpt_snp_guest_ghcb_init(u32 vcpu_id);		/* guest, first thing */
void rmpt_snp_ucall_init(struct kvm_vm *vm, u32 nr_vcpus);	/* host */
u64 rmpt_snp_get_ucall(struct kvm_vcpu *vcpu, struct ucall *uc);
const struct rmpt_snp_mailbox *rmpt_snp_mailbox(struct kvm_vcpu *vcpu);
int rmpt_snp_vcpu_try_run(struct kvm_vcpu *vcpu);
bool rmpt_snp_term_exit(struct kvm_vcpu *vcpu, u8 *set, u8 *code);

#endif /* SELFTEST_KVM_SNP_GHCB_H */
