/*
 * fuzz.h - what the fuzz targets share (fuzz_util.c).
 *
 * Each tests/fuzz/fuzz_NAME.c defines LLVMFuzzerTestOneInput(). Built with
 * clang -fsanitize=fuzzer it is a libFuzzer binary (`make fuzz`); linked
 * with replay.c instead, it is a plain program that feeds it the files of
 * regressions/NAME and corpus/NAME (`make check`, any compiler).
 *
 * Targets are deterministic, never touch the network, and write files only
 * in their private temporary directory (fuzz_tmpdir(), removed at exit). A
 * broken invariant (a header line with a raw CR, a decision log line that
 * is not JSON) is reported by fuzz_fail(), which aborts: to libFuzzer and
 * to the replay driver it is a crash like any other.
 */
#ifndef SPFGUARD_FUZZ_H
#define SPFGUARD_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An input cut into NUL-terminated copies of its fields. */
struct fuzz_fields {
	char **v;
	size_t *len; /* bytes in each field */
	size_t n;
};

/* Split at every sep, at most max fields (the last one keeps the rest). */
void fuzz_split(const uint8_t *data, size_t size, char sep, size_t max,
    struct fuzz_fields *);
/* Field i, or NULL when there are fewer. */
const char *fuzz_field(const struct fuzz_fields *, size_t i);
void fuzz_fields_free(struct fuzz_fields *);

/* The private temporary directory, made at the first call. */
const char *fuzz_tmpdir(void);

/* Write data to a file of the temporary directory; its path in out. */
void fuzz_write_file(const char *name, const void *data, size_t size, char *out,
    size_t outlen);

/* Quiet the log facade (FUZZ_VERBOSE=1 keeps it). */
void fuzz_quiet(void);

/* Report a broken invariant and abort. */
void fuzz_fail(const char *what, const char *text) __attribute__((noreturn));

/*
 * A header field body as headers.h promises it: printable ASCII, line
 * breaks only as "\n\t" folding, and lines of at most 998 octets counting
 * the field name (first) on the first line.
 */
void fuzz_check_header(const char *what, const char *body, size_t first);

/* Text for a reply or a syslog line: printable ASCII only. */
void fuzz_check_printable(const char *what, const char *s);

#endif
