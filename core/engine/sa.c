/* ModikeIkeSa: one ISAKMP SA with its exchanges, keys and children, and
 * its lifecycle: established, rekeyed, expired, failed, deleted; phase 2
 * outcomes; children and their timers. */
#include "engine-private.h"

#include <string.h>

/* A plugin's data on an SA: a few per SA at most (one per loaded plugin
 * that keeps any), so a small array, created on first use, with the
 * plugin's name interned rather than copied into every SA. */
typedef struct {
  const char *plugin;         /* g_intern_string */
  gpointer data;
  GDestroyNotify destroy;
} EnginePluginData;

static void
plugin_data_clear (gpointer p)
{
  EnginePluginData *d = p;

  if (d->destroy != NULL)
    d->destroy (d->data);
}

static void
exchange_unref_cb (gpointer p)
{
  engine_exchange_free (p);
}

/* An SA's exchanges by message ID: phase 1's (ID 0) in a field of its
 * own, the others in a table that exists only while there are any (most
 * established SAs have none between their Informationals). */
void
engine_sa_exchanges_add (ModikeIkeSa *sa, ModikeExchange *x)
{
  if (x->msgid == 0)
    {
      g_clear_pointer (&sa->p1_exchange_x, engine_exchange_free);
      sa->p1_exchange_x = x;
      return;
    }
  if (sa->exchanges == NULL)
    sa->exchanges = g_hash_table_new_full (g_direct_hash, g_direct_equal, NULL, exchange_unref_cb);
  g_hash_table_insert (sa->exchanges, GUINT_TO_POINTER (x->msgid), x);
}

void
engine_sa_exchanges_steal (ModikeIkeSa *sa, ModikeExchange *x)
{
  if (engine_sa_exchange (sa, x->msgid) != x)
    return;
  if (x->msgid == 0)
    {
      sa->p1_exchange_x = NULL;
      return;
    }
  g_hash_table_steal (sa->exchanges, GUINT_TO_POINTER (x->msgid));
  if (g_hash_table_size (sa->exchanges) == 0)
    g_clear_pointer (&sa->exchanges, g_hash_table_destroy);
}

ModikeExchange *
engine_sa_exchange (const ModikeIkeSa *sa, guint32 msgid)
{
  if (msgid == 0)
    return sa->p1_exchange_x;
  return sa->exchanges != NULL ? g_hash_table_lookup (sa->exchanges, GUINT_TO_POINTER (msgid)) : NULL;
}

void
engine_sa_remember_done (ModikeIkeSa *sa, guint32 msgid)
{
  if (engine_sa_was_done (sa, msgid))
    return;
  sa->done_ids[sa->next_done_id] = msgid;
  sa->next_done_id = (sa->next_done_id + 1) % ENGINE_DONE_IDS;
  sa->n_done_ids = MIN (sa->n_done_ids + 1, ENGINE_DONE_IDS);
}

gboolean
engine_sa_was_done (const ModikeIkeSa *sa, guint32 msgid)
{
  for (guint i = 0; i < sa->n_done_ids; i++)
    if (sa->done_ids[i] == msgid)
      return TRUE;
  return FALSE;
}

/* ---- the SAs of one peer ---- */

static gboolean
id_is_address (guint8 type)
{
  switch (type)
    {
    case MODIKE_ID_IPV4_ADDR:
    case MODIKE_ID_IPV6_ADDR:
    case MODIKE_ID_IPV4_ADDR_SUBNET:
    case MODIKE_ID_IPV6_ADDR_SUBNET:
    case MODIKE_ID_IPV4_ADDR_RANGE:
    case MODIKE_ID_IPV6_ADDR_RANGE:
      return TRUE;
    default:
      return FALSE;
    }
}

/* A client of a responder-only entry whose auth method has still to
 * authenticate it (XAuth): its phase 1 ID may be a group's, shared by
 * other users. */
static gboolean
awaits_auth (const ModikeIkeSa *sa)
{
  return sa->peer != NULL && sa->peer->remote.family == 0 && !sa->authenticated && engine_auth_pending (sa);
}

/* sa's bucket in ike->by_peer: the name of a configured peer with a remote
 * address (one peer); for a responder-only entry (many clients) the name
 * and the type and value of the client's authenticated identity, plus the
 * address it came from when the identity is an address (behind NAT that is
 * a private address other clients may use too), plus the user its auth
 * method named (XAuth: users of one group ID are different clients).
 * NULL until then. */
static char *
peer_key (const ModikeIkeSa *sa)
{
  GBytes *id = sa->role == MODIKE_ROLE_INITIATOR ? sa->idr_b : sa->idi_b;
  g_autoptr (ModikeIdPayload) parsed = NULL;
  g_autofree char *value = NULL;
  g_autofree char *from = NULL;
  g_autofree char *user = NULL;
  const guint8 *data;
  gsize len;

  if (sa->peer == NULL || sa->peer_name == NULL)
    return NULL;
  if (sa->own_key != NULL)
    return g_strdup (sa->own_key);
  if (sa->peer->remote.family != 0)
    return g_strdup (sa->peer_name);
  if (sa->state != SA_ESTABLISHED || id == NULL || awaits_auth (sa))
    return NULL;
  data = g_bytes_get_data (id, &len);
  parsed = modike_id_payload_parse (data, len, NULL);
  if (parsed == NULL)
    return NULL;
  data = g_bytes_get_data (parsed->data, &len);
  value = modike_hex (data, len);
  if (sa->user_set && sa->user != NULL)
    {
      g_autofree char *hex = modike_hex ((const guint8 *) sa->user, strlen (sa->user));

      user = g_strconcat ("/u/", hex, NULL);
    }
  /* '/' never occurs in a peer name: no client's key is a peer's name. */
  if (!id_is_address (parsed->type))
    return g_strdup_printf ("%s/%u/%s%s", sa->peer_name, parsed->type, value, user != NULL ? user : "");
  from = modike_hex (sa->remote.addr, modike_addr_len (&sa->remote));
  return g_strdup_printf ("%s/%u/%s/%s%s", sa->peer_name, parsed->type, value, from, user != NULL ? user : "");
}

