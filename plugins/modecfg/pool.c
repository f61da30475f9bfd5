/* Address pools over a lease store; ranges and the free-address walk that
 * the stores share. */
#include "pool.h"

#include <string.h>

G_DEFINE_QUARK (modecfg-pool-error-quark, modecfg_pool_error)

struct _ModecfgPool {
  char *name;
  ModecfgRange range;
  ModecfgLeaseStore *store;   /* borrowed */
  /* Where the next free-address scan starts: just after the last address
   * handed out fresh, so a large (IPv6) pool does not rescan its leases
   * from the start each time. Only a hint: lost at restart. */
  ModikeAddr hint;
};

void
modecfg_lease_clear (ModecfgLease *lease)
{
  g_clear_pointer (&lease->identity, g_free);
}

void
modecfg_lease_store_free (ModecfgLeaseStore *store)
{
  if (store == NULL)
    return;
  store->close (store->self);
  g_free (store);
}

/* ---- Address arithmetic on the big-endian bytes ---- */

int
modecfg_addr_compare (const ModikeAddr *a, const ModikeAddr *b)
{
  if (a->family != b->family)
    return a->family < b->family ? -1 : 1;
  return memcmp (a->addr, b->addr, modike_addr_len (a));
}

/* FALSE (a unchanged) when a is the family's highest address. */
static gboolean
addr_step (ModikeAddr *a, int delta)
{
  guint8 wrap = delta > 0 ? 0xff : 0x00;
  gsize len = modike_addr_len (a);
  gsize i = len;

  while (i > 0 && a->addr[i - 1] == wrap)
    i--;
  if (i == 0)
    return FALSE;
  if (delta > 0)
    a->addr[i - 1]++;
  else
    a->addr[i - 1]--;
  memset (a->addr + i, (guint8) ~wrap, len - i);
  return TRUE;
}

/* ---- Ranges ---- */

static gboolean
range_from_prefix (const ModikePrefix *p, ModecfgRange *out)
{
  gsize len = modike_addr_len (&p->net);
  guint bits = (guint) len * 8;
  ModecfgRange r = { p->net, p->net };

  for (guint i = p->plen; i < bits; i++)
    r.last.addr[i / 8] |= (guint8) (0x80 >> (i % 8));
  /* IPv4 below /31: network and broadcast address are no hosts. IPv6
   * below /127: host part 0 is the subnet-router anycast address. */
  if (p->net.family == AF_INET ? p->plen < 31 : p->plen < 127)
    {
      addr_step (&r.first, +1);
      if (p->net.family == AF_INET)
        addr_step (&r.last, -1);
    }
  *out = r;
  return TRUE;
}

gboolean
modecfg_range_parse (const char *text, ModecfgRange *out, GError **error)
{
  const char *dash;
  g_autofree char *first = NULL;
  g_autofree char *last = NULL;
  ModecfgRange r = { 0 };
  ModikePrefix p;
  g_autoptr (GError) local = NULL;

  g_return_val_if_fail (out != NULL, FALSE);
  if (text == NULL || *text == '\0')
    {
      g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "empty address pool range");
      return FALSE;
    }
  dash = strchr (text, '-');
  if (dash == NULL)
    {
      if (!modike_prefix_parse (text, &p, &local))
        {
          g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                       "address pool %s (a prefix or first-last)", local->message);
          return FALSE;
        }
      return range_from_prefix (&p, out);
    }
  first = g_strstrip (g_strndup (text, (gsize) (dash - text)));
  last = g_strstrip (g_strdup (dash + 1));
  if (!modike_addr_parse (first, 0, &r.first, NULL) || !modike_addr_parse (last, 0, &r.last, NULL)
      || r.first.family != r.last.family)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "address pool \"%s\": a range is two addresses of one family, first-last", text);
      return FALSE;
    }
  if (modecfg_addr_compare (&r.first, &r.last) > 0)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "address pool \"%s\": the first address is above the last", text);
      return FALSE;
    }
  *out = r;
  return TRUE;
}

gboolean
modecfg_range_contains (const ModecfgRange *range, const ModikeAddr *addr)
{
  return addr->family == range->first.family && modecfg_addr_compare (addr, &range->first) >= 0
         && modecfg_addr_compare (addr, &range->last) <= 0;
}

guint64
modecfg_range_size (const ModecfgRange *range)
{
  gsize len = modike_addr_len (&range->first);
  guint8 diff[16];
  guint borrow = 0;
  guint64 n = 0;

  for (gsize i = len; i-- > 0;)
    {
      int d = (int) range->last.addr[i] - (int) range->first.addr[i] - (int) borrow;
      borrow = d < 0;
      diff[i] = (guint8) (d + (borrow ? 256 : 0));
    }
  for (gsize i = 0; i < len; i++)
    {
      if (i + 8 < len && diff[i] != 0)
        return G_MAXUINT64;
      if (i + 8 >= len)
        n = (n << 8) | diff[i];
    }
  return n == G_MAXUINT64 ? n : n + 1;
}

