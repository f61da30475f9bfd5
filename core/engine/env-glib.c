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

static guint
glib_timer_add (gpointer env, guint ms, GSourceFunc fn, gpointer data)
{
  return g_timeout_add (ms, fn, data);
}

static void
glib_timer_remove (gpointer env, guint id)
{
  g_source_remove (id);
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
