// SPDX-License-Identifier: GPL-2.0-only
/*
 * Kernel log checks: write a unique marker to /dev/kmsg when a case
 * starts, then look at what the kernel logged after it.  A WARN, BUG,
 * Oops, RMP dump or bad-page report there fails the case even when the
 * process itself saw nothing wrong.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "snp_util.h"

static const char *const kmsg_bad_patterns[] = {
#include "kmsg_bad.inc"
};

bool rmpt_kmsg_line_bad(const char *line)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(kmsg_bad_patterns); i++)
		if (strstr(line, kmsg_bad_patterns[i]))
			return true;
	return false;
}

/*
 * One record in the kernel log.  The newline matters: the kernel keeps a
 * record without one open for a continuation, and /dev/kmsg readers do
 * not see it until a later record closes it.
 */
int rmpt_kmsg_write(const char *text)
{
	char line[512];
	ssize_t n;
	int fd;

	snprintf(line, sizeof(line), "%s\n", text);
	fd = open("/dev/kmsg", O_WRONLY);
	if (fd < 0)
		return -errno;
	n = write(fd, line, strlen(line));
	close(fd);
	return n < 0 ? -errno : 0;
}

int rmpt_kmsg_mark(const char *tag, char *marker, size_t len)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(marker, len, "snp-rmp-selftests: %s %d.%ld.%ld start", tag,
		 getpid(), (long)ts.tv_sec, ts.tv_nsec);
	return rmpt_kmsg_write(marker);
}

/*
 * Each read() of /dev/kmsg returns one record, "prio,seq,usec,flags;text"
 * followed by " KEY=value" continuation lines; EPIPE means records were
 * overwritten under us (go on), EAGAIN the end of the log.
 */
int rmpt_kmsg_scan(const char *marker, char *first_bad, size_t len)
{
	bool seen_marker = false;
	char rec[8192];
	int fd, bad = 0;
	const char *text;
	ssize_t n;

	if (len)
		first_bad[0] = '\0';
	fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	for (;;) {
		n = read(fd, rec, sizeof(rec) - 1);
		if (n < 0 && errno == EPIPE)
			continue;
		if (n <= 0)
			break;
		rec[n] = '\0';
		text = strchr(rec, ';');
		text = text ? text + 1 : rec;
		if (!seen_marker) {
			seen_marker = strstr(text, marker);
			continue;
		}
		if (rmpt_kmsg_line_bad(text) && !bad++ && len)
			snprintf(first_bad, len, "%.*s", (int)strcspn(text, "\n"), text);
	}
	close(fd);
	return seen_marker ? bad : -ENOENT;
}
