/* Suite modecfg: address pools over the lease stores. The behaviour tests
 * run once over the memory store and once over an SQLite file; the SQLite
 * tests add what only a file has (restart, schema, corruption, mode). */
#include "pool.h"

#include <glib/gstdio.h>
#include <sqlite3.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
  gboolean sqlite;
  char *dir;
  char *path;
  ModecfgLeaseStore *store;
} Fx;

static void
fx_open (Fx *fx)
{
  g_autoptr (GError) error = NULL;

  fx->store = fx->sqlite ? modecfg_lease_store_sqlite_open (fx->path, &error) : modecfg_lease_store_memory_new ();
  g_assert_no_error (error);
  g_assert_nonnull (fx->store);
}

static void
fx_setup (Fx *fx, gconstpointer kind)
{
  g_autoptr (GError) error = NULL;

  fx->sqlite = g_strcmp0 (kind, "sqlite") == 0;
  fx->dir = g_dir_make_tmp ("modecfg-pool-XXXXXX", &error);
  g_assert_no_error (error);
  fx->path = g_build_filename (fx->dir, "leases.db", NULL);
  fx_open (fx);
}

/* A restart of the gateway: the store closed and opened again. */
static void
fx_restart (Fx *fx)
{
  g_clear_pointer (&fx->store, modecfg_lease_store_free);
  fx_open (fx);
}

static void
fx_teardown (Fx *fx, gconstpointer kind)
{
  const char *suffixes[] = { "", "-wal", "-shm", "-journal" };

  g_clear_pointer (&fx->store, modecfg_lease_store_free);
  for (guint i = 0; i < G_N_ELEMENTS (suffixes); i++)
    {
      g_autofree char *f = g_strconcat (fx->path, suffixes[i], NULL);
      g_remove (f);
    }
  g_assert_cmpint (g_rmdir (fx->dir), ==, 0);
  g_free (fx->path);
  g_free (fx->dir);
}

static ModecfgPool *
pool_new (Fx *fx, const char *name, const char *text)
{
  g_autoptr (GError) error = NULL;
  ModecfgRange r;
  ModecfgPool *pool;

  g_assert_true (modecfg_range_parse (text, &r, &error));
  g_assert_no_error (error);
  pool = modecfg_pool_new (name, &r, fx->store, &error);
  g_assert_no_error (error);
  return pool;
}

static void
set_range (ModecfgPool *pool, const char *text)
{
  g_autoptr (GError) error = NULL;
  ModecfgRange r;

  g_assert_true (modecfg_range_parse (text, &r, &error));
  g_assert_true (modecfg_pool_set_range (pool, &r, &error));
  g_assert_no_error (error);
}

/* The address acquired, as text. */
static char *
acquire (ModecfgPool *pool, const char *identity)
{
  g_autoptr (GError) error = NULL;
  char buf[MODIKE_ADDR_STRLEN];
  ModikeAddr a;

  if (!modecfg_pool_acquire (pool, identity, &a, &error))
    g_error ("acquire '%s': %s", identity, error->message);
  g_assert_cmpint (a.port, ==, 0);
  return g_strdup (modike_addr_format (&a, buf, sizeof buf));
}

static void
release (ModecfgPool *pool, const char *identity, const char *addr)
{
  g_autoptr (GError) error = NULL;
  ModikeAddr a;

  g_assert_true (modike_addr_parse (addr, 0, &a, NULL));
  modecfg_pool_release (pool, identity, &a, &error);
  g_assert_no_error (error);
}

static void
acquire_fails (ModecfgPool *pool, const char *identity, int code, const char *message)
{
  g_autoptr (GError) error = NULL;
  ModikeAddr a;

  g_assert_false (modecfg_pool_acquire (pool, identity, &a, &error));
  g_assert_error (error, MODECFG_POOL_ERROR, code);
  if (message != NULL)
    g_assert_cmpstr (error->message, ==, message);
}

