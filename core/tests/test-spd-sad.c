/* SPD (ordered, first match) and SAD (hash by direction and SPI). */
#include <gio/gio.h>
#include <glib.h>
#include <string.h>

#include <modike/config.h>
#include <modike/protocol.h>
#include <modike/sad.h>
#include <modike/spd.h>

#include "spd-private.h"

static ModikeAddr
addr (const char *text)
{
  ModikeAddr a;
  g_autoptr (GError) error = NULL;
  g_assert_true (modike_addr_parse (text, 0, &a, &error));
  g_assert_no_error (error);
  return a;
}

static ModikeAddrRange
prefix_range (const char *text)
{
  ModikePrefix p;
  ModikeAddrRange r;
  g_autoptr (GError) error = NULL;
  g_assert_true (modike_prefix_parse (text, &p, &error));
  g_assert_no_error (error);
  g_assert_true (modike_addr_range_from_prefix (&p, &r));
  return r;
}

static ModikeAddrRange
range (const char *from, const char *to)
{
  return (ModikeAddrRange) { .from = addr (from), .to = addr (to) };
}

static ModikeSelector
sel (const char *local, const char *remote, guint8 proto, guint16 lport, guint16 rport)
{
  return (ModikeSelector) {
    .local = addr (local), .remote = addr (remote), .proto = proto, .local_port = lport, .remote_port = rport,
  };
}

static ModikeSpdEntry *
entry (const char *name, const char *local, const char *remote, ModikeSpdAction action)
{
  ModikeSpdEntry *e = modike_spd_entry_new ();
  e->name = g_strdup (name);
  if (local != NULL)
    e->local = prefix_range (local);
  if (remote != NULL)
    e->remote = prefix_range (remote);
  e->action = action;
  return e;
}

static const char *
lookup_name (const ModikeSpd *spd, ModikeSelector s)
{
  const ModikeSpdEntry *e = modike_spd_lookup (spd, &s);
  return e != NULL ? e->name : NULL;
}

/* ---- Address ranges ---- */

static void
test_range_from_prefix (void)
{
  ModikeAddrRange r = prefix_range ("198.51.100.0/24");
  g_assert_true (modike_addr_range_contains (&r, &(ModikeAddr) { 0 }) == FALSE);
  ModikeAddr a = addr ("198.51.100.0"), b = addr ("198.51.100.255"), c = addr ("198.51.101.0"),
             d = addr ("198.51.99.255");
  g_assert_true (modike_addr_range_contains (&r, &a));
  g_assert_true (modike_addr_range_contains (&r, &b));
  g_assert_false (modike_addr_range_contains (&r, &c));
  g_assert_false (modike_addr_range_contains (&r, &d));
  ModikeAddr to = addr ("198.51.100.255");
  g_assert_cmpmem (r.to.addr, 4, to.addr, 4);

  /* Odd lengths cut inside a byte. */
  r = prefix_range ("10.0.0.64/27");
  ModikeAddr lo = addr ("10.0.0.64"), hi = addr ("10.0.0.95"), out = addr ("10.0.0.96");
  g_assert_cmpmem (r.from.addr, 4, lo.addr, 4);
  g_assert_cmpmem (r.to.addr, 4, hi.addr, 4);
  g_assert_false (modike_addr_range_contains (&r, &out));

  r = prefix_range ("0.0.0.0/0");
  ModikeAddr all = addr ("255.255.255.255"), v6 = addr ("::1");
  g_assert_true (modike_addr_range_contains (&r, &all));
  /* Another family never matches. */
  g_assert_false (modike_addr_range_contains (&r, &v6));

  r = prefix_range ("2001:db8:a::/47");
  ModikeAddr v6lo = addr ("2001:db8:a::"), v6hi = addr ("2001:db8:b:ffff:ffff:ffff:ffff:ffff"),
             v6out = addr ("2001:db8:c::"), v4 = addr ("32.1.13.184");
  g_assert_cmpmem (r.from.addr, 16, v6lo.addr, 16);
  g_assert_cmpmem (r.to.addr, 16, v6hi.addr, 16);
  g_assert_false (modike_addr_range_contains (&r, &v6out));
  /* 32.1.13.184 is 2001:0db8 as bytes: the family must decide, not bytes. */
  g_assert_false (modike_addr_range_contains (&r, &v4));

  r = prefix_range ("2001:db8::1/128");
  ModikeAddr one = addr ("2001:db8::1"), two = addr ("2001:db8::2");
  g_assert_true (modike_addr_range_contains (&r, &one));
  g_assert_false (modike_addr_range_contains (&r, &two));

  ModikePrefix bad = { .net = addr ("10.0.0.0"), .plen = 33 };
  g_assert_false (modike_addr_range_from_prefix (&bad, &r));
  bad = (ModikePrefix) { .plen = 0 };
  g_assert_false (modike_addr_range_from_prefix (&bad, &r));

  /* Family 0 is "any address of either family". */
  ModikeAddrRange any = { 0 };
  g_assert_true (modike_addr_range_contains (&any, &one));
  g_assert_true (modike_addr_range_contains (&any, &a));

  ModikeAddrRange rr = range ("10.1.2.3", "10.1.3.2");
  ModikeAddr in = addr ("10.1.2.255"), below = addr ("10.1.2.2"), above = addr ("10.1.3.3");
  g_assert_true (modike_addr_range_contains (&rr, &in));
  g_assert_false (modike_addr_range_contains (&rr, &below));
  g_assert_false (modike_addr_range_contains (&rr, &above));
}

/* ---- SPD ---- */

static void
test_spd_entry_defaults (void)
{
  g_autoptr (ModikeSpdEntry) e = modike_spd_entry_new ();
  g_assert_cmpint (e->action, ==, MODIKE_SPD_BYPASS);
  g_assert_cmpint (e->mode, ==, MODIKE_MODE_TUNNEL);
  g_assert_cmpint (e->local.from.family, ==, 0);
  g_assert_cmpint (e->remote.from.family, ==, 0);
  g_assert_cmpuint (e->local_port.from, ==, 0);
  g_assert_cmpuint (e->local_port.to, ==, 65535);
  g_assert_cmpuint (e->remote_port.to, ==, 65535);
  g_assert_cmpuint (e->proto, ==, 0);
  g_assert_nonnull (e->proposals);
  g_assert_cmpuint (e->proposals->len, ==, 0);

  /* any/any matches both families. */
  g_autoptr (ModikeSpd) spd = modike_spd_new ();
  modike_spd_add (spd, g_steal_pointer (&e));
  g_assert_nonnull (modike_spd_lookup (spd, &(ModikeSelector) { .local = addr ("10.0.0.1"), .remote = addr ("10.0.0.2") }));
  g_assert_nonnull (modike_spd_lookup (spd, &(ModikeSelector) { .local = addr ("::1"), .remote = addr ("::2") }));
}

