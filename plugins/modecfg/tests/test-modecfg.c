/* Suite modecfg: the attribute codecs, the <modecfg> section, and client
 * against gateway in the fsm harness (one gateway 192.0.2.1 and up to
 * three clients, each with the fake datapath and OS adapter so that the
 * applied result shows in their logs), with xauth loaded where the order
 * XAuth -> mode config matters. */
#include "harness.h"
#include "modecfg.h"
#include "xauth.h"

#include <modike/host.h>

#include <glib/gstdio.h>

const ModikePluginDescriptor *modike_plugin_descriptor (void);

#define GW_ADDR "192.0.2.1"
#define ISAKMP_EXCHANGE_OFFSET 18
#define EX_QUICK 32

/* ---- attribute codecs ---- */

static GArray *
prefixes (const char *first, ...)
{
  GArray *a = g_array_new (FALSE, FALSE, sizeof (ModikePrefix));
  va_list ap;

  va_start (ap, first);
  for (const char *t = first; t != NULL; t = va_arg (ap, const char *))
    {
      ModikePrefix p;

      g_assert_true (modike_prefix_parse (t, &p, NULL));
      g_array_append_val (a, p);
    }
  va_end (ap);
  return a;
}

static char *
prefix_text (const ModikePrefix *p)
{
  char buf[MODIKE_ADDR_STRLEN];

  return g_strdup_printf ("%s/%u", modike_addr_format (&p->net, buf, sizeof buf), p->plen);
}

static char *
addr_text (const ModikeAddr *a)
{
  char buf[MODIKE_ADDR_STRLEN];

  return g_strdup (modike_addr_format (a, buf, sizeof buf));
}

static void
test_unity_split (void)
{
  g_autoptr (GArray) in = prefixes ("10.1.0.0/16", "192.168.7.0/24", "0.0.0.0/0", "172.16.9.1/32", NULL);
  g_autoptr (GArray) out = g_array_new (FALSE, FALSE, sizeof (ModikePrefix));
  g_autoptr (GBytes) b = modecfg_unity_split_encode (in);
  gsize len;
  const guint8 *d = g_bytes_get_data (b, &len);
  static const guint8 first[14] = { 10, 1, 0, 0, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0 };
  g_autoptr (GError) error = NULL;

  g_assert_cmpuint (len, ==, 4 * 14);
  g_assert_cmpmem (d, 14, first, 14);
  g_assert_true (modecfg_unity_split_decode (d, len, out, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (out->len, ==, 4);
  for (guint i = 0; i < 4; i++)
    {
      g_autofree char *x = prefix_text (&g_array_index (in, ModikePrefix, i));
      g_autofree char *y = prefix_text (&g_array_index (out, ModikePrefix, i));

      g_assert_cmpstr (x, ==, y);
    }
  /* not a multiple of 14 */
  g_assert_false (modecfg_unity_split_decode (d, 13, out, &error));
  g_assert_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_MALFORMED);
  g_clear_error (&error);
  /* a mask with a hole */
  {
    guint8 bad[14] = { 10, 1, 0, 0, 255, 0, 255, 0 };

    g_assert_false (modecfg_unity_split_decode (bad, sizeof bad, out, &error));
    g_assert_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_MALFORMED);
    g_clear_error (&error);
  }
  /* host bits set: the network they name */
  {
    guint8 host[14] = { 10, 1, 0, 7, 255, 255, 0, 0 };
    g_autofree char *t = NULL;

    g_array_set_size (out, 0);
    g_assert_true (modecfg_unity_split_decode (host, sizeof host, out, &error));
    t = prefix_text (&g_array_index (out, ModikePrefix, 0));
    g_assert_cmpstr (t, ==, "10.1.0.0/16");
  }
  /* empty: no networks */
  g_array_set_size (out, 0);
  g_assert_true (modecfg_unity_split_decode (d, 0, out, &error));
  g_assert_cmpuint (out->len, ==, 0);
}

static void
addr_add (GArray *list, const char *text)
{
  ModikeAddr a;

  g_assert_true (modike_addr_parse (text, 0, &a, NULL));
  g_array_append_val (list, a);
}

/* Every attribute the plugin sends, encoded and decoded back. */
static void
test_attrs_roundtrip (void)
{
  ModecfgAttrs a, b;
  g_autoptr (GArray) attrs = modike_attr_array_new ();
  g_autoptr (GArray) inc = prefixes ("10.1.0.0/16", "10.2.0.0/16", NULL);
  g_autoptr (GArray) exc = prefixes ("192.168.1.0/24", NULL);
  g_autoptr (GArray) sub = prefixes ("10.3.0.0/16", "2001:db8:1::/48", NULL);
  g_autoptr (GError) error = NULL;
  g_autofree char *a4 = NULL, *m4 = NULL, *a6 = NULL, *d0 = NULL, *d1 = NULL, *n0 = NULL, *s1 = NULL;

  modecfg_attrs_init (&a);
  a.has_addr4 = TRUE;
  g_assert_true (modike_addr_parse ("10.9.0.10", 0, &a.addr4, NULL));
  a.has_mask4 = TRUE;
  g_assert_true (modike_addr_parse ("255.255.255.0", 0, &a.mask4, NULL));
  a.has_addr6 = TRUE;
  g_assert_true (modike_prefix_parse ("2001:db8:f::10/128", &a.addr6, NULL));
  addr_add (a.dns, "10.1.0.53");
  addr_add (a.dns, "2001:db8::53");
  addr_add (a.nbns, "10.1.0.54");
  g_array_append_vals (a.split_include, inc->data, inc->len);
  g_array_append_vals (a.split_exclude, exc->data, exc->len);
  g_array_append_vals (a.subnets, sub->data, sub->len);
  g_ptr_array_add (a.split_dns, g_strdup ("corp.example"));
  g_ptr_array_add (a.split_dns, g_strdup ("lab.example"));
  a.domain = g_strdup ("corp.example");
  a.banner = g_strdup ("Welcome, authorised users only.\nSecond line.");
  a.app_version = g_strdup ("modike 0.1.0");
  a.has_expiry = TRUE;
  a.expiry = 86400;
  a.has_save_passwd = TRUE;
  a.save_passwd = 1;
  a.has_pfs = TRUE;
  a.pfs = 14;
  modecfg_attrs_encode (&a, attrs);
  g_assert_nonnull (modike_attrs_find (attrs, UNITY_SPLIT_INCLUDE));
  g_assert_nonnull (modike_attrs_find (attrs, MODECFG_IP6_ADDRESS));
  g_assert_cmpuint (g_bytes_get_size (modike_attrs_find (attrs, MODECFG_IP6_ADDRESS)->data), ==, 17);

  modecfg_attrs_init (&b);
  g_assert_true (modecfg_attrs_decode (attrs, &b, &error));
  g_assert_no_error (error);
  g_assert_true (b.has_addr4 && b.has_mask4 && b.has_addr6);
  a4 = addr_text (&b.addr4);
  m4 = addr_text (&b.mask4);
  a6 = prefix_text (&b.addr6);
  g_assert_cmpstr (a4, ==, "10.9.0.10");
  g_assert_cmpstr (m4, ==, "255.255.255.0");
  g_assert_cmpstr (a6, ==, "2001:db8:f::10/128");
  g_assert_cmpuint (b.dns->len, ==, 2);
  d0 = addr_text (&g_array_index (b.dns, ModikeAddr, 0));
  d1 = addr_text (&g_array_index (b.dns, ModikeAddr, 1));
  g_assert_cmpstr (d0, ==, "10.1.0.53");
  g_assert_cmpstr (d1, ==, "2001:db8::53");
  n0 = addr_text (&g_array_index (b.nbns, ModikeAddr, 0));
  g_assert_cmpstr (n0, ==, "10.1.0.54");
  g_assert_cmpuint (b.split_include->len, ==, 2);
  g_assert_cmpuint (b.split_exclude->len, ==, 1);
  g_assert_cmpuint (b.subnets->len, ==, 2);
  s1 = prefix_text (&g_array_index (b.subnets, ModikePrefix, 1));
  g_assert_cmpstr (s1, ==, "2001:db8:1::/48");
  g_assert_cmpuint (b.split_dns->len, ==, 2);
  g_assert_cmpstr (b.split_dns->pdata[1], ==, "lab.example");
  g_assert_cmpstr (b.domain, ==, "corp.example");
  g_assert_cmpstr (b.banner, ==, a.banner);
  g_assert_cmpstr (b.app_version, ==, "modike 0.1.0");
  g_assert_true (b.has_expiry && b.expiry == 86400);
  g_assert_true (b.has_save_passwd && b.save_passwd == 1);
  g_assert_true (b.has_pfs && b.pfs == 14);
  g_assert_true (modecfg_attrs_asked (&b, UNITY_BANNER));
  modecfg_attrs_clear (&a);
  modecfg_attrs_clear (&b);
}

