/* DNS for the tun adapters: systemd-resolved when it is on the bus (per
 * link, nothing to undo after a crash), else resolv.conf (the original
 * kept in a state file, restored at the last clear or at the next start
 * after a crash). The back end is chosen at each set, and an adapter's
 * clear goes to the one its set used. Domains come from the peer: only
 * plain domain names reach resolv.conf or resolved. */
#include "dns.h"

#include <arpa/inet.h>
#include <string.h>

struct _TunDns {
  char *bus_address;        /* NULL: the system bus */
  GDBusConnection *bus;
  char *resolv_conf;        /* configured paths */
  char *state_dir;
  TunResolvConf *rc;        /* its paths: the configured ones once no adapter's DNS is in it */
  gboolean configured;
};

TunDns *
tun_dns_new (void)
{
  TunDns *d = g_new0 (TunDns, 1);

  d->resolv_conf = g_strdup (TUN_DNS_DEFAULT_RESOLV_CONF);
  d->state_dir = g_strdup (TUN_DNS_DEFAULT_STATE_DIR);
  return d;
}

void
tun_dns_free (TunDns *d)
{
  if (d == NULL)
    return;
  g_clear_object (&d->bus);
  g_clear_pointer (&d->rc, tun_resolvconf_free);
  g_free (d->bus_address);
  g_free (d->resolv_conf);
  g_free (d->state_dir);
  g_free (d);
}

void
tun_dns_set_bus_address (TunDns *d, const char *address)
{
  g_free (d->bus_address);
  d->bus_address = g_strdup (address);
  g_clear_object (&d->bus);
}

static TunResolvConf *
get_rc (TunDns *d)
{
  if (d->rc != NULL && !tun_resolvconf_active (d->rc)
      && (strcmp (tun_resolvconf_get_path (d->rc), d->resolv_conf) != 0
          || strcmp (tun_resolvconf_get_state_dir (d->rc), d->state_dir) != 0))
    g_clear_pointer (&d->rc, tun_resolvconf_free);
  if (d->rc == NULL)
    d->rc = tun_resolvconf_new (d->resolv_conf, d->state_dir);
  return d->rc;
}

void
tun_dns_configure (TunDns *d, const char *resolv_conf, const char *state_dir)
{
  g_free (d->resolv_conf);
  d->resolv_conf = g_strdup (resolv_conf != NULL ? resolv_conf : TUN_DNS_DEFAULT_RESOLV_CONF);
  g_free (d->state_dir);
  d->state_dir = g_strdup (state_dir != NULL ? state_dir : TUN_DNS_DEFAULT_STATE_DIR);
  if (d->rc != NULL && tun_resolvconf_active (d->rc)
      && (strcmp (tun_resolvconf_get_path (d->rc), d->resolv_conf) != 0
          || strcmp (tun_resolvconf_get_state_dir (d->rc), d->state_dir) != 0))
    g_message ("the new resolv-conf and state-dir apply once no adapter's DNS is in %s",
               tun_resolvconf_get_path (d->rc));
  if (!d->configured)
    {
      d->configured = TRUE;
      tun_resolvconf_recover (get_rc (d));
    }
}

/* The bus resolved would be on; NULL (resolv.conf then) when there is none. */
static GDBusConnection *
get_bus (TunDns *d)
{
  g_autoptr (GError) error = NULL;

  if (d->bus != NULL && !g_dbus_connection_is_closed (d->bus))
    return d->bus;
  g_clear_object (&d->bus);
  if (d->bus_address != NULL)
    d->bus = g_dbus_connection_new_for_address_sync (d->bus_address,
                                                     G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT
                                                       | G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
                                                     NULL, NULL, &error);
  else
    d->bus = g_bus_get_sync (G_BUS_TYPE_SYSTEM, NULL, &error);
  if (d->bus == NULL)
    {
      g_debug ("no D-Bus system bus (%s): DNS goes to resolv.conf", error->message);
      return NULL;
    }
  /* The shared system bus connection would end the process on close. */
  g_dbus_connection_set_exit_on_close (d->bus, FALSE);
  return d->bus;
}

static gboolean
valid_domain (const char *s)
{
  gsize len = strlen (s);

  if (len == 0 || len > 253)
    return FALSE;
  for (const char *c = s; *c != '\0'; c++)
    if (!g_ascii_isalnum (*c) && *c != '-' && *c != '_' && *c != '.')
      return FALSE;
  return TRUE;
}

/* The peer's domains that are domain names (a space or newline would add
 * words or lines to resolv.conf); NULL-terminated, borrowed. */
static GPtrArray *
valid_domains (const char *ifname, const char *const *domains)
{
  GPtrArray *out = g_ptr_array_new_null_terminated (0, NULL, TRUE);

  for (guint i = 0; domains != NULL && domains[i] != NULL; i++)
    {
      if (valid_domain (domains[i]))
        g_ptr_array_add (out, (gpointer) domains[i]);
      else
        {
          g_autofree char *shown = g_strescape (domains[i], NULL);

          g_warning ("%s: DNS domain \"%.80s\" ignored: not a domain name", ifname, shown);
        }
    }
  return out;
}

