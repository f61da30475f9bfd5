/* ModikeExchange: one exchange in flight. Encryption with the IV chains,
 * send/retransmit with exponential backoff, replay answers, the run of
 * rows, handlers, payload claims and builders, and the verdicts. */
#include "engine-private.h"

#include <string.h>

#define LINGER_MAX_MS (600 * 1000)

ModikeExchange *
engine_exchange_new (ModikeIkeSa *sa, guint8 type, guint32 msgid, ModikeRole role)
{
  ModikeExchange *x = g_new0 (ModikeExchange, 1);

  x->sa = sa;
  x->type = type;
  x->msgid = msgid;
  x->role = role;
  /* Each exchange after phase 1 starts its own IV chain (RFC 2409 B). */
  if (msgid != 0 && sa->have_keys)
    {
      guint8 iv[MODIKE_HASH_MAX];

      modike_p2_iv (sa->choice.hash, sa->p1_iv, sa->block_len, msgid, iv);
      memcpy (x->iv, iv, sa->block_len);
      modike_memwipe (iv, sizeof iv);
    }
  engine_sa_exchanges_add (sa, x);
  return x;
}

void
engine_exchange_free (ModikeExchange *x)
{
  ModikeIke *ike;

  if (x == NULL)
    return;
  ike = x->sa->ike;
  engine_timer_cancel (ike, &x->timer);
  engine_timer_cancel (ike, &x->linger_timer);
  engine_offload_orphan (x);
  engine_exchange_release (x);
  if (x->destroy != NULL && x->data != NULL)
    x->destroy (x->data);
  g_clear_pointer (&x->last_sent, g_bytes_unref);
  g_clear_pointer (&x->outbox, g_bytes_unref);
  g_clear_pointer (&x->susp_msg, modike_message_free);
  modike_memwipe (x->iv, sizeof x->iv);
  modike_memwipe (x->iv_backup, sizeof x->iv_backup);
  g_free (x);
}

void
engine_exchange_discard (ModikeExchange *x)
{
  ModikeIke *ike = x->sa->ike;

  if (x->dead)
    return;
  x->dead = TRUE;
  engine_offload_orphan (x);
  engine_timer_cancel (ike, &x->timer);
  engine_timer_cancel (ike, &x->linger_timer);
  engine_sa_exchanges_steal (x->sa, x);
  g_ptr_array_add (ike->dead_exchanges, x);
}

guint8 *
engine_exchange_iv (ModikeExchange *x)
{
  return x->msgid == 0 ? x->sa->p1_iv : x->iv;
}

static gboolean
is_phase1 (const ModikeExchange *x)
{
  return x->msgid == 0 && (x->type == MODIKE_EX_MAIN || x->type == MODIKE_EX_AGGRESSIVE);
}

/* NAT-T moves to the float port from MM5/AM3 on (RFC 3947 4). */
static gboolean
may_float (const ModikeExchange *x, guint8 msg_no)
{
  if (!is_phase1 (x))
    return TRUE;
  return msg_no >= (x->type == MODIKE_EX_AGGRESSIVE ? 3 : 5);
}

/* ---- SDK accessors ---- */

ModikeIkeSa *
modike_exchange_get_sa (const ModikeExchange *x)
{
  return x->sa;
}

guint8
modike_exchange_get_type (const ModikeExchange *x)
{
  return x->type;
}

guint32
modike_exchange_get_msgid (const ModikeExchange *x)
{
  return x->msgid;
}

ModikeRole
modike_exchange_get_role (const ModikeExchange *x)
{
  return x->role;
}

guint
modike_exchange_get_state (const ModikeExchange *x)
{
  return x->state;
}

void
modike_exchange_set_data (ModikeExchange *x, gpointer data, GDestroyNotify destroy)
{
  if (x->destroy != NULL && x->data != NULL && x->data != data)
    x->destroy (x->data);
  x->data = data;
  x->destroy = destroy;
}

gpointer
modike_exchange_get_data (const ModikeExchange *x)
{
  return x->data;
}

void
modike_exchange_set_notify (ModikeExchange *x, guint16 notify_type)
{
  x->notify = notify_type;
}

gboolean
modike_exchange_run_builders (ModikeExchange *x, guint8 msg_no, ModikeBuilder *b, GError **error)
{
  GPtrArray *regs = modike_registry_builders_at (x->sa->ike->registry, x->type, msg_no);

  if (regs == NULL)
    return TRUE;
  for (guint i = 0; i < regs->len; i++)
    {
      const ModikeBuilderReg *r = g_ptr_array_index (regs, i);

      if (!r->fn (x, b, r->user, error))
        {
          g_prefix_error (error, "builder of plugin '%s' at %s message %u: ", modike_plugin_get_name (r->owner),
                          engine_exchange_name (x->type), msg_no);
          return FALSE;
        }
    }
  return TRUE;
}

/* ---- packets ---- */

