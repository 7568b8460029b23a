// SPDX-License-Identifier: GPL-2.0-only
/*
 * Guest side of the SEV-SNP memory contract: the GHCB MSR protocol,
 * PVALIDATE, page-state changes, termination, and converting a page
 * between private and shared.  This code runs only inside an SNP guest;
 * on machines without SNP it is compiled, never executed.
 *
 * A conversion flips the C-bit in the guest's own page table, so the guest
 * must reach its page-table pages.  The framework builds them in guest
 * memory but maps none of them into the guest: before launch the host maps
 * every page-table page at PT_ALIAS_GVA plus its GPA, and the guest walks
 * its tables from CR3 through that window.
 */
#include "snp_ghcb.h"

#define PT_ALIAS_GVA		0x7e0000000000ULL
#define PT_ALIAS_MAX_GPA	BIT_ULL(40)
/* Mainline's processor.h has per-MMU PTE masks, which the guest cannot reach. */
#define PT_PRESENT		BIT_ULL(0)
#define PT_HUGE			BIT_ULL(7)
/* psc_4k() when the response code itself is wrong. */
#define PSC_BAD_RESPONSE	BIT_ULL(32)

/*
 * Framework compat: on mainline the root and depth of the guest tables live
 * in vm->mmu, the same rework that added PTE_C_BIT_MASK(); 6.12 keeps them
 * in struct kvm_vm itself.
 */
#ifdef PTE_C_BIT_MASK
#define vm_pgd(vm)		((vm)->mmu.pgd)
#define vm_pgd_created(vm)	((vm)->mmu.pgd_created)
#define vm_pt_levels(vm)	((vm)->mmu.pgtable_levels)
#else
#define vm_pgd(vm)		((vm)->pgd)
#define vm_pgd_created(vm)	((vm)->pgd_created)
#define vm_pt_levels(vm)	((vm)->pgtable_levels)
#endif

/* Set by the host once the window covers every page-table page. */
static bool pt_alias_ready;

/*
 * One MSR-protocol exchange.  Once rmpt_snp_guest_ghcb_init() ran, the GHCB
 * MSR names this vCPU's GHCB page and the #VC handler relies on that, so
 * the previous value is put back.
 */
u64 rmpt_guest_msr_protocol(u64 request)
{
	u64 saved = rdmsr(MSR_AMD64_SEV_ES_GHCB);
	u64 response;

	wrmsr(MSR_AMD64_SEV_ES_GHCB, request);
	vmgexit();
	response = rdmsr(MSR_AMD64_SEV_ES_GHCB);
	wrmsr(MSR_AMD64_SEV_ES_GHCB, saved);
	return response;
}

/* KVM reports it as KVM_SYSTEM_EVENT_SEV_TERM and never resumes the guest. */
void rmpt_guest_terminate(u8 set, u8 code)
{
	wrmsr(MSR_AMD64_SEV_ES_GHCB, rmpt_ghcb_term_req(set, code));
	vmgexit();
	for (;;)
		cpu_relax();
}

/* The C-bit, CPUID 0x8000001F EBX[5:0], by MSR protocol (CPUID raises #VC); 0: no answer. */
static u64 c_bit_mask(void)
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

/* The C-bit may sit inside the address field (bit 51 on most parts). */
static u64 pte_addr(u64 entry, u64 c_bit)
{
	return PTE_GET_PA(entry) & ~c_bit;
}

/* Map the table at gpa and every table below it; true if any was new. */
static bool alias_table(struct kvm_vm *vm, u64 gpa, int level)
{
	u64 *table = addr_gpa2hva(vm, gpa);
	u64 gva = PT_ALIAS_GVA + gpa;
	bool added = false;
	int i;

	TEST_ASSERT(gpa < PT_ALIAS_MAX_GPA,
		    "page table page: expected a GPA below 0x%llx, got 0x%lx",
		    PT_ALIAS_MAX_GPA, gpa);
	if (!sparsebit_is_set(vm->vpages_mapped, gva >> vm->page_shift)) {
		virt_map(vm, gva, gpa, 1);
		added = true;
	}
	for (i = 0; level > PG_LEVEL_4K && i < 512; i++) {
		if ((table[i] & PT_PRESENT) && !(table[i] & PT_HUGE) &&
		    alias_table(vm, pte_addr(table[i], vm->arch.c_bit), level - 1))
			added = true;
	}
	return added;
}

/*
 * Host, after the last guest mapping and before launch (the tables are
 * measured and encrypted by LAUNCH_UPDATE).  Aliasing adds tables of its
 * own, so repeat until a pass maps nothing new.
 */
void rmpt_snp_alias_page_tables(struct kvm_vm *vm)
{
	TEST_ASSERT(vm_pgd_created(vm), "aliasing page tables: expected a created PGD, got none");
	TEST_ASSERT(!vm->arch.is_pt_protected,
		    "aliasing page tables: expected host-readable tables, got protected ones (after launch?)");

	while (alias_table(vm, vm_pgd(vm), vm_pt_levels(vm)))
		;
	pt_alias_ready = true;
	sync_global_to_guest(vm, pt_alias_ready);
}

