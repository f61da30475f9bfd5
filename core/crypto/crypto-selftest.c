/* Start-up self test: one published known answer per algorithm, so a
 * broken or restricted (FIPS) library is found before any peer is. */
#include <modike/crypto.h>

#include <string.h>

/* Hex to bytes; the strings here are constants, so a bad one is a bug. */
static GBytes *
unhex (const char *hex)
{
  gsize len = strlen (hex);
  guint8 *out = g_malloc (len / 2 + 1);

  g_assert (len % 2 == 0);
  for (gsize i = 0; i < len / 2; i++)
    {
      int hi = g_ascii_xdigit_value (hex[2 * i]);
      int lo = g_ascii_xdigit_value (hex[2 * i + 1]);

      g_assert (hi >= 0 && lo >= 0);
      out[i] = (guint8) (hi << 4 | lo);
    }
  return g_bytes_new_take (out, len / 2);
}

static gboolean
check (gboolean ok, const char *what, GError **error)
{
  if (!ok)
    g_set_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_FAILED,
                 "Crypto self test failed: %s", what);
  return ok;
}

static gboolean
check_bytes (const guint8 *got, const char *want_hex, const char *what, GError **error)
{
  g_autoptr (GBytes) want = unhex (want_hex);

  return check (memcmp (got, g_bytes_get_data (want, NULL), g_bytes_get_size (want)) == 0, what, error);
}

