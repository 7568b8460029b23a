// SPDX-License-Identifier: GPL-2.0-only
/*
 * NUMA placement through libnuma: memory ranges and threads on a node.
 * On a machine with one node (or without NUMA) everything is node 0 and
 * every call still succeeds, so tests need no special case.
 */
#include <errno.h>
#include <string.h>
#include <numa.h>

#include "snp_util.h"

int rmpt_numa_nodes(void)
{
	return numa_available() < 0 ? 1 : numa_num_configured_nodes();
}

/* The i-th node this process may allocate on, i wrapping around. */
int rmpt_numa_node(int i)
{
	struct bitmask *mems;
	int node, n = 0, count;

	if (numa_available() < 0)
		return 0;
	mems = numa_get_mems_allowed();
	count = numa_bitmask_weight(mems);
	TEST_ASSERT(count > 0, "no NUMA node is allowed to this process");
	i %= count;
	for (node = 0; node <= numa_max_node(); node++) {
		if (numa_bitmask_isbitset(mems, node) && n++ == i)
			break;
	}
	numa_bitmask_free(mems);
	return node;
}

/*
 * Bind before the first touch, so that faults allocate there.  libnuma's
 * call, not mbind(2): the framework's include/numaif.h shadows the system's.
 */
void rmpt_numa_place_range(void *addr, size_t len, int node)
{
	if (numa_available() >= 0)
		numa_tonode_memory(addr, len, node);
}

void rmpt_numa_run_thread_on(int node)
{
	if (numa_available() >= 0)
		TEST_ASSERT(!numa_run_on_node(node), "numa_run_on_node(%d): %s", node,
			    strerror(errno));
}
