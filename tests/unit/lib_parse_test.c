// SPDX-License-Identifier: GPL-2.0-only
/*
 * The library's small parsers and validators on fixed inputs: which
 * kernel log lines fail a case, which MAP_GPA_RANGE requests are carried
 * out, and flavour names.  No /dev/kvm needed.
 */
#include <string.h>
#include <linux/sizes.h>

#include "test_util.h"
#include "snp_util.h"

static void test_kmsg_lines(void)
{
	static const struct {
		const char *line;
		bool bad;
	} lines[] = {
		{ "WARNING: CPU: 1 PID: 42 at mm/huge_memory.c:3123 split_huge_pmd+0x1/0x2", true },
		{ "BUG: Bad page state in process qemu  pfn:12345", true },
		{ "kernel BUG at arch/x86/kvm/mmu/mmu.c:1234!", true },
		{ "Oops: general protection fault, probably for non-canonical address", true },
		{ "SEV-SNP: RMP violation at 0x1234, dumping the RMP entry", true },
		{ "bad page map in process x  pte:8000000012345067", true },
		{ "Call Trace:", true },
		{ "kvm: Nested Virtualization enabled", false },
		{ "snp-rmp-selftests: default 123.4.5 start", false },
		{ "warning: this is lowercase and harmless", false },
	};
	bool ok = true;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(lines); i++) {
		if (rmpt_kmsg_line_bad(lines[i].line) == lines[i].bad)
			continue;
		ksft_print_msg("'%s': expected %s, got %s\n", lines[i].line,
			       lines[i].bad ? "bad" : "clean", lines[i].bad ? "clean" : "bad");
		ok = false;
	}
	ksft_test_result(ok, "kmsg_line_bad\n");
}

static const char *verdict(bool valid, bool to_private)
{
	if (!valid)
		return "invalid";
	return to_private ? "valid, to private" : "valid, to shared";
}

static void test_map_gpa_requests(void)
{
	struct rmpt_vm rv = { .data_gpa = 4ULL << 30, .data_size = 4 * SZ_2M };
	static const struct {
		u64 gpa, npages, attrs;
		bool valid, to_private;
	} reqs[] = {
		{ 4ULL << 30, 1, 0x10, true, true },		/* 4K to private */
		{ (4ULL << 30) + 0x5000, 3, 0x0, true, false },	/* 4K pages to shared */
		{ (4ULL << 30) + SZ_2M, 512, 0x11, true, true },	/* a 2M entry */
		{ (4ULL << 30) + 0x800, 1, 0x10, false },	/* GPA not page-aligned */
		{ 4ULL << 30, 0, 0x10, false },			/* no pages */
		{ 4ULL << 30, 1, 0x30, false },			/* reserved bit 5 */
		{ 4ULL << 30, 1, 0x13, false },			/* page size 3 */
		{ (4ULL << 30) - 0x1000, 1, 0x10, false },	/* below the data region */
		{ (4ULL << 30) + 4 * SZ_2M - 0x1000, 2, 0x0, false },	/* runs past it */
		{ 4ULL << 30, -1ULL, 0x0, false },		/* absurd count */
	};
	bool ok = true, to_private, valid;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(reqs); i++) {
		to_private = !reqs[i].to_private;
		valid = rmpt_map_gpa_request_valid(&rv, reqs[i].gpa, reqs[i].npages,
						   reqs[i].attrs, &to_private);
		if (valid == reqs[i].valid && (!valid || to_private == reqs[i].to_private))
			continue;
		ksft_print_msg("gpa 0x%lx npages %lu attrs 0x%lx: expected %s, got %s\n",
			       reqs[i].gpa, reqs[i].npages, reqs[i].attrs,
			       verdict(reqs[i].valid, reqs[i].to_private),
			       verdict(valid, to_private));
		ok = false;
	}
	ksft_test_result(ok, "map_gpa_request_valid\n");
}

static void test_flavour_names(void)
{
	enum rmpt_flavour f, got;
	bool ok = true;

	for (f = 0; f < RMPT_NR_FLAVOURS; f++)
		ok &= !rmpt_flavour_parse(rmpt_flavour_name(f), &got) && got == f;
	ok &= !strcmp(rmpt_flavour_name(RMPT_SW_PROTECTED), "sw_protected");
	ok &= rmpt_flavour_parse("SNP", &got) == -EINVAL;
	ok &= rmpt_flavour_parse("", &got) == -EINVAL;
	ksft_test_result(ok, "flavour_names\n");
}

int main(void)
{
	ksft_print_header();
	ksft_set_plan(3);
	test_kmsg_lines();
	test_map_gpa_requests();
	test_flavour_names();
	ksft_finished();
}
