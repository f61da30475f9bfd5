/* Suite fsm: exchanges owned by plugins. A test plugin, registered on both
 * nodes, owns the transaction exchange (type 6: HDR*, HASH, ATTR both
 * ways) and starts it after phase 1: HASH(1)/(2) added and checked by the
 * core, loss and duplication, the phase-2 gate (hold, release, fail,
 * bounds) in both roles, and a handler that suspends. */
#include "harness.h"

/* A constant-expression MODIKE_PB for types below 48 (static rows). */
#define PB(t) (G_GUINT64_CONSTANT (1) << (t))
#define TX_GREETING_ATTR 16385 /* private-use mode-cfg attribute type */
#define TX_SUSPEND_MS 2500
#define TX_TYPE 241 /* a private exchange type (the transaction exchange, 6, is the core's) */

enum { TX_I1 = 1, TX_DONE };

typedef struct {
  Node *node;
  ModikePlugin *plugin;
  /* behaviour */
  gboolean start_on_up;   /* start a transaction when phase 1 is up */
  gboolean hold;          /* hold phase 2 from P1_UP until our transaction completes */
  gboolean fail_on_reply; /* fail the SA instead of releasing */
  gboolean never_release;
  gboolean suspend;       /* TX_R1 suspends and resumes TX_SUSPEND_MS later */
  /* what happened */
  guint started, r1_calls, i2_calls, done, resumed, destroyed;
  guint p2_up, p2_up_before_done;
  guint waiting_at_release;
  guint32 last_msgid;
} TxPlugin;

static TxPlugin txp[2];

static TxPlugin *
tx_of (ModikeExchange *x)
{
  for (guint i = 0; i < G_N_ELEMENTS (txp); i++)
    if (txp[i].node != NULL && txp[i].node->ike == modike_exchange_get_sa (x)->ike)
      return &txp[i];
  g_assert_not_reached ();
}

/* HASH = prf(SKEYID_a, M-ID | payloads after HASH), recomputed here from
 * the keys, not with the engine's helper. */
static void
assert_hash1 (ModikeExchange *x, const ModikeMessage *msg)
{
  ModikeIkeSa *sa = modike_exchange_get_sa (x);
  const ModikePayload *h = &g_array_index (msg->payloads, ModikePayload, 0);
  guint32 id = modike_exchange_get_msgid (x);
  guint8 mid[4] = { id >> 24, id >> 16, id >> 8, id };
  guint8 want[MODIKE_HASH_MAX];
  const guint8 *rest;
  gsize rest_len;
  ModikePrf *prf;

  g_assert_cmpuint (h->type, ==, MODIKE_PL_HASH);
  g_assert_cmpuint (h->len, ==, modike_hash_len (sa->choice.hash));
  g_assert_true (engine_message_rest (msg, 0, &rest, &rest_len));
  g_assert_cmpuint (rest_len, >, 0);
  prf = modike_prf_new (sa->choice.hash, sa->keys.skeyid_a->data, sa->keys.skeyid_a->len);
  modike_prf_update (prf, mid, sizeof mid);
  modike_prf_update (prf, rest, rest_len);
  modike_prf_final (prf, want);
  g_assert_true (memcmp (want, h->body, h->len) == 0);
  g_assert_cmpuint (msg->hdr.flags & MODIKE_FLAG_ENCRYPTION, !=, 0);
}

static gboolean
tx_send_attr (ModikeExchange *x, guint8 type, const char *text, GError **error)
{
  ModikeAttrPayload a = { 0 };
  g_autoptr (ModikeBuilder) b = modike_builder_new ();
  GByteArray *body = g_byte_array_new ();

  a.type = type;
  a.identifier = modike_exchange_get_msgid (x) & 0xffff;
  a.attrs = modike_attr_array_new ();
  modike_attr_add_tlv (a.attrs, TX_GREETING_ATTR, (const guint8 *) text, strlen (text));
  modike_attr_payload_encode (&a, body);
  g_array_unref (a.attrs);
  /* Only ATTR: the row's MODIKE_ROW_HASH puts HASH in front. */
  modike_builder_add_array (b, MODIKE_PL_ATTR, body);
  return modike_exchange_send (x, b, TRUE, error);
}

