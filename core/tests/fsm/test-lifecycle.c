/* Suite fsm: Delete, INITIAL-CONTACT, lifetimes and rekeys, reload, forged
 * Informationals, simultaneous initiation. */
#include "harness.h"

/* ---- delete, initial contact, lifetimes ---- */

static void
test_delete (void)
{
  Params p = params_default ();
  Node *a, *b;
  Net *net;

  p.two_policies = TRUE;
  net = pair_up (&p, &a, &b, 2);
  modike_ike_terminate (a->ike, "b");
  assert_no_sas (a);
  g_assert_cmpuint (a->deleted, ==, 1);
  net_run (net, 1000, NULL, NULL);
  assert_no_sas (b);
  g_assert_cmpuint (b->deleted, ==, 1);
  g_assert_cmpuint (b->p1_failed + b->p2_failed, ==, 0);
  net_free (net);
}

static void
test_delete_child_only (void)
{
  Params p = params_default ();
  Node *a, *b;
  Net *net;
  ModikeIkeSa *sa;

  net = pair_up (&p, &a, &b, 1);
  sa = only_sa (a);
  engine_enter (a->ike);
  engine_child_remove (g_ptr_array_index (sa->children, 0), TRUE);
  engine_leave (a->ike);
  net_run (net, 1000, NULL, NULL);
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (b->ike)), ==, 0);
  g_assert_cmpuint (modike_ike_count_sas (b->ike, TRUE), ==, 1);
  g_assert_cmpuint (only_sa (b)->children->len, ==, 0);
  net_free (net);
}

static void
test_initial_contact (void)
{
  Params p = params_default ();
  Node *a, *b, *a2;
  Net *net;
  guint8 old_icookie[8];

  net = pair_up (&p, &a, &b, 1);
  memcpy (old_icookie, only_sa (b)->icookie, 8);
  /* A reboots: its state is gone without a word to B. */
  node_free (a);
  a2 = node_new (net, "a2", &p, TRUE);
  g_assert_true (modike_ike_initiate (a2->ike, "b", NULL));
  g_assert_true (net_run (net, 30000, (NetPred) pred_up, &(UpWant){ a2, b, 1 }));
  net_run (net, 1000, NULL, NULL);
  check_pair (a2, b, 1);
  g_assert_false (memcmp (only_sa (b)->icookie, old_icookie, 8) == 0);
  g_assert_cmpuint (b->deleted, ==, 1);
  g_assert_cmpuint (b->p1_up, ==, 2);
  net_free (net);
}

static void
collect_spis (Node *n, GHashTable *into)
{
  g_autoptr (GPtrArray) all = modike_sad_entries (modike_ike_get_sad (n->ike));

  for (guint i = 0; i < all->len; i++)
    g_hash_table_add (into, GUINT_TO_POINTER (((ModikeSadEntry *) g_ptr_array_index (all, i))->spi));
}

static void
test_lifetimes (void)
{
  Params p = params_default ();
  Node *a, *b;
  Net *net;
  guint8 old_a[8], old_b[8];
  g_autoptr (GHashTable) old_spis = g_hash_table_new (NULL, NULL);
  g_autoptr (GPtrArray) now = NULL;

  p.p1_life = 200;
  p.p2_life = 100;
  net = pair_up (&p, &a, &b, 1);
  memcpy (old_a, only_sa (a)->icookie, 8);
  memcpy (old_b, only_sa (b)->icookie, 8);
  collect_spis (a, old_spis);

  /* Children rekey at 85-90 s; the old pair goes at 100 s. */
  net_run (net, 95000, NULL, NULL);
  g_assert_cmpuint (a->p2_up, ==, 2);
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (a->ike)), ==, 4);
  net_run (net, 10000, NULL, NULL);
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (a->ike)), ==, 2);
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (b->ike)), ==, 2);
  now = modike_sad_entries (modike_ike_get_sad (b->ike));
  for (guint i = 0; i < now->len; i++)
    g_assert_false (g_hash_table_contains (old_spis,
                                           GUINT_TO_POINTER (((ModikeSadEntry *) g_ptr_array_index (now, i))->spi)));

  /* Phase 1 rekeys at 170-180 s; the old SA goes at 200 s. Checked at
   * 250 s: the third child rekey comes at 255 s at the earliest. */
  net_run (net, 145000, NULL, NULL);
  g_assert_cmpuint (a->p1_up, ==, 2);
  g_assert_cmpuint (b->p1_up, ==, 2);
  assert_no_failures (a, b);
  check_pair (a, b, 1);
  g_assert_false (memcmp (only_sa (a)->icookie, old_a, 8) == 0);
  g_assert_false (memcmp (only_sa (b)->icookie, old_b, 8) == 0);
  g_assert_cmpuint (a->p2_up, >=, 3);
  net_free (net);
}

