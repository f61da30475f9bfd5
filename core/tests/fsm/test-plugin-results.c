/* Suite fsm: what the SDK gives the XAuth and mode config plugins to come:
 * a phase 1 auth method a test plugin registers and negotiates, attribute
 * claims with typed decoding, and results (address, routes, DNS) on a
 * virtual adapter that follows the IKE SA's life. */
#include "harness.h"

/* ---- a test plugin: an XAuth-like auth method and mode-config-like
 * attribute claims ---- */

typedef struct {
  guint established;
  gboolean local;            /* as the last call said */
  guint16 method;
  GPtrArray *seen;           /* char*: attributes handled, "type:what" */
  gboolean refuse;           /* the handler fails */
  gboolean fail_sa;          /* established: the SA fails at once */
  gboolean hold;             /* established: phase 2 held */
  ModikePlugin *plugin;
  guint p1_up, p1_down;      /* events */
  guint authenticated;       /* MODIKE_EVENT_AUTHENTICATED */
} FakeAuth;

static void
fa_established (ModikeIkeSa *sa, guint16 method, gboolean local, gpointer user)
{
  FakeAuth *fa = user;

  fa->established++;
  fa->local = local;
  fa->method = method;
  g_assert_cmpuint (modike_ike_sa_get_auth_method (sa), ==, method);
  if (fa->hold)
    modike_ike_sa_hold_phase2 (sa, fa->plugin);
  if (fa->fail_sa)
    {
      g_autoptr (GError) error = g_error_new (MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_AUTH, "no extended authentication");

      modike_ike_sa_fail (sa, error);
    }
}

static void
fa_event (ModikeEventType ev, ModikeIkeSa *sa, const ModikeSadEntry *child, gpointer user)
{
  FakeAuth *fa = user;

  if (ev == MODIKE_EVENT_P1_UP)
    fa->p1_up++;
  else if (ev == MODIKE_EVENT_AUTHENTICATED)
    {
      /* After P1_UP, and the SA says so too. */
      g_assert_cmpuint (fa->p1_up, >, fa->authenticated);
      g_assert_true (modike_ike_sa_is_authenticated (sa));
      fa->authenticated++;
    }
  else
    fa->p1_down++;
}

static const ModikePluginDescriptor fake_auth_desc = {
  MODIKE_PLUGIN_DESCRIPTOR_INIT,
  .name = "fakexauth",
  .version = "0",
};

/* Registers xauth-psk (65001, PSK, initiator authenticated) and
 * xauth-rsa (65005, RSA based) on the node. */
static void
fake_auth_register (Node *n, FakeAuth *fa)
{
  ModikePlugin *pl = modike_registry_add_plugin (n->reg, &fake_auth_desc);
  g_autoptr (GError) error = NULL;

  fa->plugin = pl;
  g_assert_true (modike_register_auth_method (pl, MODIKE_AUTH_XAUTH_INIT_PSK, "xauth-psk", MODIKE_AUTH_PSK,
                                              MODIKE_ROLE_INITIATOR, fa_established, fa, &error));
  g_assert_true (modike_register_auth_method (pl, MODIKE_AUTH_XAUTH_INIT_RSA, "xauth-rsa", MODIKE_AUTH_RSA_SIG,
                                              MODIKE_ROLE_INITIATOR, fa_established, fa, &error));
  g_assert_true (modike_register_event (pl, MODIKE_EVENT_P1_UP, fa_event, fa, &error));
  g_assert_true (modike_register_event (pl, MODIKE_EVENT_P1_DOWN, fa_event, fa, &error));
  g_assert_true (modike_register_event (pl, MODIKE_EVENT_AUTHENTICATED, fa_event, fa, &error));
  g_assert_no_error (error);
}

/* config_xml with the peer's <auth method> replaced (NULL: psk). */
static char *
auth_xml (const Params *p, gboolean is_a, const char *method)
{
  g_autofree char *xml = config_xml (p, is_a);
  g_autofree char *want = g_strdup_printf ("method=\"%s\"", method != NULL ? method : "psk");
  g_auto (GStrv) parts = g_strsplit (xml, "method=\"psk\"", -1);

  g_assert_cmpuint (g_strv_length (parts), ==, 2);
  return g_strjoinv (want, parts);
}

/* A and B with the fake auth plugin where asked and the given methods. */
static Net *
auth_pair_new (const Params *p, FakeAuth *fa, FakeAuth *fb, const char *method_a, const char *method_b, Node **a,
               Node **b)
{
  Net *net = net_new ();
  g_autofree char *xa = auth_xml (p, TRUE, method_a);
  g_autofree char *xb = auth_xml (p, FALSE, method_b);

  *a = node_alloc (net, "a", "192.0.2.2");
  *b = node_alloc (net, "b", "192.0.2.1");
  if (fa != NULL)
    fake_auth_register (*a, fa);
  if (fb != NULL)
    fake_auth_register (*b, fb);
  node_configure (*a, xa);
  node_configure (*b, xb);
  return net;
}

