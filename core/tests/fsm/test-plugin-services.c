/* Suite fsm: the services the core offers plugins on an IKE SA (protected
 * notifies, SA timers, last inbound traffic, delete and restart) and the
 * packet-path hooks, with a test plugin registered on both nodes. */
#include "harness.h"

/* ---- the test plugin ---- */

typedef struct {
  Node *node;
  /* notifies received */
  guint rut, rut_authenticated, acks;
  guint8 rut_spi[16];
  gsize rut_spi_len;
  guint32 rut_seq;
  gboolean answer;       /* answer R-U-THERE with R-U-THERE-ACK */
  /* timers */
  guint fired, destroyed;
  gint64 fired_at;
  gboolean delete_in_timer, restart_in_timer;
  guint after_delete_id; /* what timer_add returned on the dead SA */
  /* hooks */
  gboolean split;        /* tx: split every message into 3 datagrams */
  gboolean split_after_failure; /* tx: only resends */
  guint tx_calls, tx_resends, split_msgs;
  guint32 next_msg;
  GHashTable *parts;     /* message id -> GPtrArray of 3 GBytes (NULL = missing) */
  guint reassembled;
  guint consume;         /* rx: datagrams still to consume */
  guint consumed, rx_seen, rx_after;
  guint keepalives;
} Svc;

static const ModikePluginDescriptor svc_desc = {
  MODIKE_PLUGIN_DESCRIPTOR_INIT,
  .name = "services",
  .version = "0",
};

static void
svc_notify (ModikeIkeSa *sa, const ModikeNotifyPayload *n, gboolean authenticated, gpointer user)
{
  Svc *s = user;
  g_autoptr (GError) error = NULL;

  if (n->type == MODIKE_N_DPD_R_U_THERE_ACK)
    {
      g_assert_true (authenticated);
      s->acks++;
      return;
    }
  g_assert_cmpuint (n->type, ==, MODIKE_N_DPD_R_U_THERE);
  s->rut++;
  if (!authenticated)
    return;
  s->rut_authenticated++;
  s->rut_spi_len = n->spi_len;
  memcpy (s->rut_spi, n->spi, MIN (n->spi_len, sizeof s->rut_spi));
  g_assert_cmpuint (g_bytes_get_size (n->data), ==, 4);
  memcpy (&s->rut_seq, g_bytes_get_data (n->data, NULL), 4);
  if (s->answer)
    {
      g_assert_true (modike_ike_sa_send_notify (sa, MODIKE_N_DPD_R_U_THERE_ACK, MODIKE_PROTO_ISAKMP, n->spi,
                                                n->spi_len, g_bytes_get_data (n->data, NULL), 4, &error));
      g_assert_no_error (error);
    }
}

static void
svc_timer (ModikeIkeSa *sa, gpointer data)
{
  Svc *s = data;

  s->fired++;
  s->fired_at = modike_ike_now_us (modike_ike_sa_get_ike (sa));
  if (s->delete_in_timer || s->restart_in_timer)
    {
      modike_ike_sa_delete (sa, s->restart_in_timer);
      g_assert_false (modike_ike_sa_is_established (sa));
      /* The SA is dead: no new timer, data destroyed at once. */
      s->after_delete_id = modike_ike_sa_timer_add (sa, 10, svc_timer, s, NULL);
    }
}

static void
svc_timer_destroy (gpointer data)
{
  ((Svc *) data)->destroyed++;
}

/* The test encoding: "SPLT" | message id (4) | index | count | chunk. */
#define SPLIT_HDR 10

static GPtrArray *
svc_tx (ModikeIkeSa *sa, GBytes *message, guint attempt, gpointer user)
{
  Svc *s = user;
  GPtrArray *parts;
  gsize len;
  const guint8 *data = g_bytes_get_data (message, &len);
  guint32 id = ++s->next_msg;

  s->tx_calls++;
  if (attempt > 0)
    s->tx_resends++;
  if (!s->split && !(s->split_after_failure && attempt > 0))
    return NULL;
  s->split_msgs++;
  parts = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  for (guint i = 0; i < 3; i++)
    {
      gsize from = len * i / 3, to = len * (i + 1) / 3;
      GByteArray *d = g_byte_array_new ();
      guint8 hdr[SPLIT_HDR] = { 'S', 'P', 'L', 'T', id >> 24, id >> 16, id >> 8, id, i, 3 };

      g_byte_array_append (d, hdr, sizeof hdr);
      g_byte_array_append (d, data + from, (guint) (to - from));
      g_ptr_array_add (parts, g_byte_array_free_to_bytes (d));
    }
  return parts;
}

