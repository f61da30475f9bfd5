/* Suite fsm: policy templates (a "virtual" side) and their per-SA
 * instances. On a client, local="virtual" templates get instances from the
 * result a mode config plugin sets (address, split include and exclude);
 * on a gateway, remote="virtual" templates get one per client from
 * modike_ike_sa_set_peer_address, usable only by that client. */
#include "harness.h"

#define GW_ADDR "192.0.2.1"

typedef struct {
  Net *net;
  Node *gw;
  Node *c[3];
  GPtrArray *log;            /* the gateway's fakes */
  GPtrArray *clog[3];        /* each client's fakes */
  FakeDp dp, cdp[3];
  FakeOs os, cos[3];
} World;

static const char *const client_addr[] = { "192.0.2.11", "192.0.2.12", "192.0.2.13" };
static const char *const client_vip[] = { "10.99.0.11/32", "10.99.0.12/32", "10.99.0.13/32" };

/* The gateway: one responder-only entry for every client, a remote="virtual"
 * template with `local`, <adapter> when asked. */
static char *
gw_xml (const char *local, gboolean adapter)
{
  return g_strdup_printf (
    "<?xml version=\"1.0\"?>\n"
    "<modike>\n"
    "  <peer name=\"clients\">\n"
    "    <local address=\"" GW_ADDR "\"/>\n"
    "    <auth method=\"psk\" secret=\"clientpsk\"/>\n"
    "    <phase1 exchange=\"main\" lifetime=\"200\">"
    "<proposal encryption=\"aes128\" hash=\"sha256\" group=\"curve25519\"/></phase1>\n"
    "    <retransmit interval=\"1000\" tries=\"3\" half-open=\"60\"/>\n"
    "%s"
    "  </peer>\n"
    "  <policy name=\"vips\" peer=\"clients\" action=\"protect\" local=\"%s\" remote=\"virtual\">\n"
    "    <proposal encryption=\"aes128\" integrity=\"sha256\"/>\n"
    "  </policy>\n"
    "</modike>\n",
    adapter ? "    <adapter name=\"gw0\"/>\n" : "", local);
}

static void fake_xauth_register (Node *n);

/* The gateway with config xml; `xauth`: with the fake xauth-psk method. */
static void
world_gateway_xml (World *w, const char *xml, gboolean xauth)
{
  w->net = net_new ();
  w->log = g_ptr_array_new_with_free_func (g_free);
  fake_dp_init (&w->dp, w->log);
  w->os.log = w->log;
  w->gw = node_alloc (w->net, "gw", GW_ADDR);
  fake_dp_register (w->gw, &w->dp);
  fake_os_register (w->gw, &w->os);
  if (xauth)
    fake_xauth_register (w->gw);
  node_configure (w->gw, xml);
}

static void
world_gateway (World *w, const char *local, gboolean adapter)
{
  g_autofree char *xml = gw_xml (local, adapter);

  world_gateway_xml (w, xml, FALSE);
}

static char *
client_xml (guint i, const char *policies)
{
  return g_strdup_printf (
    "<?xml version=\"1.0\"?>\n"
    "<modike>\n"
    "  <peer name=\"gw\" initiate=\"no\">\n"
    "    <local address=\"%s\"/>\n"
    "    <remote address=\"" GW_ADDR "\"/>\n"
    "    <local-id type=\"fqdn\" value=\"c%u.example\"/>\n"
    "    <auth method=\"psk\" secret=\"clientpsk\"/>\n"
    "    <phase1 exchange=\"main\" lifetime=\"200\">"
    "<proposal encryption=\"aes128\" hash=\"sha256\" group=\"curve25519\"/></phase1>\n"
    "    <retransmit interval=\"1000\" tries=\"3\" half-open=\"60\"/>\n"
    "  </peer>\n"
    "%s"
    "</modike>\n",
    client_addr[i], i + 1, policies);
}

/* Applies xml to n as a reload. */
static void
reload (Node *n, const char *xml)
{
  g_autoptr (GError) error = NULL;
  ModikeConfig *cfg = modike_config_load_string (xml, "reload", &error);

  g_assert_no_error (error);
  g_assert_true (modike_ike_set_config (n->ike, cfg, &error));
  g_assert_no_error (error);
  modike_config_free (n->cfg);
  n->cfg = cfg;
}

/* Client i with config xml; `xauth`: with the fake xauth-psk method. */
static Node *
world_client_xml (World *w, guint i, const char *xml, gboolean xauth)
{
  if (w->clog[i] == NULL)
    {
      w->clog[i] = g_ptr_array_new_with_free_func (g_free);
      fake_dp_init (&w->cdp[i], w->clog[i]);
      w->cos[i].log = w->clog[i];
    }
  w->c[i] = node_alloc (w->net, "client", client_addr[i]);
  fake_dp_register (w->c[i], &w->cdp[i]);
  fake_os_register (w->c[i], &w->cos[i]);
  if (xauth)
    fake_xauth_register (w->c[i]);
  node_configure (w->c[i], xml);
  return w->c[i];
}

/* Client i (identity c<i>.example) with `policies` (XML). */
static Node *
world_client (World *w, guint i, const char *policies)
{
  g_autofree char *xml = client_xml (i, policies);

  return world_client_xml (w, i, xml, FALSE);
}

static void
world_free (World *w)
{
  net_free (w->net);
  fake_dp_clear (&w->dp);
  g_ptr_array_unref (w->log);
  for (guint i = 0; i < G_N_ELEMENTS (w->c); i++)
    if (w->clog[i] != NULL)
      {
        fake_dp_clear (&w->cdp[i]);
        g_ptr_array_unref (w->clog[i]);
      }
}

/* The gateway's newest live SA from client i's address, or NULL. */
static ModikeIkeSa *
gw_sa (World *w, guint i)
{
  return newest_sa_from (w->gw, &w->c[i]->addr);
}

typedef struct {
  World *w;
  guint i;
} Which;

