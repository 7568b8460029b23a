// SPDX-License-Identifier: GPL-2.0-only
/*
 * What the running kernel and machine offer, probed once, and which VM
 * flavour that makes usable.  Every "no" comes with the precise missing
 * capability, because a SKIP must name it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include <linux/kvm_para.h>

#include "processor.h"
#include "snp_util.h"

#ifndef X86_FEATURE_SEV_SNP	/* 6.12 processor.h lacks it; CPUID Fn8000_001F EAX[4] */
#define X86_FEATURE_SEV_SNP	KVM_X86_CPU_FEATURE(0x8000001F, 0, EAX, 4)
#endif

static const struct rmpt_flavour_ops *const flavours[RMPT_NR_FLAVOURS] = {
	[RMPT_SNP] = &rmpt_snp_ops,
	[RMPT_SW_PROTECTED] = &rmpt_sw_protected_ops,
	[RMPT_DEFAULT] = &rmpt_default_ops,
	[RMPT_LEGACY_V6] = &rmpt_legacy_v6_ops,
};

const struct rmpt_flavour_ops *rmpt_flavour(enum rmpt_flavour f)
{
	TEST_ASSERT(f < RMPT_NR_FLAVOURS, "expected a flavour below %d, got %d",
		    RMPT_NR_FLAVOURS, f);
	return flavours[f];
}

const char *rmpt_flavour_name(enum rmpt_flavour f)
{
	return f < RMPT_NR_FLAVOURS ? flavours[f]->name : "?";
}

int rmpt_flavour_parse(const char *name, enum rmpt_flavour *f)
{
	int i;

	for (i = 0; i < RMPT_NR_FLAVOURS; i++) {
		if (!strcmp(name, flavours[i]->name)) {
			*f = i;
			return 0;
		}
	}
	return -EINVAL;
}

/* 1 for "Y", 0 for "N", -1 when the parameter (or module) is absent. */
static int read_bool_param(const char *path)
{
	char c = 0;
	int fd;

	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	if (read(fd, &c, 1) != 1)
		c = 0;
	close(fd);
	return c == 'Y' || c == 'y' || c == '1';
}

/*
 * The framework's assertion message: the last line of its dump, and the
 * "file:line: expression" line under the banner.
 */
static void assertion_why(char *out, char *why, size_t len)
{
	char *where = strstr(out, "==== Test Assertion Failure ====\n");
	char *last, *end;

	end = out + strlen(out);
	while (end > out && (end[-1] == '\n' || end[-1] == ' '))
		*--end = '\0';
	last = strrchr(out, '\n');
	last = last ? last + 1 : out;
	last += strspn(last, " ");
	if (where) {
		where += strlen("==== Test Assertion Failure ====\n");
		where += strspn(where, " ");
		where[strcspn(where, "\n")] = '\0';
	}
	snprintf(why, len, "%s%s%s%s", last, where ? " (" : "", where ?: "", where ? ")" : "");
}

/*
 * Some hosts' KVM refuses the vCPU state the framework gives every vCPU
 * (seen: KVM_SET_SREGS EINVAL from vcpu_init_sregs(), lib/x86/processor.c
 * of the 7.2 framework, on a paravirtual KVM).  The framework asserts,
 * so one child tries, and its assertion becomes one reason for every SKIP.
 */
static void probe_vcpu(struct rmpt_caps *caps)
{
	char out[4096] = "";
	size_t used = 0;
	int pipefd[2], status;
	struct kvm_vcpu *vcpu;
	ssize_t n;
	pid_t pid;

	fflush(NULL);
	TEST_ASSERT(!pipe(pipefd), "pipe: %s", strerror(errno));
	pid = fork();
	TEST_ASSERT(pid >= 0, "fork: %s", strerror(errno));
	if (!pid) {
		dup2(pipefd[1], STDOUT_FILENO);
		dup2(pipefd[1], STDERR_FILENO);
		if (getenv("SNP_RMP_INJECT_VCPU_FAILURE"))
			TEST_FAIL("injected: SNP_RMP_INJECT_VCPU_FAILURE");
		kvm_vm_free(vm_create_with_one_vcpu(&vcpu, NULL));
		_exit(0);
	}
	close(pipefd[1]);
	while (used < sizeof(out) - 1 &&
	       (n = read(pipefd[0], out + used, sizeof(out) - 1 - used)) > 0)
		used += n;
	close(pipefd[0]);
	TEST_ASSERT(waitpid(pid, &status, 0) == pid, "waitpid: %s", strerror(errno));
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		assertion_why(out, caps->vcpu_why, sizeof(caps->vcpu_why));
}

