/* RSA-signature authentication with X.509 certificates (RFC 2409 5.1) in
 * Main and Aggressive Mode, both roles, with the test PKI of
 * tests/vectors/certs (root -> intermediate -> leaves): A (192.0.2.2) holds
 * "client", B (192.0.2.1) "gw". Refusals: untrusted, expired, revoked,
 * wrong identity, bad signature, missing certificate. */
#include "harness.h"

char *
cert_config_xml (const Params *p, gboolean is_a, const char *method, const char *leaf, const char *ca,
                 const char *extra)
{
  g_autofree char *xml = config_xml (p, is_a);
  g_autofree char *old = g_strdup_printf ("<auth method=\"psk\" secret=\"%s\"/>", is_a ? p->psk_a : p->psk_b);
  g_autofree char *chain_name = g_strdup_printf ("%s-chain.pem", leaf);
  g_autofree char *key_name = g_strdup_printf ("%s.key", leaf);
  g_autofree char *chain = cert_path (chain_name), *key = cert_path (key_name), *cap = cert_path (ca);
  g_autofree char *auth = g_strdup_printf ("<auth method=\"%s\" cert=\"%s\" key=\"%s\"><ca path=\"%s\"/>%s</auth>",
                                           method, chain, key, cap, extra != NULL ? extra : "");
  g_auto (GStrv) parts = g_strsplit (xml, old, -1);

  g_assert_cmpuint (g_strv_length (parts), ==, 2);
  return g_strjoinv (auth, parts);
}

typedef struct {
  const char *exchange;
  const char *leaf_a, *leaf_b; /* certificates: "client", "gw", "expired" ... */
  const char *ca_a, *ca_b;     /* trust anchors */
  const char *extra_a, *extra_b; /* inside <auth>: <crl .../> */
  const char *ids_a, *ids_b;   /* XML before <auth>: <local-id>/<remote-id> */
  NetFilter filter;
} CertCase;

static Net *
cert_pair (const CertCase *c, Node **a, Node **b)
{
  Params p = params_default ();
  Net *net = net_new ();
  g_autofree char *xa = NULL, *xb = NULL;

  p.exchange = c->exchange;
  xa = cert_config_xml (&p, TRUE, "rsa", c->leaf_a, c->ca_a != NULL ? c->ca_a : "ca.pem", c->extra_a);
  xb = cert_config_xml (&p, FALSE, "rsa", c->leaf_b, c->ca_b != NULL ? c->ca_b : "ca.pem", c->extra_b);
  if (c->ids_a != NULL)
    {
      g_autofree char *t = g_steal_pointer (&xa);
      g_auto (GStrv) parts = g_strsplit (t, "<auth ", 2);

      xa = g_strconcat (parts[0], c->ids_a, "<auth ", parts[1], NULL);
    }
  if (c->ids_b != NULL)
    {
      g_autofree char *t = g_steal_pointer (&xb);
      g_auto (GStrv) parts = g_strsplit (t, "<auth ", 2);

      xb = g_strconcat (parts[0], c->ids_b, "<auth ", parts[1], NULL);
    }
  *a = node_new_xml (net, "a", "192.0.2.2", xa);
  *b = node_new_xml (net, "b", "192.0.2.1", xb);
  net->filter = c->filter;
  return net;
}