static ModikeRxVerdict
svc_rx (ModikeIke *ike, const ModikeAddr *local, const ModikeAddr *remote, GBytes *datagram, GBytes **replace,
        gpointer user)
{
  Svc *s = user;
  gsize len;
  const guint8 *d = g_bytes_get_data (datagram, &len);
  GPtrArray *parts;
  guint32 id;
  GByteArray *whole;

  g_assert_true (ike == s->node->ike);
  s->rx_seen++;
  if (s->consume > 0)
    {
      s->consume--;
      s->consumed++;
      return MODIKE_RX_CONSUME;
    }
  if (len == 1 && d[0] == 0xff)
    {
      s->keepalives++;
      return MODIKE_RX_CONSUME;
    }
  if (len < SPLIT_HDR || memcmp (d, "SPLT", 4) != 0)
    return MODIKE_RX_PASS;
  g_assert_cmpuint (d[8], <, 3);
  g_assert_cmpuint (d[9], ==, 3);
  id = (guint32) d[4] << 24 | (guint32) d[5] << 16 | (guint32) d[6] << 8 | d[7];
  parts = g_hash_table_lookup (s->parts, GUINT_TO_POINTER (id));
  if (parts == NULL)
    {
      parts = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
      g_ptr_array_set_size (parts, 3);
      g_hash_table_insert (s->parts, GUINT_TO_POINTER (id), parts);
    }
  if (g_ptr_array_index (parts, d[8]) == NULL)
    g_ptr_array_index (parts, d[8]) = g_bytes_new_from_bytes (datagram, SPLIT_HDR, len - SPLIT_HDR);
  for (guint i = 0; i < 3; i++)
    if (g_ptr_array_index (parts, i) == NULL)
      return MODIKE_RX_CONSUME;
  whole = g_byte_array_new ();
  for (guint i = 0; i < 3; i++)
    {
      gsize n;
      const guint8 *p = g_bytes_get_data (g_ptr_array_index (parts, i), &n);

      g_byte_array_append (whole, p, (guint) n);
    }
  g_hash_table_remove (s->parts, GUINT_TO_POINTER (id));
  s->reassembled++;
  *replace = g_byte_array_free_to_bytes (whole);
  return MODIKE_RX_REPLACE;
}

/* A second receive hook, after svc_rx: sees only what svc_rx passed on. */
static ModikeRxVerdict
svc_rx_after (ModikeIke *ike, const ModikeAddr *local, const ModikeAddr *remote, GBytes *datagram,
              GBytes **replace, gpointer user)
{
  Svc *s = user;
  gsize len;
  const guint8 *d = g_bytes_get_data (datagram, &len);

  /* Never a fragment: the hook before reassembled or kept them. */
  g_assert_false (len >= 4 && memcmp (d, "SPLT", 4) == 0);
  s->rx_after++;
  return MODIKE_RX_PASS;
}

static void
svc_register (Node *n, Svc *s)
{
  ModikePlugin *pl = modike_registry_add_plugin (n->reg, &svc_desc);
  g_autoptr (GError) error = NULL;

  g_assert_nonnull (pl);
  s->node = n;
  s->parts = g_hash_table_new_full (NULL, NULL, NULL, (GDestroyNotify) g_ptr_array_unref);
  g_assert_true (modike_register_notify (pl, MODIKE_N_DPD_R_U_THERE, svc_notify, s, &error));
  g_assert_true (modike_register_notify (pl, MODIKE_N_DPD_R_U_THERE_ACK, svc_notify, s, &error));
  g_assert_true (modike_register_rx_hook (pl, svc_rx, s, &error));
  g_assert_true (modike_register_rx_hook (pl, svc_rx_after, s, &error));
  g_assert_true (modike_register_tx_hook (pl, svc_tx, s, &error));
  g_assert_no_error (error);
}

static void
svc_clear (Svc *s)
{
  g_clear_pointer (&s->parts, g_hash_table_unref);
}

/* Two nodes with the test plugin; B's peer entry without a remote
 * address when responder_only. */
typedef struct {
  Svc sa, sb;  /* the plugin on A, on B */
  Node *a, *b;
  Net *net;
} Fix;

static void
fix_setup (Fix *f, gboolean two_policies, gboolean responder_only)
{
  Params p = params_default ();
  g_autofree char *xa = NULL, *xb = NULL;

  p.two_policies = two_policies;
  xa = config_xml (&p, TRUE);
  xb = config_xml (&p, FALSE);
  f->net = net_new ();
  f->a = node_alloc (f->net, "a", "192.0.2.2");
  f->b = node_alloc (f->net, "b", "192.0.2.1");
  svc_register (f->a, &f->sa);
  svc_register (f->b, &f->sb);
  if (responder_only)
    {
      char *line = strstr (xb, "    <remote address=\"192.0.2.2\"/>\n");

      g_assert_nonnull (line);
      memmove (line, strchr (line, '\n') + 1, strlen (strchr (line, '\n') + 1) + 1);
    }
  node_configure (f->a, xa);
  node_configure (f->b, xb);
}

