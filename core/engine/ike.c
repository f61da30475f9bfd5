/* The IKE engine: SA tables and lookups, the receive path, initiation,
 * host calls from the datapath, config apply/reload and the observer (the
 * SA lifecycle is in sa.c). Everything
 * runs on one thread; objects that die while a call is on the stack are
 * freed when the outermost engine call returns (engine_leave). */
#include "engine-private.h"

#include <string.h>

G_DEFINE_QUARK (modike-ike-error-quark, modike_ike_error)

static const guint8 zero_cookie[MODIKE_COOKIE_LEN];
static const guint8 zero_addr[16];

/* ---- names and logging ---- */

/* The codec's name, or KIND(number) for a value it has none for (peers
 * send those); the engine runs on one thread, so one buffer per kind. */
static const char *
name_or_number (const char *name, char *buf, gsize size, const char *kind, guint value)
{
  if (name != NULL)
    return name;
  g_snprintf (buf, size, "%s(%u)", kind, value);
  return buf;
}

const char *
engine_exchange_name (guint8 type)
{
  static char other[24];

  return name_or_number (modike_exchange_name (type), other, sizeof other, "EXCHANGE", type);
}

const char *
engine_notify_name (guint16 type)
{
  static char other[24];

  return type == 0 ? "none" : name_or_number (modike_notify_name (type), other, sizeof other, "NOTIFY", type);
}

const char *
engine_payload_name (guint8 type)
{
  static char other[24];

  return name_or_number (modike_payload_name (type), other, sizeof other, "PAYLOAD", type);
}

void
engine_log (GLogLevelFlags level, const ModikeIkeSa *sa, const ModikeExchange *x, const char *fmt, ...)
{
  va_list ap;
  g_autofree char *text = NULL;
  g_autofree char *message = NULL;
  char ic[2 * MODIKE_COOKIE_LEN + 1] = "", rc[2 * MODIKE_COOKIE_LEN + 1] = "";
  char msgid[12] = "", state[12] = "";
  GLogField fields[9];
  gsize n = 0;

  /* Per received message: no formatting for a level nobody sees. */
  if (!modike_log_would_show (level))
    return;
  va_start (ap, fmt);
  text = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  if (sa != NULL)
    for (guint i = 0; i < MODIKE_COOKIE_LEN; i++)
      {
        g_snprintf (ic + 2 * i, 3, "%02x", sa->icookie[i]);
        g_snprintf (rc + 2 * i, 3, "%02x", sa->rcookie[i]);
      }
  if (x != NULL)
    {
      g_snprintf (msgid, sizeof msgid, "%08x", x->msgid);
      g_snprintf (state, sizeof state, "%u", x->state);
    }
  if (sa != NULL && x != NULL)
    message = g_strdup_printf ("[%s i=%s r=%s %s/%s#%s] %s", sa->peer_name != NULL ? sa->peer_name : "?", ic, rc,
                               engine_exchange_name (x->type), msgid, state, text);
  else if (sa != NULL)
    message = g_strdup_printf ("[%s i=%s r=%s] %s", sa->peer_name != NULL ? sa->peer_name : "?", ic, rc, text);
  else
    message = g_steal_pointer (&text);

  fields[n++] = (GLogField){ "GLIB_DOMAIN", ENGINE_LOG_DOMAIN, -1 };
  fields[n++] = (GLogField){ "MESSAGE", message, -1 };
  if (sa != NULL)
    {
      fields[n++] = (GLogField){ "MODIKE_PEER", sa->peer_name != NULL ? sa->peer_name : "", -1 };
      fields[n++] = (GLogField){ "MODIKE_ICOOKIE", ic, -1 };
      fields[n++] = (GLogField){ "MODIKE_RCOOKIE", rc, -1 };
    }
  if (x != NULL)
    {
      fields[n++] = (GLogField){ "MODIKE_EXCHANGE", engine_exchange_name (x->type), -1 };
      fields[n++] = (GLogField){ "MODIKE_MSGID", msgid, -1 };
      fields[n++] = (GLogField){ "MODIKE_STATE", state, -1 };
    }
  g_log_structured_array (level, fields, n);
}

/* ---- lifecycle ---- */

/* Per policy: when an acquire last started a negotiation, and the timer
 * of an acquire deferred by the rate limit. */
typedef struct {
  ModikeIke *ike;
  guint32 spd_id;
  gint64 last_us;
  guint timer;
} AcquireState;

static void
acquire_state_free (gpointer p)
{
  AcquireState *st = p;

  engine_timer_cancel (st->ike, &st->timer);
  g_free (st);
}

ModikeIke *
modike_ike_new (const ModikeEnv *env, ModikeRegistry *registry)
{
  ModikeIke *ike = g_new0 (ModikeIke, 1);

  ike->env = *env;
  ike->registry = registry;
  ike->spd = modike_spd_new ();
  ike->sad = modike_sad_new ();
  ike->sas = g_ptr_array_new ();
  ike->by_icookie = g_hash_table_new (g_int64_hash, g_int64_equal);
  engine_half_open_init (ike);
  ike->by_peer = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) g_ptr_array_unref);
  ike->children_in = g_hash_table_new (NULL, NULL);
  ike->children_out = g_hash_table_new (NULL, NULL);
  ike->dead_sas = g_ptr_array_new ();
  ike->dead_exchanges = g_ptr_array_new ();
  ike->adapters = g_ptr_array_new ();
  ike->acquires = g_hash_table_new_full (NULL, NULL, NULL, acquire_state_free);
  engine_inflight_init (ike);
  engine_instances_init (ike);
  return ike;
}