static void
sa_unindex (ModikeIkeSa *sa)
{
  GPtrArray *bucket;

  if (sa->peer_key == NULL)
    return;
  bucket = g_hash_table_lookup (sa->ike->by_peer, sa->peer_key);
  if (bucket != NULL && g_ptr_array_remove (bucket, sa) && bucket->len == 0)
    g_hash_table_remove (sa->ike->by_peer, sa->peer_key);
  g_clear_pointer (&sa->peer_key, g_free);
}

/* Files sa under its peer key, again whenever the key changes. */
static void
sa_index (ModikeIkeSa *sa)
{
  g_autofree char *key = sa->dead ? NULL : peer_key (sa);
  GPtrArray *bucket;

  if (g_strcmp0 (key, sa->peer_key) == 0)
    return;
  sa_unindex (sa);
  if (key == NULL)
    return;
  bucket = g_hash_table_lookup (sa->ike->by_peer, key);
  if (bucket == NULL)
    {
      bucket = g_ptr_array_new ();
      g_hash_table_insert (sa->ike->by_peer, g_strdup (key), bucket);
    }
  g_ptr_array_add (bucket, sa);
  sa->peer_key = g_steal_pointer (&key);
}

GPtrArray *
engine_peer_sas (ModikeIke *ike, const char *peer)
{
  return peer != NULL ? g_hash_table_lookup (ike->by_peer, peer) : NULL;
}

GPtrArray *
engine_sa_peer_sas (ModikeIkeSa *sa)
{
  GPtrArray *out = g_ptr_array_new ();
  GPtrArray *bucket = sa->peer_key != NULL ? g_hash_table_lookup (sa->ike->by_peer, sa->peer_key) : NULL;

  if (bucket == NULL && !sa->dead)
    g_ptr_array_add (out, sa);
  for (guint i = 0; bucket != NULL && i < bucket->len; i++)
    {
      ModikeIkeSa *o = g_ptr_array_index (bucket, i);

      /* The identity from another address is the same client only when NAT
       * detection says one of the two came through a NAT. */
      if (!o->dead && (o == sa || modike_addr_equal_ip (&o->remote, &sa->remote) || o->nat_remote || sa->nat_remote))
        g_ptr_array_add (out, o);
    }
  return out;
}

ModikeIkeSa *
engine_best_established (GPtrArray *sas, const ModikeIkeSa *except)
{
  ModikeIkeSa *best = NULL;

  for (guint i = 0; sas != NULL && i < sas->len; i++)
    {
      ModikeIkeSa *sa = g_ptr_array_index (sas, i);

      if (sa == except || sa->dead || sa->state != SA_ESTABLISHED)
        continue;
      /* Prefer SAs that are not being replaced, then the newest. */
      if (best == NULL || (best->rekeyed && !sa->rekeyed) ||
          (best->rekeyed == sa->rekeyed && sa->serial > best->serial))
        best = sa;
    }
  return best;
}

/* The established SA that speaks for sa's peer now (sa itself or a successor). */
static ModikeIkeSa *
sa_current (ModikeIkeSa *sa)
{
  g_autoptr (GPtrArray) sas = engine_sa_peer_sas (sa);

  return engine_best_established (sas, NULL);
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
  sa_index (sa);
}

