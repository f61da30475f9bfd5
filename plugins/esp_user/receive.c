/* Inbound traffic of the esp_user datapath: datagrams read from UDP
 * (RFC 3948: keepalive, IKE behind the non-ESP marker, ESP) and raw ESP
 * sockets, decrypted and delivered to the peer's adapter; consecutive TCP
 * segments of a flow are coalesced first (GRO) for adapters with offloads. */
#include "datapath-private.h"

#include <errno.h>
#include <linux/virtio_net.h>
#include <unistd.h>

/* GRO: consecutive TCP segments of one flow, decrypted from one receive
 * batch, go to the adapter as one GSO packet (writev: no copy). */
#define DP_GRO_FLOWS 8
typedef struct {
  gconstpointer ad;          /* the adapter; NULL: free */
  int fd;
  guint8 key[36];            /* addresses and ports */
  gsize key_len;
  guint8 hdr[DATAPATH_VNET_HDR_LEN + 60 + 60]; /* vnet + IP + TCP of the first */
  gsize ip_len, tcp_len;
  gsize mss;                 /* payload of the first segment */
  guint32 next_seq;
  gsize total;               /* payload bytes */
  guint n;                   /* segments */
  gboolean closed;           /* a short or PSH segment ended it */
  gboolean psh;
  struct iovec iov[DP_BATCH + 1];
} DpGroFlow;

struct _DatapathGro {
  DpGroFlow flow[DP_GRO_FLOWS];
  guint errors;
};

