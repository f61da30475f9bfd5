/* The esp-datapath suite, part one: the datapath's packet helpers alone
 * (checksums, selectors, TSO/USO segmentation, completing a partial
 * checksum, GRO), no threads and no datapath (test-datapath.c has those). */
#include "packets.h"

#include <errno.h>
#include <linux/virtio_net.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void
test_checksum (void)
{
  /* RFC 1071 section 3: the sum of these words is ddf2, checksum 220d. */
  static const guint8 words[] = { 0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7 };
  guint16 c = datapath_checksum (words, sizeof words);
  guint8 be[2];

  memcpy (be, &c, 2);
  g_assert_cmpuint (be[0], ==, 0x22);
  g_assert_cmpuint (be[1], ==, 0x0d);
  /* Odd lengths pad with a zero byte. */
  c = datapath_checksum ((const guint8[]) { 0x12 }, 1);
  memcpy (be, &c, 2);
  g_assert_cmpuint (be[0], ==, 0xed);
  g_assert_cmpuint (be[1], ==, 0xff);
}

static void
test_selector (void)
{
  g_autoptr (GByteArray) u4 = udp_packet ("10.1.0.5", "10.2.0.7", 1111, 53, 10, 1);
  g_autoptr (GByteArray) u6 = udp_packet ("fd00:1::5", "fd00:2::7", 2222, 443, 10, 1);
  g_autoptr (GByteArray) t4 = tcp_packet ("10.1.0.5", "10.2.0.7", 1, 10, 0x18, FALSE);
  ModikeSelector sel;
  ModikeAddr a;
  guint8 icmp[28] = { 0x45, 0, 0, 28, 0, 0, 0, 0, 64, IPPROTO_ICMP, 0, 0, 10, 1, 0, 5, 10, 2, 0, 7, 8, 0 };
  guint8 frag[28];
  guint8 v6ext[40 + 8 + 8 + 8];

  g_assert_true (datapath_packet_selector (u4->data, u4->len, &sel));
  addr_of ("10.1.0.5", &a);
  g_assert_true (modike_addr_equal_ip (&sel.local, &a));
  addr_of ("10.2.0.7", &a);
  g_assert_true (modike_addr_equal_ip (&sel.remote, &a));
  g_assert_cmpuint (sel.proto, ==, IPPROTO_UDP);
  g_assert_cmpuint (sel.local_port, ==, 1111);
  g_assert_cmpuint (sel.remote_port, ==, 53);

  g_assert_true (datapath_packet_selector (u6->data, u6->len, &sel));
  g_assert_cmpint (sel.local.family, ==, AF_INET6);
  addr_of ("fd00:2::7", &a);
  g_assert_true (modike_addr_equal_ip (&sel.remote, &a));
  g_assert_cmpuint (sel.remote_port, ==, 443);

  g_assert_true (datapath_packet_selector (t4->data, t4->len, &sel));
  g_assert_cmpuint (sel.proto, ==, IPPROTO_TCP);
  g_assert_cmpuint (sel.local_port, ==, 12345);
  g_assert_cmpuint (sel.remote_port, ==, 80);

  /* ICMP: type<<8|code in local_port (echo request 8/0). */
  g_assert_true (datapath_packet_selector (icmp, sizeof icmp, &sel));
  g_assert_cmpuint (sel.proto, ==, IPPROTO_ICMP);
  g_assert_cmpuint (sel.local_port, ==, 8 << 8);

  /* A later fragment has no ports. */
  memcpy (frag, u4->data, sizeof frag);
  frag[2] = 0, frag[3] = sizeof frag;
  frag[6] = 0x00, frag[7] = 0x10;
  g_assert_true (datapath_packet_selector (frag, sizeof frag, &sel));
  g_assert_cmpuint (sel.local_port, ==, 0);
  g_assert_cmpuint (sel.remote_port, ==, 0);

  /* IPv6 hop-by-hop + destination options, then UDP. */
  memset (v6ext, 0, sizeof v6ext);
  memcpy (v6ext, u6->data, 40);
  v6ext[4] = 0, v6ext[5] = 24;
  v6ext[6] = IPPROTO_HOPOPTS;
  v6ext[40] = IPPROTO_DSTOPTS;
  v6ext[48] = IPPROTO_UDP;
  v6ext[56] = 0x04, v6ext[57] = 0xd2, v6ext[58] = 0x00, v6ext[59] = 0x35;
  g_assert_true (datapath_packet_selector (v6ext, sizeof v6ext, &sel));
  g_assert_cmpuint (sel.proto, ==, IPPROTO_UDP);
  g_assert_cmpuint (sel.local_port, ==, 1234);
  g_assert_cmpuint (sel.remote_port, ==, 53);

  /* Truncations never read past the end; headers cut short fail. */
  for (gsize n = 0; n < 20; n++)
    g_assert_false (datapath_packet_selector (u4->data, n, &sel));
  for (gsize n = 0; n < 40; n++)
    g_assert_false (datapath_packet_selector (u6->data, n, &sel));
  for (gsize n = 0; n < sizeof v6ext; n++)
    datapath_packet_selector (v6ext, n, &sel);
  /* Total length past the buffer, bad version, short IHL. */
  g_assert_false (datapath_packet_selector (u4->data, u4->len - 1, &sel));
  icmp[0] = 0x55;
  g_assert_false (datapath_packet_selector (icmp, sizeof icmp, &sel));
  icmp[0] = 0x44;
  g_assert_false (datapath_packet_selector (icmp, sizeof icmp, &sel));
}

