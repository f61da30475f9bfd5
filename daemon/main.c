/* modiked: loads exactly the plugins its config lists, listens on the IKE
 * ports and runs the engine on one GMainLoop. SIGHUP reloads the config,
 * SIGUSR1 writes the status, SIGTERM/SIGINT delete the SAs and exit. With
 * <control> in the config, local clients upload and connect sites over the
 * control socket (control.c). */
#include "control.h"
#include "daemon.h"
#include "engine-private.h"   /* modike_ike_get_stats: the engine's counters */
#include "loader.h"

#include <glib-unix.h>
#include <grp.h>
#include <locale.h>
#include <stdio.h>
#include <string.h>

/* A site a control client uploaded: a <peer> and its <policy> elements,
 * kept as text and parsed again into each config built from the daemon's
 * own file and the sites (compose). */
typedef struct {
  char *name;
  char *label;              /* for error messages: the file the client read */
  char *xml;                /* holds the pre-shared key: wiped on free */
  ControlClient *owner;     /* attached client; NULL when detached */
  gint64 started_us;        /* connect time, for the elapsed times */
  gboolean connected;
  char *fail_code;          /* the last failed stage: how the connection ends */
  char *fail_message;
} Site;


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
  char *base_text;           /* the config file as read last (holds keys) */
  GPtrArray *sites;          /* Site* */
  gboolean control_on;       /* <control> given */
  char *control_path;
  gid_t control_gid;
  DaemonControl *ctl;
  gboolean stopping;
} Daemon;

static void
site_free (gpointer p)
{
  Site *site = p;

  modike_memwipe (site->xml, strlen (site->xml));
  g_free (site->xml);
  g_free (site->name);
  g_free (site->label);
  g_free (site->fail_code);
  g_free (site->fail_message);
  g_free (site);
}

static Site *
find_site (Daemon *d, const char *name)
{
  for (guint i = 0; d->sites && i < d->sites->len; i++)
    if (strcmp (((Site *) d->sites->pdata[i])->name, name) == 0)
      return d->sites->pdata[i];
  return NULL;
}

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

/* ---- outcome log and control events ---- */

static const char *
ike_error_code (const GError *error)
{
  if (error && error->domain == MODIKE_IKE_ERROR)
    switch (error->code)
      {
      case MODIKE_IKE_ERROR_AUTH:
        return "auth";
      case MODIKE_IKE_ERROR_TIMEOUT:
        return "timeout";
      case MODIKE_IKE_ERROR_NO_PROPOSAL_CHOSEN:
        return "no-proposal";
      default:
        break;
      }
  return "failed";
}

/* An event about peer: to the client attached to its site (subscribed or
 * not) and to every subscriber, once each. */
static void
notify (Daemon *d, const char *peer, JsonObject *m)
{
  Site *site = peer ? find_site (d, peer) : NULL;

  if (d->ctl == NULL)
    return;
  if (site && site->owner)
    daemon_control_send (site->owner, m);
  daemon_control_broadcast (d->ctl, m, site ? site->owner : NULL);
}

/* A stage of a connection ("phase1", "xauth", "modecfg", "adapter",
 * "routes", "phase2") reached state "up" or "failed": to the client
 * attached to the site and to the event subscribers. Code that adds a
 * stage (XAuth, mode config) calls this too. */
