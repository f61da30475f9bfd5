/* The dpd plugin's descriptor: the only exported symbol. */
#include "dpd.h"

static const char *const dpd_provides[] = { "dead-peer-detection", NULL };

static const ModikePluginDescriptor dpd_descriptor = {
  MODIKE_PLUGIN_DESCRIPTOR_INIT,
  .name = "dpd",
  .version = "1.0",
  .description = "dead peer detection (RFC 3706)",
  .provides = dpd_provides,
  .depends = NULL,
  .init = dpd_init,
  .fini = NULL,
};

MODIKE_PLUGIN_DEFINE (dpd_descriptor)
