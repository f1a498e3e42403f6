// SPDX-License-Identifier: GPL-2.0
/*
 * PKCS#11 HSM provider: a CMK that is an AES key object on a token.  The
 * interface and every error class are described in kms-pkcs11.h.
 *
 * Threads.  Each call becomes a job on a queue served by a pool of worker
 * threads; each worker owns one PKCS#11 session (a session must not be
 * used by two threads at once, v2.40 section 5.6).  The caller waits for
 * its job at most timeout_ms: a job still queued is taken back, a job
 * a worker is running is abandoned to it (the worker frees it, wiping its
 * secrets, when the module answers).  Module state -- loaded library,
 * C_Initialize, the token's slot, the login -- is shared and guarded by
 * mod_lock, taken only by workers.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

#include "kms-pkcs11.h"

#define MAX_SLOTS	1024	/* slots a module may report */
#define LC_KMS_PKCS11_CLOSE_WAIT_MS	2000	/* for a busy worker at close */

enum job_op { JOB_WRAP, JOB_UNWRAP, JOB_STATE };

struct job {
	enum job_op op;
	struct lc_p11_ref ref;
	char *context;			/* wrap, unwrap */
	struct lc_secret pt_in;		/* wrap: a copy */
	struct lc_buf blob_in;		/* unwrap: a copy */
	struct lc_buf blob_out;		/* wrap */
	struct lc_secret pt_out;	/* unwrap */
	struct lc_provider_reply rep;
	struct lc_error err;
	int r;
	bool taken, done, abandoned;
	struct job *next;
};

struct worker {
	struct lc_kms_pkcs11 *k;
	pthread_t thread;
	bool started;
	CK_SESSION_HANDLE sess;
	bool have_sess;
	uint64_t gen;			/* k->gen when the session was opened */
	char tok_label[33], tok_serial[17];	/* the token of the session */
	CK_SLOT_ID slot;			/* ... and its slot */
};

struct lc_kms_pkcs11 {
	char *module;			/* NULL: not configured */
	char *token_label;
	char *token_serial;
	struct lc_secret pin;		/* exactly the PIN's bytes */

	/* The queue (lock, cond: new jobs and stop; done: finished jobs). */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_cond_t done;
	struct job *head, *tail;
	bool stopping;
	unsigned int nworkers;
	unsigned int busy;		/* workers running a job */
	struct worker *w;

	/* Module state (mod_lock). */
	pthread_mutex_t mod_lock;
	void *dl;
	CK_FUNCTION_LIST_PTR f;
	bool initialized, own_init;
	bool have_slot;
	CK_SLOT_ID slot;
	uint64_t gen;			/* bumped when the slot is looked up again */
	char tok_label[33], tok_serial[17];
	char first_serial[17];		/* the token's serial when first found */
	bool pin_refused;		/* never C_Login again */
	char pin_msg[LC_ERROR_MSG_MAX];
};

/* ---- small helpers -------------------------------------------------- */

static const char *rv_name(CK_RV rv)
{
	switch (rv) {
#define N(x) case x: return #x
	N(CKR_OK); N(CKR_CANCEL); N(CKR_HOST_MEMORY); N(CKR_SLOT_ID_INVALID);
	N(CKR_GENERAL_ERROR); N(CKR_FUNCTION_FAILED); N(CKR_ARGUMENTS_BAD);
	N(CKR_CANT_LOCK); N(CKR_ATTRIBUTE_SENSITIVE); N(CKR_ATTRIBUTE_TYPE_INVALID);
	N(CKR_DATA_INVALID); N(CKR_DATA_LEN_RANGE); N(CKR_DEVICE_ERROR); N(CKR_DEVICE_MEMORY);
	N(CKR_DEVICE_REMOVED); N(CKR_ENCRYPTED_DATA_INVALID); N(CKR_ENCRYPTED_DATA_LEN_RANGE);
	N(CKR_FUNCTION_CANCELED); N(CKR_FUNCTION_NOT_SUPPORTED); N(CKR_KEY_HANDLE_INVALID);
	N(CKR_KEY_SIZE_RANGE); N(CKR_KEY_TYPE_INCONSISTENT); N(CKR_KEY_FUNCTION_NOT_PERMITTED);
	N(CKR_MECHANISM_INVALID); N(CKR_MECHANISM_PARAM_INVALID); N(CKR_OPERATION_ACTIVE);
	N(CKR_OPERATION_NOT_INITIALIZED); N(CKR_PIN_INCORRECT); N(CKR_PIN_INVALID);
	N(CKR_PIN_LEN_RANGE); N(CKR_PIN_EXPIRED); N(CKR_PIN_LOCKED); N(CKR_SESSION_CLOSED);
	N(CKR_SESSION_COUNT); N(CKR_SESSION_HANDLE_INVALID); N(CKR_TOKEN_NOT_PRESENT);
	N(CKR_TOKEN_NOT_RECOGNIZED); N(CKR_USER_ALREADY_LOGGED_IN); N(CKR_USER_NOT_LOGGED_IN);
	N(CKR_USER_TYPE_INVALID); N(CKR_BUFFER_TOO_SMALL); N(CKR_CRYPTOKI_NOT_INITIALIZED);
	N(CKR_CRYPTOKI_ALREADY_INITIALIZED);
#undef N
	}
	return "CKR_(vendor or unknown)";
}

/* Errors after which the session (or the whole token) is opened again. */
static bool rv_reopen(CK_RV rv)
{
	return rv == CKR_DEVICE_REMOVED || rv == CKR_TOKEN_NOT_PRESENT ||
	       rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_SESSION_CLOSED ||
	       rv == CKR_USER_NOT_LOGGED_IN || rv == CKR_CRYPTOKI_NOT_INITIALIZED ||
	       rv == CKR_SLOT_ID_INVALID;
}

static bool rv_pin(CK_RV rv)
{
	return rv == CKR_PIN_INCORRECT || rv == CKR_PIN_INVALID || rv == CKR_PIN_LEN_RANGE ||
	       rv == CKR_PIN_EXPIRED || rv == CKR_PIN_LOCKED;
}

/* The class of an error code @rv of @fn (outside the cases the callers
 * decide themselves). */
static int rv_err(struct lc_error *err, CK_RV rv, const char *fn)
{
	enum lc_err_class cls = LC_ERRC_MISCONFIG;
	int code = -EINVAL;

	switch (rv) {
	case CKR_DEVICE_REMOVED: case CKR_TOKEN_NOT_PRESENT: case CKR_SESSION_HANDLE_INVALID:
	case CKR_SESSION_CLOSED: case CKR_USER_NOT_LOGGED_IN: case CKR_CRYPTOKI_NOT_INITIALIZED:
	case CKR_SLOT_ID_INVALID: case CKR_DEVICE_ERROR: case CKR_DEVICE_MEMORY:
	case CKR_FUNCTION_FAILED: case CKR_KEY_HANDLE_INVALID: case CKR_FUNCTION_CANCELED:
	case CKR_OPERATION_ACTIVE: case CKR_SESSION_COUNT: case CKR_HOST_MEMORY:
	case CKR_TOKEN_NOT_RECOGNIZED: case CKR_CANCEL:
		cls = LC_ERRC_TRANSIENT;
		code = -EAGAIN;
		break;
	case CKR_KEY_FUNCTION_NOT_PERMITTED:
		cls = LC_ERRC_DENIED;
		code = -EKEYREVOKED;
		break;
	default:
		break;
	}
	return lc_err(err, code, cls, "PKCS#11 %s failed: %s (0x%lx)", fn, rv_name(rv),
		      (unsigned long)rv);
}

