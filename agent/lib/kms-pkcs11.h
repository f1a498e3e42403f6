/* SPDX-License-Identifier: GPL-2.0 */
/*
 * PKCS#11 HSM provider (provider kind "pkcs11"): the CMK is an AES secret
 * key object on a token, reached through a PKCS#11 module (a shared
 * library loaded with dlopen).  Interface: PKCS#11 Cryptographic Token
 * Interface Base Specification v2.40 (OASIS), header from p11-kit.
 *
 * Configuration ([pkcs11] in agent.conf): the module's path, the token by
 * label and/or serial number (CK_TOKEN_INFO.label / serialNumber, blank
 * padded there, compared trimmed), the user PIN's file, the number of
 * sessions.  The PIN file is read once, when the provider is made (agent
 * start); it must be a regular file (not a symlink) owned by the agent's
 * user or root with no group/other permissions, at most
 * LC_KMS_PKCS11_PIN_MAX bytes; one trailing newline is dropped.  The PIN
 * lives in locked memory (secmem.h) and is wiped at close.
 *
 * Key reference (--key of keyconfig create):
 *   "id:<hex>"      the object with this CKA_ID (1..64 bytes)
 *   "label:<text>"  the object with this CKA_LABEL
 *   "<text>"        the same as "label:<text>"
 *   "serial=<S>;id:<hex>" or "serial=<S>;label:<text>"
 *                   bound: the key on the token whose serial number
 *                   (CK_TOKEN_INFO.serialNumber, trimmed, 1..16 bytes, no
 *                   ';') is S.  key_state of an unbound reference returns
 *                   the bound one in reply->bound_ref, which keyconfig
 *                   create stores: a token re-initialised under the same
 *                   label gets a new serial, and then every call is
 *                   MISCONFIG ("... a re-initialised or different token"),
 *                   never a destroyed key.  (A key label beginning with
 *                   "serial=" is given as label:serial=....)
 * always among CKO_SECRET_KEY objects.  The CMK's identity reported to the
 * agent (reply key_id, stored as the volume's cmk_id and audited) is an
 * RFC 7512 PKCS#11 URI naming token and key:
 *   pkcs11:token=<label>;serial=<serial>;object=<label>;id=<%xx..>;type=secret-key
 *
 * The key object must be CKA_CLASS CKO_SECRET_KEY, CKA_KEY_TYPE CKK_AES,
 * CKA_SENSITIVE true and CKA_EXTRACTABLE false; otherwise every call is
 * refused (MISCONFIG), key_state included, so keyconfig create refuses it.
 *
 * Wrap / unwrap: C_Encrypt / C_Decrypt with CKM_AES_GCM (v2.40 section
 * 2.10.4), a 96-bit IV drawn by the agent (OpenSSL), a 128-bit tag, and
 * AAD = the blob's 4 header bytes || the KEK's encryption context, so a
 * blob opens only under the context it was made for.  Blob, version 1:
 *   u8 version (1) | u8 IV length (12) | u8 tag length (16) | u8 0
 *   | IV[12] | ciphertext (as long as the plaintext) | tag[16]
 * (the token's C_Encrypt output is ciphertext || tag, section 2.10.4).
 *
 * key_state: the object found, CKA_ENCRYPT and CKA_DECRYPT both true ->
 * enabled; either withdrawn -> disabled; no such object on the right,
 * logged-in token -> destroyed, for a bound reference only: an unbound
 * one cannot tell a deleted key from a token re-initialised under the
 * same label, and a missing key is MISCONFIG for it.  Only a search that ran in a session
 * logged in as CKU_USER on the configured token counts: a token that is
 * absent or not logged in is TRANSIENT, never a revocation.
 *
 * Sessions: C_Initialize with CKF_OS_LOCKING_OK; a pool of `sessions`
 * worker threads, each owning one session, opened at first use and reused.
 * The PKCS#11 login state is per application and token (section 5.6), so
 * the user logs in once.  Every call runs on a worker and the caller waits
 * at most its timeout: a module that never answers costs the caller
 * timeout_ms (TRANSIENT) and holds only that worker's session.
 *
 * Errors:
 *   key object missing (bound reference, token of its serial),
 *   CKA_DECRYPT (unwrap) or CKA_ENCRYPT (wrap) false,
 *   CKR_KEY_FUNCTION_NOT_PERMITTED                 -> DENIED
 *   key object missing for an unbound reference, a token whose serial is
 *   not the bound reference's                      -> MISCONFIG
 *   CKR_DEVICE_REMOVED, CKR_TOKEN_NOT_PRESENT, CKR_SESSION_HANDLE_INVALID,
 *   CKR_SESSION_CLOSED, CKR_USER_NOT_LOGGED_IN, CKR_CRYPTOKI_NOT_INITIALIZED
 *                        -> the session (and slot) is opened again once and
 *                           the operation repeated; a second failure -> TRANSIENT
 *   CKR_OPERATION_ACTIVE, CKR_BUFFER_TOO_SMALL (an operation the module
 *   still holds open) -> the session is closed, a new one opened once
 *   no token with the label/serial, CKR_DEVICE_ERROR, CKR_DEVICE_MEMORY,
 *   CKR_FUNCTION_FAILED, CKR_KEY_HANDLE_INVALID, timeout -> TRANSIENT
 *   CKR_PIN_INCORRECT, CKR_PIN_INVALID, CKR_PIN_LEN_RANGE, CKR_PIN_EXPIRED,
 *   CKR_PIN_LOCKED, a token whose CKF_USER_PIN_LOCKED or
 *   CKF_USER_PIN_FINAL_TRY is set -> MISCONFIG, and C_Login is never
 *   called again by this provider (restart the agent after fixing the PIN:
 *   a locked-out PIN is worse than a failed open)
 *   module not loadable / no C_GetFunctionList, several objects or tokens
 *   matching, a token under the configured label whose serial is not the
 *   one the provider first found there (another token took its place), key not AES, extractable or not sensitive, mechanism or IV
 *   refused by the token, any other CKR_*   -> MISCONFIG (never a kill)
 *   tag mismatch (CKR_ENCRYPTED_DATA_INVALID, and SoftHSM's
 *   CKR_GENERAL_ERROR at C_Decrypt), malformed or foreign blob -> INVALID
 */
