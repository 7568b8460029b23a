// SPDX-License-Identifier: GPL-2.0-only
/*
 * THP state of the host: the sysfs mode, whether a 2M range is PMD-mapped
 * (PAGEMAP_SCAN), smaps' AnonHugePages, MADV_COLLAPSE and the THP counters
 * of /proc/vmstat.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <linux/fs.h>
#include <linux/sizes.h>

#include "snp_util.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE		25	/* include/uapi/asm-generic/mman-common.h, 6.1+ */
#endif

/* sysfs shows every mode with the active one in brackets: "always [madvise] never". */
enum rmpt_thp_mode rmpt_thp_mode(void)
{
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
	char buf[128] = "";

	if (f) {
		if (!fgets(buf, sizeof(buf), f))
			buf[0] = '\0';
		fclose(f);
	}
	if (strstr(buf, "[always]"))
		return RMPT_THP_ALWAYS;
	if (strstr(buf, "[madvise]"))
		return RMPT_THP_MADVISE;
	if (strstr(buf, "[never]"))
		return RMPT_THP_NEVER;
	return RMPT_THP_UNKNOWN;
}

const char *rmpt_thp_mode_name(enum rmpt_thp_mode mode)
{
	static const char *const names[] = {
		[RMPT_THP_UNKNOWN] = "unknown", [RMPT_THP_NEVER] = "never",
		[RMPT_THP_MADVISE] = "madvise", [RMPT_THP_ALWAYS] = "always",
	};

	return mode < ARRAY_SIZE(names) ? names[mode] : names[RMPT_THP_UNKNOWN];
}

/*
 * Sum AnonHugePages over the smaps VMAs that overlap [addr, addr + len).
 * A VMA only partly inside the range counts whole: callers pass ranges that
 * are whole mappings.
 */
size_t rmpt_smaps_anon_huge_kb(const char *smaps_path, const void *addr, size_t len)
{
	unsigned long start = (unsigned long)addr, end = start + len;
	unsigned long vm_start, vm_end;
	bool inside = false;
	size_t total = 0, kb;
	FILE *f = fopen(smaps_path, "r");
	char line[512];

	TEST_ASSERT(f, "open %s", smaps_path);
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &vm_start, &vm_end) == 2)
			inside = vm_start < end && start < vm_end;
		else if (inside && sscanf(line, "AnonHugePages: %zu kB", &kb) == 1)
			total += kb;
	}
	fclose(f);
	return total;
}

/*
 * PAGEMAP_SCAN (6.7+) reports PAGE_IS_HUGE for a PMD-mapped THP and not for
 * a THP that is only mapped by PTEs, which is exactly the split we look for.
 * Returns 1 or 0, or -errno when the kernel cannot answer.
 */
int rmpt_pmd_mapped(const void *addr)
{
	struct page_region region = {};
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.start = (unsigned long)addr,
		.end = (unsigned long)addr + SZ_2M,
		.vec = (unsigned long)&region,
		.vec_len = 1,
		.category_mask = PAGE_IS_HUGE,
		.return_mask = PAGE_IS_HUGE,
	};
	long ret;
	int fd;

	TEST_ASSERT(!((unsigned long)addr % SZ_2M), "%p is not 2M-aligned", addr);
	fd = open("/proc/self/pagemap", O_RDONLY);
	if (fd < 0)
		return -errno;
	ret = ioctl(fd, PAGEMAP_SCAN, &arg);
	if (ret < 0)
		ret = -errno;
	close(fd);
	if (ret < 0)
		return ret;
	return ret == 1 && region.start == arg.start && region.end == arg.end;
}

/*
 * MADV_COLLAPSE, with its answers sorted: 0 collapsed, -EAGAIN for the
 * transient failures a caller may retry or count (EAGAIN: lock or page
 * contention, ENOMEM: no huge page to allocate), any other -errno is a
 * permanent refusal (EINVAL: not supported on this range or kernel).
 */
int rmpt_collapse(void *addr, size_t len)
{
	if (!madvise(addr, len, MADV_COLLAPSE))
		return 0;
	if (errno == EAGAIN || errno == ENOMEM || errno == EBUSY)
		return -EAGAIN;
	return -errno;
}

static const char *const thp_vmstat_names[RMPT_NR_THP_STATS] = {
	[RMPT_THP_COLLAPSE_ALLOC] = "thp_collapse_alloc",
	[RMPT_THP_SPLIT_PMD] = "thp_split_pmd",
};

/* Counters absent from this kernel's /proc/vmstat read as RMPT_STAT_ABSENT. */
void rmpt_thp_stats_read(struct rmpt_thp_stats *stats)
{
	FILE *f = fopen("/proc/vmstat", "r");
	char name[64];
	u64 val;
	int i;

	TEST_ASSERT(f, "open /proc/vmstat: %s", strerror(errno));
	for (i = 0; i < RMPT_NR_THP_STATS; i++)
		stats->val[i] = RMPT_STAT_ABSENT;
	while (fscanf(f, "%63s %lu", name, &val) == 2) {
		for (i = 0; i < RMPT_NR_THP_STATS; i++)
			if (!strcmp(name, thp_vmstat_names[i]))
				stats->val[i] = val;
	}
	fclose(f);
}

/* after - before; RMPT_STAT_ABSENT where either side lacks the counter. */
u64 rmpt_thp_stat_delta(const struct rmpt_thp_stats *before,
			const struct rmpt_thp_stats *after, enum rmpt_thp_stat stat)
{
	if (before->val[stat] == RMPT_STAT_ABSENT || after->val[stat] == RMPT_STAT_ABSENT)
		return RMPT_STAT_ABSENT;
	return after->val[stat] - before->val[stat];
}
