/* Suite frag: two engines (the fsm harness) authenticating with the RSA
 * certificates of tests/vectors/certs, on a path that drops every IP
 * datagram larger than 576 bytes (the chains make Main Mode messages 5
 * and 6 larger). A is 192.0.2.2, B 192.0.2.1. */
#include "harness.h"
#include "natt.h"
#include "test-frag.h"

#include <string.h>

const ModikePluginDescriptor *modike_plugin_descriptor (void);

typedef struct {
  gboolean frag, natt;
  const char *options; /* <option> elements for the peer entry */
} Side;

typedef struct {
  Net *net;
  Node *a, *b;
  ModikePlugin *fa, *fb;
  gboolean mtu576;
  guint dropped_big, max_seen, fragments_seen;
} Fx;

static ModikePlugin *
add_plugins (Node *n, const Side *s)
{
  static const ModikePluginDescriptor natt_desc = { MODIKE_PLUGIN_DESCRIPTOR_INIT, .name = "natt", .version = "1" };
  g_autoptr (GError) error = NULL;
  ModikePlugin *frag = NULL;

  if (s->natt)
    {
      ModikePlugin *pl = modike_registry_add_plugin (n->reg, &natt_desc);

      g_assert_true (natt_init (pl, &error));
    }
  if (s->frag)
    {
      const ModikePluginDescriptor *desc = modike_plugin_descriptor ();

      frag = modike_registry_add_plugin (n->reg, desc);
      g_assert_true (desc->init (frag, &error));
    }
  g_assert_no_error (error);
  g_assert_true (modike_registry_check_table (n->reg, &error));
  g_assert_no_error (error);
  return frag;
}

/* The peer entry of cert_config_xml with `options` in front of <auth>. */
static char *
side_xml (const Side *s, gboolean is_a, const char *exchange)
{
  Params p = params_default ();
  g_autofree char *xml = NULL;
  g_auto (GStrv) parts = NULL;

  p.exchange = exchange;
  xml = cert_config_xml (&p, is_a, "rsa", is_a ? "client" : "gw", "ca.pem", NULL);
  parts = g_strsplit (xml, "<auth ", 2);
  g_assert_cmpuint (g_strv_length (parts), ==, 2);
  return g_strconcat (parts[0], s->options != NULL ? s->options : "", "<auth ", parts[1], NULL);
}

/* The path: IP (20) + UDP (8) + the marker on port 4500 (the harness
 * strips it) + the datagram; more than 576 is dropped. */
static FilterResult
path_filter (Net *net, guint n, Packet *pk, gpointer user)
{
  Fx *fx = user;
  gsize len = g_bytes_get_size (pk->data);
  const guint8 *d = g_bytes_get_data (pk->data, NULL);
  gsize ip = len + 28 + (pk->src.port == 4500 ? 4 : 0);

  if (len > 16 && d[16] == MODIKE_PL_FRAG)
    fx->fragments_seen++;
  if (fx->mtu576 && ip > 576)
    {
      fx->dropped_big++;
      return FILTER_DROP;
    }
  fx->max_seen = MAX (fx->max_seen, (guint) ip);
  return FILTER_PASS;
}

static Fx *
fx_new (const Side *sa, const Side *sb, gboolean mtu576, const char *exchange)
{
  Fx *fx = g_new0 (Fx, 1);
  g_autofree char *xa = side_xml (sa, TRUE, exchange), *xb = side_xml (sb, FALSE, exchange);

  fx->net = net_new ();
  fx->a = node_alloc (fx->net, "a", "192.0.2.2");
  fx->b = node_alloc (fx->net, "b", "192.0.2.1");
  fx->fa = add_plugins (fx->a, sa);
  fx->fb = add_plugins (fx->b, sb);
  node_configure (fx->a, xa);
  node_configure (fx->b, xb);
  fx->mtu576 = mtu576;
  fx->net->filter = path_filter;
  fx->net->filter_user = fx;
  return fx;
}

static void
fx_free (Fx *fx)
{
  net_free (fx->net);
  g_free (fx);
}

static gboolean
pred_failed (Net *net, gpointer user)
{
  Fx *fx = user;

  return fx->a->p1_failed > 0;
}

/* Without the plugin the chains never cross: A gives up on message 5. */
static void
test_without (void)
{
  Side none = { 0 };
  Fx *fx = fx_new (&none, &none, TRUE, "main");

  g_assert_true (modike_ike_initiate (fx->a->ike, "b", NULL));
  g_assert_true (net_run (fx->net, 120000, pred_failed, fx));
  g_assert_nonnull (fx->a->p1_error);
  g_assert_error (fx->a->p1_error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_TIMEOUT);
  g_assert_nonnull (strstr (fx->a->p1_error->message, "no answer to MM message 5"));
  g_assert_cmpuint (fx->dropped_big, >, 0);
  g_assert_cmpuint (fx->fragments_seen, ==, 0);
  fx_free (fx);
}

