/* Extended authentication (draft-ietf-ipsec-isakmp-xauth-06) over the
 * transaction exchange (ISAKMP exchange type 6): the gateway asks with
 * ATTR(REQUEST), the client answers with ATTR(REPLY), the gateway ends with
 * ATTR(SET, XAUTH_STATUS) and the client acknowledges with ATTR(ACK). The
 * core adds and checks HASH(1) (MODIKE_ROW_HASH); phase 2 waits at the gate
 * until the status is OK. */
#pragma once

#include <modike/modike.h>

G_BEGIN_DECLS

/* Attribute types (draft section 6.2). */
enum {
  XAUTH_TYPE = 16520,
  XAUTH_USER_NAME = 16521,
  XAUTH_USER_PASSWORD = 16522,
  XAUTH_PASSCODE = 16523,
  XAUTH_MESSAGE = 16524,
  XAUTH_CHALLENGE = 16525,
  XAUTH_DOMAIN = 16526,
  XAUTH_STATUS = 16527,
  XAUTH_NEXT_PIN = 16528,
  XAUTH_ANSWER = 16529,
};

#define XAUTH_TYPE_GENERIC 0
#define XAUTH_STATUS_FAIL 0
#define XAUTH_STATUS_OK 1

#define XAUTH_DEFAULT_RETRIES 3
#define XAUTH_DEFAULT_TIMEOUT_S 30
#define XAUTH_MAX_VALUE 256   /* longest user name, password or passcode taken from the wire */

/* ---- Client credentials: where the answers to a REQUEST come from. The
 * default source takes what the config section has and asks the host (the
 * connect client attached to the site, a user typing) for the rest, which
 * is why the answer may come later. ---- */
typedef struct {
  char *user;
  ModikeSecret *password;   /* NULL when not asked for */
  ModikeSecret *passcode;   /* NULL when not asked for */
} XauthCreds;

void xauth_creds_clear (XauthCreds *c);

/* The answer: c (the receiver moves its fields out) or error (naming the
 * peer and what is missing). */
typedef void (*XauthCredsDone) (gpointer done_data, XauthCreds *c, const GError *error);

typedef struct {
  /* Asks for a user name and what want_password/want_passcode say, for
   * the SA's peer. Calls done exactly once, from inside get or later on
   * the main loop, unless cancelled first; returns a handle for cancel
   * (0 when done already ran). */
  guint (*get) (gpointer self, ModikeIkeSa *sa, gboolean want_password, gboolean want_passcode,
                XauthCredsDone done, gpointer done_data);
  /* The answer is no longer wanted (the exchange or the SA went): done
   * must not run. May be NULL for a source that always answers at once. */
  void (*cancel) (gpointer self, guint request);
  gpointer self;
} XauthCredSource;

/* ---- Server back end: checks what the client answered. ---- */
typedef enum {
  XAUTH_CHECK_FAIL = 0,
  XAUTH_CHECK_OK,
  XAUTH_CHECK_NEED_PASSCODE,   /* right password; now a one-time code (second round) */
} XauthCheck;

typedef void (*XauthCheckDone) (gpointer done_data, XauthCheck verdict);

typedef struct {
  /* Checks user and password (first round; passcode NULL) or the one-time
   * code (second round; password NULL). The secrets are borrowed for the
   * call: a verifier that answers later copies them. Calls done exactly
   * once, from inside check or later on the main loop, unless cancelled
   * first; returns a handle for cancel (0 when done already ran). */
  guint (*check) (gpointer self, const char *user, const ModikeSecret *password, const ModikeSecret *passcode,
                  XauthCheckDone done, gpointer done_data);
  /* The verdict is no longer wanted; may be NULL for one that answers at once. */
  void (*cancel) (gpointer self, guint request);
  gpointer self;
} XauthVerifier;

/* ---- Users file: one line per user,
 *   name:pbkdf2-sha256:<iterations>:<salt base64>:<hash base64>
 * '#' starts a comment line; blank lines are skipped. ---- */
typedef struct _XauthUsers XauthUsers;

XauthUsers *xauth_users_load (const char *path, GError **error);
XauthUsers *xauth_users_parse (const char *text, gsize len, const char *name_for_errors, GError **error);
void xauth_users_free (XauthUsers *u);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (XauthUsers, xauth_users_free)
guint xauth_users_count (const XauthUsers *u);
/* Constant time in the password; an unknown user costs the same PBKDF2. */
gboolean xauth_users_check (const XauthUsers *u, const char *user, const guint8 *password, gsize len);
/* One users-file line (without newline) for user and password, with a
 * fresh 16-byte salt. */
char *xauth_users_make_entry (const char *user, const guint8 *password, gsize len, guint iterations,
                              GError **error);
#define XAUTH_PBKDF2_ITERATIONS 100000

/* ---- PAM: a verifier that runs pam_authenticate and pam_acct_mgmt for
 * the service (/etc/pam.d/<service>) on a pool of at most max_parallel
 * worker threads (more checks wait in a queue) and answers on the main
 * loop that asked. ---- */
typedef struct _XauthPam XauthPam;

#define XAUTH_PAM_PARALLEL 4

XauthPam *xauth_pam_new (const char *service, guint max_parallel, GError **error);
/* Pending verdicts are dropped (their done never runs); waits for checks
 * already inside PAM. */
void xauth_pam_free (XauthPam *p);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (XauthPam, xauth_pam_free)
const char *xauth_pam_service (const XauthPam *p);
/* XauthVerifier.check and .cancel with self = the XauthPam. */
guint xauth_pam_check (gpointer self, const char *user, const ModikeSecret *password, const ModikeSecret *passcode,
                       XauthCheckDone done, gpointer done_data);
void xauth_pam_cancel (gpointer self, guint request);
/* Tests: the most checks that were inside PAM at the same time; checks
 * whose verdict has not reached the main loop yet (cancelled ones too). */
guint xauth_pam_peak (XauthPam *p);
guint xauth_pam_pending (const XauthPam *p);

/* ---- The plugin ---- */
typedef struct {
  char *peer;
  char *user;
  char *password_file;
  char *passcode_file;
} XauthCredConfig;

typedef struct {
  ModikePlugin *plugin;
  guint retries;          /* tries a client gets (server) */
  guint timeout_s;        /* how long either side waits for the other */
  XauthUsers *users;      /* server: the users file; NULL = none configured */
  char *users_path;
  XauthPam *pam;          /* server: PAM instead of the users file; NULL = not configured */
  GPtrArray *creds;       /* XauthCredConfig*: client credentials per peer */
  XauthCredSource source; /* client: defaults to the config section, then the host */
  GHashTable *asks;       /* client: request id -> the host's pending answer */
  guint next_ask;
  XauthVerifier verifier; /* server: defaults to the users file */
  /* Tests: the XAUTH_TYPE our REQUEST names (0) and attributes it carries
   * in addition (ModikeAttr, NULL = none); a SET before the REQUEST. */
  guint16 ask_type;
  GArray *ask_extra;
  GArray *push_first;     /* tests: a SET of these (TLV) goes out before the first REQUEST */
} Xauth;

gboolean xauth_init (ModikePlugin *plugin, GError **error);

G_END_DECLS
