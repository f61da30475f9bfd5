/* ISAKMP header, payload chain and chain builder (RFC 2408 3.1, 3.2). */
#include <modike/bytes.h>
#include <modike/message.h>
#include <modike/names.h>
#include <modike/payload.h>
#include <modike/reader.h>

#include <string.h>

#define CODEC_LOG_DOMAIN "modike-codec"

gboolean
modike_header_parse (const guint8 *data, gsize len, ModikeHeader *out, GError **error)
{
  ModikeHeader h = { 0 };
  ModikeReader r;

  modike_reader_init (&r, data, len);
  if (!modike_reader_copy (&r, h.icookie, sizeof h.icookie) || !modike_reader_copy (&r, h.rcookie, sizeof h.rcookie)
      || !modike_reader_u8 (&r, &h.next_payload) || !modike_reader_u8 (&r, &h.version)
      || !modike_reader_u8 (&r, &h.exchange) || !modike_reader_u8 (&r, &h.flags)
      || !modike_reader_u32 (&r, &h.msgid) || !modike_reader_u32 (&r, &h.length))
    {
      g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_TRUNCATED,
                   "header: datagram of %" G_GSIZE_FORMAT " bytes below %d", len, MODIKE_ISAKMP_HEADER_LEN);
      return FALSE;
    }
  /* Any minor version is taken (RFC 2408 5.1 lets a receiver accept it). */
  if ((h.version >> 4) != (MODIKE_ISAKMP_VERSION >> 4))
    {
      g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_BAD_VERSION,
                   "header: major version %u, expected 1", h.version >> 4);
      return FALSE;
    }
  if (len > MODIKE_MAX_MESSAGE)
    {
      g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_TOO_LONG,
                   "header: datagram of %" G_GSIZE_FORMAT " bytes above %d", len, MODIKE_MAX_MESSAGE);
      return FALSE;
    }
  if (h.length < MODIKE_ISAKMP_HEADER_LEN || h.length != len)
    {
      g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_UNEQUAL_LENGTHS,
                   "header: length field %u, datagram %" G_GSIZE_FORMAT " bytes", h.length, len);
      return FALSE;
    }
  *out = h;
  return TRUE;
}

void
modike_header_encode (const ModikeHeader *hdr, guint8 out[MODIKE_ISAKMP_HEADER_LEN])
{
  /* Fixed layout into the caller's buffer: no allocation per packet. */
  guint32 msgid = GUINT32_TO_BE (hdr->msgid), length = GUINT32_TO_BE (hdr->length);

  G_STATIC_ASSERT (MODIKE_ISAKMP_HEADER_LEN == 28);
  memcpy (out, hdr->icookie, 8);
  memcpy (out + 8, hdr->rcookie, 8);
  out[16] = hdr->next_payload;
  out[17] = hdr->version;
  out[18] = hdr->exchange;
  out[19] = hdr->flags;
  memcpy (out + 20, &msgid, 4);
  memcpy (out + 24, &length, 4);
}

void
modike_message_free (ModikeMessage *msg)
{
  if (msg == NULL)
    return;
  g_clear_pointer (&msg->packet, g_bytes_unref);
  g_clear_pointer (&msg->plain, g_bytes_unref);
  g_clear_pointer (&msg->payloads, g_array_unref);
  g_free (msg);
}

const guint8 *
modike_message_body (const ModikeMessage *msg, gsize *len)
{
  ModikeReader r;
  gsize plen;
  const guint8 *data = g_bytes_get_data (msg->packet, &plen);
  const guint8 *body = NULL;

  modike_reader_init (&r, data, plen);
  if (!modike_reader_skip (&r, MODIKE_ISAKMP_HEADER_LEN)
      || !modike_reader_bytes (&r, modike_reader_left (&r), &body))
    {
      *len = 0;
      return NULL;
    }
  *len = plen - MODIKE_ISAKMP_HEADER_LEN;
  return body;
}

ModikeMessage *
modike_message_parse (GBytes *packet, GError **error)
{
  g_autoptr (ModikeMessage) msg = g_new0 (ModikeMessage, 1);
  gsize len;
  const guint8 *data;

  g_return_val_if_fail (packet != NULL, NULL);
  data = g_bytes_get_data (packet, &len);
  msg->payloads = g_array_new (FALSE, TRUE, sizeof (ModikePayload));
  g_array_set_clear_func (msg->payloads, (GDestroyNotify) modike_payload_clear);
  if (!modike_header_parse (data, len, &msg->hdr, error))
    return NULL;
  msg->packet = g_bytes_ref (packet);
  if (!(msg->hdr.flags & MODIKE_FLAG_ENCRYPTION))
    {
      g_autoptr (GBytes) plain = g_bytes_new_from_bytes (packet, MODIKE_ISAKMP_HEADER_LEN,
                                                         len - MODIKE_ISAKMP_HEADER_LEN);
      /* Some gateways pad plain messages too (to 4 bytes): the header
       * length covers that padding, so it is taken like cipher padding. */
      if (!modike_message_set_plain (msg, plain, TRUE, error))
        return NULL;
    }
  return g_steal_pointer (&msg);
}