static void
test_spd_entry_dup (void)
{
  g_autoptr (ModikeSpdEntry) e = entry ("net", "10.0.0.0/8", "192.0.2.0/24", MODIKE_SPD_PROTECT);
  e->peer = g_strdup ("gw");
  e->pfs_group = 14;
  ModikeEspProposal p = { MODIKE_ESP_AES_CBC, 128, MODIKE_AUTH_ALG_HMAC_SHA2_256 };
  g_array_append_val (e->proposals, p);

  g_autoptr (ModikeSpdEntry) d = modike_spd_entry_dup (e);
  g_assert_true (d->name != e->name && d->peer != e->peer && d->proposals != e->proposals);
  g_assert_cmpstr (d->name, ==, "net");
  g_assert_cmpstr (d->peer, ==, "gw");
  g_assert_cmpuint (d->pfs_group, ==, 14);
  g_assert_cmpmem (&d->local, sizeof d->local, &e->local, sizeof e->local);
  g_assert_cmpuint (d->proposals->len, ==, 1);
  g_assert_cmpmem (d->proposals->data, sizeof p, &p, sizeof p);

  /* Changing the copy leaves the original alone. */
  g_array_index (d->proposals, ModikeEspProposal, 0).key_bits = 256;
  g_array_append_val (d->proposals, p);
  g_assert_cmpuint (e->proposals->len, ==, 1);
  g_assert_cmpuint (g_array_index (e->proposals, ModikeEspProposal, 0).key_bits, ==, 128);
}

static void
test_spd_first_match (void)
{
  g_autoptr (ModikeSpd) spd = modike_spd_new ();
  guint32 broad = modike_spd_add (spd, entry ("broad", "10.0.0.0/8", "0.0.0.0/0", MODIKE_SPD_BYPASS));
  guint32 narrow = modike_spd_add (spd, entry ("narrow", "10.1.0.0/16", "192.0.2.0/24", MODIKE_SPD_PROTECT));
  g_assert_cmpuint (broad, !=, 0);
  g_assert_cmpuint (narrow, !=, 0);
  g_assert_cmpuint (broad, !=, narrow);

  /* Same priority: insertion order, so the broad one shadows the narrow one. */
  g_assert_cmpstr (lookup_name (spd, sel ("10.1.0.1", "192.0.2.1", 6, 1000, 80)), ==, "broad");

  /* A lower priority value goes first, even when added later. */
  ModikeSpdEntry *first = entry ("first", "10.1.0.0/16", "192.0.2.0/24", MODIKE_SPD_DISCARD);
  first->priority = 0;
  ModikeSpdEntry *late = entry ("late", NULL, NULL, MODIKE_SPD_DISCARD);
  late->priority = 10;
  /* Re-add the two existing ones at priority 5 to show all three orders. */
  modike_spd_clear (spd);
  ModikeSpdEntry *b = entry ("broad", "10.0.0.0/8", "0.0.0.0/0", MODIKE_SPD_BYPASS);
  b->priority = 5;
  ModikeSpdEntry *n = entry ("narrow", "10.1.0.0/16", "192.0.2.0/24", MODIKE_SPD_PROTECT);
  n->priority = 5;
  modike_spd_add (spd, late);
  modike_spd_add (spd, b);
  modike_spd_add (spd, n);
  guint32 first_id = modike_spd_add (spd, first);

  g_autoptr (GPtrArray) order = modike_spd_entries (spd);
  g_assert_cmpuint (order->len, ==, 4);
  g_assert_cmpstr (((ModikeSpdEntry *) order->pdata[0])->name, ==, "first");
  g_assert_cmpstr (((ModikeSpdEntry *) order->pdata[1])->name, ==, "broad");
  g_assert_cmpstr (((ModikeSpdEntry *) order->pdata[2])->name, ==, "narrow");
  g_assert_cmpstr (((ModikeSpdEntry *) order->pdata[3])->name, ==, "late");

  g_assert_cmpstr (lookup_name (spd, sel ("10.1.0.1", "192.0.2.1", 6, 1000, 80)), ==, "first");
  g_assert_cmpstr (lookup_name (spd, sel ("10.2.0.1", "192.0.2.1", 6, 1000, 80)), ==, "broad");
  g_assert_cmpstr (lookup_name (spd, sel ("172.16.0.1", "192.0.2.1", 6, 1000, 80)), ==, "late");

  /* Remove: the next match takes over; ids stay unique. */
  g_assert_true (modike_spd_remove (spd, first_id));
  g_assert_false (modike_spd_remove (spd, first_id));
  g_assert_null (modike_spd_get (spd, first_id));
  g_assert_cmpstr (lookup_name (spd, sel ("10.1.0.1", "192.0.2.1", 6, 1000, 80)), ==, "broad");
  const ModikeSpdEntry *lb = modike_spd_lookup (spd, &(ModikeSelector) { .local = addr ("10.2.0.1"), .remote = addr ("192.0.2.1") });
  g_assert_true (modike_spd_get (spd, lb->id) == lb);
  g_assert_true (modike_spd_remove (spd, lb->id));
  g_assert_cmpstr (lookup_name (spd, sel ("10.1.0.1", "192.0.2.1", 6, 1000, 80)), ==, "narrow");
  g_assert_cmpstr (lookup_name (spd, sel ("10.2.0.1", "192.0.2.1", 6, 1000, 80)), ==, "late");

  modike_spd_clear (spd);
  g_autoptr (GPtrArray) none = modike_spd_entries (spd);
  g_assert_cmpuint (none->len, ==, 0);
  g_assert_null (modike_spd_lookup (spd, &(ModikeSelector) { .local = addr ("10.1.0.1"), .remote = addr ("192.0.2.1") }));
}

static void
test_spd_families (void)
{
  g_autoptr (ModikeSpd) spd = modike_spd_new ();
  modike_spd_add (spd, entry ("v4", "0.0.0.0/0", "0.0.0.0/0", MODIKE_SPD_PROTECT));
  modike_spd_add (spd, entry ("v6", "2001:db8::/32", "::/0", MODIKE_SPD_BYPASS));

  g_assert_cmpstr (lookup_name (spd, sel ("10.0.0.1", "10.0.0.2", 0, 0, 0)), ==, "v4");
  g_assert_cmpstr (lookup_name (spd, sel ("2001:db8::1", "2001:db8:1::1", 0, 0, 0)), ==, "v6");
  /* Outside the v6 prefix and no v4 entry applies: nothing. */
  g_assert_null (lookup_name (spd, sel ("2001:db9::1", "::1", 0, 0, 0)));
  /* v4-mapped IPv6 is IPv6: the v4 entry does not match it. */
  g_assert_null (lookup_name (spd, sel ("::ffff:10.0.0.1", "::ffff:10.0.0.2", 0, 0, 0)));
}

