/* ABI 1.2. Names of IKEv1 numbers for logs and error texts, and the bit a
 * payload type has in the state-table masks: the one table the core and
 * plugins share, so a number reads the same in every log. */
#pragma once

#include <glib.h>
#include <modike/protocol.h>

G_BEGIN_DECLS

/* "SA", "NAT-D (draft)", ...; NULL for a type without a name. */
const char *modike_payload_name (guint8 type);
/* "INVALID_ID_INFORMATION", "R_U_THERE", ... (RFC spelling); NULL when unnamed. */
const char *modike_notify_name (guint16 type);
/* "MM", "AM", "QM", "INFO", "TRANSACTION", ...; NULL when unnamed. */
const char *modike_exchange_name (guint8 type);

/* Bit of a payload type in ModikeFsmRow masks: 0..47 direct, 130->48,
 * 131->49, 132->50, every other type 63 (which rows cannot name). */
#define MODIKE_PAYLOAD_BIT_OTHER 63
guint modike_payload_bit (guint8 type);
/* The payload type of a bit below 63 (the inverse); MODIKE_PL_NONE for
 * a bit no type maps to. */
guint8 modike_payload_bit_type (guint bit);

G_END_DECLS