static void
fix_one (Fix *f, gconstpointer data)
{
  fix_setup (f, FALSE, FALSE);
}

static void
fix_two_policies (Fix *f, gconstpointer data)
{
  fix_setup (f, TRUE, FALSE);
}

static void
fix_responder_only (Fix *f, gconstpointer data)
{
  fix_setup (f, FALSE, TRUE);
}

static void
fix_teardown (Fix *f, gconstpointer data)
{
  g_clear_pointer (&f->net, net_free);
  svc_clear (&f->sa);
  svc_clear (&f->sb);
}

static void
cookies (ModikeIkeSa *sa, guint8 out[16])
{
  memcpy (out, modike_ike_sa_get_icookie (sa), 8);
  memcpy (out + 8, modike_ike_sa_get_rcookie (sa), 8);
}

/* ---- protected notifies ---- */

static gboolean
pred_a_has_rcookie (Net *net, gpointer user)
{
  Node *a = user;

  return a->ike->sas->len == 1 && ((ModikeIkeSa *) g_ptr_array_index (a->ike->sas, 0))->rcookie_set;
}

/* An Informational the core would never send on an established SA:
 * encrypted with an all-zero HASH(1), or plain. */
static void
send_bad_info (ModikeIkeSa *sa, GByteArray *body, gboolean encrypted)
{
  g_autoptr (ModikeBuilder) b = modike_builder_new ();
  g_autoptr (GBytes) packet = NULL;
  guint32 msgid = engine_alloc_msgid (sa);
  guint8 iv[MODIKE_HASH_MAX];
  static const guint8 zero_hash[MODIKE_HASH_MAX];
  g_autoptr (GError) error = NULL;

  if (encrypted)
    modike_builder_add (b, MODIKE_PL_HASH, zero_hash, modike_hash_len (sa->choice.hash));
  modike_builder_add_array (b, MODIKE_PL_N, body);
  modike_p2_iv (sa->choice.hash, sa->p1_iv, sa->block_len, msgid, iv);
  packet = engine_build_packet (sa, MODIKE_EX_INFO, msgid, b, encrypted ? iv : NULL, &error);
  g_assert_no_error (error);
  engine_transmit (sa, packet, TRUE);
}

