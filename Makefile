# streamroot — see README.md. Targets: kernel initramfs test unit qemu-test lint clean.

# SHELL=none / SHELL=/path/busybox selects the initramfs's rescue shell; make
# itself must keep running recipes with bash.
ifeq ($(origin SHELL),command line)
RESCUE_SHELL := $(SHELL)
endif
override SHELL := /bin/bash
RESCUE_SHELL ?= /bin/busybox

BUILD        ?= build
KERNEL_DIR   ?= $(BUILD)/kernel
KERNEL_PKG   ?= linux-image-amd64
KVER         ?= $(shell cat $(KERNEL_DIR)/kver 2>/dev/null)
MODULES_DIR  ?= $(KERNEL_DIR)/lib/modules/$(KVER)
COMPRESS     ?= zstd
NIC          ?=
CA           ?= /etc/ssl/certs/ca-certificates.crt
EXTRA_CA     ?=
IMAGE_MANIFEST ?=
# TRUST_KEY=key.pub[,key2.pub…] bakes minisign public keys in: only images
# they sign boot (docs/trust.md); MIN_VERSION=N refuses older statements.
TRUST_KEY    ?=
MIN_VERSION  ?=
INITRAMFS    ?= $(BUILD)/initramfs.img
STREAMROOT_CACHE ?= /var/cache/streamroot
export STREAMROOT_CACHE

GO        ?= go
GOFLAGS_STATIC := -trimpath -ldflags='-s -w -buildid='
QEMU_TEST_TIMEOUT ?= 60m

.PHONY: all deps test-deps kernel init initramfs uki test unit qemu-test lint clean repro-check fuzz

all: initramfs

deps:
	builder/deps.sh build

test-deps:
	builder/deps.sh test

kernel: $(KERNEL_DIR)/kver

$(KERNEL_DIR)/kver: builder/fetch-kernel.sh | deps
	builder/fetch-kernel.sh $(KERNEL_DIR) $(KERNEL_PKG)

# The init is static (no libc in the initramfs) and reproducible (no build
# id, no paths). nethttpomithttp2 leaves out net/http's bundled HTTP/2: the
# init never speaks it (httpsrc wants one TCP stream per parallel range),
# and it is 0.36 MiB of /init, 0.13 MiB of the zstd initramfs, some 90
# TFTP round trips for a firmware that pulls the initramfs.
INIT_TAGS ?= nethttpomithttp2
init:
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_STATIC) -tags '$(INIT_TAGS)' -o $(BUILD)/init ./cmds/init