static void
reap (ModikeIke *ike)
{
  while (ike->dead_exchanges->len > 0 || ike->dead_sas->len > 0)
    {
      while (ike->dead_exchanges->len > 0)
        engine_exchange_free (g_ptr_array_steal_index (ike->dead_exchanges, ike->dead_exchanges->len - 1));
      while (ike->dead_sas->len > 0)
        engine_sa_free (g_ptr_array_steal_index (ike->dead_sas, ike->dead_sas->len - 1));
    }
}

void
modike_ike_free (ModikeIke *ike)
{
  if (ike == NULL)
    return;
  /* Adapters first (they are attached to the datapath), then the datapath;
   * the SAs go silently with the SAD. Crypto jobs in flight first: their
   * results are dropped. */
  engine_crypto_free (ike);
  engine_adapters_destroy_all (ike);
  engine_dp_stop (ike);
  g_hash_table_destroy (ike->acquires);
  ike->acquires = NULL;
  reap (ike);
  while (ike->sas->len > 0)
    {
      ModikeIkeSa *sa = g_ptr_array_steal_index (ike->sas, ike->sas->len - 1);

      sa->dead = TRUE;
      /* Children's SAD entries go with the SAD. */
      engine_sa_free (sa);
      reap (ike);
    }
  g_ptr_array_unref (ike->sas);
  g_ptr_array_unref (ike->adapters);
  g_ptr_array_unref (ike->dead_sas);
  g_ptr_array_unref (ike->dead_exchanges);
  g_hash_table_destroy (ike->by_icookie);
  engine_half_open_free (ike);
  engine_inflight_free (ike);
  g_hash_table_destroy (ike->by_peer);
  g_hash_table_destroy (ike->children_in);
  g_hash_table_destroy (ike->children_out);
  modike_sad_free (ike->sad);
  modike_spd_free (ike->spd);
  engine_instances_free (ike);
  g_free (ike);
}

gboolean
modike_ike_set_crypto_threads (ModikeIke *ike, guint threads, GError **error)
{
  g_return_val_if_fail (threads <= MODIKE_CRYPTO_THREADS_MAX, FALSE);
  return engine_crypto_set_threads (ike, threads, error);
}

void
modike_ike_set_observer (ModikeIke *ike, const ModikeIkeObserver *obs, gpointer user)
{
  if (obs != NULL)
    ike->obs = *obs;
  else
    memset (&ike->obs, 0, sizeof ike->obs);
  ike->obs_user = user;
}

ModikeSad *
modike_ike_get_sad (ModikeIke *ike)
{
  return ike->sad;
}

ModikeSpd *
modike_ike_get_spd (ModikeIke *ike)
{
  return ike->spd;
}

const ModikeIkeStats *
modike_ike_get_stats (ModikeIke *ike)
{
  return &ike->stats;
}

guint
modike_ike_count_sas (ModikeIke *ike, gboolean established_only)
{
  guint n = 0;

  for (guint i = 0; i < ike->sas->len; i++)
    {
      ModikeIkeSa *sa = g_ptr_array_index (ike->sas, i);

      if (!sa->dead && (!established_only || sa->state == SA_ESTABLISHED))
        n++;
    }
  return n;
}

void
engine_enter (ModikeIke *ike)
{
  ike->depth++;
}

void
engine_leave (ModikeIke *ike)
{
  g_assert (ike->depth > 0);
  if (--ike->depth == 0)
    reap (ike);
}

guint
engine_timer_add (ModikeIke *ike, guint ms, GSourceFunc fn, gpointer data)
{
  return ike->env.timer_add (ike->env.env, ms, fn, data);
}

gboolean
engine_timer_fire (ModikeIke *ike, guint *id, EngineTimerWork work, gpointer data)
{
  *id = 0; /* fired: the id is no longer valid to cancel */
  engine_enter (ike);
  work (data);
  engine_leave (ike);
  return G_SOURCE_REMOVE;
}

void
engine_timer_cancel (ModikeIke *ike, guint *id)
{
  if (*id != 0)
    {
      ike->env.timer_remove (ike->env.env, *id);
      *id = 0;
    }
}

guint
engine_ms_from_s (guint64 s)
{
  return s >= G_MAXUINT / 1000 ? G_MAXUINT : (guint) (s * 1000);
}

/* ---- lookups ---- */

static void
sa_register (ModikeIke *ike, ModikeIkeSa *sa)
{
  memcpy (&sa->icookie_key, sa->icookie, sizeof sa->icookie_key);
  sa->sas_pos = ike->sas->len;
  g_ptr_array_add (ike->sas, sa);
  g_hash_table_insert (ike->by_icookie, &sa->icookie_key, sa);
}

static ModikeIkeSa *
lookup_sa (ModikeIke *ike, const ModikeHeader *hdr)
{
  guint64 key;
  ModikeIkeSa *sa;

  memcpy (&key, hdr->icookie, sizeof key);
  sa = g_hash_table_lookup (ike->by_icookie, &key);
  if (sa == NULL || sa->dead)
    return NULL;
  if (sa->rcookie_set && memcmp (hdr->rcookie, zero_cookie, MODIKE_COOKIE_LEN) != 0 &&
      memcmp (hdr->rcookie, sa->rcookie, MODIKE_COOKIE_LEN) != 0)
    return NULL;
  return sa;
}

