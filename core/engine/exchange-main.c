/* Main Mode with pre-shared keys or RSA signatures (RFC 2409 5, 5.1,
 * 5.4); the pieces it shares with Aggressive Mode are in phase1.c.
 *
 *   I1 SA VID*        ->            R2 SA VID*     <-
 *   I3 KE Ni [CR*]    ->            R4 KE Nr [CR*] <-
 *   I5* IDii HASH_I | CERT* SIG_I [N(INITIAL-CONTACT)] ->
 *                                   R6* IDir HASH_R | CERT* SIG_R <- */
#include "engine-private.h"

#include <string.h>

/* ---- Main Mode handlers ---- */

ModikeVerdict
mm_initiate (ModikeExchange *x, const ModikeMessage *msg, GError **error)
{
  g_autoptr (ModikeBuilder) b = modike_builder_new ();

  if (!p1_add_offer (x, b, FALSE, error))
    return MODIKE_V_FAIL;
  p1_add_vendor_ids (x, b);
  return engine_send_msg (x, 1, b, FALSE, error);
}

ModikeVerdict
mm_r1 (ModikeExchange *x, const ModikeMessage *msg, GError **error)
{
  g_autoptr (ModikeBuilder) b = modike_builder_new ();

  if (!p1_choose (x, msg, b, error))
    return MODIKE_V_FAIL;
  p1_process_vendor_ids (x->sa, msg);
  p1_add_vendor_ids (x, b);
  return engine_send_msg (x, 2, b, FALSE, error);
}

/* After our key pair (and g^xy as responder) from a crypto worker:
 * message 3 or 4, KE and nonce. */
static ModikeVerdict
mm_ke_send (ModikeExchange *x, EngineDhJob *j, GError **error)
{
  if (!p1_take_dh (x, j, error))
    return MODIKE_V_FAIL;
  p1_add_cert_request (x->sa, j->b);
  return engine_send_msg (x, x->cur_no + 1, j->b, FALSE, error);
}

ModikeVerdict
mm_i2 (ModikeExchange *x, const ModikeMessage *msg, GError **error)
{
  if (!p1_take_reply_sa (x, msg, error))
    return MODIKE_V_FAIL;
  return p1_key_exchange (x, msg, modike_builder_new (), TRUE, FALSE, mm_ke_send, error);
}

ModikeVerdict
mm_r3 (ModikeExchange *x, const ModikeMessage *msg, GError **error)
{
  if (!p1_take_ke_nonce (x, msg, error))
    return MODIKE_V_FAIL;
  p1_process_vendor_ids (x->sa, msg);
  return p1_key_exchange (x, msg, modike_builder_new (), TRUE, TRUE, mm_ke_send, error);
}

/* After our HASH_I or SIG_I: message 5. */
static ModikeVerdict
mm_i5_send (ModikeExchange *x, const ModikeMessage *msg, ModikeBuilder *b, GError **error)
{
  p1_maybe_initial_contact (x->sa, b);
  return engine_send_msg (x, 5, b, TRUE, error);
}

/* After g^xy (crypto worker): our authentication. */
static ModikeVerdict
mm_i4_send (ModikeExchange *x, EngineDhJob *j, GError **error)
{
  if (!p1_take_dh (x, j, error))
    return MODIKE_V_FAIL;
  return p1_auth (x, j->msg, g_steal_pointer (&j->b), P1_AUTH_ADD_ID, mm_i5_send, error);
}

ModikeVerdict
mm_i4 (ModikeExchange *x, const ModikeMessage *msg, GError **error)
{
  if (!p1_take_ke_nonce (x, msg, error))
    return MODIKE_V_FAIL;
  p1_process_vendor_ids (x->sa, msg);
  return p1_key_exchange (x, msg, modike_builder_new (), FALSE, TRUE, mm_i4_send, error);
}

/* After the initiator's authentication and ours: message 6. */
static ModikeVerdict
mm_r6_send (ModikeExchange *x, const ModikeMessage *msg, ModikeBuilder *b, GError **error)
{
  return engine_send_msg (x, 6, b, TRUE, error);
}

ModikeVerdict
mm_r5 (ModikeExchange *x, const ModikeMessage *msg, GError **error)
{
  return p1_auth (x, msg, modike_builder_new (), P1_AUTH_PEER | P1_AUTH_CHECK_ID | P1_AUTH_ADD_ID, mm_r6_send, error);
}

ModikeVerdict
mm_i6 (ModikeExchange *x, const ModikeMessage *msg, GError **error)
{
  return p1_auth (x, msg, NULL, P1_AUTH_PEER | P1_AUTH_CHECK_ID, p1_auth_ok, error);
}
