/* Suite xauth: hybrid authentication (draft-ietf-ipsec-isakmp-hybrid-auth)
 * with the real plugin on both harness nodes. The gateway holds the "gw"
 * certificate of tests/vectors/certs and a users file; the client only
 * the trust anchor and its XAuth credentials. Phase 1 authenticates the
 * gateway; XAuth then authenticates the client, and only then does Quick
 * Mode run. A is 192.0.2.2, B 192.0.2.1. */
#include "xauth-fixture.h"

#define ISAKMP_EXCHANGE_OFFSET 18
#define EX_QUICK 32

typedef struct {
  Net *net;
  Node *client, *gateway;
  char *dir;
  GString *seq; /* per packet: t/T transaction, q/Q Quick Mode; upper case from the gateway */
} Hx;

static FilterResult
hx_filter (Net *net, guint n, Packet *p, gpointer user)
{
  Hx *hx = user;
  gsize len;
  const guint8 *d = g_bytes_get_data (p->data, &len);
  gboolean from_gw = p->to == hx->client;
  guint8 ex = len > ISAKMP_EXCHANGE_OFFSET ? d[ISAKMP_EXCHANGE_OFFSET] : 0;

  if (ex == MODIKE_EX_TRANSACTION)
    g_string_append_c (hx->seq, from_gw ? 'T' : 't');
  else if (ex == EX_QUICK)
    g_string_append_c (hx->seq, from_gw ? 'Q' : 'q');
  return FILTER_PASS;
}

/* config_xml with <auth method> for the gateway (certificate and key) or
 * the client (trust anchor only). */
static char *
hybrid_xml (const Params *p, gboolean is_a, const char *method, gboolean gateway)
{
  g_autofree char *xml = config_xml (p, is_a);
  g_autofree char *old = g_strdup_printf ("<auth method=\"psk\" secret=\"%s\"/>", is_a ? p->psk_a : p->psk_b);
  g_autofree char *ca = cert_path ("ca.pem"), *chain = cert_path ("gw-chain.pem"), *key = cert_path ("gw.key");
  g_autofree char *keys = gateway ? g_strdup_printf (" cert=\"%s\" key=\"%s\"", chain, key) : g_strdup ("");
  g_autofree char *auth = g_strdup_printf ("<auth method=\"%s\"%s><ca path=\"%s\"/></auth>", method, keys, ca);
  g_auto (GStrv) parts = g_strsplit (xml, old, -1);

  g_assert_cmpuint (g_strv_length (parts), ==, 2);
  return g_strjoinv (auth, parts);
}

static char *
write_file (Hx *hx, const char *name, const char *text)
{
  char *path = g_build_filename (hx->dir, name, NULL);

  g_assert_true (g_file_set_contents (path, text, -1, NULL));
  return path;
}

/* A is the client unless `a_is_gateway`; the client's password file
 * holds `password`; both ends name `method`. */
static Hx *
hx_new (const char *exchange, const char *method, gboolean a_is_gateway, const char *password)
{
  Hx *hx = g_new0 (Hx, 1);
  Params p = params_default ();
  g_autoptr (GError) error = NULL;
  g_autofree char *entry = NULL, *users = NULL, *pwfile = NULL, *pwline = NULL;
  g_autofree char *csec = NULL, *gsec = NULL, *xa = NULL, *xb = NULL;
  Node *a, *b;

  p.exchange = exchange;
  hx->dir = g_dir_make_tmp ("hybrid-XXXXXX", NULL);
  g_assert_nonnull (hx->dir);
  hx->seq = g_string_new (NULL);
  entry = xauth_users_make_entry ("alice", (const guint8 *) "alicepw", 7, 1000, &error);
  g_assert_no_error (error);
  users = write_file (hx, "users", entry);
  pwline = g_strdup_printf ("%s\n", password);
  pwfile = write_file (hx, "pw", pwline);
  hx->net = net_new ();
  a = node_alloc (hx->net, "a", "192.0.2.2");
  b = node_alloc (hx->net, "b", "192.0.2.1");
  load_plugin (a);
  load_plugin (b);
  hx->client = a_is_gateway ? b : a;
  hx->gateway = a_is_gateway ? a : b;
  csec = g_strdup_printf ("<xauth><credentials peer=\"%s\" user=\"alice\" password-file=\"%s\"/></xauth>",
                          a_is_gateway ? "a" : "b", pwfile);
  gsec = g_strdup_printf ("<xauth users-file=\"%s\" retries=\"1\"/>", users);
  xa = hybrid_xml (&p, TRUE, method, a_is_gateway);
  xb = hybrid_xml (&p, FALSE, method, !a_is_gateway);
  g_assert_true (configure_xml (a, xa, a_is_gateway ? gsec : csec, &error));
  g_assert_no_error (error);
  g_assert_true (configure_xml (b, xb, a_is_gateway ? csec : gsec, &error));
  g_assert_no_error (error);
  hx->net->filter = hx_filter;
  hx->net->filter_user = hx;
  return hx;
}

