/* Newline-delimited JSON with a version field: readable with socat, any
 * language has a parser, and json-glib does the escaping (docs/design.md,
 * "Control socket"). */
#include "control-msg.h"

#include <string.h>

G_DEFINE_QUARK (control-error-quark, control_error)

JsonObject *
control_msg_new (const char *type)
{
  JsonObject *o = json_object_new ();

  json_object_set_int_member (o, "v", CONTROL_VERSION);
  json_object_set_string_member (o, "type", type);
  return o;
}

char *
control_msg_encode (JsonObject *msg, gsize *len)
{
  g_autoptr (JsonNode) node = json_node_new (JSON_NODE_OBJECT);
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  gsize n = 0;
  char *text, *line;

  json_node_set_object (node, msg);
  json_generator_set_root (gen, node);
  text = json_generator_to_data (gen, &n);
  /* The generator escapes control characters, so the JSON has no newline. */
  line = g_realloc (text, n + 2);
  line[n] = '\n';
  line[n + 1] = '\0';
  if (len)
    *len = n + 1;
  return line;
}

void
control_wipe (void *p, gsize len)
{
  if (p != NULL && len > 0)
    explicit_bzero (p, len);
}

void
control_msg_wipe_strings (JsonObject *o)
{
  JsonObjectIter it;
  JsonNode *n;

  if (o == NULL)
    return;
  json_object_iter_init (&it, o);
  while (json_object_iter_next (&it, NULL, &n))
    if (JSON_NODE_HOLDS_VALUE (n) && json_node_get_value_type (n) == G_TYPE_STRING)
      {
        /* json-glib hands out its own copy: wipe that one. */
        char *v = (char *) json_node_get_string (n);

        if (v != NULL)
          control_wipe (v, strlen (v));
      }
}

/* The parser recurses: bound the depth before it sees the text. */
static gboolean
nesting_ok (const char *s, gsize len)
{
  gboolean in_string = FALSE, escaped = FALSE;
  int depth = 0;

  for (gsize i = 0; i < len; i++)
    {
      char ch = s[i];

      if (in_string)
        {
          if (escaped)
            escaped = FALSE;
          else if (ch == '\\')
            escaped = TRUE;
          else if (ch == '"')
            in_string = FALSE;
        }
      else if (ch == '"')
        in_string = TRUE;
      else if ((ch == '{' || ch == '[') && ++depth > CONTROL_MAX_DEPTH)
        return FALSE;
      else if (ch == '}' || ch == ']')
        depth--;
    }
  return TRUE;
}

JsonObject *
control_msg_parse (const char *line, gsize len, GError **error)
{
  g_autoptr (JsonParser) parser = json_parser_new_immutable ();
  g_autoptr (GError) sub = NULL;
  JsonNode *root;
  JsonObject *o;

  if (len > CONTROL_MAX_LINE)
    {
      g_set_error (error, CONTROL_ERROR, CONTROL_ERROR_TOO_LONG, "message longer than %u bytes", CONTROL_MAX_LINE);
      return NULL;
    }
  if (memchr (line, '\0', len) != NULL)
    {
      g_set_error (error, CONTROL_ERROR, CONTROL_ERROR_MALFORMED, "message contains a NUL byte");
      return NULL;
    }
  if (!nesting_ok (line, len))
    {
      g_set_error (error, CONTROL_ERROR, CONTROL_ERROR_MALFORMED, "nested deeper than %d levels", CONTROL_MAX_DEPTH);
      return NULL;
    }
  if (!json_parser_load_from_data (parser, line, (gssize) len, &sub))
    {
      g_set_error (error, CONTROL_ERROR, CONTROL_ERROR_MALFORMED, "not JSON: %s", sub->message);
      return NULL;
    }
  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    {
      g_set_error (error, CONTROL_ERROR, CONTROL_ERROR_MALFORMED, "a message must be a JSON object");
      return NULL;
    }
  o = json_node_get_object (root);
  if (control_msg_get_int (o, "v", -1) != CONTROL_VERSION)
    {
      g_set_error (error, CONTROL_ERROR, CONTROL_ERROR_VERSION, "unsupported protocol version (this side speaks \"v\":%d)",
                   CONTROL_VERSION);
      return NULL;
    }
  if (control_msg_get_string (o, "type", NULL) == NULL)
    {
      g_set_error (error, CONTROL_ERROR, CONTROL_ERROR_MALFORMED, "message without a \"type\"");
      return NULL;
    }
  return json_object_ref (o);
}

