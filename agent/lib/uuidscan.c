// SPDX-License-Identifier: GPL-2.0
/*
 * Which block devices carry a lakecrypt volume uuid: uuidscan.h.  sysfs
 * layout: Documentation/ABI/stable/sysfs-block ("dev", "size", "holders/",
 * "dm/uuid"); udev database records: one "E:KEY=value" line per property
 * (systemd's src/libsystemd/sd-device/device-private.c writes them).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <lakecrypt/ondisk.h>

#include "header.h"
#include "uuidscan.h"

struct blk {
	char name[NAME_MAX + 1];
	dev_t rdev;
	bool carrier;	/* carries the uuid (or is @self) */
	bool self;	/* @self, or a holder stacked over it */
	bool dropped;	/* counted through a holder that carries it */
};

static const char *root(const char *r, const char *def)
{
	return r && *r ? r : def;
}

/* At most @size - 1 bytes of @dir/@name/@leaf into @buf; length or -1. */
static ssize_t read_small(const char *dir, const char *name, const char *leaf, char *buf,
			  size_t size)
{
	char p[PATH_MAX];
	ssize_t n, got = 0;
	int fd;

	if (snprintf(p, sizeof(p), "%s/%s%s%s", dir, name, leaf ? "/" : "", leaf ? leaf : "") >=
	    (int)sizeof(p))
		return -1;
	fd = open(p, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return -1;
	while ((size_t)got < size - 1) {
		n = read(fd, buf + got, size - 1 - (size_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += n;
	}
	close(fd);
	buf[got] = '\0';
	return got;
}

/* udev's record of the device: 1 it carries @uuid, 0 it does not, -1 no
 * record (udev does not know the device). */
static int udev_says(const char *udev, dev_t rdev, const char *uuid)
{
	char f[64], *buf, *save = NULL;
	bool lc = false, same = false, detached = false;
	ssize_t n;

	snprintf(f, sizeof(f), "b%u:%u", major(rdev), minor(rdev));
	buf = malloc(LC_UUIDSCAN_UDEV_MAX + 1);
	if (!buf)
		return -1;
	n = read_small(udev, f, NULL, buf, LC_UUIDSCAN_UDEV_MAX + 1);
	if (n < 0) {
		free(buf);
		return -1;
	}
	for (char *l = strtok_r(buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		if (!strcmp(l, "E:ID_FS_TYPE=lakecrypt"))
			lc = true;
		else if (!strncmp(l, "E:ID_FS_UUID=", 13))
			same = strlen(l + 13) == 36 && !strncasecmp(l + 13, uuid, 36);
		else if (!strcmp(l, "E:LAKECRYPT_DETACHED=1"))
			detached = true;
	}
	free(buf);
	return lc && same && !detached;
}

struct rd {
	int fd;
};

static ssize_t rd_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct rd *r = ctx;
	const uint64_t limit = 2 * LC_HDR_AREA_MAX;	/* as lakecrypt-probe */
	ssize_t n;

	if (off >= limit)
		return 0;
	if (len > limit - off)
		len = (size_t)(limit - off);
	do {
		n = pread(r->fd, buf, len, (off_t)off);
	} while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

static ssize_t rd_pwrite(void *ctx, const void *buf, size_t len, uint64_t off)
{
	(void)ctx, (void)buf, (void)len, (void)off;
	return -EROFS;
}

static int rd_sync(void *ctx)
{
	(void)ctx;
	return -EROFS;
}

/* No udev record: read the header as lakecrypt-probe does (bounded). */
static bool disk_says(const char *dev, const char *name, const char *uuid)
{
	struct lc_header *h = NULL;
	struct lc_header_info info;
	struct lc_error e = { 0 };
	struct stat st;
	struct rd r;
	struct lc_header_io io = { .ctx = &r, .pread = rd_pread, .pwrite = rd_pwrite,
				   .sync = rd_sync };
	char p[PATH_MAX], u[37];
	bool yes = false;

	if (snprintf(p, sizeof(p), "%s/%s", dev, name) >= (int)sizeof(p))
		return false;
	r.fd = open(p, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (r.fd < 0)
		return false;
	if (fstat(r.fd, &st) == 0 && (S_ISBLK(st.st_mode) || S_ISREG(st.st_mode)) &&
	    lc_header_identify_io(&io, LC_UUIDSCAN_BUDGET, &h, &info, &e) == 0) {
		lc_header_uuid_str(h, u);
		yes = !strcasecmp(u, uuid) && !(h->flags & LC_HDR_F_DETACHED);
		lc_header_free(h);
	}
	close(r.fd);
	return yes;
}

static bool is_self(const char *dev, const char *name, dev_t rdev, const struct stat *self)
{
	char p[PATH_MAX];
	struct stat st;

	if (!self)
		return false;
	if (S_ISBLK(self->st_mode))
		return rdev == self->st_rdev;
	if (snprintf(p, sizeof(p), "%s/%s", dev, name) >= (int)sizeof(p) || stat(p, &st) < 0)
		return false;
	return S_ISREG(st.st_mode) && st.st_dev == self->st_dev && st.st_ino == self->st_ino;
}

/* One sysfs entry: 1 (listed in @b), 0 skipped. */
static int look_at(const struct lc_blk_roots *r, const char *name, const char *uuid,
		   const struct stat *self, struct blk *b)
{
	char buf[128];
	unsigned int ma, mi;

	if (!strncmp(name, "sr", 2) || !strncmp(name, "fd", 2) || strlen(name) > NAME_MAX)
		return 0;
	if (read_small(r->sys_block, name, "dev", buf, sizeof(buf)) < 0 ||
	    sscanf(buf, "%u:%u", &ma, &mi) != 2)
		return 0;
	memset(b, 0, sizeof(*b));
	snprintf(b->name, sizeof(b->name), "%s", name);
	b->rdev = makedev(ma, mi);
	if (is_self(r->dev, name, b->rdev, self)) {
		b->carrier = b->self = true;
		return 1;
	}
	if (read_small(r->sys_block, name, "size", buf, sizeof(buf)) > 0 && !strcmp(buf, "0\n"))
		return 0;
	if (read_small(r->sys_block, name, "dm/uuid", buf, sizeof(buf)) > 0 &&
	    !strncmp(buf, "LAKECRYPT-", 10))
		return 0;
	switch (udev_says(r->udev_data, b->rdev, uuid)) {
	case 1:
		b->carrier = true;
		break;
	case 0:
		break;
	default:
		b->carrier = disk_says(r->dev, name, uuid);
		break;
	}
	return 1;
}

static struct blk *find(struct blk *v, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i].name, name))
			return &v[i];
	return NULL;
}

/* Each carrier a carrying holder stacks over is counted through it; a
 * carrying holder over @self is @self. */
static void stack(const struct lc_blk_roots *r, struct blk *v, size_t n)
{
	for (size_t pass = 0; pass <= n; pass++) {
		bool changed = false;

		for (size_t i = 0; i < n; i++) {
			char p[PATH_MAX];
			DIR *d;

			if (!v[i].carrier)
				continue;
			if (snprintf(p, sizeof(p), "%s/%s/holders", r->sys_block, v[i].name) >=
			    (int)sizeof(p))
				continue;
			d = opendir(p);
			for (struct dirent *de; d && (de = readdir(d));) {
				struct blk *h = de->d_name[0] == '.' ? NULL : find(v, n, de->d_name);

				if (!h || !h->carrier)
					continue;
				if (!v[i].dropped)
					changed = true;
				v[i].dropped = true;
				if (v[i].self && !h->self) {
					h->self = true;
					changed = true;
				}
			}
			if (d)
				closedir(d);
		}
		if (!changed)
			break;
	}
}

int lc_uuid_carriers(const struct lc_blk_roots *roots, const char *uuid, const struct stat *self,
		     char *list, size_t size, struct lc_error *err)
{
	struct lc_blk_roots r = {
		root(roots ? roots->sys_block : NULL, "/sys/class/block"),
		root(roots ? roots->udev_data : NULL, "/run/udev/data"),
		root(roots ? roots->dev : NULL, "/dev"),
	};
	struct blk *v = NULL;
	size_t n = 0, o = 0;
	int count = 0;
	DIR *d;

	if (size)
		list[0] = '\0';
	d = opendir(r.sys_block);
	if (!d)
		return lc_err(err, -errno, LC_ERRC_INTERNAL,
			      "cannot list block devices in %s (is sysfs mounted?): %s", r.sys_block,
			      strerror(errno));
	for (struct dirent *de; (de = readdir(d));) {
		if (de->d_name[0] == '.')
			continue;
		if (n == LC_UUIDSCAN_MAX_DEVICES) {
			closedir(d);
			free(v);
			return lc_err(err, -E2BIG, LC_ERRC_INTERNAL,
				      "%s lists more than %d block devices: cannot tell which of them carry volume %s",
				      r.sys_block, LC_UUIDSCAN_MAX_DEVICES, uuid);
		}
		if (!(n % 64)) {
			struct blk *t = realloc(v, (n + 64) * sizeof(*v));

			if (!t) {
				closedir(d);
				free(v);
				return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
			}
			v = t;
		}
		n += (size_t)look_at(&r, de->d_name, uuid, self, &v[n]);
	}
	closedir(d);
	stack(&r, v, n);
	for (size_t i = 0; i < n; i++) {
		int w;

		if (!v[i].carrier || v[i].dropped || v[i].self)
			continue;
		count++;
		if (o + 4 >= size)
			continue;
		w = snprintf(list + o, size - o, "%s%s/%s", o ? ", " : "", r.dev, v[i].name);
		if (w < 0 || (size_t)w >= size - o - 4) {
			snprintf(list + o, size - o, "...");
			o = size;
		} else {
			o += (size_t)w;
		}
	}
	free(v);
	return count;
}

int lc_uuid_unique(const struct lc_blk_roots *roots, const char *uuid, const char *path,
		   const struct stat *self, const char *how, struct lc_error *err)
{
	char others[1024];
	int n = lc_uuid_carriers(roots, uuid, self, others, sizeof(others), err);

	if (n <= 0)
		return n;
	/* A file's line asked for the uuid (lakecrypttab's UUID=): naming
	 * the disk in the request does not help, changing the line does. */
	if (how && how[0] == '/')
		return lc_err(err, -ENOTUNIQ, LC_ERRC_INVALID,
			      "volume %s is on more than one block device: %s and %s; a copy of its header on another disk can take /dev/disk/by-uuid/%s, so an open by uuid (UUID= of %s) is refused while more than one disk carries it: change %s to name the disk itself (/dev/disk/by-id/..., /dev/disk/by-path/...) instead of UUID=, or remove the copy (not opened, no key was asked for)",
			      uuid, path, others, uuid, how, how);
	return lc_err(err, -ENOTUNIQ, LC_ERRC_INVALID,
		      "volume %s is on more than one block device: %s and %s; a copy of its header on another disk can take /dev/disk/by-uuid/%s and any link named by what a disk holds, so an open by uuid or through a link (%s) is refused while more than one disk carries it: remove or wipe the copy, or open the disk by its own node (/dev/sdX, /dev/vdX, not a link) once you know it is the right one (not opened, no key was asked for)",
		      uuid, path, others, uuid, how ? how : "the path");
}
