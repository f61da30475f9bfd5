/* Crypto for IKEv1 on GnuTLS (ciphers, HMAC, hashes, randomness) and
 * nettle/GMP (raw Diffie-Hellman). Algorithm values are the IKE phase 1
 * attribute values (RFC 2409 Appendix A). */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define MODIKE_CRYPTO_ERROR (modike_crypto_error_quark ())
GQuark modike_crypto_error_quark (void);
typedef enum {
  MODIKE_CRYPTO_ERROR_UNSUPPORTED,  /* algorithm or group we don't have */
  MODIKE_CRYPTO_ERROR_INVALID,      /* bad key length, bad peer public value */
  MODIKE_CRYPTO_ERROR_FAILED,       /* the library failed */
  MODIKE_CRYPTO_ERROR_CERT,         /* a certificate is not acceptable (untrusted, expired, revoked, wrong ID) */
  MODIKE_CRYPTO_ERROR_SIGNATURE,    /* a signature does not verify */
} ModikeCryptoError;

/* ---- Secrets: wiped with gnutls_memset when freed. ---- */
typedef struct {
  gsize len;
  guint8 *data;
} ModikeSecret;
ModikeSecret *modike_secret_new (gsize len);                 /* zero-filled */
ModikeSecret *modike_secret_new_from (const void *data, gsize len);
ModikeSecret *modike_secret_dup (const ModikeSecret *s);
void modike_secret_free (ModikeSecret *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ModikeSecret, modike_secret_free)
/* Constant-time equality (lengths may differ: then FALSE). */
gboolean modike_memeq (const void *a, const void *b, gsize len);
void modike_memwipe (void *p, gsize len);

void modike_random (void *buf, gsize len);        /* key-quality randomness */
void modike_random_nonce (void *buf, gsize len);  /* nonces, cookies */

/* ---- Hashes and HMAC/PRF. ---- */
typedef enum {
  MODIKE_HASH_MD5 = 1,
  MODIKE_HASH_SHA1 = 2,
  MODIKE_HASH_SHA2_256 = 4,
  MODIKE_HASH_SHA2_384 = 5,
  MODIKE_HASH_SHA2_512 = 6,
} ModikeHashAlg;
gboolean modike_hash_supported (guint alg);
gsize modike_hash_len (ModikeHashAlg alg);        /* 0 if unsupported */
const char *modike_hash_name (ModikeHashAlg alg);  /* "sha256" */
gboolean modike_hash_from_name (const char *name, ModikeHashAlg *out);
#define MODIKE_HASH_MAX 64

/* out must hold modike_hash_len bytes. */
void modike_hash (ModikeHashAlg alg, const void *data, gsize len, guint8 *out);

/* Incremental HMAC: prf(key, a | b | c ...). */
typedef struct _ModikePrf ModikePrf;
ModikePrf *modike_prf_new (ModikeHashAlg alg, const void *key, gsize keylen);
void modike_prf_update (ModikePrf *prf, const void *data, gsize len);
/* Writes modike_hash_len bytes and frees the prf. */
void modike_prf_final (ModikePrf *prf, guint8 *out);
void modike_prf_free (ModikePrf *prf);
/* One-shot helper. */
void modike_prf (ModikeHashAlg alg, const void *key, gsize keylen, const void *data, gsize len, guint8 *out);

/* ---- Block ciphers in CBC mode. ---- */
typedef enum {
  MODIKE_ENCR_DES = 1,
  MODIKE_ENCR_3DES = 5,
  MODIKE_ENCR_AES_CBC = 7,
} ModikeEncrAlg;
gboolean modike_encr_supported (guint alg, guint keybits);
gsize modike_encr_block_len (ModikeEncrAlg alg);
/* Key bytes for a key length attribute (0 = the algorithm's default). */
gsize modike_encr_key_len (ModikeEncrAlg alg, guint keybits);
const char *modike_encr_name (ModikeEncrAlg alg, guint keybits); /* "aes128" */
gboolean modike_encr_from_name (const char *name, ModikeEncrAlg *alg, guint *keybits);

/* CBC in place; len a multiple of the block size; iv is updated to the last
 * ciphertext block (the IKEv1 IV chain). */
gboolean modike_cbc_encrypt (ModikeEncrAlg alg, const ModikeSecret *key, guint8 *iv,
                             guint8 *data, gsize len, GError **error);
