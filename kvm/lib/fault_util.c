// SPDX-License-Identifier: GPL-2.0-only
/* Faults the host takes on memory it must not touch (include/snp_fault.h). */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/uio.h>
#include <linux/compiler.h>
#include <linux/kernel.h>

#include "test_util.h"
#include "snp_fault.h"

/* Written by rmpt_expect_sigbus(): easy to spot if it ever lands. */
#define SIGBUS_POISON		0x5349474255535f21UL	/* "SIGBUS_!" */
#define PROBE_CHUNK		4096

/*
 * Per thread, so that threads probing at once never see each other's
 * faults.  armed is set only around the one access that may fault.
 */
struct sigbus_state {
	sigjmp_buf env;
	sig_atomic_t armed;	/* READ_ONCE/WRITE_ONCE: the handler reads it */
	struct rmpt_fault *f;	/* where the handler reports the fault */
	bool checked;		/* this thread saw our handler installed */
};

static __thread struct sigbus_state sigbus_tls;
static pthread_once_t sigbus_once = PTHREAD_ONCE_INIT;

u64 rmpt_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return timespec_to_ns(ts);
}

/*
 * A SIGBUS nobody armed for is a real failure: back to the default action.
 * Re-raised, as a sent SIGBUS (kill, BUS_MCEERR_AO) would not recur; it
 * stays pending until the handler returns.
 */
static void sigbus_handler(int sig, siginfo_t *si, void *ucontext)
{
	struct sigbus_state *t = &sigbus_tls;

	if (!READ_ONCE(t->armed)) {
		struct sigaction dfl = { .sa_handler = SIG_DFL };

		sigaction(SIGBUS, &dfl, NULL);
		raise(SIGBUS);
		return;
	}
	t->f->handler_ns = rmpt_now_ns();
	WRITE_ONCE(t->armed, 0);
	t->f->faulted = true;
	t->f->signo = si->si_signo;
	t->f->code = si->si_code;
	t->f->addr = si->si_addr;
	siglongjmp(t->env, 1);
}

static void sigbus_install(void)
{
	struct sigaction sa = {
		.sa_sigaction = sigbus_handler,
		.sa_flags = SA_SIGINFO | SA_NODEFER,	/* see try_access() */
	};

	sigemptyset(&sa.sa_mask);
	TEST_ASSERT(!sigaction(SIGBUS, &sa, NULL),
		    "sigaction(SIGBUS): expected 0, got errno %d (%s)", errno, strerror(errno));
}

/* Install the process-wide handler; safe to call from any thread, any time. */
void rmpt_sigbus_init(void)
{
	pthread_once(&sigbus_once, sigbus_install);
}

const char *rmpt_sigbus_code_name(int code)
{
	static const char *const names[] = {
		[BUS_ADRALN] = "BUS_ADRALN", [BUS_ADRERR] = "BUS_ADRERR",
		[BUS_OBJERR] = "BUS_OBJERR", [BUS_MCEERR_AR] = "BUS_MCEERR_AR",
		[BUS_MCEERR_AO] = "BUS_MCEERR_AO",
	};

	return code > 0 && code < ARRAY_SIZE(names) ? names[code] : "?";
}

/*
 * One access with this thread armed.  SA_NODEFER leaves SIGBUS unblocked
 * in the handler, so sigsetjmp() need not save the mask, which would cost
 * a syscall per access.  Someone else's handler would see our faults
 * instead, so refuse to probe without ours; it is checked once per thread
 * for the same reason (a later replacement goes unnoticed).
 */
