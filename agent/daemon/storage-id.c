// SPDX-License-Identifier: GPL-2.0
/* lakecrypt-agent: the storage identity of a device or file (storage-id.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <linux/loop.h>

#include "storage-id.h"

const char *agent_sysfs_root = "/sys";

/* A sysfs file into @buf (@size bytes, NUL-terminated, cut to fit):
 * 0 or -errno. */
static int sys_read_all(const char *path, char *buf, size_t size)
{
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -EIO;
	buf[n] = '\0';
	return 0;
}

/* A sysfs attribute (one short line) into @buf, newline cut: 0 or -errno. */
static int sys_read(const char *path, char *buf, size_t size)
{
	int r = sys_read_all(path, buf, size);

	if (!r)
		buf[strcspn(buf, "\n")] = '\0';
	return r;
}

/* "M:m" (a sysfs "dev" attribute) into @d: 0 or -EINVAL. */
static int parse_devno(const char *s, dev_t *d)
{
	unsigned int ma, mi;
	char extra;

	if (sscanf(s, "%u:%u%c", &ma, &mi, &extra) != 2)
		return -EINVAL;
	*d = makedev(ma, mi);
	return 0;
}

/* The "dev" attribute of sysfs directory @dir into @d. */
static int dir_devno(const char *dir, dev_t *d)
{
	char p[PATH_MAX], s[32];

	if (snprintf(p, sizeof(p), "%s/dev", dir) >= (int)sizeof(p) || sys_read(p, s, sizeof(s)))
		return -ENOENT;
	return parse_devno(s, d);
}

static bool node_eq(const struct agent_sid_node *a, const struct agent_sid_node *b)
{
	if (a->blk != b->blk)
		return false;
	return a->blk ? a->rdev == b->rdev : a->dev == b->dev && a->ino == b->ino;
}

static bool has_node(const struct agent_sid *id, const struct agent_sid_node *n)
{
	for (unsigned int i = 0; i < id->nlow; i++)
		if (node_eq(&id->low[i], n))
			return true;
	return false;
}

/* Add @n below @id: true when it is new (and fits). */
static bool add_node(struct agent_sid *id, const struct agent_sid_node *n)
{
	if (node_eq(&id->self, n) || has_node(id, n))
		return false;
	if (id->nlow == AGENT_SID_LOW) {
		id->cut = true;
		return false;
	}
	id->low[id->nlow++] = *n;
	return true;
}

/* lo_device is the kernel's new_encode_dev() of the backing file's st_dev
 * (drivers/block/loop.c, include/linux/kdev_t.h). */
static dev_t lo_dev(uint64_t lo_device)
{
	unsigned int ma = (unsigned int)((lo_device & 0xfff00) >> 8);
	unsigned int mi = (unsigned int)((lo_device & 0xff) | ((lo_device >> 12) & 0xfff00));

	return makedev(ma, mi);
}

/* The backing file of bound loop device @rdev (its sysfs directory
 * @base), asked of the device itself: /dev/<DEVNAME from uevent>, checked
 * to be @rdev.  0 and @n, or -errno. */
