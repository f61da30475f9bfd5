/* systemd-resolved's per-link DNS over D-Bus (org.freedesktop.resolve1.Manager):
 * SetLinkDNS, SetLinkDomains, RevertLink. Link settings vanish with the
 * interface, so a modiked that dies leaves nothing behind here: its TUN
 * interfaces go with it. */
#include "dns.h"

#define RESOLVE1_NAME "org.freedesktop.resolve1"
#define RESOLVE1_PATH "/org/freedesktop/resolve1"
#define RESOLVE1_MANAGER "org.freedesktop.resolve1.Manager"
/* The calls block the main loop: a resolved that hangs must not hold IKE
 * up for D-Bus's default 25 s. */
#define RESOLVE1_TIMEOUT_MS 5000

gboolean
tun_resolved_running (GDBusConnection *bus)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) ret = NULL;
  gboolean has = FALSE;

  ret = g_dbus_connection_call_sync (bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                     "NameHasOwner", g_variant_new ("(s)", RESOLVE1_NAME), G_VARIANT_TYPE ("(b)"),
                                     G_DBUS_CALL_FLAGS_NONE, RESOLVE1_TIMEOUT_MS, NULL, &error);
  if (ret == NULL)
    {
      g_debug ("asking the bus for " RESOLVE1_NAME ": %s", error->message);
      return FALSE;
    }
  g_variant_get (ret, "(b)", &has);
  return has;
}

static gboolean
call (GDBusConnection *bus, const char *method, guint32 ifindex, GVariant *params, GError **error)
{
  g_autoptr (GVariant) ret = NULL;
  GError *local = NULL;

  ret = g_dbus_connection_call_sync (bus, RESOLVE1_NAME, RESOLVE1_PATH, RESOLVE1_MANAGER, method, params,
                                     G_VARIANT_TYPE_UNIT, G_DBUS_CALL_FLAGS_NO_AUTO_START, RESOLVE1_TIMEOUT_MS, NULL,
                                     &local);
  if (ret == NULL)
    {
      g_dbus_error_strip_remote_error (local);
      g_propagate_prefixed_error (error, local, "systemd-resolved %s on link %u: ", method, ifindex);
      return FALSE;
    }
  return TRUE;
}

gboolean
tun_resolved_set (GDBusConnection *bus, guint32 ifindex, const ModikeAddr *servers, guint n_servers,
                  const char *const *domains, GError **error)
{
  GVariantBuilder dns, doms;

  g_variant_builder_init (&dns, G_VARIANT_TYPE ("a(iay)"));
  for (guint i = 0; i < n_servers; i++)
    g_variant_builder_add (&dns, "(i@ay)", (gint32) servers[i].family,
                           g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, servers[i].addr,
                                                      modike_addr_len (&servers[i]), 1));
  g_variant_builder_init (&doms, G_VARIANT_TYPE ("a(sb)"));
  /* Search domains, not routing-only ones: bare names get them appended,
   * and queries under them go to this link. */
  for (guint i = 0; domains[i] != NULL; i++)
    g_variant_builder_add (&doms, "(sb)", domains[i], FALSE);
  if (!call (bus, "SetLinkDNS", ifindex, g_variant_new ("(ia(iay))", (gint32) ifindex, &dns), error))
    {
      g_variant_builder_clear (&doms);
      return FALSE;
    }
  return call (bus, "SetLinkDomains", ifindex, g_variant_new ("(ia(sb))", (gint32) ifindex, &doms), error);
}

gboolean
tun_resolved_revert (GDBusConnection *bus, guint32 ifindex, GError **error)
{
  return call (bus, "RevertLink", ifindex, g_variant_new ("(i)", (gint32) ifindex), error);
}
