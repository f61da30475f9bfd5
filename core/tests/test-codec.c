/* Codec tests: reader, addresses, logging, every payload type, the message
 * chain and builder, packet vectors with truncation and bit-flip sweeps.
 *
 * The vectors under tests/vectors/codec/ are produced by this file:
 *   test-codec --write-vectors <repo>/tests/vectors/codec
 * and /codec/vectors/generated checks that the committed files still match. */
#define G_LOG_DOMAIN "modike-test"

#include <modike/protocol.h>
#include <modike/reader.h>
#include <modike/addr.h>
#include <modike/log.h>
#include <modike/payload.h>
#include <modike/message.h>
#include <modike/names.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

static GBytes *
hex_bytes (const char *hex)
{
  GByteArray *b = g_byte_array_new ();

  for (const char *p = hex; *p;)
    {
      guint8 v;
      if (g_ascii_isspace (*p))
        {
          p++;
          continue;
        }
      g_assert_true (g_ascii_isxdigit (p[0]) && g_ascii_isxdigit (p[1]));
      v = (guint8) (g_ascii_xdigit_value (p[0]) << 4 | g_ascii_xdigit_value (p[1]));
      g_byte_array_append (b, &v, 1);
      p += 2;
    }
  return g_byte_array_free_to_bytes (b);
}

#define assert_bytes_equal(a, b) \
  g_assert_cmpmem (g_bytes_get_data ((a), NULL), g_bytes_get_size (a), g_bytes_get_data ((b), NULL), g_bytes_get_size (b))

/* Every decoder input gets its own exact-size heap copy, so ASan or
 * valgrind flag any read past the end. */
static guint8 *
exact_copy (const guint8 *data, gsize len)
{
  return len ? g_memdup2 (data, len) : g_malloc (1);
}

static GBytes *
patch_u8 (GBytes *in, gsize off, guint8 v)
{
  GByteArray *a = g_bytes_unref_to_array (g_bytes_ref (in));
  g_assert_cmpuint (off, <, a->len);
  a->data[off] = v;
  return g_byte_array_free_to_bytes (a);
}

static GBytes *
patch_u16 (GBytes *in, gsize off, guint16 v)
{
  GByteArray *a = g_bytes_unref_to_array (g_bytes_ref (in));
  modike_patch_u16 (a, off, v);
  return g_byte_array_free_to_bytes (a);
}

static GBytes *
patch_u32 (GBytes *in, gsize off, guint32 v)
{
  GByteArray *a = g_bytes_unref_to_array (g_bytes_ref (in));
  g_assert_cmpuint (off + 4, <=, a->len);
  a->data[off] = (guint8) (v >> 24);
  a->data[off + 1] = (guint8) (v >> 16);
  a->data[off + 2] = (guint8) (v >> 8);
  a->data[off + 3] = (guint8) v;
  return g_byte_array_free_to_bytes (a);
}

static const guint8 icookie[8] = { 0x1f, 0x2e, 0x3d, 0x4c, 0x5b, 0x6a, 0x79, 0x88 };
static const guint8 rcookie[8] = { 0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6, 0x07, 0x18 };

static ModikeHeader
header (guint8 exchange, guint8 flags, guint32 msgid, gboolean with_rcookie)
{
  ModikeHeader h = { 0 };
  memcpy (h.icookie, icookie, 8);
  if (with_rcookie)
    memcpy (h.rcookie, rcookie, 8);
  h.version = MODIKE_ISAKMP_VERSION;
  h.exchange = exchange;
  h.flags = flags;
  h.msgid = msgid;
  return h;
}

/* Datagram from a builder's chain. */
static GBytes *
build_message (ModikeHeader h, const ModikeBuilder *b)
{
  g_autoptr (GBytes) chain = modike_builder_serialize (b, 0, &h.next_payload);
  return modike_message_encode (&h, g_bytes_get_data (chain, NULL), g_bytes_get_size (chain));
}

/* Datagram with a hand-made chain (for broken chains). */
static GBytes *
raw_message (guint8 first, GBytes *chain)
{
  ModikeHeader h = header (MODIKE_EX_MAIN, 0, 0, TRUE);
  h.next_payload = first;
  return modike_message_encode (&h, g_bytes_get_data (chain, NULL), g_bytes_get_size (chain));
}

static GByteArray *
filled (gsize len, guint8 seed)
{
  GByteArray *a = g_byte_array_sized_new ((guint) len);
  for (gsize i = 0; i < len; i++)
    modike_put_u8 (a, (guint8) (seed + i * 7));
  return a;
}

static void
add_filled (ModikeBuilder *b, guint8 type, gsize len, guint8 seed)
{
  modike_builder_add_array (b, type, filled (len, seed));
}

/* Decodes a known body and encodes it again; opaque bodies are copied. */
static GByteArray *
reencode_body (guint8 type, const guint8 *body, gsize len, GError **error)
{
  g_autoptr (GByteArray) out = g_byte_array_new ();

  switch (type)
    {
    case MODIKE_PL_SA:
      {
        g_autoptr (ModikeSaPayload) sa = modike_sa_payload_parse (body, len, error);
        if (!sa)
          return NULL;
        modike_sa_payload_encode (sa, out);
        break;
      }
    case MODIKE_PL_ID:
      {
        g_autoptr (ModikeIdPayload) id = modike_id_payload_parse (body, len, error);
        if (!id)
          return NULL;
        modike_id_payload_encode (id, out);
        break;
      }
    case MODIKE_PL_CERT:
    case MODIKE_PL_CR:
      {
        g_autoptr (ModikeCertPayload) c = modike_cert_payload_parse (body, len, type == MODIKE_PL_CR, error);
        if (!c)
          return NULL;
        modike_cert_payload_encode (c, out);
        break;
      }
    case MODIKE_PL_N:
      {
        g_autoptr (ModikeNotifyPayload) n = modike_notify_payload_parse (body, len, error);
        if (!n)
          return NULL;
        modike_notify_payload_encode (n, out);
        break;
      }
    case MODIKE_PL_D:
      {
        g_autoptr (ModikeDeletePayload) d = modike_delete_payload_parse (body, len, error);
        if (!d)
          return NULL;
        modike_delete_payload_encode (d, out);
        break;
      }
    case MODIKE_PL_ATTR:
      {
        g_autoptr (ModikeAttrPayload) a = modike_attr_payload_parse (body, len, error);
        if (!a)
          return NULL;
        modike_attr_payload_encode (a, out);
        break;
      }
    case MODIKE_PL_NAT_OA:
    case MODIKE_PL_NAT_OA_DRAFT:
      {
        ModikeNatOaPayload oa;
        if (!modike_nat_oa_payload_parse (body, len, &oa, error))
          return NULL;
        modike_nat_oa_payload_encode (&oa, out);
        break;
      }
    default:
      if (!modike_payload_validate (type, body, len, error))
        return NULL;
      modike_put_bytes (out, body, len);
      break;
    }
  return g_steal_pointer (&out);
}

/* encode(decode(packet)), every known payload through its typed codec. */
static GBytes *
reencode_message (GBytes *packet, GError **error)
{
  g_autoptr (ModikeMessage) msg = modike_message_parse (packet, error);
  g_autoptr (ModikeBuilder) b = modike_builder_new ();
  g_autoptr (GBytes) chain = NULL;
  ModikeHeader h;
  const guint8 *body;
  gsize len;

  if (msg == NULL)
    return NULL;
  h = msg->hdr;
  if (h.flags & MODIKE_FLAG_ENCRYPTION)
    {
      g_assert_null (msg->plain);
      g_assert_cmpuint (msg->payloads->len, ==, 0);
      body = modike_message_body (msg, &len);
      return modike_message_encode (&h, body, len);
    }
  for (guint i = 0; i < msg->payloads->len; i++)
    {
      const ModikePayload *p = &g_array_index (msg->payloads, ModikePayload, i);
      g_autofree guint8 *copy = exact_copy (p->body, p->len);
      GByteArray *re = reencode_body (p->type, copy, p->len, error);
      if (re == NULL)
        return NULL;
      modike_builder_add_array (b, p->type, re);
    }
  chain = modike_builder_serialize (b, 0, &h.next_payload);
  return modike_message_encode (&h, g_bytes_get_data (chain, NULL), g_bytes_get_size (chain));
}

static GBytes *
parse_ok_and_reencode (GBytes *packet)
{
  g_autoptr (GError) error = NULL;
  GBytes *re = reencode_message (packet, &error);
  g_assert_no_error (error);
  g_assert_nonnull (re);
  return re;
}

/* ------------------------------------------------------------------ */
/* Vector generator                                                    */

static GByteArray *
sa_phase1 (void)
{
  g_autoptr (ModikeSaPayload) sa = modike_sa_payload_new (MODIKE_DOI_IPSEC, MODIKE_SIT_IDENTITY_ONLY);
  ModikeProposal *p = modike_proposal_new (1, MODIKE_PROTO_ISAKMP, NULL, 0);
  ModikeTransform *t = modike_transform_new (1, MODIKE_KEY_IKE);
  GByteArray *out = g_byte_array_new ();

  modike_attr_add_tv (t->attrs, MODIKE_P1_ENCR, 7); /* AES-CBC */
  modike_attr_add_tv (t->attrs, MODIKE_P1_KEY_LENGTH, 256);
  modike_attr_add_tv (t->attrs, MODIKE_P1_HASH, 4); /* SHA2-256 */
  modike_attr_add_tv (t->attrs, MODIKE_P1_AUTH, MODIKE_AUTH_PSK);
  modike_attr_add_tv (t->attrs, MODIKE_P1_GROUP, 14);
  modike_attr_add_tv (t->attrs, MODIKE_P1_LIFE_TYPE, MODIKE_LIFE_SECONDS);
  modike_attr_add_number (t->attrs, MODIKE_P1_LIFE_DURATION, 86400); /* 4-byte TLV */
  g_ptr_array_add (p->transforms, t);
  t = modike_transform_new (2, MODIKE_KEY_IKE);
  modike_attr_add_tv (t->attrs, MODIKE_P1_ENCR, 5); /* 3DES */
  modike_attr_add_tv (t->attrs, MODIKE_P1_HASH, 2); /* SHA1 */
  modike_attr_add_tv (t->attrs, MODIKE_P1_AUTH, MODIKE_AUTH_XAUTH_INIT_PSK);
  modike_attr_add_tv (t->attrs, MODIKE_P1_GROUP, 2);
  modike_attr_add_tv (t->attrs, MODIKE_P1_LIFE_TYPE, MODIKE_LIFE_SECONDS);
  modike_attr_add_number (t->attrs, MODIKE_P1_LIFE_DURATION, 28800); /* fits: TV */
  g_ptr_array_add (p->transforms, t);
  g_ptr_array_add (sa->proposals, p);
  modike_sa_payload_encode (sa, out);
  return out;
}

static GByteArray *
sa_phase2 (void)
{
  static const guint8 spi1[4] = { 0xc0, 0x01, 0x02, 0x03 };
  static const guint8 cpi[2] = { 0x12, 0x34 };
  static const guint8 spi2[4] = { 0xc0, 0x04, 0x05, 0x06 };
  g_autoptr (ModikeSaPayload) sa = modike_sa_payload_new (MODIKE_DOI_IPSEC, MODIKE_SIT_IDENTITY_ONLY);
  ModikeProposal *p;
  ModikeTransform *t;
  GByteArray *out = g_byte_array_new ();

  /* Proposal 1: ESP AND IPCOMP (same number), proposal 2: ESP GCM. */
  p = modike_proposal_new (1, MODIKE_PROTO_ESP, spi1, 4);
  t = modike_transform_new (1, MODIKE_ESP_AES_CBC);
  modike_attr_add_tv (t->attrs, MODIKE_P2_ENCAP_MODE, MODIKE_ENCAP_TUNNEL);
  modike_attr_add_tv (t->attrs, MODIKE_P2_AUTH_ALG, MODIKE_AUTH_ALG_HMAC_SHA2_256);
  modike_attr_add_tv (t->attrs, MODIKE_P2_KEY_LENGTH, 128);
  modike_attr_add_tv (t->attrs, MODIKE_P2_LIFE_TYPE, MODIKE_LIFE_SECONDS);
  modike_attr_add_number (t->attrs, MODIKE_P2_LIFE_DURATION, 3600);
  modike_attr_add_tv (t->attrs, MODIKE_P2_LIFE_TYPE, MODIKE_LIFE_KILOBYTES);
  modike_attr_add_number (t->attrs, MODIKE_P2_LIFE_DURATION, 4608000);
  modike_attr_add_tv (t->attrs, MODIKE_P2_GROUP, 14);
  g_ptr_array_add (p->transforms, t);
  t = modike_transform_new (2, MODIKE_ESP_3DES);
  modike_attr_add_tv (t->attrs, MODIKE_P2_ENCAP_MODE, MODIKE_ENCAP_UDP_TUNNEL);
  modike_attr_add_tv (t->attrs, MODIKE_P2_AUTH_ALG, MODIKE_AUTH_ALG_HMAC_SHA1);
  g_ptr_array_add (p->transforms, t);
  t = modike_transform_new (3, MODIKE_ESP_NULL);
  modike_attr_add_tv (t->attrs, MODIKE_P2_AUTH_ALG, MODIKE_AUTH_ALG_HMAC_SHA2_512);
  g_ptr_array_add (p->transforms, t);
  g_ptr_array_add (sa->proposals, p);
  p = modike_proposal_new (1, MODIKE_PROTO_IPCOMP, cpi, 2);
  t = modike_transform_new (1, 2); /* IPCOMP_DEFLATE */
  g_ptr_array_add (p->transforms, t);
  g_ptr_array_add (sa->proposals, p);
  p = modike_proposal_new (2, MODIKE_PROTO_ESP, spi2, 4);
  t = modike_transform_new (1, MODIKE_ESP_AES_GCM_16);
  modike_attr_add_tv (t->attrs, MODIKE_P2_KEY_LENGTH, 256);
  modike_attr_add_tv (t->attrs, MODIKE_P2_ENCAP_MODE, MODIKE_ENCAP_TRANSPORT);
  g_ptr_array_add (p->transforms, t);
  g_ptr_array_add (sa->proposals, p);
  modike_sa_payload_encode (sa, out);
  return out;
}

static GByteArray *
id_body (guint8 type, guint8 protocol, guint16 port, const char *hex_or_text, gboolean text)
{
  g_autoptr (GBytes) data = text ? g_bytes_new (hex_or_text, strlen (hex_or_text)) : hex_bytes (hex_or_text);
  g_autoptr (ModikeIdPayload) id = modike_id_payload_new (type, protocol, port, g_bytes_get_data (data, NULL),
                                                          g_bytes_get_size (data));
  GByteArray *out = g_byte_array_new ();
  modike_id_payload_encode (id, out);
  return out;
}

static GByteArray *
notify_body (guint16 type, guint8 protocol, const guint8 *spi, guint8 spi_len, const char *data_hex)
{
  g_autoptr (ModikeNotifyPayload) n = g_new0 (ModikeNotifyPayload, 1);
  GByteArray *out = g_byte_array_new ();

  n->doi = MODIKE_DOI_IPSEC;
  n->protocol = protocol;
  n->type = type;
  n->spi_len = spi_len;
  if (spi_len)
    memcpy (n->spi, spi, spi_len);
  n->data = hex_bytes (data_hex);
  modike_notify_payload_encode (n, out);
  return out;
}

static GByteArray *
delete_body (guint8 protocol, guint8 spi_len, guint count)
{
  g_autoptr (ModikeDeletePayload) d = g_new0 (ModikeDeletePayload, 1);
  GByteArray *out = g_byte_array_new ();

  d->doi = MODIKE_DOI_IPSEC;
  d->protocol = protocol;
  d->spi_len = spi_len;
  d->spis = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  for (guint i = 0; i < count; i++)
    g_ptr_array_add (d->spis, g_byte_array_free_to_bytes (filled (spi_len, (guint8) (0x40 + i))));
  modike_delete_payload_encode (d, out);
  return out;
}

static GByteArray *
attr_body (void)
{
  g_autoptr (ModikeAttrPayload) a = g_new0 (ModikeAttrPayload, 1);
  GByteArray *out = g_byte_array_new ();
  static const guint8 v4[4] = { 10, 8, 0, 5 };

  a->type = 2; /* REPLY */
  a->identifier = 0xbeef;
  a->attrs = modike_attr_array_new ();
  modike_attr_add_tlv (a->attrs, 1, v4, 4);                      /* INTERNAL_IP4_ADDRESS */
  modike_attr_add_tlv (a->attrs, 3, NULL, 0);                    /* INTERNAL_IP4_DNS, empty */
  modike_attr_add_tlv (a->attrs, 7, (const guint8 *) "modike", 6); /* APPLICATION_VERSION */
  modike_attr_add_tv (a->attrs, 16520, 1);                        /* XAUTH_TYPE, TV */
  modike_attr_payload_encode (a, out);
  return out;
}

static GByteArray *
nat_oa_body (gboolean v6)
{
  ModikeNatOaPayload oa = { .id_type = v6 ? MODIKE_ID_IPV6_ADDR : MODIKE_ID_IPV4_ADDR };
  GByteArray *out = g_byte_array_new ();

  for (guint i = 0; i < 16; i++)
    oa.addr[i] = (guint8) (0x20 + i);
  modike_nat_oa_payload_encode (&oa, out);
  return out;
}

static GBytes *
vec_mm1 (void)
{
  g_autoptr (ModikeBuilder) b = modike_builder_new ();
  modike_builder_add_array (b, MODIKE_PL_SA, sa_phase1 ());
  add_filled (b, MODIKE_PL_VID, 16, 0x01);
  add_filled (b, MODIKE_PL_VID, 20, 0x02);
  return build_message (header (MODIKE_EX_MAIN, 0, 0, FALSE), b);
}

