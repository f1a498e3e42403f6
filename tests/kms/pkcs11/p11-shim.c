// SPDX-License-Identifier: GPL-2.0
/*
 * A PKCS#11 module in front of a real one (SoftHSM in tests/kms/pkcs11.sh),
 * for fault injection and call counting:
 *   P11SHIM_MODULE  the real module (required)
 *   P11SHIM_LOG     each wrapped call appends "<function>\n" here
 *   P11SHIM_CTL     rules, one a line, read at every wrapped call:
 *                     <function> <CKR code, hex> <count>
 *                       the next <count> calls return the code instead of
 *                       reaching the real module (the count is decremented
 *                       in the file; 0 lines are dropped)
 *                     <function> hang <file>
 *                       the call waits while <file> exists, then goes on
 *                     C_GetTokenInfo.flags <hex> <count>
 *                       the next <count> C_GetTokenInfo answers have these
 *                       CKF_* flags added (a token that says its PIN is
 *                       locked or one failure from it)
 *                     C_GetTokenInfo.serial <hex> <count>
 *                       the next <count> answers carry this serial number
 *                       (%016lx): another token under the same label
 *                     C_GetAttributeValue.session 1 <count>
 *                       the next <count> answers that carry CKA_TOKEN say
 *                       false: the key reads as a session object
 * Wrapped: C_Initialize, C_GetSlotList, C_GetTokenInfo, C_OpenSession, C_GetSessionInfo,
 * C_Login, C_FindObjectsInit, C_GetAttributeValue, C_EncryptInit, C_Encrypt, C_DecryptInit,
 * C_Decrypt; everything else is the real module's.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static CK_FUNCTION_LIST real_list, shim_list;
static CK_FUNCTION_LIST_PTR real;

static void note(const char *fn)
{
	const char *path = getenv("P11SHIM_LOG");
	FILE *f;

	if (!path)
		return;
	f = fopen(path, "a");
	if (f) {
		fprintf(f, "%s\n", fn);
		fclose(f);
	}
}

/* CKR_OK: go on to the real module; else the code to return. */
static CK_RV rule(const char *fn)
{
	const char *path = getenv("P11SHIM_CTL");
	char line[512], out[8192] = "", hang[400] = "";
	CK_RV rv = CKR_OK;
	FILE *f;
	size_t o = 0;

	pthread_mutex_lock(&lock);
	note(fn);
	f = path ? fopen(path, "r") : NULL;
	if (!f) {
		pthread_mutex_unlock(&lock);
		return CKR_OK;
	}
	while (fgets(line, sizeof(line), f)) {
		char name[64], what[400];
		unsigned long code, count;

		if (sscanf(line, "%63s %399s", name, what) == 2 && !strcmp(name, fn) &&
		    !strcmp(what, "hang") && sscanf(line, "%*s %*s %399s", hang) == 1) {
			o += (size_t)snprintf(out + o, sizeof(out) - o, "%s", line);
			continue;
		}
		if (rv == CKR_OK && sscanf(line, "%63s %lx %lu", name, &code, &count) == 3 &&
		    !strcmp(name, fn) && count > 0) {
			rv = code;
			if (count > 1)
				o += (size_t)snprintf(out + o, sizeof(out) - o, "%s %#lx %lu\n", name,
						      code, count - 1);
			continue;
		}
		o += (size_t)snprintf(out + o, sizeof(out) - o, "%s", line);
	}
	fclose(f);
	f = fopen(path, "w");
	if (f) {
		fputs(out, f);
		fclose(f);
	}
	pthread_mutex_unlock(&lock);
	while (hang[0] && access(hang, F_OK) == 0)
		nanosleep(&(struct timespec){ .tv_nsec = 20000000 }, NULL);
	return rv;
}

#define RULE(fn) do { CK_RV r_ = rule(#fn); if (r_ != CKR_OK) return r_; } while (0)

static CK_RV s_Initialize(void *a)
{
	RULE(C_Initialize);
	return real->C_Initialize(a);
}

static CK_RV s_GetSlotList(CK_BBOOL p, CK_SLOT_ID_PTR l, CK_ULONG_PTR n)
{
	RULE(C_GetSlotList);
	return real->C_GetSlotList(p, l, n);
}