static int loop_backing(const char *base, dev_t rdev, struct agent_sid_node *n)
{
	char p[PATH_MAX], ue[512], node[PATH_MAX];
	struct loop_info64 li;
	struct stat st;
	const char *dn;
	int fd, r = 0;

	if (snprintf(p, sizeof(p), "%s/uevent", base) >= (int)sizeof(p) ||
	    sys_read_all(p, ue, sizeof(ue)) < 0)
		return -ENOENT;
	dn = strstr(ue, "DEVNAME=");
	if (!dn)
		return -ENOENT;
	dn += strlen("DEVNAME=");
	if (snprintf(node, sizeof(node), "/dev/%.*s", (int)strcspn(dn, "\n"), dn) >=
	    (int)sizeof(node) || strstr(node, ".."))
		return -EINVAL;
	fd = open(node, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return -errno;
	memset(&li, 0, sizeof(li));
	if (fstat(fd, &st) < 0 || !S_ISBLK(st.st_mode) || st.st_rdev != rdev)
		r = -ESTALE;
	else if (ioctl(fd, LOOP_GET_STATUS64, &li) < 0)
		r = -errno;
	close(fd);
	if (r < 0)
		return r;
	*n = (struct agent_sid_node){ .blk = false, .dev = lo_dev(li.lo_device),
				      .ino = (ino_t)li.lo_inode };
	return 0;
}

/* What block device @rdev lies on, added to @id, @depth levels more at most. */
static void walk(struct agent_sid *id, dev_t rdev, unsigned int depth)
{
	char base[PATH_MAX], p[PATH_MAX + 64], whole[PATH_MAX];
	struct agent_sid_node n;
	DIR *d;

	if (!depth) {
		id->cut = true;
		return;
	}
	if (snprintf(base, sizeof(base), "%s/dev/block/%u:%u", agent_sysfs_root, major(rdev),
		     minor(rdev)) >= (int)sizeof(base))
		return;
	/* A partition: the disk it is part of is its sysfs parent. */
	snprintf(p, sizeof(p), "%s/partition", base);
	if (!access(p, F_OK)) {
		snprintf(p, sizeof(p), "%s/..", base);
		if (realpath(p, whole)) {
			n = (struct agent_sid_node){ .blk = true };
			if (!dir_devno(whole, &n.rdev) && add_node(id, &n))
				walk(id, n.rdev, depth - 1);
		}
	}
	/* A loop device: the file it maps. */
	snprintf(p, sizeof(p), "%s/loop", base);
	if (!access(p, F_OK) && !loop_backing(base, rdev, &n))
		(void)add_node(id, &n);
	/* device-mapper, md: the devices it is made of -- but not below a
	 * lakecrypt mapping (dm uuid "LAKECRYPT-", dm.h): what is written
	 * through it lands, encrypted, in that volume's data area, never on
	 * its header or on anything else under it. */
	snprintf(p, sizeof(p), "%s/dm/uuid", base);
	if (!sys_read(p, whole, sizeof(whole)) && !strncmp(whole, "LAKECRYPT-", 10))
		return;
	snprintf(p, sizeof(p), "%s/slaves", base);
	d = opendir(p);
	for (struct dirent *de; d && (de = readdir(d));) {
		char sp[PATH_MAX + 320];

		if (de->d_name[0] == '.')
			continue;
		snprintf(sp, sizeof(sp), "%s/slaves/%s", base, de->d_name);
		n = (struct agent_sid_node){ .blk = true };
		if (!dir_devno(sp, &n.rdev) && add_node(id, &n))
			walk(id, n.rdev, depth - 1);
	}
	if (d)
		closedir(d);
}

void agent_sid_of_rdev(dev_t rdev, struct agent_sid *id)
{
	memset(id, 0, sizeof(*id));
	id->set = true;
	id->self = (struct agent_sid_node){ .blk = true, .rdev = rdev };
	walk(id, rdev, AGENT_SID_DEPTH);
}

int agent_sid_of(const char *path, struct agent_sid *id)
{
	struct stat st;

	memset(id, 0, sizeof(*id));
	if (!path || !path[0] || stat(path, &st) < 0)
		return -ENOENT;
	if (S_ISBLK(st.st_mode)) {
		agent_sid_of_rdev(st.st_rdev, id);
		return 0;
	}
	if (!S_ISREG(st.st_mode))
		return -ENOENT;
	id->set = true;
	id->self = (struct agent_sid_node){ .blk = false, .dev = st.st_dev, .ino = st.st_ino };
	return 0;
}

/* A file that @id is, or lies on, that @o is or lies on too. */
static bool shared_file(const struct agent_sid *id, const struct agent_sid *o)
{
	for (unsigned int i = 0; i <= id->nlow; i++) {
		const struct agent_sid_node *n = i < id->nlow ? &id->low[i] : &id->self;

		if (!n->blk && (node_eq(n, &o->self) || has_node(o, n)))
			return true;
	}
	return false;
}

enum agent_sid_rel agent_sid_overlap(const struct agent_sid *a, const struct agent_sid *b)
{
	if (!a->set || !b->set)
		return AGENT_SID_APART;
	if (node_eq(&a->self, &b->self))
		return AGENT_SID_SAME;
	if (has_node(a, &b->self))
		return AGENT_SID_ON;
	if (has_node(b, &a->self))
		return AGENT_SID_UNDER;
	if (shared_file(a, b))
		return AGENT_SID_SHARED;
	return a->cut || b->cut ? AGENT_SID_UNKNOWN : AGENT_SID_APART;
}

const char *agent_sid_rel_text(enum agent_sid_rel r)
{
	switch (r) {
	case AGENT_SID_SAME:
		return "is the same storage as";
	case AGENT_SID_ON:
		return "lies on";
	case AGENT_SID_UNDER:
		return "is the storage under";
	case AGENT_SID_SHARED:
		return "shares its backing file with";
	case AGENT_SID_UNKNOWN:
		return "cannot be told apart (a device stack too deep to check) from";
	default:
		return "has nothing in common with";
	}
}

/* The first holder of block device @rdev: 1 and its kernel name into
 * @who ("dm-3", @size bytes) and, for device-mapper, its name into
 * @mapper; 0 when it has none (or sysfs cannot tell). */
static int holder(dev_t rdev, char *who, size_t size, char mapper[AGENT_SID_NAME_MAX])
{
	char p[PATH_MAX], q[PATH_MAX + 320];
	struct dirent *de;
	DIR *d;
	int r = 0;

	snprintf(p, sizeof(p), "%s/dev/block/%u:%u/holders", agent_sysfs_root, major(rdev),
		 minor(rdev));
	d = opendir(p);
	if (!d)
		return 0;
	while (!r && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(who, size, "%s", de->d_name);
		snprintf(q, sizeof(q), "%s/%s/dm/name", p, de->d_name);
		if (sys_read(q, mapper, AGENT_SID_NAME_MAX) < 0)
			mapper[0] = '\0';
		r = 1;
	}
	closedir(d);
	return r;
}

/* Block device @node cannot be opened exclusively: true only for EBUSY
 * (another answer -- no node, no driver -- says nothing).  Read-only: its
 * close makes no udev "change" event. */
static bool excl_busy(const char *node)
{
	int fd = open(node, O_RDONLY | O_EXCL | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);

	if (fd < 0)
		return errno == EBUSY;
	close(fd);
	return false;
}

/* Block device @rdev (@node) is in use: 1 and @why. */
static int blk_busy(dev_t rdev, const char *node, const char *what, char *why, size_t size,
		    char mapper[AGENT_SID_NAME_MAX])
{
	char who[256];

	if (holder(rdev, who, sizeof(who), mapper)) {
		if (mapper[0])
			snprintf(why, size, "%s is held by %s (/dev/mapper/%s)", what, who, mapper);
		else
			snprintf(why, size, "%s is held by %s", what, who);
		return 1;
	}
	if (node && excl_busy(node)) {
		snprintf(why, size, "%s is in use (the kernel refuses it an exclusive open: mapped, mounted or held)",
			 what);
		return 1;
	}
	return 0;
}

int agent_sid_kernel_busy(const struct agent_sid *t, const char *path, char *why, size_t size,
			  char mapper[AGENT_SID_NAME_MAX])
{
	const struct agent_sid_node *file = NULL;
	char p[PATH_MAX], node[2 * PATH_MAX], what[3 * PATH_MAX], m[AGENT_SID_NAME_MAX];
	struct dirent *de;
	DIR *d;
	int r = 0;

	if (!mapper)
		mapper = m;
	mapper[0] = '\0';
	why[0] = '\0';
	if (!t->set)
		return 0;
	if (t->self.blk) {
		snprintf(what, sizeof(what), "device %s", path);
		if (blk_busy(t->self.rdev, path, what, why, size, mapper))
			return 1;
		for (unsigned int i = 0; i < t->nlow && !file; i++)
			if (!t->low[i].blk)
				file = &t->low[i];
	} else {
		file = &t->self;
	}
	if (!file)
		return 0;
	/* Every other loop device over the same file. */
	snprintf(p, sizeof(p), "%s/block", agent_sysfs_root);
	d = opendir(p);
	while (!r && d && (de = readdir(d))) {
		struct agent_sid lo;
		char base[PATH_MAX + 320];

		if (strncmp(de->d_name, "loop", 4) || !de->d_name[4])
			continue;
		snprintf(base, sizeof(base), "%s/%s", p, de->d_name);
		lo = (struct agent_sid){ .set = true, .self = { .blk = true } };
		/* Not @t itself, nor a loop device @t lies on: held by @t's
		 * own stack (a dm-linear over a loop device), not by another. */
		if (dir_devno(base, &lo.self.rdev) < 0 ||
		    (t->self.blk && lo.self.rdev == t->self.rdev) || has_node(t, &lo.self))
			continue;
		snprintf(node, sizeof(node), "%s/loop", base);
		if (access(node, F_OK))
			continue;	/* not bound */
		if (loop_backing(base, lo.self.rdev, &lo.low[0]) < 0 || !node_eq(&lo.low[0], file))
			continue;
		snprintf(node, sizeof(node), "/dev/%s", de->d_name);
		snprintf(what, sizeof(what), "%s (a loop device over %s%s)", node,
			 t->self.blk ? "the same file as " : "", path);
		r = blk_busy(lo.self.rdev, node, what, why, size, mapper);
	}
	if (d)
		closedir(d);
	return r;
}
