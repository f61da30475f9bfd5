/* natt between two engines (the fsm harness): A claims a NAT
 * (natt.force), B is the gateway. Keepalives on the mock clock, and the
 * gateway following A when its NAT mapping changes. */
#include "natt.h"
#include "harness.h"
#include "registry-private.h"

static const ModikePluginDescriptor natt_test_desc = {
  MODIKE_PLUGIN_DESCRIPTOR_INIT,
  .name = "natt",
  .version = "test",
};

static void
natt_register (Node *n)
{
  ModikePlugin *pl = modike_registry_add_plugin (n->reg, &natt_test_desc);
  g_autoptr (GError) error = NULL;

  g_assert_nonnull (pl);
  g_assert_true (natt_init (pl, &error));
  g_assert_no_error (error);
  g_assert_true (modike_registry_check_table (n->reg, &error));
  g_assert_no_error (error);
}

/* A behind a (forced) NAT with the keepalive option given (NULL: none). */
static Net *
natt_pair_mode (const char *mode, const char *keepalive, gboolean force, FakeDp *dpb, Node **a, Node **b)
{
  Params p = params_default ();
  g_autofree char *extra = g_strdup_printf ("%s%s%s%s", force ? "    <option name=\"natt.force\" value=\"yes\"/>\n" : "",
                                            keepalive != NULL ? "    <option name=\"natt.keepalive\" value=\"" : "",
                                            keepalive != NULL ? keepalive : "", keepalive != NULL ? "\"/>\n" : "");
  Net *net;

  p.peer_extra_a = extra;
  p.mode = mode;
  net = dpb != NULL ? dp_pair_new (&p, NULL, dpb, NULL, a, b) : pair_new (&p, a, b);
  natt_register (*a);
  natt_register (*b);
  bring_up (net, *a, *b, 1);
  g_assert_cmpuint (net->keepalives, ==, 0);
  return net;
}

static Net *
natt_pair (const char *keepalive, gboolean force, FakeDp *dpb, Node **a, Node **b)
{
  return natt_pair_mode ("tunnel", keepalive, force, dpb, a, b);
}

/* Idle for 60 s with a 5 s interval: twelve keepalives from A, one every
 * 5 s, none from B (not behind a NAT). */
static void
test_keepalive_idle (void)
{
  Node *a, *b;
  Net *net = natt_pair ("5", TRUE, NULL, &a, &b);
  gint64 start = net->now_us;

  g_assert_true (modike_ike_sa_nat_detected (only_sa (a)));
  net_run (net, 60000, NULL, NULL);
  g_assert_cmpint (net->now_us - start, >=, 60 * G_USEC_PER_SEC);
  g_assert_cmpuint (net->keepalives, >=, 11);
  g_assert_cmpuint (net->keepalives, <=, 12);
  g_assert_cmpuint (natt_sa_keepalives (only_sa (a)), ==, net->keepalives);
  g_assert_cmpuint (natt_sa_keepalives (only_sa (b)), ==, 0);
  net_free (net);
}

static void
send_something (ModikeIkeSa *sa)
{
  g_autoptr (GError) error = NULL;

  /* A status notify B has no handler for: it is logged and ignored. */
  g_assert_true (modike_ike_sa_send_notify (sa, 40001, 0, NULL, 0, NULL, 0, &error));
  g_assert_no_error (error);
}

/* Other traffic to the peer holds the mapping: no keepalive while A sends
 * every 3 s; they come back once A is quiet. */
static void
test_keepalive_only_idle (void)
{
  Node *a, *b;
  Net *net = natt_pair ("5", TRUE, NULL, &a, &b);

  for (guint i = 0; i < 10; i++)
    {
      send_something (only_sa (a));
      net_run (net, 3000, NULL, NULL);
    }
  g_assert_cmpuint (net->keepalives, ==, 0);
  net_run (net, 11000, NULL, NULL);
  g_assert_cmpuint (net->keepalives, ==, 2);
  net_free (net);
}

/* Keepalives sent in ms of silence after A (behind a NAT when force)
 * came up with natt.keepalive set to keepalive (NULL: unset). */