static void
assert_status (ModecfgPool *pool, guint64 size, guint64 online, guint64 offline)
{
  g_autoptr (GError) error = NULL;
  ModecfgPoolStatus s;

  g_assert_true (modecfg_pool_get_status (pool, &s, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (s.size, ==, size);
  g_assert_cmpuint (s.online, ==, online);
  g_assert_cmpuint (s.offline, ==, offline);
}

/* The identity's lease as "ADDR refs", or "" for none. */
static char *
lease_of (ModecfgPool *pool, const char *identity)
{
  g_autoptr (GError) error = NULL;
  ModecfgLease l = { 0 };
  gboolean found;
  char buf[MODIKE_ADDR_STRLEN];
  char *out;

  g_assert_true (modecfg_pool_find_lease (pool, identity, &l, &found, &error));
  g_assert_no_error (error);
  if (!found)
    return g_strdup ("");
  g_assert_cmpstr (l.identity, ==, identity);
  out = g_strdup_printf ("%s %u", modike_addr_format (&l.addr, buf, sizeof buf), l.refs);
  modecfg_lease_clear (&l);
  return out;
}

#define ASSERT_ACQUIRE(pool, id, want)           \
  G_STMT_START                                   \
  {                                              \
    g_autofree char *got_ = acquire (pool, id);  \
    g_assert_cmpstr (got_, ==, want);            \
  }                                              \
  G_STMT_END

#define ASSERT_LEASE(pool, id, want)              \
  G_STMT_START                                    \
  {                                               \
    g_autofree char *got_ = lease_of (pool, id);  \
    g_assert_cmpstr (got_, ==, want);             \
  }                                               \
  G_STMT_END

/* ---- Ranges (no store) ---- */

static void
check_range (const char *text, const char *want, guint64 size)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *s = NULL;
  ModecfgRange r;

  g_assert_true (modecfg_range_parse (text, &r, &error));
  g_assert_no_error (error);
  s = modecfg_range_to_string (&r);
  g_assert_cmpstr (s, ==, want);
  g_assert_cmpuint (modecfg_range_size (&r), ==, size);
}

static void
check_range_bad (const char *text, const char *part)
{
  g_autoptr (GError) error = NULL;
  ModecfgRange r;

  g_assert_false (modecfg_range_parse (text, &r, &error));
  g_assert_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE);
  if (strstr (error->message, part) == NULL)
    g_error ("\"%s\": \"%s\" lacks \"%s\"", text, error->message, part);
}

static void
test_range_parse (void)
{
  check_range ("10.9.0.0/24", "10.9.0.1-10.9.0.254", 254);
  check_range ("10.9.0.0/30", "10.9.0.1-10.9.0.2", 2);
  check_range ("10.9.0.0/31", "10.9.0.0-10.9.0.1", 2);
  check_range ("10.9.0.7/32", "10.9.0.7-10.9.0.7", 1);
  check_range ("10.9.0.7", "10.9.0.7-10.9.0.7", 1);
  check_range ("0.0.0.0/0", "0.0.0.1-255.255.255.254", 0xfffffffe);
  check_range ("10.9.0.10-10.9.0.200", "10.9.0.10-10.9.0.200", 191);
  check_range (" 10.9.0.10 - 10.9.1.9 ", "10.9.0.10-10.9.1.9", 256);
  check_range ("2001:db8:f::100-2001:db8:f::1ff", "2001:db8:f::100-2001:db8:f::1ff", 256);
  check_range ("2001:db8:f::/120", "2001:db8:f::1-2001:db8:f::ff", 255);
  check_range ("2001:db8:f::/127", "2001:db8:f::-2001:db8:f::1", 2);
  check_range ("2001:db8:f::/64", "2001:db8:f::1-2001:db8:f:0:ffff:ffff:ffff:ffff", G_MAXUINT64);
  check_range ("2001:db8::/48", "2001:db8::1-2001:db8:0:ffff:ffff:ffff:ffff:ffff", G_MAXUINT64);
  check_range ("2001:db8::1-2001:db8::1:0", "2001:db8::1-2001:db8::1:0", 0x10000);

  check_range_bad ("", "empty");
  check_range_bad ("10.9.0.1/24", "host bits");
  check_range_bad ("10.9.0.0/33", "prefix length");
  check_range_bad ("10.9.0.200-10.9.0.10", "first address is above the last");
  check_range_bad ("10.9.0.1-2001:db8::1", "one family");
  check_range_bad ("10.9.0.1-", "one family");
  check_range_bad ("pool", "not an IPv4 or IPv6 address");
}

/* The free-address walk over a sorted list of leased addresses, as a
 * store walks its index. */
typedef struct {
  const char *const *leased;
  guint walks;
} FakeLeases;

static gboolean
fake_walk (gpointer data, const ModikeAddr *from, const ModikeAddr *last, ModecfgGap *gap, GError **error)
{
  FakeLeases *f = data;

  f->walks++;
  for (const char *const *t = f->leased; *t; t++)
    {
      ModikeAddr a;
      g_assert_true (modike_addr_parse (*t, 0, &a, NULL));
      if (modecfg_addr_compare (&a, from) < 0)
        continue;
      if (modecfg_addr_compare (&a, last) > 0 || modecfg_gap_feed (gap, &a))
        break;
    }
  return TRUE;
}