/* A REQUEST: empty values, recorded as asked; unknown types skipped;
 * a 16-byte IPv6 address (the draft's form) taken as /128. */
static void
test_attrs_request (void)
{
  ModecfgAttrs b;
  g_autoptr (GArray) attrs = modike_attr_array_new ();
  g_autoptr (GError) error = NULL;
  guint8 v6[16] = { 0x20, 0x01, 0x0d, 0xb8 };
  g_autofree char *a6 = NULL;

  modike_attr_add_tlv (attrs, MODECFG_IP4_ADDRESS, NULL, 0);
  modike_attr_add_tlv (attrs, 31337, (const guint8 *) "x", 1);
  modike_attr_add_tlv (attrs, UNITY_SPLIT_INCLUDE, NULL, 0);
  modike_attr_add_tlv (attrs, MODECFG_IP6_ADDRESS, v6, sizeof v6);
  modike_attr_add_tv (attrs, UNITY_FW_TYPE, 1);
  modecfg_attrs_init (&b);
  g_assert_true (modecfg_attrs_decode (attrs, &b, &error));
  g_assert_no_error (error);
  g_assert_false (b.has_addr4);
  g_assert_true (modecfg_attrs_asked (&b, MODECFG_IP4_ADDRESS));
  g_assert_true (modecfg_attrs_asked (&b, UNITY_SPLIT_INCLUDE));
  g_assert_false (modecfg_attrs_asked (&b, 31337));
  a6 = prefix_text (&b.addr6);
  g_assert_cmpstr (a6, ==, "2001:db8::/128");
  modecfg_attrs_clear (&b);
}

static void
assert_refused (guint16 type, const guint8 *data, gsize len)
{
  ModecfgAttrs b;
  g_autoptr (GArray) attrs = modike_attr_array_new ();
  g_autoptr (GError) error = NULL;

  modike_attr_add_tlv (attrs, type, data, len);
  modecfg_attrs_init (&b);
  if (modecfg_attrs_decode (attrs, &b, &error))
    g_error ("attribute %u of %zu bytes accepted", type, len);
  g_assert_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_MALFORMED);
  modecfg_attrs_clear (&b);
}

static void
test_attrs_malformed (void)
{
  static const guint8 junk[20] = { 1, 2, 3, 0, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 255 };
  static const guint8 hole[8] = { 10, 0, 0, 0, 255, 0, 255, 0 };
  static const guint8 bad_utf8[3] = { 'a', 0xc3, 0x28 };
  g_autofree char *long_text = g_strnfill (MODECFG_MAX_TEXT + 1, 'x');

  assert_refused (MODECFG_IP4_ADDRESS, junk, 3);
  assert_refused (MODECFG_IP4_NETMASK, junk, 5);
  assert_refused (MODECFG_IP4_DNS, junk, 16);
  assert_refused (MODECFG_IP6_DNS, junk, 4);
  assert_refused (MODECFG_IP6_ADDRESS, junk, 15);
  assert_refused (MODECFG_IP6_ADDRESS, junk, 17);   /* prefix length 255 */
  assert_refused (MODECFG_IP4_SUBNET, hole, 8);
  assert_refused (MODECFG_IP4_SUBNET, junk, 7);
  assert_refused (MODECFG_IP6_SUBNET, junk, 16);
  assert_refused (MODECFG_ADDRESS_EXPIRY, junk, 5);
  assert_refused (MODECFG_SUPPORTED_ATTRIBUTES, junk, 3);
  assert_refused (UNITY_SPLIT_INCLUDE, junk, 13);
  assert_refused (UNITY_LOCAL_LAN, junk, 20);
  assert_refused (UNITY_BANNER, junk, 4);           /* a NUL inside */
  assert_refused (UNITY_DEF_DOMAIN, bad_utf8, 3);
  /* a domain is one line of printable text (it reaches logs and terminals) */
  assert_refused (UNITY_DEF_DOMAIN, (const guint8 *) "corp\x1b[2J.example", 16);
  assert_refused (UNITY_SPLITDNS_NAME, (const guint8 *) "a.example,b\nnameserver 6.6.6.6", 30);
  assert_refused (UNITY_BANNER, (const guint8 *) long_text, strlen (long_text));
}

/* ---- the world: a gateway and clients, with the plugins ---- */

typedef struct {
  Net *net;
  Node *gw;
  Node *c[3];
  GPtrArray *log;             /* the gateway's fakes */
  GPtrArray *clog[3];
  FakeDp dp, cdp[3];
  FakeOs os, cos[3];
  GString *hlog[3];           /* each client's host: stages and banner */
  gboolean xauth;
  char *dir;
  gboolean drop_tx_from_gw;
  guint gw_tx;                /* transaction packets the gateway sent */
  Modecfg *cmc[3];            /* each client's plugin */
  Modecfg *gmc;               /* the gateway's */
  const char *client_options; /* more <option> elements for the clients */
  GString *seq;               /* t/T: transaction from a client / the gateway; q/Q: Quick Mode */
} World;

static const char *const client_addr[] = { "192.0.2.11", "192.0.2.12", "192.0.2.13" };

