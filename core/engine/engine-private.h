/* The engine's internal structures, shared by ike.c, sa.c, exchange*.c,
 * digest.c, proposal.c, status.c and fsm-table.c (not part of the SDK). */
#pragma once

#include <modike/modike.h>
#include "registry-private.h"

G_BEGIN_DECLS

#define ENGINE_LOG_DOMAIN "modike"
#define ENGINE_NONCE_LEN 32
#define ENGINE_IV_MAX 16              /* largest CBC block we use (AES) */
#define ENGINE_DEFAULT_P1_LIFE 28800  /* RFC 2407 4.5 / RFC 2409 default */
#define ENGINE_DEFAULT_P2_LIFE 28800
#define ENGINE_DEFAULT_RETRANSMIT_MS 2000
#define ENGINE_DEFAULT_TRIES 5
#define ENGINE_DEFAULT_HALF_OPEN_S 30
#define ENGINE_REPLAY_WINDOW 32
#define ENGINE_DONE_IDS 8             /* finished exchanges' message IDs remembered per SA */

/* States, private to their exchange type (0 = none). */
enum { MM_I1 = 1, MM_R2, MM_I3, MM_R4, MM_I5, MM_DONE };
enum { AM_I1 = 1, AM_R2, AM_DONE };
enum { QM_I1 = 1, QM_R2, QM_DONE };
enum { INFO_DONE = 1 };
enum { TXN_I1 = 1, TXN_DONE };

/* Counters for logs, status and the tests. */
typedef struct {
  guint64 rx_packets;
  guint64 rx_garbage;        /* unparseable, bad decryption */
  guint64 rx_unknown_sa;     /* cookies we don't know */
  guint64 rx_dropped;        /* everything else dropped */
  guint64 rx_replays;        /* retransmitted requests answered by replay */
  guint64 rx_duplicates;     /* duplicates ignored (nothing to replay) */
  guint64 rx_digest_rejects; /* failed the row check */
  guint64 rx_no_row;         /* no row for (exchange, state, msg, role) */
  guint64 handler_calls;
  guint64 tx_packets;
  guint64 retransmits;
  guint64 auth_failures;
  guint64 rx_half_open_limit; /* first messages over a half-open limit (also in rx_dropped) */
  guint64 half_open_expired;  /* responder SAs that timed out before phase 1 was up */
  guint64 rx_no_peer;         /* first messages without a peer config (also in rx_dropped) */
  guint64 crypto_jobs;       /* handed to the crypto workers */
} ModikeIkeStats;

typedef struct {
  guint16 encr, keybits, hash, group, auth;
  guint64 life_s, life_kb;
} EngineP1Choice;

typedef struct {
  guint8 proposal_no, transform_no;
  guint16 esp_transform, key_bits, auth_alg;
  guint16 encap;        /* the ENCAP_MODE value on the wire */
  ModikeIpsecMode mode; /* plain mode behind it */
  gboolean udp;         /* UDP-encapsulated (encap ops said so) */
  guint16 group;        /* PFS group, 0 = none */
  guint64 life_s, life_kb;
  guint64 peer_life_s, peer_life_kb; /* as the initiator proposed them (0 = none) */
} EngineP2Choice;

typedef enum {
  SA_CONNECTING = 0,
  SA_ESTABLISHED,
} EngineSaState;

/* A negotiated pair of ESP SAs, bookkept on the IKE SA that owns it. */
typedef struct {
  ModikeIkeSa *sa;          /* owner (children move to a newer SA on rekey) */
  guint32 spi_in, spi_out;  /* host order */
  guint32 reqid, spd_id;
  char *policy;             /* policy name: survives config reloads */
  gboolean initiator;       /* we ran the Quick Mode as initiator: we rekey */
  gboolean rekeyed;         /* a replacement was started */
  EngineP2Choice choice;
  guint rekey_timer, expire_timer;
  gint64 created_us;
  gboolean dp_failed;       /* the datapath refused its SAs: removed soon, no events */
} EngineChild;

typedef struct _EngineDatapath EngineDatapath; /* datapath-host.c */
typedef struct _EngineAdapter EngineAdapter;   /* adapter.c */
typedef struct _EngineHalfOpen EngineHalfOpen; /* halfopen.c */
typedef struct _EngineHalfOpenEntry EngineHalfOpenEntry;

struct _ModikeIke {
  ModikeEnv env;
  ModikeRegistry *registry;
  ModikeConfig *cfg;          /* borrowed until the next set_config */
  ModikeSpd *spd;
  ModikeSad *sad;
  GPtrArray *sas;             /* ModikeIkeSa*, live ones */
  guint half_open;            /* live responder SAs before phase 1 is up (no scan per new SA) */
  EngineHalfOpen *ho;         /* their count per address, the limits' log summaries (halfopen.c) */
  GHashTable *by_icookie;     /* guint64 key in the SA -> ModikeIkeSa* */
  GHashTable *by_peer;        /* peer key -> GPtrArray of the SAs of one peer (sa.c) */
  GHashTable *children_in;    /* our inbound SPI -> EngineChild* once up (sa.c) */
  GHashTable *children_out;   /* reqid -> EngineChild* (peers' outbound SPIs may collide) */
  GPtrArray *dead_sas;        /* freed when the engine returns to the caller */
  GPtrArray *dead_exchanges;
  guint depth;                /* nesting of entry points, for deferred frees */
  ModikeIkeObserver obs;
  gpointer obs_user;
  guint32 next_reqid;
  ModikeIkeStats stats;
  EngineDatapath *dp;         /* the started datapath plugin, NULL without one */
  GPtrArray *adapters;        /* EngineAdapter*: virtual adapters, one per peer with <adapter> */
  GHashTable *acquires;       /* spd_id -> rate limit state of datapath acquires (ike.c) */
  GHashTable *spis;           /* reserved inbound SPI -> ModikeExchange* holding it (inflight.c) */
  GHashTable *policy_xs;      /* spd_id -> GPtrArray of ModikeExchange* negotiating for it */
  const struct _ModikeHostOps *host_ops; /* host services (host.c), NULL = none */
  gpointer host;
  GPtrArray *instances;       /* EngineInstance* of local="virtual" templates (client), borrowed */
  GHashTable *instance_ids;   /* spd_id -> every EngineInstance (owns them) */
  GHashTable *instance_names; /* name -> EngineInstance*: one client's instance never shadows another's */
  GHashTable *peer_addrs;     /* client address (ModikeAddr, port 0) -> the ModikeIkeSa holding it */
  gboolean started;           /* the engine-start hooks ran (first set_config) */
  struct _EngineCrypto *crypto; /* the crypto worker pool (offload.c), NULL = none yet */
  guint crypto_threads;       /* its size; 0 = crypto runs inline */
  /* Tests only (core/tests/fsm, to make peers' SPIs collide): the inbound
   * SPI offered while it is free; 0, always outside tests, = random. */
  guint32 test_spi_in;
};