ModikeIkeSa *
modike_ike_find_sa (ModikeIke *ike, const guint8 *icookie, const guint8 *rcookie)
{
  ModikeHeader hdr = { 0 };

  memcpy (hdr.icookie, icookie, MODIKE_COOKIE_LEN);
  if (rcookie != NULL)
    memcpy (hdr.rcookie, rcookie, MODIKE_COOKIE_LEN);
  return lookup_sa (ike, &hdr);
}

const ModikePeerConfig *
engine_find_peer (ModikeIke *ike, const ModikeAddr *local, const ModikeAddr *remote, guint8 exchange,
                  const ModikeIdPayload *peer_id)
{
  const ModikePeerConfig *best = NULL;
  int best_score = -1;

  if (ike->cfg == NULL || ike->cfg->peers == NULL)
    return NULL;
  for (guint i = 0; i < ike->cfg->peers->len; i++)
    {
      const ModikePeerConfig *p = g_ptr_array_index (ike->cfg->peers, i);
      int score = 0;

      if (p->remote.family != 0 && !modike_addr_equal_ip (&p->remote, remote))
        continue;
      if (p->local.family != 0 && local != NULL && local->family != 0 && !modike_addr_equal_ip (&p->local, local))
        continue;
      /* Aggressive Mode only where the config asks for it. */
      if (exchange == MODIKE_EX_AGGRESSIVE && p->exchange != MODIKE_EX_AGGRESSIVE)
        continue;
      if (p->remote.family != 0)
        score += 2;
      if (peer_id != NULL && p->remote_id_type != 0)
        {
          if (!p1_id_matches (p, peer_id))
            continue;
          score += 4;
        }
      if (score > best_score)
        {
          best = p;
          best_score = score;
        }
    }
  return best;
}

gboolean
engine_sa_is_first_with_peer (ModikeIkeSa *sa)
{
  g_autoptr (GPtrArray) sas = engine_sa_peer_sas (sa);

  for (guint i = 0; i < sas->len; i++)
    if (g_ptr_array_index (sas, i) != sa)
      return FALSE;
  return TRUE;
}

guint32
engine_alloc_msgid (ModikeIkeSa *sa)
{
  guint32 id;

  do
    modike_random_nonce (&id, sizeof id);
  while (id == 0 || engine_sa_exchange (sa, id) != NULL || engine_sa_was_done (sa, id));
  return id;
}

/* ---- receive ---- */

static ModikeIkeSa *
new_responder_sa (ModikeIke *ike, const ModikeAddr *local, const ModikeAddr *remote, const ModikeHeader *hdr)
{
  const ModikePeerConfig *peer;
  ModikeAddr l = *local;
  ModikeIkeSa *sa;
  char buf[MODIKE_ADDR_STRLEN];

  /* Before anything is allocated for it, or the peers searched: a flood
   * costs no memory and O(1) work per message. */
  if (!engine_half_open_admit (ike, remote, hdr->exchange))
    return NULL;
  peer = engine_find_peer (ike, local, remote, hdr->exchange, NULL);
  if (peer == NULL)
    {
      engine_half_open_no_peer (ike, remote, hdr->exchange);
      return NULL;
    }
  if (l.family == 0 && peer->local.family != 0)
    {
      l = peer->local;
      l.port = local->port;
    }
  sa = engine_sa_new (ike, MODIKE_ROLE_RESPONDER, hdr->exchange, &l, remote, peer);
  memcpy (sa->icookie, hdr->icookie, MODIKE_COOKIE_LEN);
  sa_register (ike, sa);
  engine_half_open_enter (sa);
  engine_sa_arm_half_open (sa);
  ELOG_INFO (sa, NULL, "%s request from %s", engine_exchange_name (hdr->exchange),
             modike_addr_format (remote, buf, sizeof buf));
  return sa;
}

/* The plugins' receive hooks, in registration order, on *packet; FALSE
 * when one consumed it. */
static gboolean
run_rx_hooks (ModikeIke *ike, const ModikeAddr *local, const ModikeAddr *remote, GBytes **packet)
{
  guint n = modike_registry_rx_hooks (ike->registry);

  for (guint i = 0; i < n; i++)
    {
      gpointer user = NULL;
      ModikeRxHookFunc fn = modike_registry_rx_hook (ike->registry, i, &user);
      GBytes *replace = NULL;

      switch (fn (ike, local, remote, *packet, &replace, user))
        {
        case MODIKE_RX_PASS:
          g_clear_pointer (&replace, g_bytes_unref);
          break;
        case MODIKE_RX_REPLACE:
          if (replace == NULL)
            {
              ike->stats.rx_dropped++;
              engine_log (G_LOG_LEVEL_MESSAGE, NULL, NULL, "a receive hook replaced a datagram by nothing: dropped");
              return FALSE;
            }
          g_bytes_unref (*packet);
          *packet = replace;
          break;
        case MODIKE_RX_CONSUME:
        default:
          g_clear_pointer (&replace, g_bytes_unref);
          engine_log (G_LOG_LEVEL_DEBUG, NULL, NULL, "datagram of %" G_GSIZE_FORMAT " bytes taken by a receive hook",
                      g_bytes_get_size (*packet));
          return FALSE;
        }
    }
  return TRUE;
}