void
engine_sa_free (ModikeIkeSa *sa)
{
  ModikeIke *ike;

  if (sa == NULL)
    return;
  ike = sa->ike;
  engine_instances_sa_free (sa);
  sa_unindex (sa);
  engine_half_open_leave (sa);
  engine_timer_cancel (ike, &sa->half_open_timer);
  engine_timer_cancel (ike, &sa->rekey_timer);
  engine_timer_cancel (ike, &sa->expire_timer);
  engine_sa_timers_clear (sa);
  /* Children were removed or moved before; free what is left silently. */
  for (guint i = 0; i < sa->children->len; i++)
    engine_child_free (g_ptr_array_index (sa->children, i));
  g_ptr_array_unref (sa->children);
  g_clear_pointer (&sa->exchanges, g_hash_table_destroy);
  g_clear_pointer (&sa->p1_exchange_x, engine_exchange_free);
  g_clear_pointer (&sa->plugin_data, g_array_unref);
  engine_gate_free (sa);
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
  g_free (sa->own_key);
  g_free (sa->own_id);
  g_free (sa->user);
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

const ModikePeerConfig *
modike_ike_sa_get_peer_config (const ModikeIkeSa *sa)
{
  return sa->peer;
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

static EnginePluginData *
plugin_data_find (const ModikeIkeSa *sa, const char *plugin, guint *index)
{
  for (guint i = 0; sa->plugin_data != NULL && i < sa->plugin_data->len; i++)
    {
      EnginePluginData *d = &g_array_index (sa->plugin_data, EnginePluginData, i);

      if (strcmp (d->plugin, plugin) == 0)
        {
          if (index != NULL)
            *index = i;
          return d;
        }
    }
  return NULL;
}

void
modike_ike_sa_set_plugin_data (ModikeIkeSa *sa, const char *plugin, gpointer data, GDestroyNotify destroy)
{
  EnginePluginData *d;
  EnginePluginData old = { 0 };
  guint i;

  g_return_if_fail (plugin != NULL);
  d = plugin_data_find (sa, plugin, &i);
  if (d != NULL)
    {
      old = *d;
      d->destroy = NULL; /* old's, run below (the array's clear func would run it now) */
      if (data == NULL && destroy == NULL)
        g_array_remove_index_fast (sa->plugin_data, i);
      else
        d->data = data, d->destroy = destroy;
    }
  else if (data != NULL || destroy != NULL)
    {
      EnginePluginData add = { g_intern_string (plugin), data, destroy };

      if (sa->plugin_data == NULL)
        {
          sa->plugin_data = g_array_sized_new (FALSE, FALSE, sizeof (EnginePluginData), 2);
          g_array_set_clear_func (sa->plugin_data, plugin_data_clear);
        }
      g_array_append_val (sa->plugin_data, add);
    }
  /* Last: the old data's destroy may call back in here. */
  plugin_data_clear (&old);
}

gpointer
modike_ike_sa_get_plugin_data (const ModikeIkeSa *sa, const char *plugin)
{
  EnginePluginData *d = plugin_data_find (sa, plugin, NULL);

  return d != NULL ? d->data : NULL;
}

/* ---- children ---- */

EngineChild *
engine_child_new (ModikeIkeSa *sa)
{
  EngineChild *c = g_new0 (EngineChild, 1);
  ModikeIkeSa *now = sa->rekeyed ? sa_current (sa) : NULL;

  /* Phase 1 was rekeyed while the Quick Mode ran: the child joins the
   * others on the new SA (the old one's expiry would take it along). */
  c->sa = now != NULL ? now : sa;
  c->created_us = sa->ike->env.now_us (sa->ike->env.env);
  g_ptr_array_add (c->sa->children, c);
  return c;
}

void
engine_child_free (EngineChild *c)
{
  ModikeIke *ike;

  if (c == NULL)
    return;
  ike = c->sa->ike;
  if (g_hash_table_lookup (ike->children_in, GUINT_TO_POINTER (c->spi_in)) == c)
    g_hash_table_remove (ike->children_in, GUINT_TO_POINTER (c->spi_in));
  if (g_hash_table_lookup (ike->children_out, GUINT_TO_POINTER (c->reqid)) == c)
    g_hash_table_remove (ike->children_out, GUINT_TO_POINTER (c->reqid));
  engine_timer_cancel (ike, &c->rekey_timer);
  engine_timer_cancel (ike, &c->expire_timer);
  g_free (c->policy);
  g_free (c);
}

EngineChild *
engine_child_find_spi (ModikeIkeSa *sa, guint32 spi, gboolean outbound)
{
  EngineChild *c;

  /* Other peers may have chosen the same outbound SPI: within one IKE
   * SA's children it names one child. */
  for (guint i = 0; outbound && !sa->dead && i < sa->children->len; i++)
    if (((EngineChild *) g_ptr_array_index (sa->children, i))->spi_out == spi)
      return g_ptr_array_index (sa->children, i);
  if (outbound)
    return NULL;
  c = engine_find_child (sa->ike, MODIKE_DIR_IN, spi, 0);
  return c != NULL && c->sa == sa ? c : NULL;
}

void
engine_children_move (ModikeIkeSa *from, ModikeIkeSa *to)
{
  if (from == to)
    return;
  for (guint i = 0; i < from->children->len; i++)
    {
      EngineChild *c = g_ptr_array_index (from->children, i);

      c->sa = to;
      g_ptr_array_add (to->children, c);
    }
  g_ptr_array_set_size (from->children, 0);
}

EngineChild *
engine_find_child (ModikeIke *ike, ModikeDirection dir, guint32 spi, guint32 reqid)
{
  EngineChild *c;

  if (dir == MODIKE_DIR_OUT)
    {
      c = g_hash_table_lookup (ike->children_out, GUINT_TO_POINTER (reqid));
      if (c != NULL && c->spi_out != spi)
        c = NULL;
    }
  else
    c = g_hash_table_lookup (ike->children_in, GUINT_TO_POINTER (spi));
  return c != NULL && !c->sa->dead ? c : NULL;
}

gboolean
engine_child_rekey (EngineChild *c, GError **error)
{
  ModikeIkeSa *sa = sa_current (c->sa);

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
      ModikeIkeSa *via = modike_ike_sa_is_established (sa) ? sa : sa_current (sa);
      guint8 spi[4];

      if (via != NULL)
        {
          /* We announce our inbound SPI, as strongSwan and RFC 2408 peers expect. */
          engine_spi_bytes (c->spi_in, spi);
          engine_send_delete (via, MODIKE_PROTO_ESP, spi, sizeof spi);
        }
    }
  /* A child the datapath refused never had its P2_UP. */
  if (in != NULL && !c->dp_failed)
    modike_registry_emit (ike->registry, MODIKE_EVENT_P2_DOWN, sa, in);
  modike_sad_remove_sa (ike->sad, MODIKE_DIR_IN, c->spi_in, c->reqid);
  modike_sad_remove_sa (ike->sad, MODIKE_DIR_OUT, c->spi_out, c->reqid);
  ELOG_INFO (sa, NULL, "ESP SA in=%08x out=%08x removed", c->spi_in, c->spi_out);
  /* From the end: engine_sa_delete removes the last one each time. */
  for (guint i = sa->children->len; i-- > 0;)
    if (g_ptr_array_index (sa->children, i) == c)
      {
        g_ptr_array_remove_index (sa->children, i);
        break;
      }
  engine_child_free (c);
}

/* ---- phase 1 outcomes and lifetimes ---- */

static void
cancel_exchanges (ModikeIkeSa *sa)
{
  GHashTableIter it;
  gpointer value = sa->p1_exchange_x;

  if (sa->exchanges != NULL)
    g_hash_table_iter_init (&it, sa->exchanges);
  while (value != NULL || (sa->exchanges != NULL && g_hash_table_iter_next (&it, NULL, &value)))
    {
      ModikeExchange *x = value;

      engine_timer_cancel (sa->ike, &x->timer);
      engine_timer_cancel (sa->ike, &x->linger_timer);
      x->dead = TRUE;
      value = NULL;
    }
}

void
engine_sa_delete (ModikeIkeSa *sa, gboolean send_delete)
{
  ModikeIke *ike = sa->ike;
  gboolean was_up = sa->state == SA_ESTABLISHED;

  if (sa->dead)
    return;
  /* Our Quick Modes waiting at the phase-2 gate are told why they never
   * ran; the peer's parked ones go with the SA's exchanges. */
  if (engine_gate_n_waiting (sa) > 0)
    {
      g_autoptr (GError) gone = g_error_new (MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED,
                                             "peer %s: IKE SA deleted while Quick Mode waited at the phase-2 gate",
                                             sa->peer_name != NULL ? sa->peer_name : "?");

      engine_gate_drop_waiting (sa, gone, FALSE);
    }
  while (sa->children->len > 0)
    engine_child_remove (g_ptr_array_index (sa->children, sa->children->len - 1), send_delete);
  if (send_delete && was_up && sa->have_keys)
    {
      guint8 spi[2 * MODIKE_COOKIE_LEN];

      memcpy (spi, sa->icookie, MODIKE_COOKIE_LEN);
      memcpy (spi + MODIKE_COOKIE_LEN, sa->rcookie, MODIKE_COOKIE_LEN);
      engine_send_delete (sa, MODIKE_PROTO_ISAKMP, spi, sizeof spi);
    }
  sa->dead = TRUE;
  engine_half_open_leave (sa);
  engine_timer_cancel (ike, &sa->half_open_timer);
  engine_timer_cancel (ike, &sa->rekey_timer);
  engine_timer_cancel (ike, &sa->expire_timer);
  engine_sa_timers_clear (sa);
  cancel_exchanges (sa);
  if (g_hash_table_lookup (ike->by_icookie, &sa->icookie_key) == sa)
    g_hash_table_remove (ike->by_icookie, &sa->icookie_key);
  /* While sa is still filed with its peer: a result moves only to an SA
   * of the same peer (for a client, the client's own). */
  engine_adapters_sa_gone (sa);
  engine_instances_sa_gone (sa);
  sa_unindex (sa);
  /* The last SA takes its place: O(1) at any SA count (the status sorts). */
  g_assert (sa->sas_pos < ike->sas->len && ike->sas->pdata[sa->sas_pos] == sa);
  g_ptr_array_remove_index_fast (ike->sas, sa->sas_pos);
  if (sa->sas_pos < ike->sas->len)
    ((ModikeIkeSa *) ike->sas->pdata[sa->sas_pos])->sas_pos = sa->sas_pos;
  g_ptr_array_add (ike->dead_sas, sa);
  ELOG_INFO (sa, NULL, "IKE SA removed");
  if (was_up)
    {
      modike_registry_emit (ike->registry, MODIKE_EVENT_P1_DOWN, sa, NULL);
      if (ike->obs.sa_deleted != NULL)
        ike->obs.sa_deleted (sa, ike->obs_user);
    }
}

static void sa_delete (ModikeIkeSa *sa, gboolean restart, gboolean retry);

/* The plugins' P1_FAILED / P2_FAILED handlers, with the cause readable
 * through modike_ike_sa_get_failure while they run. */
void
engine_emit_failure (ModikeIkeSa *sa, ModikeEventType ev, const GError *error)
{
  GError *outer = g_steal_pointer (&sa->failure);

  sa->failure = g_error_copy (error);
  modike_registry_emit (sa->ike->registry, ev, sa, NULL);
  g_clear_error (&sa->failure);
  sa->failure = outer;
}

const GError *
modike_ike_sa_get_failure (const ModikeIkeSa *sa)
{
  return sa->failure;
}

/* engine_sa_fail with its log line at level. */
static void
sa_fail_at (ModikeIkeSa *sa, const GError *error, GLogLevelFlags level)
{
  ModikeIke *ike = sa->ike;

  if (sa->dead)
    return;
  engine_log (level, sa, NULL, "phase 1 failed: %s", error->message);
  if (sa->state != SA_ESTABLISHED)
    engine_emit_failure (sa, MODIKE_EVENT_P1_FAILED, error);
  if (sa->state != SA_ESTABLISHED && ike->obs.p1_failed != NULL)
    ike->obs.p1_failed (sa->peer_name != NULL ? sa->peer_name : "", error, ike->obs_user);
  /* A restart that keeps trying (modike_ike_sa_delete_retry): the peer is
   * still away; the next attempt starts before anyone sees no SA. */
  if (sa->retry_p1 && sa->state != SA_ESTABLISHED && g_error_matches (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_TIMEOUT))
    {
      ELOG_INFO (sa, NULL, "no answer yet: starting phase 1 again");
      sa_delete (sa, TRUE, TRUE);
      return;
    }
  engine_sa_delete (sa, FALSE);
}

void
engine_sa_fail (ModikeIkeSa *sa, const GError *error)
{
  sa_fail_at (sa, error, G_LOG_LEVEL_MESSAGE);
}

void
engine_sa_expire (ModikeIkeSa *sa, const GError *error)
{
  if (sa->ho_entry == NULL || sa->dead)
    {
      engine_sa_fail (sa, error);
      return;
    }
  engine_half_open_expired (sa, error);
  sa_fail_at (sa, error, G_LOG_LEVEL_INFO);
}

void
engine_sa_initial_contact (ModikeIkeSa *sa)
{
  g_autoptr (GPtrArray) sas = engine_sa_peer_sas (sa);

  /* The peer rebooted: everything we hold with it before this SA is stale;
   * for a client of a responder-only entry that is only its own SAs. */
  for (guint i = 0; i < sas->len; i++)
    {
      ModikeIkeSa *o = g_ptr_array_index (sas, i);

      if (o == sa || o->dead || o->serial > sa->serial)
        continue;
      ELOG_INFO (o, NULL, "INITIAL-CONTACT: removing older SA");
      engine_sa_delete (o, FALSE);
    }
  sa->peer_initial_contact = FALSE;
}


static void
p1_rekey (gpointer data)
{
  ModikeIkeSa *sa = data;
  g_autoptr (GError) error = NULL;

  /* A standalone SA (modike_ike_initiate_as) has no successor to hand its
   * children to: it runs until it expires. */
  if (!sa->dead && sa->own_key != NULL)
    ELOG_INFO (sa, NULL, "a standalone IKE SA is not rekeyed: it expires");
  else if (!sa->dead && sa->peer != NULL)
    {
      ELOG_INFO (sa, NULL, "rekeying the IKE SA");
      sa->rekeyed = TRUE;
      if (engine_start_p1 (sa->ike, sa->peer, &error) == NULL)
        ELOG_MSG (sa, NULL, "rekey failed to start: %s", error->message);
    }
}

static gboolean
p1_rekey_cb (gpointer data)
{
  ModikeIkeSa *sa = data;

  return engine_timer_fire (sa->ike, &sa->rekey_timer, p1_rekey, sa);
}

static void
p1_expire (gpointer data)
{
  ModikeIkeSa *sa = data;

  ELOG_INFO (sa, NULL, "IKE SA lifetime expired");
  engine_sa_delete (sa, TRUE);
}

static gboolean
p1_expire_cb (gpointer data)
{
  ModikeIkeSa *sa = data;

  return engine_timer_fire (sa->ike, &sa->expire_timer, p1_expire, sa);
}

static void
half_open (gpointer data)
{
  ModikeIkeSa *sa = data;

  if (sa->state != SA_ESTABLISHED)
    {
      guint s = sa->peer != NULL && sa->peer->half_open_s > 0 ? sa->peer->half_open_s : ENGINE_DEFAULT_HALF_OPEN_S;
      g_autoptr (GError) error = g_error_new (MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_TIMEOUT,
                                              "peer %s: phase 1 not complete after %u s",
                                              sa->peer_name != NULL ? sa->peer_name : "?", s);

      engine_sa_expire (sa, error);
    }
}

static gboolean
half_open_cb (gpointer data)
{
  ModikeIkeSa *sa = data;

  return engine_timer_fire (sa->ike, &sa->half_open_timer, half_open, sa);
}

void
engine_sa_arm_half_open (ModikeIkeSa *sa)
{
  guint s = sa->peer != NULL && sa->peer->half_open_s > 0 ? sa->peer->half_open_s : ENGINE_DEFAULT_HALF_OPEN_S;

  sa->half_open_timer = engine_timer_add (sa->ike, engine_ms_from_s (s), half_open_cb, sa);
}

void
engine_sa_join (ModikeIkeSa *sa)
{
  g_autoptr (GPtrArray) sas = NULL;

  sa->join_deferred = FALSE;
  sa_index (sa);
  if (sa->peer_initial_contact)
    engine_sa_initial_contact (sa);
  /* A peer address given before phase 1 was up makes its instances now. */
  if (sa->peer_addr4.net.family != 0 || sa->peer_addr6.net.family != 0)
    engine_instances_sync_client (sa);

  /* Children of the other SAs of this peer move here (phase 1 rekeying). */
  sas = engine_sa_peer_sas (sa);
  for (guint i = 0; i < sas->len; i++)
    {
      ModikeIkeSa *o = g_ptr_array_index (sas, i);

      if (o == sa)
        continue;
      engine_children_move (o, sa);
      if (o->state == SA_ESTABLISHED)
        o->rekeyed = TRUE;
    }
}

void
engine_p1_established (ModikeIkeSa *sa)
{
  ModikeIke *ike = sa->ike;
  guint64 life = sa->choice.life_s;
  g_autoptr (GArray) pending = NULL;

  if (sa->dead || sa->state == SA_ESTABLISHED)
    return;
  sa->state = SA_ESTABLISHED;
  engine_half_open_leave (sa);
  sa->established_us = ike->env.now_us (ike->env.env);
  engine_timer_cancel (ike, &sa->half_open_timer);
  p1_forget_handshake (sa);
  ELOG_INFO (sa, NULL, "IKE SA established (%s-%s-%s, %s, %s, life %" G_GUINT64_FORMAT " s)",
             modike_encr_name (sa->choice.encr, sa->choice.keybits), modike_hash_name (sa->choice.hash),
             modike_dh_name (sa->choice.group), sa->p1_exchange == MODIKE_EX_AGGRESSIVE ? "aggressive" : "main",
             sa->role == MODIKE_ROLE_INITIATOR ? "initiator" : "responder", life);
  /* Its authenticated identity is known now: a client of a responder-only
   * entry joins its own SAs (after XAuth, when there is XAuth). */
  if (awaits_auth (sa))
    {
      sa->join_deferred = TRUE;
      sa_index (sa);
    }
  else
    engine_sa_join (sa);

  if (life > 0)
    {
      /* The initiator rekeys at life - 10 % - up to 5 % jitter. */
      if (sa->role == MODIKE_ROLE_INITIATOR)
        {
          guint64 margin = life / 10 + g_random_int_range (0, (gint32) MIN (life / 20 + 1, G_MAXINT32));

          sa->rekey_timer = engine_timer_add (ike, engine_ms_from_s (life > margin ? life - margin : 1), p1_rekey_cb, sa);
        }
      sa->expire_timer = engine_timer_add (ike, engine_ms_from_s (life), p1_expire_cb, sa);
    }
  engine_auth_established (sa);
  /* The method's owner failed the SA at once: it never was up for the
   * plugins (a P1_UP after its P1_DOWN would leave them a freed SA). */
  if (sa->dead)
    return;
  modike_registry_emit (ike->registry, MODIKE_EVENT_P1_UP, sa, NULL);
  if (ike->obs.p1_up != NULL)
    ike->obs.p1_up (sa, ike->obs_user);
  if (!sa->dead && !engine_auth_pending (sa))
    modike_ike_sa_auth_done (sa);

  pending = g_steal_pointer (&sa->pending_spd);
  sa->pending_spd = g_array_new (FALSE, FALSE, sizeof (guint32));
  for (guint i = 0; i < pending->len && !sa->dead; i++)
    {
      g_autoptr (GError) error = NULL;

      if (!engine_start_qm (sa, g_array_index (pending, guint32, i), 0, &error))
        ELOG_MSG (sa, NULL, "Quick Mode not started: %s", error->message);
    }
}

/* ---- phase 2 ---- */

void
engine_p2_up (ModikeIkeSa *sa, EngineChild *child)
{
  ModikeIke *ike = sa->ike;
  const ModikeSadEntry *in = modike_sad_lookup_sa (ike->sad, MODIKE_DIR_IN, child->spi_in, child->reqid);
  const ModikeSadEntry *out = modike_sad_lookup_sa (ike->sad, MODIKE_DIR_OUT, child->spi_out, child->reqid);
  char encr[32];
  const char *integ = engine_auth_alg_name (child->choice.auth_alg);

  /* Found by SPI from here on (datapath expiries), whatever the SA count;
   * outbound by reqid, as peers' SPIs may collide. */
  g_hash_table_replace (ike->children_in, GUINT_TO_POINTER (child->spi_in), child);
  g_hash_table_replace (ike->children_out, GUINT_TO_POINTER (child->reqid), child);
  if (engine_dp_refused (ike, child))
    {
      g_autoptr (GError) error = g_error_new (MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED,
                                              "peer %s: the datapath refused ESP SA in=%08x out=%08x",
                                              sa->peer_name != NULL ? sa->peer_name : "?", child->spi_in,
                                              child->spi_out);

      /* It cannot carry traffic: no P2_UP, and it is deleted (with a
       * DELETE to the peer) once this exchange is done. */
      child->dp_failed = TRUE;
      engine_p2_failed (sa, error);
      engine_dp_schedule_reap (ike);
      return;
    }
  engine_child_arm_timers (child);
  ELOG_INFO (sa, NULL, "ESP SA established in=%08x out=%08x %s%s%s %s%s life %" G_GUINT64_FORMAT " s",
             child->spi_in, child->spi_out,
             engine_esp_name (child->choice.esp_transform, child->choice.key_bits, encr, sizeof encr),
             integ != NULL ? "-" : "", integ != NULL ? integ : "",
             child->choice.mode == MODIKE_MODE_TRANSPORT ? "transport" : "tunnel", child->choice.udp ? " udp-encap" : "",
             child->choice.life_s);
  modike_registry_emit (ike->registry, MODIKE_EVENT_P2_UP, sa, in);
  if (ike->obs.p2_up != NULL)
    ike->obs.p2_up (sa, in, out, ike->obs_user);
}

void
engine_p2_failed (ModikeIkeSa *sa, const GError *error)
{
  ModikeIke *ike = sa->ike;

  ELOG_MSG (sa, NULL, "Quick Mode failed: %s", error->message);
  engine_emit_failure (sa, MODIKE_EVENT_P2_FAILED, error);
  if (ike->obs.p2_failed != NULL)
    ike->obs.p2_failed (sa->peer_name != NULL ? sa->peer_name : "", error, ike->obs_user);
}

gboolean
engine_start_qm (ModikeIkeSa *sa, guint32 spd_id, guint32 rekey_spi, GError **error)
{
  ModikeExchange *x;

  if (!modike_ike_sa_is_established (sa))
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "peer %s: IKE SA not established",
                   sa->peer_name);
      return FALSE;
    }
  if (engine_gate_held (sa))
    return engine_gate_queue_qm (sa, spd_id, rekey_spi, error);
  x = engine_exchange_new (sa, MODIKE_EX_QUICK, engine_alloc_msgid (sa), MODIKE_ROLE_INITIATOR);
  /* The engine learns what we negotiate through the SDK, as from a plugin. */
  modike_exchange_set_policy (x, spd_id);
  modike_exchange_set_data (x, qm_data_new (rekey_spi), (GDestroyNotify) qm_data_free);
  return engine_exchange_initiate (x, error);
}

