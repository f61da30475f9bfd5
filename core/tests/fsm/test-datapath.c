/* Suite fsm: The datapath and virtual adapter glue, with fake plugins on the node's
 * registry. */
#include "harness.h"

static guint32
spd_id_of (Node *n, const char *name)
{
  g_autoptr (GPtrArray) all = modike_spd_entries (modike_ike_get_spd (n->ike));

  for (guint i = 0; i < all->len; i++)
    {
      const ModikeSpdEntry *e = g_ptr_array_index (all, i);

      if (g_strcmp0 (e->name, name) == 0)
        return e->id;
    }
  g_assert_not_reached ();
}

static ModikeSelector
sel_a_to_b (void)
{
  ModikeSelector sel = { 0 };

  g_assert_true (modike_addr_parse ("10.1.0.5", 0, &sel.local, NULL));
  g_assert_true (modike_addr_parse ("10.2.0.7", 0, &sel.remote, NULL));
  sel.proto = 1;
  return sel;
}

/* Quick Modes running (not finished ones lingering for retransmits). */
static guint
quick_modes (Node *n)
{
  guint count = 0;

  for (guint i = 0; i < n->ike->sas->len; i++)
    {
      ModikeIkeSa *sa = g_ptr_array_index (n->ike->sas, i);
      GHashTableIter it;
      gpointer value;

      if (sa->exchanges == NULL)
        continue;
      g_hash_table_iter_init (&it, sa->exchanges);
      while (g_hash_table_iter_next (&it, NULL, &value))
        {
          const ModikeExchange *x = value;

          if (x->type == MODIKE_EX_QUICK && !x->dead && !x->done)
            count++;
        }
    }
  return count;
}


static void
test_dp_sad_mirror (void)
{
  Params p = params_default ();
  g_autoptr (GPtrArray) log = g_ptr_array_new_with_free_func (g_free);
  FakeDp da, db;
  Node *a, *b;
  Net *net;
  g_autofree char *status = NULL;
  g_autoptr (GPtrArray) spd = NULL;
  g_autoptr (GRegex) esp_re = g_regex_new (
    "^  ESP b in=[0-9a-f]{8} out=[0-9a-f]{8} aes128-sha256 tunnel pfs=none life=3600s "
    "packets=3/4 bytes=300/400 drops=3$", G_REGEX_MULTILINE, 0, NULL);
  ModikeAddr local;

  fake_dp_init (&da, log);
  fake_dp_init (&db, log);
  /* B's datapath predates sa_del_sa/sa_stats_sa: the core falls back. */
  db.old_sa_ops = TRUE;
  p.two_policies = TRUE;
  net = dp_pair_new (&p, &da, &db, NULL, &a, &b);
  g_assert_cmpuint (da.starts, ==, 1);
  g_assert_nonnull (da.host);
  /* The SPD, as copies the datapath owns. */
  spd = modike_spd_entries (modike_ike_get_spd (a->ike));
  g_assert_cmpuint (da.policy_sets, ==, 1);
  g_assert_cmpuint (da.policies->len, ==, 2);
  for (guint i = 0; i < 2; i++)
    {
      const ModikeSpdEntry *mine = g_ptr_array_index (da.policies, i), *real = g_ptr_array_index (spd, i);

      g_assert_true (mine != real);
      g_assert_cmpstr (mine->name, ==, real->name);
      g_assert_cmpuint (mine->id, ==, real->id);
      g_assert_cmpint (mine->action, ==, MODIKE_SPD_PROTECT);
    }

  bring_up (net, a, b, 2);
  check_pair (a, b, 2);
  g_assert_cmpuint (da.sa_adds, ==, 4);
  fake_dp_assert_mirror (&da, a);
  fake_dp_assert_mirror (&db, b);

  /* Counters from the datapath end the ESP lines. */
  status = modike_ike_status (a->ike);
  g_test_message ("%s", status);
  g_assert_true (g_regex_match (esp_re, status, 0, NULL));

  /* The 4500 socket goes to the datapath if it takes it. */
  g_assert_true (modike_addr_parse ("0.0.0.0", 4500, &local, NULL));
  g_assert_true (modike_ike_offer_socket (a->ike, 7, &local));
  g_assert_true (log_has (log, "socket 7 port 4500"));
  g_assert_false (modike_ike_offer_socket (a->ike, 1001, &local));

  /* A reload gives the policies again, never a second start. */
  reload_a (a, &p, "again");
  g_assert_cmpuint (da.starts, ==, 1);
  g_assert_cmpuint (da.policy_sets, ==, 2);
  fake_dp_assert_mirror (&da, a);

  /* Deleting follows through on both ends. */
  modike_ike_terminate (a->ike, "b");
  net_run (net, 1000, NULL, NULL);
  g_assert_cmpuint (g_hash_table_size (da.sas), ==, 0);
  g_assert_cmpuint (g_hash_table_size (db.sas), ==, 0);
  g_assert_cmpuint (da.sa_dels, ==, 4);
  g_assert_cmpuint (db.sa_dels, ==, 4);
  net_free (net);
  g_assert_cmpuint (da.stops, ==, 1);
  g_assert_cmpuint (db.stops, ==, 1);
  g_assert_null (da.host);
  fake_dp_clear (&da);
  fake_dp_clear (&db);
}