/* Copy a blank-padded CK_UTF8CHAR field into a C string, trimmed. */
static void padded(char *out, const CK_UTF8CHAR *in, size_t n)
{
	while (n && (in[n - 1] == ' ' || in[n - 1] == '\0'))
		n--;
	memcpy(out, in, n);
	out[n] = '\0';
}

static bool ctrl_free(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < ' ' || *s == 0x7f)
			return false;
	return true;
}

int lc_p11_parse_ref(const char *ref, struct lc_p11_ref *out, struct lc_error *err)
{
	memset(out, 0, sizeof(*out));
	if (!ref || !*ref)
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			      "PKCS#11 key reference is empty: expected a key label, label:<text> or id:<hex>");
	if (!ctrl_free(ref))
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			      "PKCS#11 key reference has a control character");
	if (!strncmp(ref, "serial=", 7)) {
		size_t n = strcspn(ref + 7, ";");

		if (!n || n >= sizeof(out->serial) || ref[7 + n] != ';' ||
		    (strncmp(ref + 8 + n, "id:", 3) && strncmp(ref + 8 + n, "label:", 6)))
			return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
				      "PKCS#11 bound key reference \"%.140s\": expected serial=<1 to 16 bytes>;id:<hex> or serial=<...>;label:<text>",
				      ref);
		memcpy(out->serial, ref + 7, n);
		out->serial[n] = '\0';
		ref += 8 + n;
	}
	if (!strncmp(ref, "id:", 3)) {
		const char *h = ref + 3;
		size_t n = strlen(h);

		if (!n || n % 2 || n / 2 > LC_KMS_PKCS11_ID_MAX)
			return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
				      "PKCS#11 key id \"%.140s\": expected 2 to %d hex digits, an even number",
				      h, 2 * LC_KMS_PKCS11_ID_MAX);
		for (size_t i = 0; i < n / 2; i++) {
			unsigned int b;
			char two[3] = { h[2 * i], h[2 * i + 1], 0 };

			if (!strchr("0123456789abcdefABCDEF", two[0]) ||
			    !strchr("0123456789abcdefABCDEF", two[1]) || sscanf(two, "%2x", &b) != 1)
				return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
					      "PKCS#11 key id \"%.140s\" is not hexadecimal", h);
			out->id[i] = (uint8_t)b;
		}
		out->id_len = n / 2;
		out->by_id = true;
		return 0;
	}
	if (!strncmp(ref, "label:", 6))
		ref += 6;
	if (!*ref || strlen(ref) > LC_KMS_PKCS11_LABEL_MAX)
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			      "PKCS#11 key label must be 1 to %d bytes", LC_KMS_PKCS11_LABEL_MAX);
	snprintf(out->label, sizeof(out->label), "%s", ref);
	return 0;
}

int lc_p11_blob_parse(const uint8_t *blob, size_t len, const uint8_t **iv,
		      const uint8_t **ct, size_t *ct_len, struct lc_error *err)
{
	if (!blob || len < LC_P11_BLOB_OVERHEAD + 1 ||
	    len > LC_P11_BLOB_OVERHEAD + LC_KMS_PKCS11_MAX_PLAINTEXT)
		return lc_err(err, -EBADMSG, LC_ERRC_INVALID,
			      "PKCS#11 blob of %zu bytes: expected %d to %d bytes", len,
			      LC_P11_BLOB_OVERHEAD + 1, LC_P11_BLOB_OVERHEAD + LC_KMS_PKCS11_MAX_PLAINTEXT);
	if (blob[0] != LC_P11_BLOB_VERSION || blob[1] != LC_P11_IV_LEN ||
	    blob[2] != LC_P11_TAG_LEN || blob[3] != 0)
		return lc_err(err, -EBADMSG, LC_ERRC_INVALID,
			      "PKCS#11 blob header %02x %02x %02x %02x: expected version %d, IV %d, tag %d bytes",
			      blob[0], blob[1], blob[2], blob[3], LC_P11_BLOB_VERSION, LC_P11_IV_LEN,
			      LC_P11_TAG_LEN);
	*iv = blob + LC_P11_BLOB_HDR_LEN;
	*ct = blob + LC_P11_BLOB_HDR_LEN + LC_P11_IV_LEN;
	*ct_len = len - LC_P11_BLOB_HDR_LEN - LC_P11_IV_LEN;
	return 0;
}

int lc_p11_uri_escape(const uint8_t *in, size_t len, bool all, char *out, size_t size)
{
	static const char hexd[] = "0123456789abcdef";
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		uint8_t c = in[i];
		/* RFC 7512 pk11-res-avail: unreserved and ":" "[" "]" "@" "!" "$"
		 * "'" "(" ")" "*" "+" "," "=" "&" ("&" only in values). */
		bool plain = !all && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
				      (c >= '0' && c <= '9') || strchr("-._~:[]@!$'()*+,=&", c));

		if (c && plain) {
			if (o + 1 >= size)
				return -ENOSPC;
			out[o++] = (char)c;
		} else {
			if (o + 3 >= size)
				return -ENOSPC;
			out[o++] = '%';
			out[o++] = hexd[c >> 4];
			out[o++] = hexd[c & 15];
		}
	}
	if (o >= size)
		return -ENOSPC;
	out[o] = '\0';
	return 0;
}

int lc_p11_read_pin(const char *path, uid_t uid, struct lc_secret *pin, struct lc_error *err)
{
	_cleanup_secret_ struct lc_secret buf = { 0 };
	_cleanup_close_ int fd = -1;
	struct stat st;
	size_t len = 0;
	int r;

	memset(pin, 0, sizeof(*pin));
	if (!path || path[0] != '/')
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			      "[pkcs11] pin_file must be an absolute path");
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (fd < 0)
		return lc_err(err, -errno, LC_ERRC_MISCONFIG, "PKCS#11 PIN file %s: %s%s", path,
			      strerror(errno), errno == ELOOP ? " (a symlink is not accepted)" : "");
	if (fstat(fd, &st) < 0)
		return lc_err(err, -errno, LC_ERRC_MISCONFIG, "PKCS#11 PIN file %s: %s", path,
			      strerror(errno));
	if (!S_ISREG(st.st_mode))
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			      "PKCS#11 PIN file %s is not a regular file", path);
	if (st.st_uid != uid && st.st_uid != 0)
		return lc_err(err, -EPERM, LC_ERRC_MISCONFIG,
			      "PKCS#11 PIN file %s is owned by uid %u: expected uid %u (the agent) or root",
			      path, (unsigned int)st.st_uid, (unsigned int)uid);
	if (st.st_mode & 077)
		return lc_err(err, -EPERM, LC_ERRC_MISCONFIG,
			      "PKCS#11 PIN file %s has mode %04o: group and others must have no access (chmod 600)",
			      path, (unsigned int)(st.st_mode & 07777));
	if (st.st_size > LC_KMS_PKCS11_PIN_MAX + 2)
		return lc_err(err, -EFBIG, LC_ERRC_MISCONFIG,
			      "PKCS#11 PIN file %s is larger than %d bytes", path,
			      LC_KMS_PKCS11_PIN_MAX + 2);
	r = lc_secret_alloc(&buf, LC_KMS_PKCS11_PIN_MAX + 3);
	if (r < 0)
		return lc_err(err, r, LC_ERRC_INTERNAL, "out of memory");
	for (;;) {
		ssize_t n = read(fd, buf.p + len, buf.len - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return lc_err(err, -errno, LC_ERRC_MISCONFIG, "reading PKCS#11 PIN file %s: %s",
				      path, strerror(errno));
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == buf.len)
			return lc_err(err, -EFBIG, LC_ERRC_MISCONFIG,
				      "PKCS#11 PIN file %s is larger than %d bytes", path,
				      LC_KMS_PKCS11_PIN_MAX + 2);
	}
	if (len && buf.p[len - 1] == '\n')
		len--;
	if (len && buf.p[len - 1] == '\r')
		len--;
	if (!len || len > LC_KMS_PKCS11_PIN_MAX)
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			      "PKCS#11 PIN file %s: the PIN must be 1 to %d bytes", path,
			      LC_KMS_PKCS11_PIN_MAX);
	if (memchr(buf.p, '\0', len) || memchr(buf.p, '\n', len))
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			      "PKCS#11 PIN file %s: the PIN must be one line without NUL bytes", path);
	r = lc_secret_alloc(pin, len);
	if (r < 0)
		return lc_err(err, r, LC_ERRC_INTERNAL, "out of memory");
	memcpy(pin->p, buf.p, len);
	return 0;
}