static void
test_notify (Fix *f, gconstpointer data)
{
  Node *a = f->a, *b = f->b;
  Net *net = f->net;
  ModikeIkeSa *ia;
  guint8 spi[16];
  guint8 seq[4] = { 0, 0, 0x12, 0x34 };
  guint32 want_seq;
  guint64 auth_failures;
  g_autoptr (GError) error = NULL;

  /* During phase 1: no protected notify yet; a plain one reaches the
   * plugin unauthenticated. */
  g_assert_true (modike_ike_initiate (a->ike, "b", NULL));
  g_assert_true (net_run (net, 5000, pred_a_has_rcookie, a));
  ia = g_ptr_array_index (a->ike->sas, 0);
  g_assert_false (modike_ike_sa_is_established (ia));
  g_assert_false (modike_ike_sa_send_notify (ia, MODIKE_N_DPD_R_U_THERE, 0, NULL, 0, seq, 4, &error));
  g_assert_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED);
  g_clear_error (&error);
  g_assert_true (engine_send_info (ia, MODIKE_PL_N,
                                   engine_notify_body (ia, MODIKE_N_DPD_R_U_THERE, 0, NULL, 0, seq, 4), &error));
  g_assert_no_error (error);
  g_assert_true (run_until_up (net, a, b, 1, 30000));
  g_assert_cmpuint (f->sb.rut, ==, 1);
  g_assert_cmpuint (f->sb.rut_authenticated, ==, 0);

  /* Established: R-U-THERE with the cookies as SPI and a sequence number,
   * answered from the handler with R-U-THERE-ACK. */
  ia = only_sa (a);
  cookies (ia, spi);
  f->sb.answer = TRUE;
  g_assert_true (modike_ike_sa_send_notify (ia, MODIKE_N_DPD_R_U_THERE, MODIKE_PROTO_ISAKMP, spi, sizeof spi, seq,
                                            sizeof seq, &error));
  g_assert_no_error (error);
  net_run (net, 100, NULL, NULL);
  g_assert_cmpuint (f->sb.rut, ==, 2);
  g_assert_cmpuint (f->sb.rut_authenticated, ==, 1);
  g_assert_cmpuint (f->sb.rut_spi_len, ==, 16);
  g_assert_true (memcmp (f->sb.rut_spi, spi, 16) == 0);
  memcpy (&want_seq, seq, 4);
  g_assert_cmpuint (f->sb.rut_seq, ==, want_seq);
  g_assert_cmpuint (f->sa.acks, ==, 1);

  /* Forged (zero HASH) and unprotected ones on the established SA never
   * reach the plugin. */
  auth_failures = b->ike->stats.auth_failures;
  send_bad_info (ia, engine_notify_body (ia, MODIKE_N_DPD_R_U_THERE, 0, NULL, 0, seq, 4), TRUE);
  send_bad_info (ia, engine_notify_body (ia, MODIKE_N_DPD_R_U_THERE, 0, NULL, 0, seq, 4), FALSE);
  g_assert_true (engine_send_info (ia, MODIKE_PL_N,
                                   engine_notify_body (ia, MODIKE_N_DPD_R_U_THERE, 0, NULL, 0, seq, 4), NULL));
  net_run (net, 100, NULL, NULL);
  /* Only the genuine protected one (sent above with engine_send_info)
   * counted; the forged one failed its HASH(1). */
  g_assert_cmpuint (b->ike->stats.auth_failures, ==, auth_failures + 1);
  g_assert_cmpuint (f->sb.rut, ==, 3);
  g_assert_cmpuint (f->sb.rut_authenticated, ==, 2);
  g_assert_cmpuint (f->sa.acks, ==, 2);

  /* Any one payload: a DELETE of the ISAKMP SA as an Informational. */
  {
    ModikeDeletePayload d = { 0 };
    g_autoptr (GByteArray) body = g_byte_array_new ();

    d.doi = MODIKE_DOI_IPSEC;
    d.protocol = MODIKE_PROTO_ISAKMP;
    d.spi_len = 16;
    d.spis = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
    g_ptr_array_add (d.spis, g_bytes_new (spi, 16));
    modike_delete_payload_encode (&d, body);
    g_ptr_array_unref (d.spis);
    g_assert_false (modike_ike_sa_send_info (ia, MODIKE_PL_HASH, body->data, body->len, &error));
    g_clear_error (&error);
    g_assert_true (modike_ike_sa_send_info (ia, MODIKE_PL_D, body->data, body->len, &error));
    g_assert_no_error (error);
  }
  net_run (net, 100, NULL, NULL);
  g_assert_cmpuint (modike_ike_count_sas (b->ike, FALSE), ==, 0);
}

/* ---- SA timers ---- */

static void
test_timer (Fix *f, gconstpointer data)
{
  Node *a = f->a, *b = f->b;
  Net *net = f->net;
  ModikeIkeSa *ia;
  gint64 t0;
  guint id;

  bring_up (net, a, b, 1);
  ia = only_sa (a);
  t0 = modike_ike_now_us (a->ike);
  g_assert_cmpint (t0, ==, net->now_us);

  /* Fires at t0 + 5 s on the mock clock, not before; data destroyed once. */
  id = modike_ike_sa_timer_add (ia, 5000, svc_timer, &f->sa, svc_timer_destroy);
  g_assert_cmpuint (id, >, 0);
  net_run (net, 4999, NULL, NULL);
  g_assert_cmpuint (f->sa.fired, ==, 0);
  net_run (net, 1, NULL, NULL);
  g_assert_cmpuint (f->sa.fired, ==, 1);
  g_assert_cmpint (f->sa.fired_at, ==, t0 + 5 * G_USEC_PER_SEC);
  g_assert_cmpuint (f->sa.destroyed, ==, 1);
  modike_ike_sa_timer_cancel (ia, id); /* fired: nothing happens */

  /* Cancelled: destroyed, never fires. */
  id = modike_ike_sa_timer_add (ia, 1000, svc_timer, &f->sa, svc_timer_destroy);
  modike_ike_sa_timer_cancel (ia, id);
  g_assert_cmpuint (f->sa.destroyed, ==, 2);
  net_run (net, 5000, NULL, NULL);
  g_assert_cmpuint (f->sa.fired, ==, 1);

  /* Dies with the SA: no callback after the delete. */
  modike_ike_sa_timer_add (ia, 1000, svc_timer, &f->sa, svc_timer_destroy);
  modike_ike_sa_timer_add (ia, 2000, svc_timer, &f->sa, svc_timer_destroy);
  modike_ike_sa_delete (ia, FALSE);
  g_assert_cmpuint (f->sa.destroyed, ==, 4);
  net_run (net, 10000, NULL, NULL);
  g_assert_cmpuint (f->sa.fired, ==, 1);
  assert_no_sas (a);
  assert_no_sas (b);

  /* A timer that deletes its own SA (dead peer): after that the SA takes
   * no timer; the sibling timer never fires. */
  bring_up (net, a, b, 1);
  ia = only_sa (a);
  f->sa.delete_in_timer = TRUE;
  modike_ike_sa_timer_add (ia, 1000, svc_timer, &f->sa, svc_timer_destroy);
  modike_ike_sa_timer_add (ia, 1500, svc_timer, &f->sa, svc_timer_destroy);
  net_run (net, 5000, NULL, NULL);
  g_assert_cmpuint (f->sa.fired, ==, 2);
  g_assert_cmpuint (f->sa.after_delete_id, ==, 0);
  g_assert_cmpuint (f->sa.destroyed, ==, 6);
  assert_no_sas (a);
  assert_no_sas (b);

  /* Timers left on a live SA go with the engine. */
  f->sa.delete_in_timer = FALSE;
  bring_up (net, a, b, 1);
  modike_ike_sa_timer_add (only_sa (a), 60000, svc_timer, &f->sa, svc_timer_destroy);
  g_clear_pointer (&f->net, net_free);
  g_assert_cmpuint (f->sa.destroyed, ==, 7);
}