static void
assert_fragmented_up (Fx *fx)
{
  const FragStats *sa, *sb;

  g_assert_true (modike_ike_initiate (fx->a->ike, "b", NULL));
  g_assert_true (run_until_up (fx->net, fx->a, fx->b, 1, 60000));
  check_pair (fx->a, fx->b, 1);
  assert_no_failures (fx->a, fx->b);
  sa = frag_plugin_stats (fx->fa);
  sb = frag_plugin_stats (fx->fb);
  /* Both sent their certificate message in fragments, both put the
   * other's together; nothing was malformed or lost. */
  g_assert_cmpuint (sa->sent_messages, >=, 1);
  g_assert_cmpuint (sb->sent_messages, >=, 1);
  g_assert_cmpuint (sa->reassembled, ==, sb->sent_messages);
  g_assert_cmpuint (sb->reassembled, ==, sa->sent_messages);
  g_assert_cmpuint (sa->malformed + sb->malformed + sa->overlapping + sb->overlapping, ==, 0);
  g_assert_cmpuint (fx->max_seen, <=, 576);
  g_assert_cmpuint (fx->fragments_seen, ==, sa->sent_fragments + sb->sent_fragments);
}

static void
test_with (gconstpointer data)
{
  Side both = { .frag = TRUE };
  Fx *fx = fx_new (&both, &both, TRUE, data);

  assert_fragmented_up (fx);
  g_assert_cmpuint (fx->dropped_big, ==, 0);
  fx_free (fx);
}

/* NAT-T forced: from message 5 on both go on port 4500, each fragment
 * with the non-ESP marker (the harness checks it), which counts against
 * the 576 bytes. */
static void
test_natt (void)
{
  Side both = { .frag = TRUE, .natt = TRUE, .options = "<option name=\"natt.force\" value=\"yes\"/>" };
  Fx *fx = fx_new (&both, &both, TRUE, "main");

  assert_fragmented_up (fx);
  g_assert_cmpuint (modike_ike_sa_get_local (only_sa (fx->a))->port, ==, 4500);
  g_assert_cmpuint (modike_ike_sa_get_remote (only_sa (fx->b))->port, ==, 4500);
  g_assert_cmpuint (fx->dropped_big, ==, 0);
  fx_free (fx);
}

/* Whole messages first; only the resend of one that went unanswered is
 * split. */
static void
test_after_retransmit (void)
{
  Side both = { .frag = TRUE, .options = "<option name=\"frag.after-retransmit\" value=\"yes\"/>" };
  Fx *fx = fx_new (&both, &both, TRUE, "main");

  assert_fragmented_up (fx);
  g_assert_cmpuint (fx->dropped_big, ==, 2); /* MM5 and MM6, once each */
  g_assert_cmpuint (fx->a->ike->stats.retransmits + fx->b->ike->stats.retransmits, >=, 2);
  fx_free (fx);
}

/* B has no plugin, so sends no VID: A (mode yes) sends no fragment, and
 * the path (no MTU limit here) carries the whole messages. */
static void
test_one_side (void)
{
  Side a = { .frag = TRUE }, none = { 0 };
  Fx *fx = fx_new (&a, &none, FALSE, "main");

  g_assert_true (modike_ike_initiate (fx->a->ike, "b", NULL));
  g_assert_true (run_until_up (fx->net, fx->a, fx->b, 1, 60000));
  g_assert_cmpuint (frag_plugin_stats (fx->fa)->sent_fragments, ==, 0);
  g_assert_cmpuint (fx->fragments_seen, ==, 0);
  g_assert_cmpuint (fx->max_seen, >, 576);
  fx_free (fx);
}

/* force: fragments without the peer's VID (which here cannot read them). */
static void
test_one_side_force (void)
{
  Side a = { .frag = TRUE, .options = "<option name=\"frag.mode\" value=\"force\"/>" }, none = { 0 };
  Fx *fx = fx_new (&a, &none, FALSE, "main");

  g_assert_true (modike_ike_initiate (fx->a->ike, "b", NULL));
  net_run (fx->net, 5000, NULL, NULL);
  g_assert_cmpuint (frag_plugin_stats (fx->fa)->sent_fragments, >, 0);
  g_assert_cmpuint (fx->fragments_seen, >, 0);
  fx_free (fx);
}