gboolean modike_cbc_decrypt (ModikeEncrAlg alg, const ModikeSecret *key, guint8 *iv,
                             guint8 *data, gsize len, GError **error);

/* ---- Diffie-Hellman (RFC 2409, 3526, 5903, 8031 groups). ---- */
typedef enum {
  MODIKE_DH_MODP768 = 1,
  MODIKE_DH_MODP1024 = 2,
  MODIKE_DH_MODP1536 = 5,
  MODIKE_DH_MODP2048 = 14,
  MODIKE_DH_MODP3072 = 15,
  MODIKE_DH_MODP4096 = 16,
  MODIKE_DH_ECP256 = 19,
  MODIKE_DH_ECP384 = 20,
  MODIKE_DH_CURVE25519 = 31,
} ModikeDhGroup;
gboolean modike_dh_supported (guint group);
gsize modike_dh_public_len (ModikeDhGroup group);  /* KE payload data length */
const char *modike_dh_name (ModikeDhGroup group);   /* "modp2048", "ecp256", "curve25519" */
gboolean modike_dh_from_name (const char *name, ModikeDhGroup *out);

typedef struct _ModikeDh ModikeDh;
ModikeDh *modike_dh_new (ModikeDhGroup group, GError **error);
/* For known-answer tests: a fixed private value. */
ModikeDh *modike_dh_new_with_private (ModikeDhGroup group, const guint8 *priv, gsize len, GError **error);
ModikeDhGroup modike_dh_group (const ModikeDh *dh);
/* Public value as sent in KE: big-endian padded to the modulus (MODP),
 * x|y (ECP, RFC 5903), or the 32-byte u-coordinate (Curve25519). */
GBytes *modike_dh_public (const ModikeDh *dh);
/* Validates the peer's value (range, on-curve, not all-zero result). */
ModikeSecret *modike_dh_compute (ModikeDh *dh, const guint8 *peer, gsize len, GError **error);
void modike_dh_free (ModikeDh *dh);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ModikeDh, modike_dh_free)

/* ---- IKEv1 key derivation (RFC 2409 5, Appendix B). ---- */
typedef struct {
  ModikeSecret *skeyid, *skeyid_d, *skeyid_a, *skeyid_e;
  ModikeSecret *enc_key;  /* from SKEYID_e, expanded per Appendix B */
} ModikeP1Keys;

/* SKEYID for pre-shared keys: prf(psk, Ni_b | Nr_b). */
ModikeSecret *modike_skeyid_psk (ModikeHashAlg prf, const ModikeSecret *psk,
                                 const guint8 *ni, gsize ni_len, const guint8 *nr, gsize nr_len);
/* SKEYID_d/a/e from SKEYID, g^xy and cookies; enc_key of enc_key_len bytes. */
void modike_p1_keys_derive (ModikeP1Keys *keys, ModikeHashAlg prf, ModikeSecret *skeyid /* taken */,
                            const ModikeSecret *gxy, const guint8 icookie[8], const guint8 rcookie[8],
                            gsize enc_key_len);
void modike_p1_keys_clear (ModikeP1Keys *keys);
/* Phase 1 IV: hash(g^xi | g^xr) truncated to the block size. */
void modike_p1_iv (ModikeHashAlg hash, const guint8 *gxi, gsize gxi_len, const guint8 *gxr, gsize gxr_len,
                   guint8 *iv, gsize block_len);
/* Phase 2 / informational IV: hash(last phase 1 CBC block | M-ID). */
void modike_p2_iv (ModikeHashAlg hash, const guint8 *last_block, gsize block_len, guint32 msgid, guint8 *iv);
/* Quick Mode KEYMAT (RFC 2409 5.5), expanded to `len` bytes:
 * K1 = prf(SKEYID_d, [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b), Kn = prf(SKEYID_d, Kn-1 | same). */
ModikeSecret *modike_qm_keymat (ModikeHashAlg prf, const ModikeSecret *skeyid_d, const ModikeSecret *gxy /* nullable */,
                                guint8 protocol, const guint8 spi[4], const guint8 *ni, gsize ni_len,
                                const guint8 *nr, gsize nr_len, gsize len);