static void
test_dp_acquire_phase1 (void)
{
  Params p = params_default ();
  g_autoptr (GPtrArray) log = g_ptr_array_new_with_free_func (g_free);
  FakeDp da;
  Node *a, *b;
  Net *net;
  ModikeSelector sel = sel_a_to_b ();
  guint32 spd;
  guint sent;

  fake_dp_init (&da, log);
  net = dp_pair_new (&p, &da, NULL, NULL, &a, &b);
  spd = spd_id_of (a, "net");
  modike_datapath_acquire (da.host, spd, &sel);
  /* Queued for the main loop, not run inside the call. */
  g_assert_cmpuint (modike_ike_count_sas (a->ike, FALSE), ==, 0);
  host_flush ();
  g_assert_cmpuint (modike_ike_count_sas (a->ike, FALSE), ==, 1);
  g_assert_cmpuint (net->sent, ==, 1);
  /* While it runs (even past the rate limit) more acquires do nothing. */
  net->now_us += 2 * G_USEC_PER_SEC;
  modike_datapath_acquire (da.host, spd, &sel);
  modike_datapath_acquire (da.host, spd, NULL);
  host_flush ();
  g_assert_cmpuint (modike_ike_count_sas (a->ike, FALSE), ==, 1);
  g_assert_cmpuint (net->sent, ==, 1);
  g_assert_true (run_until_up (net, a, b, 1, 30000));
  check_pair (a, b, 1);
  g_assert_cmpuint (a->p1_up, ==, 1);
  g_assert_cmpuint (a->p2_up, ==, 1);
  fake_dp_assert_mirror (&da, a);
  /* With the SA up: nothing either. */
  sent = net->sent;
  modike_datapath_acquire (da.host, spd, &sel);
  host_flush ();
  net_run (net, 3000, NULL, NULL);
  g_assert_cmpuint (net->sent, ==, sent);
  g_assert_cmpuint (a->p2_up, ==, 1);
  net_free (net);
  fake_dp_clear (&da);
}

typedef struct {
  ModikeDatapathHost *host;
  guint32 spd_id;
  ModikeSelector sel;
  GThread *caller;
} AcquireArgs;

static gpointer
acquire_thread (gpointer data)
{
  AcquireArgs *args = data;

  args->caller = g_thread_self ();
  modike_datapath_acquire (args->host, args->spd_id, &args->sel);
  return NULL;
}

/* The IKE SA is up but the policy has no child: only a Quick Mode, asked
 * for from a datapath thread. */
static void
test_dp_acquire_quick_mode_thread (void)
{
  Params p = params_default ();
  g_autoptr (GPtrArray) log = g_ptr_array_new_with_free_func (g_free);
  FakeDp da;
  Node *a, *b;
  Net *net;
  AcquireArgs args = { 0 };
  GThread *t;
  guint sent;

  fake_dp_init (&da, log);
  net = dp_pair_new (&p, &da, NULL, NULL, &a, &b);
  bring_up (net, a, b, 1);
  engine_enter (a->ike);
  engine_child_remove (g_ptr_array_index (only_sa (a)->children, 0), TRUE);
  engine_leave (a->ike);
  net_run (net, 1000, NULL, NULL);
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (b->ike)), ==, 0);
  g_assert_cmpuint (g_hash_table_size (da.sas), ==, 0);
  sent = net->sent;

  args.host = da.host;
  args.spd_id = spd_id_of (a, "net");
  args.sel = sel_a_to_b ();
  t = g_thread_new ("fake-datapath", acquire_thread, &args);
  g_thread_join (t);
  g_assert_true (args.caller != g_thread_self ());
  /* The engine did nothing on the datapath's thread. */
  g_assert_cmpuint (quick_modes (a), ==, 0);
  g_assert_cmpuint (net->sent, ==, sent);
  host_flush ();
  g_assert_cmpuint (quick_modes (a), ==, 1);
  g_assert_true (run_until_up (net, a, b, 1, 30000));
  check_pair (a, b, 1);
  /* Three messages: Quick Mode alone on the existing IKE SA. */
  g_assert_cmpuint (net->sent - sent, ==, 3);
  g_assert_cmpuint (a->p1_up, ==, 1);
  g_assert_cmpuint (a->p2_up, ==, 2);
  fake_dp_assert_mirror (&da, a);
  net_free (net);
  fake_dp_clear (&da);
}