static void
test_spd_protocol_ports (void)
{
  g_autoptr (ModikeSpd) spd = modike_spd_new ();
  ModikeSpdEntry *dns = entry ("dns", NULL, "198.51.100.53/32", MODIKE_SPD_BYPASS);
  dns->proto = 17;
  dns->remote_port = (ModikePortRange) { 53, 53 };
  modike_spd_add (spd, dns);
  ModikeSpdEntry *web = entry ("web", "192.0.2.0/24", NULL, MODIKE_SPD_PROTECT);
  web->proto = 6;
  web->local_port = (ModikePortRange) { 1024, 65535 };
  web->remote_port = (ModikePortRange) { 443, 443 };
  modike_spd_add (spd, web);
  /* ICMP echo request only (type 8, any code), ICMP type<<8|code. */
  ModikeSpdEntry *echo = entry ("echo", NULL, NULL, MODIKE_SPD_BYPASS);
  echo->proto = 1;
  echo->local_port = (ModikePortRange) { 8 << 8, 8 << 8 | 255 };
  modike_spd_add (spd, echo);
  modike_spd_add (spd, entry ("rest", NULL, NULL, MODIKE_SPD_DISCARD));

  g_assert_cmpstr (lookup_name (spd, sel ("10.0.0.1", "198.51.100.53", 17, 40000, 53)), ==, "dns");
  /* Wrong protocol, wrong port, wrong address. */
  g_assert_cmpstr (lookup_name (spd, sel ("10.0.0.1", "198.51.100.53", 6, 40000, 53)), ==, "rest");
  g_assert_cmpstr (lookup_name (spd, sel ("10.0.0.1", "198.51.100.53", 17, 40000, 54)), ==, "rest");
  g_assert_cmpstr (lookup_name (spd, sel ("10.0.0.1", "198.51.100.54", 17, 40000, 53)), ==, "rest");

  /* Port range edges. */
  g_assert_cmpstr (lookup_name (spd, sel ("192.0.2.9", "203.0.113.1", 6, 1024, 443)), ==, "web");
  g_assert_cmpstr (lookup_name (spd, sel ("192.0.2.9", "203.0.113.1", 6, 65535, 443)), ==, "web");
  g_assert_cmpstr (lookup_name (spd, sel ("192.0.2.9", "203.0.113.1", 6, 1023, 443)), ==, "rest");
  g_assert_cmpstr (lookup_name (spd, sel ("192.0.2.9", "203.0.113.1", 6, 2000, 444)), ==, "rest");

  g_assert_cmpstr (lookup_name (spd, sel ("10.0.0.1", "10.0.0.2", 1, 8 << 8 | 0, 0)), ==, "echo");
  g_assert_cmpstr (lookup_name (spd, sel ("10.0.0.1", "10.0.0.2", 1, 8 << 8 | 7, 0)), ==, "echo");
  g_assert_cmpstr (lookup_name (spd, sel ("10.0.0.1", "10.0.0.2", 1, 0 << 8 | 0, 0)), ==, "rest");
  g_assert_cmpstr (lookup_name (spd, sel ("10.0.0.1", "10.0.0.2", 1, 9 << 8 | 0, 0)), ==, "rest");
  /* The same type/code value under another protocol is not ICMP. */
  g_assert_cmpstr (lookup_name (spd, sel ("10.0.0.1", "10.0.0.2", 58, 8 << 8, 0)), ==, "rest");

  const ModikeSpdEntry *e = modike_spd_lookup (spd, &(ModikeSelector) { .local = addr ("10.0.0.1"), .remote = addr ("10.0.0.2"), .proto = 50 });
  g_assert_nonnull (e);
  g_assert_cmpint (e->action, ==, MODIKE_SPD_DISCARD);
}

static void
test_spd_actions (void)
{
  g_autoptr (ModikeSpd) spd = modike_spd_new ();
  modike_spd_add (spd, entry ("protect", "10.0.0.0/24", "10.1.0.0/24", MODIKE_SPD_PROTECT));
  modike_spd_add (spd, entry ("bypass", "10.0.0.0/24", "10.2.0.0/24", MODIKE_SPD_BYPASS));
  modike_spd_add (spd, entry ("discard", "10.0.0.0/24", NULL, MODIKE_SPD_DISCARD));

  ModikeSelector s = sel ("10.0.0.1", "10.1.0.1", 0, 0, 0);
  g_assert_cmpint (modike_spd_lookup (spd, &s)->action, ==, MODIKE_SPD_PROTECT);
  s = sel ("10.0.0.1", "10.2.0.1", 0, 0, 0);
  g_assert_cmpint (modike_spd_lookup (spd, &s)->action, ==, MODIKE_SPD_BYPASS);
  s = sel ("10.0.0.1", "10.3.0.1", 0, 0, 0);
  g_assert_cmpint (modike_spd_lookup (spd, &s)->action, ==, MODIKE_SPD_DISCARD);
  /* Nothing matches: NULL (the caller discards). */
  s = sel ("10.9.0.1", "10.1.0.1", 0, 0, 0);
  g_assert_null (modike_spd_lookup (spd, &s));
}

/* Policies from a config file, in file order, behave as written. */
static void
test_spd_from_config (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *path = g_test_build_filename (G_TEST_DIST, "..", "docs", "examples", "gateway.xml", NULL);
  g_autoptr (ModikeConfig) cfg = modike_config_load (path, &error);
  g_assert_no_error (error);
  g_autoptr (ModikeSpd) spd = modike_spd_new ();
  for (guint k = 0; k < cfg->policies->len; k++)
    modike_spd_add (spd, modike_spd_entry_dup (cfg->policies->pdata[k]));

  g_assert_cmpstr (lookup_name (spd, sel ("198.51.100.7", "10.99.0.5", 6, 22, 50000)), ==, "branch-net");
  g_assert_cmpstr (lookup_name (spd, sel ("198.51.100.53", "10.99.0.5", 17, 53, 40000)), ==, "branch-net");
  g_assert_cmpstr (lookup_name (spd, sel ("192.0.2.1", "10.99.0.5", 1, 8 << 8, 0)), ==, "ping");
  g_assert_cmpstr (lookup_name (spd, sel ("192.0.2.1", "10.99.0.5", 1, 13 << 8, 0)), ==, "no-leaks");
  g_assert_cmpstr (lookup_name (spd, sel ("192.0.2.1", "10.99.0.5", 6, 22, 50000)), ==, "no-leaks");
  g_assert_cmpstr (lookup_name (spd, sel ("198.51.100.53", "203.0.113.9", 17, 53, 40000)), ==, "dns");
  g_assert_null (lookup_name (spd, sel ("192.0.2.1", "203.0.113.9", 6, 22, 50000)));
  /* The SPD holds copies: the config can go. */
  g_clear_pointer (&cfg, modike_config_free);
  g_assert_cmpstr (lookup_name (spd, sel ("198.51.100.7", "10.99.0.5", 6, 22, 50000)), ==, "branch-net");
}

/* ---- Indexes against a brute-force reference ---- */

static ModikeAddr
pool_addr (GRand *r, int family)
{
  ModikeAddr a = { .family = family };
  /* Ports vary: selectors compare addresses only. */
  static const guint16 ports[] = { 0, 500, 4500 };

  a.port = ports[g_rand_int_range (r, 0, 3)];
  if (family == AF_INET)
    {
      a.addr[0] = 10;
      a.addr[3] = (guint8) g_rand_int_range (r, 0, 18); /* 16, 17: no host entry */
    }
  else
    {
      a.addr[0] = 0x20;
      a.addr[1] = 0x01;
      a.addr[15] = (guint8) g_rand_int_range (r, 0, 10);
    }
  return a;
}

/* A random remote selector: one address, a range in 10.0.0.0/27 or in
 * 2001::/120, or any. */
