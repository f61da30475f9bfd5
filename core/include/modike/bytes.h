/* Byte buffers that may hold credentials (decrypted messages, XAuth
 * attribute values, payload bodies we build): wiped when the last
 * reference goes, so a password does not linger in freed heap memory. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* A copy of data, wiped on free. */
GBytes *modike_bytes_new_wiped (const void *data, gsize len);
/* Takes buf (g_malloc'ed, len bytes; NULL when len is 0), wiped on free. */
GBytes *modike_bytes_new_wiped_take (void *buf, gsize len);

G_END_DECLS
