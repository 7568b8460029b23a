// SPDX-License-Identifier: GPL-2.0-only
/*
 * ucall for SEV-SNP guests.  The framework's ucall ends in "in" on port
 * 0x1000 with the ucall's host address in RDI, and its host side reads RDI
 * with KVM_GET_REGS.  In an SNP guest the "in" raises #VC, and after
 * SNP_LAUNCH_FINISH KVM_GET_REGS fails with EINVAL (protected state).
 *
 * So the host gives each vCPU two shared pages (C-bit clear): a GHCB, which
 * the guest registers with the MSR protocol's REG_GPA request, and a
 * mailbox.  A #VC handler decodes the trapped IN/OUT, stores RDI in the
 * mailbox when the port is the ucall port, and forwards the access as a
 * GHCB IOIO exit (checked by sev_es_validate_vmgexit(), arch/x86/kvm/svm/sev.c).
 * KVM then exits to userspace with KVM_EXIT_IO on port 0x1000 exactly as
 * for a normal guest, and rmpt_snp_get_ucall() reads the ucall through the
 * mailbox.  The ucall structs themselves are already shared: the framework
 * allocates them with its shared allocator.  So GUEST_SYNC(), GUEST_DONE()
 * and GUEST_ASSERT() work unchanged.
 */
#include <errno.h>
#include <string.h>

#include "snp_ghcb.h"

/* UCALL_PIO_PORT, private to the framework's lib/x86_64/ucall.c (mainline: lib/x86/). */
#define UCALL_PORT		0x1000
#define MAILBOX_MAGIC		0x786f626c69616d72ULL	/* "rmailbox" */
#define AREA_STRIDE		(RMPT_GHCB_AREA_PAGES_PER_VCPU * PAGE_SIZE)
#define GHCB_PROTOCOL_VERSION	2	/* SNP needs GHCB v2 */
#define GHCB_DEFAULT_USAGE	0	/* the only usage KVM accepts */

/* The GHCB page (struct ghcb, arch/x86/include/asm/svm.h): only the fields used named. */
struct ghcb_page {
	u8 rsvd_000[0x1f8];
	u64 rax;			/* 0x1f8 */
	u8 rsvd_200[0x390 - 0x200];
	u64 sw_exit_code;		/* 0x390 */
	u64 sw_exit_info_1;		/* 0x398 */
	u64 sw_exit_info_2;		/* 0x3a0 */
	u8 rsvd_3a8[0x3f0 - 0x3a8];
	u8 valid_bitmap[16];		/* 0x3f0 */
	u8 rsvd_400[0xffa - 0x400];
	u16 protocol_version;		/* 0xffa */
	u32 ghcb_usage;			/* 0xffc */
} __packed;

kvm_static_assert(sizeof(struct ghcb_page) == 0x1000);
kvm_static_assert(offsetof(struct ghcb_page, rax) == 0x1f8);
kvm_static_assert(offsetof(struct ghcb_page, sw_exit_code) == 0x390);
kvm_static_assert(offsetof(struct ghcb_page, valid_bitmap) == 0x3f0);
kvm_static_assert(offsetof(struct ghcb_page, protocol_version) == 0xffa);

/* The shared page next to each GHCB: what the host needs to read a ucall. */
struct mailbox {
	u64 magic;
	u64 ucall_hva;		/* RDI of the last ucall */
};

/* Where the host placed the per-vCPU pages; synced before launch. */
static u64 ghcb_area_gva;
static u64 ghcb_area_gpa;
static u32 ghcb_area_vcpus;
/* Host: the VM they belong to; one SNP VM with ucalls per process at a time. */
static struct kvm_vm *ghcb_area_vm;

/*
 * The CPU pushes an error code (the exit code) for #VC, but the
 * framework's handlers.S builds vector 29 as a vector without one, so its
 * stub would misread the frame.  This stub pushes the vector next to the
 * CPU's error code, saves the GPRs in struct ex_regs order, calls the C
 * handler, and returns past vector and error code.
 */
