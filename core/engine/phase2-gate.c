/* The phase-2 gate: plugins (extended authentication, mode config) hold
 * Quick Mode on an ISAKMP SA until they release it or fail the SA. Held
 * Quick Modes wait in arrival order, ours as (policy, rekey SPI), the
 * peer's as its exchange with the first message parked (decrypted, HASH(1)
 * checked), bounded in number and time; they run on the last release. */
#include "engine-private.h"

typedef struct {
  guint32 spd_id, rekey_spi;   /* a Quick Mode we start */
  ModikeExchange *x;           /* or the peer's, parked (dies with the SA) */
  gint64 since_us;
} GateItem;

typedef struct _EngineGate EngineGate;

struct _EngineGate {
  GPtrArray *holders;          /* ModikePlugin*, borrowed */
  GArray *waiting;             /* GateItem, oldest first */
  guint run_timer, expire_timer;
};

static EngineGate *
gate_get (ModikeIkeSa *sa)
{
  if (sa->gate == NULL)
    {
      sa->gate = g_new0 (EngineGate, 1);
      sa->gate->holders = g_ptr_array_new ();
      sa->gate->waiting = g_array_new (FALSE, FALSE, sizeof (GateItem));
    }
  return sa->gate;
}

void
engine_gate_free (ModikeIkeSa *sa)
{
  EngineGate *g = sa->gate;

  if (g == NULL)
    return;
  engine_timer_cancel (sa->ike, &g->run_timer);
  engine_timer_cancel (sa->ike, &g->expire_timer);
  g_ptr_array_unref (g->holders);
  g_array_unref (g->waiting);
  g_free (g);
  sa->gate = NULL;
}

gboolean
engine_gate_held (const ModikeIkeSa *sa)
{
  return sa->gate != NULL && sa->gate->holders->len > 0;
}

guint
engine_gate_n_waiting (const ModikeIkeSa *sa)
{
  return sa->gate != NULL ? sa->gate->waiting->len : 0;
}

gboolean
engine_gate_waits_for (const ModikeIkeSa *sa, guint32 spd_id)
{
  for (guint i = 0; sa->gate != NULL && i < sa->gate->waiting->len; i++)
    {
      const GateItem *it = &g_array_index (sa->gate->waiting, GateItem, i);

      if (it->x == NULL && it->spd_id == spd_id)
        return TRUE;
    }
  return FALSE;
}

static void arm_expire (ModikeIkeSa *sa);

void
engine_gate_renumber (ModikeIkeSa *sa, const EngineRenumber *r)
{
  guint kept = 0;

  for (guint i = 0; sa->gate != NULL && i < sa->gate->waiting->len; i++)
    {
      GateItem it = g_array_index (sa->gate->waiting, GateItem, i);

      if (it.x == NULL)
        {
          it.spd_id = engine_renumber_id (r, it.spd_id);
          if (it.spd_id == 0)
            {
              ELOG_INFO (sa, NULL, "a Quick Mode waiting at the phase-2 gate lost its policy (a reload, or its instance went)");
              continue;
            }
        }
      g_array_index (sa->gate->waiting, GateItem, kept++) = it;
    }
  if (sa->gate != NULL && kept != sa->gate->waiting->len)
    {
      g_array_set_size (sa->gate->waiting, kept);
      arm_expire (sa);
    }
}

void
engine_gate_policies (const ModikeIkeSa *sa, GArray *out)
{
  for (guint i = 0; sa->gate != NULL && i < sa->gate->waiting->len; i++)
    {
      const GateItem *it = &g_array_index (sa->gate->waiting, GateItem, i);

      if (it->x == NULL)
        g_array_append_val (out, it->spd_id);
    }
}

/* A bound from the peer's options (phase2.hold-queue, phase2.hold-timeout). */
static guint
bound (ModikeIkeSa *sa, const char *key, guint def)
{
  const char *v = modike_ike_sa_get_option (sa, key);
  guint64 n = 0;
  g_autoptr (GError) error = NULL;

  if (v == NULL)
    return def;
  if (!g_ascii_string_to_unsigned (v, 10, 1, 3600, &n, &error))
    {
      ELOG_MSG (sa, NULL, "option %s: %s; using %u", key, error->message, def);
      return def;
    }
  return (guint) n;
}

