/* Outbound traffic of the esp_user datapath: packets read from adapters
 * (GSO ones segmented), matched against the SPD and encrypted, held for an
 * acquire, sent in the clear (BYPASS) or dropped; the ESP goes out in
 * batches (sendmmsg, UDP_SEGMENT for runs of equal-size datagrams). */
#include "datapath-private.h"

#include <errno.h>
#include <linux/virtio_net.h>
#include <netinet/udp.h>
#include <poll.h>
#include <unistd.h>

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

gboolean
dp_tx_send_one (Datapath *dp, const DpOut *o, guint8 *data, gsize len)
{
  struct iovec iov = { data, len };
  struct msghdr mh;
  DpCmsg cm;

  if (o->fd < 0)
    {
      dp_count (dp, C_SEND_ERRORS);
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
  dp_count (dp, C_SEND_ERRORS);
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
              dp_tx_send_one (dp, t->out, t->data, t->len);
            }
          m++;
          continue;
        }
      dp_count (dp, C_SEND_ERRORS);
      m++;
    }
  w->n_tx = 0;
}

static gboolean
port_in (const ModikePortRange *r, guint16 p)
{
  return r->from <= p && p <= r->to;
}

static gboolean
policy_matches (const DpPolicy *p, const ModikeSelector *sel)
{
  return modike_addr_range_contains (&p->local, &sel->local) && modike_addr_range_contains (&p->remote, &sel->remote)
         && (p->proto == 0 || p->proto == sel->proto) && port_in (&p->lport, sel->local_port)
         && port_in (&p->rport, sel->remote_port);
}

guint
dp_host_hash (const ModikeAddr *a)
{
  guint32 h = 2166136261u ^ (guint32) a->family;
  gsize len = a->family == AF_INET6 ? 16 : 4;

  for (gsize i = 0; i < len; i++)
    h = (h ^ a->addr[i]) * 16777619u;
  return h ^ (h >> 15);
}

const DpHostSet *
dp_host_find (const DpHostTab *t, const ModikeAddr *a)
{
  guint i = dp_host_hash (a) & t->mask;

  /* A table always keeps a NULL slot, so the probe ends. */
  for (;;)
    {
      const DpHostSet *hs = atomic_load_explicit (&t->slot[i], memory_order_acquire);
      if (hs == NULL)
        return NULL;
      if (hs != DP_HOST_TOMB && modike_addr_equal_ip (&hs->pol[0].remote.from, a))
        return hs;
      i = (i + 1) & t->mask;
    }
}

const DpPolicy *
dp_spd_match (const DpSnap *s, const DpHostTab *h, const ModikeSelector *sel)
{
  const DpHostSet *hs = h != NULL ? dp_host_find (h, &sel->remote) : NULL;
  const DpPolicy *best = NULL;

  /* The first matching policy of the remote address's set... */
  for (guint k = 0; hs != NULL && k < hs->n; k++)
    if (policy_matches (&hs->pol[k], sel))
      {
        best = &hs->pol[k];
        break;
      }
  /* ...unless another policy before it matches. */
  for (guint k = 0; k < s->n_pol && (best == NULL || dp_policy_before (&s->pol[k], best)); k++)
    if (policy_matches (&s->pol[k], sel))
      return &s->pol[k];
  return best;
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
    modike_datapath_expire_sa (dp->host, MODIKE_DIR_OUT, o->sa->spi, o->sa->reqid, life == ESP_LIFE_HARD);
  if (!ok)
    return;
  esp_sa_touch (o->sa->esp, w->now_us);
  if (o->fd < 0)
    {
      dp_count (dp, C_SEND_ERRORS);
      esp_sa_count_drop (o->sa->esp, MODIKE_DROP_OTHER);
      return;
    }
  w->tx[w->n_tx] = (DpTx) { .fd = o->fd, .udp = o->udp, .out = o, .data = esp, .len = esp_len };
  w->n_tx++;
}

/* PROTECT without an SA: queue (bounded) and acquire once. */
static void
hold (DpWorker *w, const DpPolicy *pol, const ModikeSelector *sel, guint8 *pkt, gsize len)
{
  Datapath *dp = w->dp;
  DpPolicyState *st = pol->state;
  const DpOut *o;
  gboolean call = FALSE;
  guint32 spd_id = 0;
  gint64 t;

  if (st == NULL)
    {
      dp_count (dp, C_QUEUE_DROPS);
      return;
    }
  pthread_mutex_lock (&st->lock);
  /* The SA may have been published while we waited for the lock. */
  o = atomic_load (&st->out);
  if (o != NULL)
    {
      pthread_mutex_unlock (&st->lock);
      protect (w, o, pkt, len);
      return;
    }
  if (st->gone || st->queue.length >= atomic_load_explicit (&dp->acquire_queue, memory_order_relaxed))
    {
      dp_pstate_inc (&st->queue_drops);
      dp_count (dp, C_QUEUE_DROPS);
    }
  else
    {
      DpQueued *q = g_malloc (sizeof *q + ESP_HEADROOM + len + ESP_TAILROOM);
      q->len = len;
      memcpy (q->data + ESP_HEADROOM, pkt, len);
      g_queue_push_tail (&st->queue, q);
      dp_pstate_inc (&st->queued);
      dp_count (dp, C_QUEUED);
    }
  t = w->now_us;   /* the batch's clock read */
  if (!st->gone
      && (!st->acquired || t - st->last_acquire >= atomic_load_explicit (&dp->acquire_retry_us, memory_order_relaxed)))
    {
      st->acquired = TRUE;
      st->last_acquire = t;
      spd_id = st->spd_id;
      call = TRUE;
    }
  pthread_mutex_unlock (&st->lock);
  if (call)
    {
      dp_pstate_inc (&st->acquires);
      dp_count (dp, C_ACQUIRES);
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
      dp_count (dp, C_SEND_ERRORS);
      return;
    }
  dp_count (dp, C_BYPASSED);
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
      dp_count (dp, C_MALFORMED);
      return;
    }
  pol = dp_spd_match (s, atomic_load_explicit (&dp->hosttab, memory_order_acquire), &sel);
  if (pol == NULL)
    {
      dp_count (dp, C_NO_POLICY);
      return;
    }
  switch (pol->action)
    {
    case MODIKE_SPD_PROTECT:
      {
        const DpOut *o = pol->state != NULL ? atomic_load_explicit (&pol->state->out, memory_order_acquire) : NULL;
        if (o != NULL)
          protect (w, o, pkt, len);
        else
          hold (w, pol, &sel, pkt, len);
      }
      break;
    case MODIKE_SPD_BYPASS:
      bypass (w, s, &sel, pkt, len);
      break;
    default:
      dp_count (dp, C_DISCARDED);
      if (pol->state != NULL)
        dp_pstate_inc (&pol->state->discarded);
      break;
    }
}

static void
ensure_slot (DpWorker *w)
{
  if (w->n_tx == DP_BATCH)
    tx_flush (w);
}

void
dp_adapter_readable (DpWorker *w, const DpSnap *s, const DpIo *io)
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
            dp_io_broken (w, io, errno);
          break;
        }
      if ((gsize) r <= vlen)
        {
          dp_count (dp, C_MALFORMED);
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
                  dp_count (dp, C_MALFORMED);
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
              dp_count (dp, C_MALFORMED);
              continue;
            }
        }
      out_packet (w, s, pkt, len);
    }
  if (w->n_tx > 0)
    tx_flush (w);
}
