// SPDX-License-Identifier: GPL-2.0-only
/*
 * An SNP guest converts a page by flipping the C-bit in its own page
 * table, so it must reach its page-table pages.  The framework builds them
 * in guest memory but maps none of them into the guest.  Before launch
 * the host therefore maps every page-table page at RMPT_PT_ALIAS_GVA plus
 * its GPA, and the guest walks its tables from CR3 through that window.
 */
#include "snp_ghcb.h"

/* Set by the host once the window covers every page-table page. */
static bool rmpt_pt_alias_ready;

/*
 * Framework compat: on mainline the root and depth of the guest tables live
 * in vm->mmu, the same rework that made PTE masks per MMU and added
 * PTE_C_BIT_MASK(); 6.12 keeps them in struct kvm_vm itself.
 */
#ifdef PTE_C_BIT_MASK
#define rmpt_vm_pgd(vm)			((vm)->mmu.pgd)
#define rmpt_vm_pgd_created(vm)		((vm)->mmu.pgd_created)
#define rmpt_vm_pt_levels(vm)		((vm)->mmu.pgtable_levels)
#else
#define rmpt_vm_pgd(vm)			((vm)->pgd)
#define rmpt_vm_pgd_created(vm)		((vm)->pgd_created)
#define rmpt_vm_pt_levels(vm)		((vm)->pgtable_levels)
#endif

/* Map one page-table page into the window; false if it already was. */
static bool rmpt_alias_one(struct kvm_vm *vm, u64 gpa)
{
	u64 gva = RMPT_PT_ALIAS_GVA + gpa;

	TEST_ASSERT(gpa < RMPT_PT_ALIAS_MAX_GPA,
		    "page table page: expected a GPA below 0x%llx, got 0x%lx",
		    RMPT_PT_ALIAS_MAX_GPA, gpa);
	if (sparsebit_is_set(vm->vpages_mapped, gva >> vm->page_shift))
		return false;
	virt_map(vm, gva, gpa, 1);
	return true;
}

/* Alias the table at @gpa and every table below it; true if any was new. */
static bool rmpt_alias_table(struct kvm_vm *vm, u64 gpa, int level)
{
	u64 *table = addr_gpa2hva(vm, gpa);
	bool added = rmpt_alias_one(vm, gpa);
	u64 entry;
	int i;

	if (level == 1)
		return added;
	for (i = 0; i < 512; i++) {
		entry = table[i];
		if (!(entry & RMPT_PTE_PRESENT) || (entry & RMPT_PTE_HUGE))
			continue;
		if (rmpt_alias_table(vm, rmpt_pte_addr(entry, vm->arch.c_bit), level - 1))
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
	TEST_ASSERT(rmpt_vm_pgd_created(vm),
		    "aliasing page tables: expected a created PGD, got none");
	TEST_ASSERT(!vm->arch.is_pt_protected,
		    "aliasing page tables: expected host-readable tables, got protected ones (after launch?)");

	while (rmpt_alias_table(vm, rmpt_vm_pgd(vm), rmpt_vm_pt_levels(vm)))
		;
	rmpt_pt_alias_ready = true;
	sync_global_to_guest(vm, rmpt_pt_alias_ready);
}

/* Guest: pointer to the 4K PTE of @gva through the window, or NULL. */
u64 *rmpt_guest_pte(u64 gva)
{
	u64 c_bit = rmpt_guest_c_bit_mask();
	int level = (get_cr4() & RMPT_CR4_LA57) ? 5 : 4;
	u64 table = rmpt_pte_addr(get_cr3(), c_bit);
	u64 *pte;

	if (!READ_ONCE(rmpt_pt_alias_ready) || !c_bit)
		return NULL;
	for (;; level--) {
		if (table >= RMPT_PT_ALIAS_MAX_GPA)
			return NULL;
		pte = (u64 *)(RMPT_PT_ALIAS_GVA + table) + rmpt_pt_index(gva, level);
		if (level == 1)
			return pte;
		if (!(*pte & RMPT_PTE_PRESENT) || (*pte & RMPT_PTE_HUGE))
			return NULL;
		table = rmpt_pte_addr(*pte, c_bit);
	}
}

u64 rmpt_guest_gva2gpa(u64 gva)
{
	u64 *pte = rmpt_guest_pte(gva);

	if (!pte || !(*pte & RMPT_PTE_PRESENT))
		return RMPT_INVALID_GPA;
	return rmpt_pte_addr(*pte, rmpt_guest_c_bit_mask()) | (gva & (PAGE_SIZE - 1));
}

/*
 * Set or clear the C-bit of the 4K mapping of @gva and drop its TLB entry
 * on this vCPU.  Other vCPUs that may cache it are the caller's business.
 * Returns 0, or -1 if @gva has no present 4K PTE.
 */
int rmpt_guest_set_c_bit(u64 gva, bool private)
{
	u64 c_bit = rmpt_guest_c_bit_mask();
	u64 *pte = rmpt_guest_pte(gva);
	u64 val;

	if (!pte || !(*pte & RMPT_PTE_PRESENT))
		return -1;
	val = private ? *pte | c_bit : *pte & ~c_bit;
	WRITE_ONCE(*pte, val);
	asm volatile("invlpg (%0)" : : "r"(gva) : "memory");
	return 0;
}
