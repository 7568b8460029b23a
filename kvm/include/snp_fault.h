/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * snp-rmp selftests: how the host sees a fault on memory it must not touch.
 *
 * SIGBUS capture: one process-wide handler and per-thread state, so any
 * number of threads can probe at once.  Only an access made through
 * rmpt_try_*() is "armed"; a SIGBUS that arrives anywhere else is not
 * swallowed: the handler restores SIG_DFL and the signal kills the process
 * as it would without us, so the harness reports it.  A test that is still
 * running has therefore seen no unexpected SIGBUS; to assert that around a
 * block of code in isolation, run the block in a child and check that it
 * did not die of SIGBUS.
 *
 * EFAULT probes: kernel-mediated writes (read() from a pipe and from
 * /dev/zero, process_vm_writev()) into a range the host may not write must
 * fail with EFAULT.  They never read the range themselves: the caller knows
 * what it holds and checks it afterwards, if it is readable at all.
 */
#ifndef SELFTEST_KVM_SNP_FAULT_H
#define SELFTEST_KVM_SNP_FAULT_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

/* What one rmpt_try_*() access saw; without a fault only start_ns is set. */
struct rmpt_fault {
	bool faulted;
	int signo;		/* siginfo si_signo */
	int code;		/* siginfo si_code, e.g. BUS_ADRERR */
	void *addr;		/* siginfo si_addr */
	u64 start_ns;		/* rmpt_now_ns() just before the access */
	u64 handler_ns;		/* rmpt_now_ns() on handler entry */
};

/* CLOCK_MONOTONIC in ns; async-signal-safe. */
u64 rmpt_now_ns(void);

void rmpt_sigbus_init(void);
const char *rmpt_sigbus_code_name(int code);

/* One 8-byte access: true if it completed.  Only SIGBUS is caught, SIGSEGV still kills. */
bool rmpt_try_write(void *addr, u64 val, struct rmpt_fault *f);
bool rmpt_try_read(void *addr, u64 *val, struct rmpt_fault *f);

/* 0 if f is a SIGBUS at exactly want_addr with want_code, else -1 and why. */
int rmpt_check_sigbus(const struct rmpt_fault *f, void *want_addr, int want_code,
		      char *why, size_t len);

/*
 * TEST_ASSERTs.  skew is 0 but for the project's negative checks: the
 * SIGBUS is expected at addr + skew.
 */
void rmpt_expect_sigbus(void *addr, bool write, long skew);
void rmpt_expect_no_sigbus_write(void *addr, u64 val);
u64 rmpt_expect_no_sigbus_read(void *addr);

/* EFAULT probes: 0 or -errno of the kernel-mediated write. */
int rmpt_pipe_read_into(void *dst, size_t len);
int rmpt_devzero_read_into(void *dst, size_t len);
int rmpt_process_vm_write_into(void *dst, size_t len);
/* TEST_ASSERT that each probe returns want: -EFAULT, or 0 for a negative check. */
void rmpt_expect_kernel_writes(void *dst, size_t len, int want);

int rmpt_sigbus_storm(char *const *addrs, int n, int iters, long skew, bool reads);

#endif /* SELFTEST_KVM_SNP_FAULT_H */
