/* The esp_user datapath runtime: worker threads, SA and policy tables read
 * without a global lock, the acquire queue, and I/O on adapter queues and
 * UDP/raw sockets. Internal to the plugin and its tests. */
#pragma once

#include "esp.h"

G_BEGIN_DECLS

#define DATAPATH_DEFAULT_REPLAY_WINDOW 1024
#define DATAPATH_DEFAULT_ACQUIRE_QUEUE 64
#define DATAPATH_MAX_ACQUIRE_QUEUE 4096
/* One esp_sa_* thread index is kept for the main loop (acquire queue
 * flush), so at most ESP_MAX_THREADS - 1 workers. */
#define DATAPATH_MAX_WORKERS (ESP_MAX_THREADS - 1)

typedef struct _Datapath Datapath;

Datapath *datapath_new (void);
/* Stops the workers if the core did not. */
void datapath_free (Datapath *dp);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Datapath, datapath_free)

/* <esp_user threads= replay-window= acquire-queue=/>: threads 0 = one per
 * CPU, taken at the next start; the window applies to SAs added later. */
void datapath_configure (Datapath *dp, guint threads, guint replay_window, guint acquire_queue);
/* While a policy still has no SA, acquire again after this long
 * (monotonic microseconds; default 2 s; the core rate-limits too). */
void datapath_set_acquire_retry (Datapath *dp, gint64 usec);
/* Whether start opens raw ESP and raw IP sockets (default TRUE). */
void datapath_set_raw_sockets (Datapath *dp, gboolean enable);
guint datapath_get_n_threads (const Datapath *dp);
/* Raw ESP sockets opened at start (0 = ESP over IP unavailable). */
guint datapath_get_n_raw_esp (const Datapath *dp);

/* user = the Datapath. */
extern const ModikeDatapathOps datapath_ops;

/* Counters not tied to one SA (atomic snapshots). */
typedef struct {
  guint64 no_policy;     /* outbound packet matched no policy: dropped */
  guint64 discarded;     /* DISCARD policies */
  guint64 bypassed;      /* BYPASS packets sent in the clear */
  guint64 queued;        /* packets that waited for an acquire */
  guint64 queue_drops;   /* acquire queue full or policy gone */
  guint64 acquires;      /* acquire calls made */
  guint64 unknown_spi;   /* inbound ESP with no SA */
  guint64 malformed;     /* unparsable packets and datagrams */
  guint64 keepalives;    /* NAT keepalives received */
  guint64 ike;           /* IKE datagrams passed to the core */
  guint64 no_adapter;    /* decrypted but no adapter for the peer */
  guint64 send_errors;   /* send/write failures */
} DatapathCounters;
void datapath_get_counters (Datapath *dp, DatapathCounters *out);

typedef struct {
  guint64 discarded, queued, queue_drops, acquires;
  guint queue_len;       /* packets waiting now */
} DatapathPolicyCounters;
/* FALSE if the policy is unknown. */
gboolean datapath_get_policy_counters (Datapath *dp, guint32 spd_id, DatapathPolicyCounters *out);

/* What the writers rebuilt: SA and host policy changes must not show up
 * in `snapshots`, and the tables' rebuilds stay logarithmic in the
 * entries added. */
typedef struct {
  guint64 snapshots;     /* policy and fd snapshots built */
  guint64 in_rebuilds;   /* inbound SA table grown, shrunk or cleaned */
  guint64 in_copied;     /* SA entries those rebuilds copied */
  guint in_capacity;     /* slots of the inbound table now */
  guint in_sas;          /* inbound SAs in it */
  guint in_tombstones;   /* removed slots not yet cleaned */
  /* Policies whose remote selector is one address (a client's) live in
   * the host table: their changes must not show up in `snapshots`. */
  guint64 host_rebuilds; /* host table grown, shrunk or replaced (policies_set) */
  guint64 host_copied;   /* address sets those rebuilds copied */
  guint host_capacity;   /* slots of the host table now */
  guint host_addrs;      /* remote addresses in it */
  guint host_tombstones;
  guint host_policies;   /* policies in it */
  guint rest_policies;   /* the others (in the snapshot) */
} DatapathTableStats;
void datapath_get_table_stats (Datapath *dp, DatapathTableStats *out);

/* The plugin's init (descriptor in esp_user-plugin.c). No fini: the core
 * stops the datapath before unloading, and the plugin data's destroy
 * (datapath_free) stops it if not and frees everything. */
gboolean esp_user_init (ModikePlugin *plugin, GError **error);

/* ---- Packet helpers (exposed for the tests) ---- */

/* An IP packet's selector values (outbound: local = source). FALSE if
 * it is not a well-formed IPv4/IPv6 packet. */
gboolean datapath_packet_selector (const guint8 *pkt, gsize len, ModikeSelector *sel);

/* The Internet checksum (RFC 1071) of a buffer, ready to store. */
guint16 datapath_checksum (const guint8 *data, gsize len);

/* Software segmentation of a packet read with a virtio_net_hdr: TSO
 * (TCPv4/TCPv6) and USO (UDP_L4) into gso_size pieces with fixed
 * headers and checksums, or just the checksum for NEEDS_CSUM. */
typedef struct {
  guint8 flags, gso_type;
  guint16 hdr_len, gso_size, csum_start, csum_offset;
} DatapathVnetHdr;
#define DATAPATH_VNET_HDR_LEN 10
void datapath_vnet_hdr_parse (const guint8 raw[DATAPATH_VNET_HDR_LEN], DatapathVnetHdr *out);

typedef struct {
  const guint8 *pkt;
  gsize len;
  gsize hdr;        /* IP + L4 header bytes copied into every segment */
  gsize l4_off;
  gsize off;        /* payload bytes done */
  guint16 mss;
  guint8 proto;     /* IPPROTO_TCP or IPPROTO_UDP */
  int family;
  guint16 ip_id;
  guint32 tcp_seq;
  guint n;          /* segments made */
} DatapathGso;
/* FALSE: not a segmentable packet (bad headers or GSO type). */
gboolean datapath_gso_init (DatapathGso *g, const DatapathVnetHdr *vh, const guint8 *pkt, gsize len);
/* Writes the next segment into out (room for hdr + mss bytes) and
 * returns its length; 0 when all payload is done. */
gsize datapath_gso_next (DatapathGso *g, guint8 *out);
/* NEEDS_CSUM without GSO: completes the checksum in place. */
gboolean datapath_complete_csum (const DatapathVnetHdr *vh, guint8 *pkt, gsize len);

/* GRO for adapters with offloads: consecutive TCP segments of a flow
 * become one GSO packet with a partial checksum, written with writev
 * (no copy: the packets must stay put until the flush). */
typedef struct _DatapathGro DatapathGro;
DatapathGro *datapath_gro_new (void);
void datapath_gro_free (DatapathGro *gro);
/* FALSE: not a segment GRO takes (its flow was flushed first, so the
 * caller writes it now and order holds). `adapter` keys the flows. */
gboolean datapath_gro_add (DatapathGro *gro, gconstpointer adapter, int fd, guint8 *pkt, gsize len);
/* Writes every flow; returns how many writes failed. */
guint datapath_gro_flush (DatapathGro *gro);

G_END_DECLS
