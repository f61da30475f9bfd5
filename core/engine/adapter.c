/* Virtual adapters: for each peer with <adapter>, an interface made by the
 * OS adapter plugin (tun on Linux), addressed, with a route for every
 * remote selector of the peer's protect policies, its packet queues
 * attached to the datapath. Reloads keep unchanged adapters (their routes
 * follow the policies) and replace changed or removed ones. */
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
  GArray *routes;           /* ModikePrefix: the routes we added */
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

static void
add_range_except (GArray *out, int family, const guint8 *from, const guint8 *to, const ModikeAddr *except)
{
  gsize len = family == AF_INET ? 4 : 16;
  guint8 below[16], above[16];

  if (except == NULL || except->family != family || memcmp (except->addr, from, len) < 0 ||
      memcmp (except->addr, to, len) > 0)
    {
      add_range (out, family, from, to);
      return;
    }
  memcpy (below, except->addr, len);
  memcpy (above, except->addr, len);
  if (decrement (below, len) && memcmp (from, except->addr, len) < 0)
    add_range (out, family, from, below);
  if (increment (above, len) && memcmp (except->addr, to, len) < 0)
    add_range (out, family, above, to);
}

GArray *
engine_range_to_prefixes (const ModikeAddrRange *r, const ModikeAddr *except)
{
  GArray *out = g_array_new (FALSE, TRUE, sizeof (ModikePrefix));
  static const guint8 zero[16];
  guint8 ones[16];

  memset (ones, 0xff, sizeof ones);
  if (r->from.family == 0)
    {
      /* "any" on both sides of a policy: every address of both families. */
      add_range_except (out, AF_INET, zero, ones, except);
      add_range_except (out, AF_INET6, zero, ones, except);
    }
  else if (r->from.family == r->to.family)
    add_range_except (out, r->from.family, r->from.addr, r->to.addr, except);
  return out;
}

static gboolean
prefix_equal (const ModikePrefix *a, const ModikePrefix *b)
{
  return a->net.family == b->net.family && a->plen == b->plen &&
         memcmp (a->net.addr, b->net.addr, modike_addr_len (&a->net)) == 0;
}

static gboolean
prefix_in (const GArray *set, const ModikePrefix *p)
{
  for (guint i = 0; i < set->len; i++)
    if (prefix_equal (&g_array_index (set, ModikePrefix, i), p))
      return TRUE;
  return FALSE;
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
 * policies, less the peer's own address (its IKE and ESP packets must not
 * loop into the adapter). */
static GArray *
wanted_routes (const ModikeConfig *cfg, const ModikePeerConfig *peer)
{
  GArray *want = g_array_new (FALSE, TRUE, sizeof (ModikePrefix));

  for (guint i = 0; cfg->policies != NULL && i < cfg->policies->len; i++)
    {
      const ModikeSpdEntry *e = g_ptr_array_index (cfg->policies, i);
      g_autoptr (GArray) pre = NULL;

      if (e->action != MODIKE_SPD_PROTECT || g_strcmp0 (e->peer, peer->name) != 0)
        continue;
      pre = engine_range_to_prefixes (&e->remote, peer->remote.family != 0 ? &peer->remote : NULL);
      for (guint k = 0; k < pre->len; k++)
        if (!prefix_in (want, &g_array_index (pre, ModikePrefix, k)))
          g_array_append_val (want, g_array_index (pre, ModikePrefix, k));
    }
  return want;
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
  return p->has_adapter && g_strcmp0 (a->ifname, p->adapter_name) == 0 &&
         a->addr.net.family == p->adapter_addr.net.family && a->addr.plen == p->adapter_addr.plen &&
         memcmp (a->addr.net.addr, p->adapter_addr.net.addr, sizeof a->addr.net.addr) == 0 &&
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
  if (a->handle != NULL && os != NULL && os->destroy != NULL)
    {
      os->destroy (a->handle);
      engine_log (G_LOG_LEVEL_INFO, NULL, NULL, "peer %s: adapter %s removed", a->peer, a->ifname);
    }
  g_array_unref (a->routes);
  g_free (a->ifname);
  g_free (a->peer);
  g_free (a);
}