/* B allows 600 s where A asks for 3600 s: B answers with
 * RESPONDER-LIFETIME and both ends use 600 s. */
static void
test_responder_lifetime (void)
{
  Params p = params_default ();
  Node *a, *b;
  Net *net;
  g_autoptr (GPtrArray) entries = NULL;

  p.p2_life_b = 600;
  net = pair_up (&p, &a, &b, 1);
  check_pair (a, b, 1);
  entries = modike_sad_entries (modike_ike_get_sad (a->ike));
  g_assert_cmpuint (((ModikeSadEntry *) g_ptr_array_index (entries, 0))->hard.seconds, ==, 600);
  g_assert_cmpuint (((EngineChild *) g_ptr_array_index (only_sa (a)->children, 0))->choice.life_s, ==, 600);
  net_free (net);

  /* The other way round the initiator proposes the shorter one. */
  net = pair_new (&p, &a, &b);
  g_assert_true (modike_ike_initiate (b->ike, "a", NULL));
  g_assert_true (run_until_up (net, a, b, 1, 30000));
  check_pair (a, b, 1);
  g_assert_cmpuint (((EngineChild *) g_ptr_array_index (only_sa (a)->children, 0))->choice.life_s, ==, 600);
  net_free (net);
}

/* Two Aggressive Mode peer configs on B for any address, told apart by
 * the initiator's ID: the one matching A's ID (and so its PSK) is used. */
static const char am_b_xml[] =
  "<modike>\n"
  "  <peer name=\"other\"><local address=\"192.0.2.1\"/>\n"
  "    <remote-id type=\"fqdn\" value=\"other.example\"/>\n"
  "    <auth method=\"psk\" secret=\"not-this-one\"/>\n"
  "    <phase1 exchange=\"aggressive\"><proposal encryption=\"aes128\" hash=\"sha256\" group=\"modp2048\"/></phase1>\n"
  "  </peer>\n"
  "  <peer name=\"a\"><local address=\"192.0.2.1\"/>\n"
  "    <local-id type=\"fqdn\" value=\"gw.example\"/>\n"
  "    <remote-id type=\"fqdn\" value=\"client.example\"/>\n"
  "    <auth method=\"psk\" secret=\"rightpsk\"/>\n"
  "    <phase1 exchange=\"aggressive\"><proposal encryption=\"aes128\" hash=\"sha256\" group=\"modp2048\"/></phase1>\n"
  "  </peer>\n"
  "  <policy name=\"net\" peer=\"a\" action=\"protect\" local=\"10.2.0.0/24\" remote=\"10.1.0.0/24\">\n"
  "    <proposal encryption=\"aes128\" integrity=\"sha256\"/>\n"
  "  </policy>\n"
  "</modike>\n";

static const char am_a_xml[] =
  "<modike>\n"
  "  <peer name=\"b\"><local address=\"192.0.2.2\"/><remote address=\"192.0.2.1\"/>\n"
  "    <local-id type=\"fqdn\" value=\"%s\"/>\n"
  "    <remote-id type=\"fqdn\" value=\"gw.example\"/>\n"
  "    <auth method=\"psk\" secret=\"rightpsk\"/>\n"
  "    <phase1 exchange=\"aggressive\"><proposal encryption=\"aes128\" hash=\"sha256\" group=\"modp2048\"/></phase1>\n"
  "  </peer>\n"
  "  <policy name=\"net\" peer=\"b\" action=\"protect\" local=\"10.1.0.0/24\" remote=\"10.2.0.0/24\">\n"
  "    <proposal encryption=\"aes128\" integrity=\"sha256\"/>\n"
  "  </policy>\n"
  "</modike>\n";

static void
test_am_peer_by_id (void)
{
  Net *net = net_new ();
  g_autofree char *xa = g_strdup_printf (am_a_xml, "client.example");
  Node *a = node_new_xml (net, "a", "192.0.2.2", xa);
  Node *b = node_new_xml (net, "b", "192.0.2.1", am_b_xml);

  bring_up (net, a, b, 1);
  check_pair (a, b, 1);
  g_assert_cmpstr (modike_ike_sa_get_peer_name (only_sa (b)), ==, "a");
  net_free (net);

  /* An ID no config names: no SA, and A learns why. */
  net = net_new ();
  g_free (xa);
  xa = g_strdup_printf (am_a_xml, "stranger.example");
  a = node_new_xml (net, "a", "192.0.2.2", xa);
  b = node_new_xml (net, "b", "192.0.2.1", am_b_xml);
  g_assert_true (modike_ike_initiate (a->ike, "b", NULL));
  net_run (net, 5000, NULL, NULL);
  g_assert_cmpuint (a->p1_failed, ==, 1);
  g_assert_error (a->p1_error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_PEER_NOTIFY);
  g_assert_nonnull (strstr (a->p1_error->message, "INVALID_ID_INFORMATION"));
  g_assert_cmpuint (b->p1_failed, ==, 1);
  g_assert_error (b->p1_error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_NO_PEER);
  assert_no_sas (a);
  assert_no_sas (b);
  net_free (net);
}