static void
hx_free (Hx *hx)
{
  remove_tmp_dir (hx->dir);
  g_free (hx->dir);
  g_string_free (hx->seq, TRUE);
  net_free (hx->net);
  g_free (hx);
}

/* A starts; XAuth (REQUEST, REPLY, SET, ACK) runs before any Quick Mode. */
static void
up_case (const char *exchange, const char *method, gboolean a_is_gateway, guint16 want)
{
  Hx *hx = hx_new (exchange, method, a_is_gateway, "alicepw");
  Node *a = a_is_gateway ? hx->gateway : hx->client, *b = a_is_gateway ? hx->client : hx->gateway;
  const char *q;

  g_assert_true (modike_ike_initiate (a->ike, "b", NULL));
  g_assert_true (run_until_up (hx->net, a, b, 1, 30000));
  check_pair (a, b, 1);
  assert_no_failures (a, b);
  g_assert_cmpuint (modike_ike_sa_get_auth_method (only_sa (a)), ==, want);
  g_assert_cmpuint (modike_ike_sa_get_auth_method (only_sa (b)), ==, want);
  g_assert_cmpstr (modike_ike_sa_get_auth_owner (only_sa (a)), ==, "xauth");
  g_assert_true (modike_ike_sa_auth_is_local (only_sa (hx->client)));
  g_assert_false (modike_ike_sa_auth_is_local (only_sa (hx->gateway)));
  q = strpbrk (hx->seq->str, "qQ");
  g_assert_nonnull (q);
  g_assert_cmpint (q - hx->seq->str, ==, 4);
  g_assert_true (strncmp (hx->seq->str, "TtTt", 4) == 0);
  hx_free (hx);
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

static void
test_gateway_initiates (void)
{
  up_case ("main", "hybrid-rsa-responder", TRUE, MODIKE_AUTH_HYBRID_RESP_RSA);
}

static gboolean
pred_no_sas (Net *net, gpointer user)
{
  Hx *hx = user;

  return modike_ike_count_sas (hx->client->ike, FALSE) == 0 && modike_ike_count_sas (hx->gateway->ike, FALSE) == 0;
}

/* Phase 1 authenticated only the gateway: a wrong password ends it all,
 * no Quick Mode. */
static void
test_wrong_password (void)
{
  Hx *hx = hx_new ("main", "hybrid-rsa", FALSE, "wrongpw");

  g_assert_true (modike_ike_initiate (hx->client->ike, "b", NULL));
  g_assert_true (net_run (hx->net, 120000, pred_no_sas, hx));
  g_assert_cmpuint (hx->client->p2_up + hx->gateway->p2_up, ==, 0);
  g_assert_null (strpbrk (hx->seq->str, "qQ"));
  /* The gateway may hear the client's DELETE before it fails by itself. */
  g_assert_nonnull (hx->client->p1_error);
  g_assert_nonnull (strstr (hx->client->p1_error->message, "extended authentication failed for user 'alice'"));
  hx_free (hx);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_log_set_always_fatal (G_LOG_LEVEL_CRITICAL);
  g_test_add_func ("/xauth/hybrid/mm", test_mm);
  g_test_add_func ("/xauth/hybrid/am", test_am);
  g_test_add_func ("/xauth/hybrid/gateway-initiates", test_gateway_initiates);
  g_test_add_func ("/xauth/hybrid/wrong-password", test_wrong_password);
  return g_test_run ();
}
