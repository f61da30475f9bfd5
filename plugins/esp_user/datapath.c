/* The esp_user datapath runtime.
 *
 * Writers (the ops, on the main loop) build an immutable snapshot of the
 * policies, SAs, adapters and fds, publish it with one atomic store and
 * free the old one after every worker passed a quiescent point (QSBR: a
 * worker is "offline" while it sleeps in epoll_wait and announces the
 * epoch it saw when it wakes). Workers never lock on the fast path; the
 * only lock they take is a per-policy one while a policy waits for its
 * SA (the acquire queue). Each worker owns its epoll set and preallocated
 * packet slots with room for ESP around them. */
#include "datapath.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <linux/virtio_net.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <poll.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef VIRTIO_NET_HDR_GSO_UDP_L4
#define VIRTIO_NET_HDR_GSO_UDP_L4 5
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef IPPROTO_ESP
#define IPPROTO_ESP 50
#endif

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
/* Checksums and packet parsing                                        */

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

static guint16
csum_fold (guint64 sum)
{
  while (sum >> 16)
    sum = (sum & 0xffff) + (sum >> 16);
  return (guint16) ~sum;
}

guint16
datapath_checksum (const guint8 *data, gsize len)
{
  return csum_fold (csum_acc (0, data, len));
}

static void
put16 (guint8 *p, guint16 v)
{
  p[0] = v >> 8;
  p[1] = v & 0xff;
}

static void
put32 (guint8 *p, guint32 v)
{
  p[0] = v >> 24;
  p[1] = (v >> 16) & 0xff;
  p[2] = (v >> 8) & 0xff;
  p[3] = v & 0xff;
}

static void
store_csum (guint8 *p, guint16 c)
{
  memcpy (p, &c, 2);
}

/* Sum of the pseudo header (RFC 768/793, RFC 8200 8.1) of an L4 segment. */
static guint64
pseudo_sum (int family, const guint8 *ip, guint8 proto, gsize l4_len)
{
  guint8 ph[40];
  gsize n;

  if (family == AF_INET)
    {
      memcpy (ph, ip + 12, 8);
      ph[8] = 0;
      ph[9] = proto;
      put16 (ph + 10, (guint16) l4_len);
      n = 12;
    }
  else
    {
      memcpy (ph, ip + 8, 32);
      put32 (ph + 32, (guint32) l4_len);
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
  c = csum_fold (csum_acc (0, pkt + start, len - start));
  if (c == 0 && vh->csum_offset == 6)
    c = 0xffff; /* UDP: 0 means "no checksum" */
  store_csum (pkt + at, c);
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
      put16 (out + 2, (guint16) seglen);
      put16 (out + 4, (guint16) (g->ip_id + g->n));
      out[10] = out[11] = 0;
      store_csum (out + 10, datapath_checksum (out, g->l4_off));
    }
  else
    put16 (out + 4, (guint16) (seglen - 40));
  l4 = out + g->l4_off;
  l4len = seglen - g->l4_off;
  if (g->proto == IPPROTO_TCP)
    {
      /* Like the kernel's TCP GSO: FIN/PSH on the last, CWR on the first. */
      put32 (l4 + 4, g->tcp_seq + (guint32) g->off);
      if (!last)
        l4[13] &= ~(0x01 | 0x08);
      if (g->n > 0)
        l4[13] &= ~0x80;
      l4[16] = l4[17] = 0;
      c = csum_fold (csum_acc (pseudo_sum (g->family, out, IPPROTO_TCP, l4len), l4, l4len));
      store_csum (l4 + 16, c);
    }
  else
    {
      put16 (l4 + 4, (guint16) l4len);
      l4[6] = l4[7] = 0;
      c = csum_fold (csum_acc (pseudo_sum (g->family, out, IPPROTO_UDP, l4len), l4, l4len));
      store_csum (l4 + 6, c == 0 ? 0xffff : c);
    }
  g->off += chunk;
  g->n++;
  return seglen;
}

/* ------------------------------------------------------------------ */
/* Objects                                                             */

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

typedef struct {
  EspSa *esp;
  guint32 spi;
  ModikeDirection dir;
  guint64 serial;            /* add order: the newest outbound SA wins */
  guint32 spd_id;            /* its policy now (ids change at reloads); writers only */
} DpSa;

/* What survives snapshots for one policy: counters and the acquire queue. */
typedef struct {
  Datapath *dp;
  guint32 spd_id;
  GMutex lock;
  GQueue queue;              /* DpQueued*, under lock */
  gboolean acquired;         /* under lock: acquire sent, no SA yet */
  gint64 last_acquire;
  atomic_uint_fast64_t discarded, queued, queue_drops, acquires;
} DpPolicyState;

typedef struct {
  gsize len;
  guint8 data[];             /* ESP_HEADROOM + packet + ESP_TAILROOM */
} DpQueued;

/* Where a policy's ESP goes (resolved when the snapshot is built). */
typedef struct {
  DpSa *sa;
  int fd;                    /* -1: no socket for it */
  gboolean udp;
  gboolean pktinfo;          /* wildcard socket: pick the SA's source */
  ModikeAddr src;
  struct sockaddr_storage dst;
  socklen_t dst_len;
} DpOut;

typedef struct {
  guint32 spd_id;
  ModikeSpdAction action;
  ModikeAddrRange local, remote;
  guint8 proto;
  ModikePortRange lport, rport;
  DpPolicyState *state;
  DpOut out;
} DpPolicy;

typedef struct {
  guint32 spi;               /* 0 = empty bucket */
  DpSa *sa;
  DpAdapter *adapter;
} DpIn;

typedef struct {
  guint n_pol;
  DpPolicy *pol;
  guint in_mask;
  DpIn *in;
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
  const DpOut *out;          /* into the snapshot: valid while online */
  guint8 *data;
  gsize len;
} DpTx;

typedef union {
  char buf[CMSG_SPACE (sizeof (guint16)) + CMSG_SPACE (sizeof (struct in6_pktinfo))];
  struct cmsghdr align;
} DpCmsg;

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
};

struct _DatapathGro {
  DpGroFlow flow[DP_GRO_FLOWS];
  guint errors;
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
  GHashTable *sa_in, *sa_out;         /* spi -> DpSa* */
  guint64 next_serial;
  GPtrArray *policies;                /* ModikeSpdEntry*, lookup order */
  GHashTable *pstates;                /* spd_id -> DpPolicyState* */
  GHashTable *adapters;               /* peer -> DpAdapter* */
  DpIo *io[DP_MAX_IO];
  guint64 next_io_id;
  guint n_sockets;                    /* sockets attached (spread over workers) */
  int raw_esp4, raw_esp6, raw_ip4, raw_ip6;
  int stop_fd;
  GPtrArray *retired;                 /* DpRetired*, freed after a grace period */

  /* Shared with the workers. */
  _Atomic (DpSnap *) snap;
  atomic_uint_fast64_t epoch;
  atomic_bool stopping;
  atomic_bool udp_gso;                /* UDP_SEGMENT works (cleared on EIO) */
  DpWorker *workers[DATAPATH_MAX_WORKERS];
  atomic_uint_fast64_t counters[C_N];
};

typedef struct {
  GDestroyNotify fn;
  gpointer p;
} DpRetired;

static void
count (Datapath *dp, DpCounter c)
{
  atomic_fetch_add_explicit (&dp->counters[c], 1, memory_order_relaxed);
}

static void
pstate_inc (atomic_uint_fast64_t *c)
{
  atomic_fetch_add_explicit (c, 1, memory_order_relaxed);
}

static void
dp_sa_free (gpointer p)
{
  DpSa *sa = p;

  esp_sa_free (sa->esp);
  g_free (sa);
}

static void
dp_adapter_free (gpointer p)
{
  DpAdapter *ad = p;

  g_free (ad->peer);
  g_free (ad);
}

static guint
pstate_drain (DpPolicyState *st)
{
  guint n = 0;
  DpQueued *q;

  while ((q = g_queue_pop_head (&st->queue)) != NULL)
    {
      g_free (q);
      n++;
    }
  return n;
}