initramfs: deps init
	@if [ -n "$(IMAGE_MANIFEST)" ] && [ -n "$(IMAGE_MANIFEST_DIGEST)" ]; then echo "make initramfs: give IMAGE_MANIFEST=<file> or IMAGE_MANIFEST_DIGEST=sha256:<hex>, not both" >&2; exit 2; fi
	@if [ -n "$(IMAGE_MANIFEST)" ] && [ ! -r "$(IMAGE_MANIFEST)" ]; then echo "make initramfs: IMAGE_MANIFEST=$(IMAGE_MANIFEST): cannot read that manifest file (the image would not be pinned)" >&2; exit 1; fi
	@if [ -z "$(KVER)" ]; then $(MAKE) --no-print-directory kernel; fi
	$(GO) run ./builder/cmd/builder -init $(BUILD)/init \
		-moddir $(if $(KVER),$(MODULES_DIR),$$(echo $(KERNEL_DIR)/lib/modules/*)) \
		-compress $(COMPRESS) -shell $(RESCUE_SHELL) -ca $(CA) \
		$(if $(NIC),-nic $(NIC)) $(if $(EXTRA_CA),-extra-ca $(EXTRA_CA)) \
		$(if $(IMAGE_MANIFEST),-manifest-digest "$$(sha256sum < '$(IMAGE_MANIFEST)' | cut -d' ' -f1)") \
		$(if $(IMAGE_MANIFEST_DIGEST),-manifest-digest '$(IMAGE_MANIFEST_DIGEST)') \
		$(if $(IMAGE_URL),-image-url '$(IMAGE_URL)') \
		$(if $(TRUST_KEY),-trust-key '$(TRUST_KEY)') $(if $(MIN_VERSION),-min-version '$(MIN_VERSION)') \
		-o $(INITRAMFS)

# A unified kernel image of the kernel, the initramfs and UKI_CMDLINE on
# systemd's stub, signed when UKI_KEY and UKI_CERT are given.
UKI          ?= $(BUILD)/streamroot.efi
UKI_CMDLINE  ?=
UKI_KEY      ?=
UKI_CERT     ?=
uki: kernel initramfs
	@if [ -z "$(UKI_CMDLINE)" ]; then echo 'make uki: give UKI_CMDLINE="ip=dhcp root=live:http://SERVER/IMAGE ..." (the UKI carries the whole kernel command line)' >&2; exit 2; fi
	builder/deps.sh uki
	$(GO) run ./cmds/streamroot uki --kernel $(KERNEL_DIR)/vmlinuz --initramfs $(INITRAMFS) --cmdline '$(UKI_CMDLINE)' \
		$(if $(UKI_KEY),--key '$(UKI_KEY)') $(if $(UKI_CERT),--cert '$(UKI_CERT)') -o $(UKI)

lint:
	@test -z "$$(gofmt -l cmds pkg builder qemu-tests)" || { gofmt -l cmds pkg builder qemu-tests; echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

unit:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /qemu-tests)

# Boots the real kernel with our initramfs in QEMU against real dnsmasq and
# nginx in network namespaces (needs root).
qemu-test: test-deps kernel initramfs
	STREAMROOT_KERNEL=$(abspath $(KERNEL_DIR)/vmlinuz) STREAMROOT_INITRAMFS=$(abspath $(INITRAMFS)) \
		$(GO) test -count=1 -v -timeout $(QEMU_TEST_TIMEOUT) ./qemu-tests/... 2>&1 | tee $(BUILD)/qemu-test.log; \
		status=$${PIPESTATUS[0]}; \
		echo "qemu-tests: $$(grep -c '^--- PASS' $(BUILD)/qemu-test.log) passed, $$(grep -c '^--- FAIL' $(BUILD)/qemu-test.log) failed, $$(grep -c '^--- SKIP' $(BUILD)/qemu-test.log) skipped"; \
		exit $$status

# Each parser's fuzz target runs for FUZZTIME; a crasher is saved under the
# package's testdata/fuzz and then fails every later `go test` until fixed.
# New inputs are minimised for at most 3 s, so a short run spends its time
# exploring rather than minimising. mk/fuzz.sh runs them in FUZZ_JOBS lanes
# side by side, one fuzz worker each (and tells go1.26's fuzz-coordinator
# deadline race from a find).
FUZZTIME ?= 10s
FUZZ_JOBS ?= 2
FUZZ_TARGETS := pkg/bootcfg:FuzzParse bench/wire:FuzzParse pkg/manifest:FuzzParse pkg/boottrace:FuzzParse pkg/httpsrc:FuzzParseContentRange pkg/nbd:FuzzParseRequest pkg/netup:FuzzLeaseFrom pkg/manifest:FuzzBuild pkg/nbd:FuzzServe pkg/nbd:FuzzHandshake pkg/httpsrc:FuzzCheckRange cmds/streamroot:FuzzInspect pkg/squashfs:FuzzSquashfs pkg/isoread:FuzzOpen pkg/imgfmt:FuzzDetect pkg/textesc:FuzzEscape pkg/bootlog:FuzzConsole pkg/kmod:FuzzModuleParams pkg/netup:FuzzBondOptions pkg/netup:FuzzParseRA pkg/netup:FuzzLeaseFrom6 builder/internal/kmodtree:FuzzModinfo pkg/deb:FuzzWalk pkg/ext4:FuzzExt4 pkg/bzimage:FuzzRelease pkg/rpm:FuzzWalk pkg/uki:FuzzBuild pkg/measure:FuzzParseLog pkg/trust:FuzzParseSignature
fuzz:
	@mk/fuzz.sh $(GO) $(FUZZTIME) $(BUILD) $(FUZZ_JOBS) $(FUZZ_TARGETS)

# Two builds of the same inputs must give the same bytes.
repro-check: initramfs
	$(MAKE) --no-print-directory initramfs INITRAMFS=$(BUILD)/initramfs.repro.img >/dev/null
	cmp $(INITRAMFS) $(BUILD)/initramfs.repro.img && echo "repro-check: $$(sha256sum < $(INITRAMFS) | cut -c1-16)… identical"

test: lint kernel unit fuzz repro-check qemu-test

clean:
	rm -rf $(BUILD)

# Feature targets live in their own fragments (demo, qemu, bench, …).
-include mk/*.mk