/* A peer that refuses: acquires are tried again at most once a second,
 * and one that comes too early is deferred, not lost. */
static void
test_dp_acquire_rate_limit (void)
{
  Params p = params_default ();
  g_autoptr (GPtrArray) log = g_ptr_array_new_with_free_func (g_free);
  FakeDp da;
  Node *a, *b;
  Net *net;
  guint32 spd;

  p.encr = "3des";
  p.hash = "md5";
  p.group = "modp1024";
  p.encr_b = "aes128";
  p.hash_b = "sha256";
  p.group_b = "modp2048";
  fake_dp_init (&da, log);
  net = dp_pair_new (&p, &da, NULL, NULL, &a, &b);
  spd = spd_id_of (a, "net");
  modike_datapath_acquire (da.host, spd, NULL);
  host_flush ();
  net_run (net, 100, NULL, NULL);
  g_assert_cmpuint (a->p1_failed, ==, 1);
  g_assert_cmpuint (net->sent, ==, 2);
  /* 100 ms later: three more, all deferred into one attempt at 1 s. */
  for (guint i = 0; i < 3; i++)
    modike_datapath_acquire (da.host, spd, NULL);
  host_flush ();
  g_assert_cmpuint (net->sent, ==, 2);
  g_assert_cmpuint (modike_ike_count_sas (a->ike, FALSE), ==, 0);
  net_run (net, 850, NULL, NULL);
  g_assert_cmpuint (net->sent, ==, 2);
  net_run (net, 100, NULL, NULL);
  g_assert_cmpuint (net->sent, ==, 4);
  g_assert_cmpuint (a->p1_failed, ==, 2);
  net_run (net, 5000, NULL, NULL);
  g_assert_cmpuint (a->p1_failed, ==, 2);
  net_free (net);
  fake_dp_clear (&da);
}

static void
test_dp_expire_soft (void)
{
  Params p = params_default ();
  g_autoptr (GPtrArray) log = g_ptr_array_new_with_free_func (g_free);
  FakeDp da, db;
  Node *a, *b;
  Net *net;
  EngineChild *c;
  guint32 old_in, old_out;

  p.p2_life = 100;
  fake_dp_init (&da, log);
  fake_dp_init (&db, log);
  net = dp_pair_new (&p, &da, &db, NULL, &a, &b);
  bring_up (net, a, b, 1);
  /* Half way through the lifetime, the volume runs out in A's datapath. */
  net_run (net, 50000, NULL, NULL);
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (a->ike)), ==, 2);
  c = g_ptr_array_index (only_sa (a)->children, 0);
  old_in = c->spi_in;
  old_out = c->spi_out;
  modike_datapath_expire (da.host, MODIKE_DIR_IN, old_in, FALSE);
  host_flush ();
  net_run (net, 10000, NULL, NULL);
  g_assert_cmpuint (a->p2_up, ==, 2);
  g_assert_cmpuint (b->p2_up, ==, 2);
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (a->ike)), ==, 4);
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (b->ike)), ==, 4);
  /* The old pair works on until its end. */
  g_assert_nonnull (modike_sad_lookup (modike_ike_get_sad (a->ike), MODIKE_DIR_IN, old_in));
  g_assert_nonnull (modike_sad_lookup (modike_ike_get_sad (b->ike), MODIKE_DIR_OUT, old_in));
  g_assert_true (c->rekeyed);
  fake_dp_assert_mirror (&da, a);
  fake_dp_assert_mirror (&db, b);
  /* Again for the same SA: it is being replaced already. */
  modike_datapath_expire (da.host, MODIKE_DIR_OUT, old_out, FALSE);
  host_flush ();
  net_run (net, 1000, NULL, NULL);
  g_assert_cmpuint (a->p2_up, ==, 2);
  /* At 100 s the old pair is gone on both ends, the new one stays. */
  net_run (net, 41000, NULL, NULL);
  g_assert_null (modike_sad_lookup (modike_ike_get_sad (a->ike), MODIKE_DIR_IN, old_in));
  g_assert_null (modike_sad_lookup (modike_ike_get_sad (b->ike), MODIKE_DIR_OUT, old_in));
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (a->ike)), ==, 2);
  check_pair (a, b, 1);
  fake_dp_assert_mirror (&da, a);
  /* B ran its Quick Mode as responder: it would not rekey on time, but a
   * soft expiry in its datapath still brings a new pair. */
  c = g_ptr_array_index (only_sa (b)->children, 0);
  g_assert_false (c->initiator);
  modike_datapath_expire (db.host, MODIKE_DIR_IN, c->spi_in, FALSE);
  host_flush ();
  net_run (net, 1000, NULL, NULL);
  g_assert_cmpuint (a->p2_up, ==, 3);
  g_assert_cmpuint (b->p2_up, ==, 3);
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (b->ike)), ==, 4);
  g_assert_true (c->rekeyed);
  assert_no_failures (a, b);
  net_free (net);
  fake_dp_clear (&da);
  fake_dp_clear (&db);
}

