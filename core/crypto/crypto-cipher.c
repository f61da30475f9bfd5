/* CBC block ciphers on GnuTLS, with the IKEv1 IV chain carried by the caller. */
#include <modike/crypto.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>
#include <string.h>

#define CBC_BLOCK_MAX 16

gboolean
modike_encr_supported (guint alg, guint keybits)
{
  switch (alg)
    {
    case MODIKE_ENCR_3DES:
      /* Fixed key length: the attribute is absent (0), or states the size. */
      return keybits == 0 || keybits == 192;
    case MODIKE_ENCR_AES_CBC:
      return keybits == 0 || keybits == 128 || keybits == 192 || keybits == 256;
    default:
      /* Single DES is broken; we neither offer nor accept it. */
      return FALSE;
    }
}

gsize
modike_encr_block_len (ModikeEncrAlg alg)
{
  switch (alg)
    {
    case MODIKE_ENCR_3DES:
      return 8;
    case MODIKE_ENCR_AES_CBC:
      return 16;
    default:
      return 0;
    }
}

gsize
modike_encr_key_len (ModikeEncrAlg alg, guint keybits)
{
  if (!modike_encr_supported (alg, keybits))
    return 0;
  if (alg == MODIKE_ENCR_3DES)
    return 24;
  /* AES without a Key Length attribute is AES-128. */
  return keybits == 0 ? 16 : keybits / 8;
}

const char *
modike_encr_name (ModikeEncrAlg alg, guint keybits)
{
  if (!modike_encr_supported (alg, keybits))
    return NULL;
  if (alg == MODIKE_ENCR_3DES)
    return "3des";
  switch (keybits)
    {
    case 192:
      return "aes192";
    case 256:
      return "aes256";
    default:
      return "aes128";
    }
}

gboolean
modike_encr_from_name (const char *name, ModikeEncrAlg *alg, guint *keybits)
{
  static const struct {
    const char *name;
    ModikeEncrAlg alg;
    guint keybits;
  } names[] = {
    { "3des", MODIKE_ENCR_3DES, 0 },
    { "aes", MODIKE_ENCR_AES_CBC, 128 },
    { "aes128", MODIKE_ENCR_AES_CBC, 128 },
    { "aes192", MODIKE_ENCR_AES_CBC, 192 },
    { "aes256", MODIKE_ENCR_AES_CBC, 256 },
  };

  g_return_val_if_fail (name != NULL, FALSE);
  for (gsize i = 0; i < G_N_ELEMENTS (names); i++)
    {
      if (g_ascii_strcasecmp (name, names[i].name) == 0)
        {
          if (alg != NULL)
            *alg = names[i].alg;
          if (keybits != NULL)
            *keybits = names[i].keybits;
          return TRUE;
        }
    }
  return FALSE;
}

/* The GnuTLS cipher for an algorithm and the key actually given. */
static gboolean
cbc_cipher (ModikeEncrAlg alg, gsize key_len, gnutls_cipher_algorithm_t *out, GError **error)
{
  switch (alg)
    {
    case MODIKE_ENCR_3DES:
      if (key_len == 24)
        {
          *out = GNUTLS_CIPHER_3DES_CBC;
          return TRUE;
        }
      break;
    case MODIKE_ENCR_AES_CBC:
      if (key_len == 16 || key_len == 24 || key_len == 32)
        {
          *out = key_len == 16 ? GNUTLS_CIPHER_AES_128_CBC
               : key_len == 24 ? GNUTLS_CIPHER_AES_192_CBC
               : GNUTLS_CIPHER_AES_256_CBC;
          return TRUE;
        }
      break;
    default:
      g_set_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_UNSUPPORTED,
                   "Encryption algorithm %u is not supported", (guint) alg);
      return FALSE;
    }
  g_set_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_INVALID,
               "Key of %" G_GSIZE_FORMAT " bytes is invalid for %s", key_len,
               alg == MODIKE_ENCR_3DES ? "3des" : "aes");
  return FALSE;
}

static gboolean
cbc_run (ModikeEncrAlg alg, const ModikeSecret *key, guint8 *iv, guint8 *data, gsize len,
         gboolean encrypt, GError **error)
{
  gnutls_cipher_algorithm_t cipher;
  gnutls_cipher_hd_t hd = NULL;
  gnutls_datum_t key_d, iv_d;
  guint8 next_iv[CBC_BLOCK_MAX];
  gsize block;
  int ret;

  g_return_val_if_fail (key != NULL, FALSE);
  g_return_val_if_fail (iv != NULL, FALSE);
  g_return_val_if_fail (data != NULL || len == 0, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!cbc_cipher (alg, key->len, &cipher, error))
    return FALSE;
  block = modike_encr_block_len (alg);
  if (len % block != 0)
    {
      g_set_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_INVALID,
                   "CBC data of %" G_GSIZE_FORMAT " bytes is not a multiple of the %" G_GSIZE_FORMAT
                   "-byte block", len, block);
      return FALSE;
    }
  if (len == 0)
    return TRUE;

  key_d.data = key->data;
  key_d.size = (unsigned) key->len;
  iv_d.data = iv;
  iv_d.size = (unsigned) block;
  ret = gnutls_cipher_init (&hd, cipher, &key_d, &iv_d);
  if (ret < 0)
    {
      g_set_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_FAILED,
                   "gnutls_cipher_init: %s", gnutls_strerror (ret));
      return FALSE;
    }
  /* The chain continues from the last ciphertext block: the input when
   * decrypting (saved before it is overwritten), the output when encrypting. */
  if (!encrypt)
    memcpy (next_iv, data + len - block, block);
  ret = encrypt ? gnutls_cipher_encrypt (hd, data, len) : gnutls_cipher_decrypt (hd, data, len);
  gnutls_cipher_deinit (hd);
  if (ret < 0)
    {
      g_set_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_FAILED,
                   "CBC %s: %s", encrypt ? "encryption" : "decryption", gnutls_strerror (ret));
      return FALSE;
    }
  if (encrypt)
    memcpy (next_iv, data + len - block, block);
  memcpy (iv, next_iv, block);
  return TRUE;
}

gboolean
modike_cbc_encrypt (ModikeEncrAlg alg, const ModikeSecret *key, guint8 *iv,
                    guint8 *data, gsize len, GError **error)
{
  return cbc_run (alg, key, iv, data, len, TRUE, error);
}

gboolean
modike_cbc_decrypt (ModikeEncrAlg alg, const ModikeSecret *key, guint8 *iv,
                    guint8 *data, gsize len, GError **error)
{
  return cbc_run (alg, key, iv, data, len, FALSE, error);
}