static void
daemon_stage (Daemon *d, const char *peer, const char *stage, const char *state, const GError *error,
              JsonObject *extra)
{
  Site *site = peer ? find_site (d, peer) : NULL;
  g_autoptr (JsonObject) m = NULL;

  if (d->ctl == NULL)
    return;
  /* The first failure is the story: the teardown it causes fails the
   * stages that waited (phase 1 deleted, queued Quick Modes) as well. */
  if (site && site->fail_code && strcmp (state, "failed") == 0)
    return;
  /* Up again (a restart after dead peer detection, a retried XAuth): an
   * earlier failure no longer tells how the connection ends. */
  if (site && site->fail_code && strcmp (stage, "phase1") == 0 && strcmp (state, "up") == 0)
    {
      g_clear_pointer (&site->fail_code, g_free);
      g_clear_pointer (&site->fail_message, g_free);
    }
  m = control_msg_new ("event");
  json_object_set_string_member (m, "event", "stage");
  json_object_set_string_member (m, "site", peer ? peer : "");
  json_object_set_string_member (m, "stage", stage);
  json_object_set_string_member (m, "state", state);
  if (site && site->started_us)
    json_object_set_int_member (m, "elapsed_ms", (g_get_monotonic_time () - site->started_us) / 1000);
  if (error)
    {
      json_object_set_string_member (m, "code", ike_error_code (error));
      json_object_set_string_member (m, "message", error->message);
    }
  if (extra)
    {
      g_autoptr (GList) members = json_object_get_members (extra);

      for (GList *l = members; l; l = l->next)
        json_object_set_member (m, l->data, json_node_copy (json_object_get_member (extra, l->data)));
    }
  /* The connection's end reports the failure, not just "closed". */
  if (site && error && strcmp (state, "failed") == 0 && strcmp (stage, "phase2") != 0)
    {
      g_free (site->fail_code);
      g_free (site->fail_message);
      site->fail_code = g_strdup (ike_error_code (error));
      site->fail_message = g_strdup_printf ("%s failed: %s", stage, error->message);
    }
  notify (d, peer, m);
}

static void site_end (Daemon *d, Site *site, const char *code, const char *reason);

typedef struct {
  Daemon *d;
  char *peer;
  char *code;
  char *reason;
} SiteCheck;

static void
site_check_free (gpointer p)
{
  SiteCheck *sc = p;

  g_free (sc->peer);
  g_free (sc->code);
  g_free (sc->reason);
  g_free (sc);
}

/* After the engine is done with the SA (never inside its callbacks): a
 * site with no IKE SA left (none established, none starting: a rekey or a
 * restart keeps the connection) has ended. */
static gboolean
site_check (gpointer data)
{
  SiteCheck *sc = data;
  Site *site = find_site (sc->d, sc->peer);
  g_autofree char *status = NULL;
  g_autofree char *prefix = NULL;

  if (site == NULL || sc->d->stopping)
    return G_SOURCE_REMOVE;
  status = modike_ike_status (sc->d->ike);
  prefix = g_strdup_printf ("\nIKE %s ", sc->peer);
  if (g_str_has_prefix (status, prefix + 1) || strstr (status, prefix) != NULL)
    return G_SOURCE_REMOVE;
  if (site->fail_code)
    site_end (sc->d, site, site->fail_code, site->fail_message);
  else
    site_end (sc->d, site, sc->code, sc->reason);
  return G_SOURCE_REMOVE;
}

static void
schedule_site_check (Daemon *d, const char *peer, const char *code, const char *reason)
{
  SiteCheck *sc;

  if (peer == NULL || find_site (d, peer) == NULL)
    return;
  sc = g_new0 (SiteCheck, 1);
  sc->d = d;
  sc->peer = g_strdup (peer);
  sc->code = g_strdup (code);
  sc->reason = g_strdup (reason);
  g_idle_add_full (G_PRIORITY_DEFAULT, site_check, sc, site_check_free);
}

static void
obs_p1_up (ModikeIkeSa *sa, gpointer user)
{
  g_message ("peer %s: phase 1 established", modike_ike_sa_get_peer_name (sa));
  daemon_stage (user, modike_ike_sa_get_peer_name (sa), "phase1", "up", NULL, NULL);
}

static void
obs_p1_failed (const char *peer, const GError *error, gpointer user)
{
  g_warning ("peer %s: phase 1 failed: %s", peer ? peer : "?", error ? error->message : "unknown error");
  daemon_stage (user, peer, "phase1", "failed", error, NULL);
  schedule_site_check (user, peer, ike_error_code (error), error ? error->message : "phase 1 failed");
}

static void
obs_p2_up (ModikeIkeSa *sa, const ModikeSadEntry *in, const ModikeSadEntry *out, gpointer user)
{
  g_autoptr (JsonObject) extra = json_object_new ();
  char spi[16];

  g_message ("peer %s: phase 2 established, ESP SPIs in %08x out %08x",
             modike_ike_sa_get_peer_name (sa), in->spi, out->spi);
  g_snprintf (spi, sizeof spi, "%08x", in->spi);
  json_object_set_string_member (extra, "spi_in", spi);
  g_snprintf (spi, sizeof spi, "%08x", out->spi);
  json_object_set_string_member (extra, "spi_out", spi);
  daemon_stage (user, modike_ike_sa_get_peer_name (sa), "phase2", "up", NULL, extra);
}