static char *
holder_names (const EngineGate *g)
{
  GString *s = g_string_new (NULL);

  for (guint i = 0; i < g->holders->len; i++)
    g_string_append_printf (s, "%s'%s'", i > 0 ? ", " : "",
                            modike_plugin_get_name (g_ptr_array_index (g->holders, i)));
  return g_string_free (s, FALSE);
}

static void
fail_item (ModikeIkeSa *sa, const GateItem *it, const GError *error)
{
  if (it->x == NULL)
    engine_p2_failed (sa, error);
  else if (!it->x->dead)
    engine_exchange_fail (it->x, error);
}

static gboolean expire_cb (gpointer data);

void
engine_gate_drop_waiting (ModikeIkeSa *sa, const GError *error, gboolean fail_parked)
{
  g_autoptr (GArray) waiting = NULL;

  if (sa->gate == NULL || sa->gate->waiting->len == 0)
    return;
  waiting = g_steal_pointer (&sa->gate->waiting);
  sa->gate->waiting = g_array_new (FALSE, FALSE, sizeof (GateItem));
  engine_timer_cancel (sa->ike, &sa->gate->run_timer);
  engine_timer_cancel (sa->ike, &sa->gate->expire_timer);
  for (guint i = 0; error != NULL && i < waiting->len; i++)
    {
      const GateItem *it = &g_array_index (waiting, GateItem, i);

      if (it->x == NULL || fail_parked)
        fail_item (sa, it, error);
    }
}

static void
arm_expire (ModikeIkeSa *sa)
{
  ModikeIke *ike = sa->ike;
  EngineGate *g = sa->gate;
  gint64 due, now = ike->env.now_us (ike->env.env);

  engine_timer_cancel (ike, &g->expire_timer);
  if (g->waiting->len == 0)
    return;
  due = g_array_index (g->waiting, GateItem, 0).since_us +
        (gint64) bound (sa, "phase2.hold-timeout", ENGINE_GATE_WAIT_S) * G_USEC_PER_SEC;
  g->expire_timer = engine_timer_add (ike, due > now ? (guint) ((due - now + 999) / 1000) : 0, expire_cb, sa);
}

static void
expire (gpointer data)
{
  ModikeIkeSa *sa = data;
  ModikeIke *ike = sa->ike;
  EngineGate *g = sa->gate;
  guint limit_s = bound (sa, "phase2.hold-timeout", ENGINE_GATE_WAIT_S);
  gint64 now = ike->env.now_us (ike->env.env);
  g_autofree char *names = holder_names (g);
  g_autoptr (GError) error = g_error_new (MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_TIMEOUT,
                                          "peer %s: Quick Mode waited %u s for plugin %s to release phase 2",
                                          sa->peer_name != NULL ? sa->peer_name : "?", limit_s, names);

  while (!sa->dead && g->waiting->len > 0 &&
         g_array_index (g->waiting, GateItem, 0).since_us + (gint64) limit_s * G_USEC_PER_SEC <= now)
    {
      GateItem it = g_array_index (g->waiting, GateItem, 0);

      g_array_remove_index (g->waiting, 0);
      fail_item (sa, &it, error);
    }
  if (!sa->dead)
    arm_expire (sa);
}

static gboolean
expire_cb (gpointer data)
{
  ModikeIkeSa *sa = data;

  return engine_timer_fire (sa->ike, &sa->gate->expire_timer, expire, sa);
}

/* Room for one more waiting Quick Mode, else an error naming the holders. */
static gboolean
admit (ModikeIkeSa *sa, GError **error)
{
  EngineGate *g = gate_get (sa);
  guint max = bound (sa, "phase2.hold-queue", ENGINE_GATE_MAX_WAITING);

  if (g->waiting->len >= max)
    {
      g_autofree char *names = holder_names (g);

      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED,
                   "peer %s: phase 2 is held by plugin %s and %u Quick Modes already wait",
                   sa->peer_name != NULL ? sa->peer_name : "?", names, g->waiting->len);
      return FALSE;
    }
  return TRUE;
}

static void
enqueue (ModikeIkeSa *sa, GateItem *it)
{
  EngineGate *g = sa->gate;

  it->since_us = sa->ike->env.now_us (sa->ike->env.env);
  g_array_append_val (g->waiting, *it);
  if (g->waiting->len == 1)
    arm_expire (sa);
}

