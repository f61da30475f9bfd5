/* Phase 1 pieces Main and Aggressive Mode share (RFC 2409 5): identities,
 * vendor IDs, KE and nonce, key derivation, HASH_I/HASH_R, proposals,
 * notifies and INITIAL-CONTACT; with RSA signatures (5.1) also CR, CERT
 * and SIG, and the checks of the peer's certificate. Hybrid authentication
 * (draft-ietf-ipsec-isakmp-hybrid-auth-05): SKEYID as with signatures, the
 * gateway sends CERT and SIG, the client HASH (engine_auth_signs). */
#include "engine-private.h"

#include <string.h>

#define CERT_X509_SIG 4 /* certificate encoding "X.509 Certificate - Signature" (RFC 2408 3.9) */

/* Type and data of a configured identity; addresses parsed, families
 * normalised (config "address" may hold IPv4 or IPv6). */
static gboolean
config_id (guint8 type, const char *value, const ModikeAddr *fallback, guint8 *out_type, GByteArray *out,
           GError **error)
{
  ModikeAddr a;

  if (type == 0 || ((type == MODIKE_ID_IPV4_ADDR || type == MODIKE_ID_IPV6_ADDR) && value == NULL))
    {
      if (fallback == NULL || fallback->family == 0)
        {
          g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "no address to use as identity");
          return FALSE;
        }
      a = *fallback;
    }
  else if (type == MODIKE_ID_IPV4_ADDR || type == MODIKE_ID_IPV6_ADDR)
    {
      if (!modike_addr_parse (value, 0, &a, error))
        return FALSE;
    }
  else
    {
      switch (type)
        {
        case MODIKE_ID_FQDN:
        case MODIKE_ID_USER_FQDN:
        case MODIKE_ID_KEY_ID:
          if (value == NULL || value[0] == '\0')
            {
              g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "empty identity");
              return FALSE;
            }
          *out_type = type;
          g_byte_array_append (out, (const guint8 *) value, strlen (value));
          return TRUE;
        default:
          g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "identity type %u not supported with PSK",
                       type);
          return FALSE;
        }
    }
  *out_type = a.family == AF_INET6 ? MODIKE_ID_IPV6_ADDR : MODIKE_ID_IPV4_ADDR;
  g_byte_array_append (out, a.addr, modike_addr_len (&a));
  return TRUE;
}

/* SKEYID from the nonces and g^xy (RSA signatures and hybrid) rather
 * than from a pre-shared key; a plugin method's base was resolved into the
 * peer config. Who signs: engine_auth_signs. */
static gboolean
p1_uses_sig (const ModikeIkeSa *sa)
{
  return sa->peer != NULL &&
         (sa->peer->auth_base == MODIKE_AUTH_RSA_SIG || sa->peer->auth_base == MODIKE_AUTH_HYBRID_RSA);
}

/* With signatures our identity must be in our certificate: its subject
 * (the default, DER_ASN1_DN) or a subjectAltName. */
static gboolean
sig_local_id (ModikeIkeSa *sa, guint8 *type, GByteArray *data, GError **error)
{
  const ModikePeerConfig *peer = sa->peer;
  g_autoptr (GBytes) subject = modike_x509_creds_local_subject (peer->x509);
  g_autofree char *text = NULL;

  if (peer->local_id_type == 0 || peer->local_id_type == MODIKE_ID_DER_ASN1_DN)
    {
      text = modike_x509_dn_to_string (g_bytes_get_data (subject, NULL), g_bytes_get_size (subject));
      if (peer->local_id_type != 0 && g_strcmp0 (text, peer->local_id) != 0)
        {
          g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_AUTH,
                       "peer %s: our identity '%s' is not the subject of our certificate '%s'", sa->peer_name,
                       peer->local_id, text);
          return FALSE;
        }
      *type = MODIKE_ID_DER_ASN1_DN;
      g_byte_array_append (data, g_bytes_get_data (subject, NULL), g_bytes_get_size (subject));
      return TRUE;
    }
  if (!config_id (peer->local_id_type, peer->local_id, &sa->local, type, data, error))
    return FALSE;
  if (!modike_x509_creds_local_has_id (peer->x509, *type, data->data, data->len))
    {
      text = modike_x509_dn_to_string (g_bytes_get_data (subject, NULL), g_bytes_get_size (subject));
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_AUTH,
                   "peer %s: our identity '%s' is not in our certificate '%s'", sa->peer_name, peer->local_id, text);
      return FALSE;
    }
  return TRUE;
}