/* Header + chain, encrypted in place of the chain when iv is given. */
static GBytes *
encode_packet (ModikeIkeSa *sa, guint8 exchange, guint32 msgid, guint8 first, const guint8 *data, gsize len,
               guint8 *iv, GError **error)
{
  ModikeHeader hdr = { 0 };

  memcpy (hdr.icookie, sa->icookie, MODIKE_COOKIE_LEN);
  memcpy (hdr.rcookie, sa->rcookie, MODIKE_COOKIE_LEN);
  hdr.next_payload = first;
  hdr.version = MODIKE_ISAKMP_VERSION;
  hdr.exchange = exchange;
  hdr.msgid = msgid;
  if (iv != NULL)
    {
      gsize bl = sa->block_len;
      gsize padded;
      g_autofree guint8 *buf = NULL;

      if (!sa->have_keys || bl == 0)
        {
          g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "no keys to encrypt with");
          return NULL;
        }
      /* Zero padding up to the block size; receivers go by payload lengths. */
      padded = len == 0 ? bl : (len + bl - 1) / bl * bl;
      buf = g_malloc0 (padded);
      memcpy (buf, data, len);
      hdr.flags |= MODIKE_FLAG_ENCRYPTION;
      if (!modike_cbc_encrypt (sa->choice.encr, sa->keys.enc_key, iv, buf, padded, error))
        {
          modike_memwipe (buf, padded);
          return NULL;
        }
      return modike_message_encode (&hdr, buf, padded);
    }
  return modike_message_encode (&hdr, data, len);
}

GBytes *
engine_build_packet (ModikeIkeSa *sa, guint8 exchange, guint32 msgid, ModikeBuilder *b, guint8 *iv, GError **error)
{
  guint8 first = MODIKE_PL_NONE;
  g_autoptr (GBytes) chain = modike_builder_serialize (b, 0, &first);
  gsize len;
  const guint8 *data = g_bytes_get_data (chain, &len);

  return encode_packet (sa, exchange, msgid, first, data, len, iv, error);
}

GBytes *
engine_build_hashed_packet (ModikeIkeSa *sa, guint8 exchange, guint32 msgid, ModikeBuilder *b, GBytes *extra,
                            guint8 *iv, GError **error)
{
  guint8 first = MODIKE_PL_NONE;
  g_autoptr (GBytes) chain = modike_builder_serialize (b, 0, &first);
  gsize len, hlen = modike_hash_len (sa->choice.hash);
  const guint8 *data = g_bytes_get_data (chain, &len);
  g_autoptr (GByteArray) all = NULL;
  guint8 gen[MODIKE_PAYLOAD_HEADER_LEN] = { first, 0, (4 + hlen) >> 8, (4 + hlen) & 0xff };
  guint8 hash[MODIKE_HASH_MAX];
  GBytes *packet;

  if (!sa->have_keys || hlen == 0)
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "no keys for the HASH payload");
      return NULL;
    }
  /* The payloads after HASH are exactly b's chain, so HASH goes in front
   * of it with a generic header of its own. */
  engine_hash_a (sa, FALSE, msgid, extra, data, len, hash);
  all = g_byte_array_sized_new (sizeof gen + hlen + len);
  g_byte_array_append (all, gen, sizeof gen);
  g_byte_array_append (all, hash, hlen);
  g_byte_array_append (all, data, len);
  modike_memwipe (hash, sizeof hash);
  packet = encode_packet (sa, exchange, msgid, MODIKE_PL_HASH, all->data, all->len, iv, error);
  modike_memwipe (all->data, all->len);
  return packet;
}

GBytes *
engine_decrypt (ModikeIkeSa *sa, const ModikeMessage *msg, guint8 *iv, GError **error)
{
  gsize len = 0;
  const guint8 *body = modike_message_body (msg, &len);
  guint8 *buf;

  if (!sa->have_keys || sa->block_len == 0)
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "encrypted message before keys exist");
      return NULL;
    }
  if (len == 0 || len % sa->block_len != 0)
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED,
                   "encrypted body of %" G_GSIZE_FORMAT " bytes is not a multiple of the block size %" G_GSIZE_FORMAT,
                   len, sa->block_len);
      return NULL;
    }
  buf = g_memdup2 (body, len);
  if (!modike_cbc_decrypt (sa->choice.encr, sa->keys.enc_key, iv, buf, len, error))
    {
      modike_memwipe (buf, len);
      g_free (buf);
      return NULL;
    }
  /* The plaintext may carry credentials (XAuth): wiped when the message goes. */
  return modike_bytes_new_wiped_take (buf, len);
}

static void
send_datagram (ModikeIkeSa *sa, const guint8 *data, gsize len)
{
  ModikeIke *ike = sa->ike;

  ike->stats.tx_packets++;
  sa->last_tx_us = ike->env.now_us (ike->env.env);
  if (sa->floated)
    {
      /* Non-ESP marker (RFC 3948 2.2) in front of IKE on the float port. */
      g_autofree guint8 *buf = g_malloc (len + 4);

      memset (buf, 0, 4);
      memcpy (buf + 4, data, len);
      if (!ike->env.send (ike->env.env, &sa->local, &sa->remote, buf, len + 4))
        ELOG_DEBUG (sa, NULL, "send of %" G_GSIZE_FORMAT " bytes failed", len + 4);
      return;
    }
  if (!ike->env.send (ike->env.env, &sa->local, &sa->remote, data, len))
    ELOG_DEBUG (sa, NULL, "send of %" G_GSIZE_FORMAT " bytes failed", len);
}

