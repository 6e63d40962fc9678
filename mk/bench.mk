# make bench — streamroot side by side with dracut's livenet on the same
# kernel, images and peers (issue 7). Figures, not pass/fail: the report is
# $(BENCH_DIR)/report.md (docs/benchmarks.md keeps a run). Needs root, like
# qemu-test. See bench/main_test.go for the knobs.
#
#   make bench                        everything (about 26 minutes on 2 cores)
#   make bench BENCH_ONLY=boot,storm  some sections: sizes floor compress boot noping huge chains leases trace vm4 storm
#   make bench BENCH_ONLY=trace       the long sections (chains: BENCH_TIMEOUT=150m) run only when named
#   make bench-micro                  only the go test -bench micro-benchmarks

BENCH_DIR      ?= $(BUILD)/bench
BENCH_TIMEOUT  ?= 40m
BENCH_RUNS     ?= 3
BENCH_RTTS     ?= 0,50,100
BENCH_ONLY     ?=
BENCH_STORM    ?= 50,200
# Boots per -compress setting in the compress section (8 settings).
BENCH_COMPRESS_RUNS ?= 2
BENCH_MICRO_RTTS ?= 0,50
# 1: build the Debian networkd root for the lease figures if the cache lacks
# it (debootstrap, about a minute); 0: skip that section instead.
BENCH_DEBIAN   ?= 1
# The NIC drivers of streamroot's default initramfs (builder/flags.go, DefaultNICs), given
# to dracut too; dracut's kernel-network-modules adds every other Ethernet
# driver on top, so "ours, dracut's NIC set" is built for an equal-coverage
# size comparison.
BENCH_NICS     ?= virtio_net,e1000,e1000e,igb,igc,ixgbe,i40e,ice,bnxt_en,tg3,r8169,mlx5_core,vmxnet3,be2net,qede,atlantic
# network-legacy (dhclient) is dracut's non-systemd network stack: with
# Debian's systemd installed dracut would pick systemd-networkd, whose dracut
# 059 module never runs livenet's netroot hook (the boot waits forever).
# virtio_pci is what our builder adds by default (-modules); dracut's qemu
# module would add it, but only when dracut itself runs in a VM.
DRACUT_MODULES ?= livenet network-legacy network base
DRACUT_IMG     ?= $(BENCH_DIR)/dracut.img

comma := ,

.PHONY: bench bench-deps bench-images bench-micro

bench-deps: test-deps
	@if ! command -v dracut >/dev/null || ! dpkg-query -W -f='$${Status}' dracut-live 2>/dev/null | grep -q 'install ok installed'; then \
		echo "bench: installing dracut-core dracut-network dracut-live (replaces initramfs-tools)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dracut-core dracut-network dracut-live; \
	fi
	@command -v curl >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl

# dracut 059 for the same kernel: --kmoddir points it at build/kernel's
# modules, --no-hostonly makes a generic image like a PXE server's.
$(DRACUT_IMG): $(KERNEL_DIR)/kver mk/bench.mk
	@mkdir -p $(BENCH_DIR)
	dracut --force --no-hostonly --no-hostonly-cmdline --no-early-microcode \
		-m "$(DRACUT_MODULES)" --kver $(KVER) --kmoddir $(abspath $(MODULES_DIR)) \
		--add-drivers "virtio_pci $(subst $(comma), ,$(BENCH_NICS))" $@ > $(BENCH_DIR)/dracut-build.log 2>&1 \
		|| { tail -20 $(BENCH_DIR)/dracut-build.log; exit 1; }
	@echo "dracut: $@ $$(stat -c %s $@) bytes"

bench-images: bench-deps kernel initramfs $(DRACUT_IMG)
	@mkdir -p $(BENCH_DIR)
	$(MAKE) --no-print-directory initramfs SHELL=none INITRAMFS=$(BENCH_DIR)/initramfs-noshell.img
	$(MAKE) --no-print-directory initramfs NIC=virtio_net INITRAMFS=$(BENCH_DIR)/initramfs-virtio.img
	$(MAKE) --no-print-directory initramfs INITRAMFS=$(BENCH_DIR)/initramfs-dracutnics.img \
		NIC=$$(lsinitrd $(DRACUT_IMG) | grep -o 'kernel/drivers/net/[^ ]*\.ko' | xargs -n1 basename | sed 's/\.ko$$//' | sort -u | paste -sd, -)