/* ---- X.509 certificates and RSA signatures (crypto-x509.c). ----
 * IKEv1 signs the raw HASH_I/HASH_R with RSA PKCS#1 v1.5 type 1 padding and
 * no DigestInfo (as strongSwan and libreswan do). */
typedef struct _ModikeX509Creds ModikeX509Creds; /* our chain + key, trust anchors, CRLs */
typedef struct _ModikeX509Cert ModikeX509Cert;   /* a peer's certificate, validated */

ModikeX509Creds *modike_x509_creds_new (void);
ModikeX509Creds *modike_x509_creds_ref (ModikeX509Creds *c);
void modike_x509_creds_unref (ModikeX509Creds *c);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ModikeX509Creds, modike_x509_creds_unref)
/* Our certificate (PEM, leaf first, the chain may follow) and RSA private
 * key (PEM); a key file readable by group or others is refused. */
gboolean modike_x509_creds_load_local (ModikeX509Creds *c, const char *cert_file, const char *key_file, GError **error);
/* Trust anchors from a PEM file or a directory of them. */
gboolean modike_x509_creds_add_ca (ModikeX509Creds *c, const char *path, GError **error);
/* A CRL file (PEM or DER); applied when peer chains are checked. */
gboolean modike_x509_creds_add_crl (ModikeX509Creds *c, const char *path, GError **error);
gboolean modike_x509_creds_has_local (const ModikeX509Creds *c);
/* Our chain as DER, leaf first (CERT payloads). */
GPtrArray *modike_x509_creds_local_chain (const ModikeX509Creds *c); /* GBytes* */
/* The DER subject DN of our leaf (the DER_ASN1_DN identity). */
GBytes *modike_x509_creds_local_subject (const ModikeX509Creds *c);
/* The DER subject DNs of the trust anchors (CR payloads). */
GPtrArray *modike_x509_creds_ca_subjects (const ModikeX509Creds *c); /* GBytes* */
/* PKCS#1 v1.5 signature of `hash` (no DigestInfo) with our key. */
GBytes *modike_x509_sign (const ModikeX509Creds *c, const guint8 *hash, gsize len, GError **error);

/* Validates a peer chain (DER, leaf first; unordered intermediates fine)
 * against the trust anchors and CRLs at time `now` (seconds, Unix). Fails
 * with MODIKE_CRYPTO_ERROR_CERT: "certificate 'CN=gw' is not trusted: ...". */
ModikeX509Cert *modike_x509_verify_chain (const ModikeX509Creds *c, GPtrArray *der /* GBytes* */, gint64 now,
                                          GError **error);
void modike_x509_cert_free (ModikeX509Cert *cert);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ModikeX509Cert, modike_x509_cert_free)
const char *modike_x509_cert_subject (const ModikeX509Cert *cert); /* "CN=gw,O=modike" */
/* TRUE if an IKE identity (ModikeIdType + data) names the certificate: its
 * subject DN (DER_ASN1_DN) or a subjectAltName (FQDN, USER_FQDN, IPV4/6). */
gboolean modike_x509_cert_has_id (const ModikeX509Cert *cert, guint8 id_type, const guint8 *data, gsize len);
/* Checks an RSA PKCS#1 v1.5 signature (no DigestInfo) over `hash`;
 * MODIKE_CRYPTO_ERROR_SIGNATURE when it does not verify. */
gboolean modike_x509_cert_verify (const ModikeX509Cert *cert, const guint8 *hash, gsize len, const guint8 *sig,
                                  gsize sig_len, GError **error);
/* The same checks for our own certificate (an identity we send must be in it). */
gboolean modike_x509_creds_local_has_id (const ModikeX509Creds *c, guint8 id_type, const guint8 *data, gsize len);

/* A DER distinguished name as text ("CN=gw,O=modike", RFC 4514 order as
 * GnuTLS prints it), NULL if it does not parse. */
char *modike_x509_dn_to_string (const guint8 *der, gsize len);

/* SKEYID for signatures: prf(Ni_b | Nr_b, g^xy) (RFC 2409 5). */
ModikeSecret *modike_skeyid_sig (ModikeHashAlg prf, const guint8 *ni, gsize ni_len, const guint8 *nr, gsize nr_len,
                                 const ModikeSecret *gxy);

/* Runs each algorithm against a built-in known answer once (start-up self test). */
gboolean modike_crypto_self_test (GError **error);

G_END_DECLS
