/* tun: the adapter against the real kernel, inside a network namespace of
 * the test's own (so the host's interfaces are never touched): queues,
 * offloads, addresses, MTU, routes, packets both ways through the kernel,
 * teardown, stale leftovers, foreign links; the netlink attribute parser
 * against malformed input; the plugin through the loader. Needs root and
 * /dev/net/tun: without them every kernel test fails, saying why. */
#include "tun.h"
#include "loader.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/if_tun.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <linux/virtio_net.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

/* A guard so a lost packet fails the test instead of hanging it. */
#define WAIT_MS 5000

static char *prereq_error;   /* why the namespace could not be set up */
static TunNetlink *nl;       /* the test's own view of the kernel */

static gboolean
prereq (void)
{
  if (prereq_error != NULL)
    {
      g_test_fail_printf ("%s", prereq_error);
      return FALSE;
    }
  return TRUE;
}

static void
setup_netns (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *ext = NULL;
  TunLinkInfo lo;
  int err;

  if (geteuid () != 0)
    {
      prereq_error = g_strdup ("the tun tests need root (a network namespace and TUN devices)");
      return;
    }
  if (access ("/dev/net/tun", R_OK | W_OK) != 0)
    {
      prereq_error = g_strdup_printf ("the tun tests need /dev/net/tun: %s", g_strerror (errno));
      return;
    }
  if (unshare (CLONE_NEWNET) != 0)
    {
      prereq_error = g_strdup_printf ("cannot enter a new network namespace: %s", g_strerror (errno));
      return;
    }
  nl = tun_netlink_new (&error);
  if (nl == NULL)
    {
      prereq_error = g_strdup (error->message);
      return;
    }
  err = tun_nl_link_get (nl, "lo", 0, &lo, &ext);
  if (err == 0)
    err = tun_nl_link_set (nl, lo.index, 0, TRUE, &ext);
  if (err != 0)
    prereq_error = g_strdup_printf ("cannot bring lo up in the test namespace: %s", g_strerror (err));
}

/* ---- Helpers ---- */

static ModikePrefix
pfx (const char *text)
{
  g_autoptr (GError) error = NULL;
  ModikePrefix p;

  g_assert_true (modike_prefix_parse (text, &p, &error));
  g_assert_no_error (error);
  return p;
}

static int
link_get (const char *name, TunLinkInfo *info)
{
  g_autofree char *ext = NULL;

  return tun_nl_link_get (nl, name, 0, info, &ext);
}

static GArray *
routes_dump (int family)
{
  GArray *out = g_array_new (FALSE, FALSE, sizeof (TunRouteInfo));
  g_autofree char *ext = NULL;

  g_assert_cmpint (tun_nl_route_dump (nl, family, out, &ext), ==, 0);
  return out;
}

/* Routes in the main table to exactly this prefix through oif. */
static guint
count_routes (const ModikePrefix *p, guint32 oif, TunRouteInfo *found)
{
  g_autoptr (GArray) all = routes_dump (p->net.family);
  guint n = 0;

  for (guint i = 0; i < all->len; i++)
    {
      const TunRouteInfo *r = &g_array_index (all, TunRouteInfo, i);
      if (r->table == RT_TABLE_MAIN && r->dst_len == p->plen && r->oif == oif
          && memcmp (r->dst, p->net.addr, modike_addr_len (&p->net)) == 0)
        {
          if (found != NULL)
            *found = *r;
          n++;
        }
    }
  return n;
}

/* Routes of ours (protocol TUN_RTPROT) through oif, both families. */
static guint
count_our_routes (guint32 oif)
{
  static const int families[] = { AF_INET, AF_INET6 };
  guint n = 0;

  for (guint f = 0; f < G_N_ELEMENTS (families); f++)
    {
      g_autoptr (GArray) all = routes_dump (families[f]);
      for (guint i = 0; i < all->len; i++)
        {
          const TunRouteInfo *r = &g_array_index (all, TunRouteInfo, i);
          if (r->protocol == TUN_RTPROT && r->oif == oif)
            n++;
        }
    }
  return n;
}

/* The address on link index, if there (flags into *flags). */
static gboolean
has_addr (guint32 index, const ModikePrefix *p, guint32 *flags)
{
  g_autoptr (GArray) all = g_array_new (FALSE, FALSE, sizeof (TunAddrInfo));
  g_autofree char *ext = NULL;

  g_assert_cmpint (tun_nl_addr_dump (nl, p->net.family, all, &ext), ==, 0);
  for (guint i = 0; i < all->len; i++)
    {
      const TunAddrInfo *a = &g_array_index (all, TunAddrInfo, i);
      if (a->index == index && a->family == p->net.family && a->plen == p->plen
          && memcmp (a->addr, p->net.addr, modike_addr_len (&p->net)) == 0)
        {
          if (flags != NULL)
            *flags = a->flags;
          return TRUE;
        }
    }
  return FALSE;
}

static void
assert_fd_flags (int fd)
{
  int fl = fcntl (fd, F_GETFL), fdfl = fcntl (fd, F_GETFD);

  g_assert_cmpint (fl, >=, 0);
  g_assert_cmpint (fdfl, >=, 0);
  g_assert_true (fl & O_NONBLOCK);
  g_assert_true (fdfl & FD_CLOEXEC);
}

static guint32
sum16 (guint32 s, const guint8 *p, gsize n)
{
  for (gsize i = 0; i + 1 < n; i += 2)
    s += (guint32) (p[i] << 8 | p[i + 1]);
  if (n & 1)
    s += (guint32) p[n - 1] << 8;
  return s;
}

