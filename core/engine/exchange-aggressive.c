/* Aggressive Mode with pre-shared keys or RSA signatures (RFC 2409 5,
 * 5.1, 5.4).
 *
 *   I1 SA KE Ni IDii VID* [CR*]                      ->
 *   R2 SA KE Nr IDir HASH_R | CERT* SIG_R VID* [CR*] <-
 *   I3 HASH_I | CERT* SIG_I [N(INITIAL-CONTACT)]     ->  (we encrypt; accepted either way)
 *
 * The responder learns the initiator's identity in message 1 and picks the
 * peer config (and so the PSK) by address, then by that identity. */
#include "engine-private.h"

/* After our key pair (crypto worker): message 1. */
static ModikeVerdict
am_initiate_send (ModikeExchange *x, EngineDhJob *j, GError **error)
{
  ModikeBuilder *b = j->b;

  if (!p1_take_dh (x, j, error))
    return MODIKE_V_FAIL;
  if (!p1_add_local_id (x->sa, b, error))
    return MODIKE_V_FAIL;
  p1_add_cert_request (x->sa, b);
  p1_add_vendor_ids (x, b);
  return engine_send_msg (x, 1, b, FALSE, error);
}

ModikeVerdict
am_initiate (ModikeExchange *x, const ModikeMessage *msg, GError **error)
{
  g_autoptr (ModikeBuilder) b = modike_builder_new ();

  if (!p1_add_offer (x, b, TRUE, error))
    return MODIKE_V_FAIL;
  return p1_key_exchange (x, msg, g_steal_pointer (&b), TRUE, FALSE, am_initiate_send, error);
}

/* The peer config for the initiator's identity in message 1. */
static gboolean
choose_peer (ModikeExchange *x, const ModikePayload *idp, GError **error)
{
  ModikeIkeSa *sa = x->sa;
  const ModikeIdPayload *id = modike_payload_get_id (idp);
  const ModikePeerConfig *peer;

  peer = engine_find_peer (sa->ike, &sa->local, &sa->remote, MODIKE_EX_AGGRESSIVE, id);
  if (peer == NULL)
    {
      g_autofree char *text = modike_id_payload_to_string (id);
      char buf[MODIKE_ADDR_STRLEN];

      /* The config picked by address alone was provisional: don't name it. */
      sa->peer = NULL;
      g_free (sa->peer_name);
      sa->peer_name = g_strdup (modike_addr_format (&sa->remote, buf, sizeof buf));
      engine_fail (x, MODIKE_N_INVALID_ID_INFORMATION, MODIKE_IKE_ERROR_NO_PEER, error,
                   "no Aggressive Mode peer config for identity %s", text);
      return FALSE;
    }
  engine_sa_set_peer (sa, peer);
  return TRUE;
}

/* After our HASH_R or SIG_R: message 2. */
static ModikeVerdict
am_r2_send (ModikeExchange *x, const ModikeMessage *msg, ModikeBuilder *b, GError **error)
{
  p1_add_cert_request (x->sa, b);
  p1_add_vendor_ids (x, b);
  return engine_send_msg (x, 2, b, FALSE, error);
}

/* After our key pair and g^xy (crypto worker): our authentication. */
static ModikeVerdict
am_r1_send (ModikeExchange *x, EngineDhJob *j, GError **error)
{
  if (!p1_take_dh (x, j, error))
    return MODIKE_V_FAIL;
  return p1_auth (x, j->msg, g_steal_pointer (&j->b), P1_AUTH_ADD_ID, am_r2_send, error);
}

ModikeVerdict
am_r1 (ModikeExchange *x, const ModikeMessage *msg, GError **error)
{
  ModikeIkeSa *sa = x->sa;
  const ModikePayload *idp = modike_message_find (msg, MODIKE_PL_ID);
  g_autoptr (ModikeBuilder) b = modike_builder_new ();

  if (!choose_peer (x, idp, error) || !p1_choose (x, msg, b, error))
    return MODIKE_V_FAIL;
  g_clear_pointer (&sa->idi_b, g_bytes_unref);
  sa->idi_b = engine_payload_bytes (idp);
  p1_process_vendor_ids (sa, msg);
  if (!p1_take_ke_nonce (x, msg, error))
    return MODIKE_V_FAIL;
  return p1_key_exchange (x, msg, g_steal_pointer (&b), TRUE, TRUE, am_r1_send, error);
}

/* After the responder's authentication and ours: message 3. */
static ModikeVerdict
am_i3_send (ModikeExchange *x, const ModikeMessage *msg, ModikeBuilder *b, GError **error)
{
  p1_maybe_initial_contact (x->sa, b);
  return engine_send_msg (x, 3, b, TRUE, error);
}

/* After g^xy (crypto worker): the responder's authentication and ours. */
static ModikeVerdict
am_i2_send (ModikeExchange *x, EngineDhJob *j, GError **error)
{
  if (!p1_take_dh (x, j, error))
    return MODIKE_V_FAIL;
  return p1_auth (x, j->msg, g_steal_pointer (&j->b), P1_AUTH_PEER | P1_AUTH_CHECK_ID, am_i3_send, error);
}

ModikeVerdict
am_i2 (ModikeExchange *x, const ModikeMessage *msg, GError **error)
{
  if (!p1_take_reply_sa (x, msg, error) || !p1_take_ke_nonce (x, msg, error))
    return MODIKE_V_FAIL;
  return p1_key_exchange (x, msg, modike_builder_new (), FALSE, TRUE, am_i2_send, error);
}

ModikeVerdict
am_r3 (ModikeExchange *x, const ModikeMessage *msg, GError **error)
{
  /* The initiator's ID came in message 1. */
  return p1_auth (x, msg, NULL, P1_AUTH_PEER, p1_auth_ok, error);
}
