/* Configuration loading: the examples, good vectors (values land in the
 * right struct fields), bad vectors (every message names file, line and
 * element), plugin sections. */
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <glib.h>
#include <libxml/tree.h>
#include <string.h>

#include <modike/config.h>
#include <modike/protocol.h>

static char *
vector_path (const char *name)
{
  return g_test_build_filename (G_TEST_DIST, "vectors", "config", name, NULL);
}

static char *
example_path (const char *name)
{
  return g_test_build_filename (G_TEST_DIST, "..", "docs", "examples", name, NULL);
}

static ModikeConfig *
load_ok (char *path /* taken */)
{
  g_autofree char *p = path;
  g_autoptr (GError) error = NULL;
  ModikeConfig *cfg = modike_config_load (p, &error);
  g_assert_no_error (error);
  g_assert_nonnull (cfg);
  g_assert_cmpstr (cfg->path, ==, p);
  return cfg;
}

static ModikeConfig *
load_string_ok (const char *xml)
{
  g_autoptr (GError) error = NULL;
  ModikeConfig *cfg = modike_config_load_string (xml, "inline.xml", &error);
  g_assert_no_error (error);
  g_assert_nonnull (cfg);
  return cfg;
}

static void
assert_addr (const ModikeAddr *a, const char *text, guint16 port)
{
  ModikeAddr want;
  g_autoptr (GError) error = NULL;
  g_assert_true (modike_addr_parse (text, port, &want, &error));
  g_assert_no_error (error);
  g_assert_cmpint (a->family, ==, want.family);
  g_assert_cmpmem (a->addr, modike_addr_len (a), want.addr, modike_addr_len (&want));
  g_assert_cmpuint (a->port, ==, want.port);
}

static void
assert_range (const ModikeAddrRange *r, const char *from, const char *to)
{
  assert_addr (&r->from, from, 0);
  assert_addr (&r->to, to, 0);
}

static void
assert_any_range (const ModikeAddrRange *r)
{
  g_assert_cmpint (r->from.family, ==, 0);
  g_assert_cmpint (r->to.family, ==, 0);
}

static void
assert_ports (const ModikePortRange *p, guint from, guint to)
{
  g_assert_cmpuint (p->from, ==, from);
  g_assert_cmpuint (p->to, ==, to);
}

static void
assert_p1 (const ModikePeerConfig *p, guint i, guint encr, guint bits, guint hash, guint group)
{
  g_assert_cmpuint (i, <, p->p1_proposals->len);
  const ModikeP1Proposal *x = &g_array_index (p->p1_proposals, ModikeP1Proposal, i);
  g_assert_cmpuint (x->encr, ==, encr);
  g_assert_cmpuint (x->key_bits, ==, bits);
  g_assert_cmpuint (x->hash, ==, hash);
  g_assert_cmpuint (x->group, ==, group);
}

static void
assert_esp (const ModikeSpdEntry *e, guint i, guint transform, guint bits, guint auth)
{
  g_assert_cmpuint (i, <, e->proposals->len);
  const ModikeEspProposal *x = &g_array_index (e->proposals, ModikeEspProposal, i);
  g_assert_cmpuint (x->esp_transform, ==, transform);
  g_assert_cmpuint (x->key_bits, ==, bits);
  g_assert_cmpuint (x->auth_alg, ==, auth);
}

static void
assert_psk (const ModikePeerConfig *p, const char *secret)
{
  g_assert_nonnull (p->psk);
  g_assert_cmpmem (p->psk->data, p->psk->len, secret, strlen (secret));
}

static const ModikeSpdEntry *
policy (const ModikeConfig *cfg, guint i, const char *name)
{
  g_assert_cmpuint (i, <, cfg->policies->len);
  const ModikeSpdEntry *e = cfg->policies->pdata[i];
  g_assert_cmpstr (e->name, ==, name);
  return e;
}

static const char natt_fragment[] =
  "<element name=\"natt\" xmlns=\"http://relaxng.org/ns/structure/1.0\">"
  "<optional><attribute name=\"force-encap\"><choice><value>yes</value><value>no</value></choice>"
  "</attribute></optional><empty/></element>";

static GHashTable *
natt_fragments (void)
{
  GHashTable *t = g_hash_table_new (g_str_hash, g_str_equal);
  g_hash_table_insert (t, (gpointer) "natt", (gpointer) natt_fragment);
  return t;
}

/* ---- The examples in docs/examples ---- */

static void
test_example_client (void)
{
  g_autoptr (ModikeConfig) cfg = load_ok (example_path ("client.xml"));
  g_autoptr (GHashTable) frags = natt_fragments ();
  g_autoptr (GError) error = NULL;

  g_assert_cmpuint (cfg->listen->len, ==, 1);
  assert_addr (&g_array_index (cfg->listen, ModikeAddr, 0), "192.0.2.2", 500);
  g_assert_cmpuint (cfg->plugins->len, ==, 1);
  g_assert_cmpstr (cfg->plugins->pdata[0], ==, "natt");
  g_assert_cmpstr (cfg->log_level, ==, "info");
  g_assert_cmpstr (cfg->status_file, ==, "/run/modiked.status");
  g_assert_true (modike_config_check_plugins (cfg, frags, &error));
  g_assert_no_error (error);

  g_assert_cmpuint (cfg->peers->len, ==, 1);
  const ModikePeerConfig *gw = modike_config_find_peer (cfg, "gw");
  g_assert_nonnull (gw);
  g_assert_true (gw->initiate);
  assert_addr (&gw->local, "192.0.2.2", 500);
  assert_addr (&gw->remote, "192.0.2.1", 500);
  g_assert_cmpuint (gw->local_id_type, ==, MODIKE_ID_FQDN);
  g_assert_cmpstr (gw->local_id, ==, "client.example.org");
  g_assert_cmpuint (gw->remote_id_type, ==, MODIKE_ID_FQDN);
  g_assert_cmpstr (gw->remote_id, ==, "gw.example.org");
  g_assert_cmpuint (gw->auth, ==, MODIKE_AUTH_PSK);
  assert_psk (gw, "change-me-to-a-long-random-secret");
  g_assert_cmpuint (gw->exchange, ==, MODIKE_EX_MAIN);
  g_assert_cmpuint (gw->p1_proposals->len, ==, 2);
  assert_p1 (gw, 0, MODIKE_ENCR_AES_CBC, 256, MODIKE_HASH_SHA2_256, MODIKE_DH_MODP2048);
  assert_p1 (gw, 1, MODIKE_ENCR_AES_CBC, 128, MODIKE_HASH_SHA2_256, MODIKE_DH_ECP256);

  g_assert_cmpuint (cfg->policies->len, ==, 2);
  const ModikeSpdEntry *office = policy (cfg, 0, "office");
  g_assert_cmpstr (office->peer, ==, "gw");
  g_assert_cmpint (office->action, ==, MODIKE_SPD_PROTECT);
  g_assert_cmpint (office->mode, ==, MODIKE_MODE_TUNNEL);
  assert_range (&office->local, "10.99.0.0", "10.99.0.15");
  assert_range (&office->remote, "198.51.100.0", "198.51.100.255");
  g_assert_cmpuint (office->pfs_group, ==, MODIKE_DH_MODP2048);
  g_assert_cmpuint (office->proposals->len, ==, 2);
  assert_esp (office, 0, MODIKE_ESP_AES_GCM_16, 128, MODIKE_AUTH_ALG_NONE);
  assert_esp (office, 1, MODIKE_ESP_AES_CBC, 128, MODIKE_AUTH_ALG_HMAC_SHA2_256);
  const ModikeSpdEntry *dns = policy (cfg, 1, "dns");
  g_assert_cmpint (dns->action, ==, MODIKE_SPD_BYPASS);
  g_assert_cmpuint (dns->proto, ==, 17);
  assert_ports (&dns->remote_port, 53, 53);
}