struct _ModikeIkeSa {
  ModikeIke *ike;
  guint64 icookie_key;        /* icookie as the hash key */
  guint8 icookie[MODIKE_COOKIE_LEN];
  guint8 rcookie[MODIKE_COOKIE_LEN];
  gboolean rcookie_set;
  ModikeRole role;
  EngineHalfOpenEntry *ho_entry; /* counted as half-open there (halfopen.c); NULL = not */
  guint8 p1_exchange;         /* MODIKE_EX_MAIN or MODIKE_EX_AGGRESSIVE */
  EngineSaState state;
  gboolean dead;
  gboolean rekeyed;           /* a newer SA replaces this one */
  gboolean authenticated;     /* in full: MODIKE_EVENT_AUTHENTICATED went out */
  char *user;                 /* modike_ike_sa_set_user, else the peer's ID as text (lazily) */
  gboolean user_set;          /* by modike_ike_sa_set_user (XAuth): part of the peer key */
  gboolean join_deferred;     /* joins its client's SAs once authenticated (engine_sa_join) */
  guint32 serial;             /* creation order, for "older SA" decisions */
  guint sas_pos;              /* its index in ike->sas (removal without a scan) */

  ModikeAddr local, remote;   /* current endpoints (ports move on float) */
  guint16 float_port;         /* set by natt; 0 = none */
  gboolean floated;
  gboolean nat_local, nat_remote; /* NAT detection (modike_ike_sa_set_nat) */

  const ModikePeerConfig *peer; /* borrowed from ike->cfg */
  char *peer_name;
  char *peer_key;             /* its bucket in ike->by_peer; NULL = none (yet) */
  /* modike_ike_initiate_as: a bucket of its own and our identity for it. */
  char *own_key;
  guint8 own_id_type;
  char *own_id;
  GError *failure;            /* during a P1_FAILED / P2_FAILED event: why */

  EngineP1Choice choice;
  gboolean have_keys;
  ModikeP1Keys keys;
  gsize block_len;
  guint8 p1_iv[ENGINE_IV_MAX]; /* phase 1 IV chain; last phase 1 block afterwards */

  /* Inputs of HASH_I/HASH_R and the key derivation. */
  GBytes *sai_b, *ni, *nr, *gxi, *gxr, *idi_b, *idr_b;
  ModikeDh *dh;

  GHashTable *exchanges;      /* msgid -> ModikeExchange*, but 0; NULL while none (engine_sa_exchange) */
  ModikeExchange *p1_exchange_x; /* message ID 0: phase 1's exchange while it runs or lingers */
  /* Message IDs of the last exchanges that finished and are gone: copies
   * of their messages are duplicates, never new exchanges (sa.c). */
  guint32 done_ids[ENGINE_DONE_IDS];
  guint8 n_done_ids, next_done_id;
  GArray *plugin_data;        /* EnginePluginData (sa.c); NULL until a plugin keeps data */
  GPtrArray *children;        /* EngineChild*, owned */
  GArray *pending_spd;        /* guint32: Quick Modes to start when up */
  gboolean peer_initial_contact;
  guint decrypt_failures;     /* phase 1 messages that decrypted to garbage */

  gint64 created_us, established_us;
  guint half_open_timer, rekey_timer, expire_timer;
  struct _EngineGate *gate;   /* phase-2 gate (phase2-gate.c); NULL until held */

  gint64 last_rx_us;          /* last authenticated (decrypted, accepted) message */
  gboolean retry_p1;          /* a plugin's restart: phase 1 starts again when it times out */
  gint64 last_tx_us;          /* last datagram sent to the peer (IKE or raw) */
  GHashTable *plugin_timers;  /* id -> timer of modike_ike_sa_timer_add; NULL until one */
  guint next_timer_id;
  ModikePrefix peer_addr4, peer_addr6; /* the client's mode config addresses (gateway); family 0 = none */
  GPtrArray *instances;       /* EngineInstance* of remote="virtual" templates it owns (borrowed), NULL: none */
};

struct _ModikeExchange {
  ModikeIkeSa *sa;            /* owner */
  guint8 type;
  guint32 msgid;
  ModikeRole role;
  guint state;
  gboolean done, dead, suspended;
  gboolean in_handler;        /* sends are deferred to the outbox */
  guint8 cur_no;              /* message being processed (0 = local start) */
  guint8 rx_no;               /* last message accepted */
  guint8 sent_no;             /* our last message */
  gpointer data;
  GDestroyNotify destroy;
  guint16 notify;             /* to send on FAIL */
  guint8 notify_proto;        /* 0 = ISAKMP with the cookies */
  guint8 notify_spi[4];
  guint8 iv[ENGINE_IV_MAX];   /* this exchange's IV chain (msgid != 0) */
  guint8 iv_backup[ENGINE_IV_MAX];
  GBytes *last_sent;          /* for retransmission and replay, no marker */
  GBytes *outbox;             /* sent when the verdict is applied */
  guint8 rx_digest[32];
  gboolean have_rx_digest;
  guint timer, tries, interval_ms;
  guint linger_timer;
  const ModikeFsmRow *susp_row;
  ModikeMessage *susp_msg;
  ModikeAddr rx_local, rx_remote; /* where the message in process came from */
  guint32 spd_id;             /* the policy it negotiates for (modike_exchange_set_policy), 0 = none */
  GArray *spis;               /* guint32: inbound SPIs it reserved (modike_exchange_alloc_spi) */
  const ModikeFsmRow *cur_row; /* row of the handler running or suspended (ROW_HASH sends) */
  gboolean parked;            /* a peer's Quick Mode waiting at the phase-2 gate (susp_row/msg) */
  const ModikePlugin *txn_owner; /* transaction exchange: the plugin whose ops run it */
  guint replays;              /* answers to retransmissions of the peer's last message */
  struct _EngineOffload *offload; /* the crypto job it waits for (offload.c), NULL = none */
};