static guint16
fold (guint32 s)
{
  while (s >> 16)
    s = (s & 0xffff) + (s >> 16);
  return (guint16) ~s;
}

/* An IPv4 or IPv6 UDP datagram with correct checksums. */
static GByteArray *
build_udp (const ModikeAddr *src, const ModikeAddr *dst, const char *payload)
{
  GByteArray *b = g_byte_array_new ();
  gsize plen = strlen (payload), ulen = 8 + plen, alen = modike_addr_len (src);
  guint32 s;
  guint16 c;
  gsize udp_at;

  if (src->family == AF_INET)
    {
      modike_put_u8 (b, 0x45);
      modike_put_u8 (b, 0);
      modike_put_u16 (b, (guint16) (20 + ulen));
      modike_put_u32 (b, 0x12344000);  /* id, DF */
      modike_put_u8 (b, 64);
      modike_put_u8 (b, IPPROTO_UDP);
      modike_put_u16 (b, 0);
      modike_put_bytes (b, src->addr, 4);
      modike_put_bytes (b, dst->addr, 4);
      modike_patch_u16 (b, 10, fold (sum16 (0, b->data, 20)));
    }
  else
    {
      modike_put_u32 (b, 0x60000000);
      modike_put_u16 (b, (guint16) ulen);
      modike_put_u8 (b, IPPROTO_UDP);
      modike_put_u8 (b, 64);
      modike_put_bytes (b, src->addr, 16);
      modike_put_bytes (b, dst->addr, 16);
    }
  udp_at = b->len;
  modike_put_u16 (b, src->port);
  modike_put_u16 (b, dst->port);
  modike_put_u16 (b, (guint16) ulen);
  modike_put_u16 (b, 0);
  modike_put_bytes (b, payload, plen);
  /* Pseudo-header: addresses, protocol, UDP length. */
  s = sum16 (0, src->addr, alen);
  s = sum16 (s, dst->addr, alen);
  s += IPPROTO_UDP + (guint32) ulen;
  s = sum16 (s, b->data + udp_at, ulen);
  c = fold (s);
  modike_patch_u16 (b, udp_at + 6, c == 0 ? 0xffff : c);
  return b;
}

/* The UDP datagram to dst that the kernel routed into the adapter: polls
 * every queue, skips other packets (IPv6 MLD and router solicitations
 * appear once the link is up). Returns the source address and payload. */
static gboolean
read_routed (TunAdapter *a, const ModikeAddr *dst, ModikeAddr *src, char *payload, gsize size)
{
  guint n = tun_adapter_get_n_queues (a);
  gboolean vnet = (tun_adapter_get_flags (a) & MODIKE_ADAPTER_VNET_HDR) != 0;
  g_autofree guint8 *buf = g_malloc (70000);
  struct pollfd pfd[8];

  g_assert_cmpuint (n, <=, G_N_ELEMENTS (pfd));
  for (;;)
    {
      int ready;

      for (guint i = 0; i < n; i++)
        pfd[i] = (struct pollfd) { .fd = tun_adapter_get_fd (a, i), .events = POLLIN };
      ready = poll (pfd, n, WAIT_MS);
      g_assert_cmpint (ready, >=, 0);
      if (ready == 0)
        return FALSE;
      for (guint i = 0; i < n; i++)
        {
          ModikeReader r, udp;
          ssize_t got;
          guint8 v, proto, ihl;
          const guint8 *s, *d;
          guint16 sport, dport, ulen, csum;
          gsize alen = modike_addr_len (dst);

          if (!(pfd[i].revents & POLLIN))
            continue;
          got = read (pfd[i].fd, buf, 70000);
          g_assert_cmpint (got, >, 0);
          modike_reader_init (&r, buf, (gsize) got);
          if (vnet)
            {
              struct virtio_net_hdr h;
              g_assert_true (modike_reader_copy (&r, &h, sizeof h));
              /* Small datagrams come unsegmented. */
              g_assert_cmpuint (h.gso_type, ==, VIRTIO_NET_HDR_GSO_NONE);
            }
          if (!modike_reader_u8 (&r, &v))
            continue;
          if ((v >> 4) == 4 && dst->family == AF_INET)
            {
              ihl = (guint8) ((v & 0xf) * 4);
              if (ihl < 20 || !modike_reader_skip (&r, 8) || !modike_reader_u8 (&r, &proto)
                  || !modike_reader_skip (&r, 2) || !modike_reader_bytes (&r, 4, &s) || !modike_reader_bytes (&r, 4, &d)
                  || !modike_reader_skip (&r, ihl - 20u))
                continue;
            }
          else if ((v >> 4) == 6 && dst->family == AF_INET6)
            {
              if (!modike_reader_skip (&r, 5) || !modike_reader_u8 (&r, &proto) || !modike_reader_skip (&r, 1)
                  || !modike_reader_bytes (&r, 16, &s) || !modike_reader_bytes (&r, 16, &d))
                continue;
            }
          else
            continue;
          if (proto != IPPROTO_UDP || memcmp (d, dst->addr, alen) != 0)
            {
              g_test_message ("skipped a packet (protocol %u) on queue %u", proto, i);
              continue;
            }
          if (!modike_reader_u16 (&r, &sport) || !modike_reader_u16 (&r, &dport) || !modike_reader_u16 (&r, &ulen)
              || !modike_reader_u16 (&r, &csum) || dport != dst->port || ulen < 8
              || !modike_reader_sub (&r, ulen - 8u, &udp) || modike_reader_left (&udp) >= size)
            continue;
          src->family = dst->family;
          memcpy (src->addr, s, alen);
          src->port = sport;
          g_assert_true (modike_reader_copy (&udp, payload, ulen - 8u));
          payload[ulen - 8u] = '\0';
          g_test_message ("routed datagram arrived on queue %u", i);
          return TRUE;
        }
    }
}

