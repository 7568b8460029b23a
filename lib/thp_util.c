// SPDX-License-Identifier: GPL-2.0-only
/*
 * THP state of the host: the sysfs mode and how much of a range is mapped
 * by huge pages, as the kernel reports it in smaps.
 */
#include <stdio.h>
#include <string.h>

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
