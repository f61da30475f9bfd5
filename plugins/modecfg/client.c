/* The client's side: ask (pull) or wait to be told (push), then hand what
 * the gateway gave to the core as the SA's result, and only then let
 * phase 2 go, so that Quick Mode uses the assigned address.
 *
 * Peer options (<option name=".." value=".."/> in the peer entry):
 *   modecfg.mode     pull | push | no (absent: no)
 *   modecfg.timeout  seconds to wait for the REPLY or SET (default 30)
 *   modecfg.ipv6     yes: ask for an IPv6 address too */
#include "modecfg.h"

#include <string.h>

void
mc_client_report (McSa *st, const GError *error)
{
  if (!st->client || st->reported)
    return;
  st->reported = TRUE;
  modike_ike_sa_report_stage (st->sa, "modecfg", error == NULL, error);
}

void
mc_client_start (McSa *st)
{
  modike_ike_sa_hold_phase2 (st->sa, st->mc->plugin);
  mc_deadline_arm (st);
  if (st->push)
    g_message ("peer %s: waiting for the gateway's mode config", mc_peer (st->sa));
  else
    mc_step_later (st, MC_STEP_REQUEST);
}

void
mc_client_request_attrs (McSa *st, GArray *attrs)
{
  static const guint16 ask[] = {
    MODECFG_IP4_ADDRESS, MODECFG_IP4_NETMASK, MODECFG_IP4_DNS, MODECFG_IP4_NBNS, UNITY_BANNER, UNITY_DEF_DOMAIN,
    UNITY_SPLITDNS_NAME, UNITY_SPLIT_INCLUDE, UNITY_LOCAL_LAN, UNITY_SAVE_PASSWD, UNITY_PFS,
  };
  static const char version[] = "modike " PACKAGE_VERSION;

  for (gsize i = 0; i < G_N_ELEMENTS (ask); i++)
    modike_attr_add_tlv (attrs, ask[i], NULL, 0);
  if (g_strcmp0 (modike_ike_sa_get_option (st->sa, "modecfg.ipv6"), "yes") == 0)
    {
      modike_attr_add_tlv (attrs, MODECFG_IP6_ADDRESS, NULL, 0);
      modike_attr_add_tlv (attrs, MODECFG_IP6_DNS, NULL, 0);
    }
  modike_attr_add_tlv (attrs, MODECFG_APPLICATION_VERSION, (const guint8 *) version, sizeof version - 1);
  for (guint i = 0; st->mc->request_extra != NULL && i < st->mc->request_extra->len; i++)
    {
      const ModikeAttr *e = &g_array_index (st->mc->request_extra, ModikeAttr, i);
      gsize n = 0;
      const guint8 *d = e->data != NULL ? g_bytes_get_data (e->data, &n) : NULL;

      modike_attr_add_tlv (attrs, e->type, d, n);
    }
  g_message ("peer %s: asking for mode config", mc_peer (st->sa));
}

static void
add_route_once (ModikeSaResult *r, GArray *seen, const ModikePrefix *p)
{
  for (guint i = 0; i < seen->len; i++)
    {
      const ModikePrefix *q = &g_array_index (seen, ModikePrefix, i);

      if (q->plen == p->plen && modike_addr_equal_ip (&q->net, &p->net))
        return;
    }
  g_array_append_val (seen, *p);
  modike_sa_result_add_route (r, p);
}

/* The IPv4 address with the netmask's length (/32 without one; a mask
 * that is not contiguous counts as none). */
static ModikePrefix
addr4_prefix (const ModecfgAttrs *a)
{
  ModikePrefix p = { .net = a->addr4, .plen = 32 };

  if (a->has_mask4)
    {
      guint8 buf[8];
      g_autoptr (GBytes) b = NULL;
      ModikeAttr attr = { .type = MODECFG_IP4_NETMASK };
      ModikeAttrValue v;

      memcpy (buf, a->addr4.addr, 4);
      memcpy (buf + 4, a->mask4.addr, 4);
      b = g_bytes_new_static (buf, sizeof buf);
      attr.data = b;
      if (modike_attr_value_decode (&attr, MODIKE_ATTR_FMT_IP4_SUBNET, &v, NULL))
        p.plen = v.prefix.plen;
    }
  return p;
}

static char *
describe (const ModecfgAttrs *a)
{
  GString *s = g_string_new (NULL);
  char buf[MODIKE_ADDR_STRLEN];

  if (a->has_addr4)
    g_string_append_printf (s, " address %s", modike_addr_format (&a->addr4, buf, sizeof buf));
  if (a->has_addr6)
    g_string_append_printf (s, " address %s/%u", modike_addr_format (&a->addr6.net, buf, sizeof buf), a->addr6.plen);
  for (guint i = 0; i < a->dns->len; i++)
    g_string_append_printf (s, " dns %s", modike_addr_format (&g_array_index (a->dns, ModikeAddr, i), buf, sizeof buf));
  for (guint i = 0; i < a->split_include->len; i++)
    {
      const ModikePrefix *p = &g_array_index (a->split_include, ModikePrefix, i);

      g_string_append_printf (s, " include %s/%u", modike_addr_format (&p->net, buf, sizeof buf), p->plen);
    }
  for (guint i = 0; i < a->split_exclude->len; i++)
    {
      const ModikePrefix *p = &g_array_index (a->split_exclude, ModikePrefix, i);

      g_string_append_printf (s, " exclude %s/%u", modike_addr_format (&p->net, buf, sizeof buf), p->plen);
    }
  if (a->domain != NULL)
    g_string_append_printf (s, " domain %s", a->domain);
  if (a->split_include->len == 0 && a->subnets->len == 0)
    g_string_append (s, " (full tunnel)");
  return g_string_free (s, FALSE);
}

