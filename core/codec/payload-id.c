/* Identification payload (RFC 2407 4.6.2). The data is checked against
 * its type so that later code can take addresses and masks at face value.
 * Every failure maps to INVALID-ID-INFORMATION. */
#include <modike/payload.h>
#include <modike/reader.h>
#include <modike/log.h>

#include <arpa/inet.h>
#include <string.h>

/* One code for every ID failure: it maps to INVALID-ID-INFORMATION. */
#define ID_FAIL(error, ...) g_set_error ((error), MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_BAD_ID, __VA_ARGS__)

ModikeIdPayload *
modike_id_payload_new (guint8 type, guint8 protocol, guint16 port, const guint8 *data, gsize len)
{
  ModikeIdPayload *id;

  g_return_val_if_fail (data != NULL || len == 0, NULL);
  id = g_new0 (ModikeIdPayload, 1);
  id->type = type;
  id->protocol = protocol;
  id->port = port;
  id->data = g_bytes_new (data, len);
  return id;
}

void
modike_id_payload_free (ModikeIdPayload *id)
{
  if (id == NULL)
    return;
  g_clear_pointer (&id->data, g_bytes_unref);
  g_free (id);
}

/* Prefix length of a contiguous mask, or -1 if the mask has holes. */
static int
mask_plen (const guint8 *mask, gsize len)
{
  int plen = 0;
  gboolean ended = FALSE;

  for (gsize i = 0; i < len; i++)
    for (int bit = 7; bit >= 0; bit--)
      {
        gboolean set = (mask[i] >> bit) & 1;
        if (set && ended)
          return -1;
        if (set)
          plen++;
        else
          ended = TRUE;
      }
  return plen;
}

static gboolean
printable (const guint8 *s, gsize len)
{
  for (gsize i = 0; i < len; i++)
    if (!g_ascii_isprint (s[i]))
      return FALSE;
  return TRUE;
}

static const char *
id_type_name (guint8 type)
{
  static const char *const names[] = {
    [MODIKE_ID_IPV4_ADDR] = "IPV4_ADDR",
    [MODIKE_ID_FQDN] = "FQDN",
    [MODIKE_ID_USER_FQDN] = "USER_FQDN",
    [MODIKE_ID_IPV4_ADDR_SUBNET] = "IPV4_ADDR_SUBNET",
    [MODIKE_ID_IPV6_ADDR] = "IPV6_ADDR",
    [MODIKE_ID_IPV6_ADDR_SUBNET] = "IPV6_ADDR_SUBNET",
    [MODIKE_ID_IPV4_ADDR_RANGE] = "IPV4_ADDR_RANGE",
    [MODIKE_ID_IPV6_ADDR_RANGE] = "IPV6_ADDR_RANGE",
    [MODIKE_ID_DER_ASN1_DN] = "DER_ASN1_DN",
    [MODIKE_ID_DER_ASN1_GN] = "DER_ASN1_GN",
    [MODIKE_ID_KEY_ID] = "KEY_ID",
  };
  if (type < G_N_ELEMENTS (names) && names[type] != NULL)
    return names[type];
  return "unknown";
}

/* Splits subnet or range data (length already checked) into halves. */
static void
halves (const guint8 *d, gsize len, const guint8 **a, const guint8 **b)
{
  ModikeReader r;

  modike_reader_init (&r, d, len);
  if (!modike_reader_bytes (&r, len / 2, a) || !modike_reader_bytes (&r, len / 2, b))
    g_assert_not_reached ();
}

/* Checks identification data against its type. */
static gboolean
id_data_check (guint8 type, const guint8 *d, gsize len, GError **error)
{
  gsize want = 0;
  const guint8 *a, *b;

  switch (type)
    {
    case MODIKE_ID_IPV4_ADDR:
      want = 4;
      break;
    case MODIKE_ID_IPV6_ADDR:
      want = 16;
      break;
    case MODIKE_ID_IPV4_ADDR_SUBNET:
    case MODIKE_ID_IPV4_ADDR_RANGE:
      want = 8;
      break;
    case MODIKE_ID_IPV6_ADDR_SUBNET:
    case MODIKE_ID_IPV6_ADDR_RANGE:
      want = 32;
      break;
    case MODIKE_ID_FQDN:
    case MODIKE_ID_USER_FQDN:
      if (len == 0 || !printable (d, len))
        {
          ID_FAIL (error, "ID: %s %s", id_type_name (type),
                   len == 0 ? "is empty" : "has a non-printable character");
          return FALSE;
        }
      return TRUE;
    case MODIKE_ID_DER_ASN1_DN:
    case MODIKE_ID_DER_ASN1_GN:
    case MODIKE_ID_KEY_ID:
      if (len == 0)
        {
          ID_FAIL (error, "ID: %s is empty", id_type_name (type));
          return FALSE;
        }
      return TRUE;
    default:
      ID_FAIL (error, "ID: type %u unknown", type);
      return FALSE;
    }
  if (len != want)
    {
      ID_FAIL (error, "ID: %s data length %" G_GSIZE_FORMAT ", expected %"
               G_GSIZE_FORMAT, id_type_name (type), len, want);
      return FALSE;
    }
  halves (d, len, &a, &b);
  if ((type == MODIKE_ID_IPV4_ADDR_SUBNET || type == MODIKE_ID_IPV6_ADDR_SUBNET)
      && mask_plen (b, len / 2) < 0)
    {
      ID_FAIL (error, "ID: %s mask not contiguous", id_type_name (type));
      return FALSE;
    }
  if ((type == MODIKE_ID_IPV4_ADDR_RANGE || type == MODIKE_ID_IPV6_ADDR_RANGE)
      && memcmp (a, b, len / 2) > 0)
    {
      ID_FAIL (error, "ID: %s start above end", id_type_name (type));
      return FALSE;
    }
  return TRUE;
}