static gboolean
pred_p1 (Net *net, gpointer user)
{
  Which *q = user;
  ModikeIkeSa *csa = engine_best_established (engine_peer_sas (q->w->c[q->i]->ike, "gw"), NULL);
  ModikeIkeSa *gsa = gw_sa (q->w, q->i);

  return csa != NULL && gsa != NULL && gsa->state == SA_ESTABLISHED && g_queue_is_empty (&net->queue);
}

/* Phase 1 only (no Quick Mode yet): mode config comes first. */
static void
p1_up (World *w, guint i)
{
  Node *c = w->c[i];
  Which q = { w, i };
  g_autoptr (GError) error = NULL;

  g_assert_nonnull (engine_start_p1 (c->ike, modike_config_find_peer (c->cfg, "gw"), &error));
  g_assert_no_error (error);
  g_assert_true (net_run (w->net, 30000, pred_p1, &q));
}

static ModikePrefix
prefix (const char *text)
{
  ModikePrefix p;

  g_assert_true (modike_prefix_parse (text, &p, NULL));
  return p;
}

static ModikeAddrRange
range (const char *text)
{
  ModikePrefix p = prefix (text);
  ModikeAddrRange r;

  g_assert_true (modike_addr_range_from_prefix (&p, &r));
  return r;
}

static void give_address (World *w, guint i);

/* Client i's phase 1 up, and its address given at the gateway (what the
 * mode config plugins do, without the exchange). */
static void
connect_client (World *w, guint i)
{
  p1_up (w, i);
  give_address (w, i);
}

static void
give_address (World *w, guint i)
{
  ModikePrefix p = prefix (client_vip[i]);
  g_autoptr (GError) error = NULL;

  g_assert_true (modike_ike_sa_set_peer_address (gw_sa (w, i), &p, &error));
  g_assert_no_error (error);
}

/* The SPD entry of that name, or NULL. */
static const ModikeSpdEntry *
entry (Node *n, const char *name)
{
  g_autoptr (GPtrArray) entries = modike_spd_entries (modike_ike_get_spd (n->ike));

  for (guint i = 0; i < entries->len; i++)
    {
      const ModikeSpdEntry *e = g_ptr_array_index (entries, i);

      if (g_strcmp0 (e->name, name) == 0)
        return e;
    }
  return NULL;
}

/* The SPD's entry names in lookup order, space separated. */
static char *
spd_names (Node *n)
{
  g_autoptr (GPtrArray) entries = modike_spd_entries (modike_ike_get_spd (n->ike));
  GString *s = g_string_new (NULL);

  for (guint i = 0; i < entries->len; i++)
    {
      const ModikeSpdEntry *e = g_ptr_array_index (entries, i);

      g_string_append_printf (s, "%s%s", i > 0 ? " " : "", e->name);
    }
  return g_string_free (s, FALSE);
}

typedef struct {
  Node *n;
  guint p2_up;
} P2Want;

static gboolean
pred_p2 (Net *net, gpointer user)
{
  P2Want *q = user;

  return q->n->p2_up >= q->p2_up && g_queue_is_empty (&net->queue);
}

/* A datapath acquire on node n for the policy named `name`; runs until n
 * has one more child. Returns n's child for it. */
static EngineChild *
acquire (World *w, Node *n, const char *name)
{
  const ModikeSpdEntry *e = entry (n, name);
  P2Want q = { n, n->p2_up + 1 };
  guint32 id;

  g_assert_nonnull (e);
  id = e->id;
  engine_acquire (n->ike, id, NULL);
  g_assert_true (net_run (w->net, 30000, pred_p2, &q));
  for (guint i = 0; i < n->ike->sas->len; i++)
    {
      ModikeIkeSa *sa = g_ptr_array_index (n->ike->sas, i);

      for (guint k = 0; k < sa->children->len; k++)
        {
          EngineChild *c = g_ptr_array_index (sa->children, k);

          if (c->spd_id == id && !c->rekeyed)
            return c;
        }
    }
  g_assert_not_reached ();
}

static void
assert_child_ts (Node *n, const EngineChild *c, const char *local, const char *remote)
{
  const ModikeSadEntry *out = modike_sad_lookup (modike_ike_get_sad (n->ike), MODIKE_DIR_OUT, c->spi_out);
  ModikeAddrRange l = range (local), r = range (remote);

  g_assert_nonnull (out);
  assert_range_equal (&out->local_ts, &l);
  assert_range_equal (&out->remote_ts, &r);
}

/* Client i's address and the networks `routes` (NULL-terminated, NULL:
 * none). */
static ModikeSaResult *
vip_result (guint i, const char *const *routes)
{
  ModikeSaResult *r = modike_sa_result_new ();
  ModikePrefix p = prefix (client_vip[i]);

  modike_sa_result_add_address (r, &p);
  for (guint k = 0; routes != NULL && routes[k] != NULL; k++)
    {
      p = prefix (routes[k]);
      modike_sa_result_add_route (r, &p);
    }
  return r;
}

static void
set_result (Node *c, const ModikeSaResult *r)
{
  g_autoptr (GError) error = NULL;

  g_assert_true (modike_ike_sa_set_result (only_sa (c), r, &error));
  g_assert_no_error (error);
}

#define SPLIT_TEMPLATE                                                                                             \
  "  <policy name=\"first\" peer=\"gw\" action=\"bypass\" local=\"any\" remote=\"10.200.0.0/16\"/>\n"              \
  "  <policy name=\"vpn\" peer=\"gw\" action=\"protect\" local=\"virtual\" remote=\"10.0.0.0/8\">\n"               \
  "    <proposal encryption=\"aes128\" integrity=\"sha256\"/>\n"                                                    \
  "  </policy>\n"                                                                                                  \
  "  <policy name=\"last\" peer=\"gw\" action=\"discard\" local=\"any\" remote=\"10.0.0.0/8\"/>\n"

