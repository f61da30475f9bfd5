/* Plugin loading: resolve names (static descriptors first, then
 * <dir>/<name>.so), check the ABI, order by dependencies, init; any
 * failure undoes everything this call did. */
#define G_LOG_DOMAIN "modike"

#include "loader.h"

#include <gmodule.h>
#include <string.h>

G_DEFINE_QUARK (modike-loader-error-quark, modike_loader_error)

/* Bytes of the descriptor each ABI minor defines (append-only growth):
 * a plugin built for minor m must carry at least known_size[m]. */
static const gsize known_size[MODIKE_ABI_MINOR + 1] = {
  [0] = G_STRUCT_OFFSET (ModikePluginDescriptor, fini) + G_SIZEOF_MEMBER (ModikePluginDescriptor, fini),
  /* 1.1 grew the SDK's calls and ModikeSaStats, not the descriptor. */
  [1] = G_STRUCT_OFFSET (ModikePluginDescriptor, fini) + G_SIZEOF_MEMBER (ModikePluginDescriptor, fini),
  /* 1.2: auth methods, attribute claims, SA results, DNS in the OS adapter
   * ops; decoded payloads (ModikePayload.decoded and its accessors),
   * modike_exchange_alloc_spi and _set_policy; the descriptor is the same. */
  [2] = G_STRUCT_OFFSET (ModikePluginDescriptor, fini) + G_SIZEOF_MEMBER (ModikePluginDescriptor, fini),
  /* 1.3: the shared transaction exchange, MODIKE_EVENT_AUTHENTICATED,
   * modike_ike_sa_auth_done/_get_user, policy templates and instances
   * (split exclude, peer addresses), plugin counters, check-only,
   * stage details, modike_ike_initiate_as, engine timers and start hooks,
   * the P1_FAILED / P2_FAILED events, the datapath's sa_move (a NAT peer
   * moved), modike_ike_sa_get_last_outbound; the descriptor is the same. */
  [3] = G_STRUCT_OFFSET (ModikePluginDescriptor, fini) + G_SIZEOF_MEMBER (ModikePluginDescriptor, fini),
  /* 1.4: ModikeSpdEntry.seq, the datapath's policy_add / policy_del (one
   * policy at a time), modike_spd_covering; outbound SAs named by (spi,
   * reqid): modike_sad_lookup_sa/_remove_sa, the datapath's sa_del_sa /
   * sa_stats_sa, modike_datapath_expire_sa; the descriptor is the same. */
  [4] = G_STRUCT_OFFSET (ModikePluginDescriptor, fini) + G_SIZEOF_MEMBER (ModikePluginDescriptor, fini),
};

typedef struct {
  char *name;
  const ModikePluginDescriptor *desc;
  GModule *module;       /* NULL for static descriptors */
  ModikePlugin *plugin;  /* set once init ran */
} Entry;

struct _ModikeLoader {
  ModikeRegistry *reg;
  char *dir;
  GHashTable *statics;   /* name -> const ModikePluginDescriptor* */
  GPtrArray *loaded;     /* Entry*, load order */
  GPtrArray *names;      /* char* borrowed from loaded, load order */
};

static void
entry_free (Entry *e)
{
  if (e->module != NULL && !g_module_close (e->module))
    g_warning ("plugin '%s': closing the module failed: %s", e->name, g_module_error ());
  g_free (e->name);
  g_free (e);
}

ModikeLoader *
modike_loader_new (ModikeRegistry *reg, const char *plugin_dir)
{
  ModikeLoader *l;

  g_return_val_if_fail (reg != NULL, NULL);
  l = g_new0 (ModikeLoader, 1);
  l->reg = reg;
  l->dir = g_strdup (plugin_dir);
  l->statics = g_hash_table_new (g_str_hash, g_str_equal);
  l->loaded = g_ptr_array_new ();
  l->names = g_ptr_array_new ();
  return l;
}

void
modike_loader_add_static (ModikeLoader *l, const ModikePluginDescriptor *desc)
{
  g_return_if_fail (l != NULL);
  g_return_if_fail (desc != NULL && desc->name != NULL);
  g_hash_table_replace (l->statics, (gpointer) desc->name, (gpointer) desc);
}

GPtrArray *
modike_loader_loaded (const ModikeLoader *l)
{
  g_return_val_if_fail (l != NULL, NULL);
  return l->names;
}

