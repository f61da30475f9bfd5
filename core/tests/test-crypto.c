/* Crypto known-answer tests: published vectors for every hash, HMAC,
 * cipher and DH group, RFC 2409 key derivation, and the strongSwan
 * captures in tests/vectors/strongswan/keys.ini. */
#include <modike/crypto.h>

#include <glib/gstdio.h>
#include <gmp.h>
#include <gnutls/x509.h>
#include <malloc.h>
#include <string.h>

/* crypto-secret.c calls this after wiping a secret and before freeing it. */
extern void (*modike_secret_wipe_hook) (const guint8 *data, gsize len);

/* ---- helpers ---- */

/* Hex to bytes; spaces and colons are ignored (captured dumps use both). */
static GBytes *
hex_try (const char *hex)
{
  g_autoptr (GByteArray) out = g_byte_array_new ();
  int hi = -1;

  if (g_str_has_prefix (hex, "0x") || g_str_has_prefix (hex, "0X"))
    hex += 2;
  for (const char *p = hex; *p != '\0'; p++)
    {
      int v;

      if (*p == ' ' || *p == ':' || *p == '\t' || *p == '\n')
        continue;
      v = g_ascii_xdigit_value (*p);
      if (v < 0)
        return NULL;
      if (hi < 0)
        hi = v;
      else
        {
          guint8 b = (guint8) (hi << 4 | v);

          g_byte_array_append (out, &b, 1);
          hi = -1;
        }
    }
  if (hi >= 0)
    return NULL;
  return g_byte_array_free_to_bytes (g_steal_pointer (&out));
}

static GBytes *
hex (const char *s)
{
  GBytes *b = hex_try (s);

  g_assert_nonnull (b);
  return b;
}

static char *
to_hex (const guint8 *data, gsize len)
{
  GString *s = g_string_sized_new (2 * len + 1);

  for (gsize i = 0; i < len; i++)
    g_string_append_printf (s, "%02x", data[i]);
  return g_string_free (s, FALSE);
}

#define B(b) ((const guint8 *) g_bytes_get_data ((b), NULL))
#define L(b) g_bytes_get_size (b)

/* Compares as hex so a failure shows both values. */
static void
assert_hex (const guint8 *got, gsize got_len, const char *want)
{
  g_autofree char *g = to_hex (got, got_len);
  g_autoptr (GBytes) w = hex (want);
  g_autofree char *wh = to_hex (B (w), L (w));

  g_assert_cmpstr (g, ==, wh);
}

static ModikeSecret *
secret_hex (const char *s)
{
  g_autoptr (GBytes) b = hex (s);

  return modike_secret_new_from (B (b), L (b));
}

/* ---- secrets, memeq, wipe, random ---- */

static void
test_memeq (void)
{
  guint8 a[32], b[32];

  for (guint i = 0; i < sizeof a; i++)
    a[i] = b[i] = (guint8) (i * 37);
  g_assert_true (modike_memeq (a, b, sizeof a));
  g_assert_true (modike_memeq (a, b, 0));
  for (guint i = 0; i < sizeof a; i++)
    {
      b[i] ^= 0x01;
      g_assert_false (modike_memeq (a, b, sizeof a));
      g_assert_true (modike_memeq (a, b, i)); /* the prefix still matches */
      b[i] ^= 0x01;
    }
  b[31] ^= 0x80;
  g_assert_false (modike_memeq (a, b, sizeof a));
}

static guint wipe_calls;
static gboolean wipe_all_zero;

static void
wipe_hook (const guint8 *data, gsize len)
{
  wipe_calls++;
  for (gsize i = 0; i < len; i++)
    if (data[i] != 0)
      wipe_all_zero = FALSE;
}

static void
test_secret_wipe (void)
{
  guint8 pattern[48];
  ModikeSecret *s, *d;
  ModikeP1Keys keys = { 0 };
  g_autoptr (ModikeSecret) gxy = secret_hex ("0102030405060708");
  static const guint8 ck[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };

  memset (pattern, 0xa5, sizeof pattern);
  s = modike_secret_new_from (pattern, sizeof pattern);
  g_assert_cmpuint (s->len, ==, sizeof pattern);
  g_assert_cmpmem (s->data, s->len, pattern, sizeof pattern);
  d = modike_secret_dup (s);
  g_assert_true (d->data != s->data);
  g_assert_cmpmem (d->data, d->len, pattern, sizeof pattern);

  modike_secret_wipe_hook = wipe_hook;
  wipe_calls = 0;
  wipe_all_zero = TRUE;
  modike_secret_free (s);
  modike_secret_free (d);
  g_assert_cmpuint (wipe_calls, ==, 2);
  g_assert_true (wipe_all_zero);

  /* Every key of a phase 1 set goes through the wipe. */
  modike_p1_keys_derive (&keys, MODIKE_HASH_SHA1, modike_secret_new_from (pattern, 20), gxy, ck, ck, 32);
  g_assert_nonnull (keys.enc_key);
  wipe_calls = 0;
  wipe_all_zero = TRUE;
  modike_p1_keys_clear (&keys);
  g_assert_cmpuint (wipe_calls, ==, 5);
  g_assert_true (wipe_all_zero);
  g_assert_null (keys.skeyid);
  g_assert_null (keys.enc_key);
  modike_secret_wipe_hook = NULL;

  s = modike_secret_new (16);
  for (gsize i = 0; i < s->len; i++)
    g_assert_cmpuint (s->data[i], ==, 0);
  modike_secret_free (s);
  s = modike_secret_new_from (NULL, 0);
  g_assert_cmpuint (s->len, ==, 0);
  g_assert_nonnull (s->data);
  modike_secret_free (s);
  modike_secret_free (NULL);

  modike_memwipe (pattern, sizeof pattern);
  for (gsize i = 0; i < sizeof pattern; i++)
    g_assert_cmpuint (pattern[i], ==, 0);
}

static void
test_random (void)
{
  guint8 a[32] = { 0 }, b[32] = { 0 }, zero[32] = { 0 };

  modike_random (a, sizeof a);
  modike_random (b, sizeof b);
  /* 2^-256 false-failure odds. */
  g_assert_false (memcmp (a, b, sizeof a) == 0);
  g_assert_false (memcmp (a, zero, sizeof a) == 0);
  modike_random_nonce (a, sizeof a);
  modike_random_nonce (b, sizeof b);
  g_assert_false (memcmp (a, b, sizeof a) == 0);
  modike_random (a, 0);
}

/* ---- hashes ---- */

typedef struct {
  ModikeHashAlg alg;
  guint msg;
  const char *digest;
} HashCase;

/* RFC 1321 A.5 test suite (MD5); FIPS 180 examples "abc", the 448-bit and
 * 896-bit messages and one million 'a' (SHA). */
static const char *const hash_msgs[] = {
  "",
  "a",
  "abc",
  "message digest",
  "abcdefghijklmnopqrstuvwxyz",
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
  "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
  "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
  "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
  NULL, /* one million 'a' */
};

