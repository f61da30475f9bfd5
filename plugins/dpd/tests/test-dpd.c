/* Suite dpd: the notify data codec, then A (192.0.2.2, the initiator)
 * and B (the responder) in the fsm harness with the plugin loaded on
 * both (or on A only), a fake datapath on A whose inbound ESP time the
 * test sets, a fake host that records the stages, and a network that
 * can go dead in either direction. */
#include "harness.h"
#include "dpd.h"

#include <modike/host.h>

const ModikePluginDescriptor *modike_plugin_descriptor (void);

#define EXCHANGE_OFFSET 18

typedef struct {
  Net *net;
  Node *a, *b;
  Dpd *da, *db;
  gboolean dead_ab, dead_ba;   /* lose everything A->B, B->A */
  gboolean drop_info_ba;       /* lose B's Informationals */
  guint info_ab, info_ba;      /* Informationals sent */
  gint64 esp_in_a;             /* A's datapath: last inbound ESP */
  GString *stages;             /* A's host: "dpd failed: <message>" lines */
} Fx;

static FilterResult
fx_filter (Net *net, guint n, Packet *p, gpointer user)
{
  Fx *fx = user;
  gsize len;
  const guint8 *d = g_bytes_get_data (p->data, &len);
  gboolean from_a = p->to == fx->b;
  gboolean info = len > EXCHANGE_OFFSET && d[EXCHANGE_OFFSET] == MODIKE_EX_INFO;

  if ((from_a && fx->dead_ab) || (!from_a && fx->dead_ba))
    return FILTER_DROP;
  if (info)
    (*(from_a ? &fx->info_ab : &fx->info_ba))++;
  if (info && !from_a && fx->drop_info_ba)
    return FILTER_DROP;
  return FILTER_PASS;
}

static void
fdp_sa_stats (gpointer user, ModikeDirection dir, guint32 spi, ModikeSaStats *out)
{
  Fx *fx = user;

  memset (out, 0, sizeof *out);
  out->last_us = dir == MODIKE_DIR_IN ? fx->esp_in_a : 0;
}

static const ModikeDatapathOps fdp_ops = { .name = "espclock", .sa_stats = fdp_sa_stats };
static const ModikePluginDescriptor fdp_desc = { MODIKE_PLUGIN_DESCRIPTOR_INIT, .name = "espclock", .version = "0" };

static void
host_stage (gpointer host, const char *peer, const char *stage, gboolean up, const GError *error)
{
  Fx *fx = host;

  g_string_append_printf (fx->stages, "%s %s: %s\n", stage, up ? "up" : "failed", error ? error->message : "");
}

static const ModikeHostOps host_ops = { .size = sizeof (ModikeHostOps), .stage = host_stage };

static Dpd *
load_plugin (Node *n)
{
  return node_load_plugin (n, modike_plugin_descriptor ());
}

/* The peer entry's XML with `options` (<option .../> elements) added. */
static char *
with_options (char *xml, const char *options)
{
  g_auto (GStrv) parts = g_strsplit (xml, "  </peer>", 2);
  char *out = g_strconcat (parts[0], options != NULL ? options : "", "  </peer>", parts[1], NULL);

  g_free (xml);
  return out;
}

static char *
opts (guint delay, guint timeout, const char *action)
{
  return g_strdup_printf ("<option name=\"dpd.delay\" value=\"%u\"/><option name=\"dpd.timeout\" value=\"%u\"/>"
                          "<option name=\"dpd.action\" value=\"%s\"/>",
                          delay, timeout, action);
}

static guint fx_p1_life;    /* phase 1 lifetime of the next fx_new; 0: the default */

/* A with options_a; B with the plugin (options_b) or without it. */
static Fx *
fx_new (const char *options_a, gboolean plugin_b, const char *options_b)
{
  Fx *fx = g_new0 (Fx, 1);
  Params p = params_default ();
  g_autoptr (GError) error = NULL;
  char *xa, *xb;
  ModikePlugin *dp;

  if (fx_p1_life != 0)
    p.p1_life = fx_p1_life;
  fx->stages = g_string_new (NULL);
  fx->net = net_new ();
  fx->a = node_alloc (fx->net, "a", "192.0.2.2");
  fx->b = node_alloc (fx->net, "b", "192.0.2.1");
  fx->da = load_plugin (fx->a);
  if (plugin_b)
    fx->db = load_plugin (fx->b);
  dp = modike_registry_add_plugin (fx->a->reg, &fdp_desc);
  g_assert_true (modike_register_datapath (dp, &fdp_ops, fx, &error));
  g_assert_no_error (error);
  modike_ike_set_host (fx->a->ike, &host_ops, fx);
  xa = with_options (config_xml (&p, TRUE), options_a);
  xb = with_options (config_xml (&p, FALSE), options_b);
  node_configure (fx->a, xa);
  node_configure (fx->b, xb);
  g_free (xa);
  g_free (xb);
  fx->net->filter = fx_filter;
  fx->net->filter_user = fx;
  bring_up (fx->net, fx->a, fx->b, 1);
  return fx;
}