static FilterResult
world_filter (Net *net, guint n, Packet *p, gpointer user)
{
  World *w = user;
  gsize len;
  const guint8 *d = g_bytes_get_data (p->data, &len);
  gboolean from_gw = p->to != w->gw;
  guint8 ex = len > ISAKMP_EXCHANGE_OFFSET ? d[ISAKMP_EXCHANGE_OFFSET] : 0;

  if (ex == MODIKE_EX_TRANSACTION)
    g_string_append_c (w->seq, from_gw ? 'T' : 't');
  else if (ex == EX_QUICK)
    g_string_append_c (w->seq, from_gw ? 'Q' : 'q');
  if (ex == MODIKE_EX_TRANSACTION && from_gw)
    {
      w->gw_tx++;
      if (w->drop_tx_from_gw)
        return FILTER_DROP;
    }
  return FILTER_PASS;
}

static gboolean
xauth_plugin_init (ModikePlugin *plugin, GError **error)
{
  return xauth_init (plugin, error);
}

static const char *const xauth_provides[] = { "xauth", NULL };
static const ModikePluginDescriptor xauth_desc = {
  MODIKE_PLUGIN_DESCRIPTOR_INIT,
  .name = "xauth",
  .version = "1.0",
  .description = "xauth (test)",
  .provides = xauth_provides,
  .init = xauth_plugin_init,
};

/* Applies xml as the daemon does: plugin sections, auth names, the engine.
 * (main's xauth fixture has this as configure_xml (n, xml, "", error):
 * use that once both meet.) */
static gboolean
apply_xml (Node *n, const char *xml, GError **error)
{
  g_autoptr (GHashTable) fragments = modike_registry_config_fragments (n->reg);
  ModikeConfig *cfg = modike_config_load_string (xml, n->name, error);

  if (cfg == NULL)
    return FALSE;
  if (!modike_config_check_plugins (cfg, fragments, error) || !modike_registry_resolve_auth (n->reg, cfg, error)
      || !modike_registry_apply_config (n->reg, cfg, error) || !modike_ike_set_config (n->ike, cfg, error))
    {
      modike_config_free (cfg);
      return FALSE;
    }
  modike_config_free (n->cfg);
  n->cfg = cfg;
  return TRUE;
}

static const char p1_xml[] = "    <phase1 exchange=\"main\" lifetime=\"600\">"
                             "<proposal encryption=\"aes128\" hash=\"sha256\" group=\"curve25519\"/></phase1>\n"
                             "    <retransmit interval=\"1000\" tries=\"5\" half-open=\"60\"/>\n";

static char *
gw_xml (World *w, const char *modecfg_section)
{
  g_autofree char *users = NULL;

  if (w->xauth)
    users = g_strdup_printf ("  <xauth users-file=\"%s/users\"/>\n", w->dir);
  return g_strdup_printf ("<?xml version=\"1.0\"?>\n"
                          "<modike>\n"
                          "  <peer name=\"clients\">\n"
                          "    <local address=\"" GW_ADDR "\"/>\n"
                          "    <auth method=\"%s\" secret=\"clientpsk\"/>\n"
                          "%s"
                          "  </peer>\n"
                          "  <policy name=\"vips\" peer=\"clients\" action=\"protect\" local=\"10.1.0.0/16\""
                          " remote=\"virtual\">\n"
                          "    <proposal encryption=\"aes128\" integrity=\"sha256\"/>\n"
                          "  </policy>\n"
                          "%s%s"
                          "</modike>\n",
                          w->xauth ? "xauth-psk" : "psk", p1_xml, users != NULL ? users : "",
                          modecfg_section != NULL ? modecfg_section : "");
}

static char *
client_xml (World *w, guint i, const char *mode, const char *id)
{
  g_autofree char *creds = NULL;

  if (w->xauth)
    creds = g_strdup_printf ("  <xauth><credentials peer=\"gw\" user=\"user%u\" password-file=\"%s/pw\"/></xauth>\n",
                             i, w->dir);
  return g_strdup_printf ("<?xml version=\"1.0\"?>\n"
                          "<modike>\n"
                          "  <peer name=\"gw\" initiate=\"no\">\n"
                          "    <local address=\"%s\"/>\n"
                          "    <remote address=\"" GW_ADDR "\"/>\n"
                          "    <local-id type=\"fqdn\" value=\"%s\"/>\n"
                          "    <auth method=\"%s\" secret=\"clientpsk\"/>\n"
                          "%s"
                          "    <option name=\"modecfg.mode\" value=\"%s\"/>\n"
                          "    <option name=\"modecfg.timeout\" value=\"20\"/>\n"
                          "%s"
                          "  </peer>\n"
                          "  <policy name=\"vpn\" peer=\"gw\" action=\"protect\" local=\"virtual\""
                          " remote=\"10.0.0.0/8\">\n"
                          "    <proposal encryption=\"aes128\" integrity=\"sha256\"/>\n"
                          "  </policy>\n"
                          "%s"
                          "</modike>\n",
                          client_addr[i], id, w->xauth ? "xauth-psk" : "psk", p1_xml, mode,
                          w->client_options != NULL ? w->client_options : "", creds != NULL ? creds : "");
}

/* A pool of one address. */
static const char one_address_section[] =
  "  <modecfg><leases file=\"memory\"/><pool name=\"one\" range=\"10.9.0.7\"/>"
  "<gateway peer=\"clients\" pools=\"one\"/></modecfg>\n";

static const char default_section[] =
  "  <modecfg>\n"
  "    <leases file=\"memory\"/>\n"
  "    <pool name=\"rw\" range=\"10.9.0.10-10.9.0.20\"/>\n"
  "    <gateway peer=\"clients\" pools=\"rw\" dns=\"10.1.0.53 10.1.0.54\" split-include=\"10.1.0.0/16 10.2.0.0/16\""
  " split-exclude=\"10.2.99.0/24\" domain=\"corp.example\" split-dns=\"corp.example lab.example\""
  " banner=\"Authorised users only\" save-password=\"no\"/>\n"
  "  </modecfg>\n";

/* The stages of XAuth and mode config (the core reports "adapter" and
 * "routes" of its own, which these tests leave to the fsm suite). */
static void
host_stage (gpointer host, const char *peer, const char *stage, gboolean up, const GError *error)
{
  if (strcmp (stage, "xauth") != 0 && strcmp (stage, "modecfg") != 0)
    return;
  g_string_append_printf (host, "stage %s %s%s%s\n", stage, up ? "up" : "failed", error ? ": " : "",
                          error ? error->message : "");
}

static void
host_banner (gpointer host, const char *peer, const char *text)
{
  g_string_append_printf (host, "banner %s\n", text);
}

static void
host_request (gpointer host, const char *peer, const char *prompt, const ModikeCredentialField *fields,
              guint n_fields, ModikeHostCredentialsDone done, gpointer token)
{
  g_autoptr (GError) e = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_FAILED, "nobody attached");

  done (NULL, e, token);
}

static const ModikeHostOps host_ops = { sizeof (ModikeHostOps), host_request, host_stage, host_banner };

