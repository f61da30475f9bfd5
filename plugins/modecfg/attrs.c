/* Mode config attributes: what a message says, decoded from and encoded
 * to ATTR payload attributes. The core checks each value against the
 * format claimed for its type (cfg-attr.h) before it gets here. */
#include "modecfg.h"

#include <string.h>

const ModikeAttrSpec modecfg_specs[] = {
  { MODECFG_IP4_ADDRESS, MODIKE_ATTR_FMT_IP4, "INTERNAL_IP4_ADDRESS" },
  { MODECFG_IP4_NETMASK, MODIKE_ATTR_FMT_IP4, "INTERNAL_IP4_NETMASK" },
  { MODECFG_IP4_DNS, MODIKE_ATTR_FMT_IP4, "INTERNAL_IP4_DNS" },
  { MODECFG_IP4_NBNS, MODIKE_ATTR_FMT_IP4, "INTERNAL_IP4_NBNS" },
  { MODECFG_ADDRESS_EXPIRY, MODIKE_ATTR_FMT_U32, "INTERNAL_ADDRESS_EXPIRY" },
  { MODECFG_IP4_DHCP, MODIKE_ATTR_FMT_BYTES, "INTERNAL_IP4_DHCP" },
  { MODECFG_APPLICATION_VERSION, MODIKE_ATTR_FMT_BYTES, "APPLICATION_VERSION" },
  /* 16 bytes in the draft, 17 (with a prefix length) from some peers */
  { MODECFG_IP6_ADDRESS, MODIKE_ATTR_FMT_BYTES, "INTERNAL_IP6_ADDRESS" },
  { MODECFG_IP6_NETMASK, MODIKE_ATTR_FMT_BYTES, "INTERNAL_IP6_NETMASK" },
  { MODECFG_IP6_DNS, MODIKE_ATTR_FMT_IP6, "INTERNAL_IP6_DNS" },
  { MODECFG_IP6_NBNS, MODIKE_ATTR_FMT_IP6, "INTERNAL_IP6_NBNS" },
  { MODECFG_IP6_DHCP, MODIKE_ATTR_FMT_BYTES, "INTERNAL_IP6_DHCP" },
  { MODECFG_IP4_SUBNET, MODIKE_ATTR_FMT_IP4_SUBNET, "INTERNAL_IP4_SUBNET" },
  { MODECFG_SUPPORTED_ATTRIBUTES, MODIKE_ATTR_FMT_U16_LIST, "SUPPORTED_ATTRIBUTES" },
  { MODECFG_IP6_SUBNET, MODIKE_ATTR_FMT_IP6_PREFIX, "INTERNAL_IP6_SUBNET" },
  { UNITY_BANNER, MODIKE_ATTR_FMT_BYTES, "UNITY_BANNER" },
  { UNITY_SAVE_PASSWD, MODIKE_ATTR_FMT_U32, "UNITY_SAVE_PASSWD" },
  { UNITY_DEF_DOMAIN, MODIKE_ATTR_FMT_BYTES, "UNITY_DEF_DOMAIN" },
  { UNITY_SPLITDNS_NAME, MODIKE_ATTR_FMT_BYTES, "UNITY_SPLITDNS_NAME" },
  { UNITY_SPLIT_INCLUDE, MODIKE_ATTR_FMT_BYTES, "UNITY_SPLIT_INCLUDE" },
  { UNITY_NATT_PORT, MODIKE_ATTR_FMT_U32, "UNITY_NATT_PORT" },
  { UNITY_LOCAL_LAN, MODIKE_ATTR_FMT_BYTES, "UNITY_LOCAL_LAN" },
  { UNITY_PFS, MODIKE_ATTR_FMT_U32, "UNITY_PFS" },
  { UNITY_FW_TYPE, MODIKE_ATTR_FMT_BYTES, "UNITY_FW_TYPE" },
  { UNITY_BACKUP_SERVERS, MODIKE_ATTR_FMT_BYTES, "UNITY_BACKUP_SERVERS" },
  { UNITY_DDNS_HOSTNAME, MODIKE_ATTR_FMT_BYTES, "UNITY_DDNS_HOSTNAME" },
};
const gsize modecfg_n_specs = G_N_ELEMENTS (modecfg_specs);

static const ModikeAttrSpec *
spec_of (guint16 type)
{
  for (gsize i = 0; i < G_N_ELEMENTS (modecfg_specs); i++)
    if (modecfg_specs[i].type == type)
      return &modecfg_specs[i];
  return NULL;
}

const char *
modecfg_attr_name (guint16 type)
{
  const ModikeAttrSpec *s = spec_of (type);

  return s != NULL ? s->name : NULL;
}