void
modike_ike_receive (ModikeIke *ike, const ModikeAddr *local, const ModikeAddr *remote, const guint8 *data, gsize len)
{
  g_autoptr (GBytes) packet = NULL;
  g_autoptr (ModikeMessage) msg = NULL;
  g_autoptr (GError) error = NULL;
  ModikeIkeSa *sa;
  ModikeExchange *x;
  gboolean new_sa = FALSE, new_x = FALSE;
  char buf[MODIKE_ADDR_STRLEN];
  const ModikeHeader *hdr;

  engine_enter (ike);
  ike->stats.rx_packets++;
  packet = g_bytes_new (data, len);
  if (!run_rx_hooks (ike, local, remote, &packet))
    goto out;
  data = g_bytes_get_data (packet, &len);
  msg = modike_message_parse (packet, &error);
  if (msg == NULL)
    {
      ike->stats.rx_garbage++;
      engine_log (G_LOG_LEVEL_MESSAGE, NULL, NULL, "%" G_GSIZE_FORMAT " bytes from %s dropped: %s", len,
                  modike_addr_format (remote, buf, sizeof buf), error->message);
      goto out;
    }
  hdr = &msg->hdr;
  if (memcmp (hdr->icookie, zero_cookie, MODIKE_COOKIE_LEN) == 0)
    {
      ike->stats.rx_garbage++;
      engine_log (G_LOG_LEVEL_MESSAGE, NULL, NULL, "message from %s with a zero initiator cookie dropped",
                  modike_addr_format (remote, buf, sizeof buf));
      goto out;
    }
  sa = lookup_sa (ike, hdr);
  if (sa == NULL)
    {
      if ((hdr->exchange == MODIKE_EX_MAIN || hdr->exchange == MODIKE_EX_AGGRESSIVE) && hdr->msgid == 0 &&
          !(hdr->flags & MODIKE_FLAG_ENCRYPTION) && memcmp (hdr->rcookie, zero_cookie, MODIKE_COOKIE_LEN) == 0)
        {
          sa = new_responder_sa (ike, local, remote, hdr);
          if (sa == NULL)
            goto out;
          new_sa = TRUE;
        }
      else
        {
          g_autofree char *ic = modike_hex (hdr->icookie, MODIKE_COOKIE_LEN);
          g_autofree char *rc = modike_hex (hdr->rcookie, MODIKE_COOKIE_LEN);

          ike->stats.rx_unknown_sa++;
          engine_log (G_LOG_LEVEL_MESSAGE, NULL, NULL, "%s message from %s for unknown SA i=%s r=%s dropped",
                      engine_exchange_name (hdr->exchange), modike_addr_format (remote, buf, sizeof buf), ic, rc);
          goto out;
        }
    }
  /* A peer behind a NAT may come from a new address: the exchange
   * decides, and only an authenticated message moves the SA. */
  if (!modike_addr_equal_ip (remote, &sa->remote) && !(sa->nat_remote && sa->floated))
    {
      ike->stats.rx_dropped++;
      ELOG_MSG (sa, NULL, "message from unexpected address %s dropped", modike_addr_format (remote, buf, sizeof buf));
      goto out;
    }
  if (hdr->exchange == MODIKE_EX_INFO && !(hdr->flags & MODIKE_FLAG_ENCRYPTION))
    {
      engine_plain_info (sa, msg);
      goto out;
    }
  /* We initiated from "any" address: now we know ours (IDs use it). */
  if (local->family == sa->local.family && local->family != 0 &&
      memcmp (sa->local.addr, zero_addr, modike_addr_len (&sa->local)) == 0)
    {
      guint16 port = sa->local.port;

      memcpy (sa->local.addr, local->addr, sizeof sa->local.addr);
      sa->local.port = port;
    }

  x = engine_sa_exchange (sa, hdr->msgid);
  if (x != NULL && !x->dead && engine_exchange_is_replay (x, data, len))
    goto out;
  if ((x == NULL || x->dead) && engine_sa_was_done (sa, hdr->msgid))
    {
      ike->stats.rx_duplicates++;
      ELOG_DEBUG (sa, NULL, "%s message %08x of a finished exchange ignored", engine_exchange_name (hdr->exchange),
                  hdr->msgid);
      goto out;
    }
  if (x == NULL || x->dead)
    {
      if (hdr->msgid == 0)
        {
          if (!new_sa)
            {
              ike->stats.rx_dropped++;
              ELOG_MSG (sa, NULL, "%s message with message ID 0 for a finished phase 1 dropped",
                        engine_exchange_name (hdr->exchange));
              goto out;
            }
        }
      else if (!sa->have_keys || !(hdr->flags & MODIKE_FLAG_ENCRYPTION) ||
               (!modike_ike_sa_is_established (sa) && hdr->exchange != MODIKE_EX_INFO))
        {
          ike->stats.rx_dropped++;
          ELOG_MSG (sa, NULL, "%s message %08x before phase 1 is established (or unencrypted) dropped",
                    engine_exchange_name (hdr->exchange), hdr->msgid);
          goto out;
        }
      else if (!modike_registry_has_exchange (ike->registry, hdr->exchange))
        {
          ike->stats.rx_dropped++;
          ELOG_MSG (sa, NULL, "unsupported exchange type %u dropped", hdr->exchange);
          goto out;
        }
      x = engine_exchange_new (sa, hdr->exchange, hdr->msgid, MODIKE_ROLE_RESPONDER);
      new_x = TRUE;
    }
  x->rx_local = *local;
  x->rx_remote = *remote;
  engine_exchange_receive (x, g_steal_pointer (&msg), new_x);

out:
  engine_leave (ike);
}

/* ---- initiation ---- */

ModikeIkeSa *
engine_start_p1 (ModikeIke *ike, const ModikePeerConfig *peer, GError **error)
{
  return engine_start_p1_as (ike, peer, NULL, 0, NULL, FALSE, error);
}

