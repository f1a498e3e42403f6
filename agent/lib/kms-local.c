// SPDX-License-Identifier: GPL-2.0
/*
 * The embedded local KMS (see kms-local.h for the store layout, the state
 * machine and the blob format).  Metadata is JSON (json-c) and holds no
 * secret; key material is read with read(2) straight into locked memory
 * and never passes through json-c or stdio buffers.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "kms-local.h"

#define KMS_MAGIC		"LCK1"
#define KMS_KEY_LEN		32
#define KMS_NONCE_LEN		12
#define KMS_TAG_LEN		16
#define KMS_HDR_LEN		(4 + 1 + LC_KMS_LOCAL_ID_LEN + 4)
#define KMS_META_MAX		(64 * 1024)
#define KMS_FORMAT		1
#define KMS_QUARANTINE		"quarantine"
#define KMS_ELAPSED_FILE	".elapsed"
#define LEGACY_MIN_WAIT_S	(7 * 86400)	/* the shortest deletion window */

struct lc_kms_local {
	char *dir;
	int dirfd;
	int lockfd;
	pthread_rwlock_t rw;		/* threads of this process */
	int64_t (*now)(void *arg);
	void *now_arg;
	int64_t (*uptime)(void *arg);	/* CLOCK_BOOTTIME seconds unless a test sets it */
	void *uptime_arg;
	int64_t elapsed_base;		/* store's accumulated uptime at open (s) */
	int64_t uptime_at_open;
	unsigned int quarantined;	/* files moved aside since open */
	unsigned int fail_at;		/* test fault injection */
	unsigned int steps;
};

/* ---- helpers ---------------------------------------------------------- */

static int64_t kms_now(const struct lc_kms_local *k)
{
	return k->now ? k->now(k->now_arg) : (int64_t)time(NULL);
}

void lc_kms_local_set_clock(struct lc_kms_local *k, int64_t (*now)(void *arg), void *arg)
{
	k->now = now;
	k->now_arg = arg;
}

static int64_t kms_uptime(const struct lc_kms_local *k)
{
	struct timespec ts;

	if (k->uptime)
		return k->uptime(k->uptime_arg);
	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (int64_t)ts.tv_sec;
}

/* Seconds this store has been open, summed over every run: no clock
 * setting moves it (CLOCK_BOOTTIME), and it only ever grows. */
static int64_t kms_elapsed(const struct lc_kms_local *k)
{
	int64_t d = kms_uptime(k) - k->uptime_at_open;

	return k->elapsed_base + (d > 0 ? d : 0);
}

void lc_kms_local_set_uptime(struct lc_kms_local *k, int64_t (*uptime)(void *arg), void *arg)
{
	int64_t e = kms_elapsed(k);

	k->uptime = uptime;
	k->uptime_arg = arg;
	k->elapsed_base = e;
	k->uptime_at_open = kms_uptime(k);
}

int64_t lc_kms_local_elapsed(const struct lc_kms_local *k)
{
	return kms_elapsed(k);
}

void lc_kms_local_fail_io_at(struct lc_kms_local *k, unsigned int n)
{
	k->fail_at = n;
	k->steps = 0;
}

unsigned int lc_kms_local_io_steps(const struct lc_kms_local *k)
{
	return k->steps;
}

/* Count one file-system step; true if the test asked it to fail. */
static bool io_fault(struct lc_kms_local *k)
{
	k->steps++;
	if (k->fail_at && k->steps == k->fail_at) {
		errno = EIO;
		return true;
	}
	return false;
}

static bool valid_key_id(const char *id)
{
	if (!id || strlen(id) != LC_KMS_LOCAL_ID_LEN || strncmp(id, LC_KMS_LOCAL_ID_PREFIX, 3))
		return false;
	for (const char *c = id + 3; *c; c++)
		if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
			return false;
	return true;
}

static int check_key_id(const struct lc_kms_local *k, const char *id, struct lc_error *err)
{
	if (!valid_key_id(id))
		return lc_err(err, -ENOENT, LC_ERRC_MISCONFIG,
			      "NotFound: '%.64s' is not a local KMS key id (expected lk- and 32 hex digits) in %s",
			      id ? id : "", k->dir);
	return 0;
}

static const char *state_str(enum lc_key_state st)
{
	return lc_key_state_name(st);
}

static enum lc_key_state parse_state(const char *s)
{
	static const enum lc_key_state all[] = { LC_KEY_ENABLED, LC_KEY_DISABLED,
		LC_KEY_PENDING_DELETION, LC_KEY_DESTROYED };

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (!strcmp(s, lc_key_state_name(all[i])))
			return all[i];
	return LC_KEY_UNKNOWN;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int fs_err(const struct lc_kms_local *k, struct lc_error *err, int e, const char *what,
		  const char *name)
{
	return lc_err(err, -e, LC_ERRC_INTERNAL, "local KMS: cannot %s %s/%s: %s",
		      what, k->dir, name, strerror(e));
}

/*
 * Write @name atomically: temp file (0600), fsync, rename over @name,
 * fsync the directory.  On failure nothing is left behind and @name is
 * unchanged.  A failing directory fsync after the rename is only logged:
 * the new file is in place and visible.
 */
static int write_atomic(struct lc_kms_local *k, const char *name, const void *data, size_t len,
			struct lc_error *err)
{
	char tmp[128];
	uint32_t rnd = 0;
	int fd = -1, e;

