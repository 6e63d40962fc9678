# make demo / make qemu IMAGE=… — see docs/demo.md.
#
# Both run build/streamroot-demo (./demo): it boots the kernel and initramfs
# in QEMU with user-mode networking (no root) against `build/streamroot
# serve` on 127.0.0.1, shows the console live and ends with a summary.
#
#   make demo                         demo root: hello from PID 1, then power off
#   make qemu IMAGE=path-or-URL       boot any squashfs/erofs/ext4 image or live ISO
#        [APPEND="…"] [MODE=stream|ram|lazy] [TIMEOUT=300] [LINGER=20]
#        [MEM=2048] [ACCEL=tcg|kvm] [NET=restricted|open] [QUIET=0|1]

DEMO_BIN := $(BUILD)/streamroot-demo
DEMO_CLI := $(BUILD)/streamroot

# Without root the default cache (/var/cache/streamroot) is usually not
# writable: then demo and qemu keep the kernel .deb under ~/.cache/streamroot.
ifeq ($(origin STREAMROOT_CACHE),file)
ifneq ($(shell d='$(STREAMROOT_CACHE)'; while [ ! -e "$$d" ]; do d=$$(dirname "$$d"); done; [ -w "$$d" ] && echo ok),ok)
demo qemu: STREAMROOT_CACHE := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/streamroot
endif
endif

# Single-quotes a value for the shell.
demo_sq = '$(subst ','\'',$(1))'

DEMO_FLAGS = -kernel $(KERNEL_DIR)/vmlinuz -initramfs $(INITRAMFS) -streamroot $(DEMO_CLI) \
	$(if $(TIMEOUT),-timeout $(call demo_sq,$(TIMEOUT))) \
	$(if $(APPEND),-append $(call demo_sq,$(APPEND))) \
	$(if $(MEM),-mem $(call demo_sq,$(MEM))) \
	$(if $(ACCEL),-accel $(call demo_sq,$(ACCEL))) \
	$(if $(NET),-net $(call demo_sq,$(NET))) \
	$(if $(QUIET),-quiet=$(if $(filter 0 no false,$(QUIET)),false,true))

.PHONY: demo qemu demo-deps demo-tools qemu-image-given

# Debian packages (as root) and a Go toolchain check.
demo-deps:
	demo/deps.sh $(GO)

# The host CLI (serve) and the demo runner; go build is incremental.
demo-tools: demo-deps
	$(GO) build -o $(DEMO_CLI) ./cmds/streamroot
	$(GO) build -o $(DEMO_BIN) ./demo

demo: demo-tools kernel initramfs
	$(DEMO_BIN) demo -work $(BUILD)/demo $(DEMO_FLAGS)

qemu-image-given:
	@if [ -z $(call demo_sq,$(IMAGE)) ]; then \
		echo "usage: make qemu IMAGE=path-or-URL [APPEND=\"…\"] [MODE=stream|ram|lazy] [TIMEOUT=300] (see docs/demo.md)" >&2; exit 2; fi

qemu: qemu-image-given demo-tools kernel initramfs
	$(DEMO_BIN) qemu -work $(BUILD)/qemu $(DEMO_FLAGS) \
		$(if $(MODE),-mode $(call demo_sq,$(MODE))) \
		$(if $(LINGER),-linger $(call demo_sq,$(LINGER))) \
		-- $(call demo_sq,$(IMAGE))