void
engine_transmit (ModikeIkeSa *sa, GBytes *packet, gboolean float_ok)
{
  engine_transmit_attempt (sa, packet, float_ok, 0);
}

void
engine_transmit_attempt (ModikeIkeSa *sa, GBytes *packet, gboolean float_ok, guint attempt)
{
  ModikeIke *ike = sa->ike;
  gpointer user = NULL;
  ModikeTxHookFunc hook = modike_registry_tx_hook (ike->registry, &user);
  g_autoptr (GPtrArray) parts = NULL;
  gsize len;
  const guint8 *data = g_bytes_get_data (packet, &len);

  if (float_ok && sa->float_port != 0 && !sa->floated)
    engine_sa_apply_float (sa);
  if (ike->env.send == NULL)
    {
      ELOG_MSG (sa, NULL, "no send function in the environment: packet of %" G_GSIZE_FORMAT " bytes dropped", len);
      return;
    }
  /* A plugin (fragmentation) may send the message as several datagrams;
   * it sees the whole message again on every resend. */
  if (hook != NULL)
    parts = hook (sa, packet, attempt, user);
  if (parts == NULL)
    {
      send_datagram (sa, data, len);
      return;
    }
  g_ptr_array_set_free_func (parts, (GDestroyNotify) g_bytes_unref);
  for (guint i = 0; i < parts->len; i++)
    {
      GBytes *part = g_ptr_array_index (parts, i);

      data = g_bytes_get_data (part, &len);
      send_datagram (sa, data, len);
    }
}

static gboolean
exchange_send (ModikeExchange *x, ModikeBuilder *b, gboolean encrypt, gboolean hashed, GBytes *extra,
               GError **error)
{
  ModikeIkeSa *sa = x->sa;
  guint8 msg_no = x->cur_no + 1;
  guint8 *iv;
  GBytes *packet;

  if ((encrypt || hashed) && !sa->have_keys)
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "%s message %u: no keys to encrypt with",
                   engine_exchange_name (x->type), msg_no);
      return FALSE;
    }
  /* A hashed message is always encrypted. */
  iv = encrypt || hashed ? engine_exchange_iv (x) : NULL;
  packet = hashed ? engine_build_hashed_packet (sa, x->type, x->msgid, b, extra, iv, error)
                  : engine_build_packet (sa, x->type, x->msgid, b, iv, error);
  if (packet == NULL)
    return FALSE;
  g_clear_pointer (&x->last_sent, g_bytes_unref);
  x->last_sent = packet;
  x->sent_no = msg_no;
  x->replays = 0;
  ELOG_DEBUG (sa, x, "built %s message %u (%" G_GSIZE_FORMAT " bytes%s%s)", engine_exchange_name (x->type), msg_no,
              g_bytes_get_size (packet), iv != NULL ? ", encrypted" : "", hashed ? ", hashed" : "");
  if (x->in_handler)
    {
      /* Sent once the verdict is known and plugins (natt) had their say. */
      g_clear_pointer (&x->outbox, g_bytes_unref);
      x->outbox = g_bytes_ref (packet);
    }
  else
    engine_transmit (sa, packet, may_float (x, msg_no));
  return TRUE;
}

gboolean
modike_exchange_send (ModikeExchange *x, ModikeBuilder *b, gboolean encrypt, GError **error)
{
  gboolean hashed = x->cur_row != NULL && (x->cur_row->flags & MODIKE_ROW_HASH) != 0;

  return exchange_send (x, b, encrypt, hashed, NULL, error);
}

gboolean
engine_exchange_send_hashed (ModikeExchange *x, ModikeBuilder *b, GBytes *extra, GError **error)
{
  return exchange_send (x, b, TRUE, TRUE, extra, error);
}

gboolean
engine_message_rest (const ModikeMessage *msg, guint index, const guint8 **data, gsize *len)
{
  const ModikePayload *p, *last;
  const guint8 *base, *start, *end;
  gsize plen;

  if (msg->plain == NULL || msg->payloads == NULL || index >= msg->payloads->len)
    return FALSE;
  base = g_bytes_get_data (msg->plain, &plen);
  p = &g_array_index (msg->payloads, ModikePayload, index);
  last = &g_array_index (msg->payloads, ModikePayload, msg->payloads->len - 1);
  start = p->body + p->len;
  end = last->body + last->len;
  /* Spans of the parsed chain, checked against the buffer, no reads. */
  if (start < base || end > base + plen || end < start)
    return FALSE;
  *data = start;
  *len = (gsize) (end - start);
  return TRUE;
}

void
engine_hash_a (ModikeIkeSa *sa, gboolean zero, guint32 msgid, GBytes *extra, const guint8 *rest, gsize rest_len,
               guint8 *out)
{
  ModikePrf *prf = modike_prf_new (sa->choice.hash, sa->keys.skeyid_a->data, sa->keys.skeyid_a->len);
  guint8 mid[4] = { msgid >> 24, msgid >> 16, msgid >> 8, msgid };

  if (zero)
    modike_prf_update (prf, "\0", 1);
  modike_prf_update (prf, mid, sizeof mid);
  if (extra != NULL)
    modike_prf_update (prf, g_bytes_get_data (extra, NULL), g_bytes_get_size (extra));
  if (rest_len > 0)
    modike_prf_update (prf, rest, rest_len);
  modike_prf_final (prf, out);
}

