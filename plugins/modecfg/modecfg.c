/* The plugin: per-SA state, steps run from SA timers, the transaction
 * exchange's entry points, and the events that start mode config. The
 * client's and the gateway's logic live in client.c and gateway.c. */
#include "modecfg.h"

#include <string.h>

#define MC_DATA "modecfg"

const char *
mc_peer (ModikeIkeSa *sa)
{
  const char *p = modike_ike_sa_get_peer_name (sa);

  return p != NULL ? p : "?";
}

static void
mc_sa_free (gpointer p)
{
  McSa *st = p;

  /* Without a P1_DOWN (never up, or the plugin unloading): the leases
   * still go back. */
  mc_gateway_release (st);
  mc_gateway_unindex (st);
  modecfg_attrs_clear (&st->cur);
  if (st->leases != NULL)
    g_array_unref (st->leases);
  g_clear_error (&st->fail);
  g_free (st->user);
  g_free (st->client_key);
  g_free (st);
}

/* ---- steps: never inside the handler that decided them, so that the
 * handler's own answer goes out first ---- */

typedef struct {
  McStep kind;
  guint16 identifier;
} McOut;

static void
step_run (ModikeIkeSa *sa, gpointer data)
{
  McSa *st = data;
  McStep step = st->step;
  g_autoptr (GError) error = NULL;
  McOut *out;

  st->step_timer = 0;
  st->step = MC_STEP_NONE;
  if (step == MC_STEP_NONE)
    return;
  if (step == MC_STEP_FAIL)
    {
      g_message ("%s", st->fail->message);
      mc_client_report (st, st->fail);
      modike_ike_sa_fail (sa, st->fail);
      return;
    }
  out = g_new0 (McOut, 1);
  out->kind = step;
  mc_deadline_arm (st);
  if (modike_transaction_start (sa, st->mc->plugin, out, g_free, &error) == NULL)
    {
      g_prefix_error (&error, "peer %s: mode config: ", mc_peer (sa));
      mc_fail_later (st, g_steal_pointer (&error));
    }
}

void
mc_step_later (McSa *st, McStep step)
{
  st->step = step;
  if (st->step_timer == 0)
    st->step_timer = modike_ike_sa_timer_add (st->sa, 0, step_run, st, NULL);
}

void
mc_fail_later (McSa *st, GError *error)
{
  if (st->fail == NULL)
    st->fail = error;
  else
    g_error_free (error);
  mc_deadline_cancel (st);
  mc_step_later (st, MC_STEP_FAIL);
}

static void
deadline_fired (ModikeIkeSa *sa, gpointer data)
{
  McSa *st = data;

  st->deadline = 0;
  if (st->done)
    return;
  if (st->client)
    mc_fail_later (st, g_error_new (MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_TIMEOUT,
                                    "peer %s: no mode config %s within %u s", mc_peer (sa),
                                    st->push ? "SET from the gateway" : "reply", st->timeout_s));
  else
    mc_fail_later (st, g_error_new (MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_TIMEOUT,
                                    "peer %s: client did not acknowledge the mode config SET within %u s",
                                    mc_peer (sa), st->timeout_s));
}

void
mc_deadline_arm (McSa *st)
{
  mc_deadline_cancel (st);
  st->deadline = modike_ike_sa_timer_add (st->sa, st->timeout_s * 1000, deadline_fired, st, NULL);
}

void
mc_deadline_cancel (McSa *st)
{
  if (st->deadline != 0)
    modike_ike_sa_timer_cancel (st->sa, st->deadline);
  st->deadline = 0;
}

/* ---- the transaction exchange ---- */

/* The attribute claims: collect what the message says into st->cur. */
static gboolean
mc_attr (ModikeIkeSa *sa, const ModikeAttrPayload *payload, const ModikeAttrValue *v, gpointer user,
         GError **error)
{
  McSa *st = modike_ike_sa_get_plugin_data (sa, MC_DATA);

  if (st == NULL)
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED,
                   "mode config attribute %s from a peer not configured for mode config", modecfg_attr_name (v->type));
      return FALSE;
    }
  return modecfg_attrs_take (&st->cur, v, error);
}