/* ---- last inbound traffic ---- */

/* A datapath that only keeps last_us per inbound/outbound SPI. */
typedef struct {
  GHashTable *last;  /* (dir << 32 | spi) -> gint64 last_us */
} LastDp;

static guint64
last_key (ModikeDirection dir, guint32 spi)
{
  return (guint64) dir << 32 | spi;
}

static void
ldp_sa_stats (gpointer user, ModikeDirection dir, guint32 spi, ModikeSaStats *out)
{
  LastDp *dp = user;
  guint64 key = last_key (dir, spi);
  gint64 *v = g_hash_table_lookup (dp->last, &key);

  memset (out, 0, sizeof *out);
  out->last_us = v != NULL ? *v : 0;
}

static void
ldp_set (LastDp *dp, ModikeDirection dir, guint32 spi, gint64 when)
{
  guint64 *key = g_new (guint64, 1);
  gint64 *v = g_new (gint64, 1);

  *key = last_key (dir, spi);
  *v = when;
  g_hash_table_replace (dp->last, key, v);
}

static const ModikeDatapathOps last_dp_ops = {
  .name = "lastdp",
  .sa_stats = ldp_sa_stats,
};

static const ModikePluginDescriptor last_dp_desc = {
  MODIKE_PLUGIN_DESCRIPTOR_INIT,
  .name = "lastdp",
  .version = "0",
};

static void
test_last_inbound (void)
{
  Params p = params_default ();
  Net *net = net_new ();
  g_autofree char *xa = config_xml (&p, TRUE);
  Node *a = node_alloc (net, "a", "192.0.2.2");
  Node *b = node_new (net, "b", &p, FALSE);
  LastDp dp = { g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, g_free) };
  ModikePlugin *pl = modike_registry_add_plugin (a->reg, &last_dp_desc);
  g_autoptr (GError) error = NULL;
  ModikeIkeSa *ia;
  EngineChild *c;
  gint64 up, t;

  g_assert_true (modike_register_datapath (pl, &last_dp_ops, &dp, &error));
  g_assert_no_error (error);
  node_configure (a, xa);
  bring_up (net, a, b, 1);
  ia = only_sa (a);
  c = g_ptr_array_index (ia->children, 0);
  up = net->now_us;

  /* The last IKE message A took was B's Quick Mode reply. */
  g_assert_cmpint (modike_ike_sa_get_last_inbound (ia), >, 0);
  g_assert_cmpint (modike_ike_sa_get_last_inbound (ia), <=, up);

  /* ESP arriving later moves it; outbound ESP does not. */
  net_run (net, 10000, NULL, NULL);
  t = net->now_us;
  ldp_set (&dp, MODIKE_DIR_OUT, c->spi_out, t + 5);
  g_assert_cmpint (modike_ike_sa_get_last_inbound (ia), <=, up);
  ldp_set (&dp, MODIKE_DIR_IN, c->spi_in, t);
  g_assert_cmpint (modike_ike_sa_get_last_inbound (ia), ==, t);

  /* A protected Informational from the peer moves it; a forged one not. */
  net_run (net, 10000, NULL, NULL);
  send_bad_info (only_sa (b), engine_notify_body (only_sa (b), MODIKE_N_DPD_R_U_THERE, 0, NULL, 0, NULL, 0), TRUE);
  net_run (net, 100, NULL, NULL);
  g_assert_cmpint (modike_ike_sa_get_last_inbound (ia), ==, t);
  g_assert_true (modike_ike_sa_send_notify (only_sa (b), MODIKE_N_DPD_R_U_THERE, 0, NULL, 0, NULL, 0, &error));
  g_assert_no_error (error);
  t = net->now_us;
  net_run (net, 100, NULL, NULL);
  g_assert_cmpint (modike_ike_sa_get_last_inbound (ia), ==, t);
  net_free (net);
  g_hash_table_destroy (dp.last);
}