ModikeIkeSa *
engine_start_p1_as (ModikeIke *ike, const ModikePeerConfig *peer, const ModikeAddr *local_as, guint8 id_type,
                    const char *id, gboolean own, GError **error)
{
  ModikeAddr local = local_as != NULL ? *local_as : peer->local, remote = peer->remote;
  ModikeIkeSa *sa;
  ModikeExchange *x;
  guint8 exchange = peer->exchange == MODIKE_EX_AGGRESSIVE ? MODIKE_EX_AGGRESSIVE : MODIKE_EX_MAIN;

  if (remote.family == 0)
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_NO_PEER, "peer %s has no remote address to initiate to",
                   peer->name);
      return NULL;
    }
  if (remote.port == 0)
    remote.port = 500;
  if (local.family == 0)
    {
      /* A listen address of the same family, else "any" (the daemon picks). */
      for (guint i = 0; ike->cfg != NULL && ike->cfg->listen != NULL && i < ike->cfg->listen->len; i++)
        {
          const ModikeAddr *l = &g_array_index (ike->cfg->listen, ModikeAddr, i);

          if (l->family == remote.family)
            {
              local = *l;
              break;
            }
        }
      if (local.family == 0)
        local.family = remote.family;
    }
  if (local.port == 0)
    local.port = 500;
  sa = engine_sa_new (ike, MODIKE_ROLE_INITIATOR, exchange, &local, &remote, peer);
  if (own)
    {
      /* '#' after '/': no configured peer's or client's key. */
      sa->own_key = g_strdup_printf ("%s/#%u", peer->name, sa->serial);
      engine_sa_set_peer (sa, peer);
    }
  sa->own_id_type = id_type;
  sa->own_id = g_strdup (id);
  sa_register (ike, sa);
  engine_sa_arm_half_open (sa);
  ELOG_INFO (sa, NULL, "initiating %s", exchange == MODIKE_EX_AGGRESSIVE ? "Aggressive Mode" : "Main Mode");
  x = engine_exchange_new (sa, exchange, 0, MODIKE_ROLE_INITIATOR);
  if (!engine_exchange_initiate (x, error))
    return NULL;
  if (sa->dead)
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "peer %s: phase 1 failed to start", peer->name);
      return NULL;
    }
  return sa;
}

/* An SA of the configured peer to run Quick Modes on. A responder-only
 * entry has none: its clients' SAs are theirs, and we cannot start one. */
static ModikeIkeSa *
find_any_sa (ModikeIke *ike, const char *peer)
{
  GPtrArray *sas = engine_peer_sas (ike, peer);
  ModikeIkeSa *sa = engine_best_established (sas, NULL);

  if (sa != NULL && !sa->rekeyed)
    return sa;
  for (guint i = 0; sas != NULL && i < sas->len; i++)
    {
      ModikeIkeSa *o = g_ptr_array_index (sas, i);

      if (o->state != SA_ESTABLISHED)
        return o;
    }
  return sa;
}

/* The SAs a policy's children live on: the peer's, or for an instance
 * those of the client it belongs to (a new array). */
static GPtrArray *
policy_sas (ModikeIke *ike, const char *peer, guint32 spd_id)
{
  const EngineInstance *inst = engine_instance_find (ike, spd_id);
  GPtrArray *sas;

  if (inst != NULL)
    return engine_sa_peer_sas (inst->sa);
  sas = engine_peer_sas (ike, peer);
  return sas != NULL ? g_ptr_array_ref (sas) : g_ptr_array_new ();
}

static gboolean
child_exists (ModikeIke *ike, const char *peer, guint32 spd_id)
{
  g_autoptr (GPtrArray) sas = policy_sas (ike, peer, spd_id);

  for (guint i = 0; sas != NULL && i < sas->len; i++)
    {
      ModikeIkeSa *sa = g_ptr_array_index (sas, i);

      for (guint j = 0; j < sa->children->len; j++)
        {
          EngineChild *c = g_ptr_array_index (sa->children, j);

          if (c->spd_id == spd_id && !c->rekeyed)
            return TRUE;
        }
      for (guint j = 0; j < sa->pending_spd->len; j++)
        if (g_array_index (sa->pending_spd, guint32, j) == spd_id)
          return TRUE;
      if (engine_gate_waits_for (sa, spd_id))
        return TRUE;
    }
  return engine_policy_negotiating (ike, spd_id, peer, TRUE);
}

static gboolean
child_for (ModikeIke *ike, ModikeIkeSa *sa, guint32 spd_id, GError **error)
{
  if (modike_ike_sa_is_established (sa))
    return engine_start_qm (sa, spd_id, 0, error);
  g_array_append_val (sa->pending_spd, spd_id);
  return TRUE;
}

gboolean
modike_ike_initiate (ModikeIke *ike, const char *name, GError **error)
{
  const ModikePeerConfig *peer = ike->cfg != NULL ? modike_config_find_peer (ike->cfg, name) : NULL;
  g_autoptr (GPtrArray) entries = NULL;
  ModikeIkeSa *sa;
  gboolean ok = TRUE;

  if (peer == NULL)
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_NO_PEER, "no peer named '%s'", name);
      return FALSE;
    }
  engine_enter (ike);
  sa = find_any_sa (ike, peer->name);
  if (sa == NULL)
    sa = engine_start_p1 (ike, peer, error);
  if (sa == NULL)
    {
      ok = FALSE;
      goto out;
    }
  entries = modike_spd_entries (ike->spd);
  for (guint i = 0; entries != NULL && i < entries->len && !sa->dead; i++)
    {
      const ModikeSpdEntry *e = g_ptr_array_index (entries, i);

      if (e->action != MODIKE_SPD_PROTECT || g_strcmp0 (e->peer, peer->name) != 0 ||
          !engine_instance_usable (sa, e->id) || child_exists (ike, peer->name, e->id))
        continue;
      if (!child_for (ike, sa, e->id, error))
        {
          ok = FALSE;
          break;
        }
    }
