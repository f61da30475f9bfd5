/* IKEv1 key derivation: RFC 2409 sections 5 and 5.5, Appendix B. */
#include <modike/crypto.h>

#include <string.h>

ModikeSecret *
modike_skeyid_psk (ModikeHashAlg prf, const ModikeSecret *psk,
                   const guint8 *ni, gsize ni_len, const guint8 *nr, gsize nr_len)
{
  gsize hlen = modike_hash_len (prf);
  ModikeSecret *skeyid;
  ModikePrf *p;

  g_return_val_if_fail (hlen > 0, NULL);
  g_return_val_if_fail (psk != NULL, NULL);
  g_return_val_if_fail (ni != NULL || ni_len == 0, NULL);
  g_return_val_if_fail (nr != NULL || nr_len == 0, NULL);

  /* SKEYID = prf(pre-shared-key, Ni_b | Nr_b) */
  skeyid = modike_secret_new (hlen);
  p = modike_prf_new (prf, psk->data, psk->len);
  modike_prf_update (p, ni, ni_len);
  modike_prf_update (p, nr, nr_len);
  modike_prf_final (p, skeyid->data);
  return skeyid;
}

/* prf(SKEYID, [prev |] g^xy | CKY-I | CKY-R | n) */
static ModikeSecret *
skeyid_step (ModikeHashAlg prf, const ModikeSecret *skeyid, const ModikeSecret *prev,
             const ModikeSecret *gxy, const guint8 icookie[8], const guint8 rcookie[8], guint8 n)
{
  ModikeSecret *out = modike_secret_new (modike_hash_len (prf));
  ModikePrf *p = modike_prf_new (prf, skeyid->data, skeyid->len);

  if (prev != NULL)
    modike_prf_update (p, prev->data, prev->len);
  modike_prf_update (p, gxy->data, gxy->len);
  modike_prf_update (p, icookie, 8);
  modike_prf_update (p, rcookie, 8);
  modike_prf_update (p, &n, 1);
  modike_prf_final (p, out->data);
  return out;
}

/* The cipher key from SKEYID_e: its leading bytes when it is long enough,
 * otherwise Ka = K1 | K2 | ..., K1 = prf(SKEYID_e, 0), Kn = prf(SKEYID_e, Kn-1)
 * (RFC 2409 Appendix B). */
static ModikeSecret *
enc_key_from (ModikeHashAlg prf, const ModikeSecret *skeyid_e, gsize len)
{
  ModikeSecret *key = modike_secret_new (len);
  gsize hlen = modike_hash_len (prf);
  guint8 block[MODIKE_HASH_MAX];
  gsize done = 0;

  if (len <= skeyid_e->len)
    {
      memcpy (key->data, skeyid_e->data, len);
      return key;
    }
  for (gboolean first = TRUE; done < len; first = FALSE)
    {
      static const guint8 zero = 0;
      gsize n = MIN (hlen, len - done);

      if (first)
        modike_prf (prf, skeyid_e->data, skeyid_e->len, &zero, 1, block);
      else
        modike_prf (prf, skeyid_e->data, skeyid_e->len, block, hlen, block);
      memcpy (key->data + done, block, n);
      done += n;
    }
  modike_memwipe (block, sizeof block);
  return key;
}

void
modike_p1_keys_derive (ModikeP1Keys *keys, ModikeHashAlg prf, ModikeSecret *skeyid,
                       const ModikeSecret *gxy, const guint8 icookie[8], const guint8 rcookie[8],
                       gsize enc_key_len)
{
  g_return_if_fail (keys != NULL);
  g_return_if_fail (skeyid != NULL);
  g_return_if_fail (modike_hash_len (prf) > 0);
  g_return_if_fail (gxy != NULL && icookie != NULL && rcookie != NULL);

  /* Replace whatever the struct held, except the SKEYID we are given. */
  if (keys->skeyid == skeyid)
    keys->skeyid = NULL;
  modike_p1_keys_clear (keys);
  keys->skeyid = skeyid;

  /* SKEYID_d = prf(SKEYID, g^xy | CKY-I | CKY-R | 0)
   * SKEYID_a = prf(SKEYID, SKEYID_d | g^xy | CKY-I | CKY-R | 1)
   * SKEYID_e = prf(SKEYID, SKEYID_a | g^xy | CKY-I | CKY-R | 2) */
  keys->skeyid_d = skeyid_step (prf, skeyid, NULL, gxy, icookie, rcookie, 0);
  keys->skeyid_a = skeyid_step (prf, skeyid, keys->skeyid_d, gxy, icookie, rcookie, 1);
  keys->skeyid_e = skeyid_step (prf, skeyid, keys->skeyid_a, gxy, icookie, rcookie, 2);
  keys->enc_key = enc_key_from (prf, keys->skeyid_e, enc_key_len);
}