/* A split tunnel: two networks inside the template's remote become two
 * instances with local = the virtual address, in the template's place;
 * a third outside it is not protected. Acquires start Quick Modes with
 * IDci = the virtual address; the gateway takes them with its instance. */
static void
test_client_split (void)
{
  World w = { 0 };
  static const char *const routes[] = { "10.8.0.0/16", "10.9.1.0/24", "172.16.0.0/12", NULL };
  g_autoptr (ModikeSaResult) r = vip_result (0, routes);
  g_autofree char *names = NULL;
  g_autofree char *before = NULL;
  const ModikeSpdEntry *e;
  ModikeAddrRange vip = range (client_vip[0]), want;
  EngineChild *c;
  g_autofree char *status = NULL;

  world_gateway (&w, "10.0.0.0/8", FALSE);
  world_client (&w, 0, SPLIT_TEMPLATE);
  /* The template makes no entry and no route by itself. */
  before = spd_names (w.c[0]);
  g_assert_cmpstr (before, ==, "first last");
  g_assert_cmpuint (log_count (w.clog[0], 0, "route+"), ==, 0);

  connect_client (&w, 0);
  set_result (w.c[0], r);

  names = spd_names (w.c[0]);
  g_assert_cmpstr (names, ==, "first vpn@10.8.0.0/16 vpn@10.9.1.0/24 last");
  e = entry (w.c[0], "vpn@10.8.0.0/16");
  assert_range_equal (&e->local, &vip);
  want = range ("10.8.0.0/16");
  assert_range_equal (&e->remote, &want);
  g_assert_cmpuint (e->action, ==, MODIKE_SPD_PROTECT);
  g_assert_cmpstr (e->peer, ==, "gw");
  g_assert_cmpuint (e->virtual_side, ==, MODIKE_VIRTUAL_NONE);
  /* The datapath has them too. */
  g_assert_cmpuint (w.cdp[0].policies->len, ==, 4);
  /* The gateway's instance for this client. */
  g_assert_nonnull (entry (w.gw, "vips@10.99.0.11/32"));

  c = acquire (&w, w.c[0], "vpn@10.8.0.0/16");
  assert_child_ts (w.c[0], c, "10.99.0.11/32", "10.8.0.0/16");
  c = acquire (&w, w.c[0], "vpn@10.9.1.0/24");
  assert_child_ts (w.c[0], c, "10.99.0.11/32", "10.9.1.0/24");
  /* The gateway's children: what the client proposed. */
  g_assert_cmpuint (gw_sa (&w, 0)->children->len, ==, 2);
  c = g_ptr_array_index (gw_sa (&w, 0)->children, 0);
  assert_child_ts (w.gw, c, "10.8.0.0/16", "10.99.0.11/32");
  g_assert_cmpstr (c->policy, ==, "vips@10.99.0.11/32");
  assert_no_failures (w.gw, w.c[0]);

  /* Status lists the instances under their IKE SA. */
  status = modike_ike_status (w.c[0]->ike);
  g_assert_nonnull (strstr (status, "\n  POLICY gw vpn@10.8.0.0/16 protect local=10.99.0.11/32 remote=10.8.0.0/16\n"));
  g_free (status);
  status = modike_ike_status (w.gw->ike);
  g_assert_nonnull (
    strstr (status, "  POLICY clients vips@10.99.0.11/32 protect local=10.0.0.0/8 remote=10.99.0.11/32\n"));

  /* Reloads: the same gateway config keeps its instance and children; the
   * client's template narrowed to 10.8.0.0/16 keeps that instance and its
   * child and drops the other with its child. */
  g_free (status);
  status = gw_xml ("10.0.0.0/8", FALSE);
  reload (w.gw, status);
  g_assert_nonnull (entry (w.gw, "vips@10.99.0.11/32"));
  g_assert_cmpuint (gw_sa (&w, 0)->children->len, ==, 2);
  c = g_ptr_array_index (gw_sa (&w, 0)->children, 0);
  g_assert_cmpuint (c->spd_id, ==, entry (w.gw, "vips@10.99.0.11/32")->id);
  {
    g_auto (GStrv) parts = g_strsplit (SPLIT_TEMPLATE, "local=\"virtual\" remote=\"10.0.0.0/8\"", -1);
    g_autofree char *narrow = g_strjoinv ("local=\"virtual\" remote=\"10.8.0.0/16\"", parts);
    g_autofree char *xml = client_xml (0, narrow);

    g_assert_cmpuint (g_strv_length (parts), ==, 2);
    reload (w.c[0], xml);
  }
  g_free (names);
  names = spd_names (w.c[0]);
  g_assert_cmpstr (names, ==, "first vpn@10.8.0.0/16 last");
  g_assert_cmpuint (only_sa (w.c[0])->children->len, ==, 1);
  c = g_ptr_array_index (only_sa (w.c[0])->children, 0);
  g_assert_cmpuint (c->spd_id, ==, entry (w.c[0], "vpn@10.8.0.0/16")->id);
  net_run (w.net, 1000, NULL, NULL);
  g_assert_cmpuint (gw_sa (&w, 0)->children->len, ==, 1);
  world_free (&w);
}

/* No routes: a full tunnel to the template's remote (any), still leaving
 * the gateway's own address outside the adapter; excluded networks get a
 * BYPASS entry before the protect one and no route. */
