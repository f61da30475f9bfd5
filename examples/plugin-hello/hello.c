/* hello: a small modike plugin, built out of tree against the installed
 * SDK. It announces itself to peers with a vendor ID, takes its greeting
 * from the daemon config (<hello greeting="..."/>) and, once phase 1 is up
 * with a peer that sent the same vendor ID, runs an exchange of its own on
 * a private exchange type: the phase 1 initiator sends its greeting in an
 * ATTR payload, the responder answers with its own, both log the other's.
 *
 *   HELLO  HDR*, HASH, ATTR(REQUEST, greeting)  ->
 *          HDR*, HASH, ATTR(REPLY, greeting)    <-
 *
 * HASH = prf(SKEYID_a, M-ID | ATTR) is added and checked by the core
 * (MODIKE_ROW_HASH), as for the transaction exchange of mode config. */
#define G_LOG_DOMAIN "modike-hello"

#include <modike/modike.h>

#include <string.h>

/* RFC 2408 3.1: exchange types 240-255 are for private use. */
#define HELLO_EXCHANGE 240
/* A private-use attribute type of the mode-cfg ATTR payload (16384-32767). */
#define HELLO_ATTR_GREETING 16400
#define HELLO_ATTR_REQUEST 1
#define HELLO_ATTR_REPLY 2
/* A constant-expression MODIKE_PB for payload types below 48. */
#define PB(t) (G_GUINT64_CONSTANT (1) << (t))

/* Per-plugin state, owned by the core through modike_plugin_set_data. */
typedef struct {
  char *greeting;
} Hello;

static void
hello_free (gpointer data)
{
  Hello *h = data;

  g_free (h->greeting);
  g_free (h);
}

/* 16 bytes; a real plugin would use a hash of its name and version. */
static const guint8 hello_vid[] = "modike-hello-v1!";

static void
hello_vid_seen (ModikeIkeSa *sa, const guint8 *vid, gsize len, gpointer user)
{
  /* Remember on the SA that the peer speaks hello (the data is borrowed:
   * no destroy function). */
  modike_ike_sa_set_plugin_data (sa, "hello", user, NULL);
  g_message ("peer %s runs modike-hello too", modike_ike_sa_get_peer_name (sa));
}

/* ---- the hello exchange ---- */

enum { HELLO_I1 = 1, HELLO_DONE };

static const char *
our_greeting (ModikeExchange *x)
{
  Hello *h = modike_ike_sa_get_plugin_data (modike_exchange_get_sa (x), "hello");

  return h != NULL ? h->greeting : "hello";
}

static gboolean
send_greeting (ModikeExchange *x, guint8 type, GError **error)
{
  const char *text = our_greeting (x);
  ModikeAttrPayload a = { 0 };
  ModikeBuilder *b = modike_builder_new ();
  GByteArray *body = g_byte_array_new ();
  gboolean ok;

  a.type = type;
  a.identifier = modike_exchange_get_msgid (x) & 0xffff;
  a.attrs = modike_attr_array_new ();
  modike_attr_add_tlv (a.attrs, HELLO_ATTR_GREETING, (const guint8 *) text, strlen (text));
  modike_attr_payload_encode (&a, body);
  g_array_unref (a.attrs);
  /* Just the ATTR payload: the core puts the HASH in front and encrypts. */
  modike_builder_add_array (b, MODIKE_PL_ATTR, body);
  ok = modike_exchange_send (x, b, TRUE, error);
  modike_builder_free (b);
  return ok;
}

/* Logs the peer's greeting (the row guarantees one ATTR payload, which the
 * core already decoded). */
static gboolean
log_greeting (ModikeExchange *x, const ModikeMessage *msg, guint8 want, const char *verb, GError **error)
{
  const ModikeAttrPayload *a = modike_payload_get_attr (modike_message_find (msg, MODIKE_PL_ATTR));
  const ModikeAttr *g;
  gboolean ok = FALSE;

  g = modike_attrs_find (a->attrs, HELLO_ATTR_GREETING);
  if (a->type != want || g == NULL || g->tv || g->data == NULL)
    g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "hello: ATTR of type %u without a greeting",
                 a->type);
  else
    {
      char *text = g_strndup (g_bytes_get_data (g->data, NULL), g_bytes_get_size (g->data));

      g_message ("peer %s %s: %s", modike_ike_sa_get_peer_name (modike_exchange_get_sa (x)), verb, text);
      g_free (text);
      ok = TRUE;
    }
  return ok;
}

static ModikeVerdict
hello_initiate (ModikeExchange *x, const ModikeMessage *msg, GError **error)
{
  return send_greeting (x, HELLO_ATTR_REQUEST, error) ? MODIKE_V_OK : MODIKE_V_FAIL;
}