static void
check_tso (const char *src, const char *dst, guint8 type, gsize payload, guint16 mss)
{
  g_autoptr (GByteArray) big = tcp_packet (src, dst, 0xfffff000u, payload, 0x19 | 0x80, TRUE); /* FIN|PSH|ACK|CWR */
  g_autoptr (GByteArray) joined = g_byte_array_new ();
  gsize ip_len = big->data[0] >> 4 == 4 ? 20 : 40, hdr = ip_len + 20;
  guint8 raw[10], seg[65536 + 128];
  DatapathVnetHdr vh;
  DatapathGso g;
  gsize len;
  guint n = 0;

  vnet_hdr (raw, VIRTIO_NET_HDR_F_NEEDS_CSUM, type, (guint16) hdr, mss, (guint16) ip_len, 16);
  datapath_vnet_hdr_parse (raw, &vh);
  g_assert_cmpuint (vh.gso_size, ==, mss);
  g_assert_true (datapath_gso_init (&g, &vh, big->data, big->len));
  while ((len = datapath_gso_next (&g, seg)) != 0)
    {
      guint8 *t = seg + ip_len;
      guint32 seq = (guint32) t[4] << 24 | t[5] << 16 | t[6] << 8 | t[7];
      gboolean last = joined->len + (len - hdr) == payload;

      g_assert_cmpuint (len, <=, hdr + mss);
      if (!last)
        g_assert_cmpuint (len, ==, hdr + mss);
      if (ip_len == 20)
        {
          g_assert_cmpuint ((gsize) (seg[2] << 8 | seg[3]), ==, len);
          g_assert_cmpuint ((guint) (seg[4] << 8 | seg[5]), ==, 0x4000 + n);
        }
      else
        g_assert_cmpuint ((gsize) (seg[4] << 8 | seg[5]), ==, len - 40);
      g_assert_cmpuint (seq, ==, 0xfffff000u + (guint32) joined->len);
      /* FIN and PSH only on the last, CWR only on the first. */
      g_assert_cmpuint (t[13] & 0x09, ==, last ? 0x09 : 0);
      g_assert_cmpuint (t[13] & 0x80, ==, n == 0 ? 0x80 : 0);
      g_assert_cmpuint (t[13] & 0x10, ==, 0x10);
      assert_l4_checksum (seg, len);
      g_byte_array_append (joined, seg + hdr, len - hdr);
      n++;
    }
  g_assert_cmpuint (n, ==, (payload + mss - 1) / mss);
  g_assert_cmpmem (joined->data, joined->len, big->data + hdr, payload);
}

static void
test_gso_tcp (void)
{
  check_tso ("10.1.0.5", "10.2.0.7", VIRTIO_NET_HDR_GSO_TCPV4, 65000, 1348);
  check_tso ("10.1.0.5", "10.2.0.7", VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN, 3000, 1000);
  check_tso ("10.1.0.5", "10.2.0.7", VIRTIO_NET_HDR_GSO_TCPV4, 2001, 1000);
  check_tso ("fd00:1::5", "fd00:2::7", VIRTIO_NET_HDR_GSO_TCPV6, 64000, 1328);
  check_tso ("fd00:1::5", "fd00:2::7", VIRTIO_NET_HDR_GSO_TCPV6, 1, 1328);
}