GBytes *
p1_local_id (ModikeIkeSa *sa, GError **error)
{
  const ModikePeerConfig *peer = sa->peer;
  g_autoptr (GByteArray) data = g_byte_array_new ();
  g_autoptr (ModikeIdPayload) id = NULL;
  guint8 type = 0;

  if (engine_auth_signs (sa, TRUE) && modike_x509_creds_has_local (peer->x509))
    {
      if (!sig_local_id (sa, &type, data, error))
        return NULL;
    }
  else if (sa->own_id_type != 0)
    {
      if (!config_id (sa->own_id_type, sa->own_id, &sa->local, &type, data, error))
        return NULL;
    }
  else if (!config_id (peer != NULL ? peer->local_id_type : 0, peer != NULL ? peer->local_id : NULL, &sa->local, &type,
                  data, error))
    return NULL;
  /* Phase 1 IDs carry protocol 0 and port 0 (RFC 2407 4.6.2). */
  id = modike_id_payload_new (type, 0, 0, data->data, data->len);
  return engine_id_bytes (id);
}

gboolean
p1_add_local_id (ModikeIkeSa *sa, ModikeBuilder *b, GError **error)
{
  GBytes **slot = sa->role == MODIKE_ROLE_INITIATOR ? &sa->idi_b : &sa->idr_b;
  GBytes *id = p1_local_id (sa, error);

  if (id == NULL)
    return FALSE;
  g_clear_pointer (slot, g_bytes_unref);
  *slot = id;
  engine_builder_add_bytes (b, MODIKE_PL_ID, id);
  return TRUE;
}

gboolean
p1_id_matches (const ModikePeerConfig *peer, const ModikeIdPayload *id)
{
  g_autoptr (GByteArray) want = g_byte_array_new ();
  g_autoptr (GError) error = NULL;
  guint8 type = 0;
  gsize dlen;
  const guint8 *d;

  if (peer->remote_id_type == 0)
    return TRUE; /* any identity (the PSK or the certificate binds the peer) */
  if (peer->remote_id_type == MODIKE_ID_DER_ASN1_DN)
    {
      g_autofree char *text = NULL;

      if (id->type != MODIKE_ID_DER_ASN1_DN)
        return FALSE;
      d = g_bytes_get_data (id->data, &dlen);
      text = modike_x509_dn_to_string (d, dlen);
      return g_strcmp0 (text, peer->remote_id) == 0;
    }
  if (!config_id (peer->remote_id_type, peer->remote_id, &peer->remote, &type, want, &error))
    return FALSE;
  d = g_bytes_get_data (id->data, &dlen);
  return id->type == type && dlen == want->len && memcmp (d, want->data, dlen) == 0;
}

/* An identity for messages; a DN as text. */
char *
engine_id_text (const ModikeIdPayload *id)
{
  gsize len;
  const guint8 *d;
  char *dn;

  if (id == NULL)
    return g_strdup ("?");
  d = g_bytes_get_data (id->data, &len);
  if (id->type == MODIKE_ID_DER_ASN1_DN && (dn = modike_x509_dn_to_string (d, len)) != NULL)
    return dn;
  return modike_id_payload_to_string (id);
}

gboolean
p1_check_remote_id (ModikeIkeSa *sa, const ModikePayload *id, GError **error)
{
  GBytes **slot = sa->role == MODIKE_ROLE_INITIATOR ? &sa->idr_b : &sa->idi_b;

  g_clear_pointer (slot, g_bytes_unref);
  *slot = engine_payload_bytes (id);
  if (!p1_id_matches (sa->peer, modike_payload_get_id (id)))
    {
      g_autofree char *text = engine_id_text (modike_payload_get_id (id));

      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_AUTH, "peer %s: identity %s is not the configured %s",
                   sa->peer_name, text, sa->peer->remote_id != NULL ? sa->peer->remote_id : "one");
      return FALSE;
    }
  return TRUE;
}

void
p1_add_vendor_ids (ModikeExchange *x, ModikeBuilder *b)
{
  g_autoptr (GPtrArray) vids = modike_registry_vendor_ids (x->sa->ike->registry);

  for (guint i = 0; vids != NULL && i < vids->len; i++)
    {
      const ModikeVendorIdReg *v = g_ptr_array_index (vids, i);
      gsize len;
      const guint8 *data;

      if (!(v->flags & MODIKE_VID_SEND) || v->vid == NULL)
        continue;
      data = g_bytes_get_data (v->vid, &len);
      modike_builder_add (b, MODIKE_PL_VID, data, len);
    }
}