/* ---- delete and restart ---- */

static void
test_delete (Fix *f, gconstpointer data)
{
  Node *a = f->a, *b = f->b;
  Net *net = f->net;
  ModikeIkeSa *ia;
  guint8 c[16], other[8] = { 1 };

  bring_up (net, a, b, 1);
  ia = only_sa (a);
  cookies (ia, c);
  /* Found by its cookies, or the initiator cookie alone; not by others. */
  g_assert_true (modike_ike_find_sa (a->ike, c, c + 8) == ia);
  g_assert_true (modike_ike_find_sa (b->ike, c, NULL) == only_sa (b));
  g_assert_null (modike_ike_find_sa (a->ike, c, other));
  g_assert_null (modike_ike_find_sa (a->ike, other, c + 8));
  modike_ike_sa_delete (ia, FALSE);
  g_assert_null (modike_ike_find_sa (a->ike, c, c + 8));
  assert_no_sas (a);
  net_run (net, 60000, NULL, NULL);
  /* B heard the DELETEs; nobody starts again. */
  assert_no_sas (b);
  assert_no_sas (a);
  g_assert_cmpuint (a->deleted, ==, 1);
  g_assert_cmpuint (b->deleted, ==, 1);
  g_assert_cmpuint (a->p1_up, ==, 1);
}

static void
test_restart (Fix *f, gconstpointer data)
{
  gboolean from_responder = GPOINTER_TO_INT (data);
  Node *a = f->a, *b = f->b;
  Net *net = f->net;
  guint8 old_a[16], now_a[16];

  bring_up (net, a, b, 2);
  cookies (only_sa (a), old_a);
  /* From a timer, as dead peer detection would; B (the responder of the
   * first SA) restarts as initiator. */
  if (from_responder)
    {
      f->sb.restart_in_timer = TRUE;
      modike_ike_sa_timer_add (only_sa (b), 1000, svc_timer, &f->sb, NULL);
    }
  else
    {
      f->sa.restart_in_timer = TRUE;
      modike_ike_sa_timer_add (only_sa (a), 1000, svc_timer, &f->sa, NULL);
    }
  net_run (net, 1000, NULL, NULL);
  g_assert_true (run_until_up (net, a, b, 2, 30000));
  check_pair (a, b, 2);
  cookies (only_sa (a), now_a);
  g_assert_false (memcmp (old_a, now_a, 16) == 0);
  g_assert_cmpint (only_sa (from_responder ? b : a)->role, ==, MODIKE_ROLE_INITIATOR);
  assert_up_counts (a, b, 2, 4);
  assert_no_failures (a, b);
}

/* The SA a plugin deletes with restart was replaced already (phase 1
 * rekeyed, its DELETE lost): the successor carries the peer, so no phase 1
 * starts again and the children stay. */
static void
test_restart_replaced (Fix *f, gconstpointer data)
{
  Node *a = f->a, *b = f->b;
  Net *net = f->net;
  ModikeIkeSa *old, *now;

  bring_up (net, a, b, 1);
  old = only_sa (a);
  net_fire_now (net, old->rekey_timer);
  net_run (net, 1000, NULL, NULL);
  g_assert_cmpuint (a->p1_up, ==, 2);
  g_assert_true (old->rekeyed);
  now = engine_best_established (engine_peer_sas (a->ike, "b"), NULL);
  g_assert_true (now != old);
  modike_ike_sa_delete (old, TRUE);
  net_run (net, 30000, NULL, NULL);
  g_assert_cmpuint (a->p1_up, ==, 2);
  g_assert_true (only_sa (a) == now);
  check_pair (a, b, 1);
  assert_no_failures (a, b);
}

/* B's entry has no remote address: it cannot initiate, so its restart
 * only deletes (and says so). */
static void
test_restart_responder_only (Fix *f, gconstpointer data)
{
  Node *a = f->a, *b = f->b;
  Net *net = f->net;
  guint64 rx;

  bring_up (net, a, b, 1);
  rx = a->ike->stats.rx_packets;
  modike_ike_sa_delete (only_sa (b), TRUE);
  net_run (net, 60000, NULL, NULL);
  /* A got the two DELETEs (ESP and ISAKMP) and nothing else. */
  g_assert_cmpuint (a->ike->stats.rx_packets, ==, rx + 2);
  assert_no_sas (a);
  assert_no_sas (b);
  g_assert_cmpuint (b->p1_up, ==, 1);
}

