/* What exchanges in flight hold (inflight.c): the inbound SPI a Quick Mode
 * reserved and the policy it negotiates for, and what the engine decides
 * from them without reading Quick Mode's data: acquires for a busy policy
 * are ignored, error notifies fail the exchange owning the named SPI. */
#include "harness.h"

/* Quick Mode towards B is lost: A's first Quick Mode stays in flight. */
static FilterResult
filter_quick_to (Net *net, guint n, Packet *pk, gpointer user)
{
  gsize len;
  const guint8 *d = g_bytes_get_data (pk->data, &len);

  return pk->to == user && len > 18 && d[18] == MODIKE_EX_QUICK ? FILTER_DROP : FILTER_PASS;
}

static guint
count_quick (ModikeIkeSa *sa, ModikeExchange **last)
{
  GHashTableIter it;
  gpointer value;
  guint n = 0;

  if (sa->exchanges == NULL)
    return 0;
  g_hash_table_iter_init (&it, sa->exchanges);
  while (g_hash_table_iter_next (&it, NULL, &value))
    {
      ModikeExchange *x = value;

      if (x->type == MODIKE_EX_QUICK && !x->dead)
        {
          n++;
          *last = x;
        }
    }
  return n;
}

static void
notify (Node *n, ModikeIkeSa *sa, guint8 spi_len, guint32 spi)
{
  ModikeNotifyPayload np = { .doi = MODIKE_DOI_IPSEC, .type = MODIKE_N_NO_PROPOSAL_CHOSEN };

  np.protocol = spi_len == 4 ? MODIKE_PROTO_ESP : MODIKE_PROTO_ISAKMP;
  np.spi_len = spi_len;
  if (spi_len == 4)
    engine_spi_bytes (spi, np.spi);
  engine_enter (n->ike);
  engine_handle_notify (sa, &np, TRUE);
  engine_leave (n->ike);
}

/* data: TRUE = the error notify names the Quick Mode's SPI, FALSE = it
 * names none (then every phase 2 exchange we started fails). */
static void
test_quick_in_flight (gconstpointer data)
{
  gboolean named = GPOINTER_TO_INT (data);
  Params p = params_default ();
  Node *a, *b;
  Net *net = pair_new (&p, &a, &b);
  ModikeExchange *x = NULL;
  ModikeIkeSa *sa;
  guint32 spd_id, spi;

  net->filter = filter_quick_to;
  net->filter_user = b;
  g_assert_true (modike_ike_initiate (a->ike, "b", NULL));
  net_run (net, 500, NULL, NULL);
  g_assert_cmpuint (a->p1_up, ==, 1);
  g_assert_cmpuint (a->p2_up + a->p2_failed, ==, 0);
  sa = only_sa (a);
  g_assert_cmpuint (count_quick (sa, &x), ==, 1);

  /* Quick Mode told the engine what it holds, through the SDK. */
  spd_id = modike_exchange_get_policy (x);
  g_assert_cmpuint (spd_id, !=, 0);
  g_assert_true (engine_policy_negotiating (a->ike, spd_id, "b", TRUE));
  g_assert_false (engine_policy_negotiating (a->ike, spd_id, "nobody", FALSE));
  g_assert_nonnull (x->spis);
  g_assert_cmpuint (x->spis->len, ==, 1);
  spi = g_array_index (x->spis, guint32, 0);
  g_assert_cmpuint (spi, >=, 256);
  g_assert_true (engine_spi_owner (a->ike, spi) == x);
  g_assert_true (engine_spi_in_use (a->ike, spi));
  g_assert_null (modike_sad_lookup (modike_ike_get_sad (a->ike), MODIKE_DIR_IN, spi));

  /* The policy is busy: an acquire starts no second Quick Mode. */
  engine_acquire (a->ike, spd_id, NULL);
  g_assert_cmpuint (count_quick (sa, &x), ==, 1);

  /* An error notify naming some other SPI leaves it alone. */
  notify (a, sa, 4, spi ^ 0x100);
  g_assert_cmpuint (a->p2_failed, ==, 0);
  g_assert_true (engine_spi_owner (a->ike, spi) == x);

  notify (a, sa, named ? 4 : 0, spi);
  g_assert_cmpuint (a->p2_failed, ==, 1);
  g_assert_error (a->p2_error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_NO_PROPOSAL_CHOSEN);
  /* The failed exchange is freed: its SPI and policy are free again. */
  g_assert_null (engine_spi_owner (a->ike, spi));
  g_assert_false (engine_spi_in_use (a->ike, spi));
  g_assert_false (engine_policy_negotiating (a->ike, spd_id, "b", FALSE));
  g_assert_cmpuint (g_hash_table_size (a->ike->spis), ==, 0);
  g_assert_cmpuint (g_hash_table_size (a->ike->policy_xs), ==, 0);
  net_free (net);
}

