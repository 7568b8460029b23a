// SPDX-License-Identifier: GPL-2.0-only
/*
 * lib/thp_util.c on fixed inputs: the sysfs mode parser and the smaps
 * AnonHugePages sum, against a synthetic smaps file whose answer is known.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "test_util.h"
#include "snp_util.h"

static void test_parse_mode(void)
{
	static const struct {
		const char *text;
		enum rmpt_thp_mode mode;
	} cases[] = {
		{ "always [madvise] never\n", RMPT_THP_MADVISE },
		{ "[always] madvise never\n", RMPT_THP_ALWAYS },
		{ "always madvise [never]\n", RMPT_THP_NEVER },
		{ "always defer defer+madvise [madvise] never\n", RMPT_THP_MADVISE },
		{ "", RMPT_THP_UNKNOWN },
		{ "madvise", RMPT_THP_UNKNOWN },
	};
	enum rmpt_thp_mode got;
	bool ok = true;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		got = rmpt_thp_parse_mode(cases[i].text);
		if (got != cases[i].mode) {
			ksft_print_msg("'%s': expected %s, got %s\n", cases[i].text,
				       rmpt_thp_mode_name(cases[i].mode),
				       rmpt_thp_mode_name(got));
			ok = false;
		}
	}
	ksft_test_result(ok, "thp_parse_mode\n");
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

int main(void)
{
	ksft_print_header();
	ksft_set_plan(2);
	test_parse_mode();
	test_smaps_anon_huge();
	ksft_finished();
}
