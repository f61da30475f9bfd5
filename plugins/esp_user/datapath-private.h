/* What the files of the esp_user datapath runtime share (not the tests).
 *
 * Writers (the ops, on the main loop) build an immutable snapshot of the
 * policies and fds, publish it with one atomic store and free the old one
 * after every worker passed a quiescent point (QSBR: a worker is
 * "offline" while it sleeps in epoll_wait and announces the epoch it saw
 * when it wakes). SAs change without a new snapshot: inbound SAs live in
 * an open-addressing table whose slots writers set with atomic stores
 * (DpInTab), and each policy's outbound SA is a pointer in its state
 * (DpPolicyState.out); both are freed through the same grace periods.
 * Policies whose remote selector is one address (a client's) are not in
 * the snapshot either: a table like the inbound one, keyed by that
 * address, holds each address's policies as one immutable array that a
 * change replaces with one atomic store (DpHostTab), so a client's
 * policy comes and goes in O(1) without a new snapshot.
 * Workers never lock on the fast path; the only lock they take is a
 * per-policy one while a policy waits for its SA (the acquire queue).
 * Each worker owns its epoll set and preallocated packet slots with room
 * for ESP around them.
 *
 *   packet.c    checksums, selectors, virtio_net_hdr, TSO/USO segmentation
 *   snapshot.c  snapshots, the inbound SA and host policy tables, outbound SAs, QSBR
 *   transmit.c  outbound: adapter reads, SPD lookup, acquire queue, sends
 *   receive.c   inbound: socket reads, ESP input, delivery, GRO
 *   worker.c    worker threads and the fds they watch
 *   ops.c       the Datapath object, ModikeDatapathOps, the plugin's init */
#pragma once

#include "datapath.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#ifndef VIRTIO_NET_HDR_GSO_UDP_L4
#define VIRTIO_NET_HDR_GSO_UDP_L4 5
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef IPPROTO_ESP
#define IPPROTO_ESP 50
#endif

G_BEGIN_DECLS

#define DP_BATCH 64                 /* packets per read/send batch */
#define DP_HEAD 128                 /* before a packet: vnet hdr, ESP, rebuilt IP header */
#define DP_DATA 65536               /* largest packet (GSO, UDP GRO) */
#define DP_TAIL 128
#define DP_SLOT (DP_HEAD + DP_DATA + DP_TAIL)
#define DP_MAX_IO 256               /* fds in all epoll sets */
#define DP_STOP_SLOT 0xffff         /* epoll data of the stop eventfd */
#define DP_MAX_QUEUES 16
#define DP_UDP_GSO_MAX 64           /* segments per UDP_SEGMENT send (kernel limit) */
#define DP_SOCK_BUF (4 * 1024 * 1024)

/* ------------------------------------------------------------------ */
/* Objects                                                             */

typedef struct _DpSa DpSa;

typedef enum {
  DP_IO_ADAPTER,
  DP_IO_UDP,
  DP_IO_RAW_ESP,
} DpIoKind;

typedef struct {
  guint64 id;                /* unique; with the slot in the epoll data */
  guint slot;
  DpIoKind kind;
  int fd;
  int family;                /* sockets */
  ModikeAddr local;          /* UDP: as attached */
  gboolean wildcard;         /* UDP bound to any address */
  gboolean vnet;             /* adapter: virtio_net_hdr on every packet */
  guint worker;
} DpIo;

typedef struct {
  char *peer;
  guint n_fds;
  int fds[DP_MAX_QUEUES];
  gboolean vnet;
  DpIo *ios[DP_MAX_QUEUES];
} DpAdapter;

/* Where a policy's ESP goes (resolved when its SA changes); immutable
 * once published, replaced as a whole. */
typedef struct {
  DpSa *sa;
  int fd;                    /* -1: no socket for it */
  gboolean udp;
  gboolean pktinfo;          /* wildcard socket: pick the SA's source */
  ModikeAddr src;
  struct sockaddr_storage dst;
  socklen_t dst_len;
} DpOut;

struct _DpSa {
  EspSa *esp;
  guint32 spi;
  ModikeDirection dir;
  guint64 serial;            /* add order: the newest outbound SA wins */
  guint32 spd_id;            /* its policy now (ids change at reloads); writers only */
  guint32 reqid;             /* outbound: names the SA with spi (peers' SPIs may collide) */
  DpSa *spd_next;            /* outbound: the next SA of its policy; writers only */
  _Atomic (DpAdapter *) adapter; /* inbound: its peer's adapter now, NULL: none */
};