/* The present 4K PTE of gva, through the window, or NULL. */
static u64 *guest_pte(u64 gva)
{
	u64 c_bit = c_bit_mask(), table = pte_addr(get_cr3(), c_bit), *pte;
	int level = (get_cr4() & X86_CR4_LA57) ? 5 : 4;

	if (!READ_ONCE(pt_alias_ready) || !c_bit)
		return NULL;
	for (;; level--) {
		if (table >= PT_ALIAS_MAX_GPA)
			return NULL;
		pte = (u64 *)(PT_ALIAS_GVA + table) + ((gva >> PG_LEVEL_SHIFT(level)) & 511);
		if (!(*pte & PT_PRESENT) || (level > PG_LEVEL_4K && (*pte & PT_HUGE)))
			return NULL;
		if (level == PG_LEVEL_4K)
			return pte;
		table = pte_addr(*pte, c_bit);
	}
}

/* Set or clear gva's C-bit and INVLPG it here; other vCPUs are the caller's business. */
static int set_c_bit(u64 gva, bool private)
{
	u64 *pte = guest_pte(gva), c_bit = c_bit_mask();

	if (!pte)
		return RMPT_CONVERT_WALK;
	WRITE_ONCE(*pte, private ? *pte | c_bit : *pte & ~c_bit);
	asm volatile("invlpg (%0)" : : "r"(gva) : "memory");
	return 0;
}

/*
 * Page-state change of one 4K page through the MSR protocol; KVM forwards
 * it to userspace as KVM_EXIT_HYPERCALL(KVM_HC_MAP_GPA_RANGE).  Returns the
 * response's error field (0 on success) or PSC_BAD_RESPONSE.
 */
static u64 psc_4k(u64 gpa, enum rmpt_psc_op op)
{
	u64 resp = rmpt_guest_msr_protocol(rmpt_ghcb_psc_req(gpa >> PAGE_SHIFT, op));

	if (rmpt_ghcb_code(resp) != RMPT_GHCB_PSC_RESP)
		return PSC_BAD_RESPONSE;
	return rmpt_ghcb_psc_resp_error(resp);
}

/*
 * PVALIDATE (F2 0F 01 FF): RAX guest virtual address, ECX page size
 * (0 4K, 1 2M), EDX 1 validate / 0 rescind.
 */
static int pvalidate_4k(u64 gva, bool validate)
{
	bool no_update;
	u32 rc;

	/* Spelled as bytes: binutils knows the mnemonic only since 2.36. */
	asm volatile(".byte 0xf2, 0x0f, 0x01, 0xff\n\t"
		     "setc %[cf]"
		     : "=a"(rc), [cf] "=qm"(no_update)
		     : "a"(gva), "c"(0), "d"((u32)validate)
		     : "memory", "cc");
	return rmpt_pvalidate_result(rc, no_update);
}

/*
 * Both conversions in a Linux SNP guest's order (__set_memory_enc_pgtable()
 * of arch/x86/mm/mem_encrypt_amd.c; arch/x86/coco/sev/core.c orders PSC and
 * PVALIDATE):
 *
 *   to shared:  PVALIDATE rescind -> PSC shared  -> clear C-bit, INVLPG
 *   to private: set C-bit, INVLPG -> PSC private -> PVALIDATE validate
 *
 * So the guest never keeps a validated page the host can take back, and
 * validates a page only once the RMP made it private again, through the
 * encrypted mapping.  The page must not be touched between the steps: an
 * access whose C-bit disagrees with its state exits as KVM_EXIT_MEMORY_FAULT.
 */
static int convert_4k(u64 gva, u64 gpa, bool to_private)
{
	if (!to_private && pvalidate_4k(gva, false) != RMPT_PVALIDATE_OK)
		return RMPT_CONVERT_PVALIDATE;
	if (to_private && set_c_bit(gva, true))
		return RMPT_CONVERT_WALK;
	if (psc_4k(gpa, to_private ? RMPT_PSC_PRIVATE : RMPT_PSC_SHARED))
		return RMPT_CONVERT_PSC;
	if (!to_private && set_c_bit(gva, false))
		return RMPT_CONVERT_WALK;
	if (to_private && pvalidate_4k(gva, true) != RMPT_PVALIDATE_OK)
		return RMPT_CONVERT_PVALIDATE;
	return RMPT_CONVERT_OK;
}

/* Convert [gva, gva + npages * 4K) in place; 0 or the first rmpt_convert_err stage. */
int rmpt_guest_convert(u64 gva, u64 npages, bool to_private)
{
	u64 i, va, *pte;
	int err;

	for (i = 0; i < npages; i++) {
		va = gva + i * PAGE_SIZE;
		pte = guest_pte(va);
		if (!pte)
			return RMPT_CONVERT_WALK;
		err = convert_4k(va, pte_addr(*pte, c_bit_mask()), to_private);
		if (err)
			return err;
	}
	return RMPT_CONVERT_OK;
}
