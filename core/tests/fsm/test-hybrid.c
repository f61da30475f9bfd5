/* Hybrid authentication (draft-ietf-ipsec-isakmp-hybrid-auth-05) in Main
 * and Aggressive Mode: a test plugin registers hybrid-rsa (HybridInitRSA,
 * 64221: the initiator is the client) and hybrid-rsa-responder
 * (HybridRespRSA, 64222) on base MODIKE_AUTH_HYBRID_RSA. The gateway
 * ("gw" of tests/vectors/certs) signs and sends its certificate; the
 * client has only trust anchors and sends HASH_I or HASH_R. The real XAuth
 * after phase 1 is the xauth suite's (plugins/xauth/tests/test-hybrid.c).
 * A is 192.0.2.2, B 192.0.2.1. */
#include "harness.h"

typedef struct {
  guint established;
  gboolean local;
  guint16 method;
} FakeHybrid;

static void
fh_established (ModikeIkeSa *sa, guint16 method, gboolean local, gpointer user)
{
  FakeHybrid *fh = user;

  fh->established++;
  fh->local = local;
  fh->method = method;
}

static const ModikePluginDescriptor fake_hybrid_desc = {
  MODIKE_PLUGIN_DESCRIPTOR_INIT,
  .name = "fakehybrid",
  .version = "0",
};

/* hybrid-rsa and hybrid-rsa-responder on the node; `init_base` is the
 * base of hybrid-rsa (a misbehaving client registers it on RSA_SIG). */
static void
fake_hybrid_register (Node *n, FakeHybrid *fh, guint16 init_base)
{
  ModikePlugin *pl = modike_registry_add_plugin (n->reg, &fake_hybrid_desc);
  g_autoptr (GError) error = NULL;

  g_assert_true (modike_register_auth_method (pl, MODIKE_AUTH_HYBRID_INIT_RSA, "hybrid-rsa", init_base,
                                              MODIKE_ROLE_INITIATOR, fh_established, fh, &error));
  g_assert_true (modike_register_auth_method (pl, MODIKE_AUTH_HYBRID_RESP_RSA, "hybrid-rsa-responder",
                                              MODIKE_AUTH_HYBRID_RSA, MODIKE_ROLE_RESPONDER, fh_established, fh,
                                              &error));
  g_assert_no_error (error);
}

/* config_xml with the client's <auth>: trust anchors `ca` only. */
static char *
client_xml (const Params *p, gboolean is_a, const char *method, const char *ca)
{
  g_autofree char *xml = config_xml (p, is_a);
  g_autofree char *old = g_strdup_printf ("<auth method=\"psk\" secret=\"%s\"/>", is_a ? p->psk_a : p->psk_b);
  g_autofree char *cap = cert_path (ca);
  g_autofree char *auth = g_strdup_printf ("<auth method=\"%s\"><ca path=\"%s\"/></auth>", method, cap);
  g_auto (GStrv) parts = g_strsplit (xml, old, -1);

  g_assert_cmpuint (g_strv_length (parts), ==, 2);
  return g_strjoinv (auth, parts);
}

typedef struct {
  const char *exchange;
  const char *method;     /* both ends */
  const char *ca_client;  /* the client's trust anchors; default ca.pem */
  gboolean a_is_gateway;  /* default: A the client, B the gateway */
  gboolean client_signs;  /* the client's plugin puts hybrid-rsa on RSA_SIG, with a certificate */
  NetFilter filter;
  gpointer filter_user;
  gboolean a_done;        /* the responder refuses the last message: A is up by then */
  const char *ids_client; /* XML before the client's <auth>: <remote-id> */
} HybridCase;

