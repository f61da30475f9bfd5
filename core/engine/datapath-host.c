/* The engine side of a datapath plugin: start/stop, the SPD copies, a SAD
 * watcher forwarding every add and remove, counters, the marker-port
 * socket; and ModikeDatapathHost, the calls a datapath makes from its own
 * threads (acquire, expire, ike_input), copied and queued to the engine's
 * main context.
 *
 * Threads: only the host calls run on datapath threads. They take the
 * host lock just to see whether the engine still listens, copy their
 * arguments and queue an idle source; everything else runs on the main
 * loop thread. While the datapath runs, that thread owns the main context
 * (g_main_context_acquire), so g_main_context_invoke_full from another
 * thread always queues instead of running the engine on the caller's
 * thread. */
#include "engine-private.h"

#include <string.h>

struct _ModikeDatapathHost {
  gatomicrefcount ref;
  GMutex lock;
  ModikeIke *ike;           /* NULL once the datapath is being stopped */
  GMainContext *context;
};

struct _EngineDatapath {
  const ModikeDatapathOps *ops; /* the registry's copy */
  gpointer user;
  ModikeDatapathHost *host;
  gboolean owns_context;    /* we acquired host->context */
  guint sad_watch;
  /* SAs whose sa_add failed (no sa_del for them), by refused_key () */
  GHashTable *refused_in;
  GHashTable *refused_out;
  guint reap_timer;
};

const char *
modike_drop_reason_name (ModikeDropReason r)
{
  static const char *const names[MODIKE_DROP_N] = {
    [MODIKE_DROP_NO_SA] = "no-sa",         [MODIKE_DROP_REPLAY] = "replay",
    [MODIKE_DROP_AUTH] = "auth",           [MODIKE_DROP_MALFORMED] = "malformed",
    [MODIKE_DROP_POLICY] = "policy",       [MODIKE_DROP_QUEUE] = "queue",
    [MODIKE_DROP_LIFETIME] = "lifetime",   [MODIKE_DROP_OTHER] = "other",
  };

  return (guint) r < MODIKE_DROP_N ? names[r] : "unknown";
}

static const char *
dp_name (const EngineDatapath *dp)
{
  return dp->ops->name != NULL ? dp->ops->name : "(unnamed)";
}

/* ---- the host: calls from datapath threads ---- */

static ModikeDatapathHost *
host_new (ModikeIke *ike)
{
  ModikeDatapathHost *host = g_new0 (ModikeDatapathHost, 1);

  g_atomic_ref_count_init (&host->ref);
  g_mutex_init (&host->lock);
  host->ike = ike;
  host->context = g_main_context_ref_thread_default ();
  return host;
}

static ModikeDatapathHost *
host_ref (ModikeDatapathHost *host)
{
  g_atomic_ref_count_inc (&host->ref);
  return host;
}

static void
host_unref (ModikeDatapathHost *host)
{
  if (host == NULL || !g_atomic_ref_count_dec (&host->ref))
    return;
  g_mutex_clear (&host->lock);
  g_main_context_unref (host->context);
  g_free (host);
}

static ModikeIke *
host_get_ike (ModikeDatapathHost *host)
{
  ModikeIke *ike;

  g_mutex_lock (&host->lock);
  ike = host->ike;
  g_mutex_unlock (&host->lock);
  return ike;
}

typedef enum {
  CALL_ACQUIRE,
  CALL_EXPIRE,
  CALL_IKE_INPUT,
} HostCallKind;

typedef struct {
  ModikeDatapathHost *host;
  HostCallKind kind;
  guint32 spd_id;
  gboolean have_sel;
  ModikeSelector sel;
  ModikeDirection dir;
  guint32 spi, reqid;
  gboolean any_reqid;       /* modike_datapath_expire: no reqid given */
  gboolean hard;
  ModikeAddr local, remote;
  GBytes *data;
} HostCall;

static void
host_call_free (gpointer p)
{
  HostCall *call = p;

  g_clear_pointer (&call->data, g_bytes_unref);
  host_unref (call->host);
  g_free (call);
}

