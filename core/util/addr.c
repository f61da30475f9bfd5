/* Endpoint and prefix helpers. Text parsing errors are reported in
 * G_OPTION_ERROR / G_OPTION_ERROR_BAD_VALUE: the text comes from the
 * configuration or the command line, not from the wire.
 *
 * Prefixes are strict: "198.51.100.1/24" is refused (host bits set) rather
 * than silently widened to 198.51.100.0/24, since such a typo usually
 * means the writer meant a host or a different length. */
#include <modike/addr.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

gsize
modike_addr_len (const ModikeAddr *a)
{
  switch (a->family)
    {
    case AF_INET:
      return 4;
    case AF_INET6:
      return 16;
    default:
      return 0;
    }
}

gboolean
modike_addr_parse (const char *text, guint16 port, ModikeAddr *out, GError **error)
{
  ModikeAddr a = { 0 };

  g_return_val_if_fail (out != NULL, FALSE);
  if (text != NULL && inet_pton (AF_INET, text, a.addr) == 1)
    a.family = AF_INET;
  else if (text != NULL && inet_pton (AF_INET6, text, a.addr) == 1)
    a.family = AF_INET6;
  else
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "\"%s\" is not an IPv4 or IPv6 address", text ? text : "(null)");
      return FALSE;
    }
  a.port = port;
  *out = a;
  return TRUE;
}

const char *
modike_addr_format (const ModikeAddr *a, char *buf, gsize buflen)
{
  char ip[INET6_ADDRSTRLEN];

  g_return_val_if_fail (buf != NULL && buflen > 0, buf);
  if ((a->family != AF_INET && a->family != AF_INET6)
      || inet_ntop (a->family, a->addr, ip, sizeof ip) == NULL)
    g_strlcpy (ip, "(unset)", sizeof ip);
  /* Port 0 means "no port": print the bare address. */
  if (a->port != 0)
    g_snprintf (buf, buflen, "%s[%u]", ip, a->port);
  else
    g_strlcpy (buf, ip, buflen);
  return buf;
}

gboolean
modike_addr_equal_ip (const ModikeAddr *a, const ModikeAddr *b)
{
  gsize len = modike_addr_len (a);

  if (a->family != b->family)
    return FALSE;
  return memcmp (a->addr, b->addr, len) == 0;
}

gboolean
modike_addr_equal (const ModikeAddr *a, const ModikeAddr *b)
{
  return modike_addr_equal_ip (a, b) && a->port == b->port;
}

void
modike_addr_to_sockaddr (const ModikeAddr *a, struct sockaddr_storage *ss, socklen_t *len)
{
  memset (ss, 0, sizeof *ss);
  if (a->family == AF_INET)
    {
      struct sockaddr_in *sin = (struct sockaddr_in *) ss;
      sin->sin_family = AF_INET;
      sin->sin_port = g_htons (a->port);
      memcpy (&sin->sin_addr, a->addr, 4);
      *len = sizeof *sin;
    }
  else if (a->family == AF_INET6)
    {
      struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) ss;
      sin6->sin6_family = AF_INET6;
      sin6->sin6_port = g_htons (a->port);
      memcpy (&sin6->sin6_addr, a->addr, 16);
      *len = sizeof *sin6;
    }
  else
    *len = 0;
}

/* Addresses are taken as they come: a v4-mapped IPv6 address stays IPv6,
 * so a reply goes back through the same socket family. */
gboolean
modike_addr_from_sockaddr (const struct sockaddr *sa, socklen_t len, ModikeAddr *out)
{
  ModikeAddr a = { 0 };

  if (sa == NULL || len < (socklen_t) sizeof (sa_family_t))
    return FALSE;
  if (sa->sa_family == AF_INET && len >= (socklen_t) sizeof (struct sockaddr_in))
    {
      struct sockaddr_in sin;
      memcpy (&sin, sa, sizeof sin);
      a.family = AF_INET;
      memcpy (a.addr, &sin.sin_addr, 4);
      a.port = g_ntohs (sin.sin_port);
    }
  else if (sa->sa_family == AF_INET6 && len >= (socklen_t) sizeof (struct sockaddr_in6))
    {
      struct sockaddr_in6 sin6;
      memcpy (&sin6, sa, sizeof sin6);
      a.family = AF_INET6;
      memcpy (a.addr, &sin6.sin6_addr, 16);
      a.port = g_ntohs (sin6.sin6_port);
    }
  else
    return FALSE;
  *out = a;
  return TRUE;
}

/* TRUE if the bits of addr beyond plen are all zero. */
static gboolean
host_bits_zero (const guint8 *addr, gsize len, guint plen)
{
  for (gsize i = 0; i < len; i++)
    {
      guint first = (guint) i * 8;
      guint8 mask;
      if (first + 8 <= plen)
        continue;
      mask = first >= plen ? 0xff : (guint8) (0xff >> (plen - first));
      if (addr[i] & mask)
        return FALSE;
    }
  return TRUE;
}

gboolean
modike_prefix_parse (const char *text, ModikePrefix *out, GError **error)
{
  g_autofree char *ip = NULL;
  const char *slash;
  ModikePrefix p = { 0 };
  guint max;

  g_return_val_if_fail (out != NULL, FALSE);
  if (text == NULL)
    {
      g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "no prefix given");
      return FALSE;
    }
  slash = strchr (text, '/');
  ip = slash ? g_strndup (text, (gsize) (slash - text)) : g_strdup (text);
  if (!modike_addr_parse (ip, 0, &p.net, NULL))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "\"%s\": \"%s\" is not an IPv4 or IPv6 address", text, ip);
      return FALSE;
    }
  max = p.net.family == AF_INET ? 32 : 128;
  if (slash == NULL)
    p.plen = (guint8) max;
  else
    {
      const char *d = slash + 1;
      guint v = 0;
      /* Digits only: no sign, no spaces, at most three of them. */
      if (*d == '\0' || strlen (d) > 3)
        goto bad_len;
      for (; *d; d++)
        {
          if (!g_ascii_isdigit (*d))
            goto bad_len;
          v = v * 10 + (guint) (*d - '0');
        }
      if (v > max)
        goto bad_len;
      p.plen = (guint8) v;
    }
  if (!host_bits_zero (p.net.addr, modike_addr_len (&p.net), p.plen))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "\"%s\": host bits set beyond /%u", text, p.plen);
      return FALSE;
    }
  *out = p;
  return TRUE;

bad_len:
  g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
               "\"%s\": prefix length must be 0..%u", text, max);
  return FALSE;
}

gboolean
modike_prefix_contains (const ModikePrefix *p, const ModikeAddr *a)
{
  guint full, rest;

  if (p->net.family != a->family || modike_addr_len (a) == 0)
    return FALSE;
  full = p->plen / 8;
  rest = p->plen % 8;
  if (memcmp (p->net.addr, a->addr, full) != 0)
    return FALSE;
  if (rest != 0)
    {
      guint8 mask = (guint8) (0xff << (8 - rest));
      if ((p->net.addr[full] & mask) != (a->addr[full] & mask))
        return FALSE;
    }
  return TRUE;
}
