/* Raw Diffie-Hellman for IKEv1: MODP groups with GMP (RFC 2409, 3526),
 * ECP groups with nettle (RFC 5903) and Curve25519 (RFC 8031). */
#include <modike/crypto.h>

#include <gmp.h>
#include <gnutls/gnutls.h>
#include <nettle/curve25519.h>
#include <nettle/ecc-curve.h>
#include <nettle/ecc.h>
#include <string.h>

/* The MODP primes, p = 2^n - 2^(n-64) - 1 + 2^64 * (floor(2^(n-130) pi) + k);
 * the generator is 2. test-crypto.c rebuilds each from pi and compares. */
static const char prime_modp768[] =
  "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74"
  "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437"
  "4FE1356D6D51C245E485B576625E7EC6F44C42E9A63A3620FFFFFFFFFFFFFFFF";

static const char prime_modp1024[] =
  "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74"
  "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437"
  "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
  "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381FFFFFFFFFFFFFFFF";

static const char prime_modp1536[] =
  "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74"
  "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437"
  "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
  "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05"
  "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB"
  "9ED529077096966D670C354E4ABC9804F1746C08CA237327FFFFFFFFFFFFFFFF";

static const char prime_modp2048[] =
  "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74"
  "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437"
  "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
  "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05"
  "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB"
  "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
  "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718"
  "3995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF";

static const char prime_modp3072[] =
  "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74"
  "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437"
  "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
  "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05"
  "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB"
  "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
  "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718"
  "3995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33"
  "A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7"
  "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864"
  "D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2"
  "08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF";

static const char prime_modp4096[] =
  "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74"
  "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437"
  "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
  "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05"
  "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB"
  "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
  "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718"
  "3995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33"
  "A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7"
  "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864"
  "D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2"
  "08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A92108011A723C12A787E6D7"
  "88719A10BDBA5B2699C327186AF4E23C1A946834B6150BDA2583E9CA2AD44CE8"
  "DBBBC2DB04DE8EF92E8EFC141FBECAA6287C59474E6BC05D99B2964FA090C3A2"
  "233BA186515BE7ED1F612970CEE2D7AFB81BDD762170481CD0069127D5B05AA9"
  "93B4EA988D8FDDC186FFB7DC90A6C08F4DF435C934063199FFFFFFFFFFFFFFFF";

typedef enum {
  DH_MODP,
  DH_ECP,
  DH_X25519,
} DhKind;

typedef struct {
  ModikeDhGroup group;
  const char *name;
  DhKind kind;
  gsize pub_len;
  const char *prime;   /* MODP: hex */
  guint exp_bits;      /* MODP: random private exponent length */
  const struct ecc_curve *(*curve) (void);  /* ECP */
} DhInfo;

/* Private exponents: at least twice the group's strength in bits (RFC 3526
 * section 8), and no less than 256; a full-size exponent only costs time. */
static const DhInfo groups[] = {
  { MODIKE_DH_MODP768, "modp768", DH_MODP, 96, prime_modp768, 256, NULL },
  { MODIKE_DH_MODP1024, "modp1024", DH_MODP, 128, prime_modp1024, 256, NULL },
  { MODIKE_DH_MODP1536, "modp1536", DH_MODP, 192, prime_modp1536, 256, NULL },
  { MODIKE_DH_MODP2048, "modp2048", DH_MODP, 256, prime_modp2048, 256, NULL },
  { MODIKE_DH_MODP3072, "modp3072", DH_MODP, 384, prime_modp3072, 256, NULL },
  { MODIKE_DH_MODP4096, "modp4096", DH_MODP, 512, prime_modp4096, 320, NULL },
  { MODIKE_DH_ECP256, "ecp256", DH_ECP, 64, NULL, 0, nettle_get_secp_256r1 },
  { MODIKE_DH_ECP384, "ecp384", DH_ECP, 96, NULL, 0, nettle_get_secp_384r1 },
  { MODIKE_DH_CURVE25519, "curve25519", DH_X25519, CURVE25519_SIZE, NULL, 0, NULL },
};

