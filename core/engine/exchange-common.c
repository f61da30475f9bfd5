/* What the core exchanges (Main, Aggressive, Quick, Informational) share:
 * failing a handler, payload bodies as bytes, SPIs, notify bodies, the
 * decoded N and SA payloads a message carries, sending a built message, and the HASH payloads
 * keyed with SKEYID_a (Quick Mode HASH(1..3), Informational HASH(1),
 * RFC 2409 5.5, 5.7). */
#include "engine-private.h"

#include <string.h>

/* ---- failing a handler ---- */

/* Phase 1 errors name the peer only; later exchanges say which they are. */
static const char *
error_prefix (const ModikeExchange *x)
{
  switch (x->type)
    {
    case MODIKE_EX_QUICK:
      return "Quick Mode: ";
    case MODIKE_EX_INFO:
      return "Informational: ";
    default:
      return "";
    }
}

ModikeVerdict
engine_failv (ModikeExchange *x, guint16 notify, ModikeIkeError code, GError **error, const char *fmt, va_list ap)
{
  g_autofree char *text = g_strdup_vprintf (fmt, ap);

  modike_exchange_set_notify (x, notify);
  /* The first cause wins: a helper that failed already said why. */
  if (error != NULL && *error == NULL)
    g_set_error (error, MODIKE_IKE_ERROR, code, "peer %s: %s%s", x->sa->peer_name != NULL ? x->sa->peer_name : "?",
                 error_prefix (x), text);
  return MODIKE_V_FAIL;
}

ModikeVerdict
engine_fail (ModikeExchange *x, guint16 notify, ModikeIkeError code, GError **error, const char *fmt, ...)
{
  va_list ap;

  va_start (ap, fmt);
  engine_failv (x, notify, code, error, fmt, ap);
  va_end (ap);
  return MODIKE_V_FAIL;
}

/* ---- payload bodies ---- */

GBytes *
engine_payload_bytes (const ModikePayload *p)
{
  return g_bytes_new (p->body, p->len);
}

GBytes *
engine_sa_bytes (const ModikeSaPayload *sap)
{
  GByteArray *body = g_byte_array_new ();

  modike_sa_payload_encode (sap, body);
  return g_byte_array_free_to_bytes (body);
}

GBytes *
engine_id_bytes (const ModikeIdPayload *id)
{
  GByteArray *body = g_byte_array_new ();

  modike_id_payload_encode (id, body);
  return g_byte_array_free_to_bytes (body);
}

guint
engine_builder_add_bytes (ModikeBuilder *b, guint8 type, GBytes *body)
{
  return modike_builder_add (b, type, g_bytes_get_data (body, NULL), g_bytes_get_size (body));
}

void
engine_spi_bytes (guint32 spi, guint8 out[4])
{
  out[0] = spi >> 24;
  out[1] = spi >> 16;
  out[2] = spi >> 8;
  out[3] = spi;
}

guint32
engine_spi_value (const guint8 spi[4])
{
  return (guint32) spi[0] << 24 | (guint32) spi[1] << 16 | (guint32) spi[2] << 8 | spi[3];
}

GByteArray *
engine_notify_body (ModikeIkeSa *sa, guint16 type, guint8 protocol, const guint8 *spi, gsize spi_len,
                    const guint8 *data, gsize data_len)
{
  ModikeNotifyPayload n = { 0 };
  GByteArray *body = g_byte_array_new ();

  n.doi = MODIKE_DOI_IPSEC;
  n.type = type;
  if (protocol == 0 || spi == NULL)
    {
      /* About the ISAKMP SA: its SPI is the cookie pair. */
      n.protocol = MODIKE_PROTO_ISAKMP;
      n.spi_len = 2 * MODIKE_COOKIE_LEN;
      memcpy (n.spi, sa->icookie, MODIKE_COOKIE_LEN);
      memcpy (n.spi + MODIKE_COOKIE_LEN, sa->rcookie, MODIKE_COOKIE_LEN);
    }
  else
    {
      n.protocol = protocol;
      n.spi_len = (guint8) MIN (spi_len, sizeof n.spi);
      memcpy (n.spi, spi, n.spi_len);
    }
  n.data = g_bytes_new (data, data_len);
  modike_notify_payload_encode (&n, body);
  g_bytes_unref (n.data);
  return body;
}

const ModikeNotifyPayload *
engine_msg_notify (const ModikeMessage *msg, guint index)
{
  return modike_payload_get_notify (modike_message_find_nth (msg, MODIKE_PL_N, index));
}

const ModikeSaPayload *
engine_msg_sa (const ModikeMessage *msg)
{
  const ModikeSaPayload *sap = modike_payload_get_sa (modike_message_find (msg, MODIKE_PL_SA));

  /* The rows calling this require the SA payload: the digest saw it, and
   * the chain parser decoded it (or dropped the message). */
  g_assert (sap != NULL);
  return sap;
}

/* ---- sending ---- */

ModikeVerdict
engine_send_msg (ModikeExchange *x, guint8 msg_no, ModikeBuilder *b, gboolean encrypt, GError **error)
{
  if (!modike_exchange_run_builders (x, msg_no, b, error) || !modike_exchange_send (x, b, encrypt, error))
    return MODIKE_V_FAIL;
  return MODIKE_V_OK;
}

