/* rtnetlink without libnl: requests built in a byte array, answers read
 * into a bounded buffer and walked with the bounded reader. Every request
 * asks for an ack, and every answer is matched to it by sequence number
 * and port, so a reply left over from an earlier failure is skipped. */
#include "tun.h"

#include <errno.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/if_tun.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* The kernel sizes dump messages by our largest read, capped at 32 KiB. */
#define TUN_NL_RECV_MAX 65536

struct _TunNetlink {
  int fd;
  guint32 portid;
  guint32 seq;
  guint8 *buf;
};

TunNetlink *
tun_netlink_new (GError **error)
{
  g_autoptr (TunNetlink) nl = g_new0 (TunNetlink, 1);
  struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
  socklen_t sl = sizeof sa;
  int on = 1;

  nl->fd = socket (AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (nl->fd < 0)
    {
      tun_nl_set_error (error, errno, NULL, "cannot open a rtnetlink socket");
      return NULL;
    }
  /* Optional: error text from the kernel, and acks without our request
   * echoed back. Kernels without them still answer with plain errnos. */
  if (setsockopt (nl->fd, SOL_NETLINK, NETLINK_EXT_ACK, &on, sizeof on) < 0)
    g_debug ("rtnetlink: no extended acks (%s)", g_strerror (errno));
  if (setsockopt (nl->fd, SOL_NETLINK, NETLINK_CAP_ACK, &on, sizeof on) < 0)
    g_debug ("rtnetlink: no capped acks (%s)", g_strerror (errno));
  if (bind (nl->fd, (struct sockaddr *) &sa, sizeof sa) < 0
      || getsockname (nl->fd, (struct sockaddr *) &sa, &sl) < 0)
    {
      tun_nl_set_error (error, errno, NULL, "cannot bind a rtnetlink socket");
      return NULL;
    }
  nl->portid = sa.nl_pid;
  nl->seq = g_random_int ();
  nl->buf = g_malloc (TUN_NL_RECV_MAX);
  return g_steal_pointer (&nl);
}

void
tun_netlink_free (TunNetlink *nl)
{
  if (nl == NULL)
    return;
  if (nl->fd >= 0)
    close (nl->fd);
  g_free (nl->buf);
  g_free (nl);
}

void
tun_nl_set_error (GError **error, int err, const char *ext, const char *fmt, ...)
{
  g_autofree char *what = NULL;
  va_list ap;

  va_start (ap, fmt);
  what = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  if (ext != NULL && *ext != '\0')
    g_set_error (error, G_IO_ERROR, g_io_error_from_errno (err), "%s: %s (%s)", what, g_strerror (err), ext);
  else
    g_set_error (error, G_IO_ERROR, g_io_error_from_errno (err), "%s: %s", what, g_strerror (err));
}

/* ---- Building requests ---- */

static void
msg_pad (TunNlMsg *m)
{
  static const guint8 zero[NLMSG_ALIGNTO];
  gsize pad = NLMSG_ALIGN (m->buf->len) - m->buf->len;

  if (pad > 0)
    g_byte_array_append (m->buf, zero, (guint) pad);
}

void
tun_nl_msg_init (TunNlMsg *m, guint16 type, guint16 flags, const void *fam, gsize fam_len)
{
  struct nlmsghdr h = { .nlmsg_type = type, .nlmsg_flags = flags };

  m->buf = g_byte_array_sized_new (256);
  m->depth = 0;
  g_byte_array_append (m->buf, (const guint8 *) &h, sizeof h);
  tun_nl_msg_raw (m, fam, fam_len);
}

void
tun_nl_msg_clear (TunNlMsg *m)
{
  g_clear_pointer (&m->buf, g_byte_array_unref);
  m->depth = 0;
}

void
tun_nl_msg_raw (TunNlMsg *m, const void *data, gsize len)
{
  g_return_if_fail (len <= G_MAXUINT16);
  if (len > 0)
    g_byte_array_append (m->buf, data, (guint) len);
  msg_pad (m);
}

void
tun_nl_msg_attr (TunNlMsg *m, guint16 type, const void *data, gsize len)
{
  struct rtattr a = { .rta_type = type };

  g_return_if_fail (len <= G_MAXUINT16 - RTA_LENGTH (0));
  a.rta_len = (unsigned short) RTA_LENGTH (len);
  g_byte_array_append (m->buf, (const guint8 *) &a, sizeof a);
  tun_nl_msg_raw (m, data, len);
}

void
tun_nl_msg_attr_u32 (TunNlMsg *m, guint16 type, guint32 v)
{
  tun_nl_msg_attr (m, type, &v, sizeof v);
}

void
tun_nl_msg_attr_str (TunNlMsg *m, guint16 type, const char *s)
{
  tun_nl_msg_attr (m, type, s, strlen (s) + 1);
}

void
tun_nl_msg_nest_begin (TunNlMsg *m, guint16 type)
{
  struct rtattr a = { .rta_type = type };

  g_return_if_fail (m->depth < TUN_NL_MAX_NEST);
  m->nests[m->depth++] = m->buf->len;
  g_byte_array_append (m->buf, (const guint8 *) &a, sizeof a);
}

void
tun_nl_msg_nest_end (TunNlMsg *m)
{
  struct rtattr a;
  gsize at;

  g_return_if_fail (m->depth > 0);
  at = m->nests[--m->depth];
  g_return_if_fail (m->buf->len - at <= G_MAXUINT16);
  memcpy (&a, m->buf->data + at, sizeof a);
  a.rta_len = (unsigned short) (m->buf->len - at);
  memcpy (m->buf->data + at, &a, sizeof a);
}

/* ---- Reading answers ---- */

gboolean
tun_nl_parse_attrs (ModikeReader *r, ModikeReader *tb, guint max)
{
  for (guint i = 0; i <= max; i++)
    tb[i] = (ModikeReader) { NULL, 0 };
  while (modike_reader_left (r) > 0)
    {
      struct rtattr a;
      ModikeReader data;
      gsize pad;
      guint type;

      if (!modike_reader_copy (r, &a, sizeof a) || a.rta_len < sizeof a
          || !modike_reader_sub (r, a.rta_len - sizeof a, &data))
        return FALSE;
      /* The last attribute may come without its padding. */
      pad = RTA_ALIGN (a.rta_len) - a.rta_len;
      if (!modike_reader_skip (r, MIN (pad, modike_reader_left (r))))
        return FALSE;
      type = a.rta_type & NLA_TYPE_MASK;
      if (type <= max)
        tb[type] = data;
    }
  return TRUE;
}

gboolean
tun_nl_attr_u8 (const ModikeReader *a, guint8 *out)
{
  ModikeReader r = *a;

  return a->p != NULL && modike_reader_left (&r) == 1 && modike_reader_u8 (&r, out);
}

gboolean
tun_nl_attr_u32 (const ModikeReader *a, guint32 *out)
{
  ModikeReader r = *a;

  /* Host order, unlike the wire formats the reader's u32 is for. */
  return a->p != NULL && modike_reader_left (&r) == sizeof *out && modike_reader_copy (&r, out, sizeof *out);
}

gboolean
tun_nl_attr_str (const ModikeReader *a, char *out, gsize size)
{
  ModikeReader r = *a;
  const guint8 *s;
  const guint8 *nul;
  gsize len;

  if (a->p == NULL || modike_reader_left (&r) == 0)
    return FALSE;
  len = modike_reader_left (&r);
  if (!modike_reader_bytes (&r, len, &s))
    return FALSE;
  nul = memchr (s, '\0', len);
  if (nul == NULL || (gsize) (nul - s) >= size)
    return FALSE;
  memcpy (out, s, (gsize) (nul - s) + 1);
  return TRUE;
}

/* NLMSG_ERROR: the errno (0 = ack) and the extended ack text. */
static int
parse_error (const struct nlmsghdr *h, ModikeReader *p, char **ext)
{
  struct nlmsgerr e;
  ModikeReader tb[NLMSGERR_ATTR_MAX + 1];
  char text[256];

  if (!modike_reader_copy (p, &e, sizeof e))
    return EBADMSG;
  if (e.error > 0)
    return EBADMSG;
  /* Unless capped, a failed request comes back after the header. */
  if (e.error != 0 && !(h->nlmsg_flags & NLM_F_CAPPED) && e.msg.nlmsg_len >= sizeof e.msg
      && !modike_reader_skip (p, MIN (e.msg.nlmsg_len - sizeof e.msg, modike_reader_left (p))))
    return EBADMSG;
  if ((h->nlmsg_flags & NLM_F_ACK_TLVS) && ext != NULL && *ext == NULL && tun_nl_parse_attrs (p, tb, NLMSGERR_ATTR_MAX)
      && tb[NLMSGERR_ATTR_MSG].p != NULL && tun_nl_attr_str (&tb[NLMSGERR_ATTR_MSG], text, sizeof text))
    *ext = g_strdup (text);
  return -e.error;
}

int
tun_netlink_talk (TunNetlink *nl, TunNlMsg *m, TunNlFunc fn, gpointer user, char **ext)
{
  struct nlmsghdr req;
  struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
  gboolean dump, bad = FALSE;
  ssize_t n;

  g_return_val_if_fail (m->buf != NULL && m->depth == 0, EINVAL);
  if (ext != NULL)
    g_clear_pointer (ext, g_free);  /* only this request's text */
  memcpy (&req, m->buf->data, sizeof req);
  req.nlmsg_len = m->buf->len;
  req.nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
  req.nlmsg_seq = ++nl->seq;
  req.nlmsg_pid = 0;
  memcpy (m->buf->data, &req, sizeof req);
  dump = (req.nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP;

  do
    n = sendto (nl->fd, m->buf->data, m->buf->len, 0, (struct sockaddr *) &kernel, sizeof kernel);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return errno;
  if ((gsize) n != m->buf->len)
    return EMSGSIZE;

  for (;;)
    {
      struct sockaddr_nl from;
      struct iovec iov = { nl->buf, TUN_NL_RECV_MAX };
      struct msghdr mh = { .msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &iov, .msg_iovlen = 1 };
      ModikeReader r;

      n = recvmsg (nl->fd, &mh, 0);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return errno;
      if (mh.msg_flags & MSG_TRUNC)
        return EMSGSIZE;
      if (mh.msg_namelen < sizeof from || from.nl_pid != 0)
        continue;  /* only the kernel talks to us */

      modike_reader_init (&r, nl->buf, (gsize) n);
      while (modike_reader_left (&r) >= sizeof (struct nlmsghdr))
        {
          struct nlmsghdr h;
          ModikeReader p;
          gsize pad;
          int err;

          if (!modike_reader_copy (&r, &h, sizeof h) || h.nlmsg_len < sizeof h
              || !modike_reader_sub (&r, h.nlmsg_len - sizeof h, &p))
            return EBADMSG;  /* no way to find the next message */
          pad = NLMSG_ALIGN (h.nlmsg_len) - h.nlmsg_len;
          if (!modike_reader_skip (&r, MIN (pad, modike_reader_left (&r))))
            return EBADMSG;
          if (h.nlmsg_seq != req.nlmsg_seq || h.nlmsg_pid != nl->portid)
            continue;  /* a leftover of an earlier request */

          switch (h.nlmsg_type)
            {
            case NLMSG_NOOP:
              break;
            case NLMSG_ERROR:
              err = parse_error (&h, &p, ext);
              /* A dump ends with DONE; only a failure ends it early. */
              if (!dump || err != 0)
                return err != 0 ? err : (bad ? EBADMSG : 0);
              break;
            case NLMSG_DONE:
              if (dump)
                {
                  int status = 0;
                  /* Since 4.x DONE carries the dump's status. */
                  if (modike_reader_left (&p) >= sizeof status && !modike_reader_copy (&p, &status, sizeof status))
                    return EBADMSG;
                  if (status < 0)
                    return -status;
                  if (h.nlmsg_flags & NLM_F_DUMP_INTR)
                    return EINTR;
                  return bad ? EBADMSG : 0;
                }
              break;
            case NLMSG_OVERRUN:
              return ENOBUFS;
            default:
              if (fn != NULL && !fn (h.nlmsg_type, &p, user))
                bad = TRUE;
              break;
            }
        }
    }
}

/* ---- Links ---- */

static gboolean
parse_tun_data (ModikeReader *r, TunLinkInfo *out)
{
  ModikeReader tb[IFLA_TUN_MAX + 1];
  guint8 *fields[] = {
    [IFLA_TUN_TYPE] = &out->tun_type,
    [IFLA_TUN_PI] = &out->tun_pi,
    [IFLA_TUN_VNET_HDR] = &out->tun_vnet_hdr,
    [IFLA_TUN_PERSIST] = &out->tun_persist,
    [IFLA_TUN_MULTI_QUEUE] = &out->tun_multi_queue,
  };

  if (!tun_nl_parse_attrs (r, tb, IFLA_TUN_MAX))
    return FALSE;
  for (guint i = 0; i < G_N_ELEMENTS (fields); i++)
    if (fields[i] != NULL && tb[i].p != NULL && !tun_nl_attr_u8 (&tb[i], fields[i]))
      return FALSE;
  if (tb[IFLA_TUN_NUM_QUEUES].p != NULL && !tun_nl_attr_u32 (&tb[IFLA_TUN_NUM_QUEUES], &out->tun_num_queues))
    return FALSE;
  out->has_tun_info = TRUE;
  return TRUE;
}

typedef struct {
  TunLinkInfo *out;
  gboolean found;
} LinkGet;

static gboolean
on_link (guint16 type, ModikeReader *p, gpointer user)
{
  LinkGet *g = user;
  TunLinkInfo info = { 0 };
  struct ifinfomsg ifi;
  ModikeReader tb[IFLA_MAX + 1];
  ModikeReader li[IFLA_INFO_MAX + 1];

  if (type != RTM_NEWLINK)
    return TRUE;
  if (!modike_reader_copy (p, &ifi, sizeof ifi) || !tun_nl_parse_attrs (p, tb, IFLA_MAX))
    return FALSE;
  info.index = (guint32) ifi.ifi_index;
  info.flags = ifi.ifi_flags;
  if (tb[IFLA_IFNAME].p == NULL || !tun_nl_attr_str (&tb[IFLA_IFNAME], info.name, sizeof info.name))
    return FALSE;
  if (tb[IFLA_MTU].p != NULL && !tun_nl_attr_u32 (&tb[IFLA_MTU], &info.mtu))
    return FALSE;
  if (tb[IFLA_LINKINFO].p != NULL)
    {
      if (!tun_nl_parse_attrs (&tb[IFLA_LINKINFO], li, IFLA_INFO_MAX))
        return FALSE;
      if (li[IFLA_INFO_KIND].p != NULL && !tun_nl_attr_str (&li[IFLA_INFO_KIND], info.kind, sizeof info.kind))
        return FALSE;
      if (strcmp (info.kind, "tun") == 0 && li[IFLA_INFO_DATA].p != NULL && !parse_tun_data (&li[IFLA_INFO_DATA], &info))
        return FALSE;
    }
  *g->out = info;
  g->found = TRUE;
  return TRUE;
}

int
tun_nl_link_get (TunNetlink *nl, const char *name, guint32 index, TunLinkInfo *out, char **ext)
{
  g_auto (TunNlMsg) m = { 0 };
  struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC, .ifi_index = name != NULL ? 0 : (int) index };
  LinkGet g = { out, FALSE };
  int err;

  tun_nl_msg_init (&m, RTM_GETLINK, 0, &ifi, sizeof ifi);
  if (name != NULL)
    tun_nl_msg_attr_str (&m, IFLA_IFNAME, name);
  err = tun_netlink_talk (nl, &m, on_link, &g, ext);
  if (err == 0 && !g.found)
    err = ENODEV;
  return err;
}

int
tun_nl_link_del (TunNetlink *nl, guint32 index, char **ext)
{
  g_auto (TunNlMsg) m = { 0 };
  struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC, .ifi_index = (int) index };

  tun_nl_msg_init (&m, RTM_DELLINK, 0, &ifi, sizeof ifi);
  return tun_netlink_talk (nl, &m, NULL, NULL, ext);
}

