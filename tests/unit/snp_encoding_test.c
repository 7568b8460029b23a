// SPDX-License-Identifier: GPL-2.0-only
/*
 * The SNP encodings and layouts of include/snp_ghcb.h, snp_launch.h and
 * snp_legacy_v6.h, pinned to values computed by hand from the GHCB spec
 * and the uAPI.  Every expected value below is a literal, never the output
 * of the code under test.  No SNP guest runs here.
 */
#include <stdio.h>
#include <string.h>

#include "test_util.h"
#include "kvm_util.h"
#include "snp_util.h"
#include "snp_legacy_v6.h"

static bool ok;

static void expect(const char *what, u64 got, u64 want)
{
	if (got == want)
		return;
	ksft_print_msg("%s: expected 0x%lx, got 0x%lx\n", what, want, got);
	ok = false;
}

static void begin(void)
{
	ok = true;
}

static void test_psc(void)
{
	begin();
	/* (1 << 52) | (0x12345 << 12) | 0x014 */
	expect("psc private gfn 0x12345", rmpt_ghcb_psc_req(0x12345, RMPT_PSC_PRIVATE),
	       0x0010000012345014);
	/* (2 << 52) | (0x12345 << 12) | 0x014 */
	expect("psc shared gfn 0x12345", rmpt_ghcb_psc_req(0x12345, RMPT_PSC_SHARED),
	       0x0020000012345014);
	/* the widest GFN, 40 bits: (2 << 52) | (0xffffffffff << 12) | 0x014 */
	expect("psc shared gfn 2^40-1", rmpt_ghcb_psc_req(0xffffffffffULL, RMPT_PSC_SHARED),
	       0x002ffffffffff014);
	/* bit 40 of the GFN does not fit and must not leak into the op */
	expect("psc gfn bit 40 dropped", rmpt_ghcb_psc_req(0x10000000001ULL, RMPT_PSC_PRIVATE),
	       0x0010000000001014);

	expect("psc resp 0x100000015 code", rmpt_ghcb_code(0x0000000100000015), 0x15);
	expect("psc resp 0x100000015 error", rmpt_ghcb_psc_resp_error(0x0000000100000015), 1);
	expect("psc resp 0x15 error", rmpt_ghcb_psc_resp_error(0x15), 0);
	expect("psc resp BIT(63)|0x15 error",
	       rmpt_ghcb_psc_resp_error(0x8000000000000015), 0x80000000);
	ksft_test_result(ok, "ghcb_msr_psc\n");
}

static void test_reg_gpa(void)
{
	begin();
	/* (0x12345 << 12) | 0x012 */
	expect("reg_gpa req gfn 0x12345", rmpt_ghcb_reg_gpa_req(0x12345), 0x12345012);
	/* 52-bit GFN: (0xfffffffffffff << 12) | 0x012 */
	expect("reg_gpa req gfn 2^52-1", rmpt_ghcb_reg_gpa_req(0xfffffffffffffULL),
	       0xfffffffffffff012);
	expect("reg_gpa resp 0x12345013 gfn", rmpt_ghcb_reg_gpa_resp_gfn(0x12345013), 0x12345);
	expect("reg_gpa resp 0x12345013 code", rmpt_ghcb_code(0x12345013), 0x013);
	ksft_test_result(ok, "ghcb_msr_reg_gpa\n");
}

static void test_term(void)
{
	u8 set = 0, code = 0;
	bool is_term;

	begin();
	/* (1 << 12) | (2 << 16) | 0x100 = 0x1000 + 0x20000 + 0x100 */
	expect("term set 1 code 2", rmpt_ghcb_term_req(1, 2), 0x21100);
	/* (0xf << 12) | (0xff << 16) | 0x100 */
	expect("term set 0xf code 0xff", rmpt_ghcb_term_req(0xf, 0xff), 0xfff100);
	/* set 3 code 6: 0x3000 + 0x60000 + 0x100 */
	expect("term suite set/test code", rmpt_ghcb_term_req(RMPT_TERM_SET, RMPT_TERM_TEST),
	       0x63100);
	is_term = rmpt_ghcb_term_decode(0x21100, &set, &code);
	expect("term decode 0x21100 is term", is_term, 1);
	expect("term decode 0x21100 set", set, 1);
	expect("term decode 0x21100 code", code, 2);
	/* what the upstream smoke test sees: set 0 code 0 */
	is_term = rmpt_ghcb_term_decode(0x100, &set, &code);
	expect("term decode 0x100", is_term && !set && !code, 1);
	expect("term decode 0x21015 is not term", rmpt_ghcb_term_decode(0x21015, &set, &code), 0);
	ksft_test_result(ok, "ghcb_msr_term\n");
}

