/* Half-open responder SAs under a flood of first messages: the total and
 * per-address limits (<daemon><limits>), exact counts through every way an
 * SA leaves the half-open state, the summarised log, memory per SA. */
#include "harness.h"

#include <malloc.h>
#include <string.h>
#if defined(__SANITIZE_ADDRESS__)
/* ASan's runtime (sanitizer/allocator_interface.h, not always installed). */
size_t __sanitizer_get_current_allocated_bytes (void);
#endif

/* ---- the log lines of the engine, captured ---- */

static GPtrArray *captured; /* char*: the lines of half-open SAs and first messages, while a test captures */

static GLogWriterOutput
capture_writer (GLogLevelFlags level, const GLogField *fields, gsize n, gpointer user)
{
  if (captured != NULL && (level & (G_LOG_LEVEL_MESSAGE | G_LOG_LEVEL_WARNING)) != 0)
    for (gsize i = 0; i < n; i++)
      if (strcmp (fields[i].key, "MESSAGE") == 0 &&
          (strstr (fields[i].value, "half-open") != NULL || strstr (fields[i].value, "no matching peer") != NULL))
        g_ptr_array_add (captured, g_strdup (fields[i].value));
  return g_log_writer_default (level, fields, n, user);
}

/* The captured lines from index from, in the test's log. */
static void
show_captured (guint from)
{
  for (guint i = from; i < captured->len; i++)
    g_test_message ("%s", (char *) captured->pdata[i]);
}

static guint
count_matching (const char *text)
{
  guint n = 0;

  for (guint i = 0; i < captured->len; i++)
    n += strstr (captured->pdata[i], text) != NULL;
  return n;
}

/* ---- a gateway B that takes first messages from anywhere ---- */

/* B's config: its peer "a" (A's address) and "any" (any other address),
 * with limits (0: no <limits> element). */
static char *
gw_xml (const Params *p, guint max, guint per_addr)
{
  g_autofree char *base = config_xml (p, FALSE);
  g_autofree char *limits = max > 0 ? g_strdup_printf ("<limits half-open=\"%u\" half-open-per-address=\"%u\"/>",
                                                       max, per_addr)
                                    : g_strdup ("");
  g_autofree char *daemon = g_strdup_printf ("<modike>\n  <daemon>%s</daemon>\n", limits);
  g_autofree char *any = g_strdup_printf ("  <peer name=\"any\">\n"
                                          "    <auth method=\"psk\" secret=\"other\"/>\n"
                                          "    <phase1 exchange=\"main\"><proposal encryption=\"%s\" hash=\"%s\""
                                          " group=\"%s\"/></phase1>\n"
                                          "    <retransmit interval=\"1000\" tries=\"3\" half-open=\"%u\"/>\n"
                                          "  </peer>\n  <policy name=\"net\"",
                                          p->encr, p->hash, p->group, p->half_open);
  g_auto (GStrv) parts = g_strsplit (base, "<modike>\n", 2);
  g_autofree char *with_daemon = g_strjoinv (daemon, parts);
  g_auto (GStrv) parts2 = g_strsplit (with_daemon, "  <policy name=\"net\"", 2);

  return g_strjoinv (any, parts2);
}

typedef struct {
  Net *net;
  Node *a, *b;
  Params p;
  GBytes *first;   /* A's MM1, the template of the flood */
} Gw;

/* Keeps A's first message from B. */
static FilterResult
take_first (Net *net, guint n, Packet *pk, gpointer user)
{
  GBytes **first = user;

  if (*first != NULL)
    return FILTER_PASS;
  *first = g_bytes_ref (pk->data);
  packet_free (pk);
  return FILTER_TAKEN;
}

static void
gw_init (Gw *g, guint max, guint per_addr)
{
  g_autofree char *xml = NULL;

  g->p = params_default ();
  g->p.tries = 1;
  g->p.half_open = 30;
  xml = gw_xml (&g->p, max, per_addr);
  g->net = net_new ();
  g->a = node_new (g->net, "a", &g->p, TRUE);
  g->b = node_new_xml (g->net, "b", "192.0.2.1", xml);
  /* A's MM1, kept; A's own attempt goes. */
  g->net->filter = take_first;
  g->net->filter_user = &g->first;
  g_assert_true (modike_ike_initiate (g->a->ike, "b", NULL));
  g_assert_nonnull (g->first);
  g->net->filter = NULL;
  g->net->filter_user = NULL;
  modike_ike_terminate (g->a->ike, "b");
  assert_no_sas (g->a);
}

static void
gw_clear (Gw *g)
{
  modike_ike_half_open_check (g->b->ike);
  g_clear_pointer (&g->first, g_bytes_unref);
  net_free (g->net);
}

