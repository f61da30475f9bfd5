/* Suite fsm: many clients on one responder-only peer entry of a gateway.
 * Each client's SAs are its own: the others' connects, rekeys, deletes and
 * INITIAL-CONTACTs leave them alone (docs/design.md, "the SAs of one peer"). */
#include "harness.h"

#define GW_ADDR "192.0.2.1"

/* The gateway: one <peer> without a remote address for every client. */
static const char gw_xml[] =
  "<?xml version=\"1.0\"?>\n"
  "<modike>\n"
  "  <peer name=\"clients\">\n"
  "    <local address=\"" GW_ADDR "\"/>\n"
  "    <auth method=\"psk\" secret=\"clientpsk\"/>\n"
  "    <phase1 exchange=\"main\"><proposal encryption=\"aes128\" hash=\"sha256\" group=\"curve25519\"/></phase1>\n"
  "    <retransmit interval=\"1000\" tries=\"3\" half-open=\"60\"/>\n"
  "  </peer>\n"
  "  <policy name=\"net\" peer=\"clients\" action=\"protect\" local=\"10.2.0.0/24\" remote=\"10.1.0.0/16\">\n"
  "    <proposal encryption=\"aes128\" integrity=\"sha256\"/>\n"
  "  </policy>\n"
  "</modike>\n";

/* A client with identity `id` and `policies` (1 or 2) policies for its
 * own subnet 10.1.<subnet>.0/24. */
static Node *
client_new (Net *net, const char *name, const char *addr, const char *id, guint subnet, guint policies)
{
  g_autoptr (GString) xml = g_string_new (NULL);

  g_string_append_printf (xml,
                          "<?xml version=\"1.0\"?>\n"
                          "<modike>\n"
                          "  <peer name=\"gw\">\n"
                          "    <local address=\"%s\"/>\n"
                          "    <remote address=\"" GW_ADDR "\"/>\n"
                          "    <local-id type=\"fqdn\" value=\"%s\"/>\n"
                          "    <auth method=\"psk\" secret=\"clientpsk\"/>\n"
                          "    <phase1 exchange=\"main\">"
                          "<proposal encryption=\"aes128\" hash=\"sha256\" group=\"curve25519\"/></phase1>\n"
                          "    <retransmit interval=\"1000\" tries=\"3\" half-open=\"60\"/>\n"
                          "  </peer>\n",
                          addr, id);
  for (guint i = 0; i < policies; i++)
    g_string_append_printf (xml,
                            "  <policy name=\"net%u\" peer=\"gw\" action=\"protect\" local=\"10.1.%u.%u/25\""
                            " remote=\"10.2.0.0/24\">\n"
                            "    <proposal encryption=\"aes128\" integrity=\"sha256\"/>\n"
                            "  </policy>\n",
                            i, subnet, i * 128);
  g_string_append (xml, "</modike>\n");
  return node_new_xml (net, name, addr, xml->str);
}

/* The gateway's SA for the client's SA csa (same cookies). */
static ModikeIkeSa *
gw_sa_for (Node *gw, const ModikeIkeSa *csa)
{
  ModikeIkeSa *sa = g_hash_table_lookup (gw->ike->by_icookie, &csa->icookie_key);

  return sa != NULL && !sa->dead && memcmp (sa->rcookie, csa->rcookie, MODIKE_COOKIE_LEN) == 0 ? sa : NULL;
}

/* The gateway's live SA from addr (exactly one). */
static ModikeIkeSa *
gw_sa_from (Node *gw, const ModikeAddr *addr)
{
  ModikeIkeSa *found = NULL;

  for (guint i = 0; i < gw->ike->sas->len; i++)
    {
      ModikeIkeSa *sa = g_ptr_array_index (gw->ike->sas, i);

      if (sa->dead || !modike_addr_equal_ip (&sa->remote, addr))
        continue;
      g_assert_null (found);
      found = sa;
    }
  return found;
}

/* The client's newest established SA, NULL if none. */
static ModikeIkeSa *
client_sa (Node *c)
{
  return engine_best_established (engine_peer_sas (c->ike, "gw"), NULL);
}

