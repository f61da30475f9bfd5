/* ModikeIkeSa: one ISAKMP SA with its exchanges, keys and children. */
#include "engine-private.h"

#include <string.h>

typedef struct {
  gpointer data;
  GDestroyNotify destroy;
} EnginePluginData;

static void
plugin_data_free (gpointer p)
{
  EnginePluginData *d = p;

  if (d->destroy != NULL)
    d->destroy (d->data);
  g_free (d);
}

static void
exchange_unref_cb (gpointer p)
{
  engine_exchange_free (p);
}

ModikeIkeSa *
engine_sa_new (ModikeIke *ike, ModikeRole role, guint8 p1_exchange, const ModikeAddr *local,
               const ModikeAddr *remote, const ModikePeerConfig *peer)
{
  static guint32 serial;
  ModikeIkeSa *sa = g_new0 (ModikeIkeSa, 1);

  sa->ike = ike;
  sa->role = role;
  sa->p1_exchange = p1_exchange;
  sa->serial = ++serial;
  sa->local = *local;
  sa->remote = *remote;
  /* A zero cookie means "not yet known" on the wire; never pick one. */
  do
    modike_random_nonce (role == MODIKE_ROLE_INITIATOR ? sa->icookie : sa->rcookie, MODIKE_COOKIE_LEN);
  while (modike_memeq (role == MODIKE_ROLE_INITIATOR ? sa->icookie : sa->rcookie,
                       "\0\0\0\0\0\0\0\0", MODIKE_COOKIE_LEN));
  if (role == MODIKE_ROLE_RESPONDER)
    sa->rcookie_set = TRUE;
  sa->exchanges = g_hash_table_new_full (g_direct_hash, g_direct_equal, NULL, exchange_unref_cb);
  sa->plugin_data = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, plugin_data_free);
  sa->children = g_ptr_array_new ();
  sa->pending_spd = g_array_new (FALSE, FALSE, sizeof (guint32));
  sa->created_us = ike->env.now_us (ike->env.env);
  engine_sa_set_peer (sa, peer);
  return sa;
}

void
engine_sa_set_peer (ModikeIkeSa *sa, const ModikePeerConfig *peer)
{
  sa->peer = peer;
  if (peer != NULL && g_strcmp0 (sa->peer_name, peer->name) != 0)
    {
      g_free (sa->peer_name);
      sa->peer_name = g_strdup (peer->name);
    }
}

void
engine_sa_free (ModikeIkeSa *sa)
{
  ModikeIke *ike;

  if (sa == NULL)
    return;
  ike = sa->ike;
  engine_timer_cancel (ike, &sa->half_open_timer);
  engine_timer_cancel (ike, &sa->rekey_timer);
  engine_timer_cancel (ike, &sa->expire_timer);
  /* Children were removed or moved before; free what is left silently. */
  for (guint i = 0; i < sa->children->len; i++)
    engine_child_free (g_ptr_array_index (sa->children, i));
  g_ptr_array_unref (sa->children);
  g_hash_table_destroy (sa->exchanges);
  g_hash_table_destroy (sa->plugin_data);
  g_array_unref (sa->pending_spd);
  modike_p1_keys_clear (&sa->keys);
  g_clear_pointer (&sa->dh, modike_dh_free);
  g_clear_pointer (&sa->sai_b, g_bytes_unref);
  g_clear_pointer (&sa->ni, g_bytes_unref);
  g_clear_pointer (&sa->nr, g_bytes_unref);
  g_clear_pointer (&sa->gxi, g_bytes_unref);
  g_clear_pointer (&sa->gxr, g_bytes_unref);
  g_clear_pointer (&sa->idi_b, g_bytes_unref);
  g_clear_pointer (&sa->idr_b, g_bytes_unref);
  modike_memwipe (sa->p1_iv, sizeof sa->p1_iv);
  g_free (sa->peer_name);
  g_free (sa);
}

void
engine_sa_apply_float (ModikeIkeSa *sa)
{
  char buf[MODIKE_ADDR_STRLEN];

  if (sa->float_port == 0 || sa->floated)
    return;
  sa->floated = TRUE;
  sa->local.port = sa->float_port;
  sa->remote.port = sa->float_port;
  ELOG_INFO (sa, NULL, "floating to port %u (peer %s)", sa->float_port,
             modike_addr_format (&sa->remote, buf, sizeof buf));
}