/* One copy of A's MM1 under cookie number i from addr; TRUE when B made an SA. */
static gboolean
gw_first (Gw *g, guint32 i, const char *addr, guint16 port)
{
  gsize len;
  g_autofree guint8 *copy = g_memdup2 (g_bytes_get_data (g->first, &len), g_bytes_get_size (g->first));
  ModikeAddr from;
  guint before = modike_ike_count_sas (g->b->ike, FALSE);

  g_assert_true (modike_addr_parse (addr, port, &from, NULL));
  copy[0] = 0x5a;
  copy[1] = 0xa5;
  copy[2] = 0x5a;
  copy[3] = 0xa5;
  copy[4] = i >> 24;
  copy[5] = i >> 16;
  copy[6] = i >> 8;
  copy[7] = i;
  modike_ike_receive (g->b->ike, &g->b->addr, &from, copy, len);
  return modike_ike_count_sas (g->b->ike, FALSE) == before + 1;
}

static char *
addr_n (guint n)
{
  return g_strdup_printf ("198.51.%u.%u", 100 + n / 250, 1 + n % 250);
}

/* ---- tests ---- */

/* The 33rd first message from one address is dropped (ports do not
 * matter); another address still gets in; all expire to 0. */
static void
test_per_address (void)
{
  Gw g = { 0 };
  const ModikeIkeStats *st;
  g_autofree char *status = NULL;

  gw_init (&g, 0, 0); /* the defaults: 2048, 32 */
  st = modike_ike_get_stats (g.b->ike);
  for (guint i = 0; i < 32; i++)
    g_assert_true (gw_first (&g, i, "198.51.100.77", 500 + i % 3));
  g_assert_cmpuint (modike_ike_half_open_check (g.b->ike), ==, 32);
  g_assert_false (gw_first (&g, 32, "198.51.100.77", 4500));
  g_assert_cmpuint (st->rx_half_open_limit, ==, 1);
  g_assert_true (gw_first (&g, 33, "198.51.100.78", 500));
  g_assert_false (gw_first (&g, 34, "198.51.100.77", 500));
  g_assert_cmpuint (st->rx_half_open_limit, ==, 2);
  g_assert_cmpuint (modike_ike_half_open_check (g.b->ike), ==, 33);
  net_run (g.net, (g.p.half_open + 2) * 1000, NULL, NULL);
  g_assert_cmpuint (modike_ike_half_open_check (g.b->ike), ==, 0);
  g_assert_cmpuint (st->half_open_expired, ==, 33);
  assert_no_sas (g.b);
  status = modike_ike_status (g.b->ike);
  g_assert_cmpstr (status, ==, "HALF-OPEN sas=0 limit-drops=2 expired=33\n");
  /* Free again once they went. */
  g_assert_true (gw_first (&g, 35, "198.51.100.77", 500));
  gw_clear (&g);
}

/* The total: first messages from as many addresses fill it, the next is
 * dropped; slots free when SAs time out or come up, and an established SA
 * takes none. */
static void
test_total (void)
{
  Gw g = { 0 };
  const ModikeIkeStats *st;

  gw_init (&g, 40, 2);
  st = modike_ike_get_stats (g.b->ike);
  for (guint i = 0; i < 40; i++)
    {
      g_autofree char *addr = addr_n (i / 2);

      g_assert_true (gw_first (&g, i, addr, 500));
    }
  g_assert_false (gw_first (&g, 40, "198.51.200.1", 500));
  g_assert_cmpuint (st->rx_half_open_limit, ==, 1);
  g_assert_cmpuint (modike_ike_half_open_check (g.b->ike), ==, 40);
  net_run (g.net, (g.p.half_open + 5) * 1000, NULL, NULL);
  g_assert_cmpuint (modike_ike_half_open_check (g.b->ike), ==, 0);
  assert_no_sas (g.b);
  g.p.tries = 3;
  reload_node (g.a, &g.p, TRUE, "a");
  bring_up (g.net, g.a, g.b, 1);
  g_assert_cmpuint (modike_ike_half_open_check (g.b->ike), ==, 0);
  g_assert_true (gw_first (&g, 41, "198.51.200.1", 500));
  g_assert_cmpuint (modike_ike_half_open_check (g.b->ike), ==, 1);
  gw_clear (&g);
}

static gboolean
b_connecting (Net *net, gpointer user)
{
  Node *b = user;

  return modike_ike_count_sas (b->ike, FALSE) == 1 && modike_ike_count_sas (b->ike, TRUE) == 0;
}

