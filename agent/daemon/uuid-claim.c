// SPDX-License-Identifier: GPL-2.0
/*
 * lakecrypt-agent: a volume whose header an offline operation writes over
 * is not opened meanwhile, under any path; nor is an open one written
 * over.
 *
 * The agent's offline header writers -- volume.rekey-segment (header and
 * data, for minutes), volume.rekey (a closed volume to another key
 * configuration), volume.migrate (version 1 to 2), volume.format with
 * "force" and cache.open with "force" (both destroy whatever volume is
 * there) -- each take an exclusive hold on the storage (O_EXCL on a block
 * device; flock and O_EXCL on the loop devices over a file, backing.h)
 * when they start.  A loop device set up over the file later, a hard
 * link, /dev/disk/by-uuid, or the same volume through another loop device
 * escapes that hold, and an open through this agent would map a header
 * (or data) being rewritten.  So each writer claims the uuids it is about
 * to write over, here, for its whole run: an open of one of them is
 * refused (-EBUSY) until it ends; and a writer is refused while one of
 * its uuids is open, being opened, or claimed by another writer, under
 * whatever path.  Two opens do not conflict here (the open's own checks).
 *
 * A cache opened with force over a volume overwrites it for as long as it
 * is open, yet leaves its header readable until the cache's own writes
 * reach it: an open or a writer of a uuid whose header is still on the
 * storage of an open cache volume (read again at each claim) is refused
 * too.
 *
 * The uuids are read from the header copies on the storage (both valid
 * copies', unauthenticated: they decide only what conflicts, never what
 * is trusted), without a->lock (the storage can stall), only from a block
 * device or a regular file (opening another kind of file can have side
 * effects: a watchdog, a tape).  A header that cannot be read claims
 * nothing: the operation then fails on it by itself, or (a format, a
 * cache) has no volume there to destroy.
 *
 * A uuid is not enough: the data device of a volume with a detached
 * header holds no header, so a format or a cache with force aimed at it
 * (through any path) would find nothing to claim and destroy a live
 * volume.  So every claim also records the storage identity of the
 * device and header it names (storage-id.h: st_rdev and what a block
 * device lies on; a file's st_dev and st_ino; a loop device's backing
 * file), an open's for as long as its volume is open (in its slot), and
 * a writer is refused when its storage is, lies on or lies under that of
 * a volume open, being opened or written, or when the kernel says it is
 * in use (held by device-mapper, mounted, or the backing file of a loop
 * device in use).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "agent.h"

const struct uuid_writer agent_uc_rekey_segment = {
	"volume.rekey-segment", "re-keyed", "re-key", "a segment is re-keyed offline", false, false,
};
const struct uuid_writer agent_uc_rekey = {
	"volume.rekey", "re-keyed to another key configuration", "re-key",
	"a closed volume is re-keyed offline; an open one with `lakecryptctl workspace rekey`",
	false, false,
};
const struct uuid_writer agent_uc_migrate = {
	"volume.migrate", "migrated", "migration", "a header is migrated offline", false, false,
};
const struct uuid_writer agent_uc_format = {
	"volume.format with force", "formatted over", "format",
	"formatting over it destroys it", true, false,
};
const struct uuid_writer agent_uc_cache = {
	"cache.open with force", "overwritten by a cache", "cache open",
	"a cache over it destroys it", false, false,
};
const struct uuid_writer agent_uc_format_plain = {
	"volume.format", "formatted", "format", "formatting over it destroys it", false, true,
};
const struct uuid_writer agent_uc_cache_plain = {
	"cache.open", "overwritten by a cache", "cache open", "a cache over it destroys it", false,
	true,
};

static bool uc_names(const struct uuid_claim *k, const char *uuid)
{
	for (unsigned int i = 0; i < k->n; i++)
		if (!strcmp(k->uuid[i], uuid))
			return true;
	return false;
}

/* Open file @st is the storage @want names (NULL: anything is). */
static bool uc_same(const struct agent_sid *want, const struct stat *st)
{
	if (!want)
		return true;
	if (!want->set)
		return false;
	return S_ISBLK(st->st_mode) ? want->self.blk && want->self.rdev == st->st_rdev :
				      !want->self.blk && want->self.dev == st->st_dev &&
				      want->self.ino == st->st_ino;
}