	(void)RAND_bytes((unsigned char *)&rnd, sizeof(rnd));
	snprintf(tmp, sizeof(tmp), ".tmp.%s.%08x", name, rnd);
	if (io_fault(k))
		return fs_err(k, err, errno, "create", tmp);
	fd = openat(k->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return fs_err(k, err, errno, "create", tmp);
	if (io_fault(k) || fchmod(fd, 0600) || write_all(fd, data, len)) {
		e = errno;
		goto fail;
	}
	if (io_fault(k) || fsync(fd)) {
		e = errno;
		goto fail;
	}
	close(fd);
	fd = -1;
	if (io_fault(k) || renameat(k->dirfd, tmp, k->dirfd, name)) {
		e = errno;
		goto fail;
	}
	if (io_fault(k) || fsync(k->dirfd))
		lc_warn("local KMS: fsync of %s failed after writing %s: %s", k->dir, name,
			strerror(errno));
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	unlinkat(k->dirfd, tmp, 0);
	return fs_err(k, err, e, "write", name);
}

/* Overwrite @name with zeros, fsync, unlink, fsync the directory. */
static int shred_file(struct lc_kms_local *k, const char *name, struct lc_error *err)
{
	static const uint8_t zero[4096];
	struct stat st;
	int fd, e;

	if (io_fault(k))
		return fs_err(k, err, errno, "erase", name);
	fd = openat(k->dirfd, name, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT ? 0 : fs_err(k, err, errno, "erase", name);
	if (fstat(fd, &st)) {
		e = errno;
		close(fd);
		return fs_err(k, err, e, "erase", name);
	}
	for (off_t off = 0; off < st.st_size; off += (off_t)sizeof(zero)) {
		size_t n = st.st_size - off < (off_t)sizeof(zero) ? (size_t)(st.st_size - off) : sizeof(zero);

		if (write_all(fd, zero, n)) {
			e = errno;
			close(fd);
			return fs_err(k, err, e, "erase", name);
		}
	}
	if (io_fault(k) || fsync(fd)) {
		e = errno;
		close(fd);
		return fs_err(k, err, e, "erase", name);
	}
	close(fd);
	if (io_fault(k) || unlinkat(k->dirfd, name, 0))
		return fs_err(k, err, errno, "remove", name);
	if (io_fault(k) || fsync(k->dirfd))
		lc_warn("local KMS: fsync of %s failed after erasing %s: %s", k->dir, name,
			strerror(errno));
	return 0;
}

static void meta_name(char *buf, size_t len, const char *id)
{
	snprintf(buf, len, "%s.json", id);
}

static void material_name(char *buf, size_t len, const char *id, uint32_t version)
{
	snprintf(buf, len, "%s.v%" PRIu32 ".key", id, version);
}

/* ---- locking ---------------------------------------------------------- */

static void lock_shared(struct lc_kms_local *k)
{
	pthread_rwlock_rdlock(&k->rw);
	while (flock(k->lockfd, LOCK_SH) && errno == EINTR)
		;
}

static void lock_excl(struct lc_kms_local *k)
{
	pthread_rwlock_wrlock(&k->rw);
	while (flock(k->lockfd, LOCK_EX) && errno == EINTR)
		;
}

static void unlock(struct lc_kms_local *k)
{
	flock(k->lockfd, LOCK_UN);
	pthread_rwlock_unlock(&k->rw);
}

/* ---- metadata --------------------------------------------------------- */

static int check_file_mode(const struct lc_kms_local *k, int fd, const char *name,
			   struct lc_error *err)
{
	struct stat st;

	if (fstat(fd, &st))
		return fs_err(k, err, errno, "stat", name);
	if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077))
		return lc_err(err, -EPERM, LC_ERRC_MISCONFIG,
			      "local KMS: %s/%s must be a regular file owned by uid %u with mode 0600 (it is %04o, uid %u)",
			      k->dir, name, (unsigned int)geteuid(), (unsigned int)(st.st_mode & 07777),
			      (unsigned int)st.st_uid);
	return 0;
}

static int64_t jint(struct json_object *o, const char *key, bool *ok)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int)) {
		*ok = false;
		return 0;
	}
	return json_object_get_int64(v);
}

static const char *jstr(struct json_object *o, const char *key, bool *ok)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string)) {
		*ok = false;
		return "";
	}
	return json_object_get_string(v);
}

/* Read the metadata of @id.  -ENOENT/MISCONFIG if there is no such key. */
static int load_meta(const struct lc_kms_local *k, const char *id, struct lc_kms_key_info *m,
		     struct lc_error *err)
{
	char name[64], *buf = NULL;
	struct json_object *o = NULL;
	ssize_t n;
	size_t len = 0;
	int fd, r;
	bool ok = true;

	r = check_key_id(k, id, err);
	if (r)
		return r;
	meta_name(name, sizeof(name), id);
	fd = openat(k->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT)
			return lc_err(err, -ENOENT, LC_ERRC_MISCONFIG,
				      "NotFound: no key %s in the local KMS at %s", id, k->dir);
		return fs_err(k, err, errno, "open", name);
	}
	r = check_file_mode(k, fd, name, err);
	if (r)
		goto out;
	buf = malloc(KMS_META_MAX + 1);
	if (!buf) {
		r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
		goto out;
	}
	while (len < KMS_META_MAX && (n = read(fd, buf + len, KMS_META_MAX - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = fs_err(k, err, errno, "read", name);
			goto out;
		}
		len += (size_t)n;
	}
	buf[len] = '\0';
	o = json_tokener_parse(buf);
	if (!o || !json_object_is_type(o, json_type_object)) {
		r = lc_err(err, -EUCLEAN, LC_ERRC_MISCONFIG,
			   "local KMS: %s/%s is not valid key metadata (JSON)", k->dir, name);
		goto out;
	}
	memset(m, 0, sizeof(*m));
	if (jint(o, "format", &ok) != KMS_FORMAT)
		ok = false;
	snprintf(m->key_id, sizeof(m->key_id), "%s", jstr(o, "key_id", &ok));
	snprintf(m->description, sizeof(m->description), "%s", jstr(o, "description", &ok));
	m->state = parse_state(jstr(o, "state", &ok));
	m->created = jint(o, "created", &ok);
	m->updated = jint(o, "updated", &ok);
	m->deletion_date = jint(o, "deletion_date", &ok);
	{
		bool have = true;	/* absent in stores of before the elapsed clock */

		m->deletion_elapsed = jint(o, "deletion_elapsed", &have);
	}
	{
		struct json_object *pd;	/* absent in stores of before key policies */

		m->policy_deny = json_object_object_get_ex(o, "policy_deny", &pd) &&
				 json_object_get_boolean(pd);
	}
	m->primary_version = (uint32_t)jint(o, "primary_version", &ok);
	m->versions = (uint32_t)jint(o, "versions", &ok);
	if (!ok || strcmp(m->key_id, id) || m->state == LC_KEY_UNKNOWN || m->versions < 1 ||
	    m->versions > LC_KMS_LOCAL_MAX_VERSIONS || m->primary_version < 1 ||
	    m->primary_version > m->versions) {
		r = lc_err(err, -EUCLEAN, LC_ERRC_MISCONFIG,
			   "local KMS: %s/%s has missing or inconsistent fields", k->dir, name);
		goto out;
	}
	r = 0;
out:
	json_object_put(o);
	free(buf);
	close(fd);
	return r;
}