static ModikeAttrPayload *
tx_parse_attr (const ModikeMessage *msg, guint8 want_type)
{
  const ModikePayload *p = modike_message_find (msg, MODIKE_PL_ATTR);
  g_autoptr (GError) error = NULL;
  ModikeAttrPayload *a;

  g_assert_nonnull (p);
  a = modike_attr_payload_parse (p->body, p->len, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (a->type, ==, want_type);
  g_assert_nonnull (modike_attrs_find (a->attrs, TX_GREETING_ATTR));
  return a;
}

static ModikeVerdict
tx_initiate (ModikeExchange *x, const ModikeMessage *msg, GError **error)
{
  TxPlugin *tx = tx_of (x);

  g_assert_null (msg);
  tx->last_msgid = modike_exchange_get_msgid (x);
  g_assert_cmpuint (tx->last_msgid, !=, 0);
  return tx_send_attr (x, 1 /* REQUEST */, "hello", error) ? MODIKE_V_OK : MODIKE_V_FAIL;
}

/* The reply of a suspended TX_R1, sent later from a mock-clock timer. */
typedef struct {
  TxPlugin *tx;
  ModikeExchange *x;
  guint timer;
} Suspended;

static void
suspended_free (gpointer p)
{
  Suspended *s = p;

  /* The exchange died first (its SA was deleted): no resume. */
  if (s->timer != 0)
    s->tx->node->env.timer_remove (s->tx->node->env.env, s->timer);
  s->tx->destroyed++;
  g_free (s);
}

static gboolean
suspended_done (gpointer data)
{
  Suspended *s = data;
  g_autoptr (GError) error = NULL;

  s->timer = 0;
  g_assert_true (tx_send_attr (s->x, 2 /* REPLY */, "hello back", &error));
  g_assert_no_error (error);
  s->tx->resumed++;
  modike_exchange_resume (s->x, MODIKE_V_OK, NULL);
  return G_SOURCE_REMOVE;
}

static ModikeVerdict
tx_r1 (ModikeExchange *x, const ModikeMessage *msg, GError **error)
{
  TxPlugin *tx = tx_of (x);
  g_autoptr (ModikeAttrPayload) a = NULL;

  tx->r1_calls++;
  assert_hash1 (x, msg);
  a = tx_parse_attr (msg, 1);
  g_assert_cmpuint (a->identifier, ==, modike_exchange_get_msgid (x) & 0xffff);
  if (tx->suspend)
    {
      Suspended *s = g_new0 (Suspended, 1);

      s->tx = tx;
      s->x = x;
      s->timer = tx->node->env.timer_add (tx->node->env.env, TX_SUSPEND_MS, suspended_done, s);
      modike_exchange_set_data (x, s, suspended_free);
      return MODIKE_V_SUSPEND;
    }
  return tx_send_attr (x, 2 /* REPLY */, "hello back", error) ? MODIKE_V_OK : MODIKE_V_FAIL;
}

static ModikeVerdict
tx_i2 (ModikeExchange *x, const ModikeMessage *msg, GError **error)
{
  TxPlugin *tx = tx_of (x);
  ModikeIkeSa *sa = modike_exchange_get_sa (x);
  g_autoptr (ModikeAttrPayload) a = NULL;

  tx->i2_calls++;
  assert_hash1 (x, msg);
  a = tx_parse_attr (msg, 2);
  tx->done++;
  if (tx->hold && !tx->never_release)
    {
      tx->waiting_at_release = engine_gate_n_waiting (sa);
      if (tx->fail_on_reply)
        {
          g_autoptr (GError) why = g_error_new (MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_AUTH,
                                                "peer %s: extended authentication failed",
                                                modike_ike_sa_get_peer_name (sa));

          modike_ike_sa_fail (sa, why);
        }
      else
        modike_ike_sa_release_phase2 (sa, tx->plugin);
    }
  return MODIKE_V_OK;
}

static void
tx_data_free (gpointer p)
{
  ((TxPlugin *) p)->destroyed++;
}

static void
tx_on_event (ModikeEventType ev, ModikeIkeSa *sa, const ModikeSadEntry *child, gpointer user)
{
  TxPlugin *tx = user;
  g_autoptr (GError) error = NULL;

  if (ev == MODIKE_EVENT_P2_UP)
    {
      tx->p2_up++;
      if (tx->hold && tx->done == 0)
        tx->p2_up_before_done++;
      return;
    }
  if (tx->hold)
    modike_ike_sa_hold_phase2 (sa, tx->plugin);
  if (tx->start_on_up)
    {
      g_assert_nonnull (modike_exchange_start (sa, TX_TYPE, tx, tx_data_free, &error));
      g_assert_no_error (error);
      tx->started++;
    }
}

static const ModikeFsmRow tx_rows[] = {
  { "TX_I0", 0, TX_TYPE, 0, MODIKE_ROLE_INITIATOR, MODIKE_ROW_INITIATE | MODIKE_ROW_HASH,
    0, 0, 0, tx_initiate, TX_I1, 1000 },
  { "TX_R1", 0, TX_TYPE, 1, MODIKE_ROLE_RESPONDER,
    MODIKE_ROW_START | MODIKE_ROW_ENCRYPTED | MODIKE_ROW_HASH | MODIKE_ROW_DONE,
    PB (MODIKE_PL_ATTR), 0, 0, tx_r1, TX_DONE, 0 },
  { "TX_I2", TX_I1, TX_TYPE, 2, MODIKE_ROLE_INITIATOR,
    MODIKE_ROW_ENCRYPTED | MODIKE_ROW_HASH | MODIKE_ROW_DONE, PB (MODIKE_PL_ATTR), 0, 0, tx_i2, TX_DONE, 0 },
};

static const ModikePluginDescriptor tx_desc = {
  MODIKE_PLUGIN_DESCRIPTOR_INIT,
  .name = "txtest",
  .version = "0",
};

static TxPlugin *
tx_register (Node *n, guint i)
{
  TxPlugin *tx = &txp[i];
  g_autoptr (GError) error = NULL;

  memset (tx, 0, sizeof *tx);
  tx->node = n;
  tx->plugin = modike_registry_add_plugin (n->reg, &tx_desc);
  g_assert_nonnull (tx->plugin);
  g_assert_true (modike_register_exchange (tx->plugin, TX_TYPE, "Transaction", tx_rows,
                                           G_N_ELEMENTS (tx_rows), &error));
  g_assert_true (modike_register_event (tx->plugin, MODIKE_EVENT_P1_UP, tx_on_event, tx, &error));
  g_assert_true (modike_register_event (tx->plugin, MODIKE_EVENT_P2_UP, tx_on_event, tx, &error));
  g_assert_true (modike_registry_check_table (n->reg, &error));
  g_assert_no_error (error);
  return tx;
}

/* A pair with the plugin on both nodes; returns the net, not yet started. */
static Net *
tx_pair (const Params *p, Node **a, Node **b, TxPlugin **ta, TxPlugin **tb)
{
  Net *net = pair_new (p, a, b);

  *ta = tx_register (*a, 0);
  *tb = tx_register (*b, 1);
  return net;
}

static gboolean
is_exchange (const Packet *pk, guint8 type)
{
  gsize len;
  const guint8 *d = g_bytes_get_data (pk->data, &len);

  return len > MODIKE_ISAKMP_HEADER_LEN && d[18] == type;
}

/* ---- filters ---- */

typedef struct {
  Node *from;
  guint8 type;
  guint seen;          /* packets of that type from `from` */
  guint drop_no;       /* 1-based: lose this one */
  guint dup_no;        /* send this one twice */
  guint tamper_no;     /* flip a ciphertext bit so that only HASH changes */
  guint encrypted;     /* of those seen, with the E flag */
} TxFilter;

static FilterResult
tx_filter (Net *net, guint n, Packet *pk, gpointer user)
{
  TxFilter *f = user;
  const guint8 *d;
  gsize len;

  if (!is_exchange (pk, f->type) || !modike_addr_equal_ip (&pk->src, &f->from->addr))
    return FILTER_PASS;
  f->seen++;
  d = g_bytes_get_data (pk->data, &len);
  if (d[19] & MODIKE_FLAG_ENCRYPTION)
    f->encrypted++;
  if (f->seen == f->drop_no)
    return FILTER_DROP;
  if (f->seen == f->tamper_no)
    {
      /* CBC: a flip in ciphertext block 1 garbles plaintext block 1 and
       * flips the same bit of block 2; with AES and SHA-256 both lie in
       * the HASH body (plaintext bytes 4..35), so the chain still parses. */
      guint8 *copy = g_memdup2 (d, len);

      g_assert_cmpuint (len, >=, MODIKE_ISAKMP_HEADER_LEN + 48);
      copy[MODIKE_ISAKMP_HEADER_LEN + 16] ^= 0x01;
      g_bytes_unref (pk->data);
      pk->data = g_bytes_new_take (copy, len);
    }
  if (f->seen == f->dup_no)
    {
      Packet *c = g_new0 (Packet, 1);

      *c = *pk;
      c->data = g_bytes_ref (pk->data);
      g_queue_push_tail (&net->queue, c);
    }
  return FILTER_PASS;
}

static gboolean
pred_delivered (Net *net, gpointer user)
{
  return ((TxFilter *) user)->seen > 0 && g_queue_is_empty (&net->queue);
}

static void
settle (Net *net)
{
  net_run (net, 200, NULL, NULL);
}

/* ---- cases ---- */

/* Both ends start a transaction after phase 1; each HASH is checked in the
 * handlers against an independent computation. */
static void
test_both_start (void)
{
  Params p = params_default ();
  Node *a, *b;
  TxPlugin *ta, *tb;
  Net *net = tx_pair (&p, &a, &b, &ta, &tb);
  TxFilter fa = { .type = TX_TYPE };

  fa.from = a;
  ta->start_on_up = tb->start_on_up = TRUE;
  net->filter = tx_filter;
  net->filter_user = &fa;
  bring_up (net, a, b, 1);
  settle (net);
  check_pair (a, b, 1);
  assert_no_failures (a, b);
  for (guint i = 0; i < 2; i++)
    {
      g_assert_cmpuint (txp[i].started, ==, 1);
      g_assert_cmpuint (txp[i].r1_calls, ==, 1);
      g_assert_cmpuint (txp[i].i2_calls, ==, 1);
      g_assert_cmpuint (txp[i].done, ==, 1);
    }
  /* Two exchanges with their own message IDs. */
  g_assert_cmpuint (ta->last_msgid, !=, tb->last_msgid);
  /* A's two messages (its request, its reply to B), all encrypted. */
  g_assert_cmpuint (fa.seen, ==, 2);
  g_assert_cmpuint (fa.encrypted, ==, 2);
  g_assert_cmpuint (a->ike->stats.auth_failures + b->ike->stats.auth_failures, ==, 0);
  net_free (net);
  /* The initiators' exchange data went with the exchanges. */
  g_assert_cmpuint (ta->destroyed, ==, 1);
  g_assert_cmpuint (tb->destroyed, ==, 1);
}

/* A request whose HASH was changed in flight is dropped and counted; the
 * responder's handler never sees it; the retransmission gets through. */
static void
test_tampered_hash (void)
{
  Params p = params_default ();
  Node *a, *b;
  TxPlugin *ta, *tb;
  Net *net = tx_pair (&p, &a, &b, &ta, &tb);
  TxFilter f = { .type = TX_TYPE, .tamper_no = 1 };
  guint64 failures, dropped, handlers;

  f.from = a;
  ta->start_on_up = TRUE;
  net->filter = tx_filter;
  net->filter_user = &f;
  failures = b->ike->stats.auth_failures;
  g_assert_true (modike_ike_initiate (a->ike, "b", NULL));
  /* Up to the delivery of the tampered request (nothing retransmitted yet). */
  g_assert_true (net_run (net, 500, pred_delivered, &f));
  dropped = b->ike->stats.rx_dropped;
  handlers = b->ike->stats.handler_calls;
  g_assert_cmpuint (f.seen, ==, 1);
  g_assert_cmpuint (tb->r1_calls, ==, 0);
  g_assert_cmpuint (b->ike->stats.auth_failures, ==, failures + 1);
  g_assert_cmpuint (ta->done, ==, 0);
  /* A's retransmission, untouched, completes the exchange. */
  net_run (net, 3000, NULL, NULL);
  g_assert_cmpuint (f.seen, ==, 2);
  g_assert_cmpuint (tb->r1_calls, ==, 1);
  g_assert_cmpuint (ta->done, ==, 1);
  g_assert_cmpuint (b->ike->stats.rx_dropped, ==, dropped);
  g_assert_cmpuint (b->ike->stats.handler_calls, >, handlers);
  g_assert_cmpuint (b->ike->stats.auth_failures, ==, failures + 1);
  check_pair (a, b, 1);
  net_free (net);
}

/* Loss and duplication: the lost request is retransmitted, the duplicated
 * retransmission answered by replay, the duplicate reply ignored. */
static void
test_loss_dup (void)
{
  Params p = params_default ();
  Node *a, *b;
  TxPlugin *ta, *tb;
  Net *net = tx_pair (&p, &a, &b, &ta, &tb);
  TxFilter f = { .type = TX_TYPE, .drop_no = 1, .dup_no = 2 };
  guint64 replays, dups, retransmits;

  f.from = a;
  ta->start_on_up = TRUE;
  net->filter = tx_filter;
  net->filter_user = &f;
  bring_up (net, a, b, 1);
  replays = b->ike->stats.rx_replays;
  dups = a->ike->stats.rx_duplicates;
  retransmits = a->ike->stats.retransmits;
  g_assert_cmpuint (ta->done, ==, 0);
  net_run (net, 3000, NULL, NULL);
  g_assert_cmpuint (f.seen, ==, 2);
  g_assert_cmpuint (a->ike->stats.retransmits, ==, retransmits + 1);
  g_assert_cmpuint (tb->r1_calls, ==, 1);
  g_assert_cmpuint (ta->i2_calls, ==, 1);
  g_assert_cmpuint (ta->done, ==, 1);
  g_assert_cmpuint (b->ike->stats.rx_replays, ==, replays + 1);
  g_assert_cmpuint (a->ike->stats.rx_duplicates, ==, dups + 1);
  /* Nothing left to retransmit once done. */
  retransmits = a->ike->stats.retransmits + b->ike->stats.retransmits;
  net_run (net, 20000, NULL, NULL);
  g_assert_cmpuint (a->ike->stats.retransmits + b->ike->stats.retransmits, ==, retransmits);
  check_pair (a, b, 1);
  net_free (net);
}

/* The phase-1 initiator holds Quick Mode until its transaction completes:
 * its pending Quick Mode waits, then runs. */
static void
test_hold_initiator (void)
{
  Params p = params_default ();
  Node *a, *b;
  TxPlugin *ta, *tb;
  Net *net = tx_pair (&p, &a, &b, &ta, &tb);

  ta->start_on_up = ta->hold = TRUE;
  bring_up (net, a, b, 1);
  check_pair (a, b, 1);
  assert_up_counts (a, b, 1, 1);
  assert_no_failures (a, b);
  g_assert_cmpuint (ta->done, ==, 1);
  g_assert_cmpuint (ta->waiting_at_release, ==, 1);
  g_assert_cmpuint (ta->p2_up, ==, 1);
  g_assert_cmpuint (ta->p2_up_before_done, ==, 0);
  g_assert_false (engine_gate_held (only_sa (a)));
  net_free (net);
}

/* The phase-1 responder holds: the peer's first Quick Mode message is
 * parked (and its duplicate not answered), then processed on release. */
static void
test_hold_responder (void)
{
  Params p = params_default ();
  Node *a, *b;
  TxPlugin *ta, *tb;
  Net *net = tx_pair (&p, &a, &b, &ta, &tb);
  TxFilter qa = { .type = MODIKE_EX_QUICK, .dup_no = 1 };
  guint64 dups;

  qa.from = a;
  tb->start_on_up = tb->hold = TRUE;
  net->filter = tx_filter;
  net->filter_user = &qa;
  dups = b->ike->stats.rx_duplicates;
  bring_up (net, a, b, 1);
  settle (net);
  check_pair (a, b, 1);
  assert_up_counts (a, b, 1, 1);
  assert_no_failures (a, b);
  g_assert_cmpuint (tb->done, ==, 1);
  g_assert_cmpuint (tb->waiting_at_release, ==, 1);
  g_assert_cmpuint (tb->p2_up_before_done, ==, 0);
  /* QM1 twice (the duplicate while parked), QM3 once. */
  g_assert_cmpuint (qa.seen, ==, 2);
  g_assert_cmpuint (b->ike->stats.rx_duplicates, ==, dups + 1);
  /* B answered once: a second QM2 would be a duplicate (or a replay) at A. */
  net_run (net, 20000, NULL, NULL);
  g_assert_cmpuint (a->ike->stats.rx_duplicates + a->ike->stats.rx_replays, ==, 0);
  net_free (net);
}

/* A holds phase 2 for good; its SA with B is up, one Quick Mode waits. */
static Net *
held_one (const Params *p, Node **a, Node **b, TxPlugin **ta, ModikeIkeSa **sa)
{
  TxPlugin *tb;
  Net *net = tx_pair (p, a, b, ta, &tb);

  (*ta)->hold = (*ta)->never_release = TRUE;
  g_assert_true (modike_ike_initiate ((*a)->ike, "b", NULL));
  net_run (net, 500, NULL, NULL);
  *sa = only_sa (*a);
  g_assert_cmpuint (engine_gate_n_waiting (*sa), ==, 1);
  return net;
}

/* A config reload renumbers the policies: the Quick Mode waiting at the
 * gate keeps its policy (an initiate adds none for it) and runs for it on
 * release. */
static void
test_hold_reload (void)
{
  Params p = params_default ();
  Node *a, *b;
  TxPlugin *ta;
  ModikeIkeSa *sa;
  Net *net = held_one (&p, &a, &b, &ta, &sa);

  reload_a (a, &p, "reloaded");
  g_assert_true (only_sa (a) == sa);
  g_assert_cmpuint (engine_gate_n_waiting (sa), ==, 1);
  g_assert_true (modike_ike_initiate (a->ike, "b", NULL));
  g_assert_cmpuint (engine_gate_n_waiting (sa), ==, 1);
  modike_ike_sa_release_phase2 (sa, ta->plugin);
  net_run (net, 2000, NULL, NULL);
  check_pair (a, b, 1);
  assert_no_failures (a, b);
  net_free (net);
}

/* The holder deletes the SA and starts again (extended authentication
 * retried): the Quick Mode that waited at the gate comes along. */
static void
test_hold_restart (void)
{
  Params p = params_default ();
  Node *a, *b;
  TxPlugin *ta;
  ModikeIkeSa *sa;
  Net *net = held_one (&p, &a, &b, &ta, &sa);

  ta->hold = FALSE;
  modike_ike_sa_delete (sa, TRUE);
  net_run (net, 3000, NULL, NULL);
  g_assert_cmpuint (a->p1_up, ==, 2);
  check_pair (a, b, 1);
  assert_no_failures (a, b);
  net_free (net);
}

/* The SA goes (deleted without restart) while a Quick Mode of ours waits
 * at the gate: that Quick Mode is reported failed with the reason, not
 * dropped silently. */
static void
test_hold_delete (void)
{
  Params p = params_default ();
  Node *a, *b;
  TxPlugin *ta;
  ModikeIkeSa *sa;
  Net *net = held_one (&p, &a, &b, &ta, &sa);

  g_assert_cmpuint (a->p2_failed, ==, 0);
  modike_ike_sa_delete (sa, FALSE);
  net_run (net, 3000, NULL, NULL);
  g_assert_cmpuint (a->p2_failed, ==, 1);
  g_assert_error (a->p2_error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED);
  g_assert_nonnull (strstr (a->p2_error->message, "deleted while Quick Mode waited"));
  g_assert_cmpuint (a->p2_up + b->p2_up, ==, 0);
  assert_no_sas (a);
  net_free (net);
}

/* A parked Quick Mode message passed its HASH(1): it counts as inbound
 * traffic of the SA (what DPD asks) while it waits. */
static void
test_hold_last_inbound (void)
{
  Params p = params_default ();
  Node *a, *b;
  TxPlugin *ta, *tb;
  Net *net = tx_pair (&p, &a, &b, &ta, &tb);
  TxFilter qa = { .type = MODIKE_EX_QUICK, .drop_no = 1 };
  gint64 up_us;

  qa.from = a;
  net->filter = tx_filter;
  net->filter_user = &qa;
  tb->hold = tb->never_release = TRUE;
  g_assert_true (modike_ike_initiate (a->ike, "b", NULL));
  net_run (net, 500, NULL, NULL);
  up_us = only_sa (b)->established_us;
  g_assert_cmpint (modike_ike_sa_get_last_inbound (only_sa (b)), <=, up_us);
  g_assert_cmpuint (engine_gate_n_waiting (only_sa (b)), ==, 0);
  /* A retransmits QM1 after 1 s: B parks it. */
  net_run (net, 1000, NULL, NULL);
  g_assert_cmpuint (qa.seen, ==, 2);
  g_assert_cmpuint (engine_gate_n_waiting (only_sa (b)), ==, 1);
  g_assert_cmpint (modike_ike_sa_get_last_inbound (only_sa (b)), >=, up_us + 1000 * 1000);
  net_free (net);
}

/* The plugin fails the SA instead of releasing: the waiting Quick Mode
 * (ours at the phase 1 initiator, the peer's parked one at the responder)
 * fails with its error, no children anywhere, the peer gets a DELETE. */
static void
test_hold_fail (gconstpointer data)
{
  gboolean responder = GPOINTER_TO_INT (data);
  Params p = params_default ();
  Node *a, *b, *holder, *other;
  TxPlugin *ta, *tb, *th;
  Net *net = tx_pair (&p, &a, &b, &ta, &tb);

  holder = responder ? b : a;
  other = responder ? a : b;
  th = responder ? tb : ta;
  th->start_on_up = th->hold = th->fail_on_reply = TRUE;
  g_assert_true (modike_ike_initiate (a->ike, "b", NULL));
  net_run (net, 5000, NULL, NULL);
  g_assert_cmpuint (th->done, ==, 1);
  g_assert_cmpuint (th->waiting_at_release, ==, 1);
  g_assert_cmpuint (holder->p2_failed, ==, 1);
  g_assert_error (holder->p2_error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_AUTH);
  g_assert_nonnull (strstr (holder->p2_error->message, "extended authentication failed"));
  g_assert_cmpuint (holder->p1_failed, ==, 1);
  g_assert_cmpuint (a->p2_up + b->p2_up, ==, 0);
  assert_no_sas (a);
  assert_no_sas (b);
  g_assert_cmpuint (other->deleted, ==, 1);
  net_free (net);
}

/* Bounds of the initiator's queue: the (queue+1)th Quick Mode is refused,
 * the waiting ones fail when the time is up; the SA stays. */
static void
test_hold_bound (gconstpointer data)
{
  gboolean configured = GPOINTER_TO_INT (data);
  guint max = configured ? 2 : ENGINE_GATE_MAX_WAITING;
  guint wait_s = configured ? 5 : ENGINE_GATE_WAIT_S;
  Params p = params_default ();
  Node *a, *b;
  TxPlugin *ta, *tb;
  Net *net;
  ModikeIkeSa *sa;
  guint32 spd_id;
  g_autoptr (GError) error = NULL;
  g_autofree char *want = NULL;

  if (configured)
    p.peer_extra_a = "    <option name=\"phase2.hold-queue\" value=\"2\"/>\n"
                     "    <option name=\"phase2.hold-timeout\" value=\"5\"/>\n";
  net = tx_pair (&p, &a, &b, &ta, &tb);
  ta->hold = ta->never_release = TRUE;
  g_assert_true (modike_ike_initiate (a->ike, "b", NULL));
  net_run (net, 500, NULL, NULL);
  sa = only_sa (a);
  g_assert_true (modike_ike_sa_is_established (sa));
  g_assert_cmpuint (engine_gate_n_waiting (sa), ==, 1);
  {
    g_autoptr (GPtrArray) entries = modike_spd_entries (modike_ike_get_spd (a->ike));

    spd_id = ((const ModikeSpdEntry *) g_ptr_array_index (entries, 0))->id;
  }
  /* Already waiting: an acquire from the datapath adds nothing ... */
  engine_acquire (a->ike, spd_id, NULL);
  g_assert_cmpuint (engine_gate_n_waiting (sa), ==, 1);
  /* ... an explicit start does, as do rekeys, up to the bound ... */
  g_assert_true (modike_ike_initiate_child (a->ike, spd_id, &error));
  g_assert_no_error (error);
  for (guint i = 2; i < max; i++)
    {
      g_assert_true (engine_start_qm (sa, spd_id, 0, &error));
      g_assert_no_error (error);
    }
  g_assert_cmpuint (engine_gate_n_waiting (sa), ==, max);
  /* ... and one more is refused, saying why. */
  g_assert_false (modike_ike_initiate_child (a->ike, spd_id, &error));
  want = g_strdup_printf ("phase 2 is held by plugin 'txtest' and %u Quick Modes already wait", max);
  g_assert_nonnull (error);
  g_assert_nonnull (strstr (error->message, want));
  g_clear_error (&error);
  g_assert_cmpuint (a->p2_failed, ==, 0);
  /* Time is up: every waiting one fails; the SA stays, held. */
  net_run (net, wait_s * 1000 - 1000, NULL, NULL);
  g_assert_cmpuint (a->p2_failed, ==, 0);
  net_run (net, 2000, NULL, NULL);
  g_assert_cmpuint (a->p2_failed, ==, max);
  g_assert_error (a->p2_error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_TIMEOUT);
  g_free (want);
  want = g_strdup_printf ("Quick Mode waited %u s for plugin 'txtest' to release phase 2", wait_s);
  g_assert_nonnull (strstr (a->p2_error->message, want));
  g_assert_cmpuint (engine_gate_n_waiting (sa), ==, 0);
  g_assert_true (modike_ike_sa_is_established (only_sa (a)));
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (a->ike)), ==, 0);
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (b->ike)), ==, 0);
  net_free (net);
}

