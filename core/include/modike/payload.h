/* Typed IKEv1 payload bodies: decode from and encode to the body bytes
 * that follow the 4-byte generic payload header (RFC 2408 3.4-3.16,
 * RFC 2407 4.6, RFC 3947, mode-cfg draft). Decoders borrow nothing: every
 * decoded struct owns its data. Each decoder fails with MODIKE_CODEC_ERROR
 * and never reads past `len`. */
#pragma once

#include <glib.h>
#include <modike/protocol.h>

G_BEGIN_DECLS

#define MODIKE_CODEC_ERROR (modike_codec_error_quark ())
GQuark modike_codec_error_quark (void);

typedef enum {
  MODIKE_CODEC_ERROR_TRUNCATED,      /* fewer bytes than a length claims */
  MODIKE_CODEC_ERROR_MALFORMED,      /* inconsistent lengths, bad counts */
  MODIKE_CODEC_ERROR_TOO_LONG,       /* over a sanity bound */
  MODIKE_CODEC_ERROR_UNSUPPORTED,    /* valid encoding, value we don't take */
  MODIKE_CODEC_ERROR_BAD_VERSION,    /* ISAKMP major version */
  /* Codes for errors RFC 2408 gives their own notify type. */
  MODIKE_CODEC_ERROR_UNEQUAL_LENGTHS,  /* header length differs from the datagram */
  MODIKE_CODEC_ERROR_BAD_ID,           /* ID data invalid for its type */
  MODIKE_CODEC_ERROR_BAD_PROPOSAL,     /* proposal/transform chain or counts */
  MODIKE_CODEC_ERROR_BAD_SPI,          /* SPI size wrong for the protocol */
  MODIKE_CODEC_ERROR_BAD_DOI,          /* DOI not IPsec */
  MODIKE_CODEC_ERROR_BAD_SITUATION,    /* situation not IDENTITY_ONLY */
  MODIKE_CODEC_ERROR_BAD_PROTOCOL,     /* protocol id not taken here */
  MODIKE_CODEC_ERROR_BAD_PAYLOAD_TYPE, /* payload type out of place (P, T at top level) */
} ModikeCodecError;

/* The notify type a codec error maps to (PAYLOAD_MALFORMED, ...). */
guint16 modike_codec_error_notify (const GError *error);

/* ---- Data attributes (RFC 2408 3.3): TV if AF set, TLV otherwise. ---- */
typedef struct {
  guint16 type;   /* without the AF bit */
  gboolean tv;    /* TV format */
  guint32 value;  /* TV value; TLV value when it is 1..4 bytes (basic-ish) */
  GBytes *data;   /* TLV only: the value bytes (may be empty); NULL for TV */
} ModikeAttr;

/* Appends attributes parsed from the whole of [data, data+len) to attrs
 * (a GArray of ModikeAttr created with modike_attr_array_new). */
GArray *modike_attr_array_new (void);
gboolean modike_attrs_parse (const guint8 *data, gsize len, GArray *attrs, GError **error);
/* Encodes: TV when tv is set (value must fit 16 bits), else TLV with data
 * (or with `value` as a 4-byte big-endian number when data is NULL). */
void modike_attrs_encode (const GArray *attrs, GByteArray *out);
void modike_attr_add_tv (GArray *attrs, guint16 type, guint16 value);
void modike_attr_add_tlv (GArray *attrs, guint16 type, const guint8 *data, gsize len);
/* Lifetime style value: TV if it fits in 16 bits else TLV of 4 bytes. */
void modike_attr_add_number (GArray *attrs, guint16 type, guint32 value);
const ModikeAttr *modike_attrs_find (const GArray *attrs, guint16 type);

/* ---- SA, proposal, transform (RFC 2408 3.4-3.6). ---- */
typedef struct {
  guint8 number;
  guint8 id;         /* KEY_IKE or ESP transform id */
  GArray *attrs;     /* ModikeAttr */
} ModikeTransform;

typedef struct {
  guint8 number;     /* proposals with equal numbers form an AND bundle */
  guint8 protocol;   /* ModikeProtocolId */
  guint8 spi_len;
  guint8 spi[16];
  GPtrArray *transforms; /* ModikeTransform*, owned */
} ModikeProposal;

typedef struct {
  guint32 doi;
  guint32 situation;
  GPtrArray *proposals;  /* ModikeProposal*, owned */
} ModikeSaPayload;

ModikeSaPayload *modike_sa_payload_new (guint32 doi, guint32 situation);
ModikeProposal *modike_proposal_new (guint8 number, guint8 protocol, const guint8 *spi, guint8 spi_len);
ModikeTransform *modike_transform_new (guint8 number, guint8 id);
void modike_sa_payload_free (ModikeSaPayload *sa);
void modike_proposal_free (ModikeProposal *p);
void modike_transform_free (ModikeTransform *t);
ModikeSaPayload *modike_sa_payload_parse (const guint8 *body, gsize len, GError **error);
void modike_sa_payload_encode (const ModikeSaPayload *sa, GByteArray *out);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ModikeSaPayload, modike_sa_payload_free)

