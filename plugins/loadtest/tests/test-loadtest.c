/* The loadtest plugin: its enable switch and config errors, the
 * percentiles, and runs against a responder engine in one process (the
 * fsm harness: mock clock, in-memory network). A is the generator
 * (192.0.2.2 plus the sources), B the responder (192.0.2.1) with a
 * responder-only entry: every client is an SA of its own there. */
#include "harness.h"
#include "loadtest.h"
#include "registry-private.h"

#include <glib/gstdio.h>
#include <modike/modike.h>

const ModikePluginDescriptor *modike_plugin_descriptor (void);

/* A's config with <loadtest attrs/> before </modike>. */
static char *
xml_a (const Params *p, const char *attrs)
{
  g_autofree char *xml = config_xml (p, TRUE);
  g_auto (GStrv) parts = g_strsplit (xml, "</modike>", 2);

  return g_strdup_printf ("%s  <loadtest %s/>\n</modike>%s", parts[0], attrs, parts[1]);
}

/* B's config as a responder-only entry (no remote address). */
static char *
xml_b (const Params *p)
{
  g_autofree char *xml = config_xml (p, FALSE);
  g_auto (GStrv) parts = g_strsplit (xml, "    <remote address=\"192.0.2.2\"/>\n", 2);

  g_assert_nonnull (parts[1]);
  return g_strjoinv ("", parts);
}

/* The plugin's sections applied, then the engine configured (the start
 * hook runs there); FALSE with the apply's error. */
static gboolean
configure (Node *n, const char *xml, GError **error)
{
  n->cfg = modike_config_load_string (xml, n->name, error);
  g_assert_nonnull (n->cfg);
  if (!modike_registry_apply_config (n->reg, n->cfg, error))
    return FALSE;
  g_assert_true (modike_ike_set_config (n->ike, n->cfg, error));
  return TRUE;
}

/* Packet number to lose in the next fx_run (0: none). */
static guint fx_drop;

typedef struct {
  Net *net;
  Node *a, *b;
  Lt *lt;
} Fx;

static gboolean
pred_finished (Net *net, gpointer user)
{
  return ((Lt *) user)->finished;
}

/* A generator (attrs) against B (NULL params: no B), run until the report. */
static Fx *
fx_run (const Params *pa, const Params *pb, const char *attrs, guint limit_ms)
{
  Fx *fx = g_new0 (Fx, 1);
  g_autofree char *xa = xml_a (pa, attrs);
  g_autoptr (GError) error = NULL;

  fx->net = net_new ();
  fx->a = node_alloc (fx->net, "a", "192.0.2.2");
  fx->a->aliases = g_array_new (FALSE, FALSE, sizeof (ModikeAddr));
  for (guint i = 10; i < 74; i++)
    {
      g_autofree char *s = g_strdup_printf ("192.0.2.%u", i);
      ModikeAddr ad;

      g_assert_true (modike_addr_parse (s, 500, &ad, NULL));
      g_array_append_val (fx->a->aliases, ad);
    }
  if (pb != NULL)
    {
      g_autofree char *xb = xml_b (pb);

      fx->b = node_new_xml (fx->net, "b", "192.0.2.1", xb);
    }
  fx->lt = node_load_plugin (fx->a, modike_plugin_descriptor ());
  if (fx_drop != 0)
    g_hash_table_add (fx->net->drop, GUINT_TO_POINTER (fx_drop));
  fx_drop = 0;
  g_assert_true (configure (fx->a, xa, &error));
  g_assert_no_error (error);
  g_assert_true (net_run (fx->net, limit_ms, pred_finished, fx->lt));
  return fx;
}

static void
fx_free (Fx *fx)
{
  Net *net = fx->net;

  node_free (fx->a);
  if (fx->b != NULL)
    node_free (fx->b);
  net_free (net);
  g_free (fx);
}

static guint
sum_failures (const Lt *lt)
{
  guint n = 0;

  for (guint i = 0; i < LT_FAIL_N; i++)
    n += lt->failures[i];
  return n;
}