void
p1_process_vendor_ids (ModikeIkeSa *sa, const ModikeMessage *msg)
{
  ModikeRegistry *reg = sa->ike->registry;

  for (guint i = 0; i < msg->payloads->len; i++)
    {
      const ModikePayload *p = &g_array_index (msg->payloads, ModikePayload, i);
      const ModikeVendorIdReg *v;

      if (p->type != MODIKE_PL_VID)
        continue;
      v = modike_registry_match_vendor_id (reg, p->body, p->len);
      if (v != NULL)
        {
          ELOG_DEBUG (sa, NULL, "vendor ID '%s' (plugin %s)", v->name, modike_plugin_get_name (v->owner));
          if (v->fn != NULL)
            v->fn (sa, p->body, p->len, v->user);
        }
      else if (modike_log_would_show (G_LOG_LEVEL_DEBUG))
        {
          g_autofree char *hex = modike_hex (p->body, p->len);

          ELOG_DEBUG (sa, NULL, "unknown vendor ID %s", hex);
        }
    }
}

/* Our KE (pub) and a fresh nonce, both kept for the key derivation. */
static void
put_ke_nonce (ModikeIkeSa *sa, ModikeBuilder *b, GBytes *pub)
{
  guint8 nonce[ENGINE_NONCE_LEN];
  gboolean initiator = sa->role == MODIKE_ROLE_INITIATOR;

  modike_random_nonce (nonce, sizeof nonce);
  modike_builder_add (b, MODIKE_PL_KE, g_bytes_get_data (pub, NULL), g_bytes_get_size (pub));
  modike_builder_add (b, MODIKE_PL_NONCE, nonce, sizeof nonce);
  g_clear_pointer (initiator ? &sa->gxi : &sa->gxr, g_bytes_unref);
  g_clear_pointer (initiator ? &sa->ni : &sa->nr, g_bytes_unref);
  *(initiator ? &sa->gxi : &sa->gxr) = g_bytes_ref (pub);
  *(initiator ? &sa->ni : &sa->nr) = g_bytes_new (nonce, sizeof nonce);
}

gboolean
p1_take_ke_nonce (ModikeExchange *x, const ModikeMessage *msg, GError **error)
{
  ModikeIkeSa *sa = x->sa;
  const ModikePayload *ke = modike_message_find (msg, MODIKE_PL_KE);
  const ModikePayload *nonce = modike_message_find (msg, MODIKE_PL_NONCE);
  gboolean initiator = sa->role == MODIKE_ROLE_INITIATOR;

  if (ke == NULL || nonce == NULL)
    {
      engine_fail (x, MODIKE_N_PAYLOAD_MALFORMED, MODIKE_IKE_ERROR_FAILED, error, "KE or NONCE missing");
      return FALSE;
    }
  if (ke->len != modike_dh_public_len (sa->choice.group))
    {
      engine_fail (x, MODIKE_N_INVALID_KEY_INFORMATION, MODIKE_IKE_ERROR_FAILED, error,
                   "KE of %" G_GSIZE_FORMAT " bytes for group %s", ke->len, modike_dh_name (sa->choice.group));
      return FALSE;
    }
  g_clear_pointer (initiator ? &sa->gxr : &sa->gxi, g_bytes_unref);
  g_clear_pointer (initiator ? &sa->nr : &sa->ni, g_bytes_unref);
  *(initiator ? &sa->gxr : &sa->gxi) = engine_payload_bytes (ke);
  *(initiator ? &sa->nr : &sa->ni) = engine_payload_bytes (nonce);
  return TRUE;
}

/* SKEYID and the keys from g^xy (computed on a crypto worker). */
static gboolean
derive_keys (ModikeIkeSa *sa, const ModikeSecret *gxy, GError **error)
{
  ModikeSecret *skeyid;
  gsize ni_len, nr_len, gxi_len, gxr_len;
  const guint8 *ni, *nr, *gxi, *gxr;

  if (sa->peer == NULL || (!p1_uses_sig (sa) && sa->peer->psk == NULL))
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_AUTH, "peer %s: no pre-shared key configured",
                   sa->peer_name != NULL ? sa->peer_name : "?");
      return FALSE;
    }
  ni = g_bytes_get_data (sa->ni, &ni_len);
  nr = g_bytes_get_data (sa->nr, &nr_len);
  skeyid = p1_uses_sig (sa) ? modike_skeyid_sig (sa->choice.hash, ni, ni_len, nr, nr_len, gxy)
                            : modike_skeyid_psk (sa->choice.hash, sa->peer->psk, ni, ni_len, nr, nr_len);
  modike_p1_keys_clear (&sa->keys);
  modike_p1_keys_derive (&sa->keys, sa->choice.hash, skeyid, gxy, sa->icookie, sa->rcookie,
                         modike_encr_key_len (sa->choice.encr, sa->choice.keybits));
  sa->block_len = modike_encr_block_len (sa->choice.encr);
  if (sa->block_len == 0 || sa->block_len > ENGINE_IV_MAX)
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "cipher %u has no usable block size",
                   sa->choice.encr);
      return FALSE;
    }
  gxi = g_bytes_get_data (sa->gxi, &gxi_len);
  gxr = g_bytes_get_data (sa->gxr, &gxr_len);
  modike_p1_iv (sa->choice.hash, gxi, gxi_len, gxr, gxr_len, sa->p1_iv, sa->block_len);
  sa->have_keys = TRUE;
  return TRUE;
}

