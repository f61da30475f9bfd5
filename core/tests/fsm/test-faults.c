/* Suite fsm: Loss, duplication, failures (proposals, PSK, timeouts), digest
 * rejections, garbage and corruption. */
#include "harness.h"

/* ---- loss, duplication ---- */

static void
test_loss (gconstpointer data)
{
  gboolean aggressive = GPOINTER_TO_INT (data);
  guint total = aggressive ? 6 : 9; /* phase 1 + Quick Mode messages */

  for (guint n = 1; n <= total; n++)
    {
      Params p = params_default ();
      Node *a, *b;
      Net *net;
      g_autoptr (GError) error = NULL;

      p.exchange = aggressive ? "aggressive" : "main";
      net = pair_new (&p, &a, &b);
      g_hash_table_add (net->drop, GUINT_TO_POINTER (n));
      g_assert_true (modike_ike_initiate (a->ike, "b", &error));
      if (!run_until_up (net, a, b, 1, 60000))
        g_error ("%s: lost packet %u was not recovered", p.exchange, n);
      check_pair (a, b, 1);
      assert_up_counts (a, b, 1, 1);
      /* Somebody retransmitted. */
      g_assert_cmpuint (a->ike->stats.retransmits + b->ike->stats.retransmits, >=, 1);
      net_free (net);
    }
}

static void
test_duplicates (gconstpointer data)
{
  gboolean aggressive = GPOINTER_TO_INT (data);
  guint total = aggressive ? 6 : 9;
  guint64 base_a, base_b;

  {
    Params p = params_default ();
    Node *a, *b;
    Net *net;

    p.exchange = aggressive ? "aggressive" : "main";
    net = pair_up (&p, &a, &b, 1);
    base_a = a->ike->stats.handler_calls;
    base_b = b->ike->stats.handler_calls;
    g_assert_cmpuint (base_a, >=, 4);
    net_free (net);
  }
  for (guint n = 1; n <= total; n++)
    {
      Params p = params_default ();
      Node *a, *b;
      Net *net;

      p.exchange = aggressive ? "aggressive" : "main";
      net = pair_new (&p, &a, &b);
      g_hash_table_add (net->dup, GUINT_TO_POINTER (n));
      bring_up (net, a, b, 1);
      check_pair (a, b, 1);
      /* Never processed twice: the same handler runs as without the copy. */
      g_assert_cmpuint (a->ike->stats.handler_calls, ==, base_a);
      g_assert_cmpuint (b->ike->stats.handler_calls, ==, base_b);
      g_assert_cmpuint (a->p1_up + b->p1_up + a->p2_up + b->p2_up, ==, 4);
      g_assert_cmpuint (a->ike->stats.rx_replays + a->ike->stats.rx_duplicates + b->ike->stats.rx_replays +
                          b->ike->stats.rx_duplicates,
                        >=, 1);
      net_free (net);
    }
}

/* ---- failures ---- */

static void
test_no_proposal (void)
{
  Params p = params_default ();
  Node *a, *b;
  Net *net;

  /* A offers 3des-md5-modp1024; B takes only aes128-sha256-modp2048. */
  p.encr = "3des";
  p.hash = "md5";
  p.group = "modp1024";
  p.encr_b = "aes128";
  p.hash_b = "sha256";
  p.group_b = "modp2048";
  net = pair_start (&p, &a, &b);
  net_run (net, 5000, NULL, NULL);
  g_assert_cmpuint (a->p1_failed, ==, 1);
  g_assert_error (a->p1_error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_NO_PROPOSAL_CHOSEN);
  g_assert_nonnull (strstr (a->p1_error->message, "NO_PROPOSAL_CHOSEN"));
  g_assert_nonnull (strstr (a->p1_error->message, "peer b"));
  g_assert_cmpuint (b->p1_failed, ==, 1);
  g_assert_error (b->p1_error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_NO_PROPOSAL_CHOSEN);
  g_assert_cmpuint (a->p1_up + b->p1_up, ==, 0);
  assert_no_sas (a);
  assert_no_sas (b);
  /* Two messages only: the offer and the plain notify. */
  g_assert_cmpuint (net->sent, ==, 2);
  net_free (net);
}

static void
test_no_esp_proposal (void)
{
  Params p = params_default ();
  Node *a, *b;
  Net *net;

  p.esp = "aes256";
  p.integ = "sha512";
  p.esp_b = "aes128";
  p.integ_b = "sha256";
  net = pair_start (&p, &a, &b);
  net_run (net, 5000, NULL, NULL);
  g_assert_cmpuint (a->p1_up, ==, 1);
  g_assert_cmpuint (b->p1_up, ==, 1);
  g_assert_cmpuint (a->p2_failed, ==, 1);
  g_assert_error (a->p2_error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_NO_PROPOSAL_CHOSEN);
  g_assert_cmpuint (b->p2_failed, ==, 1);
  g_assert_error (b->p2_error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_NO_PROPOSAL_CHOSEN);
  g_assert_cmpuint (modike_ike_count_sas (a->ike, TRUE), ==, 1);
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (a->ike)), ==, 0);
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (b->ike)), ==, 0);
  net_free (net);
}