/*
 * A pending key is destroyed, whether or not purged yet, once both its
 * wall-clock date and its elapsed-time date have passed: a clock set
 * forward alone destroys nothing.  A key without an elapsed date (scheduled
 * before there was one) gets one at the next purge and stays pending until
 * then.
 */
static enum lc_key_state effective_state(const struct lc_kms_local *k,
					 const struct lc_kms_key_info *m)
{
	if (m->state == LC_KEY_PENDING_DELETION && kms_now(k) >= m->deletion_date &&
	    m->deletion_elapsed > 0 && kms_elapsed(k) >= m->deletion_elapsed)
		return LC_KEY_DESTROYED;
	return m->state;
}

static int save_meta(struct lc_kms_local *k, const struct lc_kms_key_info *m,
		     struct lc_error *err)
{
	struct json_object *o = json_object_new_object();
	const char *s;
	char name[64];
	int r;

	if (!o)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	json_object_object_add(o, "format", json_object_new_int(KMS_FORMAT));
	json_object_object_add(o, "key_id", json_object_new_string(m->key_id));
	json_object_object_add(o, "description", json_object_new_string(m->description));
	json_object_object_add(o, "state", json_object_new_string(state_str(m->state)));
	json_object_object_add(o, "created", json_object_new_int64(m->created));
	json_object_object_add(o, "updated", json_object_new_int64(m->updated));
	json_object_object_add(o, "deletion_date", json_object_new_int64(m->deletion_date));
	json_object_object_add(o, "deletion_elapsed", json_object_new_int64(m->deletion_elapsed));
	if (m->policy_deny)
		json_object_object_add(o, "policy_deny", json_object_new_boolean(1));
	json_object_object_add(o, "primary_version", json_object_new_int64(m->primary_version));
	json_object_object_add(o, "versions", json_object_new_int64(m->versions));
	s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
	meta_name(name, sizeof(name), m->key_id);
	if (!s)
		r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	else
		r = write_atomic(k, name, s, strlen(s), err);
	json_object_put(o);
	return r;
}

/* ---- material --------------------------------------------------------- */

static int new_material(struct lc_kms_local *k, const char *id, uint32_t version,
			struct lc_error *err)
{
	_cleanup_secret_ struct lc_secret key = { 0 };
	char name[64];
	int r;

	if (lc_secret_alloc(&key, KMS_KEY_LEN))
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "cannot allocate key memory");
	r = lc_rand_bytes(key.p, KMS_KEY_LEN, true, "CMK material", err);
	if (r)
		return r;
	material_name(name, sizeof(name), id, version);
	return write_atomic(k, name, key.p, KMS_KEY_LEN, err);
}

static int load_material(const struct lc_kms_local *k, const char *id, uint32_t version,
			 struct lc_secret *key, struct lc_error *err)
{
	char name[64];
	ssize_t n;
	uint8_t extra;
	int fd, r;

	material_name(name, sizeof(name), id, version);
	fd = openat(k->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return lc_err(err, -errno, LC_ERRC_INTERNAL,
			      "local KMS: key material %s/%s is missing or unreadable: %s",
			      k->dir, name, strerror(errno));
	r = check_file_mode(k, fd, name, err);
	if (!r && lc_secret_alloc(key, KMS_KEY_LEN))
		r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "cannot allocate key memory");
	if (!r) {
		n = read(fd, key->p, KMS_KEY_LEN);
		if (n != KMS_KEY_LEN || read(fd, &extra, 1) != 0) {
			lc_secret_free(key);
			r = lc_err(err, -EUCLEAN, LC_ERRC_INTERNAL,
				   "local KMS: key material %s/%s is not %d bytes", k->dir, name,
				   KMS_KEY_LEN);
		}
	}
	close(fd);
	return r;
}

/* ---- open / close / cleanup ------------------------------------------- */

static int destroy_locked(struct lc_kms_local *k, struct lc_kms_key_info *m,
			  struct lc_error *err);

static bool parse_material_name(const char *name, char id[LC_KMS_LOCAL_ID_LEN + 1],
				uint32_t *version)
{
	char *end;
	unsigned long v;

	if (strlen(name) < LC_KMS_LOCAL_ID_LEN + 6 || name[LC_KMS_LOCAL_ID_LEN] != '.' ||
	    name[LC_KMS_LOCAL_ID_LEN + 1] != 'v')
		return false;
	memcpy(id, name, LC_KMS_LOCAL_ID_LEN);
	id[LC_KMS_LOCAL_ID_LEN] = '\0';
	if (!valid_key_id(id))
		return false;
	errno = 0;
	v = strtoul(name + LC_KMS_LOCAL_ID_LEN + 2, &end, 10);
	if (errno || strcmp(end, ".key") || v < 1 || v > UINT32_MAX)
		return false;
	*version = (uint32_t)v;
	return true;
}

/*
 * Move @name into quarantine/ (0700, made on first use) under a name that
 * cannot collide.  Nothing is erased: an operator looks at it and decides.
 */
static int quarantine(struct lc_kms_local *k, const char *name, const char *why,
		      struct lc_error *err)
{
	char dst[512];

	if (mkdirat(k->dirfd, KMS_QUARANTINE, 0700) && errno != EEXIST)
		return fs_err(k, err, errno, "create", KMS_QUARANTINE);
	snprintf(dst, sizeof(dst), KMS_QUARANTINE "/%.200s.%" PRId64 ".%u", name, kms_now(k),
		 k->quarantined);
	if (io_fault(k) || renameat2(k->dirfd, name, k->dirfd, dst, RENAME_NOREPLACE))
		return fs_err(k, err, errno, "quarantine", name);
	if (fsync(k->dirfd))
		lc_warn("local KMS: fsync of %s failed after quarantining %s: %s", k->dir, name,
			strerror(errno));
	k->quarantined++;
	lc_warn("local KMS: moved %s/%s to %s/%s (%s); nothing was erased: inspect it, then delete it or move it back",
		k->dir, name, k->dir, dst, why);
	return 0;
}

