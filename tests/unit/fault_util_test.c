// SPDX-License-Identifier: GPL-2.0-only
/*
 * lib/fault_util.c without KVM.  A shared memfd mapping longer than its
 * file gives real SIGBUS BUS_ADRERR faults at exact addresses past EOF,
 * and real EFAULT from kernel writes there; PROT_NONE gives EFAULT too.
 * Failing assertions run in a child, so that the proof that a helper can
 * fail does not end this program.
 */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <linux/compiler.h>

#include "test_util.h"
#include "snp_fault.h"

#define PAGE		4096UL
#define EOF_PAGES	9		/* page 0 inside the file, 1-8 past EOF */
#define NR_THREADS	8
#define THREAD_ITERS	5000
#define BIG_LEN		(256 * PAGE)	/* more than a pipe holds at once */
#define FILL		0x5a
#define VAL		0x0123456789abcdefUL

static u8 *eof_map;	/* eof_map[0, PAGE) is backed, the rest SIGBUS */
static u8 *none_map;	/* 2 pages PROT_NONE, filled with FILL before */

static u8 *past_eof(int page, size_t off)
{
	return eof_map + page * PAGE + off;
}

static void setup_maps(void)
{
	int fd = memfd_create("rmpt_fault_test", MFD_CLOEXEC);

	TEST_ASSERT(fd >= 0, "memfd_create: expected an fd, got errno %d", errno);
	TEST_ASSERT(!ftruncate(fd, PAGE), "ftruncate: expected 0, got errno %d", errno);
	eof_map = mmap(NULL, EOF_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	TEST_ASSERT(eof_map != MAP_FAILED, "mmap memfd: got errno %d", errno);
	close(fd);

	none_map = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	TEST_ASSERT(none_map != MAP_FAILED, "mmap anon: got errno %d", errno);
	memset(none_map, FILL, 2 * PAGE);
	TEST_ASSERT(!mprotect(none_map, 2 * PAGE, PROT_NONE), "mprotect: got errno %d", errno);
}

/* f must match; say why if not. */
static bool sigbus_ok(const struct rmpt_fault *f, void *addr)
{
	char why[256];

	if (!rmpt_check_sigbus(f, addr, BUS_ADRERR, why, sizeof(why)))
		return true;
	ksft_print_msg("%s\n", why);
	return false;
}

static void test_sigbus_past_eof(void)
{
	struct rmpt_fault f;
	u8 *addr = past_eof(1, 0x128);
	u64 val;

	ksft_test_result(!rmpt_try_write(addr, VAL, &f) && sigbus_ok(&f, addr),
			 "sigbus_write_past_eof\n");
	ksft_print_msg("SIGBUS delivered %lu ns after the access started\n",
		       f.handler_ns - f.start_ns);
	ksft_test_result(f.handler_ns >= f.start_ns &&
			 f.handler_ns - f.start_ns < 1000000000UL,
			 "sigbus_latency_timestamps\n");

	addr = past_eof(2, 0x128);
	ksft_test_result(!rmpt_try_read(addr, &val, &f) && sigbus_ok(&f, addr),
			 "sigbus_read_past_eof\n");

	/* The asserting helper passes; it would end the program if not. */
	rmpt_expect_sigbus(past_eof(3, 0x8), true, 0);
	rmpt_expect_sigbus(past_eof(3, 0x10), false, 0);
	ksft_test_result_pass("expect_sigbus_helpers_pass\n");
}

static void test_no_fault_inside_eof(void)
{
	struct rmpt_fault f;
	u8 *addr = eof_map + 0x128;
	u64 val = 0;
	bool ok;

	ok = rmpt_try_write(addr, VAL, &f) && !f.faulted &&
	     rmpt_try_read(addr, &val, &f) && !f.faulted &&
	     val == VAL && *(u64 *)addr == VAL;
	ksft_test_result(ok, "no_fault_inside_eof\n");

	rmpt_expect_no_sigbus_write(addr, ~VAL);
	ksft_test_result(rmpt_expect_no_sigbus_read(addr) == ~VAL,
			 "expect_no_sigbus_helpers_pass\n");
}

/* Threads at once, each faulting at its own address, writes and reads. */
static void test_threads(void)
{
	char *addrs[NR_THREADS];
	int i;

	for (i = 0; i < NR_THREADS; i++)
		addrs[i] = (char *)past_eof(1 + i, 0x100 + i * 8);
	ksft_test_result(!rmpt_sigbus_storm(addrs, NR_THREADS, THREAD_ITERS, 0, true),
			 "threads_see_own_sigbus (%d x %d)\n", NR_THREADS, THREAD_ITERS);
}

/* rmpt_check_sigbus() must be able to fail: feed it wrong expectations. */
static void test_check_rejects(void)
{
	struct rmpt_fault f, none;
	u8 *addr = past_eof(4, 0x40);
	char why[256];
	int ret;

	rmpt_try_write(addr, VAL, &f);
	rmpt_try_write(eof_map, VAL, &none);

	ret = rmpt_check_sigbus(&f, addr + 8, BUS_ADRERR, why, sizeof(why));
	ksft_print_msg("wrong address: %s\n", why);
	ksft_test_result(ret && strstr(why, "expected SIGBUS at"), "check_rejects_wrong_addr\n");

	ret = rmpt_check_sigbus(&f, past_eof(4, 0), BUS_ADRERR, why, sizeof(why));
	ksft_test_result(ret, "check_rejects_page_aligned_addr\n");

	ret = rmpt_check_sigbus(&f, addr, BUS_OBJERR, why, sizeof(why));
	ksft_print_msg("wrong code: %s\n", why);
	ksft_test_result(ret && strstr(why, "BUS_OBJERR"), "check_rejects_wrong_code\n");

	ret = rmpt_check_sigbus(&none, eof_map, BUS_ADRERR, why, sizeof(why));
	ksft_print_msg("no fault: %s\n", why);
	ksft_test_result(ret && strstr(why, "got no fault"), "check_rejects_no_fault\n");

	f.signo = SIGSEGV;
	ret = rmpt_check_sigbus(&f, addr, BUS_ADRERR, why, sizeof(why));
	ksft_test_result(ret && strstr(why, "got signal 11"), "check_rejects_other_signal\n");
}

struct child {
	int status;
	char out[4096];
};

/* Run fn(arg) in a child without core dumps; collect its status and output. */
static void run_child(void (*fn)(void *), void *arg, struct child *c)
{
	struct rlimit no_core = {};
	size_t len = 0;
	char drain[256];
	int fds[2];
	ssize_t n;
	pid_t pid;

	TEST_ASSERT(!pipe(fds), "pipe: got errno %d", errno);
	fflush(NULL);
	pid = fork();
	TEST_ASSERT(pid >= 0, "fork: got errno %d", errno);
	if (!pid) {
		setrlimit(RLIMIT_CORE, &no_core);
		dup2(fds[1], STDOUT_FILENO);
		dup2(fds[1], STDERR_FILENO);
		close(fds[0]);
		close(fds[1]);
		fn(arg);
		fflush(NULL);
		_exit(0);
	}
	close(fds[1]);
	while ((n = read(fds[0], c->out + len, sizeof(c->out) - 1 - len)) > 0)
		len += n;
	while (read(fds[0], drain, sizeof(drain)) > 0)
		;
	c->out[len] = '\0';
	close(fds[0]);
	TEST_ASSERT(waitpid(pid, &c->status, 0) == pid, "waitpid: got errno %d", errno);
}

/* A failed TEST_ASSERT exits non-zero; show its "expected ..." line. */
static bool child_assert_failed(const struct child *c, const char *text)
{
	const char *line = strstr(c->out, text);
	int end;

	if (line) {
		end = strcspn(line, "\n");
		ksft_print_msg("child: %.*s\n", end, line);
	}
	return WIFEXITED(c->status) && WEXITSTATUS(c->status) != 0 && line;
}

static bool child_killed_by_sigbus(const struct child *c)
{
	if (!WIFSIGNALED(c->status) || WTERMSIG(c->status) != SIGBUS)
		ksft_print_msg("child: expected death by SIGBUS, got status 0x%x\n",
			       c->status);
	return WIFSIGNALED(c->status) && WTERMSIG(c->status) == SIGBUS;
}

static void expect_sigbus_inside_eof(void *arg)
{
	rmpt_expect_sigbus(eof_map + 0x200, true, 0);
}

static void expect_no_sigbus_past_eof(void *arg)
{
	rmpt_expect_no_sigbus_write(past_eof(5, 0x200), VAL);
}

static void expect_efault_on_writable(void *arg)
{
	rmpt_expect_kernel_writes(arg, 64, -EFAULT);
}

/* Prove that the asserting helpers fail, with an expected-vs-got message. */
static void test_helpers_fail(void)
{
	static u8 buf[64];
	struct child c;

	run_child(expect_sigbus_inside_eof, NULL, &c);
	ksft_test_result(child_assert_failed(&c, "expected SIGBUS at"),
			 "expect_sigbus_fails_without_fault\n");

	run_child(expect_no_sigbus_past_eof, NULL, &c);
	ksft_test_result(child_assert_failed(&c, "expected no fault, got signal 7"),
			 "expect_no_sigbus_fails_on_fault\n");

	run_child(expect_efault_on_writable, buf, &c);
	ksft_test_result(child_assert_failed(&c, "expected -14"),
			 "expect_efault_writes_fails_on_writable\n");
}

/* Handler installed and working, then a fault nobody armed for. */
static void unarmed_fault(void *arg)
{
	struct rmpt_fault f;

	if (rmpt_try_write(past_eof(6, 0), VAL, &f))
		_exit(3);
	WRITE_ONCE(*(u64 *)past_eof(6, 0x8), VAL);
	_exit(4);
}

static void unarmed_sent_sigbus(void *arg)
{
	rmpt_sigbus_init();
	kill(getpid(), SIGBUS);
	_exit(4);
}

static void test_unarmed_sigbus_kills(void)
{
	struct child c;

	run_child(unarmed_fault, NULL, &c);
	ksft_test_result(child_killed_by_sigbus(&c), "unarmed_fault_kills_by_sigbus\n");

	run_child(unarmed_sent_sigbus, NULL, &c);
	ksft_test_result(child_killed_by_sigbus(&c), "unarmed_sent_sigbus_kills\n");
}

static bool is_efault(const char *probe, int ret)
{
	if (ret != -EFAULT)
		ksft_print_msg("%s: expected %d (EFAULT), got %d (%s)\n", probe,
			       -EFAULT, ret, strerror(-ret));
	return ret == -EFAULT;
}

static void test_efault(const char *what, void *dst, size_t len)
{
	ksft_test_result(is_efault("pipe", rmpt_pipe_read_into(dst, len)),
			 "efault_%s_pipe\n", what);
	ksft_test_result(is_efault("devzero", rmpt_devzero_read_into(dst, len)),
			 "efault_%s_devzero\n", what);
	ksft_test_result(is_efault("process_vm", rmpt_process_vm_write_into(dst, len)),
			 "efault_%s_process_vm\n", what);
	rmpt_expect_kernel_writes(dst, len, -EFAULT);
	ksft_test_result_pass("expect_efault_writes_%s\n", what);
}

static void test_efault_prot_none_unchanged(void)
{
	size_t i;

	TEST_ASSERT(!mprotect(none_map, 2 * PAGE, PROT_READ), "mprotect: errno %d", errno);
	for (i = 0; i < 2 * PAGE && none_map[i] == FILL; i++)
		;
	if (i < 2 * PAGE)
		ksft_print_msg("byte 0x%zx: expected 0x%x, got 0x%x\n", i, FILL, none_map[i]);
	ksft_test_result(i == 2 * PAGE, "efault_prot_none_unchanged\n");
}

/* Where they may write, the pipe and process_vm_writev() write the same pattern. */
static void test_probes_succeed(void)
{
	u8 *buf = malloc(BIG_LEN), *pattern = malloc(BIG_LEN);
	size_t i;
	int ret;

	TEST_ASSERT(buf && pattern, "malloc %lu", BIG_LEN);

	memset(pattern, FILL, BIG_LEN);
	ret = rmpt_pipe_read_into(pattern, BIG_LEN);
	ksft_test_result(!ret && pattern[0] != pattern[1] && pattern[1] != pattern[2],
			 "pipe_writes_pattern\n");

	memset(buf, FILL, BIG_LEN);
	ret = rmpt_devzero_read_into(buf, BIG_LEN);
	for (i = 0; i < BIG_LEN && !buf[i]; i++)
		;
	ksft_test_result(!ret && i == BIG_LEN, "devzero_writes_zeroes\n");

	memset(buf, FILL, BIG_LEN);
	ret = rmpt_process_vm_write_into(buf, BIG_LEN);
	if (ret)
		ksft_print_msg("process_vm_writev: expected 0, got %d (%s)\n",
			       ret, strerror(-ret));
	ksft_test_result(!ret && !memcmp(buf, pattern, BIG_LEN), "process_vm_writes_pattern\n");
	free(pattern);
	free(buf);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	TEST_ASSERT(d, "opendir /proc/self/fd: errno %d", errno);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static void test_no_fd_leak(void)
{
	u8 buf[PAGE];
	int before = count_fds(), after, i;

	for (i = 0; i < 16; i++) {
		rmpt_pipe_read_into(buf, sizeof(buf));
		rmpt_pipe_read_into(past_eof(7, 0), PAGE);
		rmpt_devzero_read_into(buf, sizeof(buf));
		rmpt_devzero_read_into(past_eof(7, 0), PAGE);
	}
	after = count_fds();
	if (after != before)
		ksft_print_msg("open fds: expected %d, got %d\n", before, after);
	ksft_test_result(after == before, "probes_leak_no_fd\n");
}

int main(void)
{
	ksft_print_header();
	ksft_set_plan(30);
	setup_maps();

	test_sigbus_past_eof();
	test_no_fault_inside_eof();
	test_threads();
	test_check_rejects();
	test_helpers_fail();
	test_unarmed_sigbus_kills();

	test_efault("prot_none", none_map, 2 * PAGE);
	test_efault_prot_none_unchanged();
	test_efault("past_eof", past_eof(1, 0), 2 * PAGE);
	test_probes_succeed();
	test_no_fd_leak();

	ksft_finished();
}