out:
  engine_leave (ike);
  return ok;
}

ModikeIkeSa *
modike_ike_initiate_as (ModikeIke *ike, const char *name, const ModikeAddr *local, guint8 local_id_type,
                        const char *local_id, GError **error)
{
  const ModikePeerConfig *peer = ike->cfg != NULL ? modike_config_find_peer (ike->cfg, name) : NULL;
  g_autoptr (GPtrArray) entries = NULL;
  ModikeIkeSa *sa;

  if (peer == NULL)
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_NO_PEER, "no peer named '%s'", name);
      return NULL;
    }
  if (local_id_type != 0 && local_id == NULL)
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "peer %s: identity type %u without a value", name,
                   local_id_type);
      return NULL;
    }
  engine_enter (ike);
  sa = engine_start_p1_as (ike, peer, local, local_id_type, local_id, TRUE, error);
  /* Its own Quick Modes, whatever other SAs of the peer carry. */
  entries = sa != NULL ? modike_spd_entries (ike->spd) : NULL;
  for (guint i = 0; entries != NULL && i < entries->len && !sa->dead; i++)
    {
      const ModikeSpdEntry *e = g_ptr_array_index (entries, i);

      if (e->action == MODIKE_SPD_PROTECT && g_strcmp0 (e->peer, peer->name) == 0)
        g_array_append_val (sa->pending_spd, e->id);
    }
  if (sa != NULL && sa->dead)
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "peer %s: phase 1 failed to start", name);
      sa = NULL;
    }
  engine_leave (ike);
  return sa;
}

guint
modike_ike_timer_add (ModikeIke *ike, guint ms, GSourceFunc fn, gpointer data)
{
  return engine_timer_add (ike, ms, fn, data);
}

void
modike_ike_timer_remove (ModikeIke *ike, guint id)
{
  if (id != 0)
    ike->env.timer_remove (ike->env.env, id);
}

gboolean
modike_ike_initiate_child (ModikeIke *ike, guint32 spd_id, GError **error)
{
  const ModikeSpdEntry *e = modike_spd_get (ike->spd, spd_id);
  const EngineInstance *inst = engine_instance_find (ike, spd_id);
  const ModikePeerConfig *peer;
  ModikeIkeSa *sa;
  gboolean ok;

  if (e == NULL || e->action != MODIKE_SPD_PROTECT || e->peer == NULL)
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "policy %u is not a PROTECT policy", spd_id);
      return FALSE;
    }
  peer = ike->cfg != NULL ? modike_config_find_peer (ike->cfg, e->peer) : NULL;
  if (peer == NULL)
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_NO_PEER, "policy %s: no peer named '%s'", e->name,
                   e->peer);
      return FALSE;
    }
  engine_enter (ike);
  /* An instance's children go on the IKE SA of the client it belongs to. */
  sa = inst != NULL ? engine_instance_sa (inst) : find_any_sa (ike, peer->name);
  if (sa == NULL && inst != NULL)
    g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "policy %s: its IKE SA is not established",
                 e->name);
  else if (sa == NULL)
    sa = engine_start_p1 (ike, peer, error);
  ok = sa != NULL && child_for (ike, sa, spd_id, error);
  engine_leave (ike);
  return ok;
}

/* Every SA of the entry: for a responder-only one, those of all its clients. */
void
modike_ike_terminate (ModikeIke *ike, const char *peer)
{
  engine_enter (ike);
  for (guint i = ike->sas->len; i-- > 0;)
    {
      ModikeIkeSa *sa;

      if (i >= ike->sas->len)
        continue;
      sa = g_ptr_array_index (ike->sas, i);
      if (!sa->dead && g_strcmp0 (sa->peer_name, peer) == 0)
        engine_sa_delete (sa, TRUE);
    }
  engine_leave (ike);
}

/* ---- host calls from the datapath (queued to the main loop) ---- */

#define ACQUIRE_INTERVAL_US G_USEC_PER_SEC

/* A child for the policy exists, or a Quick Mode for it runs either way. */
static gboolean
policy_busy (ModikeIke *ike, const char *peer, guint32 spd_id)
{
  return child_exists (ike, peer, spd_id) || engine_policy_negotiating (ike, spd_id, peer, FALSE);
}

static gboolean acquire_deferred_cb (gpointer data);

