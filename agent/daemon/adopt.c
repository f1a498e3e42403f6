// SPDX-License-Identifier: GPL-2.0
/*
 * Open records and the adoption of mappings at start
 * (Documentation/lakecrypt-agent.md, "Restart").
 *
 * An open writes "<runtime dir>/opening/<name>.json" (the entry
 * volumes.json would hold: name, uuid, device, header, workspace, key
 * configuration, CMK; never a key) durably, fsync'ed and renamed into
 * place, before the dm device is created (env->before_create), and
 * removes it once volumes.json lists the volume or the open was undone.
 * A crash in between (after the create, after the keys, in udev's wait)
 * leaves the record next to the mapping.
 *
 * At start every LAKECRYPT-<uuid> mapping that volumes.json does not list
 * is adopted, so that it is watched like any open volume, when
 *   - the runtime directory and opening/ are the agent's own (owned by its
 *     euid, no group/other write: adopt_dir_trusted());
 *   - its open record names it (name and uuid), the kernel's table is the
 *     one that record's open made (device, offset, cipher, key and segment
 *     and sector size, ephemeral), and the header the record names
 *     (attached or detached) carries that uuid, key configuration,
 *     provider, key reference, workspace, project and CMK (a cache: the
 *     record and the table alone);
 *   - its table holds every key the volume has (an open that died before
 *     "key load" finished is not one to keep);
 * and it is announced to udev again (a crash in that wait lost it).
 * A mapping with no usable record is never adopted from its device: its
 * header is not authenticated without the KEK, which needs the very CMK
 * the header names, so it cannot say whose the keys are.
 * Any other lakecrypt mapping fails closed: "key wipe all" (if that fails,
 * "revoke": it wipes the keys too, but fails all I/O and discards a
 * cache), then removed; one that is in use stays, listed as revoked (keys
 * gone) or as failed (keys NOT wiped: every watcher round and every admin
 * revoke sends "revoke" again), so that status shows it and close removes
 * it.  Every outcome is logged and audited ("adopt").  An unwatched keyed
 * mapping would be out of the kill switch's reach; so if the mappings
 * cannot be listed at all, the agent does not start.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "fileio.h"
#include "header.h"
#include "rotate.h"

#define ADOPT_DIR	"opening"
#define ADOPT_EXT	".json"

int agent_open_records_init(struct agent *a, struct lc_error *err)
{
	char tmp[PATH_MAX], *slash;

	snprintf(tmp, sizeof(tmp), "%s", a->runtime_path);
	slash = strrchr(tmp, '/');
	if (slash)
		*slash = '\0';
	else
		snprintf(tmp, sizeof(tmp), ".");
	if (snprintf(a->record_dir, sizeof(a->record_dir), "%s/%s", tmp, ADOPT_DIR) >=
	    (int)sizeof(a->record_dir))
		return lc_err(err, -ENAMETOOLONG, LC_ERRC_MISCONFIG, "socket path too long");
	return lc_mkdir_p(a->record_dir, 0700, err);
}

static int adopt_path(const struct agent *a, const char *name, char *out, size_t size)
{
	struct lc_error e;

	if (!a->record_dir[0] || lc_name_check("volume name", name, &e) < 0 ||
	    snprintf(out, size, "%s/%s" ADOPT_EXT, a->record_dir, name) >= (int)size)
		return -ENAMETOOLONG;
	return 0;
}

int agent_open_record(void *ctx, const struct lc_volume *v, struct lc_error *err)
{
	struct agent *a = ctx;
	struct lc_volume *one[1];
	char path[PATH_MAX], m[LC_ERROR_MSG_MAX];
	int r;

	if (adopt_path(a, v->name, path, sizeof(path)) < 0)
		return lc_err(err, -ENAMETOOLONG, LC_ERRC_INTERNAL,
			      "volume %s: no place for its open record", v->name);
	/* lc_volumes_save() only reads the entries. */
	memcpy(one, &v, sizeof(one[0]));
	r = lc_volumes_save(path, one, 1, err);
	if (r < 0) {
		snprintf(m, sizeof(m), "%s", err->msg);
		return lc_err(err, r, LC_ERRC_INTERNAL,
			      "volume %s not opened: its open record could not be written (%s), and a crash during the open would leave a mapping no agent watches",
			      v->name, m);
	}
	return 0;
}