static void
up_case (const char *exchange, gboolean a_initiates)
{
  CertCase c = { .exchange = exchange, .leaf_a = "client", .leaf_b = "gw" };
  Node *a, *b;
  Net *net = cert_pair (&c, &a, &b);
  g_autofree char *ida = NULL, *idb = NULL;

  g_assert_true (modike_ike_initiate ((a_initiates ? a : b)->ike, a_initiates ? "b" : "a", NULL));
  g_assert_true (run_until_up (net, a, b, 1, 30000));
  check_pair (a, b, 1);
  assert_up_counts (a, b, 1, 1);
  assert_no_failures (a, b);
  g_assert_cmpuint (only_sa (a)->choice.auth, ==, MODIKE_AUTH_RSA_SIG);
  g_assert_cmpuint (only_sa (b)->choice.auth, ==, MODIKE_AUTH_RSA_SIG);
  g_assert_cmpint (only_sa (a_initiates ? a : b)->role, ==, MODIKE_ROLE_INITIATOR);
  /* Each sent its certificate's subject as its identity. */
  ida = peer_id_text (only_sa (a));
  idb = peer_id_text (only_sa (b));
  g_assert_cmpstr (ida, ==, "CN=gw,O=modike");
  g_assert_cmpstr (idb, ==, "CN=client,O=modike");
  g_assert_cmpstr (modike_ike_sa_get_auth_owner (only_sa (a)), ==, "core");
  net_free (net);
}

static void
test_mm_a_initiates (void)
{
  up_case ("main", TRUE);
}

static void
test_mm_b_initiates (void)
{
  up_case ("main", FALSE);
}

static void
test_am_a_initiates (void)
{
  up_case ("aggressive", TRUE);
}

static void
test_am_b_initiates (void)
{
  up_case ("aggressive", FALSE);
}

/* subjectAltName identities: A is user-fqdn client@example.org, B is fqdn
 * gw.example; each expects the other's by config. */
static void
test_san_ids (void)
{
  CertCase c = {
    .exchange = "main", .leaf_a = "client", .leaf_b = "gw",
    .ids_a = "<local-id type=\"user-fqdn\" value=\"client@example.org\"/><remote-id type=\"fqdn\" value=\"gw.example\"/>",
    .ids_b = "<local-id type=\"fqdn\" value=\"gw.example\"/><remote-id type=\"user-fqdn\" value=\"client@example.org\"/>",
  };
  Node *a, *b;
  Net *net = cert_pair (&c, &a, &b);
  g_autofree char *ida = NULL;

  (void) b;
  bring_up (net, a, b, 1);
  assert_no_failures (a, b);
  ida = peer_id_text (only_sa (a));
  g_assert_cmpstr (ida, ==, "gw.example");
  net_free (net);
}

/* Runs A's phase 1 to its end; B's (the responder's) error must be
 * b_msg and A's a_msg (NULL: not checked). */
static void
fail_case (const CertCase *c, const char *a_msg, const char *b_msg)
{
  Node *a, *b;
  Net *net = cert_pair (c, &a, &b);

  modike_ike_initiate (a->ike, "b", NULL);
  net_run (net, 60000, NULL, NULL);
  g_assert_cmpuint (modike_ike_count_sas (a->ike, TRUE), ==, 0);
  g_assert_cmpuint (a->p1_up, ==, 0);
  /* When the initiator refuses the last message, the responder is done
   * already (RFC 2409 has no message after it). */
  if (b_msg != NULL)
    {
      g_assert_cmpuint (modike_ike_count_sas (b->ike, TRUE), ==, 0);
      g_assert_cmpuint (b->p1_up, ==, 0);
      g_assert_nonnull (b->p1_error);
      g_test_message ("B: %s", b->p1_error->message);
      g_assert_cmpstr (b->p1_error->message, ==, b_msg);
      g_assert_error (b->p1_error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_AUTH);
    }
  if (a_msg != NULL)
    {
      g_assert_nonnull (a->p1_error);
      g_test_message ("A: %s", a->p1_error->message);
      g_assert_cmpstr (a->p1_error->message, ==, a_msg);
    }
  g_assert_cmpuint (a->p1_failed, >=, 1);
  net_free (net);
}

static void
test_untrusted (void)
{
  CertCase c = { .exchange = "main", .leaf_a = "client", .leaf_b = "gw", .ca_b = "other-ca.pem" };

  /* A learns why from B's notify. */
  fail_case (&c, "peer b: INVALID_CERTIFICATE",
             "peer a: certificate 'CN=client,O=modike' is not trusted: signer not found");
}