/* The store's accumulated uptime, kept across runs in KMS_ELAPSED_FILE.
 * Unreadable counts as 0: destruction only comes later. */
static void load_elapsed(struct lc_kms_local *k)
{
	char buf[32] = "";
	ssize_t n;
	long long v;
	char *end;
	int fd = openat(k->dirfd, KMS_ELAPSED_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	k->elapsed_base = 0;
	k->uptime_at_open = kms_uptime(k);
	if (fd < 0) {
		if (errno != ENOENT)
			lc_warn("local KMS: cannot read %s/%s: %s; elapsed time starts at 0",
				k->dir, KMS_ELAPSED_FILE, strerror(errno));
		return;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	errno = 0;
	v = strtoll(buf, &end, 10);
	if (n <= 0 || errno || end == buf || (*end && *end != '\n') || v < 0) {
		lc_warn("local KMS: %s/%s is not a number of seconds; elapsed time starts at 0",
			k->dir, KMS_ELAPSED_FILE);
		return;
	}
	k->elapsed_base = v;
}

static int save_elapsed(struct lc_kms_local *k, struct lc_error *err)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%" PRId64 "\n", kms_elapsed(k));

	return write_atomic(k, KMS_ELAPSED_FILE, buf, (size_t)n, err);
}

/*
 * Under the exclusive lock.  Temp files of interrupted writes, material no
 * metadata names (interrupted create/rotate, or metadata lost) and
 * material of versions the metadata does not have go to quarantine/, never
 * erased.  Material of a destroyed key is quarantined at open (@purge
 * false: nothing is erased at start-up) and erased by a purge (it finishes
 * an interrupted destroy).  A purge also destroys the keys whose deletion
 * dates have both passed (effective_state) and gives an elapsed date to
 * pending keys that lack one.
 */
static int cleanup_locked(struct lc_kms_local *k, bool purge, unsigned int *purged,
			  struct lc_error *err)
{
	struct lc_kms_key_info m;
	struct dirent *de;
	DIR *d;
	int fd, r = 0;

	if (purged)
		*purged = 0;
	fd = dup(k->dirfd);
	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return fs_err(k, err, errno, "list", ".");
	}
	rewinddir(d);	/* the dup shares the directory offset */
	while ((de = readdir(d))) {
		char id[LC_KMS_LOCAL_ID_LEN + 1];
		uint32_t v;
		size_t nl = strlen(de->d_name);

		if (!strncmp(de->d_name, ".tmp.", 5)) {
			r = quarantine(k, de->d_name, "left by an interrupted write", err);
		} else if (parse_material_name(de->d_name, id, &v)) {
			int lr = load_meta(k, id, &m, NULL);

			if (lr == -ENOENT)
				r = quarantine(k, de->d_name, "no key metadata names it", err);
			else if (!lr && v > m.versions)
				r = quarantine(k, de->d_name, "a version the key's metadata does not have",
					       err);
			else if (!lr && m.state == LC_KEY_DESTROYED && !purge)
				r = quarantine(k, de->d_name, "material of a destroyed key", err);
			else if (!lr && m.state == LC_KEY_DESTROYED)
				r = shred_file(k, de->d_name, err);
		} else if (purge && nl == LC_KMS_LOCAL_ID_LEN + 5 && !strcmp(de->d_name + LC_KMS_LOCAL_ID_LEN, ".json")) {
			memcpy(id, de->d_name, LC_KMS_LOCAL_ID_LEN);
			id[LC_KMS_LOCAL_ID_LEN] = '\0';
			if (load_meta(k, id, &m, NULL) || m.state != LC_KEY_PENDING_DELETION)
				continue;
			if (!m.deletion_elapsed) {
				/* Scheduled by a version without the elapsed clock:
				 * the wall clock alone cannot be trusted (it may have
				 * been set forward before this start), so such a key
				 * waits at least the shortest deletion window (7
				 * days) of elapsed time from now. */
				int64_t left = m.deletion_date - kms_now(k);

				if (left < LEGACY_MIN_WAIT_S)
					left = LEGACY_MIN_WAIT_S;
				m.deletion_elapsed = kms_elapsed(k) + left;
				r = save_meta(k, &m, err);
			} else if (effective_state(k, &m) == LC_KEY_DESTROYED) {
				r = destroy_locked(k, &m, err);
				if (!r && purged)
					(*purged)++;
			}
		}
		if (r)
			break;
	}
	closedir(d);
	return r;
}

int lc_kms_local_open(struct lc_kms_local **kms, const char *state_dir, struct lc_error *err)
{
	struct lc_kms_local *k;
	struct stat st;
	int r;

	*kms = NULL;
	if (!state_dir || !*state_dir)
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG, "local KMS: no state directory given");
	if (mkdir(state_dir, 0700) && errno != EEXIST)
		return lc_err(err, -errno, LC_ERRC_MISCONFIG,
			      "local KMS: cannot create state directory %s: %s", state_dir,
			      strerror(errno));
	k = calloc(1, sizeof(*k));
	if (!k)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	k->lockfd = -1;
	k->dir = strdup(state_dir);
	pthread_rwlock_init(&k->rw, NULL);
	k->dirfd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (!k->dir || k->dirfd < 0) {
		r = lc_err(err, k->dir ? -errno : -ENOMEM, LC_ERRC_MISCONFIG,
			   "local KMS: cannot open state directory %s: %s", state_dir,
			   strerror(errno));
		goto fail;
	}
	if (fstat(k->dirfd, &st)) {
		r = lc_err(err, -errno, LC_ERRC_MISCONFIG, "local KMS: cannot stat %s: %s",
			   state_dir, strerror(errno));
		goto fail;
	}
	if (st.st_uid != geteuid() || (st.st_mode & 077)) {
		r = lc_err(err, -EPERM, LC_ERRC_MISCONFIG,
			   "local KMS: state directory %s must be owned by uid %u with mode 0700 (it is %04o, uid %u)",
			   state_dir, (unsigned int)geteuid(), (unsigned int)(st.st_mode & 07777),
			   (unsigned int)st.st_uid);
		goto fail;
	}
	k->lockfd = openat(k->dirfd, ".lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (k->lockfd < 0) {
		r = fs_err(k, err, errno, "open", ".lock");
		goto fail;
	}
	lock_excl(k);
	load_elapsed(k);
	r = cleanup_locked(k, false, NULL, err);
	unlock(k);
	if (r)
		goto fail;
	*kms = k;
	return 0;
