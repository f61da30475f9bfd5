/* X.509 certificates and RSA signatures for IKEv1 (RFC 2409 5.1) on
 * GnuTLS: our chain and key, trust anchors and CRLs, validation of a
 * peer's chain, identities against subject and subjectAltName, and the
 * PKCS#1 v1.5 signature of the raw HASH (no DigestInfo: the scheme
 * strongSwan calls EMSA_PKCS1_NULL and GnuTLS the TLS 1.0 RSA flag). */
#include <modike/crypto.h>
#include <modike/protocol.h>

#include <errno.h>
#include <stdarg.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <string.h>
#include <sys/stat.h>

struct _ModikeX509Creds {
  gint ref;
  gnutls_x509_crt_t *chain; /* ours, leaf first */
  guint n_chain;
  gnutls_privkey_t key;
  gnutls_x509_trust_list_t trust;
  GPtrArray *ca_subjects;   /* GBytes*: DER subject DNs */
  guint n_cas;
};

struct _ModikeX509Cert {
  gnutls_x509_crt_t crt;
  gnutls_pubkey_t pub;
  char *subject;
};

static gboolean gnutls_fail (GError **error, int rc, const char *fmt, ...) G_GNUC_PRINTF (3, 4);

static gboolean
gnutls_fail (GError **error, int rc, const char *fmt, ...)
{
  g_autofree char *msg = NULL;
  va_list ap;

  va_start (ap, fmt);
  msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);

  g_set_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_FAILED, "%s: %s", msg, gnutls_strerror (rc));
  return FALSE;
}

ModikeX509Creds *
modike_x509_creds_new (void)
{
  ModikeX509Creds *c = g_new0 (ModikeX509Creds, 1);

  c->ref = 1;
  c->ca_subjects = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  if (gnutls_x509_trust_list_init (&c->trust, 0) < 0)
    g_error ("gnutls_x509_trust_list_init failed");
  return c;
}

ModikeX509Creds *
modike_x509_creds_ref (ModikeX509Creds *c)
{
  g_return_val_if_fail (c != NULL, NULL);
  g_atomic_int_inc (&c->ref);
  return c;
}

static void
free_chain (gnutls_x509_crt_t *chain, guint n)
{
  for (guint i = 0; i < n; i++)
    gnutls_x509_crt_deinit (chain[i]);
  gnutls_free (chain);
}

void
modike_x509_creds_unref (ModikeX509Creds *c)
{
  if (c == NULL || !g_atomic_int_dec_and_test (&c->ref))
    return;
  free_chain (c->chain, c->n_chain);
  if (c->key != NULL)
    gnutls_privkey_deinit (c->key);
  gnutls_x509_trust_list_deinit (c->trust, 1);
  g_ptr_array_unref (c->ca_subjects);
  g_free (c);
}

static GBytes *
datum_bytes (gnutls_datum_t *d)
{
  GBytes *b = g_bytes_new (d->data, d->size);

  gnutls_free (d->data);
  d->data = NULL;
  return b;
}

static char *
crt_subject (gnutls_x509_crt_t crt)
{
  gnutls_datum_t d = { NULL, 0 };
  char *s;

  if (gnutls_x509_crt_get_dn3 (crt, &d, 0) < 0)
    return g_strdup ("?");
  s = g_strndup ((const char *) d.data, d.size);
  gnutls_free (d.data);
  return s;
}

static GBytes *
crt_raw_subject (gnutls_x509_crt_t crt)
{
  gnutls_datum_t d = { NULL, 0 };

  if (gnutls_x509_crt_get_raw_dn (crt, &d) < 0)
    return NULL;
  return datum_bytes (&d);
}