/* ---- Identification (RFC 2407 4.6.2). ---- */
typedef struct {
  guint8 type;      /* ModikeIdType */
  guint8 protocol;  /* 0 = any */
  guint16 port;     /* 0 = any */
  GBytes *data;     /* identification data, validated against type */
} ModikeIdPayload;

ModikeIdPayload *modike_id_payload_parse (const guint8 *body, gsize len, GError **error);
void modike_id_payload_encode (const ModikeIdPayload *id, GByteArray *out);
void modike_id_payload_free (ModikeIdPayload *id);
ModikeIdPayload *modike_id_payload_new (guint8 type, guint8 protocol, guint16 port, const guint8 *data, gsize len);
/* Human-readable: "192.0.2.0/24", "gw.example", "2001:db8::1-2001:db8::9". */
char *modike_id_payload_to_string (const ModikeIdPayload *id);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ModikeIdPayload, modike_id_payload_free)

/* ---- Certificate and certificate request (RFC 2408 3.9, 3.10). ---- */
typedef struct {
  guint8 encoding;
  GBytes *data;
} ModikeCertPayload;  /* used for CERT and CR */
ModikeCertPayload *modike_cert_payload_parse (const guint8 *body, gsize len, gboolean allow_empty, GError **error);
void modike_cert_payload_encode (const ModikeCertPayload *c, GByteArray *out);
void modike_cert_payload_free (ModikeCertPayload *c);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ModikeCertPayload, modike_cert_payload_free)

/* ---- Notification (RFC 2408 3.14). ---- */
typedef struct {
  guint32 doi;
  guint8 protocol;
  guint16 type;       /* ModikeNotifyType */
  guint8 spi_len;
  guint8 spi[16];
  GBytes *data;       /* notification data (may be empty) */
} ModikeNotifyPayload;
ModikeNotifyPayload *modike_notify_payload_parse (const guint8 *body, gsize len, GError **error);
void modike_notify_payload_encode (const ModikeNotifyPayload *n, GByteArray *out);
void modike_notify_payload_free (ModikeNotifyPayload *n);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ModikeNotifyPayload, modike_notify_payload_free)

/* ---- Delete (RFC 2408 3.15). ---- */
typedef struct {
  guint32 doi;
  guint8 protocol;
  guint8 spi_len;
  GPtrArray *spis;    /* GBytes* each spi_len long */
} ModikeDeletePayload;
ModikeDeletePayload *modike_delete_payload_parse (const guint8 *body, gsize len, GError **error);
void modike_delete_payload_encode (const ModikeDeletePayload *d, GByteArray *out);
void modike_delete_payload_free (ModikeDeletePayload *d);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ModikeDeletePayload, modike_delete_payload_free)

/* ---- Attribute payload (mode-cfg draft 3.2). ---- */
typedef struct {
  guint8 type;        /* REQUEST 1, REPLY 2, SET 3, ACK 4 */
  guint16 identifier;
  GArray *attrs;      /* ModikeAttr */
} ModikeAttrPayload;
ModikeAttrPayload *modike_attr_payload_parse (const guint8 *body, gsize len, GError **error);
void modike_attr_payload_encode (const ModikeAttrPayload *a, GByteArray *out);
void modike_attr_payload_free (ModikeAttrPayload *a);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ModikeAttrPayload, modike_attr_payload_free)

/* ---- NAT original address (RFC 3947 5.2). ---- */
typedef struct {
  guint8 id_type;     /* IPV4_ADDR or IPV6_ADDR */
  guint8 addr[16];
} ModikeNatOaPayload;
gboolean modike_nat_oa_payload_parse (const guint8 *body, gsize len, ModikeNatOaPayload *out, GError **error);
void modike_nat_oa_payload_encode (const ModikeNatOaPayload *oa, GByteArray *out);

/* ---- Opaque payloads: KE, HASH, SIG, NONCE, VID, NAT-D. ----
 * Their bodies are raw bytes; these check only the size bounds
 * (NONCE 8..256 bytes per RFC 2409 5; KE, HASH, SIG, VID, NAT-D non-empty). */
gboolean modike_opaque_payload_check (guint8 type, gsize len, GError **error);

/* Validates the body of any known payload type by decoding it and dropping
 * the result (the fuzzer, tests); the chain parser keeps the decoded form
 * (modike_payload_decode, message.h). Unknown types are accepted as opaque. */
gboolean modike_payload_validate (guint8 type, const guint8 *body, gsize len, GError **error);

G_END_DECLS