/* ---- crypto offload (offload.c) ---- */
typedef struct _EngineCrypto EngineCrypto;
typedef struct _EngineOffload EngineOffload;
/* Pool size; the first call with threads > 0 creates the pool, its
 * results drained on the caller's thread-default main context. */
gboolean engine_crypto_set_threads (ModikeIke *ike, guint threads, GError **error);
void engine_crypto_free (ModikeIke *ike);     /* jobs in flight: results dropped */
/* Tests without a main loop: runs the `done` of jobs as they come back
 * until none is in flight; FALSE after timeout_ms. */
gboolean engine_crypto_wait (ModikeIke *ike, guint timeout_ms);
guint engine_crypto_in_flight (ModikeIke *ike);
/* x goes: its job's result is dropped (free_job still runs). */
void engine_offload_orphan (ModikeExchange *x);
/* After x's SUSPEND was applied: an inline job's done runs now. */
void engine_offload_run_inline (ModikeExchange *x);
/* exchange.c: ends x's suspension with done's verdict. */
void engine_exchange_offload_done (ModikeExchange *x, ModikeOffloadDone done, gpointer job);

/* exchange-common.c: a handler's Diffie-Hellman on a crypto worker (modike_exchange_offload):
 * our key pair unless dh (taken) is given, then g^xy when peer_pub is.
 * The worker sees only these copies. `then` goes on with the handler on
 * the engine thread; b and msg are the handler's (b is freed with the
 * job; msg stays with the suspended exchange). Returns SUSPEND; a DH
 * failure fails x with INVALID_KEY_INFORMATION. */
typedef struct _EngineDhJob EngineDhJob;
typedef ModikeVerdict (*EngineDhThen) (ModikeExchange *x, EngineDhJob *j, GError **error);
struct _EngineDhJob {
  ModikeBuilder *b;            /* engine thread: the message being built */
  const ModikeMessage *msg;
  EngineDhThen then;
  ModikeDhGroup group;         /* worker */
  ModikeDh *dh;                /* ours; stays (keygen only) for a later g^xy */
  GBytes *peer_pub;
  GBytes *pub;                 /* out: our public value when made here */
  ModikeSecret *gxy;           /* out */
  GError *error;               /* out */
};
ModikeVerdict engine_dh_offload (ModikeExchange *x, const ModikeMessage *msg, ModikeBuilder *b, ModikeDhGroup group,
                                 ModikeDh *dh, GBytes *peer_pub, EngineDhThen then);

/* ---- logging (ike.c) ---- */
void engine_log (GLogLevelFlags level, const ModikeIkeSa *sa, const ModikeExchange *x, const char *fmt, ...)
  G_GNUC_PRINTF (4, 5);
#define ELOG_DEBUG(sa, x, ...) engine_log (G_LOG_LEVEL_DEBUG, (sa), (x), __VA_ARGS__)
#define ELOG_INFO(sa, x, ...) engine_log (G_LOG_LEVEL_INFO, (sa), (x), __VA_ARGS__)
#define ELOG_MSG(sa, x, ...) engine_log (G_LOG_LEVEL_MESSAGE, (sa), (x), __VA_ARGS__)
const char *engine_exchange_name (guint8 type);
const char *engine_notify_name (guint16 type);
const char *engine_payload_name (guint8 type);

/* ---- the engine (ike.c; the SA lifecycle: sa.c) ---- */
const ModikeIkeStats *modike_ike_get_stats (ModikeIke *ike); /* tests */
/* Asserts the per-address half-open counts sum to ike->half_open and match
 * the SAs marked half-open; returns that count (tests). */
guint modike_ike_half_open_check (ModikeIke *ike);
void engine_enter (ModikeIke *ike);
void engine_leave (ModikeIke *ike);   /* frees what died when depth reaches 0 */
guint engine_timer_add (ModikeIke *ike, guint ms, GSourceFunc fn, gpointer data);
/* A one-shot timer callback's own work; engine_timer_fire runs it inside
 * the engine after clearing the timer's id, and returns G_SOURCE_REMOVE. */
typedef void (*EngineTimerWork) (gpointer data);
gboolean engine_timer_fire (ModikeIke *ike, guint *id, EngineTimerWork work, gpointer data);
void engine_timer_cancel (ModikeIke *ike, guint *id);
guint engine_ms_from_s (guint64 s);
const ModikePeerConfig *engine_find_peer (ModikeIke *ike, const ModikeAddr *local, const ModikeAddr *remote,
                                          guint8 exchange, const ModikeIdPayload *peer_id);
/* The SAs of one peer (sa.c): every SA of a configured peer with a remote
 * address (by name), or those of one client of a responder-only entry (by
 * its authenticated identity; docs/design.md). engine_peer_sas: the live
 * SAs of the configured peer named peer (borrowed, NULL if none), never
 * the clients of a responder-only entry. */
GPtrArray *engine_peer_sas (ModikeIke *ike, const char *peer);
/* The live SAs of sa's peer, sa included (a new array). */
GPtrArray *engine_sa_peer_sas (ModikeIkeSa *sa);
/* Among sas, the established SA to use: not being replaced, else the newest. */
ModikeIkeSa *engine_best_established (GPtrArray *sas, const ModikeIkeSa *except);
gboolean engine_sa_is_first_with_peer (ModikeIkeSa *sa);
void engine_p1_established (ModikeIkeSa *sa);
void engine_sa_fail (ModikeIkeSa *sa, const GError *error);
/* engine_sa_fail for a timeout: a half-open responder SA's goes into the
 * summary of expiries (halfopen.c) with its own line at info only. */
void engine_sa_expire (ModikeIkeSa *sa, const GError *error);
void engine_sa_delete (ModikeIkeSa *sa, gboolean send_delete);
void engine_sa_initial_contact (ModikeIkeSa *sa);
/* A client of a responder-only entry that its auth method authenticates
 * after phase 1 (XAuth) joins its own SAs (INITIAL-CONTACT, phase 1
 * rekeying) only then: called by modike_ike_sa_auth_done. */
void engine_sa_join (ModikeIkeSa *sa);
gboolean engine_start_qm (ModikeIkeSa *sa, guint32 spd_id, guint32 rekey_spi, GError **error);
void engine_p2_failed (ModikeIkeSa *sa, const GError *error);
void engine_emit_failure (ModikeIkeSa *sa, ModikeEventType ev, const GError *error);
void engine_p2_up (ModikeIkeSa *sa, EngineChild *child);
guint32 engine_alloc_msgid (ModikeIkeSa *sa);
/* Starts phase 1 with a configured peer as initiator. */
ModikeIkeSa *engine_start_p1 (ModikeIke *ike, const ModikePeerConfig *peer, GError **error);
/* The same with another local address (NULL: the peer's), identity (type
 * 0: the peer's) and, when own, a bucket of its own (modike_ike_initiate_as). */