static gboolean G_GNUC_PRINTF (4, 5)
fail (GError **error, ModikeLoaderError code, const char *name, const char *fmt, ...)
{
  va_list ap;
  g_autofree char *cause = NULL;

  va_start (ap, fmt);
  cause = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error (error, MODIKE_LOADER_ERROR, code, "plugin '%s': %s", name, cause);
  return FALSE;
}

/* Plugin names become file names: keep them to one harmless path part. */
static gboolean
name_ok (const char *name)
{
  if (name == NULL || name[0] == '\0' || name[0] == '.' || strlen (name) > 64)
    return FALSE;
  for (const char *p = name; *p != '\0'; p++)
    if (!g_ascii_isalnum (*p) && *p != '-' && *p != '_' && *p != '.')
      return FALSE;
  return TRUE;
}

static gboolean
is_loaded (const ModikeLoader *l, const char *name)
{
  for (guint i = 0; i < l->names->len; i++)
    if (strcmp (g_ptr_array_index (l->names, i), name) == 0)
      return TRUE;
  return FALSE;
}

static gboolean
check_descriptor (const char *name, const char *origin, const ModikePluginDescriptor *d, GError **error)
{
  if (d->abi_major != MODIKE_ABI_MAJOR || d->abi_minor > MODIKE_ABI_MINOR)
    return fail (error, MODIKE_LOADER_ERROR_ABI, name, "ABI %u.%u, this modiked speaks %u.%u",
                 d->abi_major, d->abi_minor, MODIKE_ABI_MAJOR, MODIKE_ABI_MINOR);
  if (d->struct_size < known_size[d->abi_minor])
    return fail (error, MODIKE_LOADER_ERROR_ABI, name,
                 "descriptor is %" G_GSIZE_FORMAT " bytes, ABI %u.%u needs at least %" G_GSIZE_FORMAT,
                 d->struct_size, d->abi_major, d->abi_minor, known_size[d->abi_minor]);
  if (d->name == NULL || strcmp (d->name, name) != 0)
    return fail (error, MODIKE_LOADER_ERROR_BAD_MODULE, name, "%s describes a plugin named '%s'", origin,
                 d->name != NULL ? d->name : "(null)");
  if (d->init == NULL)
    return fail (error, MODIKE_LOADER_ERROR_BAD_MODULE, name, "%s has no init function", origin);
  return TRUE;
}

/* Finds the descriptor of `name`; the entry owns the opened module. */
static Entry *
resolve (ModikeLoader *l, const char *name, GError **error)
{
  g_autofree char *file = NULL;
  g_autofree char *path = NULL;
  const ModikePluginDescriptor *desc;
  ModikePluginEntry entry_fn = NULL;
  Entry *e;

  e = g_new0 (Entry, 1);
  e->name = g_strdup (name);

  if ((desc = g_hash_table_lookup (l->statics, name)) != NULL)
    {
      if (!check_descriptor (name, "the built-in descriptor", desc, error))
        goto out_fail;
      e->desc = desc;
      return e;
    }

  if (l->dir == NULL)
    {
      fail (error, MODIKE_LOADER_ERROR_NOT_FOUND, name, "not found (no plugin directory)");
      goto out_fail;
    }
  file = g_strconcat (name, ".so", NULL);
  path = g_build_filename (l->dir, file, NULL);
  if (!g_file_test (path, G_FILE_TEST_EXISTS))
    {
      fail (error, MODIKE_LOADER_ERROR_NOT_FOUND, name, "not found in %s", l->dir);
      goto out_fail;
    }
  /* Local binding: a plugin's symbols never satisfy another plugin. */
  e->module = g_module_open (path, G_MODULE_BIND_LOCAL);
  if (e->module == NULL)
    {
      fail (error, MODIKE_LOADER_ERROR_BAD_MODULE, name, "not a loadable module: %s", g_module_error ());
      goto out_fail;
    }
  if (!g_module_symbol (e->module, MODIKE_PLUGIN_SYMBOL, (gpointer *) &entry_fn) || entry_fn == NULL)
    {
      fail (error, MODIKE_LOADER_ERROR_BAD_MODULE, name, "%s does not export %s", path, MODIKE_PLUGIN_SYMBOL);
      goto out_fail;
    }
  if ((desc = entry_fn ()) == NULL)
    {
      fail (error, MODIKE_LOADER_ERROR_BAD_MODULE, name, "%s returned no descriptor", path);
      goto out_fail;
    }
  if (!check_descriptor (name, path, desc, error))
    goto out_fail;
  e->desc = desc;
  return e;

out_fail:
  entry_free (e);
  return NULL;
}