static void
fx_free (Fx *fx)
{
  net_free (fx->net);
  g_string_free (fx->stages, TRUE);
  g_free (fx);
}

static gboolean
pred_a_empty (Net *net, gpointer user)
{
  Fx *fx = user;

  return modike_ike_count_sas (fx->a->ike, FALSE) == 0;
}

/* ---- the codec ---- */

static void
test_codec (void)
{
  guint8 buf[DPD_SEQ_LEN];
  guint32 seq = 0;
  g_autoptr (GBytes) four = NULL, three = NULL, five = NULL;
  DpdAction action;
  static const guint8 five_bytes[5] = { 0 };

  dpd_seq_encode (0x12345678, buf);
  g_assert_cmpmem (buf, 4, "\x12\x34\x56\x78", 4);
  four = g_bytes_new (buf, 4);
  g_assert_true (dpd_seq_decode (four, &seq));
  g_assert_cmphex (seq, ==, 0x12345678);
  dpd_seq_encode (0xfffffffe, buf);
  g_clear_pointer (&four, g_bytes_unref);
  four = g_bytes_new (buf, 4);
  g_assert_true (dpd_seq_decode (four, &seq));
  g_assert_cmphex (seq, ==, 0xfffffffe);
  /* Exactly four bytes, nothing else. */
  three = g_bytes_new (buf, 3);
  five = g_bytes_new (five_bytes, 5);
  g_assert_false (dpd_seq_decode (three, &seq));
  g_assert_false (dpd_seq_decode (five, &seq));
  g_assert_false (dpd_seq_decode (NULL, &seq));
  /* RFC 3706 5.1: version 1.0. */
  g_assert_cmpmem (dpd_vendor_id, 16, "\xaf\xca\xd7\x13\x68\xa1\xf1\xc9\x6b\x86\x96\xfc\x77\x57\x01\x00", 16);
  g_assert_true (dpd_action_parse ("restart", &action));
  g_assert_cmpint (action, ==, DPD_ACTION_RESTART);
  g_assert_true (dpd_action_parse ("clear", &action));
  g_assert_cmpint (action, ==, DPD_ACTION_CLEAR);
  g_assert_false (dpd_action_parse ("hold", &action));
}

/* The <dpd> section sets the defaults; a bad value refuses the config. */
static void
test_section (void)
{
  Params p = params_default ();
  Net *net = net_new ();
  Node *n = node_alloc (net, "a", "192.0.2.2");
  Dpd *d = load_plugin (n);
  g_autofree char *xml = config_xml (&p, TRUE);
  g_auto (GStrv) tail = g_strsplit (xml, "</modike>", 2);
  static const char *const bad[] = { "delay=\"x\"", "timeout=\"-1\"", "delay=\"86401\"" };
  g_autoptr (GError) error = NULL;
  ModikeConfig *cfg;
  char *x;

  x = g_strconcat (tail[0], "<dpd delay=\"7\" timeout=\"21\" action=\"restart\"/></modike>", tail[1], NULL);
  cfg = modike_config_load_string (x, "a", &error);
  g_assert_no_error (error);
  g_assert_true (modike_registry_apply_config (n->reg, cfg, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (d->defaults.delay_s, ==, 7);
  g_assert_cmpuint (d->defaults.timeout_s, ==, 21);
  g_assert_cmpint (d->defaults.action, ==, DPD_ACTION_RESTART);
  modike_config_free (cfg);
  g_free (x);
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      x = g_strdup_printf ("%s<dpd %s/></modike>%s", tail[0], bad[i], tail[1]);
      cfg = modike_config_load_string (x, "a", &error);
      g_assert_no_error (error);
      g_assert_false (modike_registry_apply_config (n->reg, cfg, &error));
      g_assert_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_INVALID);
      g_clear_error (&error);
      modike_config_free (cfg);
      g_free (x);
    }
  /* Without the section: the built-in defaults. */
  x = g_strdup (xml);
  cfg = modike_config_load_string (x, "a", &error);
  g_assert_true (modike_registry_apply_config (n->reg, cfg, &error));
  g_assert_cmpuint (d->defaults.delay_s, ==, DPD_DEFAULT_DELAY_S);
  g_assert_cmpuint (d->defaults.timeout_s, ==, DPD_DEFAULT_TIMEOUT_S);
  g_assert_cmpint (d->defaults.action, ==, DPD_ACTION_CLEAR);
  modike_config_free (cfg);
  g_free (x);
  net_free (net);
}

