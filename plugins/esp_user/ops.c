/* The esp_user datapath: the Datapath object, its ModikeDatapathOps (the
 * writers: start, stop, SAs, policies, adapters, sockets, stats; all under
 * wlock; policy and fd changes published as a new snapshot, SA and host
 * policy changes in place: snapshot.c) and the plugin's init (descriptor in
 * esp_user-plugin.c). */
#include "datapath-private.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <sys/eventfd.h>

/* Outbound SAs are named by (spi, reqid): the peers choose the SPIs and
 * two of them may choose the same. */
static guint
out_hash (gconstpointer p)
{
  const DpSa *sa = p;

  return (sa->spi * 2654435761u) ^ (sa->reqid * 40503u);
}

static gboolean
out_equal (gconstpointer a, gconstpointer b)
{
  const DpSa *x = a, *y = b;

  return x->spi == y->spi && x->reqid == y->reqid;
}

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
  dp->sa_out = g_hash_table_new (out_hash, out_equal);
  dp->out_by_spd = g_hash_table_new (NULL, NULL);
  dp->in_by_peer = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) g_hash_table_unref);
  atomic_init (&dp->intab, dp_tab_new ());
  dp->entries = g_hash_table_new_full (NULL, NULL, NULL, (GDestroyNotify) modike_spd_entry_free);
  dp->rest = g_array_new (FALSE, FALSE, sizeof (DpPolicy));
  atomic_init (&dp->hosttab, dp_tab_new ());
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