static World *
world_new (gboolean xauth, const char *section)
{
  World *w = g_new0 (World, 1);
  g_autofree char *xml = NULL;
  g_autoptr (GError) error = NULL;

  w->xauth = xauth;
  w->seq = g_string_new (NULL);
  w->dir = g_dir_make_tmp ("modecfg-XXXXXX", NULL);
  g_assert_nonnull (w->dir);
  if (xauth)
    {
      g_autoptr (GString) users = g_string_new (NULL);
      g_autofree char *upath = g_build_filename (w->dir, "users", NULL);
      g_autofree char *ppath = g_build_filename (w->dir, "pw", NULL);

      for (guint i = 0; i < 3; i++)
        {
          g_autofree char *name = g_strdup_printf ("user%u", i);
          g_autofree char *line = xauth_users_make_entry (name, (const guint8 *) "secretpw", 8, 1000, &error);

          g_assert_no_error (error);
          g_string_append_printf (users, "%s\n", line);
        }
      g_assert_true (g_file_set_contents (upath, users->str, -1, NULL));
      g_assert_true (g_file_set_contents (ppath, "secretpw\n", -1, NULL));
    }
  w->net = net_new ();
  w->net->filter = world_filter;
  w->net->filter_user = w;
  w->log = g_ptr_array_new_with_free_func (g_free);
  fake_dp_init (&w->dp, w->log);
  w->os.log = w->log;
  w->gw = node_alloc (w->net, "gw", GW_ADDR);
  fake_dp_register (w->gw, &w->dp);
  fake_os_register (w->gw, &w->os);
  if (xauth)
    node_load_plugin (w->gw, &xauth_desc);
  w->gmc = node_load_plugin (w->gw, modike_plugin_descriptor ());
  xml = gw_xml (w, section);
  g_assert_true (apply_xml (w->gw, xml, &error));
  g_assert_no_error (error);
  return w;
}

static Node *
world_client (World *w, guint i, const char *mode, const char *id)
{
  g_autofree char *xml = client_xml (w, i, mode, id);
  g_autoptr (GError) error = NULL;

  if (w->clog[i] == NULL)
    {
      w->clog[i] = g_ptr_array_new_with_free_func (g_free);
      fake_dp_init (&w->cdp[i], w->clog[i]);
      w->cos[i].log = w->clog[i];
      w->hlog[i] = g_string_new (NULL);
    }
  w->c[i] = node_alloc (w->net, "client", client_addr[i]);
  fake_dp_register (w->c[i], &w->cdp[i]);
  fake_os_register (w->c[i], &w->cos[i]);
  if (w->xauth)
    node_load_plugin (w->c[i], &xauth_desc);
  w->cmc[i] = node_load_plugin (w->c[i], modike_plugin_descriptor ());
  g_assert_true (apply_xml (w->c[i], xml, &error));
  g_assert_no_error (error);
  modike_ike_set_host (w->c[i]->ike, &host_ops, w->hlog[i]);
  return w->c[i];
}

static void
world_free (World *w)
{
  g_autoptr (GDir) d = g_dir_open (w->dir, 0, NULL);
  const char *name;

  net_free (w->net);
  fake_dp_clear (&w->dp);
  g_ptr_array_unref (w->log);
  for (guint i = 0; i < G_N_ELEMENTS (w->c); i++)
    if (w->clog[i] != NULL)
      {
        fake_dp_clear (&w->cdp[i]);
        g_ptr_array_unref (w->clog[i]);
        g_string_free (w->hlog[i], TRUE);
      }
  while ((name = g_dir_read_name (d)) != NULL)
    {
      g_autofree char *path = g_build_filename (w->dir, name, NULL);

      g_unlink (path);
    }
  g_rmdir (w->dir);
  g_free (w->dir);
  g_string_free (w->seq, TRUE);
  g_free (w);
}

/* The last line of log starting with prefix, or NULL. */
static const char *
log_last (GPtrArray *log, const char *prefix)
{
  for (guint i = log->len; i-- > 0;)
    if (g_str_has_prefix (log->pdata[i], prefix))
      return log->pdata[i];
  return NULL;
}

typedef struct {
  World *w;
  guint i;
  const char *text;
} HostWant;

/* Client i's host saw a line containing text. */
static gboolean
pred_host (Net *net, gpointer user)
{
  HostWant *q = user;

  return strstr (q->w->hlog[q->i]->str, q->text) != NULL && g_queue_is_empty (&net->queue);
}

static void
connect_client (World *w, guint i)
{
  g_autoptr (GError) error = NULL;

  g_assert_true (modike_ike_initiate (w->c[i]->ike, "gw", &error));
  g_assert_no_error (error);
}

/* Connects client i and runs until its host saw the modecfg stage. */
static void
connect_until (World *w, guint i, const char *text)
{
  HostWant q = { w, i, text };

  connect_client (w, i);
  if (!net_run (w->net, 60000, pred_host, &q))
    g_error ("client %u: no '%s' in:\n%s", i, text, w->hlog[i]->str);
}

/* The client's adapter address ("10.9.0.10/32"), from its fake OS log. */
static char *
client_address (World *w, guint i)
{
  const char *line = log_last (w->clog[i], "address ");
  g_auto (GStrv) parts = NULL;

  g_assert_nonnull (line);
  parts = g_strsplit (line, " ", -1);
  return g_strdup (parts[2]);
}

static ModikeIkeSa *
client_sa (World *w, guint i)
{
  return engine_best_established (engine_peer_sas (w->c[i]->ike, "gw"), NULL);
}

/* The gateway's newest live SA from client i. */
static ModikeIkeSa *
gw_sa (World *w, guint i)
{
  return newest_sa_from (w->gw, &w->c[i]->addr);
}

static gboolean
pred_idle (Net *net, gpointer user)
{
  return g_queue_is_empty (&net->queue);
}

/* The SPD of n holds a PROTECT entry local -> remote (texts as
 * modike_addr_range would print them: "10.9.0.10/32"). */
static gboolean
spd_has (Node *n, const char *local, const char *remote)
{
  g_autoptr (GPtrArray) entries = modike_spd_entries (modike_ike_get_spd (n->ike));

  for (guint i = 0; i < entries->len; i++)
    {
      const ModikeSpdEntry *e = g_ptr_array_index (entries, i);
      ModikeAddrRange l, r;
      ModikePrefix lp, rp;

      g_assert_true (modike_prefix_parse (local, &lp, NULL));
      g_assert_true (modike_prefix_parse (remote, &rp, NULL));
      g_assert_true (modike_addr_range_from_prefix (&lp, &l));
      g_assert_true (modike_addr_range_from_prefix (&rp, &r));
      if (e->action == MODIKE_SPD_PROTECT && modike_addr_equal_ip (&e->local.from, &l.from)
          && modike_addr_equal_ip (&e->local.to, &l.to) && modike_addr_equal_ip (&e->remote.from, &r.from)
          && modike_addr_equal_ip (&e->remote.to, &r.to))
        return TRUE;
    }
  return FALSE;
}

/* ---- client against gateway ---- */

/* Pull: the client asks, gets address, DNS, domains, split networks and
 * the banner; its adapter has them, its policy instances use the address,
 * the gateway has an instance for the client; after disconnect all of it
 * is gone. */
