/* Shared by the xauth suite's tests (xauth-fixture.h). */
#include "xauth-fixture.h"

const ModikePluginDescriptor *modike_plugin_descriptor (void);

/* The plugin on a node as the loader gives it: descriptor, init, table. */
Xauth *
load_plugin (Node *n)
{
  const ModikePluginDescriptor *desc = modike_plugin_descriptor ();
  ModikePlugin *pl = modike_registry_add_plugin (n->reg, desc);
  g_autoptr (GError) error = NULL;

  g_assert_true (desc->init (pl, &error));
  g_assert_no_error (error);
  g_assert_true (modike_registry_check_table (n->reg, &error));
  return modike_plugin_get_data (pl);
}

/* config_xml with method xauth-psk and `section` added; applied as the
 * daemon does (plugin sections, auth names, then the engine). */
gboolean
configure (Node *n, const Params *p, gboolean is_a, const char *section, GError **error)
{
  g_autofree char *xml = config_xml (p, is_a);
  g_auto (GStrv) parts = g_strsplit (xml, "method=\"psk\"", -1);
  g_autofree char *x1 = g_strjoinv ("method=\"xauth-psk\"", parts);
  g_auto (GStrv) tail = g_strsplit (x1, "</modike>", -1);
  g_autofree char *x2 = NULL;
  g_autoptr (GHashTable) fragments = modike_registry_config_fragments (n->reg);
  ModikeConfig *cfg;

  g_assert_cmpuint (g_strv_length (tail), ==, 2);
  x2 = g_strconcat (tail[0], section, "</modike>", tail[1], NULL);
  cfg = modike_config_load_string (x2, n->name, error);
  if (cfg == NULL)
    return FALSE;
  if (!modike_config_check_plugins (cfg, fragments, error) || !modike_registry_resolve_auth (n->reg, cfg, error)
      || !modike_registry_apply_config (n->reg, cfg, error) || !modike_ike_set_config (n->ike, cfg, error))
    {
      modike_config_free (cfg);
      return FALSE;
    }
  modike_config_free (n->cfg);
  n->cfg = cfg;
  return TRUE;
}