/* PEM certificates of one file, in file order. */
static gboolean
load_crts (const char *path, gnutls_x509_crt_t **out, guint *n, GError **error)
{
  gnutls_datum_t data = { NULL, 0 };
  int rc = gnutls_load_file (path, &data);

  if (rc < 0)
    return gnutls_fail (error, rc, "cannot read certificate file '%s'", path);
  rc = gnutls_x509_crt_list_import2 (out, n, &data, GNUTLS_X509_FMT_PEM, 0);
  gnutls_free (data.data);
  if (rc < 0 || *n == 0)
    {
      g_set_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_INVALID, "'%s' holds no PEM certificate%s%s", path,
                   rc < 0 ? ": " : "", rc < 0 ? gnutls_strerror (rc) : "");
      return FALSE;
    }
  return TRUE;
}

static gboolean
key_file_private (const char *path, GError **error)
{
  struct stat st;

  if (stat (path, &st) != 0)
    {
      int e = errno;

      g_set_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_INVALID, "cannot read private key file '%s': %s",
                   path, g_strerror (e));
      return FALSE;
    }
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
    {
      g_set_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_INVALID,
                   "private key file '%s' is accessible by group or others (mode %04o): chmod 600 it", path,
                   (unsigned) (st.st_mode & 07777));
      return FALSE;
    }
  return TRUE;
}

/* TRUE if the private key belongs to the certificate. */
static gboolean
key_matches (gnutls_privkey_t key, gnutls_x509_crt_t crt)
{
  gnutls_pubkey_t pub;
  guint8 a[64], b[64];
  size_t alen = sizeof a, blen = sizeof b;
  gboolean ok;

  if (gnutls_pubkey_init (&pub) < 0)
    return FALSE;
  ok = gnutls_pubkey_import_privkey (pub, key, 0, 0) >= 0 &&
       gnutls_pubkey_get_key_id (pub, GNUTLS_KEYID_USE_SHA256, a, &alen) >= 0 &&
       gnutls_x509_crt_get_key_id (crt, GNUTLS_KEYID_USE_SHA256, b, &blen) >= 0 && alen == blen &&
       memcmp (a, b, alen) == 0;
  gnutls_pubkey_deinit (pub);
  return ok;
}

gboolean
modike_x509_creds_load_local (ModikeX509Creds *c, const char *cert_file, const char *key_file, GError **error)
{
  gnutls_x509_crt_t *chain = NULL;
  guint n = 0;
  gnutls_datum_t data = { NULL, 0 };
  gnutls_privkey_t key = NULL;
  int rc;

  g_return_val_if_fail (c != NULL && cert_file != NULL && key_file != NULL, FALSE);
  if (!load_crts (cert_file, &chain, &n, error))
    return FALSE;
  if (!key_file_private (key_file, error))
    goto fail;
  rc = gnutls_load_file (key_file, &data);
  if (rc < 0)
    {
      gnutls_fail (error, rc, "cannot read private key file '%s'", key_file);
      goto fail;
    }
  rc = gnutls_privkey_init (&key);
  if (rc >= 0)
    rc = gnutls_privkey_import_x509_raw (key, &data, GNUTLS_X509_FMT_PEM, NULL, 0);
  gnutls_memset (data.data, 0, data.size);
  gnutls_free (data.data);
  if (rc < 0)
    {
      gnutls_fail (error, rc, "cannot load private key '%s'", key_file);
      goto fail;
    }
  if (gnutls_privkey_get_pk_algorithm (key, NULL) != GNUTLS_PK_RSA)
    {
      g_set_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_UNSUPPORTED, "private key '%s' is not an RSA key",
                   key_file);
      goto fail;
    }
  if (!key_matches (key, chain[0]))
    {
      g_autofree char *subject = crt_subject (chain[0]);

      g_set_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_INVALID,
                   "private key '%s' does not belong to certificate '%s' (%s)", key_file, subject, cert_file);
      goto fail;
    }
  free_chain (c->chain, c->n_chain);
  if (c->key != NULL)
    gnutls_privkey_deinit (c->key);
  c->chain = chain;
  c->n_chain = n;
  c->key = key;
  return TRUE;

