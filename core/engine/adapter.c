/* Virtual adapters: for each peer with <adapter>, an interface made by the
 * OS adapter plugin (tun on Linux), addressed, with a route for every
 * remote selector of the peer's protect policies, its packet queues
 * attached to the datapath. Reloads keep unchanged adapters (their routes
 * follow the policies) and replace changed or removed ones.
 *
 * A plugin's result for an IKE SA (sa-result.h: mode config) goes on the
 * peer's adapter, one made for it when the peer has none: its addresses,
 * routes and DNS last as long as the SA or its successor with the peer. */
#include "engine-private.h"

#include <string.h>

#define DEFAULT_MTU 1400

struct _EngineAdapter {
  char *peer;
  char *ifname;
  ModikePrefix addr;        /* family 0: none */
  guint mtu, queues;
  gboolean offload;
  gpointer handle;          /* the OS adapter's object */
  gboolean attached;
  GQueue routes;            /* ModikePrefix* (owned): the routes we added, in that order */
  GHashTable *route_links;  /* ModikePrefix* -> its GList link in routes: O(1) removal */
  GHashTable *gw_refs;      /* ModikePrefix -> how many gateway instances want it (instances.c) */
  gboolean dynamic;         /* made for a result, goes with it */
  ModikeIkeSa *result_sa;   /* whose result is applied; NULL = none */
  ModikeSaResult *result;   /* a copy of it */
  GArray *result_routes;    /* ModikePrefix: its networks less the peer's address and the excludes */
  gboolean dns_set;
};

/* ---- ranges to prefixes ---- */

static gboolean
bit_set (const guint8 *a, gsize len, guint i)
{
  return (a[len - 1 - i / 8] >> (i % 8)) & 1;
}

/* out = a with its low `host` bits set. */
static void
set_host_bits (guint8 *out, const guint8 *a, gsize len, guint host)
{
  memcpy (out, a, len);
  for (guint i = 0; i < host; i++)
    out[len - 1 - i / 8] |= (guint8) (1u << (i % 8));
}

/* FALSE on overflow (a was all ones). */
static gboolean
increment (guint8 *a, gsize len)
{
  for (gsize i = len; i-- > 0;)
    if (++a[i] != 0)
      return TRUE;
  return FALSE;
}

static gboolean
decrement (guint8 *a, gsize len)
{
  for (gsize i = len; i-- > 0;)
    if (a[i]-- != 0)
      return TRUE;
  return FALSE;
}

/* The classic split: at each step the largest aligned block starting at
 * `from` that does not pass `to`. */
static void
add_range (GArray *out, int family, const guint8 *from, const guint8 *to)
{
  gsize len = family == AF_INET ? 4 : 16;
  guint bits = (guint) len * 8;
  guint8 cur[16], end[16];

  memcpy (cur, from, len);
  while (memcmp (cur, to, len) <= 0)
    {
      ModikePrefix p = { 0 };
      guint host = 0;

      while (host < bits && !bit_set (cur, len, host))
        {
          set_host_bits (end, cur, len, host + 1);
          if (memcmp (end, to, len) > 0)
            break;
          host++;
        }
      p.net.family = family;
      memcpy (p.net.addr, cur, len);
      p.plen = (guint8) (bits - host);
      g_array_append_val (out, p);
      set_host_bits (end, cur, len, host);
      if (!increment (end, len))
        break;
      memcpy (cur, end, len);
    }
}

static gboolean prefix_set_add (GHashTable *set, const ModikePrefix *p);

/* Adds [from, to] less the holes (ModikeAddrRange, any family, any order). */
static void
add_range_minus (GArray *out, int family, const guint8 *from, const guint8 *to, const GArray *holes)
{
  gsize len = family == AF_INET ? 4 : 16;
  guint8 cur[16];

  memcpy (cur, from, len);
  for (;;)
    {
      const ModikeAddrRange *first = NULL;
      guint8 end[16];

      /* The lowest hole that overlaps [cur, to]. */
      for (guint i = 0; holes != NULL && i < holes->len; i++)
        {
          const ModikeAddrRange *h = &g_array_index (holes, ModikeAddrRange, i);

          if (h->from.family != family || memcmp (h->to.addr, cur, len) < 0 || memcmp (h->from.addr, to, len) > 0)
            continue;
          if (first == NULL || memcmp (h->from.addr, first->from.addr, len) < 0)
            first = h;
        }
      if (first == NULL)
        {
          add_range (out, family, cur, to);
          return;
        }
      memcpy (end, first->from.addr, len);
      if (memcmp (end, cur, len) > 0 && decrement (end, len))
        add_range (out, family, cur, end);
      memcpy (cur, first->to.addr, len);
      if (memcmp (cur, to, len) >= 0 || !increment (cur, len))
        return;
    }
}

/* The minimal set of prefixes covering r less the holes; family 0 covers
 * both families. */
