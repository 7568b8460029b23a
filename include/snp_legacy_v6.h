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
#define RMPT_V6_PAGE_TYPE_ZERO		0x3
#define RMPT_V6_PAGE_TYPE_UNMEASURED	0x4
#define RMPT_V6_PAGE_TYPE_SECRETS	0x5
#define RMPT_V6_PAGE_TYPE_CPUID		0x6

#define RMPT_V6_HOST_DATA_SIZE		32

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

/*
 * Layouts with natural alignment (struct alignment 8 from the u64s):
 * init:   flags 0..8                                         = 8
 * start:  policy 0, ma_uaddr 8, ma_en 16, imi_en 17,
 *         gosvw 18..34, pad 34..40                           = 40
 * update: start_gfn 0, uaddr 8, len 16..20, imi_page 20,
 *         page_type 21, vmpl3 22, vmpl2 23, vmpl1 24; 25
 *         rounded up to 8                                    = 32
 * finish: id_block_uaddr 0, id_auth_uaddr 8, id_block_en 16,
 *         auth_key_en 17, host_data 18..50, pad 50..56       = 56
 */
kvm_static_assert(sizeof(struct rmpt_v6_snp_init) == 8);
kvm_static_assert(sizeof(struct rmpt_v6_snp_launch_start) == 40);
kvm_static_assert(offsetof(struct rmpt_v6_snp_launch_start, ma_en) == 16);
kvm_static_assert(offsetof(struct rmpt_v6_snp_launch_start, gosvw) == 18);
kvm_static_assert(offsetof(struct rmpt_v6_snp_launch_start, pad) == 34);
kvm_static_assert(sizeof(struct rmpt_v6_snp_launch_update) == 32);
kvm_static_assert(offsetof(struct rmpt_v6_snp_launch_update, len) == 16);
kvm_static_assert(offsetof(struct rmpt_v6_snp_launch_update, page_type) == 21);
kvm_static_assert(offsetof(struct rmpt_v6_snp_launch_update, vmpl1_perms) == 24);
kvm_static_assert(sizeof(struct rmpt_v6_snp_launch_finish) == 56);
kvm_static_assert(offsetof(struct rmpt_v6_snp_launch_finish, id_block_en) == 16);
kvm_static_assert(offsetof(struct rmpt_v6_snp_launch_finish, host_data) == 18);
kvm_static_assert(offsetof(struct rmpt_v6_snp_launch_finish, pad) == 50);

#endif /* SELFTEST_KVM_SNP_LEGACY_V6_H */
