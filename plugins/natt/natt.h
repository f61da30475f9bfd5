/* NAT traversal (RFC 3947/3948 and drafts 02/03): vendor IDs (peer option
 * natt.versions), NAT-D detection, the move to port 4500, the
 * UDP-encapsulated modes, NAT keepalives (natt.keepalive) and NAT-OA in
 * transport mode, and a client that roams (natt.roam: its local address
 * went away, it reconnects). Following a peer whose NAT mapping changed
 * is the core's (it knows which messages authenticated). */
#pragma once

#include <modike/modike.h>

G_BEGIN_DECLS

#define NATT_PORT 4500
#define NATT_KEEPALIVE_DEFAULT 20 /* seconds (peer option natt.keepalive) */
#define NATT_ROAM_CHECK_DEFAULT 5 /* seconds (peer option natt.roam-check) */

typedef enum {
  NATT_NONE = 0,
  NATT_DRAFT_02 = 2,
  NATT_DRAFT_03 = 3,
  NATT_RFC = 3947,
} NattVersion;

/* Bits of the peer option natt.versions. */
#define NATT_MASK_RFC 1u
#define NATT_MASK_DRAFT_03 2u
#define NATT_MASK_DRAFT_02 4u
#define NATT_ALL_VERSIONS 7u
guint natt_version_mask (NattVersion v);

/* What natt knows about one IKE SA (its plugin data). */
typedef struct {
  NattVersion version;     /* best version both ends support */
  gboolean local_nat;      /* NAT-D: this end is behind a NAT */
  guint keepalive_s;       /* 0 = none */
  guint keepalive_timer;   /* SA timer id, 0 = not armed */
  guint keepalives;        /* sent on this SA */
  gboolean keepalive_failing; /* the last send failed (logged once) */
  gboolean have_oa;        /* the peer sent NAT-OA (transport mode) */
  ModikeAddr oa_i, oa_r;   /* its original initiator and responder addresses */
  guint16 encap_seen;      /* the last encapsulation mode value received (tests) */
  guint roam_s;            /* natt.roam-check interval; 0 = only when a send fails */
  guint roam_timer;        /* SA timer id, 0 = not armed */
  gboolean roam_logged;    /* a pinned local address is gone (logged once) */
} NattSa;

gboolean natt_init (ModikePlugin *plugin, GError **error);
void natt_fini (ModikePlugin *plugin);

/* HASH(CKY-I | CKY-R | IP | Port), RFC 3947 3.2; out gets hash_len bytes. */
void natt_hash (ModikeHashAlg alg, const guint8 icookie[8], const guint8 rcookie[8],
                const ModikeAddr *addr, guint8 *out);

/* Compares received NAT-D hashes: the first is the receiver's address as
 * the sender saw it, the others the sender's own addresses. */
void natt_detect (ModikeHashAlg alg, const guint8 icookie[8], const guint8 rcookie[8],
                  const ModikeAddr *local, const ModikeAddr *remote,
                  const ModikePayload *const *natd, guint n, gboolean *local_nat, gboolean *remote_nat);

/* The encapsulation mode value for a plain mode and version, and back. */
guint16 natt_encap_value (NattVersion v, guint16 mode);
gboolean natt_encap_parse (guint16 value, guint16 *mode, gboolean *udp);

/* NAT keepalives sent on sa so far (tests, status). */
guint natt_sa_keepalives (ModikeIkeSa *sa);

/* The NAT-OA addresses the peer sent in Quick Mode (FALSE: none). */
gboolean natt_sa_nat_oa (ModikeIkeSa *sa, ModikeAddr *oa_i, ModikeAddr *oa_r);

/* Whether addr (its IP) is an address of this host; getifaddrs by
 * default. natt_set_addr_is_local replaces it (tests; NULL: the default). */
typedef gboolean (*NattAddrIsLocalFunc) (const ModikeAddr *addr);
gboolean natt_addr_is_local (const ModikeAddr *addr);
void natt_set_addr_is_local (NattAddrIsLocalFunc fn);

/* The vendor ID bytes for a version (16 bytes). */
const guint8 *natt_vendor_id (NattVersion v, gboolean draft02_newline);

G_END_DECLS