static void
test_dp_expire_hard (void)
{
  Params p = params_default ();
  g_autoptr (GPtrArray) log = g_ptr_array_new_with_free_func (g_free);
  FakeDp da, db;
  Node *a, *b;
  Net *net;
  EngineChild *c;

  fake_dp_init (&da, log);
  fake_dp_init (&db, log);
  net = dp_pair_new (&p, &da, &db, NULL, &a, &b);
  g_assert_true (modike_ike_initiate (b->ike, "a", NULL));
  g_assert_true (run_until_up (net, a, b, 1, 30000));
  c = g_ptr_array_index (only_sa (a)->children, 0);
  modike_datapath_expire (da.host, MODIKE_DIR_OUT, c->spi_out, TRUE);
  host_flush ();
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (a->ike)), ==, 0);
  g_assert_cmpuint (g_hash_table_size (da.sas), ==, 0);
  net_run (net, 1000, NULL, NULL);
  /* DELETE told B; the IKE SA stays on both ends. */
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (b->ike)), ==, 0);
  g_assert_cmpuint (g_hash_table_size (db.sas), ==, 0);
  g_assert_cmpuint (modike_ike_count_sas (a->ike, TRUE), ==, 1);
  g_assert_cmpuint (modike_ike_count_sas (b->ike, TRUE), ==, 1);
  /* An unknown SPI is ignored. */
  modike_datapath_expire (da.host, MODIKE_DIR_IN, 0xdeadbeef, TRUE);
  host_flush ();
  g_assert_cmpuint (modike_ike_count_sas (a->ike, TRUE), ==, 1);
  net_free (net);
  fake_dp_clear (&da);
  fake_dp_clear (&db);
}

/* The datapath refuses the SAs: they are deleted on both ends. */
static void
test_dp_refused (void)
{
  Params p = params_default ();
  g_autoptr (GPtrArray) log = g_ptr_array_new_with_free_func (g_free);
  FakeDp da;
  Node *a, *b;
  Net *net;

  fake_dp_init (&da, log);
  da.refuse = TRUE;
  net = dp_pair_new (&p, &da, NULL, NULL, &a, &b);
  g_assert_true (modike_ike_initiate (a->ike, "b", NULL));
  net_run (net, 5000, NULL, NULL);
  g_assert_cmpuint (da.sa_adds, ==, 2);
  g_assert_cmpuint (a->p2_up, ==, 0);
  g_assert_cmpuint (a->p2_failed, ==, 1);
  g_assert_nonnull (strstr (a->p2_error->message, "datapath refused"));
  /* B got its SAs with message 3, then the DELETE. */
  g_assert_cmpuint (b->p2_up, ==, 1);
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (a->ike)), ==, 0);
  g_assert_cmpuint (modike_sad_size (modike_ike_get_sad (b->ike)), ==, 0);
  g_assert_cmpuint (only_sa (a)->children->len, ==, 0);
  g_assert_cmpuint (only_sa (b)->children->len, ==, 0);
  g_assert_cmpuint (modike_ike_count_sas (a->ike, TRUE), ==, 1);
  /* What it refused is not taken back from it. */
  g_assert_cmpuint (da.sa_dels, ==, 0);
  net_free (net);
  fake_dp_clear (&da);
}