static void
test_pull (void)
{
  World *w = world_new (FALSE, default_section);
  g_autofree char *addr = NULL;
  const char *dns;

  world_client (w, 0, "pull", "c0.example");
  connect_until (w, 0, "stage modecfg");
  g_assert_cmpstr (w->hlog[0]->str, ==, "stage modecfg up\nbanner Authorised users only\n");
  addr = client_address (w, 0);
  g_assert_cmpstr (addr, ==, "10.9.0.10/32");
  /* split include, less the excluded 10.2.99.0/24 */
  g_assert_true (log_has (w->clog[0], "route+ modike0 10.1.0.0/16"));
  g_assert_true (log_has (w->clog[0], "route+ modike0 10.2.98.0/24"));
  g_assert_true (log_has (w->clog[0], "route+ modike0 10.2.100.0/22"));
  g_assert_null (log_last (w->clog[0], "route+ modike0 10.2.99.0"));
  dns = log_last (w->clog[0], "dns ");
  g_assert_nonnull (dns);
  g_assert_nonnull (strstr (dns, "servers=10.1.0.53,10.1.0.54"));
  g_assert_nonnull (strstr (dns, "domains=corp.example,lab.example"));
  /* split include: one instance per network, from the assigned address */
  g_assert_true (spd_has (w->c[0], "10.9.0.10/32", "10.1.0.0/16"));
  g_assert_true (spd_has (w->c[0], "10.9.0.10/32", "10.2.0.0/16"));
  g_assert_false (spd_has (w->c[0], "10.9.0.10/32", "10.0.0.0/8"));
  /* the gateway: an instance for this client */
  g_assert_true (spd_has (w->gw, "10.1.0.0/16", "10.9.0.10/32"));
  g_assert_cmpuint (w->c[0]->p1_failed, ==, 0);

  /* disconnect: the client's result goes, the gateway's instance too */
  modike_ike_terminate (w->c[0]->ike, "gw");
  g_assert_true (net_run (w->net, 5000, pred_idle, NULL));
  g_assert_nonnull (log_last (w->clog[0], "destroy modike0"));
  g_assert_nonnull (log_last (w->clog[0], "dns- "));
  g_assert_false (spd_has (w->c[0], "10.9.0.10/32", "10.1.0.0/16"));
  g_assert_false (spd_has (w->gw, "10.1.0.0/16", "10.9.0.10/32"));
  world_free (w);
}

typedef struct {
  Node *n;
  guint p2_up;
} P2Want;

static gboolean
pred_p2 (Net *net, gpointer user)
{
  P2Want *q = user;

  return q->n->p2_up >= q->p2_up && g_queue_is_empty (&net->queue);
}

/* Phase 2 waits for mode config, then Quick Mode runs with the assigned
 * address as the client's selector. */
static void
test_quick_mode_after_config (void)
{
  World *w = world_new (FALSE,
                        "  <modecfg><leases file=\"memory\"/><pool name=\"rw\" range=\"10.9.0.0/24\"/>"
                        "<gateway peer=\"clients\" pools=\"rw\" dns=\"10.1.0.53\" split-include=\"10.1.0.0/16\"/>"
                        "</modecfg>\n");
  g_autoptr (GPtrArray) entries = NULL;
  P2Want q;
  guint32 id = 0;

  world_client (w, 0, "pull", "c0.example");
  connect_until (w, 0, "stage modecfg up");
  g_assert_true (spd_has (w->c[0], "10.9.0.1/32", "10.1.0.0/16"));
  g_assert_nonnull (strstr (w->seq->str, "tT"));
  g_assert_null (strchr (w->seq->str, 'q'));
  entries = modike_spd_entries (modike_ike_get_spd (w->c[0]->ike));
  for (guint i = 0; i < entries->len; i++)
    if (((const ModikeSpdEntry *) g_ptr_array_index (entries, i))->action == MODIKE_SPD_PROTECT)
      id = ((const ModikeSpdEntry *) g_ptr_array_index (entries, i))->id;
  g_assert_cmpuint (id, !=, 0);
  q = (P2Want){ w->c[0], w->c[0]->p2_up + 1 };
  engine_acquire (w->c[0]->ike, id, NULL);
  g_assert_true (net_run (w->net, 30000, pred_p2, &q));
  g_assert_cmpuint (w->gw->p2_up, ==, 1);
  world_free (w);
}

/* Push: the gateway sends a SET after phase 1, the client applies it and
 * acknowledges. */
static void
test_push (void)
{
  World *w = world_new (FALSE,
                        "  <modecfg><leases file=\"memory\"/><pool name=\"rw\" range=\"10.9.0.10-10.9.0.20\"/>"
                        "<gateway peer=\"clients\" pools=\"rw\" dns=\"10.1.0.53\" push=\"yes\""
                        " split-include=\"10.1.0.0/16\" banner=\"hello\"/></modecfg>\n");
  g_autofree char *addr = NULL;

  world_client (w, 0, "push", "c0.example");
  connect_until (w, 0, "stage modecfg");
  g_assert_cmpstr (w->hlog[0]->str, ==, "stage modecfg up\nbanner hello\n");
  addr = client_address (w, 0);
  g_assert_cmpstr (addr, ==, "10.9.0.10/32");
  /* SET from the gateway, ACK from the client: nothing else */
  g_assert_cmpstr (w->seq->str, ==, "Tt");
  g_assert_true (spd_has (w->c[0], "10.9.0.10/32", "10.1.0.0/16"));
  g_assert_true (spd_has (w->gw, "10.1.0.0/16", "10.9.0.10/32"));
  world_free (w);
}

/* XAuth first, mode config only after XAUTH_STATUS OK; the lease key is
 * the XAuth user name. */
static void
test_after_xauth (void)
{
  World *w = world_new (TRUE, default_section);
  g_autofree char *addr = NULL;
  ModikeIkeSa *gsa;

  world_client (w, 0, "pull", "c0.example");
  connect_until (w, 0, "stage modecfg");
  g_assert_cmpstr (w->hlog[0]->str, ==, "stage xauth up\nstage modecfg up\nbanner Authorised users only\n");
  /* REQUEST/REPLY (xauth), SET/ACK (status), then REQUEST/REPLY (mode config) */
  g_assert_cmpstr (w->seq->str, ==, "TtTttT");
  addr = client_address (w, 0);
  g_assert_cmpstr (addr, ==, "10.9.0.10/32");
  gsa = gw_sa (w, 0);
  g_assert_cmpstr (modike_ike_sa_get_user (gsa), ==, "user0");
  world_free (w);
}

/* Two clients, one address: the second's SA fails with the pool's error
 * on both ends and nothing stays on its adapter; the first keeps its. */
static void
test_pool_exhausted (void)
{
  World *w = world_new (FALSE, one_address_section);
  g_autofree char *addr = NULL;

  world_client (w, 0, "pull", "c0.example");
  world_client (w, 1, "pull", "c1.example");
  connect_until (w, 0, "stage modecfg up");
  connect_until (w, 1, "stage modecfg failed");
  g_assert_nonnull (strstr (w->hlog[1]->str, "carries no address"));
  g_assert_true (net_run (w->net, 5000, pred_idle, NULL));
  g_assert_null (client_sa (w, 1));
  g_assert_null (gw_sa (w, 1));
  g_assert_null (log_last (w->clog[1], "address "));
  g_assert_nonnull (w->gw->p1_error);
  g_assert_nonnull (strstr (w->gw->p1_error->message, "pool 'one'"));
  g_assert_nonnull (strstr (w->gw->p1_error->message, "exhausted"));
  /* the first is untouched */
  g_assert_nonnull (client_sa (w, 0));
  addr = client_address (w, 0);
  g_assert_cmpstr (addr, ==, "10.9.0.7/32");
  g_assert_null (log_last (w->clog[0], "route- "));
  g_assert_true (spd_has (w->gw, "10.1.0.0/16", "10.9.0.7/32"));
  world_free (w);
}