static void
dp_pstate_free (gpointer p)
{
  DpPolicyState *st = p;

  /* Whatever still waits is dropped (a worker may have queued it after
   * the policy went, before the grace period ended). */
  atomic_fetch_add (&st->dp->counters[C_QUEUE_DROPS], pstate_drain (st));
  g_mutex_clear (&st->lock);
  g_free (st);
}

static void
snap_free (gpointer p)
{
  DpSnap *s = p;

  if (s == NULL)
    return;
  g_free (s->pol);
  g_free (s->in);
  g_free (s);
}

static void
retire (Datapath *dp, GDestroyNotify fn, gpointer p)
{
  DpRetired *r = g_new (DpRetired, 1);

  r->fn = fn;
  r->p = p;
  g_ptr_array_add (dp->retired, r);
}

/* ------------------------------------------------------------------ */
/* Quiescent-state-based reclamation                                   */

static void
qsbr_synchronize (Datapath *dp)
{
  guint64 target = atomic_fetch_add (&dp->epoch, 1) + 1;

  for (guint i = 0; i < G_N_ELEMENTS (dp->workers); i++)
    {
      DpWorker *w = dp->workers[i];

      if (w == NULL || w->thread == NULL)
        continue;
      for (guint spins = 0;; spins++)
        {
          guint64 seen = atomic_load (&w->qs);
          if (seen == 0 || seen >= target)
            break;
          if (spins < 64)
            sched_yield ();
          else
            g_usleep (50);
        }
    }
}

/* Frees what the last publish made unreachable. */
static void
reclaim (Datapath *dp)
{
  if (dp->retired->len == 0)
    return;
  qsbr_synchronize (dp);
  for (guint i = 0; i < dp->retired->len; i++)
    {
      DpRetired *r = dp->retired->pdata[i];
      r->fn (r->p);
      g_free (r);
    }
  g_ptr_array_set_size (dp->retired, 0);
}

/* ------------------------------------------------------------------ */
/* Snapshots                                                           */

static DpIo *
find_socket (Datapath *dp, const ModikeSadEntry *e)
{
  DpIo *best = NULL;
  int best_score = -1;

  for (guint i = 0; i < DP_MAX_IO; i++)
    {
      DpIo *io = dp->io[i];
      int score;

      if (io == NULL || io->kind != DP_IO_UDP || io->family != e->dst.family)
        continue;
      /* Our exact address and port first, then a wildcard on the port. */
      score = 0;
      if (io->local.port == e->encap_sport)
        score += 1;
      if (!io->wildcard && modike_addr_equal_ip (&io->local, &e->src))
        score += 2;
      else if (io->wildcard)
        score += 1;
      if (score > best_score)
        best = io, best_score = score;
    }
  return best;
}

static void
resolve_out (Datapath *dp, DpSa *sa, DpOut *o)
{
  const ModikeSadEntry *e = esp_sa_entry (sa->esp);
  ModikeAddr dst = e->dst;

  memset (o, 0, sizeof *o);
  o->sa = sa;
  o->fd = -1;
  o->src = e->src;
  if (e->udp_encap)
    {
      DpIo *io = find_socket (dp, e);
      if (io != NULL)
        {
          o->fd = io->fd;
          o->udp = TRUE;
          o->pktinfo = io->wildcard && e->src.family == io->family;
        }
      dst.port = e->encap_dport != 0 ? e->encap_dport : 4500;
    }
  else
    {
      o->fd = e->dst.family == AF_INET ? dp->raw_esp4 : dp->raw_esp6;
      dst.port = 0;
    }
  modike_addr_to_sockaddr (&dst, &o->dst, &o->dst_len);
}

static guint
spi_hash (guint32 spi)
{
  /* SPIs are random, but a peer may pick them in sequence: mix anyway. */
  spi ^= spi >> 16;
  spi *= 0x45d9f3bu;
  spi ^= spi >> 16;
  return spi;
}

static void
in_insert (DpSnap *s, const DpIn *entry)
{
  guint i = spi_hash (entry->spi) & s->in_mask;

  while (s->in[i].spi != 0)
    i = (i + 1) & s->in_mask;
  s->in[i] = *entry;
}

static const DpIn *
in_lookup (const DpSnap *s, guint32 spi)
{
  guint i = spi_hash (spi) & s->in_mask;

  if (spi == 0)
    return NULL;
  for (;;)
    {
      const DpIn *e = &s->in[i];
      if (e->spi == spi)
        return e;
      if (e->spi == 0)
        return NULL;
      i = (i + 1) & s->in_mask;
    }
}

static DpSnap *
snap_build (Datapath *dp)
{
  DpSnap *s = g_new0 (DpSnap, 1);
  g_autoptr (GHashTable) newest = g_hash_table_new (NULL, NULL); /* spd_id -> DpSa* */
  GHashTableIter it;
  gpointer v;
  guint cap = 16;

  memcpy (s->io, dp->io, sizeof s->io);
  s->raw_ip4 = dp->raw_ip4;
  s->raw_ip6 = dp->raw_ip6;

  g_hash_table_iter_init (&it, dp->sa_out);
  while (g_hash_table_iter_next (&it, NULL, &v))
    {
      DpSa *sa = v;
      DpSa *cur = g_hash_table_lookup (newest, GUINT_TO_POINTER (sa->spd_id));
      if (cur == NULL || cur->serial < sa->serial)
        g_hash_table_insert (newest, GUINT_TO_POINTER (sa->spd_id), sa);
    }

  s->n_pol = dp->policies->len;
  s->pol = g_new0 (DpPolicy, MAX (s->n_pol, 1));
  for (guint i = 0; i < s->n_pol; i++)
    {
      const ModikeSpdEntry *e = dp->policies->pdata[i];
      DpPolicy *p = &s->pol[i];
      DpSa *sa;

      p->spd_id = e->id;
      p->action = e->action;
      p->local = e->local;
      p->remote = e->remote;
      p->proto = e->proto;
      p->lport = e->local_port;
      p->rport = e->remote_port;
      p->state = g_hash_table_lookup (dp->pstates, GUINT_TO_POINTER (e->id));
      p->out.fd = -1;
      sa = e->action == MODIKE_SPD_PROTECT ? g_hash_table_lookup (newest, GUINT_TO_POINTER (e->id)) : NULL;
      if (sa != NULL)
        resolve_out (dp, sa, &p->out);
    }

  while (cap < 2 * g_hash_table_size (dp->sa_in))
    cap *= 2;
  s->in_mask = cap - 1;
  s->in = g_new0 (DpIn, cap);
  g_hash_table_iter_init (&it, dp->sa_in);
  while (g_hash_table_iter_next (&it, NULL, &v))
    {
      DpSa *sa = v;
      const ModikeSadEntry *e = esp_sa_entry (sa->esp);
      DpIn in = { .spi = sa->spi, .sa = sa };

      in.adapter = e->peer != NULL ? g_hash_table_lookup (dp->adapters, e->peer) : NULL;
      in_insert (s, &in);
    }
  return s;
}

static gboolean tx_send_one (Datapath *dp, const DpOut *o, guint8 *data, gsize len);

/* Sends what waited for this policy's SA, in order (main loop thread:
 * it uses the extra esp thread index). Caller holds st->lock. */
static void
flush_queue (Datapath *dp, DpPolicyState *st, const DpOut *o)
{
  DpQueued *q;

  while ((q = g_queue_pop_head (&st->queue)) != NULL)
    {
      guint8 *esp;
      gsize esp_len;
      EspLifeEvent life = ESP_LIFE_OK;
      ModikeDropReason why;
      gboolean ok = esp_sa_encrypt (o->sa->esp, dp->n_threads, q->data + ESP_HEADROOM, q->len, &esp, &esp_len,
                                    &life, &why);

      if (life != ESP_LIFE_OK)
        modike_datapath_expire (dp->host, MODIKE_DIR_OUT, o->sa->spi, life == ESP_LIFE_HARD);
      if (ok)
        tx_send_one (dp, o, esp, esp_len);
      g_free (q);
    }
}