static GBytes *
vec_mm3 (void)
{
  g_autoptr (ModikeBuilder) b = modike_builder_new ();
  add_filled (b, MODIKE_PL_KE, 256, 0x11);
  add_filled (b, MODIKE_PL_NONCE, 32, 0x12);
  add_filled (b, MODIKE_PL_NAT_D, 32, 0x13);
  add_filled (b, MODIKE_PL_NAT_D, 32, 0x14);
  return build_message (header (MODIKE_EX_MAIN, 0, 0, TRUE), b);
}

static GBytes *
vec_am1_ipv6 (void)
{
  g_autoptr (ModikeBuilder) b = modike_builder_new ();
  modike_builder_add_array (b, MODIKE_PL_SA, sa_phase1 ());
  add_filled (b, MODIKE_PL_KE, 128, 0x21);
  add_filled (b, MODIKE_PL_NONCE, 8, 0x22);
  modike_builder_add_array (b, MODIKE_PL_ID,
                            id_body (MODIKE_ID_IPV6_ADDR, 17, 500, "20010db8000000000000000000000001", FALSE));
  add_filled (b, MODIKE_PL_VID, 16, 0x23);
  return build_message (header (MODIKE_EX_AGGRESSIVE, 0, 0, FALSE), b);
}

static GBytes *
vec_qm1 (void)
{
  g_autoptr (ModikeBuilder) b = modike_builder_new ();
  add_filled (b, MODIKE_PL_HASH, 32, 0x31);
  modike_builder_add_array (b, MODIKE_PL_SA, sa_phase2 ());
  add_filled (b, MODIKE_PL_NONCE, 256, 0x32);
  add_filled (b, MODIKE_PL_KE, 256, 0x33);
  modike_builder_add_array (b, MODIKE_PL_ID, id_body (MODIKE_ID_IPV4_ADDR_SUBNET, 0, 0, "c0000200ffffff00", FALSE));
  modike_builder_add_array (b, MODIKE_PL_ID, id_body (MODIKE_ID_IPV6_ADDR_RANGE, 6, 443,
                                                      "20010db8000000000000000000000001"
                                                      "20010db80000000000000000000000ff", FALSE));
  modike_builder_add_array (b, MODIKE_PL_NAT_OA, nat_oa_body (FALSE));
  modike_builder_add_array (b, MODIKE_PL_NAT_OA, nat_oa_body (TRUE));
  return build_message (header (MODIKE_EX_QUICK, 0, 0x12345678, TRUE), b);
}

static GBytes *
vec_info (void)
{
  g_autoptr (ModikeBuilder) b = modike_builder_new ();
  guint8 cookies[16];

  memcpy (cookies, icookie, 8);
  memcpy (cookies + 8, rcookie, 8);
  add_filled (b, MODIKE_PL_HASH, 20, 0x41);
  modike_builder_add_array (b, MODIKE_PL_N, notify_body (MODIKE_N_INITIAL_CONTACT, MODIKE_PROTO_ISAKMP, cookies, 16, ""));
  modike_builder_add_array (b, MODIKE_PL_N, notify_body (MODIKE_N_DPD_R_U_THERE, MODIKE_PROTO_ISAKMP, cookies, 16,
                                                         "00000007"));
  modike_builder_add_array (b, MODIKE_PL_N, notify_body (MODIKE_N_NO_PROPOSAL_CHOSEN, MODIKE_PROTO_ESP, NULL, 0, ""));
  modike_builder_add_array (b, MODIKE_PL_D, delete_body (MODIKE_PROTO_ESP, 4, 3));
  modike_builder_add_array (b, MODIKE_PL_D, delete_body (MODIKE_PROTO_ISAKMP, 16, 1));
  return build_message (header (MODIKE_EX_INFO, 0, 0xdeadbeef, TRUE), b);
}

static GBytes *
vec_txn_attr (void)
{
  g_autoptr (ModikeBuilder) b = modike_builder_new ();
  add_filled (b, MODIKE_PL_HASH, 32, 0x51);
  modike_builder_add_array (b, MODIKE_PL_ATTR, attr_body ());
  return build_message (header (MODIKE_EX_TRANSACTION, 0, 0x01020304, TRUE), b);
}

/* A self-signed Ed25519 certificate for "O=modike, CN=gw.example" and its
 * subject DN (made once with python3-cryptography). */
#define TEST_CERT_DER \
  "3081f83081aba003020102020101300506032b65703026310f300d060355040a0c066d6f64696b65311330110603" \
  "5504030c0a67772e6578616d706c65301e170d3234303130313030303030305a170d33343031303130303030" \
  "30305a3026310f300d060355040a0c066d6f64696b653113301106035504030c0a67772e6578616d706c6530" \
  "2a300506032b657003210003a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b830" \
  "0506032b6570034100e74040df44450ee13b06c267df80bac53f6ed8a2d475f7726f53b9f5162e6eb8b34f26" \
  "406569bb829a706db232014509ee07307e42ee935dd61a01cd62fa1101"
#define TEST_CERT_DN "3026310f300d060355040a0c066d6f64696b653113301106035504030c0a67772e6578616d706c65"

static GBytes *
vec_cert (void)
{
  g_autoptr (ModikeBuilder) b = modike_builder_new ();
  g_autoptr (GBytes) der = hex_bytes (TEST_CERT_DER);
  GByteArray *cert = g_byte_array_new ();
  GByteArray *cr = g_byte_array_new ();

  modike_builder_add_array (b, MODIKE_PL_ID, id_body (MODIKE_ID_DER_ASN1_DN, 17, 500, TEST_CERT_DN, FALSE));
  modike_put_u8 (cert, 4); /* X.509 signature */
  modike_put_bytes (cert, g_bytes_get_data (der, NULL), g_bytes_get_size (der));
  modike_builder_add_array (b, MODIKE_PL_CERT, cert);
  modike_put_u8 (cr, 4); /* any CA */
  modike_builder_add_array (b, MODIKE_PL_CR, cr);
  add_filled (b, MODIKE_PL_SIG, 256, 0x62);
  return build_message (header (MODIKE_EX_MAIN, 0, 0, TRUE), b);
}

static GBytes *
vec_ids (void)
{
  g_autoptr (ModikeBuilder) b = modike_builder_new ();
  modike_builder_add_array (b, MODIKE_PL_ID, id_body (MODIKE_ID_IPV4_ADDR, 17, 500, "c0000201", FALSE));
  modike_builder_add_array (b, MODIKE_PL_ID, id_body (MODIKE_ID_FQDN, 0, 0, "gw.example.org", TRUE));
  modike_builder_add_array (b, MODIKE_PL_ID, id_body (MODIKE_ID_USER_FQDN, 0, 0, "alice@example.org", TRUE));
  modike_builder_add_array (b, MODIKE_PL_ID, id_body (MODIKE_ID_KEY_ID, 0, 0, "0102030405060708090a", FALSE));
  modike_builder_add_array (b, MODIKE_PL_ID, id_body (MODIKE_ID_IPV4_ADDR_RANGE, 0, 0, "0a0000010a0000ff", FALSE));
  modike_builder_add_array (b, MODIKE_PL_ID, id_body (MODIKE_ID_IPV6_ADDR_SUBNET, 0, 0,
                                                      "20010db8000000000000000000000000"
                                                      "ffffffff000000000000000000000000", FALSE));
  modike_builder_add_array (b, MODIKE_PL_ID, id_body (MODIKE_ID_DER_ASN1_GN, 0, 0, "8206676174657761", FALSE));
  return build_message (header (MODIKE_EX_AGGRESSIVE, 0, 0, TRUE), b);
}

/* 14 payloads including an unknown type (200) kept as opaque. */
static GBytes *
vec_many (void)
{
  g_autoptr (ModikeBuilder) b = modike_builder_new ();
  modike_builder_add_array (b, MODIKE_PL_SA, sa_phase1 ());
  add_filled (b, MODIKE_PL_KE, 192, 0x71);
  add_filled (b, MODIKE_PL_NONCE, 16, 0x72);
  modike_builder_add_array (b, MODIKE_PL_ID, id_body (MODIKE_ID_FQDN, 17, 500, "peer.example", TRUE));
  add_filled (b, MODIKE_PL_HASH, 32, 0x73);
  for (guint i = 0; i < 5; i++)
    add_filled (b, MODIKE_PL_VID, 16, (guint8) (0x80 + i));
  add_filled (b, 200, 5, 0x74);
  add_filled (b, MODIKE_PL_NAT_D_DRAFT, 20, 0x75);
  add_filled (b, MODIKE_PL_NAT_D_DRAFT, 20, 0x76);
  modike_builder_add_array (b, MODIKE_PL_N, notify_body (MODIKE_N_INITIAL_CONTACT, MODIKE_PROTO_ISAKMP, NULL, 0, ""));
  return build_message (header (MODIKE_EX_AGGRESSIVE, 0, 0, FALSE), b);
}

static GBytes *
vec_vids (guint n)
{
  g_autoptr (ModikeBuilder) b = modike_builder_new ();
  for (guint i = 0; i < n; i++)
    add_filled (b, MODIKE_PL_VID, 4, (guint8) i);
  return build_message (header (MODIKE_EX_MAIN, 0, 0, TRUE), b);
}

static GBytes *
vec_encrypted (void)
{
  ModikeHeader h = header (MODIKE_EX_MAIN, MODIKE_FLAG_ENCRYPTION, 0, TRUE);
  g_autoptr (GByteArray) body = filled (64, 0x91);
  h.next_payload = MODIKE_PL_ID;
  return modike_message_encode (&h, body->data, body->len);
}

/* Error vectors: a valid message with one thing broken. */

static GBytes *
vec_hdr_truncated (void)
{
  g_autoptr (GBytes) m = vec_mm1 ();
  return g_bytes_new_from_bytes (m, 0, 20);
}

static GBytes *
vec_hdr_bad_version (void)
{
  g_autoptr (GBytes) m = vec_mm1 ();
  return patch_u8 (m, 17, 0x20);
}

static GBytes *
vec_hdr_trailing (void)
{
  g_autoptr (GBytes) m = vec_mm1 ();
  GByteArray *a = g_bytes_unref_to_array (g_bytes_ref (m));
  modike_put_u32 (a, 0);
  return g_byte_array_free_to_bytes (a);
}

static GBytes *
vec_hdr_length (int delta)
{
  g_autoptr (GBytes) m = vec_mm1 ();
  return patch_u32 (m, 24, (guint32) ((int) g_bytes_get_size (m) + delta));
}

static GBytes *
vec_payload_length (guint16 length, gsize body_len)
{
  g_autoptr (GByteArray) chain = g_byte_array_new ();
  g_autoptr (GByteArray) body = filled (body_len, 0xa1);
  g_autoptr (GBytes) c = NULL;

  modike_put_u8 (chain, MODIKE_PL_NONE);
  modike_put_u8 (chain, 0);
  modike_put_u16 (chain, length);
  modike_put_bytes (chain, body->data, body->len);
  c = g_bytes_new (chain->data, chain->len);
  return raw_message (MODIKE_PL_VID, c);
}

static GBytes *
vec_unterminated (void)
{
  g_autoptr (GBytes) m = vec_mm3 ();
  /* The last NAT-D says another payload follows; none does. */
  return patch_u8 (m, 28 + 4 + 256 + 4 + 32 + 4 + 32, MODIKE_PL_VID);
}

/* Offsets in vec_mm1: header 28, SA generic header 4, then the SA body:
 * doi 4, situation 4, proposal header 4, number/protocol/spi size/count 4,
 * first transform header. */
#define MM1_SA_BODY (28 + 4)
#define MM1_PROP_LEN (MM1_SA_BODY + 8 + 2)
#define MM1_TRANSFORM_COUNT (MM1_SA_BODY + 8 + 4 + 3)
#define MM1_T1_NEXT (MM1_SA_BODY + 8 + 8)

static GBytes *
vec_sa_count (void)
{
  g_autoptr (GBytes) m = vec_mm1 ();
  return patch_u8 (m, MM1_TRANSFORM_COUNT, 3);
}

static GBytes *
vec_sa_transform_next (void)
{
  g_autoptr (GBytes) m = vec_mm1 ();
  return patch_u8 (m, MM1_T1_NEXT, MODIKE_PL_P);
}

static GBytes *
vec_sa_proposal_len0 (void)
{
  g_autoptr (GBytes) m = vec_mm1 ();
  return patch_u16 (m, MM1_PROP_LEN, 0);
}

static GBytes *
vec_single (guint8 type, GByteArray *body)
{
  g_autoptr (ModikeBuilder) b = modike_builder_new ();
  modike_builder_add_array (b, type, body);
  return build_message (header (MODIKE_EX_INFO, 0, 0x1000, TRUE), b);
}

static GBytes *
vec_n_spi17 (void)
{
  GByteArray *n = g_byte_array_new ();
  modike_put_u32 (n, MODIKE_DOI_IPSEC);
  modike_put_u8 (n, MODIKE_PROTO_ISAKMP);
  modike_put_u8 (n, 17);
  modike_put_u16 (n, MODIKE_N_INITIAL_CONTACT);
  {
    g_autoptr (GByteArray) spi = filled (17, 0xb1);
    modike_put_bytes (n, spi->data, spi->len);
  }
  return vec_single (MODIKE_PL_N, n);
}

static GBytes *
vec_d_count (void)
{
  GByteArray *d = delete_body (MODIKE_PROTO_ESP, 4, 2);
  modike_patch_u16 (d, 6, 3);
  return vec_single (MODIKE_PL_D, d);
}

static GBytes *
vec_attr_tlv_past_end (void)
{
  GByteArray *a = g_byte_array_new ();
  modike_put_u8 (a, 1);
  modike_put_u8 (a, 0);
  modike_put_u16 (a, 7);
  modike_put_u16 (a, 1);
  modike_put_u16 (a, 8);
  modike_put_u32 (a, 0x0a000001);
  return vec_single (MODIKE_PL_ATTR, a);
}

static GBytes *
vec_nat_oa_5 (void)
{
  GByteArray *oa = nat_oa_body (FALSE);
  modike_put_u8 (oa, 0);
  return vec_single (MODIKE_PL_NAT_OA, oa);
}

/* A message with `n` bytes after its chain that the header length covers
 * (gateways pad plain messages to 4 bytes): zeros, or `fill` when non-zero. */
static GBytes *
vec_padded (GBytes *m, gsize n, guint8 fill)
{
  GByteArray *a = g_bytes_unref_to_array (m);

  for (gsize i = 0; i < n; i++)
    modike_put_u8 (a, fill != 0 ? (guint8) (fill + i * 0x35) : 0);
  modike_patch_u16 (a, 26, (guint16) a->len);
  return g_byte_array_free_to_bytes (a);
}

/* A chain whose last payload names one more, then zeros: the walk reads
 * the padding as a payload header and must not take it as padding. */
static GBytes *
vec_pad_unterminated (gsize n)
{
  return vec_padded (vec_unterminated (), n, 0);
}

/* outcome: VECTOR_OK, or the ModikeCodecError the parse must fail with. */
#define VECTOR_OK (-1)

typedef struct {
  const char *file;
  gint outcome;
  const char *what;
  GBytes *(*make) (void);
} GenVector;

static GBytes *vec_nonce7 (void) { return vec_single (MODIKE_PL_NONCE, filled (7, 1)); }
static GBytes *vec_nonce257 (void) { return vec_single (MODIKE_PL_NONCE, filled (257, 1)); }
static GBytes *vec_vids64 (void) { return vec_vids (64); }
static GBytes *vec_vids65 (void) { return vec_vids (65); }
static GBytes *vec_len_short (void) { return vec_hdr_length (-4); }
static GBytes *vec_len_long (void) { return vec_hdr_length (4); }
static GBytes *vec_pl_len0 (void) { return vec_payload_length (0, 8); }
static GBytes *vec_pl_len3 (void) { return vec_payload_length (3, 8); }
static GBytes *vec_pl_past_end (void) { return vec_payload_length (100, 20); }
static GBytes *
vec_id_mask (void)
{
  return vec_single (MODIKE_PL_ID, id_body (MODIKE_ID_IPV4_ADDR_SUBNET, 0, 0, "0a000000ff00ff00", FALSE));
}
static GBytes *
vec_id_range (void)
{
  return vec_single (MODIKE_PL_ID, id_body (MODIKE_ID_IPV4_ADDR_RANGE, 0, 0, "0a0000ff0a000001", FALSE));
}
static GBytes *vec_p_top (void) { return vec_single (MODIKE_PL_P, filled (8, 0)); }
static GBytes *vec_pad1 (void) { return vec_padded (vec_mm1 (), 1, 0); }
static GBytes *vec_pad2 (void) { return vec_padded (vec_mm3 (), 2, 0); }
static GBytes *vec_pad3 (void) { return vec_padded (vec_am1_ipv6 (), 3, 0); }
static GBytes *vec_pad3_nonzero (void) { return vec_padded (vec_info (), 3, 0xff); }
static GBytes *vec_pad4 (void) { return vec_padded (vec_am1_ipv6 (), 4, 0); }
static GBytes *
vec_pad_header (void)
{
  /* A well-formed VID payload after a chain that ended: padding all the same. */
  GByteArray *a = g_bytes_unref_to_array (vec_mm1 ());
  g_autoptr (GByteArray) vid = filled (8, 0x42);

  modike_put_u8 (a, MODIKE_PL_NONE);
  modike_put_u8 (a, 0);
  modike_put_u16 (a, 12);
  modike_put_bytes (a, vid->data, vid->len);
  modike_patch_u16 (a, 26, (guint16) a->len);
  return g_byte_array_free_to_bytes (a);
}
static GBytes *vec_pad64 (void) { return vec_padded (vec_qm1 (), 64, 0); }
static GBytes *vec_pad_unterminated3 (void) { return vec_pad_unterminated (3); }
static GBytes *vec_pad_unterminated8 (void) { return vec_pad_unterminated (8); }
static GBytes *
vec_pad_uncovered (void)
{
  /* Padding the header length does not cover. */
  g_autoptr (GBytes) m = vec_pad1 ();
  GByteArray *a = g_bytes_unref_to_array (g_bytes_ref (m));
  modike_put_u8 (a, 0);
  return g_byte_array_free_to_bytes (a);
}

