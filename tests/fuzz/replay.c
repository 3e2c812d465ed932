/*
 * replay.c - a fuzz target without libFuzzer: feed it files, print TAP.
 *
 *	fuzz_replay_NAME [FILE|DIR]...
 *
 * With no argument, replays $FUZZ_SRCDIR/regressions/NAME and
 * $FUZZ_SRCDIR/corpus/NAME (FUZZ_SRCDIR: the directory of this file; `make
 * check` sets it), so every crash ever found and every seed runs in the
 * plain and sanitizer builds without clang. A file passes when the target
 * returns; a crash, a sanitizer report or a broken invariant ends the
 * program, and the test fails. NAME comes from -DFUZZ_NAME; -DFUZZ_CORPUS
 * names another target's seeds.
 */
#include "autoconf.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"
#include "xalloc.h"

#ifndef FUZZ_NAME
#error "FUZZ_NAME is the target's name"
#endif
#ifndef FUZZ_CORPUS
#define FUZZ_CORPUS FUZZ_NAME /* the seeds' directory */
#endif

static int n;
static const char *strip; /* not printed in front of a path */

/* shown - a path as the TAP line shows it */
static const char *
shown(const char *path)
{
	size_t k = strip != NULL ? strlen(strip) : 0;

	if (k > 0 && strncmp(path, strip, k) == 0 && path[k] == '/')
		return path + k + 1;
	return path;
}

/* run_file - one input through the target */
static void
run_file(const char *path)
{
	uint8_t *data = NULL;
	size_t len = 0, cap = 0, got;
	FILE *fp;

	if ((fp = fopen(path, "rb")) == NULL) {
		(void)printf("not ok %d - %s: cannot open\n", ++n, shown(path));
		exit(1);
	}
	do {
		if (len == cap) {
			cap = cap == 0 ? 4096 : cap * 2;
			data = xreallocarray(data, cap, 1);
		}
		got = fread(data + len, 1, cap - len, fp);
		len += got;
	} while (got > 0);
	(void)fclose(fp);
	/* an exact-size copy, so that reading past the end is seen */
	{
		uint8_t *exact = xmalloc(len > 0 ? len : 1);

		if (len > 0)
			memcpy(exact, data, len);
		free(data);
		/* named first: a crash ends the program before its "ok" */
		(void)printf("# %s\n", shown(path));
		(void)fflush(stdout);
		(void)LLVMFuzzerTestOneInput(exact, len);
		free(exact);
	}
	(void)printf("ok %d - %s\n", ++n, shown(path));
}

static int
cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* run_path - a file, or every file of a directory in name order */
static void
run_path(const char *path, int required)
{
	struct dirent *de;
	struct stat st;
	char **names = NULL, full[4096];
	size_t nnames = 0, i;
	DIR *d;

	if (stat(path, &st) == -1) {
		if (required) {
			(void)printf("not ok %d - %s: missing\n", ++n,
			    shown(path));
			exit(1);
		}
		return;
	}
	if (!S_ISDIR(st.st_mode)) {
		run_file(path);
		return;
	}
	if ((d = opendir(path)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		names = xreallocarray(names, nnames + 1, sizeof(*names));
		names[nnames++] = xstrdup(de->d_name);
	}
	(void)closedir(d);
	qsort(names, nnames, sizeof(*names), cmp);
	for (i = 0; i < nnames; i++) {
		(void)snprintf(full, sizeof(full), "%s/%s", path, names[i]);
		if (stat(full, &st) == 0 && S_ISREG(st.st_mode))
			run_file(full);
		free(names[i]);
	}
	free(names);
}

int
main(int argc, char **argv)
{
	const char *src = getenv("FUZZ_SRCDIR");
	char dir[4096];
	int i;

	(void)LLVMFuzzerInitialize(&argc, &argv);
	if (argc > 1) {
		for (i = 1; i < argc; i++)
			run_path(argv[i], 1);
	} else {
		if (src == NULL || *src == '\0')
			src = ".";
		strip = src;
		(void)snprintf(dir, sizeof(dir), "%s/regressions/%s", src,
		    FUZZ_NAME);
		run_path(dir, 0);
		(void)snprintf(dir, sizeof(dir), "%s/corpus/%s", src,
		    FUZZ_CORPUS);
		run_path(dir, 1);
	}
	(void)printf("1..%d\n", n);
	return 0;
}
