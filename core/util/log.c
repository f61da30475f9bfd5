/* Log threshold for modike's domains. A structured writer drops messages
 * from domains starting with "modike" that are less severe than the
 * threshold and prints the rest itself (GLib's default writer would hide
 * info and debug unless G_MESSAGES_DEBUG is set). Other domains go to the
 * default writer untouched. */
#include <modike/log.h>

#include <stdio.h>
#include <string.h>

/* Most verbose level still shown; GLib levels grow less severe upwards. */
static gint threshold = G_LOG_LEVEL_MESSAGE;

static const struct {
  const char *name;
  GLogLevelFlags level;
} level_names[] = {
  { "error", G_LOG_LEVEL_CRITICAL },  /* ERROR is fatal anyway; CRITICAL rides along */
  { "warning", G_LOG_LEVEL_WARNING },
  { "message", G_LOG_LEVEL_MESSAGE },
  { "info", G_LOG_LEVEL_INFO },
  { "debug", G_LOG_LEVEL_DEBUG },
};

/* Set once modike_log_writer is the process's writer (it never goes). */
static gint writer_on;

static GMutex tap_lock;
static ModikeLogTapFunc tap_fn;
static gpointer tap_user;

void
modike_log_set_tap (ModikeLogTapFunc fn, gpointer user)
{
  g_mutex_lock (&tap_lock);
  tap_fn = fn;
  tap_user = user;
  g_mutex_unlock (&tap_lock);
}

static const char *
field_string (const GLogField *fields, gsize n_fields, const char *key, char **copy)
{
  for (gsize i = 0; i < n_fields; i++)
    if (g_strcmp0 (fields[i].key, key) == 0 && fields[i].value != NULL)
      {
        if (fields[i].length < 0)
          return fields[i].value;
        *copy = g_strndup (fields[i].value, (gsize) fields[i].length);
        return *copy;
      }
  return NULL;
}

static void
call_tap (GLogLevelFlags level, const GLogField *fields, gsize n_fields)
{
  g_autofree char *domain_copy = NULL, *message_copy = NULL;
  const char *domain, *message;

  g_mutex_lock (&tap_lock);
  if (tap_fn != NULL)
    {
      domain = field_string (fields, n_fields, "GLIB_DOMAIN", &domain_copy);
      message = field_string (fields, n_fields, "MESSAGE", &message_copy);
      tap_fn (level, domain, message != NULL ? message : "", tap_user);
    }
  g_mutex_unlock (&tap_lock);
}

static gboolean
is_modike_domain (const GLogField *fields, gsize n_fields)
{
  for (gsize i = 0; i < n_fields; i++)
    if (g_strcmp0 (fields[i].key, "GLIB_DOMAIN") == 0)
      {
        /* length < 0 means NUL terminated. */
        gssize len = fields[i].length;
        const char *v = fields[i].value;
        if (v == NULL)
          return FALSE;
        if (len < 0)
          return g_str_has_prefix (v, "modike");
        return len >= 6 && memcmp (v, "modike", 6) == 0;
      }
  return FALSE;
}

static GLogWriterOutput
modike_log_writer (GLogLevelFlags log_level, const GLogField *fields, gsize n_fields, gpointer user_data)
{
  GLogLevelFlags level = log_level & G_LOG_LEVEL_MASK;

  if (!is_modike_domain (fields, n_fields))
    return g_log_writer_default (log_level, fields, n_fields, user_data);
  /* Lower flag value = more severe; fatal messages always pass. */
  if (!(log_level & G_LOG_FLAG_FATAL) && level > (GLogLevelFlags) g_atomic_int_get (&threshold))
    return G_LOG_WRITER_HANDLED;
  call_tap (level, fields, n_fields);
  if (g_log_writer_is_journald (fileno (stderr))
      && g_log_writer_journald (log_level, fields, n_fields, user_data) == G_LOG_WRITER_HANDLED)
    return G_LOG_WRITER_HANDLED;
  if (g_log_writer_standard_streams (log_level, fields, n_fields, user_data) == G_LOG_WRITER_HANDLED)
    return G_LOG_WRITER_HANDLED;
  return g_log_writer_default (log_level, fields, n_fields, user_data);
}

gboolean
modike_log_set_level (const char *level, GError **error)
{
  static gsize writer_installed = 0;

  for (gsize i = 0; i < G_N_ELEMENTS (level_names); i++)
    if (level != NULL && g_ascii_strcasecmp (level, level_names[i].name) == 0)
      {
        g_atomic_int_set (&threshold, (gint) level_names[i].level);
        /* GLib allows one writer per process (a second call aborts):
         * install it only once, and nothing else in modike may set one. */
        if (g_once_init_enter (&writer_installed))
          {
            g_log_set_writer_func (modike_log_writer, NULL, NULL);
            g_atomic_int_set (&writer_on, 1);
            g_once_init_leave (&writer_installed, 1);
          }
        return TRUE;
      }
  g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
               "unknown log level \"%s\" (error, warning, message, info, debug)",
               level ? level : "(null)");
  return FALSE;
}

gboolean
modike_log_would_show (GLogLevelFlags level)
{
  /* Without our writer, GLib's (G_MESSAGES_DEBUG) decides: format it. */
  if (!g_atomic_int_get (&writer_on) || (level & G_LOG_FLAG_FATAL))
    return TRUE;
  return (level & G_LOG_LEVEL_MASK) <= (GLogLevelFlags) g_atomic_int_get (&threshold);
}

char *
modike_hex (const guint8 *data, gsize len)
{
  static const char digits[] = "0123456789abcdef";
  char *s;

  g_return_val_if_fail (data != NULL || len == 0, g_strdup (""));
  s = g_malloc (len * 2 + 1);
  for (gsize i = 0; i < len; i++)
    {
      s[2 * i] = digits[data[i] >> 4];
      s[2 * i + 1] = digits[data[i] & 0x0f];
    }
  s[len * 2] = '\0';
  return s;
}