/* For errors: "payload 3 (VID)". */
static const char *
type_name (guint8 type)
{
  const char *name = modike_payload_name (type);

  return name != NULL ? name : "unknown";
}

gboolean
modike_message_set_plain (ModikeMessage *msg, GBytes *plain, gboolean padded, GError **error)
{
  ModikeReader r;
  gsize len;
  const guint8 *data;
  guint8 type = msg->hdr.next_payload;
  guint n = 0;

  g_return_val_if_fail (plain != NULL, FALSE);
  g_array_set_size (msg->payloads, 0);
  g_clear_pointer (&msg->plain, g_bytes_unref);
  data = g_bytes_get_data (plain, &len);
  modike_reader_init (&r, data, len);
  while (type != MODIKE_PL_NONE)
    {
      ModikePayload pl = { .type = type };
      guint8 next, reserved;
      guint16 length;

      if (n == MODIKE_MAX_PAYLOADS)
        {
          g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_TOO_LONG,
                       "message: more than %d payloads", MODIKE_MAX_PAYLOADS);
          goto fail;
        }
      n++;
      if (!modike_reader_u8 (&r, &next) || !modike_reader_u8 (&r, &reserved) || !modike_reader_u16 (&r, &length))
        {
          g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_TRUNCATED,
                       "payload %u (%s, %u): header truncated (%" G_GSIZE_FORMAT " bytes left)",
                       n, type_name (type), type, modike_reader_left (&r));
          goto fail;
        }
      /* length >= 4 also rules out a chain that never advances. */
      if (length < MODIKE_PAYLOAD_HEADER_LEN)
        {
          g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_MALFORMED,
                       "payload %u (%s): length %u below %d", n, type_name (type), length, MODIKE_PAYLOAD_HEADER_LEN);
          goto fail;
        }
      pl.len = length - MODIKE_PAYLOAD_HEADER_LEN;
      if (!modike_reader_bytes (&r, pl.len, &pl.body))
        {
          g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_TRUNCATED,
                       "payload %u (%s): length %u past end (%" G_GSIZE_FORMAT " bytes left)",
                       n, type_name (type), length, modike_reader_left (&r) + MODIKE_PAYLOAD_HEADER_LEN);
          goto fail;
        }
      /* Decoded once here; handlers read the result (modike_payload_get_*). */
      if (!modike_payload_decode (&pl, error))
        goto fail;
      g_array_append_val (msg->payloads, pl);
      type = next;
    }
  /* Padding (cipher padding, or zeros some gateways append to plain
   * messages) may follow a complete chain when the caller allows it; it
   * stays out of every payload, hence out of HASH inputs. */
  if (modike_reader_left (&r) > 0)
    {
      if (!padded)
        {
          g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_MALFORMED,
                       "message: %" G_GSIZE_FORMAT " bytes after the last payload", modike_reader_left (&r));
          goto fail;
        }
      g_log (CODEC_LOG_DOMAIN, G_LOG_LEVEL_DEBUG, "message: %" G_GSIZE_FORMAT " bytes of padding after %u payloads",
             modike_reader_left (&r), n);
    }
  msg->plain = g_bytes_ref (plain);
  return TRUE;

fail:
  g_array_set_size (msg->payloads, 0);
  return FALSE;
}

const ModikePayload *
modike_message_find_nth (const ModikeMessage *msg, guint8 type, guint index)
{
  for (guint i = 0; i < msg->payloads->len; i++)
    {
      const ModikePayload *p = &g_array_index (msg->payloads, ModikePayload, i);
      if (p->type == type && index-- == 0)
        return p;
    }
  return NULL;
}

const ModikePayload *
modike_message_find (const ModikeMessage *msg, guint8 type)
{
  return modike_message_find_nth (msg, type, 0);
}

guint
modike_message_count (const ModikeMessage *msg, guint8 type)
{
  guint n = 0;

  for (guint i = 0; i < msg->payloads->len; i++)
    if (g_array_index (msg->payloads, ModikePayload, i).type == type)
      n++;
  return n;
}

/* ---- Builder ---- */

#define MAX_BODY (G_MAXUINT16 - MODIKE_PAYLOAD_HEADER_LEN)

typedef struct {
  guint8 type;
  GBytes *body;
} BuilderEntry;

struct _ModikeBuilder {
  GArray *entries; /* BuilderEntry */
};