fail:
  if (key != NULL)
    gnutls_privkey_deinit (key);
  free_chain (chain, n);
  return FALSE;
}

static gboolean
add_ca_file (ModikeX509Creds *c, const char *path, GError **error)
{
  gnutls_x509_crt_t *list = NULL;
  guint n = 0;
  int rc;

  if (!load_crts (path, &list, &n, error))
    return FALSE;
  for (guint i = 0; i < n; i++)
    {
      GBytes *dn = crt_raw_subject (list[i]);

      if (dn != NULL)
        g_ptr_array_add (c->ca_subjects, dn);
    }
  /* The trust list takes the certificates (not the array). */
  rc = gnutls_x509_trust_list_add_cas (c->trust, list, n, 0);
  gnutls_free (list);
  if (rc < 0)
    return gnutls_fail (error, rc, "cannot add trust anchors from '%s'", path);
  c->n_cas += n;
  return TRUE;
}

gboolean
modike_x509_creds_add_ca (ModikeX509Creds *c, const char *path, GError **error)
{
  g_autoptr (GDir) dir = NULL;
  g_autoptr (GPtrArray) names = NULL;
  const char *name;

  g_return_val_if_fail (c != NULL && path != NULL, FALSE);
  if (!g_file_test (path, G_FILE_TEST_IS_DIR))
    return add_ca_file (c, path, error);
  dir = g_dir_open (path, 0, error);
  if (dir == NULL)
    return FALSE;
  /* Every regular file of the directory, in name order (stable messages). */
  names = g_ptr_array_new_with_free_func (g_free);
  while ((name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *full = g_build_filename (path, name, NULL);

      if (name[0] != '.' && g_file_test (full, G_FILE_TEST_IS_REGULAR))
        g_ptr_array_add (names, g_steal_pointer (&full));
    }
  g_ptr_array_sort (names, (GCompareFunc) g_strcmp0);
  if (names->len == 0)
    {
      g_set_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_INVALID, "CA directory '%s' is empty", path);
      return FALSE;
    }
  for (guint i = 0; i < names->len; i++)
    if (!add_ca_file (c, names->pdata[i], error))
      return FALSE;
  return TRUE;
}

gboolean
modike_x509_creds_add_crl (ModikeX509Creds *c, const char *path, GError **error)
{
  gnutls_datum_t data = { NULL, 0 };
  gnutls_x509_crl_t *list = NULL;
  guint n = 0;
  int rc;

  g_return_val_if_fail (c != NULL && path != NULL, FALSE);
  rc = gnutls_load_file (path, &data);
  if (rc < 0)
    return gnutls_fail (error, rc, "cannot read CRL file '%s'", path);
  rc = gnutls_x509_crl_list_import2 (&list, &n, &data, GNUTLS_X509_FMT_PEM, 0);
  if (rc < 0 || n == 0)
    {
      gnutls_x509_crl_t one;

      /* Not PEM: one DER CRL. */
      n = 0;
      if (gnutls_x509_crl_init (&one) >= 0)
        {
          rc = gnutls_x509_crl_import (one, &data, GNUTLS_X509_FMT_DER);
          if (rc >= 0)
            {
              list = gnutls_malloc (sizeof *list);
              list[0] = one;
              n = 1;
            }
          else
            gnutls_x509_crl_deinit (one);
        }
    }
  gnutls_free (data.data);
  if (n == 0)
    {
      g_set_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_INVALID, "'%s' holds no CRL (PEM or DER)", path);
      return FALSE;
    }
  /* Indexed by issuer; checked against every certificate of a peer chain. */
  rc = gnutls_x509_trust_list_add_crls (c->trust, list, n, 0, 0);
  gnutls_free (list);
  if (rc < 0)
    return gnutls_fail (error, rc, "cannot add CRLs from '%s'", path);
  return TRUE;
}