void agent_open_record_clear(struct agent *a, const char *name)
{
	char path[PATH_MAX];

	if (adopt_path(a, name, path, sizeof(path)) == 0 && unlink(path) < 0 && errno != ENOENT)
		lc_warn("%s: %s (a restarted agent checks it against the kernel)", path,
			strerror(errno));
}

void agent_open_record_end(struct agent *a, const struct lc_volume_env *env, const char *name)
{
	struct lc_dm_status st;
	struct lc_error e = { 0 };
	int r;

	if (agent_volume(a, name)) {
		agent_open_record_clear(a, name);	/* volumes.json has it */
		return;
	}
	agent_unlock(a);
	r = env->be->dm_status(env->be_ctx, name, &st, &e);
	agent_relock(a);
	if (r == 0 && !agent_volume(a, name)) {
		lc_warn("/dev/mapper/%s: the open failed but a lakecrypt mapping of that name remains: its open record is kept, and a restarted agent adopts it or wipes its keys",
			name);
		return;
	}
	agent_open_record_clear(a, name);
}

static void adopt_audit(struct agent *a, const struct lc_volume *v, const char *uuid,
			const char *device, enum lc_audit_outcome o, const char *detail)
{
	struct lc_audit_event ev;
	struct lc_error ae;

	lc_audit_event_init(&ev, "adopt", o);
	ev.peer_uid = -1;
	ev.volume = uuid;
	ev.device = device && *device ? device : NULL;
	if (v) {
		ev.workspace = v->workspace[0] ? v->workspace : NULL;
		ev.project = v->project[0] ? v->project : NULL;
		ev.keyconfig = v->keyconfig[0] ? v->keyconfig : NULL;
		ev.provider = v->provider[0] ? v->provider : NULL;
		ev.cmk_id = v->cmk_id[0] ? v->cmk_id : NULL;
	}
	if (o != LC_AUDIT_SUCCESS)
		ev.error_class = LC_ERRC_INVALID;
	ev.detail = detail;
	if (lc_audit_write(&a->audit, &ev, &ae) < 0)
		lc_error_log("audit record for adopt could not be written: %s", ae.msg);
}

/* The used header copy of the storage at @path (read-only: dm holds the
 * device, and nothing is written).  NULL with @why. */
static struct lc_header *adopt_header(const char *path, char *why, size_t size)
{
	struct lc_header *copies[2] = { NULL, NULL }, *h;
	struct lc_header_info info;
	struct lc_error e = { 0 };
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0) {
		snprintf(why, size, "its header %.200s cannot be opened: %s", path, strerror(errno));
		return NULL;
	}
	if (lc_header_read_copies(fd, copies, &info, &e) < 0) {
		close(fd);
		snprintf(why, size, "no lakecrypt header on %.100s: %.300s", path, e.msg);
		return NULL;
	}
	close(fd);
	h = copies[info.used];
	lc_header_free(copies[!info.used]);
	return h;
}

/* Keys a full open loads: one per mapped segment, but the shredded. */
static uint32_t adopt_keys_expected(const struct lc_header *h, uint32_t segments)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < segments && i < h->segment_count; i++)
		n += !lc_dek_is_shredded(&h->deks[i], h->key_size);
	return n;
}

/* Does @h say what the record @v says?  *@keys: the keys a full open of
 * @v loads.  0, or -1 with @why. */
static int adopt_matches(const struct lc_header *h, const struct lc_volume *v, uint32_t *keys,
			 char *why, size_t size)
{
	char u[LC_UUID_STR_LEN];

	lc_header_uuid_str(h, u);
	if (strcmp(u, v->uuid)) {
		snprintf(why, size, "its header is volume %s, not %s", u, v->uuid);
		return -1;
	}
	if (strcmp(h->keyconfig, v->keyconfig) || strcmp(h->provider, v->provider) ||
	    strcmp(h->provider_ref, v->provider_ref)) {
		snprintf(why, size,
			 "its header names key configuration %.60s (%.120s), its record %.60s (%.120s)",
			 h->keyconfig, h->provider_ref, v->keyconfig, v->provider_ref);
		return -1;
	}
	if (strcmp(h->cipher, v->cipher) || h->key_size != v->key_size ||
	    h->segment_sectors != v->segment_sectors || h->data_offset != v->data_offset) {
		snprintf(why, size, "its header's geometry is not the record's");
		return -1;
	}
	*keys = adopt_keys_expected(h, v->segments);
	return 0;
}