static void
obs_p2_failed (const char *peer, const GError *error, gpointer user)
{
  g_warning ("peer %s: phase 2 failed: %s", peer ? peer : "?", error ? error->message : "unknown error");
  daemon_stage (user, peer, "phase2", "failed", error, NULL);
}

static void
obs_deleted (ModikeIkeSa *sa, gpointer user)
{
  Daemon *d = user;
  const char *peer = modike_ike_sa_get_peer_name (sa);

  g_message ("peer %s: ISAKMP SA deleted", peer);
  if (d->ctl)
    {
      g_autoptr (JsonObject) m = control_msg_new ("event");
      Site *site = find_site (d, peer);

      json_object_set_string_member (m, "event", "sa-deleted");
      json_object_set_string_member (m, "site", peer);
      if (site && site->started_us)
        json_object_set_int_member (m, "elapsed_ms", (g_get_monotonic_time () - site->started_us) / 1000);
      daemon_control_broadcast (d->ctl, m, NULL);
    }
  schedule_site_check (d, peer, "closed", "the ISAKMP SA was deleted");
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

/* ---- the control socket's config: <control socket="..." group="..."/> ---- */

static const char control_rng[] =
  "<element name=\"control\" xmlns=\"http://relaxng.org/ns/structure/1.0\">"
  "<optional><attribute name=\"socket\"/></optional>"
  "<optional><attribute name=\"group\"/></optional><empty/></element>";

static gboolean
apply_control (ModikePlugin *plugin, xmlNode *section, gpointer user, GError **error)
{
  Daemon *d = user;
  g_autofree xmlChar *path = section ? xmlGetProp (section, (const xmlChar *) "socket") : NULL;
  g_autofree xmlChar *group = section ? xmlGetProp (section, (const xmlChar *) "group") : NULL;
  const char *want = path ? (const char *) path : DAEMON_CONTROL_DEFAULT_PATH;
  gid_t gid = 0;

  if (group)
    {
      struct group gr, *g = NULL;
      char buf[4096];

      if (getgrnam_r ((const char *) group, &gr, buf, sizeof buf, &g) != 0 || g == NULL)
        {
          g_set_error (error, MODIKE_CONFIG_ERROR, MODIKE_CONFIG_ERROR_INVALID, "%s:%ld: <control>: no group \"%s\"",
                       d->config_path, xmlGetLineNo (section), group);
          return FALSE;
        }
      gid = g->gr_gid;
    }
  /* The socket is opened once at start; a reload cannot move it. */
  if (d->ctl && ((section != NULL) != d->control_on || g_strcmp0 (want, d->control_path) != 0 || gid != d->control_gid))
    {
      g_warning ("reload: <control> changed; the control socket stays as it is until a restart");
      return TRUE;
    }
  d->control_on = section != NULL;
  g_free (d->control_path);
  d->control_path = g_strdup (want);
  d->control_gid = gid;
  return TRUE;
}

/* ---- sites: the daemon's config plus what control clients uploaded ---- */

static gboolean
read_base (Daemon *d, char **text, GError **error)
{
  g_autoptr (GError) sub = NULL;
  gsize len;

  if (!g_file_get_contents (d->config_path, text, &len, &sub))
    {
      g_set_error (error, MODIKE_CONFIG_ERROR, MODIKE_CONFIG_ERROR_IO, "%s: %s", d->config_path, sub->message);
      return FALSE;
    }
  return TRUE;
}

static void
wipe_string (char *s)
{
  if (s)
    modike_memwipe (s, strlen (s));
  g_free (s);
}

/* Moves the peers and policies of from into to; FALSE when a name is
 * taken already (file and line of the site). */
static gboolean
merge_site (ModikeConfig *to, ModikeConfig *from, GError **error)
{
  for (guint i = 0; i < from->peers->len; i++)
    {
      const ModikePeerConfig *p = from->peers->pdata[i];

      if (modike_config_find_peer (to, p->name))
        {
          g_set_error (error, MODIKE_CONFIG_ERROR, MODIKE_CONFIG_ERROR_INVALID,
                       "%s:%u: <peer>: a peer named \"%s\" exists already", from->path, p->line, p->name);
          return FALSE;
        }
    }
  for (guint i = 0; i < from->policies->len; i++)
    {
      const ModikeSpdEntry *e = from->policies->pdata[i];

      for (guint j = 0; j < to->policies->len; j++)
        if (g_strcmp0 (((ModikeSpdEntry *) to->policies->pdata[j])->name, e->name) == 0)
          {
            g_set_error (error, MODIKE_CONFIG_ERROR, MODIKE_CONFIG_ERROR_INVALID,
                         "%s: <policy>: a policy named \"%s\" exists already", from->path, e->name);
            return FALSE;
          }
    }
  while (from->peers->len > 0)
    g_ptr_array_add (to->peers, g_ptr_array_steal_index (from->peers, 0));
  while (from->policies->len > 0)
    g_ptr_array_add (to->policies, g_ptr_array_steal_index (from->policies, 0));
  return TRUE;
}

/* Parses a site on its own: errors name its file and line. A site is one
 * <peer> and policies for it, nothing else. */
static ModikeConfig *
site_load (Daemon *d, const char *xml, const char *label, GError **error)
{
  g_autoptr (ModikeConfig) scfg = modike_config_load_string (xml, label, error);
  xmlNode *root;

  if (scfg == NULL)
    return NULL;
  root = xmlDocGetRootElement (scfg->doc);
  for (xmlNode *k = root->children; k; k = k->next)
    if (k->type == XML_ELEMENT_NODE && !xmlStrEqual (k->name, (const xmlChar *) "peer")
        && !xmlStrEqual (k->name, (const xmlChar *) "policy"))
      {
        g_set_error (error, MODIKE_CONFIG_ERROR, MODIKE_CONFIG_ERROR_INVALID,
                     "%s:%ld: <%s>: a site holds only one <peer> and its <policy> elements", label,
                     xmlGetLineNo (k), k->name);
        return NULL;
      }
  if (scfg->peers->len != 1)
    {
      g_set_error (error, MODIKE_CONFIG_ERROR, MODIKE_CONFIG_ERROR_INVALID, "%s: a site needs exactly one <peer> (%u given)",
                   label, scfg->peers->len);
      return NULL;
    }
  if (!modike_registry_resolve_auth (d->reg, scfg, error))
    return NULL;
  return g_steal_pointer (&scfg);
}

/* The daemon's config (base_text) with every site but skip; extra (not yet
 * in d->sites) last. */
static ModikeConfig *
compose (Daemon *d, const char *base_text, const Site *skip, const Site *extra, GError **error)
{
  g_autoptr (ModikeConfig) cfg = modike_config_load_string (base_text, d->config_path, error);

  if (cfg == NULL)
    return NULL;
  for (guint i = 0; i <= d->sites->len; i++)
    {
      const Site *site = i < d->sites->len ? d->sites->pdata[i] : extra;
      g_autoptr (ModikeConfig) scfg = NULL;

      if (site == NULL || site == skip)
        continue;
      scfg = site_load (d, site->xml, site->label, error);
      if (scfg == NULL || !merge_site (cfg, scfg, error))
        return NULL;
    }
  return g_steal_pointer (&cfg);
}

/* Hands cfg to the plugins and the engine as SIGHUP does: peers whose
 * settings did not change keep their SAs. On failure the old config stays. */
static gboolean
apply (Daemon *d, ModikeConfig *cfg, GError **error)
{
  if (!apply_plugin_sections (d, cfg, error) || !modike_ike_set_config (d->ike, cfg, error))
    {
      g_autoptr (GError) back_error = NULL;

      /* Plugins saw the new sections: give them the old ones back. */
      if (!apply_plugin_sections (d, d->cfg, &back_error))
        g_warning ("restoring the old plugin sections: %s", back_error->message);
      return FALSE;
    }
  modike_config_free (d->cfg);
  d->cfg = cfg;
  {
    g_autoptr (GError) sub = NULL;

    if (!modike_ike_set_crypto_threads (d->ike, cfg->crypto_threads, &sub))
      g_warning ("crypto threads: %s", sub->message);
  }
  return TRUE;
}

/* The site is gone: its SAs deleted, its peer out of the config, its client
 * told (code, reason) and detached. */
static void
site_end (Daemon *d, Site *site, const char *code, const char *reason)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (ModikeConfig) cfg = NULL;

  g_message ("site %s: removed (%s)", site->name, reason);
  modike_ike_terminate (d->ike, site->name);
  cfg = compose (d, d->base_text, site, NULL, &error);
  if (cfg == NULL || !apply (d, cfg, &error))
    g_warning ("site %s: removing it from the configuration: %s", site->name, error->message);
  else
    cfg = NULL;  /* d->cfg now */
  if (d->ctl)
    {
      g_autoptr (JsonObject) m = control_msg_new ("event");

      json_object_set_string_member (m, "event", "detached");
      json_object_set_string_member (m, "site", site->name);
      json_object_set_string_member (m, "code", code);
      json_object_set_string_member (m, "message", reason);
      notify (d, site->name, m);
    }
  g_ptr_array_remove (d->sites, site);
}

