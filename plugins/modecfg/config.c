/* The <modecfg> section of modiked's config: the gateway's pools, its
 * lease database and, per <peer> entry, what its clients get. Everything
 * is checked at load; errors name file and line. */
#include "modecfg.h"

#include <gio/gio.h>
#include <glib/gstdio.h>

#include <errno.h>
#include <string.h>

#define DEFAULT_LEASES "/var/lib/modike/leases.db"

const char modecfg_rng[] =
  "<element name=\"modecfg\" xmlns=\"http://relaxng.org/ns/structure/1.0\"><interleave>"
  "  <optional><element name=\"leases\"><attribute name=\"file\"/></element></optional>"
  "  <zeroOrMore><element name=\"pool\">"
  "    <attribute name=\"name\"/><attribute name=\"range\"/>"
  "  </element></zeroOrMore>"
  "  <zeroOrMore><element name=\"gateway\">"
  "    <attribute name=\"peer\"/>"
  "    <optional><attribute name=\"pools\"/></optional>"
  "    <optional><attribute name=\"dns\"/></optional>"
  "    <optional><attribute name=\"nbns\"/></optional>"
  "    <optional><attribute name=\"split-include\"/></optional>"
  "    <optional><attribute name=\"split-exclude\"/></optional>"
  "    <optional><attribute name=\"domain\"/></optional>"
  "    <optional><attribute name=\"split-dns\"/></optional>"
  "    <optional><attribute name=\"banner\"/></optional>"
  "    <optional><attribute name=\"save-password\"/></optional>"
  "    <optional><attribute name=\"pfs\"/></optional>"
  "    <optional><attribute name=\"push\"/></optional>"
  "    <optional><attribute name=\"timeout\"/></optional>"
  "  </element></zeroOrMore>"
  "</interleave></element>";

void
modecfg_gateway_free (gpointer p)
{
  ModecfgGateway *g = p;

  g_free (g->peer);
  g_ptr_array_unref (g->pools);
  g_array_unref (g->dns);
  g_array_unref (g->nbns);
  g_array_unref (g->split_include);
  g_array_unref (g->split_exclude);
  g_ptr_array_unref (g->split_dns);
  g_free (g->domain);
  g_free (g->banner);
  g_free (g);
}

const ModecfgGateway *
modecfg_find_gateway (const Modecfg *mc, const char *peer)
{
  for (guint i = 0; peer != NULL && mc->gateways != NULL && i < mc->gateways->len; i++)
    if (strcmp (((ModecfgGateway *) mc->gateways->pdata[i])->peer, peer) == 0)
      return mc->gateways->pdata[i];
  return NULL;
}

guint
modecfg_option_seconds (ModikeIkeSa *sa, const char *key, guint def)
{
  const char *v = modike_ike_sa_get_option (sa, key);
  guint64 n;

  if (v == NULL || !g_ascii_string_to_unsigned (v, 10, 1, 3600, &n, NULL))
    return def;
  return (guint) n;
}

static const char *
file_of (xmlNode *n)
{
  return n->doc != NULL && n->doc->URL != NULL ? (const char *) n->doc->URL : "config";
}

static gboolean G_GNUC_PRINTF (3, 4)
bad (GError **error, xmlNode *n, const char *fmt, ...)
{
  va_list ap;
  g_autofree char *msg = NULL;

  va_start (ap, fmt);
  msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%s:%u: <%s>: %s", file_of (n), n->line,
               (const char *) n->name, msg);
  return FALSE;
}

/* Space-separated words of an attribute (none when absent or empty). */
static GStrv
words (xmlNode *n, const char *name)
{
  g_autofree char *v = modike_config_attr (n, name);

  return g_strsplit_set (v != NULL ? g_strstrip (v) : "", " \t\n,", -1);
}

static gboolean
addr_list (xmlNode *n, const char *name, GArray *out, GError **error)
{
  g_auto (GStrv) w = words (n, name);

  for (guint i = 0; w[i] != NULL; i++)
    {
      ModikeAddr a;

      if (*w[i] == '\0')
        continue;
      if (!modike_addr_parse (w[i], 0, &a, NULL))
        return bad (error, n, "%s: '%s' is not an address", name, w[i]);
      g_array_append_val (out, a);
    }
  return out->len <= MODECFG_MAX_LIST || bad (error, n, "%s: more than %u", name, MODECFG_MAX_LIST);
}