static ModikeAddrRange
random_range (GRand *r)
{
  int family = g_rand_int_range (r, 0, 5) == 0 ? AF_INET6 : AF_INET;
  ModikeAddrRange out = { .from = pool_addr (r, family) };
  guint kind = g_rand_int_range (r, 0, 10);

  out.to = out.from;
  if (kind < 5)
    out.to.port = (guint16) g_rand_int_range (r, 0, 2); /* a host, ports differing */
  else if (kind < 9)
    {
      ModikeAddr b = pool_addr (r, family);
      gsize len = family == AF_INET ? 4 : 16;

      if (memcmp (b.addr, out.from.addr, len) < 0)
        out.to = out.from, out.from = b;
      else
        out.to = b;
    }
  else
    memset (&out, 0, sizeof out);
  return out;
}

static ModikeSpdEntry *
random_entry (GRand *r)
{
  ModikeSpdEntry *e = modike_spd_entry_new ();

  e->priority = 10 * g_rand_int_range (r, 0, 3);
  e->remote = random_range (r);
  if (g_rand_boolean (r))
    e->local = prefix_range (g_rand_boolean (r) ? "192.168.0.0/31" : "192.168.0.2/32");
  e->proto = g_rand_int_range (r, 0, 3) == 0 ? 17 : 0;
  if (g_rand_int_range (r, 0, 4) == 0)
    e->remote_port = (ModikePortRange) { 500, 500 };
  e->action = MODIKE_SPD_PROTECT;
  return e;
}

static ModikeSelector
random_selector (GRand *r)
{
  ModikeSelector s = { .local = addr ("192.168.0.0") };
  static const guint16 ports[] = { 0, 500, 1500 };

  s.local.addr[3] = (guint8) g_rand_int_range (r, 0, 4);
  s.remote = pool_addr (r, g_rand_int_range (r, 0, 5) == 0 ? AF_INET6 : AF_INET);
  s.proto = g_rand_boolean (r) ? 17 : 6;
  s.local_port = ports[g_rand_int_range (r, 0, 3)];
  s.remote_port = ports[g_rand_int_range (r, 0, 3)];
  return s;
}

static gint
ref_cmp (gconstpointer a, gconstpointer b)
{
  const ModikeSpdEntry *x = *(ModikeSpdEntry *const *) a, *y = *(ModikeSpdEntry *const *) b;

  if (x->priority != y->priority)
    return x->priority < y->priority ? -1 : 1;
  return x->seq < y->seq ? -1 : x->seq > y->seq ? 1 : 0;
}

/* The reference: every entry tried in (priority, seq) order. */
static const ModikeSpdEntry *
ref_lookup (GPtrArray *ref, const ModikeSelector *s)
{
  for (guint i = 0; i < ref->len; i++)
    {
      const ModikeSpdEntry *e = ref->pdata[i];

      if (modike_addr_range_contains (&e->local, &s->local) && modike_addr_range_contains (&e->remote, &s->remote) &&
          (e->proto == 0 || e->proto == s->proto) && e->local_port.from <= s->local_port &&
          s->local_port <= e->local_port.to && e->remote_port.from <= s->remote_port &&
          s->remote_port <= e->remote_port.to)
        return e;
    }
  return NULL;
}

static gboolean
ref_covers (const ModikeAddrRange *outer, const ModikeAddrRange *inner)
{
  gsize len = outer->from.family == AF_INET ? 4 : 16;

  if (outer->from.family == 0)
    return TRUE;
  return inner->from.family == outer->from.family && memcmp (outer->from.addr, inner->from.addr, len) <= 0 &&
         memcmp (inner->to.addr, outer->to.addr, len) <= 0;
}

static void
check_against_ref (const ModikeSpd *spd, GPtrArray *ref, GRand *r)
{
  for (guint k = 0; k < 4; k++)
    {
      ModikeSelector s = random_selector (r);
      const ModikeSpdEntry *got = modike_spd_lookup (spd, &s), *want = ref_lookup (ref, &s);

      g_assert_cmpuint (got != NULL ? got->id : 0, ==, want != NULL ? want->id : 0);
    }
  for (guint k = 0; k < 2; k++)
    {
      ModikeAddrRange q = random_range (r);
      g_autoptr (GPtrArray) got = modike_spd_covering (spd, &q);
      guint n = 0;

      for (guint i = 0; i < ref->len; i++)
        {
          const ModikeSpdEntry *e = ref->pdata[i];

          if (!ref_covers (&e->remote, &q))
            continue;
          g_assert_cmpuint (n, <, got->len);
          g_assert_cmpuint (((const ModikeSpdEntry *) got->pdata[n])->id, ==, e->id);
          n++;
        }
      g_assert_cmpuint (n, ==, got->len);
    }
}

static void
test_spd_random (void)
{
  guint32 seed = 4301;
  const char *env = g_getenv ("MODIKE_SPD_SEED");
  g_autoptr (ModikeSpd) spd = modike_spd_new ();
  /* Copies of the entries in (priority, seq) order. */
  g_autoptr (GPtrArray) ref = g_ptr_array_new_with_free_func ((GDestroyNotify) modike_spd_entry_free);
  guint adds = 0, removes = 0, max = 0;

  if (env != NULL)
    seed = (guint32) g_ascii_strtoull (env, NULL, 10);
  g_test_message ("seed %u (MODIKE_SPD_SEED)", seed);
  g_autoptr (GRand) r = g_rand_new_with_seed (seed);

  for (guint op = 0; op < 6000; op++)
    {
      /* Grow in the first half, shrink in the second. */
      gboolean add = g_rand_int_range (r, 0, 100) < (op < 3000 ? 65 : 35);

      if (add || ref->len == 0)
        {
          ModikeSpdEntry *e = random_entry (r);
          guint32 id = modike_spd_add (spd, e);

          g_assert_cmpuint (id, !=, 0);
          g_assert_true (modike_spd_get (spd, id) == e);
          g_ptr_array_add (ref, modike_spd_entry_dup (e));
          g_ptr_array_sort (ref, ref_cmp);
          adds++;
        }
      else if (g_rand_int_range (r, 0, 10) == 0)
        {
          /* An id never handed out. */
          g_assert_false (modike_spd_remove (spd, 1000000 + op));
        }
      else
        {
          guint at = g_rand_int_range (r, 0, ref->len);
          guint32 id = ((ModikeSpdEntry *) ref->pdata[at])->id;

          g_assert_true (modike_spd_remove (spd, id));
          g_assert_null (modike_spd_get (spd, id));
          g_assert_false (modike_spd_remove (spd, id));
          g_ptr_array_remove_index (ref, at);
          removes++;
        }
      max = MAX (max, ref->len);
      check_against_ref (spd, ref, r);
      if (ref->len > 0)
        {
          const ModikeSpdEntry *want = ref->pdata[g_rand_int_range (r, 0, ref->len)];
          const ModikeSpdEntry *got = modike_spd_get (spd, want->id);

          g_assert_nonnull (got);
          g_assert_cmpuint (got->seq, ==, want->seq);
          g_assert_true (memcmp (&got->remote, &want->remote, sizeof want->remote) == 0);
        }
      if (op % 250 == 0 || op == 5999)
        {
          g_autoptr (GPtrArray) all = modike_spd_entries (spd);

          g_assert_cmpuint (all->len, ==, ref->len);
          for (guint i = 0; i < all->len; i++)
            g_assert_cmpuint (((ModikeSpdEntry *) all->pdata[i])->id, ==, ((ModikeSpdEntry *) ref->pdata[i])->id);
        }
    }
  g_test_message ("%u adds, %u removes, up to %u entries", adds, removes, max);
  g_assert_cmpuint (max, >, 300);
}