static int
udp_socket (const ModikeAddr *bind_to)
{
  struct sockaddr_storage ss;
  socklen_t sl;
  int fd = socket (bind_to->family, SOCK_DGRAM | SOCK_CLOEXEC, 0);

  g_assert_cmpint (fd, >=, 0);
  modike_addr_to_sockaddr (bind_to, &ss, &sl);
  g_assert_cmpint (bind (fd, (struct sockaddr *) &ss, sl), ==, 0);
  return fd;
}

/* A local socket's datagram to an address routed into the adapter comes
 * out of one of its queues, from the adapter's own address. */
static void
check_outbound (TunAdapter *a, const char *local, const char *remote)
{
  ModikeAddr any, dst, want_src, src;
  struct sockaddr_storage ss;
  socklen_t sl;
  char got[256];
  g_autofree char *msg = g_strdup_printf ("out %s %s", tun_adapter_get_name (a), remote);
  int fd;

  g_assert_true (modike_addr_parse (remote, 7777, &dst, NULL));
  g_assert_true (modike_addr_parse (local, 0, &want_src, NULL));
  any = (ModikeAddr) { .family = dst.family };
  fd = udp_socket (&any);
  modike_addr_to_sockaddr (&dst, &ss, &sl);
  g_assert_cmpint (sendto (fd, msg, strlen (msg), 0, (struct sockaddr *) &ss, sl), ==, (ssize_t) strlen (msg));
  g_assert_true (read_routed (a, &dst, &src, got, sizeof got));
  g_assert_cmpstr (got, ==, msg);
  g_assert_true (modike_addr_equal_ip (&src, &want_src));
  close (fd);
}

/* A datagram written into a queue, to the adapter's own address, reaches
 * a socket bound there. */
static void
check_inbound (TunAdapter *a, guint queue, const char *local, const char *remote)
{
  ModikeAddr bind_to, src, from;
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  struct pollfd pfd;
  char got[256];
  g_autofree char *msg = g_strdup_printf ("in %s %s q%u", tun_adapter_get_name (a), local, queue);
  g_autoptr (GByteArray) pkt = NULL;
  g_autoptr (GByteArray) out = g_byte_array_new ();
  ssize_t n;
  int fd;

  g_assert_true (modike_addr_parse (local, 0, &bind_to, NULL));
  g_assert_true (modike_addr_parse (remote, 7777, &src, NULL));
  fd = udp_socket (&bind_to);
  g_assert_cmpint (getsockname (fd, (struct sockaddr *) &ss, &sl), ==, 0);
  g_assert_true (modike_addr_from_sockaddr ((struct sockaddr *) &ss, sl, &bind_to));
  pkt = build_udp (&src, &bind_to, msg);
  if (tun_adapter_get_flags (a) & MODIKE_ADAPTER_VNET_HDR)
    {
      struct virtio_net_hdr h = { .gso_type = VIRTIO_NET_HDR_GSO_NONE };
      g_byte_array_append (out, (const guint8 *) &h, sizeof h);
    }
  g_byte_array_append (out, pkt->data, pkt->len);
  g_assert_cmpint (write (tun_adapter_get_fd (a, queue), out->data, out->len), ==, (ssize_t) out->len);

  pfd = (struct pollfd) { .fd = fd, .events = POLLIN };
  g_assert_cmpint (poll (&pfd, 1, WAIT_MS), ==, 1);
  sl = sizeof ss;
  n = recvfrom (fd, got, sizeof got - 1, 0, (struct sockaddr *) &ss, &sl);
  g_assert_cmpint (n, ==, (ssize_t) strlen (msg));
  got[n] = '\0';
  g_assert_cmpstr (got, ==, msg);
  g_assert_true (modike_addr_from_sockaddr ((struct sockaddr *) &ss, sl, &from));
  g_assert_true (modike_addr_equal (&from, &src));
  close (fd);
}

static void
assert_gone (const char *name, guint32 index)
{
  TunLinkInfo info;

  g_assert_cmpint (link_get (name, &info), ==, ENODEV);
  g_assert_cmpuint (count_our_routes (index), ==, 0);
}

/* Steps that must succeed, each failing the test where it does not. */
static TunAdapter *
adapter_new_ok (const char *name, guint queues, guint flags)
{
  g_autoptr (GError) error = NULL;
  TunAdapter *a = tun_adapter_new (name, queues, flags, &error);

  g_assert_no_error (error);
  g_assert_nonnull (a);
  return a;
}

static void
set_address_ok (TunAdapter *a, const ModikePrefix *p, guint mtu)
{
  g_autoptr (GError) error = NULL;

  g_assert_true (tun_adapter_set_address (a, p, mtu, &error));
  g_assert_no_error (error);
}

static void
add_route_ok (TunAdapter *a, const ModikePrefix *p)
{
  g_autoptr (GError) error = NULL;

  g_assert_true (tun_adapter_add_route (a, p, &error));
  g_assert_no_error (error);
}

static void
del_route_ok (TunAdapter *a, const ModikePrefix *p)
{
  g_autoptr (GError) error = NULL;

  g_assert_true (tun_adapter_del_route (a, p, &error));
  g_assert_no_error (error);
}

static void
assert_mtu (const char *name, guint mtu)
{
  TunLinkInfo info;

  g_assert_cmpint (link_get (name, &info), ==, 0);
  g_assert_cmpuint (info.mtu, ==, mtu);
}

