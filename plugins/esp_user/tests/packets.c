/* Packets for the esp-datapath suite (packets.h). */
#include "packets.h"

#include <linux/virtio_net.h>
#include <netinet/in.h>
#include <string.h>

void
addr_of (const char *text, ModikeAddr *a)
{
  g_assert_true (modike_addr_parse (text, 0, a, NULL));
}

GByteArray *
ip_packet_new (const ModikeAddr *s, const ModikeAddr *d, guint8 proto, gsize l4, guint16 id, guint8 flags,
               gsize *ip_len)
{
  GByteArray *p = g_byte_array_new ();
  gsize len;
  guint8 *b;
  guint16 c;

  *ip_len = s->family == AF_INET ? 20 : 40;
  len = *ip_len + l4;
  g_byte_array_set_size (p, len);
  b = p->data;
  memset (b, 0, len);
  if (s->family == AF_INET)
    {
      b[0] = 0x45;
      b[2] = len >> 8, b[3] = len & 0xff;
      b[4] = id >> 8, b[5] = id & 0xff;
      b[6] = flags;
      b[8] = 64;
      b[9] = proto;
      memcpy (b + 12, s->addr, 4);
      memcpy (b + 16, d->addr, 4);
      c = datapath_checksum (b, 20);
      memcpy (b + 10, &c, 2);
      return p;
    }
  b[0] = 0x60;
  b[4] = l4 >> 8, b[5] = l4 & 0xff;
  b[6] = proto;
  b[7] = 64;
  memcpy (b + 8, s->addr, 16);
  memcpy (b + 24, d->addr, 16);
  return p;
}

/* The L4 pseudo-header of addresses alen bytes long; returns its length. */
static gsize
pseudo_header (guint8 ph[40], const guint8 *src, const guint8 *dst, gsize alen, guint8 proto, gsize l4)
{
  memcpy (ph, src, alen);
  memcpy (ph + alen, dst, alen);
  if (alen == 4)
    {
      ph[8] = 0, ph[9] = proto, ph[10] = l4 >> 8, ph[11] = l4 & 0xff;
      return 12;
    }
  ph[32] = ph[33] = 0, ph[34] = l4 >> 8, ph[35] = l4 & 0xff;
  ph[36] = ph[37] = ph[38] = 0, ph[39] = proto;
  return 40;
}

GByteArray *
udp_packet (const char *src, const char *dst, guint16 sport, guint16 dport, gsize payload, guint8 fill)
{
  ModikeAddr s, d;
  GByteArray *p;
  gsize ip_len, l4 = 8 + payload;
  guint8 *u, ph[40];
  guint16 c;
  gsize phl;

  addr_of (src, &s);
  addr_of (dst, &d);
  p = ip_packet_new (&s, &d, IPPROTO_UDP, l4, (guint16) (0x1200 | fill), 0, &ip_len);
  phl = pseudo_header (ph, s.addr, d.addr, modike_addr_len (&s), IPPROTO_UDP, l4);
  u = p->data + ip_len;
  u[0] = sport >> 8, u[1] = sport & 0xff, u[2] = dport >> 8, u[3] = dport & 0xff;
  u[4] = l4 >> 8, u[5] = l4 & 0xff;
  for (gsize i = 0; i < payload; i++)
    u[8 + i] = (guint8) (fill + i * 7);
  {
    g_autoptr (GByteArray) tmp = g_byte_array_new ();
    g_byte_array_append (tmp, ph, phl);
    g_byte_array_append (tmp, u, l4);
    c = datapath_checksum (tmp->data, tmp->len);
    if (c == 0)
      c = 0xffff;
    memcpy (u + 6, &c, 2);
  }
  return p;
}

void
assert_l4_checksum (const guint8 *pkt, gsize len)
{
  g_autoptr (GByteArray) tmp = g_byte_array_new ();
  guint8 ph[40];
  gsize ip_len, phl;

  if (pkt[0] >> 4 == 4)
    {
      ip_len = (pkt[0] & 15) * 4;
      g_assert_cmpuint (datapath_checksum (pkt, ip_len), ==, 0);
      phl = pseudo_header (ph, pkt + 12, pkt + 16, 4, pkt[9], len - ip_len);
    }
  else
    {
      ip_len = 40;
      phl = pseudo_header (ph, pkt + 8, pkt + 24, 16, pkt[6], len - ip_len);
    }
  g_byte_array_append (tmp, ph, phl);
  g_byte_array_append (tmp, pkt + ip_len, len - ip_len);
  g_assert_cmpuint (datapath_checksum (tmp->data, tmp->len), ==, 0);
}