static guint
keepalives_after (const char *keepalive, gboolean force, guint ms)
{
  Node *a, *b;
  Net *net = natt_pair (keepalive, force, NULL, &a, &b);
  guint n;

  g_assert_true (modike_ike_sa_nat_detected (only_sa (a)) == force);
  net_run (net, ms, NULL, NULL);
  n = net->keepalives;
  net_free (net);
  return n;
}

/* natt.keepalive 0: none; no NAT: none; the default is 20 s. */
static void
test_keepalive_off (void)
{
  g_assert_cmpuint (keepalives_after ("0", TRUE, 60000), ==, 0);
  g_assert_cmpuint (keepalives_after (NULL, FALSE, 60000), ==, 0);
  g_assert_cmpuint (keepalives_after (NULL, TRUE, 61000), ==, 3);
  g_assert_cmpuint (keepalives_after ("junk", TRUE, 41000), ==, 2);
}

/* They stop with the SA. */
static void
test_keepalive_stop (void)
{
  Node *a, *b;
  Net *net = natt_pair ("5", TRUE, NULL, &a, &b);
  guint n;

  net_run (net, 12000, NULL, NULL);
  n = net->keepalives;
  g_assert_cmpuint (n, ==, 2);
  modike_ike_sa_delete (only_sa (a), FALSE);
  net_run (net, 60000, NULL, NULL);
  g_assert_cmpuint (net->keepalives, ==, n);
  net_free (net);
}

/* A send that fails (our address went away) is noticed once and the
 * keepalives go on when sending works again. */
static void
test_keepalive_send_fails (void)
{
  Node *a, *b;
  Net *net = natt_pair ("5", TRUE, NULL, &a, &b);
  NattSa *s = modike_ike_sa_get_plugin_data (only_sa (a), "natt");

  net->send_fails = TRUE;
  net_run (net, 12000, NULL, NULL);
  g_assert_cmpuint (natt_sa_keepalives (only_sa (a)), ==, 0);
  g_assert_true (s->keepalive_failing);
  net->send_fails = FALSE;
  net_run (net, 6000, NULL, NULL);
  g_assert_cmpuint (natt_sa_keepalives (only_sa (a)), ==, 1);
  g_assert_cmpuint (net->keepalives, ==, 1);
  g_assert_false (s->keepalive_failing);
  net_free (net);
}

/* ---- mapping changes ---- */

typedef struct {
  Node *a, *nat;     /* A, and a node holding the NAT's new address */
  guint16 port;      /* the new public port */
  GBytes *captured;  /* the last datagram from A, as the NAT sends it */
} Remap;

/* A's packets leave with the NAT's new address and port; replies to it
 * go back to A. */
static FilterResult
filter_remap (Net *net, guint n, Packet *p, gpointer user)
{
  Remap *r = user;

  if (modike_addr_equal_ip (&p->src, &r->a->addr))
    {
      memcpy (p->src.addr, r->nat->addr.addr, sizeof p->src.addr);
      p->src.port = r->port;
      g_clear_pointer (&r->captured, g_bytes_unref);
      r->captured = g_bytes_ref (p->data);
    }
  else if (p->to == r->nat)
    {
      p->to = r->a;
      memcpy (p->dst.addr, r->a->addr.addr, sizeof p->dst.addr);
      p->dst.port = 4500;
    }
  return FILTER_PASS;
}

/* B's ESP SAs with A: the outbound one goes to want, the inbound one
 * comes from it, in B's SAD and in its datapath's copies. */
static void
assert_esp_endpoints (Node *b, FakeDp *dp, const ModikeAddr *want)
{
  g_autoptr (GPtrArray) entries = modike_sad_entries (modike_ike_get_sad (b->ike));

  g_assert_cmpuint (entries->len, ==, 2);
  for (guint i = 0; i < entries->len; i++)
    {
      const ModikeSadEntry *e = g_ptr_array_index (entries, i);
      g_autofree char *key = fake_dp_key (e);
      const ModikeSadEntry *copy = g_hash_table_lookup (dp->sas, key);
      const ModikeSadEntry *both[2] = { e, copy };

      g_assert_nonnull (copy);
      for (guint j = 0; j < 2; j++)
        {
          const ModikeAddr *peer = e->dir == MODIKE_DIR_OUT ? &both[j]->dst : &both[j]->src;

          g_assert_true (both[j]->udp_encap);
          g_assert_true (modike_addr_equal_ip (peer, want));
          g_assert_cmpuint (e->dir == MODIKE_DIR_OUT ? both[j]->encap_dport : both[j]->encap_sport, ==, want->port);
        }
    }
}

