/* Structured logging helpers: GLib structured logging with SA fields. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Sets the level threshold ("error", "warning", "message", "info", "debug")
 * for modike's domains; the daemon calls it from the config. */
gboolean modike_log_set_level (const char *level, GError **error);
/* Hex for debug logs (payload bytes only at debug level). */
char *modike_hex (const guint8 *data, gsize len);

G_END_DECLS