static Net *
hybrid_pair (const HybridCase *c, FakeHybrid *fa, FakeHybrid *fb, Node **a, Node **b)
{
  Params p = params_default ();
  Net *net = net_new ();
  const char *method = c->method != NULL ? c->method : "hybrid-rsa";
  const char *ca = c->ca_client != NULL ? c->ca_client : "ca.pem";
  g_autofree char *xa = NULL, *xb = NULL;

  p.exchange = c->exchange;
  if (c->a_is_gateway)
    {
      xa = cert_config_xml (&p, TRUE, method, "gw", "ca.pem", NULL);
      xb = client_xml (&p, FALSE, method, ca);
    }
  else
    {
      xa = c->client_signs ? cert_config_xml (&p, TRUE, method, "client", ca, NULL) : client_xml (&p, TRUE, method, ca);
      xb = cert_config_xml (&p, FALSE, method, "gw", "ca.pem", NULL);
    }
  if (c->ids_client != NULL)
    {
      char **client = c->a_is_gateway ? &xb : &xa;
      g_auto (GStrv) parts = g_strsplit (*client, "<auth ", 2);

      g_free (*client);
      *client = g_strconcat (parts[0], c->ids_client, "<auth ", parts[1], NULL);
    }
  *a = node_alloc (net, "a", "192.0.2.2");
  *b = node_alloc (net, "b", "192.0.2.1");
  fake_hybrid_register (*a, fa, c->client_signs ? MODIKE_AUTH_RSA_SIG : MODIKE_AUTH_HYBRID_RSA);
  fake_hybrid_register (*b, fb, MODIKE_AUTH_HYBRID_RSA);
  node_configure (*a, xa);
  node_configure (*b, xb);
  net->filter = c->filter;
  net->filter_user = c->filter_user;
  return net;
}

/* What the plain messages carry: CR, CERT, SIG and HASH per message
 * number (1..4; Main Mode 5 and 6 are encrypted). */
typedef struct {
  guint cr[5], cert[5], sig[5], hash[5];
} Counts;

static FilterResult
filter_count (Net *net, guint n, Packet *pk, gpointer user)
{
  Counts *k = user;
  g_autoptr (ModikeMessage) msg = NULL;

  if (n > 4)
    return FILTER_PASS;
  msg = modike_message_parse (pk->data, NULL);
  g_assert_nonnull (msg);
  if (msg->hdr.flags & MODIKE_FLAG_ENCRYPTION)
    return FILTER_PASS;
  k->cr[n] = modike_message_count (msg, MODIKE_PL_CR);
  k->cert[n] = modike_message_count (msg, MODIKE_PL_CERT);
  k->sig[n] = modike_message_count (msg, MODIKE_PL_SIG);
  k->hash[n] = modike_message_count (msg, MODIKE_PL_HASH);
  return FILTER_PASS;
}

/* The client A starts; both sides up with one child, the method's owner
 * told who its client is. */
static void
up_case (const char *exchange, const char *method, gboolean gateway_initiates, guint16 want_method)
{
  Counts k = { 0 };
  HybridCase c = { .exchange = exchange, .method = method, .a_is_gateway = gateway_initiates,
                   .filter = filter_count, .filter_user = &k };
  FakeHybrid fa = { 0 }, fb = { 0 };
  Node *a, *b;
  Net *net = hybrid_pair (&c, &fa, &fb, &a, &b);
  FakeHybrid *client = gateway_initiates ? &fb : &fa, *gateway = gateway_initiates ? &fa : &fb;
  Node *cl = gateway_initiates ? b : a, *gw = gateway_initiates ? a : b;
  g_autofree char *gw_seen = NULL, *cl_seen = NULL;

  g_assert_true (modike_ike_initiate (a->ike, "b", NULL));
  g_assert_true (run_until_up (net, a, b, 1, 30000));
  check_pair (a, b, 1);
  assert_up_counts (a, b, 1, 1);
  assert_no_failures (a, b);
  g_assert_cmpuint (only_sa (a)->choice.auth, ==, want_method);
  g_assert_cmpuint (only_sa (b)->choice.auth, ==, want_method);
  g_assert_cmpstr (modike_ike_sa_get_auth_owner (only_sa (a)), ==, "fakehybrid");
  /* The client is the end the method authenticates further (XAuth). */
  g_assert_cmpuint (client->established, ==, 1);
  g_assert_cmpuint (gateway->established, ==, 1);
  g_assert_true (client->local);
  g_assert_false (gateway->local);
  g_assert_true (modike_ike_sa_auth_is_local (only_sa (cl)));
  g_assert_false (modike_ike_sa_auth_is_local (only_sa (gw)));
  /* The gateway's identity is its certificate's subject; the client's
   * its address. */
  cl_seen = peer_id_text (only_sa (cl));
  gw_seen = peer_id_text (only_sa (gw));
  g_assert_cmpstr (cl_seen, ==, "CN=gw,O=modike");
  g_assert_cmpstr (gw_seen, ==, gateway_initiates ? "192.0.2.1" : "192.0.2.2");
  g_assert_cmpuint (a->ike->stats.auth_failures + b->ike->stats.auth_failures, ==, 0);
  if (g_strcmp0 (exchange, "aggressive") == 0)
    {
      /* 1: the initiator's CR when it is the client; 2: the responder's
       * CERTs (leaf and intermediate) and SIG_R when it is the gateway,
       * else its HASH_R. Nobody asks the client for a certificate. */
      g_assert_cmpuint (k.cr[1], ==, gateway_initiates ? 0 : 1);
      g_assert_cmpuint (k.cr[2], ==, gateway_initiates ? 1 : 0);
      g_assert_cmpuint (k.cert[2], ==, gateway_initiates ? 0 : 2);
      g_assert_cmpuint (k.sig[2], ==, gateway_initiates ? 0 : 1);
      g_assert_cmpuint (k.hash[2], ==, gateway_initiates ? 1 : 0);
    }
  else
    {
      /* The client asks for the gateway's certificate with its KE. */
      g_assert_cmpuint (k.cr[3], ==, gateway_initiates ? 0 : 1);
      g_assert_cmpuint (k.cr[4], ==, gateway_initiates ? 1 : 0);
    }
  net_free (net);
}

