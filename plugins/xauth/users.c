/* The server's users file: salted PBKDF2-HMAC-SHA256 hashes, never
 * plaintext, checked in constant time. */
#include "xauth.h"

#include <gio/gio.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <string.h>

#define HASH_LEN 32
#define SALT_MIN 8
#define SALT_MAX 64
#define ITER_MIN 1000
#define ITER_MAX 10000000

typedef struct {
  char *name;
  guint iterations;
  guint8 salt[SALT_MAX];
  gsize salt_len;
  guint8 hash[HASH_LEN];
} UserEntry;

struct _XauthUsers {
  GPtrArray *entries;   /* UserEntry* */
};

static void
user_entry_free (gpointer p)
{
  UserEntry *e = p;

  g_free (e->name);
  gnutls_memset (e, 0, sizeof *e);
  g_free (e);
}

void
xauth_users_free (XauthUsers *u)
{
  if (u == NULL)
    return;
  g_ptr_array_unref (u->entries);
  g_free (u);
}

guint
xauth_users_count (const XauthUsers *u)
{
  return u != NULL ? u->entries->len : 0;
}

/* Strict base64: only the alphabet and trailing '=' padding, a multiple of
 * four, decoding to between min and max bytes. */
static gboolean
b64_decode (const char *s, guint8 *out, gsize min, gsize max, gsize *out_len)
{
  gsize n = strlen (s), len;
  guchar *bytes;
  gboolean ok;

  if (n == 0 || n % 4 != 0)
    return FALSE;
  for (gsize i = 0; i < n; i++)
    if (!g_ascii_isalnum (s[i]) && s[i] != '+' && s[i] != '/' && !(s[i] == '=' && i >= n - 2))
      return FALSE;
  if (s[n - 2] == '=' && s[n - 1] != '=')
    return FALSE;
  bytes = g_base64_decode (s, &len);
  ok = len >= min && len <= max;
  if (ok)
    memcpy (out, bytes, len);
  gnutls_memset (bytes, 0, len);
  g_free (bytes);
  *out_len = len;
  return ok;
}

static gboolean
derive (const guint8 *password, gsize len, const guint8 *salt, gsize salt_len, guint iterations,
        guint8 out[HASH_LEN])
{
  gnutls_datum_t key = { (unsigned char *) password, (unsigned int) len };
  gnutls_datum_t s = { (unsigned char *) salt, (unsigned int) salt_len };

  return gnutls_pbkdf2 (GNUTLS_MAC_SHA256, &key, &s, iterations, out, HASH_LEN) == 0;
}

static gboolean
valid_name (const char *s)
{
  if (*s == '\0' || strlen (s) > XAUTH_MAX_VALUE || !g_utf8_validate (s, -1, NULL))
    return FALSE;
  for (; *s != '\0'; s++)
    if ((guchar) *s < 0x20 || *s == ':')
      return FALSE;
  return TRUE;
}

static gboolean
parse_line (XauthUsers *u, const char *line, const char *name, guint lineno, GError **error)
{
  g_auto (GStrv) f = g_strsplit (line, ":", -1);
  UserEntry *e;
  guint64 iter;
  gsize hash_len;
  char *end;

  if (g_strv_length (f) != 5)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "%s:%u: want name:pbkdf2-sha256:iterations:salt:hash, found %u fields", name, lineno,
                   g_strv_length (f));
      return FALSE;
    }
  if (!valid_name (f[0]))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%s:%u: bad user name", name, lineno);
      return FALSE;
    }
  if (strcmp (f[1], "pbkdf2-sha256") != 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "%s:%u: user '%s': unknown scheme '%s' (pbkdf2-sha256; plaintext is never accepted)", name,
                   lineno, f[0], f[1]);
      return FALSE;
    }
  iter = g_ascii_strtoull (f[2], &end, 10);
  if (*f[2] == '\0' || *end != '\0' || iter < ITER_MIN || iter > ITER_MAX)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%s:%u: user '%s': iterations '%s' not in %u..%u",
                   name, lineno, f[0], f[2], ITER_MIN, ITER_MAX);
      return FALSE;
    }
  for (guint i = 0; i < u->entries->len; i++)
    if (strcmp (((UserEntry *) u->entries->pdata[i])->name, f[0]) == 0)
      {
        g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%s:%u: user '%s' listed twice", name, lineno,
                     f[0]);
        return FALSE;
      }
  e = g_new0 (UserEntry, 1);
  e->name = g_strdup (f[0]);
  e->iterations = iter;
  if (!b64_decode (f[3], e->salt, SALT_MIN, SALT_MAX, &e->salt_len))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "%s:%u: user '%s': salt is not base64 of %u..%u bytes", name, lineno, f[0], SALT_MIN, SALT_MAX);
      user_entry_free (e);
      return FALSE;
    }
  if (!b64_decode (f[4], e->hash, HASH_LEN, HASH_LEN, &hash_len))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%s:%u: user '%s': hash is not base64 of %u bytes",
                   name, lineno, f[0], HASH_LEN);
      user_entry_free (e);
      return FALSE;
    }
  g_ptr_array_add (u->entries, e);
  return TRUE;
}