/* The SA payload of A's first message carries `method` in every transform. */
static FilterResult
filter_offer (Net *net, guint n, Packet *pk, gpointer user)
{
  guint *method = user;
  g_autoptr (ModikeMessage) msg = NULL;
  g_autoptr (ModikeSaPayload) sa = NULL;
  const ModikePayload *pl;
  const ModikeProposal *prop;

  if (n != 1)
    return FILTER_PASS;
  msg = modike_message_parse (pk->data, NULL);
  g_assert_nonnull (msg);
  pl = modike_message_find (msg, MODIKE_PL_SA);
  g_assert_nonnull (pl);
  sa = modike_sa_payload_parse (pl->body, pl->len, NULL);
  g_assert_nonnull (sa);
  prop = g_ptr_array_index (sa->proposals, 0);
  g_assert_cmpuint (prop->transforms->len, >, 0);
  for (guint i = 0; i < prop->transforms->len; i++)
    {
      const ModikeTransform *t = g_ptr_array_index (prop->transforms, i);
      const ModikeAttr *auth = modike_attrs_find (t->attrs, MODIKE_P1_AUTH);

      g_assert_nonnull (auth);
      *method = auth->value;
    }
  return FILTER_PASS;
}

static void
test_auth_method (void)
{
  Params p = params_default ();
  FakeAuth fa = { 0 }, fb = { 0 };
  Node *a, *b;
  Net *net;
  guint offered = 0;

  net = auth_pair_new (&p, &fa, &fb, "xauth-psk", "xauth-psk", &a, &b);
  net->filter = filter_offer;
  net->filter_user = &offered;
  bring_up (net, a, b, 1);
  check_pair (a, b, 1);
  assert_no_failures (a, b);
  g_assert_cmpuint (offered, ==, MODIKE_AUTH_XAUTH_INIT_PSK);
  /* Both ends remember the method and its owner; the initiator is the
   * side XAUTHInitPreShared authenticates further. */
  g_assert_cmpuint (modike_ike_sa_get_auth_method (only_sa (a)), ==, 65001);
  g_assert_cmpuint (modike_ike_sa_get_auth_method (only_sa (b)), ==, 65001);
  g_assert_cmpstr (modike_ike_sa_get_auth_owner (only_sa (a)), ==, "fakexauth");
  g_assert_cmpstr (modike_ike_sa_get_auth_owner (only_sa (b)), ==, "fakexauth");
  g_assert_true (modike_ike_sa_auth_is_local (only_sa (a)));
  g_assert_false (modike_ike_sa_auth_is_local (only_sa (b)));
  g_assert_cmpuint (fa.established, ==, 1);
  g_assert_cmpuint (fb.established, ==, 1);
  g_assert_true (fa.local);
  g_assert_false (fb.local);
  g_assert_cmpuint (fb.method, ==, 65001);
  /* The extended step is the plugin's: not authenticated in full until it
   * says so, then once. */
  g_assert_cmpuint (fa.authenticated + fb.authenticated, ==, 0);
  g_assert_false (modike_ike_sa_is_authenticated (only_sa (a)));
  /* Who the peer is: its phase 1 ID until the method's plugin names it. */
  g_assert_nonnull (modike_ike_sa_get_user (only_sa (a)));
  g_assert_cmpstr (modike_ike_sa_get_user (only_sa (a)), !=, "");
  modike_ike_sa_set_user (only_sa (b), "alice");
  g_assert_cmpstr (modike_ike_sa_get_user (only_sa (b)), ==, "alice");
  modike_ike_sa_auth_done (only_sa (a));
  modike_ike_sa_auth_done (only_sa (a));
  g_assert_cmpuint (fa.authenticated, ==, 1);
  g_assert_cmpuint (fb.authenticated, ==, 0);
  net_free (net);

  /* Plain PSK: the core's method, no plugin call. */
  memset (&fa, 0, sizeof fa);
  net = auth_pair_new (&p, &fa, NULL, NULL, NULL, &a, &b);
  bring_up (net, a, b, 1);
  g_assert_cmpuint (modike_ike_sa_get_auth_method (only_sa (b)), ==, MODIKE_AUTH_PSK);
  g_assert_cmpstr (modike_ike_sa_get_auth_owner (only_sa (b)), ==, "core");
  g_assert_false (modike_ike_sa_auth_is_local (only_sa (a)));
  g_assert_cmpuint (fa.established, ==, 0);
  /* The core's method: authenticated in full with phase 1. */
  g_assert_cmpuint (fa.authenticated, ==, 1);
  g_assert_true (modike_ike_sa_is_authenticated (only_sa (b)));
  net_free (net);
}

/* A offers 65001 only; B picks it only when its config asks for it. */
static void
assert_refused_offer (FakeAuth *fb, const char *method_b)
{
  Params p = params_default ();
  FakeAuth fa = { 0 };
  Node *a, *b;
  Net *net = auth_pair_new (&p, &fa, fb, "xauth-psk", method_b, &a, &b);

  g_assert_true (modike_ike_initiate (a->ike, "b", NULL));
  net_run (net, 5000, NULL, NULL);
  g_assert_cmpuint (a->p1_failed, ==, 1);
  g_assert_error (a->p1_error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_NO_PROPOSAL_CHOSEN);
  g_assert_nonnull (strstr (a->p1_error->message, "NO_PROPOSAL_CHOSEN"));
  g_assert_cmpuint (b->p1_failed, ==, 1);
  g_assert_error (b->p1_error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_NO_PROPOSAL_CHOSEN);
  g_assert_cmpuint (a->p1_up + b->p1_up + fa.established, ==, 0);
  assert_no_sas (a);
  assert_no_sas (b);
  net_free (net);
}

