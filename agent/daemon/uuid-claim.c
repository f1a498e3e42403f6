// SPDX-License-Identifier: GPL-2.0
/*
 * lakecrypt-agent: a volume being re-keyed is not opened meanwhile.
 *
 * volume.rekey-segment rewrites the header and data of a closed volume
 * for as long as it takes (minutes), after a KMS call that may itself
 * stall.  Its exclusive hold on the device (O_EXCL on a block device; on
 * a file, flock and O_EXCL on the loop devices that back it, backing.h)
 * is taken once, at its start: a loop device set up over the file later,
 * or the same volume named by another path, escapes it, and an open
 * through this agent would map a header being rewritten.  So the re-key
 * claims the volume's uuid for its whole run, here, and an open of that
 * uuid is refused (-EBUSY) until it ends; and a re-key is refused while
 * the uuid is open or being opened, under whatever path.
 *
 * The uuid is read from the header copies on the storage (both valid
 * copies' uuids, unauthenticated: it decides only what conflicts, never
 * what is trusted), without a->lock (the storage can stall), only from a
 * block device or a regular file (opening another kind of file can have
 * side effects: a watchdog, a tape).  A header that cannot be read claims
 * nothing: the open or re-key then fails on it by itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"

/* The uuids of the valid header copies at @path (the detached header, or
 * the device): 0 with @k->n set (1 or 2), or -errno. */
static int uc_read_uuids(const char *path, struct uuid_claim *k)
{
	struct lc_header *copies[2] = { NULL, NULL };
	struct lc_header_info info;
	struct lc_error e = { 0 };
	struct stat st, fst;
	int fd, r;

	k->n = 0;
	if (!path || !path[0] || stat(path, &st) < 0)
		return -ENOENT;
	if (!S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode))
		return -ENOTBLK;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return -errno;
	/* the file stat() saw, not one swapped in since */
	if (fstat(fd, &fst) < 0 || fst.st_dev != st.st_dev || fst.st_ino != st.st_ino ||
	    fst.st_rdev != st.st_rdev) {
		close(fd);
		return -ESTALE;
	}
	r = lc_header_read_copies(fd, copies, &info, &e);
	close(fd);
	if (r < 0)
		return r;
	for (int i = 0; i < 2; i++) {
		char u[LC_UUID_STR_LEN];

		if (!copies[i])
			continue;
		lc_header_uuid_str(copies[i], u);
		if (!k->n || strcmp(k->uuid[0], u))
			snprintf(k->uuid[k->n++], sizeof(k->uuid[0]), "%s", u);
		lc_header_free(copies[i]);
	}
	return k->n ? 0 : -ENOENT;
}

static bool uc_names(const struct uuid_claim *k, const char *uuid)
{
	for (unsigned int i = 0; i < k->n; i++)
		if (!strcmp(k->uuid[i], uuid))
			return true;
	return false;
}

/* A conflict of @k with what the agent has (a->lock held): 0 or -EBUSY. */
static int uc_conflict(struct agent *a, const struct uuid_claim *k, struct lc_error *err)
{
	for (const struct uuid_claim *o = a->uuid_claims; o; o = o->next) {
		if (o == k || (!k->rekey && !o->rekey))
			continue;	/* two opens: the open's own checks */
		for (unsigned int i = 0; i < k->n; i++)
			if (uc_names(o, k->uuid[i]))
				/* An open's refusal names no path: the re-key
				 * is an admin's, the opener maybe an operator
				 * of another workspace. */
				return o->rekey ?
				       lc_err(err, -EBUSY, LC_ERRC_INVALID,
					      "volume %s is being re-keyed (volume.rekey-segment): open it when the re-key has ended",
					      k->uuid[i]) :
				       lc_err(err, -EBUSY, LC_ERRC_INVALID,
					      "volume %s is being opened right now (from %s): a segment is re-keyed offline; close it first",
					      k->uuid[i], o->path);
	}
	if (!k->rekey)
		return 0;
	for (size_t i = 0; i < a->nvols; i++) {
		const struct lc_volume *v = a->vols[i]->v;

		if (v && v->uuid[0] && uc_names(k, v->uuid))
			return lc_err(err, -EBUSY, LC_ERRC_INVALID,
				      "volume %s is open as /dev/mapper/%s (device %s): close it first (a segment is re-keyed offline)",
				      v->uuid, v->name, v->device);
	}
	return 0;
}

int agent_uuid_claim(struct agent *a, struct uuid_claim *k, bool rekey, const char *device,
		     const char *header, struct lc_error *err)
{
	const char *path = header && header[0] ? header : device;
	int r;

	memset(k, 0, sizeof(*k));
	k->rekey = rekey;
	snprintf(k->path, sizeof(k->path), "%s", path ? path : "");
	agent_unlock(a);
	r = uc_read_uuids(path, k);
	agent_relock(a);
	if (r < 0) {
		k->n = 0;
		return 0;	/* nothing to claim: the operation fails on the header */
	}
	if ((r = uc_conflict(a, k, err)) < 0) {
		k->n = 0;
		return r;
	}
	k->next = a->uuid_claims;
	a->uuid_claims = k;
	k->listed = true;
	return 0;
}

void agent_uuid_release(struct agent *a, struct uuid_claim *k)
{
	if (!k->listed)
		return;
	for (struct uuid_claim **p = &a->uuid_claims; *p; p = &(*p)->next)
		if (*p == k) {
			*p = k->next;
			break;
		}
	k->listed = false;
}
