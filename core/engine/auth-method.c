/* Phase 1 authentication methods plugins register (XAuth, hybrid): what
 * the SA negotiated, who owns it, and the owner's call once phase 1 is up.
 * Phase 1 computes with the method's base: pre-shared keys, RSA
 * signatures, or hybrid (the gateway signs, the client hashes; phase1.c). */
#include "engine-private.h"

static const ModikeAuthMethodReg *
sa_method (const ModikeIkeSa *sa)
{
  return sa->choice.auth != 0 ? modike_registry_auth_method (sa->ike->registry, sa->choice.auth) : NULL;
}

guint16
modike_ike_sa_get_auth_method (const ModikeIkeSa *sa)
{
  g_return_val_if_fail (sa != NULL, 0);
  return sa->choice.auth;
}

const char *
modike_ike_sa_get_auth_owner (const ModikeIkeSa *sa)
{
  const ModikeAuthMethodReg *m;

  g_return_val_if_fail (sa != NULL, NULL);
  m = sa_method (sa);
  return m != NULL ? modike_plugin_get_name (m->owner) : NULL;
}

gboolean
modike_ike_sa_auth_is_local (const ModikeIkeSa *sa)
{
  const ModikeAuthMethodReg *m;

  g_return_val_if_fail (sa != NULL, FALSE);
  m = sa_method (sa);
  return m != NULL && m->authenticated != 0 && m->authenticated == sa->role;
}

gboolean
engine_auth_pending (const ModikeIkeSa *sa)
{
  const ModikeAuthMethodReg *m = sa_method (sa);

  return m != NULL && m->owner != modike_registry_core_plugin (sa->ike->registry) && m->authenticated != 0;
}

void
modike_ike_sa_auth_done (ModikeIkeSa *sa)
{
  g_return_if_fail (sa != NULL);
  if (sa->authenticated || sa->dead || !modike_ike_sa_is_established (sa))
    return;
  sa->authenticated = TRUE;
  ELOG_DEBUG (sa, NULL, "authenticated in full");
  if (sa->join_deferred)
    engine_sa_join (sa);
  if (sa->dead)
    return;
  modike_registry_emit (sa->ike->registry, MODIKE_EVENT_AUTHENTICATED, sa, NULL);
}

void
modike_ike_sa_set_user (ModikeIkeSa *sa, const char *user)
{
  g_return_if_fail (sa != NULL && user != NULL && g_utf8_validate (user, -1, NULL));
  g_free (sa->user);
  sa->user = g_strdup (user);
  sa->user_set = TRUE;
}

const char *
modike_ike_sa_get_user (ModikeIkeSa *sa)
{
  GBytes *id;
  g_autoptr (ModikeIdPayload) parsed = NULL;

  g_return_val_if_fail (sa != NULL, NULL);
  if (sa->user != NULL)
    return sa->user;
  id = sa->role == MODIKE_ROLE_INITIATOR ? sa->idr_b : sa->idi_b;
  if (!modike_ike_sa_is_established (sa) || id == NULL
      || (parsed = modike_id_payload_parse (g_bytes_get_data (id, NULL), g_bytes_get_size (id), NULL)) == NULL)
    return NULL;
  sa->user = engine_id_text (parsed);
  return sa->user;
}

gboolean
modike_ike_sa_is_authenticated (const ModikeIkeSa *sa)
{
  g_return_val_if_fail (sa != NULL, FALSE);
  return sa->authenticated;
}

void
engine_auth_established (ModikeIkeSa *sa)
{
  const ModikeAuthMethodReg *m = sa_method (sa);

  if (m == NULL || m->owner == modike_registry_core_plugin (sa->ike->registry))
    return;
  ELOG_INFO (sa, NULL, "authenticated with %s (method %u, plugin %s): %s", m->name, m->method,
             modike_plugin_get_name (m->owner),
             m->authenticated == 0 ? "no further step"
             : modike_ike_sa_auth_is_local (sa) ? "the peer authenticates us next"
                                                 : "we authenticate the peer next");
  if (m->fn != NULL)
    m->fn (sa, m->method, modike_ike_sa_auth_is_local (sa), m->user);
}

gboolean
engine_auth_signs (const ModikeIkeSa *sa, gboolean local)
{
  const ModikePeerConfig *peer = sa->peer;
  const ModikeAuthMethodReg *m;

  if (peer == NULL || peer->auth_base == MODIKE_AUTH_PSK)
    return FALSE;
  if (peer->auth_base == MODIKE_AUTH_RSA_SIG)
    return TRUE;
  /* Hybrid: the gateway signs, the client (the role the method
   * authenticates further) hashes. The config's method, as the SA may not
   * have chosen yet; a choice must equal it (proposal.c). */
  m = modike_registry_auth_method (sa->ike->registry, peer->auth);
  return m != NULL && (sa->role == m->authenticated) != local;
}

gboolean
engine_auth_usable (const ModikeIkeSa *sa, GError **error)
{
  const ModikePeerConfig *peer = sa->peer;
  const char *name = peer->auth_name != NULL ? peer->auth_name : "rsa";
  const char *role = sa->role == MODIKE_ROLE_INITIATOR ? "initiator" : "responder";
  gboolean has_local = peer->x509 != NULL && modike_x509_creds_has_local (peer->x509);

  if (peer->auth == 0)
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_NO_PROPOSAL_CHOSEN,
                   "auth method '%s' is not resolved (no plugin registers it)", peer->auth_name != NULL ? peer->auth_name : "?");
      return FALSE;
    }
  if (peer->auth_base == MODIKE_AUTH_HYBRID_RSA)
    {
      /* The config decides the end: cert and key make it the gateway, trust
       * anchors alone the client (the config demands them then). */
      if (engine_auth_signs (sa, TRUE) && !has_local)
        {
          g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_NO_PROPOSAL_CHOSEN,
                       "auth method '%s' makes the %s the hybrid gateway, which signs: no certificate and key "
                       "configured (this end is a hybrid client)",
                       name, role);
          return FALSE;
        }
      if (!engine_auth_signs (sa, TRUE) && has_local)
        {
          g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_NO_PROPOSAL_CHOSEN,
                       "auth method '%s' makes the %s the hybrid client, but this end has a certificate and key "
                       "(a gateway): a gateway does not %s phase 1 with this method",
                       name, role, sa->role == MODIKE_ROLE_INITIATOR ? "start" : "answer");
          return FALSE;
        }
      return TRUE;
    }
  if (peer->auth_base == MODIKE_AUTH_RSA_SIG && !has_local)
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_NO_PROPOSAL_CHOSEN,
                   "auth method '%s' is based on RSA signatures: no certificate and key configured", name);
      return FALSE;
    }
  return TRUE;
}