typedef struct {
  Node *gw, *c;
  guint children;
} ClientWant;

/* The client's newest SA is up at both ends with `children` pairs each. */
static gboolean
pred_client_up (Net *net, gpointer user)
{
  ClientWant *w = user;
  ModikeIkeSa *csa = client_sa (w->c);
  ModikeIkeSa *gsa = csa != NULL ? gw_sa_for (w->gw, csa) : NULL;

  return gsa != NULL && gsa->state == SA_ESTABLISHED && csa->children->len == w->children &&
         gsa->children->len == w->children && g_queue_is_empty (&net->queue);
}

static void
connect_client (Net *net, Node *gw, Node *c, guint children)
{
  ClientWant w = { gw, c, children };
  g_autoptr (GError) error = NULL;

  g_assert_true (modike_ike_initiate (c->ike, "gw", &error));
  g_assert_no_error (error);
  g_assert_true (net_run (net, 30000, pred_client_up, &w));
}

/* The gateway's SA sa and the client's csa hold the same children:
 * our inbound SPI is the other's outbound, both in the SADs. */
static void
assert_mirror (Node *gw, ModikeIkeSa *gsa, Node *c, ModikeIkeSa *csa)
{
  g_assert_cmpuint (gsa->children->len, ==, csa->children->len);
  for (guint i = 0; i < csa->children->len; i++)
    {
      const EngineChild *cc = g_ptr_array_index (csa->children, i);
      const EngineChild *gc = engine_child_find_spi (gsa, cc->spi_out, FALSE);

      g_assert_nonnull (gc);
      g_assert_cmphex (gc->spi_out, ==, cc->spi_in);
      g_assert_nonnull (modike_sad_lookup (modike_ike_get_sad (gw->ike), MODIKE_DIR_IN, gc->spi_in));
      g_assert_nonnull (modike_sad_lookup_sa (modike_ike_get_sad (gw->ike), MODIKE_DIR_OUT, gc->spi_out, gc->reqid));
      g_assert_nonnull (modike_sad_lookup (modike_ike_get_sad (c->ike), MODIKE_DIR_IN, cc->spi_in));
    }
}

/* Client c has one SA, up, with `children` pairs; so has the gateway's SA
 * for it (from c's address), and the two mirror each other. */
static void
check_client (Node *gw, Node *c, guint children)
{
  ModikeIkeSa *csa = only_sa (c);
  ModikeIkeSa *gsa = gw_sa_for (gw, csa);

  g_assert_nonnull (gsa);
  g_assert_true (gsa == gw_sa_from (gw, &c->addr));
  g_assert_true (modike_ike_sa_is_established (csa));
  g_assert_true (modike_ike_sa_is_established (gsa));
  g_assert_false (csa->rekeyed);
  g_assert_false (gsa->rekeyed);
  g_assert_cmpstr (modike_ike_sa_get_peer_name (gsa), ==, "clients");
  g_assert_cmpuint (csa->children->len, ==, children);
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (c->ike)), ==, 2 * children);
  assert_mirror (gw, gsa, c, csa);
}

/* The SPIs of the SA's children, in order. */
static GArray *
child_spis (const ModikeIkeSa *sa)
{
  GArray *spis = g_array_new (FALSE, FALSE, sizeof (guint32));

  for (guint i = 0; i < sa->children->len; i++)
    {
      const EngineChild *c = g_ptr_array_index (sa->children, i);

      g_array_append_val (spis, c->spi_in);
      g_array_append_val (spis, c->spi_out);
    }
  return spis;
}

static void
assert_spis (const ModikeIkeSa *sa, GArray *want)
{
  g_autoptr (GArray) now = child_spis (sa);

  g_assert_cmpuint (now->len, ==, want->len);
  g_assert_true (memcmp (now->data, want->data, want->len * sizeof (guint32)) == 0);
}

/* Nothing reached the gateway that it did not understand or dropped, and
 * it received every packet the clients sent (the net loses none here). */