asm(".pushsection .text\n"
	".global rmpt_snp_vc_entry\n"
	"rmpt_snp_vc_entry:\n"
	"\tpushq $29\n"
	"\t.irp r, r15, r14, r13, r12, r11, r10, r9, r8, rdi, rsi, rbp, rbx, rdx, rcx, rax\n"
	"\tpush %\\r\n"
	"\t.endr\n"
	"\tmov %rsp, %rdi\n"
	"\tcld\n"
	"\tcall rmpt_snp_vc_handler\n"
	"\t.irp r, rax, rcx, rdx, rbx, rbp, rsi, rdi, r8, r9, r10, r11, r12, r13, r14, r15\n"
	"\tpop %\\r\n"
	"\t.endr\n"
	"\tadd $16, %rsp\n"
	"\tiretq\n"
	".popsection\n");

static struct ghcb_page *vcpu_ghcb(u32 idx)
{
	return (struct ghcb_page *)(ghcb_area_gva + idx * AREA_STRIDE);
}

static struct mailbox *vcpu_mailbox(u32 idx)
{
	return (void *)(ghcb_area_gva + idx * AREA_STRIDE + PAGE_SIZE);
}

/* Guest: register this vCPU's GHCB.  Call first thing, once per vCPU. */
void rmpt_snp_guest_ghcb_init(u32 vcpu_id)
{
	u64 gpa = ghcb_area_gpa + vcpu_id * AREA_STRIDE;
	u64 resp;

	if (vcpu_id >= ghcb_area_vcpus)
		rmpt_guest_terminate(RMPT_TERM_SET, RMPT_TERM_NO_GHCB);
	memset(vcpu_ghcb(vcpu_id), 0, PAGE_SIZE);

	/* An SNP guest may only use a GHCB GPA it registered (GHCB spec v2). */
	resp = rmpt_guest_msr_protocol(rmpt_ghcb_reg_gpa_req(gpa >> PAGE_SHIFT));
	if (rmpt_ghcb_code(resp) != RMPT_GHCB_REG_GPA_RESP ||
	    rmpt_ghcb_reg_gpa_resp_gfn(resp) != gpa >> PAGE_SHIFT)
		rmpt_guest_terminate(RMPT_TERM_SET, RMPT_TERM_GHCB_REGISTER);
	wrmsr(MSR_AMD64_SEV_ES_GHCB, gpa);
	WRITE_ONCE(vcpu_mailbox(vcpu_id)->magic, MAILBOX_MAGIC);
}

/* This vCPU's index, from the GHCB GPA its GHCB MSR holds; -1 if none. */
static int vcpu_ghcb_idx(void)
{
	u64 off = rdmsr(MSR_AMD64_SEV_ES_GHCB) - ghcb_area_gpa;

	if (off % AREA_STRIDE || off / AREA_STRIDE >= ghcb_area_vcpus)
		return -1;
	return off / AREA_STRIDE;
}

struct ioio {
	u16 port;
	bool in;
	u8 bytes;
	u8 len;
};

/* Decode IN/OUT with an imm8 or DX port; a 0x66 prefix makes it 16-bit. */
static bool decode_ioio(const struct ex_regs *regs, struct ioio *io)
{
	const u8 *insn = (const u8 *)regs->rip;
	bool opsize16 = insn[0] == 0x66;
	u8 op = insn[opsize16];

	io->len = opsize16 + 1;
	switch (op) {
	case 0xe4: case 0xe5: case 0xe6: case 0xe7:
		io->port = insn[opsize16 + 1];
		io->len++;
		break;
	case 0xec: case 0xed: case 0xee: case 0xef:
		io->port = regs->rdx;
		break;
	default:
		return false;
	}
	/* Bit 1 of the opcode selects OUT, bit 0 a full-size operand. */
	io->in = !(op & 2);
	io->bytes = !(op & 1) ? 1 : opsize16 ? 2 : 4;
	return true;
}

/* The field at offset is an input: its bit (offset / 8) in valid_bitmap. */
static void ghcb_mark_valid(struct ghcb_page *ghcb, size_t offset)
{
	ghcb->valid_bitmap[offset / 64] |= 1 << (offset / 8 % 8);
}