static const GenVector gen_vectors[] = {
  { "mm1.bin", VECTOR_OK, "Main Mode 1: SA (1 proposal, 2 transforms, 4-byte lifetime TLV), 2 VIDs", vec_mm1 },
  { "mm3.bin", VECTOR_OK, "Main Mode 3: KE, NONCE, 2 NAT-D", vec_mm3 },
  { "am1-ipv6.bin", VECTOR_OK, "Aggressive 1: SA, KE, NONCE (8 bytes), ID IPV6_ADDR, VID", vec_am1_ipv6 },
  { "qm1.bin", VECTOR_OK, "Quick 1: HASH, SA (ESP+IPCOMP bundle, ESP; 3+1+1 transforms), NONCE 256, KE, ID subnet, ID IPv6 range, NAT-OA v4/v6", vec_qm1 },
  { "info.bin", VECTOR_OK, "Informational: HASH, 3 N (spi 16, DPD data, spi 0), D ESP x3, D ISAKMP", vec_info },
  { "txn-attr.bin", VECTOR_OK, "Transaction: HASH, ATTR REPLY with TLV (empty too) and TV attributes", vec_txn_attr },
  { "cert.bin", VECTOR_OK, "ID DER_ASN1_DN, CERT, empty CR, SIG", vec_cert },
  { "ids.bin", VECTOR_OK, "ID IPV4_ADDR, FQDN, USER_FQDN, KEY_ID, IPV4 range, IPV6 subnet, DER_ASN1_GN", vec_ids },
  { "many.bin", VECTOR_OK, "14 payloads incl. unknown type 200 and draft NAT-D", vec_many },
  { "vid-64.bin", VECTOR_OK, "64 payloads, the bound", vec_vids64 },
  { "encrypted.bin", VECTOR_OK, "encryption flag: body not parsed", vec_encrypted },
  { "pad-1.bin", VECTOR_OK, "Main Mode 1 padded with 1 zero byte the header length covers", vec_pad1 },
  { "pad-2.bin", VECTOR_OK, "Main Mode 3 padded with 2 zero bytes", vec_pad2 },
  { "pad-3.bin", VECTOR_OK, "Aggressive 1 padded with 3 zero bytes", vec_pad3 },
  { "pad-3-nonzero.bin", VECTOR_OK, "Informational padded with 3 non-zero bytes", vec_pad3_nonzero },
  { "pad-4.bin", VECTOR_OK, "Aggressive 1 padded with 4 zero bytes", vec_pad4 },
  { "pad-12-header.bin", VECTOR_OK, "Main Mode 1 padded with 12 bytes that form a VID payload", vec_pad_header },
  { "pad-64.bin", VECTOR_OK, "Quick 1 padded with 64 zero bytes", vec_pad64 },
  { "hdr-truncated.bin", MODIKE_CODEC_ERROR_TRUNCATED, "20 bytes, shorter than the header", vec_hdr_truncated },
  { "hdr-bad-version.bin", MODIKE_CODEC_ERROR_BAD_VERSION, "major version 2", vec_hdr_bad_version },
  { "hdr-trailing.bin", MODIKE_CODEC_ERROR_UNEQUAL_LENGTHS, "4 bytes after the length the header gives",
    vec_hdr_trailing },
  { "hdr-length-short.bin", MODIKE_CODEC_ERROR_UNEQUAL_LENGTHS, "header length 4 below the datagram", vec_len_short },
  { "hdr-length-long.bin", MODIKE_CODEC_ERROR_UNEQUAL_LENGTHS, "header length 4 above the datagram", vec_len_long },
  { "pl-len-0.bin", MODIKE_CODEC_ERROR_MALFORMED, "payload length 0", vec_pl_len0 },
  { "pl-len-3.bin", MODIKE_CODEC_ERROR_MALFORMED, "payload length 3", vec_pl_len3 },
  { "pl-past-end.bin", MODIKE_CODEC_ERROR_TRUNCATED, "payload length past the end", vec_pl_past_end },
  { "pl-unterminated.bin", MODIKE_CODEC_ERROR_TRUNCATED, "last payload names a next payload", vec_unterminated },
  { "vid-65.bin", MODIKE_CODEC_ERROR_TOO_LONG, "65 payloads, one over the bound", vec_vids65 },
  { "p-top-level.bin", MODIKE_CODEC_ERROR_BAD_PAYLOAD_TYPE, "proposal payload outside an SA", vec_p_top },
  { "sa-transform-count.bin", MODIKE_CODEC_ERROR_BAD_PROPOSAL, "proposal announces 3 transforms, 2 present",
    vec_sa_count },
  { "sa-transform-next.bin", MODIKE_CODEC_ERROR_BAD_PROPOSAL, "transform next payload 2", vec_sa_transform_next },
  { "sa-proposal-len-0.bin", MODIKE_CODEC_ERROR_MALFORMED, "proposal length 0", vec_sa_proposal_len0 },
  { "n-spi-17.bin", MODIKE_CODEC_ERROR_BAD_SPI, "notify spi size 17", vec_n_spi17 },
  { "nonce-7.bin", MODIKE_CODEC_ERROR_MALFORMED, "NONCE of 7 bytes", vec_nonce7 },
  { "nonce-257.bin", MODIKE_CODEC_ERROR_TOO_LONG, "NONCE of 257 bytes", vec_nonce257 },
  { "id-mask.bin", MODIKE_CODEC_ERROR_BAD_ID, "ID subnet with a non-contiguous mask", vec_id_mask },
  { "id-range.bin", MODIKE_CODEC_ERROR_BAD_ID, "ID range with start above end", vec_id_range },
  { "d-count.bin", MODIKE_CODEC_ERROR_MALFORMED, "delete count 3, 2 SPIs present", vec_d_count },
  { "attr-tlv-past-end.bin", MODIKE_CODEC_ERROR_TRUNCATED, "ATTR TLV length past the payload",
    vec_attr_tlv_past_end },
  { "nat-oa-5.bin", MODIKE_CODEC_ERROR_MALFORMED, "NAT-OA IPv4 with 5 address bytes", vec_nat_oa_5 },
  { "pad-uncovered.bin", MODIKE_CODEC_ERROR_UNEQUAL_LENGTHS, "1 byte of padding the header length does not cover",
    vec_pad_uncovered },
  { "pad-unterminated-3.bin", MODIKE_CODEC_ERROR_TRUNCATED, "last payload names a next one, 3 zero bytes follow",
    vec_pad_unterminated3 },
  { "pad-unterminated-8.bin", MODIKE_CODEC_ERROR_MALFORMED, "last payload names a next one, 8 zero bytes follow",
    vec_pad_unterminated8 },
};

static const char *const codec_error_names[] = {
  [MODIKE_CODEC_ERROR_TRUNCATED] = "TRUNCATED",
  [MODIKE_CODEC_ERROR_MALFORMED] = "MALFORMED",
  [MODIKE_CODEC_ERROR_TOO_LONG] = "TOO_LONG",
  [MODIKE_CODEC_ERROR_UNSUPPORTED] = "UNSUPPORTED",
  [MODIKE_CODEC_ERROR_BAD_VERSION] = "BAD_VERSION",
  [MODIKE_CODEC_ERROR_UNEQUAL_LENGTHS] = "UNEQUAL_LENGTHS",
  [MODIKE_CODEC_ERROR_BAD_ID] = "BAD_ID",
  [MODIKE_CODEC_ERROR_BAD_PROPOSAL] = "BAD_PROPOSAL",
  [MODIKE_CODEC_ERROR_BAD_SPI] = "BAD_SPI",
  [MODIKE_CODEC_ERROR_BAD_DOI] = "BAD_DOI",
  [MODIKE_CODEC_ERROR_BAD_SITUATION] = "BAD_SITUATION",
  [MODIKE_CODEC_ERROR_BAD_PROTOCOL] = "BAD_PROTOCOL",
  [MODIKE_CODEC_ERROR_BAD_PAYLOAD_TYPE] = "BAD_PAYLOAD_TYPE",
};

static const char *
codec_error_name (gint code)
{
  g_assert_true (code >= 0 && (gsize) code < G_N_ELEMENTS (codec_error_names) && codec_error_names[code] != NULL);
  return codec_error_names[code];
}

/* The code an index names ("UNEQUAL_LENGTHS"); -1 when it names none. */
static gint
codec_error_code (const char *name)
{
  for (gsize i = 0; i < G_N_ELEMENTS (codec_error_names); i++)
    if (codec_error_names[i] != NULL && g_str_equal (codec_error_names[i], name))
      return (gint) i;
  return -1;
}

static char *
gen_index (void)
{
  GString *s = g_string_new ("# <file> ok|error:<ModikeCodecError> <what>; made by core/tests/test-codec.c "
                              "--write-vectors\n");
  for (gsize i = 0; i < G_N_ELEMENTS (gen_vectors); i++)
    if (gen_vectors[i].outcome == VECTOR_OK)
      g_string_append_printf (s, "%s ok %s\n", gen_vectors[i].file, gen_vectors[i].what);
    else
      g_string_append_printf (s, "%s error:%s %s\n", gen_vectors[i].file, codec_error_name (gen_vectors[i].outcome),
                              gen_vectors[i].what);
  return g_string_free (s, FALSE);
}

static int
write_vectors (const char *dir)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *index = gen_index ();
  g_autofree char *ipath = g_build_filename (dir, "index.txt", NULL);

  for (gsize i = 0; i < G_N_ELEMENTS (gen_vectors); i++)
    {
      g_autoptr (GBytes) v = gen_vectors[i].make ();
      g_autofree char *path = g_build_filename (dir, gen_vectors[i].file, NULL);
      if (!g_file_set_contents (path, g_bytes_get_data (v, NULL), (gssize) g_bytes_get_size (v), &error))
        {
          g_printerr ("%s\n", error->message);
          return 1;
        }
    }
  if (!g_file_set_contents (ipath, index, -1, &error))
    {
      g_printerr ("%s\n", error->message);
      return 1;
    }
  return 0;
}

/* ------------------------------------------------------------------ */
/* Reader                                                              */

static void
test_reader (void)
{
  static const guint8 data[] = { 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09 };
  ModikeReader r, sub;
  guint8 u8;
  guint16 u16;
  guint32 u32;
  const guint8 *p;
  guint8 buf[4];

  modike_reader_init (&r, data, sizeof data);
  g_assert_true (modike_reader_u8 (&r, &u8));
  g_assert_cmpuint (u8, ==, 0x01);
  g_assert_true (modike_reader_u16 (&r, &u16));
  g_assert_cmpuint (u16, ==, 0x0203);
  g_assert_true (modike_reader_u32 (&r, &u32));
  g_assert_cmphex (u32, ==, 0x04050607);
  g_assert_cmpuint (modike_reader_left (&r), ==, 2);
  /* A failed read changes nothing. */
  g_assert_false (modike_reader_u32 (&r, &u32));
  g_assert_false (modike_reader_bytes (&r, 3, &p));
  g_assert_false (modike_reader_copy (&r, buf, 3));
  g_assert_false (modike_reader_sub (&r, 3, &sub));
  g_assert_false (modike_reader_skip (&r, 3));
  g_assert_cmpuint (modike_reader_left (&r), ==, 2);
  g_assert_true (modike_reader_sub (&r, 1, &sub));
  g_assert_cmpuint (modike_reader_left (&sub), ==, 1);
  g_assert_false (modike_reader_u16 (&sub, &u16));
  g_assert_true (modike_reader_u8 (&sub, &u8));
  g_assert_cmpuint (u8, ==, 0x08);
  g_assert_false (modike_reader_u8 (&sub, &u8));
  g_assert_true (modike_reader_copy (&r, buf, 1));
  g_assert_cmpuint (buf[0], ==, 0x09);
  g_assert_cmpuint (modike_reader_left (&r), ==, 0);
  g_assert_true (modike_reader_bytes (&r, 0, &p));
  g_assert_false (modike_reader_u8 (&r, &u8));

  /* Huge n must not wrap around. */
  modike_reader_init (&r, data, sizeof data);
  g_assert_false (modike_reader_skip (&r, G_MAXSIZE));
  g_assert_false (modike_reader_bytes (&r, G_MAXSIZE - 2, &p));
  modike_reader_init (&r, NULL, 0);
  g_assert_false (modike_reader_u8 (&r, &u8));
  g_assert_true (modike_reader_skip (&r, 0));
}

static void
test_writer (void)
{
  g_autoptr (GByteArray) a = g_byte_array_new ();
  static const guint8 want[] = { 0xab, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x99, 0x88 };

  modike_put_u8 (a, 0xab);
  modike_put_u16 (a, 0x1234);
  modike_put_u32 (a, 0xdeadbeef);
  modike_put_bytes (a, "\x01\x02", 2);
  modike_put_u16 (a, 0);
  modike_put_bytes (a, NULL, 0);
  modike_patch_u16 (a, 9, 0x9988);
  g_assert_cmpmem (a->data, a->len, want, sizeof want);
}

/* ------------------------------------------------------------------ */
/* Addresses and logging                                               */

static void
test_addr (void)
{
  g_autoptr (GError) error = NULL;
  ModikeAddr a, b;
  char buf[MODIKE_ADDR_STRLEN];
  struct sockaddr_storage ss;
  socklen_t sl;

  g_assert_true (modike_addr_parse ("192.0.2.1", 500, &a, &error));
  g_assert_no_error (error);
  g_assert_cmpint (a.family, ==, AF_INET);
  g_assert_cmpuint (modike_addr_len (&a), ==, 4);
  g_assert_cmpstr (modike_addr_format (&a, buf, sizeof buf), ==, "192.0.2.1[500]");
  g_assert_true (modike_addr_parse ("2001:db8::1", 4500, &b, &error));
  g_assert_cmpint (b.family, ==, AF_INET6);
  g_assert_cmpuint (modike_addr_len (&b), ==, 16);
  g_assert_cmpstr (modike_addr_format (&b, buf, sizeof buf), ==, "2001:db8::1[4500]");
  b.port = 0;
  g_assert_cmpstr (modike_addr_format (&b, buf, sizeof buf), ==, "2001:db8::1");
  g_assert_false (modike_addr_equal (&a, &b));
  g_assert_false (modike_addr_parse ("192.0.2.256", 0, &b, &error));
  g_assert_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE);
  g_clear_error (&error);
  g_assert_false (modike_addr_parse ("gw.example", 0, &b, &error));
  g_clear_error (&error);
  g_assert_false (modike_addr_parse ("", 0, &b, NULL));

  g_assert_true (modike_addr_parse ("192.0.2.1", 4500, &b, NULL));
  g_assert_true (modike_addr_equal_ip (&a, &b));
  g_assert_false (modike_addr_equal (&a, &b));
  b.port = 500;
  g_assert_true (modike_addr_equal (&a, &b));
  b.addr[3] = 2;
  g_assert_false (modike_addr_equal_ip (&a, &b));

  modike_addr_to_sockaddr (&a, &ss, &sl);
  g_assert_cmpuint (sl, ==, sizeof (struct sockaddr_in));
  g_assert_cmpuint (g_ntohs (((struct sockaddr_in *) &ss)->sin_port), ==, 500);
  memset (&b, 0, sizeof b);
  g_assert_true (modike_addr_from_sockaddr ((struct sockaddr *) &ss, sl, &b));
  g_assert_true (modike_addr_equal (&a, &b));
  g_assert_false (modike_addr_from_sockaddr ((struct sockaddr *) &ss, sl - 1, &b));

  g_assert_true (modike_addr_parse ("fe80::1:2", 500, &a, NULL));
  modike_addr_to_sockaddr (&a, &ss, &sl);
  g_assert_cmpuint (sl, ==, sizeof (struct sockaddr_in6));
  g_assert_true (modike_addr_from_sockaddr ((struct sockaddr *) &ss, sl, &b));
  g_assert_true (modike_addr_equal (&a, &b));
  g_assert_false (modike_addr_equal_ip (&a, &(ModikeAddr) { 0 }));

  memset (&a, 0, sizeof a);
  g_assert_cmpuint (modike_addr_len (&a), ==, 0);
  modike_addr_to_sockaddr (&a, &ss, &sl);
  g_assert_cmpuint (sl, ==, 0);
  g_assert_cmpstr (modike_addr_format (&a, buf, sizeof buf), ==, "(unset)");
}

