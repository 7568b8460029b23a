// SPDX-License-Identifier: GPL-2.0-only
/*
 * ucall for SEV-SNP guests.  The framework's ucall ends in "in" on port
 * 0x1000 with the ucall's host address in RDI, and its host side reads RDI
 * with KVM_GET_REGS.  In an SNP guest the "in" raises #VC, and after
 * SNP_LAUNCH_FINISH KVM_GET_REGS fails with EINVAL (protected state).
 *
 * Design: the host gives each vCPU two shared pages (C-bit clear): a GHCB,
 * which the guest registers with the MSR protocol's REG_GPA request, and a
 * mailbox.  A #VC handler on vector 29 decodes the trapped IN/OUT, stores
 * RDI in the mailbox when the port is the ucall port, and forwards the
 * access as a GHCB IOIO exit.  KVM then exits to userspace with KVM_EXIT_IO
 * on port 0x1000 exactly as for a normal guest, and rmpt_snp_get_ucall()
 * reads the ucall through the mailbox.  The ucall structs themselves are
 * already shared: the framework allocates them with its shared allocator.
 * So GUEST_SYNC(), GUEST_DONE() and GUEST_ASSERT() work unchanged.
 *
 * GHCB fields used for the IOIO exit (GHCB spec; struct ghcb in
 * arch/x86/include/asm/svm.h, checked by sev_es_validate_vmgexit() in
 * arch/x86/kvm/svm/sev.c): sw_exit_code = SVM_EXIT_IOIO (0x7b,
 * arch/x86/include/uapi/asm/svm.h), sw_exit_info_1 = the IOIO exit
 * information, sw_exit_info_2 = 0, RAX for OUT; each marked in
 * valid_bitmap.  KVM answers with sw_exit_info_1 = 0 and RAX for IN.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "snp_ghcb.h"

/* Where the host placed the per-vCPU pages; synced before launch. */
static u64 rmpt_ghcb_area_gva;
static u64 rmpt_ghcb_area_gpa;
static u32 rmpt_ghcb_area_vcpus;

#define RMPT_AREA_STRIDE	(RMPT_GHCB_AREA_PAGES_PER_VCPU * PAGE_SIZE)

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
	"\tpush %r15\n"
	"\tpush %r14\n"
	"\tpush %r13\n"
	"\tpush %r12\n"
	"\tpush %r11\n"
	"\tpush %r10\n"
	"\tpush %r9\n"
	"\tpush %r8\n"
	"\tpush %rdi\n"
	"\tpush %rsi\n"
	"\tpush %rbp\n"
	"\tpush %rbx\n"
	"\tpush %rdx\n"
	"\tpush %rcx\n"
	"\tpush %rax\n"
	"\tmov %rsp, %rdi\n"
	"\tcld\n"
	"\tcall rmpt_snp_vc_handler\n"
	"\tpop %rax\n"
	"\tpop %rcx\n"
	"\tpop %rdx\n"
	"\tpop %rbx\n"
	"\tpop %rbp\n"
	"\tpop %rsi\n"
	"\tpop %rdi\n"
	"\tpop %r8\n"
	"\tpop %r9\n"
	"\tpop %r10\n"
	"\tpop %r11\n"
	"\tpop %r12\n"
	"\tpop %r13\n"
	"\tpop %r14\n"
	"\tpop %r15\n"
	"\tadd $16, %rsp\n"
	"\tiretq\n"
	".popsection\n");

static struct rmpt_ghcb *rmpt_vcpu_ghcb(u32 idx)
{
	return (struct rmpt_ghcb *)(rmpt_ghcb_area_gva + idx * RMPT_AREA_STRIDE);
}

static struct rmpt_snp_mailbox *rmpt_vcpu_mailbox(u32 idx)
{
	return (void *)(rmpt_ghcb_area_gva + idx * RMPT_AREA_STRIDE + PAGE_SIZE);
}

/* Guest: register this vCPU's GHCB.  Call first thing, once per vCPU. */
void rmpt_snp_guest_ghcb_init(u32 vcpu_id)
{
	u64 gpa = rmpt_ghcb_area_gpa + vcpu_id * RMPT_AREA_STRIDE;
	struct rmpt_snp_mailbox *mbox;
	u64 resp;

	if (vcpu_id >= rmpt_ghcb_area_vcpus)
		rmpt_guest_terminate(RMPT_TERM_SET, RMPT_TERM_NO_GHCB);
	memset(rmpt_vcpu_ghcb(vcpu_id), 0, PAGE_SIZE);

	/* An SNP guest may only use a GHCB GPA it registered (GHCB spec v2). */
	resp = rmpt_guest_msr_protocol(rmpt_ghcb_reg_gpa_req(gpa >> PAGE_SHIFT));
	if (rmpt_ghcb_code(resp) != RMPT_GHCB_REG_GPA_RESP ||
	    rmpt_ghcb_reg_gpa_resp_gfn(resp) != gpa >> PAGE_SHIFT)
		rmpt_guest_terminate(RMPT_TERM_SET, RMPT_TERM_GHCB_REGISTER);
	wrmsr(RMPT_MSR_GHCB, gpa);

	mbox = rmpt_vcpu_mailbox(vcpu_id);
	mbox->vcpu_id = vcpu_id;
	WRITE_ONCE(mbox->magic, RMPT_SNP_MAILBOX_MAGIC);
}