static gboolean
test_hashes (GError **error)
{
  /* FIPS 180-4 / RFC 1321 digests of "abc". */
  static const struct {
    ModikeHashAlg alg;
    const char *digest;
  } kats[] = {
    { MODIKE_HASH_MD5, "900150983cd24fb0d6963f7d28e17f72" },
    { MODIKE_HASH_SHA1, "a9993e364706816aba3e25717850c26c9cd0d89d" },
    { MODIKE_HASH_SHA2_256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
    { MODIKE_HASH_SHA2_384, "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed"
                            "8086072ba1e7cc2358baeca134c825a7" },
    { MODIKE_HASH_SHA2_512, "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
                            "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f" },
  };
  guint8 out[MODIKE_HASH_MAX];

  for (gsize i = 0; i < G_N_ELEMENTS (kats); i++)
    {
      /* What the library refuses is reported unsupported and never used. */
      if (!modike_hash_supported (kats[i].alg))
        continue;
      modike_hash (kats[i].alg, "abc", 3, out);
      if (!check_bytes (out, kats[i].digest, modike_hash_name (kats[i].alg), error))
        return FALSE;
    }
  /* RFC 4231 test case 2, HMAC-SHA-256: without SHA-256 we run nothing. */
  if (!check (modike_hash_supported (MODIKE_HASH_SHA2_256), "sha256 unavailable", error))
    return FALSE;
  modike_prf (MODIKE_HASH_SHA2_256, "Jefe", 4, "what do ya want for nothing?", 28, out);
  return check_bytes (out, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
                      "hmac-sha256", error);
}

static gboolean
test_cbc (ModikeEncrAlg alg, const char *key_hex, const char *iv_hex, const char *pt_hex,
          const char *ct_hex, const char *what, GError **error)
{
  g_autoptr (GBytes) key_b = unhex (key_hex);
  g_autoptr (GBytes) iv_b = unhex (iv_hex);
  g_autoptr (GBytes) pt_b = unhex (pt_hex);
  g_autoptr (ModikeSecret) key = modike_secret_new_from (g_bytes_get_data (key_b, NULL),
                                                         g_bytes_get_size (key_b));
  gsize len = g_bytes_get_size (pt_b);
  g_autofree guint8 *data = g_memdup2 (g_bytes_get_data (pt_b, NULL), len);
  guint8 iv[16];

  memcpy (iv, g_bytes_get_data (iv_b, NULL), g_bytes_get_size (iv_b));
  if (!modike_cbc_encrypt (alg, key, iv, data, len, error))
    return FALSE;
  if (!check_bytes (data, ct_hex, what, error))
    return FALSE;
  memcpy (iv, g_bytes_get_data (iv_b, NULL), g_bytes_get_size (iv_b));
  if (!modike_cbc_decrypt (alg, key, iv, data, len, error))
    return FALSE;
  return check_bytes (data, pt_hex, what, error);
}

static gboolean
test_dh (ModikeDhGroup group, const char *priv_hex, const char *peer_hex, const char *shared_hex,
         GError **error)
{
  g_autoptr (GBytes) priv = unhex (priv_hex);
  g_autoptr (GBytes) peer = unhex (peer_hex);
  g_autoptr (ModikeDh) dh = NULL;
  g_autoptr (ModikeSecret) shared = NULL;

  dh = modike_dh_new_with_private (group, g_bytes_get_data (priv, NULL), g_bytes_get_size (priv), error);
  if (dh == NULL)
    return FALSE;
  shared = modike_dh_compute (dh, g_bytes_get_data (peer, NULL), g_bytes_get_size (peer), error);
  if (shared == NULL)
    return FALSE;
  return check_bytes (shared->data, shared_hex, modike_dh_name (group), error);
}

/* MODP: two parties with fixed exponents agree; a wrong prime or a broken
 * modular exponentiation would make them disagree. */
static gboolean
test_modp (ModikeDhGroup group, GError **error)
{
  static const guint8 a[] = { 0x5a, 0x17, 0xc3, 0x09, 0x88, 0x21, 0xfe, 0x42 };
  static const guint8 b[] = { 0x31, 0x7d, 0x0e, 0xa4, 0x6b, 0x95, 0x12, 0xcf };
  g_autoptr (ModikeDh) da = modike_dh_new_with_private (group, a, sizeof a, error);
  g_autoptr (ModikeDh) db = NULL;
  g_autoptr (GBytes) pa = NULL, pb = NULL;
  g_autoptr (ModikeSecret) sa = NULL, sb = NULL;

  if (da == NULL)
    return FALSE;
  db = modike_dh_new_with_private (group, b, sizeof b, error);
  if (db == NULL)
    return FALSE;
  pa = modike_dh_public (da);
  pb = modike_dh_public (db);
  sa = modike_dh_compute (da, g_bytes_get_data (pb, NULL), g_bytes_get_size (pb), error);
  if (sa == NULL)
    return FALSE;
  sb = modike_dh_compute (db, g_bytes_get_data (pa, NULL), g_bytes_get_size (pa), error);
  if (sb == NULL)
    return FALSE;
  return check (sa->len == sb->len && modike_memeq (sa->data, sb->data, sa->len),
                modike_dh_name (group), error);
}

gboolean
modike_crypto_self_test (GError **error)
{
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!test_hashes (error))
    return FALSE;
  /* NIST SP 800-38A F.2.1, first block. */
  if (!test_cbc (MODIKE_ENCR_AES_CBC, "2b7e151628aed2a6abf7158809cf4f3c", "000102030405060708090a0b0c0d0e0f",
                 "6bc1bee22e409f96e93d7e117393172a", "7649abac8119b246cee98e9b12e9197d", "aes128-cbc", error))
    return FALSE;
  /* NIST SP 800-67 example key and first block (CBC with a zero IV = ECB). */
  if (!test_cbc (MODIKE_ENCR_3DES, "0123456789abcdef23456789abcdef01456789abcdef0123", "0000000000000000",
                 "5468652071756663", "a826fd8ce53b855f", "3des-cbc", error))
    return FALSE;
  /* RFC 7748 section 6.1, Alice with Bob's public value. */
  if (!test_dh (MODIKE_DH_CURVE25519, "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
                "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
                "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742", error))
    return FALSE;
  /* RFC 5903 section 8.1, the initiator with the responder's public value. */
  if (!test_dh (MODIKE_DH_ECP256, "c88f01f510d9ac3f70a292daa2316de544e9aab8afe84049c62a9c57862d1433",
                "d12dfb5289c8d4f81208b70270398c342296970a0bccb74c736fc7554494bf63"
                "56fbf3ca366cc23e8157854c13c58d6aac23f046ada30f8353e74f33039872ab",
                "d6840f6b42f6edafd13116e0e12565202fef8e9ece7dce03812464d04b9442de", error))
    return FALSE;
  /* The smallest MODP group keeps this cheap; the others share the code. */
  return test_modp (MODIKE_DH_MODP768, error);
}
