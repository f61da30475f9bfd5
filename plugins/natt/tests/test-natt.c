/* natt: vendor IDs, NAT-D hashes and detection, encapsulation modes, and
 * that its registrations land in a registry without conflict. */
#include "natt.h"
#include "loader.h"

#include <string.h>

static void
test_vendor_ids (void)
{
  static const struct { const char *text; NattVersion v; gboolean nl; } cases[] = {
    { "RFC 3947", NATT_RFC, FALSE },
    { "draft-ietf-ipsec-nat-t-ike-03", NATT_DRAFT_03, FALSE },
    { "draft-ietf-ipsec-nat-t-ike-02", NATT_DRAFT_02, FALSE },
    { "draft-ietf-ipsec-nat-t-ike-02\n", NATT_DRAFT_02, TRUE },
  };

  /* Each VID is the MD5 of its name (RFC 3947 3.1 and the drafts). */
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      guint8 md5[16];
      modike_hash (MODIKE_HASH_MD5, cases[i].text, strlen (cases[i].text), md5);
      g_assert_cmpmem (natt_vendor_id (cases[i].v, cases[i].nl), 16, md5, 16);
    }
  g_assert_null (natt_vendor_id (NATT_NONE, FALSE));
}

static void
fixture_addrs (ModikeAddr *a, ModikeAddr *b)
{
  g_assert_true (modike_addr_parse ("192.0.2.2", 500, a, NULL));
  g_assert_true (modike_addr_parse ("192.0.2.1", 500, b, NULL));
}

static void
test_hash_input (void)
{
  static const guint8 ic[8] = { 1, 2, 3, 4, 5, 6, 7, 8 }, rc[8] = { 9, 10, 11, 12, 13, 14, 15, 16 };
  ModikeAddr a, b;
  guint8 h[MODIKE_HASH_MAX], want[MODIKE_HASH_MAX];
  guint8 in[8 + 8 + 4 + 2];

  fixture_addrs (&a, &b);
  /* HASH(CKY-I | CKY-R | IP | Port) with the port in network order. */
  memcpy (in, ic, 8);
  memcpy (in + 8, rc, 8);
  memcpy (in + 16, (guint8[]) { 192, 0, 2, 2 }, 4);
  in[20] = 0x01, in[21] = 0xf4;
  modike_hash (MODIKE_HASH_SHA2_256, in, sizeof in, want);
  natt_hash (MODIKE_HASH_SHA2_256, ic, rc, &a, h);
  g_assert_cmpmem (h, 32, want, 32);

  /* Port and address both count. */
  a.port = 4500;
  natt_hash (MODIKE_HASH_SHA2_256, ic, rc, &a, h);
  g_assert_false (memcmp (h, want, 32) == 0);
}

static void
test_hash_ipv6 (void)
{
  static const guint8 ic[8] = { 0 }, rc[8] = { 0xff };
  ModikeAddr a;
  guint8 in[8 + 8 + 16 + 2] = { 0 }, want[20], h[20];

  g_assert_true (modike_addr_parse ("2001:db8::2", 500, &a, NULL));
  memcpy (in + 8, rc, 8);
  memcpy (in + 16, a.addr, 16);
  in[32] = 0x01, in[33] = 0xf4;
  modike_hash (MODIKE_HASH_SHA1, in, sizeof in, want);
  natt_hash (MODIKE_HASH_SHA1, ic, rc, &a, h);
  g_assert_cmpmem (h, 20, want, 20);
}

/* Runs detection the way the receiver of the peer's NAT-D would. */
static void
detect (const ModikeAddr *seen_local, const ModikeAddr *seen_remote,
        const ModikeAddr *local, const ModikeAddr *remote, gboolean *ln, gboolean *rn)
{
  static const guint8 ic[8] = { 7 }, rc[8] = { 8 };
  guint8 h1[32], h2[32];
  ModikePayload p1 = { MODIKE_PL_NAT_D, h1, 32 }, p2 = { MODIKE_PL_NAT_D, h2, 32 };
  const ModikePayload *const natd[] = { &p1, &p2 };

  /* The sender's view: its peer (us) at seen_local, itself at seen_remote. */
  natt_hash (MODIKE_HASH_SHA2_256, ic, rc, seen_local, h1);
  natt_hash (MODIKE_HASH_SHA2_256, ic, rc, seen_remote, h2);
  natt_detect (MODIKE_HASH_SHA2_256, ic, rc, local, remote, natd, 2, ln, rn);
}

static void
test_detect (void)
{
  ModikeAddr a, b, mapped;
  gboolean ln, rn;

  fixture_addrs (&a, &b);
  detect (&a, &b, &a, &b, &ln, &rn);
  g_assert_false (ln);
  g_assert_false (rn);

  /* We are NATed: the peer saw us at another address/port. */
  g_assert_true (modike_addr_parse ("203.0.113.9", 1024, &mapped, NULL));
  detect (&mapped, &b, &a, &b, &ln, &rn);
  g_assert_true (ln);
  g_assert_false (rn);

  /* The peer is NATed: it thinks it is at a private address. */
  g_assert_true (modike_addr_parse ("198.51.100.7", 500, &mapped, NULL));
  detect (&a, &mapped, &a, &b, &ln, &rn);
  g_assert_false (ln);
  g_assert_true (rn);
}

