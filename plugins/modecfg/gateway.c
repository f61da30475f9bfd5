/* The gateway's side: a lease per address family from the peer entry's
 * pools for modike_ike_sa_get_user (the XAuth user, else the phase 1 ID),
 * the answer with the configured DNS, split networks, domains and banner,
 * and the address given to the policy instances. Leases go back when the
 * client's IKE SA goes without a successor. A pool with no address left
 * fails that client's SA (as strongSwan does); other clients are not
 * touched. */
#include "modecfg.h"

#include <string.h>

static ModecfgPool *
pool_by_name (McSa *st, const char *name)
{
  return g_hash_table_lookup (st->mc->pools, name);
}

static const McLease *
lease_of_family (McSa *st, int family)
{
  for (guint i = 0; i < st->leases->len; i++)
    {
      const McLease *l = &g_array_index (st->leases, McLease, i);

      if (l->addr.family == family)
        return l;
    }
  return NULL;
}

/* The lease key of a user: the name itself, or for one longer than a key
 * may be (a long certificate DN) its SHA-256, so that two names that
 * differ only past MODECFG_IDENTITY_MAX bytes stay two users. */
static char *
lease_key (const char *user)
{
  g_autofree char *digest = NULL;

  if (strlen (user) <= MODECFG_IDENTITY_MAX)
    return g_strdup (user);
  digest = g_compute_checksum_for_string (G_CHECKSUM_SHA256, user, -1);
  return g_strconcat ("sha256:", digest, NULL);
}

/* Leases for the families wanted (ours already count), then the policy
 * instances for them. */
static gboolean
lease (McSa *st, const ModecfgGateway *g, gboolean want4, gboolean want6, GError **error)
{
  ModikeIkeSa *sa = st->sa;
  const char *user = modike_ike_sa_get_user (sa);

  if (user == NULL || *user == '\0')
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "peer %s: no identity to lease an address for",
                   mc_peer (sa));
      return FALSE;
    }
  if (st->user == NULL)
    st->user = lease_key (user);
  for (guint i = 0; i < g->pools->len; i++)
    {
      ModecfgPool *pool = g->pools->pdata[i];
      int family = modecfg_pool_get_family (pool);
      McLease l = { { 0 } };
      char buf[MODIKE_ADDR_STRLEN];

      if ((family == AF_INET ? !want4 : !want6) || lease_of_family (st, family) != NULL)
        continue;
      if (!modecfg_pool_acquire (pool, st->user, &l.addr, error))
        {
          g_prefix_error (error, "peer %s: user '%s': ", mc_peer (sa), st->user);
          return FALSE;
        }
      g_strlcpy (l.pool, modecfg_pool_get_name (pool), sizeof l.pool);
      g_array_append_val (st->leases, l);
      g_message ("peer %s: user '%s' gets %s from pool %s", mc_peer (sa), st->user,
                 modike_addr_format (&l.addr, buf, sizeof buf), l.pool);
    }
  for (guint i = 0; i < st->leases->len; i++)
    {
      const McLease *l = &g_array_index (st->leases, McLease, i);
      ModikePrefix p = { .net = l->addr, .plen = l->addr.family == AF_INET ? 32 : 128 };

      if (!modike_ike_sa_set_peer_address (sa, &p, error))
        return FALSE;
    }
  return TRUE;
}

/* The answer's attributes: the leased addresses and what the entry
 * configures. `asked` NULL (a push) sends everything; else the address,
 * netmask and DNS always and the rest when the client asked for it. */
