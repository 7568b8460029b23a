/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * snp-rmp selftests: reproducible numbers, the same in guest and host
 * code: the splitmix64 generator and the FNV-1a hash.
 */
#ifndef SELFTEST_KVM_SNP_RNG_H
#define SELFTEST_KVM_SNP_RNG_H

#include <linux/compiler.h>
#include <linux/types.h>

/*
 * Code the guest runs uses general registers only: where KVM emulates every
 * guest store (a paravirtualized KVM host), an SSE instruction the compiler
 * picked to zero two words ends the guest with an emulation failure.
 */
#define RMPT_GUEST_CODE		__attribute__((target("general-regs-only")))

/* splitmix64 (Steele, Lea, Flood 2014): any state, even 0, is a good seed. */
static RMPT_GUEST_CODE __always_inline u64 rmpt_rng_next(u64 *state)
{
	u64 z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* FNV-1a, 64 bits: start from RMPT_FNV_OFFSET, mix in one value at a time. */
#define RMPT_FNV_OFFSET		0xcbf29ce484222325ULL
#define RMPT_FNV_PRIME		0x100000001b3ULL

static RMPT_GUEST_CODE __always_inline u64 rmpt_fnv_mix(u64 hash, u64 val)
{
	return (hash ^ val) * RMPT_FNV_PRIME;
}

#endif /* SELFTEST_KVM_SNP_RNG_H */