/* ---- negotiation ---- */

/* Both sent the vendor ID: DPD runs (defaults: 30 s, 150 s, clear). B
 * without the plugin: A never asks, however long the SA stays idle. */
static void
test_vid (void)
{
  Fx *fx = fx_new (NULL, TRUE, NULL);
  DpdSa *s = dpd_sa_get (only_sa (fx->a));

  g_assert_nonnull (s);
  g_assert_true (s->peer_vid);
  g_assert_true (dpd_sa_get (only_sa (fx->b))->peer_vid);
  g_assert_cmpuint (s->set.delay_s, ==, 30);
  g_assert_cmpuint (s->set.timeout_s, ==, 150);
  g_assert_cmpint (s->set.action, ==, DPD_ACTION_CLEAR);
  /* Whichever end is idle first asks; the answer is traffic for the
   * other, which then need not ask. */
  net_run (fx->net, 31000, NULL, NULL);
  g_assert_cmpuint (fx->da->stats.rut_sent + fx->db->stats.rut_sent, ==, 1);
  g_assert_cmpuint (fx->da->stats.rut_received + fx->db->stats.rut_received, ==, 1);
  g_assert_cmpuint (fx->da->stats.ack_received + fx->db->stats.ack_received, ==, 1);
  fx_free (fx);

  fx = fx_new ("<option name=\"dpd.delay\" value=\"5\"/>", FALSE, NULL);
  g_assert_false (dpd_sa_get (only_sa (fx->a))->peer_vid);
  net_run (fx->net, 120000, NULL, NULL);
  g_assert_cmpuint (fx->da->stats.rut_sent, ==, 0);
  g_assert_cmpuint (fx->info_ab, ==, 0);
  g_assert_cmpuint (modike_ike_count_sas (fx->a->ike, TRUE), ==, 1);
  fx_free (fx);
}

/* ---- traffic and the exchange ---- */

/* Inbound ESP every 4 s keeps A (delay 10) from asking; once it stops,
 * R-U-THERE goes out 10 s after the last packet, and B (delay 0: it only
 * answers) answers with the same sequence number. */
static void
test_idle (void)
{
  g_autofree char *oa = opts (10, 30, "clear");
  Fx *fx = fx_new (oa, TRUE, "<option name=\"dpd.delay\" value=\"0\"/>");
  DpdSa *s = dpd_sa_get (only_sa (fx->a));
  guint32 seq0 = s->seq;
  gint64 last;

  for (guint i = 0; i < 15; i++)
    {
      net_run (fx->net, 4000, NULL, NULL);
      fx->esp_in_a = fx->net->now_us;
    }
  g_assert_cmpuint (fx->da->stats.rut_sent, ==, 0);
  g_assert_cmpuint (fx->info_ab, ==, 0);
  last = fx->esp_in_a;
  net_run (fx->net, 9900, NULL, NULL);
  g_assert_cmpuint (fx->da->stats.rut_sent, ==, 0);
  net_run (fx->net, 200, NULL, NULL);
  g_assert_cmpuint (fx->da->stats.rut_sent, ==, 1);
  g_assert_cmpint (fx->net->now_us - last, >=, 10 * G_USEC_PER_SEC);
  g_assert_cmpuint (s->seq, ==, seq0 + 1);
  g_assert_cmpuint (fx->db->stats.rut_received, ==, 1);
  g_assert_cmpuint (fx->db->stats.ack_sent, ==, 1);
  g_assert_cmpuint (fx->da->stats.ack_received, ==, 1);
  g_assert_false (s->waiting);
  /* B asks nothing itself. */
  g_assert_cmpuint (fx->db->stats.rut_sent, ==, 0);
  fx_free (fx);
}

/* An idle minute with delay 5: R-U-THERE every 5 s, each answered, the
 * numbers consecutive from a random start below 2^31. */