static void
build (McSa *st, const ModecfgGateway *g, const ModecfgAttrs *asked, ModecfgAttrs *out)
{
  const McLease *l4 = lease_of_family (st, AF_INET);
  const McLease *l6 = lease_of_family (st, AF_INET6);

#define WANTS(t) (asked == NULL || modecfg_attrs_asked (asked, (t)))
  if (l4 != NULL)
    {
      out->has_addr4 = TRUE;
      out->addr4 = l4->addr;
      out->has_mask4 = TRUE;
      modike_addr_parse ("255.255.255.255", 0, &out->mask4, NULL);
    }
  if (l6 != NULL)
    {
      out->has_addr6 = TRUE;
      out->addr6.net = l6->addr;
      out->addr6.plen = 128;
    }
  g_array_append_vals (out->dns, g->dns->data, g->dns->len);
  if (WANTS (MODECFG_IP4_NBNS) || WANTS (MODECFG_IP6_NBNS))
    g_array_append_vals (out->nbns, g->nbns->data, g->nbns->len);
  if (WANTS (UNITY_SPLIT_INCLUDE))
    g_array_append_vals (out->split_include, g->split_include->data, g->split_include->len);
  if (asked != NULL
      && (modecfg_attrs_asked (asked, MODECFG_IP4_SUBNET) || modecfg_attrs_asked (asked, MODECFG_IP6_SUBNET)))
    g_array_append_vals (out->subnets, g->split_include->data, g->split_include->len);
  if (WANTS (UNITY_LOCAL_LAN))
    g_array_append_vals (out->split_exclude, g->split_exclude->data, g->split_exclude->len);
  if (WANTS (UNITY_DEF_DOMAIN))
    out->domain = g_strdup (g->domain);
  if (WANTS (UNITY_SPLITDNS_NAME))
    for (guint i = 0; i < g->split_dns->len; i++)
      g_ptr_array_add (out->split_dns, g_strdup (g->split_dns->pdata[i]));
  if (WANTS (UNITY_BANNER))
    out->banner = g_strdup (g->banner);
  if (WANTS (UNITY_SAVE_PASSWD) && g->has_save_password)
    {
      out->has_save_passwd = TRUE;
      out->save_passwd = g->save_password;
    }
  if (WANTS (UNITY_PFS) && g->has_pfs)
    {
      out->has_pfs = TRUE;
      out->pfs = g->pfs;
    }
#undef WANTS
}

static const ModecfgGateway *
entry (McSa *st, GError **error)
{
  const ModecfgGateway *g = modecfg_find_gateway (st->mc, modike_ike_sa_get_peer_name (st->sa));

  if (g == NULL)
    g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED,
                 "peer %s: its <modecfg><gateway> entry is gone (reload)", mc_peer (st->sa));
  return g;
}

void
mc_gateway_start (McSa *st, const ModecfgGateway *g)
{
  st->push = g->push;
  st->timeout_s = g->timeout_s;
  if (st->push)
    mc_step_later (st, MC_STEP_SET);
}

gboolean
mc_gateway_push_attrs (McSa *st, GArray *attrs, GError **error)
{
  const ModecfgGateway *g = entry (st, error);
  ModecfgAttrs out;

  if (g == NULL || !lease (st, g, TRUE, TRUE, error))
    return FALSE;
  modecfg_attrs_init (&out);
  build (st, g, NULL, &out);
  modecfg_attrs_encode (&out, attrs);
  modecfg_attrs_clear (&out);
  g_message ("peer %s: pushing mode config to user '%s'", mc_peer (st->sa), st->user);
  return TRUE;
}

void
mc_gateway_acked (McSa *st)
{
  st->done = TRUE;
  mc_deadline_cancel (st);
  g_message ("peer %s: mode config acknowledged", mc_peer (st->sa));
}

ModikeVerdict
mc_gateway_request (ModikeExchange *x, McSa *st, const ModikeAttrPayload *ap, GError **error)
{
  const ModecfgGateway *g;
  GArray *attrs = modike_attr_array_new ();
  ModecfgAttrs out;
  GError *why = NULL;
  ModikeVerdict v;

  if (ap->type != MODIKE_CFG_REQUEST)
    {
      g_array_unref (attrs);
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "client sent ATTR type %u; want REQUEST",
                   ap->type);
      mc_fail_later (st, g_error_new (MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "peer %s: mode config: %s",
                                      mc_peer (st->sa), (*error)->message));
      return MODIKE_V_FAIL;
    }
  if (st->cur.app_version != NULL)
    g_message ("peer %s: client is %s", mc_peer (st->sa), g_strcanon (st->cur.app_version,
                                                                      "abcdefghijklmnopqrstuvwxyz"
                                                                      "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                                      "0123456789 .,:;()-_/+",
                                                                      '?'));
  modecfg_attrs_init (&out);
  if ((g = entry (st, &why)) != NULL
      && lease (st, g, modecfg_attrs_asked (&st->cur, MODECFG_IP4_ADDRESS),
                modecfg_attrs_asked (&st->cur, MODECFG_IP6_ADDRESS), &why))
    build (st, g, &st->cur, &out);
  /* A refusal is an empty REPLY, so that the client learns at once; then
   * this client's SA goes (pool exhausted: the clients already served
   * keep theirs). */
  modecfg_attrs_encode (&out, attrs);
  modecfg_attrs_clear (&out);
  v = modike_transaction_send (x, MODIKE_CFG_REPLY, ap->identifier, attrs, error) ? MODIKE_V_OK : MODIKE_V_FAIL;
  if (why != NULL)
    mc_fail_later (st, why);
  else
    {
      st->done = TRUE;
      g_message ("peer %s: mode config sent to user '%s'", mc_peer (st->sa), st->user);
    }
  return v;
}