bench: bench-images
	@rm -rf $(BENCH_DIR)/*.jsonl $(BENCH_DIR)/report-*.md $(BENCH_DIR)/artifacts
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory bench-micro || exit 1; \
	$(GO) test -c -o $(BENCH_DIR)/bench.test ./bench || exit 1; \
	cd bench && STREAMROOT_BENCH=1 \
		STREAMROOT_KERNEL=$(abspath $(KERNEL_DIR)/vmlinuz) STREAMROOT_INITRAMFS=$(abspath $(INITRAMFS)) \
		STREAMROOT_BENCH_DRACUT=$(abspath $(DRACUT_IMG)) STREAMROOT_BENCH_OUT=$(abspath $(BENCH_DIR)) \
		STREAMROOT_BENCH_RUNS=$(BENCH_RUNS) STREAMROOT_BENCH_RTTS=$(BENCH_RTTS) STREAMROOT_BENCH_ONLY=$(BENCH_ONLY) \
		STREAMROOT_BENCH_STORM=$(BENCH_STORM) STREAMROOT_BENCH_DEBIAN=$(BENCH_DEBIAN) STREAMROOT_BENCH_COMPRESS_RUNS=$(BENCH_COMPRESS_RUNS) \
		STREAMROOT_ARTIFACTS=$(abspath $(BENCH_DIR))/artifacts STREAMROOT_KEEP_ARTIFACTS=1 \
		STREAMROOT_BENCH_VARIANTS="streamroot SHELL=none=$(abspath $(BENCH_DIR)/initramfs-noshell.img),streamroot NIC=virtio_net=$(abspath $(BENCH_DIR)/initramfs-virtio.img),streamroot with dracut's NIC set=$(abspath $(BENCH_DIR)/initramfs-dracutnics.img)" \
		$(abspath $(BENCH_DIR))/bench.test -test.run '^(TestSizes|TestFloor|TestCompress|TestBoot|TestNoPing|TestHuge|TestChains|TestLeases|TestTrace|TestVM4|TestStorm)$$' \
		-test.timeout $(BENCH_TIMEOUT) 2>&1 | tee $(abspath $(BENCH_DIR))/bench.log; \
	status=$${PIPESTATUS[0]}; cd ..; \
	elapsed=$$(( $$(date +%s) - start )); \
	{ echo "## make bench, $$(date -u '+%Y-%m-%d %H:%M UTC')"; echo; \
	  echo "- command: \`make bench\` ($$((elapsed / 60)) min $$((elapsed % 60)) s, exit status $$status)"; \
	  echo "- machine:$$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), nproc $$(nproc), $$(free -g | awk '/^Mem:/ {print $$2}') GiB RAM; guests: $$(qemu-system-x86_64 --version | head -1), -accel tcg -cpu max, 1 vCPU"; \
	  echo "- kernel $(KVER); dracut $$(dracut --version 2>/dev/null | awk '{print $$2}') -m \"$(DRACUT_MODULES)\"; nginx $$(nginx -v 2>&1 | cut -d/ -f2)"; echo; \
	  for s in sizes floor compress boot noping huge chains leases trace vm4 storm micro; do [ -f $(BENCH_DIR)/report-$$s.md ] && { cat $(BENCH_DIR)/report-$$s.md; echo; }; done; \
	} > $(BENCH_DIR)/report.md; \
	echo; echo "bench: report in $(BENCH_DIR)/report.md ($$((elapsed / 60)) min $$((elapsed % 60)) s)"; \
	exit $$status

# go test -bench for pkg/httpsrc (full fetch vs curl) and pkg/chunkcache (demand
# reads, fill), one iteration per cell: each cell moves the whole image.
bench-micro:
	@mkdir -p $(BENCH_DIR)
	@set -o pipefail; { echo '### Micro-benchmarks (go test -bench, loopback, 64 MiB image)'; echo; echo '```'; \
	  STREAMROOT_BENCH_RTTS=$(BENCH_MICRO_RTTS) $(GO) test -p 1 ./pkg/httpsrc ./pkg/chunkcache -count=1 -run '^$$' -bench . -benchtime 1x -timeout 20m | grep -E '^(Benchmark|ok|FAIL|---)' ; \
	  echo '```'; } | tee $(BENCH_DIR)/report-micro.md