ModikeIkeSa *engine_start_p1_as (ModikeIke *ike, const ModikePeerConfig *peer, const ModikeAddr *local_as,
                                 guint8 id_type, const char *id, gboolean own, GError **error);

/* ---- half-open responder SAs (halfopen.c) ---- */
void engine_half_open_init (ModikeIke *ike);
void engine_half_open_free (ModikeIke *ike);
/* The limits of cfg (<daemon><limits>), defaults for 0 or no config. */
guint engine_half_open_max (const ModikeConfig *cfg);
guint engine_half_open_per_addr (const ModikeConfig *cfg);
/* A first message from remote may create a responder SA; else it is
 * counted and summarised in the log, and FALSE. Allocates nothing per drop. */
gboolean engine_half_open_admit (ModikeIke *ike, const ModikeAddr *remote, guint8 exchange);
/* A first message from remote matched no peer config: dropped, counted,
 * summarised in the log like the limits' drops. */
void engine_half_open_no_peer (ModikeIke *ike, const ModikeAddr *remote, guint8 exchange);
/* sa (a new responder SA) counts as half-open; leave: it no longer does
 * (established or gone; a no-op when it did not count). */
void engine_half_open_enter (ModikeIkeSa *sa);
void engine_half_open_leave (ModikeIkeSa *sa);
/* sa timed out half-open (why): counted and summarised, before it leaves. */
void engine_half_open_expired (ModikeIkeSa *sa, const GError *why);

/* ---- IKE SAs and children (sa.c) ---- */
ModikeIkeSa *engine_sa_new (ModikeIke *ike, ModikeRole role, guint8 p1_exchange, const ModikeAddr *local,
                            const ModikeAddr *remote, const ModikePeerConfig *peer);
void engine_sa_free (ModikeIkeSa *sa);
/* The SA's exchanges by message ID (the table exists only while any do). */
void engine_sa_exchanges_add (ModikeIkeSa *sa, ModikeExchange *x);
void engine_sa_exchanges_steal (ModikeIkeSa *sa, ModikeExchange *x); /* no-op unless filed */
ModikeExchange *engine_sa_exchange (const ModikeIkeSa *sa, guint32 msgid);
/* A finished exchange is freed: its message ID is remembered (the last
 * ENGINE_DONE_IDS of them) so that copies of its messages stay duplicates. */
void engine_sa_remember_done (ModikeIkeSa *sa, guint32 msgid);
gboolean engine_sa_was_done (const ModikeIkeSa *sa, guint32 msgid);
void engine_sa_apply_float (ModikeIkeSa *sa);
/* Cancels the plugins' timers on the SA (it dies). */
void engine_sa_timers_clear (ModikeIkeSa *sa);
void engine_sa_set_peer (ModikeIkeSa *sa, const ModikePeerConfig *peer);
/* The half-open timeout of a phase 1 that is not established yet. */
void engine_sa_arm_half_open (ModikeIkeSa *sa);
/* A child of sa, or of its successor when phase 1 was rekeyed meanwhile. */
EngineChild *engine_child_new (ModikeIkeSa *sa);
void engine_child_free (EngineChild *c);
void engine_child_arm_timers (EngineChild *c);
/* Removes the child's SAD entries, emits P2_DOWN, optionally sends DELETE,
 * and frees it. */
void engine_child_remove (EngineChild *c, gboolean send_delete);
/* sa's child (up) with that SPI: engine_find_child limited to sa. */
EngineChild *engine_child_find_spi (ModikeIkeSa *sa, guint32 spi, gboolean outbound);
/* Every child of from moves to to (phase 1 rekeying), in time linear in their number. */
void engine_children_move (ModikeIkeSa *from, ModikeIkeSa *to);

/* ---- what exchanges in flight hold: SPIs, policies (inflight.c) ---- */
void engine_inflight_init (ModikeIke *ike);
void engine_inflight_free (ModikeIke *ike);
/* Reserved by an exchange in flight or held by an inbound SAD entry. */
gboolean engine_spi_in_use (ModikeIke *ike, guint32 spi);
/* The exchange that reserved inbound spi, or NULL. */
ModikeExchange *engine_spi_owner (ModikeIke *ike, guint32 spi);
/* A live exchange (of a live SA with that peer) negotiates for the policy;
 * with initiator_only, one we started. */
gboolean engine_policy_negotiating (ModikeIke *ike, guint32 spd_id, const char *peer, gboolean initiator_only);
/* Policy ids after an SPD change: map holds old id -> new id; an id it
 * lacks (or maps to 0) is gone, unless others_stay: then only the ids it
 * holds change (an instance or two went), the rest stay themselves. */
typedef struct {
  GHashTable *map;
  gboolean others_stay;
} EngineRenumber;
guint32 engine_renumber_id (const EngineRenumber *r, guint32 id);
/* The exchanges' policy tags follow r; a removed policy leaves its
 * exchanges untagged. */
void engine_policy_tags_renumber (ModikeIke *ike, const EngineRenumber *r);
/* Drops x's SPI reservations and policy tag (engine_exchange_free). */
void engine_exchange_release (ModikeExchange *x);

/* ---- exchanges (exchange.c) ---- */
ModikeExchange *engine_exchange_new (ModikeIkeSa *sa, guint8 type, guint32 msgid, ModikeRole role);
void engine_exchange_free (ModikeExchange *x);
/* Unlinks from the SA and frees later. */
void engine_exchange_discard (ModikeExchange *x);
/* Runs the INITIATE row of x's type. */
gboolean engine_exchange_initiate (ModikeExchange *x, GError **error);
/* A message for x (header parsed, maybe encrypted): decrypt, row, digest,
 * handler, claims, verdict. */
void engine_exchange_receive (ModikeExchange *x, ModikeMessage *msg, gboolean new_exchange);
/* Fails the exchange (and the SA for phase 1) with error. */
void engine_exchange_fail (ModikeExchange *x, const GError *error);
gboolean engine_exchange_is_replay (ModikeExchange *x, const guint8 *data, gsize len);
guint8 *engine_exchange_iv (ModikeExchange *x);
/* Header + (encrypted) chain; iv is updated when encrypting. */
GBytes *engine_build_packet (ModikeIkeSa *sa, guint8 exchange, guint32 msgid, ModikeBuilder *b, guint8 *iv,
                             GError **error);
