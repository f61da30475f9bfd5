/* SA, proposal and transform payloads (RFC 2408 3.4-3.6, 5.4-5.6).
 * Proposals and transforms are nested payloads with their own generic
 * headers; both chains must end exactly where their container ends. */
#include <modike/payload.h>
#include <modike/reader.h>

#include <string.h>

#define PROPOSAL_MIN 8   /* generic header + number, protocol, spi size, count */
#define TRANSFORM_MIN 8  /* generic header + number, id, reserved2 */

ModikeSaPayload *
modike_sa_payload_new (guint32 doi, guint32 situation)
{
  ModikeSaPayload *sa = g_new0 (ModikeSaPayload, 1);
  sa->doi = doi;
  sa->situation = situation;
  sa->proposals = g_ptr_array_new_with_free_func ((GDestroyNotify) modike_proposal_free);
  return sa;
}

ModikeProposal *
modike_proposal_new (guint8 number, guint8 protocol, const guint8 *spi, guint8 spi_len)
{
  ModikeProposal *p;

  g_return_val_if_fail (spi_len <= sizeof p->spi, NULL);
  g_return_val_if_fail (spi != NULL || spi_len == 0, NULL);
  p = g_new0 (ModikeProposal, 1);
  p->number = number;
  p->protocol = protocol;
  p->spi_len = spi_len;
  if (spi_len > 0)
    memcpy (p->spi, spi, spi_len);
  p->transforms = g_ptr_array_new_with_free_func ((GDestroyNotify) modike_transform_free);
  return p;
}

ModikeTransform *
modike_transform_new (guint8 number, guint8 id)
{
  ModikeTransform *t = g_new0 (ModikeTransform, 1);
  t->number = number;
  t->id = id;
  t->attrs = modike_attr_array_new ();
  return t;
}

void
modike_sa_payload_free (ModikeSaPayload *sa)
{
  if (sa == NULL)
    return;
  g_clear_pointer (&sa->proposals, g_ptr_array_unref);
  g_free (sa);
}

void
modike_proposal_free (ModikeProposal *p)
{
  if (p == NULL)
    return;
  g_clear_pointer (&p->transforms, g_ptr_array_unref);
  g_free (p);
}

void
modike_transform_free (ModikeTransform *t)
{
  if (t == NULL)
    return;
  g_clear_pointer (&t->attrs, g_array_unref);
  g_free (t);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (ModikeProposal, modike_proposal_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ModikeTransform, modike_transform_free)

/* Reads one nested payload header and splits off its body: a proposal
 * (ti == 0) or transform ti of proposal pi. */
static gboolean
read_nested (ModikeReader *r, guint pi, guint ti, guint8 *next, ModikeReader *body, GError **error)
{
  char what[48];
  guint8 want = ti ? MODIKE_PL_T : MODIKE_PL_P;
  gsize min_len = ti ? TRANSFORM_MIN : PROPOSAL_MIN;
  guint8 reserved;
  guint16 length;

  /* Only for errors; cheap enough to do up front. */
  if (ti)
    g_snprintf (what, sizeof what, "proposal %u transform %u", pi, ti);
  else
    g_snprintf (what, sizeof what, "proposal %u", pi);
  if (!modike_reader_u8 (r, next) || !modike_reader_u8 (r, &reserved) || !modike_reader_u16 (r, &length))
    {
      g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_TRUNCATED,
                              "SA: %s: header truncated", what);
      return FALSE;
    }
  if (*next != want && *next != MODIKE_PL_NONE)
    {
      g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_BAD_PROPOSAL,
                              "SA: %s: next payload %u, expected %u or 0", what, *next, want);
      return FALSE;
    }
  if (length < min_len)
    {
      g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_MALFORMED,
                              "SA: %s: length %u below %" G_GSIZE_FORMAT, what, length, min_len);
      return FALSE;
    }
  if (!modike_reader_sub (r, length - MODIKE_PAYLOAD_HEADER_LEN, body))
    {
      g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_TRUNCATED,
                              "SA: %s: length %u past end (%" G_GSIZE_FORMAT " bytes left)",
                              what, length, modike_reader_left (r) + MODIKE_PAYLOAD_HEADER_LEN);
      return FALSE;
    }
  return TRUE;
}