void
datapath_get_table_stats (Datapath *dp, DatapathTableStats *out)
{
  g_mutex_lock (&dp->wlock);
  *out = (DatapathTableStats) {
    .snapshots = dp->n_snapshots, .in_rebuilds = dp->n_in_rebuilds, .in_copied = dp->n_in_copied,
    .in_capacity = atomic_load (&dp->intab)->mask + 1, .in_sas = dp->in_used, .in_tombstones = dp->in_tombs,
    .host_rebuilds = dp->n_host_rebuilds, .host_copied = dp->n_host_copied,
    .host_capacity = atomic_load (&dp->hosttab)->mask + 1, .host_addrs = dp->host_used,
    .host_tombstones = dp->host_tombs, .host_policies = dp->host_pols, .rest_policies = dp->rest->len,
  };
  g_mutex_unlock (&dp->wlock);
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
      pthread_mutex_lock (&st->lock);
      out->queue_len = st->queue.length;
      pthread_mutex_unlock (&st->lock);
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
  g_hash_table_remove_all (dp->out_by_spd);
  g_hash_table_remove_all (dp->in_by_peer);
  g_free (atomic_exchange (&dp->intab, dp_tab_new ()));
  dp->in_used = dp->in_tombs = 0;
  g_hash_table_iter_init (&it, dp->pstates);
  while (g_hash_table_iter_next (&it, NULL, &v))
    dp_pstate_free (v);
  g_hash_table_remove_all (dp->pstates);
  g_hash_table_remove_all (dp->entries);
  g_array_set_size (dp->rest, 0);
  dp_retired_free_all (dp);
  dp_host_tab_free_all (atomic_exchange (&dp->hosttab, dp_tab_new ()));
  dp->host_used = dp->host_tombs = dp->host_pols = 0;
  dp_snap_free (atomic_exchange (&dp->snap, NULL));
  for (guint i = 0; i < G_N_ELEMENTS (dp->workers); i++)
    {
      dp_worker_destroy (dp->workers[i]);
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
  dp_close_fd (&dp->raw_esp4);
  dp_close_fd (&dp->raw_esp6);
  dp_close_fd (&dp->raw_ip4);
  dp_close_fd (&dp->raw_ip6);
  dp_close_fd (&dp->stop_fd);
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
  g_hash_table_unref (dp->out_by_spd);
  g_hash_table_unref (dp->in_by_peer);
  g_free (atomic_load (&dp->intab));
  g_hash_table_unref (dp->entries);
  g_array_unref (dp->rest);
  dp_host_tab_free_all (atomic_load (&dp->hosttab));
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
    if ((dp->workers[i] = dp_worker_new (dp, i, error)) == NULL)
      goto fail;
  if (dp->raw_sockets)
    {
      dp->raw_esp4 = dp_open_raw (AF_INET, IPPROTO_ESP, "raw IPv4 ESP");
      dp->raw_esp6 = dp_open_raw (AF_INET6, IPPROTO_ESP, "raw IPv6 ESP");
      dp->raw_ip4 = dp_open_raw (AF_INET, IPPROTO_RAW, "raw IPv4 (bypass)");
      dp->raw_ip6 = dp_open_raw (AF_INET6, IPPROTO_RAW, "raw IPv6 (bypass)");
    }
  for (int f = 0; f < 2; f++)
    {
      int fd = f == 0 ? dp->raw_esp4 : dp->raw_esp6;
      DpIo *io;

      if (fd < 0)
        continue;
      dp_socket_buffers (fd);
      io = dp_io_add (dp, DP_IO_RAW_ESP, fd, dp->n_threads - 1 - dp->n_sockets++ % dp->n_threads, error);
      if (io == NULL)
        goto fail;
      io->family = f == 0 ? AF_INET : AF_INET6;
    }
  dp_publish (dp);
  for (guint i = 0; i < dp->n_threads; i++)
    {
      g_autofree char *name = g_strdup_printf ("esp-worker-%u", i);
      dp->workers[i]->thread = g_thread_try_new (name, dp_worker_main, dp->workers[i], error);
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

/* Inbound SAs by peer: a set each (a peer may have very many). */
static void
peer_add (Datapath *dp, const char *peer, DpSa *sa)
{
  GHashTable *set = g_hash_table_lookup (dp->in_by_peer, peer);

  if (set == NULL)
    {
      set = g_hash_table_new (NULL, NULL);
      g_hash_table_insert (dp->in_by_peer, g_strdup (peer), set);
    }
  g_hash_table_add (set, sa);
}

static void
peer_remove (Datapath *dp, const char *peer, DpSa *sa)
{
  GHashTable *set = g_hash_table_lookup (dp->in_by_peer, peer);

  if (set != NULL && g_hash_table_remove (set, sa) && g_hash_table_size (set) == 0)
    g_hash_table_remove (dp->in_by_peer, peer);
}

/* Outbound SAs by policy: a list through the SAs (one or two each; a
 * table per policy would cost more than the SA). */
static void
spd_link (Datapath *dp, guint32 spd_id, DpSa *head)
{
  if (head != NULL)
    g_hash_table_insert (dp->out_by_spd, GUINT_TO_POINTER (spd_id), head);
  else
    g_hash_table_remove (dp->out_by_spd, GUINT_TO_POINTER (spd_id));
}

static void
spd_remove (Datapath *dp, DpSa *sa)
{
  DpSa *head = g_hash_table_lookup (dp->out_by_spd, GUINT_TO_POINTER (sa->spd_id));

  if (head == sa)
    spd_link (dp, sa->spd_id, sa->spd_next);
  else
    for (DpSa *p = head; p != NULL; p = p->spd_next)
      if (p->spd_next == sa)
        {
          p->spd_next = sa->spd_next;
          break;
        }
  sa->spd_next = NULL;
}

/* Inbound: into the table workers read, with its peer's adapter. */
static void
in_add (Datapath *dp, DpSa *sa, const char *peer)
{
  DpAdapter *ad = peer != NULL ? g_hash_table_lookup (dp->adapters, peer) : NULL;

  atomic_store (&sa->adapter, ad);
  if (peer != NULL)
    peer_add (dp, peer, sa);
  dp_in_insert (dp, sa);
}

/* Outbound: the newest SA of its policy, which alone changes. */
static void
out_add (Datapath *dp, DpSa *sa)
{
  DpPolicyState *st = g_hash_table_lookup (dp->pstates, GUINT_TO_POINTER (sa->spd_id));

  sa->spd_next = g_hash_table_lookup (dp->out_by_spd, GUINT_TO_POINTER (sa->spd_id));
  spd_link (dp, sa->spd_id, sa);
  if (st != NULL)
    dp_out_added (dp, st, sa);
}

/* The SA named (IN, spi) or (OUT, spi, reqid); any_reqid: an outbound SA
 * with that SPI, for callers of the (dir, spi) ops. Under wlock. */
static DpSa *
sa_find (Datapath *dp, ModikeDirection dir, guint32 spi, guint32 reqid, gboolean any_reqid)
{
  GHashTableIter it;
  gpointer v;

  if (dir == MODIKE_DIR_IN)
    return g_hash_table_lookup (dp->sa_in, GUINT_TO_POINTER (spi));
  if (!any_reqid)
    return g_hash_table_lookup (dp->sa_out, &(DpSa) { .spi = spi, .reqid = reqid });
  g_hash_table_iter_init (&it, dp->sa_out);
  while (g_hash_table_iter_next (&it, &v, NULL))
    if (((DpSa *) v)->spi == spi)
      return v;
  return NULL;
}

static gboolean
dp_sa_add (gpointer user, const ModikeSadEntry *e, GError **error)
{
  Datapath *dp = user;
  ModikeSadEntry copy;
  DpSa *sa;
  EspSa *esp;
  gboolean ok = FALSE;

  g_mutex_lock (&dp->wlock);
  if (!dp->started)
    g_set_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_INVALID,
                 "esp_user: SA %08x added before the datapath started", e->spi);
  else if (e->protocol != MODIKE_PROTO_ESP || e->spi == 0
           || (e->dir != MODIKE_DIR_IN && e->dir != MODIKE_DIR_OUT))
    g_set_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_INVALID,
                 "esp_user: SA %08x is not an ESP SA with a direction", e->spi);
  else if (sa_find (dp, e->dir, e->spi, e->reqid, FALSE) != NULL)
    g_set_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_CONFLICT, "esp_user: SA %08x (%s, reqid %u) exists",
                 e->spi, e->dir == MODIKE_DIR_IN ? "in" : "out", e->reqid);
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
          if (e->dir == MODIKE_DIR_IN)
            {
              g_hash_table_insert (dp->sa_in, GUINT_TO_POINTER (e->spi), sa);
              in_add (dp, sa, e->peer);
            }
          else
            {
              sa->reqid = e->reqid;
              g_hash_table_add (dp->sa_out, sa);
              out_add (dp, sa);
            }
          dp_reclaim_some (dp);
          ok = TRUE;
        }
    }
  g_mutex_unlock (&dp->wlock);
  return ok;
}