gboolean
engine_gate_queue_qm (ModikeIkeSa *sa, guint32 spd_id, guint32 rekey_spi, GError **error)
{
  GateItem it = { spd_id, rekey_spi, NULL, 0 };

  if (!admit (sa, error))
    return FALSE;
  enqueue (sa, &it);
  ELOG_INFO (sa, NULL, "Quick Mode for policy %u waits: phase 2 is held", spd_id);
  return TRUE;
}

gboolean
engine_gate_add_peer (ModikeExchange *x, GError **error)
{
  GateItem it = { 0, 0, x, 0 };

  if (!admit (x->sa, error))
    return FALSE;
  enqueue (x->sa, &it);
  ELOG_INFO (x->sa, x, "peer's Quick Mode waits: phase 2 is held");
  return TRUE;
}

static void
run_waiting (gpointer data)
{
  ModikeIkeSa *sa = data;
  EngineGate *g = sa->gate;

  /* A plugin may hold again meanwhile: the rest keeps waiting. */
  while (!sa->dead && !engine_gate_held (sa) && g->waiting->len > 0)
    {
      GateItem it = g_array_index (g->waiting, GateItem, 0);
      g_autoptr (GError) error = NULL;

      g_array_remove_index (g->waiting, 0);
      if (it.x != NULL)
        engine_exchange_run_parked (it.x);
      else if (!engine_start_qm (sa, it.spd_id, it.rekey_spi, &error))
        ELOG_MSG (sa, NULL, "Quick Mode not started: %s", error->message);
    }
  if (!sa->dead)
    arm_expire (sa);
}

static gboolean
run_cb (gpointer data)
{
  ModikeIkeSa *sa = data;

  return engine_timer_fire (sa->ike, &sa->gate->run_timer, run_waiting, sa);
}

/* ---- SDK ---- */

void
modike_ike_sa_hold_phase2 (ModikeIkeSa *sa, ModikePlugin *plugin)
{
  EngineGate *g;

  g_return_if_fail (sa != NULL && plugin != NULL);
  if (sa->dead)
    return;
  g = gate_get (sa);
  if (g_ptr_array_find (g->holders, plugin, NULL))
    return;
  g_ptr_array_add (g->holders, plugin);
  engine_timer_cancel (sa->ike, &g->run_timer);
  ELOG_INFO (sa, NULL, "plugin '%s' holds phase 2", modike_plugin_get_name (plugin));
}

void
modike_ike_sa_release_phase2 (ModikeIkeSa *sa, ModikePlugin *plugin)
{
  EngineGate *g = sa->gate;

  g_return_if_fail (plugin != NULL);
  if (sa->dead || g == NULL || !g_ptr_array_remove (g->holders, plugin))
    return;
  ELOG_INFO (sa, NULL, "plugin '%s' released phase 2%s", modike_plugin_get_name (plugin),
             g->holders->len > 0 ? " (still held)" : "");
  /* From a timer: the caller may be in the middle of a handler. */
  if (g->holders->len == 0 && g->waiting->len > 0 && g->run_timer == 0)
    g->run_timer = engine_timer_add (sa->ike, 0, run_cb, sa);
}

void
modike_ike_sa_fail (ModikeIkeSa *sa, const GError *error)
{
  ModikeIke *ike = sa->ike;
  g_autoptr (GError) fallback = NULL;
  g_autoptr (GArray) pending = NULL;

  if (sa->dead)
    return;
  if (error == NULL)
    error = fallback = g_error_new (MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "peer %s: IKE SA failed",
                                    sa->peer_name != NULL ? sa->peer_name : "?");
  engine_enter (ike);
  ELOG_MSG (sa, NULL, "IKE SA failed: %s", error->message);
  /* Every Quick Mode that waited for this SA fails with the cause. */
  engine_gate_drop_waiting (sa, error, TRUE);
  pending = g_steal_pointer (&sa->pending_spd);
  sa->pending_spd = g_array_new (FALSE, FALSE, sizeof (guint32));
  for (guint i = 0; i < pending->len; i++)
    engine_p2_failed (sa, error);
  engine_emit_failure (sa, MODIKE_EVENT_P1_FAILED, error);
  if (ike->obs.p1_failed != NULL)
    ike->obs.p1_failed (sa->peer_name != NULL ? sa->peer_name : "", error, ike->obs_user);
  engine_sa_delete (sa, TRUE);
  engine_leave (ike);
}