static void
test_auth_method_refused (void)
{
  Params p = params_default ();
  FakeAuth fb = { 0 };
  Net *net = net_new ();
  Node *b = node_alloc (net, "b", "192.0.2.1");
  g_autofree char *xml = auth_xml (&p, FALSE, "xauth-psk");
  g_autoptr (ModikeConfig) cfg = modike_config_load_string (xml, "b.xml", NULL);
  g_autoptr (GError) error = NULL;

  /* Without the plugin the method is unknown: the config is refused,
   * naming it with file and line. */
  g_assert_nonnull (cfg);
  g_assert_false (modike_ike_set_config (b->ike, cfg, &error));
  g_assert_error (error, MODIKE_CONFIG_ERROR, MODIKE_CONFIG_ERROR_INVALID);
  g_assert_cmpstr (error->message, ==,
                   "b.xml:6: <auth>: unknown auth method 'xauth-psk' (psk, or a method of a loaded plugin)");
  net_free (net);

  /* B without the plugin (so with psk), B with it but asking for psk. */
  assert_refused_offer (NULL, NULL);
  assert_refused_offer (&fb, NULL);
  g_assert_cmpuint (fb.established, ==, 0);
}

/* The method's owner fails the SA from its established call: phase 1
 * never counts as up (no P1_UP after the P1_DOWN, for plugins or the
 * observer), no Quick Mode starts. */
static void
test_auth_method_fail_established (void)
{
  Params p = params_default ();
  FakeAuth fa = { 0 }, fb = { 0 };
  Node *a, *b;
  Net *net = auth_pair_new (&p, &fa, &fb, "xauth-psk", "xauth-psk", &a, &b);

  fa.fail_sa = TRUE;
  g_assert_true (modike_ike_initiate (a->ike, "b", NULL));
  net_run (net, 5000, NULL, NULL);
  g_assert_cmpuint (fa.established, ==, 1);
  g_assert_cmpuint (a->p1_failed, ==, 1);
  g_assert_error (a->p1_error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_AUTH);
  g_assert_cmpuint (fa.p1_up, ==, 0);
  g_assert_cmpuint (a->p1_up, ==, 0);
  g_assert_cmpuint (a->ike->stats.tx_packets, ==, 4); /* MM1, MM3, MM5, DELETE */
  assert_no_sas (a);
  assert_no_sas (b);
  g_assert_cmpuint (b->p2_failed + b->p2_up, ==, 0);
  net_free (net);
}

/* The method's owner holds phase 2 from its established call: the Quick
 * Mode pending on the new SA waits at the gate (nothing is sent) until
 * the owner releases it. */
static void
test_auth_method_hold (void)
{
  Params p = params_default ();
  FakeAuth fa = { 0 }, fb = { 0 };
  Node *a, *b;
  Net *net = auth_pair_new (&p, &fa, &fb, "xauth-psk", "xauth-psk", &a, &b);
  guint64 sent;

  fa.hold = TRUE;
  g_assert_true (modike_ike_initiate (a->ike, "b", NULL));
  net_run (net, 5000, NULL, NULL);
  g_assert_cmpuint (a->p1_up, ==, 1);
  g_assert_cmpuint (engine_gate_n_waiting (only_sa (a)), ==, 1);
  g_assert_cmpuint (a->ike->stats.tx_packets, ==, 3); /* MM1, MM3, MM5 */
  sent = a->ike->stats.tx_packets;
  modike_ike_sa_release_phase2 (only_sa (a), fa.plugin);
  g_assert_true (run_until_up (net, a, b, 1, 5000));
  g_assert_cmpuint (a->ike->stats.tx_packets, >, sent);
  assert_no_failures (a, b);
  net_free (net);
}

/* An RSA based plugin method runs phase 1 with the core's certificates
 * and signatures, then calls its owner. */
static Net *
auth_rsa_pair_new (const Params *p, FakeAuth *fa, FakeAuth *fb, Node **a, Node **b)
{
  Net *net = net_new ();
  g_autofree char *xa = cert_config_xml (p, TRUE, "xauth-rsa", "client", "ca.pem", NULL);
  g_autofree char *xb = cert_config_xml (p, FALSE, "xauth-rsa", "gw", "ca.pem", NULL);

  *a = node_alloc (net, "a", "192.0.2.2");
  *b = node_alloc (net, "b", "192.0.2.1");
  fake_auth_register (*a, fa);
  if (fb != NULL)
    fake_auth_register (*b, fb);
  node_configure (*a, xa);
  if (fb != NULL)
    node_configure (*b, xb);
  return net;
}

