/* ESP anti-replay window (RFC 4303 3.4.3, appendix A2): a bitmap sliding
 * with the highest sequence number accepted. Not thread-safe by itself:
 * esp.c holds the SA's replay lock around every call. */
#include "esp.h"

#include <string.h>

#define REPLAY_MAX 4096
#define WORD_BITS 64

gboolean
esp_replay_init (EspReplay *r, guint size, GError **error)
{
  g_return_val_if_fail (r != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  memset (r, 0, sizeof *r);
  if (size > REPLAY_MAX)
    {
      g_set_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_INVALID,
                   "Replay window of %u packets is larger than the maximum of %u", size, REPLAY_MAX);
      return FALSE;
    }
  /* Whole words only: rounding up just accepts a few more late packets. */
  r->size = (size + WORD_BITS - 1) / WORD_BITS * WORD_BITS;
  if (r->size > 0)
    r->bits = g_new0 (guint64, r->size / WORD_BITS);
  return TRUE;
}

void
esp_replay_clear (EspReplay *r)
{
  if (r == NULL)
    return;
  g_free (r->bits);
  memset (r, 0, sizeof *r);
}

gboolean
esp_replay_check (const EspReplay *r, guint32 seq)
{
  guint32 diff;

  g_return_val_if_fail (r != NULL, FALSE);
  /* Anti-replay off: no inbound checks at all (RFC 4303 3.4.3). */
  if (r->size == 0)
    return TRUE;
  /* Without ESN a sender never uses 0 (the counter starts at 1, never wraps). */
  if (seq == 0)
    return FALSE;
  if (seq > r->top)
    return TRUE;
  diff = r->top - seq;
  if (diff >= r->size)
    return FALSE;
  return ((r->bits[diff / WORD_BITS] >> (diff % WORD_BITS)) & 1) == 0;
}

/* Moves every bit i of the window to i + shift (top grew by shift). */
static void
window_shift (EspReplay *r, guint32 shift)
{
  guint words = r->size / WORD_BITS;
  guint wshift = shift / WORD_BITS, bshift = shift % WORD_BITS;

  if (shift >= r->size)
    {
      memset (r->bits, 0, words * sizeof (guint64));
      return;
    }
  for (guint w = words; w-- > 0;)
    {
      guint64 v = 0;

      if (w >= wshift)
        {
          guint src = w - wshift;

          v = r->bits[src] << bshift;
          if (bshift != 0 && src > 0)
            v |= r->bits[src - 1] >> (WORD_BITS - bshift);
        }
      r->bits[w] = v;
    }
}

void
esp_replay_update (EspReplay *r, guint32 seq)
{
  g_return_if_fail (r != NULL);
  if (r->size == 0 || seq == 0)
    return;
  if (seq > r->top)
    {
      window_shift (r, seq - r->top);
      r->top = seq;
      r->bits[0] |= 1;
    }
  else
    {
      guint32 diff = r->top - seq;

      if (diff < r->size)
        r->bits[diff / WORD_BITS] |= G_GUINT64_CONSTANT (1) << (diff % WORD_BITS);
    }
}
