/* GBytes that wipe their memory when freed (modike/bytes.h). */
#include <modike/bytes.h>

#include <string.h>

typedef struct {
  gpointer buf;
  gsize len;
} Wiped;

static void
wiped_free (gpointer p)
{
  Wiped *w = p;

  if (w->buf != NULL)
    explicit_bzero (w->buf, w->len);
  g_free (w->buf);
  g_free (w);
}

GBytes *
modike_bytes_new_wiped_take (void *buf, gsize len)
{
  Wiped *w = g_new (Wiped, 1);

  w->buf = buf;
  w->len = len;
  return g_bytes_new_with_free_func (buf, len, wiped_free, w);
}

GBytes *
modike_bytes_new_wiped (const void *data, gsize len)
{
  return modike_bytes_new_wiped_take (len > 0 ? g_memdup2 (data, len) : NULL, len);
}