/* Covering on a hand-made SPD: host entries of the address, ranges that
 * hold the whole range, any; an inverted range is held by nothing. */
static void
test_spd_covering (void)
{
  g_autoptr (ModikeSpd) spd = modike_spd_new ();
  ModikeSpdEntry *any = entry ("any", NULL, NULL, MODIKE_SPD_BYPASS);
  ModikeSpdEntry *net = entry ("net", NULL, "10.0.0.0/24", MODIKE_SPD_PROTECT);
  ModikeSpdEntry *h1 = entry ("h1", NULL, "10.0.0.1/32", MODIKE_SPD_PROTECT);
  ModikeSpdEntry *h1b = entry ("h1b", NULL, "10.0.0.1/32", MODIKE_SPD_PROTECT);
  ModikeSpdEntry *h6 = entry ("h6", NULL, "2001:db8::1/128", MODIKE_SPD_PROTECT);

  h1->priority = net->priority = h6->priority = 10;
  any->priority = 20;
  h1b->priority = 5;
  modike_spd_add (spd, any);
  modike_spd_add (spd, h1);
  modike_spd_add (spd, net);
  modike_spd_add (spd, h1b);
  modike_spd_add (spd, h6);

  ModikeAddrRange one = range ("10.0.0.1", "10.0.0.1");
  one.from.port = 500;
  g_autoptr (GPtrArray) c1 = modike_spd_covering (spd, &one);
  g_assert_cmpuint (c1->len, ==, 4);
  g_assert_cmpstr (((ModikeSpdEntry *) c1->pdata[0])->name, ==, "h1b");
  g_assert_cmpstr (((ModikeSpdEntry *) c1->pdata[1])->name, ==, "h1");
  g_assert_cmpstr (((ModikeSpdEntry *) c1->pdata[2])->name, ==, "net");
  g_assert_cmpstr (((ModikeSpdEntry *) c1->pdata[3])->name, ==, "any");

  ModikeAddrRange sub = range ("10.0.0.0", "10.0.0.3");
  g_autoptr (GPtrArray) c2 = modike_spd_covering (spd, &sub);
  g_assert_cmpuint (c2->len, ==, 2);
  g_assert_cmpstr (((ModikeSpdEntry *) c2->pdata[0])->name, ==, "net");
  g_assert_cmpstr (((ModikeSpdEntry *) c2->pdata[1])->name, ==, "any");

  ModikeAddrRange wide = range ("10.0.0.0", "10.0.1.0");
  g_autoptr (GPtrArray) c3 = modike_spd_covering (spd, &wide);
  g_assert_cmpuint (c3->len, ==, 1);

  ModikeAddrRange six = range ("2001:db8::1", "2001:db8::1");
  g_autoptr (GPtrArray) c4 = modike_spd_covering (spd, &six);
  g_assert_cmpuint (c4->len, ==, 2);
  g_assert_cmpstr (((ModikeSpdEntry *) c4->pdata[0])->name, ==, "h6");

  ModikeAddrRange inverted = range ("10.0.0.2", "10.0.0.0");
  g_autoptr (GPtrArray) c5 = modike_spd_covering (spd, &inverted);
  g_assert_cmpuint (c5->len, ==, 0);

  /* Only an any selector holds "any". */
  ModikeAddrRange all = { 0 };
  g_autoptr (GPtrArray) c6 = modike_spd_covering (spd, &all);
  g_assert_cmpuint (c6->len, ==, 1);
  g_assert_cmpstr (((ModikeSpdEntry *) c6->pdata[0])->name, ==, "any");
}

/* Ids: 0 never, ids in use skipped after the wrap. */
static void
test_spd_id_wrap (void)
{
  g_autoptr (ModikeSpd) spd = modike_spd_new ();
  guint32 a = modike_spd_add (spd, entry ("a", NULL, "10.0.0.1/32", MODIKE_SPD_PROTECT));
  guint32 b = modike_spd_add (spd, entry ("b", NULL, "10.0.0.0/24", MODIKE_SPD_PROTECT));

  g_assert_cmpuint (a, ==, 1);
  g_assert_cmpuint (b, ==, 2);
  spd_set_next_id (spd, G_MAXUINT32 - 1);
  g_assert_cmpuint (modike_spd_add (spd, entry ("c", NULL, "10.0.0.3/32", MODIKE_SPD_PROTECT)), ==, G_MAXUINT32 - 1);
  g_assert_cmpuint (modike_spd_add (spd, entry ("d", NULL, NULL, MODIKE_SPD_PROTECT)), ==, G_MAXUINT32);
  /* Wrapped: 0, 1 and 2 skipped. */
  g_assert_cmpuint (modike_spd_add (spd, entry ("e", NULL, "10.0.0.5/32", MODIKE_SPD_PROTECT)), ==, 3);
  g_assert_true (modike_spd_remove (spd, a));
  spd_set_next_id (spd, G_MAXUINT32);
  /* MAXUINT32 in use, 0 never: the freed 1. */
  g_assert_cmpuint (modike_spd_add (spd, entry ("f", NULL, "10.0.0.1/32", MODIKE_SPD_PROTECT)), ==, 1);
  g_assert_cmpstr (modike_spd_get (spd, 1)->name, ==, "f");
  g_assert_cmpstr (modike_spd_get (spd, G_MAXUINT32)->name, ==, "d");
  g_assert_null (modike_spd_get (spd, 0));
  g_assert_cmpstr (lookup_name (spd, sel ("192.168.0.1", "10.0.0.1", 6, 1, 2)), ==, "b");
  g_assert_cmpstr (lookup_name (spd, sel ("192.168.0.1", "10.0.0.5", 6, 1, 2)), ==, "b");
  g_assert_cmpstr (lookup_name (spd, sel ("192.168.0.1", "10.0.1.5", 6, 1, 2)), ==, "d");
}