GByteArray *
tcp_packet (const char *src, const char *dst, guint32 seq, gsize payload, guint8 flags, gboolean partial)
{
  ModikeAddr s, d;
  GByteArray *p;
  gsize ip_len, l4 = 20 + payload;
  guint8 *t;
  guint16 c;

  addr_of (src, &s);
  addr_of (dst, &d);
  p = ip_packet_new (&s, &d, IPPROTO_TCP, l4, 0x4000, 0x40 /* DF */, &ip_len);
  t = p->data + ip_len;
  t[0] = 0x30, t[1] = 0x39, t[2] = 0x00, t[3] = 0x50;
  t[4] = seq >> 24, t[5] = (seq >> 16) & 0xff, t[6] = (seq >> 8) & 0xff, t[7] = seq & 0xff;
  t[8] = 0, t[9] = 0, t[10] = 0x10, t[11] = 0x01;
  t[12] = 5 << 4;
  t[13] = flags;
  t[14] = 0xff, t[15] = 0xff;
  for (gsize i = 0; i < payload; i++)
    t[20 + i] = (guint8) (i * 13 + i / 251);
  {
    g_autoptr (GByteArray) tmp = g_byte_array_new ();
    guint8 ph[40];

    g_byte_array_append (tmp, ph, pseudo_header (ph, s.addr, d.addr, modike_addr_len (&s), IPPROTO_TCP, l4));
    if (partial)
      {
        /* The kernel stores the folded, uncomplemented pseudo sum. */
        c = (guint16) ~datapath_checksum (tmp->data, tmp->len);
      }
    else
      {
        g_byte_array_append (tmp, t, l4);
        c = datapath_checksum (tmp->data, tmp->len);
      }
    memcpy (t + 16, &c, 2);
  }
  return p;
}

void
vnet_hdr (guint8 out[10], guint8 flags, guint8 type, guint16 hdr_len, guint16 gso, guint16 cstart, guint16 coff)
{
  out[0] = flags;
  out[1] = type;
  memcpy (out + 2, &hdr_len, 2);
  memcpy (out + 4, &gso, 2);
  memcpy (out + 6, &cstart, 2);
  memcpy (out + 8, &coff, 2);
}

guint
check_received_tcp (const GByteArray *got, guint16 mss, GByteArray *joined)
{
  DatapathVnetHdr vh;
  const guint8 *ip = got->data + 10;
  gsize len = got->len - 10, ip_len = ip[0] >> 4 == 4 ? 20 : 40;

  g_assert_cmpuint (got->len, >, 10 + ip_len + 20);
  datapath_vnet_hdr_parse (got->data, &vh);
  if (vh.gso_type == VIRTIO_NET_HDR_GSO_NONE)
    {
      g_assert_cmpuint (vh.flags, ==, VIRTIO_NET_HDR_F_DATA_VALID);
      g_assert_cmpuint (len, <=, ip_len + 20 + mss);
      assert_l4_checksum (ip, len);
      g_byte_array_append (joined, ip + ip_len + 20, len - ip_len - 20);
      return 1;
    }
  else
    {
      g_autoptr (GByteArray) copy = g_byte_array_new ();
      guint8 seg[2048];
      DatapathGso g;
      gsize n;
      guint segs = 0;

      /* Coalesced: a TSO-style packet with a partial checksum. */
      g_assert_cmpuint (vh.gso_type, ==, ip_len == 20 ? VIRTIO_NET_HDR_GSO_TCPV4 : VIRTIO_NET_HDR_GSO_TCPV6);
      g_assert_cmpuint (vh.flags, ==, VIRTIO_NET_HDR_F_NEEDS_CSUM);
      g_assert_cmpuint (vh.gso_size, ==, mss);
      g_assert_cmpuint (vh.hdr_len, ==, ip_len + 20);
      g_assert_cmpuint (vh.csum_start, ==, ip_len);
      g_assert_cmpuint (vh.csum_offset, ==, 16);
      if (ip_len == 20)
        {
          g_assert_cmpuint ((gsize) (ip[2] << 8 | ip[3]), ==, len);
          g_assert_cmpuint (datapath_checksum (ip, 20), ==, 0);
        }
      else
        g_assert_cmpuint ((gsize) (ip[4] << 8 | ip[5]), ==, len - 40);
      /* The partial checksum completes to a valid one ... */
      g_byte_array_append (copy, ip, len);
      g_assert_true (datapath_complete_csum (&vh, copy->data, copy->len));
      assert_l4_checksum (copy->data, copy->len);
      /* ... and segmenting it again gives valid MSS-sized segments. */
      g_assert_true (datapath_gso_init (&g, &vh, ip, len));
      while ((n = datapath_gso_next (&g, seg)) != 0)
        {
          assert_l4_checksum (seg, n);
          segs++;
        }
      g_assert_cmpuint (segs, >=, 2);
      g_byte_array_append (joined, ip + ip_len + 20, len - ip_len - 20);
      return segs;
    }
}
