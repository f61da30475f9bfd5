/* Codec errors and their notify types, CERT/CR, NAT-OA, size checks for
 * opaque payloads, and the dispatcher decoding a chain's payloads
 * (modike_payload_decode, the accessors, modike_payload_validate). */
#include <modike/message.h>
#include <modike/names.h>
#include <modike/payload.h>
#include <modike/reader.h>

#include <string.h>

G_DEFINE_QUARK (modike-codec-error-quark, modike_codec_error)

/* The notify type is a function of the error code alone, so it works on
 * any codec error, however it was propagated or copied. */
guint16
modike_codec_error_notify (const GError *error)
{
  g_return_val_if_fail (error != NULL, MODIKE_N_PAYLOAD_MALFORMED);
  if (error->domain != MODIKE_CODEC_ERROR)
    return MODIKE_N_PAYLOAD_MALFORMED;
  switch ((ModikeCodecError) error->code)
    {
    case MODIKE_CODEC_ERROR_BAD_VERSION:
      return MODIKE_N_INVALID_MAJOR_VERSION;
    case MODIKE_CODEC_ERROR_UNEQUAL_LENGTHS:
      return MODIKE_N_UNEQUAL_PAYLOAD_LENGTHS;
    case MODIKE_CODEC_ERROR_BAD_ID:
      return MODIKE_N_INVALID_ID_INFORMATION;
    case MODIKE_CODEC_ERROR_BAD_PROPOSAL:
      return MODIKE_N_BAD_PROPOSAL_SYNTAX;
    case MODIKE_CODEC_ERROR_BAD_SPI:
      return MODIKE_N_INVALID_SPI;
    case MODIKE_CODEC_ERROR_BAD_DOI:
      return MODIKE_N_DOI_NOT_SUPPORTED;
    case MODIKE_CODEC_ERROR_BAD_SITUATION:
      return MODIKE_N_SITUATION_NOT_SUPPORTED;
    case MODIKE_CODEC_ERROR_BAD_PROTOCOL:
      return MODIKE_N_INVALID_PROTOCOL_ID;
    case MODIKE_CODEC_ERROR_BAD_PAYLOAD_TYPE:
      return MODIKE_N_INVALID_PAYLOAD_TYPE;
    case MODIKE_CODEC_ERROR_TRUNCATED:
    case MODIKE_CODEC_ERROR_MALFORMED:
    case MODIKE_CODEC_ERROR_TOO_LONG:
    case MODIKE_CODEC_ERROR_UNSUPPORTED:
    default:
      return MODIKE_N_PAYLOAD_MALFORMED;
    }
}

/* ---- CERT and CR: encoding byte, then data. ---- */

void
modike_cert_payload_free (ModikeCertPayload *c)
{
  if (c == NULL)
    return;
  g_clear_pointer (&c->data, g_bytes_unref);
  g_free (c);
}

ModikeCertPayload *
modike_cert_payload_parse (const guint8 *body, gsize len, gboolean allow_empty, GError **error)
{
  const char *name = allow_empty ? "CR" : "CERT";
  g_autoptr (ModikeCertPayload) c = g_new0 (ModikeCertPayload, 1);
  ModikeReader r;
  const guint8 *data;
  gsize data_len;

  modike_reader_init (&r, body, len);
  if (!modike_reader_u8 (&r, &c->encoding))
    {
      g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_TRUNCATED, "%s: empty, no encoding", name);
      return NULL;
    }
  data_len = modike_reader_left (&r);
  if (data_len == 0 && !allow_empty)
    {
      g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_MALFORMED, "%s: no certificate data", name);
      return NULL;
    }
  if (!modike_reader_bytes (&r, data_len, &data))
    g_return_val_if_reached (NULL);
  c->data = g_bytes_new (data, data_len);
  return g_steal_pointer (&c);
}

void
modike_cert_payload_encode (const ModikeCertPayload *c, GByteArray *out)
{
  gsize len = 0;
  const guint8 *d = c->data ? g_bytes_get_data (c->data, &len) : NULL;

  modike_put_u8 (out, c->encoding);
  modike_put_bytes (out, d, len);
}