/* Builds and publishes a new snapshot; what became unreachable is freed
 * after a grace period. Caller holds wlock. */
static void
publish (Datapath *dp)
{
  DpSnap *s = snap_build (dp);
  DpSnap *old;
  g_autoptr (GPtrArray) locked = g_ptr_array_new ();

  /* A policy that gets an SA flushes its queue before any worker can see
   * the SA, so queued packets go first; workers that raced us find the
   * SA under the same lock. */
  for (guint i = 0; i < s->n_pol; i++)
    {
      DpPolicy *p = &s->pol[i];
      if (p->out.sa == NULL || p->state == NULL)
        continue;
      g_mutex_lock (&p->state->lock);
      g_ptr_array_add (locked, p->state);
      if (p->state->queue.length > 0 && dp->started)
        flush_queue (dp, p->state, &p->out);
      p->state->acquired = FALSE;
    }
  old = atomic_exchange (&dp->snap, s);
  for (guint i = 0; i < locked->len; i++)
    g_mutex_unlock (&((DpPolicyState *) locked->pdata[i])->lock);
  if (old != NULL)
    retire (dp, snap_free, old);
  reclaim (dp);
}

/* ------------------------------------------------------------------ */
/* Sending                                                             */

static gsize
fill_pktinfo (struct cmsghdr *c, const ModikeAddr *src)
{
  if (src->family == AF_INET)
    {
      struct in_pktinfo pi = { 0 };
      c->cmsg_level = IPPROTO_IP;
      c->cmsg_type = IP_PKTINFO;
      c->cmsg_len = CMSG_LEN (sizeof pi);
      memcpy (&pi.ipi_spec_dst, src->addr, 4);
      memcpy (CMSG_DATA (c), &pi, sizeof pi);
      return CMSG_SPACE (sizeof pi);
    }
  else
    {
      struct in6_pktinfo pi = { 0 };
      c->cmsg_level = IPPROTO_IPV6;
      c->cmsg_type = IPV6_PKTINFO;
      c->cmsg_len = CMSG_LEN (sizeof pi);
      memcpy (&pi.ipi6_addr, src->addr, 16);
      memcpy (CMSG_DATA (c), &pi, sizeof pi);
      return CMSG_SPACE (sizeof pi);
    }
}

/* Fills mh for n datagrams of `out` at data[]; with n > 1 they go as one
 * UDP_SEGMENT send (all but the last of equal size). */
static void
msg_fill (struct msghdr *mh, struct iovec *iov, DpCmsg *cm, const DpOut *o, guint n, gsize seg)
{
  gsize clen = 0;

  memset (mh, 0, sizeof *mh);
  mh->msg_name = (void *) &o->dst;
  mh->msg_namelen = o->dst_len;
  mh->msg_iov = iov;
  mh->msg_iovlen = n;
  memset (cm, 0, sizeof *cm);
  if (n > 1)
    {
      struct cmsghdr *c = (struct cmsghdr *) cm->buf;
      guint16 gso = (guint16) seg;
      c->cmsg_level = SOL_UDP;
      c->cmsg_type = UDP_SEGMENT;
      c->cmsg_len = CMSG_LEN (sizeof gso);
      memcpy (CMSG_DATA (c), &gso, sizeof gso);
      clen += CMSG_SPACE (sizeof gso);
    }
  if (o->pktinfo)
    clen += fill_pktinfo ((struct cmsghdr *) (cm->buf + clen), &o->src);
  if (clen > 0)
    {
      mh->msg_control = cm->buf;
      mh->msg_controllen = clen;
    }
}

static gboolean
wait_writable (int fd)
{
  struct pollfd p = { .fd = fd, .events = POLLOUT };

  /* Back-pressure instead of dropping: a full socket buffer drains fast. */
  return poll (&p, 1, 20) > 0;
}

static gboolean
tx_send_one (Datapath *dp, const DpOut *o, guint8 *data, gsize len)
{
  struct iovec iov = { data, len };
  struct msghdr mh;
  DpCmsg cm;

  if (o->fd < 0)
    {
      count (dp, C_SEND_ERRORS);
      esp_sa_count_drop (o->sa->esp, MODIKE_DROP_OTHER);
      return FALSE;
    }
  msg_fill (&mh, &iov, &cm, o, 1, len);
  for (int tries = 0; tries < 3; tries++)
    {
      if (sendmsg (o->fd, &mh, MSG_DONTWAIT) >= 0)
        return TRUE;
      if ((errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) || !wait_writable (o->fd))
        break;
    }
  count (dp, C_SEND_ERRORS);
  return FALSE;
}

/* Sends the batch: runs of equal-size datagrams to one destination go as
 * one UDP_SEGMENT message, messages to one fd in one sendmmsg. */
static void
tx_flush (DpWorker *w)
{
  Datapath *dp = w->dp;
  guint nmsg = 0, i = 0;
  guint first[DP_BATCH], cnt[DP_BATCH];
  gboolean gso = atomic_load_explicit (&dp->udp_gso, memory_order_relaxed);

  while (i < w->n_tx)
    {
      DpTx *t = &w->tx[i];
      guint n = 1;
      gsize total = t->len;

      if (gso && t->udp)
        while (i + n < w->n_tx && n < DP_UDP_GSO_MAX)
          {
            DpTx *u = &w->tx[i + n];
            if (u->out != t->out || u->len > t->len || total + u->len > 65000)
              break;
            total += u->len;
            n++;
            if (u->len < t->len)
              break; /* a shorter one ends the run */
          }
      for (guint k = 0; k < n; k++)
        w->iov[i + k] = (struct iovec) { w->tx[i + k].data, w->tx[i + k].len };
      msg_fill (&w->msgs[nmsg].msg_hdr, &w->iov[i], &w->cmsg[nmsg], t->out, n, t->len);
      first[nmsg] = i;
      cnt[nmsg] = n;
      nmsg++;
      i += n;
    }

  for (guint m = 0; m < nmsg;)
    {
      int fd = w->tx[first[m]].fd;
      guint run = 1;
      int r;

      while (m + run < nmsg && w->tx[first[m + run]].fd == fd)
        run++;
      r = sendmmsg (fd, &w->msgs[m], run, MSG_DONTWAIT);
      if (r > 0)
        {
          m += (guint) r;
          continue;
        }
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) && wait_writable (fd))
        continue;
      if (r < 0 && (errno == EIO || errno == EINVAL) && cnt[m] > 1)
        {
          /* No GSO on this path (or the segments exceed it): one by one. */
          if (errno == EIO)
            atomic_store_explicit (&dp->udp_gso, FALSE, memory_order_relaxed);
          for (guint k = 0; k < cnt[m]; k++)
            {
              DpTx *t = &w->tx[first[m] + k];
              tx_send_one (dp, t->out, t->data, t->len);
            }
          m++;
          continue;
        }
      count (dp, C_SEND_ERRORS);
      m++;
    }
  w->n_tx = 0;
}

/* ------------------------------------------------------------------ */
/* Outbound                                                            */

static gboolean
port_in (const ModikePortRange *r, guint16 p)
{
  return r->from <= p && p <= r->to;
}

static const DpPolicy *
spd_match (const DpSnap *s, const ModikeSelector *sel)
{
  for (guint i = 0; i < s->n_pol; i++)
    {
      const DpPolicy *p = &s->pol[i];
      if (modike_addr_range_contains (&p->local, &sel->local) && modike_addr_range_contains (&p->remote, &sel->remote)
          && (p->proto == 0 || p->proto == sel->proto) && port_in (&p->lport, sel->local_port)
          && port_in (&p->rport, sel->remote_port))
        return p;
    }
  return NULL;
}