/* Fill the GHCB for an IOIO exit; RAX is an input only for OUT. */
static void ghcb_fill_ioio(struct ghcb_page *ghcb, const struct ioio *io, u64 rax)
{
	memset(ghcb->valid_bitmap, 0, sizeof(ghcb->valid_bitmap));
	ghcb->protocol_version = GHCB_PROTOCOL_VERSION;
	ghcb->ghcb_usage = GHCB_DEFAULT_USAGE;
	ghcb->sw_exit_code = SVM_EXIT_IOIO;
	ghcb->sw_exit_info_1 = rmpt_ioio_exit_info(io->port, io->in, io->bytes);
	ghcb->sw_exit_info_2 = 0;
	ghcb_mark_valid(ghcb, offsetof(struct ghcb_page, sw_exit_code));
	ghcb_mark_valid(ghcb, offsetof(struct ghcb_page, sw_exit_info_1));
	ghcb_mark_valid(ghcb, offsetof(struct ghcb_page, sw_exit_info_2));
	if (!io->in) {
		ghcb->rax = rax;
		ghcb_mark_valid(ghcb, offsetof(struct ghcb_page, rax));
	}
}

static void vc_ioio(struct ex_regs *regs, int idx)
{
	struct ghcb_page *ghcb = vcpu_ghcb(idx);
	struct ioio io;
	u64 mask;

	if (!decode_ioio(regs, &io))
		rmpt_guest_terminate(RMPT_TERM_SET, RMPT_TERM_VC_DECODE);
	mask = (1ULL << (8 * io.bytes)) - 1;

	/* The host must see the ucall's address before it sees the exit. */
	if (io.in && io.port == UCALL_PORT)
		WRITE_ONCE(vcpu_mailbox(idx)->ucall_hva, regs->rdi);

	ghcb_fill_ioio(ghcb, &io, regs->rax & mask);
	wrmsr(MSR_AMD64_SEV_ES_GHCB, ghcb_area_gpa + idx * AREA_STRIDE);
	vmgexit();
	barrier();	/* the hypervisor wrote the GHCB */
	if ((u32)ghcb->sw_exit_info_1)
		rmpt_guest_terminate(RMPT_TERM_SET, RMPT_TERM_VC_IOIO);

	/* IN writes AL/AX in place; a 32-bit IN zero-extends into RAX. */
	if (io.in && io.bytes == 4)
		regs->rax = ghcb->rax & mask;
	else if (io.in)
		regs->rax = (regs->rax & ~mask) | (ghcb->rax & mask);
	regs->rip += io.len;
}

/* #VC: the error code is the exit code of the intercepted instruction. */
void rmpt_snp_vc_handler(struct ex_regs *regs)
{
	int idx = vcpu_ghcb_idx();

	if (idx < 0)
		rmpt_guest_terminate(RMPT_TERM_SET, RMPT_TERM_NO_GHCB);
	if (regs->error_code != SVM_EXIT_IOIO)
		rmpt_guest_terminate(RMPT_TERM_SET, RMPT_TERM_VC_UNHANDLED);
	vc_ioio(regs, idx);
}

/* Point the #VC gate at our stub; keep the framework's selector and type. */
static void install_vc_entry(struct kvm_vm *vm)
{
	struct idt_entry *idt = addr_gva2hva(vm, vm->arch.idt);
	struct idt_entry *e = &idt[29];		/* #VC */
	u64 addr = (u64)rmpt_snp_vc_entry;

	TEST_ASSERT(e->p, "IDT vector 29: expected a present gate, got none");
	e->offset0 = addr;
	e->offset1 = addr >> 16;
	e->offset2 = addr >> 32;
}