static GArray *
range_to_prefixes_minus (const ModikeAddrRange *r, const GArray *holes)
{
  GArray *out = g_array_new (FALSE, TRUE, sizeof (ModikePrefix));
  static const guint8 zero[16];
  guint8 ones[16];

  memset (ones, 0xff, sizeof ones);
  if (r->from.family == 0)
    {
      /* "any" on both sides of a policy: every address of both families. */
      add_range_minus (out, AF_INET, zero, ones, holes);
      add_range_minus (out, AF_INET6, zero, ones, holes);
    }
  else if (r->from.family == r->to.family)
    add_range_minus (out, r->from.family, r->from.addr, r->to.addr, holes);
  return out;
}

/* What a peer's routes leave out: its own address (its IKE and ESP packets
 * must not loop into the adapter) and the excludes of result r. */
static GArray *
route_holes (const ModikeAddr *peer, const ModikeSaResult *r)
{
  GArray *holes = g_array_new (FALSE, TRUE, sizeof (ModikeAddrRange));

  if (peer != NULL && peer->family != 0)
    {
      ModikeAddrRange h = { .from = *peer, .to = *peer };

      g_array_append_val (holes, h);
    }
  for (guint i = 0; r != NULL && i < r->excludes->len; i++)
    {
      ModikeAddrRange h;

      if (modike_addr_range_from_prefix (&g_array_index (r->excludes, ModikePrefix, i), &h))
        g_array_append_val (holes, h);
    }
  return holes;
}

GArray *
engine_range_to_prefixes (const ModikeAddrRange *r, const ModikeAddr *except)
{
  g_autoptr (GArray) holes = route_holes (except, NULL);

  return range_to_prefixes_minus (r, holes);
}

/* Appends the prefixes of pre that `seen` does not hold yet. */
static void
add_prefixes (GArray *out, GHashTable *seen, const GArray *pre)
{
  for (guint k = 0; k < pre->len; k++)
    if (prefix_set_add (seen, &g_array_index (pre, ModikePrefix, k)))
      g_array_append_val (out, g_array_index (pre, ModikePrefix, k));
}

static gboolean
prefix_equal (const ModikePrefix *a, const ModikePrefix *b)
{
  return a->plen == b->plen && modike_addr_equal_ip (&a->net, &b->net);
}

/* Sets of prefixes (their own copies): route lists are compared by
 * lookup, as a gateway may route one host per client. */
static guint
prefix_hash (gconstpointer key)
{
  const ModikePrefix *p = key;
  guint h = (guint) p->net.family * 257u + p->plen;

  for (gsize i = 0; i < modike_addr_len (&p->net); i++)
    h = h * 33u + p->net.addr[i];
  return h;
}

static gboolean
prefix_equal_cb (gconstpointer a, gconstpointer b)
{
  return prefix_equal (a, b);
}

/* A new set holding the prefixes of `from` (NULL: empty). */
static GHashTable *
prefix_set_new (const GArray *from)
{
  GHashTable *set = g_hash_table_new_full (prefix_hash, prefix_equal_cb, g_free, NULL);

  for (guint i = 0; from != NULL && i < from->len; i++)
    prefix_set_add (set, &g_array_index (from, ModikePrefix, i));
  return set;
}

/* FALSE if p was in the set already. */
static gboolean
prefix_set_add (GHashTable *set, const ModikePrefix *p)
{
  if (g_hash_table_contains (set, p))
    return FALSE;
  g_hash_table_add (set, g_memdup2 (p, sizeof *p));
  return TRUE;
}

static const char *
prefix_format (const ModikePrefix *p, char *buf, gsize len)
{
  char a[MODIKE_ADDR_STRLEN];
  ModikeAddr bare = p->net;

  bare.port = 0;
  g_snprintf (buf, len, "%s/%u", modike_addr_format (&bare, a, sizeof a), p->plen);
  return buf;
}

/* Routes the peer's traffic needs: the remote selectors of its protect
 * policies and of their instances (never of a template), less the peer's
 * own address and the excludes of the peer's result r. */
static GArray *
wanted_routes (ModikeIke *ike, const ModikeConfig *cfg, const ModikePeerConfig *peer, const ModikeSaResult *r)
{
  GArray *want = g_array_new (FALSE, TRUE, sizeof (ModikePrefix));
  g_autoptr (GArray) holes = route_holes (peer->remote.family != 0 ? &peer->remote : NULL, r);
  g_autoptr (GHashTable) seen = prefix_set_new (NULL);

  for (guint i = 0; cfg->policies != NULL && i < cfg->policies->len; i++)
    {
      const ModikeSpdEntry *e = g_ptr_array_index (cfg->policies, i);
      g_autoptr (GArray) pre = NULL;

      if (e->action != MODIKE_SPD_PROTECT || e->virtual_side != MODIKE_VIRTUAL_NONE ||
          g_strcmp0 (e->peer, peer->name) != 0)
        continue;
      pre = range_to_prefixes_minus (&e->remote, holes);
      add_prefixes (want, seen, pre);
    }
  for (guint i = 0; i < ike->instances->len; i++)
    {
      const EngineInstance *inst = g_ptr_array_index (ike->instances, i);
      const ModikeSpdEntry *e = inst->entry;
      g_autoptr (GArray) pre = NULL;

      if (e->action != MODIKE_SPD_PROTECT || g_strcmp0 (e->peer, peer->name) != 0)
        continue;
      pre = range_to_prefixes_minus (&e->remote, holes);
      add_prefixes (want, seen, pre);
    }
  return want;
}

