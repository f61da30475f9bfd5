/* The TUN adapter: queues from /dev/net/tun, address, MTU and routes over
 * rtnetlink. The interface is never made persistent, so it dies with the
 * process; one that a crash left behind anyway (persistent, made by
 * someone else, or held open by a leftover process) is removed at create. */
#include "tun.h"
#include "dns.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/rtnetlink.h>
#include <linux/virtio_net.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define TUN_DEVICE "/dev/net/tun"
#define TUN_MAX_QUEUES 256  /* the kernel's MAX_TAP_QUEUES */

struct _TunAdapter {
  char *name;
  guint32 index;
  int *fds;
  guint n_fds;
  guint flags;        /* ModikeAdapterFlags in effect */
  guint offloads;     /* TUN_F_* in effect */
  TunNetlink *nl;
  ModikePrefix addr4; /* ours, family 0 = none */
  ModikePrefix addr6;
  GArray *routes;     /* ModikePrefix: the routes we added */
  TunDns *dns;        /* the plugin's; NULL: no DNS (tests) */
  TunDnsBackend dns_backend;
};

static const guint default_offloads[] = {
  TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_USO4 | TUN_F_USO6,
  TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6,
};

static const char *
prefix_str (const ModikePrefix *p, char *buf, gsize size)
{
  char a[MODIKE_ADDR_STRLEN];
  ModikeAddr bare = p->net;

  bare.port = 0;
  g_snprintf (buf, size, "%s/%u", modike_addr_format (&bare, a, sizeof a), p->plen);
  return buf;
}

static gboolean
prefix_equal (const ModikePrefix *a, const ModikePrefix *b)
{
  return a->plen == b->plen && modike_addr_equal_ip (&a->net, &b->net);
}

static gboolean
valid_ifname (const char *name)
{
  gsize len = name != NULL ? strlen (name) : 0;

  if (len == 0 || len >= IFNAMSIZ || strcmp (name, ".") == 0 || strcmp (name, "..") == 0)
    return FALSE;
  /* '%' would make the kernel pick a name: the stale check needs ours. */
  for (const char *c = name; *c != '\0'; c++)
    if (*c == '/' || *c == ':' || *c == '%' || g_ascii_isspace (*c) || !g_ascii_isprint (*c))
      return FALSE;
  return TRUE;
}

static gboolean
valid_family (const ModikePrefix *p, const char *ifname, GError **error)
{
  if (p->net.family == AF_INET || p->net.family == AF_INET6)
    return TRUE;
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "%s: not an IPv4 or IPv6 prefix", ifname);
  return FALSE;
}

/* A link of our name: a TUN one is a leftover and goes; anything else is
 * someone's interface and is left alone. */
static gboolean
remove_stale (TunNetlink *nl, const char *name, GError **error)
{
  g_autofree char *ext = NULL;
  TunLinkInfo info;
  int err;

  err = tun_nl_link_get (nl, name, 0, &info, &ext);
  if (err == ENODEV)
    return TRUE;
  if (err != 0)
    {
      tun_nl_set_error (error, err, ext, "cannot look up interface %s", name);
      return FALSE;
    }
  if (strcmp (info.kind, "tun") != 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS,
                   "interface %s exists and is not a TUN device (%s%s): not touching it; choose another adapter name",
                   name, info.kind[0] != '\0' ? "kind " : "no link kind", info.kind);
      return FALSE;
    }
  g_message ("removing stale TUN interface %s (index %u, %s), left by an earlier run", name, info.index,
             info.has_tun_info && info.tun_persist ? "persistent" : "still held open");
  err = tun_nl_link_del (nl, info.index, &ext);
  if (err != 0 && err != ENODEV)
    {
      tun_nl_set_error (error, err, ext, "cannot remove stale TUN interface %s", name);
      return FALSE;
    }
  return TRUE;
}

/* One queue: a TUNSETIFF on a fresh fd, non-blocking and close-on-exec. */
static int
open_queue (const char *name, int tun_flags, guint queue, GError **error)
{
  struct ifreq ifr = { 0 };
  int fd, err;

  fd = open (TUN_DEVICE, O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0)
    {
      tun_nl_set_error (error, errno, NULL, "cannot open " TUN_DEVICE " for %s", name);
      return -1;
    }
  g_strlcpy (ifr.ifr_name, name, sizeof ifr.ifr_name);
  ifr.ifr_flags = (short) tun_flags;
  if (ioctl (fd, TUNSETIFF, &ifr) < 0)
    {
      err = errno;
      close (fd);
      if (queue == 0)
        tun_nl_set_error (error, err, NULL, "cannot create TUN interface %s", name);
      else
        tun_nl_set_error (error, err, NULL, "cannot attach queue %u to TUN interface %s", queue, name);
      return -1;
    }
  return fd;
}

