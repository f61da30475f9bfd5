/* modike_env_glib: time and timers from the GLib main context.
 *
 * `send` is NULL here: the daemon owns the sockets. It copies this
 * struct, sets .send and .env (its socket context) and hands its copy to
 * modike_ike_new, which copies it again:
 *
 *   ModikeEnv env = *modike_env_glib ();
 *   env.env = sockets;
 *   env.send = daemon_send;
 *   ike = modike_ike_new (&env, registry);
 *
 * The time and timer functions here ignore their `env` argument, so any
 * value of .env works with them.
 *
 * A datapath plugin's host calls (datapath-host.c) are queued to the
 * thread-default main context of the thread that applies the first config;
 * with this environment that must be the thread running the default main
 * context, as modiked does. */
#include "engine-private.h"

static gint64
glib_now_us (gpointer env)
{
  return g_get_monotonic_time ();
}

/* Timers: one GSource on the default main context with a binary min-heap
 * of deadlines, not one GSource per timer. GLib's main loop visits every
 * source on each iteration, so 100,000 SAs with a few timers each would
 * make every received packet cost a walk over all of them; here a timer
 * costs O(log n) to add, cancel or fire and the loop sees one source.
 * Same contract as g_timeout_add: ms from now, repeated while fn returns
 * G_SOURCE_CONTINUE; ids are never 0. Engine thread only. */
typedef struct {
  gint64 due_us;
  guint64 seq;               /* FIFO among equal deadlines */
  guint id, interval_ms, pos;
  gboolean running, cancelled;
  GSourceFunc fn;
  gpointer data;
} EnvTimer;

static struct {
  GSource *source;
  GPtrArray *heap;           /* EnvTimer*, heap[0] due first */
  GHashTable *by_id;         /* id -> EnvTimer* */
  guint next_id;
  guint64 next_seq;
} wheel;

static gboolean
timer_before (const EnvTimer *a, const EnvTimer *b)
{
  return a->due_us < b->due_us || (a->due_us == b->due_us && a->seq < b->seq);
}

static void
heap_set (guint i, EnvTimer *t)
{
  wheel.heap->pdata[i] = t;
  t->pos = i;
}

static void
heap_up (guint i)
{
  EnvTimer *t = wheel.heap->pdata[i];

  while (i > 0)
    {
      guint parent = (i - 1) / 2;
      EnvTimer *p = wheel.heap->pdata[parent];

      if (!timer_before (t, p))
        break;
      heap_set (i, p);
      i = parent;
    }
  heap_set (i, t);
}

static void
heap_down (guint i)
{
  guint n = wheel.heap->len;
  EnvTimer *t = wheel.heap->pdata[i];

  for (;;)
    {
      guint c = 2 * i + 1;

      if (c >= n)
        break;
      if (c + 1 < n && timer_before (wheel.heap->pdata[c + 1], wheel.heap->pdata[c]))
        c++;
      if (!timer_before (wheel.heap->pdata[c], t))
        break;
      heap_set (i, wheel.heap->pdata[c]);
      i = c;
    }
  heap_set (i, t);
}

static void
heap_push (EnvTimer *t)
{
  g_ptr_array_add (wheel.heap, t);
  heap_up (wheel.heap->len - 1);
}

static void
heap_remove (EnvTimer *t)
{
  guint i = t->pos;
  EnvTimer *last = g_ptr_array_steal_index (wheel.heap, wheel.heap->len - 1);

  if (last == t)
    return;
  heap_set (i, last);
  heap_up (i);
  heap_down (last->pos);
}

static void
wheel_arm (void)
{
  g_source_set_ready_time (wheel.source, wheel.heap->len > 0 ? ((EnvTimer *) wheel.heap->pdata[0])->due_us : -1);
}

static gboolean
wheel_dispatch (GSource *source, GSourceFunc unused, gpointer unused_data)
{
  gint64 now = g_source_get_time (source);
  guint64 limit = wheel.next_seq;

  /* Timers the callbacks add (or repeat) wait for the next iteration, as
   * with g_timeout_add (0, ...). */
  while (wheel.heap->len > 0 && ((EnvTimer *) wheel.heap->pdata[0])->due_us <= now &&
         ((EnvTimer *) wheel.heap->pdata[0])->seq < limit)
    {
      EnvTimer *t = wheel.heap->pdata[0];
      gboolean again;

      heap_remove (t);
      t->running = TRUE;
      again = t->fn (t->data) == G_SOURCE_CONTINUE;
      t->running = FALSE;
      if (again && !t->cancelled)
        {
          t->due_us = now + (gint64) t->interval_ms * 1000;
          t->seq = wheel.next_seq++;
          heap_push (t);
        }
      else
        {
          g_hash_table_remove (wheel.by_id, GUINT_TO_POINTER (t->id));
          g_free (t);
        }
    }
  wheel_arm ();
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs wheel_funcs = { .dispatch = wheel_dispatch };

static guint
glib_timer_add (gpointer env, guint ms, GSourceFunc fn, gpointer data)
{
  EnvTimer *t = g_new0 (EnvTimer, 1);

  if (wheel.source == NULL)
    {
      wheel.source = g_source_new (&wheel_funcs, sizeof (GSource));
      g_source_set_name (wheel.source, "modike timers");
      g_source_attach (wheel.source, NULL);
      wheel.heap = g_ptr_array_new ();
      wheel.by_id = g_hash_table_new (g_direct_hash, g_direct_equal);
    }
  do
    t->id = ++wheel.next_id;
  while (t->id == 0 || g_hash_table_contains (wheel.by_id, GUINT_TO_POINTER (t->id)));
  t->interval_ms = ms;
  t->due_us = g_get_monotonic_time () + (gint64) ms * 1000;
  t->seq = wheel.next_seq++;
  t->fn = fn;
  t->data = data;
  g_hash_table_insert (wheel.by_id, GUINT_TO_POINTER (t->id), t);
  heap_push (t);
  if (t->pos == 0)
    wheel_arm ();
  return t->id;
}

static void
glib_timer_remove (gpointer env, guint id)
{
  EnvTimer *t = wheel.by_id != NULL ? g_hash_table_lookup (wheel.by_id, GUINT_TO_POINTER (id)) : NULL;

  if (t == NULL || t->cancelled)
    return;
  if (t->running)
    {
      t->cancelled = TRUE; /* freed once its callback returns */
      return;
    }
  heap_remove (t);
  g_hash_table_remove (wheel.by_id, GUINT_TO_POINTER (id));
  g_free (t);
  wheel_arm ();
}

static const ModikeEnv glib_env = {
  .env = NULL,
  .now_us = glib_now_us,
  .timer_add = glib_timer_add,
  .timer_remove = glib_timer_remove,
  .send = NULL,
};

const ModikeEnv *
modike_env_glib (void)
{
  return &glib_env;
}
