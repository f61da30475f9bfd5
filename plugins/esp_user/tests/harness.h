/* Two esp_user datapaths in one process (test-datapath.c): adapters made
 * of AF_UNIX datagram socketpairs, UDP sockets on loopback, SAs added
 * crosswise. Shared by the esp suite's tests and the scale suite's
 * (test-scale.c), which run from one executable. */
#pragma once

#include "packets.h"

G_BEGIN_DECLS

#define WAIT_MS 10000 /* guard against a hang only; nothing measures time */

typedef struct {
  guint16 transform, key_bits, auth;
  gsize enc_len, auth_len;
} Alg;

extern const Alg alg_cbc_sha1, alg_cbc_sha256, alg_cbc256_sha256, alg_gcm128, alg_gcm256;

typedef struct {
  const char *name;       /* this side's name, the peer name the other uses */
  Datapath *dp;
  ModikeDatapathHost *host;
  int adapter[2];         /* [0] the datapath's end, [1] the test's */
  int udp;
  ModikeAddr addr;        /* the UDP socket's address */
  const char *net4, *net6; /* inner addresses behind this side */
} Side;

typedef struct {
  Side a, b;
} Pair;

typedef struct {
  ModikeLifetime soft, hard;
  gboolean raw;           /* ESP over IP instead of UDP */
  ModikeIpsecMode mode;
  guint32 reqid;          /* 0: the SPI */
} SaOpts;

/* Two started datapaths (2 workers each) with adapters and UDP sockets. */
void pair_init (Pair *p, int outer_family);
void pair_clear (Pair *p);
void range_of (const char *prefix, ModikeAddrRange *r);
ModikeSpdEntry *policy_new (guint32 id, ModikeSpdAction action, const char *local, const char *remote,
                            const char *peer);
/* PROTECT between the sides' v4 nets (id 1) and v6 nets (id 2), on both. */
void pair_policies (Pair *p, ModikeSpdEntry *extra_a);
/* The SA from -> to with this SPI: outbound on `from`, inbound on `to`
 * (only: one direction, 0 both). */
void add_sa (Side *from, Side *to, guint32 spi, guint32 spd_id, const Alg *alg, gboolean v6_inner, const SaOpts *o,
             ModikeDirection only);
void send_packet (Side *s, const GByteArray *pkt);
/* The next packet the datapath wrote to this side's adapter (NULL after WAIT_MS). */
GByteArray *recv_packet (Side *s);
void get_counters (Side *s, DatapathCounters *c);

/* test-scale.c */
void scale_add_tests (void);

G_END_DECLS