#ifndef LC_KMS_PKCS11_H
#define LC_KMS_PKCS11_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lc-error.h"
#include "lc-types.h"
#include "provider.h"
#include "secmem.h"

#define LC_KMS_PKCS11_NAME		"pkcs11"
#define LC_KMS_PKCS11_PIN_MAX		256	/* bytes of PIN */
#define LC_KMS_PKCS11_LABEL_MAX		255	/* bytes of a key label */
#define LC_KMS_PKCS11_ID_MAX		64	/* bytes of a CKA_ID */
#define LC_KMS_PKCS11_MAX_PLAINTEXT	4096	/* bytes wrapped at once */
#define LC_KMS_PKCS11_MAX_CONTEXT	4096	/* bytes of encryption context */
#define LC_KMS_PKCS11_SESSIONS_MAX	64
#define LC_KMS_PKCS11_SESSIONS_DEFAULT	4
#define LC_KMS_PKCS11_TIMEOUT_MS	30000	/* per call when given 0 */

/* Blob format, version 1 (see above). */
#define LC_P11_BLOB_VERSION		1
#define LC_P11_BLOB_HDR_LEN		4
#define LC_P11_IV_LEN			12
#define LC_P11_TAG_LEN			16
#define LC_P11_BLOB_OVERHEAD		(LC_P11_BLOB_HDR_LEN + LC_P11_IV_LEN + LC_P11_TAG_LEN)

/* A parsed key reference. */
struct lc_p11_ref {
	char serial[17];	/* bound: the token serial the key was made on, "" if unbound */
	bool by_id;
	uint8_t id[LC_KMS_PKCS11_ID_MAX];
	size_t id_len;
	char label[LC_KMS_PKCS11_LABEL_MAX + 1];
};

/* Parse @ref (syntax above).  0, or -EINVAL (MISCONFIG) saying what is
 * wrong: empty, too long, odd or non-hex id, control characters. */
int lc_p11_parse_ref(const char *ref, struct lc_p11_ref *out, struct lc_error *err);

/*
 * Split a version 1 blob of @len bytes: @iv points at the IV
 * (LC_P11_IV_LEN bytes), @ct at ciphertext || tag, @ct_len counts both.
 * 0, or -EBADMSG (INVALID): too short, too long, unknown version, IV or
 * tag length, non-zero reserved byte.
 */
int lc_p11_blob_parse(const uint8_t *blob, size_t len, const uint8_t **iv,
		      const uint8_t **ct, size_t *ct_len, struct lc_error *err);

/* Percent-encode @len bytes of @in into @out (@size bytes, NUL included)
 * as RFC 7512 section 2.3 does for a pk11-pchar value; @all: every byte
 * (the form RFC 7512 recommends for "id", so an id has one spelling).
 * 0, or -ENOSPC. */
int lc_p11_uri_escape(const uint8_t *in, size_t len, bool all, char *out, size_t size);

/*
 * Read the PIN file @path into @pin (locked memory, exactly the PIN's
 * bytes): a regular file, not a symlink, owned by @uid or root, mode
 * without group/other bits, 1..LC_KMS_PKCS11_PIN_MAX bytes after one
 * trailing "\n" or "\r\n" is dropped, no NUL byte.  0 or -errno
 * (MISCONFIG) with a message naming the file (never its contents).
 */
int lc_p11_read_pin(const char *path, uid_t uid, struct lc_secret *pin, struct lc_error *err);

struct lc_kms_pkcs11_config {
	const char *module;		/* absolute path of the PKCS#11 module */
	const char *token_label;	/* NULL/"": any label (then serial is needed) */
	const char *token_serial;	/* NULL/"": any serial */
	const char *pin_file;		/* absolute path; see lc_p11_read_pin() */
	unsigned int sessions;		/* 1..LC_KMS_PKCS11_SESSIONS_MAX, 0: default */
};

struct lc_kms_pkcs11;

/*
 * Check @cfg, read the PIN file and start the session workers.  The
 * module is loaded, initialised and logged into at the first call (a
 * token absent at start is not an error then).  If @cfg->module is NULL
 * or "", the provider exists but every call fails MISCONFIG ("no PKCS#11
 * module configured").  0, -EINVAL (MISCONFIG: bad configuration, PIN
 * file), -ENOMEM, -EAGAIN (threads).
 */
int lc_kms_pkcs11_new(struct lc_kms_pkcs11 **k, const struct lc_kms_pkcs11_config *cfg,
		      struct lc_error *err);
/* Stop the workers, close the sessions, C_Finalize and unload the module;
 * a worker still stuck in the module is left running, and the module
 * loaded, rather than unloaded under it. */
void lc_kms_pkcs11_free(struct lc_kms_pkcs11 *k);

/* @p owns @k: lc_provider_close() frees it. */
void lc_kms_pkcs11_provider_init(struct lc_provider *p, struct lc_kms_pkcs11 *k);
extern const struct lc_provider_ops lc_kms_pkcs11_ops;

#endif /* LC_KMS_PKCS11_H */