/* ---- services for plugins (DPD, NAT keepalives, fragmentation) ---- */

ModikeIke *
modike_ike_sa_get_ike (const ModikeIkeSa *sa)
{
  return sa->ike;
}

gint64
modike_ike_now_us (ModikeIke *ike)
{
  return ike->env.now_us (ike->env.env);
}

/* Sends body (taken) as the one payload of a protected Informational. */
static gboolean
send_protected (ModikeIkeSa *sa, guint8 type, GByteArray *body, GError **error)
{
  gboolean ok;

  if (!modike_ike_sa_is_established (sa) || !sa->have_keys)
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED,
                   "peer %s: no established IKE SA to protect an Informational with",
                   sa->peer_name != NULL ? sa->peer_name : "?");
      g_byte_array_unref (body);
      return FALSE;
    }
  engine_enter (sa->ike);
  ok = engine_send_info (sa, type, body, error);
  engine_leave (sa->ike);
  return ok;
}

gboolean
modike_ike_sa_send_info (ModikeIkeSa *sa, guint8 type, const guint8 *body, gsize len, GError **error)
{
  GByteArray *copy;

  g_return_val_if_fail (sa != NULL && (body != NULL || len == 0), FALSE);
  if (type == MODIKE_PL_NONE || type == MODIKE_PL_HASH)
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED,
                   "Informational payload type %u: the core adds HASH(1) itself", type);
      return FALSE;
    }
  copy = g_byte_array_sized_new ((guint) len);
  g_byte_array_append (copy, body, (guint) len);
  ELOG_DEBUG (sa, NULL, "plugin sends a protected Informational with a %s payload", engine_payload_name (type));
  return send_protected (sa, type, copy, error);
}

