/* Expensive crypto (Diffie-Hellman, signatures) off the engine thread:
 * modike_exchange_offload runs a job's work on a pool of worker threads
 * while its exchange is suspended, and its `done` on the engine thread.
 *
 * Threads: a worker touches only its job (the inputs copied into it) and
 * the result queue. The engine thread alone reads and writes everything
 * else, including which exchange a job belongs to, so the engine takes no
 * lock but the queue's. A GSource on the engine's main context, made
 * ready by the worker that queued a result, drains the queue; the fsm
 * harness drains it itself (engine_crypto_wait). With no threads
 * configured (the library's default) the work runs inline and `done`
 * follows as soon as the handler has returned. */
#include "engine-private.h"

struct _EngineOffload {
  ModikeExchange *x;          /* NULL once orphaned (x went); engine thread only */
  ModikeOffloadWork work;
  ModikeOffloadDone done;
  gpointer job;
  GDestroyNotify free_job;
  EngineCrypto *crypto;       /* NULL: runs inline */
  gint cancelled;             /* atomic: skip the work, nobody waits for it */
};

struct _EngineCrypto {
  GThreadPool *pool;
  GAsyncQueue *results;       /* EngineOffload* whose work ran (or was skipped) */
  GSource *wake;              /* ready when results holds something */
  gint stopping;              /* atomic: the engine is being freed */
  ModikeIke *ike;
  guint in_flight;            /* jobs handed to the pool, not yet back; engine thread */
};

static void
offload_free (EngineOffload *o)
{
  if (o->free_job != NULL && o->job != NULL)
    o->free_job (o->job);
  g_free (o);
}

/* On a worker thread. */
static void
worker_run (gpointer data, gpointer user)
{
  EngineOffload *o = data;
  EngineCrypto *c = user;

  if (!g_atomic_int_get (&o->cancelled) && !g_atomic_int_get (&c->stopping))
    o->work (o->job);
  g_async_queue_push (c->results, o);
  g_source_set_ready_time (c->wake, 0);
}

/* On the engine thread: the job is back; done runs if x still waits. */
static void
offload_finish (ModikeIke *ike, EngineOffload *o)
{
  ModikeExchange *x = o->x;

  if (x != NULL)
    {
      x->offload = NULL;
      o->x = NULL;
      if (!x->dead && !x->sa->dead)
        engine_exchange_offload_done (x, o->done, o->job);
    }
  offload_free (o);
}

static void
drain (EngineCrypto *c)
{
  EngineOffload *o;

  while ((o = g_async_queue_try_pop (c->results)) != NULL)
    {
      c->in_flight--;
      offload_finish (c->ike, o);
    }
}

static gboolean
wake_dispatch (GSource *src, GSourceFunc fn, gpointer user)
{
  EngineCrypto *c = user;

  g_source_set_ready_time (src, -1);
  drain (c);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs wake_funcs = { .dispatch = wake_dispatch };

gboolean
engine_crypto_set_threads (ModikeIke *ike, guint threads, GError **error)
{
  EngineCrypto *c = ike->crypto;

  ike->crypto_threads = threads;
  if (threads == 0)
    return TRUE; /* inline from now on; a pool keeps finishing its jobs */
  if (c != NULL)
    return g_thread_pool_set_max_threads (c->pool, (gint) threads, error);
  c = g_new0 (EngineCrypto, 1);
  c->ike = ike;
  c->results = g_async_queue_new ();
  c->pool = g_thread_pool_new (worker_run, c, (gint) threads, TRUE, error);
  if (c->pool == NULL)
    {
      g_async_queue_unref (c->results);
      g_free (c);
      ike->crypto_threads = 0;
      return FALSE;
    }
  c->wake = g_source_new (&wake_funcs, sizeof (GSource));
  g_source_set_callback (c->wake, NULL, c, NULL);
  g_source_set_static_name (c->wake, "modike crypto results");
  g_source_attach (c->wake, g_main_context_get_thread_default ());
  ike->crypto = c;
  return TRUE;
}

void
engine_crypto_free (ModikeIke *ike)
{
  EngineCrypto *c = ike->crypto;
  EngineOffload *o;

  if (c == NULL)
    return;
  /* Workers skip what they have not started and wait for nobody. */
  g_atomic_int_set (&c->stopping, 1);
  g_thread_pool_free (c->pool, FALSE, TRUE);
  while ((o = g_async_queue_try_pop (c->results)) != NULL)
    {
      if (o->x != NULL)
        o->x->offload = NULL;
      offload_free (o);
    }
  g_async_queue_unref (c->results);
  g_source_destroy (c->wake);
  g_source_unref (c->wake);
  g_free (c);
  ike->crypto = NULL;
}

gboolean
engine_crypto_wait (ModikeIke *ike, guint timeout_ms)
{
  EngineCrypto *c = ike->crypto;
  gint64 end = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

  while (c != NULL && c->in_flight > 0)
    {
      gint64 left = end - g_get_monotonic_time ();
      EngineOffload *o = left > 0 ? g_async_queue_timeout_pop (c->results, left) : NULL;

      if (o == NULL)
        return FALSE;
      c->in_flight--;
      offload_finish (ike, o);
      drain (c);
    }
  return TRUE;
}

guint
engine_crypto_in_flight (ModikeIke *ike)
{
  return ike->crypto != NULL ? ike->crypto->in_flight : 0;
}

void
engine_offload_orphan (ModikeExchange *x)
{
  EngineOffload *o = x->offload;

  if (o == NULL)
    return;
  x->offload = NULL;
  o->x = NULL;
  if (o->crypto == NULL)
    offload_free (o); /* inline: nobody else holds it */
  else
    g_atomic_int_set (&o->cancelled, 1);
}

void
engine_offload_run_inline (ModikeExchange *x)
{
  EngineOffload *o = x->offload;

  if (o == NULL || o->crypto != NULL || !x->suspended)
    return;
  offload_finish (x->sa->ike, o);
}

void
modike_exchange_offload (ModikeExchange *x, ModikeOffloadWork work, ModikeOffloadDone done, gpointer job,
                         GDestroyNotify free_job)
{
  ModikeIke *ike = x->sa->ike;
  EngineOffload *o;

  g_return_if_fail (work != NULL && done != NULL);
  if (x->offload != NULL || x->dead)
    {
      g_warning ("modike_exchange_offload: the exchange %s", x->dead ? "is gone" : "already waits for a job");
      if (free_job != NULL && job != NULL)
        free_job (job);
      return;
    }
  o = g_new0 (EngineOffload, 1);
  o->x = x;
  o->work = work;
  o->done = done;
  o->job = job;
  o->free_job = free_job;
  x->offload = o;
  if (ike->crypto == NULL || ike->crypto_threads == 0)
    {
      /* Inline: done runs once the handler's SUSPEND is applied. */
      work (job);
      return;
    }
  o->crypto = ike->crypto;
  ike->crypto->in_flight++;
  ike->stats.crypto_jobs++;
  g_thread_pool_push (ike->crypto->pool, o, NULL);
}