void rmpt_caps_probe(struct rmpt_caps *caps)
{
	int fd;

	memset(caps, 0, sizeof(*caps));
	fd = open(KVM_DEV_PATH, O_RDWR);
	caps->kvm_errno = fd < 0 ? errno : 0;
	if (fd >= 0) {
		close(fd);
		/* Without KVM_CAP_VM_TYPES only the default type exists. */
		caps->vm_types = kvm_check_cap(KVM_CAP_VM_TYPES) ?: BIT(KVM_X86_DEFAULT_VM);
		caps->guest_memfd = kvm_check_cap(KVM_CAP_GUEST_MEMFD);
		caps->gmem_flags = kvm_check_cap(KVM_CAP_GUEST_MEMFD_FLAGS);
		caps->mem_attrs = kvm_check_cap(KVM_CAP_MEMORY_ATTRIBUTES);
		caps->exit_hypercall = kvm_check_cap(KVM_CAP_EXIT_HYPERCALL);
		probe_vcpu(caps);
	}
	caps->dev_sev = !access("/dev/sev", F_OK);
	caps->kvm_amd = !access("/sys/module/kvm_amd", F_OK);
	caps->kvm_amd_sev_snp = read_bool_param("/sys/module/kvm_amd/parameters/sev_snp");
	/* Leaves past the maximum return another leaf's data on Intel: check first. */
	caps->cpuid_snp = this_cpu_property(X86_PROPERTY_MAX_EXT_LEAF) >= 0x8000001f &&
			  this_cpu_has(X86_FEATURE_SEV_SNP);
	caps->thp = rmpt_thp_mode();
	caps->legacy_v6_requested = getenv("SNP_RMP_LEGACY_V6") &&
				    !strcmp(getenv("SNP_RMP_LEGACY_V6"), "1");
}

bool rmpt_why_not(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return false;
}

static bool kvm_usable(const struct rmpt_caps *caps, char *why, size_t len)
{
	if (caps->kvm_errno)
		return rmpt_why_not(why, len, "cannot open %s: %s", KVM_DEV_PATH,
				    strerror(caps->kvm_errno));
	if (caps->vcpu_why[0])
		return rmpt_why_not(why, len,
				    "this host's KVM cannot create the framework's vCPU: %s",
				    caps->vcpu_why);
	return true;
}

/* Append "; "-separated reasons, so a SKIP names every missing piece. */
void rmpt_why_add(char *why, size_t len, const char *fmt, ...)
{
	size_t used = strnlen(why, len);
	va_list ap;

	if (used && used + 2 < len) {
		why[used++] = ';';
		why[used++] = ' ';
		why[used] = '\0';
	}
	if (used + 1 >= len)
		return;
	va_start(ap, fmt);
	vsnprintf(why + used, len - used, fmt, ap);
	va_end(ap);
}

bool rmpt_private_mem_usable(const struct rmpt_caps *caps, char *why, size_t len)
{
	if (!caps->guest_memfd)
		return rmpt_why_not(why, len, "no KVM_CAP_GUEST_MEMFD");
	if (!(caps->exit_hypercall & BIT(KVM_HC_MAP_GPA_RANGE)))
		return rmpt_why_not(why, len, "KVM_CAP_EXIT_HYPERCALL lacks KVM_HC_MAP_GPA_RANGE");
	return true;
}

bool rmpt_flavour_usable(const struct rmpt_caps *caps, enum rmpt_flavour f,
			 char *why, size_t len)
{
	return kvm_usable(caps, why, len) &&
	       (!rmpt_flavour(f)->usable || rmpt_flavour(f)->usable(caps, why, len));
}

/* 6.18+: a guest_memfd without INIT_SHARED can be mmap()ed and SIGBUSes. */
bool rmpt_gmem_mmap_usable(const struct rmpt_caps *caps, char *why, size_t len)
{
	if (!kvm_usable(caps, why, len))
		return false;
	if (!caps->guest_memfd)
		return rmpt_why_not(why, len, "no KVM_CAP_GUEST_MEMFD");
	if (!(caps->gmem_flags & GUEST_MEMFD_FLAG_MMAP))
		return rmpt_why_not(why, len,
				    "host cannot map private memory: no GUEST_MEMFD_FLAG_MMAP in KVM_CAP_GUEST_MEMFD_FLAGS (6.18+)");
	return true;
}

bool rmpt_thp_usable(const struct rmpt_caps *caps, char *why, size_t len)
{
	if (caps->thp == RMPT_THP_MADVISE || caps->thp == RMPT_THP_ALWAYS)
		return true;
	return rmpt_why_not(why, len, "THP is %s in /sys/kernel/mm/transparent_hugepage/enabled",
			    rmpt_thp_mode_name(caps->thp));
}

void rmpt_caps_print(const struct rmpt_caps *caps)
{
	char why[256];
	int f;

	ksft_print_msg("kvm: %s, VM types 0x%lx, guest_memfd %d (flags 0x%lx)\n",
		       caps->kvm_errno ? strerror(caps->kvm_errno) : "ok", caps->vm_types,
		       caps->guest_memfd, caps->gmem_flags);
	ksft_print_msg("kvm: memory attributes 0x%lx, exit hypercall 0x%lx\n",
		       caps->mem_attrs, caps->exit_hypercall);
	ksft_print_msg("sev: /dev/sev %s, kvm_amd sev_snp %s, CPUID SNP %d\n",
		       caps->dev_sev ? "present" : "absent",
		       caps->kvm_amd_sev_snp < 0 ? "absent" : caps->kvm_amd_sev_snp ? "Y" : "N",
		       caps->cpuid_snp);
	ksft_print_msg("mm: THP %s, NUMA nodes %d\n", rmpt_thp_mode_name(caps->thp),
		       rmpt_numa_nodes());
	for (f = 0; f < RMPT_NR_FLAVOURS; f++)
		ksft_print_msg("flavour %s: %s\n", rmpt_flavour_name(f),
			       rmpt_flavour_usable(caps, f, why, sizeof(why)) ? "usable" : why);
	if (!rmpt_gmem_mmap_usable(caps, why, sizeof(why)))
		ksft_print_msg("guest_memfd mmap: %s\n", why);
}