static gboolean
ctl_upload (gpointer user, ControlClient *c, const char *xml, const char *label, char **name, GError **error)
{
  Daemon *d = user;
  g_autoptr (GError) sub = NULL;
  g_autoptr (ModikeConfig) scfg = site_load (d, xml, label, &sub);
  g_autoptr (ModikeConfig) cfg = NULL;
  Site *site;

  if (scfg == NULL)
    {
      g_set_error (error, DAEMON_CONTROL_ERROR, DAEMON_CONTROL_ERROR_CONFIG, "%s", sub->message);
      return FALSE;
    }
  site = g_new0 (Site, 1);
  site->name = g_strdup (((ModikePeerConfig *) scfg->peers->pdata[0])->name);
  site->label = g_strdup (label);
  site->xml = g_strdup (xml);
  if (find_site (d, site->name))
    {
      g_set_error (error, DAEMON_CONTROL_ERROR, DAEMON_CONTROL_ERROR_EXISTS, "site %s is uploaded already",
                   site->name);
      site_free (site);
      return FALSE;
    }
  cfg = compose (d, d->base_text, NULL, site, &sub);
  if (cfg == NULL || !apply (d, cfg, &sub))
    {
      g_set_error (error, DAEMON_CONTROL_ERROR, DAEMON_CONTROL_ERROR_CONFIG, "%s", sub->message);
      site_free (site);
      return FALSE;
    }
  g_steal_pointer (&cfg);
  /* The uploader owns the site until it connects it: if it goes away
   * first, the site goes too. */
  site->owner = c;
  g_ptr_array_add (d->sites, site);
  g_message ("site %s: uploaded (%s)", site->name, label);
  *name = g_strdup (site->name);
  return TRUE;
}