/* The routes a wants besides its gateway instances', in order; seen
 * gets them too. */
static GArray *
static_routes (ModikeIke *ike, EngineAdapter *a, const ModikeConfig *cfg, GHashTable *seen)
{
  const ModikePeerConfig *p = cfg != NULL ? modike_config_find_peer (cfg, a->peer) : NULL;
  g_autoptr (GArray) policy = p != NULL ? wanted_routes (ike, cfg, p, a->result) : NULL;
  GArray *want = g_array_new (FALSE, TRUE, sizeof (ModikePrefix));

  if (policy != NULL)
    add_prefixes (want, seen, policy);
  add_prefixes (want, seen, a->result_routes);
  return want;
}

static gint
prefix_cmp (gconstpointer a, gconstpointer b)
{
  const ModikePrefix *x = a, *y = b;

  if (x->net.family != y->net.family)
    return x->net.family < y->net.family ? -1 : 1;
  if (memcmp (x->net.addr, y->net.addr, modike_addr_len (&x->net)) != 0)
    return memcmp (x->net.addr, y->net.addr, modike_addr_len (&x->net));
  return (gint) x->plen - (gint) y->plen;
}

/* ---- adapters ---- */

static const ModikeOsAdapterOps *
os_ops (ModikeIke *ike)
{
  return modike_registry_os_adapter (ike->registry, NULL);
}

static gboolean
same_settings (const EngineAdapter *a, const ModikePeerConfig *p)
{
  return p->has_adapter && g_strcmp0 (a->ifname, p->adapter_name) == 0 && prefix_equal (&a->addr, &p->adapter_addr) &&
         a->mtu == (p->adapter_mtu != 0 ? p->adapter_mtu : DEFAULT_MTU) &&
         a->queues == MAX (p->adapter_queues, 1u) && a->offload == p->adapter_offload;
}

/* Detaches from the datapath, removes the interface (with its routes and
 * addresses) and frees. */
static void
adapter_destroy (ModikeIke *ike, EngineAdapter *a)
{
  const ModikeOsAdapterOps *os = os_ops (ike);
  gpointer dp_user = NULL;
  const ModikeDatapathOps *dp = engine_dp_ops (ike, &dp_user);

  if (a->attached && dp != NULL && dp->adapter_detach != NULL)
    dp->adapter_detach (dp_user, a->peer);
  if (a->dns_set && os != NULL && os->clear_dns != NULL)
    os->clear_dns (a->handle);
  if (a->handle != NULL && os != NULL && os->destroy != NULL)
    {
      os->destroy (a->handle);
      engine_log (G_LOG_LEVEL_INFO, NULL, NULL, "peer %s: adapter %s removed", a->peer, a->ifname);
    }
  g_hash_table_destroy (a->route_links);
  g_queue_clear_full (&a->routes, g_free);
  g_hash_table_destroy (a->gw_refs);
  g_array_unref (a->result_routes);
  g_clear_pointer (&a->result, modike_sa_result_free);
  g_free (a->ifname);
  g_free (a->peer);
  g_free (a);
}

/* For the peer named `peer`, with p's <adapter> settings (NULL: a result's
 * adapter named ifname, with the defaults). */
static EngineAdapter *
adapter_create (ModikeIke *ike, const char *peer, const char *ifname, const ModikePeerConfig *p, GError **error)
{
  gpointer os_user = NULL;
  const ModikeOsAdapterOps *os = modike_registry_os_adapter (ike->registry, &os_user);
  gpointer dp_user = NULL;
  const ModikeDatapathOps *dp = engine_dp_ops (ike, &dp_user);
  EngineAdapter *a = g_new0 (EngineAdapter, 1);
  guint flags, n;
  g_autofree int *fds = NULL;
  char buf[MODIKE_ADDR_STRLEN + 8];

  a->peer = g_strdup (peer);
  a->ifname = g_strdup (p != NULL ? p->adapter_name : ifname);
  if (p != NULL)
    a->addr = p->adapter_addr;
  a->mtu = p != NULL && p->adapter_mtu != 0 ? p->adapter_mtu : DEFAULT_MTU;
  a->queues = p != NULL ? MAX (p->adapter_queues, 1u) : 1;
  a->offload = p != NULL ? p->adapter_offload : TRUE;
  g_queue_init (&a->routes);
  a->route_links = g_hash_table_new (prefix_hash, prefix_equal_cb);
  a->gw_refs = g_hash_table_new_full (prefix_hash, prefix_equal_cb, g_free, NULL);
  a->result_routes = g_array_new (FALSE, TRUE, sizeof (ModikePrefix));
  if (dp == NULL)
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "the datapath is not running");
      goto fail;
    }
  if (os == NULL || os->create == NULL || os->get_fd == NULL)
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "OS adapter %s cannot create interfaces",
                   os != NULL && os->name != NULL ? os->name : "(none)");
      goto fail;
    }
  a->handle = os->create (os_user, a->ifname, a->queues, a->offload ? MODIKE_ADAPTER_VNET_HDR : 0, error);
  if (a->handle == NULL)
    goto fail;
  if (a->addr.net.family != 0 && os->set_address != NULL && !os->set_address (a->handle, &a->addr, a->mtu, error))
    goto fail;
  n = os->get_n_queues != NULL ? os->get_n_queues (a->handle) : a->queues;
  /* The flags in effect: the OS may not offer the offloads asked for. */
  flags = os->get_flags != NULL ? os->get_flags (a->handle) : (a->offload ? MODIKE_ADAPTER_VNET_HDR : 0);
  fds = g_new (int, MAX (n, 1u));
  for (guint q = 0; q < n; q++)
    fds[q] = os->get_fd (a->handle, q);
  if (dp->adapter_attach == NULL)
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "datapath %s takes no adapters",
                   dp->name != NULL ? dp->name : "?");
      goto fail;
    }
  if (!dp->adapter_attach (dp_user, a->peer, fds, n, flags, error))
    goto fail;
  a->attached = TRUE;
  engine_log (G_LOG_LEVEL_INFO, NULL, NULL, "peer %s: adapter %s up (%s, mtu %u, %u queue%s%s)", peer, a->ifname,
              a->addr.net.family != 0 ? prefix_format (&a->addr, buf, sizeof buf) : "no address", a->mtu, n,
              n == 1 ? "" : "s", (flags & MODIKE_ADAPTER_VNET_HDR) ? ", offloads" : "");
  return a;