/* On the main loop thread. */
static gboolean
host_call_run (gpointer p)
{
  HostCall *call = p;
  ModikeIke *ike = host_get_ike (call->host);
  gsize len;
  const guint8 *data;

  if (ike == NULL)
    return G_SOURCE_REMOVE; /* the datapath stopped after queueing this */
  switch (call->kind)
    {
    case CALL_ACQUIRE:
      engine_acquire (ike, call->spd_id, call->have_sel ? &call->sel : NULL);
      break;
    case CALL_EXPIRE:
      if (call->any_reqid && call->dir == MODIKE_DIR_OUT)
        {
          /* An old datapath names an outbound SA by SPI alone: take one. */
          const ModikeSadEntry *e = modike_sad_lookup (ike->sad, MODIKE_DIR_OUT, call->spi);

          call->reqid = e != NULL ? e->reqid : 0;
        }
      engine_expire (ike, call->dir, call->spi, call->reqid, call->hard);
      break;
    case CALL_IKE_INPUT:
      data = g_bytes_get_data (call->data, &len);
      modike_ike_receive (ike, &call->local, &call->remote, data, len);
      break;
    }
  return G_SOURCE_REMOVE;
}

static void
host_queue (ModikeDatapathHost *host, HostCall *call)
{
  if (host_get_ike (host) == NULL)
    {
      /* Stopping or stopped: nobody would act on it. */
      call->host = NULL;
      host_call_free (call);
      return;
    }
  call->host = host_ref (host);
  if (g_main_context_is_owner (host->context))
    {
      /* Called on the main thread itself (from inside an op): invoke
       * would run the engine re-entrantly, so always queue. */
      GSource *src = g_idle_source_new ();

      g_source_set_priority (src, G_PRIORITY_DEFAULT);
      g_source_set_callback (src, host_call_run, call, host_call_free);
      g_source_set_static_name (src, "modike datapath host call");
      g_source_attach (src, host->context);
      g_source_unref (src);
    }
  else
    g_main_context_invoke_full (host->context, G_PRIORITY_DEFAULT, host_call_run, call, host_call_free);
}

void
modike_datapath_acquire (ModikeDatapathHost *host, guint32 spd_id, const ModikeSelector *sel)
{
  HostCall *call;

  g_return_if_fail (host != NULL);
  call = g_new0 (HostCall, 1);
  call->kind = CALL_ACQUIRE;
  call->spd_id = spd_id;
  if (sel != NULL)
    {
      call->sel = *sel;
      call->have_sel = TRUE;
    }
  host_queue (host, call);
}

static void
expire_queue (ModikeDatapathHost *host, ModikeDirection dir, guint32 spi, guint32 reqid, gboolean any_reqid,
              gboolean hard)
{
  HostCall *call;

  g_return_if_fail (host != NULL);
  call = g_new0 (HostCall, 1);
  call->kind = CALL_EXPIRE;
  call->dir = dir;
  call->spi = spi;
  call->reqid = reqid;
  call->any_reqid = any_reqid;
  call->hard = hard;
  host_queue (host, call);
}

void
modike_datapath_expire (ModikeDatapathHost *host, ModikeDirection dir, guint32 spi, gboolean hard)
{
  expire_queue (host, dir, spi, 0, TRUE, hard);
}

void
modike_datapath_expire_sa (ModikeDatapathHost *host, ModikeDirection dir, guint32 spi, guint32 reqid,
                           gboolean hard)
{
  expire_queue (host, dir, spi, reqid, FALSE, hard);
}

void
modike_datapath_ike_input (ModikeDatapathHost *host, const ModikeAddr *local, const ModikeAddr *remote,
                           const guint8 *data, gsize len)
{
  HostCall *call;

  g_return_if_fail (host != NULL && local != NULL && remote != NULL && (data != NULL || len == 0));
  call = g_new0 (HostCall, 1);
  call->kind = CALL_IKE_INPUT;
  call->local = *local;
  call->remote = *remote;
  call->data = g_bytes_new (data, len);
  host_queue (host, call);
}

