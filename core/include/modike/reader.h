/* The bounded reader: the only code that walks untrusted bytes.
 * Every read checks the bytes left and returns FALSE instead of reading
 * past the end; a failed read leaves the reader unchanged. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct {
  const guint8 *p; /* next unread byte */
  gsize left;      /* bytes left */
} ModikeReader;

void modike_reader_init (ModikeReader *r, const guint8 *data, gsize len);
gsize modike_reader_left (const ModikeReader *r);

gboolean modike_reader_u8 (ModikeReader *r, guint8 *out) G_GNUC_WARN_UNUSED_RESULT;
gboolean modike_reader_u16 (ModikeReader *r, guint16 *out) G_GNUC_WARN_UNUSED_RESULT;  /* network order */
gboolean modike_reader_u32 (ModikeReader *r, guint32 *out) G_GNUC_WARN_UNUSED_RESULT;  /* network order */
/* Borrow n bytes (pointer into the buffer) and advance. */
gboolean modike_reader_bytes (ModikeReader *r, gsize n, const guint8 **out) G_GNUC_WARN_UNUSED_RESULT;
/* Copy exactly n bytes into dst and advance. */
gboolean modike_reader_copy (ModikeReader *r, void *dst, gsize n) G_GNUC_WARN_UNUSED_RESULT;
/* Split off a sub-reader of n bytes and advance past them. */
gboolean modike_reader_sub (ModikeReader *r, gsize n, ModikeReader *out) G_GNUC_WARN_UNUSED_RESULT;
gboolean modike_reader_skip (ModikeReader *r, gsize n) G_GNUC_WARN_UNUSED_RESULT;

/* Writers append in network order to a GByteArray. */
void modike_put_u8 (GByteArray *out, guint8 v);
void modike_put_u16 (GByteArray *out, guint16 v);
void modike_put_u32 (GByteArray *out, guint32 v);
void modike_put_bytes (GByteArray *out, const void *data, gsize len);
/* Overwrite a u16 at an offset already written (lengths known only later). */
void modike_patch_u16 (GByteArray *out, gsize offset, guint16 v);

G_END_DECLS