/* An address a host may be given: not unspecified, loopback, multicast
 * or (IPv4) reserved or broadcast. */
static gboolean
host_address (const ModikeAddr *a)
{
  static const guint8 zero[16];

  if (a->family == AF_INET)
    return memcmp (a->addr, zero, 4) != 0 && a->addr[0] != 127 && a->addr[0] < 224;
  return memcmp (a->addr, zero, 16) != 0 && a->addr[0] != 0xff
         && !(memcmp (a->addr, zero, 15) == 0 && a->addr[15] == 1);
}

/* What the gateway gave, as the SA's result. FALSE (and nothing applied)
 * without an address, with one no host may have, or when the core cannot
 * apply it. */
static gboolean
apply (McSa *st, const ModecfgAttrs *a, const char *what, GError **error)
{
  ModikeIkeSa *sa = st->sa;
  g_autoptr (ModikeSaResult) r = modike_sa_result_new ();
  g_autoptr (GArray) seen = g_array_new (FALSE, FALSE, sizeof (ModikePrefix));
  g_autofree char *text = NULL;

  if (!a->has_addr4 && !a->has_addr6)
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED,
                   "peer %s: the gateway's mode config %s carries no address", mc_peer (sa), what);
      return FALSE;
    }
  if ((a->has_addr4 && !host_address (&a->addr4)) || (a->has_addr6 && !host_address (&a->addr6.net)))
    {
      char buf[MODIKE_ADDR_STRLEN];

      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED,
                   "peer %s: the gateway's mode config %s gives %s, not an address for a host", mc_peer (sa), what,
                   modike_addr_format (a->has_addr4 && !host_address (&a->addr4) ? &a->addr4 : &a->addr6.net, buf,
                                       sizeof buf));
      return FALSE;
    }
  if (a->has_addr4)
    {
      ModikePrefix p = addr4_prefix (a);

      modike_sa_result_add_address (r, &p);
    }
  if (a->has_addr6)
    modike_sa_result_add_address (r, &a->addr6);
  for (guint i = 0; i < a->dns->len; i++)
    modike_sa_result_add_dns (r, &g_array_index (a->dns, ModikeAddr, i));
  if (a->domain != NULL)
    modike_sa_result_add_domain (r, a->domain);
  for (guint i = 0; i < a->split_dns->len; i++)
    if (g_strcmp0 (a->split_dns->pdata[i], a->domain) != 0)
      modike_sa_result_add_domain (r, a->split_dns->pdata[i]);
  for (guint i = 0; i < a->split_include->len; i++)
    add_route_once (r, seen, &g_array_index (a->split_include, ModikePrefix, i));
  for (guint i = 0; i < a->subnets->len; i++)
    {
      /* host bits as sent: the network they name */
      ModikePrefix p = g_array_index (a->subnets, ModikePrefix, i);

      modecfg_prefix_network (&p);
      add_route_once (r, seen, &p);
    }
  for (guint i = 0; i < a->split_exclude->len; i++)
    modike_sa_result_add_exclude (r, &g_array_index (a->split_exclude, ModikePrefix, i));
  if (!modike_ike_sa_set_result (sa, r, error))
    {
      g_prefix_error (error, "peer %s: mode config: ", mc_peer (sa));
      return FALSE;
    }
  text = describe (a);
  g_message ("peer %s: mode config:%s", mc_peer (sa), text);
  return TRUE;
}

static void
succeed (McSa *st, const ModecfgAttrs *a)
{
  st->done = TRUE;
  mc_deadline_cancel (st);
  mc_client_report (st, NULL);
  if (a->banner != NULL)
    modike_ike_sa_report_banner (st->sa, a->banner);
  modike_ike_sa_release_phase2 (st->sa, st->mc->plugin);
}

/* The gateway's REPLY to our REQUEST, or its SET (push). */
ModikeVerdict
mc_client_message (ModikeExchange *x, McSa *st, const ModikeAttrPayload *ap, GError **error)
{
  GError *why = NULL;
  GArray *ack;

  if (ap->type != MODIKE_CFG_REPLY && ap->type != MODIKE_CFG_SET)
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "gateway sent ATTR type %u; want REPLY or SET",
                   ap->type);
      mc_fail_later (st, g_error_new (MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "peer %s: mode config: %s",
                                      mc_peer (st->sa), (*error)->message));
      return MODIKE_V_FAIL;
    }
  if (st->done)
    {
      /* A later SET (the gateway changed something): applied again. */
      g_message ("peer %s: mode config %s after the first one", mc_peer (st->sa),
                 ap->type == MODIKE_CFG_SET ? "SET" : "REPLY");
    }
  if (!apply (st, &st->cur, ap->type == MODIKE_CFG_SET ? "SET" : "reply", &why))
    mc_fail_later (st, why);
  else if (!st->done)
    succeed (st, &st->cur);
  if (ap->type != MODIKE_CFG_SET)
    return MODIKE_V_OK;
  /* The ACK names the attributes taken (draft 3.3). */
  ack = modike_attr_array_new ();
  if (why == NULL)
    for (guint i = 0; i < st->cur.asked->len; i++)
      modike_attr_add_tlv (ack, g_array_index (st->cur.asked, guint16, i), NULL, 0);
  return modike_transaction_send (x, MODIKE_CFG_ACK, ap->identifier, ack, error) ? MODIKE_V_OK : MODIKE_V_FAIL;
}