/* Clear empties every index; the SPD is usable again after it. */
static void
test_spd_clear_reuse (void)
{
  g_autoptr (ModikeSpd) spd = modike_spd_new ();
  guint32 ids[3];
  ModikeAddrRange one = range ("10.0.0.1", "10.0.0.1");

  for (guint round = 0; round < 2; round++)
    {
      guint32 h = modike_spd_add (spd, entry ("h", NULL, "10.0.0.1/32", MODIKE_SPD_PROTECT));
      guint32 n = modike_spd_add (spd, entry ("n", NULL, "10.0.0.0/24", MODIKE_SPD_PROTECT));
      guint32 h2 = modike_spd_add (spd, entry ("h2", NULL, "10.0.0.1/32", MODIKE_SPD_PROTECT));

      if (round == 1)
        {
          g_assert_cmpuint (h, >, ids[2]); /* ids go on growing */
          g_assert_null (modike_spd_get (spd, ids[0]));
        }
      g_assert_cmpstr (lookup_name (spd, sel ("192.168.0.1", "10.0.0.1", 6, 1, 2)), ==, "h");
      g_autoptr (GPtrArray) c = modike_spd_covering (spd, &one);
      g_assert_cmpuint (c->len, ==, 3);
      g_assert_cmpuint (((ModikeSpdEntry *) c->pdata[0])->id, ==, h);
      g_assert_cmpuint (((ModikeSpdEntry *) c->pdata[1])->id, ==, n);
      g_assert_cmpuint (((ModikeSpdEntry *) c->pdata[2])->id, ==, h2);
      g_assert_true (modike_spd_remove (spd, h));
      g_assert_cmpstr (lookup_name (spd, sel ("192.168.0.1", "10.0.0.1", 6, 1, 2)), ==, "n");
      ids[0] = h, ids[1] = n, ids[2] = h2;
      modike_spd_clear (spd);
      g_autoptr (GPtrArray) none = modike_spd_entries (spd);
      g_autoptr (GPtrArray) none_c = modike_spd_covering (spd, &one);
      g_assert_cmpuint (none->len, ==, 0);
      g_assert_cmpuint (none_c->len, ==, 0);
      g_assert_null (modike_spd_get (spd, n));
      g_assert_null (lookup_name (spd, sel ("192.168.0.1", "10.0.0.1", 6, 1, 2)));
      g_assert_false (modike_spd_remove (spd, h2));
    }
}

static ModikeAddr
client_addr (guint i)
{
  ModikeAddr a = { .family = i % 10 == 9 ? AF_INET6 : AF_INET };

  if (a.family == AF_INET)
    {
      a.addr[0] = 10;
      a.addr[1] = (guint8) (i >> 16);
      a.addr[2] = (guint8) (i >> 8);
      a.addr[3] = (guint8) i;
    }
  else
    {
      a.addr[0] = 0xfd;
      a.addr[13] = (guint8) (i >> 16);
      a.addr[14] = (guint8) (i >> 8);
      a.addr[15] = (guint8) i;
    }
  return a;
}

/* A gateway's SPD: 100,000 clients' host entries and a few others. */
static void
test_spd_100k (void)
{
  const guint n = 100000;
  g_autoptr (ModikeSpd) spd = modike_spd_new ();
  g_autofree guint32 *ids = g_new (guint32, n);
  ModikeSpdEntry *ike = entry ("ike", NULL, NULL, MODIKE_SPD_BYPASS);
  ModikeSpdEntry *rest = entry ("rest", NULL, "10.0.0.0/8", MODIKE_SPD_DISCARD);
  g_autoptr (GTimer) t = g_timer_new ();
  guint32 ike_id, rest_id;

  ike->proto = 17;
  ike->remote_port = (ModikePortRange) { 500, 500 };
  rest->priority = 100;
  rest_id = modike_spd_add (spd, rest);
  ike_id = modike_spd_add (spd, ike);
  for (guint i = 0; i < n; i++)
    {
      ModikeSpdEntry *e = modike_spd_entry_new ();

      e->priority = 50;
      e->remote.from = e->remote.to = client_addr (i);
      e->action = MODIKE_SPD_PROTECT;
      ids[i] = modike_spd_add (spd, e);
    }
  g_test_message ("added %u host entries in %.3f s", n, g_timer_elapsed (t, NULL));

  g_timer_start (t);
  for (guint i = 0; i < n; i++)
    {
      ModikeSelector s = { .local = addr ("192.168.0.1"), .remote = client_addr (i), .proto = 6, .remote_port = 80 };
      const ModikeSpdEntry *e = modike_spd_lookup (spd, &s);

      g_assert_nonnull (e);
      g_assert_cmpuint (e->id, ==, ids[i]);
      s.proto = 17;
      s.remote_port = 500;
      g_assert_cmpuint (modike_spd_lookup (spd, &s)->id, ==, ike_id);
    }
  g_test_message ("%.0f lookups/s at %u entries", 2.0 * n / g_timer_elapsed (t, NULL), n + 2);

  g_timer_start (t);
  for (guint i = 0; i < n; i += 7)
    {
      ModikeAddrRange one = { client_addr (i), client_addr (i) };
      g_autoptr (GPtrArray) c = modike_spd_covering (spd, &one);

      g_assert_cmpuint (c->len, ==, one.from.family == AF_INET ? 3 : 2);
      g_assert_cmpuint (((ModikeSpdEntry *) c->pdata[0])->id, ==, ike_id);
      g_assert_cmpuint (((ModikeSpdEntry *) c->pdata[1])->id, ==, ids[i]);
      g_assert_true (modike_spd_get (spd, ids[i]) == c->pdata[1]);
    }
  g_test_message ("%.0f covering/s at %u entries", (n / 7.0) / g_timer_elapsed (t, NULL), n + 2);

  g_autoptr (GPtrArray) all = modike_spd_entries (spd);
  g_assert_cmpuint (all->len, ==, n + 2);
  g_assert_cmpuint (((ModikeSpdEntry *) all->pdata[0])->id, ==, ike_id);
  g_assert_cmpuint (((ModikeSpdEntry *) all->pdata[n])->id, ==, ids[n - 1]);
  g_assert_cmpuint (((ModikeSpdEntry *) all->pdata[n + 1])->id, ==, rest_id);

  /* Remove the even ones: their traffic falls to "rest" (v4) or nothing (v6). */
  g_timer_start (t);
  for (guint i = 0; i < n; i += 2)
    g_assert_true (modike_spd_remove (spd, ids[i]));
  for (guint i = 0; i < n; i++)
    {
      ModikeSelector s = { .local = addr ("192.168.0.1"), .remote = client_addr (i), .proto = 6 };
      const ModikeSpdEntry *e = modike_spd_lookup (spd, &s);
      guint32 want = i % 2 == 1 ? ids[i] : s.remote.family == AF_INET ? rest_id : 0;

      g_assert_cmpuint (e != NULL ? e->id : 0, ==, want);
    }
  for (guint i = 1; i < n; i += 2)
    g_assert_true (modike_spd_remove (spd, ids[i]));
  g_test_message ("removed %u host entries in %.3f s", n, g_timer_elapsed (t, NULL));
  g_autoptr (GPtrArray) left = modike_spd_entries (spd);
  g_assert_cmpuint (left->len, ==, 2);
}

/* ---- SAD ---- */

static ModikeSadEntry *
sa (ModikeDirection dir, guint32 spi)
{
  ModikeSadEntry *e = modike_sad_entry_new ();
  e->dir = dir;
  e->spi = spi;
  e->esp_transform = MODIKE_ESP_AES_CBC;
  e->key_bits = 128;
  e->auth_alg = MODIKE_AUTH_ALG_HMAC_SHA2_256;
  e->enc_key = modike_secret_new_from ("0123456789abcdef", 16);
  e->auth_key = modike_secret_new_from ("authentication-key-of-32-bytes!!", 32);
  e->peer = g_strdup ("gw");
  return e;
}