void
p1_forget_handshake (ModikeIkeSa *sa)
{
  GBytes **own_id = sa->role == MODIKE_ROLE_INITIATOR ? &sa->idi_b : &sa->idr_b;

  /* Only HASH_I/HASH_R and SKEYID needed these; the peer's ID stays (its
   * key among the SAs, modike_ike_sa_get_user). Phase 2 and the
   * Informationals need SKEYID_d, SKEYID_a and enc_key only. */
  g_clear_pointer (&sa->sai_b, g_bytes_unref);
  g_clear_pointer (&sa->ni, g_bytes_unref);
  g_clear_pointer (&sa->nr, g_bytes_unref);
  g_clear_pointer (&sa->gxi, g_bytes_unref);
  g_clear_pointer (&sa->gxr, g_bytes_unref);
  g_clear_pointer (own_id, g_bytes_unref);
  g_clear_pointer (&sa->dh, modike_dh_free);
  /* SKEYID went into HASH_I/HASH_R, SKEYID_e into enc_key: done. */
  g_clear_pointer (&sa->keys.skeyid, modike_secret_free);
  g_clear_pointer (&sa->keys.skeyid_e, modike_secret_free);
}

gboolean
p1_take_dh (ModikeExchange *x, EngineDhJob *j, GError **error)
{
  ModikeIkeSa *sa = x->sa;

  if (j->pub != NULL)
    put_ke_nonce (sa, j->b, j->pub);
  if (j->dh != NULL)
    {
      g_clear_pointer (&sa->dh, modike_dh_free);
      sa->dh = g_steal_pointer (&j->dh); /* for g^xy once the peer's KE is in */
    }
  if (j->gxy != NULL && !derive_keys (sa, j->gxy, error))
    {
      engine_fail (x, MODIKE_N_INVALID_KEY_INFORMATION, MODIKE_IKE_ERROR_FAILED, error, "key exchange failed");
      return FALSE;
    }
  return TRUE;
}

ModikeVerdict
p1_key_exchange (ModikeExchange *x, const ModikeMessage *msg, ModikeBuilder *b, gboolean keygen, gboolean compute,
                 EngineDhThen then, GError **error)
{
  ModikeIkeSa *sa = x->sa;
  GBytes *peer_pub = sa->role == MODIKE_ROLE_INITIATOR ? sa->gxr : sa->gxi;

  if ((!keygen && sa->dh == NULL) || (compute && peer_pub == NULL))
    {
      modike_builder_free (b);
      return engine_fail (x, MODIKE_N_INVALID_KEY_INFORMATION, MODIKE_IKE_ERROR_FAILED, error,
                          "key exchange failed: no %s", compute && peer_pub == NULL ? "KE from the peer" : "key pair");
    }
  return engine_dh_offload (x, msg, b, sa->choice.group, keygen ? NULL : g_steal_pointer (&sa->dh),
                            compute ? peer_pub : NULL, then);
}

static void
prf_bytes (ModikePrf *prf, GBytes *b)
{
  if (b != NULL)
    modike_prf_update (prf, g_bytes_get_data (b, NULL), g_bytes_get_size (b));
}

void
p1_hash (ModikeIkeSa *sa, gboolean of_initiator, guint8 *out)
{
  ModikePrf *prf = modike_prf_new (sa->choice.hash, sa->keys.skeyid->data, sa->keys.skeyid->len);

  /* HASH_I = prf(SKEYID, g^xi | g^xr | CKY-I | CKY-R | SAi_b | IDii_b)
   * HASH_R = prf(SKEYID, g^xr | g^xi | CKY-R | CKY-I | SAi_b | IDir_b) */
  prf_bytes (prf, of_initiator ? sa->gxi : sa->gxr);
  prf_bytes (prf, of_initiator ? sa->gxr : sa->gxi);
  modike_prf_update (prf, of_initiator ? sa->icookie : sa->rcookie, MODIKE_COOKIE_LEN);
  modike_prf_update (prf, of_initiator ? sa->rcookie : sa->icookie, MODIKE_COOKIE_LEN);
  prf_bytes (prf, sa->sai_b);
  prf_bytes (prf, of_initiator ? sa->idi_b : sa->idr_b);
  modike_prf_final (prf, out);
}