/* The peer moved behind its NAT: outbound packets go to the new address
 * and port once its policy's DpOut is replaced. Inbound SAs take ESP from
 * any source already, and their workers read the entry: they stay
 * untouched. */
static void
dp_sa_move (gpointer user, const ModikeSadEntry *e)
{
  Datapath *dp = user;
  DpSa *sa;

  if (e->dir != MODIKE_DIR_OUT)
    return;
  g_mutex_lock (&dp->wlock);
  sa = sa_find (dp, MODIKE_DIR_OUT, e->spi, e->reqid, FALSE);
  if (sa != NULL && dp->started)
    {
      DpPolicyState *st = g_hash_table_lookup (dp->pstates, GUINT_TO_POINTER (sa->spd_id));

      esp_sa_move (sa->esp, e);
      if (st != NULL)
        dp_out_refresh (dp, st, TRUE);
      dp_reclaim_some (dp);
    }
  g_mutex_unlock (&dp->wlock);
}

/* Under wlock. */
static void
sa_remove (Datapath *dp, DpSa *sa)
{
  if (sa == NULL)
    return;
  if (sa->dir == MODIKE_DIR_IN)
    {
      const char *peer = esp_sa_entry (sa->esp)->peer;

      g_hash_table_remove (dp->sa_in, GUINT_TO_POINTER (sa->spi));
      dp_in_remove (dp, sa);
      if (peer != NULL)
        peer_remove (dp, peer, sa);
    }
  else
    {
      DpPolicyState *st = g_hash_table_lookup (dp->pstates, GUINT_TO_POINTER (sa->spd_id));
      const DpOut *cur = st != NULL ? atomic_load (&st->out) : NULL;

      g_hash_table_remove (dp->sa_out, sa);
      spd_remove (dp, sa);
      /* Only when it was the one in use: then the next newest takes over. */
      if (cur != NULL && cur->sa == sa)
        dp_out_refresh (dp, st, FALSE);
    }
  dp_retire (dp, dp_sa_free, sa);
  dp_reclaim_some (dp);
}