gboolean
modike_x509_creds_has_local (const ModikeX509Creds *c)
{
  return c != NULL && c->n_chain > 0 && c->key != NULL;
}

GPtrArray *
modike_x509_creds_local_chain (const ModikeX509Creds *c)
{
  GPtrArray *out = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);

  for (guint i = 0; c != NULL && i < c->n_chain; i++)
    {
      gnutls_datum_t d = { NULL, 0 };

      if (gnutls_x509_crt_export2 (c->chain[i], GNUTLS_X509_FMT_DER, &d) >= 0)
        g_ptr_array_add (out, datum_bytes (&d));
    }
  return out;
}

GBytes *
modike_x509_creds_local_subject (const ModikeX509Creds *c)
{
  g_return_val_if_fail (modike_x509_creds_has_local (c), NULL);
  return crt_raw_subject (c->chain[0]);
}

GPtrArray *
modike_x509_creds_ca_subjects (const ModikeX509Creds *c)
{
  g_return_val_if_fail (c != NULL, NULL);
  return g_ptr_array_ref (c->ca_subjects);
}

GBytes *
modike_x509_sign (const ModikeX509Creds *c, const guint8 *hash, gsize len, GError **error)
{
  gnutls_datum_t in = { (unsigned char *) hash, (unsigned) len }, sig = { NULL, 0 };
  int rc;

  g_return_val_if_fail (modike_x509_creds_has_local (c), NULL);
  rc = gnutls_privkey_sign_hash (c->key, GNUTLS_DIG_UNKNOWN, GNUTLS_PRIVKEY_SIGN_FLAG_TLS1_RSA, &in, &sig);
  if (rc < 0)
    {
      gnutls_fail (error, rc, "RSA signature failed");
      return NULL;
    }
  return datum_bytes (&sig);
}

/* ---- peer certificates ---- */

void
modike_x509_cert_free (ModikeX509Cert *cert)
{
  if (cert == NULL)
    return;
  if (cert->pub != NULL)
    gnutls_pubkey_deinit (cert->pub);
  gnutls_x509_crt_deinit (cert->crt);
  g_free (cert->subject);
  g_free (cert);
}

const char *
modike_x509_cert_subject (const ModikeX509Cert *cert)
{
  return cert->subject;
}

static const char *
status_reason (unsigned status)
{
  if (status & GNUTLS_CERT_REVOKED)
    return "revoked";
  if (status & GNUTLS_CERT_SIGNER_NOT_FOUND)
    return "signer not found";
  if (status & GNUTLS_CERT_SIGNER_NOT_CA)
    return "signer is not a CA";
  if (status & GNUTLS_CERT_SIGNATURE_FAILURE)
    return "signature on the certificate does not verify";
  if (status & GNUTLS_CERT_INSECURE_ALGORITHM)
    return "insecure algorithm";
  if (status & GNUTLS_CERT_SIGNER_CONSTRAINTS_FAILURE)
    return "signer constraints violated";
  return NULL;
}

static gboolean
cert_fail (GError **error, const char *subject, const char *reason)
{
  g_set_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_CERT, "certificate '%s' is not trusted: %s", subject,
               reason);
  return FALSE;
}

/* Validity at `now` for every certificate of the chain: GnuTLS reads the
 * wall clock itself, the engine has its own (mock) clock. */
static gboolean
check_times (gnutls_x509_crt_t *chain, guint n, const char *leaf, gint64 now, GError **error)
{
  for (guint i = 0; i < n; i++)
    {
      time_t from = gnutls_x509_crt_get_activation_time (chain[i]);
      time_t until = gnutls_x509_crt_get_expiration_time (chain[i]);
      const char *why = NULL;

      if (from != (time_t) -1 && now < (gint64) from)
        why = "not yet valid";
      else if (until != (time_t) -1 && now > (gint64) until)
        why = "expired";
      if (why != NULL && i == 0)
        return cert_fail (error, leaf, why);
      if (why != NULL)
        {
          g_autofree char *who = crt_subject (chain[i]);
          g_autofree char *text = g_strdup_printf ("its issuer '%s' is %s", who, why);

          return cert_fail (error, leaf, text);
        }
    }
  return TRUE;
}