/* Encrypts the packet in slot[n_tx] and queues the ESP for sending. */
static void
protect (DpWorker *w, const DpOut *o, guint8 *pkt, gsize len)
{
  Datapath *dp = w->dp;
  guint8 *esp;
  gsize esp_len;
  EspLifeEvent life = ESP_LIFE_OK;
  ModikeDropReason why;
  gboolean ok = esp_sa_encrypt (o->sa->esp, w->index, pkt, len, &esp, &esp_len, &life, &why);

  if (life != ESP_LIFE_OK)
    modike_datapath_expire (dp->host, MODIKE_DIR_OUT, o->sa->spi, life == ESP_LIFE_HARD);
  if (!ok)
    return;
  if (o->fd < 0)
    {
      count (dp, C_SEND_ERRORS);
      esp_sa_count_drop (o->sa->esp, MODIKE_DROP_OTHER);
      return;
    }
  w->tx[w->n_tx] = (DpTx) { .fd = o->fd, .udp = o->udp, .out = o, .data = esp, .len = esp_len };
  w->n_tx++;
}

/* The policy with this state in a snapshot (it survives renumbering). */
static const DpPolicy *
snap_policy (const DpSnap *s, const DpPolicyState *st)
{
  for (guint i = 0; i < s->n_pol; i++)
    if (s->pol[i].state == st)
      return &s->pol[i];
  return NULL;
}

/* PROTECT without an SA: queue (bounded) and acquire once. */
static void
hold (DpWorker *w, const DpPolicy *pol, const ModikeSelector *sel, guint8 *pkt, gsize len)
{
  Datapath *dp = w->dp;
  DpPolicyState *st = pol->state;
  const DpSnap *cur;
  const DpPolicy *now;
  gboolean call = FALSE;
  guint32 spd_id = pol->spd_id;
  gint64 t;

  if (st == NULL)
    {
      count (dp, C_QUEUE_DROPS);
      return;
    }
  g_mutex_lock (&st->lock);
  /* The SA may have been published while we waited for the lock. */
  cur = atomic_load (&dp->snap);
  now = snap_policy (cur, st);
  if (now != NULL && now->out.sa != NULL)
    {
      g_mutex_unlock (&st->lock);
      protect (w, &now->out, pkt, len);
      return;
    }
  if (now == NULL || st->queue.length >= atomic_load_explicit (&dp->acquire_queue, memory_order_relaxed))
    {
      pstate_inc (&st->queue_drops);
      count (dp, C_QUEUE_DROPS);
    }
  else
    {
      DpQueued *q = g_malloc (sizeof *q + ESP_HEADROOM + len + ESP_TAILROOM);
      q->len = len;
      memcpy (q->data + ESP_HEADROOM, pkt, len);
      g_queue_push_tail (&st->queue, q);
      pstate_inc (&st->queued);
      count (dp, C_QUEUED);
    }
  t = g_get_monotonic_time ();
  if (now != NULL
      && (!st->acquired || t - st->last_acquire >= atomic_load_explicit (&dp->acquire_retry_us, memory_order_relaxed)))
    {
      st->acquired = TRUE;
      st->last_acquire = t;
      spd_id = now->spd_id;
      call = TRUE;
    }
  g_mutex_unlock (&st->lock);
  if (call)
    {
      pstate_inc (&st->acquires);
      count (dp, C_ACQUIRES);
      modike_datapath_acquire (dp->host, spd_id, sel);
    }
}

static void
bypass (DpWorker *w, const DpSnap *s, const ModikeSelector *sel, const guint8 *pkt, gsize len)
{
  Datapath *dp = w->dp;
  int fd = sel->remote.family == AF_INET ? s->raw_ip4 : s->raw_ip6;
  struct sockaddr_storage ss;
  socklen_t sl;
  ModikeAddr dst = sel->remote;

  dst.port = 0;
  modike_addr_to_sockaddr (&dst, &ss, &sl);
  if (fd < 0 || sendto (fd, pkt, len, MSG_DONTWAIT, (struct sockaddr *) &ss, sl) < 0)
    {
      count (dp, C_SEND_ERRORS);
      return;
    }
  count (dp, C_BYPASSED);
}

/* One outbound IP packet at slot[n_tx] + DP_HEAD. */
static void
out_packet (DpWorker *w, const DpSnap *s, guint8 *pkt, gsize len)
{
  Datapath *dp = w->dp;
  ModikeSelector sel;
  const DpPolicy *pol;

  if (!datapath_packet_selector (pkt, len, &sel))
    {
      count (dp, C_MALFORMED);
      return;
    }
  pol = spd_match (s, &sel);
  if (pol == NULL)
    {
      count (dp, C_NO_POLICY);
      return;
    }
  switch (pol->action)
    {
    case MODIKE_SPD_PROTECT:
      if (pol->out.sa != NULL)
        protect (w, &pol->out, pkt, len);
      else
        hold (w, pol, &sel, pkt, len);
      break;
    case MODIKE_SPD_BYPASS:
      bypass (w, s, &sel, pkt, len);
      break;
    default:
      count (dp, C_DISCARDED);
      if (pol->state != NULL)
        pstate_inc (&pol->state->discarded);
      break;
    }
}

/* An fd that fails for good would wake the worker forever (level
 * triggered): stop watching it; the core detaches it in time. */
static void
io_broken (DpWorker *w, const DpIo *io, int err)
{
  g_warning ("esp_user: fd %d fails (%s): no longer read", io->fd, g_strerror (err));
  count (w->dp, C_SEND_ERRORS);
  if (epoll_ctl (w->epfd, EPOLL_CTL_DEL, io->fd, NULL) < 0)
    g_debug ("esp_user: epoll del fd %d: %s", io->fd, g_strerror (errno));
}

static void
ensure_slot (DpWorker *w)
{
  if (w->n_tx == DP_BATCH)
    tx_flush (w);
}

static void
adapter_readable (DpWorker *w, const DpSnap *s, const DpIo *io)
{
  Datapath *dp = w->dp;
  gsize vlen = io->vnet ? DATAPATH_VNET_HDR_LEN : 0;

  for (guint n = 0; n < DP_BATCH; n++)
    {
      guint8 *buf, *pkt;
      ssize_t r;
      gsize len;

      ensure_slot (w);
      buf = w->slot[w->n_tx];
      pkt = buf + DP_HEAD;
      r = read (io->fd, pkt - vlen, DP_DATA + vlen);
      if (r < 0)
        {
          if (errno == EINTR)
            continue;
          if (errno != EAGAIN && errno != EWOULDBLOCK)
            io_broken (w, io, errno);
          break;
        }
      if ((gsize) r <= vlen)
        {
          count (dp, C_MALFORMED);
          continue;
        }
      len = (gsize) r - vlen;
      if (vlen > 0)
        {
          DatapathVnetHdr vh;

          datapath_vnet_hdr_parse (pkt - vlen, &vh);
          if (vh.gso_type != VIRTIO_NET_HDR_GSO_NONE)
            {
              DatapathGso g;
              gsize seg;
              guint8 *big = buf;

              /* Keep the super packet aside; segments go into slots. */
              w->slot[w->n_tx] = w->spare;
              w->spare = big;
              if (!datapath_gso_init (&g, &vh, big + DP_HEAD, len))
                {
                  count (dp, C_MALFORMED);
                  continue;
                }
              for (;;)
                {
                  ensure_slot (w);
                  pkt = w->slot[w->n_tx] + DP_HEAD;
                  seg = datapath_gso_next (&g, pkt);
                  if (seg == 0)
                    break;
                  out_packet (w, s, pkt, seg);
                }
              continue;
            }
          if (!datapath_complete_csum (&vh, pkt, len))
            {
              count (dp, C_MALFORMED);
              continue;
            }
        }
      out_packet (w, s, pkt, len);
    }
  if (w->n_tx > 0)
    tx_flush (w);
}