gboolean
modike_ike_sa_send_notify (ModikeIkeSa *sa, guint16 type, guint8 protocol, const guint8 *spi, gsize spi_len,
                           const guint8 *data, gsize data_len, GError **error)
{
  g_return_val_if_fail (sa != NULL && (data != NULL || data_len == 0), FALSE);
  if (spi != NULL && spi_len > 2 * MODIKE_COOKIE_LEN)
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "notify %s: SPI of %" G_GSIZE_FORMAT " bytes",
                   engine_notify_name (type), spi_len);
      return FALSE;
    }
  ELOG_DEBUG (sa, NULL, "plugin sends a protected notify %s", engine_notify_name (type));
  return send_protected (sa, MODIKE_PL_N, engine_notify_body (sa, type, protocol, spi, spi_len, data, data_len),
                         error);
}

gboolean
modike_ike_sa_send_raw (ModikeIkeSa *sa, const guint8 *data, gsize len, GError **error)
{
  ModikeIke *ike = sa->ike;

  g_return_val_if_fail (data != NULL || len == 0, FALSE);
  if (!sa->dead)
    sa->last_tx_us = ike->env.now_us (ike->env.env);
  if (sa->dead || ike->env.send == NULL || !ike->env.send (ike->env.env, &sa->local, &sa->remote, data, len))
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "peer %s: datagram of %" G_GSIZE_FORMAT
                   " bytes not sent", sa->peer_name != NULL ? sa->peer_name : "?", len);
      return FALSE;
    }
  return TRUE;
}