/* The first free address at or above hint, then below it; "" for none. */
static char *
find_free (const char *range, const char *hint, const char *const *leased, guint walks)
{
  FakeLeases f = { leased, 0 };
  ModecfgRange r;
  ModikeAddr h, out;
  gboolean found = FALSE;
  char buf[MODIKE_ADDR_STRLEN];

  g_assert_true (modecfg_range_parse (range, &r, NULL));
  g_assert_true (modike_addr_parse (hint, 0, &h, NULL));
  g_assert_true (modecfg_range_find_free (&r, &h, fake_walk, &f, &out, &found, NULL));
  g_assert_cmpuint (f.walks, ==, walks);
  return g_strdup (found ? modike_addr_format (&out, buf, sizeof buf) : "");
}

#define ASSERT_FREE(range, hint, walks, want, ...)                                      \
  G_STMT_START                                                                          \
  {                                                                                     \
    const char *const leased_[] = { __VA_ARGS__, NULL };                                \
    g_autofree char *got_ = find_free (range, hint, leased_, walks);                    \
    g_assert_cmpstr (got_, ==, want);                                                   \
  }                                                                                     \
  G_STMT_END

static void
test_find_free (void)
{
  ASSERT_FREE ("10.9.0.1-10.9.0.5", "10.9.0.1", 1, "10.9.0.2", "10.9.0.1", "10.9.0.3");
  ASSERT_FREE ("10.9.0.1-10.9.0.5", "10.9.0.3", 1, "10.9.0.4", "10.9.0.1", "10.9.0.3");
  /* Full above the hint: wraps to the start. */
  ASSERT_FREE ("10.9.0.1-10.9.0.5", "10.9.0.4", 2, "10.9.0.2", "10.9.0.1", "10.9.0.4", "10.9.0.5");
  ASSERT_FREE ("10.9.0.1-10.9.0.5", "10.9.0.4", 2, "", "10.9.0.1", "10.9.0.2", "10.9.0.3", "10.9.0.4",
               "10.9.0.5");
  /* A hint outside the range starts at its first address. */
  ASSERT_FREE ("10.9.0.1-10.9.0.5", "10.9.1.1", 1, "10.9.0.3", "10.9.0.1", "10.9.0.2");
  /* Leases outside the window are ignored. */
  ASSERT_FREE ("10.9.0.2-10.9.0.3", "10.9.0.2", 1, "10.9.0.3", "10.9.0.1", "10.9.0.2", "10.9.0.4");
  /* The top of the address space: no wrap of the address itself. */
  ASSERT_FREE ("255.255.255.254-255.255.255.255", "255.255.255.254", 1, "255.255.255.255", "255.255.255.254");
  ASSERT_FREE ("255.255.255.254-255.255.255.255", "255.255.255.255", 2, "", "255.255.255.254",
               "255.255.255.255");
  ASSERT_FREE ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fff0/124", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", 1,
               "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe");
  /* Carries across bytes. */
  ASSERT_FREE ("2001:db8::fffe-2001:db8::1:1", "2001:db8::fffe", 1, "2001:db8::1:0", "2001:db8::fffe",
               "2001:db8::ffff");
  ASSERT_FREE ("10.9.0.250-10.9.1.5", "10.9.0.254", 1, "10.9.1.0", "10.9.0.254", "10.9.0.255");
}