/*
 * Parse dm-lakecrypt's TABLE line @p (modified in place): the six fixed
 * fields, then "<count> <option>..." (include/uapi/linux/dm-lakecrypt.h,
 * "Optional parameters": at most LAKECRYPT_MAX_OPT_PARAMS, the names
 * LAKECRYPT_OPT_*).  An unknown option, a count that is not the number of
 * options that follow, or a trailing word: -EINVAL.
 */
int agent_adopt_parse_table(char *p, struct adopt_table *t)
{
	char *save = NULL, *tok[7], *end, *s;
	unsigned long long x;
	unsigned long nopt = 0;
	int n = 0;

	memset(t, 0, sizeof(*t));
	t->sector_size = LAKECRYPT_MIN_SECTOR_SIZE;
	/* Exactly the words needed: the options are read below. */
	while (n < 7 && (s = strtok_r(n ? NULL : p, " ", &save)))
		tok[n++] = s;
	if (n < 6 || strlen(tok[0]) >= sizeof(t->cipher) || strlen(tok[3]) >= sizeof(t->device) ||
	    strlen(tok[5]) >= sizeof(t->volume_id))
		return -EINVAL;
	snprintf(t->cipher, sizeof(t->cipher), "%s", tok[0]);
	if (tok[1][0] != ':')
		return -EINVAL;
	errno = 0;
	x = strtoull(tok[1] + 1, &end, 10);
	if (errno || *end != ':' || !x || x > LAKECRYPT_MAX_KEY_SIZE)
		return -EINVAL;
	t->key_size = (uint32_t)x;
	x = strtoull(tok[2], &end, 10);
	if (errno || *end || !x)
		return -EINVAL;
	t->segment_sectors = x;
	snprintf(t->device, sizeof(t->device), "%s", tok[3]);
	x = strtoull(tok[4], &end, 10);
	if (errno || *end)
		return -EINVAL;
	t->offset = x;
	snprintf(t->volume_id, sizeof(t->volume_id), "%s", tok[5]);
	if (n == 7) {
		nopt = strtoul(tok[6], &end, 10);
		if (errno || *end || nopt > LAKECRYPT_MAX_OPT_PARAMS)
			return -EINVAL;
	}
	for (unsigned long i = 0; i < nopt; i++) {
		char *o = strtok_r(NULL, " ", &save);
		const size_t ssl = strlen(LAKECRYPT_OPT_SECTOR_SIZE ":");

		if (!o)
			return -EINVAL;
		if (!strcmp(o, LAKECRYPT_OPT_EPHEMERAL)) {
			t->ephemeral = true;
		} else if (!strncmp(o, LAKECRYPT_OPT_SECTOR_SIZE ":", ssl)) {
			x = strtoull(o + ssl, &end, 10);
			if (errno || *end || x < LAKECRYPT_MIN_SECTOR_SIZE ||
			    x > LAKECRYPT_MAX_SECTOR_SIZE || (x & (x - 1)))
				return -EINVAL;
			t->sector_size = (uint32_t)x;
		} else if (strcmp(o, LAKECRYPT_OPT_ALLOW_DISCARDS) &&
			   strcmp(o, LAKECRYPT_OPT_NO_READ_WORKQUEUE) &&
			   strcmp(o, LAKECRYPT_OPT_NO_WRITE_WORKQUEUE) &&
			   strcmp(o, LAKECRYPT_OPT_NO_INLINE_CRYPT) &&
			   strcmp(o, LAKECRYPT_OPT_SAME_CPU_CRYPT)) {
			return -EINVAL;
		}
	}
	return strtok_r(NULL, " ", &save) ? -EINVAL : 0;
}

/* The record of @d, checked against its header and its table.  NULL:
 * none usable (*@tried: a record exists, and @why says why it is not
 * taken).  @trusted false: the record directory failed its checks
 * (adopt_dir_trusted()), and no record is read. */