/* Add the uuids of the valid header copies at @path (a detached header,
 * or a device) to @k (at most 2 per path, none twice) -- with @workspace,
 * only of copies that name it: 0, or -errno when there is no header to
 * read there (nothing added); -EXDEV when what @path names now is not
 * @want (the identity the claim took of it: a path changed meanwhile). */
static int uc_read_uuids_ws(const char *path, const char *workspace,
			    const struct agent_sid *want, struct uuid_claim *k)
{
	struct lc_header *copies[2] = { NULL, NULL };
	struct lc_header_info info;
	struct lc_error e = { 0 };
	struct stat st, fst;
	int fd, r;

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
	if (!uc_same(want, &fst)) {
		close(fd);
		return -EXDEV;
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
		if ((!workspace || !strncmp(copies[i]->workspace, workspace,
					    sizeof(copies[i]->workspace))) &&
		    !uc_names(k, u) && k->n < sizeof(k->uuid) / sizeof(k->uuid[0]))
			snprintf(k->uuid[k->n++], sizeof(k->uuid[0]), "%s", u);
		lc_header_free(copies[i]);
	}
	return 0;
}

static int uc_read_uuids(const char *path, struct uuid_claim *k)
{
	return uc_read_uuids_ws(path, NULL, NULL, k);
}

/* A conflict of @k with what the agent has (a->lock held): 0 or -EBUSY. */
static int uc_conflict(struct agent *a, const struct uuid_claim *k, struct lc_error *err)
{
	for (const struct uuid_claim *o = a->uuid_claims; o; o = o->next) {
		if (o == k || (!k->w && !o->w))
			continue;	/* two opens: the open's own checks */
		for (unsigned int i = 0; i < k->n; i++) {
			if (!uc_names(o, k->uuid[i]))
				continue;
			/* An open's refusal names no path: the writer is an
			 * admin, the opener maybe an operator of another
			 * workspace. */
			if (!k->w)
				return lc_err(err, -EBUSY, LC_ERRC_INVALID,
					      "volume %s is being %s (%s): open it when the %s has ended",
					      k->uuid[i], o->w->doing, o->w->op, o->w->noun);
			if (!o->w)
				return lc_err(err, -EBUSY, LC_ERRC_INVALID,
					      "volume %s is being opened right now (from %s): %s; close it first",
					      k->uuid[i], o->path, k->w->why);
			return lc_err(err, -EBUSY, LC_ERRC_INVALID,
				      "volume %s is being %s (%s, from %s): try again when the %s has ended",
				      k->uuid[i], o->w->doing, o->w->op, o->path, o->w->noun);
		}
	}
	if (!k->w)
		return 0;
	for (size_t i = 0; i < a->nvols; i++) {
		const struct lc_volume *v = a->vols[i]->v;

		if (v && v->uuid[0] && uc_names(k, v->uuid))
			return lc_err(err, -EBUSY, LC_ERRC_INVALID,
				      "volume %s is open as /dev/mapper/%s (device %s): close it first (%s)",
				      v->uuid, v->name, v->device, k->w->why);
	}
	return 0;
}

/*
 * The open cache volumes (a->lock held), to be read without it: a cache
 * opened with force over a volume leaves that volume's header readable on
 * the storage until the cache's own writes reach it, and the storage is
 * in use by the cache all the while.  NULL with *@n 0 when there are none
 * (or no memory: then nothing is checked, as before caches were).
 */
struct uc_cache {
	char name[LC_HDR_NAME_SIZE];
	char device[PATH_MAX];
	char hit[LC_UUID_STR_LEN];	/* the uuid of @k found there, or "" */
};

static struct uc_cache *uc_caches(struct agent *a, size_t *n)
{
	struct uc_cache *c = NULL;
	size_t m = 0;

	*n = 0;
	for (size_t i = 0; i < a->nvols; i++)
		m += a->vols[i]->v->kind == LC_VOLUME_CACHE;
	if (!m || !(c = calloc(m, sizeof(*c))))
		return NULL;
	for (size_t i = 0; i < a->nvols && *n < m; i++) {
		const struct lc_volume *v = a->vols[i]->v;

		if (v->kind != LC_VOLUME_CACHE)
			continue;
		snprintf(c[*n].name, sizeof(c[*n].name), "%s", v->name);
		snprintf(c[*n].device, sizeof(c[*n].device), "%s", v->device);
		(*n)++;
	}
	return c;
}

