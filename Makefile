# lakecrypt: customer-managed-key encryption for Linux block storage.
#
#   make             build dm-lakecrypt.ko for every kernel line we test
#                    (or only KVER=<release>)
#   make setup       install what building and testing need (root, apt)
#   make check       every test: lint, unit (plain and ASan/UBSan) and fuzz,
#                    CLI, kernel selftests and end-to-end tests in QEMU
#                    on both kernel lines
#   make check-lint / check-unit / check-kms / check-kernel / check-e2e   one suite
#   make bench       benchmarks in the QEMU machine (figures, not tests)
#   make demo        the narrated walk-through in the QEMU machine
#   make demo-kernel the same at the dmsetup level, without the agent
#   make install     install the module (running kernel), the agent and the CLI
#   make dkms-install  register the module with DKMS for the running kernel

LINES := 6.1 6.12
KVER ?=

all: module agent

agent:
	$(MAKE) -C agent

module:
ifneq ($(KVER),)
	tools/build-module.sh $(KVER)
else
	@set -e; for l in $(LINES); do \
		k=$$(tools/qemu/kernels.sh kver $$l); tools/build-module.sh $$k; \
	done
endif

setup:
	tools/setup-deps.sh

check:
	tests/check.sh

check-kernel:
	tests/kernel/check.sh

check-lint:
	tests/lint.sh

check-unit:
	tests/unit/run.sh

check-kms:
	tests/kms/check.sh

check-e2e:
	tests/e2e/check.sh

bench:
	tools/bench.sh

demo:
	tools/demo.sh

demo-kernel:
	LAKECRYPT_DEMO=kernel tools/demo.sh

install:
	$(MAKE) -C kernel modules_install KVER=$(or $(KVER),$(shell uname -r))
	depmod -a $(or $(KVER),$(shell uname -r))
	$(MAKE) -C agent install

dkms-install:
	tools/dkms-install.sh $(KVER)

clean:
	rm -rf build
	$(MAKE) -C agent clean
	$(MAKE) -C kernel clean KVER=$(or $(KVER),$(shell uname -r)) 2>/dev/null || true

.PHONY: all agent demo-kernel module setup check check-kernel check-lint check-unit check-kms check-e2e bench demo install dkms-install clean
