# lakecrypt: customer-managed-key encryption for Linux block storage.
#
#   make             build dm-lakecrypt.ko for every kernel line we test
#                    (or only KVER=<release>)
#   make setup       install what building and testing need (root, apt)
#   make check       every test: lint, unit (plain and ASan/UBSan) and fuzz,
#                    CLI, kernel selftests and end-to-end tests in QEMU
#                    on both kernel lines
#   make check-lint / check-unit / check-kms / check-kernel / check-e2e / check-udev / check-system / check-deb   one suite
#   make deb         Debian packages (dpkg-buildpackage, dh-dkms) and lintian
#   make bench       benchmarks in the QEMU machine (figures, not tests): fio,
#                    then pgbench on raw, dm-crypt and lakecrypt
#   make demo        the narrated walk-through in the QEMU machine: PostgreSQL
#                    on lakecrypt volumes (KMS=aws: the CMK in AWS KMS, emulated)
#   make demo-kernel the same at the dmsetup level, without the agent
#   make install     install the module (running kernel), the agent, the CLI,
#                    udev rules and probe, systemd units and generator, man
#                    pages (DESTDIR, PREFIX, MODULE=kbuild|dkms|none honoured)
#   make uninstall   remove exactly what make install put there (and the
#                    directories it made); first stops the agent, refuses
#                    while volumes are open unless FORCE=1 (README)
#   make dkms-install  register the module with DKMS for the running kernel

LINES := 6.1 6.12
KVER ?=

all: module agent

# Built into BIN (default build/agent) with the install's SYSCONFDIR.
agent:
	$(MAKE) -C agent O='$(BIN)' SYSCONFDIR='$(SYSCONFDIR)'

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

check-etcd:
	tests/etcd/check.sh

check-e2e:
	tests/e2e/check.sh

check-udev:
	tests/udev/check.sh

check-system:
	tests/system/check.sh

check-sim:
	tests/sim/check.sh

check-deb:
	tests/deb/check.sh

# Debian packages lakecrypt and lakecrypt-dkms in build/deb (and lintian).
deb:
	tools/mkdeb.sh

bench:
	tools/bench.sh

demo:
	tools/demo.sh $(if $(KMS),--kms $(KMS))

demo-kernel:
	LAKECRYPT_DEMO=kernel tools/demo.sh

# ---- installation ---------------------------------------------------------
# make install [DESTDIR=...] [PREFIX=/usr/local] [MODULE=kbuild|dkms|none]
# One file list (tools/install.sh) drives install, uninstall and
# install-list.  Paths follow PREFIX; udev, systemd and man search
# /usr/local too.  MODULE=kbuild (default) installs dm-lakecrypt.ko built
# for KVER (default: the running kernel) under /lib/modules/KVER/updates;
# dkms installs the DKMS source tree (/usr/src/lakecrypt-<version>) and,
# without DESTDIR, registers it; none skips the module.
PREFIX       ?= /usr/local
SBINDIR      ?= $(PREFIX)/sbin
LIBEXECDIR   ?= $(PREFIX)/lib/lakecrypt
# udev and systemd read rules, units and generators under /usr and
# /usr/local only: with another PREFIX, their directories come from
# pkg-config (udev.pc udevdir, systemd.pc systemdsystemunitdir and
# systemdsystemgeneratordir) when it knows them; tools/install.sh warns
# about a directory they do not read (rev11a finding 6).
# PKG_CONFIG=false: the $(PREFIX)/lib/... defaults (tests).
PKG_CONFIG   ?= pkg-config
lc_pc = $(if $(filter /usr /usr/local,$(PREFIX)),,$(shell $(PKG_CONFIG) --variable=$(2) $(1) 2>/dev/null))
UDEVRULESDIR ?= $(or $(addsuffix /rules.d,$(call lc_pc,udev,udevdir)),$(PREFIX)/lib/udev/rules.d)
UNITDIR      ?= $(or $(call lc_pc,systemd,systemdsystemunitdir),$(PREFIX)/lib/systemd/system)
GENERATORDIR ?= $(or $(call lc_pc,systemd,systemdsystemgeneratordir),$(PREFIX)/lib/systemd/system-generators)
MANDIR       ?= $(PREFIX)/share/man
DOCDIR       ?= $(PREFIX)/share/doc/lakecrypt
SYSCONFDIR   ?= /etc
MODULE       ?= kbuild
DIST         ?= $(CURDIR)/build/dist
BIN          ?= $(CURDIR)/build/agent
INSTALL_KVER  = $(or $(KVER),$(shell uname -r))
# Passed to tools/install.sh explicitly (not exported: `make check` must not
# hand install paths to the tests).
INSTALL_ENV = DESTDIR='$(DESTDIR)' PREFIX='$(PREFIX)' SBINDIR='$(SBINDIR)' LIBEXECDIR='$(LIBEXECDIR)' \
	UDEVRULESDIR='$(UDEVRULESDIR)' UNITDIR='$(UNITDIR)' GENERATORDIR='$(GENERATORDIR)' \
	MANDIR='$(MANDIR)' DOCDIR='$(DOCDIR)' SYSCONFDIR='$(SYSCONFDIR)' DIST='$(DIST)' BIN='$(BIN)' \
	MODULE='$(MODULE)' KVER='$(INSTALL_KVER)' FORCE='$(FORCE)'