/* The responder never releases: the peer's parked Quick Mode fails when
 * its time is up, its retransmissions meanwhile ignored as duplicates. */
static void
test_hold_bound_responder (void)
{
  Params p = params_default ();
  Node *a, *b;
  TxPlugin *ta, *tb;
  Net *net = tx_pair (&p, &a, &b, &ta, &tb);
  guint64 dups;

  tb->hold = tb->never_release = TRUE;
  g_assert_true (modike_ike_initiate (a->ike, "b", NULL));
  net_run (net, 500, NULL, NULL);
  g_assert_cmpuint (engine_gate_n_waiting (only_sa (b)), ==, 1);
  dups = b->ike->stats.rx_duplicates;
  net_run (net, ENGINE_GATE_WAIT_S * 1000, NULL, NULL);
  /* A gave up after its retransmits; B failed the parked one at 30 s. */
  g_assert_cmpuint (b->ike->stats.rx_duplicates, >=, dups + 3);
  g_assert_cmpuint (a->p2_failed, ==, 1);
  g_assert_cmpuint (b->p2_failed, ==, 1);
  g_assert_error (b->p2_error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_TIMEOUT);
  g_assert_cmpuint (engine_gate_n_waiting (only_sa (b)), ==, 0);
  g_assert_cmpuint (b->ike->stats.handler_calls, >, 0);
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (b->ike)), ==, 0);
  net_free (net);
}