/* ---- the switch and the config ---- */

static void
expect_refusal (const char *attrs_or_null, const char *want)
{
  Net *net = net_new ();
  Node *a = node_alloc (net, "a", "192.0.2.2");
  Params p = params_default ();
  g_autofree char *xml = attrs_or_null != NULL ? xml_a (&p, attrs_or_null) : config_xml (&p, TRUE);
  g_autoptr (GError) error = NULL;
  Lt *lt = node_load_plugin (a, modike_plugin_descriptor ());

  g_assert_false (configure (a, xml, &error));
  g_assert_nonnull (error);
  if (strstr (error->message, want) == NULL)
    g_error ("'%s' not in '%s'", want, error->message);
  g_assert_false (lt->configured);
  g_assert_cmpuint (modike_ike_count_sas (a->ike, FALSE), ==, 0);
  node_free (a);
  net_free (net);
}

static void
test_refuses_without_enable (void)
{
  expect_refusal (NULL, "no <loadtest enable=\"yes\"");
  expect_refusal ("peer=\"b\" count=\"5\"", "needs enable=\"yes\"");
  expect_refusal ("enable=\"no\" peer=\"b\"", "needs enable=\"yes\"");
  expect_refusal ("enable=\"true\" peer=\"b\"", "needs enable=\"yes\"");
}

static void
test_config_errors (void)
{
  /* The section is on line 15 of A's config. */
  expect_refusal ("enable=\"yes\"", "a:15: <loadtest>: peer=");
  expect_refusal ("enable=\"yes\" peer=\"b\" count=\"0\"", "a:15: <loadtest count=\"0\">: not a number in 1..");
  expect_refusal ("enable=\"yes\" peer=\"b\" concurrency=\"x\"", "<loadtest concurrency=\"x\">");
  expect_refusal ("enable=\"yes\" peer=\"b\" hold=\"maybe\"", "<loadtest hold=\"maybe\">: yes or no");
  expect_refusal ("enable=\"yes\" peer=\"b\" mode-config=\"pull\"", "<loadtest mode-config=\"pull\">: yes or no");
  expect_refusal ("enable=\"yes\" peer=\"b\" sources=\"192.0.2.9-192.0.2.3\"", "ends below its start");
  expect_refusal ("enable=\"yes\" peer=\"b\" sources=\"192.0.2.9-2001:db8::1\"", "not an address of the family");
  expect_refusal ("enable=\"yes\" peer=\"b\" sources=\"nowhere\"", "'nowhere' is not an address");
  expect_refusal ("enable=\"yes\" peer=\"b\" id-template=\"client.example\"", "needs exactly one %u");
  expect_refusal ("enable=\"yes\" peer=\"b\" id-template=\"c%s%u\"", "needs exactly one %u");
}

/* The SDK calls the plugin needs refuse what they must. */
static void
noop_event (ModikeEventType ev, ModikeIkeSa *sa, const ModikeSadEntry *child, gpointer user)
{
}

static void
test_sdk_registrations (void)
{
  static const ModikePluginDescriptor desc = { MODIKE_PLUGIN_DESCRIPTOR_INIT, .name = "probe", .version = "0" };
  ModikeRegistry *reg = modike_registry_new ();
  ModikePlugin *pl = modike_registry_add_plugin (reg, &desc);
  g_autoptr (GError) error = NULL;

  g_assert_true (modike_register_event (pl, MODIKE_EVENT_P1_FAILED, noop_event, NULL, &error));
  g_assert_true (modike_register_event (pl, MODIKE_EVENT_P2_FAILED, noop_event, NULL, &error));
  g_assert_false (modike_register_event (pl, MODIKE_EVENT_P2_FAILED + 1, noop_event, NULL, &error));
  g_assert_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_false (modike_register_engine_start (pl, NULL, NULL, &error));
  g_assert_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_INVALID);
  modike_registry_free (reg);
}

/* ---- statistics ---- */