/* mode no: never a fragment, so the small path fails as without. */
static void
test_mode_no (void)
{
  Side both = { .frag = TRUE, .options = "<option name=\"frag.mode\" value=\"no\"/>" };
  Fx *fx = fx_new (&both, &both, TRUE, "main");

  g_assert_true (modike_ike_initiate (fx->a->ike, "b", NULL));
  g_assert_true (net_run (fx->net, 120000, pred_failed, fx));
  g_assert_error (fx->a->p1_error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_TIMEOUT);
  g_assert_cmpuint (fx->fragments_seen, ==, 0);
  fx_free (fx);
}

/* A partial message goes on the engine's clock: a third of a message
 * reaches B; at 29 s it is still held; at 31 s phase 1 starts, its first
 * datagram finds it expired (counted) and nothing of it reached the
 * parser. */
static void
test_engine_timeout (void)
{
  Side both = { .frag = TRUE };
  Fx *fx = fx_new (&both, &both, FALSE, "main");
  guint8 msg[1200] = { 1, 2, 3, 4, 5, 6, 7, 8 };
  g_autoptr (GPtrArray) parts = NULL;
  GBytes *first;

  msg[16] = MODIKE_PL_SA, msg[17] = 0x10, msg[18] = MODIKE_EX_MAIN;
  msg[26] = sizeof msg >> 8, msg[27] = sizeof msg & 0xff;
  parts = frag_split (msg, sizeof msg, 500, FRAG_ID);
  first = g_ptr_array_index (parts, 0);
  modike_ike_receive (fx->b->ike, &fx->b->addr, &fx->a->addr, g_bytes_get_data (first, NULL),
                      g_bytes_get_size (first));
  g_assert_cmpuint (frag_plugin_stats (fx->fb)->received, ==, 1);
  g_assert_cmpuint (fx->b->ike->stats.rx_garbage, ==, 0);
  /* At 29 s another datagram (junk for the parser) finds it still there. */
  net_run (fx->net, 29000, NULL, NULL);
  modike_ike_receive (fx->b->ike, &fx->b->addr, &fx->a->addr, msg, 40);
  g_assert_cmpuint (frag_plugin_stats (fx->fb)->timed_out, ==, 0);
  net_run (fx->net, 2000, NULL, NULL);
  g_assert_true (modike_ike_initiate (fx->a->ike, "b", NULL));
  g_assert_true (run_until_up (fx->net, fx->a, fx->b, 1, 60000));
  g_assert_cmpuint (frag_plugin_stats (fx->fb)->timed_out, ==, 1);
  g_assert_cmpuint (frag_plugin_stats (fx->fb)->reassembled, ==, frag_plugin_stats (fx->fa)->sent_messages);
  g_assert_cmpuint (fx->b->ike->stats.rx_garbage, ==, 1); /* the junk only */
  fx_free (fx);
}

/* The peer's VID with a capability word: only the IKE bit (0x80000000)
 * turns fragments on in mode yes; 16 bytes alone do too. B's VID is
 * rewritten in its MM2 to each form in turn. */
typedef struct {
  Fx *fx;
  guint8 cap[4];
  gboolean strip; /* 16-byte form as sent: leave it */
} VidCase;

static FilterResult
vid_rewrite (Net *net, guint n, Packet *pk, gpointer user)
{
  VidCase *vc = user;
  gsize len;
  const guint8 *d = g_bytes_get_data (pk->data, &len);
  const guint8 *hit = memmem (d, len, frag_vid, sizeof frag_vid);
  GByteArray *out;
  gsize at;

  if (hit == NULL || pk->to != vc->fx->a || vc->strip)
    return path_filter (net, n, pk, vc->fx);
  /* Grow the VID payload by the 4 bytes after its 16. */
  at = (gsize) (hit - d);
  out = g_byte_array_new ();
  g_byte_array_append (out, d, (guint) (at + sizeof frag_vid));
  g_byte_array_append (out, vc->cap, 4);
  g_byte_array_append (out, d + at + sizeof frag_vid, (guint) (len - at - sizeof frag_vid));
  modike_patch_u16 (out, at - 2, (guint16) (sizeof frag_vid + 8));
  modike_patch_u16 (out, 26, (guint16) out->len);
  g_bytes_unref (pk->data);
  pk->data = g_byte_array_free_to_bytes (out);
  return path_filter (net, n, pk, vc->fx);
}