/* Drops everything: B's answers go nowhere. */
static FilterResult
drop_all (Net *net, guint n, Packet *pk, gpointer user)
{
  return FILTER_DROP;
}

/* The counts stay exact through establishment, failure, deletion, a
 * reload (new limits for new first messages, the SAs stay) and the end of
 * the engine with half-open SAs left. */
static void
test_exact (void)
{
  Gw g = { 0 };
  g_autofree char *xml = NULL;
  g_autoptr (GError) error = NULL;
  ModikeConfig *cfg;
  ModikeIkeSa *sa;

  gw_init (&g, 100, 4);
  g.p.tries = 3;
  reload_node (g.a, &g.p, TRUE, "a");

  /* Established: while connecting it counts, then not. */
  g_assert_true (modike_ike_initiate (g.a->ike, "b", NULL));
  g_assert_true (net_run (g.net, 1000, b_connecting, g.b));
  g_assert_cmpuint (modike_ike_half_open_check (g.b->ike), ==, 1);
  g_assert_true (run_until_up (g.net, g.a, g.b, 1, 30000));
  g_assert_cmpuint (modike_ike_half_open_check (g.b->ike), ==, 0);

  /* Failed: a wrong key fails B's phase 1 at MM5. */
  g.p.psk_a = "wrong";
  reload_node (g.a, &g.p, TRUE, "a");
  modike_ike_terminate (g.a->ike, "b");
  net_run (g.net, 2000, NULL, NULL);
  assert_no_sas (g.b);
  g_assert_true (modike_ike_initiate (g.a->ike, "b", NULL));
  net_run (g.net, 20000, NULL, NULL);
  g_assert_cmpuint (g.b->p1_failed, >=, 1);
  g_assert_cmpuint (modike_ike_half_open_check (g.b->ike), ==, 0);

  /* Deleted: B's half-open SAs of peer "a" go with a delete of the peer. */
  g.net->filter = drop_all;
  g_assert_true (gw_first (&g, 1, "192.0.2.2", 500));
  g_assert_true (gw_first (&g, 2, "198.51.100.5", 500));
  g_assert_cmpuint (modike_ike_half_open_check (g.b->ike), ==, 2);
  modike_ike_terminate (g.b->ike, "a");
  g_assert_cmpuint (modike_ike_half_open_check (g.b->ike), ==, 1);

  /* Reload with a per-address limit of 1: the SA from .5 stays; a second
   * from it is dropped, one from elsewhere gets in. */
  xml = gw_xml (&g.p, 100, 1);
  cfg = modike_config_load_string (xml, "b", &error);
  g_assert_no_error (error);
  g_assert_true (modike_ike_set_config (g.b->ike, cfg, &error));
  modike_config_free (g.b->cfg);
  g.b->cfg = cfg;
  g_assert_cmpuint (modike_ike_half_open_check (g.b->ike), ==, 1);
  g_assert_false (gw_first (&g, 3, "198.51.100.5", 500));
  g_assert_true (gw_first (&g, 4, "198.51.100.6", 500));
  sa = newest_sa_from (g.b, &(ModikeAddr){ .family = AF_INET, .addr = { 198, 51, 100, 6 }, .port = 500 });
  g_assert_nonnull (sa);
  g_assert_cmpuint (modike_ike_half_open_check (g.b->ike), ==, 2);
  /* The engine goes with them: engine_sa_free takes them off (asserts). */
  gw_clear (&g);
}

/* A flood of 3000 first messages from one address gives a few lines, and
 * the summary counts them; the expiry of the 32 SAs it made is one more. */