static void
test_client_full_tunnel_exclude (void)
{
  World w = { 0 };
  g_autoptr (ModikeSaResult) r = vip_result (0, NULL);
  ModikePrefix net = prefix ("192.168.1.0/24");
  g_autofree char *names = NULL;
  const ModikeSpdEntry *e;
  ModikeAddr gw, lan, other;
  ModikeAddrRange any4 = range ("0.0.0.0/0"), want;
  gboolean covers_other = FALSE;
  EngineChild *c;

  world_gateway (&w, "any", FALSE);
  world_client (&w, 0,
                "  <policy name=\"vpn\" peer=\"gw\" action=\"protect\" local=\"virtual\" remote=\"any\">\n"
                "    <proposal encryption=\"aes128\" integrity=\"sha256\"/>\n"
                "  </policy>\n");
  connect_client (&w, 0);
  modike_sa_result_add_exclude (r, &net);
  set_result (w.c[0], r);

  names = spd_names (w.c[0]);
  g_assert_cmpstr (names, ==, "vpn!192.168.1.0/24 vpn@0.0.0.0/0");
  e = entry (w.c[0], "vpn!192.168.1.0/24");
  g_assert_cmpuint (e->action, ==, MODIKE_SPD_BYPASS);
  want = range ("192.168.1.0/24");
  assert_range_equal (&e->remote, &want);
  assert_range_equal (&e->local, &any4);
  e = entry (w.c[0], "vpn@0.0.0.0/0");
  assert_range_equal (&e->remote, &any4);

  /* Routes: everything IPv4 but the gateway and the excluded LAN. */
  g_assert_true (modike_addr_parse (GW_ADDR, 0, &gw, NULL));
  g_assert_true (modike_addr_parse ("192.168.1.7", 0, &lan, NULL));
  g_assert_true (modike_addr_parse ("198.51.100.9", 0, &other, NULL));
  g_assert_cmpuint (log_count (w.clog[0], 0, "route+"), >, 0);
  for (guint i = 0; i < w.clog[0]->len; i++)
    {
      const char *line = g_ptr_array_index (w.clog[0], i);
      ModikePrefix p;

      if (!g_str_has_prefix (line, "route+ modike0 "))
        continue;
      g_assert_true (modike_prefix_parse (line + strlen ("route+ modike0 "), &p, NULL));
      g_assert_false (modike_prefix_contains (&p, &gw));
      g_assert_false (modike_prefix_contains (&p, &lan));
      covers_other |= modike_prefix_contains (&p, &other);
    }
  g_assert_true (covers_other);

  c = acquire (&w, w.c[0], "vpn@0.0.0.0/0");
  assert_child_ts (w.c[0], c, "10.99.0.11/32", "0.0.0.0/0");
  assert_no_failures (w.gw, w.c[0]);
  world_free (&w);
}

/* Dual stack with an IPv4-only split list: IPv6 is a full tunnel of its
 * own (protected), not left outside. */
static void
test_client_split_other_family (void)
{
  World w = { 0 };
  static const char *const nets[] = { "198.51.100.0/24", NULL };
  g_autoptr (ModikeSaResult) r = vip_result (0, nets);
  ModikePrefix v6 = prefix ("2001:db8:99::5/128");
  g_autofree char *names = NULL;
  ModikeAddrRange any6 = range ("::/0");

  world_gateway (&w, "any", FALSE);
  world_client (&w, 0,
                "  <policy name=\"vpn\" peer=\"gw\" action=\"protect\" local=\"virtual\" remote=\"any\">\n"
                "    <proposal encryption=\"aes128\" integrity=\"sha256\"/>\n"
                "  </policy>\n");
  connect_client (&w, 0);
  modike_sa_result_add_address (r, &v6);
  set_result (w.c[0], r);
  names = spd_names (w.c[0]);
  g_assert_cmpstr (names, ==, "vpn@198.51.100.0/24 vpn@::/0");
  assert_range_equal (&entry (w.c[0], "vpn@::/0")->remote, &any6);
  g_assert_true (log_has (w.clog[0], "route+ modike0 198.51.100.0/24"));
  g_assert_true (log_has (w.clog[0], "route+ modike0 ::/0"));
  world_free (&w);
}

static FilterResult
filter_drop_all (Net *net, guint n, Packet *pk, gpointer user)
{
  return FILTER_DROP;
}

static const ModikePluginDescriptor holder_desc = {
  MODIKE_PLUGIN_DESCRIPTOR_INIT,
  .name = "holder",
  .version = "0",
};

/* The result goes: its instances leave the SPD and the datapath, their
 * ESP SAs are deleted, and a Quick Mode still running for one fails. */
static void
test_client_result_cleared (void)
{
  World w = { 0 };
  static const char *const routes[] = { "10.8.0.0/16", "10.9.0.0/16", NULL };
  g_autoptr (ModikeSaResult) r = vip_result (0, routes);
  g_autofree char *names = NULL;
  guint32 id9;
  guint gw_children;
  ModikePlugin *holder;

  world_gateway (&w, "10.0.0.0/8", FALSE);
  world_client (&w, 0, SPLIT_TEMPLATE);
  holder = modike_registry_add_plugin (w.c[0]->reg, &holder_desc);
  connect_client (&w, 0);
  set_result (w.c[0], r);
  acquire (&w, w.c[0], "vpn@10.8.0.0/16");
  g_assert_cmpuint (only_sa (w.c[0])->children->len, ==, 1);

  /* A Quick Mode for the other instance gets no answer yet. */
  id9 = entry (w.c[0], "vpn@10.9.0.0/16")->id;
  w.net->filter = filter_drop_all;
  engine_acquire (w.c[0]->ike, id9, NULL);
  net_run (w.net, 100, NULL, NULL);
  g_assert_true (engine_policy_negotiating (w.c[0]->ike, id9, "gw", TRUE));

  modike_ike_sa_clear_result (only_sa (w.c[0]));
  names = spd_names (w.c[0]);
  g_assert_cmpstr (names, ==, "first last");
  g_assert_cmpuint (w.cdp[0].policies->len, ==, 2);
  g_assert_cmpuint (only_sa (w.c[0])->children->len, ==, 0);
  g_assert_false (engine_policy_negotiating (w.c[0]->ike, id9, "gw", TRUE));
  g_assert_cmpuint (w.cos[0].live, ==, 0);

  /* The answer comes: the Quick Mode ends without a child. */
  w.net->filter = NULL;
  net_run (w.net, 10000, NULL, NULL);
  g_assert_cmpuint (only_sa (w.c[0])->children->len, ==, 0);
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (w.c[0]->ike)), ==, 0);
  g_assert_cmpuint (w.c[0]->p2_failed, ==, 1);

  /* Again, with the Quick Mode held at the phase-2 gate (as XAuth holds
   * it): it is dropped with its instance and never starts. */
  set_result (w.c[0], r);
  gw_children = gw_sa (&w, 0)->children->len;
  id9 = entry (w.c[0], "vpn@10.9.0.0/16")->id;
  modike_ike_sa_hold_phase2 (only_sa (w.c[0]), holder);
  engine_acquire (w.c[0]->ike, id9, NULL);
  g_assert_true (engine_gate_waits_for (only_sa (w.c[0]), id9));
  modike_ike_sa_clear_result (only_sa (w.c[0]));
  g_assert_false (engine_gate_waits_for (only_sa (w.c[0]), id9));
  g_assert_cmpuint (engine_gate_n_waiting (only_sa (w.c[0])), ==, 0);
  modike_ike_sa_release_phase2 (only_sa (w.c[0]), holder);
  net_run (w.net, 10000, NULL, NULL);
  g_assert_cmpuint (only_sa (w.c[0])->children->len, ==, 0);
  /* (The gateway missed the DELETEs the filter dropped above.) */
  g_assert_cmpuint (gw_sa (&w, 0)->children->len, ==, gw_children);
  world_free (&w);
}