/* TX_R1 suspends; A's retransmission meanwhile is not processed again;
 * the reply goes out on resume and the exchange completes. */
static void
test_suspend (void)
{
  Params p = params_default ();
  Node *a, *b;
  TxPlugin *ta, *tb;
  Net *net = tx_pair (&p, &a, &b, &ta, &tb);
  TxFilter f = { .type = TX_TYPE };
  guint64 dropped;

  f.from = a;
  ta->start_on_up = TRUE;
  tb->suspend = TRUE;
  net->filter = tx_filter;
  net->filter_user = &f;
  bring_up (net, a, b, 1);
  dropped = b->ike->stats.rx_dropped;
  g_assert_cmpuint (tb->r1_calls, ==, 1);
  g_assert_cmpuint (ta->done, ==, 0);
  net_run (net, TX_SUSPEND_MS - 100, NULL, NULL);
  /* A retransmitted once (at 1 s); B, busy, dropped it. */
  g_assert_cmpuint (f.seen, ==, 2);
  g_assert_cmpuint (b->ike->stats.rx_dropped, ==, dropped + 1);
  g_assert_cmpuint (tb->r1_calls, ==, 1);
  g_assert_cmpuint (tb->resumed, ==, 0);
  net_run (net, 200, NULL, NULL);
  g_assert_cmpuint (tb->resumed, ==, 1);
  g_assert_cmpuint (ta->done, ==, 1);
  g_assert_cmpuint (tb->r1_calls, ==, 1);
  g_assert_cmpuint (ta->i2_calls, ==, 1);
  net_run (net, 20000, NULL, NULL);
  g_assert_cmpuint (tb->r1_calls, ==, 1);
  g_assert_cmpuint (ta->done, ==, 1);
  check_pair (a, b, 1);
  net_free (net);
  g_assert_cmpuint (tb->destroyed, ==, 1);
}

