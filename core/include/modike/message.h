/* ISAKMP header and payload chain (RFC 2408 3.1, 3.2). */
#pragma once

#include <glib.h>
#include <modike/payload.h>
#include <modike/protocol.h>

G_BEGIN_DECLS

typedef struct {
  guint8 icookie[MODIKE_COOKIE_LEN];
  guint8 rcookie[MODIKE_COOKIE_LEN];
  guint8 next_payload;
  guint8 version;
  guint8 exchange;
  guint8 flags;
  guint32 msgid;
  guint32 length;
} ModikeHeader;

/* One payload of a decoded chain; body is borrowed from the message.
 * Typed payloads (SA, ID, CERT, CR, N, D, ATTR, NAT-OA) are decoded once,
 * when the chain is parsed: read that form with modike_payload_get_*().
 * Opaque ones (KE, HASH, SIG, NONCE, VID, NAT-D, FRAG, unknown) have only
 * body and len. */
typedef struct {
  guint8 type;
  const guint8 *body;
  gsize len;
  gpointer decoded;   /* ABI 1.2; private: owned with the payload, use the accessors */
} ModikePayload;

/* The decoded form of p (borrowed, lives as long as the message), or NULL
 * when p is NULL or of another type. get_cert takes CERT and CR, get_nat_oa
 * both NAT-OA types (RFC 3947 and draft). */
const ModikeSaPayload *modike_payload_get_sa (const ModikePayload *p);
const ModikeIdPayload *modike_payload_get_id (const ModikePayload *p);
const ModikeCertPayload *modike_payload_get_cert (const ModikePayload *p);
const ModikeNotifyPayload *modike_payload_get_notify (const ModikePayload *p);
const ModikeDeletePayload *modike_payload_get_delete (const ModikePayload *p);
const ModikeAttrPayload *modike_payload_get_attr (const ModikePayload *p);
const ModikeNatOaPayload *modike_payload_get_nat_oa (const ModikePayload *p);
/* Decodes p->body by p->type into p->decoded (typed payloads; p->decoded
 * must be NULL or from an earlier decode) or checks its size bounds (opaque
 * ones), with the codec's errors; the chain parser calls it for every
 * payload. modike_payload_clear frees the decoded form. */
gboolean modike_payload_decode (ModikePayload *p, GError **error);
void modike_payload_clear (ModikePayload *p);

typedef struct {
  ModikeHeader hdr;
  GBytes *packet;     /* the whole datagram (header included), owned */
  GBytes *plain;      /* the payload chain bytes, decrypted if needed; NULL until known */
  GArray *payloads;   /* ModikePayload in order; empty until the chain is parsed */
} ModikeMessage;

/* Parses and checks the 28-byte header: length field equal to len (or
 * at most len: trailing bytes are an error), major version 1. */
gboolean modike_header_parse (const guint8 *data, gsize len, ModikeHeader *out, GError **error);
void modike_header_encode (const ModikeHeader *hdr, guint8 out[MODIKE_ISAKMP_HEADER_LEN]);

/* Parses a datagram: header, and the payload chain unless the encryption
 * flag is set (then call modike_message_set_plain after decrypting). Bytes
 * after a complete chain that the header length covers are padding. */
ModikeMessage *modike_message_parse (GBytes *packet, GError **error);
/* Walks the chain in plain starting at the header's next payload; bytes
 * after the last payload (padding) are ignored when `padded`, an error
 * otherwise. Each payload is decoded (modike_payload_decode); a payload
 * that does not decode fails the whole chain. */
gboolean modike_message_set_plain (ModikeMessage *msg, GBytes *plain, gboolean padded, GError **error);
void modike_message_free (ModikeMessage *msg);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ModikeMessage, modike_message_free)

/* Bytes after the header (ciphertext for encrypted messages). */
const guint8 *modike_message_body (const ModikeMessage *msg, gsize *len);
const ModikePayload *modike_message_find (const ModikeMessage *msg, guint8 type);
/* Returns the index-th payload of that type or NULL. */
const ModikePayload *modike_message_find_nth (const ModikeMessage *msg, guint8 type, guint index);
guint modike_message_count (const ModikeMessage *msg, guint8 type);

/* Builds a payload chain: payloads are appended with their body bytes;
 * the chain (with generic headers and next-payload links) is produced on
 * serialize. Bodies can be replaced later (HASH computed over the rest). */
typedef struct _ModikeBuilder ModikeBuilder;
ModikeBuilder *modike_builder_new (void);
void modike_builder_free (ModikeBuilder *b);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ModikeBuilder, modike_builder_free)
/* Appends a payload; returns its index. */
guint modike_builder_add (ModikeBuilder *b, guint8 type, const void *body, gsize len);
/* Takes a GByteArray body (freed). */
guint modike_builder_add_array (ModikeBuilder *b, guint8 type, GByteArray *body);
void modike_builder_set_body (ModikeBuilder *b, guint index, const void *body, gsize len);
guint modike_builder_count (const ModikeBuilder *b);
guint8 modike_builder_type (const ModikeBuilder *b, guint index);
/* Serializes payloads [from, end) into a chain; *first gets the first type
 * (MODIKE_PL_NONE when empty). */
GBytes *modike_builder_serialize (const ModikeBuilder *b, guint from, guint8 *first);

/* Header (length filled in) + body. */
GBytes *modike_message_encode (const ModikeHeader *hdr, const guint8 *body, gsize len);

G_END_DECLS
