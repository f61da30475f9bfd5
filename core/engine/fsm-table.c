/* The state-table rows of the core exchanges (Main, Aggressive, Quick,
 * Informational, Transaction), registered as the "core" pseudo-plugin
 * through the same call plugins use; the transaction exchange's messages
 * go on to plugins (transaction.h). Message numbers count the messages of
 * one exchange from 1; a row is the message this end receives (0 = local
 * start). */
#include "engine-private.h"

/* A constant-expression MODIKE_PB for the core types (all below 48). */
#define PB(t) (G_GUINT64_CONSTANT (1) << (t))
#define T_MS 2000 /* retransmit base when the peer config gives none */
/* The peer's proof in phase 1: HASH, or CERTs and SIG (RSA signatures);
 * strongSwan repeats its CRs next to its CERT. */
#define P1_AUTH (PB (MODIKE_PL_HASH) | PB (MODIKE_PL_SIG) | PB (MODIKE_PL_CERT) | PB (MODIKE_PL_CR))

static const ModikeFsmRow main_rows[] = {
  { "MM_I0", 0, MODIKE_EX_MAIN, 0, MODIKE_ROLE_INITIATOR, MODIKE_ROW_INITIATE,
    0, 0, 0, mm_initiate, MM_I1, T_MS },
  { "MM_R1", 0, MODIKE_EX_MAIN, 1, MODIKE_ROLE_RESPONDER, MODIKE_ROW_START | MODIKE_ROW_PLAIN,
    PB (MODIKE_PL_SA), PB (MODIKE_PL_VID), PB (MODIKE_PL_VID), mm_r1, MM_R2, T_MS },
  { "MM_I2", MM_I1, MODIKE_EX_MAIN, 2, MODIKE_ROLE_INITIATOR, MODIKE_ROW_PLAIN,
    PB (MODIKE_PL_SA), PB (MODIKE_PL_VID), PB (MODIKE_PL_VID), mm_i2, MM_I3, T_MS },
  { "MM_R3", MM_R2, MODIKE_EX_MAIN, 3, MODIKE_ROLE_RESPONDER, MODIKE_ROW_PLAIN,
    PB (MODIKE_PL_KE) | PB (MODIKE_PL_NONCE), PB (MODIKE_PL_VID) | PB (MODIKE_PL_CR),
    PB (MODIKE_PL_VID) | PB (MODIKE_PL_CR), mm_r3, MM_R4, T_MS },
  { "MM_I4", MM_I3, MODIKE_EX_MAIN, 4, MODIKE_ROLE_INITIATOR, MODIKE_ROW_PLAIN,
    PB (MODIKE_PL_KE) | PB (MODIKE_PL_NONCE), PB (MODIKE_PL_VID) | PB (MODIKE_PL_CR),
    PB (MODIKE_PL_VID) | PB (MODIKE_PL_CR), mm_i4, MM_I5, T_MS },
  /* HASH (pre-shared key) or CERTs and SIG (RSA signatures): the handler
   * checks which by the peer's method. */
  { "MM_R5", MM_R4, MODIKE_EX_MAIN, 5, MODIKE_ROLE_RESPONDER,
    MODIKE_ROW_ENCRYPTED | MODIKE_ROW_P1_DONE | MODIKE_ROW_DONE,
    PB (MODIKE_PL_ID), P1_AUTH | PB (MODIKE_PL_N), PB (MODIKE_PL_CERT) | PB (MODIKE_PL_CR) | PB (MODIKE_PL_N), mm_r5, MM_DONE, 0 },
  { "MM_I6", MM_I5, MODIKE_EX_MAIN, 6, MODIKE_ROLE_INITIATOR,
    MODIKE_ROW_ENCRYPTED | MODIKE_ROW_P1_DONE | MODIKE_ROW_DONE,
    PB (MODIKE_PL_ID), P1_AUTH | PB (MODIKE_PL_N), PB (MODIKE_PL_CERT) | PB (MODIKE_PL_CR) | PB (MODIKE_PL_N), mm_i6, MM_DONE, 0 },
};

static const ModikeFsmRow aggressive_rows[] = {
  { "AM_I0", 0, MODIKE_EX_AGGRESSIVE, 0, MODIKE_ROLE_INITIATOR, MODIKE_ROW_INITIATE,
    0, 0, 0, am_initiate, AM_I1, T_MS },
  { "AM_R1", 0, MODIKE_EX_AGGRESSIVE, 1, MODIKE_ROLE_RESPONDER, MODIKE_ROW_START | MODIKE_ROW_PLAIN,
    PB (MODIKE_PL_SA) | PB (MODIKE_PL_KE) | PB (MODIKE_PL_NONCE) | PB (MODIKE_PL_ID),
    PB (MODIKE_PL_VID) | PB (MODIKE_PL_CR), PB (MODIKE_PL_VID) | PB (MODIKE_PL_CR), am_r1, AM_R2, T_MS },
  { "AM_I2", AM_I1, MODIKE_EX_AGGRESSIVE, 2, MODIKE_ROLE_INITIATOR,
    MODIKE_ROW_PLAIN | MODIKE_ROW_P1_DONE | MODIKE_ROW_DONE,
    PB (MODIKE_PL_SA) | PB (MODIKE_PL_KE) | PB (MODIKE_PL_NONCE) | PB (MODIKE_PL_ID),
    P1_AUTH | PB (MODIKE_PL_VID) | PB (MODIKE_PL_N) | PB (MODIKE_PL_CR),
    PB (MODIKE_PL_CERT) | PB (MODIKE_PL_VID) | PB (MODIKE_PL_N) | PB (MODIKE_PL_CR), am_i2, AM_DONE, 0 },
  /* Message 3 is accepted plain or encrypted (RFC 2409 leaves it open). */
  { "AM_R3", AM_R2, MODIKE_EX_AGGRESSIVE, 3, MODIKE_ROLE_RESPONDER, MODIKE_ROW_P1_DONE | MODIKE_ROW_DONE,
    0, P1_AUTH | PB (MODIKE_PL_N), PB (MODIKE_PL_CERT) | PB (MODIKE_PL_CR) | PB (MODIKE_PL_N), am_r3, AM_DONE, 0 },
};

