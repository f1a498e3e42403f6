// SPDX-License-Identifier: GPL-2.0
/* An offline operation's exclusive hold on a volume file (backing.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <linux/loop.h>

#include "backing.h"

void lc_backing_release(struct lc_backing_claim *c)
{
	for (unsigned int i = 0; i < c->nloops; i++)
		close(c->loop_fds[i]);
	c->nloops = 0;
}

/* lo_device is the kernel's new_encode_dev() of the backing file's st_dev. */
static bool same_dev(uint64_t lo_device, dev_t d)
{
	unsigned int maj = (unsigned int)((lo_device & 0xfff00) >> 8);
	unsigned int min = (unsigned int)((lo_device & 0xff) | ((lo_device >> 12) & 0xfff00));

	return maj == major(d) && min == minor(d);
}

int lc_backing_claim(int fd, const char *path, const char *sysfs, const char *devdir,
		     struct lc_backing_claim *c, struct lc_error *err)
{
	struct stat st;
	DIR *d;
	struct dirent *de;
	int r = 0;

	memset(c, 0, sizeof(*c));
	if (fstat(fd, &st) < 0)
		return lc_err(err, -errno, LC_ERRC_INTERNAL, "cannot stat %s: %s", path,
			      strerror(errno));
	if (!S_ISREG(st.st_mode))
		return 0;	/* a block device: its own O_EXCL open holds it */
	if (flock(fd, LOCK_EX | LOCK_NB) < 0)
		return lc_err(err, errno == EWOULDBLOCK ? -EBUSY : -errno, LC_ERRC_INVALID,
			      "%s is locked by another operation (flock): try again when it is done",
			      path);
	d = opendir(sysfs ? sysfs : "/sys/block");
	if (!d)
		return 0;	/* no sysfs, no loop devices to find */
	while (!r && (de = readdir(d))) {
		struct loop_info64 li;
		char p[512];
		int lfd;

		if (strncmp(de->d_name, "loop", 4) || !de->d_name[4])
			continue;
		snprintf(p, sizeof(p), "%s/%s/loop", sysfs ? sysfs : "/sys/block", de->d_name);
		if (access(p, F_OK))
			continue;	/* not bound to a file */
		snprintf(p, sizeof(p), "%s/%s", devdir ? devdir : "/dev", de->d_name);
		lfd = open(p, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
		if (lfd < 0)
			continue;	/* detached meanwhile, or no node */
		memset(&li, 0, sizeof(li));
		if (ioctl(lfd, LOOP_GET_STATUS64, &li) < 0 || li.lo_inode != st.st_ino ||
		    !same_dev(li.lo_device, st.st_dev)) {
			close(lfd);
			continue;
		}
		close(lfd);
		/* It backs this file: hold it exclusively, or refuse. */
		if (c->nloops == LC_BACKING_MAX_LOOPS) {
			r = lc_err(err, -EMLINK, LC_ERRC_INVALID,
				   "%s backs more than %d loop devices: refused", path,
				   LC_BACKING_MAX_LOOPS);
			break;
		}
		lfd = open(p, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_EXCL);
		if (lfd < 0) {
			r = lc_err(err, errno == EBUSY ? -EBUSY : -errno, LC_ERRC_INVALID,
				   "%s is the backing file of %s, which is in use (mapped, mounted or held open exclusively): re-keying the file under it would corrupt the data it serves; close the volume (or detach %s) first",
				   path, p, p);
			break;
		}
		c->loop_fds[c->nloops++] = lfd;
	}
	closedir(d);
	if (r < 0) {
		lc_backing_release(c);
		(void)flock(fd, LOCK_UN);
	}
	return r;
}