static gint
batch_index (GPtrArray *batch, const char *name)
{
  for (guint i = 0; i < batch->len; i++)
    if (strcmp (((Entry *) g_ptr_array_index (batch, i))->name, name) == 0)
      return (gint) i;
  return -1;
}

/* The first dependency of entry i (in its list order) not yet placed. */
static gint
pending_dep (GPtrArray *batch, guint i, const gboolean *placed)
{
  const Entry *e = g_ptr_array_index (batch, i);

  for (const char *const *d = e->desc->depends; d != NULL && *d != NULL; d++)
    {
      gint j = batch_index (batch, *d);

      if (j >= 0 && !placed[j])
        return j;
    }
  return -1;
}

/* Topological order (Kahn), ties broken by config order. Dependencies on
 * plugins loaded by an earlier call are already satisfied. */
static GPtrArray *
order_batch (ModikeLoader *l, GPtrArray *batch, GError **error)
{
  g_autoptr (GPtrArray) order = g_ptr_array_new ();
  g_autofree gboolean *placed = g_new0 (gboolean, batch->len + 1);

  for (guint i = 0; i < batch->len; i++)
    {
      const Entry *e = g_ptr_array_index (batch, i);

      for (const char *const *d = e->desc->depends; d != NULL && *d != NULL; d++)
        if (batch_index (batch, *d) < 0 && !is_loaded (l, *d))
          {
            fail (error, MODIKE_LOADER_ERROR_DEPENDENCY, e->name, "depends on '%s', which is not in the plugin list", *d);
            return NULL;
          }
    }

  while (order->len < batch->len)
    {
      gint next = -1;

      for (guint i = 0; i < batch->len && next < 0; i++)
        if (!placed[i] && pending_dep (batch, i, placed) < 0)
          next = (gint) i;
      if (next < 0)
        {
          /* Every unplaced entry waits on another unplaced one: follow the
           * first pending dependency from the first unplaced entry until
           * an entry repeats; that part of the walk is a cycle. */
          g_autoptr (GArray) walk = g_array_new (FALSE, FALSE, sizeof (gint));
          g_autoptr (GString) cycle = g_string_new (NULL);
          gint cur = 0;
          guint start = 0;

          while (placed[cur])
            cur++;
          for (;;)
            {
              gboolean seen = FALSE;

              for (guint k = 0; k < walk->len && !seen; k++)
                if (g_array_index (walk, gint, k) == cur)
                  {
                    seen = TRUE;
                    start = k;
                  }
              if (seen)
                break;
              g_array_append_val (walk, cur);
              cur = pending_dep (batch, (guint) cur, placed);
            }
          for (guint k = start; k < walk->len; k++)
            g_string_append_printf (cycle, "%s -> ",
                                    ((Entry *) g_ptr_array_index (batch, g_array_index (walk, gint, k)))->name);
          g_string_append (cycle, ((Entry *) g_ptr_array_index (batch, cur))->name);
          fail (error, MODIKE_LOADER_ERROR_DEPENDENCY, ((Entry *) g_ptr_array_index (batch, cur))->name,
                "dependency cycle %s", cycle->str);
          return NULL;
        }
      placed[next] = TRUE;
      g_ptr_array_add (order, g_ptr_array_index (batch, next));
    }
  return g_steal_pointer (&order);
}

/* fini, then every registration undone (the registry frees the plugin's
 * data), before the module's code goes away. */
static void
uninit (ModikeLoader *l, Entry *e)
{
  if (e->plugin == NULL)
    return;
  if (e->desc->fini != NULL)
    e->desc->fini (e->plugin);
  modike_registry_remove_plugin (l->reg, e->plugin);
  e->plugin = NULL;
}