int
tun_nl_link_set (TunNetlink *nl, guint32 index, guint mtu, gboolean up, char **ext)
{
  g_auto (TunNlMsg) m = { 0 };
  struct ifinfomsg ifi = {
    .ifi_family = AF_UNSPEC, .ifi_index = (int) index,
    .ifi_flags = up ? IFF_UP : 0, .ifi_change = IFF_UP,
  };

  tun_nl_msg_init (&m, RTM_NEWLINK, 0, &ifi, sizeof ifi);
  if (mtu > 0)
    tun_nl_msg_attr_u32 (&m, IFLA_MTU, mtu);
  return tun_netlink_talk (nl, &m, NULL, NULL, ext);
}

/* ---- Addresses and routes ---- */

int
tun_nl_addr (TunNetlink *nl, gboolean add, guint32 index, const ModikePrefix *p, char **ext)
{
  g_auto (TunNlMsg) m = { 0 };
  gboolean v6 = p->net.family == AF_INET6;
  struct ifaddrmsg ifa = {
    .ifa_family = (guint8) p->net.family, .ifa_prefixlen = p->plen,
    .ifa_flags = v6 ? IFA_F_NODAD : 0, .ifa_scope = RT_SCOPE_UNIVERSE, .ifa_index = index,
  };
  gsize alen = modike_addr_len (&p->net);

  g_return_val_if_fail (alen > 0, EAFNOSUPPORT);
  tun_nl_msg_init (&m, add ? RTM_NEWADDR : RTM_DELADDR, add ? NLM_F_CREATE | NLM_F_REPLACE : 0, &ifa, sizeof ifa);
  /* v4: IFA_LOCAL is our address, IFA_ADDRESS the peer's (the same: no
   * peer). v6 takes IFA_ADDRESS alone, IFA_LOCAL would make it a peer. */
  if (!v6)
    tun_nl_msg_attr (&m, IFA_LOCAL, p->net.addr, alen);
  tun_nl_msg_attr (&m, IFA_ADDRESS, p->net.addr, alen);
  /* No duplicate address detection on a point-to-point tunnel: the
   * address is usable (bindable) at once instead of tentative. */
  if (v6 && add)
    tun_nl_msg_attr_u32 (&m, IFA_FLAGS, IFA_F_NODAD);
  return tun_netlink_talk (nl, &m, NULL, NULL, ext);
}

