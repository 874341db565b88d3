/* log: one line per event on stderr, with time, level and the node's
 * code. Never give it a child's name, ID number or phone: log records by
 * id and division code, and refusals by reason (PIPL art. 28). */
#ifndef LX_LOG_H
#define LX_LOG_H

void log_set_prefix(const char *prefix);  /* e.g. the node's code */
void log_set_quiet(int quiet);            /* drop info lines */
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