static void
test_mm (void)
{
  up_case ("main", "hybrid-rsa", FALSE, MODIKE_AUTH_HYBRID_INIT_RSA);
}

static void
test_am (void)
{
  up_case ("aggressive", "hybrid-rsa", FALSE, MODIKE_AUTH_HYBRID_INIT_RSA);
}

/* HybridRespRSA: the gateway starts, the client answers with HASH_R. */
static void
test_mm_gateway_initiates (void)
{
  up_case ("main", "hybrid-rsa-responder", TRUE, MODIKE_AUTH_HYBRID_RESP_RSA);
}

static void
test_am_gateway_initiates (void)
{
  up_case ("aggressive", "hybrid-rsa-responder", TRUE, MODIKE_AUTH_HYBRID_RESP_RSA);
}

/* Runs A's phase 1 to its end: no SA anywhere up by A; A's and B's
 * errors as given (NULL: not checked). */
static void
fail_case (const HybridCase *c, const char *a_msg, const char *b_msg)
{
  FakeHybrid fa = { 0 }, fb = { 0 };
  Node *a, *b;
  Net *net = hybrid_pair (c, &fa, &fb, &a, &b);

  modike_ike_initiate (a->ike, "b", NULL);
  net_run (net, 60000, NULL, NULL);
  if (!c->a_done)
    {
      g_assert_cmpuint (modike_ike_count_sas (a->ike, TRUE), ==, 0);
      g_assert_cmpuint (a->p1_up, ==, 0);
      g_assert_cmpuint (a->p1_failed, >=, 1);
      /* The initiator's method owner never hears of an SA (the
       * responder's may: in Main Mode it is done when it sent message 6). */
      g_assert_cmpuint (fa.established, ==, 0);
    }
  if (a_msg != NULL)
    {
      g_assert_nonnull (a->p1_error);
      g_test_message ("A: %s", a->p1_error->message);
      g_assert_cmpstr (a->p1_error->message, ==, a_msg);
    }
  if (b_msg != NULL)
    {
      g_assert_cmpuint (b->p1_up, ==, 0);
      g_assert_cmpuint (fb.established, ==, 0);
      g_assert_nonnull (b->p1_error);
      g_test_message ("B: %s", b->p1_error->message);
      g_assert_cmpstr (b->p1_error->message, ==, b_msg);
    }
  net_free (net);
}

/* The client checks the gateway's chain as with RSA signatures: an
 * unknown issuer is refused, naming the certificate and the reason. */
static void
test_untrusted_gateway (void)
{
  HybridCase c = { .exchange = "main", .ca_client = "other-ca.pem" };

  fail_case (&c, "peer b: certificate 'CN=gw,O=modike' is not trusted: signer not found", NULL);
}

static void
test_untrusted_gateway_am (void)
{
  HybridCase c = { .exchange = "aggressive", .ca_client = "other-ca.pem" };

  fail_case (&c, "peer b: certificate 'CN=gw,O=modike' is not trusted: signer not found", NULL);
}

