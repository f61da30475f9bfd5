/* Packet helpers of the esp_user datapath: the Internet checksum, the
 * selector of an IP packet, the virtio_net_hdr, and software segmentation
 * (TSO/USO) of the GSO packets an adapter with offloads hands over. */
#include "datapath-private.h"

#include <linux/virtio_net.h>

static guint64
csum_acc (guint64 sum, const guint8 *p, gsize len)
{
  /* Native-order words: the ones' complement sum is byte-order neutral
   * (RFC 1071 2(B)) as long as the result is stored the same way. */
  while (len >= 8)
    {
      guint32 a, b;
      memcpy (&a, p, 4);
      memcpy (&b, p + 4, 4);
      sum += (guint64) a + b;
      p += 8, len -= 8;
    }
  if (len >= 4)
    {
      guint32 a;
      memcpy (&a, p, 4);
      sum += a;
      p += 4, len -= 4;
    }
  if (len >= 2)
    {
      guint16 a;
      memcpy (&a, p, 2);
      sum += a;
      p += 2, len -= 2;
    }
  if (len == 1)
    {
      guint8 last[2] = { p[0], 0 };
      guint16 a;
      memcpy (&a, last, 2);
      sum += a;
    }
  return sum;
}

guint16
datapath_checksum (const guint8 *data, gsize len)
{
  return dp_csum_fold (csum_acc (0, data, len));
}

guint64
dp_pseudo_sum (int family, const guint8 *ip, guint8 proto, gsize l4_len)
{
  guint8 ph[40];
  gsize n;

  if (family == AF_INET)
    {
      memcpy (ph, ip + 12, 8);
      ph[8] = 0;
      ph[9] = proto;
      dp_put16 (ph + 10, (guint16) l4_len);
      n = 12;
    }
  else
    {
      memcpy (ph, ip + 8, 32);
      dp_put32 (ph + 32, (guint32) l4_len);
      ph[36] = ph[37] = ph[38] = 0;
      ph[39] = proto;
      n = 40;
    }
  return csum_acc (0, ph, n);
}

static gboolean
has_ports (guint8 proto)
{
  return proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_SCTP || proto == IPPROTO_UDPLITE
         || proto == IPPROTO_DCCP;
}