/* ---- NAT-OA (RFC 3947 5.2): ID type, 3 reserved bytes, address. ---- */

gboolean
modike_nat_oa_payload_parse (const guint8 *body, gsize len, ModikeNatOaPayload *out, GError **error)
{
  ModikeNatOaPayload oa = { 0 };
  ModikeReader r;
  guint8 reserved;
  guint16 reserved2;
  gsize want;

  modike_reader_init (&r, body, len);
  if (!modike_reader_u8 (&r, &oa.id_type) || !modike_reader_u8 (&r, &reserved)
      || !modike_reader_u16 (&r, &reserved2))
    {
      g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_TRUNCATED,
                              "NAT-OA: length %" G_GSIZE_FORMAT " below 4", len);
      return FALSE;
    }
  if (oa.id_type == MODIKE_ID_IPV4_ADDR)
    want = 4;
  else if (oa.id_type == MODIKE_ID_IPV6_ADDR)
    want = 16;
  else
    {
      g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_UNSUPPORTED,
                              "NAT-OA: ID type %u is not IPV4_ADDR or IPV6_ADDR", oa.id_type);
      return FALSE;
    }
  if (modike_reader_left (&r) != want)
    {
      g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_MALFORMED,
                              "NAT-OA: address length %" G_GSIZE_FORMAT ", expected %" G_GSIZE_FORMAT,
                              modike_reader_left (&r), want);
      return FALSE;
    }
  if (!modike_reader_copy (&r, oa.addr, want))
    g_return_val_if_reached (FALSE);
  *out = oa;
  return TRUE;
}

void
modike_nat_oa_payload_encode (const ModikeNatOaPayload *oa, GByteArray *out)
{
  g_return_if_fail (oa->id_type == MODIKE_ID_IPV4_ADDR || oa->id_type == MODIKE_ID_IPV6_ADDR);
  modike_put_u8 (out, oa->id_type);
  modike_put_u8 (out, 0);
  modike_put_u16 (out, 0);
  modike_put_bytes (out, oa->addr, oa->id_type == MODIKE_ID_IPV4_ADDR ? 4 : 16);
}

/* ---- Opaque payloads and the dispatcher. ---- */

#define NONCE_MIN 8
#define NONCE_MAX 256

gboolean
modike_opaque_payload_check (guint8 type, gsize len, GError **error)
{
  switch (type)
    {
    case MODIKE_PL_NONCE:
      if (len < NONCE_MIN)
        {
          g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_MALFORMED,
                                  "NONCE: length %" G_GSIZE_FORMAT " below %d", len, NONCE_MIN);
          return FALSE;
        }
      if (len > NONCE_MAX)
        {
          g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_TOO_LONG,
                                  "NONCE: length %" G_GSIZE_FORMAT " above %d", len, NONCE_MAX);
          return FALSE;
        }
      return TRUE;
    case MODIKE_PL_KE:
    case MODIKE_PL_HASH:
    case MODIKE_PL_SIG:
    case MODIKE_PL_VID:
    case MODIKE_PL_NAT_D:
    case MODIKE_PL_NAT_D_DRAFT:
      if (len == 0)
        {
          g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_MALFORMED, "%s: empty",
                       modike_payload_name (type));
          return FALSE;
        }
      return TRUE;
    default:
      return TRUE;
    }
}

/* The destroy function of a type's decoded form; NULL for opaque types. */
static GDestroyNotify
decoded_free_func (guint8 type)
{
  switch (type)
    {
    case MODIKE_PL_SA:
      return (GDestroyNotify) modike_sa_payload_free;
    case MODIKE_PL_ID:
      return (GDestroyNotify) modike_id_payload_free;
    case MODIKE_PL_CERT:
    case MODIKE_PL_CR:
      return (GDestroyNotify) modike_cert_payload_free;
    case MODIKE_PL_N:
      return (GDestroyNotify) modike_notify_payload_free;
    case MODIKE_PL_D:
      return (GDestroyNotify) modike_delete_payload_free;
    case MODIKE_PL_ATTR:
      return (GDestroyNotify) modike_attr_payload_free;
    case MODIKE_PL_NAT_OA:
    case MODIKE_PL_NAT_OA_DRAFT:
      return g_free;
    default:
      return NULL;
    }
}