static void
test_prefix (void)
{
  g_autoptr (GError) error = NULL;
  ModikePrefix p;
  ModikeAddr a;
  char buf[MODIKE_ADDR_STRLEN];

  g_assert_true (modike_prefix_parse ("198.51.100.0/24", &p, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (p.plen, ==, 24);
  g_assert_cmpstr (modike_addr_format (&p.net, buf, sizeof buf), ==, "198.51.100.0");
  g_assert_true (modike_addr_parse ("198.51.100.77", 0, &a, NULL));
  g_assert_true (modike_prefix_contains (&p, &a));
  g_assert_true (modike_addr_parse ("198.51.101.77", 0, &a, NULL));
  g_assert_false (modike_prefix_contains (&p, &a));
  g_assert_true (modike_addr_parse ("2001:db8::1", 0, &a, NULL));
  g_assert_false (modike_prefix_contains (&p, &a));

  g_assert_true (modike_prefix_parse ("2001:db8::/32", &p, &error));
  g_assert_cmpuint (p.plen, ==, 32);
  g_assert_true (modike_prefix_contains (&p, &a));
  g_assert_true (modike_addr_parse ("2001:db9::1", 0, &a, NULL));
  g_assert_false (modike_prefix_contains (&p, &a));

  /* Bare address: host prefix. */
  g_assert_true (modike_prefix_parse ("192.0.2.7", &p, NULL));
  g_assert_cmpuint (p.plen, ==, 32);
  g_assert_true (modike_addr_parse ("192.0.2.7", 0, &a, NULL));
  g_assert_true (modike_prefix_contains (&p, &a));
  a.addr[3] = 8;
  g_assert_false (modike_prefix_contains (&p, &a));
  g_assert_true (modike_prefix_parse ("2001:db8::5", &p, NULL));
  g_assert_cmpuint (p.plen, ==, 128);

  /* Odd lengths, /0 contains everything of the family. */
  g_assert_true (modike_prefix_parse ("10.128.0.0/9", &p, NULL));
  g_assert_true (modike_addr_parse ("10.255.1.1", 0, &a, NULL));
  g_assert_true (modike_prefix_contains (&p, &a));
  g_assert_true (modike_addr_parse ("10.127.1.1", 0, &a, NULL));
  g_assert_false (modike_prefix_contains (&p, &a));
  g_assert_true (modike_prefix_parse ("0.0.0.0/0", &p, NULL));
  g_assert_true (modike_prefix_contains (&p, &a));
  g_assert_true (modike_prefix_parse ("::/0", &p, NULL));
  g_assert_false (modike_prefix_contains (&p, &a));

  /* Host bits set are refused, not cleared. */
  g_assert_false (modike_prefix_parse ("198.51.100.1/24", &p, &error));
  g_assert_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE);
  g_clear_error (&error);
  g_assert_false (modike_prefix_parse ("2001:db8::1/64", &p, NULL));
  g_assert_false (modike_prefix_parse ("10.128.0.0/8", &p, NULL));
  g_assert_false (modike_prefix_parse ("10.0.0.0/33", &p, NULL));
  g_assert_false (modike_prefix_parse ("2001:db8::/129", &p, NULL));
  g_assert_false (modike_prefix_parse ("10.0.0.0/", &p, NULL));
  g_assert_false (modike_prefix_parse ("10.0.0.0/-1", &p, NULL));
  g_assert_false (modike_prefix_parse ("10.0.0.0/ 8", &p, NULL));
  g_assert_false (modike_prefix_parse ("10.0.0.0/8x", &p, NULL));
  g_assert_false (modike_prefix_parse ("10.0.0.0/0008", &p, NULL));
  g_assert_false (modike_prefix_parse ("/8", &p, NULL));
  g_assert_false (modike_prefix_parse ("host/8", &p, NULL));
}

static void
test_hex (void)
{
  static const guint8 d[] = { 0x00, 0x0f, 0xa5, 0xff };
  g_autofree char *h = modike_hex (d, sizeof d);
  g_autofree char *e = modike_hex (NULL, 0);

  g_assert_cmpstr (h, ==, "000fa5ff");
  g_assert_cmpstr (e, ==, "");
}

static void
tap_collect (GLogLevelFlags level, const char *domain, const char *message, gpointer user)
{
  g_string_append_printf (user, "%d %s %s\n", (int) level, domain, message);
}

static void
test_log_level (void)
{
  g_autoptr (GError) error = NULL;

  if (g_test_subprocess ())
    {
      g_assert_true (modike_log_set_level ("message", NULL));
      g_message ("shown-message");
      g_info ("hidden-info");
      g_log_structured ("other-domain", G_LOG_LEVEL_MESSAGE, "MESSAGE", "other-shown");
      g_assert_true (modike_log_set_level ("DEBUG", NULL));
      g_debug ("shown-debug");
      g_assert_true (modike_log_set_level ("error", NULL));
      g_message ("hidden-message");
      g_assert_true (modike_log_set_level ("info", NULL));
      g_info ("shown-info");
      g_debug ("hidden-debug");
      /* The tap sees what passes the threshold, of modike's domains only. */
      {
        g_autoptr (GString) seen = g_string_new (NULL);
        g_autofree char *want = g_strdup_printf ("%d " G_LOG_DOMAIN " tapped-1\n", (int) G_LOG_LEVEL_INFO);

        modike_log_set_tap (tap_collect, seen);
        g_info ("tapped-%d", 1);
        g_debug ("untapped-debug");
        g_log_structured ("other-domain", G_LOG_LEVEL_MESSAGE, "MESSAGE", "untapped-other");
        modike_log_set_tap (NULL, NULL);
        g_info ("untapped-after");
        g_assert_cmpstr (seen->str, ==, want);
      }
      return;
    }
  g_assert_false (modike_log_set_level ("verbose", &error));
  g_assert_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE);
  g_assert_false (modike_log_set_level (NULL, NULL));

  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
  g_test_trap_assert_stderr ("*shown-message*");
  g_test_trap_assert_stderr ("*other-shown*");
  /* GLib's standard streams writer puts info and debug on stdout. */
  g_test_trap_assert_stdout ("*shown-debug*");
  g_test_trap_assert_stdout ("*shown-info*");
  g_test_trap_assert_stderr_unmatched ("*hidden-*");
  g_test_trap_assert_stdout_unmatched ("*hidden-*");
}

/* ------------------------------------------------------------------ */
/* Attributes and SA                                                   */

static void
test_attrs (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GArray) attrs = modike_attr_array_new ();
  g_autoptr (GArray) back = modike_attr_array_new ();
  g_autoptr (GByteArray) out = g_byte_array_new ();
  g_autoptr (GBytes) want = hex_bytes ("8001 0007"              /* TV encr 7 */
                                       "000c 0004 00015180"     /* TLV lifetime 86400 */
                                       "800c 7080"              /* TV lifetime 28800 */
                                       "0010 0000"              /* TLV empty */
                                       "0011 0006 616263646566" /* TLV 6 bytes */
                                       "0012 0002 0102");       /* TLV 2 bytes */
  const ModikeAttr *a;
  guint8 *copy;

  modike_attr_add_tv (attrs, MODIKE_P1_ENCR, 7);
  modike_attr_add_number (attrs, MODIKE_P1_LIFE_DURATION, 86400);
  modike_attr_add_number (attrs, MODIKE_P1_LIFE_DURATION, 28800);
  modike_attr_add_tlv (attrs, 0x10, NULL, 0);
  modike_attr_add_tlv (attrs, 0x11, (const guint8 *) "abcdef", 6);
  modike_attr_add_tlv (attrs, 0x12, (const guint8 *) "\x01\x02", 2);
  modike_attrs_encode (attrs, out);
  g_assert_cmpmem (out->data, out->len, g_bytes_get_data (want, NULL), g_bytes_get_size (want));

  copy = exact_copy (out->data, out->len);
  g_assert_true (modike_attrs_parse (copy, out->len, back, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (back->len, ==, 6);
  a = modike_attrs_find (back, MODIKE_P1_LIFE_DURATION);
  g_assert_nonnull (a);
  g_assert_false (a->tv);
  g_assert_cmpuint (a->value, ==, 86400);
  g_assert_cmpuint (g_bytes_get_size (a->data), ==, 4);
  a = &g_array_index (back, ModikeAttr, 2);
  g_assert_true (a->tv);
  g_assert_cmpuint (a->value, ==, 28800);
  g_assert_null (a->data);
  a = modike_attrs_find (back, 0x10);
  g_assert_cmpuint (g_bytes_get_size (a->data), ==, 0);
  g_assert_cmpuint (a->value, ==, 0);
  g_assert_cmpuint (modike_attrs_find (back, 0x12)->value, ==, 0x0102);
  g_assert_null (modike_attrs_find (back, 0x13));
  g_byte_array_set_size (out, 0);
  modike_attrs_encode (back, out);
  g_assert_cmpmem (out->data, out->len, g_bytes_get_data (want, NULL), g_bytes_get_size (want));

  /* A TLV with data NULL encodes value as 4 bytes. */
  {
    g_autoptr (GArray) v = modike_attr_array_new ();
    ModikeAttr x = { .type = 2, .tv = FALSE, .value = 0x01020304, .data = NULL };
    g_array_append_val (v, x);
    g_byte_array_set_size (out, 0);
    modike_attrs_encode (v, out);
    g_assert_cmpmem (out->data, out->len, "\x00\x02\x00\x04\x01\x02\x03\x04", 8);
  }

  /* Every truncation fails and leaves the array as it was. */
  for (gsize len = 1; len < g_bytes_get_size (want); len++)
    {
      g_autofree guint8 *t = exact_copy (g_bytes_get_data (want, NULL), len);
      gboolean boundary = len == 4 || len == 12 || len == 16 || len == 20 || len == 30;
      guint before = back->len;
      gboolean ok = modike_attrs_parse (t, len, back, &error);
      g_assert_cmpint (ok, ==, boundary);
      if (!ok)
        {
          g_assert_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_TRUNCATED);
          g_assert_cmpuint (back->len, ==, before);
          g_clear_error (&error);
        }
    }
  g_free (copy);

  /* TLV length bounded by the body, even when the buffer goes on. */
  {
    static const guint8 big[] = { 0x00, 0x01, 0x00, 0x08, 1, 2, 3, 4, 5, 6, 7, 8 };
    g_autoptr (GArray) v = modike_attr_array_new ();
    g_assert_false (modike_attrs_parse (big, 8, v, &error));
    g_assert_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_TRUNCATED);
    g_assert_nonnull (strstr (error->message, "length 8 past end"));
    g_clear_error (&error);
    g_assert_true (modike_attrs_parse (big, 12, v, &error));
    g_assert_cmpuint (v->len, ==, 1);
  }
}

static GBytes *
sa_body_bytes (GByteArray *(*make) (void))
{
  return g_byte_array_free_to_bytes (make ());
}

static ModikeSaPayload *
sa_parse_bytes (GBytes *b, GError **error)
{
  g_autofree guint8 *c = exact_copy (g_bytes_get_data (b, NULL), g_bytes_get_size (b));
  return modike_sa_payload_parse (c, g_bytes_get_size (b), error);
}

static void
expect_sa_error (GBytes *b, gint code, const char *needle)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (ModikeSaPayload) sa = sa_parse_bytes (b, &error);

  g_assert_null (sa);
  g_assert_error (error, MODIKE_CODEC_ERROR, code);
  g_test_message ("%s", error->message);
  g_assert_true (g_str_has_prefix (error->message, "SA: "));
  if (needle)
    g_assert_nonnull (strstr (error->message, needle));
}

static void
test_sa_known_answer (void)
{
  /* Written out by hand from RFC 2408 3.4-3.6. */
  g_autoptr (GBytes) want = hex_bytes ("00000001 00000001"
                                       "0000001c 01010001"
                                       "00000014 01010000 80010007 000c0004 00015180");
  g_autoptr (ModikeSaPayload) sa = modike_sa_payload_new (MODIKE_DOI_IPSEC, MODIKE_SIT_IDENTITY_ONLY);
  g_autoptr (GByteArray) out = g_byte_array_new ();
  g_autoptr (GError) error = NULL;
  g_autoptr (ModikeSaPayload) back = NULL;
  ModikeProposal *p = modike_proposal_new (1, MODIKE_PROTO_ISAKMP, NULL, 0);
  ModikeTransform *t = modike_transform_new (1, MODIKE_KEY_IKE);

  modike_attr_add_tv (t->attrs, MODIKE_P1_ENCR, 7);
  modike_attr_add_number (t->attrs, MODIKE_P1_LIFE_DURATION, 86400);
  g_ptr_array_add (p->transforms, t);
  g_ptr_array_add (sa->proposals, p);
  modike_sa_payload_encode (sa, out);
  g_assert_cmpmem (out->data, out->len, g_bytes_get_data (want, NULL), g_bytes_get_size (want));

  back = sa_parse_bytes (want, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (back->doi, ==, 1);
  g_assert_cmpuint (back->proposals->len, ==, 1);
  p = g_ptr_array_index (back->proposals, 0);
  g_assert_cmpuint (p->protocol, ==, MODIKE_PROTO_ISAKMP);
  g_assert_cmpuint (p->spi_len, ==, 0);
  g_assert_cmpuint (p->transforms->len, ==, 1);
  t = g_ptr_array_index (p->transforms, 0);
  g_assert_cmpuint (t->id, ==, MODIKE_KEY_IKE);
  g_assert_cmpuint (modike_attrs_find (t->attrs, MODIKE_P1_LIFE_DURATION)->value, ==, 86400);
}

static void
test_sa_roundtrip (void)
{
  g_autoptr (GBytes) p1 = sa_body_bytes (sa_phase1);
  g_autoptr (GBytes) p2 = sa_body_bytes (sa_phase2);
  g_autoptr (GError) error = NULL;
  g_autoptr (ModikeSaPayload) sa = NULL;
  g_autoptr (GByteArray) out = g_byte_array_new ();
  ModikeProposal *p;
  ModikeTransform *t;

  sa = sa_parse_bytes (p1, &error);
  g_assert_no_error (error);
  p = g_ptr_array_index (sa->proposals, 0);
  g_assert_cmpuint (p->transforms->len, ==, 2);
  t = g_ptr_array_index (p->transforms, 1);
  g_assert_cmpuint (t->number, ==, 2);
  g_assert_cmpuint (modike_attrs_find (t->attrs, MODIKE_P1_AUTH)->value, ==, MODIKE_AUTH_XAUTH_INIT_PSK);
  modike_sa_payload_encode (sa, out);
  g_assert_cmpmem (out->data, out->len, g_bytes_get_data (p1, NULL), g_bytes_get_size (p1));
  g_clear_pointer (&sa, modike_sa_payload_free);

  sa = sa_parse_bytes (p2, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (sa->proposals->len, ==, 3);
  p = g_ptr_array_index (sa->proposals, 0);
  g_assert_cmpuint (p->protocol, ==, MODIKE_PROTO_ESP);
  g_assert_cmpuint (p->spi_len, ==, 4);
  g_assert_cmpmem (p->spi, 4, "\xc0\x01\x02\x03", 4);
  g_assert_cmpuint (p->transforms->len, ==, 3);
  t = g_ptr_array_index (p->transforms, 0);
  g_assert_cmpuint (t->attrs->len, ==, 8);
  g_assert_cmpuint (g_array_index (t->attrs, ModikeAttr, 6).value, ==, 4608000);
  p = g_ptr_array_index (sa->proposals, 1);
  g_assert_cmpuint (p->number, ==, 1);
  g_assert_cmpuint (p->protocol, ==, MODIKE_PROTO_IPCOMP);
  g_assert_cmpuint (p->spi_len, ==, 2);
  p = g_ptr_array_index (sa->proposals, 2);
  g_assert_cmpuint (p->number, ==, 2);
  g_byte_array_set_size (out, 0);
  modike_sa_payload_encode (sa, out);
  g_assert_cmpmem (out->data, out->len, g_bytes_get_data (p2, NULL), g_bytes_get_size (p2));

  /* Every truncation of an SA is an error (each chain must end exactly). */
  for (gsize len = 0; len < g_bytes_get_size (p2); len++)
    {
      g_autoptr (GBytes) t2 = g_bytes_new_from_bytes (p2, 0, len);
      g_autoptr (ModikeSaPayload) x = sa_parse_bytes (t2, &error);
      g_assert_null (x);
      g_assert_nonnull (error);
      g_clear_error (&error);
    }
}

static void
test_sa_negative (void)
{
  g_autoptr (GBytes) p1 = sa_body_bytes (sa_phase1);
  g_autoptr (GBytes) p2 = sa_body_bytes (sa_phase2);
  g_autoptr (GError) error = NULL;
  /* Offsets in the SA body. */
  const gsize prop = 8, prop_len = 10, count = 15, t1 = 16, t1_len = 18;

#define PATCHED(fn, base, off, v, code, needle) \
  G_STMT_START { g_autoptr (GBytes) x_ = fn ((base), (off), (v)); expect_sa_error (x_, (code), (needle)); } G_STMT_END

  /* Transform count mismatch: more announced, fewer announced, zero. */
  PATCHED (patch_u8, p1, count, 3, MODIKE_CODEC_ERROR_BAD_PROPOSAL, "3 transforms announced");
  PATCHED (patch_u8, p1, count, 1, MODIKE_CODEC_ERROR_BAD_PROPOSAL, "more present");
  PATCHED (patch_u8, p1, count, 0, MODIKE_CODEC_ERROR_BAD_PROPOSAL, "no transforms");
  /* Nested next-payload values. */
  PATCHED (patch_u8, p1, prop, MODIKE_PL_T, MODIKE_CODEC_ERROR_BAD_PROPOSAL, "next payload 3");
  PATCHED (patch_u8, p1, prop, MODIKE_PL_P, MODIKE_CODEC_ERROR_BAD_PROPOSAL, "announced but the SA ends");
  PATCHED (patch_u8, p1, t1, MODIKE_PL_P, MODIKE_CODEC_ERROR_BAD_PROPOSAL, "transform 1: next payload 2");
  PATCHED (patch_u8, p1, t1, MODIKE_PL_NONE, MODIKE_CODEC_ERROR_BAD_PROPOSAL, "1 present");
  /* Nested lengths: zero (would loop), below the minimum, past the end,
   * shorter than the content. */
  PATCHED (patch_u16, p1, prop_len, 0, MODIKE_CODEC_ERROR_MALFORMED, "proposal 1: length 0 below 8");
  PATCHED (patch_u16, p1, prop_len, 7, MODIKE_CODEC_ERROR_MALFORMED, "below 8");
  PATCHED (patch_u16, p1, prop_len, 0xffff, MODIKE_CODEC_ERROR_TRUNCATED, "past end");
  PATCHED (patch_u16, p1, t1_len, 0, MODIKE_CODEC_ERROR_MALFORMED, "transform 1: length 0 below 8");
  PATCHED (patch_u16, p1, t1_len, 4, MODIKE_CODEC_ERROR_MALFORMED, "below 8");
  PATCHED (patch_u16, p1, t1_len, 0xfff0, MODIKE_CODEC_ERROR_TRUNCATED, "past end");
  PATCHED (patch_u16, p1, t1_len, 10, MODIKE_CODEC_ERROR_TRUNCATED, "attribute 1");
  /* DOI and situation. */
  PATCHED (patch_u32, p1, 0, 2, MODIKE_CODEC_ERROR_BAD_DOI, "DOI 2");
  PATCHED (patch_u32, p1, 4, 2, MODIKE_CODEC_ERROR_BAD_SITUATION, "situation 0x2");
  /* SPI sizes: 17 for ISAKMP, 3 for ESP. */
  PATCHED (patch_u8, p1, prop + 6, 17, MODIKE_CODEC_ERROR_BAD_SPI, "spi size 17");
  PATCHED (patch_u8, p2, prop + 6, 3, MODIKE_CODEC_ERROR_BAD_SPI, "spi size 3");
  /* An SPI size in range that runs past the proposal. */
  PATCHED (patch_u8, p1, prop + 6, 16, MODIKE_CODEC_ERROR_BAD_PROPOSAL, NULL);
#undef PATCHED

  /* No proposal at all; trailing bytes after the last one. */
  {
    g_autoptr (GBytes) x = g_bytes_new_from_bytes (p1, 0, 8);
    expect_sa_error (x, MODIKE_CODEC_ERROR_BAD_PROPOSAL, "no proposal");
  }
  {
    GByteArray *a = g_bytes_unref_to_array (g_bytes_ref (p1));
    g_autoptr (GBytes) x = NULL;
    modike_put_u32 (a, 0);
    x = g_byte_array_free_to_bytes (a);
    expect_sa_error (x, MODIKE_CODEC_ERROR_BAD_PROPOSAL, "4 bytes after the last proposal");
  }
  /* Notify mapping of SA errors. */
  {
    g_autoptr (GBytes) x = patch_u8 (p1, count, 3);
    g_autoptr (ModikeSaPayload) sa = sa_parse_bytes (x, &error);
    g_assert_null (sa);
    g_assert_cmpuint (modike_codec_error_notify (error), ==, MODIKE_N_BAD_PROPOSAL_SYNTAX);
  }
}

/* ------------------------------------------------------------------ */
/* ID, CERT, N, D, ATTR, NAT-OA, opaque                                */

static ModikeIdPayload *
id_parse_hex (guint8 type, const char *hex, GError **error)
{
  g_autoptr (GBytes) data = hex_bytes (hex);
  g_autoptr (GByteArray) body = g_byte_array_new ();
  g_autofree guint8 *c = NULL;

  modike_put_u8 (body, type);
  modike_put_u8 (body, 17);
  modike_put_u16 (body, 500);
  modike_put_bytes (body, g_bytes_get_data (data, NULL), g_bytes_get_size (data));
  c = exact_copy (body->data, body->len);
  return modike_id_payload_parse (c, body->len, error);
}

static void
check_id (guint8 type, const char *hex, const char *text)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (ModikeIdPayload) id = id_parse_hex (type, hex, &error);
  g_autoptr (GBytes) data = hex_bytes (hex);
  g_autoptr (GByteArray) out = g_byte_array_new ();
  g_autofree char *s = NULL;

  g_assert_no_error (error);
  g_assert_nonnull (id);
  g_assert_cmpuint (id->type, ==, type);
  g_assert_cmpuint (id->protocol, ==, 17);
  g_assert_cmpuint (id->port, ==, 500);
  assert_bytes_equal (id->data, data);
  s = modike_id_payload_to_string (id);
  g_assert_cmpstr (s, ==, text);
  modike_id_payload_encode (id, out);
  g_assert_cmpuint (out->len, ==, 4 + g_bytes_get_size (data));
  g_assert_cmpmem (out->data + 4, out->len - 4, g_bytes_get_data (data, NULL), g_bytes_get_size (data));
  {
    const guint8 head[4] = { type, 17, 0x01, 0xf4 };
    g_assert_cmpmem (out->data, 4, head, 4);
  }
}

static void
check_id_bad (guint8 type, const char *hex, const char *needle)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (ModikeIdPayload) id = id_parse_hex (type, hex, &error);

  g_assert_null (id);
  g_assert_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_BAD_ID);
  g_assert_cmpuint (modike_codec_error_notify (error), ==, MODIKE_N_INVALID_ID_INFORMATION);
  g_assert_true (g_str_has_prefix (error->message, "ID: "));
  g_assert_nonnull (strstr (error->message, needle));
}

