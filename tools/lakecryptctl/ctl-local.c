// SPDX-License-Identifier: GPL-2.0
/*
 * Local commands: dump and table read the header themselves (no agent).
 * The header holds only wrapped keys and this code prints none of them:
 * dump shows lengths and fingerprints, table names keys by their keyring
 * description prefix only.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/fs.h>

#include "ctl.h"
#include "dm.h"

int lc_ctl_table_line(const struct lc_header *h, const char *device, uint64_t device_sectors,
		      char **line, struct lc_error *err)
{
	struct lc_dm_table t = { 0 };
	char uuid[37], prefix[64];
	uint64_t length, unit;

	*line = NULL;
	if (!h->segment_sectors || !h->segment_count)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID, "the header describes no segments");
	length = (uint64_t)h->segment_count * h->segment_sectors;
	if (device_sectors) {
		if (device_sectors <= h->data_offset)
			return lc_err(err, -EINVAL, LC_ERRC_INVALID,
				      "device %s has %" PRIu64 " sectors, no room for data after offset %" PRIu64,
				      device, device_sectors, h->data_offset);
		if (device_sectors - h->data_offset < length)
			length = device_sectors - h->data_offset;
	}
	unit = h->sector_size > 512 ? h->sector_size / 512 : 1;
	length -= length % unit;
	if (!length)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID, "device %s is too small to map one sector",
			      device);
	lc_header_uuid_str(h, uuid);
	snprintf(prefix, sizeof(prefix), "lakecrypt:%s:", uuid);
	t.length = length;
	t.cipher = h->cipher;
	t.key_size = h->key_size;
	t.key_prefix = prefix;
	t.segment_sectors = h->segment_sectors;
	t.device = device;
	t.offset = h->data_offset;
	t.volume_id = uuid;
	t.sector_size = h->sector_size;
	return lc_dm_table_line(&t, line, err);
}

/* Size in 512-byte sectors of a block device or regular file; 0 if it
 * cannot be told. */
static uint64_t path_sectors(const char *path)
{
	struct stat st;
	uint64_t bytes = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	if (fstat(fd, &st) == 0) {
		if (S_ISBLK(st.st_mode)) {
			if (ioctl(fd, BLKGETSIZE64, &bytes) < 0)
				bytes = 0;
		} else if (S_ISREG(st.st_mode)) {
			bytes = (uint64_t)st.st_size;
		}
	}
	close(fd);
	return bytes / 512;
}

/* @s as one shell word. */
static void shell_quote(FILE *f, const char *s)
{
	if (*s && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-+:@%=,") == strlen(s)) {
		fputs(s, f);
		return;
	}
	fputc('\'', f);
	for (; *s; s++)
		if (*s == '\'')
			fputs("'\\''", f);
		else
			fputc(*s, f);
	fputc('\'', f);
}

int lc_ctl_local(const struct lc_ctl_cmd *cmd, FILE *out, struct lc_error *err)
{
	struct lc_header *h = NULL;
	struct lc_header_info info;
	int r;

	r = lc_header_read_path(cmd->path, &h, &info, err);
	if (r < 0)
		return r;
	if (cmd->action == LC_CTL_DUMP) {
		if (cmd->json) {
			char *json = NULL;

			r = lc_header_to_json(h, &info, &json, err);
			if (r == 0)
				fprintf(out, "%s\n", json);
			free(json);
		} else {
			r = lc_header_dump_text(h, &info, out);
			if (r < 0)
				lc_err(err, r, LC_ERRC_INTERNAL, "cannot print the header of %s", cmd->path);
		}
	} else {
		const char *dev = cmd->device;
		char *line = NULL, uuid[37];

		if (!dev && (h->flags & LC_HDR_F_DETACHED)) {
			lc_header_free(h);
			return lc_err(err, -EINVAL, LC_ERRC_INVALID,
				      "%s is a detached header, which does not say where the data is: give the backing device with --device DEV",
				      cmd->path);
		}
		if (!dev)
			dev = cmd->path;
		r = lc_ctl_table_line(h, dev, path_sectors(dev), &line, err);
		if (r == 0) {
			lc_header_uuid_str(h, uuid);
			if (cmd->json) {
				struct json_object *o = json_object_new_object();

				json_object_object_add(o, "table", json_object_new_string(line));
				{
					char du[64];

					snprintf(du, sizeof(du), "%s%s", LC_DM_UUID_PREFIX, uuid);
					json_object_object_add(o, "dm_uuid", json_object_new_string(du));
				}
				if (cmd->name)
					json_object_object_add(o, "name", json_object_new_string(cmd->name));
				r = lc_ctl_render_json(out, o);
				json_object_put(o);
			} else if (cmd->name) {
				fprintf(out, "dmsetup create ");
				shell_quote(out, cmd->name);
				fprintf(out, " --uuid %s%s --table '%s'\n", LC_DM_UUID_PREFIX, uuid, line);
			} else {
				fprintf(out, "%s\n", line);
			}
		}
		free(line);
	}
	lc_header_free(h);
	return r;
}