/* Host calls queued before the stop, or made during it, are dropped. */
static void
test_dp_host_after_stop (void)
{
  Params p = params_default ();
  g_autoptr (GPtrArray) log = g_ptr_array_new_with_free_func (g_free);
  FakeDp da;
  Node *a, *b;
  Net *net;
  ModikeAddr l, r;
  static const guint8 junk[40] = { 9 };

  fake_dp_init (&da, log);
  da.calls_in_stop = TRUE;
  net = dp_pair_new (&p, &da, NULL, NULL, &a, &b);
  g_assert_true (modike_addr_parse ("192.0.2.2", 4500, &l, NULL));
  g_assert_true (modike_addr_parse ("192.0.2.1", 4500, &r, NULL));
  modike_datapath_acquire (da.host, spd_id_of (a, "net"), NULL);
  modike_datapath_ike_input (da.host, &l, &r, junk, sizeof junk);
  net_free (net);
  g_assert_cmpuint (da.stops, ==, 1);
  host_flush ();
  g_assert_false (g_main_context_pending (NULL));
  fake_dp_clear (&da);
}

/* IKE datagrams the datapath read reach the engine. */
static void
test_dp_ike_input (void)
{
  Params p = params_default ();
  g_autoptr (GPtrArray) log = g_ptr_array_new_with_free_func (g_free);
  FakeDp da;
  Node *a, *b;
  Net *net;
  ModikeAddr l, r;
  static const guint8 junk[40] = { 9 };
  guint64 before;

  fake_dp_init (&da, log);
  net = dp_pair_new (&p, &da, NULL, NULL, &a, &b);
  g_assert_true (modike_addr_parse ("192.0.2.2", 4500, &l, NULL));
  g_assert_true (modike_addr_parse ("192.0.2.1", 4500, &r, NULL));
  before = a->ike->stats.rx_packets;
  modike_datapath_ike_input (da.host, &l, &r, junk, sizeof junk);
  g_assert_cmpuint (a->ike->stats.rx_packets, ==, before);
  host_flush ();
  g_assert_cmpuint (a->ike->stats.rx_packets, ==, before + 1);
  g_assert_cmpuint (a->ike->stats.rx_garbage, >=, 1);
  net_free (net);
  fake_dp_clear (&da);
}

static const char adapter_mk0[] =
  "    <adapter name=\"mk0\" address=\"203.0.113.1/32\" queues=\"2\"/>\n";
static const char adapter_mk0_mtu[] =
  "    <adapter name=\"mk0\" address=\"203.0.113.1/32\" queues=\"2\" mtu=\"1300\"/>\n";
static const char range_policies[] =
  "  <policy name=\"range\" peer=\"b\" action=\"protect\" local=\"10.1.0.0/24\" remote=\"10.3.0.1-10.3.0.6\">\n"
  "    <proposal encryption=\"aes128\" integrity=\"sha256\"/>\n"
  "  </policy>\n"
  "  <policy name=\"dns\" action=\"bypass\" remote=\"10.5.0.53\"/>\n";

