/* ABI 1.2. Configuration attributes of the ATTR payload (mode config, XAuth):
 * plugins claim attribute types, the core checks each value against the
 * format the claim gives and hands it to the claiming plugin. */
#pragma once

#include <glib.h>
#include <modike/addr.h>
#include <modike/exchange.h>
#include <modike/payload.h>
#include <modike/plugin.h>

G_BEGIN_DECLS

/* ATTR payload types (draft-dukes-ike-mode-cfg-02 3.2). */
typedef enum {
  MODIKE_CFG_REQUEST = 1,
  MODIKE_CFG_REPLY = 2,
  MODIKE_CFG_SET = 3,
  MODIKE_CFG_ACK = 4,
} ModikeCfgType;

/* Value formats the core checks. An empty value (length 0, as in a REQUEST
 * or an ACK) is always accepted and flagged `empty`. */
typedef enum {
  MODIKE_ATTR_FMT_BYTES = 0,   /* any length */
  MODIKE_ATTR_FMT_U16,         /* TV, or 2 bytes */
  MODIKE_ATTR_FMT_U32,         /* TV, or 1..4 bytes */
  MODIKE_ATTR_FMT_IP4,         /* 4 bytes: an address or a netmask */
  MODIKE_ATTR_FMT_IP4_SUBNET,  /* 8 bytes: address and contiguous netmask */
  MODIKE_ATTR_FMT_IP6,         /* 16 bytes */
  MODIKE_ATTR_FMT_IP6_PREFIX,  /* 17 bytes: address and prefix length 0..128 */
  MODIKE_ATTR_FMT_TEXT,        /* UTF-8 without NUL */
  MODIKE_ATTR_FMT_U16_LIST,    /* a multiple of 2 bytes (SUPPORTED_ATTRIBUTES) */
} ModikeAttrFormat;

/* One decoded attribute, valid during the call that gives it. */
typedef struct {
  guint16 type;
  ModikeAttrFormat format;
  gboolean empty;         /* no value */
  guint32 number;         /* U16, U32 */
  ModikeAddr addr;        /* IP4, IP6 (port 0) */
  ModikePrefix prefix;    /* IP4_SUBNET, IP6_PREFIX (host bits kept as sent) */
  const guint8 *data;     /* the raw value (TLV), NULL for TV */
  gsize len;
} ModikeAttrValue;

/* Checks a's value against format and fills out; FALSE with
 * MODIKE_CODEC_ERROR_MALFORMED naming the type when it does not fit. */
gboolean modike_attr_value_decode (const ModikeAttr *a, ModikeAttrFormat format, ModikeAttrValue *out,
                                   GError **error);

typedef struct {
  guint16 type;
  ModikeAttrFormat format;
  const char *name;        /* "INTERNAL_IP4_ADDRESS": logs and messages */
} ModikeAttrSpec;

/* Called for each claimed attribute of a dispatched payload, in payload
 * order; `payload` gives the context (REQUEST, REPLY, SET, ACK and the
 * identifier). FALSE stops the dispatch with error. */
typedef gboolean (*ModikeAttrFunc) (ModikeIkeSa *sa, const ModikeAttrPayload *payload, const ModikeAttrValue *value,
                                    gpointer user, GError **error);

/* Claims the attribute types of specs (exclusive per type; all or none). */
gboolean modike_register_attributes (ModikePlugin *plugin, const ModikeAttrSpec *specs, gsize n_specs,
                                     ModikeAttrFunc fn, gpointer user, GError **error);

/* Decodes every attribute of payload: all claimed ones are checked first
 * (a malformed one fails the whole payload, nothing dispatched), unclaimed
 * ones are logged and skipped, then each claimed one goes to its owner. */
gboolean modike_attr_payload_dispatch (ModikeIkeSa *sa, const ModikeAttrPayload *payload, GError **error);

/* Encoders for the formats above (TLV). */
void modike_attr_add_addr (GArray *attrs, guint16 type, const ModikeAddr *addr);
/* IPv4: address and netmask (8 bytes); IPv6: address and length (17 bytes). */
void modike_attr_add_prefix (GArray *attrs, guint16 type, const ModikePrefix *prefix);

G_END_DECLS