static void
test_id (void)
{
  g_autoptr (GError) error = NULL;

  check_id (MODIKE_ID_IPV4_ADDR, "c0000201", "192.0.2.1");
  check_id (MODIKE_ID_IPV6_ADDR, "20010db8000000000000000000000001", "2001:db8::1");
  check_id (MODIKE_ID_IPV4_ADDR_SUBNET, "c6336400ffffff00", "198.51.100.0/24");
  check_id (MODIKE_ID_IPV4_ADDR_SUBNET, "0000000000000000", "0.0.0.0/0");
  check_id (MODIKE_ID_IPV6_ADDR_SUBNET, "20010db8000000000000000000000000ffffffff000000000000000000000000",
            "2001:db8::/32");
  check_id (MODIKE_ID_IPV6_ADDR_SUBNET, "20010db8000000000000000000000001ffffffffffffffffffffffffffffffff",
            "2001:db8::1/128");
  check_id (MODIKE_ID_IPV4_ADDR_RANGE, "0a0000010a0000ff", "10.0.0.1-10.0.0.255");
  check_id (MODIKE_ID_IPV4_ADDR_RANGE, "0a0000010a000001", "10.0.0.1-10.0.0.1");
  check_id (MODIKE_ID_IPV6_ADDR_RANGE, "20010db800000000000000000000000120010db8000000000000000000000009",
            "2001:db8::1-2001:db8::9");
  check_id (MODIKE_ID_FQDN, "67772e6578616d706c65", "gw.example");
  check_id (MODIKE_ID_USER_FQDN, "616c696365406578616d706c652e6f7267", "alice@example.org");
  check_id (MODIKE_ID_DER_ASN1_DN, "3011310f300d06035504031306676174657761", "DER_ASN1_DN:3011310f300d06035504031306676174657761");
  check_id (MODIKE_ID_DER_ASN1_GN, "820461626364", "DER_ASN1_GN:820461626364");
  check_id (MODIKE_ID_KEY_ID, "00ff10", "KEY_ID:00ff10");

  check_id_bad (MODIKE_ID_IPV4_ADDR, "c00002", "length 3, expected 4");
  check_id_bad (MODIKE_ID_IPV4_ADDR, "c000020101", "length 5, expected 4");
  check_id_bad (MODIKE_ID_IPV6_ADDR, "20010db80000000000000000000001", "length 15, expected 16");
  check_id_bad (MODIKE_ID_IPV4_ADDR_SUBNET, "c0000200ffffff", "length 7, expected 8");
  check_id_bad (MODIKE_ID_IPV4_ADDR_SUBNET, "c0000200ffff00ff", "not contiguous");
  check_id_bad (MODIKE_ID_IPV4_ADDR_SUBNET, "c00002007fffff00", "not contiguous");
  check_id_bad (MODIKE_ID_IPV6_ADDR_SUBNET, "20010db8000000000000000000000000ffffffff000000000000000000000001",
                "not contiguous");
  check_id_bad (MODIKE_ID_IPV4_ADDR_RANGE, "0a0000020a000001", "start above end");
  check_id_bad (MODIKE_ID_IPV6_ADDR_RANGE, "20010db800000000000000000000000920010db8000000000000000000000001",
                "start above end");
  check_id_bad (MODIKE_ID_IPV6_ADDR_RANGE, "20010db8000000000000000000000009", "expected 32");
  check_id_bad (MODIKE_ID_FQDN, "", "empty");
  check_id_bad (MODIKE_ID_FQDN, "67770065", "non-printable");
  check_id_bad (MODIKE_ID_USER_FQDN, "", "empty");
  check_id_bad (MODIKE_ID_USER_FQDN, "610a62", "non-printable");
  check_id_bad (MODIKE_ID_DER_ASN1_DN, "", "empty");
  check_id_bad (MODIKE_ID_KEY_ID, "", "empty");
  check_id_bad (0, "01020304", "type 0 unknown");
  check_id_bad (12, "01020304", "type 12 unknown");
  {
    g_autoptr (ModikeIdPayload) id = modike_id_payload_parse ((const guint8 *) "\x01\x00\x00", 3, &error);
    g_assert_null (id);
    g_assert_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_BAD_ID);
  }
}

static void
test_cert (void)
{
  g_autoptr (GError) error = NULL;
  static const guint8 cert[] = { 4, 0x30, 0x82, 0x01 };
  g_autoptr (ModikeCertPayload) c = modike_cert_payload_parse (cert, sizeof cert, FALSE, &error);
  g_autoptr (ModikeCertPayload) cr = NULL;
  g_autoptr (GByteArray) out = g_byte_array_new ();

  g_assert_no_error (error);
  g_assert_cmpuint (c->encoding, ==, 4);
  g_assert_cmpuint (g_bytes_get_size (c->data), ==, 3);
  modike_cert_payload_encode (c, out);
  g_assert_cmpmem (out->data, out->len, cert, sizeof cert);

  g_assert_null (modike_cert_payload_parse (cert, 1, FALSE, &error));
  g_assert_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_MALFORMED);
  g_assert_true (g_str_has_prefix (error->message, "CERT: "));
  g_clear_error (&error);
  cr = modike_cert_payload_parse (cert, 1, TRUE, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_bytes_get_size (cr->data), ==, 0);
  g_assert_null (modike_cert_payload_parse (cert, 0, TRUE, &error));
  g_assert_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_TRUNCATED);
  g_assert_true (g_str_has_prefix (error->message, "CR: "));
}

static void
test_notify (void)
{
  g_autoptr (GError) error = NULL;
  guint8 cookies[16];
  g_autoptr (GByteArray) body = NULL;
  g_autoptr (ModikeNotifyPayload) n = NULL;
  g_autoptr (GByteArray) out = g_byte_array_new ();
  g_autofree guint8 *c = NULL;

  memcpy (cookies, icookie, 8);
  memcpy (cookies + 8, rcookie, 8);
  body = notify_body (MODIKE_N_DPD_R_U_THERE, MODIKE_PROTO_ISAKMP, cookies, 16, "0000002a");
  g_assert_cmpuint (body->len, ==, 8 + 16 + 4);
  c = exact_copy (body->data, body->len);
  n = modike_notify_payload_parse (c, body->len, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (n->type, ==, MODIKE_N_DPD_R_U_THERE);
  g_assert_cmpuint (n->spi_len, ==, 16);
  g_assert_cmpmem (n->spi, 16, cookies, 16);
  g_assert_cmpmem (g_bytes_get_data (n->data, NULL), g_bytes_get_size (n->data), "\x00\x00\x00\x2a", 4);
  modike_notify_payload_encode (n, out);
  g_assert_cmpmem (out->data, out->len, body->data, body->len);

  /* Truncations: below 8 bytes, inside the SPI: errors; inside the data: shorter data. */
  for (gsize len = 0; len < body->len; len++)
    {
      g_autofree guint8 *t = exact_copy (body->data, len);
      g_autoptr (ModikeNotifyPayload) x = modike_notify_payload_parse (t, len, &error);
      if (len < 24)
        {
          g_assert_null (x);
          g_assert_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_TRUNCATED);
          g_assert_true (g_str_has_prefix (error->message, "N: "));
          g_clear_error (&error);
        }
      else
        g_assert_cmpuint (g_bytes_get_size (x->data), ==, len - 24);
    }

  /* spi size 17 */
  {
    GByteArray *b17 = g_byte_array_new ();
    g_autofree guint8 *t = NULL;
    modike_put_u32 (b17, 1);
    modike_put_u8 (b17, 1);
    modike_put_u8 (b17, 17);
    modike_put_u16 (b17, MODIKE_N_INITIAL_CONTACT);
    modike_put_bytes (b17, body->data + 8, 16);
    modike_put_u8 (b17, 0);
    t = exact_copy (b17->data, b17->len);
    g_assert_null (modike_notify_payload_parse (t, b17->len, &error));
    g_assert_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_BAD_SPI);
    g_assert_nonnull (strstr (error->message, "spi size 17"));
    g_clear_error (&error);
    g_byte_array_unref (b17);
  }
  /* DOI */
  body->data[3] = 7;
  g_assert_null (modike_notify_payload_parse (body->data, body->len, &error));
  g_assert_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_BAD_DOI);
  g_assert_cmpuint (modike_codec_error_notify (error), ==, MODIKE_N_DOI_NOT_SUPPORTED);
}

static void
test_delete (void)
{
  g_autoptr (GError) error = NULL;
  struct {
    guint8 protocol, spi_len;
    guint count;
  } good[] = { { MODIKE_PROTO_ESP, 4, 3 }, { MODIKE_PROTO_AH, 4, 1 }, { MODIKE_PROTO_ISAKMP, 16, 2 } };

  for (gsize i = 0; i < G_N_ELEMENTS (good); i++)
    {
      g_autoptr (GByteArray) body = delete_body (good[i].protocol, good[i].spi_len, good[i].count);
      g_autofree guint8 *c = exact_copy (body->data, body->len);
      g_autoptr (ModikeDeletePayload) d = modike_delete_payload_parse (c, body->len, &error);
      g_autoptr (GByteArray) out = g_byte_array_new ();

      g_assert_no_error (error);
      g_assert_cmpuint (d->spis->len, ==, good[i].count);
      g_assert_cmpuint (d->spi_len, ==, good[i].spi_len);
      g_assert_cmpuint (g_bytes_get_size (g_ptr_array_index (d->spis, 0)), ==, good[i].spi_len);
      modike_delete_payload_encode (d, out);
      g_assert_cmpmem (out->data, out->len, body->data, body->len);

      for (gsize len = 0; len < body->len; len++)
        {
          g_autofree guint8 *t = exact_copy (body->data, len);
          g_assert_null (modike_delete_payload_parse (t, len, &error));
          g_assert_nonnull (error);
          g_assert_true (g_str_has_prefix (error->message, "D: "));
          g_clear_error (&error);
        }
    }

  {
    g_autoptr (GByteArray) body = delete_body (MODIKE_PROTO_ESP, 4, 2);
    struct {
      gsize off;
      guint8 v;
      gint code;
      const char *needle;
    } bad[] = {
      { 5, 16, MODIKE_CODEC_ERROR_BAD_SPI, "spi size 16, expected 4" },
      { 5, 17, MODIKE_CODEC_ERROR_BAD_SPI, "spi size 17" },
      { 5, 0, MODIKE_CODEC_ERROR_BAD_SPI, "spi size 0" },
      { 4, MODIKE_PROTO_ISAKMP, MODIKE_CODEC_ERROR_BAD_SPI, "expected 16" },
      { 4, MODIKE_PROTO_IPCOMP, MODIKE_CODEC_ERROR_BAD_PROTOCOL, "protocol 4" },
      { 7, 0, MODIKE_CODEC_ERROR_MALFORMED, "no SPIs" },
      { 7, 1, MODIKE_CODEC_ERROR_MALFORMED, "need 4 bytes, 8 present" },
      { 7, 3, MODIKE_CODEC_ERROR_MALFORMED, "need 12 bytes, 8 present" },
      { 3, 0, MODIKE_CODEC_ERROR_BAD_DOI, "DOI 0" },
    };
    for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
      {
        g_autofree guint8 *c = exact_copy (body->data, body->len);
        c[bad[i].off] = bad[i].v;
        g_assert_null (modike_delete_payload_parse (c, body->len, &error));
        g_assert_error (error, MODIKE_CODEC_ERROR, bad[i].code);
        g_assert_nonnull (strstr (error->message, bad[i].needle));
        g_clear_error (&error);
      }
  }
}

static void
test_attr_payload (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GByteArray) body = attr_body ();
  g_autofree guint8 *c = exact_copy (body->data, body->len);
  g_autoptr (ModikeAttrPayload) a = modike_attr_payload_parse (c, body->len, &error);
  g_autoptr (GByteArray) out = g_byte_array_new ();

  g_assert_no_error (error);
  g_assert_cmpuint (a->type, ==, 2);
  g_assert_cmpuint (a->identifier, ==, 0xbeef);
  g_assert_cmpuint (a->attrs->len, ==, 4);
  g_assert_cmpuint (modike_attrs_find (a->attrs, 1)->value, ==, 0x0a080005);
  g_assert_cmpuint (g_bytes_get_size (modike_attrs_find (a->attrs, 3)->data), ==, 0);
  g_assert_true (modike_attrs_find (a->attrs, 16520)->tv);
  modike_attr_payload_encode (a, out);
  g_assert_cmpmem (out->data, out->len, body->data, body->len);

  c[0] = 5;
  g_assert_null (modike_attr_payload_parse (c, body->len, &error));
  g_assert_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_UNSUPPORTED);
  g_clear_error (&error);
  c[0] = 1;
  g_assert_null (modike_attr_payload_parse (c, body->len - 1, &error));
  g_assert_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_TRUNCATED);
  g_assert_true (g_str_has_prefix (error->message, "ATTR: "));
  g_clear_error (&error);
  g_assert_null (modike_attr_payload_parse (c, 3, &error));
  g_assert_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_TRUNCATED);
}

