/* modike_env_glib's timers (one GSource and a heap, env-glib.c) keep
 * g_timeout_add's contract: order by deadline then by creation, repeat
 * while the callback says so, cancel from anywhere (inside callbacks
 * too), and a timer added from a callback never runs in the same pass. */
#include <modike/ike.h>

typedef struct {
  GArray *fired;     /* guint: tags in firing order */
  guint cancel_id;   /* cancelled by the callback of tag 1 */
  guint repeats;
  guint self_id;
  guint added_id;
  gboolean added_ran_in_pass;
  guint pass;
} Log;

typedef struct {
  Log *log;
  guint tag;
} Tag;

static gboolean
fire (gpointer data)
{
  Tag *t = data;

  g_array_append_val (t->log->fired, t->tag);
  return G_SOURCE_REMOVE;
}

static void
run_for (guint ms)
{
  gint64 end = g_get_monotonic_time () + (gint64) ms * 1000;

  while (g_get_monotonic_time () < end)
    g_main_context_iteration (NULL, FALSE), g_usleep (200);
}

static void
test_order_and_cancel (void)
{
  const ModikeEnv *env = modike_env_glib ();
  Log log = { g_array_new (FALSE, FALSE, sizeof (guint)) };
  Tag tags[200];
  guint ids[200];

  /* 200 timers over 0..49 ms in a scrambled order, every third cancelled. */
  for (guint i = 0; i < 200; i++)
    {
      tags[i] = (Tag) { &log, i };
      ids[i] = env->timer_add (NULL, (i * 37) % 50, fire, &tags[i]);
      g_assert_cmpuint (ids[i], !=, 0);
    }
  for (guint i = 0; i < 200; i += 3)
    env->timer_remove (NULL, ids[i]);
  env->timer_remove (NULL, ids[0]); /* twice: ignored */
  run_for (120);
  g_assert_cmpuint (log.fired->len, ==, 200 - 67);
  for (guint k = 0; k < log.fired->len; k++)
    {
      guint tag = g_array_index (log.fired, guint, k);

      g_assert_cmpuint (tag % 3, !=, 0);
      if (k > 0)
        {
          guint prev = g_array_index (log.fired, guint, k - 1);
          guint dp = (prev * 37) % 50, dt = (tag * 37) % 50;

          /* Deadlines in order; equal deadlines in creation order. */
          g_assert_true (dp < dt || (dp == dt && prev < tag));
        }
    }
  g_array_unref (log.fired);
}

static gboolean
repeat (gpointer data)
{
  Log *log = data;

  return ++log->repeats < 5 ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

static gboolean
cancel_self (gpointer data)
{
  Log *log = data;

  log->repeats++;
  modike_env_glib ()->timer_remove (NULL, log->self_id);
  return G_SOURCE_CONTINUE; /* cancelled meanwhile: must not repeat */
}

static gboolean
added_later (gpointer data)
{
  Log *log = data;

  log->added_ran_in_pass = log->pass == 0;
  return G_SOURCE_REMOVE;
}

static gboolean
adds_zero (gpointer data)
{
  Log *log = data;

  log->added_id = modike_env_glib ()->timer_add (NULL, 0, added_later, log);
  return G_SOURCE_REMOVE;
}

static gboolean
cancels_other (gpointer data)
{
  Tag *t = data;

  g_array_append_val (t->log->fired, t->tag);
  modike_env_glib ()->timer_remove (NULL, t->log->cancel_id);
  return G_SOURCE_REMOVE;
}

static void
test_repeat_and_callbacks (void)
{
  const ModikeEnv *env = modike_env_glib ();
  Log a = { 0 }, b = { 0 }, c = { g_array_new (FALSE, FALSE, sizeof (guint)) };
  Tag t1 = { &c, 1 }, t2 = { &c, 2 };

  env->timer_add (NULL, 2, repeat, &a);
  b.self_id = env->timer_add (NULL, 2, cancel_self, &b);
  /* Same deadline: t1 first, and it cancels t2, which then never fires. */
  env->timer_add (NULL, 5, cancels_other, &t1);
  c.cancel_id = env->timer_add (NULL, 5, fire, &t2);
  run_for (60);
  g_assert_cmpuint (a.repeats, ==, 5);
  g_assert_cmpuint (b.repeats, ==, 1);
  g_assert_cmpuint (c.fired->len, ==, 1);
  g_assert_cmpuint (g_array_index (c.fired, guint, 0), ==, 1);
  g_array_unref (c.fired);

  /* A 0 ms timer added by a callback runs in a later main-loop pass. */
  Log d = { 0 };
  env->timer_add (NULL, 0, adds_zero, &d);
  while (d.added_id == 0)
    g_main_context_iteration (NULL, TRUE);
  d.pass = 1;
  run_for (20);
  g_assert_false (d.added_ran_in_pass);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/env-glib/order-and-cancel", test_order_and_cancel);
  g_test_add_func ("/env-glib/repeat-and-callbacks", test_repeat_and_callbacks);
  return g_test_run ();
}