int
tun_nl_route (TunNetlink *nl, gboolean add, guint32 index, const ModikePrefix *dst, char **ext)
{
  g_auto (TunNlMsg) m = { 0 };
  struct rtmsg rt = {
    .rtm_family = (guint8) dst->net.family, .rtm_dst_len = dst->plen,
    .rtm_table = RT_TABLE_MAIN, .rtm_protocol = TUN_RTPROT,
    /* A delete matches any scope; the protocol keeps it to ours. */
    .rtm_scope = add ? RT_SCOPE_LINK : RT_SCOPE_NOWHERE, .rtm_type = RTN_UNICAST,
  };
  gsize alen = modike_addr_len (&dst->net);

  g_return_val_if_fail (alen > 0, EAFNOSUPPORT);
  tun_nl_msg_init (&m, add ? RTM_NEWROUTE : RTM_DELROUTE, add ? NLM_F_CREATE | NLM_F_EXCL : 0, &rt, sizeof rt);
  if (dst->plen > 0)
    tun_nl_msg_attr (&m, RTA_DST, dst->net.addr, alen);
  tun_nl_msg_attr_u32 (&m, RTA_OIF, index);
  tun_nl_msg_attr_u32 (&m, RTA_TABLE, RT_TABLE_MAIN);
  return tun_netlink_talk (nl, &m, NULL, NULL, ext);
}