ModikeIdPayload *
modike_id_payload_parse (const guint8 *body, gsize len, GError **error)
{
  ModikeReader r;
  guint8 type, protocol;
  guint16 port;
  const guint8 *data;
  gsize data_len;

  modike_reader_init (&r, body, len);
  if (!modike_reader_u8 (&r, &type) || !modike_reader_u8 (&r, &protocol) || !modike_reader_u16 (&r, &port))
    {
      ID_FAIL (error, "ID: length %" G_GSIZE_FORMAT " below 4", len);
      return NULL;
    }
  data_len = modike_reader_left (&r);
  if (!modike_reader_bytes (&r, data_len, &data))
    g_return_val_if_reached (NULL);
  if (!id_data_check (type, data, data_len, error))
    return NULL;
  return modike_id_payload_new (type, protocol, port, data, data_len);
}

void
modike_id_payload_encode (const ModikeIdPayload *id, GByteArray *out)
{
  gsize len = 0;
  const guint8 *d = id->data ? g_bytes_get_data (id->data, &len) : NULL;

  modike_put_u8 (out, id->type);
  modike_put_u8 (out, id->protocol);
  modike_put_u16 (out, id->port);
  modike_put_bytes (out, d, len);
}

static void
append_ip (GString *s, int family, const guint8 *addr)
{
  char buf[INET6_ADDRSTRLEN];

  if (inet_ntop (family, addr, buf, sizeof buf) != NULL)
    g_string_append (s, buf);
  else
    g_string_append (s, "?");
}

char *
modike_id_payload_to_string (const ModikeIdPayload *id)
{
  GString *s = g_string_new (NULL);
  gsize len = 0;
  const guint8 *d = id->data ? g_bytes_get_data (id->data, &len) : NULL;
  g_autofree char *hex = NULL;
  int family = AF_INET;
  const guint8 *a = NULL, *b = NULL;

  /* Re-check: the struct may have been built by hand. */
  if (!id_data_check (id->type, d, len, NULL))
    {
      hex = modike_hex (d, len);
      g_string_append_printf (s, "invalid %s:%s", id_type_name (id->type), hex);
      return g_string_free (s, FALSE);
    }
  if (len == 8 || len == 32)
    halves (d, len, &a, &b);
  switch (id->type)
    {
    case MODIKE_ID_IPV6_ADDR:
      family = AF_INET6;
      G_GNUC_FALLTHROUGH;
    case MODIKE_ID_IPV4_ADDR:
      append_ip (s, family, d);
      break;
    case MODIKE_ID_IPV6_ADDR_SUBNET:
      family = AF_INET6;
      G_GNUC_FALLTHROUGH;
    case MODIKE_ID_IPV4_ADDR_SUBNET:
      append_ip (s, family, a);
      g_string_append_printf (s, "/%d", mask_plen (b, len / 2));
      break;
    case MODIKE_ID_IPV6_ADDR_RANGE:
      family = AF_INET6;
      G_GNUC_FALLTHROUGH;
    case MODIKE_ID_IPV4_ADDR_RANGE:
      append_ip (s, family, a);
      g_string_append_c (s, '-');
      append_ip (s, family, b);
      break;
    case MODIKE_ID_FQDN:
    case MODIKE_ID_USER_FQDN:
      g_string_append_len (s, (const char *) d, (gssize) len);
      break;
    default: /* DN, GN, KEY_ID: binary */
      hex = modike_hex (d, len);
      g_string_append_printf (s, "%s:%s", id_type_name (id->type), hex);
      break;
    }
  return g_string_free (s, FALSE);
}