static void
remap_setup (Net **net, Node **a, Node **b, Node **nat, FakeDp *dpb, GPtrArray *log)
{
  fake_dp_init (dpb, log);
  *net = natt_pair ("0", TRUE, dpb, a, b);
  *nat = node_alloc (*net, "nat", "198.51.100.7");
  g_assert_true (only_sa (*b)->nat_remote);
  g_assert_true (only_sa (*b)->floated);
  assert_esp_endpoints (*b, dpb, &only_sa (*b)->remote);
}

/* An authenticated message from a new address and port moves B's IKE SA
 * and its ESP SAs there; nothing else changes. */
static void
test_mapping_change (void)
{
  g_autoptr (GPtrArray) log = g_ptr_array_new_with_free_func (g_free);
  FakeDp dpb;
  Node *a, *b, *nat;
  Net *net;
  Remap r = { 0 };
  ModikeIkeSa *sb;
  ModikeAddr want;
  guint adds;

  remap_setup (&net, &a, &b, &nat, &dpb, log);
  sb = only_sa (b);
  adds = dpb.sa_adds;
  r.a = a, r.nat = nat, r.port = 31000;
  net->filter = filter_remap;
  net->filter_user = &r;
  send_something (only_sa (a));
  net_run (net, 1000, NULL, NULL);
  g_assert_true (only_sa (b) == sb);
  want = nat->addr;
  want.port = 31000;
  g_assert_true (modike_addr_equal (&sb->remote, &want));
  assert_esp_endpoints (b, &dpb, &want);
  g_assert_cmpuint (log_count (log, 0, "move "), ==, 2);
  g_assert_cmpuint (dpb.sa_adds, ==, adds);
  g_assert_cmpuint (dpb.sa_dels, ==, 0);
  g_assert_cmpuint (b->deleted, ==, 0);
  g_assert_cmpuint (b->p2_up, ==, 1);

  /* And once more, to another port of the same address. */
  r.port = 31001;
  send_something (only_sa (a));
  net_run (net, 1000, NULL, NULL);
  want.port = 31001;
  g_assert_true (modike_addr_equal (&sb->remote, &want));
  assert_esp_endpoints (b, &dpb, &want);
  g_assert_cmpuint (log_count (log, 0, "move "), ==, 4);
  g_clear_pointer (&r.captured, g_bytes_unref);
  net_free (net);
  fake_dp_clear (&dpb);
}

/* Nothing unauthenticated moves the SA: a forged encrypted message, a
 * plain Informational, and a replay of an authenticated message, each
 * from a new address. */