static ModikeTransform *
parse_transform (ModikeReader *body, guint pi, guint ti, GError **error)
{
  guint8 number, id;
  guint16 reserved2;
  const guint8 *attrs;
  gsize attrs_len;
  g_autoptr (ModikeTransform) t = NULL;

  if (!modike_reader_u8 (body, &number) || !modike_reader_u8 (body, &id)
      || !modike_reader_u16 (body, &reserved2))
    g_return_val_if_reached (NULL); /* TRANSFORM_MIN guarantees these */
  t = modike_transform_new (number, id);
  attrs_len = modike_reader_left (body);
  if (!modike_reader_bytes (body, attrs_len, &attrs))
    g_return_val_if_reached (NULL);
  if (!modike_attrs_parse (attrs, attrs_len, t->attrs, error))
    {
      g_prefix_error (error, "SA: proposal %u transform %u: ", pi, ti);
      return NULL;
    }
  return g_steal_pointer (&t);
}

/* SPI sizes per protocol (RFC 2407 4.4; IPCOMP carries a 2-byte CPI). */
static gboolean
spi_size_ok (guint8 protocol, guint8 spi_len)
{
  switch (protocol)
    {
    case MODIKE_PROTO_AH:
    case MODIKE_PROTO_ESP:
      return spi_len == 4;
    case MODIKE_PROTO_IPCOMP:
      return spi_len == 2 || spi_len == 4;
    default:
      return spi_len <= 16;
    }
}

static ModikeProposal *
parse_proposal (ModikeReader *body, guint pi, GError **error)
{
  guint8 number, protocol, spi_len, count, next = MODIKE_PL_T;
  const guint8 *spi;
  g_autoptr (ModikeProposal) p = NULL;
  guint ti = 0;

  if (!modike_reader_u8 (body, &number) || !modike_reader_u8 (body, &protocol)
      || !modike_reader_u8 (body, &spi_len) || !modike_reader_u8 (body, &count))
    g_return_val_if_reached (NULL); /* PROPOSAL_MIN guarantees these */
  if (!spi_size_ok (protocol, spi_len))
    {
      g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_BAD_SPI,
                              "SA: proposal %u: spi size %u invalid for protocol %u", pi, spi_len, protocol);
      return NULL;
    }
  if (!modike_reader_bytes (body, spi_len, &spi))
    {
      g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_TRUNCATED,
                              "SA: proposal %u: spi size %u past end", pi, spi_len);
      return NULL;
    }
  if (count == 0)
    {
      g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_BAD_PROPOSAL,
                              "SA: proposal %u: no transforms", pi);
      return NULL;
    }
  p = modike_proposal_new (number, protocol, spi, spi_len);
  while (next != MODIKE_PL_NONE)
    {
      ModikeReader tb;
      ModikeTransform *t;

      ti++;
      if (ti > count || modike_reader_left (body) == 0)
        {
          g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_BAD_PROPOSAL,
                                  "SA: proposal %u: %u transforms announced, %s", pi, count,
                                  ti > count ? "more present" : "fewer present");
          return NULL;
        }
      if (!read_nested (body, pi, ti, &next, &tb, error))
        return NULL;
      if (!(t = parse_transform (&tb, pi, ti, error)))
        return NULL;
      g_ptr_array_add (p->transforms, t);
    }
  if (ti != count)
    {
      g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_BAD_PROPOSAL,
                              "SA: proposal %u: %u transforms announced, %u present", pi, count, ti);
      return NULL;
    }
  if (modike_reader_left (body) > 0)
    {
      g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_BAD_PROPOSAL,
                              "SA: proposal %u: %" G_GSIZE_FORMAT " bytes after the last transform",
                              pi, modike_reader_left (body));
      return NULL;
    }
  return g_steal_pointer (&p);
}