static void
test_nat_oa (void)
{
  g_autoptr (GError) error = NULL;

  for (int v6 = 0; v6 < 2; v6++)
    {
      g_autoptr (GByteArray) body = nat_oa_body (v6);
      g_autoptr (GByteArray) out = g_byte_array_new ();
      ModikeNatOaPayload oa;
      gsize alen = v6 ? 16 : 4;

      g_assert_cmpuint (body->len, ==, 4 + alen);
      g_assert_true (modike_nat_oa_payload_parse (body->data, body->len, &oa, &error));
      g_assert_no_error (error);
      g_assert_cmpuint (oa.id_type, ==, v6 ? MODIKE_ID_IPV6_ADDR : MODIKE_ID_IPV4_ADDR);
      g_assert_cmpmem (oa.addr, alen, body->data + 4, alen);
      modike_nat_oa_payload_encode (&oa, out);
      g_assert_cmpmem (out->data, out->len, body->data, body->len);

      /* Exactly 4 or 16 address bytes: one fewer or one more fails. */
      for (gsize len = 0; len <= body->len + 1; len++)
        {
          g_autofree guint8 *c = NULL;
          if (len == body->len)
            continue;
          c = g_malloc0 (MAX (len, 1));
          memcpy (c, body->data, MIN (len, body->len));
          g_assert_false (modike_nat_oa_payload_parse (c, len, &oa, &error));
          g_assert_nonnull (error);
          g_assert_true (g_str_has_prefix (error->message, "NAT-OA: "));
          g_clear_error (&error);
        }
      body->data[0] = MODIKE_ID_FQDN;
      g_assert_false (modike_nat_oa_payload_parse (body->data, body->len, &oa, &error));
      g_assert_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_UNSUPPORTED);
      g_clear_error (&error);
    }
}

static void
test_opaque (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GByteArray) n = filled (300, 1);

  g_assert_false (modike_opaque_payload_check (MODIKE_PL_NONCE, 7, &error));
  g_assert_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_MALFORMED);
  g_assert_cmpstr (error->message, ==, "NONCE: length 7 below 8");
  g_assert_cmpuint (modike_codec_error_notify (error), ==, MODIKE_N_PAYLOAD_MALFORMED);
  g_clear_error (&error);
  g_assert_true (modike_opaque_payload_check (MODIKE_PL_NONCE, 8, &error));
  g_assert_true (modike_opaque_payload_check (MODIKE_PL_NONCE, 256, &error));
  g_assert_false (modike_opaque_payload_check (MODIKE_PL_NONCE, 257, &error));
  g_assert_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_TOO_LONG);
  g_assert_cmpstr (error->message, ==, "NONCE: length 257 above 256");
  g_clear_error (&error);
  g_assert_true (modike_payload_validate (MODIKE_PL_NONCE, n->data, 8, NULL));
  g_assert_false (modike_payload_validate (MODIKE_PL_NONCE, n->data, 7, NULL));
  g_assert_false (modike_payload_validate (MODIKE_PL_NONCE, n->data, 257, NULL));

  {
    const guint8 types[] = { MODIKE_PL_KE, MODIKE_PL_HASH, MODIKE_PL_SIG, MODIKE_PL_VID, MODIKE_PL_NAT_D,
                             MODIKE_PL_NAT_D_DRAFT };
    for (gsize i = 0; i < sizeof types; i++)
      {
        g_assert_false (modike_payload_validate (types[i], NULL, 0, &error));
        g_assert_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_MALFORMED);
        g_assert_nonnull (strstr (error->message, ": empty"));
        g_clear_error (&error);
        g_assert_true (modike_payload_validate (types[i], n->data, 1, &error));
      }
  }
  /* Unknown types are opaque, even empty; P and T only inside an SA. */
  g_assert_true (modike_payload_validate (200, NULL, 0, &error));
  g_assert_true (modike_payload_validate (15, n->data, 3, &error));
  g_assert_no_error (error);
  g_assert_false (modike_payload_validate (MODIKE_PL_P, n->data, 8, &error));
  g_assert_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_BAD_PAYLOAD_TYPE);
  g_assert_cmpuint (modike_codec_error_notify (error), ==, MODIKE_N_INVALID_PAYLOAD_TYPE);
  g_clear_error (&error);
  g_assert_false (modike_payload_validate (MODIKE_PL_T, n->data, 8, NULL));
  g_assert_false (modike_payload_validate (MODIKE_PL_FRAG, n->data, 4, NULL));
  g_assert_true (modike_payload_validate (MODIKE_PL_FRAG, n->data, 5, NULL));
}

static void
test_error_notify (void)
{
  struct {
    gint code;
    guint16 notify;
  } map[] = {
    { MODIKE_CODEC_ERROR_TRUNCATED, MODIKE_N_PAYLOAD_MALFORMED },
    { MODIKE_CODEC_ERROR_MALFORMED, MODIKE_N_PAYLOAD_MALFORMED },
    { MODIKE_CODEC_ERROR_TOO_LONG, MODIKE_N_PAYLOAD_MALFORMED },
    { MODIKE_CODEC_ERROR_UNSUPPORTED, MODIKE_N_PAYLOAD_MALFORMED },
    { MODIKE_CODEC_ERROR_BAD_VERSION, MODIKE_N_INVALID_MAJOR_VERSION },
    { MODIKE_CODEC_ERROR_UNEQUAL_LENGTHS, MODIKE_N_UNEQUAL_PAYLOAD_LENGTHS },
    { MODIKE_CODEC_ERROR_BAD_ID, MODIKE_N_INVALID_ID_INFORMATION },
    { MODIKE_CODEC_ERROR_BAD_PROPOSAL, MODIKE_N_BAD_PROPOSAL_SYNTAX },
    { MODIKE_CODEC_ERROR_BAD_SPI, MODIKE_N_INVALID_SPI },
    { MODIKE_CODEC_ERROR_BAD_DOI, MODIKE_N_DOI_NOT_SUPPORTED },
    { MODIKE_CODEC_ERROR_BAD_SITUATION, MODIKE_N_SITUATION_NOT_SUPPORTED },
    { MODIKE_CODEC_ERROR_BAD_PROTOCOL, MODIKE_N_INVALID_PROTOCOL_ID },
    { MODIKE_CODEC_ERROR_BAD_PAYLOAD_TYPE, MODIKE_N_INVALID_PAYLOAD_TYPE },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (map); i++)
    {
      g_autoptr (GError) e = g_error_new (MODIKE_CODEC_ERROR, map[i].code, "x");
      g_autoptr (GError) copy = NULL;
      g_prefix_error (&e, "prefixed: ");
      copy = g_error_copy (e);
      g_assert_cmpuint (modike_codec_error_notify (e), ==, map[i].notify);
      g_assert_cmpuint (modike_codec_error_notify (copy), ==, map[i].notify);
    }
  {
    g_autoptr (GError) e = g_error_new (G_FILE_ERROR, G_FILE_ERROR_NOENT, "x");
    g_assert_cmpuint (modike_codec_error_notify (e), ==, MODIKE_N_PAYLOAD_MALFORMED);
  }
}

/* ------------------------------------------------------------------ */
/* Header, message, builder                                            */

static ModikeMessage *
parse_packet (GBytes *packet, GError **error)
{
  /* An exact-size copy so over-reads are caught. */
  g_autoptr (GBytes) c = g_bytes_new (g_bytes_get_data (packet, NULL), g_bytes_get_size (packet));
  return modike_message_parse (c, error);
}

/* Where the payload chain of a parsed message ends in its datagram: what
 * follows (up to the header length) is padding. Encrypted: the end. */
static gsize
chain_end (const ModikeMessage *msg)
{
  const ModikePayload *last;
  const guint8 *plain;

  if (msg->plain == NULL)
    return g_bytes_get_size (msg->packet);
  plain = g_bytes_get_data (msg->plain, NULL);
  if (msg->payloads->len == 0)
    return MODIKE_ISAKMP_HEADER_LEN;
  last = &g_array_index (msg->payloads, ModikePayload, msg->payloads->len - 1);
  return MODIKE_ISAKMP_HEADER_LEN + (gsize) (last->body + last->len - plain);
}

/* The datagram without its padding: what re-encoding a parse gives. */
static GBytes *
strip_padding (GBytes *packet)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (ModikeMessage) msg = modike_message_parse (packet, &error);
  g_autoptr (GBytes) cut = NULL;

  g_assert_no_error (error);
  cut = g_bytes_new_from_bytes (packet, 0, chain_end (msg));
  return patch_u32 (cut, 24, (guint32) g_bytes_get_size (cut));
}

/* A parsed chain agrees with the bytes it came from: the header names the
 * first payload, each generic header names the next one and its own
 * length, the bodies follow one another from the start of the body, and
 * the chain ends inside the datagram. */
static void
assert_chain_consistent (const ModikeMessage *msg)
{
  const guint8 *plain;
  gsize plen, off = 0;

  if (msg->hdr.flags & MODIKE_FLAG_ENCRYPTION)
    {
      g_assert_null (msg->plain);
      g_assert_cmpuint (msg->payloads->len, ==, 0);
      return;
    }
  g_assert_nonnull (msg->plain);
  plain = g_bytes_get_data (msg->plain, &plen);
  g_assert_cmpuint (plen, ==, g_bytes_get_size (msg->packet) - MODIKE_ISAKMP_HEADER_LEN);
  if (msg->payloads->len == 0)
    g_assert_cmpuint (msg->hdr.next_payload, ==, MODIKE_PL_NONE);
  else
    g_assert_cmpuint (msg->hdr.next_payload, ==, g_array_index (msg->payloads, ModikePayload, 0).type);
  for (guint i = 0; i < msg->payloads->len; i++)
    {
      const ModikePayload *p = &g_array_index (msg->payloads, ModikePayload, i);
      guint8 next = i + 1 < msg->payloads->len ? g_array_index (msg->payloads, ModikePayload, i + 1).type : 0;

      g_assert_cmpuint (off + MODIKE_PAYLOAD_HEADER_LEN + p->len, <=, plen);
      g_assert_true (p->body == plain + off + MODIKE_PAYLOAD_HEADER_LEN);
      g_assert_cmpuint (plain[off], ==, next);
      g_assert_cmpuint ((guint) plain[off + 2] << 8 | plain[off + 3], ==, p->len + MODIKE_PAYLOAD_HEADER_LEN);
      off += MODIKE_PAYLOAD_HEADER_LEN + p->len;
    }
}

/* The same payloads (types, lengths, offsets) as the original parse. */
static void
assert_same_layout (const ModikeMessage *a, const ModikeMessage *b)
{
  g_assert_cmpuint (a->payloads->len, ==, b->payloads->len);
  for (guint i = 0; i < a->payloads->len; i++)
    {
      const ModikePayload *p = &g_array_index (a->payloads, ModikePayload, i);
      const ModikePayload *q = &g_array_index (b->payloads, ModikePayload, i);

      g_assert_cmpuint (p->type, ==, q->type);
      g_assert_cmpuint (p->len, ==, q->len);
      g_assert_cmpuint (p->body - (const guint8 *) g_bytes_get_data (a->plain, NULL), ==,
                        q->body - (const guint8 *) g_bytes_get_data (b->plain, NULL));
    }
}

static void
expect_message_error (GBytes *packet, gint code, guint16 notify, const char *needle)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (ModikeMessage) msg = parse_packet (packet, &error);

  g_assert_null (msg);
  g_assert_error (error, MODIKE_CODEC_ERROR, code);
  g_test_message ("%s", error->message);
  if (notify)
    g_assert_cmpuint (modike_codec_error_notify (error), ==, notify);
  if (needle)
    g_assert_nonnull (strstr (error->message, needle));
}

static void
test_header (void)
{
  g_autoptr (GBytes) m = vec_mm1 ();
  g_autoptr (GError) error = NULL;
  ModikeHeader h;
  guint8 out[MODIKE_ISAKMP_HEADER_LEN];
  const guint8 *d = g_bytes_get_data (m, NULL);
  gsize len = g_bytes_get_size (m);

  g_assert_true (modike_header_parse (d, len, &h, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (h.icookie, 8, icookie, 8);
  g_assert_cmpuint (h.next_payload, ==, MODIKE_PL_SA);
  g_assert_cmpuint (h.version, ==, 0x10);
  g_assert_cmpuint (h.exchange, ==, MODIKE_EX_MAIN);
  g_assert_cmpuint (h.length, ==, len);
  modike_header_encode (&h, out);
  g_assert_cmpmem (out, sizeof out, d, sizeof out);

  for (gsize l = 0; l < MODIKE_ISAKMP_HEADER_LEN; l++)
    {
      g_autofree guint8 *c = exact_copy (d, l);
      g_assert_false (modike_header_parse (c, l, &h, &error));
      g_assert_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_TRUNCATED);
      g_clear_error (&error);
    }
  {
    g_autoptr (GBytes) x = vec_hdr_bad_version ();
    expect_message_error (x, MODIKE_CODEC_ERROR_BAD_VERSION, MODIKE_N_INVALID_MAJOR_VERSION, "major version 2");
  }
  {
    /* Minor version other than 0 is accepted. */
    g_autoptr (GBytes) x = patch_u8 (m, 17, 0x11);
    g_autoptr (ModikeMessage) msg = parse_packet (x, &error);
    g_assert_no_error (error);
    g_assert_cmpuint (msg->hdr.version, ==, 0x11);
  }
  {
    g_autoptr (GBytes) x = vec_hdr_trailing ();
    expect_message_error (x, MODIKE_CODEC_ERROR_UNEQUAL_LENGTHS, MODIKE_N_UNEQUAL_PAYLOAD_LENGTHS, "length field");
  }
  {
    g_autoptr (GBytes) x = vec_len_short ();
    expect_message_error (x, MODIKE_CODEC_ERROR_UNEQUAL_LENGTHS, MODIKE_N_UNEQUAL_PAYLOAD_LENGTHS, NULL);
  }
  {
    g_autoptr (GBytes) x = vec_len_long ();
    expect_message_error (x, MODIKE_CODEC_ERROR_UNEQUAL_LENGTHS, MODIKE_N_UNEQUAL_PAYLOAD_LENGTHS, NULL);
  }
  {
    /* Length field below 28, header only. */
    g_autoptr (GBytes) hdr_only = g_bytes_new_from_bytes (m, 0, 28);
    g_autoptr (GBytes) x = patch_u32 (hdr_only, 24, 20);
    expect_message_error (x, MODIKE_CODEC_ERROR_UNEQUAL_LENGTHS, 0, "length field 20");
  }
  {
    /* Header with no payloads at all is a valid (empty) chain. */
    ModikeHeader e = header (MODIKE_EX_INFO, 0, 1, TRUE);
    g_autoptr (GBytes) x = modike_message_encode (&e, NULL, 0);
    g_autoptr (ModikeMessage) msg = parse_packet (x, &error);
    g_assert_no_error (error);
    g_assert_cmpuint (msg->payloads->len, ==, 0);
    g_assert_cmpuint (g_bytes_get_size (x), ==, 28);
  }
}

static void
test_message_many (void)
{
  g_autoptr (GBytes) m = vec_many ();
  g_autoptr (GError) error = NULL;
  g_autoptr (ModikeMessage) msg = parse_packet (m, &error);
  g_autoptr (GBytes) re = NULL;
  const ModikePayload *p;
  gsize blen;
  const guint8 *body;

  g_assert_no_error (error);
  g_assert_cmpuint (msg->payloads->len, ==, 14);
  g_assert_cmpuint (modike_message_count (msg, MODIKE_PL_VID), ==, 5);
  g_assert_cmpuint (modike_message_count (msg, MODIKE_PL_NAT_D_DRAFT), ==, 2);
  g_assert_cmpuint (modike_message_count (msg, MODIKE_PL_CERT), ==, 0);
  g_assert_null (modike_message_find (msg, MODIKE_PL_CERT));
  p = modike_message_find (msg, 200);
  g_assert_nonnull (p);
  g_assert_cmpuint (p->len, ==, 5);
  p = modike_message_find_nth (msg, MODIKE_PL_VID, 3);
  g_assert_nonnull (p);
  g_assert_cmpuint (p->body[0], ==, 0x83);
  g_assert_null (modike_message_find_nth (msg, MODIKE_PL_VID, 5));
  p = modike_message_find (msg, MODIKE_PL_KE);
  g_assert_cmpuint (p->len, ==, 192);
  body = modike_message_body (msg, &blen);
  g_assert_cmpuint (blen, ==, g_bytes_get_size (m) - 28);
  g_assert_cmpmem (body, blen, (const guint8 *) g_bytes_get_data (m, NULL) + 28, blen);
  g_assert_nonnull (msg->plain);
  g_assert_cmpuint (g_bytes_get_size (msg->plain), ==, blen);

  re = parse_ok_and_reencode (m);
  assert_bytes_equal (re, m);
}

static void
test_message_bounds (void)
{
  {
    g_autoptr (GBytes) x = vec_vids (64);
    g_autoptr (GError) error = NULL;
    g_autoptr (ModikeMessage) msg = parse_packet (x, &error);
    g_assert_no_error (error);
    g_assert_cmpuint (msg->payloads->len, ==, 64);
  }
  {
    g_autoptr (GBytes) x = vec_vids (65);
    expect_message_error (x, MODIKE_CODEC_ERROR_TOO_LONG, MODIKE_N_PAYLOAD_MALFORMED, "more than 64 payloads");
  }
  {
    /* Payloads of length 4 chained to themselves: bounded by the count. */
    GByteArray *c = g_byte_array_new ();
    g_autoptr (GBytes) chain = NULL, x = NULL;
    for (guint i = 0; i < 100; i++)
      {
        modike_put_u8 (c, 200);
        modike_put_u8 (c, 0);
        modike_put_u16 (c, 4);
      }
    chain = g_byte_array_free_to_bytes (c);
    x = raw_message (200, chain);
    expect_message_error (x, MODIKE_CODEC_ERROR_TOO_LONG, 0, "more than 64");
  }
  {
    g_autoptr (GBytes) x = vec_pl_len0 ();
    expect_message_error (x, MODIKE_CODEC_ERROR_MALFORMED, MODIKE_N_PAYLOAD_MALFORMED, "payload 1 (VID): length 0 below 4");
  }
  {
    /* Header-only payloads: an empty VID is refused, an unknown type kept. */
    g_autoptr (GBytes) x = vec_payload_length (4, 0);
    g_autoptr (GBytes) c = hex_bytes ("00 00 0004");
    g_autoptr (GBytes) y = raw_message (200, c);
    g_autoptr (GError) error = NULL;
    g_autoptr (ModikeMessage) msg = NULL;
    expect_message_error (x, MODIKE_CODEC_ERROR_MALFORMED, 0, "VID: empty");
    msg = parse_packet (y, &error);
    g_assert_no_error (error);
    g_assert_cmpuint (modike_message_find (msg, 200)->len, ==, 0);
  }
  {
    g_autoptr (GBytes) x = vec_pl_len3 ();
    expect_message_error (x, MODIKE_CODEC_ERROR_MALFORMED, 0, "length 3 below 4");
  }
  {
    g_autoptr (GBytes) x = vec_pl_past_end ();
    expect_message_error (x, MODIKE_CODEC_ERROR_TRUNCATED, 0, "length 100 past end");
  }
  {
    g_autoptr (GBytes) x = vec_unterminated ();
    expect_message_error (x, MODIKE_CODEC_ERROR_TRUNCATED, 0, "payload 5 (VID, 13): header truncated");
  }
  {
    g_autoptr (GBytes) x = vec_p_top ();
    expect_message_error (x, MODIKE_CODEC_ERROR_BAD_PAYLOAD_TYPE, MODIKE_N_INVALID_PAYLOAD_TYPE, NULL);
  }
  {
    g_autoptr (GBytes) x = vec_nonce7 ();
    expect_message_error (x, MODIKE_CODEC_ERROR_MALFORMED, 0, "NONCE: length 7 below 8");
  }
  {
    g_autoptr (GBytes) x = vec_nonce257 ();
    expect_message_error (x, MODIKE_CODEC_ERROR_TOO_LONG, 0, "NONCE: length 257 above 256");
  }
  {
    g_autoptr (GBytes) x = vec_n_spi17 ();
    expect_message_error (x, MODIKE_CODEC_ERROR_BAD_SPI, 0, "N: spi size 17");
  }
  {
    g_autoptr (GBytes) x = vec_id_mask ();
    expect_message_error (x, MODIKE_CODEC_ERROR_BAD_ID, MODIKE_N_INVALID_ID_INFORMATION, NULL);
  }
  {
    g_autoptr (GBytes) x = vec_sa_count ();
    expect_message_error (x, MODIKE_CODEC_ERROR_BAD_PROPOSAL, MODIKE_N_BAD_PROPOSAL_SYNTAX,
                          "3 transforms announced");
  }
  {
    g_autoptr (GBytes) x = vec_sa_proposal_len0 ();
    expect_message_error (x, MODIKE_CODEC_ERROR_MALFORMED, 0, "proposal 1: length 0");
  }
  {
    /* Padding after the chain of an unencrypted message, covered by the
     * header length: taken, and kept out of every payload. */
    g_autoptr (GError) error = NULL;
    g_autoptr (GBytes) m3 = vec_mm3 ();
    g_autoptr (ModikeMessage) plain_msg = parse_packet (m3, &error);
    g_autoptr (GBytes) x = vec_padded (g_bytes_ref (m3), 4, 0);
    g_autoptr (ModikeMessage) msg = NULL;

    g_assert_no_error (error);
    msg = parse_packet (x, &error);
    g_assert_no_error (error);
    g_assert_cmpuint (g_bytes_get_size (msg->plain), ==, g_bytes_get_size (plain_msg->plain) + 4);
    g_assert_cmpuint (chain_end (msg), ==, g_bytes_get_size (m3));
    assert_same_layout (msg, plain_msg);
  }
  {
    /* The same bytes past the header length are not padding. */
    g_autoptr (GBytes) m3 = vec_mm3 ();
    GByteArray *a = g_bytes_unref_to_array (g_bytes_ref (m3));
    g_autoptr (GBytes) x = NULL;
    modike_put_u32 (a, 0);
    x = g_byte_array_free_to_bytes (a);
    expect_message_error (x, MODIKE_CODEC_ERROR_UNEQUAL_LENGTHS, MODIKE_N_UNEQUAL_PAYLOAD_LENGTHS, "length field");
  }
}

static void
test_message_encrypted (void)
{
  g_autoptr (GBytes) m = vec_encrypted ();
  g_autoptr (GError) error = NULL;
  g_autoptr (ModikeMessage) msg = parse_packet (m, &error);
  g_autoptr (ModikeBuilder) b = modike_builder_new ();
  g_autoptr (GBytes) chain = NULL;
  guint8 first;
  GByteArray *padded;
  g_autoptr (GBytes) plain = NULL;
  g_autoptr (GBytes) unpadded = NULL;
  gsize blen;

  g_assert_no_error (error);
  g_assert_true (msg->hdr.flags & MODIKE_FLAG_ENCRYPTION);
  g_assert_null (msg->plain);
  g_assert_cmpuint (msg->payloads->len, ==, 0);
  g_assert_nonnull (modike_message_body (msg, &blen));
  g_assert_cmpuint (blen, ==, 64);

  /* After decryption: ID, HASH, then cipher padding. */
  modike_builder_add_array (b, MODIKE_PL_ID, id_body (MODIKE_ID_IPV4_ADDR, 17, 500, "c0000201", FALSE));
  add_filled (b, MODIKE_PL_HASH, 20, 1);
  chain = modike_builder_serialize (b, 0, &first);
  g_assert_cmpuint (first, ==, MODIKE_PL_ID);
  padded = g_bytes_unref_to_array (g_bytes_ref (chain));
  for (guint8 i = 0; i < 7; i++)
    modike_put_u8 (padded, i);
  plain = g_byte_array_free_to_bytes (padded);
  g_assert_false (modike_message_set_plain (msg, plain, FALSE, &error));
  g_assert_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_MALFORMED);
  g_assert_null (msg->plain);
  g_assert_cmpuint (msg->payloads->len, ==, 0);
  g_clear_error (&error);
  g_assert_true (modike_message_set_plain (msg, plain, TRUE, &error));
  g_assert_no_error (error);
  g_assert_true (msg->plain == plain);
  g_assert_cmpuint (msg->payloads->len, ==, 2);
  g_assert_cmpuint (modike_message_find (msg, MODIKE_PL_HASH)->len, ==, 20);

  /* Padded, but the chain does not end inside plain. */
  unpadded = g_bytes_new_from_bytes (chain, 0, g_bytes_get_size (chain) - 1);
  g_assert_false (modike_message_set_plain (msg, unpadded, TRUE, &error));
  g_assert_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_TRUNCATED);
  g_assert_cmpuint (msg->payloads->len, ==, 0);
  g_clear_error (&error);
  /* A bad body inside the decrypted chain is found too. */
  {
    g_autoptr (GBytes) bad = patch_u8 (chain, 4, MODIKE_ID_IPV6_ADDR);
    g_assert_false (modike_message_set_plain (msg, bad, TRUE, &error));
    g_assert_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_BAD_ID);
  }
}