GBytes *engine_decrypt (ModikeIkeSa *sa, const ModikeMessage *msg, guint8 *iv, GError **error);
/* Sends to the SA's peer; may_float: a phase 1 message past the float point or any later one. */
void engine_transmit (ModikeIkeSa *sa, GBytes *packet, gboolean may_float);
/* The same for a resend: attempt 1, 2, ... (the transmit hook sees it). */
void engine_transmit_attempt (ModikeIkeSa *sa, GBytes *packet, gboolean may_float, guint attempt);
/* Chain bytes after payload `index` up to the end of the last payload. */
gboolean engine_message_rest (const ModikeMessage *msg, guint index, const guint8 **data, gsize *len);
/* Like engine_build_packet, with HASH = prf(SKEYID_a, M-ID | extra | chain
 * of b) in front: MODIKE_ROW_HASH messages, Informational HASH(1), Quick
 * Mode HASH(1) (extra NULL) and HASH(2) (extra Ni_b). */
GBytes *engine_build_hashed_packet (ModikeIkeSa *sa, guint8 exchange, guint32 msgid, ModikeBuilder *b, GBytes *extra,
                                    guint8 *iv, GError **error);
/* modike_exchange_send of an encrypted message with that HASH in front. */
gboolean engine_exchange_send_hashed (ModikeExchange *x, ModikeBuilder *b, GBytes *extra, GError **error);
/* Runs the row of a Quick Mode parked at the phase-2 gate. */
void engine_exchange_run_parked (ModikeExchange *x);
/* prf(SKEYID_a, [0 |] M-ID | extra | rest) as QM/Informational HASHes use it. */
void engine_hash_a (ModikeIkeSa *sa, gboolean zero, guint32 msgid, GBytes *extra, const guint8 *rest, gsize rest_len,
                    guint8 *out);

/* ---- the row check (digest.c) ---- */
/* TRUE when msg fits the row plus the claims at its point; else an error
 * naming the reason and *notify the notify type to report. */
gboolean engine_digest (const ModikeRegistry *reg, const ModikeFsmRow *row, const ModikeMessage *msg,
                        guint16 *notify, GError **error);

/* ---- proposals (proposal.c) ---- */
ModikeSaPayload *proposal_p1_offer (const ModikePeerConfig *peer, gboolean one_group, guint16 *group);
/* Responder: the first of the peer's transforms matching one of ours. */
gboolean proposal_p1_select (const ModikeSaPayload *offer, const ModikePeerConfig *peer, guint16 need_group,
                             EngineP1Choice *out, ModikeSaPayload **reply, GError **error);
/* Initiator: the responder's single transform must be one we offered. */
gboolean proposal_p1_check_reply (const ModikeSaPayload *reply, const ModikePeerConfig *peer, EngineP1Choice *out,
                                  GError **error);
guint16 engine_p1_auth (const ModikePeerConfig *peer);
ModikeSaPayload *proposal_p2_offer (ModikeIkeSa *sa, const ModikeSpdEntry *policy, guint32 spi, guint64 *life_s);
gboolean proposal_p2_select (ModikeIkeSa *sa, const ModikeSaPayload *offer, const ModikeSpdEntry *policy,
                             EngineP2Choice *out, guint32 *peer_spi, ModikeSaPayload **reply, guint32 our_spi,
                             GError **error);
gboolean proposal_p2_check_reply (ModikeIkeSa *sa, const ModikeSaPayload *reply, const ModikeSpdEntry *policy,
                                  EngineP2Choice *out, guint32 *peer_spi, GError **error);
gsize engine_esp_enc_key_len (guint16 esp_transform, guint16 key_bits);
gsize engine_esp_auth_key_len (guint16 auth_alg);
guint16 engine_esp_key_bits (guint16 esp_transform, guint16 key_bits);
const char *engine_esp_name (guint16 esp_transform, guint16 key_bits, char *buf, gsize len);
const char *engine_auth_alg_name (guint16 auth_alg);
/* LIFE_TYPE/LIFE_DURATION pairs (phase 1 and 2 number them differently);
 * a zero lifetime is left out. */
void engine_attrs_add_lifetimes (GArray *attrs, guint16 type_attr, guint16 dur_attr, guint64 seconds, guint64 kbytes);

/* ---- phase 1 helpers shared by Main and Aggressive Mode (phase1.c) ---- */
GBytes *p1_local_id (ModikeIkeSa *sa, GError **error);
gboolean p1_id_matches (const ModikePeerConfig *peer, const ModikeIdPayload *id);
gboolean p1_check_remote_id (ModikeIkeSa *sa, const ModikePayload *id, GError **error);
void p1_add_vendor_ids (ModikeExchange *x, ModikeBuilder *b);
void p1_process_vendor_ids (ModikeIkeSa *sa, const ModikeMessage *msg);
gboolean p1_take_ke_nonce (ModikeExchange *x, const ModikeMessage *msg, GError **error);
void p1_hash (ModikeIkeSa *sa, gboolean of_initiator, guint8 *out);
gboolean p1_verify_hash (ModikeExchange *x, gboolean of_initiator, const ModikePayload *hash, GError **error);
void p1_process_notifies (ModikeExchange *x, const ModikeMessage *msg);
void p1_maybe_initial_contact (ModikeIkeSa *sa, ModikeBuilder *b);
/* Initiator: checks the responder's SA reply and takes its cookie. */
gboolean p1_take_reply_sa (ModikeExchange *x, const ModikeMessage *msg, GError **error);
/* Initiator: our offer as the SA payload (kept as SAi_b); one_group for
 * Aggressive Mode, whose KE fixes the group (then sa->choice.group). */
gboolean p1_add_offer (ModikeExchange *x, ModikeBuilder *b, gboolean one_group, GError **error);
/* Responder: chooses from the initiator's SA payload (kept as SAi_b) and
 * adds the reply SA payload. */
gboolean p1_choose (ModikeExchange *x, const ModikeMessage *msg, ModikeBuilder *b, GError **error);
/* Our ID payload (kept as IDii_b or IDir_b by our role). */
gboolean p1_add_local_id (ModikeIkeSa *sa, ModikeBuilder *b, GError **error);
/* With RSA signatures: a CR per trust anchor (an empty one without). */
void p1_add_cert_request (ModikeIkeSa *sa, ModikeBuilder *b);
/* Phase 1 is up: frees what only its hashes and key derivation needed. */
void p1_forget_handshake (ModikeIkeSa *sa);
/* Phase 1 Diffie-Hellman on a crypto worker (engine_dh_offload); returns
 * SUSPEND. keygen: a key pair of ours (else the SA's from before);
 * compute: g^xy with the peer's KE taken. `then` starts with
 * p1_take_dh. */