gboolean
p1_verify_hash (ModikeExchange *x, gboolean of_initiator, const ModikePayload *hash, GError **error)
{
  guint8 want[MODIKE_HASH_MAX];

  p1_hash (x->sa, of_initiator, want);
  if (!engine_hash_matches (x->sa, hash, want))
    {
      engine_fail (x, MODIKE_N_INVALID_HASH_INFORMATION, MODIKE_IKE_ERROR_AUTH, error, "HASH_%s does not verify%s",
                   of_initiator ? "I" : "R", p1_uses_sig (x->sa) ? "" : " (pre-shared key mismatch?)");
      return FALSE;
    }
  return TRUE;
}

static void
add_cert_payload (ModikeBuilder *b, guint8 type, GBytes *data)
{
  ModikeCertPayload c = { .encoding = CERT_X509_SIG, .data = data };
  GByteArray *body = g_byte_array_new ();

  modike_cert_payload_encode (&c, body);
  modike_builder_add_array (b, type, body);
}

void
p1_add_cert_request (ModikeIkeSa *sa, ModikeBuilder *b)
{
  g_autoptr (GPtrArray) cas = NULL;
  g_autoptr (GBytes) none = NULL;

  if (!engine_auth_signs (sa, FALSE) || sa->peer->x509 == NULL)
    return;
  /* One CR per trust anchor, so that a peer with several certificates
   * picks the one we can check (strongSwan sends its certificate only
   * when asked). */
  cas = modike_x509_creds_ca_subjects (sa->peer->x509);
  for (guint i = 0; i < cas->len; i++)
    add_cert_payload (b, MODIKE_PL_CR, cas->pdata[i]);
  if (cas->len == 0)
    {
      none = g_bytes_new (NULL, 0);
      add_cert_payload (b, MODIKE_PL_CR, none);
    }
}

/* INITIAL-CONTACT when this is our only SA with the peer (RFC 2407 4.6.3.3). */
void
p1_maybe_initial_contact (ModikeIkeSa *sa, ModikeBuilder *b)
{
  if (engine_sa_is_first_with_peer (sa))
    modike_builder_add_array (b, MODIKE_PL_N, engine_notify_body (sa, MODIKE_N_INITIAL_CONTACT, 0, NULL, 0, NULL, 0));
}

void
p1_process_notifies (ModikeExchange *x, const ModikeMessage *msg)
{
  ModikeIkeSa *sa = x->sa;
  gboolean authenticated = (msg->hdr.flags & MODIKE_FLAG_ENCRYPTION) != 0;
  const ModikeNotifyPayload *n;

  for (guint i = 0; (n = engine_msg_notify (msg, i)) != NULL; i++)
    {
      if (n->type == MODIKE_N_INITIAL_CONTACT)
        {
          ELOG_INFO (sa, x, "peer sent INITIAL-CONTACT");
          sa->peer_initial_contact = TRUE;
          continue;
        }
      engine_handle_notify (sa, n, authenticated);
    }
}

/* The RSA work of a phase 1 message as a crypto job: the peer's
 * certificate chain, its ID in the certificate and its SIG over HASH_I or
 * HASH_R (RFC 2409 5.1), and our SIG (PKCS#1 v1.5, no DigestInfo). The
 * worker sees only copies and the credentials (reference-counted,
 * read-only once loaded). */
typedef struct {
  /* engine thread */
  ModikeBuilder *b;            /* NULL: nothing of ours */
  const ModikeMessage *msg;
  P1AuthThen then;
  gboolean verify_peer;
  /* worker: the peer's */
  ModikeX509Creds *creds;
  gboolean verify;
  GPtrArray *ders;             /* GBytes*: X.509 CERT payloads */
  GBytes *id_b, *sig;
  guint8 want[MODIKE_HASH_MAX];
  gsize hash_len;
  gint64 now;
  char who;                    /* 'I' or 'R': whose SIG */
  ModikeX509Cert *cert;        /* out */
  guint16 notify;              /* out, with error */
  GError *error;
  /* worker: ours */
  gboolean sign;
  guint8 ours[MODIKE_HASH_MAX];
  GBytes *our_sig;             /* out, or sign_error */
  GError *sign_error;
} P1Auth;