/* An outbound SPI alone may name SAs of two peers: this takes one. */
static void
dp_sa_del (gpointer user, ModikeDirection dir, guint32 spi)
{
  Datapath *dp = user;

  g_mutex_lock (&dp->wlock);
  sa_remove (dp, sa_find (dp, dir, spi, 0, TRUE));
  g_mutex_unlock (&dp->wlock);
}

static void
dp_sa_del_sa (gpointer user, const ModikeSadEntry *e)
{
  Datapath *dp = user;

  g_mutex_lock (&dp->wlock);
  sa_remove (dp, sa_find (dp, e->dir, e->spi, e->reqid, FALSE));
  g_mutex_unlock (&dp->wlock);
}

/* A policy's state (its SA, counters, queue), made when it first comes. */
static DpPolicyState *
pstate_ensure (Datapath *dp, guint32 spd_id)
{
  DpPolicyState *st = g_hash_table_lookup (dp->pstates, GUINT_TO_POINTER (spd_id));

  if (st == NULL)
    {
      st = g_new0 (DpPolicyState, 1);
      st->dp = dp;
      st->spd_id = spd_id;
      pthread_mutex_init (&st->lock, NULL);
      g_queue_init (&st->queue);
      g_hash_table_insert (dp->pstates, GUINT_TO_POINTER (spd_id), st);
    }
  /* A new or renumbered policy may have SAs already. */
  dp_out_refresh (dp, st, FALSE);
  return st;
}

/* The policy went (st already out of pstates): workers that still hold
 * it queue nothing more, what waited is dropped now, the state itself
 * after a grace period. */
static void
pstate_gone (Datapath *dp, DpPolicyState *st)
{
  guint n = 0;
  DpQueued *q;

  pthread_mutex_lock (&st->lock);
  st->gone = TRUE;
  while ((q = g_queue_pop_head (&st->queue)) != NULL)
    {
      g_free (q);
      n++;
    }
  pthread_mutex_unlock (&st->lock);
  atomic_fetch_add (&st->queue_drops, n);
  atomic_fetch_add (&dp->counters[C_QUEUE_DROPS], n);
  dp_retire (dp, dp_pstate_free, st);
}

/* e's lookup values and state, ordered after everything that came before. */
static void
policy_fill (Datapath *dp, const ModikeSpdEntry *e, DpPolicy *p)
{
  *p = (DpPolicy) {
    .spd_id = e->id, .action = e->action, .priority = e->priority, .seq = e->seq, .ord = ++dp->next_ord,
    .local = e->local, .remote = e->remote, .proto = e->proto, .lport = e->local_port, .rport = e->remote_port,
    .state = g_hash_table_lookup (dp->pstates, GUINT_TO_POINTER (e->id)),
  };
}