static const ModikeFsmRow quick_rows[] = {
  { "QM_I0", 0, MODIKE_EX_QUICK, 0, MODIKE_ROLE_INITIATOR, MODIKE_ROW_INITIATE,
    0, 0, 0, qm_initiate, QM_I1, T_MS },
  { "QM_R1", 0, MODIKE_EX_QUICK, 1, MODIKE_ROLE_RESPONDER, MODIKE_ROW_START | MODIKE_ROW_ENCRYPTED,
    PB (MODIKE_PL_HASH) | PB (MODIKE_PL_SA) | PB (MODIKE_PL_NONCE),
    PB (MODIKE_PL_KE) | PB (MODIKE_PL_ID) | PB (MODIKE_PL_N), PB (MODIKE_PL_ID) | PB (MODIKE_PL_N),
    qm_r1, QM_R2, T_MS },
  { "QM_I2", QM_I1, MODIKE_EX_QUICK, 2, MODIKE_ROLE_INITIATOR, MODIKE_ROW_ENCRYPTED | MODIKE_ROW_DONE,
    PB (MODIKE_PL_HASH) | PB (MODIKE_PL_SA) | PB (MODIKE_PL_NONCE),
    PB (MODIKE_PL_KE) | PB (MODIKE_PL_ID) | PB (MODIKE_PL_N), PB (MODIKE_PL_ID) | PB (MODIKE_PL_N),
    qm_i2, QM_DONE, 0 },
  { "QM_R3", QM_R2, MODIKE_EX_QUICK, 3, MODIKE_ROLE_RESPONDER, MODIKE_ROW_ENCRYPTED | MODIKE_ROW_DONE,
    PB (MODIKE_PL_HASH), 0, 0, qm_r3, QM_DONE, 0 },
};

static const ModikeFsmRow info_rows[] = {
  { "INFO_R1", 0, MODIKE_EX_INFO, 1, MODIKE_ROLE_RESPONDER,
    MODIKE_ROW_START | MODIKE_ROW_ENCRYPTED | MODIKE_ROW_HASH | MODIKE_ROW_DONE,
    PB (MODIKE_PL_HASH), PB (MODIKE_PL_N) | PB (MODIKE_PL_D), PB (MODIKE_PL_N) | PB (MODIKE_PL_D),
    info_r1, INFO_DONE, 0 },
};

/* The transaction exchange: the core checks HASH(1)/(2) and hands the
 * ATTR payload to the plugin whose attributes it carries. */
static const ModikeFsmRow transaction_rows[] = {
  { "TX_I0", 0, MODIKE_EX_TRANSACTION, 0, MODIKE_ROLE_INITIATOR, MODIKE_ROW_INITIATE | MODIKE_ROW_HASH,
    0, 0, 0, txn_initiate, TXN_I1, T_MS },
  { "TX_R1", 0, MODIKE_EX_TRANSACTION, 1, MODIKE_ROLE_RESPONDER,
    MODIKE_ROW_START | MODIKE_ROW_ENCRYPTED | MODIKE_ROW_HASH | MODIKE_ROW_DONE,
    PB (MODIKE_PL_ATTR), 0, 0, txn_r1, TXN_DONE, 0 },
  { "TX_I2", TXN_I1, MODIKE_EX_TRANSACTION, 2, MODIKE_ROLE_INITIATOR,
    MODIKE_ROW_ENCRYPTED | MODIKE_ROW_HASH | MODIKE_ROW_DONE, PB (MODIKE_PL_ATTR), 0, 0, txn_i2, TXN_DONE, 0 },
};

gboolean
modike_ike_register_core (ModikeRegistry *registry, GError **error)
{
  ModikePlugin *core = modike_registry_core_plugin (registry);

  return modike_register_auth_method (core, MODIKE_AUTH_PSK, "psk", MODIKE_AUTH_PSK, 0, NULL, NULL, error) &&
         modike_register_auth_method (core, MODIKE_AUTH_RSA_SIG, "rsa", MODIKE_AUTH_RSA_SIG, 0, NULL, NULL, error) &&
         modike_register_exchange (core, MODIKE_EX_MAIN, "Main Mode", main_rows, G_N_ELEMENTS (main_rows), error) &&
         modike_register_exchange (core, MODIKE_EX_AGGRESSIVE, "Aggressive Mode", aggressive_rows,
                                   G_N_ELEMENTS (aggressive_rows), error) &&
         modike_register_exchange (core, MODIKE_EX_QUICK, "Quick Mode", quick_rows, G_N_ELEMENTS (quick_rows),
                                   error) &&
         modike_register_exchange (core, MODIKE_EX_INFO, "Informational", info_rows, G_N_ELEMENTS (info_rows),
                                   error) &&
         modike_register_exchange (core, MODIKE_EX_TRANSACTION, "Transaction", transaction_rows,
                                   G_N_ELEMENTS (transaction_rows), error) &&
         modike_registry_check_table (registry, error);
}