static void
test_wrong_psk (gconstpointer data)
{
  gboolean aggressive = GPOINTER_TO_INT (data);
  Params p = params_default ();
  Node *a, *b;
  Net *net;

  p.exchange = aggressive ? "aggressive" : "main";
  p.psk_b = "otherpsk";
  net = pair_start (&p, &a, &b);
  net_run (net, 5000, NULL, NULL);
  g_assert_cmpuint (a->p1_failed, ==, 1);
  g_assert_cmpuint (b->p1_failed, ==, 1);
  g_assert_error (a->p1_error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_AUTH);
  g_assert_error (b->p1_error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_AUTH);
  g_assert_cmpuint (a->p1_up + b->p1_up, ==, 0);
  assert_no_sas (a);
  assert_no_sas (b);
  net_free (net);
}

static FilterResult
filter_to_b (Net *net, guint n, Packet *pk, gpointer user)
{
  return pk->to != user ? FILTER_PASS : FILTER_DROP; /* B is unreachable */
}

static void
test_timeout (void)
{
  Params p = params_default ();
  Node *a, *b;
  Net *net;

  p.interval = 1000;
  p.tries = 3;
  p.half_open = 600;
  net = pair_new (&p, &a, &b);
  net->filter = filter_to_b;
  net->filter_user = b;
  g_assert_true (modike_ike_initiate (a->ike, "b", NULL));
  net_run (net, 14000, NULL, NULL);
  g_assert_cmpuint (a->p1_failed, ==, 0); /* 1+2+4 s of retransmits, then 8 s of waiting */
  g_assert_cmpuint (net->sent, ==, 4);
  net_run (net, 2000, NULL, NULL);
  g_assert_cmpuint (a->p1_failed, ==, 1);
  g_assert_error (a->p1_error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_TIMEOUT);
  g_assert_cmpuint (net->sent, ==, 4);
  assert_no_sas (a);
  /* Half-open expiry when retransmits last longer. */
  p.half_open = 5;
  {
    Node *a2, *b2;
    Net *net2 = pair_new (&p, &a2, &b2);

    net2->filter = filter_to_b;
    net2->filter_user = b2;
    g_assert_true (modike_ike_initiate (a2->ike, "b", NULL));
    net_run (net2, 6000, NULL, NULL);
    g_assert_cmpuint (a2->p1_failed, ==, 1);
    g_assert_error (a2->p1_error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_TIMEOUT);
    assert_no_sas (a2);
    net_free (net2);
  }
  net_free (net);
}

/* ---- digest rejections ---- */

typedef struct {
  guint hold;
} HoldWant;

static FilterResult
filter_hold (Net *net, guint n, Packet *pk, gpointer user)
{
  HoldWant *w = user;

  if (n != w->hold)
    return FILTER_PASS;
  g_ptr_array_add (net->held, pk);
  return FILTER_TAKEN;
}

static ModikeExchange *
p1_exchange (Node *n)
{
  ModikeExchange *x = engine_sa_exchange (only_sa (n), 0);

  g_assert_nonnull (x);
  return x;
}

static void
inject (Node *to, const Packet *like, const ModikeHeader *hdr, ModikeBuilder *b)
{
  guint8 first;
  g_autoptr (GBytes) chain = modike_builder_serialize (b, 0, &first);
  ModikeHeader h = *hdr;
  g_autoptr (GBytes) pkt = NULL;
  gsize len;

  h.next_payload = first;
  pkt = modike_message_encode (&h, g_bytes_get_data (chain, NULL), g_bytes_get_size (chain));
  modike_ike_receive (to->ike, &like->dst, &like->src, g_bytes_get_data (pkt, &len), g_bytes_get_size (pkt));
}