struct _ModikeDh {
  const DhInfo *info;
  GBytes *pub;
  /* MODP */
  mpz_t p;
  mpz_t x;
  /* ECP */
  const struct ecc_curve *curve;
  struct ecc_scalar k;
  /* Curve25519, clamped */
  guint8 x25519[CURVE25519_SIZE];
};

static const DhInfo *
dh_info (guint group)
{
  for (gsize i = 0; i < G_N_ELEMENTS (groups); i++)
    if ((guint) groups[i].group == group)
      return &groups[i];
  return NULL;
}

gboolean
modike_dh_supported (guint group)
{
  return dh_info (group) != NULL;
}

gsize
modike_dh_public_len (ModikeDhGroup group)
{
  const DhInfo *info = dh_info (group);

  return info != NULL ? info->pub_len : 0;
}

const char *
modike_dh_name (ModikeDhGroup group)
{
  const DhInfo *info = dh_info (group);

  return info != NULL ? info->name : NULL;
}

gboolean
modike_dh_from_name (const char *name, ModikeDhGroup *out)
{
  g_return_val_if_fail (name != NULL, FALSE);
  if (g_ascii_strcasecmp (name, "x25519") == 0)
    name = "curve25519";
  for (gsize i = 0; i < G_N_ELEMENTS (groups); i++)
    {
      if (g_ascii_strcasecmp (name, groups[i].name) == 0)
        {
          if (out != NULL)
            *out = groups[i].group;
          return TRUE;
        }
    }
  return FALSE;
}

/* Overwrites every limb GMP allocated for z, then frees it. */
static void
mpz_wipe_clear (mpz_t z)
{
  gnutls_memset (z->_mp_d, 0, (gsize) z->_mp_alloc * sizeof (mp_limb_t));
  mpz_clear (z);
}

/* z as big-endian bytes left-padded with zeros to exactly len bytes;
 * z must fit. */
static void
mpz_to_bytes (const mpz_t z, guint8 *out, gsize len)
{
  gsize n = mpz_sgn (z) == 0 ? 0 : (mpz_sizeinbase (z, 2) + 7) / 8;
  gsize written = 0;

  g_assert (n <= len);
  memset (out, 0, len);
  if (n > 0)
    mpz_export (out + len - n, &written, 1, 1, 1, 0, z);
  g_assert (written == n);
}

static void
mpz_from_bytes (mpz_t z, const guint8 *data, gsize len)
{
  if (len == 0)
    mpz_set_ui (z, 0);
  else
    mpz_import (z, len, 1, 1, 1, 0, data);
}

static void
random_for_nettle (void *ctx, size_t len, uint8_t *dst)
{
  modike_random (dst, len);
}

static ModikeDh *
dh_alloc (ModikeDhGroup group, GError **error)
{
  const DhInfo *info = dh_info (group);
  ModikeDh *dh;

  if (info == NULL)
    {
      g_set_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_UNSUPPORTED,
                   "Diffie-Hellman group %u is not supported", (guint) group);
      return NULL;
    }
  dh = g_new0 (ModikeDh, 1);
  dh->info = info;
  switch (info->kind)
    {
    case DH_MODP:
      mpz_init_set_str (dh->p, info->prime, 16);
      mpz_init (dh->x);
      break;
    case DH_ECP:
      dh->curve = info->curve ();
      ecc_scalar_init (&dh->k, dh->curve);
      break;
    case DH_X25519:
      break;
    }
  return dh;
}

/* ---- g^x for MODP key pairs: a fixed-base comb ----
 *
 * The base (2) and the prime are public, so a table of their powers can
 * be made once per group: with the exponent's L bits in COMB_ROWS rows of
 * a = L / COMB_ROWS columns, table[j] = prod over the rows i set in j of
 * g^(2^(i*a)), and g^x costs a squarings and a multiplications instead of
 * L squarings and L/5 multiplications: about a third of a key pair's
 * modexp. Constant time in x: the same operations whatever its bits, and
 * each table entry is read with mpn_sec_tabselect. Montgomery arithmetic
 * on GMP's public mpn calls. */