static EngineAdapter *
adapter_create (ModikeIke *ike, const ModikePeerConfig *p, GError **error)
{
  gpointer os_user = NULL;
  const ModikeOsAdapterOps *os = modike_registry_os_adapter (ike->registry, &os_user);
  gpointer dp_user = NULL;
  const ModikeDatapathOps *dp = engine_dp_ops (ike, &dp_user);
  EngineAdapter *a = g_new0 (EngineAdapter, 1);
  guint flags, n;
  g_autofree int *fds = NULL;
  char buf[MODIKE_ADDR_STRLEN + 8];

  a->peer = g_strdup (p->name);
  a->ifname = g_strdup (p->adapter_name);
  a->addr = p->adapter_addr;
  a->mtu = p->adapter_mtu != 0 ? p->adapter_mtu : DEFAULT_MTU;
  a->queues = MAX (p->adapter_queues, 1u);
  a->offload = p->adapter_offload;
  a->routes = g_array_new (FALSE, TRUE, sizeof (ModikePrefix));
  if (dp == NULL)
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "peer %s: adapter %s: the datapath is not running",
                   p->name, a->ifname);
      goto fail;
    }
  if (os->create == NULL || os->get_fd == NULL)
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED,
                   "peer %s: adapter %s: OS adapter %s cannot create interfaces", p->name, a->ifname,
                   os->name != NULL ? os->name : "?");
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
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED,
                   "peer %s: adapter %s: datapath %s takes no adapters", p->name, a->ifname,
                   dp->name != NULL ? dp->name : "?");
      goto fail;
    }
  if (!dp->adapter_attach (dp_user, a->peer, fds, n, flags, error))
    goto fail;
  a->attached = TRUE;
  engine_log (G_LOG_LEVEL_INFO, NULL, NULL, "peer %s: adapter %s up (%s, mtu %u, %u queue%s%s)", p->name, a->ifname,
              a->addr.net.family != 0 ? prefix_format (&a->addr, buf, sizeof buf) : "no address", a->mtu, n,
              n == 1 ? "" : "s", (flags & MODIKE_ADAPTER_VNET_HDR) ? ", offloads" : "");
  return a;

fail:
  g_prefix_error (error, "peer %s: adapter %s: ", p->name, a->ifname);
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

      if (p != NULL && same_settings (a, p))
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
      a = adapter_create (ike, p, error);
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

void
engine_adapters_sync_routes (ModikeIke *ike, const ModikeConfig *cfg)
{
  const ModikeOsAdapterOps *os = os_ops (ike);

  for (guint i = 0; os != NULL && i < ike->adapters->len; i++)
    {
      EngineAdapter *a = g_ptr_array_index (ike->adapters, i);
      const ModikePeerConfig *p = modike_config_find_peer (cfg, a->peer);
      g_autoptr (GArray) want = NULL;
      char buf[MODIKE_ADDR_STRLEN + 8];

      if (p == NULL)
        continue;
      want = wanted_routes (cfg, p);
      for (guint k = a->routes->len; k-- > 0;)
        {
          ModikePrefix r = g_array_index (a->routes, ModikePrefix, k);
          g_autoptr (GError) error = NULL;

          if (prefix_in (want, &r))
            continue;
          g_array_remove_index (a->routes, k);
          if (os->del_route != NULL && !os->del_route (a->handle, &r, &error))
            engine_log (G_LOG_LEVEL_WARNING, NULL, NULL, "peer %s: adapter %s: route %s not removed: %s", a->peer,
                        a->ifname, prefix_format (&r, buf, sizeof buf), error != NULL ? error->message : "failed");
          else
            engine_log (G_LOG_LEVEL_INFO, NULL, NULL, "peer %s: adapter %s: route %s removed", a->peer, a->ifname,
                        prefix_format (&r, buf, sizeof buf));
        }
      for (guint k = 0; k < want->len; k++)
        {
          const ModikePrefix *r = &g_array_index (want, ModikePrefix, k);
          g_autoptr (GError) error = NULL;

          if (prefix_in (a->routes, r))
            continue;
          /* The config is applied already: a route that fails is logged
           * and tried again at the next reload. */
          if (os->add_route == NULL || !os->add_route (a->handle, r, &error))
            {
              engine_log (G_LOG_LEVEL_WARNING, NULL, NULL, "peer %s: adapter %s: route %s not added: %s", a->peer,
                          a->ifname, prefix_format (r, buf, sizeof buf),
                          error != NULL ? error->message : "the OS adapter has no routes");
              continue;
            }
          g_array_append_val (a->routes, *r);
          engine_log (G_LOG_LEVEL_INFO, NULL, NULL, "peer %s: adapter %s: route %s", a->peer, a->ifname,
                      prefix_format (r, buf, sizeof buf));
        }
    }
}

void
engine_adapters_destroy_all (ModikeIke *ike)
{
  while (ike->adapters->len > 0)
    adapter_destroy (ike, g_ptr_array_steal_index (ike->adapters, ike->adapters->len - 1));
}
