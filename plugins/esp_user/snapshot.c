/* What the workers of the esp_user datapath read, written by the writers
 * under wlock: snapshots of the policies and fds (rebuilt and published
 * with one atomic store), the inbound SA table and the host policy table
 * (changed slot by slot) and the policies' outbound SAs (one pointer
 * each). What a change made
 * unreachable is freed after every worker passed a quiescent point
 * (QSBR, datapath-private.h). */
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
  g_free (atomic_load (&st->out));
  pthread_mutex_destroy (&st->lock);
  g_free (st);
}

void
dp_snap_free (gpointer p)
{
  DpSnap *s = p;

  if (s == NULL)
    return;
  g_free (s->pol);
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
  dp->retired_table = FALSE;
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

/* SA changes retire a few objects each: wait for a grace period once
 * per batch of them, not per change (or after an inbound table was
 * replaced: the old one is as big as the new). */
void
dp_reclaim_some (Datapath *dp)
{
  if (dp->retired->len >= 64 || dp->retired_table)
    reclaim (dp);
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

gboolean
dp_one_address (const ModikeAddrRange *r)
{
  gsize len = r->from.family == AF_INET ? 4 : r->from.family == AF_INET6 ? 16 : 0;

  return len > 0 && r->to.family == r->from.family && memcmp (r->from.addr, r->to.addr, len) == 0;
}

/* The policies that are not host policies (rare changes: config ones). */
static DpSnap *
snap_build (Datapath *dp)
{
  DpSnap *s = g_new0 (DpSnap, 1);

  dp->n_snapshots++;
  memcpy (s->io, dp->io, sizeof s->io);
  s->raw_ip4 = dp->raw_ip4;
  s->raw_ip6 = dp->raw_ip6;
  s->n_pol = dp->rest->len;
  s->pol = g_memdup2 (dp->rest->data, MAX (s->n_pol, 1) * sizeof (DpPolicy));
  return s;
}

/* ---- Lock-free tables (inbound SAs, host policies) ---- */

static DpTab *
tab_new (guint cap)
{
  DpTab *t = g_malloc0 (sizeof *t + cap * sizeof t->slot[0]);

  t->mask = cap - 1;
  return t;
}

DpTab *
dp_tab_new (void)
{
  return tab_new (16);
}

/* A table for `used` entries: at most half full, so probes stay short and
 * the next rebuild is at least a quarter of the table's changes away. */
static guint
tab_cap_for (guint used)
{
  guint cap = 16;

  while (cap < 2 * used)
    cap *= 2;
  return cap;
}

/* Whether one more entry needs a new table: a quarter of the slots stays
 * NULL (probes end early, and always). */
static gboolean
tab_full (const DpTab *t, guint used, guint tombs)
{
  return (used + tombs + 1) * 4 > (t->mask + 1) * 3;
}

/* Whether a table is so empty that a smaller one should replace it. */
static gboolean
tab_sparse (const DpTab *t, guint used)
{
  return t->mask + 1 > 16 && used * 8 < t->mask + 1;
}

/* Copies the live entries (not tomb) of *where into a new table of cap
 * slots, each at its first free slot from home (its hash), and publishes
 * it; readers of the old one see the same entries until they go
 * quiescent. Returns how many it copied. */
static guint
tab_rebuild (Datapath *dp, _Atomic (DpTab *) *where, guint cap, gconstpointer tomb, guint (*home) (gconstpointer e))
{
  DpTab *old = atomic_load (where);
  DpTab *t = tab_new (cap);
  guint n = 0;

  for (guint i = 0; i <= old->mask; i++)
    {
      gpointer e = atomic_load_explicit (&old->slot[i], memory_order_relaxed);
      guint j;

      if (e == NULL || e == tomb)
        continue;
      for (j = home (e) & t->mask; atomic_load_explicit (&t->slot[j], memory_order_relaxed) != NULL;
           j = (j + 1) & t->mask)
        ;
      atomic_store_explicit (&t->slot[j], e, memory_order_relaxed);
      n++;
    }
  atomic_store_explicit (where, t, memory_order_release);
  dp_retire (dp, g_free, old);
  dp->retired_table = TRUE;
  return n;
}

/* ---- Inbound SA table ---- */

DpSa dp_in_tomb;

static guint
in_find_slot (DpInTab *t, guint32 spi, DpSa *want)
{
  guint i = dp_spi_hash (spi) & t->mask;

  for (;;)
    {
      DpSa *sa = atomic_load_explicit (&t->slot[i], memory_order_relaxed);
      if (sa == want || (want != NULL && sa == NULL))
        return i;
      if (want == NULL && sa == DP_IN_TOMB)
        return i;
      i = (i + 1) & t->mask;
    }
}

static guint
sa_home (gconstpointer e)
{
  return dp_spi_hash (((const DpSa *) e)->spi);
}

static void
in_rebuild (Datapath *dp, guint cap)
{
  dp->n_in_copied += tab_rebuild (dp, &dp->intab, cap, DP_IN_TOMB, sa_home);
  dp->n_in_rebuilds++;
  dp->in_tombs = 0;
}

void
dp_in_insert (Datapath *dp, DpSa *sa)
{
  DpInTab *t = atomic_load (&dp->intab);
  guint i;

  if (tab_full (t, dp->in_used, dp->in_tombs))
    {
      in_rebuild (dp, tab_cap_for (dp->in_used + 1));
      t = atomic_load (&dp->intab);
    }
  i = in_find_slot (t, sa->spi, NULL);
  if (atomic_load_explicit (&t->slot[i], memory_order_relaxed) == DP_IN_TOMB)
    dp->in_tombs--;
  /* Release: a worker that finds the pointer sees the whole SA. */
  atomic_store_explicit (&t->slot[i], sa, memory_order_release);
  dp->in_used++;
}

void
dp_in_remove (Datapath *dp, DpSa *sa)
{
  DpInTab *t = atomic_load (&dp->intab);
  guint i = in_find_slot (t, sa->spi, sa);

  if (atomic_load_explicit (&t->slot[i], memory_order_relaxed) != sa)
    return;
  /* A tombstone, not NULL: probes for SAs placed after it go on. */
  atomic_store_explicit (&t->slot[i], DP_IN_TOMB, memory_order_release);
  dp->in_used--;
  dp->in_tombs++;
  if (tab_sparse (t, dp->in_used))
    in_rebuild (dp, tab_cap_for (dp->in_used));
}

/* ---- Host policy table ---- */

DpHostSet dp_host_tomb;

void
dp_host_tab_free_all (gpointer p)
{
  DpHostTab *t = p;

  for (guint i = 0; t != NULL && i <= t->mask; i++)
    {
      DpHostSet *hs = atomic_load_explicit (&t->slot[i], memory_order_relaxed);
      if (hs != NULL && hs != DP_HOST_TOMB)
        g_free (hs);
    }
  g_free (t);
}

/* The slot of a's set, or -1 and in *free_slot where it would go (the
 * first removed or never used slot of its probe). */
static gint
host_slot (DpHostTab *t, const ModikeAddr *a, guint *free_slot)
{
  guint i = dp_host_hash (a) & t->mask;
  gboolean have_free = FALSE;

  for (;;)
    {
      DpHostSet *hs = atomic_load_explicit (&t->slot[i], memory_order_relaxed);
      if (hs == NULL)
        {
          if (!have_free)
            *free_slot = i;
          return -1;
        }
      if (hs == DP_HOST_TOMB)
        {
          if (!have_free)
            *free_slot = i, have_free = TRUE;
        }
      else if (modike_addr_equal_ip (&hs->pol[0].remote.from, a))
        return (gint) i;
      i = (i + 1) & t->mask;
    }
}

static guint
host_home (gconstpointer e)
{
  return dp_host_hash (&((const DpHostSet *) e)->pol[0].remote.from);
}

/* The sets move to the new table as they are (shared, not copied). */
static void
host_rebuild (Datapath *dp, guint cap)
{
  dp->n_host_copied += tab_rebuild (dp, &dp->hosttab, cap, DP_HOST_TOMB, host_home);
  dp->n_host_rebuilds++;
  dp->host_tombs = 0;
}

static DpHostSet *
host_set_new (guint n)
{
  DpHostSet *hs = g_malloc (sizeof *hs + n * sizeof hs->pol[0]);

  hs->n = n;
  return hs;
}

void
dp_host_add (Datapath *dp, const DpPolicy *p)
{
  DpHostTab *t = atomic_load (&dp->hosttab);
  guint free_slot = 0;
  gint i = host_slot (t, &p->remote.from, &free_slot);
  DpHostSet *cur, *hs;
  guint k = 0;

  dp->host_pols++;
  if (i >= 0)
    {
      /* A copy with p in its place (an address has a policy or two). */
      cur = atomic_load_explicit (&t->slot[i], memory_order_relaxed);
      hs = host_set_new (cur->n + 1);
      while (k < cur->n && dp_policy_before (&cur->pol[k], p))
        k++;
      memcpy (hs->pol, cur->pol, k * sizeof hs->pol[0]);
      hs->pol[k] = *p;
      memcpy (hs->pol + k + 1, cur->pol + k, (cur->n - k) * sizeof hs->pol[0]);
      /* Release: a worker that finds the set sees all of it. */
      atomic_store_explicit (&t->slot[i], hs, memory_order_release);
      dp_retire (dp, g_free, cur);
      return;
    }
  if (tab_full (t, dp->host_used, dp->host_tombs))
    {
      host_rebuild (dp, tab_cap_for (dp->host_used + 1));
      t = atomic_load (&dp->hosttab);
      host_slot (t, &p->remote.from, &free_slot);
    }
  if (atomic_load_explicit (&t->slot[free_slot], memory_order_relaxed) == DP_HOST_TOMB)
    dp->host_tombs--;
  hs = host_set_new (1);
  hs->pol[0] = *p;
  atomic_store_explicit (&t->slot[free_slot], hs, memory_order_release);
  dp->host_used++;
}

void
dp_host_del (Datapath *dp, const ModikeAddr *remote, guint32 spd_id)
{
  DpHostTab *t = atomic_load (&dp->hosttab);
  guint free_slot = 0, k;
  gint i = host_slot (t, remote, &free_slot);
  DpHostSet *cur, *hs = DP_HOST_TOMB;

  if (i < 0)
    return;
  cur = atomic_load_explicit (&t->slot[i], memory_order_relaxed);
  for (k = 0; k < cur->n && cur->pol[k].spd_id != spd_id; k++)
    ;
  if (k == cur->n)
    return;
  dp->host_pols--;
  if (cur->n > 1)
    {
      hs = host_set_new (cur->n - 1);
      memcpy (hs->pol, cur->pol, k * sizeof hs->pol[0]);
      memcpy (hs->pol + k, cur->pol + k + 1, (cur->n - k - 1) * sizeof hs->pol[0]);
    }
  /* A tombstone when the address has no policy left: probes for sets
   * placed after it go on. */
  atomic_store_explicit (&t->slot[i], hs, memory_order_release);
  dp_retire (dp, g_free, cur);
  if (hs != DP_HOST_TOMB)
    return;
  dp->host_used--;
  dp->host_tombs++;
  if (tab_sparse (t, dp->host_used))
    host_rebuild (dp, tab_cap_for (dp->host_used));
}

void
dp_host_set_all (Datapath *dp, const GArray *pols)
{
  DpHostTab *old = atomic_load (&dp->hosttab);
  DpHostTab *t = tab_new (tab_cap_for (pols->len));

  dp->host_used = dp->host_tombs = dp->host_pols = 0;
  /* Not published yet: sets grow in place, in the order given. */
  for (guint j = 0; j < pols->len; j++)
    {
      const DpPolicy *p = &g_array_index (pols, DpPolicy, j);
      guint free_slot = 0;
      gint i = host_slot (t, &p->remote.from, &free_slot);
      DpHostSet *hs;

      if (i >= 0)
        {
          hs = atomic_load_explicit (&t->slot[i], memory_order_relaxed);
          hs = g_realloc (hs, sizeof *hs + (hs->n + 1) * sizeof hs->pol[0]);
          hs->pol[hs->n++] = *p;
        }
      else
        {
          hs = host_set_new (1);
          hs->pol[0] = *p;
          i = (gint) free_slot;
          dp->host_used++;
        }
      atomic_store_explicit (&t->slot[i], hs, memory_order_relaxed);
      dp->host_pols++;
    }
  dp->n_host_rebuilds++;
  dp->n_host_copied += pols->len;
  atomic_store_explicit (&dp->hosttab, t, memory_order_release);
  dp_retire (dp, dp_host_tab_free_all, old);
  dp->retired_table = TRUE;
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
        modike_datapath_expire_sa (dp->host, MODIKE_DIR_OUT, o->sa->spi, o->sa->reqid, life == ESP_LIFE_HARD);
      if (ok)
        {
          esp_sa_touch (o->sa->esp, now);
          dp_tx_send_one (dp, o, esp, esp_len);
        }
      g_free (q);
    }
}

/* ---- Outbound SAs ---- */

/* Publishes sa (NULL: none) as st's outbound SA. */
static void
out_publish (Datapath *dp, DpPolicyState *st, DpSa *sa)
{
  DpOut *cur = atomic_load (&st->out), *o = NULL;

  if (sa != NULL)
    {
      o = g_new (DpOut, 1);
      resolve_out (dp, sa, o);
    }
  /* What waited for this policy's SA goes first, before any worker can
   * see the SA; workers that raced us find it under the same lock. */
  pthread_mutex_lock (&st->lock);
  if (o != NULL)
    {
      if (st->queue.length > 0 && dp->started)
        flush_queue (dp, st, o);
      st->acquired = FALSE;
    }
  atomic_store (&st->out, o);
  pthread_mutex_unlock (&st->lock);
  if (cur != NULL)
    dp_retire (dp, g_free, cur);
}

void
dp_out_added (Datapath *dp, DpPolicyState *st, DpSa *sa)
{
  const DpOut *cur = atomic_load (&st->out);

  if (cur == NULL || cur->sa->serial < sa->serial)
    out_publish (dp, st, sa);
}

void
dp_out_refresh (Datapath *dp, DpPolicyState *st, gboolean force)
{
  const DpOut *cur = atomic_load (&st->out);
  DpSa *newest = NULL;

  /* The policy's own SAs only: usually one, two while a rekey overlaps. */
  for (DpSa *sa = g_hash_table_lookup (dp->out_by_spd, GUINT_TO_POINTER (st->spd_id)); sa != NULL;
       sa = sa->spd_next)
    if (newest == NULL || newest->serial < sa->serial)
      newest = sa;
  if (force || (cur != NULL ? cur->sa : NULL) != newest)
    out_publish (dp, st, newest);
}

void
dp_publish (Datapath *dp)
{
  DpSnap *old = atomic_exchange (&dp->snap, snap_build (dp));

  if (old != NULL)
    dp_retire (dp, dp_snap_free, old);
  reclaim (dp);
}