/* A table workers read without a lock: linear probing over slots that
 * writers set with one atomic store each (insert into an empty or removed
 * slot; remove = its kind's tombstone), so lookups need no lock. Grown,
 * shrunk or cleaned of tombstones by building a new table and publishing
 * it (amortised O(1)). */
typedef struct {
  guint mask;
  _Atomic (gpointer) slot[]; /* NULL: never used (ends a probe) */
} DpTab;

/* Inbound SAs by SPI: DpSa*, DP_IN_TOMB removed. */
typedef DpTab DpInTab;

/* What survives snapshots for one policy: its outbound SA, counters and
 * the acquire queue. */
typedef struct {
  Datapath *dp;
  guint32 spd_id;            /* changes (under lock) when a reload renumbers */
  _Atomic (DpOut *) out;     /* the newest outbound SA; set under lock */
  pthread_mutex_t lock;      /* pthread: ThreadSanitizer understands it */
  GQueue queue;              /* DpQueued*, under lock */
  gboolean acquired;         /* under lock: acquire sent, no SA yet */
  gboolean gone;             /* under lock: the policy was removed */
  gint64 last_acquire;
  atomic_uint_fast64_t discarded, queued, queue_drops, acquires;
} DpPolicyState;

typedef struct {
  gsize len;
  guint8 data[];             /* ESP_HEADROOM + packet + ESP_TAILROOM */
} DpQueued;

typedef struct {
  guint32 spd_id;
  ModikeSpdAction action;
  /* Lookup order: priority, then the core's seq, then arrival here (ord:
   * entries given without a seq keep the order they came in). */
  guint priority;
  guint64 seq, ord;
  ModikeAddrRange local, remote;
  guint8 proto;
  ModikePortRange lport, rport;
  DpPolicyState *state;
} DpPolicy;

/* One remote address's policies (their remote selector is that address
 * alone) in lookup order; immutable once published, replaced as a whole. */
typedef struct {
  guint n;
  DpPolicy pol[];            /* n >= 1; pol[0].remote.from is the key */
} DpHostSet;

/* Host policy sets by remote address: DpHostSet*, DP_HOST_TOMB removed. */
typedef DpTab DpHostTab;

typedef struct {
  guint n_pol;
  DpPolicy *pol;             /* the policies not in the host table, in lookup order */
  DpIo *io[DP_MAX_IO];
  int raw_ip4, raw_ip6;      /* BYPASS (IP_HDRINCL) */
} DpSnap;

typedef enum {
  C_NO_POLICY,
  C_DISCARDED,
  C_BYPASSED,
  C_QUEUED,
  C_QUEUE_DROPS,
  C_ACQUIRES,
  C_UNKNOWN_SPI,
  C_MALFORMED,
  C_KEEPALIVES,
  C_IKE,
  C_NO_ADAPTER,
  C_SEND_ERRORS,
  C_N
} DpCounter;

typedef struct {
  int fd;
  gboolean udp;
  const DpOut *out;          /* its policy's (retired through QSBR): valid while online */
  guint8 *data;
  gsize len;
} DpTx;

typedef union {
  char buf[CMSG_SPACE (sizeof (guint16)) + CMSG_SPACE (sizeof (struct in6_pktinfo))];
  struct cmsghdr align;
} DpCmsg;

typedef struct _DpWorker DpWorker;
struct _DpWorker {
  /* Written by the worker, polled by writers: its own cache line. */
  _Alignas (64) atomic_uint_fast64_t qs;  /* 0 = offline, else the epoch seen */
  _Alignas (64) Datapath *dp;
  guint index;
  int epfd;
  GThread *thread;
  guint8 *mem;
  guint8 *slot[DP_BATCH];
  guint8 *spare;             /* swapped in when a GSO packet is segmented */
  DpTx tx[DP_BATCH];
  guint n_tx;
  struct mmsghdr msgs[DP_BATCH];
  struct iovec iov[DP_BATCH];
  struct sockaddr_storage names[DP_BATCH];
  DpCmsg cmsg[DP_BATCH];
  DatapathGro *gro;
  gint64 now_us;             /* monotonic time at this batch's start (SAs' last_us) */
};

struct _Datapath {
  /* Settings. */
  guint cfg_threads;
  guint replay_window;
  atomic_uint acquire_queue;
  atomic_int_fast64_t acquire_retry_us;
  gboolean raw_sockets;