static void
p1_auth_free (gpointer data)
{
  P1Auth *j = data;

  g_clear_pointer (&j->b, modike_builder_free);
  g_clear_pointer (&j->creds, modike_x509_creds_unref);
  g_clear_pointer (&j->ders, g_ptr_array_unref);
  g_clear_pointer (&j->id_b, g_bytes_unref);
  g_clear_pointer (&j->sig, g_bytes_unref);
  g_clear_pointer (&j->cert, modike_x509_cert_free);
  g_clear_pointer (&j->our_sig, g_bytes_unref);
  g_clear_error (&j->error);
  g_clear_error (&j->sign_error);
  modike_memwipe (j->want, sizeof j->want);
  modike_memwipe (j->ours, sizeof j->ours);
  g_free (j);
}

static gboolean
verify_peer_sig (P1Auth *j)
{
  g_autoptr (ModikeIdPayload) id = NULL;
  g_autoptr (GError) sub = NULL;
  gsize dlen = 0;
  const guint8 *d;

  j->notify = MODIKE_N_AUTHENTICATION_FAILED;
  j->cert = modike_x509_verify_chain (j->creds, j->ders, j->now, &sub);
  if (j->cert == NULL)
    {
      j->notify = MODIKE_N_INVALID_CERTIFICATE;
      g_propagate_error (&j->error, g_steal_pointer (&sub));
      return FALSE;
    }
  id = j->id_b != NULL ? modike_id_payload_parse (g_bytes_get_data (j->id_b, NULL), g_bytes_get_size (j->id_b), NULL)
                       : NULL;
  d = id != NULL ? g_bytes_get_data (id->data, &dlen) : NULL;
  if (id == NULL || !modike_x509_cert_has_id (j->cert, id->type, d, dlen))
    {
      g_autofree char *text = engine_id_text (id);

      g_set_error (&j->error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_AUTH, "ID '%s' is not in certificate '%s'", text,
                   modike_x509_cert_subject (j->cert));
      return FALSE;
    }
  if (j->sig == NULL)
    {
      g_set_error (&j->error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_AUTH, "no SIG payload from the peer");
      return FALSE;
    }
  if (!modike_x509_cert_verify (j->cert, j->want, j->hash_len, g_bytes_get_data (j->sig, NULL),
                                g_bytes_get_size (j->sig), &sub))
    {
      g_set_error (&j->error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_AUTH, "SIG_%c: %s", j->who, sub->message);
      return FALSE;
    }
  return TRUE;
}

static void
p1_auth_work (gpointer data)
{
  P1Auth *j = data;

  if (j->verify && !verify_peer_sig (j))
    return; /* no signature for a peer we refuse */
  if (j->sign)
    j->our_sig = modike_x509_sign (j->creds, j->ours, j->hash_len, &j->sign_error);
}

static ModikeVerdict
p1_auth_done (ModikeExchange *x, gpointer data, GError **error)
{
  P1Auth *j = data;
  ModikeIkeSa *sa = x->sa;

  if (j->verify && j->error != NULL)
    {
      sa->ike->stats.auth_failures++;
      return engine_fail (x, j->notify, MODIKE_IKE_ERROR_AUTH, error, "%s", j->error->message);
    }
  if (j->verify)
    ELOG_INFO (sa, x, "peer authenticated with certificate '%s'", modike_x509_cert_subject (j->cert));
  if (j->verify_peer)
    p1_process_notifies (x, j->msg);
  if (j->sign)
    {
      if (j->our_sig == NULL)
        {
          g_propagate_error (error, g_steal_pointer (&j->sign_error));
          return engine_fail (x, 0, MODIKE_IKE_ERROR_AUTH, error, "cannot authenticate ourselves");
        }
      engine_builder_add_bytes (j->b, MODIKE_PL_SIG, j->our_sig);
    }
  return j->then (x, j->msg, j->b, error);
}

/* The peer's side: its ID (check_id), then its HASH here or what a worker
 * checks of its certificate and SIG. */