static void
test_auth_method_rsa (void)
{
  Params p = params_default ();
  FakeAuth fa = { 0 }, fb = { 0 };
  Node *a, *b;
  Net *net = auth_rsa_pair_new (&p, &fa, &fb, &a, &b);

  bring_up (net, a, b, 1);
  check_pair (a, b, 1);
  assert_no_failures (a, b);
  g_assert_cmpuint (modike_ike_sa_get_auth_method (only_sa (a)), ==, MODIKE_AUTH_XAUTH_INIT_RSA);
  g_assert_cmpuint (modike_ike_sa_get_auth_method (only_sa (b)), ==, MODIKE_AUTH_XAUTH_INIT_RSA);
  g_assert_cmpstr (modike_ike_sa_get_auth_owner (only_sa (a)), ==, "fakexauth");
  g_assert_cmpuint (fa.established, ==, 1);
  g_assert_cmpuint (fb.established, ==, 1);
  g_assert_true (fa.local);
  g_assert_false (fb.local);
  net_free (net);
}

/* The responder side of a mismatch: A's plugin puts 65005 on a PSK (as a
 * buggy or future peer might), B's config asks for RSA based 65005: the
 * keys differ (SKEYID from the PSK against SKEYID from the nonces), so
 * B cannot even decrypt message 5. */
static void
fa_established_noop (ModikeIkeSa *sa, guint16 method, gboolean local, gpointer user)
{
}

static void
test_auth_method_rsa_responder (void)
{
  Params p = params_default ();
  FakeAuth fb = { 0 };
  Net *net = net_new ();
  Node *a = node_alloc (net, "a", "192.0.2.2");
  Node *b = node_alloc (net, "b", "192.0.2.1");
  ModikePlugin *pl = modike_registry_add_plugin (a->reg, &fake_auth_desc);
  g_autofree char *xa = auth_xml (&p, TRUE, "xauth-rsa");
  g_autofree char *xb = cert_config_xml (&p, FALSE, "xauth-rsa", "gw", "ca.pem", NULL);

  g_assert_true (modike_register_auth_method (pl, MODIKE_AUTH_XAUTH_INIT_RSA, "xauth-rsa", MODIKE_AUTH_PSK,
                                              MODIKE_ROLE_INITIATOR, fa_established_noop, NULL, NULL));
  fake_auth_register (b, &fb);
  node_configure (a, xa);
  node_configure (b, xb);
  g_assert_true (modike_ike_initiate (a->ike, "b", NULL));
  net_run (net, 5000, NULL, NULL);
  g_assert_cmpuint (b->p1_failed, ==, 1);
  g_assert_nonnull (strstr (b->p1_error->message, "MM message 5 does not decrypt"));
  g_assert_cmpuint (a->p1_failed, ==, 1);
  g_assert_cmpuint (fb.established, ==, 0);
  net_free (net);
}

/* ---- attributes ---- */

enum {
  T_IP4_ADDRESS = 1,
  T_IP4_NETMASK = 2,
  T_IP4_DNS = 3,
  T_APPLICATION_VERSION = 7,
  T_IP6_DNS = 10,
  T_IP6_SUBNET = 15,
  T_IP4_SUBNET = 13,
  T_SUPPORTED = 14,
  T_XAUTH_TYPE = 16520,
  T_UNITY_BANNER = 28672,
  T_UNITY_PFS = 28679,
  T_UNCLAIMED = 999,
};

static const ModikeAttrSpec modecfg_specs[] = {
  { T_IP4_ADDRESS, MODIKE_ATTR_FMT_IP4, "INTERNAL_IP4_ADDRESS" },
  { T_IP4_NETMASK, MODIKE_ATTR_FMT_IP4, "INTERNAL_IP4_NETMASK" },
  { T_IP4_DNS, MODIKE_ATTR_FMT_IP4, "INTERNAL_IP4_DNS" },
  { T_APPLICATION_VERSION, MODIKE_ATTR_FMT_TEXT, "APPLICATION_VERSION" },
  { T_IP6_DNS, MODIKE_ATTR_FMT_IP6, "INTERNAL_IP6_DNS" },
  { T_IP6_SUBNET, MODIKE_ATTR_FMT_IP6_PREFIX, "INTERNAL_IP6_SUBNET" },
  { T_IP4_SUBNET, MODIKE_ATTR_FMT_IP4_SUBNET, "INTERNAL_IP4_SUBNET" },
  { T_SUPPORTED, MODIKE_ATTR_FMT_U16_LIST, "SUPPORTED_ATTRIBUTES" },
  { T_UNITY_BANNER, MODIKE_ATTR_FMT_TEXT, "UNITY_BANNER" },
  { T_UNITY_PFS, MODIKE_ATTR_FMT_U32, "UNITY_PFS" },
};
static const ModikeAttrSpec xauth_specs[] = {
  { T_XAUTH_TYPE, MODIKE_ATTR_FMT_U16, "XAUTH_TYPE" },
};

static const ModikePluginDescriptor fake_modecfg_desc = {
  MODIKE_PLUGIN_DESCRIPTOR_INIT,
  .name = "fakemodecfg",
  .version = "0",
};