typedef struct {
  World *w;
  guint serial;
} RekeyWant;

/* Client 0 has a newer established SA than `serial` and the old one went. */
static gboolean
pred_rekeyed (Net *net, gpointer user)
{
  RekeyWant *q = user;
  ModikeIkeSa *sa = client_sa (q->w, 0);

  return sa != NULL && sa->serial != q->serial && modike_ike_count_sas (q->w->c[0]->ike, FALSE) == 1
         && g_queue_is_empty (&net->queue);
}

/* A phase 1 rekey keeps the address: the new SA asks again and gets the
 * same one, the old SA's going does not free it (on a pool of one, a
 * second client is still refused). */
static void
test_rekey_keeps_address (gconstpointer xauth)
{
  World *w = world_new (GPOINTER_TO_INT (xauth), one_address_section);
  RekeyWant q = { w, 0 };
  g_autofree char *addr = NULL;

  world_client (w, 0, "pull", "c0.example");
  world_client (w, 1, "pull", "c1.example");
  connect_until (w, 0, "stage modecfg up");
  q.serial = client_sa (w, 0)->serial;
  g_assert_true (net_run (w->net, 900000, pred_rekeyed, &q));
  g_assert_false (log_has (w->clog[0], "destroy modike0"));
  addr = client_address (w, 0);
  g_assert_cmpstr (addr, ==, "10.9.0.7/32");
  g_assert_true (spd_has (w->gw, "10.1.0.0/16", "10.9.0.7/32"));
  connect_until (w, 1, "stage modecfg failed");
  g_assert_nonnull (strstr (w->gw->p1_error->message, "exhausted"));
  world_free (w);
}

/* Dual stack: an IPv4 and an IPv6 pool, the client asks for both
 * (modecfg.ipv6); the adapter gets both addresses and both DNS servers. */
static void
test_dual_stack (void)
{
  World *w = world_new (FALSE,
                        "  <modecfg><leases file=\"memory\"/><pool name=\"rw\" range=\"10.9.0.10-10.9.0.20\"/>"
                        "<pool name=\"rw6\" range=\"2001:db8:f::/112\"/>"
                        "<gateway peer=\"clients\" pools=\"rw rw6\" dns=\"10.1.0.53 2001:db8:1::53\"/></modecfg>\n");
  const char *dns;

  w->client_options = "    <option name=\"modecfg.ipv6\" value=\"yes\"/>\n";
  world_client (w, 0, "pull", "c0.example");
  connect_until (w, 0, "stage modecfg up");
  g_assert_true (log_has (w->clog[0], "address modike0 10.9.0.10/32 mtu=1400"));
  g_assert_true (log_has (w->clog[0], "address modike0 2001:db8:f::1/128 mtu=1400"));
  dns = log_last (w->clog[0], "dns ");
  g_assert_nonnull (strstr (dns, "servers=10.1.0.53,2001:db8:1::53"));
  world_free (w);
}

/* A lease goes back with the client's SA: on a pool of one address the
 * next client gets it once the first has left. */
static void
test_lease_released (void)
{
  World *w = world_new (FALSE, one_address_section);
  g_autofree char *addr = NULL;

  world_client (w, 0, "pull", "c0.example");
  world_client (w, 1, "pull", "c1.example");
  connect_until (w, 0, "stage modecfg up");
  modike_ike_terminate (w->c[0]->ike, "gw");
  g_assert_true (net_run (w->net, 5000, pred_idle, NULL));
  g_assert_null (gw_sa (w, 0));
  connect_until (w, 1, "stage modecfg up");
  addr = client_address (w, 1);
  g_assert_cmpstr (addr, ==, "10.9.0.7/32");
  world_free (w);
}

/* The same identity gets its address back after a reconnect, even when
 * another client connected in between; over an SQLite file, also after a
 * gateway restart. */
static void
test_same_user_same_address (void)
{
  World *w = world_new (FALSE, NULL);
  g_autofree char *section = g_strdup_printf ("  <modecfg><leases file=\"%s/leases.db\"/>"
                                              "<pool name=\"rw\" range=\"10.9.0.10-10.9.0.20\"/>"
                                              "<gateway peer=\"clients\" pools=\"rw\"/></modecfg>\n",
                                              w->dir);
  g_autofree char *xml = gw_xml (w, section);
  g_autoptr (GError) error = NULL;
  g_autofree char *a1 = NULL, *a2 = NULL, *a3 = NULL, *b1 = NULL;
  HostWant q;

  g_assert_true (apply_xml (w->gw, xml, &error));
  g_assert_no_error (error);
  world_client (w, 0, "pull", "c0.example");
  world_client (w, 1, "pull", "c1.example");
  connect_until (w, 1, "stage modecfg up");
  b1 = client_address (w, 1);
  connect_until (w, 0, "stage modecfg up");
  a1 = client_address (w, 0);
  /* no split include: a full tunnel (the template's remote) */
  g_assert_true (spd_has (w->c[0], "10.9.0.11/32", "10.0.0.0/8"));
  g_assert_cmpstr (b1, ==, "10.9.0.10/32");
  g_assert_cmpstr (a1, ==, "10.9.0.11/32");
  modike_ike_terminate (w->c[0]->ike, "gw");
  modike_ike_terminate (w->c[1]->ike, "gw");
  g_assert_true (net_run (w->net, 5000, pred_idle, NULL));
  /* client 0 first this time: still .11 */
  g_string_truncate (w->hlog[0], 0);
  connect_until (w, 0, "stage modecfg up");
  a2 = client_address (w, 0);
  g_assert_cmpstr (a2, ==, "10.9.0.11/32");
  modike_ike_terminate (w->c[0]->ike, "gw");
  g_assert_true (net_run (w->net, 5000, pred_idle, NULL));

  /* a gateway restart: a new engine and plugin over the same file */
  w->net->nodes[0] = NULL;
  node_free (w->gw);
  w->gw = node_alloc (w->net, "gw", GW_ADDR);
  fake_dp_register (w->gw, &w->dp);
  fake_os_register (w->gw, &w->os);
  node_load_plugin (w->gw, modike_plugin_descriptor ());
  g_assert_true (apply_xml (w->gw, xml, &error));
  g_assert_no_error (error);
  g_string_truncate (w->hlog[0], 0);
  q = (HostWant){ w, 0, "stage modecfg up" };
  connect_client (w, 0);
  g_assert_true (net_run (w->net, 60000, pred_host, &q));
  a3 = client_address (w, 0);
  g_assert_cmpstr (a3, ==, "10.9.0.11/32");
  world_free (w);
}

/* Identities longer than a lease key (MODECFG_IDENTITY_MAX): two that
 * differ only past it are two users with two addresses. */