static void
acquire_run (ModikeIke *ike, guint32 spd_id, const ModikeSelector *sel)
{
  const ModikeSpdEntry *e = modike_spd_get (ike->spd, spd_id);
  const ModikePeerConfig *peer;
  gint64 now = ike->env.now_us (ike->env.env);
  AcquireState *st;
  g_autoptr (GError) error = NULL;
  char l[MODIKE_ADDR_STRLEN] = "?", r[MODIKE_ADDR_STRLEN] = "?";

  if (e == NULL || e->action != MODIKE_SPD_PROTECT || e->peer == NULL)
    {
      engine_log (G_LOG_LEVEL_DEBUG, NULL, NULL, "acquire for policy %u ignored: not a protect policy", spd_id);
      return;
    }
  peer = ike->cfg != NULL ? modike_config_find_peer (ike->cfg, e->peer) : NULL;
  if (peer != NULL && peer->remote.family == 0 && engine_instance_find (ike, spd_id) == NULL)
    {
      /* Which of its clients the packet is for is not ours to guess (an
       * instance knows its client). */
      engine_log (G_LOG_LEVEL_DEBUG, NULL, NULL, "acquire for policy %s ignored: peer %s is responder-only", e->name,
                  e->peer);
      return;
    }
  if (policy_busy (ike, e->peer, spd_id))
    {
      engine_log (G_LOG_LEVEL_DEBUG, NULL, NULL, "acquire for policy %s ignored: SA up or being negotiated",
                  e->name);
      return;
    }
  st = g_hash_table_lookup (ike->acquires, GUINT_TO_POINTER (spd_id));
  if (st == NULL)
    {
      st = g_new0 (AcquireState, 1);
      st->ike = ike;
      st->spd_id = spd_id;
      st->last_us = G_MININT64;
      g_hash_table_insert (ike->acquires, GUINT_TO_POINTER (spd_id), st);
    }
  /* A peer that keeps failing is tried at most once a second; the acquire
   * is deferred rather than lost (a datapath may not repeat it). */
  if (st->last_us != G_MININT64 && now - st->last_us < ACQUIRE_INTERVAL_US)
    {
      if (st->timer == 0)
        st->timer = engine_timer_add (ike, (guint) ((st->last_us + ACQUIRE_INTERVAL_US - now + 999) / 1000),
                                      acquire_deferred_cb, st);
      engine_log (G_LOG_LEVEL_DEBUG, NULL, NULL, "acquire for policy %s deferred: rate limit", e->name);
      return;
    }
  st->last_us = now;
  if (sel != NULL)
    {
      modike_addr_format (&sel->local, l, sizeof l);
      modike_addr_format (&sel->remote, r, sizeof r);
    }
  engine_log (G_LOG_LEVEL_INFO, NULL, NULL, "acquire for policy %s (%s -> %s proto %u): negotiating with %s", e->name,
              l, r, sel != NULL ? sel->proto : 0, e->peer);
  if (!modike_ike_initiate_child (ike, spd_id, &error))
    engine_log (G_LOG_LEVEL_MESSAGE, NULL, NULL, "acquire for policy %s: %s", e->name, error->message);
}

static void
acquire_deferred (gpointer data)
{
  AcquireState *st = data;

  acquire_run (st->ike, st->spd_id, NULL);
}

static gboolean
acquire_deferred_cb (gpointer data)
{
  AcquireState *st = data;

  return engine_timer_fire (st->ike, &st->timer, acquire_deferred, st);
}

void
engine_acquire (ModikeIke *ike, guint32 spd_id, const ModikeSelector *sel)
{
  engine_enter (ike);
  acquire_run (ike, spd_id, sel);
  engine_leave (ike);
}

void
engine_expire (ModikeIke *ike, ModikeDirection dir, guint32 spi, guint32 reqid, gboolean hard)
{
  EngineChild *c;
  g_autoptr (GError) error = NULL;
  const char *which = dir == MODIKE_DIR_IN ? "in" : "out";

  engine_enter (ike);
  c = engine_find_child (ike, dir, spi, reqid);
  if (c == NULL)
    {
      engine_log (G_LOG_LEVEL_DEBUG, NULL, NULL, "%s expiry of unknown ESP SA %s=%08x ignored", hard ? "hard" : "soft",
                  which, spi);
      goto out;
    }
  if (hard)
    {
      ELOG_INFO (c->sa, NULL, "ESP SA %s=%08x reached its hard limit in the datapath: deleting", which, spi);
      engine_child_remove (c, TRUE);
      goto out;
    }
  if (c->rekeyed || c->dp_failed)
    {
      ELOG_DEBUG (c->sa, NULL, "soft expiry of ESP SA %s=%08x: already being replaced", which, spi);
      goto out;
    }
  /* Volume or sequence numbers run out before the time does: rekey now,
   * whichever end ran the Quick Mode (only one end watches the clock). */
  ELOG_INFO (c->sa, NULL, "ESP SA %s=%08x reached its soft limit in the datapath", which, spi);
  engine_timer_cancel (ike, &c->rekey_timer);
  if (!engine_child_rekey (c, &error))
    {
      g_autofree char *policy = g_strdup (c->policy);
      guint32 spd_id = c->spd_id;

      ELOG_MSG (c->sa, NULL, "rekey of ESP SA in=%08x: %s; starting over with the policy", c->spi_in,
                error->message);
      g_clear_error (&error);
      if (!modike_ike_initiate_child (ike, spd_id, &error))
        engine_log (G_LOG_LEVEL_MESSAGE, NULL, NULL, "policy %s: %s", policy, error->message);
    }
out:
  engine_leave (ike);
}

/* ---- configuration ---- */

guint32
engine_renumber_id (const EngineRenumber *r, guint32 id)
{
  gpointer to;

  if (g_hash_table_lookup_extended (r->map, GUINT_TO_POINTER (id), NULL, &to))
    return GPOINTER_TO_UINT (to);
  return r->others_stay ? id : 0;
}