/* ---- reload, forged messages, races ---- */

static void
test_reload (void)
{
  Params p = params_default ();
  Node *a, *b;
  Net *net;
  guint8 icookie[8];

  net = pair_up (&p, &a, &b, 1);
  memcpy (icookie, only_sa (a)->icookie, 8);

  /* The same config again (a new object): everything stays. */
  reload_a (a, &p, "same");
  net_run (net, 1000, NULL, NULL);
  check_pair (a, b, 1);
  g_assert_true (memcmp (only_sa (a)->icookie, icookie, 8) == 0);
  g_assert_true (only_sa (a)->peer == g_ptr_array_index (a->cfg->peers, 0));
  {
    /* The child follows its policy into the new SPD. */
    EngineChild *c = g_ptr_array_index (only_sa (a)->children, 0);
    const ModikeSpdEntry *e = modike_spd_get (modike_ike_get_spd (a->ike), c->spd_id);

    g_assert_nonnull (e);
    g_assert_cmpstr (e->name, ==, "net");
  }
  /* Initiating again changes nothing: the SA and its child exist. */
  g_assert_true (modike_ike_initiate (a->ike, "b", NULL));
  net_run (net, 1000, NULL, NULL);
  check_pair (a, b, 1);

  /* A new secret: the SA goes, with DELETEs the peer acts on. */
  p.psk_a = "newpsk";
  reload_a (a, &p, "changed");
  assert_no_sas (a);
  net_run (net, 1000, NULL, NULL);
  assert_no_sas (b);
  g_assert_cmpuint (b->deleted, ==, 1);
  net_free (net);
}

static void
test_forged_info (void)
{
  Params p = params_default ();
  Node *a, *b;
  Net *net;
  ModikeIkeSa *sa;
  g_autoptr (ModikeBuilder) bld = modike_builder_new ();
  g_autoptr (GBytes) pkt = NULL;
  g_autoptr (GByteArray) d = g_byte_array_new ();
  ModikeDeletePayload del = { 0 };
  guint8 zero[MODIKE_HASH_MAX] = { 0 }, iv[MODIKE_HASH_MAX], spi[16];
  guint32 msgid = 0x01020304;
  guint64 failures;

  net = pair_up (&p, &a, &b, 1);
  /* A DELETE of the ISAKMP SA with the right keys but a wrong HASH(1). */
  sa = only_sa (a);
  memcpy (spi, sa->icookie, 8);
  memcpy (spi + 8, sa->rcookie, 8);
  del.doi = MODIKE_DOI_IPSEC;
  del.protocol = MODIKE_PROTO_ISAKMP;
  del.spi_len = 16;
  del.spis = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  g_ptr_array_add (del.spis, g_bytes_new (spi, sizeof spi));
  modike_delete_payload_encode (&del, d);
  g_ptr_array_unref (del.spis);
  modike_builder_add (bld, MODIKE_PL_HASH, zero, modike_hash_len (sa->choice.hash));
  modike_builder_add (bld, MODIKE_PL_D, d->data, d->len);
  modike_p2_iv (sa->choice.hash, sa->p1_iv, sa->block_len, msgid, iv);
  pkt = engine_build_packet (sa, MODIKE_EX_INFO, msgid, bld, iv, NULL);
  g_assert_nonnull (pkt);
  failures = b->ike->stats.auth_failures;
  modike_ike_receive (b->ike, &b->addr, &a->addr, g_bytes_get_data (pkt, NULL), g_bytes_get_size (pkt));
  g_assert_cmpuint (b->ike->stats.auth_failures, ==, failures + 1);
  g_assert_cmpuint (modike_ike_count_sas (b->ike, TRUE), ==, 1);
  g_assert_cmpuint (b->deleted, ==, 0);
  /* An unencrypted Informational on an established SA is ignored too. */
  {
    g_autoptr (ModikeBuilder) plain = modike_builder_new ();
    g_autoptr (GBytes) pk2 = NULL;

    modike_builder_add (plain, MODIKE_PL_D, d->data, d->len);
    pk2 = engine_build_packet (sa, MODIKE_EX_INFO, msgid + 1, plain, NULL, NULL);
    modike_ike_receive (b->ike, &b->addr, &a->addr, g_bytes_get_data (pk2, NULL), g_bytes_get_size (pk2));
    g_assert_cmpuint (modike_ike_count_sas (b->ike, TRUE), ==, 1);
  }
  net_free (net);
}