static void test_cpuid(void)
{
	begin();
	/* (0x8000001f << 32) | (1 << 30) | 0x004 */
	expect("cpuid req 0x8000001f ebx", rmpt_ghcb_cpuid_req(0x8000001f, RMPT_CPUID_EBX),
	       0x8000001f40000004);
	/* (1 << 32) | (3 << 30) | 0x004 */
	expect("cpuid req 1 edx", rmpt_ghcb_cpuid_req(1, 3), 0x1c0000004);
	expect("cpuid resp value", rmpt_ghcb_cpuid_resp_value(0x0000016f00000005), 0x16f);
	ksft_test_result(ok, "ghcb_msr_cpuid\n");
}

static void test_map_gpa(void)
{
	enum rmpt_map_gpa_size size = RMPT_MAP_GPA_1G;
	bool enc = false, valid;

	begin();
	expect("map_gpa private 4K", rmpt_map_gpa_attrs(true, RMPT_MAP_GPA_4K), 0x10);
	expect("map_gpa private 2M", rmpt_map_gpa_attrs(true, RMPT_MAP_GPA_2M), 0x11);
	expect("map_gpa shared 4K", rmpt_map_gpa_attrs(false, RMPT_MAP_GPA_4K), 0x0);
	expect("map_gpa shared 2M", rmpt_map_gpa_attrs(false, RMPT_MAP_GPA_2M), 0x1);

	valid = rmpt_map_gpa_attrs_decode(0x11, &enc, &size);
	expect("map_gpa decode 0x11", valid && enc && size == RMPT_MAP_GPA_2M, 1);
	valid = rmpt_map_gpa_attrs_decode(0x0, &enc, &size);
	expect("map_gpa decode 0x0", valid && !enc && size == RMPT_MAP_GPA_4K, 1);
	valid = rmpt_map_gpa_attrs_decode(0x12, &enc, &size);
	expect("map_gpa decode 0x12 (1G)", valid && enc && size == RMPT_MAP_GPA_1G, 1);
	expect("map_gpa reject 0x20", rmpt_map_gpa_attrs_decode(0x20, &enc, &size), 0);
	expect("map_gpa reject 0x13", rmpt_map_gpa_attrs_decode(0x13, &enc, &size), 0);
	expect("map_gpa reject bit 63",
	       rmpt_map_gpa_attrs_decode(0x8000000000000010, &enc, &size), 0);
	expect("KVM_HC_MAP_GPA_RANGE", KVM_HC_MAP_GPA_RANGE, 12);
	expect("KVM_MAP_GPA_RANGE_ENCRYPTED", KVM_MAP_GPA_RANGE_ENCRYPTED, 0x10);
	expect("KVM_MAP_GPA_RANGE_PAGE_SZ_2M", KVM_MAP_GPA_RANGE_PAGE_SZ_2M, 0x1);
	ksft_test_result(ok, "map_gpa_range_attrs\n");
}

static void test_policy(void)
{
	begin();
	/* bit 17 must be one; bit 19 allows debugging; bit 16 allows SMT */
	expect("policy has bit 17", rmpt_snp_policy() & 0x20000, 0x20000);
	expect("policy only bits 16, 17", rmpt_snp_policy() & ~0x30000ULL, 0);
	ksft_test_result(ok, "snp_policy\n");
}

static void test_msrs_pvalidate_ioio(void)
{
	begin();
	expect("GHCB MSR", MSR_AMD64_SEV_ES_GHCB, 0xc0010130);
	expect("pvalidate ok", rmpt_pvalidate_result(0, false), 0);
	expect("pvalidate size mismatch", rmpt_pvalidate_result(6, false), 6);
	expect("pvalidate CF", rmpt_pvalidate_result(0, true), 255);
	/* in al, dx on 0x1000: port << 16 | ADDR_64 (0x200) | DATA_8 (0x10) | IN (1) */
	expect("ioio in8 0x1000", rmpt_ioio_exit_info(0x1000, true, 1), 0x10000211);
	/* out dx, eax on 0x3f8: 0x3f8 << 16 | 0x200 | DATA_32 (0x40) */
	expect("ioio out32 0x3f8", rmpt_ioio_exit_info(0x3f8, false, 4), 0x03f80240);
	/* in ax, 0x80: 0x80 << 16 | 0x200 | DATA_16 (0x20) | 1 */
	expect("ioio in16 0x80", rmpt_ioio_exit_info(0x80, true, 2), 0x00800221);
	expect("SVM_EXIT_IOIO", SVM_EXIT_IOIO, 0x7b);
	ksft_test_result(ok, "msrs_pvalidate_ioio\n");
}

