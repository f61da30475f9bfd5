/* Shared by the xauth suite's tests (xauth-fixture.h). */
#include "xauth-fixture.h"

#include <glib/gstdio.h>

const ModikePluginDescriptor *modike_plugin_descriptor (void);

/* The plugin on a node as the loader gives it: descriptor, init, table. */
Xauth *
load_plugin (Node *n)
{
  return node_load_plugin (n, modike_plugin_descriptor ());
}

/* `xml` with `section` added before </modike>; applied as the daemon does
 * (plugin sections, auth names, then the engine). */
gboolean
configure_xml (Node *n, const char *xml, const char *section, GError **error)
{
  g_auto (GStrv) tail = g_strsplit (xml, "</modike>", -1);
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

/* config_xml with method xauth-psk and `section` added (configure_xml). */
gboolean
configure (Node *n, const Params *p, gboolean is_a, const char *section, GError **error)
{
  g_autofree char *xml = config_xml (p, is_a);
  g_auto (GStrv) parts = g_strsplit (xml, "method=\"psk\"", -1);
  g_autofree char *x1 = g_strjoinv ("method=\"xauth-psk\"", parts);

  return configure_xml (n, x1, section, error);
}

void
remove_tmp_dir (const char *dir)
{
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  const char *name;

  while ((name = g_dir_read_name (d)) != NULL)
    {
      g_autofree char *path = g_build_filename (dir, name, NULL);

      g_unlink (path);
    }
  g_rmdir (dir);
}