static gboolean
net_list (xmlNode *n, const char *name, GArray *out, GError **error)
{
  g_auto (GStrv) w = words (n, name);

  for (guint i = 0; w[i] != NULL; i++)
    {
      ModikePrefix p;

      if (*w[i] == '\0')
        continue;
      if (!modike_prefix_parse (w[i], &p, NULL))
        return bad (error, n, "%s: '%s' is not a network (10.1.0.0/16)", name, w[i]);
      g_array_append_val (out, p);
    }
  return out->len <= MODECFG_MAX_LIST || bad (error, n, "%s: more than %u", name, MODECFG_MAX_LIST);
}

static gboolean
text_prop (xmlNode *n, const char *name, char **out, GError **error)
{
  g_autofree char *v = modike_config_attr (n, name);

  if (v != NULL && strlen (v) > MODECFG_MAX_TEXT)
    return bad (error, n, "%s: longer than %u bytes", name, MODECFG_MAX_TEXT);
  *out = v != NULL && *v != '\0' ? g_steal_pointer (&v) : NULL;
  return TRUE;
}

static gboolean
bool_prop (xmlNode *n, const char *name, gboolean *set, gboolean *out, GError **error)
{
  g_autofree char *v = modike_config_attr (n, name);

  *set = v != NULL && *v != '\0';
  *out = FALSE;
  if (!*set)
    return TRUE;
  if (strcmp (v, "yes") == 0)
    *out = TRUE;
  else if (strcmp (v, "no") != 0)
    return bad (error, n, "%s='%s': want yes or no", name, v);
  return TRUE;
}

static gboolean
number_prop (xmlNode *n, const char *name, guint min, guint max, gboolean *set, guint *out, GError **error)
{
  g_autofree char *v = modike_config_attr (n, name);
  guint64 x;

  *set = v != NULL && *v != '\0';
  if (!*set)
    return TRUE;
  if (!g_ascii_string_to_unsigned (v, 10, min, max, &x, NULL))
    return bad (error, n, "%s='%s' not in %u..%u", name, v, min, max);
  *out = (guint) x;
  return TRUE;
}

static gboolean
is_domain (const char *s)
{
  if (*s == '\0' || strlen (s) > 253)
    return FALSE;
  for (const char *c = s; *c != '\0'; c++)
    if (!g_ascii_isalnum (*c) && *c != '-' && *c != '.' && *c != '_')
      return FALSE;
  return TRUE;
}