char *
modecfg_range_to_string (const ModecfgRange *range)
{
  char a[MODIKE_ADDR_STRLEN], b[MODIKE_ADDR_STRLEN];

  return g_strdup_printf ("%s-%s", modike_addr_format (&range->first, a, sizeof a),
                          modike_addr_format (&range->last, b, sizeof b));
}

/* ---- The free-address walk ---- */

gboolean
modecfg_gap_feed (ModecfgGap *gap, const ModikeAddr *leased)
{
  int c;

  if (gap->past)
    return TRUE;
  if (leased->family != gap->next.family)
    return FALSE;
  c = modecfg_addr_compare (leased, &gap->next);
  if (c < 0)
    return FALSE;     /* below the window: not asked for, ignored */
  if (c > 0)
    return TRUE;      /* gap->next is free */
  if (modecfg_addr_compare (&gap->next, &gap->last) == 0 || !addr_step (&gap->next, +1))
    gap->past = TRUE;
  return gap->past;
}

static gboolean
find_free_in (const ModikeAddr *from, const ModikeAddr *last, ModecfgGapWalk walk, gpointer data,
              ModikeAddr *out, gboolean *found, GError **error)
{
  ModecfgGap gap = { *from, *last, FALSE };

  if (!walk (data, from, last, &gap, error))
    return FALSE;
  *found = !gap.past;
  if (*found)
    *out = gap.next;
  return TRUE;
}

gboolean
modecfg_range_find_free (const ModecfgRange *range, const ModikeAddr *hint, ModecfgGapWalk walk,
                         gpointer data, ModikeAddr *out, gboolean *found, GError **error)
{
  ModikeAddr from = hint != NULL && modecfg_range_contains (range, hint) ? *hint : range->first;
  ModikeAddr below = from;

  if (!find_free_in (&from, &range->last, walk, data, out, found, error))
    return FALSE;
  if (*found || modecfg_addr_compare (&from, &range->first) == 0)
    return TRUE;
  addr_step (&below, -1);
  return find_free_in (&range->first, &below, walk, data, out, found, error);
}

/* ---- Pools ---- */

/* Identities come from peers: in messages, control characters and bytes
 * that are not UTF-8 become replacement characters. */
static char *
printable (const char *identity)
{
  g_autofree char *valid = g_utf8_make_valid (identity, -1);
  GString *s = g_string_new (NULL);

  for (const char *p = valid; *p; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);
      if (g_unichar_iscntrl (c))
        g_string_append_unichar (s, 0xfffd);
      else
        g_string_append_unichar (s, c);
    }
  return g_string_free (s, FALSE);
}

static gboolean
check_identity (ModecfgPool *pool, const char *identity, GError **error)
{
  gsize len = identity != NULL ? strlen (identity) : 0;

  if (len == 0)
    {
      g_set_error (error, MODECFG_POOL_ERROR, MODECFG_POOL_ERROR_INVALID,
                   "pool '%s': an empty identity gets no address", pool->name);
      return FALSE;
    }
  if (len > MODECFG_IDENTITY_MAX)
    {
      g_set_error (error, MODECFG_POOL_ERROR, MODECFG_POOL_ERROR_INVALID,
                   "pool '%s': an identity of %" G_GSIZE_FORMAT " bytes is too long (at most %u)",
                   pool->name, len, MODECFG_IDENTITY_MAX);
      return FALSE;
    }
  return TRUE;
}

static gboolean
reconcile (ModecfgPool *pool, const ModecfgRange *range, GError **error)
{
  if (range->first.family != range->last.family
      || (range->first.family != AF_INET && range->first.family != AF_INET6)
      || modecfg_addr_compare (&range->first, &range->last) > 0)
    {
      g_set_error (error, MODECFG_POOL_ERROR, MODECFG_POOL_ERROR_INVALID, "pool '%s': invalid range",
                   pool->name);
      return FALSE;
    }
  if (!pool->store->forget_outside (pool->store->self, pool->name, range, error))
    return FALSE;
  pool->range = *range;
  pool->range.first.port = pool->range.last.port = 0;
  pool->hint = pool->range.first;
  return TRUE;
}

ModecfgPool *
modecfg_pool_new (const char *name, const ModecfgRange *range, ModecfgLeaseStore *store, GError **error)
{
  g_autoptr (ModecfgPool) pool = NULL;
  gsize len = name != NULL ? strlen (name) : 0;

  g_return_val_if_fail (range != NULL && store != NULL, NULL);
  if (len == 0 || len > MODECFG_POOL_NAME_MAX || !g_utf8_validate (name, -1, NULL))
    {
      g_set_error (error, MODECFG_POOL_ERROR, MODECFG_POOL_ERROR_INVALID,
                   "a pool name is 1 to %u bytes of UTF-8", MODECFG_POOL_NAME_MAX);
      return NULL;
    }
  pool = g_new0 (ModecfgPool, 1);
  pool->name = g_strdup (name);
  pool->store = store;
  if (!reconcile (pool, range, error))
    return NULL;
  return g_steal_pointer (&pool);
}