/* The chain parser keeps each typed payload's decoded form; the accessors
 * give it for their own type only, and NULL for opaque payloads. */
static void
test_message_decoded (void)
{
  g_autoptr (ModikeBuilder) b = modike_builder_new ();
  g_autoptr (GBytes) m = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (ModikeMessage) msg = NULL;
  GByteArray *body;
  ModikeDeletePayload d = { .doi = MODIKE_DOI_IPSEC, .protocol = MODIKE_PROTO_ESP, .spi_len = 4 };
  ModikeAttrPayload a = { .type = 2, .identifier = 7 };
  ModikeCertPayload c = { .encoding = 4 };
  ModikeNatOaPayload oa = { .id_type = MODIKE_ID_IPV4_ADDR, .addr = { 192, 0, 2, 9 } };
  const ModikePayload *p;
  const ModikeSaPayload *sa;
  const ModikeIdPayload *id;
  const ModikeNotifyPayload *n;
  const ModikeDeletePayload *dd;
  const ModikeAttrPayload *aa;
  const ModikeNatOaPayload *oo;
  gsize len;

  modike_builder_add_array (b, MODIKE_PL_SA, sa_phase1 ());
  add_filled (b, MODIKE_PL_KE, 128, 0x21);
  modike_builder_add_array (b, MODIKE_PL_ID, id_body (MODIKE_ID_FQDN, 17, 500, "peer.example", TRUE));
  modike_builder_add_array (b, MODIKE_PL_N, notify_body (MODIKE_N_INITIAL_CONTACT, MODIKE_PROTO_ISAKMP, NULL, 0, ""));
  d.spis = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  g_ptr_array_add (d.spis, g_bytes_new ("\x12\x34\x56\x78", 4));
  body = g_byte_array_new ();
  modike_delete_payload_encode (&d, body);
  modike_builder_add_array (b, MODIKE_PL_D, body);
  g_ptr_array_unref (d.spis);
  a.attrs = modike_attr_array_new ();
  modike_attr_add_tv (a.attrs, 1, 0x0a00);
  body = g_byte_array_new ();
  modike_attr_payload_encode (&a, body);
  modike_builder_add_array (b, MODIKE_PL_ATTR, body);
  g_array_unref (a.attrs);
  c.data = g_bytes_new ("cert", 4);
  body = g_byte_array_new ();
  modike_cert_payload_encode (&c, body);
  modike_builder_add_array (b, MODIKE_PL_CERT, body);
  g_bytes_unref (c.data);
  modike_builder_add (b, MODIKE_PL_CR, "\x04", 1);
  body = g_byte_array_new ();
  modike_nat_oa_payload_encode (&oa, body);
  modike_builder_add_array (b, MODIKE_PL_NAT_OA_DRAFT, body);
  m = build_message (header (MODIKE_EX_MAIN, 0, 0, TRUE), b);
  msg = parse_packet (m, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (msg->payloads->len, ==, 9);

  sa = modike_payload_get_sa (modike_message_find (msg, MODIKE_PL_SA));
  g_assert_nonnull (sa);
  g_assert_cmpuint (sa->doi, ==, MODIKE_DOI_IPSEC);
  g_assert_cmpuint (sa->proposals->len, ==, 1);
  /* The same pointer each time: decoded once, owned by the message. */
  g_assert_true (sa == modike_payload_get_sa (modike_message_find (msg, MODIKE_PL_SA)));
  id = modike_payload_get_id (modike_message_find (msg, MODIKE_PL_ID));
  g_assert_nonnull (id);
  g_assert_cmpuint (id->type, ==, MODIKE_ID_FQDN);
  g_assert_cmpuint (id->port, ==, 500);
  g_assert_cmpmem (g_bytes_get_data (id->data, &len), len, "peer.example", 12);
  n = modike_payload_get_notify (modike_message_find (msg, MODIKE_PL_N));
  g_assert_nonnull (n);
  g_assert_cmpuint (n->type, ==, MODIKE_N_INITIAL_CONTACT);
  dd = modike_payload_get_delete (modike_message_find (msg, MODIKE_PL_D));
  g_assert_nonnull (dd);
  g_assert_cmpuint (dd->spis->len, ==, 1);
  aa = modike_payload_get_attr (modike_message_find (msg, MODIKE_PL_ATTR));
  g_assert_nonnull (aa);
  g_assert_cmpuint (aa->identifier, ==, 7);
  g_assert_cmpuint (modike_attrs_find (aa->attrs, 1)->value, ==, 0x0a00);
  g_assert_cmpuint (modike_payload_get_cert (modike_message_find (msg, MODIKE_PL_CERT))->encoding, ==, 4);
  g_assert_cmpuint (g_bytes_get_size (modike_payload_get_cert (modike_message_find (msg, MODIKE_PL_CR))->data), ==, 0);
  oo = modike_payload_get_nat_oa (modike_message_find (msg, MODIKE_PL_NAT_OA_DRAFT));
  g_assert_nonnull (oo);
  g_assert_cmpmem (oo->addr, 4, oa.addr, 4);

  /* Wrong type, opaque payloads, no payload: NULL. */
  p = modike_message_find (msg, MODIKE_PL_SA);
  g_assert_null (modike_payload_get_id (p));
  g_assert_null (modike_payload_get_notify (p));
  g_assert_null (modike_payload_get_cert (modike_message_find (msg, MODIKE_PL_ID)));
  p = modike_message_find (msg, MODIKE_PL_KE);
  g_assert_cmpuint (p->len, ==, 128);
  g_assert_null (p->decoded);
  g_assert_null (modike_payload_get_sa (p));
  g_assert_null (modike_payload_get_sa (NULL));

  /* A chain set again replaces the decoded forms; a bad ID after a good SA
   * fails the whole chain and frees what was decoded already (the ASan
   * build checks both). */
  {
    ModikeHeader h = header (MODIKE_EX_MAIN, MODIKE_FLAG_ENCRYPTION, 0, TRUE);
    g_autoptr (ModikeBuilder) b2 = modike_builder_new ();
    g_autoptr (GBytes) packet = NULL;
    g_autoptr (GBytes) good = NULL;
    g_autoptr (GBytes) broken = NULL;
    guint8 first;

    modike_builder_add_array (b2, MODIKE_PL_SA, sa_phase1 ());
    modike_builder_add_array (b2, MODIKE_PL_N, notify_body (MODIKE_N_INITIAL_CONTACT, MODIKE_PROTO_ISAKMP, NULL, 0, ""));
    good = modike_builder_serialize (b2, 0, &first);
    h.next_payload = first;
    packet = modike_message_encode (&h, g_bytes_get_data (good, NULL), g_bytes_get_size (good));
    g_clear_pointer (&msg, modike_message_free);
    msg = parse_packet (packet, &error);
    g_assert_no_error (error);
    g_assert_true (modike_message_set_plain (msg, good, TRUE, &error));
    g_assert_true (modike_message_set_plain (msg, good, TRUE, &error));
    g_assert_no_error (error);
    g_assert_nonnull (modike_payload_get_sa (modike_message_find (msg, MODIKE_PL_SA)));
    modike_builder_add_array (b2, MODIKE_PL_ID, id_body (MODIKE_ID_IPV4_ADDR, 0, 0, "c00002", FALSE));
    broken = modike_builder_serialize (b2, 0, &first);
    g_assert_false (modike_message_set_plain (msg, broken, TRUE, &error));
    g_assert_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_BAD_ID);
    g_assert_cmpuint (msg->payloads->len, ==, 0);
  }
}

static void
test_builder (void)
{
  g_autoptr (ModikeBuilder) b = modike_builder_new ();
  g_autoptr (GBytes) chain = NULL;
  g_autoptr (GBytes) tail = NULL;
  g_autoptr (GBytes) empty = NULL;
  g_autoptr (GBytes) want = hex_bytes ("01 00 0008 00000000"     /* HASH, next SA */
                                       "0d 00 0005 aa"           /* SA (raw), next VID */
                                       "00 00 0006 0102");       /* VID */
  guint8 first = 0xff;

  g_assert_cmpuint (modike_builder_add (b, MODIKE_PL_HASH, "\0\0\0\0", 4), ==, 0);
  g_assert_cmpuint (modike_builder_add (b, MODIKE_PL_SA, "\xaa", 1), ==, 1);
  {
    GByteArray *v = g_byte_array_new ();
    modike_put_u16 (v, 0x0102);
    g_assert_cmpuint (modike_builder_add_array (b, MODIKE_PL_VID, v), ==, 2);
  }
  g_assert_cmpuint (modike_builder_count (b), ==, 3);
  g_assert_cmpuint (modike_builder_type (b, 1), ==, MODIKE_PL_SA);
  chain = modike_builder_serialize (b, 0, &first);
  g_assert_cmpuint (first, ==, MODIKE_PL_HASH);
  assert_bytes_equal (chain, want);

  /* HASH filled in afterwards: only its body changes. */
  modike_builder_set_body (b, 0, "\x11\x22\x33\x44\x55", 5);
  g_clear_pointer (&chain, g_bytes_unref);
  chain = modike_builder_serialize (b, 0, &first);
  g_assert_cmpmem (g_bytes_get_data (chain, NULL), 9, "\x01\x00\x00\x09\x11\x22\x33\x44\x55", 9);
  g_assert_cmpuint (g_bytes_get_size (chain), ==, 9 + 5 + 6);

  tail = modike_builder_serialize (b, 1, &first);
  g_assert_cmpuint (first, ==, MODIKE_PL_SA);
  g_assert_cmpuint (g_bytes_get_size (tail), ==, 11);
  empty = modike_builder_serialize (b, 3, &first);
  g_assert_cmpuint (first, ==, MODIKE_PL_NONE);
  g_assert_cmpuint (g_bytes_get_size (empty), ==, 0);

  {
    ModikeHeader h = header (MODIKE_EX_MAIN, 0, 0, TRUE);
    g_autoptr (GBytes) m = NULL;
    h.length = 999; /* ignored: encode fills in the real length */
    h.next_payload = MODIKE_PL_HASH;
    m = modike_message_encode (&h, g_bytes_get_data (chain, NULL), g_bytes_get_size (chain));
    g_assert_cmpuint (g_bytes_get_size (m), ==, 28 + 20);
    g_assert_cmpmem ((const guint8 *) g_bytes_get_data (m, NULL) + 24, 4, "\x00\x00\x00\x30", 4);
  }
}

/* ------------------------------------------------------------------ */
/* Vectors and sweeps                                                  */

/* Parses one mutated datagram: a codec error, or a parse whose chain agrees
 * with its bytes and whose re-encoding is stable; never a crash (ASan and
 * valgrind watch the exact-size copies). Returns the parse, or NULL with
 * *error set. */
static ModikeMessage *
mutant_parse (GBytes *packet, GError **error)
{
  g_autoptr (ModikeMessage) msg = parse_packet (packet, error);
  g_autoptr (GBytes) re = NULL;
  g_autoptr (GBytes) re2 = NULL;
  g_autoptr (GError) local = NULL;

  if (msg == NULL)
    {
      g_assert_nonnull (*error);
      g_assert_true ((*error)->domain == MODIKE_CODEC_ERROR);
      g_assert_cmpstr ((*error)->message, !=, "");
      return NULL;
    }
  assert_chain_consistent (msg);
  /* The typed decoders may still refuse what validation took: that would
   * be a bug, so re-encoding must work and be stable. */
  re = reencode_message (packet, &local);
  g_assert_no_error (local);
  re2 = reencode_message (re, &local);
  g_assert_no_error (local);
  assert_bytes_equal (re2, re);
  return g_steal_pointer (&msg);
}