/* ---- module, slot, session (workers, mod_lock) ------------------------ */

static const char *token_desc(const struct lc_kms_pkcs11 *k, char *buf, size_t n)
{
	snprintf(buf, n, "%s%s%s%s%s", k->token_label ? "label \"" : "",
		 k->token_label ? k->token_label : "", k->token_label ? "\"" : "",
		 k->token_label && k->token_serial ? " and " : "",
		 k->token_serial ? "serial " : "");
	if (k->token_serial)
		snprintf(buf + strlen(buf), n - strlen(buf), "\"%s\"", k->token_serial);
	return buf;
}

static int load_module(struct lc_kms_pkcs11 *k, struct lc_error *err)
{
	CK_C_GetFunctionList get;
	CK_C_INITIALIZE_ARGS args = { .flags = CKF_OS_LOCKING_OK };
	CK_RV rv;

	if (!k->dl) {
		k->dl = dlopen(k->module, RTLD_NOW | RTLD_LOCAL);
		if (!k->dl)
			return lc_err(err, -ENOENT, LC_ERRC_MISCONFIG,
				      "cannot load PKCS#11 module %s: %s", k->module, dlerror());
		get = (CK_C_GetFunctionList)dlsym(k->dl, "C_GetFunctionList");
		if (!get || get(&k->f) != CKR_OK || !k->f) {
			dlclose(k->dl);
			k->dl = NULL;
			k->f = NULL;
			return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
				      "%s is not a PKCS#11 module: no usable C_GetFunctionList", k->module);
		}
		if (k->f->version.major != 2 && k->f->version.major != 3) {
			lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			       "PKCS#11 module %s implements Cryptoki %u.%u: expected 2.x or 3.x", k->module,
			       k->f->version.major, k->f->version.minor);
			dlclose(k->dl);
			k->dl = NULL;
			k->f = NULL;
			return err ? err->code : -EINVAL;
		}
	}
	if (k->initialized)
		return 0;
	rv = k->f->C_Initialize(&args);
	if (rv == CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		k->own_init = false;
	} else if (rv == CKR_CANT_LOCK) {
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			      "PKCS#11 module %s cannot use the operating system's locks (CKR_CANT_LOCK): the agent calls it from several threads",
			      k->module);
	} else if (rv != CKR_OK) {
		return rv_err(err, rv, "C_Initialize");
	} else {
		k->own_init = true;
	}
	k->initialized = true;
	k->have_slot = false;
	return 0;
}

static bool field_match(const char *want, const CK_UTF8CHAR *field, size_t n)
{
	char have[65];

	if (!want)
		return true;
	padded(have, field, n);
	return !strcmp(want, have);
}

static int find_slot(struct lc_kms_pkcs11 *k, struct lc_error *err)
{
	_cleanup_free_ CK_SLOT_ID *slots = NULL;
	CK_ULONG n = 0, matches = 0;
	CK_TOKEN_INFO ti, found = { 0 };
	CK_SLOT_ID slot = 0;
	char desc[160], present[400];
	CK_RV rv;

	present[0] = '\0';
	rv = k->f->C_GetSlotList(CK_TRUE, NULL, &n);
	if (rv == CKR_OK && n > MAX_SLOTS)
		return lc_err(err, -E2BIG, LC_ERRC_MISCONFIG,
			      "PKCS#11 module reports %lu slots: at most %d are looked at",
			      (unsigned long)n, MAX_SLOTS);
	if (rv == CKR_OK && n) {
		slots = calloc(n, sizeof(*slots));
		if (!slots)
			return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
		rv = k->f->C_GetSlotList(CK_TRUE, slots, &n);
	}
	if (rv != CKR_OK)
		return rv_err(err, rv, "C_GetSlotList");
	present[0] = '\0';
	for (CK_ULONG i = 0; i < n; i++) {
		rv = k->f->C_GetTokenInfo(slots[i], &ti);
		if (rv != CKR_OK)	/* removed meanwhile, or not ours */
			continue;
		{	/* for the message: the tokens that are there */
			char l[33], e[3 * 32 + 1];
			size_t pl = strlen(present);

			padded(l, ti.label, sizeof(ti.label));
			if (lc_p11_uri_escape((const uint8_t *)l, strlen(l), false, e, sizeof(e)) < 0)
				snprintf(e, sizeof(e), "?");
			if (pl + 1 < sizeof(present))
				snprintf(present + pl, sizeof(present) - pl, "%s\"%s\" (slot %lu)",
					 pl ? ", " : "", e, (unsigned long)slots[i]);
		}
		if (!field_match(k->token_label, ti.label, sizeof(ti.label)) ||
		    !field_match(k->token_serial, ti.serialNumber, sizeof(ti.serialNumber)))
			continue;
		matches++;
		slot = slots[i];
		found = ti;
	}
	if (!matches)
		return lc_err(err, -ENODEV, LC_ERRC_TRANSIENT,
			      "no PKCS#11 token with %s is present (%lu tokens present%s%s): a token that is away is an outage, not a revocation; check token_label / token_serial in [pkcs11] against pkcs11-tool --module %s --list-token-slots",
			      token_desc(k, desc, sizeof(desc)), (unsigned long)n, n ? ": " : "", present,
			      k->module);
	if (matches > 1)
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			      "%lu PKCS#11 tokens have %s (present: %s): set token_serial in [pkcs11] to pick one (pkcs11-tool --module %s --list-token-slots shows the serials)",
			      (unsigned long)matches, token_desc(k, desc, sizeof(desc)), present, k->module);
	if (!(found.flags & CKF_TOKEN_INITIALIZED))
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG, "PKCS#11 token with %s is not initialised",
			      token_desc(k, desc, sizeof(desc)));
	/* Another token under the same label is not the one whose keys we
	 * used: "no such key" there must not read as the key's destruction. */
	{
		char serial[17];

		padded(serial, found.serialNumber, sizeof(found.serialNumber));
		if (k->first_serial[0] && strcmp(serial, k->first_serial))
			return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
				      "the PKCS#11 token with %s now has serial %s, not %s as when the agent first used it: another token took its place (set token_serial in [pkcs11] and restart the agent to use the new one)",
				      token_desc(k, desc, sizeof(desc)), serial, k->first_serial);
		memcpy(k->first_serial, serial, sizeof(serial));
	}
	k->slot = slot;
	k->have_slot = true;
	k->gen++;
	padded(k->tok_label, found.label, sizeof(found.label));
	padded(k->tok_serial, found.serialNumber, sizeof(found.serialNumber));
	return 0;
}