void
modike_p1_keys_clear (ModikeP1Keys *keys)
{
  if (keys == NULL)
    return;
  g_clear_pointer (&keys->skeyid, modike_secret_free);
  g_clear_pointer (&keys->skeyid_d, modike_secret_free);
  g_clear_pointer (&keys->skeyid_a, modike_secret_free);
  g_clear_pointer (&keys->skeyid_e, modike_secret_free);
  g_clear_pointer (&keys->enc_key, modike_secret_free);
}

void
modike_p1_iv (ModikeHashAlg hash, const guint8 *gxi, gsize gxi_len, const guint8 *gxr, gsize gxr_len,
              guint8 *iv, gsize block_len)
{
  gsize hlen = modike_hash_len (hash);
  g_autoptr (GByteArray) buf = NULL;
  guint8 digest[MODIKE_HASH_MAX];

  g_return_if_fail (hlen > 0);
  g_return_if_fail (block_len <= hlen);
  g_return_if_fail (iv != NULL);
  g_return_if_fail (gxi != NULL && gxr != NULL);

  /* IV = hash(g^xi | g^xr), truncated to the cipher block. */
  buf = g_byte_array_sized_new ((guint) (gxi_len + gxr_len));
  g_byte_array_append (buf, gxi, (guint) gxi_len);
  g_byte_array_append (buf, gxr, (guint) gxr_len);
  modike_hash (hash, buf->data, buf->len, digest);
  memcpy (iv, digest, block_len);
}

void
modike_p2_iv (ModikeHashAlg hash, const guint8 *last_block, gsize block_len, guint32 msgid, guint8 *iv)
{
  gsize hlen = modike_hash_len (hash);
  guint8 buf[MODIKE_HASH_MAX + 4];
  guint8 digest[MODIKE_HASH_MAX];

  g_return_if_fail (hlen > 0);
  g_return_if_fail (block_len <= hlen);
  g_return_if_fail (last_block != NULL && iv != NULL);

  /* IV = hash(last phase 1 CBC block | M-ID), M-ID in network order. */
  memcpy (buf, last_block, block_len);
  buf[block_len] = (guint8) (msgid >> 24);
  buf[block_len + 1] = (guint8) (msgid >> 16);
  buf[block_len + 2] = (guint8) (msgid >> 8);
  buf[block_len + 3] = (guint8) msgid;
  modike_hash (hash, buf, block_len + 4, digest);
  memcpy (iv, digest, block_len);
}

ModikeSecret *
modike_qm_keymat (ModikeHashAlg prf, const ModikeSecret *skeyid_d, const ModikeSecret *gxy,
                  guint8 protocol, const guint8 spi[4], const guint8 *ni, gsize ni_len,
                  const guint8 *nr, gsize nr_len, gsize len)
{
  gsize hlen = modike_hash_len (prf);
  ModikeSecret *keymat;
  guint8 block[MODIKE_HASH_MAX];
  gsize done = 0;

  g_return_val_if_fail (hlen > 0, NULL);
  g_return_val_if_fail (skeyid_d != NULL && spi != NULL, NULL);
  g_return_val_if_fail (ni != NULL || ni_len == 0, NULL);
  g_return_val_if_fail (nr != NULL || nr_len == 0, NULL);

  /* K1 = prf(SKEYID_d, [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b)
   * Kn = prf(SKEYID_d, Kn-1 | [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b) */
  keymat = modike_secret_new (len);
  for (gboolean first = TRUE; done < len; first = FALSE)
    {
      ModikePrf *p = modike_prf_new (prf, skeyid_d->data, skeyid_d->len);
      gsize n = MIN (hlen, len - done);

      if (!first)
        modike_prf_update (p, block, hlen);
      if (gxy != NULL)
        modike_prf_update (p, gxy->data, gxy->len);
      modike_prf_update (p, &protocol, 1);
      modike_prf_update (p, spi, 4);
      modike_prf_update (p, ni, ni_len);
      modike_prf_update (p, nr, nr_len);
      modike_prf_final (p, block);
      memcpy (keymat->data + done, block, n);
      done += n;
    }
  modike_memwipe (block, sizeof block);
  return keymat;
}

ModikeSecret *
modike_skeyid_sig (ModikeHashAlg prf, const guint8 *ni, gsize ni_len, const guint8 *nr, gsize nr_len,
                   const ModikeSecret *gxy)
{
  g_autofree guint8 *key = NULL;
  ModikeSecret *skeyid;
  gsize hlen = modike_hash_len (prf);

  g_return_val_if_fail (hlen > 0 && gxy != NULL, NULL);
  /* SKEYID = prf(Ni_b | Nr_b, g^xy): the nonces are the key. */
  key = g_malloc (ni_len + nr_len + 1);
  if (ni_len > 0)
    memcpy (key, ni, ni_len);
  if (nr_len > 0)
    memcpy (key + ni_len, nr, nr_len);
  skeyid = modike_secret_new (hlen);
  modike_prf (prf, key, ni_len + nr_len, gxy->data, gxy->len, skeyid->data);
  return skeyid;
}