/* Without a->lock: which caches' storage holds a header of one of @k's
 * uuids. */
static void uc_caches_read(struct uc_cache *c, size_t n, const struct uuid_claim *k)
{
	for (size_t i = 0; i < n && k->n; i++) {
		struct uuid_claim under = { .n = 0 };

		(void)uc_read_uuids(c[i].device, &under);
		for (unsigned int j = 0; j < under.n && !c[i].hit[0]; j++)
			if (uc_names(k, under.uuid[j]))
				snprintf(c[i].hit, sizeof(c[i].hit), "%s", under.uuid[j]);
	}
}

/* -EBUSY when @k's volume lies under an open cache (a->lock held). */
static int uc_under_cache(const struct uc_cache *c, size_t n, const struct uuid_claim *k,
			  struct lc_error *err)
{
	for (size_t i = 0; i < n; i++) {
		if (!c[i].hit[0])
			continue;
		/* As for an open's other refusals: no name, no path. */
		if (!k->w)
			return lc_err(err, -EBUSY, LC_ERRC_INVALID,
				      "volume %s lies on the storage of an open cache volume (cache.open with force), which overwrites it: open it when the cache is closed",
				      c[i].hit);
		return lc_err(err, -EBUSY, LC_ERRC_INVALID,
			      "volume %s lies on the storage of cache volume /dev/mapper/%s (device %s), which overwrites it: close the cache first",
			      c[i].hit, c[i].name, c[i].device);
	}
	return 0;
}

static const char *const sid_role[2] = { "device", "detached header" };
static const char *const sid_of_role[2] = { "data device", "detached header" };

/* The first uuid of @o, for messages ("a volume" when it has none). */
static const char *uc_uuid_of(const struct uuid_claim *o, char buf[LC_UUID_STR_LEN + 8])
{
	if (o->n)
		snprintf(buf, LC_UUID_STR_LEN + 8, "%s", o->uuid[0]);
	else
		snprintf(buf, LC_UUID_STR_LEN + 8, "?");
	return buf;
}

/* The refusal of a writer without force: nothing named but its own path. */
static int uc_anon_refusal(const struct uuid_claim *k, int i, struct lc_error *err)
{
	return lc_err(err, -EBUSY, LC_ERRC_INVALID,
		      "%s %s is storage in use (a volume open or being opened on it, or another operation writing it): not written (%s); the volume must be closed first",
		      sid_role[i], k->sid_path[i], k->w->why);
}

/*
 * A conflict of @k's storage with what the agent has (a->lock held): 0 or
 * -EBUSY.  A writer's device or header against the devices of every open
 * volume, of every open in progress and of every other writer; an open's
 * against every writer's.
 */
static int uc_storage_conflict(struct agent *a, const struct uuid_claim *k, struct lc_error *err)
{
	char u[LC_UUID_STR_LEN + 8];

	for (const struct uuid_claim *o = a->uuid_claims; o; o = o->next) {
		if (o == k || (!k->w && !o->w))
			continue;
		for (int i = 0; i < 2; i++) {
			for (int j = 0; j < 2; j++) {
				enum agent_sid_rel rel = agent_sid_overlap(&k->sid[i], &o->sid[j]);

				if (rel == AGENT_SID_APART)
					continue;
				/* No path, no uuid for an opener (see uc_conflict()). */
				if (!k->w)
					return lc_err(err, -EBUSY, LC_ERRC_INVALID,
						      "the %s given is on storage being %s (%s): open it when the %s has ended",
						      sid_role[i], o->w->doing, o->w->op, o->w->noun);
				if (k->w->storage_only)
					return uc_anon_refusal(k, i, err);
				if (!o->w)
					return lc_err(err, -EBUSY, LC_ERRC_INVALID,
						      "%s %s %s %s (the %s of volume %s, being opened right now): %s; close it first",
						      sid_role[i], k->sid_path[i], agent_sid_rel_text(rel),
						      o->sid_path[j], sid_of_role[j], uc_uuid_of(o, u),
						      k->w->why);
				return lc_err(err, -EBUSY, LC_ERRC_INVALID,
					      "%s %s %s %s, being %s (%s): try again when the %s has ended",
					      sid_role[i], k->sid_path[i], agent_sid_rel_text(rel),
					      o->sid_path[j], o->w->doing, o->w->op, o->w->noun);
			}
		}
	}
	if (!k->w)
		return 0;
	for (size_t s = 0; s < a->nvols; s++) {
		const struct vol_slot *sl = a->vols[s];
		const struct lc_volume *v = sl->v;

		if (!sl->sid_set)
			continue;
		for (int i = 0; i < 2; i++) {
			for (int j = 0; j < 2; j++) {
				enum agent_sid_rel rel = agent_sid_overlap(&k->sid[i], &sl->sid[j]);

				if (rel == AGENT_SID_APART)
					continue;
				if (k->w->storage_only)
					return uc_anon_refusal(k, i, err);
				return lc_err(err, -EBUSY, LC_ERRC_INVALID,
					      "%s %s %s %s (the %s of volume %s, open as /dev/mapper/%s): close it first (%s)",
					      sid_role[i], k->sid_path[i], agent_sid_rel_text(rel),
					      j ? v->header : v->device, sid_of_role[j], v->uuid,
					      v->name, k->w->why);
			}
		}
	}
	return 0;
}

