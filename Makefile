# SPDX-License-Identifier: GPL-2.0-only
#
# snp-rmp selftests, built out of tree against the kvm selftests framework
# of a kernel source tree.  `make help` lists the targets and variables.

KSRC_FLAVOR ?= lts
# One build folder per tree, so that both flavours can be built side by side.
O ?= build$(if $(filter mainline,$(KSRC_FLAVOR)),/mainline)
BUILD := $(abspath $(O))

TEST_PROGS := $(patsubst kvm/x86_64/%.c,%,$(wildcard kvm/x86_64/*.c))
LIB_SRCS := $(wildcard kvm/lib/*.c)
UNIT_SRCS := $(wildcard tests/unit/*.c)

PROGS := $(addprefix $(BUILD)/x86_64/,$(TEST_PROGS))
LIB_OBJS := $(patsubst kvm/%.c,$(BUILD)/%.o,$(LIB_SRCS))
UNIT_PROGS := $(patsubst %.c,$(BUILD)/%,$(UNIT_SRCS))

.DEFAULT_GOAL := all
# Keep our objects between builds: pattern rules would treat them as intermediate.
.SECONDARY:
.PHONY: all run check unit bench clean deps help vmtest lab-kernel FORCE

# Goals that need no kernel tree; every other goal provisions or checks one.
NO_TREE_GOALS := clean deps help intree uninstall-intree
ifneq ($(filter-out $(NO_TREE_GOALS),$(or $(MAKECMDGOALS),all)),)

ifeq ($(KSRC),)
KSRC := $(shell scripts/ksrc.sh $(KSRC_FLAVOR))
ifeq ($(KSRC),)
$(error no kernel tree: see the ksrc: lines above, or set KSRC=/path/to/linux)
endif
endif
override KSRC := $(abspath $(KSRC))
KVM_DIR := $(KSRC)/tools/testing/selftests/kvm
ifeq ($(wildcard $(KVM_DIR)/lib/kvm_util.c),)
$(error KSRC=$(KSRC) has no tools/testing/selftests/kvm framework (a 6.12 or newer tree is needed))
endif

# One build folder serves one tree: objects of two trees must not mix.
BUILT_FOR := $(shell cat $(BUILD)/.ksrc 2>/dev/null)
ifneq ($(BUILT_FOR),)
ifneq ($(BUILT_FOR),$(KSRC))
$(error $(O) was built against $(BUILT_FOR), not $(KSRC): run 'make clean' or pick another O=)
endif
endif
$(shell mkdir -p $(BUILD) && echo $(KSRC) >$(BUILD)/.ksrc)

# uapi headers: generated into the build folder, so KSRC is never written.
# A tree configured in place refuses O=, so use the headers it already has.
ifneq ($(wildcard $(KSRC)/.config $(KSRC)/include/config),)
HDR_DIR := $(KSRC)/usr/include
HDR_STAMP := $(HDR_DIR)/linux/kvm.h
$(HDR_STAMP):
	$(error KSRC=$(KSRC) is configured in place and has no usr/include: run 'make headers' in it)
else
HDR_DIR := $(BUILD)/kbuild/usr/include
HDR_STAMP := $(HDR_DIR)/linux/kvm.h
$(HDR_STAMP):
	@echo "  HEADERS $(KSRC) -> $(HDR_DIR)"
	$(Q)$(MAKE) -s -C $(KSRC) O=$(BUILD)/kbuild ARCH=x86 headers
endif

# The framework's objects, built by the tree's own Makefile; FW_* come from it.
# TMPOUT moves its compiler probes' scratch files out of KSRC.
FW_VARS := $(BUILD)/framework.vars
$(FW_VARS): $(HDR_STAMP) FORCE
	$(Q)$(MAKE) -s -C $(KVM_DIR) -f Makefile -f $(CURDIR)/scripts/framework.mk \
		OUTPUT=$(BUILD)/framework \
		'TMPOUT=$(BUILD)/framework/.tmp_$$$$$$$$' \
		KHDR_INCLUDES="-isystem $(HDR_DIR)" \
		SNP_FW_VARS=$@ snp-framework
include $(FW_VARS)

endif # tree goals

Q := $(if $(V),,@)
SNP_CFLAGS = $(FW_CFLAGS) -I$(CURDIR)/kvm/include -Wall -Werror
SNP_LDLIBS = -lnuma $(FW_LDLIBS)

all: $(PROGS)

$(BUILD)/lib/%.o: kvm/lib/%.c $(FW_VARS)
	@mkdir -p $(@D)
	@echo "  CC      $<"
	$(Q)$(CC) $(SNP_CFLAGS) -c $< -o $@

$(BUILD)/x86_64/%: kvm/x86_64/%.c $(LIB_OBJS) $(FW_VARS)
	@mkdir -p $(@D)
	@echo "  CCLD    $<"
	$(Q)$(CC) $(SNP_CFLAGS) $(FW_LDFLAGS) $< $(LIB_OBJS) $(FW_OBJS) $(SNP_LDLIBS) -o $@

$(BUILD)/tests/unit/%: tests/unit/%.c $(LIB_OBJS) $(FW_VARS)
	@mkdir -p $(@D)
	@echo "  CCLD    $<"
	$(Q)$(CC) $(SNP_CFLAGS) $(FW_LDFLAGS) $< $(LIB_OBJS) $(FW_OBJS) $(SNP_LDLIBS) -o $@

-include $(shell find $(BUILD)/lib $(BUILD)/x86_64 $(BUILD)/tests -name '*.d' 2>/dev/null)

unit: $(UNIT_PROGS)

run: all
	./run_tests.sh -b $(BUILD) $(RUN_ARGS)

check: all unit
	BUILD=$(BUILD) KSRC=$(KSRC) tests/run.sh

bench: all
	$(MAKE) -C bench O=$(BUILD) KSRC=$(KSRC)

deps:
	scripts/install-deps.sh

# The lab: a kernel of the tree's own (or KERNEL=, a bzImage of yours),
# booted under virtme-ng with the suite run inside.
LAB_KERNEL = $(BUILD)/lab/kernel/obj/arch/x86/boot/bzImage
lab-kernel:
	lab/kernel.sh $(KSRC) $(BUILD)/lab/kernel >/dev/null

vmtest: all $(if $(KERNEL),,lab-kernel)
	lab/vmtest.sh -b $(BUILD) $(VMTEST_OPTS) $(or $(KERNEL),$(LAB_KERNEL)) $(VMTEST_ARGS)

# Into a kernel tree of your own (KSRC=, required), so that the tree's
# `make -C tools/testing/selftests TARGETS=kvm` builds the suite.
.PHONY: intree uninstall-intree
intree:
	scripts/intree.sh install "$(KSRC)"

uninstall-intree:
	scripts/intree.sh uninstall "$(KSRC)"

clean:
	rm -rf $(BUILD)

help:
	@echo 'Targets:'
	@echo '  all     build every test program into $$(O)/x86_64 (default)'
	@echo '  run     build, then run the suite through run_tests.sh (RUN_ARGS=...)'
	@echo '  check   build, then run the project'"'"'s own tests'
	@echo '  bench   build bench/page_fault_bench (make -C bench run runs it)'
	@echo '  deps    install the Debian packages the build and the tests need'
	@echo '  intree  put the suite into KSRC'"'"'s tools/testing/selftests/kvm (6.12'
	@echo '          or mainline layout), for make -C tools/testing/selftests TARGETS=kvm'
	@echo '  uninstall-intree  take it out of KSRC again, leaving the tree as it was'
	@echo '  vmtest  build a lab kernel from the tree (or take KERNEL=bzImage), boot it'
	@echo '          under virtme-ng and run the suite inside (VMTEST_ARGS=...)'
	@echo '  lab-kernel  only build the lab kernel, into $$(O)/lab/kernel'
	@echo '  clean   remove $$(O)'
	@echo 'Variables:'
	@echo '  O=DIR             build folder (default: build)'
	@echo '  KSRC=DIR          kernel source tree (6.12 or newer); only intree writes to it'
	@echo '  KSRC_FLAVOR=NAME  without KSRC: lts (linux-source-6.12, default)'
	@echo '                    or mainline (newest linux-source of Debian unstable)'
	@echo '  KERNEL=bzImage    vmtest: boot this kernel instead of building one'
	@echo '  VMTEST_ARGS=...   vmtest: run_tests.sh options, e.g. -q -t snp_rmp_user_fault_test'
	@echo '  VMTEST_OPTS=...   vmtest: lab/vmtest.sh options (-T watchdog, -a cmdline)'
	@echo '  V=1               show the commands'
