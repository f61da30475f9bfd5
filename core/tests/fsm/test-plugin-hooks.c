/* Suite fsm: Plugin hooks into the core exchanges: a NAT-T look-alike registered in
 * the test (vendor ID, payload claims, builders, encapsulation modes). */
#include "harness.h"

/* ---- plugin hooks: a NAT-T look-alike registered in the test ---- */

typedef struct {
  guint vids, natd_claims, builds, floated_sends;
} FakeNatt;

static const guint8 fake_vid[] = "modike-test-vid";
static FakeNatt fake_counts[2];

static void
fake_on_vid (ModikeIkeSa *sa, const guint8 *vid, gsize len, gpointer user)
{
  ((FakeNatt *) user)->vids++;
}

static gboolean
fake_build_natd (ModikeExchange *x, ModikeBuilder *b, gpointer user, GError **error)
{
  guint8 h[20];

  memset (h, 0x5a, sizeof h);
  modike_builder_add (b, MODIKE_PL_NAT_D, h, sizeof h);
  modike_builder_add (b, MODIKE_PL_NAT_D, h, sizeof h);
  ((FakeNatt *) user)->builds++;
  return TRUE;
}

static ModikeVerdict
fake_on_natd (ModikeExchange *x, const ModikeMessage *msg, const ModikePayload *const *payloads, guint n,
              gpointer user, GError **error)
{
  ModikeIkeSa *sa = modike_exchange_get_sa (x);

  g_assert_cmpuint (n, ==, 2);
  ((FakeNatt *) user)->natd_claims++;
  modike_ike_sa_set_plugin_data (sa, "fakenatt", GINT_TO_POINTER (1), NULL);
  if (modike_ike_sa_get_role (sa) == MODIKE_ROLE_INITIATOR)
    modike_ike_sa_float (sa, 4500);
  return MODIKE_V_OK;
}

static guint16
fake_encap_out (ModikeIkeSa *sa, guint16 mode, gpointer user)
{
  return modike_ike_sa_get_plugin_data (sa, "fakenatt") != NULL ? mode + 2 : mode;
}

static gboolean
fake_encap_in (ModikeIkeSa *sa, guint16 value, guint16 *mode, gboolean *udp, gpointer user)
{
  if (value != MODIKE_ENCAP_UDP_TUNNEL && value != MODIKE_ENCAP_UDP_TRANSPORT)
    return FALSE;
  *mode = value - 2;
  *udp = TRUE;
  return TRUE;
}

static const ModikeEncapOps fake_encap = { fake_encap_out, fake_encap_in };
static const ModikePluginDescriptor fake_desc = {
  MODIKE_PLUGIN_DESCRIPTOR_INIT,
  .name = "fakenatt",
  .version = "0",
};

static void
fake_natt_register (Node *n, FakeNatt *counts, gboolean aggressive)
{
  static const ModikeMsgPoint mm[] = { { MODIKE_EX_MAIN, 3 }, { MODIKE_EX_MAIN, 4 } };
  static const ModikeMsgPoint am[] = { { MODIKE_EX_AGGRESSIVE, 2 }, { MODIKE_EX_AGGRESSIVE, 3 } };
  const ModikeMsgPoint *pts = aggressive ? am : mm;
  ModikePlugin *pl = modike_registry_add_plugin (n->reg, &fake_desc);
  g_autoptr (GError) error = NULL;

  g_assert_nonnull (pl);
  g_assert_true (modike_register_vendor_id (pl, "test", fake_vid, sizeof fake_vid, MODIKE_VID_SEND, fake_on_vid,
                                            counts, &error));
  g_assert_true (modike_register_payload (pl, MODIKE_PL_NAT_D, pts, 2, 2, fake_on_natd, counts, &error));
  g_assert_true (modike_register_builder (pl, pts[0], fake_build_natd, counts, &error));
  g_assert_true (modike_register_builder (pl, pts[1], fake_build_natd, counts, &error));
  g_assert_true (modike_register_encap (pl, &fake_encap, counts, &error));
  g_assert_no_error (error);
  g_assert_true (modike_registry_check_table (n->reg, &error));
}

static FilterResult
filter_count_float (Net *net, guint n, Packet *pk, gpointer user)
{
  if (pk->src.port == 4500)
    {
      g_assert_cmpuint (pk->dst.port, ==, 4500);
      (*(guint *) user)++;
    }
  return FILTER_PASS;
}

static void
test_plugin_hooks (gconstpointer data)
{
  gboolean aggressive = GPOINTER_TO_INT (data);
  Params p = params_default ();
  Node *a, *b;
  Net *net;
  guint floated = 0;
  g_autoptr (GPtrArray) entries = NULL;
  g_autofree char *status = NULL;

  memset (fake_counts, 0, sizeof fake_counts);
  p.exchange = aggressive ? "aggressive" : "main";
  p.pfs = "modp2048";
  net = pair_new (&p, &a, &b);
  fake_natt_register (a, &fake_counts[0], aggressive);
  fake_natt_register (b, &fake_counts[1], aggressive);
  net->filter = filter_count_float;
  net->filter_user = &floated;
  bring_up (net, a, b, 1);
  check_pair (a, b, 1);
  /* Vendor IDs in the first message of each side, NAT-D both ways. */
  g_assert_cmpuint (fake_counts[0].vids, ==, 1);
  g_assert_cmpuint (fake_counts[1].vids, ==, 1);
  g_assert_cmpuint (fake_counts[0].builds, ==, 1);
  g_assert_cmpuint (fake_counts[1].builds, ==, 1);
  g_assert_cmpuint (fake_counts[0].natd_claims, ==, 1);
  g_assert_cmpuint (fake_counts[1].natd_claims, ==, 1);
  /* From MM5/AM3 on everything runs on 4500: MM5, MM6, QM 1-3 (AM3, QM 1-3). */
  g_assert_cmpuint (floated, ==, aggressive ? 4 : 5);
  g_assert_true (only_sa (a)->floated && only_sa (b)->floated);
  g_assert_cmpuint (only_sa (b)->remote.port, ==, 4500);
  entries = modike_sad_entries (modike_ike_get_sad (a->ike));
  for (guint i = 0; i < entries->len; i++)
    {
      const ModikeSadEntry *e = g_ptr_array_index (entries, i);

      g_assert_true (e->udp_encap);
      g_assert_cmpuint (e->encap_sport, ==, 4500);
      g_assert_cmpuint (e->encap_dport, ==, 4500);
      g_assert_cmpint (e->mode, ==, MODIKE_MODE_TUNNEL);
    }
  status = modike_ike_status (b->ike);
  g_assert_nonnull (strstr (status, " tunnel udp-encap pfs=modp2048 "));
  net_free (net);
}

void
fsm_add_plugin_hook_tests (void)
{
  g_test_add_data_func ("/fsm/plugin-hooks/main", GINT_TO_POINTER (FALSE), test_plugin_hooks);
  g_test_add_data_func ("/fsm/plugin-hooks/aggressive", GINT_TO_POINTER (TRUE), test_plugin_hooks);
}