fail:
	lc_kms_local_close(k);
	return r;
}

void lc_kms_local_close(struct lc_kms_local *k)
{
	struct lc_error e;

	if (!k)
		return;
	if (k->lockfd >= 0) {
		lock_excl(k);
		if (save_elapsed(k, &e))
			lc_warn("%s", e.msg);
		unlock(k);
	}
	if (k->lockfd >= 0)
		close(k->lockfd);
	if (k->dirfd >= 0)
		close(k->dirfd);
	pthread_rwlock_destroy(&k->rw);
	free(k->dir);
	free(k);
}

int lc_kms_local_quarantined(struct lc_kms_local *k, unsigned int *n, struct lc_error *err)
{
	struct dirent *de;
	DIR *d;
	int fd;

	*n = 0;
	lock_shared(k);
	fd = openat(k->dirfd, KMS_QUARANTINE, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		unlock(k);
		return errno == ENOENT ? 0 : fs_err(k, err, errno, "list", KMS_QUARANTINE);
	}
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		unlock(k);
		return fs_err(k, err, errno, "list", KMS_QUARANTINE);
	}
	while ((de = readdir(d)))
		*n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	closedir(d);
	unlock(k);
	return 0;
}

int lc_kms_local_purge(struct lc_kms_local *k, unsigned int *n, struct lc_error *err)
{
	int r;

	lock_excl(k);
	r = cleanup_locked(k, true, n, err);
	if (!r)
		r = save_elapsed(k, err);
	unlock(k);
	return r;
}

/* ---- administration --------------------------------------------------- */

int lc_kms_local_create(struct lc_kms_local *k, const char *description,
			struct lc_kms_key_info *info, struct lc_error *err)
{
	static const char hex[] = "0123456789abcdef";
	struct lc_kms_key_info m = { 0 };
	uint8_t rnd[16];
	char name[64];
	int r;

	if (!description)
		description = "";
	if (strlen(description) > LC_KMS_LOCAL_DESC_MAX)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "key description is %zu bytes: at most %d expected",
			      strlen(description), LC_KMS_LOCAL_DESC_MAX);
	for (const unsigned char *c = (const unsigned char *)description; *c; c++)
		if (*c < 0x20 || *c == 0x7f)
			return lc_err(err, -EINVAL, LC_ERRC_INVALID,
				      "key description contains a control character");
	r = lc_rand_bytes(rnd, sizeof(rnd), false, "a key id", err);
	if (r)
		return r;
	strcpy(m.key_id, LC_KMS_LOCAL_ID_PREFIX);
	for (size_t i = 0; i < sizeof(rnd); i++) {
		m.key_id[3 + 2 * i] = hex[rnd[i] >> 4];
		m.key_id[4 + 2 * i] = hex[rnd[i] & 0xf];
	}
	snprintf(m.description, sizeof(m.description), "%s", description);
	m.state = LC_KEY_ENABLED;
	m.created = m.updated = kms_now(k);
	m.primary_version = m.versions = 1;

	lock_excl(k);
	r = new_material(k, m.key_id, 1, err);
	if (!r) {
		r = save_meta(k, &m, err);
		if (r) {
			material_name(name, sizeof(name), m.key_id, 1);
			(void)shred_file(k, name, NULL);
		}
	}
	unlock(k);
	if (!r && info)
		*info = m;
	return r;
}

int lc_kms_local_describe(struct lc_kms_local *k, const char *key_id,
			  struct lc_kms_key_info *info, struct lc_error *err)
{
	struct lc_kms_key_info m;
	int r;

	lock_shared(k);
	r = load_meta(k, key_id, &m, err);
	unlock(k);
	if (r)
		return r;
	m.state = effective_state(k, &m);
	*info = m;
	return 0;
}

static int cmp_info(const void *a, const void *b)
{
	const struct lc_kms_key_info *x = a, *y = b;

	if (x->created != y->created)
		return x->created < y->created ? -1 : 1;
	return strcmp(x->key_id, y->key_id);
}

int lc_kms_local_list(struct lc_kms_local *k, struct lc_kms_key_info **keys, size_t *n,
		      struct lc_error *err)
{
	struct lc_kms_key_info *v = NULL, *nv;
	size_t cnt = 0, cap = 0;
	struct dirent *de;
	DIR *d;
	int fd, r = 0;

	*keys = NULL;
	*n = 0;
	lock_shared(k);
	fd = dup(k->dirfd);
	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		r = fs_err(k, err, errno, "list", ".");
		goto out;
	}
	rewinddir(d);
	while ((de = readdir(d))) {
		char id[LC_KMS_LOCAL_ID_LEN + 1];

		if (strlen(de->d_name) != LC_KMS_LOCAL_ID_LEN + 5 ||
		    strcmp(de->d_name + LC_KMS_LOCAL_ID_LEN, ".json"))
			continue;
		memcpy(id, de->d_name, LC_KMS_LOCAL_ID_LEN);
		id[LC_KMS_LOCAL_ID_LEN] = '\0';
		if (!valid_key_id(id))
			continue;
		if (cnt == cap) {
			cap = cap ? 2 * cap : 16;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
				break;
			}
			v = nv;
		}
		r = load_meta(k, id, &v[cnt], err);
		if (r)
			break;
		v[cnt].state = effective_state(k, &v[cnt]);
		cnt++;
	}
	closedir(d);
out:
	unlock(k);
	if (r) {
		free(v);
		return r;
	}
	if (cnt)
		qsort(v, cnt, sizeof(*v), cmp_info);
	*keys = v;
	*n = cnt;
	return 0;
}

static int refuse(struct lc_error *err, const char *op, const struct lc_kms_key_info *m,
		  enum lc_key_state st, const char *need)
{
	return lc_err(err, -EPERM, LC_ERRC_INVALID,
		      "KMSInvalidState: cannot %s key %s: it is %s; %s", op, m->key_id,
		      state_str(st), need);
}

enum admin_op { OP_DISABLE, OP_ENABLE, OP_ROTATE, OP_SCHEDULE, OP_CANCEL, OP_DESTROY, OP_DENY,
		OP_ALLOW };