/* This vCPU's index, from the GHCB GPA its GHCB MSR holds; -1 if none. */
static int rmpt_vcpu_ghcb_idx(void)
{
	u64 off = rdmsr(RMPT_MSR_GHCB) - rmpt_ghcb_area_gpa;

	if (off % RMPT_AREA_STRIDE || off / RMPT_AREA_STRIDE >= rmpt_ghcb_area_vcpus)
		return -1;
	return off / RMPT_AREA_STRIDE;
}

static void __noreturn rmpt_vc_fail(struct ex_regs *regs, int idx, u8 code)
{
	struct rmpt_snp_mailbox *mbox = rmpt_vcpu_mailbox(idx);

	WRITE_ONCE(mbox->vc_exit_code, regs->error_code);
	WRITE_ONCE(mbox->vc_rip, regs->rip);
	rmpt_guest_terminate(RMPT_TERM_SET, code);
}

struct rmpt_ioio {
	u16 port;
	bool in;
	u8 bytes;
	u8 len;
};

/* Decode IN/OUT with an imm8 or DX port; a 0x66 prefix makes it 16-bit. */
static bool rmpt_decode_ioio(const struct ex_regs *regs, struct rmpt_ioio *io)
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

/* Fill the GHCB for an IOIO exit; RAX is an input only for OUT. */
static void rmpt_ghcb_fill_ioio(struct rmpt_ghcb *ghcb, const struct rmpt_ioio *io,
				u64 rax)
{
	memset(ghcb->valid_bitmap, 0, sizeof(ghcb->valid_bitmap));
	ghcb->protocol_version = RMPT_GHCB_PROTOCOL_VERSION;
	ghcb->ghcb_usage = RMPT_GHCB_DEFAULT_USAGE;
	ghcb->sw_exit_code = RMPT_SVM_EXIT_IOIO;
	ghcb->sw_exit_info_1 = rmpt_ioio_exit_info(io->port, io->in, io->bytes);
	ghcb->sw_exit_info_2 = 0;
	rmpt_ghcb_mark_valid(ghcb, offsetof(struct rmpt_ghcb, sw_exit_code));
	rmpt_ghcb_mark_valid(ghcb, offsetof(struct rmpt_ghcb, sw_exit_info_1));
	rmpt_ghcb_mark_valid(ghcb, offsetof(struct rmpt_ghcb, sw_exit_info_2));
	if (!io->in) {
		ghcb->rax = rax;
		rmpt_ghcb_mark_valid(ghcb, offsetof(struct rmpt_ghcb, rax));
	}
}

static void rmpt_vc_ioio(struct ex_regs *regs, int idx)
{
	struct rmpt_snp_mailbox *mbox = rmpt_vcpu_mailbox(idx);
	struct rmpt_ghcb *ghcb = rmpt_vcpu_ghcb(idx);
	struct rmpt_ioio io;
	u64 mask;

	if (!rmpt_decode_ioio(regs, &io))
		rmpt_vc_fail(regs, idx, RMPT_TERM_VC_DECODE);
	mask = (1ULL << (8 * io.bytes)) - 1;

	/* The host must see the ucall's address before it sees the exit. */
	if (io.in && io.port == RMPT_UCALL_PIO_PORT) {
		WRITE_ONCE(mbox->ucall_hva, regs->rdi);
		WRITE_ONCE(mbox->ucall_seq, mbox->ucall_seq + 1);
	}

	rmpt_ghcb_fill_ioio(ghcb, &io, regs->rax & mask);
	wrmsr(RMPT_MSR_GHCB, rmpt_ghcb_area_gpa + idx * RMPT_AREA_STRIDE);
	rmpt_vmgexit();
	if ((u32)ghcb->sw_exit_info_1)
		rmpt_vc_fail(regs, idx, RMPT_TERM_VC_IOIO);

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
	int idx = rmpt_vcpu_ghcb_idx();

	if (idx < 0)
		rmpt_guest_terminate(RMPT_TERM_SET, RMPT_TERM_NO_GHCB);
	if (regs->error_code != RMPT_SVM_EXIT_IOIO)
		rmpt_vc_fail(regs, idx, RMPT_TERM_VC_UNHANDLED);
	rmpt_vc_ioio(regs, idx);
}