# A path with a space is quoted where it is a command: "..." for systemd
# (systemd.syntax(7)), '...' for udev (udev keeps a single-quoted word
# whole); tools/install.sh refuses characters neither can carry.
lc_empty :=
lc_space := $(lc_empty) $(lc_empty)
sdq = $(if $(findstring $(lc_space),$(1)),"$(1)",$(1))
udq = $(if $(findstring $(lc_space),$(1)),'\''$(1)'\'',$(1))
SUBST = sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@LIBEXECDIR@|$(LIBEXECDIR)|g' \
	    -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' -e 's|@UNITDIR@|$(UNITDIR)|g' \
	    -e 's|@AGENT_EXEC@|$(call sdq,$(SBINDIR)/lakecrypt-agent)|g' \
	    -e 's|@PROBE@|$(call udq,$(LIBEXECDIR)/lakecrypt-probe)|g' \
	    -e 's|@LAKECRYPTCTL@|$(call udq,$(SBINDIR)/lakecryptctl)|g'
MAN_PAGES = lakecrypt-agent.8 lakecryptctl.8 lakecrypttab.5
LC_VERSION = $(shell awk '/LAKECRYPT_VERSION_(MAJOR|MINOR|PATCH)/ { v = v (v ? "." : "") $$3 } END { print v }' include/uapi/linux/dm-lakecrypt.h)

# Files with the install paths written in, and the man pages (go-md2man).
dist-files:
	@$(INSTALL_ENV) tools/install.sh check
	@mkdir -p "$(DIST)/man"
	$(SUBST) agent/lakecrypt-agent.service.in >"$(DIST)/lakecrypt-agent.service"
	cp tools/systemd/lakecrypt.target "$(DIST)/lakecrypt.target"
	$(SUBST) tools/systemd/lakecrypt-generator.in >"$(DIST)/lakecrypt-generator"
	chmod 755 "$(DIST)/lakecrypt-generator"
	$(SUBST) udev/61-lakecrypt.rules.in >"$(DIST)/61-lakecrypt.rules"
	sed 's/@VERSION@/$(LC_VERSION)/' kernel/dkms.conf >"$(DIST)/dkms.conf"
	set -e; for m in $(MAN_PAGES); do \
		DOCDIR='$(DOCDIR)' SYSCONFDIR='$(SYSCONFDIR)' tools/mkman.sh Documentation/$${m%.*}.md $${m##*.} >"$(DIST)/man/$$m"; done

install: agent dist-files $(if $(filter kbuild,$(MODULE)),install-module-build)
	$(INSTALL_ENV) KO=$(CURDIR)/build/kmod/$(INSTALL_KVER)/kernel/dm-lakecrypt.ko tools/install.sh install

install-module-build:
	tools/build-module.sh $(INSTALL_KVER)

uninstall:
	$(INSTALL_ENV) tools/install.sh uninstall

install-list:
	@$(INSTALL_ENV) tools/install.sh list

dkms-install:
	tools/dkms-install.sh $(KVER)

clean:
	rm -rf build
	$(MAKE) -C agent clean
	$(MAKE) -C kernel clean KVER=$(or $(KVER),$(shell uname -r)) 2>/dev/null || true

.PHONY: all agent demo-kernel module setup check check-kernel check-lint check-unit check-kms check-e2e check-udev check-system check-sim check-deb deb bench demo install install-module-build uninstall install-list dist-files dkms-install clean