void
modecfg_pool_free (ModecfgPool *pool)
{
  if (pool == NULL)
    return;
  g_free (pool->name);
  g_free (pool);
}

const char *
modecfg_pool_get_name (const ModecfgPool *pool)
{
  return pool->name;
}

const ModecfgRange *
modecfg_pool_get_range (const ModecfgPool *pool)
{
  return &pool->range;
}

int
modecfg_pool_get_family (const ModecfgPool *pool)
{
  return pool->range.first.family;
}

gboolean
modecfg_pool_set_range (ModecfgPool *pool, const ModecfgRange *range, GError **error)
{
  return reconcile (pool, range, error);
}

gboolean
modecfg_pool_acquire (ModecfgPool *pool, const char *identity, ModikeAddr *out, GError **error)
{
  ModikeAddr a = { 0 };
  ModecfgClaim how = MODECFG_CLAIM_NONE;
  char buf[MODIKE_ADDR_STRLEN];
  guint64 size;

  if (!check_identity (pool, identity, error)
      || !pool->store->claim (pool->store->self, pool->name, &pool->range, &pool->hint, identity, &a, &how,
                              error))
    return FALSE;
  switch (how)
    {
    case MODECFG_CLAIM_NONE:
      size = modecfg_range_size (&pool->range);
      if (size == 1)
        g_set_error (error, MODECFG_POOL_ERROR, MODECFG_POOL_ERROR_EXHAUSTED,
                     "pool '%s' is exhausted: its one address is in use", pool->name);
      else
        g_set_error (error, MODECFG_POOL_ERROR, MODECFG_POOL_ERROR_EXHAUSTED,
                     "pool '%s' is exhausted: all %" G_GUINT64_FORMAT " addresses are in use", pool->name, size);
      return FALSE;
    case MODECFG_CLAIM_FREE:
      pool->hint = a;
      if (modecfg_addr_compare (&a, &pool->range.last) == 0 || !addr_step (&pool->hint, +1))
        pool->hint = pool->range.first;
      break;
    case MODECFG_CLAIM_REUSED:
      {
        g_autofree char *who = printable (identity);
        g_message ("pool '%s': no free address left; %s goes to '%s', taken from the longest-offline lease",
                   pool->name, modike_addr_format (&a, buf, sizeof buf), who);
      }
      break;
    case MODECFG_CLAIM_OWN:
      break;
    }
  a.port = 0;
  *out = a;
  return TRUE;
}

gboolean
modecfg_pool_release (ModecfgPool *pool, const char *identity, const ModikeAddr *addr, GError **error)
{
  gboolean found = FALSE;
  char buf[MODIKE_ADDR_STRLEN];

  if (!check_identity (pool, identity, error)
      || !pool->store->release (pool->store->self, pool->name, identity, addr, &found, error))
    return FALSE;
  if (!found)
    {
      g_autofree char *who = printable (identity);
      g_set_error (error, MODECFG_POOL_ERROR, MODECFG_POOL_ERROR_NO_LEASE,
                   "pool '%s': '%s' holds no address %s", pool->name, who,
                   modike_addr_format (addr, buf, sizeof buf));
      return FALSE;
    }
  if (!modecfg_range_contains (&pool->range, addr))
    return pool->store->forget_outside (pool->store->self, pool->name, &pool->range, error);
  return TRUE;
}

gboolean
modecfg_pool_find_lease (ModecfgPool *pool, const char *identity, ModecfgLease *out, gboolean *found,
                         GError **error)
{
  *found = FALSE;
  return check_identity (pool, identity, error)
         && pool->store->find (pool->store->self, pool->name, identity, out, found, error);
}

gboolean
modecfg_pool_get_status (ModecfgPool *pool, ModecfgPoolStatus *out, GError **error)
{
  ModecfgPoolStatus s = { modecfg_range_size (&pool->range), 0, 0 };

  if (!pool->store->count (pool->store->self, pool->name, &s.online, &s.offline, error))
    return FALSE;
  *out = s;
  return TRUE;
}

GArray *
modecfg_pool_list_leases (ModecfgPool *pool, GError **error)
{
  g_autoptr (GArray) leases = g_array_new (FALSE, TRUE, sizeof (ModecfgLease));

  g_array_set_clear_func (leases, (GDestroyNotify) modecfg_lease_clear);
  if (!pool->store->list (pool->store->self, pool->name, leases, error))
    return NULL;
  return g_steal_pointer (&leases);
}