static void
test_exchange (void)
{
  g_autofree char *oa = opts (5, 20, "clear");
  Fx *fx = fx_new (oa, TRUE, NULL);
  DpdSa *s = dpd_sa_get (only_sa (fx->a));
  guint32 seq0 = s->seq;

  g_assert_cmpuint (seq0, <, 0x80000000u);
  net_run (fx->net, 60000, NULL, NULL);
  g_assert_cmpuint (fx->da->stats.rut_sent, >=, 11);
  g_assert_cmpuint (fx->da->stats.rut_sent, <=, 12);
  g_assert_cmpuint (fx->da->stats.ack_received, ==, fx->da->stats.rut_sent);
  g_assert_cmpuint (fx->db->stats.rut_received, ==, fx->da->stats.rut_sent);
  g_assert_cmpuint (s->seq - seq0, ==, fx->da->stats.rut_sent);
  g_assert_cmpuint (fx->da->stats.ack_stale + fx->da->stats.rejected + fx->db->stats.rejected, ==, 0);
  g_assert_cmpuint (fx->info_ab, ==, fx->info_ba);
  g_assert_cmpuint (modike_ike_count_sas (fx->a->ike, TRUE), ==, 1);
  g_assert_cmpuint (fx->da->stats.dead_peers, ==, 0);
  fx_free (fx);
}

static void
send_ack (Node *from, guint32 seq, gboolean right_spi)
{
  ModikeIkeSa *sa = only_sa (from);
  guint8 spi[16], data[4];
  g_autoptr (GError) error = NULL;

  memcpy (spi, modike_ike_sa_get_icookie (sa), 8);
  memcpy (spi + 8, modike_ike_sa_get_rcookie (sa), 8);
  if (!right_spi)
    spi[15] ^= 1;
  dpd_seq_encode (seq, data);
  g_assert_true (modike_ike_sa_send_notify (sa, MODIKE_N_DPD_R_U_THERE_ACK, MODIKE_PROTO_ISAKMP, spi, 16, data, 4,
                                            &error));
  g_assert_no_error (error);
}

/* B's answers are lost: A waits. An ACK with another number, or about
 * another SA, changes nothing; the right one ends the wait. */
static void
test_wrong_ack (void)
{
  g_autofree char *oa = opts (5, 60, "clear");
  Fx *fx = fx_new (oa, TRUE, NULL);
  DpdSa *s = dpd_sa_get (only_sa (fx->a));

  fx->drop_info_ba = TRUE;
  net_run (fx->net, 5500, NULL, NULL);
  g_assert_cmpuint (fx->da->stats.rut_sent, ==, 1);
  g_assert_true (s->waiting);
  fx->drop_info_ba = FALSE;
  send_ack (fx->b, s->seq + 1, TRUE);
  send_ack (fx->b, s->seq - 1, TRUE);
  net_run (fx->net, 100, NULL, NULL);
  g_assert_cmpuint (fx->da->stats.ack_stale, ==, 2);
  g_assert_cmpuint (fx->da->stats.ack_received, ==, 0);
  g_assert_true (s->waiting);
  send_ack (fx->b, s->seq, FALSE);
  net_run (fx->net, 100, NULL, NULL);
  g_assert_cmpuint (fx->da->stats.rejected, ==, 1);
  g_assert_true (s->waiting);
  send_ack (fx->b, s->seq, TRUE);
  net_run (fx->net, 100, NULL, NULL);
  g_assert_cmpuint (fx->da->stats.ack_received, ==, 1);
  g_assert_false (s->waiting);
  /* An ACK when nothing is outstanding is stale too. */
  send_ack (fx->b, s->seq, TRUE);
  net_run (fx->net, 100, NULL, NULL);
  g_assert_cmpuint (fx->da->stats.ack_stale, ==, 3);
  /* An R-U-THERE without a 4-byte sequence number gets no answer. */
  {
    ModikeIkeSa *sa = only_sa (fx->a);
    g_autoptr (GError) error = NULL;
    guint info_ba = fx->info_ba;

    g_assert_true (modike_ike_sa_send_notify (sa, MODIKE_N_DPD_R_U_THERE, MODIKE_PROTO_ISAKMP, NULL, 0,
                                              (const guint8 *) "abc", 3, &error));
    g_assert_no_error (error);
    net_run (fx->net, 100, NULL, NULL);
    g_assert_cmpuint (fx->db->stats.rejected, ==, 1);
    g_assert_cmpuint (fx->db->stats.ack_sent, ==, 1);
    g_assert_cmpuint (fx->info_ba, ==, info_ba);
  }
  fx_free (fx);
}