static gboolean
ctl_connect (gpointer user, ControlClient *c, const char *name, GError **error)
{
  Daemon *d = user;
  Site *site = find_site (d, name);
  g_autoptr (GError) sub = NULL;

  if (site == NULL)
    {
      g_set_error (error, DAEMON_CONTROL_ERROR, DAEMON_CONTROL_ERROR_NOT_FOUND, "no site %s (upload it first)", name);
      return FALSE;
    }
  if (site->connected)
    {
      g_set_error (error, DAEMON_CONTROL_ERROR, DAEMON_CONTROL_ERROR_EXISTS, "site %s is connected already", name);
      return FALSE;
    }
  if (site->owner && site->owner != c)
    {
      g_set_error (error, DAEMON_CONTROL_ERROR, DAEMON_CONTROL_ERROR_EXISTS, "site %s is connected by another client",
                   name);
      return FALSE;
    }
  site->owner = c;
  site->started_us = g_get_monotonic_time ();
  if (!modike_ike_initiate (d->ike, name, &sub))
    {
      site->owner = NULL;
      g_set_error (error, DAEMON_CONTROL_ERROR, DAEMON_CONTROL_ERROR_FAILED, "site %s: %s", name, sub->message);
      return FALSE;
    }
  site->connected = TRUE;
  g_message ("site %s: connecting", name);
  return TRUE;
}

