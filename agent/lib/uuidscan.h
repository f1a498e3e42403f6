/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Which block devices carry a lakecrypt volume uuid (issue 11, by-uuid
 * squatting).
 *
 * /dev/disk/by-uuid/<uuid> (udev/61-lakecrypt.rules.in) names whichever
 * device udev saw last with that uuid in its header, and a header is
 * copied with dd: a copy of a volume's header on another disk (a USB stick,
 * a hostile tenant's LVM volume inside its own lakecrypt mapping) takes
 * the link, as it does for LUKS.  The header's MAC and the KMS only say
 * the copy is a genuine header of the volume, not that it is the disk the
 * admin meant: the copy's DEKs are the volume's, so the agent would map
 * the copy's (attacker's) data under the volume's name.  So an open BY
 * UUID (lakecrypttab UUID=, a /dev/disk/by-uuid/ or /dev/disk/by-lakecrypt/
 * path) or through any other symbolic link (by-partuuid, by-label,
 * by-id/lvm-pv-uuid-*... are named by disk contents too) is refused where
 * more than one block device carries the uuid.
 *
 * A device carries @uuid when:
 *  - udev's database (/run/udev/data/b<major>:<minor>) has it: the
 *    properties lakecrypt-probe set, ID_FS_TYPE=lakecrypt,
 *    ID_FS_UUID=<uuid>, LAKECRYPT_DETACHED other than 1 (udev's view is
 *    what made the link, and nothing is read from the disk); or
 *  - udev has no record of the device (no udev running): its header is
 *    read as lakecrypt-probe reads it (lc_header_identify_io(), at most
 *    LC_UUIDSCAN_BUDGET bytes of DEK tables plus LC_HDR_IDENTIFY_FIXED_MAX
 *    per device, never past the two header areas).
 * Skipped: devices of size 0, sr*, fd*, and device-mapper devices whose
 * DM uuid starts with "LAKECRYPT-" (the agent's own mappings: plaintext,
 * which the rules give no link either).  A device one of whose holders
 * (/sys/class/block/X/holders: device-mapper multipath, linear) also
 * carries the uuid is counted through that holder, so a stack over one
 * disk counts once.  At most LC_UUIDSCAN_MAX_DEVICES entries are looked at;
 * more is an error (the answer would be a guess).
 *
 * Reading a disk can stall (a dead path without a timeout): the caller
 * runs the scan without the agent's lock, so a stall holds this open only.
 */
#ifndef LC_UUIDSCAN_H
#define LC_UUIDSCAN_H

#include <stddef.h>
#include <sys/stat.h>

#include "lc-error.h"

#define LC_UUIDSCAN_MAX_DEVICES	4096
#define LC_UUIDSCAN_BUDGET	(8ull << 20)	/* as lakecrypt-probe's LC_PROBE_BUDGET */
#define LC_UUIDSCAN_UDEV_MAX	(64u << 10)	/* bytes of one udev database file read */

/* Where the system's block devices are; NULL members (or a NULL struct):
 * "/sys/class/block", "/run/udev/data", "/dev".  Tests point them at a
 * tree of their own (fake sysfs entries, udev records, image files). */
struct lc_blk_roots {
	const char *sys_block;
	const char *udev_data;
	const char *dev;
};

/*
 * The devices other than @self that carry volume @uuid (lower- or
 * upper-case 8-4-4-4-12), as rules above: their /dev paths (under
 * roots->dev) joined with ", " into @list (@size bytes, truncated with
 * "..."), their number returned (0: @self is the only one).  @self is the
 * device opened (fstat of its descriptor): a block device is matched by
 * st_rdev, a regular file (tests) by st_dev/st_ino of the node under
 * roots->dev.  A holder chain over @self counts as @self.
 * -errno with @err (LC_ERRC_INTERNAL) when sysfs cannot be read or holds
 * more than LC_UUIDSCAN_MAX_DEVICES entries.  A device that cannot be
 * opened or read is not counted (udev could not probe it either).
 */
int lc_uuid_carriers(const struct lc_blk_roots *roots, const char *uuid, const struct stat *self,
		     char *list, size_t size, struct lc_error *err);

/*
 * 0 if no device but @self (opened as @path, the name shown) carries
 * @uuid; -ENOTUNIQ (LC_ERRC_INVALID: no role would be allowed it) naming
 * every device and what to do otherwise;
 * errors of lc_uuid_carriers().  @how says how the device was named
 * ("UUID= of /etc/lakecrypt/lakecrypttab line 3", "the path"); a @how
 * that starts with '/' is a file's line ("/etc/lakecrypt/lakecrypttab
 * line 3", whose UUID= asked for the uuid): the advice is to change it.
 */
int lc_uuid_unique(const struct lc_blk_roots *roots, const char *uuid, const char *path,
		   const struct stat *self, const char *how, struct lc_error *err);

#endif