/* The virtio header and the first offload set the kernel takes. The
 * settings are per device, so the first queue's fd is enough. */
static gboolean
set_offloads (int fd, const char *name, const guint *tries, gsize n_tries, guint *chosen, GError **error)
{
  int hdr_sz = sizeof (struct virtio_net_hdr);
  int err = EINVAL;

  if (ioctl (fd, TUNSETVNETHDRSZ, &hdr_sz) < 0)
    {
      tun_nl_set_error (error, errno, NULL, "cannot set the virtio header size on %s", name);
      return FALSE;
    }
  for (gsize i = 0; i < n_tries; i++)
    {
      if (ioctl (fd, TUNSETOFFLOAD, (unsigned long) tries[i]) == 0)
        {
          *chosen = tries[i];
          return TRUE;
        }
      err = errno;
      g_debug ("%s: offloads 0x%x refused: %s", name, tries[i], g_strerror (err));
    }
  tun_nl_set_error (error, err, NULL, "cannot set offloads on %s", name);
  return FALSE;
}

static void
close_fds (TunAdapter *a)
{
  for (guint i = 0; i < a->n_fds; i++)
    if (a->fds[i] >= 0)
      {
        close (a->fds[i]);
        a->fds[i] = -1;
      }
}

TunAdapter *
tun_adapter_new_full (const char *ifname, guint n_queues, guint flags, const guint *offloads, gsize n_offloads,
                      GError **error)
{
  g_autoptr (TunAdapter) a = NULL;
  g_autofree char *ext = NULL;
  TunLinkInfo info;
  int base, err;

  if (!valid_ifname (ifname))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "\"%s\" is not a valid interface name (1 to %d characters, no '/', ':', '%%' or spaces)",
                   ifname != NULL ? ifname : "(null)", IFNAMSIZ - 1);
      return NULL;
    }
  if (n_queues < 1 || n_queues > TUN_MAX_QUEUES)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "%s: %u queues asked, 1 to %d possible", ifname,
                   n_queues, TUN_MAX_QUEUES);
      return NULL;
    }

  a = g_new0 (TunAdapter, 1);
  a->name = g_strdup (ifname);
  a->fds = g_new (int, n_queues);
  a->n_fds = n_queues;
  for (guint i = 0; i < n_queues; i++)
    a->fds[i] = -1;
  a->routes = g_array_new (FALSE, FALSE, sizeof (ModikePrefix));
  a->nl = tun_netlink_new (error);
  if (a->nl == NULL || !remove_stale (a->nl, ifname, error))
    return NULL;

  base = IFF_TUN | IFF_NO_PI | (n_queues > 1 ? IFF_MULTI_QUEUE : 0);
  /* EXCL: should a device of our name appear since the check, fail
   * rather than share it. */
  if (flags & MODIKE_ADAPTER_VNET_HDR)
    {
      g_autoptr (GError) why = NULL;

      a->fds[0] = open_queue (ifname, base | IFF_VNET_HDR | IFF_TUN_EXCL, 0, error);
      if (a->fds[0] < 0)
        return NULL;
      if (set_offloads (a->fds[0], ifname, offloads, n_offloads, &a->offloads, &why))
        a->flags |= MODIKE_ADAPTER_VNET_HDR;
      else
        {
          /* The header flag is fixed at TUNSETIFF: start over without it.
           * Closing our only fd removes the device. */
          g_message ("%s: no GSO/GRO offloads (%s); queues carry plain IP packets", ifname, why->message);
          close_fds (a);
        }
    }
  if (a->fds[0] < 0)
    {
      a->fds[0] = open_queue (ifname, base | IFF_TUN_EXCL, 0, error);
      if (a->fds[0] < 0)
        return NULL;
    }
  if (a->flags & MODIKE_ADAPTER_VNET_HDR)
    base |= IFF_VNET_HDR;
  for (guint i = 1; i < n_queues; i++)
    {
      a->fds[i] = open_queue (ifname, base, i, error);
      if (a->fds[i] < 0)
        return NULL;
    }

  err = tun_nl_link_get (a->nl, ifname, 0, &info, &ext);
  if (err != 0)
    {
      tun_nl_set_error (error, err, ext, "cannot look up the new TUN interface %s", ifname);
      return NULL;
    }
  a->index = info.index;
  g_debug ("%s: TUN interface index %u, %u queue%s, offloads 0x%x", ifname, a->index, n_queues,
           n_queues > 1 ? "s" : "", a->offloads);
  return g_steal_pointer (&a);
}

