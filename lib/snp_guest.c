// SPDX-License-Identifier: GPL-2.0-only
/*
 * Guest side of the SEV-SNP memory contract: VMGEXIT, the GHCB MSR
 * protocol, PVALIDATE, page-state changes, termination, and converting a
 * page between private and shared.  This code runs only inside an SNP
 * guest; on machines without SNP it is compiled, never executed.
 */
#include "snp_ghcb.h"

void rmpt_vmgexit(void)
{
	/* VMGEXIT is "rep; vmmcall" (arch/x86/include/asm/sev.h). */
	asm volatile("rep; vmmcall" ::: "memory");
}

/*
 * One MSR-protocol exchange.  Once rmpt_snp_guest_ghcb_init() ran, the GHCB
 * MSR names this vCPU's GHCB page and the #VC handler relies on that, so
 * the previous value is put back.
 */
u64 rmpt_guest_msr_protocol(u64 request)
{
	u64 saved = rdmsr(RMPT_MSR_GHCB);
	u64 response;

	wrmsr(RMPT_MSR_GHCB, request);
	rmpt_vmgexit();
	response = rdmsr(RMPT_MSR_GHCB);
	wrmsr(RMPT_MSR_GHCB, saved);
	return response;
}

/*
 * The C-bit is CPUID 0x8000001F EBX[5:0].  The CPUID instruction would
 * raise #VC, so ask through the MSR protocol's CPUID request.  0 means the
 * hypervisor did not answer.
 */
u64 rmpt_guest_c_bit_mask(void)
{
	static u64 mask;
	u64 resp;

	if (mask)
		return mask;
	resp = rmpt_guest_msr_protocol(rmpt_ghcb_cpuid_req(0x8000001f, RMPT_CPUID_EBX));
	if (rmpt_ghcb_code(resp) != RMPT_GHCB_CPUID_RESP)
		return 0;
	mask = BIT_ULL(rmpt_ghcb_cpuid_resp_value(resp) & 0x3f);
	return mask;
}

/*
 * Page-state change of one 4K page through the MSR protocol.  KVM forwards
 * it to userspace as KVM_EXIT_HYPERCALL(KVM_HC_MAP_GPA_RANGE).  Returns the
 * response's error field (0 on success) or RMPT_PSC_BAD_RESPONSE.
 */
u64 rmpt_guest_psc_4k(u64 gpa, enum rmpt_psc_op op)
{
	u64 resp = rmpt_guest_msr_protocol(rmpt_ghcb_psc_req(gpa >> PAGE_SHIFT, op));

	if (rmpt_ghcb_code(resp) != RMPT_GHCB_PSC_RESP)
		return RMPT_PSC_BAD_RESPONSE;
	return rmpt_ghcb_psc_resp_error(resp);
}

/*
 * PVALIDATE (F2 0F 01 FF): RAX guest virtual address, ECX page size
 * (0 4K, 1 2M), EDX 1 validate / 0 rescind.  Returns EAX, or
 * RMPT_PVALIDATE_NOUPDATE when CF says the entry was already in that state.
 */
int rmpt_pvalidate(u64 gva, bool size_2m, bool validate)
{
	bool no_update;
	u32 rc;

	/* Spelled as bytes: binutils knows the mnemonic only since 2.36. */
	asm volatile(".byte 0xf2, 0x0f, 0x01, 0xff\n\t"
		     "setc %[cf]"
		     : "=a"(rc), [cf] "=qm"(no_update)
		     : "a"(gva), "c"((u32)size_2m), "d"((u32)validate)
		     : "memory", "cc");
	return rmpt_pvalidate_result(rc, no_update);
}

/* Ask for termination; KVM reports it as KVM_SYSTEM_EVENT_SEV_TERM. */
void rmpt_guest_terminate(u8 set, u8 code)
{
	wrmsr(RMPT_MSR_GHCB, rmpt_ghcb_term_req(set, code));
	rmpt_vmgexit();
	/* KVM does not resume a guest that asked to terminate. */
	for (;;)
		cpu_relax();
}

/*
 * The order of both conversions is the one a Linux SNP guest uses
 * (arch/x86/mm/mem_encrypt_amd.c:286-306 runs around the
 * page-table change in __set_memory_enc_pgtable(), and
 * arch/x86/coco/sev/core.c:817-866 orders PSC and PVALIDATE):
 *
 *   to shared:  PVALIDATE rescind -> PSC shared  -> clear C-bit, INVLPG
 *   to private: set C-bit, INVLPG -> PSC private -> PVALIDATE validate
 *
 * Validation is rescinded while the page is still private and mapped
 * encrypted, so the guest never keeps a validated page that the host can
 * take back.  A page is validated only after the RMP made it private again,
 * through the encrypted mapping PVALIDATE translates its address with.
 * The page must not be touched between the steps: an access whose C-bit
 * disagrees with the page's state exits as KVM_EXIT_MEMORY_FAULT.
 */
static int rmpt_make_shared_4k(u64 gva, u64 gpa)
{
	if (rmpt_pvalidate(gva, false, false) != RMPT_PVALIDATE_OK)
		return RMPT_CONVERT_PVALIDATE;
	if (rmpt_guest_psc_4k(gpa, RMPT_PSC_SHARED))
		return RMPT_CONVERT_PSC;
	if (rmpt_guest_set_c_bit(gva, false))
		return RMPT_CONVERT_WALK;
	return RMPT_CONVERT_OK;
}

static int rmpt_make_private_4k(u64 gva, u64 gpa)
{
	if (rmpt_guest_set_c_bit(gva, true))
		return RMPT_CONVERT_WALK;
	if (rmpt_guest_psc_4k(gpa, RMPT_PSC_PRIVATE))
		return RMPT_CONVERT_PSC;
	if (rmpt_pvalidate(gva, false, true) != RMPT_PVALIDATE_OK)
		return RMPT_CONVERT_PVALIDATE;
	return RMPT_CONVERT_OK;
}

/*
 * Convert [gva, gva + npages * 4K), page by page, in place.  Returns 0 or
 * the enum rmpt_convert_err stage that failed first.
 */
int rmpt_guest_convert(u64 gva, u64 npages, bool to_private)
{
	u64 i, va, gpa;
	int err;

	for (i = 0; i < npages; i++) {
		va = gva + i * PAGE_SIZE;
		gpa = rmpt_guest_gva2gpa(va);
		if (gpa == RMPT_INVALID_GPA)
			return RMPT_CONVERT_WALK;
		err = to_private ? rmpt_make_private_4k(va, gpa) :
				   rmpt_make_shared_4k(va, gpa);
		if (err)
			return err;
	}
	return RMPT_CONVERT_OK;
}