/* A TUN device of this name left open (and persistent if asked) as
 * someone else's leftover; returns its fd. */
static int
leftover_tun (const char *name, gboolean persist)
{
  struct ifreq ifr = { 0 };
  int fd = open ("/dev/net/tun", O_RDWR | O_CLOEXEC);

  g_assert_cmpint (fd, >=, 0);
  g_strlcpy (ifr.ifr_name, name, sizeof ifr.ifr_name);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  g_assert_cmpint (ioctl (fd, TUNSETIFF, &ifr), ==, 0);
  if (persist)
    g_assert_cmpint (ioctl (fd, TUNSETPERSIST, 1), ==, 0);
  return fd;
}

/* ---- Tests ---- */

typedef struct {
  guint queues;
  gboolean vnet;
} Shape;

/* The whole life of an adapter in each shape. */
static void
test_lifecycle (gconstpointer data)
{
  const Shape *shape = data;
  g_autofree char *name = g_strdup_printf ("mkt-q%u%s", shape->queues, shape->vnet ? "v" : "");
  ModikePrefix a4 = pfx ("198.51.100.1/32"), a6 = pfx ("2001:db8:1::1/128");
  ModikePrefix r4 = pfx ("203.0.113.0/24"), r6 = pfx ("2001:db8:2::/64");
  TunAdapter *a;
  TunLinkInfo info;
  guint32 index;

  if (!prereq ())
    return;
  a = adapter_new_ok (name, shape->queues, shape->vnet ? MODIKE_ADAPTER_VNET_HDR : 0);
  index = tun_adapter_get_index (a);
  g_assert_cmpstr (tun_adapter_get_name (a), ==, name);
  g_assert_cmpuint (tun_adapter_get_n_queues (a), ==, shape->queues);
  g_assert_cmpint (tun_adapter_get_fd (a, shape->queues), ==, -1);
  for (guint i = 0; i < shape->queues; i++)
    assert_fd_flags (tun_adapter_get_fd (a, i));

  /* What the kernel says about the device. */
  g_assert_cmpint (link_get (name, &info), ==, 0);
  g_assert_cmpuint (info.index, ==, index);
  g_assert_cmpstr (info.kind, ==, "tun");
  g_assert_true (info.has_tun_info);
  g_assert_cmpuint (info.tun_type, ==, IFF_TUN);
  g_assert_cmpuint (info.tun_pi, ==, 0);
  g_assert_cmpuint (info.tun_persist, ==, 0);
  g_assert_cmpuint (info.tun_multi_queue, ==, shape->queues > 1);
  /* The kernel reports the queue count for multi-queue devices only. */
  g_assert_cmpuint (info.tun_num_queues, ==, shape->queues > 1 ? shape->queues : 0);
  if (shape->vnet)
    {
      guint want = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
      g_assert_cmpuint (tun_adapter_get_flags (a), ==, MODIKE_ADAPTER_VNET_HDR);
      g_assert_cmpuint (tun_adapter_get_offloads (a) & want, ==, want);
      g_assert_cmpuint (info.tun_vnet_hdr, ==, 1);
      g_test_message ("offloads in effect: 0x%x", tun_adapter_get_offloads (a));
    }
  else
    {
      g_assert_cmpuint (tun_adapter_get_flags (a), ==, 0);
      g_assert_cmpuint (tun_adapter_get_offloads (a), ==, 0);
      g_assert_cmpuint (info.tun_vnet_hdr, ==, 0);
    }

  set_address_ok (a, &a4, 1400);
  set_address_ok (a, &a6, 1400);
  add_route_ok (a, &r4);
  add_route_ok (a, &r6);

  check_outbound (a, "198.51.100.1", "203.0.113.7");
  check_outbound (a, "2001:db8:1::1", "2001:db8:2::7");
  for (guint q = 0; q < shape->queues; q++)
    {
      check_inbound (a, q, "198.51.100.1", "203.0.113.7");
      check_inbound (a, q, "2001:db8:1::1", "2001:db8:2::7");
    }

  g_assert_cmpuint (count_our_routes (index), ==, 2);
  tun_adapter_free (a);
  assert_gone (name, index);
}