/* Phase 1 rekeys (client at 170-180 s, old SAs expire at 200 s): the
 * instances at both ends stay with the successor, ids and children kept. */
static void
test_rekey_keeps_instances (void)
{
  World w = { 0 };
  static const char *const routes[] = { "10.8.0.0/16", NULL };
  g_autoptr (ModikeSaResult) r = vip_result (0, routes);
  ModikeIkeSa *first;
  guint32 cid, gid;
  const EngineInstance *inst;

  world_gateway (&w, "10.0.0.0/8", TRUE);
  world_client (&w, 0, SPLIT_TEMPLATE);
  connect_client (&w, 0);
  g_assert_true (log_has (w.log, "route+ gw0 10.99.0.11/32"));
  set_result (w.c[0], r);
  acquire (&w, w.c[0], "vpn@10.8.0.0/16");
  first = only_sa (w.c[0]);
  cid = entry (w.c[0], "vpn@10.8.0.0/16")->id;
  gid = entry (w.gw, "vips@10.99.0.11/32")->id;

  net_run (w.net, 210000, NULL, NULL);
  g_assert_true (only_sa (w.c[0]) != first);
  g_assert_cmpuint (w.c[0]->p1_up, ==, 2);
  g_assert_cmpuint (entry (w.c[0], "vpn@10.8.0.0/16")->id, ==, cid);
  g_assert_cmpuint (entry (w.gw, "vips@10.99.0.11/32")->id, ==, gid);
  inst = engine_instance_find (w.c[0]->ike, cid);
  g_assert_true (inst->sa == only_sa (w.c[0]));
  inst = engine_instance_find (w.gw->ike, gid);
  g_assert_true (inst->sa == gw_sa (&w, 0));
  g_assert_cmpuint (only_sa (w.c[0])->children->len, ==, 1);
  g_assert_cmpuint (log_count (w.log, 0, "route- gw0"), ==, 0);
  assert_no_failures (w.gw, w.c[0]);

  /* The client goes: its instance and route at the gateway go too. */
  modike_ike_terminate (w.c[0]->ike, "gw");
  net_run (w.net, 1000, NULL, NULL);
  g_assert_null (entry (w.gw, "vips@10.99.0.11/32"));
  g_assert_true (log_has (w.log, "route- gw0 10.99.0.11/32"));
  g_assert_null (entry (w.c[0], "vpn@10.8.0.0/16"));
  world_free (&w);
}

/* Client 1 (c[0]) asks for less than the gateway's template offers. */
static const char *
own_remote (guint i)
{
  return i == 0 ? "10.1.2.0/24" : "10.1.0.0/16";
}

/* Clients with their own address as an ordinary policy (as a mode config
 * client would have it after its instance is made). */
static const char *
own_policy (guint i, const char *local)
{
  static char buf[3][512];

  g_snprintf (buf[i], sizeof buf[i],
              "  <policy name=\"own\" peer=\"gw\" action=\"protect\" local=\"%s\" remote=\"%s\">\n"
              "    <proposal encryption=\"aes128\" integrity=\"sha256\"/>\n"
              "  </policy>\n",
              local, own_remote (i));
  return buf[i];
}

static void
three_clients (World *w, gboolean c3_lies)
{
  world_gateway (w, "10.1.0.0/16", TRUE);
  for (guint i = 0; i < 3; i++)
    {
      world_client (w, i, own_policy (i, c3_lies && i == 2 ? client_vip[0] : client_vip[i]));
      connect_client (w, i);
    }
}

/* Three clients on one responder-only entry each get their own instance
 * (and route into the gateway's adapter); each one's Quick Mode is taken
 * within its own instance; the gateway's acquire for a client's address
 * runs on that client's SA. */