  /* Writer side: the ops, under wlock. */
  GMutex wlock;
  gboolean started;
  ModikeDatapathHost *host;
  guint n_threads;
  GHashTable *sa_in;                  /* spi -> DpSa* */
  GHashTable *sa_out;                 /* set of DpSa*, by (spi, reqid) */
  GHashTable *out_by_spd;             /* spd_id -> its outbound DpSa* (list by spd_next) */
  GHashTable *in_by_peer;             /* peer -> set of its inbound DpSa* */
  guint in_used, in_tombs;            /* live and removed slots of intab */
  guint64 next_serial;
  GHashTable *entries;                /* spd_id -> ModikeSpdEntry*, owned: every policy */
  GArray *rest;                       /* DpPolicy: those not in hosttab, lookup order */
  guint64 next_ord;
  guint host_used, host_tombs, host_pols; /* addresses, removed slots, policies of hosttab */
  GHashTable *pstates;                /* spd_id -> DpPolicyState* */
  GHashTable *adapters;               /* peer -> DpAdapter* */
  DpIo *io[DP_MAX_IO];
  guint64 next_io_id;
  guint n_sockets;                    /* sockets attached (spread over workers) */
  int raw_esp4, raw_esp6, raw_ip4, raw_ip6;
  int stop_fd;
  GPtrArray *retired;                 /* freed after a grace period (snapshot.c) */
  gboolean retired_table;             /* an inbound SA table is among them */
  guint64 n_snapshots, n_in_rebuilds, n_in_copied; /* datapath_get_table_stats */
  guint64 n_host_rebuilds, n_host_copied;

  /* Shared with the workers. */
  _Atomic (DpSnap *) snap;
  _Atomic (DpInTab *) intab;
  _Atomic (DpHostTab *) hosttab;
  atomic_uint_fast64_t epoch;
  atomic_bool stopping;
  atomic_bool udp_gso;                /* UDP_SEGMENT works (cleared on EIO) */
  DpWorker *workers[DATAPATH_MAX_WORKERS];
  atomic_uint_fast64_t counters[C_N];
};

static inline void
dp_count (Datapath *dp, DpCounter c)
{
  atomic_fetch_add_explicit (&dp->counters[c], 1, memory_order_relaxed);
}

static inline void
dp_pstate_inc (atomic_uint_fast64_t *c)
{
  atomic_fetch_add_explicit (c, 1, memory_order_relaxed);
}

/* ------------------------------------------------------------------ */
/* packet.c                                                            */

static inline void
dp_put16 (guint8 *p, guint16 v)
{
  p[0] = v >> 8;
  p[1] = v & 0xff;
}

static inline void
dp_put32 (guint8 *p, guint32 v)
{
  p[0] = v >> 24;
  p[1] = (v >> 16) & 0xff;
  p[2] = (v >> 8) & 0xff;
  p[3] = v & 0xff;
}

static inline void
dp_store_csum (guint8 *p, guint16 c)
{
  memcpy (p, &c, 2);
}

static inline guint16
dp_csum_fold (guint64 sum)
{
  while (sum >> 16)
    sum = (sum & 0xffff) + (sum >> 16);
  return (guint16) ~sum;
}

/* Sum of the pseudo header (RFC 768/793, RFC 8200 8.1) of an L4 segment. */
guint64 dp_pseudo_sum (int family, const guint8 *ip, guint8 proto, gsize l4_len);

/* ------------------------------------------------------------------ */
/* snapshot.c                                                          */

static inline guint
dp_spi_hash (guint32 spi)
{
  /* SPIs are random, but a peer may pick them in sequence: mix anyway. */
  spi ^= spi >> 16;
  spi *= 0x45d9f3bu;
  spi ^= spi >> 16;
  return spi;
}

extern DpSa dp_in_tomb;
#define DP_IN_TOMB (&dp_in_tomb)

/* The inbound SA with this SPI, NULL if none (workers while online, or
 * writers). A table always keeps a NULL slot, so the probe ends. */
static inline DpSa *
dp_in_lookup (const DpInTab *t, guint32 spi)
{
  guint i = dp_spi_hash (spi) & t->mask;

  if (spi == 0)
    return NULL;
  for (;;)
    {
      DpSa *sa = atomic_load_explicit (&t->slot[i], memory_order_acquire);
      if (sa == NULL)
        return NULL;
      if (sa != DP_IN_TOMB && sa->spi == spi)
        return sa;
      i = (i + 1) & t->mask;
    }
}

/* An empty table (inbound SAs or host policies). */
DpTab *dp_tab_new (void);
/* Inbound SA table updates (writers, under wlock): a slot each, or a new
 * table when the load calls for one. */