/* ---- HASH payloads ---- */

gboolean
engine_hash_matches (ModikeIkeSa *sa, const ModikePayload *hash, guint8 *want)
{
  gsize len = modike_hash_len (sa->choice.hash);
  gboolean ok =
    hash != NULL && hash->type == MODIKE_PL_HASH && hash->len == len && modike_memeq (hash->body, want, len);

  modike_memwipe (want, MODIKE_HASH_MAX);
  if (!ok)
    sa->ike->stats.auth_failures++;
  return ok;
}

/* prf(SKEYID_a, [0 |] M-ID | extra | tail). */
static void
hash_a_bytes (ModikeIkeSa *sa, gboolean zero, guint32 msgid, GBytes *extra, GBytes *tail, guint8 *out)
{
  gsize len = 0;
  const guint8 *data = tail != NULL ? g_bytes_get_data (tail, &len) : NULL;

  engine_hash_a (sa, zero, msgid, extra, data, len, out);
}

void
engine_add_hash (ModikeIkeSa *sa, guint32 msgid, ModikeBuilder *b, gboolean zero, GBytes *extra, GBytes *tail)
{
  guint8 hash[MODIKE_HASH_MAX];

  hash_a_bytes (sa, zero, msgid, extra, tail, hash);
  modike_builder_add (b, MODIKE_PL_HASH, hash, modike_hash_len (sa->choice.hash));
  modike_memwipe (hash, sizeof hash);
}

gboolean
engine_verify_hash (ModikeExchange *x, const ModikeMessage *msg, gboolean zero, GBytes *extra, GBytes *tail,
                    GError **error)
{
  ModikeIkeSa *sa = x->sa;
  const ModikePayload *h = msg->payloads->len > 0 ? &g_array_index (msg->payloads, ModikePayload, 0) : NULL;
  guint8 want[MODIKE_HASH_MAX];
  const guint8 *rest = NULL;
  gsize rest_len = 0;

  if (h == NULL || h->type != MODIKE_PL_HASH || !engine_message_rest (msg, 0, &rest, &rest_len))
    {
      engine_fail (x, 0, MODIKE_IKE_ERROR_FAILED, error, "HASH is not the first payload");
      return FALSE;
    }
  if (tail != NULL)
    hash_a_bytes (sa, zero, x->msgid, extra, tail, want);
  else
    engine_hash_a (sa, zero, x->msgid, extra, rest, rest_len, want);
  if (!engine_hash_matches (sa, h, want))
    {
      /* No notify: a message that fails its HASH proves nothing about the peer. */
      engine_fail (x, 0, MODIKE_IKE_ERROR_AUTH, error, "HASH(%u) does not verify", x->cur_no);
      return FALSE;
    }
  return TRUE;
}

/* ---- Diffie-Hellman on a crypto worker ---- */

static void
dh_job_free (gpointer data)
{
  EngineDhJob *j = data;

  g_clear_pointer (&j->b, modike_builder_free);
  g_clear_pointer (&j->dh, modike_dh_free);
  g_clear_pointer (&j->peer_pub, g_bytes_unref);
  g_clear_pointer (&j->pub, g_bytes_unref);
  g_clear_pointer (&j->gxy, modike_secret_free);
  g_clear_error (&j->error);
  g_free (j);
}

/* On the worker: only the job's own copies. */
static void
dh_job_work (gpointer data)
{
  EngineDhJob *j = data;

  if (j->dh == NULL)
    {
      j->dh = modike_dh_new (j->group, &j->error);
      if (j->dh == NULL)
        return;
      j->pub = modike_dh_public (j->dh);
    }
  if (j->peer_pub != NULL)
    {
      j->gxy = modike_dh_compute (j->dh, g_bytes_get_data (j->peer_pub, NULL), g_bytes_get_size (j->peer_pub),
                                  &j->error);
      /* The private value is spent once g^xy exists. */
      g_clear_pointer (&j->dh, modike_dh_free);
    }
}

static ModikeVerdict
dh_job_done (ModikeExchange *x, gpointer data, GError **error)
{
  EngineDhJob *j = data;

  if (j->error != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&j->error));
      return engine_fail (x, MODIKE_N_INVALID_KEY_INFORMATION, MODIKE_IKE_ERROR_FAILED, error, "key exchange failed");
    }
  return j->then (x, j, error);
}

ModikeVerdict
engine_dh_offload (ModikeExchange *x, const ModikeMessage *msg, ModikeBuilder *b, ModikeDhGroup group, ModikeDh *dh,
                   GBytes *peer_pub, EngineDhThen then)
{
  EngineDhJob *j = g_new0 (EngineDhJob, 1);

  j->b = b;
  j->msg = msg;
  j->then = then;
  j->group = group;
  j->dh = dh;
  j->peer_pub = peer_pub != NULL ? g_bytes_ref (peer_pub) : NULL;
  modike_exchange_offload (x, dh_job_work, dh_job_done, j, dh_job_free);
  return MODIKE_V_SUSPEND;
}
