/* Notification and Delete payloads (RFC 2408 3.14, 3.15). */
#include <modike/payload.h>
#include <modike/reader.h>

#include <string.h>

void
modike_notify_payload_free (ModikeNotifyPayload *n)
{
  if (n == NULL)
    return;
  g_clear_pointer (&n->data, g_bytes_unref);
  g_free (n);
}

ModikeNotifyPayload *
modike_notify_payload_parse (const guint8 *body, gsize len, GError **error)
{
  g_autoptr (ModikeNotifyPayload) n = g_new0 (ModikeNotifyPayload, 1);
  ModikeReader r;
  const guint8 *data;
  gsize data_len;

  modike_reader_init (&r, body, len);
  if (!modike_reader_u32 (&r, &n->doi) || !modike_reader_u8 (&r, &n->protocol)
      || !modike_reader_u8 (&r, &n->spi_len) || !modike_reader_u16 (&r, &n->type))
    {
      g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_TRUNCATED,
                              "N: length %" G_GSIZE_FORMAT " below 8", len);
      return NULL;
    }
  /* DOI 0 is the generic ISAKMP DOI some peers use for notifies. */
  if (n->doi != MODIKE_DOI_IPSEC && n->doi != 0)
    {
      g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_BAD_DOI,
                              "N: DOI %u not supported", n->doi);
      return NULL;
    }
  if (n->spi_len > sizeof n->spi)
    {
      g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_BAD_SPI,
                              "N: spi size %u above 16", n->spi_len);
      return NULL;
    }
  if (!modike_reader_copy (&r, n->spi, n->spi_len))
    {
      g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_TRUNCATED,
                              "N: spi size %u past end (%" G_GSIZE_FORMAT " bytes left)",
                              n->spi_len, modike_reader_left (&r));
      return NULL;
    }
  data_len = modike_reader_left (&r);
  if (!modike_reader_bytes (&r, data_len, &data))
    g_return_val_if_reached (NULL);
  n->data = g_bytes_new (data, data_len);
  return g_steal_pointer (&n);
}

void
modike_notify_payload_encode (const ModikeNotifyPayload *n, GByteArray *out)
{
  gsize len = 0;
  const guint8 *d = n->data ? g_bytes_get_data (n->data, &len) : NULL;
  guint8 spi_len = MIN (n->spi_len, sizeof n->spi);

  modike_put_u32 (out, n->doi);
  modike_put_u8 (out, n->protocol);
  modike_put_u8 (out, spi_len);
  modike_put_u16 (out, n->type);
  modike_put_bytes (out, n->spi, spi_len);
  modike_put_bytes (out, d, len);
}

void
modike_delete_payload_free (ModikeDeletePayload *d)
{
  if (d == NULL)
    return;
  g_clear_pointer (&d->spis, g_ptr_array_unref);
  g_free (d);
}

ModikeDeletePayload *
modike_delete_payload_parse (const guint8 *body, gsize len, GError **error)
{
  g_autoptr (ModikeDeletePayload) d = g_new0 (ModikeDeletePayload, 1);
  ModikeReader r;
  guint16 count;
  guint8 want;

  d->spis = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  modike_reader_init (&r, body, len);
  if (!modike_reader_u32 (&r, &d->doi) || !modike_reader_u8 (&r, &d->protocol)
      || !modike_reader_u8 (&r, &d->spi_len) || !modike_reader_u16 (&r, &count))
    {
      g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_TRUNCATED,
                              "D: length %" G_GSIZE_FORMAT " below 8", len);
      return NULL;
    }
  if (d->doi != MODIKE_DOI_IPSEC)
    {
      g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_BAD_DOI,
                              "D: DOI %u not supported", d->doi);
      return NULL;
    }
  switch (d->protocol)
    {
    case MODIKE_PROTO_ISAKMP:
      want = 16; /* the cookie pair */
      break;
    case MODIKE_PROTO_AH:
    case MODIKE_PROTO_ESP:
      want = 4;
      break;
    default:
      g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_BAD_PROTOCOL,
                              "D: protocol %u not supported", d->protocol);
      return NULL;
    }
  if (d->spi_len != want)
    {
      g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_BAD_SPI,
                              "D: spi size %u, expected %u for protocol %u", d->spi_len, want, d->protocol);
      return NULL;
    }
  if (count == 0)
    {
      g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_MALFORMED, "D: no SPIs");
      return NULL;
    }
  if (modike_reader_left (&r) != (gsize) count * d->spi_len)
    {
      g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_MALFORMED,
                              "D: %u SPIs of %u bytes need %u bytes, %" G_GSIZE_FORMAT " present",
                              count, d->spi_len, (guint) count * d->spi_len, modike_reader_left (&r));
      return NULL;
    }
  for (guint i = 0; i < count; i++)
    {
      const guint8 *spi;
      if (!modike_reader_bytes (&r, d->spi_len, &spi))
        g_return_val_if_reached (NULL);
      g_ptr_array_add (d->spis, g_bytes_new (spi, d->spi_len));
    }
  return g_steal_pointer (&d);
}

void
modike_delete_payload_encode (const ModikeDeletePayload *d, GByteArray *out)
{
  guint count = d->spis ? d->spis->len : 0;

  g_warn_if_fail (count <= G_MAXUINT16);
  modike_put_u32 (out, d->doi);
  modike_put_u8 (out, d->protocol);
  modike_put_u8 (out, d->spi_len);
  modike_put_u16 (out, (guint16) count);
  for (guint i = 0; i < count; i++)
    {
      gsize len;
      const guint8 *spi = g_bytes_get_data (g_ptr_array_index (d->spis, i), &len);
      g_warn_if_fail (len == d->spi_len);
      modike_put_bytes (out, spi, len);
    }
}
