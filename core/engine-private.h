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
#define ENGINE_MAX_HALF_OPEN 1024     /* responder SAs still in phase 1 */

/* States, private to their exchange type (0 = none). */
enum { MM_I1 = 1, MM_R2, MM_I3, MM_R4, MM_I5, MM_DONE };
enum { AM_I1 = 1, AM_R2, AM_DONE };
enum { QM_I1 = 1, QM_R2, QM_DONE };
enum { INFO_DONE = 1 };

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
} EngineChild;

struct _ModikeIke {
  ModikeEnv env;
  ModikeRegistry *registry;
  ModikeConfig *cfg;          /* borrowed until the next set_config */
  ModikeSpd *spd;
  ModikeSad *sad;
  GPtrArray *sas;             /* ModikeIkeSa*, live ones */
  GHashTable *by_icookie;     /* guint64 key in the SA -> ModikeIkeSa* */
  GPtrArray *dead_sas;        /* freed when the engine returns to the caller */
  GPtrArray *dead_exchanges;
  guint depth;                /* nesting of entry points, for deferred frees */
  ModikeIkeObserver obs;
  gpointer obs_user;
  guint32 next_reqid;
  ModikeIkeStats stats;
};

struct _ModikeIkeSa {
  ModikeIke *ike;
  guint64 icookie_key;        /* icookie as the hash key */
  guint8 icookie[MODIKE_COOKIE_LEN];
  guint8 rcookie[MODIKE_COOKIE_LEN];
  gboolean rcookie_set;
  ModikeRole role;
  guint8 p1_exchange;         /* MODIKE_EX_MAIN or MODIKE_EX_AGGRESSIVE */
  EngineSaState state;
  gboolean dead;
  gboolean rekeyed;           /* a newer SA replaces this one */
  guint32 serial;             /* creation order, for "older SA" decisions */

  ModikeAddr local, remote;   /* current endpoints (ports move on float) */
  guint16 float_port;         /* set by natt; 0 = none */
  gboolean floated;
  gboolean nat_local, nat_remote;

  const ModikePeerConfig *peer; /* borrowed from ike->cfg */
  char *peer_name;

  EngineP1Choice choice;
  gboolean have_keys;
  ModikeP1Keys keys;
  gsize block_len;
  guint8 p1_iv[ENGINE_IV_MAX]; /* phase 1 IV chain; last phase 1 block afterwards */

  /* Inputs of HASH_I/HASH_R and the key derivation. */
  GBytes *sai_b, *ni, *nr, *gxi, *gxr, *idi_b, *idr_b;
  ModikeDh *dh;

  GHashTable *exchanges;      /* msgid -> ModikeExchange* */
  GHashTable *plugin_data;    /* plugin name -> EnginePluginData* */
  GPtrArray *children;        /* EngineChild*, owned */
  GArray *pending_spd;        /* guint32: Quick Modes to start when up */
  gboolean peer_initial_contact;
  guint decrypt_failures;     /* phase 1 messages that decrypted to garbage */

  gint64 created_us, established_us;
  guint half_open_timer, rekey_timer, expire_timer;
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
};

/* ---- logging (ike.c) ---- */
void engine_log (GLogLevelFlags level, const ModikeIkeSa *sa, const ModikeExchange *x, const char *fmt, ...)
  G_GNUC_PRINTF (4, 5);
#define ELOG_DEBUG(sa, x, ...) engine_log (G_LOG_LEVEL_DEBUG, (sa), (x), __VA_ARGS__)
#define ELOG_INFO(sa, x, ...) engine_log (G_LOG_LEVEL_INFO, (sa), (x), __VA_ARGS__)
#define ELOG_MSG(sa, x, ...) engine_log (G_LOG_LEVEL_MESSAGE, (sa), (x), __VA_ARGS__)
const char *engine_exchange_name (guint8 type);
const char *engine_notify_name (guint16 type);
const char *engine_payload_name (guint8 type);

/* ---- the engine (ike.c) ---- */
const ModikeIkeStats *modike_ike_get_stats (ModikeIke *ike); /* tests */
void engine_enter (ModikeIke *ike);
void engine_leave (ModikeIke *ike);   /* frees what died when depth reaches 0 */
guint engine_timer_add (ModikeIke *ike, guint ms, GSourceFunc fn, gpointer data);
void engine_timer_cancel (ModikeIke *ike, guint *id);
guint engine_ms_from_s (guint64 s);
const ModikePeerConfig *engine_find_peer (ModikeIke *ike, const ModikeAddr *local, const ModikeAddr *remote,
                                          guint8 exchange, const ModikeIdPayload *peer_id);