void
modecfg_attrs_init (ModecfgAttrs *a)
{
  memset (a, 0, sizeof *a);
  a->asked = g_array_new (FALSE, FALSE, sizeof (guint16));
  a->dns = g_array_new (FALSE, FALSE, sizeof (ModikeAddr));
  a->nbns = g_array_new (FALSE, FALSE, sizeof (ModikeAddr));
  a->subnets = g_array_new (FALSE, FALSE, sizeof (ModikePrefix));
  a->split_include = g_array_new (FALSE, FALSE, sizeof (ModikePrefix));
  a->split_exclude = g_array_new (FALSE, FALSE, sizeof (ModikePrefix));
  a->split_dns = g_ptr_array_new_with_free_func (g_free);
  a->supported = g_array_new (FALSE, FALSE, sizeof (guint16));
}

void
modecfg_attrs_clear (ModecfgAttrs *a)
{
  if (a->asked == NULL)
    return;
  g_array_unref (a->asked);
  g_array_unref (a->dns);
  g_array_unref (a->nbns);
  g_array_unref (a->subnets);
  g_array_unref (a->split_include);
  g_array_unref (a->split_exclude);
  g_ptr_array_unref (a->split_dns);
  g_array_unref (a->supported);
  g_free (a->domain);
  g_free (a->banner);
  g_free (a->app_version);
  memset (a, 0, sizeof *a);
}

gboolean
modecfg_attrs_asked (const ModecfgAttrs *a, guint16 type)
{
  for (guint i = 0; i < a->asked->len; i++)
    if (g_array_index (a->asked, guint16, i) == type)
      return TRUE;
  return FALSE;
}

static gboolean
malformed (GError **error, guint16 type, const char *what)
{
  g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_MALFORMED, "%s: %s", modecfg_attr_name (type), what);
  return FALSE;
}

/* Text for logs and the host: valid UTF-8 without NUL, bounded. */
static gboolean
take_text (const ModikeAttrValue *v, char **out, GError **error)
{
  if (v->len > MODECFG_MAX_TEXT)
    return malformed (error, v->type, "longer than 1024 bytes");
  if (memchr (v->data, 0, v->len) != NULL || !g_utf8_validate ((const char *) v->data, v->len, NULL))
    return malformed (error, v->type, "not UTF-8 text");
  g_free (*out);
  *out = g_strndup ((const char *) v->data, v->len);
  return TRUE;
}

/* A domain or list of domains: text on one line, without control
 * characters (it reaches logs and terminals; tun checks the names). */
static gboolean
take_line (const ModikeAttrValue *v, char **out, GError **error)
{
  if (!take_text (v, out, error))
    return FALSE;
  for (const char *c = *out; *c != '\0'; c++)
    if ((guchar) *c < 0x20 || *c == 0x7f)
      {
        g_clear_pointer (out, g_free);
        return malformed (error, v->type, "control characters in a domain");
      }
  return TRUE;
}

static gboolean
list_room (const GArray *list, const ModikeAttrValue *v, GError **error)
{
  return list->len < MODECFG_MAX_LIST || malformed (error, v->type, "too many values in one message");
}

/* The split DNS names: a comma-separated list (Cisco), each a domain. */
static gboolean
take_names (ModecfgAttrs *a, const ModikeAttrValue *v, GError **error)
{
  g_autofree char *text = NULL;
  g_auto (GStrv) names = NULL;

  if (!take_line (v, &text, error))
    return FALSE;
  names = g_strsplit (text, ",", -1);
  for (guint i = 0; names[i] != NULL; i++)
    {
      g_strstrip (names[i]);
      if (*names[i] == '\0')
        continue;
      if (a->split_dns->len >= MODECFG_MAX_LIST)
        return malformed (error, v->type, "too many names");
      g_ptr_array_add (a->split_dns, g_strdup (names[i]));
    }
  return TRUE;
}

void
modecfg_prefix_network (ModikePrefix *p)
{
  for (guint b = p->plen; b < modike_addr_len (&p->net) * 8; b++)
    p->net.addr[b / 8] &= (guint8) ~(0x80u >> (b % 8));
}

