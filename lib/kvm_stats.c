// SPDX-License-Identifier: GPL-2.0-only
/*
 * KVM binary stats (KVM_GET_STATS_FD), read by name.  The framework has a
 * reader too, but its API changed between 6.12 and mainline; this one is
 * small and the same everywhere.  Some backends (PVM here) never update
 * the pages_4k/2m/1g counters, so callers must tell "zero" from "not
 * maintained" with rmpt_vm_page_stats().
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>

#include "test_util.h"
#include "kvm_util.h"
#include "snp_util.h"

/* Returns 0 and the stat's first value, -ENOENT if the VM has no such stat. */
int rmpt_vm_stat(int vm_fd, const char *name, u64 *val)
{
	struct kvm_stats_header hdr;
	struct kvm_stats_desc *desc;
	size_t desc_size;
	int fd, ret = -ENOENT;
	char *descs;
	u32 i;

	fd = ioctl(vm_fd, KVM_GET_STATS_FD, NULL);
	if (fd < 0)
		return -errno;
	TEST_ASSERT(pread(fd, &hdr, sizeof(hdr), 0) == sizeof(hdr),
		    "read stats header: %s", strerror(errno));
	desc_size = sizeof(*desc) + hdr.name_size;
	descs = calloc(hdr.num_desc, desc_size);
	TEST_ASSERT(descs, "calloc");
	TEST_ASSERT(pread(fd, descs, hdr.num_desc * desc_size, hdr.desc_offset) ==
		    (ssize_t)(hdr.num_desc * desc_size),
		    "read %u stats descriptors: %s", hdr.num_desc, strerror(errno));
	for (i = 0; i < hdr.num_desc; i++) {
		desc = (struct kvm_stats_desc *)(descs + i * desc_size);
		if (strncmp(desc->name, name, hdr.name_size))
			continue;
		TEST_ASSERT(pread(fd, val, sizeof(*val), hdr.data_offset + desc->offset) ==
			    sizeof(*val), "read stat %s: %s", name, strerror(errno));
		ret = 0;
		break;
	}
	free(descs);
	close(fd);
	return ret;
}

/*
 * The KVM MMU's page counters after the guest has touched memory: all zero
 * means the backend does not maintain them, and callers report "not
 * maintained" instead of judging a split by them.
 */
bool rmpt_vm_page_stats(int vm_fd, struct rmpt_page_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (rmpt_vm_stat(vm_fd, "pages_4k", &st->pages_4k) ||
	    rmpt_vm_stat(vm_fd, "pages_2m", &st->pages_2m) ||
	    rmpt_vm_stat(vm_fd, "pages_1g", &st->pages_1g))
		return false;
	return st->pages_4k || st->pages_2m || st->pages_1g;
}
