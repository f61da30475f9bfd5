/* Packets for the esp-datapath suite: IPv4/IPv6 UDP and TCP packets with
 * valid (or TSO-style partial) checksums, virtio_net_hdrs, and checks of
 * what an adapter with offloads received. Shared by test-packet.c (the
 * packet helpers alone) and test-datapath.c (two datapaths). */
#pragma once

#include "datapath.h"

G_BEGIN_DECLS

void addr_of (const char *text, ModikeAddr *a);
/* A zeroed packet with room for l4 bytes of proto after its IPv4 (with id
 * and flags) or IPv6 header, which is filled in; *ip_len its length. */
GByteArray *ip_packet_new (const ModikeAddr *s, const ModikeAddr *d, guint8 proto, gsize l4, guint16 id,
                           guint8 flags, gsize *ip_len);
/* A UDP packet (v4 or v6 by the addresses) with valid checksums. */
GByteArray *udp_packet (const char *src, const char *dst, guint16 sport, guint16 dport, gsize payload, guint8 fill);
/* A TCP packet of `payload` bytes, checksum left as CHECKSUM_PARTIAL
 * would (pseudo-header sum only) when partial, else complete. */
GByteArray *tcp_packet (const char *src, const char *dst, guint32 seq, gsize payload, guint8 flags,
                        gboolean partial);
/* Checks the L4 checksum of an IP packet (TCP or UDP, no options). */
void assert_l4_checksum (const guint8 *pkt, gsize len);
void vnet_hdr (guint8 out[10], guint8 flags, guint8 type, guint16 hdr_len, guint16 gso, guint16 cstart,
               guint16 coff);
/* What an adapter with offloads got: a plain packet (DATA_VALID) or a GRO
 * super packet, checked to be what TSO would have made; its TCP payload is
 * appended to `joined`. Returns the number of segments it stands for. */
guint check_received_tcp (const GByteArray *got, guint16 mss, GByteArray *joined);

/* test-packet.c */
void packet_add_tests (void);

G_END_DECLS