/* ---- dead peers ---- */

/* The network dies: R-U-THERE at 5 s, again at each delay, and 20 s
 * after the first one A clears the SA and its children; the host hears
 * why. B's DPD message for the SA A dropped is counted. */
static void
test_dead_clear (void)
{
  g_autofree char *oa = opts (5, 20, "clear");
  Fx *fx = fx_new (oa, TRUE, "<option name=\"dpd.delay\" value=\"0\"/>");
  gint64 start = fx->net->now_us;
  guint deleted = fx->a->deleted;
  guint64 unknown;
  g_autofree char *status = NULL;

  fx->dead_ab = fx->dead_ba = TRUE;
  g_assert_true (net_run (fx->net, 60000, pred_a_empty, fx));
  g_assert_cmpint (fx->net->now_us - start, >=, 25 * G_USEC_PER_SEC);
  g_assert_cmpint (fx->net->now_us - start, <=, 26 * G_USEC_PER_SEC);
  g_assert_cmpuint (fx->da->stats.rut_sent, ==, 4);
  g_assert_cmpuint (fx->da->stats.dead_peers, ==, 1);
  g_assert_cmpuint (fx->a->deleted, ==, deleted + 1);
  g_assert_cmpuint (g_hash_table_size (fx->a->ike->children_in), ==, 0);
  g_assert_nonnull (strstr (fx->stages->str,
                            "dpd failed: peer b: dead peer detected: no answer to R-U-THERE within 20 s\n"));
  /* Nothing starts again. */
  net_run (fx->net, 30000, NULL, NULL);
  g_assert_cmpuint (modike_ike_count_sas (fx->a->ike, FALSE), ==, 0);

  /* B still holds its SA; its protected message for it is an
   * Informational for an unknown SA at A: dropped and counted. */
  fx->dead_ab = fx->dead_ba = FALSE;
  unknown = fx->a->ike->stats.rx_unknown_sa;
  send_ack (fx->b, 42, TRUE);
  net_run (fx->net, 100, NULL, NULL);
  g_assert_cmpuint (fx->da->stats.info_unknown_sa, ==, 1);
  g_assert_cmpuint (fx->a->ike->stats.rx_unknown_sa, ==, unknown + 1);
  /* The counters reach the status (modiked's status file and statistics). */
  status = modike_ike_status (fx->a->ike);
  g_assert_cmpstr (status, ==,
                   "PLUGIN dpd r_u_there_sent=4 r_u_there_received=0 ack_sent=0 ack_received=0 ack_stale=0 rejected=0"
                   " dead_peers=1 info_unknown_sa=1\n");
  fx_free (fx);
}

/* action restart: the SA goes after delay + timeout and phase 1 starts
 * again; it keeps starting while the peer stays away (each attempt runs
 * out its retransmits) and comes up with its policy once packets flow. */
static void
test_dead_restart (void)
{
  g_autofree char *oa = opts (5, 20, "restart");
  Fx *fx = fx_new (oa, TRUE, NULL);
  gint64 start = fx->net->now_us;
  ModikeIkeSa *old = only_sa (fx->a);
  guint p1_up = fx->a->p1_up, p2_up = fx->a->p2_up;

  fx->dead_ab = fx->dead_ba = TRUE;
  net_run (fx->net, 26000, NULL, NULL);
  g_assert_cmpuint (fx->da->stats.dead_peers, ==, 1);
  g_assert_nonnull (strstr (fx->stages->str, "dpd failed: peer b: dead peer detected"));
  g_assert_cmpuint (modike_ike_count_sas (fx->a->ike, FALSE), ==, 1);
  g_assert_true (only_sa (fx->a) != old);
  g_assert_false (modike_ike_sa_is_established (only_sa (fx->a)));
  g_assert_cmpint (fx->net->now_us - start, >=, 25 * G_USEC_PER_SEC);
  /* Two minutes of failing attempts (3 tries each: about 15 s): a new
   * one always follows. */
  net_run (fx->net, 120000, NULL, NULL);
  g_assert_cmpuint (fx->a->p1_failed, >=, 4);
  g_assert_cmpuint (modike_ike_count_sas (fx->a->ike, FALSE), ==, 1);
  g_assert_cmpuint (fx->a->p1_up, ==, p1_up);
  /* The gateway answers again. */
  fx->dead_ab = fx->dead_ba = FALSE;
  g_assert_true (run_until_up (fx->net, fx->a, fx->b, 1, 30000));
  g_assert_cmpuint (fx->a->p1_up, ==, p1_up + 1);
  g_assert_cmpuint (fx->a->p2_up, ==, p2_up + 1);
  g_assert_true (modike_ike_sa_is_established (only_sa (fx->a)));
  /* DPD runs on the new SA. */
  g_assert_nonnull (dpd_sa_get (only_sa (fx->a)));
  g_assert_cmpuint (dpd_sa_get (only_sa (fx->a))->set.delay_s, ==, 5);
  fx_free (fx);
}