static struct lc_volume *adopt_from_record(struct agent *a, const struct lc_dm_device *d,
					   const char *uuid, bool trusted, uint32_t *keys,
					   bool *tried, char *why, size_t size)
{
	const struct lc_volume_backend *be = a->env.be;
	_cleanup_free_ char *params = NULL;
	struct lc_volume *v = NULL;
	struct lc_header *h;
	struct adopt_table t;
	struct lc_error e = { 0 };
	char path[PATH_MAX];
	const char *tdev;
	uint64_t len = 0;
	int r;

	*tried = false;
	if (!trusted) {
		snprintf(why, size, "no open record taken: %.300s", a->record_why);
		return NULL;
	}
	if (adopt_path(a, d->name, path, sizeof(path)) < 0) {
		snprintf(why, size, "no open record: its name has no record path");
		return NULL;
	}
	r = lc_volume_record_load(path, &v, &e);
	if (r == -ENOENT) {
		snprintf(why, size, "no open record");
		return NULL;
	}
	if (r < 0) {
		snprintf(why, size, "its open record is unusable: %.300s", e.msg);
		return NULL;
	}
	/* Of another volume (an open that found the name taken): not this
	 * mapping's record. */
	if (strcmp(v->name, d->name) || strcmp(v->uuid, uuid)) {
		snprintf(why, size, "no open record (%.200s is the record of volume %s)", path,
			 v->uuid);
		lc_volume_free(v);
		return NULL;
	}
	*tried = true;
	/* The table the kernel holds is the one this record's open made. */
	if (!be->dm_table) {
		snprintf(why, size, "its table cannot be read here");
		goto fail;
	}
	if (be->dm_table(a->env.be_ctx, d->name, &params, &len, &e) < 0) {
		snprintf(why, size, "its table: %.300s", e.msg);
		goto fail;
	}
	tdev = v->devno[0] ? v->devno : v->device;
	if (agent_adopt_parse_table(params, &t) < 0 || strcmp(t.volume_id, uuid)) {
		snprintf(why, size, "its table is not one of volume %s", uuid);
		goto fail;
	}
	if (strcmp(t.device, tdev) || t.offset != v->data_offset || strcmp(t.cipher, v->cipher) ||
	    t.key_size != v->key_size || t.segment_sectors != v->segment_sectors ||
	    t.sector_size != v->sector_size || t.ephemeral != (v->kind == LC_VOLUME_CACHE)) {
		snprintf(why, size, "its table (device %.60s) is not the one its record (device %.60s) opened",
			 t.device, tdev);
		goto fail;
	}
	if (v->kind == LC_VOLUME_CACHE) {
		*keys = v->segments;	/* random keys, all of them */
		return v;
	}
	h = adopt_header(v->header[0] ? v->header : v->device, why, size);
	if (!h || adopt_matches(h, v, keys, why, size) < 0) {
		lc_header_free(h);
		goto fail;
	}
	/* Who the volume belongs to, and under which CMK it is watched. */
	if (strcmp(h->workspace, v->workspace) || strcmp(h->project, v->project) ||
	    (h->cmk_id[0] && strcmp(h->cmk_id, v->cmk_id))) {
		snprintf(why, size,
			 "its header names workspace %.40s, project %.40s, CMK %.80s; its record %.40s, %.40s, %.80s",
			 h->workspace, h->project, h->cmk_id, v->workspace, v->project, v->cmk_id);
		lc_header_free(h);
		goto fail;
	}
	lc_header_free(h);
	return v;
fail:
	lc_volume_free(v);
	return NULL;
}

/* List @v as @rs; @cause: a SLOT_REVOKE_FAILED slot's cause and error. */
static void adopt_add(struct agent *a, struct lc_volume *v, enum slot_revoke rs,
		      const char *cause)
{
	struct vol_slot *s = calloc(1, sizeof(*s)), **t;

	agent_relock(a);
	t = s ? realloc(a->vols, (a->nvols + 1) * sizeof(*t)) : NULL;
	if (!t) {
		agent_unlock(a);
		lc_error_log("out of memory: /dev/mapper/%s is not listed", v->name);
		free(s);
		lc_volume_free(v);
		return;
	}
	a->vols = t;
	s->v = v;
	s->revoker = -1;
	s->rs = rs;
	if (cause) {
		snprintf(s->cause, sizeof(s->cause), "%s", cause);
		snprintf(s->error, sizeof(s->error), "%s", cause);
	}
	agent_slot_sid(s);	/* uuid-claim.c: what writers must not touch */
	a->vols[a->nvols++] = s;
	agent_unlock(a);
}