void
mc_gateway_release (McSa *st)
{
  for (guint i = 0; st->leases != NULL && i < st->leases->len; i++)
    {
      const McLease *l = &g_array_index (st->leases, McLease, i);
      ModecfgPool *pool = pool_by_name (st, l->pool);
      g_autoptr (GError) error = NULL;
      char buf[MODIKE_ADDR_STRLEN];

      if (pool == NULL)
        {
          gboolean found = FALSE;
          ModecfgLeaseStore *store = st->mc->store;

          /* Its pool went with a reload: the lease still goes offline in
           * the store (online, it would stay taken should the pool come
           * back). */
          if (store != NULL && !store->release (store->self, l->pool, st->user, &l->addr, &found, &error))
            g_message ("pool %s (no longer configured): %s", l->pool, error->message);
          continue;
        }
      if (!modecfg_pool_release (pool, st->user, &l->addr, &error))
        g_message ("pool %s: %s", l->pool, error->message);
      else
        g_message ("pool %s: %s back from user '%s'", l->pool, modike_addr_format (&l->addr, buf, sizeof buf),
                   st->user);
    }
  if (st->leases != NULL)
    g_array_set_size (st->leases, 0);
}

/* Another live SA of the same client (peer entry and user) that has no
 * lease of this family yet: a phase 1 rekey's successor, which keeps the
 * address without asking again. */
static McSa *
successor (McSa *st, int family)
{
  GPtrArray *same = st->client_key != NULL ? g_hash_table_lookup (st->mc->gateway_sas, st->client_key) : NULL;

  for (guint i = 0; same != NULL && i < same->len; i++)
    {
      McSa *o = g_ptr_array_index (same, i);
      const char *name = o->user == NULL ? modike_ike_sa_get_user (o->sa) : NULL;
      g_autofree char *user = o->user != NULL ? g_strdup (o->user) : name != NULL ? lease_key (name) : NULL;

      if (o != st && modike_ike_sa_is_established (o->sa) && g_strcmp0 (user, st->user) == 0
          && g_strcmp0 (modike_ike_sa_get_peer_name (o->sa), modike_ike_sa_get_peer_name (st->sa)) == 0
          && lease_of_family (o, family) == NULL)
        return o;
    }
  return NULL;
}

void
mc_gateway_sa_down (McSa *st)
{
  for (guint i = st->leases->len; i-- > 0;)
    {
      McLease l = g_array_index (st->leases, McLease, i);
      McSa *next = successor (st, l.addr.family);

      if (next == NULL)
        continue;
      g_array_remove_index (st->leases, i);
      g_array_append_val (next->leases, l);
      if (next->user == NULL)
        next->user = g_strdup (st->user);
      g_message ("peer %s: user '%s' keeps its address on the new IKE SA", mc_peer (st->sa), st->user);
    }
  mc_gateway_release (st);
  mc_gateway_unindex (st);
}

/* A client's SAs share a key: peer entry and user (as leases key it), so
 * finding a successor costs the client's SAs, not every client's. */
void
mc_gateway_index (McSa *st)
{
  const char *user = modike_ike_sa_get_user (st->sa);
  g_autofree char *key = user != NULL ? lease_key (user) : g_strdup ("");
  GPtrArray *same;

  st->client_key = g_strdup_printf ("%s\n%s", mc_peer (st->sa), key);
  same = g_hash_table_lookup (st->mc->gateway_sas, st->client_key);
  if (same == NULL)
    {
      same = g_ptr_array_new ();
      g_hash_table_insert (st->mc->gateway_sas, g_strdup (st->client_key), same);
    }
  g_ptr_array_add (same, st);
}

void
mc_gateway_unindex (McSa *st)
{
  GPtrArray *same;

  if (st->client_key == NULL || st->mc->gateway_sas == NULL)
    return;
  same = g_hash_table_lookup (st->mc->gateway_sas, st->client_key);
  if (same != NULL && g_ptr_array_remove_fast (same, st) && same->len == 0)
    g_hash_table_remove (st->mc->gateway_sas, st->client_key);
  g_clear_pointer (&st->client_key, g_free);
}