static void
gro_flush (DatapathGro *gro, DpGroFlow *f)
{
  guint8 *v = f->hdr, *ip = f->hdr + DATAPATH_VNET_HDR_LEN, *tcp = ip + f->ip_len;
  gsize l4 = f->tcp_len + f->total;
  gboolean v4 = (ip[0] >> 4) == 4;

  memset (v, 0, DATAPATH_VNET_HDR_LEN);
  if (f->n == 1)
    v[0] = VIRTIO_NET_HDR_F_DATA_VALID; /* the packet exactly as it came */
  else
    {
      guint16 hl = (guint16) (f->ip_len + f->tcp_len), mss = (guint16) f->mss, cs = (guint16) f->ip_len,
              co = 16, partial;

      /* A GSO packet with CHECKSUM_PARTIAL, as TSO would hand it over. */
      v[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
      v[1] = v4 ? VIRTIO_NET_HDR_GSO_TCPV4 : VIRTIO_NET_HDR_GSO_TCPV6;
      memcpy (v + 2, &hl, 2);
      memcpy (v + 4, &mss, 2);
      memcpy (v + 6, &cs, 2);
      memcpy (v + 8, &co, 2);
      if (v4)
        {
          dp_put16 (ip + 2, (guint16) (f->ip_len + l4));
          ip[10] = ip[11] = 0;
          dp_store_csum (ip + 10, datapath_checksum (ip, f->ip_len));
        }
      else
        dp_put16 (ip + 4, (guint16) l4);
      if (f->psh)
        tcp[13] |= 0x08;
      partial = (guint16) ~dp_csum_fold (dp_pseudo_sum (v4 ? AF_INET : AF_INET6, ip, IPPROTO_TCP, l4));
      dp_store_csum (tcp + 16, partial);
    }
  f->iov[0] = (struct iovec) { f->hdr, DATAPATH_VNET_HDR_LEN + f->ip_len + f->tcp_len };
  if (writev (f->fd, f->iov, (int) f->n + 1) < 0)
    gro->errors++;
  f->ad = NULL;
}

DatapathGro *
datapath_gro_new (void)
{
  return g_new0 (DatapathGro, 1);
}

void
datapath_gro_free (DatapathGro *gro)
{
  g_free (gro);
}

guint
datapath_gro_flush (DatapathGro *gro)
{
  guint errors;

  for (guint i = 0; i < DP_GRO_FLOWS; i++)
    if (gro->flow[i].ad != NULL)
      gro_flush (gro, &gro->flow[i]);
  errors = gro->errors;
  gro->errors = 0;
  return errors;
}

/* Takes a decrypted packet for an adapter with offloads into a GRO flow;
 * FALSE: write it as it is (after flushing its flow, to keep order). */
gboolean
datapath_gro_add (DatapathGro *gro, gconstpointer ad, int fd, guint8 *pkt, gsize len)
{
  ModikeReader r;
  guint8 b0, proto, key[36], flags, doff;
  gsize ip_len, tcp_len, plen, key_len;
  guint16 tot;
  guint32 seq;
  DpGroFlow *f = NULL, *free_slot = NULL;

  modike_reader_init (&r, pkt, len);
  if (!modike_reader_u8 (&r, &b0))
    return FALSE;
  if (b0 == 0x45)
    {
      guint16 frag;
      if (!modike_reader_skip (&r, 1) || !modike_reader_u16 (&r, &tot) || !modike_reader_skip (&r, 2)
          || !modike_reader_u16 (&r, &frag) || !modike_reader_skip (&r, 1) || !modike_reader_u8 (&r, &proto)
          || !modike_reader_skip (&r, 2) || !modike_reader_copy (&r, key, 8) || tot != len
          || (frag & 0x3fff) != 0 || proto != IPPROTO_TCP)
        return FALSE;
      ip_len = 20;
      key_len = 8;
    }
  else if (b0 >> 4 == 6)
    {
      if (!modike_reader_skip (&r, 3) || !modike_reader_u16 (&r, &tot) || !modike_reader_u8 (&r, &proto)
          || !modike_reader_skip (&r, 1) || !modike_reader_copy (&r, key, 32) || (gsize) tot + 40 != len
          || proto != IPPROTO_TCP)
        return FALSE;
      ip_len = 40;
      key_len = 32;
    }
  else
    return FALSE;
  if (!modike_reader_copy (&r, key + key_len, 4) || !modike_reader_u32 (&r, &seq) || !modike_reader_skip (&r, 4)
      || !modike_reader_u8 (&r, &doff) || !modike_reader_u8 (&r, &flags))
    return FALSE;
  key_len += 4;
  tcp_len = (gsize) (doff >> 4) * 4;
  if (tcp_len < 20 || ip_len + tcp_len > len)
    return FALSE;
  plen = len - ip_len - tcp_len;

  for (guint i = 0; i < DP_GRO_FLOWS; i++)
    {
      DpGroFlow *g = &gro->flow[i];
      if (g->ad == NULL)
        free_slot = free_slot != NULL ? free_slot : g;
      else if (g->ad == ad && g->key_len == key_len && memcmp (g->key, key, key_len) == 0)
        f = g;
    }
  /* Only plain data segments: ACK, maybe PSH. Anything else ends the flow. */
  if (plen == 0 || (flags & ~0x08) != 0x10)
    {
      if (f != NULL)
        gro_flush (gro, f);
      return FALSE;
    }
  if (f != NULL)
    {
      const guint8 *ip0 = f->hdr + DATAPATH_VNET_HDR_LEN, *tcp0 = ip0 + f->ip_len, *tcp = pkt + ip_len;
      gboolean same_ip = ip_len == 20 ? ip0[1] == pkt[1] && ip0[8] == pkt[8]
                                      : memcmp (ip0, pkt, 4) == 0 && ip0[7] == pkt[7];

      /* Linux GRO's rules: next in sequence, same ACK, flags (but PSH),
       * options and IP fields; no bigger than the first; 64 KiB at most. */
      if (!f->closed && seq == f->next_seq && tcp_len == f->tcp_len && same_ip && plen <= f->mss
          && memcmp (tcp0 + 8, tcp + 8, 5) == 0 && (tcp0[13] & ~0x08) == (tcp[13] & ~0x08)
          && memcmp (tcp0 + 20, tcp + 20, tcp_len - 20) == 0 && f->n < DP_BATCH
          && f->ip_len + f->tcp_len + f->total + plen <= 65535)
        {
          f->iov[++f->n] = (struct iovec) { pkt + ip_len + tcp_len, plen };
          f->total += plen;
          f->next_seq += (guint32) plen;
          f->closed = plen < f->mss || (flags & 0x08) != 0;
          f->psh = (flags & 0x08) != 0;
          return TRUE;
        }
      gro_flush (gro, f);
      free_slot = f;
    }
  if (free_slot == NULL)
    {
      /* Not datapath_gro_flush: that would reset the error count. */
      for (guint i = 0; i < DP_GRO_FLOWS; i++)
        gro_flush (gro, &gro->flow[i]);
      free_slot = &gro->flow[0];
    }
  f = free_slot;
  f->ad = ad;
  f->fd = fd;
  memcpy (f->key, key, key_len);
  f->key_len = key_len;
  memcpy (f->hdr + DATAPATH_VNET_HDR_LEN, pkt, ip_len + tcp_len);
  f->ip_len = ip_len;
  f->tcp_len = tcp_len;
  f->mss = plen;
  f->next_seq = seq + (guint32) plen;
  f->total = plen;
  f->n = 1;
  f->closed = (flags & 0x08) != 0;
  f->psh = f->closed;
  f->iov[1] = (struct iovec) { pkt + ip_len + tcp_len, plen };
  return TRUE;
}

static void
deliver (DpWorker *w, DpSa *sa, guint8 *pkt, gsize len)
{
  Datapath *dp = w->dp;
  const DpAdapter *ad = atomic_load_explicit (&sa->adapter, memory_order_acquire);
  int fd;

  if (ad == NULL)
    {
      dp_count (dp, C_NO_ADAPTER);
      esp_sa_count_drop (sa->esp, MODIKE_DROP_OTHER);
      return;
    }
  fd = ad->fds[w->index % ad->n_fds];
  if (ad->vnet && datapath_gro_add (w->gro, ad, fd, pkt, len))
    return;
  if (ad->vnet)
    {
      /* ESP authenticated the packet: the kernel need not check it again. */
      pkt -= DATAPATH_VNET_HDR_LEN;
      memset (pkt, 0, DATAPATH_VNET_HDR_LEN);
      pkt[0] = VIRTIO_NET_HDR_F_DATA_VALID;
      len += DATAPATH_VNET_HDR_LEN;
    }
  if (write (fd, pkt, len) < 0)
    dp_count (dp, C_SEND_ERRORS);
}

/* Transport mode: an IP header from the SA's outer addresses goes in
 * front of the payload (there is room: ESP header and IV were there). */
static guint8 *
transport_header (const ModikeSadEntry *e, guint8 *payload, gsize len, guint8 next, gsize *out_len)
{
  guint8 *h;

  if (e->src.family == AF_INET)
    {
      if (len + 20 > 65535)
        return NULL;
      h = payload - 20;
      memset (h, 0, 20);
      h[0] = 0x45;
      dp_put16 (h + 2, (guint16) (len + 20));
      h[8] = 64;
      h[9] = next;
      memcpy (h + 12, e->src.addr, 4);
      memcpy (h + 16, e->dst.addr, 4);
      dp_store_csum (h + 10, datapath_checksum (h, 20));
      *out_len = len + 20;
    }
  else
    {
      if (len > 65535)
        return NULL;
      h = payload - 40;
      memset (h, 0, 40);
      h[0] = 0x60;
      dp_put16 (h + 4, (guint16) len);
      h[6] = next;
      h[7] = 64;
      memcpy (h + 8, e->src.addr, 16);
      memcpy (h + 24, e->dst.addr, 16);
      *out_len = len + 40;
    }
  return h;
}

static void
esp_input (DpWorker *w, const DpSnap *s, guint8 *esp, gsize len)
{
  Datapath *dp = w->dp;
  guint32 spi;
  DpSa *sa;
  guint8 *payload, next;
  gsize plen;
  EspLifeEvent life = ESP_LIFE_OK;
  ModikeDropReason why;
  gboolean ok;
  const ModikeSadEntry *e;

  if (!esp_packet_spi (esp, len, &spi))
    {
      dp_count (dp, C_MALFORMED);
      return;
    }
  sa = dp_in_lookup (atomic_load_explicit (&dp->intab, memory_order_acquire), spi);
  if (sa == NULL)
    {
      dp_count (dp, C_UNKNOWN_SPI);
      return;
    }
  ok = esp_sa_decrypt (sa->esp, w->index, esp, len, &payload, &plen, &next, &life, &why);
  if (life != ESP_LIFE_OK)
    modike_datapath_expire_sa (dp->host, MODIKE_DIR_IN, spi, 0, life == ESP_LIFE_HARD);
  if (!ok)
    return;
  /* Authentic and not a replay: the peer is alive. */
  esp_sa_touch (sa->esp, w->now_us);
  e = esp_sa_entry (sa->esp);
  if (e->mode == MODIKE_MODE_TRANSPORT)
    {
      payload = transport_header (e, payload, plen, next, &plen);
      if (payload == NULL)
        {
          esp_sa_count_drop (sa->esp, MODIKE_DROP_MALFORMED);
          return;
        }
    }
  deliver (w, sa, payload, plen);
}

static void
local_from_cmsg (struct msghdr *mh, const DpIo *io, ModikeAddr *local)
{
  *local = io->local;
  for (struct cmsghdr *c = CMSG_FIRSTHDR (mh); c != NULL; c = CMSG_NXTHDR (mh, c))
    {
      if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO && local->family == AF_INET)
        {
          struct in_pktinfo pi;
          memcpy (&pi, CMSG_DATA (c), sizeof pi);
          memcpy (local->addr, &pi.ipi_addr, 4);
        }
      else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO && local->family == AF_INET6)
        {
          struct in6_pktinfo pi;
          memcpy (&pi, CMSG_DATA (c), sizeof pi);
          memcpy (local->addr, &pi.ipi6_addr, 16);
        }
    }
}

