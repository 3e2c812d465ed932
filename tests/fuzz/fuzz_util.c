/*
 * fuzz_util.c - helpers shared by the fuzz targets (see fuzz.h).
 *
 * The temporary directory is made once per process and removed, with the
 * files the targets wrote in it, at exit (not after a crash: libFuzzer
 * ends the process with _exit() then; the directory's name says whose it
 * was).
 */
#include "autoconf.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "log.h"
#include "xalloc.h"

static char tmpdir[64];

void
fuzz_split(const uint8_t *data, size_t size, char sep, size_t max,
    struct fuzz_fields *f)
{
	size_t start = 0, i;

	memset(f, 0, sizeof(*f));
	for (i = 0; i <= size && max > 0; i++) {
		if (i < size && (data[i] != (uint8_t)sep || f->n + 1 == max))
			continue;
		f->v = xreallocarray(f->v, f->n + 1, sizeof(*f->v));
		f->len = xreallocarray(f->len, f->n + 1, sizeof(*f->len));
		f->len[f->n] = i - start;
		f->v[f->n] = xmalloc(i - start + 1);
		if (i > start)
			memcpy(f->v[f->n], data + start, i - start);
		f->v[f->n][i - start] = '\0';
		f->n++;
		start = i + 1;
		if (f->n == max)
			break;
	}
}

const char *
fuzz_field(const struct fuzz_fields *f, size_t i)
{
	return i < f->n ? f->v[i] : NULL;
}

void
fuzz_fields_free(struct fuzz_fields *f)
{
	size_t i;

	for (i = 0; i < f->n; i++)
		free(f->v[i]);
	free(f->v);
	free(f->len);
	memset(f, 0, sizeof(*f));
}

/* rm_tree - remove a directory the targets filled, subdirectories too */
static void
rm_tree(const char *dir, int depth)
{
	char path[sizeof(tmpdir) + 300];
	struct dirent *de;
	DIR *d;

	if ((d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		(void)snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (unlink(path) != 0 && depth < 2)
			rm_tree(path, depth + 1);
	}
	(void)closedir(d);
	(void)rmdir(dir);
}

/* rm_tmpdir - remove the directory and what the targets left in it */
static void
rm_tmpdir(void)
{
	if (tmpdir[0] != '\0')
		rm_tree(tmpdir, 0);
}

const char *
fuzz_tmpdir(void)
{
	if (tmpdir[0] == '\0') {
		/* in memory where there is /dev/shm: the targets write files
		 * and an LMDB store (which syncs every commit) per input */
		(void)snprintf(tmpdir, sizeof(tmpdir),
		    "%s/spfguard-fuzz.XXXXXX",
		    access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm" : "/tmp");
		if (mkdtemp(tmpdir) == NULL) {
			perror("mkdtemp");
			abort();
		}
		(void)atexit(rm_tmpdir);
	}
	return tmpdir;
}

void
fuzz_write_file(const char *name, const void *data, size_t size, char *out,
    size_t outlen)
{
	FILE *fp;

	(void)snprintf(out, outlen, "%s/%s", fuzz_tmpdir(), name);
	if ((fp = fopen(out, "w")) == NULL ||
	    (size > 0 && fwrite(data, 1, size, fp) != size) ||
	    fclose(fp) != 0) {
		perror(out);
		abort();
	}
}

void
fuzz_quiet(void)
{
	const char *v = getenv("FUZZ_VERBOSE");

	log_set_quiet(true);
	if (v != NULL && *v != '\0' && strcmp(v, "0") != 0)
		return;
	/*
	 * log_warnx() writes to stdio's stderr; libFuzzer and the sanitizers
	 * write their reports to descriptor 2 (libFuzzer through its own
	 * FILE, taken at start-up), which stays as it is.
	 */
	if ((stderr = fopen("/dev/null", "w")) == NULL)
		abort();
}

void
fuzz_fail(const char *what, const char *text)
{
	char line[200];
	size_t i, o = 0;

	for (i = 0; text != NULL && text[i] != '\0' && o + 5 < sizeof(line);
	     i++) {
		unsigned char c = (unsigned char)text[i];

		if (c >= 0x20 && c < 0x7f)
			line[o++] = (char)c;
		else
			o += (size_t)snprintf(line + o, sizeof(line) - o,
			    "\\x%02x", c);
	}
	line[o] = '\0';
	(void)dprintf(2, "fuzz invariant broken: %s: \"%s\"\n", what, line);
	abort();
}

void
fuzz_check_header(const char *what, const char *body, size_t first)
{
	size_t col = first;
	const char *p;

	for (p = body; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '\n') {
			if (p[1] != '\t')
				fuzz_fail(what, body);
			col = 0;
			continue;
		}
		if ((c < 0x20 && c != '\t') || c >= 0x7f)
			fuzz_fail(what, body);
		if (++col > 998)
			fuzz_fail(what, body);
	}
}

void
fuzz_check_printable(const char *what, const char *s)
{
	const char *p;

	for (p = s; p != NULL && *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			fuzz_fail(what, s);
}