static void
test_adapters (void)
{
  Params p = params_default ();
  g_autoptr (GPtrArray) log = g_ptr_array_new_with_free_func (g_free);
  FakeDp da;
  FakeOs os = { 0 };
  Node *a, *b;
  Net *net;
  guint mark;

  fake_dp_init (&da, log);
  os.log = log;
  p.peer_extra_a = adapter_mk0;
  p.policies_extra_a = range_policies;
  net = dp_pair_new (&p, &da, NULL, &os, &a, &b);
  {
    /* Created, addressed, attached; routes once the datapath has the
     * policies; a range becomes the prefixes that cover it exactly. */
    static const char *const want[] = {
      "start", "create mk0 queues=2 flags=1", "address mk0 203.0.113.1/32 mtu=1400",
      "attach b fds=100,101 flags=1", "policies 3", "route+ mk0 10.2.0.0/24", "route+ mk0 10.3.0.1/32",
      "route+ mk0 10.3.0.2/31", "route+ mk0 10.3.0.4/31", "route+ mk0 10.3.0.6/32", NULL,
    };
    assert_log (log, 0, want);
  }
  g_assert_cmpuint (os.live, ==, 1);
  /* (B has no policy "range": only "net" comes up.) */
  bring_up (net, a, b, 1);

  /* The same config again: nothing moves. */
  mark = log->len;
  reload_a (a, &p, "reload");
  {
    static const char *const want[] = { "policies 3", NULL };
    assert_log (log, mark, want);
  }
  /* Other policies: the routes follow, the adapter and the SAs stay. */
  mark = log->len;
  p.policies_extra_a =
    "  <policy name=\"wide\" peer=\"b\" action=\"protect\" local=\"10.1.0.0/24\" remote=\"10.4.0.0/16\">\n"
    "    <proposal encryption=\"aes128\" integrity=\"sha256\"/>\n"
    "  </policy>\n";
  reload_a (a, &p, "reload");
  {
    static const char *const want[] = {
      "policies 2", "route- mk0 10.3.0.6/32", "route- mk0 10.3.0.4/31", "route- mk0 10.3.0.2/31",
      "route- mk0 10.3.0.1/32", "route+ mk0 10.4.0.0/16", NULL,
    };
    assert_log (log, mark, want);
  }
  g_assert_cmpuint (modike_ike_count_sas (a->ike, TRUE), ==, 1);
  /* A changed adapter is replaced (and the peer's SAs renegotiated). */
  mark = log->len;
  p.peer_extra_a = adapter_mk0_mtu;
  reload_a (a, &p, "reload");
  {
    static const char *const want[] = {
      "detach b", "destroy mk0", "create mk0 queues=2 flags=1", "address mk0 203.0.113.1/32 mtu=1300",
      "attach b fds=100,101 flags=1", "policies 2", "route+ mk0 10.2.0.0/24", "route+ mk0 10.4.0.0/16", NULL,
    };
    assert_log (log, mark, want);
  }
  g_assert_cmpuint (os.live, ==, 1);
  g_assert_cmpuint (modike_ike_count_sas (a->ike, FALSE), ==, 0);
  /* The peer leaves the config: its adapter goes. */
  mark = log->len;
  {
    g_autoptr (GError) error = NULL;
    ModikeConfig *cfg = modike_config_load_string ("<modike/>", "empty", &error);

    g_assert_no_error (error);
    g_assert_true (modike_ike_set_config (a->ike, cfg, &error));
    modike_config_free (a->cfg);
    a->cfg = cfg;
  }
  {
    static const char *const want[] = { "detach b", "destroy mk0", "policies 0", NULL };
    assert_log (log, mark, want);
  }
  g_assert_cmpuint (os.live, ==, 0);
  /* Back, without offloads from the OS this time; the engine frees it
   * before it stops the datapath. */
  os.no_offload = TRUE;
  p.peer_extra_a = "    <adapter name=\"mk1\"/>\n";
  p.policies_extra_a = NULL;
  mark = log->len;
  reload_a (a, &p, "reload");
  net_free (net);
  {
    static const char *const want[] = {
      "create mk1 queues=1 flags=1", "attach b fds=100 flags=0", "policies 1", "route+ mk1 10.2.0.0/24",
      "detach b", "destroy mk1", "stop", NULL,
    };
    assert_log (log, mark, want);
  }
  g_assert_cmpuint (os.live, ==, 0);
  fake_dp_clear (&da);
}

static void
set_config_fails (Node *n, const char *xml, const char *text)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (ModikeConfig) cfg = modike_config_load_string (xml, n->name, &error);

  g_assert_no_error (error);
  g_assert_false (modike_ike_set_config (n->ike, cfg, &error));
  g_assert_nonnull (error);
  g_test_message ("%s", error->message);
  if (strstr (error->message, text) == NULL || strstr (error->message, "peer b") == NULL)
    g_error ("\"%s\" does not name peer b and \"%s\"", error->message, text);
}

static void
test_adapters_need_plugins (void)
{
  Params p = params_default ();
  g_autoptr (GPtrArray) log = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *with = NULL, *without = NULL;
  FakeDp dp;
  FakeOs os = { 0 };
  Net *net = net_new ();
  Node *n;

  without = config_xml (&p, TRUE);
  p.peer_extra_a = adapter_mk0;
  with = config_xml (&p, TRUE);
  fake_dp_init (&dp, log);
  os.log = log;

  n = node_alloc (net, "no-os", "192.0.2.2");
  fake_dp_register (n, &dp);
  set_config_fails (n, with, "OS adapter");
  node_free (n);
  n = node_alloc (net, "no-dp", "192.0.2.2");
  fake_os_register (n, &os);
  set_config_fails (n, with, "datapath");
  node_free (n);
  g_assert_cmpuint (os.live, ==, 0);

  /* The OS adapter fails: the config is refused, the running one stays. */
  fake_dp_clear (&dp);
  fake_dp_init (&dp, log);
  n = node_alloc (net, "fails", "192.0.2.2");
  fake_dp_register (n, &dp);
  fake_os_register (n, &os);
  node_configure (n, without);
  os.fail_create = TRUE;
  set_config_fails (n, with, "no tun for you");
  g_assert_true (n->ike->cfg == n->cfg);
  g_assert_cmpuint (os.live, ==, 0);
  g_assert_cmpuint (n->ike->adapters->len, ==, 0);
  node_free (n);
  net_free (net);
  fake_dp_clear (&dp);
}