gboolean
datapath_packet_selector (const guint8 *pkt, gsize len, ModikeSelector *sel)
{
  ModikeReader r, l4;
  guint8 b0, proto;
  gboolean first_fragment = TRUE;

  memset (sel, 0, sizeof *sel);
  modike_reader_init (&r, pkt, len);
  if (!modike_reader_u8 (&r, &b0))
    return FALSE;
  if (b0 >> 4 == 4)
    {
      guint16 tot, frag;
      gsize ihl = (gsize) (b0 & 0x0f) * 4;

      if (ihl < 20 || !modike_reader_skip (&r, 1) || !modike_reader_u16 (&r, &tot) || !modike_reader_skip (&r, 2)
          || !modike_reader_u16 (&r, &frag) || !modike_reader_skip (&r, 1) || !modike_reader_u8 (&r, &proto)
          || !modike_reader_skip (&r, 2) || !modike_reader_copy (&r, sel->local.addr, 4)
          || !modike_reader_copy (&r, sel->remote.addr, 4) || tot < ihl || tot > len
          || !modike_reader_skip (&r, ihl - 20) || !modike_reader_sub (&r, tot - ihl, &l4))
        return FALSE;
      /* l4: the rest of this packet as its header says (trailing bytes ignored). */
      sel->local.family = sel->remote.family = AF_INET;
      first_fragment = (frag & 0x1fff) == 0;
    }
  else if (b0 >> 4 == 6)
    {
      guint16 plen;

      if (!modike_reader_skip (&r, 3) || !modike_reader_u16 (&r, &plen) || !modike_reader_u8 (&r, &proto)
          || !modike_reader_skip (&r, 1) || !modike_reader_copy (&r, sel->local.addr, 16)
          || !modike_reader_copy (&r, sel->remote.addr, 16) || !modike_reader_sub (&r, plen, &l4))
        return FALSE;
      sel->local.family = sel->remote.family = AF_INET6;
      /* Walk the extension headers to the upper layer (bounded). */
      for (int i = 0; i < 8; i++)
        {
          guint8 next, hl;
          guint16 off;

          if (proto == IPPROTO_HOPOPTS || proto == IPPROTO_ROUTING || proto == IPPROTO_DSTOPTS)
            {
              if (!modike_reader_u8 (&l4, &next) || !modike_reader_u8 (&l4, &hl)
                  || !modike_reader_skip (&l4, 6 + (gsize) hl * 8))
                return FALSE;
            }
          else if (proto == IPPROTO_FRAGMENT)
            {
              if (!modike_reader_u8 (&l4, &next) || !modike_reader_skip (&l4, 1) || !modike_reader_u16 (&l4, &off)
                  || !modike_reader_skip (&l4, 4))
                return FALSE;
              if ((off >> 3) != 0)
                first_fragment = FALSE;
            }
          else if (proto == IPPROTO_AH)
            {
              if (!modike_reader_u8 (&l4, &next) || !modike_reader_u8 (&l4, &hl)
                  || !modike_reader_skip (&l4, ((gsize) hl + 2) * 4 - 2))
                return FALSE;
            }
          else
            break;
          proto = next;
          if (!first_fragment)
            break;
        }
    }
  else
    return FALSE;

  sel->proto = proto;
  if (!first_fragment)
    return TRUE; /* no ports in later fragments: they match "any" ports */
  if (has_ports (proto))
    {
      guint16 sp, dp;
      if (modike_reader_u16 (&l4, &sp) && modike_reader_u16 (&l4, &dp))
        sel->local_port = sp, sel->remote_port = dp;
    }
  else if (proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6)
    {
      guint8 type, code;
      if (modike_reader_u8 (&l4, &type) && modike_reader_u8 (&l4, &code))
        sel->local_port = (guint16) (type << 8 | code);
    }
  return TRUE;
}

void
datapath_vnet_hdr_parse (const guint8 raw[DATAPATH_VNET_HDR_LEN], DatapathVnetHdr *out)
{
  /* tun uses the host's byte order for the legacy header. */
  out->flags = raw[0];
  out->gso_type = raw[1];
  memcpy (&out->hdr_len, raw + 2, 2);
  memcpy (&out->gso_size, raw + 4, 2);
  memcpy (&out->csum_start, raw + 6, 2);
  memcpy (&out->csum_offset, raw + 8, 2);
}

gboolean
datapath_complete_csum (const DatapathVnetHdr *vh, guint8 *pkt, gsize len)
{
  gsize start = vh->csum_start, at = (gsize) vh->csum_start + vh->csum_offset;
  guint16 c;

  if (!(vh->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM))
    return TRUE;
  if (at + 2 > len || start >= len)
    return FALSE;
  /* The field already holds the pseudo-header sum (CHECKSUM_PARTIAL). */
  c = dp_csum_fold (csum_acc (0, pkt + start, len - start));
  if (c == 0 && vh->csum_offset == 6)
    c = 0xffff; /* UDP: 0 means "no checksum" */
  dp_store_csum (pkt + at, c);
  return TRUE;
}