gboolean
modecfg_unity_split_decode (const guint8 *data, gsize len, GArray *out, GError **error)
{
  ModikeReader r;

  if (len % MODECFG_UNITY_ENTRY_LEN != 0)
    return malformed (error, UNITY_SPLIT_INCLUDE, "length not a multiple of 14");
  if (len / MODECFG_UNITY_ENTRY_LEN + out->len > MODECFG_MAX_LIST)
    return malformed (error, UNITY_SPLIT_INCLUDE, "too many networks");
  modike_reader_init (&r, data, len);
  while (modike_reader_left (&r) > 0)
    {
      const guint8 *net;
      g_autoptr (GBytes) b = NULL;
      ModikeAttr attr = { 0 };
      ModikeAttrValue v;
      ModikePrefix p;

      if (!modike_reader_bytes (&r, 8, &net) || !modike_reader_skip (&r, MODECFG_UNITY_ENTRY_LEN - 8))
        return malformed (error, UNITY_SPLIT_INCLUDE, "truncated entry");
      /* Address and netmask are an INTERNAL_IP4_SUBNET value: the core's
       * check of that format (contiguous mask) serves here too. */
      b = g_bytes_new_static (net, 8);
      attr.type = UNITY_SPLIT_INCLUDE;
      attr.data = b;
      if (!modike_attr_value_decode (&attr, MODIKE_ATTR_FMT_IP4_SUBNET, &v, error))
        return FALSE;
      p = v.prefix;
      modecfg_prefix_network (&p);
      g_array_append_val (out, p);
    }
  return TRUE;
}

GBytes *
modecfg_unity_split_encode (const GArray *prefixes)
{
  GByteArray *b = g_byte_array_new ();

  for (guint i = 0; i < prefixes->len; i++)
    {
      const ModikePrefix *p = &g_array_index (prefixes, ModikePrefix, i);
      guint32 mask = p->plen == 0 ? 0 : G_MAXUINT32 << (32 - p->plen);
      static const guint8 zero[MODECFG_UNITY_ENTRY_LEN - 8] = { 0 };

      if (p->net.family != AF_INET)
        continue;   /* Unity lists are IPv4 only */
      modike_put_bytes (b, p->net.addr, 4);
      modike_put_u32 (b, mask);
      modike_put_bytes (b, zero, sizeof zero);
    }
  return g_byte_array_free_to_bytes (b);
}

static ModikePrefix
ip6_prefix (const ModikeAttrValue *v, guint8 plen)
{
  ModikePrefix p = { 0 };

  p.net.family = AF_INET6;
  memcpy (p.net.addr, v->data, 16);
  p.plen = plen;
  return p;
}

gboolean
modecfg_attrs_take (ModecfgAttrs *a, const ModikeAttrValue *v, GError **error)
{
  if (!modecfg_attrs_asked (a, v->type))
    g_array_append_val (a->asked, v->type);
  if (v->empty)
    return TRUE;
  switch (v->type)
    {
    case MODECFG_IP4_ADDRESS:
      a->has_addr4 = TRUE;
      a->addr4 = v->addr;
      break;
    case MODECFG_IP4_NETMASK:
      a->has_mask4 = TRUE;
      a->mask4 = v->addr;
      break;
    case MODECFG_IP4_DNS:
    case MODECFG_IP6_DNS:
      if (!list_room (a->dns, v, error))
        return FALSE;
      g_array_append_val (a->dns, v->addr);
      break;
    case MODECFG_IP4_NBNS:
    case MODECFG_IP6_NBNS:
      if (!list_room (a->nbns, v, error))
        return FALSE;
      g_array_append_val (a->nbns, v->addr);
      break;
    case MODECFG_ADDRESS_EXPIRY:
      a->has_expiry = TRUE;
      a->expiry = v->number;
      break;
    case MODECFG_APPLICATION_VERSION:
      return take_text (v, &a->app_version, error);
    case MODECFG_IP6_ADDRESS:
      if (v->len != 16 && v->len != 17)
        return malformed (error, v->type, "want 16 or 17 bytes");
      if (v->len == 17 && v->data[16] > 128)
        return malformed (error, v->type, "prefix length above 128");
      a->has_addr6 = TRUE;
      a->addr6 = ip6_prefix (v, v->len == 17 ? v->data[16] : 128);
      break;
    case MODECFG_IP4_SUBNET:
    case MODECFG_IP6_SUBNET:
      if (!list_room (a->subnets, v, error))
        return FALSE;
      g_array_append_val (a->subnets, v->prefix);
      break;
    case MODECFG_SUPPORTED_ATTRIBUTES:
      for (gsize i = 0; i + 1 < v->len && a->supported->len < 256; i += 2)
        {
          guint16 t = (guint16) (v->data[i] << 8 | v->data[i + 1]);

          g_array_append_val (a->supported, t);
        }
      break;
    case UNITY_BANNER:
      return take_text (v, &a->banner, error);
    case UNITY_SAVE_PASSWD:
      a->has_save_passwd = TRUE;
      a->save_passwd = v->number;
      break;
    case UNITY_DEF_DOMAIN:
      return take_line (v, &a->domain, error);
    case UNITY_SPLITDNS_NAME:
      return take_names (a, v, error);
    case UNITY_SPLIT_INCLUDE:
      return modecfg_unity_split_decode (v->data, v->len, a->split_include, error);
    case UNITY_LOCAL_LAN:
      return modecfg_unity_split_decode (v->data, v->len, a->split_exclude, error);
    case UNITY_PFS:
      a->has_pfs = TRUE;
      a->pfs = v->number;
      break;
    default:   /* DHCP, IPv6 netmask, NAT-T port, firewall, backup servers, DDNS: not used */
      break;
    }
  return TRUE;
}

