// SPDX-License-Identifier: GPL-2.0-only
/*
 * lib/fault_util.c without KVM.  A shared memfd mapping longer than its
 * file gives real SIGBUS BUS_ADRERR faults at exact addresses past EOF,
 * and real EFAULT from kernel writes there; PROT_NONE gives EFAULT too.
 * Failing assertions run in a child, so that the proof that a helper can
 * fail does not end this program.
 */
#include <dirent.h>
#include <pthread.h>
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
	u8 b;

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

	/* Byte accesses at an odd offset: si_addr is exact, not the page. */
	addr = past_eof(1, 0x123);
	ksft_test_result(!rmpt_try_write_u8(addr, 0xff, &f) && sigbus_ok(&f, addr),
			 "sigbus_write_u8_unaligned\n");
	addr = past_eof(2, 0x123);
	ksft_test_result(!rmpt_try_read_u8(addr, &b, &f) && sigbus_ok(&f, addr),
			 "sigbus_read_u8_unaligned\n");

	/* The asserting helpers pass; they would end the program if not. */
	rmpt_expect_sigbus_write(past_eof(3, 0x8));
	rmpt_expect_sigbus_read(past_eof(3, 0x10));
	ksft_test_result_pass("expect_sigbus_helpers_pass\n");
}

static void test_no_fault_inside_eof(void)
{
	struct rmpt_fault f;
	u8 *addr = eof_map + 0x128;
	u64 val = 0;
	bool ok;
	u8 b = 0;

	ok = rmpt_try_write(addr, VAL, &f) && !f.faulted &&
	     rmpt_try_read(addr, &val, &f) && !f.faulted &&
	     val == VAL && *(u64 *)addr == VAL;
	ok = ok && rmpt_try_write_u8(addr + 3, 0x77, &f) &&
	     rmpt_try_read_u8(addr + 3, &b, &f) && b == 0x77;
	ksft_test_result(ok, "no_fault_inside_eof\n");

	rmpt_expect_no_sigbus_write(addr, ~VAL);
	ksft_test_result(rmpt_expect_no_sigbus_read(addr) == ~VAL,
			 "expect_no_sigbus_helpers_pass\n");
}

struct probe_thread {
	pthread_t tid;
	pthread_barrier_t *start;
	u8 *addr;
	int mismatches;
	char first_why[256];
};

/* Fault many times at this thread's own address; any other answer is a mismatch. */
static void *probe_thread_fn(void *data)
{
	struct probe_thread *pt = data;
	struct rmpt_fault f;
	bool completed;
	char why[256];
	u64 val;
	int i;

	pthread_barrier_wait(pt->start);
	for (i = 0; i < THREAD_ITERS; i++) {
		if (i & 1)
			completed = rmpt_try_read(pt->addr, &val, &f);
		else
			completed = rmpt_try_write(pt->addr, i, &f);
		if (!completed && !rmpt_check_sigbus(&f, pt->addr, BUS_ADRERR,
						     why, sizeof(why)))
			continue;
		if (!pt->mismatches++)
			snprintf(pt->first_why, sizeof(pt->first_why), "%s",
				 completed ? "access completed" : why);
	}
	return NULL;
}

