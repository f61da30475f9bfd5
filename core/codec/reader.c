/* The bounded reader: the only code in modike doing pointer arithmetic on
 * packet bytes. Every read checks `left` first; a failed read changes
 * nothing, so callers can report where they stopped. */
#include <modike/reader.h>

#include <string.h>

void
modike_reader_init (ModikeReader *r, const guint8 *data, gsize len)
{
  g_return_if_fail (r != NULL);
  g_return_if_fail (data != NULL || len == 0);
  r->p = data;
  r->left = len;
}

gsize
modike_reader_left (const ModikeReader *r)
{
  return r->left;
}

/* The one place that checks `left` and advances; every other read goes
 * through it. n == 0 on an empty reader keeps p (possibly NULL) as is. */
gboolean
modike_reader_bytes (ModikeReader *r, gsize n, const guint8 **out)
{
  if (r->left < n)
    return FALSE;
  *out = r->p;
  if (n > 0)
    r->p += n;
  r->left -= n;
  return TRUE;
}

gboolean
modike_reader_u8 (ModikeReader *r, guint8 *out)
{
  const guint8 *b;

  if (!modike_reader_bytes (r, 1, &b))
    return FALSE;
  *out = b[0];
  return TRUE;
}

gboolean
modike_reader_u16 (ModikeReader *r, guint16 *out)
{
  const guint8 *b;

  if (!modike_reader_bytes (r, 2, &b))
    return FALSE;
  *out = (guint16) ((b[0] << 8) | b[1]);
  return TRUE;
}

gboolean
modike_reader_u32 (ModikeReader *r, guint32 *out)
{
  const guint8 *b;

  if (!modike_reader_bytes (r, 4, &b))
    return FALSE;
  *out = ((guint32) b[0] << 24) | ((guint32) b[1] << 16) | ((guint32) b[2] << 8) | b[3];
  return TRUE;
}

gboolean
modike_reader_copy (ModikeReader *r, void *dst, gsize n)
{
  const guint8 *src;

  if (!modike_reader_bytes (r, n, &src))
    return FALSE;
  if (n > 0)
    memcpy (dst, src, n);
  return TRUE;
}

gboolean
modike_reader_sub (ModikeReader *r, gsize n, ModikeReader *out)
{
  const guint8 *p;

  if (!modike_reader_bytes (r, n, &p))
    return FALSE;
  out->p = p;
  out->left = n;
  return TRUE;
}

gboolean
modike_reader_skip (ModikeReader *r, gsize n)
{
  const guint8 *unused;

  return modike_reader_bytes (r, n, &unused);
}

void
modike_put_u8 (GByteArray *out, guint8 v)
{
  g_byte_array_append (out, &v, 1);
}

void
modike_put_u16 (GByteArray *out, guint16 v)
{
  guint8 b[2] = { (guint8) (v >> 8), (guint8) v };
  g_byte_array_append (out, b, sizeof b);
}

void
modike_put_u32 (GByteArray *out, guint32 v)
{
  guint8 b[4] = { (guint8) (v >> 24), (guint8) (v >> 16), (guint8) (v >> 8), (guint8) v };
  g_byte_array_append (out, b, sizeof b);
}

void
modike_put_bytes (GByteArray *out, const void *data, gsize len)
{
  g_return_if_fail (data != NULL || len == 0);
  g_return_if_fail (len <= G_MAXUINT);
  if (len > 0)
    g_byte_array_append (out, data, (guint) len);
}

void
modike_patch_u16 (GByteArray *out, gsize offset, guint16 v)
{
  g_return_if_fail (offset <= out->len && out->len - offset >= 2);
  out->data[offset] = (guint8) (v >> 8);
  out->data[offset + 1] = (guint8) v;
}