static gboolean
ctl_disconnect (gpointer user, const char *name, GError **error)
{
  Daemon *d = user;
  Site *site = find_site (d, name);

  if (site == NULL)
    {
      g_set_error (error, DAEMON_CONTROL_ERROR, DAEMON_CONTROL_ERROR_NOT_FOUND, "no site %s", name);
      return FALSE;
    }
  site_end (d, site, "disconnected", "disconnected on request");
  return TRUE;
}

static JsonObject *
ctl_status (gpointer user)
{
  Daemon *d = user;
  g_autofree char *text = modike_ike_status (d->ike);
  JsonObject *res = daemon_status_json (text);
  JsonArray *sites = json_array_new ();

  for (guint i = 0; i < d->sites->len; i++)
    json_array_add_string_element (sites, ((Site *) d->sites->pdata[i])->name);
  json_object_set_array_member (res, "sites", sites);
  return res;
}

static JsonObject *
ctl_statistics (gpointer user)
{
  Daemon *d = user;
  JsonObject *res = json_object_new ();

  json_object_set_int_member (res, "ike_sas", modike_ike_count_sas (d->ike, FALSE));
  json_object_set_int_member (res, "ike_sas_established", modike_ike_count_sas (d->ike, TRUE));
  json_object_set_int_member (res, "peers", d->cfg->peers->len);
  json_object_set_int_member (res, "policies", d->cfg->policies->len);
  json_object_set_int_member (res, "sites", d->sites->len);
  json_object_set_int_member (res, "control_clients", daemon_control_count_clients (d->ctl));
  {
    const ModikeIkeStats *st = modike_ike_get_stats (d->ike);
    JsonObject *e = json_object_new ();

    json_object_set_int_member (e, "rx_packets", (gint64) st->rx_packets);
    json_object_set_int_member (e, "rx_garbage", (gint64) st->rx_garbage);
    json_object_set_int_member (e, "rx_unknown_sa", (gint64) st->rx_unknown_sa);
    json_object_set_int_member (e, "rx_dropped", (gint64) st->rx_dropped);
    json_object_set_int_member (e, "rx_replays", (gint64) st->rx_replays);
    json_object_set_int_member (e, "rx_duplicates", (gint64) st->rx_duplicates);
    json_object_set_int_member (e, "rx_digest_rejects", (gint64) st->rx_digest_rejects);
    json_object_set_int_member (e, "rx_no_row", (gint64) st->rx_no_row);
    json_object_set_int_member (e, "handler_calls", (gint64) st->handler_calls);
    json_object_set_int_member (e, "tx_packets", (gint64) st->tx_packets);
    json_object_set_int_member (e, "retransmits", (gint64) st->retransmits);
    json_object_set_int_member (e, "auth_failures", (gint64) st->auth_failures);
    json_object_set_int_member (e, "rx_half_open_limit", (gint64) st->rx_half_open_limit);
    json_object_set_int_member (e, "half_open_expired", (gint64) st->half_open_expired);
    json_object_set_int_member (e, "rx_no_peer", (gint64) st->rx_no_peer);
    json_object_set_int_member (e, "half_open", d->ike->half_open);
    json_object_set_object_member (res, "engine", e);
  }
  {
    g_autoptr (GArray) counters = modike_ike_plugin_counters (d->ike);
    JsonObject *plugins = json_object_new ();

    for (guint i = 0; i < counters->len; i++)
      {
        const ModikeCounter *c = &g_array_index (counters, ModikeCounter, i);

        if (!json_object_has_member (plugins, c->plugin))
          json_object_set_object_member (plugins, c->plugin, json_object_new ());
        json_object_set_int_member (json_object_get_object_member (plugins, c->plugin), c->name, (gint64) c->value);
      }
    json_object_set_object_member (res, "plugins", plugins);
  }
  return res;
}

/* What a client connected ends with it. */
static void
ctl_client_gone (gpointer user, ControlClient *c)
{
  Daemon *d = user;

  for (guint i = d->sites->len; i > 0; i--)
    {
      Site *site = d->sites->pdata[i - 1];

      if (site->owner != c)
        continue;
      site->owner = NULL;
      if (!d->stopping)
        site_end (d, site, "client-gone", "the attached client went away");
    }
}