/* A plugin's timer on an SA. */
typedef struct {
  ModikeIkeSa *sa;
  guint id;        /* the plugin's handle, unique on the SA */
  guint source;    /* the environment's timer; 0 once fired */
  ModikeSaTimerFunc fn;
  gpointer data;
  GDestroyNotify destroy;
} SaTimer;

static void
sa_timer_free (gpointer p)
{
  SaTimer *t = p;

  engine_timer_cancel (t->sa->ike, &t->source);
  if (t->destroy != NULL)
    t->destroy (t->data);
  g_free (t);
}

static void
sa_timer_run (gpointer p)
{
  SaTimer *t = p;

  /* Off the table first: the callback may cancel it, add others or delete the SA. */
  g_hash_table_steal (t->sa->plugin_timers, GUINT_TO_POINTER (t->id));
  if (!t->sa->dead)
    t->fn (t->sa, t->data);
  sa_timer_free (t);
}

static gboolean
sa_timer_cb (gpointer p)
{
  SaTimer *t = p;

  return engine_timer_fire (t->sa->ike, &t->source, sa_timer_run, t);
}

guint
modike_ike_sa_timer_add (ModikeIkeSa *sa, guint ms, ModikeSaTimerFunc fn, gpointer data, GDestroyNotify destroy)
{
  SaTimer *t;

  g_return_val_if_fail (sa != NULL && fn != NULL, 0);
  if (sa->dead)
    {
      if (destroy != NULL)
        destroy (data);
      return 0;
    }
  if (sa->plugin_timers == NULL)
    sa->plugin_timers = g_hash_table_new_full (NULL, NULL, NULL, sa_timer_free);
  t = g_new0 (SaTimer, 1);
  t->sa = sa;
  do
    t->id = ++sa->next_timer_id;
  while (t->id == 0 || g_hash_table_contains (sa->plugin_timers, GUINT_TO_POINTER (t->id)));
  t->fn = fn;
  t->data = data;
  t->destroy = destroy;
  t->source = engine_timer_add (sa->ike, ms, sa_timer_cb, t);
  g_hash_table_insert (sa->plugin_timers, GUINT_TO_POINTER (t->id), t);
  return t->id;
}