/* ---- replay ---- */

/* What identifies a retransmitted datagram. */
static void
datagram_digest (const guint8 *data, gsize len, guint8 out[32])
{
  modike_hash (MODIKE_HASH_SHA2_256, data, len, out);
}


gboolean
engine_exchange_is_replay (ModikeExchange *x, const guint8 *data, gsize len)
{
  ModikeIke *ike = x->sa->ike;
  guint8 d[sizeof x->rx_digest];

  if (!x->have_rx_digest)
    return FALSE;
  datagram_digest (data, len, d);
  if (!modike_memeq (d, x->rx_digest, sizeof d))
    return FALSE;
  /* Answer only when our last message answered that one: otherwise two
   * ends would bounce a duplicate back and forth. */
  if (x->last_sent != NULL && x->sent_no == x->rx_no + 1)
    {
      ike->stats.rx_replays++;
      ELOG_DEBUG (x->sa, x, "retransmitted message %u: resending our message %u", x->rx_no, x->sent_no);
      engine_transmit_attempt (x->sa, x->last_sent, may_float (x, x->sent_no), ++x->replays);
    }
  else
    {
      ike->stats.rx_duplicates++;
      ELOG_DEBUG (x->sa, x, "duplicate of message %u ignored", x->rx_no);
    }
  return TRUE;
}

/* ---- timers ---- */

static guint
retransmit_base (const ModikeExchange *x, const ModikeFsmRow *row)
{
  const ModikePeerConfig *peer = x->sa->peer;

  if (peer != NULL && peer->retransmit_ms > 0)
    return peer->retransmit_ms;
  return row->timeout_ms > 0 ? row->timeout_ms : ENGINE_DEFAULT_RETRANSMIT_MS;
}

static guint
retransmit_tries (const ModikeExchange *x)
{
  const ModikePeerConfig *peer = x->sa->peer;

  return peer != NULL && peer->retransmit_tries > 0 ? peer->retransmit_tries : ENGINE_DEFAULT_TRIES;
}

static gboolean retransmit_cb (gpointer data);

static void
retransmit (gpointer data)
{
  ModikeExchange *x = data;
  ModikeIkeSa *sa = x->sa;
  ModikeIke *ike = sa->ike;

  if (x->tries >= retransmit_tries (x) || x->last_sent == NULL)
    {
      g_autoptr (GError) error = g_error_new (MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_TIMEOUT,
                                              "peer %s: no answer to %s message %u after %u retransmits",
                                              sa->peer_name != NULL ? sa->peer_name : "?",
                                              engine_exchange_name (x->type), x->sent_no, x->tries);
      /* A half-open responder SA's end is summarised (a flood would fill the log). */
      if (is_phase1 (x) && sa->ho_entry != NULL)
        {
          ELOG_INFO (sa, x, "%s", error->message);
          engine_sa_expire (sa, error);
        }
      else
        {
          ELOG_MSG (sa, x, "%s", error->message);
          engine_exchange_fail (x, error);
        }
    }
  else
    {
      x->tries++;
      ike->stats.retransmits++;
      ELOG_DEBUG (sa, x, "retransmit %u of message %u", x->tries, x->sent_no);
      engine_transmit_attempt (sa, x->last_sent, may_float (x, x->sent_no), x->tries);
      x->interval_ms = x->interval_ms > G_MAXUINT / 2 ? G_MAXUINT : x->interval_ms * 2;
      x->timer = engine_timer_add (ike, x->interval_ms, retransmit_cb, x);
    }
}

static gboolean
retransmit_cb (gpointer data)
{
  ModikeExchange *x = data;

  return engine_timer_fire (x->sa->ike, &x->timer, retransmit, x);
}

static void
linger_over (gpointer data)
{
  ModikeExchange *x = data;

  engine_sa_remember_done (x->sa, x->msgid);
  engine_exchange_discard (x);
}

static gboolean
linger_cb (gpointer data)
{
  ModikeExchange *x = data;

  return engine_timer_fire (x->sa->ike, &x->linger_timer, linger_over, x);
}

static void
exchange_done (ModikeExchange *x, const ModikeFsmRow *row)
{
  ModikeIke *ike = x->sa->ike;
  guint64 linger;

  x->done = TRUE;
  engine_timer_cancel (ike, &x->timer);
  /* No handler runs on a finished exchange: only replays of its last
   * message, for as long as the peer may retransmit to us (phase 1 too). */
  if (x->destroy != NULL && x->data != NULL)
    x->destroy (g_steal_pointer (&x->data));
  x->destroy = NULL;
  /* It ended on the peer's message: the peer has our last one and never
   * asks for it again. Its message ID, remembered, is enough to keep
   * copies of the peer's messages from acting twice. */
  if (x->sent_no <= x->rx_no)
    {
      engine_sa_remember_done (x->sa, x->msgid);
      engine_exchange_discard (x);
      return;
    }
  linger = (guint64) retransmit_base (x, row) * (2u << MIN (retransmit_tries (x), 16u));
  linger = MIN (linger, LINGER_MAX_MS);
  engine_timer_cancel (ike, &x->linger_timer);
  x->linger_timer = engine_timer_add (ike, (guint) linger, linger_cb, x);
}