/* Host: what rmpt_snp_get_ucall() needs after launch, per VM. */
struct rmpt_snp_ucall_vm {
	struct kvm_vm *vm;
	u8 *area_hva;
	u32 nr_vcpus;
	struct rmpt_snp_ucall_vm *next;
};

static struct rmpt_snp_ucall_vm *rmpt_ucall_vms;

/* After launch the host cannot translate guest addresses: remember HVAs. */
static void rmpt_ucall_vm_remember(struct kvm_vm *vm, u8 *area_hva, u32 nr_vcpus)
{
	struct rmpt_snp_ucall_vm *u;

	for (u = rmpt_ucall_vms; u && u->vm != vm; u = u->next)
		;
	if (!u) {
		u = calloc(1, sizeof(*u));
		TEST_ASSERT(u, "calloc: expected memory, got none");
		u->vm = vm;
		u->next = rmpt_ucall_vms;
		rmpt_ucall_vms = u;
	}
	u->area_hva = area_hva;
	u->nr_vcpus = nr_vcpus;
}

/* Point the #VC gate at our stub; keep the framework's selector and type. */
static void rmpt_install_vc_entry(struct kvm_vm *vm)
{
	struct idt_entry *idt = addr_gva2hva(vm, vm->arch.idt);
	struct idt_entry *e = &idt[RMPT_VC_VECTOR];
	u64 addr = (u64)rmpt_snp_vc_entry;

	TEST_ASSERT(e->p, "IDT vector %d: expected a present gate, got none",
		    RMPT_VC_VECTOR);
	e->offset0 = addr;
	e->offset1 = addr >> 16;
	e->offset2 = addr >> 32;
}

/*
 * Host, before launch: allocate the shared per-vCPU pages at
 * RMPT_GHCB_AREA_GVA, tell the guest where they are, install the #VC entry.
 */
void rmpt_snp_ucall_init(struct kvm_vm *vm, u32 nr_vcpus)
{
	u64 npages = (u64)nr_vcpus * RMPT_GHCB_AREA_PAGES_PER_VCPU;
	u64 gva = RMPT_GHCB_AREA_GVA, gpa, i;
	u8 *hva;

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
	hva = addr_gpa2hva(vm, gpa);
	memset(hva, 0, npages * vm->page_size);

	rmpt_ghcb_area_gva = gva;
	rmpt_ghcb_area_gpa = gpa;
	rmpt_ghcb_area_vcpus = nr_vcpus;
	sync_global_to_guest(vm, rmpt_ghcb_area_gva);
	sync_global_to_guest(vm, rmpt_ghcb_area_gpa);
	sync_global_to_guest(vm, rmpt_ghcb_area_vcpus);

	rmpt_install_vc_entry(vm);
	rmpt_ucall_vm_remember(vm, hva, nr_vcpus);
}

/* Host: the mailbox of @vcpu; asserts rmpt_snp_ucall_init() covered it. */
const struct rmpt_snp_mailbox *rmpt_snp_mailbox(struct kvm_vcpu *vcpu)
{
	struct rmpt_snp_ucall_vm *u;

	for (u = rmpt_ucall_vms; u && u->vm != vcpu->vm; u = u->next)
		;
	TEST_ASSERT(u, "SNP ucall: expected rmpt_snp_ucall_init() for this VM, got none");
	TEST_ASSERT(vcpu->id < u->nr_vcpus,
		    "SNP ucall: expected vCPU id below %u, got %u", u->nr_vcpus, vcpu->id);
	return (void *)(u->area_hva + vcpu->id * RMPT_AREA_STRIDE + PAGE_SIZE);
}

/*
 * Host: the SNP counterpart of get_ucall().  Like it, it completes the
 * pending "in" so that the next KVM_RUN resumes the guest after it.
 */
u64 rmpt_snp_get_ucall(struct kvm_vcpu *vcpu, struct ucall *uc)
{
	const struct rmpt_snp_mailbox *mbox;
	struct ucall local;
	u64 hva;

	if (!uc)
		uc = &local;
	memset(uc, 0, sizeof(*uc));
	if (vcpu->run->exit_reason != KVM_EXIT_IO ||
	    vcpu->run->io.port != RMPT_UCALL_PIO_PORT)
		return UCALL_NONE;

	mbox = rmpt_snp_mailbox(vcpu);
	TEST_ASSERT(READ_ONCE(mbox->magic) == RMPT_SNP_MAILBOX_MAGIC,
		    "vCPU %u mailbox: expected magic 0x%llx, got 0x%lx (no rmpt_snp_guest_ghcb_init()?)",
		    vcpu->id, RMPT_SNP_MAILBOX_MAGIC, mbox->magic);
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