void
modike_ike_sa_timer_cancel (ModikeIkeSa *sa, guint id)
{
  if (sa->plugin_timers != NULL && id != 0)
    g_hash_table_remove (sa->plugin_timers, GUINT_TO_POINTER (id));
}

void
engine_sa_timers_clear (ModikeIkeSa *sa)
{
  g_clear_pointer (&sa->plugin_timers, g_hash_table_destroy);
}

/* The later of own (the IKE side) and the datapath's last packet on the
 * children's SAs in dir. */
static gint64
sa_last (ModikeIkeSa *sa, gint64 own, ModikeDirection dir)
{
  gint64 last = own;

  for (guint i = 0; i < sa->children->len; i++)
    last = MAX (last, engine_dp_child_last (sa->ike, g_ptr_array_index (sa->children, i), dir));
  return last;
}

gint64
modike_ike_sa_get_last_outbound (ModikeIkeSa *sa)
{
  return sa_last (sa, sa->last_tx_us, MODIKE_DIR_OUT);
}

static void
move_entry (ModikeIke *ike, ModikeDirection dir, guint32 spi, guint32 reqid, const ModikeAddr *remote)
{
  /* The core owns its SAD: the entry is ours to change. */
  ModikeSadEntry *e = (ModikeSadEntry *) modike_sad_lookup_sa (ike->sad, dir, spi, reqid);
  ModikeAddr *peer;

  if (e == NULL)
    return;
  peer = dir == MODIKE_DIR_OUT ? &e->dst : &e->src;
  memcpy (peer->addr, remote->addr, sizeof peer->addr);
  peer->family = remote->family;
  if (e->udp_encap)
    {
      if (dir == MODIKE_DIR_OUT)
        e->encap_dport = remote->port;
      else
        e->encap_sport = remote->port;
    }
  engine_dp_sa_move (ike, e);
}

void
engine_sa_move_remote (ModikeIkeSa *sa, const ModikeAddr *remote)
{
  char from[MODIKE_ADDR_STRLEN], to[MODIKE_ADDR_STRLEN];

  ELOG_INFO (sa, NULL, "peer %s moved from %s to %s", sa->peer_name != NULL ? sa->peer_name : "?",
             modike_addr_format (&sa->remote, from, sizeof from), modike_addr_format (remote, to, sizeof to));
  sa->remote = *remote;
  for (guint i = 0; i < sa->children->len; i++)
    {
      EngineChild *c = g_ptr_array_index (sa->children, i);

      move_entry (sa->ike, MODIKE_DIR_OUT, c->spi_out, c->reqid, remote);
      move_entry (sa->ike, MODIKE_DIR_IN, c->spi_in, c->reqid, remote);
    }
  sa_index (sa); /* an address identity's key names the address it came from */
}