static CK_RV s_GetTokenInfo(CK_SLOT_ID s, CK_TOKEN_INFO_PTR ti)
{
	CK_RV rv, add;

	RULE(C_GetTokenInfo);
	rv = real->C_GetTokenInfo(s, ti);
	add = rule("C_GetTokenInfo.flags");
	if (rv == CKR_OK)
		ti->flags |= add;
	add = rule("C_GetTokenInfo.serial");
	if (rv == CKR_OK && add) {
		char ser[17];

		snprintf(ser, sizeof(ser), "%016lx", (unsigned long)add);
		memcpy(ti->serialNumber, ser, 16);
	}
	return rv;
}

static CK_RV s_OpenSession(CK_SLOT_ID s, CK_FLAGS fl, void *app, CK_NOTIFY nt, CK_SESSION_HANDLE_PTR h)
{
	RULE(C_OpenSession);
	return real->C_OpenSession(s, fl, app, nt, h);
}

static CK_RV s_GetSessionInfo(CK_SESSION_HANDLE h, CK_SESSION_INFO_PTR i)
{
	RULE(C_GetSessionInfo);
	return real->C_GetSessionInfo(h, i);
}

static CK_RV s_Login(CK_SESSION_HANDLE h, CK_USER_TYPE u, CK_UTF8CHAR_PTR pin, CK_ULONG len)
{
	RULE(C_Login);
	return real->C_Login(h, u, pin, len);
}

static CK_RV s_FindObjectsInit(CK_SESSION_HANDLE h, CK_ATTRIBUTE_PTR t, CK_ULONG n)
{
	RULE(C_FindObjectsInit);
	return real->C_FindObjectsInit(h, t, n);
}

static CK_RV s_GetAttributeValue(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_PTR t, CK_ULONG n)
{
	CK_RV rv;
	bool has_token = false;

	RULE(C_GetAttributeValue);
	rv = real->C_GetAttributeValue(h, o, t, n);
	for (CK_ULONG i = 0; i < n; i++)
		has_token |= t[i].type == CKA_TOKEN;
	if (rv == CKR_OK && has_token && rule("C_GetAttributeValue.session"))
		for (CK_ULONG i = 0; i < n; i++)
			if (t[i].type == CKA_TOKEN && t[i].pValue && t[i].ulValueLen == sizeof(CK_BBOOL))
				*(CK_BBOOL *)t[i].pValue = CK_FALSE;
	return rv;
}

static CK_RV s_EncryptInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k)
{
	RULE(C_EncryptInit);
	return real->C_EncryptInit(h, m, k);
}

static CK_RV s_Encrypt(CK_SESSION_HANDLE h, CK_BYTE_PTR d, CK_ULONG n, CK_BYTE_PTR o, CK_ULONG_PTR on)
{
	RULE(C_Encrypt);
	return real->C_Encrypt(h, d, n, o, on);
}

static CK_RV s_DecryptInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k)
{
	RULE(C_DecryptInit);
	return real->C_DecryptInit(h, m, k);
}

static CK_RV s_Decrypt(CK_SESSION_HANDLE h, CK_BYTE_PTR d, CK_ULONG n, CK_BYTE_PTR o, CK_ULONG_PTR on)
{
	RULE(C_Decrypt);
	return real->C_Decrypt(h, d, n, o, on);
}

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list);

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list)
{
	const char *path = getenv("P11SHIM_MODULE");
	CK_C_GetFunctionList get;
	void *dl;
	CK_RV rv;

	if (!real) {
		if (!path || !(dl = dlopen(path, RTLD_NOW | RTLD_LOCAL)))
			return CKR_GENERAL_ERROR;
		get = (CK_C_GetFunctionList)dlsym(dl, "C_GetFunctionList");
		if (!get)
			return CKR_GENERAL_ERROR;
		rv = get(&real);
		if (rv != CKR_OK)
			return rv;
		real_list = *real;
		shim_list = real_list;
		shim_list.C_Initialize = s_Initialize;
		shim_list.C_GetSlotList = s_GetSlotList;
		shim_list.C_GetTokenInfo = s_GetTokenInfo;
		shim_list.C_OpenSession = s_OpenSession;
		shim_list.C_GetSessionInfo = s_GetSessionInfo;
		shim_list.C_Login = s_Login;
		shim_list.C_FindObjectsInit = s_FindObjectsInit;
		shim_list.C_GetAttributeValue = s_GetAttributeValue;
		shim_list.C_EncryptInit = s_EncryptInit;
		shim_list.C_Encrypt = s_Encrypt;
		shim_list.C_DecryptInit = s_DecryptInit;
		shim_list.C_Decrypt = s_Decrypt;
	}
	*list = &shim_list;
	return CKR_OK;
}