static void
test_percentiles (void)
{
  gint64 v[100];
  gint64 one = 7;

  for (guint i = 0; i < 100; i++)
    v[i] = i + 1;
  /* Nearest rank: the smallest value with at least q of them at or below. */
  g_assert_cmpint (lt_percentile (v, 100, 0.5), ==, 50);
  g_assert_cmpint (lt_percentile (v, 100, 0.9), ==, 90);
  g_assert_cmpint (lt_percentile (v, 100, 0.99), ==, 99);
  g_assert_cmpint (lt_percentile (v, 100, 1.0), ==, 100);
  g_assert_cmpint (lt_percentile (v, 10, 0.5), ==, 5);
  g_assert_cmpint (lt_percentile (v, 10, 0.99), ==, 10);
  g_assert_cmpint (lt_percentile (v, 3, 0.5), ==, 2);
  g_assert_cmpint (lt_percentile (&one, 1, 0.5), ==, 7);
  g_assert_cmpint (lt_percentile (NULL, 0, 0.5), ==, 0);
  g_assert_cmpstr (lt_cause_name (LT_FAIL_NO_PROPOSAL), ==, "no-proposal");
}

/* ---- runs ---- */

static void
run_ok (const char *pfs, gboolean hold)
{
  Params p = params_default ();
  g_autofree char *dir = g_dir_make_tmp ("loadtest-XXXXXX", NULL);
  g_autofree char *report = g_build_filename (dir, "report.json", NULL);
  g_autofree char *attrs = g_strdup_printf ("enable=\"yes\" peer=\"b\" count=\"50\" concurrency=\"8\" hold=\"%s\""
                                            " sources=\"192.0.2.10-192.0.2.25\" id-template=\"client%%u.example\""
                                            " report-file=\"%s\"", hold ? "yes" : "no", report);
  g_autofree char *json = NULL;
  Fx *fx;

  p.pfs = pfs;
  fx = fx_run (&p, &p, attrs, 600000);
  g_assert_cmpuint (fx->lt->ok, ==, 50);
  g_assert_cmpuint (fx->lt->failed, ==, 0);
  g_assert_cmpuint (fx->lt->started, ==, 50);
  g_assert_cmpuint (fx->lt->peak, ==, 8);
  g_assert_cmpuint (fx->lt->latency_us->len, ==, 50);
  g_assert_cmpuint (fx->b->p1_up, ==, 50);
  g_assert_cmpuint (fx->b->p2_up, ==, 50);
  g_assert_cmpuint (fx->a->p2_up, ==, 50);
  if (hold)
    {
      /* Round robin over the 16 sources. */
      g_autoptr (GHashTable) from = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);

      for (guint i = 0; i < fx->b->ike->sas->len; i++)
        {
          char buf[MODIKE_ADDR_STRLEN];
          ModikeAddr r = *modike_ike_sa_get_remote (g_ptr_array_index (fx->b->ike->sas, i));

          r.port = 0;
          g_hash_table_add (from, g_strdup (modike_addr_format (&r, buf, sizeof buf)));
        }
      g_assert_cmpuint (g_hash_table_size (from), ==, 16);
    }
  /* Let the DELETEs (if any) reach B. */
  net_run (fx->net, 2000, NULL, NULL);
  g_assert_cmpuint (modike_ike_count_sas (fx->a->ike, TRUE), ==, hold ? 50 : 0);
  g_assert_cmpuint (modike_ike_count_sas (fx->b->ike, TRUE), ==, hold ? 50 : 0);
  g_assert_true (g_file_get_contents (report, &json, NULL, NULL));
  g_assert_nonnull (strstr (json, "\"ok\": 50, \"failed\": 0"));
  g_assert_nonnull (strstr (json, "\"latency_ms\": {\"p50\": "));
  g_assert_nonnull (strstr (fx->lt->summary, "50 ok, 0 failed"));
  {
    g_autofree char *status = modike_ike_status (fx->a->ike);

    if (strstr (status, "PLUGIN loadtest started=50 ok=50 failed=0 in_flight=0 failed_timeout=0 "
                        "failed_no_proposal=0") == NULL)
      g_error ("no loadtest counters in: %s", status);
  }
  fx_free (fx);
  g_unlink (report);
  g_rmdir (dir);
}