/* ---- packet-path hooks ---- */

static FilterResult
filter_only_split (Net *net, guint n, Packet *pk, gpointer user)
{
  gsize len;
  const guint8 *d = g_bytes_get_data (pk->data, &len);

  g_assert_true (len > SPLIT_HDR && memcmp (d, "SPLT", 4) == 0);
  (*(guint *) user)++;
  return FILTER_PASS;
}

/* Every message travels as 3 datagrams and is put together before the
 * parser; with datagram `lose` lost, the retransmission is split again. */
static void
test_split (Fix *f, gconstpointer data)
{
  guint lose = GPOINTER_TO_UINT (data);
  Node *a = f->a, *b = f->b;
  Net *net = f->net;
  guint datagrams = 0;

  f->sa.split = f->sb.split = TRUE;
  net->filter = filter_only_split;
  net->filter_user = &datagrams;
  if (lose != 0)
    g_hash_table_add (net->drop, GUINT_TO_POINTER (lose));
  bring_up (net, a, b, 1);
  check_pair (a, b, 1);
  assert_no_failures (a, b);
  /* MM 1-6, QM 1-3: 9 messages of 3 datagrams (+ a resend when one was lost). */
  g_assert_cmpuint (f->sa.split_msgs + f->sb.split_msgs, ==, lose != 0 ? 10 : 9);
  g_assert_cmpuint (datagrams, ==, 3 * (f->sa.split_msgs + f->sb.split_msgs) - (lose != 0 ? 1 : 0));
  /* The message with the lost part is never put together; its resend is. */
  g_assert_cmpuint (f->sa.reassembled + f->sb.reassembled, ==, 9);
  g_assert_cmpuint (f->sa.tx_resends + f->sb.tx_resends, ==, lose != 0 ? 1 : 0);
  /* The second hook saw each reassembled message, never a fragment. */
  g_assert_cmpuint (f->sa.rx_after, ==, f->sa.reassembled);
  g_assert_cmpuint (f->sb.rx_after, ==, f->sb.reassembled);
  g_assert_cmpuint (a->ike->stats.rx_garbage + b->ike->stats.rx_garbage, ==, 0);
}

/* Whole messages first; a plugin that splits only resends (fragmentation
 * after a failed retransmission). B's MM2 is lost: A's retransmitted MM1
 * goes split, and B's answer to it (a replay) goes split too. */
static void
test_split_after_failure (Fix *f, gconstpointer data)
{
  Node *a = f->a, *b = f->b;
  Net *net = f->net;

  f->sa.split_after_failure = f->sb.split_after_failure = TRUE;
  g_hash_table_add (net->drop, GUINT_TO_POINTER (2));
  bring_up (net, a, b, 1);
  check_pair (a, b, 1);
  g_assert_cmpuint (f->sa.tx_resends, ==, 1);
  g_assert_cmpuint (f->sb.tx_resends, ==, 1);
  g_assert_cmpuint (f->sa.split_msgs, ==, 1);
  g_assert_cmpuint (f->sb.split_msgs, ==, 1);
  g_assert_cmpuint (f->sa.reassembled, ==, 1);
  g_assert_cmpuint (f->sb.reassembled, ==, 1);
  g_assert_cmpuint (b->ike->stats.rx_replays, ==, 1);
}

/* A hook that consumes without replacing drops the datagram: nothing of
 * it reaches the parser or the hooks after it. */
static void
test_consume (Fix *f, gconstpointer data)
{
  Node *a = f->a, *b = f->b;
  Net *net = f->net;
  guint64 rx;

  f->sb.consume = 2; /* MM1 and its first retransmission */
  rx = b->ike->stats.rx_packets;
  g_assert_true (modike_ike_initiate (a->ike, "b", NULL));
  net_run (net, 1500, NULL, NULL);
  g_assert_cmpuint (f->sb.consumed, ==, 2);
  g_assert_cmpuint (f->sb.rx_after, ==, 0);
  g_assert_cmpuint (b->ike->stats.rx_packets, ==, rx + 2);
  g_assert_cmpuint (b->ike->stats.rx_garbage + b->ike->stats.rx_dropped, ==, 0);
  g_assert_cmpuint (modike_ike_count_sas (b->ike, FALSE), ==, 0);
  g_assert_true (run_until_up (net, a, b, 1, 30000));
  g_assert_cmpuint (f->sb.consumed, ==, 2);
  g_assert_cmpuint (a->ike->stats.retransmits, ==, 2);
}