/* ---- the SAD watcher ---- */

/* An SA's name as the SAD has it: the SPI inbound, (spi, reqid) outbound. */
static guint64
refused_key (ModikeDirection dir, guint32 spi, guint32 reqid)
{
  return (guint64) (dir == MODIKE_DIR_OUT ? reqid : 0) << 32 | spi;
}

static gboolean
refused_has (EngineDatapath *dp, ModikeDirection dir, guint32 spi, guint32 reqid)
{
  guint64 key = refused_key (dir, spi, reqid);

  return g_hash_table_contains (dir == MODIKE_DIR_IN ? dp->refused_in : dp->refused_out, &key);
}

static GHashTable *
refused_new (void)
{
  return g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, NULL);
}

static void
sad_changed (ModikeSadEvent ev, const ModikeSadEntry *e, gpointer user)
{
  ModikeIke *ike = user;
  EngineDatapath *dp = ike->dp;
  GHashTable *refused = e->dir == MODIKE_DIR_IN ? dp->refused_in : dp->refused_out;
  const char *dir = e->dir == MODIKE_DIR_IN ? "inbound" : "outbound";
  guint64 key = refused_key (e->dir, e->spi, e->reqid);
  g_autoptr (GError) error = NULL;

  if (ev == MODIKE_SAD_REMOVED)
    {
      if (g_hash_table_remove (refused, &key))
        return;
      /* Outbound SPIs are the peers' choice and may collide: the datapath
       * that can tell them apart gets the whole entry. */
      if (dp->ops->sa_del_sa != NULL)
        dp->ops->sa_del_sa (dp->user, e);
      else if (dp->ops->sa_del != NULL)
        dp->ops->sa_del (dp->user, e->dir, e->spi);
      return;
    }
  if (dp->ops->sa_add == NULL || dp->ops->sa_add (dp->user, e, &error))
    return;
  /* An SA the datapath cannot carry is no SA: engine_p2_up sees this and
   * has the child deleted. */
  g_hash_table_add (refused, g_memdup2 (&key, sizeof key));
  engine_log (G_LOG_LEVEL_MESSAGE, NULL, NULL, "datapath %s refused the %s ESP SA %08x of peer %s: %s", dp_name (dp),
              dir, e->spi, e->peer != NULL ? e->peer : "?", error != NULL ? error->message : "no reason given");
}

gboolean
engine_dp_refused (ModikeIke *ike, const EngineChild *c)
{
  EngineDatapath *dp = ike->dp;

  return dp != NULL && (refused_has (dp, MODIKE_DIR_IN, c->spi_in, c->reqid) ||
                        refused_has (dp, MODIKE_DIR_OUT, c->spi_out, c->reqid));
}

static void
reap_failed_children (gpointer data)
{
  ModikeIke *ike = data;

  for (guint i = ike->sas->len; i-- > 0;)
    {
      ModikeIkeSa *sa;

      if (i >= ike->sas->len)
        continue;
      sa = g_ptr_array_index (ike->sas, i);
      for (guint j = sa->children->len; j-- > 0;)
        {
          EngineChild *c;

          if (j >= sa->children->len)
            continue;
          c = g_ptr_array_index (sa->children, j);
          if (c->dp_failed)
            engine_child_remove (c, TRUE);
        }
    }
}

static gboolean
reap_cb (gpointer data)
{
  ModikeIke *ike = data;

  return engine_timer_fire (ike, &ike->dp->reap_timer, reap_failed_children, ike);
}

void
engine_dp_schedule_reap (ModikeIke *ike)
{
  /* The Quick Mode that installed the child may still have its last
   * message in the outbox: a DELETE before it would reach the peer before
   * the peer has the SA. */
  if (ike->dp != NULL && ike->dp->reap_timer == 0)
    ike->dp->reap_timer = engine_timer_add (ike, 0, reap_cb, ike);
}