static void
test_mapping_forged (void)
{
  g_autoptr (GPtrArray) log = g_ptr_array_new_with_free_func (g_free);
  FakeDp dpb;
  Node *a, *b, *nat;
  Net *net;
  Remap r = { 0 };
  ModikeIkeSa *sa, *sb;
  ModikeAddr before, evil, local;
  guint8 forged[28 + 64];
  gsize len;
  const guint8 *data;

  remap_setup (&net, &a, &b, &nat, &dpb, log);
  sa = only_sa (a);
  sb = only_sa (b);
  before = sb->remote;
  g_assert_true (modike_addr_parse ("203.0.113.66", 4500, &evil, NULL));
  local = b->addr;
  local.port = 4500;

  /* Right cookies, encrypted flag, garbage body. */
  memset (forged, 0, sizeof forged);
  memcpy (forged, modike_ike_sa_get_icookie (sa), 8);
  memcpy (forged + 8, modike_ike_sa_get_rcookie (sa), 8);
  forged[17] = 0x10;                 /* version 1.0 */
  forged[18] = MODIKE_EX_INFO;
  forged[19] = MODIKE_FLAG_ENCRYPTION;
  forged[20] = 0x12, forged[23] = 0x34; /* message ID */
  forged[27] = sizeof forged;
  for (gsize i = 28; i < sizeof forged; i++)
    forged[i] = (guint8) (i * 7);
  modike_ike_receive (b->ike, &local, &evil, forged, sizeof forged);
  g_assert_true (modike_addr_equal (&sb->remote, &before));

  /* A plain Informational with one notify (INITIAL-CONTACT). */
  forged[19] = 0;
  forged[16] = MODIKE_PL_N;
  forged[27] = 28 + 12;
  memcpy (forged + 28, (guint8[]) { 0, 0, 0, 12, 0, 0, 0, 1, MODIKE_PROTO_ISAKMP, 0, 0x60, 0x02 }, 12);
  modike_ike_receive (b->ike, &local, &evil, forged, 28 + 12);
  g_assert_true (modike_addr_equal (&sb->remote, &before));

  /* A real message of A's, captured, then replayed from elsewhere. */
  r.a = a, r.nat = a, r.port = before.port;
  net->filter = filter_remap;
  net->filter_user = &r;
  send_something (sa);
  net_run (net, 1000, NULL, NULL);
  g_assert_true (modike_addr_equal (&sb->remote, &before));
  g_assert_nonnull (r.captured);
  data = g_bytes_get_data (r.captured, &len);
  modike_ike_receive (b->ike, &local, &evil, data, len);
  net_run (net, 1000, NULL, NULL);
  g_assert_true (modike_addr_equal (&sb->remote, &before));
  assert_esp_endpoints (b, &dpb, &before);
  g_assert_cmpuint (log_count (log, 0, "move "), ==, 0);
  g_assert_true (only_sa (b) == sb);
  g_clear_pointer (&r.captured, g_bytes_unref);
  net_free (net);
  fake_dp_clear (&dpb);
}

/* Without a NAT in front of the peer, a new address is not followed. */
static void
test_mapping_no_nat (void)
{
  Node *a, *b, *nat;
  Net *net = natt_pair ("0", FALSE, NULL, &a, &b);
  Remap r = { 0 };
  ModikeAddr before = only_sa (b)->remote;

  nat = node_alloc (net, "nat", "198.51.100.7");
  r.a = a, r.nat = nat, r.port = 31000;
  net->filter = filter_remap;
  net->filter_user = &r;
  send_something (only_sa (a));
  net_run (net, 1000, NULL, NULL);
  g_assert_true (modike_addr_equal (&only_sa (b)->remote, &before));
  g_clear_pointer (&r.captured, g_bytes_unref);
  net_free (net);
}

/* ---- draft-02/03 on the wire ---- */

typedef struct {
  Node *a;
  GPtrArray *from_a, *from_b; /* GBytes: the plain phase-1 messages */
} Wire;

static FilterResult
filter_record (Net *net, guint n, Packet *p, gpointer user)
{
  Wire *w = user;

  g_ptr_array_add (modike_addr_equal_ip (&p->src, &w->a->addr) ? w->from_a : w->from_b, g_bytes_ref (p->data));
  return FILTER_PASS;
}

/* Count of payloads of type in message no (0-based, plain Main Mode ones
 * only) of list, and its VIDs (natt's, by version) as a mask. */
static guint
count_in (GPtrArray *list, guint no, guint8 type, guint *vid_mask)
{
  static const struct { NattVersion v; gboolean nl; } all[] = {
    { NATT_RFC, FALSE }, { NATT_DRAFT_03, FALSE }, { NATT_DRAFT_02, FALSE }, { NATT_DRAFT_02, TRUE },
  };
  g_autoptr (GError) error = NULL;
  g_autoptr (ModikeMessage) msg = NULL;
  guint n;

  g_assert_cmpuint (no, <, list->len);
  msg = modike_message_parse (g_ptr_array_index (list, no), &error);
  g_assert_no_error (error);
  g_assert_cmpuint (msg->hdr.exchange, ==, MODIKE_EX_MAIN);
  g_assert_false (msg->hdr.flags & MODIKE_FLAG_ENCRYPTION);
  n = modike_message_count (msg, type);
  if (vid_mask != NULL)
    {
      *vid_mask = 0;
      for (guint i = 0; i < modike_message_count (msg, MODIKE_PL_VID); i++)
        {
          const ModikePayload *v = modike_message_find_nth (msg, MODIKE_PL_VID, i);

          for (gsize j = 0; j < G_N_ELEMENTS (all); j++)
            if (v->len == 16 && memcmp (v->body, natt_vendor_id (all[j].v, all[j].nl), 16) == 0)
              *vid_mask |= natt_version_mask (all[j].v);
        }
    }
  return n;
}

