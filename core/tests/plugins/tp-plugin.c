/* One tiny test plugin, built many times with different -D settings (see
 * meson.build next to it): name, dependencies, ABI fields, what it
 * registers and how init ends. Links against nothing: the registry calls
 * and tp_trace resolve from test-loader, which exports them. */
#include <gmodule.h>
#include <modike/modike.h>

#ifndef TP_DESC_NAME
#define TP_DESC_NAME TP_NAME
#endif
#ifndef TP_ABI_MAJOR
#define TP_ABI_MAJOR MODIKE_ABI_MAJOR
#endif
#ifndef TP_ABI_MINOR
#define TP_ABI_MINOR MODIKE_ABI_MINOR
#endif
#ifndef TP_STRUCT_SIZE
#define TP_STRUCT_SIZE sizeof (ModikePluginDescriptor)
#endif
#ifndef TP_CLAIMS
#define TP_CLAIMS 0
#endif
#ifndef TP_FAIL
#define TP_FAIL 0
#endif

/* What to register (TP_CLAIMS bits). */
#define TP_C_EXCHANGE (1 << 0)   /* exchange 200 "TestEx" */
#define TP_C_PAYLOAD (1 << 1)    /* payload 150 at 200/1, 200/3, 2/3 */
#define TP_C_BUILDER (1 << 2)    /* builder at 200/2 */
#define TP_C_VID (1 << 3)        /* vendor ID "modike-test-vid" */
#define TP_C_NOTIFY (1 << 4)     /* notify 40000 */
#define TP_C_SECTION (1 << 5)    /* config section <tpsection> */
#define TP_C_PORT (1 << 6)       /* port 4600 */
#define TP_C_ENCAP (1 << 7)
#define TP_C_DATAPATH (1 << 8)
#define TP_C_OS (1 << 9)
#define TP_C_EVENT (1 << 10)     /* P1_UP */
#define TP_C_BAD_ROWS (1 << 11)  /* exchange 201 whose row goes nowhere */
#define TP_C_ROW_PAYLOAD (1 << 12) /* claims NONCE at 200/1, which the row lists */
#define TP_C_PORT2 (1 << 13)     /* port 4601 */

/* How init ends (TP_FAIL). */
#define TP_F_ERROR 1             /* registers, then fails with an error */
#define TP_F_SILENT 2            /* registers, then fails without one */
#define TP_F_IGNORE 3            /* ignores a refused registration, returns TRUE */

void tp_trace (const char *what, const char *name);

static ModikeVerdict
tp_handler (ModikeExchange *x, const ModikeMessage *msg, GError **error)
{
  return MODIKE_V_OK;
}

static const ModikeFsmRow tp_rows[] = {
  { .name = "TP_I0", .from = 0, .exchange = 200, .msg_no = 0, .role = MODIKE_ROLE_INITIATOR,
    .flags = MODIKE_ROW_INITIATE, .handler = tp_handler, .next = 1, .timeout_ms = 1000 },
  { .name = "TP_R1", .from = 0, .exchange = 200, .msg_no = 1, .role = MODIKE_ROLE_RESPONDER,
    .flags = MODIKE_ROW_START | MODIKE_ROW_PLAIN,
    .required = G_GUINT64_CONSTANT (1) << MODIKE_PL_NONCE, .handler = tp_handler, .next = 2 },
  { .name = "TP_I1", .from = 1, .exchange = 200, .msg_no = 2, .role = MODIKE_ROLE_INITIATOR,
    .flags = MODIKE_ROW_PLAIN | MODIKE_ROW_DONE, .handler = tp_handler },
  { .name = "TP_R2", .from = 2, .exchange = 200, .msg_no = 3, .role = MODIKE_ROLE_RESPONDER,
    .flags = MODIKE_ROW_DONE, .handler = tp_handler },
};

static const ModikeFsmRow tp_bad_rows[] = {
  { .name = "BAD_R1", .from = 0, .exchange = 201, .msg_no = 1, .role = MODIKE_ROLE_RESPONDER,
    .flags = MODIKE_ROW_START, .handler = tp_handler, .next = 9 },
};

static const ModikeMsgPoint tp_points[] = { { 200, 1 }, { 200, 3 }, { 2, 3 } };
static const ModikeMsgPoint tp_row_points[] = { { 200, 1 } };
static const guint8 tp_vid[] = "modike-test-vid";

static ModikeVerdict
tp_payload (ModikeExchange *x, const ModikeMessage *msg, const ModikePayload *const *payloads, guint n,
            gpointer user, GError **error)
{
  return MODIKE_V_OK;
}

static gboolean
tp_build (ModikeExchange *x, ModikeBuilder *b, gpointer user, GError **error)
{
  return TRUE;
}

static void
tp_vid_seen (ModikeIkeSa *sa, const guint8 *vid, gsize len, gpointer user)
{
}

static void
tp_notify (ModikeIkeSa *sa, const ModikeNotifyPayload *n, gboolean authenticated, gpointer user)
{
}

static gboolean
tp_apply (ModikePlugin *plugin, xmlNode *section, gpointer user, GError **error)
{
  tp_trace (section != NULL ? "apply-section" : "apply-none", modike_plugin_get_name (plugin));
  return TRUE;
}

static guint16
tp_encap_out (ModikeIkeSa *sa, guint16 mode, gpointer user)
{
  return mode;
}