static void
assert_gw_rx (Node *gw, Node *const *clients, guint n)
{
  const ModikeIkeStats *st = modike_ike_get_stats (gw->ike);
  guint64 sent = 0;

  for (guint i = 0; i < n; i++)
    sent += modike_ike_get_stats (clients[i]->ike)->tx_packets;
  g_assert_cmpuint (st->rx_packets, ==, sent);
  g_assert_cmpuint (st->rx_garbage + st->rx_unknown_sa + st->rx_dropped + st->rx_digest_rejects + st->rx_no_row, ==, 0);
  g_assert_cmpuint (st->auth_failures, ==, 0);
}

static Net *
three_up (Node **gw, Node **c1, Node **c2, Node **c3)
{
  Net *net = net_new ();

  *gw = node_new_xml (net, "gw", GW_ADDR, gw_xml);
  *c1 = client_new (net, "c1", "192.0.2.11", "c1.example", 1, 1);
  *c2 = client_new (net, "c2", "192.0.2.12", "c2.example", 2, 2);
  *c3 = client_new (net, "c3", "192.0.2.13", "c3.example", 3, 1);

  /* Each keeps its own children through the others' connects. */
  connect_client (net, *gw, *c1, 1);
  check_client (*gw, *c1, 1);
  connect_client (net, *gw, *c2, 2);
  check_client (*gw, *c1, 1);
  check_client (*gw, *c2, 2);
  connect_client (net, *gw, *c3, 1);
  check_client (*gw, *c1, 1);
  check_client (*gw, *c2, 2);
  check_client (*gw, *c3, 1);
  g_assert_cmpuint (modike_ike_count_sas ((*gw)->ike, TRUE), ==, 3);
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad ((*gw)->ike)), ==, 2 * 4);
  g_assert_cmpuint ((*gw)->p2_up, ==, 4);
  g_assert_cmpuint ((*gw)->deleted, ==, 0);
  return net;
}

typedef struct {
  Node *n;
  guint p1_up, p2_up;
} UpCounts;

static gboolean
pred_counts (Net *net, gpointer user)
{
  UpCounts *w = user;

  return w->n->p1_up >= w->p1_up && w->n->p2_up >= w->p2_up && g_queue_is_empty (&net->queue);
}

