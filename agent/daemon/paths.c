// SPDX-License-Identifier: GPL-2.0
/*
 * lakecrypt-agent: a request's paths resolved before a->lock is taken.
 *
 * realpath(3) of a client's "device" or "header" walks every component of
 * the path: a path through a hung NFS or FUSE mount, or a dead iSCSI
 * path's link, blocks it for as long as the mount does.  Under a->lock
 * that would stall every operator, the watcher and the kill switch (a
 * revocation takes a->lock to mark its slots).  So agent_handle() resolves
 * them here first, without the lock, and the handlers (open-claim.c,
 * ops-rotate.c, ops-segrekey.c) take the results with agent_realpath(),
 * which never touches the file system.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"

struct agent_paths {
	size_t n;
	struct {
		char arg[PATH_MAX];
		char real[PATH_MAX];
		bool ok;
	} p[2];
};

char *(*agent_realpath_fn)(const char *restrict path, char *restrict resolved) = realpath;

static void paths_add(struct agent_paths *ps, const char *path)
{
	if (!path || !path[0] || ps->n == 2 || strlen(path) >= PATH_MAX)
		return;
	snprintf(ps->p[ps->n].arg, PATH_MAX, "%s", path);
	ps->p[ps->n].ok = agent_realpath_fn(path, ps->p[ps->n].real) != NULL;
	ps->n++;
}

void agent_paths_resolve(struct agent *a, struct client *c, json_object *args)
{
	json_object *v;
	char hbuf[PATH_MAX];

	agent_paths_free(c);
	c->paths = calloc(1, sizeof(*c->paths));
	if (!c->paths)
		return;		/* agent_realpath() then says "unresolved" */
	if (json_object_object_get_ex(args, "device", &v) && json_object_is_type(v, json_type_string))
		paths_add(c->paths, json_object_get_string(v));
	if (json_object_object_get_ex(args, "header", &v) && json_object_is_type(v, json_type_string)) {
		const char *h = json_object_get_string(v);

		/* A bare name is a file in the header directory (arg_header()). */
		if (h[0] && !strchr(h, '/') &&
		    snprintf(hbuf, sizeof(hbuf), "%s/%s", a->header_dir, h) < (int)sizeof(hbuf))
			h = hbuf;
		paths_add(c->paths, h);
	}
}

void agent_paths_free(struct client *c)
{
	free(c->paths);
	c->paths = NULL;
}

bool agent_realpath(const struct client *c, const char *path, char out[PATH_MAX])
{
	for (size_t i = 0; path && c->paths && i < c->paths->n; i++)
		if (!strcmp(c->paths->p[i].arg, path)) {
			if (c->paths->p[i].ok)
				memcpy(out, c->paths->p[i].real, PATH_MAX);
			return c->paths->p[i].ok;
		}
	return false;
}