static void
test_digest_reject (void)
{
  Params p = params_default ();
  Node *a, *b;
  Net *net;
  HoldWant w = { 3 };
  Packet *held;
  g_autoptr (ModikeMessage) m3 = NULL;
  g_autoptr (ModikeBuilder) bld = modike_builder_new ();
  const ModikePayload *ke;
  guint64 calls;
  ModikeHeader h;

  net = pair_new (&p, &a, &b);
  net->filter = filter_hold;
  net->filter_user = &w;
  g_assert_true (modike_ike_initiate (a->ike, "b", NULL));
  net_run (net, 100, NULL, NULL);
  g_assert_cmpuint (net->held->len, ==, 1);
  held = g_ptr_array_index (net->held, 0);
  g_assert_cmpuint (p1_exchange (b)->state, ==, MM_R2);

  /* Message 3 with KE but without NONCE. */
  m3 = modike_message_parse (held->data, NULL);
  g_assert_nonnull (m3);
  ke = modike_message_find (m3, MODIKE_PL_KE);
  g_assert_nonnull (ke);
  modike_builder_add (bld, MODIKE_PL_KE, ke->body, ke->len);
  calls = b->ike->stats.handler_calls;
  inject (b, held, &m3->hdr, bld);
  g_assert_cmpuint (b->ike->stats.rx_digest_rejects, ==, 1);
  g_assert_cmpuint (b->ike->stats.handler_calls, ==, calls);
  g_assert_cmpuint (p1_exchange (b)->state, ==, MM_R2);

  /* A Quick Mode before phase 1 is up is dropped. */
  h = m3->hdr;
  h.exchange = MODIKE_EX_QUICK;
  h.msgid = 0x12345678;
  h.flags = MODIKE_FLAG_ENCRYPTION;
  {
    g_autoptr (ModikeBuilder) q = modike_builder_new ();
    guint8 junk[32] = { 0 };
    guint64 dropped = b->ike->stats.rx_dropped;

    modike_builder_add (q, MODIKE_PL_HASH, junk, sizeof junk);
    inject (b, held, &h, q);
    g_assert_cmpuint (b->ike->stats.rx_dropped, ==, dropped + 1);
    g_assert_cmpuint (b->ike->stats.handler_calls, ==, calls);
  }

  /* The real message 3 still works; then hold message 5. */
  net->filter = NULL;
  g_ptr_array_remove_index (net->held, 0);
  g_queue_push_tail (&net->queue, held);
  w.hold = 5;
  net->filter = filter_hold;
  net_run (net, 100, NULL, NULL);
  g_assert_cmpuint (net->held->len, ==, 1);
  held = g_ptr_array_index (net->held, 0);
  g_assert_cmpuint (p1_exchange (b)->state, ==, MM_R4);

  /* Message 5 in the clear (ID and HASH) is rejected: it must be encrypted. */
  {
    g_autoptr (ModikeBuilder) q = modike_builder_new ();
    g_autoptr (ModikeMessage) m5 = modike_message_parse (held->data, NULL);
    guint8 idb[8] = { MODIKE_ID_IPV4_ADDR, 0, 0, 0, 192, 0, 2, 2 };
    guint8 hash[32] = { 1 };

    g_assert_nonnull (m5);
    h = m5->hdr;
    h.flags = 0;
    modike_builder_add (q, MODIKE_PL_ID, idb, sizeof idb);
    modike_builder_add (q, MODIKE_PL_HASH, hash, sizeof hash);
    calls = b->ike->stats.handler_calls;
    inject (b, held, &h, q);
    g_assert_cmpuint (b->ike->stats.rx_digest_rejects, ==, 2);
    g_assert_cmpuint (b->ike->stats.handler_calls, ==, calls);
    g_assert_cmpuint (p1_exchange (b)->state, ==, MM_R4);
    g_assert_false (modike_ike_sa_is_established (only_sa (b)));
  }
  net->filter = NULL;
  g_ptr_array_remove_index (net->held, 0);
  g_queue_push_tail (&net->queue, held);
  g_assert_true (run_until_up (net, a, b, 1, 30000));
  check_pair (a, b, 1);
  net_free (net);
}

/* Random datagrams, some with a consistent header length and known cookies. */
static void
test_garbage (void)
{
  Params p = params_default ();
  Node *a, *b;
  Net *net = pair_new (&p, &a, &b);
  ModikeAddr from;
  guint8 junk[300];
  static const guint8 exchanges[] = { MODIKE_EX_MAIN, MODIKE_EX_AGGRESSIVE, MODIKE_EX_INFO, MODIKE_EX_QUICK, 6, 99 };

  g_assert_true (modike_addr_parse ("192.0.2.2", 500, &from, NULL));
  for (guint round = 0; round < 2000; round++)
    {
      gsize len = g_test_rand_int_range (0, sizeof junk);

      for (gsize i = 0; i < len; i++)
        junk[i] = (guint8) g_test_rand_int ();
      if (len >= 28 && round % 4 != 0)
        {
          /* Past the header check: version, length, plausible types. */
          junk[16] = (guint8) g_test_rand_int_range (0, 16);
          junk[17] = 0x10;
          junk[18] = exchanges[round % G_N_ELEMENTS (exchanges)];
          junk[19] = (guint8) (round % 3 == 0 ? 1 : 0);
          if (round % 2 == 0)
            memset (junk + 8, 0, 8);
          if (round % 5 == 0)
            memset (junk + 20, 0, 4);
          junk[24] = (guint8) (len >> 24);
          junk[25] = (guint8) (len >> 16);
          junk[26] = (guint8) (len >> 8);
          junk[27] = (guint8) len;
        }
      modike_ike_receive (b->ike, &b->addr, &from, junk, len);
    }
  g_assert_cmpuint (b->ike->stats.rx_packets, ==, 2000);
  g_assert_cmpuint (modike_ike_count_sas (b->ike, TRUE), ==, 0);
  /* Stray responder SAs (a junk Main Mode message 1 may parse) time out. */
  net_run (net, 120000, NULL, NULL);
  g_assert_cmpuint (modike_ike_count_sas (b->ike, FALSE), ==, 0);
  /* The engine still works afterwards. */
  bring_up (net, a, b, 1);
  check_pair (a, b, 1);
  net_free (net);
}

