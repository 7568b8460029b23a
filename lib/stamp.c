// SPDX-License-Identifier: GPL-2.0-only
/*
 * The host-only half of the stamps of include/snp_stamp.h: what a check
 * wanted, as words for its failure message.  It formats with libc, so it
 * lives here and not beside the inline functions the guest runs.
 */
#include <stdio.h>

#include "snp_stamp.h"

/*
 * What a check wanted: 0 only, one exact stamp (or 0 after a discard), or
 * (a want whose seq is 0) 0 or any stamp of that writer for that page.
 */
void rmpt_stamp_describe_want(char *buf, size_t len, u64 want)
{
	if (!want)
		snprintf(buf, len, "0");
	else if (!rmpt_stamp_seq(want))
		snprintf(buf, len, "0 or a stamp by writer %#x for page tag %#lx",
			 (u8)(want >> 48), (want >> 32) & 0xffff);
	else
		snprintf(buf, len, "%#lx (0 only after a discard of the page)", want);
}