ModikeVerdict p1_key_exchange (ModikeExchange *x, const ModikeMessage *msg, ModikeBuilder *b, gboolean keygen,
                               gboolean compute, EngineDhThen then, GError **error);
/* The job's results into the SA: our KE and a nonce into j->b, the key
 * pair kept, the keys derived; failures are INVALID_KEY_INFORMATION. */
gboolean p1_take_dh (ModikeExchange *x, EngineDhJob *j, GError **error);
/* Phase 1 authentication, RSA on a crypto worker: with P1_AUTH_PEER the
 * peer's ID (P1_AUTH_CHECK_ID) and HASH, or certificate and SIG, then its
 * notifies; with b (taken) our ID (P1_AUTH_ADD_ID) and our HASH_I/HASH_R,
 * or CERTs and SIG. `then` goes on with b; SUSPEND while a worker signs
 * or verifies, else then's verdict. */
enum { P1_AUTH_PEER = 1 << 0, P1_AUTH_CHECK_ID = 1 << 1, P1_AUTH_ADD_ID = 1 << 2 };
typedef ModikeVerdict (*P1AuthThen) (ModikeExchange *x, const ModikeMessage *msg, ModikeBuilder *b, GError **error);
ModikeVerdict p1_auth (ModikeExchange *x, const ModikeMessage *msg, ModikeBuilder *b, guint flags, P1AuthThen then,
                       GError **error);
ModikeVerdict p1_auth_ok (ModikeExchange *x, const ModikeMessage *msg, ModikeBuilder *b, GError **error); /* a `then`: OK */

/* Handlers (exchange-*.c), referenced by fsm-table.c. */
ModikeVerdict mm_initiate (ModikeExchange *x, const ModikeMessage *msg, GError **error);
ModikeVerdict mm_r1 (ModikeExchange *x, const ModikeMessage *msg, GError **error);
ModikeVerdict mm_i2 (ModikeExchange *x, const ModikeMessage *msg, GError **error);
ModikeVerdict mm_r3 (ModikeExchange *x, const ModikeMessage *msg, GError **error);
ModikeVerdict mm_i4 (ModikeExchange *x, const ModikeMessage *msg, GError **error);
ModikeVerdict mm_r5 (ModikeExchange *x, const ModikeMessage *msg, GError **error);
ModikeVerdict mm_i6 (ModikeExchange *x, const ModikeMessage *msg, GError **error);
ModikeVerdict am_initiate (ModikeExchange *x, const ModikeMessage *msg, GError **error);
ModikeVerdict am_r1 (ModikeExchange *x, const ModikeMessage *msg, GError **error);
ModikeVerdict am_i2 (ModikeExchange *x, const ModikeMessage *msg, GError **error);
ModikeVerdict am_r3 (ModikeExchange *x, const ModikeMessage *msg, GError **error);
ModikeVerdict qm_initiate (ModikeExchange *x, const ModikeMessage *msg, GError **error);
ModikeVerdict qm_r1 (ModikeExchange *x, const ModikeMessage *msg, GError **error);
ModikeVerdict qm_i2 (ModikeExchange *x, const ModikeMessage *msg, GError **error);
ModikeVerdict qm_r3 (ModikeExchange *x, const ModikeMessage *msg, GError **error);
ModikeVerdict info_r1 (ModikeExchange *x, const ModikeMessage *msg, GError **error);
/* exchange-transaction.c: the shared transaction exchange (type 6). */
ModikeVerdict txn_initiate (ModikeExchange *x, const ModikeMessage *msg, GError **error);
ModikeVerdict txn_r1 (ModikeExchange *x, const ModikeMessage *msg, GError **error);
ModikeVerdict txn_i2 (ModikeExchange *x, const ModikeMessage *msg, GError **error);

/* ---- Quick Mode (exchange-quick.c) ---- */
typedef struct _QmData QmData;
QmData *qm_data_new (guint32 rekey_spi);
void qm_data_free (QmData *qm);
ModikeIdPayload *qm_id_from_range (const ModikeAddrRange *r, guint8 proto, const ModikePortRange *ports);
gboolean qm_range_from_id (const ModikeIdPayload *id, ModikeAddrRange *r, guint8 *proto, ModikePortRange *ports,
                           GError **error);

/* ---- Informational (exchange-info.c) ---- */
/* One N or D payload in its own Informational: encrypted with HASH(1) when
 * the SA is established, plain otherwise. */
gboolean engine_send_info (ModikeIkeSa *sa, guint8 type, GByteArray *body /* taken */, GError **error);
void engine_send_notify (ModikeIkeSa *sa, guint16 type, guint8 protocol, const guint8 *spi, gsize spi_len);
void engine_send_delete (ModikeIkeSa *sa, guint8 protocol, const guint8 *spi, gsize spi_len);
/* Notify dispatch: in-exchange notifies and Informational ones. */
void engine_handle_notify (ModikeIkeSa *sa, const ModikeNotifyPayload *n, gboolean authenticated);
/* A plain Informational during phase 1 (strongSwan's NO_PROPOSAL_CHOSEN). */
void engine_plain_info (ModikeIkeSa *sa, ModikeMessage *msg);

/* ---- shared by the core exchanges (exchange-common.c) ---- */
/* Sets the notify to send on FAIL and *error unless it is set already (the
 * first cause wins): "peer P: [Quick Mode: |Informational: ]text". Returns
 * MODIKE_V_FAIL. */
ModikeVerdict engine_fail (ModikeExchange *x, guint16 notify, ModikeIkeError code, GError **error, const char *fmt, ...)
  G_GNUC_PRINTF (5, 6);
ModikeVerdict engine_failv (ModikeExchange *x, guint16 notify, ModikeIkeError code, GError **error, const char *fmt,
                            va_list ap) G_GNUC_PRINTF (5, 0);
