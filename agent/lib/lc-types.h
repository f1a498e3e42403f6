/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Types shared by the header codec, the envelope crypto and the agent.
 */
#ifndef LC_TYPES_H
#define LC_TYPES_H

#include <stddef.h>
#include <stdint.h>
#include <linux/dm-lakecrypt.h>

/* "MAJOR.MINOR.PATCH" of <linux/dm-lakecrypt.h>: the agent, the CLI, the
 * module and the packages carry one release number. */
#define LC_STR_(x)		#x
#define LC_STR(x)		LC_STR_(x)
#define LC_VERSION_STRING	LC_STR(LAKECRYPT_VERSION_MAJOR) "." LC_STR(LAKECRYPT_VERSION_MINOR) \
				"." LC_STR(LAKECRYPT_VERSION_PATCH)

#define LC_UUID_LEN		16
#define LC_KEK_LEN		32	/* AES-256-GCM key wrapping the DEKs */
#define LC_DEK_NONCE_LEN	12
#define LC_DEK_TAG_LEN		16
#define LC_DEK_MAX_LEN		LAKECRYPT_MAX_KEY_SIZE

/*
 * One DEK wrapped by the volume's KEK: AES-256-GCM, authenticated and bound
 * to (volume uuid, segment index, generation) through its AAD.
 */
struct lc_wrapped_dek {
	uint32_t generation;
	uint8_t nonce[LC_DEK_NONCE_LEN];
	uint8_t tag[LC_DEK_TAG_LEN];
	uint8_t ct[LC_DEK_MAX_LEN];	/* key_size bytes are used */
};

/* A byte string owned by its holder (not secret). */
struct lc_buf {
	uint8_t *p;
	size_t len;
};

#endif /* LC_TYPES_H */
