/* modiked's control socket: a Unix stream socket speaking the control
 * protocol (control-msg.h, docs/control-protocol.md). The server owns the
 * connections, checks peer credentials and bounds what each client may
 * queue; what a request does is up to DaemonControlOps. */
#pragma once

#include "control-msg.h"

#include <modike/host.h>

#include <sys/types.h>

G_BEGIN_DECLS

#define DAEMON_CONTROL_DEFAULT_PATH "/run/modike/modiked.sock"
#define DAEMON_CONTROL_MAX_CLIENTS 64
/* Bytes queued for one client before it counts as stuck and is dropped. */
#define DAEMON_CONTROL_MAX_QUEUE (1024 * 1024)

/* Errors the ops return; the code travels to the client as a string
 * (control_error_code_name). Errors of other domains travel as "failed". */
#define DAEMON_CONTROL_ERROR (daemon_control_error_quark ())
GQuark daemon_control_error_quark (void);
typedef enum {
  DAEMON_CONTROL_ERROR_FAILED,
  DAEMON_CONTROL_ERROR_CONFIG,      /* the site config was refused */
  DAEMON_CONTROL_ERROR_AUTH,        /* authentication failed */
  DAEMON_CONTROL_ERROR_TIMEOUT,     /* the peer did not answer */
  DAEMON_CONTROL_ERROR_NOT_FOUND,   /* no such site */
  DAEMON_CONTROL_ERROR_EXISTS,      /* the site is already there */
  DAEMON_CONTROL_ERROR_MALFORMED,   /* a bad request */
  DAEMON_CONTROL_ERROR_PERMISSION,  /* peer credentials refused */
  DAEMON_CONTROL_ERROR_CANCELLED,   /* the client went away or said no */
} DaemonControlError;

const char *daemon_control_error_name (const GError *error);

typedef struct _DaemonControl DaemonControl;
typedef struct _ControlClient ControlClient;

typedef struct {
  /* Adds the site; *site is its name. */
  gboolean (*upload) (gpointer user, ControlClient *c, const char *xml, const char *name_for_errors, char **site,
                      GError **error);
  /* Starts the site and attaches c to it. */
  gboolean (*connect) (gpointer user, ControlClient *c, const char *site, GError **error);
  gboolean (*disconnect) (gpointer user, const char *site, GError **error);
  JsonObject *(*status) (gpointer user);       /* new object: the "result" members */
  JsonObject *(*statistics) (gpointer user);
  /* The connection closed: detach c from what it connected. */
  void (*client_gone) (gpointer user, ControlClient *c);
} DaemonControlOps;

/* Binds path (a stale socket there is replaced), mode 0660, owner root and
 * group gid; root and members of gid may connect. */
DaemonControl *daemon_control_new (const char *path, gid_t gid, const DaemonControlOps *ops, gpointer user,
                                   GError **error);
void daemon_control_free (DaemonControl *ctl);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (DaemonControl, daemon_control_free)

/* Queues msg (borrowed) for c; a client whose queue overflows is dropped. */
void daemon_control_send (ControlClient *c, JsonObject *msg);
/* To every client that subscribed to events but skip (which may be NULL:
 * the attached client that got it already). */
void daemon_control_broadcast (DaemonControl *ctl, JsonObject *msg, ControlClient *skip);
/* To every client that subscribed to log lines at level or more verbose. */
void daemon_control_log (DaemonControl *ctl, GLogLevelFlags level, const char *domain, const char *message);
guint daemon_control_count_clients (DaemonControl *ctl);

/* ---- Credentials: the daemon asks an attached client (XAuth). ----
 * fields: names of what is wanted ("username", "password", "passcode");
 * secret fields are typed without echo. fn runs exactly once: with the
 * answers (field -> value, values wiped after fn returns), or with an
 * error (the client cancelled or went away, or the request was cancelled
 * with daemon_control_cancel_credentials). When c is already closing, fn
 * runs before this returns, and 0 is returned. */
typedef ModikeCredentialField DaemonCredentialField;
typedef ModikeHostCredentialsDone DaemonCredentialsFunc;
guint daemon_control_request_credentials (ControlClient *c, const char *site, const char *prompt,
                                          const DaemonCredentialField *fields, guint n_fields,
                                          DaemonCredentialsFunc fn, gpointer user);
void daemon_control_cancel_credentials (DaemonControl *ctl, guint request);

G_END_DECLS