static const HashCase hash_cases[] = {
  { MODIKE_HASH_MD5, 0, "d41d8cd98f00b204e9800998ecf8427e" },
  { MODIKE_HASH_MD5, 1, "0cc175b9c0f1b6a831c399e269772661" },
  { MODIKE_HASH_MD5, 2, "900150983cd24fb0d6963f7d28e17f72" },
  { MODIKE_HASH_MD5, 3, "f96b697d7cb7938d525a2f31aaf161d0" },
  { MODIKE_HASH_MD5, 4, "c3fcd3d76192e4007dfb496cca67e13b" },
  { MODIKE_HASH_MD5, 5, "d174ab98d277d9f5a5611c2c9f419d9f" },
  { MODIKE_HASH_MD5, 6, "57edf4a22be3c955ac49da2e2107b67a" },
  { MODIKE_HASH_SHA1, 2, "a9993e364706816aba3e25717850c26c9cd0d89d" },
  { MODIKE_HASH_SHA1, 7, "84983e441c3bd26ebaae4aa1f95129e5e54670f1" },
  { MODIKE_HASH_SHA1, 9, "34aa973cd4c4daa4f61eeb2bdbad27316534016f" },
  { MODIKE_HASH_SHA2_256, 2, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
  { MODIKE_HASH_SHA2_256, 7, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" },
  { MODIKE_HASH_SHA2_256, 9, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0" },
  { MODIKE_HASH_SHA2_384, 2,
    "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed"
    "8086072ba1e7cc2358baeca134c825a7" },
  { MODIKE_HASH_SHA2_384, 8,
    "09330c33f71147e83d192fc782cd1b4753111b173b3b05d22fa08086e3b0f712"
    "fcc7c71a557e2db966c3e9fa91746039" },
  { MODIKE_HASH_SHA2_384, 9,
    "9d0e1809716474cb086e834e310a4a1ced149e9c00f248527972cec5704c2a5b"
    "07b8b3dc38ecc4ebae97ddd87f3d8985" },
  { MODIKE_HASH_SHA2_512, 2,
    "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
    "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f" },
  { MODIKE_HASH_SHA2_512, 8,
    "8e959b75dae313da8cf4f72814fc143f8f7779c6eb9f7fa17299aeadb6889018"
    "501d289e4900f7e4331b99dec4b5433ac7d329eeb6dd26545e96e55b874be909" },
  { MODIKE_HASH_SHA2_512, 9,
    "e718483d0ce769644e2e42c7bc15b4638e1f98b13b2044285632a803afa973eb"
    "de0ff244877ea60a4cb0432ce577c31beb009c5c2c49aa2e4eadb217ad8cc09b" },
};

static void
test_hash_kat (void)
{
  g_autofree char *million = g_malloc (1000000);
  guint8 out[MODIKE_HASH_MAX];

  memset (million, 'a', 1000000);
  for (gsize i = 0; i < G_N_ELEMENTS (hash_cases); i++)
    {
      const HashCase *c = &hash_cases[i];
      const char *msg = hash_msgs[c->msg] != NULL ? hash_msgs[c->msg] : million;
      gsize len = hash_msgs[c->msg] != NULL ? strlen (msg) : 1000000;

      g_test_message ("%s message %u", modike_hash_name (c->alg), c->msg);
      memset (out, 0, sizeof out);
      modike_hash (c->alg, msg, len, out);
      assert_hex (out, modike_hash_len (c->alg), c->digest);
    }
}

static void
test_hash_names (void)
{
  static const struct {
    guint alg;
    const char *name;
    gsize len;
  } names[] = {
    { MODIKE_HASH_MD5, "md5", 16 },
    { MODIKE_HASH_SHA1, "sha1", 20 },
    { MODIKE_HASH_SHA2_256, "sha256", 32 },
    { MODIKE_HASH_SHA2_384, "sha384", 48 },
    { MODIKE_HASH_SHA2_512, "sha512", 64 },
  };
  ModikeHashAlg alg;

  for (gsize i = 0; i < G_N_ELEMENTS (names); i++)
    {
      g_assert_true (modike_hash_supported (names[i].alg));
      g_assert_cmpuint (modike_hash_len (names[i].alg), ==, names[i].len);
      g_assert_cmpstr (modike_hash_name (names[i].alg), ==, names[i].name);
      g_assert_true (modike_hash_from_name (names[i].name, &alg));
      g_assert_cmpuint (alg, ==, names[i].alg);
    }
  /* 3 is Tiger, 7+ unassigned here: neither is offered. */
  g_assert_false (modike_hash_supported (0));
  g_assert_false (modike_hash_supported (3));
  g_assert_false (modike_hash_supported (7));
  g_assert_cmpuint (modike_hash_len (3), ==, 0);
  g_assert_null (modike_hash_name (3));
  g_assert_false (modike_hash_from_name ("sha3", &alg));
  g_assert_false (modike_hash_from_name ("", &alg));
}

/* ---- HMAC ---- */

typedef struct {
  guint tc;
  ModikeHashAlg alg;
  const char *mac;
} HmacCase;

/* RFC 2202: HMAC-MD5 and HMAC-SHA-1, test cases 1-7. */
static const HmacCase rfc2202[] = {
  { 1, MODIKE_HASH_MD5, "9294727a3638bb1c13f48ef8158bfc9d" },
  { 1, MODIKE_HASH_SHA1, "b617318655057264e28bc0b6fb378c8ef146be00" },
  { 2, MODIKE_HASH_MD5, "750c783e6ab0b503eaa86e310a5db738" },
  { 2, MODIKE_HASH_SHA1, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79" },
  { 3, MODIKE_HASH_MD5, "56be34521d144c88dbb8c733f0e8b3f6" },
  { 3, MODIKE_HASH_SHA1, "125d7342b9ac11cd91a39af48aa17b4f63f175d3" },
  { 4, MODIKE_HASH_MD5, "697eaf0aca3a3aea3a75164746ffaa79" },
  { 4, MODIKE_HASH_SHA1, "4c9007f4026250c6bc8414f9bf50c86c2d7235da" },
  { 5, MODIKE_HASH_MD5, "56461ef2342edc00f9bab995690efd4c" },
  { 5, MODIKE_HASH_SHA1, "4c1a03424b55e07fe7f27be1d58bb9324a9a5a04" },
  { 6, MODIKE_HASH_MD5, "6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd" },
  { 6, MODIKE_HASH_SHA1, "aa4ae5e15272d00e95705637ce8a3b55ed402112" },
  { 7, MODIKE_HASH_MD5, "6f630fad67cda0ee1fb1f562db3aa53e" },
  { 7, MODIKE_HASH_SHA1, "e8e99d0f45237d786d6bbaa7965c7808bbff1a91" },
};

/* RFC 4231: HMAC-SHA-256/384/512, test cases 1-7 (case 5 truncated to 128 bits). */
static const HmacCase rfc4231[] = {
  { 1, MODIKE_HASH_SHA2_256, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7" },
  { 1, MODIKE_HASH_SHA2_384,
    "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59c"
    "faea9ea9076ede7f4af152e8b2fa9cb6" },
  { 1, MODIKE_HASH_SHA2_512,
    "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde"
    "daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854" },
  { 2, MODIKE_HASH_SHA2_256, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843" },
  { 2, MODIKE_HASH_SHA2_384,
    "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e"
    "8e2240ca5e69e2c78b3239ecfab21649" },
  { 2, MODIKE_HASH_SHA2_512,
    "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554"
    "9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737" },
  { 3, MODIKE_HASH_SHA2_256, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe" },
  { 3, MODIKE_HASH_SHA2_384,
    "88062608d3e6ad8a0aa2ace014c8a86f0aa635d947ac9febe83ef4e55966144b"
    "2a5ab39dc13814b94e3ab6e101a34f27" },
  { 3, MODIKE_HASH_SHA2_512,
    "fa73b0089d56a284efb0f0756c890be9b1b5dbdd8ee81a3655f83e33b2279d39"
    "bf3e848279a722c806b485a47e67c807b946a337bee8942674278859e13292fb" },
  { 4, MODIKE_HASH_SHA2_256, "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b" },
  { 4, MODIKE_HASH_SHA2_384,
    "3e8a69b7783c25851933ab6290af6ca77a9981480850009cc5577c6e1f573b4e"
    "6801dd23c4a7d679ccf8a386c674cffb" },
  { 4, MODIKE_HASH_SHA2_512,
    "b0ba465637458c6990e5a8c5f61d4af7e576d97ff94b872de76f8050361ee3db"
    "a91ca5c11aa25eb4d679275cc5788063a5f19741120c4f2de2adebeb10a298dd" },
  { 5, MODIKE_HASH_SHA2_256, "a3b6167473100ee06e0c796c2955552b" },
  { 5, MODIKE_HASH_SHA2_384, "3abf34c3503b2a23a46efc619baef897" },
  { 5, MODIKE_HASH_SHA2_512, "415fad6271580a531d4179bc891d87a6" },
  { 6, MODIKE_HASH_SHA2_256, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54" },
  { 6, MODIKE_HASH_SHA2_384,
    "4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c6"
    "0c2ef6ab4030fe8296248df163f44952" },
  { 6, MODIKE_HASH_SHA2_512,
    "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352"
    "6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598" },
  { 7, MODIKE_HASH_SHA2_256, "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2" },
  { 7, MODIKE_HASH_SHA2_384,
    "6617178e941f020d351e2f254e8fd32c602420feb0b8fb9adccebb82461e99c5"
    "a678cc31e799176d3860e6110c46523e" },
  { 7, MODIKE_HASH_SHA2_512,
    "e37b6a775dc87dbaa4dfa9f96e5e3ffddebd71f8867289865df5a32d20cdc944"
    "b6022cac3c4982b10d5eeb55c3e4de15134676fb6de0446065c97440fa8c6a58" },
};

/* Key and data of test case tc; RFC 2202 and 4231 share data and differ
 * only in key lengths (MD5 keys are 16 bytes, long keys 80 or 131). */
static void
hmac_inputs (guint tc, gboolean is_4231, ModikeHashAlg alg, GByteArray *key, GByteArray *data)
{
  gsize short_key = !is_4231 && alg == MODIKE_HASH_MD5 ? 16 : 20;
  gsize long_key = is_4231 ? 131 : 80;
  const char *text = NULL;
  guint8 fill = 0;
  gsize fill_len = 0;

  g_byte_array_set_size (key, 0);
  g_byte_array_set_size (data, 0);
  switch (tc)
    {
    case 1:
      g_byte_array_set_size (key, (guint) short_key);
      memset (key->data, 0x0b, key->len);
      text = "Hi There";
      break;
    case 2:
      g_byte_array_append (key, (const guint8 *) "Jefe", 4);
      text = "what do ya want for nothing?";
      break;
    case 3:
      g_byte_array_set_size (key, (guint) short_key);
      memset (key->data, 0xaa, key->len);
      fill = 0xdd;
      fill_len = 50;
      break;
    case 4:
      for (guint8 i = 1; i <= 25; i++)
        g_byte_array_append (key, &i, 1);
      fill = 0xcd;
      fill_len = 50;
      break;
    case 5:
      g_byte_array_set_size (key, (guint) short_key);
      memset (key->data, 0x0c, key->len);
      text = "Test With Truncation";
      break;
    case 6:
      g_byte_array_set_size (key, (guint) long_key);
      memset (key->data, 0xaa, key->len);
      text = "Test Using Larger Than Block-Size Key - Hash Key First";
      break;
    case 7:
      g_byte_array_set_size (key, (guint) long_key);
      memset (key->data, 0xaa, key->len);
      text = is_4231 ? "This is a test using a larger than block-size key and a larger than block-size data. "
                       "The key needs to be hashed before being used by the HMAC algorithm."
                     : "Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data";
      break;
    default:
      g_assert_not_reached ();
    }
  if (text != NULL)
    g_byte_array_append (data, (const guint8 *) text, (guint) strlen (text));
  else
    {
      g_byte_array_set_size (data, (guint) fill_len);
      memset (data->data, fill, fill_len);
    }
}

static void
run_hmac_cases (const HmacCase *cases, gsize n, gboolean is_4231)
{
  g_autoptr (GByteArray) key = g_byte_array_new ();
  g_autoptr (GByteArray) data = g_byte_array_new ();
  guint8 out[MODIKE_HASH_MAX];

  for (gsize i = 0; i < n; i++)
    {
      g_autoptr (GBytes) want = hex (cases[i].mac);
      ModikePrf *prf;

      g_test_message ("%s case %u", modike_hash_name (cases[i].alg), cases[i].tc);
      hmac_inputs (cases[i].tc, is_4231, cases[i].alg, key, data);
      modike_prf (cases[i].alg, key->data, key->len, data->data, data->len, out);
      /* Test case 5 publishes a truncated MAC: compare its length only. */
      assert_hex (out, L (want), cases[i].mac);

      /* The same through the incremental interface, fed in pieces. */
      memset (out, 0, sizeof out);
      prf = modike_prf_new (cases[i].alg, key->data, key->len);
      modike_prf_update (prf, data->data, 1);
      modike_prf_update (prf, NULL, 0);
      modike_prf_update (prf, data->data + 1, data->len - 1);
      modike_prf_final (prf, out);
      assert_hex (out, L (want), cases[i].mac);
    }
}

static void
test_hmac_rfc2202 (void)
{
  run_hmac_cases (rfc2202, G_N_ELEMENTS (rfc2202), FALSE);
}

static void
test_hmac_rfc4231 (void)
{
  run_hmac_cases (rfc4231, G_N_ELEMENTS (rfc4231), TRUE);
}

/* Freeing a PRF that never reached final (an error path) releases its
 * keyed state and touches no other PRF: one interleaved with it and one
 * made afterwards give RFC 4231 case 2, and many such frees do not grow
 * the heap (under ASan, where mallinfo2 says nothing, its leak check
 * covers this). */
static void
test_prf_free_unfinished (void)
{
  static const char key[] = "Jefe", data[] = "what do ya want for nothing?";
  static const char want[] = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
  guint8 out[MODIKE_HASH_MAX];
  ModikePrf *unfinished, *done;
  struct mallinfo2 before, after;

  unfinished = modike_prf_new (MODIKE_HASH_SHA2_256, key, 4);
  modike_prf_update (unfinished, data, 10);
  done = modike_prf_new (MODIKE_HASH_SHA2_256, key, 4);
  modike_prf_update (done, data, 10);
  modike_prf_free (unfinished);
  modike_prf_update (done, data + 10, strlen (data) - 10);
  modike_prf_final (done, out);
  assert_hex (out, 32, want);

  before = mallinfo2 ();
  for (guint i = 0; i < 20000; i++)
    {
      ModikePrf *prf = modike_prf_new (MODIKE_HASH_SHA2_256, key, 4);

      modike_prf_update (prf, data, strlen (data));
      modike_prf_free (prf);
    }
  after = mallinfo2 ();
  /* About 6 MB if the state stayed behind; allow for allocator noise. */
  g_assert_cmpint ((gint64) after.uordblks - (gint64) before.uordblks, <, 256 * 1024);
  modike_prf_free (NULL);

  memset (out, 0, sizeof out);
  modike_prf (MODIKE_HASH_SHA2_256, key, 4, data, strlen (data), out);
  assert_hex (out, 32, want);
}

/* ---- CBC ---- */

/* NIST SP 800-38A F.2.1/3/5: CBC-AES128/192/256.Encrypt, four blocks. */
static const char sp800_38a_iv[] = "000102030405060708090a0b0c0d0e0f";
static const char sp800_38a_pt[] =
  "6bc1bee22e409f96e93d7e117393172a" "ae2d8a571e03ac9c9eb76fac45af8e51"
  "30c81c46a35ce411e5fbc1191a0a52ef" "f69f2445df4f9b17ad2b417be66c3710";
static const struct {
  guint keybits;
  const char *key, *ct;
} sp800_38a[] = {
  { 128, "2b7e151628aed2a6abf7158809cf4f3c",
    "7649abac8119b246cee98e9b12e9197d" "5086cb9b507219ee95db113a917678b2"
    "73bed6b8e3c1743b7116e69e22229516" "3ff1caa1681fac09120eca307586e1a7" },
  { 192, "8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b",
    "4f021db243bc633d7178183a9fa071e8" "b4d9ada9ad7dedf4e5e738763f69145a"
    "571b242012fb7ae07fa9baac3df102e0" "08b0e27988598881d920a9e64f5615cd" },
  { 256, "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
    "f58c4c04d6e5f1ba779eabfb5f7bfbd6" "9cfc4e967edb808d679f777bc6702c7d"
    "39f23369a9d9bacfa530e26304231461" "b2eb05e2c39be9fcda6c19078c6a9d1b" },
};

/* Encrypts and decrypts one vector, in one call and in two chained calls;
 * the IV after each call is the last ciphertext block. */
static void
check_cbc (ModikeEncrAlg alg, const char *key_hex, const char *iv_hex, const char *pt_hex, const char *ct_hex)
{
  g_autoptr (ModikeSecret) key = secret_hex (key_hex);
  g_autoptr (GBytes) ivb = hex (iv_hex);
  g_autoptr (GBytes) pt = hex (pt_hex);
  g_autoptr (GBytes) ct = hex (ct_hex);
  gsize block = modike_encr_block_len (alg);
  gsize len = L (pt);
  g_autofree guint8 *buf = g_memdup2 (B (pt), len);
  guint8 iv[16];
  g_autoptr (GError) error = NULL;

  g_assert_cmpuint (L (ivb), ==, block);
  g_assert_cmpuint (L (ct), ==, len);

  memcpy (iv, B (ivb), block);
  g_assert_true (modike_cbc_encrypt (alg, key, iv, buf, len, &error));
  g_assert_no_error (error);
  assert_hex (buf, len, ct_hex);
  assert_hex (iv, block, ct_hex + 2 * (len - block));

  memcpy (iv, B (ivb), block);
  g_assert_true (modike_cbc_decrypt (alg, key, iv, buf, len, &error));
  g_assert_no_error (error);
  assert_hex (buf, len, pt_hex);
  g_assert_cmpmem (iv, block, B (ct) + len - block, block);

  if (len >= 2 * block)
    {
      gsize first = block * (len / block / 2);

      memcpy (iv, B (ivb), block);
      g_assert_true (modike_cbc_encrypt (alg, key, iv, buf, first, &error));
      g_assert_cmpmem (iv, block, B (ct) + first - block, block);
      g_assert_true (modike_cbc_encrypt (alg, key, iv, buf + first, len - first, &error));
      g_assert_no_error (error);
      assert_hex (buf, len, ct_hex);

      memcpy (iv, B (ivb), block);
      g_assert_true (modike_cbc_decrypt (alg, key, iv, buf, first, &error));
      g_assert_cmpmem (iv, block, B (ct) + first - block, block);
      g_assert_true (modike_cbc_decrypt (alg, key, iv, buf + first, len - first, &error));
      g_assert_no_error (error);
      assert_hex (buf, len, pt_hex);
    }
}

static void
test_cbc_aes_sp800_38a (void)
{
  for (gsize i = 0; i < G_N_ELEMENTS (sp800_38a); i++)
    {
      g_test_message ("aes%u", sp800_38a[i].keybits);
      g_assert_cmpuint (modike_encr_key_len (MODIKE_ENCR_AES_CBC, sp800_38a[i].keybits) * 8, ==,
                        sp800_38a[i].keybits);
      check_cbc (MODIKE_ENCR_AES_CBC, sp800_38a[i].key, sp800_38a_iv, sp800_38a_pt, sp800_38a[i].ct);
    }
}

static void
test_cbc_aes_rfc3602 (void)
{
  /* RFC 3602 section 4, cases 1 and 2. */
  check_cbc (MODIKE_ENCR_AES_CBC, "06a9214036b8a15b512e03d534120006", "3dafba429d9eb430b422da802c9fac41",
             "53696e676c6520626c6f636b206d7367", /* "Single block msg" */
             "e353779c1079aeb82708942dbe77181a");
  check_cbc (MODIKE_ENCR_AES_CBC, "c286696d887c9aa0611bbb3e2025a45a", "562e17996d093d28ddb3ba695a2e6f58",
             "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
             "d296cd94c2cccf8a3a863028b5e1dc0a7586602d253cfff91b8266bea6d61ab1");
}

static void
test_cbc_3des (void)
{
  /* NIST CAVP TDES CBC multi-block message test (three-key) vectors. */
  check_cbc (MODIKE_ENCR_3DES, "627f460e08104a1043cd265d5840eaf1313edf97df2a8a8c", "8e29f75ea77e5475",
             "326a494cd33fe756", "b22b8d66de970692");
  check_cbc (MODIKE_ENCR_3DES, "37ae5ebf46dff2dc0754b94f31cbb3855e7fd36dc870bfae", "3d1de3cc132e3b65",
             "84401f78fe6c10876d8ea23094ea5309", "7b1f7c7e3b1c948ebd04a75ffba7d2f5");
  /* NIST SP 800-67 example keys, first block: with a zero IV CBC is ECB. */
  check_cbc (MODIKE_ENCR_3DES, "0123456789abcdef23456789abcdef01456789abcdef0123", "0000000000000000",
             "5468652071756663", "a826fd8ce53b855f");
}

static void
test_cbc_errors (void)
{
  g_autoptr (ModikeSecret) k16 = modike_secret_new (16);
  g_autoptr (ModikeSecret) k20 = modike_secret_new (20);
  g_autoptr (ModikeSecret) k24 = modike_secret_new (24);
  g_autoptr (ModikeSecret) k8 = modike_secret_new (8);
  guint8 iv[16] = { 0 }, iv_before[16];
  guint8 data[48] = { 0 };
  GError *error = NULL;

  memset (iv, 0x5c, sizeof iv);
  memcpy (iv_before, iv, sizeof iv);

  /* Key lengths that fit no variant. */
  g_assert_false (modike_cbc_encrypt (MODIKE_ENCR_AES_CBC, k20, iv, data, 32, &error));
  g_assert_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_false (modike_cbc_decrypt (MODIKE_ENCR_AES_CBC, k8, iv, data, 32, &error));
  g_assert_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_false (modike_cbc_encrypt (MODIKE_ENCR_3DES, k16, iv, data, 32, &error));
  g_assert_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_INVALID);
  g_clear_error (&error);

  /* Lengths that are not whole blocks. */
  g_assert_false (modike_cbc_encrypt (MODIKE_ENCR_AES_CBC, k16, iv, data, 17, &error));
  g_assert_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_false (modike_cbc_decrypt (MODIKE_ENCR_AES_CBC, k16, iv, data, 8, &error));
  g_assert_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_false (modike_cbc_decrypt (MODIKE_ENCR_3DES, k24, iv, data, 12, &error));
  g_assert_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_INVALID);
  g_clear_error (&error);

  /* Single DES is not supported at all. */
  g_assert_false (modike_cbc_encrypt (MODIKE_ENCR_DES, k8, iv, data, 8, &error));
  g_assert_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_UNSUPPORTED);
  g_clear_error (&error);

  /* A failed call leaves the IV chain alone. */
  g_assert_cmpmem (iv, sizeof iv, iv_before, sizeof iv_before);

  /* Nothing to do is not an error, and keeps the IV. */
  g_assert_true (modike_cbc_encrypt (MODIKE_ENCR_AES_CBC, k16, iv, data, 0, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (iv, sizeof iv, iv_before, sizeof iv_before);
}

static void
test_encr_names (void)
{
  static const struct {
    const char *name;
    ModikeEncrAlg alg;
    guint keybits;
    gsize key_len;
    const char *canonical;
  } names[] = {
    { "3des", MODIKE_ENCR_3DES, 0, 24, "3des" },
    { "aes", MODIKE_ENCR_AES_CBC, 128, 16, "aes128" },
    { "aes128", MODIKE_ENCR_AES_CBC, 128, 16, "aes128" },
    { "aes192", MODIKE_ENCR_AES_CBC, 192, 24, "aes192" },
    { "aes256", MODIKE_ENCR_AES_CBC, 256, 32, "aes256" },
  };
  ModikeEncrAlg alg;
  guint keybits;

  for (gsize i = 0; i < G_N_ELEMENTS (names); i++)
    {
      g_assert_true (modike_encr_from_name (names[i].name, &alg, &keybits));
      g_assert_cmpuint (alg, ==, names[i].alg);
      g_assert_cmpuint (keybits, ==, names[i].keybits);
      g_assert_true (modike_encr_supported (alg, keybits));
      g_assert_cmpuint (modike_encr_key_len (alg, keybits), ==, names[i].key_len);
      g_assert_cmpstr (modike_encr_name (alg, keybits), ==, names[i].canonical);
    }
  g_assert_false (modike_encr_from_name ("des", &alg, &keybits));
  g_assert_false (modike_encr_from_name ("aes512", &alg, &keybits));

  g_assert_cmpuint (modike_encr_block_len (MODIKE_ENCR_3DES), ==, 8);
  g_assert_cmpuint (modike_encr_block_len (MODIKE_ENCR_AES_CBC), ==, 16);
  /* No Key Length attribute: AES-128, 3DES 192. */
  g_assert_cmpuint (modike_encr_key_len (MODIKE_ENCR_AES_CBC, 0), ==, 16);
  g_assert_cmpstr (modike_encr_name (MODIKE_ENCR_AES_CBC, 0), ==, "aes128");
  g_assert_true (modike_encr_supported (MODIKE_ENCR_3DES, 192));
  g_assert_false (modike_encr_supported (MODIKE_ENCR_3DES, 128));
  g_assert_false (modike_encr_supported (MODIKE_ENCR_AES_CBC, 64));
  g_assert_false (modike_encr_supported (MODIKE_ENCR_DES, 0));
  g_assert_false (modike_encr_supported (12, 0));
  g_assert_cmpuint (modike_encr_key_len (MODIKE_ENCR_AES_CBC, 100), ==, 0);
}

/* ---- Diffie-Hellman ---- */

static ModikeDh *
dh_fixed (ModikeDhGroup group, const char *priv_hex)
{
  g_autoptr (GBytes) priv = hex (priv_hex);
  g_autoptr (GError) error = NULL;
  ModikeDh *dh = modike_dh_new_with_private (group, B (priv), L (priv), &error);

  g_assert_no_error (error);
  g_assert_nonnull (dh);
  g_assert_cmpuint (modike_dh_group (dh), ==, group);
  return dh;
}

static void
assert_dh_public (const ModikeDh *dh, const char *want)
{
  g_autoptr (GBytes) pub = modike_dh_public (dh);

  g_assert_cmpuint (L (pub), ==, modike_dh_public_len (modike_dh_group (dh)));
  assert_hex (B (pub), L (pub), want);
}

static void
assert_dh_shared (ModikeDh *dh, const char *peer_hex, const char *want)
{
  g_autoptr (GBytes) peer = hex (peer_hex);
  g_autoptr (GError) error = NULL;
  g_autoptr (ModikeSecret) s = modike_dh_compute (dh, B (peer), L (peer), &error);

  g_assert_no_error (error);
  g_assert_nonnull (s);
  assert_hex (s->data, s->len, want);
}

static void
assert_dh_rejects (ModikeDh *dh, const guint8 *peer, gsize len)
{
  GError *error = NULL;
  ModikeSecret *s = modike_dh_compute (dh, peer, len, &error);

  g_assert_null (s);
  g_assert_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_INVALID);
  g_clear_error (&error);
}

static void
assert_dh_private_rejected (ModikeDhGroup group, const guint8 *priv, gsize len)
{
  GError *error = NULL;
  ModikeDh *dh = modike_dh_new_with_private (group, priv, len, &error);

  g_assert_null (dh);
  g_assert_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_INVALID);
  g_clear_error (&error);
}

/* RFC 5903 section 8. */
static const struct {
  ModikeDhGroup group;
  const char *i, *gi, *r, *gr, *gir;
} rfc5903[] = {
  { MODIKE_DH_ECP256,
    "c88f01f510d9ac3f70a292daa2316de544e9aab8afe84049c62a9c57862d1433",
    "dad0b65394221cf9b051e1feca5787d098dfe637fc90b9ef945d0c3772581180"
    "5271a0461cdb8252d61f1c456fa3e59ab1f45b33accf5f58389e0577b8990bb3",
    "c6ef9c5d78ae012a011164acb397ce2088685d8f06bf9be0b283ab46476bee53",
    "d12dfb5289c8d4f81208b70270398c342296970a0bccb74c736fc7554494bf63"
    "56fbf3ca366cc23e8157854c13c58d6aac23f046ada30f8353e74f33039872ab",
    "d6840f6b42f6edafd13116e0e12565202fef8e9ece7dce03812464d04b9442de" },
  { MODIKE_DH_ECP384,
    "099f3c7034d4a2c699884d73a375a67f7624ef7c6b3c0f160647b67414dce655e35b538041e649ee3faef896783ab194",
    "667842d7d180ac2cde6f74f37551f55755c7645c20ef73e31634fe72b4c55ee6de3ac808acb4bdb4c88732aee95f41aa"
    "9482ed1fc0eeb9cafc4984625ccfc23f65032149e0e144ada024181535a0f38eeb9fcff3c2c947dae69b4c634573a81c",
    "41cb0779b4bdb85d47846725fbec3c9430fab46cc8dc5060855cc9bda0aa2942e0308312916b8ed2960e4bd55a7448fc",
    "e558dbef53eecde3d3fccfc1aea08a89a987475d12fd950d83cfa41732bc509d0d1ac43a0336def96fda41d0774a3571"
    "dcfbec7aacf3196472169e838430367f66eebe3c6e70c416dd5f0c68759dd1fff83fa40142209dff5eaad96db9e6386c",
    "11187331c279962d93d604243fd592cb9d0a926f422e47187521287e7156c5c4d603135569b9e9d09cf5d4a270f59746" },
};

static void
test_dh_ecp_rfc5903 (void)
{
  for (gsize n = 0; n < G_N_ELEMENTS (rfc5903); n++)
    {
      g_autoptr (ModikeDh) i = dh_fixed (rfc5903[n].group, rfc5903[n].i);
      g_autoptr (ModikeDh) r = dh_fixed (rfc5903[n].group, rfc5903[n].r);

      g_test_message ("%s", modike_dh_name (rfc5903[n].group));
      assert_dh_public (i, rfc5903[n].gi);
      assert_dh_public (r, rfc5903[n].gr);
      assert_dh_shared (i, rfc5903[n].gr, rfc5903[n].gir);
      assert_dh_shared (r, rfc5903[n].gi, rfc5903[n].gir);
    }
}

static void
test_dh_ecp_invalid (void)
{
  /* secp256r1 field prime and group order. */
  static const char p256[] = "ffffffff00000001000000000000000000000000ffffffffffffffffffffffff";
  static const char n256[] = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";

  for (gsize n = 0; n < G_N_ELEMENTS (rfc5903); n++)
    {
      ModikeDhGroup group = rfc5903[n].group;
      gsize len = modike_dh_public_len (group);
      g_autoptr (ModikeDh) i = dh_fixed (group, rfc5903[n].i);
      g_autoptr (GBytes) gr = hex (rfc5903[n].gr);
      g_autofree guint8 *bad = g_malloc0 (len + 1);
      guint8 zero[48] = { 0 };

      g_assert_cmpuint (L (gr), ==, len);
      /* One flipped bit in y, then in x: off the curve. */
      memcpy (bad, B (gr), len);
      bad[len - 1] ^= 0x01;
      assert_dh_rejects (i, bad, len);
      memcpy (bad, B (gr), len);
      bad[3] ^= 0x10;
      assert_dh_rejects (i, bad, len);
      /* (0, 0) stands for no point; the curves have b != 0. */
      memset (bad, 0, len);
      assert_dh_rejects (i, bad, len);
      /* Wrong lengths: truncated, and SEC1 0x04-prefixed uncompressed. */
      assert_dh_rejects (i, B (gr), len - 1);
      bad[0] = 0x04;
      memcpy (bad + 1, B (gr), len);
      assert_dh_rejects (i, bad, len + 1);
      assert_dh_rejects (i, B (gr), 0);

      /* Private values: zero, and the wrong length. */
      assert_dh_private_rejected (group, zero, len / 2);
      assert_dh_private_rejected (group, B (gr), len / 2 - 1);
      assert_dh_private_rejected (group, B (gr), len / 2 + 1);
    }

  {
    g_autoptr (ModikeDh) i = dh_fixed (MODIKE_DH_ECP256, rfc5903[0].i);
    g_autoptr (GBytes) p = hex (p256);
    g_autoptr (GBytes) order = hex (n256);
    g_autoptr (GBytes) gr = hex (rfc5903[0].gr);
    guint8 bad[64];

    /* x = p (not reduced), with the valid y. */
    memcpy (bad, B (p), 32);
    memcpy (bad + 32, B (gr) + 32, 32);
    assert_dh_rejects (i, bad, 64);
    /* A valid x with y + p would not fit 32 bytes; y = p is out of range. */
    memcpy (bad, B (gr), 32);
    memcpy (bad + 32, B (p), 32);
    assert_dh_rejects (i, bad, 64);
    /* Private values equal to the group order or above it. */
    assert_dh_private_rejected (MODIKE_DH_ECP256, B (order), 32);
    memset (bad, 0xff, 32);
    assert_dh_private_rejected (MODIKE_DH_ECP256, bad, 32);
  }
}

static void
test_dh_curve25519 (void)
{
  /* RFC 7748 section 6.1. */
  static const char a[] = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
  static const char ka[] = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";
  static const char b[] = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb";
  static const char kb[] = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f";
  static const char k[] = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";
  g_autoptr (ModikeDh) alice = dh_fixed (MODIKE_DH_CURVE25519, a);
  g_autoptr (ModikeDh) bob = dh_fixed (MODIKE_DH_CURVE25519, b);

  assert_dh_public (alice, ka);
  assert_dh_public (bob, kb);
  assert_dh_shared (alice, kb, k);
  assert_dh_shared (bob, ka, k);

  /* RFC 7748 section 5.2, first vector: an unclamped scalar and a u whose
   * top bit is set, both of which the function must handle itself. */
  {
    g_autoptr (ModikeDh) dh = dh_fixed (MODIKE_DH_CURVE25519,
                                        "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4");

    assert_dh_shared (dh, "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
                      "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552");
  }
}

static void
test_dh_curve25519_invalid (void)
{
  g_autoptr (ModikeDh) dh = dh_fixed (MODIKE_DH_CURVE25519,
                                      "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
  guint8 u[33] = { 0 };

  /* u = 0 and u = 1 have small order: the result is all zeros (RFC 8031). */
  assert_dh_rejects (dh, u, 32);
  u[0] = 1;
  assert_dh_rejects (dh, u, 32);
  /* Wrong lengths. */
  u[0] = 9;
  assert_dh_rejects (dh, u, 31);
  assert_dh_rejects (dh, u, 33);
  assert_dh_private_rejected (MODIKE_DH_CURVE25519, u, 31);
  assert_dh_private_rejected (MODIKE_DH_CURVE25519, u, 33);
}

/* The RFC 2409 / 3526 MODP primes, rebuilt here from their definition
 * p = 2^n - 2^(n-64) - 1 + 2^64 * (floor(2^(n-130) pi) + k). */
static const struct {
  ModikeDhGroup group;
  guint bits;
  gulong k;
} modp_groups[] = {
  { MODIKE_DH_MODP768, 768, 149686 },
  { MODIKE_DH_MODP1024, 1024, 129093 },
  { MODIKE_DH_MODP1536, 1536, 741804 },
  { MODIKE_DH_MODP2048, 2048, 124476 },
  { MODIKE_DH_MODP3072, 3072, 1690314 },
  { MODIKE_DH_MODP4096, 4096, 240904 },
};

/* floor(arctan(1/x) * one), alternating series with integer terms. */
static void
arctan_inv (mpz_t out, gulong x, const mpz_t one)
{
  mpz_t term, t;
  gulong x2 = x * x;

  mpz_init (term);
  mpz_init (t);
  mpz_fdiv_q_ui (term, one, x);
  mpz_set (out, term);
  for (gulong n = 1; mpz_sgn (term) != 0; n++)
    {
      mpz_fdiv_q_ui (term, term, x2);
      mpz_fdiv_q_ui (t, term, 2 * n + 1);
      if (n % 2 == 1)
        mpz_sub (out, out, t);
      else
        mpz_add (out, out, t);
    }
  mpz_clear (term);
  mpz_clear (t);
}

/* floor(2^bits * pi) by Machin's formula, with guard bits for the
 * truncation errors of the series. */
static void
pi_fixed (mpz_t out, guint bits)
{
  mpz_t one, a, b;

  mpz_init (one);
  mpz_init (a);
  mpz_init (b);
  mpz_ui_pow_ui (one, 2, bits + 64);
  arctan_inv (a, 5, one);
  arctan_inv (b, 239, one);
  mpz_mul_ui (a, a, 4);
  mpz_sub (a, a, b);
  mpz_mul_ui (out, a, 4);
  mpz_fdiv_q_2exp (out, out, 64);
  mpz_clear (one);
  mpz_clear (a);
  mpz_clear (b);
}

static void
modp_prime (mpz_t p, guint n, gulong k)
{
  mpz_t t;

  mpz_init (t);
  pi_fixed (t, n - 130);
  mpz_add_ui (t, t, k);
  mpz_mul_2exp (p, t, 64);
  mpz_setbit (p, n);
  mpz_ui_pow_ui (t, 2, n - 64);
  mpz_sub (p, p, t);
  mpz_sub_ui (p, p, 1);
  mpz_clear (t);
}

static GBytes *
mpz_bytes (const mpz_t z, gsize len)
{
  guint8 *out = g_malloc0 (len);
  gsize n = (mpz_sizeinbase (z, 2) + 7) / 8;

  g_assert_cmpuint (n, <=, len);
  if (mpz_sgn (z) != 0)
    mpz_export (out + len - n, NULL, 1, 1, 1, 0, z);
  return g_bytes_new_take (out, len);
}

static void
test_dh_modp_primes (void)
{
  for (gsize g = 0; g < G_N_ELEMENTS (modp_groups); g++)
    {
      guint n = modp_groups[g].bits;
      ModikeDhGroup group = modp_groups[g].group;
      mpz_t p, q, t, x, y;
      g_autoptr (GBytes) pub = NULL;
      g_autoptr (GBytes) want = NULL;
      g_autoptr (ModikeDh) dh = NULL;
      g_autoptr (ModikeSecret) s = NULL;
      guint8 priv[40];
      GError *error = NULL;

      g_test_message ("%s", modike_dh_name (group));
      mpz_init (p);
      mpz_init (q);
      mpz_init (t);
      mpz_init (x);
      mpz_init (y);
      modp_prime (p, n, modp_groups[g].k);

      /* Structure: n bits, 64 one bits at each end; a safe prime. */
      g_assert_cmpuint (mpz_sizeinbase (p, 2), ==, n);
      mpz_fdiv_q_2exp (t, p, n - 64);
      g_assert_cmpuint (mpz_popcount (t), ==, 64);
      mpz_fdiv_r_2exp (t, p, 64);
      g_assert_cmpuint (mpz_popcount (t), ==, 64);
      g_assert_cmpint (mpz_probab_prime_p (p, 10), >, 0);
      mpz_sub_ui (q, p, 1);
      mpz_fdiv_q_2exp (q, q, 1);
      g_assert_cmpint (mpz_probab_prime_p (q, 10), >, 0);

      /* The library's prime is this one: its public value for a fixed
       * exponent equals 2^x mod p computed here. */
      g_assert_cmpuint (modike_dh_public_len (group), ==, n / 8);
      for (guint i = 0; i < sizeof priv; i++)
        priv[i] = (guint8) (0x9d ^ (i * 29 + g));
      dh = modike_dh_new_with_private (group, priv, sizeof priv, &error);
      g_assert_no_error (error);
      mpz_import (x, sizeof priv, 1, 1, 1, 0, priv);
      mpz_set_ui (t, 2);
      mpz_powm (y, t, x, p);
      want = mpz_bytes (y, n / 8);
      pub = modike_dh_public (dh);
      g_assert_cmpmem (B (pub), L (pub), B (want), L (want));

      /* And the shared value is peer^x mod p, padded to the prime. */
      mpz_ui_pow_ui (t, 3, 700);
      mpz_mod (t, t, p);
      g_clear_pointer (&want, g_bytes_unref);
      want = mpz_bytes (t, n / 8);
      s = modike_dh_compute (dh, B (want), L (want), &error);
      g_assert_no_error (error);
      mpz_powm (y, t, x, p);
      g_clear_pointer (&want, g_bytes_unref);
      want = mpz_bytes (y, n / 8);
      g_assert_cmpmem (s->data, s->len, B (want), L (want));

      mpz_clear (p);
      mpz_clear (q);
      mpz_clear (t);
      mpz_clear (x);
      mpz_clear (y);
    }
}

static void
test_dh_modp_agree (void)
{
  for (gsize g = 0; g < G_N_ELEMENTS (modp_groups); g++)
    {
      ModikeDhGroup group = modp_groups[g].group;
      g_autoptr (GError) error = NULL;
      g_autoptr (ModikeDh) a = modike_dh_new (group, &error);
      g_autoptr (ModikeDh) b = NULL;
      g_autoptr (ModikeDh) c = NULL;
      g_autoptr (GBytes) pa = NULL, pb = NULL, pc = NULL;
      g_autoptr (ModikeSecret) sa = NULL, sb = NULL;

      g_assert_no_error (error);
      b = modike_dh_new (group, &error);
      g_assert_no_error (error);
      pa = modike_dh_public (a);
      pb = modike_dh_public (b);
      g_assert_cmpuint (L (pa), ==, modike_dh_public_len (group));
      g_assert_false (g_bytes_equal (pa, pb));
      sa = modike_dh_compute (a, B (pb), L (pb), &error);
      g_assert_no_error (error);
      sb = modike_dh_compute (b, B (pa), L (pa), &error);
      g_assert_no_error (error);
      g_assert_cmpuint (sa->len, ==, modike_dh_public_len (group));
      g_assert_cmpmem (sa->data, sa->len, sb->data, sb->len);

      /* Two parties with fixed private values agree. */
      {
        g_autoptr (ModikeDh) fa = dh_fixed (group, "0102030405060708090a0b0c0d0e0f10");
        g_autoptr (ModikeDh) fb = dh_fixed (group, "7f6e5d4c3b2a19080706050403020100ff");
        g_autoptr (GBytes) pfa = modike_dh_public (fa);
        g_autoptr (GBytes) pfb = modike_dh_public (fb);
        g_autoptr (ModikeSecret) s1 = modike_dh_compute (fa, B (pfb), L (pfb), &error);
        g_autoptr (ModikeSecret) s2 = NULL;

        g_assert_no_error (error);
        s2 = modike_dh_compute (fb, B (pfa), L (pfa), &error);
        g_assert_no_error (error);
        g_assert_cmpmem (s1->data, s1->len, s2->data, s2->len);
        g_assert_false (g_bytes_equal (pfa, pfb));
      }

      /* Fixed private values give the same public value every time. */
      c = dh_fixed (group, "0102030405060708090a0b0c0d0e0f10");
      pc = modike_dh_public (c);
      g_clear_pointer (&c, modike_dh_free);
      c = dh_fixed (group, "0102030405060708090a0b0c0d0e0f10");
      {
        g_autoptr (GBytes) again = modike_dh_public (c);

        g_assert_true (g_bytes_equal (pc, again));
      }
    }
}

static void
test_dh_modp_invalid (void)
{
  for (gsize g = 0; g < G_N_ELEMENTS (modp_groups); g++)
    {
      ModikeDhGroup group = modp_groups[g].group;
      guint n = modp_groups[g].bits;
      gsize len = n / 8;
      g_autoptr (ModikeDh) dh = dh_fixed (group, "0102030405060708090a0b0c0d0e0f10");
      g_autofree guint8 *v = g_malloc0 (len + 1);
      mpz_t p, t;

      mpz_init (p);
      mpz_init (t);
      modp_prime (p, n, modp_groups[g].k);

      assert_dh_rejects (dh, v, len);          /* 0 */
      v[len - 1] = 1;
      assert_dh_rejects (dh, v, len);          /* 1 */
      v[len - 1] = 2;
      {
        /* 2 is fine with the right length, but not too short or long. */
        GError *error = NULL;
        ModikeSecret *s = modike_dh_compute (dh, v, len, &error);

        g_assert_no_error (error);
        modike_secret_free (s);
      }
      assert_dh_rejects (dh, v + 1, len - 1);
      v[len] = 2;
      v[len - 1] = 0;
      assert_dh_rejects (dh, v, len + 1);
      assert_dh_rejects (dh, v, 0);
      for (int delta = -1; delta <= 1; delta++) /* p - 1, p, p + 1 */
        {
          g_autoptr (GBytes) b = NULL;

          if (delta < 0)
            mpz_sub_ui (t, p, 1);
          else
            mpz_add_ui (t, p, (gulong) delta);
          b = mpz_bytes (t, len);
          assert_dh_rejects (dh, B (b), len);
        }
      memset (v, 0xff, len);
      assert_dh_rejects (dh, v, len);

      /* Private values out of range: 0, 1, p - 1, longer than p. */
      memset (v, 0, len + 1);
      assert_dh_private_rejected (group, v, len);
      v[len - 1] = 1;
      assert_dh_private_rejected (group, v, len);
      {
        g_autoptr (GBytes) b = NULL;

        mpz_sub_ui (t, p, 1);
        b = mpz_bytes (t, len);
        assert_dh_private_rejected (group, B (b), len);
      }
      assert_dh_private_rejected (group, v, len + 1);

      mpz_clear (p);
      mpz_clear (t);
    }
}

static void
test_dh_names (void)
{
  static const struct {
    ModikeDhGroup group;
    const char *name;
    gsize len;
  } names[] = {
    { MODIKE_DH_MODP768, "modp768", 96 },
    { MODIKE_DH_MODP1024, "modp1024", 128 },
    { MODIKE_DH_MODP1536, "modp1536", 192 },
    { MODIKE_DH_MODP2048, "modp2048", 256 },
    { MODIKE_DH_MODP3072, "modp3072", 384 },
    { MODIKE_DH_MODP4096, "modp4096", 512 },
    { MODIKE_DH_ECP256, "ecp256", 64 },
    { MODIKE_DH_ECP384, "ecp384", 96 },
    { MODIKE_DH_CURVE25519, "curve25519", 32 },
  };
  ModikeDhGroup group;
  GError *error = NULL;

  for (gsize i = 0; i < G_N_ELEMENTS (names); i++)
    {
      g_assert_true (modike_dh_supported (names[i].group));
      g_assert_cmpstr (modike_dh_name (names[i].group), ==, names[i].name);
      g_assert_cmpuint (modike_dh_public_len (names[i].group), ==, names[i].len);
      g_assert_true (modike_dh_from_name (names[i].name, &group));
      g_assert_cmpuint (group, ==, names[i].group);
    }
  g_assert_true (modike_dh_from_name ("x25519", &group));
  g_assert_cmpuint (group, ==, MODIKE_DH_CURVE25519);
  g_assert_false (modike_dh_from_name ("modp8192", &group));
  g_assert_false (modike_dh_supported (3));  /* EC2N, never */
  g_assert_false (modike_dh_supported (21));
  g_assert_cmpuint (modike_dh_public_len (21), ==, 0);
  g_assert_null (modike_dh_name (21));
  g_assert_null (modike_dh_new (21, &error));
  g_assert_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_UNSUPPORTED);
  g_clear_error (&error);
}

/* Random ECP and Curve25519 keys agree with each other. */
static void
test_dh_ec_agree (void)
{
  static const ModikeDhGroup groups[] = { MODIKE_DH_ECP256, MODIKE_DH_ECP384, MODIKE_DH_CURVE25519 };

  for (gsize g = 0; g < G_N_ELEMENTS (groups); g++)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (ModikeDh) a = modike_dh_new (groups[g], &error);
      g_autoptr (ModikeDh) b = modike_dh_new (groups[g], &error);
      g_autoptr (GBytes) pa = modike_dh_public (a);
      g_autoptr (GBytes) pb = modike_dh_public (b);
      g_autoptr (ModikeSecret) sa = modike_dh_compute (a, B (pb), L (pb), &error);
      g_autoptr (ModikeSecret) sb = NULL;

      g_assert_no_error (error);
      sb = modike_dh_compute (b, B (pa), L (pa), &error);
      g_assert_no_error (error);
      g_assert_false (g_bytes_equal (pa, pb));
      g_assert_cmpuint (sa->len, ==, groups[g] == MODIKE_DH_ECP384 ? 48 : 32);
      g_assert_cmpmem (sa->data, sa->len, sb->data, sb->len);
    }
}

/* ---- key derivation ---- */

/* Fixed inputs; the expected values were computed independently with
 * Python's hmac module. */
static const char kd_psk[] = "modike test psk";
static const guint8 kd_icookie[8] = { 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77 };
static const guint8 kd_rcookie[8] = { 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff };

typedef struct {
  guint8 ni[16], nr[20], gxy[128];
} KdInputs;

static void
kd_inputs (KdInputs *in)
{
  for (guint i = 0; i < sizeof in->ni; i++)
    in->ni[i] = (guint8) i;
  for (guint i = 0; i < sizeof in->nr; i++)
    in->nr[i] = (guint8) (0x80 + i);
  for (guint i = 0; i < sizeof in->gxy; i++)
    in->gxy[i] = (guint8) (i * 7 + 3);
}

static void
test_keys_by_hand (void)
{
  static const ModikeHashAlg algs[] = { MODIKE_HASH_MD5, MODIKE_HASH_SHA1, MODIKE_HASH_SHA2_256,
                                        MODIKE_HASH_SHA2_384, MODIKE_HASH_SHA2_512 };
  KdInputs in;

  kd_inputs (&in);
  for (gsize a = 0; a < G_N_ELEMENTS (algs); a++)
    {
      ModikeHashAlg prf = algs[a];
      gsize h = modike_hash_len (prf);
      g_autoptr (ModikeSecret) psk = modike_secret_new_from (kd_psk, strlen (kd_psk));
      g_autoptr (ModikeSecret) gxy = modike_secret_new_from (in.gxy, sizeof in.gxy);
      ModikeP1Keys keys = { 0 };
      g_autoptr (GByteArray) m = g_byte_array_new ();
      guint8 skeyid[MODIKE_HASH_MAX], d[MODIKE_HASH_MAX], ka[MODIKE_HASH_MAX], e[MODIKE_HASH_MAX];
      guint8 n;

      g_test_message ("%s", modike_hash_name (prf));
      /* SKEYID = prf(psk, Ni_b | Nr_b) */
      g_byte_array_append (m, in.ni, sizeof in.ni);
      g_byte_array_append (m, in.nr, sizeof in.nr);
      modike_prf (prf, kd_psk, strlen (kd_psk), m->data, m->len, skeyid);

      /* SKEYID_d = prf(SKEYID, g^xy | CKY-I | CKY-R | 0) */
      g_byte_array_set_size (m, 0);
      g_byte_array_append (m, in.gxy, sizeof in.gxy);
      g_byte_array_append (m, kd_icookie, 8);
      g_byte_array_append (m, kd_rcookie, 8);
      n = 0;
      g_byte_array_append (m, &n, 1);
      modike_prf (prf, skeyid, h, m->data, m->len, d);
      /* SKEYID_a = prf(SKEYID, SKEYID_d | g^xy | CKY-I | CKY-R | 1) */
      g_byte_array_prepend (m, d, (guint) h);
      m->data[m->len - 1] = 1;
      modike_prf (prf, skeyid, h, m->data, m->len, ka);
      /* SKEYID_e = prf(SKEYID, SKEYID_a | g^xy | CKY-I | CKY-R | 2) */
      memcpy (m->data, ka, h);
      m->data[m->len - 1] = 2;
      modike_prf (prf, skeyid, h, m->data, m->len, e);

      modike_p1_keys_derive (&keys, prf,
                             modike_skeyid_psk (prf, psk, in.ni, sizeof in.ni, in.nr, sizeof in.nr),
                             gxy, kd_icookie, kd_rcookie, 16);
      g_assert_cmpmem (keys.skeyid->data, keys.skeyid->len, skeyid, h);
      g_assert_cmpmem (keys.skeyid_d->data, keys.skeyid_d->len, d, h);
      g_assert_cmpmem (keys.skeyid_a->data, keys.skeyid_a->len, ka, h);
      g_assert_cmpmem (keys.skeyid_e->data, keys.skeyid_e->len, e, h);
      /* Every prf is at least 16 bytes: the key is SKEYID_e's head. */
      g_assert_cmpmem (keys.enc_key->data, keys.enc_key->len, e, 16);
      modike_p1_keys_clear (&keys);
    }
}

static void
derive_fixed (ModikeP1Keys *keys, ModikeHashAlg prf, gsize key_len)
{
  g_autoptr (ModikeSecret) psk = modike_secret_new_from (kd_psk, strlen (kd_psk));
  g_autoptr (ModikeSecret) gxy = NULL;
  KdInputs in;

  kd_inputs (&in);
  gxy = modike_secret_new_from (in.gxy, sizeof in.gxy);
  modike_p1_keys_derive (keys, prf, modike_skeyid_psk (prf, psk, in.ni, sizeof in.ni, in.nr, sizeof in.nr),
                         gxy, kd_icookie, kd_rcookie, key_len);
}

static void
test_keys_known (void)
{
  ModikeP1Keys keys = { 0 };

  /* aes256 with the md5 prf: the key is K1 | K2, two 16-byte blocks. */
  derive_fixed (&keys, MODIKE_HASH_MD5, modike_encr_key_len (MODIKE_ENCR_AES_CBC, 256));
  assert_hex (keys.skeyid->data, keys.skeyid->len, "91a75cf161988b30d145af969fea38d9");
  assert_hex (keys.skeyid_d->data, keys.skeyid_d->len, "08951c026c4f04bedcf268c14965ef0f");
  assert_hex (keys.skeyid_a->data, keys.skeyid_a->len, "6f9af5ee9cb02918ce24b9dac2c6fd4b");
  assert_hex (keys.skeyid_e->data, keys.skeyid_e->len, "53fbc621cb50c07bde4a83cdcbb4fc59");
  assert_hex (keys.enc_key->data, keys.enc_key->len,
              "cf17ef49cf260231cc17cffaca744731a60a420127c6364b4d075715a117d21d");
  {
    /* By hand: K1 = prf(SKEYID_e, 0x00), K2 = prf(SKEYID_e, K1). */
    static const guint8 zero = 0;
    guint8 k1[16], k2[16];

    modike_prf (MODIKE_HASH_MD5, keys.skeyid_e->data, keys.skeyid_e->len, &zero, 1, k1);
    modike_prf (MODIKE_HASH_MD5, keys.skeyid_e->data, keys.skeyid_e->len, k1, 16, k2);
    g_assert_cmpmem (keys.enc_key->data, 16, k1, 16);
    g_assert_cmpmem (keys.enc_key->data + 16, 16, k2, 16);
  }

  /* 3des with the sha1 prf: 24 bytes = K1 | 4 bytes of K2. */
  derive_fixed (&keys, MODIKE_HASH_SHA1, modike_encr_key_len (MODIKE_ENCR_3DES, 0));
  assert_hex (keys.skeyid->data, keys.skeyid->len, "2e8102b98aeac25b57ca103a207a065e9f4b83b9");
  assert_hex (keys.skeyid_d->data, keys.skeyid_d->len, "4b7b013c234e5eaa1b9bc6b72ff75da9a1e4e33e");
  assert_hex (keys.skeyid_a->data, keys.skeyid_a->len, "6b129b92316c9d0f4a77d2912f71d535f24df709");
  assert_hex (keys.skeyid_e->data, keys.skeyid_e->len, "b00daa917c10f2061a7dc4d67ea998dd8eea6e0f");
  assert_hex (keys.enc_key->data, keys.enc_key->len, "4acd3ed10d2d38e2a0c876843ac32f6095fe74c3689c4a72");

  /* aes128 with the sha1 prf: no expansion, the head of SKEYID_e. */
  derive_fixed (&keys, MODIKE_HASH_SHA1, 16);
  assert_hex (keys.enc_key->data, keys.enc_key->len, "b00daa917c10f2061a7dc4d67ea998dd");
  modike_p1_keys_clear (&keys);
}

static void
test_keys_iv (void)
{
  guint8 gxi[64], gxr[64], iv[16], want[MODIKE_HASH_MAX];
  static const guint8 last[16] = { 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                                   0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff };
  guint8 buf[128];

  for (guint i = 0; i < 64; i++)
    {
      gxi[i] = (guint8) (i * 5 + 1);
      gxr[i] = (guint8) (i * 11 + 9);
    }
  /* Phase 1: hash(g^xi | g^xr), truncated to the block. */
  modike_p1_iv (MODIKE_HASH_SHA1, gxi, sizeof gxi, gxr, sizeof gxr, iv, 16);
  assert_hex (iv, 16, "ea46d090d17864f76b3107126261d080");
  memcpy (buf, gxi, 64);
  memcpy (buf + 64, gxr, 64);
  modike_hash (MODIKE_HASH_SHA2_256, buf, 128, want);
  modike_p1_iv (MODIKE_HASH_SHA2_256, gxi, sizeof gxi, gxr, sizeof gxr, iv, 8);
  g_assert_cmpmem (iv, 8, want, 8);

  /* Phase 2: hash(last block | M-ID in network order). */
  modike_p2_iv (MODIKE_HASH_SHA1, last, 16, 0xa1b2c3d4, iv);
  assert_hex (iv, 16, "9942d87a577851c199810568c25f1741");
  memcpy (buf, last, 8);
  buf[8] = 0x00;
  buf[9] = 0x00;
  buf[10] = 0x01;
  buf[11] = 0x02;
  modike_hash (MODIKE_HASH_MD5, buf, 12, want);
  modike_p2_iv (MODIKE_HASH_MD5, last, 8, 0x0102, iv);
  g_assert_cmpmem (iv, 8, want, 8);
}

static void
test_keys_keymat (void)
{
  ModikeP1Keys keys = { 0 };
  static const guint8 spi[4] = { 0xc0, 0xff, 0xee, 0x01 };
  g_autoptr (ModikeSecret) nopfs = NULL;
  g_autoptr (ModikeSecret) pfs = NULL;
  g_autoptr (ModikeSecret) gxy = NULL;
  KdInputs in;

  kd_inputs (&in);
  gxy = modike_secret_new_from (in.gxy, sizeof in.gxy);
  derive_fixed (&keys, MODIKE_HASH_SHA1, 24);

  /* 72 bytes: four sha1 blocks, the last one cut. */
  nopfs = modike_qm_keymat (MODIKE_HASH_SHA1, keys.skeyid_d, NULL, 3, spi, in.ni, sizeof in.ni,
                            in.nr, sizeof in.nr, 72);
  assert_hex (nopfs->data, nopfs->len,
              "320a1da3e09d2475f2191641fd9fa2889ba460c9fcaa3fa0b1f8726b6f4905c7b964f46f748e15a0"
              "ae8360bc8a2ccf5847387972f5cccd0a98acc6d5c4f95adcf17ccaa53aed5ada");
  pfs = modike_qm_keymat (MODIKE_HASH_SHA1, keys.skeyid_d, gxy, 3, spi, in.ni, sizeof in.ni,
                          in.nr, sizeof in.nr, 40);
  assert_hex (pfs->data, pfs->len,
              "4288baf14125860807d9b20a736082637f23bc102ff1d43ba4148e79a72211e88622c2e3e25df086");

  /* By hand: K1 = prf(SKEYID_d, protocol | SPI | Ni_b | Nr_b),
   * K2 = prf(SKEYID_d, K1 | protocol | SPI | Ni_b | Nr_b). */
  {
    g_autoptr (GByteArray) m = g_byte_array_new ();
    guint8 k1[20], k2[20];
    guint8 proto = 3;

    g_byte_array_append (m, &proto, 1);
    g_byte_array_append (m, spi, 4);
    g_byte_array_append (m, in.ni, sizeof in.ni);
    g_byte_array_append (m, in.nr, sizeof in.nr);
    modike_prf (MODIKE_HASH_SHA1, keys.skeyid_d->data, keys.skeyid_d->len, m->data, m->len, k1);
    g_byte_array_prepend (m, k1, 20);
    modike_prf (MODIKE_HASH_SHA1, keys.skeyid_d->data, keys.skeyid_d->len, m->data, m->len, k2);
    g_assert_cmpmem (nopfs->data, 20, k1, 20);
    g_assert_cmpmem (nopfs->data + 20, 20, k2, 20);
  }
  modike_p1_keys_clear (&keys);
}

/* ---- strongSwan captures ---- */

static GBytes *
ini_bytes (GKeyFile *kf, const char *group, const char *key, gboolean text_ok)
{
  g_autofree char *v = g_key_file_get_string (kf, group, key, NULL);
  GBytes *b;

  if (v == NULL)
    return NULL;
  g_strstrip (v);
  b = hex_try (v);
  if (b == NULL && text_ok)
    return g_bytes_new (v, strlen (v));
  if (b == NULL)
    g_error ("keys.ini [%s] %s is not hex: %s", group, key, v);
  return b;
}

/* prf and encr may be names ("sha1", "aes256") or attribute numbers. */
static gboolean
ini_alg (GKeyFile *kf, const char *group, const char *key, guint *out)
{
  g_autofree char *v = g_key_file_get_string (kf, group, key, NULL);
  guint64 n;

  if (v == NULL)
    return FALSE;
  g_strstrip (v);
  if (g_ascii_string_to_unsigned (v, 10, 1, G_MAXUINT16, &n, NULL))
    {
      *out = (guint) n;
      return TRUE;
    }
  if (g_str_equal (key, "prf"))
    {
      ModikeHashAlg h;

      if (!modike_hash_from_name (v, &h))
        g_error ("keys.ini [%s] unknown prf %s", group, v);
      *out = h;
      return TRUE;
    }
  {
    ModikeEncrAlg e;
    guint bits;

    if (!modike_encr_from_name (v, &e, &bits))
      g_error ("keys.ini [%s] unknown encr %s", group, v);
    *out = e | bits << 16;
    return TRUE;
  }
}

static void
check_value (const char *group, const char *key, GBytes *want, const guint8 *got, gsize got_len,
             guint *checked)
{
  g_autofree char *g = NULL;
  g_autofree char *w = NULL;

  if (want == NULL)
    return;
  g = to_hex (got, got_len);
  w = to_hex (B (want), L (want));
  if (g_strcmp0 (g, w) != 0)
    g_error ("keys.ini [%s] %s: computed %s, captured %s", group, key, g, w);
  (*checked)++;
}

static void
test_keys_strongswan (void)
{
  const char *path = g_test_get_filename (G_TEST_DIST, "vectors", "strongswan", "keys.ini", NULL);
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  g_autoptr (GError) error = NULL;
  g_auto (GStrv) groups = NULL;
  guint total = 0;

  g_test_message ("loading %s", path);
  /* The capture is part of the test data: missing means failing. */
  g_assert_true (g_key_file_load_from_file (kf, path, G_KEY_FILE_NONE, &error));
  g_assert_no_error (error);
  groups = g_key_file_get_groups (kf, NULL);
  g_assert_nonnull (groups);
  g_assert_nonnull (groups[0]);

  for (gsize gi = 0; groups[gi] != NULL; gi++)
    {
      const char *grp = groups[gi];
      g_autoptr (GBytes) psk = ini_bytes (kf, grp, "psk", TRUE);
      g_autoptr (GBytes) icookie = ini_bytes (kf, grp, "icookie", FALSE);
      g_autoptr (GBytes) rcookie = ini_bytes (kf, grp, "rcookie", FALSE);
      g_autoptr (GBytes) ni = ini_bytes (kf, grp, "ni", FALSE);
      g_autoptr (GBytes) nr = ini_bytes (kf, grp, "nr", FALSE);
      g_autoptr (GBytes) gxi = ini_bytes (kf, grp, "gxi", FALSE);
      g_autoptr (GBytes) gxr = ini_bytes (kf, grp, "gxr", FALSE);
      g_autoptr (GBytes) gxy = ini_bytes (kf, grp, "gxy", FALSE);
      g_autoptr (GBytes) skeyid = ini_bytes (kf, grp, "skeyid", FALSE);
      g_autoptr (GBytes) skeyid_d = ini_bytes (kf, grp, "skeyid_d", FALSE);
      g_autoptr (GBytes) skeyid_a = ini_bytes (kf, grp, "skeyid_a", FALSE);
      g_autoptr (GBytes) skeyid_e = ini_bytes (kf, grp, "skeyid_e", FALSE);
      g_autoptr (GBytes) enc_key = ini_bytes (kf, grp, "enc_key", FALSE);
      g_autoptr (GBytes) iv = ini_bytes (kf, grp, "iv", FALSE);
      g_autoptr (ModikeSecret) sk = NULL;
      guint prf = 0, encr = 0, keybits = 0;
      gboolean have_encr;
      gsize key_len = 0, block = 0;
      guint checked = 0;

      g_test_message ("[%s]", grp);
      if (!ini_alg (kf, grp, "prf", &prf) || !modike_hash_supported (prf))
        g_error ("keys.ini [%s]: no usable prf", grp);
      have_encr = ini_alg (kf, grp, "encr", &encr);
      if (have_encr)
        {
          keybits = encr >> 16;
          encr &= 0xffff;
          if (g_key_file_has_key (kf, grp, "keybits", NULL))
            keybits = (guint) g_key_file_get_integer (kf, grp, "keybits", NULL);
          key_len = modike_encr_key_len (encr, keybits);
          block = modike_encr_block_len (encr);
          if (key_len == 0)
            g_error ("keys.ini [%s]: unsupported encr %u/%u", grp, encr, keybits);
        }
      if (icookie != NULL && L (icookie) != 8)
        g_error ("keys.ini [%s]: icookie is not 8 bytes", grp);
      if (rcookie != NULL && L (rcookie) != 8)
        g_error ("keys.ini [%s]: rcookie is not 8 bytes", grp);

      if (psk != NULL && ni != NULL && nr != NULL)
        {
          g_autoptr (ModikeSecret) key = modike_secret_new_from (B (psk), L (psk));

          sk = modike_skeyid_psk (prf, key, B (ni), L (ni), B (nr), L (nr));
          check_value (grp, "skeyid", skeyid, sk->data, sk->len, &checked);
        }
      else if (skeyid != NULL)
        sk = modike_secret_new_from (B (skeyid), L (skeyid));

      if (sk != NULL && gxy != NULL && icookie != NULL && rcookie != NULL)
        {
          g_autoptr (ModikeSecret) shared = modike_secret_new_from (B (gxy), L (gxy));
          ModikeP1Keys keys = { 0 };

          modike_p1_keys_derive (&keys, prf, g_steal_pointer (&sk), shared, B (icookie), B (rcookie), key_len);
          check_value (grp, "skeyid_d", skeyid_d, keys.skeyid_d->data, keys.skeyid_d->len, &checked);
          check_value (grp, "skeyid_a", skeyid_a, keys.skeyid_a->data, keys.skeyid_a->len, &checked);
          check_value (grp, "skeyid_e", skeyid_e, keys.skeyid_e->data, keys.skeyid_e->len, &checked);
          if (have_encr)
            check_value (grp, "enc_key", enc_key, keys.enc_key->data, keys.enc_key->len, &checked);
          modike_p1_keys_clear (&keys);
        }

      if (have_encr && gxi != NULL && gxr != NULL && iv != NULL)
        {
          guint8 ivbuf[16];

          /* The phase 1 IV uses the negotiated hash, the prf's here. */
          modike_p1_iv (prf, B (gxi), L (gxi), B (gxr), L (gxr), ivbuf, block);
          check_value (grp, "iv", iv, ivbuf, block, &checked);
        }

      g_test_message ("[%s]: %u values reproduced", grp, checked);
      if (checked == 0)
        g_error ("keys.ini [%s]: nothing could be checked", grp);
      total += checked;
    }
  g_assert_cmpuint (total, >, 0);
}

static void
test_self_test (void)
{
  g_autoptr (GError) error = NULL;

  g_assert_true (modike_crypto_self_test (&error));
  g_assert_no_error (error);
}

/* ---- X.509 and RSA signatures (tests/vectors/certs, made by make-certs.sh) ---- */

/* A vector file's path; private keys get mode 0600 first (git keeps 0644). */
static char *
cert_file (const char *name)
{
  char *path = g_test_build_filename (G_TEST_DIST, "vectors", "certs", name, NULL);

  if (g_str_has_suffix (name, ".key"))
    g_assert_cmpint (g_chmod (path, 0600), ==, 0);
  return path;
}

static ModikeX509Creds *
creds_with (const char *chain, const char *key, gboolean ca, gboolean crl)
{
  g_autoptr (ModikeX509Creds) c = modike_x509_creds_new ();
  g_autoptr (GError) error = NULL;

  if (chain != NULL)
    {
      g_autofree char *cf = cert_file (chain), *kf = cert_file (key);

      g_assert_true (modike_x509_creds_load_local (c, cf, kf, &error));
      g_assert_no_error (error);
    }
  if (ca)
    {
      g_autofree char *f = cert_file ("ca.pem");

      g_assert_true (modike_x509_creds_add_ca (c, f, &error));
      g_assert_no_error (error);
    }
  if (crl)
    {
      g_autofree char *f = cert_file ("int.crl");

      g_assert_true (modike_x509_creds_add_crl (c, f, &error));
      g_assert_no_error (error);
    }
  return g_steal_pointer (&c);
}

/* 2030-06-01: inside the test PKI's validity (2024..2044). */
#define X509_NOW G_GINT64_CONSTANT (1906502400)

static void
test_x509_local (void)
{
  g_autoptr (ModikeX509Creds) c = creds_with ("gw-chain.pem", "gw.key", TRUE, FALSE);
  g_autoptr (GPtrArray) chain = modike_x509_creds_local_chain (c);
  g_autoptr (GPtrArray) cas = modike_x509_creds_ca_subjects (c);
  g_autoptr (GBytes) subject = modike_x509_creds_local_subject (c);
  const guint8 v4[] = { 192, 0, 2, 1 }, v4_other[] = { 192, 0, 2, 2 };

  g_assert_true (modike_x509_creds_has_local (c));
  g_assert_cmpuint (chain->len, ==, 2);
  g_assert_cmpuint (cas->len, ==, 1);
  g_assert_true (modike_x509_creds_local_has_id (c, 9 /* DER_ASN1_DN */, g_bytes_get_data (subject, NULL),
                                                 g_bytes_get_size (subject)));
  g_assert_true (modike_x509_creds_local_has_id (c, 2 /* FQDN */, (const guint8 *) "GW.example", 10));
  g_assert_false (modike_x509_creds_local_has_id (c, 2, (const guint8 *) "gw.exampl", 9));
  g_assert_false (modike_x509_creds_local_has_id (c, 3 /* USER_FQDN */, (const guint8 *) "gw.example", 10));
  g_assert_true (modike_x509_creds_local_has_id (c, 1 /* IPV4 */, v4, 4));
  g_assert_false (modike_x509_creds_local_has_id (c, 1, v4_other, 4));
}

static void
test_x509_load_errors (void)
{
  g_autoptr (ModikeX509Creds) c = modike_x509_creds_new ();
  g_autoptr (GError) error = NULL;
  g_autofree char *chain = cert_file ("gw-chain.pem"), *key = cert_file ("gw.key"),
                  *other_key = cert_file ("client.key"), *crl = cert_file ("int.crl");
  g_autofree char *dir = g_dir_make_tmp ("modike-x509-XXXXXX", NULL);
  g_autofree char *loose = g_build_filename (dir, "loose.key", NULL);
  g_autofree char *data = NULL;
  gsize len;

  /* A key others can read is refused before it is read. */
  g_assert_true (g_file_get_contents (key, &data, &len, NULL));
  g_assert_true (g_file_set_contents (loose, data, len, NULL));
  g_assert_cmpint (g_chmod (loose, 0640), ==, 0);
  g_assert_false (modike_x509_creds_load_local (c, chain, loose, &error));
  g_assert_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_INVALID);
  g_assert_nonnull (strstr (error->message, "accessible by group or others (mode 0640)"));
  g_clear_error (&error);
  g_assert_false (modike_x509_creds_has_local (c));

  /* Another certificate's key. */
  g_assert_false (modike_x509_creds_load_local (c, chain, other_key, &error));
  g_assert_nonnull (strstr (error->message, "does not belong to certificate 'CN=gw,O=modike'"));
  g_clear_error (&error);

  /* Not a certificate; not a CRL; a missing file. */
  g_assert_false (modike_x509_creds_load_local (c, crl, key, &error));
  g_assert_nonnull (strstr (error->message, "holds no PEM certificate"));
  g_clear_error (&error);
  g_assert_false (modike_x509_creds_add_crl (c, chain, &error));
  g_assert_nonnull (strstr (error->message, "holds no CRL"));
  g_clear_error (&error);
  g_assert_false (modike_x509_creds_add_ca (c, loose, &error));
  g_assert_nonnull (strstr (error->message, "holds no PEM certificate"));
  g_clear_error (&error);
  g_assert_false (modike_x509_creds_add_ca (c, "/nonexistent/ca.pem", &error));
  g_assert_nonnull (strstr (error->message, "cannot read certificate file '/nonexistent/ca.pem'"));
  g_clear_error (&error);

  g_unlink (loose);
  g_rmdir (dir);
}

/* The signature is RSA PKCS#1 v1.5 type 1 over the raw hash, no
 * DigestInfo: s^e mod n must be 00 01 FF..FF 00 | hash. */
static void
test_x509_sign_format (void)
{
  g_autoptr (ModikeX509Creds) c = creds_with ("gw-chain.pem", "gw.key", FALSE, FALSE);
  g_autofree char *pem = cert_file ("gw.pem");
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) sig = NULL, sig2 = NULL;
  gnutls_datum_t data = { NULL, 0 }, m = { NULL, 0 }, e = { NULL, 0 };
  gnutls_x509_crt_t crt;
  guint8 hash[20], em[256];
  mpz_t zs, zn, ze;
  size_t count = 0;

  for (guint i = 0; i < sizeof hash; i++)
    hash[i] = (guint8) (0xa0 + i);
  sig = modike_x509_sign (c, hash, sizeof hash, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_bytes_get_size (sig), ==, 256);
  /* Deterministic: the same hash signs the same. */
  sig2 = modike_x509_sign (c, hash, sizeof hash, &error);
  g_assert_true (g_bytes_equal (sig, sig2));

  g_assert_cmpint (gnutls_load_file (pem, &data), >=, 0);
  g_assert_cmpint (gnutls_x509_crt_init (&crt), >=, 0);
  g_assert_cmpint (gnutls_x509_crt_import (crt, &data, GNUTLS_X509_FMT_PEM), >=, 0);
  g_assert_cmpint (gnutls_x509_crt_get_pk_rsa_raw (crt, &m, &e), >=, 0);
  mpz_inits (zs, zn, ze, NULL);
  mpz_import (zs, g_bytes_get_size (sig), 1, 1, 1, 0, g_bytes_get_data (sig, NULL));
  mpz_import (zn, m.size, 1, 1, 1, 0, m.data);
  mpz_import (ze, e.size, 1, 1, 1, 0, e.data);
  mpz_powm (zs, zs, ze, zn);
  memset (em, 0, sizeof em);
  g_assert_cmpuint ((mpz_sizeinbase (zs, 2) + 7) / 8, <=, sizeof em);
  mpz_export (em + sizeof em - (mpz_sizeinbase (zs, 2) + 7) / 8, &count, 1, 1, 1, 0, zs);
  g_assert_cmpuint (em[0], ==, 0x00);
  g_assert_cmpuint (em[1], ==, 0x01);
  for (gsize i = 2; i < sizeof em - sizeof hash - 1; i++)
    g_assert_cmpuint (em[i], ==, 0xff);
  g_assert_cmpuint (em[sizeof em - sizeof hash - 1], ==, 0x00);
  g_assert_cmpmem (em + sizeof em - sizeof hash, sizeof hash, hash, sizeof hash);
  mpz_clears (zs, zn, ze, NULL);
  gnutls_free (m.data);
  gnutls_free (e.data);
  gnutls_free (data.data);
  gnutls_x509_crt_deinit (crt);
}

/* The peer's chain as its CERT payloads would carry it (DER, leaf first). */
static GPtrArray *
peer_chain (const char *chain_file, const char *key)
{
  g_autoptr (ModikeX509Creds) c = creds_with (chain_file, key, FALSE, FALSE);

  return modike_x509_creds_local_chain (c);
}

static void
expect_untrusted (const ModikeX509Creds *trust, GPtrArray *chain, gint64 now, const char *message)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (ModikeX509Cert) cert = modike_x509_verify_chain (trust, chain, now, &error);

  g_assert_null (cert);
  g_assert_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_CERT);
  g_assert_cmpstr (error->message, ==, message);
}