#define COMB_ROWS 6
#define COMB_ENTRIES (1u << COMB_ROWS)
#define COMB_MAX_LIMBS (4096 / GMP_NUMB_BITS) /* MODP4096, the largest group */

typedef struct {
  mp_size_t n;                /* limbs of p */
  mp_limb_t *p;
  mp_limb_t ninv;             /* -p^-1 mod 2^64 */
  guint bits, cols;           /* exponents up to bits = COMB_ROWS * cols */
  mp_limb_t *table;           /* COMB_ENTRIES entries of n limbs, Montgomery form */
  mp_limb_t *one;             /* R mod p */
} DhComb;

static DhComb *combs[G_N_ELEMENTS (groups)];

/* t (2n limbs, destroyed) * R^-1 mod p into r (n limbs). */
static void
comb_redc (const DhComb *c, mp_limb_t *r, mp_limb_t *t)
{
  mp_limb_t cy, tmp[COMB_MAX_LIMBS];

  for (mp_size_t i = 0; i < c->n; i++)
    {
      /* t[i] becomes 0: keep the carry there, added in below. */
      t[i] = mpn_addmul_1 (t + i, c->p, c->n, t[i] * c->ninv);
    }
  cy = mpn_add_n (r, t + c->n, t, c->n);
  /* r < 2p: one subtraction when r (with the carry) is at least p. */
  cy |= mpn_sub_n (tmp, r, c->p, c->n) ^ 1;
  mpn_cnd_sub_n (cy, r, r, c->p, c->n);
  gnutls_memset (tmp, 0, sizeof tmp);
}

static void
comb_mul (const DhComb *c, mp_limb_t *r, const mp_limb_t *a, const mp_limb_t *b, mp_limb_t *t)
{
  if (a == b)
    mpn_sqr (t, a, c->n);
  else
    mpn_mul_n (t, a, b, c->n);
  comb_redc (c, r, t);
}

static void
mpz_to_limbs (mp_limb_t *out, mp_size_t n, const mpz_t z)
{
  mp_size_t k = mpz_size (z);

  g_assert (k <= n);
  memset (out, 0, (gsize) n * sizeof (mp_limb_t));
  if (k > 0)
    memcpy (out, mpz_limbs_read (z), (gsize) k * sizeof (mp_limb_t));
}

static DhComb *
comb_new (const DhInfo *info)
{
  DhComb *c = g_new0 (DhComb, 1);
  mpz_t p, r, e, y, acc;
  mp_limb_t inv = 1;

  mpz_inits (p, r, e, y, acc, NULL);
  mpz_set_str (p, info->prime, 16);
  c->n = mpz_size (p);
  g_assert (c->n <= COMB_MAX_LIMBS && GMP_NUMB_BITS == 64 && GMP_NAIL_BITS == 0);
  c->p = g_new (mp_limb_t, c->n);
  mpz_to_limbs (c->p, c->n, p);
  /* Newton's iteration for p^-1 mod 2^64 (p is odd), then negated. */
  for (guint i = 0; i < 6; i++)
    inv *= 2 - c->p[0] * inv;
  c->ninv = -inv;
  c->cols = (info->exp_bits + COMB_ROWS - 1) / COMB_ROWS;
  c->bits = c->cols * COMB_ROWS;
  mpz_setbit (r, (mp_bitcnt_t) c->n * GMP_NUMB_BITS);
  mpz_mod (r, r, p);
  c->one = g_new (mp_limb_t, c->n);
  mpz_to_limbs (c->one, c->n, r);
  c->table = g_new (mp_limb_t, (gsize) COMB_ENTRIES * c->n);
  for (guint j = 0; j < COMB_ENTRIES; j++)
    {
      /* Public values only: plain GMP is fine here. */
      mpz_set_ui (acc, 1);
      for (guint i = 0; i < COMB_ROWS; i++)
        if (j & (1u << i))
          {
            mpz_set_ui (e, 0);
            mpz_setbit (e, (mp_bitcnt_t) i * c->cols);
            mpz_set_ui (y, 2);
            mpz_powm (y, y, e, p);
            mpz_mul (acc, acc, y);
            mpz_mod (acc, acc, p);
          }
      mpz_mul (acc, acc, r);
      mpz_mod (acc, acc, p);
      mpz_to_limbs (c->table + (gsize) j * c->n, c->n, acc);
    }
  mpz_clears (p, r, e, y, acc, NULL);
  return c;
}