gint64
modike_ike_sa_get_last_inbound (ModikeIkeSa *sa)
{
  return sa_last (sa, sa->last_rx_us, MODIKE_DIR_IN);
}

/* Phase 1 again with the peer, carrying the policies of the old SA's
 * children (others come with traffic, through acquires); with replaced, a
 * successor carries the peer already and only the policies follow. */
static void
sa_restart (ModikeIke *ike, const ModikePeerConfig *peer, const char *name, GArray *policies, gboolean replaced)
{
  g_autoptr (GError) error = NULL;

  if (peer == NULL || peer->remote.family == 0)
    {
      engine_log (G_LOG_LEVEL_MESSAGE, NULL, NULL,
                  "peer %s: cannot restart phase 1: the peer entry has no remote address (responder only)",
                  name != NULL ? name : "?");
      return;
    }
  engine_log (G_LOG_LEVEL_INFO, NULL, NULL, "peer %s: %s with %u polic%s", peer->name,
              replaced ? "a newer SA carries on" : "restarting phase 1", policies->len,
              policies->len == 1 ? "y" : "ies");
  if (policies->len == 0 && !replaced && engine_start_p1 (ike, peer, &error) == NULL)
    engine_log (G_LOG_LEVEL_MESSAGE, NULL, NULL, "peer %s: restart failed: %s", peer->name, error->message);
  for (guint i = 0; i < policies->len; i++)
    if (!modike_ike_initiate_child (ike, g_array_index (policies, guint32, i), &error))
      {
        engine_log (G_LOG_LEVEL_MESSAGE, NULL, NULL, "peer %s: restart of policy %u failed: %s", peer->name,
                    g_array_index (policies, guint32, i), error->message);
        g_clear_error (&error);
      }
}

static void
add_policy (GArray *policies, guint32 spd_id)
{
  for (guint i = 0; i < policies->len; i++)
    if (g_array_index (policies, guint32, i) == spd_id)
      return;
  g_array_append_val (policies, spd_id);
}

/* The new phase 1 a restart started with the peer (none: a newer SA
 * carries on, or the restart failed) keeps trying while it times out. */
static void
mark_retry (ModikeIke *ike, const ModikePeerConfig *peer, guint32 after)
{
  for (guint i = 0; i < ike->sas->len; i++)
    {
      ModikeIkeSa *s = g_ptr_array_index (ike->sas, i);

      if (!s->dead && s->peer == peer && s->serial > after && s->role == MODIKE_ROLE_INITIATOR &&
          s->state != SA_ESTABLISHED)
        s->retry_p1 = TRUE;
    }
}

static void
sa_delete (ModikeIkeSa *sa, gboolean restart, gboolean retry)
{
  ModikeIke *ike = sa->ike;
  const ModikePeerConfig *peer = sa->peer;
  guint32 serial = sa->serial;
  g_autofree char *name = g_strdup (sa->peer_name);
  g_autoptr (GArray) policies = g_array_new (FALSE, FALSE, sizeof (guint32));
  g_autoptr (GArray) waiting = g_array_new (FALSE, FALSE, sizeof (guint32));
  GHashTableIter it;
  gpointer value;
  ModikeIkeSa *now;
  gboolean replaced;

  if (sa->dead)
    return;
  engine_enter (ike);
  /* A successor speaks for the peer already (phase 1 was rekeyed): a new
   * phase 1 would be one too many. */
  now = sa_current (sa);
  replaced = now != NULL && now != sa && !now->rekeyed && now->serial > sa->serial;
  for (guint i = 0; i < sa->children->len; i++)
    add_policy (policies, ((EngineChild *) g_ptr_array_index (sa->children, i))->spd_id);
  for (guint i = 0; i < sa->pending_spd->len; i++)
    add_policy (policies, g_array_index (sa->pending_spd, guint32, i));
  /* Quick Modes waiting at the phase-2 gate or running: the plugin that
   * held phase 2 (a failed extended authentication) retries with them. */
  engine_gate_policies (sa, waiting);
  for (guint i = 0; i < waiting->len; i++)
    add_policy (policies, g_array_index (waiting, guint32, i));
  if (sa->exchanges != NULL)
    g_hash_table_iter_init (&it, sa->exchanges);
  while (sa->exchanges != NULL && g_hash_table_iter_next (&it, NULL, &value))
    {
      const ModikeExchange *x = value;

      if (!x->done && !x->dead && x->role == MODIKE_ROLE_INITIATOR && x->spd_id != 0)
        add_policy (policies, x->spd_id);
    }
  if (!sa->retry_p1)
    ELOG_INFO (sa, NULL, "deleting the IKE SA on a plugin's request%s", restart ? ", then starting again" : "");
  if (restart)
    engine_gate_drop_waiting (sa, NULL, FALSE);
  engine_sa_delete (sa, TRUE);
  if (restart)
    sa_restart (ike, peer, name, policies, replaced);
  if (restart && retry && peer != NULL)
    mark_retry (ike, peer, serial);
  engine_leave (ike);
}

void
modike_ike_sa_delete (ModikeIkeSa *sa, gboolean restart)
{
  sa_delete (sa, restart, FALSE);
}

void
modike_ike_sa_delete_retry (ModikeIkeSa *sa)
{
  sa_delete (sa, TRUE, TRUE);
}

gboolean
modike_ike_sa_is_replaced (const ModikeIkeSa *sa)
{
  return sa->rekeyed;
}

/* The core keeps the NAT verdict: a client of a responder-only entry that
 * is behind a NAT is recognised by its identity alone when it moves. */
void
modike_ike_sa_set_nat (ModikeIkeSa *sa, gboolean local_behind, gboolean remote_behind)
{
  sa->nat_local = local_behind;
  sa->nat_remote = remote_behind;
}

gboolean
modike_ike_sa_nat_detected (const ModikeIkeSa *sa)
{
  return sa->nat_local || sa->nat_remote;
}