/*
 * Fail closed: the keys go ("key wipe all"; if the target refuses that,
 * "revoke", which wipes them too and fails every I/O: a cache loses its
 * data, which beats keys left loaded), then the mapping if nothing holds
 * it.  One in use stays listed: revoked once its keys are gone; else
 * SLOT_REVOKE_FAILED ("keys not wiped"), which the watcher's every round
 * and every admin revoke send "revoke" again (watch.c).
 */
static void adopt_refuse(struct agent *a, const struct lc_dm_device *d, const char *uuid,
			 const char *why)
{
	const struct lc_volume_backend *be = a->env.be;
	struct lc_error e = { 0 }, e2 = { 0 }, e3 = { 0 };
	struct lc_volume *v;
	struct lc_dm_status st;
	char detail[LC_ERROR_MSG_MAX + 128];
	const char *keys;
	bool wiped, revoked = false;
	int r;

	r = be->dm_message(a->env.be_ctx, d->name,
			   LAKECRYPT_MSG_KEY " " LAKECRYPT_MSG_KEY_WIPE " " LAKECRYPT_MSG_RANGE_ALL, &e);
	/* A revoked table has no key to wipe and refuses the message. */
	if (r < 0 && e.code == -EPERM)
		r = 0, revoked = true;
	if (r < 0) {
		lc_error_log("/dev/mapper/%s (volume %s): key wipe failed (%s): revoking it",
			     d->name, uuid, e.msg);
		r = be->dm_message(a->env.be_ctx, d->name, LAKECRYPT_MSG_REVOKE, &e3);
		/* Believed only once the kernel's status says so. */
		if (r == 0 && (be->dm_status(a->env.be_ctx, d->name, &st, &e3) < 0 ||
			       st.state != LC_DM_STATE_REVOKED))
			r = -EIO;
		if (r < 0)
			lc_error_log("/dev/mapper/%s (volume %s): revoke failed too (%s): its keys are NOT wiped",
				     d->name, uuid, e3.msg[0] ? e3.msg : "not revoked");
		else
			revoked = true;
	}
	wiped = r == 0;
	keys = !wiped ? "not wiped" : revoked ? "wiped (revoked)" : "wiped";
	if (be->dm_remove(a->env.be_ctx, d->name, &e2) == 0 || e2.code == -ENXIO) {
		lc_warn("/dev/mapper/%s (volume %s) not adopted: %s; keys %s, and removed",
			d->name, uuid, why, keys);
		snprintf(detail, sizeof(detail), "not adopted (%.300s): keys %s, mapping removed", why,
			 keys);
		adopt_audit(a, NULL, uuid, d->name, LC_AUDIT_FAILURE, detail);
		return;
	}
	lc_error_log("/dev/mapper/%s (volume %s) not adopted: %s; keys %s, but it is in use (%s): it stays, listed as %s; close it once unused",
		     d->name, uuid, why, keys, e2.msg, wiped ? "revoked" : "failed (revoke retried)");
	snprintf(detail, sizeof(detail), "not adopted (%.300s): keys %s, mapping in use, kept", why,
		 keys);
	adopt_audit(a, NULL, uuid, d->name, LC_AUDIT_FAILURE, detail);
	/* A name no volume can have stays out of the list (log and audit
	 * only); any other is listed so that status shows it. */
	v = strlen(d->name) < sizeof(v->name) ? calloc(1, sizeof(*v)) : NULL;
	if (!v)
		return;
	snprintf(v->name, sizeof(v->name), "%.*s", (int)sizeof(v->name) - 1, d->name);
	snprintf(v->uuid, sizeof(v->uuid), "%s", uuid);
	v->kind = LC_VOLUME_PROJECT;
	v->opened = (int64_t)time(NULL);
	if (wiped) {
		v->revoked = true;
		snprintf(v->revoke_cause, sizeof(v->revoke_cause),
			 "not adopted at agent start (%.150s): keys %s", why, keys);
		adopt_add(a, v, SLOT_REVOKED, NULL);
		return;
	}
	snprintf(detail, sizeof(detail), "not adopted at agent start (%.150s): keys not wiped", why);
	adopt_add(a, v, SLOT_REVOKE_FAILED, detail);
}

