/* The one table of payload, notify and exchange names, and the payload
 * bit mapping of the state-table masks. */
#include <modike/names.h>

static const char *const payload_names[] = {
  [MODIKE_PL_SA] = "SA",       [MODIKE_PL_P] = "P",         [MODIKE_PL_T] = "T",         [MODIKE_PL_KE] = "KE",
  [MODIKE_PL_ID] = "ID",       [MODIKE_PL_CERT] = "CERT",   [MODIKE_PL_CR] = "CR",       [MODIKE_PL_HASH] = "HASH",
  [MODIKE_PL_SIG] = "SIG",     [MODIKE_PL_NONCE] = "NONCE", [MODIKE_PL_N] = "N",         [MODIKE_PL_D] = "D",
  [MODIKE_PL_VID] = "VID",     [MODIKE_PL_ATTR] = "ATTR",   [MODIKE_PL_NAT_D] = "NAT-D", [MODIKE_PL_NAT_OA] = "NAT-OA",
  [MODIKE_PL_NAT_D_DRAFT] = "NAT-D (draft)",
  [MODIKE_PL_NAT_OA_DRAFT] = "NAT-OA (draft)",
  [MODIKE_PL_FRAG] = "FRAG",
};

const char *
modike_payload_name (guint8 type)
{
  return type < G_N_ELEMENTS (payload_names) ? payload_names[type] : NULL;
}

static const struct {
  guint16 type;
  const char *name;
} notify_names[] = {
  { MODIKE_N_INVALID_PAYLOAD_TYPE, "INVALID_PAYLOAD_TYPE" },
  { MODIKE_N_DOI_NOT_SUPPORTED, "DOI_NOT_SUPPORTED" },
  { MODIKE_N_SITUATION_NOT_SUPPORTED, "SITUATION_NOT_SUPPORTED" },
  { MODIKE_N_INVALID_COOKIE, "INVALID_COOKIE" },
  { MODIKE_N_INVALID_MAJOR_VERSION, "INVALID_MAJOR_VERSION" },
  { MODIKE_N_INVALID_MINOR_VERSION, "INVALID_MINOR_VERSION" },
  { MODIKE_N_INVALID_EXCHANGE_TYPE, "INVALID_EXCHANGE_TYPE" },
  { MODIKE_N_INVALID_FLAGS, "INVALID_FLAGS" },
  { MODIKE_N_INVALID_MESSAGE_ID, "INVALID_MESSAGE_ID" },
  { MODIKE_N_INVALID_PROTOCOL_ID, "INVALID_PROTOCOL_ID" },
  { MODIKE_N_INVALID_SPI, "INVALID_SPI" },
  { MODIKE_N_INVALID_TRANSFORM_ID, "INVALID_TRANSFORM_ID" },
  { MODIKE_N_ATTRIBUTES_NOT_SUPPORTED, "ATTRIBUTES_NOT_SUPPORTED" },
  { MODIKE_N_NO_PROPOSAL_CHOSEN, "NO_PROPOSAL_CHOSEN" },
  { MODIKE_N_BAD_PROPOSAL_SYNTAX, "BAD_PROPOSAL_SYNTAX" },
  { MODIKE_N_PAYLOAD_MALFORMED, "PAYLOAD_MALFORMED" },
  { MODIKE_N_INVALID_KEY_INFORMATION, "INVALID_KEY_INFORMATION" },
  { MODIKE_N_INVALID_ID_INFORMATION, "INVALID_ID_INFORMATION" },
  { MODIKE_N_INVALID_CERT_ENCODING, "INVALID_CERT_ENCODING" },
  { MODIKE_N_INVALID_CERTIFICATE, "INVALID_CERTIFICATE" },
  { MODIKE_N_CERT_TYPE_UNSUPPORTED, "CERT_TYPE_UNSUPPORTED" },
  { MODIKE_N_INVALID_CERT_AUTHORITY, "INVALID_CERT_AUTHORITY" },
  { MODIKE_N_INVALID_HASH_INFORMATION, "INVALID_HASH_INFORMATION" },
  { MODIKE_N_AUTHENTICATION_FAILED, "AUTHENTICATION_FAILED" },
  { MODIKE_N_INVALID_SIGNATURE, "INVALID_SIGNATURE" },
  { MODIKE_N_ADDRESS_NOTIFICATION, "ADDRESS_NOTIFICATION" },
  { MODIKE_N_NOTIFY_SA_LIFETIME, "NOTIFY_SA_LIFETIME" },
  { MODIKE_N_CERTIFICATE_UNAVAILABLE, "CERTIFICATE_UNAVAILABLE" },
  { MODIKE_N_UNSUPPORTED_EXCHANGE_TYPE, "UNSUPPORTED_EXCHANGE_TYPE" },
  { MODIKE_N_UNEQUAL_PAYLOAD_LENGTHS, "UNEQUAL_PAYLOAD_LENGTHS" },
  { MODIKE_N_CONNECTED, "CONNECTED" },
  { MODIKE_N_RESPONDER_LIFETIME, "RESPONDER_LIFETIME" },
  { MODIKE_N_REPLAY_STATUS, "REPLAY_STATUS" },
  { MODIKE_N_INITIAL_CONTACT, "INITIAL_CONTACT" },
  { MODIKE_N_DPD_R_U_THERE, "R_U_THERE" },
  { MODIKE_N_DPD_R_U_THERE_ACK, "R_U_THERE_ACK" },
};

const char *
modike_notify_name (guint16 type)
{
  for (guint i = 0; i < G_N_ELEMENTS (notify_names); i++)
    if (notify_names[i].type == type)
      return notify_names[i].name;
  return NULL;
}

const char *
modike_exchange_name (guint8 type)
{
  switch (type)
    {
    case MODIKE_EX_BASE: return "BASE";
    case MODIKE_EX_MAIN: return "MM";
    case MODIKE_EX_AUTH_ONLY: return "AUTH-ONLY";
    case MODIKE_EX_AGGRESSIVE: return "AM";
    case MODIKE_EX_INFO: return "INFO";
    case MODIKE_EX_TRANSACTION: return "TRANSACTION";
    case MODIKE_EX_QUICK: return "QM";
    case MODIKE_EX_NEW_GROUP: return "NEW-GROUP";
    default: return NULL;
    }
}

/* Types above 47 that rows can name get the bits after the direct ones. */
static const guint8 high_types[] = { MODIKE_PL_NAT_D_DRAFT, MODIKE_PL_NAT_OA_DRAFT, MODIKE_PL_FRAG };
#define DIRECT_BITS 48

guint
modike_payload_bit (guint8 type)
{
  if (type < DIRECT_BITS)
    return type;
  for (guint i = 0; i < G_N_ELEMENTS (high_types); i++)
    if (high_types[i] == type)
      return DIRECT_BITS + i;
  return MODIKE_PAYLOAD_BIT_OTHER;
}

guint8
modike_payload_bit_type (guint bit)
{
  if (bit < DIRECT_BITS)
    return (guint8) bit;
  if (bit - DIRECT_BITS < G_N_ELEMENTS (high_types))
    return high_types[bit - DIRECT_BITS];
  return MODIKE_PL_NONE;
}
