/* Aggressive Mode with pre-shared keys (RFC 2409 5, 5.4).
 *
 *   I1 SA KE Ni IDii VID*                 ->
 *   R2 SA KE Nr IDir HASH_R VID*          <-
 *   I3 HASH_I [N(INITIAL-CONTACT)]        ->  (we encrypt; accepted either way)
 *
 * The responder learns the initiator's identity in message 1 and picks the
 * peer config (and so the PSK) by address, then by that identity. */
#include "engine-private.h"

static GBytes *
encode_sa (const ModikeSaPayload *sap)
{
  GByteArray *body = g_byte_array_new ();

  modike_sa_payload_encode (sap, body);
  return g_byte_array_free_to_bytes (body);
}

ModikeVerdict
am_initiate (ModikeExchange *x, const ModikeMessage *msg, GError **error)
{
  ModikeIkeSa *sa = x->sa;
  guint16 group = 0;
  g_autoptr (ModikeSaPayload) offer = proposal_p1_offer (sa->peer, TRUE, &group);
  g_autoptr (ModikeBuilder) b = modike_builder_new ();
  const ModikeProposal *p = g_ptr_array_index (offer->proposals, 0);
  GBytes *id;

  if (p->transforms->len == 0)
    return p1_fail (x, 0, MODIKE_IKE_ERROR_NO_PROPOSAL_CHOSEN, error, "no phase 1 proposals configured");
  sa->choice.group = group;
  g_clear_pointer (&sa->sai_b, g_bytes_unref);
  sa->sai_b = encode_sa (offer);
  modike_builder_add (b, MODIKE_PL_SA, g_bytes_get_data (sa->sai_b, NULL), g_bytes_get_size (sa->sai_b));
  if (!p1_add_ke_nonce (sa, b, error))
    return MODIKE_V_FAIL;
  id = p1_local_id (sa, error);
  if (id == NULL)
    return MODIKE_V_FAIL;
  g_clear_pointer (&sa->idi_b, g_bytes_unref);
  sa->idi_b = id;
  modike_builder_add (b, MODIKE_PL_ID, g_bytes_get_data (id, NULL), g_bytes_get_size (id));
  p1_add_vendor_ids (x, b);
  if (!modike_exchange_run_builders (x, 1, b, error) || !modike_exchange_send (x, b, FALSE, error))
    return MODIKE_V_FAIL;
  return MODIKE_V_OK;
}

ModikeVerdict
am_r1 (ModikeExchange *x, const ModikeMessage *msg, GError **error)
{
  ModikeIkeSa *sa = x->sa;
  const ModikePayload *sap = modike_message_find (msg, MODIKE_PL_SA);
  const ModikePayload *idp = modike_message_find (msg, MODIKE_PL_ID);
  g_autoptr (ModikeSaPayload) offer = NULL;
  g_autoptr (ModikeSaPayload) reply = NULL;
  g_autoptr (ModikeIdPayload) id = NULL;
  g_autoptr (ModikeBuilder) b = modike_builder_new ();
  g_autoptr (GBytes) reply_b = NULL;
  g_autoptr (GError) local = NULL;
  const ModikePeerConfig *peer;

  id = modike_id_payload_parse (idp->body, idp->len, &local);
  if (id == NULL)
    return p1_fail (x, MODIKE_N_INVALID_ID_INFORMATION, MODIKE_IKE_ERROR_FAILED, error, "ID payload: %s",
                    local->message);
  peer = engine_find_peer (sa->ike, &sa->local, &sa->remote, MODIKE_EX_AGGRESSIVE, id);
  if (peer == NULL)
    {
      g_autofree char *text = modike_id_payload_to_string (id);
      char buf[MODIKE_ADDR_STRLEN];

      /* The config picked by address alone was provisional: don't name it. */
      sa->peer = NULL;
      g_free (sa->peer_name);
      sa->peer_name = g_strdup (modike_addr_format (&sa->remote, buf, sizeof buf));
      return p1_fail (x, MODIKE_N_INVALID_ID_INFORMATION, MODIKE_IKE_ERROR_NO_PEER, error,
                      "no Aggressive Mode peer config for identity %s", text);
    }
  engine_sa_set_peer (sa, peer);
  offer = modike_sa_payload_parse (sap->body, sap->len, &local);
  if (offer == NULL)
    return p1_fail (x, modike_codec_error_notify (local), MODIKE_IKE_ERROR_FAILED, error, "SA payload: %s",
                    local->message);
  if (!proposal_p1_select (offer, peer, 0, &sa->choice, &reply, error))
    {
      modike_exchange_set_notify (x, MODIKE_N_NO_PROPOSAL_CHOSEN);
      return MODIKE_V_FAIL;
    }
  sa->sai_b = g_bytes_new (sap->body, sap->len);
  sa->idi_b = g_bytes_new (idp->body, idp->len);
  p1_process_vendor_ids (sa, msg);
  if (!p1_take_ke_nonce (x, msg, error))
    return MODIKE_V_FAIL;
  reply_b = encode_sa (reply);
  modike_builder_add (b, MODIKE_PL_SA, g_bytes_get_data (reply_b, NULL), g_bytes_get_size (reply_b));
  if (!p1_add_ke_nonce (sa, b, error) || !p1_derive_keys (sa, error))
    return p1_fail (x, MODIKE_N_INVALID_KEY_INFORMATION, MODIKE_IKE_ERROR_FAILED, error, "key exchange failed");
  if (!p1_add_id_hash (x, b, error))
    return MODIKE_V_FAIL;
  p1_add_vendor_ids (x, b);
  if (!modike_exchange_run_builders (x, 2, b, error) || !modike_exchange_send (x, b, FALSE, error))
    return MODIKE_V_FAIL;
  return MODIKE_V_OK;
}

ModikeVerdict
am_i2 (ModikeExchange *x, const ModikeMessage *msg, GError **error)
{
  ModikeIkeSa *sa = x->sa;
  g_autoptr (ModikeBuilder) b = modike_builder_new ();
  guint8 hash[MODIKE_HASH_MAX];

  if (!p1_take_reply_sa (x, msg, error) || !p1_take_ke_nonce (x, msg, error))
    return MODIKE_V_FAIL;
  if (!p1_derive_keys (sa, error))
    return p1_fail (x, MODIKE_N_INVALID_KEY_INFORMATION, MODIKE_IKE_ERROR_FAILED, error, "key exchange failed");
  if (!p1_check_remote_id (sa, modike_message_find (msg, MODIKE_PL_ID), error))
    {
      modike_exchange_set_notify (x, MODIKE_N_INVALID_ID_INFORMATION);
      return MODIKE_V_FAIL;
    }
  if (!p1_verify_hash (x, FALSE, modike_message_find (msg, MODIKE_PL_HASH), error))
    return MODIKE_V_FAIL;
  p1_process_notifies (x, msg);
  p1_hash (sa, TRUE, hash);
  modike_builder_add (b, MODIKE_PL_HASH, hash, modike_hash_len (sa->choice.hash));
  modike_memwipe (hash, sizeof hash);
  p1_maybe_initial_contact (sa, b);
  if (!modike_exchange_run_builders (x, 3, b, error) || !modike_exchange_send (x, b, TRUE, error))
    return MODIKE_V_FAIL;
  return MODIKE_V_OK;
}

ModikeVerdict
am_r3 (ModikeExchange *x, const ModikeMessage *msg, GError **error)
{
  if (!p1_verify_hash (x, TRUE, modike_message_find (msg, MODIKE_PL_HASH), error))
    return MODIKE_V_FAIL;
  p1_process_notifies (x, msg);
  return MODIKE_V_OK;
}