static void
test_untrusted_am (void)
{
  /* A (initiator) checks B's certificate in message 2. */
  CertCase c = { .exchange = "aggressive", .leaf_a = "client", .leaf_b = "gw", .ca_a = "other-ca.pem" };

  fail_case (&c, "peer b: certificate 'CN=gw,O=modike' is not trusted: signer not found", NULL);
}

static void
test_expired (void)
{
  CertCase c = { .exchange = "main", .leaf_a = "expired", .leaf_b = "gw" };

  fail_case (&c, "peer b: INVALID_CERTIFICATE", "peer a: certificate 'CN=expired,O=modike' is not trusted: expired");
}

static void
test_revoked (void)
{
  g_autofree char *crl = cert_path ("int.crl");
  g_autofree char *extra = g_strdup_printf ("<crl path=\"%s\"/>", crl);
  CertCase c = { .exchange = "main", .leaf_a = "client", .leaf_b = "revoked", .extra_a = extra };

  /* A (initiator) checks B's certificate in message 6. */
  fail_case (&c, "peer b: certificate 'CN=revoked,O=modike' is not trusted: revoked", NULL);
}

/* The identity B sends is not the one A's config wants. */
static void
test_wrong_remote_id (void)
{
  CertCase c = {
    .exchange = "main", .leaf_a = "client", .leaf_b = "gw",
    .ids_a = "<remote-id type=\"fqdn\" value=\"gw.example\"/>",
  };

  fail_case (&c, "peer b: identity CN=gw,O=modike is not the configured gw.example", NULL);
}

static void
test_wrong_remote_dn (void)
{
  CertCase c = {
    .exchange = "main", .leaf_a = "client", .leaf_b = "gw",
    .ids_b = "<remote-id type=\"dn\" value=\"CN=someone,O=modike\"/>",
  };

  fail_case (&c, NULL, "peer a: identity CN=client,O=modike is not the configured CN=someone,O=modike");
}

/* Our own identity must be in our certificate: B refuses to send it. */
static void
test_local_id_not_in_cert (void)
{
  CertCase c = {
    .exchange = "main", .leaf_a = "client", .leaf_b = "gw",
    .ids_b = "<local-id type=\"fqdn\" value=\"client.example\"/>",
  };
  Node *a, *b;
  Net *net = cert_pair (&c, &a, &b);

  modike_ike_initiate (a->ike, "b", NULL);
  net_run (net, 60000, NULL, NULL);
  g_assert_nonnull (b->p1_error);
  g_assert_cmpstr (b->p1_error->message, ==,
                   "peer a: our identity 'client.example' is not in our certificate 'CN=gw,O=modike'");
  g_assert_cmpuint (a->p1_up + b->p1_up, ==, 0);
  net_free (net);
}

/* ---- Aggressive Mode message 2 is in the clear: rewrite it ---- */

/* Offset in the packet of payload i's generic header. */
static gsize
payload_offset (const ModikeMessage *msg, GBytes *packet, guint i)
{
  const ModikePayload *p = &g_array_index (msg->payloads, ModikePayload, i);

  return (gsize) (p->body - (const guint8 *) g_bytes_get_data (packet, NULL)) - 4;
}

/* Changes the packet (a copy of it) where payload i of msg is. */
typedef void (*PayloadEdit) (guint8 *packet, const ModikeMessage *msg, GBytes *orig, guint i);