/* Records "owner type:value" for each attribute it is given. */
static gboolean
fa_attr (ModikeIkeSa *sa, const ModikeAttrPayload *payload, const ModikeAttrValue *v, gpointer user, GError **error)
{
  FakeAuth *fa = user;
  char buf[80];
  g_autofree char *text = NULL;

  if (fa->refuse)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "refused %u", v->type);
      return FALSE;
    }
  if (v->empty)
    text = g_strdup ("empty");
  else
    switch (v->format)
      {
      case MODIKE_ATTR_FMT_IP4:
      case MODIKE_ATTR_FMT_IP6:
        text = g_strdup (modike_addr_format (&v->addr, buf, sizeof buf));
        break;
      case MODIKE_ATTR_FMT_IP4_SUBNET:
      case MODIKE_ATTR_FMT_IP6_PREFIX:
        text = g_strdup (fmt_prefix (&v->prefix, buf, sizeof buf));
        break;
      case MODIKE_ATTR_FMT_U16:
      case MODIKE_ATTR_FMT_U32:
        text = g_strdup_printf ("%u", v->number);
        break;
      case MODIKE_ATTR_FMT_TEXT:
        text = g_strndup ((const char *) v->data, v->len);
        break;
      default:
        text = g_strdup_printf ("%" G_GSIZE_FORMAT " bytes", v->len);
        break;
      }
  g_ptr_array_add (fa->seen, g_strdup_printf ("%u/%u %u:%s", payload->type, payload->identifier, v->type, text));
  return TRUE;
}

static ModikeAttrPayload *
attr_payload (guint8 type, guint16 id)
{
  ModikeAttrPayload *ap = g_new0 (ModikeAttrPayload, 1);

  ap->type = type;
  ap->identifier = id;
  ap->attrs = modike_attr_array_new ();
  return ap;
}

/* Through the wire format and back, as a plugin's exchange receives it. */
static ModikeAttrPayload *
reparse (const ModikeAttrPayload *ap)
{
  g_autoptr (GByteArray) body = g_byte_array_new ();
  g_autoptr (GError) error = NULL;
  ModikeAttrPayload *back;

  modike_attr_payload_encode (ap, body);
  back = modike_attr_payload_parse (body->data, body->len, &error);
  g_assert_no_error (error);
  return back;
}

static void
assert_seen (GPtrArray *seen, const char *const *want)
{
  for (guint i = 0; i < seen->len; i++)
    g_test_message ("seen[%u] %s", i, (const char *) g_ptr_array_index (seen, i));
  g_assert_cmpuint (seen->len, ==, g_strv_length ((char **) want));
  for (guint i = 0; want[i] != NULL; i++)
    g_assert_cmpstr (g_ptr_array_index (seen, i), ==, want[i]);
}

/* One malformed claimed attribute fails the payload before any handler. */
static void
assert_malformed (ModikeIkeSa *sa, FakeAuth *mc, guint16 type, const guint8 *value, gsize len, const char *text)
{
  g_autoptr (ModikeAttrPayload) ap = attr_payload (MODIKE_CFG_REPLY, 9);
  g_autoptr (ModikeAttrPayload) wire = NULL;
  g_autoptr (GError) error = NULL;
  guint before = mc->seen->len;
  static const guint8 dns[] = { 10, 8, 0, 53 };

  modike_attr_add_tlv (ap->attrs, T_IP4_DNS, dns, sizeof dns);
  modike_attr_add_tlv (ap->attrs, type, value, len);
  wire = reparse (ap);
  g_assert_false (modike_attr_payload_dispatch (sa, wire, &error));
  g_assert_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_MALFORMED);
  g_test_message ("%s", error->message);
  if (strstr (error->message, text) == NULL || strstr (error->message, "fakemodecfg") == NULL)
    g_error ("\"%s\" lacks \"%s\" or the plugin", error->message, text);
  g_assert_cmpuint (mc->seen->len, ==, before);
}