static void test_threads(void)
{
	struct probe_thread pts[NR_THREADS] = {};
	pthread_barrier_t start;
	int i, mismatches = 0;

	pthread_barrier_init(&start, NULL, NR_THREADS);
	for (i = 0; i < NR_THREADS; i++) {
		pts[i].start = &start;
		pts[i].addr = past_eof(1 + i, 0x100 + i * 8);
		TEST_ASSERT(!pthread_create(&pts[i].tid, NULL, probe_thread_fn, &pts[i]),
			    "pthread_create %d", i);
	}
	for (i = 0; i < NR_THREADS; i++) {
		pthread_join(pts[i].tid, NULL);
		if (pts[i].mismatches)
			ksft_print_msg("thread %d: %d mismatches, first: %s\n", i,
				       pts[i].mismatches, pts[i].first_why);
		mismatches += pts[i].mismatches;
	}
	pthread_barrier_destroy(&start);
	ksft_test_result(!mismatches, "threads_see_own_sigbus (%d x %d)\n",
			 NR_THREADS, THREAD_ITERS);
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
	ksft_test_result(ret == RMPT_SIGBUS_ADDR && strstr(why, "expected SIGBUS at"),
			 "check_rejects_wrong_addr\n");

	ret = rmpt_check_sigbus(&f, past_eof(4, 0), BUS_ADRERR, why, sizeof(why));
	ksft_test_result(ret == RMPT_SIGBUS_ADDR, "check_rejects_page_aligned_addr\n");

	ret = rmpt_check_sigbus(&f, addr, BUS_OBJERR, why, sizeof(why));
	ksft_print_msg("wrong code: %s\n", why);
	ksft_test_result(ret == RMPT_SIGBUS_CODE && strstr(why, "BUS_OBJERR"),
			 "check_rejects_wrong_code\n");

	ret = rmpt_check_sigbus(&none, eof_map, BUS_ADRERR, why, sizeof(why));
	ksft_print_msg("no fault: %s\n", why);
	ksft_test_result(ret == RMPT_SIGBUS_MISSING && strstr(why, "got no fault"),
			 "check_rejects_no_fault\n");

	f.signo = SIGSEGV;
	ret = rmpt_check_sigbus(&f, addr, BUS_ADRERR, why, sizeof(why));
	ksft_test_result(ret == RMPT_SIGBUS_SIGNO, "check_rejects_other_signal\n");
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
	rmpt_expect_sigbus_write(eof_map + 0x200);
}

static void expect_no_sigbus_past_eof(void *arg)
{
	rmpt_expect_no_sigbus_write(past_eof(5, 0x200), VAL);
}

static void expect_efault_on_writable(void *arg)
{
	rmpt_expect_efault_writes(arg, 64);
}

static void expect_bytes_wrong(void *arg)
{
	rmpt_expect_bytes(arg, 0xee, 64);
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

	memset(buf, FILL, sizeof(buf));
	run_child(expect_bytes_wrong, buf, &c);
	ksft_test_result(child_assert_failed(&c, "expected 0xee, got 0x5a"),
			 "expect_bytes_fails_on_other_bytes\n");
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
	rmpt_expect_efault_writes(dst, len);
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

static bool is_pattern(const u8 *buf, size_t len)
{
	size_t i;

	for (i = 0; i < len && buf[i] == rmpt_pattern_byte(i); i++)
		;
	if (i < len)
		ksft_print_msg("byte 0x%zx: expected 0x%x, got 0x%x\n", i,
			       rmpt_pattern_byte(i), buf[i]);
	return i == len;
}

static void test_probes_succeed(void)
{
	u8 *buf = malloc(BIG_LEN);
	int ret;

	TEST_ASSERT(buf, "malloc %lu", BIG_LEN);

	memset(buf, FILL, BIG_LEN);
	ret = rmpt_pipe_read_into(buf, BIG_LEN);
	ksft_test_result(!ret && is_pattern(buf, BIG_LEN), "pipe_writes_pattern\n");

	memset(buf, FILL, BIG_LEN);
	ret = rmpt_devzero_read_into(buf, BIG_LEN);
	rmpt_expect_bytes(buf, 0, BIG_LEN);
	ksft_test_result(!ret, "devzero_writes_zeroes\n");

	memset(buf, FILL, BIG_LEN);
	ret = rmpt_process_vm_write_into(buf, BIG_LEN);
	if (ret)
		ksft_print_msg("process_vm_writev: expected 0, got %d (%s)\n",
			       ret, strerror(-ret));
	ksft_test_result(!ret && is_pattern(buf, BIG_LEN), "process_vm_writes_pattern\n");
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
	ksft_set_plan(33);
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
