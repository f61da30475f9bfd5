/* Structured logging helpers: GLib structured logging with SA fields. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Sets the level threshold ("error", "warning", "message", "info", "debug")
 * for modike's domains; the daemon calls it from the config. */
gboolean modike_log_set_level (const char *level, GError **error);
/* A tap that also sees each message of modike's domains that passes the
 * threshold (the daemon forwards them to control clients). It runs in the
 * thread that logs, possibly a datapath thread, and must not log itself.
 * fn NULL removes it; only one tap at a time. */
typedef void (*ModikeLogTapFunc) (GLogLevelFlags level, const char *domain, const char *message, gpointer user);
void modike_log_set_tap (ModikeLogTapFunc fn, gpointer user);
/* FALSE when a message of modike's domains at that level would be dropped
 * by the threshold, so callers can skip formatting it (hot paths). */
gboolean modike_log_would_show (GLogLevelFlags level);
/* Hex for debug logs (payload bytes only at debug level). */
char *modike_hex (const guint8 *data, gsize len);

G_END_DECLS