static gboolean
tp_encap_in (ModikeIkeSa *sa, guint16 value, guint16 *mode, gboolean *udp, gpointer user)
{
  return FALSE;
}

static void
tp_event (ModikeEventType ev, ModikeIkeSa *sa, const ModikeSadEntry *child, gpointer user)
{
  tp_trace ("event", user);
}

static const ModikeEncapOps tp_encap = { tp_encap_out, tp_encap_in };
static const ModikeDatapathOps tp_datapath = { .name = "tp-datapath" };
static const ModikeOsAdapterOps tp_os = { .name = "tp-os" };

static void
tp_data_free (gpointer data)
{
  tp_trace ("free", data);
}

static gboolean
tp_register (ModikePlugin *plugin, guint claims, GError **error)
{
  gpointer name = (gpointer) modike_plugin_get_name (plugin);

  if ((claims & TP_C_EXCHANGE) && !modike_register_exchange (plugin, 200, "TestEx", tp_rows,
                                                              G_N_ELEMENTS (tp_rows), error))
    return FALSE;
  if ((claims & TP_C_PAYLOAD) && !modike_register_payload (plugin, 150, tp_points, G_N_ELEMENTS (tp_points), 2,
                                                            tp_payload, NULL, error))
    return FALSE;
  if ((claims & TP_C_BUILDER) && !modike_register_builder (plugin, (ModikeMsgPoint) { 200, 2 }, tp_build, NULL, error))
    return FALSE;
  if ((claims & TP_C_VID) && !modike_register_vendor_id (plugin, "test", tp_vid, sizeof tp_vid - 1,
                                                          MODIKE_VID_SEND, tp_vid_seen, NULL, error))
    return FALSE;
  if ((claims & TP_C_NOTIFY) && !modike_register_notify (plugin, 40000, tp_notify, NULL, error))
    return FALSE;
  if ((claims & TP_C_SECTION)
      && !modike_register_config_section (plugin, "tpsection",
                                          "<element name=\"tpsection\" xmlns=\"http://relaxng.org/ns/structure/1.0\">"
                                          "<optional><attribute name=\"value\"/></optional></element>",
                                          tp_apply, NULL, error))
    return FALSE;
  if ((claims & TP_C_PORT) && !modike_register_port (plugin, 4600, MODIKE_PORT_NON_ESP_MARKER, error))
    return FALSE;
  if ((claims & TP_C_PORT2) && !modike_register_port (plugin, 4601, 0, error))
    return FALSE;
  if ((claims & TP_C_ENCAP) && !modike_register_encap (plugin, &tp_encap, NULL, error))
    return FALSE;
  if ((claims & TP_C_DATAPATH) && !modike_register_datapath (plugin, &tp_datapath, NULL, error))
    return FALSE;
  if ((claims & TP_C_OS) && !modike_register_os_adapter (plugin, &tp_os, NULL, error))
    return FALSE;
  if ((claims & TP_C_EVENT) && !modike_register_event (plugin, MODIKE_EVENT_P1_UP, tp_event, name, error))
    return FALSE;
  if ((claims & TP_C_BAD_ROWS) && !modike_register_exchange (plugin, 201, "BadEx", tp_bad_rows,
                                                              G_N_ELEMENTS (tp_bad_rows), error))
    return FALSE;
  if ((claims & TP_C_ROW_PAYLOAD)
      && !modike_register_payload (plugin, MODIKE_PL_NONCE, tp_row_points, G_N_ELEMENTS (tp_row_points), 1,
                                   tp_payload, NULL, error))
    return FALSE;
  return TRUE;
}

static gboolean
tp_init (ModikePlugin *plugin, GError **error)
{
  const char *name = modike_plugin_get_name (plugin);

  tp_trace ("init", name);
  modike_plugin_set_data (plugin, (gpointer) name, tp_data_free);

  switch (TP_FAIL)
    {
    case TP_F_ERROR:
      if (!tp_register (plugin, TP_C_PORT | TP_C_NOTIFY | TP_C_VID, error))
        return FALSE;
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "the test told it to fail");
      return FALSE;
    case TP_F_SILENT:
      if (!tp_register (plugin, TP_C_PORT, error))
        return FALSE;
      return FALSE;
    case TP_F_IGNORE:
      {
        g_autoptr (GError) ignored = NULL;

        (void) tp_register (plugin, TP_CLAIMS, &ignored);
        return TRUE;
      }
    default:
      return tp_register (plugin, TP_CLAIMS, error);
    }
}

static void
tp_fini (ModikePlugin *plugin)
{
  tp_trace ("fini", modike_plugin_get_name (plugin));
}

static const char *const tp_depends[] = {
#ifdef TP_DEP1
  TP_DEP1,
#endif
#ifdef TP_DEP2
  TP_DEP2,
#endif
  NULL,
};

static const ModikePluginDescriptor tp_descriptor = {
  .abi_major = TP_ABI_MAJOR,
  .abi_minor = TP_ABI_MINOR,
  .struct_size = TP_STRUCT_SIZE,
  .name = TP_DESC_NAME,
  .version = "0.0-test",
  .description = "loader test plugin",
  .depends = tp_depends,
  .init = tp_init,
  .fini = tp_fini,
};

MODIKE_PLUGIN_DEFINE (tp_descriptor)
