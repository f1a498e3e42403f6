// SPDX-License-Identifier: GPL-2.0
/*
 * lakecryptctl: the agent's socket from the agent's own configuration.
 *
 * `[agent] socket` of agent.conf moves the agent's control socket; the
 * units lakecrypt-generator writes and the udev rule run lakecryptctl
 * without --socket, so lakecryptctl reads the same file the agent reads
 * (LC_CONFIG_DEFAULT_PATH, or $LAKECRYPT_AGENT_CONF as the generator
 * takes it), with the agent's own parser (agent/lib/config.c): one
 * grammar, one default.  agent.conf holds no secret (only the paths of
 * the files that do), so a non-root operator may read it; one that cannot
 * (EACCES) gets the built-in default, said in lakecryptctl(8).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "ctl.h"
#include "proto.h"

int lc_ctl_conf_socket(char *buf, size_t len, char *err, size_t errlen)
{
	const char *path = getenv("LAKECRYPT_AGENT_CONF");
	struct lc_config *cfg;
	struct lc_error e = { 0 };
	int r;

	if (!path || !path[0])
		path = LC_CONFIG_DEFAULT_PATH;
	cfg = calloc(1, sizeof(*cfg));
	if (!cfg) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	r = lc_config_load(cfg, path, &e);
	if (r == -ENOENT || r == -EACCES) {
		/* no file: the agent runs on its defaults too */
		snprintf(buf, len, "%s", LC_PROTO_DEFAULT_SOCKET);
		r = 0;
	} else if (r < 0) {
		snprintf(err, errlen,
			 "%s (lakecryptctl takes the agent's socket from [agent] socket of that file: fix it, or pass --socket)",
			 e.msg);
	} else if ((size_t)snprintf(buf, len, "%s", cfg->socket_path) >= len) {
		snprintf(err, errlen, "%s: [agent] socket is too long", path);
		r = -ENAMETOOLONG;
	}
	free(cfg);
	return r;
}