static void
test_address_mtu (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (TunAdapter) a = NULL;
  ModikePrefix v4 = pfx ("198.51.100.1/32"), v4b = pfx ("198.51.100.2/32"), v6 = pfx ("2001:db8:1::1/128");
  ModikePrefix v6net = pfx ("2001:db8:1::/64");
  ModikePrefix none = { 0 };
  TunLinkInfo info;
  guint32 flags = 0;
  guint32 index;

  if (!prereq ())
    return;
  a = adapter_new_ok ("mkt-addr", 1, 0);
  index = tun_adapter_get_index (a);
  g_assert_cmpint (link_get ("mkt-addr", &info), ==, 0);
  g_assert_false (info.flags & IFF_UP);

  set_address_ok (a, &v4, 1400);
  g_assert_cmpint (link_get ("mkt-addr", &info), ==, 0);
  g_assert_cmpuint (info.mtu, ==, 1400);
  g_assert_true (info.flags & IFF_UP);
  g_assert_true (has_addr (index, &v4, NULL));

  /* v6 without duplicate address detection: usable at once. */
  set_address_ok (a, &v6, 1280);
  assert_mtu ("mkt-addr", 1280);
  g_assert_true (has_addr (index, &v6, &flags));
  g_assert_true (flags & IFA_F_NODAD);
  g_assert_false (flags & IFA_F_TENTATIVE);
  g_assert_true (has_addr (index, &v4, NULL));  /* one per family */

  /* A new v4 address replaces ours; the same one again changes nothing. */
  set_address_ok (a, &v4b, 0);
  set_address_ok (a, &v4b, 0);
  g_assert_true (has_addr (index, &v4b, NULL));
  g_assert_false (has_addr (index, &v4, NULL));
  g_assert_true (has_addr (index, &v6, NULL));
  assert_mtu ("mkt-addr", 1280);

  /* No address: MTU only. */
  set_address_ok (a, &none, 1500);
  assert_mtu ("mkt-addr", 1500);

  /* A network address with a shorter prefix, in place of the host one. */
  set_address_ok (a, &v6net, 0);
  g_assert_true (has_addr (index, &v6net, NULL));
  g_assert_false (has_addr (index, &v6, NULL));

  /* The same address with another prefix length (host bits set, as
   * modike_prefix_parse would not give them). */
  {
    ModikePrefix v6_64 = v6, v4_24 = v4b;
    v6_64.plen = 64;
    v4_24.plen = 24;
    set_address_ok (a, &v6, 0);
    set_address_ok (a, &v6_64, 0);
    g_assert_true (has_addr (index, &v6_64, NULL));
    g_assert_false (has_addr (index, &v6, NULL));
    g_assert_false (has_addr (index, &v6net, NULL));
    set_address_ok (a, &v4_24, 0);
    g_assert_true (has_addr (index, &v4_24, NULL));
    g_assert_false (has_addr (index, &v4b, NULL));
  }

  /* The kernel's refusal names the interface and says why. */
  g_assert_false (tun_adapter_set_address (a, &v4, 10, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, "mkt-addr"));
  g_assert_nonnull (strstr (error->message, g_strerror (EINVAL)));
  assert_mtu ("mkt-addr", 1500);
}

static void
test_routes (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (TunAdapter) a = NULL;
  g_autoptr (TunAdapter) b = NULL;
  ModikePrefix r4 = pfx ("203.0.113.0/24"), r6 = pfx ("2001:db8:2::/64"), host = pfx ("192.0.2.77/32");
  ModikePrefix theirs = pfx ("192.0.2.0/25"), a4 = pfx ("198.51.100.1/32"), bad = { 0 }, none = { 0 };
  TunRouteInfo r;
  guint32 index;

  if (!prereq ())
    return;
  a = adapter_new_ok ("mkt-rt", 1, 0);
  index = tun_adapter_get_index (a);
  set_address_ok (a, &a4, 1400);

  add_route_ok (a, &r4);
  add_route_ok (a, &r6);
  add_route_ok (a, &host);

  g_assert_cmpuint (count_routes (&r4, index, &r), ==, 1);
  g_assert_cmpuint (r.protocol, ==, TUN_RTPROT);
  g_assert_cmpuint (r.scope, ==, RT_SCOPE_LINK);
  g_assert_cmpuint (r.type, ==, RTN_UNICAST);
  g_assert_cmpuint (count_routes (&r6, index, &r), ==, 1);
  g_assert_cmpuint (r.protocol, ==, TUN_RTPROT);
  g_assert_cmpuint (count_routes (&host, index, NULL), ==, 1);
  g_assert_cmpuint (count_our_routes (index), ==, 3);

  /* Twice is fine, and still one route. */
  add_route_ok (a, &r4);
  add_route_ok (a, &r6);
  g_assert_cmpuint (count_routes (&r4, index, NULL), ==, 1);
  g_assert_cmpuint (count_routes (&r6, index, NULL), ==, 1);

  del_route_ok (a, &r4);
  g_assert_cmpuint (count_routes (&r4, index, NULL), ==, 0);
  g_assert_cmpuint (count_routes (&r6, index, NULL), ==, 1);
  /* Deleting what is not there fails, naming the interface. */
  g_assert_false (tun_adapter_del_route (a, &r4, &error));
  g_assert_nonnull (error);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, "mkt-rt"));
  g_assert_nonnull (strstr (error->message, "203.0.113.0/24"));
  g_assert_nonnull (strstr (error->message, g_strerror (ESRCH)));
  g_clear_error (&error);
  del_route_ok (a, &r6);
  g_assert_cmpuint (count_routes (&r6, index, NULL), ==, 0);

  /* The same prefix already routed elsewhere: refused, not silently
   * left to carry what should be protected. */
  b = adapter_new_ok ("mkt-rt2", 1, 0);
  set_address_ok (b, &none, 0);
  add_route_ok (b, &theirs);
  g_assert_false (tun_adapter_add_route (a, &theirs, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, "mkt-rt"));
  g_clear_error (&error);
  g_assert_cmpuint (count_routes (&theirs, tun_adapter_get_index (b), NULL), ==, 1);

  /* The kernel's prefix route of our own address counts as ours. */
  {
    ModikePrefix a24 = a4, net24 = pfx ("198.51.100.0/24");
    a24.plen = 24;
    set_address_ok (a, &a24, 0);
    add_route_ok (a, &net24);
    g_assert_cmpuint (count_routes (&net24, index, &r), ==, 1);
    g_assert_cmpuint (r.protocol, ==, RTPROT_KERNEL);
  }

  g_assert_false (tun_adapter_add_route (a, &bad, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);

  /* Teardown removes the remaining one of ours, and only ours. */
  g_clear_pointer (&a, tun_adapter_free);
  assert_gone ("mkt-rt", index);
  g_assert_cmpuint (count_routes (&theirs, tun_adapter_get_index (b), NULL), ==, 1);
}