/* ... and its identity: the DN the client's config wants. */
static void
test_wrong_gateway_id (void)
{
  HybridCase c = { .exchange = "main", .ids_client = "<remote-id type=\"dn\" value=\"CN=someone,O=modike\"/>" };

  fail_case (&c, "peer b: identity CN=gw,O=modike is not the configured CN=someone,O=modike", NULL);
}

/* A client that signs under the hybrid value (its plugin runs it as RSA
 * signatures): the keys agree, but the gateway wants HASH_I. */
static void
test_client_sends_sig (void)
{
  HybridCase c = { .exchange = "main", .client_signs = TRUE };

  fail_case (&c, NULL, "peer a: SIG_I instead of HASH_I: method 64221 authenticates the peer with a hash");
}

static void
test_client_sends_sig_am (void)
{
  HybridCase c = { .exchange = "aggressive", .client_signs = TRUE, .a_done = TRUE };

  fail_case (&c, NULL, "peer a: SIG_I instead of HASH_I: method 64221 authenticates the peer with a hash");
}

/* Aggressive Mode message 1 is plain: one bit of the client's ID changes
 * on the way, so the gateway's IDii_b (and so HASH_I) differs from the
 * client's. */
static FilterResult
filter_flip_id (Net *net, guint n, Packet *pk, gpointer user)
{
  g_autoptr (ModikeMessage) msg = NULL;
  g_autoptr (GByteArray) copy = NULL;
  const ModikePayload *id;

  if (n != 1)
    return FILTER_PASS;
  msg = modike_message_parse (pk->data, NULL);
  g_assert_nonnull (msg);
  id = modike_message_find (msg, MODIKE_PL_ID);
  g_assert_nonnull (id);
  copy = g_byte_array_new ();
  g_byte_array_append (copy, g_bytes_get_data (pk->data, NULL), g_bytes_get_size (pk->data));
  /* The last byte of the IPv4 address: 192.0.2.2 becomes 192.0.2.3. */
  copy->data[id->body + id->len - 1 - (const guint8 *) g_bytes_get_data (pk->data, NULL)] ^= 0x01;
  g_bytes_unref (pk->data);
  pk->data = g_byte_array_free_to_bytes (g_steal_pointer (&copy));
  return FILTER_PASS;
}

static void
test_wrong_hash (void)
{
  HybridCase c = { .exchange = "aggressive", .filter = filter_flip_id, .a_done = TRUE };

  fail_case (&c, NULL, "peer a: HASH_I does not verify");
}

/* With hybrid-rsa the initiator is the client: a gateway (certificate and
 * key) does not start it, and says so before sending anything. */
static void
test_gateway_starts_init_method (void)
{
  HybridCase c = { .exchange = "main", .a_is_gateway = TRUE };
  FakeHybrid fa = { 0 }, fb = { 0 };
  Node *a, *b;
  Net *net = hybrid_pair (&c, &fa, &fb, &a, &b);

  modike_ike_initiate (a->ike, "b", NULL);
  net_run (net, 10000, NULL, NULL);
  g_assert_cmpuint (net->sent, ==, 0);
  g_assert_nonnull (a->p1_error);
  g_assert_cmpstr (a->p1_error->message, ==,
                   "peer b: auth method 'hybrid-rsa' makes the initiator the hybrid client, but this end has a "
                   "certificate and key (a gateway): a gateway does not start phase 1 with this method");
  g_assert_error (a->p1_error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_NO_PROPOSAL_CHOSEN);
  net_free (net);
}

/* Two clients: the responder would be the gateway and has no
 * certificate, so it refuses the proposal. */
static void
test_client_answers_init_method (void)
{
  Params p = params_default ();
  Net *net = net_new ();
  FakeHybrid fa = { 0 }, fb = { 0 };
  g_autofree char *xa = client_xml (&p, TRUE, "hybrid-rsa", "ca.pem");
  g_autofree char *xb = client_xml (&p, FALSE, "hybrid-rsa", "ca.pem");
  Node *a = node_alloc (net, "a", "192.0.2.2");
  Node *b = node_alloc (net, "b", "192.0.2.1");

  fake_hybrid_register (a, &fa, MODIKE_AUTH_HYBRID_RSA);
  fake_hybrid_register (b, &fb, MODIKE_AUTH_HYBRID_RSA);
  node_configure (a, xa);
  node_configure (b, xb);
  modike_ike_initiate (a->ike, "b", NULL);
  net_run (net, 60000, NULL, NULL);
  g_assert_cmpuint (a->p1_up + b->p1_up, ==, 0);
  g_assert_nonnull (b->p1_error);
  g_assert_cmpstr (b->p1_error->message, ==,
                   "peer a: auth method 'hybrid-rsa' makes the responder the hybrid gateway, which signs: no "
                   "certificate and key configured (this end is a hybrid client)");
  g_assert_error (b->p1_error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_NO_PROPOSAL_CHOSEN);
  net_free (net);
}

