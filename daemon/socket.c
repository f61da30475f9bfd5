/* UDP sockets for IKE: port 500 and the ports plugins register (4500
 * with the non-ESP marker). IP_PKTINFO tells which local address a
 * datagram reached, so wildcard sockets answer from the right address. */
#include "daemon.h"

#include <errno.h>
#include <gio/gio.h>
#include <glib-unix.h>
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>


typedef struct {
  DaemonSockets *owner;
  int fd;
  ModikeAddr bound;        /* family, address (maybe wildcard) and port */
  gboolean wildcard;
  gboolean marker;         /* non-ESP marker port */
  guint source;
} DaemonSocket;

struct _DaemonSockets {
  GPtrArray *socks;        /* DaemonSocket* */
  DaemonRecvFunc fn;
  gpointer user;
  guint8 buf[65536];
};

static void
daemon_socket_free (gpointer p)
{
  DaemonSocket *s = p;

  if (s->source)
    g_source_remove (s->source);
  if (s->fd >= 0)
    close (s->fd);
  g_free (s);
}

static gboolean
local_from_cmsg (struct msghdr *mh, const DaemonSocket *s, ModikeAddr *local)
{
  *local = s->bound;
  for (struct cmsghdr *c = CMSG_FIRSTHDR (mh); c; c = CMSG_NXTHDR (mh, c))
    {
      if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO)
        {
          struct in_pktinfo pi;
          memcpy (&pi, CMSG_DATA (c), sizeof pi);
          memcpy (local->addr, &pi.ipi_addr, 4);
          return TRUE;
        }
      if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO)
        {
          struct in6_pktinfo pi;
          memcpy (&pi, CMSG_DATA (c), sizeof pi);
          memcpy (local->addr, &pi.ipi6_addr, 16);
          return TRUE;
        }
    }
  return !s->wildcard;
}

static gboolean
on_readable (gint fd, GIOCondition cond, gpointer data)
{
  DaemonSocket *s = data;
  DaemonSockets *all = s->owner;

  for (int i = 0; i < 64; i++) /* bounded batch, then yield to the loop */
    {
      struct sockaddr_storage from;
      union { char buf[CMSG_SPACE (sizeof (struct in6_pktinfo))]; struct cmsghdr align; } cbuf;
      struct iovec iov = { all->buf, sizeof all->buf };
      struct msghdr mh = { .msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &iov,
                           .msg_iovlen = 1, .msg_control = cbuf.buf, .msg_controllen = sizeof cbuf.buf };
      ModikeAddr local, remote;
      ssize_t n = recvmsg (fd, &mh, MSG_DONTWAIT);
      ModikeReader r;
      guint8 first;
      guint32 marker;

      if (n < 0)
        {
          if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            g_warning ("recvmsg: %s", g_strerror (errno));
          break;
        }
      modike_reader_init (&r, all->buf, (gsize) n);
      if (!modike_addr_from_sockaddr ((struct sockaddr *) &from, mh.msg_namelen, &remote)
          || !local_from_cmsg (&mh, s, &local))
        continue;
      if (s->marker)
        {
          /* RFC 3948 2.2: 0xff alone is a keepalive, 4 zero bytes mark IKE,
           * anything else is ESP in UDP (the datapath's, not ours). */
          if (n == 1 && modike_reader_u8 (&r, &first) && first == 0xff)
            continue;
          if (!modike_reader_u32 (&r, &marker) || marker != 0)
            {
              g_debug ("port %u: %zd-byte non-IKE datagram dropped (no datapath)", s->bound.port, n);
              continue;
            }
        }
      all->fn (&local, &remote, r.p, modike_reader_left (&r), all->user);
    }
  return G_SOURCE_CONTINUE;
}

static DaemonSocket *
open_one (DaemonSockets *all, const ModikeAddr *addr, gboolean marker, GError **error)
{
  g_autofree DaemonSocket *s = g_new0 (DaemonSocket, 1);
  struct sockaddr_storage ss;
  socklen_t sl;
  int on = 1, saved;
  char buf[MODIKE_ADDR_STRLEN];
  static const guint8 zero[16];

  s->owner = all;
  s->bound = *addr;
  s->marker = marker;
  s->wildcard = memcmp (addr->addr, zero, modike_addr_len (addr)) == 0;
  s->fd = socket (addr->family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s->fd < 0)
    goto fail;
  setsockopt (s->fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  if (addr->family == AF_INET6)
    {
      if (setsockopt (s->fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on) < 0
          || setsockopt (s->fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof on) < 0)
        goto fail;
    }
  else if (setsockopt (s->fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof on) < 0)
    goto fail;
  modike_addr_to_sockaddr (addr, &ss, &sl);
  if (bind (s->fd, (struct sockaddr *) &ss, sl) < 0)
    goto fail;
  s->source = g_unix_fd_add (s->fd, G_IO_IN, on_readable, s);
  return g_steal_pointer (&s);

fail:
  saved = errno; /* before anything else can change it */
  g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved), "cannot listen on %s: %s",
               modike_addr_format (addr, buf, sizeof buf), g_strerror (saved));
  if (s->fd >= 0)
    close (s->fd);
  return NULL;
}