/* The message's ATTR payload, its attributes decoded into st->cur. */
static const ModikeAttrPayload *
read_attrs (ModikeExchange *x, const ModikeMessage *msg, McSa *st, GError **error)
{
  const ModikeAttrPayload *ap = modike_payload_get_attr (modike_message_find (msg, MODIKE_PL_ATTR));

  modecfg_attrs_clear (&st->cur);
  modecfg_attrs_init (&st->cur);
  if (ap == NULL || !modike_attr_payload_dispatch (modike_exchange_get_sa (x), ap, error))
    return NULL;
  return ap;
}

/* A message the SA cannot go on from: the SA fails after this handler. */
static ModikeVerdict
fail_both (ModikeExchange *x, McSa *st, GError **error)
{
  ModikeIkeSa *sa = modike_exchange_get_sa (x);

  if (st != NULL)
    mc_fail_later (st, g_error_new (MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "peer %s: mode config failed: %s",
                                    mc_peer (sa), *error != NULL ? (*error)->message : "?"));
  return MODIKE_V_FAIL;
}

/* Message 1 of a transaction the peer started: a REQUEST (we are the
 * gateway) or a SET (we are a push client). */
static ModikeVerdict
mc_r1 (ModikeExchange *x, const ModikeMessage *msg, GError **error)
{
  McSa *st = modike_ike_sa_get_plugin_data (modike_exchange_get_sa (x), MC_DATA);
  const ModikeAttrPayload *ap;

  if (st == NULL)
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED,
                   "mode config from peer %s, which is configured for none (option modecfg.mode, <modecfg><gateway>)",
                   mc_peer (modike_exchange_get_sa (x)));
      g_message ("%s", (*error)->message);
      return MODIKE_V_FAIL;
    }
  if ((ap = read_attrs (x, msg, st, error)) == NULL)
    return fail_both (x, st, error);
  if (st->client)
    return mc_client_message (x, st, ap, error);
  return mc_gateway_request (x, st, ap, error);
}

static ModikeVerdict
mc_initiate (ModikeExchange *x, const ModikeMessage *msg, GError **error)
{
  McOut *out = modike_exchange_get_data (x);
  McSa *st = modike_ike_sa_get_plugin_data (modike_exchange_get_sa (x), MC_DATA);
  GArray *attrs = modike_attr_array_new ();

  modike_random_nonce (&out->identifier, sizeof out->identifier);
  if (st != NULL && out->kind == MC_STEP_REQUEST)
    {
      mc_client_request_attrs (st, attrs);
      return modike_transaction_send (x, MODIKE_CFG_REQUEST, out->identifier, attrs, error) ? MODIKE_V_OK
                                                                                             : MODIKE_V_FAIL;
    }
  if (st == NULL || !mc_gateway_push_attrs (st, attrs, error))
    {
      g_array_unref (attrs);
      if (*error == NULL)
        g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "mode config state gone");
      return fail_both (x, st, error);
    }
  return modike_transaction_send (x, MODIKE_CFG_SET, out->identifier, attrs, error) ? MODIKE_V_OK : MODIKE_V_FAIL;
}

/* Message 2 of one we started: the gateway's REPLY, or the client's ACK. */
static ModikeVerdict
mc_i2 (ModikeExchange *x, const ModikeMessage *msg, GError **error)
{
  McSa *st = modike_ike_sa_get_plugin_data (modike_exchange_get_sa (x), MC_DATA);
  McOut *out = modike_exchange_get_data (x);
  const ModikeAttrPayload *ap;
  guint8 want;

  if (st == NULL || out == NULL)
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "transaction exchange not started by modecfg");
      return MODIKE_V_FAIL;
    }
  if ((ap = read_attrs (x, msg, st, error)) == NULL)
    return fail_both (x, st, error);
  want = out->kind == MC_STEP_REQUEST ? MODIKE_CFG_REPLY : MODIKE_CFG_ACK;
  /* The message ID pairs request and answer; identifiers differ between
   * implementations (some answer with 0), so they are not checked. */
  if (ap->type != want)
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "peer sent ATTR type %u; want type %u",
                   ap->type, want);
      return fail_both (x, st, error);
    }
  if (want == MODIKE_CFG_REPLY)
    return mc_client_message (x, st, ap, error);
  mc_gateway_acked (st);
  return MODIKE_V_OK;
}