static void
test_own_children (void)
{
  Node *gw, *c1, *c2, *c3;
  Net *net = three_up (&gw, &c1, &c2, &c3);
  Node *const clients[] = { c1, c2, c3 };
  ModikeIkeSa *old1 = only_sa (c1), *gw_old1 = gw_sa_for (gw, old1), *new1, *gw_new1;
  ModikeIkeSa *gw2 = gw_sa_for (gw, only_sa (c2)), *gw3 = gw_sa_for (gw, only_sa (c3));
  g_autoptr (GArray) spis1 = child_spis (gw_old1);
  g_autoptr (GArray) spis2 = child_spis (gw2);
  g_autoptr (GArray) spis3 = child_spis (gw3);
  EngineChild *old_child;
  guint32 old_in, old_out;

  assert_gw_rx (gw, clients, 3);

  /* Phase 1 rekey of c1: its new SA takes c1's child, nobody else's. */
  net_fire_now (net, old1->rekey_timer);
  g_assert_true (net_run (net, 30000, pred_counts, &(UpCounts){ gw, 4, 4 }));
  new1 = client_sa (c1);
  g_assert_true (new1 != old1);
  gw_new1 = gw_sa_for (gw, new1);
  g_assert_nonnull (gw_new1);
  g_assert_true (old1->rekeyed);
  g_assert_true (gw_old1->rekeyed);
  g_assert_cmpuint (old1->children->len, ==, 0);
  g_assert_cmpuint (gw_old1->children->len, ==, 0);
  assert_spis (gw_new1, spis1);
  assert_mirror (gw, gw_new1, c1, new1);
  g_assert_false (gw2->rekeyed);
  g_assert_false (gw3->rekeyed);
  assert_spis (gw2, spis2);
  assert_spis (gw3, spis3);

  /* The old SA expires: c1 deletes it; the gateway drops that one only. */
  net_fire_now (net, old1->expire_timer);
  net_run (net, 1000, NULL, NULL);
  g_assert_cmpuint (gw->deleted, ==, 1);
  check_client (gw, c1, 1);
  assert_spis (gw_sa_for (gw, only_sa (c1)), spis1);
  check_client (gw, c2, 2);
  check_client (gw, c3, 1);
  assert_spis (gw2, spis2);
  assert_spis (gw3, spis3);

  /* Child rekey of c2: its gateway SA gets the new pair, then loses the
   * old one to c2's DELETE at expiry. */
  old_child = g_ptr_array_index (only_sa (c2)->children, 0);
  old_in = old_child->spi_in;
  old_out = old_child->spi_out;
  net_fire_now (net, old_child->rekey_timer);
  g_assert_true (net_run (net, 30000, pred_counts, &(UpCounts){ c2, 1, 3 }));
  g_assert_true (old_child->rekeyed);
  g_assert_cmpuint (only_sa (c2)->children->len, ==, 3);
  g_assert_true (gw_sa_for (gw, only_sa (c2)) == gw2);
  assert_mirror (gw, gw2, c2, only_sa (c2));
  guint32 old_gw_reqid = engine_child_find_spi (gw2, old_in, TRUE)->reqid;
  net_fire_now (net, old_child->expire_timer);
  net_run (net, 1000, NULL, NULL);
  check_client (gw, c2, 2);
  g_assert_null (engine_find_child (gw->ike, MODIKE_DIR_IN, old_out, 0));
  g_assert_null (engine_find_child (gw->ike, MODIKE_DIR_OUT, old_in, old_gw_reqid));
  check_client (gw, c1, 1);
  check_client (gw, c3, 1);
  assert_spis (gw_sa_for (gw, only_sa (c1)), spis1);
  assert_spis (gw3, spis3);

  /* c3 goes: its ISAKMP and ESP DELETEs take only its own SAs. */
  modike_ike_terminate (c3->ike, "gw");
  net_run (net, 1000, NULL, NULL);
  assert_no_sas (c3);
  g_assert_null (gw_sa_from (gw, &c3->addr));
  g_assert_cmpuint (gw->deleted, ==, 2);
  check_client (gw, c1, 1);
  check_client (gw, c2, 2);
  assert_spis (gw_sa_for (gw, only_sa (c1)), spis1);
  g_assert_cmpuint (modike_ike_count_sas (gw->ike, TRUE), ==, 2);
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (gw->ike)), ==, 2 * 3);
  assert_no_failures (gw, c1);
  assert_no_failures (c2, c3);
  assert_gw_rx (gw, clients, 3);
  net_free (net);
}

/* c2 reboots and comes back with INITIAL-CONTACT: the gateway drops c2's
 * old SA, and only that one. */
static void
test_initial_contact (void)
{
  Node *gw, *c1, *c2, *c3;
  Net *net = three_up (&gw, &c1, &c2, &c3);
  ModikeIkeSa *gw1 = gw_sa_for (gw, only_sa (c1)), *gw3 = gw_sa_for (gw, only_sa (c3));
  g_autoptr (GArray) spis1 = child_spis (gw1);
  g_autoptr (GArray) spis3 = child_spis (gw3);
  guint8 old_icookie[MODIKE_COOKIE_LEN];

  memcpy (old_icookie, only_sa (c2)->icookie, sizeof old_icookie);
  node_free (c2);
  c2 = client_new (net, "c2-again", "192.0.2.12", "c2.example", 2, 2);
  connect_client (net, gw, c2, 2);
  net_run (net, 1000, NULL, NULL);
  check_client (gw, c2, 2);
  g_assert_false (memcmp (only_sa (c2)->icookie, old_icookie, sizeof old_icookie) == 0);
  g_assert_cmpuint (gw->deleted, ==, 1);
  g_assert_cmpuint (gw->p1_up, ==, 4);
  g_assert_cmpuint (modike_ike_count_sas (gw->ike, FALSE), ==, 3);
  g_assert_true (gw_sa_for (gw, only_sa (c1)) == gw1);
  g_assert_true (gw_sa_for (gw, only_sa (c3)) == gw3);
  check_client (gw, c1, 1);
  check_client (gw, c3, 1);
  assert_spis (gw1, spis1);
  assert_spis (gw3, spis3);
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (gw->ike)), ==, 2 * 4);
  net_free (net);
}