static void
vid_case (const guint8 cap[4], gboolean strip, gboolean want_fragments)
{
  Side both = { .frag = TRUE };
  VidCase vc = { .strip = strip };

  vc.fx = fx_new (&both, &both, FALSE, "main");
  memcpy (vc.cap, cap, 4);
  vc.fx->net->filter = vid_rewrite;
  vc.fx->net->filter_user = &vc;
  g_assert_true (modike_ike_initiate (vc.fx->a->ike, "b", NULL));
  g_assert_true (run_until_up (vc.fx->net, vc.fx->a, vc.fx->b, 1, 60000));
  g_assert_cmpuint (frag_plugin_stats (vc.fx->fa)->sent_messages > 0, ==, want_fragments);
  fx_free (vc.fx);
}

static void
test_vid_forms (void)
{
  static const guint8 ike[4] = { 0x80, 0, 0, 0 }, cisco[4] = { 0xc0, 0, 0, 0 }, base[4] = { 0x40, 0, 0, 0 };

  vid_case (ike, TRUE, TRUE);      /* 16 bytes, as we send it */
  vid_case (ike, FALSE, TRUE);     /* strongSwan, racoon */
  vid_case (cisco, FALSE, TRUE);   /* Cisco */
  vid_case (base, FALSE, FALSE);   /* base ISAKMP only: not Main Mode */
}

/* A config with the <frag> section checked and applied as the daemon
 * does: the plugin's schema, then its apply. */
static gboolean
apply_section (Fx *fx, Node *n, const char *section, GError **error)
{
  Side s = { 0 };
  g_autofree char *xml = side_xml (&s, n == fx->a, "main");
  g_auto (GStrv) tail = g_strsplit (xml, "</modike>", 2);
  g_autofree char *full = g_strconcat (tail[0], section, "</modike>", tail[1], NULL);
  g_autoptr (GHashTable) fragments = modike_registry_config_fragments (n->reg);
  ModikeConfig *cfg = modike_config_load_string (full, n->name, error);
  gboolean ok;

  if (cfg == NULL)
    return FALSE;
  ok = modike_config_check_plugins (cfg, fragments, error) && modike_registry_apply_config (n->reg, cfg, error);
  modike_config_free (cfg);
  return ok;
}

/* Bad sections are refused naming the attribute; a good one takes
 * effect: force with size 1280 splits A's 2 KB message 5 for a peer
 * without the plugin, in fragments that all fit 1280 bytes. */
static void
test_section (void)
{
  static const char *const bad[] = {
    "<frag mode=\"maybe\"/>", "<frag size=\"100\"/>", "<frag max-fragments=\"1\"/>",
    "<frag timeout=\"0\"/>", "<frag max-size=\"10\"/>", "<frag colour=\"red\"/>",
  };
  Side a = { .frag = TRUE }, none = { 0 };
  Fx *fx = fx_new (&a, &none, FALSE, "main");

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr (GError) error = NULL;

      g_assert_false (apply_section (fx, fx->a, bad[i], &error));
      g_assert_nonnull (error);
      g_test_message ("%s: %s", bad[i], error->message);
    }
  {
    g_autoptr (GError) error = NULL;

    g_assert_true (apply_section (fx, fx->a, "<frag mode=\"force\" size=\"1280\" max-fragments=\"64\"/>", &error));
    g_assert_no_error (error);
  }
  g_assert_true (modike_ike_initiate (fx->a->ike, "b", NULL));
  net_run (fx->net, 3000, NULL, NULL);
  g_assert_cmpuint (frag_plugin_stats (fx->fa)->sent_messages, >=, 1);
  g_assert_cmpuint (frag_plugin_stats (fx->fa)->sent_fragments, ==, 2 * frag_plugin_stats (fx->fa)->sent_messages);
  g_assert_cmpuint (fx->max_seen, <=, 1280);
  g_assert_cmpuint (fx->max_seen, >, 576);
  fx_free (fx);
}

void
frag_add_engine_tests (void)
{
  g_test_add_func ("/frag/engines/section", test_section);
  g_test_add_func ("/frag/engines/timeout", test_engine_timeout);
  g_test_add_func ("/frag/engines/vid-forms", test_vid_forms);
  g_test_add_func ("/frag/engines/mtu576/without", test_without);
  g_test_add_data_func ("/frag/engines/mtu576/main", "main", test_with);
  g_test_add_data_func ("/frag/engines/mtu576/aggressive", "aggressive", test_with);
  g_test_add_func ("/frag/engines/mtu576/natt", test_natt);
  g_test_add_func ("/frag/engines/mtu576/after-retransmit", test_after_retransmit);
  g_test_add_func ("/frag/engines/mtu576/mode-no", test_mode_no);
  g_test_add_func ("/frag/engines/one-side", test_one_side);
  g_test_add_func ("/frag/engines/one-side-force", test_one_side_force);
}