static void
test_attributes (void)
{
  Params p = params_default ();
  FakeAuth mc = { 0 }, xa = { 0 };
  Node *a, *b;
  Net *net = pair_up (&p, &a, &b, 1);
  ModikeIkeSa *sa = only_sa (a);
  ModikePlugin *pmc = modike_registry_add_plugin (a->reg, &fake_modecfg_desc);
  ModikePlugin *pxa = modike_registry_add_plugin (a->reg, &fake_auth_desc);
  g_autoptr (GError) error = NULL;
  g_autoptr (ModikeAttrPayload) reply = attr_payload (MODIKE_CFG_REPLY, 7);
  g_autoptr (ModikeAttrPayload) request = attr_payload (MODIKE_CFG_REQUEST, 8);
  g_autoptr (ModikeAttrPayload) wire = NULL;
  ModikePrefix v6, subnet;
  ModikeAddr ip4, ip6;
  static const guint8 mask[] = { 255, 255, 255, 0 }, dns[] = { 10, 8, 0, 53 }, supported[] = { 0, 1, 0, 2 };

  mc.seen = g_ptr_array_new_with_free_func (g_free);
  xa.seen = mc.seen;
  g_assert_true (modike_register_attributes (pmc, modecfg_specs, G_N_ELEMENTS (modecfg_specs), fa_attr, &mc, &error));
  g_assert_true (modike_register_attributes (pxa, xauth_specs, 1, fa_attr, &xa, &error));
  g_assert_no_error (error);

  /* A REPLY with every format, an unclaimed type and a TV number. */
  g_assert_true (modike_addr_parse ("10.99.0.5", 0, &ip4, NULL));
  modike_attr_add_addr (reply->attrs, T_IP4_ADDRESS, &ip4);
  modike_attr_add_tlv (reply->attrs, T_IP4_NETMASK, mask, sizeof mask);
  modike_attr_add_tlv (reply->attrs, T_UNCLAIMED, (const guint8 *) "??", 2);
  modike_attr_add_tlv (reply->attrs, T_IP4_DNS, dns, sizeof dns);
  g_assert_true (modike_prefix_parse ("2001:db8:99::/64", &v6, NULL));
  v6.net.addr[15] = 5; /* an interface address keeps its host bits */
  modike_attr_add_prefix (reply->attrs, T_IP6_SUBNET, &v6);
  g_assert_true (modike_addr_parse ("2001:db8::53", 0, &ip6, NULL));
  modike_attr_add_addr (reply->attrs, T_IP6_DNS, &ip6);
  g_assert_true (modike_prefix_parse ("10.8.0.0/16", &subnet, NULL));
  modike_attr_add_prefix (reply->attrs, T_IP4_SUBNET, &subnet);
  modike_attr_add_tlv (reply->attrs, T_APPLICATION_VERSION, (const guint8 *) "modike 0.1", 10);
  modike_attr_add_tlv (reply->attrs, T_SUPPORTED, supported, sizeof supported);
  modike_attr_add_tv (reply->attrs, T_XAUTH_TYPE, 0);
  modike_attr_add_tv (reply->attrs, T_UNITY_PFS, 1);
  modike_attr_add_tlv (reply->attrs, T_UNITY_BANNER, (const guint8 *) "h\xc3\xa9", 3);
  wire = reparse (reply);
  g_assert_true (modike_attr_payload_dispatch (sa, wire, &error));
  g_assert_no_error (error);
  {
    static const char *const want[] = {
      "2/7 1:10.99.0.5", "2/7 2:255.255.255.0", "2/7 3:10.8.0.53", "2/7 15:2001:db8:99::5/64", "2/7 10:2001:db8::53",
      "2/7 13:10.8.0.0/16", "2/7 7:modike 0.1", "2/7 14:4 bytes", "2/7 16520:0", "2/7 28679:1",
      "2/7 28672:h\xc3\xa9", NULL,
    };
    assert_seen (mc.seen, want);
  }

  /* A REQUEST names the attributes with empty values. */
  g_ptr_array_set_size (mc.seen, 0);
  modike_attr_add_tlv (request->attrs, T_IP4_ADDRESS, NULL, 0);
  modike_attr_add_tlv (request->attrs, T_IP6_SUBNET, NULL, 0);
  modike_attr_add_tlv (request->attrs, T_XAUTH_TYPE, NULL, 0);
  g_clear_pointer (&wire, modike_attr_payload_free);
  wire = reparse (request);
  g_assert_true (modike_attr_payload_dispatch (sa, wire, &error));
  {
    static const char *const want[] = { "1/8 1:empty", "1/8 15:empty", "1/8 16520:empty", NULL };
    assert_seen (mc.seen, want);
  }

  /* Strict about claimed values. */
  {
    static const guint8 five[] = { 10, 0, 0, 1, 9 }, hole[] = { 10, 8, 0, 0, 255, 0, 255, 0 };
    static const guint8 v6_129[17] = { 0x20, 0x01, [16] = 129 }, nul[] = { 'a', 0, 'b' }, bad_utf8[] = { 0xc3 };
    static const guint8 three[] = { 0, 1, 0 }, big[] = { 1, 2, 3, 4, 5 }, short6[4] = { 0x20, 0x01 };

    assert_malformed (sa, &mc, T_IP4_ADDRESS, five, sizeof five, "attribute 1: value of 5 bytes is not an IPv4");
    assert_malformed (sa, &mc, T_IP4_SUBNET, hole, sizeof hole, "INTERNAL_IP4_SUBNET");
    assert_malformed (sa, &mc, T_IP6_SUBNET, v6_129, sizeof v6_129, "length <= 128");
    assert_malformed (sa, &mc, T_APPLICATION_VERSION, nul, sizeof nul, "UTF-8 text without NUL");
    assert_malformed (sa, &mc, T_UNITY_BANNER, bad_utf8, sizeof bad_utf8, "UTF-8");
    assert_malformed (sa, &mc, T_SUPPORTED, three, sizeof three, "list of 16-bit");
    assert_malformed (sa, &mc, T_UNITY_PFS, big, sizeof big, "32-bit");
    assert_malformed (sa, &mc, T_IP6_DNS, short6, sizeof short6, "IPv6 address (16 bytes)");
  }
  /* A TV value where an address belongs. */
  {
    g_autoptr (ModikeAttrPayload) tv = attr_payload (MODIKE_CFG_SET, 1);

    modike_attr_add_tv (tv->attrs, T_IP4_DNS, 7);
    g_assert_false (modike_attr_payload_dispatch (sa, tv, &error));
    g_assert_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_MALFORMED);
    g_clear_error (&error);
  }
  /* A handler's refusal stops the dispatch with its error. */
  {
    g_autoptr (ModikeAttrPayload) set = attr_payload (MODIKE_CFG_SET, 2);

    g_ptr_array_set_size (mc.seen, 0);
    modike_attr_add_tlv (set->attrs, T_IP4_DNS, dns, sizeof dns);
    modike_attr_add_tv (set->attrs, T_XAUTH_TYPE, 1);
    xa.refuse = TRUE;
    g_assert_false (modike_attr_payload_dispatch (sa, set, &error));
    g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
    g_assert_cmpuint (mc.seen->len, ==, 1);
    xa.refuse = FALSE;
    g_clear_error (&error);
  }
  /* Only unclaimed types: nothing to do, no error. */
  {
    g_autoptr (ModikeAttrPayload) ack = attr_payload (MODIKE_CFG_ACK, 3);

    g_ptr_array_set_size (mc.seen, 0);
    modike_attr_add_tlv (ack->attrs, T_UNCLAIMED, NULL, 0);
    modike_attr_add_tv (ack->attrs, 20000, 1);
    g_assert_true (modike_attr_payload_dispatch (sa, ack, &error));
    g_assert_no_error (error);
    g_assert_cmpuint (mc.seen->len, ==, 0);
  }
  g_ptr_array_unref (mc.seen);
  net_free (net);
}

