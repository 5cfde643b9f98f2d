# SPDX-License-Identifier: Apache-2.0
# moat: an OCI runtime that runs every pod in its own KVM microVM.
#
#   make            build the host programs, the agent and the initramfs
#   make guest      build (or take from cache) the lean guest kernel
#   make check      build everything and run every test
#   make install    install under $(DESTDIR)$(PREFIX)

PREFIX ?= /usr
LIBEXECDIR ?= $(PREFIX)/libexec/moat
DATADIR ?= $(PREFIX)/share/moat
B := build
VERSION := 0.1.0

CC ?= gcc
CFLAGS ?= -O2 -g
WARN := -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers
CPPFLAGS_ALL := -std=gnu11 -D_GNU_SOURCE -Iinclude -I$(B)/gen -DMOAT_VERSION='"$(VERSION)"' \
	-DMOAT_LIBEXECDIR='"$(LIBEXECDIR)"' -DMOAT_DATADIR='"$(DATADIR)"' $(WARN)
SAN ?=
ALL_CFLAGS = $(CPPFLAGS_ALL) $(CFLAGS) $(SAN) -MMD -MP

HOST_LIBS := -lyajl -lprotobuf-c -lseccomp -lcap -lpthread
# The agent is static: it is the only program in the guest image.
AGENT_LIBS := -static -lseccomp -lcap -lyajl_s -lprotobuf-c -lpthread