/* A offers only `versions` (VIDs `offered`): the VIDs both ways, the NAT-D payload type in
 * messages 3 and 4 and the encapsulation mode each side received in Quick
 * Mode are those of `want`. */
static void
check_version (const char *versions, guint offered, NattVersion want)
{
  Params p = params_default ();
  g_autofree char *extra = g_strdup_printf ("<option name=\"natt.force\" value=\"yes\"/>"
                                            "<option name=\"natt.versions\" value=\"%s\"/>", versions);
  Wire w = { NULL, g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref),
             g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref) };
  guint8 natd = want == NATT_RFC ? MODIKE_PL_NAT_D : MODIKE_PL_NAT_D_DRAFT;
  guint8 other = want == NATT_RFC ? MODIKE_PL_NAT_D_DRAFT : MODIKE_PL_NAT_D;
  guint16 encap = want == NATT_RFC ? MODIKE_ENCAP_UDP_TUNNEL : MODIKE_ENCAP_UDP_TUNNEL_DRAFT;
  guint mask;
  Node *a, *b;
  Net *net;

  p.peer_extra_a = extra;
  net = pair_new (&p, &a, &b);
  natt_register (a);
  natt_register (b);
  w.a = a;
  net->filter = filter_record;
  net->filter_user = &w;
  bring_up (net, a, b, 1);

  /* MM1: A's allowed versions; MM2: B names the one it chose. */
  count_in (w.from_a, 0, MODIKE_PL_VID, &mask);
  g_assert_cmpuint (mask, ==, offered);
  count_in (w.from_b, 0, MODIKE_PL_VID, &mask);
  g_assert_cmpuint (mask, ==, natt_version_mask (want));
  /* MM3, MM4: two NAT-D each, of the version's type. */
  g_assert_cmpuint (count_in (w.from_a, 1, natd, NULL), ==, 2);
  g_assert_cmpuint (count_in (w.from_a, 1, other, NULL), ==, 0);
  g_assert_cmpuint (count_in (w.from_b, 1, natd, NULL), ==, 2);
  g_assert_cmpuint (count_in (w.from_b, 1, other, NULL), ==, 0);
  /* Quick Mode's SA payloads (encrypted): the values each side parsed. */
  g_assert_cmpuint (((NattSa *) modike_ike_sa_get_plugin_data (only_sa (a), "natt"))->version, ==, want);
  g_assert_cmpuint (((NattSa *) modike_ike_sa_get_plugin_data (only_sa (b), "natt"))->version, ==, want);
  g_assert_cmpuint (((NattSa *) modike_ike_sa_get_plugin_data (only_sa (b), "natt"))->encap_seen, ==, encap);
  g_assert_cmpuint (((NattSa *) modike_ike_sa_get_plugin_data (only_sa (a), "natt"))->encap_seen, ==, encap);
  g_assert_true (only_sa (b)->floated);
  net->filter = NULL;
  g_ptr_array_unref (w.from_a);
  g_ptr_array_unref (w.from_b);
  net_free (net);
}

static void
test_versions (void)
{
  check_version ("rfc draft-03 draft-02", NATT_ALL_VERSIONS, NATT_RFC);
  check_version ("draft-03", NATT_MASK_DRAFT_03, NATT_DRAFT_03);
  check_version ("draft-02", NATT_MASK_DRAFT_02, NATT_DRAFT_02);
  check_version ("draft-03,draft-02", NATT_MASK_DRAFT_03 | NATT_MASK_DRAFT_02, NATT_DRAFT_03);
}

/* ---- NAT-OA ---- */