/* Installed SAs keep their SPIs taken (the SAD) after the exchanges that
 * reserved them are gone; a removed child frees its SPI. */
static void
test_installed (void)
{
  Params p = params_default ();
  Node *a, *b;
  Net *net = pair_up (&p, &a, &b, 1);
  Node *nodes[] = { a, b };

  /* Past every linger and retransmit timer. */
  net_run (net, 120000, NULL, NULL);
  for (guint i = 0; i < G_N_ELEMENTS (nodes); i++)
    {
      ModikeIkeSa *sa = only_sa (nodes[i]);
      EngineChild *c;
      guint32 spi;

      g_assert_cmpuint (g_hash_table_size (nodes[i]->ike->spis), ==, 0);
      g_assert_cmpuint (g_hash_table_size (nodes[i]->ike->policy_xs), ==, 0);
      g_assert_cmpuint (sa->children->len, ==, 1);
      c = g_ptr_array_index (sa->children, 0);
      spi = c->spi_in;
      g_assert_true (engine_spi_in_use (nodes[i]->ike, spi));
      g_assert_null (engine_spi_owner (nodes[i]->ike, spi));
      g_assert_true (engine_policy_negotiating (nodes[i]->ike, c->spd_id, "b", FALSE) == FALSE);
      engine_enter (nodes[i]->ike);
      engine_child_remove (c, FALSE);
      engine_leave (nodes[i]->ike);
      g_assert_false (engine_spi_in_use (nodes[i]->ike, spi));
    }
  net_free (net);
}

/* The policy ids change with a reload while a Quick Mode runs: its tag
 * follows the policy (an acquire for it is still busy) and the child it
 * installs names the new id, at both the engine and the SAD. */
static void
test_reload_in_flight (void)
{
  Params p = params_default ();
  Node *a, *b;
  Net *net = pair_new (&p, &a, &b);
  ModikeExchange *x = NULL;
  ModikeIkeSa *sa;
  guint32 old_id, new_id;
  EngineChild *c;

  net->filter = filter_quick_to;
  net->filter_user = b;
  g_assert_true (modike_ike_initiate (a->ike, "b", NULL));
  net_run (net, 500, NULL, NULL);
  sa = only_sa (a);
  g_assert_cmpuint (count_quick (sa, &x), ==, 1);
  old_id = modike_exchange_get_policy (x);
  reload_a (a, &p, "reloaded");
  g_assert_true (only_sa (a) == sa);
  {
    g_autoptr (GPtrArray) entries = modike_spd_entries (modike_ike_get_spd (a->ike));

    g_assert_cmpuint (entries->len, ==, 1);
    new_id = ((const ModikeSpdEntry *) g_ptr_array_index (entries, 0))->id;
  }
  g_assert_cmpuint (new_id, !=, old_id);
  g_assert_cmpuint (modike_exchange_get_policy (x), ==, new_id);
  g_assert_true (engine_policy_negotiating (a->ike, new_id, "b", TRUE));
  engine_acquire (a->ike, new_id, NULL);
  g_assert_cmpuint (count_quick (sa, &x), ==, 1);
  /* Quick Mode gets through on A's retransmission. */
  net->filter = NULL;
  g_assert_true (run_until_up (net, a, b, 1, 10000));
  c = g_ptr_array_index (sa->children, 0);
  g_assert_cmpuint (c->spd_id, ==, new_id);
  g_assert_cmpuint (modike_sad_lookup (modike_ike_get_sad (a->ike), MODIKE_DIR_IN, c->spi_in)->spd_id, ==, new_id);
  g_assert_cmpuint (modike_sad_lookup (modike_ike_get_sad (a->ike), MODIKE_DIR_OUT, c->spi_out)->spd_id, ==, new_id);
  assert_no_failures (a, b);
  net_free (net);
}

void
fsm_add_inflight_tests (void)
{
  g_test_add_data_func ("/fsm/inflight/quick-mode/spi-named", GINT_TO_POINTER (TRUE), test_quick_in_flight);
  g_test_add_data_func ("/fsm/inflight/quick-mode/no-spi", GINT_TO_POINTER (FALSE), test_quick_in_flight);
  g_test_add_func ("/fsm/inflight/installed", test_installed);
  g_test_add_func ("/fsm/inflight/reload", test_reload_in_flight);
}