void
engine_exchange_fail (ModikeExchange *x, const GError *error)
{
  ModikeIkeSa *sa = x->sa;
  g_autoptr (GError) fallback = NULL;

  if (x->dead)
    return;
  if (error == NULL)
    {
      fallback = g_error_new (MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "peer %s: %s exchange failed",
                              sa->peer_name != NULL ? sa->peer_name : "?", engine_exchange_name (x->type));
      error = fallback;
    }
  if (is_phase1 (x))
    {
      engine_sa_fail (sa, error);
      return;
    }
  if (x->type == MODIKE_EX_QUICK)
    engine_p2_failed (sa, error);
  else
    ELOG_MSG (sa, x, "%s exchange failed: %s", engine_exchange_name (x->type), error->message);
  engine_exchange_discard (x);
}

/* ---- rows, handlers, verdicts ---- */

static ModikeVerdict
run_claims (ModikeExchange *x, const ModikeFsmRow *row, const ModikeMessage *msg, GError **error)
{
  GPtrArray *claims;

  if (msg == NULL || msg->payloads == NULL)
    return MODIKE_V_OK;
  claims = modike_registry_payloads_at (x->sa->ike->registry, row->exchange, row->msg_no);
  if (claims == NULL)
    return MODIKE_V_OK;
  for (guint i = 0; i < claims->len; i++)
    {
      const ModikePayloadClaim *c = g_ptr_array_index (claims, i);
      const ModikePayload *found[MODIKE_MAX_PAYLOADS];
      guint n = 0;
      ModikeVerdict v;

      for (guint j = 0; j < msg->payloads->len && n < G_N_ELEMENTS (found); j++)
        {
          const ModikePayload *p = &g_array_index (msg->payloads, ModikePayload, j);

          if (p->type == c->type)
            found[n++] = p;
        }
      if (n == 0)
        continue;
      v = c->fn (x, msg, found, n, c->user, error);
      if (v == MODIKE_V_SUSPEND)
        {
          g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED,
                       "payload handler of plugin '%s' suspended: not supported", modike_plugin_get_name (c->owner));
          return MODIKE_V_FAIL;
        }
      if (v != MODIKE_V_OK)
        {
          ELOG_DEBUG (x->sa, x, "payload handler of plugin '%s' for %s returned %d", modike_plugin_get_name (c->owner),
                      engine_payload_name (c->type), v);
          return v;
        }
    }
  return MODIKE_V_OK;
}

static void
restore_iv (ModikeExchange *x)
{
  if (x->sa->block_len > 0)
    memcpy (engine_exchange_iv (x), x->iv_backup, x->sa->block_len);
}

static void
drop_new (ModikeExchange *x, gboolean new_exchange)
{
  ModikeIkeSa *sa = x->sa;

  if (!new_exchange)
    return;
  /* A message that created the exchange (or the SA) left no trace. */
  if (is_phase1 (x) && sa->state != SA_ESTABLISHED && x->sent_no == 0)
    engine_sa_delete (sa, FALSE);
  else
    engine_exchange_discard (x);
}