static void
test_example_gateway (void)
{
  g_autoptr (ModikeConfig) cfg = load_ok (example_path ("gateway.xml"));
  g_autoptr (ModikeConfig) client = load_ok (example_path ("client.xml"));
  g_autoptr (GHashTable) frags = natt_fragments ();
  g_autoptr (GError) error = NULL;

  g_assert_true (modike_config_check_plugins (cfg, frags, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (cfg->log_level, ==, "message");

  const ModikePeerConfig *br = modike_config_find_peer (cfg, "branch");
  const ModikePeerConfig *gw = modike_config_find_peer (client, "gw");
  g_assert_nonnull (br);
  g_assert_false (br->initiate);
  /* The two examples describe the two ends of one tunnel. */
  g_assert_cmpmem (br->local.addr, 4, gw->remote.addr, 4);
  g_assert_cmpmem (br->remote.addr, 4, gw->local.addr, 4);
  g_assert_cmpstr (br->local_id, ==, gw->remote_id);
  g_assert_cmpstr (br->remote_id, ==, gw->local_id);
  g_assert_cmpmem (br->psk->data, br->psk->len, gw->psk->data, gw->psk->len);

  g_assert_cmpuint (cfg->policies->len, ==, 4);
  const ModikeSpdEntry *net = policy (cfg, 0, "branch-net");
  const ModikeSpdEntry *office = policy (client, 0, "office");
  g_assert_cmpmem (&net->local, sizeof net->local, &office->remote, sizeof office->remote);
  g_assert_cmpmem (&net->remote, sizeof net->remote, &office->local, sizeof office->local);
  const ModikeSpdEntry *ping = policy (cfg, 2, "ping");
  g_assert_cmpuint (ping->proto, ==, 1);
  assert_ports (&ping->local_port, 0 << 8 | 0, 8 << 8 | 255);
  assert_range (&ping->local, "0.0.0.0", "255.255.255.255");
  const ModikeSpdEntry *leaks = policy (cfg, 3, "no-leaks");
  g_assert_cmpint (leaks->action, ==, MODIKE_SPD_DISCARD);
  g_assert_cmpuint (leaks->proposals->len, ==, 0);
}

/* The guide shows the example files verbatim. */
static void
test_examples_in_guide (void)
{
  g_autofree char *guide_path = g_test_build_filename (G_TEST_DIST, "..", "docs", "configuration.md", NULL);
  g_autofree char *guide = NULL;
  g_autoptr (GError) error = NULL;
  g_assert_true (g_file_get_contents (guide_path, &guide, NULL, &error));
  g_assert_no_error (error);
  static const char *const names[] = { "client.xml", "gateway.xml" };
  for (gsize i = 0; i < G_N_ELEMENTS (names); i++) {
    g_autofree char *path = example_path (names[i]);
    g_autofree char *text = NULL;
    g_assert_true (g_file_get_contents (path, &text, NULL, &error));
    g_assert_no_error (error);
    g_autofree char *block = g_strdup_printf ("```xml\n%s```\n", text);
    if (strstr (guide, block) == NULL)
      g_error ("docs/configuration.md does not show %s verbatim", names[i]);
  }
}

/* ---- Good vectors ---- */

static void
test_good_full (void)
{
  g_autoptr (ModikeConfig) cfg = load_ok (vector_path ("good-full.xml"));

  g_assert_cmpuint (cfg->listen->len, ==, 1);
  assert_addr (&g_array_index (cfg->listen, ModikeAddr, 0), "192.0.2.2", 500);
  g_assert_cmpstr (cfg->plugin_dir, ==, "/optional/dir");
  g_assert_cmpuint (cfg->plugins->len, ==, 1);
  g_assert_cmpstr (cfg->log_level, ==, "info");
  g_assert_cmpstr (cfg->status_file, ==, "/run/modiked.status");
  g_assert_nonnull (cfg->doc);

  xmlNode *natt = modike_config_section (cfg, "natt");
  g_assert_nonnull (natt);
  g_assert_cmpint (xmlGetLineNo (natt), ==, 12);
  g_assert_null (modike_config_section (cfg, "peer"));
  g_assert_null (modike_config_section (cfg, "daemon"));
  g_assert_null (modike_config_section (cfg, "frob"));

  g_assert_cmpuint (cfg->peers->len, ==, 1);
  const ModikePeerConfig *p = modike_config_find_peer (cfg, "gw");
  g_assert_nonnull (p);
  g_assert_cmpstr (p->name, ==, "gw");
  g_assert_cmpuint (p->line, ==, 16);
  g_assert_true (p->initiate);
  assert_addr (&p->local, "192.0.2.2", 500);
  assert_addr (&p->remote, "192.0.2.1", 500);
  g_assert_cmpuint (p->local_id_type, ==, MODIKE_ID_FQDN);
  g_assert_cmpstr (p->local_id, ==, "client");
  g_assert_cmpstr (p->remote_id, ==, "gw");
  assert_psk (p, "testpsk");
  g_assert_cmpuint (p->exchange, ==, MODIKE_EX_MAIN);
  g_assert_cmpuint (p->p1_life_seconds, ==, 28800);
  g_assert_cmpuint (p->p1_life_kbytes, ==, 0);
  g_assert_cmpuint (p->p1_proposals->len, ==, 1);
  assert_p1 (p, 0, MODIKE_ENCR_AES_CBC, 128, MODIKE_HASH_SHA2_256, MODIKE_DH_MODP2048);
  g_assert_cmpuint (p->retransmit_ms, ==, 2000);
  g_assert_cmpuint (p->retransmit_tries, ==, 5);
  g_assert_cmpuint (p->half_open_s, ==, 30);
  g_assert_cmpstr (modike_peer_config_option (p, "natt.force"), ==, "yes");
  g_assert_null (modike_peer_config_option (p, "natt.other"));

  g_assert_cmpuint (cfg->policies->len, ==, 2);
  const ModikeSpdEntry *net = policy (cfg, 0, "net");
  g_assert_cmpstr (net->peer, ==, "gw");
  g_assert_cmpint (net->action, ==, MODIKE_SPD_PROTECT);
  g_assert_cmpint (net->mode, ==, MODIKE_MODE_TUNNEL);
  assert_range (&net->local, "10.99.0.0", "10.99.0.15");
  assert_range (&net->remote, "198.51.100.0", "198.51.100.255");
  g_assert_cmpuint (net->proto, ==, 0);
  assert_ports (&net->local_port, 0, 65535);
  assert_ports (&net->remote_port, 0, 65535);
  g_assert_cmpuint (net->pfs_group, ==, MODIKE_DH_MODP2048);
  g_assert_cmpuint (net->life_seconds, ==, 3600);
  g_assert_cmpuint (net->life_kbytes, ==, 0);
  g_assert_cmpuint (net->proposals->len, ==, 2);
  assert_esp (net, 0, MODIKE_ESP_AES_CBC, 128, MODIKE_AUTH_ALG_HMAC_SHA2_256);
  assert_esp (net, 1, MODIKE_ESP_AES_GCM_16, 128, MODIKE_AUTH_ALG_NONE);

  const ModikeSpdEntry *dns = policy (cfg, 1, "dns");
  g_assert_null (dns->peer);
  g_assert_cmpint (dns->action, ==, MODIKE_SPD_BYPASS);
  /* "any" beside an IPv4 selector is any IPv4 address. */
  assert_range (&dns->local, "0.0.0.0", "255.255.255.255");
  assert_range (&dns->remote, "198.51.100.53", "198.51.100.53");
  g_assert_cmpuint (dns->proto, ==, 17);
  assert_ports (&dns->local_port, 0, 65535);
  assert_ports (&dns->remote_port, 53, 53);
  g_assert_cmpuint (dns->pfs_group, ==, 0);
  g_assert_cmpuint (dns->proposals->len, ==, 0);
}

static void
test_good_minimal (void)
{
  g_autoptr (ModikeConfig) cfg = load_ok (vector_path ("good-minimal.xml"));

  g_assert_cmpuint (cfg->listen->len, ==, 0);
  g_assert_cmpuint (cfg->plugins->len, ==, 0);
  g_assert_null (cfg->plugin_dir);
  g_assert_cmpstr (cfg->log_level, ==, "message");
  g_assert_null (cfg->status_file);
  g_assert_cmpuint (cfg->policies->len, ==, 0);

  const ModikePeerConfig *p = modike_config_find_peer (cfg, "anyone");
  g_assert_nonnull (p);
  g_assert_cmpuint (p->line, ==, 4);
  g_assert_false (p->initiate);
  g_assert_cmpint (p->local.family, ==, 0);
  g_assert_cmpint (p->remote.family, ==, 0);
  g_assert_cmpuint (p->local_id_type, ==, 0);
  g_assert_null (p->local_id);
  g_assert_cmpuint (p->remote_id_type, ==, 0);
  g_assert_null (p->remote_id);
  assert_psk (p, "minimal-secret");
  g_assert_cmpuint (p->exchange, ==, MODIKE_EX_MAIN);
  g_assert_cmpuint (p->p1_life_seconds, ==, 28800);
  g_assert_cmpuint (p->retransmit_ms, ==, 2000);
  g_assert_cmpuint (p->retransmit_tries, ==, 5);
  g_assert_cmpuint (p->half_open_s, ==, 30);
  g_assert_cmpuint (g_hash_table_size (p->options), ==, 0);
  assert_p1 (p, 0, MODIKE_ENCR_AES_CBC, 256, MODIKE_HASH_SHA2_256, MODIKE_DH_MODP2048);
  g_assert_null (modike_config_find_peer (cfg, "nobody"));
}

static void
test_good_empty (void)
{
  g_autoptr (ModikeConfig) cfg = load_ok (vector_path ("good-empty.xml"));
  g_assert_cmpuint (cfg->peers->len, ==, 0);
  g_assert_cmpuint (cfg->policies->len, ==, 0);
  g_assert_true (modike_config_check_plugins (cfg, NULL, NULL));
}

static void
test_good_ipv6 (void)
{
  g_autoptr (ModikeConfig) cfg = load_ok (vector_path ("good-ipv6.xml"));

  g_assert_cmpuint (cfg->listen->len, ==, 2);
  assert_addr (&g_array_index (cfg->listen, ModikeAddr, 0), "2001:db8::2", 500);
  assert_addr (&g_array_index (cfg->listen, ModikeAddr, 1), "2001:db8::2", 4500);
  g_assert_cmpstr (cfg->log_level, ==, "debug");

  const ModikePeerConfig *p = modike_config_find_peer (cfg, "v6gw");
  g_assert_nonnull (p);
  assert_addr (&p->local, "2001:db8::2", 500);
  assert_addr (&p->remote, "2001:db8::1", 500);
  g_assert_cmpuint (p->local_id_type, ==, MODIKE_ID_IPV6_ADDR);
  g_assert_cmpstr (p->local_id, ==, "2001:db8::2");
  g_assert_cmpuint (p->remote_id_type, ==, MODIKE_ID_USER_FQDN);
  g_assert_cmpstr (p->remote_id, ==, "vpn@example.org");
  g_assert_cmpuint (p->exchange, ==, MODIKE_EX_AGGRESSIVE);
  g_assert_cmpuint (p->p1_life_seconds, ==, 3600);
  g_assert_cmpuint (p->p1_life_kbytes, ==, 100000);
  assert_p1 (p, 0, MODIKE_ENCR_AES_CBC, 128, MODIKE_HASH_SHA1, MODIKE_DH_ECP256);
  assert_p1 (p, 1, MODIKE_ENCR_3DES, 0, MODIKE_HASH_MD5, MODIKE_DH_MODP1024);

  const ModikeSpdEntry *net = policy (cfg, 0, "v6net");
  assert_range (&net->local, "2001:db8:1::", "2001:db8:1:ffff:ffff:ffff:ffff:ffff");
  assert_range (&net->remote, "2001:db8:2::10", "2001:db8:2::1f");
  g_assert_cmpuint (net->pfs_group, ==, MODIKE_DH_CURVE25519);
  assert_esp (net, 0, MODIKE_ESP_AES_GCM_16, 256, MODIKE_AUTH_ALG_NONE);

  const ModikeSpdEntry *ping = policy (cfg, 1, "v6ping");
  g_assert_cmpint (ping->action, ==, MODIKE_SPD_BYPASS);
  assert_range (&ping->local, "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
  assert_range (&ping->remote, "2001:db8:3::", "2001:db8:3::ffff:ffff:ffff:ffff");
  g_assert_cmpuint (ping->proto, ==, 58);
  assert_ports (&ping->local_port, 128 << 8, 128 << 8);
  assert_ports (&ping->remote_port, 0, 65535);

  const ModikeSpdEntry *all = policy (cfg, 2, "v6all");
  g_assert_cmpint (all->action, ==, MODIKE_SPD_DISCARD);
  assert_range (&all->local, "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
  assert_range (&all->remote, "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
}

static void
test_good_selectors (void)
{
  g_autoptr (ModikeConfig) cfg = load_ok (vector_path ("good-selectors.xml"));

  const ModikePeerConfig *p = modike_config_find_peer (cfg, "host");
  g_assert_nonnull (p);
  g_assert_false (p->initiate);
  g_assert_cmpint (p->local.family, ==, 0);
  g_assert_cmpuint (p->local_id_type, ==, MODIKE_ID_KEY_ID);
  g_assert_cmpstr (p->local_id, ==, "client-7");
  g_assert_cmpuint (p->remote_id_type, ==, MODIKE_ID_DER_ASN1_DN);
  g_assert_cmpstr (p->remote_id, ==, "C=XX, O=Example, CN=host");
  g_assert_cmpuint (p->p1_proposals->len, ==, 5);
  assert_p1 (p, 0, MODIKE_ENCR_AES_CBC, 192, MODIKE_HASH_SHA2_384, MODIKE_DH_MODP3072);
  assert_p1 (p, 1, MODIKE_ENCR_AES_CBC, 256, MODIKE_HASH_SHA2_512, MODIKE_DH_ECP384);
  assert_p1 (p, 2, MODIKE_ENCR_AES_CBC, 128, MODIKE_HASH_SHA2_256, MODIKE_DH_MODP4096);
  assert_p1 (p, 3, MODIKE_ENCR_3DES, 0, MODIKE_HASH_SHA1, MODIKE_DH_MODP1536);
  assert_p1 (p, 4, MODIKE_ENCR_3DES, 0, MODIKE_HASH_SHA1, MODIKE_DH_MODP768);
  g_assert_cmpuint (p->retransmit_ms, ==, 500);
  g_assert_cmpuint (p->retransmit_tries, ==, 3);
  g_assert_cmpuint (p->half_open_s, ==, 10);
  g_assert_cmpstr (modike_peer_config_option (p, "natt.force"), ==, "yes");
  g_assert_cmpstr (modike_peer_config_option (p, "dpd.interval"), ==, "30");

  const ModikeSpdEntry *web = policy (cfg, 0, "web");
  g_assert_cmpint (web->mode, ==, MODIKE_MODE_TRANSPORT);
  assert_range (&web->local, "192.0.2.2", "192.0.2.2");
  assert_range (&web->remote, "192.0.2.7", "192.0.2.7");
  g_assert_cmpuint (web->proto, ==, 6);
  assert_ports (&web->local_port, 1024, 65535);
  assert_ports (&web->remote_port, 443, 443);
  g_assert_cmpuint (web->pfs_group, ==, 0);
  g_assert_cmpuint (web->life_seconds, ==, 600);
  g_assert_cmpuint (web->life_kbytes, ==, 4096);
  g_assert_cmpuint (web->proposals->len, ==, 6);
  assert_esp (web, 0, MODIKE_ESP_AES_CBC, 128, MODIKE_AUTH_ALG_HMAC_SHA1);
  assert_esp (web, 1, MODIKE_ESP_AES_CBC, 192, MODIKE_AUTH_ALG_HMAC_SHA2_384);
  assert_esp (web, 2, MODIKE_ESP_AES_CBC, 256, MODIKE_AUTH_ALG_HMAC_SHA2_512);
  assert_esp (web, 3, MODIKE_ESP_3DES, 0, MODIKE_AUTH_ALG_HMAC_MD5);
  assert_esp (web, 4, MODIKE_ESP_AES_GCM_16, 128, MODIKE_AUTH_ALG_NONE);
  assert_esp (web, 5, MODIKE_ESP_AES_GCM_16, 192, MODIKE_AUTH_ALG_NONE);

  /* ICMP: type in local-port, code in remote-port, packed type<<8|code. */
  const ModikeSpdEntry *echo = policy (cfg, 1, "echo");
  assert_range (&echo->local, "10.0.0.0", "10.255.255.255");
  assert_range (&echo->remote, "10.1.0.0", "10.1.255.255");
  g_assert_cmpuint (echo->proto, ==, 1);
  assert_ports (&echo->local_port, 8 << 8 | 0, 8 << 8 | 3);
  assert_ports (&echo->remote_port, 0, 65535);

  const ModikeSpdEntry *unreach = policy (cfg, 2, "unreach");
  assert_any_range (&unreach->local);
  assert_any_range (&unreach->remote);
  assert_ports (&unreach->local_port, 3 << 8, 4 << 8 | 255);

  const ModikeSpdEntry *gre = policy (cfg, 3, "gre");
  g_assert_cmpuint (gre->proto, ==, 47);
  g_assert_cmpint (gre->action, ==, MODIKE_SPD_DISCARD);
  assert_ports (&gre->local_port, 0, 65535);

  const ModikeSpdEntry *rest = policy (cfg, 4, "rest");
  assert_any_range (&rest->local);
  assert_any_range (&rest->remote);
  g_assert_cmpuint (rest->proto, ==, 0);
}

/* ---- Bad vectors: message names file, line, element; code is right ---- */

typedef struct {
  const char *file;
  int line;
  const char *element;
  ModikeConfigError code;
  const char *text; /* part of the message */
} BadVector;

#define INV MODIKE_CONFIG_ERROR_INVALID
#define SCH MODIKE_CONFIG_ERROR_SCHEMA
#define PAR MODIKE_CONFIG_ERROR_PARSE

static const BadVector bad_vectors[] = {
  { "bad-action.xml", 10, "policy", INV, "unknown action 'encrypt'" },
  { "bad-adapter-address.xml", 9, "adapter", INV, "bad address '203.0.113.1/33'" },
  { "bad-adapter-dot.xml", 9, "adapter", INV, "bad adapter name '..'" },
  { "bad-adapter-mtu.xml", 9, "adapter", INV, "mtu '500' is not a number in 576..65535" },
  { "bad-adapter-mtu-v6.xml", 9, "adapter", INV, "mtu 1000 is below 1280" },
  { "bad-adapter-name.xml", 9, "adapter", INV, "bad adapter name 'modike-tunnel-01'" },
  { "bad-adapter-offload.xml", 9, "adapter", INV, "offload must be 'yes' or 'no', not 'maybe'" },
  { "bad-adapter-queues.xml", 9, "adapter", INV, "queues '17' is not a number in 1..16" },
  { "bad-adapter-taken.xml", 11, "adapter", INV, "adapter name 'mk0' is taken by peer 'gw'" },
  { "bad-adapter-twice.xml", 10, "adapter", INV, "<adapter> given twice" },
  { "bad-address.xml", 4, "remote", INV, "bad address '192.0.2.300'" },
  { "bad-aead-integrity.xml", 11, "proposal", INV, "takes no integrity" },
  { "bad-auth-method.xml", 5, "auth", INV, "method rsa takes no secret" },
  { "bad-auth-method-name.xml", 5, "auth", INV, "unknown auth method 'xauth psk'" },
  { "bad-auth-plugin-method.xml", 5, "auth", INV, "unknown auth method 'xauth-psk'" },
  { "bad-bypass-proposal.xml", 11, "proposal", INV, "only protect policies take proposals" },
  { "bad-daemon-twice.xml", 4, "daemon", INV, "given twice" },
  { "bad-doctype.xml", 6, "modike", PAR, "DOCTYPE is not allowed" },
  { "bad-duplicate-option.xml", 10, "option", INV, "option 'natt.force' given twice" },
  { "bad-duplicate-peer.xml", 10, "peer", INV, "duplicate peer name 'gw'" },
  { "bad-duplicate-plugin.xml", 6, "plugin", INV, "plugin 'natt' listed twice" },
  { "bad-duplicate-policy.xml", 13, "policy", INV, "duplicate policy name 'net'" },
  { "bad-duplicate-section.xml", 4, "natt", INV, "section given twice" },
  { "bad-empty-secret.xml", 5, "auth", INV, "empty secret" },
  { "bad-encryption.xml", 7, "proposal", INV, "unknown encryption 'blowfish'" },
  { "bad-esp-encryption.xml", 11, "proposal", INV, "unknown ESP encryption 'aes128gcm8'" },
  { "bad-exchange.xml", 6, "phase1", INV, "unknown exchange 'base'" },
  { "bad-group.xml", 7, "proposal", INV, "unknown group 'modp9999'" },
  { "bad-hash.xml", 7, "proposal", INV, "unknown hash 'sha3'" },
  { "bad-icmp-code.xml", 10, "policy", INV, "needs a single ICMP type" },
  { "bad-icmp-family.xml", 10, "policy", INV, "protocol icmp does not match the IPv6 selectors" },
  { "bad-id-type.xml", 5, "local-id", INV, "unknown identity type 'email'" },
  { "bad-initiate-no-remote.xml", 3, "peer", INV, "initiates but has no <remote>" },
  { "bad-initiate-value.xml", 3, "peer", INV, "initiate must be 'yes' or 'no', not 'maybe'" },
  { "bad-integrity.xml", 11, "proposal", INV, "unknown integrity 'crc32'" },
  { "bad-lifetime.xml", 6, "phase1", INV, "lifetime 'soon' is not a number" },
  { "bad-listen-port.xml", 4, "listen", INV, "port '0' is not a number in 1..65535" },
  { "bad-local-remote-family.xml", 3, "peer", INV, "mix IPv4 and IPv6" },
  { "bad-log-level.xml", 4, "log", INV, "unknown log level 'loud'" },
  { "bad-missing-auth.xml", 3, "peer", INV, "has no <auth>" },
  { "bad-missing-phase1.xml", 3, "peer", INV, "has no <phase1>" },
  { "bad-mode.xml", 10, "policy", INV, "unknown mode 'beet'" },
  { "bad-namespaced-section.xml", 3, "natt", SCH, "namespace 'urn:example:natt' not allowed" },
  { "bad-no-integrity.xml", 11, "proposal", INV, "'aes256' needs an integrity algorithm" },
  { "bad-not-well-formed.xml", 8, "phase1", PAR, "mismatch" },
  { "bad-option-name.xml", 9, "option", INV, "option name 'force' is not 'plugin.key'" },
  { "bad-option-phase2-key.xml", 9, "option", INV, "unknown option 'phase2.hold-time'" },
  { "bad-option-phase2-value.xml", 9, "option", INV, "option 'phase2.hold-queue': '0' is not a number in 1..3600" },
  { "bad-peer-name.xml", 3, "peer", INV, "bad peer name 'g w'" },
  { "bad-pfs.xml", 10, "policy", INV, "unknown pfs group 'modp9999'" },
  { "bad-policy-lifetime.xml", 10, "policy", INV, "lifetime '0' is not a number" },
  { "bad-port-order.xml", 10, "policy", INV, "local-port '100-50'" },
  { "bad-port.xml", 10, "policy", INV, "remote-port '70000'" },
  { "bad-ports-no-protocol.xml", 10, "policy", INV, "ports need a protocol with ports" },
  { "bad-prefix-len.xml", 10, "policy", INV, "bad prefix '10.0.0.0/33'" },
  { "bad-prefix.xml", 10, "policy", INV, "bad prefix '198.51.100.1/24'" },
  { "bad-protect-no-peer.xml", 10, "policy", INV, "protect policy 'net' needs a peer" },
  { "bad-protect-no-proposal.xml", 10, "policy", INV, "protect policy 'net' has no proposal" },
  { "bad-protocol.xml", 10, "policy", INV, "unknown protocol 'smtp'" },
  { "bad-range-family.xml", 10, "policy", INV, "mixes IPv4 and IPv6" },
  { "bad-range-order.xml", 10, "policy", INV, "ends before it starts" },
  { "bad-retransmit.xml", 9, "retransmit", INV, "tries '1000' is not a number in 0..100" },
  { "bad-root.xml", 2, "config", SCH, "root element must be <modike>" },
  { "bad-rsa-ca-missing.xml", 7, "ca", INV, "cannot read certificate file '" },
  { "bad-rsa-cert-alone.xml", 5, "auth", INV, "cert and key go together" },
  { "bad-rsa-crl.xml", 7, "crl", INV, "holds no CRL (PEM or DER)" },
  { "bad-rsa-crl-attr.xml", 6, "crl", SCH, "" },
  { "bad-rsa-key-mismatch.xml", 5, "auth", INV, "does not belong to certificate 'CN=gw,O=modike'" },
  { "bad-rsa-no-ca.xml", 5, "auth", INV, "method rsa needs cert, key and at least one <ca>" },
  { "bad-selector-family.xml", 10, "policy", INV, "selectors mix IPv4 and IPv6" },
  { "bad-text-content.xml", 4, "remote", SCH, "extra content" },
  { "bad-truncated.xml", 6, "modike", PAR, "not well-formed" },
  { "bad-twice-auth.xml", 9, "auth", INV, "<auth> given twice" },
  { "bad-unknown-attribute.xml", 4, "listen", SCH, "Invalid attribute colour" },
  { "bad-unknown-element.xml", 9, "bogus", SCH, "Did not expect element bogus" },
  { "bad-unknown-peer.xml", 10, "policy", INV, "refers to unknown peer 'nowhere'" },
  { "bad-user-fqdn.xml", 5, "remote-id", INV, "user-fqdn 'example.org' has no '@'" },
};

static void
assert_bad_message (const GError *error, const char *file, int line, const char *element, gint code,
                    const char *text)
{
  g_assert_nonnull (error);
  g_assert_true (error->domain == MODIKE_CONFIG_ERROR);
  g_test_message ("%s", error->message);
  g_autofree char *prefix = g_strdup_printf ("%s:%d: <%s>: ", file, line, element);
  if (!g_str_has_prefix (error->message, prefix) || strstr (error->message, text) == NULL)
    g_error ("message \"%s\" lacks \"%s\" or \"%s\"", error->message, prefix, text);
  g_assert_cmpint (error->code, ==, code);
}

static void
test_bad_vectors (void)
{
  for (gsize i = 0; i < G_N_ELEMENTS (bad_vectors); i++) {
    const BadVector *v = &bad_vectors[i];
    g_autofree char *path = vector_path (v->file);
    g_autoptr (GError) error = NULL;
    g_assert_true (g_file_test (path, G_FILE_TEST_EXISTS));
    g_autoptr (ModikeConfig) cfg = modike_config_load (path, &error);
    /* Auth methods are checked once the plugins are loaded: here none is. */
    if (cfg != NULL)
      g_assert_false (modike_config_resolve_auth (cfg, NULL, NULL, &error));
    assert_bad_message (error, path, v->line, v->element, v->code, v->text);
  }
}

/* Every bad-*.xml in the directory is in the table, and vice versa, so a
 * new vector cannot be silently ignored. */
static void
test_bad_vectors_all_listed (void)
{
  g_autofree char *dir_path = g_test_build_filename (G_TEST_DIST, "vectors", "config", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (GDir) dir = g_dir_open (dir_path, 0, &error);
  g_assert_no_error (error);
  guint found = 0;
  const char *name;
  while ((name = g_dir_read_name (dir)) != NULL) {
    if (!g_str_has_prefix (name, "bad-"))
      continue;
    gboolean listed = FALSE;
    for (gsize i = 0; i < G_N_ELEMENTS (bad_vectors); i++)
      listed = listed || strcmp (bad_vectors[i].file, name) == 0;
    if (!listed)
      g_error ("%s is not in bad_vectors[]", name);
    found++;
  }
  g_assert_cmpuint (found, ==, G_N_ELEMENTS (bad_vectors));
}

/* ---- Inline documents ---- */

static void
test_not_well_formed (void)
{
  static const char *const docs[] = {
    "",
    "not xml at all",
    "<modike>\n<peer name=\"a\">\n</modike>\n",
    "<modike>\n  <daemon attr=\"unterminated />\n</modike>",
    "<modike></modike><modike/>",
    "<modike>&undefined;</modike>",
    "<?xml version=\"1.0\"?>\n<modike>\n\x01</modike>",
  };
  for (gsize i = 0; i < G_N_ELEMENTS (docs); i++) {
    g_autoptr (GError) error = NULL;
    g_autoptr (ModikeConfig) cfg = modike_config_load_string (docs[i], "inline.xml", &error);
    g_assert_null (cfg);
    g_assert_error (error, MODIKE_CONFIG_ERROR, MODIKE_CONFIG_ERROR_PARSE);
    g_assert_true (g_str_has_prefix (error->message, "inline.xml:"));
    g_assert_nonnull (strstr (error->message, "not well-formed"));
  }

  /* Line and element of a mismatched tag. */
  g_autoptr (GError) error = NULL;
  g_assert_null (modike_config_load_string ("<modike>\n<peer name=\"a\">\n</modike>\n", "inline.xml", &error));
  g_assert_true (g_str_has_prefix (error->message, "inline.xml:3: <peer>: "));
}

/* <daemon><crypto threads>: absent = one per core, 0 = inline, at most
 * 256, once. */
static void
test_crypto_threads (void)
{
  static const char *const bad[][2] = {
    { "<crypto threads=\"257\"/>", "threads '257' is not a number in 0..256" },
    { "<crypto threads=\"-1\"/>", "threads '-1' is not a number in 0..256" },
    { "<crypto threads=\"two\"/>", "threads 'two' is not a number" },
    { "<crypto/><crypto/>", "<crypto> given twice" },
  };
  g_autoptr (ModikeConfig) dflt = load_string_ok ("<modike/>");
  g_autoptr (ModikeConfig) empty = load_string_ok ("<modike><daemon><crypto/></daemon></modike>");
  g_autoptr (ModikeConfig) zero = load_string_ok ("<modike><daemon><crypto threads=\"0\"/></daemon></modike>");
  g_autoptr (ModikeConfig) max = load_string_ok ("<modike><daemon><crypto threads=\"256\"/></daemon></modike>");

  g_assert_cmpuint (dflt->crypto_threads, ==, MIN (g_get_num_processors (), MODIKE_CRYPTO_THREADS_MAX));
  g_assert_cmpuint (dflt->crypto_threads, >, 0);
  g_assert_cmpuint (empty->crypto_threads, ==, dflt->crypto_threads);
  g_assert_cmpuint (zero->crypto_threads, ==, 0);
  g_assert_cmpuint (max->crypto_threads, ==, 256);
  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_autofree char *xml = g_strdup_printf ("<modike>\n<daemon>\n%s\n</daemon>\n</modike>\n", bad[i][0]);
    g_autoptr (GError) error = NULL;
    g_assert_null (modike_config_load_string (xml, "inline.xml", &error));
    assert_bad_message (error, "inline.xml", 3, "crypto", MODIKE_CONFIG_ERROR_INVALID, bad[i][1]);
  }
}

static void
test_unknown_element (void)
{
  g_autoptr (GError) error = NULL;
  g_assert_null (modike_config_load_string ("<modike>\n  <daemon>\n    <frobnicate/>\n  </daemon>\n</modike>\n",
                                            "inline.xml", &error));
  assert_bad_message (error, "inline.xml", 3, "frobnicate", MODIKE_CONFIG_ERROR_SCHEMA, "frobnicate");

  /* Unknown attribute on a policy. */
  g_clear_error (&error);
  g_assert_null (modike_config_load_string ("<modike>\n<policy name=\"p\" action=\"bypass\" colour=\"red\"/>\n</modike>",
                                            "inline.xml", &error));
  assert_bad_message (error, "inline.xml", 2, "policy", MODIKE_CONFIG_ERROR_SCHEMA, "colour");

  /* Missing required attribute. */
  g_clear_error (&error);
  g_assert_null (modike_config_load_string ("<modike>\n\n<policy name=\"p\"/>\n</modike>", "inline.xml", &error));
  assert_bad_message (error, "inline.xml", 3, "policy", MODIKE_CONFIG_ERROR_SCHEMA, "attribute is missing");
  g_clear_error (&error);
  g_assert_null (modike_config_load_string ("<modike>\n<peer initiate=\"yes\"><auth method=\"psk\" secret=\"x\"/>"
                                            "</peer>\n</modike>", "inline.xml", &error));
  assert_bad_message (error, "inline.xml", 2, "peer", MODIKE_CONFIG_ERROR_SCHEMA, "attribute is missing");

  /* No name for errors. */
  g_clear_error (&error);
  g_assert_null (modike_config_load_string ("<modike><x:y xmlns:x=\"urn:x\"/></modike>", NULL, &error));
  g_assert_true (g_str_has_prefix (error->message, "<string>:1: <y>: "));
}

/* <daemon><limits>: defaults without it, values, range and once only. */
static void
test_limits (void)
{
  static const struct { const char *attrs; const char *word; } bad[] = {
    { "half-open=\"0\"", "half-open" },
    { "half-open=\"1000001\"", "half-open" },
    { "half-open-per-address=\"0\"", "half-open-per-address" },
    { "half-open-per-address=\"x\"", "half-open-per-address" },
  };
  g_autoptr (GError) error = NULL;
  g_autoptr (ModikeConfig) def = modike_config_load_string ("<modike><daemon/></modike>", "inline.xml", &error);
  g_autoptr (ModikeConfig) set = NULL;

  g_assert_no_error (error);
  g_assert_cmpuint (def->half_open_max, ==, 2048);
  g_assert_cmpuint (def->half_open_per_addr, ==, 32);
  set = modike_config_load_string ("<modike><daemon><limits half-open=\"1000000\" half-open-per-address=\"1\"/>"
                                   "</daemon></modike>", "inline.xml", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (set->half_open_max, ==, 1000000);
  g_assert_cmpuint (set->half_open_per_addr, ==, 1);
  g_clear_pointer (&set, modike_config_free);
  set = modike_config_load_string ("<modike><daemon><limits half-open=\"5\"/></daemon></modike>", "inline.xml",
                                   &error);
  g_assert_no_error (error);
  g_assert_cmpuint (set->half_open_max, ==, 5);
  g_assert_cmpuint (set->half_open_per_addr, ==, 32);

  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_autofree char *xml = g_strdup_printf ("<modike>\n<daemon>\n\n<limits %s/>\n</daemon>\n</modike>", bad[i].attrs);
    g_clear_error (&error);
    g_assert_null (modike_config_load_string (xml, "inline.xml", &error));
    g_test_message ("%s", error->message);
    g_assert_true (g_str_has_prefix (error->message, "inline.xml:4: "));
    g_assert_nonnull (strstr (error->message, bad[i].word));
  }
  g_clear_error (&error);
  g_assert_null (modike_config_load_string ("<modike><daemon><limits/>\n<limits/></daemon></modike>", "inline.xml",
                                            &error));
  g_assert_true (g_str_has_prefix (error->message, "inline.xml:2: "));
}

static void
test_io_error (void)
{
  g_autoptr (GError) error = NULL;
  g_assert_null (modike_config_load ("/nonexistent/modike-test/site.xml", &error));
  g_assert_error (error, MODIKE_CONFIG_ERROR, MODIKE_CONFIG_ERROR_IO);
  g_assert_nonnull (strstr (error->message, "/nonexistent/modike-test/site.xml"));
}

/* Peers may be defined after the policies that use them. */
static void
test_forward_reference (void)
{
  g_autoptr (ModikeConfig) cfg = load_string_ok (
    "<modike>"
    "<policy name=\"p\" peer=\"late\" action=\"protect\"><proposal encryption=\"aes128gcm16\"/></policy>"
    "<peer name=\"late\"><auth method=\"psk\" secret=\"s3cret\"/>"
    "<phase1><proposal encryption=\"aes128\" hash=\"sha1\" group=\"modp2048\"/></phase1></peer>"
    "</modike>");
  g_assert_cmpstr (policy (cfg, 0, "p")->peer, ==, "late");
}

/* The secret is copied out and taken out of the kept document. */
static void
test_secret_not_in_doc (void)
{
  g_autoptr (ModikeConfig) cfg = load_ok (vector_path ("good-full.xml"));
  xmlNode *root = xmlDocGetRootElement (cfg->doc);
  guint auths = 0;
  for (xmlNode *peer = root->children; peer != NULL; peer = peer->next)
    for (xmlNode *k = peer->children; k != NULL; k = k->next)
      if (k->type == XML_ELEMENT_NODE && xmlStrEqual (k->name, (const xmlChar *) "auth")) {
        auths++;
        g_assert_null (xmlHasProp (k, (const xmlChar *) "secret"));
        g_assert_nonnull (xmlHasProp (k, (const xmlChar *) "method"));
      }
  g_assert_cmpuint (auths, ==, 1);
  assert_psk (modike_config_find_peer (cfg, "gw"), "testpsk");
}

static void
test_ipv6_selectors (void)
{
  static const struct {
    const char *local, *remote;
    const char *lfrom, *lto, *rfrom, *rto;
  } cases[] = {
    { "2001:db8::/32", "any", "2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "::",
      "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff" },
    { "2001:db8::1", "2001:db8::/127", "2001:db8::1", "2001:db8::1", "2001:db8::", "2001:db8::1" },
    { "fe80::1-fe80::ff", "::/0", "fe80::1", "fe80::ff", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff" },
    { "2001:db8:0:1::/64", "2001:db8::a:0-2001:db8::b:ffff", "2001:db8:0:1::", "2001:db8:0:1:ffff:ffff:ffff:ffff",
      "2001:db8::a:0", "2001:db8::b:ffff" },
    { "10.0.0.0/31", "10.1.2.3-10.1.3.2", "10.0.0.0", "10.0.0.1", "10.1.2.3", "10.1.3.2" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autofree char *xml = g_strdup_printf ("<modike><policy name=\"p\" action=\"bypass\" local=\"%s\" "
                                            "remote=\"%s\"/></modike>",
                                            cases[i].local, cases[i].remote);
    g_autoptr (ModikeConfig) cfg = load_string_ok (xml);
    const ModikeSpdEntry *e = policy (cfg, 0, "p");
    assert_range (&e->local, cases[i].lfrom, cases[i].lto);
    assert_range (&e->remote, cases[i].rfrom, cases[i].rto);
  }

  static const char *const bad[] = {
    "2001:db8::/129", "2001:db8::1/64", "2001:db8::9-2001:db8::1", "2001:db8::1-10.0.0.1", "2001:db8::g",
  };
  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_autofree char *xml = g_strdup_printf ("<modike>\n<policy name=\"p\" action=\"bypass\" local=\"%s\"/>\n</modike>",
                                            bad[i]);
    g_autoptr (GError) error = NULL;
    g_assert_null (modike_config_load_string (xml, "inline.xml", &error));
    assert_bad_message (error, "inline.xml", 2, "policy", MODIKE_CONFIG_ERROR_INVALID, bad[i]);
  }
}

/* ---- Plugin sections ---- */

static const char natt_doc[] = "<?xml version=\"1.0\"?>\n"
                               "<modike>\n"
                               "  <daemon/>\n"
                               "  <natt force-encap=\"%s\"/>\n"
                               "</modike>\n";

static void
test_plugin_sections (void)
{
  g_autoptr (ModikeConfig) full = load_ok (vector_path ("good-full.xml"));
  g_autoptr (GHashTable) empty = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr (GHashTable) frags = natt_fragments ();
  g_autoptr (GError) error = NULL;

  /* No plugin registered <natt>. */
  g_assert_false (modike_config_check_plugins (full, empty, &error));
  g_assert_error (error, MODIKE_CONFIG_ERROR, MODIKE_CONFIG_ERROR_SCHEMA);
  assert_bad_message (error, full->path, 12, "natt", MODIKE_CONFIG_ERROR_SCHEMA, "no loaded plugin");
  g_clear_error (&error);
  g_assert_false (modike_config_check_plugins (full, NULL, &error));
  g_clear_error (&error);

  g_assert_true (modike_config_check_plugins (full, frags, &error));
  g_assert_no_error (error);

  /* A fragment without its own namespace declaration works too. */
  g_autoptr (GHashTable) plain = g_hash_table_new (g_str_hash, g_str_equal);
  g_hash_table_insert (plain, (gpointer) "natt",
                       (gpointer) "<element name=\"natt\"><attribute name=\"force-encap\">"
                                  "<data type=\"token\"/></attribute></element>");
  g_assert_true (modike_config_check_plugins (full, plain, &error));
  g_assert_no_error (error);

  /* A value the fragment refuses: the core schema accepts the file, the
   * plugin check names the line and element. */
  g_autofree char *bad_xml = g_strdup_printf (natt_doc, "maybe");
  g_autoptr (ModikeConfig) bad = load_string_ok (bad_xml);
  g_assert_false (modike_config_check_plugins (bad, frags, &error));
  assert_bad_message (error, "inline.xml", 4, "natt", MODIKE_CONFIG_ERROR_SCHEMA, "natt");
  g_clear_error (&error);

  g_autoptr (ModikeConfig) extra = load_string_ok ("<modike>\n<natt>\n  <frob/>\n</natt>\n</modike>");
  g_assert_false (modike_config_check_plugins (extra, frags, &error));
  assert_bad_message (error, "inline.xml", 3, "frob", MODIKE_CONFIG_ERROR_SCHEMA, "frob");
  g_clear_error (&error);

  g_autofree char *good_xml = g_strdup_printf (natt_doc, "yes");
  g_autoptr (ModikeConfig) good = load_string_ok (good_xml);
  g_assert_true (modike_config_check_plugins (good, frags, &error));
  g_assert_no_error (error);
  xmlNode *sec = modike_config_section (good, "natt");
  g_assert_nonnull (sec);
  g_autofree xmlChar *v = xmlGetProp (sec, (const xmlChar *) "force-encap");
  g_assert_cmpstr ((const char *) v, ==, "yes");

  /* One registered, one not: the unregistered one is named. */
  g_autoptr (ModikeConfig) two = load_string_ok ("<modike>\n<natt/>\n\n<frobnicate level=\"9\"/>\n</modike>");
  g_assert_false (modike_config_check_plugins (two, frags, &error));
  assert_bad_message (error, "inline.xml", 4, "frobnicate", MODIKE_CONFIG_ERROR_SCHEMA, "frobnicate");
  g_clear_error (&error);

  /* A fragment that is not RelaxNG is the plugin's fault, and says so. */
  g_autoptr (GHashTable) broken = g_hash_table_new (g_str_hash, g_str_equal);
  g_hash_table_insert (broken, (gpointer) "natt", (gpointer) "<element name=\"natt\"><bogus/></element>");
  g_assert_false (modike_config_check_plugins (good, broken, &error));
  g_assert_error (error, MODIKE_CONFIG_ERROR, MODIKE_CONFIG_ERROR_SCHEMA);
  g_assert_nonnull (strstr (error->message, "does not compile"));
}

/* ---- Peer comparison ---- */

static ModikeConfig *
peer_doc (const char *secret, const char *group, const char *retransmit, const char *option, const char *remote)
{
  g_autofree char *xml = g_strdup_printf (
    "<modike><peer name=\"p\" initiate=\"yes\"><remote address=\"%s\"/>"
    "<auth method=\"psk\" secret=\"%s\"/>"
    "<phase1><proposal encryption=\"aes128\" hash=\"sha256\" group=\"%s\"/></phase1>"
    "<retransmit interval=\"%s\"/><option name=\"natt.force\" value=\"%s\"/></peer></modike>",
    remote, secret, group, retransmit, option);
  return load_string_ok (xml);
}

static void
test_peer_equal (void)
{
  g_autoptr (ModikeConfig) a = peer_doc ("one", "modp2048", "2000", "no", "192.0.2.1");
  g_autoptr (ModikeConfig) same = peer_doc ("one", "modp2048", "2000", "no", "192.0.2.1");
  g_autoptr (ModikeConfig) timing = peer_doc ("one", "modp2048", "5000", "no", "192.0.2.1");
  g_autoptr (ModikeConfig) secret = peer_doc ("two", "modp2048", "2000", "no", "192.0.2.1");
  g_autoptr (ModikeConfig) group = peer_doc ("one", "modp3072", "2000", "no", "192.0.2.1");
  g_autoptr (ModikeConfig) option = peer_doc ("one", "modp2048", "2000", "yes", "192.0.2.1");
  g_autoptr (ModikeConfig) remote = peer_doc ("one", "modp2048", "2000", "no", "192.0.2.9");
  const ModikePeerConfig *pa = modike_config_find_peer (a, "p");

  g_assert_true (modike_peer_config_equal (pa, pa));
  g_assert_true (modike_peer_config_equal (pa, modike_config_find_peer (same, "p")));
  /* Retransmission timing does not change what is negotiated. */
  g_assert_true (modike_peer_config_equal (pa, modike_config_find_peer (timing, "p")));
  g_assert_false (modike_peer_config_equal (pa, modike_config_find_peer (secret, "p")));
  g_assert_false (modike_peer_config_equal (pa, modike_config_find_peer (group, "p")));
  g_assert_false (modike_peer_config_equal (pa, modike_config_find_peer (option, "p")));
  g_assert_false (modike_peer_config_equal (pa, modike_config_find_peer (remote, "p")));
  g_assert_false (modike_peer_config_equal (pa, NULL));
}

static ModikeConfig *
adapter_doc (const char *adapter)
{
  g_autofree char *xml = g_strdup_printf (
    "<modike><peer name=\"p\"><auth method=\"psk\" secret=\"s\"/>"
    "<phase1><proposal encryption=\"aes128\" hash=\"sha256\" group=\"modp2048\"/></phase1>%s</peer></modike>",
    adapter);
  return load_string_ok (xml);
}

/* The adapter is part of the peer: changing it renegotiates. */
static void
test_peer_equal_adapter (void)
{
  static const char *const variants[] = {
    "",
    "<adapter name=\"mk1\" address=\"10.0.0.1/24\"/>",
    "<adapter name=\"mk0\" address=\"10.0.0.2/24\"/>",
    "<adapter name=\"mk0\" address=\"10.0.0.1/25\"/>",
    "<adapter name=\"mk0\" address=\"10.0.0.1/24\" mtu=\"1300\"/>",
    "<adapter name=\"mk0\" address=\"10.0.0.1/24\" queues=\"2\"/>",
    "<adapter name=\"mk0\" address=\"10.0.0.1/24\" offload=\"no\"/>",
    "<adapter name=\"mk0\"/>",
  };
  g_autoptr (ModikeConfig) a = adapter_doc ("<adapter name=\"mk0\" address=\"10.0.0.1/24\"/>");
  g_autoptr (ModikeConfig) same = adapter_doc ("<adapter name=\"mk0\" address=\"10.0.0.1/24\" mtu=\"1400\" "
                                               "queues=\"1\" offload=\"yes\"/>");
  const ModikePeerConfig *pa = modike_config_find_peer (a, "p");

  g_assert_true (modike_peer_config_equal (pa, modike_config_find_peer (same, "p")));
  for (gsize i = 0; i < G_N_ELEMENTS (variants); i++) {
    g_autoptr (ModikeConfig) other = adapter_doc (variants[i]);
    g_test_message ("%s", variants[i]);
    g_assert_false (modike_peer_config_equal (pa, modike_config_find_peer (other, "p")));
    g_assert_false (modike_peer_config_equal (modike_config_find_peer (other, "p"), pa));
  }
}

static void
test_good_adapter (void)
{
  g_autoptr (ModikeConfig) cfg = load_ok (vector_path ("good-adapter.xml"));
  const ModikePeerConfig *gw = modike_config_find_peer (cfg, "gw");
  const ModikePeerConfig *v6 = modike_config_find_peer (cfg, "v6");
  const ModikePeerConfig *plain = modike_config_find_peer (cfg, "plain");

  g_assert_true (gw->has_adapter);
  g_assert_cmpstr (gw->adapter_name, ==, "mk0");
  /* An interface address keeps its host bits. */
  assert_addr (&gw->adapter_addr.net, "10.99.0.1", 0);
  g_assert_cmpuint (gw->adapter_addr.plen, ==, 24);
  g_assert_cmpuint (gw->adapter_mtu, ==, 1380);
  g_assert_cmpuint (gw->adapter_queues, ==, 4);
  g_assert_false (gw->adapter_offload);

  g_assert_true (v6->has_adapter);
  g_assert_cmpstr (v6->adapter_name, ==, "mk.v6_1");
  assert_addr (&v6->adapter_addr.net, "2001:db8:f::2", 0);
  g_assert_cmpuint (v6->adapter_addr.plen, ==, 128);
  g_assert_cmpuint (v6->adapter_mtu, ==, 1400);
  g_assert_cmpuint (v6->adapter_queues, ==, 1);
  g_assert_true (v6->adapter_offload);

  g_assert_false (plain->has_adapter);
  g_assert_null (plain->adapter_name);
  g_assert_cmpint (plain->adapter_addr.net.family, ==, 0);

  /* No address at all is fine (mode config may bring one later). */
  g_autoptr (ModikeConfig) bare = adapter_doc ("<adapter name=\"x\"/>");
  const ModikePeerConfig *p = modike_config_find_peer (bare, "p");
  g_assert_true (p->has_adapter);
  g_assert_cmpint (p->adapter_addr.net.family, ==, 0);
  g_assert_cmpuint (p->adapter_mtu, ==, 1400);
  /* The bounds themselves are allowed. */
  g_autoptr (ModikeConfig) lo = adapter_doc ("<adapter name=\"abcdefghijklmno\" mtu=\"576\" queues=\"16\"/>");
  g_autoptr (ModikeConfig) v6lo = adapter_doc ("<adapter name=\"x\" address=\"2001:db8::1/64\" mtu=\"1280\"/>");
  g_assert_cmpuint (modike_config_find_peer (lo, "p")->adapter_queues, ==, 16);
  g_assert_cmpuint (modike_config_find_peer (v6lo, "p")->adapter_mtu, ==, 1280);

  /* The name is required by the schema (libxml2 does not say where the
   * attribute is missing, so this is no vector file). */
  g_autoptr (GError) error = NULL;
  g_autoptr (ModikeConfig) nameless = modike_config_load_string (
    "<modike><peer name=\"p\"><auth method=\"psk\" secret=\"s\"/>"
    "<phase1><proposal encryption=\"aes128\" hash=\"sha256\" group=\"modp2048\"/></phase1>"
    "<adapter mtu=\"1400\"/></peer></modike>", "inline.xml", &error);
  g_assert_null (nameless);
  g_assert_error (error, MODIKE_CONFIG_ERROR, MODIKE_CONFIG_ERROR_SCHEMA);
  g_assert_nonnull (strstr (error->message, "adapter"));
}

/* What a loaded plugin would register: xauth-psk (65001, on a PSK) and
 * xauth-rsa (65005, on RSA signatures). */
static gboolean
fake_auth_lookup (const char *name, guint16 *method, guint16 *base, gpointer user)
{
  guint *calls = user;

  (*calls)++;
  if (strcmp (name, "xauth-psk") == 0) {
    *method = MODIKE_AUTH_XAUTH_INIT_PSK;
    *base = MODIKE_AUTH_PSK;
    return TRUE;
  }
  if (strcmp (name, "xauth-rsa") == 0) {
    *method = MODIKE_AUTH_XAUTH_INIT_RSA;
    *base = MODIKE_AUTH_RSA_SIG;
    return TRUE;
  }
  return FALSE;
}

static void
test_good_auth_plugin (void)
{
  g_autoptr (ModikeConfig) cfg = load_ok (vector_path ("good-auth-plugin.xml"));
  g_autoptr (ModikeConfig) again = load_ok (vector_path ("good-auth-plugin.xml"));
  g_autoptr (ModikeConfig) plain = load_ok (vector_path ("good-minimal.xml"));
  g_autoptr (GError) error = NULL;
  const ModikePeerConfig *office = modike_config_find_peer (cfg, "office");
  const ModikePeerConfig *signed_peer = modike_config_find_peer (cfg, "signed");
  guint calls = 0;

  /* Parsed, not resolved: the method matches nothing until then. */
  g_assert_cmpstr (office->auth_name, ==, "xauth-psk");
  g_assert_cmpuint (office->auth, ==, 0);
  g_assert_cmpuint (office->auth_line, ==, 6);
  assert_psk (office, "testpsk");
  g_assert_null (signed_peer->psk);
  g_assert_true (modike_config_resolve_auth (cfg, fake_auth_lookup, &calls, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (calls, ==, 2);
  g_assert_cmpuint (office->auth, ==, 65001);
  g_assert_cmpuint (office->auth_base, ==, MODIKE_AUTH_PSK);
  g_assert_cmpuint (signed_peer->auth, ==, 65005);
  g_assert_cmpuint (signed_peer->auth_base, ==, MODIKE_AUTH_RSA_SIG);
  /* Resolving again (a reload) changes nothing. */
  g_assert_true (modike_config_resolve_auth (cfg, fake_auth_lookup, &calls, &error));
  g_assert_cmpuint (office->auth, ==, 65001);
  /* A reload resolves the new config before comparing peers. */
  g_assert_true (modike_config_resolve_auth (again, fake_auth_lookup, &calls, &error));
  g_assert_true (modike_peer_config_equal (office, modike_config_find_peer (again, "office")));

  /* Core psk peers need no lookup and stay as they were. */
  g_assert_null (modike_config_find_peer (plain, "anyone")->auth_name);
  g_assert_true (modike_config_resolve_auth (plain, NULL, NULL, &error));
  g_assert_cmpuint (modike_config_find_peer (plain, "anyone")->auth, ==, MODIKE_AUTH_PSK);
  g_assert_false (modike_peer_config_equal (modike_config_find_peer (plain, "anyone"), office));

  /* A PSK-based method without a secret: refused when resolved. */
  g_autoptr (ModikeConfig) nosecret = load_string_ok (
    "<modike>\n<peer name=\"p\">\n<auth method=\"xauth-psk\"/>\n"
    "<phase1><proposal encryption=\"aes128\" hash=\"sha256\" group=\"modp2048\"/></phase1></peer></modike>");
  g_assert_false (modike_config_resolve_auth (nosecret, fake_auth_lookup, &calls, &error));
  assert_bad_message (error, "inline.xml", 3, "auth", MODIKE_CONFIG_ERROR_INVALID, "xauth-psk is based on a pre-shared key and needs a secret");
  /* An empty secret is refused at once, whatever the method. */
  g_clear_error (&error);
  g_assert_null (modike_config_load_string (
    "<modike>\n<peer name=\"p\">\n\n<auth method=\"xauth-psk\" secret=\"\"/>\n"
    "<phase1><proposal encryption=\"aes128\" hash=\"sha256\" group=\"modp2048\"/></phase1></peer></modike>",
    "inline.xml", &error));
  assert_bad_message (error, "inline.xml", 4, "auth", MODIKE_CONFIG_ERROR_INVALID, "empty secret");
}

/* The test PKI's private keys are checked out 0644; the loader wants 0600. */
static void
private_test_keys (void)
{
  const char *keys[] = { "gw.key", "client.key", "revoked.key", "expired.key", "stranger.key" };

  for (gsize i = 0; i < G_N_ELEMENTS (keys); i++) {
    g_autofree char *k = g_test_build_filename (G_TEST_DIST, "vectors", "certs", keys[i], NULL);
    g_assert_cmpint (g_chmod (k, 0600), ==, 0);
  }
}

static void
test_good_rsa (void)
{
  g_autoptr (ModikeConfig) cfg = load_ok (vector_path ("good-rsa.xml"));
  g_autoptr (ModikeConfig) again = load_ok (vector_path ("good-rsa.xml"));
  g_autoptr (ModikeConfig) psk = load_ok (vector_path ("good-minimal.xml"));
  const ModikePeerConfig *gw = modike_config_find_peer (cfg, "gw");
  g_autoptr (GPtrArray) chain = NULL;
  g_autoptr (GPtrArray) cas = NULL;
  g_autoptr (GError) error = NULL;

  g_assert_cmpuint (gw->auth, ==, MODIKE_AUTH_RSA_SIG);
  g_assert_cmpuint (gw->auth_base, ==, MODIKE_AUTH_RSA_SIG);
  g_assert_null (gw->auth_name);
  g_assert_null (gw->psk);
  g_assert_nonnull (gw->x509);
  g_assert_true (modike_x509_creds_has_local (gw->x509));
  chain = modike_x509_creds_local_chain (gw->x509);
  g_assert_cmpuint (chain->len, ==, 2);
  cas = modike_x509_creds_ca_subjects (gw->x509);
  g_assert_cmpuint (cas->len, ==, 1);
  g_assert_cmpuint (gw->remote_id_type, ==, MODIKE_ID_DER_ASN1_DN);
  /* Relative paths start at the config file. */
  g_assert_nonnull (strstr (gw->x509_sources, "vectors/config/../certs/client-chain.pem"));
  g_assert_nonnull (strstr (gw->x509_sources, "crl="));
  g_assert_true (modike_config_resolve_auth (cfg, NULL, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (modike_peer_config_equal (gw, modike_config_find_peer (again, "gw")));
  g_assert_false (modike_peer_config_equal (modike_config_find_peer (psk, "anyone"), gw));
}

/* A key others may read fails the load with the file and line of <auth>. */
static void
test_rsa_key_mode (void)
{
  g_autofree char *dir = g_dir_make_tmp ("modike-config-XXXXXX", NULL);
  g_autofree char *key = g_build_filename (dir, "k.pem", NULL);
  g_autofree char *src = g_test_build_filename (G_TEST_DIST, "vectors", "certs", "gw.key", NULL);
  g_autofree char *chain = g_test_build_filename (G_TEST_DIST, "vectors", "certs", "gw-chain.pem", NULL);
  g_autofree char *ca = g_test_build_filename (G_TEST_DIST, "vectors", "certs", "ca.pem", NULL);
  g_autofree char *data = NULL, *xml = NULL;
  g_autoptr (GError) error = NULL;
  gsize len;

  g_assert_true (g_file_get_contents (src, &data, &len, NULL));
  g_assert_true (g_file_set_contents (key, data, len, NULL));
  g_assert_cmpint (g_chmod (key, 0644), ==, 0);
  xml = g_strdup_printf ("<modike>\n<peer name=\"p\">\n<auth method=\"rsa\" cert=\"%s\" key=\"%s\">\n"
                         "<ca path=\"%s\"/></auth>\n<phase1><proposal encryption=\"aes128\" hash=\"sha256\" "
                         "group=\"modp2048\"/></phase1></peer></modike>", chain, key, ca);
  g_assert_null (modike_config_load_string (xml, "inline.xml", &error));
  assert_bad_message (error, "inline.xml", 3, "auth", MODIKE_CONFIG_ERROR_INVALID,
                      "is accessible by group or others (mode 0644): chmod 600 it");
  g_clear_error (&error);
  g_assert_cmpint (g_chmod (key, 0600), ==, 0);
  g_autoptr (ModikeConfig) cfg = load_string_ok (xml);
  g_unlink (key);
  g_rmdir (dir);
}

/* A plugin method based on RSA signatures needs certificates. */
static void
test_rsa_plugin_needs_certs (void)
{
  g_autoptr (ModikeConfig) cfg = load_string_ok (
    "<modike>\n<peer name=\"p\">\n<auth method=\"xauth-rsa\"/>\n"
    "<phase1><proposal encryption=\"aes128\" hash=\"sha256\" group=\"modp2048\"/></phase1></peer></modike>");
  g_autoptr (GError) error = NULL;
  guint calls = 0;

  g_assert_false (modike_config_resolve_auth (cfg, fake_auth_lookup, &calls, &error));
  assert_bad_message (error, "inline.xml", 3, "auth", MODIKE_CONFIG_ERROR_INVALID,
                      "xauth-rsa is based on RSA signatures and needs certificates");
}

static void
test_schema_path (void)
{
  const char *p = modike_config_schema_path ();
  g_assert_nonnull (p);
  g_assert_true (g_str_has_suffix (p, "/modike.rng"));
}

/* The schema compiled into the library is the file in the source tree
 * (a stale resource would validate against an old grammar). */
static void
test_schema_resource (void)
{
  g_autofree char *path = g_test_build_filename (G_TEST_DIST, "..", "core", "policy", "schema", "modike.rng", NULL);
  g_autofree char *text = NULL;
  gsize len = 0;
  g_autoptr (GError) error = NULL;
  g_assert_true (g_file_get_contents (path, &text, &len, &error));
  g_assert_no_error (error);
  /* Loading once makes sure the resource is registered. */
  g_autoptr (ModikeConfig) cfg = load_ok (vector_path ("good-empty.xml"));
  g_assert_cmpuint (cfg->peers->len, ==, 0);
  g_autoptr (GBytes) res = g_resources_lookup_data ("/org/modike/schema/modike.rng", G_RESOURCE_LOOKUP_FLAGS_NONE,
                                                     &error);
  g_assert_no_error (error);
  g_assert_cmpmem (g_bytes_get_data (res, NULL), g_bytes_get_size (res), text, len);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  private_test_keys ();
  g_test_add_func ("/config/example/client", test_example_client);
  g_test_add_func ("/config/example/gateway", test_example_gateway);
  g_test_add_func ("/config/example/in-guide", test_examples_in_guide);
  g_test_add_func ("/config/good/full", test_good_full);
  g_test_add_func ("/config/good/minimal", test_good_minimal);
  g_test_add_func ("/config/good/empty", test_good_empty);
  g_test_add_func ("/config/good/ipv6", test_good_ipv6);
  g_test_add_func ("/config/good/selectors", test_good_selectors);
  g_test_add_func ("/config/bad/vectors", test_bad_vectors);
  g_test_add_func ("/config/bad/all-listed", test_bad_vectors_all_listed);
  g_test_add_func ("/config/bad/not-well-formed", test_not_well_formed);
  g_test_add_func ("/config/bad/unknown-element", test_unknown_element);
  g_test_add_func ("/config/crypto-threads", test_crypto_threads);
  g_test_add_func ("/config/bad/io", test_io_error);
  g_test_add_func ("/config/forward-reference", test_forward_reference);
  g_test_add_func ("/config/secret-not-in-doc", test_secret_not_in_doc);
  g_test_add_func ("/config/ipv6-selectors", test_ipv6_selectors);
  g_test_add_func ("/config/plugin-sections", test_plugin_sections);
  g_test_add_func ("/config/peer-equal", test_peer_equal);
  g_test_add_func ("/config/peer-equal-adapter", test_peer_equal_adapter);
  g_test_add_func ("/config/good/adapter", test_good_adapter);
  g_test_add_func ("/config/good/auth-plugin", test_good_auth_plugin);
  g_test_add_func ("/config/schema-path", test_schema_path);
  g_test_add_func ("/config/good/rsa", test_good_rsa);
  g_test_add_func ("/config/rsa/key-mode", test_rsa_key_mode);
  g_test_add_func ("/config/rsa/plugin-needs-certs", test_rsa_plugin_needs_certs);
  g_test_add_func ("/config/schema-resource", test_schema_resource);
  g_test_add_func ("/config/limits", test_limits);
  return g_test_run ();
}
