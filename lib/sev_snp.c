// SPDX-License-Identifier: GPL-2.0-only
/*
 * A VM of one flavour, laid out the same way for every test:
 *
 *  - the framework's own memslot 0 (code, page tables, stacks, ucalls);
 *  - a data region at RMPT_DATA_GPA, identity-mapped in the guest, whose
 *    shared side is a 2M-aligned THP-backed host mapping; on snp and
 *    sw_protected a guest_memfd without MMAP is bound to it for the
 *    private side (an MMAP guest_memfd would make the slot GMEM_ONLY);
 *  - where the kernel offers it (6.18+), the host's view of private
 *    memory: an unbound guest_memfd created with MMAP and without
 *    INIT_SHARED, mapped MAP_SHARED, where every host access SIGBUSes.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "test_util.h"
#include "kvm_util.h"
#include "processor.h"
#include "ucall_common.h"
#include "snp_util.h"

static u32 vm_type_of(enum rmpt_flavour f)
{
	switch (f) {
	case RMPT_SNP:
		return KVM_X86_SNP_VM;
	case RMPT_SW_PROTECTED:
		return KVM_X86_SW_PROTECTED_VM;
	default:
		/* legacy_v6 VMs are DEFAULT VMs made SNP by KVM_SEV_SNP_INIT. */
		return KVM_X86_DEFAULT_VM;
	}
}

bool rmpt_flavour_has_private_mem(enum rmpt_flavour f)
{
	return f == RMPT_SNP || f == RMPT_SW_PROTECTED;
}

static struct kvm_vm *create_vm(struct rmpt_vm *rv, const struct rmpt_vm_params *p)
{
	/* Memory outside slot 0: the framework sizes slot 0's page tables by it. */
	u64 extra = p->data_size / RMPT_SZ_4K;
	struct vm_shape shape = VM_SHAPE_DEFAULT;

	/* SNP: slot 0 on guest_memfd, KVM_SEV_INIT2 before the vCPUs. */
	if (p->flavour == RMPT_SNP)
		return rmpt_snp_vm_create(p->nr_vcpus, extra, p->guest_code, rv->vcpus);
	if (p->flavour == RMPT_LEGACY_V6)
		return rmpt_v6_vm_create(p->nr_vcpus, extra, p->guest_code, rv->vcpus);
	shape.type = vm_type_of(p->flavour);
	return __vm_create_with_vcpus(shape, p->nr_vcpus, extra, p->guest_code, rv->vcpus);
}

static void add_data_region(struct rmpt_vm *rv, const struct rmpt_vm_params *p)
{
	u32 flags = rmpt_flavour_has_private_mem(p->flavour) ? KVM_MEM_GUEST_MEMFD : 0;
	u64 npages = p->data_size / RMPT_SZ_4K;

	vm_mem_add(rv->vm, p->backing, RMPT_DATA_GPA, RMPT_DATA_SLOT, npages, flags, -1, 0);
	rv->data_gpa = RMPT_DATA_GPA;
	rv->data_size = p->data_size;
	rv->data_hva = addr_gpa2hva(rv->vm, RMPT_DATA_GPA);
	TEST_ASSERT(!((unsigned long)rv->data_hva % RMPT_SZ_2M),
		    "data region at %p is not 2M-aligned", rv->data_hva);
	if (p->numa_node >= 0)
		rmpt_numa_place_range(rv->data_hva, p->data_size, p->numa_node);
	virt_map(rv->vm, RMPT_DATA_GPA, RMPT_DATA_GPA, npages);
}

/* The host's view of private memory; on failure view_why says why not. */
static void add_private_view(struct rmpt_vm *rv, const struct rmpt_caps *caps)
{
	void *map;
	int fd;

	rv->view_fd = -1;
	if (!rmpt_gmem_mmap_usable(caps, rv->view_why, sizeof(rv->view_why)))
		return;
	fd = __vm_create_guest_memfd(rv->vm, rv->data_size, GUEST_MEMFD_FLAG_MMAP);
	if (fd < 0) {
		snprintf(rv->view_why, sizeof(rv->view_why),
			 "KVM_CREATE_GUEST_MEMFD(MMAP) on a %s VM: %s",
			 rmpt_flavour_name(rv->flavour), strerror(errno));
		return;
	}
	map = mmap(NULL, rv->data_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		snprintf(rv->view_why, sizeof(rv->view_why),
			 "mmap of a guest_memfd: %s", strerror(errno));
		close(fd);
		return;
	}
	rv->view_fd = fd;
	rv->view = map;
}

/* v6 kept private memory in the VMM's own mapping, registered like RAM. */
static void launch_legacy_v6(struct rmpt_vm *rv, const struct rmpt_vm_params *p)
{
	rmpt_v6_reg_region(rv->vm, memslot2region(rv->vm, RMPT_DATA_SLOT));
	rmpt_snp_ucall_init(rv->vm, p->nr_vcpus);
	rmpt_v6_launch(rv->vm, p->snp_policy ? p->snp_policy : rmpt_snp_policy(false),
		       RMPT_DATA_GPA, p->legacy_private_size);
}

struct rmpt_vm *rmpt_vm_create(const struct rmpt_caps *caps, const struct rmpt_vm_params *p)
{
	struct rmpt_vm *rv;
	char why[256];