gint
dp_entry_order (gconstpointer a, gconstpointer b)
{
  const ModikeSpdEntry *x = *(ModikeSpdEntry *const *) a, *y = *(ModikeSpdEntry *const *) b;

  if (x->priority != y->priority)
    return x->priority < y->priority ? -1 : 1;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void
dp_policies_set (gpointer user, GPtrArray *entries)
{
  Datapath *dp = user;
  g_autoptr (GHashTable) keep = g_hash_table_new (NULL, NULL);
  g_autoptr (GHashTable) renum = g_hash_table_new (NULL, NULL); /* old id -> new id */
  g_autoptr (GHashTable) by_name = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
                                                          (GDestroyNotify) g_ptr_array_unref); /* old PROTECTs */
  g_autoptr (GPtrArray) moved = g_ptr_array_new (); /* list head, new id, ... */
  g_autoptr (GArray) hosts = g_array_new (FALSE, FALSE, sizeof (DpPolicy));
  GHashTableIter it;
  gpointer k, v;

  g_mutex_lock (&dp->wlock);
  /* A reload numbers policies anew: SAs and queues follow their policy
   * by name, as the core's children do (names hashed: the gateway sets
   * the whole SPD, one policy per client, at every client's setup). */
  g_hash_table_iter_init (&it, dp->entries);
  while (g_hash_table_iter_next (&it, NULL, &v))
    {
      const ModikeSpdEntry *o = v;
      if (o->action == MODIKE_SPD_PROTECT && o->name != NULL)
        {
          GPtrArray *same = g_hash_table_lookup (by_name, o->name);
          if (same == NULL)
            g_hash_table_insert (by_name, o->name, same = g_ptr_array_new ());
          g_ptr_array_add (same, (gpointer) o);
        }
    }
  for (guint i = 0; entries != NULL && i < entries->len; i++)
    {
      const ModikeSpdEntry *e = entries->pdata[i];
      GPtrArray *same = e->action == MODIKE_SPD_PROTECT && e->name != NULL ? g_hash_table_lookup (by_name, e->name)
                                                                           : NULL;
      for (guint j = 0; same != NULL && j < same->len; j++)
        {
          const ModikeSpdEntry *o = same->pdata[j];
          if (o->id != e->id)
            g_hash_table_insert (renum, GUINT_TO_POINTER (o->id), GUINT_TO_POINTER (e->id));
        }
    }
  /* The SAs of a renumbered policy move as a list (all taken out first:
   * one id's new number may be another's old one). */
  g_hash_table_iter_init (&it, renum);
  while (g_hash_table_iter_next (&it, &k, &v))
    {
      gpointer head = NULL;
      if (g_hash_table_steal_extended (dp->out_by_spd, k, NULL, &head))
        g_ptr_array_add (moved, head), g_ptr_array_add (moved, v);
    }
  for (guint i = 0; i < moved->len; i += 2)
    {
      guint32 id = GPOINTER_TO_UINT (moved->pdata[i + 1]);
      DpSa *head = moved->pdata[i], *tail = NULL;

      for (DpSa *sa = head; sa != NULL; tail = sa, sa = sa->spd_next)
        sa->spd_id = id;
      tail->spd_next = g_hash_table_lookup (dp->out_by_spd, GUINT_TO_POINTER (id));
      spd_link (dp, id, head);
    }
  g_hash_table_iter_init (&it, renum);
  while (g_hash_table_iter_next (&it, &k, &v))
    {
      DpPolicyState *st = g_hash_table_lookup (dp->pstates, k);
      if (st != NULL && !g_hash_table_contains (dp->pstates, v))
        {
          g_hash_table_steal (dp->pstates, k);
          pthread_mutex_lock (&st->lock);
          st->spd_id = GPOINTER_TO_UINT (v);
          pthread_mutex_unlock (&st->lock);
          g_hash_table_insert (dp->pstates, v, st);
        }
    }
  g_hash_table_remove_all (by_name); /* its keys are the old entries' */
  g_hash_table_remove_all (dp->entries);
  g_array_set_size (dp->rest, 0);
  /* In lookup order (the core's already is; stable: entries without a
   * seq keep theirs), split into the host table and the snapshot's rest. */
  if (entries != NULL)
    g_ptr_array_sort (entries, dp_entry_order);
  for (guint i = 0; entries != NULL && i < entries->len; i++)
    {
      ModikeSpdEntry *e = entries->pdata[i];
      DpPolicy p;

      g_hash_table_insert (dp->entries, GUINT_TO_POINTER (e->id), e);
      pstate_ensure (dp, e->id);
      policy_fill (dp, e, &p);
      g_array_append_val (dp_one_address (&e->remote) ? hosts : dp->rest, p);
      g_hash_table_add (keep, GUINT_TO_POINTER (e->id));
    }
  dp_host_set_all (dp, hosts);
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
        pstate_gone (dp, v);
      }
  dp_publish (dp);
  g_mutex_unlock (&dp->wlock);
}

