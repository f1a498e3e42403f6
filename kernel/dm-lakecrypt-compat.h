/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Differences between the kernel lines dm-lakecrypt builds against
 * (Debian 12: 6.1; bookworm-backports: 6.12).  Everything version-specific
 * lives here.
 */
#ifndef DM_LAKECRYPT_COMPAT_H
#define DM_LAKECRYPT_COMPAT_H

/* 6.12 moved the unaligned access helpers from asm/ to linux/. */
#ifdef LC_HAVE_LINUX_UNALIGNED_H	/* set by Kbuild */
#include <linux/unaligned.h>
#else
#include <asm/unaligned.h>
#endif

#endif /* DM_LAKECRYPT_COMPAT_H */
