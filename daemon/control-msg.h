/* The control protocol's message codec, shared by modiked and the modike
 * client: newline-delimited JSON objects, each with "v" (the protocol
 * version) and "type" (docs/control-protocol.md). */
#pragma once

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

#define CONTROL_VERSION 1
/* One message, newline excluded: a site config fits with room to spare. */
#define CONTROL_MAX_LINE (128 * 1024)
#define CONTROL_MAX_DEPTH 16

#define CONTROL_ERROR (control_error_quark ())
GQuark control_error_quark (void);
typedef enum {
  CONTROL_ERROR_MALFORMED,   /* not JSON, not an object, no type */
  CONTROL_ERROR_VERSION,     /* "v" missing or not ours */
  CONTROL_ERROR_TOO_LONG,    /* a line over CONTROL_MAX_LINE */
} ControlError;

/* A new message {"v":1,"type":type}. */
JsonObject *control_msg_new (const char *type);
/* One line: the object's JSON and '\n'. */
char *control_msg_encode (JsonObject *msg, gsize *len);
/* Parses one line (no newline): an object with "v" == CONTROL_VERSION and a
 * string "type"; anything else is an error. */
JsonObject *control_msg_parse (const char *line, gsize len, GError **error);

/* Wipes len bytes at p (NULL or 0: nothing); unlike a memset before a
 * free, the compiler keeps it. */
void control_wipe (void *p, gsize len);
/* Wipes, in place, the string values of o's members: a credentials answer
 * once it has been used (o is not to be read afterwards). */
void control_msg_wipe_strings (JsonObject *o);

/* Typed getters that return def when the member is absent or of another
 * type (a hostile peer cannot make them abort). */
const char *control_msg_get_string (JsonObject *msg, const char *member, const char *def);
gint64 control_msg_get_int (JsonObject *msg, const char *member, gint64 def);
gboolean control_msg_get_bool (JsonObject *msg, const char *member, gboolean def);
JsonObject *control_msg_get_object (JsonObject *msg, const char *member);  /* borrowed or NULL */
JsonArray *control_msg_get_array (JsonObject *msg, const char *member);    /* borrowed or NULL */

/* Splits a byte stream into lines, bounded by CONTROL_MAX_LINE. */
typedef struct {
  GByteArray *buf;
} ControlReader;

void control_reader_init (ControlReader *r);
void control_reader_clear (ControlReader *r);
/* Appends received bytes; FALSE (CONTROL_ERROR_TOO_LONG) when a line
 * grows past the limit without a newline. */
gboolean control_reader_feed (ControlReader *r, const guint8 *data, gsize len, GError **error);
/* The next complete line (newline stripped, NUL terminated), or NULL. */
char *control_reader_next (ControlReader *r, gsize *len);

G_END_DECLS