/* ---- start, policies, stop ---- */

gboolean
engine_dp_start (ModikeIke *ike, GError **error)
{
  gpointer user = NULL;
  const ModikeDatapathOps *ops = modike_registry_datapath (ike->registry, &user);
  g_autoptr (GPtrArray) existing = NULL;
  EngineDatapath *dp;

  if (ike->dp != NULL || ops == NULL)
    return TRUE;
  dp = g_new0 (EngineDatapath, 1);
  dp->ops = ops;
  dp->user = user;
  dp->host = host_new (ike);
  dp->owns_context = g_main_context_acquire (dp->host->context);
  if (!dp->owns_context)
    engine_log (G_LOG_LEVEL_WARNING, NULL, NULL,
                "datapath %s: the engine's main context belongs to another thread; host calls may run there",
                dp_name (dp));
  dp->refused_in = refused_new ();
  dp->refused_out = refused_new ();
  if (ops->start != NULL && !ops->start (user, dp->host, error))
    {
      g_prefix_error (error, "datapath %s failed to start: ", dp_name (dp));
      g_mutex_lock (&dp->host->lock);
      dp->host->ike = NULL;
      g_mutex_unlock (&dp->host->lock);
      if (dp->owns_context)
        g_main_context_release (dp->host->context);
      host_unref (dp->host);
      g_hash_table_destroy (dp->refused_in);
      g_hash_table_destroy (dp->refused_out);
      g_free (dp);
      return FALSE;
    }
  ike->dp = dp;
  dp->sad_watch = modike_sad_watch (ike->sad, sad_changed, ike);
  /* SAs the SAD holds already (none in the daemon: it starts us first). */
  existing = modike_sad_entries (ike->sad);
  for (guint i = 0; existing != NULL && i < existing->len; i++)
    sad_changed (MODIKE_SAD_ADDED, g_ptr_array_index (existing, i), ike);
  engine_log (G_LOG_LEVEL_INFO, NULL, NULL, "datapath %s started", dp_name (dp));
  return TRUE;
}

void
engine_dp_policies_set (ModikeIke *ike)
{
  EngineDatapath *dp = ike->dp;
  g_autoptr (GPtrArray) entries = NULL;
  GPtrArray *copies;

  if (dp == NULL || dp->ops->policies_set == NULL)
    return;
  entries = modike_spd_entries (ike->spd);
  copies = g_ptr_array_new_with_free_func ((GDestroyNotify) modike_spd_entry_free);
  for (guint i = 0; entries != NULL && i < entries->len; i++)
    g_ptr_array_add (copies, modike_spd_entry_dup (g_ptr_array_index (entries, i)));
  dp->ops->policies_set (dp->user, copies);
}

void
engine_dp_policies_update (ModikeIke *ike, const GArray *removed, const GArray *added)
{
  EngineDatapath *dp = ike->dp;

  if (dp == NULL)
    return;
  if (dp->ops->policy_add == NULL || dp->ops->policy_del == NULL)
    {
      if ((removed != NULL && removed->len > 0) || (added != NULL && added->len > 0))
        engine_dp_policies_set (ike);
      return;
    }
  for (guint i = 0; removed != NULL && i < removed->len; i++)
    dp->ops->policy_del (dp->user, g_array_index (removed, guint32, i));
  for (guint i = 0; added != NULL && i < added->len; i++)
    {
      const ModikeSpdEntry *e = modike_spd_get (ike->spd, g_array_index (added, guint32, i));

      if (e != NULL)
        dp->ops->policy_add (dp->user, modike_spd_entry_dup (e));
    }
}