/* A queue still held elsewhere (a forked child) keeps the device alive;
 * teardown removes it anyway, routes and addresses with it. */
static void
test_destroy_held (void)
{
  ModikePrefix r4 = pfx ("203.0.113.0/24"), a4 = pfx ("198.51.100.1/32");
  TunAdapter *a;
  TunLinkInfo info;
  guint32 index;
  int held;

  if (!prereq ())
    return;
  a = adapter_new_ok ("mkt-held", 2, 0);
  index = tun_adapter_get_index (a);
  set_address_ok (a, &a4, 1400);
  add_route_ok (a, &r4);
  held = dup (tun_adapter_get_fd (a, 1));
  g_assert_cmpint (held, >=, 0);

  tun_adapter_free (a);
  assert_gone ("mkt-held", index);
  g_assert_false (has_addr (index, &a4, NULL));
  close (held);
  g_assert_cmpint (link_get ("mkt-held", &info), ==, ENODEV);
}

/* A persistent TUN of our name, as a crash of someone that set
 * TUNSETPERSIST leaves it: create removes it and makes its own. */
static void
test_stale_persistent (void)
{
  TunAdapter *a;
  TunLinkInfo info;
  guint32 old, index;

  if (!prereq ())
    return;
  close (leftover_tun ("mkt-stale", TRUE));
  g_assert_cmpint (link_get ("mkt-stale", &info), ==, 0);
  g_assert_cmpuint (info.tun_persist, ==, 1);
  old = info.index;

  /* Different queue count and flags than the leftover: no attaching. */
  a = adapter_new_ok ("mkt-stale", 2, MODIKE_ADAPTER_VNET_HDR);
  index = tun_adapter_get_index (a);
  g_assert_cmpuint (index, !=, old);
  g_assert_cmpint (link_get ("mkt-stale", &info), ==, 0);
  g_assert_cmpuint (info.index, ==, index);
  g_assert_cmpuint (info.tun_persist, ==, 0);
  g_assert_cmpuint (info.tun_num_queues, ==, 2);
  g_assert_cmpuint (info.tun_vnet_hdr, ==, 1);

  /* Ours is not persistent: closing it is enough. */
  tun_adapter_free (a);
  assert_gone ("mkt-stale", index);
}

/* A TUN of our name still held open by a leftover process. */
static void
test_stale_open (void)
{
  g_autoptr (TunAdapter) a = NULL;
  TunLinkInfo info;
  guint32 old;
  int fd;

  if (!prereq ())
    return;
  fd = leftover_tun ("mkt-open", FALSE);
  g_assert_cmpint (link_get ("mkt-open", &info), ==, 0);
  old = info.index;

  a = adapter_new_ok ("mkt-open", 1, 0);
  g_assert_cmpuint (tun_adapter_get_index (a), !=, old);
  g_assert_cmpint (link_get ("mkt-open", &info), ==, 0);
  g_assert_cmpuint (info.index, ==, tun_adapter_get_index (a));
  close (fd);
  /* The leftover's fd closing does not take ours down. */
  g_assert_cmpint (link_get ("mkt-open", &info), ==, 0);
  g_assert_cmpuint (info.index, ==, tun_adapter_get_index (a));
}

static void
make_veth (const char *name, const char *peer)
{
  g_auto (TunNlMsg) m = { 0 };
  g_autofree char *ext = NULL;
  struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
  int err;

  tun_nl_msg_init (&m, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifi, sizeof ifi);
  tun_nl_msg_attr_str (&m, IFLA_IFNAME, name);
  tun_nl_msg_nest_begin (&m, IFLA_LINKINFO);
  tun_nl_msg_attr_str (&m, IFLA_INFO_KIND, "veth");
  tun_nl_msg_nest_begin (&m, IFLA_INFO_DATA);
  tun_nl_msg_nest_begin (&m, VETH_INFO_PEER);
  tun_nl_msg_raw (&m, &ifi, sizeof ifi);
  tun_nl_msg_attr_str (&m, IFLA_IFNAME, peer);
  tun_nl_msg_nest_end (&m);
  tun_nl_msg_nest_end (&m);
  tun_nl_msg_nest_end (&m);
  err = tun_netlink_talk (nl, &m, NULL, NULL, &ext);
  if (err != 0)
    g_test_message ("veth: %s (%s)", g_strerror (err), ext != NULL ? ext : "");
  g_assert_cmpint (err, ==, 0);
}

/* Someone else's interface of our name is never removed. */
static void
test_not_tun (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *ext = NULL;
  TunAdapter *a;
  TunLinkInfo info;

  if (!prereq ())
    return;
  make_veth ("mkt-veth", "mkt-vpeer");
  a = tun_adapter_new ("mkt-veth", 1, 0, &error);
  g_assert_null (a);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, "mkt-veth"));
  g_assert_nonnull (strstr (error->message, "not a TUN device"));
  g_assert_nonnull (strstr (error->message, "veth"));
  g_clear_error (&error);
  g_assert_cmpint (link_get ("mkt-veth", &info), ==, 0);
  g_assert_cmpstr (info.kind, ==, "veth");

  /* A link with no kind at all (loopback) likewise. */
  a = tun_adapter_new ("lo", 1, 0, &error);
  g_assert_null (a);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS);
  g_assert_nonnull (strstr (error->message, "lo "));
  g_assert_cmpint (link_get ("lo", &info), ==, 0);

  g_assert_cmpint (link_get ("mkt-veth", &info), ==, 0);
  g_assert_cmpint (tun_nl_link_del (nl, info.index, &ext), ==, 0);
  g_assert_cmpint (link_get ("mkt-vpeer", &info), ==, ENODEV);
}