static void
test_pool_name (void)
{
  g_autoptr (ModecfgLeaseStore) store = modecfg_lease_store_memory_new ();
  g_autoptr (GError) error = NULL;
  g_autofree char *long_name = g_strnfill (MODECFG_POOL_NAME_MAX + 1, 'p');
  ModecfgRange r;

  g_assert_true (modecfg_range_parse ("10.9.0.0/24", &r, NULL));
  g_assert_null (modecfg_pool_new ("", &r, store, &error));
  g_assert_error (error, MODECFG_POOL_ERROR, MODECFG_POOL_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_null (modecfg_pool_new (long_name, &r, store, &error));
  g_assert_error (error, MODECFG_POOL_ERROR, MODECFG_POOL_ERROR_INVALID);
}

/* ---- Behaviour, over both stores ---- */

static void
test_prefix_v4 (Fx *fx, gconstpointer kind)
{
  g_autoptr (ModecfgPool) pool = pool_new (fx, "rw", "10.9.0.0/29");

  g_assert_cmpint (modecfg_pool_get_family (pool), ==, AF_INET);
  g_assert_cmpstr (modecfg_pool_get_name (pool), ==, "rw");
  assert_status (pool, 6, 0, 0);
  for (guint i = 1; i <= 6; i++)
    {
      g_autofree char *id = g_strdup_printf ("user%u", i);
      g_autofree char *want = g_strdup_printf ("10.9.0.%u", i);
      ASSERT_ACQUIRE (pool, id, want);
    }
  assert_status (pool, 6, 6, 0);
  acquire_fails (pool, "user7", MODECFG_POOL_ERROR_EXHAUSTED, "pool 'rw' is exhausted: all 6 addresses are in use");
}

static void
test_range_v4_exhausted (Fx *fx, gconstpointer kind)
{
  g_autoptr (ModecfgPool) pool = pool_new (fx, "rw", "10.9.0.10-10.9.0.12");

  ASSERT_ACQUIRE (pool, "alice", "10.9.0.10");
  ASSERT_ACQUIRE (pool, "bob", "10.9.0.11");
  ASSERT_ACQUIRE (pool, "carol", "10.9.0.12");
  acquire_fails (pool, "dave", MODECFG_POOL_ERROR_EXHAUSTED, "pool 'rw' is exhausted: all 3 addresses are in use");
  /* Exhaustion changes nothing: the holders keep theirs. */
  ASSERT_LEASE (pool, "dave", "");
  ASSERT_LEASE (pool, "carol", "10.9.0.12 1");
  release (pool, "bob", "10.9.0.11");
  ASSERT_ACQUIRE (pool, "dave", "10.9.0.11");

  {
    g_autoptr (ModecfgPool) one = pool_new (fx, "one", "192.0.2.9");
    ASSERT_ACQUIRE (one, "alice", "192.0.2.9");
    acquire_fails (one, "bob", MODECFG_POOL_ERROR_EXHAUSTED, "pool 'one' is exhausted: its one address is in use");
  }
}

static void
test_v6_range (Fx *fx, gconstpointer kind)
{
  g_autoptr (ModecfgPool) pool = pool_new (fx, "v6", "2001:db8:f::100-2001:db8:f::1ff");
  g_autoptr (GHashTable) seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);

  g_assert_cmpint (modecfg_pool_get_family (pool), ==, AF_INET6);
  for (guint i = 0; i < 256; i++)
    {
      g_autofree char *id = g_strdup_printf ("user%u", i);
      char *a = acquire (pool, id);
      ModikeAddr addr;
      g_assert_true (modike_addr_parse (a, 0, &addr, NULL));
      g_assert_true (modecfg_range_contains (modecfg_pool_get_range (pool), &addr));
      g_assert_true (g_hash_table_add (seen, a));
    }
  g_assert_true (g_hash_table_contains (seen, "2001:db8:f::100"));
  g_assert_true (g_hash_table_contains (seen, "2001:db8:f::1ff"));
  acquire_fails (pool, "late", MODECFG_POOL_ERROR_EXHAUSTED,
                 "pool 'v6' is exhausted: all 256 addresses are in use");
  assert_status (pool, 256, 256, 0);
}

/* A /64 is never walked as a whole: many acquires stay fast and distinct. */
static void
test_v6_large (Fx *fx, gconstpointer kind)
{
  g_autoptr (ModecfgPool) pool = pool_new (fx, "big", "2001:db8:f::/64");
  g_autoptr (GHashTable) seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  ModikePrefix p;
  gint64 start = g_get_monotonic_time ();
  const guint n = 3000;

  g_assert_true (modike_prefix_parse ("2001:db8:f::/64", &p, NULL));
  ASSERT_ACQUIRE (pool, "first", "2001:db8:f::1");   /* ::0 is the subnet-router anycast address */
  for (guint i = 0; i < n; i++)
    {
      g_autofree char *id = g_strdup_printf ("user%u", i);
      char *a = acquire (pool, id);
      ModikeAddr addr;
      g_assert_true (modike_addr_parse (a, 0, &addr, NULL));
      g_assert_true (modike_prefix_contains (&p, &addr));
      g_assert_true (g_hash_table_add (seen, a));
      if (i % 3 == 0)
        release (pool, id, a);
    }
  /* Returning identities keep theirs among the many. */
  ASSERT_ACQUIRE (pool, "user0", "2001:db8:f::2");
  ASSERT_ACQUIRE (pool, "first", "2001:db8:f::1");
  assert_status (pool, G_MAXUINT64, n - n / 3 + 2, n / 3 - 1);
  g_assert_cmpint (g_get_monotonic_time () - start, <, 20 * G_USEC_PER_SEC);
}