/* ---- SDK accessors ---- */

const guint8 *
modike_ike_sa_get_icookie (const ModikeIkeSa *sa)
{
  return sa->icookie;
}

const guint8 *
modike_ike_sa_get_rcookie (const ModikeIkeSa *sa)
{
  return sa->rcookie;
}

ModikeRole
modike_ike_sa_get_role (const ModikeIkeSa *sa)
{
  return sa->role;
}

const ModikeAddr *
modike_ike_sa_get_local (const ModikeIkeSa *sa)
{
  return &sa->local;
}

const ModikeAddr *
modike_ike_sa_get_remote (const ModikeIkeSa *sa)
{
  return &sa->remote;
}

ModikeHashAlg
modike_ike_sa_get_hash (const ModikeIkeSa *sa)
{
  return (ModikeHashAlg) sa->choice.hash;
}

const char *
modike_ike_sa_get_peer_name (const ModikeIkeSa *sa)
{
  return sa->peer_name;
}

const char *
modike_ike_sa_get_option (const ModikeIkeSa *sa, const char *key)
{
  if (sa->peer == NULL)
    return NULL;
  return modike_peer_config_option (sa->peer, key);
}

gboolean
modike_ike_sa_is_established (const ModikeIkeSa *sa)
{
  return sa->state == SA_ESTABLISHED && !sa->dead;
}

void
modike_ike_sa_float (ModikeIkeSa *sa, guint16 port)
{
  /* Takes effect with the next message past MM4/AM2 (engine_transmit). */
  if (port != 0 && !sa->floated)
    sa->float_port = port;
}

void
modike_ike_sa_set_nat (ModikeIkeSa *sa, gboolean local_behind, gboolean remote_behind)
{
  sa->nat_local = local_behind;
  sa->nat_remote = remote_behind;
  ELOG_INFO (sa, NULL, "NAT detection: local %s NAT, remote %s NAT", local_behind ? "behind" : "not behind",
             remote_behind ? "behind" : "not behind");
}

gboolean
modike_ike_sa_nat_detected (const ModikeIkeSa *sa)
{
  return sa->nat_local || sa->nat_remote;
}

void
modike_ike_sa_set_plugin_data (ModikeIkeSa *sa, const char *plugin, gpointer data, GDestroyNotify destroy)
{
  EnginePluginData *d;

  g_return_if_fail (plugin != NULL);
  if (data == NULL && destroy == NULL)
    {
      g_hash_table_remove (sa->plugin_data, plugin);
      return;
    }
  d = g_new0 (EnginePluginData, 1);
  d->data = data;
  d->destroy = destroy;
  g_hash_table_replace (sa->plugin_data, g_strdup (plugin), d);
}

gpointer
modike_ike_sa_get_plugin_data (const ModikeIkeSa *sa, const char *plugin)
{
  EnginePluginData *d = g_hash_table_lookup (sa->plugin_data, plugin);

  return d != NULL ? d->data : NULL;
}

/* ---- children ---- */

EngineChild *
engine_child_new (ModikeIkeSa *sa)
{
  EngineChild *c = g_new0 (EngineChild, 1);

  c->sa = sa;
  c->created_us = sa->ike->env.now_us (sa->ike->env.env);
  g_ptr_array_add (sa->children, c);
  return c;
}

void
engine_child_free (EngineChild *c)
{
  ModikeIke *ike;

  if (c == NULL)
    return;
  ike = c->sa->ike;
  engine_timer_cancel (ike, &c->rekey_timer);
  engine_timer_cancel (ike, &c->expire_timer);
  g_free (c->policy);
  g_free (c);
}

EngineChild *
engine_child_find_spi (ModikeIkeSa *sa, guint32 spi, gboolean outbound)
{
  for (guint i = 0; i < sa->children->len; i++)
    {
      EngineChild *c = g_ptr_array_index (sa->children, i);

      if ((outbound ? c->spi_out : c->spi_in) == spi)
        return c;
    }
  return NULL;
}

void
engine_child_move (EngineChild *c, ModikeIkeSa *to)
{
  ModikeIkeSa *from = c->sa;

  if (from == to)
    return;
  g_ptr_array_remove (from->children, c);
  c->sa = to;
  g_ptr_array_add (to->children, c);
}