static void
test_x509_chain (void)
{
  g_autoptr (ModikeX509Creds) trust = creds_with (NULL, NULL, TRUE, FALSE);
  g_autoptr (ModikeX509Creds) trust_crl = creds_with (NULL, NULL, TRUE, TRUE);
  g_autoptr (ModikeX509Creds) none = modike_x509_creds_new ();
  g_autoptr (GPtrArray) gw = peer_chain ("gw-chain.pem", "gw.key");
  g_autoptr (GPtrArray) expired = peer_chain ("expired-chain.pem", "expired.key");
  g_autoptr (GPtrArray) revoked = peer_chain ("revoked-chain.pem", "revoked.key");
  g_autoptr (GPtrArray) stranger = peer_chain ("stranger.pem", "stranger.key");
  g_autoptr (GPtrArray) leaf_only = peer_chain ("gw-chain.pem", "gw.key");
  g_autoptr (GPtrArray) empty = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  g_autoptr (GError) error = NULL;
  g_autoptr (ModikeX509Cert) cert = NULL;
  g_autoptr (ModikeX509Cert) cert2 = NULL;

  cert = modike_x509_verify_chain (trust, gw, X509_NOW, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (modike_x509_cert_subject (cert), ==, "CN=gw,O=modike");
  g_assert_true (modike_x509_cert_has_id (cert, 2, (const guint8 *) "gw.example", 10));
  g_assert_false (modike_x509_cert_has_id (cert, 2, (const guint8 *) "client.example", 14));
  /* The revoked one passes without the CRL. */
  cert2 = modike_x509_verify_chain (trust, revoked, X509_NOW, &error);
  g_assert_no_error (error);

  expect_untrusted (trust_crl, revoked, X509_NOW, "certificate 'CN=revoked,O=modike' is not trusted: revoked");
  expect_untrusted (trust, expired, X509_NOW, "certificate 'CN=expired,O=modike' is not trusted: expired");
  expect_untrusted (trust, gw, G_GINT64_CONSTANT (1600000000),
                    "certificate 'CN=gw,O=modike' is not trusted: not yet valid");
  expect_untrusted (trust, stranger, X509_NOW, "certificate 'CN=stranger' is not trusted: signer not found");
  g_ptr_array_set_size (leaf_only, 1);
  expect_untrusted (trust, leaf_only, X509_NOW, "certificate 'CN=gw,O=modike' is not trusted: signer not found");
  expect_untrusted (none, gw, X509_NOW, "certificate 'CN=gw,O=modike' is not trusted: no trust anchors configured");
  expect_untrusted (trust, empty, X509_NOW, "the peer sent no certificate");
  /* Bytes that are no certificate, as the leaf or after it. */
  g_ptr_array_set_size (empty, 0);
  g_ptr_array_add (empty, g_bytes_new_static ("\x30\x03\x02\x01", 4));
  expect_untrusted (trust, empty, X509_NOW,
                    "certificate 1 of the peer does not parse: ASN1 parser: Error in DER parsing.");
  g_ptr_array_insert (empty, 0, g_bytes_ref (gw->pdata[0]));
  {
    g_autoptr (GError) e = NULL;
    g_autoptr (ModikeX509Cert) none_cert = modike_x509_verify_chain (trust, empty, X509_NOW, &e);

    g_assert_null (none_cert);
    g_assert_error (e, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_CERT);
    g_assert_true (g_str_has_prefix (e->message, "certificate 2 of the peer does not parse"));
  }
}

static void
test_x509_verify (void)
{
  g_autoptr (ModikeX509Creds) gw = creds_with ("gw-chain.pem", "gw.key", FALSE, FALSE);
  g_autoptr (ModikeX509Creds) client = creds_with ("client-chain.pem", "client.key", TRUE, FALSE);
  g_autoptr (GPtrArray) chain = modike_x509_creds_local_chain (gw);
  g_autoptr (GError) error = NULL;
  g_autoptr (ModikeX509Cert) cert = modike_x509_verify_chain (client, chain, X509_NOW, &error);
  g_autoptr (GBytes) sig = NULL;
  g_autofree guint8 *bad = NULL;
  guint8 hash[32];
  gsize len;

  g_assert_no_error (error);
  for (guint i = 0; i < sizeof hash; i++)
    hash[i] = (guint8) i;
  sig = modike_x509_sign (gw, hash, sizeof hash, &error);
  g_assert_no_error (error);
  g_assert_true (modike_x509_cert_verify (cert, hash, sizeof hash, g_bytes_get_data (sig, NULL),
                                          g_bytes_get_size (sig), &error));
  g_assert_no_error (error);
  /* A flipped bit in the signature, or another hash. */
  len = g_bytes_get_size (sig);
  bad = g_memdup2 (g_bytes_get_data (sig, NULL), len);
  bad[len / 2] ^= 0x01;
  g_assert_false (modike_x509_cert_verify (cert, hash, sizeof hash, bad, len, &error));
  g_assert_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_SIGNATURE);
  g_assert_cmpstr (error->message, ==, "signature does not verify with the key of certificate 'CN=gw,O=modike'");
  g_clear_error (&error);
  hash[0] ^= 0x80;
  g_assert_false (modike_x509_cert_verify (cert, hash, sizeof hash, g_bytes_get_data (sig, NULL),
                                           g_bytes_get_size (sig), &error));
  g_assert_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_SIGNATURE);
}