static void
test_same_identity_after_release (Fx *fx, gconstpointer kind)
{
  g_autoptr (ModecfgPool) pool = pool_new (fx, "rw", "10.9.0.0/24");

  ASSERT_ACQUIRE (pool, "alice", "10.9.0.1");
  release (pool, "alice", "10.9.0.1");
  ASSERT_LEASE (pool, "alice", "10.9.0.1 0");
  assert_status (pool, 254, 0, 1);
  /* A new identity gets a never-leased address, not alice's. */
  ASSERT_ACQUIRE (pool, "bob", "10.9.0.2");
  ASSERT_ACQUIRE (pool, "alice", "10.9.0.1");
  ASSERT_LEASE (pool, "alice", "10.9.0.1 1");
  assert_status (pool, 254, 2, 0);
}

/* With no address left that was never leased, a new identity takes the
 * lease that went offline longest ago, and its old holder loses it. */
static void
test_oldest_offline_reused (Fx *fx, gconstpointer kind)
{
  g_autoptr (ModecfgPool) pool = pool_new (fx, "rw", "10.9.0.1-10.9.0.4");

  ASSERT_ACQUIRE (pool, "alice", "10.9.0.1");
  ASSERT_ACQUIRE (pool, "bob", "10.9.0.2");
  ASSERT_ACQUIRE (pool, "carol", "10.9.0.3");
  release (pool, "bob", "10.9.0.2");
  release (pool, "alice", "10.9.0.1");
  ASSERT_ACQUIRE (pool, "dave", "10.9.0.4");      /* never leased first */
  ASSERT_ACQUIRE (pool, "erin", "10.9.0.2");      /* bob went offline first */
  ASSERT_LEASE (pool, "bob", "");
  ASSERT_LEASE (pool, "alice", "10.9.0.1 0");
  ASSERT_ACQUIRE (pool, "frank", "10.9.0.1");
  acquire_fails (pool, "bob", MODECFG_POOL_ERROR_EXHAUSTED, "pool 'rw' is exhausted: all 4 addresses are in use");
  release (pool, "carol", "10.9.0.3");
  ASSERT_ACQUIRE (pool, "bob", "10.9.0.3");
  assert_status (pool, 4, 4, 0);
}

/* Two sessions of one identity share its address; it goes offline when
 * the last one is released. */
static void
test_concurrent_refcount (Fx *fx, gconstpointer kind)
{
  g_autoptr (ModecfgPool) pool = pool_new (fx, "rw", "10.9.0.5/32");
  g_autoptr (GError) error = NULL;
  ModikeAddr a;

  ASSERT_ACQUIRE (pool, "alice", "10.9.0.5");
  ASSERT_ACQUIRE (pool, "alice", "10.9.0.5");
  ASSERT_LEASE (pool, "alice", "10.9.0.5 2");
  assert_status (pool, 1, 1, 0);
  release (pool, "alice", "10.9.0.5");
  ASSERT_LEASE (pool, "alice", "10.9.0.5 1");
  acquire_fails (pool, "bob", MODECFG_POOL_ERROR_EXHAUSTED, NULL);
  release (pool, "alice", "10.9.0.5");
  ASSERT_LEASE (pool, "alice", "10.9.0.5 0");
  assert_status (pool, 1, 0, 1);
  /* One release too many is refused and changes nothing. */
  g_assert_true (modike_addr_parse ("10.9.0.5", 0, &a, NULL));
  g_assert_false (modecfg_pool_release (pool, "alice", &a, &error));
  g_assert_error (error, MODECFG_POOL_ERROR, MODECFG_POOL_ERROR_NO_LEASE);
  g_assert_cmpstr (error->message, ==, "pool 'rw': 'alice' holds no address 10.9.0.5");
  ASSERT_ACQUIRE (pool, "bob", "10.9.0.5");
}

static void
test_release_wrong (Fx *fx, gconstpointer kind)
{
  g_autoptr (ModecfgPool) pool = pool_new (fx, "rw", "10.9.0.0/24");
  g_autoptr (GError) error = NULL;
  ModikeAddr a;

  ASSERT_ACQUIRE (pool, "alice", "10.9.0.1");
  ASSERT_ACQUIRE (pool, "bob", "10.9.0.2");
  g_assert_true (modike_addr_parse ("10.9.0.2", 0, &a, NULL));
  g_assert_false (modecfg_pool_release (pool, "alice", &a, &error));
  g_assert_error (error, MODECFG_POOL_ERROR, MODECFG_POOL_ERROR_NO_LEASE);
  g_clear_error (&error);
  g_assert_false (modecfg_pool_release (pool, "nobody\n", &a, &error));
  g_assert_error (error, MODECFG_POOL_ERROR, MODECFG_POOL_ERROR_NO_LEASE);
  /* A control character in an identity does not reach the message as it is. */
  g_assert_null (strchr (error->message, '\n'));
  ASSERT_LEASE (pool, "bob", "10.9.0.2 1");
  assert_status (pool, 254, 2, 0);
}