ModikeSaPayload *
modike_sa_payload_parse (const guint8 *body, gsize len, GError **error)
{
  g_autoptr (ModikeSaPayload) sa = NULL;
  ModikeReader r;
  guint32 doi, situation;
  guint8 next = MODIKE_PL_P;
  guint pi = 0;

  modike_reader_init (&r, body, len);
  if (!modike_reader_u32 (&r, &doi) || !modike_reader_u32 (&r, &situation))
    {
      g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_TRUNCATED,
                              "SA: length %" G_GSIZE_FORMAT " below 8", len);
      return NULL;
    }
  /* Only the IPsec DOI; other situations carry fields we don't parse. */
  if (doi != MODIKE_DOI_IPSEC)
    {
      g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_BAD_DOI,
                              "SA: DOI %u not supported", doi);
      return NULL;
    }
  if (situation != MODIKE_SIT_IDENTITY_ONLY)
    {
      g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_BAD_SITUATION,
                              "SA: situation 0x%x not supported", situation);
      return NULL;
    }
  sa = modike_sa_payload_new (doi, situation);
  while (next != MODIKE_PL_NONE)
    {
      ModikeReader pb;
      ModikeProposal *p;

      pi++;
      if (modike_reader_left (&r) == 0)
        {
          g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_BAD_PROPOSAL,
                                  "SA: proposal %u %s", pi,
                                  pi == 1 ? "missing: no proposal at all" : "announced but the SA ends");
          return NULL;
        }
      if (!read_nested (&r, pi, 0, &next, &pb, error))
        return NULL;
      if (!(p = parse_proposal (&pb, pi, error)))
        return NULL;
      g_ptr_array_add (sa->proposals, p);
    }
  if (modike_reader_left (&r) > 0)
    {
      g_set_error (error, MODIKE_CODEC_ERROR, MODIKE_CODEC_ERROR_BAD_PROPOSAL,
                              "SA: %" G_GSIZE_FORMAT " bytes after the last proposal", modike_reader_left (&r));
      return NULL;
    }
  return g_steal_pointer (&sa);
}

static void
patch_length (GByteArray *out, gsize start)
{
  gsize len = out->len - start;

  g_warn_if_fail (len <= G_MAXUINT16);
  modike_patch_u16 (out, start + 2, (guint16) MIN (len, G_MAXUINT16));
}

void
modike_sa_payload_encode (const ModikeSaPayload *sa, GByteArray *out)
{
  modike_put_u32 (out, sa->doi);
  modike_put_u32 (out, sa->situation);
  for (guint i = 0; i < sa->proposals->len; i++)
    {
      const ModikeProposal *p = g_ptr_array_index (sa->proposals, i);
      gsize pstart = out->len;

      g_warn_if_fail (p->transforms->len <= G_MAXUINT8);
      modike_put_u8 (out, i + 1 < sa->proposals->len ? MODIKE_PL_P : MODIKE_PL_NONE);
      modike_put_u8 (out, 0);
      modike_put_u16 (out, 0); /* patched */
      modike_put_u8 (out, p->number);
      modike_put_u8 (out, p->protocol);
      modike_put_u8 (out, p->spi_len);
      modike_put_u8 (out, (guint8) p->transforms->len);
      modike_put_bytes (out, p->spi, MIN (p->spi_len, sizeof p->spi));
      for (guint j = 0; j < p->transforms->len; j++)
        {
          const ModikeTransform *t = g_ptr_array_index (p->transforms, j);
          gsize tstart = out->len;

          modike_put_u8 (out, j + 1 < p->transforms->len ? MODIKE_PL_T : MODIKE_PL_NONE);
          modike_put_u8 (out, 0);
          modike_put_u16 (out, 0); /* patched */
          modike_put_u8 (out, t->number);
          modike_put_u8 (out, t->id);
          modike_put_u16 (out, 0);
          if (t->attrs != NULL)
            modike_attrs_encode (t->attrs, out);
          patch_length (out, tstart);
        }
      patch_length (out, pstart);
    }
}
