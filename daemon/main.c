/* modiked: loads exactly the plugins its config lists, listens on the IKE
 * ports and runs the engine on one GMainLoop. SIGHUP reloads the config,
 * SIGUSR1 writes the status, SIGTERM/SIGINT delete the SAs and exit. */
#include "daemon.h"
#include "loader.h"

#include <glib-unix.h>
#include <locale.h>
#include <stdio.h>


typedef struct {
  char *config_path;
  char *plugin_dir;          /* command line; overrides the config */
  ModikeConfig *cfg;
  ModikeRegistry *reg;
  ModikeLoader *loader;
  ModikeIke *ike;
  DaemonSockets *socks;
  GMainLoop *loop;
  ModikeEnv env;
  int exit_code;
} Daemon;

static gboolean
env_send (gpointer env, const ModikeAddr *local, const ModikeAddr *remote, const guint8 *data, gsize len)
{
  Daemon *d = env;

  return d->socks && daemon_sockets_send (d->socks, local, remote, data, len);
}

/* The datapath plugin (if any) reads the NAT-T sockets itself. */
static gboolean
offer_socket (int fd, const ModikeAddr *local, gpointer user)
{
  Daemon *d = user;

  return modike_ike_offer_socket (d->ike, fd, local);
}

static void
on_datagram (const ModikeAddr *local, const ModikeAddr *remote, const guint8 *data, gsize len, gpointer user)
{
  Daemon *d = user;

  modike_ike_receive (d->ike, local, remote, data, len);
}

/* ---- outcome log ---- */

static void
obs_p1_up (ModikeIkeSa *sa, gpointer user)
{
  g_message ("peer %s: phase 1 established", modike_ike_sa_get_peer_name (sa));
}

static void
obs_p1_failed (const char *peer, const GError *error, gpointer user)
{
  g_warning ("peer %s: phase 1 failed: %s", peer ? peer : "?", error ? error->message : "unknown error");
}

static void
obs_p2_up (ModikeIkeSa *sa, const ModikeSadEntry *in, const ModikeSadEntry *out, gpointer user)
{
  g_message ("peer %s: phase 2 established, ESP SPIs in %08x out %08x",
             modike_ike_sa_get_peer_name (sa), in->spi, out->spi);
}

static void
obs_p2_failed (const char *peer, const GError *error, gpointer user)
{
  g_warning ("peer %s: phase 2 failed: %s", peer ? peer : "?", error ? error->message : "unknown error");
}

static void
obs_deleted (ModikeIkeSa *sa, gpointer user)
{
  g_message ("peer %s: ISAKMP SA deleted", modike_ike_sa_get_peer_name (sa));
}

static const ModikeIkeObserver observer = {
  obs_p1_up, obs_p1_failed, obs_p2_up, obs_p2_failed, obs_deleted,
};

/* ---- configuration ---- */

static char **
plugin_names (const ModikeConfig *cfg)
{
  GStrvBuilder *b = g_strv_builder_new ();
  char **names;

  for (guint i = 0; i < cfg->plugins->len; i++)
    g_strv_builder_add (b, cfg->plugins->pdata[i]);
  names = g_strv_builder_end (b);
  g_strv_builder_unref (b);
  return names;
}

/* Checks the plugin sections and hands them to their plugins. */
static gboolean
apply_plugin_sections (Daemon *d, ModikeConfig *cfg, GError **error)
{
  g_autoptr (GHashTable) fragments = modike_registry_config_fragments (d->reg);

  return modike_config_check_plugins (cfg, fragments, error)
         && modike_registry_resolve_auth (d->reg, cfg, error)
         && modike_registry_apply_config (d->reg, cfg, error);
}

/* --check creates no adapters, but can tell that they lack a plugin (the
 * engine says the same when it applies the config). */
static gboolean
check_adapters (Daemon *d, GError **error)
{
  gboolean os = modike_registry_os_adapter (d->reg, NULL) != NULL;
  gboolean dp = modike_registry_datapath (d->reg, NULL) != NULL;

  for (guint i = 0; i < d->cfg->peers->len; i++)
    {
      const ModikePeerConfig *p = d->cfg->peers->pdata[i];

      if (p->has_adapter && (!os || !dp))
        {
          g_set_error (error, MODIKE_CONFIG_ERROR, MODIKE_CONFIG_ERROR_INVALID,
                       "peer %s: <adapter name=\"%s\"> needs %s, and none is loaded (list it in <plugins>)", p->name,
                       p->adapter_name, !os ? "an OS adapter plugin (tun on Linux)" : "a datapath plugin (esp_user)");
          return FALSE;
        }
    }
  return TRUE;
}

