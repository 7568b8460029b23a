// SPDX-License-Identifier: GPL-2.0-only
/*
 * THP state of the host: the sysfs mode, whether a 2M range is PMD-mapped
 * (PAGEMAP_SCAN) or backed by one THP folio (pagemap + kpageflags), smaps'
 * AnonHugePages, MADV_COLLAPSE and the THP counters of /proc/vmstat.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <linux/fs.h>
#include <linux/kernel-page-flags.h>

#include "test_util.h"
#include "snp_util.h"

#define THP_ENABLED_PATH "/sys/kernel/mm/transparent_hugepage/enabled"

/* sysfs shows every mode with the active one in brackets: "always [madvise] never". */
enum rmpt_thp_mode rmpt_thp_parse_mode(const char *sysfs_text)
{
	if (strstr(sysfs_text, "[always]"))
		return RMPT_THP_ALWAYS;
	if (strstr(sysfs_text, "[madvise]"))
		return RMPT_THP_MADVISE;
	if (strstr(sysfs_text, "[never]"))
		return RMPT_THP_NEVER;
	return RMPT_THP_UNKNOWN;
}

enum rmpt_thp_mode rmpt_thp_mode(void)
{
	char buf[128] = "";
	FILE *f;

	f = fopen(THP_ENABLED_PATH, "r");
	if (!f)
		return RMPT_THP_UNKNOWN;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	fclose(f);
	return rmpt_thp_parse_mode(buf);
}

const char *rmpt_thp_mode_name(enum rmpt_thp_mode mode)
{
	switch (mode) {
	case RMPT_THP_NEVER:
		return "never";
	case RMPT_THP_MADVISE:
		return "madvise";
	case RMPT_THP_ALWAYS:
		return "always";
	default:
		return "unknown";
	}
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
	char line[512];
	FILE *f;

	f = fopen(smaps_path, "r");
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

/* The caller's view of a 2M range: aligned, reserved with MADV_HUGEPAGE. */
void *rmpt_thp_alloc(size_t size)
{
	size_t span = size + RMPT_SZ_2M;
	char *raw, *aligned;

	TEST_ASSERT(size && !(size % RMPT_SZ_2M),
		    "THP area size must be a non-zero multiple of 2M, got 0x%zx", size);
	raw = mmap(NULL, span, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	TEST_ASSERT(raw != MAP_FAILED, "mmap(0x%zx) failed: %s", span, strerror(errno));
	aligned = align_ptr_up(raw, RMPT_SZ_2M);
	if (aligned != raw)
		munmap(raw, aligned - raw);
	munmap(aligned + size, raw + span - (aligned + size));
	TEST_ASSERT(!madvise(aligned, size, MADV_HUGEPAGE),
		    "MADV_HUGEPAGE failed: %s", strerror(errno));
	return aligned;
}

void rmpt_thp_free(void *addr, size_t size)
{
	TEST_ASSERT(!munmap(addr, size), "munmap(%p, 0x%zx): %s", addr, size, strerror(errno));
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
		.end = (unsigned long)addr + RMPT_SZ_2M,
		.vec = (unsigned long)&region,
		.vec_len = 1,
		.category_mask = PAGE_IS_HUGE,
		.return_mask = PAGE_IS_HUGE,
	};
	long ret;
	int fd;

	TEST_ASSERT(!((unsigned long)addr % RMPT_SZ_2M), "%p is not 2M-aligned", addr);
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

static int pread_u64(int fd, u64 index, u64 *val)
{
	ssize_t n = pread(fd, val, sizeof(*val), index * sizeof(*val));

	if (n == sizeof(*val))
		return 0;
	return n < 0 ? -errno : -EIO;
}

/*
 * Is every 4K of [addr, addr + 2M) present and part of one THP folio: one
 * compound head at a 2M-aligned PFN followed by its 511 tails?  This is
 * the backing, not the mapping level: a THP whose PMD was split but whose
 * folio was not yet split still passes.  Needs root (PFNs are hidden
 * otherwise).  Returns 1 or 0, or -errno when it cannot tell.
 */
int rmpt_thp_backed(const void *addr)
{
	u64 vpn = (unsigned long)addr / RMPT_SZ_4K, ent, flags, pfn0 = 0;
	int pagemap, kpageflags, ret = 1;
	u64 i, want;

	TEST_ASSERT(!((unsigned long)addr % RMPT_SZ_2M), "%p is not 2M-aligned", addr);
	pagemap = open("/proc/self/pagemap", O_RDONLY);
	if (pagemap < 0)
		return -errno;
	kpageflags = open("/proc/kpageflags", O_RDONLY);
	if (kpageflags < 0) {
		ret = -errno;
		close(pagemap);
		return ret;
	}
	for (i = 0; i < RMPT_SZ_2M / RMPT_SZ_4K && ret == 1; i++) {
		ret = pread_u64(pagemap, vpn + i, &ent);
		if (ret)
			break;
		if (!(ent & RMPT_PM_PRESENT)) {
			ret = 0;
			break;
		}
		if (!(ent & RMPT_PM_PFN_MASK)) {
			ret = -EPERM;	/* PFNs read as zero without CAP_SYS_ADMIN */
			break;
		}
		if (!i)
			pfn0 = ent & RMPT_PM_PFN_MASK;
		ret = pread_u64(kpageflags, ent & RMPT_PM_PFN_MASK, &flags);
		if (ret)
			break;
		want = BIT_ULL(KPF_THP) | BIT_ULL(i ? KPF_COMPOUND_TAIL : KPF_COMPOUND_HEAD);
		ret = (flags & want) == want && (ent & RMPT_PM_PFN_MASK) == pfn0 + i &&
		      !(pfn0 % (RMPT_SZ_2M / RMPT_SZ_4K));
	}
	close(kpageflags);
	close(pagemap);
	return ret;
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
	[RMPT_THP_FAULT_ALLOC] = "thp_fault_alloc",
	[RMPT_THP_FAULT_FALLBACK] = "thp_fault_fallback",
	[RMPT_THP_COLLAPSE_ALLOC] = "thp_collapse_alloc",
	[RMPT_THP_SPLIT_PAGE] = "thp_split_page",
	[RMPT_THP_SPLIT_PMD] = "thp_split_pmd",
	[RMPT_THP_DEFERRED_SPLIT] = "thp_deferred_split_page",
};

const char *rmpt_thp_stat_name(enum rmpt_thp_stat stat)
{
	return thp_vmstat_names[stat];
}

/* Counters absent from this kernel's /proc/vmstat read as RMPT_STAT_ABSENT. */
void rmpt_thp_stats_parse(FILE *vmstat, struct rmpt_thp_stats *stats)
{
	char name[64];
	u64 val;
	int i;

	for (i = 0; i < RMPT_NR_THP_STATS; i++)
		stats->val[i] = RMPT_STAT_ABSENT;
	while (fscanf(vmstat, "%63s %lu", name, &val) == 2) {
		for (i = 0; i < RMPT_NR_THP_STATS; i++)
			if (!strcmp(name, thp_vmstat_names[i]))
				stats->val[i] = val;
	}
}

void rmpt_thp_stats_read(struct rmpt_thp_stats *stats)
{
	FILE *f = fopen("/proc/vmstat", "r");

	TEST_ASSERT(f, "open /proc/vmstat: %s", strerror(errno));
	rmpt_thp_stats_parse(f, stats);
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
