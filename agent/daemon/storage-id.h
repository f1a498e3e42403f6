/* SPDX-License-Identifier: GPL-2.0 */
/*
 * lakecrypt-agent: the storage identity of a device or file, so that an
 * offline writer (format --force, cache --force, re-key, migrate,
 * rekey-segment) is refused on the storage of an open volume whatever the
 * path it is given: a second path, a hard link, a symbolic link,
 * /dev/loopN or its backing file, /dev/mapper/X or /dev/dm-N, a partition
 * of the disk in use or the disk of a partition in use.  Paths lie; the
 * identity is what stat(2) and the kernel say:
 *
 *   - a block device: its st_rdev; what it lies on, from sysfs
 *     (/sys/dev/block/M:m, Documentation/ABI/stable/sysfs-block): the
 *     whole disk of a partition ("partition" attribute, parent directory),
 *     the devices of a device-mapper or md device ("slaves"; not those
 *     of a lakecrypt mapping, written through which nothing under it is
 *     overwritten but that volume's data), and for a
 *     loop device its backing file as (lo_device, lo_inode) from
 *     LOOP_GET_STATUS64 (linux/loop.h), never the backing_file path;
 *   - a regular file: its (st_dev, st_ino).
 *
 * The agent records the identity of a volume's data device and detached
 * header when its open starts (uuid-claim.c: known while the open is in
 * progress, kept in the volume's slot once open), and compares a writer's
 * targets with every one of them.  Where the kernel has its own answer it
 * is asked too (agent_sid_kernel_busy()): a block device held by
 * device-mapper, md or a mount cannot be opened with O_EXCL (EBUSY), as
 * cryptsetup relies on; its holders are listed in sysfs.
 */
#ifndef LC_AGENT_STORAGE_ID_H
#define LC_AGENT_STORAGE_ID_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* One node: a block device (rdev) or a regular file (dev, ino). */
struct agent_sid_node {
	bool blk;
	dev_t rdev;		/* blk */
	dev_t dev;		/* file */
	ino_t ino;		/* file */
};

/* What a device lies on, at most this many nodes (deeper stacks are cut:
 * see agent_sid.cut). */
#define AGENT_SID_LOW	32
/* Stacks of devices are followed this deep (dm over dm over a partition
 * of a loop device is 4; a thin LV over a cached, raided PV some 8). */
#define AGENT_SID_DEPTH	16

struct agent_sid {
	bool set;			/* false: nothing there (no such path, or another kind) */
	/* More lay below than AGENT_SID_LOW nodes or AGENT_SID_DEPTH
	 * levels: what it lies on is not all known, so it is never judged
	 * apart from anything, and writers refuse it (uuid-claim.c). */
	bool cut;
	struct agent_sid_node self;
	unsigned int nlow;
	struct agent_sid_node low[AGENT_SID_LOW];	/* what it lies on, transitively */
};

/* How two identities overlap (agent_sid_overlap()). */
enum agent_sid_rel {
	AGENT_SID_APART = 0,	/* no storage in common that the agent can see */
	AGENT_SID_SAME,		/* the same device or file */
	AGENT_SID_ON,		/* the first lies on the second (a partition of it, a loop over it) */
	AGENT_SID_UNDER,	/* the second lies on the first */
	AGENT_SID_SHARED,	/* both lie on one file (two loop devices over it) */
	AGENT_SID_UNKNOWN,	/* nothing in common seen, but one of them is cut */
};

/* The sysfs root, "/sys"; tests point it at a tree of their own. */
extern const char *agent_sysfs_root;

/*
 * The identity of @path (following symbolic links, as a writer's open
 * does) into @id.  0; -ENOENT (and @id unset) when there is nothing at
 * @path or it is neither a block device nor a regular file: a writer
 * then finds nothing to destroy there.  Reads sysfs and, for a loop
 * device, opens it read-only without O_EXCL for LOOP_GET_STATUS64: call
 * without a->lock.  Bounded: AGENT_SID_DEPTH levels, AGENT_SID_LOW nodes.
 */
int agent_sid_of(const char *path, struct agent_sid *id);

/* The identity of block device @rdev (what the kernel's table of a mapped
 * volume names: lc_volume.devno), as agent_sid_of(). */
void agent_sid_of_rdev(dev_t rdev, struct agent_sid *id);

/* How @a and @b overlap; APART when either is unset, UNKNOWN instead of
 * APART when either is cut (a stack too deep to follow).  A file under both
 * counts even when two loop devices map disjoint parts of it
 * (conservative: a writer is refused, never a volume destroyed). */
enum agent_sid_rel agent_sid_overlap(const struct agent_sid *a, const struct agent_sid *b);

/* "is the same storage as", "lies on", ... for messages: "X <text> Y". */
const char *agent_sid_rel_text(enum agent_sid_rel r);

/*
 * The kernel's answer for writer target @t (at @path): 1 and a sentence
 * into @why (@size bytes) when the storage is in use -- a block device
 * @t itself that has holders (device-mapper, md: their /dev/mapper names
 * given) or cannot be opened with O_EXCL (EBUSY: mapped, mounted or held);
 * any other loop device over the same file (the file @t, or the backing
 * file of loop device @t) that has holders or is busy -- else 0.  Opens
 * block devices read-only and closes them at once (no udev event);
 * without a->lock.  @mapper (may be NULL): the first holder's
 * device-mapper name, "" if none, AGENT_SID_NAME_MAX bytes.
 */
#define AGENT_SID_NAME_MAX	128
int agent_sid_kernel_busy(const struct agent_sid *t, const char *path, char *why, size_t size,
			  char mapper[AGENT_SID_NAME_MAX]);

#endif /* LC_AGENT_STORAGE_ID_H */