static int destroy_locked(struct lc_kms_local *k, struct lc_kms_key_info *m,
			  struct lc_error *err)
{
	char name[64];
	int r;

	if (m->state != LC_KEY_DESTROYED) {
		m->state = LC_KEY_DESTROYED;
		m->updated = kms_now(k);
		if (!m->deletion_date || m->deletion_date > m->updated)
			m->deletion_date = m->updated;
		r = save_meta(k, m, err);
		if (r)
			return r;
	}
	/* The metadata no longer allows use: now erase the material. */
	for (uint32_t v = 1; v <= m->versions; v++) {
		struct lc_error e;

		material_name(name, sizeof(name), m->key_id, v);
		r = shred_file(k, name, &e);
		if (r)
			return lc_err(err, r, LC_ERRC_INTERNAL,
				      "key %s is destroyed and refuses all use, but erasing its material failed (%s); it is retried when the local KMS next opens",
				      m->key_id, e.msg);
	}
	return 0;
}

static int admin(struct lc_kms_local *k, enum admin_op op, const char *key_id, unsigned int days,
		 unsigned int flags, struct lc_kms_key_info *info, struct lc_error *err)
{
	struct lc_kms_key_info m;
	enum lc_key_state st;
	int64_t now = kms_now(k);
	int r;

	if (op == OP_SCHEDULE && (days < LC_KMS_LOCAL_MIN_DELETION_DAYS ||
				  days > LC_KMS_LOCAL_MAX_DELETION_DAYS))
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "deletion waiting period of %u days is out of range: expected %d to %d",
			      days, LC_KMS_LOCAL_MIN_DELETION_DAYS, LC_KMS_LOCAL_MAX_DELETION_DAYS);
	lock_excl(k);
	r = load_meta(k, key_id, &m, err);
	if (r)
		goto out;
	st = effective_state(k, &m);
	switch (op) {
	case OP_DISABLE:
		if (st != LC_KEY_ENABLED && st != LC_KEY_DISABLED) {
			r = refuse(err, "disable", &m, st, "only an enabled or disabled key can be disabled");
			goto out;
		}
		m.state = LC_KEY_DISABLED;
		break;
	case OP_ENABLE:
		if (st != LC_KEY_ENABLED && st != LC_KEY_DISABLED) {
			r = refuse(err, "enable", &m, st,
				   st == LC_KEY_PENDING_DELETION ? "cancel the deletion first" :
				   "a destroyed key cannot come back");
			goto out;
		}
		m.state = LC_KEY_ENABLED;
		break;
	case OP_ROTATE:
		if (st != LC_KEY_ENABLED) {
			r = refuse(err, "rotate", &m, st, "only an enabled key can be rotated");
			goto out;
		}
		if (m.versions >= LC_KMS_LOCAL_MAX_VERSIONS) {
			r = lc_err(err, -ENOSPC, LC_ERRC_INVALID,
				   "key %s already has %u versions, the most a local key can have",
				   m.key_id, m.versions);
			goto out;
		}
		r = new_material(k, m.key_id, m.versions + 1, err);
		if (r)
			goto out;
		m.versions++;
		m.primary_version = m.versions;
		break;
	case OP_SCHEDULE:
		if (st != LC_KEY_ENABLED && st != LC_KEY_DISABLED) {
			r = refuse(err, "schedule deletion of", &m, st,
				   "only an enabled or disabled key can be scheduled for deletion");
			goto out;
		}
		m.state = LC_KEY_PENDING_DELETION;
		m.deletion_date = now + (int64_t)days * 86400;
		m.deletion_elapsed = kms_elapsed(k) + (int64_t)days * 86400;
		break;
	case OP_CANCEL:
		if (st != LC_KEY_PENDING_DELETION) {
			r = refuse(err, "cancel deletion of", &m, st,
				   "only a key pending deletion (before its date) can be restored");
			goto out;
		}
		m.state = LC_KEY_DISABLED;
		m.deletion_date = 0;
		m.deletion_elapsed = 0;
		break;
	case OP_DENY:
	case OP_ALLOW:
		/* A key policy change: the state does not move. */
		m.policy_deny = op == OP_DENY;
		break;
	case OP_DESTROY:
		if (m.state == LC_KEY_DESTROYED) {
			r = refuse(err, "destroy", &m, st, "it is already destroyed");
			goto out;
		}
		if (m.state != LC_KEY_PENDING_DELETION) {
			r = refuse(err, "destroy", &m, st, "schedule its deletion first");
			goto out;
		}
		if (st != LC_KEY_DESTROYED && !(flags & LC_KMS_LOCAL_DESTROY_NOW)) {
			r = lc_err(err, -EPERM, LC_ERRC_INVALID,
				   "KMSInvalidState: key %s is pending deletion until %" PRId64 " (epoch s); wait, or destroy it now explicitly",
				   m.key_id, m.deletion_date);
			goto out;
		}
		r = destroy_locked(k, &m, err);
		goto out;
	}
	m.updated = now;
	r = save_meta(k, &m, err);
	if (r && op == OP_ROTATE) {
		char name[64];

		material_name(name, sizeof(name), m.key_id, m.versions);
		(void)shred_file(k, name, NULL);
	}
out:
	unlock(k);
	if (!r && info)
		*info = m;
	return r;
}

int lc_kms_local_rotate(struct lc_kms_local *k, const char *key_id,
			struct lc_kms_key_info *info, struct lc_error *err)
{
	return admin(k, OP_ROTATE, key_id, 0, 0, info, err);
}

int lc_kms_local_set_policy(struct lc_kms_local *k, const char *key_id, bool deny,
			    struct lc_kms_key_info *info, struct lc_error *err)
{
	return admin(k, deny ? OP_DENY : OP_ALLOW, key_id, 0, 0, info, err);
}

int lc_kms_local_disable(struct lc_kms_local *k, const char *key_id,
			 struct lc_kms_key_info *info, struct lc_error *err)
{
	return admin(k, OP_DISABLE, key_id, 0, 0, info, err);
}

int lc_kms_local_enable(struct lc_kms_local *k, const char *key_id,
			struct lc_kms_key_info *info, struct lc_error *err)
{
	return admin(k, OP_ENABLE, key_id, 0, 0, info, err);
}