static void
test_hold (void)
{
  run_ok ("none", TRUE);
}

static void
test_delete (void)
{
  run_ok ("none", FALSE);
}

static void
test_pfs (void)
{
  run_ok ("modp2048", FALSE);
}

/* Distinct identities reach B: it holds one SA per client. */
static void
test_identities (void)
{
  Params p = params_default ();
  Fx *fx = fx_run (&p, &p, "enable=\"yes\" peer=\"b\" count=\"5\" concurrency=\"5\" hold=\"yes\""
                   " id-template=\"user%u@example.org\"", 120000);
  g_autoptr (GHashTable) users = g_hash_table_new (g_str_hash, g_str_equal);

  g_assert_cmpuint (fx->lt->ok, ==, 5);
  g_assert_cmpuint (modike_ike_count_sas (fx->b->ike, TRUE), ==, 5);
  for (guint i = 0; i < fx->b->ike->sas->len; i++)
    g_hash_table_add (users, (gpointer) modike_ike_sa_get_user (g_ptr_array_index (fx->b->ike->sas, i)));
  g_assert_true (g_hash_table_contains (users, "user1@example.org"));
  g_assert_true (g_hash_table_contains (users, "user5@example.org"));
  g_assert_cmpuint (g_hash_table_size (users), ==, 5);
  fx_free (fx);
}

/* Held SAs are standalone: not rekeyed with the template peer, they go
 * at the end of their lifetime. */
static void
test_held_expire (void)
{
  Params p = params_default ();
  Fx *fx;

  p.p1_life = 120;
  p.p2_life = 120;
  fx = fx_run (&p, &p, "enable=\"yes\" peer=\"b\" count=\"5\" concurrency=\"5\" hold=\"yes\""
               " id-template=\"c%u.example\"", 60000);
  g_assert_cmpuint (fx->lt->ok, ==, 5);
  net_run (fx->net, 130000, NULL, NULL);
  g_assert_cmpuint (fx->a->p1_up, ==, 5);
  g_assert_cmpuint (modike_ike_count_sas (fx->a->ike, FALSE), ==, 0);
  g_assert_cmpuint (modike_ike_count_sas (fx->b->ike, FALSE), ==, 0);
  fx_free (fx);
}

static void
test_rate (void)
{
  Params p = params_default ();
  Fx *fx = fx_run (&p, &p, "enable=\"yes\" peer=\"b\" count=\"20\" concurrency=\"20\" rate=\"10\"", 600000);

  g_assert_cmpuint (fx->lt->ok, ==, 20);
  /* The 20th may start 1.9 s after the first. */
  g_assert_cmpint (fx->lt->t_end - fx->lt->t_start, >=, 1900000);
  g_assert_cmpint (fx->lt->t_end - fx->lt->t_start, <, 3000000);
  fx_free (fx);
}

/* Setup 1 loses its first message and waits one retransmit interval
 * (1 s); the others take no time on the harness's network. */
static void
test_latency (void)
{
  Params p = params_default ();
  Fx *fx;
  g_autofree char *json = NULL;

  fx_drop = 1;
  fx = fx_run (&p, &p, "enable=\"yes\" peer=\"b\" count=\"10\" concurrency=\"10\""
              " id-template=\"c%u.example\"", 600000);
  g_assert_cmpuint (fx->lt->ok, ==, 10);
  json = lt_report_json (fx->lt);
  g_assert_nonnull (strstr (json, "\"latency_ms\": {\"p50\": 0.000, \"p90\": 0.000, \"p99\": 1000.000, \"max\": 1000.000}"));
  g_assert_nonnull (strstr (fx->lt->summary, "p50 0.000 p90 0.000 p99 1000.000 max 1000.000"));
  fx_free (fx);
}