/* Log the user in on session @s, once for the token (mod_lock held). */
static int login(struct lc_kms_pkcs11 *k, CK_SESSION_HANDLE s, struct lc_error *err)
{
	CK_SESSION_INFO si;
	CK_TOKEN_INFO ti;
	CK_RV rv;

	if (k->pin_refused)
		return lc_err(err, -EACCES, LC_ERRC_MISCONFIG, "%s", k->pin_msg);
	rv = k->f->C_GetSessionInfo(s, &si);
	if (rv != CKR_OK)
		return rv_err(err, rv, "C_GetSessionInfo");
	if (si.state == CKS_RO_USER_FUNCTIONS || si.state == CKS_RW_USER_FUNCTIONS)
		return 0;
	rv = k->f->C_GetTokenInfo(k->slot, &ti);
	if (rv != CKR_OK)
		return rv_err(err, rv, "C_GetTokenInfo");
	if (ti.flags & (CKF_USER_PIN_LOCKED | CKF_USER_PIN_FINAL_TRY)) {
		k->pin_refused = true;
		snprintf(k->pin_msg, sizeof(k->pin_msg),
			 "PKCS#11 token \"%s\" (serial %s): the user PIN is %s; the agent will not try to log in (fix the PIN, reset the token's counter, restart the agent)",
			 k->tok_label, k->tok_serial,
			 ti.flags & CKF_USER_PIN_LOCKED ? "locked" : "one failure away from locked");
		return lc_err(err, -EACCES, LC_ERRC_MISCONFIG, "%s", k->pin_msg);
	}
	rv = k->f->C_Login(s, CKU_USER, k->pin.p, k->pin.len);
	if (rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN)
		return 0;
	if (rv_pin(rv)) {
		k->pin_refused = true;
		snprintf(k->pin_msg, sizeof(k->pin_msg),
			 "PKCS#11 token \"%s\" (serial %s) refused the PIN of the PIN file: %s; the agent will not try again (fix the PIN file and restart the agent)",
			 k->tok_label, k->tok_serial, rv_name(rv));
		lc_error_log("%s", k->pin_msg);
		return lc_err(err, -EACCES, LC_ERRC_MISCONFIG, "%s", k->pin_msg);
	}
	return rv_err(err, rv, "C_Login");
}

/* Forget @w's session without closing it: after the errors that send us
 * here the module has closed it, and its handle may already name a
 * session another worker opened since. */
static void drop_session(struct worker *w)
{
	w->have_sess = false;
	w->sess = CK_INVALID_HANDLE;
}

/* A logged-in session for @w; @full: look the token up again first. */
static int ensure_session(struct worker *w, bool full, struct lc_error *err)
{
	struct lc_kms_pkcs11 *k = w->k;
	CK_SESSION_HANDLE s;
	CK_RV rv;
	int r;

	pthread_mutex_lock(&k->mod_lock);
	if (k->pin_refused) {
		r = lc_err(err, -EACCES, LC_ERRC_MISCONFIG, "%s", k->pin_msg);
		goto out;
	}
	if (w->have_sess && !full) {
		r = 0;
		goto out;
	}
	drop_session(w);
	r = load_module(k, err);
	if (r < 0)
		goto out;
	if (full && w->gen == k->gen)	/* nobody looked again since our failure */
		k->have_slot = false;
	if (!k->have_slot) {
		r = find_slot(k, err);
		if (r < 0)
			goto out;
	}
	rv = k->f->C_OpenSession(k->slot, CKF_SERIAL_SESSION, NULL, NULL, &s);
	if (rv != CKR_OK) {
		if (rv_reopen(rv))
			k->have_slot = false;
		if (rv == CKR_CRYPTOKI_NOT_INITIALIZED)
			k->initialized = false;
		r = rv_err(err, rv, "C_OpenSession");
		goto out;
	}
	r = login(k, s, err);
	if (r < 0) {
		k->f->C_CloseSession(s);
		goto out;
	}
	w->sess = s;
	w->have_sess = true;
	w->gen = k->gen;
	memcpy(w->tok_label, k->tok_label, sizeof(w->tok_label));
	memcpy(w->tok_serial, k->tok_serial, sizeof(w->tok_serial));
	w->slot = k->slot;
out:
	pthread_mutex_unlock(&k->mod_lock);
	return r;
}

/* ---- the key object --------------------------------------------------- */

struct keyinfo {
	CK_OBJECT_HANDLE h;
	CK_BBOOL encrypt, decrypt;
	char uri[LC_PROVIDER_KEYID_MAX];
};

/* "label \"X\"" or "id 0a1b" of @ref, for messages. */
static const char *key_desc(const struct lc_p11_ref *ref, char *buf, size_t n)
{
	if (ref->by_id) {
		size_t o = (size_t)snprintf(buf, n, "id ");

		for (size_t i = 0; i < ref->id_len && o + 3 <= n; i++, o += 2)
			snprintf(buf + o, n - o, "%02x", ref->id[i]);
	} else {
		char e[3 * LC_KMS_PKCS11_LABEL_MAX + 1];

		if (lc_p11_uri_escape((const uint8_t *)ref->label, strlen(ref->label), false, e, sizeof(e)) < 0)
			snprintf(e, sizeof(e), "?");
		snprintf(buf, n, "label \"%s\"", e);
	}
	return buf;
}

/* "token \"Y\" (serial S, slot N)" of @w's session, for messages. */
static const char *where(const struct worker *w, char *buf, size_t n)
{
	snprintf(buf, n, "PKCS#11 token \"%s\" (serial %s, slot %lu)", w->tok_label, w->tok_serial,
		 (unsigned long)w->slot);
	return buf;
}

/* What the operator runs to see the token's secret keys (the PIN is asked). */
static const char *check_cmd(const struct worker *w, char *buf, size_t n)
{
	snprintf(buf, n, "pkcs11-tool --module %s --slot %lu --login --list-objects --type secrkey",
		 w->k->module, (unsigned long)w->slot);
	return buf;
}

/*
 * Find the key of @ref in @w's session.  0 with @ki filled; 1 if no such
 * object exists (authoritative: the session is logged in on the token);
 * negative with @err (and *@rv, the failing call's code) otherwise.
 */