int lc_kms_local_schedule_deletion(struct lc_kms_local *k, const char *key_id,
				   unsigned int days, struct lc_kms_key_info *info,
				   struct lc_error *err)
{
	return admin(k, OP_SCHEDULE, key_id, days, 0, info, err);
}

int lc_kms_local_cancel_deletion(struct lc_kms_local *k, const char *key_id,
				 struct lc_kms_key_info *info, struct lc_error *err)
{
	return admin(k, OP_CANCEL, key_id, 0, 0, info, err);
}

int lc_kms_local_destroy(struct lc_kms_local *k, const char *key_id, unsigned int flags,
			 struct lc_kms_key_info *info, struct lc_error *err)
{
	return admin(k, OP_DESTROY, key_id, 0, flags, info, err);
}

/* ---- encrypt / decrypt ------------------------------------------------ */

static int deny_unless_enabled(const struct lc_kms_local *k, const struct lc_kms_key_info *m,
			       struct lc_error *err)
{
	switch (effective_state(k, m)) {
	case LC_KEY_ENABLED:
		if (m->policy_deny)
			return lc_err(err, -EKEYREVOKED, LC_ERRC_DENIED,
				      "AccessDeniedException: the key policy of %s denies this use (the key stays enabled)",
				      m->key_id);
		return 0;
	case LC_KEY_DISABLED:
		return lc_err(err, -EKEYREVOKED, LC_ERRC_DENIED,
			      "DisabledException: key %s is disabled", m->key_id);
	case LC_KEY_PENDING_DELETION:
		return lc_err(err, -EKEYREVOKED, LC_ERRC_DENIED,
			      "KMSInvalidStateException: key %s is pending deletion", m->key_id);
	case LC_KEY_DESTROYED:
		return lc_err(err, -EKEYREVOKED, LC_ERRC_DENIED,
			      "KMSInvalidStateException: key %s is destroyed", m->key_id);
	case LC_KEY_UNKNOWN:
		break;
	}
	return lc_err(err, -EKEYREVOKED, LC_ERRC_DENIED, "key %s is in no usable state", m->key_id);
}

static void blob_header(uint8_t hdr[KMS_HDR_LEN], const char *id, uint32_t version)
{
	memcpy(hdr, KMS_MAGIC, 4);
	hdr[4] = LC_KMS_LOCAL_ID_LEN;
	memcpy(hdr + 5, id, LC_KMS_LOCAL_ID_LEN);
	put_be32(hdr + 5 + LC_KMS_LOCAL_ID_LEN, version);
}

int lc_kms_local_encrypt(struct lc_kms_local *k, const char *key_id,
			 const uint8_t *plaintext, size_t len, const char *context,
			 struct lc_buf *blob, uint32_t *version, struct lc_error *err)
{
	_cleanup_secret_ struct lc_secret key = { 0 };
	struct lc_kms_key_info m;
	EVP_CIPHER_CTX *ctx = NULL;
	uint8_t *out = NULL, *p;
	size_t total;
	int n, r;

	blob->p = NULL;
	blob->len = 0;
	if (!context)
		context = "";
	if (strlen(context) > LC_KMS_LOCAL_MAX_CONTEXT)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "encryption context of %zu bytes: at most %d expected",
			      strlen(context), LC_KMS_LOCAL_MAX_CONTEXT);
	if (!plaintext || len < 1 || len > LC_KMS_LOCAL_MAX_PLAINTEXT)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "plaintext of %zu bytes: 1 to %d expected", len, LC_KMS_LOCAL_MAX_PLAINTEXT);
	lock_shared(k);
	r = load_meta(k, key_id, &m, err);
	if (!r)
		r = deny_unless_enabled(k, &m, err);
	if (!r)
		r = load_material(k, m.key_id, m.primary_version, &key, err);
	unlock(k);
	if (r)
		return r;

	total = KMS_HDR_LEN + KMS_NONCE_LEN + len + KMS_TAG_LEN;
	out = malloc(total);
	ctx = EVP_CIPHER_CTX_new();
	if (!out || !ctx) {
		r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
		goto out;
	}
	blob_header(out, m.key_id, m.primary_version);
	p = out + KMS_HDR_LEN;
	r = lc_rand_bytes(p, KMS_NONCE_LEN, false, "a GCM nonce", err);
	if (r)
		goto out;
	if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key.p, p) != 1 ||
	    EVP_EncryptUpdate(ctx, NULL, &n, out, KMS_HDR_LEN) != 1 ||
	    EVP_EncryptUpdate(ctx, NULL, &n, (const uint8_t *)context, (int)strlen(context)) != 1 ||
	    EVP_EncryptUpdate(ctx, p + KMS_NONCE_LEN, &n, plaintext, (int)len) != 1 ||
	    EVP_EncryptFinal_ex(ctx, p + KMS_NONCE_LEN + n, &n) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, KMS_TAG_LEN, p + KMS_NONCE_LEN + len) != 1) {
		r = lc_err(err, -EIO, LC_ERRC_INTERNAL, "AES-256-GCM encryption failed");
		goto out;
	}
	blob->p = out;
	blob->len = total;
	out = NULL;
	if (version)
		*version = m.primary_version;
out:
	EVP_CIPHER_CTX_free(ctx);
	free(out);
	return r;
}

int lc_kms_local_decrypt(struct lc_kms_local *k, const char *key_id,
			 const uint8_t *blob, size_t len, const char *context,
			 struct lc_secret *plaintext, uint32_t *version, struct lc_error *err)
{
	_cleanup_secret_ struct lc_secret key = { 0 };
	struct lc_kms_key_info m;
	EVP_CIPHER_CTX *ctx = NULL;
	char id[LC_KMS_LOCAL_ID_LEN + 1];
	const uint8_t *nonce, *ct, *tag;
	uint32_t ver;
	size_t ctlen;
	int n, r;