/* The SA goes while TX_R1 is suspended: the exchange is freed with it,
 * its data's destroy cancels the pending work, nothing resumes. */
static void
test_suspend_delete (void)
{
  Params p = params_default ();
  Node *a, *b;
  TxPlugin *ta, *tb;
  Net *net = tx_pair (&p, &a, &b, &ta, &tb);

  ta->start_on_up = TRUE;
  tb->suspend = TRUE;
  bring_up (net, a, b, 1);
  g_assert_cmpuint (tb->r1_calls, ==, 1);
  net_run (net, 500, NULL, NULL);
  modike_ike_terminate (b->ike, "a");
  g_assert_cmpuint (tb->destroyed, ==, 1);
  net_run (net, 20000, NULL, NULL);
  g_assert_cmpuint (tb->resumed, ==, 0);
  g_assert_cmpuint (ta->done, ==, 0);
  assert_no_sas (a);
  assert_no_sas (b);
  /* A's exchange went with A's SA (the DELETE). */
  g_assert_cmpuint (ta->destroyed, ==, 1);
  net_free (net);
}

/* What modike_exchange_start refuses. */
static void
test_start_refused (void)
{
  Params p = params_default ();
  Node *a, *b;
  TxPlugin *ta, *tb;
  Net *net = tx_pair (&p, &a, &b, &ta, &tb);
  ModikeIkeSa *sa;
  g_autoptr (GError) error = NULL;

  /* Not before phase 1 is up. */
  g_assert_true (modike_ike_initiate (a->ike, "b", NULL));
  g_assert_null (modike_exchange_start (only_sa (a), TX_TYPE, NULL, NULL, &error));
  g_assert_nonnull (strstr (error->message, "needs an established IKE SA"));
  g_clear_error (&error);
  g_assert_true (run_until_up (net, a, b, 1, 30000));
  sa = only_sa (a);
  g_assert_null (modike_exchange_start (sa, MODIKE_EX_QUICK, NULL, NULL, &error));
  g_assert_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED);
  g_assert_nonnull (strstr (error->message, "the core's own"));
  g_clear_error (&error);
  g_assert_null (modike_exchange_start (sa, 250, ta, tx_data_free, &error));
  g_assert_nonnull (strstr (error->message, "not registered"));
  /* The data is freed on refusal too. */
  g_assert_cmpuint (ta->destroyed, ==, 1);
  net_free (net);
}

