/* SPDX-License-Identifier: GPL-2.0 */
/*
 * An offline operation's exclusive hold on a volume given as a *regular
 * file*: the block-device path of a volume is opened O_EXCL (the kernel
 * refuses it while it is mapped, mounted or held), but the file behind a
 * loop device can be opened any number of times, so naming the backing
 * file of a mapped loop device would rewrite data under a live mapping.
 *
 * lc_backing_claim() takes, for the duration of the operation:
 *   - flock(LOCK_EX | LOCK_NB) on the file (another lakecrypt operation on
 *     the same file is refused);
 *   - for every loop device whose backing file is this one (same st_dev
 *     and st_ino, from LOOP_GET_STATUS64 of /dev/loopN for each bound
 *     /sys/block/loopN, linux/loop.h), an O_EXCL open of /dev/loopN: it
 *     fails with EBUSY while the loop device is mapped (device-mapper),
 *     mounted or held by another exclusive opener, and while it is kept
 *     nobody can map or mount it.
 * A block device or a file no loop device backs costs the flock only.
 */
#ifndef LC_BACKING_H
#define LC_BACKING_H

#include "lc-error.h"

#define LC_BACKING_MAX_LOOPS	16

struct lc_backing_claim {
	int loop_fds[LC_BACKING_MAX_LOOPS];
	unsigned int nloops;
};

/* Claim open file @fd (named @path in errors).  0, or -EBUSY (INVALID)
 * naming the loop device in use or the lock holder, -EMLINK when more
 * than LC_BACKING_MAX_LOOPS loop devices back the file, -errno for
 * fstat.  On error nothing is held.  @sysfs / @devdir: NULL for
 * "/sys/block" and "/dev" (tests may point elsewhere). */
int lc_backing_claim(int fd, const char *path, const char *sysfs, const char *devdir,
		     struct lc_backing_claim *c, struct lc_error *err);

/* Let go of the loop devices (the flock goes with the file's fd). */
void lc_backing_release(struct lc_backing_claim *c);

#endif /* LC_BACKING_H */