/* Applies edit to every payload of that type in message 2. */
static FilterResult
rewrite_msg2 (guint n, Packet *pk, guint8 type, PayloadEdit edit)
{
  g_autoptr (ModikeMessage) msg = NULL;
  g_autoptr (GByteArray) copy = NULL;

  if (n != 2)
    return FILTER_PASS;
  msg = modike_message_parse (pk->data, NULL);
  g_assert_nonnull (msg);
  copy = g_byte_array_new ();
  g_byte_array_append (copy, g_bytes_get_data (pk->data, NULL), g_bytes_get_size (pk->data));
  for (guint i = 0; i < msg->payloads->len; i++)
    if (g_array_index (msg->payloads, ModikePayload, i).type == type)
      edit (copy->data, msg, pk->data, i);
  g_bytes_unref (pk->data);
  pk->data = g_byte_array_free_to_bytes (g_steal_pointer (&copy));
  return FILTER_PASS;
}

static void
flip_sig_bit (guint8 *packet, const ModikeMessage *msg, GBytes *orig, guint i)
{
  packet[payload_offset (msg, orig, i) + 4 + 10] ^= 0x01;
}

/* The type of payload i is in the header before it: CERT becomes VID
 * (unknown ones are ignored), so the message carries no certificate. */
static void
cert_to_vid (guint8 *packet, const ModikeMessage *msg, GBytes *orig, guint i)
{
  gsize at = i == 0 ? 16 : payload_offset (msg, orig, i - 1);

  g_assert_cmpuint (packet[at], ==, MODIKE_PL_CERT);
  packet[at] = MODIKE_PL_VID;
}

/* B's DN in its ID payload becomes CN=gx: an ID its certificate lacks
 * (checked before the signature, which covers the ID). */
static void
rename_gw (guint8 *packet, const ModikeMessage *msg, GBytes *orig, guint i)
{
  const ModikePayload *p = &g_array_index (msg->payloads, ModikePayload, i);
  gsize at = payload_offset (msg, orig, i) + 4;
  gboolean done = FALSE;

  for (gsize k = 0; k + 1 < p->len && !done; k++)
    if (packet[at + k] == 'g' && packet[at + k + 1] == 'w')
      {
        packet[at + k + 1] = 'x';
        done = TRUE;
      }
  g_assert_true (done);
}

static FilterResult
filter_rename_id (Net *net, guint n, Packet *pk, gpointer user)
{
  return rewrite_msg2 (n, pk, MODIKE_PL_ID, rename_gw);
}

static FilterResult
filter_tamper_sig (Net *net, guint n, Packet *pk, gpointer user)
{
  return rewrite_msg2 (n, pk, MODIKE_PL_SIG, flip_sig_bit);
}

static FilterResult
filter_drop_certs (Net *net, guint n, Packet *pk, gpointer user)
{
  return rewrite_msg2 (n, pk, MODIKE_PL_CERT, cert_to_vid);
}

static void
test_bad_signature (void)
{
  CertCase c = { .exchange = "aggressive", .leaf_a = "client", .leaf_b = "gw", .filter = filter_tamper_sig };

  fail_case (&c, "peer b: SIG_R: signature does not verify with the key of certificate 'CN=gw,O=modike'", NULL);
}

static void
test_id_not_in_cert (void)
{
  CertCase c = { .exchange = "aggressive", .leaf_a = "client", .leaf_b = "gw", .filter = filter_rename_id };

  fail_case (&c, "peer b: ID 'CN=gx,O=modike' is not in certificate 'CN=gw,O=modike'", NULL);
}

static void
test_missing_cert (void)
{
  CertCase c = { .exchange = "aggressive", .leaf_a = "client", .leaf_b = "gw", .filter = filter_drop_certs };

  fail_case (&c, "peer b: no X.509 certificate from the peer", NULL);
}

/* What Aggressive Mode carries: CR in message 1, two CERTs (leaf and
 * intermediate), SIG and CR in message 2, no HASH. */
typedef struct {
  guint cr1, cert2, sig2, cr2, hash2;
} Am2Counts;