static gboolean
auth_prepare_peer (ModikeExchange *x, const ModikeMessage *msg, gboolean check_id, P1Auth *j, GError **error)
{
  ModikeIkeSa *sa = x->sa;
  const ModikePayload *p;

  if (check_id && !p1_check_remote_id (sa, modike_message_find (msg, MODIKE_PL_ID), error))
    {
      modike_exchange_set_notify (x, MODIKE_N_INVALID_ID_INFORMATION);
      return FALSE;
    }
  if (engine_auth_signs (sa, FALSE))
    {
      j->ders = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
      for (guint i = 0; (p = modike_message_find_nth (msg, MODIKE_PL_CERT, i)) != NULL; i++)
        {
          const ModikeCertPayload *c = modike_payload_get_cert (p);

          if (c != NULL && c->encoding == CERT_X509_SIG)
            g_ptr_array_add (j->ders, g_bytes_ref (c->data));
          else if (c != NULL)
            ELOG_DEBUG (sa, x, "CERT of encoding %u ignored", c->encoding);
        }
      if (j->ders->len == 0)
        {
          sa->ike->stats.auth_failures++;
          engine_fail (x, MODIKE_N_AUTHENTICATION_FAILED, MODIKE_IKE_ERROR_AUTH, error,
                       "no X.509 certificate from the peer");
          return FALSE;
        }
      p = modike_message_find (msg, MODIKE_PL_SIG);
      j->verify = TRUE;
      j->creds = modike_x509_creds_ref (sa->peer->x509);
      j->id_b = sa->role == MODIKE_ROLE_INITIATOR ? sa->idr_b : sa->idi_b;
      if (j->id_b != NULL)
        g_bytes_ref (j->id_b);
      j->sig = p != NULL ? g_bytes_new (p->body, p->len) : NULL;
      /* The peer's HASH: HASH_I when we respond, HASH_R when we initiated. */
      p1_hash (sa, sa->role == MODIKE_ROLE_RESPONDER, j->want);
      j->hash_len = modike_hash_len (sa->choice.hash);
      j->now = g_get_real_time () / G_USEC_PER_SEC;
      j->who = sa->role == MODIKE_ROLE_RESPONDER ? 'I' : 'R';
      return TRUE;
    }
  if (modike_message_find (msg, MODIKE_PL_SIG) != NULL)
    {
      /* A hybrid client has no certificate; a signature is a peer that
       * runs another method under this method's value. */
      const char *r = sa->role == MODIKE_ROLE_RESPONDER ? "I" : "R";

      sa->ike->stats.auth_failures++;
      engine_fail (x, MODIKE_N_AUTHENTICATION_FAILED, MODIKE_IKE_ERROR_AUTH, error,
                   "SIG_%s instead of HASH_%s: method %u authenticates the peer with a hash", r, r, sa->choice.auth);
      return FALSE;
    }
  /* The peer's HASH: HASH_I when we respond, HASH_R when we initiated. */
  return p1_verify_hash (x, sa->role == MODIKE_ROLE_RESPONDER, modike_message_find (msg, MODIKE_PL_HASH), error);
}

/* Ours: our ID (add_id), then HASH_I/HASH_R here, or our certificate chain
 * (leaf first) here and SIG_I/SIG_R from a worker. */
static gboolean
auth_prepare_ours (ModikeExchange *x, gboolean add_id, P1Auth *j, GError **error)
{
  ModikeIkeSa *sa = x->sa;
  const ModikePeerConfig *peer = sa->peer;
  g_autoptr (GPtrArray) chain = NULL;

  if (add_id && !p1_add_local_id (sa, j->b, error))
    return FALSE;
  if (!engine_auth_signs (sa, TRUE))
    {
      p1_hash (sa, sa->role == MODIKE_ROLE_INITIATOR, j->ours);
      modike_builder_add (j->b, MODIKE_PL_HASH, j->ours, modike_hash_len (sa->choice.hash));
      return TRUE;
    }
  if (peer->x509 == NULL || !modike_x509_creds_has_local (peer->x509))
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_AUTH, "peer %s: no certificate and key of ours configured",
                   sa->peer_name);
      return FALSE;
    }
  chain = modike_x509_creds_local_chain (peer->x509);
  for (guint i = 0; i < chain->len; i++)
    add_cert_payload (j->b, MODIKE_PL_CERT, chain->pdata[i]);
  p1_hash (sa, sa->role == MODIKE_ROLE_INITIATOR, j->ours);
  j->hash_len = modike_hash_len (sa->choice.hash);
  j->sign = TRUE;
  if (j->creds == NULL)
    j->creds = modike_x509_creds_ref (peer->x509);
  return TRUE;
}

ModikeVerdict
p1_auth_ok (ModikeExchange *x, const ModikeMessage *msg, ModikeBuilder *b, GError **error)
{
  return MODIKE_V_OK;
}

