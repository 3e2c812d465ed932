/*
 * conf_check.h - checkers of single option values (internal to conf).
 * Each returns 0, or -1 with a reason in err.
 */
#ifndef SPFGUARD_CONF_CHECK_H
#define SPFGUARD_CONF_CHECK_H

#include <stddef.h>

int conf_check_socket(const char *, char *err, size_t errlen);
int conf_check_path(const char *, char *err, size_t errlen);
int conf_check_account(const char *, char *err, size_t errlen);
int conf_check_facility(const char *, char *err, size_t errlen);
int conf_check_resolver(const char *, char *err, size_t errlen);
int conf_check_engine(const char *, char *err, size_t errlen);
int conf_check_hostname(const char *, char *err, size_t errlen);
int conf_check_explanation(const char *, char *err, size_t errlen);
int conf_check_token(const char *, char *err, size_t errlen);
int conf_check_header_name(const char *, char *err, size_t errlen);
int conf_check_store_backend(const char *, char *err, size_t errlen);
int conf_check_on_error(const char *, char *err, size_t errlen);
int conf_check_redis_host(const char *, char *err, size_t errlen);
int conf_check_key_prefix(const char *, char *err, size_t errlen);
int conf_check_metrics_listen(const char *, char *err, size_t errlen);

#endif