XauthUsers *
xauth_users_parse (const char *text, gsize len, const char *name, GError **error)
{
  g_autoptr (XauthUsers) u = g_new0 (XauthUsers, 1);
  g_autofree char *copy = g_strndup (text, len);
  g_auto (GStrv) lines = NULL;

  u->entries = g_ptr_array_new_with_free_func (user_entry_free);
  if (memchr (text, '\0', len) != NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%s: contains a NUL byte", name);
      return NULL;
    }
  lines = g_strsplit (copy, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    {
      char *l = g_strstrip (lines[i]);

      if (*l == '\0' || *l == '#')
        continue;
      if (!parse_line (u, l, name, i + 1, error))
        return NULL;
    }
  return g_steal_pointer (&u);
}

XauthUsers *
xauth_users_load (const char *path, GError **error)
{
  g_autofree char *text = NULL;
  gsize len;

  if (!g_file_get_contents (path, &text, &len, error))
    return NULL;
  return xauth_users_parse (text, len, path, error);
}

gboolean
xauth_users_check (const XauthUsers *u, const char *user, const guint8 *password, gsize len)
{
  static const guint8 dummy_salt[16] = { 0 };
  const UserEntry *e = NULL;
  guint8 got[HASH_LEN];
  gboolean ok;

  for (guint i = 0; u != NULL && i < u->entries->len; i++)
    if (strcmp (((UserEntry *) u->entries->pdata[i])->name, user) == 0)
      e = u->entries->pdata[i];
  if (e == NULL)
    {
      /* The same work as for a known user, so timing does not tell. */
      derive (password, len, dummy_salt, sizeof dummy_salt, XAUTH_PBKDF2_ITERATIONS, got);
      gnutls_memset (got, 0, sizeof got);
      return FALSE;
    }
  ok = derive (password, len, e->salt, e->salt_len, e->iterations, got) && modike_memeq (got, e->hash, HASH_LEN);
  gnutls_memset (got, 0, sizeof got);
  return ok;
}

char *
xauth_users_make_entry (const char *user, const guint8 *password, gsize len, guint iterations, GError **error)
{
  guint8 salt[16], hash[HASH_LEN];
  g_autofree char *s64 = NULL, *h64 = NULL;

  if (!valid_name (user))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "bad user name '%s'", user);
      return NULL;
    }
  if (iterations < ITER_MIN || iterations > ITER_MAX)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "iterations %u not in %u..%u", iterations,
                   ITER_MIN, ITER_MAX);
      return NULL;
    }
  modike_random (salt, sizeof salt);
  if (!derive (password, len, salt, sizeof salt, iterations, hash))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "PBKDF2 failed");
      return NULL;
    }
  s64 = g_base64_encode (salt, sizeof salt);
  h64 = g_base64_encode (hash, sizeof hash);
  gnutls_memset (hash, 0, sizeof hash);
  return g_strdup_printf ("%s:pbkdf2-sha256:%u:%s:%s", user, iterations, s64, h64);
}