static int find_key(struct worker *w, const struct lc_p11_ref *ref, struct keyinfo *ki,
		    CK_RV *rvp, struct lc_error *err)
{
	CK_FUNCTION_LIST_PTR f = w->k->f;
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_ATTRIBUTE tmpl[2] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ ref->by_id ? CKA_ID : CKA_LABEL, ref->by_id ? (void *)ref->id : (void *)ref->label,
		  ref->by_id ? ref->id_len : strlen(ref->label) },
	};
	CK_OBJECT_HANDLE hs[2];
	CK_ULONG n = 0;
	CK_KEY_TYPE kt = 0;
	CK_BBOOL sens = CK_FALSE, extr = CK_TRUE, token = CK_FALSE;
	CK_SESSION_INFO si;
	uint8_t id[LC_KMS_PKCS11_ID_MAX], label[LC_KMS_PKCS11_LABEL_MAX];
	char eid[3 * LC_KMS_PKCS11_ID_MAX + 1], elabel[3 * LC_KMS_PKCS11_LABEL_MAX + 1];
	char etok[3 * 32 + 1], eser[3 * 16 + 1];
	CK_ATTRIBUTE at[6] = {
		{ CKA_TOKEN, &token, sizeof(token) },
		{ CKA_KEY_TYPE, &kt, sizeof(kt) },
		{ CKA_SENSITIVE, &sens, sizeof(sens) },
		{ CKA_EXTRACTABLE, &extr, sizeof(extr) },
		{ CKA_ENCRYPT, &ki->encrypt, sizeof(ki->encrypt) },
		{ CKA_DECRYPT, &ki->decrypt, sizeof(ki->decrypt) },
	};
	CK_ATTRIBUTE names[2] = { { CKA_ID, id, sizeof(id) }, { CKA_LABEL, label, sizeof(label) } };
	CK_RV rv;

	memset(ki, 0, sizeof(*ki));
	/* Only a logged-in search is authoritative about absence. */
	rv = f->C_GetSessionInfo(w->sess, &si);
	if (rv == CKR_OK && si.state != CKS_RO_USER_FUNCTIONS && si.state != CKS_RW_USER_FUNCTIONS)
		rv = CKR_USER_NOT_LOGGED_IN;
	if (rv != CKR_OK)
		goto fail_rv;
	rv = f->C_FindObjectsInit(w->sess, tmpl, 2);
	if (rv != CKR_OK)
		goto fail_rv;
	rv = f->C_FindObjects(w->sess, hs, 2, &n);
	(void)f->C_FindObjectsFinal(w->sess);
	if (rv != CKR_OK)
		goto fail_rv;
	if (n == 0)
		return 1;
	if (n > 1) {
		char desc[3 * LC_KMS_PKCS11_LABEL_MAX + 64], hint[600];

		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			      "several secret keys with %s on %s: the key must be unique: give it by id:<hex> in the key configuration, or delete or relabel the others; check %s",
			      key_desc(ref, desc, sizeof(desc)), where(w, hint, 300),
			      check_cmd(w, hint + 300, 300));
	}
	ki->h = hs[0];
	rv = f->C_GetAttributeValue(w->sess, ki->h, at, 6);
	if (rv != CKR_OK)
		goto fail_rv;
	rv = f->C_GetAttributeValue(w->sess, ki->h, names, 2);
	if (rv != CKR_OK && rv != CKR_ATTRIBUTE_TYPE_INVALID && rv != CKR_BUFFER_TOO_SMALL)
		goto fail_rv;
	/* A module that says more than the buffer holds (it should not, but
	 * CKR_BUFFER_TOO_SMALL leaves the length to it) gives no value. */
	for (int i = 0; i < 2; i++)
		if (names[i].ulValueLen == CK_UNAVAILABLE_INFORMATION ||
		    names[i].ulValueLen > (i ? sizeof(label) : sizeof(id)))
			names[i].ulValueLen = 0;
	if (lc_p11_uri_escape(id, names[0].ulValueLen, true, eid, sizeof(eid)) < 0 ||
	    lc_p11_uri_escape(label, names[1].ulValueLen, false, elabel, sizeof(elabel)) < 0 ||
	    lc_p11_uri_escape((const uint8_t *)w->tok_label, strlen(w->tok_label), false, etok,
			      sizeof(etok)) < 0 ||
	    lc_p11_uri_escape((const uint8_t *)w->tok_serial, strlen(w->tok_serial), false, eser,
			      sizeof(eser)) < 0)
		return lc_err(err, -EINVAL, LC_ERRC_INTERNAL, "PKCS#11 URI does not fit");
	if (snprintf(ki->uri, sizeof(ki->uri), "pkcs11:token=%s;serial=%s;object=%s;id=%s;type=secret-key",
		     etok, eser, elabel, eid) >= (int)sizeof(ki->uri)) {
		ki->uri[0] = '\0';
		return lc_err(err, -ENAMETOOLONG, LC_ERRC_MISCONFIG,
			      "the PKCS#11 URI of the key (its identity) would be longer than %d bytes: give the key a shorter label or id",
			      LC_PROVIDER_KEYID_MAX - 1);
	}
	if (kt != CKK_AES)
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			      "PKCS#11 key %s is not an AES key (CKA_KEY_TYPE 0x%lx)", ki->uri,
			      (unsigned long)kt);
	/* A session object vanishes with its session: that would read as
	 * the CMK's destruction and revoke every volume under it. */
	if (!token)
		return lc_err(err, -EPERM, LC_ERRC_MISCONFIG,
			      "PKCS#11 key %s is refused as a CMK: it is a session object (CKA_TOKEN is false) and vanishes with its session: create it as a token object (pkcs11-tool --keygen does)",
			      ki->uri);
	if (!sens || extr)
		return lc_err(err, -EPERM, LC_ERRC_MISCONFIG,
			      "PKCS#11 key %s is refused as a CMK: it must never leave the token (CKA_SENSITIVE is %s, CKA_EXTRACTABLE is %s; expected true and false)",
			      ki->uri, sens ? "true" : "false", extr ? "true" : "false");
	return 0;
fail_rv:
	*rvp = rv;
	return rv_err(err, rv, "object search");
}

/* ---- operations (workers) --------------------------------------------- */

/* AAD: the blob header, then the context. */
static int make_aad(const uint8_t hdr[LC_P11_BLOB_HDR_LEN], const char *context, uint8_t **aad,
		    size_t *len, struct lc_error *err)
{
	size_t cl = strlen(context);

	*aad = malloc(LC_P11_BLOB_HDR_LEN + cl);
	if (!*aad)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	memcpy(*aad, hdr, LC_P11_BLOB_HDR_LEN);
	memcpy(*aad + LC_P11_BLOB_HDR_LEN, context, cl);
	*len = LC_P11_BLOB_HDR_LEN + cl;
	return 0;
}