static void
test_detect_bad_lengths (void)
{
  ModikeAddr a, b;
  guint8 h[32];
  gboolean ln, rn;
  ModikePayload p1 = { MODIKE_PL_NAT_D, h, 20 };
  const ModikePayload *const natd[] = { &p1 };

  fixture_addrs (&a, &b);
  natt_hash (MODIKE_HASH_SHA2_256, (guint8[8]) { 0 }, (guint8[8]) { 0 }, &a, h);
  /* A hash of the wrong size never matches: treated as NAT, no overread. */
  natt_detect (MODIKE_HASH_SHA2_256, (guint8[8]) { 0 }, (guint8[8]) { 0 }, &a, &b, natd, 1, &ln, &rn);
  g_assert_true (ln);
  g_assert_true (rn);
  natt_detect (MODIKE_HASH_SHA2_256, (guint8[8]) { 0 }, (guint8[8]) { 0 }, &a, &b, NULL, 0, &ln, &rn);
  g_assert_true (ln);
  g_assert_true (rn);
}

static void
test_encap_modes (void)
{
  guint16 mode;
  gboolean udp;

  g_assert_cmpuint (natt_encap_value (NATT_RFC, MODIKE_ENCAP_TUNNEL), ==, 3);
  g_assert_cmpuint (natt_encap_value (NATT_RFC, MODIKE_ENCAP_TRANSPORT), ==, 4);
  g_assert_cmpuint (natt_encap_value (NATT_DRAFT_02, MODIKE_ENCAP_TUNNEL), ==, 61443);
  g_assert_cmpuint (natt_encap_value (NATT_DRAFT_03, MODIKE_ENCAP_TRANSPORT), ==, 61444);
  g_assert_cmpuint (natt_encap_value (NATT_NONE, MODIKE_ENCAP_TUNNEL), ==, 1);

  g_assert_true (natt_encap_parse (3, &mode, &udp));
  g_assert_cmpuint (mode, ==, MODIKE_ENCAP_TUNNEL);
  g_assert_true (udp);
  g_assert_true (natt_encap_parse (61444, &mode, &udp));
  g_assert_cmpuint (mode, ==, MODIKE_ENCAP_TRANSPORT);
  g_assert_true (udp);
  g_assert_true (natt_encap_parse (1, &mode, &udp));
  g_assert_false (udp);
  g_assert_false (natt_encap_parse (5, &mode, &udp));
  g_assert_false (natt_encap_parse (0, &mode, &udp));
}

extern const ModikePluginDescriptor *modike_plugin_descriptor (void);

static void
test_registers (void)
{
  g_autoptr (ModikeRegistry) reg = modike_registry_new ();
  g_autoptr (ModikeLoader) loader = modike_loader_new (reg, NULL);
  g_autoptr (GError) error = NULL;
  const char *names[] = { "natt", NULL };
  const char *twice[] = { "natt", NULL };
  gpointer user = NULL;
  GArray *ports;
  GPtrArray *vids;

  g_assert_true (modike_ike_register_core (reg, &error));
  g_assert_no_error (error);
  modike_loader_add_static (loader, modike_plugin_descriptor ());
  g_assert_true (modike_loader_load (loader, names, &error));
  g_assert_no_error (error);

  /* NAT-D is optional in MM 3/4 and AM 2/3, nowhere else. */
  g_assert_cmpuint (modike_registry_payloads_at (reg, MODIKE_EX_MAIN, 3)->len, ==, 2);
  g_assert_cmpuint (modike_registry_payloads_at (reg, MODIKE_EX_AGGRESSIVE, 3)->len, ==, 2);
  g_assert_true (modike_registry_payloads_at (reg, MODIKE_EX_MAIN, 5) == NULL
                 || modike_registry_payloads_at (reg, MODIKE_EX_MAIN, 5)->len == 0);
  vids = modike_registry_vendor_ids (reg);
  g_assert_cmpuint (vids->len, ==, 4);
  g_ptr_array_unref (vids);
  g_assert_nonnull (modike_registry_match_vendor_id (reg, natt_vendor_id (NATT_RFC, FALSE), 16));
  g_assert_nonnull (modike_registry_encap (reg, &user));
  ports = modike_registry_ports (reg);
  g_assert_cmpuint (ports->len, ==, 1);
  g_assert_cmpuint (g_array_index (ports, guint32, 0) & 0xffff, ==, 4500);
  g_array_unref (ports);

  /* A second natt is refused, naming the cause. */
  g_assert_false (modike_loader_load (loader, twice, &error));
  g_assert_nonnull (error);
  g_assert_nonnull (strstr (error->message, "natt"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/natt/vendor-ids", test_vendor_ids);
  g_test_add_func ("/natt/hash-input", test_hash_input);
  g_test_add_func ("/natt/hash-ipv6", test_hash_ipv6);
  g_test_add_func ("/natt/detect", test_detect);
  g_test_add_func ("/natt/detect-bad-lengths", test_detect_bad_lengths);
  g_test_add_func ("/natt/encap-modes", test_encap_modes);
  g_test_add_func ("/natt/registers", test_registers);
  return g_test_run ();
}