static void
assert_prefixes (const ModikeAddrRange *r, const char *except, const char *const *want)
{
  ModikeAddr ex;
  g_autoptr (GArray) got = NULL;
  guint n = g_strv_length ((char **) want);

  if (except != NULL)
    g_assert_true (modike_addr_parse (except, 500, &ex, NULL));
  got = engine_range_to_prefixes (r, except != NULL ? &ex : NULL);
  g_assert_cmpuint (got->len, ==, n);
  for (guint i = 0; i < n; i++)
    {
      char buf[80];

      g_assert_cmpstr (fmt_prefix (&g_array_index (got, ModikePrefix, i), buf, sizeof buf), ==, want[i]);
    }
}

static ModikeAddrRange
range_of (const char *from, const char *to)
{
  ModikeAddrRange r = { 0 };

  g_assert_true (modike_addr_parse (from, 0, &r.from, NULL));
  g_assert_true (modike_addr_parse (to, 0, &r.to, NULL));
  return r;
}

static void
test_adapter_prefixes (void)
{
  ModikeAddrRange r;
  ModikeAddr peer;
  g_autoptr (GArray) got = NULL;

  r = range_of ("10.3.0.1", "10.3.0.6");
  assert_prefixes (&r, NULL, (const char *const[]){ "10.3.0.1/32", "10.3.0.2/31", "10.3.0.4/31", "10.3.0.6/32", NULL });
  r = range_of ("0.0.0.0", "255.255.255.255");
  assert_prefixes (&r, NULL, (const char *const[]){ "0.0.0.0/0", NULL });
  assert_prefixes (&r, "255.255.255.255", (const char *const[]){ "0.0.0.0/1", "128.0.0.0/2", "192.0.0.0/3",
                                                                 "224.0.0.0/4", "240.0.0.0/5", "248.0.0.0/6",
                                                                 "252.0.0.0/7", "254.0.0.0/8", "255.0.0.0/9",
                                                                 "255.128.0.0/10", "255.192.0.0/11",
                                                                 "255.224.0.0/12", "255.240.0.0/13",
                                                                 "255.248.0.0/14", "255.252.0.0/15",
                                                                 "255.254.0.0/16", "255.255.0.0/17",
                                                                 "255.255.128.0/18", "255.255.192.0/19",
                                                                 "255.255.224.0/20", "255.255.240.0/21",
                                                                 "255.255.248.0/22", "255.255.252.0/23",
                                                                 "255.255.254.0/24", "255.255.255.0/25",
                                                                 "255.255.255.128/26", "255.255.255.192/27",
                                                                 "255.255.255.224/28", "255.255.255.240/29",
                                                                 "255.255.255.248/30", "255.255.255.252/31",
                                                                 "255.255.255.254/32", NULL });
  r = range_of ("10.0.0.0", "10.0.0.255");
  assert_prefixes (&r, "10.0.0.0", (const char *const[]){ "10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/30",
                                                          "10.0.0.8/29", "10.0.0.16/28", "10.0.0.32/27",
                                                          "10.0.0.64/26", "10.0.0.128/25", NULL });
  /* The peer outside the range, or of the other family, changes nothing. */
  assert_prefixes (&r, "10.0.1.0", (const char *const[]){ "10.0.0.0/24", NULL });
  assert_prefixes (&r, "2001:db8::1", (const char *const[]){ "10.0.0.0/24", NULL });
  r = range_of ("10.0.0.1", "10.0.0.1");
  assert_prefixes (&r, NULL, (const char *const[]){ "10.0.0.1/32", NULL });
  assert_prefixes (&r, "10.0.0.1", (const char *const[]){ NULL });
  r = range_of ("2001:db8::", "2001:db8::ffff");
  assert_prefixes (&r, NULL, (const char *const[]){ "2001:db8::/112", NULL });
  r = range_of ("2001:db8::1", "2001:db8::2");
  assert_prefixes (&r, NULL, (const char *const[]){ "2001:db8::1/128", "2001:db8::2/128", NULL });
  /* "any": both families, less the peer: 32 IPv4 prefixes and ::/0. */
  memset (&r, 0, sizeof r);
  g_assert_true (modike_addr_parse ("192.0.2.1", 500, &peer, NULL));
  got = engine_range_to_prefixes (&r, &peer);
  g_assert_cmpuint (got->len, ==, 33);
  for (guint i = 0; i < got->len; i++)
    {
      const ModikePrefix *pre = &g_array_index (got, ModikePrefix, i);

      g_assert_false (modike_prefix_contains (pre, &peer));
    }
  {
    char buf[80];

    g_assert_cmpstr (fmt_prefix (&g_array_index (got, ModikePrefix, 32), buf, sizeof buf), ==, "::/0");
    g_assert_cmpstr (fmt_prefix (&g_array_index (got, ModikePrefix, 0), buf, sizeof buf), ==, "0.0.0.0/1");
  }
}