/* What the kernel said of writer @k's storage (without a->lock), told
 * with a->lock held: -EBUSY naming the agent's own volume when the
 * holder is one. */
static int uc_kernel_refusal(struct agent *a, const struct uuid_claim *k, const char *why,
			     const char *mapper, struct lc_error *err)
{
	const struct vol_slot *s = mapper[0] ? agent_volume(a, mapper) : NULL;

	if (k->w->storage_only)
		return uc_anon_refusal(k, 0, err);
	if (s)
		return lc_err(err, -EBUSY, LC_ERRC_INVALID,
			      "%s: that is volume %s, open as /dev/mapper/%s: close it first (%s)", why,
			      s->v->uuid, s->v->name, k->w->why);
	return lc_err(err, -EBUSY, LC_ERRC_INVALID,
		      "%s: release it first (%s; lakecrypt does not write over storage in use)", why,
		      k->w->why);
}

/* Block device @path is one @allow lets @workspace use (without a->lock:
 * glob(7) and stat(2)). */
static bool uc_allowed(const char *path, const struct lc_ws_access *allow, const char *workspace)
{
	struct lc_error e = { 0 };
	struct stat st;

	return path && path[0] == '/' && stat(path, &st) == 0 && S_ISBLK(st.st_mode) &&
	       lc_device_allowed(allow, workspace, st.st_rdev, path, &e) == 0;
}