fail:
  g_prefix_error (error, "peer %s: adapter %s: ", peer, a->ifname);
  adapter_destroy (ike, a);
  return NULL;
}

static EngineAdapter *
find_adapter (ModikeIke *ike, const char *peer)
{
  for (guint i = 0; i < ike->adapters->len; i++)
    {
      EngineAdapter *a = g_ptr_array_index (ike->adapters, i);

      if (g_strcmp0 (a->peer, peer) == 0)
        return a;
    }
  return NULL;
}

gboolean
engine_adapters_prepare (ModikeIke *ike, const ModikeConfig *cfg, GError **error)
{
  const ModikeOsAdapterOps *os = os_ops (ike);
  const ModikeDatapathOps *dp = modike_registry_datapath (ike->registry, NULL);
  g_autoptr (GPtrArray) created = g_ptr_array_new ();

  for (guint i = 0; cfg->peers != NULL && i < cfg->peers->len; i++)
    {
      const ModikePeerConfig *p = g_ptr_array_index (cfg->peers, i);

      if (!p->has_adapter)
        continue;
      if (os == NULL || dp == NULL)
        {
          g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED,
                       "peer %s: <adapter name=\"%s\"> needs %s, and none is loaded (list it in <plugins>)",
                       p->name, p->adapter_name,
                       os == NULL ? "an OS adapter plugin (tun on Linux)" : "a datapath plugin (esp_user)");
          return FALSE;
        }
    }

  /* Removed and changed adapters go first: a new one may reuse the name. */
  for (guint i = ike->adapters->len; i-- > 0;)
    {
      EngineAdapter *a = g_ptr_array_index (ike->adapters, i);
      const ModikePeerConfig *p = modike_config_find_peer (cfg, a->peer);

      /* A result's adapter follows its SA; it goes now only when the
       * peer is gone or gets a configured adapter. */
      if (a->dynamic ? p != NULL && !p->has_adapter : p != NULL && same_settings (a, p))
        continue;
      g_ptr_array_remove_index (ike->adapters, i);
      adapter_destroy (ike, a);
    }
  for (guint i = 0; cfg->peers != NULL && i < cfg->peers->len; i++)
    {
      const ModikePeerConfig *p = g_ptr_array_index (cfg->peers, i);
      EngineAdapter *a;

      if (!p->has_adapter || find_adapter (ike, p->name) != NULL)
        continue;
      a = adapter_create (ike, p->name, NULL, p, error);
      if (a == NULL)
        {
          /* The config is refused: take back what it created. */
          for (guint k = 0; k < created->len; k++)
            adapter_destroy (ike, g_ptr_array_index (created, k));
          return FALSE;
        }
      g_ptr_array_add (created, a);
    }
  for (guint k = 0; k < created->len; k++)
    g_ptr_array_add (ike->adapters, g_ptr_array_index (created, k));
  return TRUE;
}

static void
route_add (ModikeIke *ike, EngineAdapter *a, const ModikePrefix *r)
{
  const ModikeOsAdapterOps *os = os_ops (ike);
  g_autoptr (GError) error = NULL;
  char buf[MODIKE_ADDR_STRLEN + 8];

  /* The config is applied already: a route that fails is logged and
   * tried again at the next reload. */
  if (os->add_route == NULL || !os->add_route (a->handle, r, &error))
    {
      engine_log (G_LOG_LEVEL_WARNING, NULL, NULL, "peer %s: adapter %s: route %s not added: %s", a->peer, a->ifname,
                  prefix_format (r, buf, sizeof buf), error != NULL ? error->message : "the OS adapter has no routes");
      return;
    }
  g_queue_push_tail (&a->routes, g_memdup2 (r, sizeof *r));
  g_hash_table_insert (a->route_links, a->routes.tail->data, a->routes.tail);
  engine_log (G_LOG_LEVEL_INFO, NULL, NULL, "peer %s: adapter %s: route %s", a->peer, a->ifname,
              prefix_format (r, buf, sizeof buf));
}

