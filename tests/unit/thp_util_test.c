// SPDX-License-Identifier: GPL-2.0-only
/*
 * lib/thp_util.c: the mode as sysfs shows it, the smaps parser and the
 * vmstat deltas on inputs whose answers are known, then the live probes on
 * a real THP area of this process, which must see a PMD mapping appear on
 * fault and go away when one 4K of it is discarded.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <linux/sizes.h>

#include "test_util.h"
#include "snp_util.h"

/* sysfs brackets the active mode: "always [madvise] never". */
static void test_mode(void)
{
	const char *got = rmpt_thp_mode_name(rmpt_thp_mode());
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
	char buf[128] = "", want[16] = "unknown";

	if (f) {
		if (fgets(buf, sizeof(buf), f) && strchr(buf, '['))
			sscanf(strchr(buf, '['), "[%15[^]]", want);
		fclose(f);
	}
	ksft_test_result(!strcmp(got, want), "thp_mode_as_sysfs (%s)\n", got);
}

/* Three VMAs: 0x200000-0x600000 (4096 kB huge), 0x600000-0x800000, 0xa00000-0xc00000. */
static const char smaps_text[] =
	"00200000-00600000 rw-p 00000000 00:00 0\n"
	"Size:               4096 kB\n"
	"AnonHugePages:      4096 kB\n"
	"00600000-00800000 rw-p 00000000 00:00 0\n"
	"Size:               2048 kB\n"
	"AnonHugePages:         0 kB\n"
	"00a00000-00c00000 rw-p 00000000 00:00 0 [heap]\n"
	"Size:               2048 kB\n"
	"AnonHugePages:      2048 kB\n";

static void test_smaps_anon_huge(void)
{
	static const struct {
		unsigned long addr, len;
		size_t kb;
	} cases[] = {
		{ 0x200000, 0x400000, 4096 },	/* exactly the first VMA */
		{ 0x200000, 0xa00000, 6144 },	/* all three */
		{ 0x600000, 0x200000, 0 },	/* the one without THP */
		{ 0x800000, 0x200000, 0 },	/* the hole between VMAs */
		{ 0x5ff000, 0x2000, 4096 },	/* straddles two VMAs */
	};
	char path[] = "/tmp/rmpt_smaps_XXXXXX";
	bool ok = true;
	size_t i, got;
	int fd;

	fd = mkstemp(path);
	TEST_ASSERT(fd >= 0, "mkstemp");
	TEST_ASSERT(write(fd, smaps_text, sizeof(smaps_text) - 1) ==
		    sizeof(smaps_text) - 1, "write %s", path);
	close(fd);

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		got = rmpt_smaps_anon_huge_kb(path, (void *)cases[i].addr, cases[i].len);
		if (got != cases[i].kb) {
			ksft_print_msg("[0x%lx, +0x%lx): expected %zu kB, got %zu kB\n",
				       cases[i].addr, cases[i].len, cases[i].kb, got);
			ok = false;
		}
	}
	unlink(path);
	ksft_test_result(ok, "smaps_anon_huge_kb\n");
}

static void test_vmstat_delta(void)
{
	struct rmpt_thp_stats before = { .val = { [RMPT_THP_SPLIT_PMD] = 12,
						  [RMPT_THP_COLLAPSE_ALLOC] = RMPT_STAT_ABSENT } };
	struct rmpt_thp_stats after = before;

	after.val[RMPT_THP_SPLIT_PMD] += 5;
	ksft_test_result(rmpt_thp_stat_delta(&before, &after, RMPT_THP_SPLIT_PMD) == 5 &&
			 rmpt_thp_stat_delta(&before, &after, RMPT_THP_COLLAPSE_ALLOC) ==
			 RMPT_STAT_ABSENT, "vmstat_delta\n");
}

static bool probe_says(const char *what, int got, int want)
{
	if (got == want)
		return true;
	ksft_print_msg("%s: expected %d, got %d%s%s\n", what, want, got,
		       got < 0 ? " " : "", got < 0 ? strerror(-got) : "");
	return false;
}

/*
 * Fault a THP in, discard one 4K of it, collapse it back: the probes must
 * follow each step, and thp_split_pmd must count the split.
 */
static void test_live_split_and_collapse(void)
{
	enum rmpt_thp_mode mode = rmpt_thp_mode();
	struct rmpt_thp_stats before, after;
	bool ok = true;
	char *raw, *area;
	int ret;

	if (mode != RMPT_THP_MADVISE && mode != RMPT_THP_ALWAYS) {
		ksft_test_result_skip("live_pmd_split: THP is %s in sysfs\n",
				      rmpt_thp_mode_name(mode));
		ksft_test_result_skip("live_collapse: THP is %s in sysfs\n",
				      rmpt_thp_mode_name(mode));
		return;
	}
	raw = mmap(NULL, 2 * SZ_2M, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	TEST_ASSERT(raw != MAP_FAILED, "mmap: %s", strerror(errno));
	area = align_ptr_up(raw, SZ_2M);
	TEST_ASSERT(!madvise(area, SZ_2M, MADV_HUGEPAGE), "MADV_HUGEPAGE: %s", strerror(errno));
	memset(area, 0x5a, SZ_2M);
	ok &= probe_says("PMD-mapped after fault", rmpt_pmd_mapped(area), 1);

	rmpt_thp_stats_read(&before);
	TEST_ASSERT(!madvise(area + 7 * SZ_4K, SZ_4K, MADV_DONTNEED),
		    "MADV_DONTNEED: %s", strerror(errno));
	rmpt_thp_stats_read(&after);
	ok &= probe_says("PMD-mapped after 4K discard", rmpt_pmd_mapped(area), 0);
	ok &= probe_says("thp_split_pmd delta >= 1",
			 rmpt_thp_stat_delta(&before, &after, RMPT_THP_SPLIT_PMD) >= 1, 1);
	ok &= probe_says("other pages kept", area[8 * SZ_4K] == 0x5a, 1);
	ksft_test_result(ok, "live_pmd_split\n");

	area[7 * SZ_4K] = 0x5a;
	ret = rmpt_collapse(area, SZ_2M);
	if (ret == -EAGAIN) {
		ksft_test_result_skip("live_collapse: MADV_COLLAPSE found no huge page now\n");
	} else {
		ok = probe_says("MADV_COLLAPSE", ret, 0);
		ok &= probe_says("PMD-mapped after collapse", rmpt_pmd_mapped(area), 1);
		ok &= probe_says("data kept by collapse", area[7 * SZ_4K] == 0x5a &&
				 area[SZ_2M - 1] == 0x5a, 1);
		ksft_test_result(ok, "live_collapse\n");
	}
	munmap(raw, 2 * SZ_2M);
}

int main(void)
{
	ksft_print_header();
	ksft_set_plan(5);
	test_mode();
	test_smaps_anon_huge();
	test_vmstat_delta();
	test_live_split_and_collapse();
	ksft_finished();
}
