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

#include "processor.h"
#include "ucall_common.h"
#include "snp_util.h"

bool rmpt_flavour_has_private_mem(enum rmpt_flavour f)
{
	return rmpt_flavour(f)->private_mem;
}

static void add_data_region(struct rmpt_vm *rv, const struct rmpt_vm_params *p)
{
	u32 flags = rv->ops->private_mem ? KVM_MEM_GUEST_MEMFD : 0;
	u64 npages = p->data_size / SZ_4K;

	vm_mem_add(rv->vm, p->backing, RMPT_DATA_GPA, RMPT_DATA_SLOT, npages, flags, -1, 0);
	rv->data_gpa = RMPT_DATA_GPA;
	rv->data_size = p->data_size;
	rv->data_hva = addr_gpa2hva(rv->vm, RMPT_DATA_GPA);
	TEST_ASSERT(!((unsigned long)rv->data_hva % SZ_2M),
		    "data region at %p is not 2M-aligned", rv->data_hva);
	if (p->numa_node >= 0)
		rmpt_numa_place_range(rv->data_hva, p->data_size, p->numa_node);
	virt_map(rv->vm, RMPT_DATA_GPA, RMPT_DATA_GPA, npages);
}

/*
 * The host's view of private memory; on failure view_why says why not.
 * Where private pages stay in place (launch_private), it is the data region.
 */
static void add_private_view(struct rmpt_vm *rv, const struct rmpt_caps *caps)
{
	void *map;
	int fd;

	rv->view_fd = -1;
	if (rv->ops->launch_private) {
		rv->view = rv->data_hva;
		return;
	}
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

struct rmpt_vm *rmpt_vm_create(const struct rmpt_caps *caps, const struct rmpt_vm_params *p)
{
	struct rmpt_vm *rv;
	char why[256];

	TEST_ASSERT(rmpt_flavour_usable(caps, p->flavour, why, sizeof(why)),
		    "flavour %s is not usable: %s", rmpt_flavour_name(p->flavour), why);
	TEST_ASSERT(p->launch_private_size <= p->data_size &&
		    !(p->launch_private_size % SZ_4K),
		    "launch-private size 0x%lx: expected 4K-aligned, at most the data size",
		    p->launch_private_size);
	TEST_ASSERT(p->nr_vcpus > 0 && p->nr_vcpus <= RMPT_MAX_VCPUS,
		    "expected 1..%d vCPUs, got %d", RMPT_MAX_VCPUS, p->nr_vcpus);
	TEST_ASSERT(p->data_size && !(p->data_size % SZ_2M),
		    "data size must be a non-zero multiple of 2M, got 0x%lx", p->data_size);

	rv = calloc(1, sizeof(*rv));
	TEST_ASSERT(rv, "calloc");
	rv->flavour = p->flavour;
	rv->ops = rmpt_flavour(p->flavour);
	rv->nr_vcpus = p->nr_vcpus;
	/* Memory outside slot 0: the framework sizes slot 0's page tables by it. */
	rv->vm = rv->ops->vm_create(p, p->data_size / SZ_4K, rv->vcpus);
	add_data_region(rv, p);
	add_private_view(rv, caps);
	if (p->setup)
		p->setup(rv);
	if (rv->ops->launch)
		rv->ops->launch(rv, p);
	return rv;
}

void rmpt_vm_free(struct rmpt_vm *rv)
{
	if (!rv)
		return;
	if (rv->view_fd >= 0) {
		munmap(rv->view, rv->data_size);
		close(rv->view_fd);
	}
	kvm_vm_free(rv->vm);
	free(rv);
}

/* SNP guests' registers are protected: their ucalls come through a mailbox. */
u64 rmpt_get_ucall(struct rmpt_vm *rv, struct kvm_vcpu *vcpu, struct ucall *uc)
{
	return rv->ops->protected_state ? rmpt_snp_get_ucall(vcpu, uc) : get_ucall(vcpu, uc);
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
	/* The offset into the shared mapping, which rmpt_data_hva() range-checks. */
	return (char *)rv->view + ((char *)rmpt_data_hva(rv, gpa) - (char *)rv->data_hva);
}