EngineChild *
engine_find_child (ModikeIke *ike, ModikeDirection dir, guint32 spi)
{
  for (guint i = 0; i < ike->sas->len; i++)
    {
      ModikeIkeSa *sa = g_ptr_array_index (ike->sas, i);
      EngineChild *c;

      if (sa->dead)
        continue;
      c = engine_child_find_spi (sa, spi, dir == MODIKE_DIR_OUT);
      if (c != NULL)
        return c;
    }
  return NULL;
}

gboolean
engine_child_rekey (EngineChild *c, GError **error)
{
  ModikeIke *ike = c->sa->ike;
  ModikeIkeSa *sa = engine_find_established (ike, c->sa->peer_name, NULL);

  if (sa == NULL)
    sa = c->sa;
  c->rekeyed = TRUE;
  ELOG_INFO (sa, NULL, "rekeying ESP SA in=%08x out=%08x", c->spi_in, c->spi_out);
  if (!modike_ike_sa_is_established (sa))
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "IKE SA not established");
      return FALSE;
    }
  return engine_start_qm (sa, c->spd_id, c->spi_in, error);
}

static void
child_rekey (gpointer data)
{
  EngineChild *c = data;
  g_autoptr (GError) error = NULL;

  if (!engine_child_rekey (c, &error))
    ELOG_MSG (c->sa, NULL, "rekey of ESP SA in=%08x failed to start: %s", c->spi_in, error->message);
}

static gboolean
child_rekey_cb (gpointer data)
{
  EngineChild *c = data;

  return engine_timer_fire (c->sa->ike, &c->rekey_timer, child_rekey, c);
}

static void
child_expire (gpointer data)
{
  EngineChild *c = data;

  ELOG_INFO (c->sa, NULL, "ESP SA in=%08x out=%08x expired", c->spi_in, c->spi_out);
  engine_child_remove (c, TRUE);
}

static gboolean
child_expire_cb (gpointer data)
{
  EngineChild *c = data;

  return engine_timer_fire (c->sa->ike, &c->expire_timer, child_expire, c);
}

void
engine_child_arm_timers (EngineChild *c)
{
  ModikeIke *ike = c->sa->ike;
  guint64 life = c->choice.life_s;

  if (life == 0)
    return;
  /* Rekey at life - 10 % - up to 5 % jitter, so both ends don't collide. */
  if (c->initiator)
    {
      guint64 margin = life / 10 + g_random_int_range (0, (gint32) MIN (life / 20 + 1, G_MAXINT32));
      engine_timer_cancel (ike, &c->rekey_timer);
      c->rekey_timer = engine_timer_add (ike, engine_ms_from_s (life > margin ? life - margin : 1), child_rekey_cb, c);
    }
  engine_timer_cancel (ike, &c->expire_timer);
  c->expire_timer = engine_timer_add (ike, engine_ms_from_s (life), child_expire_cb, c);
}

void
engine_child_remove (EngineChild *c, gboolean send_delete)
{
  ModikeIkeSa *sa = c->sa;
  ModikeIke *ike = sa->ike;
  const ModikeSadEntry *in = modike_sad_lookup (ike->sad, MODIKE_DIR_IN, c->spi_in);

  if (send_delete)
    {
      ModikeIkeSa *via = modike_ike_sa_is_established (sa) ? sa : engine_find_established (ike, sa->peer_name, NULL);
      guint8 spi[4];

      if (via != NULL)
        {
          /* We announce our inbound SPI, as strongSwan and RFC 2408 peers expect. */
          spi[0] = c->spi_in >> 24;
          spi[1] = c->spi_in >> 16;
          spi[2] = c->spi_in >> 8;
          spi[3] = c->spi_in;
          engine_send_delete (via, MODIKE_PROTO_ESP, spi, sizeof spi);
        }
    }
  /* A child the datapath refused never had its P2_UP. */
  if (in != NULL && !c->dp_failed)
    modike_registry_emit (ike->registry, MODIKE_EVENT_P2_DOWN, sa, in);
  modike_sad_remove (ike->sad, MODIKE_DIR_IN, c->spi_in);
  modike_sad_remove (ike->sad, MODIKE_DIR_OUT, c->spi_out);
  ELOG_INFO (sa, NULL, "ESP SA in=%08x out=%08x removed", c->spi_in, c->spi_out);
  g_ptr_array_remove (sa->children, c);
  engine_child_free (c);
}