static void
test_gateway_clients (void)
{
  World w = { 0 };
  g_autofree char *names = NULL;
  EngineChild *c;
  ModikePrefix again = prefix ("10.99.0.12/32");
  g_autoptr (GError) error = NULL;
  guint32 ids[3];
  ModikeIkeSa *first[3];
  guint mark;

  three_clients (&w, FALSE);
  names = spd_names (w.gw);
  g_assert_cmpstr (names, ==, "vips@10.99.0.11/32 vips@10.99.0.12/32 vips@10.99.0.13/32");
  for (guint i = 0; i < 3; i++)
    {
      g_autofree char *name = g_strdup_printf ("vips@%s", client_vip[i]);
      g_autofree char *route = g_strdup_printf ("route+ gw0 %s", client_vip[i]);
      const EngineInstance *inst = engine_instance_find (w.gw->ike, entry (w.gw, name)->id);

      g_assert_true (inst->sa == gw_sa (&w, i));
      g_assert_true (log_has (w.log, route));
      /* Only its own client may use it. */
      for (guint k = 0; k < 3; k++)
        g_assert_true (engine_instance_usable (gw_sa (&w, k), inst->spd_id) == (k == i));
    }
  /* One client per address. */
  g_assert_false (modike_ike_sa_set_peer_address (gw_sa (&w, 0), &again, &error));
  g_assert_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED);
  g_assert_nonnull (strstr (error->message, "another client's"));

  /* The gateway starts one to client 2 (c[1]): on that client's SA, with
   * the template's local and the client's address. */
  c = acquire (&w, w.gw, "vips@10.99.0.12/32");
  g_assert_true (c->sa == gw_sa (&w, 1));
  assert_child_ts (w.gw, c, "10.1.0.0/16", client_vip[1]);
  g_assert_cmpuint (gw_sa (&w, 0)->children->len + gw_sa (&w, 2)->children->len, ==, 0);
  g_assert_cmpuint (only_sa (w.c[1])->children->len, ==, 1);

  /* The others start theirs, taken within their own instances. */
  for (guint i = 0; i < 3; i += 2)
    {
      c = acquire (&w, w.c[i], "own");
      assert_child_ts (w.c[i], c, client_vip[i], own_remote (i));
      g_assert_cmpuint (gw_sa (&w, i)->children->len, ==, 1);
      c = g_ptr_array_index (gw_sa (&w, i)->children, 0);
      /* Narrowed to what the client proposed. */
      assert_child_ts (w.gw, c, own_remote (i), client_vip[i]);
      g_assert_cmpstr (c->policy, ==, entry (w.gw, (i == 0 ? "vips@10.99.0.11/32" : "vips@10.99.0.13/32"))->name);
    }
  for (guint i = 0; i < 3; i++)
    assert_no_failures (w.gw, w.c[i]);

  /* Every client rekeys phase 1 (170-180 s; the old SAs expire at 200 s):
   * each instance stays, same id, with its own client's new SA. */
  for (guint i = 0; i < 3; i++)
    {
      g_autofree char *name = g_strdup_printf ("vips@%s", client_vip[i]);

      ids[i] = entry (w.gw, name)->id;
      first[i] = gw_sa (&w, i);
    }
  mark = w.log->len;
  net_run (w.net, 210000, NULL, NULL);
  for (guint i = 0; i < 3; i++)
    {
      g_autofree char *name = g_strdup_printf ("vips@%s", client_vip[i]);

      g_assert_cmpuint (w.c[i]->p1_up, ==, 2);
      g_assert_true (gw_sa (&w, i) != first[i]);
      g_assert_cmpuint (entry (w.gw, name)->id, ==, ids[i]);
      g_assert_true (engine_instance_find (w.gw->ike, ids[i])->sa == gw_sa (&w, i));
      assert_no_failures (w.gw, w.c[i]);
    }
  g_assert_cmpuint (log_count (w.log, mark, "route-"), ==, 0);
  g_assert_cmpuint (modike_ike_count_sas (w.gw->ike, FALSE), ==, 3);
  world_free (&w);
}

/* Client 3 proposes client 1's address: no policy it may use covers those
 * IDs, so the gateway answers INVALID_ID_INFORMATION (an identity problem,
 * not a transform one: NO_PROPOSAL_CHOSEN is for proposals a matching
 * policy refuses). Client 1's instance is untouched. */
static void
test_gateway_foreign_address (void)
{
  World w = { 0 };
  const ModikeSpdEntry *e = NULL;
  guint32 id1;

  three_clients (&w, TRUE);
  id1 = entry (w.gw, "vips@10.99.0.11/32")->id;
  e = entry (w.c[2], "own");
  g_assert_true (modike_ike_initiate_child (w.c[2]->ike, e->id, NULL));
  net_run (w.net, 10000, NULL, NULL);
  g_assert_cmpuint (w.gw->p2_failed, ==, 1);
  g_assert_nonnull (strstr (w.gw->p2_error->message, "no policy for"));
  g_assert_cmpuint (w.c[2]->p2_failed, ==, 1);
  g_assert_nonnull (strstr (w.c[2]->p2_error->message, "INVALID_ID_INFORMATION"));
  g_assert_cmpuint (gw_sa (&w, 2)->children->len, ==, 0);
  g_assert_cmpuint (gw_sa (&w, 0)->children->len, ==, 0);
  g_assert_cmpuint (entry (w.gw, "vips@10.99.0.11/32")->id, ==, id1);
  world_free (&w);
}

/* One client's DELETE, and another's INITIAL-CONTACT after a reboot, leave
 * the other clients' instances and routes alone. */