static void
test_gso_udp (void)
{
  g_autoptr (GByteArray) big = udp_packet ("10.1.0.5", "10.2.0.7", 4000, 5000, 5000, 3);
  guint8 raw[10], seg[8192];
  DatapathVnetHdr vh;
  DatapathGso g;
  gsize len, done = 0;
  guint n = 0;

  vnet_hdr (raw, VIRTIO_NET_HDR_F_NEEDS_CSUM, 5 /* UDP_L4 */, 28, 1200, 20, 6);
  datapath_vnet_hdr_parse (raw, &vh);
  g_assert_true (datapath_gso_init (&g, &vh, big->data, big->len));
  while ((len = datapath_gso_next (&g, seg)) != 0)
    {
      g_assert_cmpuint ((gsize) (seg[24] << 8 | seg[25]), ==, len - 20);
      assert_l4_checksum (seg, len);
      g_assert_cmpmem (seg + 28, len - 28, big->data + 28 + done, len - 28);
      done += len - 28;
      n++;
    }
  g_assert_cmpuint (done, ==, 5000);
  g_assert_cmpuint (n, ==, 5);

  /* What cannot be segmented: wrong type for the packet, no gso_size, UFO,
   * a header longer than the packet. */
  vnet_hdr (raw, 0, VIRTIO_NET_HDR_GSO_TCPV4, 28, 1200, 0, 0);
  datapath_vnet_hdr_parse (raw, &vh);
  g_assert_false (datapath_gso_init (&g, &vh, big->data, big->len));
  vnet_hdr (raw, 0, 5, 28, 0, 0, 0);
  datapath_vnet_hdr_parse (raw, &vh);
  g_assert_false (datapath_gso_init (&g, &vh, big->data, big->len));
  vnet_hdr (raw, 0, VIRTIO_NET_HDR_GSO_UDP, 28, 1200, 0, 0);
  datapath_vnet_hdr_parse (raw, &vh);
  g_assert_false (datapath_gso_init (&g, &vh, big->data, big->len));
  vnet_hdr (raw, 0, 5, 28, 1200, 0, 0);
  datapath_vnet_hdr_parse (raw, &vh);
  for (gsize cut = 0; cut <= 28; cut++)
    g_assert_false (datapath_gso_init (&g, &vh, big->data, cut));
}

static void
test_complete_csum (void)
{
  g_autoptr (GByteArray) t = tcp_packet ("10.1.0.5", "10.2.0.7", 7, 999, 0x18, TRUE);
  g_autoptr (GByteArray) t6 = tcp_packet ("fd00:1::5", "fd00:2::7", 7, 1000, 0x18, TRUE);
  guint8 raw[10];
  DatapathVnetHdr vh;

  vnet_hdr (raw, VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, 20, 16);
  datapath_vnet_hdr_parse (raw, &vh);
  g_assert_true (datapath_complete_csum (&vh, t->data, t->len));
  assert_l4_checksum (t->data, t->len);
  vnet_hdr (raw, VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, 40, 16);
  datapath_vnet_hdr_parse (raw, &vh);
  g_assert_true (datapath_complete_csum (&vh, t6->data, t6->len));
  assert_l4_checksum (t6->data, t6->len);
  /* The checksum field must lie inside the packet. */
  vnet_hdr (raw, VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, 20, 16);
  datapath_vnet_hdr_parse (raw, &vh);
  g_assert_false (datapath_complete_csum (&vh, t->data, 37));
  g_assert_true (datapath_complete_csum (&vh, t->data, 38));
}

/* Segments of a TCP packet (checksums complete), each in its own buffer. */
static GPtrArray *
tcp_segments (const char *src, const char *dst, guint16 sport, guint32 seq, gsize payload, guint16 mss)
{
  g_autoptr (GByteArray) big = tcp_packet (src, dst, seq, payload, 0x10, FALSE);
  GPtrArray *segs = g_ptr_array_new_with_free_func ((GDestroyNotify) g_byte_array_unref);
  gsize ip_len = big->data[0] >> 4 == 4 ? 20 : 40, n;
  guint8 raw[10], buf[4096];
  DatapathVnetHdr vh;
  DatapathGso g;

  big->data[ip_len] = sport >> 8, big->data[ip_len + 1] = sport & 0xff;
  vnet_hdr (raw, 0, ip_len == 20 ? VIRTIO_NET_HDR_GSO_TCPV4 : VIRTIO_NET_HDR_GSO_TCPV6, 0, mss, 0, 0);
  datapath_vnet_hdr_parse (raw, &vh);
  g_assert_true (datapath_gso_init (&g, &vh, big->data, big->len));
  while ((n = datapath_gso_next (&g, buf)) != 0)
    {
      GByteArray *b = g_byte_array_new ();
      g_byte_array_append (b, buf, n);
      g_ptr_array_add (segs, b);
    }
  return segs;
}

