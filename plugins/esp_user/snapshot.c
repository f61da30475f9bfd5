/* Snapshots of the esp_user datapath: what the workers read (policies,
 * SAs, adapters, fds), built by the writers under wlock and published
 * with one atomic store; what a publish made unreachable is freed after
 * every worker passed a quiescent point (QSBR, datapath-private.h). */
#include "datapath-private.h"

#include <sched.h>

typedef struct {
  GDestroyNotify fn;
  gpointer p;
} DpRetired;

void
dp_sa_free (gpointer p)
{
  DpSa *sa = p;

  esp_sa_free (sa->esp);
  g_free (sa);
}

void
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

void
dp_pstate_free (gpointer p)
{
  DpPolicyState *st = p;

  /* Whatever still waits is dropped (a worker may have queued it after
   * the policy went, before the grace period ended). */
  atomic_fetch_add (&st->dp->counters[C_QUEUE_DROPS], pstate_drain (st));
  g_mutex_clear (&st->lock);
  g_free (st);
}

void
dp_snap_free (gpointer p)
{
  DpSnap *s = p;

  if (s == NULL)
    return;
  g_free (s->pol);
  g_free (s->in);
  g_free (s);
}

void
dp_retire (Datapath *dp, GDestroyNotify fn, gpointer p)
{
  DpRetired *r = g_new (DpRetired, 1);

  r->fn = fn;
  r->p = p;
  g_ptr_array_add (dp->retired, r);
}

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

void
dp_retired_free_all (Datapath *dp)
{
  for (guint i = 0; i < dp->retired->len; i++)
    {
      DpRetired *r = dp->retired->pdata[i];
      r->fn (r->p);
      g_free (r);
    }
  g_ptr_array_set_size (dp->retired, 0);
}

/* Frees what the last publish made unreachable. */
static void
reclaim (Datapath *dp)
{
  if (dp->retired->len == 0)
    return;
  qsbr_synchronize (dp);
  dp_retired_free_all (dp);
}

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

static void
in_insert (DpSnap *s, const DpIn *entry)
{
  guint i = dp_spi_hash (entry->spi) & s->in_mask;

  while (s->in[i].spi != 0)
    i = (i + 1) & s->in_mask;
  s->in[i] = *entry;
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

/* Sends what waited for this policy's SA, in order (main loop thread:
 * it uses the extra esp thread index). Caller holds st->lock. */
static void
flush_queue (Datapath *dp, DpPolicyState *st, const DpOut *o)
{
  DpQueued *q;
  gint64 now = g_get_monotonic_time ();

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
        {
          esp_sa_touch (o->sa->esp, now);
          dp_tx_send_one (dp, o, esp, esp_len);
        }
      g_free (q);
    }
}

void
dp_publish (Datapath *dp)
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
    dp_retire (dp, dp_snap_free, old);
  reclaim (dp);
}