static const DhComb *
comb_get (const DhInfo *info)
{
  gsize i = (gsize) (info - groups);

  if (g_once_init_enter (&combs[i]))
    g_once_init_leave (&combs[i], comb_new (info));
  return combs[i];
}

/* y = 2^x mod p; FALSE (nothing done) when x is longer than the comb's
 * exponents (a private value given from outside). */
static gboolean
comb_powm (const DhInfo *info, mpz_t y, const mpz_t x)
{
  const DhComb *c = comb_get (info);
  mp_size_t n = c->n;
  mp_limb_t xl[COMB_MAX_LIMBS], acc[COMB_MAX_LIMBS], sel[COMB_MAX_LIMBS], t[2 * COMB_MAX_LIMBS];
  mp_size_t xn = (mp_size_t) ((c->bits + GMP_NUMB_BITS - 1) / GMP_NUMB_BITS);

  if (mpz_sizeinbase (x, 2) > c->bits)
    return FALSE;
  mpz_to_limbs (xl, xn, x);
  memcpy (acc, c->one, (gsize) n * sizeof (mp_limb_t));
  for (guint k = c->cols; k-- > 0;)
    {
      mp_limb_t j = 0;

      comb_mul (c, acc, acc, acc, t);
      for (guint i = 0; i < COMB_ROWS; i++)
        {
          guint bit = i * c->cols + k;

          j |= ((xl[bit / GMP_NUMB_BITS] >> (bit % GMP_NUMB_BITS)) & 1) << i;
        }
      mpn_sec_tabselect (sel, c->table, n, COMB_ENTRIES, j);
      comb_mul (c, acc, acc, sel, t);
    }
  /* Out of Montgomery form: times 1. */
  memset (t, 0, sizeof t);
  memcpy (t, acc, (gsize) n * sizeof (mp_limb_t));
  comb_redc (c, acc, t);
  memcpy (mpz_limbs_write (y, n), acc, (gsize) n * sizeof (mp_limb_t));
  mpz_limbs_finish (y, n);
  gnutls_memset (xl, 0, sizeof xl);
  gnutls_memset (sel, 0, sizeof sel);
  gnutls_memset (t, 0, sizeof t);
  gnutls_memset (acc, 0, sizeof acc);
  return TRUE;
}

/* Computes and stores the public value once the private value is set. */
static void
dh_make_public (ModikeDh *dh)
{
  gsize len = dh->info->pub_len;
  guint8 *pub = g_malloc (len);

  switch (dh->info->kind)
    {
    case DH_MODP:
      {
        mpz_t g, y;

        mpz_init_set_ui (g, 2);
        mpz_init (y);
        if (!comb_powm (dh->info, y, dh->x))
          mpz_powm_sec (y, g, dh->x, dh->p);
        mpz_to_bytes (y, pub, len);
        mpz_clear (g);
        mpz_clear (y);
      }
      break;
    case DH_ECP:
      {
        struct ecc_point point;
        mpz_t x, y;

        ecc_point_init (&point, dh->curve);
        mpz_init (x);
        mpz_init (y);
        ecc_point_mul_g (&point, &dh->k);
        ecc_point_get (&point, x, y);
        /* RFC 5903 section 7: x | y, each the size of the field. */
        mpz_to_bytes (x, pub, len / 2);
        mpz_to_bytes (y, pub + len / 2, len / 2);
        mpz_clear (x);
        mpz_clear (y);
        ecc_point_clear (&point);
      }
      break;
    case DH_X25519:
      curve25519_mul_g (pub, dh->x25519);
      break;
    }
  dh->pub = g_bytes_new_take (pub, len);
}

static void
x25519_clamp (guint8 k[CURVE25519_SIZE])
{
  /* RFC 7748 section 5 (decodeScalar25519). */
  k[0] &= 248;
  k[31] &= 127;
  k[31] |= 64;
}