/* A changed range keeps the leases still inside and drops the others;
 * an online lease outside stays until its session ends. */
static void
test_range_change (Fx *fx, gconstpointer kind)
{
  g_autoptr (ModecfgPool) pool = pool_new (fx, "rw", "10.9.0.0/29");

  ASSERT_ACQUIRE (pool, "a", "10.9.0.1");
  ASSERT_ACQUIRE (pool, "b", "10.9.0.2");
  ASSERT_ACQUIRE (pool, "c", "10.9.0.3");
  ASSERT_ACQUIRE (pool, "d", "10.9.0.4");
  release (pool, "a", "10.9.0.1");
  release (pool, "b", "10.9.0.2");
  release (pool, "c", "10.9.0.3");

  set_range (pool, "10.9.0.2-10.9.0.6");
  ASSERT_LEASE (pool, "a", "");
  ASSERT_LEASE (pool, "b", "10.9.0.2 0");
  ASSERT_LEASE (pool, "c", "10.9.0.3 0");
  assert_status (pool, 5, 1, 2);
  ASSERT_ACQUIRE (pool, "b", "10.9.0.2");
  ASSERT_ACQUIRE (pool, "a", "10.9.0.5");

  /* A new pool object over the same store does the same (a reload). */
  g_clear_pointer (&pool, modecfg_pool_free);
  pool = pool_new (fx, "rw", "10.9.0.4-10.9.0.6");
  ASSERT_LEASE (pool, "c", "");
  ASSERT_LEASE (pool, "b", "10.9.0.2 1");      /* online: kept while in use */
  ASSERT_ACQUIRE (pool, "b", "10.9.0.2");      /* a second session shares it */
  release (pool, "b", "10.9.0.2");
  ASSERT_LEASE (pool, "b", "10.9.0.2 1");
  release (pool, "b", "10.9.0.2");
  ASSERT_LEASE (pool, "b", "");                /* dropped once offline */
  ASSERT_ACQUIRE (pool, "b", "10.9.0.6");
  acquire_fails (pool, "c", MODECFG_POOL_ERROR_EXHAUSTED, "pool 'rw' is exhausted: all 3 addresses are in use");
}

static void
test_identity_bounds (Fx *fx, gconstpointer kind)
{
  g_autoptr (ModecfgPool) pool = pool_new (fx, "rw", "10.9.0.0/24");
  g_autofree char *max = g_strnfill (MODECFG_IDENTITY_MAX, 'x');
  g_autofree char *over = g_strnfill (MODECFG_IDENTITY_MAX + 1, 'x');
  /* Quotes and SQL in an identity are just bytes. */
  const char *odd = "o'brien\"; DROP TABLE leases; --";
  const char *utf8 = "j\xc3\xbcrgen@example.org";

  ASSERT_ACQUIRE (pool, max, "10.9.0.1");
  acquire_fails (pool, over, MODECFG_POOL_ERROR_INVALID,
                 "pool 'rw': an identity of 256 bytes is too long (at most 255)");
  acquire_fails (pool, "", MODECFG_POOL_ERROR_INVALID, "pool 'rw': an empty identity gets no address");
  ASSERT_ACQUIRE (pool, odd, "10.9.0.2");
  ASSERT_ACQUIRE (pool, utf8, "10.9.0.3");
  ASSERT_ACQUIRE (pool, odd, "10.9.0.2");
  ASSERT_LEASE (pool, utf8, "10.9.0.3 1");
  ASSERT_LEASE (pool, max, "10.9.0.1 1");
}

/* Pools share a store by name; a pool dropped from the configuration
 * leaves its leases, which nothing hands out. */