GBytes *engine_payload_bytes (const ModikePayload *p);      /* a copy of the body */
GBytes *engine_sa_bytes (const ModikeSaPayload *sap);       /* encoded body */
GBytes *engine_id_bytes (const ModikeIdPayload *id);        /* encoded body */
guint engine_builder_add_bytes (ModikeBuilder *b, guint8 type, GBytes *body);
void engine_spi_bytes (guint32 spi, guint8 out[4]);        /* network order */
guint32 engine_spi_value (const guint8 spi[4]);
/* A notify body; protocol 0 or spi NULL: about the ISAKMP SA (SPI = cookies). */
GByteArray *engine_notify_body (ModikeIkeSa *sa, guint16 type, guint8 protocol, const guint8 *spi, gsize spi_len,
                                const guint8 *data, gsize data_len);
/* The message's index-th notify as the chain parser decoded it (borrowed
 * from msg), NULL past the last: for (i = 0; (n = engine_msg_notify (msg, i)); i++). */
const ModikeNotifyPayload *engine_msg_notify (const ModikeMessage *msg, guint index);
/* The message's SA payload, decoded (borrowed); only for rows that require one. */
const ModikeSaPayload *engine_msg_sa (const ModikeMessage *msg);
/* Runs the builders of message msg_no on b and sends it: the handler's verdict. */
ModikeVerdict engine_send_msg (ModikeExchange *x, guint8 msg_no, ModikeBuilder *b, gboolean encrypt, GError **error);
/* Constant-time check of a received HASH (NULL: missing) against want, which
 * is wiped; a mismatch counts as an authentication failure. */
gboolean engine_hash_matches (ModikeIkeSa *sa, const ModikePayload *hash, guint8 *want);
/* HASHes keyed with SKEYID_a: prf(SKEYID_a, [0 |] M-ID | extra | tail).
 * HASH(1)/(2) in front of a message: engine_build_hashed_packet. This one
 * is appended over a given tail (Quick Mode HASH(3): 0 | M-ID | Ni_b | Nr_b). */
void engine_add_hash (ModikeIkeSa *sa, guint32 msgid, ModikeBuilder *b, gboolean zero, GBytes *extra, GBytes *tail);
/* Checks msg's first payload over `tail`, or with tail NULL the rest of msg.
 * On failure x gets no notify (the message proves nothing), *error says why. */
gboolean engine_verify_hash (ModikeExchange *x, const ModikeMessage *msg, gboolean zero, GBytes *extra, GBytes *tail,
                             GError **error);

/* ---- the phase-2 gate (phase2-gate.c) ---- */
#define ENGINE_GATE_MAX_WAITING 8    /* Quick Modes waiting per held SA (phase2.hold-queue) */
#define ENGINE_GATE_WAIT_S 30        /* longest wait of one (phase2.hold-timeout) */
gboolean engine_gate_held (const ModikeIkeSa *sa);
/* Queues a Quick Mode we would start; FALSE with an error when full. */
gboolean engine_gate_queue_qm (ModikeIkeSa *sa, guint32 spd_id, guint32 rekey_spi, GError **error);
/* A peer's Quick Mode whose first message is parked on a held SA: FALSE
 * with an error when full. */
gboolean engine_gate_add_peer (ModikeExchange *x, GError **error);
gboolean engine_gate_waits_for (const ModikeIkeSa *sa, guint32 spd_id);
/* Config reload: the policies of our waiting Quick Modes get their new
 * ids (renumber: old id -> new id); one whose policy is gone is dropped. */
void engine_gate_renumber (ModikeIkeSa *sa, const EngineRenumber *r);
/* Appends the policies of our waiting Quick Modes to out (guint32). */
void engine_gate_policies (const ModikeIkeSa *sa, GArray *out);
guint engine_gate_n_waiting (const ModikeIkeSa *sa);
void engine_gate_free (ModikeIkeSa *sa);
/* Empties the gate's queue: with error, our queued Quick Modes fail with
 * it (and, with fail_parked, the peer's parked ones too); without, they
 * go silently (a restart carries their policies). */
void engine_gate_drop_waiting (ModikeIkeSa *sa, const GError *error, gboolean fail_parked);

/* ---- status (status.c) ---- */
const char *engine_sa_state_name (const ModikeIkeSa *sa);

/* ---- datapath glue (datapath-host.c) ---- */
/* Starts the registered datapath once, with a SAD watcher forwarding
 * every add and remove; no-op without a datapath plugin. */
gboolean engine_dp_start (ModikeIke *ike, GError **error);
/* Copies of the SPD entries to the datapath (start and every reload). */
void engine_dp_policies_set (ModikeIke *ike);
/* Some policies left the SPD (removed: their ids) and some entered it
 * (added: ids now in the SPD): one at a time where the datapath takes
 * that (policy_add/_del), else the whole SPD. Either may be NULL. */
void engine_dp_policies_update (ModikeIke *ike, const GArray *removed, const GArray *added);
/* Stops the datapath; host calls still queued or made meanwhile are dropped. */
void engine_dp_stop (ModikeIke *ike);
const ModikeDatapathOps *engine_dp_ops (ModikeIke *ike, gpointer *user); /* NULL unless started */
/* TRUE when the datapath refused one of the two SAs (sa_add failed). */
gboolean engine_dp_refused (ModikeIke *ike, const EngineChild *c);
/* Deletes children marked dp_failed, from a timer (after the current
 * exchange sent its last message). */
void engine_dp_schedule_reap (ModikeIke *ike);
/* Counters of a child pair; FALSE without a datapath. */
gboolean engine_dp_child_stats (ModikeIke *ike, const EngineChild *c, ModikeSaStats *in, ModikeSaStats *out);
/* When the datapath last processed a packet on the child's inbound SA (0: never, no datapath). */
gint64 engine_dp_child_last (ModikeIke *ike, const EngineChild *c, ModikeDirection dir);
/* The core's SAD entry e (outer addresses, encapsulation ports) changed:
 * the datapath's copy follows (sa_move, ABI 1.4). */
void engine_dp_sa_move (ModikeIke *ike, const ModikeSadEntry *e);
/* The peer of sa (behind a NAT) now speaks from remote: the SA and its ESP
 * SAs follow (sa.c). Only for authenticated messages. */
void engine_sa_move_remote (ModikeIkeSa *sa, const ModikeAddr *remote);

/* ---- host calls, run on the main loop (ike.c, sa.c) ---- */
void engine_acquire (ModikeIke *ike, guint32 spd_id, const ModikeSelector *sel);
void engine_expire (ModikeIke *ike, ModikeDirection dir, guint32 spi, guint32 reqid, gboolean hard);
/* Starts the replacement of a child now (timer-driven rekey and soft
 * expiry); FALSE with error when no established IKE SA can carry it. */
