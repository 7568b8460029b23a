/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The SNP launch uAPI of the 2022 host series "[PATCH Part2 v6 00/49] Add
 * AMD Secure Nested Paging (SEV-SNP)" (linux-coco, 2022), never merged.  The
 * VM is a DEFAULT one; guest RAM stays in the VMM's mapping and is
 * registered with KVM_MEMORY_ENCRYPT_REG_REGION.
 *
 * Its command numbers collide with upstream's (22 is KVM_SEV_INIT2
 * upstream), so the structs carry names of their own, and nothing here
 * may run unless the user explicitly opted in to a v6 kernel.
 */
#ifndef SELFTEST_KVM_SNP_LEGACY_V6_H
#define SELFTEST_KVM_SNP_LEGACY_V6_H

#include "kvm_util.h"

/* The v6 SNP commands followed KVM_SEV_SEND_CANCEL (21) in the enum. */
#define RMPT_V6_SEV_SNP_INIT		22
#define RMPT_V6_SEV_SNP_LAUNCH_START	23
#define RMPT_V6_SEV_SNP_LAUNCH_UPDATE	24
#define RMPT_V6_SEV_SNP_LAUNCH_FINISH	25

/* v6 LAUNCH_UPDATE page types; 2 (VMSA) was still accepted then. */
#define RMPT_V6_PAGE_TYPE_NORMAL	0x1
#define RMPT_V6_PAGE_TYPE_VMSA		0x2

#define RMPT_V6_HOST_DATA_SIZE		32

/* Layouts: tests/unit/snp_encoding_test.c checks every size and offset. */
struct rmpt_v6_snp_init {
	u64 flags;
};

struct rmpt_v6_snp_launch_start {
	u64 policy;
	u64 ma_uaddr;
	u8 ma_en;
	u8 imi_en;
	u8 gosvw[16];
	u8 pad[6];
};

struct rmpt_v6_snp_launch_update {
	u64 start_gfn;
	u64 uaddr;
	u32 len;
	u8 imi_page;
	u8 page_type;
	u8 vmpl3_perms;
	u8 vmpl2_perms;
	u8 vmpl1_perms;
};

struct rmpt_v6_snp_launch_finish {
	u64 id_block_uaddr;
	u64 id_auth_uaddr;
	u8 id_block_en;
	u8 auth_key_en;
	u8 host_data[RMPT_V6_HOST_DATA_SIZE];
	u8 pad[6];
};

#endif /* SELFTEST_KVM_SNP_LEGACY_V6_H */
