// SPDX-License-Identifier: GPL-2.0-only
/*
 * The self-validating stamps of include/snp_stamp.h, which the guest and
 * the host threads of snp_thp_split_stress write and check.
 * Every expected stamp below is a literal worked out from the layout in
 * the header (magic a5, writer, low 16 bits of the page, 24-bit seq, and
 * the top byte of (stamp >> 8) * 0x9e3779b97f4a7c15), never the output of
 * the code under test.  No VM runs here.
 */
#include <stdio.h>
#include <string.h>
#include <linux/bits.h>

#include "test_util.h"
#include "snp_stamp.h"

struct stamp_case {
	u8 writer;
	u32 seq;
	u64 page;
	u64 stamp;	/* by hand */
	u32 seq_kept;	/* what rmpt_stamp_seq() reads back */
};

static const struct stamp_case cases[] = {
	{ 0x81, 1, 0x200, 0xa58102000000011eULL, 1 },
	/* only the page's low 16 bits are kept, as its tag */
	{ 0x05, 0xffffff, 0x12345, 0xa5052345ffffffefULL, 0xffffff },
	/* only 24 bits of seq are kept */
	{ 0x00, 0x1234567, 0xffff, 0xa500ffff234567cbULL, 0x234567 },
	/* seq 0: what a check wants when any stamp of the writer will do */
	{ 0x81, 0, 0x2345, 0xa5812345000000e8ULL, 0 },
	{ RMPT_WRITER_GUEST(0), 1, 0, 0xa5800000000001d5ULL, 1 },
};

static void test_make(void)
{
	const struct stamp_case *c;
	bool ok = true;
	size_t i;
	u64 got;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		c = &cases[i];
		got = rmpt_stamp_make(c->writer, c->seq, c->page);
		if (got == c->stamp && rmpt_stamp_seq(got) == c->seq_kept)
			continue;
		ksft_print_msg("writer %#x seq %#x page %#lx: expected %#lx (seq %#x)\n",
			       c->writer, c->seq, c->page, c->stamp, c->seq_kept);
		ksft_print_msg("  got %#lx (seq %#x)\n", got, rmpt_stamp_seq(got));
		ok = false;
	}
	ksft_test_result(ok, "stamp_make_follows_the_layout\n");
}

static void test_seq_next(void)
{
	static const u32 from[] = { 0, 1, 0xfffffe, 0xffffff };
	static const u32 want[] = { 1, 2, 0xffffff, 1 };
	bool ok = true;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(from); i++) {
		if (rmpt_seq_next(from[i]) == want[i])
			continue;
		ksft_print_msg("seq_next(%#x): expected %#x, got %#x\n", from[i], want[i],
			       rmpt_seq_next(from[i]));
		ok = false;
	}
	ksft_test_result(ok, "seq_next_wraps_past_zero\n");
}

/* A stamp is its own proof: any one bit flipped, and it is no stamp. */
static bool flips_rejected(const struct stamp_case *c)
{
	bool ok = rmpt_stamp_is(c->stamp, c->writer, c->page);
	int b;

	if (!ok)
		ksft_print_msg("%#lx: expected a stamp of writer %#x, got none\n", c->stamp,
			       c->writer);
	for (b = 0; b < 64; b++) {
		if (!rmpt_stamp_is(c->stamp ^ BIT_ULL(b), c->writer, c->page))
			continue;
		ksft_print_msg("%#lx with bit %d flipped: expected no stamp, got one\n",
			       c->stamp, b);
		ok = false;
	}
	return ok;
}

static void test_bit_flips(void)
{
	bool ok = true;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(cases); i++)
		ok = flips_rejected(&cases[i]) && ok;
	ksft_test_result(ok, "stamp_is_rejects_every_one_bit_flip\n");
}

struct verify_case {
	const char *what;
	u64 got;
	u8 writer;
	u64 page;
	u32 want_seq;
	enum rmpt_verdict verdict;
};

/* 0xa581234500010537: writer 0x81, page tag 0x2345, seq 0x105. */
static const struct verify_case verify_cases[] = {
	{ "discarded", 0, 0x81, 0x2345, 0x105, RMPT_WORD_ZERO },
	{ "own last write", 0xa581234500010537ULL, 0x81, 0x2345, 0x105, RMPT_WORD_OK },
	{ "own older write", 0xa581234500010537ULL, 0x81, 0x2345, 0x106, RMPT_WORD_BAD },
	{ "someone else's, any seq", 0xa581234500010537ULL, 0x81, 0x2345, RMPT_SEQ_ANY,
	  RMPT_WORD_OK },
	{ "tag aliases: page 0x12345", 0xa581234500010537ULL, 0x81, 0x12345, RMPT_SEQ_ANY,
	  RMPT_WORD_OK },
	{ "another writer's", 0xa581234500010537ULL, 0x80, 0x2345, RMPT_SEQ_ANY, RMPT_WORD_BAD },
	{ "another page's", 0xa581234500010537ULL, 0x81, 0x2346, RMPT_SEQ_ANY, RMPT_WORD_BAD },
	/* the low 16 bits of seq 0x206's stamp 0xa58123450002060c */
	{ "torn", 0xa58123450001060cULL, 0x81, 0x2345, RMPT_SEQ_ANY, RMPT_WORD_BAD },
	/* what the host_mismatch and guest_mismatch injections store */
	{ "seq bit 0 flipped", 0xa581234500010437ULL, 0x81, 0x2345, RMPT_SEQ_ANY,
	  RMPT_WORD_BAD },
};

static void test_verify(void)
{
	const struct verify_case *c;
	enum rmpt_verdict got;
	bool ok = true;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(verify_cases); i++) {
		c = &verify_cases[i];
		got = rmpt_stamp_verify(c->got, c->writer, c->page, c->want_seq);
		if (got == c->verdict)
			continue;
		ksft_print_msg("%s (%#lx): expected verdict %d, got %d\n", c->what, c->got,
			       c->verdict, got);
		ok = false;
	}
	ksft_test_result(ok, "stamp_verify_verdicts\n");
}

static void test_describe_want(void)
{
	static const struct {
		u64 want;
		const char *text;
	} words[] = {
		{ 0, "0" },
		{ 0xa5812345000000e8ULL, "0 or a stamp by writer 0x81 for page tag 0x2345" },
		{ 0xa58102000000011eULL,
		  "0xa58102000000011e (0 only after a discard of the page)" },
	};
	char buf[96];
	bool ok = true;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(words); i++) {
		rmpt_stamp_describe_want(buf, sizeof(buf), words[i].want);
		if (!strcmp(buf, words[i].text))
			continue;
		ksft_print_msg("want %#lx: expected \"%s\", got \"%s\"\n", words[i].want,
			       words[i].text, buf);
		ok = false;
	}
	ksft_test_result(ok, "describe_want_in_words\n");
}

int main(void)
{
	ksft_print_header();
	ksft_set_plan(5);
	test_make();
	test_seq_next();
	test_bit_flips();
	test_verify();
	test_describe_want();
	ksft_finished();
}
