/* The loadtest plugin's descriptor: see loadtest.h. */
#include "loadtest.h"

static const char lt_rng[] =
  "<element name=\"loadtest\" xmlns=\"http://relaxng.org/ns/structure/1.0\">"
  "  <optional><attribute name=\"enable\"/></optional>"
  "  <optional><attribute name=\"peer\"/></optional>"
  "  <optional><attribute name=\"count\"/></optional>"
  "  <optional><attribute name=\"concurrency\"/></optional>"
  "  <optional><attribute name=\"rate\"/></optional>"
  "  <optional><attribute name=\"hold\"/></optional>"
  "  <optional><attribute name=\"timeout\"/></optional>"
  "  <optional><attribute name=\"sources\"/></optional>"
  "  <optional><attribute name=\"id-template\"/></optional>"
  "  <optional><attribute name=\"report-file\"/></optional>"
  "  <optional><attribute name=\"exit\"/></optional>"
  "  <optional><attribute name=\"mode-config\"/></optional>"
  "</element>";

static gboolean
lt_init (ModikePlugin *plugin, GError **error)
{
  static const ModikeEventType events[] = {
    MODIKE_EVENT_P2_UP, MODIKE_EVENT_P1_FAILED, MODIKE_EVENT_P2_FAILED, MODIKE_EVENT_AUTHENTICATED,
  };
  static const ModikeTransactionOps cfg_ops = {
    .initiate = lt_cfg_initiate,
    .answer = lt_cfg_answer,
  };
  Lt *lt = lt_new (plugin);

  modike_plugin_set_data (plugin, lt, lt_free);
  if (!modike_register_config_section (plugin, "loadtest", lt_rng, lt_apply, lt, error)
      || !modike_register_engine_start (plugin, lt_start, lt, error)
      || !modike_register_counters (plugin, lt_counters, lt, error)
      || !modike_register_transaction (plugin, &cfg_ops, error))
    return FALSE;
  for (guint i = 0; i < G_N_ELEMENTS (events); i++)
    if (!modike_register_event (plugin, events[i], lt_event, lt, error))
      return FALSE;
  return TRUE;
}

static const ModikePluginDescriptor lt_descriptor = {
  MODIKE_PLUGIN_DESCRIPTOR_INIT,
  .name = "loadtest",
  .version = "1.0",
  .description = "initiator load generator: many IKE SAs with Quick Modes, setups/s and latency",
  .init = lt_init,
};

MODIKE_PLUGIN_DEFINE (lt_descriptor)