static const ModikeTransactionOps mc_ops = {
  .request = mc_r1,
  .initiate = mc_initiate,
  .answer = mc_i2,
};

/* ---- events ---- */

static void
mc_authenticated (ModikeEventType ev, ModikeIkeSa *sa, const ModikeSadEntry *child, gpointer user)
{
  Modecfg *mc = user;
  const char *mode = modike_ike_sa_get_option (sa, "modecfg.mode");
  const ModecfgGateway *g = modecfg_find_gateway (mc, modike_ike_sa_get_peer_name (sa));
  McSa *st;

  if (mode != NULL && strcmp (mode, "pull") != 0 && strcmp (mode, "push") != 0)
    {
      if (strcmp (mode, "no") != 0)
        g_warning ("peer %s: option modecfg.mode='%s' is none of pull, push, no: no mode config", mc_peer (sa), mode);
      mode = NULL;
    }
  if (mode == NULL && g == NULL)
    return;
  st = g_new0 (McSa, 1);
  st->mc = mc;
  st->sa = sa;
  st->client = mode != NULL;
  modecfg_attrs_init (&st->cur);
  modike_ike_sa_set_plugin_data (sa, MC_DATA, st, mc_sa_free);
  if (st->client)
    {
      st->push = strcmp (mode, "push") == 0;
      st->timeout_s = modecfg_option_seconds (sa, "modecfg.timeout", MODECFG_DEFAULT_TIMEOUT_S);
      mc_client_start (st);
    }
  else
    {
      st->leases = g_array_new (FALSE, FALSE, sizeof (McLease));
      mc_gateway_index (st);
      mc_gateway_start (st, g);
    }
}

static void
mc_p1_down (ModikeEventType ev, ModikeIkeSa *sa, const ModikeSadEntry *child, gpointer user)
{
  McSa *st = modike_ike_sa_get_plugin_data (sa, MC_DATA);

  if (st == NULL)
    return;
  if (st->client && !st->done)
    {
      g_autoptr (GError) e = g_error_new (MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED,
                                          "peer %s: the connection ended before mode config finished", mc_peer (sa));

      mc_client_report (st, st->fail != NULL ? st->fail : e);
    }
  if (!st->client)
    mc_gateway_sa_down (st);
}

static void
modecfg_free (gpointer p)
{
  Modecfg *mc = p;

  g_clear_pointer (&mc->gateway_sas, g_hash_table_unref);
  if (mc->request_extra != NULL)
    g_array_unref (mc->request_extra);
  g_ptr_array_unref (mc->gateways);
  g_hash_table_unref (mc->pools);
  g_clear_pointer (&mc->store, modecfg_lease_store_free);
  g_free (mc->store_path);
  g_free (mc);
}

/* Cisco Unity 1.0: gateways send the Unity attributes (split networks,
 * banner) only to peers that announce it. */
static const guint8 unity_vid[] = { 0x12, 0xf5, 0xf2, 0x8c, 0x45, 0x71, 0x68, 0xa9,
                                    0x70, 0x2d, 0x9f, 0xe2, 0x74, 0xcc, 0x01, 0x00 };

gboolean
modecfg_init (ModikePlugin *plugin, GError **error)
{
  Modecfg *mc = g_new0 (Modecfg, 1);

  mc->plugin = plugin;
  mc->pools = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) modecfg_pool_free);
  mc->gateways = g_ptr_array_new_with_free_func (modecfg_gateway_free);
  mc->gateway_sas = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) g_ptr_array_unref);
  modike_plugin_set_data (plugin, mc, modecfg_free);

  return modike_register_transaction (plugin, &mc_ops, error)
         && modike_register_attributes (plugin, modecfg_specs, modecfg_n_specs, mc_attr, mc, error)
         && modike_register_event (plugin, MODIKE_EVENT_AUTHENTICATED, mc_authenticated, mc, error)
         && modike_register_event (plugin, MODIKE_EVENT_P1_DOWN, mc_p1_down, mc, error)
         && modike_register_vendor_id (plugin, "cisco-unity", unity_vid, sizeof unity_vid, MODIKE_VID_SEND, NULL,
                                       NULL, error)
         && modike_register_config_section (plugin, "modecfg", modecfg_rng, modecfg_apply, mc, error);
}