ModikeX509Cert *
modike_x509_verify_chain (const ModikeX509Creds *c, GPtrArray *der, gint64 now, GError **error)
{
  gnutls_x509_crt_t *chain;
  guint n = 0;
  unsigned status = 0;
  g_autofree char *subject = NULL;
  ModikeX509Cert *cert = NULL;
  int rc;

  g_return_val_if_fail (c != NULL && der != NULL, NULL);
  if (der->len == 0)
    {
      g_set_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_CERT, "the peer sent no certificate");
      return NULL;
    }
  chain = g_new0 (gnutls_x509_crt_t, der->len);
  for (; n < der->len; n++)
    {
      gsize len;
      const guint8 *d = g_bytes_get_data (der->pdata[n], &len);
      gnutls_datum_t datum = { (unsigned char *) d, (unsigned) len };

      rc = gnutls_x509_crt_init (&chain[n]);
      if (rc < 0)
        {
          gnutls_fail (error, rc, "cannot read certificate %u of the peer", n + 1);
          goto out;
        }
      rc = gnutls_x509_crt_import (chain[n], &datum, GNUTLS_X509_FMT_DER);
      if (rc < 0)
        {
          gnutls_x509_crt_deinit (chain[n]);
          g_set_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_CERT,
                       "certificate %u of the peer does not parse: %s", n + 1, gnutls_strerror (rc));
          goto out;
        }
    }
  subject = crt_subject (chain[0]);
  if (c->n_cas == 0)
    {
      cert_fail (error, subject, "no trust anchors configured");
      goto out;
    }
  if (!check_times (chain, n, subject, now, error))
    goto out;
  rc = gnutls_x509_trust_list_verify_crt2 (c->trust, chain, n, NULL, 0,
                                           GNUTLS_VERIFY_DISABLE_TIME_CHECKS |
                                             GNUTLS_VERIFY_DISABLE_TRUSTED_TIME_CHECKS,
                                           &status, NULL);
  if (rc < 0)
    {
      gnutls_fail (error, rc, "cannot verify certificate '%s'", subject);
      goto out;
    }
  if (status != 0)
    {
      const char *why = status_reason (status);
      gnutls_datum_t text = { NULL, 0 };

      if (why != NULL)
        cert_fail (error, subject, why);
      else
        {
          gnutls_certificate_verification_status_print (status, GNUTLS_CRT_X509, &text, 0);
          cert_fail (error, subject, text.data != NULL ? (const char *) text.data : "rejected");
          gnutls_free (text.data);
        }
      goto out;
    }
  cert = g_new0 (ModikeX509Cert, 1);
  cert->subject = g_steal_pointer (&subject);
  cert->crt = chain[0];
  chain[0] = NULL;
  if (gnutls_pubkey_init (&cert->pub) < 0 || gnutls_pubkey_import_x509 (cert->pub, cert->crt, 0) < 0)
    {
      g_set_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_FAILED, "cannot read the key of '%s'",
                   cert->subject);
      g_clear_pointer (&cert, modike_x509_cert_free);
      goto out;
    }
  if (gnutls_pubkey_get_pk_algorithm (cert->pub, NULL) != GNUTLS_PK_RSA)
    {
      g_set_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_CERT, "certificate '%s' has no RSA key",
                   cert->subject);
      g_clear_pointer (&cert, modike_x509_cert_free);
    }

out:
  for (guint i = 0; i < n; i++)
    if (chain[i] != NULL)
      gnutls_x509_crt_deinit (chain[i]);
  g_free (chain);
  return cert;
}