static int do_wrap(struct worker *w, struct job *j, const struct keyinfo *ki, CK_RV *rvp)
{
	CK_FUNCTION_LIST_PTR f = w->k->f;
	static const uint8_t hdr[LC_P11_BLOB_HDR_LEN] = { LC_P11_BLOB_VERSION, LC_P11_IV_LEN,
							  LC_P11_TAG_LEN, 0 };
	_cleanup_free_ uint8_t *aad = NULL;
	uint8_t *blob = NULL;
	size_t aad_len, cap = LC_P11_BLOB_OVERHEAD + j->pt_in.len;
	CK_GCM_PARAMS gp = { 0 };
	CK_MECHANISM mech = { CKM_AES_GCM, &gp, sizeof(gp) };
	CK_ULONG out_len;
	CK_RV rv;
	int r;

	if (!ki->encrypt)
		return lc_err(&j->err, -EKEYREVOKED, LC_ERRC_DENIED,
			      "PKCS#11 key %s may not encrypt (CKA_ENCRYPT is false): it is disabled",
			      ki->uri);
	r = make_aad(hdr, j->context, &aad, &aad_len, &j->err);
	if (r < 0)
		return r;
	blob = malloc(cap);
	if (!blob)
		return lc_err(&j->err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	memcpy(blob, hdr, LC_P11_BLOB_HDR_LEN);
	r = lc_rand_bytes(blob + LC_P11_BLOB_HDR_LEN, LC_P11_IV_LEN, false, "a GCM IV", &j->err);
	if (r < 0)
		goto fail;
	gp.pIv = blob + LC_P11_BLOB_HDR_LEN;
	gp.ulIvLen = LC_P11_IV_LEN;
	gp.ulIvBits = LC_P11_IV_LEN * 8;
	gp.pAAD = aad;
	gp.ulAADLen = aad_len;
	gp.ulTagBits = LC_P11_TAG_LEN * 8;
	rv = f->C_EncryptInit(w->sess, &mech, ki->h);
	if (rv != CKR_OK) {
		*rvp = rv;
		r = rv_err(&j->err, rv, "C_EncryptInit (CKM_AES_GCM)");
		goto fail;
	}
	out_len = cap - LC_P11_BLOB_HDR_LEN - LC_P11_IV_LEN;
	rv = f->C_Encrypt(w->sess, j->pt_in.p, j->pt_in.len,
			  blob + LC_P11_BLOB_HDR_LEN + LC_P11_IV_LEN, &out_len);
	if (rv != CKR_OK) {
		*rvp = rv;
		r = rv_err(&j->err, rv, "C_Encrypt (CKM_AES_GCM)");
		goto fail;
	}
	if (out_len != j->pt_in.len + LC_P11_TAG_LEN) {
		r = lc_err(&j->err, -EPROTO, LC_ERRC_MISCONFIG,
			   "PKCS#11 C_Encrypt returned %lu bytes for %zu bytes of plaintext: expected ciphertext and a %d-byte tag",
			   (unsigned long)out_len, j->pt_in.len, LC_P11_TAG_LEN);
		goto fail;
	}
	j->blob_out.p = blob;
	j->blob_out.len = cap;
	return 0;
fail:
	free(blob);
	return r;
}

static int do_unwrap(struct worker *w, struct job *j, const struct keyinfo *ki, CK_RV *rvp)
{
	CK_FUNCTION_LIST_PTR f = w->k->f;
	_cleanup_secret_ struct lc_secret out = { 0 };
	_cleanup_free_ uint8_t *aad = NULL;
	const uint8_t *iv, *ct;
	size_t ct_len, aad_len;
	CK_GCM_PARAMS gp = { 0 };
	CK_MECHANISM mech = { CKM_AES_GCM, &gp, sizeof(gp) };
	CK_ULONG out_len;
	CK_RV rv;
	int r;

	r = lc_p11_blob_parse(j->blob_in.p, j->blob_in.len, &iv, &ct, &ct_len, &j->err);
	if (r < 0)
		return r;
	if (!ki->decrypt)
		return lc_err(&j->err, -EKEYREVOKED, LC_ERRC_DENIED,
			      "PKCS#11 key %s may not decrypt (CKA_DECRYPT is false): it is disabled",
			      ki->uri);
	r = make_aad(j->blob_in.p, j->context, &aad, &aad_len, &j->err);
	if (r < 0)
		return r;
	gp.pIv = (CK_BYTE_PTR)iv;
	gp.ulIvLen = LC_P11_IV_LEN;
	gp.ulIvBits = LC_P11_IV_LEN * 8;
	gp.pAAD = aad;
	gp.ulAADLen = aad_len;
	gp.ulTagBits = LC_P11_TAG_LEN * 8;
	/* Room for the whole input: some modules want it before the tag is checked. */
	r = lc_secret_alloc(&out, ct_len);
	if (r < 0)
		return lc_err(&j->err, r, LC_ERRC_INTERNAL, "out of memory");
	rv = f->C_DecryptInit(w->sess, &mech, ki->h);
	if (rv != CKR_OK) {
		*rvp = rv;
		return rv_err(&j->err, rv, "C_DecryptInit (CKM_AES_GCM)");
	}
	out_len = ct_len;
	rv = f->C_Decrypt(w->sess, (CK_BYTE_PTR)ct, ct_len, out.p, &out_len);
	if (rv == CKR_ENCRYPTED_DATA_INVALID || rv == CKR_ENCRYPTED_DATA_LEN_RANGE ||
	    rv == CKR_GENERAL_ERROR)
		return lc_err(&j->err, -EBADMSG, LC_ERRC_INVALID,
			      "PKCS#11 key %s could not open the blob (%s): the encryption context did not match, or the blob is corrupt or was made under another key",
			      ki->uri, rv_name(rv));
	if (rv != CKR_OK) {
		*rvp = rv;
		return rv_err(&j->err, rv, "C_Decrypt (CKM_AES_GCM)");
	}
	if (out_len != ct_len - LC_P11_TAG_LEN)
		return lc_err(&j->err, -EPROTO, LC_ERRC_MISCONFIG,
			      "PKCS#11 C_Decrypt returned %lu bytes for %zu: expected %zu",
			      (unsigned long)out_len, ct_len, ct_len - LC_P11_TAG_LEN);
	r = lc_secret_alloc(&j->pt_out, out_len);
	if (r < 0)
		return lc_err(&j->err, r, LC_ERRC_INTERNAL, "out of memory");
	memcpy(j->pt_out.p, out.p, out_len);
	return 0;
}

/* The bound form of an unbound @ref found on @w's token:
 * "serial=<S>;id:<hex>" or "serial=<S>;label:<text>" ("" if @ref is
 * bound already or the serial cannot be written in it). */
static void bind_serial(const struct worker *w, const struct lc_p11_ref *ref, char *out,
			size_t n)
{
	int o;

	out[0] = '\0';
	if (ref->serial[0] || !w->tok_serial[0] || strchr(w->tok_serial, ';'))
		return;
	o = snprintf(out, n, "serial=%s;%s", w->tok_serial, ref->by_id ? "id:" : "label:");
	for (size_t i = 0; ref->by_id && i < ref->id_len && o > 0 && (size_t)o + 3 <= n; i++)
		o += snprintf(out + o, n - (size_t)o, "%02x", ref->id[i]);
	if (!ref->by_id && o > 0)
		o += snprintf(out + o, n - (size_t)o, "%s", ref->label);
	if (o < 0 || (size_t)o >= n)
		out[0] = '\0';
}

/* One try of @j on @w's session; *@rvp gets the PKCS#11 code that failed it. */
static int try_job(struct worker *w, struct job *j, bool full, CK_RV *rvp)
{
	struct keyinfo ki;
	int r;

	*rvp = CKR_OK;
	lc_err_clear(&j->err);
	r = ensure_session(w, full, &j->err);
	if (r < 0) {
		/* A session that could not be opened: the reopen already happened. */
		return r;
	}
	/* A bound reference names the token the key was made on: another
	 * serial under the configured label is another token, or the same
	 * one re-initialised; its missing key is no revocation. */
	if (j->ref.serial[0] && strcmp(j->ref.serial, w->tok_serial)) {
		char loc[300];

		return lc_err(&j->err, -ENXIO, LC_ERRC_MISCONFIG,
			      "%s is not the token the key was made on: token label \"%s\" now has serial %s, the key was made on serial %s: a re-initialised or different token (restore the token, or point [pkcs11] at the token with serial %s)",
			      where(w, loc, sizeof(loc)), w->tok_label, w->tok_serial,
			      j->ref.serial, j->ref.serial);
	}
	r = find_key(w, &j->ref, &ki, rvp, &j->err);
	if (ki.uri[0])
		snprintf(j->rep.key_id, sizeof(j->rep.key_id), "%s", ki.uri);
	if (r == 1) {
		char desc[3 * LC_KMS_PKCS11_LABEL_MAX + 64], loc[300], cmd[300];

		key_desc(&j->ref, desc, sizeof(desc));
		where(w, loc, sizeof(loc));
		check_cmd(w, cmd, sizeof(cmd));
		if (!j->ref.serial[0])
			return lc_err(&j->err, -ENOENT, LC_ERRC_MISCONFIG,
				      "no secret key with %s on %s, and the key reference is not bound to a token serial: a deleted key cannot be told from a token re-initialised under the same label, so this is no revocation; if the token is the right one, re-create the key configuration (keyconfig create binds the serial: serial=<S>;...; then lakecryptctl workspace rekey) and check %s",
				      desc, loc, cmd);
		if (j->op == JOB_STATE) {
			/* Authoritative (logged in): the watcher acts on it. */
			lc_warn("no secret key with %s on %s: destroyed, or the key configuration names another key; check %s",
				desc, loc, cmd);
			j->rep.state = LC_KEY_DESTROYED;
			return 0;
		}
		return lc_err(&j->err, -EKEYREVOKED, LC_ERRC_DENIED,
			      "no secret key with %s on %s: it was deleted, or the key configuration names another key; check %s",
			      desc, loc, cmd);
	}
	if (r < 0)
		return r;
	switch (j->op) {
	case JOB_STATE:
		j->rep.state = ki.encrypt && ki.decrypt ? LC_KEY_ENABLED : LC_KEY_DISABLED;
		bind_serial(w, &j->ref, j->rep.bound_ref, sizeof(j->rep.bound_ref));
		return 0;
	case JOB_WRAP:
		return do_wrap(w, j, &ki, rvp);
	case JOB_UNWRAP:
		return do_unwrap(w, j, &ki, rvp);
	}
	return lc_err(&j->err, -EINVAL, LC_ERRC_INTERNAL, "unknown PKCS#11 job");
}

/* A job: once, and once more on a fresh session (and token lookup) if the
 * token went away or the session was lost. */
/* Errors that leave the session itself unusable for the next operation
 * (an operation the module still considers active): it is closed. */
static bool rv_stale(CK_RV rv)
{
	return rv == CKR_USER_NOT_LOGGED_IN || rv == CKR_BUFFER_TOO_SMALL ||
	       rv == CKR_OPERATION_ACTIVE;
}

/* After a failure with @rv: close the session if it is still open but
 * unusable, forget it if the module already closed it. */
static void after_failure(struct worker *w, CK_RV rv)
{
	if (!w->have_sess)
		return;
	if (rv_stale(rv))
		(void)w->k->f->C_CloseSession(w->sess);
	if (rv_stale(rv) || rv_reopen(rv))
		drop_session(w);
}

static void run_job(struct worker *w, struct job *j)
{
	struct lc_kms_pkcs11 *k = w->k;
	CK_RV rv;
	int r;

	r = try_job(w, j, false, &rv);
	if (r < 0 && (rv_reopen(rv) || rv_stale(rv))) {
		char first[LC_ERROR_MSG_MAX], second[LC_ERROR_MSG_MAX];

		snprintf(first, sizeof(first), "%s", j->err.msg);
		if (rv == CKR_CRYPTOKI_NOT_INITIALIZED) {
			pthread_mutex_lock(&k->mod_lock);
			k->initialized = false;
			pthread_mutex_unlock(&k->mod_lock);
		}
		after_failure(w, rv);
		lc_warn("PKCS#11: %s; opening the session again", first);
		/* The token is looked up again only if it may have moved. */
		r = try_job(w, j, rv_reopen(rv) && rv != CKR_USER_NOT_LOGGED_IN, &rv);
		if (r < 0) {
			after_failure(w, rv);
			if (j->err.cls == LC_ERRC_TRANSIENT) {
				snprintf(second, sizeof(second), "%s", j->err.msg);
				lc_err(&j->err, j->err.code, LC_ERRC_TRANSIENT,
				       "%s (after the session was opened again once: %s)", second, first);
			}
		}
	} else if (r < 0) {
		after_failure(w, rv);
	}
	j->r = r;
}

/* ---- jobs and workers --------------------------------------------------- */

static void job_free(struct job *j)
{
	if (!j)
		return;
	if (j->context)
		free(j->context);
	lc_secret_free(&j->pt_in);
	lc_secret_free(&j->pt_out);
	free(j->blob_in.p);
	free(j->blob_out.p);
	free(j);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct lc_kms_pkcs11 *k = w->k;

	pthread_mutex_lock(&k->lock);
	for (;;) {
		struct job *j;

		while (!k->stopping && !k->head)
			pthread_cond_wait(&k->cond, &k->lock);
		if (k->stopping)
			break;
		j = k->head;
		k->head = j->next;
		if (!k->head)
			k->tail = NULL;
		j->next = NULL;
		j->taken = true;
		k->busy++;
		pthread_mutex_unlock(&k->lock);

		run_job(w, j);

		pthread_mutex_lock(&k->lock);
		k->busy--;
		if (j->abandoned)
			job_free(j);
		else
			j->done = true;
		pthread_cond_broadcast(&k->done);
	}
	pthread_mutex_unlock(&k->lock);
	return NULL;
}

static void add_ms(struct timespec *ts, uint64_t ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += (time_t)(ms / 1000);
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Queue @j and wait for it at most @timeout_ms.  0 and @j is the caller's
 * to free; or a TRANSIENT error and @j belongs to a worker or is freed. */
static int submit(struct lc_kms_pkcs11 *k, struct job *j, uint64_t timeout_ms,
		  struct lc_error *err)
{
	struct timespec dl;
	int r = 0;

	if (!timeout_ms)
		timeout_ms = LC_KMS_PKCS11_TIMEOUT_MS;
	add_ms(&dl, timeout_ms);
	pthread_mutex_lock(&k->lock);
	if (k->stopping) {
		pthread_mutex_unlock(&k->lock);
		job_free(j);
		return lc_err(err, -ESHUTDOWN, LC_ERRC_TRANSIENT, "the PKCS#11 provider is closing");
	}
	if (k->tail)
		k->tail->next = j;
	else
		k->head = j;
	k->tail = j;
	pthread_cond_signal(&k->cond);
	while (!j->done && r != ETIMEDOUT)
		r = pthread_cond_timedwait(&k->done, &k->lock, &dl);
	if (j->done) {
		pthread_mutex_unlock(&k->lock);
		return 0;
	}
	if (!j->taken) {
		struct job **pp = &k->head, *prev = NULL;

		while (*pp && *pp != j) {
			prev = *pp;
			pp = &(*pp)->next;
		}
		if (*pp)
			*pp = j->next;
		if (k->tail == j)
			k->tail = prev;
		pthread_mutex_unlock(&k->lock);
		job_free(j);
		return lc_err(err, -ETIMEDOUT, LC_ERRC_TRANSIENT,
			      "no PKCS#11 session was free within %" PRIu64 " ms: all %u are waiting for the module",
			      timeout_ms, k->nworkers);
	}
	j->abandoned = true;
	pthread_mutex_unlock(&k->lock);
	return lc_err(err, -ETIMEDOUT, LC_ERRC_TRANSIENT,
		      "the PKCS#11 module did not answer within %" PRIu64 " ms (its session stays busy until it does)",
		      timeout_ms);
}

/* Run one operation: copy the inputs into a job, wait, copy the outputs. */
static int call(struct lc_kms_pkcs11 *k, enum job_op op, const char *key_ref,
		const char *context, const struct lc_secret *pt, const struct lc_buf *blob,
		uint64_t timeout_ms, struct lc_buf *blob_out, struct lc_secret *pt_out,
		struct lc_provider_reply *reply, struct lc_error *err)
{
	struct job *j = calloc(1, sizeof(*j));
	int r;

	if (!k->module) {
		free(j);
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			      "no PKCS#11 module is configured: set module, token_label and pin_file in [pkcs11]");
	}
	if (!j)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	j->op = op;
	r = lc_p11_parse_ref(key_ref, &j->ref, err);
	if (r < 0)
		goto fail;
	if (context) {
		if (strlen(context) > LC_KMS_PKCS11_MAX_CONTEXT) {
			r = lc_err(err, -EINVAL, LC_ERRC_INVALID,
				   "encryption context longer than %d bytes", LC_KMS_PKCS11_MAX_CONTEXT);
			goto fail;
		}
		j->context = strdup(context);
		if (!j->context)
			goto nomem;
	}
	if (pt) {
		if (!pt->len || pt->len > LC_KMS_PKCS11_MAX_PLAINTEXT) {
			r = lc_err(err, -EINVAL, LC_ERRC_INVALID,
				   "PKCS#11 wraps 1 to %d bytes, not %zu", LC_KMS_PKCS11_MAX_PLAINTEXT,
				   pt->len);
			goto fail;
		}
		if (lc_secret_alloc(&j->pt_in, pt->len) < 0)
			goto nomem;
		memcpy(j->pt_in.p, pt->p, pt->len);
	}
	if (blob) {
		r = lc_p11_blob_parse(blob->p, blob->len, &(const uint8_t *){ NULL },
				      &(const uint8_t *){ NULL }, &(size_t){ 0 }, err);
		if (r < 0)
			goto fail;
		j->blob_in.p = malloc(blob->len);
		if (!j->blob_in.p)
			goto nomem;
		memcpy(j->blob_in.p, blob->p, blob->len);
		j->blob_in.len = blob->len;
	}
	r = submit(k, j, timeout_ms, err);
	if (r < 0)
		return r;	/* @j is gone */
	if (reply) {
		snprintf(reply->key_id, sizeof(reply->key_id), "%s", j->rep.key_id);
		snprintf(reply->bound_ref, sizeof(reply->bound_ref), "%s", j->rep.bound_ref);
		reply->state = j->rep.state;
	}
	r = j->r;
	if (r < 0) {
		*err = j->err;
	} else {
		lc_err_clear(err);
		if (blob_out) {
			*blob_out = j->blob_out;
			j->blob_out.p = NULL;
		}
		if (pt_out) {
			*pt_out = j->pt_out;
			memset(&j->pt_out, 0, sizeof(j->pt_out));
		}
	}
	job_free(j);
	return r;
nomem:
	r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
fail:
	job_free(j);
	return r;
}

/* ---- the provider -------------------------------------------------------- */

static char *dup_opt(const char *s, bool *oom)
{
	char *d;

	if (!s || !*s)
		return NULL;
	d = strdup(s);
	if (!d)
		*oom = true;
	return d;
}

int lc_kms_pkcs11_new(struct lc_kms_pkcs11 **kp, const struct lc_kms_pkcs11_config *cfg,
		      struct lc_error *err)
{
	struct lc_kms_pkcs11 *k;
	pthread_condattr_t ca;
	bool oom = false;
	int r;

	*kp = NULL;
	if (cfg->module && cfg->module[0]) {
		if (cfg->module[0] != '/')
			return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
				      "[pkcs11] module must be an absolute path, not \"%s\"", cfg->module);
		if ((!cfg->token_label || !cfg->token_label[0]) &&
		    (!cfg->token_serial || !cfg->token_serial[0]))
			return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
				      "[pkcs11] needs token_label or token_serial to pick the token");
		if (cfg->token_label && strlen(cfg->token_label) > 32)
			return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
				      "[pkcs11] token_label is longer than 32 bytes (CK_TOKEN_INFO.label)");
		if (cfg->token_serial && strlen(cfg->token_serial) > 16)
			return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
				      "[pkcs11] token_serial is longer than 16 bytes (CK_TOKEN_INFO.serialNumber)");
		if (!cfg->pin_file || !cfg->pin_file[0])
			return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
				      "[pkcs11] needs pin_file, the file holding the user PIN");
	}
	if (cfg->sessions > LC_KMS_PKCS11_SESSIONS_MAX)
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG, "[pkcs11] sessions must be 1 to %d",
			      LC_KMS_PKCS11_SESSIONS_MAX);
	k = calloc(1, sizeof(*k));
	if (!k)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	k->module = dup_opt(cfg->module, &oom);
	k->token_label = dup_opt(cfg->token_label, &oom);
	k->token_serial = dup_opt(cfg->token_serial, &oom);
	if (oom) {
		free(k->module);
		free(k->token_label);
		free(k->token_serial);
		free(k);
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	}
	pthread_mutex_init(&k->lock, NULL);
	pthread_mutex_init(&k->mod_lock, NULL);
	pthread_cond_init(&k->cond, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&k->done, &ca);
	pthread_condattr_destroy(&ca);
	if (k->module) {
		r = lc_p11_read_pin(cfg->pin_file, geteuid(), &k->pin, err);
		if (r < 0)
			goto fail;
	}
	/* Without a module, no sessions: every call is refused in call(). */
	k->nworkers = !k->module ? 0 : cfg->sessions ? cfg->sessions : LC_KMS_PKCS11_SESSIONS_DEFAULT;
	k->w = calloc(k->nworkers + 1, sizeof(*k->w));
	if (!k->w) {
		r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
		goto fail;
	}
	for (unsigned int i = 0; i < k->nworkers; i++) {
		k->w[i].k = k;
		r = pthread_create(&k->w[i].thread, NULL, worker_main, &k->w[i]);
		if (r) {
			r = lc_err(err, -r, LC_ERRC_INTERNAL, "cannot start PKCS#11 session thread: %s",
				   strerror(r));
			goto fail;
		}
		k->w[i].started = true;
	}
	*kp = k;
	return 0;