static void
assert_addr (const ModikeAddr *got, const char *want)
{
  ModikeAddr w;

  g_assert_true (modike_addr_parse (want, 0, &w, NULL));
  g_assert_true (modike_addr_equal_ip (got, &w));
}

/* Transport mode behind a NAT: both ends send NAT-OAi and NAT-OAr (the
 * original addresses as each end knows them); the peer keeps them. */
static void
test_natoa_transport (void)
{
  Node *a, *b;
  Net *net = natt_pair_mode ("transport", "0", TRUE, NULL, &a, &b);
  ModikeAddr oi, or;

  g_assert_true (natt_sa_nat_oa (only_sa (b), &oi, &or));
  assert_addr (&oi, "192.0.2.2");
  assert_addr (&or, "192.0.2.1");
  g_assert_true (natt_sa_nat_oa (only_sa (a), &oi, &or));
  assert_addr (&oi, "192.0.2.2");
  assert_addr (&or, "192.0.2.1");
  net_free (net);

  /* Tunnel mode, or no NAT: none. */
  net = natt_pair ("0", TRUE, NULL, &a, &b);
  g_assert_false (natt_sa_nat_oa (only_sa (b), &oi, &or));
  g_assert_false (natt_sa_nat_oa (only_sa (a), &oi, &or));
  net_free (net);
  net = natt_pair_mode ("transport", "0", FALSE, NULL, &a, &b);
  g_assert_false (natt_sa_nat_oa (only_sa (b), &oi, &or));
  net_free (net);
}

/* The NAT-OA body: ID type, three reserved bytes, the address. */
static void
test_natoa_codec (void)
{
  ModikeNatOaPayload oa = { .id_type = MODIKE_ID_IPV4_ADDR, .addr = { 192, 0, 2, 2 } }, back;
  g_autoptr (GByteArray) body = g_byte_array_new ();
  static const guint8 want[] = { 1, 0, 0, 0, 192, 0, 2, 2 };

  modike_nat_oa_payload_encode (&oa, body);
  g_assert_cmpmem (body->data, body->len, want, sizeof want);
  g_assert_true (modike_nat_oa_payload_parse (body->data, body->len, &back, NULL));
  g_assert_cmpuint (back.id_type, ==, MODIKE_ID_IPV4_ADDR);
  g_assert_cmpmem (back.addr, 4, oa.addr, 4);
}

/* ---- roaming: the client's local address goes away ---- */

static ModikeAddr gone; /* the address that is no longer ours (family 0: none) */

static gboolean
test_addr_is_local (const ModikeAddr *addr)
{
  return gone.family == 0 || !modike_addr_equal_ip (addr, &gone);
}

static void
set_gone (const char *addr)
{
  memset (&gone, 0, sizeof gone);
  if (addr != NULL)
    g_assert_true (modike_addr_parse (addr, 0, &gone, NULL));
}

/* The harness pins every <local address>; a roaming client has none. */
static void
unpin (Node *n)
{
  ModikePeerConfig *pc = (ModikePeerConfig *) modike_ike_sa_get_peer_config (only_sa (n));

  g_assert_nonnull (pc);
  pc->local.family = 0;
}

static Net *
roam_pair (const char *extra, Node **a, Node **b)
{
  Params p = params_default ();
  Net *net;

  p.peer_extra_a = extra;
  net = pair_new (&p, a, b);
  natt_register (*a);
  natt_register (*b);
  bring_up (net, *a, *b, 1);
  set_gone (NULL);
  return net;
}

/* Whether n's only SA is still the one with icookie ck. */
static gboolean
same_sa (Node *n, const guint8 ck[8])
{
  return memcmp (modike_ike_sa_get_icookie (only_sa (n)), ck, 8) == 0;
}

/* The address vanishes: at the next check (natt.roam-check, 5 s by
 * default) the old SA is deleted and a new phase 1 starts. */