/* ---- log lines for control clients: the tap may run on any thread, so
 * lines wait in a bounded queue for the main loop ---- */

typedef struct {
  GLogLevelFlags level;
  char *domain;
  char *message;
} LogLine;

static GMutex log_lock;
static GQueue log_queue = G_QUEUE_INIT;
static gboolean log_flush_pending;

static void
log_line_free (gpointer p)
{
  LogLine *l = p;

  g_free (l->domain);
  g_free (l->message);
  g_free (l);
}

static gboolean
log_flush (gpointer data)
{
  Daemon *d = data;
  GQueue lines = G_QUEUE_INIT;
  LogLine *l;

  g_mutex_lock (&log_lock);
  lines = log_queue;
  g_queue_init (&log_queue);
  log_flush_pending = FALSE;
  g_mutex_unlock (&log_lock);
  /* A line logged while these go out waits for the next round. */
  while ((l = g_queue_pop_head (&lines)) != NULL)
    {
      if (d->ctl)
        daemon_control_log (d->ctl, l->level, l->domain, l->message);
      log_line_free (l);
    }
  return G_SOURCE_REMOVE;
}

static void
log_tap (GLogLevelFlags level, const char *domain, const char *message, gpointer user)
{
  g_mutex_lock (&log_lock);
  if (log_queue.length < 256)
    {
      LogLine *l = g_new0 (LogLine, 1);

      l->level = level;
      l->domain = g_strdup (domain);
      l->message = g_strdup (message);
      g_queue_push_tail (&log_queue, l);
    }
  if (!log_flush_pending)
    {
      log_flush_pending = TRUE;
      g_idle_add (log_flush, user);
    }
  g_mutex_unlock (&log_lock);
}

static const DaemonControlOps control_ops = {
  ctl_upload, ctl_connect, ctl_disconnect, ctl_status, ctl_statistics, ctl_client_gone,
};

/* XAuth and the like ask the site's attached client for credentials; an
 * error at once when no client is attached. Returns the request id or 0. */
static guint
daemon_request_credentials (Daemon *d, const char *peer, const char *prompt, const DaemonCredentialField *fields,
                            guint n_fields, DaemonCredentialsFunc fn, gpointer user)
{
  Site *site = find_site (d, peer);

  if (site == NULL || site->owner == NULL)
    {
      g_autoptr (GError) error = g_error_new (DAEMON_CONTROL_ERROR, DAEMON_CONTROL_ERROR_CANCELLED,
                                              "peer %s: no client attached to ask for credentials", peer);
      fn (NULL, error, user);
      return 0;
    }
  return daemon_control_request_credentials (site->owner, peer, prompt, fields, n_fields, fn, user);
}

/* ---- host services for plugins (modike/host.h) ---- */

static void
host_request_credentials (gpointer host, const char *peer, const char *prompt, const ModikeCredentialField *fields,
                          guint n_fields, ModikeHostCredentialsDone done, gpointer token)
{
  daemon_request_credentials (host, peer, prompt, fields, n_fields, done, token);
}

static void
host_stage (gpointer host, const char *peer, const char *stage, gboolean up, const GError *error)
{
  daemon_stage (host, peer, stage, up ? "up" : "failed", error, NULL);
}

/* "adapter up ... modike0 10.9.0.17/32": the detail goes as the message. */
static void
host_stage_detail (gpointer host, const char *peer, const char *stage, const char *detail)
{
  g_autoptr (JsonObject) extra = json_object_new ();

  json_object_set_string_member (extra, "message", detail);
  daemon_stage (host, peer, stage, "up", NULL, extra);
}

static void
host_banner (gpointer host, const char *peer, const char *text)
{
  Daemon *d = host;
  g_autoptr (JsonObject) m = control_msg_new ("event");

  json_object_set_string_member (m, "event", "banner");
  json_object_set_string_member (m, "site", peer);
  json_object_set_string_member (m, "text", text);
  notify (d, peer, m);
}

