/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * snp-rmp selftests: the suite's library API.  Every symbol carries the
 * rmpt_ prefix so that it never clashes with the kvm selftests framework,
 * whose mainline lib/x86/sev.c already defines snp_* helpers.
 */
#ifndef SELFTEST_KVM_SNP_UTIL_H
#define SELFTEST_KVM_SNP_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RMPT_SZ_4K	0x1000UL
#define RMPT_SZ_2M	0x200000UL

/* THP (lib/thp_util.c) */
enum rmpt_thp_mode {
	RMPT_THP_UNKNOWN,
	RMPT_THP_NEVER,
	RMPT_THP_MADVISE,
	RMPT_THP_ALWAYS,
};

enum rmpt_thp_mode rmpt_thp_parse_mode(const char *sysfs_text);
enum rmpt_thp_mode rmpt_thp_mode(void);
const char *rmpt_thp_mode_name(enum rmpt_thp_mode mode);
size_t rmpt_smaps_anon_huge_kb(const char *smaps_path, const void *addr, size_t len);

#endif /* SELFTEST_KVM_SNP_UTIL_H */