static gboolean
gateway_parse (Modecfg *mc, GHashTable *pools, xmlNode *n, ModecfgGateway **out, GError **error)
{
  g_autoptr (GPtrArray) keep = g_ptr_array_new_with_free_func (modecfg_gateway_free);
  ModecfgGateway *g = g_new0 (ModecfgGateway, 1);
  g_auto (GStrv) pw = words (n, "pools");
  g_auto (GStrv) dw = words (n, "split-dns");
  g_autofree char *domain = NULL;
  gboolean set, v6 = FALSE, v4 = FALSE;
  guint pfs = 0;

  g_ptr_array_add (keep, g);
  g->peer = modike_config_attr (n, "peer");
  g->pools = g_ptr_array_new ();
  g->dns = g_array_new (FALSE, FALSE, sizeof (ModikeAddr));
  g->nbns = g_array_new (FALSE, FALSE, sizeof (ModikeAddr));
  g->split_include = g_array_new (FALSE, FALSE, sizeof (ModikePrefix));
  g->split_exclude = g_array_new (FALSE, FALSE, sizeof (ModikePrefix));
  g->split_dns = g_ptr_array_new_with_free_func (g_free);
  g->timeout_s = MODECFG_DEFAULT_TIMEOUT_S;
  if (*g->peer == '\0')
    return bad (error, n, "peer is empty");
  if (modecfg_find_gateway (mc, g->peer) != NULL)
    return bad (error, n, "a second entry for peer '%s'", g->peer);
  for (guint i = 0; pw[i] != NULL; i++)
    {
      ModecfgPool *pool;

      if (*pw[i] == '\0')
        continue;
      if ((pool = g_hash_table_lookup (pools, pw[i])) == NULL)
        return bad (error, n, "pools: no <pool name=\"%s\">", pw[i]);
      if (modecfg_pool_get_family (pool) == AF_INET ? v4 : v6)
        return bad (error, n, "pools: two pools of one address family ('%s'); give one IPv4 and one IPv6 pool",
                    pw[i]);
      *(modecfg_pool_get_family (pool) == AF_INET ? &v4 : &v6) = TRUE;
      g_ptr_array_add (g->pools, pool);
    }
  if (!addr_list (n, "dns", g->dns, error) || !addr_list (n, "nbns", g->nbns, error)
      || !net_list (n, "split-include", g->split_include, error)
      || !net_list (n, "split-exclude", g->split_exclude, error) || !text_prop (n, "banner", &g->banner, error)
      || !text_prop (n, "domain", &domain, error)
      || !bool_prop (n, "save-password", &g->has_save_password, &g->save_password, error)
      || !number_prop (n, "pfs", 1, 65535, &g->has_pfs, &pfs, error)
      || !bool_prop (n, "push", &set, &g->push, error)
      || !number_prop (n, "timeout", 1, 3600, &set, &g->timeout_s, error))
    return FALSE;
  g->pfs = pfs;
  if (domain != NULL && !is_domain (domain))
    return bad (error, n, "domain: '%s' is not a domain name", domain);
  g->domain = g_steal_pointer (&domain);
  for (guint i = 0; dw[i] != NULL; i++)
    {
      if (*dw[i] == '\0')
        continue;
      if (!is_domain (dw[i]))
        return bad (error, n, "split-dns: '%s' is not a domain name", dw[i]);
      g_ptr_array_add (g->split_dns, g_strdup (dw[i]));
    }
  for (guint i = 0; i < g->split_exclude->len; i++)
    if (g_array_index (g->split_exclude, ModikePrefix, i).net.family != AF_INET)
      return bad (error, n, "split-exclude: Unity lists carry IPv4 networks only");
  if (g->push && g->pools->len == 0)
    return bad (error, n, "push=\"yes\" without pools: nothing to push");
  *out = g_ptr_array_steal_index (keep, 0);
  return TRUE;
}

/* The lease store: kept across reloads while the file stays the same. */
static gboolean
store_apply (Modecfg *mc, xmlNode *leases, gboolean want, ModecfgLeaseStore **store, char **path, GError **error)
{
  g_autofree char *file = leases != NULL ? modike_config_attr (leases, "file") : g_strdup (DEFAULT_LEASES);

  *store = NULL;
  *path = NULL;
  if (!want)
    return TRUE;
  if (strcmp (file, "memory") == 0)
    {
      g_clear_pointer (&file, g_free);
      if (mc->store != NULL && mc->store_path == NULL)
        return TRUE;
      *store = modecfg_lease_store_memory_new ();
      return TRUE;
    }
  if (!g_path_is_absolute (file))
    return bad (error, leases, "file: '%s' is not an absolute path (or \"memory\")", file);
  if (mc->store != NULL && g_strcmp0 (mc->store_path, file) == 0)
    {
      *path = g_steal_pointer (&file);
      return TRUE;
    }
  /* modiked --check: the running gateway holds the database (locked for
   * one process); the pools are checked over a store of their own. */
  if (modike_plugin_is_check_only (mc->plugin))
    {
      *store = modecfg_lease_store_memory_new ();
      return TRUE;
    }
  /* The default place is ours to make (a package may not ship it). */
  if (leases == NULL)
    {
      g_autofree char *dir = g_path_get_dirname (file);

      if (g_mkdir_with_parents (dir, 0700) != 0)
        {
          g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno), "lease database directory %s: %s", dir,
                       g_strerror (errno));
          return FALSE;
        }
    }
  if ((*store = modecfg_lease_store_sqlite_open (file, error)) == NULL)
    {
      if (leases != NULL)
        g_prefix_error (error, "%s:%u: <leases>: ", file_of (leases), leases->line);
      return FALSE;
    }
  *path = g_steal_pointer (&file);
  return TRUE;
}

