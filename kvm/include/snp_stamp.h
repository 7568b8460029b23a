/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * snp-rmp selftests: self-validating stamps, the words that guest and host
 * code store into shared pages and check there (snp_thp_split_stress).
 *
 * A stamp names its writer and its page and carries a check byte, so that
 * a reader tells a stamp from a torn or foreign value without knowing what
 * the writer did last:
 *
 *   63    56 55    48 47      32 31        8 7     0
 *   | magic | writer | page tag |    seq    | check |
 *
 * Sequence numbers have 24 bits and 0 means "never written"; a stale stamp
 * exactly 2^24 - 1 writes old would pass unnoticed.
 *
 * Guest and host run the same functions, so everything here but
 * rmpt_stamp_describe_want() (host only) is pure, calls no libc, is always
 * inlined and uses general registers only.
 */
#ifndef SELFTEST_KVM_SNP_STAMP_H
#define SELFTEST_KVM_SNP_STAMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "snp_rng.h"

#define RMPT_STAMP_MAGIC	0xa5ULL
#define RMPT_SEQ_BITS		24
#define RMPT_SEQ_MASK		((1U << RMPT_SEQ_BITS) - 1)
#define RMPT_SEQ_ANY		(~0U)	/* a reader that does not know the seq */
#define RMPT_WRITER_GUEST(v)	(0x80 | (v))
#define RMPT_WRITER_HOST(t)	(t)

static RMPT_GUEST_CODE __always_inline u32 rmpt_seq_next(u32 seq)
{
	return seq % RMPT_SEQ_MASK + 1;	/* 1..RMPT_SEQ_MASK: 0 means "never written" */
}

static RMPT_GUEST_CODE __always_inline u8 rmpt_stamp_check(u64 upper)
{
	return (upper * 0x9e3779b97f4a7c15ULL) >> 56;
}

static RMPT_GUEST_CODE __always_inline u64 rmpt_stamp_make(u8 writer, u32 seq, u64 page)
{
	u64 v = RMPT_STAMP_MAGIC << 56 | (u64)writer << 48 | (page & 0xffff) << 32 |
		(u64)(seq & RMPT_SEQ_MASK) << 8;

	return v | rmpt_stamp_check(v >> 8);
}

static RMPT_GUEST_CODE __always_inline u32 rmpt_stamp_seq(u64 stamp)
{
	return (stamp >> 8) & RMPT_SEQ_MASK;
}

static RMPT_GUEST_CODE __always_inline bool rmpt_stamp_is(u64 stamp, u8 writer, u64 page)
{
	return stamp >> 56 == RMPT_STAMP_MAGIC && (u8)(stamp >> 48) == writer &&
	       ((stamp >> 32) & 0xffff) == (page & 0xffff) &&
	       (u8)stamp == rmpt_stamp_check(stamp >> 8);
}

enum rmpt_verdict {
	RMPT_WORD_ZERO,
	RMPT_WORD_OK,
	RMPT_WORD_BAD,
};

/* want_seq: the last seq the reader itself wrote there (0: none), or RMPT_SEQ_ANY. */
static RMPT_GUEST_CODE __always_inline enum rmpt_verdict
rmpt_stamp_verify(u64 got, u8 writer, u64 page, u32 want_seq)
{
	if (!got)
		return RMPT_WORD_ZERO;
	if (!rmpt_stamp_is(got, writer, page) ||
	    (want_seq != RMPT_SEQ_ANY && rmpt_stamp_seq(got) != want_seq))
		return RMPT_WORD_BAD;
	return RMPT_WORD_OK;
}

/*
 * What a check wanted, for its failure message: 0 only, one exact stamp
 * (or 0 after a discard), or (a want whose seq is 0) 0 or any stamp of
 * that writer for that page.
 */
static inline void rmpt_stamp_describe_want(char *buf, size_t len, u64 want)
{
	if (!want)
		snprintf(buf, len, "0");
	else if (!rmpt_stamp_seq(want))
		snprintf(buf, len, "0 or a stamp by writer %#x for page tag %#lx",
			 (u8)(want >> 48), (want >> 32) & 0xffff);
	else
		snprintf(buf, len, "%#lx (0 only after a discard of the page)", want);
}

#endif /* SELFTEST_KVM_SNP_STAMP_H */
