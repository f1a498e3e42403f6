// SPDX-License-Identifier: GPL-2.0
/*
 * lct-runas UID GID[,GID...] COMMAND [ARGS...]
 * Run COMMAND with the given uid, primary gid and supplementary groups
 * (numeric, so no NSS is needed in a static binary).  The end-to-end tests
 * use it to talk to the agent as an operator or as nobody.
 */
#define _GNU_SOURCE
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static unsigned long num(const char *s)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (!*s || *end) {
		fprintf(stderr, "lct-runas: not a number: %s\n", s);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	gid_t groups[32];
	size_t n = 0;
	char *list, *tok, *save;

	if (argc < 4) {
		fprintf(stderr, "usage: lct-runas UID GID[,GID...] COMMAND [ARGS...]\n");
		return 2;
	}
	list = strdup(argv[2]);
	for (tok = strtok_r(list, ",", &save); tok && n < 32; tok = strtok_r(NULL, ",", &save))
		groups[n++] = (gid_t)num(tok);
	if (!n) {
		fprintf(stderr, "lct-runas: no gid\n");
		return 2;
	}
	if (setgroups(n, groups) || setgid(groups[0]) || setuid((uid_t)num(argv[1]))) {
		perror("lct-runas");
		return 1;
	}
	execvp(argv[3], argv + 3);
	perror(argv[3]);
	return 127;
}
