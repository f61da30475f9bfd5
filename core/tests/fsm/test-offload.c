/* Crypto on worker threads (modike_exchange_offload): handshakes with a
 * pool of two threads on each end (each DH and RSA operation a job), and the exchange going away while its
 * Diffie-Hellman is on a worker: a DELETE, the half-open expiry, the
 * engine freed. A retransmission of the message being worked on is
 * answered once. Nodes without threads (every other test) run the same
 * jobs inline. */
#include "harness.h"

#define POOL 2

/* A and B from p (or from xa / xb), each with a pool, A initiating. */
static Net *
pool_pair (const Params *p, const char *xa, const char *xb, Node **a, Node **b)
{
  Net *net = net_new ();
  g_autofree char *ca = xa == NULL ? config_xml (p, TRUE) : NULL;
  g_autofree char *cb = xb == NULL ? config_xml (p, FALSE) : NULL;

  net_set_crypto_threads (net, POOL);
  *a = node_new_xml (net, "a", "192.0.2.2", xa != NULL ? xa : ca);
  *b = node_new_xml (net, "b", "192.0.2.1", xb != NULL ? xb : cb);
  return net;
}

/* A and B come up with each DH and RSA operation on the pools: a_jobs and
 * b_jobs crypto jobs. */
static void
up_with_pool (const Params *p, const char *xa, const char *xb, guint a_jobs, guint b_jobs)
{
  Node *a, *b;
  Net *net = pool_pair (p, xa, xb, &a, &b);

  g_assert_true (modike_ike_initiate (a->ike, "b", NULL));
  g_assert_true (run_until_up (net, a, b, 1, 30000));
  check_pair (a, b, 1);
  assert_up_counts (a, b, 1, 1);
  assert_no_failures (a, b);
  g_assert_cmpuint (engine_crypto_in_flight (a->ike), ==, 0);
  g_assert_cmpuint (engine_crypto_in_flight (b->ike), ==, 0);
  g_assert_cmpuint (a->ike->stats.crypto_jobs, ==, a_jobs);
  g_assert_cmpuint (b->ike->stats.crypto_jobs, ==, b_jobs);
  net_free (net);
}

static void
test_main_psk (void)
{
  Params p = params_default ();

  /* A: its key pair, g^xy; B: both at once. */
  up_with_pool (&p, NULL, NULL, 2, 1);
}

static void
test_aggressive (void)
{
  Params p = params_default ();

  p.exchange = "aggressive";
  up_with_pool (&p, NULL, NULL, 2, 1);
}

static void
test_quick_pfs (void)
{
  Params p = params_default ();

  p.pfs = "modp2048";
  /* And Quick Mode's: A's key pair, g^xy; B's at once. */
  up_with_pool (&p, NULL, NULL, 4, 2);
}

static void
test_main_certs (void)
{
  Params p = params_default ();
  g_autofree char *xa = cert_config_xml (&p, TRUE, "rsa", "client", "ca.pem", NULL);
  g_autofree char *xb = cert_config_xml (&p, FALSE, "rsa", "gw", "ca.pem", NULL);

  /* DH as with PSK; A signs in message 5 and verifies B's SIG_R, B
   * verifies SIG_I and signs in one job. */
  up_with_pool (&p, xa, xb, 4, 2);
  p.exchange = "aggressive";
  g_clear_pointer (&xa, g_free);
  g_clear_pointer (&xb, g_free);
  xa = cert_config_xml (&p, TRUE, "rsa", "client", "ca.pem", NULL);
  xb = cert_config_xml (&p, FALSE, "rsa", "gw", "ca.pem", NULL);
  /* A: key pair, g^xy, verify and sign; B: DH, sign, verify. */
  up_with_pool (&p, xa, xb, 3, 3);
}

static gboolean
pred_b_working (Net *net, gpointer user)
{
  Node *b = user;

  return engine_crypto_in_flight (b->ike) > 0;
}

/* A's Main Mode as far as B's Diffie-Hellman for message 3, which stays
 * with the workers (results are not run until the test says). */
static Net *
b_working (Node **a, Node **b)
{
  Params p = params_default ();
  Net *net = pool_pair (&p, NULL, NULL, a, b);

  (*b)->hold_crypto = TRUE;
  g_assert_true (modike_ike_initiate ((*a)->ike, "b", NULL));
  g_assert_true (net_run (net, 1000, pred_b_working, *b));
  g_assert_cmpuint (engine_crypto_in_flight ((*b)->ike), ==, 1);
  g_assert_true (((ModikeExchange *) engine_sa_exchange (only_sa (*b), 0))->suspended);
  return net;
}

static void
test_delete_while_working (void)
{
  Node *a, *b;
  Net *net = b_working (&a, &b);
  guint64 tx = b->ike->stats.tx_packets;

  engine_enter (b->ike);
  engine_sa_delete (only_sa (b), FALSE);
  engine_leave (b->ike);
  assert_no_sas (b);
  /* The job comes back to nobody: no message 4, the SA stays gone. */
  g_assert_true (engine_crypto_wait (b->ike, 10000));
  g_assert_cmpuint (b->ike->stats.tx_packets, ==, tx);
  assert_no_sas (b);
  g_assert_cmpuint (b->p1_up, ==, 0);
  net_free (net);
}