static void
apply_verdict (ModikeExchange *x, const ModikeFsmRow *row, ModikeMessage *msg, ModikeVerdict v, GError *error,
               gboolean new_exchange)
{
  ModikeIkeSa *sa = x->sa;
  ModikeIke *ike = sa->ike;

  /* The handler deleted the SA (a DELETE for itself, INITIAL-CONTACT). */
  if (sa->dead || x->dead)
    {
      if (error != NULL)
        g_error_free (error);
      modike_message_free (msg);
      return;
    }
  switch (v)
    {
    case MODIKE_V_OK:
      ELOG_DEBUG (sa, x, "%s: state %u -> %u", row->name, x->state, row->next);
      x->state = row->next;
      if (msg != NULL)
        {
          x->rx_no = row->msg_no;
          datagram_digest (g_bytes_get_data (msg->packet, NULL), g_bytes_get_size (msg->packet), x->rx_digest);
          x->have_rx_digest = TRUE;
          /* It decrypted under the SA's keys and its handler took it. */
          if (msg->hdr.flags & MODIKE_FLAG_ENCRYPTION)
            sa->last_rx_us = ike->env.now_us (ike->env.env);
          /* The peer moved to another port (NAT-T float, NAT rebinding). */
          if (!sa->floated && x->rx_local.family != 0 && x->rx_local.port != sa->local.port &&
              x->rx_local.port != 500)
            {
              sa->float_port = x->rx_local.port;
              sa->floated = TRUE;
              sa->local = x->rx_local;
              sa->remote = x->rx_remote;
              ELOG_INFO (sa, x, "peer floated to port %u", sa->remote.port);
            }
          /* The peer's NAT mapping changed (RFC 3947 5.2): only a message
           * that decrypted under the SA's keys and was accepted moves it. */
          else if (sa->floated && (msg->hdr.flags & MODIKE_FLAG_ENCRYPTION) &&
                   x->rx_local.port == sa->local.port && x->rx_remote.family != 0 &&
                   !modike_addr_equal (&x->rx_remote, &sa->remote) &&
                   (sa->nat_remote || modike_addr_equal_ip (&x->rx_remote, &sa->remote)))
            engine_sa_move_remote (sa, &x->rx_remote);
        }
      engine_timer_cancel (ike, &x->timer);
      if (x->outbox != NULL)
        {
          g_autoptr (GBytes) out = g_steal_pointer (&x->outbox);
          engine_transmit (sa, out, may_float (x, x->sent_no));
        }
      if (row->timeout_ms > 0 && !(row->flags & MODIKE_ROW_DONE) && x->last_sent != NULL && x->sent_no > x->rx_no)
        {
          x->tries = 0;
          x->interval_ms = retransmit_base (x, row);
          x->timer = engine_timer_add (ike, x->interval_ms, retransmit_cb, x);
        }
      if (row->flags & MODIKE_ROW_P1_DONE)
        engine_p1_established (sa);
      if ((row->flags & MODIKE_ROW_DONE) && !x->dead)
        exchange_done (x, row);
      break;

    case MODIKE_V_DROP:
      ELOG_DEBUG (sa, x, "%s: message dropped by its handler%s%s", row->name, error != NULL ? ": " : "",
                  error != NULL ? error->message : "");
      ike->stats.rx_dropped++;
      restore_iv (x);
      g_clear_pointer (&x->outbox, g_bytes_unref);
      if (msg == NULL)
        engine_exchange_fail (x, error);
      else
        drop_new (x, new_exchange);
      break;

    case MODIKE_V_SUSPEND:
      /* The peer's answer is here: no more retransmits of our request. */
      engine_timer_cancel (ike, &x->timer);
      x->suspended = TRUE;
      x->susp_row = row;
      g_clear_pointer (&x->susp_msg, modike_message_free);
      x->susp_msg = msg;
      msg = NULL;
      ELOG_DEBUG (sa, x, "%s: suspended", row->name);
      break;

    case MODIKE_V_FAIL:
    default:
      g_clear_pointer (&x->outbox, g_bytes_unref);
      if (x->notify != 0)
        engine_send_notify (sa, x->notify, x->notify_proto, x->notify_proto != 0 ? x->notify_spi : NULL,
                            x->notify_proto != 0 ? 4 : 0);
      ELOG_MSG (sa, x, "%s failed: %s", row->name, error != NULL ? error->message : "(no reason given)");
      engine_exchange_fail (x, error);
      break;
    }
  if (error != NULL)
    g_error_free (error);
  if (v != MODIKE_V_SUSPEND && msg != NULL)
    modike_message_free (msg);
  if (v == MODIKE_V_SUSPEND)
    engine_offload_run_inline (x);
  else
    engine_offload_orphan (x); /* a job the handler started in vain */
}

static void
run_row (ModikeExchange *x, const ModikeFsmRow *row, ModikeMessage *msg, gboolean new_exchange)
{
  GError *error = NULL;
  ModikeVerdict v;

  x->cur_no = row->msg_no;
  x->cur_row = row;
  x->notify = 0;
  x->in_handler = TRUE;
  x->sa->ike->stats.handler_calls++;
  v = row->handler (x, msg, &error);
  if (v == MODIKE_V_OK)
    v = run_claims (x, row, msg, &error);
  x->in_handler = FALSE;
  if (v != MODIKE_V_OK && v != MODIKE_V_DROP && error == NULL && v != MODIKE_V_SUSPEND)
    error = g_error_new (MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "%s failed", row->name);
  apply_verdict (x, row, msg, v, error, new_exchange);
}

gboolean
engine_exchange_initiate (ModikeExchange *x, GError **error)
{
  const ModikeFsmRow *row = modike_registry_find_row (x->sa->ike->registry, x->type, 0, 0, x->role);

  if (row == NULL || !(row->flags & MODIKE_ROW_INITIATE))
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "no initiate row for %s",
                   engine_exchange_name (x->type));
      engine_exchange_discard (x);
      return FALSE;
    }
  run_row (x, row, NULL, TRUE);
  return TRUE;
}

/* HASH(1) style: prf(SKEYID_a, M-ID | payloads after HASH). */
static gboolean
verify_row_hash (ModikeExchange *x, const ModikeFsmRow *row, const ModikeMessage *msg, GError **error)
{
  guint8 cur = x->cur_no;
  gboolean ok;

  x->cur_no = row->msg_no; /* names the message in the error */
  ok = engine_verify_hash (x, msg, FALSE, NULL, NULL, error);
  x->cur_no = cur;
  return ok;
}

/* The peer's first Quick Mode message on an SA whose phase 2 is held:
 * kept (decrypted) until the gate opens; its retransmissions are
 * duplicates meanwhile. Only an authentic message takes a place (qm_r1
 * checks HASH(1) again when it runs). */