static void
test_gateway_isolation (void)
{
  World w = { 0 };
  guint32 id1, id3;
  guint mark, sets, adds, dels;
  ModikeIkeSa *gw1, *gw3;

  three_clients (&w, FALSE);
  /* Each client's instance reached the datapath on its own (one add
   * each), never as a copy of the whole SPD. */
  g_assert_cmpuint (w.dp.policy_adds, ==, 3);
  g_assert_cmpuint (w.dp.policy_dels, ==, 0);
  g_assert_cmpuint (w.dp.policies->len, ==, 3);
  sets = w.dp.policy_sets;
  id1 = entry (w.gw, "vips@10.99.0.11/32")->id;
  id3 = entry (w.gw, "vips@10.99.0.13/32")->id;
  gw1 = gw_sa (&w, 0);
  gw3 = gw_sa (&w, 2);
  acquire (&w, w.c[0], "own");

  /* Client 2 reboots: INITIAL-CONTACT drops its old SA only. */
  mark = w.log->len;
  node_free (w.c[1]);
  world_client (&w, 1, own_policy (1, client_vip[1]));
  p1_up (&w, 1);
  net_run (w.net, 1000, NULL, NULL);
  g_assert_cmpuint (w.gw->deleted, ==, 1);
  g_assert_cmpuint (modike_ike_count_sas (w.gw->ike, FALSE), ==, 3);
  g_assert_true (gw_sa (&w, 0) == gw1);
  g_assert_true (gw_sa (&w, 2) == gw3);
  g_assert_cmpuint (entry (w.gw, "vips@10.99.0.11/32")->id, ==, id1);
  g_assert_cmpuint (entry (w.gw, "vips@10.99.0.13/32")->id, ==, id3);
  g_assert_true (engine_instance_find (w.gw->ike, id1)->sa == gw1);
  g_assert_cmpuint (log_count (w.log, mark, "route- gw0 10.99.0.11"), ==, 0);
  g_assert_cmpuint (log_count (w.log, mark, "route- gw0 10.99.0.13"), ==, 0);
  g_assert_cmpuint (gw1->children->len, ==, 1);
  /* Client 2's address moved to its new SA (the plugin may set it anew). */
  g_assert_true (engine_instance_find (w.gw->ike, entry (w.gw, "vips@10.99.0.12/32")->id)->sa == gw_sa (&w, 1));

  /* Client 3 goes with a DELETE: its policy leaves the datapath, one
   * delete, nothing else sent again. */
  mark = w.log->len;
  adds = w.dp.policy_adds;
  dels = w.dp.policy_dels;
  modike_ike_terminate (w.c[2]->ike, "gw");
  net_run (w.net, 1000, NULL, NULL);
  g_assert_null (entry (w.gw, "vips@10.99.0.13/32"));
  g_assert_cmpuint (w.dp.policy_dels, ==, dels + 1);
  g_assert_cmpuint (w.dp.policy_adds, ==, adds);
  g_assert_cmpuint (w.dp.policy_sets, ==, sets);
  g_assert_cmpuint (w.dp.policies->len, ==, 2);
  g_assert_true (log_has (w.log, "route- gw0 10.99.0.13/32"));
  g_assert_cmpuint (entry (w.gw, "vips@10.99.0.11/32")->id, ==, id1);
  g_assert_cmpuint (log_count (w.log, mark, "route- gw0 10.99.0.11"), ==, 0);
  g_assert_cmpuint (gw1->children->len, ==, 1);

  /* A second address of the family replaces the first, instance, route
   * and ESP SAs included. */
  {
    ModikePrefix other = prefix ("10.99.0.21/32");

    g_assert_true (modike_ike_sa_set_peer_address (gw1, &other, NULL));
  }
  g_assert_null (entry (w.gw, "vips@10.99.0.11/32"));
  g_assert_nonnull (entry (w.gw, "vips@10.99.0.21/32"));
  g_assert_true (log_has (w.log, "route- gw0 10.99.0.11/32"));
  g_assert_true (log_has (w.log, "route+ gw0 10.99.0.21/32"));
  g_assert_cmpuint (gw1->children->len, ==, 0);

  /* Taken back by hand: that client's only. */
  modike_ike_sa_clear_peer_addresses (gw1);
  g_assert_null (entry (w.gw, "vips@10.99.0.21/32"));
  g_assert_nonnull (entry (w.gw, "vips@10.99.0.12/32"));
  g_assert_true (log_has (w.log, "route- gw0 10.99.0.21/32"));
  world_free (&w);
}

/* ---- clients that share a phase 1 identity (a group ID) and are told
 * apart by XAuth ---- */

static void
fx_established (ModikeIkeSa *sa, guint16 method, gboolean local, gpointer user)
{
}

static const ModikePluginDescriptor fake_xauth_desc = {
  MODIKE_PLUGIN_DESCRIPTOR_INIT,
  .name = "fakexauth",
  .version = "0",
};

/* xauth-psk as the xauth plugin registers it; the test authenticates the
 * client by hand (modike_ike_sa_set_user, modike_ike_sa_auth_done). */
static void
fake_xauth_register (Node *n)
{
  ModikePlugin *pl = modike_registry_add_plugin (n->reg, &fake_xauth_desc);
  g_autoptr (GError) error = NULL;

  g_assert_true (modike_register_auth_method (pl, MODIKE_AUTH_XAUTH_INIT_PSK, "xauth-psk", MODIKE_AUTH_PSK,
                                              MODIKE_ROLE_INITIATOR, fx_established, NULL, &error));
  g_assert_no_error (error);
}

static char *
replace (const char *text, const char *from, const char *to)
{
  g_auto (GStrv) parts = g_strsplit (text, from, -1);

  return g_strjoinv (to, parts);
}

static void
group_gateway (World *w)
{
  g_autofree char *plain = gw_xml ("10.1.0.0/16", TRUE);
  g_autofree char *xml = replace (plain, "method=\"psk\"", "method=\"xauth-psk\"");

  world_gateway_xml (w, xml, TRUE);
}

/* Client i with the group's identity; phase 1 up, then XAuth as `user`. */
static void
group_client (World *w, guint i, const char *user)
{
  g_autofree char *plain = client_xml (i, own_policy (i, client_vip[i]));
  g_autofree char *id = g_strdup_printf ("c%u.example", i + 1);
  g_autofree char *grouped = replace (plain, id, "group.example");
  g_autofree char *xml = replace (grouped, "method=\"psk\"", "method=\"xauth-psk\"");

  world_client_xml (w, i, xml, TRUE);
  p1_up (w, i);
  /* Both came through NATs: an address does not tell clients apart. */
  gw_sa (w, i)->nat_remote = TRUE;
  modike_ike_sa_set_user (gw_sa (w, i), user);
  modike_ike_sa_auth_done (gw_sa (w, i));
  g_assert_true (modike_ike_sa_is_authenticated (gw_sa (w, i)));
}

/* Two users behind NAT with one group ID are two clients: the second's
 * phase 1 takes none of the first's ESP SAs, its address does not take
 * the first's instance, and it may not use the first's instance. */