TunAdapter *
tun_adapter_new (const char *ifname, guint n_queues, guint flags, GError **error)
{
  return tun_adapter_new_full (ifname, n_queues, flags, default_offloads, G_N_ELEMENTS (default_offloads), error);
}

/* IPv6 finishes a new address (its local route) on a kernel work queue
 * after the ack, even without DAD. Wait for it, so that packets to the
 * address are accepted as soon as set_address returns; it takes well
 * under a millisecond, the bound is for a kernel that never does it. */
#define TUN_LOCAL_WAIT_TRIES 2000
#define TUN_LOCAL_WAIT_US 500

static gboolean
wait_local (TunAdapter *a, const ModikePrefix *addr, GError **error)
{
  char buf[MODIKE_ADDR_STRLEN + 8];
  TunRouteInfo r;
  int err = 0;

  for (guint i = 0; i < TUN_LOCAL_WAIT_TRIES; i++)
    {
      g_autofree char *ext = NULL;
      err = tun_nl_route_get (a->nl, &addr->net, &r, &ext);
      if (err == 0 && r.type == RTN_LOCAL)
        {
          if (i > 0)
            g_debug ("%s: %s local after %u checks", a->name, prefix_str (addr, buf, sizeof buf), i + 1);
          return TRUE;
        }
      g_usleep (TUN_LOCAL_WAIT_US);
    }
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "address %s on %s did not become usable (%s)",
               prefix_str (addr, buf, sizeof buf), a->name, err != 0 ? g_strerror (err) : "not local");
  return FALSE;
}

static gboolean
remove_address (TunAdapter *a, const ModikePrefix *addr, GError **error)
{
  g_autofree char *ext = NULL;
  char buf[MODIKE_ADDR_STRLEN + 8];
  int err;

  err = tun_nl_addr (a->nl, FALSE, a->index, addr, &ext);
  if (err != 0 && err != EADDRNOTAVAIL)
    {
      tun_nl_set_error (error, err, ext, "cannot remove address %s from %s", prefix_str (addr, buf, sizeof buf), a->name);
      return FALSE;
    }
  return TRUE;
}

gboolean
tun_adapter_set_address (TunAdapter *a, const ModikePrefix *addr, guint mtu, GError **error)
{
  g_autofree char *ext = NULL;
  char buf[MODIKE_ADDR_STRLEN + 8];
  ModikePrefix *slot;
  ModikePrefix old;
  int err;

  g_return_val_if_fail (a != NULL, FALSE);
  if (addr != NULL && addr->net.family != 0 && !valid_family (addr, a->name, error))
    return FALSE;
  err = tun_nl_link_set (a->nl, a->index, mtu, TRUE, &ext);
  if (err != 0)
    {
      if (mtu > 0)
        tun_nl_set_error (error, err, ext, "cannot set MTU %u on %s and bring it up", mtu, a->name);
      else
        tun_nl_set_error (error, err, ext, "cannot bring %s up", a->name);
      return FALSE;
    }
  if (addr == NULL || addr->net.family == 0)
    return TRUE;

  slot = addr->net.family == AF_INET ? &a->addr4 : &a->addr6;
  old = *slot;
  if (old.net.family != 0 && prefix_equal (&old, addr))
    return TRUE;
  /* Same address, another prefix length: the kernel keys IPv6 addresses
   * by the address alone, so the old one goes first. */
  if (old.net.family != 0 && modike_addr_equal_ip (&old.net, &addr->net))
    {
      if (!remove_address (a, &old, error))
        return FALSE;
      slot->net.family = 0;
      old.net.family = 0;
    }
  err = tun_nl_addr (a->nl, TRUE, a->index, addr, &ext);
  if (err != 0)
    {
      tun_nl_set_error (error, err, ext, "cannot add address %s to %s", prefix_str (addr, buf, sizeof buf), a->name);
      return FALSE;
    }
  *slot = *addr;
  if (addr->net.family == AF_INET6 && !wait_local (a, addr, error))
    return FALSE;
  /* The new address is in place before the old one goes. */
  if (old.net.family != 0 && !remove_address (a, &old, error))
    return FALSE;
  return TRUE;
}

static gint
find_route (TunAdapter *a, const ModikePrefix *dst)
{
  for (guint i = 0; i < a->routes->len; i++)
    if (prefix_equal (&g_array_index (a->routes, ModikePrefix, i), dst))
      return (gint) i;
  return -1;
}

/* After EEXIST: is the route that exists one through us? Another one
 * would send what should be protected out elsewhere, so that is an error. */