static GByteArray *
recv_now (int fd)
{
  GByteArray *b = g_byte_array_sized_new (65600);
  gssize n;

  g_byte_array_set_size (b, 65600);
  n = recv (fd, b->data, b->len, MSG_DONTWAIT);
  if (n < 0)
    {
      g_assert_true (errno == EAGAIN || errno == EWOULDBLOCK);
      g_byte_array_unref (b);
      return NULL;
    }
  g_byte_array_set_size (b, (guint) n);
  return b;
}

/* Expects exactly these packets (segment counts) in the socket, in order. */
static void
expect_gro_output (int fd, const guint *segs, guint n, guint16 mss, GByteArray *joined)
{
  for (guint i = 0; i < n; i++)
    {
      g_autoptr (GByteArray) got = recv_now (fd);
      g_assert_nonnull (got);
      g_assert_cmpuint (check_received_tcp (got, mss, joined), ==, segs[i]);
    }
  g_assert_null (recv_now (fd));
}

/* Segments [from, to) of a flow, each taken by GRO. */
static void
gro_take (DatapathGro *gro, gpointer tag, int fd, GPtrArray *segs, guint from, guint to)
{
  for (guint i = from; i < to; i++)
    {
      GByteArray *seg = segs->pdata[i];
      g_assert_true (datapath_gro_add (gro, tag, fd, seg->data, seg->len));
    }
}