static const ModikeHostOps host_ops = {
  sizeof (ModikeHostOps), host_request_credentials, host_stage, host_banner, host_stage_detail,
};

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

  if (!read_base (d, &d->base_text, error))
    return FALSE;
  d->cfg = modike_config_load_string (d->base_text, d->config_path, error);
  if (!d->cfg)
    return FALSE;
  if (d->cfg->log_level && !modike_log_set_level (d->cfg->log_level, error))
    return FALSE;
  d->reg = modike_registry_new ();
  if (!modike_ike_register_core (d->reg, error)
      || !modike_register_config_section (modike_registry_core_plugin (d->reg), "control", control_rng, apply_control,
                                          d, error))
    return FALSE;
  dir = d->plugin_dir ? d->plugin_dir : d->cfg->plugin_dir ? d->cfg->plugin_dir : MODIKE_PLUGIN_DIR;
  modike_registry_set_check_only (d->reg, check_only);
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
  modike_ike_set_host (d->ike, &host_ops, d);
  {
    g_autoptr (GArray) ports = modike_registry_ports (d->reg);
    d->socks = daemon_sockets_open (d->cfg->listen, ports, on_datagram, d, error);
  }
  /* set_config starts the datapath and creates the adapters. */
  if (!d->socks || !modike_ike_set_config (d->ike, d->cfg, error) ||
      !modike_ike_set_crypto_threads (d->ike, d->cfg->crypto_threads, error))
    return FALSE;
  if (d->cfg->crypto_threads > 0)
    g_message ("%u crypto worker thread(s)", d->cfg->crypto_threads);
  {
    guint taken = daemon_sockets_handoff (d->socks, offer_socket, d);

    if (taken > 0)
      g_message ("the datapath reads %u NAT-T socket(s)", taken);
  }
  if (d->control_on)
    {
      d->ctl = daemon_control_new (d->control_path, d->control_gid, &control_ops, d, error);
      if (d->ctl == NULL)
        return FALSE;
      modike_log_set_tap (log_tap, d);
      g_message ("control socket %s", d->control_path);
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
  g_autoptr (ModikeConfig) cfg = NULL;
  char *text = NULL;

  /* The uploaded sites ride along: they stay across reloads. */
  if (read_base (d, &text, &error))
    cfg = compose (d, text, NULL, NULL, &error);
  if (!cfg)
    {
      wipe_string (text);
      g_warning ("reload refused, old configuration kept: %s", error->message);
      return G_SOURCE_CONTINUE;
    }
  if (!same_strings (cfg->plugins, d->cfg->plugins) || !same_listen (cfg->listen, d->cfg->listen))
    {
      g_warning ("reload refused, old configuration kept: the plugin list or listen addresses "
                 "changed; restart modiked for that");
      wipe_string (text);
      return G_SOURCE_CONTINUE;
    }
  if (!apply (d, cfg, &error))
    {
      g_warning ("reload refused, old configuration kept: %s", error->message);
      wipe_string (text);
      return G_SOURCE_CONTINUE;
    }
  g_steal_pointer (&cfg);
  wipe_string (d->base_text);
  d->base_text = text;
  if (d->cfg->log_level && !modike_log_set_level (d->cfg->log_level, &error))
    g_warning ("reload: log level kept: %s", error->message);
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
  d->stopping = TRUE;
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
  d.sites = g_ptr_array_new_with_free_func (site_free);
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
  d.stopping = TRUE;
  modike_log_set_tap (NULL, NULL);
  g_clear_pointer (&d.ctl, daemon_control_free);
  g_queue_clear_full (&log_queue, log_line_free);
  g_clear_pointer (&d.ike, modike_ike_free);
  g_clear_pointer (&d.socks, daemon_sockets_free);
  if (d.loader)
    modike_loader_unload_all (d.loader);
  g_clear_pointer (&d.loader, modike_loader_free);
  g_clear_pointer (&d.reg, modike_registry_free);
  g_clear_pointer (&d.cfg, modike_config_free);
  g_main_loop_unref (d.loop);
  g_ptr_array_unref (d.sites);
  wipe_string (d.base_text);
  g_free (d.control_path);
  g_free (d.config_path);
  g_free (d.plugin_dir);
  return d.exit_code;
}