static void
park (ModikeExchange *x, const ModikeFsmRow *row, ModikeMessage *msg)
{
  g_autoptr (GError) error = NULL;

  if (!verify_row_hash (x, row, msg, &error) || !engine_gate_add_peer (x, &error))
    {
      x->sa->ike->stats.rx_dropped++;
      ELOG_MSG (x->sa, x, "%s: message dropped: %s", row->name, error->message);
      modike_message_free (msg);
      engine_exchange_discard (x);
      return;
    }
  /* Authentic: it counts as the peer's traffic while it waits. */
  x->sa->last_rx_us = x->sa->ike->env.now_us (x->sa->ike->env.env);
  x->parked = TRUE;
  x->suspended = TRUE;
  x->susp_row = row;
  x->susp_msg = msg;
  datagram_digest (g_bytes_get_data (msg->packet, NULL), g_bytes_get_size (msg->packet), x->rx_digest);
  x->have_rx_digest = TRUE;
}

void
engine_exchange_receive (ModikeExchange *x, ModikeMessage *msg, gboolean new_exchange)
{
  ModikeIkeSa *sa = x->sa;
  ModikeIke *ike = sa->ike;
  g_autoptr (ModikeMessage) owned = msg;
  g_autoptr (GError) error = NULL;
  gboolean encrypted = (msg->hdr.flags & MODIKE_FLAG_ENCRYPTION) != 0;
  guint8 msg_no = MAX (x->sent_no, x->rx_no) + 1;
  const ModikeFsmRow *row;
  guint16 notify = 0;

  if (x->done || x->suspended || x->dead || msg->hdr.exchange != x->type)
    {
      ike->stats.rx_dropped++;
      ELOG_DEBUG (sa, x, "%s message dropped: exchange %s", engine_exchange_name (msg->hdr.exchange),
                  x->done ? "complete" : x->suspended ? "busy" : "of another type");
      drop_new (x, new_exchange);
      return;
    }
  row = modike_registry_find_row (ike->registry, x->type, x->state, msg_no, x->role);
  if (row == NULL || (row->flags & MODIKE_ROW_INITIATE))
    {
      ike->stats.rx_no_row++;
      ELOG_MSG (sa, x, "no %s row for message %u in state %u as %s: dropped", engine_exchange_name (x->type), msg_no,
                x->state, x->role == MODIKE_ROLE_INITIATOR ? "initiator" : "responder");
      drop_new (x, new_exchange);
      return;
    }
  if (sa->block_len > 0)
    memcpy (x->iv_backup, engine_exchange_iv (x), sa->block_len);
  if (encrypted)
    {
      g_autoptr (GBytes) plain = engine_decrypt (sa, msg, engine_exchange_iv (x), &error);

      if (plain == NULL || !modike_message_set_plain (msg, plain, TRUE, &error))
        {
          ike->stats.rx_garbage++;
          restore_iv (x);
          ELOG_MSG (sa, x, "%s message %u: %s", engine_exchange_name (x->type), msg_no, error->message);
          /* Garbage after decryption: the keys differ, almost always a
           * pre-shared key mismatch. One such packet may be corruption;
           * the peer's retransmission of it settles the question. */
          if (is_phase1 (x) && sa->state != SA_ESTABLISHED && plain != NULL && ++sa->decrypt_failures >= 2)
            {
              g_autoptr (GError) auth = g_error_new (MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_AUTH,
                                                     "peer %s: %s message %u does not decrypt (pre-shared key mismatch?)",
                                                     sa->peer_name, engine_exchange_name (x->type), msg_no);
              ike->stats.auth_failures++;
              engine_send_notify (sa, MODIKE_N_AUTHENTICATION_FAILED, 0, NULL, 0);
              engine_sa_fail (sa, auth);
              return;
            }
          drop_new (x, new_exchange);
          return;
        }
    }
  if (!engine_digest (ike->registry, row, msg, &notify, &error))
    {
      ike->stats.rx_digest_rejects++;
      restore_iv (x);
      ELOG_MSG (sa, x, "%s: message rejected (%s): %s", row->name, engine_notify_name (notify), error->message);
      drop_new (x, new_exchange);
      return;
    }
  /* Never act on a message whose HASH fails: the handler does not run. */
  if ((row->flags & MODIKE_ROW_HASH) && !verify_row_hash (x, row, msg, &error))
    {
      ike->stats.rx_dropped++;
      restore_iv (x);
      ELOG_MSG (sa, x, "%s: message dropped: %s", row->name, error->message);
      drop_new (x, new_exchange);
      return;
    }
  if (new_exchange && x->type == MODIKE_EX_QUICK && engine_gate_held (sa))
    {
      park (x, row, g_steal_pointer (&owned));
      return;
    }
  run_row (x, row, g_steal_pointer (&owned), new_exchange);
}

/* Ends a suspension (parked: a wait at the phase-2 gate), handing over the
 * row and message to go on with; NULL when x is not in that state. */
static const ModikeFsmRow *
unsuspend (ModikeExchange *x, gboolean parked, ModikeMessage **msg)
{
  const ModikeFsmRow *row = x->susp_row;

  *msg = NULL;
  if (!x->suspended || x->parked != parked || x->dead || row == NULL)
    return NULL;
  *msg = g_steal_pointer (&x->susp_msg);
  x->suspended = FALSE;
  x->parked = FALSE;
  x->susp_row = NULL;
  return row;
}

