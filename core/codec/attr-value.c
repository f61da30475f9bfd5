/* Typed values of configuration attributes (draft-dukes-ike-mode-cfg-02
 * 3.3, the XAuth and Cisco Unity attributes): each format has an exact
 * size, checked before a plugin sees the value. */
#include <modike/cfg-attr.h>
#include <modike/reader.h>

#include <string.h>

static const char *const format_names[] = {
  [MODIKE_ATTR_FMT_BYTES] = "bytes",
  [MODIKE_ATTR_FMT_U16] = "a 16-bit number",
  [MODIKE_ATTR_FMT_U32] = "a 32-bit number",
  [MODIKE_ATTR_FMT_IP4] = "an IPv4 address (4 bytes)",
  [MODIKE_ATTR_FMT_IP4_SUBNET] = "an IPv4 subnet (8 bytes, contiguous mask)",
  [MODIKE_ATTR_FMT_IP6] = "an IPv6 address (16 bytes)",
  [MODIKE_ATTR_FMT_IP6_PREFIX] = "an IPv6 address and prefix length (17 bytes, length <= 128)",
  [MODIKE_ATTR_FMT_TEXT] = "UTF-8 text without NUL",
  [MODIKE_ATTR_FMT_U16_LIST] = "a list of 16-bit numbers",
};

/* The prefix length of a netmask, or -1 when the mask is not contiguous. */
static int
mask_length (const guint8 *mask, gsize len)
{
  int plen = 0;
  gsize i = 0;

  for (; i < len && mask[i] == 0xff; i++)
    plen += 8;
  if (i < len)
    {
      guint8 m = mask[i++];

      while (m & 0x80)
        {
          plen++;
          m = (guint8) (m << 1);
        }
      if (m != 0)
        return -1;
    }
  for (; i < len; i++)
    if (mask[i] != 0)
      return -1;
  return plen;
}

static gboolean
read_addr (ModikeReader *r, int family, ModikeAddr *out)
{
  memset (out, 0, sizeof *out);
  out->family = family;
  return modike_reader_copy (r, out->addr, family == AF_INET ? 4 : 16);
}

static gboolean
decode_tlv (ModikeReader *r, ModikeAttrFormat format, ModikeAttrValue *v)
{
  gsize len = modike_reader_left (r);
  guint8 mask[4], plen;
  const guint8 *text;
  int ml;

  switch (format)
    {
    case MODIKE_ATTR_FMT_BYTES:
      return TRUE;
    case MODIKE_ATTR_FMT_U16:
      {
        guint16 n;

        if (len != 2 || !modike_reader_u16 (r, &n))
          return FALSE;
        v->number = n;
        return TRUE;
      }
    case MODIKE_ATTR_FMT_U32:
      if (len < 1 || len > 4)
        return FALSE;
      for (gsize i = 0; i < len; i++)
        {
          guint8 b;

          if (!modike_reader_u8 (r, &b))
            return FALSE;
          v->number = v->number << 8 | b;
        }
      return TRUE;
    case MODIKE_ATTR_FMT_IP4:
      return len == 4 && read_addr (r, AF_INET, &v->addr);
    case MODIKE_ATTR_FMT_IP6:
      return len == 16 && read_addr (r, AF_INET6, &v->addr);
    case MODIKE_ATTR_FMT_IP4_SUBNET:
      if (len != 8 || !read_addr (r, AF_INET, &v->addr) || !modike_reader_copy (r, mask, sizeof mask))
        return FALSE;
      if ((ml = mask_length (mask, sizeof mask)) < 0)
        return FALSE;
      v->prefix.net = v->addr;
      v->prefix.plen = (guint8) ml;
      return TRUE;
    case MODIKE_ATTR_FMT_IP6_PREFIX:
      if (len != 17 || !read_addr (r, AF_INET6, &v->addr) || !modike_reader_u8 (r, &plen) || plen > 128)
        return FALSE;
      v->prefix.net = v->addr;
      v->prefix.plen = plen;
      return TRUE;
    case MODIKE_ATTR_FMT_TEXT:
      return modike_reader_bytes (r, len, &text) && memchr (text, '\0', len) == NULL &&
             g_utf8_validate ((const char *) text, (gssize) len, NULL);
    case MODIKE_ATTR_FMT_U16_LIST:
      return len % 2 == 0;
    default:
      return FALSE;
    }
}

gboolean
modike_attr_value_decode (const ModikeAttr *a, ModikeAttrFormat format, ModikeAttrValue *out, GError **error)
{
  ModikeAttrValue v = { 0 };
  gboolean ok;

  g_return_val_if_fail (a != NULL && out != NULL, FALSE);
  v.type = a->type;
  v.format = format;
  if (a->tv)
    {
      /* A TV value is two bytes: only the numbers can be one. */
      v.number = a->value;
      ok = format == MODIKE_ATTR_FMT_U16 || format == MODIKE_ATTR_FMT_U32 || format == MODIKE_ATTR_FMT_BYTES;
    }
  else
    {
      ModikeReader r;

      v.data = a->data != NULL ? g_bytes_get_data (a->data, &v.len) : NULL;
      v.empty = v.len == 0;
      modike_reader_init (&r, v.data, v.len);
      ok = v.empty || decode_tlv (&r, format, &v);
    }
  if (!ok)
    {
      g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_MALFORMED,
                   "attribute %u: %s of %" G_GSIZE_FORMAT " bytes is not %s", a->type, a->tv ? "TV value" : "value",
                   a->tv ? (gsize) 2 : v.len,
                   (guint) format < G_N_ELEMENTS (format_names) ? format_names[format] : "a known format");
      return FALSE;
    }
  *out = v;
  return TRUE;
}

void
modike_attr_add_addr (GArray *attrs, guint16 type, const ModikeAddr *addr)
{
  modike_attr_add_tlv (attrs, type, addr->addr, modike_addr_len (addr));
}

void
modike_attr_add_prefix (GArray *attrs, guint16 type, const ModikePrefix *prefix)
{
  guint8 buf[17] = { 0 };

  if (prefix->net.family == AF_INET)
    {
      memcpy (buf, prefix->net.addr, 4);
      for (guint i = 0; i < MIN (prefix->plen, 32u); i++)
        buf[4 + i / 8] |= (guint8) (0x80 >> (i % 8));
      modike_attr_add_tlv (attrs, type, buf, 8);
    }
  else
    {
      memcpy (buf, prefix->net.addr, 16);
      buf[16] = prefix->plen;
      modike_attr_add_tlv (attrs, type, buf, 17);
    }
}