	plaintext->p = NULL;
	plaintext->len = 0;
	plaintext->locked = false;
	if (!context)
		context = "";
	if (strlen(context) > LC_KMS_LOCAL_MAX_CONTEXT)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "encryption context of %zu bytes: at most %d expected",
			      strlen(context), LC_KMS_LOCAL_MAX_CONTEXT);
	if (!blob || len < KMS_HDR_LEN + KMS_NONCE_LEN + 1 + KMS_TAG_LEN ||
	    memcmp(blob, KMS_MAGIC, 4) || blob[4] != LC_KMS_LOCAL_ID_LEN)
		return lc_err(err, -EBADMSG, LC_ERRC_INVALID,
			      "InvalidCiphertext: not a local KMS ciphertext (bad length or magic)");
	memcpy(id, blob + 5, LC_KMS_LOCAL_ID_LEN);
	id[LC_KMS_LOCAL_ID_LEN] = '\0';
	if (!valid_key_id(id))
		return lc_err(err, -EBADMSG, LC_ERRC_INVALID,
			      "InvalidCiphertext: the ciphertext names no valid local key id");
	if (key_id && strcmp(key_id, id)) {
		if (!valid_key_id(key_id))
			return check_key_id(k, key_id, err);
		return lc_err(err, -EBADMSG, LC_ERRC_INVALID,
			      "IncorrectKey: the ciphertext was made with key %s, not %s", id, key_id);
	}
	ver = get_be32(blob + 5 + LC_KMS_LOCAL_ID_LEN);
	nonce = blob + KMS_HDR_LEN;
	ct = nonce + KMS_NONCE_LEN;
	ctlen = len - KMS_HDR_LEN - KMS_NONCE_LEN - KMS_TAG_LEN;
	tag = ct + ctlen;
	if (ctlen > LC_KMS_LOCAL_MAX_PLAINTEXT)
		return lc_err(err, -EBADMSG, LC_ERRC_INVALID,
			      "InvalidCiphertext: ciphertext longer than any local KMS plaintext");

	lock_shared(k);
	r = load_meta(k, id, &m, err);
	if (!r)
		r = deny_unless_enabled(k, &m, err);
	if (!r && (ver < 1 || ver > m.versions))
		r = lc_err(err, -EBADMSG, LC_ERRC_INVALID,
			   "InvalidCiphertext: key %s has no version %" PRIu32, id, ver);
	if (!r)
		r = load_material(k, id, ver, &key, err);
	unlock(k);
	if (r)
		return r;

	r = lc_secret_alloc(plaintext, ctlen);
	ctx = EVP_CIPHER_CTX_new();
	if (r || !ctx) {
		r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
		goto out;
	}
	if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key.p, nonce) != 1 ||
	    EVP_DecryptUpdate(ctx, NULL, &n, blob, KMS_HDR_LEN) != 1 ||
	    EVP_DecryptUpdate(ctx, NULL, &n, (const uint8_t *)context, (int)strlen(context)) != 1 ||
	    EVP_DecryptUpdate(ctx, plaintext->p, &n, ct, (int)ctlen) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, KMS_TAG_LEN, (void *)tag) != 1 ||
	    EVP_DecryptFinal_ex(ctx, plaintext->p + n, &n) != 1) {
		r = lc_err(err, -EBADMSG, LC_ERRC_INVALID,
			   "InvalidCiphertext: ciphertext does not authenticate under key %s version %" PRIu32 " with this encryption context (wrong context, or corrupt ciphertext)",
			   id, ver);
		goto out;
	}
	if (version)
		*version = ver;
out:
	EVP_CIPHER_CTX_free(ctx);
	if (r)
		lc_secret_free(plaintext);
	return r;
}

/* ---- provider --------------------------------------------------------- */

static void local_reqid(struct lc_provider_reply *reply)
{
	static const char hex[] = "0123456789abcdef";
	uint8_t rnd[8] = { 0 };
	char *o = reply->request_id;

	(void)RAND_bytes(rnd, sizeof(rnd));
	o += sprintf(o, "local-");
	for (size_t i = 0; i < sizeof(rnd); i++) {
		*o++ = hex[rnd[i] >> 4];
		*o++ = hex[rnd[i] & 0xf];
	}
	*o = '\0';
}

static int local_wrap(void *priv, const char *key_ref, const struct lc_secret *pt,
		      const char *context, uint64_t timeout_ms, struct lc_buf *blob,
		      struct lc_provider_reply *reply, struct lc_error *err)
{
	uint32_t ver = 0;
	int r;

	(void)timeout_ms;
	local_reqid(reply);
	snprintf(reply->key_id, sizeof(reply->key_id), "%s", key_ref);
	r = lc_kms_local_encrypt(priv, key_ref, pt->p, pt->len, context, blob, &ver, err);
	if (!r)
		snprintf(reply->key_version, sizeof(reply->key_version), "%" PRIu32, ver);
	return r;
}

static int local_unwrap(void *priv, const char *key_ref, const struct lc_buf *blob,
			const char *context, uint64_t timeout_ms, struct lc_secret *pt,
			struct lc_provider_reply *reply, struct lc_error *err)
{
	uint32_t ver = 0;
	int r;

	(void)timeout_ms;
	local_reqid(reply);
	snprintf(reply->key_id, sizeof(reply->key_id), "%s", key_ref);
	r = lc_kms_local_decrypt(priv, key_ref, blob->p, blob->len, context, pt, &ver, err);
	if (!r)
		snprintf(reply->key_version, sizeof(reply->key_version), "%" PRIu32, ver);
	return r;
}

static int local_key_state(void *priv, const char *key_ref, uint64_t timeout_ms,
			   struct lc_provider_reply *reply, struct lc_error *err)
{
	struct lc_kms_key_info info;
	int r;

	(void)timeout_ms;
	local_reqid(reply);
	snprintf(reply->key_id, sizeof(reply->key_id), "%s", key_ref);
	r = lc_kms_local_describe(priv, key_ref, &info, err);
	if (r)
		return r;
	reply->state = info.state;
	reply->deletion_date = info.deletion_date;
	snprintf(reply->key_version, sizeof(reply->key_version), "%" PRIu32, info.primary_version);
	return 0;
}

const struct lc_provider_ops lc_kms_local_ops = {
	.name		= LC_KMS_LOCAL_NAME,
	.wrap		= local_wrap,
	.unwrap		= local_unwrap,
	.key_state	= local_key_state,
};

void lc_kms_local_provider_init(struct lc_provider *p, struct lc_kms_local *kms)
{
	lc_provider_init(p, &lc_kms_local_ops, kms);
}