static void
test_sad_entry (void)
{
  g_autoptr (ModikeSadEntry) e = modike_sad_entry_new ();
  g_assert_cmpuint (e->protocol, ==, MODIKE_PROTO_ESP);
  g_assert_cmpint (e->mode, ==, MODIKE_MODE_TUNNEL);
  g_assert_true (e->seq_overflow);
  g_assert_cmpuint (e->replay_window, >=, 32);
  g_assert_null (e->enc_key);

  g_autoptr (ModikeSadEntry) a = sa (MODIKE_DIR_OUT, 0x1000);
  a->local_ts = prefix_range ("10.0.0.0/24");
  g_autoptr (ModikeSadEntry) d = modike_sad_entry_dup (a);
  g_assert_true (d->enc_key != a->enc_key && d->auth_key != a->auth_key && d->peer != a->peer);
  g_assert_cmpmem (d->enc_key->data, d->enc_key->len, a->enc_key->data, a->enc_key->len);
  g_assert_cmpmem (d->auth_key->data, d->auth_key->len, a->auth_key->data, a->auth_key->len);
  g_assert_cmpstr (d->peer, ==, "gw");
  g_assert_cmpuint (d->spi, ==, 0x1000);
  g_assert_cmpmem (&d->local_ts, sizeof d->local_ts, &a->local_ts, sizeof a->local_ts);

  /* The copy owns its keys: freeing the original leaves them intact. */
  g_clear_pointer (&a, modike_sad_entry_free);
  g_assert_cmpmem (d->enc_key->data, d->enc_key->len, "0123456789abcdef", 16);

  /* Entries without keys dup and free fine. */
  g_autoptr (ModikeSadEntry) bare = modike_sad_entry_dup (e);
  g_assert_null (bare->enc_key);
  g_assert_null (bare->peer);
}