gboolean engine_child_rekey (EngineChild *c, GError **error);
/* The child (not yet replaced or replaced) owning the SA (IN, spi) or
 * (OUT, spi, reqid) (reqid ignored inbound), or NULL. */
EngineChild *engine_find_child (ModikeIke *ike, ModikeDirection dir, guint32 spi, guint32 reqid);

/* ---- virtual adapters (adapter.c) ---- */
/* Before a config is applied: every peer with <adapter> needs an OS
 * adapter and a datapath plugin; removed or changed adapters go, new ones
 * are created, addressed, routed and attached. On error nothing of the
 * new config is left behind. */
gboolean engine_adapters_prepare (ModikeIke *ike, const ModikeConfig *cfg, GError **error);
/* After the SPD changed: routes of kept adapters follow the policies. */
void engine_adapters_sync_routes (ModikeIke *ike, const ModikeConfig *cfg);
void engine_adapters_destroy_all (ModikeIke *ike);
/* The minimal set of prefixes covering r minus `except` (NULL = none);
 * family 0 (any) covers both families. A new GArray of ModikePrefix. */
GArray *engine_range_to_prefixes (const ModikeAddrRange *r, const ModikeAddr *except);
/* The SA is gone (deleted, expired, failed): its result (sa-result.h)
 * moves to an established SA with the same peer (for a client of a
 * responder-only entry: of that client), else it is taken down. Called
 * while sa is dead but still filed under its peer key. */
void engine_adapters_sa_gone (ModikeIkeSa *sa);

/* A plugin's result (sa-result.h); adapter.c applies it, instances.c
 * makes the templates' instances from it. */
struct _ModikeSaResult {
  ModikePrefix addr4, addr6;  /* family 0 = none */
  GArray *routes;             /* ModikePrefix: split include */
  GArray *dns;                /* ModikeAddr */
  GPtrArray *domains;         /* char* */
  GArray *excludes;           /* ModikePrefix: split exclude (ABI 1.3) */
};
/* The result applied for peer now and the SA it belongs to; NULL if none. */
const ModikeSaResult *engine_adapter_result (ModikeIke *ike, const char *peer, ModikeIkeSa **sa);

/* ---- policy templates and their instances (instances.c) ---- */
typedef struct {
  guint32 spd_id;
  const ModikeSpdEntry *entry; /* the SPD's, borrowed: only instances.c and a reload change those */
  char *name;                 /* the entry's: "<template>@<remote>" or "<template>!<excluded net>" */
  ModikeIkeSa *sa;            /* the SA whose result or peer address made it (moves to a successor) */
  gboolean gateway;           /* a remote="virtual" template's: filed in sa->instances, not ike->instances */
} EngineInstance;

void engine_instances_init (ModikeIke *ike);
void engine_instances_free (ModikeIke *ike);
/* SPD priority of config policy `index`: a template's instances take its
 * place, its split-exclude BYPASS ones ahead of its PROTECT ones. */
guint engine_policy_priority (guint index, gboolean protect_instance);
/* Makes the SPD's instances match the results of the live SAs (client:
 * local="virtual" templates): new ones added, stale ones removed with their
 * children and the Quick Modes started or held for them; then the
 * datapath's policies and the adapters' routes follow. */
void engine_instances_sync (ModikeIke *ike);
/* The same for the gateway's instances of sa's client only (its peer
 * addresses, its SAs): O(the client's SAs) at any number of clients. */
void engine_instances_sync_client (ModikeIkeSa *sa);
/* sa is freed: its instances and peer addresses leave the indexes. */
void engine_instances_sa_free (ModikeIkeSa *sa);
/* A gateway instance e came (add) or went: the routes of its peer's
 * adapter follow, O(e's prefixes); without apply only the count changes
 * (a reload syncs the routes after). */
void engine_adapters_instance_routes (ModikeIke *ike, const ModikeSpdEntry *e, gboolean add, gboolean apply);
/* Every gateway instance is about to be made anew (a reload). */
void engine_adapters_instances_reset (ModikeIke *ike);
/* The SPD was rebuilt from a new config: every instance is made anew
 * (set_config pushes policies and routes itself). */
void engine_instances_rebuild (ModikeIke *ike);
/* The instance with that SPD id, or NULL for an ordinary entry. */
const EngineInstance *engine_instance_find (ModikeIke *ike, guint32 spd_id);
/* FALSE if spd_id is an instance of another client than sa's. */
gboolean engine_instance_usable (ModikeIkeSa *sa, guint32 spd_id);
/* The established SA to negotiate an instance's children on (its owner's
 * current one), NULL if none. */
ModikeIkeSa *engine_instance_sa (const EngineInstance *inst);
/* sa goes: its peer addresses move to its successor (same client), then sync. */
void engine_instances_sa_gone (ModikeIkeSa *sa);
/* Appends the "  POLICY ..." status lines of sa's instances (status.c). */
void engine_instances_status (const ModikeIkeSa *sa, GString *s);
/* Logs the result's routes no local="virtual" template of the peer protects. */
void engine_instances_check_result (ModikeIkeSa *sa, const ModikeSaResult *r);
/* Policies may have gone from the SPD: Quick Modes pending, held at the
 * gate or running (of sas, NULL: of every SA) follow r. */
void engine_policies_renumber (ModikeIke *ike, const EngineRenumber *r, GPtrArray *sas);

/* ---- plugin auth methods (auth-method.c) ---- */
/* Phase 1 is up: the owner of a plugin method hears of it. */
void engine_auth_established (ModikeIkeSa *sa);
/* FALSE (NO_PROPOSAL_CHOSEN, without the peer's name) when phase 1 cannot
 * run the peer's method in the SA's role (unresolved; RSA based without a
 * certificate; hybrid with this end on the wrong side). */
gboolean engine_auth_usable (const ModikeIkeSa *sa, GError **error);
/* Whether this end (local) or the peer proves itself with CERT and SIG
 * rather than HASH: RSA signatures, and the gateway of a hybrid method. */
gboolean engine_auth_signs (const ModikeIkeSa *sa, gboolean local);
/* An ID payload as text for messages and modike_ike_sa_get_user (a DN as
 * its string form). */
char *engine_id_text (const ModikeIdPayload *id);
/* The negotiated method has a step after phase 1 (XAuth) not yet done. */
gboolean engine_auth_pending (const ModikeIkeSa *sa);

G_END_DECLS