gboolean
datapath_gso_init (DatapathGso *g, const DatapathVnetHdr *vh, const guint8 *pkt, gsize len)
{
  ModikeReader r;
  guint8 b0, proto;
  guint type = vh->gso_type & ~VIRTIO_NET_HDR_GSO_ECN;

  memset (g, 0, sizeof *g);
  g->mss = vh->gso_size;
  if (g->mss == 0)
    return FALSE;
  modike_reader_init (&r, pkt, len);
  if (!modike_reader_u8 (&r, &b0))
    return FALSE;
  if (b0 >> 4 == 4)
    {
      guint16 tot, id, frag;
      gsize ihl = (gsize) (b0 & 0x0f) * 4;

      if ((type != VIRTIO_NET_HDR_GSO_TCPV4 && type != VIRTIO_NET_HDR_GSO_UDP_L4) || ihl < 20
          || !modike_reader_skip (&r, 1) || !modike_reader_u16 (&r, &tot) || !modike_reader_u16 (&r, &id)
          || !modike_reader_u16 (&r, &frag) || !modike_reader_skip (&r, 1) || !modike_reader_u8 (&r, &proto)
          || tot < ihl || tot > len || (frag & 0x3fff) != 0)
        return FALSE;
      g->family = AF_INET;
      g->l4_off = ihl;
      g->ip_id = id;
      len = tot;
    }
  else if (b0 >> 4 == 6)
    {
      guint16 plen;

      if ((type != VIRTIO_NET_HDR_GSO_TCPV6 && type != VIRTIO_NET_HDR_GSO_UDP_L4) || !modike_reader_skip (&r, 3)
          || !modike_reader_u16 (&r, &plen) || !modike_reader_u8 (&r, &proto) || (gsize) plen + 40 > len)
        return FALSE;
      g->family = AF_INET6;
      g->l4_off = 40; /* the kernel puts no extension headers on these */
      len = (gsize) plen + 40;
    }
  else
    return FALSE;

  modike_reader_init (&r, pkt + g->l4_off, len - g->l4_off);
  if (proto == IPPROTO_TCP && type != VIRTIO_NET_HDR_GSO_UDP_L4)
    {
      guint8 doff;
      if (!modike_reader_skip (&r, 4) || !modike_reader_u32 (&r, &g->tcp_seq) || !modike_reader_skip (&r, 4)
          || !modike_reader_u8 (&r, &doff) || (doff >> 4) < 5)
        return FALSE;
      g->hdr = g->l4_off + (gsize) (doff >> 4) * 4;
    }
  else if (proto == IPPROTO_UDP && type == VIRTIO_NET_HDR_GSO_UDP_L4)
    g->hdr = g->l4_off + 8;
  else
    return FALSE;
  if (g->hdr >= len)
    return FALSE;
  g->proto = proto;
  g->pkt = pkt;
  g->len = len;
  return TRUE;
}

gsize
datapath_gso_next (DatapathGso *g, guint8 *out)
{
  gsize payload = g->len - g->hdr, chunk, seglen, l4len;
  gboolean last;
  guint8 *l4;
  guint16 c;

  if (g->off >= payload)
    return 0;
  chunk = MIN ((gsize) g->mss, payload - g->off);
  last = g->off + chunk == payload;
  memcpy (out, g->pkt, g->hdr);
  memcpy (out + g->hdr, g->pkt + g->hdr + g->off, chunk);
  seglen = g->hdr + chunk;
  if (g->family == AF_INET)
    {
      dp_put16 (out + 2, (guint16) seglen);
      dp_put16 (out + 4, (guint16) (g->ip_id + g->n));
      out[10] = out[11] = 0;
      dp_store_csum (out + 10, datapath_checksum (out, g->l4_off));
    }
  else
    dp_put16 (out + 4, (guint16) (seglen - 40));
  l4 = out + g->l4_off;
  l4len = seglen - g->l4_off;
  if (g->proto == IPPROTO_TCP)
    {
      /* Like the kernel's TCP GSO: FIN/PSH on the last, CWR on the first. */
      dp_put32 (l4 + 4, g->tcp_seq + (guint32) g->off);
      if (!last)
        l4[13] &= ~(0x01 | 0x08);
      if (g->n > 0)
        l4[13] &= ~0x80;
      l4[16] = l4[17] = 0;
      c = dp_csum_fold (csum_acc (dp_pseudo_sum (g->family, out, IPPROTO_TCP, l4len), l4, l4len));
      dp_store_csum (l4 + 16, c);
    }
  else
    {
      dp_put16 (l4 + 4, (guint16) l4len);
      l4[6] = l4[7] = 0;
      c = dp_csum_fold (csum_acc (dp_pseudo_sum (g->family, out, IPPROTO_UDP, l4len), l4, l4len));
      dp_store_csum (l4 + 6, c == 0 ? 0xffff : c);
    }
  g->off += chunk;
  g->n++;
  return seglen;
}