/* A hashed packet is byte for byte HASH(1) over the rest as RFC 2409 5.7
 * lays it out: the same as adding the HASH payload by hand. */
static void
test_hashed_layout (void)
{
  Params p = params_default ();
  Node *a, *b;
  Net *net = pair_up (&p, &a, &b, 1);
  ModikeIkeSa *sa = only_sa (a);
  g_autoptr (ModikeBuilder) mine = modike_builder_new ();
  g_autoptr (ModikeBuilder) manual = modike_builder_new ();
  g_autoptr (GBytes) rest = NULL, p1 = NULL, p2 = NULL;
  guint8 hash[MODIKE_HASH_MAX], iv1[ENGINE_IV_MAX], iv2[ENGINE_IV_MAX];
  const guint32 msgid = 0x01020304;

  modike_builder_add (mine, MODIKE_PL_N, "notify-body", 11);
  modike_builder_add (mine, MODIKE_PL_D, "delete-body", 11);
  rest = modike_builder_serialize (mine, 0, NULL);
  engine_hash_a (sa, FALSE, msgid, NULL, g_bytes_get_data (rest, NULL), g_bytes_get_size (rest), hash);
  modike_builder_add (manual, MODIKE_PL_HASH, hash, modike_hash_len (sa->choice.hash));
  modike_builder_add (manual, MODIKE_PL_N, "notify-body", 11);
  modike_builder_add (manual, MODIKE_PL_D, "delete-body", 11);
  modike_p2_iv (sa->choice.hash, sa->p1_iv, sa->block_len, msgid, iv1);
  memcpy (iv2, iv1, sizeof iv2);
  p1 = engine_build_hashed_packet (sa, MODIKE_EX_INFO, msgid, mine, NULL, iv1, NULL);
  p2 = engine_build_packet (sa, MODIKE_EX_INFO, msgid, manual, iv2, NULL);
  g_assert_nonnull (p1);
  g_assert_true (g_bytes_equal (p1, p2));
  g_assert_true (memcmp (iv1, iv2, sa->block_len) == 0);
  net_free (net);
}

