/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * snp-rmp selftests: the suite's library API.  Every symbol carries the
 * rmpt_ prefix so that it never clashes with the kvm selftests framework,
 * whose mainline lib/x86/sev.c already defines snp_* helpers.
 */
#ifndef SELFTEST_KVM_SNP_UTIL_H
#define SELFTEST_KVM_SNP_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <linux/bits.h>
#include <linux/sizes.h>
#include <linux/types.h>

#include "kselftest.h"
#include "kvm_util.h"
#include "snp_fault.h"
#include "snp_ghcb.h"
#include "snp_launch.h"

/* uapi constants newer than 6.12 (include/uapi/linux/kvm.h, 6.18) */
#ifndef KVM_CAP_GUEST_MEMFD_FLAGS
#define KVM_CAP_GUEST_MEMFD_FLAGS	244
#endif
#ifndef GUEST_MEMFD_FLAG_MMAP
#define GUEST_MEMFD_FLAG_MMAP		BIT_ULL(0)
#endif

/* THP (lib/thp_util.c) */
enum rmpt_thp_mode {
	RMPT_THP_UNKNOWN,
	RMPT_THP_NEVER,
	RMPT_THP_MADVISE,
	RMPT_THP_ALWAYS,
};

enum rmpt_thp_mode rmpt_thp_mode(void);
const char *rmpt_thp_mode_name(enum rmpt_thp_mode mode);
size_t rmpt_smaps_anon_huge_kb(const char *smaps_path, const void *addr, size_t len);
int rmpt_pmd_mapped(const void *addr);
int rmpt_collapse(void *addr, size_t len);

enum rmpt_thp_stat {
	RMPT_THP_COLLAPSE_ALLOC,
	RMPT_THP_SPLIT_PMD,
	RMPT_NR_THP_STATS,
};

#define RMPT_STAT_ABSENT	UINT64_MAX

struct rmpt_thp_stats {
	u64 val[RMPT_NR_THP_STATS];
};

void rmpt_thp_stats_read(struct rmpt_thp_stats *stats);
u64 rmpt_thp_stat_delta(const struct rmpt_thp_stats *before,
			const struct rmpt_thp_stats *after, enum rmpt_thp_stat stat);

/* Capabilities and VM flavours (lib/caps.c) */
enum rmpt_flavour {
	RMPT_SNP,
	RMPT_SW_PROTECTED,
	RMPT_DEFAULT,
	RMPT_LEGACY_V6,
	RMPT_NR_FLAVOURS,
};

struct rmpt_caps {
	int kvm_errno;			/* why /dev/kvm could not be opened, or 0 */
	char vcpu_why[256];		/* why the framework's vCPU failed, or "" */
	u64 vm_types;			/* KVM_CAP_VM_TYPES: bit per accepted type */
	bool guest_memfd;		/* KVM_CAP_GUEST_MEMFD */
	u64 gmem_flags;			/* KVM_CAP_GUEST_MEMFD_FLAGS, system scope */
	u64 mem_attrs;			/* KVM_CAP_MEMORY_ATTRIBUTES, system scope */
	u64 exit_hypercall;		/* KVM_CAP_EXIT_HYPERCALL: forwardable calls */
	bool dev_sev;			/* /dev/sev exists */
	bool kvm_amd;			/* /sys/module/kvm_amd: loaded or built in */
	int kvm_amd_sev_snp;		/* kvm_amd sev_snp: 1 Y, 0 N, -1 absent */
	bool cpuid_snp;			/* CPUID 0x8000001F EAX[4] */
	enum rmpt_thp_mode thp;
	bool legacy_v6_requested;	/* SNP_RMP_LEGACY_V6=1 */
};

const char *rmpt_flavour_name(enum rmpt_flavour f);
int rmpt_flavour_parse(const char *name, enum rmpt_flavour *f);
void rmpt_caps_probe(struct rmpt_caps *caps);
void rmpt_caps_print(const struct rmpt_caps *caps);
bool rmpt_flavour_usable(const struct rmpt_caps *caps, enum rmpt_flavour f,
			 char *why, size_t len);
__printf(3, 4) bool rmpt_why_not(char *why, size_t len, const char *fmt, ...);
__printf(3, 4) void rmpt_why_add(char *why, size_t len, const char *fmt, ...);
bool rmpt_private_mem_usable(const struct rmpt_caps *caps, char *why, size_t len);
bool rmpt_gmem_mmap_usable(const struct rmpt_caps *caps, char *why, size_t len);
bool rmpt_thp_usable(const struct rmpt_caps *caps, char *why, size_t len);

/* A VM of one flavour with its data region (lib/sev_snp.c) */
#define RMPT_DATA_GPA		(4ULL << 30)
#define RMPT_DATA_SLOT		10
#define RMPT_MAX_VCPUS		64

struct rmpt_vm;
struct rmpt_vm_params;

