/*
 * ctl_policy.h - spfguardctl's policy commands: test (the whole policy on
 * one envelope) and replay (a changed policy over logged decisions). Each
 * takes its command's argv (argv[0] is the command name) and returns the
 * exit status.
 */
#ifndef SPFGUARD_CTL_POLICY_H
#define SPFGUARD_CTL_POLICY_H

#ifndef SPFGUARD_CONF /* the daemon's default, set by the build */
#define SPFGUARD_CONF "/etc/spfguard/spfguard.conf"
#endif

int ctl_test_main(int argc, char **argv);
int ctl_replay_main(int argc, char **argv);

/* A usage error: the message, the usage text, exit status 2. */
void
ctl_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