/* ------------------------------------------------------------------ */
/* Inbound                                                             */

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
          put16 (ip + 2, (guint16) (f->ip_len + l4));
          ip[10] = ip[11] = 0;
          store_csum (ip + 10, datapath_checksum (ip, f->ip_len));
        }
      else
        put16 (ip + 4, (guint16) l4);
      if (f->psh)
        tcp[13] |= 0x08;
      partial = (guint16) ~csum_fold (pseudo_sum (v4 ? AF_INET : AF_INET6, ip, IPPROTO_TCP, l4));
      store_csum (tcp + 16, partial);
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
deliver (DpWorker *w, const DpIn *in, guint8 *pkt, gsize len)
{
  Datapath *dp = w->dp;
  const DpAdapter *ad = in->adapter;
  int fd;

  if (ad == NULL)
    {
      count (dp, C_NO_ADAPTER);
      esp_sa_count_drop (in->sa->esp, MODIKE_DROP_OTHER);
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
    count (dp, C_SEND_ERRORS);
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
      put16 (h + 2, (guint16) (len + 20));
      h[8] = 64;
      h[9] = next;
      memcpy (h + 12, e->src.addr, 4);
      memcpy (h + 16, e->dst.addr, 4);
      store_csum (h + 10, datapath_checksum (h, 20));
      *out_len = len + 20;
    }
  else
    {
      if (len > 65535)
        return NULL;
      h = payload - 40;
      memset (h, 0, 40);
      h[0] = 0x60;
      put16 (h + 4, (guint16) len);
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
  const DpIn *in;
  guint8 *payload, next;
  gsize plen;
  EspLifeEvent life = ESP_LIFE_OK;
  ModikeDropReason why;
  gboolean ok;
  const ModikeSadEntry *e;

  if (!esp_packet_spi (esp, len, &spi))
    {
      count (dp, C_MALFORMED);
      return;
    }
  in = in_lookup (s, spi);
  if (in == NULL)
    {
      count (dp, C_UNKNOWN_SPI);
      return;
    }
  ok = esp_sa_decrypt (in->sa->esp, w->index, esp, len, &payload, &plen, &next, &life, &why);
  if (life != ESP_LIFE_OK)
    modike_datapath_expire (dp->host, MODIKE_DIR_IN, spi, life == ESP_LIFE_HARD);
  if (!ok)
    return;
  e = esp_sa_entry (in->sa->esp);
  if (e->mode == MODIKE_MODE_TRANSPORT)
    {
      payload = transport_header (e, payload, plen, next, &plen);
      if (payload == NULL)
        {
          esp_sa_count_drop (in->sa->esp, MODIKE_DROP_MALFORMED);
          return;
        }
    }
  deliver (w, in, payload, plen);
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
      count (dp, C_MALFORMED);
      return;
    }
  /* RFC 3948 2.2/2.3: keepalive, non-ESP marker (IKE), else ESP. */
  if (len == 1 && data[0] == 0xff)
    {
      count (dp, C_KEEPALIVES);
      return;
    }
  if (len >= 4 && data[0] == 0 && data[1] == 0 && data[2] == 0 && data[3] == 0)
    {
      ModikeAddr local, remote;

      if (len == 4 || !modike_addr_from_sockaddr (m->msg_hdr.msg_name, m->msg_hdr.msg_namelen, &remote))
        {
          count (dp, C_MALFORMED);
          return;
        }
      local_from_cmsg (&m->msg_hdr, io, &local);
      count (dp, C_IKE);
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
      count (w->dp, C_MALFORMED);
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
          count (w->dp, C_MALFORMED);
          return;
        }
      data += ihl;
      len -= ihl;
    }
  esp_input (w, s, data, len);
}

static void
socket_readable (DpWorker *w, const DpSnap *s, const DpIo *io)
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
    io_broken (w, io, errno);
  for (int i = 0; i < r; i++)
    {
      if (io->kind == DP_IO_UDP)
        udp_datagram (w, s, io, &w->msgs[i], w->slot[i] + DP_HEAD);
      else
        raw_datagram (w, s, io, &w->msgs[i], w->slot[i] + DP_HEAD);
    }
  /* The flows point into this batch's slots. */
  if (datapath_gro_flush (w->gro) > 0)
    count (w->dp, C_SEND_ERRORS);
}

/* ------------------------------------------------------------------ */
/* Workers                                                             */

static gpointer
worker_main (gpointer data)
{
  DpWorker *w = data;
  Datapath *dp = w->dp;
  struct epoll_event ev[32];

  for (;;)
    {
      const DpSnap *s;
      int n;

      atomic_store (&w->qs, 0); /* quiescent: holds no snapshot pointer */
      n = epoll_wait (w->epfd, ev, G_N_ELEMENTS (ev), -1);
      atomic_store (&w->qs, atomic_load (&dp->epoch));
      if (atomic_load (&dp->stopping))
        break;
      s = atomic_load (&dp->snap);
      for (int i = 0; i < n; i++)
        {
          guint slot = ev[i].data.u64 & 0xffff;
          guint64 id = ev[i].data.u64 >> 16;
          const DpIo *io;

          if (slot >= DP_MAX_IO)
            continue;
          /* The fd may have been detached since epoll_wait returned. */
          io = s->io[slot];
          if (io == NULL || io->id != id)
            continue;
          if (io->kind == DP_IO_ADAPTER)
            adapter_readable (w, s, io);
          else
            socket_readable (w, s, io);
        }
    }
  atomic_store (&w->qs, 0);
  return NULL;
}

static DpWorker *
worker_new (Datapath *dp, guint index, GError **error)
{
  DpWorker *w;
  struct epoll_event ev = { .events = EPOLLIN, .data.u64 = DP_STOP_SLOT };

  /* Aligned allocation: the struct asks for cache-line alignment. */
  w = g_aligned_alloc0 (1, sizeof *w, 64);
  w->dp = dp;
  w->index = index;
  w->epfd = epoll_create1 (EPOLL_CLOEXEC);
  if (w->epfd < 0 || epoll_ctl (w->epfd, EPOLL_CTL_ADD, dp->stop_fd, &ev) < 0)
    {
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno), "esp_user: epoll: %s", g_strerror (errno));
      if (w->epfd >= 0)
        close (w->epfd);
      g_aligned_free (w);
      return NULL;
    }
  /* Slots are only touched as far as packets reach: big but mostly virtual. */
  w->mem = g_malloc ((gsize) (DP_BATCH + 1) * DP_SLOT);
  for (guint i = 0; i < DP_BATCH; i++)
    w->slot[i] = w->mem + (gsize) i * DP_SLOT;
  w->spare = w->mem + (gsize) DP_BATCH * DP_SLOT;
  w->gro = datapath_gro_new ();
  return w;
}

static void
worker_destroy (DpWorker *w)
{
  if (w == NULL)
    return;
  if (w->epfd >= 0)
    close (w->epfd);
  g_free (w->mem);
  datapath_gro_free (w->gro);
  g_aligned_free (w);
}

/* ------------------------------------------------------------------ */
/* fds                                                                 */

static DpIo *
io_add (Datapath *dp, DpIoKind kind, int fd, guint worker, GError **error)
{
  DpIo *io;
  struct epoll_event ev = { .events = EPOLLIN };
  guint slot;

  for (slot = 0; slot < DP_MAX_IO && dp->io[slot] != NULL; slot++)
    ;
  if (slot == DP_MAX_IO)
    {
      g_set_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_INVALID, "esp_user: too many fds (%d)",
                   DP_MAX_IO);
      return NULL;
    }
  io = g_new0 (DpIo, 1);
  io->id = ++dp->next_io_id;
  io->slot = slot;
  io->kind = kind;
  io->fd = fd;
  io->worker = worker % dp->n_threads;
  ev.data.u64 = (io->id << 16) | slot;
  if (epoll_ctl (dp->workers[io->worker]->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
    {
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno), "esp_user: cannot watch fd %d: %s", fd,
                   g_strerror (errno));
      g_free (io);
      return NULL;
    }
  dp->io[slot] = io;
  return io;
}

/* Unwatched now, freed after the grace period (publish follows). */
static void
io_remove (Datapath *dp, DpIo *io)
{
  if (io == NULL)
    return;
  if (epoll_ctl (dp->workers[io->worker]->epfd, EPOLL_CTL_DEL, io->fd, NULL) < 0)
    g_debug ("esp_user: epoll del fd %d: %s", io->fd, g_strerror (errno));
  dp->io[io->slot] = NULL;
  retire (dp, g_free, io);
}