static void
route_del (ModikeIke *ike, EngineAdapter *a, const ModikePrefix *r)
{
  const ModikeOsAdapterOps *os = os_ops (ike);
  g_autoptr (GError) error = NULL;
  char buf[MODIKE_ADDR_STRLEN + 8];
  ModikePrefix copy = *r;   /* r may be the one freed here */
  GList *link = g_hash_table_lookup (a->route_links, &copy);

  g_hash_table_remove (a->route_links, &copy);
  if (link != NULL)
    {
      g_free (link->data);
      g_queue_delete_link (&a->routes, link);
    }
  if (os->del_route != NULL && !os->del_route (a->handle, &copy, &error))
    engine_log (G_LOG_LEVEL_WARNING, NULL, NULL, "peer %s: adapter %s: route %s not removed: %s", a->peer, a->ifname,
                prefix_format (&copy, buf, sizeof buf), error != NULL ? error->message : "failed");
  else
    engine_log (G_LOG_LEVEL_INFO, NULL, NULL, "peer %s: adapter %s: route %s removed", a->peer, a->ifname,
                prefix_format (&copy, buf, sizeof buf));
}

/* Installs exactly the routes a wants: its peer's policies (when the peer
 * is configured), its result's networks and its gateway instances'. */
static void
adapter_sync_routes (ModikeIke *ike, EngineAdapter *a, const ModikeConfig *cfg)
{
  const ModikeOsAdapterOps *os = os_ops (ike);
  const ModikePeerConfig *p = cfg != NULL ? modike_config_find_peer (cfg, a->peer) : NULL;
  g_autoptr (GHashTable) seen = prefix_set_new (NULL);
  g_autoptr (GArray) want = NULL;
  g_autoptr (GArray) gw = g_array_new (FALSE, TRUE, sizeof (ModikePrefix));
  GHashTableIter it;
  gpointer key;

  if (os == NULL || (p == NULL && !a->dynamic))
    return;
  want = static_routes (ike, a, cfg, seen);
  /* The gateway instances' after them, in address order (logs stay the same). */
  g_hash_table_iter_init (&it, a->gw_refs);
  while (g_hash_table_iter_next (&it, &key, NULL))
    g_array_append_val (gw, *(ModikePrefix *) key);
  g_array_sort (gw, prefix_cmp);
  add_prefixes (want, seen, gw);
  /* Newest first, as they were added. */
  for (GList *l = a->routes.tail, *prev; l != NULL; l = prev)
    {
      prev = l->prev;
      if (!g_hash_table_contains (seen, l->data))
        route_del (ike, a, l->data);
    }
  for (guint k = 0; k < want->len; k++)
    if (!g_hash_table_contains (a->route_links, &g_array_index (want, ModikePrefix, k)))
      route_add (ike, a, &g_array_index (want, ModikePrefix, k));
}

void
engine_adapters_instance_routes (ModikeIke *ike, const ModikeSpdEntry *e, gboolean add, gboolean apply)
{
  EngineAdapter *a = e->action == MODIKE_SPD_PROTECT ? find_adapter (ike, e->peer) : NULL;
  const ModikePeerConfig *p = a != NULL && ike->cfg != NULL ? modike_config_find_peer (ike->cfg, a->peer) : NULL;
  g_autoptr (GArray) holes = NULL;
  g_autoptr (GArray) pre = NULL;
  g_autoptr (GHashTable) fixed = NULL;

  if (p == NULL)
    return;
  holes = route_holes (p->remote.family != 0 ? &p->remote : NULL, a->result);
  pre = range_to_prefixes_minus (&e->remote, holes);
  for (guint k = 0; k < pre->len; k++)
    {
      const ModikePrefix *r = &g_array_index (pre, ModikePrefix, k);
      guint n = GPOINTER_TO_UINT (g_hash_table_lookup (a->gw_refs, r));

      if (add)
        {
          g_hash_table_replace (a->gw_refs, g_memdup2 (r, sizeof *r), GUINT_TO_POINTER (n + 1));
          if (apply && n == 0 && os_ops (ike) != NULL && !g_hash_table_contains (a->route_links, r))
            route_add (ike, a, r);
          continue;
        }
      if (n > 1)
        {
          g_hash_table_replace (a->gw_refs, g_memdup2 (r, sizeof *r), GUINT_TO_POINTER (n - 1));
          continue;
        }
      g_hash_table_remove (a->gw_refs, r);
      if (!apply || os_ops (ike) == NULL || !g_hash_table_contains (a->route_links, r))
        continue;
      /* Still wanted for a policy of the peer or its result? */
      if (fixed == NULL)
        {
          fixed = prefix_set_new (NULL);
          g_array_unref (static_routes (ike, a, ike->cfg, fixed));
        }
      if (!g_hash_table_contains (fixed, r))
        route_del (ike, a, r);
    }
}

void
engine_adapters_instances_reset (ModikeIke *ike)
{
  for (guint i = 0; i < ike->adapters->len; i++)
    g_hash_table_remove_all (((EngineAdapter *) g_ptr_array_index (ike->adapters, i))->gw_refs);
}