static void
test_roam_restart (void)
{
  Node *a, *b;
  Net *net = roam_pair (NULL, &a, &b);
  guint8 ck[8];

  memcpy (ck, modike_ike_sa_get_icookie (only_sa (a)), 8);
  unpin (a);
  net_run (net, 3000, NULL, NULL);
  g_assert_true (same_sa (a, ck));
  set_gone ("192.0.2.2");
  net_run (net, 3000, NULL, NULL);
  /* The new phase 1 came up (from "any": the harness delivers it). */
  g_assert_false (same_sa (a, ck));
  g_assert_true (modike_ike_sa_is_established (only_sa (a)));
  g_assert_cmpint (modike_ike_sa_get_role (only_sa (a)), ==, MODIKE_ROLE_INITIATOR);
  g_assert_cmpuint (a->p1_up, ==, 2);
  set_gone (NULL);
  net_free (net);
}

/* n's SA outlives 30 s with addr gone (unpinned: n's entry pins nothing);
 * returns its natt data. */
static NattSa *
roam_stays (Net *net, Node *n, gboolean unpinned, const char *addr)
{
  guint8 ck[8];

  memcpy (ck, modike_ike_sa_get_icookie (only_sa (n)), 8);
  if (unpinned)
    unpin (n);
  set_gone (addr);
  net_run (net, 30000, NULL, NULL);
  set_gone (NULL);
  g_assert_true (same_sa (n, ck));
  g_assert_true (modike_ike_sa_is_established (only_sa (n)));
  return modike_ike_sa_get_plugin_data (only_sa (n), "natt");
}

/* natt.roam="no"; a pinned local address (only logged); the gateway's
 * responder entry: the SA stays. */
static void
test_roam_not (void)
{
  Node *a, *b;
  Net *net = roam_pair ("    <option name=\"natt.roam\" value=\"no\"/>\n", &a, &b);

  roam_stays (net, a, TRUE, "192.0.2.2");
  net_free (net);
  net = roam_pair (NULL, &a, &b);
  g_assert_true (roam_stays (net, a, FALSE, "192.0.2.2")->roam_logged);
  net_free (net);
  net = roam_pair (NULL, &a, &b);
  roam_stays (net, b, TRUE, "192.0.2.1");
  net_free (net);
}

/* With the periodic check off, a failing keepalive send finds the
 * vanished address. */
static void
test_roam_send_fails (void)
{
  Node *a, *b;
  Net *net = roam_pair ("    <option name=\"natt.force\" value=\"yes\"/>\n"
                        "    <option name=\"natt.keepalive\" value=\"5\"/>\n"
                        "    <option name=\"natt.roam-check\" value=\"0\"/>\n", &a, &b);
  guint8 ck[8];

  memcpy (ck, modike_ike_sa_get_icookie (only_sa (a)), 8);
  unpin (a);
  set_gone ("192.0.2.2");
  net_run (net, 12000, NULL, NULL);
  g_assert_true (same_sa (a, ck)); /* keepalives went out: nobody looked */
  g_assert_cmpuint (net->keepalives, >=, 1);
  net->send_fails = TRUE;
  net_run (net, 6000, NULL, NULL);
  net->send_fails = FALSE;
  g_assert_false (same_sa (a, ck));
  set_gone (NULL);
  net_free (net);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  natt_set_addr_is_local (test_addr_is_local);
  g_test_add_func ("/natt/keepalive/idle", test_keepalive_idle);
  g_test_add_func ("/natt/keepalive/only-when-idle", test_keepalive_only_idle);
  g_test_add_func ("/natt/keepalive/off", test_keepalive_off);
  g_test_add_func ("/natt/keepalive/stop-with-sa", test_keepalive_stop);
  g_test_add_func ("/natt/keepalive/send-fails", test_keepalive_send_fails);
  g_test_add_func ("/natt/mapping/follow", test_mapping_change);
  g_test_add_func ("/natt/mapping/forged", test_mapping_forged);
  g_test_add_func ("/natt/mapping/no-nat", test_mapping_no_nat);
  g_test_add_func ("/natt/roam/restart", test_roam_restart);
  g_test_add_func ("/natt/roam/not", test_roam_not);
  g_test_add_func ("/natt/roam/send-fails", test_roam_send_fails);
  g_test_add_func ("/natt/versions/on-the-wire", test_versions);
  g_test_add_func ("/natt/nat-oa/transport", test_natoa_transport);
  g_test_add_func ("/natt/nat-oa/codec", test_natoa_codec);
  return g_test_run ();
}