void dp_in_insert (Datapath *dp, DpSa *sa);
void dp_in_remove (Datapath *dp, DpSa *sa);
/* The newest outbound SA of this policy, published to its state (the
 * acquire queue flushed into it first); `force` republishes even if it is
 * the same SA (its socket or addresses changed). O(the policy's SAs). */
void dp_out_refresh (Datapath *dp, DpPolicyState *st, gboolean force);
/* sa was just added to st's policy: it is the newest. O(1). */
void dp_out_added (Datapath *dp, DpPolicyState *st, DpSa *sa);
/* Policies (writers, under wlock). True if the remote selector is one
 * address: then the policy lives in the host table. */
gboolean dp_one_address (const ModikeAddrRange *r);
/* Whether p comes before q in lookup order. */
static inline gboolean
dp_policy_before (const DpPolicy *p, const DpPolicy *q)
{
  if (p->priority != q->priority)
    return p->priority < q->priority;
  if (p->seq != q->seq)
    return p->seq < q->seq;
  return p->ord < q->ord;
}
/* GCompareFunc of ModikeSpdEntry** in lookup order: priority, then seq. */
gint dp_entry_order (gconstpointer a, gconstpointer b);
extern DpHostSet dp_host_tomb;
#define DP_HOST_TOMB (&dp_host_tomb)
/* Frees a table with its sets (no worker may read it any more). */
void dp_host_tab_free_all (gpointer p);
/* A host policy into / out of its address's set: one slot store. */
void dp_host_add (Datapath *dp, const DpPolicy *p);
void dp_host_del (Datapath *dp, const ModikeAddr *remote, guint32 spd_id);
/* Replaces the whole table by one holding these host policies (given in
 * lookup order); the old one and its sets go after a grace period. */
void dp_host_set_all (Datapath *dp, const GArray *pols);
/* Frees what was retired if enough piled up (after a grace period). */
void dp_reclaim_some (Datapath *dp);

void dp_sa_free (gpointer p);
void dp_adapter_free (gpointer p);
void dp_pstate_free (gpointer p);
void dp_snap_free (gpointer p);
/* p goes to fn after the next grace period (writers, under wlock). */
void dp_retire (Datapath *dp, GDestroyNotify fn, gpointer p);
/* Frees what was retired, now: no worker may be running. */
void dp_retired_free_all (Datapath *dp);
/* Builds and publishes a new snapshot; what became unreachable is freed
 * after a grace period. Caller holds wlock. */
void dp_publish (Datapath *dp);

/* ------------------------------------------------------------------ */
/* transmit.c                                                          */

/* The first policy in lookup order that matches sel, NULL if none: the
 * first of sel's remote address's set in the host table that matches,
 * unless a policy of the snapshot before it does. */
const DpPolicy *dp_spd_match (const DpSnap *s, const DpHostTab *h, const ModikeSelector *sel);
/* A remote address's set in the host table, NULL if none. */
const DpHostSet *dp_host_find (const DpHostTab *t, const ModikeAddr *a);
guint dp_host_hash (const ModikeAddr *a);
/* One ESP packet to o's destination now (not batched). */
gboolean dp_tx_send_one (Datapath *dp, const DpOut *o, guint8 *data, gsize len);
/* Reads a batch from an adapter fd: encrypted, held or dropped. */
void dp_adapter_readable (DpWorker *w, const DpSnap *s, const DpIo *io);

/* ------------------------------------------------------------------ */
/* receive.c                                                           */

/* Reads a batch from a UDP or raw ESP socket: decrypted and delivered. */
void dp_socket_readable (DpWorker *w, const DpSnap *s, const DpIo *io);

/* ------------------------------------------------------------------ */
/* worker.c                                                            */

DpWorker *dp_worker_new (Datapath *dp, guint index, GError **error);
void dp_worker_destroy (DpWorker *w);
gpointer dp_worker_main (gpointer data);
/* An fd that fails for good: stop watching it (from its worker). */
void dp_io_broken (DpWorker *w, const DpIo *io, int err);
DpIo *dp_io_add (Datapath *dp, DpIoKind kind, int fd, guint worker, GError **error);
/* Unwatched now, freed after the grace period (publish follows). */
void dp_io_remove (Datapath *dp, DpIo *io);
void dp_socket_buffers (int fd);
int dp_open_raw (int family, int proto, const char *what);
void dp_close_fd (int *fd);

G_END_DECLS