static int uc_claim(struct agent *a, struct uuid_claim *k, const struct uuid_writer *w,
		    const char *device, const char *header, const struct lc_ws_access *allow,
		    const char *workspace, struct lc_error *err)
{
	bool detached = header && header[0];
	struct uc_cache *caches;
	size_t ncaches;
	char why[PATH_MAX + 512], mapper[AGENT_SID_NAME_MAX];
	bool stale = false;
	int r, busy = 0;

	memset(k, 0, sizeof(*k));
	k->w = w;
	snprintf(k->path, sizeof(k->path), "%s", detached ? header : device ? device : "");
	k->sid_path[0] = device ? device : "";
	k->sid_path[1] = detached ? header : "";
	caches = uc_caches(a, &ncaches);
	agent_unlock(a);
	/* An operator's path the list does not allow is not looked at: not
	 * its header, not its storage (the library then refuses it with the
	 * same words as any other path the workspace may not use); nor a
	 * header it may name (in the agent's header directory) that is
	 * another workspace's. */
	k->looked[0] = !allow || uc_allowed(device, allow, workspace);
	k->looked[1] = detached && (!allow || uc_allowed(header, allow, workspace));
	/* The storage, whatever is on it; for a writer, the kernel's word. */
	if (k->looked[0])
		(void)agent_sid_of(device, &k->sid[0]);
	if (k->looked[1])
		(void)agent_sid_of(header, &k->sid[1]);
	/* The header, attached or detached; and for a writer that writes
	 * over the data device too (a format), whatever header is there --
	 * read from the storage just identified, not one a path names since. */
	if (!w || !w->storage_only) {
		if (!detached && k->looked[0])
			stale |= uc_read_uuids_ws(device, NULL, &k->sid[0], k) == -EXDEV;
		else if (detached)
			stale |= uc_read_uuids_ws(header, k->looked[1] ? NULL : workspace,
						  k->looked[1] ? &k->sid[1] : NULL, k) == -EXDEV;
		if (detached && w && w->device_too && k->looked[0])
			stale |= uc_read_uuids_ws(device, NULL, &k->sid[0], k) == -EXDEV;
	}
	uc_caches_read(caches, ncaches, k);
	for (int i = 0; w && i < 2 && !busy; i++)
		busy = agent_sid_kernel_busy(&k->sid[i], k->sid_path[i], why, sizeof(why), mapper);
	agent_relock(a);
	r = uc_under_cache(caches, ncaches, k, err);
	free(caches);
	if (!r && stale)
		r = lc_err(err, -EBUSY, LC_ERRC_INVALID,
			   "the %s given changed under us while it was checked (a path renamed or a symbolic link changed meanwhile): try again",
			   detached ? "device or header" : "device");
	/* A writer over storage whose stack could not be followed to the
	 * bottom cannot be told apart from anything: refused. */
	for (int i = 0; w && !r && i < 2; i++)
		if (k->sid[i].cut)
			r = lc_err(err, -EBUSY, LC_ERRC_INVALID,
				   "device stack too deep to check: %s %s lies on more than %u devices or %u levels of them; lakecrypt does not write over storage it cannot tell apart from volumes in use (%s)",
				   sid_role[i], k->sid_path[i], AGENT_SID_LOW, AGENT_SID_DEPTH,
				   w->why);
	if (r < 0 || (r = uc_conflict(a, k, err)) < 0 ||
	    (r = uc_storage_conflict(a, k, err)) < 0 ||
	    (busy && (r = uc_kernel_refusal(a, k, why, mapper, err)) < 0)) {
		k->n = 0;
		return r;
	}
	if (!k->n && !k->sid[0].set && !k->sid[1].set)
		return 0;	/* nothing to claim: the operation fails on it */
	k->next = a->uuid_claims;
	a->uuid_claims = k;
	k->listed = true;
	return 0;
}

int agent_uuid_claim(struct agent *a, struct uuid_claim *k, const struct uuid_writer *w,
		     const char *device, const char *header, struct lc_error *err)
{
	return uc_claim(a, k, w, device, header, NULL, NULL, err);
}

int agent_storage_claim(struct agent *a, struct uuid_claim *k, const struct uuid_writer *w,
			const char *device, const char *header, const struct lc_ws_access *allow,
			const char *workspace, struct lc_error *err)
{
	return uc_claim(a, k, w, device, header, allow, workspace, err);
}

const struct lc_storage_pin *agent_uuid_pin(const struct uuid_claim *k, int i,
					    struct lc_storage_pin *buf)
{
	const struct agent_sid *id = &k->sid[i];

	if (!k->looked[i])
		return NULL;
	*buf = (struct lc_storage_pin){ .exists = id->set, .blk = id->self.blk,
					.rdev = id->self.rdev, .dev = id->self.dev,
					.ino = id->self.ino };
	return buf;
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

void agent_uuid_attach(struct agent *a, const char *name, const char *uuid,
		       const struct uuid_claim *k)
{
	struct vol_slot *s = agent_volume(a, name);
	unsigned int ma, mi;
	char extra;

	/* Not a slot another open made meanwhile (another volume). */
	if (!s || s->sid_set || !uuid[0] || strcmp(s->v->uuid, uuid))
		return;
	s->sid[0] = k->sid[0];
	s->sid[1] = k->sid[1];
	s->sid_set = true;
	/* The device the kernel maps is the one to keep: a path can have
	 * been made to name another between the claim and the open. */
	if (sscanf(s->v->devno, "%u:%u%c", &ma, &mi, &extra) == 2 &&
	    (!s->sid[0].self.blk || s->sid[0].self.rdev != makedev(ma, mi)))
		agent_sid_of_rdev(makedev(ma, mi), &s->sid[0]);
}

void agent_slot_sid(struct vol_slot *s)
{
	unsigned int ma, mi;
	char extra;

	if (sscanf(s->v->devno, "%u:%u%c", &ma, &mi, &extra) == 2)
		agent_sid_of_rdev(makedev(ma, mi), &s->sid[0]);
	else
		(void)agent_sid_of(s->v->device, &s->sid[0]);
	if (s->v->header[0])
		(void)agent_sid_of(s->v->header, &s->sid[1]);
	s->sid_set = true;
}