gboolean
modecfg_apply (ModikePlugin *plugin, xmlNode *section, gpointer user, GError **error)
{
  Modecfg *mc = user;
  g_autoptr (GHashTable) pools = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                                        (GDestroyNotify) modecfg_pool_free);
  g_autoptr (GPtrArray) gateways = g_ptr_array_new_with_free_func (modecfg_gateway_free);
  g_autoptr (ModecfgLeaseStore) store = NULL;
  g_autofree char *path = NULL;
  xmlNode *leases = NULL;
  gboolean has_pools = FALSE;
  ModecfgLeaseStore *use;
  GPtrArray *old_gateways;

  for (xmlNode *c = section != NULL ? section->children : NULL; c != NULL; c = c->next)
    if (c->type == XML_ELEMENT_NODE && strcmp ((const char *) c->name, "leases") == 0)
      leases = c;
    else if (c->type == XML_ELEMENT_NODE && strcmp ((const char *) c->name, "pool") == 0)
      has_pools = TRUE;
  if (!store_apply (mc, leases, has_pools, &store, &path, error))
    return FALSE;
  use = store != NULL ? store : mc->store;
  for (xmlNode *c = section != NULL ? section->children : NULL; c != NULL; c = c->next)
    {
      g_autofree char *name = NULL;
      g_autofree char *range_text = NULL;
      ModecfgRange range;
      g_autoptr (GError) e = NULL;
      ModecfgPool *pool;

      if (c->type != XML_ELEMENT_NODE || strcmp ((const char *) c->name, "pool") != 0)
        continue;
      name = modike_config_attr (c, "name");
      range_text = modike_config_attr (c, "range");
      if (*name == '\0' || strlen (name) > MODECFG_POOL_NAME_MAX || strchr (name, ' ') != NULL)
        return bad (error, c, "name '%s': 1 to %u characters without spaces", name, MODECFG_POOL_NAME_MAX);
      if (g_hash_table_contains (pools, name))
        return bad (error, c, "a second pool named '%s'", name);
      if (!modecfg_range_parse (range_text, &range, &e))
        return bad (error, c, "range: %s", e->message);
      if ((pool = modecfg_pool_new (name, &range, use, &e)) == NULL)
        return bad (error, c, "%s", e->message);
      g_hash_table_insert (pools, g_steal_pointer (&name), pool);
    }
  for (xmlNode *c = section != NULL ? section->children : NULL; c != NULL; c = c->next)
    {
      ModecfgGateway *g = NULL;
      Modecfg probe = { .gateways = gateways };

      if (c->type != XML_ELEMENT_NODE || strcmp ((const char *) c->name, "gateway") != 0)
        continue;
      if (!gateway_parse (&probe, pools, c, &g, error))
        return FALSE;
      g_ptr_array_add (gateways, g);
    }
  /* Leases in use keep naming their pool; SAs look pools up by name at
   * release, so swapping the table is safe. The old store (a changed
   * file) is closed after the pools over it. */
  old_gateways = mc->gateways;
  mc->gateways = g_steal_pointer (&gateways);
  g_ptr_array_unref (old_gateways);
  g_hash_table_unref (mc->pools);
  mc->pools = g_steal_pointer (&pools);
  if (store != NULL || !has_pools)
    {
      g_clear_pointer (&mc->store, modecfg_lease_store_free);
      mc->store = g_steal_pointer (&store);
      g_free (mc->store_path);
      mc->store_path = g_steal_pointer (&path);
    }
  if (g_hash_table_size (mc->pools) > 0 && !modike_plugin_is_check_only (plugin))
    g_message ("mode config: %u pools, leases in %s", g_hash_table_size (mc->pools),
               mc->store_path != NULL ? mc->store_path : "memory");
  return TRUE;
}