fail:
	lc_kms_pkcs11_free(k);
	return r;
}

void lc_kms_pkcs11_free(struct lc_kms_pkcs11 *k)
{
	bool stuck = false;

	if (!k)
		return;
	pthread_mutex_lock(&k->lock);
	k->stopping = true;
	pthread_cond_broadcast(&k->cond);
	if (k->busy) {	/* give a slow module a moment to answer */
		struct timespec dl;
		int r = 0;

		add_ms(&dl, LC_KMS_PKCS11_CLOSE_WAIT_MS);
		while (k->busy && r != ETIMEDOUT)
			r = pthread_cond_timedwait(&k->done, &k->lock, &dl);
	}
	stuck = k->busy > 0;
	pthread_mutex_unlock(&k->lock);
	if (stuck) {
		/* A worker is inside the module and may never come back: leave
		 * the module, the workers and this state alone (the process is
		 * going away), but wipe the PIN. */
		lc_warn("PKCS#11: a call is still inside module %s at close: it is left running",
			k->module);
		pthread_mutex_lock(&k->mod_lock);
		lc_secret_free(&k->pin);
		pthread_mutex_unlock(&k->mod_lock);
		for (unsigned int i = 0; k->w && i < k->nworkers; i++)
			if (k->w[i].started)
				pthread_detach(k->w[i].thread);
		return;
	}
	for (unsigned int i = 0; k->w && i < k->nworkers; i++)
		if (k->w[i].started)
			pthread_join(k->w[i].thread, NULL);
	if (k->f) {
		for (unsigned int i = 0; k->w && i < k->nworkers; i++)
			if (k->w[i].have_sess)
				k->f->C_CloseSession(k->w[i].sess);
		if (k->initialized && k->own_init)
			k->f->C_Finalize(NULL);
	}
	if (k->dl)
		dlclose(k->dl);
	free(k->w);
	lc_secret_free(&k->pin);
	free(k->module);
	free(k->token_label);
	free(k->token_serial);
	pthread_mutex_destroy(&k->lock);
	pthread_mutex_destroy(&k->mod_lock);
	pthread_cond_destroy(&k->cond);
	pthread_cond_destroy(&k->done);
	free(k);
}