/* The fake's policies are the SPD's, in its order (ids compared). */
static void
assert_policies_mirror (FakeDp *dp, Node *n)
{
  g_autoptr (GPtrArray) spd = modike_spd_entries (modike_ike_get_spd (n->ike));

  g_assert_cmpuint (dp->policies->len, ==, spd->len);
  for (guint i = 0; i < spd->len; i++)
    g_assert_cmpuint (((ModikeSpdEntry *) dp->policies->pdata[i])->id, ==,
                      ((ModikeSpdEntry *) spd->pdata[i])->id);
}

/* Policies that come and go one at a time reach a datapath that takes
 * them so (policy_add/_del), placed by priority then seq; no whole SPD. */
static void
test_dp_policies_update (void)
{
  Params p = params_default ();
  g_autoptr (GPtrArray) log = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GArray) ids = g_array_new (FALSE, FALSE, sizeof (guint32));
  ModikeSpd *spd;
  FakeDp da, db;
  Node *a, *b;
  Net *net;
  guint32 id;

  fake_dp_init (&da, log);
  fake_dp_init (&db, log);
  p.two_policies = TRUE;
  net = dp_pair_new (&p, &da, &db, NULL, &a, &b);
  g_assert_cmpuint (da.policy_sets, ==, 1);
  spd = modike_ike_get_spd (a->ike);
  /* First by priority, last among equals, and in between. */
  for (guint prio = 0; prio < 3; prio++)
    {
      ModikeSpdEntry *e = modike_spd_entry_new ();

      e->priority = prio == 0 ? 0 : prio == 1 ? G_MAXUINT : ((ModikeSpdEntry *) da.policies->pdata[0])->priority;
      id = modike_spd_add (spd, e);
      g_array_set_size (ids, 0);
      g_array_append_val (ids, id);
      engine_dp_policies_update (a->ike, NULL, ids);
      assert_policies_mirror (&da, a);
    }
  g_assert_cmpuint (da.policy_adds, ==, 3);
  g_assert_cmpuint (da.policies->len, ==, 5);
  /* One out (the first SPD entry), one in, in one update. */
  id = ((ModikeSpdEntry *) da.policies->pdata[0])->id;
  g_assert_true (modike_spd_remove (spd, id));
  g_array_set_size (ids, 0);
  g_array_append_val (ids, id);
  {
    g_autoptr (GArray) added = g_array_new (FALSE, FALSE, sizeof (guint32));
    guint32 nid = modike_spd_add (spd, modike_spd_entry_new ());

    g_array_append_val (added, nid);
    engine_dp_policies_update (a->ike, ids, added);
  }
  assert_policies_mirror (&da, a);
  g_assert_cmpuint (da.policy_dels, ==, 1);
  g_assert_cmpuint (da.policy_adds, ==, 4);
  /* Nothing changed: nothing called. */
  engine_dp_policies_update (a->ike, NULL, NULL);
  g_assert_cmpuint (da.policy_sets, ==, 1);
  g_assert_cmpuint (db.policy_adds + db.policy_dels, ==, 0);
  net_free (net);
  fake_dp_clear (&da);
  fake_dp_clear (&db);
}

void
fsm_add_datapath_tests (void)
{
  g_test_add_func ("/fsm/datapath/sad-mirror", test_dp_sad_mirror);
  g_test_add_func ("/fsm/datapath/policies-update", test_dp_policies_update);
  g_test_add_func ("/fsm/datapath/acquire/phase1", test_dp_acquire_phase1);
  g_test_add_func ("/fsm/datapath/acquire/quick-mode-from-thread", test_dp_acquire_quick_mode_thread);
  g_test_add_func ("/fsm/datapath/acquire/rate-limit", test_dp_acquire_rate_limit);
  g_test_add_func ("/fsm/datapath/expire/soft", test_dp_expire_soft);
  g_test_add_func ("/fsm/datapath/expire/hard", test_dp_expire_hard);
  g_test_add_func ("/fsm/datapath/refused", test_dp_refused);
  g_test_add_func ("/fsm/datapath/host-after-stop", test_dp_host_after_stop);
  g_test_add_func ("/fsm/datapath/ike-input", test_dp_ike_input);
  g_test_add_func ("/fsm/adapters/lifecycle", test_adapters);
  g_test_add_func ("/fsm/adapters/need-plugins", test_adapters_need_plugins);
  g_test_add_func ("/fsm/adapters/prefixes", test_adapter_prefixes);
}