/* Removes one policy (under wlock); TRUE if the snapshot must be rebuilt. */
static gboolean
policy_del_locked (Datapath *dp, guint32 spd_id)
{
  const ModikeSpdEntry *e = g_hash_table_lookup (dp->entries, GUINT_TO_POINTER (spd_id));
  DpPolicyState *st;
  gboolean rest = FALSE;

  if (e == NULL)
    return FALSE;
  if (dp_one_address (&e->remote))
    dp_host_del (dp, &e->remote.from, spd_id);
  else
    for (guint k = 0; k < dp->rest->len && !rest; k++)
      if (g_array_index (dp->rest, DpPolicy, k).spd_id == spd_id)
        {
          g_array_remove_index (dp->rest, k);
          rest = TRUE;
        }
  /* Its SAs stay (out_by_spd) until the core deletes them, as with a
   * policy that a policies_set left out. */
  st = g_hash_table_lookup (dp->pstates, GUINT_TO_POINTER (spd_id));
  if (st != NULL)
    {
      g_hash_table_remove (dp->pstates, GUINT_TO_POINTER (spd_id));
      pstate_gone (dp, st);
    }
  g_hash_table_remove (dp->entries, GUINT_TO_POINTER (spd_id));
  return rest;
}

/* One policy came: a host policy into its address's set (one store, no
 * snapshot), another into the rest (a new snapshot: rare). */
static void
dp_policy_add (gpointer user, ModikeSpdEntry *e)
{
  Datapath *dp = user;
  gboolean rebuild;
  DpPolicy p;

  g_mutex_lock (&dp->wlock);
  rebuild = policy_del_locked (dp, e->id); /* the same id again: replaced */
  g_hash_table_insert (dp->entries, GUINT_TO_POINTER (e->id), e);
  pstate_ensure (dp, e->id);
  policy_fill (dp, e, &p);
  if (dp_one_address (&e->remote))
    dp_host_add (dp, &p);
  else
    {
      guint k = dp->rest->len;

      /* Usually last (a later seq); before the first that comes after it. */
      while (k > 0 && dp_policy_before (&p, &g_array_index (dp->rest, DpPolicy, k - 1)))
        k--;
      g_array_insert_val (dp->rest, k, p);
      rebuild = TRUE;
    }
  if (rebuild)
    dp_publish (dp);
  else
    dp_reclaim_some (dp);
  g_mutex_unlock (&dp->wlock);
}

static void
dp_policy_del (gpointer user, guint32 spd_id)
{
  Datapath *dp = user;

  g_mutex_lock (&dp->wlock);
  if (policy_del_locked (dp, spd_id))
    dp_publish (dp);
  else
    dp_reclaim_some (dp);
  g_mutex_unlock (&dp->wlock);
}

/* The peer's inbound SAs deliver to ad from now on (NULL: nowhere). */
static void
adapter_point (Datapath *dp, const char *peer, DpAdapter *ad)
{
  GHashTable *set = g_hash_table_lookup (dp->in_by_peer, peer);
  GHashTableIter it;
  gpointer sa;

  if (set == NULL)
    return;
  g_hash_table_iter_init (&it, set);
  while (g_hash_table_iter_next (&it, &sa, NULL))
    atomic_store (&((DpSa *) sa)->adapter, ad);
}