static bool try_access(void *addr, bool write, u64 *val, struct rmpt_fault *f)
{
	struct sigbus_state *t = &sigbus_tls;
	struct sigaction cur;

	if (!t->checked) {
		rmpt_sigbus_init();
		TEST_ASSERT(!sigaction(SIGBUS, NULL, &cur), "sigaction(SIGBUS) query failed");
		TEST_ASSERT((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == sigbus_handler,
			    "SIGBUS handler: expected rmpt's, got %p (replaced by someone else)",
			    (void *)cur.sa_sigaction);
		t->checked = true;
	}
	memset(f, 0, sizeof(*f));
	t->f = f;
	f->start_ns = rmpt_now_ns();
	if (sigsetjmp(t->env, 0))
		return false;

	WRITE_ONCE(t->armed, 1);
	if (write)
		WRITE_ONCE(*(u64 *)addr, *val);
	else
		*val = READ_ONCE(*(u64 *)addr);
	WRITE_ONCE(t->armed, 0);
	return true;
}

bool rmpt_try_write(void *addr, u64 val, struct rmpt_fault *f)
{
	return try_access(addr, true, &val, f);
}

bool rmpt_try_read(void *addr, u64 *val, struct rmpt_fault *f)
{
	return try_access(addr, false, val, f);
}

int rmpt_check_sigbus(const struct rmpt_fault *f, void *want_addr, int want_code,
		      char *why, size_t len)
{
	if (f->faulted && f->signo == SIGBUS && f->addr == want_addr && f->code == want_code) {
		why[0] = '\0';
		return 0;
	}
	if (!f->faulted)
		snprintf(why, len, "expected SIGBUS at %p code %d (%s), got no fault",
			 want_addr, want_code, rmpt_sigbus_code_name(want_code));
	else
		snprintf(why, len,
			 "expected SIGBUS at %p code %d (%s), got signal %d (%s) at %p code %d (%s)",
			 want_addr, want_code, rmpt_sigbus_code_name(want_code),
			 f->signo, strsignal(f->signo), f->addr, f->code,
			 f->signo == SIGBUS ? rmpt_sigbus_code_name(f->code) : "?");
	return -1;
}

void rmpt_expect_sigbus(void *addr, bool write, long skew)
{
	struct rmpt_fault f = {};
	u64 val = SIGBUS_POISON;
	char why[256];

	try_access(addr, write, &val, &f);
	TEST_ASSERT(!rmpt_check_sigbus(&f, (u8 *)addr + skew, BUS_ADRERR, why, sizeof(why)),
		    "%s %p: %s", write ? "write" : "read", addr, why);
}

static u64 expect_no_sigbus(void *addr, bool write, u64 val)
{
	struct rmpt_fault f = {};
	bool completed = try_access(addr, write, &val, &f);

	/* Not in TEST_ASSERT(): its arguments are evaluated in any order. */
	TEST_ASSERT(completed, "%s %p: expected no fault, got signal %d (%s) at %p code %d (%s)",
		    write ? "write" : "read", addr, f.signo, strsignal(f.signo), f.addr, f.code,
		    rmpt_sigbus_code_name(f.code));
	return val;
}

void rmpt_expect_no_sigbus_write(void *addr, u64 val)
{
	expect_no_sigbus(addr, true, val);
}

u64 rmpt_expect_no_sigbus_read(void *addr)
{
	return expect_no_sigbus(addr, false, 0);
}

/* What the pipe and process_vm_writev probes write at offset off: never constant. */
static void fill_pattern(u8 *buf, size_t off, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		buf[i] = (u8)((off + i) ^ ((off + i) >> 8) ^ 0xa5);
}

/* read() exactly len bytes into dst; 0, or -errno of the read() that failed. */
static int read_fully(int fd, u8 *dst, size_t len)
{
	size_t done = 0;
	ssize_t r;

	while (done < len) {
		r = read(fd, dst + done, len - done);
		if (r < 0)
			return -errno;
		TEST_ASSERT(r > 0, "read(fd %d): expected data, got EOF at 0x%zx of 0x%zx",
			    fd, done, len);
		done += r;
	}
	return 0;
}

/*
 * Pass the pattern through a pipe into dst, one chunk at a time so that a
 * write never waits for a reader.  Returns 0 or -errno of read().
 */
int rmpt_pipe_read_into(void *dst, size_t len)
{
	u8 chunk[PROBE_CHUNK];
	size_t done, n;
	int fds[2], ret = 0;
	ssize_t w;

	TEST_ASSERT(!pipe2(fds, O_CLOEXEC), "pipe2: expected 0, got errno %d (%s)",
		    errno, strerror(errno));
	for (done = 0; !ret && done < len; done += n) {
		n = min(len - done, sizeof(chunk));
		fill_pattern(chunk, done, n);
		w = write(fds[1], chunk, n);
		TEST_ASSERT(w == (ssize_t)n, "pipe write: expected %zu bytes, got %zd", n, w);
		ret = read_fully(fds[0], (u8 *)dst + done, n);
	}
	/* Whatever a failed read() left in the pipe goes with it. */
	close(fds[0]);
	close(fds[1]);
	return ret;
}

int rmpt_devzero_read_into(void *dst, size_t len)
{
	int fd, ret;

	fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
	TEST_ASSERT(fd >= 0, "open /dev/zero: expected an fd, got errno %d (%s)",
		    errno, strerror(errno));
	ret = read_fully(fd, dst, len);
	close(fd);
	return ret;
}

/*
 * process_vm_writev() the pattern into our own dst: the kernel writes through
 * get_user_pages rather than through our page tables' access rights.
 */
int rmpt_process_vm_write_into(void *dst, size_t len)
{
	u8 chunk[PROBE_CHUNK];
	struct iovec local, remote;
	size_t done = 0, n;
	ssize_t w;

	while (done < len) {
		n = min(len - done, sizeof(chunk));
		fill_pattern(chunk, done, n);
		local = (struct iovec){ .iov_base = chunk, .iov_len = n };
		remote = (struct iovec){ .iov_base = (u8 *)dst + done, .iov_len = n };
		w = process_vm_writev(getpid(), &local, 1, &remote, 1, 0);
		if (w < 0)
			return -errno;
		TEST_ASSERT(w > 0, "process_vm_writev(%p): expected progress, got 0 bytes",
			    remote.iov_base);
		done += w;
	}
	return 0;
}

static void expect_write(const char *probe, int ret, void *dst, size_t len, int want)
{
	TEST_ASSERT(ret == want, "%s into [%p, +0x%zx): expected %d (%s), got %d (%s)",
		    probe, dst, len, want, want ? strerror(-want) : "success", ret,
		    ret ? strerror(-ret) : "success, bytes written");
}

void rmpt_expect_kernel_writes(void *dst, size_t len, int want)
{
	expect_write("pipe read()", rmpt_pipe_read_into(dst, len), dst, len, want);
	expect_write("/dev/zero read()", rmpt_devzero_read_into(dst, len), dst, len, want);
	expect_write("process_vm_writev()", rmpt_process_vm_write_into(dst, len), dst, len,
		     want);
}

struct storm_thread {
	char *addr;
	long skew;
	bool reads;
	int iters, mismatches;
	pthread_t tid;
};

static void *storm_worker(void *arg)
{
	struct storm_thread *t = arg;
	struct rmpt_fault f;
	char why[256];
	int i;

	for (i = 0; i < t->iters; i++) {
		bool done = t->reads && i & 1 ? rmpt_try_read(t->addr, &(u64){0}, &f) :
						rmpt_try_write(t->addr, i, &f);

		if (!done && !rmpt_check_sigbus(&f, t->addr + t->skew, BUS_ADRERR,
						why, sizeof(why)))
			continue;
		if (!t->mismatches++)
			ksft_print_msg("thread at %p: %s\n", t->addr,
				       done ? "the access completed" : why);
	}
	return NULL;
}

/*
 * n threads at once, thread i writing addrs[i] iters times (every other
 * access a read if reads); each access must SIGBUS at exactly addrs[i] +
 * skew (skew is 0 but for the project's negative checks).  Returns the
 * number of accesses that did not.
 */
int rmpt_sigbus_storm(char *const *addrs, int n, int iters, long skew, bool reads)
{
	struct storm_thread *t = calloc(n, sizeof(*t));
	int i, mismatches = 0;

	TEST_ASSERT(t, "calloc");
	rmpt_sigbus_init();
	for (i = 0; i < n; i++) {
		t[i] = (struct storm_thread){ .addr = addrs[i], .skew = skew, .reads = reads,
					      .iters = iters };
		TEST_ASSERT(!pthread_create(&t[i].tid, NULL, storm_worker, &t[i]),
			    "pthread_create");
	}
	for (i = 0; i < n; i++) {
		pthread_join(t[i].tid, NULL);
		mismatches += t[i].mismatches;
	}
	free(t);
	return mismatches;
}