/* ---- Dumps ---- */

/* A dump request with its family header; fn sees every message of the reply. */
static int
nl_dump (TunNetlink *nl, guint16 type, const void *hdr, gsize hdr_len, TunNlFunc fn, GArray *out, char **ext)
{
  g_auto (TunNlMsg) m = { 0 };

  tun_nl_msg_init (&m, type, NLM_F_DUMP, hdr, hdr_len);
  return tun_netlink_talk (nl, &m, fn, out, ext);
}

/* An address attribute of the family's exact size. */
static gboolean
attr_addr (const ModikeReader *a, int family, guint8 *out)
{
  ModikeReader r = *a;
  gsize len = family == AF_INET ? 4 : family == AF_INET6 ? 16 : 0;

  return len > 0 && a->p != NULL && modike_reader_left (&r) == len && modike_reader_copy (&r, out, len);
}

static gboolean
on_addr (guint16 type, ModikeReader *p, gpointer user)
{
  GArray *out = user;
  TunAddrInfo info = { 0 };
  struct ifaddrmsg ifa;
  ModikeReader tb[IFA_MAX + 1];
  const ModikeReader *a;

  if (type != RTM_NEWADDR)
    return TRUE;
  if (!modike_reader_copy (p, &ifa, sizeof ifa) || !tun_nl_parse_attrs (p, tb, IFA_MAX))
    return FALSE;
  info.family = ifa.ifa_family;
  info.index = ifa.ifa_index;
  info.plen = ifa.ifa_prefixlen;
  info.scope = ifa.ifa_scope;
  info.flags = ifa.ifa_flags;
  if (tb[IFA_FLAGS].p != NULL && !tun_nl_attr_u32 (&tb[IFA_FLAGS], &info.flags))
    return FALSE;
  a = tb[IFA_LOCAL].p != NULL ? &tb[IFA_LOCAL] : &tb[IFA_ADDRESS];
  if (info.family != AF_INET && info.family != AF_INET6)
    return TRUE;
  if (!attr_addr (a, info.family, info.addr))
    return FALSE;
  g_array_append_val (out, info);
  return TRUE;
}