void
engine_adapters_sync_routes (ModikeIke *ike, const ModikeConfig *cfg)
{
  for (guint i = 0; i < ike->adapters->len; i++)
    adapter_sync_routes (ike, g_ptr_array_index (ike->adapters, i), cfg);
}

void
engine_adapters_destroy_all (ModikeIke *ike)
{
  while (ike->adapters->len > 0)
    adapter_destroy (ike, g_ptr_array_steal_index (ike->adapters, ike->adapters->len - 1));
}

/* ---- results (sa-result.h) ---- */

ModikeSaResult *
modike_sa_result_new (void)
{
  ModikeSaResult *r = g_new0 (ModikeSaResult, 1);

  r->routes = g_array_new (FALSE, TRUE, sizeof (ModikePrefix));
  r->dns = g_array_new (FALSE, TRUE, sizeof (ModikeAddr));
  r->domains = g_ptr_array_new_null_terminated (0, g_free, TRUE);
  r->excludes = g_array_new (FALSE, TRUE, sizeof (ModikePrefix));
  return r;
}

void
modike_sa_result_free (ModikeSaResult *r)
{
  if (r == NULL)
    return;
  g_array_unref (r->routes);
  g_array_unref (r->dns);
  g_ptr_array_unref (r->domains);
  g_array_unref (r->excludes);
  g_free (r);
}

/* Addresses without ports: the OS adapter gets bare ones. */
static ModikePrefix
bare_prefix (const ModikePrefix *p)
{
  ModikePrefix c = *p;

  c.net.port = 0;
  return c;
}

void
modike_sa_result_add_address (ModikeSaResult *r, const ModikePrefix *addr)
{
  g_return_if_fail (r != NULL && addr != NULL);
  g_return_if_fail (addr->net.family == AF_INET || addr->net.family == AF_INET6);
  *(addr->net.family == AF_INET ? &r->addr4 : &r->addr6) = bare_prefix (addr);
}

static void
add_net (GArray *nets, const ModikePrefix *net)
{
  ModikePrefix c;

  g_return_if_fail (net != NULL);
  g_return_if_fail (net->net.family == AF_INET || net->net.family == AF_INET6);
  c = bare_prefix (net);
  g_array_append_val (nets, c);
}

void
modike_sa_result_add_route (ModikeSaResult *r, const ModikePrefix *net)
{
  g_return_if_fail (r != NULL);
  add_net (r->routes, net);
}

void
modike_sa_result_add_exclude (ModikeSaResult *r, const ModikePrefix *net)
{
  g_return_if_fail (r != NULL);
  add_net (r->excludes, net);
}

void
modike_sa_result_add_dns (ModikeSaResult *r, const ModikeAddr *server)
{
  ModikeAddr c;

  g_return_if_fail (r != NULL && server != NULL);
  g_return_if_fail (server->family == AF_INET || server->family == AF_INET6);
  c = *server;
  c.port = 0;
  g_array_append_val (r->dns, c);
}

void
modike_sa_result_add_domain (ModikeSaResult *r, const char *domain)
{
  g_return_if_fail (r != NULL && domain != NULL);
  g_ptr_array_add (r->domains, g_strdup (domain));
}

static ModikeSaResult *
result_copy (const ModikeSaResult *r)
{
  ModikeSaResult *c = modike_sa_result_new ();

  c->addr4 = r->addr4;
  c->addr6 = r->addr6;
  g_array_append_vals (c->routes, r->routes->data, r->routes->len);
  g_array_append_vals (c->dns, r->dns->data, r->dns->len);
  g_array_append_vals (c->excludes, r->excludes->data, r->excludes->len);
  for (guint i = 0; i < r->domains->len; i++)
    g_ptr_array_add (c->domains, g_strdup (g_ptr_array_index (r->domains, i)));
  return c;
}

/* The result's networks as routes: host bits cleared, and never the peer's
 * own address (its IKE and ESP packets must not loop into the adapter)
 * nor an excluded network. */
static void
result_routes (const ModikeSaResult *r, const ModikeAddr *peer, GArray *out)
{
  g_autoptr (GArray) holes = route_holes (peer, r);
  g_autoptr (GHashTable) seen = prefix_set_new (NULL);

  g_array_set_size (out, 0);
  for (guint i = 0; i < r->routes->len; i++)
    {
      ModikeAddrRange range;
      g_autoptr (GArray) pre = NULL;

      if (!modike_addr_range_from_prefix (&g_array_index (r->routes, ModikePrefix, i), &range))
        continue;
      pre = range_to_prefixes_minus (&range, holes);
      add_prefixes (out, seen, pre);
    }
}

static void
log_dns_unsupported (const ModikeOsAdapterOps *os)
{
  static gboolean told;

  if (!told)
    engine_log (G_LOG_LEVEL_MESSAGE, NULL, NULL, "OS adapter %s cannot set DNS servers: results' DNS are ignored",
                os->name != NULL ? os->name : "?");
  told = TRUE;
}