typedef struct {
  Node *gw;
  const ModikeAddr *from;
} SaFrom;

static gboolean
pred_sa_from (Net *net, gpointer user)
{
  SaFrom *w = user;

  return gw_sa_from (w->gw, w->from) != NULL;
}

/* Client c starts; the gateway's NAT detection says c is behind a NAT
 * (as natt would, from the NAT-D hashes) before phase 1 completes. */
static void
connect_behind_nat (Net *net, Node *gw, Node *c, guint children)
{
  ClientWant w = { gw, c, children };

  g_assert_true (modike_ike_initiate (c->ike, "gw", NULL));
  g_assert_true (net_run (net, 30000, pred_sa_from, &(SaFrom){ gw, &c->addr }));
  modike_ike_sa_set_nat (gw_sa_from (gw, &c->addr), FALSE, TRUE);
  g_assert_true (net_run (net, 30000, pred_client_up, &w));
}

/* A client behind NAT comes back from a new address with the same
 * identity: that replaces its own SA only. The same identity from a new
 * address without NAT is another client. */
static void
test_nat_move (void)
{
  Node *gw, *c1, *c2, *c3, *c1x;
  Net *net = three_up (&gw, &c1, &c2, &c3);
  ModikeIkeSa *gw1 = gw_sa_for (gw, only_sa (c1)), *gw3 = gw_sa_for (gw, only_sa (c3));
  g_autoptr (GArray) spis1 = child_spis (gw1);
  g_autoptr (GArray) spis3 = child_spis (gw3);
  ModikeAddr old_addr = c2->addr;

  /* c2 now reaches the gateway through a NAT with another public address. */
  node_free (c2);
  c2 = client_new (net, "c2-nat", "192.0.2.42", "c2.example", 2, 2);
  connect_behind_nat (net, gw, c2, 2);
  net_run (net, 1000, NULL, NULL);
  g_assert_true (gw_sa_from (gw, &c2->addr)->nat_remote);
  g_assert_null (gw_sa_from (gw, &old_addr));
  g_assert_cmpuint (gw->deleted, ==, 1);
  check_client (gw, c2, 2);
  check_client (gw, c1, 1);
  check_client (gw, c3, 1);
  assert_spis (gw1, spis1);
  assert_spis (gw3, spis3);
  g_assert_cmpuint (modike_ike_count_sas (gw->ike, FALSE), ==, 3);

  /* c1's identity from another address, no NAT: a client of its own. */
  c1x = client_new (net, "c1x", "192.0.2.31", "c1.example", 4, 1);
  connect_client (net, gw, c1x, 1);
  net_run (net, 1000, NULL, NULL);
  g_assert_cmpuint (gw->deleted, ==, 1);
  check_client (gw, c1x, 1);
  check_client (gw, c1, 1);
  assert_spis (gw1, spis1);
  check_client (gw, c2, 2);
  check_client (gw, c3, 1);
  g_assert_cmpuint (modike_ike_count_sas (gw->ike, TRUE), ==, 4);
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (gw->ike)), ==, 2 * 5);
  net_free (net);
}

/* The gateway never initiates to a responder-only entry: neither an
 * explicit initiate nor traffic picks one of its clients' SAs (which
 * client a packet is for is not the gateway's to guess). */
