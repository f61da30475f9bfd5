/* Hashes and HMAC (the IKEv1 prf) on GnuTLS, and algorithm names. */
#include <modike/crypto.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>

typedef struct {
  ModikeHashAlg alg;
  const char *name;
  gnutls_digest_algorithm_t digest;
  gnutls_mac_algorithm_t mac;
} HashInfo;

static const HashInfo hashes[] = {
  { MODIKE_HASH_MD5, "md5", GNUTLS_DIG_MD5, GNUTLS_MAC_MD5 },
  { MODIKE_HASH_SHA1, "sha1", GNUTLS_DIG_SHA1, GNUTLS_MAC_SHA1 },
  { MODIKE_HASH_SHA2_256, "sha256", GNUTLS_DIG_SHA256, GNUTLS_MAC_SHA256 },
  { MODIKE_HASH_SHA2_384, "sha384", GNUTLS_DIG_SHA384, GNUTLS_MAC_SHA384 },
  { MODIKE_HASH_SHA2_512, "sha512", GNUTLS_DIG_SHA512, GNUTLS_MAC_SHA512 },
};

struct _ModikePrf {
  const HashInfo *info;
  gnutls_hmac_hd_t hmac;
};

static const HashInfo *
hash_info (guint alg)
{
  for (gsize i = 0; i < G_N_ELEMENTS (hashes); i++)
    if ((guint) hashes[i].alg == alg)
      return &hashes[i];
  return NULL;
}

/* The library only fails here on allocation failure or an algorithm it
 * refuses (FIPS mode); the output would be garbage used as a key, so stop.
 * modike_crypto_self_test finds a refused algorithm at start-up instead. */
G_GNUC_NORETURN static void
hash_fatal (const char *what, int ret)
{
  g_error ("%s failed: %s", what, gnutls_strerror (ret));
}

gboolean
modike_hash_supported (guint alg)
{
  const HashInfo *info = hash_info (alg);
  static const guint8 key[32] = { 0 };
  guint8 out[MODIKE_HASH_MAX];

  if (info == NULL)
    return FALSE;
  /* Ask the library itself: a FIPS or system policy may refuse MD5. */
  return gnutls_hash_fast (info->digest, "", 0, out) >= 0
         && gnutls_hmac_fast (info->mac, key, sizeof key, "", 0, out) >= 0;
}

gsize
modike_hash_len (ModikeHashAlg alg)
{
  const HashInfo *info = hash_info (alg);

  return info != NULL ? gnutls_hash_get_len (info->digest) : 0;
}

const char *
modike_hash_name (ModikeHashAlg alg)
{
  const HashInfo *info = hash_info (alg);

  return info != NULL ? info->name : NULL;
}

gboolean
modike_hash_from_name (const char *name, ModikeHashAlg *out)
{
  g_return_val_if_fail (name != NULL, FALSE);
  for (gsize i = 0; i < G_N_ELEMENTS (hashes); i++)
    {
      if (g_ascii_strcasecmp (name, hashes[i].name) == 0)
        {
          if (out != NULL)
            *out = hashes[i].alg;
          return TRUE;
        }
    }
  return FALSE;
}

void
modike_hash (ModikeHashAlg alg, const void *data, gsize len, guint8 *out)
{
  const HashInfo *info = hash_info (alg);
  int ret;

  g_return_if_fail (info != NULL);
  g_return_if_fail (data != NULL || len == 0);
  g_return_if_fail (out != NULL);
  ret = gnutls_hash_fast (info->digest, len > 0 ? data : "", len, out);
  if (ret < 0)
    hash_fatal ("gnutls_hash_fast", ret);
}

ModikePrf *
modike_prf_new (ModikeHashAlg alg, const void *key, gsize keylen)
{
  const HashInfo *info = hash_info (alg);
  ModikePrf *prf;
  int ret;

  g_return_val_if_fail (info != NULL, NULL);
  g_return_val_if_fail (key != NULL || keylen == 0, NULL);
  prf = g_new0 (ModikePrf, 1);
  prf->info = info;
  ret = gnutls_hmac_init (&prf->hmac, info->mac, keylen > 0 ? key : "", keylen);
  if (ret < 0)
    hash_fatal ("gnutls_hmac_init", ret);
  return prf;
}

void
modike_prf_update (ModikePrf *prf, const void *data, gsize len)
{
  int ret;

  g_return_if_fail (prf != NULL);
  g_return_if_fail (data != NULL || len == 0);
  if (len == 0)
    return;
  ret = gnutls_hmac (prf->hmac, data, len);
  if (ret < 0)
    hash_fatal ("gnutls_hmac", ret);
}

void
modike_prf_final (ModikePrf *prf, guint8 *out)
{
  g_return_if_fail (prf != NULL);
  g_return_if_fail (out != NULL);
  /* gnutls_hmac_deinit writes the MAC and frees the keyed state. */
  gnutls_hmac_deinit (prf->hmac, out);
  g_free (prf);
}

void
modike_prf_free (ModikePrf *prf)
{
  if (prf == NULL)
    return;
  gnutls_hmac_deinit (prf->hmac, NULL);
  g_free (prf);
}

void
modike_prf (ModikeHashAlg alg, const void *key, gsize keylen, const void *data, gsize len, guint8 *out)
{
  ModikePrf *prf = modike_prf_new (alg, key, keylen);

  g_return_if_fail (prf != NULL);
  modike_prf_update (prf, data, len);
  modike_prf_final (prf, out);
}