static void test_uapi_layout(void)
{
	begin();
	expect("kvm_sev_cmd", sizeof(struct kvm_sev_cmd), 24);
	expect("kvm_sev_init", sizeof(struct kvm_sev_init), 48);
	expect("snp_launch_start", sizeof(struct kvm_sev_snp_launch_start), 64);
	expect("snp_launch_start.gosvw",
	       offsetof(struct kvm_sev_snp_launch_start, gosvw), 8);
	expect("snp_launch_start.flags",
	       offsetof(struct kvm_sev_snp_launch_start, flags), 24);
	expect("snp_launch_update", sizeof(struct kvm_sev_snp_launch_update), 64);
	expect("snp_launch_update.gfn_start",
	       offsetof(struct kvm_sev_snp_launch_update, gfn_start), 0);
	expect("snp_launch_update.uaddr",
	       offsetof(struct kvm_sev_snp_launch_update, uaddr), 8);
	expect("snp_launch_update.len",
	       offsetof(struct kvm_sev_snp_launch_update, len), 16);
	expect("snp_launch_update.type",
	       offsetof(struct kvm_sev_snp_launch_update, type), 24);
	expect("snp_launch_update.flags",
	       offsetof(struct kvm_sev_snp_launch_update, flags), 26);
	expect("snp_launch_finish", sizeof(struct kvm_sev_snp_launch_finish), 88);
	expect("snp_launch_finish.id_block_en",
	       offsetof(struct kvm_sev_snp_launch_finish, id_block_en), 16);
	expect("snp_launch_finish.host_data",
	       offsetof(struct kvm_sev_snp_launch_finish, host_data), 19);
	expect("snp_launch_finish.flags",
	       offsetof(struct kvm_sev_snp_launch_finish, flags), 54);

	expect("KVM_X86_SNP_VM", KVM_X86_SNP_VM, 4);
	expect("KVM_SEV_INIT2", KVM_SEV_INIT2, 22);
	expect("KVM_SEV_SNP_LAUNCH_START", KVM_SEV_SNP_LAUNCH_START, 100);
	expect("KVM_SEV_SNP_LAUNCH_UPDATE", KVM_SEV_SNP_LAUNCH_UPDATE, 101);
	expect("KVM_SEV_SNP_LAUNCH_FINISH", KVM_SEV_SNP_LAUNCH_FINISH, 102);
	expect("KVM_SEV_SNP_PAGE_TYPE_NORMAL", KVM_SEV_SNP_PAGE_TYPE_NORMAL, 1);
	expect("KVM_MEMORY_ENCRYPT_OP", KVM_MEMORY_ENCRYPT_OP, 0xc008aeba);
	expect("KVM_SYSTEM_EVENT_SEV_TERM", KVM_SYSTEM_EVENT_SEV_TERM, 6);
	expect("KVM_CAP_EXIT_HYPERCALL", KVM_CAP_EXIT_HYPERCALL, 201);
	expect("KVM_CAP_VM_TYPES", KVM_CAP_VM_TYPES, 235);
	ksft_test_result(ok, "uapi_sev_snp_layout\n");
}

static void test_kvm_run_hypercall(void)
{
	begin();
	expect("kvm_run.hypercall.nr", offsetof(struct kvm_run, hypercall.nr), 32);
	expect("kvm_run.hypercall.args", offsetof(struct kvm_run, hypercall.args), 40);
	expect("kvm_run.hypercall.ret", offsetof(struct kvm_run, hypercall.ret), 88);
	expect("kvm_run.hypercall.flags", offsetof(struct kvm_run, hypercall.flags), 96);
	ksft_test_result(ok, "kvm_run_hypercall_layout\n");
}