static void
test_bad_args (void)
{
  static const char *const names[] = { "", "mkt-0123456789ab", "a/b", "a b", "mk%d", "a:b", ".", ".." };
  g_autoptr (GError) error = NULL;
  TunLinkInfo info;

  if (!prereq ())
    return;
  for (gsize i = 0; i < G_N_ELEMENTS (names); i++)
    {
      g_assert_null (tun_adapter_new (names[i], 1, 0, &error));
      g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
      g_clear_error (&error);
    }
  g_assert_null (tun_adapter_new (NULL, 1, 0, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_null (tun_adapter_new ("mkt-bad", 0, 0, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "mkt-bad"));
  g_clear_error (&error);
  g_assert_null (tun_adapter_new ("mkt-bad", 257, 0, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_cmpint (link_get ("mkt-bad", &info), ==, ENODEV);
}

/* Offloads the kernel refuses: the virtio header is dropped, get_flags
 * says so, and the queues carry plain IP packets. */
static void
test_offload_fallback (void)
{
  static const guint refused[] = { 0x80000000u };
  g_autoptr (GError) error = NULL;
  ModikePrefix a4 = pfx ("198.51.100.1/32"), r4 = pfx ("203.0.113.0/24");
  TunAdapter *a;
  TunLinkInfo info;
  guint32 index;

  if (!prereq ())
    return;
  a = tun_adapter_new_full ("mkt-nooff", 2, MODIKE_ADAPTER_VNET_HDR, refused, G_N_ELEMENTS (refused), &error);
  g_assert_no_error (error);
  g_assert_nonnull (a);
  index = tun_adapter_get_index (a);
  g_assert_cmpuint (tun_adapter_get_flags (a), ==, 0);
  g_assert_cmpuint (tun_adapter_get_offloads (a), ==, 0);
  g_assert_cmpint (link_get ("mkt-nooff", &info), ==, 0);
  g_assert_cmpuint (info.tun_vnet_hdr, ==, 0);
  g_assert_cmpuint (info.tun_num_queues, ==, 2);
  set_address_ok (a, &a4, 1400);
  add_route_ok (a, &r4);
  check_outbound (a, "198.51.100.1", "203.0.113.9");
  check_inbound (a, 1, "198.51.100.1", "203.0.113.9");
  tun_adapter_free (a);
  assert_gone ("mkt-nooff", index);

  /* With nothing to try, the same. */
  a = tun_adapter_new_full ("mkt-nooff", 1, MODIKE_ADAPTER_VNET_HDR, NULL, 0, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (tun_adapter_get_flags (a), ==, 0);
  tun_adapter_free (a);
}

/* The attribute walker against malformed answers (no kernel needed). */
static void
test_parse_attrs (void)
{
  struct {
    const char *what;
    guint8 bytes[24];
    gsize len;
    gboolean ok;
  } cases[] = {
    { "empty", { 0 }, 0, TRUE },
    { "one u32", { 8, 0, 3, 0, 1, 2, 3, 4 }, 8, TRUE },
    { "last without padding", { 8, 0, 3, 0, 1, 2, 3, 4, 5, 0, 4, 0, 'x' }, 13, TRUE },
    { "length below header", { 3, 0, 3, 0, 1, 2, 3, 4 }, 8, FALSE },
    { "length past the end", { 12, 0, 3, 0, 1, 2, 3, 4 }, 8, FALSE },
    { "truncated header", { 8, 0, 3 }, 3, FALSE },
    { "second one past the end", { 4, 0, 1, 0, 200, 0, 2, 0, 0 }, 9, FALSE },
  };
  ModikeReader tb[8];
  guint32 v;
  char s[4];

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      ModikeReader r;
      modike_reader_init (&r, cases[i].bytes, cases[i].len);
      g_test_message ("%s", cases[i].what);
      g_assert_cmpint (tun_nl_parse_attrs (&r, tb, 7), ==, cases[i].ok);
    }

  {
    /* A u32 of the wrong size, a string without its NUL or too long,
     * a nested one, a type above max (skipped), the nested flag masked. */
    static const guint8 msg[] = {
      7, 0, 1, 0, 1, 2, 3, 0,            /* type 1: 3 bytes */
      7, 0, 2, 0, 'a', 'b', 'c', 0,      /* type 2: "abc" without NUL */
      8, 0, 3, 0, 'a', 'b', 'c', 0,      /* type 3: "abc" */
      12, 0, 4, 0x80,                    /* type 4, NLA_F_NESTED: */
      8, 0, 1, 0, 9, 0, 0, 0,            /*   type 1: u32 9 */
      8, 0, 60, 0, 1, 1, 1, 1,           /* type 60: above max */
    };
    ModikeReader r, inner[2];

    modike_reader_init (&r, msg, sizeof msg);
    g_assert_true (tun_nl_parse_attrs (&r, tb, 7));
    g_assert_false (tun_nl_attr_u32 (&tb[1], &v));
    g_assert_false (tun_nl_attr_str (&tb[2], s, sizeof s));
    g_assert_true (tun_nl_attr_str (&tb[3], s, sizeof s));
    g_assert_cmpstr (s, ==, "abc");
    g_assert_false (tun_nl_attr_str (&tb[3], s, 3));  /* no room for it */
    g_assert_null (tb[5].p);
    g_assert_false (tun_nl_attr_u32 (&tb[5], &v));    /* absent */
    g_assert_nonnull (tb[4].p);
    g_assert_true (tun_nl_parse_attrs (&tb[4], inner, 1));
    g_assert_true (tun_nl_attr_u32 (&inner[1], &v));
    g_assert_cmpuint (v, ==, 9);
  }
}

/* A request the kernel refuses comes back as its errno, with the text. */
static void
test_netlink_errors (void)
{
  g_autofree char *ext = NULL;
  TunLinkInfo info;

  if (!prereq ())
    return;
  g_assert_cmpint (tun_nl_link_get (nl, "mkt-none", 0, &info, &ext), ==, ENODEV);
  g_clear_pointer (&ext, g_free);
  g_assert_cmpint (tun_nl_link_get (nl, NULL, 0x7ffffff0u, &info, &ext), ==, ENODEV);
  g_clear_pointer (&ext, g_free);
  g_assert_cmpint (tun_nl_link_set (nl, 0x7ffffff0u, 1400, TRUE, &ext), ==, ENODEV);
  g_clear_pointer (&ext, g_free);
  /* Still in step after the failures. */
  g_assert_cmpint (tun_nl_link_get (nl, "lo", 0, &info, &ext), ==, 0);
  g_assert_cmpstr (info.name, ==, "lo");
  g_assert_cmpuint (info.flags & IFF_UP, !=, 0);
}

extern const ModikePluginDescriptor *modike_plugin_descriptor (void);

/* Loaded through the loader, the plugin is the OS adapter, and its ops
 * are the adapter. */
static void
test_plugin (void)
{
  g_autoptr (ModikeRegistry) reg = modike_registry_new ();
  g_autoptr (ModikeLoader) loader = modike_loader_new (reg, NULL);
  g_autoptr (GError) error = NULL;
  g_autofree char *desc = NULL;
  const char *names[] = { "tun", NULL };
  const ModikeOsAdapterOps *ops;
  ModikePrefix a4 = pfx ("198.51.100.1/32"), r4 = pfx ("203.0.113.0/24");
  gpointer user = NULL, ad;
  guint32 index;

  g_assert_null (modike_registry_os_adapter (reg, NULL));
  modike_loader_add_static (loader, modike_plugin_descriptor ());
  g_assert_true (modike_loader_load (loader, names, &error));
  g_assert_no_error (error);
  ops = modike_registry_os_adapter (reg, &user);
  g_assert_nonnull (ops);
  g_assert_cmpstr (ops->name, ==, "tun");
  desc = modike_registry_describe (reg);
  g_assert_nonnull (strstr (desc, "os-adapter tun by tun"));
  g_assert_cmpstr (modike_plugin_descriptor ()->provides[0], ==, "os-adapter");

  if (prereq ())
    {
      ad = ops->create (user, "mkt-plug", 1, MODIKE_ADAPTER_VNET_HDR, &error);
      g_assert_no_error (error);
      g_assert_nonnull (ad);
      g_assert_cmpstr (ops->get_name (ad), ==, "mkt-plug");
      g_assert_cmpuint (ops->get_n_queues (ad), ==, 1);
      g_assert_cmpint (ops->get_fd (ad, 0), >=, 0);
      g_assert_cmpint (ops->get_fd (ad, 1), ==, -1);
      g_assert_cmpuint (ops->get_flags (ad), ==, MODIKE_ADAPTER_VNET_HDR);
      index = tun_adapter_get_index (ad);
      g_assert_true (ops->set_address (ad, &a4, 1400, &error));
      g_assert_no_error (error);
      g_assert_true (ops->add_route (ad, &r4, &error));
      g_assert_no_error (error);
      g_assert_cmpuint (count_routes (&r4, index, NULL), ==, 1);
      g_assert_true (ops->del_route (ad, &r4, &error));
      g_assert_no_error (error);
      g_assert_cmpuint (count_routes (&r4, index, NULL), ==, 0);
      ops->destroy (ad);
      assert_gone ("mkt-plug", index);
    }

  modike_loader_unload_all (loader);
  g_assert_null (modike_registry_os_adapter (reg, NULL));
}

int
main (int argc, char **argv)
{
  static const Shape shapes[] = { { 1, FALSE }, { 1, TRUE }, { 2, FALSE }, { 2, TRUE } };
  int ret;

  g_test_init (&argc, &argv, NULL);
  setup_netns ();
  for (gsize i = 0; i < G_N_ELEMENTS (shapes); i++)
    {
      g_autofree char *path = g_strdup_printf ("/tun/lifecycle/%u-queue%s%s", shapes[i].queues,
                                               shapes[i].queues > 1 ? "s" : "", shapes[i].vnet ? "-vnet-hdr" : "");
      g_test_add_data_func (path, &shapes[i], test_lifecycle);
    }
  g_test_add_func ("/tun/address-mtu", test_address_mtu);
  g_test_add_func ("/tun/routes", test_routes);
  g_test_add_func ("/tun/destroy-held", test_destroy_held);
  g_test_add_func ("/tun/stale-persistent", test_stale_persistent);
  g_test_add_func ("/tun/stale-open", test_stale_open);
  g_test_add_func ("/tun/not-tun", test_not_tun);
  g_test_add_func ("/tun/bad-args", test_bad_args);
  g_test_add_func ("/tun/offload-fallback", test_offload_fallback);
  g_test_add_func ("/tun/parse-attrs", test_parse_attrs);
  g_test_add_func ("/tun/netlink-errors", test_netlink_errors);
  g_test_add_func ("/tun/plugin", test_plugin);
  ret = g_test_run ();
  g_clear_pointer (&nl, tun_netlink_free);
  g_free (prereq_error);
  return ret;
}