ModikeIkeSa *engine_find_established (ModikeIke *ike, const char *peer, const ModikeIkeSa *except);
gboolean engine_sa_is_first_with_peer (ModikeIkeSa *sa);
void engine_p1_established (ModikeIkeSa *sa);
void engine_sa_fail (ModikeIkeSa *sa, const GError *error);
void engine_sa_delete (ModikeIkeSa *sa, gboolean send_delete);
void engine_sa_initial_contact (ModikeIkeSa *sa);
gboolean engine_start_qm (ModikeIkeSa *sa, guint32 spd_id, guint32 rekey_spi, GError **error);
void engine_p2_failed (ModikeIkeSa *sa, const GError *error);
void engine_p2_up (ModikeIkeSa *sa, EngineChild *child);
guint32 engine_alloc_spi (ModikeIke *ike);
guint32 engine_alloc_msgid (ModikeIkeSa *sa);

/* ---- IKE SAs and children (sa.c) ---- */
ModikeIkeSa *engine_sa_new (ModikeIke *ike, ModikeRole role, guint8 p1_exchange, const ModikeAddr *local,
                            const ModikeAddr *remote, const ModikePeerConfig *peer);
void engine_sa_free (ModikeIkeSa *sa);
void engine_sa_apply_float (ModikeIkeSa *sa);
void engine_sa_set_peer (ModikeIkeSa *sa, const ModikePeerConfig *peer);
EngineChild *engine_child_new (ModikeIkeSa *sa);
void engine_child_free (EngineChild *c);
void engine_child_arm_timers (EngineChild *c);
/* Removes the child's SAD entries, emits P2_DOWN, optionally sends DELETE,
 * and frees it. */
void engine_child_remove (EngineChild *c, gboolean send_delete);
EngineChild *engine_child_find_spi (ModikeIkeSa *sa, guint32 spi, gboolean outbound);
void engine_child_move (EngineChild *c, ModikeIkeSa *to);

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
/* Chain bytes after payload `index` up to the end of the last payload. */
gboolean engine_message_rest (const ModikeMessage *msg, guint index, const guint8 **data, gsize *len);
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

/* ---- phase 1 helpers shared by Main and Aggressive Mode (exchange-main.c) ---- */
GBytes *p1_local_id (ModikeIkeSa *sa, GError **error);
gboolean p1_id_matches (const ModikePeerConfig *peer, const guint8 *body, gsize len);
gboolean p1_check_remote_id (ModikeIkeSa *sa, const ModikePayload *id, GError **error);
void p1_add_vendor_ids (ModikeExchange *x, ModikeBuilder *b);
void p1_process_vendor_ids (ModikeIkeSa *sa, const ModikeMessage *msg);
gboolean p1_add_ke_nonce (ModikeIkeSa *sa, ModikeBuilder *b, GError **error);
gboolean p1_take_ke_nonce (ModikeExchange *x, const ModikeMessage *msg, GError **error);
gboolean p1_derive_keys (ModikeIkeSa *sa, GError **error);
void p1_hash (ModikeIkeSa *sa, gboolean of_initiator, guint8 *out);
gboolean p1_verify_hash (ModikeExchange *x, gboolean of_initiator, const ModikePayload *hash, GError **error);
gboolean p1_add_id_hash (ModikeExchange *x, ModikeBuilder *b, GError **error);
void p1_process_notifies (ModikeExchange *x, const ModikeMessage *msg);
void p1_maybe_initial_contact (ModikeIkeSa *sa, ModikeBuilder *b);
/* Initiator: checks the responder's SA reply and takes its cookie. */
gboolean p1_take_reply_sa (ModikeExchange *x, const ModikeMessage *msg, GError **error);
ModikeVerdict p1_fail (ModikeExchange *x, guint16 notify, ModikeIkeError code, GError **error, const char *fmt, ...)
  G_GNUC_PRINTF (5, 6);

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

/* ---- Quick Mode (exchange-quick.c) ---- */
typedef struct _QmData QmData;
QmData *qm_data_new (guint32 spd_id, guint32 rekey_spi);
void qm_data_free (QmData *qm);
guint32 qm_data_spi (const ModikeExchange *x); /* our SPI, 0 if none */
guint32 qm_data_spd_id (const ModikeExchange *x);
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

/* ---- status (status.c) ---- */
const char *engine_sa_state_name (const ModikeIkeSa *sa);

G_END_DECLS
