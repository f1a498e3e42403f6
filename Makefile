# lakecrypt: customer-managed-key encryption for Linux block storage.
#
#   make             build dm-lakecrypt.ko for every kernel line we test
#                    (or only KVER=<release>)
#   make setup       install what building and testing need (root, apt)
#   make check       every test: lint, kernel selftests in QEMU (6.1, 6.12)
#   make check-kernel / check-lint   one suite
#   make bench       benchmarks in the QEMU machine (figures, not tests)
#   make demo        the narrated walk-through in the QEMU machine
#   make install     build and install the module for the running kernel
#   make dkms-install  register the module with DKMS for the running kernel

LINES := 6.1 6.12
KVER ?=

all: module

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

bench:
	tools/bench.sh

demo:
	tools/demo.sh

install:
	$(MAKE) -C kernel modules_install KVER=$(or $(KVER),$(shell uname -r))
	depmod -a $(or $(KVER),$(shell uname -r))

dkms-install:
	tools/dkms-install.sh $(KVER)

clean:
	rm -rf build
	$(MAKE) -C kernel clean KVER=$(or $(KVER),$(shell uname -r)) 2>/dev/null || true

.PHONY: all module setup check check-kernel check-lint bench demo install dkms-install clean