static void
test_gro (gconstpointer data)
{
  const gboolean v6 = GPOINTER_TO_INT (data);
  const char *src = v6 ? "fd00:1::5" : "10.1.0.5", *dst = v6 ? "fd00:2::7" : "10.2.0.7";
  gsize hl = (v6 ? 40 : 20) + 20;
  DatapathGro *gro = datapath_gro_new ();
  int sp[2];
  static int adapter_tag;
  g_autoptr (GPtrArray) a = tcp_segments (src, dst, 1111, 5000, 10000, 1000);
  g_autoptr (GPtrArray) b = tcp_segments (src, dst, 2222, 9000, 3000, 1000);
  g_autoptr (GPtrArray) c = tcp_segments (src, dst, 3333, 1, 42000, 1400);
  g_autoptr (GPtrArray) c2 = tcp_segments (src, dst, 3333, 42001, 42000, 1400);
  g_autoptr (GByteArray) joined = g_byte_array_new ();
  g_autoptr (GByteArray) fin = tcp_packet (src, dst, 15000, 0, 0x11, FALSE);
  g_autoptr (GByteArray) udp = udp_packet (src, dst, 1, 2, 100, 1);

  g_assert_cmpint (socketpair (AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sp), ==, 0);
  g_assert_cmpuint (a->len, ==, 10);
  fin->data[hl - 20] = 1111 >> 8, fin->data[hl - 19] = 1111 & 0xff; /* flow a's port */

  /* Ten in-order segments: one super packet. */
  gro_take (gro, &adapter_tag, sp[0], a, 0, a->len);
  g_assert_cmpuint (datapath_gro_flush (gro), ==, 0);
  expect_gro_output (sp[1], (const guint[]) { 10 }, 1, 1000, joined);
  g_assert_cmpuint (joined->len, ==, 10000);
  for (guint i = 0; i < a->len; i++)
    {
      GByteArray *seg = a->pdata[i];
      g_assert_cmpmem (joined->data + i * 1000, 1000, seg->data + hl, 1000);
    }

  /* Two flows interleaved: one packet each. A non-TCP packet is not
   * taken and leaves the flows alone. */
  g_byte_array_set_size (joined, 0);
  for (guint i = 0; i < 3; i++)
    {
      GByteArray *sa = a->pdata[i], *sb = b->pdata[i];
      g_assert_true (datapath_gro_add (gro, &adapter_tag, sp[0], sa->data, sa->len));
      g_assert_true (datapath_gro_add (gro, &adapter_tag, sp[0], sb->data, sb->len));
      g_assert_false (datapath_gro_add (gro, &adapter_tag, sp[0], udp->data, udp->len));
    }
  g_assert_null (recv_now (sp[1]));
  datapath_gro_flush (gro);
  expect_gro_output (sp[1], (const guint[]) { 3, 3 }, 2, 1000, joined);

  /* A gap in the sequence starts a new packet. */
  g_byte_array_set_size (joined, 0);
  gro_take (gro, &adapter_tag, sp[0], a, 0, 2);
  gro_take (gro, &adapter_tag, sp[0], a, 3, 5);
  datapath_gro_flush (gro);
  expect_gro_output (sp[1], (const guint[]) { 2, 2 }, 2, 1000, joined);

  /* A FIN is not taken: its flow goes out first. */
  gro_take (gro, &adapter_tag, sp[0], a, 0, 3);
  g_assert_false (datapath_gro_add (gro, &adapter_tag, sp[0], fin->data, fin->len));
  g_byte_array_set_size (joined, 0);
  expect_gro_output (sp[1], (const guint[]) { 3 }, 1, 1000, joined);
  datapath_gro_flush (gro);
  g_assert_null (recv_now (sp[1]));

  /* The same flow for another adapter is another flow. */
  {
    static int other_tag;
    GByteArray *s0 = a->pdata[0], *s1 = a->pdata[1];
    g_assert_true (datapath_gro_add (gro, &adapter_tag, sp[0], s0->data, s0->len));
    g_assert_true (datapath_gro_add (gro, &other_tag, sp[0], s1->data, s1->len));
    datapath_gro_flush (gro);
    expect_gro_output (sp[1], (const guint[]) { 1, 1 }, 2, 1000, joined);
  }

  /* 64 KiB at most: 60 segments of 1400 make two packets. */
  g_byte_array_set_size (joined, 0);
  for (guint i = 0; i < c2->len; i++)
    g_ptr_array_add (c, g_byte_array_ref (c2->pdata[i]));
  gro_take (gro, &adapter_tag, sp[0], c, 0, c->len);
  datapath_gro_flush (gro);
  {
    guint got_segs = 0, packets = 0;
    GByteArray *got;
    while ((got = recv_now (sp[1])) != NULL)
      {
        g_assert_cmpuint (got->len - 10, <=, 65535);
        got_segs += check_received_tcp (got, 1400, joined);
        packets++;
        g_byte_array_unref (got);
      }
    g_assert_cmpuint (got_segs, ==, c->len);
    g_assert_cmpuint (packets, ==, 2);
    g_assert_cmpuint (joined->len, ==, 84000);
  }

  /* More flows than slots: all are written, none lost. */
  {
    GPtrArray *many[10];
    g_byte_array_set_size (joined, 0);
    for (guint f = 0; f < 10; f++)
      {
        many[f] = tcp_segments (src, dst, (guint16) (4000 + f), 7, 2000, 1000);
        gro_take (gro, &adapter_tag, sp[0], many[f], 0, many[f]->len);
      }
    datapath_gro_flush (gro);
    {
      guint got_segs = 0;
      GByteArray *got;
      while ((got = recv_now (sp[1])) != NULL)
        {
          got_segs += check_received_tcp (got, 1000, joined);
          g_byte_array_unref (got);
        }
      g_assert_cmpuint (got_segs, ==, 20);
    }
    for (guint f = 0; f < 10; f++)
      g_ptr_array_unref (many[f]);
  }

  /* A write error is reported by the flush. */
  {
    GByteArray *seg = a->pdata[0];
    g_assert_true (datapath_gro_add (gro, &adapter_tag, -1, seg->data, seg->len));
    g_assert_cmpuint (datapath_gro_flush (gro), ==, 1);
  }
  datapath_gro_free (gro);
  close (sp[0]);
  close (sp[1]);
}

void
packet_add_tests (void)
{
  g_test_add_func ("/datapath/checksum", test_checksum);
  g_test_add_func ("/datapath/selector", test_selector);
  g_test_add_func ("/datapath/gso-tcp", test_gso_tcp);
  g_test_add_func ("/datapath/gso-udp", test_gso_udp);
  g_test_add_func ("/datapath/complete-csum", test_complete_csum);
  g_test_add_data_func ("/datapath/gro/v4", GINT_TO_POINTER (FALSE), test_gro);
  g_test_add_data_func ("/datapath/gro/v6", GINT_TO_POINTER (TRUE), test_gro);
}