/* What a flipped bit may do, by what it hit. */
typedef enum {
  FLIP_SAME,      /* a field the codec does not judge: parses, same payloads */
  FLIP_CODE,      /* fails with exactly `code` */
  FLIP_DECRYPT,   /* the E flag set: parses, chain left for decryption */
  FLIP_BODY,      /* inside a typed body: same payloads, or one of `codes` */
  FLIP_CHAIN,     /* a generic next/length field: any chain or payload error */
} FlipKind;

typedef struct {
  FlipKind kind;
  gint code;
  guint32 codes;  /* bit per ModikeCodecError */
} FlipRule;

#define CODE_BIT(c) (1u << MODIKE_CODEC_ERROR_##c)

/* The errors each typed decoder reports (the bodies' own validation). */
static guint32
body_codes (guint8 type)
{
  guint32 attrs = CODE_BIT (TRUNCATED) | CODE_BIT (UNSUPPORTED);

  switch (type)
    {
    case MODIKE_PL_SA:
      return attrs | CODE_BIT (MALFORMED) | CODE_BIT (BAD_PROPOSAL) | CODE_BIT (BAD_SPI) | CODE_BIT (BAD_DOI)
             | CODE_BIT (BAD_SITUATION) | CODE_BIT (BAD_PROTOCOL) | CODE_BIT (TOO_LONG);
    case MODIKE_PL_ID:
      return CODE_BIT (BAD_ID);
    case MODIKE_PL_N:
    case MODIKE_PL_D:
      return CODE_BIT (TRUNCATED) | CODE_BIT (MALFORMED) | CODE_BIT (BAD_DOI) | CODE_BIT (BAD_PROTOCOL)
             | CODE_BIT (BAD_SPI);
    case MODIKE_PL_ATTR:
      return attrs | CODE_BIT (MALFORMED);
    case MODIKE_PL_NAT_OA:
    case MODIKE_PL_NAT_OA_DRAFT:
      return CODE_BIT (TRUNCATED) | CODE_BIT (MALFORMED) | CODE_BIT (UNSUPPORTED);
    default:
      /* KE, NONCE, HASH, SIG, VID, NAT-D, CERT, CR, FRAG, unknown: only
       * their length is judged, and a flip inside does not change it. */
      return 0;
    }
}

static FlipRule
flip_rule (const ModikeMessage *orig, gsize off, guint bit)
{
  const FlipRule same = { FLIP_SAME, 0, 0 };
  const FlipRule chain = { FLIP_CHAIN, 0, ~(CODE_BIT (BAD_VERSION) | CODE_BIT (UNEQUAL_LENGTHS)) };
  const guint8 *plain;
  gsize rel;

  if (off == 16) /* first payload type */
    return orig->plain != NULL ? chain : same;
  if (off == 17) /* version: the major nibble is checked, the minor not */
    return bit >= 4 ? (FlipRule){ FLIP_CODE, MODIKE_CODEC_ERROR_BAD_VERSION, 0 } : same;
  if (off == 19 && bit == 0)
    return orig->plain != NULL ? (FlipRule){ FLIP_DECRYPT, 0, 0 } : chain;
  if (off >= 24 && off < 28)
    return (FlipRule){ FLIP_CODE, MODIKE_CODEC_ERROR_UNEQUAL_LENGTHS, 0 };
  if (off < MODIKE_ISAKMP_HEADER_LEN || orig->plain == NULL)
    return same; /* cookies, exchange, other flags, message id; ciphertext */
  plain = g_bytes_get_data (orig->plain, NULL);
  rel = off - MODIKE_ISAKMP_HEADER_LEN;
  for (guint i = 0; i < orig->payloads->len; i++)
    {
      const ModikePayload *p = &g_array_index (orig->payloads, ModikePayload, i);
      gsize start = (gsize) (p->body - plain);

      if (rel == start - 4 || rel == start - 2 || rel == start - 1) /* next payload, length */
        return chain;
      if (rel == start - 3) /* reserved: not judged */
        return same;
      if (rel >= start && rel < start + p->len)
        {
          guint32 codes = body_codes (p->type);
          return codes != 0 ? (FlipRule){ FLIP_BODY, 0, codes } : same;
        }
    }
  return same; /* padding */
}

/* Flips every bit of every byte (each generic, nested and attribute
 * length field among them) and checks the outcome against what the bit
 * hit. Returns the number of mutants that parsed. */
static guint
flip_sweep (GBytes *packet, const ModikeMessage *orig, guint *n_err)
{
  const guint8 *d = g_bytes_get_data (packet, NULL);
  gsize len = g_bytes_get_size (packet);
  guint n_ok = 0;

  for (gsize i = 0; i < len; i++)
    for (guint bit = 0; bit < 8; bit++)
      {
        g_autoptr (GBytes) f = patch_u8 (packet, i, (guint8) (d[i] ^ (1u << bit)));
        g_autoptr (GError) error = NULL;
        g_autoptr (ModikeMessage) msg = mutant_parse (f, &error);
        FlipRule rule = flip_rule (orig, i, bit);

        if (msg != NULL)
          n_ok++;
        else
          (*n_err)++;
        switch (rule.kind)
          {
          case FLIP_SAME:
            if (msg == NULL)
              g_error ("byte %" G_GSIZE_FORMAT " bit %u: should parse as before: %s", i, bit, error->message);
            if (orig->plain != NULL)
              assert_same_layout (msg, orig);
            break;
          case FLIP_CODE:
            g_assert_null (msg);
            g_assert_error (error, MODIKE_CODEC_ERROR, rule.code);
            break;
          case FLIP_DECRYPT:
            g_assert_no_error (error);
            g_assert_null (msg->plain);
            break;
          case FLIP_BODY:
            if (msg != NULL)
              assert_same_layout (msg, orig);
            else if (!(rule.codes & (1u << error->code)))
              g_error ("byte %" G_GSIZE_FORMAT " bit %u (payload body): unexpected code %d: %s", i, bit, error->code,
                       error->message);
            break;
          case FLIP_CHAIN:
            if (msg == NULL && !(rule.codes & (1u << error->code)))
              g_error ("byte %" G_GSIZE_FORMAT " bit %u (chain): unexpected code %d: %s", i, bit, error->code,
                       error->message);
            break;
          }
      }
  return n_ok;
}

static void
sweep (GBytes *packet, guint *n_ok, guint *n_err)
{
  const guint8 *d = g_bytes_get_data (packet, NULL);
  gsize len = g_bytes_get_size (packet);
  g_autoptr (GError) error = NULL;
  g_autoptr (ModikeMessage) msg = parse_packet (packet, &error);
  gsize end;

  g_assert_no_error (error);
  end = chain_end (msg);
  /* Every truncation, with the header length fixed up so the chain walk
   * (not just the length check) sees it: an error, unless only padding or
   * an encrypted body was cut. */
  for (gsize l = 0; l < len; l++)
    {
      g_autoptr (GBytes) t = g_bytes_new (d, l);
      g_autoptr (ModikeMessage) m = NULL;

      if (l >= MODIKE_ISAKMP_HEADER_LEN)
        {
          g_autoptr (GBytes) u = patch_u32 (t, 24, (guint32) l);
          g_bytes_unref (t);
          t = g_steal_pointer (&u);
        }
      m = mutant_parse (t, &error);
      if (m != NULL)
        {
          g_assert_true (l >= MODIKE_ISAKMP_HEADER_LEN && (l >= end || (d[19] & MODIKE_FLAG_ENCRYPTION)));
          if (msg->plain != NULL)
            assert_same_layout (m, msg);
          (*n_ok)++;
        }
      else
        {
          g_assert_true (l < end);
          /* A cut header is short; a cut chain is not a header fault. */
          if (l < MODIKE_ISAKMP_HEADER_LEN)
            g_assert_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_TRUNCATED);
          else
            g_assert_true (error->code != MODIKE_CODEC_ERROR_BAD_VERSION
                           && error->code != MODIKE_CODEC_ERROR_UNEQUAL_LENGTHS);
          g_clear_error (&error);
          (*n_err)++;
        }
    }
  *n_ok += flip_sweep (packet, msg, n_err);
  /* Every payload body at every length through its typed decoder. */
  for (guint i = 0; i < msg->payloads->len; i++)
    {
      const ModikePayload *p = &g_array_index (msg->payloads, ModikePayload, i);
      for (gsize l = 0; l <= p->len; l++)
        {
          g_autofree guint8 *c = exact_copy (p->body, l);
          g_autoptr (GByteArray) re = reencode_body (p->type, c, l, &error);
          if (re == NULL)
            {
              g_assert_nonnull (error);
              g_clear_error (&error);
            }
          else if (l == p->len)
            g_assert_cmpmem (re->data, re->len, p->body, p->len);
        }
    }
}

static void
run_index (const char *dir)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *index = NULL;
  const char *path = g_test_get_filename (G_TEST_DIST, "vectors", dir, "index.txt", NULL);
  g_auto (GStrv) lines = NULL;
  guint n_vectors = 0, n_ok = 0, n_err = 0;

  g_test_message ("index %s", path);
  g_file_get_contents (path, &index, NULL, &error);
  g_assert_no_error (error);
  lines = g_strsplit (index, "\n", -1);
  for (guint i = 0; lines[i]; i++)
    {
      g_auto (GStrv) f = NULL;
      g_autofree char *vpath = NULL;
      g_autofree char *contents = NULL;
      g_autoptr (GBytes) packet = NULL;
      g_autoptr (ModikeMessage) msg = NULL;
      gsize len;
      char *line = g_strstrip (lines[i]);

      if (*line == '\0' || *line == '#')
        continue;
      f = g_strsplit_set (line, " \t", 3);
      g_assert_nonnull (f[0]);
      g_assert_nonnull (f[1]);
      g_assert_true (g_str_equal (f[1], "ok") || g_str_has_prefix (f[1], "error:"));
      vpath = g_test_build_filename (G_TEST_DIST, "vectors", dir, f[0], NULL);
      g_file_get_contents (vpath, &contents, &len, &error);
      g_assert_no_error (error);
      packet = g_bytes_new_take (g_steal_pointer (&contents), len);
      msg = parse_packet (packet, &error);
      n_vectors++;
      if (g_str_equal (f[1], "ok"))
        {
          g_autoptr (GBytes) re = NULL;
          g_autoptr (GBytes) want = NULL;

          if (error)
            g_error ("%s (%s) should parse: %s", f[0], f[2] ? f[2] : "", error->message);
          /* Padding is not a payload: it does not come back. */
          want = strip_padding (packet);
          re = parse_ok_and_reencode (packet);
          assert_bytes_equal (re, want);
          sweep (packet, &n_ok, &n_err);
        }
      else
        {
          gint code = codec_error_code (f[1] + strlen ("error:"));

          if (code < 0)
            g_error ("%s: unknown codec error '%s'", f[0], f[1]);
          if (msg != NULL)
            g_error ("%s (%s) should fail to parse", f[0], f[2] ? f[2] : "");
          g_test_message ("%s: %s", f[0], error->message);
          g_assert_error (error, MODIKE_CODEC_ERROR, code);
          g_clear_error (&error);
        }
    }
  g_test_message ("%u vectors; sweep: %u mutants parsed, %u rejected", n_vectors, n_ok, n_err);
  g_assert_cmpuint (n_vectors, >, 0);
}

static void
test_vectors_codec (void)
{
  run_index ("codec");
}

static void
test_vectors_strongswan (void)
{
  run_index ("strongswan");
}

static void
test_vectors_generated (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *want_index = gen_index ();
  g_autofree char *index = NULL;
  const char *ipath = g_test_get_filename (G_TEST_DIST, "vectors", "codec", "index.txt", NULL);

  g_file_get_contents (ipath, &index, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (index, ==, want_index);
  for (gsize i = 0; i < G_N_ELEMENTS (gen_vectors); i++)
    {
      g_autoptr (GBytes) v = gen_vectors[i].make ();
      const char *path = g_test_get_filename (G_TEST_DIST, "vectors", "codec", gen_vectors[i].file, NULL);
      g_autofree char *contents = NULL;
      gsize len;

      g_file_get_contents (path, &contents, &len, &error);
      g_assert_no_error (error);
      g_assert_cmpmem (contents, len, g_bytes_get_data (v, NULL), g_bytes_get_size (v));
    }
}

/* ------------------------------------------------------------------ */
/* Names and payload bits                                              */

static void
test_names (void)
{
  guint64 seen = 0;

  g_assert_cmpstr (modike_payload_name (MODIKE_PL_SA), ==, "SA");
  g_assert_cmpstr (modike_payload_name (MODIKE_PL_NAT_OA), ==, "NAT-OA");
  g_assert_cmpstr (modike_payload_name (MODIKE_PL_NAT_D_DRAFT), ==, "NAT-D (draft)");
  g_assert_cmpstr (modike_payload_name (MODIKE_PL_FRAG), ==, "FRAG");
  g_assert_null (modike_payload_name (MODIKE_PL_NONE));
  g_assert_null (modike_payload_name (15));
  g_assert_null (modike_payload_name (200));
  g_assert_cmpstr (modike_notify_name (MODIKE_N_INVALID_ID_INFORMATION), ==, "INVALID_ID_INFORMATION");
  g_assert_cmpstr (modike_notify_name (MODIKE_N_UNEQUAL_PAYLOAD_LENGTHS), ==, "UNEQUAL_PAYLOAD_LENGTHS");
  g_assert_cmpstr (modike_notify_name (MODIKE_N_DPD_R_U_THERE_ACK), ==, "R_U_THERE_ACK");
  g_assert_null (modike_notify_name (0));
  g_assert_null (modike_notify_name (40000));
  g_assert_cmpstr (modike_exchange_name (MODIKE_EX_AGGRESSIVE), ==, "AM");
  g_assert_cmpstr (modike_exchange_name (MODIKE_EX_QUICK), ==, "QM");
  g_assert_null (modike_exchange_name (200));
  /* Every notify and payload type the protocol header defines has a name. */
  for (guint t = MODIKE_N_INVALID_PAYLOAD_TYPE; t <= MODIKE_N_UNEQUAL_PAYLOAD_LENGTHS; t++)
    g_assert_nonnull (modike_notify_name ((guint16) t));
  for (guint t = MODIKE_PL_SA; t <= MODIKE_PL_ATTR; t++)
    g_assert_nonnull (modike_payload_name ((guint8) t));

  /* The bit mapping: one bit per type a row can name, and back. */
  for (guint t = 0; t < 256; t++)
    {
      guint bit = modike_payload_bit ((guint8) t);

      g_assert_cmpuint (bit, <=, MODIKE_PAYLOAD_BIT_OTHER);
      if (bit == MODIKE_PAYLOAD_BIT_OTHER)
        {
          g_assert_true (t >= 48);
          continue;
        }
      g_assert_cmpuint (modike_payload_bit_type (bit), ==, t);
      g_assert_false (seen & (G_GUINT64_CONSTANT (1) << bit));
      seen |= G_GUINT64_CONSTANT (1) << bit;
    }
  g_assert_cmpuint (modike_payload_bit (MODIKE_PL_NAT_D_DRAFT), ==, 48);
  g_assert_cmpuint (modike_payload_bit (MODIKE_PL_NAT_OA_DRAFT), ==, 49);
  g_assert_cmpuint (modike_payload_bit (MODIKE_PL_FRAG), ==, 50);
  g_assert_cmpuint (modike_payload_bit (200), ==, MODIKE_PAYLOAD_BIT_OTHER);
  for (guint bit = 51; bit < MODIKE_PAYLOAD_BIT_OTHER; bit++)
    g_assert_cmpuint (modike_payload_bit_type (bit), ==, MODIKE_PL_NONE);
}

int
main (int argc, char **argv)
{
  if (argc == 3 && g_str_equal (argv[1], "--write-vectors"))
    return write_vectors (argv[2]);

  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/codec/reader", test_reader);
  g_test_add_func ("/codec/writer", test_writer);
  g_test_add_func ("/codec/addr", test_addr);
  g_test_add_func ("/codec/prefix", test_prefix);
  g_test_add_func ("/codec/hex", test_hex);
  g_test_add_func ("/codec/log-level", test_log_level);
  g_test_add_func ("/codec/attrs", test_attrs);
  g_test_add_func ("/codec/sa/known-answer", test_sa_known_answer);
  g_test_add_func ("/codec/sa/roundtrip", test_sa_roundtrip);
  g_test_add_func ("/codec/sa/negative", test_sa_negative);
  g_test_add_func ("/codec/id", test_id);
  g_test_add_func ("/codec/cert", test_cert);
  g_test_add_func ("/codec/notify", test_notify);
  g_test_add_func ("/codec/delete", test_delete);
  g_test_add_func ("/codec/attr-payload", test_attr_payload);
  g_test_add_func ("/codec/nat-oa", test_nat_oa);
  g_test_add_func ("/codec/opaque", test_opaque);
  g_test_add_func ("/codec/error-notify", test_error_notify);
  g_test_add_func ("/codec/header", test_header);
  g_test_add_func ("/codec/message/many", test_message_many);
  g_test_add_func ("/codec/message/bounds", test_message_bounds);
  g_test_add_func ("/codec/message/encrypted", test_message_encrypted);
  g_test_add_func ("/codec/message/decoded", test_message_decoded);
  g_test_add_func ("/codec/builder", test_builder);
  g_test_add_func ("/codec/names", test_names);
  g_test_add_func ("/codec/vectors/generated", test_vectors_generated);
  g_test_add_func ("/codec/vectors/codec", test_vectors_codec);
  g_test_add_func ("/codec/vectors/strongswan", test_vectors_strongswan);
  return g_test_run ();
}