/* Both ends start at once: two IKE SAs, and every ESP SA still has its
 * mirror with the same keys on the other side. */
static void
test_simultaneous (void)
{
  Params p = params_default ();
  Node *a, *b;
  Net *net;
  g_autoptr (GPtrArray) ea = NULL;

  net = pair_start (&p, &a, &b);
  g_assert_true (modike_ike_initiate (b->ike, "a", NULL));
  net_run (net, 10000, NULL, NULL);
  assert_no_failures (a, b);
  g_assert_cmpuint (modike_ike_count_sas (a->ike, TRUE), ==, 2);
  g_assert_cmpuint (modike_ike_count_sas (b->ike, TRUE), ==, 2);
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (a->ike)), >=, 2);
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (a->ike)), ==,
                    modike_sad_size (modike_ike_get_sad (b->ike)));
  ea = modike_sad_entries (modike_ike_get_sad (a->ike));
  for (guint i = 0; i < ea->len; i++)
    {
      const ModikeSadEntry *e = g_ptr_array_index (ea, i);
      const ModikeSadEntry *m = modike_sad_lookup (modike_ike_get_sad (b->ike),
                                                   e->dir == MODIKE_DIR_IN ? MODIKE_DIR_OUT : MODIKE_DIR_IN, e->spi);

      g_assert_nonnull (m);
      assert_secret_equal (e->enc_key, m->enc_key);
      assert_secret_equal (e->auth_key, m->auth_key);
    }
  /* Terminating on one side clears both. */
  modike_ike_terminate (a->ike, "b");
  net_run (net, 1000, NULL, NULL);
  assert_no_sas (a);
  assert_no_sas (b);
  net_free (net);
}

/* A child rekey whose Quick Mode ends after phase 1 was rekeyed (its
 * first message lost, retransmitted): the new child joins the new IKE SA
 * with the others, and the old SA's expiry does not take it along. */
static void
test_child_rekey_across_p1_rekey (void)
{
  Params p = params_default ();
  Node *a, *b;
  Net *net = pair_up (&p, &a, &b, 1);
  ModikeIkeSa *old = only_sa (a);
  EngineChild *c = g_ptr_array_index (old->children, 0);
  guint32 old_in = c->spi_in;
  g_autoptr (GError) error = NULL;

  g_hash_table_add (net->drop, GUINT_TO_POINTER (net->sent + 1));
  engine_enter (a->ike);
  g_assert_true (engine_child_rekey (c, &error));
  engine_leave (a->ike);
  g_assert_no_error (error);
  net_fire_now (net, old->rekey_timer);
  net_run (net, 300, NULL, NULL);
  g_assert_cmpuint (a->p1_up, ==, 2);
  g_assert_cmpuint (a->p2_up, ==, 1);
  g_assert_true (old->rekeyed);
  net_run (net, 3000, NULL, NULL);
  g_assert_cmpuint (a->p2_up, ==, 2);
  g_assert_cmpuint (b->p2_up, ==, 2);
  g_assert_cmpuint (old->children->len, ==, 0);
  net_fire_now (net, old->expire_timer);
  net_run (net, 1000, NULL, NULL);
  g_assert_cmpuint (modike_ike_count_sas (a->ike, FALSE), ==, 1);
  g_assert_cmpuint (modike_ike_count_sas (b->ike, FALSE), ==, 1);
  g_assert_cmpuint (only_sa (a)->children->len, ==, 2);
  g_assert_cmpuint (only_sa (b)->children->len, ==, 2);
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (a->ike)), ==, 4);
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (b->ike)), ==, 4);
  g_assert_true (engine_find_child (a->ike, MODIKE_DIR_IN, old_in, 0)->rekeyed);
  assert_no_failures (a, b);
  net_free (net);
}

void
fsm_add_lifecycle_tests (void)
{
  g_test_add_func ("/fsm/delete/ike", test_delete);
  g_test_add_func ("/fsm/delete/child", test_delete_child_only);
  g_test_add_func ("/fsm/initial-contact", test_initial_contact);
  g_test_add_func ("/fsm/lifetimes", test_lifetimes);
  g_test_add_func ("/fsm/child-rekey-across-p1-rekey", test_child_rekey_across_p1_rekey);
  g_test_add_func ("/fsm/reload", test_reload);
  g_test_add_func ("/fsm/aggressive/peer-by-id", test_am_peer_by_id);
  g_test_add_func ("/fsm/responder-lifetime", test_responder_lifetime);
  g_test_add_func ("/fsm/forged-informational", test_forged_info);
  g_test_add_func ("/fsm/simultaneous", test_simultaneous);
}