static void
socket_buffers (int fd)
{
  int size = DP_SOCK_BUF;

  /* Bursts from GSO need room; FORCE works as root, the plain one caps. */
  if (setsockopt (fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0
      && setsockopt (fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size) < 0)
    g_debug ("esp_user: SO_RCVBUF on fd %d: %s", fd, g_strerror (errno));
  if (setsockopt (fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) < 0
      && setsockopt (fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size) < 0)
    g_debug ("esp_user: SO_SNDBUF on fd %d: %s", fd, g_strerror (errno));
}

static int
open_raw (int family, int proto, const char *what)
{
  int fd = socket (family, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);

  if (fd < 0)
    g_message ("esp_user: no %s socket (%s): going on without it", what, g_strerror (errno));
  return fd;
}

static void
close_fd (int *fd)
{
  if (*fd >= 0)
    close (*fd);
  *fd = -1;
}

/* ------------------------------------------------------------------ */
/* The Datapath and its ops                                            */

Datapath *
datapath_new (void)
{
  Datapath *dp = g_new0 (Datapath, 1);

  g_mutex_init (&dp->wlock);
  dp->replay_window = DATAPATH_DEFAULT_REPLAY_WINDOW;
  atomic_init (&dp->acquire_queue, DATAPATH_DEFAULT_ACQUIRE_QUEUE);
  atomic_init (&dp->acquire_retry_us, 2 * G_USEC_PER_SEC);
  atomic_init (&dp->snap, NULL);
  atomic_init (&dp->epoch, 1);
  atomic_init (&dp->stopping, FALSE);
  dp->raw_sockets = TRUE;
  dp->sa_in = g_hash_table_new (NULL, NULL);
  dp->sa_out = g_hash_table_new (NULL, NULL);
  dp->policies = g_ptr_array_new_with_free_func ((GDestroyNotify) modike_spd_entry_free);
  dp->pstates = g_hash_table_new (NULL, NULL);
  dp->adapters = g_hash_table_new (g_str_hash, g_str_equal);
  dp->retired = g_ptr_array_new ();
  dp->raw_esp4 = dp->raw_esp6 = dp->raw_ip4 = dp->raw_ip6 = dp->stop_fd = -1;
  return dp;
}

void
datapath_configure (Datapath *dp, guint threads, guint replay_window, guint acquire_queue)
{
  g_mutex_lock (&dp->wlock);
  if (dp->started && threads != dp->cfg_threads)
    g_message ("esp_user: threads=%u takes effect at the next start", threads);
  dp->cfg_threads = threads;
  /* The window is a bitmap of 64-bit words. */
  dp->replay_window = MIN ((replay_window + 63) / 64 * 64, 4096u);
  atomic_store (&dp->acquire_queue, MIN (acquire_queue, (guint) DATAPATH_MAX_ACQUIRE_QUEUE));
  g_mutex_unlock (&dp->wlock);
}

void
datapath_set_acquire_retry (Datapath *dp, gint64 usec)
{
  atomic_store (&dp->acquire_retry_us, usec);
}

void
datapath_set_raw_sockets (Datapath *dp, gboolean enable)
{
  dp->raw_sockets = enable;
}

guint
datapath_get_n_threads (const Datapath *dp)
{
  return dp->n_threads;
}

guint
datapath_get_n_raw_esp (const Datapath *dp)
{
  return (dp->raw_esp4 >= 0) + (dp->raw_esp6 >= 0);
}

void
datapath_get_counters (Datapath *dp, DatapathCounters *out)
{
  guint64 c[C_N];

  for (guint i = 0; i < C_N; i++)
    c[i] = atomic_load (&dp->counters[i]);
  *out = (DatapathCounters) {
    .no_policy = c[C_NO_POLICY], .discarded = c[C_DISCARDED], .bypassed = c[C_BYPASSED],
    .queued = c[C_QUEUED], .queue_drops = c[C_QUEUE_DROPS], .acquires = c[C_ACQUIRES],
    .unknown_spi = c[C_UNKNOWN_SPI], .malformed = c[C_MALFORMED], .keepalives = c[C_KEEPALIVES],
    .ike = c[C_IKE], .no_adapter = c[C_NO_ADAPTER], .send_errors = c[C_SEND_ERRORS],
  };
}

gboolean
datapath_get_policy_counters (Datapath *dp, guint32 spd_id, DatapathPolicyCounters *out)
{
  DpPolicyState *st;

  g_mutex_lock (&dp->wlock);
  st = g_hash_table_lookup (dp->pstates, GUINT_TO_POINTER (spd_id));
  if (st != NULL)
    {
      out->discarded = atomic_load (&st->discarded);
      out->queued = atomic_load (&st->queued);
      out->queue_drops = atomic_load (&st->queue_drops);
      out->acquires = atomic_load (&st->acquires);
      g_mutex_lock (&st->lock);
      out->queue_len = st->queue.length;
      g_mutex_unlock (&st->lock);
    }
  g_mutex_unlock (&dp->wlock);
  return st != NULL;
}

/* Frees all tables; no worker may be running. */
static void
clear_state (Datapath *dp)
{
  GHashTableIter it;
  gpointer v;

  for (guint i = 0; i < DP_MAX_IO; i++)
    {
      g_free (dp->io[i]);
      dp->io[i] = NULL;
    }
  g_hash_table_iter_init (&it, dp->adapters);
  while (g_hash_table_iter_next (&it, NULL, &v))
    dp_adapter_free (v);
  g_hash_table_remove_all (dp->adapters);
  g_hash_table_iter_init (&it, dp->sa_in);
  while (g_hash_table_iter_next (&it, NULL, &v))
    dp_sa_free (v);
  g_hash_table_remove_all (dp->sa_in);
  g_hash_table_iter_init (&it, dp->sa_out);
  while (g_hash_table_iter_next (&it, NULL, &v))
    dp_sa_free (v);
  g_hash_table_remove_all (dp->sa_out);
  g_hash_table_iter_init (&it, dp->pstates);
  while (g_hash_table_iter_next (&it, NULL, &v))
    dp_pstate_free (v);
  g_hash_table_remove_all (dp->pstates);
  g_ptr_array_set_size (dp->policies, 0);
  for (guint i = 0; i < dp->retired->len; i++)
    {
      DpRetired *r = dp->retired->pdata[i];
      r->fn (r->p);
      g_free (r);
    }
  g_ptr_array_set_size (dp->retired, 0);
  snap_free (atomic_exchange (&dp->snap, NULL));
  for (guint i = 0; i < G_N_ELEMENTS (dp->workers); i++)
    {
      worker_destroy (dp->workers[i]);
      dp->workers[i] = NULL;
    }
}

static void
dp_stop_locked (Datapath *dp)
{
  if (!dp->started)
    return;
  atomic_store (&dp->stopping, TRUE);
  if (dp->stop_fd >= 0 && eventfd_write (dp->stop_fd, 1) < 0)
    g_warning ("esp_user: cannot wake the workers: %s", g_strerror (errno));
  for (guint i = 0; i < G_N_ELEMENTS (dp->workers); i++)
    if (dp->workers[i] != NULL && dp->workers[i]->thread != NULL)
      {
        g_thread_join (dp->workers[i]->thread);
        dp->workers[i]->thread = NULL;
      }
  clear_state (dp);
  close_fd (&dp->raw_esp4);
  close_fd (&dp->raw_esp6);
  close_fd (&dp->raw_ip4);
  close_fd (&dp->raw_ip6);
  close_fd (&dp->stop_fd);
  dp->n_sockets = 0;
  dp->host = NULL;
  dp->started = FALSE;
  atomic_store (&dp->stopping, FALSE);
}

void
datapath_free (Datapath *dp)
{
  if (dp == NULL)
    return;
  g_mutex_lock (&dp->wlock);
  dp_stop_locked (dp);
  clear_state (dp); /* what was set before a start */
  g_mutex_unlock (&dp->wlock);
  g_hash_table_unref (dp->sa_in);
  g_hash_table_unref (dp->sa_out);
  g_ptr_array_unref (dp->policies);
  g_hash_table_unref (dp->pstates);
  g_hash_table_unref (dp->adapters);
  g_ptr_array_unref (dp->retired);
  g_mutex_clear (&dp->wlock);
  g_free (dp);
}

static gboolean
dp_start (gpointer user, ModikeDatapathHost *host, GError **error)
{
  Datapath *dp = user;
  guint n;
  gboolean ok = FALSE;

  g_mutex_lock (&dp->wlock);
  if (dp->started)
    {
      g_set_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_INVALID, "esp_user: already started");
      goto out;
    }
  n = dp->cfg_threads != 0 ? dp->cfg_threads : g_get_num_processors ();
  if (n > DATAPATH_MAX_WORKERS)
    g_message ("esp_user: %u threads asked, using %u", n, (guint) DATAPATH_MAX_WORKERS);
  dp->n_threads = CLAMP (n, 1u, (guint) DATAPATH_MAX_WORKERS);
  dp->host = host;
  atomic_store (&dp->udp_gso, TRUE);
  dp->stop_fd = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (dp->stop_fd < 0)
    {
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno), "esp_user: eventfd: %s", g_strerror (errno));
      goto out;
    }
  dp->started = TRUE; /* from here on, failures undo through dp_stop_locked */
  for (guint i = 0; i < dp->n_threads; i++)
    if ((dp->workers[i] = worker_new (dp, i, error)) == NULL)
      goto fail;
  if (dp->raw_sockets)
    {
      dp->raw_esp4 = open_raw (AF_INET, IPPROTO_ESP, "raw IPv4 ESP");
      dp->raw_esp6 = open_raw (AF_INET6, IPPROTO_ESP, "raw IPv6 ESP");
      dp->raw_ip4 = open_raw (AF_INET, IPPROTO_RAW, "raw IPv4 (bypass)");
      dp->raw_ip6 = open_raw (AF_INET6, IPPROTO_RAW, "raw IPv6 (bypass)");
    }
  for (int f = 0; f < 2; f++)
    {
      int fd = f == 0 ? dp->raw_esp4 : dp->raw_esp6;
      DpIo *io;

      if (fd < 0)
        continue;
      socket_buffers (fd);
      io = io_add (dp, DP_IO_RAW_ESP, fd, dp->n_threads - 1 - dp->n_sockets++ % dp->n_threads, error);
      if (io == NULL)
        goto fail;
      io->family = f == 0 ? AF_INET : AF_INET6;
    }
  publish (dp);
  for (guint i = 0; i < dp->n_threads; i++)
    {
      g_autofree char *name = g_strdup_printf ("esp-worker-%u", i);
      dp->workers[i]->thread = g_thread_try_new (name, worker_main, dp->workers[i], error);
      if (dp->workers[i]->thread == NULL)
        goto fail;
    }
  g_info ("esp_user: started, %u worker thread(s), ESP over IP %s", dp->n_threads,
          datapath_get_n_raw_esp (dp) > 0 ? "available" : "unavailable");
  ok = TRUE;
  goto out;

