/* hello: the smallest useful modike plugin, built out of tree against the
 * installed SDK. It announces itself to peers with a vendor ID, notices
 * peers that send the same one, and takes its greeting from the daemon
 * config: <hello greeting="..."/>. */
#define G_LOG_DOMAIN "modike-hello"

#include <modike/modike.h>

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
  Hello *h = user;

  g_message ("peer %s runs modike-hello too; %s", modike_ike_sa_get_peer_name (sa), h->greeting);
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
  .description = "example plugin: a vendor ID and a config section",
  .provides = hello_provides,
  .depends = NULL,
  .init = hello_init,
  .fini = hello_fini,
};

MODIKE_PLUGIN_DEFINE (hello_descriptor)
