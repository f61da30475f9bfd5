/* The state table, exchanges in flight and IKE SAs as plugins see them.
 * The core's Main, Aggressive, Quick and Informational exchanges use the
 * same types. */
#pragma once

#include <glib.h>
#include <modike/addr.h>
#include <modike/crypto.h>
#include <modike/message.h>
#include <modike/names.h>
#include <modike/payload.h>
#include <modike/plugin.h>

G_BEGIN_DECLS

typedef struct _ModikeIke ModikeIke;           /* the engine: SAs, config, registry */
typedef struct _ModikeIkeSa ModikeIkeSa;       /* one ISAKMP SA (phase 1) */
typedef struct _ModikeExchange ModikeExchange; /* one exchange in flight (per message id) */

typedef enum {
  MODIKE_ROLE_INITIATOR = 1,
  MODIKE_ROLE_RESPONDER = 2,
} ModikeRole;

/* What a handler tells the core; only the core applies transitions. */
typedef enum {
  MODIKE_V_OK = 0,    /* go to the row's next state */
  MODIKE_V_SUSPEND,   /* async work: modike_exchange_resume() later */
  MODIKE_V_FAIL,      /* end the exchange; notify from modike_exchange_set_notify */
  MODIKE_V_DROP,      /* ignore this message as if never received */
} ModikeVerdict;

/* Bit for a payload type in the row masks. */
#define MODIKE_PB(type) (G_GUINT64_CONSTANT (1) << modike_payload_bit (type))

typedef enum {
  MODIKE_ROW_ENCRYPTED = 1 << 0,   /* the message must carry the E flag */
  MODIKE_ROW_PLAIN = 1 << 1,       /* the message must not */
  MODIKE_ROW_START = 1 << 2,       /* creates the exchange (responder's first message) */
  MODIKE_ROW_P1_DONE = 1 << 3,     /* the ISAKMP SA is established after this row */
  MODIKE_ROW_DONE = 1 << 4,        /* the exchange completes after this row */
  MODIKE_ROW_INITIATE = 1 << 5,    /* msg_no 0: local start, no message */
  /* ABI 1.2: the message received on this row and the one its handler
   * sends carry HASH = prf(SKEYID_a, M-ID | payloads after HASH) as their
   * first payload (RFC 2409 5.5 HASH(1), 5.7; the transaction exchange).
   * The core adds it when sending and checks it before the handler runs;
   * such messages are always encrypted. */
  MODIKE_ROW_HASH = 1 << 6,
} ModikeRowFlags;

typedef ModikeVerdict (*ModikeStateFunc) (ModikeExchange *x, const ModikeMessage *msg, GError **error);

typedef struct {
  const char *name;        /* "MM_R1": logs and the table test */
  guint from;              /* state of the exchange before (0 = none) */
  guint8 exchange;         /* ModikeExchangeType */
  guint8 msg_no;           /* 1-based number of the received message; 0 with ROW_INITIATE */
  guint8 role;             /* ModikeRole of this end in this exchange */
  guint32 flags;           /* ModikeRowFlags */
  guint64 required;        /* MODIKE_PB() bits: each must appear */
  guint64 optional;        /* may appear */
  guint64 repeatable;      /* may appear more than once (else at most once) */
  ModikeStateFunc handler;
  guint next;              /* state after an OK verdict */
  guint timeout_ms;        /* > 0: we sent a request and wait (retransmit base) */
} ModikeFsmRow;

/* ---- Exchanges ---- */
ModikeIkeSa *modike_exchange_get_sa (const ModikeExchange *x);
guint8 modike_exchange_get_type (const ModikeExchange *x);
guint32 modike_exchange_get_msgid (const ModikeExchange *x);
ModikeRole modike_exchange_get_role (const ModikeExchange *x);
guint modike_exchange_get_state (const ModikeExchange *x);
/* Exchange-specific data owned by the exchange's handlers; destroy runs once
 * the exchange completes (only replays of its last message follow) or dies. */
void modike_exchange_set_data (ModikeExchange *x, gpointer data, GDestroyNotify destroy);
gpointer modike_exchange_get_data (const ModikeExchange *x);
/* Notify to send when the verdict is FAIL (0 = send none). */
void modike_exchange_set_notify (ModikeExchange *x, guint16 notify_type);
/* Runs the builders plugins registered for (type, msg_no) on b. */
gboolean modike_exchange_run_builders (ModikeExchange *x, guint8 msg_no, ModikeBuilder *b, GError **error);
/* Encrypts when the SA has keys and `encrypt` (always on MODIKE_ROW_HASH
 * rows, with the HASH put in front), remembers the packet for
 * retransmission/replay answers and sends it: from a handler once the
 * verdict is applied, else at once. */
gboolean modike_exchange_send (ModikeExchange *x, ModikeBuilder *b, gboolean encrypt, GError **error);
/* Completes a SUSPENDed handler: applies `verdict` as if returned; takes
 * `error` (the FAIL cause, may be NULL). */