DaemonSockets *
daemon_sockets_open (const GArray *listen, const GArray *ports, DaemonRecvFunc fn, gpointer user,
                     GError **error)
{
  g_autoptr (DaemonSockets) all = g_new0 (DaemonSockets, 1);
  g_autoptr (GArray) addrs = g_array_new (FALSE, TRUE, sizeof (ModikeAddr));

  all->socks = g_ptr_array_new_with_free_func (daemon_socket_free);
  all->fn = fn;
  all->user = user;
  if (listen && listen->len)
    g_array_append_vals (addrs, listen->data, listen->len);
  else
    {
      ModikeAddr any4 = { .family = AF_INET, .port = 500 }, any6 = { .family = AF_INET6, .port = 500 };
      g_array_append_val (addrs, any4);
      g_array_append_val (addrs, any6);
    }
  for (guint i = 0; i < addrs->len; i++)
    {
      ModikeAddr a = g_array_index (addrs, ModikeAddr, i);
      gboolean wildcard6 = !(listen && listen->len) && a.family == AF_INET6;
      g_autoptr (GError) local_error = NULL;
      DaemonSocket *s;

      if (a.port == 0)
        a.port = 500;
      s = open_one (all, &a, FALSE, &local_error);
      if (!s && wildcard6)
        {
          /* A host without IPv6 still runs IPv4. */
          g_message ("IPv6 disabled: %s", local_error->message);
          continue;
        }
      if (!s)
        {
          g_propagate_error (error, g_steal_pointer (&local_error));
          return NULL;
        }
      g_ptr_array_add (all->socks, s);
      for (guint j = 0; ports && j < ports->len; j++)
        {
          guint32 p = g_array_index (ports, guint32, j);
          ModikeAddr b = a;

          b.port = p & 0xffff;
          s = open_one (all, &b, ((p >> 16) & MODIKE_PORT_NON_ESP_MARKER) != 0, error);
          if (!s)
            return NULL;
          g_ptr_array_add (all->socks, s);
        }
    }
  return g_steal_pointer (&all);
}

static DaemonSocket *
find_socket (DaemonSockets *all, const ModikeAddr *local)
{
  DaemonSocket *fallback = NULL;

  for (guint i = 0; i < all->socks->len; i++)
    {
      DaemonSocket *s = all->socks->pdata[i];

      if (s->bound.family != local->family || s->bound.port != local->port)
        continue;
      if (modike_addr_equal_ip (&s->bound, local))
        return s;
      if (s->wildcard)
        fallback = s;
    }
  return fallback;
}

gboolean
daemon_sockets_send (DaemonSockets *all, const ModikeAddr *local, const ModikeAddr *remote,
                     const guint8 *data, gsize len)
{
  DaemonSocket *s = find_socket (all, local);
  struct sockaddr_storage to;
  socklen_t tl;
  union { char buf[CMSG_SPACE (sizeof (struct in6_pktinfo))]; struct cmsghdr align; } cbuf;
  struct iovec iov = { (void *) data, len };
  struct msghdr mh = { .msg_name = &to, .msg_iov = &iov, .msg_iovlen = 1 };
  char lb[MODIKE_ADDR_STRLEN];

  if (!s)
    {
      g_warning ("no socket for %s: datagram not sent", modike_addr_format (local, lb, sizeof lb));
      return FALSE;
    }
  modike_addr_to_sockaddr (remote, &to, &tl);
  mh.msg_namelen = tl;
  if (s->wildcard)
    {
      /* Answer from the address the peer talks to. */
      struct cmsghdr *c;

      memset (&cbuf, 0, sizeof cbuf);
      mh.msg_control = cbuf.buf;
      if (local->family == AF_INET)
        {
          struct in_pktinfo pi = { 0 };
          mh.msg_controllen = CMSG_SPACE (sizeof pi);
          c = CMSG_FIRSTHDR (&mh);
          c->cmsg_level = IPPROTO_IP, c->cmsg_type = IP_PKTINFO, c->cmsg_len = CMSG_LEN (sizeof pi);
          memcpy (&pi.ipi_spec_dst, local->addr, 4);
          memcpy (CMSG_DATA (c), &pi, sizeof pi);
        }
      else
        {
          struct in6_pktinfo pi = { 0 };
          mh.msg_controllen = CMSG_SPACE (sizeof pi);
          c = CMSG_FIRSTHDR (&mh);
          c->cmsg_level = IPPROTO_IPV6, c->cmsg_type = IPV6_PKTINFO, c->cmsg_len = CMSG_LEN (sizeof pi);
          memcpy (&pi.ipi6_addr, local->addr, 16);
          memcpy (CMSG_DATA (c), &pi, sizeof pi);
        }
    }
  if (sendmsg (s->fd, &mh, 0) < 0)
    {
      g_warning ("sendmsg to %s: %s", modike_addr_format (remote, lb, sizeof lb), g_strerror (errno));
      return FALSE;
    }
  return TRUE;
}

guint
daemon_sockets_handoff (DaemonSockets *all, DaemonHandoffFunc fn, gpointer user)
{
  guint taken = 0;

  for (guint i = 0; i < all->socks->len; i++)
    {
      DaemonSocket *s = all->socks->pdata[i];

      if (!s->marker || s->source == 0 || !fn (s->fd, &s->bound, user))
        continue;
      /* The datapath reads it now (ESP in UDP, and IKE back to us through
       * the engine); we only send on it. */
      g_source_remove (s->source);
      s->source = 0;
      taken++;
    }
  return taken;
}

void
daemon_sockets_free (DaemonSockets *all)
{
  if (!all)
    return;
  if (all->socks)
    g_ptr_array_unref (all->socks);
  g_free (all);
}