/* A NULL-terminated array's strings; an empty one may have no pdata. */
static const char *const *
strv_of (GPtrArray *a)
{
  static const char *const none[] = { NULL };

  return a->pdata != NULL ? (const char *const *) a->pdata : none;
}

gboolean
tun_dns_set (TunDns *d, TunDnsBackend *backend, const char *ifname, guint32 ifindex, const ModikeAddr *servers,
             guint n_servers, const char *const *domains, GError **error)
{
  g_autoptr (GPtrArray) doms = valid_domains (ifname, domains);
  GDBusConnection *bus = get_bus (d);
  TunDnsBackend want = bus != NULL && tun_resolved_running (bus) ? TUN_DNS_RESOLVED : TUN_DNS_RESOLV_CONF;
  TunDnsBackend old = *backend;

  if (want == TUN_DNS_RESOLVED)
    {
      if (!tun_resolved_set (bus, ifindex, servers, n_servers, strv_of (doms), error))
        {
          /* No half setting (servers without domains) stays behind; an
           * earlier set on the link goes with it. */
          tun_resolved_revert (bus, ifindex, NULL);
          if (old == TUN_DNS_RESOLVED)
            *backend = TUN_DNS_NONE;
          return FALSE;
        }
    }
  else
    {
      g_autoptr (GPtrArray) text = g_ptr_array_new_null_terminated (n_servers, g_free, TRUE);

      for (guint i = 0; i < n_servers; i++)
        {
          char buf[INET6_ADDRSTRLEN];

          if ((servers[i].family == AF_INET || servers[i].family == AF_INET6)
              && inet_ntop (servers[i].family, servers[i].addr, buf, sizeof buf) != NULL)
            g_ptr_array_add (text, g_strdup (buf));
        }
      if (!tun_resolvconf_set (get_rc (d), ifname, strv_of (text), strv_of (doms), error))
        return FALSE;
    }
  if (old != TUN_DNS_NONE && old != want)
    tun_dns_clear (d, &old, ifname, ifindex);
  *backend = want;
  g_info ("%s: DNS through %s", ifname,
          want == TUN_DNS_RESOLVED ? "systemd-resolved" : tun_resolvconf_get_path (d->rc));
  return TRUE;
}

void
tun_dns_clear (TunDns *d, TunDnsBackend *backend, const char *ifname, guint32 ifindex)
{
  g_autoptr (GError) error = NULL;
  GDBusConnection *bus;

  switch (*backend)
    {
    case TUN_DNS_RESOLVED:
      bus = get_bus (d);
      /* Failing that, the settings go with the interface. */
      if (bus == NULL || !tun_resolved_revert (bus, ifindex, &error))
        g_message ("%s: DNS not reverted in systemd-resolved (%s); it goes with the interface", ifname,
                   error != NULL ? error->message : "no bus");
      break;
    case TUN_DNS_RESOLV_CONF:
      if (d->rc != NULL)
        tun_resolvconf_clear (d->rc, ifname);
      break;
    case TUN_DNS_NONE:
      break;
    }
  *backend = TUN_DNS_NONE;
}

/* ---- the <tun> config section ---- */

static const char tun_rng[] =
  "<element name=\"tun\" xmlns=\"http://relaxng.org/ns/structure/1.0\">"
  "  <optional><attribute name=\"resolv-conf\"/></optional>"
  "  <optional><attribute name=\"state-dir\"/></optional>"
  "</element>";

static gboolean
path_prop (xmlNode *n, const char *name, char **out, GError **error)
{
  xmlChar *v = n != NULL ? xmlGetProp (n, BAD_CAST name) : NULL;

  *out = v != NULL ? g_strdup ((const char *) v) : NULL;
  xmlFree (v);
  if (*out != NULL && !g_path_is_absolute (*out))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "line %u: <tun %s=\"%s\">: not an absolute path",
                   n->line, name, *out);
      g_clear_pointer (out, g_free);
      return FALSE;
    }
  return TRUE;
}

static gboolean
tun_apply (ModikePlugin *plugin, xmlNode *section, gpointer user, GError **error)
{
  g_autofree char *resolv_conf = NULL;
  g_autofree char *state_dir = NULL;

  if (!path_prop (section, "resolv-conf", &resolv_conf, error) || !path_prop (section, "state-dir", &state_dir, error))
    return FALSE;
  /* A check next to a running modiked must not take its state for a
   * crashed one's. */
  if (!modike_plugin_is_check_only (plugin))
    tun_dns_configure (user, resolv_conf, state_dir);
  return TRUE;
}

gboolean
tun_dns_register_config (TunDns *d, ModikePlugin *plugin, GError **error)
{
  return modike_register_config_section (plugin, "tun", tun_rng, tun_apply, d, error);
}