static void
test_no_initiate (void)
{
  Node *gw, *c1, *c2, *c3;
  Net *net = three_up (&gw, &c1, &c2, &c3);
  g_autoptr (GError) error = NULL;
  guint64 tx = modike_ike_get_stats (gw->ike)->tx_packets;
  g_autoptr (GPtrArray) entries = modike_spd_entries (modike_ike_get_spd (gw->ike));
  const ModikeSpdEntry *e = g_ptr_array_index (entries, 0);

  Node *const clients[] = { c1, c2, c3 };

  g_assert_false (modike_ike_initiate (gw->ike, "clients", &error));
  g_assert_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_NO_PEER);
  g_assert_cmpuint (modike_ike_get_stats (gw->ike)->tx_packets, ==, tx);

  /* Every client drops its children (DELETEs to the gateway); the IKE SAs
   * stay. Traffic for the policy then finds no child, and still no client
   * is picked to carry one. */
  for (guint i = 0; i < G_N_ELEMENTS (clients); i++)
    {
      ModikeIkeSa *sa = only_sa (clients[i]);

      engine_enter (clients[i]->ike);
      while (sa->children->len > 0)
        engine_child_remove (g_ptr_array_index (sa->children, 0), TRUE);
      engine_leave (clients[i]->ike);
    }
  net_run (net, 1000, NULL, NULL);
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (gw->ike)), ==, 0);
  g_assert_cmpuint (modike_ike_count_sas (gw->ike, TRUE), ==, 3);
  engine_acquire (gw->ike, e->id, NULL);
  net_run (net, 3000, NULL, NULL);
  g_assert_cmpuint (modike_ike_get_stats (gw->ike)->tx_packets, ==, tx);
  g_assert_cmpuint (gw->p2_up, ==, 4);
  for (guint i = 0; i < G_N_ELEMENTS (clients); i++)
    check_client (gw, clients[i], 0);
  assert_gw_rx (gw, clients, G_N_ELEMENTS (clients));
  net_free (net);
}

/* 64 clients from 64 addresses: every one keeps its own child, and the
 * last one's DELETEs take only its own SAs. */
static void
test_many (void)
{
  Net *net = net_new ();
  Node *gw = node_new_xml (net, "gw", GW_ADDR, gw_xml);
  Node *last = NULL;
  const guint n = 64;

  for (guint i = 0; i < n; i++)
    {
      g_autofree char *addr = g_strdup_printf ("192.0.2.%u", 100 + i);
      g_autofree char *id = g_strdup_printf ("c%u.example", i);

      if (last != NULL)
        {
          /* Gone without a word: the gateway keeps its SA (and a slot frees). */
          node_free (last);
          net->n_nodes--;
        }
      last = client_new (net, "c", addr, id, 1, 1);
      connect_client (net, gw, last, 1);
    }
  g_assert_cmpuint (modike_ike_count_sas (gw->ike, TRUE), ==, n);
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (gw->ike)), ==, 2 * n);
  for (guint i = 0; i < gw->ike->sas->len; i++)
    {
      ModikeIkeSa *sa = g_ptr_array_index (gw->ike->sas, i);

      g_assert_false (sa->rekeyed);
      g_assert_cmpuint (sa->children->len, ==, 1);
    }
  modike_ike_terminate (last->ike, "gw");
  net_run (net, 1000, NULL, NULL);
  g_assert_cmpuint (gw->deleted, ==, 1);
  g_assert_cmpuint (modike_ike_count_sas (gw->ike, TRUE), ==, n - 1);
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (gw->ike)), ==, 2 * (n - 1));
  g_assert_null (gw_sa_from (gw, &last->addr));
  net_free (net);
}

/* A result the gateway set on c1's SA (a virtual adapter for the client)
 * moves to c1's new SA when c1 rekeys phase 1, and to no other client's:
 * it goes when c1's last SA goes, while c2's SA stays up. */