ModikeDh *
modike_dh_new (ModikeDhGroup group, GError **error)
{
  ModikeDh *dh;

  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  dh = dh_alloc (group, error);
  if (dh == NULL)
    return NULL;
  switch (dh->info->kind)
    {
    case DH_MODP:
      {
        gsize n = dh->info->exp_bits / 8;
        guint8 *buf = g_malloc (n);

        modike_random (buf, n);
        mpz_from_bytes (dh->x, buf, n);
        modike_memwipe (buf, n);
        g_free (buf);
        /* Full length, and so certainly 1 < x < p - 1. */
        mpz_setbit (dh->x, dh->info->exp_bits - 1);
      }
      break;
    case DH_ECP:
      ecc_scalar_random (&dh->k, NULL, random_for_nettle);
      break;
    case DH_X25519:
      modike_random (dh->x25519, sizeof dh->x25519);
      x25519_clamp (dh->x25519);
      break;
    }
  dh_make_public (dh);
  return dh;
}

ModikeDh *
modike_dh_new_with_private (ModikeDhGroup group, const guint8 *priv, gsize len, GError **error)
{
  g_autoptr (ModikeDh) dh = NULL;
  gboolean ok = TRUE;

  g_return_val_if_fail (priv != NULL || len == 0, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  dh = dh_alloc (group, error);
  if (dh == NULL)
    return NULL;
  switch (dh->info->kind)
    {
    case DH_MODP:
      if (len > dh->info->pub_len)
        {
          ok = FALSE;
          break;
        }
      mpz_from_bytes (dh->x, priv, len);
      {
        mpz_t pm1;

        mpz_init (pm1);
        mpz_sub_ui (pm1, dh->p, 1);
        ok = mpz_cmp_ui (dh->x, 1) > 0 && mpz_cmp (dh->x, pm1) < 0;
        mpz_clear (pm1);
      }
      break;
    case DH_ECP:
      if (len != dh->info->pub_len / 2)
        {
          ok = FALSE;
          break;
        }
      {
        mpz_t z;

        mpz_init (z);
        mpz_from_bytes (z, priv, len);
        /* Fails unless 0 < z < q. */
        ok = ecc_scalar_set (&dh->k, z) != 0;
        mpz_wipe_clear (z);
      }
      break;
    case DH_X25519:
      if (len != CURVE25519_SIZE)
        {
          ok = FALSE;
          break;
        }
      memcpy (dh->x25519, priv, CURVE25519_SIZE);
      x25519_clamp (dh->x25519);
      break;
    }
  if (!ok)
    {
      g_set_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_INVALID,
                   "Invalid %s private value (%" G_GSIZE_FORMAT " bytes)", dh->info->name, len);
      return NULL;
    }
  dh_make_public (dh);
  return g_steal_pointer (&dh);
}

ModikeDhGroup
modike_dh_group (const ModikeDh *dh)
{
  g_return_val_if_fail (dh != NULL, 0);
  return dh->info->group;
}

GBytes *
modike_dh_public (const ModikeDh *dh)
{
  g_return_val_if_fail (dh != NULL, NULL);
  return g_bytes_ref (dh->pub);
}

static ModikeSecret *
compute_modp (ModikeDh *dh, const guint8 *peer, gsize len, GError **error)
{
  ModikeSecret *secret = NULL;
  mpz_t y, pm1, z;

  mpz_init (y);
  mpz_init (pm1);
  mpz_from_bytes (y, peer, len);
  mpz_sub_ui (pm1, dh->p, 1);
  /* 1 < y < p - 1 excludes the values of order 1 and 2. */
  if (mpz_cmp_ui (y, 1) <= 0 || mpz_cmp (y, pm1) >= 0)
    {
      g_set_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_INVALID,
                   "Peer %s public value out of range", dh->info->name);
    }
  else
    {
      mpz_init (z);
      mpz_powm_sec (z, y, dh->x, dh->p);
      /* g^xy padded to the length of the prime, as every IKEv1 peer does. */
      secret = modike_secret_new (dh->info->pub_len);
      mpz_to_bytes (z, secret->data, secret->len);
      mpz_wipe_clear (z);
    }
  mpz_clear (y);
  mpz_clear (pm1);
  return secret;
}