/* Text of a DER DN; comparing texts tolerates a re-encoding (the same
 * RDNs in another string type). */
char *
modike_x509_dn_to_string (const guint8 *data, gsize len)
{
  gnutls_x509_dn_t dn;
  gnutls_datum_t in = { (unsigned char *) data, (unsigned) len }, out = { NULL, 0 };
  char *s = NULL;

  if (gnutls_x509_dn_init (&dn) < 0)
    return NULL;
  if (gnutls_x509_dn_import (dn, &in) >= 0 && gnutls_x509_dn_get_str2 (dn, &out, 0) >= 0)
    s = g_strndup ((const char *) out.data, out.size);
  gnutls_free (out.data);
  gnutls_x509_dn_deinit (dn);
  return s;
}

static gboolean
crt_has_id (gnutls_x509_crt_t crt, guint8 type, const guint8 *data, gsize len)
{
  unsigned want;

  switch (type)
    {
    case MODIKE_ID_DER_ASN1_DN:
      {
        g_autoptr (GBytes) raw = crt_raw_subject (crt);
        g_autofree char *a = NULL, *b = NULL;

        if (raw != NULL && g_bytes_get_size (raw) == len && memcmp (g_bytes_get_data (raw, NULL), data, len) == 0)
          return TRUE;
        a = modike_x509_dn_to_string (data, len);
        b = crt_subject (crt);
        return a != NULL && g_strcmp0 (a, b) == 0;
      }
    case MODIKE_ID_FQDN:
      want = GNUTLS_SAN_DNSNAME;
      break;
    case MODIKE_ID_USER_FQDN:
      want = GNUTLS_SAN_RFC822NAME;
      break;
    case MODIKE_ID_IPV4_ADDR:
    case MODIKE_ID_IPV6_ADDR:
      want = GNUTLS_SAN_IPADDRESS;
      break;
    default:
      return FALSE;
    }
  for (unsigned seq = 0;; seq++)
    {
      guint8 buf[1024];
      size_t size = sizeof buf;
      int rc = gnutls_x509_crt_get_subject_alt_name (crt, seq, buf, &size, NULL);

      if (rc == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
        return FALSE;
      if (rc < 0 || (unsigned) rc != want || size != len)
        continue;
      if (want == GNUTLS_SAN_IPADDRESS ? memcmp (buf, data, len) == 0
                                       : g_ascii_strncasecmp ((const char *) buf, (const char *) data, len) == 0)
        return TRUE;
    }
}

gboolean
modike_x509_cert_has_id (const ModikeX509Cert *cert, guint8 id_type, const guint8 *data, gsize len)
{
  g_return_val_if_fail (cert != NULL, FALSE);
  return crt_has_id (cert->crt, id_type, data, len);
}

gboolean
modike_x509_creds_local_has_id (const ModikeX509Creds *c, guint8 id_type, const guint8 *data, gsize len)
{
  g_return_val_if_fail (modike_x509_creds_has_local (c), FALSE);
  return crt_has_id (c->chain[0], id_type, data, len);
}

gboolean
modike_x509_cert_verify (const ModikeX509Cert *cert, const guint8 *hash, gsize len, const guint8 *sig, gsize sig_len,
                         GError **error)
{
  gnutls_datum_t h = { (unsigned char *) hash, (unsigned) len }, s = { (unsigned char *) sig, (unsigned) sig_len };
  int rc;

  g_return_val_if_fail (cert != NULL, FALSE);
  rc = gnutls_pubkey_verify_hash2 (cert->pub, GNUTLS_SIGN_UNKNOWN, GNUTLS_PUBKEY_VERIFY_FLAG_TLS1_RSA, &h, &s);
  if (rc < 0)
    {
      g_set_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_SIGNATURE,
                   "signature does not verify with the key of certificate '%s'", cert->subject);
      return FALSE;
    }
  return TRUE;
}