/* Every packet of a negotiation arrives, then corrupted copies of it
 * (payload bytes flipped, cookies intact): none may disturb the outcome. */
static FilterResult
filter_corrupt (Net *net, guint n, Packet *pk, gpointer user)
{
  guint *copies = user;
  gsize len;
  const guint8 *data = g_bytes_get_data (pk->data, &len);

  if (pk->to == NULL || len <= 28)
    return FILTER_PASS;
  /* The original first, then the copies, all before anything else. */
  g_queue_push_tail (&net->queue, pk);
  for (guint c = 0; c < *copies; c++)
    {
      Packet *d = g_new0 (Packet, 1);
      guint8 *buf = g_memdup2 (data, len);
      guint flips = g_test_rand_int_range (1, 4);

      for (guint f = 0; f < flips; f++)
        buf[g_test_rand_int_range (28, (gint32) len)] ^= (guint8) g_test_rand_int_range (1, 256);
      *d = *pk;
      d->data = g_bytes_new_take (buf, len);
      g_queue_push_tail (&net->queue, d);
    }
  return FILTER_TAKEN;
}

static void
test_corruption (gconstpointer data)
{
  gboolean aggressive = GPOINTER_TO_INT (data);

  for (guint round = 0; round < 20; round++)
    {
      Params p = params_default ();
      Node *a, *b;
      Net *net;
      guint copies = 1 + round % 3;

      p.exchange = aggressive ? "aggressive" : "main";
      p.pfs = round % 2 ? "modp1024" : "none";
      net = pair_new (&p, &a, &b);
      net->filter = filter_corrupt;
      net->filter_user = &copies;
      bring_up (net, a, b, 1);
      net_run (net, 1000, NULL, NULL);
      assert_up_counts (a, b, 1, 1);
      assert_no_failures (a, b);
      check_pair (a, b, 1);
      /* The copies were seen and thrown away somewhere along the path. */
      {
        const ModikeIkeStats *sa_ = &a->ike->stats, *sb = &b->ike->stats;

        g_assert_cmpuint (sa_->rx_garbage + sa_->rx_digest_rejects + sa_->rx_dropped + sa_->rx_no_row +
                            sa_->auth_failures + sb->rx_garbage + sb->rx_digest_rejects + sb->rx_dropped +
                            sb->rx_no_row + sb->auth_failures,
                          >=, copies);
      }
      net_free (net);
    }
}

void
fsm_add_fault_tests (void)
{
  g_test_add_data_func ("/fsm/loss/main", GINT_TO_POINTER (FALSE), test_loss);
  g_test_add_data_func ("/fsm/loss/aggressive", GINT_TO_POINTER (TRUE), test_loss);
  g_test_add_data_func ("/fsm/duplicates/main", GINT_TO_POINTER (FALSE), test_duplicates);
  g_test_add_data_func ("/fsm/duplicates/aggressive", GINT_TO_POINTER (TRUE), test_duplicates);
  g_test_add_func ("/fsm/no-proposal/phase1", test_no_proposal);
  g_test_add_func ("/fsm/no-proposal/quick-mode", test_no_esp_proposal);
  g_test_add_data_func ("/fsm/wrong-psk/main", GINT_TO_POINTER (FALSE), test_wrong_psk);
  g_test_add_data_func ("/fsm/wrong-psk/aggressive", GINT_TO_POINTER (TRUE), test_wrong_psk);
  g_test_add_func ("/fsm/timeout", test_timeout);
  g_test_add_func ("/fsm/digest-reject", test_digest_reject);
  g_test_add_func ("/fsm/garbage", test_garbage);
  g_test_add_data_func ("/fsm/corruption/main", GINT_TO_POINTER (FALSE), test_corruption);
  g_test_add_data_func ("/fsm/corruption/aggressive", GINT_TO_POINTER (TRUE), test_corruption);
}