	TEST_ASSERT(rmpt_flavour_usable(caps, p->flavour, why, sizeof(why)),
		    "flavour %s is not usable: %s", rmpt_flavour_name(p->flavour), why);
	TEST_ASSERT(p->legacy_private_size <= p->data_size &&
		    !(p->legacy_private_size % RMPT_SZ_4K),
		    "legacy private size 0x%lx: expected 4K-aligned, at most the data size",
		    p->legacy_private_size);
	TEST_ASSERT(p->nr_vcpus > 0 && p->nr_vcpus <= RMPT_MAX_VCPUS,
		    "expected 1..%d vCPUs, got %d", RMPT_MAX_VCPUS, p->nr_vcpus);
	TEST_ASSERT(p->data_size && !(p->data_size % RMPT_SZ_2M),
		    "data size must be a non-zero multiple of 2M, got 0x%lx", p->data_size);

	rv = calloc(1, sizeof(*rv));
	TEST_ASSERT(rv, "calloc");
	rv->flavour = p->flavour;
	rv->nr_vcpus = p->nr_vcpus;
	rv->vm = create_vm(rv, p);
	add_data_region(rv, p);
	add_private_view(rv, caps);
	if (p->setup)
		p->setup(rv);
	if (p->flavour == RMPT_SW_PROTECTED)
		vm_enable_cap(rv->vm, KVM_CAP_EXIT_HYPERCALL, BIT_ULL(KVM_HC_MAP_GPA_RANGE));
	if (p->flavour == RMPT_SNP) {
		/* Everything the guest needs is in place: launch freezes it. */
		rmpt_snp_ucall_init(rv->vm, p->nr_vcpus);
		rmpt_snp_launch(rv->vm, p->snp_policy ? p->snp_policy : rmpt_snp_policy(false));
	}
	if (p->flavour == RMPT_LEGACY_V6)
		launch_legacy_v6(rv, p);
	return rv;
}

/*
 * Bind an MMAP guest_memfd as a private-only slot (GMEM_ONLY on 6.18).
 * The kernel may refuse, e.g. for a VM type with private memory: the
 * answer goes into why and NULL comes back, for the caller's SKIP.
 */
void *rmpt_vm_add_gmem_only_slot(struct rmpt_vm *rv, u32 slot, u64 gpa, u64 size,
				 char *why, size_t len)
{
	void *map;
	int fd, ret;

	fd = __vm_create_guest_memfd(rv->vm, size, GUEST_MEMFD_FLAG_MMAP);
	if (fd < 0) {
		snprintf(why, len, "KVM_CREATE_GUEST_MEMFD(MMAP): %s", strerror(errno));
		return NULL;
	}
	map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		snprintf(why, len, "mmap of a guest_memfd: %s", strerror(errno));
		close(fd);
		return NULL;
	}
	ret = __vm_set_user_memory_region2(rv->vm, slot, KVM_MEM_GUEST_MEMFD, gpa, size,
					   map, fd, 0);
	if (ret) {
		snprintf(why, len, "KVM_SET_USER_MEMORY_REGION2 of an MMAP guest_memfd: %s",
			 strerror(errno));
		munmap(map, size);
		close(fd);
		return NULL;
	}
	TEST_ASSERT(rv->nr_extra < RMPT_MAX_EXTRA_SLOTS, "too many extra slots");
	rv->extra[rv->nr_extra++] = (struct rmpt_extra_slot){ slot, fd, map, size };
	return map;
}

void rmpt_vm_free(struct rmpt_vm *rv)
{
	int i;

	if (!rv)
		return;
	/* The VM's own reference keeps a bound guest_memfd alive until it goes. */
	for (i = 0; i < rv->nr_extra; i++) {
		munmap(rv->extra[i].map, rv->extra[i].size);
		close(rv->extra[i].fd);
	}
	if (rv->view) {
		munmap(rv->view, rv->data_size);
		close(rv->view_fd);
	}
	kvm_vm_free(rv->vm);
	free(rv);
}

/* SNP guests' registers are protected: their ucalls come through a mailbox. */
u64 rmpt_get_ucall(struct rmpt_vm *rv, struct kvm_vcpu *vcpu, struct ucall *uc)
{
	if (rv->flavour == RMPT_SNP || rv->flavour == RMPT_LEGACY_V6)
		return rmpt_snp_get_ucall(vcpu, uc);
	return get_ucall(vcpu, uc);
}

void *rmpt_data_hva(struct rmpt_vm *rv, u64 gpa)
{
	TEST_ASSERT(gpa >= rv->data_gpa && gpa < rv->data_gpa + rv->data_size,
		    "GPA 0x%lx outside the data region [0x%lx, 0x%lx)", gpa,
		    rv->data_gpa, rv->data_gpa + rv->data_size);
	return (char *)rv->data_hva + (gpa - rv->data_gpa);
}

void *rmpt_view_hva(struct rmpt_vm *rv, u64 gpa)
{
	TEST_ASSERT(rv->view, "no host view of private memory: %s", rv->view_why);
	TEST_ASSERT(gpa >= rv->data_gpa && gpa < rv->data_gpa + rv->data_size,
		    "GPA 0x%lx outside the data region", gpa);
	return (char *)rv->view + (gpa - rv->data_gpa);
}