static void
udp_datagram (DpWorker *w, const DpSnap *s, const DpIo *io, struct mmsghdr *m, guint8 *data)
{
  Datapath *dp = w->dp;
  gsize len = m->msg_len;

  if (m->msg_hdr.msg_flags & MSG_TRUNC)
    {
      dp_count (dp, C_MALFORMED);
      return;
    }
  /* RFC 3948 2.2/2.3: keepalive, non-ESP marker (IKE), else ESP. */
  if (len == 1 && data[0] == 0xff)
    {
      dp_count (dp, C_KEEPALIVES);
      return;
    }
  if (len >= 4 && data[0] == 0 && data[1] == 0 && data[2] == 0 && data[3] == 0)
    {
      ModikeAddr local, remote;

      if (len == 4 || !modike_addr_from_sockaddr (m->msg_hdr.msg_name, m->msg_hdr.msg_namelen, &remote))
        {
          dp_count (dp, C_MALFORMED);
          return;
        }
      local_from_cmsg (&m->msg_hdr, io, &local);
      dp_count (dp, C_IKE);
      modike_datapath_ike_input (dp->host, &local, &remote, data + 4, len - 4);
      return;
    }
  esp_input (w, s, data, len);
}

static void
raw_datagram (DpWorker *w, const DpSnap *s, const DpIo *io, struct mmsghdr *m, guint8 *data)
{
  gsize len = m->msg_len;

  if (m->msg_hdr.msg_flags & MSG_TRUNC)
    {
      dp_count (w->dp, C_MALFORMED);
      return;
    }
  if (io->family == AF_INET)
    {
      /* Raw IPv4 sockets deliver the IP header; IPv6 ones don't. */
      ModikeReader r;
      guint8 b0;
      gsize ihl;

      modike_reader_init (&r, data, len);
      if (!modike_reader_u8 (&r, &b0) || b0 >> 4 != 4 || (ihl = (gsize) (b0 & 0x0f) * 4) < 20
          || !modike_reader_skip (&r, ihl - 1))
        {
          dp_count (w->dp, C_MALFORMED);
          return;
        }
      data += ihl;
      len -= ihl;
    }
  esp_input (w, s, data, len);
}