static void test_v6_layout(void)
{
	begin();
	/* v6 numbers follow KVM_SEV_SEND_CANCEL (21) and collide with INIT2 */
	expect("KVM_SEV_SEND_CANCEL", KVM_SEV_SEND_CANCEL, 21);
	expect("v6 SNP_INIT", RMPT_V6_SEV_SNP_INIT, 22);
	expect("v6 LAUNCH_START", RMPT_V6_SEV_SNP_LAUNCH_START, 23);
	expect("v6 LAUNCH_UPDATE", RMPT_V6_SEV_SNP_LAUNCH_UPDATE, 24);
	expect("v6 LAUNCH_FINISH", RMPT_V6_SEV_SNP_LAUNCH_FINISH, 25);
	expect("v6 init", sizeof(struct rmpt_v6_snp_init), 8);
	expect("v6 start", sizeof(struct rmpt_v6_snp_launch_start), 40);
	expect("v6 start.ma_uaddr", offsetof(struct rmpt_v6_snp_launch_start, ma_uaddr), 8);
	expect("v6 start.ma_en", offsetof(struct rmpt_v6_snp_launch_start, ma_en), 16);
	expect("v6 start.imi_en", offsetof(struct rmpt_v6_snp_launch_start, imi_en), 17);
	expect("v6 start.gosvw", offsetof(struct rmpt_v6_snp_launch_start, gosvw), 18);
	expect("v6 start.pad", offsetof(struct rmpt_v6_snp_launch_start, pad), 34);
	expect("v6 update", sizeof(struct rmpt_v6_snp_launch_update), 32);
	expect("v6 update.uaddr", offsetof(struct rmpt_v6_snp_launch_update, uaddr), 8);
	expect("v6 update.len", offsetof(struct rmpt_v6_snp_launch_update, len), 16);
	expect("v6 update.imi_page", offsetof(struct rmpt_v6_snp_launch_update, imi_page), 20);
	expect("v6 update.page_type", offsetof(struct rmpt_v6_snp_launch_update, page_type), 21);
	expect("v6 update.vmpl3", offsetof(struct rmpt_v6_snp_launch_update, vmpl3_perms), 22);
	expect("v6 update.vmpl1", offsetof(struct rmpt_v6_snp_launch_update, vmpl1_perms), 24);
	expect("v6 finish", sizeof(struct rmpt_v6_snp_launch_finish), 56);
	expect("v6 finish.id_block_en",
	       offsetof(struct rmpt_v6_snp_launch_finish, id_block_en), 16);
	expect("v6 finish.auth_key_en",
	       offsetof(struct rmpt_v6_snp_launch_finish, auth_key_en), 17);
	expect("v6 finish.host_data", offsetof(struct rmpt_v6_snp_launch_finish, host_data), 18);
	expect("v6 finish.pad", offsetof(struct rmpt_v6_snp_launch_finish, pad), 50);
	expect("v6 page type VMSA", RMPT_V6_PAGE_TYPE_VMSA, 2);
	ksft_test_result(ok, "legacy_v6_layout\n");
}

/*
 * No SNP here: the answer must be no, naming KVM's VM_TYPES, or what
 * keeps the framework's VMs from running at all (a KVM that refuses its
 * vCPU, as a PVM host does for the mainline framework's).
 */
static void test_supported(void)
{
	struct rmpt_caps caps;
	char why[512] = "";
	bool supported;

	rmpt_caps_probe(&caps);
	supported = rmpt_flavour_usable(&caps, RMPT_SNP, why, sizeof(why));
	ksft_print_msg("framework SNP support: %s; snp flavour usable: %s%s%s\n",
		       RMPT_FW_HAS_SNP ? "yes" : "no", supported ? "yes" : "no",
		       supported ? "" : ": ", why);
	if (supported) {
		ksft_test_result_skip("snp_supported_reason (SNP is usable here)\n");
		return;
	}
	if (caps.kvm_errno || caps.vcpu_why[0])
		ksft_test_result(strstr(why, caps.kvm_errno ? KVM_DEV_PATH : caps.vcpu_why),
				 "snp_supported_reason\n");
	else
		ksft_test_result(strstr(why, "KVM_X86_SNP_VM") && strstr(why, "VM_TYPES"),
				 "snp_supported_reason\n");
}

int main(void)
{
	ksft_print_header();
	ksft_set_plan(11);
	test_psc();
	test_reg_gpa();
	test_term();
	test_cpuid();
	test_map_gpa();
	test_policy();
	test_msrs_pvalidate_ioio();
	test_uapi_layout();
	test_kvm_run_hypercall();
	test_v6_layout();
	test_supported();
	ksft_finished();
}
