// SPDX-License-Identifier: GPL-2.0-only
/*
 * Setting up a run of snp_thp_split_stress (include/snp_stress.h): which
 * flavour, conversions and THP checks this machine allows (a SKIP up front
 * names what is missing), then the VM, its data region placed on the
 * planned NUMA nodes, the control area the guest reads, and a first touch
 * of every 2M range so that the splitter finds PMD mappings at once.
 */
#include <stdio.h>
#include <string.h>

#include "snp_stress.h"

#define PREFAULT_WORD		(RMPT_WORDS_PER_PAGE - 1)	/* nobody stamps it */

const char *const rmpt_inject_names[RMPT_NR_INJECTS] = {
	[RMPT_INJECT_NONE] = "none",
	[RMPT_INJECT_UNEXPECTED_SIGBUS] = "unexpected_sigbus",
	[RMPT_INJECT_MISSED_SIGBUS] = "missed_sigbus",
	[RMPT_INJECT_HOST_MISMATCH] = "host_mismatch",
	[RMPT_INJECT_LOST_WRITE] = "lost_write",
	[RMPT_INJECT_GUEST_MISMATCH] = "guest_mismatch",
	[RMPT_INJECT_KVM_RUN_ERROR] = "kvm_run_error",
	[RMPT_INJECT_NO_SPLIT] = "no_split",
	[RMPT_INJECT_NO_COLLAPSE] = "no_collapse",
	[RMPT_INJECT_KMSG] = "kmsg",
};

/* ---- flavour, THP, conversions ------------------------------------------- */

static const enum rmpt_flavour flavour_order[] = { RMPT_SNP, RMPT_SW_PROTECTED, RMPT_DEFAULT };

/* The -f flavour if usable, else the strongest usable; false and why if none. */
bool rmpt_stress_choose_flavour(struct rmpt_stress *s, char *why, size_t len)
{
	size_t i;

	if (s->p.flavour_given)
		return rmpt_flavour_usable(&s->caps, s->p.flavour, why, len);
	for (i = 0; i < ARRAY_SIZE(flavour_order); i++) {
		if (rmpt_flavour_usable(&s->caps, flavour_order[i], why, len)) {
			s->p.flavour = flavour_order[i];
			return true;
		}
	}
	return false;
}

/* SKIP up front, naming what is missing. */
void rmpt_stress_pick_flavour(struct rmpt_stress *s)
{
	char why[512];

	if (s->p.flavour == RMPT_LEGACY_V6)
		ksft_exit_skip("flavour legacy_v6: not covered here (in-kernel conversions)\n");
	if (!rmpt_stress_choose_flavour(s, why, sizeof(why)))
		ksft_exit_skip("flavour %s: %s\n",
			       s->p.flavour_given ? rmpt_flavour_name(s->p.flavour) : "any", why);
}

/* Which conversions the guest can do, and if none, why, naming each flavour's lack. */
void rmpt_stress_pick_conversions(struct rmpt_stress *s)
{
	char snp[256], swp[256];

	switch (s->p.flavour) {
	case RMPT_SNP:
		s->conv = RMPT_CONV_SNP_PSC;
		return;
	case RMPT_SW_PROTECTED:
		s->conv = RMPT_CONV_HYPERCALL;
		return;
	default:
		s->conv = RMPT_CONV_NONE;
	}
	if (rmpt_flavour_usable(&s->caps, RMPT_SNP, snp, sizeof(snp)))
		snprintf(snp, sizeof(snp), "usable, not chosen");
	if (rmpt_flavour_usable(&s->caps, RMPT_SW_PROTECTED, swp, sizeof(swp)))
		snprintf(swp, sizeof(swp), "usable, not chosen");
	snprintf(s->conv_why, sizeof(s->conv_why),
		 "flavour %s has no private memory attributes to convert (snp: %s; sw_protected: %s)",
		 rmpt_flavour_name(s->p.flavour), snp, swp);
}

void rmpt_stress_pick_thp(struct rmpt_stress *s)
{
	s->thp_on = rmpt_thp_usable(&s->caps, s->thp_why, sizeof(s->thp_why));
}

/* ---- the VM and its memory ----------------------------------------------- */

/* Before the first touch, so that every fault allocates on the planned node. */
static void place_memory(struct rmpt_stress *s)
{
	u64 c;

	if (s->p.numa_node >= 0)
		return;		/* rmpt_vm_create() bound the whole region */
	for (c = 0; c < s->l.nr_chunks; c++)
		rmpt_numa_place_range(rmpt_stress_chunk_hva(s, c), RMPT_SZ_2M,
				      rmpt_numa_node(c));
}