static void
test_long_identities (void)
{
  World *w = world_new (FALSE, default_section);
  g_autoptr (GString) common = g_string_new (NULL);
  g_autofree char *a0 = NULL, *a1 = NULL;

  while (common->len < MODECFG_IDENTITY_MAX + 20)
    g_string_append (common, "host.");
  for (guint i = 0; i < 2; i++)
    {
      g_autofree char *id = g_strdup_printf ("%sc%u.example", common->str, i);

      world_client (w, i, "pull", id);
    }
  connect_until (w, 0, "stage modecfg up");
  connect_until (w, 1, "stage modecfg up");
  a0 = client_address (w, 0);
  a1 = client_address (w, 1);
  g_assert_nonnull (a0);
  g_assert_nonnull (a1);
  g_assert_cmpstr (a0, !=, a1);
  world_free (w);
}

/* A reload takes a client's pool away, the client leaves, the pool comes
 * back: the lease went offline when the client left (it was online for
 * good, one address less per such reload). */
static void
test_pool_removed_by_reload (void)
{
  static const char other_section[] = "  <modecfg><leases file=\"memory\"/>"
                                      "<pool name=\"rw2\" range=\"10.9.1.10-10.9.1.20\"/>"
                                      "<gateway peer=\"clients\" pools=\"rw2\"/></modecfg>\n";
  World *w = world_new (FALSE, default_section);
  g_autofree char *other = gw_xml (w, other_section);
  g_autofree char *back = gw_xml (w, default_section);
  g_autoptr (GError) error = NULL;
  ModecfgPoolStatus status;

  world_client (w, 0, "pull", "c0.example");
  connect_until (w, 0, "stage modecfg up");
  g_assert_true (apply_xml (w->gw, other, &error));
  g_assert_no_error (error);
  modike_ike_terminate (w->c[0]->ike, "gw");
  g_assert_true (net_run (w->net, 5000, pred_idle, NULL));
  g_assert_null (gw_sa (w, 0));
  g_assert_true (apply_xml (w->gw, back, &error));
  g_assert_no_error (error);
  g_assert_true (modecfg_pool_get_status (g_hash_table_lookup (w->gmc->pools, "rw"), &status, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (status.online, ==, 0);
  g_assert_cmpuint (status.offline, ==, 1);
  world_free (w);
}

/* A gateway that hands out an address no host can have (unspecified,
 * loopback, multicast, broadcast): the client refuses it with a clear
 * error and configures nothing. */
static void
test_unusable_address (void)
{
  static const char *const bad[] = { "0.0.0.0", "127.0.0.1", "224.0.0.5", "255.255.255.255" };

  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autofree char *section = g_strdup_printf ("  <modecfg><leases file=\"memory\"/><pool name=\"bad\" range=\"%s\"/>"
                                                  "<gateway peer=\"clients\" pools=\"bad\"/></modecfg>\n",
                                                  bad[i]);
      World *w = world_new (FALSE, section);

      world_client (w, 0, "pull", "c0.example");
      connect_until (w, 0, "stage modecfg failed");
      if (strstr (w->hlog[0]->str, "not an address for a host") == NULL)
        g_error ("%s: %s", bad[i], w->hlog[0]->str);
      g_assert_null (log_last (w->clog[0], "address "));
      world_free (w);
    }
}

/* A client that asks for another client's address (a value in its
 * REQUEST's INTERNAL_IP4_ADDRESS) gets its own lease; the other keeps
 * its address and instance. */
static void
test_request_for_address_ignored (void)
{
  World *w = world_new (FALSE, default_section);
  g_autofree char *a0 = NULL, *a1 = NULL;
  ModikeAddr want;
  g_autofree char *vip0 = NULL;

  world_client (w, 0, "pull", "c0.example");
  world_client (w, 1, "pull", "c1.example");
  connect_until (w, 0, "stage modecfg up");
  a0 = client_address (w, 0);
  vip0 = g_strndup (a0, strchr (a0, '/') - a0);
  g_assert_true (modike_addr_parse (vip0, 0, &want, NULL));
  w->cmc[1]->request_extra = modike_attr_array_new ();
  modike_attr_add_addr (w->cmc[1]->request_extra, MODECFG_IP4_ADDRESS, &want);
  connect_until (w, 1, "stage modecfg up");
  a1 = client_address (w, 1);
  g_assert_cmpstr (a1, !=, a0);
  g_assert_true (spd_has (w->gw, "10.1.0.0/16", a0));
  g_assert_nonnull (client_sa (w, 0));
  world_free (w);
}

/* Three clients at once: each its own address, instance and adapter. */
static void
test_three_clients (void)
{
  World *w = world_new (FALSE, default_section);
  g_autoptr (GHashTable) seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);

  for (guint i = 0; i < 3; i++)
    {
      g_autofree char *id = g_strdup_printf ("c%u.example", i);

      world_client (w, i, "pull", id);
      connect_client (w, i);
    }
  for (guint i = 0; i < 3; i++)
    {
      HostWant q = { w, i, "stage modecfg up" };
      g_autofree char *addr = NULL;
      g_autofree char *host = NULL;

      g_assert_true (net_run (w->net, 60000, pred_host, &q));
      addr = client_address (w, i);
      g_assert_false (g_hash_table_contains (seen, addr));
      host = g_strdup (addr);
      g_assert_true (spd_has (w->gw, "10.1.0.0/16", host));
      g_assert_true (spd_has (w->c[i], host, "10.1.0.0/16"));
      g_hash_table_add (seen, g_steal_pointer (&addr));
    }
  g_assert_cmpuint (g_hash_table_size (seen), ==, 3);
  /* one leaves: the others keep theirs */
  modike_ike_terminate (w->c[1]->ike, "gw");
  g_assert_true (net_run (w->net, 5000, pred_idle, NULL));
  g_assert_nonnull (client_sa (w, 0));
  g_assert_nonnull (client_sa (w, 2));
  g_assert_null (log_last (w->clog[0], "route- "));
  world_free (w);
}

/* The gateway never answers: after modecfg.timeout (20 s here) the
 * client's SA fails with a clear error, the stage says so, and nothing
 * was applied. */
static void
test_gateway_silent (void)
{
  World *w = world_new (FALSE, default_section);
  HostWant q = { w, 0, "stage modecfg failed" };

  world_client (w, 0, "pull", "c0.example");
  w->drop_tx_from_gw = TRUE;
  connect_client (w, 0);
  g_assert_true (net_run (w->net, 120000, pred_host, &q));
  g_assert_nonnull (strstr (w->hlog[0]->str, "peer gw: no mode config reply within 20 s"));
  g_assert_true (net_run (w->net, 5000, pred_idle, NULL));
  g_assert_null (client_sa (w, 0));
  g_assert_null (log_last (w->clog[0], "address "));
  g_assert_cmpuint (w->c[0]->p2_up, ==, 0);
  world_free (w);
}

/* A gateway without mode config for the peer: the client's REQUEST is
 * refused and the client fails (no hang beyond the timeout). */
static void
test_gateway_not_configured (void)
{
  World *w = world_new (FALSE, NULL);
  HostWant q = { w, 0, "stage modecfg failed" };

  world_client (w, 0, "pull", "c0.example");
  connect_client (w, 0);
  g_assert_true (net_run (w->net, 120000, pred_host, &q));
  g_assert_null (log_last (w->clog[0], "address "));
  world_free (w);
}