void
engine_exchange_run_parked (ModikeExchange *x)
{
  ModikeMessage *msg;
  const ModikeFsmRow *row = unsuspend (x, TRUE, &msg);

  if (row == NULL)
    return;
  x->have_rx_digest = FALSE;
  run_row (x, row, msg, TRUE);
}

/* Ends a SUSPEND: `done` (an offloaded job's) goes on with the handler's
 * work, else `verdict` stands as the handler's. */
static void
resume (ModikeExchange *x, ModikeVerdict verdict, GError *error, ModikeOffloadDone done, gpointer job)
{
  ModikeIke *ike = x->sa->ike;
  ModikeMessage *msg;
  const ModikeFsmRow *row = unsuspend (x, FALSE, &msg);

  if (row == NULL)
    {
      if (error != NULL)
        g_error_free (error);
      return;
    }
  engine_enter (ike);
  x->in_handler = TRUE;
  if (done != NULL)
    {
      x->cur_no = row->msg_no;
      x->cur_row = row;
      x->notify = 0;
      verdict = done (x, job, &error);
    }
  if (verdict == MODIKE_V_OK)
    verdict = run_claims (x, row, msg, &error);
  x->in_handler = FALSE;
  if (verdict == MODIKE_V_FAIL && error == NULL)
    error = g_error_new (MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "%s failed", row->name);
  apply_verdict (x, row, msg, verdict, error, FALSE);
  engine_leave (ike);
}

void
modike_exchange_resume (ModikeExchange *x, ModikeVerdict verdict, GError *error)
{
  resume (x, verdict, error, NULL, NULL);
}

void
engine_exchange_offload_done (ModikeExchange *x, ModikeOffloadDone done, gpointer job)
{
  resume (x, MODIKE_V_OK, NULL, done, job);
}

/* Starts x's first row as the initiator; `refusal` (taken) is why it may
 * not start. */
static ModikeExchange *
start_exchange (ModikeIkeSa *sa, guint8 type, const ModikePlugin *owner, const ModikeFsmRow *row, GError *refusal,
                gpointer data, GDestroyNotify destroy, GError **error)
{
  ModikeIke *ike = sa->ike;
  ModikeExchange *x = NULL;

  if (refusal == NULL && (!modike_ike_sa_is_established (sa) || !sa->have_keys))
    refusal = g_error_new (MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "peer %s: exchange type %u needs an established IKE SA",
                           sa->peer_name != NULL ? sa->peer_name : "?", type);
  if (refusal != NULL)
    {
      if (destroy != NULL && data != NULL)
        destroy (data);
      g_propagate_error (error, refusal);
      return NULL;
    }
  engine_enter (ike);
  x = engine_exchange_new (sa, type, engine_alloc_msgid (sa), MODIKE_ROLE_INITIATOR);
  x->txn_owner = type == MODIKE_EX_TRANSACTION ? owner : NULL;
  modike_exchange_set_data (x, data, destroy);
  ELOG_DEBUG (sa, x, "plugin '%s' starts exchange type %u", modike_plugin_get_name (owner), type);
  run_row (x, row, NULL, TRUE);
  if (x->dead)
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "peer %s: %s (type %u) failed to start",
                   sa->peer_name != NULL ? sa->peer_name : "?", row->name, type);
      x = NULL;
    }
  engine_leave (ike);
  return x;
}

ModikeExchange *
modike_exchange_start (ModikeIkeSa *sa, guint8 type, gpointer data, GDestroyNotify destroy, GError **error)
{
  ModikeIke *ike = sa->ike;
  const ModikeFsmRow *row = modike_registry_find_row (ike->registry, type, 0, 0, MODIKE_ROLE_INITIATOR);
  const ModikePlugin *owner = modike_registry_exchange_owner (ike->registry, type);
  GError *refusal = NULL;

  if (owner == NULL || owner == modike_registry_core_plugin (ike->registry))
    refusal = g_error_new (MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "exchange type %u is %s%s", type,
                           owner == NULL ? "not registered" : "the core's own",
                           type == MODIKE_EX_TRANSACTION ? " (use modike_transaction_start)" : "");
  else if (row == NULL || !(row->flags & MODIKE_ROW_INITIATE))
    refusal = g_error_new (MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED,
                           "exchange type %u of plugin '%s' has no initiate row", type, modike_plugin_get_name (owner));
  return start_exchange (sa, type, owner, row, refusal, data, destroy, error);
}

ModikeExchange *
modike_transaction_start (ModikeIkeSa *sa, ModikePlugin *plugin, gpointer data, GDestroyNotify destroy,
                          GError **error)
{
  ModikeIke *ike = sa->ike;
  const ModikeTransactionOps *ops = modike_registry_transaction (ike->registry, plugin);
  const ModikeFsmRow *row = modike_registry_find_row (ike->registry, MODIKE_EX_TRANSACTION, 0, 0,
                                                      MODIKE_ROLE_INITIATOR);
  GError *refusal = NULL;

  if (ops == NULL || ops->initiate == NULL)
    refusal = g_error_new (MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED,
                           "plugin '%s' has no transaction initiate handler (modike_register_transaction)",
                           modike_plugin_get_name (plugin));
  return start_exchange (sa, MODIKE_EX_TRANSACTION, plugin, row, refusal, data, destroy, error);
}