gboolean
modecfg_attrs_decode (const GArray *attrs, ModecfgAttrs *a, GError **error)
{
  for (guint i = 0; i < attrs->len; i++)
    {
      const ModikeAttr *e = &g_array_index (attrs, ModikeAttr, i);
      const ModikeAttrSpec *s = spec_of (e->type);
      ModikeAttrValue v;

      if (s == NULL)
        continue;
      if (!modike_attr_value_decode (e, s->format, &v, error) || !modecfg_attrs_take (a, &v, error))
        return FALSE;
    }
  return TRUE;
}

static void
add_text (GArray *attrs, guint16 type, const char *text)
{
  if (text != NULL)
    modike_attr_add_tlv (attrs, type, (const guint8 *) text, strlen (text));
}

static void
add_split (GArray *attrs, guint16 type, const GArray *nets)
{
  g_autoptr (GBytes) b = NULL;
  gsize n;

  if (nets->len == 0)
    return;
  b = modecfg_unity_split_encode (nets);
  if ((n = g_bytes_get_size (b)) > 0)
    modike_attr_add_tlv (attrs, type, g_bytes_get_data (b, NULL), n);
}

void
modecfg_attrs_encode (const ModecfgAttrs *a, GArray *attrs)
{
  if (a->has_addr4)
    modike_attr_add_addr (attrs, MODECFG_IP4_ADDRESS, &a->addr4);
  if (a->has_mask4)
    modike_attr_add_addr (attrs, MODECFG_IP4_NETMASK, &a->mask4);
  if (a->has_addr6)
    modike_attr_add_prefix (attrs, MODECFG_IP6_ADDRESS, &a->addr6);
  for (guint i = 0; i < a->dns->len; i++)
    {
      const ModikeAddr *d = &g_array_index (a->dns, ModikeAddr, i);

      modike_attr_add_addr (attrs, d->family == AF_INET ? MODECFG_IP4_DNS : MODECFG_IP6_DNS, d);
    }
  for (guint i = 0; i < a->nbns->len; i++)
    {
      const ModikeAddr *d = &g_array_index (a->nbns, ModikeAddr, i);

      modike_attr_add_addr (attrs, d->family == AF_INET ? MODECFG_IP4_NBNS : MODECFG_IP6_NBNS, d);
    }
  if (a->has_expiry)
    {
      guint32 be = GUINT32_TO_BE (a->expiry);

      modike_attr_add_tlv (attrs, MODECFG_ADDRESS_EXPIRY, (const guint8 *) &be, sizeof be);
    }
  for (guint i = 0; i < a->subnets->len; i++)
    {
      const ModikePrefix *p = &g_array_index (a->subnets, ModikePrefix, i);

      modike_attr_add_prefix (attrs, p->net.family == AF_INET ? MODECFG_IP4_SUBNET : MODECFG_IP6_SUBNET, p);
    }
  add_split (attrs, UNITY_SPLIT_INCLUDE, a->split_include);
  add_split (attrs, UNITY_LOCAL_LAN, a->split_exclude);
  add_text (attrs, UNITY_DEF_DOMAIN, a->domain);
  if (a->split_dns->len > 0)
    {
      g_autoptr (GString) names = g_string_new (NULL);

      for (guint i = 0; i < a->split_dns->len; i++)
        g_string_append_printf (names, "%s%s", i > 0 ? "," : "", (const char *) a->split_dns->pdata[i]);
      add_text (attrs, UNITY_SPLITDNS_NAME, names->str);
    }
  add_text (attrs, UNITY_BANNER, a->banner);
  add_text (attrs, MODECFG_APPLICATION_VERSION, a->app_version);
  if (a->has_save_passwd)
    modike_attr_add_tv (attrs, UNITY_SAVE_PASSWD, (guint16) a->save_passwd);
  if (a->has_pfs)
    modike_attr_add_tv (attrs, UNITY_PFS, (guint16) a->pfs);
}