void
engine_dp_stop (ModikeIke *ike)
{
  EngineDatapath *dp = ike->dp;

  if (dp == NULL)
    return;
  engine_timer_cancel (ike, &dp->reap_timer);
  modike_sad_unwatch (ike->sad, dp->sad_watch);
  /* From here on host calls are dropped, also those of threads that the
   * stop below is about to join. */
  g_mutex_lock (&dp->host->lock);
  dp->host->ike = NULL;
  g_mutex_unlock (&dp->host->lock);
  if (dp->ops->stop != NULL)
    dp->ops->stop (dp->user);
  engine_log (G_LOG_LEVEL_INFO, NULL, NULL, "datapath %s stopped", dp_name (dp));
  if (dp->owns_context)
    g_main_context_release (dp->host->context);
  /* Calls still queued hold their own reference. */
  host_unref (dp->host);
  g_hash_table_destroy (dp->refused_in);
  g_hash_table_destroy (dp->refused_out);
  g_free (dp);
  ike->dp = NULL;
}

const ModikeDatapathOps *
engine_dp_ops (ModikeIke *ike, gpointer *user)
{
  if (ike->dp == NULL)
    return NULL;
  if (user != NULL)
    *user = ike->dp->user;
  return ike->dp->ops;
}

/* The counters of one of c's SAs; FALSE (and zeros) when the datapath
 * keeps none. */
static gboolean
child_stats (ModikeIke *ike, const EngineChild *c, ModikeDirection dir, ModikeSaStats *out)
{
  EngineDatapath *dp = ike->dp;
  guint32 spi = dir == MODIKE_DIR_IN ? c->spi_in : c->spi_out;

  memset (out, 0, sizeof *out);
  if (dp == NULL)
    return FALSE;
  if (dp->ops->sa_stats_sa != NULL)
    {
      const ModikeSadEntry *e = modike_sad_lookup_sa (ike->sad, dir, spi, c->reqid);

      if (e != NULL)
        dp->ops->sa_stats_sa (dp->user, e, out);
      return TRUE;
    }
  if (dp->ops->sa_stats == NULL)
    return FALSE;
  dp->ops->sa_stats (dp->user, dir, spi, out);
  return TRUE;
}

gboolean
engine_dp_child_stats (ModikeIke *ike, const EngineChild *c, ModikeSaStats *in, ModikeSaStats *out)
{
  gboolean have = child_stats (ike, c, MODIKE_DIR_IN, in);

  return child_stats (ike, c, MODIKE_DIR_OUT, out) && have;
}

gint64
engine_dp_child_last (ModikeIke *ike, const EngineChild *c, ModikeDirection dir)
{
  ModikeSaStats st;

  child_stats (ike, c, dir, &st);
  return st.last_us;
}

void
engine_dp_sa_move (ModikeIke *ike, const ModikeSadEntry *e)
{
  EngineDatapath *dp = ike->dp;

  if (dp == NULL)
    return;
  if (refused_has (dp, e->dir, e->spi, e->reqid))
    return;
  if (dp->ops->sa_move != NULL)
    dp->ops->sa_move (dp->user, e);
  else
    engine_log (G_LOG_LEVEL_MESSAGE, NULL, NULL, "datapath %s cannot move ESP SA %08x to the peer's new address",
                dp_name (dp), e->spi);
}

gboolean
modike_ike_offer_socket (ModikeIke *ike, int fd, const ModikeAddr *local)
{
  EngineDatapath *dp;
  g_autoptr (GError) error = NULL;
  char buf[MODIKE_ADDR_STRLEN];

  g_return_val_if_fail (ike != NULL && fd >= 0 && local != NULL, FALSE);
  dp = ike->dp;
  if (dp == NULL || dp->ops->socket_attach == NULL)
    return FALSE;
  if (!dp->ops->socket_attach (dp->user, fd, local, &error))
    {
      engine_log (G_LOG_LEVEL_MESSAGE, NULL, NULL, "datapath %s did not take the socket on %s: %s", dp_name (dp),
                  modike_addr_format (local, buf, sizeof buf), error != NULL ? error->message : "no reason given");
      return FALSE;
    }
  engine_log (G_LOG_LEVEL_INFO, NULL, NULL, "datapath %s reads the socket on %s", dp_name (dp),
              modike_addr_format (local, buf, sizeof buf));
  return TRUE;
}