/* On reload, MODIKE_IKE_ERROR_FAILED is not worth a warning. */
static void
initiate_peers (Daemon *d, gboolean reload)
{
  for (guint i = 0; i < d->cfg->peers->len; i++)
    {
      const ModikePeerConfig *p = d->cfg->peers->pdata[i];
      g_autoptr (GError) local_error = NULL;

      if (p->initiate && !modike_ike_initiate (d->ike, p->name, &local_error)
          && !(reload && g_error_matches (local_error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED)))
        g_warning ("peer %s: cannot initiate: %s", p->name, local_error->message);
    }
}

static gboolean
start (Daemon *d, gboolean check_only, GError **error)
{
  g_auto (GStrv) names = NULL;
  const char *dir;

  d->cfg = modike_config_load (d->config_path, error);
  if (!d->cfg)
    return FALSE;
  if (d->cfg->log_level && !modike_log_set_level (d->cfg->log_level, error))
    return FALSE;
  d->reg = modike_registry_new ();
  if (!modike_ike_register_core (d->reg, error))
    return FALSE;
  dir = d->plugin_dir ? d->plugin_dir : d->cfg->plugin_dir ? d->cfg->plugin_dir : MODIKE_PLUGIN_DIR;
  d->loader = modike_loader_new (d->reg, dir);
  names = plugin_names (d->cfg);
  if (!modike_loader_load (d->loader, (const char *const *) names, error))
    return FALSE;
  if (!apply_plugin_sections (d, d->cfg, error))
    return FALSE;
  if (!modike_crypto_self_test (error))
    return FALSE;
  if (check_only)
    {
      if (!check_adapters (d, error))
        return FALSE;
      GPtrArray *loaded = modike_loader_loaded (d->loader);
      g_autoptr (GString) s = g_string_new (NULL);

      for (guint i = 0; i < loaded->len; i++)
        g_string_append_printf (s, "%s%s", i ? ", " : "", (const char *) loaded->pdata[i]);
      printf ("configuration ok: %s\nplugins: %s\npeers: %u, policies: %u\n", d->config_path,
              loaded->len ? s->str : "(none)", d->cfg->peers->len, d->cfg->policies->len);
      return TRUE;
    }

  d->env = *modike_env_glib ();
  d->env.env = d;
  d->env.send = env_send;
  d->ike = modike_ike_new (&d->env, d->reg);
  modike_ike_set_observer (d->ike, &observer, d);
  {
    g_autoptr (GArray) ports = modike_registry_ports (d->reg);
    d->socks = daemon_sockets_open (d->cfg->listen, ports, on_datagram, d, error);
  }
  /* set_config starts the datapath and creates the adapters. */
  if (!d->socks || !modike_ike_set_config (d->ike, d->cfg, error))
    return FALSE;
  {
    guint taken = daemon_sockets_handoff (d->socks, offer_socket, d);

    if (taken > 0)
      g_message ("the datapath reads %u NAT-T socket(s)", taken);
  }
  initiate_peers (d, FALSE);
  g_message ("modiked started: %u peer(s), %u policy(ies)", d->cfg->peers->len, d->cfg->policies->len);
  return TRUE;
}

static gboolean
same_strings (GPtrArray *a, GPtrArray *b)
{
  if (a->len != b->len)
    return FALSE;
  for (guint i = 0; i < a->len; i++)
    if (g_strcmp0 (a->pdata[i], b->pdata[i]) != 0)
      return FALSE;
  return TRUE;
}

static gboolean
same_listen (GArray *a, GArray *b)
{
  if (a->len != b->len)
    return FALSE;
  for (guint i = 0; i < a->len; i++)
    if (!modike_addr_equal (&g_array_index (a, ModikeAddr, i), &g_array_index (b, ModikeAddr, i)))
      return FALSE;
  return TRUE;
}