static void
apply_dns (ModikeIke *ike, EngineAdapter *a, const ModikeSaResult *r)
{
  static const char *const no_domains[] = { NULL };
  const ModikeOsAdapterOps *os = os_ops (ike);
  gboolean want = r != NULL && (r->dns->len > 0 || r->domains->len > 0);
  g_autoptr (GError) error = NULL;

  if (!want)
    {
      if (a->dns_set && os->clear_dns != NULL)
        os->clear_dns (a->handle);
      a->dns_set = FALSE;
      return;
    }
  if (os->set_dns == NULL)
    {
      log_dns_unsupported (os);
      return;
    }
  /* An empty null-terminated GPtrArray may have no pdata yet: the OS
   * adapter gets an empty list, never NULL. */
  if (!os->set_dns (a->handle, (const ModikeAddr *) (gpointer) r->dns->data, r->dns->len,
                    r->domains->pdata != NULL ? (const char *const *) r->domains->pdata : no_domains, &error))
    {
      /* The tunnel works without them: say so and go on. */
      engine_log (G_LOG_LEVEL_WARNING, NULL, NULL, "peer %s: adapter %s: DNS not set: %s", a->peer, a->ifname,
                  error != NULL ? error->message : "failed");
      return;
    }
  a->dns_set = TRUE;
  engine_log (G_LOG_LEVEL_INFO, NULL, NULL, "peer %s: adapter %s: %u DNS server%s, %u domain%s", a->peer, a->ifname,
              r->dns->len, r->dns->len == 1 ? "" : "s", r->domains->len, r->domains->len == 1 ? "" : "s");
}

/* "modike<N>" with the lowest N no adapter and no configured peer uses. */
static char *
free_ifname (ModikeIke *ike)
{
  for (guint n = 0;; n++)
    {
      g_autofree char *name = g_strdup_printf ("modike%u", n);
      gboolean taken = FALSE;

      for (guint i = 0; i < ike->adapters->len && !taken; i++)
        taken = g_strcmp0 (((EngineAdapter *) g_ptr_array_index (ike->adapters, i))->ifname, name) == 0;
      for (guint i = 0; ike->cfg != NULL && i < ike->cfg->peers->len && !taken; i++)
        {
          const ModikePeerConfig *p = g_ptr_array_index (ike->cfg->peers, i);

          taken = p->has_adapter && g_strcmp0 (p->adapter_name, name) == 0;
        }
      if (!taken)
        return g_steal_pointer (&name);
    }
}

static gboolean
set_addresses (EngineAdapter *a, const ModikeOsAdapterOps *os, const ModikeSaResult *r, GError **error)
{
  const ModikePrefix *addrs[] = { &r->addr4, &r->addr6 };
  char buf[MODIKE_ADDR_STRLEN + 8];

  for (guint i = 0; i < G_N_ELEMENTS (addrs); i++)
    {
      if (addrs[i]->net.family == 0)
        continue;
      if (os->set_address == NULL)
        {
          g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "OS adapter %s cannot set addresses",
                       os->name != NULL ? os->name : "?");
          return FALSE;
        }
      if (!os->set_address (a->handle, addrs[i], a->mtu, error))
        return FALSE;
      engine_log (G_LOG_LEVEL_INFO, NULL, NULL, "peer %s: adapter %s: address %s", a->peer, a->ifname,
                  prefix_format (addrs[i], buf, sizeof buf));
    }
  return TRUE;
}

/* What modike connect shows next to the stages: "modike0 10.9.0.17/32",
 * "10.1.0.0/16 10.2.0.0/16" (a full tunnel is many prefixes: counted). */
static void
report_adapter_up (ModikeIkeSa *sa, const EngineAdapter *a, const ModikeSaResult *r)
{
  g_autoptr (GString) s = g_string_new (a->ifname);
  const ModikePrefix *addrs[] = { &r->addr4, &r->addr6 };
  char buf[MODIKE_ADDR_STRLEN + 8];

  for (guint i = 0; i < G_N_ELEMENTS (addrs); i++)
    if (addrs[i]->net.family != 0)
      g_string_append_printf (s, " %s", prefix_format (addrs[i], buf, sizeof buf));
  modike_ike_sa_report_stage_detail (sa, "adapter", s->str);
}

static void
report_routes_up (ModikeIkeSa *sa, const EngineAdapter *a)
{
  g_autoptr (GString) s = g_string_new (NULL);
  char buf[MODIKE_ADDR_STRLEN + 8];

  if (a->result_routes->len > 4)
    g_string_printf (s, "%u networks", a->result_routes->len);
  for (guint i = 0; i < a->result_routes->len && a->result_routes->len <= 4; i++)
    g_string_append_printf (s, "%s%s", i > 0 ? " " : "",
                            prefix_format (&g_array_index (a->result_routes, ModikePrefix, i), buf, sizeof buf));
  modike_ike_sa_report_stage_detail (sa, "routes", s->len > 0 ? s->str : "none");
}