/* The table check: a HASH row must require encryption. */
static void
test_hash_row_check (void)
{
  g_autoptr (ModikeRegistry) reg = modike_registry_new ();
  ModikePlugin *pl = modike_registry_add_plugin (reg, &tx_desc);
  ModikeFsmRow rows[G_N_ELEMENTS (tx_rows)];
  g_autoptr (GError) error = NULL;

  memcpy (rows, tx_rows, sizeof rows);
  rows[1].flags &= ~MODIKE_ROW_ENCRYPTED;
  g_assert_false (modike_register_exchange (pl, TX_TYPE, "Transaction", rows, G_N_ELEMENTS (rows),
                                            &error));
  g_assert_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_INVALID);
  g_assert_nonnull (strstr (error->message, "row 'TX_R1' carries a HASH but does not require the message encrypted"));
}

/* examples/plugin-hello, linked into this program: its own exchange on a
 * private type runs between two nodes that both load it. */
const ModikePluginDescriptor *modike_plugin_descriptor (void);

static void
test_hello_example (void)
{
  Params p = params_default ();
  Node *a, *b;
  Net *net = pair_new (&p, &a, &b);
  TxFilter fa = { .type = 240 };
  Node *nodes[] = { a, b };
  guint64 rejects;

  fa.from = a;
  for (guint i = 0; i < G_N_ELEMENTS (nodes); i++)
    {
      const ModikePluginDescriptor *desc = modike_plugin_descriptor ();
      ModikePlugin *pl = modike_registry_add_plugin (nodes[i]->reg, desc);
      g_autoptr (GError) error = NULL;

      g_assert_true (desc->init (pl, &error));
      g_assert_no_error (error);
      g_assert_true (modike_registry_check_table (nodes[i]->reg, &error));
    }
  net->filter = tx_filter;
  net->filter_user = &fa;
  rejects = a->ike->stats.rx_no_row + b->ike->stats.rx_no_row + a->ike->stats.rx_dropped + b->ike->stats.rx_dropped;
  bring_up (net, a, b, 1);
  settle (net);
  check_pair (a, b, 1);
  /* A (phase 1 initiator) greeted once, encrypted; B answered; nothing
   * was refused or retransmitted. */
  g_assert_cmpuint (fa.seen, ==, 1);
  g_assert_cmpuint (fa.encrypted, ==, 1);
  g_assert_cmpuint (a->ike->stats.rx_no_row + b->ike->stats.rx_no_row + a->ike->stats.rx_dropped +
                      b->ike->stats.rx_dropped, ==, rejects);
  g_assert_cmpuint (a->ike->stats.retransmits, ==, 0);
  net_run (net, 20000, NULL, NULL);
  g_assert_cmpuint (fa.seen, ==, 1);
  g_assert_cmpuint (a->ike->stats.retransmits, ==, 0);
  net_free (net);
}