/* Raw bytes (a NAT keepalive) go out as they are, past the transmit hook. */
static void
test_raw (Fix *f, gconstpointer data)
{
  static const guint8 keepalive[1] = { 0xff };
  Node *a = f->a, *b = f->b;
  Net *net = f->net;
  g_autoptr (GError) error = NULL;
  guint tx_calls;
  ModikeIkeSa *ia;

  bring_up (net, a, b, 1);
  ia = only_sa (a);
  tx_calls = f->sa.tx_calls;
  g_assert_true (modike_ike_sa_send_raw (ia, keepalive, sizeof keepalive, &error));
  g_assert_no_error (error);
  net_run (net, 100, NULL, NULL);
  g_assert_cmpuint (f->sb.keepalives, ==, 1);
  g_assert_cmpuint (f->sa.tx_calls, ==, tx_calls);
  g_assert_cmpuint (b->ike->stats.rx_garbage, ==, 0);
}

static ModikeRxVerdict
other_rx (ModikeIke *ike, const ModikeAddr *local, const ModikeAddr *remote, GBytes *datagram, GBytes **replace,
          gpointer user)
{
  return MODIKE_RX_PASS;
}

static GPtrArray *
other_tx (ModikeIkeSa *sa, GBytes *message, guint attempt, gpointer user)
{
  return NULL;
}

/* The transmit hook is exclusive, receive hooks are not; both go with
 * their plugin. */
static void
test_hook_registry (void)
{
  static const ModikePluginDescriptor other_desc = { MODIKE_PLUGIN_DESCRIPTOR_INIT, .name = "other", .version = "0" };
  g_autoptr (ModikeRegistry) reg = modike_registry_new ();
  ModikePlugin *one = modike_registry_add_plugin (reg, &svc_desc);
  ModikePlugin *two = modike_registry_add_plugin (reg, &other_desc);
  g_autoptr (GError) error = NULL;
  g_autofree char *desc = NULL;
  gpointer user = NULL;

  g_assert_true (modike_register_tx_hook (one, other_tx, one, &error));
  g_assert_false (modike_register_tx_hook (two, other_tx, two, &error));
  g_assert_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_CONFLICT);
  g_assert_nonnull (strstr (error->message, "transmit hook already claimed by 'services'"));
  g_clear_error (&error);
  g_assert_false (modike_register_rx_hook (two, NULL, NULL, &error));
  g_assert_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_true (modike_register_rx_hook (one, other_rx, one, &error));
  g_assert_true (modike_register_rx_hook (two, other_rx, two, &error));
  g_assert_cmpuint (modike_registry_rx_hooks (reg), ==, 2);
  g_assert_true (modike_registry_rx_hook (reg, 1, &user) == other_rx && user == two);
  desc = modike_registry_describe (reg);
  g_assert_nonnull (strstr (desc, "rx-hook by services\nrx-hook by other\ntx-hook by services\n"));
  modike_registry_remove_plugin (reg, one);
  g_assert_cmpuint (modike_registry_rx_hooks (reg), ==, 1);
  g_assert_null (modike_registry_tx_hook (reg, NULL));
  g_assert_true (modike_register_tx_hook (two, other_tx, two, &error));
  g_assert_no_error (error);
}

void
fsm_add_plugin_service_tests (void)
{
#define ADD(path, data, setup, fn) g_test_add ("/fsm/plugin-services/" path, Fix, data, setup, fn, fix_teardown)
  ADD ("notify", NULL, fix_one, test_notify);
  ADD ("timer", NULL, fix_one, test_timer);
  ADD ("delete", NULL, fix_one, test_delete);
  ADD ("restart/initiator", GINT_TO_POINTER (FALSE), fix_two_policies, test_restart);
  ADD ("restart/responder", GINT_TO_POINTER (TRUE), fix_two_policies, test_restart);
  ADD ("restart/responder-only", NULL, fix_responder_only, test_restart_responder_only);
  ADD ("restart/replaced", NULL, fix_one, test_restart_replaced);
  ADD ("split", GUINT_TO_POINTER (0), fix_one, test_split);
  ADD ("split/lost-datagram", GUINT_TO_POINTER (2), fix_one, test_split);
  ADD ("split/after-failure", NULL, fix_one, test_split_after_failure);
  ADD ("consume", NULL, fix_one, test_consume);
  ADD ("raw-datagram", NULL, fix_one, test_raw);
#undef ADD
  g_test_add_func ("/fsm/plugin-services/last-inbound", test_last_inbound);
  g_test_add_func ("/fsm/plugin-services/hook-registry", test_hook_registry);
}