static void
test_fail_timeout (void)
{
  Params p = params_default ();
  Fx *fx;

  p.interval = 500;
  p.tries = 2;
  fx = fx_run (&p, NULL, "enable=\"yes\" peer=\"b\" count=\"10\" concurrency=\"4\"", 600000);
  g_assert_cmpuint (fx->lt->ok, ==, 0);
  g_assert_cmpuint (fx->lt->failed, ==, 10);
  g_assert_cmpuint (fx->lt->failures[LT_FAIL_TIMEOUT], ==, 10);
  g_assert_nonnull (strstr (fx->lt->summary, "timeout 10,"));
  fx_free (fx);
}

/* The plugin's own timeout, shorter than the engine's retransmits. */
static void
test_fail_own_timeout (void)
{
  Params p = params_default ();
  Fx *fx = fx_run (&p, NULL, "enable=\"yes\" peer=\"b\" count=\"3\" concurrency=\"3\" timeout=\"200\"", 600000);

  g_assert_cmpuint (fx->lt->failures[LT_FAIL_TIMEOUT], ==, 3);
  g_assert_cmpint (fx->lt->t_end - fx->lt->t_start, <, 1000000);
  g_assert_cmpuint (modike_ike_count_sas (fx->a->ike, FALSE), ==, 0);
  fx_free (fx);
}

static void
test_fail_no_proposal (void)
{
  Params pa = params_default (), pb = params_default ();
  Fx *fx;

  pb.encr = "aes256";
  fx = fx_run (&pa, &pb, "enable=\"yes\" peer=\"b\" count=\"10\" concurrency=\"4\"", 600000);
  g_assert_cmpuint (fx->lt->failed, ==, 10);
  g_assert_cmpuint (fx->lt->failures[LT_FAIL_NO_PROPOSAL], ==, 10);
  g_assert_cmpuint (sum_failures (fx->lt), ==, 10);
  fx_free (fx);
}

static void
test_fail_auth (void)
{
  Params pa = params_default (), pb = params_default ();
  Fx *fx;

  pb.psk_b = "wrong";
  fx = fx_run (&pa, &pb, "enable=\"yes\" peer=\"b\" count=\"10\" concurrency=\"4\" timeout=\"60000\"", 600000);
  g_assert_cmpuint (fx->lt->ok, ==, 0);
  g_assert_cmpuint (fx->lt->failed, ==, 10);
  g_assert_cmpuint (sum_failures (fx->lt), ==, 10);
  g_test_message ("wrong PSK: %s", fx->lt->summary);
  g_assert_cmpuint (fx->lt->failures[LT_FAIL_AUTH], ==, 10);
  fx_free (fx);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_log_set_always_fatal (G_LOG_LEVEL_CRITICAL);
  g_test_add_func ("/loadtest/refuses-without-enable", test_refuses_without_enable);
  g_test_add_func ("/loadtest/config-errors", test_config_errors);
  g_test_add_func ("/loadtest/percentiles", test_percentiles);
  g_test_add_func ("/loadtest/sdk-registrations", test_sdk_registrations);
  g_test_add_func ("/loadtest/hold", test_hold);
  g_test_add_func ("/loadtest/delete", test_delete);
  g_test_add_func ("/loadtest/pfs", test_pfs);
  g_test_add_func ("/loadtest/identities", test_identities);
  g_test_add_func ("/loadtest/held-expire", test_held_expire);
  g_test_add_func ("/loadtest/rate", test_rate);
  g_test_add_func ("/loadtest/latency", test_latency);
  g_test_add_func ("/loadtest/fail-timeout", test_fail_timeout);
  g_test_add_func ("/loadtest/fail-own-timeout", test_fail_own_timeout);
  g_test_add_func ("/loadtest/fail-no-proposal", test_fail_no_proposal);
  g_test_add_func ("/loadtest/fail-auth", test_fail_auth);
  return g_test_run ();
}