static void
test_result_successor (void)
{
  g_autoptr (GPtrArray) log = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (ModikeSaResult) r = modike_sa_result_new ();
  g_autoptr (GError) error = NULL;
  FakeDp dp;
  FakeOs os = { 0 };
  Net *net = net_new ();
  Node *gw, *c1, *c2;
  ModikeIkeSa *old1;
  ModikePrefix pfx;
  guint mark;

  fake_dp_init (&dp, log);
  os.log = log;
  gw = node_alloc (net, "gw", GW_ADDR);
  fake_dp_register (gw, &dp);
  fake_os_register (gw, &os);
  node_configure (gw, gw_xml);
  c1 = client_new (net, "c1", "192.0.2.11", "c1.example", 1, 1);
  c2 = client_new (net, "c2", "192.0.2.12", "c2.example", 2, 1);
  connect_client (net, gw, c1, 1);
  connect_client (net, gw, c2, 1);
  old1 = only_sa (c1);
  g_assert_true (modike_prefix_parse ("10.99.0.11/32", &pfx, NULL));
  modike_sa_result_add_address (r, &pfx);
  g_assert_true (modike_ike_sa_set_result (gw_sa_for (gw, old1), r, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (os.live, ==, 1);

  /* c1 rekeys phase 1, then its old SA expires (a DELETE to the gateway). */
  mark = log->len;
  net_fire_now (net, old1->rekey_timer);
  g_assert_true (net_run (net, 30000, pred_counts, &(UpCounts){ gw, 3, 2 }));
  net_fire_now (net, old1->expire_timer);
  net_run (net, 1000, NULL, NULL);
  g_assert_cmpuint (gw->deleted, ==, 1);
  check_client (gw, c1, 1);
  g_assert_cmpuint (log_count (log, mark, "destroy"), ==, 0);
  g_assert_cmpuint (os.live, ==, 1);

  /* c1 goes: the result goes with it, c2 up or not. */
  modike_ike_terminate (c1->ike, "gw");
  net_run (net, 1000, NULL, NULL);
  check_client (gw, c2, 1);
  g_assert_true (log_has (log, "destroy modike0"));
  g_assert_cmpuint (os.live, ==, 0);
  net_free (net);
  fake_dp_clear (&dp);
}

/* Two clients whose Quick Modes give the gateway the same outbound SPI
 * (the receiver chooses it: 1 in 2^32 per pair, expected among 100,000
 * clients): both come up, in the SAD and the datapath under (spi,
 * reqid); one's DELETE, expiry or rekey leaves the other's SAs alone. */
static void
test_shared_outbound_spi (void)
{
  enum { SPI = 0x5eed0001 };
  g_autoptr (GPtrArray) log = g_ptr_array_new_with_free_func (g_free);
  FakeDp dp;
  Net *net = net_new ();
  Node *gw, *c1, *c2;
  ModikeIkeSa *g1, *g2;
  EngineChild *k1, *k2;
  guint32 reqid1, reqid2;
  ModikeSaStats in, out;

  fake_dp_init (&dp, log);
  gw = node_alloc (net, "gw", GW_ADDR);
  fake_dp_register (gw, &dp);
  node_configure (gw, gw_xml);
  c1 = client_new (net, "c1", "192.0.2.11", "c1.example", 1, 1);
  c2 = client_new (net, "c2", "192.0.2.12", "c2.example", 2, 1);
  c1->ike->test_spi_in = c2->ike->test_spi_in = SPI;
  connect_client (net, gw, c1, 1);
  connect_client (net, gw, c2, 1);
  check_client (gw, c1, 1);
  check_client (gw, c2, 1);
  g1 = gw_sa_for (gw, only_sa (c1));
  g2 = gw_sa_for (gw, only_sa (c2));
  k1 = g_ptr_array_index (g1->children, 0);
  k2 = g_ptr_array_index (g2->children, 0);
  reqid1 = k1->reqid;
  reqid2 = k2->reqid;
  g_assert_cmphex (k1->spi_out, ==, SPI);
  g_assert_cmphex (k2->spi_out, ==, SPI);
  g_assert_cmpuint (reqid1, !=, reqid2);
  g_assert_true (engine_find_child (gw->ike, MODIKE_DIR_OUT, SPI, reqid1) == k1);
  g_assert_true (engine_find_child (gw->ike, MODIKE_DIR_OUT, SPI, reqid2) == k2);
  g_assert_true (engine_child_find_spi (g1, SPI, TRUE) == k1);
  g_assert_true (engine_child_find_spi (g2, SPI, TRUE) == k2);
  g_assert_cmpstr (modike_sad_lookup_sa (modike_ike_get_sad (gw->ike), MODIKE_DIR_OUT, SPI, reqid1)->peer, ==,
                   "clients");
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (gw->ike)), ==, 4);
  fake_dp_assert_mirror (&dp, gw);
  g_assert_cmpuint (gw->p2_up, ==, 2);
  g_assert_true (engine_dp_child_stats (gw->ike, k2, &in, &out));
  g_assert_cmpuint (out.packets, ==, 4);

  /* A soft expiry of c2's outbound SA in the datapath starts the rekey of
   * c2's child, not c1's. The responder-only gateway offers the selectors
   * c2's child got, not its template's: c2 takes them. */
  modike_datapath_expire_sa (dp.host, MODIKE_DIR_OUT, SPI, reqid2, FALSE);
  host_flush ();
  g_assert_true (k2->rekeyed);
  g_assert_false (k1->rekeyed);
  net_run (net, 1000, NULL, NULL);
  g_assert_cmpuint (g2->children->len, ==, 2);
  g_assert_cmpuint (only_sa (c2)->children->len, ==, 2);
  g_assert_cmpuint (c2->p2_failed, ==, 0);
  {
    const EngineChild *k3 = g_ptr_array_index (g2->children, 1);
    const ModikeSadEntry *old_in = modike_sad_lookup_sa (modike_ike_get_sad (gw->ike), MODIKE_DIR_IN, k2->spi_in, 0);
    const ModikeSadEntry *new_in = modike_sad_lookup_sa (modike_ike_get_sad (gw->ike), MODIKE_DIR_IN, k3->spi_in, 0);

    g_assert_true (modike_addr_equal (&new_in->local_ts.from, &old_in->local_ts.from) &&
                   modike_addr_equal (&new_in->local_ts.to, &old_in->local_ts.to) &&
                   modike_addr_equal (&new_in->remote_ts.from, &old_in->remote_ts.from) &&
                   modike_addr_equal (&new_in->remote_ts.to, &old_in->remote_ts.to));
  }
  g_assert_cmpuint (g1->children->len, ==, 1);
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (gw->ike)), ==, 6);
  fake_dp_assert_mirror (&dp, gw);

  /* c1 deletes its child: its DELETE names its inbound SPI, the gateway's
   * outbound one, which only c1's SA can mean. */
  engine_child_remove (g_ptr_array_index (only_sa (c1)->children, 0), TRUE);
  net_run (net, 1000, NULL, NULL);
  g_assert_cmpuint (g1->children->len, ==, 0);
  g_assert_null (modike_sad_lookup_sa (modike_ike_get_sad (gw->ike), MODIKE_DIR_OUT, SPI, reqid1));
  g_assert_nonnull (modike_sad_lookup_sa (modike_ike_get_sad (gw->ike), MODIKE_DIR_OUT, SPI, reqid2));
  g_assert_true (engine_find_child (gw->ike, MODIKE_DIR_OUT, SPI, reqid2) == k2);
  g_assert_cmpuint (g2->children->len, ==, 2);
  fake_dp_assert_mirror (&dp, gw);
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (gw->ike)), ==, 4);

  /* The hard expiry of c2's old outbound SA takes exactly that child; its
   * replacement stays. */
  modike_datapath_expire_sa (dp.host, MODIKE_DIR_OUT, SPI, reqid2, TRUE);
  host_flush ();
  net_run (net, 1000, NULL, NULL);
  g_assert_null (modike_sad_lookup_sa (modike_ike_get_sad (gw->ike), MODIKE_DIR_OUT, SPI, reqid2));
  g_assert_cmpuint (g2->children->len, ==, 1);
  g_assert_cmpuint (only_sa (c2)->children->len, ==, 1);
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (gw->ike)), ==, 2);
  check_client (gw, c2, 1);
  fake_dp_assert_mirror (&dp, gw);
  net_free (net);
  fake_dp_clear (&dp);
}

void
fsm_add_client_tests (void)
{
  g_test_add_func ("/fsm/clients/own-children", test_own_children);
  g_test_add_func ("/fsm/clients/initial-contact", test_initial_contact);
  g_test_add_func ("/fsm/clients/nat-move", test_nat_move);
  g_test_add_func ("/fsm/clients/no-initiate", test_no_initiate);
  g_test_add_func ("/fsm/clients/many", test_many);
  g_test_add_func ("/fsm/clients/result-successor", test_result_successor);
  g_test_add_func ("/fsm/clients/shared-outbound-spi", test_shared_outbound_spi);
}