gboolean
modike_ike_sa_set_result (ModikeIkeSa *sa, const ModikeSaResult *r, GError **error)
{
  ModikeIke *ike;
  const ModikeOsAdapterOps *os;
  EngineAdapter *a;
  gboolean created = FALSE;
  g_autoptr (GError) local = NULL;

  g_return_val_if_fail (sa != NULL && r != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  ike = sa->ike;
  os = os_ops (ike);
  if (sa->dead || sa->peer_name == NULL)
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "peer %s: the IKE SA is gone",
                   sa->peer_name != NULL ? sa->peer_name : "?");
      return FALSE;
    }
  if (os == NULL || engine_dp_ops (ike, NULL) == NULL)
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED,
                   "peer %s: a result needs %s, and none is loaded (list it in <plugins>)", sa->peer_name,
                   os == NULL ? "an OS adapter plugin (tun on Linux)" : "a running datapath plugin (esp_user)");
      return FALSE;
    }
  a = find_adapter (ike, sa->peer_name);
  if (a == NULL)
    {
      g_autofree char *ifname = free_ifname (ike);

      a = adapter_create (ike, sa->peer_name, ifname, NULL, error);
      if (a == NULL)
        return FALSE;
      a->dynamic = created = TRUE;
      g_ptr_array_add (ike->adapters, a);
    }
  if (!set_addresses (a, os, r, &local))
    {
      g_prefix_error (&local, "peer %s: adapter %s: ", a->peer, a->ifname);
      modike_ike_sa_report_stage (sa, "adapter", FALSE, local);
      if (created)
        {
          g_ptr_array_remove (ike->adapters, a);
          adapter_destroy (ike, a);
        }
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  if (a->result_sa != NULL && a->result_sa != sa)
    ELOG_INFO (sa, NULL, "result replaces the one of an older SA with the peer");
  g_clear_pointer (&a->result, modike_sa_result_free);
  a->result = result_copy (r);
  a->result_sa = sa;
  result_routes (r, &sa->remote, a->result_routes);
  /* The connect client shows the adapter and routes stages (host.h). */
  report_adapter_up (sa, a, r);
  apply_dns (ike, a, r);
  adapter_sync_routes (ike, a, ike->cfg);
  engine_instances_check_result (sa, r);
  engine_instances_sync (ike);
  report_routes_up (sa, a);
  return TRUE;
}

/* The result leaves a: a result's own adapter goes; a configured one
 * returns to its configured state (recreated if the result addressed it:
 * OS adapters cannot remove an address). */
static void
withdraw (ModikeIke *ike, EngineAdapter *a)
{
  const ModikePeerConfig *p = ike->cfg != NULL ? modike_config_find_peer (ike->cfg, a->peer) : NULL;
  gboolean addressed = a->result != NULL && (a->result->addr4.net.family != 0 || a->result->addr6.net.family != 0);
  guint index;

  engine_log (G_LOG_LEVEL_INFO, NULL, NULL, "peer %s: adapter %s: the result goes with its IKE SA", a->peer, a->ifname);
  if (a->dynamic || (addressed && p != NULL && p->has_adapter))
    {
      g_autoptr (GError) error = NULL;
      EngineAdapter *fresh = NULL;

      if (!g_ptr_array_find (ike->adapters, a, &index))
        return;
      g_ptr_array_remove_index (ike->adapters, index);
      adapter_destroy (ike, a);
      if (!(p != NULL && p->has_adapter))
        return;
      fresh = adapter_create (ike, p->name, NULL, p, &error);
      if (fresh == NULL)
        {
          engine_log (G_LOG_LEVEL_WARNING, NULL, NULL, "%s", error->message);
          return;
        }
      g_ptr_array_insert (ike->adapters, (gint) index, fresh);
      adapter_sync_routes (ike, fresh, ike->cfg);
      return;
    }
  apply_dns (ike, a, NULL);
  g_clear_pointer (&a->result, modike_sa_result_free);
  a->result_sa = NULL;
  g_array_set_size (a->result_routes, 0);
  adapter_sync_routes (ike, a, ike->cfg);
}

void
modike_ike_sa_clear_result (ModikeIkeSa *sa)
{
  g_return_if_fail (sa != NULL);
  for (guint i = sa->ike->adapters->len; i-- > 0;)
    {
      EngineAdapter *a = g_ptr_array_index (sa->ike->adapters, i);

      if (a->result_sa == sa)
        withdraw (sa->ike, a);
    }
  engine_instances_sync (sa->ike);
}

void
engine_adapters_sa_gone (ModikeIkeSa *sa)
{
  ModikeIke *ike = sa->ike;

  for (guint i = ike->adapters->len; i-- > 0;)
    {
      EngineAdapter *a = g_ptr_array_index (ike->adapters, i);
      g_autoptr (GPtrArray) sas = NULL;
      ModikeIkeSa *next;

      if (a->result_sa != sa)
        continue;
      sas = engine_sa_peer_sas (sa);
      next = engine_best_established (sas, sa);
      if (next != NULL)
        {
          /* Phase 1 rekeyed: the successor keeps what this SA set up. */
          a->result_sa = next;
          ELOG_INFO (next, NULL, "adapter %s: keeps the result of the replaced IKE SA", a->ifname);
          continue;
        }
      withdraw (ike, a);
    }
}

const ModikeSaResult *
engine_adapter_result (ModikeIke *ike, const char *peer, ModikeIkeSa **sa)
{
  EngineAdapter *a = find_adapter (ike, peer);

  if (a == NULL || a->result == NULL || a->result_sa == NULL || a->result_sa->dead)
    return NULL;
  *sa = a->result_sa;
  return a->result;
}
