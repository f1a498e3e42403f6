// SPDX-License-Identifier: GPL-2.0
/*
 * AWS STS GetCallerIdentity: the answer's parser and the principal
 * comparison behind the AWS provider's identity operation (kms-aws.h,
 * provider.h ops->identity).  Pure functions: unit-tested and fuzzed on
 * their own; the signed request is in kms-aws.c.
 *
 * Protocol: AWS STS API Reference, GetCallerIdentity (query protocol,
 * API version 2011-06-15): a 200 answer is
 *   <GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
 *     <GetCallerIdentityResult><Arn>...</Arn><UserId>...</UserId>
 *       <Account>...</Account></GetCallerIdentityResult>
 *     <ResponseMetadata><RequestId>...</RequestId></ResponseMetadata>
 *   </GetCallerIdentityResponse>
 * an error <ErrorResponse><Error><Type/><Code/><Message/></Error>...</ErrorResponse>.
 * ARN formats: AWS General Reference, "Amazon Resource Names";
 * IAM User Guide, "IAM identifiers" (assumed-role ARNs:
 * arn:<partition>:sts::<account>:assumed-role/<role>/<session>).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "kms-aws.h"

/* The text of the one <tag>...</tag> in @xml (@len bytes, NUL-terminated
 * at @len): NULL if absent, if it holds markup, or if the tag appears
 * twice (an answer that names two principals names none). */
static const char *one_element(const char *xml, const char *tag, size_t *len, bool *dup)
{
	char open[48], close[48];
	const char *b, *e;

	*dup = false;
	snprintf(open, sizeof(open), "<%s>", tag);
	snprintf(close, sizeof(close), "</%s>", tag);
	b = strstr(xml, open);
	if (!b)
		return NULL;
	if (strstr(b + 1, open)) {
		*dup = true;
		return NULL;
	}
	b += strlen(open);
	e = strstr(b, close);
	if (!e || memchr(b, '<', (size_t)(e - b)) || memchr(b, '&', (size_t)(e - b)))
		return NULL;
	*len = (size_t)(e - b);
	return b;
}

/* arn:<partition>:<iam|sts>::<12 digits>:<resource>, printable, no
 * quote or backslash; @acct gets the account. */
static bool principal_arn_ok(const char *s, size_t n, char acct[13])
{
	const char *p = s, *end = s + n, *c;
	size_t i;

	for (i = 0; i < n; i++)
		if (s[i] < 0x21 || s[i] > 0x7e || s[i] == '"' || s[i] == '\\')
			return false;
	if (n < 4 || strncmp(p, "arn:", 4))
		return false;
	p += 4;
	c = memchr(p, ':', (size_t)(end - p));	/* partition */
	if (!c || c == p)
		return false;
	p = c + 1;
	if ((size_t)(end - p) < 5 || (strncmp(p, "iam::", 5) && strncmp(p, "sts::", 5)))
		return false;
	p += 5;
	for (i = 0; i < 12; i++)
		if (p + i >= end || p[i] < '0' || p[i] > '9')
			return false;
	if (p + 12 >= end || p[12] != ':' || p + 13 >= end)
		return false;
	memcpy(acct, p, 12);
	acct[12] = 0;
	return true;
}

int lc_aws_parse_caller_identity(long status, const char *body, size_t len, char *arn,
				 size_t size, struct lc_error *err)
{
	const char *a, *code, *acc;
	size_t al = 0, cl = 0, accl = 0;
	char acct[13], cbuf[64];
	bool dup = false, d2 = false;

	if (size)
		arn[0] = 0;
	if (!body || strlen(body) != len)
		return lc_err(err, -EPROTO, LC_ERRC_TRANSIENT,
			      "AWS STS GetCallerIdentity: the answer is empty or holds a NUL byte");
	if (status != 200) {
		code = one_element(body, "Code", &cl, &dup);
		snprintf(cbuf, sizeof(cbuf), "%.*s", code ? (int)(cl < 60 ? cl : 60) : 0, code ? code : "");
		for (char *q = cbuf; *q; q++)
			if (*q < 0x20 || *q > 0x7e)
				*q = '?';
		if (status >= 500 || status == 429 || !strcmp(cbuf, "Throttling"))
			return lc_err(err, -EAGAIN, LC_ERRC_TRANSIENT,
				      "AWS STS GetCallerIdentity: HTTP %ld %s", status, cbuf);
		if (status == 403 && (!strcmp(cbuf, "AccessDenied") || !strcmp(cbuf, "AccessDeniedException")))
			return lc_err(err, -EACCES, LC_ERRC_DENIED,
				      "AWS STS GetCallerIdentity: HTTP 403 %s", cbuf);
		/* InvalidClientTokenId, SignatureDoesNotMatch, ExpiredToken,
		 * a proxy's page: not the principal's word. */
		return lc_err(err, -EACCES, LC_ERRC_MISCONFIG,
			      "AWS STS GetCallerIdentity: HTTP %ld%s%s", status, cbuf[0] ? " " : "",
			      cbuf[0] ? cbuf : "with no STS error code");
	}
	if (!strstr(body, "<GetCallerIdentityResponse") || !strstr(body, "<GetCallerIdentityResult>"))
		return lc_err(err, -EPROTO, LC_ERRC_TRANSIENT,
			      "AWS STS GetCallerIdentity: HTTP 200 but not a GetCallerIdentityResponse (a proxy or a wrong endpoint?)");
	a = one_element(body, "Arn", &al, &dup);
	if (!a || !al)
		return lc_err(err, -EPROTO, LC_ERRC_TRANSIENT,
			      "AWS STS GetCallerIdentity: the answer has %s Arn",
			      dup ? "more than one" : "no usable");
	if (al >= size || al >= LC_PROVIDER_IDENTITY_MAX)
		return lc_err(err, -E2BIG, LC_ERRC_TRANSIENT,
			      "AWS STS GetCallerIdentity: the Arn is %zu bytes, more than the %d a principal may have",
			      al, LC_PROVIDER_IDENTITY_MAX - 1);
	if (!principal_arn_ok(a, al, acct))
		return lc_err(err, -EPROTO, LC_ERRC_TRANSIENT,
			      "AWS STS GetCallerIdentity: the Arn is not an IAM or STS principal ARN (arn:<partition>:iam|sts::<account>:...)");
	acc = one_element(body, "Account", &accl, &d2);
	if (d2 || (acc && (accl != 12 || memcmp(acc, acct, 12))))
		return lc_err(err, -EPROTO, LC_ERRC_TRANSIENT,
			      "AWS STS GetCallerIdentity: the Account does not match the Arn's account");
	memcpy(arn, a, al);
	arn[al] = 0;
	return 0;
}

/* Length of the part of @s that names the principal: an assumed role's
 * ARN without its "/<session>", else all of it. */
static size_t principal_len(const char *s)
{
	const char *r = strstr(s, ":assumed-role/"), *slash;

	if (strncmp(s, "arn:", 4) || !r || !strstr(s, ":sts::"))
		return strlen(s);
	slash = strchr(r + 14, '/');
	return slash ? (size_t)(slash - s) : strlen(s);
}

bool lc_aws_principal_match(const char *bound, const char *now)
{
	size_t b = principal_len(bound), n = principal_len(now);

	return b == n && !memcmp(bound, now, b);
}