static JsonNode *
member_of (JsonObject *msg, const char *member, GType type)
{
  JsonNode *n = msg ? json_object_get_member (msg, member) : NULL;

  if (n == NULL || !JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != type)
    return NULL;
  return n;
}

const char *
control_msg_get_string (JsonObject *msg, const char *member, const char *def)
{
  JsonNode *n = member_of (msg, member, G_TYPE_STRING);

  return n ? json_node_get_string (n) : def;
}

gint64
control_msg_get_int (JsonObject *msg, const char *member, gint64 def)
{
  JsonNode *n = member_of (msg, member, G_TYPE_INT64);

  return n ? json_node_get_int (n) : def;
}

gboolean
control_msg_get_bool (JsonObject *msg, const char *member, gboolean def)
{
  JsonNode *n = member_of (msg, member, G_TYPE_BOOLEAN);

  return n ? json_node_get_boolean (n) : def;
}

JsonObject *
control_msg_get_object (JsonObject *msg, const char *member)
{
  JsonNode *n = msg ? json_object_get_member (msg, member) : NULL;

  return n && JSON_NODE_HOLDS_OBJECT (n) ? json_node_get_object (n) : NULL;
}

JsonArray *
control_msg_get_array (JsonObject *msg, const char *member)
{
  JsonNode *n = msg ? json_object_get_member (msg, member) : NULL;

  return n && JSON_NODE_HOLDS_ARRAY (n) ? json_node_get_array (n) : NULL;
}

void
control_reader_init (ControlReader *r)
{
  r->buf = g_byte_array_new ();
}

void
control_reader_clear (ControlReader *r)
{
  if (r->buf)
    {
      /* Lines may carry credentials or a site's pre-shared key. */
      if (r->buf->len > 0)
        control_wipe (r->buf->data, r->buf->len);
      g_byte_array_unref (r->buf);
    }
  r->buf = NULL;
}

gboolean
control_reader_feed (ControlReader *r, const guint8 *data, gsize len, GError **error)
{
  const guint8 *nl;
  gsize tail;

  if (len == 0)
    return TRUE;
  g_byte_array_append (r->buf, data, (guint) len);
  /* A complete line may be waiting; only an unterminated tail is bounded. */
  nl = memrchr (r->buf->data, '\n', r->buf->len);
  tail = nl ? r->buf->len - (gsize) (nl - r->buf->data) - 1 : r->buf->len;

  if (tail > CONTROL_MAX_LINE)
    {
      g_set_error (error, CONTROL_ERROR, CONTROL_ERROR_TOO_LONG, "message longer than %u bytes", CONTROL_MAX_LINE);
      return FALSE;
    }
  return TRUE;
}

char *
control_reader_next (ControlReader *r, gsize *len)
{
  const guint8 *nl = r->buf->len > 0 ? memchr (r->buf->data, '\n', r->buf->len) : NULL;
  gsize n;
  char *line;

  if (nl == NULL)
    return NULL;
  n = (gsize) (nl - r->buf->data);
  line = g_malloc (n + 1);
  memcpy (line, r->buf->data, n);
  line[n] = '\0';
  control_wipe (r->buf->data, n + 1);
  g_byte_array_remove_range (r->buf, 0, (guint) n + 1);
  if (len)
    *len = n;
  return line;
}