/* An unknown attribute in a REQUEST is ignored: the client still gets its
 * address (the core skips unclaimed types; the gateway answers the rest). */
static void
test_unknown_attribute (void)
{
  ModecfgAttrs req;
  g_autoptr (GArray) attrs = modike_attr_array_new ();
  g_autoptr (GError) error = NULL;
  World *w = world_new (FALSE, default_section);
  g_autofree char *addr = NULL;

  /* the codec: skipped */
  modike_attr_add_tlv (attrs, 0x7777, (const guint8 *) "zz", 2);
  modike_attr_add_tlv (attrs, MODECFG_IP4_ADDRESS, NULL, 0);
  modecfg_attrs_init (&req);
  g_assert_true (modecfg_attrs_decode (attrs, &req, &error));
  g_assert_true (modecfg_attrs_asked (&req, MODECFG_IP4_ADDRESS));
  modecfg_attrs_clear (&req);
  /* the exchange: the client's REQUEST carries an unclaimed type */
  world_client (w, 0, "pull", "c0.example");
  w->cmc[0]->request_extra = modike_attr_array_new ();
  modike_attr_add_tlv (w->cmc[0]->request_extra, 0x7777, (const guint8 *) "zz", 2);
  connect_until (w, 0, "stage modecfg up");
  addr = client_address (w, 0);
  g_assert_cmpstr (addr, ==, "10.9.0.10/32");
  world_free (w);
}

/* ---- the <modecfg> section ---- */

static void
assert_config_error (const char *section, const char *text)
{
  World *w = world_new (FALSE, NULL);
  g_autofree char *xml = gw_xml (w, section);
  g_autoptr (GError) error = NULL;

  if (apply_xml (w->gw, xml, &error))
    g_error ("accepted: %s", section);
  if (strstr (error->message, text) == NULL)
    g_error ("'%s' does not contain '%s'", error->message, text);
  world_free (w);
}

static void
test_config_errors (void)
{
  assert_config_error ("<modecfg><leases file=\"memory\"/><pool name=\"rw\" range=\"10.9.0.300-10.9.0.1\"/></modecfg>",
                       "<pool>: range");
  assert_config_error ("<modecfg><leases file=\"memory\"/><pool name=\"rw\" range=\"10.9.0.0/24\"/>"
                       "<pool name=\"rw\" range=\"10.8.0.0/24\"/></modecfg>",
                       "a second pool named 'rw'");
  assert_config_error ("<modecfg><leases file=\"memory\"/><pool name=\"rw\" range=\"10.9.0.0/24\"/>"
                       "<gateway peer=\"clients\" pools=\"rw other\"/></modecfg>",
                       "no <pool name=\"other\">");
  assert_config_error ("<modecfg><leases file=\"memory\"/><pool name=\"a\" range=\"10.9.0.0/24\"/>"
                       "<pool name=\"b\" range=\"10.8.0.0/24\"/><gateway peer=\"clients\" pools=\"a b\"/></modecfg>",
                       "two pools of one address family");
  assert_config_error ("<modecfg><gateway peer=\"clients\" dns=\"10.1.0.300\"/></modecfg>",
                       "dns: '10.1.0.300' is not an address");
  assert_config_error ("<modecfg><gateway peer=\"clients\" split-include=\"10.1.0.0/33\"/></modecfg>",
                       "split-include");
  assert_config_error ("<modecfg><gateway peer=\"clients\" push=\"maybe\"/></modecfg>", "push='maybe'");
  assert_config_error ("<modecfg><gateway peer=\"clients\" push=\"yes\"/></modecfg>", "without pools");
  assert_config_error ("<modecfg><gateway peer=\"clients\" domain=\"bad domain!\"/></modecfg>", "domain");
  assert_config_error ("<modecfg><gateway peer=\"clients\" pfs=\"0\"/></modecfg>", "pfs='0'");
  assert_config_error ("<modecfg><gateway peer=\"clients\"/><gateway peer=\"clients\"/></modecfg>",
                       "a second entry for peer 'clients'");
  assert_config_error ("<modecfg><leases file=\"relative.db\"/><pool name=\"rw\" range=\"10.9.0.0/24\"/></modecfg>",
                       "not an absolute path");
  assert_config_error ("<modecfg><gateway peer=\"clients\" split-exclude=\"2001:db8::/32\"/></modecfg>",
                       "IPv4 networks only");
  /* any order of the elements; a second <leases> is refused */
  assert_config_error ("<modecfg><gateway peer=\"clients\" pools=\"rw9\"/><pool name=\"rw\" range=\"10.9.0.0/24\"/>"
                       "<leases file=\"memory\"/></modecfg>",
                       "no <pool name=\"rw9\">");
  assert_config_error ("<modecfg><leases file=\"memory\"/><leases file=\"memory\"/></modecfg>", "leases");
  /* file and line */
  assert_config_error ("<modecfg>\n<gateway peer=\"clients\" dns=\"x\"/></modecfg>", "gw:");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/modecfg/attrs/unity-split", test_unity_split);
  g_test_add_func ("/modecfg/attrs/roundtrip", test_attrs_roundtrip);
  g_test_add_func ("/modecfg/attrs/request", test_attrs_request);
  g_test_add_func ("/modecfg/attrs/malformed", test_attrs_malformed);
  g_test_add_func ("/modecfg/config-errors", test_config_errors);
  g_test_add_func ("/modecfg/pull", test_pull);
  g_test_add_func ("/modecfg/quick-mode-after-config", test_quick_mode_after_config);
  g_test_add_func ("/modecfg/push", test_push);
  g_test_add_func ("/modecfg/after-xauth", test_after_xauth);
  g_test_add_func ("/modecfg/pool-exhausted", test_pool_exhausted);
  g_test_add_func ("/modecfg/same-user-same-address", test_same_user_same_address);
  g_test_add_func ("/modecfg/lease-released", test_lease_released);
  g_test_add_func ("/modecfg/dual-stack", test_dual_stack);
  g_test_add_data_func ("/modecfg/rekey-keeps-address", GINT_TO_POINTER (FALSE), test_rekey_keeps_address);
  /* XAuth: the new SA joins the client's only once authenticated */
  g_test_add_data_func ("/modecfg/rekey-keeps-address-xauth", GINT_TO_POINTER (TRUE), test_rekey_keeps_address);
  g_test_add_func ("/modecfg/three-clients", test_three_clients);
  g_test_add_func ("/modecfg/long-identities", test_long_identities);
  g_test_add_func ("/modecfg/pool-removed-by-reload", test_pool_removed_by_reload);
  g_test_add_func ("/modecfg/unusable-address", test_unusable_address);
  g_test_add_func ("/modecfg/request-for-address-ignored", test_request_for_address_ignored);
  g_test_add_func ("/modecfg/gateway-silent", test_gateway_silent);
  g_test_add_func ("/modecfg/gateway-not-configured", test_gateway_not_configured);
  g_test_add_func ("/modecfg/unknown-attribute", test_unknown_attribute);
  return g_test_run ();
}
