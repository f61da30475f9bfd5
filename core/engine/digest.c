/* Checks a received message against its state-table row before any
 * handler runs: the encryption flag, and the payloads required, optional
 * and repeatable there, including those plugins claimed at that point. */
#include "engine-private.h"

static const ModikePayloadClaim *
find_claim (GPtrArray *claims, guint8 type)
{
  if (claims == NULL)
    return NULL;
  for (guint i = 0; i < claims->len; i++)
    {
      const ModikePayloadClaim *c = g_ptr_array_index (claims, i);

      if (c->type == type)
        return c;
    }
  return NULL;
}

static gboolean
in_mask (guint64 mask, guint8 type)
{
  guint bit = modike_payload_bit (type);

  /* Bit 63 stands for every other type: rows cannot name those. */
  return bit != MODIKE_PAYLOAD_BIT_OTHER && (mask & (G_GUINT64_CONSTANT (1) << bit)) != 0;
}

static gboolean
reject (guint16 *notify, guint16 value, GError **error, const char *fmt, ...) G_GNUC_PRINTF (4, 5);

static gboolean
reject (guint16 *notify, guint16 value, GError **error, const char *fmt, ...)
{
  va_list ap;
  g_autofree char *text = NULL;

  va_start (ap, fmt);
  text = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  *notify = value;
  g_set_error_literal (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, text);
  return FALSE;
}

gboolean
engine_digest (const ModikeRegistry *reg, const ModikeFsmRow *row, const ModikeMessage *msg, guint16 *notify,
               GError **error)
{
  gboolean encrypted = (msg->hdr.flags & MODIKE_FLAG_ENCRYPTION) != 0;
  GPtrArray *claims = modike_registry_payloads_at (reg, row->exchange, row->msg_no);
  guint counts[256] = { 0 };
  /* A hashed row's HASH payload is implied (its place is checked with it). */
  guint64 required = row->required | ((row->flags & MODIKE_ROW_HASH) ? MODIKE_PB (MODIKE_PL_HASH) : 0);
  guint64 allowed = required | row->optional;

  *notify = 0;
  if ((row->flags & MODIKE_ROW_ENCRYPTED) && !encrypted)
    return reject (notify, MODIKE_N_INVALID_FLAGS, error, "%s: message must be encrypted", row->name);
  if ((row->flags & MODIKE_ROW_PLAIN) && encrypted)
    return reject (notify, MODIKE_N_INVALID_FLAGS, error, "%s: message must not be encrypted", row->name);
  if (msg->payloads == NULL)
    return reject (notify, MODIKE_N_PAYLOAD_MALFORMED, error, "%s: payload chain not parsed", row->name);
  if (msg->payloads->len > MODIKE_MAX_PAYLOADS)
    return reject (notify, MODIKE_N_PAYLOAD_MALFORMED, error, "%s: %u payloads", row->name, msg->payloads->len);

  for (guint i = 0; i < msg->payloads->len; i++)
    {
      const ModikePayload *p = &g_array_index (msg->payloads, ModikePayload, i);

      if (!in_mask (allowed, p->type) && find_claim (claims, p->type) == NULL)
        return reject (notify, MODIKE_N_INVALID_PAYLOAD_TYPE, error, "%s: unexpected %s payload", row->name,
                       engine_payload_name (p->type));
      counts[p->type]++;
    }

  for (guint t = 0; t < G_N_ELEMENTS (counts); t++)
    {
      const ModikePayloadClaim *c;
      guint max;

      if (counts[t] <= 1)
        continue;
      max = in_mask (row->repeatable, t) ? G_MAXUINT : in_mask (allowed, t) ? 1 : 0;
      c = find_claim (claims, t);
      if (c != NULL)
        max = MAX (max, MAX (c->max_count, 1u));
      if (counts[t] > max)
        return reject (notify, MODIKE_N_PAYLOAD_MALFORMED, error, "%s: %s payload %u times", row->name,
                       engine_payload_name (t), counts[t]);
    }

  for (guint bit = 0; bit < MODIKE_PAYLOAD_BIT_OTHER; bit++)
    {
      guint8 type;

      if (!(required & (G_GUINT64_CONSTANT (1) << bit)))
        continue;
      type = modike_payload_bit_type (bit);
      if (counts[type] == 0)
        return reject (notify, MODIKE_N_PAYLOAD_MALFORMED, error, "%s: %s payload missing", row->name,
                       engine_payload_name (type));
    }
  return TRUE;
}