static void
test_sad_add_lookup_remove (void)
{
  g_autoptr (ModikeSad) sad = modike_sad_new ();
  g_autoptr (GError) error = NULL;

  g_assert_true (modike_sad_add (sad, sa (MODIKE_DIR_IN, 0xc0ffee01), &error));
  g_assert_no_error (error);
  g_assert_true (modike_sad_add (sad, sa (MODIKE_DIR_OUT, 0xc0ffee01), &error)); /* other direction */
  g_assert_true (modike_sad_add (sad, sa (MODIKE_DIR_IN, 0xc0ffee02), &error));
  g_assert_no_error (error);
  g_assert_cmpuint (modike_sad_size (sad), ==, 3);

  /* Duplicate (dir, spi). */
  g_assert_false (modike_sad_add (sad, sa (MODIKE_DIR_IN, 0xc0ffee01), &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS);
  g_assert_nonnull (strstr (error->message, "c0ffee01"));
  g_clear_error (&error);
  g_assert_cmpuint (modike_sad_size (sad), ==, 3);

  /* SPI 0 is reserved; a direction is needed. */
  g_assert_false (modike_sad_add (sad, sa (MODIKE_DIR_IN, 0), &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_false (modike_sad_add (sad, sa (0, 5), &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);

  const ModikeSadEntry *in1 = modike_sad_lookup (sad, MODIKE_DIR_IN, 0xc0ffee01);
  const ModikeSadEntry *out1 = modike_sad_lookup (sad, MODIKE_DIR_OUT, 0xc0ffee01);
  g_assert_nonnull (in1);
  g_assert_nonnull (out1);
  g_assert_true (in1 != out1);
  g_assert_cmpint (in1->dir, ==, MODIKE_DIR_IN);
  g_assert_cmpint (out1->dir, ==, MODIKE_DIR_OUT);
  g_assert_null (modike_sad_lookup (sad, MODIKE_DIR_OUT, 0xc0ffee02));
  g_assert_null (modike_sad_lookup (sad, MODIKE_DIR_IN, 0x12345678));

  g_autoptr (GPtrArray) all = modike_sad_entries (sad);
  g_assert_cmpuint (all->len, ==, 3);
  gboolean seen_in1 = FALSE;
  for (guint k = 0; k < all->len; k++)
    seen_in1 = seen_in1 || all->pdata[k] == in1;
  g_assert_true (seen_in1);

  g_assert_true (modike_sad_remove (sad, MODIKE_DIR_IN, 0xc0ffee01));
  g_assert_false (modike_sad_remove (sad, MODIKE_DIR_IN, 0xc0ffee01));
  g_assert_null (modike_sad_lookup (sad, MODIKE_DIR_IN, 0xc0ffee01));
  g_assert_nonnull (modike_sad_lookup (sad, MODIKE_DIR_OUT, 0xc0ffee01));
  g_assert_cmpuint (modike_sad_size (sad), ==, 2);
  /* Re-adding after removal works. */
  g_assert_true (modike_sad_add (sad, sa (MODIKE_DIR_IN, 0xc0ffee01), &error));
  g_assert_cmpuint (modike_sad_size (sad), ==, 3);

  /* Many entries: every one found again. */
  for (guint32 spi = 0x100; spi < 0x100 + 500; spi++)
    g_assert_true (modike_sad_add (sad, sa (spi % 2 ? MODIKE_DIR_IN : MODIKE_DIR_OUT, spi), NULL));
  for (guint32 spi = 0x100; spi < 0x100 + 500; spi++) {
    const ModikeSadEntry *e = modike_sad_lookup (sad, spi % 2 ? MODIKE_DIR_IN : MODIKE_DIR_OUT, spi);
    g_assert_nonnull (e);
    g_assert_cmpuint (e->spi, ==, spi);
    g_assert_null (modike_sad_lookup (sad, spi % 2 ? MODIKE_DIR_OUT : MODIKE_DIR_IN, spi));
  }
  g_assert_cmpuint (modike_sad_size (sad), ==, 503);
}

static ModikeSadEntry *
sa_reqid (ModikeDirection dir, guint32 spi, guint32 reqid, const char *peer)
{
  ModikeSadEntry *e = sa (dir, spi);
  e->reqid = reqid;
  g_free (e->peer);
  e->peer = g_strdup (peer);
  return e;
}

/* Two peers may pick the same SPI for our outbound SAs: (spi, reqid)
 * names an outbound SA, the SPI alone an inbound one. */
static void
test_sad_outbound_collision (void)
{
  g_autoptr (ModikeSad) sad = modike_sad_new ();
  g_autoptr (GError) error = NULL;

  g_assert_true (modike_sad_add (sad, sa_reqid (MODIKE_DIR_OUT, 0xabc, 1, "alice"), &error));
  g_assert_no_error (error);
  g_assert_true (modike_sad_add (sad, sa_reqid (MODIKE_DIR_OUT, 0xabc, 2, "bob"), &error));
  g_assert_no_error (error);
  g_assert_cmpuint (modike_sad_size (sad), ==, 2);

  /* The same outbound name twice is refused. */
  g_assert_false (modike_sad_add (sad, sa_reqid (MODIKE_DIR_OUT, 0xabc, 2, "carol"), &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS);
  g_clear_error (&error);

  /* Inbound SPIs stay unique whatever the reqid. */
  g_assert_true (modike_sad_add (sad, sa_reqid (MODIKE_DIR_IN, 0xabc, 1, "alice"), &error));
  g_assert_false (modike_sad_add (sad, sa_reqid (MODIKE_DIR_IN, 0xabc, 7, "dave"), &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS);
  g_clear_error (&error);
  g_assert_cmpuint (modike_sad_size (sad), ==, 3);
  g_assert_cmpstr (modike_sad_lookup_sa (sad, MODIKE_DIR_IN, 0xabc, 99)->peer, ==, "alice");

  g_assert_cmpstr (modike_sad_lookup_sa (sad, MODIKE_DIR_OUT, 0xabc, 1)->peer, ==, "alice");
  g_assert_cmpstr (modike_sad_lookup_sa (sad, MODIKE_DIR_OUT, 0xabc, 2)->peer, ==, "bob");
  g_assert_null (modike_sad_lookup_sa (sad, MODIKE_DIR_OUT, 0xabc, 3));
  g_assert_null (modike_sad_lookup_sa (sad, MODIKE_DIR_OUT, 0xabd, 1));
  /* The legacy lookup finds one of them. */
  const ModikeSadEntry *any = modike_sad_lookup (sad, MODIKE_DIR_OUT, 0xabc);
  g_assert_nonnull (any);
  g_assert_cmpuint (any->spi, ==, 0xabc);
  g_assert_cmpint (any->dir, ==, MODIKE_DIR_OUT);

  /* Removing one leaves the other. */
  g_assert_true (modike_sad_remove_sa (sad, MODIKE_DIR_OUT, 0xabc, 1));
  g_assert_false (modike_sad_remove_sa (sad, MODIKE_DIR_OUT, 0xabc, 1));
  g_assert_null (modike_sad_lookup_sa (sad, MODIKE_DIR_OUT, 0xabc, 1));
  g_assert_cmpstr (modike_sad_lookup_sa (sad, MODIKE_DIR_OUT, 0xabc, 2)->peer, ==, "bob");
  g_assert_cmpstr (modike_sad_lookup (sad, MODIKE_DIR_OUT, 0xabc)->peer, ==, "bob");
  g_assert_nonnull (modike_sad_lookup (sad, MODIKE_DIR_IN, 0xabc));
  g_assert_true (modike_sad_remove_sa (sad, MODIKE_DIR_IN, 0xabc, 42)); /* reqid ignored */
  g_assert_true (modike_sad_remove (sad, MODIKE_DIR_OUT, 0xabc));
  g_assert_cmpuint (modike_sad_size (sad), ==, 0);
}

typedef struct {
  guint added, removed;
  guint32 last_spi;
  ModikeSadEvent last_ev;
  gboolean key_seen;   /* the removed entry still had its key */
  ModikeSad *sad;
  guint unwatch_id;    /* unwatch this from the callback */
} WatchLog;

static void
watch_cb (ModikeSadEvent ev, const ModikeSadEntry *e, gpointer user)
{
  WatchLog *log = user;
  if (ev == MODIKE_SAD_ADDED)
    log->added++;
  else
    log->removed++;
  log->last_ev = ev;
  log->last_spi = e->spi;
  log->key_seen = e->enc_key != NULL && e->enc_key->len == 16 && memcmp (e->enc_key->data, "0123456789abcdef", 16) == 0;
  if (log->unwatch_id != 0) {
    modike_sad_unwatch (log->sad, log->unwatch_id);
    log->unwatch_id = 0;
  }
}

static void
test_sad_watchers (void)
{
  g_autoptr (ModikeSad) sad = modike_sad_new ();
  WatchLog a = { 0 }, b = { 0 };
  guint ida = modike_sad_watch (sad, watch_cb, &a);
  guint idb = modike_sad_watch (sad, watch_cb, &b);
  g_assert_cmpuint (ida, !=, 0);
  g_assert_cmpuint (ida, !=, idb);

  g_assert_true (modike_sad_add (sad, sa (MODIKE_DIR_OUT, 0x42), NULL));
  g_assert_cmpuint (a.added, ==, 1);
  g_assert_cmpuint (b.added, ==, 1);
  g_assert_cmpuint (a.last_spi, ==, 0x42);
  g_assert_cmpint (a.last_ev, ==, MODIKE_SAD_ADDED);

  /* A refused add is not reported. */
  g_assert_false (modike_sad_add (sad, sa (MODIKE_DIR_OUT, 0x42), NULL));
  g_assert_cmpuint (a.added, ==, 1);

  /* Removal is reported while the entry (with its keys) is still there. */
  g_assert_true (modike_sad_remove (sad, MODIKE_DIR_OUT, 0x42));
  g_assert_cmpuint (a.removed, ==, 1);
  g_assert_cmpint (a.last_ev, ==, MODIKE_SAD_REMOVED);
  g_assert_true (a.key_seen);
  g_assert_false (modike_sad_remove (sad, MODIKE_DIR_OUT, 0x42));
  g_assert_cmpuint (a.removed, ==, 1);

  modike_sad_unwatch (sad, idb);
  g_assert_true (modike_sad_add (sad, sa (MODIKE_DIR_IN, 0x43), NULL));
  g_assert_cmpuint (a.added, ==, 2);
  g_assert_cmpuint (b.added, ==, 1);

  /* A watcher removing another during an event: the other is not called
   * for it (it was unwatched first) nor afterwards. */
  WatchLog c = { 0 };
  guint idc = modike_sad_watch (sad, watch_cb, &c);
  a.sad = sad;
  a.unwatch_id = idc;
  g_assert_true (modike_sad_add (sad, sa (MODIKE_DIR_IN, 0x44), NULL));
  g_assert_cmpuint (a.added, ==, 3);
  g_assert_cmpuint (c.added, ==, 0);
  g_assert_true (modike_sad_add (sad, sa (MODIKE_DIR_IN, 0x45), NULL));
  g_assert_cmpuint (a.added, ==, 4);
  g_assert_cmpuint (c.added, ==, 0);

  /* A watcher removing itself. */
  a.unwatch_id = ida;
  g_assert_true (modike_sad_add (sad, sa (MODIKE_DIR_IN, 0x46), NULL));
  g_assert_cmpuint (a.added, ==, 5);
  g_assert_true (modike_sad_add (sad, sa (MODIKE_DIR_IN, 0x47), NULL));
  g_assert_cmpuint (a.added, ==, 5);
  /* Unknown ids are ignored. */
  modike_sad_unwatch (sad, 9999);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/spd/range-from-prefix", test_range_from_prefix);
  g_test_add_func ("/spd/entry-defaults", test_spd_entry_defaults);
  g_test_add_func ("/spd/entry-dup", test_spd_entry_dup);
  g_test_add_func ("/spd/first-match", test_spd_first_match);
  g_test_add_func ("/spd/families", test_spd_families);
  g_test_add_func ("/spd/protocol-ports", test_spd_protocol_ports);
  g_test_add_func ("/spd/actions", test_spd_actions);
  g_test_add_func ("/spd/from-config", test_spd_from_config);
  g_test_add_func ("/spd/random", test_spd_random);
  g_test_add_func ("/spd/covering", test_spd_covering);
  g_test_add_func ("/spd/id-wrap", test_spd_id_wrap);
  g_test_add_func ("/spd/clear-reuse", test_spd_clear_reuse);
  g_test_add_func ("/spd/100k", test_spd_100k);
  g_test_add_func ("/sad/entry", test_sad_entry);
  g_test_add_func ("/sad/add-lookup-remove", test_sad_add_lookup_remove);
  g_test_add_func ("/sad/watchers", test_sad_watchers);
  g_test_add_func ("/sad/outbound-collision", test_sad_outbound_collision);
  return g_test_run ();
}