ModikeVerdict
p1_auth (ModikeExchange *x, const ModikeMessage *msg, ModikeBuilder *b, guint flags, P1AuthThen then, GError **error)
{
  P1Auth *j = g_new0 (P1Auth, 1);
  ModikeVerdict v;

  j->b = b;
  j->msg = msg;
  j->then = then;
  j->verify_peer = (flags & P1_AUTH_PEER) != 0;
  if (j->verify_peer && !auth_prepare_peer (x, msg, (flags & P1_AUTH_CHECK_ID) != 0, j, error))
    {
      p1_auth_free (j);
      return MODIKE_V_FAIL;
    }
  if (b != NULL && !auth_prepare_ours (x, (flags & P1_AUTH_ADD_ID) != 0, j, error))
    {
      p1_auth_free (j);
      return engine_fail (x, 0, MODIKE_IKE_ERROR_AUTH, error, "cannot authenticate ourselves");
    }
  if (j->verify || j->sign)
    {
      modike_exchange_offload (x, p1_auth_work, p1_auth_done, j, p1_auth_free);
      return MODIKE_V_SUSPEND;
    }
  /* Hashes only: no worker. */
  v = p1_auth_done (x, j, error);
  p1_auth_free (j);
  return v;
}

gboolean
p1_add_offer (ModikeExchange *x, ModikeBuilder *b, gboolean one_group, GError **error)
{
  ModikeIkeSa *sa = x->sa;
  guint16 group = 0;
  g_autoptr (ModikeSaPayload) offer = proposal_p1_offer (sa->peer, one_group, &group);
  const ModikeProposal *p = g_ptr_array_index (offer->proposals, 0);
  g_autoptr (GError) auth_error = NULL;

  if (!engine_auth_usable (sa, &auth_error))
    {
      engine_fail (x, 0, MODIKE_IKE_ERROR_NO_PROPOSAL_CHOSEN, error, "%s", auth_error->message);
      return FALSE;
    }
  if (p->transforms->len == 0)
    {
      engine_fail (x, 0, MODIKE_IKE_ERROR_NO_PROPOSAL_CHOSEN, error, "no phase 1 proposals configured");
      return FALSE;
    }
  if (one_group)
    sa->choice.group = group;
  g_clear_pointer (&sa->sai_b, g_bytes_unref);
  sa->sai_b = engine_sa_bytes (offer);
  engine_builder_add_bytes (b, MODIKE_PL_SA, sa->sai_b);
  return TRUE;
}

gboolean
p1_choose (ModikeExchange *x, const ModikeMessage *msg, ModikeBuilder *b, GError **error)
{
  ModikeIkeSa *sa = x->sa;
  g_autoptr (ModikeSaPayload) reply = NULL;
  g_autoptr (GBytes) reply_b = NULL;

  if (!engine_auth_usable (sa, error))
    {
      g_prefix_error (error, "peer %s: ", sa->peer->name);
      modike_exchange_set_notify (x, MODIKE_N_NO_PROPOSAL_CHOSEN);
      return FALSE;
    }
  if (!proposal_p1_select (engine_msg_sa (msg), sa->peer, 0, &sa->choice, &reply, error))
    {
      modike_exchange_set_notify (x, MODIKE_N_NO_PROPOSAL_CHOSEN);
      return FALSE;
    }
  g_clear_pointer (&sa->sai_b, g_bytes_unref);
  sa->sai_b = engine_payload_bytes (modike_message_find (msg, MODIKE_PL_SA));
  reply_b = engine_sa_bytes (reply);
  engine_builder_add_bytes (b, MODIKE_PL_SA, reply_b);
  return TRUE;
}

/* Initiator: the responder's SA reply, and its cookie. */
gboolean
p1_take_reply_sa (ModikeExchange *x, const ModikeMessage *msg, GError **error)
{
  ModikeIkeSa *sa = x->sa;
  guint16 want_group = sa->choice.group;

  if (!proposal_p1_check_reply (engine_msg_sa (msg), sa->peer, &sa->choice, error))
    {
      modike_exchange_set_notify (x, MODIKE_N_NO_PROPOSAL_CHOSEN);
      return FALSE;
    }
  if (want_group != 0 && sa->choice.group != want_group)
    {
      engine_fail (x, MODIKE_N_NO_PROPOSAL_CHOSEN, MODIKE_IKE_ERROR_NO_PROPOSAL_CHOSEN, error,
                   "responder chose group %u, we sent KE for %u", sa->choice.group, want_group);
      return FALSE;
    }
  if (modike_memeq (msg->hdr.rcookie, "\0\0\0\0\0\0\0\0", MODIKE_COOKIE_LEN))
    {
      engine_fail (x, MODIKE_N_INVALID_COOKIE, MODIKE_IKE_ERROR_FAILED, error, "responder cookie is zero");
      return FALSE;
    }
  memcpy (sa->rcookie, msg->hdr.rcookie, MODIKE_COOKIE_LEN);
  sa->rcookie_set = TRUE;
  p1_process_vendor_ids (sa, msg);
  return TRUE;
}