/* ---- results on the peer's adapter ---- */

static ModikeSaResult *
office_result (void)
{
  ModikeSaResult *r = modike_sa_result_new ();
  ModikePrefix pfx;
  ModikeAddr dns;

  g_assert_true (modike_prefix_parse ("10.99.0.5/32", &pfx, NULL));
  modike_sa_result_add_address (r, &pfx);
  g_assert_true (modike_prefix_parse ("2001:db8:99::5/128", &pfx, NULL));
  modike_sa_result_add_address (r, &pfx);
  g_assert_true (modike_prefix_parse ("10.8.0.0/16", &pfx, NULL));
  modike_sa_result_add_route (r, &pfx);
  /* Everything: but B's address (192.0.2.1) must stay outside. */
  g_assert_true (modike_prefix_parse ("192.0.2.0/30", &pfx, NULL));
  modike_sa_result_add_route (r, &pfx);
  g_assert_true (modike_addr_parse ("10.8.0.53", 53, &dns, NULL));
  modike_sa_result_add_dns (r, &dns);
  modike_sa_result_add_domain (r, "corp.example");
  modike_sa_result_add_domain (r, "lab.example");
  return r;
}

static void
test_result_adapter (void)
{
  Params p = params_default ();
  g_autoptr (GPtrArray) log = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (ModikeSaResult) r = office_result ();
  g_autoptr (GError) error = NULL;
  FakeDp da;
  FakeOs os = { 0 };
  Node *a, *b;
  Net *net;
  guint mark;
  ModikeIkeSa *first;

  fake_dp_init (&da, log);
  os.log = log;
  p.p1_life = 200;
  p.p2_life = 1000;
  net = dp_pair_new (&p, &da, NULL, &os, &a, &b);
  bring_up (net, a, b, 1);
  first = only_sa (a);

  /* B has neither an OS adapter nor a datapath. */
  g_assert_false (modike_ike_sa_set_result (only_sa (b), r, &error));
  g_assert_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED);
  g_assert_nonnull (strstr (error->message, "needs an OS adapter plugin"));
  g_clear_error (&error);

  /* A has no <adapter>: one is made for the result. */
  mark = log->len;
  g_assert_true (modike_ike_sa_set_result (first, r, &error));
  g_assert_no_error (error);
  {
    static const char *const want[] = {
      "create modike0 queues=1 flags=1", "attach b fds=100 flags=1", "address modike0 10.99.0.5/32 mtu=1400",
      "address modike0 2001:db8:99::5/128 mtu=1400", "dns modike0 servers=10.8.0.53 domains=corp.example,lab.example",
      "route+ modike0 10.2.0.0/24", "route+ modike0 10.8.0.0/16", "route+ modike0 192.0.2.0/32",
      "route+ modike0 192.0.2.2/31", NULL,
    };
    assert_log (log, mark, want);
  }
  g_assert_cmpuint (os.live, ==, 1);

  /* Phase 1 rekeys at 170-180 s and the old SA expires at 200 s: the
   * adapter, its routes and DNS stay with the new SA. */
  mark = log->len;
  net_run (net, 210000, NULL, NULL);
  g_assert_cmpuint (a->p1_up, ==, 2);
  assert_no_failures (a, b);
  g_assert_true (only_sa (a) != first);
  g_assert_cmpuint (log_count (log, mark, "destroy"), ==, 0);
  g_assert_cmpuint (log_count (log, mark, "route-"), ==, 0);
  g_assert_cmpuint (log_count (log, mark, "dns"), ==, 0);
  g_assert_cmpuint (os.live, ==, 1);

  /* The same result again on the new SA changes nothing on the adapter
   * but its address calls; one without DNS clears them. */
  mark = log->len;
  modike_sa_result_free (g_steal_pointer (&r));
  r = modike_sa_result_new ();
  g_assert_true (modike_ike_sa_set_result (only_sa (a), r, &error));
  {
    static const char *const want[] = {
      "dns- modike0", "route- modike0 192.0.2.2/31", "route- modike0 192.0.2.0/32", "route- modike0 10.8.0.0/16", NULL,
    };
    assert_log (log, mark, want);
  }
  modike_sa_result_free (g_steal_pointer (&r));
  r = office_result ();
  g_assert_true (modike_ike_sa_set_result (only_sa (a), r, &error));
  g_assert_no_error (error);

  /* Deleting the SA takes everything down. */
  mark = log->len;
  modike_ike_terminate (a->ike, "b");
  net_run (net, 1000, NULL, NULL);
  g_assert_cmpuint (log_count (log, mark, "dns- modike0"), ==, 1);
  g_assert_true (log_has (log, "destroy modike0"));
  g_assert_cmpuint (os.live, ==, 0);
  g_assert_cmpuint (a->ike->adapters->len, ==, 0);
  net_free (net);
  fake_dp_clear (&da);
}

