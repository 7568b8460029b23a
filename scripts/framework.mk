# SPDX-License-Identifier: GPL-2.0-only
#
# Read after a kernel tree's tools/testing/selftests/kvm/Makefile, so that
# the tree's own rules build its framework (kvm_util, ucall, processor, sev
# ...) out of tree into $(OUTPUT), whatever its layout (6.12 x86_64/ or
# mainline x86/).  Then write what our own objects need to link against it
# to $(SNP_FW_VARS), with the tree's relative include paths made absolute.

snp_fw_arch := $(or $(ARCH_DIR),$(ARCH))
snp_fw_cflags = $(patsubst -Iinclude%,-I$(CURDIR)/include%, \
		$(patsubst -I..,-I$(CURDIR)/.., \
		$(subst -I ../rseq,-I$(CURDIR)/../rseq, \
		$(filter-out -I$(OUTPUT)/lib,$(CFLAGS)))))

.PHONY: snp-framework
snp-framework: $(LIBKVM_OBJS)
	@printf '%s\n' \
		'# Generated from $(CURDIR)/Makefile by scripts/framework.mk' \
		'FW_ARCH_DIR := $(snp_fw_arch)' \
		'FW_DIR := $(CURDIR)' \
		'FW_OBJS := $(strip $(LIBKVM_OBJS))' \
		'FW_CFLAGS := $(strip $(snp_fw_cflags))' \
		'FW_LDFLAGS := $(strip $(LDFLAGS))' \
		'FW_LDLIBS := $(strip $(LDLIBS))' >$(SNP_FW_VARS).tmp
	@cmp -s $(SNP_FW_VARS).tmp $(SNP_FW_VARS) && rm -f $(SNP_FW_VARS).tmp || \
		mv -f $(SNP_FW_VARS).tmp $(SNP_FW_VARS)