static void
entry_clear (gpointer p)
{
  BuilderEntry *e = p;
  g_clear_pointer (&e->body, g_bytes_unref);
}

ModikeBuilder *
modike_builder_new (void)
{
  ModikeBuilder *b = g_new0 (ModikeBuilder, 1);
  b->entries = g_array_new (FALSE, TRUE, sizeof (BuilderEntry));
  g_array_set_clear_func (b->entries, entry_clear);
  return b;
}

void
modike_builder_free (ModikeBuilder *b)
{
  if (b == NULL)
    return;
  g_array_unref (b->entries);
  g_free (b);
}

guint
modike_builder_add (ModikeBuilder *b, guint8 type, const void *body, gsize len)
{
  BuilderEntry e = { .type = type };

  g_return_val_if_fail (body != NULL || len == 0, G_MAXUINT);
  g_return_val_if_fail (len <= MAX_BODY, G_MAXUINT);
  e.body = modike_bytes_new_wiped (body, len);
  g_array_append_val (b->entries, e);
  return b->entries->len - 1;
}

guint
modike_builder_add_array (ModikeBuilder *b, guint8 type, GByteArray *body)
{
  BuilderEntry e = { .type = type };

  g_return_val_if_fail (body != NULL, G_MAXUINT);
  if (body->len > MAX_BODY)
    {
      g_byte_array_unref (body);
      g_return_val_if_reached (G_MAXUINT);
    }
  {
    gsize n = body->len;

    e.body = modike_bytes_new_wiped_take (g_byte_array_steal (body, NULL), n);
    g_byte_array_unref (body);
  }
  g_array_append_val (b->entries, e);
  return b->entries->len - 1;
}

void
modike_builder_set_body (ModikeBuilder *b, guint index, const void *body, gsize len)
{
  BuilderEntry *e;

  g_return_if_fail (index < b->entries->len);
  g_return_if_fail (body != NULL || len == 0);
  g_return_if_fail (len <= MAX_BODY);
  e = &g_array_index (b->entries, BuilderEntry, index);
  g_bytes_unref (e->body);
  e->body = modike_bytes_new_wiped (body, len);
}

guint
modike_builder_count (const ModikeBuilder *b)
{
  return b->entries->len;
}

guint8
modike_builder_type (const ModikeBuilder *b, guint index)
{
  g_return_val_if_fail (index < b->entries->len, MODIKE_PL_NONE);
  return g_array_index (b->entries, BuilderEntry, index).type;
}

GBytes *
modike_builder_serialize (const ModikeBuilder *b, guint from, guint8 *first)
{
  g_autoptr (GByteArray) out = NULL;
  gsize total = 0, n;

  g_return_val_if_fail (from <= b->entries->len, NULL);
  /* Sized once, so no reallocation leaves an unwiped copy behind. */
  for (guint i = from; i < b->entries->len; i++)
    total += MODIKE_PAYLOAD_HEADER_LEN + g_bytes_get_size (g_array_index (b->entries, BuilderEntry, i).body);
  out = g_byte_array_sized_new (total);
  if (first != NULL)
    *first = from < b->entries->len ? g_array_index (b->entries, BuilderEntry, from).type : MODIKE_PL_NONE;
  for (guint i = from; i < b->entries->len; i++)
    {
      const BuilderEntry *e = &g_array_index (b->entries, BuilderEntry, i);
      gsize len;
      const guint8 *body = g_bytes_get_data (e->body, &len);
      guint8 next = i + 1 < b->entries->len ? g_array_index (b->entries, BuilderEntry, i + 1).type : MODIKE_PL_NONE;

      modike_put_u8 (out, next);
      modike_put_u8 (out, 0);
      modike_put_u16 (out, (guint16) (len + MODIKE_PAYLOAD_HEADER_LEN)); /* len <= MAX_BODY */
      modike_put_bytes (out, body, len);
    }
  n = out->len;
  return modike_bytes_new_wiped_take (g_byte_array_steal (out, NULL), n);
}

GBytes *
modike_message_encode (const ModikeHeader *hdr, const guint8 *body, gsize len)
{
  ModikeHeader h = *hdr;
  guint8 head[MODIKE_ISAKMP_HEADER_LEN];
  GByteArray *out;

  g_return_val_if_fail (body != NULL || len == 0, NULL);
  g_return_val_if_fail (len <= MODIKE_MAX_MESSAGE - MODIKE_ISAKMP_HEADER_LEN, NULL);
  h.length = (guint32) (MODIKE_ISAKMP_HEADER_LEN + len);
  modike_header_encode (&h, head);
  out = g_byte_array_sized_new ((guint) h.length);
  modike_put_bytes (out, head, sizeof head);
  modike_put_bytes (out, body, len);
  return g_byte_array_free_to_bytes (out);
}