int
tun_nl_addr_dump (TunNetlink *nl, int family, GArray *out, char **ext)
{
  struct ifaddrmsg ifa = { .ifa_family = (guint8) family };

  return nl_dump (nl, RTM_GETADDR, &ifa, sizeof ifa, on_addr, out, ext);
}

static gboolean
on_route (guint16 type, ModikeReader *p, gpointer user)
{
  GArray *out = user;
  TunRouteInfo info = { 0 };
  struct rtmsg rt;
  ModikeReader tb[RTA_MAX + 1];

  if (type != RTM_NEWROUTE)
    return TRUE;
  if (!modike_reader_copy (p, &rt, sizeof rt) || !tun_nl_parse_attrs (p, tb, RTA_MAX))
    return FALSE;
  info.family = rt.rtm_family;
  info.dst_len = rt.rtm_dst_len;
  info.protocol = rt.rtm_protocol;
  info.scope = rt.rtm_scope;
  info.type = rt.rtm_type;
  info.table = rt.rtm_table;
  if (info.family != AF_INET && info.family != AF_INET6)
    return TRUE;
  if (tb[RTA_TABLE].p != NULL && !tun_nl_attr_u32 (&tb[RTA_TABLE], &info.table))
    return FALSE;
  if (tb[RTA_OIF].p != NULL && !tun_nl_attr_u32 (&tb[RTA_OIF], &info.oif))
    return FALSE;
  if (tb[RTA_DST].p != NULL && !attr_addr (&tb[RTA_DST], info.family, info.dst))
    return FALSE;
  g_array_append_val (out, info);
  return TRUE;
}

