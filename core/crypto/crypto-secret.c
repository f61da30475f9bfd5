/* Secrets, constant-time comparison, wiping and randomness (GnuTLS). */
#include <modike/crypto.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>
#include <string.h>

G_DEFINE_QUARK (modike-crypto-error-quark, modike_crypto_error)

/* Test hook, declared only by the crypto test: it sees a secret's buffer
 * after the wipe and before the free, so the test can prove the wipe. */
void (*modike_secret_wipe_hook) (const guint8 *data, gsize len);

ModikeSecret *
modike_secret_new (gsize len)
{
  /* One block: the key follows its header (a gateway holds several keys
   * per SA; a second allocation each would cost more than most keys). */
  ModikeSecret *s = g_malloc0 (sizeof (ModikeSecret) + MAX (len, 1));

  s->len = len;
  /* Never NULL, so callers can pass data to the libraries even when empty. */
  s->data = (guint8 *) (s + 1);
  return s;
}

ModikeSecret *
modike_secret_new_from (const void *data, gsize len)
{
  ModikeSecret *s;

  g_return_val_if_fail (data != NULL || len == 0, NULL);
  s = modike_secret_new (len);
  if (len > 0)
    memcpy (s->data, data, len);
  return s;
}

ModikeSecret *
modike_secret_dup (const ModikeSecret *s)
{
  g_return_val_if_fail (s != NULL, NULL);
  return modike_secret_new_from (s->data, s->len);
}

void
modike_secret_free (ModikeSecret *s)
{
  if (s == NULL)
    return;
  modike_memwipe (s->data, MAX (s->len, 1));
  if (modike_secret_wipe_hook != NULL)
    modike_secret_wipe_hook (s->data, s->len);
  g_free (s);
}

gboolean
modike_memeq (const void *a, const void *b, gsize len)
{
  if (len == 0)
    return TRUE;
  g_return_val_if_fail (a != NULL && b != NULL, FALSE);
  /* gnutls_memcmp takes time independent of where the buffers differ. */
  return gnutls_memcmp (a, b, len) == 0;
}

void
modike_memwipe (void *p, gsize len)
{
  if (p == NULL || len == 0)
    return;
  /* gnutls_memset is not optimised away like a memset before free. */
  gnutls_memset (p, 0, len);
}

static void
random_level (gnutls_rnd_level_t level, void *buf, gsize len)
{
  int ret;

  if (len == 0)
    return;
  g_return_if_fail (buf != NULL);
  ret = gnutls_rnd (level, buf, len);
  /* No caller can recover from a broken generator, and continuing would
   * hand out predictable keys: stop here. */
  if (ret < 0)
    g_error ("gnutls_rnd failed: %s", gnutls_strerror (ret));
}

void
modike_random (void *buf, gsize len)
{
  random_level (GNUTLS_RND_KEY, buf, len);
}

void
modike_random_nonce (void *buf, gsize len)
{
  random_level (GNUTLS_RND_NONCE, buf, len);
}