static void
test_pools_apart (Fx *fx, gconstpointer kind)
{
  g_autoptr (ModecfgPool) v4 = pool_new (fx, "rw4", "10.9.0.0/24");
  g_autoptr (ModecfgPool) v6 = pool_new (fx, "rw6", "2001:db8:f::/120");
  g_autoptr (ModecfgPool) other = pool_new (fx, "other", "10.9.0.0/24");
  g_autoptr (GArray) leases = NULL;
  g_autoptr (GError) error = NULL;
  char buf[MODIKE_ADDR_STRLEN];

  ASSERT_ACQUIRE (v4, "alice", "10.9.0.1");
  ASSERT_ACQUIRE (v6, "alice", "2001:db8:f::1");
  ASSERT_ACQUIRE (other, "bob", "10.9.0.1");
  ASSERT_ACQUIRE (v4, "carol", "10.9.0.2");
  release (v4, "alice", "10.9.0.1");

  leases = modecfg_pool_list_leases (v4, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (leases->len, ==, 2);
  g_assert_cmpstr (modike_addr_format (&g_array_index (leases, ModecfgLease, 0).addr, buf, sizeof buf), ==,
                   "10.9.0.1");
  g_assert_cmpstr (g_array_index (leases, ModecfgLease, 0).identity, ==, "alice");
  g_assert_cmpuint (g_array_index (leases, ModecfgLease, 0).refs, ==, 0);
  g_assert_cmpint (g_array_index (leases, ModecfgLease, 0).since, >, 0);
  g_assert_cmpstr (g_array_index (leases, ModecfgLease, 1).identity, ==, "carol");
  g_assert_cmpuint (g_array_index (leases, ModecfgLease, 1).refs, ==, 1);

  /* "other" leaves the configuration: its lease stays, and a pool that
   * comes back under the name finds it. */
  release (other, "bob", "10.9.0.1");
  g_clear_pointer (&other, modecfg_pool_free);
  ASSERT_ACQUIRE (v4, "bob", "10.9.0.3");
  other = pool_new (fx, "other", "10.9.0.0/24");
  ASSERT_LEASE (other, "bob", "10.9.0.1 0");
}

/* ---- SQLite only ---- */

static void
test_sqlite_restart (Fx *fx, gconstpointer kind)
{
  g_autoptr (ModecfgPool) pool = pool_new (fx, "rw", "10.9.0.0/24");
  g_autoptr (ModecfgPool) one = pool_new (fx, "one", "10.9.1.1");

  ASSERT_ACQUIRE (pool, "alice", "10.9.0.1");
  ASSERT_ACQUIRE (pool, "bob", "10.9.0.2");
  ASSERT_ACQUIRE (one, "carol", "10.9.1.1");
  release (pool, "alice", "10.9.0.1");

  /* bob and carol were online when the gateway stopped: after a restart
   * their sessions are gone, their leases are offline and still theirs. */
  g_clear_pointer (&pool, modecfg_pool_free);
  g_clear_pointer (&one, modecfg_pool_free);
  fx_restart (fx);
  pool = pool_new (fx, "rw", "10.9.0.0/24");
  one = pool_new (fx, "one", "10.9.1.1");
  assert_status (pool, 254, 0, 2);
  assert_status (one, 1, 0, 1);
  ASSERT_LEASE (pool, "bob", "10.9.0.2 0");
  ASSERT_ACQUIRE (pool, "carol", "10.9.0.3");
  ASSERT_ACQUIRE (pool, "bob", "10.9.0.2");
  ASSERT_ACQUIRE (pool, "alice", "10.9.0.1");
  /* carol's address in the full pool is offline, not in use. */
  ASSERT_ACQUIRE (one, "dave", "10.9.1.1");
  ASSERT_LEASE (one, "carol", "");
}

static void
test_sqlite_file (Fx *fx, gconstpointer kind)
{
  g_autoptr (ModecfgPool) pool = pool_new (fx, "rw", "10.9.0.0/24");
  g_autofree char *wal = g_strconcat (fx->path, "-wal", NULL);
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  struct stat sb;

  ASSERT_ACQUIRE (pool, "alice", "10.9.0.1");
  g_assert_cmpint (g_stat (fx->path, &sb), ==, 0);
  g_assert_cmpint (sb.st_mode & 07777, ==, 0600);
  g_assert_cmpint (g_stat (wal, &sb), ==, 0);
  g_assert_cmpint (sb.st_mode & 07777, ==, 0600);

  g_assert_cmpint (sqlite3_open_v2 (fx->path, &db, SQLITE_OPEN_READONLY, NULL), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_prepare_v2 (db, "PRAGMA journal_mode", -1, &st, NULL), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_step (st), ==, SQLITE_ROW);
  g_assert_cmpstr ((const char *) sqlite3_column_text (st, 0), ==, "wal");
  sqlite3_finalize (st);
  g_assert_cmpint (sqlite3_prepare_v2 (db, "SELECT length (addr), hex (addr), pool FROM leases", -1, &st, NULL),
                   ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_step (st), ==, SQLITE_ROW);
  g_assert_cmpint (sqlite3_column_int (st, 0), ==, 4);
  g_assert_cmpstr ((const char *) sqlite3_column_text (st, 1), ==, "0A090001");
  g_assert_cmpstr ((const char *) sqlite3_column_text (st, 2), ==, "rw");
  sqlite3_finalize (st);
  sqlite3_close (db);
}

static void
open_fails (Fx *fx, int code, const char *part)
{
  g_autoptr (GError) error = NULL;
  ModecfgLeaseStore *store = modecfg_lease_store_sqlite_open (fx->path, &error);

  g_assert_null (store);
  g_assert_error (error, MODECFG_POOL_ERROR, code);
  if (strstr (error->message, fx->path) == NULL || strstr (error->message, part) == NULL)
    g_error ("\"%s\" lacks the path or \"%s\"", error->message, part);
}

static void
test_sqlite_schema_version (Fx *fx, gconstpointer kind)
{
  g_autofree char *want = NULL;
  sqlite3 *db = NULL;

  g_clear_pointer (&fx->store, modecfg_lease_store_free);
  g_assert_cmpint (sqlite3_open (fx->path, &db), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_exec (db, "PRAGMA user_version = 7", NULL, NULL, NULL), ==, SQLITE_OK);
  sqlite3_close (db);
  want = g_strdup_printf ("lease database %s has schema version 7; this modiked knows %d", fx->path,
                          MODECFG_LEASE_SCHEMA_VERSION);
  open_fails (fx, MODECFG_POOL_ERROR_SCHEMA, want);
}

static void
test_sqlite_corrupt (Fx *fx, gconstpointer kind)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *wal = g_strconcat (fx->path, "-wal", NULL);
  char junk[4096];

  g_clear_pointer (&fx->store, modecfg_lease_store_free);
  for (guint i = 0; i < sizeof junk; i++)
    junk[i] = (char) (i * 7 + 3);
  g_assert_true (g_file_set_contents (fx->path, junk, sizeof junk, &error));
  g_assert_no_error (error);
  g_remove (wal);
  open_fails (fx, MODECFG_POOL_ERROR_STORE, "not a database");
}