fail:
  dp_stop_locked (dp);
out:
  g_mutex_unlock (&dp->wlock);
  return ok;
}

static void
dp_stop (gpointer user)
{
  Datapath *dp = user;

  g_mutex_lock (&dp->wlock);
  dp_stop_locked (dp);
  g_mutex_unlock (&dp->wlock);
}

static gboolean
dp_sa_add (gpointer user, const ModikeSadEntry *e, GError **error)
{
  Datapath *dp = user;
  GHashTable *table;
  ModikeSadEntry copy;
  DpSa *sa;
  EspSa *esp;
  gboolean ok = FALSE;

  g_mutex_lock (&dp->wlock);
  table = e->dir == MODIKE_DIR_IN ? dp->sa_in : dp->sa_out;
  if (!dp->started)
    g_set_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_INVALID,
                 "esp_user: SA %08x added before the datapath started", e->spi);
  else if (e->protocol != MODIKE_PROTO_ESP || e->spi == 0
           || (e->dir != MODIKE_DIR_IN && e->dir != MODIKE_DIR_OUT))
    g_set_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_INVALID,
                 "esp_user: SA %08x is not an ESP SA with a direction", e->spi);
  else if (g_hash_table_contains (table, GUINT_TO_POINTER (e->spi)))
    g_set_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_CONFLICT,
                 "esp_user: SA %08x (%s) exists", e->spi, e->dir == MODIKE_DIR_IN ? "in" : "out");
  else
    {
      /* esp_sa_new copies the entry: a shallow copy for our window is enough. */
      copy = *e;
      if (e->dir == MODIKE_DIR_IN && e->replay_window != 0)
        copy.replay_window = dp->replay_window;
      esp = esp_sa_new (&copy, dp->n_threads + 1, error);
      if (esp != NULL)
        {
          sa = g_new0 (DpSa, 1);
          sa->esp = esp;
          sa->spi = e->spi;
          sa->dir = e->dir;
          sa->serial = ++dp->next_serial;
          sa->spd_id = e->spd_id;
          g_hash_table_insert (table, GUINT_TO_POINTER (e->spi), sa);
          publish (dp);
          ok = TRUE;
        }
    }
  g_mutex_unlock (&dp->wlock);
  return ok;
}

static void
dp_sa_del (gpointer user, ModikeDirection dir, guint32 spi)
{
  Datapath *dp = user;
  GHashTable *table = dir == MODIKE_DIR_IN ? dp->sa_in : dp->sa_out;
  DpSa *sa;

  g_mutex_lock (&dp->wlock);
  sa = g_hash_table_lookup (table, GUINT_TO_POINTER (spi));
  if (sa != NULL)
    {
      g_hash_table_remove (table, GUINT_TO_POINTER (spi));
      retire (dp, dp_sa_free, sa);
      publish (dp);
    }
  g_mutex_unlock (&dp->wlock);
}

static void
dp_policies_set (gpointer user, GPtrArray *entries)
{
  Datapath *dp = user;
  g_autoptr (GHashTable) keep = g_hash_table_new (NULL, NULL);
  g_autoptr (GHashTable) renum = g_hash_table_new (NULL, NULL); /* old id -> new id */
  GHashTableIter it;
  gpointer k, v;

  g_mutex_lock (&dp->wlock);
  /* A reload numbers policies anew: SAs and queues follow their policy
   * by name, as the core's children do. */
  for (guint i = 0; entries != NULL && i < entries->len; i++)
    {
      const ModikeSpdEntry *e = entries->pdata[i];
      for (guint j = 0; e->action == MODIKE_SPD_PROTECT && e->name != NULL && j < dp->policies->len; j++)
        {
          const ModikeSpdEntry *o = dp->policies->pdata[j];
          if (o->action == MODIKE_SPD_PROTECT && g_strcmp0 (o->name, e->name) == 0 && o->id != e->id)
            g_hash_table_insert (renum, GUINT_TO_POINTER (o->id), GUINT_TO_POINTER (e->id));
        }
    }
  g_hash_table_iter_init (&it, dp->sa_out);
  while (g_hash_table_iter_next (&it, NULL, &v))
    {
      DpSa *sa = v;
      if (g_hash_table_lookup_extended (renum, GUINT_TO_POINTER (sa->spd_id), NULL, &k))
        sa->spd_id = GPOINTER_TO_UINT (k);
    }
  g_hash_table_iter_init (&it, renum);
  while (g_hash_table_iter_next (&it, &k, &v))
    {
      DpPolicyState *st = g_hash_table_lookup (dp->pstates, k);
      if (st != NULL && !g_hash_table_contains (dp->pstates, v))
        {
          g_hash_table_steal (dp->pstates, k);
          st->spd_id = GPOINTER_TO_UINT (v);
          g_hash_table_insert (dp->pstates, v, st);
        }
    }
  g_ptr_array_set_size (dp->policies, 0);
  for (guint i = 0; entries != NULL && i < entries->len; i++)
    {
      ModikeSpdEntry *e = entries->pdata[i];
      DpPolicyState *st = g_hash_table_lookup (dp->pstates, GUINT_TO_POINTER (e->id));

      g_ptr_array_add (dp->policies, e);
      if (st == NULL)
        {
          st = g_new0 (DpPolicyState, 1);
          st->dp = dp;
          st->spd_id = e->id;
          g_mutex_init (&st->lock);
          g_queue_init (&st->queue);
          g_hash_table_insert (dp->pstates, GUINT_TO_POINTER (e->id), st);
        }
      g_hash_table_add (keep, GUINT_TO_POINTER (e->id));
    }
  if (entries != NULL)
    {
      /* We own the entries now; the array goes. */
      g_ptr_array_set_free_func (entries, NULL);
      g_ptr_array_unref (entries);
    }
  g_hash_table_iter_init (&it, dp->pstates);
  while (g_hash_table_iter_next (&it, &k, &v))
    if (!g_hash_table_contains (keep, k))
      {
        g_hash_table_iter_remove (&it);
        retire (dp, dp_pstate_free, v);
      }
  publish (dp);
  g_mutex_unlock (&dp->wlock);
}