static gboolean
route_is_ours (TunAdapter *a, const ModikePrefix *dst, GError **error)
{
  g_autoptr (GArray) routes = g_array_new (FALSE, FALSE, sizeof (TunRouteInfo));
  g_autofree char *ext = NULL;
  char buf[MODIKE_ADDR_STRLEN + 8];
  int err;

  err = tun_nl_route_dump (a->nl, dst->net.family, routes, &ext);
  if (err != 0)
    {
      tun_nl_set_error (error, err, ext, "cannot list routes to check %s on %s", prefix_str (dst, buf, sizeof buf),
                        a->name);
      return FALSE;
    }
  for (guint i = 0; i < routes->len; i++)
    {
      const TunRouteInfo *r = &g_array_index (routes, TunRouteInfo, i);
      if (r->table == RT_TABLE_MAIN && r->dst_len == dst->plen && r->oif == a->index
          && memcmp (r->dst, dst->net.addr, modike_addr_len (&dst->net)) == 0)
        return TRUE;
    }
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS,
               "cannot route %s into %s: a route to it through another interface exists already",
               prefix_str (dst, buf, sizeof buf), a->name);
  return FALSE;
}

gboolean
tun_adapter_add_route (TunAdapter *a, const ModikePrefix *dst, GError **error)
{
  g_autofree char *ext = NULL;
  char buf[MODIKE_ADDR_STRLEN + 8];
  int err;

  g_return_val_if_fail (a != NULL && dst != NULL, FALSE);
  if (!valid_family (dst, a->name, error))
    return FALSE;
  err = tun_nl_route (a->nl, TRUE, a->index, dst, &ext);
  if (err == EEXIST)
    {
      /* Ours already (asked twice, or the prefix route of our address). */
      if (find_route (a, dst) >= 0)
        return TRUE;
      if (!route_is_ours (a, dst, error))
        return FALSE;
      g_debug ("%s: route to %s exists already", a->name, prefix_str (dst, buf, sizeof buf));
      return TRUE;
    }
  if (err != 0)
    {
      tun_nl_set_error (error, err, ext, "cannot add route to %s via %s", prefix_str (dst, buf, sizeof buf), a->name);
      return FALSE;
    }
  g_array_append_val (a->routes, *dst);
  return TRUE;
}

gboolean
tun_adapter_del_route (TunAdapter *a, const ModikePrefix *dst, GError **error)
{
  g_autofree char *ext = NULL;
  char buf[MODIKE_ADDR_STRLEN + 8];
  gint at;
  int err;

  g_return_val_if_fail (a != NULL && dst != NULL, FALSE);
  if (!valid_family (dst, a->name, error))
    return FALSE;
  at = find_route (a, dst);
  err = tun_nl_route (a->nl, FALSE, a->index, dst, &ext);
  /* One of ours that someone else removed is gone all the same. */
  if (err != 0 && !(err == ESRCH && at >= 0))
    {
      tun_nl_set_error (error, err, ext, "cannot delete route to %s via %s", prefix_str (dst, buf, sizeof buf), a->name);
      return FALSE;
    }
  if (at >= 0)
    g_array_remove_index_fast (a->routes, (guint) at);
  return TRUE;
}

void
tun_adapter_free (TunAdapter *a)
{
  char buf[MODIKE_ADDR_STRLEN + 8];
  TunLinkInfo info;

  if (a == NULL)
    return;
  /* The core clears first; should a user of the ops not, resolv.conf
   * must still lose our servers. */
  if (a->dns != NULL)
    tun_dns_clear (a->dns, &a->dns_backend, a->name, a->index);
  /* Best effort: each step is logged, none stops the next. */
  if (a->nl != NULL && a->index != 0)
    {
      const ModikePrefix *addrs[] = { &a->addr4, &a->addr6 };
      int err;

      for (guint i = 0; i < a->routes->len; i++)
        {
          g_autofree char *ext = NULL;
          const ModikePrefix *r = &g_array_index (a->routes, ModikePrefix, i);
          err = tun_nl_route (a->nl, FALSE, a->index, r, &ext);
          if (err != 0)
            g_debug ("%s: removing route to %s: %s", a->name, prefix_str (r, buf, sizeof buf), g_strerror (err));
        }
      for (guint i = 0; i < G_N_ELEMENTS (addrs); i++)
        {
          g_autofree char *ext = NULL;
          if (addrs[i]->net.family == 0)
            continue;
          err = tun_nl_addr (a->nl, FALSE, a->index, addrs[i], &ext);
          if (err != 0)
            g_debug ("%s: removing address %s: %s", a->name, prefix_str (addrs[i], buf, sizeof buf),
                     g_strerror (err));
        }
    }
  close_fds (a);
  /* Closing the last queue removes the device, unless another process
   * holds a queue (a forked child): then delete it ourselves. */
  if (a->nl != NULL && a->index != 0)
    {
      g_autofree char *ext = NULL;
      int err = tun_nl_link_get (a->nl, NULL, a->index, &info, &ext);
      if (err == 0 && strcmp (info.name, a->name) == 0 && strcmp (info.kind, "tun") == 0)
        {
          err = tun_nl_link_del (a->nl, a->index, &ext);
          if (err != 0 && err != ENODEV)
            g_warning ("cannot remove TUN interface %s: %s", a->name, g_strerror (err));
        }
      else if (err != 0 && err != ENODEV)
        g_debug ("%s: looking it up at teardown: %s", a->name, g_strerror (err));
    }
  g_clear_pointer (&a->nl, tun_netlink_free);
  g_clear_pointer (&a->routes, g_array_unref);
  g_free (a->fds);
  g_free (a->name);
  g_free (a);
}