void
modike_payload_clear (ModikePayload *p)
{
  GDestroyNotify destroy = decoded_free_func (p->type);

  if (p->decoded != NULL && destroy != NULL)
    destroy (p->decoded);
  p->decoded = NULL;
}

gboolean
modike_payload_decode (ModikePayload *p, GError **error)
{
  const guint8 *body = p->body;
  gsize len = p->len;
  ModikeNatOaPayload oa;
  gpointer d = NULL;

  modike_payload_clear (p);
  switch (p->type)
    {
    case MODIKE_PL_NONE:
      g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_BAD_PAYLOAD_TYPE,
                              "payload type 0 is not a payload");
      return FALSE;
    case MODIKE_PL_SA:
      d = modike_sa_payload_parse (body, len, error);
      break;
    case MODIKE_PL_P:
    case MODIKE_PL_T:
      /* Only nested inside an SA. */
      g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_BAD_PAYLOAD_TYPE,
                              "%s: outside an SA payload", modike_payload_name (p->type));
      return FALSE;
    case MODIKE_PL_ID:
      d = modike_id_payload_parse (body, len, error);
      break;
    case MODIKE_PL_CERT:
    case MODIKE_PL_CR:
      d = modike_cert_payload_parse (body, len, p->type == MODIKE_PL_CR, error);
      break;
    case MODIKE_PL_N:
      d = modike_notify_payload_parse (body, len, error);
      break;
    case MODIKE_PL_D:
      d = modike_delete_payload_parse (body, len, error);
      break;
    case MODIKE_PL_ATTR:
      d = modike_attr_payload_parse (body, len, error);
      break;
    case MODIKE_PL_NAT_OA:
    case MODIKE_PL_NAT_OA_DRAFT:
      if (modike_nat_oa_payload_parse (body, len, &oa, error))
        d = g_memdup2 (&oa, sizeof oa);
      break;
    case MODIKE_PL_FRAG:
      /* Fragment id (2), number (1), flags (1), then some data. */
      if (len <= 4)
        {
          g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_MALFORMED,
                                  "FRAG: length %" G_GSIZE_FORMAT " leaves no fragment data", len);
          return FALSE;
        }
      return TRUE;
    default:
      /* KE, HASH, ...: size bounds; unknown types: opaque, the state
       * table decides whether they are allowed. */
      return modike_opaque_payload_check (p->type, len, error);
    }
  p->decoded = d;
  return d != NULL;
}

gboolean
modike_payload_validate (guint8 type, const guint8 *body, gsize len, GError **error)
{
  ModikePayload p = { .type = type, .body = body, .len = len };
  gboolean ok = modike_payload_decode (&p, error);

  modike_payload_clear (&p);
  return ok;
}

/* ---- Accessors of the decoded form. ---- */

static gconstpointer
decoded_as (const ModikePayload *p, guint8 type, guint8 alt)
{
  return p != NULL && (p->type == type || p->type == alt) ? p->decoded : NULL;
}

#define ACCESSOR(T, name, type, alt) \
  const T *modike_payload_get_##name (const ModikePayload *p) { return decoded_as (p, type, alt); }

ACCESSOR (ModikeSaPayload, sa, MODIKE_PL_SA, MODIKE_PL_SA)
ACCESSOR (ModikeIdPayload, id, MODIKE_PL_ID, MODIKE_PL_ID)
ACCESSOR (ModikeCertPayload, cert, MODIKE_PL_CERT, MODIKE_PL_CR)
ACCESSOR (ModikeNotifyPayload, notify, MODIKE_PL_N, MODIKE_PL_N)
ACCESSOR (ModikeDeletePayload, delete, MODIKE_PL_D, MODIKE_PL_D)
ACCESSOR (ModikeAttrPayload, attr, MODIKE_PL_ATTR, MODIKE_PL_ATTR)
ACCESSOR (ModikeNatOaPayload, nat_oa, MODIKE_PL_NAT_OA, MODIKE_PL_NAT_OA_DRAFT)