static void
test_gateway_group_id (void)
{
  World w = { 0 };
  ModikeIkeSa *alice;
  guint32 id0;

  group_gateway (&w);
  group_client (&w, 0, "alice");
  alice = gw_sa (&w, 0);
  give_address (&w, 0);
  acquire (&w, w.c[0], "own");
  g_assert_cmpuint (alice->children->len, ==, 1);
  id0 = entry (w.gw, "vips@10.99.0.11/32")->id;

  group_client (&w, 1, "bob");
  g_assert_cmpuint (alice->children->len, ==, 1);
  g_assert_false (alice->rekeyed);
  g_assert_cmpuint (gw_sa (&w, 1)->children->len, ==, 0);
  g_assert_false (engine_instance_usable (gw_sa (&w, 1), id0));
  give_address (&w, 1);
  g_assert_nonnull (entry (w.gw, "vips@10.99.0.11/32"));
  g_assert_cmpuint (entry (w.gw, "vips@10.99.0.11/32")->id, ==, id0);
  g_assert_nonnull (entry (w.gw, "vips@10.99.0.12/32"));
  g_assert_true (engine_instance_find (w.gw->ike, id0)->sa == alice);
  g_assert_cmpuint (alice->children->len, ==, 1);
  world_free (&w);
}

#define P1 "<phase1><proposal encryption=\"aes128\" hash=\"sha256\" group=\"curve25519\"/></phase1>"

static void
assert_refused (const char *policy, const char *want)
{
  g_autofree char *xml = g_strdup_printf ("<?xml version=\"1.0\"?>\n"
                                          "<modike>\n"
                                          "  <peer name=\"gw\">\n"
                                          "    <remote address=\"" GW_ADDR "\"/>\n"
                                          "    <auth method=\"psk\" secret=\"x\"/>" P1 "\n"
                                          "  </peer>\n"
                                          "  <peer name=\"clients\">\n"
                                          "    <auth method=\"psk\" secret=\"x\"/>" P1 "\n"
                                          "  </peer>\n"
                                          "%s"
                                          "</modike>\n",
                                          policy);
  g_autoptr (GError) error = NULL;
  g_autoptr (ModikeConfig) cfg = modike_config_load_string (xml, "t.xml", &error);

  g_assert_null (cfg);
  g_assert_error (error, MODIKE_CONFIG_ERROR, MODIKE_CONFIG_ERROR_INVALID);
  if (strstr (error->message, want) == NULL || strstr (error->message, "t.xml:10") == NULL)
    g_error ("got '%s', want t.xml:10 and '%s'", error->message, want);
}

static void
test_config (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (ModikeConfig) cfg = NULL;
  const ModikeSpdEntry *e;

  assert_refused ("  <policy name=\"p\" peer=\"gw\" action=\"protect\" local=\"virtual\" remote=\"virtual\">\n"
                  "    <proposal encryption=\"aes128\" integrity=\"sha256\"/></policy>\n",
                  "only one side can be virtual");
  assert_refused ("  <policy name=\"p\" peer=\"gw\" action=\"bypass\" local=\"virtual\"/>\n",
                  "a virtual local needs action=\"protect\"");
  assert_refused ("  <policy name=\"p\" action=\"discard\" remote=\"virtual\"/>\n",
                  "a virtual remote needs action=\"protect\"");
  assert_refused ("  <policy name=\"p\" action=\"protect\" remote=\"virtual\">\n"
                  "    <proposal encryption=\"aes128\" integrity=\"sha256\"/></policy>\n",
                  "needs a peer");
  assert_refused ("  <policy name=\"p\" peer=\"clients\" action=\"protect\" local=\"virtual\">\n"
                  "    <proposal encryption=\"aes128\" integrity=\"sha256\"/></policy>\n",
                  "local=\"virtual\" needs a peer with a remote address");
  assert_refused ("  <policy name=\"p\" peer=\"gw\" action=\"protect\" local=\"virtual\" remote=\"virtua\">\n"
                  "    <proposal encryption=\"aes128\" integrity=\"sha256\"/></policy>\n",
                  "remote: bad prefix 'virtua'");

  cfg = modike_config_load_string ("<?xml version=\"1.0\"?>\n"
                                   "<modike>\n"
                                   "  <peer name=\"clients\"><auth method=\"psk\" secret=\"x\"/>" P1 "</peer>\n"
                                   "  <policy name=\"t\" peer=\"clients\" action=\"protect\" local=\"10.0.0.0/8\""
                                   " remote=\"virtual\"><proposal encryption=\"aes128\" integrity=\"sha256\"/>"
                                   "</policy>\n"
                                   "</modike>\n",
                                   "ok.xml", &error);
  g_assert_no_error (error);
  e = g_ptr_array_index (cfg->policies, 0);
  g_assert_cmpuint (e->virtual_side, ==, MODIKE_VIRTUAL_REMOTE);
  g_assert_cmpuint (e->remote.from.family, ==, 0);
  g_assert_cmpuint (e->local.from.family, ==, AF_INET);
}

void
fsm_add_instance_tests (void)
{
  g_test_add_func ("/fsm/instances/config", test_config);
  g_test_add_func ("/fsm/instances/client-split", test_client_split);
  g_test_add_func ("/fsm/instances/client-full-tunnel-exclude", test_client_full_tunnel_exclude);
  g_test_add_func ("/fsm/instances/client-split-other-family", test_client_split_other_family);
  g_test_add_func ("/fsm/instances/client-result-cleared", test_client_result_cleared);
  g_test_add_func ("/fsm/instances/rekey", test_rekey_keeps_instances);
  g_test_add_func ("/fsm/instances/gateway-clients", test_gateway_clients);
  g_test_add_func ("/fsm/instances/gateway-foreign-address", test_gateway_foreign_address);
  g_test_add_func ("/fsm/instances/gateway-isolation", test_gateway_isolation);
  g_test_add_func ("/fsm/instances/gateway-group-id", test_gateway_group_id);
}