int
tun_adapter_get_fd (TunAdapter *a, guint queue)
{
  g_return_val_if_fail (a != NULL, -1);
  return queue < a->n_fds ? a->fds[queue] : -1;
}

guint
tun_adapter_get_n_queues (TunAdapter *a)
{
  return a->n_fds;
}

guint
tun_adapter_get_flags (TunAdapter *a)
{
  return a->flags;
}

guint
tun_adapter_get_offloads (TunAdapter *a)
{
  return a->offloads;
}

const char *
tun_adapter_get_name (TunAdapter *a)
{
  return a->name;
}

guint32
tun_adapter_get_index (TunAdapter *a)
{
  return a->index;
}

/* ---- The registered operations ---- */

static gpointer
op_create (gpointer user, const char *ifname, guint n_queues, guint flags, GError **error)
{
  TunAdapter *a = tun_adapter_new (ifname, n_queues, flags, error);

  if (a != NULL)
    a->dns = user;
  return a;
}

static gboolean
op_set_address (gpointer adapter, const ModikePrefix *addr, guint mtu, GError **error)
{
  return tun_adapter_set_address (adapter, addr, mtu, error);
}

static gboolean
op_add_route (gpointer adapter, const ModikePrefix *dst, GError **error)
{
  return tun_adapter_add_route (adapter, dst, error);
}

static gboolean
op_del_route (gpointer adapter, const ModikePrefix *dst, GError **error)
{
  return tun_adapter_del_route (adapter, dst, error);
}

static gboolean
op_set_dns (gpointer adapter, const ModikeAddr *servers, guint n_servers, const char *const *domains, GError **error)
{
  TunAdapter *a = adapter;

  if (a->dns == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED, "%s: made without the plugin's DNS", a->name);
      return FALSE;
    }
  return tun_dns_set (a->dns, &a->dns_backend, a->name, a->index, servers, n_servers, domains, error);
}

static void
op_clear_dns (gpointer adapter)
{
  TunAdapter *a = adapter;

  if (a->dns != NULL)
    tun_dns_clear (a->dns, &a->dns_backend, a->name, a->index);
}

static void
op_destroy (gpointer adapter)
{
  tun_adapter_free (adapter);
}

static int
op_get_fd (gpointer adapter, guint queue)
{
  return tun_adapter_get_fd (adapter, queue);
}

static guint
op_get_n_queues (gpointer adapter)
{
  return tun_adapter_get_n_queues (adapter);
}

static guint
op_get_flags (gpointer adapter)
{
  return tun_adapter_get_flags (adapter);
}

static const char *
op_get_name (gpointer adapter)
{
  return tun_adapter_get_name (adapter);
}

const ModikeOsAdapterOps tun_adapter_ops = {
  .name = "tun",
  .create = op_create,
  .set_address = op_set_address,
  .add_route = op_add_route,
  .del_route = op_del_route,
  .destroy = op_destroy,
  .get_fd = op_get_fd,
  .get_n_queues = op_get_n_queues,
  .get_flags = op_get_flags,
  .get_name = op_get_name,
  .set_dns = op_set_dns,
  .clear_dns = op_clear_dns,
};

gboolean
tun_init (ModikePlugin *plugin, GError **error)
{
  TunDns *dns = tun_dns_new ();

  /* Freed at unload, after the core destroyed the adapters. */
  modike_plugin_set_data (plugin, dns, (GDestroyNotify) tun_dns_free);
  return modike_register_os_adapter (plugin, &tun_adapter_ops, dns, error)
         && tun_dns_register_config (dns, plugin, error);
}