/* A configured <adapter> takes the result and returns to its configured
 * state when the SA goes; an OS adapter without DNS support is no error. */
static void
test_result_configured_adapter (void)
{
  Params p = params_default ();
  g_autoptr (GPtrArray) log = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (ModikeSaResult) r = office_result ();
  g_autoptr (GError) error = NULL;
  FakeDp da;
  FakeOs os = { 0 };
  Node *a, *b;
  Net *net;
  guint mark;

  fake_dp_init (&da, log);
  os.log = log;
  os.no_dns = TRUE;
  p.peer_extra_a = "    <adapter name=\"mk0\" mtu=\"1300\"/>\n";
  net = dp_pair_new (&p, &da, NULL, &os, &a, &b);
  bring_up (net, a, b, 1);
  mark = log->len;
  g_assert_true (modike_ike_sa_set_result (only_sa (a), r, &error));
  g_assert_no_error (error);
  {
    static const char *const want[] = {
      "address mk0 10.99.0.5/32 mtu=1300", "address mk0 2001:db8:99::5/128 mtu=1300", "route+ mk0 10.8.0.0/16",
      "route+ mk0 192.0.2.0/32", "route+ mk0 192.0.2.2/31", NULL,
    };
    assert_log (log, mark, want);
  }
  /* Failure of the SA (here: a delete from the peer) gives mk0 back as
   * configured: no result address, the policy's route only. */
  mark = log->len;
  modike_ike_terminate (b->ike, "a");
  net_run (net, 1000, NULL, NULL);
  g_assert_cmpuint (modike_ike_count_sas (a->ike, FALSE), ==, 0);
  {
    static const char *const want[] = {
      "detach b", "destroy mk0", "create mk0 queues=1 flags=1", "attach b fds=100 flags=1",
      "route+ mk0 10.2.0.0/24", NULL,
    };
    assert_log (log, mark, want);
  }
  g_assert_cmpuint (os.live, ==, 1);

  /* Cleared by hand, a result without addresses leaves the adapter. */
  bring_up (net, a, b, 1);
  modike_sa_result_free (g_steal_pointer (&r));
  r = modike_sa_result_new ();
  {
    ModikePrefix pfx;

    g_assert_true (modike_prefix_parse ("10.8.0.0/16", &pfx, NULL));
    modike_sa_result_add_route (r, &pfx);
  }
  g_assert_true (modike_ike_sa_set_result (only_sa (a), r, &error));
  mark = log->len;
  modike_ike_sa_clear_result (only_sa (a));
  {
    static const char *const want[] = { "route- mk0 10.8.0.0/16", NULL };
    assert_log (log, mark, want);
  }
  net_free (net);
  g_assert_cmpuint (os.live, ==, 0);
  fake_dp_clear (&da);
}

void
fsm_add_plugin_result_tests (void)
{
  g_test_add_func ("/fsm/plugin-results/auth-method", test_auth_method);
  g_test_add_func ("/fsm/plugin-results/auth-method-refused", test_auth_method_refused);
  g_test_add_func ("/fsm/plugin-results/auth-method-fail-established", test_auth_method_fail_established);
  g_test_add_func ("/fsm/plugin-results/auth-method-hold", test_auth_method_hold);
  g_test_add_func ("/fsm/plugin-results/auth-method-rsa", test_auth_method_rsa);
  g_test_add_func ("/fsm/plugin-results/auth-method-rsa-responder", test_auth_method_rsa_responder);
  g_test_add_func ("/fsm/plugin-results/attributes", test_attributes);
  g_test_add_func ("/fsm/plugin-results/result-adapter", test_result_adapter);
  g_test_add_func ("/fsm/plugin-results/result-configured-adapter", test_result_configured_adapter);
}