int
tun_nl_route_dump (TunNetlink *nl, int family, GArray *out, char **ext)
{
  struct rtmsg rt = { .rtm_family = (guint8) family };

  return nl_dump (nl, RTM_GETROUTE, &rt, sizeof rt, on_route, out, ext);
}

int
tun_nl_route_get (TunNetlink *nl, const ModikeAddr *dst, TunRouteInfo *out, char **ext)
{
  g_auto (TunNlMsg) m = { 0 };
  g_autoptr (GArray) found = g_array_new (FALSE, FALSE, sizeof (TunRouteInfo));
  gsize alen = modike_addr_len (dst);
  struct rtmsg rt = { .rtm_family = (guint8) dst->family, .rtm_dst_len = (guint8) (alen * 8) };
  int err;

  g_return_val_if_fail (alen > 0, EAFNOSUPPORT);
  tun_nl_msg_init (&m, RTM_GETROUTE, 0, &rt, sizeof rt);
  tun_nl_msg_attr (&m, RTA_DST, dst->addr, alen);
  err = tun_netlink_talk (nl, &m, on_route, found, ext);
  if (err == 0 && found->len == 0)
    err = ENETUNREACH;
  if (err == 0)
    *out = g_array_index (found, TunRouteInfo, 0);
  return err;
}