static ModikeSecret *
compute_ecp (ModikeDh *dh, const guint8 *peer, gsize len, GError **error)
{
  gsize coord = len / 2;
  ModikeSecret *secret = NULL;
  struct ecc_point q, r;
  mpz_t x, y;

  ecc_point_init (&q, dh->curve);
  mpz_init (x);
  mpz_init (y);
  mpz_from_bytes (x, peer, coord);
  mpz_from_bytes (y, peer + coord, coord);
  /* ecc_point_set fails unless x, y < p and y^2 = x^3 - 3x + b; the point
   * at infinity has no x|y encoding, and the cofactor is 1. */
  if (!ecc_point_set (&q, x, y))
    {
      g_set_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_INVALID,
                   "Peer %s public value is not on the curve", dh->info->name);
    }
  else
    {
      ecc_point_init (&r, dh->curve);
      ecc_point_mul (&r, &dh->k, &q);
      ecc_point_get (&r, x, y);
      /* RFC 5903 section 7: the shared secret is the x coordinate. */
      secret = modike_secret_new (coord);
      mpz_to_bytes (x, secret->data, coord);
      gnutls_memset (r.p, 0, 2 * (gsize) ecc_size (dh->curve) * sizeof (mp_limb_t));
      ecc_point_clear (&r);
    }
  mpz_wipe_clear (x);
  mpz_wipe_clear (y);
  ecc_point_clear (&q);
  return secret;
}

static ModikeSecret *
compute_x25519 (ModikeDh *dh, const guint8 *peer, GError **error)
{
  g_autoptr (ModikeSecret) secret = modike_secret_new (CURVE25519_SIZE);
  guint8 u[CURVE25519_SIZE];
  guint8 acc = 0;

  memcpy (u, peer, CURVE25519_SIZE);
  /* RFC 7748 section 5: the top bit of the u-coordinate is ignored. */
  u[31] &= 0x7f;
  curve25519_mul (secret->data, dh->x25519, u);
  for (gsize i = 0; i < CURVE25519_SIZE; i++)
    acc |= secret->data[i];
  /* RFC 8031 section 2: an all-zero result means a small-order point. */
  if (acc == 0)
    {
      g_set_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_INVALID,
                   "Peer curve25519 public value has small order");
      return NULL;
    }
  return g_steal_pointer (&secret);
}

ModikeSecret *
modike_dh_compute (ModikeDh *dh, const guint8 *peer, gsize len, GError **error)
{
  g_return_val_if_fail (dh != NULL, NULL);
  g_return_val_if_fail (peer != NULL || len == 0, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  /* Every encoding has exactly one length; anything else is malformed. */
  if (len != dh->info->pub_len)
    {
      g_set_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_INVALID,
                   "Peer %s public value has %" G_GSIZE_FORMAT " bytes, expected %" G_GSIZE_FORMAT,
                   dh->info->name, len, dh->info->pub_len);
      return NULL;
    }
  switch (dh->info->kind)
    {
    case DH_MODP:
      return compute_modp (dh, peer, len, error);
    case DH_ECP:
      return compute_ecp (dh, peer, len, error);
    case DH_X25519:
      return compute_x25519 (dh, peer, error);
    }
  g_assert_not_reached ();
}

void
modike_dh_free (ModikeDh *dh)
{
  if (dh == NULL)
    return;
  switch (dh->info->kind)
    {
    case DH_MODP:
      mpz_clear (dh->p);
      mpz_wipe_clear (dh->x);
      break;
    case DH_ECP:
      gnutls_memset (dh->k.p, 0, (gsize) ecc_size (dh->curve) * sizeof (mp_limb_t));
      ecc_scalar_clear (&dh->k);
      break;
    case DH_X25519:
      break;
    }
  modike_memwipe (dh->x25519, sizeof dh->x25519);
  g_clear_pointer (&dh->pub, g_bytes_unref);
  g_free (dh);
}