static void
test_log_summary (void)
{
  Gw g = { 0 };
  guint made = 0;
  g_autofree char *want = NULL;

  gw_init (&g, 0, 0);
  captured = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < 3000; i++)
    made += gw_first (&g, i, "198.51.100.77", 500);
  g_assert_cmpuint (made, ==, 32);
  g_assert_cmpuint (modike_ike_get_stats (g.b->ike)->rx_half_open_limit, ==, 3000 - 32);
  /* The first drop at once; nothing more until the interval ends. */
  g_assert_cmpuint (captured->len, ==, 1);
  g_assert_nonnull (strstr (captured->pdata[0], "half-open limit: MM from 198.51.100.77 dropped "
                                                 "(per-address limit 32 reached)"));
  net_run (g.net, 10500, NULL, NULL);
  want = g_strdup_printf ("half-open limit: dropped %u first messages from 1 address in the last 10 s "
                          "(per-address limit 32; most from 198.51.100.77: %u)", 3000 - 33, 3000 - 33);
  show_captured (0);
  g_assert_cmpuint (count_matching (want), ==, 1);
  g_assert_cmpuint (captured->len, ==, 2);
  /* The 32 time out (no answer to MM2 after 15 s): one line at once, one
   * summary of the rest; the drops were quiet for an interval meanwhile. */
  net_run (g.net, 20000, NULL, NULL);
  show_captured (2);
  g_assert_cmpuint (count_matching ("half-open: SA from 198.51.100.77 expired (peer any: "), ==, 1);
  g_assert_cmpuint (count_matching ("half-open: 31 SAs from 1 address expired in the last 10 s (most from "
                                    "198.51.100.77: 31)"), ==, 1);
  g_assert_cmpuint (modike_ike_get_stats (g.b->ike)->half_open_expired, ==, 32);
  assert_no_sas (g.b);
  /* After a quiet interval the next drop is visible at once again. */
  made = 0;
  for (guint i = 0; i < 33; i++)
    made += gw_first (&g, 5000 + i, "198.51.100.77", 500);
  g_assert_cmpuint (made, ==, 32);
  g_assert_cmpuint (count_matching ("half-open limit: MM from 198.51.100.77 dropped"), ==, 2);
  g_assert_cmpuint (captured->len, ==, 5);
  g_clear_pointer (&captured, g_ptr_array_unref);
  gw_clear (&g);
}

/* First messages that match no peer config: one line at once, then a
 * summary; no SA, no half-open count. */
static void
test_no_peer (void)
{
  Gw g = { 0 };

  gw_init (&g, 0, 0);
  reload_node (g.b, &g.p, FALSE, "b"); /* no "any" entry: only A's address */
  captured = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < 100; i++)
    g_assert_false (gw_first (&g, i, "198.51.100.9", 500));
  g_assert_cmpuint (modike_ike_half_open_check (g.b->ike), ==, 0);
  g_assert_cmpuint (modike_ike_get_stats (g.b->ike)->rx_no_peer, ==, 100);
  net_run (g.net, 10500, NULL, NULL);
  show_captured (0);
  g_assert_cmpuint (count_matching ("MM from 198.51.100.9[500]: no matching peer config, dropped"), ==, 1);
  g_assert_cmpuint (count_matching ("no matching peer config: dropped 99 first messages from 1 address in the last "
                                    "10 s (most from 198.51.100.9: 99)"), ==, 1);
  g_assert_cmpuint (captured->len, ==, 2);
  g_clear_pointer (&captured, g_ptr_array_unref);
  gw_clear (&g);
}

/* Heap bytes in use: glibc's count, or ASan's (whose malloc glibc's
 * mallinfo2 does not see). */
static gsize
heap_in_use (void)
{
#if defined(__SANITIZE_ADDRESS__)
  return __sanitizer_get_current_allocated_bytes ();
#else
  return mallinfo2 ().uordblks;
#endif
}

/* Memory of a half-open SA: 1000 of them, the heap in use before and after. */
static void
test_memory (void)
{
  Gw g = { 0 };
  gsize before, after, per_sa;

  gw_init (&g, 10000, 10000);
  /* Warm-up: the tables' first growth and the engine's lazy state. */
  for (guint i = 0; i < 100; i++)
    g_assert_true (gw_first (&g, 100000 + i, "198.51.100.1", 500));
  before = heap_in_use ();
  for (guint i = 0; i < 1000; i++)
    {
      g_autofree char *addr = addr_n (i);

      g_assert_true (gw_first (&g, i, addr, 500));
    }
  after = heap_in_use ();
  g_assert_cmpuint (modike_ike_half_open_check (g.b->ike), ==, 1100);
  g_assert_cmpuint (before, >, 0); /* the count works */
  g_assert_cmpuint (after, >, before);
  per_sa = (after - before) / 1000;
  g_test_message ("bytes per half-open SA: %" G_GSIZE_FORMAT " (in use %" G_GSIZE_FORMAT " -> %" G_GSIZE_FORMAT ")",
                  per_sa, before, after);
  g_assert_cmpuint (per_sa, <, 3072); /* measured 1918 (x86-64, glibc) */
  gw_clear (&g);
}

void
fsm_add_halfopen_tests (void)
{
  g_log_set_writer_func (capture_writer, NULL, NULL);
  g_test_add_func ("/fsm/half-open/per-address", test_per_address);
  g_test_add_func ("/fsm/half-open-bound", test_total);
  g_test_add_func ("/fsm/half-open/exact", test_exact);
  g_test_add_func ("/fsm/half-open/log-summary", test_log_summary);
  g_test_add_func ("/fsm/half-open/no-peer", test_no_peer);
  g_test_add_func ("/fsm/half-open/memory", test_memory);
}