/*
 * What one flavour does (lib/flavour_*.c, lib/legacy_v6.c), so that the
 * cases ask the flavour instead of naming it.
 */
struct rmpt_flavour_ops {
	const char *name;
	/* KVM itself is usable; what else the flavour needs (NULL: nothing), or why not. */
	bool (*usable)(const struct rmpt_caps *caps, char *why, size_t len);
	struct kvm_vm *(*vm_create)(const struct rmpt_vm_params *p, u64 extra_pages,
				    struct kvm_vcpu *vcpus[]);
	/* After the test's setup: launch, or enable what the guest will ask. */
	void (*launch)(struct rmpt_vm *rv, const struct rmpt_vm_params *p);
	bool private_mem;		/* guest_memfd + attributes: converts at run time */
	bool protected_state;		/* SNP: GHCB protocol, ucalls through a mailbox */
	bool host_reads_private;	/* a host read of private memory completes */
	bool launch_private;		/* private pages are measured at launch, in place */
};

extern const struct rmpt_flavour_ops rmpt_snp_ops;
extern const struct rmpt_flavour_ops rmpt_sw_protected_ops;
extern const struct rmpt_flavour_ops rmpt_default_ops;
extern const struct rmpt_flavour_ops rmpt_legacy_v6_ops;

const struct rmpt_flavour_ops *rmpt_flavour(enum rmpt_flavour f);

struct rmpt_vm_params {
	enum rmpt_flavour flavour;
	int nr_vcpus;
	void *guest_code;
	u64 data_size;				/* multiple of 2M */
	enum vm_mem_backing_src_type backing;	/* shared side, e.g. THP */
	int numa_node;				/* data region's node, -1 any */
	u64 launch_private_size;		/* at RMPT_DATA_GPA, if ops->launch_private */
	/* Called before launch, the last moment to write guest memory on snp. */
	void (*setup)(struct rmpt_vm *rv);
};

struct rmpt_vm {
	enum rmpt_flavour flavour;
	const struct rmpt_flavour_ops *ops;
	struct kvm_vm *vm;
	struct kvm_vcpu *vcpus[RMPT_MAX_VCPUS];
	int nr_vcpus;
	u64 data_gpa;
	u64 data_size;
	void *data_hva;			/* shared side, THP-backed */
	int view_fd;			/* MMAP guest_memfd, no INIT_SHARED, or -1 */
	void *view;			/* the host's address of private memory */
	char view_why[192];		/* why there is no view */
	struct {
		u64 to_private;
		u64 to_shared;
	} conv;				/* conversions lib/convert.c carried out */
};

bool rmpt_flavour_has_private_mem(enum rmpt_flavour f);
struct rmpt_vm *rmpt_vm_create(const struct rmpt_caps *caps, const struct rmpt_vm_params *p);
void rmpt_vm_free(struct rmpt_vm *rv);
void *rmpt_data_hva(struct rmpt_vm *rv, u64 gpa);
void *rmpt_view_hva(struct rmpt_vm *rv, u64 gpa);

/* Conversions (lib/convert.c) */
u64 rmpt_guest_map_gpa(bool protected_state, u64 gpa, u64 npages, bool to_private);
int rmpt_discard_shared(struct rmpt_vm *rv, u64 gpa, u64 size, int advice);
bool rmpt_map_gpa_request_valid(const struct rmpt_vm *rv, u64 gpa, u64 npages, u64 attrs,
				bool *to_private);
void rmpt_map_gpa_range_exit(struct rmpt_vm *rv, struct kvm_run *run);
u32 rmpt_vcpu_run(struct rmpt_vm *rv, struct kvm_vcpu *vcpu);
u64 rmpt_get_ucall(struct rmpt_vm *rv, struct kvm_vcpu *vcpu, struct ucall *uc);

/*
 * "ok N name # SKIP reason": kselftest's ksft_test_result_skip() leaves
 * the name out.  Inline, as kselftest.h's counters are per source file.
 */
static inline __printf(2, 3) void rmpt_test_result_skip(const char *name, const char *fmt, ...)
{
	va_list ap;

	ksft_inc_xskip_cnt();
	printf("ok %u %s # SKIP ", ksft_test_num(), name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/* Kernel log (lib/kmsg_util.c) */
bool rmpt_kmsg_line_bad(const char *line);
int rmpt_kmsg_write(const char *text);
int rmpt_kmsg_mark(const char *tag, char *marker, size_t len);
int rmpt_kmsg_scan(const char *marker, char *first_bad, size_t len);

/* NUMA (lib/numa_util.c) */
int rmpt_numa_nodes(void);
int rmpt_numa_node(int i);
void rmpt_numa_place_range(void *addr, size_t len, int node);
void rmpt_numa_run_thread_on(int node);

#endif /* SELFTEST_KVM_SNP_UTIL_H */