void modike_exchange_resume (ModikeExchange *x, ModikeVerdict verdict, GError *error);
/* ABI 1.3: expensive crypto off the engine thread. The handler calls this
 * and returns MODIKE_V_SUSPEND; work(job) runs on a crypto worker thread
 * (it must not touch the engine: copy the inputs into job), then
 * done(x, job, error) on the engine thread goes on with the handler's work
 * (sends from it are deferred as from a handler) and its verdict is applied
 * as with modike_exchange_resume (SUSPEND again: another offload). If x or
 * its SA goes, or the engine is freed, meanwhile, done is not called;
 * free_job(job) always runs, on the engine thread. Without crypto threads
 * (<crypto threads="0"/>) work runs at once and done right after the
 * handler returns. */
typedef void (*ModikeOffloadWork) (gpointer job);
typedef ModikeVerdict (*ModikeOffloadDone) (ModikeExchange *x, gpointer job, GError **error);
void modike_exchange_offload (ModikeExchange *x, ModikeOffloadWork work, ModikeOffloadDone done, gpointer job,
                              GDestroyNotify free_job);
/* ABI 1.2: a fresh inbound SPI (>= 256, host order) for an SA x negotiates,
 * reserved for x until x is freed; an installed inbound SA keeps it taken. */
guint32 modike_exchange_alloc_spi (ModikeExchange *x);
/* ABI 1.2: x negotiates SAs for SPD entry spd_id (0 = none). Until x is
 * done the policy counts as busy: acquires for it are ignored and no second
 * Quick Mode is started for it. */
void modike_exchange_set_policy (ModikeExchange *x, guint32 spd_id);
guint32 modike_exchange_get_policy (const ModikeExchange *x);

/* ABI 1.2: starts an exchange of a plugin-owned type on an established
 * ISAKMP SA as its initiator: a fresh message ID and IV, then the type's
 * INITIATE row. `data` becomes the exchange data (freed with destroy, also
 * on failure). Returns the exchange (borrowed; valid while it runs). */
ModikeExchange *modike_exchange_start (ModikeIkeSa *sa, guint8 type, gpointer data, GDestroyNotify destroy,
                                       GError **error);

/* ---- IKE SAs ---- */
const guint8 *modike_ike_sa_get_icookie (const ModikeIkeSa *sa);
const guint8 *modike_ike_sa_get_rcookie (const ModikeIkeSa *sa);
ModikeRole modike_ike_sa_get_role (const ModikeIkeSa *sa);     /* phase 1 role */
const ModikeAddr *modike_ike_sa_get_local (const ModikeIkeSa *sa);
const ModikeAddr *modike_ike_sa_get_remote (const ModikeIkeSa *sa);
ModikeHashAlg modike_ike_sa_get_hash (const ModikeIkeSa *sa);  /* negotiated; 0 before */
const char *modike_ike_sa_get_peer_name (const ModikeIkeSa *sa);
/* Per-SA option from the peer config: <option name="natt.force" value="yes"/>. */
const char *modike_ike_sa_get_option (const ModikeIkeSa *sa, const char *key);
gboolean modike_ike_sa_is_established (const ModikeIkeSa *sa);
/* Moves both ends to `port` (4500) with the non-ESP marker from the next
 * message on (RFC 3947 4). NAT-T only, but it stays a core call: the
 * float point (MM5/AM3), the marker and the socket choice are the core's
 * send path. */
void modike_ike_sa_float (ModikeIkeSa *sa, guint16 port);
/* NAT detection result (natt sets it from NAT-D). The core needs it too:
 * a client of a responder-only peer that is behind a NAT is the same client
 * by its identity alone when its address changes. */
void modike_ike_sa_set_nat (ModikeIkeSa *sa, gboolean local_behind, gboolean remote_behind);
gboolean modike_ike_sa_nat_detected (const ModikeIkeSa *sa);
/* Per-plugin data on an SA, freed with the SA. */
void modike_ike_sa_set_plugin_data (ModikeIkeSa *sa, const char *plugin, gpointer data, GDestroyNotify destroy);
gpointer modike_ike_sa_get_plugin_data (const ModikeIkeSa *sa, const char *plugin);

/* ABI 1.2: the phase-2 gate. While any plugin holds an SA, Quick Modes on
 * it (ours and the peer's) wait, bounded in number and time (peer options
 * phase2.hold-queue, default 8, and phase2.hold-timeout in s, default 30);
 * they run when the last hold is released. Holding twice is one hold. */
void modike_ike_sa_hold_phase2 (ModikeIkeSa *sa, ModikePlugin *plugin);
void modike_ike_sa_release_phase2 (ModikeIkeSa *sa, ModikePlugin *plugin);
/* Fails the SA (e.g. extended authentication failed): waiting Quick Modes
 * fail with `error`, the peer gets a DELETE, the SA goes. */
void modike_ike_sa_fail (ModikeIkeSa *sa, const GError *error);

G_END_DECLS