static gboolean
on_sighup (gpointer data)
{
  Daemon *d = data;
  g_autoptr (GError) error = NULL;
  g_autoptr (ModikeConfig) cfg = modike_config_load (d->config_path, &error);

  if (!cfg)
    {
      g_warning ("reload refused, old configuration kept: %s", error->message);
      return G_SOURCE_CONTINUE;
    }
  if (!same_strings (cfg->plugins, d->cfg->plugins) || !same_listen (cfg->listen, d->cfg->listen))
    {
      g_warning ("reload refused, old configuration kept: the plugin list or listen addresses "
                 "changed; restart modiked for that");
      return G_SOURCE_CONTINUE;
    }
  if (!apply_plugin_sections (d, cfg, &error) || !modike_ike_set_config (d->ike, cfg, &error))
    {
      g_autoptr (GError) back_error = NULL;

      g_warning ("reload refused, old configuration kept: %s", error->message);
      /* Plugins saw the new sections: give them the old ones back. */
      if (!apply_plugin_sections (d, d->cfg, &back_error))
        g_warning ("reload: restoring the old plugin sections: %s", back_error->message);
      return G_SOURCE_CONTINUE;
    }
  if (cfg->log_level && !modike_log_set_level (cfg->log_level, &error))
    g_warning ("reload: log level kept: %s", error->message);
  modike_config_free (d->cfg);
  d->cfg = g_steal_pointer (&cfg);
  initiate_peers (d, TRUE);
  g_message ("configuration reloaded from %s", d->config_path);
  return G_SOURCE_CONTINUE;
}

static gboolean
on_sigusr1 (gpointer data)
{
  Daemon *d = data;
  g_autofree char *status = modike_ike_status (d->ike);
  g_autoptr (GError) error = NULL;

  if (d->cfg->status_file)
    {
      if (!g_file_set_contents (d->cfg->status_file, status, -1, &error))
        g_warning ("status: %s", error->message);
    }
  else
    g_message ("status:\n%s", status);
  return G_SOURCE_CONTINUE;
}

static gboolean
on_sigterm (gpointer data)
{
  Daemon *d = data;

  /* DELETEs go out now; after the loop modike_ike_free destroys the
   * adapters and stops the datapath, and only then are the sockets (some
   * read by the datapath) closed. */
  g_message ("stopping: deleting SAs");
  for (guint i = 0; i < d->cfg->peers->len; i++)
    modike_ike_terminate (d->ike, ((ModikePeerConfig *) d->cfg->peers->pdata[i])->name);
  g_main_loop_quit (d->loop);
  return G_SOURCE_REMOVE;
}

int
main (int argc, char **argv)
{
  Daemon d = { 0 };
  gboolean check = FALSE, foreground = FALSE;
  g_autoptr (GError) error = NULL;
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- the modike IKE daemon");
  GOptionEntry entries[] = {
    { "config", 'c', 0, G_OPTION_ARG_FILENAME, &d.config_path, "Configuration file", "FILE" },
    { "check", 0, 0, G_OPTION_ARG_NONE, &check, "Validate the config, load the plugins, exit", NULL },
    { "foreground", 'f', 0, G_OPTION_ARG_NONE, &foreground, "Stay in the foreground (always, for now)", NULL },
    { "plugin-dir", 0, 0, G_OPTION_ARG_FILENAME, &d.plugin_dir, "Directory of plugin modules", "DIR" },
    { NULL }
  };

  setlocale (LC_ALL, "");
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    {
      g_printerr ("modiked: %s\n", error->message);
      return 2;
    }
  if (!d.config_path)
    {
      g_printerr ("modiked: no configuration file (-c FILE)\n");
      return 2;
    }
  d.loop = g_main_loop_new (NULL, FALSE);
  /* Before start: it can take a while (adapters, datapath threads) and a
   * signal in that window must not kill the daemon. The handlers run only
   * once the loop does. */
  g_unix_signal_add (SIGHUP, on_sighup, &d);
  g_unix_signal_add (SIGUSR1, on_sigusr1, &d);
  g_unix_signal_add (SIGTERM, on_sigterm, &d);
  g_unix_signal_add (SIGINT, on_sigterm, &d);
  if (!start (&d, check, &error))
    {
      g_printerr ("modiked: %s\n", error->message);
      d.exit_code = 1;
      goto out;
    }
  if (check)
    goto out;
  g_main_loop_run (d.loop);

out:
  /* Order matters: adapters and datapath (in modike_ike_free) before the
   * sockets the datapath may read, plugins last. */
  g_clear_pointer (&d.ike, modike_ike_free);
  g_clear_pointer (&d.socks, daemon_sockets_free);
  if (d.loader)
    modike_loader_unload_all (d.loader);
  g_clear_pointer (&d.loader, modike_loader_free);
  g_clear_pointer (&d.reg, modike_registry_free);
  g_clear_pointer (&d.cfg, modike_config_free);
  g_main_loop_unref (d.loop);
  g_free (d.config_path);
  g_free (d.plugin_dir);
  return d.exit_code;
}