PROTOS := $(wildcard proto/*.proto)
PB_C := $(patsubst proto/%.proto,$(B)/gen/%.pb-c.c,$(PROTOS))
PB_H := $(PB_C:.c=.h)

LIB_SRCS := $(wildcard src/lib/*.c src/virtio/*.c src/vsock/*.c src/p9/*.c)
LIB_OBJS := $(patsubst %.c,$(B)/obj/%.o,$(LIB_SRCS)) $(patsubst $(B)/gen/%.c,$(B)/obj/gen/%.o,$(PB_C))
CLI_OBJS := $(patsubst %.c,$(B)/obj/%.o,$(wildcard src/cli/*.c))
VSOCKD_OBJS := $(patsubst %.c,$(B)/obj/%.o,$(wildcard src/vsockd/*.c))
AGENT_OBJS := $(patsubst %.c,$(B)/obj/%.o,$(wildcard agent/*.c))
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRCS))

# containerd-shim-moat-v2: containerd's task API (proto/containerd) is
# compiled for the shim alone.
SHIM_PROTOS := $(wildcard proto/containerd/*.proto)
SHIM_PB_C := $(patsubst proto/containerd/%.proto,$(B)/gen/containerd/%.pb-c.c,$(SHIM_PROTOS))
SHIM_PB_H := $(SHIM_PB_C:.c=.h)
SHIM_OBJS := $(patsubst %.c,$(B)/obj/%.o,$(wildcard src/shim/*.c)) \
	$(patsubst $(B)/gen/%.c,$(B)/obj/gen/%.o,$(SHIM_PB_C))

PROGRAMS := $(B)/moat $(B)/moat-vsock $(B)/moat-agent $(B)/moat-vmm $(B)/containerd-shim-moat-v2
INITRAMFS := $(B)/initramfs.cpio.gz

.PHONY: probes check-vmm all guest check check-unit check-integration install clean format deps demo unit-bins unit-asan
all: $(PROGRAMS) $(INITRAMFS) probes

deps:
	./scripts/install-deps.sh

# The README's first command: a container inside a microVM.
demo: deps
	./scripts/demo.sh

$(B)/gen/%.pb-c.c $(B)/gen/%.pb-c.h: proto/%.proto
	@mkdir -p $(B)/gen
	protoc-c --c_out=$(B)/gen -Iproto $<

$(SHIM_PB_C): $(B)/gen/containerd/%.pb-c.c: proto/containerd/%.proto $(SHIM_PROTOS)
	@mkdir -p $(B)/gen/containerd
	protoc-c --c_out=$(B)/gen/containerd -Iproto/containerd $<
$(SHIM_PB_H): %.h: %.c
	@test -f $@

$(B)/obj/gen/containerd/%.o: $(B)/gen/containerd/%.c $(SHIM_PB_H)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -I$(B)/gen/containerd -Wno-error -c -o $@ $<

$(B)/obj/src/shim/%.o: src/shim/%.c $(PB_H) $(SHIM_PB_H)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -I$(B)/gen/containerd -c -o $@ $<

$(B)/containerd-shim-moat-v2: $(SHIM_OBJS) $(B)/libmoat.a
	$(CC) $(CFLAGS) $(SAN) -o $@ $(SHIM_OBJS) $(B)/libmoat.a $(HOST_LIBS) -lcrypto

$(B)/obj/gen/%.o: $(B)/gen/%.c $(PB_H)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Wno-error -c -o $@ $<

$(B)/obj/%.o: %.c $(PB_H)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(B)/libmoat.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(B)/moat: $(CLI_OBJS) $(B)/libmoat.a
	$(CC) $(CFLAGS) $(SAN) -o $@ $(CLI_OBJS) $(B)/libmoat.a $(HOST_LIBS)

$(B)/moat-vsock: $(VSOCKD_OBJS) $(B)/libmoat.a
	$(CC) $(CFLAGS) $(SAN) -o $@ $(VSOCKD_OBJS) $(B)/libmoat.a $(HOST_LIBS)

$(B)/moat-agent: $(AGENT_OBJS) $(B)/libmoat.a
	$(CC) $(CFLAGS) -o $@ $(AGENT_OBJS) $(B)/libmoat.a $(AGENT_LIBS) 2> $(B)/agent-link.log || { cat $(B)/agent-link.log; exit 1; }

$(INITRAMFS): $(B)/moat-agent scripts/mkinitramfs.sh
	./scripts/mkinitramfs.sh $(B)/moat-agent $@

# moat-vmm (src/vmm) is not in libmoat.a: its objects except main.o make
# libmoat-vmm.a, which the test_vmm_* unit tests link too.
VMM_OBJS := $(patsubst %.c,$(B)/obj/%.o,$(filter-out src/vmm/main.c,$(wildcard src/vmm/*.c)))
PROBES := $(patsubst tests/probe/%.c,$(B)/probe/%.elf,$(filter-out tests/probe/lib.c tests/probe/virtio_drv.c,$(wildcard tests/probe/*.c)))
PROBE_CFLAGS := -std=gnu11 -O2 -g -Wall -Wextra -Werror -Wno-unused-parameter -ffreestanding -fno-pic -fno-pie \
	-fno-stack-protector -mgeneral-regs-only -mno-red-zone -mno-sse -fcf-protection=none \
	-nostdlib -static -no-pie -Wl,--build-id=none -Wl,-z,noexecstack -Wl,--no-warn-rwx-segments -Wl,-T,tests/probe/probe.ld

$(B)/libmoat-vmm.a: $(VMM_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(B)/moat-vmm: $(B)/obj/src/vmm/main.o $(B)/libmoat-vmm.a $(B)/libmoat.a
	$(CC) $(CFLAGS) $(SAN) -o $@ $^ $(HOST_LIBS)

$(B)/tests/test_vmm_%: tests/unit/test_vmm_%.c $(B)/libmoat-vmm.a $(B)/libmoat.a
	@mkdir -p $(B)/tests
	$(CC) $(ALL_CFLAGS) -o $@ $< $(B)/libmoat-vmm.a $(B)/libmoat.a $(HOST_LIBS) -lcmocka

# Probe guests: freestanding 64-bit programs booted like a vmlinux.
PROBE_LIB := tests/probe/entry.S tests/probe/lib.c tests/probe/virtio_drv.c
$(B)/probe/%.elf: tests/probe/%.c $(PROBE_LIB) tests/probe/probe.h tests/probe/virtio_drv.h tests/probe/probe.ld
	@mkdir -p $(dir $@)
	$(CC) $(PROBE_CFLAGS) -o $@ $(PROBE_LIB) $<

probes: $(PROBES)

check-vmm: $(B)/moat-vmm $(PROBES) $(filter $(B)/tests/test_vmm_%,$(UNIT_BINS))
	@set -e; for t in $(filter $(B)/tests/test_vmm_%,$(UNIT_BINS)); do CMOCKA_MESSAGE_OUTPUT=TAP $$t; done
	bash tests/integration/vmm.sh

guest:
	./guest-kernel-config/build.sh $(B)/vmlinux

$(B)/tests/test_shim: tests/unit/test_shim.c $(filter $(B)/obj/gen/%,$(SHIM_OBJS)) $(B)/libmoat.a $(B)/containerd-shim-moat-v2
	@mkdir -p $(B)/tests
	$(CC) $(ALL_CFLAGS) -I$(B)/gen/containerd -o $@ $< $(filter $(B)/obj/gen/%,$(SHIM_OBJS)) $(B)/libmoat.a $(HOST_LIBS) -lcmocka

$(B)/tests/%: tests/unit/%.c $(B)/libmoat.a
	@mkdir -p $(B)/tests
	$(CC) $(ALL_CFLAGS) -o $@ $< $(B)/libmoat.a $(HOST_LIBS) -lcmocka

unit-bins: $(UNIT_BINS)

# The unit tests again under AddressSanitizer and UBSan, in their own tree.
unit-asan:
	$(MAKE) B=$(B)/asan SAN='-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined' unit-bins

check-unit: $(UNIT_BINS) unit-asan
	./tests/run.sh unit

# The README's second command. Installs what is missing first, so it works on
# a fresh machine by itself.
check: deps
	$(MAKE) all guest unit-bins unit-asan
	./tests/run.sh all

check-integration: all guest
	./tests/run.sh integration

.PHONY: check-oci
# OCI runtime-spec conformance: moat, runc and crun side by side.
check-oci: all guest
	./tests/oci/compare.sh

install: all guest
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(LIBEXECDIR) $(DESTDIR)$(DATADIR)
	install -m 0755 $(B)/moat $(DESTDIR)$(PREFIX)/bin/moat
	install -m 0755 $(B)/moat-vsock $(DESTDIR)$(LIBEXECDIR)/moat-vsock
	install -m 0755 $(B)/moat-vmm $(DESTDIR)$(LIBEXECDIR)/moat-vmm
	install -m 0644 $(INITRAMFS) $(DESTDIR)$(DATADIR)/initramfs.cpio.gz
	install -m 0644 $$(readlink -f $(B)/vmlinux) $(DESTDIR)$(DATADIR)/vmlinux

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(B)

-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)