static int p11_wrap(void *priv, const char *key_ref, const struct lc_secret *plaintext,
		    const char *context, uint64_t timeout_ms, struct lc_buf *blob,
		    struct lc_provider_reply *reply, struct lc_error *err)
{
	return call(priv, JOB_WRAP, key_ref, context ? context : "", plaintext, NULL, timeout_ms,
		    blob, NULL, reply, err);
}

static int p11_unwrap(void *priv, const char *key_ref, const struct lc_buf *blob,
		      const char *context, uint64_t timeout_ms, struct lc_secret *plaintext,
		      struct lc_provider_reply *reply, struct lc_error *err)
{
	return call(priv, JOB_UNWRAP, key_ref, context ? context : "", NULL, blob, timeout_ms,
		    NULL, plaintext, reply, err);
}

static int p11_key_state(void *priv, const char *key_ref, uint64_t timeout_ms,
			 struct lc_provider_reply *reply, struct lc_error *err)
{
	return call(priv, JOB_STATE, key_ref, NULL, NULL, NULL, timeout_ms, NULL, NULL, reply, err);
}

static void p11_destroy(void *priv)
{
	lc_kms_pkcs11_free(priv);
}

const struct lc_provider_ops lc_kms_pkcs11_ops = {
	.name = LC_KMS_PKCS11_NAME,
	.wrap = p11_wrap,
	.unwrap = p11_unwrap,
	.key_state = p11_key_state,
	.destroy = p11_destroy,
};

void lc_kms_pkcs11_provider_init(struct lc_provider *p, struct lc_kms_pkcs11 *k)
{
	lc_provider_init(p, &lc_kms_pkcs11_ops, k);
}