/* One mapping volumes.json does not list. */
static void adopt_one(struct agent *a, const struct lc_dm_device *d, bool trusted)
{
	const struct lc_volume_backend *be = a->env.be;
	const char *uuid = d->uuid + strlen(LC_DM_UUID_PREFIX);
	struct lc_volume *v = NULL;
	struct lc_dm_status st;
	struct lc_error e = { 0 };
	char why[LC_ERROR_MSG_MAX] = "";
	uint32_t keys = 0;
	bool tried = false;

	if (strlen(uuid) != LC_UUID_STR_LEN - 1 || lc_name_check("volume name", d->name, &e) < 0) {
		adopt_refuse(a, d, uuid, "its device-mapper name or uuid is not one a lakecrypt volume has");
		return;
	}
	/* Without a record nothing says whose it is: its device's header is
	 * not authenticated without the KEK, which needs the CMK it names. */
	v = adopt_from_record(a, d, uuid, trusted, &keys, &tried, why, sizeof(why));
	if (!v) {
		adopt_refuse(a, d, uuid, why);
		return;
	}
	/* Only a complete open is kept: one that died before its last key
	 * load is undone, and opened again by whoever retries it. */
	if (be->dm_status(a->env.be_ctx, d->name, &st, &e) < 0) {
		snprintf(why, sizeof(why), "its status: %.300s", e.msg);
	} else if (st.state == LC_DM_STATE_REVOKED) {
		v->revoked = true;
		snprintf(v->revoke_cause, sizeof(v->revoke_cause), "revoked before the agent restarted");
	} else if (st.keys_loaded < keys) {
		snprintf(why, sizeof(why), "its open did not finish (%" PRIu32 " of %" PRIu32 " keys loaded)",
			 st.keys_loaded, keys);
	}
	if (why[0] && !v->revoked) {
		lc_volume_free(v);
		adopt_refuse(a, d, uuid, why);
		return;
	}
	/* The crash may have come in udev's wait (or in its suspend). */
	if (!v->revoked && be->dm_announce && be->dm_announce(a->env.be_ctx, d->name, &e) < 0)
		lc_warn("/dev/mapper/%s: announcing it to udev again failed: %s", d->name, e.msg);
	lc_warn("adopted /dev/mapper/%s (volume %s, workspace %s, CMK %s) from its open record: it is watched and can be revoked and closed; re-wrap needs a new open",
		d->name, uuid, v->workspace, v->cmk_id);
	adopt_audit(a, v, uuid, v->device, LC_AUDIT_SUCCESS, "adopted from its open record");
	adopt_add(a, v, v->revoked ? SLOT_REVOKED : SLOT_LIVE, NULL);
}

/*
 * May the records in a->record_dir be believed?  The runtime directory
 * and opening/ must be directories (not symbolic links) owned by the
 * agent's effective uid, writable by no group or other (as sshd's
 * StrictModes): else anyone who can write there could forge the record
 * that says whose keyed mapping it is.  false with a->record_why.
 */