/* The restart keeps trying only while nobody answers: B comes back with
 * proposals A does not share, and NO_PROPOSAL_CHOSEN ends it. */
static void
test_restart_gives_up (void)
{
  g_autofree char *oa = opts (5, 20, "restart");
  Fx *fx = fx_new (oa, TRUE, NULL);
  Params p = params_default ();
  guint failed;

  fx->dead_ab = fx->dead_ba = TRUE;
  net_run (fx->net, 40000, NULL, NULL);
  g_assert_cmpuint (fx->da->stats.dead_peers, ==, 1);
  g_assert_cmpuint (fx->a->p1_failed, >=, 1);
  g_assert_cmpuint (modike_ike_count_sas (fx->a->ike, FALSE), ==, 1);
  p.encr = "aes256";
  reload_node (fx->b, &p, FALSE, "b2");
  fx->dead_ab = fx->dead_ba = FALSE;
  failed = fx->a->p1_failed;
  g_assert_true (net_run (fx->net, 30000, pred_a_empty, fx));
  g_assert_cmpuint (fx->a->p1_failed, ==, failed + 1);
  g_assert_error (fx->a->p1_error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_NO_PROPOSAL_CHOSEN);
  net_run (fx->net, 60000, NULL, NULL);
  g_assert_cmpuint (modike_ike_count_sas (fx->a->ike, FALSE), ==, 0);
  g_assert_cmpuint (fx->a->p1_failed, ==, failed + 1);
  fx_free (fx);
}

/* Phase 1 rekeyed: DPD stops on the old SA (it lingers, idle, until it
 * expires, and its silence says nothing) and runs on the new one. */
static void
test_rekey (void)
{
  g_autofree char *oa = opts (5, 20, "clear");
  Fx *fx;
  ModikeIkeSa *old = NULL, *now = NULL;

  fx_p1_life = 100;
  fx = fx_new (oa, TRUE, "<option name=\"dpd.delay\" value=\"0\"/>");
  fx_p1_life = 0;
  /* The initiator rekeys at 85..90 s; the old SA expires at 100 s. */
  net_run (fx->net, 95000, NULL, NULL);
  for (guint i = 0; i < fx->a->ike->sas->len; i++)
    {
      ModikeIkeSa *sa = g_ptr_array_index (fx->a->ike->sas, i);

      if (sa->dead)
        continue;
      if (modike_ike_sa_is_replaced (sa))
        old = sa;
      else
        now = sa;
    }
  g_assert_nonnull (old);
  g_assert_nonnull (now);
  g_assert_cmpuint (dpd_sa_get (old)->timer, ==, 0);
  g_assert_cmpuint (dpd_sa_get (now)->timer, !=, 0);
  net_run (fx->net, 60000, NULL, NULL);
  g_assert_cmpuint (fx->da->stats.dead_peers + fx->da->stats.ack_stale, ==, 0);
  g_assert_cmpuint (fx->da->stats.ack_received, ==, fx->da->stats.rut_sent);
  g_assert_cmpuint (modike_ike_count_sas (fx->a->ike, TRUE), ==, 1);
  fx_free (fx);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/dpd/codec", test_codec);
  g_test_add_func ("/dpd/section", test_section);
  g_test_add_func ("/dpd/vid", test_vid);
  g_test_add_func ("/dpd/idle", test_idle);
  g_test_add_func ("/dpd/exchange", test_exchange);
  g_test_add_func ("/dpd/wrong-ack", test_wrong_ack);
  g_test_add_func ("/dpd/dead-clear", test_dead_clear);
  g_test_add_func ("/dpd/dead-restart", test_dead_restart);
  g_test_add_func ("/dpd/restart-gives-up", test_restart_gives_up);
  g_test_add_func ("/dpd/rekey", test_rekey);
  return g_test_run ();
}