/* SKEYID = prf(Ni_b | Nr_b, g^xy) computed by hand. */
static void
test_skeyid_sig (void)
{
  const guint8 ni[] = { 1, 2, 3, 4, 5, 6, 7, 8 }, nr[] = { 9, 10, 11, 12, 13, 14, 15, 16, 17 };
  const guint8 key[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17 };
  g_autoptr (ModikeSecret) gxy = modike_secret_new_from ("shared secret g^xy", 18);
  g_autoptr (ModikeSecret) skeyid = modike_skeyid_sig (MODIKE_HASH_SHA2_256, ni, sizeof ni, nr, sizeof nr, gxy);
  guint8 want[32];

  modike_prf (MODIKE_HASH_SHA2_256, key, sizeof key, gxy->data, gxy->len, want);
  g_assert_cmpmem (skeyid->data, skeyid->len, want, sizeof want);
}

/* MODP public values come from a fixed-base comb (crypto-dh.c); check
 * them against g^x computed the generic way, as a shared secret with the
 * peer value 2, for exponents of every shape the comb takes and some it
 * leaves to GMP (longer than its rows). */
static void
test_dh_modp_comb (void)
{
  static const ModikeDhGroup modp[] = { MODIKE_DH_MODP768, MODIKE_DH_MODP1024, MODIKE_DH_MODP1536,
                                        MODIKE_DH_MODP2048, MODIKE_DH_MODP3072, MODIKE_DH_MODP4096 };

  for (gsize g = 0; g < G_N_ELEMENTS (modp); g++)
    {
      gsize plen = modike_dh_public_len (modp[g]);
      guint8 two[512] = { 0 };

      two[plen - 1] = 2;
      for (guint round = 0; round < 40; round++)
        {
          /* 2..48 bytes: below, at and above 256/320-bit exponents. */
          gsize len = 2 + (round * 7) % 47;
          guint8 priv[48];
          g_autoptr (ModikeDh) dh = NULL;
          g_autoptr (ModikeDh) check = NULL;
          g_autoptr (ModikeSecret) gx = NULL;
          g_autoptr (GError) error = NULL;
          g_autoptr (GBytes) pub_b = NULL;
          gsize pub_len;
          const guint8 *pub;

          modike_random (priv, len);
          if (round % 5 == 0)
            memset (priv, 0xff, len);
          if (round % 5 == 1)
            priv[0] = 0x01, memset (priv + 1, 0, len - 1);
          priv[len - 1] |= 2; /* never 0 or 1 */
          dh = modike_dh_new_with_private (modp[g], priv, len, &error);
          g_assert_no_error (error);
          check = modike_dh_new_with_private (modp[g], priv, len, &error);
          g_assert_no_error (error);
          gx = modike_dh_compute (check, two, plen, &error);
          g_assert_no_error (error);
          pub_b = modike_dh_public (dh);
          pub = g_bytes_get_data (pub_b, &pub_len);
          g_assert_cmpmem (pub, pub_len, gx->data, gx->len);
        }
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/crypto/secret/memeq", test_memeq);
  g_test_add_func ("/crypto/secret/wipe", test_secret_wipe);
  g_test_add_func ("/crypto/secret/random", test_random);
  g_test_add_func ("/crypto/hash/kat", test_hash_kat);
  g_test_add_func ("/crypto/hash/names", test_hash_names);
  g_test_add_func ("/crypto/hmac/rfc2202", test_hmac_rfc2202);
  g_test_add_func ("/crypto/hmac/rfc4231", test_hmac_rfc4231);
  g_test_add_func ("/crypto/hmac/free-unfinished", test_prf_free_unfinished);
  g_test_add_func ("/crypto/cbc/aes-sp800-38a", test_cbc_aes_sp800_38a);
  g_test_add_func ("/crypto/cbc/aes-rfc3602", test_cbc_aes_rfc3602);
  g_test_add_func ("/crypto/cbc/3des", test_cbc_3des);
  g_test_add_func ("/crypto/cbc/errors", test_cbc_errors);
  g_test_add_func ("/crypto/cbc/names", test_encr_names);
  g_test_add_func ("/crypto/dh/names", test_dh_names);
  g_test_add_func ("/crypto/dh/ecp-rfc5903", test_dh_ecp_rfc5903);
  g_test_add_func ("/crypto/dh/ecp-invalid", test_dh_ecp_invalid);
  g_test_add_func ("/crypto/dh/curve25519-rfc7748", test_dh_curve25519);
  g_test_add_func ("/crypto/dh/curve25519-invalid", test_dh_curve25519_invalid);
  g_test_add_func ("/crypto/dh/ec-agree", test_dh_ec_agree);
  g_test_add_func ("/crypto/dh/modp-primes", test_dh_modp_primes);
  g_test_add_func ("/crypto/dh/modp-agree", test_dh_modp_agree);
  g_test_add_func ("/crypto/dh/modp-comb", test_dh_modp_comb);
  g_test_add_func ("/crypto/dh/modp-invalid", test_dh_modp_invalid);
  g_test_add_func ("/crypto/keys/by-hand", test_keys_by_hand);
  g_test_add_func ("/crypto/keys/known", test_keys_known);
  g_test_add_func ("/crypto/keys/iv", test_keys_iv);
  g_test_add_func ("/crypto/keys/keymat", test_keys_keymat);
  g_test_add_func ("/crypto/keys/strongswan", test_keys_strongswan);
  g_test_add_func ("/crypto/self-test", test_self_test);
  g_test_add_func ("/crypto/x509/local", test_x509_local);
  g_test_add_func ("/crypto/x509/load-errors", test_x509_load_errors);
  g_test_add_func ("/crypto/x509/sign-format", test_x509_sign_format);
  g_test_add_func ("/crypto/x509/chain", test_x509_chain);
  g_test_add_func ("/crypto/x509/verify", test_x509_verify);
  g_test_add_func ("/crypto/keys/skeyid-sig", test_skeyid_sig);

  return g_test_run ();
}