static void
test_sqlite_unusable_path (Fx *fx, gconstpointer kind)
{
  g_autofree char *saved = g_steal_pointer (&fx->path);

  /* A directory of that name, then a missing directory. */
  fx->path = g_build_filename (fx->dir, "sub", NULL);
  g_assert_cmpint (g_mkdir (fx->path, 0700), ==, 0);
  open_fails (fx, MODECFG_POOL_ERROR_STORE, "Is a directory");
  g_assert_cmpint (g_rmdir (fx->path), ==, 0);
  g_free (fx->path);
  fx->path = g_build_filename (fx->dir, "missing", "leases.db", NULL);
  open_fails (fx, MODECFG_POOL_ERROR_STORE, "No such file");
  g_free (fx->path);
  fx->path = g_steal_pointer (&saved);
}

typedef void (*FxTest) (Fx *, gconstpointer);

static void
add_both (const char *name, FxTest fn)
{
  const char *kinds[] = { "memory", "sqlite" };

  for (guint i = 0; i < G_N_ELEMENTS (kinds); i++)
    {
      g_autofree char *path = g_strdup_printf ("/modecfg/pool/%s/%s", kinds[i], name);
      g_test_add (path, Fx, kinds[i], fx_setup, fn, fx_teardown);
    }
}

static void
add_sqlite (const char *name, FxTest fn)
{
  g_autofree char *path = g_strdup_printf ("/modecfg/pool/sqlite/%s", name);

  g_test_add (path, Fx, "sqlite", fx_setup, fn, fx_teardown);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/modecfg/range/parse", test_range_parse);
  g_test_add_func ("/modecfg/range/find-free", test_find_free);
  g_test_add_func ("/modecfg/pool/name", test_pool_name);
  add_both ("prefix-v4", test_prefix_v4);
  add_both ("range-v4-exhausted", test_range_v4_exhausted);
  add_both ("v6-range", test_v6_range);
  add_both ("v6-large", test_v6_large);
  add_both ("same-identity-after-release", test_same_identity_after_release);
  add_both ("oldest-offline-reused", test_oldest_offline_reused);
  add_both ("concurrent-refcount", test_concurrent_refcount);
  add_both ("release-wrong", test_release_wrong);
  add_both ("range-change", test_range_change);
  add_both ("identity-bounds", test_identity_bounds);
  add_both ("pools-apart", test_pools_apart);
  add_sqlite ("restart", test_sqlite_restart);
  add_sqlite ("file", test_sqlite_file);
  add_sqlite ("schema-version", test_sqlite_schema_version);
  add_sqlite ("corrupt", test_sqlite_corrupt);
  add_sqlite ("unusable-path", test_sqlite_unusable_path);
  return g_test_run ();
}