void
fsm_add_plugin_exchange_tests (void)
{
  g_test_add_func ("/fsm/plugin-exchange/both-start", test_both_start);
  g_test_add_func ("/fsm/plugin-exchange/tampered-hash", test_tampered_hash);
  g_test_add_func ("/fsm/plugin-exchange/loss-dup", test_loss_dup);
  g_test_add_func ("/fsm/plugin-exchange/hold-initiator", test_hold_initiator);
  g_test_add_func ("/fsm/plugin-exchange/hold-responder", test_hold_responder);
  g_test_add_func ("/fsm/plugin-exchange/hold-reload", test_hold_reload);
  g_test_add_func ("/fsm/plugin-exchange/hold-restart", test_hold_restart);
  g_test_add_func ("/fsm/plugin-exchange/hold-last-inbound", test_hold_last_inbound);
  g_test_add_func ("/fsm/plugin-exchange/hold-delete", test_hold_delete);
  g_test_add_data_func ("/fsm/plugin-exchange/hold-fail/initiator", GINT_TO_POINTER (FALSE), test_hold_fail);
  g_test_add_data_func ("/fsm/plugin-exchange/hold-fail/responder", GINT_TO_POINTER (TRUE), test_hold_fail);
  g_test_add_data_func ("/fsm/plugin-exchange/hold-bound/default", GINT_TO_POINTER (FALSE), test_hold_bound);
  g_test_add_data_func ("/fsm/plugin-exchange/hold-bound/configured", GINT_TO_POINTER (TRUE), test_hold_bound);
  g_test_add_func ("/fsm/plugin-exchange/hold-bound-responder", test_hold_bound_responder);
  g_test_add_func ("/fsm/plugin-exchange/suspend", test_suspend);
  g_test_add_func ("/fsm/plugin-exchange/suspend-delete", test_suspend_delete);
  g_test_add_func ("/fsm/plugin-exchange/start-refused", test_start_refused);
  g_test_add_func ("/fsm/plugin-exchange/hash-row-check", test_hash_row_check);
  g_test_add_func ("/fsm/plugin-exchange/hashed-layout", test_hashed_layout);
  g_test_add_func ("/fsm/plugin-exchange/hello-example", test_hello_example);
}
