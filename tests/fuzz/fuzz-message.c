/* libFuzzer target for the ISAKMP codec. Parses the input as a datagram;
 * when it parses, every payload goes through its typed decoder and is
 * encoded again, and the re-encoded message must parse to the same bytes.
 * Inputs that are not a message are fed to one typed decoder, picked by
 * the first byte. Any invariant broken aborts (a finding). */
#include <modike/protocol.h>
#include <modike/reader.h>
#include <modike/payload.h>
#include <modike/message.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond) \
  do { if (!(cond)) abort (); } while (0)

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* memcmp must not see NULL, even for zero bytes (an empty GByteArray). */
static gboolean
same (const guint8 *a, gsize alen, const guint8 *b, gsize blen)
{
  return alen == blen && (alen == 0 || memcmp (a, b, alen) == 0);
}

/* Decodes a body by type and encodes it again; NULL if it does not decode.
 * Opaque bodies come back as they are. */
static GByteArray *
reencode_body (guint8 type, const guint8 *body, gsize len)
{
  g_autoptr (GByteArray) out = g_byte_array_new ();
  g_autoptr (GError) error = NULL;

  switch (type)
    {
    case MODIKE_PL_SA:
      {
        g_autoptr (ModikeSaPayload) sa = modike_sa_payload_parse (body, len, &error);
        if (sa == NULL)
          goto fail;
        modike_sa_payload_encode (sa, out);
        break;
      }
    case MODIKE_PL_ID:
      {
        g_autoptr (ModikeIdPayload) id = modike_id_payload_parse (body, len, &error);
        g_autofree char *text = NULL;
        if (id == NULL)
          goto fail;
        text = modike_id_payload_to_string (id);
        CHECK (text != NULL);
        modike_id_payload_encode (id, out);
        break;
      }
    case MODIKE_PL_CERT:
    case MODIKE_PL_CR:
      {
        g_autoptr (ModikeCertPayload) c = modike_cert_payload_parse (body, len, type == MODIKE_PL_CR, &error);
        if (c == NULL)
          goto fail;
        modike_cert_payload_encode (c, out);
        break;
      }
    case MODIKE_PL_N:
      {
        g_autoptr (ModikeNotifyPayload) n = modike_notify_payload_parse (body, len, &error);
        if (n == NULL)
          goto fail;
        modike_notify_payload_encode (n, out);
        break;
      }
    case MODIKE_PL_D:
      {
        g_autoptr (ModikeDeletePayload) d = modike_delete_payload_parse (body, len, &error);
        if (d == NULL)
          goto fail;
        modike_delete_payload_encode (d, out);
        break;
      }
    case MODIKE_PL_ATTR:
      {
        g_autoptr (ModikeAttrPayload) a = modike_attr_payload_parse (body, len, &error);
        if (a == NULL)
          goto fail;
        modike_attr_payload_encode (a, out);
        break;
      }
    case MODIKE_PL_NAT_OA:
    case MODIKE_PL_NAT_OA_DRAFT:
      {
        ModikeNatOaPayload oa;
        if (!modike_nat_oa_payload_parse (body, len, &oa, &error))
          goto fail;
        modike_nat_oa_payload_encode (&oa, out);
        break;
      }
    default:
      if (!modike_payload_validate (type, body, len, &error))
        goto fail;
      modike_put_bytes (out, body, len);
      break;
    }
  /* A successful decode agrees with the validator the chain walk uses. */
  CHECK (modike_payload_validate (type, body, len, NULL));
  return g_steal_pointer (&out);

fail:
  CHECK (error != NULL && error->domain == MODIKE_CODEC_ERROR && error->message[0] != '\0');
  CHECK (modike_codec_error_notify (error) != 0);
  CHECK (!modike_payload_validate (type, body, len, NULL));
  return NULL;
}

/* decode(encode(decode(x))) == decode(x), compared as encodings (reserved
 * bytes of x may be non-zero, so x itself need not come back). */