static void
test_half_open_expiry_while_working (void)
{
  Node *a, *b;
  Net *net = b_working (&a, &b);
  ModikeIkeSa *sa = only_sa (b);
  guint64 tx = b->ike->stats.tx_packets;

  g_assert_cmpuint (sa->half_open_timer, !=, 0);
  net_fire_now (net, sa->half_open_timer);
  g_assert_true (net_run (net, 0, NULL, NULL));
  assert_no_sas (b);
  g_assert_nonnull (b->p1_error);
  g_assert_true (engine_crypto_wait (b->ike, 10000));
  g_assert_cmpuint (b->ike->stats.tx_packets, ==, tx);
  assert_no_sas (b);
  net_free (net);
}

static void
test_engine_freed_while_working (void)
{
  Node *a, *b;
  Net *net = b_working (&a, &b);

  /* A's own jobs too: its message 5 waits for g^xy once message 4 is in. */
  node_free (b);
  g_assert_true (net_run (net, 0, NULL, NULL));
  net_free (net); /* ASan: the jobs, their secrets and messages freed */
}

static void
test_retransmit_while_working (void)
{
  Node *a, *b;
  Net *net = b_working (&a, &b);
  ModikeExchange *xa = engine_sa_exchange (only_sa (a), 0);
  guint64 tx = b->ike->stats.tx_packets, dropped = b->ike->stats.rx_dropped;

  /* A resends message 3: B is busy with it, so it is neither worked on
   * again nor answered. */
  g_assert_cmpuint (xa->timer, !=, 0);
  net_fire_now (net, xa->timer);
  g_assert_true (net_run (net, 0, NULL, NULL));
  g_assert_cmpuint (b->ike->stats.rx_dropped, ==, dropped + 1);
  g_assert_cmpuint (b->ike->stats.tx_packets, ==, tx);
  g_assert_cmpuint (engine_crypto_in_flight (b->ike), ==, 1);
  /* The work comes back: message 4 goes once. */
  g_assert_true (engine_crypto_wait (b->ike, 10000));
  g_assert_cmpuint (b->ike->stats.tx_packets, ==, tx + 1);
  b->hold_crypto = FALSE;
  g_assert_true (run_until_up (net, a, b, 1, 30000));
  check_pair (a, b, 1);
  assert_no_failures (a, b);
  g_assert_cmpuint (a->ike->stats.rx_duplicates + a->ike->stats.rx_dropped, ==, 0);
  net_free (net);
}

/* A's KE in message 3 (plain Main Mode, KE first) becomes all ones: out
 * of range. */
static FilterResult
spoil_ke (Net *net, guint n, Packet *pk, gpointer user)
{
  gsize len = g_bytes_get_size (pk->data), off = 28; /* the ISAKMP header */
  g_autofree guint8 *d = g_memdup2 (g_bytes_get_data (pk->data, NULL), len);
  guint8 np;

  g_assert_cmpuint (len, >=, off);
  np = d[16];
  if (pk->to != user || d[19] != 0 || d[18] != MODIKE_EX_MAIN || np != MODIKE_PL_KE)
    return FILTER_PASS;
  while (np != 0 && off + 4 <= len)
    {
      guint plen = (d[off + 2] << 8) | d[off + 3];

      g_assert_cmpuint (plen, >=, 4);
      g_assert_cmpuint (off + plen, <=, len);
      if (np == MODIKE_PL_KE)
        memset (d + off + 4, 0xff, plen - 4);
      np = d[off];
      off += plen;
    }
  g_bytes_unref (pk->data);
  pk->data = g_bytes_new (d, len);
  return FILTER_PASS;
}

/* The worker's DH fails: B refuses with INVALID-KEY-INFORMATION, as inline. */
static void
test_dh_fails_on_worker (void)
{
  Params p = params_default ();
  Node *a, *b;
  Net *net = pool_pair (&p, NULL, NULL, &a, &b);

  net->filter = spoil_ke;
  net->filter_user = b;
  g_assert_true (modike_ike_initiate (a->ike, "b", NULL));
  net_run (net, 2000, NULL, NULL);
  g_assert_cmpuint (b->ike->stats.crypto_jobs, ==, 1);
  g_assert_cmpuint (b->p1_failed, ==, 1);
  g_assert_nonnull (b->p1_error);
  g_assert_nonnull (strstr (b->p1_error->message, "public value out of range"));
  g_assert_cmpuint (a->p1_failed, ==, 1);
  g_assert_nonnull (strstr (a->p1_error->message, "INVALID_KEY_INFORMATION"));
  assert_no_sas (b);
  net_free (net);
}

void
fsm_add_offload_tests (void)
{
  g_test_add_func ("/fsm/offload/main-psk", test_main_psk);
  g_test_add_func ("/fsm/offload/aggressive", test_aggressive);
  g_test_add_func ("/fsm/offload/quick-pfs", test_quick_pfs);
  g_test_add_func ("/fsm/offload/certs", test_main_certs);
  g_test_add_func ("/fsm/offload/dh-fails-on-worker", test_dh_fails_on_worker);
  g_test_add_func ("/fsm/offload/delete-while-working", test_delete_while_working);
  g_test_add_func ("/fsm/offload/half-open-expiry-while-working", test_half_open_expiry_while_working);
  g_test_add_func ("/fsm/offload/engine-freed-while-working", test_engine_freed_while_working);
  g_test_add_func ("/fsm/offload/retransmit-while-working", test_retransmit_while_working);
}