/* The peer's adapter goes; its SAs deliver to `next` (may be NULL). */
static void
adapter_detach_locked (Datapath *dp, const char *peer, DpAdapter *next)
{
  DpAdapter *ad = g_hash_table_lookup (dp->adapters, peer);

  if (ad == NULL)
    return;
  adapter_point (dp, peer, next);
  g_hash_table_remove (dp->adapters, peer);
  for (guint i = 0; i < ad->n_fds; i++)
    dp_io_remove (dp, ad->ios[i]);
  dp_retire (dp, dp_adapter_free, ad);
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
  ad = g_new0 (DpAdapter, 1);
  ad->peer = g_strdup (peer);
  ad->n_fds = n_fds;
  ad->vnet = (flags & MODIKE_ADAPTER_VNET_HDR) != 0;
  memcpy (ad->fds, fds, n_fds * sizeof fds[0]);
  /* The old one goes first (its fds may be these); the SAs switch over
   * in one store each. */
  adapter_detach_locked (dp, peer, ad);
  for (guint i = 0; i < n_fds; i++)
    {
      int fl = fcntl (fds[i], F_GETFL);

      /* Workers read until EAGAIN: a blocking fd would stall one. */
      if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl (fds[i], F_SETFL, fl | O_NONBLOCK) < 0))
        g_warning ("esp_user: adapter fd %d of %s: cannot make it non-blocking: %s", fds[i], peer,
                   g_strerror (errno));
      ad->ios[i] = dp_io_add (dp, DP_IO_ADAPTER, fds[i], i, error);
      if (ad->ios[i] == NULL)
        {
          for (guint j = 0; j < i; j++)
            dp_io_remove (dp, ad->ios[j]);
          adapter_point (dp, peer, NULL);
          dp_retire (dp, dp_adapter_free, ad);
          dp_publish (dp);
          goto out;
        }
      ad->ios[i]->vnet = ad->vnet;
    }
  g_hash_table_insert (dp->adapters, ad->peer, ad);
  adapter_point (dp, peer, ad);
  dp_publish (dp);
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
  adapter_detach_locked (dp, peer, NULL);
  dp_publish (dp);
  g_mutex_unlock (&dp->wlock);
}

static gboolean
dp_socket_attach (gpointer user, int fd, const ModikeAddr *local, GError **error)
{
  Datapath *dp = user;
  static const guint8 zero[16];
  int type = 0;
  socklen_t tl = sizeof type;
  GHashTableIter it;
  gpointer v;
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
  dp_socket_buffers (fd);
  io = dp_io_add (dp, DP_IO_UDP, fd, dp->n_threads - 1 - dp->n_sockets % dp->n_threads, error);
  if (io == NULL)
    goto out;
  dp->n_sockets++;
  io->family = local->family;
  io->local = *local;
  io->wildcard = memcmp (local->addr, zero, modike_addr_len (local)) == 0;
  /* Outbound SAs may go out on this socket now (rare: at start-up). */
  g_hash_table_iter_init (&it, dp->pstates);
  while (g_hash_table_iter_next (&it, NULL, &v))
    dp_out_refresh (dp, v, TRUE);
  dp_publish (dp);
  ok = TRUE;
out:
  g_mutex_unlock (&dp->wlock);
  return ok;
}

static void
sa_stats (Datapath *dp, ModikeDirection dir, guint32 spi, guint32 reqid, gboolean any_reqid, ModikeSaStats *out)
{
  DpSa *sa;

  memset (out, 0, sizeof *out);
  g_mutex_lock (&dp->wlock);
  sa = sa_find (dp, dir, spi, reqid, any_reqid);
  if (sa != NULL)
    esp_sa_stats (sa->esp, out);
  g_mutex_unlock (&dp->wlock);
}

static void
dp_sa_stats (gpointer user, ModikeDirection dir, guint32 spi, ModikeSaStats *out)
{
  sa_stats (user, dir, spi, 0, TRUE, out);
}

static void
dp_sa_stats_sa (gpointer user, const ModikeSadEntry *e, ModikeSaStats *out)
{
  sa_stats (user, e->dir, e->spi, e->reqid, FALSE, out);
}

const ModikeDatapathOps datapath_ops = {
  .name = "esp_user",
  .start = dp_start,
  .stop = dp_stop,
  .sa_add = dp_sa_add,
  .sa_del = dp_sa_del,
  .sa_move = dp_sa_move,
  .policies_set = dp_policies_set,
  .policy_add = dp_policy_add,
  .policy_del = dp_policy_del,
  .adapter_attach = dp_adapter_attach,
  .adapter_detach = dp_adapter_detach,
  .socket_attach = dp_socket_attach,
  .sa_stats = dp_sa_stats,
  .sa_del_sa = dp_sa_del_sa,
  .sa_stats_sa = dp_sa_stats_sa,
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