static void
check_body (guint8 type, const guint8 *body, gsize len)
{
  g_autoptr (GByteArray) once = reencode_body (type, body, len);
  g_autoptr (GByteArray) twice = NULL;

  if (once == NULL)
    return;
  twice = reencode_body (type, once->data, once->len);
  CHECK (twice != NULL);
  CHECK (same (once->data, once->len, twice->data, twice->len));
}

static GBytes *
reencode_message (const ModikeMessage *msg)
{
  g_autoptr (ModikeBuilder) b = modike_builder_new ();
  g_autoptr (GBytes) chain = NULL;
  ModikeHeader h = msg->hdr;

  for (guint i = 0; i < msg->payloads->len; i++)
    {
      const ModikePayload *p = &g_array_index (msg->payloads, ModikePayload, i);
      GByteArray *body = reencode_body (p->type, p->body, p->len);
      CHECK (body != NULL); /* the chain walk validated it */
      modike_builder_add_array (b, p->type, body);
    }
  chain = modike_builder_serialize (b, 0, &h.next_payload);
  return modike_message_encode (&h, g_bytes_get_data (chain, NULL), g_bytes_get_size (chain));
}

static void
check_message (GBytes *packet)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (ModikeMessage) msg = modike_message_parse (packet, &error);
  g_autoptr (GBytes) re = NULL;
  g_autoptr (ModikeMessage) back = NULL;
  g_autoptr (GBytes) re2 = NULL;
  ModikeHeader h;

  if (msg == NULL)
    {
      CHECK (error != NULL && error->domain == MODIKE_CODEC_ERROR);
      CHECK (modike_codec_error_notify (error) != 0);
      return;
    }
  CHECK (modike_header_parse (g_bytes_get_data (packet, NULL), g_bytes_get_size (packet), &h, NULL));
  CHECK (msg->payloads->len <= MODIKE_MAX_PAYLOADS);
  if (msg->hdr.flags & MODIKE_FLAG_ENCRYPTION)
    {
      /* Pretend the body was decrypted: the padded chain walk gets a go. */
      gsize len;
      const guint8 *body = modike_message_body (msg, &len);
      g_autoptr (GBytes) plain = g_bytes_new (body, len);
      if (!modike_message_set_plain (msg, plain, TRUE, &error))
        {
          CHECK (error != NULL && msg->payloads->len == 0 && msg->plain == NULL);
          return;
        }
      CHECK (msg->plain == plain);
    }
  for (guint i = 0; i < msg->payloads->len; i++)
    {
      const ModikePayload *p = &g_array_index (msg->payloads, ModikePayload, i);
      CHECK (modike_message_find_nth (msg, p->type, 0) != NULL);
      check_body (p->type, p->body, p->len);
    }
  if (msg->hdr.flags & MODIKE_FLAG_ENCRYPTION)
    return;
  re = reencode_message (msg);
  /* Padding after the chain is not a payload: it never comes back. */
  CHECK (g_bytes_get_size (re) <= g_bytes_get_size (packet));
  back = modike_message_parse (re, &error);
  CHECK (back != NULL);
  CHECK (back->payloads->len == msg->payloads->len);
  re2 = reencode_message (back);
  CHECK (g_bytes_equal (re, re2));
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr (GBytes) packet = g_bytes_new (data, size);
  ModikeReader r;
  guint8 type;
  const guint8 *body;
  gsize len;

  check_message (packet);

  /* The same bytes as a typed body: first byte = payload type. */
  modike_reader_init (&r, data, size);
  if (modike_reader_u8 (&r, &type))
    {
      g_autofree guint8 *copy = NULL;
      len = modike_reader_left (&r);
      if (!modike_reader_bytes (&r, len, &body))
        abort ();
      copy = len ? g_memdup2 (body, len) : g_malloc (1); /* exact size, so ASan sees over-reads */
      check_body (type, copy, len);
      {
        g_autoptr (GArray) attrs = modike_attr_array_new ();
        if (modike_attrs_parse (copy, len, attrs, NULL))
          {
            g_autoptr (GByteArray) out = g_byte_array_new ();
            modike_attrs_encode (attrs, out);
            CHECK (same (out->data, out->len, copy, len));
          }
        else
          CHECK (attrs->len == 0);
      }
    }
  return 0;
}