/* Touch every 2M range once, so that the splitter finds PMD mappings at once. */
static void prefault(struct rmpt_stress *s)
{
	u64 c;

	for (c = s->l.ctl_chunks; c < s->l.nr_chunks; c++) {
		WRITE_ONCE(((u64 *)rmpt_stress_chunk_hva(s, c))[PREFAULT_WORD], 0);
		s->huge_at_start += rmpt_pmd_mapped(rmpt_stress_chunk_hva(s, c)) == 1;
	}
}

static void fill_ctl(struct rmpt_stress *s)
{
	struct rmpt_stress_ctl *ctl = s->ctl;

	memset(ctl, 0, sizeof(*ctl));
	ctl->magic = RMPT_CTL_MAGIC;
	ctl->seed = s->p.seed;
	ctl->nr_vcpus = s->p.nr_vcpus;
	ctl->nr_threads = s->p.nr_threads;
	ctl->first_page = s->l.first_page;
	ctl->vcpu_pages = s->l.vcpu_pages;
	ctl->conv_mode = s->conv;
	ctl->conv_per_mille = s->conv == RMPT_CONV_NONE ? 0 : s->p.conv_per_mille;
	ctl->max_ops = s->p.max_ops;
	ctl->sched_ops = RMPT_SCHED_HASH_OPS;
	ctl->inject = s->p.inject;
	ctl->region_pages = s->l.nr_chunks * RMPT_PAGES_PER_2M;
}

void rmpt_stress_create_vm(struct rmpt_stress *s, void *guest_code)
{
	struct rmpt_vm_params vp = {
		.flavour = s->p.flavour,
		.nr_vcpus = s->p.nr_vcpus,
		.guest_code = guest_code,
		.data_size = s->p.mem_mib << 20,
		.backing = s->thp_on ? VM_MEM_SRC_ANONYMOUS_THP : VM_MEM_SRC_ANONYMOUS,
		.numa_node = s->p.numa_node,
	};

	s->rv = rmpt_vm_create(&s->caps, &vp);
	s->ctl = (struct rmpt_stress_ctl *)s->rv->data_hva;
	place_memory(s);
	fill_ctl(s);
	prefault(s);
}

void rmpt_stress_print_setup(struct rmpt_stress *s)
{
	const struct rmpt_stress_params *p = &s->p;
	const struct rmpt_layout *l = &s->l;

	ksft_print_msg("flavour %s, seed 0x%lx (rerun with -s 0x%lx)\n",
		       rmpt_flavour_name(p->flavour), p->seed, p->seed);
	ksft_print_msg("%lu s%s, %u vCPUs, %u host threads, %lu MiB, NUMA %s of %d node(s)\n",
		       p->duration_s, p->quick ? " (quick)" : "", p->nr_vcpus, p->nr_threads,
		       p->mem_mib, p->numa_node < 0 ? "spread" : "bound", rmpt_numa_nodes());
	ksft_print_msg("layout: control %lu MiB, %lu MiB per vCPU, %lu MiB host-only\n",
		       l->ctl_chunks * 2, l->vcpu_pages * RMPT_SZ_4K >> 20,
		       (l->nr_pages - l->vcpu_pages * p->nr_vcpus) * RMPT_SZ_4K >> 20);
	ksft_print_msg("%d of %lu 2M ranges PMD-mapped at start\n", s->huge_at_start,
		       l->nr_chunks - l->ctl_chunks);
	/* MADV_REMOVE needs a shared mapping: the data region is private anonymous. */
	ksft_print_msg("splitter: MADV_DONTNEED of 4K in the data region; 1 in %d ops %s\n",
		       RMPT_PUNCH_ONE_IN, s->rv->view ?
		       "PUNCH_HOLE the guest_memfd view instead of MADV_REMOVE" :
		       "also MADV_DONTNEED (no guest_memfd view)");
	if (!s->rv->view)
		ksft_print_msg("private probes skipped: %s\n", s->rv->view_why);
	if (s->conv == RMPT_CONV_NONE)
		ksft_print_msg("conversion actors: SKIP: %s\n", s->conv_why);
	if (!s->thp_on)
		ksft_print_msg("THP: %s; split and collapse checks skipped\n", s->thp_why);
	if (p->inject)
		ksft_print_msg("TEST-ONLY fault injection: %s\n", rmpt_inject_names[p->inject]);
}