static FilterResult
filter_count (Net *net, guint n, Packet *pk, gpointer user)
{
  Am2Counts *k = user;
  g_autoptr (ModikeMessage) msg = NULL;

  if (n > 2)
    return FILTER_PASS;
  msg = modike_message_parse (pk->data, NULL);
  g_assert_nonnull (msg);
  if (n == 1)
    k->cr1 = modike_message_count (msg, MODIKE_PL_CR);
  else
    {
      k->cert2 = modike_message_count (msg, MODIKE_PL_CERT);
      k->sig2 = modike_message_count (msg, MODIKE_PL_SIG);
      k->cr2 = modike_message_count (msg, MODIKE_PL_CR);
      k->hash2 = modike_message_count (msg, MODIKE_PL_HASH);
    }
  return FILTER_PASS;
}

static void
test_am_payloads (void)
{
  CertCase c = { .exchange = "aggressive", .leaf_a = "client", .leaf_b = "gw", .filter = filter_count };
  Am2Counts k = { 0 };
  Node *a, *b;
  Net *net = cert_pair (&c, &a, &b);

  net->filter_user = &k;
  bring_up (net, a, b, 1);
  g_assert_cmpuint (k.cr1, ==, 1);
  g_assert_cmpuint (k.cert2, ==, 2);
  g_assert_cmpuint (k.sig2, ==, 1);
  g_assert_cmpuint (k.cr2, ==, 1);
  g_assert_cmpuint (k.hash2, ==, 0);
  g_assert_cmpuint (a->ike->stats.auth_failures + b->ike->stats.auth_failures, ==, 0);
  net_free (net);
}

/* A PSK peer and an RSA peer do not agree on a proposal. */
static void
test_psk_vs_rsa (void)
{
  Params p = params_default ();
  Net *net = net_new ();
  g_autofree char *xa = config_xml (&p, TRUE);
  g_autofree char *xb = cert_config_xml (&p, FALSE, "rsa", "gw", "ca.pem", NULL);
  Node *a = node_new_xml (net, "a", "192.0.2.2", xa);
  Node *b = node_new_xml (net, "b", "192.0.2.1", xb);

  modike_ike_initiate (a->ike, "b", NULL);
  net_run (net, 60000, NULL, NULL);
  g_assert_cmpuint (a->p1_up + b->p1_up, ==, 0);
  g_assert_nonnull (b->p1_error);
  g_assert_error (b->p1_error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_NO_PROPOSAL_CHOSEN);
  net_free (net);
}

void
fsm_add_cert_tests (void)
{
  g_test_add_func ("/fsm/certs/mm/a-initiates", test_mm_a_initiates);
  g_test_add_func ("/fsm/certs/mm/b-initiates", test_mm_b_initiates);
  g_test_add_func ("/fsm/certs/am/a-initiates", test_am_a_initiates);
  g_test_add_func ("/fsm/certs/am/b-initiates", test_am_b_initiates);
  g_test_add_func ("/fsm/certs/am/payloads", test_am_payloads);
  g_test_add_func ("/fsm/certs/san-ids", test_san_ids);
  g_test_add_func ("/fsm/certs/untrusted", test_untrusted);
  g_test_add_func ("/fsm/certs/untrusted-am", test_untrusted_am);
  g_test_add_func ("/fsm/certs/expired", test_expired);
  g_test_add_func ("/fsm/certs/revoked", test_revoked);
  g_test_add_func ("/fsm/certs/wrong-remote-id", test_wrong_remote_id);
  g_test_add_func ("/fsm/certs/wrong-remote-dn", test_wrong_remote_dn);
  g_test_add_func ("/fsm/certs/local-id-not-in-cert", test_local_id_not_in_cert);
  g_test_add_func ("/fsm/certs/bad-signature", test_bad_signature);
  g_test_add_func ("/fsm/certs/id-not-in-cert", test_id_not_in_cert);
  g_test_add_func ("/fsm/certs/missing-cert", test_missing_cert);
  g_test_add_func ("/fsm/certs/psk-vs-rsa", test_psk_vs_rsa);
}