static void
adapter_detach_locked (Datapath *dp, const char *peer)
{
  DpAdapter *ad = g_hash_table_lookup (dp->adapters, peer);

  if (ad == NULL)
    return;
  g_hash_table_remove (dp->adapters, peer);
  for (guint i = 0; i < ad->n_fds; i++)
    io_remove (dp, ad->ios[i]);
  retire (dp, dp_adapter_free, ad);
}

static gboolean
dp_adapter_attach (gpointer user, const char *peer, const int *fds, guint n_fds, guint flags, GError **error)
{
  Datapath *dp = user;
  DpAdapter *ad;
  gboolean ok = FALSE;

  g_mutex_lock (&dp->wlock);
  if (!dp->started || n_fds == 0 || n_fds > DP_MAX_QUEUES || peer == NULL)
    {
      g_set_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_INVALID,
                   "esp_user: cannot attach an adapter for %s (%u queues%s)", peer ? peer : "(null)", n_fds,
                   dp->started ? "" : ", not started");
      goto out;
    }
  adapter_detach_locked (dp, peer);
  ad = g_new0 (DpAdapter, 1);
  ad->peer = g_strdup (peer);
  ad->n_fds = n_fds;
  ad->vnet = (flags & MODIKE_ADAPTER_VNET_HDR) != 0;
  for (guint i = 0; i < n_fds; i++)
    {
      int fl = fcntl (fds[i], F_GETFL);

      /* Workers read until EAGAIN: a blocking fd would stall one. */
      if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl (fds[i], F_SETFL, fl | O_NONBLOCK) < 0))
        g_warning ("esp_user: adapter fd %d of %s: cannot make it non-blocking: %s", fds[i], peer,
                   g_strerror (errno));
      ad->fds[i] = fds[i];
      ad->ios[i] = io_add (dp, DP_IO_ADAPTER, fds[i], i, error);
      if (ad->ios[i] == NULL)
        {
          for (guint j = 0; j < i; j++)
            io_remove (dp, ad->ios[j]);
          retire (dp, dp_adapter_free, ad);
          publish (dp);
          goto out;
        }
      ad->ios[i]->vnet = ad->vnet;
    }
  g_hash_table_insert (dp->adapters, ad->peer, ad);
  publish (dp);
  g_info ("esp_user: adapter for %s attached (%u queue(s)%s)", peer, n_fds, ad->vnet ? ", offloads" : "");
  ok = TRUE;
out:
  g_mutex_unlock (&dp->wlock);
  return ok;
}

static void
dp_adapter_detach (gpointer user, const char *peer)
{
  Datapath *dp = user;

  g_mutex_lock (&dp->wlock);
  adapter_detach_locked (dp, peer);
  publish (dp);
  g_mutex_unlock (&dp->wlock);
}

static gboolean
dp_socket_attach (gpointer user, int fd, const ModikeAddr *local, GError **error)
{
  Datapath *dp = user;
  static const guint8 zero[16];
  int type = 0;
  socklen_t tl = sizeof type;
  DpIo *io;
  gboolean ok = FALSE;

  g_mutex_lock (&dp->wlock);
  if (!dp->started || local == NULL || (local->family != AF_INET && local->family != AF_INET6))
    {
      g_set_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_INVALID,
                   "esp_user: cannot take socket %d%s", fd, dp->started ? "" : " (not started)");
      goto out;
    }
  if (getsockopt (fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type != SOCK_DGRAM)
    {
      g_set_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_INVALID,
                   "esp_user: socket %d is not a UDP socket", fd);
      goto out;
    }
  socket_buffers (fd);
  io = io_add (dp, DP_IO_UDP, fd, dp->n_threads - 1 - dp->n_sockets % dp->n_threads, error);
  if (io == NULL)
    goto out;
  dp->n_sockets++;
  io->family = local->family;
  io->local = *local;
  io->wildcard = memcmp (local->addr, zero, modike_addr_len (local)) == 0;
  publish (dp);
  ok = TRUE;
out:
  g_mutex_unlock (&dp->wlock);
  return ok;
}

static void
dp_sa_stats (gpointer user, ModikeDirection dir, guint32 spi, ModikeSaStats *out)
{
  Datapath *dp = user;
  DpSa *sa;

  memset (out, 0, sizeof *out);
  g_mutex_lock (&dp->wlock);
  sa = g_hash_table_lookup (dir == MODIKE_DIR_IN ? dp->sa_in : dp->sa_out, GUINT_TO_POINTER (spi));
  if (sa != NULL)
    esp_sa_stats (sa->esp, out);
  g_mutex_unlock (&dp->wlock);
}

const ModikeDatapathOps datapath_ops = {
  .name = "esp_user",
  .start = dp_start,
  .stop = dp_stop,
  .sa_add = dp_sa_add,
  .sa_del = dp_sa_del,
  .policies_set = dp_policies_set,
  .adapter_attach = dp_adapter_attach,
  .adapter_detach = dp_adapter_detach,
  .socket_attach = dp_socket_attach,
  .sa_stats = dp_sa_stats,
};

/* ------------------------------------------------------------------ */
/* The plugin                                                          */

static const char esp_user_rng[] =
  "<element name=\"esp_user\" xmlns=\"http://relaxng.org/ns/structure/1.0\">"
  "<optional><attribute name=\"replay-window\"><data type=\"nonNegativeInteger\">"
  "<param name=\"maxInclusive\">4096</param></data></attribute></optional>"
  "<optional><attribute name=\"threads\"><data type=\"positiveInteger\">"
  "<param name=\"maxInclusive\">16</param></data></attribute></optional>"
  "<optional><attribute name=\"acquire-queue\"><data type=\"nonNegativeInteger\">"
  "<param name=\"maxInclusive\">4096</param></data></attribute></optional>"
  "<empty/></element>";

static guint
attr_uint (xmlNode *section, const char *name, guint dflt)
{
  g_autofree xmlChar *v = section != NULL ? xmlGetProp (section, (const xmlChar *) name) : NULL;

  /* The schema already checked the range. */
  return v != NULL ? (guint) g_ascii_strtoull ((const char *) v, NULL, 10) : dflt;
}

static gboolean
apply_config (ModikePlugin *plugin, xmlNode *section, gpointer user, GError **error)
{
  Datapath *dp = modike_plugin_get_data (plugin);

  datapath_configure (dp, attr_uint (section, "threads", 0),
                      attr_uint (section, "replay-window", DATAPATH_DEFAULT_REPLAY_WINDOW),
                      attr_uint (section, "acquire-queue", DATAPATH_DEFAULT_ACQUIRE_QUEUE));
  return TRUE;
}

gboolean
esp_user_init (ModikePlugin *plugin, GError **error)
{
  Datapath *dp = datapath_new ();

  modike_plugin_set_data (plugin, dp, (GDestroyNotify) datapath_free);
  return modike_register_datapath (plugin, &datapath_ops, dp, error)
         && modike_register_config_section (plugin, "esp_user", esp_user_rng, apply_config, NULL, error);
}

void
esp_user_fini (ModikePlugin *plugin)
{
  /* The core stops the datapath; datapath_free (plugin data) stops it if not. */
}