void
dp_socket_readable (DpWorker *w, const DpSnap *s, const DpIo *io)
{
  int r;

  for (guint i = 0; i < DP_BATCH; i++)
    {
      struct msghdr *mh = &w->msgs[i].msg_hdr;

      w->iov[i] = (struct iovec) { w->slot[i] + DP_HEAD, DP_DATA };
      memset (mh, 0, sizeof *mh);
      mh->msg_name = &w->names[i];
      mh->msg_namelen = sizeof w->names[i];
      mh->msg_iov = &w->iov[i];
      mh->msg_iovlen = 1;
      mh->msg_control = w->cmsg[i].buf;
      mh->msg_controllen = sizeof w->cmsg[i].buf;
    }
  do
    r = recvmmsg (io->fd, w->msgs, DP_BATCH, MSG_DONTWAIT, NULL);
  while (r < 0 && errno == EINTR);
  /* A UDP socket reports ICMP errors here once each: those are not fatal. */
  if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNREFUSED && errno != EHOSTUNREACH
      && errno != ENETUNREACH && errno != EMSGSIZE)
    dp_io_broken (w, io, errno);
  for (int i = 0; i < r; i++)
    {
      if (io->kind == DP_IO_UDP)
        udp_datagram (w, s, io, &w->msgs[i], w->slot[i] + DP_HEAD);
      else
        raw_datagram (w, s, io, &w->msgs[i], w->slot[i] + DP_HEAD);
    }
  /* The flows point into this batch's slots. */
  if (datapath_gro_flush (w->gro) > 0)
    dp_count (w->dp, C_SEND_ERRORS);
}