static gboolean
init_one (ModikeLoader *l, Entry *e, GError **error)
{
  g_autoptr (GError) local = NULL;
  const GError *refusal;
  const GError *cause;
  gboolean ok;

  e->plugin = modike_registry_add_plugin (l->reg, e->desc);
  ok = e->desc->init (e->plugin, &local);
  refusal = modike_plugin_get_refusal (e->plugin);

  if (ok && local != NULL)
    {
      g_warning ("plugin '%s': init succeeded but set an error: %s", e->name, local->message);
      g_clear_error (&local);
    }
  if (ok && refusal == NULL)
    {
      g_info ("loaded plugin '%s' %s%s%s", e->name, e->desc->version != NULL ? e->desc->version : "",
              e->module != NULL ? " from " : " (built in)", e->module != NULL ? g_module_name (e->module) : "");
      return TRUE;
    }

  /* Refused: init failed, or it went on without a registration it asked for. */
  cause = local != NULL ? local : refusal;
  if (cause == NULL)
    fail (error, MODIKE_LOADER_ERROR_INIT, e->name, "init failed without giving a reason");
  else if (cause->domain == MODIKE_REGISTRY_ERROR)
    /* Registry messages already name the plugin, the thing and the holder. */
    g_set_error (error, MODIKE_LOADER_ERROR,
                 cause->code == MODIKE_REGISTRY_ERROR_CONFLICT ? MODIKE_LOADER_ERROR_CONFLICT : MODIKE_LOADER_ERROR_INIT,
                 "%s%s", cause->message, ok ? " (init ignored the refusal)" : "");
  else
    fail (error, MODIKE_LOADER_ERROR_INIT, e->name, "init failed: %s", cause->message);
  /* Only an init that returned TRUE gets its fini; the registrations go
   * either way. */
  if (ok)
    uninit (l, e);
  else
    modike_registry_remove_plugin (l->reg, e->plugin);
  e->plugin = NULL;
  return FALSE;
}

gboolean
modike_loader_load (ModikeLoader *l, const char *const *names, GError **error)
{
  g_autoptr (GPtrArray) batch = g_ptr_array_new_with_free_func ((GDestroyNotify) entry_free);
  g_autoptr (GPtrArray) order = NULL;
  g_autoptr (GError) table_error = NULL;
  guint inited = 0;

  g_return_val_if_fail (l != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  for (guint i = 0; names != NULL && names[i] != NULL; i++)
    {
      const char *name = names[i];

      if (!name_ok (name))
        return fail (error, MODIKE_LOADER_ERROR_NOT_FOUND, name, "not a valid plugin name");
      if (strcmp (name, "core") == 0)
        return fail (error, MODIKE_LOADER_ERROR_DUPLICATE, name, "the name is reserved for the core");
      for (guint j = 0; j < i; j++)
        if (strcmp (names[j], name) == 0)
          return fail (error, MODIKE_LOADER_ERROR_DUPLICATE, name, "listed twice");
      if (is_loaded (l, name))
        return fail (error, MODIKE_LOADER_ERROR_DUPLICATE, name, "already loaded");
    }

  /* Resolving first means nothing is inited unless every plugin exists
   * and speaks our ABI. */
  for (guint i = 0; names != NULL && names[i] != NULL; i++)
    {
      Entry *e = resolve (l, names[i], error);

      if (e == NULL)
        return FALSE;
      g_ptr_array_add (batch, e);
    }
  if ((order = order_batch (l, batch, error)) == NULL)
    return FALSE;

  for (inited = 0; inited < order->len; inited++)
    if (!init_one (l, g_ptr_array_index (order, inited), error))
      goto out_rollback;

  if (!modike_registry_check_table (l->reg, &table_error))
    {
      g_set_error (error, MODIKE_LOADER_ERROR, MODIKE_LOADER_ERROR_INIT, "state table check failed: %s",
                   table_error->message);
      goto out_rollback;
    }

  for (guint i = 0; i < order->len; i++)
    {
      Entry *e = g_ptr_array_index (order, i);

      g_ptr_array_add (l->loaded, e);
      g_ptr_array_add (l->names, e->name);
    }
  g_ptr_array_set_free_func (batch, NULL);  /* the entries moved to l->loaded */
  return TRUE;

out_rollback:
  while (inited > 0)
    uninit (l, g_ptr_array_index (order, --inited));
  return FALSE;  /* batch closes the modules */
}

void
modike_loader_unload_all (ModikeLoader *l)
{
  g_return_if_fail (l != NULL);
  while (l->loaded->len > 0)
    {
      Entry *e = g_ptr_array_steal_index (l->loaded, l->loaded->len - 1);

      g_ptr_array_remove_index (l->names, l->names->len - 1);
      uninit (l, e);
      g_debug ("unloaded plugin '%s'", e->name);
      entry_free (e);
    }
}

void
modike_loader_free (ModikeLoader *l)
{
  if (l == NULL)
    return;
  modike_loader_unload_all (l);
  g_ptr_array_unref (l->loaded);
  g_ptr_array_unref (l->names);
  g_hash_table_unref (l->statics);
  g_free (l->dir);
  g_free (l);
}