static bool adopt_dir_trusted(struct agent *a)
{
	char dir[PATH_MAX], *slash;
	const char *paths[2];
	struct stat st;

	snprintf(dir, sizeof(dir), "%s", a->runtime_path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir)
		*slash = '\0';
	else
		snprintf(dir, sizeof(dir), slash ? "/" : ".");
	paths[0] = dir;
	paths[1] = a->record_dir;
	a->record_why[0] = '\0';
	for (int i = 0; i < 2; i++) {
		if (lstat(paths[i], &st) < 0)
			snprintf(a->record_why, sizeof(a->record_why), "%.150s: %s", paths[i],
				 strerror(errno));
		else if (!S_ISDIR(st.st_mode))
			snprintf(a->record_why, sizeof(a->record_why), "%.150s is not a directory",
				 paths[i]);
		else if (st.st_uid != geteuid())
			snprintf(a->record_why, sizeof(a->record_why),
				 "%.150s is owned by uid %u, not the agent's %u", paths[i],
				 (unsigned int)st.st_uid, (unsigned int)geteuid());
		else if (st.st_mode & (S_IWGRP | S_IWOTH))
			snprintf(a->record_why, sizeof(a->record_why),
				 "%.150s is writable by group or others (mode %04o)", paths[i],
				 (unsigned int)(st.st_mode & 07777));
		if (a->record_why[0]) {
			lc_error_log("open records are not trusted: %s; unknown lakecrypt mappings fail closed (fix the directory's owner and mode)",
				     a->record_why);
			return false;
		}
	}
	return true;
}

const char *agent_proc_misc = "/proc/misc";

/* Does the running kernel have device-mapper?  Its control node is the
 * misc device "device-mapper" (drivers/md/dm-ioctl.c), listed in
 * /proc/misc whether dm_mod is a module or built in.  true if unknown. */
static bool adopt_kernel_has_dm(void)
{
	char line[128];
	bool found = false;
	FILE *f = fopen(agent_proc_misc, "re");

	if (!f)
		return true;
	while (!found && fgets(line, sizeof(line), f)) {
		size_t n = strcspn(line, "\n");

		line[n] = '\0';
		found = n >= 14 && !strcmp(line + n - 14, " device-mapper");
	}
	fclose(f);
	return found;
}

int agent_adopt_mappings(struct agent *a, struct lc_error *err)
{
	const struct lc_volume_backend *be = a->env.be;
	_cleanup_free_ struct lc_dm_device *devs = NULL;
	struct lc_error e = { 0 };
	size_t ndev = 0;
	DIR *dir;
	struct dirent *de;
	bool saved, trusted;
	int r = -EIO;

	for (int i = 0; i < AGENT_ADOPT_LIST_TRIES; i++) {
		if (i)
			nanosleep(&(struct timespec){ .tv_nsec = AGENT_ADOPT_LIST_GAP_MS * 1000000L },
				  NULL);
		free(devs);
		devs = NULL;
		ndev = 0;
		r = be->dm_list(a->env.be_ctx, &devs, &ndev, &e);
		if (r >= 0)
			break;
		lc_warn("lakecrypt mappings cannot be listed (try %d of %d): %s", i + 1,
			AGENT_ADOPT_LIST_TRIES, e.msg);
	}
	/* No device-mapper in this kernel: no mapping can exist to watch
	 * (and no open will work until it is loaded). */
	if (r == -ENODEV && !adopt_kernel_has_dm()) {
		lc_warn("the kernel has no device-mapper (%s lists none): no mapping to adopt",
			agent_proc_misc);
		return 0;
	}
	if (r < 0)
		return lc_err(err, r, LC_ERRC_INTERNAL,
			      "lakecrypt mappings cannot be listed (%s): not starting, since a keyed mapping would go unwatched (open records kept)",
			      e.msg);
	trusted = adopt_dir_trusted(a);
	for (size_t i = 0; i < ndev; i++) {
		const char *uuid = devs[i].uuid + strlen(LC_DM_UUID_PREFIX);
		struct vol_slot *s = agent_volume(a, devs[i].name);

		if (s && !strcmp(s->v->uuid, uuid))
			continue;	/* listed in volumes.json */
		adopt_one(a, &devs[i], trusted);
	}
	/* Every record is now in volumes.json or its mapping is gone.  In a
	 * directory not trusted, nothing is touched. */
	saved = agent_volumes_save(a, NULL) == 0;
	if (!saved || !trusted || !(dir = opendir(a->record_dir)))
		return 0;
	while ((de = readdir(dir))) {
		char path[PATH_MAX];

		/* Records, and temp files of an interrupted record write. */
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
		    snprintf(path, sizeof(path), "%s/%s", a->record_dir, de->d_name) >=
		    (int)sizeof(path))
			continue;
		if (unlink(path) < 0)
			lc_warn("%s: %s", path, strerror(errno));
	}
	closedir(dir);
	return 0;
}