static ModikeVerdict
hello_r1 (ModikeExchange *x, const ModikeMessage *msg, GError **error)
{
  return log_greeting (x, msg, HELLO_ATTR_REQUEST, "says", error) && send_greeting (x, HELLO_ATTR_REPLY, error)
           ? MODIKE_V_OK
           : MODIKE_V_FAIL;
}

static ModikeVerdict
hello_i2 (ModikeExchange *x, const ModikeMessage *msg, GError **error)
{
  return log_greeting (x, msg, HELLO_ATTR_REPLY, "replies", error) ? MODIKE_V_OK : MODIKE_V_FAIL;
}

/* Each row is a message this end receives (0: our start). */
static const ModikeFsmRow hello_rows[] = {
  { "HELLO_I0", 0, HELLO_EXCHANGE, 0, MODIKE_ROLE_INITIATOR, MODIKE_ROW_INITIATE | MODIKE_ROW_HASH,
    0, 0, 0, hello_initiate, HELLO_I1, 2000 },
  { "HELLO_R1", 0, HELLO_EXCHANGE, 1, MODIKE_ROLE_RESPONDER,
    MODIKE_ROW_START | MODIKE_ROW_ENCRYPTED | MODIKE_ROW_HASH | MODIKE_ROW_DONE,
    PB (MODIKE_PL_ATTR), 0, 0, hello_r1, HELLO_DONE, 0 },
  { "HELLO_I2", HELLO_I1, HELLO_EXCHANGE, 2, MODIKE_ROLE_INITIATOR,
    MODIKE_ROW_ENCRYPTED | MODIKE_ROW_HASH | MODIKE_ROW_DONE,
    PB (MODIKE_PL_ATTR), 0, 0, hello_i2, HELLO_DONE, 0 },
};

/* Phase 1 is up: the phase 1 initiator greets a peer that speaks hello. */
static void
hello_p1_up (ModikeEventType ev, ModikeIkeSa *sa, const ModikeSadEntry *child, gpointer user)
{
  GError *error = NULL;

  if (modike_ike_sa_get_plugin_data (sa, "hello") == NULL || modike_ike_sa_get_role (sa) != MODIKE_ROLE_INITIATOR)
    return;
  if (modike_exchange_start (sa, HELLO_EXCHANGE, NULL, NULL, &error) == NULL)
    {
      g_warning ("hello to %s not sent: %s", modike_ike_sa_get_peer_name (sa), error->message);
      g_error_free (error);
    }
}

/* The RelaxNG pattern the daemon validates <hello> against. */
static const char hello_rng[] =
  "<element name=\"hello\" xmlns=\"http://relaxng.org/ns/structure/1.0\">"
  "  <optional><attribute name=\"greeting\"/></optional>"
  "</element>";

/* Runs at start and on every reload; section is NULL when the config has
 * no <hello> element. */
static gboolean
hello_apply (ModikePlugin *plugin, xmlNode *section, gpointer user, GError **error)
{
  Hello *h = user;
  xmlChar *greeting = section != NULL ? xmlGetProp (section, BAD_CAST "greeting") : NULL;

  g_free (h->greeting);
  h->greeting = g_strdup (greeting != NULL ? (const char *) greeting : "hello");
  xmlFree (greeting);
  g_message ("greeting: %s", h->greeting);
  return TRUE;
}

static gboolean
hello_init (ModikePlugin *plugin, GError **error)
{
  Hello *h = g_new0 (Hello, 1);

  h->greeting = g_strdup ("hello");
  /* Set first: from here on the core frees it, even if init fails. */
  modike_plugin_set_data (plugin, h, hello_free);

  if (!modike_register_vendor_id (plugin, "modike-hello", hello_vid, sizeof hello_vid - 1, MODIKE_VID_SEND,
                                  hello_vid_seen, h, error))
    return FALSE;
  if (!modike_register_config_section (plugin, "hello", hello_rng, hello_apply, h, error))
    return FALSE;
  if (!modike_register_exchange (plugin, HELLO_EXCHANGE, "Hello", hello_rows, G_N_ELEMENTS (hello_rows), error))
    return FALSE;
  if (!modike_register_event (plugin, MODIKE_EVENT_P1_UP, hello_p1_up, h, error))
    return FALSE;
  g_message ("plugin '%s' initialised", modike_plugin_get_name (plugin));
  return TRUE;
}

static void
hello_fini (ModikePlugin *plugin)
{
  g_debug ("plugin '%s' unloading", modike_plugin_get_name (plugin));
}

static const char *const hello_provides[] = { "hello-greeting", NULL };

static const ModikePluginDescriptor hello_descriptor = {
  MODIKE_PLUGIN_DESCRIPTOR_INIT,
  .name = "hello",
  .version = "1.0",
  .description = "example plugin: a vendor ID, a config section and an exchange of its own",
  .provides = hello_provides,
  .depends = NULL,
  .init = hello_init,
  .fini = hello_fini,
};

MODIKE_PLUGIN_DEFINE (hello_descriptor)