/* Configs the resolver refuses: a client without <ca>, a secret. */
static void
config_refused (const char *auth, const char *want)
{
  Params p = params_default ();
  FakeHybrid fh = { 0 };
  Net *net = net_new ();
  Node *a = node_alloc (net, "a", "192.0.2.2");
  g_autofree char *xml = config_xml (&p, TRUE);
  g_autofree char *old = g_strdup_printf ("<auth method=\"psk\" secret=\"%s\"/>", p.psk_a);
  g_auto (GStrv) parts = g_strsplit (xml, old, -1);
  g_autofree char *bad = g_strjoinv (auth, parts);
  g_autoptr (GError) error = NULL;
  ModikeConfig *cfg;

  fake_hybrid_register (a, &fh, MODIKE_AUTH_HYBRID_RSA);
  cfg = modike_config_load_string (bad, "site.xml", &error);
  g_assert_no_error (error);
  g_assert_false (modike_registry_resolve_auth (a->reg, cfg, &error));
  g_assert_nonnull (error);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, want));
  modike_config_free (cfg);
  net_free (net);
}

static void
test_client_without_ca (void)
{
  config_refused ("<auth method=\"hybrid-rsa\"/>",
                  "<auth>: method hybrid-rsa without cert and key is the hybrid client and needs at least one <ca> "
                  "to check the gateway's certificate");
}

static void
test_secret_refused (void)
{
  config_refused ("<auth method=\"hybrid-rsa\" secret=\"x\"/>", "<auth>: method hybrid-rsa (hybrid) takes no secret");
}

/* A hybrid method names the role of its client. */
static void
test_register_needs_role (void)
{
  g_autoptr (ModikeRegistry) reg = modike_registry_new ();
  ModikePlugin *pl = modike_registry_add_plugin (reg, &fake_hybrid_desc);
  g_autoptr (GError) error = NULL;

  g_assert_false (modike_register_auth_method (pl, MODIKE_AUTH_HYBRID_INIT_RSA, "hybrid-rsa", MODIKE_AUTH_HYBRID_RSA,
                                               0, fh_established, NULL, &error));
  g_assert_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_INVALID);
  g_assert_nonnull (strstr (error->message, "without the role of its client"));
}

void
fsm_add_hybrid_tests (void)
{
  g_test_add_func ("/fsm/hybrid/mm", test_mm);
  g_test_add_func ("/fsm/hybrid/am", test_am);
  g_test_add_func ("/fsm/hybrid/mm-gateway-initiates", test_mm_gateway_initiates);
  g_test_add_func ("/fsm/hybrid/am-gateway-initiates", test_am_gateway_initiates);
  g_test_add_func ("/fsm/hybrid/untrusted-gateway", test_untrusted_gateway);
  g_test_add_func ("/fsm/hybrid/untrusted-gateway-am", test_untrusted_gateway_am);
  g_test_add_func ("/fsm/hybrid/wrong-gateway-id", test_wrong_gateway_id);
  g_test_add_func ("/fsm/hybrid/client-sends-sig", test_client_sends_sig);
  g_test_add_func ("/fsm/hybrid/client-sends-sig-am", test_client_sends_sig_am);
  g_test_add_func ("/fsm/hybrid/wrong-hash", test_wrong_hash);
  g_test_add_func ("/fsm/hybrid/gateway-starts-init-method", test_gateway_starts_init_method);
  g_test_add_func ("/fsm/hybrid/client-answers-init-method", test_client_answers_init_method);
  g_test_add_func ("/fsm/hybrid/client-without-ca", test_client_without_ca);
  g_test_add_func ("/fsm/hybrid/secret-refused", test_secret_refused);
  g_test_add_func ("/fsm/hybrid/register-needs-role", test_register_needs_role);
}
