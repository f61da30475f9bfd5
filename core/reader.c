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

gboolean
modike_reader_u8 (ModikeReader *r, guint8 *out)
{
  if (r->left < 1)
    return FALSE;
  *out = r->p[0];
  r->p += 1;
  r->left -= 1;
  return TRUE;
}

gboolean
modike_reader_u16 (ModikeReader *r, guint16 *out)
{
  if (r->left < 2)
    return FALSE;
  *out = (guint16) ((r->p[0] << 8) | r->p[1]);
  r->p += 2;
  r->left -= 2;
  return TRUE;
}

gboolean
modike_reader_u32 (ModikeReader *r, guint32 *out)
{
  if (r->left < 4)
    return FALSE;
  *out = ((guint32) r->p[0] << 24) | ((guint32) r->p[1] << 16) | ((guint32) r->p[2] << 8) | r->p[3];
  r->p += 4;
  r->left -= 4;
  return TRUE;
}

gboolean
modike_reader_bytes (ModikeReader *r, gsize n, const guint8 **out)
{
  if (r->left < n)
    return FALSE;
  *out = r->p;
  /* n == 0 on an empty reader keeps p (possibly NULL) as is. */
  if (n > 0)
    r->p += n;
  r->left -= n;
  return TRUE;
}

gboolean
modike_reader_copy (ModikeReader *r, void *dst, gsize n)
{
  if (r->left < n)
    return FALSE;
  if (n > 0)
    {
      memcpy (dst, r->p, n);
      r->p += n;
    }
  r->left -= n;
  return TRUE;
}

gboolean
modike_reader_sub (ModikeReader *r, gsize n, ModikeReader *out)
{
  if (r->left < n)
    return FALSE;
  out->p = r->p;
  out->left = n;
  if (n > 0)
    r->p += n;
  r->left -= n;
  return TRUE;
}

gboolean
modike_reader_skip (ModikeReader *r, gsize n)
{
  if (r->left < n)
    return FALSE;
  if (n > 0)
    r->p += n;
  r->left -= n;
  return TRUE;
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
