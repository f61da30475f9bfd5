/* Data attributes (RFC 2408 3.3) and the mode-cfg ATTR payload
 * (draft-dukes-ike-mode-cfg-02 3.2). */
#include <modike/bytes.h>
#include <modike/payload.h>
#include <modike/reader.h>

static void
attr_clear (gpointer p)
{
  ModikeAttr *a = p;
  g_clear_pointer (&a->data, g_bytes_unref);
}

GArray *
modike_attr_array_new (void)
{
  GArray *a = g_array_new (FALSE, TRUE, sizeof (ModikeAttr));
  g_array_set_clear_func (a, attr_clear);
  return a;
}

/* A TLV value of 1..4 bytes also read as a number (lifetimes, key lengths). */
static guint32
small_value (const guint8 *data, gsize len)
{
  guint32 v = 0;

  if (len < 1 || len > 4)
    return 0;
  for (gsize i = 0; i < len; i++)
    v = (v << 8) | data[i];
  return v;
}

gboolean
modike_attrs_parse (const guint8 *data, gsize len, GArray *attrs, GError **error)
{
  ModikeReader r;
  guint start = attrs->len;
  guint n = 0;

  modike_reader_init (&r, data, len);
  while (modike_reader_left (&r) > 0)
    {
      ModikeAttr a = { 0 };
      guint16 type, lv;
      const guint8 *val;

      n++;
      if (!modike_reader_u16 (&r, &type) || !modike_reader_u16 (&r, &lv))
        {
          g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_TRUNCATED,
                                  "attribute %u: %" G_GSIZE_FORMAT " bytes left, need 4 for its header",
                                  n, modike_reader_left (&r));
          goto fail;
        }
      a.type = type & ~MODIKE_ATTR_AF;
      if (type & MODIKE_ATTR_AF)
        {
          a.tv = TRUE;
          a.value = lv;
        }
      else
        {
          /* TLV length bounded by the enclosing body. */
          if (!modike_reader_bytes (&r, lv, &val))
            {
              g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_TRUNCATED,
                                      "attribute %u (type %u): length %u past end (%" G_GSIZE_FORMAT " left)",
                                      n, a.type, lv, modike_reader_left (&r));
              goto fail;
            }
          a.data = modike_bytes_new_wiped (val, lv); /* may be a password */
          a.value = small_value (val, lv);
        }
      g_array_append_val (attrs, a);
    }
  return TRUE;

fail:
  /* Leave the array as it was given. */
  g_array_set_size (attrs, start);
  return FALSE;
}

void
modike_attrs_encode (const GArray *attrs, GByteArray *out)
{
  for (guint i = 0; i < attrs->len; i++)
    {
      const ModikeAttr *a = &g_array_index (attrs, ModikeAttr, i);
      guint16 type = a->type & ~MODIKE_ATTR_AF;

      if (a->tv)
        {
          g_warn_if_fail (a->value <= G_MAXUINT16);
          modike_put_u16 (out, type | MODIKE_ATTR_AF);
          modike_put_u16 (out, (guint16) a->value);
        }
      else if (a->data != NULL)
        {
          gsize len;
          const guint8 *d = g_bytes_get_data (a->data, &len);
          g_return_if_fail (len <= G_MAXUINT16);
          modike_put_u16 (out, type);
          modike_put_u16 (out, (guint16) len);
          modike_put_bytes (out, d, len);
        }
      else
        {
          modike_put_u16 (out, type);
          modike_put_u16 (out, 4);
          modike_put_u32 (out, a->value);
        }
    }
}

void
modike_attr_add_tv (GArray *attrs, guint16 type, guint16 value)
{
  ModikeAttr a = { .type = type & ~MODIKE_ATTR_AF, .tv = TRUE, .value = value };
  g_array_append_val (attrs, a);
}

void
modike_attr_add_tlv (GArray *attrs, guint16 type, const guint8 *data, gsize len)
{
  ModikeAttr a = { .type = type & ~MODIKE_ATTR_AF, .tv = FALSE };

  g_return_if_fail (data != NULL || len == 0);
  g_return_if_fail (len <= G_MAXUINT16);
  a.data = modike_bytes_new_wiped (data, len);
  a.value = small_value (data, len);
  g_array_append_val (attrs, a);
}

void
modike_attr_add_number (GArray *attrs, guint16 type, guint32 value)
{
  guint8 b[4] = { (guint8) (value >> 24), (guint8) (value >> 16), (guint8) (value >> 8), (guint8) value };

  if (value <= G_MAXUINT16)
    modike_attr_add_tv (attrs, type, (guint16) value);
  else /* with its 4 data bytes, exactly as the decoder would give it */
    modike_attr_add_tlv (attrs, type, b, sizeof b);
}

const ModikeAttr *
modike_attrs_find (const GArray *attrs, guint16 type)
{
  type &= ~MODIKE_ATTR_AF;
  for (guint i = 0; i < attrs->len; i++)
    {
      const ModikeAttr *a = &g_array_index (attrs, ModikeAttr, i);
      if (a->type == type)
        return a;
    }
  return NULL;
}

/* ---- ATTR payload: type, reserved, identifier, attributes. ---- */

void
modike_attr_payload_free (ModikeAttrPayload *a)
{
  if (a == NULL)
    return;
  g_clear_pointer (&a->attrs, g_array_unref);
  g_free (a);
}

ModikeAttrPayload *
modike_attr_payload_parse (const guint8 *body, gsize len, GError **error)
{
  g_autoptr (ModikeAttrPayload) a = g_new0 (ModikeAttrPayload, 1);
  ModikeReader r;
  guint8 reserved;
  const guint8 *rest;
  gsize rest_len;

  a->attrs = modike_attr_array_new ();
  modike_reader_init (&r, body, len);
  if (!modike_reader_u8 (&r, &a->type) || !modike_reader_u8 (&r, &reserved)
      || !modike_reader_u16 (&r, &a->identifier))
    {
      g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_TRUNCATED,
                              "ATTR: length %" G_GSIZE_FORMAT " below 4", len);
      return NULL;
    }
  if (a->type < 1 || a->type > 4)
    {
      g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_UNSUPPORTED,
                              "ATTR: type %u is not REQUEST, REPLY, SET or ACK", a->type);
      return NULL;
    }
  rest_len = modike_reader_left (&r);
  if (!modike_reader_bytes (&r, rest_len, &rest))
    g_return_val_if_reached (NULL);
  if (!modike_attrs_parse (rest, rest_len, a->attrs, error))
    {
      g_prefix_error (error, "ATTR: ");
      return NULL;
    }
  return g_steal_pointer (&a);
}

void
modike_attr_payload_encode (const ModikeAttrPayload *a, GByteArray *out)
{
  modike_put_u8 (out, a->type);
  modike_put_u8 (out, 0);
  modike_put_u16 (out, a->identifier);
  if (a->attrs != NULL)
    modike_attrs_encode (a->attrs, out);
}