void
engine_policies_renumber (ModikeIke *ike, const EngineRenumber *r, GPtrArray *sas)
{
  if (sas == NULL)
    sas = ike->sas;
  for (guint i = 0; i < sas->len; i++)
    {
      ModikeIkeSa *sa = g_ptr_array_index (sas, i);
      guint kept = 0;

      for (guint j = 0; j < sa->pending_spd->len; j++)
        {
          guint32 id = engine_renumber_id (r, g_array_index (sa->pending_spd, guint32, j));

          if (id != 0)
            g_array_index (sa->pending_spd, guint32, kept++) = id;
        }
      g_array_set_size (sa->pending_spd, kept);
      engine_gate_renumber (sa, r);
    }
  engine_policy_tags_renumber (ike, r);
}

gboolean
modike_ike_set_config (ModikeIke *ike, ModikeConfig *cfg, GError **error)
{
  g_autoptr (GPtrArray) drop = g_ptr_array_new ();
  g_autoptr (GHashTable) old_names = g_hash_table_new_full (NULL, NULL, NULL, g_free);
  g_autoptr (GHashTable) renumber = g_hash_table_new (NULL, NULL);
  g_autoptr (GHashTable) new_ids = g_hash_table_new (g_str_hash, g_str_equal); /* name -> id, PROTECT */
  g_autoptr (GPtrArray) entries = NULL;
  GHashTableIter it;
  gpointer key, value;

  g_return_val_if_fail (cfg != NULL, FALSE);
  /* What can fail comes first, before anything of the old config changes:
   * the plugins' auth methods, the datapath (started once) and the virtual
   * adapters. */
  if (!modike_registry_resolve_auth (ike->registry, cfg, error) || !engine_dp_start (ike, error) ||
      !engine_adapters_prepare (ike, cfg, error))
    return FALSE;
  engine_enter (ike);
  /* Policy ids are about to change. */
  g_hash_table_remove_all (ike->acquires);
  /* SAs whose peer config changed go; the others follow the new config. */
  for (guint i = 0; i < ike->sas->len; i++)
    {
      ModikeIkeSa *sa = g_ptr_array_index (ike->sas, i);
      const ModikePeerConfig *np = sa->peer_name != NULL ? modike_config_find_peer (cfg, sa->peer_name) : NULL;

      if (sa->dead)
        continue;
      if (np != NULL && sa->peer != NULL && (sa->peer == np || modike_peer_config_equal (sa->peer, np)))
        engine_sa_set_peer (sa, np);
      else
        g_ptr_array_add (drop, sa);
    }
  for (guint i = 0; i < drop->len; i++)
    {
      ModikeIkeSa *sa = g_ptr_array_index (drop, i);

      ELOG_INFO (sa, NULL, "peer config changed or removed: deleting the SA");
      engine_sa_delete (sa, TRUE);
    }
  ike->cfg = cfg;

  /* Quick Modes still to start (pending, waiting at the phase-2 gate) or
   * running (their policy tags) follow their policy by name across the
   * SPD rebuild. */
  entries = modike_spd_entries (ike->spd);
  for (guint i = 0; entries != NULL && i < entries->len; i++)
    {
      const ModikeSpdEntry *e = g_ptr_array_index (entries, i);

      g_hash_table_insert (old_names, GUINT_TO_POINTER (e->id), g_strdup (e->name));
    }
  g_clear_pointer (&entries, g_ptr_array_unref);

  modike_spd_clear (ike->spd);
  for (guint i = 0; cfg->policies != NULL && i < cfg->policies->len; i++)
    {
      const ModikeSpdEntry *e = g_ptr_array_index (cfg->policies, i);
      ModikeSpdEntry *copy;

      /* A template's instances take its place (instances.c). */
      if (e->virtual_side != MODIKE_VIRTUAL_NONE)
        continue;
      copy = modike_spd_entry_dup (e);
      copy->priority = engine_policy_priority (i, FALSE);
      modike_spd_add (ike->spd, copy);
    }
  engine_instances_rebuild (ike);

  /* Children follow their policy by name into the new SPD, as do the
   * ids above (renumber: old id -> new id). */
  entries = modike_spd_entries (ike->spd);
  for (guint k = 0; entries != NULL && k < entries->len; k++)
    {
      const ModikeSpdEntry *e = g_ptr_array_index (entries, k);

      if (e->action == MODIKE_SPD_PROTECT)
        g_hash_table_insert (new_ids, e->name, GUINT_TO_POINTER (e->id));
    }
  g_hash_table_iter_init (&it, old_names);
  while (g_hash_table_iter_next (&it, &key, &value))
    if (g_hash_table_contains (new_ids, value))
      g_hash_table_insert (renumber, key, g_hash_table_lookup (new_ids, value));
  for (guint i = 0; i < ike->sas->len; i++)
    {
      ModikeIkeSa *sa = g_ptr_array_index (ike->sas, i);

      for (guint j = sa->children->len; j-- > 0;)
        {
          EngineChild *c = g_ptr_array_index (sa->children, j);
          guint32 id = c->policy != NULL ? GPOINTER_TO_UINT (g_hash_table_lookup (new_ids, c->policy)) : 0;

          if (id != 0)
            c->spd_id = id;
          else
            engine_child_remove (c, TRUE);
        }
    }
  engine_policies_renumber (ike, &(EngineRenumber) { .map = renumber }, NULL);

  engine_dp_policies_set (ike);
  engine_adapters_sync_routes (ike, cfg);
  if (!ike->started)
    {
      ike->started = TRUE;
      modike_registry_emit_start (ike->registry, ike);
    }
  engine_leave (ike);
  return TRUE;
}