/* Host, before launch: the shared per-vCPU pages, where the guest finds them, the #VC entry. */
void rmpt_snp_ucall_init(struct kvm_vm *vm, u32 nr_vcpus)
{
	u64 npages = (u64)nr_vcpus * RMPT_GHCB_AREA_PAGES_PER_VCPU;
	u64 gva = RMPT_GHCB_AREA_GVA, gpa, i;

	TEST_ASSERT(nr_vcpus, "SNP ucall: expected at least one vCPU, got 0");
	TEST_ASSERT(!vm->arch.is_pt_protected,
		    "SNP ucall: expected a VM before launch, got a launched one");
	for (i = 0; i < npages; i++)
		TEST_ASSERT(!sparsebit_is_set(vm->vpages_mapped, (gva >> vm->page_shift) + i),
			    "SNP ucall: expected gva 0x%lx unmapped, got it mapped",
			    gva + i * vm->page_size);

	/*
	 * Not protected: mapped with the C-bit clear, left shared at launch.
	 * The lowest GPA is the framework's (KVM_UTIL_MIN_PFN 2, lib/kvm_util.c).
	 */
	gpa = __vm_phy_pages_alloc(vm, npages, 2 * vm->page_size,
				   vm->memslots[MEM_REGION_DATA], false);
	virt_map(vm, gva, gpa, npages);
	memset(addr_gpa2hva(vm, gpa), 0, npages * vm->page_size);

	ghcb_area_gva = gva;
	ghcb_area_gpa = gpa;
	ghcb_area_vcpus = nr_vcpus;
	ghcb_area_vm = vm;
	sync_global_to_guest(vm, ghcb_area_gva);
	sync_global_to_guest(vm, ghcb_area_gpa);
	sync_global_to_guest(vm, ghcb_area_vcpus);

	install_vc_entry(vm);
}

/* Host: the mailbox of vcpu; asserts rmpt_snp_ucall_init() covered it. */
static const struct mailbox *host_mailbox(struct kvm_vcpu *vcpu)
{
	TEST_ASSERT(vcpu->vm == ghcb_area_vm,
		    "SNP ucall: expected rmpt_snp_ucall_init() for this VM, got none");
	TEST_ASSERT(vcpu->id < ghcb_area_vcpus,
		    "SNP ucall: expected vCPU id below %u, got %u", ghcb_area_vcpus, vcpu->id);
	return addr_gpa2hva(vcpu->vm, ghcb_area_gpa + vcpu->id * AREA_STRIDE + PAGE_SIZE);
}

/*
 * Host: the SNP counterpart of get_ucall().  Like it, it completes the
 * pending "in" so that the next KVM_RUN resumes the guest after it.
 */
u64 rmpt_snp_get_ucall(struct kvm_vcpu *vcpu, struct ucall *uc)
{
	const struct mailbox *mbox;
	struct ucall local;
	u64 hva;

	if (!uc)
		uc = &local;
	memset(uc, 0, sizeof(*uc));
	if (vcpu->run->exit_reason != KVM_EXIT_IO ||
	    vcpu->run->io.port != UCALL_PORT)
		return UCALL_NONE;

	mbox = host_mailbox(vcpu);
	TEST_ASSERT(READ_ONCE(mbox->magic) == MAILBOX_MAGIC,
		    "vCPU %u mailbox: expected magic 0x%llx, got 0x%lx (no rmpt_snp_guest_ghcb_init()?)",
		    vcpu->id, MAILBOX_MAGIC, mbox->magic);
	hva = READ_ONCE(mbox->ucall_hva);
	/* ucall_alloc() passes -1 when it ran out of ucall structs. */
	TEST_ASSERT(hva != ~0ULL, "Guest failed to allocate ucall struct");
	if (hva)
		memcpy(uc, (void *)hva, sizeof(*uc));
	vcpu_run_complete_io(vcpu);
	return uc->cmd;
}

/*
 * Host: KVM_RUN without the framework's vcpu_run() epilogue, which peeks
 * at ucalls with KVM_GET_REGS and so fails on protected vCPUs.  Returns 0
 * or the errno of KVM_RUN (EFAULT comes with KVM_EXIT_MEMORY_FAULT).
 */
int rmpt_snp_vcpu_try_run(struct kvm_vcpu *vcpu)
{
	int rc;

	do {
		rc = __vcpu_run(vcpu);
	} while (rc == -1 && errno == EINTR);
	return rc ? errno : 0;
}

/* Host: true if the guest asked to terminate; fills its reason. */
bool rmpt_snp_term_exit(struct kvm_vcpu *vcpu, u8 *set, u8 *code)
{
	struct kvm_run *run = vcpu->run;

	if (run->exit_reason != KVM_EXIT_SYSTEM_EVENT ||
	    run->system_event.type != KVM_SYSTEM_EVENT_SEV_TERM ||
	    run->system_event.ndata < 1)
		return false;
	return rmpt_ghcb_term_decode(run->system_event.data[0], set, code);
}
